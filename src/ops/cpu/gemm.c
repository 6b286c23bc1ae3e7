/* Matrix products through BLAS (OpenBLAS threads on its own; we call it only
 * from the calling thread, never from our pool's workers). */
#include <cblas.h>
#include <string.h>

#include "ops/cpu/cpu_internal.h"

/* Fill each of `rows` rows (stride ld) with b (n), or zeros when b is NULL. */
static void fill_rows(float *y, int64_t rows, int n, int64_t ld, const float *b) {
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * ld;
        if (b)
            memcpy(yr, b, (size_t)n * sizeof(float));
        else
            memset(yr, 0, (size_t)n * sizeof(float));
    }
}

void sam_cpu_gemm(sam_backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    (void)be;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS leaves C untouched for K == 0 only when beta == 1; be explicit. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void sam_cpu_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    (void)be;
    if (M <= 0 || N <= 0) return;
    /* Start from the bias and accumulate: one pass over y instead of two. */
    fill_rows(y, M, N, N, b);
    if (K <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 1.0f, y, N);
}
