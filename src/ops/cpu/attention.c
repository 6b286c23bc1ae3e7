/* Multi-head attention without the full score matrix. Each work item is one
 * (batch, head, tile of queries); it walks the keys in tiles, with our own
 * register-blocked micro-kernel (MR rows x two vectors of queries). Scores
 * are computed transposed, S^T (keys x queries) = K . Q^T, so the softmax
 * statistics, which run per query, vectorise across queries, and the output
 * is kept transposed too, O^T (d_v x queries) = V^T . P^T, which reads P^T
 * exactly as S^T was written and needs no padding of d (72 = 9 x 8 rows):
 * nothing is computed for lanes that are thrown away. K is read in place,
 * V tiles are packed into MR-row panels (their rows are a page apart in a
 * qkv layout), Q and the output go through in-register transposes, and the
 * rows the next tile or item needs are prefetched into L2 while the products
 * run. Key lists up to ATT_TK_EXACT (every Hiera window) are one tile: a
 * plain softmax, no rescaling. Longer ones keep a running max and sum per
 * query (online softmax) and rescale O^T. The same kernel serves the memory
 * attention's wide heads (d 256): ~20% faster there than OpenBLAS was.
 *
 * Memory is O(threads * tile) whatever Lq and Lk are. */
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

#define NR (2 * VL)      /* columns (queries) per micro-tile: two vectors */
#define MR 8             /* rows per micro-tile: divides every SAM head dim (56, 64, 72, 96, 256) */
#define ATT_TK 256       /* keys per tile of long key lists */
#define ATT_TK_EXACT 512 /* key lists up to this long are one tile (exact softmax) */
#define ATT_TQ_MAX 256

static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* C(mr, nv*VL) (+)= A(mr, K) . B(K, nv*VL) with A(r, k) = A[r*ars + k*acs]
 * (broadcast from memory), B rows at stride ldb, C rows at stride ldc.
 * zero: start from 0 instead of C. */
static inline __attribute__((always_inline)) void micro(const int mr, const int nv, int K, const float *A,
                                                        int64_t ars, int64_t acs, const float *B, int64_t ldb,
                                                        float *C, int64_t ldc, bool zero, float *cmax) {
    vf c0[MR], c1[MR];
    for (int r = 0; r < mr; r++) {
        c0[r] = zero ? (vf){0} : *(const vf *)(C + r * ldc);
        if (nv == 2) c1[r] = zero ? (vf){0} : *(const vf *)(C + r * ldc + VL);
    }
    for (int k = 0; k < K; k++) {
        const vf b0 = *(const vf *)(B + k * ldb);
        const vf b1 = nv == 2 ? *(const vf *)(B + k * ldb + VL) : b0;
        const float *a = A + k * acs;
        for (int r = 0; r < mr; r++) {
            const float av = a[r * ars];
            c0[r] += av * b0;
            if (nv == 2) c1[r] += av * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        *(vf *)(C + r * ldc) = c0[r];
        if (nv == 2) *(vf *)(C + r * ldc + VL) = c1[r];
    }
    if (cmax) { /* fold the rows into the running column max (the softmax's first pass, for free) */
        vf m0 = *(const vf *)cmax, m1 = nv == 2 ? *(const vf *)(cmax + VL) : m0;
        for (int r = 0; r < mr; r++) {
            m0 = vmax(m0, c0[r]);
            if (nv == 2) m1 = vmax(m1, c1[r]);
        }
        *(vf *)cmax = m0;
        if (nv == 2) *(vf *)(cmax + VL) = m1;
    }
}

/* One row panel (mr <= MR rows) times all N columns (N a multiple of VL). */
static inline __attribute__((always_inline)) void panel(const int mr, int N, int K, const float *A, int64_t ars,
                                                        int64_t acs, const float *B, int64_t ldb, float *C,
                                                        int64_t ldc, bool zero, float *cmax) {
    int j = 0;
    for (; j + NR <= N; j += NR) micro(mr, 2, K, A, ars, acs, B + j, ldb, C + j, ldc, zero, cmax ? cmax + j : NULL);
    if (j < N) micro(mr, 1, K, A, ars, acs, B + j, ldb, C + j, ldc, zero, cmax ? cmax + j : NULL);
}

/* Rows still to come, fetched into L2 a panel at a time while the products
 * run: rows of a qkv layout are a page apart, beyond the hardware prefetcher.
 * Stream 3 is written (the output rows: no read-for-ownership stall later). */
#define ATT_PF_STREAMS 4
typedef struct {
    const float *base[ATT_PF_STREAMS]; /* NULL: nothing */
    int64_t stride[ATT_PF_STREAMS];
    int rows[ATT_PF_STREAMS], width[ATT_PF_STREAMS];
} att_prefetch;

/* GCC 12 deletes loops of __builtin_prefetch alone as side-effect free: asm it is. */
#if defined(__x86_64__) || defined(__i386__)
#define PF_READ(x) __asm__ volatile("prefetcht1 %0" ::"m"(*(const char *)(x)))
#define PF_WRITE(x) __asm__ volatile("prefetchw %0" ::"m"(*(const char *)(x)))
#else
#define PF_READ(x) __builtin_prefetch((x), 0, 2)
#define PF_WRITE(x) __builtin_prefetch((x), 1, 2)
#endif

static inline void prefetch_row(const att_prefetch *pf, int s, int r) {
    const float *x = pf->base[s] + (int64_t)r * pf->stride[s];
    const int w = pf->width[s];
    if (s == ATT_PF_STREAMS - 1) {
        for (int c = 0; c < w; c += 16) PF_WRITE(x + c);
        PF_WRITE(x + w - 1);
    } else {
        for (int c = 0; c < w; c += 16) PF_READ(x + c);
        PF_READ(x + w - 1);
    }
}

static inline void prefetch_rows(const att_prefetch *pf, int r0, int r1) {
    for (int s = 0; s < ATT_PF_STREAMS; s++) {
        if (!pf->base[s]) continue;
        const int e = r1 < pf->rows[s] ? r1 : pf->rows[s];
        for (int r = r0; r < e; r++) prefetch_row(pf, s, r);
    }
}

/* Slots [t0, t1) of a panel's prefetch work (slot t: stream t / MR, row r0 +
 * t % MR), so that a panel's rows are spread over its micro-tiles instead
 * of queueing up on the line fill buffers at once. */
static inline void prefetch_slots(const att_prefetch *pf, int r0, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const int s = t / MR, r = r0 + t % MR;
        if (pf->base[s] && r < pf->rows[s]) prefetch_row(pf, s, r);
    }
}

