/* The video scenario of the golden folders end to end on the real model:
 * sam_replay_video writes every result and state dump under the manifest's
 * names; each is compared with the reference's:
 *   - logits / pred_masks / object scores / obj_ptr: |ours - ref| <= 1e-4 + 1e-4 |ref|;
 *   - bf16 memory features: within one bf16 step of the reference value (2^(e-8) for
 *     |ref| in [2^(e-1), 2^e)) plus 1e-5 absolute: near zero a bf16 step is far below
 *     the float32 noise of the encoder (the reference itself moves these arrays by up
 *     to 4e-3 when only its thread count changes: numerical_noise_calibration);
 *   - binary masks (logit > 0): equal except where the reference's |logit| < 1e-4.
 * The worst error of every result is printed. */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/npy.h"
#include "sam2d/model.h"
#include "sam2d/video_predictor.h"
#include "test_util.h"

static double bf16_step(float ref) {
    if (ref == 0.0f) return ldexp(1.0, -133); /* smallest bf16 subnormal step */
    int e;
    frexp(fabs((double)ref), &e); /* |ref| in [2^(e-1), 2^e) */
    return ldexp(1.0, e - 1 - 7);
}

typedef struct {
    double worst[8];
    int n[8];
    int flips;
    int files;
} summary;

static void compare_file(const char *ours_path, const char *ref_path, const char *lname, summary *sm) {
    sam_npy a, b;
    sam2d_status sa = sam_npy_read(ours_path, &a);
    CHECK_MSG(sa == SAM2D_OK, "%s: not produced (%s)", lname, sam2d_last_error());
    if (sa != SAM2D_OK) return;
    if (sam_npy_read(ref_path, &b) != SAM2D_OK) {
        sam_npy_free(&a);
        CHECK_MSG(0, "%s: reference unreadable", ref_path);
        return;
    }
    bool same_shape = a.ndim == b.ndim && a.count == b.count;
    for (int i = 0; same_shape && i < a.ndim; i++) same_shape = a.shape[i] == b.shape[i];
    CHECK_MSG(same_shape, "%s: shape differs", lname);
    if (!same_shape) goto done;
    const bool bf16 = strstr(lname, "bf16") != NULL;
    const bool logits = strstr(lname, "video_res_logits") || strstr(lname, "pred_masks");
    double worst = 0, worst_ratio = 0;
    int64_t where = 0;
    int flips = 0;
    for (int64_t i = 0; i < a.count; i++) {
        double d = fabs((double)a.data[i] - (double)b.data[i]);
        double tol = bf16 ? bf16_step(b.data[i]) + 1e-5 : 1e-4 + 1e-4 * fabs((double)b.data[i]);
        if (d != d) d = INFINITY;
        if (d / tol > worst_ratio) {
            worst_ratio = d / tol;
            worst = d;
            where = i;
        }
        if (logits && fabs((double)b.data[i]) >= 1e-4 && ((a.data[i] > 0) != (b.data[i] > 0))) flips++;
    }
    int kind = bf16 ? 3 : strstr(lname, "out/") ? 0 : strstr(lname, "pred_masks") ? 1 : strstr(lname, "obj_ptr") ? 2 : 4;
    if (worst > sm->worst[kind]) sm->worst[kind] = worst;
    sm->n[kind]++;
    sm->flips += flips;
    sm->files++;
    if (kind == 0 || worst_ratio > 1.0 || flips)
        printf("  %-58s worst abs err %.3g (%.2f of tol)%s\n", lname, worst, worst_ratio, flips ? " MASK FLIPS" : "");
    CHECK_MSG(worst_ratio <= 1.0, "%s: worst %.3g at %lld (ours %g ref %g)", lname, worst, (long long)where,
              (double)a.data[where], (double)b.data[where]);
    CHECK_MSG(flips == 0, "%s: %d mask pixels flipped where |ref logit| >= 1e-4", lname, flips);
done:
    sam_npy_free(&a);
    sam_npy_free(&b);
}

static void run_folder(const char *name) {
    char dir[1024], path[1200], cfgp[1200], out[256];
    snprintf(dir, sizeof(dir), "%s/golden/%s", SAM2D_TEST_DATA, name);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    snprintf(cfgp, sizeof(cfgp), "%s/config.yaml", dir);
    if (access(path, R_OK) != 0) snprintf(path, sizeof(path), "%s/model.pt", dir);
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = path;
    mp.config_path = cfgp;
    sam2d_model *model = NULL;
    sam2d_status st = sam2d_model_load(&mp, &model);
    CHECK_MSG(st == SAM2D_OK, "%s: model: %s", name, sam2d_last_error());
    if (st != SAM2D_OK) return;
    snprintf(out, sizeof(out), "/tmp/sam2d_video_golden_%s_XXXXXX", name);
    CHECK(mkdtemp(out) != NULL);
    sam2d_replay_video_stats stats;
    if (st == SAM2D_OK) st = sam_replay_video(model, dir, out, &stats);
    CHECK_MSG(st == SAM2D_OK, "%s: replay: %s", name, sam2d_last_error());
    CHECK(stats.mismatched == 0);
    printf("%s: %d steps, %d results, %d state arrays\n", name, stats.steps, stats.results, stats.states);

    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    json_t *m = json_load_file(path, 0, NULL);
    json_t *map = json_object_get(m, "logical_name_to_file");
    summary sm;
    memset(&sm, 0, sizeof(sm));
    const char *lname;
    json_t *val;
    json_object_foreach(map, lname, val) {
        if (strncmp(lname, "out/", 4) && strncmp(lname, "state/", 6)) continue;
        if (strstr(lname, "memenc_binarized")) continue; /* an encoder input tap, not a result */
        char ours[1400], ref[1400];
        snprintf(ours, sizeof(ours), "%s/%s", out, lname);
        snprintf(ref, sizeof(ref), "%s/%s", dir, json_string_value(val));
        compare_file(ours, ref, lname, &sm);
    }
    printf("%s: %d arrays compared; worst abs err: video logits %.3g, pred_masks %.3g, obj_ptr %.3g, "
           "scores %.3g, bf16 memory %.3g; %d mask flips\n",
           name, sm.files, sm.worst[0], sm.worst[1], sm.worst[2], sm.worst[4], sm.worst[3], sm.flips);
    CHECK(sm.files > 0);
    json_decref(m);
    sam2d_model_free(model);
    if (getenv("SAM2D_KEEP_OUTPUT") == NULL) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", out);
    } else {
        printf("outputs kept in %s\n", out);
    }
}

int main(void) {
    run_folder("micro");
    run_folder("shapes");
    return test_finish();
}
