/* `sam2d track VIDEO --prompt F:OBJ:x,y[,l] ... --out DIR`: video in, masks
 * out, with a progress bar on stderr. The work itself is sam_track_job_run. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "predictor/track_run.h"
#include "sam2d/model.h"
#include "sam2d/video_predictor.h"

static void track_usage(FILE *f) {
    fprintf(f,
            "usage: sam2d track VIDEO --prompt FRAME:OBJ:x,y[,label] ... [--box FRAME:OBJ:x0,y0,x1,y1]\n"
            "                   [--mask FRAME:OBJ:file.png] [--reverse|--both] --out DIR\n"
            "                   [--format png|rle|coco-json] [--model PATH] [--config YAML] [options]\n"
            "  VIDEO                       a video file, a folder of JPEG/PNG frames, or a tar/zip of frames\n"
            "  --prompt FRAME:OBJ:x,y[,l]  a click on frame FRAME for object OBJ, in video pixels;\n"
            "                              label l: 1 foreground (default), 0 background\n"
            "  --box FRAME:OBJ:x0,y0,x1,y1 a box; every --prompt/--box of one frame and object is ONE prompt\n"
            "  --mask FRAME:OBJ:file.png   a mask prompt: pixel > 0 = object (normally the video's size; others\n"
            "                              are resized to the model's input as SAM 2 does)\n"
            "  --reverse | --both          propagate backwards, or forwards then backwards (default forwards),\n"
            "                              starting at the first prompted frame (frames it does not reach get\n"
            "                              no output)\n"
            "  --out DIR                   output folder (created when missing)\n"
            "  --format F                  png: DIR/00000.png ... palette PNG, pixel = object id (default);\n"
            "                              rle: DIR/masks.jsonl, one line per frame {frame_idx, objects};\n"
            "                              coco-json: DIR/annotations.json (COCO RLE annotations)\n"
            "  --model PATH                checkpoint (.pt or .safetensors); default\n"
            "                              $MODEL_DIR/sam2.1_hiera_<SAM2_MODEL_SIZE>.pt\n"
            "  --config YAML               Meta's model config (default: guessed from the checkpoint)\n"
            "  --threads N                 CPU threads (default SAM2_THREADS or all)\n"
            SAM2D_CLI_DEVICE_HELP
            "  --max-frames N              refuse longer videos (default MAX_VIDEO_FRAMES or 300)\n"
            "  --max-dimension N           refuse larger frames (default MAX_FRAME_DIMENSION or 1920)\n"
            "  --downscale                 shrink larger frames to --max-dimension instead of refusing\n"
            "  --progress                  progress bar on stderr even when it is not a terminal\n"
            "  --no-progress               no progress bar\n"
            "Objects are added in ascending id. Exit codes: 0 ok, 1 failure, 2 usage error.\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "sam2d track: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    track_usage(stderr);
    return SAM2D_EXIT_USAGE;
}

/* "FRAME:OBJ:rest" -> frame, obj, pointer to rest (a file name may hold more colons). */
static bool parse_target(const char *s, int *frame, int *obj, const char **rest) {
    const char *c1 = strchr(s, ':');
    if (!c1) return false;
    const char *c2 = strchr(c1 + 1, ':');
    if (!c2 || !c2[1]) return false;
    char a[32], b[32];
    size_t la = (size_t)(c1 - s), lb = (size_t)(c2 - c1 - 1);
    if (la == 0 || lb == 0 || la >= sizeof a || lb >= sizeof b) return false;
    memcpy(a, s, la);
    a[la] = 0;
    memcpy(b, c1 + 1, lb);
    b[lb] = 0;
    if (!sam2d_cli_parse_int(a, 0, INT_MAX, frame) || !sam2d_cli_parse_int(b, 0, INT_MAX, obj)) return false;
    *rest = c2 + 1;
    return true;
}

