/* Image predictor end to end (JPEG -> encoder -> heads -> masks) against the
 * golden image scenario of Meta's SAM2ImagePredictor, micro and shapes. */
#include <jansson.h>
#include <stdbool.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "sam2d/image_predictor.h"
#include "sam2d/model.h"
#include "test_util.h"

#define TOL 1e-4 /* absolute: logits, IoUs and features */

static char dir_[1024];

static bool load(const char *rel, sam_npy *a) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir_, rel);
    sam2d_status st = sam_npy_read(p, a);
    CHECK_MSG(st == SAM2D_OK, "reading %s: %s", p, sam2d_last_error());
    return st == SAM2D_OK;
}

/* golden (1, C, h, w) channels-first vs ours (h*w, C) */
static void check_feature(const char *name, const float *ours, const char *rel) {
    sam_npy a;
    if (!load(rel, &a)) return;
    int C = (int)a.shape[1];
    int64_t HW = a.shape[2] * a.shape[3];
    float *cl = sam_malloc((size_t)a.count * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int64_t i = 0; i < HW; i++) cl[i * C + c] = a.data[(int64_t)c * HW + i];
    CHECK_CLOSE_ARRAY(name, ours, cl, (size_t)a.count, TOL);
    sam_free(cl);
    sam_npy_free(&a);
}

static int read_floats(const json_t *arr, float *dst, int max) {
    int n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_array(v)) {
            n += read_floats(v, dst + n, max - n);
        } else if (n < max) {
            dst[n++] = (float)json_number_value(v);
        }
    }
    return n;
}

