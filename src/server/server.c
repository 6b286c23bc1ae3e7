#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "media/frames.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/resize_pil.h"
#include "media/rle.h"
#include "sam2d/video_predictor.h"
#include "server/device.h"
#include "server/metrics.h"
#include "server/sessions.h"

#define MAX_JSON_BODY (32u << 20)  /* POST .../mask: a 4K frame's RLE string stays far below */
#define SMALL_JSON_BODY (1u << 20) /* every other JSON request (64 points take ~3 kB) */
/* A parsed JSON value costs ~50 bytes whatever its text: 30 MB of "0," would be 0.7 GB parsed. Requests
 * need a few hundred values (64 points); the mask's RLE is one string. */
#define MAX_JSON_VALUES 10000

struct sam_server {
    sam_settings cfg;
    sam2d_model *model;
    char model_name[128];
    struct MHD_Daemon *daemon;
    double started;
    int port;
    atomic_int in_flight;
    atomic_int busy;      /* handlers running and propagation threads alive: what SIGTERM drains */
    atomic_bool stopping;
    bool on_device;       /* the model's back end holds device memory (admission checks it) */
};

/* ---------- FIFO turn on the model ---------- */

static pthread_mutex_t turn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv = PTHREAD_COND_INITIALIZER;
static unsigned long turn_next, turn_serving;

static void turn_take(void) {
    pthread_mutex_lock(&turn_mu);
    unsigned long me = turn_next++;
    while (turn_serving != me) pthread_cond_wait(&turn_cv, &turn_mu);
    pthread_mutex_unlock(&turn_mu);
}

static void turn_give(void) {
    pthread_mutex_lock(&turn_mu);
    turn_serving++;
    pthread_cond_broadcast(&turn_cv);
    pthread_mutex_unlock(&turn_mu);
}

/* ---------- responses ---------- */

typedef struct {
    struct MHD_Connection *conn;
    sam_server *srv;
    const char *method;
    char route[48];   /* route pattern for metrics */
    int status;       /* what was queued */
} reqinfo;

static enum MHD_Result send_bytes(reqinfo *r, int status, const char *ctype, void *data, size_t len, bool take) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, data, take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    return ret;
}

static enum MHD_Result send_json(reqinfo *r, int status, json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text) return MHD_NO;
    return send_bytes(r, status, "application/json", text, strlen(text), true);
}

static const char *code_for(int status) {
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "too_large";
    case 415: return "unsupported_media";
    case 429: return "too_many_requests";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal" : "error";
    }
}

__attribute__((format(printf, 3, 4))) static enum MHD_Result send_error(reqinfo *r, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code_for(status), "message", msg);
    struct MHD_Response *resp;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (status == 429) MHD_add_response_header(resp, "Retry-After", "30");
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    if (status >= 500) sam_log(SAM_LOG_ERROR, "request failed", "route", r->route, "error", msg, NULL);
    return ret;
}

/* Map a library status to an HTTP status. */
static int http_status_of(sam2d_status st) {
    switch (st) {
    case SAM2D_ERR_INVALID_ARG: return 400;
    case SAM2D_ERR_NOT_FOUND: return 404;
    case SAM2D_ERR_STATE: return 409;
    case SAM2D_ERR_LIMIT: return 413;
    case SAM2D_ERR_FORMAT: case SAM2D_ERR_UNSUPPORTED: return 415;
    case SAM2D_ERR_CANCELLED: return 409;
    case SAM2D_ERR_NOMEM: return 503;
    default: return 500;
    }
}

/* Error text for clients: the library message without our source location. */
static const char *client_message(void) {
    static _Thread_local char buf[1024];
    snprintf(buf, sizeof buf, "%s", sam2d_last_error());
    char *loc = strrchr(buf, '(');
    if (loc && loc > buf && strstr(loc, ".c:") && loc[strlen(loc) - 1] == ')') {
        *loc = 0;
        size_t n = strlen(buf);
        while (n && buf[n - 1] == ' ') buf[--n] = 0;
    }
    return buf;
}

/* ---------- JSON request validation ---------- */

typedef struct {
    json_t *root;
    char err[256];
} jreq;

static bool jcheck_keys(jreq *j, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach(j->root, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, key)) ok = true;
        if (!ok) {
            snprintf(j->err, sizeof j->err, "unknown field '%s'", key);
            return false;
        }
    }
    return true;
}

