/* `sam2d replay GOLDEN --out DIR` on golden micro and shapes: every image-scenario
 * result the manifest names (and the cached features) is written under its name
 * and matches the reference. Nothing in the command knows the folders' sizes. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/npy.h"
#include "test_util.h"

#define TOL 1e-4 /* absolute, logits / IoUs / features */

static void compare(const char *gold_dir, const char *out_dir, const char *rel, const char *logits_rel) {
    char gp[1400], op[1400];
    snprintf(gp, sizeof gp, "%s/%s", gold_dir, rel);
    snprintf(op, sizeof op, "%s/%s", out_dir, rel);
    sam_npy g = {0}, o = {0};
    bool okg = sam_npy_read(gp, &g) == SAM2D_OK, oko = sam_npy_read(op, &o) == SAM2D_OK;
    CHECK_MSG(okg, "golden %s unreadable", gp);
    CHECK_MSG(oko, "result %s missing", op);
    if (okg && oko) {
        bool same_shape = g.ndim == o.ndim;
        for (int i = 0; same_shape && i < g.ndim; i++) same_shape = g.shape[i] == o.shape[i];
        CHECK_MSG(same_shape, "%s: shape differs", rel);
        if (same_shape && logits_rel) {
            /* binary masks: equal except where the reference logit is within TOL of 0 */
            char lp[1400];
            snprintf(lp, sizeof lp, "%s/%s", gold_dir, logits_rel);
            sam_npy lg = {0};
            bool have = sam_npy_read(lp, &lg) == SAM2D_OK && lg.count == g.count;
            int64_t diff = 0;
            for (int64_t i = 0; i < g.count; i++)
                if (!(have && fabsf(lg.data[i]) < TOL)) diff += g.data[i] != o.data[i];
            printf("%-48s %lld differing pixels\n", rel, (long long)diff);
            CHECK(diff == 0);
            sam_npy_free(&lg);
        } else if (same_shape) {
            CHECK_CLOSE_ARRAY(rel, o.data, g.data, (size_t)g.count, TOL);
        }
    }
    sam_npy_free(&g);
    sam_npy_free(&o);
}

static const char *entry_file(const json_t *e) { /* where the golden data of a result lives */
    if (json_is_string(e)) return json_string_value(e);
    return json_string_value(json_object_get(e, "file"));
}
static const char *entry_name(const json_t *e) { /* the name our run writes it under */
    if (json_is_string(e)) return json_string_value(e);
    return json_string_value(json_object_get(e, "logical_name"));
}

static void run_set(const char *name, const char *device) {
    char gold[1024], out[1024], cmd[8192];
    snprintf(gold, sizeof gold, "%s/golden/%s", SAM2D_TEST_DATA, name);
    snprintf(out, sizeof out, "/tmp/sam2d_test_replay_%d_%s_%s", (int)getpid(), name, device);
    printf("== replay %s on %s\n", name, device);
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --out '%s' --only image --quiet --device %s", SAM2D_BINARY, gold, out,
             device);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s -> %d", cmd, rc);
    if (rc != 0) return;
    char mp[1200];
    snprintf(mp, sizeof mp, "%s/manifest.json", gold);
    json_error_t jerr;
    json_t *man = json_load_file(mp, 0, &jerr);
    CHECK(man != NULL);
    size_t i;
    json_t *res;
    int compared = 0;
    json_array_foreach(json_object_get(man, "image_results"), i, res) {
        const char *keys[] = {"masks", "iou_predictions", "low_res_masks"};
        bool binary = json_is_false(json_object_get(res, "return_logits"));
        const char *step = json_string_value(json_object_get(res, "step"));
        for (int k = 0; k < 3; k++) {
            json_t *e = json_object_get(res, keys[k]);
            if (!e) continue;
            char logits_rel[300] = "";
            if (binary && k == 0) snprintf(logits_rel, sizeof logits_rel, "image/%s_logits_masks.npy", step);
            /* our file (under the logical name) against the golden data (under its file) */
            char gp[1400], op[1400];
            snprintf(gp, sizeof gp, "%s", entry_file(e));
            snprintf(op, sizeof op, "%s", entry_name(e));
            if (strcmp(gp, op) != 0) {
                /* copy-compare: read ours from op, golden from gp */
                char a[3000], b[3000];
                snprintf(a, sizeof a, "%s/%s", gold, gp);
                snprintf(b, sizeof b, "%s/%s", out, op);
                sam_npy g = {0}, o = {0};
                CHECK(sam_npy_read(a, &g) == SAM2D_OK);
                CHECK_MSG(sam_npy_read(b, &o) == SAM2D_OK, "result %s missing", b);
                if (g.data && o.data && g.count == o.count) CHECK_CLOSE_ARRAY(op, o.data, g.data, (size_t)g.count, TOL);
                sam_npy_free(&g);
                sam_npy_free(&o);
            } else {
                compare(gold, out, gp, logits_rel[0] ? logits_rel : NULL);
            }
            compared++;
        }
    }
    const char *feats[] = {"image/features_image_embed.npy", "image/features_high_res0.npy",
                           "image/features_high_res1.npy", "image/preprocessed_input.npy"};
    for (int k = 0; k < 4; k++)
        if (json_object_get(json_object_get(man, "files"), feats[k])) {
            compare(gold, out, feats[k], NULL);
            compared++;
        }
    printf("%d results compared\n", compared);
    CHECK(compared >= 10);
    json_decref(man);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    CHECK(system(cmd) == 0);
}

