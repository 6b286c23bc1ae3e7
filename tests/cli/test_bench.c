/* `sam2d bench`: the counted FLOPs against the reference's counts (tiny preset
 * at 1024 px) and against the kernels that actually run (micro model, via the
 * profiler); the program on the micro checkpoint and on random weights prints
 * a parseable JSON line last with the required keys; the device and its
 * memory (cpu, devsim); usage errors. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "predictor/bench_run.h"
#include "sam2d/config.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro/"
#define FAST "--runs 1 --warmup 0 --frames 9 --video 64x48 --quiet"

static char out[1 << 20];

/* Run `sam2d ARGS` (stderr merged); returns the exit status, output in `out`. */
static int run(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", SAM2D_BINARY, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The last non-empty line of `out`, parsed as JSON (NULL when it is not). */
static json_t *last_json_line(void) {
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n') out[--n] = 0;
    const char *line = strrchr(out, '\n');
    line = line ? line + 1 : out;
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    if (!j) printf("not JSON (%s): %s\n", err.text, line);
    return j;
}

static double num(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static void check_required(json_t *j, bool track) {
    CHECK(num(j, "image_encoder_s") > 0);
    if (track) {
        CHECK(num(j, "track_frame_s") > 0);
        CHECK(num(j, "prompt_s") > 0);
        CHECK(num(j, "first_click_s") > 0);
    }
    CHECK(num(j, "peak_rss_bytes") > 1e6);
    CHECK(num(j, "peak_rss_bytes") >= num(j, "rss_after_load_bytes"));
}

int main(void) {
    /* counted FLOPs of the real tiny config vs the counts made in Meta's code (reference-cpu.json) */
    sam2d_model_config cfg;
    CHECK(sam2d_config_preset("sam2.1_tiny", &cfg) == SAM2D_OK);
    sam_bench_flops f;
    CHECK(sam_bench_count_flops(&cfg, &f) == SAM2D_OK);
    printf("tiny: image encoder %.2f GFLOP (reference 292.4), full-bank tracked frame %.2f (912.7), "
           "1 memory frame %.2f (493.5), per memory frame %.2f (69.9)\n",
           f.image_encoder / 1e9, f.track_frame_full / 1e9, sam_bench_track_frame_flops(&cfg, &f, 1, 1) / 1e9,
           f.mem_attn_per_token * 4096 / 1e9);
    CHECK_MSG(fabs(f.image_encoder / 1e9 - 292.4) < 0.3, "image encoder %.2f GFLOP", f.image_encoder / 1e9);
    CHECK_MSG(fabs(f.track_frame_full / 1e9 - 912.7) < 1.5, "tracked frame %.2f GFLOP", f.track_frame_full / 1e9);
    CHECK(fabs(sam_bench_track_frame_flops(&cfg, &f, 1, 1) / 1e9 - 493.5) < 1.0);
    CHECK(f.memory_tokens_full > 28672 && f.memory_tokens_full < 28800);
    /* larger presets cost more */
    sam2d_model_config large;
    sam_bench_flops fl;
    CHECK(sam2d_config_preset("sam2.1_large", &large) == SAM2D_OK);
    CHECK(sam_bench_count_flops(&large, &fl) == SAM2D_OK && fl.image_encoder > 3 * f.image_encoder);

    /* the micro checkpoint: JSON last, required keys, counted FLOPs == the kernels' own count */
    int rc = run("bench --checkpoint " MICRO "model.pt --config " MICRO "config.yaml --profile --json " FAST);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    json_t *j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        check_required(j, true);
        CHECK(!strcmp(json_string_value(json_object_get(j, "weights")), "checkpoint"));
        CHECK(json_array_size(json_object_get(j, "track_frames_s")) == 9);
        double counted = json_number_value(json_object_get(json_object_get(j, "gflop"), "image_encoder"));
        json_t *k = json_object_get(json_object_get(json_object_get(j, "profile"), "image encoder"), "kernels");
        double ran = 0;
        const char *key;
        json_t *v;
        json_object_foreach(k, key, v) {
            json_t *g = json_object_get(v, "gflop");
            if (g) ran += json_number_value(g);
        }
        printf("micro image encoder: counted %.6f GFLOP, kernels ran %.6f\n", counted, ran);
        /* every stage is recorded, the full-bank track step included */
        json_t *prof = json_object_get(j, "profile");
        CHECK(json_object_get(prof, "track, full bank: step (memory attention, heads, memory encoder)") != NULL);
        CHECK(json_object_get(prof, "track, full bank: image encoder") != NULL);
        CHECK(json_object_get(prof, "click (cached frame)") != NULL);
        CHECK_MSG(counted > 0 && fabs(ran - counted) < 1e-6 * counted + 1e-9, "counted %.6f ran %.6f", counted, ran);
        json_decref(j);
    }

    /* random weights of the micro config: video modules built without a checkpoint */
    rc = run("bench --config " MICRO "config.yaml --random-weights --json " FAST);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        check_required(j, true);
        CHECK(!strcmp(json_string_value(json_object_get(j, "weights")), "random"));
        json_decref(j);
    }

    /* --save-random-weights writes a checkpoint of the config's shapes that the real load path accepts */
    char ck[256];
    snprintf(ck, sizeof ck, "/tmp/sam2d-test-bench-%d.safetensors", (int)getpid());
    char args[1024];
    snprintf(args, sizeof args, "bench --config " MICRO "config.yaml --save-random-weights %s", ck);
    rc = run(args);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    snprintf(args, sizeof args, "bench --checkpoint %s --config " MICRO "config.yaml --json " FAST, ck);
    rc = run(args);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        check_required(j, true);
        json_decref(j);
    }
    remove(ck);
    snprintf(args, sizeof args, "bench --checkpoint " MICRO "model.pt --save-random-weights %s", ck);
    CHECK(run(args) == 2);

    /* image stage only: track keys present but null */
    rc = run("bench --config " MICRO "config.yaml --stages image --json " FAST);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        check_required(j, false);
        CHECK(json_is_null(json_object_get(j, "track_frame_s")));
        CHECK(!strcmp(json_string_value(json_object_get(j, "precision")), "fp32"));
        json_decref(j);
    }

    /* bf16 back end: reported, peak doubled */
    rc = run("bench --config " MICRO "config.yaml --stages image --precision bf16 --json " FAST);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        check_required(j, false);
        CHECK(!strcmp(json_string_value(json_object_get(j, "precision")), "bf16"));
        CHECK(fabs(num(j, "peak_gflops") - 2 * 166.4 * num(j, "threads")) < 0.01);
        json_decref(j);
    }
    CHECK(run("bench --precision fp64") == 2);

    /* devices: the cpu reports no device memory; devsim (device memory = its reserved region) reports
     * it after load and at its peak; --profile is refused off the cpu back end (the run goes on) */
    rc = run("bench --config " MICRO "config.yaml --stages image --device cpu --json " FAST);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        CHECK(!strcmp(json_string_value(json_object_get(j, "device")), "cpu"));
        CHECK(json_object_get(j, "device_memory_total_bytes") == NULL);
        json_decref(j);
    }
    rc = run("bench --config " MICRO "config.yaml --device devsim --profile --json " FAST);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    CHECK_MSG(strstr(out, "kernel timers work on the cpu back end only"), "%s", out);
    j = last_json_line();
    CHECK(j != NULL);
    if (j) {
        check_required(j, true); /* image encoder, clicks and tracking on "device" memory */
        CHECK(num(j, "track_fps") > 0);
        CHECK(!strcmp(json_string_value(json_object_get(j, "device")), "devsim"));
        double total = num(j, "device_memory_total_bytes"), load = num(j, "device_memory_after_load_bytes"),
               peak = num(j, "device_memory_peak_bytes");
        printf("devsim: device memory after load %.0f, peak %.0f, total %.0f bytes\n", load, peak, total);
        CHECK(total == 8192.0 * 1048576.0);
        CHECK(load > 0 && peak >= load && peak < total);
        CHECK(json_object_get(j, "profile") == NULL);
        json_decref(j);
    }
    rc = run("bench --device gpu");
    CHECK_MSG(rc == 2 && strstr(out, "expected auto, cpu, cuda, cuda:N or devsim"), "exit %d: %s", rc, out);
    CHECK(run("bench --device cuda:") == 2);
    setenv("SAM2_DEVICE", "tpu", 1); /* the default comes from SAM2_DEVICE */
    rc = run("bench --stages image");
    CHECK_MSG(rc == 2 && strstr(out, "SAM2_DEVICE 'tpu'"), "exit %d: %s", rc, out);
    unsetenv("SAM2_DEVICE");

    /* errors: usage (2) and a video too short for a full memory bank (1) */
    CHECK(run("bench --runs 0") == 2);
    CHECK(run("bench --random-weights --checkpoint " MICRO "model.pt") == 2);
    CHECK(run("bench --preset nonsense") == 2);
    CHECK(run("bench --video 10by10") == 2);
    CHECK(run("bench --bogus") == 2);
    rc = run("bench --config " MICRO "config.yaml " FAST " --frames 5");
    CHECK_MSG(rc == 1 && strstr(out, "full memory bank"), "exit %d: %s", rc, out);
    rc = run("bench --help");
    CHECK(rc == 0 && strstr(out, "--random-weights"));
    return test_finish();
}
