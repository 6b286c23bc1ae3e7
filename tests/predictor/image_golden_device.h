/* The image predictor's golden scenario (micro set: manifest "image_scenario")
 * on a given device: every result against Meta's outputs (absolute tolerance
 * 1e-4 on logits, IoUs and features; binary masks equal wherever the
 * reference logit is not within 1e-4 of 0), and against the same run on "cpu":
 * bit for bit on "devsim" (the CPU kernels behind the device-memory rule) and
 * "cpu"; on any other device (a GPU: other kernels, other summation orders)
 * within 1e-4 with the worst error printed, binary masks in at most 0.01 % of
 * their pixels. A few more prompts (mask only, box + clicks) and a second
 * image of another size are compared with the CPU run only.
 *
 *   int failures = image_golden_on_device("devsim");
 *
 * Uses only library functions and tests/test_util.h, so tests of any back end
 * (e.g. a CUDA test with "cuda") can include it. */
#ifndef SAM_TESTS_PREDICTOR_IMAGE_GOLDEN_DEVICE_H
#define SAM_TESTS_PREDICTOR_IMAGE_GOLDEN_DEVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "sam2d/image_predictor.h"
#include "sam2d/model.h"
#include "test_util.h"

#define IGD_TOL 1e-4 /* absolute: logits, IoUs and features, as test_image_predictor */
#define IGD_MAX_STEPS 16

typedef struct {
    char tag[64];
    bool golden;         /* a step of the manifest (compared with Meta's outputs) */
    bool return_logits;
    int nm, H, W, L;
    float *iou;          /* (nm) */
    float *low;          /* (nm, L, L) clamped low-res logits */
    float *masks;        /* (nm, H, W) */
} igd_step;

typedef struct {
    float *feat[3];      /* image_embed, high_res0, high_res1 (host copies) */
    size_t nfeat[3];
    int nsteps;
    igd_step steps[IGD_MAX_STEPS];
} igd_run;

static inline void igd_run_free(igd_run *r) {
    for (int k = 0; k < 3; k++) sam_free(r->feat[k]);
    for (int i = 0; i < r->nsteps; i++) {
        sam_free(r->steps[i].iou);
        sam_free(r->steps[i].low);
        sam_free(r->steps[i].masks);
    }
    memset(r, 0, sizeof(*r));
}

static inline float *igd_dup(const float *src, size_t n) {
    float *d = sam_malloc(n * sizeof(float));
    if (d) memcpy(d, src, n * sizeof(float));
    return d;
}

static inline int igd_read_floats(const json_t *arr, float *dst, int max) {
    int n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_array(v))
            n += igd_read_floats(v, dst + n, max - n);
        else if (n < max)
            dst[n++] = (float)json_number_value(v);
    }
    return n;
}

/* One predict, its results copied into r's next step. */
static inline bool igd_predict(sam2d_image_predictor *pred, const char *tag, bool golden, const sam2d_image_prompt *q,
                               igd_run *r) {
    sam2d_image_result res;
    sam2d_status st = sam2d_image_predictor_predict(pred, q, &res);
    CHECK_MSG(st == SAM2D_OK, "%s: %s", tag, sam2d_last_error());
    if (st != SAM2D_OK || r->nsteps == IGD_MAX_STEPS) return false;
    igd_step *s = &r->steps[r->nsteps++];
    snprintf(s->tag, sizeof s->tag, "%s", tag);
    s->golden = golden;
    s->return_logits = q->return_logits;
    s->nm = res.num_masks;
    s->H = res.height;
    s->W = res.width;
    s->L = res.low_res;
    s->iou = igd_dup(res.iou, (size_t)s->nm);
    s->low = igd_dup(res.low_res_masks, (size_t)s->nm * s->L * s->L);
    s->masks = igd_dup(res.masks, (size_t)s->nm * s->H * s->W);
    return s->iou && s->low && s->masks;
}

