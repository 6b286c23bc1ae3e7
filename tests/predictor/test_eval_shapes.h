/* Shared by test_eval_shapes.c (one video) and test_eval_shapes_slow.c (all):
 * run `sam2d track` on an eval/shapes video folder with its prompts.json
 * prompts and the shapes model, then per object compare our masks with the
 * reference's (ref/o<id>_<frame>.png) and with ground truth (gt/, pixel = id).
 *   - mean over frames of IoU(ours, ref) >= 0.995;
 *   - |mean IoU(ours, gt) - the manifest's reference_mean_iou| <= 0.005.
 * IoU of two empty masks is 1 (as the manifest's). */
#ifndef TEST_EVAL_SHAPES_H
#define TEST_EVAL_SHAPES_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/rle.h"
#include "test_util.h"

#define EVAL_MIN_REF_IOU 0.995
#define EVAL_GT_IOU_TOL 0.005

typedef struct {
    int objects;
    double sum_ref_iou, sum_gt_iou, sum_manifest_iou;
    double worst_ref_iou;     /* lowest per-object mean IoU vs the reference */
    double worst_gt_delta;    /* largest |ours - reference| of per-object mean IoU vs GT */
} eval_totals;

static double eval_iou(const uint8_t *a, const uint8_t *b, size_t n) {
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < n; i++) {
        inter += a[i] && b[i];
        uni += a[i] || b[i];
    }
    return uni ? (double)inter / (double)uni : 1.0;
}

static uint8_t *eval_read_png(const char *path, bool palette, int *h, int *w) {
    uint8_t *bytes = NULL, *out = NULL;
    size_t n = 0;
    if (sam_read_file(path, 0, &bytes, &n) != SAM2D_OK) return NULL;
    sam2d_status st = palette ? sam_mask_png_decode_palette(bytes, n, 0, &out, h, w)
                              : sam_mask_png_decode_binary(bytes, n, 0, &out, h, w);
    sam_free(bytes);
    return st == SAM2D_OK ? out : NULL;
}

/* --device of the runs (NULL: the CLI's default, SAM2_DEVICE else auto). */
static const char *eval_device;

