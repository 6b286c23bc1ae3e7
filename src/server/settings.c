#include "server/settings.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "sam2d/model.h"

typedef enum { T_INT, T_STR, T_BOOL } setting_type;

typedef struct {
    const char *env;     /* environment variable */
    const char *flag;    /* --flag */
    setting_type type;
    size_t offset;
    size_t size;         /* for strings: buffer size */
    const char *def;
    long min, max;       /* ints: bounds */
    const char *choices; /* strings: "a|b|c" or NULL */
    const char *help;
} setting;

#define OFF(f) offsetof(sam_settings, f), sizeof(((sam_settings *)0)->f)

static const setting table[] = {
    {"PORT", "port", T_INT, OFF(port), "8002", 1, 65535, NULL, "TCP port to listen on"},
    {"HOST", "host", T_STR, OFF(host), "0.0.0.0", 0, 0, NULL, "address to listen on"},
    {"SESSION_TIMEOUT", "session-timeout", T_INT, OFF(session_timeout_s), "300", 1, 7 * 86400, NULL,
     "seconds of inactivity before a session expires"},
    {"MAX_CONCURRENT_SESSIONS", "max-sessions", T_INT, OFF(max_sessions), "2", 1, 1000, NULL, "sessions open at once"},
    {"CLEANUP_INTERVAL", "cleanup-interval", T_INT, OFF(cleanup_interval_s), "60", 1, 86400, NULL,
     "seconds between runs of the idle-session reaper"},
    {"MAX_VIDEO_FRAMES", "max-video-frames", T_INT, OFF(max_video_frames), "300", 1, 1000000, NULL,
     "frames a session may load"},
    {"MAX_FRAME_DIMENSION", "max-frame-dimension", T_INT, OFF(max_frame_dimension), "1920", 16, 16384, NULL,
     "largest width or height accepted"},
    {"SAM2_MODEL_SIZE", "model-size", T_STR, OFF(model_size), "base_plus", 0, 0, "tiny|small|base_plus|large",
     "which SAM 2.1 checkpoint to load from MODEL_DIR"},
    {"SAM2_DEVICE", "device", T_STR, OFF(device), "auto", 0, 0, "auto|cpu|cuda|cuda:N|devsim",
     "compute device: auto = the GPU when this build has one that works, else the CPU; devsim = the CPU "
     "kernels behind the GPU memory rules (tests)"},
    {"MODEL_DIR", "model-dir", T_STR, OFF(model_dir), "./models", 0, 0, NULL,
     "folder holding sam2.1_hiera_<size>.pt (or .safetensors)"},
    {"SAM2_CHECKPOINT", "checkpoint", T_STR, OFF(checkpoint), "", 0, 0, NULL,
     "a custom checkpoint file (overrides SAM2_MODEL_SIZE and MODEL_DIR)"},
    {"SAM2_CONFIG", "config", T_STR, OFF(config), "", 0, 0, NULL, "Meta-style YAML config of the custom checkpoint"},
    {"MAX_UPLOAD_MB", "max-upload-mb", T_INT, OFF(max_upload_mb), "512", 1, 65536, NULL,
     "largest upload accepted by /session/start, in MiB"},
    {"MAX_MEMORY_MB", "max-memory-mb", T_INT, OFF(max_memory_mb), "0", 0, 1 << 24, NULL,
     "memory budget for all sessions in MiB (admission by estimate); 0 = no budget"},
    {"API_TOKEN", "api-token", T_STR, OFF(api_token), "", 0, 0, NULL,
     "when set, every endpoint but /health needs 'Authorization: Bearer <token>'"},
    {"LOG_FORMAT", "log-format", T_STR, OFF(log_format), "text", 0, 0, "text|json", "log line format"},
    {"LOG_FILE", "log-file", T_STR, OFF(log_file), "", 0, 0, NULL, "also append logs to this file"},
    {"SAM2_PRECISION", "precision", T_STR, OFF(precision), "fp32", 0, 0, "fp32|bf16",
     "fp32 (equal to the reference) or bf16 (faster, within ~1e-2 of it)"},
    {"SAM2_THREADS", "threads", T_INT, OFF(threads), "0", 0, 1024, NULL, "compute threads; 0 = all CPUs"},
    {"HTTP_MAX_CONNECTIONS", "http-max-connections", T_INT, OFF(http_threads), "64", 1, 10000, NULL,
     "simultaneous HTTP connections (one thread each)"},
    {"HTTP_TIMEOUT", "http-timeout", T_INT, OFF(http_timeout_s), "120", 1, 86400, NULL,
     "seconds a connection may stay silent (idle keep-alive, stalled upload, client not reading) before it is "
     "closed"},
    {"STREAM_BUFFER_KB", "stream-buffer-kb", T_INT, OFF(stream_buffer_kb), "8192", 16, 1 << 20, NULL,
     "propagation output queued for a slow reader before the propagation waits for it"},
    {"MAX_OBJECTS", "max-objects", T_INT, OFF(max_objects), "64", 1, 100000, NULL,
     "objects one session may track"},
    {"DOWNSCALE_OVERSIZE", "downscale-oversize", T_BOOL, OFF(downscale_oversize), "0", 0, 1, NULL,
     "1: shrink videos larger than MAX_FRAME_DIMENSION instead of refusing them"},
};
#define NSETTINGS (sizeof table / sizeof table[0])

