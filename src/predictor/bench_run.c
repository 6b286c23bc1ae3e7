/* `sam2d bench` measurements: build the model (random weights of the real
 * shapes, or a checkpoint), time the image encoder alone, then a synthetic
 * video: first click, repeated clicks on a cached frame, propagation with
 * per-frame timestamps (medians over frames whose memory bank is full). */
#include "predictor/bench_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/image_encoder.h"
#include "model/model.h"
#include "model/preprocess.h"
#include "model/track.h"
#include "model/weights.h"
#include "ops/cpu/cpu_internal.h"
#include "sam2d/video_predictor.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (every thread): under load from other
 * processes, cpu / threads approximates the wall time the stage would take
 * on idle cores (spinning workers make it an over-estimate). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

sam_bench_params sam_bench_default_params(void) {
    sam_bench_params p;
    memset(&p, 0, sizeof(p));
    p.preset = "sam2.1_tiny";
    p.runs = 5;
    p.warmup = 1;
    p.frames = 16;
    p.video_w = 640;
    p.video_h = 480;
    p.image = true;
    p.track = true;
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sam_bench_median(const double *v, int n) {
    if (n <= 0) return 0;
    double tmp[SAM_BENCH_MAX_SAMPLES];
    if (n > SAM_BENCH_MAX_SAMPLES) n = SAM_BENCH_MAX_SAMPLES;
    memcpy(tmp, v, sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static size_t proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            kb = (size_t)strtoull(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

size_t sam_bench_peak_rss(void) { return proc_status_kb("VmHWM") * 1024; }
size_t sam_bench_current_rss(void) { return proc_status_kb("VmRSS") * 1024; }

static void loadavg(double out[3]) {
    out[0] = out[1] = out[2] = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    if (fscanf(f, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3) out[0] = out[1] = out[2] = -1;
    fclose(f);
}

static void logf_(const sam_bench_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const sam_bench_params *p, const char *fmt, ...) {
    if (!p->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->log(p->log_user, line);
}

/* ---------------- memory breakdown ---------------- */

/* The CPU back end's prepared weight copies and the resident part of its scratch. */
static void backend_parts(sam_backend *be, size_t *packed, size_t *scratch) {
    *packed = *scratch = 0;
    if (!be || !be->name || strcmp(be->name, "cpu") != 0) return;
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    pthread_mutex_lock(&cb->wreg_mu);
    *packed = cb->wreg_bytes;
    pthread_mutex_unlock(&cb->wreg_mu);
    pthread_mutex_lock(&cb->scratch_mu);
    *scratch = sam_mem_resident(cb->scratch, cb->scratch_cap * sizeof(float));
    pthread_mutex_unlock(&cb->scratch_mu);
}

/* encoder_ran: the encoder's arena counts as resident only once a forward touched it. */
static void memory_census(sam2d_model *m, const sam2d_video_session *s, bool encoder_ran, sam_bench_memory *o) {
    memset(o, 0, sizeof(*o));
    o->valid = true;
    o->rss = sam_bench_current_rss();
    o->hwm = sam_bench_peak_rss();
    o->accounted = sam2d_memory_used();
    sam_model_memory mm;
    sam_model_memory_census(m, &mm);
    o->weights = mm.weights;
    o->encoder_arena = mm.encoder_arena;
    o->heads_scratch = mm.heads_scratch_resident;
    o->memory_scratch = mm.memory_scratch_resident;
    o->track_scratch = mm.track_scratch_resident;
    backend_parts(m->be, &o->packed, &o->backend_scratch);
    if (s) {
        sam_video_session_census c;
        sam_video_session_memory_census(s, &c);
        o->session = c.total;
        o->session_frames = c.frames;
        o->session_features = c.features;
        o->session_states = c.states;
    }
    const size_t parts = o->weights + o->packed + (encoder_ran ? o->encoder_arena : 0) + o->heads_scratch + o->memory_scratch +
                         o->track_scratch + o->backend_scratch + o->session;
    o->files = proc_status_kb("RssFile") * 1024;
    o->other = o->rss > parts + o->files ? o->rss - parts - o->files : 0;
}

void sam_bench_memory_log(const sam_bench_memory *m, const char *title, sam_bench_log_fn log, void *user) {
    if (!log || !m->valid) return;
    const double Mi = 1048576.0;
    char line[512];
    snprintf(line, sizeof line, "memory %s: RSS %.1f MiB (peak so far %.1f; sam_malloc live %.1f)", title,
             m->rss / Mi, m->hwm / Mi, m->accounted / Mi);
    log(user, line);
    snprintf(line, sizeof line,
             "  weights %.1f, packed copies %.1f, encoder arena %.1f, heads scratch %.1f, memory-module scratch "
             "%.1f, tracker region (per-step buffers + the modules' scratch when shared) %.1f, back-end scratch %.1f MiB",
             m->weights / Mi, m->packed / Mi, m->encoder_arena / Mi, m->heads_scratch / Mi, m->memory_scratch / Mi,
             m->track_scratch / Mi, m->backend_scratch / Mi);
    log(user, line);
    snprintf(line, sizeof line,
             "  session %.1f MiB (frames %.1f, cached features %.1f, frame outputs %.1f, other %.1f); program and "
             "library files %.1f; rest (stacks, malloc, BLAS buffers) %.1f MiB",
             m->session / Mi, m->session_frames / Mi, m->session_features / Mi, m->session_states / Mi,
             (m->session - m->session_frames - m->session_features - m->session_states) / Mi, m->files / Mi,
             m->other / Mi);
    log(user, line);
}

static json_t *memory_parts_json(const sam_bench_memory *m) {
    json_t *o = json_object();
    if (!o || !m->valid) return o;
    const struct {
        const char *name;
        size_t v;
    } parts[] = {{"rss", m->rss},
                 {"peak_rss", m->hwm},
                 {"sam_malloc_live", m->accounted},
                 {"weights", m->weights},
                 {"packed_weights", m->packed},
                 {"encoder_arena", m->encoder_arena},
                 {"heads_scratch", m->heads_scratch},
                 {"memory_modules_scratch", m->memory_scratch},
                 {"tracker_region", m->track_scratch},
                 {"backend_scratch", m->backend_scratch},
                 {"session", m->session},
                 {"session_frames", m->session_frames},
                 {"session_features", m->session_features},
                 {"session_frame_outputs", m->session_states},
                 {"files", m->files},
                 {"other", m->other}};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        json_object_set_new(o, parts[i].name, json_integer((json_int_t)parts[i].v));
    return o;
}

json_t *sam_bench_memory_json(const sam_bench_result *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "after_load", memory_parts_json(&r->mem_load));
    json_object_set_new(o, "after_propagation", memory_parts_json(&r->mem_track));
    json_object_set_new(o, "session_frame_bytes", json_integer((json_int_t)r->session_frame_bytes));
    json_object_set_new(o, "session_state_bytes", json_integer((json_int_t)r->session_state_bytes));
    json_object_set_new(o, "session_object_bytes", json_integer((json_int_t)r->session_object_bytes));
    json_object_set_new(o, "track_growth_per_frame_bytes", json_integer((json_int_t)r->track_growth_per_frame));
    json_object_set_new(o, "peak_frame", json_integer(r->peak_frame));
    return o;
}

static void log_sink(void *user, const char *line) { logf_(user, "%s", line); }

/* ---------------- device: sync before the clock, memory samples ---------------- */

static sam_backend *bench_be;        /* the model's back end while a benchmark runs */
static sam_bench_result *bench_res;  /* where device memory samples go */

/* Waits for the kernels queued so far (a GPU runs them asynchronously): every timed section calls
 * it before reading the clock. A no-op on the CPU. */
static sam2d_status bench_sync(void) {
    if (!bench_be || !bench_be->sync) return SAM2D_OK;
    int rc = bench_be->sync(bench_be);
    return rc == 0 ? SAM2D_OK : SAM_ERR((sam2d_status)rc, "bench: the device reported an error (%s)", bench_be->name);
}

/* Device memory the back end holds now, kept as the peak (device back ends only). */
static void device_sample(void) {
    if (!bench_be || !bench_be->device_memory || !bench_res) return;
    size_t used = 0, total = 0;
    bench_be->device_memory(bench_be, &used, &total);
    if (!total) return;
    bench_res->device_memory_total = total;
    if (used > bench_res->device_memory_peak) bench_res->device_memory_peak = used;
}

/* ---------------- random checkpoint file ---------------- */

sam2d_status sam_bench_write_random_weights(const sam2d_model_config *cfg, const char *path) {
    sam2d_config_tensor *t = NULL;
    size_t n = 0;
    SAM_TRY(sam2d_config_tensors(cfg, &t, &n));
    /* header: {"name":{"dtype":"F32","shape":[..],"data_offsets":[a,b]},...} padded to 8 bytes */
    size_t cap = 256 + n * 256, len = 0;
    char *hdr = sam_malloc(cap);
    if (!hdr) {
        sam2d_config_tensors_free(t);
        return SAM_ERR(SAM2D_ERR_NOMEM, "bench: header");
    }
    uint64_t off = 0;
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        len += (size_t)snprintf(hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", first ? "" : ",",
                                t[i].name);
        for (int d = 0; d < t[i].ndim; d++) {
            numel *= (uint64_t)t[i].shape[d];
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        }
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                (unsigned long long)(off + numel * 4));
        off += numel * 4;
        first = false;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    sam2d_status st = SAM2D_OK;
    FILE *f = fopen(path, "wb");
    if (!f) st = SAM_ERR(SAM2D_ERR_IO, "bench: cannot write %s", path);
    uint64_t hl = len;
    uint8_t hl8[8];
    for (int b = 0; b < 8; b++) hl8[b] = (uint8_t)(hl >> (8 * b));
    if (f && (fwrite(hl8, 1, 8, f) != 8 || fwrite(hdr, 1, len, f) != len)) st = SAM_ERR(SAM2D_ERR_IO, "bench: write");
    sam_free(hdr);
    /* the in-memory random model's generator and seed: same values as --random-weights */
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 1, 0.05f, NULL);
    for (size_t i = 0; f && st == SAM2D_OK && i < n; i++) {
        float *w = sam_weight(&L, t[i].ndim, t[i].shape, "%s", t[i].name);
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
        if (!w)
            st = SAM_ERR(SAM2D_ERR_NOMEM, "bench: tensor %s", t[i].name);
        else if (fwrite(w, 4, numel, f) != numel)
            st = SAM_ERR(SAM2D_ERR_IO, "bench: write %s", path);
        sam_free(w);
    }
    sam_weight_loader_finish(&L);
    if (f && fclose(f) != 0 && st == SAM2D_OK) st = SAM_ERR(SAM2D_ERR_IO, "bench: write %s", path);
    sam2d_config_tensors_free(t);
    return st;
}

static sam2d_status build_model(const sam_bench_params *p, sam_bench_result *r, sam2d_model **out) {
    *out = NULL;
    const char *device = p->device && *p->device ? p->device : "auto";
    if (p->checkpoint) {
        sam2d_model_params mp = sam2d_model_default_params();
        mp.checkpoint_path = p->checkpoint;
        mp.config_path = p->config_path;
        mp.preset = p->config_path ? NULL : p->preset;
        mp.num_threads = p->threads;
        mp.device = device;
        return sam2d_model_load(&mp, out); /* video modules included */
    }
    r->random_weights = true;
    sam2d_model_config cfg;
    if (p->config_path)
        SAM_TRY(sam2d_config_load_yaml(p->config_path, &cfg));
    else
        SAM_TRY(sam2d_config_preset(p->preset ? p->preset : "sam2.1_tiny", &cfg));
    SAM_TRY(sam2d_config_validate(&cfg));
    /* SAM2_PRECISION picks fp32 / bf16, as for a checkpoint */
    const char *prec_name = getenv("SAM2_PRECISION");
    sam_precision prec = SAM_PRECISION_FP32;
    if (prec_name && *prec_name && !sam_precision_parse(prec_name, &prec))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "bench: SAM2_PRECISION '%s' is not fp32 or bf16", prec_name);
    sam_backend *be = sam_backend_create(device, p->threads, prec);
    if (!be) {
        char why[256];
        snprintf(why, sizeof why, "%s", sam2d_last_error());
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "bench: device '%s': %s", device, why);
    }
    /* every module, video side included, from one random-mode loader: no file */
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 1, 0.05f, NULL);
    return sam_model_build(&cfg, &L, be, true, out);
}