/* Run one video; adds to tot. */
static void eval_video(const char *name, json_t *prompts_all, json_t *manifest, eval_totals *tot) {
    char dir[1024], out[256], cmd[8192], p[1400];
    snprintf(dir, sizeof dir, "%s/eval/shapes/%s", SAM2D_TEST_DATA, name);
    snprintf(out, sizeof out, "/tmp/sam2d_eval_%s_XXXXXX", name);
    CHECK(mkdtemp(out) != NULL);
    json_t *prompts = json_object_get(prompts_all, name);
    json_t *vman = json_object_get(json_object_get(manifest, "videos"), name);
    CHECK_MSG(prompts && vman, "%s: not in prompts.json / manifest.json", name);
    if (!prompts || !vman) return;
    const int N = (int)json_integer_value(json_object_get(vman, "frames"));
    const int W = (int)json_integer_value(json_object_get(vman, "width"));
    const int H = (int)json_integer_value(json_object_get(vman, "height"));

    /* the reference: one add_new_points_or_box per object (ascending id) on the JPEG folder, forward */
    int len = snprintf(cmd, sizeof cmd,
                       "'%s' track '%s/video' --model '%s/models/sam2.1_hiera_micro_shapes.pt' "
                       "--config '%s/models/sam2.1_hiera_micro_shapes.yaml' --format rle --out '%s'",
                       SAM2D_BINARY, dir, SAM2D_SOURCE_DIR, SAM2D_SOURCE_DIR, out);
    if (eval_device) len += snprintf(cmd + len, sizeof cmd - (size_t)len, " --device %s", eval_device);
    const char *key;
    json_t *pr;
    json_object_foreach(prompts, key, pr) {
        int frame = (int)json_integer_value(json_object_get(pr, "frame"));
        json_t *box = json_object_get(pr, "box"), *pts = json_object_get(pr, "points");
        if (box)
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " --box %d:%s:%.9g,%.9g,%.9g,%.9g", frame, key,
                            json_number_value(json_array_get(box, 0)), json_number_value(json_array_get(box, 1)),
                            json_number_value(json_array_get(box, 2)), json_number_value(json_array_get(box, 3)));
        size_t k;
        json_t *pt;
        json_array_foreach(pts, k, pt) {
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " --prompt %d:%s:%.9g,%.9g,%d", frame, key,
                            json_number_value(json_array_get(pt, 0)), json_number_value(json_array_get(pt, 1)),
                            (int)json_integer_value(json_array_get(json_object_get(pr, "labels"), k)));
        }
    }
    snprintf(cmd + len, sizeof cmd - (size_t)len, " > '%s/summary.txt' 2> '%s/stderr.txt'", out, out);
    int rc = system(cmd);
    rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    CHECK_MSG(rc == 0, "%s: sam2d track exited with %d: %s", name, rc, cmd);

    /* our masks: masks.jsonl, one line per frame */
    const size_t hw = (size_t)W * H;
    int n_obj = (int)json_object_size(prompts);
    uint8_t *ours = calloc((size_t)N * n_obj, hw); /* (N, n_obj, H, W) */
    int *obj_ids = calloc((size_t)n_obj, sizeof(int));
    int k = 0;
    json_object_foreach(prompts, key, pr) obj_ids[k++] = atoi(key);
    int lines = 0;
    snprintf(p, sizeof p, "%s/masks.jsonl", out);
    FILE *f = fopen(p, "r");
    CHECK_MSG(f != NULL, "%s: no masks.jsonl", name);
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *js = json_loads(line, 0, NULL);
        CHECK(js != NULL);
        if (!js) continue;
        int fi = (int)json_integer_value(json_object_get(js, "frame_idx"));
        CHECK_MSG(fi == lines, "%s: line %d holds frame %d", name, lines, fi);
        json_t *objs = json_object_get(js, "objects");
        CHECK((int)json_array_size(objs) == n_obj);
        size_t oi;
        json_t *o;
        json_array_foreach(objs, oi, o) {
            int id = (int)json_integer_value(json_object_get(o, "obj_id"));
            int slot = -1;
            for (int q = 0; q < n_obj; q++)
                if (obj_ids[q] == id) slot = q;
            json_t *m = json_object_get(o, "mask"), *sz = json_object_get(m, "size");
            CHECK_MSG(slot >= 0 && json_integer_value(json_array_get(sz, 0)) == H &&
                          json_integer_value(json_array_get(sz, 1)) == W && fi >= 0 && fi < N,
                      "%s: frame %d object %d: bad entry", name, fi, id);
            if (slot < 0 || fi < 0 || fi >= N) continue;
            CHECK(sam_rle_string_to_mask(json_string_value(json_object_get(m, "counts")), H, W,
                                         ours + ((size_t)fi * n_obj + slot) * hw) == SAM2D_OK);
        }
        json_decref(js);
        lines++;
    }
    free(line);
    if (f) fclose(f);
    CHECK_MSG(lines == N, "%s: %d lines for %d frames", name, lines, N);

    /* per object: IoU against the reference's masks and against ground truth */
    uint8_t *gt_obj = malloc(hw);
    for (int q = 0; q < n_obj; q++) {
        char ks[32];
        snprintf(ks, sizeof ks, "%d", obj_ids[q]);
        json_t *mo = json_object_get(json_object_get(vman, "objects"), ks);
        double man_iou = json_number_value(json_object_get(mo, "reference_mean_iou"));
        json_t *man_pf = json_object_get(mo, "reference_iou_per_frame"); /* rounded to 4 decimals */
        double worst_pf = 0; /* largest per-frame |our GT IoU - reference's| (information) */
        double s_ref = 0, s_gt = 0, worst_f = 1;
        int64_t diff_px = 0; /* pixels where ours and the reference's masks differ, all frames */
        int worst_at = 0;
        for (int fi = 0; fi < N; fi++) {
            const uint8_t *m = ours + ((size_t)fi * n_obj + q) * hw;
            int h = 0, w = 0;
            snprintf(p, sizeof p, "%s/ref/o%d_%05d.png", dir, obj_ids[q], fi);
            uint8_t *ref = eval_read_png(p, false, &h, &w);
            CHECK_MSG(ref && h == H && w == W, "%s: unreadable", p);
            double iou_r = 0;
            if (ref && h == H && w == W) {
                iou_r = eval_iou(m, ref, hw);
                for (size_t i = 0; i < hw; i++) diff_px += (m[i] != 0) != (ref[i] != 0);
            }
            sam_free(ref);
            snprintf(p, sizeof p, "%s/gt/%05d.png", dir, fi);
            uint8_t *gt = eval_read_png(p, true, &h, &w);
            CHECK_MSG(gt && h == H && w == W, "%s: unreadable", p);
            double iou_g = 0;
            if (gt && h == H && w == W) {
                for (size_t i = 0; i < hw; i++) gt_obj[i] = gt[i] == obj_ids[q];
                iou_g = eval_iou(m, gt_obj, hw);
            }
            sam_free(gt);
            s_ref += iou_r;
            s_gt += iou_g;
            if (fi < (int)json_array_size(man_pf)) {
                double d = fabs(iou_g - json_number_value(json_array_get(man_pf, (size_t)fi)));
                if (d > worst_pf) worst_pf = d;
            }
            if (iou_r < worst_f) {
                worst_f = iou_r;
                worst_at = fi;
            }
        }
        double mean_ref = s_ref / N, mean_gt = s_gt / N, delta = fabs(mean_gt - man_iou);
        printf("%s obj %d: %d frames, mean IoU vs reference %.6f (worst frame %d: %.4f, %lld pixels differ), "
               "mean IoU vs GT %.4f (reference %.4f, |diff| %.4f; worst frame |diff| %.5f)\n",
               name, obj_ids[q], N, mean_ref, worst_at, worst_f, (long long)diff_px, mean_gt, man_iou, delta, worst_pf);
        CHECK_MSG(mean_ref >= EVAL_MIN_REF_IOU, "%s obj %d: mean IoU vs reference %.5f < %.3f", name, obj_ids[q],
                  mean_ref, EVAL_MIN_REF_IOU);
        CHECK_MSG(delta <= EVAL_GT_IOU_TOL, "%s obj %d: mean IoU vs GT %.4f, reference %.4f", name, obj_ids[q],
                  mean_gt, man_iou);
        tot->objects++;
        tot->sum_ref_iou += mean_ref;
        tot->sum_gt_iou += mean_gt;
        tot->sum_manifest_iou += man_iou;
        if (tot->objects == 1 || mean_ref < tot->worst_ref_iou) tot->worst_ref_iou = mean_ref;
        if (delta > tot->worst_gt_delta) tot->worst_gt_delta = delta;
    }
    free(gt_obj);
    free(ours);
    free(obj_ids);
    if (rc == 0) { /* keep the folder of a failed run for a look */
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
        CHECK(system(cmd) == 0);
    }
}

static bool eval_load(json_t **prompts, json_t **manifest) {
    char p[1200];
    snprintf(p, sizeof p, "%s/eval/shapes/prompts.json", SAM2D_TEST_DATA);
    *prompts = json_load_file(p, 0, NULL);
    snprintf(p, sizeof p, "%s/eval/shapes/manifest.json", SAM2D_TEST_DATA);
    *manifest = json_load_file(p, 0, NULL);
    CHECK(*prompts != NULL && *manifest != NULL);
    return *prompts && *manifest;
}

#endif
