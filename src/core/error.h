/* Error reporting inside the library: record a message with file and line,
 * return the status. Library code never exits; only main() does. */
#ifndef SAM_CORE_ERROR_H
#define SAM_CORE_ERROR_H

#include "sam2d/sam2d.h"

sam2d_status sam_error_set(sam2d_status s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prepend context to the current message ("loading x.pt: " + old). */
sam2d_status sam_error_wrap(sam2d_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sam_error_clear(void);

/* return SAM_ERR(SAM2D_ERR_FORMAT, "bad magic %x", m); */
#define SAM_ERR(status, ...) sam_error_set((status), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate a failing status unchanged (message already recorded). */
#define SAM_TRY(expr)                         \
    do {                                      \
        sam2d_status sam_try_s_ = (expr);     \
        if (sam_try_s_ != SAM2D_OK) return sam_try_s_; \
    } while (0)

#endif
