/* One model shared by several image predictors on several threads at once:
 * every thread gets exactly the results a lone predictor gets. */
#include <pthread.h>
#include <stdbool.h>

#include "core/alloc.h"
#include "media/image_io.h"
#include "sam2d/image_predictor.h"
#include "sam2d/model.h"
#include "test_util.h"

#define NTHREADS 3
#define ROUNDS 4

typedef struct {
    sam2d_model *model;
    const uint8_t *rgb;
    int W, H;
    const float *want; /* (3, H, W) logits of the lone run */
    const float *want_iou;
    int failures;
} job;

static void *worker(void *arg) {
    job *j = arg;
    sam2d_image_predictor_params pp = sam2d_image_predictor_default_params();
    pp.antialias = false;
    sam2d_image_predictor *p = NULL;
    if (sam2d_image_predictor_create(j->model, &pp, &p) != SAM2D_OK) {
        j->failures++;
        return NULL;
    }
    float pt[2] = {95, 115};
    int lb[1] = {1};
    sam2d_image_prompt q = {.points = pt, .labels = lb, .n_points = 1, .multimask = true, .return_logits = true};
    for (int r = 0; r < ROUNDS; r++) {
        sam2d_image_result res;
        if (sam2d_image_predictor_set_image(p, j->rgb, j->W, j->H) != SAM2D_OK ||
            sam2d_image_predictor_predict(p, &q, &res) != SAM2D_OK) {
            j->failures++;
            continue;
        }
        /* same numbers up to reduction-order noise (they are bit-identical with the CPU back end) */
        if (test_max_abs_diff(res.masks, j->want, (size_t)3 * j->W * j->H, NULL) > 1e-6 ||
            test_max_abs_diff(res.iou, j->want_iou, 3, NULL) > 1e-6)
            j->failures++;
    }
    sam2d_image_predictor_free(p);
    return NULL;
}

int main(void) {
    char ck[1024], cfg[1024], img[1024];
    snprintf(ck, sizeof ck, "%s/golden/micro/model.safetensors", SAM2D_TEST_DATA);
    snprintf(cfg, sizeof cfg, "%s/golden/micro/config.yaml", SAM2D_TEST_DATA);
    snprintf(img, sizeof img, "%s/golden/micro/video/00000.jpg", SAM2D_TEST_DATA);
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = ck;
    mp.config_path = cfg;
    sam2d_model *m = NULL;
    CHECK(sam2d_model_load(&mp, &m) == SAM2D_OK);
    uint8_t *rgb = NULL;
    int W = 0, H = 0;
    CHECK(sam_image_decode_file(img, 0, &rgb, &W, &H) == SAM2D_OK);
    if (!m || !rgb) return test_finish();

    /* the lone run */
    sam2d_image_predictor_params pp = sam2d_image_predictor_default_params();
    pp.antialias = false;
    sam2d_image_predictor *p = NULL;
    CHECK(sam2d_image_predictor_create(m, &pp, &p) == SAM2D_OK);
    float pt[2] = {95, 115};
    int lb[1] = {1};
    sam2d_image_prompt q = {.points = pt, .labels = lb, .n_points = 1, .multimask = true, .return_logits = true};
    sam2d_image_result r;
    CHECK(sam2d_image_predictor_set_image(p, rgb, W, H) == SAM2D_OK);
    CHECK(sam2d_image_predictor_predict(p, &q, &r) == SAM2D_OK);
    float *want = sam_malloc((size_t)3 * W * H * sizeof(float)), want_iou[3];
    memcpy(want, r.masks, (size_t)3 * W * H * sizeof(float));
    memcpy(want_iou, r.iou, sizeof want_iou);
    sam2d_image_predictor_free(p);

    pthread_t th[NTHREADS];
    job jobs[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        jobs[i] = (job){.model = m, .rgb = rgb, .W = W, .H = H, .want = want, .want_iou = want_iou};
        CHECK(pthread_create(&th[i], NULL, worker, &jobs[i]) == 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(jobs[i].failures == 0, "thread %d: %d rounds differ or failed", i, jobs[i].failures);
    }
    printf("%d threads x %d rounds: same results as the lone run\n", NTHREADS, ROUNDS);
    sam_free(want);
    sam_free(rgb);
    sam2d_model_free(m);
    CHECK_MSG(sam2d_memory_used() == 0, "leak: %zu bytes", sam2d_memory_used());
    return test_finish();
}
