/* Session registry of the service: admission (count + memory budget), lookup
 * with reference counts, idle expiry (reaper thread + lazily on access), and
 * the per-session state the HTTP layer needs.
 *
 * Lifetime rule: a session found by sam_sessions_acquire() stays alive until
 * the matching sam_sessions_release(), even if it is closed or expires
 * meanwhile (it is unlisted at once and freed by the last release). So a
 * session in use is never freed under a request. All functions thread-safe. */
#ifndef SAM_SERVER_SESSIONS_H
#define SAM_SERVER_SESSIONS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "media/frames.h"
#include "sam2d/video_predictor.h"

typedef struct sam_session {
    char id[33];                 /* 128 random bits, hex */
    /* registry-owned, under the registry lock */
    int refs;
    bool listed;
    double last_active;          /* monotonic seconds of the last request end/start */
    double idle_before;          /* idle seconds when the current request acquired it */
    double created;
    /* fixed after creation */
    int num_frames, width, height;
    double fps;
    size_t estimate_bytes;       /* admission estimate */
    size_t device_estimate_bytes; /* its part in device memory (device back ends; 0 otherwise) */
    sam2d_video_session *vs;     /* predictor state; use under op_lock */
    sam_frame_source *source;    /* original frames for /frame/{i}; use under source_lock */
    char upload_path[256];       /* temporary file the source reads; removed at free */
    pthread_mutex_t op_lock;     /* one mutating operation at a time (else 409) */
    pthread_mutex_t source_lock;
    atomic_bool propagating;
    atomic_bool cancel_requested;
    /* last mask set returned per frame: NDJSON-ready "objects" JSON text */
    pthread_mutex_t masks_lock;
    char **frame_objects;        /* (num_frames) JSON array text or NULL */
    size_t frame_objects_bytes;
} sam_session;

typedef struct {
    int max_sessions;
    size_t memory_budget;        /* bytes; 0 = none */
    double timeout_s;
    /* On a device back end: its memory now (used, total; total 0 = not a device). Admission then
     * also checks each session's device estimate against the device's free memory. NULL: none. */
    void (*device_memory)(void *ctx, size_t *used, size_t *total);
    void *device_ctx;
} sam_sessions_limits;

void sam_sessions_init(const sam_sessions_limits *lim);
/* Close every session (at shutdown); waits for none. */
void sam_sessions_shutdown(void);

double sam_now(void); /* monotonic seconds */

/* Reserve a slot before the expensive work of creating a session: checks the
 * count and the memory budget against `estimate_bytes`. On refusal returns
 * SAM2D_ERR_LIMIT with the message for the client (429). A successful
 * reservation must be followed by sam_sessions_add() or sam_sessions_unreserve(). */
sam2d_status sam_sessions_reserve(size_t estimate_bytes);
/* Add bytes to a reservation once they are known (the slot is taken before an upload is read, the
 * estimate after it is decoded): checks the memory budget and, on a device back end, the device's
 * free memory against `extra_device` (the part of the estimate in device memory). On refusal the
 * reservation keeps its previous bytes. */
sam2d_status sam_sessions_reserve_more(size_t extra_bytes, size_t extra_device_bytes);
void sam_sessions_unreserve(size_t estimate_bytes, size_t device_estimate_bytes);
/* A listed session is about to hold more (a new object): checks the memory budget against the
 * sessions' estimates plus `extra` (and the device's free memory against `extra_device`) and raises
 * the session's estimates. SAM2D_ERR_LIMIT when over. */
sam2d_status sam_sessions_grow(sam_session *s, size_t extra_bytes, size_t extra_device_bytes);
/* Lower (or set) a listed session's estimates, e.g. after objects were removed. */
void sam_sessions_set_estimate(sam_session *s, size_t bytes, size_t device_bytes);
/* Device memory: the back end's used and total now (0, 0 on host back ends) and the device
 * bytes sessions are admitted for (estimates of listed and reserved sessions). */
void sam_sessions_device_memory(size_t *used, size_t *total, size_t *admitted);
/* List a fully built session (takes ownership; consumes the reservation). */
void sam_sessions_add(sam_session *s);

/* Find and pin a session; NULL when unknown or expired (expiry is checked here too). */
sam_session *sam_sessions_acquire(const char *id);
void sam_sessions_release(sam_session *s);
/* Unlist now (close); the last release frees it. false when unknown. */
bool sam_sessions_close(const char *id);

/* Expire idle sessions now; returns the number removed and, if ids is given,
 * a malloc'd array of malloc'd id strings (free each and the array). */
int sam_sessions_reap(char ***ids);

int sam_sessions_count(void);
size_t sam_sessions_memory(void);        /* sum of live sessions' current bytes */
/* Start/stop the reaper thread (every interval_s seconds). */
void sam_sessions_start_reaper(double interval_s);
void sam_sessions_stop_reaper(void);

/* Allocate an empty session with a fresh id (not listed). */
sam_session *sam_session_new(void);
/* Free a session that was never listed. */
void sam_session_destroy(sam_session *s);
size_t sam_session_memory_bytes(sam_session *s);

/* Remember the objects JSON of a frame (copied) / get a copy (malloc'd, or NULL). */
void sam_session_store_frame(sam_session *s, int frame_idx, const char *objects_json);
char *sam_session_frame_objects(sam_session *s, int frame_idx);
void sam_session_clear_frames(sam_session *s);

#endif