/* S^T (nk, N) = K (nk, dq) . Q^T (dq, N): K read in place (rows at stride
 * ks), prefetching pf's rows alongside, MR per panel. cmax (N) = max over
 * the keys of each column, from -inf. */
static void scores_T(int nk, int N, int dq, const float *K, int64_t ks, const float *qT, int64_t ldq, float *sT,
                     int64_t lds, float *cmax, const att_prefetch *pf) {
    for (int j = 0; j < N; j++) cmax[j] = -INFINITY;
    int i = 0;
    const int ntile = (N + NR - 1) / NR, T = ATT_PF_STREAMS * MR;
    for (; i + MR <= nk; i += MR) {
        const float *a = K + (int64_t)i * ks;
        float *c = sT + (int64_t)i * lds;
        int j = 0, jt = 0;
        for (; j + NR <= N; j += NR, jt++) {
            prefetch_slots(pf, i, jt * T / ntile, (jt + 1) * T / ntile);
            micro(MR, 2, dq, a, ks, 1, qT + j, ldq, c + j, lds, true, cmax + j);
        }
        if (j < N) {
            prefetch_slots(pf, i, jt * T / ntile, T);
            micro(MR, 1, dq, a, ks, 1, qT + j, ldq, c + j, lds, true, cmax + j);
        }
    }
    if (i < nk) {
        prefetch_rows(pf, i, 1 << 30); /* the rest */
        const float *a = K + (int64_t)i * ks;
        float *c = sT + (int64_t)i * lds;
        switch (nk - i) {
        case 7: panel(7, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        case 6: panel(6, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        case 5: panel(5, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        case 4: panel(4, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        case 3: panel(3, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        case 2: panel(2, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        default: panel(1, N, dq, a, ks, 1, qT, ldq, c, lds, true, cmax); break;
        }
    }
}

/* O^T (dv, N) (+)= V^T (dv, nk) . P^T (nk, N), V^T from the packed panels vp
 * (panel g at vp + g*MR*nk, vp[g*MR*nk + j*MR + r] = V[j][g*MR + r]). */
static void values_T(int dv, int N, int nk, const float *vp, const float *pT, int64_t ldp, float *oT, int64_t ldo,
                     bool zero) {
    int i = 0;
    for (; i + MR <= dv; i += MR) panel(MR, N, nk, vp + (int64_t)i * nk, 1, MR, pT, ldp, oT + (int64_t)i * ldo, ldo, zero, NULL);
    if (i < dv) {
        const float *a = vp + (int64_t)i * nk;
        float *c = oT + (int64_t)i * ldo;
        switch (dv - i) {
        case 7: panel(7, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        case 6: panel(6, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        case 5: panel(5, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        case 4: panel(4, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        case 3: panel(3, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        case 2: panel(2, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        default: panel(1, N, nk, a, 1, MR, pT, ldp, c, ldo, zero, NULL); break;
        }
    }
}

/* vp = V (nk rows at stride vs, dv wide) as values_T's panels (MR-float copies). */
static void pack_values(float *vp, const float *V, int64_t vs, int nk, int dv) {
    for (int j = 0; j < nk; j++) {
        const float *x = V + (int64_t)j * vs;
        int e0 = 0;
        for (; e0 + MR <= dv; e0 += MR) memcpy(vp + (int64_t)e0 * nk + (int64_t)j * MR, x + e0, MR * sizeof(float));
        for (int r = 0; e0 + r < dv; r++) vp[(int64_t)e0 * nk + (int64_t)j * MR + r] = x[e0 + r];
    }
}

#if defined(__AVX512F__)
#include <immintrin.h>
/* r[0..15] (16 rows of 16) transposed in registers. */
static inline __attribute__((always_inline)) void tr16(__m512 *r) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 16; i += 8)
        for (int m = 0; m < 4; m++) {
            t[i + m] = _mm512_shuffle_f32x4(r[i + m], r[i + 4 + m], 0x88);
            t[i + 4 + m] = _mm512_shuffle_f32x4(r[i + m], r[i + 4 + m], 0xDD);
        }
    for (int m = 0; m < 8; m++) {
        r[m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0xDD);
    }
}

/* exp(x) for x <= 0 (scores minus their running max): sam_vexp's range
 * reduction and polynomial, the 2^n applied by vscalefps, 0 below -87 (as
 * sam_vexp) and no overflow branch (x <= 0): two thirds of its instructions. */
static inline __attribute__((always_inline)) vf exp_nonpos(vf xv) {
    __m512 x = (__m512)xv;
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic), magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return (vf)_mm512_maskz_scalef_ps(live, p, n);
}
#else
#define exp_nonpos vexp
#endif

/* dst (w, ldd) = scale * X^T for X = n rows (at stride ldx) of w floats;
 * columns n..npad of dst are zeroed. */
static void transpose_in(float *dst, int64_t ldd, const float *X, int64_t ldx, int n, int npad, int w, float scale) {
    int i0 = 0;
#if defined(__AVX512F__)
    for (; i0 < npad; i0 += 16) {
        const int ni = n - i0 < 16 ? (n - i0 > 0 ? n - i0 : 0) : 16;
        if (npad - i0 < 16) break;
        for (int e0 = 0; e0 < w; e0 += 16) {
            const int ne = w - e0 < 16 ? w - e0 : 16;
            const __mmask16 m = (__mmask16)((1u << ne) - 1);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < ni ? _mm512_maskz_loadu_ps(m, X + (int64_t)(i0 + i) * ldx + e0) : _mm512_setzero_ps();
            tr16(r);
            for (int e = 0; e < ne; e++)
                _mm512_storeu_ps(dst + (int64_t)(e0 + e) * ldd + i0, _mm512_mul_ps(r[e], _mm512_set1_ps(scale)));
        }
    }
#endif
    for (int e = 0; e < w && i0 < npad; e++) {
        float *d = dst + (int64_t)e * ldd;
        for (int i = i0; i < npad; i++) d[i] = i < n ? X[(int64_t)i * ldx + e] * scale : 0.0f;
    }
}

/* Y rows i < n (at stride ldy, w floats) = S^T column i scaled by inv[i], from S^T (w, lds). */
static void transpose_out(float *Y, int64_t ldy, const float *ST, int64_t lds, const float *inv, int n, int w) {
    int i0 = 0;
#if defined(__AVX512F__)
    if (lds % 16 == 0)
        for (; i0 + 16 <= n; i0 += 16)
            for (int e0 = 0; e0 < w; e0 += 16) {
                const int ne = w - e0 < 16 ? w - e0 : 16;
                const __mmask16 m = (__mmask16)((1u << ne) - 1);
                __m512 r[16];
                for (int e = 0; e < 16; e++)
                    r[e] = e < ne ? _mm512_loadu_ps(ST + (int64_t)(e0 + e) * lds + i0) : _mm512_setzero_ps();
                tr16(r);
                for (int i = 0; i < 16; i++)
                    _mm512_mask_storeu_ps(Y + (int64_t)(i0 + i) * ldy + e0, m,
                                          _mm512_mul_ps(r[i], _mm512_set1_ps(inv[i0 + i])));
            }
#endif
    for (int i = i0; i < n; i++)
        for (int e = 0; e < w; e++) Y[(int64_t)i * ldy + e] = ST[(int64_t)e * lds + i] * inv[i];
}

typedef struct {
    float *out;             /* (batch, Lq, heads*d_v) at the strides of p */
    const float *q, *k, *v; /* (batch, Lq|Lk, heads*d) at the strides of p */
    const sam_attn_params *p;
    int TQ, TQp, nqt; /* queries per item (padded to VL), items per (batch, head) */
    int TK;           /* keys per tile */
    float *scratch;   /* per thread: per_thread floats */
    size_t per_thread;
} att_ctx;

/* One item's (batch, head, first query, query count). */
static inline void att_item(const att_ctx *c, int64_t it, int64_t *b, int *h, int *q0, int *nq) {
    const int qt = (int)(it % c->nqt);
    const int64_t bh = it / c->nqt;
    *h = (int)(bh % c->p->heads);
    *b = bh / c->p->heads;
    *q0 = qt * c->TQ;
    *nq = c->p->Lq - *q0 < c->TQ ? c->p->Lq - *q0 : c->TQ;
}

/* Items [i0, i1): transposed scores and output (see the top). */
static void att_items(void *vctx, int64_t i0, int64_t i1, int tid) {
    const att_ctx *c = vctx;
    const sam_attn_params *p = c->p;
    const int dq = p->d_qk, dv = p->d_v, TQp = c->TQp, TK = c->TK;
    float *qT = c->scratch + (size_t)tid * c->per_thread; /* (dq, TQp) queries, transposed, zero-padded */
    float *vp = qT + (size_t)dq * TQp;                     /* (dv, TK) value tile transposed, MR-row panels */
    float *sT = vp + (size_t)round_up(dv, MR) * TK;        /* (TK, TQp) scores, then probabilities */
    float *oT = sT + (size_t)TK * TQp;                     /* (dv, TQp) unnormalised output, transposed */
    float *mrow = oT + (size_t)dv * TQp;                   /* (TQp) running max per query (scaled scores) */
    float *lrow = mrow + TQp;                              /* (TQp) running sum, then its inverse */
    float *tmax = lrow + TQp;                              /* (TQp) max of this tile's scores */

    for (int64_t it = i0; it < i1; it++) {
        int64_t b;
        int h, q0, nq;
        att_item(c, it, &b, &h, &q0, &nq);
        const float *Q = c->q + b * p->q_batch + (int64_t)q0 * p->q_stride + (int64_t)h * dq;
        const float *K = c->k + b * p->k_batch + (int64_t)h * dq;
        const float *V = c->v + b * p->v_batch + (int64_t)h * dv;
        float *O = c->out + b * p->o_batch + (int64_t)q0 * p->o_stride + (int64_t)h * dv;
        /* the next item's first rows, fetched during this one's last key tile */
        const float *Qn = NULL, *Kn = NULL;
        int nqn = 0;
        if (it + 1 < i1) {
            int64_t bn;
            int hn, q0n;
            att_item(c, it + 1, &bn, &hn, &q0n, &nqn);
            Qn = c->q + bn * p->q_batch + (int64_t)q0n * p->q_stride + (int64_t)hn * dq;
            Kn = c->k + bn * p->k_batch + (int64_t)hn * dq;
        }

        /* scores come out scaled: scale * (q . k) as (scale * q) . k */
        transpose_in(qT, TQp, Q, p->q_stride, nq, TQp, dq, p->scale);
        for (int k0 = 0; k0 < p->Lk; k0 += TK) {
            const int nk = p->Lk - k0 < TK ? p->Lk - k0 : TK;
            const bool first = k0 == 0, last = k0 + TK >= p->Lk;
            const int nkn = last ? (p->Lk < TK ? p->Lk : TK) : (p->Lk - k0 - TK < TK ? p->Lk - k0 - TK : TK);
            att_prefetch pf = {{V + (int64_t)k0 * p->v_stride, last ? Kn : K + (int64_t)(k0 + TK) * p->k_stride,
                                last ? Qn : NULL, last ? O : NULL},
                               {p->v_stride, p->k_stride, p->q_stride, p->o_stride},
                               {nk, nkn, nqn, nq},
                               {dv, dq, dq, dv}};
            /* S^T (nk, TQp) = K (nk, dq) . Q^T (dq, TQp), and each query's max over the tile */
            scores_T(nk, TQp, dq, K + (int64_t)k0 * p->k_stride, p->k_stride, qT, TQp, sT, TQp, tmax, &pf);

            /* the running max; on later tiles, rescale what was accumulated to it */
            for (int i = 0; i < TQp; i += VL) {
                const vf mt = *(const vf *)(tmax + i);
                if (first) {
                    *(vf *)(mrow + i) = mt;
                    *(vf *)(lrow + i) = (vf){0};
                    continue;
                }
                const vf mo = *(const vf *)(mrow + i), mx = vmax(mo, mt);
                const vf corr = vexp(mo - mx);
                *(vf *)(lrow + i) *= corr;
                for (int e = 0; e < dv; e++) *(vf *)(oT + (size_t)e * TQp + i) *= corr;
                *(vf *)(mrow + i) = mx;
            }
            /* probabilities and their sums, a row of keys at a time (streams sT) */
            for (int j = 0; j < nk; j++) {
                float *sr = sT + (size_t)j * TQp;
                for (int i = 0; i < TQp; i += VL) {
                    const vf e = exp_nonpos(*(const vf *)(sr + i) - *(const vf *)(mrow + i));
                    *(vf *)(sr + i) = e;
                    *(vf *)(lrow + i) += e;
                }
            }
            /* O^T (dv, TQp) (+)= V^T (dv, nk) . P^T (nk, TQp); P^T is sT as it stands */
            pack_values(vp, V + (int64_t)k0 * p->v_stride, p->v_stride, nk, dv);
            values_T(dv, TQp, nk, vp, sT, TQp, oT, TQp, first);
        }
        for (int i = 0; i < nq; i++) lrow[i] = 1.0f / lrow[i];
        transpose_out(O, p->o_stride, oT, TQp, lrow, nq, dv);
    }
}

#if !defined(__OPTIMIZE__)
#include <cblas.h>
#define ATT_BLAS_MIN_D 128
/* Unoptimised builds (Debug, the sanitizer pass) only: wide heads through
 * OpenBLAS, which is optimised whatever our flags, while our kernel at -O0
 * is ~7x slower than it at d 256 (the memory attention). Same results up to
 * float reordering; query tiles padded to NR, output (queries x d_v). */
static void att_items_blas(void *vctx, int64_t i0, int64_t i1, int tid) {
    const att_ctx *c = vctx;
    const sam_attn_params *p = c->p;
    const int dq = p->d_qk, dv = p->d_v, dvp = round_up(p->d_v, NR), TQ = c->TQ, TQp = c->TQp;
    float *sT = c->scratch + (size_t)tid * c->per_thread; /* (ATT_TK, TQp) scores, then probabilities */
    float *acc = sT + (size_t)ATT_TK * TQp;              /* (TQ, dvp) unnormalised output */
    float *mrow = acc + (size_t)TQ * dvp;                /* (TQp) running max per query */
    float *lrow = mrow + TQp;                            /* (TQp) running sum */
    float *mnew = lrow + TQp;                            /* (TQp) max after this tile */
    const vf vscale = vsplat(p->scale);

    for (int64_t it = i0; it < i1; it++) {
        int64_t b;
        int h, q0, nq;
        att_item(c, it, &b, &h, &q0, &nq);
        const float *Q = c->q + b * p->q_batch + (int64_t)q0 * p->q_stride + (int64_t)h * dq;
        const float *K = c->k + b * p->k_batch + (int64_t)h * dq;
        const float *V = c->v + b * p->v_batch + (int64_t)h * dv;
        float *O = c->out + b * p->o_batch + (int64_t)q0 * p->o_stride + (int64_t)h * dv;

        /* BLAS writes only the nq real columns of S^T: keep the padding lanes 0 */
        if (nq < TQp)
            for (int j = 0; j < ATT_TK; j++) memset(sT + (size_t)j * TQp + nq, 0, (size_t)(TQp - nq) * sizeof(float));
        for (int i = 0; i < TQp; i++) {
            mrow[i] = -INFINITY;
            lrow[i] = 0.0f;
        }
        memset(acc, 0, (size_t)nq * dvp * sizeof(float));

        for (int k0 = 0; k0 < p->Lk; k0 += ATT_TK) {
            const int nk = p->Lk - k0 < ATT_TK ? p->Lk - k0 : ATT_TK;
            const float *Kt = K + (int64_t)k0 * p->k_stride;
            /* S^T (nk, TQp) = K (nk, dq) . Q^T (dq, TQp) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, nq, dq, 1.0f, Kt, (blasint)p->k_stride, Q,
                        (blasint)p->q_stride, 0.0f, sT, TQp);

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
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nq, dv, nk, 1.0f, sT, TQp,
                        V + (int64_t)k0 * p->v_stride, (blasint)p->v_stride, 1.0f, acc, dvp);
        }
        for (int i = 0; i < nq; i++) {
            const float inv = 1.0f / lrow[i];
            const float *a = acc + (size_t)i * dvp;
            float *o = O + (int64_t)i * p->o_stride;
            for (int e = 0; e < dv; e++) o[e] = a[e] * inv;
        }
    }
}

#endif

static void zero_output(float *out, const sam_attn_params *p) {
    for (int64_t b = 0; b < p->batch; b++)
        for (int i = 0; i < p->Lq; i++)
            memset(out + b * p->o_batch + (int64_t)i * p->o_stride, 0, (size_t)p->heads * p->d_v * sizeof(float));
}

void sam_cpu_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                       const sam_attn_params *p) {
    if (p->batch <= 0 || p->heads <= 0 || p->Lq <= 0 || p->d_v <= 0) return;
    if (p->Lk <= 0) { /* softmax over nothing: define the output as zeros */
        zero_output(out, p);
        return;
    }
    /* bf16 mode: the products in bf16 where the CPU has a fast path for them
     * and it wins. It pads head dims to 32 and packs K and V per (batch, head):
     * for short query or key lists at other head dims (Hiera's 8x8 and 4x4
     * windows and pooled queries at d 72 or 56, the decoder's d 16 against
     * 4096 tokens) the fp32 kernel here is faster (up to 2.5x), and exact. */
    if (be->precision == SAM_PRECISION_BF16 && (int64_t)p->Lq * p->Lk * p->d_qk >= 4096 &&
        (p->d_qk % 32 == 0 || (p->Lq >= 128 && p->Lk >= 128)) && sam_cpu_attention_bf16(be, out, q, k, v, p))
        return;
    const int nt = sam_cpu_threads(be);
#if !defined(__OPTIMIZE__)
    const bool blas = p->d_qk >= ATT_BLAS_MIN_D;
#else
    const bool blas = false;
#endif
    /* Large query tiles amortise the packing of V and the transposes
     * (repeated per item); shrink them while there would be too few items to
     * keep threads busy. */
    int TQ = ATT_TQ_MAX;
    const int64_t bh = (int64_t)p->batch * p->heads;
    while (TQ > NR && (TQ >= 2 * p->Lq || bh * ((p->Lq + TQ - 1) / TQ) < 2 * nt)) TQ /= 2;
    if (TQ > p->Lq) TQ = p->Lq;
    const int TK = p->Lk <= ATT_TK_EXACT ? round_up(p->Lk, VL) : ATT_TK;
    size_t cap = 0, per = 0;
    float *s = NULL;
    for (;;) { /* shrink the query tile until every thread's slice fits (it always does for SAM's sizes) */
        const int TQp = round_up(TQ, blas ? NR : VL);
        if (blas)
            per = (size_t)ATT_TK * TQp + (size_t)TQ * round_up(p->d_v, NR) + 3 * (size_t)TQp;
        else
            per = (size_t)p->d_qk * TQp + (size_t)round_up(p->d_v, MR) * TK + (size_t)TK * TQp +
                  (size_t)p->d_v * TQp + 3 * (size_t)TQp;
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
        zero_output(out, p);
        return;
    }
    att_ctx c = {out, q, k, v, p, TQ, round_up(TQ, blas ? NR : VL), (p->Lq + TQ - 1) / TQ, TK, s, per};
    const int64_t items = bh * c.nqt;
    sam_range_fn fn = att_items;
#if !defined(__OPTIMIZE__)
    if (blas) fn = att_items_blas;
#endif
    if (cap / per >= (size_t)nt)
        sam_parallel_for(be->pool, items, 1, fn, &c);
    else
        fn(&c, 0, items, 0); /* not enough scratch for every thread: run on this one */
    sam_cpu_scratch_unlock(be);
}