/* Integer field: required or default; bounds inclusive. */
static bool jint(jreq *j, const char *name, bool required, long long def, long long lo, long long hi, long long *out) {
    json_t *v = json_object_get(j->root, name);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(j->err, sizeof j->err, "missing field '%s'", name);
            return false;
        }
        *out = def;
        return true;
    }
    if (!json_is_integer(v)) {
        snprintf(j->err, sizeof j->err, "field '%s' must be an integer", name);
        return false;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        snprintf(j->err, sizeof j->err, "field '%s' = %lld is out of range [%lld, %lld]", name, x, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

static bool jbool(jreq *j, const char *name, bool def, bool *out) {
    json_t *v = json_object_get(j->root, name);
    if (!v || json_is_null(v)) {
        *out = def;
        return true;
    }
    if (!json_is_boolean(v)) {
        snprintf(j->err, sizeof j->err, "field '%s' must be true or false", name);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

static bool jnumber(json_t *v, double *out) {
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return *out == *out && *out > -1e9 && *out < 1e9;
}

/* ---------- per-request context ---------- */

typedef struct {
    bool started;
    bool is_upload;
    /* JSON body */
    char *body;
    size_t len, cap;
    bool body_too_large;
    size_t body_limit;    /* bytes this route's JSON body may have */
    /* multipart upload */
    struct MHD_PostProcessor *pp;
    int fd;
    char tmp_path[256];
    size_t upload_bytes;
    bool upload_too_large, got_file, upload_io_error, extra_file;
    char filename[256];
    double t0;
    reqinfo info;
    bool counted;
    bool slot_reserved;   /* a session slot held since the upload began (released unless consumed) */
} reqctx;

static void reqctx_free(reqctx *c) {
    if (!c) return;
    if (c->slot_reserved) sam_sessions_unreserve(0, 0);
    if (c->pp) MHD_destroy_post_processor(c->pp);
    if (c->fd > 0) close(c->fd);
    if (c->tmp_path[0]) unlink(c->tmp_path);
    free(c->body);
    free(c);
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding;
    reqctx *c = cls;
    if (strcmp(key, "file") != 0) return MHD_YES; /* other fields are ignored */
    /* a second 'file' part would be appended to the first one's bytes: refuse it instead */
    if (c->got_file && off == 0) c->extra_file = true;
    c->got_file = true;
    if (filename && !c->filename[0]) snprintf(c->filename, sizeof c->filename, "%s", filename);
    if (c->upload_too_large || c->upload_io_error) return MHD_YES;
    size_t max = (size_t)c->info.srv->cfg.max_upload_mb << 20;
    if (c->upload_bytes + size > max) {
        c->upload_too_large = true;
        return MHD_YES;
    }
    if (c->fd <= 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(c->tmp_path, sizeof c->tmp_path, "%s/sam2d-upload-XXXXXX", dir && *dir ? dir : "/tmp");
        c->fd = mkstemp(c->tmp_path);
        if (c->fd < 0) {
            c->tmp_path[0] = 0;
            c->upload_io_error = true;
            return MHD_YES;
        }
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(c->fd, data + done, size - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            c->upload_io_error = true;
            return MHD_YES;
        }
        done += (size_t)w;
    }
    c->upload_bytes += size;
    return MHD_YES;
}

/* ---------- model timings ---------- */

/* Observe the model time spent since *prev (and advance it): encoder per frame
 * encoded, tracking steps + memory encodings together. */
static void observe_model_time(sam_session *s, sam2d_video_stats *prev, double *encode_s, double *track_s) {
    sam2d_video_stats now;
    sam2d_video_get_stats(s->vs, &now);
    double enc = now.encoder_s - prev->encoder_s;
    double trk = (now.step_s - prev->step_s) + (now.memory_encoder_s - prev->memory_encoder_s);
    if (now.encoder_calls > prev->encoder_calls) sam_metrics_observe(SAM_H_ENCODE_SECONDS, enc);
    if (now.step_calls > prev->step_calls || now.memory_encoder_calls > prev->memory_encoder_calls)
        sam_metrics_observe(SAM_H_TRACK_STEP_SECONDS, trk);
    if (encode_s) *encode_s = enc;
    if (track_s) *track_s = trk;
    *prev = now;
}

/* Log a model call with its timings. */
static void log_op(sam_session *s, const char *what, int frame, double total_s, double enc_s, double trk_s) {
    char f[16], t[32], e[32], k[32];
    snprintf(f, sizeof f, "%d", frame);
    snprintf(t, sizeof t, "%.1f", total_s * 1000);
    snprintf(e, sizeof e, "%.1f", enc_s * 1000);
    snprintf(k, sizeof k, "%.1f", trk_s * 1000);
    sam_log(SAM_LOG_INFO, what, "session", s->id, "frame", f, "ms", t, "encode_ms", e, "track_ms", k, NULL);
}

/* ---------- mask encoding ---------- */

/* JSON array of objects for one frame result: masks at video resolution. */
static char *objects_json(const sam2d_video_frame_result *r, int h, int w) {
    json_t *arr = json_array();
    size_t plane = (size_t)h * w;
    for (int i = 0; i < r->num_objects; i++) {
        char *counts = NULL;
        sam_rle rle;
        if (sam_rle_encode_f32(r->logits + plane * i, h, w, 0.0f, &rle) != SAM2D_OK) {
            json_decref(arr);
            return NULL;
        }
        sam2d_status st = sam_rle_to_string(&rle, &counts);
        sam_rle_free(&rle);
        if (st != SAM2D_OK) {
            json_decref(arr);
            return NULL;
        }
        double score = r->object_scores[i];
        json_array_append_new(arr, json_pack("{s:i,s:{s:[i,i],s:s},s:f}", "obj_id", r->obj_ids[i], "mask", "size",
                                             h, w, "counts", counts, "object_score", score));
        sam_free(counts);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

/* {"frame_idx":k,"objects":[...]} from a result; also caches the frame's masks. */
static char *frame_line(sam_session *s, const sam2d_video_frame_result *r) {
    char *objs = objects_json(r, s->height, s->width);
    if (!objs) return NULL;
    sam_session_store_frame(s, r->frame_idx, objs);
    size_t n = strlen(objs) + 64;
    char *line = malloc(n);
    if (line) snprintf(line, n, "{\"frame_idx\":%d,\"objects\":%s}", r->frame_idx, objs);
    free(objs);
    return line;
}

/* ---------- handlers ---------- */

static enum MHD_Result h_health(reqinfo *r) {
    sam_server *srv = r->srv;
    json_t *o = json_pack("{s:s,s:b,s:s,s:s,s:i,s:i,s:I,s:I,s:f}", "status", "ok", "model_loaded", srv->model != NULL,
                          "model", srv->model_name, "device", srv->model ? sam2d_model_device(srv->model) : "none",
                          "active_sessions", sam_sessions_count(), "max_sessions", srv->cfg.max_sessions,
                          "memory_bytes", (json_int_t)sam2d_memory_used(), "sessions_memory_bytes",
                          (json_int_t)sam_sessions_memory(), "uptime_s", sam_now() - srv->started);
    json_object_set_new(o, "memory_budget_bytes", json_integer((json_int_t)srv->cfg.max_memory_mb << 20));
    if (srv->model) json_object_set_new(o, "precision", json_string(sam2d_model_precision(srv->model)));
    size_t dused, dtotal, dadmitted;
    sam_sessions_device_memory(&dused, &dtotal, &dadmitted);
    if (dtotal > 0) { /* a device back end: its memory, and what sessions are admitted for */
        json_object_set_new(o, "device_memory_used_bytes", json_integer((json_int_t)dused));
        json_object_set_new(o, "device_memory_total_bytes", json_integer((json_int_t)dtotal));
        json_object_set_new(o, "sessions_device_memory_bytes", json_integer((json_int_t)dadmitted));
    }
    return send_json(r, 200, o);
}

static enum MHD_Result h_metrics(reqinfo *r) {
    sam_server *srv = r->srv;
    sam_metrics_gauges g = {.active_sessions = sam_sessions_count(),
                            .max_sessions = srv->cfg.max_sessions,
                            .memory_bytes = sam2d_memory_used(),
                            .memory_budget_bytes = (size_t)srv->cfg.max_memory_mb << 20,
                            .uptime_s = sam_now() - srv->started,
                            .model_loaded = srv->model != NULL};
    size_t admitted;
    sam_sessions_device_memory(&g.device_memory_used, &g.device_memory_total, &admitted);
    g.device = srv->model ? sam2d_model_device(srv->model) : NULL;
    char *text = sam_metrics_render(&g);
    if (!text) return send_error(r, 500, "out of memory");
    return send_bytes(r, 200, "text/plain; version=0.0.4", text, strlen(text), true);
}

static enum MHD_Result h_cleanup(reqinfo *r) {
    char **ids = NULL;
    int n = sam_sessions_reap(&ids);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        if (ids) json_array_append_new(arr, json_string(ids[i]));
        if (ids) free(ids[i]);
    }
    free(ids);
    return send_json(r, 200, json_pack("{s:o,s:i}", "removed", arr, "active_sessions", sam_sessions_count()));
}

/* What one object costs on every frame it is tracked on: bf16 memory features, low-res mask, pointer. */
static size_t object_frame_bytes(const sam2d_model *m) {
    const sam2d_model_config *c = sam2d_model_get_config(m);
    size_t S = (size_t)c->image_size, f = S / (size_t)c->backbone_stride;
    return f * f * (size_t)c->mem_dim * 2 + (S / 4) * (S / 4) * 4 + (size_t)c->d_model * 4 + 256;
}

/* Admission estimate of a session with one object (each further object is checked when it is added). */
static size_t session_estimate(const sam2d_model *m, int frames) {
    const sam2d_model_config *c = sam2d_model_get_config(m);
    size_t S = (size_t)c->image_size;
    size_t per_frame = 3 * S * S;                                                   /* resized frame */
    size_t scratch = 64u << 20; /* features cache and working buffers of a session */
    return (size_t)frames * (per_frame + object_frame_bytes(m)) + scratch;
}

/* Its part in device memory on a device back end (0 on the CPU): the per-frame outputs of its
 * objects and the feature cache / working buffers; the video frames stay in host memory. */
static size_t session_device_estimate(const sam_server *srv, int frames, int objects) {
    if (!srv->on_device) return 0;
    size_t scratch = 64u << 20;
    return (size_t)frames * (size_t)(objects > 1 ? objects : 1) * object_frame_bytes(srv->model) + scratch;
}

/* The estimate follows the objects a session tracks (after remove_object or reset). */
static void refresh_estimate(sam_server *srv, sam_session *s) {
    int n = sam2d_video_num_objects(s->vs);
    size_t e = session_estimate(srv->model, s->num_frames) +
               (size_t)(n > 1 ? n - 1 : 0) * (size_t)s->num_frames * object_frame_bytes(srv->model);
    sam_sessions_set_estimate(s, e, session_device_estimate(srv, s->num_frames, n));
}

static enum MHD_Result h_session_start(reqinfo *r, reqctx *c) {
    sam_server *srv = r->srv;
    /* the post processor reports a body that ended before the closing boundary */
    bool complete = MHD_destroy_post_processor(c->pp) == MHD_YES;
    c->pp = NULL;
    if (c->upload_io_error) return send_error(r, 500, "could not store the upload in a temporary file");
    if (c->upload_too_large)
        return send_error(r, 413, "Upload too large: more than %d MiB (raise MAX_UPLOAD_MB)", srv->cfg.max_upload_mb);
    if (!c->got_file || c->upload_bytes == 0)
        return send_error(r, 400, "expected a multipart/form-data upload with a non-empty field 'file' (a video, "
                                  "or a tar/zip archive of JPEG/PNG frames)");
    if (c->extra_file) return send_error(r, 400, "the upload holds more than one 'file' part: send one video or archive");
    if (!complete)
        return send_error(r, 400, "the multipart body is truncated or malformed (no closing boundary after 'file')");
    sam_metrics_observe(SAM_H_UPLOAD_BYTES, (double)c->upload_bytes);
    double t0 = sam_now();
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    lim.max_frames = srv->cfg.max_video_frames;
    lim.max_dimension = srv->cfg.max_frame_dimension;
    lim.oversize = srv->cfg.downscale_oversize ? SAM_OVERSIZE_DOWNSCALE : SAM_OVERSIZE_REFUSE;
    lim.max_input_bytes = (size_t)srv->cfg.max_upload_mb << 20;
    close(c->fd);
    c->fd = -1;
    sam_frame_source *src = NULL;
    sam2d_status st = sam_frame_source_open_path(c->tmp_path, &lim, &src);
    if (st != SAM2D_OK) return send_error(r, http_status_of(st), "%s", client_message());
    int n = sam_frame_source_count(src), W = sam_frame_source_width(src), H = sam_frame_source_height(src);
    if (n <= 0) {
        sam_frame_source_free(src);
        return send_error(r, 415, "the upload holds no frames");
    }
    size_t estimate = session_estimate(srv->model, n), dev_estimate = session_device_estimate(srv, n, 1);
    /* the slot itself was taken when the upload began */
    st = sam_sessions_reserve_more(estimate, dev_estimate);
    if (st != SAM2D_OK) {
        sam_frame_source_free(src);
        return send_error(r, 429, "%s", client_message());
    }
    c->slot_reserved = false; /* from here the reservation is consumed by add or given back below */
    sam_session *s = sam_session_new();
    uint8_t *rgb = malloc((size_t)W * H * 3); /* one decoded frame at a time */
    if (!s || !rgb) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "out of memory while decoding the video");
        goto fail;
    }
    sam2d_video_params vp = sam2d_video_default_params();
    st = sam2d_video_session_begin(srv->model, n, W, H, &vp, &s->vs);
    for (int i = 0; i < n && st == SAM2D_OK; i++) {
        st = sam_frame_source_get(src, i, rgb);
        if (st == SAM2D_OK) st = sam2d_video_session_set_frame(s->vs, i, rgb, W, H);
    }
    if (st != SAM2D_OK) goto fail;
    sam_metrics_observe(SAM_H_DECODE_SECONDS, sam_now() - t0);
    s->frame_objects = sam_calloc((size_t)n, sizeof(char *));
    if (!s->frame_objects) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "out of memory");
        goto fail;
    }
    free(rgb);
    s->num_frames = n;
    s->width = W;
    s->height = H;
    s->fps = sam_frame_source_fps(src);
    s->estimate_bytes = estimate;
    s->device_estimate_bytes = dev_estimate;
    s->source = src;
    /* the source may read the upload lazily: keep the file with the session */
    memcpy(s->upload_path, c->tmp_path, sizeof s->upload_path);
    c->tmp_path[0] = 0;
    sam_sessions_add(s);
    char nf[16], dims[32], secs[32];
    snprintf(nf, sizeof nf, "%d", n);
    snprintf(dims, sizeof dims, "%dx%d", W, H);
    snprintf(secs, sizeof secs, "%.3f", sam_now() - t0);
    sam_log(SAM_LOG_INFO, "session started", "session", s->id, "frames", nf, "size", dims, "decode_s", secs, NULL);
    return send_json(r, 200, json_pack("{s:s,s:i,s:i,s:i,s:f}", "session_id", s->id, "num_frames", n, "width", W,
                                       "height", H, "fps", s->fps));
fail:
    free(rgb);
    sam_sessions_unreserve(estimate, dev_estimate);
    if (s) sam_session_destroy(s);
    sam_frame_source_free(src);
    return send_error(r, http_status_of(st), "%s", client_message());
}

static json_t *session_info(sam_session *s) {
    json_t *objs = json_array();
    bool busy = pthread_mutex_trylock(&s->op_lock) != 0;
    if (!busy) {
        int no = sam2d_video_num_objects(s->vs);
        const int *ids = sam2d_video_obj_ids(s->vs);
        for (int i = 0; i < no; i++) {
            json_t *frames = json_array();
            /* frames where this object has user prompts = conditioning outputs */
            for (int f = 0; f < s->num_frames; f++) {
                sam2d_video_frame_state fs;
                if (sam2d_video_get_state(s->vs, ids[i], f, &fs) == SAM2D_OK && fs.is_cond)
                    json_array_append_new(frames, json_integer(f));
            }
            json_array_append_new(objs, json_pack("{s:i,s:o}", "obj_id", ids[i], "prompt_frames", frames));
        }
        pthread_mutex_unlock(&s->op_lock);
    }
    const char *state = atomic_load(&s->propagating) ? "propagating" : busy ? "busy" : "ready";
    json_t *o = json_pack("{s:s,s:f,s:i,s:i,s:i,s:o,s:I,s:s,s:f}", "session_id", s->id, "idle_time", s->idle_before,
                          "total_frames", s->num_frames, "width", s->width, "height", s->height, "objects", objs,
                          "memory_bytes", (json_int_t)sam_session_memory_bytes(s), "state", state, "age_s",
                          sam_now() - s->created);
    if (busy) json_object_set_new(o, "objects_note", json_string("objects are listed when no operation is running"));
    return o;
}

/* Count the values (array/object openings and commas outside strings) before parsing: bounds
 * the parser's memory by request semantics, not by body bytes. */
static size_t json_value_count(const char *p, size_t n) {
    size_t count = 1;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == ',' || ch == '[' || ch == '{') {
            count++;
        }
    }
    return count;
}

