/* fp32 Linear through our AVX-512 kernel on prepared (packed) weights. Private to src/ops/cpu. */
#ifndef SAM_OPS_CPU_GEMM_F32_H
#define SAM_OPS_CPU_GEMM_F32_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/cpu/cpu_internal.h"
#include "ops/ops.h"

/* The CPU runs the kernel (AVX-512F/BW/VL). */
bool sam_f32_kernel_available(void);
/* Floats of w (N, K) packed: panels of 32 columns, (K, 32) each, zero past N. */
size_t sam_f32_packed_floats(int N, int K);
/* Pack panel p of w (N, K) into wp (sam_f32_packed_floats, 64-byte aligned). */
void sam_f32_pack_panel(float *wp, const float *w, int N, int K, int p);
/* y (M, N) = x (M, K) . w^T + b (N) or NULL, from the packed w. */
void sam_cpu_linear_f32_packed(sam_backend *be, float *y, const float *x, const float *wp, const float *b, int M,
                               int N, int K);

/* Same packing w per call into the scratch; false (nothing written) when the
 * CPU lacks AVX-512 or the packed w does not fit the scratch. */
bool sam_cpu_linear_f32(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K);
/* Same with the epilogue of linear_ep (ep NULL: none). */
bool sam_cpu_linear_f32_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N,
                           int K, const sam_cpu_ep *ep);

#endif
