/* Prompt encoder + mask decoder against the golden dumps of Meta's code
 * (micro: random weights; shapes: trained weights), fed with the golden inputs,
 * plus a random-weight run at the tiny model's real size (1024 px, d_model 256).
 *
 * Everything runs twice: on the CPU back end, then on devsim (the device-memory
 * rule enforced), with the inputs uploaded into buffers (to_dev) and the outputs
 * fetched with to_host. Every fetched output of the devsim run must be bit for
 * bit the CPU run's (memcmp), and both within the golden tolerance. */
#include <jansson.h>
#include <stdbool.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/sam_heads.h"
#include "model/weights.h"
#include "ops/devsim.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "devsim_compare.h"
#include "test_util.h"

#define TOL 1e-4 /* absolute, logits and features */

static char dir_[1024];

static float *host_down(sam_backend *be, const float *dev, size_t n) {
    float *h = sam_malloc(n * sizeof(float));
    if (h) be->to_host(be, h, dev, n * sizeof(float));
    return h;
}

static bool load(const char *rel, sam_npy *a) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir_, rel);
    sam2d_status st = sam_npy_read(p, a);
    CHECK_MSG(st == SAM2D_OK, "reading %s: %s", p, sam2d_last_error());
    return st == SAM2D_OK;
}

/* (C, HW) channels-first -> (HW, C) channels-last */
static float *to_cl(const float *x, int C, int HW) {
    float *y = sam_malloc((size_t)C * HW * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int i = 0; i < HW; i++) y[(size_t)i * C + c] = x[(size_t)c * HW + i];
    return y;
}

static __attribute__((unused)) void bilinear_host(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo) {
    /* align_corners=False, no antialias (upsampling) */
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++) {
            float sy = ((float)oy + 0.5f) * ((float)Hi / (float)Ho) - 0.5f;
            if (sy < 0) sy = 0;
            int y0 = (int)sy, y1 = y0 + 1 < Hi ? y0 + 1 : Hi - 1;
            float ly = sy - (float)y0;
            for (int ox = 0; ox < Wo; ox++) {
                float sx = ((float)ox + 0.5f) * ((float)Wi / (float)Wo) - 0.5f;
                if (sx < 0) sx = 0;
                int x0 = (int)sx, x1 = x0 + 1 < Wi ? x0 + 1 : Wi - 1;
                float lx = sx - (float)x0;
                const float *p = x + (size_t)c * Hi * Wi;
                y[((size_t)c * Ho + oy) * Wo + ox] =
                    (1 - ly) * ((1 - lx) * p[y0 * Wi + x0] + lx * p[y0 * Wi + x1]) +
                    ly * ((1 - lx) * p[y1 * Wi + x0] + lx * p[y1 * Wi + x1]);
            }
        }
}

/* The golden image embedding and high-res maps (channels-first) as
 * channels-last buffers: embed (HW, C), hr0 (16 HW, C/8), hr1 (4 HW, C/4). */
static void features_up(sam_backend *be, const sam_npy *a, const sam_npy *b, const sam_npy *c, int C, int HW,
                        float **embed, float **hr0, float **hr1) {
    float *t0 = to_cl(a->data, C, HW), *t1 = to_cl(b->data, C / 8, 16 * HW), *t2 = to_cl(c->data, C / 4, 4 * HW);
    *embed = dev_up(be, t0, (size_t)HW * C);
    *hr0 = dev_up(be, t1, (size_t)16 * HW * (C / 8));
    *hr1 = dev_up(be, t2, (size_t)4 * HW * (C / 4));
    sam_free(t0);
    sam_free(t1);
    sam_free(t2);
}

/* One image-predictor call done by hand on the golden cached features. */
typedef struct {
    const char *tag;
    int n_pts;
    float pts[4];
    int labels[2];
    bool box;
    float bx[4];
    bool multimask;
    const char *mask_input; /* file or NULL */
} img_call;