/* Parse the JSON body of a request into j (object required). */
static bool parse_body(reqctx *c, jreq *j) {
    j->err[0] = 0;
    j->root = NULL;
    if (c->body_too_large) {
        snprintf(j->err, sizeof j->err, "request body larger than %zu kB", c->body_limit >> 10);
        return false;
    }
    if (!c->len) {
        j->root = json_object();
        return true;
    }
    if (json_value_count(c->body, c->len) > MAX_JSON_VALUES) {
        snprintf(j->err, sizeof j->err, "the JSON body holds more than %d values", MAX_JSON_VALUES);
        return false;
    }
    json_error_t e;
    j->root = json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, &e);
    if (!j->root) {
        snprintf(j->err, sizeof j->err, "malformed JSON: %s (line %d, column %d)", e.text, e.line, e.column);
        return false;
    }
    if (!json_is_object(j->root)) {
        snprintf(j->err, sizeof j->err, "the request body must be a JSON object");
        json_decref(j->root);
        j->root = NULL;
        return false;
    }
    return true;
}

/* Reply with a frame result as {frame_idx, objects}. */
static enum MHD_Result send_frame_result(reqinfo *r, sam_session *s, const sam2d_video_frame_result *res) {
    char *line = frame_line(s, res);
    if (!line) return send_error(r, 500, "could not encode masks");
    return send_bytes(r, 200, "application/json", line, strlen(line), true);
}

static bool coord_ok(double v, int limit) { return v >= 0 && v <= limit; }

/* Take the session's operation lock, or answer 409 (operations are not queued). */
static bool take_op(reqinfo *r, sam_session *s, enum MHD_Result *ret) {
    if (pthread_mutex_trylock(&s->op_lock) == 0) return true;
    *ret = send_error(r, 409,
                      "session %s is busy with another operation (one at a time; POST /session/%s/cancel stops a "
                      "propagation)",
                      s->id, s->id);
    return false;
}

