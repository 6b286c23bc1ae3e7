/* NumPy .npy v1/v2 files: read (f4, f8, i4, i8, u1, b1; C order, little endian)
 * and write float32 / uint8. Used by the replay runner and the golden tests. */
#ifndef SAM_CORE_NPY_H
#define SAM_CORE_NPY_H

#include <stdint.h>

#include "sam2d/sam2d.h"

#define SAM_NPY_MAX_DIMS 8

typedef struct {
    char descr[8];     /* e.g. "<f4" */
    int ndim;
    int64_t shape[SAM_NPY_MAX_DIMS];
    int64_t count;     /* elements */
    float *data;       /* (count) converted to float32, sam_malloc'd */
} sam_npy;

/* Read any supported dtype, converting to float32. */
sam2d_status sam_npy_read(const char *path, sam_npy *out);
void sam_npy_free(sam_npy *a);

sam2d_status sam_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
sam2d_status sam_npy_write_u8(const char *path, const uint8_t *data, int ndim, const int64_t *shape);

#endif
