/* Every built-in preset (SAM 2 and 2.1, tiny .. large): the encoder builds from
 * random weights of the real shapes, loads exactly the tensors the config
 * enumeration lists for it (image_encoder.* and sam_mask_decoder.conv_s0/s1),
 * and runs at 512 px (smaller than 1024 to stay quick) with finite outputs. */
#include "core/alloc.h"
#include "model/image_encoder.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/config.h"
#include "test_util.h"

static bool is_encoder_tensor(const char *name) {
    return strncmp(name, "image_encoder.", 14) == 0 || strcmp(name, "sam_mask_decoder.conv_s0.weight") == 0 ||
           strcmp(name, "sam_mask_decoder.conv_s0.bias") == 0 || strcmp(name, "sam_mask_decoder.conv_s1.weight") == 0 ||
           strcmp(name, "sam_mask_decoder.conv_s1.bias") == 0;
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(0);
    CHECK(be != NULL);
    if (!be) return test_finish();
    char names[512];
    snprintf(names, sizeof(names), "%s", sam2d_config_preset_names());
    for (char *tok = strtok(names, ","); tok; tok = strtok(NULL, ",")) {
        sam2d_model_config cfg;
        CHECK_MSG(sam2d_config_preset(tok, &cfg) == SAM2D_OK, "%s: %s", tok, sam2d_last_error());
        /* What the config says the encoder owns. */
        sam2d_config_tensor *ts = NULL;
        size_t nt = 0;
        CHECK(sam2d_config_tensors(&cfg, &ts, &nt) == SAM2D_OK);
        int64_t want_floats = 0;
        int want_tensors = 0;
        for (size_t i = 0; i < nt; i++) {
            if (!is_encoder_tensor(ts[i].name)) continue;
            int64_t n = 1;
            for (int d = 0; d < ts[i].ndim; d++) n *= ts[i].shape[d];
            want_floats += n;
            want_tensors++;
        }
        sam2d_config_tensors_free(ts);

        cfg.image_size = 512;
        sam_weight_loader L;
        sam_weight_loader_init_random(&L, 7, 0.05f, NULL);
        sam_image_encoder *enc = NULL;
        sam2d_status st = sam_image_encoder_create_from_loader(&cfg, &L, be, &enc);
        CHECK_MSG(st == SAM2D_OK, "%s: %s", tok, sam2d_last_error());
        CHECK(sam_weight_loader_finish(&L) == SAM2D_OK);
        if (st != SAM2D_OK) continue;
        /* Weight bytes = checkpoint floats + the tables made at load: the position table
         * (H0*W0*C) and the neck's sine tables ((h + w) * d_model/2 per square level). */
        int64_t table = (int64_t)(512 / 4) * (512 / 4) * cfg.embed_dim;
        for (int l = 0; l < cfg.num_stages; l++) {
            int64_t hw = (int64_t)(sam_image_encoder_tap_size(enc, SAM_ENC_TAP_NECK_POS, l) / (size_t)cfg.d_model);
            int64_t side = (int64_t)llround(sqrt((double)hw));
            CHECK(side * side == hw);
            table += 2 * side * (cfg.d_model / 2);
        }
        int64_t got_floats = (int64_t)(sam_image_encoder_weight_bytes(enc) / sizeof(float)) - table;
        CHECK_MSG(L.nloaded == want_tensors && got_floats == want_floats, "%s: loaded %d tensors / %lld floats, config lists %d / %lld",
                  tok, L.nloaded, (long long)got_floats, want_tensors, (long long)want_floats);

        size_t nf = sam_image_features_floats(&cfg);
        float *buf = sam_malloc(sizeof(float) * nf), *img = sam_malloc(sizeof(float) * 512 * 512 * 3);
        test_fill_random(img, (size_t)512 * 512 * 3, 5);
        sam_image_features f;
        sam_image_features_bind(&cfg, buf, &f);
        st = sam_image_encoder_forward(enc, img, &f);
        CHECK_MSG(st == SAM2D_OK, "%s forward: %s", tok, sam2d_last_error());
        size_t bad = 0;
        for (size_t i = 0; i < nf; i++) bad += !isfinite(buf[i]);
        CHECK_MSG(bad == 0, "%s: %zu non-finite", tok, bad);
        printf("%-18s %2d blocks, %6.1f MiB weights, %6.1f MiB activations at 512 px: ok\n", tok,
               sam_image_encoder_num_blocks(enc), sam_image_encoder_weight_bytes(enc) / 1048576.0,
               sam_image_encoder_arena_bytes(enc) / 1048576.0);
        sam_free(buf);
        sam_free(img);
        sam_image_encoder_free(enc);
    }
    sam_backend_cpu_free(be);
    return test_finish();
}