/* ---- progress bar: "track [=====>    ]  120/300  14.2 frames/s  ETA 0:12" ---- */
typedef struct {
    bool on;
    const char *phase;
    double t_phase, t_last;
    int last_len;
} progress_state;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_cb(void *user, const char *phase, int done, int total) {
    progress_state *ps = user;
    double t = mono_s();
    if (!ps->phase || strcmp(ps->phase, phase)) {
        if (ps->phase) fputc('\n', stderr); /* keep the finished phase's last line */
        ps->phase = phase;
        ps->t_phase = t;
        ps->t_last = 0;
    }
    if (done < total && t - ps->t_last < 0.1) return; /* at most ~10 redraws a second */
    ps->t_last = t;
    const int width = 28;
    int fill = total > 0 ? (int)((double)width * done / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = 0;
    double el = t - ps->t_phase, rate = el > 0 ? done / el : 0;
    char eta[32] = "--:--";
    if (rate > 0 && done < total) {
        int s = (int)((total - done) / rate + 0.5);
        snprintf(eta, sizeof eta, "%d:%02d", s / 60, s % 60);
    } else if (done >= total) {
        int s = (int)(el + 0.5);
        snprintf(eta, sizeof eta, "%d:%02d", s / 60, s % 60);
    }
    int len = fprintf(stderr, "\r%-6s [%s] %5d/%-5d %7.1f %s/s  %s %s", phase, bar, done, total, rate,
                      strcmp(phase, "prompt") ? "frames" : "prompts", done >= total ? "took" : "ETA", eta);
    if (len < ps->last_len) fprintf(stderr, "%*s", ps->last_len - len, "");
    ps->last_len = len;
    fflush(stderr);
}

/* Ctrl-C: finish the current frame, write what is done, exit 1; a second one kills. */
static volatile int interrupted_;
static void on_sigint(int sig) {
    interrupted_ = 1;
    signal(sig, SIG_DFL);
}

static int cmd_track(int argc, char **argv) {
    const char *video = NULL, *out = NULL, *model_path = NULL, *config = NULL, *fmt = "png", *device_flag = NULL;
    int threads = 0, progress = isatty(STDERR_FILENO) ? 1 : 0, rc = SAM2D_EXIT_USAGE;
    sam_track_direction dir = SAM_TRACK_FORWARD;
    int n_dir_flags = 0;
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    if (sam_media_limits_from_env(&lim) != SAM2D_OK) {
        fprintf(stderr, "sam2d track: %s\n", sam2d_last_error());
        return SAM2D_EXIT_USAGE;
    }
    sam_track_prompts *prompts = NULL;
    sam_track_job *job = NULL;
    sam2d_model *model = NULL;
    if (sam_track_prompts_create(&prompts) != SAM2D_OK) return sam2d_cli_fail("track", "starting");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        int frame, obj, n;
        const char *rest;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            track_usage(stdout);
            rc = SAM2D_EXIT_OK;
            goto done;
        } else if (!strcmp(a, "--prompt") && has_val) {
            float v[3];
            const char *s = argv[++i];
            if (!parse_target(s, &frame, &obj, &rest) || !sam2d_cli_parse_floats(rest, v, 2, 3, &n) ||
                (n == 3 && v[2] != 0 && v[2] != 1)) {
                rc = usage_error("bad --prompt '%s' (FRAME:OBJ:x,y or FRAME:OBJ:x,y,label with label 0 or 1)", s);
                goto done;
            }
            if (sam_track_prompts_add_point(prompts, frame, obj, v[0], v[1], n == 3 ? (int)v[2] : 1) != SAM2D_OK) {
                rc = usage_error("%s", sam2d_last_error());
                goto done;
            }
        } else if (!strcmp(a, "--box") && has_val) {
            float b[4];
            const char *s = argv[++i];
            if (!parse_target(s, &frame, &obj, &rest) || !sam2d_cli_parse_floats(rest, b, 4, 4, &n) || b[2] < b[0] ||
                b[3] < b[1]) {
                rc = usage_error("bad --box '%s' (FRAME:OBJ:x0,y0,x1,y1 with x0<=x1, y0<=y1)", s);
                goto done;
            }
            if (sam_track_prompts_add_box(prompts, frame, obj, b) != SAM2D_OK) {
                rc = usage_error("%s", sam2d_last_error());
                goto done;
            }
        } else if (!strcmp(a, "--mask") && has_val) {
            const char *s = argv[++i];
            if (!parse_target(s, &frame, &obj, &rest)) {
                rc = usage_error("bad --mask '%s' (FRAME:OBJ:file.png)", s);
                goto done;
            }
            if (sam_track_prompts_add_mask(prompts, frame, obj, rest) != SAM2D_OK) {
                rc = usage_error("%s", sam2d_last_error());
                goto done;
            }
        } else if (!strcmp(a, "--reverse")) {
            dir = SAM_TRACK_REVERSE;
            n_dir_flags++;
        } else if (!strcmp(a, "--both")) {
            dir = SAM_TRACK_BOTH;
            n_dir_flags++;
        } else if (!strcmp(a, "--out") && has_val) {
            out = argv[++i];
        } else if (!strcmp(a, "--format") && has_val) {
            fmt = argv[++i];
        } else if (!strcmp(a, "--model") && has_val) {
            model_path = argv[++i];
        } else if (!strcmp(a, "--config") && has_val) {
            config = argv[++i];
        } else if (!strcmp(a, "--threads") && has_val) {
            if (!sam2d_cli_parse_int(argv[++i], 0, 4096, &threads)) {
                rc = usage_error("bad --threads '%s'", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--device") && has_val) {
            device_flag = argv[++i];
        } else if (!strcmp(a, "--max-frames") && has_val) {
            if (!sam2d_cli_parse_int(argv[++i], 1, INT_MAX, &lim.max_frames)) {
                rc = usage_error("bad --max-frames '%s'", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--max-dimension") && has_val) {
            if (!sam2d_cli_parse_int(argv[++i], 1, 65535, &lim.max_dimension)) {
                rc = usage_error("bad --max-dimension '%s'", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--downscale")) {
            lim.oversize = SAM_OVERSIZE_DOWNSCALE;
        } else if (!strcmp(a, "--progress")) {
            progress = 1;
        } else if (!strcmp(a, "--no-progress")) {
            progress = 0;
        } else if (a[0] != '-' && !video) {
            video = a;
        } else {
            static const char *const with_value[] = {"--prompt", "--box", "--mask", "--out", "--format", "--model",
                                                     "--config", "--threads", "--max-frames", "--max-dimension",
                                                     "--device"};
            bool needs = false;
            for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) needs |= !strcmp(a, with_value[k]);
            rc = usage_error(needs ? "'%s' needs a value" : "unexpected argument '%s'", a);
            goto done;
        }
    }
    sam_track_options opt;
    sam_track_default_options(&opt);
    if (!video) {
        rc = usage_error("%s", "no VIDEO given");
        goto done;
    }
    if (!out) {
        rc = usage_error("%s", "no --out DIR given");
        goto done;
    }
    if (!sam_track_format_parse(fmt, &opt.format)) {
        rc = usage_error("unknown --format '%s' (png, rle or coco-json)", fmt);
        goto done;
    }
    if (n_dir_flags > 1) {
        rc = usage_error("%s", "give at most one of --reverse and --both");
        goto done;
    }
    if (sam_track_prompts_count(prompts) == 0) {
        rc = usage_error("%s", "give at least one --prompt, --box or --mask");
        goto done;
    }
    const char *device = sam2d_cli_device("track", device_flag);
    if (!device) { /* the message is printed; rc is SAM2D_EXIT_USAGE */
        track_usage(stderr);
        goto done;
    }
    opt.out_dir = out;
    opt.direction = dir;

    /* the video first: a bad file or a prompt past its end fails before the model loads */
    if (sam_track_job_open(video, &lim, &job) != SAM2D_OK) {
        rc = sam2d_cli_fail("track", video);
        goto done;
    }
    const int N = sam_track_job_num_frames(job), W = sam_track_job_width(job), H = sam_track_job_height(job);
    int outside = 0;
    if (sam_track_prompts_validate(prompts, N, W, H, opt.format, &outside) != SAM2D_OK) {
        rc = usage_error("%s", sam2d_last_error());
        goto done;
    }
    if (outside)
        fprintf(stderr, "sam2d track: warning: %d point(s) or box(es) lie outside the %dx%d video\n", outside, W, H);

    char mbuf[4096];
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = model_path ? model_path : sam2d_cli_default_model(mbuf, sizeof mbuf);
    mp.config_path = config;
    mp.num_threads = threads;
    mp.device = device;
    double t0 = mono_s();
    if (sam2d_model_load(&mp, &model) != SAM2D_OK) {
        rc = sam2d_cli_fail("track", mp.checkpoint_path);
        goto done;
    }
    const double load_s = mono_s() - t0;

    progress_state ps = {.on = progress != 0};
    if (ps.on) {
        opt.progress = progress_cb;
        opt.progress_user = &ps;
    }
    sam_track_stats stats;
    interrupted_ = 0;
    opt.cancel = &interrupted_;
    void (*old_int)(int) = signal(SIGINT, on_sigint);
    void (*old_term)(int) = signal(SIGTERM, on_sigint);
    t0 = mono_s();
    sam2d_status st = sam_track_job_run(job, model, prompts, &opt, &stats);
    const double total_s = mono_s() - t0;
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if (ps.phase) fputc('\n', stderr);
    if (st != SAM2D_OK) {
        rc = sam2d_cli_fail("track", video);
        goto done;
    }
    static const char *const fmt_names[] = {"png", "rle", "coco-json"};
    printf("tracked %d object(s) over %d/%d frame(s) of %dx%d, %s written to %s in %.2f s "
           "(model %.2f s, decode %.2f s, prompts %.2f s, tracking %.2f s = %.1f frames/s)\n",
           stats.num_objects, stats.frames_written, stats.num_frames, stats.width, stats.height,
           fmt_names[opt.format], out, total_s, load_s, stats.decode_s, stats.prompt_s, stats.track_s,
           stats.track_s > 0 ? stats.frames_tracked / stats.track_s : 0.0);
    printf("memory: %zu bytes per frame (%dx%d RGB), frame source %zu bytes, session %zu bytes, "
           "peak accounted %zu bytes\n",
           stats.frame_bytes, stats.image_size, stats.image_size, stats.source_bytes, stats.session_bytes,
           sam2d_memory_peak());
    rc = SAM2D_EXIT_OK;
done:
    sam_track_job_free(job);
    sam2d_model_free(model);
    sam_track_prompts_free(prompts);
    return rc;
}

SAM2D_COMMAND(track, "track", "track objects through a video from clicks / boxes / masks; PNG, RLE or COCO masks",
              cmd_track)
