/* The image encoder's table entries (linear_ep, window_partition,
 * window_unpartition_add, maxpool2x2_ld) on the CUDA back end against the CPU
 * back end: odd sizes, Hiera's real shapes, padding windows, in-place
 * residuals, NaN propagation. Normalised error max|gpu-cpu| / max|cpu| with
 * stated tolerances (fp32: 1e-5 for products, 1e-6 / exact for the rest;
 * bf16 mode 2e-2 against fp32). Exits 77 without a usable CUDA device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "ops/ops.h"
#include "cuda_test_util.h"
#include "test_util.h"

static sam_backend *cpu, *gpu;

static float *dcopy(sam_backend *g, const float *h, size_t n) {
    float *d = sam_cuda_malloc(g, (n ? n : 1) * sizeof(float));
    if (!d) {
        fprintf(stderr, "FATAL: sam_cuda_malloc: %s\n", sam2d_last_error());
        exit(1);
    }
    if (n) CHECK(sam_cuda_upload(g, d, h, n * sizeof(float)) == SAM2D_OK);
    return d;
}

static void fetch(sam_backend *g, float *h, const float *d, size_t n) {
    CHECK(sam_cuda_download(g, h, d, n * sizeof(float)) == SAM2D_OK);
    CHECK_MSG(sam_cuda_sync(g) == SAM2D_OK, "%s", sam_cuda_error_message(g));
}

static void check_norm(const char *name, const float *got, const float *want, size_t n, double tol) {
    double md = 0, mw = 0;
    size_t where = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) && isnan(want[i])) d = 0; /* NaN where the CPU has NaN: as wanted */
        if (d != d) d = INFINITY;
        if (d > md) md = d, where = i;
        if (fabs((double)want[i]) > mw) mw = fabs((double)want[i]);
    }
    double e = md == 0 ? 0 : md / (mw > 1e-30 ? mw : 1e-30);
    printf("%-64s norm err %.3g (tol %.0e)\n", name, e, tol);
    CHECK_MSG(e <= tol, "%s: %.3g > %.0e at %zu (gpu %g cpu %g)", name, e, tol, where, (double)got[where],
              (double)want[where]);
}

static void linear_ep_case(sam_backend *g, int M, int N, int K, bool bias, sam_act act, int res_mode, double tol) {
    /* res_mode 0: none, 1: separate residual, 2: residual == y (act none) */
    size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
    float *x = hrand(nx, 1, 1), *w = hrand(nw, 2, 0.1f), *b = hrand(N, 3, 1), *r = hrand(ny, 4, 1);
    float *want = malloc(ny * 4), *got = malloc(ny * 4);
    memcpy(want, r, ny * 4);
    cpu->linear_ep(cpu, want, x, w, bias ? b : NULL, M, N, K, act, res_mode == 1 ? r : res_mode == 2 ? want : NULL);
    float *dx = dcopy(g, x, nx), *dw = dcopy(g, w, nw), *db = dcopy(g, b, N), *dr = dcopy(g, r, ny);
    float *dy = dcopy(g, r, ny);
    g->linear_ep(g, dy, dx, dw, bias ? db : NULL, M, N, K, act, res_mode == 1 ? dr : res_mode == 2 ? dy : NULL);
    fetch(g, got, dy, ny);
    char name[160];
    snprintf(name, sizeof name, "%s linear_ep M=%d N=%d K=%d bias=%d act=%d res=%d", sam_precision_name(g->precision),
             M, N, K, bias, (int)act, res_mode);
    check_norm(name, got, want, ny, tol);
    sam_cuda_free(g, dx), sam_cuda_free(g, dw), sam_cuda_free(g, db), sam_cuda_free(g, dr), sam_cuda_free(g, dy);
    free(x), free(w), free(b), free(r), free(want), free(got);
}

static void partition_case(int H, int W, int C, int wh, int ww, int w0, int nwin, bool norm, bool affine) {
    size_t nx = (size_t)H * W * C, ny = (size_t)nwin * wh * ww * C;
    float *x = hrand(nx, 11, 2), *g = hrand(C, 12, 1), *b = hrand(C, 13, 1);
    float *want = malloc(ny * 4), *got = malloc(ny * 4);
    for (size_t i = 0; i < ny; i++) want[i] = got[i] = NAN;
    cpu->window_partition(cpu, want, x, H, W, C, wh, ww, w0, nwin, norm, affine ? g : NULL, affine ? b : NULL, 1e-6f);
    float *dx = dcopy(gpu, x, nx), *dg = dcopy(gpu, g, C), *db = dcopy(gpu, b, C), *dy = dcopy(gpu, got, ny);
    gpu->window_partition(gpu, dy, dx, H, W, C, wh, ww, w0, nwin, norm, affine ? dg : NULL, affine ? db : NULL, 1e-6f);
    fetch(gpu, got, dy, ny);
    char name[160];
    snprintf(name, sizeof name, "window_partition %dx%dx%d win %dx%d [%d,+%d) norm=%d affine=%d", H, W, C, wh, ww, w0,
             nwin, norm, affine);
    check_norm(name, got, want, ny, norm ? 1e-5 : 0);
    /* the reverse, accumulating onto a random map */
    float *m = hrand(nx, 14, 1), *mwant = malloc(nx * 4), *mgot = malloc(nx * 4);
    memcpy(mwant, m, nx * 4);
    cpu->window_unpartition_add(cpu, mwant, want, H, W, C, wh, ww, w0, nwin);
    float *dm = dcopy(gpu, m, nx);
    gpu->window_unpartition_add(gpu, dm, dy, H, W, C, wh, ww, w0, nwin);
    fetch(gpu, mgot, dm, nx);
    snprintf(name, sizeof name, "window_unpartition_add %dx%dx%d win %dx%d [%d,+%d)", H, W, C, wh, ww, w0, nwin);
    check_norm(name, mgot, mwant, nx, norm ? 1e-5 : 0);
    sam_cuda_free(gpu, dx), sam_cuda_free(gpu, dg), sam_cuda_free(gpu, db), sam_cuda_free(gpu, dy),
        sam_cuda_free(gpu, dm);
    free(x), free(g), free(b), free(want), free(got), free(m), free(mwant), free(mgot);
}

