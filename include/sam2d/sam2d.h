/* sam2d — SAM 2 / SAM 2.1 in C. Common definitions: version, status codes, errors.
 *
 * Thread safety: sam2d_last_error() is per thread; everything else here is pure. */
#ifndef SAM2D_SAM2D_H
#define SAM2D_SAM2D_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAM2D_VERSION "0.1.0"

typedef enum {
    SAM2D_OK = 0,
    SAM2D_ERR_INVALID_ARG,  /* caller passed something out of range or malformed */
    SAM2D_ERR_IO,           /* open/read/write failed */
    SAM2D_ERR_FORMAT,       /* file bytes malformed, truncated or lying */
    SAM2D_ERR_UNSUPPORTED,  /* well-formed but outside what we accept */
    SAM2D_ERR_NOMEM,        /* allocation failed or memory budget exceeded */
    SAM2D_ERR_LIMIT,        /* a configured resource limit was reached */
    SAM2D_ERR_MISMATCH,     /* config and checkpoint disagree */
    SAM2D_ERR_NOT_FOUND,    /* unknown name, id or index */
    SAM2D_ERR_STATE,        /* call not valid in the current state */
    SAM2D_ERR_CANCELLED,    /* stopped on request */
    SAM2D_ERR_INTERNAL,     /* a bug: please report */
} sam2d_status;

typedef enum {
    SAM2D_F32 = 0,
    SAM2D_F16,
    SAM2D_BF16,
    SAM2D_I64,
    SAM2D_I32,
    SAM2D_U8,
    SAM2D_BOOL,
} sam2d_dtype;

/* Short constant name of a status ("format error", ...). */
const char *sam2d_status_str(sam2d_status s);

/* Detailed message of the last failing call on this thread, with the source
 * location that raised it. Never NULL; "" when nothing failed yet. */
const char *sam2d_last_error(void);

/* Bytes per element of a dtype (0 for an unknown value). */
size_t sam2d_dtype_size(sam2d_dtype t);
const char *sam2d_dtype_name(sam2d_dtype t);

/* Bytes currently allocated through sam2d's accounting allocator, and the peak. */
size_t sam2d_memory_used(void);
size_t sam2d_memory_peak(void);

#ifdef __cplusplus
}
#endif
#endif
