#include "predictor/postprocess.h"

#include <string.h>

size_t sam_cc_scratch_bytes(int H, int W) {
    size_t n = (size_t)H * (size_t)W;
    return n * 2 * sizeof(int32_t) + 2 * n;
}

static int32_t uf_find(int32_t *parent, int32_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]]; /* path halving keeps trees shallow */
        x = parent[x];
    }
    return x;
}

static void uf_union(int32_t *parent, int32_t a, int32_t b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a == b) return;
    /* the smaller index becomes the root: labels follow raster order */
    if (a < b) parent[b] = a;
    else parent[a] = b;
}

int sam_connected_components(const uint8_t *fg, int H, int W, int32_t *labels, int32_t *area, void *scratch) {
    const int64_t n = (int64_t)H * W;
    int32_t *parent = (int32_t *)scratch; /* (H*W) */
    for (int64_t i = 0; i < n; i++) parent[i] = (int32_t)i;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int64_t i = (int64_t)y * W + x;
            if (!fg[i]) continue;
            /* 8-connectivity: look at the already visited neighbours W, NW, N, NE */
            if (x > 0 && fg[i - 1]) uf_union(parent, (int32_t)i, (int32_t)(i - 1));
            if (y > 0) {
                int64_t u = i - W;
                if (fg[u]) uf_union(parent, (int32_t)i, (int32_t)u);
                if (x > 0 && fg[u - 1]) uf_union(parent, (int32_t)i, (int32_t)(u - 1));
                if (x + 1 < W && fg[u + 1]) uf_union(parent, (int32_t)i, (int32_t)(u + 1));
            }
        }
    }
    /* area per root (stored in area[root] temporarily), labels numbered in raster order of roots */
    memset(area, 0, (size_t)n * sizeof(int32_t));
    int nlab = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!fg[i]) {
            labels[i] = 0;
            continue;
        }
        int32_t r = uf_find(parent, (int32_t)i);
        if (r == i) labels[i] = ++nlab;
        else labels[i] = labels[r];
        area[r]++;
    }
    /* spread the root's area to every member; roots come first in raster order */
    for (int64_t i = 0; i < n; i++) {
        if (!fg[i]) continue;
        int32_t r = uf_find(parent, (int32_t)i);
        if (r != i) area[i] = area[r];
    }
    return nlab;
}

/* Scratch layout for the helpers below: parent (n int32), count (n int32),
 * then two byte planes a and b (n each). */
static void mark_small(const uint8_t *fg, int H, int W, int max_area, void *scratch, uint8_t *small) {
    const int64_t n = (int64_t)H * W;
    int32_t *parent = (int32_t *)scratch; /* (n) */
    int32_t *count = parent + n;          /* (n) */
    for (int64_t i = 0; i < n; i++) {
        parent[i] = (int32_t)i;
        count[i] = 0;
    }
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int64_t i = (int64_t)y * W + x;
            if (!fg[i]) continue;
            if (x > 0 && fg[i - 1]) uf_union(parent, (int32_t)i, (int32_t)(i - 1));
            if (y > 0) {
                int64_t u = i - W;
                if (fg[u]) uf_union(parent, (int32_t)i, (int32_t)u);
                if (x > 0 && fg[u - 1]) uf_union(parent, (int32_t)i, (int32_t)(u - 1));
                if (x + 1 < W && fg[u + 1]) uf_union(parent, (int32_t)i, (int32_t)(u + 1));
            }
        }
    }
    for (int64_t i = 0; i < n; i++)
        if (fg[i]) count[uf_find(parent, (int32_t)i)]++;
    for (int64_t i = 0; i < n; i++) small[i] = fg[i] && count[uf_find(parent, (int32_t)i)] <= max_area;
}

static uint8_t *plane(void *scratch, int64_t n, int which) {
    return (uint8_t *)scratch + (size_t)n * 2 * sizeof(int32_t) + (size_t)which * (size_t)n;
}

void sam_fill_holes(float *mask, int H, int W, int max_area, void *scratch) {
    if (max_area <= 0) return;
    const int64_t n = (int64_t)H * W;
    uint8_t *fg = plane(scratch, n, 0), *hole = plane(scratch, n, 1); /* (H*W) each */
    for (int64_t i = 0; i < n; i++) fg[i] = mask[i] <= 0.0f;
    mark_small(fg, H, W, max_area, scratch, hole);
    for (int64_t i = 0; i < n; i++)
        if (hole[i]) mask[i] = 0.1f;
}

void sam_fill_holes_and_sprinkles(float *mask, int H, int W, int max_hole, int max_sprinkle, float threshold,
                                  void *scratch) {
    const int64_t n = (int64_t)H * W;
    uint8_t *fg = plane(scratch, n, 0), *hit = plane(scratch, n, 1); /* (H*W) each */
    /* holes (<= threshold) and sprinkles (> threshold) are disjoint pixel sets, so
     * doing the sprinkles first and the holes on the unchanged <= set is the
     * reference's "both from the input mask" */
    if (max_sprinkle > 0) {
        for (int64_t i = 0; i < n; i++) fg[i] = mask[i] > threshold;
        mark_small(fg, H, W, max_sprinkle, scratch, hit);
        if (max_hole > 0)
            for (int64_t i = 0; i < n; i++) fg[i] = !fg[i]; /* the input's background */
        for (int64_t i = 0; i < n; i++)
            if (hit[i]) mask[i] = threshold - 10.0f;
    } else if (max_hole > 0) {
        for (int64_t i = 0; i < n; i++) fg[i] = mask[i] <= threshold;
    }
    if (max_hole > 0) {
        mark_small(fg, H, W, max_hole, scratch, hit);
        for (int64_t i = 0; i < n; i++)
            if (hit[i]) mask[i] = threshold + 10.0f;
    }
}

void sam_non_overlap(float *masks, int n_obj, int64_t hw) {
    if (n_obj <= 1) return;
    for (int64_t p = 0; p < hw; p++) {
        int best = 0;
        float bv = masks[p];
        for (int o = 1; o < n_obj; o++) {
            float v = masks[(int64_t)o * hw + p];
            if (v > bv) {
                bv = v;
                best = o;
            }
        }
        for (int o = 0; o < n_obj; o++) {
            if (o == best) continue;
            float *v = &masks[(int64_t)o * hw + p];
            if (*v > -10.0f) *v = -10.0f;
        }
    }
}
