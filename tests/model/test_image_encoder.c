/* Image encoder against the golden dumps of Meta's code (micro: random
 * weights; shapes: trained weights), stage by stage: patch embed, position
 * embedding, Hiera blocks and stages, FPN levels and sine encodings,
 * conv_s0/conv_s1 features, and the image predictor's features.
 * Tolerance: 1e-4 absolute everywhere (float32 with another summation order). */
#include <stdbool.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "model/image_encoder.h"
#include "model/preprocess.h"
#include "model/weights.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "model/encoder_config.h"
#include "test_util.h"

#define TOL 1e-4

/* The golden sets' architecture (config.yaml of micro and shapes): a tiny-like
 * SAM 2.1 with small sizes. Filled by hand so that this test does not depend on
 * the YAML loader; everything the encoder reads is set. */
static void golden_config(sam2d_model_config *c) {
    memset(c, 0, sizeof(*c));
    c->embed_dim = 24;
    c->num_heads = 1;
    c->num_stages = 4;
    int st[4] = {1, 2, 3, 2}, ws[4] = {8, 4, 14, 7}, bc[4] = {192, 96, 48, 24};
    memcpy(c->stages, st, sizeof(st));
    memcpy(c->window_spec, ws, sizeof(ws));
    memcpy(c->backbone_channel_list, bc, sizeof(bc));
    c->n_global_att_blocks = 1;
    c->global_att_blocks[0] = 4;
    c->window_pos_embed_bkg_spatial_size[0] = c->window_pos_embed_bkg_spatial_size[1] = 7;
    c->q_pool = 3;
    c->q_stride[0] = c->q_stride[1] = 2;
    c->mlp_ratio = 4.0f;
    c->dim_mul = c->head_mul = 2.0f;
    c->d_model = 32;
    c->n_fpn_top_down_levels = 2;
    c->fpn_top_down_levels[0] = 2;
    c->fpn_top_down_levels[1] = 3;
    c->scalp = 1;
    c->neck_pos_num_feats = 32;
    c->neck_pos_temperature = 10000.0f;
    c->neck_pos_normalize = true;
    c->image_size = 256;
    c->backbone_stride = 16;
    c->use_high_res_features_in_sam = true;
}

/* The set's own config.yaml through the YAML loader, checked against the hand-filled values. */
static bool set_config(const char *set, sam2d_model_config *cfg) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/golden/%s/config.yaml", SAM2D_TEST_DATA, set);
    sam2d_model_config hand;
    golden_config(&hand);
    if (sam2d_config_load_yaml(path, cfg) != SAM2D_OK) {
        fprintf(stderr, "%s: %s\n", path, sam2d_last_error());
        return false;
    }
    CHECK_MSG(encoder_fields_equal(cfg, &hand), "%s: encoder fields differ from the expected ones", path);
    return true;
}

static bool try_load(const char *set, const char *rel, sam_npy *a) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/golden/%s/%s", SAM2D_TEST_DATA, set, rel);
    FILE *f = fopen(path, "rb");
    if (!f) return false; /* the shapes set omits some files */
    fclose(f);
    if (sam_npy_read(path, a) != SAM2D_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, sam2d_last_error());
        test_failed_++;
        return false;
    }
    return true;
}

/* (C, HW) planar -> (HW, C). */
static float *to_hwc(const float *chw, int C, size_t HW) {
    float *o = sam_malloc(sizeof(float) * C * HW);
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < HW; i++) o[i * C + c] = chw[(size_t)c * HW + i];
    return o;
}

/* Compare a channels-last result with a dump; bchw says whether the dump is BCHW. */
static int compare(const char *set, const char *rel, const float *got, size_t n, int C, bool bchw) {
    sam_npy a = {0};
    if (!try_load(set, rel, &a)) return 0;
    CHECK_MSG((size_t)a.count == n, "%s/%s: %lld elements, expected %zu", set, rel, (long long)a.count, n);
    if ((size_t)a.count == n) {
        float *want = bchw ? to_hwc(a.data, C, n / C) : a.data;
        char name[160];
        snprintf(name, sizeof(name), "%s %s", set, rel);
        CHECK_CLOSE_ARRAY(name, got, want, n, TOL);
        if (bchw) sam_free(want);
    }
    sam_npy_free(&a);
    return 1;
}

