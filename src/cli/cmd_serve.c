/* sam2d serve: the HTTP service. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/log.h"
#include "sam2d/model.h"
#include "sam2d/video_predictor.h"
#include "server/device.h"
#include "server/server.h"
#include "server/settings.h"

static const char *official_url(const char *size) {
    if (!strcmp(size, "tiny")) return "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt";
    if (!strcmp(size, "small")) return "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt";
    if (!strcmp(size, "large")) return "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt";
    return "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt";
}

static int cmd_serve(int argc, char **argv) {
    sam_settings cfg;
    sam_settings_defaults(&cfg);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: sam2d serve [options]\n\nServes SAM 2 video sessions over HTTP (see docs/openapi.yaml).\n\n");
            sam_settings_usage(stdout);
            return SAM2D_EXIT_OK;
        }
    if (sam_settings_load(&cfg, argc, argv) != SAM2D_OK) {
        fprintf(stderr, "sam2d serve: invalid setting: %s\n", sam2d_last_error());
        return SAM2D_EXIT_USAGE;
    }
    if (sam_log_init(!strcmp(cfg.log_format, "json"), cfg.log_file, SAM_LOG_INFO) != 0)
        fprintf(stderr, "sam2d serve: cannot open LOG_FILE %s; logging to stderr only\n", cfg.log_file);

    char ckpt[1024];
    sam_settings_checkpoint_path(&cfg, ckpt, sizeof ckpt);
    struct stat st;
    if (stat(ckpt, &st) != 0) {
        if (cfg.checkpoint[0])
            sam_logf(SAM_LOG_ERROR, "SAM2_CHECKPOINT %s does not exist", ckpt);
        else
            sam_logf(SAM_LOG_ERROR,
                     "model checkpoint not found: expected %s (SAM2_MODEL_SIZE=%s in MODEL_DIR=%s). Download Meta's "
                     "file %s into MODEL_DIR (scripts/run.sh does it when the machine is online), or set "
                     "SAM2_CHECKPOINT (and SAM2_CONFIG) to another model, e.g. models/sam2.1_hiera_micro_shapes.pt",
                     ckpt, cfg.model_size, cfg.model_dir, official_url(cfg.model_size));
        return SAM2D_EXIT_FAIL;
    }
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = ckpt;
    mp.config_path = cfg.config[0] ? cfg.config : NULL;
    char preset[64];
    if (!cfg.config[0] && !cfg.checkpoint[0]) {
        snprintf(preset, sizeof preset, "sam2.1_%s", cfg.model_size);
        mp.preset = preset;
    }
    mp.num_threads = cfg.threads;
    mp.device = cfg.device; /* the library logs the back end it picks (auto: the GPU when one works) */
    mp.precision = cfg.precision;
    sam_logf(SAM_LOG_INFO, "loading model %s", ckpt);
    sam2d_model *model = NULL;
    if (sam2d_model_load(&mp, &model) != SAM2D_OK) {
        sam_logf(SAM_LOG_ERROR, "cannot load the model %s on SAM2_DEVICE=%s: %s", ckpt, cfg.device,
                 sam2d_last_error());
        return SAM2D_EXIT_FAIL;
    }
    char desc[256];
    sam2d_model_describe(model, desc, sizeof desc);
    size_t dused = 0, dtotal = 0;
    sam_server_device_memory(model, &dused, &dtotal);
    if (dtotal > 0)
        sam_logf(SAM_LOG_INFO, "device %s: %zu of %zu MiB of device memory in use after the model load",
                 sam2d_model_device(model), dused >> 20, dtotal >> 20);
    const char *base = strrchr(ckpt, '/');
    base = base ? base + 1 : ckpt;
    char name[128];
    snprintf(name, sizeof name, "%.100s", base);
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = 0;

    /* Block the signals in every thread; the main thread waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    sam_server *srv = NULL;
    if (sam_server_start(&cfg, model, name, &srv) != SAM2D_OK) {
        sam_logf(SAM_LOG_ERROR, "cannot start the service: %s", sam2d_last_error());
        sam2d_model_free(model);
        return SAM2D_EXIT_FAIL;
    }
    sam_logf(SAM_LOG_INFO, "sam2d serving %s (%s) on %s:%d (sessions %d, timeout %ds, reaper every %ds, max frames %d, max dimension %d)",
             desc, sam2d_model_precision(model), cfg.host, sam_server_port(srv), cfg.max_sessions, cfg.session_timeout_s, cfg.cleanup_interval_s,
             cfg.max_video_frames, cfg.max_frame_dimension);
    int sig = 0;
    sigwait(&set, &sig);
    sam_logf(SAM_LOG_INFO, "received %s: draining and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sam_server_stop(srv);
    sam2d_model_free(model);
    sam_logf(SAM_LOG_INFO, "stopped");
    sam_log_close();
    return SAM2D_EXIT_OK;
}

SAM2D_COMMAND(serve, "serve", "run the HTTP service (sessions, prompts, propagation)", cmd_serve)