/* ---------------- engine timers ----------------
 * The session reaches the model through a per-model engine table; wrapping
 * it splits each tracked frame into image features / track step (memory
 * attention + heads) / memory encoding, and labels the kernel profile. */

static sam2d_status (*orig_hook)(struct sam2d_model *, sam_video_engine *);
static sam_video_engine inner;
static double acc_features, acc_step, acc_encode;
static bool in_propagation; /* engine calls relabel the kernel profile only while propagating */
static bool bank_full;      /* the frame being tracked has a full memory bank */

static const char *sub_stage(const char *name) {
    return in_propagation ? sam_prof_set_stage(name) : NULL;
}
static void end_sub_stage(const char *prev) {
    if (in_propagation) sam_prof_set_stage(prev);
}

static sam2d_status t_features(void *ctx, const uint8_t *frame, float *buf, sam_track_feats *f) {
    (void)ctx;
    const char *prev = sub_stage(bank_full ? "track, full bank: image encoder" : "track, filling the bank: image encoder");
    double t = now_s();
    sam2d_status st = inner.features(inner.ctx, frame, buf, f);
    if (st == SAM2D_OK) st = bench_sync();
    acc_features += now_s() - t;
    end_sub_stage(prev);
    return st;
}
static sam2d_status t_step(void *ctx, const sam_track_feats *f, const sam_track_bank *bank,
                           const sam_track_step_in *in, sam_track_step_out *out) {
    (void)ctx;
    const char *prev = sub_stage(bank_full ? "track, full bank: step (memory attention, heads, memory encoder)"
                                           : "track, filling the bank: step");
    double t = now_s();
    sam2d_status st = inner.step(inner.ctx, f, bank, in, out);
    if (st == SAM2D_OK) st = bench_sync();
    acc_step += now_s() - t;
    end_sub_stage(prev);
    return st;
}
static sam2d_status t_encode(void *ctx, const sam_track_feats *f, const float *lowres, float score, bool pts,
                             uint16_t *maskmem) {
    (void)ctx;
    const char *prev = sub_stage("track: memory encoder (preflight)");
    double t = now_s();
    sam2d_status st = inner.encode(inner.ctx, f, lowres, score, pts, maskmem);
    if (st == SAM2D_OK) st = bench_sync();
    acc_encode += now_s() - t;
    end_sub_stage(prev);
    return st;
}
static void t_lock(void *ctx) {
    (void)ctx;
    if (inner.lock) inner.lock(inner.ctx);
}
static void t_unlock(void *ctx) {
    (void)ctx;
    if (inner.unlock) inner.unlock(inner.ctx);
}