static bool has_object(sam_session *s, long long obj) {
    int n = sam2d_video_num_objects(s->vs);
    const int *ids = sam2d_video_obj_ids(s->vs);
    for (int i = 0; i < n; i++)
        if (ids[i] == obj) return true;
    return false;
}

/* take_op for an operation on an existing object (404 otherwise, lock released). */
static bool take_op_on_object(reqinfo *r, sam_session *s, long long obj, enum MHD_Result *ret) {
    if (!take_op(r, s, ret)) return false;
    if (has_object(s, obj)) return true;
    pthread_mutex_unlock(&s->op_lock);
    *ret = send_error(r, 404, "object %lld does not exist in session %s", obj, s->id);
    return false;
}

/* take_op for a prompt, which may add an object: each object costs memory on every frame it is
 * tracked on, so a session holds at most MAX_OBJECTS (413 otherwise, lock released). */
static bool take_op_adding(reqinfo *r, sam_session *s, long long obj, enum MHD_Result *ret) {
    if (!take_op(r, s, ret)) return false;
    int n = sam2d_video_num_objects(s->vs);
    if (n == 0 || has_object(s, obj)) return true; /* the admission estimate covers one object */
    if (n >= r->srv->cfg.max_objects) {
        pthread_mutex_unlock(&s->op_lock);
        *ret = send_error(r, 413, "Too many objects: session %s already tracks %d (raise MAX_OBJECTS, or remove one)",
                          s->id, n);
        return false;
    }
    /* under MAX_MEMORY_MB a new object must fit the budget too (it grows the session on every frame) */
    const size_t more = (size_t)s->num_frames * object_frame_bytes(r->srv->model);
    if (sam_sessions_grow(s, more, r->srv->on_device ? more : 0) != SAM2D_OK) {
        pthread_mutex_unlock(&s->op_lock);
        *ret = send_error(r, 429, "%s", client_message());
        return false;
    }
    return true;
}

static enum MHD_Result h_prompt(reqinfo *r, reqctx *c, sam_session *s) {
    jreq j;
    if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
    static const char *const keys[] = {"frame_idx", "obj_id", "points", "labels", "box", "clear_old_points", NULL};
    long long frame, obj;
    bool clear_old;
    enum MHD_Result ret;
    float *pts = NULL, box[4];
    int *labels = NULL, np = 0;
    bool has_box = false;
    if (!jcheck_keys(&j, keys) || !jint(&j, "frame_idx", true, 0, 0, s->num_frames - 1, &frame) ||
        !jint(&j, "obj_id", true, 0, 0, 2147483647LL, &obj) || !jbool(&j, "clear_old_points", true, &clear_old)) {
        ret = send_error(r, 400, "%s", j.err);
        goto out;
    }
    json_t *jp = json_object_get(j.root, "points"), *jl = json_object_get(j.root, "labels"),
           *jb = json_object_get(j.root, "box");
    if (jp && !json_is_null(jp)) {
        if (!json_is_array(jp) || json_array_size(jp) > 64) {
            ret = send_error(r, 400, "'points' must be an array of at most 64 [x, y] pairs");
            goto out;
        }
        np = (int)json_array_size(jp);
        if (!jl || !json_is_array(jl) || (int)json_array_size(jl) != np) {
            ret = send_error(r, 400, "'labels' must be an array with one label (1 positive, 0 negative) per point");
            goto out;
        }
        pts = malloc(sizeof(float) * 2 * (np ? np : 1));
        labels = malloc(sizeof(int) * (np ? np : 1));
        for (int i = 0; i < np; i++) {
            json_t *p = json_array_get(jp, (size_t)i), *l = json_array_get(jl, (size_t)i);
            double x, y;
            if (!json_is_array(p) || json_array_size(p) != 2 || !jnumber(json_array_get(p, 0), &x) ||
                !jnumber(json_array_get(p, 1), &y)) {
                ret = send_error(r, 400, "points[%d] must be [x, y] with numbers", i);
                goto out;
            }
            if (!coord_ok(x, s->width) || !coord_ok(y, s->height)) {
                ret = send_error(r, 400, "points[%d] = [%g, %g] is outside the %dx%d video", i, x, y, s->width,
                                 s->height);
                goto out;
            }
            if (!json_is_integer(l) || (json_integer_value(l) != 0 && json_integer_value(l) != 1)) {
                ret = send_error(r, 400, "labels[%d] must be 1 (positive) or 0 (negative)", i);
                goto out;
            }
            pts[2 * i] = (float)x;
            pts[2 * i + 1] = (float)y;
            labels[i] = (int)json_integer_value(l);
        }
    } else if (jl && !json_is_null(jl)) {
        ret = send_error(r, 400, "'labels' given without 'points'");
        goto out;
    }
    if (jb && !json_is_null(jb)) {
        double b[4];
        if (!json_is_array(jb) || json_array_size(jb) != 4) {
            ret = send_error(r, 400, "'box' must be [x0, y0, x1, y1]");
            goto out;
        }
        for (int i = 0; i < 4; i++)
            if (!jnumber(json_array_get(jb, (size_t)i), &b[i])) {
                ret = send_error(r, 400, "'box' must hold 4 numbers");
                goto out;
            }
        if (!coord_ok(b[0], s->width) || !coord_ok(b[2], s->width) || !coord_ok(b[1], s->height) ||
            !coord_ok(b[3], s->height) || b[2] < b[0] || b[3] < b[1]) {
            ret = send_error(r, 400, "'box' [%g, %g, %g, %g] must satisfy 0 <= x0 <= x1 <= %d, 0 <= y0 <= y1 <= %d",
                             b[0], b[1], b[2], b[3], s->width, s->height);
            goto out;
        }
        for (int i = 0; i < 4; i++) box[i] = (float)b[i];
        has_box = true;
    }
    if (!np && !has_box) {
        ret = send_error(r, 400, "a prompt needs 'points' with 'labels', or a 'box'");
        goto out;
    }
    if (has_box && !clear_old) {
        ret = send_error(r, 400, "a 'box' can only be given with clear_old_points=true (as SAM 2 requires)");
        goto out;
    }
    if (!take_op_adding(r, s, obj, &ret)) goto out;
    double t0 = sam_now(), enc = 0, trk = 0;
    sam2d_video_stats before;
    sam2d_video_get_stats(s->vs, &before);
    sam2d_video_frame_result res;
    turn_take();
    sam2d_status st = sam2d_video_add_points(s->vs, (int)frame, (int)obj, pts, labels, np, has_box ? box : NULL,
                                             clear_old, &res);
    turn_give();
    observe_model_time(s, &before, &enc, &trk);
    if (st == SAM2D_OK) ret = send_frame_result(r, s, &res);
    else ret = send_error(r, http_status_of(st), "%s", client_message());
    pthread_mutex_unlock(&s->op_lock);
    sam_metrics_observe(SAM_H_PROMPT_SECONDS, sam_now() - t0);
    if (st == SAM2D_OK) log_op(s, "prompt", (int)frame, sam_now() - t0, enc, trk);
out:
    free(pts);
    free(labels);
    json_decref(j.root);
    return ret;
}

