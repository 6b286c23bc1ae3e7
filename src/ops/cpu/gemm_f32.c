/* fp32 Linear layers with our own AVX-512 kernel: y = x . w^T + b.
 *
 * w is packed once (linear_prepare) into panels of 32 output columns,
 * (K, 32) each, so the kernel streams it with two aligned loads per k; x is
 * read in place (12 rows broadcast per k), so nothing of the activations is
 * copied. 12 x 32 outputs live in 24 of the 32 vector registers; K is cut in
 * blocks of KC so a panel slice (KC x 32 floats = 32 KiB) stays in L1 while
 * the row groups of a work item pass over it. */
#include <immintrin.h>
#include <string.h>

#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/gemm_f32.h"

#define NR 32
#define MR 12
#define KC 128
#define MC 96 /* rows per work item */
#define NC 256 /* columns per work item */

#define TGT_F __attribute__((target("avx512f,avx512bw,avx512vl")))

bool sam_f32_kernel_available(void) {
    static int v = -1; /* benign race: every thread computes the same answer */
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl");
    }
    return v;
}

size_t sam_f32_packed_floats(int N, int K) { return (size_t)((N + NR - 1) / NR) * K * NR; }

void sam_f32_pack_panel(float *wp, const float *w, int N, int K, int p) {
    float *d = wp + (size_t)p * K * NR;
    const int n0 = p * NR, nc = N - n0 < NR ? N - n0 : NR;
    for (int k = 0; k < K; k++) {
        float *r = d + (size_t)k * NR;
        for (int j = 0; j < nc; j++) r[j] = w[(size_t)(n0 + j) * K + k];
        for (int j = nc; j < NR; j++) r[j] = 0.0f;
    }
}