static sam2d_status timed_hook(struct sam2d_model *model, sam_video_engine *eng) {
    SAM_TRY(orig_hook(model, eng));
    inner = *eng;
    eng->ctx = &inner;
    eng->features = t_features;
    eng->step = t_step;
    eng->encode = t_encode;
    eng->lock = t_lock;
    eng->unlock = t_unlock;
    return SAM2D_OK;
}

/* ---------------- synthetic video ----------------
 * A textured background with a bright disc moving across it: the click lands
 * on the disc, so tracking has an object to follow (random weights or not). */
static void make_frame(uint8_t *rgb, int W, int H, int t, int *cx, int *cy, int *rad) {
    const int r0 = H / 6, x0 = W / 4 + t * W / 64, y0 = H / 2 + (t % 4) * 3;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *px = rgb + ((size_t)y * W + x) * 3;
            unsigned h = (unsigned)(x * 73856093u ^ y * 19349663u);
            const int noise = (int)(h >> 27);
            const int dx = x - x0, dy = y - y0;
            if (dx * dx + dy * dy < r0 * r0) {
                px[0] = (uint8_t)(220 + noise), px[1] = (uint8_t)(60 + noise), px[2] = 40;
            } else {
                px[0] = (uint8_t)(40 + x * 100 / W + noise);
                px[1] = (uint8_t)(60 + y * 100 / H + noise);
                px[2] = (uint8_t)((((x / 32) + (y / 32)) % 2) ? 150 : 90);
            }
        }
    *cx = x0, *cy = y0, *rad = r0;
}

