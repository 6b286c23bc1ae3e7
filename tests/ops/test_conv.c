/* conv2d (stride, padding, groups, depthwise) and the 2x2 transposed conv
 * against naive double-precision loops on channels-last data, odd sizes. */
#include "ops/cpu/cpu_internal.h" /* sam_cpu_set_scratch_max: exercise the fallbacks */
#include "ops/ops.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

static void ref_conv(float *y, const float *x, const float *w, const float *b, const sam_conv2d_params *p) {
    int Ho = sam_conv_out(p->H, p->kh, p->stride_h, p->pad_h), Wo = sam_conv_out(p->W, p->kw, p->stride_w, p->pad_w);
    int Cg = p->C_in / p->groups, Cog = p->C_out / p->groups;
    for (int n = 0; n < p->N; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int co = 0; co < p->C_out; co++) {
                    int g = co / Cog;
                    double s = b ? b[co] : 0.0;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int ky = 0; ky < p->kh; ky++)
                            for (int kx = 0; kx < p->kw; kx++) {
                                int iy = oy * p->stride_h - p->pad_h + ky, ix = ox * p->stride_w - p->pad_w + kx;
                                if (iy < 0 || iy >= p->H || ix < 0 || ix >= p->W) continue;
                                s += (double)x[(((int64_t)n * p->H + iy) * p->W + ix) * p->C_in + g * Cg + ci] *
                                     w[(((int64_t)co * Cg + ci) * p->kh + ky) * p->kw + kx];
                            }
                    y[(((int64_t)n * Ho + oy) * Wo + ox) * p->C_out + co] = (float)s;
                }
}

/* wscale multiplies the random weights (1/sqrt(fan-in) keeps outputs O(1), as in a trained net). */
static void conv_case_w(sam_backend *be, int N, int H, int W, int Cin, int Cout, int kh, int kw, int sh, int sw,
                        int ph, int pw, int groups, bool bias, uint64_t seed, float wscale) {
    sam_conv2d_params p = {N, H, W, Cin, Cout, kh, kw, sh, sw, ph, pw, groups};
    int Ho = sam_conv_out(H, kh, sh, ph), Wo = sam_conv_out(W, kw, sw, pw);
    size_t nx = (size_t)N * H * W * Cin, nw = (size_t)Cout * (Cin / groups) * kh * kw, ny = (size_t)N * Ho * Wo * Cout;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)Cout * 4), *y = malloc(ny * 4),
          *r = malloc(ny * 4);
    test_fill_random(x, nx, seed);
    test_fill_random(w, nw, seed + 1);
    for (size_t i = 0; i < nw; i++) w[i] *= wscale;
    test_fill_random(b, (size_t)Cout, seed + 2);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    be->conv2d(be, y, x, w, bias ? b : NULL, &p);
    ref_conv(r, x, w, bias ? b : NULL, &p);
    char name[128];
    snprintf(name, sizeof name, "conv %dx%dx%dx%d->%d k%dx%d s%d,%d p%d,%d g%d b%d", N, H, W, Cin, Cout, kh, kw, sh,
             sw, ph, pw, groups, bias);
    int K = (Cin / groups) * kh * kw;
    CHECK_CLOSE_ARRAY(name, y, r, ny, 1e-6 * (2 + K / 40.0)); /* float rounding grows with the reduction length */
    free(x), free(w), free(b), free(y), free(r);
}

static void conv_case(sam_backend *be, int N, int H, int W, int Cin, int Cout, int kh, int kw, int sh, int sw, int ph,
                      int pw, int groups, bool bias, uint64_t seed) {
    conv_case_w(be, N, H, W, Cin, Cout, kh, kw, sh, sw, ph, pw, groups, bias, seed, 1.0f);
}

/* Weights at 1/sqrt(fan-in). */
static void conv_case_n(sam_backend *be, int N, int H, int W, int Cin, int Cout, int kh, int kw, int sh, int sw,
                        int ph, int pw, bool bias, uint64_t seed) {
    conv_case_w(be, N, H, W, Cin, Cout, kh, kw, sh, sw, ph, pw, 1, bias, seed, 1.0f / sqrtf((float)(Cin * kh * kw)));
}