static enum MHD_Result h_mask(reqinfo *r, reqctx *c, sam_session *s) {
    jreq j;
    if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
    static const char *const keys[] = {"frame_idx", "obj_id", "mask", NULL};
    long long frame, obj;
    enum MHD_Result ret;
    uint8_t *mask = NULL;
    if (!jcheck_keys(&j, keys) || !jint(&j, "frame_idx", true, 0, 0, s->num_frames - 1, &frame) ||
        !jint(&j, "obj_id", true, 0, 0, 2147483647LL, &obj)) {
        ret = send_error(r, 400, "%s", j.err);
        goto out;
    }
    json_t *m = json_object_get(j.root, "mask");
    json_t *size = m ? json_object_get(m, "size") : NULL, *counts = m ? json_object_get(m, "counts") : NULL;
    if (!m || !json_is_object(m) || !json_is_array(size) || json_array_size(size) != 2 || !json_is_string(counts) ||
        !json_is_integer(json_array_get(size, 0)) || !json_is_integer(json_array_get(size, 1))) {
        ret = send_error(r, 400, "'mask' must be COCO RLE: {\"size\": [h, w], \"counts\": \"...\"}");
        goto out;
    }
    long long mh = json_integer_value(json_array_get(size, 0)), mw = json_integer_value(json_array_get(size, 1));
    if (mh != s->height || mw != s->width) {
        ret = send_error(r, 400, "mask size [%lld, %lld] differs from the video's [%d, %d]", mh, mw, s->height,
                         s->width);
        goto out;
    }
    mask = malloc((size_t)mh * (size_t)mw);
    if (!mask || sam_rle_string_to_mask(json_string_value(counts), (int)mh, (int)mw, mask) != SAM2D_OK) {
        ret = send_error(r, 400, "invalid RLE counts: %s", client_message());
        goto out;
    }
    if (!take_op_adding(r, s, obj, &ret)) goto out;
    double t0 = sam_now(), enc = 0, trk = 0;
    sam2d_video_stats before;
    sam2d_video_get_stats(s->vs, &before);
    sam2d_video_frame_result res;
    turn_take();
    sam2d_status st = sam2d_video_add_mask(s->vs, (int)frame, (int)obj, mask, (int)mh, (int)mw, &res);
    turn_give();
    observe_model_time(s, &before, &enc, &trk);
    if (st == SAM2D_OK) log_op(s, "mask", (int)frame, sam_now() - t0, enc, trk);
    if (st == SAM2D_OK) ret = send_frame_result(r, s, &res);
    else ret = send_error(r, http_status_of(st), "%s", client_message());
    pthread_mutex_unlock(&s->op_lock);
    sam_metrics_observe(SAM_H_PROMPT_SECONDS, sam_now() - t0);
out:
    free(mask);
    json_decref(j.root);
    return ret;
}

static enum MHD_Result h_clear(reqinfo *r, reqctx *c, sam_session *s) {
    jreq j;
    if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
    static const char *const keys[] = {"frame_idx", "obj_id", NULL};
    long long frame, obj;
    enum MHD_Result ret;
    if (!jcheck_keys(&j, keys) || !jint(&j, "frame_idx", true, 0, 0, s->num_frames - 1, &frame) ||
        !jint(&j, "obj_id", true, 0, 0, 2147483647LL, &obj)) {
        ret = send_error(r, 400, "%s", j.err);
        goto out;
    }
    if (!take_op_on_object(r, s, obj, &ret)) goto out;
    sam2d_video_frame_result res;
    turn_take();
    sam2d_status st = sam2d_video_clear_prompts(s->vs, (int)frame, (int)obj, &res);
    turn_give();
    ret = st == SAM2D_OK ? send_frame_result(r, s, &res) : send_error(r, http_status_of(st), "%s", client_message());
    pthread_mutex_unlock(&s->op_lock);
out:
    json_decref(j.root);
    return ret;
}

static enum MHD_Result h_remove_object(reqinfo *r, reqctx *c, sam_session *s) {
    jreq j;
    if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
    static const char *const keys[] = {"obj_id", NULL};
    long long obj;
    enum MHD_Result ret;
    if (!jcheck_keys(&j, keys) || !jint(&j, "obj_id", true, 0, 0, 2147483647LL, &obj)) {
        ret = send_error(r, 400, "%s", j.err);
        goto out;
    }
    if (!take_op_on_object(r, s, obj, &ret)) goto out;
    sam2d_status st = sam2d_video_remove_object(s->vs, (int)obj);
    if (st == SAM2D_OK) {
        sam_session_clear_frames(s); /* cached masks listed the removed object */
        refresh_estimate(r->srv, s);
        json_t *ids = json_array();
        int n = sam2d_video_num_objects(s->vs);
        const int *p = sam2d_video_obj_ids(s->vs);
        for (int i = 0; i < n; i++) json_array_append_new(ids, json_integer(p[i]));
        ret = send_json(r, 200, json_pack("{s:o}", "obj_ids", ids));
    } else {
        ret = send_error(r, http_status_of(st), "%s", client_message());
    }
    pthread_mutex_unlock(&s->op_lock);
out:
    json_decref(j.root);
    return ret;
}

static enum MHD_Result h_reset(reqinfo *r, reqctx *c, sam_session *s) {
    jreq j;
    if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
    static const char *const keys[] = {NULL};
    enum MHD_Result ret;
    if (!jcheck_keys(&j, keys)) {
        ret = send_error(r, 400, "%s", j.err);
    } else if (take_op(r, s, &ret)) {
        sam2d_status st = sam2d_video_reset(s->vs);
        if (st == SAM2D_OK) sam_session_clear_frames(s);
        if (st == SAM2D_OK) refresh_estimate(r->srv, s);
        pthread_mutex_unlock(&s->op_lock);
        ret = st == SAM2D_OK ? send_json(r, 200, json_pack("{s:b}", "reset", 1))
                             : send_error(r, http_status_of(st), "%s", client_message());
    }
    json_decref(j.root);
    return ret;
}

static enum MHD_Result h_cancel(reqinfo *r, sam_session *s) {
    bool running = atomic_load(&s->propagating);
    if (running) {
        atomic_store(&s->cancel_requested, true);
        sam2d_video_cancel(s->vs);
    }
    return send_json(r, 200, json_pack("{s:b}", "cancelled", running));
}

static enum MHD_Result h_masks(reqinfo *r, sam_session *s, long long frame) {
    const char *fmt = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "format");
    if (fmt && strcmp(fmt, "rle") != 0 && strcmp(fmt, "png") != 0)
        return send_error(r, 400, "format must be 'rle' or 'png'");
    char *objs = sam_session_frame_objects(s, (int)frame);
    if (!objs)
        return send_error(r, 404, "no masks for frame %lld yet: add a prompt on it or propagate first", frame);
    if (!fmt || !strcmp(fmt, "rle")) {
        size_t n = strlen(objs) + 64;
        char *line = malloc(n);
        if (line) snprintf(line, n, "{\"frame_idx\":%lld,\"objects\":%s}", frame, objs);
        free(objs);
        if (!line) return send_error(r, 500, "out of memory");
        return send_bytes(r, 200, "application/json", line, strlen(line), true);
    }
    json_t *arr = json_loads(objs, 0, NULL);
    free(objs);
    /* two planes whatever the object count (later objects win where masks overlap, as
     * sam_mask_ids_from_binary does): many objects on a large video must not cost a plane each */
    size_t plane = (size_t)s->width * s->height, no = json_array_size(arr);
    uint8_t *bin = malloc(plane), *ids = calloc(1, plane);
    enum MHD_Result ret;
    bool ok = arr && bin && ids;
    for (size_t i = 0; ok && i < no; i++) {
        json_t *o = json_array_get(arr, i);
        json_int_t id = json_integer_value(json_object_get(o, "obj_id"));
        if (id > 255) {
            ok = false;
            break;
        }
        ok = sam_rle_string_to_mask(json_string_value(json_object_get(json_object_get(o, "mask"), "counts")),
                                    s->height, s->width, bin) == SAM2D_OK;
        for (size_t k = 0; ok && k < plane; k++)
            if (bin[k]) ids[k] = (uint8_t)id;
    }
    if (!ok) {
        ret = send_error(r, 400, "png output needs object ids <= 255 (use format=rle)");
    } else {
        uint8_t *png = NULL;
        size_t len = 0;
        if (sam_mask_png_encode_palette(ids, s->height, s->width, &png, &len) != SAM2D_OK)
            ret = send_error(r, 500, "png encoding failed: %s", client_message());
        else {
            ret = send_bytes(r, 200, "image/png", png, len, false);
            sam_free(png);
        }
    }
    json_decref(arr);
    free(bin);
    free(ids);
    return ret;
}

