/* Bilinear resize as torch.nn.functional.interpolate(mode='bilinear',
 * align_corners=False) with and without antialias, against references
 * written here in double precision, plus values worked out by hand. */
#include "ops/cpu/cpu_internal.h" /* sam_cpu_set_scratch_max */
#include "ops/ops.h"
#include "test_util.h"

/* Plain bilinear: source index (dst + 0.5) * in/out - 0.5, clamped at 0;
 * the index is computed in float as torch does for float tensors (a double
 * index moves the taps by up to ~1e-5 px on large downscales). */
static double src_index(int in, int out, int o) {
    volatile float scale = (float)in / (float)out, t = scale * ((float)o + 0.5f); /* volatile: no FMA */
    float s = t - 0.5f;
    return s < 0 ? 0.0 : s;
}

static void ref_bilinear(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo) {
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                double sy = src_index(Hi, Ho, oy), sx = src_index(Wi, Wo, ox);
                int y0 = (int)sy, x0 = (int)sx;
                int y1 = y0 + (y0 < Hi - 1), x1 = x0 + (x0 < Wi - 1);
                double ly = sy - y0, lx = sx - x0;
                const float *p = x + (int64_t)c * Hi * Wi;
                double v = (1 - ly) * ((1 - lx) * p[y0 * Wi + x0] + lx * p[y0 * Wi + x1]) +
                           ly * ((1 - lx) * p[y1 * Wi + x0] + lx * p[y1 * Wi + x1]);
                y[((int64_t)c * Ho + oy) * Wo + ox] = (float)v;
            }
}

/* Antialiased: separable triangle filter whose support grows with the
 * downscale factor, weights normalised per output index (as PIL / torch). */
static void aa_weights(int in, int out, int o, double *w, int *lo, int *n) {
    double scale = (double)in / out, support = scale >= 1 ? scale : 1, inv = scale >= 1 ? 1 / scale : 1;
    double center = scale * (o + 0.5);
    int a = (int)fmax(center - support + 0.5, 0), b = (int)fmin(center + support + 0.5, in);
    double tot = 0;
    for (int j = a; j < b; j++) {
        double t = fabs((j - center + 0.5) * inv);
        w[j - a] = t < 1 ? 1 - t : 0;
        tot += w[j - a];
    }
    for (int j = a; j < b; j++) w[j - a] /= tot;
    *lo = a;
    *n = b - a;
}

static void ref_bilinear_aa(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo) {
    double wy[512], wx[512];
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++) {
            int ya, ny;
            aa_weights(Hi, Ho, oy, wy, &ya, &ny);
            for (int ox = 0; ox < Wo; ox++) {
                int xa, nx;
                aa_weights(Wi, Wo, ox, wx, &xa, &nx);
                double v = 0;
                for (int i = 0; i < ny; i++)
                    for (int j = 0; j < nx; j++)
                        v += wy[i] * wx[j] * x[((int64_t)c * Hi + ya + i) * Wi + xa + j];
                y[((int64_t)c * Ho + oy) * Wo + ox] = (float)v;
            }
        }
}

static void resize_case(sam_backend *be, int C, int Hi, int Wi, int Ho, int Wo, bool aa, uint64_t seed) {
    size_t nx = (size_t)C * Hi * Wi, ny = (size_t)C * Ho * Wo;
    float *x = malloc(nx * 4), *y = malloc(ny * 4), *r = malloc(ny * 4);
    test_fill_random(x, nx, seed);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    be->resize_bilinear(be, y, x, C, Hi, Wi, Ho, Wo, aa);
    if (aa)
        ref_bilinear_aa(r, x, C, Hi, Wi, Ho, Wo);
    else
        ref_bilinear(r, x, C, Hi, Wi, Ho, Wo);
    char name[96];
    snprintf(name, sizeof name, "resize %dx%dx%d -> %dx%d aa=%d", C, Hi, Wi, Ho, Wo, aa);
    CHECK_CLOSE_ARRAY(name, y, r, ny, 1e-6);
    free(x), free(y), free(r);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();
    for (int aa = 0; aa < 2; aa++) {
        resize_case(be, 2, 7, 5, 23, 17, aa, 1);    /* upscale, odd ratios */
        resize_case(be, 3, 40, 33, 9, 13, aa, 2);   /* downscale */
        resize_case(be, 1, 16, 16, 64, 64, aa, 3);  /* 4x up (low-res masks to image size) */
        resize_case(be, 1, 67, 45, 16, 16, aa, 4);  /* strong downscale */
        resize_case(be, 2, 11, 9, 11, 9, aa, 5);    /* same size: copy */
        resize_case(be, 1, 12, 30, 12, 7, aa, 6);   /* only W changes */
        resize_case(be, 1, 30, 12, 7, 12, aa, 7);   /* only H changes */
        resize_case(be, 1, 50, 9, 13, 20, aa, 8);   /* shrink H, grow W */
        resize_case(be, 1, 1, 1, 5, 3, aa, 9);
    }
    resize_case(be, 1, 1080, 1920, 64, 64, true, 10); /* a video frame's mask to 64x64: wide windows */

    /* Hand-worked: [0 1 2 3] -> 2 samples.
     * antialias: scale 2, support 2; out0 window x0..2, weights (.75,.75,.25)/1.75 -> 1.25/1.75;
     *            out1 window x1..3, weights (.25,.75,.75)/1.75 -> 4/1.75.
     * plain: src = 0.5 and 2.5 -> 0.5 and 2.5. */
    float row[4] = {0, 1, 2, 3}, o[2];
    be->resize_bilinear(be, o, row, 1, 1, 4, 1, 2, true);
    CHECK_MSG(fabsf(o[0] - 1.25f / 1.75f) < 1e-6f && fabsf(o[1] - 4.0f / 1.75f) < 1e-6f, "aa got %g %g", o[0], o[1]);
    be->resize_bilinear(be, o, row, 1, 1, 4, 1, 2, false);
    CHECK_MSG(fabsf(o[0] - 0.5f) < 1e-6f && fabsf(o[1] - 2.5f) < 1e-6f, "plain got %g %g", o[0], o[1]);
    /* Upscale 2 -> 4 plain: src = -0.25 (clamped 0), 0.25, 0.75, 1.25 -> 0, .25, .75, 1 on [0 1]. */
    float two[2] = {0, 1}, four[4];
    be->resize_bilinear(be, four, two, 1, 1, 2, 1, 4, false);
    CHECK_MSG(four[0] == 0.0f && fabsf(four[1] - 0.25f) < 1e-7f && fabsf(four[2] - 0.75f) < 1e-7f && four[3] == 1.0f,
              "got %g %g %g %g", four[0], four[1], four[2], four[3]);
    /* A constant image stays constant either way. */
    float cst[35], co[12];
    for (int i = 0; i < 35; i++) cst[i] = 0.3f;
    be->resize_bilinear(be, co, cst, 1, 5, 7, 3, 4, true);
    double worst = 0;
    for (int i = 0; i < 12; i++) worst = fmax(worst, fabs(co[i] - 0.3));
    CHECK_MSG(worst < 1e-6, "constant drifted by %g", worst);

    /* channels processed in groups when their intermediates exceed the scratch */
    sam_cpu_set_scratch_max(be, SAM_CPU_SCRATCH_INIT);
    resize_case(be, 8, 1000, 1200, 50, 600, true, 11); /* 8 x 1000 x 600 intermediate > the reserve */
    sam_backend_cpu_free(be);
    return test_finish();
}
