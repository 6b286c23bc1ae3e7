/* A small tensor descriptor: dtype (float32 compute; F16/BF16 storage for
 * weights), shape and strides in elements, and views (reshape, permute,
 * slice, select) that share the data. Kernels take raw float pointers; this
 * type is how shapes travel and how stored tensors become float32.
 *
 * Thread safety: plain values; views of the same data may be read anywhere. */
#ifndef SAM_CORE_TENSOR_H
#define SAM_CORE_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

#define SAM_TENSOR_MAX_DIMS 8

typedef struct {
    sam2d_dtype dtype;                      /* SAM2D_F32, SAM2D_F16, SAM2D_BF16 (others: raw) */
    int ndim;
    int64_t shape[SAM_TENSOR_MAX_DIMS];
    int64_t stride[SAM_TENSOR_MAX_DIMS];    /* elements between neighbours along each dim */
    void *data;                             /* first element */
} sam_tensor;

/* Contiguous (C order) descriptor over existing data. */
sam_tensor sam_tensor_make(void *data, sam2d_dtype dtype, int ndim, const int64_t *shape);
/* Allocate a contiguous tensor (sam_malloc); free with sam_tensor_free. */
sam2d_status sam_tensor_alloc(sam2d_dtype dtype, int ndim, const int64_t *shape, sam_tensor *out);
void sam_tensor_free(sam_tensor *t);

int64_t sam_tensor_numel(const sam_tensor *t);
bool sam_tensor_is_contiguous(const sam_tensor *t);
bool sam_tensor_same_shape(const sam_tensor *a, const sam_tensor *b);

/* Views (no copy). Errors (bad dims, non-contiguous reshape) -> SAM2D_ERR_INVALID_ARG. */
sam2d_status sam_tensor_reshape(const sam_tensor *t, int ndim, const int64_t *shape, sam_tensor *out);
sam2d_status sam_tensor_permute(const sam_tensor *t, const int *perm, sam_tensor *out);
sam2d_status sam_tensor_slice(const sam_tensor *t, int dim, int64_t start, int64_t len, sam_tensor *out);
sam2d_status sam_tensor_select(const sam_tensor *t, int dim, int64_t index, sam_tensor *out); /* drops dim */

/* Element at a multi-index, as float32 (any storage dtype). */
float sam_tensor_get(const sam_tensor *t, const int64_t *index);
/* Copy any view (any strides, F32/F16/BF16) into dst as contiguous float32 (numel floats). */
sam2d_status sam_tensor_to_f32(const sam_tensor *t, float *dst);
/* Store contiguous float32 src into a view of dtype F32/F16/BF16 (round to nearest even). */
sam2d_status sam_tensor_from_f32(sam_tensor *t, const float *src);

/* Scalar conversions (IEEE half; bfloat16 as torch: nearest even, NaN -> 0x7fc0). */
float sam_f16_to_f32(uint16_t h);
uint16_t sam_f32_to_f16(float f);
float sam_bf16_to_f32_value(uint16_t h);
uint16_t sam_f32_to_bf16_value(float f);

#endif