static void golden_set(const char *name) {
    snprintf(dir_, sizeof dir_, "%s/golden/%s", SAM2D_TEST_DATA, name);
    printf("== golden %s\n", name);
    char ck[1200], cfg[1200], p[1200];
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir_);
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir_);
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = ck;
    mp.config_path = cfg;
    sam2d_model *model = NULL;
    sam2d_status st = sam2d_model_load(&mp, &model);
    CHECK_MSG(st == SAM2D_OK, "model: %s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    sam2d_image_predictor_params pp = sam2d_image_predictor_default_params();
    pp.antialias = false; /* the golden data was made with torchvision 0.14 (no antialias) */
    sam2d_image_predictor *pred = NULL;
    st = sam2d_image_predictor_create(model, &pp, &pred);
    CHECK(st == SAM2D_OK);
    if (st != SAM2D_OK) {
        sam2d_model_free(model);
        return;
    }
    /* predicting before an image is set is refused */
    sam2d_image_result r;
    float pt0[2] = {1, 1};
    int lb0[1] = {1};
    sam2d_image_prompt q0 = {.points = pt0, .labels = lb0, .n_points = 1, .multimask = true};
    CHECK(sam2d_image_predictor_predict(pred, &q0, &r) == SAM2D_ERR_STATE);

    uint8_t *rgb = NULL;
    int W = 0, H = 0;
    snprintf(p, sizeof p, "%s/video/00000.jpg", dir_);
    st = sam_image_decode_file(p, 0, &rgb, &W, &H);
    CHECK_MSG(st == SAM2D_OK, "decode: %s", sam2d_last_error());
    if (st == SAM2D_OK) st = sam2d_image_predictor_set_image(pred, rgb, W, H);
    CHECK_MSG(st == SAM2D_OK, "set_image: %s", sam2d_last_error());
    sam_free(rgb);
    if (st != SAM2D_OK) goto out;

    const float *fe, *f0, *f1;
    CHECK(sam2d_image_predictor_features(pred, &fe, &f0, &f1) == SAM2D_OK);
    check_feature("features image_embed (+no_mem_embed)", fe, "image/features_image_embed.npy");
    check_feature("features high_res0", f0, "image/features_high_res0.npy");
    check_feature("features high_res1", f1, "image/features_high_res1.npy");

    /* no prompt at all is refused */
    sam2d_image_prompt qe = {.multimask = true};
    CHECK(sam2d_image_predictor_predict(pred, &qe, &r) == SAM2D_ERR_INVALID_ARG);

    int L = sam2d_image_predictor_low_res_size(pred);
    float *best_a = sam_malloc((size_t)L * L * sizeof(float));
    json_error_t jerr;
    snprintf(p, sizeof p, "%s/manifest.json", dir_);
    json_t *man = json_load_file(p, 0, &jerr);
    CHECK(man != NULL);
    size_t si;
    json_t *step;
    json_array_foreach(json_object_get(man, "image_scenario"), si, step) {
        const char *tag = json_string_value(json_object_get(step, "tag"));
        float pts[16], box[4];
        int labels[8];
        sam2d_image_prompt q;
        memset(&q, 0, sizeof(q));
        json_t *pc = json_object_get(step, "point_coords");
        if (pc) {
            q.n_points = read_floats(pc, pts, 16) / 2;
            for (int i = 0; i < q.n_points; i++)
                labels[i] = (int)json_integer_value(json_array_get(json_object_get(step, "point_labels"), (size_t)i));
            q.points = pts;
            q.labels = labels;
        }
        if (json_object_get(step, "box")) {
            read_floats(json_object_get(step, "box"), box, 4);
            q.box = box;
        }
        if (json_object_get(step, "mask_input_from")) q.mask_input = best_a; /* i_a's best low-res logits */
        json_t *mm = json_object_get(step, "multimask_output");
        q.multimask = mm ? json_is_true(mm) : true;
        q.return_logits = json_is_true(json_object_get(step, "return_logits"));
        st = sam2d_image_predictor_predict(pred, &q, &r);
        CHECK_MSG(st == SAM2D_OK, "%s: %s", tag, sam2d_last_error());
        if (st != SAM2D_OK) continue;
        CHECK(r.height == H && r.width == W && r.low_res == L);
        CHECK(r.num_masks == (q.multimask ? 3 : 1));
        if (!strcmp(tag, "i_a")) {
            int b = 0;
            for (int i = 1; i < r.num_masks; i++)
                if (r.iou[i] > r.iou[b]) b = i;
            memcpy(best_a, r.low_res_masks + (size_t)b * L * L, (size_t)L * L * sizeof(float));
        }
        char lab[160], f[256];
        sam_npy g;
        snprintf(f, sizeof f, "image/%s_iou_predictions.npy", !strcmp(tag, "i_b_logits") ? "i_b" : tag);
        if (load(f, &g)) {
            snprintf(lab, sizeof lab, "%s iou_predictions", tag);
            CHECK_CLOSE_ARRAY(lab, r.iou, g.data, (size_t)r.num_masks, TOL);
            sam_npy_free(&g);
        }
        snprintf(f, sizeof f, "image/%s_low_res_masks.npy", !strcmp(tag, "i_b_logits") ? "i_b" : tag);
        if (load(f, &g)) {
            snprintf(lab, sizeof lab, "%s low_res_masks", tag);
            CHECK(g.count == (int64_t)r.num_masks * L * L);
            CHECK_CLOSE_ARRAY(lab, r.low_res_masks, g.data, (size_t)r.num_masks * L * L, TOL);
            sam_npy_free(&g);
        }
        size_t n = (size_t)r.num_masks * H * W;
        snprintf(f, sizeof f, "image/%s_masks.npy", tag);
        if (!load(f, &g)) continue;
        CHECK(g.count == (int64_t)n);
        if (q.return_logits) {
            snprintf(lab, sizeof lab, "%s masks (logits %dx%d)", tag, H, W);
            CHECK_CLOSE_ARRAY(lab, r.masks, g.data, n, TOL);
        } else {
            /* binary: equal wherever the reference logit is not within the tolerance of 0 */
            sam_npy lg;
            snprintf(f, sizeof f, "image/%s_logits_masks.npy", tag);
            bool have_lg = false;
            char pth[1400];
            snprintf(pth, sizeof pth, "%s/%s", dir_, f);
            have_lg = sam_npy_read(pth, &lg) == SAM2D_OK && lg.count == (int64_t)n;
            int64_t diff = 0, skipped = 0;
            for (size_t i = 0; i < n; i++) {
                if (have_lg && fabsf(lg.data[i]) < TOL) {
                    skipped++;
                    continue;
                }
                diff += r.masks[i] != g.data[i];
            }
            printf("%-48s %lld differing pixels (%lld near-zero skipped)\n", tag, (long long)diff, (long long)skipped);
            CHECK(diff == 0);
            if (have_lg) sam_npy_free(&lg);
        }
        sam_npy_free(&g);
    }
    json_decref(man);

    /* Other prompt forms: a mask alone (no sparse tokens at all), box + clicks, negative click only. */
    {
        sam2d_image_prompt qm = {.mask_input = best_a, .multimask = false, .return_logits = true};
        st = sam2d_image_predictor_predict(pred, &qm, &r);
        CHECK_MSG(st == SAM2D_OK && r.num_masks == 1, "mask-only prompt: %s", sam2d_last_error());
        float bx[4] = {10, 20, (float)W / 2, (float)H / 2}, pp2[4] = {30, 40, 5, 5};
        int lb2[2] = {1, 0};
        sam2d_image_prompt qb = {.points = pp2, .labels = lb2, .n_points = 2, .box = bx, .multimask = true};
        st = sam2d_image_predictor_predict(pred, &qb, &r);
        CHECK(st == SAM2D_OK && r.num_masks == 3);
        bool binary = true;
        for (size_t i = 0; st == SAM2D_OK && i < (size_t)3 * H * W; i++) binary &= r.masks[i] == 0.0f || r.masks[i] == 1.0f;
        CHECK(binary);
        int bad_label[1] = {5};
        sam2d_image_prompt qx = {.points = pp2, .labels = bad_label, .n_points = 1};
        CHECK(sam2d_image_predictor_predict(pred, &qx, &r) == SAM2D_ERR_INVALID_ARG);
    }
    /* A second image of another size: buffers follow, results have its size. */
    {
        int w2 = W + 37, h2 = H / 2 + 3;
        uint8_t *img = sam_malloc((size_t)w2 * h2 * 3);
        for (int i = 0; i < w2 * h2 * 3; i++) img[i] = (uint8_t)((i * 7) % 251);
        st = sam2d_image_predictor_set_image(pred, img, w2, h2);
        CHECK(st == SAM2D_OK);
        sam_free(img);
        float pt[2] = {(float)w2 / 3, (float)h2 / 3};
        int lb[1] = {1};
        sam2d_image_prompt q2 = {.points = pt, .labels = lb, .n_points = 1, .multimask = true, .return_logits = true};
        st = sam2d_image_predictor_predict(pred, &q2, &r);
        CHECK(st == SAM2D_OK && r.width == w2 && r.height == h2 && r.num_masks == 3);
        bool finite = true;
        for (size_t i = 0; st == SAM2D_OK && i < (size_t)3 * w2 * h2; i++) finite &= isfinite(r.masks[i]);
        CHECK(finite);
    }
    sam_free(best_a);
out:
    sam2d_image_predictor_free(pred);
    sam2d_model_free(model);
}

int main(void) {
    golden_set("micro");
    golden_set("shapes");
    CHECK_MSG(sam2d_memory_used() == 0, "leak: %zu bytes", sam2d_memory_used());
    return test_finish();
}
