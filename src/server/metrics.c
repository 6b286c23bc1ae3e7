#include "server/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB 14

typedef struct {
    const char *name, *help;
    double bounds[NB]; /* upper bounds; unused tail = 0 */
    int nb;
    unsigned long long buckets[NB];
    unsigned long long count;
    double sum;
} histogram;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static histogram hists[SAM_H_COUNT] = {
    [SAM_H_REQUEST_SECONDS] = {"sam2d_request_duration_seconds", "HTTP request handling time",
                               {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}, 14, {0}, 0, 0},
    [SAM_H_DECODE_SECONDS] = {"sam2d_decode_duration_seconds", "video decode and resize at session start",
                              {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}, 14, {0}, 0, 0},
    [SAM_H_PROMPT_SECONDS] = {"sam2d_prompt_duration_seconds", "prompt, mask and clear calls",
                              {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, 14, {0}, 0, 0},
    [SAM_H_PROPAGATE_FRAME_SECONDS] = {"sam2d_propagate_frame_duration_seconds", "one propagated frame",
                                       {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, 14,
                                       {0}, 0, 0},
    [SAM_H_PROPAGATE_SECONDS] = {"sam2d_propagate_duration_seconds", "one whole propagate request",
                                 {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600, 7200}, 14, {0}, 0, 0},
    [SAM_H_UPLOAD_BYTES] = {"sam2d_upload_size_bytes", "size of uploaded videos",
                            {1e4, 1e5, 1e6, 5e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2e9, 4e9, 8e9, 1.6e10}, 14, {0}, 0, 0},
    [SAM_H_SESSION_BYTES] = {"sam2d_session_memory_bytes", "memory held by a session when it ended",
                             {1e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10, 1.28e11}, 14,
                             {0}, 0, 0},
    [SAM_H_ENCODE_SECONDS] = {"sam2d_encode_duration_seconds", "image encoder, one frame",
                              {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, 14, {0}, 0, 0},
    [SAM_H_TRACK_STEP_SECONDS] = {"sam2d_track_step_duration_seconds",
                                  "SAM heads, memory attention and memory encoder for all objects of one frame",
                                  {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, 14, {0},
                                  0, 0},
};

static struct {
    const char *name, *help;
    double value;
} counters[SAM_C_COUNT] = {
    [SAM_C_SESSIONS_CREATED] = {"sam2d_sessions_created_total", "sessions started", 0},
    [SAM_C_SESSIONS_CLOSED] = {"sam2d_sessions_closed_total", "sessions closed by a client", 0},
    [SAM_C_SESSIONS_EXPIRED] = {"sam2d_sessions_expired_total", "sessions freed after SESSION_TIMEOUT idle", 0},
    [SAM_C_SESSIONS_REJECTED] = {"sam2d_sessions_rejected_total", "session starts refused by a limit (429)", 0},
    [SAM_C_FRAMES_PROPAGATED] = {"sam2d_frames_propagated_total", "frames produced by propagation", 0},
    [SAM_C_PROPAGATIONS_CANCELLED] = {"sam2d_propagations_cancelled_total",
                                      "propagations stopped by cancel or client disconnect", 0},
};

#define MAX_ROUTES 96
static struct {
    char method[8], route[48];
    int status;
    unsigned long long n;
} routes[MAX_ROUTES];
static int nroutes;

void sam_metrics_observe(sam_histogram_id id, double v) {
    if ((unsigned)id >= SAM_H_COUNT) return;
    pthread_mutex_lock(&mu);
    histogram *h = &hists[id];
    for (int i = 0; i < h->nb; i++)
        if (v <= h->bounds[i]) h->buckets[i]++;
    h->count++;
    h->sum += v;
    pthread_mutex_unlock(&mu);
}

void sam_metrics_inc(sam_counter_id c, double by) {
    if ((unsigned)c >= SAM_C_COUNT) return;
    pthread_mutex_lock(&mu);
    counters[c].value += by;
    pthread_mutex_unlock(&mu);
}

void sam_metrics_request(const char *method, const char *route, int status) {
    pthread_mutex_lock(&mu);
    int i;
    for (i = 0; i < nroutes; i++)
        if (routes[i].status == status && !strcmp(routes[i].route, route) && !strcmp(routes[i].method, method)) break;
    if (i == nroutes && nroutes < MAX_ROUTES) {
        snprintf(routes[i].method, sizeof routes[i].method, "%s", method);
        snprintf(routes[i].route, sizeof routes[i].route, "%s", route);
        routes[i].status = status;
        routes[i].n = 0;
        nroutes++;
    }
    if (i < nroutes) routes[i].n++;
    pthread_mutex_unlock(&mu);
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

__attribute__((format(printf, 2, 3))) static void put(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap * 2 + (size_t)n;
        char *nb = realloc(b->buf, nc);
        if (!nb) return;
        b->buf = nb;
        b->cap = nc;
    }
}

/* Prometheus label value escaping (backslash, quote, newline), so no label can break a line. */
static void label_escape(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (; *in && n + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') out[n++] = '\\', out[n++] = *in;
        else if (*in == '\n') out[n++] = '\\', out[n++] = 'n';
        else out[n++] = *in;
    }
    out[n] = 0;
}

char *sam_metrics_render(const sam_metrics_gauges *g) {
    sbuf b = {malloc(8192), 0, 8192};
    if (!b.buf) return NULL;
    b.buf[0] = 0;
    put(&b, "# HELP sam2d_up 1 while the service runs\n# TYPE sam2d_up gauge\nsam2d_up 1\n");
    put(&b, "# HELP sam2d_model_loaded 1 when the model is loaded\n# TYPE sam2d_model_loaded gauge\nsam2d_model_loaded %d\n",
        g->model_loaded);
    put(&b, "# HELP sam2d_sessions_active sessions open now\n# TYPE sam2d_sessions_active gauge\nsam2d_sessions_active %d\n",
        g->active_sessions);
    put(&b, "# HELP sam2d_sessions_max MAX_CONCURRENT_SESSIONS\n# TYPE sam2d_sessions_max gauge\nsam2d_sessions_max %d\n",
        g->max_sessions);
    put(&b, "# HELP sam2d_memory_used_bytes bytes allocated by the service (model and sessions)\n"
            "# TYPE sam2d_memory_used_bytes gauge\nsam2d_memory_used_bytes %zu\n",
        g->memory_bytes);
    put(&b, "# HELP sam2d_memory_budget_bytes MAX_MEMORY_MB in bytes (0 = none)\n"
            "# TYPE sam2d_memory_budget_bytes gauge\nsam2d_memory_budget_bytes %zu\n",
        g->memory_budget_bytes);
    put(&b, "# HELP sam2d_uptime_seconds seconds since start\n# TYPE sam2d_uptime_seconds gauge\nsam2d_uptime_seconds %.3f\n",
        g->uptime_s);
    if (g->device) {
        char d[40];
        label_escape(g->device, d, sizeof d);
        put(&b, "# HELP sam2d_device_info the model's compute device (back end name)\n# TYPE sam2d_device_info gauge\n"
                "sam2d_device_info{device=\"%s\"} 1\n",
            d);
    }
    if (g->device_memory_total) {
        put(&b, "# HELP sam2d_device_memory_used_bytes device memory the back end holds (weights, buffers, scratch)\n"
                "# TYPE sam2d_device_memory_used_bytes gauge\nsam2d_device_memory_used_bytes %zu\n",
            g->device_memory_used);
        put(&b, "# HELP sam2d_device_memory_total_bytes the device's memory\n"
                "# TYPE sam2d_device_memory_total_bytes gauge\nsam2d_device_memory_total_bytes %zu\n",
            g->device_memory_total);
    }
    pthread_mutex_lock(&mu);
    for (int c = 0; c < SAM_C_COUNT; c++)
        put(&b, "# HELP %s %s\n# TYPE %s counter\n%s %.0f\n", counters[c].name, counters[c].help, counters[c].name,
            counters[c].name, counters[c].value);
    put(&b, "# HELP sam2d_requests_total HTTP requests by route and status\n# TYPE sam2d_requests_total counter\n");
    for (int i = 0; i < nroutes; i++) {
        char m[20], r[100];
        label_escape(routes[i].method, m, sizeof m);
        label_escape(routes[i].route, r, sizeof r);
        put(&b, "sam2d_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n", m, r, routes[i].status,
            routes[i].n);
    }
    for (int h = 0; h < SAM_H_COUNT; h++) {
        histogram *x = &hists[h];
        put(&b, "# HELP %s %s\n# TYPE %s histogram\n", x->name, x->help, x->name);
        for (int i = 0; i < x->nb; i++) put(&b, "%s_bucket{le=\"%g\"} %llu\n", x->name, x->bounds[i], x->buckets[i]);
        put(&b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", x->name, x->count, x->name, x->sum,
            x->name, x->count);
    }
    pthread_mutex_unlock(&mu);
    return b.buf;
}
