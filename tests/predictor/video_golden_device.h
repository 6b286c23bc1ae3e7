/* The golden video scenario of tests/data/golden/micro on a named device
 * (sam2d_model_params.device): "devsim" here, "cuda" in the GPU tests.
 *
 * video_golden_on_device(device) loads the micro model on `device` and on
 * "cpu", replays the manifest's video scenario on both (sam_replay_video:
 * every result and state dump as .npy), and compares each array the manifest
 * names
 *   - with the reference's, at the tolerances of test_video_golden.c:
 *     |ours - ref| <= 1e-4 + 1e-4 |ref| (logits, pred_masks, scores, obj_ptr),
 *     one bf16 step + 1e-5 for the bf16 memory features, and no mask flip
 *     where |ref logit| >= 1e-4;
 *   - with the cpu run: bit for bit on "devsim" (the same kernels behind the
 *     device-memory rule), else (a GPU rounds differently) at the golden
 *     tolerance above, relative to the cpu value.
 * The worst errors are printed; returns the number of failures (each is also
 * a failed CHECK). Only public library functions and tests/test_util.h. */
#ifndef SAM_TESTS_VIDEO_GOLDEN_DEVICE_H
#define SAM_TESTS_VIDEO_GOLDEN_DEVICE_H

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/npy.h"
#include "sam2d/model.h"
#include "sam2d/video_predictor.h"
#include "test_util.h"

/* One bf16 step at ref: 2^(e-8) for |ref| in [2^(e-1), 2^e). */
static inline double vgd_bf16_step(double ref) {
    if (ref == 0.0) return ldexp(1.0, -133);
    int e;
    frexp(fabs(ref), &e);
    return ldexp(1.0, e - 1 - 7);
}

/* Replays the micro scenario on `device` into a fresh temp folder (path in out). */
static inline int vgd_replay(const char *device, const char *dir, char *out, size_t out_len) {
    char ck[1200], cfgp[1200];
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
    snprintf(cfgp, sizeof cfgp, "%s/config.yaml", dir);
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = ck;
    mp.config_path = cfgp;
    mp.device = device;
    sam2d_model *model = NULL;
    sam2d_status st = sam2d_model_load(&mp, &model);
    CHECK_MSG(st == SAM2D_OK, "%s: model: %s", device, sam2d_last_error());
    if (st != SAM2D_OK) return 1;
    CHECK_MSG(strncmp(sam2d_model_device(model), device, strlen(device)) == 0, "model on %s, asked for %s",
              sam2d_model_device(model), device);
    snprintf(out, out_len, "/tmp/sam2d_video_golden_%s_XXXXXX", device);
    for (char *c = out; *c; c++)
        if (*c == ':') *c = '_';
    int fails = 0;
    if (!mkdtemp(out)) {
        CHECK_MSG(0, "mkdtemp %s", out);
        fails++;
    } else {
        sam2d_replay_video_stats stats;
        memset(&stats, 0, sizeof stats);
        st = sam_replay_video(model, dir, out, &stats);
        CHECK_MSG(st == SAM2D_OK, "%s: replay: %s", device, sam2d_last_error());
        CHECK_MSG(stats.mismatched == 0, "%s: %d results/states differ in frame or objects", device, stats.mismatched);
        fails += (st != SAM2D_OK) + (stats.mismatched != 0);
        printf("%s: %d steps, %d results, %d state arrays\n", device, stats.steps, stats.results, stats.states);
    }
    sam2d_model_free(model);
    return fails;
}