static sam2d_checkpoint *load_ckpt(const char *set) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/golden/%s/model.safetensors", SAM2D_TEST_DATA, set);
    sam2d_checkpoint *ck = NULL;
    sam2d_checkpoint_params cp = sam2d_checkpoint_default_params();
    if (sam2d_checkpoint_load(path, &cp, &ck) != SAM2D_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, sam2d_last_error());
        return NULL;
    }
    return ck;
}

static void golden_set(sam_backend *be, const char *set, const char *frame_suffix) {
    printf("== %s\n", set);
    sam2d_model_config cfg;
    bool have_cfg = set_config(set, &cfg);
    CHECK(have_cfg);
    if (!have_cfg) return;
    sam2d_checkpoint *ck = load_ckpt(set);
    CHECK(ck != NULL);
    if (!ck) return;
    sam_image_encoder *enc = NULL;
    sam2d_status st = sam_image_encoder_create(&cfg, ck, be, &enc);
    CHECK_MSG(st == SAM2D_OK, "create: %s", sam2d_last_error());
    if (st != SAM2D_OK) {
        sam2d_checkpoint_free(ck);
        return;
    }
    int S = cfg.image_size, nb = sam_image_encoder_num_blocks(enc);
    CHECK(nb == 8);

    /* Taps for every intermediate the dumps hold. */
    float *taps_patch = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_PATCH_EMBED, 0));
    float *taps_pos = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_POS_EMBED, 0));
    float *blk[8] = {0}, *stg[4] = {0}, *nout[4] = {0}, *npos[4] = {0};
    CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_PATCH_EMBED, 0, taps_patch) == SAM2D_OK);
    CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_POS_EMBED, 0, taps_pos) == SAM2D_OK);
    for (int i = 0; i < nb; i++) {
        blk[i] = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_BLOCK, i));
        CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_BLOCK, i, blk[i]) == SAM2D_OK);
    }
    for (int l = 0; l < 4; l++) {
        stg[l] = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_STAGE, l));
        nout[l] = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_NECK_OUT, l));
        npos[l] = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_NECK_POS, l));
        CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_STAGE, l, stg[l]) == SAM2D_OK);
        CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_NECK_OUT, l, nout[l]) == SAM2D_OK);
        CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_NECK_POS, l, npos[l]) == SAM2D_OK);
    }
    CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_BLOCK, nb, blk[0]) != SAM2D_OK); /* out of range */

    size_t nf = sam_image_features_floats(&cfg);
    float *fbuf = sam_malloc(sizeof(float) * nf);
    sam_image_features f;
    sam_image_features_bind(&cfg, fbuf, &f);
    CHECK(f.num_levels == 3);
    CHECK(f.h[0] == S / 4 && f.h[1] == S / 8 && f.h[2] == S / 16 && f.w[2] == S / 16);
    CHECK(f.c[0] == cfg.d_model / 8 && f.c[1] == cfg.d_model / 4 && f.c[2] == cfg.d_model);

    /* Video path input: frame 0 resized by Pillow (dumped) then normalised. */
    char rel[256];
    sam_npy fr = {0};
    snprintf(rel, sizeof(rel), "frames_resized_u8%s.npy", frame_suffix);
    CHECK(try_load(set, rel, &fr));
    float *img = sam_malloc(sizeof(float) * 3 * S * S);
    uint8_t *u8 = sam_malloc((size_t)3 * S * S);
    for (size_t i = 0; i < (size_t)3 * S * S && fr.data; i++) u8[i] = (uint8_t)fr.data[i];
    sam_normalize_u8(u8, S, img);

    size_t mem_before = sam2d_memory_used();
    st = sam_image_encoder_forward(enc, img, &f);
    CHECK_MSG(st == SAM2D_OK, "forward: %s", sam2d_last_error());
    CHECK_MSG(sam2d_memory_used() == mem_before, "forward allocated %zd bytes",
              (ssize_t)(sam2d_memory_used() - mem_before));

    int compared = 0;
    size_t n0 = (size_t)(S / 4) * (S / 4);
    compared += compare(set, "inter/trunk_patch_embed_out.npy", taps_patch, n0 * cfg.embed_dim, cfg.embed_dim, false);
    compared += compare(set, "inter/trunk_pos_embed.npy", taps_pos, n0 * cfg.embed_dim, cfg.embed_dim, false);
    for (int i = 0; i < nb; i++) {
        snprintf(rel, sizeof(rel), "inter/trunk_block%d_out.npy", i);
        size_t n = sam_image_encoder_tap_size(enc, SAM_ENC_TAP_BLOCK, i);
        compared += compare(set, rel, blk[i], n, 0, false);
    }
    int chans[4] = {24, 48, 96, 192};
    for (int l = 0; l < 4; l++) {
        snprintf(rel, sizeof(rel), "inter/trunk_stage%d_out.npy", l);
        compared += compare(set, rel, stg[l], sam_image_encoder_tap_size(enc, SAM_ENC_TAP_STAGE, l), chans[l], true);
        snprintf(rel, sizeof(rel), "inter/neck_out_level%d.npy", l);
        size_t n = sam_image_encoder_tap_size(enc, SAM_ENC_TAP_NECK_OUT, l);
        compared += compare(set, rel, nout[l], n, cfg.d_model, true);
        snprintf(rel, sizeof(rel), "inter/neck_pos_level%d.npy", l);
        compared += compare(set, rel, npos[l], n, cfg.d_model, true);
    }
    for (int l = 0; l < 3; l++) {
        size_t n = (size_t)f.h[l] * f.w[l];
        snprintf(rel, sizeof(rel), "inter/neck_pos_level%d.npy", l);
        compared += compare(set, rel, f.pos[l], n * cfg.d_model, cfg.d_model, true);
    }
    compared += compare(set, "inter/neck_out_level2.npy", f.feat[2], (size_t)f.h[2] * f.w[2] * f.c[2], f.c[2], true);
    compared += compare(set, "inter/forward_image_backbone_fpn0_conv_s0.npy", f.feat[0], (size_t)f.h[0] * f.w[0] * f.c[0],
                        f.c[0], true);
    compared += compare(set, "inter/forward_image_backbone_fpn1_conv_s1.npy", f.feat[1], (size_t)f.h[1] * f.w[1] * f.c[1],
                        f.c[1], true);
    printf("%s: %d dumps compared\n", set, compared);
    CHECK(compared >= 6);

    /* A second forward gives the same bits (no state carried between frames). */
    float *again = sam_malloc(sizeof(float) * nf);
    sam_image_features f2;
    sam_image_features_bind(&cfg, again, &f2);
    CHECK(sam_image_encoder_forward(enc, img, &f2) == SAM2D_OK);
    CHECK(memcmp(again, fbuf, sizeof(float) * nf) == 0);

    /* Features bound with only the top level's position encoding: same features, less memory. */
    size_t nf_top = sam_image_features_floats_ex(&cfg, SAM_FEATURES_POS_TOP);
    CHECK(nf_top == nf - (size_t)(f.h[0] * f.w[0] + f.h[1] * f.w[1]) * cfg.d_model);
    float *topbuf = sam_malloc(sizeof(float) * nf_top);
    sam_image_features ft;
    sam_image_features_bind_ex(&cfg, topbuf, SAM_FEATURES_POS_TOP, &ft);
    CHECK(ft.pos[0] == NULL && ft.pos[1] == NULL && ft.pos[2] != NULL);
    CHECK(sam_image_encoder_forward(enc, img, &ft) == SAM2D_OK);
    bool same = true;
    for (int l = 0; l < 3; l++)
        same = same && memcmp(ft.feat[l], f.feat[l], sizeof(float) * f.h[l] * f.w[l] * f.c[l]) == 0;
    same = same && memcmp(ft.pos[2], f.pos[2], sizeof(float) * f.h[2] * f.w[2] * cfg.d_model) == 0;
    CHECK(same);
    float *pos0 = sam_malloc(sizeof(float) * f.h[0] * f.w[0] * cfg.d_model);
    CHECK(sam_image_encoder_pos(enc, 0, pos0) == SAM2D_OK);
    CHECK(memcmp(pos0, f.pos[0], sizeof(float) * f.h[0] * f.w[0] * cfg.d_model) == 0);
    CHECK(sam_image_encoder_pos(enc, 4, pos0) == SAM2D_ERR_INVALID_ARG);
    sam_free(pos0);
    sam_free(topbuf);

    /* Image predictor path: decoded frame -> torchvision bilinear (no antialias, as the golden
     * run) -> encoder; image_embed additionally has no_mem_embed added by the predictor. */
    sam_npy dec = {0};
    snprintf(rel, sizeof(rel), "frames_decoded_u8%s.npy", frame_suffix);
    if (try_load(set, rel, &dec)) {
        int H = (int)dec.shape[1], W = (int)dec.shape[2];
        uint8_t *d8 = sam_malloc((size_t)H * W * 3);
        for (size_t i = 0; i < (size_t)H * W * 3; i++) d8[i] = (uint8_t)dec.data[i];
        CHECK(sam_preprocess_image(be, d8, H, W, S, false, img) == SAM2D_OK);
        CHECK(sam_image_encoder_forward(enc, img, &f) == SAM2D_OK);
        compare(set, "image/features_high_res0.npy", f.feat[0], (size_t)f.h[0] * f.w[0] * f.c[0], f.c[0], true);
        compare(set, "image/features_high_res1.npy", f.feat[1], (size_t)f.h[1] * f.w[1] * f.c[1], f.c[1], true);
        const sam2d_tensor_info *nme = sam2d_checkpoint_find(ck, "no_mem_embed");
        CHECK(nme && nme->numel == cfg.d_model);
        if (nme && nme->numel == cfg.d_model) {
            float *add = sam_malloc(sizeof(float) * cfg.d_model);
            sam2d_tensor_to_f32(nme, add);
            size_t n = (size_t)f.h[2] * f.w[2];
            for (size_t i = 0; i < n; i++)
                for (int c = 0; c < cfg.d_model; c++) f.feat[2][i * cfg.d_model + c] += add[c];
            compare(set, "image/features_image_embed.npy", f.feat[2], n * cfg.d_model, cfg.d_model, true);
            sam_free(add);
        }
        sam_free(d8);
        sam_npy_free(&dec);
    }

    sam_free(again);
    sam_free(img);
    sam_free(u8);
    sam_npy_free(&fr);
    sam_free(fbuf);
    sam_free(taps_patch);
    sam_free(taps_pos);
    for (int i = 0; i < nb; i++) sam_free(blk[i]);
    for (int l = 0; l < 4; l++) {
        sam_free(stg[l]);
        sam_free(nout[l]);
        sam_free(npos[l]);
    }
    sam_image_encoder_free(enc);
    sam2d_checkpoint_free(ck);
}

