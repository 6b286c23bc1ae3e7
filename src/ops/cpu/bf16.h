/* bf16 kernels of the CPU back end (SAM2_PRECISION=bf16): bf16 operands,
 * fp32 accumulation. Private to src/ops/cpu and its tests. */
#ifndef SAM_OPS_CPU_BF16_H
#define SAM_OPS_CPU_BF16_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/cpu/cpu_internal.h"
#include "ops/ops.h"

/* Which instructions the bf16 kernels use. */
/* AMX-BF16 tiles, AVX512_BF16 vdpbf16ps, AVX-512F FMAs, plain C: best first. */
enum { SAM_BF16_PATH_AMX = 0, SAM_BF16_PATH_NATIVE = 1, SAM_BF16_PATH_AVX512F = 2, SAM_BF16_PATH_C = 3 };
/* The path in use (the best the CPU has unless forced). */
int sam_bf16_path(void);
/* Tests: force a path (one the CPU can run), -1 = back to automatic. Not thread-safe. */
void sam_bf16_force_path(int path);

/* dst (n) = src rounded to bf16, nearest even (NaN stays NaN). */
void sam_bf16_from_f32(uint16_t *dst, const float *src, int64_t n);
/* f rounded to the nearest bf16, as a float. */
float sam_bf16_round(float f);

/* y (M, N) = bf16(x (M, K)) . bf16(w (N, K))^T + b (N) or NULL, fp32 sums.
 * false (nothing written) when the packed operands do not fit the scratch. */
bool sam_cpu_linear_bf16(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N,
                         int K);

/* Same with the epilogue of linear_ep (ep NULL: none). */
bool sam_cpu_linear_bf16_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N,
                            int K, const sam_cpu_ep *ep);

/* Bytes of prepared (linear_prepare) weight panels the back end holds. */
size_t sam_bf16_prepared_bytes(sam_backend *be);

/* Attention as sam_backend.attention with bf16 products (fp32 softmax and sums).
 * false (nothing written) when the CPU has no fast bf16 path or the packed K/V
 * do not fit the scratch; the caller then runs fp32. */
bool sam_cpu_attention_bf16(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                            const sam_attn_params *p);

#endif
