/* Benchmark pieces behind `sam2d bench` (issue 7, measuring part):
 *  - analytic FLOP counts per stage from a model config (2 x multiply-adds of
 *    every linear, conv, transposed conv and attention QK^T / AV, padded
 *    window tokens included, as the reference computes them);
 *  - a kernel profiler that wraps a back end's function table with timers;
 *  - a model with random weights of the real shapes (video modules included);
 *  - the measured stages: image encoder per frame, tracking per frame with a
 *    full memory bank, click latency, peak RSS.
 *
 * Not thread-safe: one benchmark per process (the profiler is global). */
#ifndef SAM_PREDICTOR_BENCH_RUN_H
#define SAM_PREDICTOR_BENCH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"
#include "sam2d/config.h"
#include "sam2d/model.h"
#include "sam2d/sam2d.h"

/* ---------------- FLOP counts (config only) ---------------- */

typedef struct {
    double patch_embed;      /* trunk patch embedding conv */
    double trunk;            /* every Hiera block (patch embed not included) */
    double neck;             /* FPN lateral convs + conv_s0/conv_s1 */
    double image_encoder;    /* patch_embed + trunk + neck: forward_image */
    double mem_attn_fixed;   /* memory attention without memory tokens (self-attn, q/out proj, FFN) */
    double mem_attn_per_token; /* added by each memory key (k/v projection, QK^T, AV) */
    double mem_encoder;      /* mask downsampler, pixel projection, fuser, out projection */
    double heads_track;      /* prompt encoder + mask decoder for a tracked frame (padding point only) */
    double heads_click;      /* same for one click (point + padding point) */
    int memory_tokens_full;  /* keys of a full bank: num_maskmem frames + object-pointer tokens */
    double track_frame_full; /* image encoder + memory attention (full bank) + heads + memory encoder */
} sam_bench_flops;

/* Counts at cfg->image_size. Returns SAM2D_ERR_INVALID_ARG for an invalid config. */
sam2d_status sam_bench_count_flops(const sam2d_model_config *cfg, sam_bench_flops *out);
/* FLOPs of one tracked frame whose memory bank holds n_mem_frames spatial memories and n_ptrs object pointers. */
double sam_bench_track_frame_flops(const sam2d_model_config *cfg, const sam_bench_flops *f, int n_mem_frames,
                                   int n_ptrs);

/* ---------------- kernel profiler ---------------- */

enum { SAM_PROF_MAX_STAGES = 16, SAM_PROF_MAX_OPS = 32 };

typedef struct {
    const char *name;
    uint64_t calls;
    double seconds;
    double flops;            /* counted from each call's arguments (matmul-like ops only) */
} sam_prof_op;

typedef struct {
    const char *name;        /* stage label (static string) */
    double seconds;          /* time inside back-end calls while this stage was current */
    int entries;             /* times the stage was switched to (runs, clicks, frames) */
    sam_prof_op ops[SAM_PROF_MAX_OPS];
    int n_ops;
} sam_prof_stage;

/* Replace every kernel of be with a timed wrapper (once per process; later
 * calls only reset the counters). Safe while nothing runs on be. The CPU back
 * end only: false (nothing wrapped) for any other. */
bool sam_prof_install(sam_backend *be);
/* Stage that following kernel calls are charged to (NULL: not recorded). Returns the previous one. */
const char *sam_prof_set_stage(const char *name);
void sam_prof_reset(void);
/* Recorded stages (valid until the next reset). */
int sam_prof_stages(const sam_prof_stage **stages);

/* ---------------- the benchmark ---------------- */

typedef void (*sam_bench_log_fn)(void *user, const char *line);

typedef struct {
    const char *preset;      /* config when no checkpoint is given, or overriding the guess (default sam2.1_tiny) */
    const char *checkpoint;  /* NULL: random weights of the config's shapes */
    const char *config_path; /* Meta's YAML instead of a preset */
    int threads;             /* <= 0: SAM2_THREADS or all CPUs */
    const char *device;      /* back end by name (ops.h sam_backend_create): NULL/"" = auto */
    int runs;                /* measured runs per stage (median), default 5 */
    int warmup;              /* runs discarded first, default 1 */
    int frames;              /* video length for tracking, default 16 (>= num_maskmem + 3) */
    int video_w, video_h;    /* synthetic video size, default 640 x 480 */
    bool image;              /* measure the image encoder */
    bool track;              /* measure propagation (and clicks) */
    bool profile;            /* per-kernel timers */
    double peak_gflops;      /* machine peak for the % column; <= 0: 166.4 per thread (2.6 GHz, 2 AVX-512 FMA), x2 in bf16 */
    sam_bench_log_fn log;    /* progress lines, may be NULL */
    void *log_user;
} sam_bench_params;

sam_bench_params sam_bench_default_params(void);

#define SAM_BENCH_MAX_SAMPLES 256

/* Resident bytes of each part of the process at one moment (pages touched,
 * mincore), with VmRSS then: what the peak is made of when taken at its end. */