/* The encoder on devsim (the device-memory rule enforced on the CPU): input and
 * features in buffers, taps in host arrays; every output, every tap and every
 * level's position encoding (assembled on the device by copies) bit-identical
 * to the CPU back end's, which runs the same kernels. The model's use of
 * sam_image_encoder_pos (a host write into const memory before it is
 * published) works there too. */
static void devsim_same(sam_backend *cpu, const char *set) {
    printf("== %s on devsim vs cpu\n", set);
    sam2d_model_config cfg;
    sam2d_checkpoint *ck = NULL;
    if (!set_config(set, &cfg) || !(ck = load_ckpt(set))) {
        CHECK(false);
        return;
    }
    sam_backend *ds = sam_backend_create("devsim", 2, SAM_PRECISION_FP32);
    CHECK_MSG(ds != NULL, "devsim: %s", sam2d_last_error());
    sam_image_encoder *ec = NULL, *ed = NULL;
    CHECK(sam_image_encoder_create(&cfg, ck, cpu, &ec) == SAM2D_OK);
    if (ds) CHECK_MSG(sam_image_encoder_create(&cfg, ck, ds, &ed) == SAM2D_OK, "create on devsim: %s", sam2d_last_error());
    if (!ec || !ed) goto out;
    CHECK(sam_image_encoder_weight_bytes(ec) == sam_image_encoder_weight_bytes(ed));

    /* every tap, on both */
    enum { NT = 64 };
    float *tc[NT] = {0}, *td[NT] = {0};
    size_t tn[NT] = {0};
    int nt = 0;
    for (int k = SAM_ENC_TAP_PATCH_EMBED; k <= SAM_ENC_TAP_NECK_POS; k++)
        for (int i = 0; nt < NT; i++) {
            size_t n = sam_image_encoder_tap_size(ec, (sam_encoder_tap_kind)k, i);
            if (!n) break;
            tn[nt] = n;
            tc[nt] = sam_malloc(n * sizeof(float));
            td[nt] = sam_malloc(n * sizeof(float));
            CHECK(sam_image_encoder_set_tap(ec, (sam_encoder_tap_kind)k, i, tc[nt]) == SAM2D_OK);
            CHECK(sam_image_encoder_set_tap(ed, (sam_encoder_tap_kind)k, i, td[nt]) == SAM2D_OK);
            nt++;
            if (k <= SAM_ENC_TAP_POS_EMBED) break; /* single taps */
        }
    const int S = cfg.image_size;
    const size_t ni = (size_t)S * S * 3, nf = sam_image_features_floats(&cfg);
    float *img = sam_malloc(ni * sizeof(float)), *fc = sam_malloc(nf * sizeof(float)), *fd = sam_malloc(nf * sizeof(float));
    test_fill_random(img, ni, 7);
    float *img_dev = ds->buf_alloc(ds, ni * sizeof(float)), *feat_dev = ds->buf_alloc(ds, nf * sizeof(float));
    CHECK(img_dev && feat_dev);
    ds->to_dev(ds, img_dev, img, ni * sizeof(float));
    sam_image_features f_c, f_d;
    sam_image_features_bind(&cfg, fc, &f_c);
    sam_image_features_bind(&cfg, feat_dev, &f_d);
    CHECK(sam_image_encoder_forward(ec, img, &f_c) == SAM2D_OK);
    size_t before = sam2d_memory_used();
    CHECK_MSG(sam_image_encoder_forward(ed, img_dev, &f_d) == SAM2D_OK, "devsim forward: %s", sam2d_last_error());
    CHECK_MSG(sam2d_memory_used() == before, "devsim forward allocated %zd bytes", (ssize_t)(sam2d_memory_used() - before));
    ds->to_host(ds, fd, feat_dev, nf * sizeof(float));
    CHECK_MSG(memcmp(fc, fd, nf * sizeof(float)) == 0, "%s: devsim features (with every level's position) differ", set);
    int same = 0;
    for (int t = 0; t < nt; t++) same += memcmp(tc[t], td[t], tn[t] * sizeof(float)) == 0;
    CHECK_MSG(same == nt, "%s: %d of %d taps identical", set, same, nt);
    printf("%s: features and %d of %d taps bit-identical on devsim\n", set, same, nt);

    /* the top level's encoding into const memory (as model.c does at load), then read by a kernel */
    const int top = f_c.num_levels - 1;
    const size_t np = (size_t)f_c.h[top] * f_c.w[top] * cfg.d_model;
    float *pc = ds->const_alloc(ds, np * sizeof(float)), *pb = ds->buf_alloc(ds, np * sizeof(float));
    float *ph = sam_malloc(np * sizeof(float));
    CHECK(pc && pb && ph);
    if (pc && pb && ph) {
        CHECK(sam_image_encoder_pos(ed, top, pc) == SAM2D_OK);
        ds->const_publish(ds, pc, np * sizeof(float));
        CHECK(memcmp(pc, f_c.pos[top], np * sizeof(float)) == 0); /* const memory is host-readable */
        ds->copy(ds, pb, pc, np * sizeof(float));
        ds->to_host(ds, ph, pb, np * sizeof(float));
        CHECK(memcmp(ph, f_c.pos[top], np * sizeof(float)) == 0);
    }
    ds->const_free(ds, pc);
    ds->buf_free(ds, pb);
    sam_free(ph);
    ds->buf_free(ds, img_dev);
    ds->buf_free(ds, feat_dev);
    sam_free(img);
    sam_free(fc);
    sam_free(fd);
    for (int t = 0; t < nt; t++) {
        sam_free(tc[t]);
        sam_free(td[t]);
    }
out:
    sam_image_encoder_free(ec);
    sam_image_encoder_free(ed);
    sam_backend_free(ds);
    sam2d_checkpoint_free(ck);
}

