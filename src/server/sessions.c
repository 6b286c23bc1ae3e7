#include "server/sessions.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "server/metrics.h"

#define MAX_LISTED 1024

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static sam_session *listed[MAX_LISTED];
static int nlisted;
static int nreserved;            /* admitted but not yet listed */
static size_t reserved_bytes;    /* their estimates */
static size_t reserved_dev_bytes; /* the device part of their estimates */
static size_t device_base;       /* device memory the back end held at start (model weights, scratch) */
static sam_sessions_limits limits;

static pthread_t reaper;
static bool reaper_running;
static pthread_mutex_t reaper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cv = PTHREAD_COND_INITIALIZER;
static bool reaper_stop;
static double reaper_interval;

double sam_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void sam_sessions_init(const sam_sessions_limits *lim) {
    pthread_mutex_lock(&reg_mu);
    limits = *lim;
    device_base = 0;
    if (limits.device_memory) {
        size_t total = 0;
        limits.device_memory(limits.device_ctx, &device_base, &total);
    }
    pthread_mutex_unlock(&reg_mu);
}

static void random_id(char out[33]) {
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof b) { /* fall back to time + address entropy */
        unsigned long long x = (unsigned long long)(sam_now() * 1e9) ^ (unsigned long long)(uintptr_t)out;
        for (int i = 0; i < 16; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

sam_session *sam_session_new(void) {
    sam_session *s = sam_calloc(1, sizeof *s);
    if (!s) return NULL;
    random_id(s->id);
    pthread_mutex_init(&s->op_lock, NULL);
    pthread_mutex_init(&s->source_lock, NULL);
    pthread_mutex_init(&s->masks_lock, NULL);
    s->created = s->last_active = sam_now();
    return s;
}

void sam_session_clear_frames(sam_session *s) {
    pthread_mutex_lock(&s->masks_lock);
    if (s->frame_objects)
        for (int i = 0; i < s->num_frames; i++) {
            sam_free(s->frame_objects[i]);
            s->frame_objects[i] = NULL;
        }
    s->frame_objects_bytes = 0;
    pthread_mutex_unlock(&s->masks_lock);
}

void sam_session_destroy(sam_session *s) {
    if (!s) return;
    sam_session_clear_frames(s);
    sam_free(s->frame_objects);
    if (s->vs) sam2d_video_session_free(s->vs);
    if (s->source) sam_frame_source_free(s->source);
    if (s->upload_path[0]) unlink(s->upload_path);
    pthread_mutex_destroy(&s->op_lock);
    pthread_mutex_destroy(&s->source_lock);
    pthread_mutex_destroy(&s->masks_lock);
    sam_free(s);
}

size_t sam_session_memory_bytes(sam_session *s) {
    size_t n = sizeof *s;
    if (s->vs) n += sam2d_video_session_memory_bytes(s->vs);
    if (s->source) n += sam_frame_source_resident_bytes(s->source);
    n += s->frame_objects_bytes + (size_t)s->num_frames * sizeof(char *);
    return n;
}

static size_t listed_bytes_locked(void) {
    size_t n = 0;
    for (int i = 0; i < nlisted; i++) {
        size_t cur = sam_session_memory_bytes(listed[i]);
        n += cur > listed[i]->estimate_bytes ? cur : listed[i]->estimate_bytes;
    }
    return n;
}

static sam2d_status budget_check_locked(size_t estimate) {
    if (!limits.memory_budget) return SAM2D_OK;
    size_t used = listed_bytes_locked() + reserved_bytes;
    if (used + estimate > limits.memory_budget && estimate == 0) /* a slot taken before the size is known */
        return SAM_ERR(SAM2D_ERR_LIMIT,
                       "Memory budget exceeded: %zu of %zu MiB are in use (raise MAX_MEMORY_MB or close a session)",
                       used >> 20, limits.memory_budget >> 20);
    if (used + estimate > limits.memory_budget)
        return SAM_ERR(SAM2D_ERR_LIMIT,
                       "Memory budget exceeded: this video needs about %zu MiB, %zu of %zu MiB are in use "
                       "(raise MAX_MEMORY_MB or close a session)",
                       estimate >> 20, used >> 20, limits.memory_budget >> 20);
    return SAM2D_OK;
}

/* Device bytes admitted: the estimates of listed and reserved sessions. */
static size_t admitted_dev_locked(void) {
    size_t n = reserved_dev_bytes;
    for (int i = 0; i < nlisted; i++) n += listed[i]->device_estimate_bytes;
    return n;
}

/* On a device back end, `extra` more device bytes must fit the device: the memory in use is taken
 * as the larger of what the back end holds now and what it held at start plus every admitted
 * session's estimate (a session allocates its buffers as it tracks, so "used" alone would admit
 * sessions that later cannot grow). */
static sam2d_status device_check_locked(size_t extra, const char *what, const char *advice) {
    if (!limits.device_memory || extra == 0) return SAM2D_OK;
    size_t used = 0, total = 0;
    limits.device_memory(limits.device_ctx, &used, &total);
    if (total == 0) return SAM2D_OK;
    size_t committed = device_base + admitted_dev_locked();
    size_t in_use = used > committed ? used : committed;
    if (in_use + extra <= total) return SAM2D_OK;
    return SAM_ERR(SAM2D_ERR_LIMIT,
                   "Device memory exhausted: %s needs about %zu MiB of device memory, %zu of %zu MiB are in use "
                   "(%s)",
                   what, (extra + (1u << 20) - 1) >> 20, in_use >> 20, total >> 20, advice);
}

sam2d_status sam_sessions_reserve_more(size_t extra, size_t extra_dev) {
    pthread_mutex_lock(&reg_mu);
    sam2d_status st = budget_check_locked(extra);
    if (st == SAM2D_OK)
        st = device_check_locked(extra_dev, "this video", "close a session or send a shorter video");
    if (st == SAM2D_OK) reserved_bytes += extra, reserved_dev_bytes += extra_dev;
    else sam_metrics_inc(SAM_C_SESSIONS_REJECTED, 1);
    pthread_mutex_unlock(&reg_mu);
    return st;
}

sam2d_status sam_sessions_grow(sam_session *s, size_t extra, size_t extra_dev) {
    pthread_mutex_lock(&reg_mu);
    sam2d_status st = SAM2D_OK;
    if (limits.memory_budget) {
        size_t used = listed_bytes_locked() + reserved_bytes;
        if (used + extra > limits.memory_budget)
            st = SAM_ERR(SAM2D_ERR_LIMIT,
                         "Memory budget exceeded: another object needs about %zu MiB, %zu of %zu MiB are in use "
                         "(raise MAX_MEMORY_MB, remove an object or close a session)",
                         (extra + (1u << 20) - 1) >> 20, used >> 20, limits.memory_budget >> 20);
    }
    if (st == SAM2D_OK)
        st = device_check_locked(extra_dev, "another object", "remove an object or close a session");
    if (st == SAM2D_OK) s->estimate_bytes += extra, s->device_estimate_bytes += extra_dev;
    pthread_mutex_unlock(&reg_mu);
    return st;
}

void sam_sessions_set_estimate(sam_session *s, size_t bytes, size_t device_bytes) {
    pthread_mutex_lock(&reg_mu);
    s->estimate_bytes = bytes;
    s->device_estimate_bytes = device_bytes;
    pthread_mutex_unlock(&reg_mu);
}

void sam_sessions_device_memory(size_t *used, size_t *total, size_t *admitted) {
    pthread_mutex_lock(&reg_mu);
    *used = *total = 0;
    if (limits.device_memory) limits.device_memory(limits.device_ctx, used, total);
    *admitted = *total ? admitted_dev_locked() : 0;
    pthread_mutex_unlock(&reg_mu);
}

sam2d_status sam_sessions_reserve(size_t estimate) {
    pthread_mutex_lock(&reg_mu);
    sam2d_status st = SAM2D_OK;
    if (nlisted + nreserved >= limits.max_sessions) {
        st = SAM_ERR(SAM2D_ERR_LIMIT,
                     "Maximum concurrent sessions reached (%d). Close a session or wait for one to expire "
                     "(raise MAX_CONCURRENT_SESSIONS to allow more)",
                     limits.max_sessions);
    } else {
        st = budget_check_locked(estimate);
    }
    if (st == SAM2D_OK) {
        nreserved++;
        reserved_bytes += estimate;
        int total = nlisted + nreserved;
        if (total * 5 >= limits.max_sessions * 4)
            sam_log(SAM_LOG_WARN, "sessions at or above 80% of MAX_CONCURRENT_SESSIONS", "sessions",
                    total == limits.max_sessions ? "full" : "high", NULL);
        if (limits.memory_budget) {
            size_t used = listed_bytes_locked() + reserved_bytes;
            if (used * 5 >= limits.memory_budget * 4) {
                char b[64];
                snprintf(b, sizeof b, "%zu/%zu MiB", used >> 20, limits.memory_budget >> 20);
                sam_log(SAM_LOG_WARN, "session memory at or above 80% of MAX_MEMORY_MB", "memory", b, NULL);
            }
        }
    } else {
        sam_metrics_inc(SAM_C_SESSIONS_REJECTED, 1);
    }
    pthread_mutex_unlock(&reg_mu);
    return st;
}

void sam_sessions_unreserve(size_t estimate, size_t device_estimate) {
    pthread_mutex_lock(&reg_mu);
    if (nreserved > 0) nreserved--;
    reserved_bytes -= estimate < reserved_bytes ? estimate : reserved_bytes;
    reserved_dev_bytes -= device_estimate < reserved_dev_bytes ? device_estimate : reserved_dev_bytes;
    pthread_mutex_unlock(&reg_mu);
}

void sam_sessions_add(sam_session *s) {
    pthread_mutex_lock(&reg_mu);
    if (nreserved > 0) nreserved--;
    reserved_bytes -= s->estimate_bytes < reserved_bytes ? s->estimate_bytes : reserved_bytes;
    reserved_dev_bytes -= s->device_estimate_bytes < reserved_dev_bytes ? s->device_estimate_bytes : reserved_dev_bytes;
    s->listed = true;
    s->refs = 0;
    s->last_active = sam_now();
    listed[nlisted++] = s; /* reserve() kept nlisted < max_sessions <= MAX_LISTED */
    pthread_mutex_unlock(&reg_mu);
    sam_metrics_inc(SAM_C_SESSIONS_CREATED, 1);
}

/* Unlist listed[i]; returns the session if it can be freed now. */
static sam_session *unlist_locked(int i) {
    sam_session *s = listed[i];
    listed[i] = listed[--nlisted];
    s->listed = false;
    return s->refs == 0 ? s : NULL;
}

static bool expired_locked(sam_session *s, double now) {
    return s->refs == 0 && now - s->last_active > limits.timeout_s;
}

static void finish(sam_session *s, const char *why) {
    sam_metrics_observe(SAM_H_SESSION_BYTES, (double)sam_session_memory_bytes(s));
    size_t before = sam2d_memory_used();
    char id[33];
    memcpy(id, s->id, sizeof id);
    sam_session_destroy(s);
    char freed[32];
    snprintf(freed, sizeof freed, "%zu", before - sam2d_memory_used());
    sam_log(SAM_LOG_INFO, "session freed", "session", id, "reason", why, "bytes_returned", freed, NULL);
}

sam_session *sam_sessions_acquire(const char *id) {
    double now = sam_now();
    sam_session *found = NULL, *dead = NULL;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < nlisted; i++) {
        if (strcmp(listed[i]->id, id) != 0) continue;
        if (expired_locked(listed[i], now)) {
            dead = unlist_locked(i);
        } else {
            found = listed[i];
            found->refs++;
            found->idle_before = found->refs == 1 ? now - found->last_active : 0;
            found->last_active = now;
        }
        break;
    }
    pthread_mutex_unlock(&reg_mu);
    if (dead) {
        sam_metrics_inc(SAM_C_SESSIONS_EXPIRED, 1);
        finish(dead, "expired");
    }
    return found;
}

void sam_sessions_release(sam_session *s) {
    if (!s) return;
    bool free_now;
    pthread_mutex_lock(&reg_mu);
    s->refs--;
    s->last_active = sam_now();
    free_now = !s->listed && s->refs == 0;
    pthread_mutex_unlock(&reg_mu);
    if (free_now) finish(s, "closed");
}

bool sam_sessions_close(const char *id) {
    sam_session *dead = NULL;
    bool found = false;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < nlisted; i++)
        if (!strcmp(listed[i]->id, id)) {
            found = true;
            atomic_store(&listed[i]->cancel_requested, true);
            if (listed[i]->vs) sam2d_video_cancel(listed[i]->vs);
            dead = unlist_locked(i);
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    if (found) sam_metrics_inc(SAM_C_SESSIONS_CLOSED, 1);
    if (dead) finish(dead, "closed");
    return found;
}

int sam_sessions_reap(char ***ids_out) {
    double now = sam_now();
    sam_session *dead[MAX_LISTED];
    int nd = 0;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < nlisted;) {
        if (expired_locked(listed[i], now)) {
            dead[nd++] = unlist_locked(i); /* refs == 0, so never NULL */
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    char **ids = ids_out && nd ? calloc((size_t)nd, sizeof *ids) : NULL;
    for (int i = 0; i < nd; i++) {
        if (ids) ids[i] = strdup(dead[i]->id);
        sam_metrics_inc(SAM_C_SESSIONS_EXPIRED, 1);
        finish(dead[i], "expired");
    }
    if (ids_out) *ids_out = ids;
    return nd;
}

int sam_sessions_count(void) {
    pthread_mutex_lock(&reg_mu);
    int n = nlisted;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

size_t sam_sessions_memory(void) {
    pthread_mutex_lock(&reg_mu);
    size_t n = 0;
    for (int i = 0; i < nlisted; i++) n += sam_session_memory_bytes(listed[i]);
    pthread_mutex_unlock(&reg_mu);
    return n;
}

void sam_sessions_shutdown(void) {
    sam_sessions_stop_reaper();
    for (;;) {
        sam_session *dead = NULL;
        pthread_mutex_lock(&reg_mu);
        if (nlisted > 0) dead = unlist_locked(nlisted - 1);
        int left = nlisted;
        pthread_mutex_unlock(&reg_mu);
        if (dead) finish(dead, "shutdown");
        if (left == 0) break;
    }
}

static void *reaper_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&reaper_mu);
    while (!reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + reaper_interval;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&reaper_cv, &reaper_mu, &ts);
        if (reaper_stop) break;
        pthread_mutex_unlock(&reaper_mu);
        int n = sam_sessions_reap(NULL);
        if (n > 0) sam_logf(SAM_LOG_INFO, "reaper: %d idle session(s) expired", n);
        pthread_mutex_lock(&reaper_mu);
    }
    pthread_mutex_unlock(&reaper_mu);
    return NULL;
}

