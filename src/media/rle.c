/* COCO RLE with pycocotools' exact semantics (maskApi.c). */
#include "media/rle.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

static sam2d_status rle_alloc(sam_rle *out, int h, int w, size_t cap) {
    out->h = h;
    out->w = w;
    out->n = 0;
    out->counts = sam_malloc(sizeof(uint32_t) * (cap ? cap : 1));
    if (!out->counts) return SAM_ERR(SAM2D_ERR_NOMEM, "RLE: no memory for %zu runs", cap);
    return SAM2D_OK;
}

static sam2d_status check_hw(int h, int w) {
    if (h < 0 || w < 0 || (uint64_t)h * (uint64_t)w > 0xffffffffu)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "RLE: bad size %dx%d", h, w);
    return SAM2D_OK;
}

/* Runs are taken column by column (Fortran order), the first run counts zeros. */
#define RLE_ENCODE_BODY(IS_FG)                                                        \
    SAM_TRY(check_hw(h, w));                                                          \
    memset(out, 0, sizeof(*out));                                                     \
    /* a mask of h*w pixels has at most h*w+1 runs; grow instead of reserving that */ \
    size_t cap = 64;                                                                  \
    SAM_TRY(rle_alloc(out, h, w, cap));                                               \
    int prev = 0;                                                                     \
    uint32_t c = 0;                                                                   \
    for (int x = 0; x < w; x++)                                                       \
        for (int y = 0; y < h; y++) {                                                 \
            int v = (IS_FG) ? 1 : 0;                                                  \
            if (v != prev) {                                                          \
                if (out->n == cap) {                                                  \
                    cap *= 2;                                                         \
                    uint32_t *nc = sam_realloc(out->counts, cap * sizeof(uint32_t));  \
                    if (!nc) {                                                        \
                        sam_rle_free(out);                                            \
                        return SAM_ERR(SAM2D_ERR_NOMEM, "RLE: no memory");            \
                    }                                                                 \
                    out->counts = nc;                                                 \
                }                                                                     \
                out->counts[out->n++] = c;                                            \
                c = 0;                                                                \
                prev = v;                                                             \
            }                                                                         \
            c++;                                                                      \
        }                                                                             \
    if (out->n == cap) {                                                              \
        uint32_t *nc = sam_realloc(out->counts, (cap + 1) * sizeof(uint32_t));        \
        if (!nc) {                                                                    \
            sam_rle_free(out);                                                        \
            return SAM_ERR(SAM2D_ERR_NOMEM, "RLE: no memory");                        \
        }                                                                             \
        out->counts = nc;                                                             \
    }                                                                                 \
    out->counts[out->n++] = c;                                                        \
    return SAM2D_OK;

sam2d_status sam_rle_encode(const uint8_t *mask, int h, int w, sam_rle *out) {
    RLE_ENCODE_BODY(mask[(size_t)y * w + x] != 0)
}

sam2d_status sam_rle_encode_f32(const float *m, int h, int w, float threshold, sam_rle *out) {
    RLE_ENCODE_BODY(m[(size_t)y * w + x] > threshold)
}

sam2d_status sam_rle_decode(const sam_rle *r, uint8_t *mask) {
    SAM_TRY(check_hw(r->h, r->w));
    uint64_t total = 0;
    for (size_t i = 0; i < r->n; i++) total += r->counts[i];
    uint64_t hw = (uint64_t)r->h * r->w;
    if (total != hw)
        return SAM_ERR(SAM2D_ERR_FORMAT, "RLE: runs cover %llu pixels, mask %dx%d has %llu",
                       (unsigned long long)total, r->h, r->w, (unsigned long long)hw);
    /* walk down each column, carrying (x, y) instead of dividing per pixel */
    size_t x = 0, y = 0, W = (size_t)r->w, H = (size_t)r->h;
    uint8_t v = 0;
    for (size_t i = 0; i < r->n; i++) {
        for (uint32_t k = 0; k < r->counts[i]; k++) {
            mask[y * W + x] = v;
            if (++y == H) y = 0, x++;
        }
        v ^= 1;
    }
    return SAM2D_OK;
}

