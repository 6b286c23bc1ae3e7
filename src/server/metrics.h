/* Service metrics in Prometheus text format: counters, gauges and histograms
 * with fixed buckets. All functions are thread-safe. */
#ifndef SAM_SERVER_METRICS_H
#define SAM_SERVER_METRICS_H

#include <stddef.h>

typedef enum {
    SAM_H_REQUEST_SECONDS = 0,   /* every HTTP request, until the response is queued */
    SAM_H_DECODE_SECONDS,        /* upload decode + resize at session start */
    SAM_H_PROMPT_SECONDS,        /* prompt / mask / clear calls */
    SAM_H_PROPAGATE_FRAME_SECONDS, /* one propagated frame (all objects) */
    SAM_H_PROPAGATE_SECONDS,     /* one whole propagate request */
    SAM_H_UPLOAD_BYTES,          /* size of uploads */
    SAM_H_SESSION_BYTES,         /* memory of a session when it closes */
    SAM_H_ENCODE_SECONDS,        /* image encoder, one frame */
    SAM_H_TRACK_STEP_SECONDS,    /* SAM heads + memory attention (+ memory encoder), all objects of a frame */
    SAM_H_COUNT
} sam_histogram_id;

typedef enum {
    SAM_C_SESSIONS_CREATED = 0,
    SAM_C_SESSIONS_CLOSED,
    SAM_C_SESSIONS_EXPIRED,
    SAM_C_SESSIONS_REJECTED,     /* 429 at admission */
    SAM_C_FRAMES_PROPAGATED,
    SAM_C_PROPAGATIONS_CANCELLED,
    SAM_C_COUNT
} sam_counter_id;

void sam_metrics_observe(sam_histogram_id h, double value);
void sam_metrics_inc(sam_counter_id c, double by);
/* Count one finished request by route pattern (e.g. "/session/{id}/prompt") and status. */
void sam_metrics_request(const char *method, const char *route, int status);

typedef struct {
    int active_sessions, max_sessions;
    size_t memory_bytes, memory_budget_bytes;
    double uptime_s;
    int model_loaded;
    const char *device;          /* the model's back end ("cpu", "cuda", ...); NULL: none */
    size_t device_memory_used, device_memory_total; /* device back ends only (total 0: not reported) */
} sam_metrics_gauges;

/* Render everything; returns a malloc'd string (free with free()). */
char *sam_metrics_render(const sam_metrics_gauges *g);

#endif
