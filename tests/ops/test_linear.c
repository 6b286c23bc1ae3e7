/* linear and gemm against naive double-precision loops, odd sizes. */
#include "core/alloc.h"
#include "sam2d/sam2d.h"
#include "ops/ops.h"
#include "test_util.h"

static void ref_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int64_t lda, const float *B,
                     int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(int64_t)k * lda + i] : A[(int64_t)i * lda + k];
                double b = tb ? B[(int64_t)j * ldb + k] : B[(int64_t)k * ldb + j];
                s += a * b;
            }
            C[(int64_t)i * ldc + j] = (float)(alpha * s + (beta == 0 ? 0.0 : beta * C[(int64_t)i * ldc + j]));
        }
}

static void test_linear_case(sam_backend *be, int M, int N, int K, bool bias, uint64_t seed) {
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N);
    test_fill_random(x, (size_t)M * K, seed);
    test_fill_random(w, (size_t)N * K, seed + 1);
    test_fill_random(b, (size_t)N, seed + 2);
    for (int i = 0; i < M * N; i++) y[i] = NAN; /* output must be fully written */
    be->linear(be, y, x, w, bias ? b : NULL, M, N, K);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? b[j] : 0.0;
            for (int k = 0; k < K; k++) s += (double)x[i * K + k] * w[j * K + k];
            r[i * N + j] = (float)s;
        }
    char name[96];
    snprintf(name, sizeof name, "linear M=%d N=%d K=%d bias=%d", M, N, K, bias);
    CHECK_CLOSE_ARRAY(name, y, r, (size_t)M * N, 1e-4 * (1 + K / 64.0));
    free(x), free(w), free(b), free(y), free(r);
}

static void test_gemm_case(sam_backend *be, bool ta, bool tb, int M, int N, int K, float alpha, float beta,
                           uint64_t seed) {
    /* padded strides: the kernel must honour lda/ldb/ldc */
    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    int64_t arows = ta ? K : M, brows = tb ? N : K;
    float *A = malloc(sizeof(float) * arows * lda), *B = malloc(sizeof(float) * brows * ldb);
    float *C = malloc(sizeof(float) * M * ldc), *R = malloc(sizeof(float) * M * ldc);
    test_fill_random(A, (size_t)(arows * lda), seed);
    test_fill_random(B, (size_t)(brows * ldb), seed + 1);
    test_fill_random(C, (size_t)(M * ldc), seed + 2);
    memcpy(R, C, sizeof(float) * M * ldc);
    be->gemm(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    char name[96];
    snprintf(name, sizeof name, "gemm ta=%d tb=%d %dx%dx%d a=%.1f b=%.1f", ta, tb, M, N, K, alpha, beta);
    CHECK_CLOSE_ARRAY(name, C, R, (size_t)(M * ldc), 2e-4); /* padding columns must stay untouched too */
    free(A), free(B), free(C), free(R);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();
    CHECK(be->name && strcmp(be->name, "cpu") == 0);
    test_linear_case(be, 37, 29, 53, true, 1);
    test_linear_case(be, 37, 29, 53, false, 2);
    test_linear_case(be, 1, 7, 3, true, 3);
    test_linear_case(be, 257, 65, 129, true, 4);
    test_linear_case(be, 5, 3, 1, true, 5);
    /* narrow layers with many rows: our AVX-512 kernel (row, column and k tails) */
    test_linear_case(be, 613, 70, 300, true, 6);
    test_linear_case(be, 512, 33, 7, false, 7);
    test_linear_case(be, 530, 576, 384, true, 8);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_gemm_case(be, ta, tb, 19, 23, 31, 1.0f, 0.0f, 10 + ta * 2 + tb);
            test_gemm_case(be, ta, tb, 33, 7, 65, 0.5f, 1.0f, 20 + ta * 2 + tb);
            test_gemm_case(be, ta, tb, 3, 41, 9, -1.5f, 0.25f, 30 + ta * 2 + tb);
        }
    /* big enough to be split over the pool: by rows, and by columns when M is small */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_gemm_case(be, ta, tb, 200, 50, 101, 1.0f, 0.5f, 50 + ta * 2 + tb);
            test_gemm_case(be, ta, tb, 5, 700, 300, 0.5f, 0.0f, 60 + ta * 2 + tb);
        }
    test_linear_case(be, 3, 1500, 256, true, 70); /* linear split by columns */
    /* K == 0: y = beta * C (or 0) */
    test_gemm_case(be, false, false, 4, 5, 0, 1.0f, 0.5f, 40);
    sam_backend_cpu_free(be);
    CHECK(sam2d_memory_used() == 0); /* create/free is balanced */
    return test_finish();
}