static void convt_case(sam_backend *be, int N, int H, int W, int Cin, int Cout, bool bias, uint64_t seed) {
    size_t nx = (size_t)N * H * W * Cin, nw = (size_t)Cin * Cout * 4, ny = (size_t)N * 2 * H * 2 * W * Cout;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)Cout * 4), *y = malloc(ny * 4),
          *r = malloc(ny * 4);
    test_fill_random(x, nx, seed);
    test_fill_random(w, nw, seed + 1);
    test_fill_random(b, (size_t)Cout, seed + 2);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    be->conv_transpose2x2(be, y, x, w, bias ? b : NULL, N, H, W, Cin, Cout);
    /* y[n, 2i+dy, 2j+dx, co] = b[co] + sum_ci x[n,i,j,ci] w[ci,co,dy,dx] (kernel 2 == stride 2: no overlap) */
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < 2 * H; oy++)
            for (int ox = 0; ox < 2 * W; ox++)
                for (int co = 0; co < Cout; co++) {
                    int i = oy / 2, j = ox / 2, dy = oy % 2, dx = ox % 2;
                    double s = bias ? b[co] : 0.0;
                    for (int ci = 0; ci < Cin; ci++)
                        s += (double)x[(((int64_t)n * H + i) * W + j) * Cin + ci] * w[(((int64_t)ci * Cout + co) * 2 + dy) * 2 + dx];
                    r[(((int64_t)n * 2 * H + oy) * 2 * W + ox) * Cout + co] = (float)s;
                }
    char name[128];
    snprintf(name, sizeof name, "conv_transpose2x2 %dx%dx%dx%d->%d b%d", N, H, W, Cin, Cout, bias);
    CHECK_CLOSE_ARRAY(name, y, r, ny, 1e-6 * (2 + Cin / 40.0));
    free(x), free(w), free(b), free(y), free(r);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();
    /* N  H   W  Cin Cout kh kw sh sw ph pw g bias */
    conv_case(be, 2, 5, 7, 13, 11, 1, 1, 1, 1, 0, 0, 1, true, 1);    /* 1x1: one GEMM */
    conv_case(be, 1, 6, 3, 5, 4, 1, 1, 1, 1, 0, 0, 1, false, 2);
    conv_case(be, 2, 9, 11, 5, 7, 3, 3, 1, 1, 1, 1, 1, true, 3);     /* 3x3 same */
    conv_case(be, 1, 13, 10, 4, 16, 3, 3, 2, 2, 1, 1, 1, true, 4);   /* mask downsampler style */
    conv_case(be, 1, 23, 21, 3, 8, 7, 7, 4, 4, 3, 3, 1, true, 5);    /* Hiera patch embed style */
    conv_case(be, 2, 10, 6, 3, 5, 2, 2, 2, 2, 0, 0, 1, true, 6);     /* 2x2 stride 2 */
    conv_case(be, 1, 9, 7, 6, 4, 3, 3, 1, 1, 1, 1, 2, true, 7);      /* grouped */
    conv_case(be, 1, 8, 9, 9, 6, 3, 1, 1, 2, 1, 0, 3, false, 8);     /* grouped, rectangular kernel */
    conv_case(be, 2, 9, 9, 19, 19, 7, 7, 1, 1, 3, 3, 19, true, 9);   /* depthwise 7x7 (CXBlock) */
    conv_case(be, 1, 11, 8, 5, 5, 3, 3, 2, 2, 1, 1, 5, false, 10);   /* depthwise strided */
    conv_case(be, 1, 7, 7, 6, 5, 1, 1, 2, 2, 0, 0, 1, true, 11);     /* 1x1 strided: general path */
    conv_case(be, 1, 5, 6, 4, 3, 3, 3, 1, 1, 2, 0, 1, true, 12);     /* asymmetric padding */
    conv_case(be, 1, 40, 40, 512, 3, 3, 3, 1, 1, 1, 1, 1, true, 13); /* several im2col blocks */
    /* output channels a multiple of the vector width, short reductions: the row kernel */
    conv_case_n(be, 1, 37, 29, 3, 144, 7, 7, 4, 4, 3, 3, true, 14); /* Hiera patch embed (large) */
    conv_case_n(be, 2, 18, 21, 3, 48, 7, 7, 4, 4, 3, 3, false, 15); /* a half panel of channels left */
    conv_case_n(be, 1, 13, 17, 4, 16, 3, 3, 2, 2, 1, 1, true, 16);  /* mask downsampler 4 -> 16 */
    conv_case_n(be, 1, 9, 11, 64, 256, 3, 3, 2, 2, 1, 1, true, 17); /* mask downsampler 64 -> 256 */
    conv_case_n(be, 1, 3, 2, 5, 32, 7, 7, 1, 1, 3, 3, true, 18);    /* kernel wider than the image */
    conv_case_n(be, 1, 6, 7, 3, 32, 3, 5, 1, 2, 2, 0, false, 19);   /* rectangular, asymmetric padding */
    conv_case_n(be, 3, 5, 40, 2, 16, 2, 2, 2, 2, 0, 0, true, 23);   /* 2x2 stride 2, many pixels per row */
    convt_case(be, 2, 5, 3, 7, 6, true, 20);
    convt_case(be, 1, 4, 7, 16, 5, false, 21);
    convt_case(be, 1, 40, 40, 3, 512, true, 22); /* several GEMM blocks */
    sam_backend_cpu_free(be);

    /* Scratch that may not grow past its initial reserve: convs whose packed
     * weights alone exceed it must still be right (direct-loop fallbacks). */
    be = sam_backend_cpu_create(2);
    CHECK(be != NULL);
    if (!be) return test_finish();
    sam_cpu_set_scratch_max(be, SAM_CPU_SCRATCH_INIT);
    conv_case(be, 1, 2, 2, 512, 520, 3, 3, 1, 1, 1, 1, 1, true, 30); /* 520*512*9 floats > the reserve */
    convt_case(be, 1, 2, 3, 768, 720, true, 31);                       /* 768*720*4 floats > the reserve */
    sam_backend_cpu_free(be);
    return test_finish();
}
