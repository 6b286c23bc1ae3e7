/* Multi-head attention without the full score matrix: each work item is one
 * (batch, head, tile of queries); it walks the keys in tiles, keeping a
 * running max and sum per query (online softmax) and rescaling its output
 * accumulator, so memory is O(threads * tile) whatever Lq and Lk are.
 *
 * Scores are computed transposed, S^T (keys x queries) = K . Q^T, so that
 * K is read in place (Q^T is packed once per item) and the softmax
 * statistics, which run per query, vectorise across queries. The two
 * products go through OpenBLAS for wide heads (it is single-threaded, see
 * gemm.c, so calling it from pool workers does not oversubscribe; ~13% faster
 * at d = 256) and through our register-blocked micro-kernel (MR rows x NR
 * columns in vector registers) for narrow ones, where it is as fast and
 * needs no per-call packing by BLAS. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "ops/cpu/bf16.h"
#include "ops/cpu/cpu_internal.h"

#include "ops/cpu/simd.h"

#define VL SAM_VL
typedef sam_vf vf;
typedef sam_vi vi;
#define vsplat sam_vsplat
#define vmax sam_vmax
#define vexp sam_vexp

#define NR (2 * VL) /* columns per micro-tile: two vectors */
#define MR 12       /* rows per micro-tile: 24 accumulators (of 32 registers) */
#define ATT_TK 256  /* keys per tile */
#define ATT_TQ_MAX 256
#define ATT_BLAS_MIN_D 128 /* head dims from which the BLAS path is used */

static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* C(mr, NR) (+)= A(mr, K) . B(K, NR). A(r, k) is A[r*ars + k*acs]; B rows at
 * stride ldb, C rows at stride ldc. zero: start from 0 instead of C. */