static enum MHD_Result h_frame(reqinfo *r, sam_session *s, long long frame) {
    size_t n = (size_t)s->width * s->height * 3;
    uint8_t *rgb = malloc(n), *jpg = NULL;
    size_t len = 0;
    if (!rgb) return send_error(r, 500, "out of memory");
    pthread_mutex_lock(&s->source_lock);
    sam2d_status st = sam_frame_source_get(s->source, (int)frame, rgb);
    pthread_mutex_unlock(&s->source_lock);
    if (st == SAM2D_OK) st = sam_jpeg_encode(rgb, s->width, s->height, 90, &jpg, &len);
    free(rgb);
    if (st != SAM2D_OK) return send_error(r, 500, "could not produce frame %lld: %s", frame, client_message());
    enum MHD_Result ret = send_bytes(r, 200, "image/jpeg", jpg, len, false);
    sam_free(jpg);
    return ret;
}

/* ---------- propagation stream ---------- */

typedef struct line_node {
    struct line_node *next;
    size_t len;
    char text[];
} line_node;

typedef struct {
    sam_session *s;
    sam_server *srv;
    pthread_t th;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    line_node *head, *tail;
    size_t queued_bytes;
    bool done, client_gone;
    line_node *cur;
    size_t cur_off;
    int start, max_frames;
    bool reverse;
    int frames;
    int total;     /* frames expected, for progress */
    double t0, last_log, t_frame;
    sam2d_video_stats stats;       /* model time at the previous frame */
} stream;

static bool stream_aborted(stream *sp) {
    return atomic_load(&sp->s->cancel_requested) || atomic_load(&sp->srv->stopping);
}

static void stream_push(stream *sp, char *text) {
    size_t n = strlen(text);
    line_node *ln = malloc(sizeof *ln + n + 2);
    if (!ln) return;
    memcpy(ln->text, text, n);
    ln->text[n] = '\n';
    ln->text[n + 1] = 0;
    ln->len = n + 1;
    ln->next = NULL;
    pthread_mutex_lock(&sp->mu);
    /* back-pressure: wait for a slow reader, but not past a cancel, a close or a shutdown (a reader that
     * never reads would otherwise pin the session's operation lock until its connection times out);
     * then the line is queued anyway: at most one frame line and the summary go over the limit */
    size_t limit = (size_t)sp->srv->cfg.stream_buffer_kb << 10;
    while (sp->queued_bytes > limit && !sp->client_gone && !stream_aborted(sp)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&sp->cv, &sp->mu, &ts);
    }
    if (sp->client_gone) {
        free(ln);
    } else {
        if (sp->tail) sp->tail->next = ln;
        else sp->head = ln;
        sp->tail = ln;
        sp->queued_bytes += ln->len;
    }
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
}

/* Between a frame's encoding and its tracking step: a click queued meanwhile
 * waits for one stage of this propagation, not for a whole frame. */
static void stage_turn(void *user) {
    (void)user;
    turn_give();
    turn_take();
}

static int on_frame(void *user, const sam2d_video_frame_result *res) {
    stream *sp = user;
    double now = sam_now();
    sam_metrics_observe(SAM_H_PROPAGATE_FRAME_SECONDS, now - sp->t_frame);
    sam_metrics_inc(SAM_C_FRAMES_PROPAGATED, 1);
    observe_model_time(sp->s, &sp->stats, NULL, NULL);
    /* let a waiting click (or another session's frame) in between two frames */
    turn_give();
    char *line = frame_line(sp->s, res);
    if (line) {
        stream_push(sp, line);
        free(line);
    }
    sp->frames++;
    if (now - sp->last_log >= 2.0 || sp->frames == sp->total) {
        double el = now - sp->t0, fps = sp->frames / (el > 0 ? el : 1e-9);
        char k[48], f[32], eta[32];
        snprintf(k, sizeof k, "%d/%d", sp->frames, sp->total);
        snprintf(f, sizeof f, "%.2f", fps);
        snprintf(eta, sizeof eta, "%.1f", (sp->total - sp->frames) / (fps > 0 ? fps : 1e-9));
        sam_log(SAM_LOG_INFO, "propagating", "session", sp->s->id, "frame", k, "fps", f, "eta_s", eta, NULL);
        sp->last_log = now;
    }
    pthread_mutex_lock(&sp->mu);
    bool stop = sp->client_gone;
    pthread_mutex_unlock(&sp->mu);
    stop = stop || atomic_load(&sp->s->cancel_requested) || atomic_load(&sp->srv->stopping);
    turn_take();
    sp->t_frame = sam_now();
    return stop ? 1 : 0;
}