/* The whole scenario on `device`; false when it could not run (failures recorded). */
static inline bool igd_run_scenario(const char *dir, const char *device, igd_run *r) {
    memset(r, 0, sizeof(*r));
    char ck[1200], cfgp[1200], p[1200];
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
    snprintf(cfgp, sizeof cfgp, "%s/config.yaml", dir);
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = ck;
    mp.config_path = cfgp;
    mp.device = device;
    mp.num_threads = 2;
    mp.precision = "fp32";
    sam2d_model *model = NULL;
    sam2d_status st = sam2d_model_load(&mp, &model);
    CHECK_MSG(st == SAM2D_OK, "model on %s: %s", device, sam2d_last_error());
    if (st != SAM2D_OK) return false;
    /* the model runs where it was asked to (no silent fallback to the CPU) */
    CHECK_MSG(!strncmp(sam2d_model_device(model), device, strlen(device)), "model asked for %s runs on %s", device,
              sam2d_model_device(model));
    sam2d_image_predictor_params pp = sam2d_image_predictor_default_params();
    pp.antialias = false; /* the golden data was made with torchvision 0.14 (no antialias) */
    sam2d_image_predictor *pred = NULL;
    st = sam2d_image_predictor_create(model, &pp, &pred);
    CHECK_MSG(st == SAM2D_OK, "predictor on %s: %s", device, sam2d_last_error());
    json_t *man = NULL;
    uint8_t *rgb = NULL;
    float *best_a = NULL;
    bool ok = false;
    if (st != SAM2D_OK) goto out;

    int W = 0, H = 0;
    snprintf(p, sizeof p, "%s/video/00000.jpg", dir);
    st = sam_image_decode_file(p, 0, &rgb, &W, &H);
    CHECK_MSG(st == SAM2D_OK, "decode: %s", sam2d_last_error());
    if (st == SAM2D_OK) st = sam2d_image_predictor_set_image(pred, rgb, W, H);
    CHECK_MSG(st == SAM2D_OK, "set_image on %s: %s", device, sam2d_last_error());
    if (st != SAM2D_OK) goto out;
    const float *f[3];
    st = sam2d_image_predictor_features(pred, &f[0], &f[1], &f[2]);
    CHECK(st == SAM2D_OK);
    if (st != SAM2D_OK) goto out;
    const sam2d_model_config *cfg = sam2d_model_get_config(model);
    int e = cfg->image_size / cfg->backbone_stride;
    r->nfeat[0] = (size_t)e * e * cfg->d_model;
    r->nfeat[1] = (size_t)(4 * e) * (4 * e) * (cfg->d_model / 8);
    r->nfeat[2] = (size_t)(2 * e) * (2 * e) * (cfg->d_model / 4);
    for (int k = 0; k < 3; k++) r->feat[k] = f[k] ? igd_dup(f[k], r->nfeat[k]) : NULL;

    int L = sam2d_image_predictor_low_res_size(pred);
    best_a = sam_malloc((size_t)L * L * sizeof(float));
    json_error_t jerr;
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    man = json_load_file(p, 0, &jerr);
    CHECK_MSG(man != NULL, "%s: %s", p, jerr.text);
    if (!man || !best_a) goto out;
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
            q.n_points = igd_read_floats(pc, pts, 16) / 2;
            for (int i = 0; i < q.n_points && i < 8; i++)
                labels[i] = (int)json_integer_value(json_array_get(json_object_get(step, "point_labels"), (size_t)i));
            q.points = pts;
            q.labels = labels;
        }
        if (json_object_get(step, "box")) {
            igd_read_floats(json_object_get(step, "box"), box, 4);
            q.box = box;
        }
        if (json_object_get(step, "mask_input_from")) q.mask_input = best_a; /* i_a's best low-res logits */
        json_t *mm = json_object_get(step, "multimask_output");
        q.multimask = mm ? json_is_true(mm) : true;
        q.return_logits = json_is_true(json_object_get(step, "return_logits"));
        if (!igd_predict(pred, tag ? tag : "?", true, &q, r)) continue;
        const igd_step *s = &r->steps[r->nsteps - 1];
        if (tag && !strcmp(tag, "i_a")) {
            int b = 0;
            for (int i = 1; i < s->nm; i++)
                if (s->iou[i] > s->iou[b]) b = i;
            memcpy(best_a, s->low + (size_t)b * L * L, (size_t)L * L * sizeof(float));
        }
    }
    /* More prompt forms: a mask alone (no sparse tokens), box + clicks (binary masks). */
    sam2d_image_prompt qm = {.mask_input = best_a, .multimask = false, .return_logits = true};
    igd_predict(pred, "extra mask-only", false, &qm, r);
    float bx[4] = {10, 20, (float)W / 2, (float)H / 2}, pp2[4] = {30, 40, 5, 5};
    int lb2[2] = {1, 0};
    sam2d_image_prompt qb = {.points = pp2, .labels = lb2, .n_points = 2, .box = bx, .multimask = true};
    igd_predict(pred, "extra box+clicks", false, &qb, r);
    /* A second image of another size: buffers follow it. */
    {
        int w2 = W + 37, h2 = H / 2 + 3;
        uint8_t *img = sam_malloc((size_t)w2 * h2 * 3);
        CHECK(img != NULL);
        if (img) {
            for (int i = 0; i < w2 * h2 * 3; i++) img[i] = (uint8_t)((i * 7) % 251);
            st = sam2d_image_predictor_set_image(pred, img, w2, h2);
            CHECK_MSG(st == SAM2D_OK, "second image on %s: %s", device, sam2d_last_error());
            sam_free(img);
            float pt[2] = {(float)w2 / 3, (float)h2 / 3};
            int lb[1] = {1};
            sam2d_image_prompt q2 = {.points = pt, .labels = lb, .n_points = 1, .multimask = true,
                                     .return_logits = true};
            if (st == SAM2D_OK) igd_predict(pred, "extra second image", false, &q2, r);
        }
    }
    ok = true;
