/* The naive attention the attention tests compare with: softmax(q k^T * scale) v
 * in double precision, one query row at a time, for any sam_attn_params layout. */
#ifndef SAM_TESTS_OPS_ATTN_REF_H
#define SAM_TESTS_OPS_ATTN_REF_H

#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"

static void ref_attention(float *out, const float *q, const float *k, const float *v, const sam_attn_params *p) {
    double *s = malloc(sizeof(double) * p->Lk);
    for (int b = 0; b < p->batch; b++)
        for (int h = 0; h < p->heads; h++)
            for (int i = 0; i < p->Lq; i++) {
                const float *qi = q + b * p->q_batch + i * p->q_stride + h * p->d_qk;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < p->Lk; j++) {
                    const float *kj = k + b * p->k_batch + j * p->k_stride + h * p->d_qk;
                    double d = 0;
                    for (int e = 0; e < p->d_qk; e++) d += (double)qi[e] * kj[e];
                    s[j] = d * p->scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < p->Lk; j++) sum += (s[j] = exp(s[j] - mx));
                float *o = out + b * p->o_batch + i * p->o_stride + h * p->d_v;
                for (int e = 0; e < p->d_v; e++) {
                    double a = 0;
                    for (int j = 0; j < p->Lk; j++) a += s[j] * v[b * p->v_batch + j * p->v_stride + h * p->d_v + e];
                    o[e] = (float)(a / sum);
                }
            }
    free(s);
}

#endif
