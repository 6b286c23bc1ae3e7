/* Matrix products through BLAS. OpenBLAS is switched to one thread when the
 * back end is created and our pool splits the work instead (rows of C, or
 * columns when there are few rows): one set of threads, no oversubscription,
 * and no OpenBLAS threads spinning while our own kernels run. */
#include <cblas.h>
#include <string.h>

#include "ops/cpu/bf16.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/gemm_f32.h"

/* Below this many multiply-adds a product runs on the calling thread. */
#define GEMM_PAR_MIN ((int64_t)1 << 18)

typedef struct {
    bool ta, tb;
    int M, N, K;
    float alpha, beta;
    const float *A, *B; /* stored (M, K) / (K, M) and (K, N) / (N, K) as the flags say */
    float *C;           /* (M, N) at row stride ldc */
    int64_t lda, ldb, ldc;
    bool split_cols;
    const float *bias;  /* (N) added to the rows of C after the product, or NULL */
    sam_act act;        /* then applied (linear_ep) */
    const float *res;   /* (M, N) at ldc then added, or NULL (never C itself: that is beta = 1) */
} gemm_ctx;

/* C rows [r0, r1), columns [c0, c1) = act(C + bias) + res, while they are still in cache. */
static void add_bias(const gemm_ctx *c, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (!c->bias && c->act == SAM_ACT_NONE && !c->res) return;
    if (c->act == SAM_ACT_NONE && !c->res) { /* plain bias: the loop the compiler vectorises well */
        for (int64_t r = r0; r < r1; r++) {
            float *y = c->C + r * c->ldc;
            for (int64_t j = c0; j < c1; j++) y[j] += c->bias[j];
        }
        return;
    }
    float *y = c->C + r0 * c->ldc + c0;
    sam_cpu_ep_apply(y, c->ldc, y, c->ldc, (int)(r1 - r0), (int)(c1 - c0), c->bias ? c->bias + c0 : NULL, c->act,
                     c->res ? c->res + r0 * c->ldc + c0 : NULL, c->ldc);
}

static void gemm_part(void *vctx, int64_t b, int64_t e, int tid) {
    (void)tid;
    const gemm_ctx *c = vctx;
    if (!c->split_cols) { /* rows [b, e) of C: rows of op(A) */
        const float *A = c->ta ? c->A + b : c->A + b * c->lda;
        cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, (int)(e - b),
                    c->N, c->K, c->alpha, A, (blasint)c->lda, c->B, (blasint)c->ldb, c->beta, c->C + b * c->ldc,
                    (blasint)c->ldc);
        add_bias(c, b, e, 0, c->N);
    } else { /* columns [b, e) of C: columns of op(B) */
        const float *B = c->tb ? c->B + b * c->ldb : c->B + b;
        cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, c->M,
                    (int)(e - b), c->K, c->alpha, c->A, (blasint)c->lda, B, (blasint)c->ldb, c->beta, c->C + b,
                    (blasint)c->ldc);
        add_bias(c, 0, c->M, b, e);
    }
}

static void sgemm_par(sam_backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                      const sam_cpu_ep *ep) {
    gemm_ctx c = {ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, false, bias, SAM_ACT_NONE, NULL};
    if (ep) {
        c.act = ep->act;
        c.res = ep->res;
        if (c.res == C) { /* y += ...: BLAS accumulates into C (only without an activation) */
            c.beta = 1.0f;
            c.res = NULL;
        }
    }
    const int nt = sam_cpu_threads(be);
    if (nt <= 1 || (int64_t)M * N * K < GEMM_PAR_MIN) {
        gemm_part(&c, 0, M, 0);
        return;
    }
    /* Each part packs its own share of the other operand: keep parts at
     * least 32 rows (or 64 columns) so that stays small next to the work. */
    if (M >= 32 * nt || M >= N) {
        /* Each part re-packs all of op(B) (the weights of a linear layer); with
         * many rows, parts of >= 256 rows (two per thread) keep that small
         * (at 32 rows it was 10% of the large encoder); with fewer, one part
         * per thread (the encoder's 512-row MLP chunks: ~20% faster than 64-row parts). */
        int64_t part = (M + nt - 1) / nt > 32 ? (M + nt - 1) / nt : 32;
        if (M >= 512 * nt) part = M / (2 * nt) > 256 ? M / (2 * nt) : 256; /* two parts per thread for balance */
        sam_parallel_for(be->pool, M, part, gemm_part, &c);
    } else {
        c.split_cols = true;
        sam_parallel_for(be->pool, N, 64, gemm_part, &c);
    }
}

void sam_cpu_gemm(sam_backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS leaves C untouched for K == 0 only when beta == 1; be explicit. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    sgemm_par(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, NULL);
}

static void linear_impl(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                        const sam_cpu_ep *ep) {
    if (M <= 0 || N <= 0) return;
    /* bf16 mode: the big products only (small ones gain nothing and lose accuracy). */
    if (be->precision == SAM_PRECISION_BF16 && K > 0 && (int64_t)M * N * K >= GEMM_PAR_MIN &&
        sam_cpu_linear_bf16_ep(be, y, x, w, b, M, N, K, ep))
        return;
    /* Narrow layers (the Hiera encoder's first stages, 1x1 convs of the neck):
     * our AVX-512 kernel reads x in place and beats OpenBLAS's packing there
     * (~1.5x at K = 96); wide ones stay with OpenBLAS, which is as fast. */
#if defined(__OPTIMIZE__) /* unoptimised (Debug/sanitizer) builds keep OpenBLAS: the intrinsics crawl at -O0 */
    if (K > 0 && K <= 384 && N <= 576 && M >= 512 && sam_cpu_linear_f32_ep(be, y, x, w, b, M, N, K, ep)) return;
#endif
    if (K <= 0) { /* y = act(b) + res; act(0) is 0 for every activation */
        const sam_act act = ep ? ep->act : SAM_ACT_NONE;
        for (int64_t r = 0; r < M; r++) {
            float *yr = y + r * N;
            const float *res = ep && ep->res ? ep->res + r * N : NULL;
            if (b)
                sam_cpu_ep_apply(yr, N, b, N, 1, N, NULL, act, res, N);
            else if (!res)
                memset(yr, 0, (size_t)N * sizeof(float));
            else if (res != yr)
                memcpy(yr, res, (size_t)N * sizeof(float));
        }
        return;
    }
    /* The bias (and the epilogue) is applied by each part right after its
     * product, while its rows are in cache (filling y with it first cost a
     * full pass over y). */
    sgemm_par(be, false, true, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N, b, ep);
}

void sam_cpu_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    linear_impl(be, y, x, w, b, M, N, K, NULL);
}

void sam_cpu_linear_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                       sam_act act, const float *residual) {
    const sam_cpu_ep ep = {act, residual};
    linear_impl(be, y, x, w, b, M, N, K, sam_cpu_ep_none(&ep) ? NULL : &ep);
}