static void *stream_main(void *arg) {
    stream *sp = arg;
    sam_session *s = sp->s;
    sp->t0 = sp->last_log = sp->t_frame = sam_now();
    sam2d_video_get_stats(s->vs, &sp->stats);
    sam2d_video_set_stage_hook(s->vs, stage_turn, NULL);
    turn_take();
    sam2d_status st = sam2d_video_propagate(s->vs, sp->start, sp->reverse, sp->max_frames, on_frame, sp);
    turn_give();
    sam2d_video_set_stage_hook(s->vs, NULL, NULL);
    double el = sam_now() - sp->t0;
    sam_metrics_observe(SAM_H_PROPAGATE_SECONDS, el);
    json_t *fin;
    if (st == SAM2D_OK) {
        fin = json_pack("{s:b,s:i,s:f}", "done", 1, "frames", sp->frames, "elapsed_s", el);
    } else if (st == SAM2D_ERR_CANCELLED) {
        sam_metrics_inc(SAM_C_PROPAGATIONS_CANCELLED, 1);
        fin = json_pack("{s:b,s:b,s:i,s:f}", "done", 1, "cancelled", 1, "frames", sp->frames, "elapsed_s", el);
    } else {
        fin = json_pack("{s:b,s:i,s:f,s:{s:s,s:s}}", "done", 1, "frames", sp->frames, "elapsed_s", el, "error",
                        "code", code_for(http_status_of(st)), "message", client_message());
    }
    char *text = json_dumps(fin, JSON_COMPACT);
    json_decref(fin);
    if (text) {
        stream_push(sp, text);
        free(text);
    }
    char nf[16], secs[32];
    snprintf(nf, sizeof nf, "%d", sp->frames);
    snprintf(secs, sizeof secs, "%.3f", el);
    sam_log(SAM_LOG_INFO, st == SAM2D_OK ? "propagation done" : "propagation ended", "session", s->id, "frames", nf,
            "elapsed_s", secs, "status", sam2d_status_str(st), NULL);
    atomic_store(&s->propagating, false);
    atomic_store(&s->cancel_requested, false);
    pthread_mutex_unlock(&s->op_lock);
    pthread_mutex_lock(&sp->mu);
    sp->done = true;
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    atomic_fetch_sub(&sp->srv->busy, 1);
    return NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *sp = cls;
    /* A frame can take longer than HTTP_TIMEOUT (large model, busy turns), and the connection would be
     * dropped as silent: between lines, send a space every half timeout (at most 15 s). Leading
     * whitespace is insignificant JSON, so every line stays one JSON text; a client that does not read
     * accepts no heartbeat either and is still dropped. */
    long beat_ms = (long)sp->srv->cfg.http_timeout_s * 500;
    if (beat_ms > 15000) beat_ms = 15000;
    pthread_mutex_lock(&sp->mu);
    if (!sp->cur && !sp->head && !sp->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += beat_ms / 1000;
        ts.tv_nsec += (beat_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        int rc = 0;
        while (!sp->cur && !sp->head && !sp->done && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&sp->cv, &sp->mu, &ts);
        if (!sp->cur && !sp->head && !sp->done && max > 0) {
            pthread_mutex_unlock(&sp->mu);
            buf[0] = ' ';
            return 1;
        }
    }
    if (!sp->cur && sp->head) {
        sp->cur = sp->head;
        sp->head = sp->head->next;
        if (!sp->head) sp->tail = NULL;
        sp->cur_off = 0;
    }
    if (!sp->cur) {
        pthread_mutex_unlock(&sp->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = sp->cur->len - sp->cur_off;
    if (n > max) n = max;
    memcpy(buf, sp->cur->text + sp->cur_off, n);
    sp->cur_off += n;
    if (sp->cur_off == sp->cur->len) {
        sp->queued_bytes -= sp->cur->len;
        free(sp->cur);
        sp->cur = NULL;
        pthread_cond_broadcast(&sp->cv);
    }
    pthread_mutex_unlock(&sp->mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *sp = cls;
    pthread_mutex_lock(&sp->mu);
    bool finished = sp->done;
    sp->client_gone = true;
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    if (!finished) {
        sam_log(SAM_LOG_INFO, "client left during propagation: cancelling", "session", sp->s->id, NULL);
        sam2d_video_cancel(sp->s->vs);
    }
    if (sp->thread_started) pthread_join(sp->th, NULL);
    line_node *n = sp->head;
    while (n) {
        line_node *x = n->next;
        free(n);
        n = x;
    }
    free(sp->cur);
    sam_sessions_release(sp->s);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cv);
    free(sp);
}

static enum MHD_Result h_propagate(reqinfo *r, reqctx *c, sam_session *s, bool *keep_ref) {
    jreq j;
    if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
    static const char *const keys[] = {"start_frame_idx", "reverse", "max_frames", NULL};
    long long start, maxf;
    bool reverse;
    enum MHD_Result ret;
    if (!jcheck_keys(&j, keys) || !jint(&j, "start_frame_idx", false, -1, 0, s->num_frames - 1, &start) ||
        !jbool(&j, "reverse", false, &reverse) || !jint(&j, "max_frames", false, -1, 1, 100000000, &maxf)) {
        ret = send_error(r, 400, "%s", j.err);
        goto out;
    }
    if (!take_op(r, s, &ret)) goto out;
    if (sam2d_video_num_objects(s->vs) == 0) {
        pthread_mutex_unlock(&s->op_lock);
        ret = send_error(r, 400, "no objects to propagate: add a prompt first");
        goto out;
    }
    stream *sp = calloc(1, sizeof *sp);
    if (!sp) {
        pthread_mutex_unlock(&s->op_lock);
        ret = send_error(r, 500, "out of memory");
        goto out;
    }
    sp->s = s;
    sp->srv = r->srv;
    sp->start = (int)start;
    sp->reverse = reverse;
    sp->max_frames = (int)maxf;
    int first = start >= 0 ? (int)start : 0;
    int span = reverse ? first + 1 : s->num_frames - first;
    sp->total = maxf > 0 && maxf < span ? (int)maxf + 1 : span;
    if (sp->total > s->num_frames) sp->total = s->num_frames;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->cv, NULL);
    atomic_store(&s->cancel_requested, false);
    atomic_store(&s->propagating, true);
    /* the stream owns the session reference and the op lock from here */
    *keep_ref = true;
    atomic_fetch_add(&r->srv->busy, 1); /* given back by the stream thread */
    if (pthread_create(&sp->th, NULL, stream_main, sp) != 0) {
        atomic_fetch_sub(&r->srv->busy, 1);
        atomic_store(&s->propagating, false);
        pthread_mutex_unlock(&s->op_lock);
        sp->done = true;
    } else {
        sp->thread_started = true;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, sp,
                                                                  stream_free);
    if (!resp) {
        stream_free(sp);
        ret = MHD_NO;
        goto out;
    }
    MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    r->status = 200;
out:
    json_decref(j.root);
    return ret;
}

/* ---------- dispatch ---------- */

static bool parse_index(const char *s, long long *out) {
    if (!*s || strlen(s) > 9) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    *out = atoll(s);
    return true;
}

static enum MHD_Result dispatch(reqinfo *r, reqctx *c, const char *url) {
    const char *m = r->method;
    bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
    if (!strcmp(url, "/health")) {
        snprintf(r->route, sizeof r->route, "/health");
        return get ? h_health(r) : send_error(r, 405, "use GET /health");
    }
    if (!strcmp(url, "/metrics")) {
        snprintf(r->route, sizeof r->route, "/metrics");
        return get ? h_metrics(r) : send_error(r, 405, "use GET /metrics");
    }
    if (!strcmp(url, "/cleanup")) {
        snprintf(r->route, sizeof r->route, "/cleanup");
        return post ? h_cleanup(r) : send_error(r, 405, "use POST /cleanup");
    }
    if (!strcmp(url, "/session/start")) {
        snprintf(r->route, sizeof r->route, "/session/start");
        return post ? h_session_start(r, c) : send_error(r, 405, "use POST /session/start");
    }
    if (!strcmp(url, "/session/close")) {
        snprintf(r->route, sizeof r->route, "/session/close");
        if (!post) return send_error(r, 405, "use POST /session/close");
        jreq j;
        if (!parse_body(c, &j)) return send_error(r, 400, "%s", j.err);
        static const char *const keys[] = {"session_id", NULL};
        json_t *id = json_object_get(j.root, "session_id");
        enum MHD_Result ret;
        if (!jcheck_keys(&j, keys)) ret = send_error(r, 400, "%s", j.err);
        else if (!json_is_string(id)) ret = send_error(r, 400, "missing string field 'session_id'");
        else if (!sam_sessions_close(json_string_value(id)))
            ret = send_error(r, 404, "session %.64s not found (closed or expired)", json_string_value(id));
        else ret = send_json(r, 200, json_pack("{s:b}", "closed", 1));
        json_decref(j.root);
        return ret;
    }
    if (strncmp(url, "/session/", 9) != 0) {
        snprintf(r->route, sizeof r->route, "other");
        return send_error(r, 404, "no such endpoint: %s %.200s", m, url);
    }
    /* /session/{id}[/action[/frame]] */
    char id[40] = "", action[32] = "", arg[32] = "";
    const char *p = url + 9, *slash = strchr(p, '/');
    size_t idlen = slash ? (size_t)(slash - p) : strlen(p);
    if (idlen == 0 || idlen >= sizeof id) {
        snprintf(r->route, sizeof r->route, "other");
        return send_error(r, 404, "no such endpoint: %s %.200s", m, url);
    }
    memcpy(id, p, idlen);
    if (slash) {
        const char *a = slash + 1, *s2 = strchr(a, '/');
        size_t al = s2 ? (size_t)(s2 - a) : strlen(a);
        if (al >= sizeof action || (s2 && strlen(s2 + 1) >= sizeof arg)) {
            snprintf(r->route, sizeof r->route, "other");
            return send_error(r, 404, "no such endpoint: %s %.200s", m, url);
        }
        memcpy(action, a, al);
        if (s2) snprintf(arg, sizeof arg, "%s", s2 + 1);
    }
    /* metric labels only from the known set: client text in a label could break the exposition format
     * and would fill the bounded route table */
    static const char *const actions[] = {"prompt", "mask",  "propagate", "cancel", "clear",
                                          "remove_object", "reset", "masks", "frame", NULL};
    bool known = !action[0];
    for (const char *const *a = actions; *a && !known; a++) known = !strcmp(*a, action);
    if (!known) snprintf(r->route, sizeof r->route, "other");
    else if (action[0]) snprintf(r->route, sizeof r->route, "/session/{id}/%s", action);
    else snprintf(r->route, sizeof r->route, "/session/{id}");
    bool needs_frame = !strcmp(action, "masks") || !strcmp(action, "frame");
    if (needs_frame != (arg[0] != 0)) return send_error(r, 404, "no such endpoint: %s %.200s", m, url);
    if (!action[0] && del) {
        if (!sam_sessions_close(id)) return send_error(r, 404, "session %s not found (closed or expired)", id);
        return send_json(r, 200, json_pack("{s:b}", "closed", 1));
    }
    sam_session *s = sam_sessions_acquire(id);
    if (!s) return send_error(r, 404, "session %s not found (closed or expired)", id);
    enum MHD_Result ret;
    bool keep = false;
    long long frame = 0;
    if (!action[0]) {
        ret = get ? send_json(r, 200, session_info(s)) : send_error(r, 405, "use GET or DELETE /session/{id}");
    } else if (needs_frame) {
        if (!get) ret = send_error(r, 405, "use GET");
        else if (!parse_index(arg, &frame) || frame >= s->num_frames)
            ret = send_error(r, 400, "frame index '%s' is not in [0, %d]", arg, s->num_frames - 1);
        else ret = !strcmp(action, "masks") ? h_masks(r, s, frame) : h_frame(r, s, frame);
    } else if (!post) {
        ret = send_error(r, 405, "use POST /session/{id}/%s", action);
    } else if (!strcmp(action, "prompt")) ret = h_prompt(r, c, s);
    else if (!strcmp(action, "mask")) ret = h_mask(r, c, s);
    else if (!strcmp(action, "propagate")) ret = h_propagate(r, c, s, &keep);
    else if (!strcmp(action, "cancel")) ret = h_cancel(r, s);
    else if (!strcmp(action, "clear")) ret = h_clear(r, c, s);
    else if (!strcmp(action, "remove_object")) ret = h_remove_object(r, c, s);
    else if (!strcmp(action, "reset")) ret = h_reset(r, c, s);
    else ret = send_error(r, 404, "no such endpoint: %s %.200s", m, url);
    if (!keep) sam_sessions_release(s);
    return ret;
}

static bool authorized(sam_server *srv, struct MHD_Connection *conn, const char *url) {
    if (!srv->cfg.api_token[0] || !strcmp(url, "/health")) return true;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    const char *tok = h + 7;
    size_t a = strlen(tok), b = strlen(srv->cfg.api_token);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned)(tok[i] ^ srv->cfg.api_token[i]);
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    sam_server *srv = cls;
    reqctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->fd = -1;
        c->t0 = sam_now();
        c->info.conn = conn;
        size_t ul = strlen(url);
        c->body_limit = ul >= 5 && !strcmp(url + ul - 5, "/mask") ? MAX_JSON_BODY : SMALL_JSON_BODY;
        c->info.srv = srv;
        /* metric label: the methods we serve, anything else counted as "other" */
        c->info.method = !strcmp(method, "GET") || !strcmp(method, "POST") || !strcmp(method, "DELETE") ||
                                 !strcmp(method, "HEAD")
                             ? method
                             : "other";
        snprintf(c->info.route, sizeof c->info.route, "other");
        *con_cls = c;
        atomic_fetch_add(&srv->in_flight, 1);
        c->counted = true;
        if (atomic_load(&srv->stopping)) return send_error(&c->info, 503, "the service is shutting down");
        if (!authorized(srv, conn, url)) {
            /* the route label is filled in by the dispatcher's rules only; an unauthenticated client's URL
             * never becomes a metric label */
            snprintf(c->info.route, sizeof c->info.route, "unauthorized");
            return send_error(&c->info, 401, "missing or wrong bearer token (Authorization: Bearer <API_TOKEN>)");
        }
        if (!strcmp(url, "/session/start") && !strcmp(method, "POST")) {
            snprintf(c->info.route, sizeof c->info.route, "/session/start");
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > ((unsigned long long)srv->cfg.max_upload_mb << 20) + (1u << 20))
                return send_error(&c->info, 413, "Upload too large: more than %d MiB (raise MAX_UPLOAD_MB)",
                                  srv->cfg.max_upload_mb);
            c->is_upload = true;
            c->pp = MHD_create_post_processor(conn, 64 * 1024, post_iter, c);
            if (!c->pp)
                return send_error(&c->info, 415, "expected a multipart/form-data body with a field 'file'");
            /* take a session slot before reading the upload: refused at once when none is free, and
             * uploads in progress (each up to MAX_UPLOAD_MB on disk) never outnumber the free slots */
            if (sam_sessions_reserve(0) != SAM2D_OK) return send_error(&c->info, 429, "%s", client_message());
            c->slot_reserved = true;
        }
        return MHD_YES;
    }
    if (c->info.status) { /* a response is queued already: swallow the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (c->is_upload) {
            if (MHD_post_process(c->pp, upload_data, *upload_data_size) != MHD_YES) c->upload_io_error = true;
        } else if (c->len + *upload_data_size > c->body_limit) {
            c->body_too_large = true;
        } else {
            if (c->len + *upload_data_size + 1 > c->cap) {
                size_t nc = (c->len + *upload_data_size + 1) * 2;
                if (nc > c->body_limit + 1) nc = c->body_limit + 1;
                char *nb = realloc(c->body, nc);
                if (!nb) return MHD_NO;
                c->body = nb;
                c->cap = nc;
            }
            memcpy(c->body + c->len, upload_data, *upload_data_size);
            c->len += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->body_too_large)
        return send_error(&c->info, 413, "request body larger than %zu kB", c->body_limit >> 10);
    atomic_fetch_add(&srv->busy, 1);
    enum MHD_Result ret = dispatch(&c->info, c, url);
    atomic_fetch_sub(&srv->busy, 1);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn, (void)toe;
    sam_server *srv = cls;
    reqctx *c = *con_cls;
    if (!c) return;
    double el = sam_now() - c->t0;
    sam_metrics_observe(SAM_H_REQUEST_SECONDS, el);
    sam_metrics_request(c->info.method, c->info.route, c->info.status ? c->info.status : 499);
    if (strcmp(c->info.route, "/health") && strcmp(c->info.route, "/metrics")) {
        char st[8], ms[32];
        snprintf(st, sizeof st, "%d", c->info.status);
        snprintf(ms, sizeof ms, "%.1f", el * 1000);
        sam_log(SAM_LOG_INFO, "request", "method", c->info.method, "route", c->info.route, "status", st, "ms", ms,
                NULL);
    }
    if (c->counted) atomic_fetch_sub(&srv->in_flight, 1);
    reqctx_free(c);
    *con_cls = NULL;
}

sam2d_status sam_server_start(const sam_settings *cfg, sam2d_model *model, const char *model_name, sam_server **out) {
    sam_server *srv = calloc(1, sizeof *srv);
    if (!srv) return SAM_ERR(SAM2D_ERR_NOMEM, "out of memory");
    srv->cfg = *cfg;
    srv->model = model;
    snprintf(srv->model_name, sizeof srv->model_name, "%s", model_name);
    srv->started = sam_now();
    size_t dused = 0, dtotal = 0;
    sam_server_device_memory(model, &dused, &dtotal);
    srv->on_device = dtotal > 0;
    sam_sessions_limits lim = {cfg->max_sessions, (size_t)cfg->max_memory_mb << 20, (double)cfg->session_timeout_s,
                               srv->on_device ? sam_server_device_memory_cb : NULL, model};
    sam_sessions_init(&lim);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        free(srv);
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "HOST: '%s' is not an IPv4 address", cfg->host);
    }
    srv->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                       MHD_USE_ERROR_LOG,
                                   (uint16_t)cfg->port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &addr,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_threads,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                                   srv, MHD_OPTION_END);
    if (!srv->daemon) {
        free(srv);
        return SAM_ERR(SAM2D_ERR_IO, "cannot listen on %s:%d (port in use? see PORT/HOST)", cfg->host, cfg->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    sam_sessions_start_reaper((double)cfg->cleanup_interval_s);
    *out = srv;
    return SAM2D_OK;
}

int sam_server_port(const sam_server *srv) { return srv->port; }

void sam_server_stop(sam_server *srv) {
    if (!srv) return;
    atomic_store(&srv->stopping, true);
    MHD_quiesce_daemon(srv->daemon);
    /* running propagations see `stopping` at their next frame and end their streams; requests being
     * computed finish (30 s at most) */
    for (int i = 0; i < 600 && atomic_load(&srv->busy) > 0; i++) usleep(50 * 1000);
    /* then clients get a moment to read what is left; one that does not read is cut off by the stop */
    for (int i = 0; i < 40 && atomic_load(&srv->in_flight) > 0; i++) usleep(50 * 1000);
    MHD_stop_daemon(srv->daemon);
    sam_sessions_shutdown();
    free(srv);
}