void sam_sessions_start_reaper(double interval_s) {
    pthread_mutex_lock(&reaper_mu);
    reaper_interval = interval_s;
    reaper_stop = false;
    if (!reaper_running && pthread_create(&reaper, NULL, reaper_main, NULL) == 0) reaper_running = true;
    pthread_mutex_unlock(&reaper_mu);
}

void sam_sessions_stop_reaper(void) {
    pthread_mutex_lock(&reaper_mu);
    bool running = reaper_running;
    reaper_stop = true;
    pthread_cond_broadcast(&reaper_cv);
    pthread_mutex_unlock(&reaper_mu);
    if (running) pthread_join(reaper, NULL);
    reaper_running = false;
}

void sam_session_store_frame(sam_session *s, int frame_idx, const char *objects_json) {
    if (frame_idx < 0 || frame_idx >= s->num_frames || !s->frame_objects) return;
    char *copy = sam_strdup(objects_json);
    pthread_mutex_lock(&s->masks_lock);
    if (s->frame_objects[frame_idx]) {
        s->frame_objects_bytes -= sam_alloc_size(s->frame_objects[frame_idx]);
        sam_free(s->frame_objects[frame_idx]);
    }
    s->frame_objects[frame_idx] = copy;
    if (copy) s->frame_objects_bytes += sam_alloc_size(copy);
    pthread_mutex_unlock(&s->masks_lock);
}

char *sam_session_frame_objects(sam_session *s, int frame_idx) {
    if (frame_idx < 0 || frame_idx >= s->num_frames || !s->frame_objects) return NULL;
    pthread_mutex_lock(&s->masks_lock);
    char *r = s->frame_objects[frame_idx] ? strdup(s->frame_objects[frame_idx]) : NULL;
    pthread_mutex_unlock(&s->masks_lock);
    return r;
}
