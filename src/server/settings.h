/* The service's settings: ONE table (name, environment variable, flag,
 * default, bounds, help), read from the environment and then from command-line
 * flags of the same meaning. An invalid value stops start-up with a message
 * naming the variable. */
#ifndef SAM_SERVER_SETTINGS_H
#define SAM_SERVER_SETTINGS_H

#include <stdbool.h>
#include <stdio.h>

#include "sam2d/sam2d.h"

typedef struct {
    int port;
    char host[64];
    int session_timeout_s;        /* idle seconds before a session expires */
    int max_sessions;             /* sessions open at once */
    int cleanup_interval_s;       /* seconds between reaper runs */
    int max_video_frames;
    int max_frame_dimension;
    char model_size[16];          /* tiny, small, base_plus, large */
    char device[16];              /* auto, cpu, cuda, cuda:N, devsim (tests) */
    char model_dir[512];
    char checkpoint[512];         /* custom checkpoint (overrides model_size/model_dir) */
    char config[512];             /* YAML config for the custom checkpoint */
    int max_upload_mb;
    int max_memory_mb;            /* admission budget for all sessions; 0 = no budget */
    char api_token[256];          /* bearer token for everything but /health; empty = no auth */
    char log_format[8];           /* text | json */
    char log_file[512];
    int threads;                  /* compute threads; 0 = all CPUs */
    int http_threads;             /* connection limit of the HTTP server */
    int http_timeout_s;           /* silent seconds before a connection is dropped */
    int stream_buffer_kb;         /* NDJSON queued per propagation stream for a slow reader */
    int max_objects;              /* objects per session */
    char precision[8];            /* fp32 | bf16 */
    bool downscale_oversize;      /* shrink frames over MAX_FRAME_DIMENSION instead of refusing */
} sam_settings;

/* Fill with the defaults of the table. */
void sam_settings_defaults(sam_settings *s);
/* Apply the environment, then argv flags (--port 8002, --session-timeout=30, ...).
 * On error returns SAM2D_ERR_INVALID_ARG with the message naming the variable. */
sam2d_status sam_settings_load(sam_settings *s, int argc, char **argv);
/* Print the table (flag, variable, default, help) for --help. */
void sam_settings_usage(FILE *f);
/* Path of the checkpoint the settings select (custom or MODEL_DIR/sam2.1_hiera_<size>.pt). */
void sam_settings_checkpoint_path(const sam_settings *s, char *buf, size_t len);

#endif
