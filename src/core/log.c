#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static bool log_json;
static FILE *log_file;
static sam_log_level log_min = SAM_LOG_INFO;

static const char *level_name(sam_log_level l) {
    switch (l) {
    case SAM_LOG_DEBUG: return "DEBUG";
    case SAM_LOG_INFO: return "INFO";
    case SAM_LOG_WARN: return "WARN";
    case SAM_LOG_ERROR: return "ERROR";
    }
    return "INFO";
}

int sam_log_init(bool json, const char *path, sam_log_level min_level) {
    pthread_mutex_lock(&log_mu);
    log_json = json;
    log_min = min_level;
    if (log_file) fclose(log_file);
    log_file = NULL;
    int rc = 0;
    if (path && *path) {
        log_file = fopen(path, "a");
        if (!log_file) rc = -1;
    }
    pthread_mutex_unlock(&log_mu);
    return rc;
}

void sam_log_close(void) {
    pthread_mutex_lock(&log_mu);
    if (log_file) fclose(log_file);
    log_file = NULL;
    pthread_mutex_unlock(&log_mu);
}

/* JSON string escaping into a fixed buffer (truncates long values). */
static void json_escape(char *dst, size_t cap, const char *s) {
    size_t j = 0;
    for (; *s && j + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[j++] = '\\';
            dst[j++] = (char)c;
        } else if (c < 0x20) {
            j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", c);
        } else {
            dst[j++] = (char)c;
        }
    }
    dst[j] = 0;
}

static void emit(sam_log_level level, const char *msg, va_list kv) {
    char line[4096], esc[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t n = 0;
    if (log_json) {
        json_escape(esc, sizeof esc, msg);
        n += (size_t)snprintf(line + n, sizeof line - n, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"", ts,
                              level_name(level), esc);
    } else {
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %-5s %s", ts, level_name(level), msg);
    }
    for (;;) {
        const char *k = va_arg(kv, const char *);
        if (!k || n >= sizeof line - 8) break;
        const char *v = va_arg(kv, const char *);
        if (!v) v = "";
        if (log_json) {
            char ek[128];
            json_escape(ek, sizeof ek, k);
            json_escape(esc, sizeof esc, v);
            n += (size_t)snprintf(line + n, sizeof line - n, ",\"%s\":\"%s\"", ek, esc);
        } else {
            n += (size_t)snprintf(line + n, sizeof line - n, strchr(v, ' ') ? " %s=\"%s\"" : " %s=%s", k, v);
        }
    }
    if (n > sizeof line - 3) n = sizeof line - 3;
    if (log_json) line[n++] = '}';
    line[n++] = '\n';
    line[n] = 0;
    pthread_mutex_lock(&log_mu);
    fputs(line, stderr);
    if (log_file) {
        fputs(line, log_file);
        fflush(log_file);
    }
    pthread_mutex_unlock(&log_mu);
}

void sam_log(sam_log_level level, const char *msg, ...) {
    if (level < log_min) return;
    va_list ap;
    va_start(ap, msg);
    emit(level, msg, ap);
    va_end(ap);
}

static void emit_plain(sam_log_level level, const char *msg, ...) {
    va_list ap;
    va_start(ap, msg);
    emit(level, msg, ap);
    va_end(ap);
}

void sam_logf(sam_log_level level, const char *fmt, ...) {
    if (level < log_min) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit_plain(level, msg, (const char *)NULL);
}
