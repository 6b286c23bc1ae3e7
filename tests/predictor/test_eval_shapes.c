/* `sam2d track` against the reference on one eval/shapes video (s04: three
 * objects, clicks and a box) with the trained shapes model, on the default
 * device and on devsim (the model's tensors in buffers host code cannot
 * touch); the full set is test_eval_shapes_slow. Tolerances and IoU rules:
 * test_eval_shapes.h. */
#include "test_eval_shapes.h"

int main(void) {
    json_t *prompts, *manifest;
    if (eval_load(&prompts, &manifest)) {
        const char *devices[2] = {NULL, "devsim"};
        for (int d = 0; d < 2; d++) {
            eval_device = devices[d];
            eval_totals tot = {0};
            eval_video("s04", prompts, manifest, &tot);
            CHECK(tot.objects == 3);
            printf("s04 on %s: %d objects, worst mean IoU vs reference %.5f (min %.3f), worst |GT IoU - "
                   "reference's| %.4f (tol %.3f)\n",
                   eval_device ? eval_device : "the default device", tot.objects, tot.worst_ref_iou, EVAL_MIN_REF_IOU,
                   tot.worst_gt_delta, EVAL_GT_IOU_TOL);
        }
    }
    json_decref(prompts);
    json_decref(manifest);
    return test_finish();
}
