/* The CPU back end: the function table, its thread pool and its scratch. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/log.h"
#include "ops/cpu/cpu_internal.h"

float *sam_cpu_scratch_lock(sam_backend *be, size_t want, size_t *got) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    pthread_mutex_lock(&cb->scratch_mu);
    if (want > cb->scratch_max) want = cb->scratch_max;
    if (want > cb->scratch_cap) {
        /* Grow-only, by at least half again so a run of slightly larger
         * requests does not reallocate each time. The new block comes first:
         * if it cannot be had, the old one (and its size) stays. */
        size_t grow = cb->scratch_cap + cb->scratch_cap / 2;
        if (grow > want) want = grow < cb->scratch_max ? grow : cb->scratch_max;
        float *nb = sam_malloc(want * sizeof(float));
        if (nb) {
            sam_free(cb->scratch);
            cb->scratch = nb;
            cb->scratch_cap = want;
        }
    }
    *got = cb->scratch_cap;
    return cb->scratch;
}

void sam_cpu_set_scratch_max(sam_backend *be, size_t floats) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    pthread_mutex_lock(&cb->scratch_mu);
    cb->scratch_max = floats;
    pthread_mutex_unlock(&cb->scratch_mu);
}

void sam_cpu_scratch_unlock(sam_backend *be) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    pthread_mutex_unlock(&cb->scratch_mu);
}

bool sam_precision_parse(const char *s, sam_precision *out) {
    if (!s) return false;
    if (strcasecmp(s, "fp32") == 0 || strcasecmp(s, "float32") == 0) {
        *out = SAM_PRECISION_FP32;
        return true;
    }
    if (strcasecmp(s, "bf16") == 0 || strcasecmp(s, "bfloat16") == 0) {
        *out = SAM_PRECISION_BF16;
        return true;
    }
    return false;
}

const char *sam_precision_name(sam_precision p) { return p == SAM_PRECISION_BF16 ? "bf16" : "fp32"; }

sam_backend *sam_backend_cpu_create(int nthreads) {
    sam_precision prec = SAM_PRECISION_FP32;
    const char *env = getenv("SAM2_PRECISION");
    if (env && *env && !sam_precision_parse(env, &prec)) {
        sam_logf(SAM_LOG_ERROR, "SAM2_PRECISION: '%s' is not fp32 or bf16", env);
        return NULL;
    }
    return sam_backend_cpu_create_ex(nthreads, prec);
}

sam_backend *sam_backend_cpu_create_ex(int nthreads, sam_precision precision) {
    sam_cpu_backend *cb = sam_calloc(1, sizeof *cb);
    if (!cb) return NULL;
    sam_backend *be = &cb->base;
    be->name = "cpu";
    be->precision = precision == SAM_PRECISION_BF16 ? SAM_PRECISION_BF16 : SAM_PRECISION_FP32;
    be->pool = sam_threadpool_create(nthreads);
    cb->scratch = sam_malloc(SAM_CPU_SCRATCH_INIT * sizeof(float));
    if (!be->pool || !cb->scratch) {
        sam_threadpool_free(be->pool);
        sam_free(cb->scratch);
        sam_free(cb);
        return NULL;
    }
    cb->scratch_cap = SAM_CPU_SCRATCH_INIT;
    cb->scratch_max = SAM_CPU_SCRATCH_MAX;
    pthread_mutex_init(&cb->scratch_mu, NULL);
    pthread_mutex_init(&cb->wreg_mu, NULL);
    /* Our pool parallelises BLAS calls itself (see gemm.c); OpenBLAS's own
     * threads would compete with it. Process-wide, but sam2d is the only user. */
    openblas_set_num_threads(1);

    be->linear = sam_cpu_linear;
    be->linear_prepare = sam_cpu_linear_prepare;
    be->linear_forget = sam_cpu_linear_forget;
    be->gemm = sam_cpu_gemm;
    be->conv2d = sam_cpu_conv2d;
    be->conv_transpose2x2 = sam_cpu_conv_transpose2x2;
    be->layer_norm = sam_cpu_layer_norm;
    be->layer_norm_cf = sam_cpu_layer_norm_cf;
    be->gelu = sam_cpu_gelu;
    be->relu = sam_cpu_relu;
    be->sigmoid = sam_cpu_sigmoid;
    be->add = sam_cpu_add;
    be->mul = sam_cpu_mul;
    be->add_row = sam_cpu_add_row;
    be->mul_row = sam_cpu_mul_row;
    be->axpby = sam_cpu_axpby;
    be->softmax = sam_cpu_softmax;
    be->maxpool2x2 = sam_cpu_maxpool2x2;
    be->resize_bilinear = sam_cpu_resize_bilinear;
    be->upsample_nearest = sam_cpu_upsample_nearest;
    be->permute = sam_cpu_permute;
    be->concat_last = sam_cpu_concat_last;
    be->attention = sam_cpu_attention;
    be->linear_ep = sam_cpu_linear_ep;
    be->window_partition = sam_cpu_window_partition;
    be->window_unpartition_add = sam_cpu_window_unpartition_add;
    be->maxpool2x2_ld = sam_cpu_maxpool2x2_ld;
    sam_cpu_install_memory(be);
    be->destroy = sam_backend_cpu_free;
    return be;
}

void sam_backend_cpu_free(sam_backend *be) {
    if (!be) return;
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    sam_threadpool_free(be->pool);
    sam_cpu_wreg_free(be);
    pthread_mutex_destroy(&cb->wreg_mu);
    pthread_mutex_destroy(&cb->scratch_mu);
    sam_free(cb->scratch);
    sam_free(cb);
}

sam_attn_params sam_attn_dense(int heads, int Lq, int Lk, int d_qk, int d_v) {
    sam_attn_params p;
    memset(&p, 0, sizeof p);
    p.batch = 1;
    p.heads = heads;
    p.Lq = Lq;
    p.Lk = Lk;
    p.d_qk = d_qk;
    p.d_v = d_v;
    p.q_stride = (int64_t)heads * d_qk;
    p.k_stride = (int64_t)heads * d_qk;
    p.v_stride = (int64_t)heads * d_v;
    p.o_stride = (int64_t)heads * d_v;
    p.q_batch = (int64_t)Lq * p.q_stride;
    p.k_batch = (int64_t)Lk * p.k_stride;
    p.v_batch = (int64_t)Lk * p.v_stride;
    p.o_batch = (int64_t)Lq * p.o_stride;
    p.scale = d_qk > 0 ? 1.0f / sqrtf((float)d_qk) : 1.0f;
    return p;
}
