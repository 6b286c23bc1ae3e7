#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Large enough for a config check that lists every mismatched tensor. */
static _Thread_local char last_error[32768];

const char *sam2d_status_str(sam2d_status s) {
    switch (s) {
    case SAM2D_OK: return "ok";
    case SAM2D_ERR_INVALID_ARG: return "invalid argument";
    case SAM2D_ERR_IO: return "i/o error";
    case SAM2D_ERR_FORMAT: return "format error";
    case SAM2D_ERR_UNSUPPORTED: return "unsupported";
    case SAM2D_ERR_NOMEM: return "out of memory";
    case SAM2D_ERR_LIMIT: return "limit exceeded";
    case SAM2D_ERR_MISMATCH: return "mismatch";
    case SAM2D_ERR_NOT_FOUND: return "not found";
    case SAM2D_ERR_STATE: return "invalid state";
    case SAM2D_ERR_CANCELLED: return "cancelled";
    case SAM2D_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *sam2d_last_error(void) { return last_error; }

void sam_error_clear(void) { last_error[0] = 0; }

sam2d_status sam_error_set(sam2d_status s, const char *file, int line, const char *fmt, ...) {
    char msg[24576];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    snprintf(last_error, sizeof last_error, "%s (%s:%d)", msg, base ? base + 1 : file, line);
    return s;
}

sam2d_status sam_error_wrap(sam2d_status s, const char *fmt, ...) {
    char prefix[1024];
    static _Thread_local char old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    snprintf(last_error, sizeof last_error, "%.1000s: %.31000s", prefix, old);
    return s;
}

size_t sam2d_dtype_size(sam2d_dtype t) {
    switch (t) {
    case SAM2D_F32: case SAM2D_I32: return 4;
    case SAM2D_F16: case SAM2D_BF16: return 2;
    case SAM2D_I64: return 8;
    case SAM2D_U8: case SAM2D_BOOL: return 1;
    }
    return 0;
}

const char *sam2d_dtype_name(sam2d_dtype t) {
    switch (t) {
    case SAM2D_F32: return "F32";
    case SAM2D_F16: return "F16";
    case SAM2D_BF16: return "BF16";
    case SAM2D_I64: return "I64";
    case SAM2D_I32: return "I32";
    case SAM2D_U8: return "U8";
    case SAM2D_BOOL: return "BOOL";
    }
    return "?";
}