typedef struct {
    double last, last_cpu;
    double cpu[SAM_BENCH_MAX_SAMPLES];
    sam_bench_result *r;
    double f0, s0, e0; /* sub-stage accumulators at the previous frame */
    double feat[SAM_BENCH_MAX_SAMPLES], step[SAM_BENCH_MAX_SAMPLES], enc[SAM_BENCH_MAX_SAMPLES];
    double used[SAM_BENCH_MAX_SAMPLES]; /* sam2d_memory_used after each frame */
    size_t hwm;                         /* VmHWM after the previous frame */
    const sam_bench_params *p;
    sam2d_status sync_status;           /* a device error seen at a frame's end */
    char sync_msg[256];
} prop_ctx;

static int on_frame(void *user, const sam2d_video_frame_result *res) {
    prop_ctx *c = user;
    sam2d_status sst = bench_sync();
    if (sst != SAM2D_OK) { /* stop (propagate then says "cancelled"): keep the device's error */
        c->sync_status = sst;
        snprintf(c->sync_msg, sizeof c->sync_msg, "%s", sam2d_last_error());
        return 1;
    }
    const double t = now_s(), tc = cpu_s();
    device_sample();
    const int i = res->frame_idx;
    if (i >= 0 && i < SAM_BENCH_MAX_SAMPLES) {
        c->r->frame_s[i] = t - c->last;
        c->cpu[i] = tc - c->last_cpu;
        c->feat[i] = acc_features - c->f0;
        c->step[i] = acc_step - c->s0;
        c->enc[i] = acc_encode - c->e0;
        if (i + 1 > c->r->n_frames) c->r->n_frames = i + 1;
        c->used[i] = (double)sam2d_memory_used();
        const size_t hwm = sam_bench_peak_rss();
        if (hwm > c->hwm) c->r->peak_frame = i;
        c->hwm = hwm;
        logf_(c->p,
              "frame %d: %.3f s, cpu %.3f s (image encoder %.3f, step %.3f, preflight memory encoder %.3f), "
              "object score %.2f",
              i, c->r->frame_s[i], c->cpu[i], c->feat[i], c->step[i], c->enc[i],
              res->num_objects > 0 ? (double)res->object_scores[0] : 0.0);
    }
    c->f0 = acc_features, c->s0 = acc_step, c->e0 = acc_encode;
    bank_full = i + 1 >= c->r->full_from; /* the next frame's */
    c->last = now_s(); /* the callback's own logging is not charged to the next frame */
    c->last_cpu = cpu_s();
    return 0;
}

