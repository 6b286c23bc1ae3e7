/* Private to the CPU back end: its state behind the public table, the shared
 * scratch buffer, and the kernel entry points the table points at. */
#ifndef SAM_OPS_CPU_INTERNAL_H
#define SAM_OPS_CPU_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"
#include "ops/ops.h"

typedef struct {
    sam_backend base; /* first, so a sam_backend * is also a sam_cpu_backend * */
    /* One grow-only scratch buffer shared by all kernels. A kernel holds the
     * lock for its whole call (pool workers never take it, so no deadlock with
     * the pool's own lock). */
    pthread_mutex_t scratch_mu;
    float *scratch;     /* (scratch_cap,) */
    size_t scratch_cap; /* floats */
    size_t scratch_max; /* floats it may grow to (SAM_CPU_SCRATCH_MAX unless a test lowers it) */
    /* Prepared weights (linear_prepare): bf16 panels keyed by the weight pointer. */
    pthread_mutex_t wreg_mu;
    struct sam_bf16_wentry *wreg; /* (wreg_cap,) open addressing, NULL keys free */
    size_t wreg_cap, wreg_n;
    size_t wreg_bytes;            /* packed bytes held */
} sam_cpu_backend;

/* memory.c: buf/const memory, copies, fill/affine/binarize/rope. */
void sam_cpu_install_memory(sam_backend *be);

/* bf16.c: prepared weights. */
bool sam_cpu_linear_prepare(sam_backend *be, const float *w, int N, int K);
void sam_cpu_linear_forget(sam_backend *be, const float *w);
void sam_cpu_wreg_free(sam_backend *be);

/* Initial scratch (floats) reserved at create, and the size it may grow to. */
#define SAM_CPU_SCRATCH_INIT ((size_t)2 << 20) /* 8 MiB */
#define SAM_CPU_SCRATCH_MAX ((size_t)16 << 20) /* 64 MiB */

/* Lock the scratch and make it hold `want` floats if possible (growing up to
 * scratch_max); never returns less than the current capacity. *got receives
 * the usable size. Kernels size their blocks from *got; when even their
 * minimum does not fit they fall back to slower scratch-free loops. */
float *sam_cpu_scratch_lock(sam_backend *be, size_t want, size_t *got);
void sam_cpu_scratch_unlock(sam_backend *be);
/* Limit the scratch growth (floats); for tests of the fallback paths. */
void sam_cpu_set_scratch_max(sam_backend *be, size_t floats);

static inline int sam_cpu_threads(sam_backend *be) { return sam_threadpool_size(be->pool); }

/* Kernels (see ops.h for the contracts). */
void sam_cpu_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K);
void sam_cpu_gemm(sam_backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void sam_cpu_conv2d(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                    const sam_conv2d_params *p);
void sam_cpu_conv_transpose2x2(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N,
                               int H, int W, int C_in, int C_out);
void sam_cpu_layer_norm(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta,
                        int64_t rows, int C, float eps);
void sam_cpu_layer_norm_cf(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta, int N,
                           int C, int64_t HW, float eps);
void sam_cpu_gelu(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cpu_relu(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cpu_sigmoid(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cpu_add(sam_backend *be, float *y, const float *a, const float *b, int64_t n);
void sam_cpu_mul(sam_backend *be, float *y, const float *a, const float *b, int64_t n);
void sam_cpu_add_row(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C);
void sam_cpu_mul_row(sam_backend *be, float *y, const float *x, const float *s, int64_t rows, int C);
void sam_cpu_axpby(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n);
void sam_cpu_softmax(sam_backend *be, float *y, const float *x, int64_t rows, int n);
void sam_cpu_maxpool2x2(sam_backend *be, float *y, const float *x, int N, int H, int W, int C);
void sam_cpu_resize_bilinear(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo,
                             bool antialias);
void sam_cpu_upsample_nearest(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw);
void sam_cpu_permute(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm);
void sam_cpu_concat_last(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows);
void sam_cpu_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                       const sam_attn_params *p);
void sam_cpu_linear_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                       sam_act act, const float *residual);
void sam_cpu_window_partition(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                              int nwin, bool norm, const float *gamma, const float *beta, float eps);
void sam_cpu_window_unpartition_add(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww,
                                    int w0, int nwin);
void sam_cpu_maxpool2x2_ld(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx);

/* The epilogue of linear_ep as the kernels pass it on: act, then + res, where
 * res (M, N) is at row stride N like y (NULL: none; may be y). */
typedef struct {
    sam_act act;
    const float *res;
} sam_cpu_ep;
static inline bool sam_cpu_ep_none(const sam_cpu_ep *ep) { return !ep || (ep->act == SAM_ACT_NONE && !ep->res); }
/* GELU with a fast reciprocal (~1e-7 from the exact form): the bf16 mode's epilogues. */
#define SAM_CPU_ACT_GELU_FAST ((sam_act)100)
/* y (rows, cols) at ldy = act(src (at lds) + bias (cols) or 0) + res (at ldr) or 0.
 * res == y and src == y allowed (each element is read before it is written). */
void sam_cpu_ep_apply(float *y, int64_t ldy, const float *src, int64_t lds, int rows, int cols, const float *bias,
                      sam_act act, const float *res, int64_t ldr);
/* LayerNorm of one row (as layer_norm: double moments, biased variance). */
void sam_cpu_ln_row(float *y, const float *x, int C, const float *gamma, const float *beta, float eps);

#endif
