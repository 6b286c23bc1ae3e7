/* `sam2d bench`: time the image encoder, tracking with a full memory bank and
 * click latency of a preset with random weights (or a checkpoint), with peak
 * RSS and achieved GFLOP/s against the machine's peak. Progress and a table go
 * to stderr; --json prints one JSON line last on stdout. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "predictor/bench_run.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: sam2d bench [--preset NAME | --config FILE] [--random-weights | --checkpoint FILE]\n"
            "                   [--runs N] [--warmup N] [--frames N] [--video WxH] [--threads N] [--device D]\n"
            "                   [--stages image,track] [--profile] [--peak-gflops X] [--json] [--quiet]\n"
            "       sam2d bench [--preset NAME | --config FILE] --save-random-weights FILE.safetensors\n"
            "\n"
            "Times one model on this machine: the image encoder per 1024 px frame, tracking\n"
            "per frame once the memory bank is full (a synthetic video, one object clicked\n"
            "on frame 0), the latency of a click on a frame whose features are cached, and\n"
            "the peak RSS. Reports medians after warm-up, the FLOPs of each stage (counted\n"
            "from the config) and the achieved GFLOP/s against the machine's peak.\n"
            "  --preset NAME      %s (default sam2.1_tiny)\n"
            "  --config FILE      Meta's YAML instead of a preset\n"
            "  --random-weights   random weights of the config's real shapes (default without --checkpoint)\n"
            "  --checkpoint FILE  Meta's .pt or a .safetensors\n"
            "  --runs N           measured runs of the image encoder and of clicks (default 5)\n"
            "  --warmup N         runs discarded before (default 1)\n"
            "  --frames N         video length; frames from num_maskmem + 1 on are measured (default 16)\n"
            "  --video WxH        synthetic video size (default 640x480)\n"
            "  --threads N        CPU threads (default SAM2_THREADS, else all CPUs)\n"
            "  --precision P      fp32 or bf16 (default SAM2_PRECISION, else fp32)\n"
            "  --device D         auto (the GPU when one works, else the CPU), cpu, cuda, cuda:N, devsim\n"
            "                     (default SAM2_DEVICE, else auto); times end with a device sync\n"
            "  --stages LIST      image, track or both (default image,track)\n"
            "  --profile          time every back-end kernel per stage (cpu back end only)\n"
            "  --peak-gflops X    machine peak for the %% column (default SAM2_PEAK_GFLOPS, else\n"
            "                     166.4 per thread: 2.6 GHz x 2 AVX-512 FMA pipes x 16 lanes x 2;\n"
            "                     doubled in bf16). GFLOP/s = FLOPs counted as the reference does them\n"
            "                     / time: an effective rate (our kernels may do fewer; --profile shows theirs)\n"
            "  --json             print one JSON line last (stdout)\n"
            "  --quiet            no progress lines\n"
            "  --save-random-weights FILE  write random weights of the config's real shapes as a\n"
            "                     .safetensors checkpoint (e.g. to serve a real-size model) and exit\n"
            "Exit status: 0 ok, 1 failure, 2 usage.\n",
            sam2d_config_preset_names());
}

static void log_line(void *user, const char *line) {
    (void)user;
    fprintf(stderr, "bench: %s\n", line);
}

static double pct(double gflops, double peak) { return peak > 0 ? 100.0 * gflops / peak : 0; }

static void print_row(const char *stage, double s, double flops, double peak) {
    if (s <= 0) return;
    if (flops > 0)
        fprintf(stderr, "  %-38s %9.3f s %9.1f GFLOP %8.1f GFLOP/s %6.1f %%\n", stage, s, flops / 1e9,
                flops / 1e9 / s, pct(flops / 1e9 / s, peak));
    else
        fprintf(stderr, "  %-38s %9.3f s\n", stage, s);
}

static json_t *json_runs(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static json_t *json_profile(void) {
    const sam_prof_stage *st;
    int n = sam_prof_stages(&st);
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "seconds", json_real(st[i].seconds));
        json_object_set_new(s, "entries", json_integer(st[i].entries));
        json_t *ops = json_object();
        for (int k = 0; k < st[i].n_ops; k++) {
            json_t *op = json_object();
            json_object_set_new(op, "calls", json_integer((json_int_t)st[i].ops[k].calls));
            json_object_set_new(op, "seconds", json_real(st[i].ops[k].seconds));
            if (st[i].ops[k].flops > 0) json_object_set_new(op, "gflop", json_real(st[i].ops[k].flops / 1e9));
            json_object_set_new(ops, st[i].ops[k].name, op);
        }
        json_object_set_new(s, "kernels", ops);
        json_object_set_new(o, st[i].name, s);
    }
    return o;
}

static int cmp_op(const void *a, const void *b) {
    double x = ((const sam_prof_op *)a)->seconds, y = ((const sam_prof_op *)b)->seconds;
    return (x < y) - (x > y);
}

static void print_profile(double peak) {
    const sam_prof_stage *st;
    int n = sam_prof_stages(&st);
    for (int i = 0; i < n; i++) {
        sam_prof_op ops[SAM_PROF_MAX_OPS];
        memcpy(ops, st[i].ops, sizeof(sam_prof_op) * (size_t)st[i].n_ops);
        qsort(ops, (size_t)st[i].n_ops, sizeof(sam_prof_op), cmp_op);
        if (st[i].n_ops == 0) continue; /* e.g. the propagation loop itself: no kernels */
        const double n = st[i].entries > 0 ? st[i].entries : 1;
        fprintf(stderr, "kernels of \"%s\" (%d runs/frames; per run: %.3f s in kernels):\n", st[i].name,
                st[i].entries, st[i].seconds / n);
        for (int k = 0; k < st[i].n_ops; k++) {
            const sam_prof_op *o = &ops[k];
            fprintf(stderr, "  %-20s %7.1f calls %9.4f s %5.1f %%", o->name, (double)o->calls / n, o->seconds / n,
                    st[i].seconds > 0 ? 100.0 * o->seconds / st[i].seconds : 0);
            if (o->flops > 0 && o->seconds > 0)
                fprintf(stderr, " %9.2f GFLOP %7.1f GFLOP/s %5.1f %% of peak", o->flops / 1e9 / n,
                        o->flops / 1e9 / o->seconds, pct(o->flops / 1e9 / o->seconds, peak));
            fputc('\n', stderr);
        }
    }
}