static inline void vgd_rmdir(const char *dir) {
    if (!dir[0] || getenv("SAM2D_KEEP_OUTPUT")) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* One array: device vs reference (golden tolerance) and device vs cpu. */
static inline int vgd_compare(const char *lname, const char *dev_path, const char *cpu_path, const char *ref_path,
                              bool exact, double *worst_ref, double *worst_cpu, int *n_differ) {
    sam_npy a, c, r;
    int fails = 0;
    if (sam_npy_read(dev_path, &a) != SAM2D_OK) {
        CHECK_MSG(0, "%s: not produced on the device", lname);
        return 1;
    }
    if (sam_npy_read(cpu_path, &c) != SAM2D_OK) {
        CHECK_MSG(0, "%s: not produced on the cpu", lname);
        sam_npy_free(&a);
        return 1;
    }
    if (sam_npy_read(ref_path, &r) != SAM2D_OK) {
        CHECK_MSG(0, "%s: reference unreadable", ref_path);
        sam_npy_free(&a);
        sam_npy_free(&c);
        return 1;
    }
    if (a.count != r.count || a.count != c.count) {
        CHECK_MSG(0, "%s: %lld values on the device, %lld on the cpu, %lld in the reference", lname,
                  (long long)a.count, (long long)c.count, (long long)r.count);
        fails++;
        goto done;
    }
    const bool bf16 = strstr(lname, "bf16") != NULL;
    const bool logits = strstr(lname, "video_res_logits") || strstr(lname, "pred_masks");
    double wr = 0, wr_ratio = 0, wc = 0, wc_ratio = 0;
    int64_t at = 0, differ = 0;
    int flips = 0;
    for (int64_t i = 0; i < a.count; i++) {
        const double x = a.data[i], ref = r.data[i], cpu = c.data[i];
        double d = fabs(x - ref);
        if (d != d) d = INFINITY;
        const double tol = bf16 ? vgd_bf16_step(ref) + 1e-5 : 1e-4 + 1e-4 * fabs(ref);
        if (d / tol > wr_ratio) wr_ratio = d / tol, wr = d, at = i;
        if (logits && fabs(ref) >= 1e-4 && ((x > 0) != (ref > 0))) flips++;
        /* the cpu run: npy holds float32 values as read back, so equality of the doubles is bit equality
         * (but for NaN, which the golden check already refuses) */
        if (memcmp(&a.data[i], &c.data[i], sizeof a.data[i]) != 0) differ++;
        double dc = fabs(x - cpu);
        if (dc != dc) dc = INFINITY;
        const double tc = bf16 ? vgd_bf16_step(cpu) + 1e-5 : 1e-4 + 1e-4 * fabs(cpu);
        if (dc > wc) wc = dc;
        if (dc / tc > wc_ratio) wc_ratio = dc / tc;
    }
    if (wr > *worst_ref) *worst_ref = wr;
    if (wc > *worst_cpu) *worst_cpu = wc;
    if (differ) (*n_differ)++;
    CHECK_MSG(wr_ratio <= 1.0, "%s: worst %.3g vs the reference at %lld (ours %g, ref %g)", lname, wr, (long long)at,
              (double)a.data[at], (double)r.data[at]);
    CHECK_MSG(flips == 0, "%s: %d mask pixels flipped where |ref logit| >= 1e-4", lname, flips);
    if (exact) CHECK_MSG(differ == 0, "%s: %lld values differ from the cpu run (worst %.3g)", lname, (long long)differ, wc);
    else CHECK_MSG(wc_ratio <= 1.0, "%s: worst %.3g vs the cpu run (%.2f of the golden tolerance)", lname, wc, wc_ratio);
    fails += (wr_ratio > 1.0) + (flips != 0) + (exact ? differ != 0 : wc_ratio > 1.0);
done:
    sam_npy_free(&a);
    sam_npy_free(&c);
    sam_npy_free(&r);
    return fails;
}

static inline int video_golden_on_device(const char *device) {
    const bool exact = !strcmp(device, "devsim") || !strcmp(device, "cpu");
    char dir[1024], path[1200], out_dev[256] = "", out_cpu[256] = "";
    snprintf(dir, sizeof dir, "%s/golden/micro", SAM2D_TEST_DATA);
    int fails = vgd_replay(device, dir, out_dev, sizeof out_dev);
    fails += vgd_replay("cpu", dir, out_cpu, sizeof out_cpu);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_t *m = fails ? NULL : json_load_file(path, 0, NULL);
    json_t *map = json_object_get(m, "logical_name_to_file");
    CHECK_MSG(fails || map, "%s: no logical_name_to_file", path);
    int files = 0, n_differ = 0;
    double worst_ref = 0, worst_cpu = 0;
    const char *lname;
    json_t *val;
    json_object_foreach(map, lname, val) {
        if (strncmp(lname, "out/", 4) && strncmp(lname, "state/", 6)) continue;
        if (strstr(lname, "memenc_binarized")) continue; /* an encoder input tap, not a result */
        char a[1400], c[1400], r[1400];
        snprintf(a, sizeof a, "%s/%s", out_dev, lname);
        snprintf(c, sizeof c, "%s/%s", out_cpu, lname);
        snprintf(r, sizeof r, "%s/%s", dir, json_string_value(val));
        fails += vgd_compare(lname, a, c, r, exact, &worst_ref, &worst_cpu, &n_differ);
        files++;
    }
    json_decref(m);
    printf("video golden on %s: %d arrays; worst abs err vs the reference %.3g (tol 1e-4 + 1e-4|ref|, bf16: one "
           "step); vs cpu %.3g, %d arrays not bit-identical (%s)\n",
           device, files, worst_ref, worst_cpu, n_differ, exact ? "must be 0" : "golden tolerance");
    CHECK_MSG(files > 0 || fails, "%s: no array compared", device);
    if (files == 0 && !fails) fails++;
    vgd_rmdir(out_dev);
    vgd_rmdir(out_cpu);
    return fails;
}

#endif
