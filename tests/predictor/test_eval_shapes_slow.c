/* `sam2d track` against the reference on every eval/shapes video (6 videos,
 * 12 objects, 210 frames) with the trained shapes model: per object, our
 * masks vs the reference's and our IoU vs ground truth vs the reference's
 * (test_eval_shapes.h); then the manifest's summary mean over objects. */
#include "test_eval_shapes.h"

int main(void) {
    json_t *prompts, *manifest;
    if (eval_load(&prompts, &manifest)) {
        eval_totals tot = {0};
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(manifest, "videos"), key, v) eval_video(key, prompts, manifest, &tot);
        json_t *sum = json_object_get(manifest, "summary");
        int want = (int)json_integer_value(json_object_get(sum, "objects"));
        double ref_mean = json_number_value(json_object_get(sum, "mean_iou_over_objects"));
        CHECK(tot.objects == want && want > 0);
        if (tot.objects > 0) {
            double ours = tot.sum_gt_iou / tot.objects;
            printf("all: %d objects; mean IoU vs reference %.5f (worst object %.5f, min %.3f); mean IoU vs GT %.4f, "
                   "reference %.4f (worst per-object |diff| %.4f, tol %.3f)\n",
                   tot.objects, tot.sum_ref_iou / tot.objects, tot.worst_ref_iou, EVAL_MIN_REF_IOU, ours, ref_mean,
                   tot.worst_gt_delta, EVAL_GT_IOU_TOL);
            CHECK_MSG(fabs(ours - ref_mean) <= EVAL_GT_IOU_TOL, "mean over objects %.4f vs reference %.4f", ours,
                      ref_mean);
        }
    }
    json_decref(prompts);
    json_decref(manifest);
    return test_finish();
}