/* The manifest's image_scenario step `tag` as an img_call. */
static bool scenario_call(const char *dir, const char *tag, img_call *ic) {
    memset(ic, 0, sizeof(*ic));
    char p[1200];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(p, 0, &jerr);
    if (!m) return false;
    bool found = false;
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(m, "image_scenario"), i, st) {
        if (strcmp(json_string_value(json_object_get(st, "tag")) ?: "", tag)) continue;
        found = true;
        json_t *pc = json_object_get(st, "point_coords"), *pl = json_object_get(st, "point_labels");
        for (size_t k = 0; k < json_array_size(pc) && k < 2; k++) {
            ic->pts[2 * k] = (float)json_number_value(json_array_get(json_array_get(pc, k), 0));
            ic->pts[2 * k + 1] = (float)json_number_value(json_array_get(json_array_get(pc, k), 1));
            ic->labels[k] = (int)json_integer_value(json_array_get(pl, k));
            ic->n_pts++;
        }
        json_t *bx = json_object_get(st, "box");
        if (json_is_array(bx)) {
            ic->box = true;
            for (int k = 0; k < 4; k++) ic->bx[k] = (float)json_number_value(json_array_get(bx, (size_t)k));
        }
        json_t *mm = json_object_get(st, "multimask_output");
        ic->multimask = mm ? json_is_true(mm) : true;
        if (json_object_get(st, "mask_input_from")) {
            static char mf[256];
            snprintf(mf, sizeof mf, "image/%s_mask_input.npy", tag);
            ic->mask_input = mf;
        }
    }
    json_decref(m);
    return found;
}