static sam2d_status bench_image(sam2d_model *m, const sam_bench_params *p, sam_bench_result *r) {
    const sam2d_model_config *cfg = sam2d_model_get_config(m);
    const int S = cfg->image_size;
    sam_backend *be = m->be;
    const size_t img_bytes = sizeof(float) * (size_t)S * S * 3;
    float *img_host = sam_malloc(img_bytes);                      /* (S, S, 3) normalised input, host */
    float *img = be->buf_alloc(be, img_bytes);                    /* (S, S, 3) the same, buffer */
    /* without position encodings, as both predictors bind them (the full set
     * is 100 MiB at tiny@1024 and made the bench's own peak) */
    float *feat = be->buf_alloc(be, sizeof(float) * sam_image_features_floats_ex(cfg, 0)); /* buffer */
    uint8_t *u8 = sam_malloc((size_t)S * S * 3);                  /* (S, S, 3) host */
    if (!img_host || !img || !feat || !u8) {
        sam_free(img_host), be->buf_free(be, img), be->buf_free(be, feat), sam_free(u8);
        return SAM_ERR(SAM2D_ERR_NOMEM, "bench: image buffers");
    }
    int cx, cy, rad;
    make_frame(u8, S, S, 0, &cx, &cy, &rad);
    sam_normalize_u8(u8, S, img_host);
    be->to_dev(be, img, img_host, img_bytes); /* once: the same input for every run */
    sam_image_features f;
    sam_image_features_bind_ex(cfg, feat, 0, &f);
    sam2d_status st = SAM2D_OK;
    const int total = p->warmup + p->runs;
    for (int i = 0; i < total && st == SAM2D_OK; i++) {
        sam_prof_set_stage(i >= p->warmup ? "image encoder" : NULL);
        sam_model_lock(m);
        double t = now_s(), c = cpu_s();
        st = sam_image_encoder_forward(m->encoder, img, &f);
        if (st == SAM2D_OK) st = bench_sync();
        t = now_s() - t;
        c = cpu_s() - c;
        sam_model_unlock(m);
        sam_prof_set_stage(NULL);
        device_sample();
        logf_(p, "image encoder run %d%s: %.3f s (cpu %.3f s)", i + 1, i < p->warmup ? " (warm-up)" : "", t, c);
        if (i >= p->warmup && r->n_image < SAM_BENCH_MAX_SAMPLES) {
            r->image_cpu[r->n_image] = c;
            r->image_runs[r->n_image++] = t;
        }
    }
    r->image_encoder_s = sam_bench_median(r->image_runs, r->n_image);
    r->image_encoder_cpu_s = sam_bench_median(r->image_cpu, r->n_image);
    sam_free(img_host), be->buf_free(be, img), be->buf_free(be, feat), sam_free(u8);
    return st;
}