out:
    json_decref(man);
    sam_free(best_a);
    sam_free(rgb);
    sam2d_image_predictor_free(pred);
    sam2d_model_free(model);
    return ok;
}

static inline bool igd_load(const char *dir, const char *rel, sam_npy *a) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    sam2d_status st = sam_npy_read(p, a);
    CHECK_MSG(st == SAM2D_OK, "reading %s: %s", p, sam2d_last_error());
    return st == SAM2D_OK;
}

/* golden (1, C, h, w) channels-first vs ours (h*w, C) */
static inline void igd_check_feature(const char *dir, const char *name, const float *ours, size_t n, const char *rel) {
    sam_npy a;
    if (!ours || !igd_load(dir, rel, &a)) return;
    CHECK_MSG((size_t)a.count == n, "%s: %lld values, expected %zu", rel, (long long)a.count, n);
    if ((size_t)a.count == n) {
        int C = (int)a.shape[1];
        int64_t HW = a.shape[2] * a.shape[3];
        float *cl = sam_malloc((size_t)a.count * sizeof(float));
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < HW; i++) cl[i * C + c] = a.data[(int64_t)c * HW + i];
        CHECK_CLOSE_ARRAY(name, ours, cl, n, IGD_TOL);
        sam_free(cl);
    }
    sam_npy_free(&a);
}

/* A manifest step's results against the golden files. */
static inline void igd_check_golden_step(const char *dir, const char *device, const igd_step *s) {
    const char *base = !strcmp(s->tag, "i_b_logits") ? "i_b" : s->tag;
    char f[256], lab[200];
    sam_npy g;
    size_t ll = (size_t)s->L * s->L, n = (size_t)s->nm * s->H * s->W;
    snprintf(f, sizeof f, "image/%s_iou_predictions.npy", base);
    if (igd_load(dir, f, &g)) {
        snprintf(lab, sizeof lab, "%s %s iou_predictions", device, s->tag);
        CHECK(g.count == s->nm);
        if (g.count == s->nm) CHECK_CLOSE_ARRAY(lab, s->iou, g.data, (size_t)s->nm, IGD_TOL);
        sam_npy_free(&g);
    }
    snprintf(f, sizeof f, "image/%s_low_res_masks.npy", base);
    if (igd_load(dir, f, &g)) {
        snprintf(lab, sizeof lab, "%s %s low_res_masks", device, s->tag);
        CHECK(g.count == (int64_t)(s->nm * ll));
        if (g.count == (int64_t)(s->nm * ll)) CHECK_CLOSE_ARRAY(lab, s->low, g.data, s->nm * ll, IGD_TOL);
        sam_npy_free(&g);
    }
    snprintf(f, sizeof f, "image/%s_masks.npy", s->tag);
    if (!igd_load(dir, f, &g)) return;
    CHECK(g.count == (int64_t)n);
    if (g.count == (int64_t)n) {
        if (s->return_logits) {
            snprintf(lab, sizeof lab, "%s %s masks (logits %dx%d)", device, s->tag, s->H, s->W);
            CHECK_CLOSE_ARRAY(lab, s->masks, g.data, n, IGD_TOL);
        } else {
            /* binary: equal wherever the reference logit is not within the tolerance of 0 */
            sam_npy lg;
            char pth[1400];
            snprintf(pth, sizeof pth, "%s/image/%s_logits_masks.npy", dir, s->tag);
            bool have_lg = sam_npy_read(pth, &lg) == SAM2D_OK;
            if (have_lg && lg.count != (int64_t)n) {
                sam_npy_free(&lg);
                have_lg = false;
            }
            int64_t diff = 0, skipped = 0;
            for (size_t i = 0; i < n; i++) {
                if (have_lg && fabsf(lg.data[i]) < IGD_TOL) {
                    skipped++;
                    continue;
                }
                diff += s->masks[i] != g.data[i];
            }
            printf("%s %-40s %lld differing pixels (%lld near-zero skipped)\n", device, s->tag, (long long)diff,
                   (long long)skipped);
            CHECK(diff == 0);
            if (have_lg) sam_npy_free(&lg);
        }
    }
    sam_npy_free(&g);
}