static void golden_set(const char *name, sam_backend *be) {
    snprintf(dir_, sizeof dir_, "%s/golden/%s", SAM2D_TEST_DATA, name);
    printf("== golden %s (%s)\n", name, be->name);
    char p[1200];
    sam2d_model_config cfg;
    snprintf(p, sizeof p, "%s/config.yaml", dir_);
    sam2d_status st = sam2d_config_load_yaml(p, &cfg);
    CHECK_MSG(st == SAM2D_OK, "config: %s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    sam2d_checkpoint *ck = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors", dir_);
    st = sam2d_checkpoint_load(p, NULL, &ck);
    CHECK_MSG(st == SAM2D_OK, "checkpoint: %s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    sam_heads *h = NULL;
    st = sam_heads_create(&cfg, ck, be, &h);
    CHECK_MSG(st == SAM2D_OK, "heads: %s", sam2d_last_error());
    sam2d_checkpoint_free(ck);
    if (st != SAM2D_OK) return;

    int C = cfg.d_model, e = cfg.image_size / cfg.backbone_stride, HW = e * e, L = cfg.image_size / 4;
    size_t LL = (size_t)L * L;
    CHECK(sam_heads_low_res_size(h) == L);
    sam_npy a = {0}, b = {0}, c = {0};

    /* get_dense_pe (const memory: host-readable) */
    devsim_record("dense_pe", sam_heads_dense_pe(h), (size_t)HW * C);
    if (load("inter/prompt_encoder_dense_pe.npy", &a)) {
        float *w = to_cl(a.data, C, HW);
        CHECK_CLOSE_ARRAY("dense_pe", sam_heads_dense_pe(h), w, (size_t)HW * C, TOL);
        sam_free(w);
        sam_npy_free(&a);
    }

    /* Prompt encoder on the first video click (s02) + padding point. Outputs are buffers. */
    float *sparse = dev_new(be, 16 * (size_t)C), *dense = dev_new(be, (size_t)HW * C);
    int np = 0;
    if (load("inputs/s02_point_coords_model_space.npy", &a) && load("inputs/s02_point_labels.npy", &b)) {
        np = (int)b.count;
        float coords[32];
        int labels[16];
        for (int i = 0; i < np; i++) {
            coords[2 * i] = a.data[2 * i];
            coords[2 * i + 1] = a.data[2 * i + 1];
            labels[i] = (int)b.data[i];
        }
        coords[2 * np] = coords[2 * np + 1] = 0;
        labels[np++] = -1;
        st = sam_prompt_encode(h, coords, labels, np, NULL, sparse, dense);
        CHECK(st == SAM2D_OK);
        sam_npy_free(&a);
        sam_npy_free(&b);
        float *hs = host_down(be, sparse, (size_t)np * C), *hd = host_down(be, dense, (size_t)HW * C);
        devsim_record("prompt_encoder sparse", hs, (size_t)np * C);
        devsim_record("prompt_encoder dense", hd, (size_t)HW * C);
        if (load("inter/prompt_encoder_out_sparse.npy", &a)) {
            CHECK(a.count == (int64_t)np * C);
            CHECK_CLOSE_ARRAY("prompt_encoder sparse", hs, a.data, (size_t)np * C, TOL);
            sam_npy_free(&a);
        }
        if (load("inter/prompt_encoder_out_dense.npy", &a)) {
            float *w = to_cl(a.data, C, HW);
            CHECK_CLOSE_ARRAY("prompt_encoder dense (no mask)", hd, w, (size_t)HW * C, TOL);
            sam_free(w);
            sam_npy_free(&a);
        }
        sam_free(hs);
        sam_free(hd);
    }

    /* Mask decoder, first call (multimask) on golden inputs uploaded into buffers. */
    float *embed = NULL, *hr0 = NULL, *hr1 = NULL; /* buffers */
    if (load("inter/mask_decoder_in_image_embeddings.npy", &a) &&
        load("inter/forward_image_backbone_fpn0_conv_s0.npy", &b) &&
        load("inter/forward_image_backbone_fpn1_conv_s1.npy", &c)) {
        features_up(be, &a, &b, &c, C, HW, &embed, &hr0, &hr1);
    }
    sam_npy_free(&a);
    sam_npy_free(&b);
    sam_npy_free(&c);
    float *om = dev_new(be, 3 * LL), oi[4], *ot = dev_new(be, 3 * (size_t)C); /* buffers; oi host */
    float *am = dev_new(be, 4 * LL), ai[4], *at = dev_new(be, 4 * (size_t)C);
    if (embed) {
        sam_decoder_out o = {.masks = om, .iou = oi, .sam_tokens = ot};
        st = sam_mask_decode_ex(h, embed, hr0, hr1, sparse, np, dense, true, &o, am, ai, at);
        CHECK_MSG(st == SAM2D_OK, "decode: %s", sam2d_last_error());
        CHECK(o.num_masks == 3);
        CHECK(o.num_tokens == (cfg.use_multimask_token_for_obj_ptr ? 3 : 1));
        float *hm = host_down(be, om, 3 * LL), *ht = host_down(be, ot, (size_t)o.num_tokens * C);
        float *ham = host_down(be, am, 4 * LL);
        devsim_record("mask_decoder low_res_masks", hm, 3 * LL);
        devsim_record("mask_decoder iou", oi, 3);
        devsim_record("mask_decoder sam_tokens", ht, (size_t)o.num_tokens * C);
        devsim_record("mask_decoder object_score_logits", &o.object_score_logit, 1);
        devsim_record("mask_decoder all masks", ham, 4 * LL);
        if (load("inter/mask_decoder_out_low_res_masks.npy", &a)) {
            CHECK_CLOSE_ARRAY("mask_decoder low_res_masks", hm, a.data, 3 * LL, TOL);
            sam_npy_free(&a);
        }
        if (load("inter/mask_decoder_out_iou.npy", &a)) {
            CHECK_CLOSE_ARRAY("mask_decoder iou", oi, a.data, 3, TOL);
            sam_npy_free(&a);
        }
        if (load("inter/mask_decoder_out_sam_tokens.npy", &a)) {
            CHECK_CLOSE_ARRAY("mask_decoder sam_tokens", ht, a.data, (size_t)o.num_tokens * C, TOL);
            sam_npy_free(&a);
        }
        if (load("inter/mask_decoder_out_object_score_logits.npy", &a)) {
            CHECK_CLOSE_ARRAY("mask_decoder object_score_logits", &o.object_score_logit, a.data, 1, TOL);
            sam_npy_free(&a);
        }
        /* the multimask outputs are slices 1..3 of the full outputs */
        CHECK(test_max_abs_diff(hm, ham + LL, 3 * LL, NULL) == 0);
        CHECK(test_max_abs_diff(oi, ai + 1, 3, NULL) == 0);
        /* and a second call gives the same numbers (scratch reuse) without a new buffer */
        size_t in_use = sam_backend_is_devsim(be) ? sam_devsim_bytes_in_use(be) : 0;
        sam_decoder_out o2 = {.masks = am, .iou = ai, .sam_tokens = at};
        st = sam_mask_decode(h, embed, hr0, hr1, sparse, np, dense, true, &o2);
        if (sam_backend_is_devsim(be)) CHECK(sam_devsim_bytes_in_use(be) == in_use);
        float *hm2 = host_down(be, am, 3 * LL);
        CHECK(st == SAM2D_OK && test_max_abs_diff(hm, hm2, 3 * LL, NULL) == 0);
        sam_free(hm);
        sam_free(ht);
        sam_free(ham);
        sam_free(hm2);
    }
    be->buf_free(be, embed);
    be->buf_free(be, hr0);
    be->buf_free(be, hr1);

    /* Image-predictor calls on its cached features (image/features_*): prompt encoder with boxes
     * and mask input, dynamic multimask via stability, upsampling to the image size. */
    int Hv = 0, Wv = 0;
    {
        sam_npy m0;
        if (load("image/i_a_masks.npy", &m0)) {
            Hv = (int)m0.shape[1];
            Wv = (int)m0.shape[2];
            sam_npy_free(&m0);
        }
    }
    if (load("image/features_image_embed.npy", &a) && load("image/features_high_res0.npy", &b) &&
        load("image/features_high_res1.npy", &c) && Hv > 0) {
        features_up(be, &a, &b, &c, C, HW, &embed, &hr0, &hr1);
        /* Prompts as the manifest's image_scenario gives them (video pixels). */
        float *up = dev_new(be, (size_t)3 * Hv * Wv);  /* (3, Hv, Wv) buffer */
        float *lowc = dev_new(be, 3 * LL);             /* (3, L, L) buffer: clamped low-res masks */
        float *mi_dev = dev_new(be, LL);               /* (L, L) buffer: mask prompt */
        const char *tags[] = {"i_a", "i_b_logits", "i_c"};
        for (int t = 0; t < 3; t++) {
            img_call ic;
            CHECK(scenario_call(dir_, tags[t], &ic));
            float coords[16];
            int labels[8], n = 0;
            float S = (float)cfg.image_size;
            if (ic.box) {
                for (int k = 0; k < 2; k++) {
                    coords[2 * n] = ic.bx[2 * k] / (float)Wv * S;
                    coords[2 * n + 1] = ic.bx[2 * k + 1] / (float)Hv * S;
                    labels[n++] = 2 + k;
                }
            }
            for (int k = 0; k < ic.n_pts; k++) {
                coords[2 * n] = ic.pts[2 * k] / (float)Wv * S;
                coords[2 * n + 1] = ic.pts[2 * k + 1] / (float)Hv * S;
                labels[n++] = ic.labels[k];
            }
            coords[2 * n] = coords[2 * n + 1] = 0;
            labels[n++] = -1;
            sam_npy mi = {0};
            bool has_mask = ic.mask_input && load(ic.mask_input, &mi);
            if (has_mask) {
                CHECK(mi.count == (int64_t)LL);
                be->to_dev(be, mi_dev, mi.data, LL * sizeof(float));
            }
            st = sam_prompt_encode(h, coords, labels, n, has_mask ? mi_dev : NULL, sparse, dense);
            CHECK(st == SAM2D_OK);
            sam_npy_free(&mi);
            sam_decoder_out o = {.masks = om, .iou = oi, .sam_tokens = NULL};
            st = sam_mask_decode(h, embed, hr0, hr1, sparse, n, dense, ic.multimask, &o);
            CHECK(st == SAM2D_OK);
            char f[256], lab[128];
            size_t nm = (size_t)o.num_masks * LL;
            float *hm = host_down(be, om, nm);
            for (size_t i = 0; i < nm; i++) hm[i] = hm[i] < -32 ? -32 : hm[i] > 32 ? 32 : hm[i];
            snprintf(lab, sizeof lab, "%s low_res_masks", tags[t]);
            devsim_record(lab, hm, nm);
            snprintf(lab, sizeof lab, "%s iou_predictions", tags[t]);
            devsim_record(lab, oi, (size_t)o.num_masks);
            snprintf(f, sizeof f, "image/%s_low_res_masks.npy", !strcmp(tags[t], "i_b_logits") ? "i_b" : tags[t]);
            if (load(f, &mi)) {
                snprintf(lab, sizeof lab, "%s low_res_masks", tags[t]);
                CHECK(mi.count == (int64_t)nm);
                CHECK_CLOSE_ARRAY(lab, hm, mi.data, nm, TOL);
                sam_npy_free(&mi);
            }
            snprintf(f, sizeof f, "image/%s_iou_predictions.npy", !strcmp(tags[t], "i_b_logits") ? "i_b" : tags[t]);
            if (load(f, &mi)) {
                snprintf(lab, sizeof lab, "%s iou_predictions", tags[t]);
                CHECK_CLOSE_ARRAY(lab, oi, mi.data, (size_t)o.num_masks, TOL);
                sam_npy_free(&mi);
            }
            be->to_dev(be, lowc, hm, nm * sizeof(float));
            be->resize_bilinear(be, up, lowc, o.num_masks, L, L, Hv, Wv, false);
            float *hup = host_down(be, up, (size_t)o.num_masks * Hv * Wv);
            snprintf(lab, sizeof lab, "%s masks", tags[t]);
            devsim_record(lab, hup, (size_t)o.num_masks * Hv * Wv);
            snprintf(f, sizeof f, "image/%s_masks.npy", tags[t]);
            if (load(f, &mi)) {
                snprintf(lab, sizeof lab, "%s masks (logits, %dx%d)", tags[t], Hv, Wv);
                CHECK_CLOSE_ARRAY(lab, hup, mi.data, (size_t)o.num_masks * Hv * Wv, TOL);
                sam_npy_free(&mi);
            }
            sam_free(hm);
            sam_free(hup);
        }
        be->buf_free(be, up);
        be->buf_free(be, lowc);
        be->buf_free(be, mi_dev);
        be->buf_free(be, embed);
        be->buf_free(be, hr0);
        be->buf_free(be, hr1);
    }
    sam_npy_free(&a);
    sam_npy_free(&b);
    sam_npy_free(&c);
    be->buf_free(be, om);
    be->buf_free(be, ot);
    be->buf_free(be, am);
    be->buf_free(be, at);
    be->buf_free(be, sparse);
    be->buf_free(be, dense);
    sam_heads_free(h);
}

/* Random weights at the tiny model's real size: shapes, finiteness, and the
 * multimask / dynamic-stability selection against the decoder's full outputs. */
static void random_tiny(sam_backend *be) {
    printf("== random weights, d_model 256, 1024 px (%s)\n", be->name);
    sam2d_model_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.d_model = 256;
    cfg.image_size = 1024;
    cfg.backbone_stride = 16;
    cfg.num_multimask_outputs = 3;
    cfg.iou_head_depth = 3;
    cfg.iou_head_hidden_dim = 256;
    cfg.decoder_depth = 2;
    cfg.decoder_num_heads = 8;
    cfg.decoder_mlp_dim = 2048;
    cfg.use_high_res_features_in_sam = true;
    cfg.iou_prediction_use_sigmoid = true;
    cfg.pred_obj_scores = true;
    cfg.pred_obj_scores_mlp = true;
    cfg.use_multimask_token_for_obj_ptr = true;
    cfg.dynamic_multimask_via_stability = true;
    cfg.dynamic_multimask_stability_delta = 0.05f;
    cfg.dynamic_multimask_stability_thresh = 0.98f;
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 7, 0.1f, NULL);
    sam_heads *h = NULL;
    sam2d_status st = sam_heads_create_from_loader(&cfg, &L, be, &h);
    sam2d_status fin = sam_weight_loader_finish(&L);
    CHECK_MSG(st == SAM2D_OK && fin == SAM2D_OK, "create: %s", sam2d_last_error());
    if (st != SAM2D_OK || fin != SAM2D_OK) {
        sam_heads_free(h);
        return;
    }
    int C = 256, e = 64, HW = e * e, Lr = 256;
    size_t LL = (size_t)Lr * Lr;
    /* host inputs, uploaded into buffers */
    float *t = sam_malloc((size_t)128 * 128 * (C / 4) * sizeof(float) + LL * (C / 8) * sizeof(float));
    test_fill_random(t, (size_t)HW * C, 1);
    float *embed = dev_up(be, t, (size_t)HW * C);
    test_fill_random(t, LL * (C / 8), 2);
    float *hr0 = dev_up(be, t, LL * (C / 8));
    test_fill_random(t, (size_t)128 * 128 * (C / 4), 3);
    float *hr1 = dev_up(be, t, (size_t)128 * 128 * (C / 4));
    test_fill_random(t, LL, 4);
    float *mask_in = dev_up(be, t, LL);
    sam_free(t);
    float *sparse = dev_new(be, 8 * (size_t)C), *dense = dev_new(be, (size_t)HW * C);
    float *om = dev_new(be, 3 * LL), oi[3], *ot = dev_new(be, 3 * (size_t)C);
    float *am = dev_new(be, 4 * LL), ai[4], *at = dev_new(be, 4 * (size_t)C);
    float coords[6] = {100.f, 200.f, 700.5f, 33.f, 0.f, 0.f};
    int labels[3] = {1, 0, -1};
    st = sam_prompt_encode(h, coords, labels, 3, mask_in, sparse, dense);
    CHECK(st == SAM2D_OK);
    float *hs = host_down(be, sparse, 3 * (size_t)C), *hd = host_down(be, dense, (size_t)HW * C);
    devsim_record("tiny sparse", hs, 3 * (size_t)C);
    devsim_record("tiny dense (mask prompt)", hd, (size_t)HW * C);
    /* the padding point is exactly not_a_point_embed, whatever its coordinates */
    coords[4] = 512.f;
    float *sparse2 = dev_new(be, 3 * (size_t)C), *dense2 = dev_new(be, (size_t)HW * C);
    sam_prompt_encode(h, coords, labels, 3, NULL, sparse2, dense2);
    float *hs2 = host_down(be, sparse2, 3 * (size_t)C), *hd2 = host_down(be, dense2, (size_t)HW * C);
    CHECK(test_max_abs_diff(hs + 2 * C, hs2 + 2 * C, (size_t)C, NULL) == 0);
    CHECK(test_max_abs_diff(hs, hs2, (size_t)2 * C, NULL) == 0);
    /* no mask: every dense row is the same (no_mask_embed) */
    CHECK(test_max_abs_diff(hd2, hd2 + (size_t)(HW - 1) * C, (size_t)C, NULL) == 0);
    devsim_record("tiny dense (no mask)", hd2, (size_t)HW * C);
    /* more points than one host staging batch: each row is that point's own embedding */
    {
        enum { NP = 45 };
        float pc[2 * NP], one[256];
        int pl[NP];
        for (int i = 0; i < NP; i++) {
            pc[2 * i] = (float)(i * 23 % 1024);
            pc[2 * i + 1] = (float)(i * 71 % 1024);
            pl[i] = i % 5 - 1;
        }
        float *many = dev_new(be, (size_t)NP * C), *hmany = sam_malloc((size_t)NP * C * sizeof(float));
        CHECK(sam_prompt_encode(h, pc, pl, NP, NULL, many, dense2) == SAM2D_OK);
        be->to_host(be, hmany, many, (size_t)NP * C * sizeof(float));
        bool rows_ok = true;
        for (int i = 0; i < NP; i++) {
            CHECK(sam_prompt_encode(h, pc + 2 * i, pl + i, 1, NULL, sparse2, dense2) == SAM2D_OK);
            be->to_host(be, one, sparse2, (size_t)C * sizeof(float));
            rows_ok &= !memcmp(one, hmany + (size_t)i * C, (size_t)C * sizeof(float));
        }
        CHECK_MSG(rows_ok, "a %d-point prompt differs from its points encoded one by one", NP);
        devsim_record("tiny 45 points", hmany, (size_t)NP * C);
        be->buf_free(be, many);
        sam_free(hmany);
    }
    be->buf_free(be, sparse2);
    be->buf_free(be, dense2);
    sam_free(hs), sam_free(hd), sam_free(hs2), sam_free(hd2);

    for (int mm = 0; mm < 2; mm++) {
        sam_decoder_out o = {.masks = om, .iou = oi, .sam_tokens = ot};
        st = sam_mask_decode_ex(h, embed, hr0, hr1, sparse, 3, dense, mm == 1, &o, am, ai, at);
        CHECK(st == SAM2D_OK);
        float *hm = host_down(be, om, (size_t)o.num_masks * LL), *ht = host_down(be, ot, (size_t)o.num_tokens * C);
        float *ham = host_down(be, am, 4 * LL), *hat = host_down(be, at, 4 * (size_t)C);
        devsim_record(mm ? "tiny multimask masks" : "tiny single masks", hm, (size_t)o.num_masks * LL);
        devsim_record(mm ? "tiny multimask iou" : "tiny single iou", oi, (size_t)o.num_masks);
        devsim_record(mm ? "tiny multimask tokens" : "tiny single tokens", ht, (size_t)o.num_tokens * C);
        devsim_record(mm ? "tiny multimask score" : "tiny single score", &o.object_score_logit, 1);
        bool finite = true;
        for (size_t i = 0; i < (size_t)o.num_masks * LL; i++) finite &= isfinite(hm[i]);
        for (int i = 0; i < o.num_masks; i++) finite &= isfinite(oi[i]) && oi[i] >= 0 && oi[i] <= 1;
        CHECK(finite && isfinite(o.object_score_logit));
        if (mm) {
            CHECK(o.num_masks == 3 && o.num_tokens == 3);
            CHECK(test_max_abs_diff(ht, hat + C, (size_t)3 * C, NULL) == 0);
        } else {
            CHECK(o.num_masks == 1 && o.num_tokens == 1);
            CHECK(test_max_abs_diff(ht, hat, (size_t)C, NULL) == 0); /* token 0 whatever mask was picked */
            int64_t ai_n = 0, au_n = 0;
            for (size_t i = 0; i < LL; i++) {
                ai_n += ham[i] > 0.05f;
                au_n += ham[i] > -0.05f;
            }
            float stab = au_n ? (float)ai_n / (float)au_n : 1.0f;
            int pick = 0;
            if (stab < 0.98f) {
                pick = 1;
                for (int k = 2; k < 4; k++)
                    if (ai[k] > ai[pick]) pick = k;
            }
            printf("single-mask stability %.4f -> output %d\n", stab, pick);
            CHECK(test_max_abs_diff(hm, ham + pick * LL, LL, NULL) == 0);
            CHECK(oi[0] == ai[pick]);
        }
        sam_free(hm), sam_free(ht), sam_free(ham), sam_free(hat);
    }
    be->buf_free(be, embed);
    be->buf_free(be, hr0);
    be->buf_free(be, hr1);
    be->buf_free(be, mask_in);
    be->buf_free(be, sparse);
    be->buf_free(be, dense);
    be->buf_free(be, om);
    be->buf_free(be, ot);
    be->buf_free(be, am);
    be->buf_free(be, at);
    sam_heads_free(h);
}

static void run_all(sam_backend *be) {
    golden_set("micro", be);
    golden_set("shapes", be);
    random_tiny(be);
}

int main(void) {
    /* the same thread count and fp32 on both, so the kernels do exactly the same work */
    sam_backend *cpu = sam_backend_create("cpu", 2, SAM_PRECISION_FP32);
    CHECK(cpu != NULL);
    if (cpu) run_all(cpu);
    sam_backend_free(cpu);

    sam_backend *ds = sam_backend_create("devsim", 2, SAM_PRECISION_FP32);
    CHECK(ds != NULL);
    if (ds) {
        devsim_compare_begin();
        run_all(ds);
        devsim_compare_end(ds);
    }
    sam_backend_free(ds);
    devsim_records_free();
    CHECK_MSG(sam2d_memory_used() == 0, "leak: %zu bytes", sam2d_memory_used());
    return test_finish();
}
