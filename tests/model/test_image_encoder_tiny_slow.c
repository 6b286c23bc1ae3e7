/* The tiny preset's image encoder at 1024 px on random weights of the real
 * shapes (no checkpoint): shapes, finiteness, no allocation per forward.
 * Also prints the time of one forward (informative, never asserted). */
#include <time.h>

#include "core/alloc.h"
#include "model/image_encoder.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/config.h"
#include "model/encoder_config.h"
#include "test_util.h"

/* sam2.1_hiera_t.yaml (trunk + neck), filled by hand to keep this test independent of the presets. */
static void tiny_config(sam2d_model_config *c) {
    memset(c, 0, sizeof(*c));
    c->embed_dim = 96;
    c->num_heads = 1;
    c->num_stages = 4;
    int st[4] = {1, 2, 7, 2}, ws[4] = {8, 4, 14, 7}, bc[4] = {768, 384, 192, 96};
    memcpy(c->stages, st, sizeof(st));
    memcpy(c->window_spec, ws, sizeof(ws));
    memcpy(c->backbone_channel_list, bc, sizeof(bc));
    c->n_global_att_blocks = 3;
    c->global_att_blocks[0] = 5;
    c->global_att_blocks[1] = 7;
    c->global_att_blocks[2] = 9;
    c->window_pos_embed_bkg_spatial_size[0] = c->window_pos_embed_bkg_spatial_size[1] = 7;
    c->q_pool = 3;
    c->q_stride[0] = c->q_stride[1] = 2;
    c->mlp_ratio = 4.0f;
    c->dim_mul = c->head_mul = 2.0f;
    c->d_model = 256;
    c->n_fpn_top_down_levels = 2;
    c->fpn_top_down_levels[0] = 2;
    c->fpn_top_down_levels[1] = 3;
    c->scalp = 1;
    c->neck_pos_num_feats = 256;
    c->neck_pos_temperature = 10000.0f;
    c->neck_pos_normalize = true;
    c->image_size = 1024;
    c->backbone_stride = 16;
    c->use_high_res_features_in_sam = true;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    sam2d_model_config cfg, hand;
    tiny_config(&hand);
    CHECK_MSG(sam2d_config_preset("sam2.1_tiny", &cfg) == SAM2D_OK, "%s", sam2d_last_error());
    CHECK_MSG(encoder_fields_equal(&cfg, &hand), "preset sam2.1_tiny: encoder fields differ from sam2.1_hiera_t.yaml");
    cfg = hand; /* run what the YAML says even if the preset disagrees */
    sam_backend *be = sam_backend_cpu_create(0);
    CHECK(be != NULL);
    if (!be) return test_finish();

    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 42, 0.05f, NULL);
    sam_image_encoder *enc = NULL;
    sam2d_status st = sam_image_encoder_create_from_loader(&cfg, &L, be, &enc);
    CHECK_MSG(st == SAM2D_OK, "create: %s", sam2d_last_error());
    CHECK(sam_weight_loader_finish(&L) == SAM2D_OK);
    if (st != SAM2D_OK) {
        sam_backend_cpu_free(be);
        return test_finish();
    }
    CHECK(sam_image_encoder_num_blocks(enc) == 12);
    /* 12 blocks * 12 tensors + 3 shortcut projections * 2 + patch 2 + pos 2 + neck 8 + conv_s 4. */
    CHECK_MSG(L.nloaded == 12 * 12 + 6 + 2 + 2 + 8 + 4, "loaded %d tensors", L.nloaded);
    printf("weights %.1f MiB, activation arena %.1f MiB\n", sam_image_encoder_weight_bytes(enc) / 1048576.0,
           sam_image_encoder_arena_bytes(enc) / 1048576.0);
    /* Bands, chunks and shared buffers keep the activations small (138 MiB before they did): the
     * stage-1 map (24 MiB) plus bounded scratch. */
    CHECK_MSG(sam_image_encoder_arena_bytes(enc) <= (size_t)64 << 20, "arena %.1f MiB > 64",
              sam_image_encoder_arena_bytes(enc) / 1048576.0);

    size_t nf = sam_image_features_floats(&cfg);
    CHECK(nf == (size_t)256 * 256 * (32 + 256) + (size_t)128 * 128 * (64 + 256) + (size_t)64 * 64 * (256 + 256));
    float *fbuf = sam_malloc(sizeof(float) * nf);
    sam_image_features f;
    sam_image_features_bind(&cfg, fbuf, &f);
    CHECK(f.num_levels == 3 && f.h[0] == 256 && f.w[1] == 128 && f.h[2] == 64);
    CHECK(f.c[0] == 32 && f.c[1] == 64 && f.c[2] == 256);

    size_t S = 1024;
    float *img = sam_malloc(sizeof(float) * S * S * 3);
    test_fill_random(img, S * S * 3, 1234);
    /* A stage-3 block (64x64 map, 14x14 windows padded to 70) and the last block. */
    float *t5 = sam_malloc(sizeof(float) * sam_image_encoder_tap_size(enc, SAM_ENC_TAP_BLOCK, 4));
    CHECK(sam_image_encoder_tap_size(enc, SAM_ENC_TAP_BLOCK, 4) == (size_t)64 * 64 * 384);
    CHECK(sam_image_encoder_tap_size(enc, SAM_ENC_TAP_BLOCK, 11) == (size_t)32 * 32 * 768);
    CHECK(sam_image_encoder_set_tap(enc, SAM_ENC_TAP_BLOCK, 4, t5) == SAM2D_OK);

    /* The first forward may grow the back end's own scratch; the second must allocate nothing. */
    double t0 = now_s();
    st = sam_image_encoder_forward(enc, img, &f);
    double t1 = now_s();
    CHECK_MSG(st == SAM2D_OK, "forward: %s", sam2d_last_error());
    size_t before = sam2d_memory_used();
    CHECK(sam_image_encoder_forward(enc, img, &f) == SAM2D_OK);
    double t2 = now_s();
    CHECK_MSG(sam2d_memory_used() == before, "forward allocated %zd bytes", (ssize_t)(sam2d_memory_used() - before));
    printf("tiny image encoder at 1024 px: %.2f s first forward, %.2f s second\n", t1 - t0, t2 - t1);

    size_t bad = 0, zero = 0;
    for (size_t i = 0; i < nf; i++) {
        if (!isfinite(fbuf[i])) bad++;
        if (fbuf[i] == 0.0f) zero++;
    }
    for (size_t i = 0; i < (size_t)64 * 64 * 384; i++)
        if (!isfinite(t5[i])) bad++;
    CHECK_MSG(bad == 0, "%zu non-finite values", bad);
    CHECK_MSG(zero < nf / 100, "%zu zeros of %zu", zero, nf);
    /* Level 2 differs from level 1 upsampled (top-down only into 2 and 3): just sanity that maps vary. */
    double mean = 0, var = 0;
    size_t n2 = (size_t)64 * 64 * 256;
    for (size_t i = 0; i < n2; i++) mean += f.feat[2][i];
    mean /= (double)n2;
    for (size_t i = 0; i < n2; i++) var += (f.feat[2][i] - mean) * (f.feat[2][i] - mean);
    var /= (double)n2;
    printf("level 2 mean %.4f var %.4f\n", mean, var);
    CHECK(var > 1e-6);

    sam_free(t5);
    sam_free(img);
    sam_free(fbuf);
    sam_image_encoder_free(enc);
    sam_backend_cpu_free(be);
    return test_finish();
}