static int run_bench(int argc, char **argv) {
    sam_bench_params p = sam_bench_default_params();
    bool json = false, quiet = false, random_flag = false, preset_given = false;
    const char *save_path = NULL, *device_flag = NULL;
    const char *env_peak = getenv("SAM2_PEAK_GFLOPS");
    if (env_peak && *env_peak) {
        char *end;
        p.peak_gflops = strtod(env_peak, &end);
        if (*end || p.peak_gflops <= 0) {
            fprintf(stderr, "sam2d bench: SAM2_PEAK_GFLOPS must be a positive number, got '%s'\n", env_peak);
            return SAM2D_EXIT_USAGE;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE                                                           \
    do {                                                                     \
        if (!v) {                                                            \
            fprintf(stderr, "sam2d bench: %s needs a value\n", a);           \
            return SAM2D_EXIT_USAGE;                                         \
        }                                                                    \
        i++;                                                                 \
    } while (0)
#define BAD_VALUE                                                            \
    do {                                                                     \
        fprintf(stderr, "sam2d bench: bad value for %s: '%s'\n", a, v);      \
        return SAM2D_EXIT_USAGE;                                             \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return SAM2D_EXIT_OK;
        } else if (!strcmp(a, "--preset")) {
            NEED_VALUE;
            sam2d_model_config c;
            if (sam2d_config_preset(v, &c) != SAM2D_OK) BAD_VALUE;
            p.preset = v;
            preset_given = true;
        } else if (!strcmp(a, "--config")) {
            NEED_VALUE;
            p.config_path = v;
        } else if (!strcmp(a, "--checkpoint")) {
            NEED_VALUE;
            p.checkpoint = v;
        } else if (!strcmp(a, "--random-weights")) {
            random_flag = true;
        } else if (!strcmp(a, "--runs")) {
            NEED_VALUE;
            if (!sam2d_cli_parse_int(v, 1, 100, &p.runs)) BAD_VALUE;
        } else if (!strcmp(a, "--warmup")) {
            NEED_VALUE;
            if (!sam2d_cli_parse_int(v, 0, 100, &p.warmup)) BAD_VALUE;
        } else if (!strcmp(a, "--frames")) {
            NEED_VALUE;
            if (!sam2d_cli_parse_int(v, 2, SAM_BENCH_MAX_SAMPLES, &p.frames)) BAD_VALUE;
        } else if (!strcmp(a, "--video")) {
            NEED_VALUE;
            int w = 0, h = 0;
            char x = 0, extra = 0;
            if (sscanf(v, "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w < 16 || h < 16 ||
                w > 8192 || h > 8192)
                BAD_VALUE;
            p.video_w = w, p.video_h = h;
        } else if (!strcmp(a, "--threads")) {
            NEED_VALUE;
            if (!sam2d_cli_parse_int(v, 1, 1024, &p.threads)) BAD_VALUE;
        } else if (!strcmp(a, "--precision")) {
            NEED_VALUE;
            sam_precision prec;
            if (!sam_precision_parse(v, &prec)) BAD_VALUE;
            setenv("SAM2_PRECISION", v, 1); /* the back end reads it, for both weight sources */
        } else if (!strcmp(a, "--device")) {
            NEED_VALUE;
            device_flag = v;
        } else if (!strcmp(a, "--stages")) {
            NEED_VALUE;
            p.image = strstr(v, "image") != NULL;
            p.track = strstr(v, "track") != NULL;
            if (!p.image && !p.track) BAD_VALUE;
        } else if (!strcmp(a, "--profile")) {
            p.profile = true;
        } else if (!strcmp(a, "--peak-gflops")) {
            NEED_VALUE;
            char *end;
            p.peak_gflops = strtod(v, &end);
            if (*end || p.peak_gflops <= 0) BAD_VALUE;
        } else if (!strcmp(a, "--save-random-weights")) {
            NEED_VALUE;
            save_path = v;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = true;
        } else {
            fprintf(stderr, "sam2d bench: unknown argument %s\n\n", a);
            usage(stderr);
            return SAM2D_EXIT_USAGE;
        }
#undef NEED_VALUE
#undef BAD_VALUE
    }
    if (random_flag && p.checkpoint) {
        fprintf(stderr, "sam2d bench: --random-weights and --checkpoint exclude each other\n");
        return SAM2D_EXIT_USAGE;
    }
    if (save_path) {
        if (p.checkpoint) {
            fprintf(stderr, "sam2d bench: --save-random-weights takes a preset or --config, not a checkpoint\n");
            return SAM2D_EXIT_USAGE;
        }
        sam2d_model_config cfg;
        sam2d_status st = p.config_path ? sam2d_config_load_yaml(p.config_path, &cfg) : sam2d_config_preset(p.preset, &cfg);
        if (st == SAM2D_OK) st = sam2d_config_validate(&cfg);
        if (st == SAM2D_OK) st = sam_bench_write_random_weights(&cfg, save_path);
        if (st != SAM2D_OK) return sam2d_cli_fail("bench", "writing random weights");
        if (!quiet) fprintf(stderr, "sam2d bench: wrote %s\n", save_path);
        return SAM2D_EXIT_OK;
    }
    /* with a checkpoint the config is guessed from its shapes unless a preset is named */
    if (p.checkpoint && !preset_given) p.preset = NULL;
    if (p.track && p.frames < 3) {
        fprintf(stderr, "sam2d bench: --frames too small\n");
        return SAM2D_EXIT_USAGE;
    }
    p.device = sam2d_cli_device("bench", device_flag);
    if (!p.device) return SAM2D_EXIT_USAGE;
    if (!quiet) p.log = log_line;

    static sam_bench_result r; /* large (sample arrays): not on the stack */
    sam2d_status st = sam_bench_run(&p, &r);
    if (st != SAM2D_OK) return sam2d_cli_fail("bench", "benchmark failed");

    const double peak = r.peak_gflops;
    fprintf(stderr, "%s, %s weights, %s, %d threads, peak %.1f GFLOP/s, load average %.2f -> %.2f\n", r.model,
            r.random_weights ? "random" : "checkpoint", r.precision, r.threads, peak, r.loadavg_start[0],
            r.loadavg_end[0]);
    if (r.device_memory_total)
        fprintf(stderr, "  device %s: memory after load %.1f MiB, peak %.1f MiB of %.1f MiB\n", r.device,
                r.device_memory_after_load / 1048576.0, r.device_memory_peak / 1048576.0,
                r.device_memory_total / 1048576.0);
    fprintf(stderr, "  %-38s %11s %15s %16s %8s\n", "stage (median)", "time", "counted", "achieved", "of peak");
    print_row("image encoder", r.image_encoder_s, r.flops.image_encoder, peak);
    print_row("tracked frame, full memory bank", r.track_frame_s, r.track_frame_flops, peak);
    if (r.track_frame_s > 0) {
        print_row("  of which image encoder", r.track_features_s, r.flops.image_encoder, peak);
        print_row("  of which step (attn, heads, mem.enc)", r.track_step_s,
                  r.track_frame_flops - r.flops.image_encoder, peak);
    }
    print_row("click (cached frame)", r.prompt_s, r.flops.heads_click, peak);
    print_row("first click (encodes the frame)", r.first_click_s, 0, peak);
    if (r.image_encoder_cpu_s > 0 || r.track_frame_cpu_s > 0)
        fprintf(stderr, "  process CPU time per run (all threads): image encoder %.3f s, tracked frame %.3f s\n",
                r.image_encoder_cpu_s, r.track_frame_cpu_s);
    fprintf(stderr, "  peak RSS %.1f MiB (after load %.1f MiB); session %.1f MiB\n", r.peak_rss_bytes / 1048576.0,
            r.rss_after_load_bytes / 1048576.0, r.session_bytes / 1048576.0);
    if (r.profiled) print_profile(peak);
    else if (p.profile)
        fprintf(stderr, "sam2d bench: --profile: kernel timers work on the cpu back end only; no profile on %s\n",
                r.device);

    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(r.model));
        json_object_set_new(o, "preset", json_string(r.preset));
        json_object_set_new(o, "weights", json_string(r.random_weights ? "random" : "checkpoint"));
        json_object_set_new(o, "threads", json_integer(r.threads));
        json_object_set_new(o, "precision", json_string(r.precision));
        json_object_set_new(o, "device", json_string(r.device));
        if (r.device_memory_total) {
            json_object_set_new(o, "device_memory_total_bytes", json_integer((json_int_t)r.device_memory_total));
            json_object_set_new(o, "device_memory_after_load_bytes",
                                json_integer((json_int_t)r.device_memory_after_load));
            json_object_set_new(o, "device_memory_peak_bytes", json_integer((json_int_t)r.device_memory_peak));
        }
        json_object_set_new(o, "image_size", json_integer(r.image_size));
        json_object_set_new(o, "runs", json_integer(p.runs));
        json_object_set_new(o, "warmup", json_integer(p.warmup));
        if (p.image) {
            json_object_set_new(o, "image_encoder_s", json_real(r.image_encoder_s));
            json_object_set_new(o, "image_encoder_runs_s", json_runs(r.image_runs, r.n_image));
            json_object_set_new(o, "image_encoder_cpu_s", json_real(r.image_encoder_cpu_s));
        } else {
            json_object_set_new(o, "image_encoder_s", json_null());
        }
        if (p.track) {
            json_object_set_new(o, "track_frame_s", json_real(r.track_frame_s));
            /* frames per second of full-bank tracking (1 / track_frame_s), the reference's FPS figure */
            json_object_set_new(o, "track_fps", json_real(r.track_frame_s > 0 ? 1.0 / r.track_frame_s : 0));
            json_object_set_new(o, "track_frames_s", json_runs(r.frame_s, r.n_frames));
            json_object_set_new(o, "track_frame_cpu_s", json_real(r.track_frame_cpu_s));
            json_object_set_new(o, "track_full_bank_from_frame", json_integer(r.full_from));
            json_object_set_new(o, "track_image_encoder_s", json_real(r.track_features_s));
            json_object_set_new(o, "track_step_s", json_real(r.track_step_s));
            json_object_set_new(o, "prompt_s", json_real(r.prompt_s));
            json_object_set_new(o, "prompt_runs_s", json_runs(r.prompt_runs, r.n_prompt));
            json_object_set_new(o, "first_click_s", json_real(r.first_click_s));
            json_object_set_new(o, "session_create_s", json_real(r.session_s));
            json_object_set_new(o, "session_bytes", json_integer((json_int_t)r.session_bytes));
            json_object_set_new(o, "frames", json_integer(p.frames));
            char vs[32];
            snprintf(vs, sizeof vs, "%dx%d", p.video_w, p.video_h);
            json_object_set_new(o, "video", json_string(vs));
        } else {
            json_object_set_new(o, "track_frame_s", json_null());
            json_object_set_new(o, "prompt_s", json_null());
        }
        json_object_set_new(o, "load_s", json_real(r.load_s));
        json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)r.peak_rss_bytes));
        json_object_set_new(o, "rss_after_load_bytes", json_integer((json_int_t)r.rss_after_load_bytes));
        json_t *mem = sam_bench_memory_json(&r);
        if (mem) json_object_set_new(o, "memory", mem);
        json_t *fl = json_object();
        json_object_set_new(fl, "image_encoder", json_real(r.flops.image_encoder / 1e9));
        json_object_set_new(fl, "track_frame", json_real(r.track_frame_flops / 1e9));
        json_object_set_new(fl, "track_frame_full_bank_nominal", json_real(r.flops.track_frame_full / 1e9));
        json_object_set_new(fl, "memory_attention_fixed", json_real(r.flops.mem_attn_fixed / 1e9));
        json_object_set_new(fl, "memory_attention_per_memory_frame",
                            json_real(r.flops.mem_attn_per_token * (r.image_size / 16) * (r.image_size / 16) / 1e9));
        json_object_set_new(fl, "memory_encoder", json_real(r.flops.mem_encoder / 1e9));
        json_object_set_new(fl, "heads", json_real(r.flops.heads_track / 1e9));
        json_object_set_new(o, "gflop", fl);
        json_t *gs = json_object();
        if (r.image_encoder_s > 0)
            json_object_set_new(gs, "image_encoder", json_real(r.flops.image_encoder / 1e9 / r.image_encoder_s));
        if (r.track_frame_s > 0)
            json_object_set_new(gs, "track_frame", json_real(r.track_frame_flops / 1e9 / r.track_frame_s));
        json_object_set_new(o, "gflops_per_s", gs);
        json_object_set_new(o, "peak_gflops", json_real(peak));
        json_t *la = json_array();
        for (int k = 0; k < 3; k++) json_array_append_new(la, json_real(r.loadavg_start[k]));
        json_object_set_new(o, "loadavg_start", la);
        la = json_array();
        for (int k = 0; k < 3; k++) json_array_append_new(la, json_real(r.loadavg_end[k]));
        json_object_set_new(o, "loadavg_end", la);
        char when[32];
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        json_object_set_new(o, "date", json_string(when));
        if (r.profiled) json_object_set_new(o, "profile", json_profile());
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (!s) return sam2d_cli_fail("bench", "JSON output");
        printf("%s\n", s);
        fflush(stdout);
        free(s);
    }
    return SAM2D_EXIT_OK;
}

SAM2D_COMMAND(bench, "bench", "time image encoder, tracking and clicks of a model (random weights or a checkpoint)",
              run_bench)