/* "cuda:N" with N a small decimal index (the choice "cuda:N" of the table). */
static bool cuda_index_ok(const char *v) {
    if (strncmp(v, "cuda:", 5) != 0 || !v[5]) return false;
    char *end;
    errno = 0;
    long i = strtol(v + 5, &end, 10);
    return !*end && !errno && i >= 0 && i <= 64 && v[5] >= '0' && v[5] <= '9';
}

static sam2d_status apply(sam_settings *s, const setting *t, const char *value, const char *origin) {
    char *dst = (char *)s + t->offset;
    if (t->type == T_INT || t->type == T_BOOL) {
        char *end;
        errno = 0;
        long v;
        if (t->type == T_BOOL && (!strcasecmp(value, "true") || !strcasecmp(value, "yes"))) v = 1, end = "";
        else if (t->type == T_BOOL && (!strcasecmp(value, "false") || !strcasecmp(value, "no"))) v = 0, end = "";
        else v = strtol(value, &end, 10);
        if (!*value || *end || errno)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "%s (%s): '%s' is not an integer", t->env, origin, value);
        if (v < t->min || v > t->max)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "%s (%s): %ld is out of range [%ld, %ld]", t->env, origin, v, t->min,
                           t->max);
        if (t->type == T_BOOL) *(bool *)dst = v != 0;
        else *(int *)dst = (int)v;
        return SAM2D_OK;
    }
    if (strlen(value) >= t->size)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "%s (%s): value longer than %zu characters", t->env, origin, t->size - 1);
    if (t->choices) {
        const char *c = t->choices;
        size_t n = strlen(value);
        bool ok = false;
        while (*c) {
            size_t k = strcspn(c, "|");
            if (k == 6 && !strncmp(c, "cuda:N", 6)) ok = ok || cuda_index_ok(value); /* N: an index */
            else if (k == n && !strncmp(c, value, n)) ok = true;
            c += k + (c[k] == '|');
        }
        if (!ok)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "%s (%s): '%s' is not one of %s", t->env, origin, value, t->choices);
    }
    memcpy(dst, value, strlen(value) + 1);
    return SAM2D_OK;
}

void sam_settings_defaults(sam_settings *s) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < NSETTINGS; i++) apply(s, &table[i], table[i].def, "default");
}

sam2d_status sam_settings_load(sam_settings *s, int argc, char **argv) {
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(table[i].env);
        if (v) SAM_TRY(apply(s, &table[i], v, "environment"));
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "unexpected argument '%s'", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const setting *t = NULL;
        for (size_t i = 0; i < NSETTINGS; i++)
            if (strlen(table[i].flag) == n && !strncmp(table[i].flag, name, n)) t = &table[i];
        if (!t) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "unknown option '%s' (see --help)", arg);
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (a + 1 >= argc) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "option --%s needs a value", t->flag);
            value = argv[++a];
        }
        SAM_TRY(apply(s, t, value, "command line"));
    }
    return SAM2D_OK;
}

void sam_settings_usage(FILE *f) {
    fprintf(f, "options (each also an environment variable; a flag overrides the variable):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *t = &table[i];
        char def[64];
        snprintf(def, sizeof def, "%s", *t->def ? t->def : "unset");
        fprintf(f, "  --%-22s %-24s default %-10s %s", t->flag, t->env, def, t->help);
        if (t->choices) fprintf(f, " (%s)", t->choices);
        if (t->type == T_INT) fprintf(f, " [%ld..%ld]", t->min, t->max);
        fputc('\n', f);
    }
}

void sam_settings_checkpoint_path(const sam_settings *s, char *buf, size_t len) {
    if (s->checkpoint[0]) snprintf(buf, len, "%s", s->checkpoint);
    else sam2d_default_checkpoint_path(s->model_dir, s->model_size, buf, len);
}
