/* Multi-head attention without the full score matrix: each work item is one
 * (batch, head, tile of queries); it walks the keys in tiles, keeping a
 * running max and sum per query (online softmax) and rescaling its output
 * accumulator, so memory is O(threads * tile) whatever Lq and Lk are. */
#include <math.h>
#include <string.h>

#include "ops/cpu/cpu_internal.h"

#define ATT_TQ 64  /* queries per work item */
#define ATT_TK 256 /* keys per tile */

typedef struct {
    float *out;
    const float *q, *k, *v;
    const sam_attn_params *p;
    int nqt;          /* query tiles per (batch, head) */
    float *scratch;   /* per thread: per_thread floats */
    size_t per_thread;
} att_ctx;

static void att_items(void *vctx, int64_t i0, int64_t i1, int tid) {
    const att_ctx *c = vctx;
    const sam_attn_params *p = c->p;
    const int dq = p->d_qk, dv = p->d_v;
    float *S = c->scratch + (size_t)tid * c->per_thread; /* (TQ, TK) scores, then probabilities */
    float *kT = S + ATT_TQ * ATT_TK;                      /* (dq, TK) key tile, transposed */
    float *acc = kT + (size_t)dq * ATT_TK;                /* (TQ, dv) unnormalised output */
    float *mrow = acc + (size_t)ATT_TQ * dv;              /* (TQ) running max */
    double *lrow = (double *)(mrow + ATT_TQ);             /* (TQ) running sum */

    for (int64_t it = i0; it < i1; it++) {
        const int qt = (int)(it % c->nqt);
        const int64_t bh = it / c->nqt;
        const int h = (int)(bh % p->heads);
        const int64_t b = bh / p->heads;
        const int q0 = qt * ATT_TQ;
        const int nq = p->Lq - q0 < ATT_TQ ? p->Lq - q0 : ATT_TQ;
        const float *Q = c->q + b * p->q_batch + (int64_t)q0 * p->q_stride + (int64_t)h * dq;
        const float *K = c->k + b * p->k_batch + (int64_t)h * dq;
        const float *V = c->v + b * p->v_batch + (int64_t)h * dv;
        float *O = c->out + b * p->o_batch + (int64_t)q0 * p->o_stride + (int64_t)h * dv;

        for (int i = 0; i < nq; i++) {
            mrow[i] = -INFINITY;
            lrow[i] = 0.0;
        }
        memset(acc, 0, (size_t)nq * dv * sizeof(float));

        for (int k0 = 0; k0 < p->Lk; k0 += ATT_TK) {
            const int nk = p->Lk - k0 < ATT_TK ? p->Lk - k0 : ATT_TK;
            for (int j = 0; j < nk; j++) {
                const float *kr = K + (int64_t)(k0 + j) * p->k_stride;
                for (int d = 0; d < dq; d++) kT[d * ATT_TK + j] = kr[d];
            }
            for (int i = 0; i < nq; i++) {
                float *s = S + i * ATT_TK;
                const float *qr = Q + (int64_t)i * p->q_stride;
                memset(s, 0, (size_t)nk * sizeof(float));
                for (int d = 0; d < dq; d++) {
                    const float qv = qr[d];
                    const float *kt = kT + d * ATT_TK;
                    for (int j = 0; j < nk; j++) s[j] += qv * kt[j];
                }
                float mx = mrow[i];
                for (int j = 0; j < nk; j++) {
                    s[j] *= p->scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                const float corr = expf(mrow[i] - mx); /* 0 on the first tile (exp(-inf)) */
                float sum = 0.0f;
                for (int j = 0; j < nk; j++) {
                    float e = expf(s[j] - mx);
                    s[j] = e;
                    sum += e;
                }
                lrow[i] = lrow[i] * corr + sum;
                mrow[i] = mx;
                float *a = acc + (int64_t)i * dv;
                if (corr != 1.0f)
                    for (int e = 0; e < dv; e++) a[e] *= corr;
                for (int j = 0; j < nk; j++) {
                    const float pj = s[j];
                    const float *vr = V + (int64_t)(k0 + j) * p->v_stride;
                    for (int e = 0; e < dv; e++) a[e] += pj * vr[e];
                }
            }
        }
        for (int i = 0; i < nq; i++) {
            const float inv = (float)(1.0 / lrow[i]);
            const float *a = acc + (int64_t)i * dv;
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
    const int nt = sam_cpu_threads(be);
    /* S + kT + acc + max + sum (as 2 floats per double), rounded to 16 floats. */
    size_t per = (size_t)ATT_TQ * ATT_TK + (size_t)p->d_qk * ATT_TK + (size_t)ATT_TQ * p->d_v + 3 * ATT_TQ;
    per = (per + 15) & ~(size_t)15;
    size_t cap;
    float *s = sam_cpu_scratch_lock(be, per * (size_t)nt, &cap);
    int usable = (int)(cap / per); /* threads whose slice fits */
    if (usable < 1) { sam_cpu_scratch_unlock(be); return; }
    att_ctx c = {out, q, k, v, p, (p->Lq + ATT_TQ - 1) / ATT_TQ, s, per};
    const int64_t items = (int64_t)p->batch * p->heads * c.nqt;
    if (usable >= nt)
        sam_parallel_for(be->pool, items, 1, att_items, &c);
    else
        att_items(&c, 0, items, 0); /* not enough scratch for every thread: run on this one */
    sam_cpu_scratch_unlock(be);
}