/* A config that does not match the checkpoint fails with one message naming the problems. */
static void mismatch(sam_backend *be) {
    sam2d_model_config cfg;
    golden_config(&cfg);
    cfg.embed_dim = 16; /* every trunk tensor changes shape */
    cfg.backbone_channel_list[0] = 128;
    cfg.backbone_channel_list[1] = 64;
    cfg.backbone_channel_list[2] = 32;
    cfg.backbone_channel_list[3] = 16;
    sam2d_checkpoint *ck = load_ckpt("micro");
    CHECK(ck != NULL);
    if (!ck) return;
    sam_image_encoder *enc = NULL;
    size_t before = sam2d_memory_used();
    sam2d_status st = sam_image_encoder_create(&cfg, ck, be, &enc);
    CHECK(st == SAM2D_ERR_MISMATCH && enc == NULL);
    /* Through a loader: the full list (every block's tensors, the neck, conv_s0/s1) is available. */
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, NULL);
    CHECK(sam_image_encoder_create_from_loader(&cfg, &L, be, &enc) == SAM2D_ERR_MISMATCH);
    const char *full = sam_weight_loader_message(&L);
    CHECK(strstr(full, "blocks.7.mlp.layers.1.weight") != NULL && strstr(full, "neck.convs.3.conv.weight") != NULL);
    CHECK(L.nerr > 50);
    CHECK(sam_weight_loader_finish(&L) == SAM2D_ERR_MISMATCH);
    const char *msg = sam2d_last_error();
    printf("mismatch message: %.200s...\n", msg);
    CHECK(strstr(msg, "pos_embed") != NULL && strstr(msg, "patch_embed") != NULL);
    CHECK(sam2d_memory_used() == before); /* nothing leaked on failure */

    /* Inconsistent config (channel list vs trunk) is refused before loading. */
    golden_config(&cfg);
    cfg.backbone_channel_list[0] = 100;
    CHECK(sam_image_encoder_create(&cfg, ck, be, &enc) == SAM2D_ERR_MISMATCH);
    sam2d_checkpoint_free(ck);
}

