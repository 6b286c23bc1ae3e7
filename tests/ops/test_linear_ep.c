/* linear_ep (linear + bias + activation + residual in one pass) against naive
 * double-precision loops, on every path the table picks: OpenBLAS (wide), our
 * AVX-512 fp32 kernel (narrow, many rows), K = 0, and in bf16 mode every bf16
 * kernel path this CPU runs; residual separate, residual == y, none. */
#include "core/alloc.h"
#include "ops/cpu/bf16.h"
#include "ops/cpu/simd.h"
#include "ops/ops.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

static double gelu_d(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* in bf16 mode the reference rounds the operands as the kernels do */
static float op_round(bool bf16, float v) { return bf16 ? sam_bf16_round(v) : v; }

static void run_case(sam_backend *be, bool bf16, int M, int N, int K, bool bias, sam_act act, int res_mode,
                     uint64_t seed) {
    const size_t mn = (size_t)M * N;
    float *x = malloc(sizeof(float) * ((size_t)M * K + 1)), *w = malloc(sizeof(float) * ((size_t)N * K + 1));
    float *b = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * mn), *res = malloc(sizeof(float) * mn);
    float *want = malloc(sizeof(float) * mn);
    test_fill_random(x, (size_t)M * K, seed);
    test_fill_random(w, (size_t)N * K, seed + 1);
    test_fill_random(b, (size_t)N, seed + 2);
    test_fill_random(res, mn, seed + 3);
    for (size_t i = 0; i < mn; i++) y[i] = res_mode == 2 ? res[i] : NAN; /* fully written unless accumulated */
    const float *r = res_mode == 1 ? res : res_mode == 2 ? y : NULL;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? b[j] : 0.0;
            for (int k = 0; k < K; k++) s += (double)op_round(bf16, x[i * K + k]) * op_round(bf16, w[j * K + k]);
            if (act == SAM_ACT_GELU) s = gelu_d(s);
            if (act == SAM_ACT_RELU) s = s > 0 ? s : 0;
            if (res_mode) s += res[(size_t)i * N + j];
            want[(size_t)i * N + j] = (float)s;
        }
    be->linear_ep(be, y, x, w, bias ? b : NULL, M, N, K, act, r);
    char name[128];
    snprintf(name, sizeof name, "%s M=%d N=%d K=%d bias=%d act=%d res=%d", bf16 ? "bf16" : "fp32", M, N, K, bias,
             (int)act, res_mode);
    CHECK_CLOSE_ARRAY(name, y, want, mn, 2e-6 * (K + 8));
    free(x), free(w), free(b), free(y), free(res), free(want);
}

/* Every combination on one shape. */
static void run_shape(sam_backend *be, bool bf16, int M, int N, int K, uint64_t seed) {
    run_case(be, bf16, M, N, K, true, SAM_ACT_GELU, 0, seed);
    run_case(be, bf16, M, N, K, false, SAM_ACT_GELU, 1, seed + 10);
    run_case(be, bf16, M, N, K, true, SAM_ACT_RELU, 1, seed + 20);
    run_case(be, bf16, M, N, K, true, SAM_ACT_NONE, 1, seed + 30);
    run_case(be, bf16, M, N, K, true, SAM_ACT_NONE, 2, seed + 40);
    run_case(be, bf16, M, N, K, false, SAM_ACT_NONE, 2, seed + 50);
    run_case(be, bf16, M, N, K, true, SAM_ACT_NONE, 0, seed + 60);
}

/* The fused GELU must be the table's own gelu, bit for bit (fp32, any path). */
static void check_same_as_unfused(sam_backend *be, int M, int N, int K, uint64_t seed) {
    const size_t mn = (size_t)M * N;
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * mn), *u = malloc(sizeof(float) * mn);
    test_fill_random(x, (size_t)M * K, seed);
    test_fill_random(w, (size_t)N * K, seed + 1);
    test_fill_random(b, (size_t)N, seed + 2);
    be->linear_ep(be, y, x, w, b, M, N, K, SAM_ACT_GELU, NULL);
    be->linear(be, u, x, w, b, M, N, K);
    be->gelu(be, u, u, (int64_t)mn);
    char name[96];
    snprintf(name, sizeof name, "fused == linear+gelu M=%d N=%d K=%d", M, N, K);
    CHECK_CLOSE_ARRAY(name, y, u, mn, 0.0);
    free(x), free(w), free(b), free(y), free(u);
}

/* The bf16 mode's GELU (fast reciprocal in the erf) stays within float rounding of the exact form. */
static void check_gelu_fast(void) {
    double worst = 0, worst_exact = 0;
    for (int i = 0; i < 200000; i += SAM_VL) {
        float xs[SAM_VL], f[SAM_VL], g[SAM_VL];
        for (int j = 0; j < SAM_VL; j++) xs[j] = -12.0f + 24.0f * (float)(i + j) / 200000.0f;
        sam_vf v;
        memcpy(&v, xs, sizeof v);
        sam_vf a = sam_vgelu_fast(v), b = sam_vgelu(v);
        memcpy(f, &a, sizeof f);
        memcpy(g, &b, sizeof g);
        for (int j = 0; j < SAM_VL; j++) {
            double want = gelu_d(xs[j]), tol = 1e-6 * (1.0 + fabs(want));
            if (fabs(f[j] - want) / tol > worst) worst = fabs(f[j] - want) / tol;
            if (fabs(g[j] - want) / tol > worst_exact) worst_exact = fabs(g[j] - want) / tol;
        }
    }
    printf("gelu fast: worst error %.3g of 1e-6*(1+|gelu|) (exact form: %.3g)\n", worst, worst_exact);
    CHECK(worst <= 1.0);
}

int main(void) {
    check_gelu_fast();
    sam_backend *be = sam_backend_cpu_create_ex(3, SAM_PRECISION_FP32);
    CHECK(be != NULL && be->linear_ep != NULL);
    if (!be || !be->linear_ep) return test_finish();
    run_shape(be, false, 37, 29, 53, 1);     /* small: one thread, OpenBLAS */
    run_shape(be, false, 600, 70, 300, 2);   /* narrow, many rows: our AVX-512 kernel (row/column/k tails) */
    run_shape(be, false, 530, 700, 96, 3);   /* wide: OpenBLAS split by rows */
    run_shape(be, false, 40, 1100, 200, 4);  /* few rows: OpenBLAS split by columns */
    run_shape(be, false, 5, 7, 0, 5);        /* K = 0: act(b) + res */
    check_same_as_unfused(be, 600, 70, 300, 6);
    check_same_as_unfused(be, 530, 700, 96, 7);
    sam_backend_cpu_free(be);

    sam_backend *b16 = sam_backend_cpu_create_ex(3, SAM_PRECISION_BF16);
    CHECK(b16 != NULL);
    if (b16) {
        for (int path = sam_bf16_path(); path <= SAM_BF16_PATH_C; path++) { /* the best this CPU has, and the rest */
            sam_bf16_force_path(path);
            printf("bf16 path %d\n", path);
            run_shape(b16, true, 200, 300, 160, 100 + path);  /* large enough for the bf16 kernels */
            run_shape(b16, true, 97, 530, 70, 200 + path);    /* row, column and k tails */
        }
        sam_bf16_force_path(-1);
        sam_backend_cpu_free(b16);
    }
    return test_finish();
}