/* C(mr, ncols) (=|+=) A(mr, kc) . B(kc, 32); init: start from bias (or 0). */
static TGT_F inline __attribute__((always_inline)) void micro(const int mr, int kc, const float *A, int64_t lda,
                                                              const float *B, float *C, int64_t ldc, int ncols,
                                                              const float *bias, bool init) {
    __m512 c0[MR], c1[MR];
    const __mmask16 m0 = ncols >= 16 ? 0xffff : (__mmask16)((1u << ncols) - 1);
    const __mmask16 m1 = ncols >= 32 ? 0xffff : ncols <= 16 ? 0 : (__mmask16)((1u << (ncols - 16)) - 1);
    for (int r = 0; r < mr; r++) {
        if (init) {
            c0[r] = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
            c1[r] = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
        } else {
            c0[r] = _mm512_maskz_loadu_ps(m0, C + r * ldc);
            c1[r] = _mm512_maskz_loadu_ps(m1, C + r * ldc + 16);
        }
    }
    for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(B + (int64_t)k * NR), b1 = _mm512_load_ps(B + (int64_t)k * NR + 16);
        for (int r = 0; r < mr; r++) {
            const __m512 a = _mm512_set1_ps(A[r * lda + k]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
        if (m1) _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
    }
}

static TGT_F void block(int M, int kc, const float *A, int64_t lda, const float *B, float *C, int64_t ldc, int ncols,
                        const float *bias, bool init) {
    for (int i = 0; i < M; i += MR) {
        const float *a = A + (int64_t)i * lda;
        float *c = C + (int64_t)i * ldc;
        switch (M - i < MR ? M - i : MR) {
        case 12: micro(12, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 11: micro(11, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 10: micro(10, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 9: micro(9, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 8: micro(8, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 7: micro(7, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 6: micro(6, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 5: micro(5, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 4: micro(4, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 3: micro(3, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        case 2: micro(2, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        default: micro(1, kc, a, lda, B, c, ldc, ncols, bias, init); break;
        }
    }
}

typedef struct {
    float *y;        /* (M, N) */
    const float *x;  /* (M, K) */
    const float *wp; /* packed panels */
    const float *b;  /* (N) or NULL */
    int M, N, K, npanels, nnb;
    const sam_cpu_ep *ep; /* epilogue or NULL */
    float *tbuf;     /* per thread (MC, NC): the residual tile when it is y itself */
} lf_ctx;

static void lf_items(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_ctx *c = vc;
    for (int64_t it = i0; it < i1; it++) {
        const int mb = (int)(it / c->nnb), nb = (int)(it % c->nnb);
        const int m0 = mb * MC, mr = c->M - m0 < MC ? c->M - m0 : MC;
        const int p0 = nb * (NC / NR), p1 = p0 + NC / NR < c->npanels ? p0 + NC / NR : c->npanels;
        /* The residual of this item: y accumulates over k blocks, so a residual
         * that is y itself is saved first. */
        const float *res = NULL;
        int64_t ldr = c->N;
        if (c->ep && c->ep->res) {
            const int n0 = p0 * NR, n1 = p1 * NR < c->N ? p1 * NR : c->N;
            res = c->ep->res + (int64_t)m0 * c->N + n0;
            if (res == c->y + (int64_t)m0 * c->N + n0) {
                float *t = c->tbuf + (size_t)tid * MC * NC;
                for (int r = 0; r < mr; r++)
                    memcpy(t + (size_t)r * NC, res + (int64_t)r * c->N, sizeof(float) * (size_t)(n1 - n0));
                res = t;
                ldr = NC;
            }
        }
        for (int k0 = 0; k0 < c->K; k0 += KC) {
            const int kc = c->K - k0 < KC ? c->K - k0 : KC;
            for (int p = p0; p < p1; p++) {
                const int n0 = p * NR, ncols = c->N - n0 < NR ? c->N - n0 : NR;
                float *yt = c->y + (int64_t)m0 * c->N + n0;
                block(mr, kc, c->x + (int64_t)m0 * c->K + k0, c->K, c->wp + ((int64_t)p * c->K + k0) * NR, yt, c->N,
                      ncols, c->b ? c->b + n0 : NULL, k0 == 0);
                if (c->ep && k0 + kc >= c->K) /* the panel is final and in L1 */
                    sam_cpu_ep_apply(yt, c->N, yt, c->N, mr, ncols, NULL, c->ep->act,
                                     res ? res + (n0 - p0 * NR) : NULL, ldr);
            }
        }
    }
}

static void linear_packed(sam_backend *be, float *y, const float *x, const float *wp, const float *b, int M, int N,
                          int K, const sam_cpu_ep *ep, float *tbuf) {
    lf_ctx c = {y, x, wp, b, M, N, K, (N + NR - 1) / NR, (N + NC - 1) / NC, ep, tbuf};
    sam_parallel_for(be->pool, (int64_t)((M + MC - 1) / MC) * c.nnb, 1, lf_items, &c);
}

void sam_cpu_linear_f32_packed(sam_backend *be, float *y, const float *x, const float *wp, const float *b, int M, int N,
                               int K) {
    linear_packed(be, y, x, wp, b, M, N, K, NULL, NULL);
}

typedef struct {
    float *wp;
    const float *w;
    int N, K;
} lfp_ctx;

static void lfp_range(void *vc, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const lfp_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++) sam_f32_pack_panel(c->wp, c->w, c->N, c->K, (int)p);
}

bool sam_cpu_linear_f32_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N,
                           int K, const sam_cpu_ep *ep) {
    if (!sam_f32_kernel_available() || M <= 0 || N <= 0 || K <= 0) return false;
    if (sam_cpu_ep_none(ep)) ep = NULL;
    const size_t wn = (sam_f32_packed_floats(N, K) + 15) & ~(size_t)15; /* keeps the tile buffers 64-byte aligned */
    const size_t need = wn + (ep && ep->res == y ? (size_t)sam_cpu_threads(be) * MC * NC : 0);
    size_t got;
    float *wp = sam_cpu_scratch_lock(be, need, &got); /* the scratch is 64-byte aligned */
    if (got < need) {
        sam_cpu_scratch_unlock(be);
        return false;
    }
    lfp_ctx pc = {wp, w, N, K};
    sam_parallel_for(be->pool, (N + NR - 1) / NR, 1, lfp_range, &pc);
    linear_packed(be, y, x, wp, b, M, N, K, ep, wp + wn);
    sam_cpu_scratch_unlock(be);
    return true;
}

bool sam_cpu_linear_f32(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    return sam_cpu_linear_f32_ep(be, y, x, w, b, M, N, K, NULL);
}