static inline __attribute__((always_inline)) void micro(const int mr, int K, const float *A, int64_t ars,
                                                        int64_t acs, const float *B, int64_t ldb, float *C,
                                                        int64_t ldc, bool zero) {
    vf c0[MR], c1[MR];
    for (int r = 0; r < mr; r++) {
        if (zero) {
            c0[r] = (vf){0};
            c1[r] = (vf){0};
        } else {
            c0[r] = *(const vf *)(C + r * ldc);
            c1[r] = *(const vf *)(C + r * ldc + VL);
        }
    }
    for (int k = 0; k < K; k++) {
        const vf b0 = *(const vf *)(B + k * ldb), b1 = *(const vf *)(B + k * ldb + VL);
        const float *a = A + k * acs;
        for (int r = 0; r < mr; r++) {
            const float av = a[r * ars];
            c0[r] += av * b0;
            c1[r] += av * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        *(vf *)(C + r * ldc) = c0[r];
        *(vf *)(C + r * ldc + VL) = c1[r];
    }
}

/* C(M, N) (+)= A(M, K) . B(K, N), N a multiple of NR; A strided as in micro. */
static void gemm_panel(int M, int N, int K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb,
                       float *C, int64_t ldc, bool zero) {
    for (int j = 0; j < N; j += NR) /* one B panel (K x NR) stays in L1 across the row groups */
        for (int i = 0; i < M; i += MR) {
            const float *a = A + i * ars;
            const float *b = B + j;
            float *c = C + i * ldc + j;
            switch (M - i < MR ? M - i : MR) {
            case 12: micro(12, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 11: micro(11, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 10: micro(10, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 9: micro(9, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 8: micro(8, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 7: micro(7, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 6: micro(6, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 5: micro(5, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 4: micro(4, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 3: micro(3, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            case 2: micro(2, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            default: micro(1, K, a, ars, acs, b, ldb, c, ldc, zero); break;
            }
        }
}

typedef struct {
    float *out;                /* (batch, Lq, heads*d_v) at the strides of p */
    const float *q, *k, *v;    /* (batch, Lq|Lk, heads*d) at the strides of p */
    const sam_attn_params *p;
    int TQ, TQp, nqt; /* queries per item (padded to NR), items per (batch, head) */
    int dvp;          /* d_v padded to NR */
    bool pack_v;      /* V rows cannot be read in place (d_v not a multiple of NR) */
    bool blas;        /* products through cblas_sgemm (reads Q and V in place) */
    float *scratch;   /* per thread: per_thread floats */
    size_t per_thread;
} att_ctx;

static void att_items(void *vctx, int64_t i0, int64_t i1, int tid) {
    const att_ctx *c = vctx;
    const sam_attn_params *p = c->p;
    const int dq = p->d_qk, dv = p->d_v, dvp = c->dvp, TQ = c->TQ, TQp = c->TQp;
    float *qT = c->scratch + (size_t)tid * c->per_thread; /* (dq, TQp) queries, transposed, zero-padded (not with BLAS) */
    float *sT = qT + (c->blas ? 0 : (size_t)dq * TQp);    /* (TK, TQp) scores, then probabilities */
    float *acc = sT + (size_t)ATT_TK * TQp;                /* (TQ, dvp) unnormalised output */
    float *mrow = acc + (size_t)TQ * dvp;                  /* (TQp) running max per query */
    float *lrow = mrow + TQp;                              /* (TQp) running sum */
    float *mnew = lrow + TQp;                              /* (TQp) max after this tile */
    float *vp = mnew + TQp;                                /* (TK, dvp) packed values when pack_v */
    const vf vscale = vsplat(p->scale);

    for (int64_t it = i0; it < i1; it++) {
        const int qt = (int)(it % c->nqt);
        const int64_t bh = it / c->nqt;
        const int h = (int)(bh % p->heads);
        const int64_t b = bh / p->heads;
        const int q0 = qt * TQ;
        const int nq = p->Lq - q0 < TQ ? p->Lq - q0 : TQ;
        const float *Q = c->q + b * p->q_batch + (int64_t)q0 * p->q_stride + (int64_t)h * dq;
        const float *K = c->k + b * p->k_batch + (int64_t)h * dq;
        const float *V = c->v + b * p->v_batch + (int64_t)h * dv;
        float *O = c->out + b * p->o_batch + (int64_t)q0 * p->o_stride + (int64_t)h * dv;

        if (c->blas) {
            /* BLAS writes only the nq real columns of S^T: keep the padding lanes 0 */
            if (nq < TQp)
                for (int j = 0; j < ATT_TK; j++) memset(sT + (size_t)j * TQp + nq, 0, (size_t)(TQp - nq) * sizeof(float));
        } else {
            for (int i = 0; i < nq; i++) {
                const float *qr = Q + (int64_t)i * p->q_stride;
                for (int d = 0; d < dq; d++) qT[(size_t)d * TQp + i] = qr[d];
            }
            for (int d = 0; d < dq; d++)
                for (int i = nq; i < TQp; i++) qT[(size_t)d * TQp + i] = 0.0f;
        }
        for (int i = 0; i < TQp; i++) {
            mrow[i] = -INFINITY;
            lrow[i] = 0.0f;
        }
        memset(acc, 0, (size_t)nq * dvp * sizeof(float));

        for (int k0 = 0; k0 < p->Lk; k0 += ATT_TK) {
            const int nk = p->Lk - k0 < ATT_TK ? p->Lk - k0 : ATT_TK;
            const float *Kt = K + (int64_t)k0 * p->k_stride;
            /* S^T (nk, TQp) = K (nk, dq) . Q^T (dq, TQp) */
            if (c->blas)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, nq, dq, 1.0f, Kt, (blasint)p->k_stride, Q,
                            (blasint)p->q_stride, 0.0f, sT, TQp);
            else
                gemm_panel(nk, TQp, dq, Kt, p->k_stride, 1, qT, TQp, sT, TQp, true);

            /* scale, and the new running max of every query (lanes = queries) */
            for (int i = 0; i < TQp; i += VL) {
                vf mx = *(vf *)(mrow + i);
                for (int j = 0; j < nk; j++) {
                    vf *s = (vf *)(sT + (size_t)j * TQp + i);
                    const vf x = *s * vscale;
                    *s = x;
                    mx = vmax(mx, x);
                }
                *(vf *)(mnew + i) = mx;
            }
            /* probabilities and their sums; rescale what was accumulated */
            for (int i = 0; i < TQp; i += VL) {
                const vf mx = *(vf *)(mnew + i);
                vf sum = (vf){0};
                for (int j = 0; j < nk; j++) {
                    vf *s = (vf *)(sT + (size_t)j * TQp + i);
                    const vf e = vexp(*s - mx);
                    *s = e;
                    sum += e;
                }
                const vf corr = vexp(*(vf *)(mrow + i) - mx); /* 0 on the first tile */
                *(vf *)(lrow + i) = *(vf *)(lrow + i) * corr + sum;
                *(vf *)(mrow + i) = mx;
                *(vf *)(mnew + i) = corr; /* reuse: per-query rescale factor */
            }
            for (int i = 0; i < nq; i++) {
                const float corr = mnew[i];
                if (corr != 1.0f) {
                    float *a = acc + (size_t)i * dvp;
                    for (int e = 0; e < dvp; e++) a[e] *= corr;
                }
            }
            /* acc (nq, dvp) += P (nq, nk) . V (nk, dvp); P(i, j) = sT[j*TQp + i] */
            if (c->blas) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nq, dv, nk, 1.0f, sT, TQp,
                            V + (int64_t)k0 * p->v_stride, (blasint)p->v_stride, 1.0f, acc, dvp);
                continue;
            }
            const float *Vb;
            int64_t ldv;
            if (c->pack_v) {
                for (int j = 0; j < nk; j++) {
                    float *vr = vp + (size_t)j * dvp;
                    memcpy(vr, V + (int64_t)(k0 + j) * p->v_stride, (size_t)dv * sizeof(float));
                    for (int e = dv; e < dvp; e++) vr[e] = 0.0f;
                }
                Vb = vp;
                ldv = dvp;
            } else {
                Vb = V + (int64_t)k0 * p->v_stride;
                ldv = p->v_stride;
            }
            gemm_panel(nq, dvp, nk, sT, 1, TQp, Vb, ldv, acc, dvp, false);
        }
        for (int i = 0; i < nq; i++) {
            const float inv = 1.0f / lrow[i];
            const float *a = acc + (size_t)i * dvp;
            float *o = O + (int64_t)i * p->o_stride;
            for (int e = 0; e < dv; e++) o[e] = a[e] * inv;
        }
    }
}

void sam_cpu_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                       const sam_attn_params *p) {
    if (p->batch <= 0 || p->heads <= 0 || p->Lq <= 0 || p->d_v <= 0) return;
    if (p->Lk <= 0) { /* softmax over nothing: define the output as zeros */
        for (int64_t b = 0; b < p->batch; b++)
            for (int i = 0; i < p->Lq; i++)
                memset(out + b * p->o_batch + (int64_t)i * p->o_stride, 0,
                       (size_t)p->heads * p->d_v * sizeof(float));
        return;
    }
    /* bf16 mode: the products in bf16 where the CPU has a fast path for them. */
    if (be->precision == SAM_PRECISION_BF16 && (int64_t)p->Lq * p->Lk * p->d_qk >= 4096 &&
        sam_cpu_attention_bf16(be, out, q, k, v, p))
        return;
    const int nt = sam_cpu_threads(be);
    /* Large query tiles amortise the passes over K and V (repeated per item);
     * shrink them while there would be too few items to keep threads busy. */
    int TQ = ATT_TQ_MAX;
    const int64_t bh = (int64_t)p->batch * p->heads;
    while (TQ > NR && (TQ >= 2 * p->Lq || bh * ((p->Lq + TQ - 1) / TQ) < 2 * nt)) TQ /= 2;
    if (TQ > p->Lq) TQ = p->Lq;
    const int dvp = round_up(p->d_v, NR);
    const bool blas = p->d_qk >= ATT_BLAS_MIN_D;
    /* V rows are far apart in qkv layouts (a page each): a packed tile keeps the
     * P.V kernel out of the TLB misses (long key lists); copying costs 1/TQ of the products. */
    const bool pack_v = !blas && (dvp != p->d_v || p->Lk > 128);
    size_t cap = 0, per = 0;
    float *s = NULL;
    for (;;) { /* shrink the query tile until every thread's slice fits (it always does for SAM's sizes) */
        const int TQp = round_up(TQ, NR);
        per = (blas ? 0 : (size_t)p->d_qk * TQp) + (size_t)ATT_TK * TQp + (size_t)TQ * dvp + 3 * (size_t)TQp +
              (pack_v ? (size_t)ATT_TK * dvp : 0);
        per = (per + 15) & ~(size_t)15;
        s = sam_cpu_scratch_lock(be, per * (size_t)nt, &cap);
        if (cap >= per * (size_t)nt || TQ == 1) break;
        sam_cpu_scratch_unlock(be);
        TQ = TQ > NR ? TQ / 2 : 1;
    }
    if (cap < per) {
        sam_cpu_scratch_unlock(be);
        sam_logf(SAM_LOG_ERROR, "attention: head dims %d/%d need more scratch than allowed; output zeroed", p->d_qk,
                 p->d_v);
        for (int64_t b = 0; b < p->batch; b++)
            for (int i = 0; i < p->Lq; i++)
                memset(out + b * p->o_batch + (int64_t)i * p->o_stride, 0, (size_t)p->heads * p->d_v * sizeof(float));
        return;
    }
    const int TQp = round_up(TQ, NR);
    att_ctx c = {out, q, k, v, p, TQ, TQp, (p->Lq + TQ - 1) / TQ, dvp, pack_v, blas, s, per};
    const int64_t items = bh * c.nqt;
    if (cap / per >= (size_t)nt)
        sam_parallel_for(be->pool, items, 1, att_items, &c);
    else
        att_items(&c, 0, items, 0); /* not enough scratch for every thread: run on this one */
    sam_cpu_scratch_unlock(be);
}