void sam_rle_free(sam_rle *r) {
    if (!r) return;
    sam_free(r->counts);
    r->counts = NULL;
    r->n = 0;
}

uint64_t sam_rle_area(const sam_rle *r) {
    uint64_t a = 0;
    for (size_t i = 1; i < r->n; i += 2) a += r->counts[i];
    return a;
}

sam2d_status sam_rle_to_string(const sam_rle *r, char **str) {
    *str = NULL;
    /* a 32-bit delta takes at most 7 five-bit groups */
    char *s = sam_malloc(r->n * 7 + 1);
    if (!s) return SAM_ERR(SAM2D_ERR_NOMEM, "RLE: no memory for string");
    size_t p = 0;
    for (size_t i = 0; i < r->n; i++) {
        long long x = (long long)r->counts[i];
        /* pycocotools deltas against the run two back, but only from the 4th run on */
        if (i > 2) x -= (long long)r->counts[i - 2];
        int more = 1;
        while (more) {
            int c = (int)(x & 0x1f);
            x >>= 5; /* arithmetic shift keeps the sign, as in the C original */
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            s[p++] = (char)(c + 48);
        }
    }
    s[p] = 0;
    *str = s;
    return SAM2D_OK;
}

sam2d_status sam_rle_from_string(const char *str, int h, int w, sam_rle *out) {
    memset(out, 0, sizeof(*out));
    SAM_TRY(check_hw(h, w));
    size_t len = strlen(str);
    SAM_TRY(rle_alloc(out, h, w, len));
    size_t p = 0;
    while (p < len) {
        long long x = 0;
        int k = 0, more = 1;
        while (more) {
            if (p >= len || k >= 7) {
                sam_rle_free(out);
                return SAM_ERR(SAM2D_ERR_FORMAT, "RLE string: value cut short at offset %zu", p);
            }
            int c = (unsigned char)str[p] - 48;
            if (c < 0 || c > 63) {
                sam_rle_free(out);
                return SAM_ERR(SAM2D_ERR_FORMAT, "RLE string: bad character 0x%02x at offset %zu",
                               (unsigned char)str[p], p);
            }
            x |= (long long)(c & 0x1f) << (5 * k);
            more = c & 0x20;
            p++;
            k++;
            if (!more && (c & 0x10)) x |= (long long)(~0ULL << (5 * k));
        }
        if (out->n > 2) x += (long long)out->counts[out->n - 2];
        if (x < 0 || x > 0xffffffffLL) {
            sam_rle_free(out);
            return SAM_ERR(SAM2D_ERR_FORMAT, "RLE string: run %zu out of range (%lld)", out->n, x);
        }
        out->counts[out->n++] = (uint32_t)x;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < out->n; i++) total += out->counts[i];
    if (total != (uint64_t)h * w) {
        sam_rle_free(out);
        return SAM_ERR(SAM2D_ERR_FORMAT, "RLE string: runs cover %llu pixels, mask %dx%d has %llu",
                       (unsigned long long)total, h, w, (unsigned long long)h * w);
    }
    return SAM2D_OK;
}

sam2d_status sam_rle_mask_to_string(const uint8_t *mask, int h, int w, char **str) {
    sam_rle r;
    SAM_TRY(sam_rle_encode(mask, h, w, &r));
    sam2d_status s = sam_rle_to_string(&r, str);
    sam_rle_free(&r);
    return s;
}

sam2d_status sam_rle_string_to_mask(const char *str, int h, int w, uint8_t *mask) {
    sam_rle r;
    SAM_TRY(sam_rle_from_string(str, h, w, &r));
    sam2d_status s = sam_rle_decode(&r, mask);
    sam_rle_free(&r);
    return s;
}