static void maxpool_ld_case(int N, int H, int W, int C, int64_t ldx, bool nans) {
    size_t nx = (size_t)N * H * W * ldx, ny = (size_t)N * (H / 2) * (W / 2) * C;
    float *x = hrand(nx, 21, 1), *want = malloc(ny * 4), *got = malloc(ny * 4);
    if (nans)
        for (size_t i = 0; i < nx; i += 97) x[i] = NAN;
    cpu->maxpool2x2_ld(cpu, want, x, N, H, W, C, ldx);
    float *dx = dcopy(gpu, x, nx), *dy = dcopy(gpu, want, ny);
    gpu->maxpool2x2_ld(gpu, dy, dx, N, H, W, C, ldx);
    fetch(gpu, got, dy, ny);
    size_t mism = 0;
    for (size_t i = 0; i < ny; i++) mism += isnan(got[i]) != isnan(want[i]);
    char name[128];
    snprintf(name, sizeof name, "maxpool2x2_ld %dx%dx%dx%d ldx=%lld nans=%d", N, H, W, C, (long long)ldx, nans);
    CHECK_MSG(mism == 0, "%s: %zu NaN positions differ", name, mism);
    check_norm(name, got, want, ny, 0);
    sam_cuda_free(gpu, dx), sam_cuda_free(gpu, dy);
    free(x), free(want), free(got);
}

int main(void) {
    if (!cuda_test_gpu_present()) return 77;
    cpu = sam_backend_cpu_create_ex(0, SAM_PRECISION_FP32);
    gpu = sam_backend_cuda_create(0, SAM_PRECISION_FP32);
    sam_backend *gpu16 = sam_backend_cuda_create(0, SAM_PRECISION_BF16);
    if (!cpu || !gpu || !gpu16) {
        fprintf(stderr, "FATAL: back end creation failed: %s\n", sam2d_last_error());
        return 1;
    }
    const sam_act acts[3] = {SAM_ACT_NONE, SAM_ACT_GELU, SAM_ACT_RELU};
    for (int a = 0; a < 3; a++)
        for (int rm = 0; rm < 2; rm++) linear_ep_case(gpu, 37, 53, 71, a != 1, acts[a], rm, 1e-5);
    linear_ep_case(gpu, 41, 29, 19, true, SAM_ACT_NONE, 2, 1e-5);
    linear_ep_case(gpu, 4096, 576, 144, true, SAM_ACT_GELU, 0, 1e-5); /* Hiera MLP up */
    linear_ep_case(gpu, 4096, 144, 576, true, SAM_ACT_NONE, 2, 1e-5); /* MLP down onto the residual */
    linear_ep_case(gpu, 6, 5, 0, true, SAM_ACT_RELU, 1, 1e-6);        /* K = 0 */
    linear_ep_case(gpu16, 4096, 576, 144, true, SAM_ACT_GELU, 1, 2e-2);
    linear_ep_case(gpu16, 4096, 144, 576, true, SAM_ACT_NONE, 2, 2e-2);

    partition_case(64, 64, 96, 8, 8, 0, 64, false, false);   /* Hiera-T stage 1 at 256 px: whole grid */
    partition_case(64, 64, 96, 8, 8, 0, 64, true, true);
    partition_case(37, 45, 40, 8, 8, 3, 20, true, true);     /* padding at the bottom/right */
    partition_case(37, 45, 40, 14, 14, 0, 12, true, false);  /* 14x14 windows (stage 3) */
    partition_case(5, 7, 33, 8, 8, 0, 1, false, true);       /* one window larger than the map */
    partition_case(64, 64, 33, 8, 8, 60, 4, true, true);     /* the last windows only */

    maxpool_ld_case(1, 64, 64, 96, 3 * 96, false); /* q of a packed qkv */
    maxpool_ld_case(2, 33, 47, 19, 19, true);
    maxpool_ld_case(1, 16, 16, 8, 24, true);

    sam_backend_cuda_free(gpu16);
    sam_backend_cuda_free(gpu);
    sam_backend_cpu_free(cpu);
    return test_finish();
}
