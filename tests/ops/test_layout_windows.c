/* Hiera's window helpers against naive loops: window_partition (with and
 * without the fused LayerNorm, padding at the bottom/right), the accumulating
 * window_unpartition_add, and the strided maxpool2x2_ld (NaN propagates). */
#include "ops/ops.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

static void ref_ln(float *y, const float *x, int C, const float *g, const float *b, float eps) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    for (int c = 0; c < C; c++) y[c] = (float)((x[c] - m) / sqrt(v + eps) * (g ? g[c] : 1.0) + (b ? b[c] : 0.0));
}

static void test_windows(sam_backend *be, int H, int W, int C, int wh, int ww, int w0, int nwin, bool norm,
                         uint64_t seed) {
    const int nww = (W + ww - 1) / ww;
    const size_t nmap = (size_t)H * W * C, nw = (size_t)nwin * wh * ww * C;
    float *x = malloc(sizeof(float) * nmap), *g = malloc(sizeof(float) * C), *bb = malloc(sizeof(float) * C);
    float *y = malloc(sizeof(float) * nw), *r = malloc(sizeof(float) * nw);
    test_fill_random(x, nmap, seed);
    test_fill_random(g, C, seed + 1);
    test_fill_random(bb, C, seed + 2);
    for (size_t i = 0; i < nw; i++) y[i] = NAN; /* every element written, padding included */
    for (int k = 0; k < nwin; k++) {
        const int wy = (w0 + k) / nww, wx = (w0 + k) % nww;
        for (int i = 0; i < wh; i++)
            for (int j = 0; j < ww; j++) {
                const int yy = wy * wh + i, xx = wx * ww + j;
                float *d = r + (((size_t)k * wh + i) * ww + j) * C;
                if (yy >= H || xx >= W)
                    for (int c = 0; c < C; c++) d[c] = 0.0f;
                else if (norm)
                    ref_ln(d, x + ((size_t)yy * W + xx) * C, C, g, bb, 1e-6f);
                else
                    memcpy(d, x + ((size_t)yy * W + xx) * C, sizeof(float) * C);
            }
    }
    be->window_partition(be, y, x, H, W, C, wh, ww, w0, nwin, norm, g, bb, 1e-6f);
    char name[128];
    snprintf(name, sizeof name, "partition %dx%dx%d win %dx%d [%d,+%d) norm=%d", H, W, C, wh, ww, w0, nwin, norm);
    CHECK_CLOSE_ARRAY(name, y, r, nw, norm ? 2e-5 : 0.0);
    for (size_t i = 0; i < nw; i++) /* padding is exactly zero */
        if (r[i] == 0.0f && y[i] != 0.0f) {
            CHECK_MSG(0, "padding %zu not zero", i);
            break;
        }

    /* unpartition_add: y map += windows, padding dropped */
    float *m = malloc(sizeof(float) * nmap), *mr = malloc(sizeof(float) * nmap);
    test_fill_random(m, nmap, seed + 3);
    memcpy(mr, m, sizeof(float) * nmap);
    test_fill_random(y, nw, seed + 4);
    for (int k = 0; k < nwin; k++) {
        const int wy = (w0 + k) / nww, wx = (w0 + k) % nww;
        for (int i = 0; i < wh; i++)
            for (int j = 0; j < ww; j++) {
                const int yy = wy * wh + i, xx = wx * ww + j;
                if (yy >= H || xx >= W) continue;
                for (int c = 0; c < C; c++)
                    mr[((size_t)yy * W + xx) * C + c] += y[(((size_t)k * wh + i) * ww + j) * C + c];
            }
    }
    be->window_unpartition_add(be, m, y, H, W, C, wh, ww, w0, nwin);
    snprintf(name, sizeof name, "unpartition_add %dx%dx%d win %dx%d [%d,+%d)", H, W, C, wh, ww, w0, nwin);
    CHECK_CLOSE_ARRAY(name, m, mr, nmap, 0.0);
    free(x), free(g), free(bb), free(y), free(r), free(m), free(mr);
}

static void test_pool(sam_backend *be, int N, int H, int W, int C, int64_t ldx, uint64_t seed) {
    const size_t nx = (size_t)N * H * W * ldx, ny = (size_t)N * (H / 2) * (W / 2) * C;
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny), *r = malloc(sizeof(float) * ny);
    test_fill_random(x, nx, seed);
    x[ldx + 1] = NAN; /* pixel (0, 1), channel 1 */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < H / 2; i++)
            for (int j = 0; j < W / 2; j++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    bool nan = false;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++) {
                            float v = x[(((size_t)n * H + 2 * i + a) * W + 2 * j + b) * ldx + c];
                            if (v != v) nan = true;
                            if (v > m) m = v;
                        }
                    r[(((size_t)n * (H / 2) + i) * (W / 2) + j) * C + c] = nan ? NAN : m;
                }
    be->maxpool2x2_ld(be, y, x, N, H, W, C, ldx);
    CHECK(isnan(y[1]));
    y[1] = r[1] = 0.0f;
    char name[96];
    snprintf(name, sizeof name, "maxpool2x2_ld %dx%dx%dx%d ld %lld", N, H, W, C, (long long)ldx);
    CHECK_CLOSE_ARRAY(name, y, r, ny, 0.0);
    free(x), free(y), free(r);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create_ex(3, SAM_PRECISION_FP32);
    CHECK(be && be->window_partition && be->window_unpartition_add && be->maxpool2x2_ld);
    if (!be || !be->window_partition || !be->window_unpartition_add || !be->maxpool2x2_ld) return test_finish();
    test_windows(be, 16, 16, 8, 8, 8, 0, 4, false, 1);   /* exact tiling */
    test_windows(be, 16, 16, 8, 8, 8, 1, 2, true, 2);    /* a subset of the windows */
    test_windows(be, 23, 19, 37, 7, 7, 0, 12, true, 3);  /* padding bottom and right, odd C */
    test_windows(be, 23, 19, 37, 7, 7, 5, 7, false, 4);
    test_windows(be, 64, 64, 24, 14, 14, 0, 25, true, 5); /* SAM 2's 64x64 map in 14x14 windows (padded to 70) */
    test_windows(be, 9, 9, 5, 9, 9, 0, 1, true, 6);      /* one window: the whole map */
    test_pool(be, 3, 8, 6, 5, 15, 7);                    /* windows as N, q of a packed qkv (ld = 3C) */
    test_pool(be, 1, 7, 9, 16, 16, 8);                   /* odd sizes floor */
    sam_backend_cpu_free(be);
    return test_finish();
}