static sam2d_status bench_video(sam2d_model *m, const sam_bench_params *p, sam_bench_result *r) {
    const sam2d_model_config *cfg = sam2d_model_get_config(m);
    const int W = p->video_w, H = p->video_h, N = p->frames;
    if (N > SAM_BENCH_MAX_SAMPLES) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "bench: at most %d frames", SAM_BENCH_MAX_SAMPLES);
    r->full_from = cfg->num_maskmem + 1;
    if (N < r->full_from + 1)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "bench: need at least %d frames for a full memory bank",
                       r->full_from + 1);
    uint8_t **frames = sam_calloc((size_t)N, sizeof(uint8_t *));
    if (!frames) return SAM_ERR(SAM2D_ERR_NOMEM, "bench: frames");
    sam2d_status st = SAM2D_OK;
    int cx = 0, cy = 0, rad = 0;
    for (int i = 0; i < N && st == SAM2D_OK; i++) {
        frames[i] = sam_malloc((size_t)W * H * 3);
        if (!frames[i]) st = SAM_ERR(SAM2D_ERR_NOMEM, "bench: frames");
        else {
            int x, y, rr;
            make_frame(frames[i], W, H, i, &x, &y, &rr);
            if (i == 0) cx = x, cy = y, rad = rr;
        }
    }
    sam2d_video_session *s = NULL;
    orig_hook = sam_video_engine_hook;
    if (st == SAM2D_OK && !orig_hook) st = SAM_ERR(SAM2D_ERR_STATE, "bench: the model has no video engine");
    if (st == SAM2D_OK) {
        sam_video_engine_hook = timed_hook;
        double t = now_s();
        st = sam2d_video_session_create(m, (const uint8_t *const *)frames, N, W, H, W, H, NULL, &s);
        if (st == SAM2D_OK) st = bench_sync();
        r->session_s = now_s() - t;
        sam_video_engine_hook = orig_hook;
    }
    for (int i = 0; i < N; i++) sam_free(frames[i]);
    sam_free(frames);

    /* clicks: the first encodes frame 0; later ones reuse its cached features */
    float pt[2] = {(float)cx, (float)cy};
    int lab[1] = {1};
    sam2d_video_frame_result res;
    if (st == SAM2D_OK) {
        sam_prof_set_stage("first click (encodes the frame)");
        double t = now_s();
        st = sam2d_video_add_points(s, 0, 1, pt, lab, 1, NULL, true, &res);
        if (st == SAM2D_OK) st = bench_sync();
        r->first_click_s = now_s() - t;
        device_sample();
        sam_prof_set_stage(NULL);
        logf_(p, "first click: %.3f s", r->first_click_s);
    }
    const int total = p->warmup + p->runs;
    for (int i = 0; i < total && st == SAM2D_OK; i++) {
        float q[2] = {pt[0] + (float)(i % 3) * rad / 8.0f, pt[1]};
        sam_prof_set_stage(i >= p->warmup ? "click (cached frame)" : NULL);
        double t = now_s();
        st = sam2d_video_add_points(s, 0, 1, q, lab, 1, NULL, true, &res);
        if (st == SAM2D_OK) st = bench_sync();
        t = now_s() - t;
        sam_prof_set_stage(NULL);
        if (i >= p->warmup && r->n_prompt < SAM_BENCH_MAX_SAMPLES) r->prompt_runs[r->n_prompt++] = t;
    }
    r->prompt_s = sam_bench_median(r->prompt_runs, r->n_prompt);
    if (st == SAM2D_OK) logf_(p, "click on a cached frame: median %.4f s over %d", r->prompt_s, r->n_prompt);

    /* propagation: one timestamp per frame callback */
    prop_ctx c;
    memset(&c, 0, sizeof(c));
    c.r = r;
    c.p = p;
    if (st == SAM2D_OK) {
        acc_features = acc_step = acc_encode = 0;
        sam_prof_set_stage("track: other");
        in_propagation = true;
        bank_full = false;
        r->peak_frame = -1;
        c.hwm = sam_bench_peak_rss();
        c.last = now_s();
        c.last_cpu = cpu_s();
        st = sam2d_video_propagate(s, 0, false, -1, on_frame, &c);
        if (c.sync_status != SAM2D_OK) st = SAM_ERR(c.sync_status, "%s", c.sync_msg);
        in_propagation = false;
        sam_prof_set_stage(NULL);
    }
    if (st == SAM2D_OK) {
        const int n = r->n_frames - r->full_from;
        if (n <= 0) {
            st = SAM_ERR(SAM2D_ERR_STATE, "bench: propagation returned %d frames", r->n_frames);
        } else {
            r->track_frame_s = sam_bench_median(r->frame_s + r->full_from, n);
            r->track_frame_cpu_s = sam_bench_median(c.cpu + r->full_from, n);
            r->track_features_s = sam_bench_median(c.feat + r->full_from, n);
            r->track_step_s = sam_bench_median(c.step + r->full_from, n);
            double fl = 0;
            for (int i = r->full_from; i < r->n_frames; i++) {
                int ptrs = i < cfg->max_obj_ptrs_in_encoder ? i : cfg->max_obj_ptrs_in_encoder;
                fl += sam_bench_track_frame_flops(cfg, &r->flops, cfg->num_maskmem, ptrs);
            }
            r->track_frame_flops = fl / n;
        }
        r->session_bytes = sam2d_video_session_memory_bytes(s);
        memory_census(m, s, true, &r->mem_track);
        sam_video_session_census sc;
        sam_video_session_memory_census(s, &sc);
        r->session_frame_bytes = sc.frame_bytes;
        r->session_state_bytes = sc.state_bytes;
        r->session_object_bytes = sc.n_objects > 0 ? sc.objects / (size_t)sc.n_objects : 0;
        /* growth of the live bytes from frame to frame once the bank is full (one object) */
        double g[SAM_BENCH_MAX_SAMPLES];
        int ng = 0;
        for (int i = 2; i < r->n_frames; i++) g[ng++] = c.used[i] - c.used[i - 1]; /* frame 1: the first tracked */
        const double gm = sam_bench_median(g, ng);
        r->track_growth_per_frame = gm > 0 ? (size_t)gm : 0;
        sam_bench_memory_log(&r->mem_track, "after propagation (session open)", log_sink, (void *)p);
        logf_(p, "  per session: %.1f KiB per stored frame, %.1f KiB per tracked frame and object (measured growth "
                 "%.1f KiB), %.1f KiB per object; peak reached at frame %d",
              r->session_frame_bytes / 1024.0, r->session_state_bytes / 1024.0, r->track_growth_per_frame / 1024.0,
              r->session_object_bytes / 1024.0, r->peak_frame);
    }
    sam2d_video_session_free(s);
    return st;
}