/* A device result against the CPU's: identical bits (exact), else within IGD_TOL
 * (worst error printed) or, for binary masks, at most 0.01 % of pixels differing. */
static inline bool igd_match(const char *device, const char *what, bool exact, bool binary, const float *a,
                             const float *b, size_t n) {
    if (!a || !b) return false;
    if (exact) return memcmp(a, b, n * sizeof(float)) == 0;
    char lab[200];
    snprintf(lab, sizeof lab, "%s vs cpu: %s", device, what);
    if (binary) {
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += a[i] != b[i];
        printf("%-48s %zu of %zu pixels differ\n", lab, diff, n);
        return diff * 10000 <= n;
    }
    size_t where;
    double worst = test_max_abs_diff(a, b, n, &where);
    printf("%-48s worst abs err %.3g (tol %.1g) at %zu\n", lab, worst, IGD_TOL, where);
    return worst <= IGD_TOL;
}

/* Number of failed checks (0: all passed). */
static inline int image_golden_on_device(const char *device) {
    const int failed0 = test_failed_;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/golden/micro", SAM2D_TEST_DATA);
    printf("== image predictor golden micro on %s\n", device);
    igd_run dev, cpu;
    bool ran_dev = igd_run_scenario(dir, device, &dev);
    bool ran_cpu = igd_run_scenario(dir, "cpu", &cpu);
    if (ran_dev) {
        igd_check_feature(dir, "features image_embed (+no_mem_embed)", dev.feat[0], dev.nfeat[0],
                          "image/features_image_embed.npy");
        igd_check_feature(dir, "features high_res0", dev.feat[1], dev.nfeat[1], "image/features_high_res0.npy");
        igd_check_feature(dir, "features high_res1", dev.feat[2], dev.nfeat[2], "image/features_high_res1.npy");
        int golden = 0;
        for (int i = 0; i < dev.nsteps; i++)
            if (dev.steps[i].golden) {
                igd_check_golden_step(dir, device, &dev.steps[i]);
                golden++;
            }
        CHECK_MSG(golden >= 4, "%d golden steps ran on %s", golden, device);
    }
    if (ran_dev && ran_cpu) {
        /* the same kernels: the same bits */
        const bool exact = !strncmp(device, "devsim", 6) || !strncmp(device, "cpu", 3);
        static const char *fnames[3] = {"image_embed", "high_res0", "high_res1"};
        for (int k = 0; k < 3; k++)
            CHECK_MSG(igd_match(device, fnames[k], exact, false, dev.feat[k], cpu.feat[k], dev.nfeat[k]),
                      "%s: feature %s differs from the cpu run", device, fnames[k]);
        CHECK_MSG(dev.nsteps == cpu.nsteps, "%s: %d steps, cpu %d", device, dev.nsteps, cpu.nsteps);
        int same = 0;
        for (int i = 0; i < dev.nsteps && i < cpu.nsteps; i++) {
            const igd_step *a = &dev.steps[i], *b = &cpu.steps[i];
            bool shape = a->nm == b->nm && a->H == b->H && a->W == b->W && a->L == b->L;
            char w[3][120];
            snprintf(w[0], sizeof w[0], "%s iou", a->tag);
            snprintf(w[1], sizeof w[1], "%s low_res_masks", a->tag);
            snprintf(w[2], sizeof w[2], "%s masks", a->tag);
            bool eq = shape && igd_match(device, w[0], exact, false, a->iou, b->iou, (size_t)a->nm);
            eq = eq && igd_match(device, w[1], exact, false, a->low, b->low, (size_t)a->nm * a->L * a->L);
            eq = eq && igd_match(device, w[2], exact, !a->return_logits, a->masks, b->masks,
                                 (size_t)a->nm * a->H * a->W);
            CHECK_MSG(eq, "%s: step %s differs from the cpu run", device, a->tag);
            same += eq;
        }
        printf("%s vs cpu: %d of %d steps %s\n", device, same, dev.nsteps,
               exact ? "and the features bit-identical" : "within the tolerance");
    }
    igd_run_free(&dev);
    igd_run_free(&cpu);
    return test_failed_ - failed0;
}

#endif