/* The same weights at another input size (320: 80x80 patch grid, padded 14-windows on
 * the 20x20 stage, pooled windows re-tiling a 10x10 map): runs, right shapes, finite. */
static void other_size(sam_backend *be) {
    sam2d_model_config cfg;
    golden_config(&cfg);
    cfg.image_size = 320;
    sam2d_checkpoint *ck = load_ckpt("micro");
    if (!ck) return;
    sam_image_encoder *enc = NULL;
    sam2d_status st = sam_image_encoder_create(&cfg, ck, be, &enc);
    CHECK_MSG(st == SAM2D_OK, "create at 320: %s", sam2d_last_error());
    if (st == SAM2D_OK) {
        size_t nf = sam_image_features_floats(&cfg);
        float *buf = sam_malloc(sizeof(float) * nf), *img = sam_malloc(sizeof(float) * 320 * 320 * 3);
        sam_image_features f;
        sam_image_features_bind(&cfg, buf, &f);
        CHECK(f.h[0] == 80 && f.h[1] == 40 && f.h[2] == 20 && f.w[2] == 20);
        test_fill_random(img, (size_t)320 * 320 * 3, 99);
        CHECK(sam_image_encoder_forward(enc, img, &f) == SAM2D_OK);
        size_t bad = 0;
        for (size_t i = 0; i < nf; i++) bad += !isfinite(buf[i]);
        CHECK(bad == 0);
        sam_free(buf);
        sam_free(img);
        sam_image_encoder_free(enc);
    }
    /* 300 px: 75x75 grid is not a multiple of the 8x8 window embedding (the reference fails too). */
    cfg.image_size = 300;
    CHECK(sam_image_encoder_create(&cfg, ck, be, &enc) == SAM2D_ERR_UNSUPPORTED);
    sam2d_checkpoint_free(ck);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(0);
    CHECK(be != NULL);
    if (!be) return test_finish();
    golden_set(be, "micro", "");
    golden_set(be, "shapes", "_f000");
    mismatch(be);
    other_size(be);
    devsim_same(be, "micro");
    devsim_same(be, "shapes");
    { /* failed loads free their const memory on a device back end too; one
       * encoder made and freed first grows devsim's own bookkeeping of const
       * blocks (kept until the back end goes), which is not the encoder's */
        sam_backend *ds = sam_backend_create("devsim", 2, SAM_PRECISION_FP32);
        CHECK(ds != NULL);
        sam2d_model_config cfg;
        sam2d_checkpoint *ck = ds && set_config("micro", &cfg) ? load_ckpt("micro") : NULL;
        sam_image_encoder *enc = NULL;
        if (ck) CHECK(sam_image_encoder_create(&cfg, ck, ds, &enc) == SAM2D_OK);
        sam_image_encoder_free(enc);
        sam2d_checkpoint_free(ck);
        if (ds) mismatch(ds);
        sam_backend_free(ds);
    }
    sam_backend_cpu_free(be);
    return test_finish();
}