sam2d_status sam_bench_run(const sam_bench_params *p_in, sam_bench_result *r) {
    memset(r, 0, sizeof(*r));
    sam_bench_params p = p_in ? *p_in : sam_bench_default_params();
    if (p.runs < 1) p.runs = 1;
    if (p.warmup < 0) p.warmup = 0;
    if (p.runs + p.warmup > SAM_BENCH_MAX_SAMPLES) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "bench: too many runs");
    loadavg(r->loadavg_start);
    snprintf(r->preset, sizeof r->preset, "%s", p.config_path ? p.config_path : p.preset ? p.preset : "");
    double t = now_s();
    sam2d_model *m = NULL;
    SAM_TRY(build_model(&p, r, &m));
    bench_be = m->be;
    bench_res = r;
    sam2d_status st = bench_sync(); /* weights uploaded */
    r->load_s = now_s() - t;
    snprintf(r->device, sizeof r->device, "%s", m->be && m->be->name ? m->be->name : "?");
    device_sample();
    r->device_memory_after_load = r->device_memory_peak;
    r->rss_after_load_bytes = sam_bench_current_rss();
    memory_census(m, NULL, false, &r->mem_load);
    sam_bench_memory_log(&r->mem_load, "after load", log_sink, &p);
    sam2d_model_describe(m, r->model, sizeof r->model);
    const sam2d_model_config *cfg = sam2d_model_get_config(m);
    r->image_size = cfg->image_size;
    r->threads = m->be && m->be->pool ? sam_threadpool_size(m->be->pool) : 1;
    snprintf(r->precision, sizeof r->precision, "%s", m->be ? sam_precision_name(m->be->precision) : "?");
    /* bf16 dot products (AVX512_BF16) double the fp32 FMA rate */
    r->peak_gflops = p.peak_gflops > 0 ? p.peak_gflops
                                       : 166.4 * r->threads * (m->be && m->be->precision == SAM_PRECISION_BF16 ? 2 : 1);
    if (st == SAM2D_OK) st = sam_bench_count_flops(cfg, &r->flops);
    logf_(&p, "%s; load %.2f s; %d threads; load average %.2f", r->model, r->load_s, r->threads, r->loadavg_start[0]);
    if (r->device_memory_total)
        logf_(&p, "device %s: %.1f of %.1f MiB of device memory in use after load", r->device,
              r->device_memory_after_load / 1048576.0, r->device_memory_total / 1048576.0);
    if (p.profile && !sam_prof_install(m->be)) p.profile = false; /* the caller says so (r->profiled) */
    r->profiled = p.profile;
    if (st == SAM2D_OK && p.image) st = bench_image(m, &p, r);
    if (st == SAM2D_OK && p.track) st = bench_video(m, &p, r);
    sam_prof_set_stage(NULL);
    r->peak_rss_bytes = sam_bench_peak_rss();
    loadavg(r->loadavg_end);
    sam2d_model_free(m);
    bench_be = NULL;
    bench_res = NULL;
    return st;
}