typedef struct {
    bool valid;
    size_t rss;              /* VmRSS */
    size_t hwm;              /* VmHWM so far */
    size_t accounted;        /* sam2d_memory_used: every live sam_malloc block, touched or not */
    size_t weights;          /* fp32 weights of every module (+ tables made from them) */
    size_t packed;           /* back end's prepared copies (bf16 panels; 0 in fp32) */
    size_t encoder_arena;    /* image encoder activations (reserved: touched by every forward) */
    size_t heads_scratch;    /* prompt encoder + mask decoder arena */
    size_t memory_scratch;   /* memory attention + memory encoder arena */
    size_t track_scratch;    /* the tracker's own buffers (memory bank copy, masks, ...) */
    size_t backend_scratch;  /* the back end's shared kernel scratch */
    size_t session;          /* sam2d_video_session_memory_bytes (0 without a session) */
    size_t session_frames;   /* its stored video frames */
    size_t session_features; /* its cached frame's features */
    size_t session_states;   /* its stored (object, frame) outputs */
    size_t files;            /* RssFile: mapped code and data of the program and its libraries */
    size_t other;            /* rss minus the parts and files: thread stacks, malloc overhead, BLAS buffers, untracked */
} sam_bench_memory;

typedef struct {
    char model[256];         /* sam2d_model_describe */
    char preset[64];
    bool random_weights;
    int threads;
    char precision[8];       /* the back end's: fp32 / bf16 (SAM2_PRECISION) */
    char device[32];         /* the back end's name: cpu, devsim, cuda, ... */
    bool profiled;           /* --profile ran (the CPU back end only) */
    /* device back ends only (0 otherwise): the device's memory, what the back end held after the
     * model load, and the most it held at any sample (after load, each encoder run, each click and
     * each propagated frame) */
    size_t device_memory_total, device_memory_after_load, device_memory_peak;
    int image_size;
    double peak_gflops;
    double load_s;           /* model build (every module) */
    /* image encoder */
    int n_image;
    double image_runs[SAM_BENCH_MAX_SAMPLES];
    double image_encoder_s;  /* median, 0 when not measured */
    double image_cpu[SAM_BENCH_MAX_SAMPLES];
    double image_encoder_cpu_s; /* median process CPU time (all threads) per run */
    /* video */
    double session_s;        /* session creation (frames copied + resized) */
    double first_click_s;    /* first click on frame 0 (encodes the frame) */
    int n_prompt;
    double prompt_runs[SAM_BENCH_MAX_SAMPLES];
    double prompt_s;         /* median click latency on a frame whose features are cached */
    int n_frames;            /* propagated frames */
    double frame_s[SAM_BENCH_MAX_SAMPLES]; /* time of each propagated frame (index = frame) */
    int full_from;           /* first frame with a full memory bank */
    double track_frame_s;    /* median over frames >= full_from */
    double track_frame_cpu_s; /* median process CPU time of the same frames */
    /* sub-stages of a full-bank tracked frame (medians over the same frames); the step
     * includes the memory encoder (the engine's separate encode runs only before propagation) */
    double track_features_s, track_step_s;
    size_t session_bytes;    /* sam2d_video_session_memory_bytes after propagation */
    /* memory */
    sam_bench_memory mem_load;   /* after the model build */
    sam_bench_memory mem_track;  /* after propagation, the session still open */
    size_t session_frame_bytes;  /* one stored video frame */
    size_t session_state_bytes;  /* one tracked frame of one object (bf16 memory, logits, pointer) */
    size_t session_object_bytes; /* one object's bookkeeping, without its frames' states */
    size_t track_growth_per_frame; /* measured: median growth of sam2d_memory_used per propagated frame (1 object) */
    int peak_frame;              /* frame whose processing last raised VmHWM (-1: before propagation) */
    size_t rss_after_load_bytes;
    size_t peak_rss_bytes;
    double loadavg_start[3], loadavg_end[3];
    sam_bench_flops flops;
    double track_frame_flops; /* of the measured full-bank frames */
} sam_bench_result;

/* Build the model (random weights or checkpoint), run the requested stages. Every timed section
 * ends with the back end's sync (GPU kernels run asynchronously) before the clock is read. */
sam2d_status sam_bench_run(const sam_bench_params *p, sam_bench_result *r);

/* Write the random weights --random-weights uses (uniform in [-0.05, 0.05),
 * deterministic) for every state-dict tensor of cfg as a float32 .safetensors
 * file, e.g. to serve a real-size model without a checkpoint. */
sam2d_status sam_bench_write_random_weights(const sam2d_model_config *cfg, const char *path);

/* The memory section of the bench's JSON (a jansson object, new reference):
 * {"after_load": {part: bytes, ...}, "after_propagation": {...},
 *  "session_frame_bytes", "session_state_bytes", "session_object_bytes",
 *  "track_growth_per_frame_bytes", "peak_frame"}. NULL when out of memory. */
struct json_t;
struct json_t *sam_bench_memory_json(const sam_bench_result *r);

/* Print a memory breakdown as lines through log (MiB). */
void sam_bench_memory_log(const sam_bench_memory *m, const char *title, sam_bench_log_fn log, void *user);

/* Peak resident set size of this process so far (VmHWM), and current RSS. 0 when unknown. */
size_t sam_bench_peak_rss(void);
size_t sam_bench_current_rss(void);
/* Median of n values (sorted copy; 0 when n == 0). */
double sam_bench_median(const double *v, int n);

#endif
