/* Logging for the service and the CLI: one line per event to stderr and, when
 * set, to a file; text ("2026-11-27T04:19:17Z INFO msg key=value") or JSON
 * lines ({"ts":...,"level":...,"msg":...}). Thread-safe. */
#ifndef SAM_CORE_LOG_H
#define SAM_CORE_LOG_H

#include <stdbool.h>

typedef enum { SAM_LOG_DEBUG = 0, SAM_LOG_INFO, SAM_LOG_WARN, SAM_LOG_ERROR } sam_log_level;

/* json: JSON lines instead of text. path: also append to this file (NULL: none).
 * Returns 0, or -1 when the file cannot be opened (stderr logging still works). */
int sam_log_init(bool json, const char *path, sam_log_level min_level);
void sam_log_close(void);

/* msg is a plain sentence; kv is NULL or pairs "key", "value", ..., NULL
 * rendered as key=value (text) or fields (JSON). */
void sam_log(sam_log_level level, const char *msg, ...) __attribute__((sentinel));
/* printf-style message without fields. */
void sam_logf(sam_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