/* A folder of the same form the code has never seen: links to micro's model and
 * frames, and a hand-written manifest with other prompts, frames and no result names. */
static void unseen_folder(void) {
    printf("== replay of a hand-made manifest\n");
    char dir[512], out[600], cmd[8192], gold[1024];
    snprintf(gold, sizeof gold, "%s/golden/micro", SAM2D_TEST_DATA);
    snprintf(dir, sizeof dir, "/tmp/sam2d_test_unseen_%d", (int)getpid());
    snprintf(out, sizeof out, "%s_out", dir);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' '%s' && mkdir -p '%s' && ln -s '%s/model.safetensors' '%s/model.safetensors' && "
             "ln -s '%s/config.yaml' '%s/config.yaml' && ln -s '%s/video' '%s/video'",
             dir, out, dir, gold, dir, gold, dir, gold, dir);
    CHECK(system(cmd) == 0);
    const char *manifest =
        "{\"image_scenario\": ["
        " {\"tag\": \"u1\", \"call\": \"predict\", \"point_coords\": [[95.0, 115.0]], \"point_labels\": [1],"
        "  \"multimask_output\": true, \"return_logits\": true, \"image\": \"frames_decoded_u8[0]\"},"
        " {\"tag\": \"u2\", \"call\": \"predict\", \"box\": [10, 10, 100, 90], \"point_coords\": [[50, 50]],"
        "  \"point_labels\": [0], \"multimask_output\": false, \"image\": \"video/00003.jpg decoded\"},"
        " {\"tag\": \"u3\", \"call\": \"predict\", \"mask_input_from\": \"u2\", \"multimask_output\": false,"
        "  \"return_logits\": true, \"frame_idx\": 3}]}";
    char mp[600];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    FILE *f = fopen(mp, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(manifest, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --out '%s' --quiet", SAM2D_BINARY, dir, out);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s -> %d", cmd, rc);
    /* the first step is the golden i_a under a name of its own */
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/image/i_a_masks.npy", gold);
    snprintf(b, sizeof b, "%s/image/u1_masks.npy", out);
    sam_npy g = {0}, o = {0};
    CHECK(sam_npy_read(a, &g) == SAM2D_OK);
    CHECK_MSG(sam_npy_read(b, &o) == SAM2D_OK, "%s missing", b);
    if (g.data && o.data && g.count == o.count) CHECK_CLOSE_ARRAY("u1 masks (= golden i_a)", o.data, g.data, (size_t)g.count, TOL);
    sam_npy_free(&g);
    sam_npy_free(&o);
    /* the others exist with the shapes the calls imply */
    const char *names[] = {"u2_masks", "u2_iou_predictions", "u2_low_res_masks", "u3_masks", "u3_low_res_masks"};
    int64_t want0[] = {1, 1, 1, 1, 1};
    for (int k = 0; k < 5; k++) {
        snprintf(b, sizeof b, "%s/image/%s.npy", out, names[k]);
        bool ok = sam_npy_read(b, &o) == SAM2D_OK;
        CHECK_MSG(ok && o.shape[0] == want0[k], "%s", b);
        if (ok && strstr(names[k], "_masks") && !strstr(names[k], "low_res"))
            CHECK(o.ndim == 3 && o.shape[1] == 240 && o.shape[2] == 320);
        sam_npy_free(&o);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, out);
    CHECK(system(cmd) == 0);
}

int main(void) {
    unseen_folder();
    run_set("micro", "cpu");
    run_set("shapes", "cpu");
    run_set("micro", "devsim"); /* the image predictor on "device" memory, same tolerance */
    /* usage errors exit 2 */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' replay >/dev/null 2>&1", SAM2D_BINARY);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(cmd, sizeof cmd, "'%s' replay /nonexistent --out /tmp/sam2d_never --device gpu >/dev/null 2>&1",
             SAM2D_BINARY);
    rc = system(cmd); /* not a device: a usage error before anything is read */
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    /* a folder without manifest fails cleanly */
    snprintf(cmd, sizeof cmd, "'%s' replay /nonexistent --out /tmp/sam2d_never >/dev/null 2>&1", SAM2D_BINARY);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    return test_finish();
}
