/* Memory encoder / attention at real model width (SAM 2.1 base_plus dims,
 * random weights, small image so it stays fast): scratch reserved at create
 * covers the largest bank the config allows (no allocation per call), larger
 * banks (many conditioning frames) still work, outputs stay finite. */
#include "core/alloc.h"
#include "model/memory.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/config.h"
#include "test_util.h"

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int main(void) {
    sam2d_model_config cfg;
    sam2d_status st = sam2d_config_preset("sam2.1_base_plus", &cfg);
    CHECK_MSG(st == SAM2D_OK, "preset: %s", sam2d_last_error());
    if (st != SAM2D_OK) return test_finish();
    cfg.image_size = 256; /* 16 x 16 tokens: the real widths at a small size */
    sam_backend *be = sam_backend_cpu_create(0);
    CHECK(be != NULL);
    if (!be) return test_finish();

    const int C = cfg.d_model, D = cfg.mem_dim, S = cfg.image_size;
    const int fh = S / cfg.backbone_stride;
    const int64_t HW = (int64_t)fh * fh;
    printf("d_model %d mem_dim %d layers %d dff %d heads %d, %dx%d tokens\n", C, D, cfg.mem_attn_num_layers,
           cfg.mem_attn_dim_feedforward, cfg.mem_attn_num_heads, fh, fh);

    sam_weight_loader L;
    sam_weight_set ws;
    sam_weight_set_init(&ws);
    sam_weight_loader_init_random(&L, 7, 0.05f, &ws);
    sam_memory_encoder *enc = NULL;
    sam_memory_attention *att = NULL;
    st = sam_memory_encoder_create_from_loader(&cfg, &L, be, &enc);
    CHECK_MSG(st == SAM2D_OK, "encoder: %s", sam2d_last_error());
    st = sam_memory_attention_create_from_loader(&cfg, &L, be, &att);
    CHECK_MSG(st == SAM2D_OK, "attention: %s", sam2d_last_error());
    CHECK(sam_weight_loader_finish(&L) == SAM2D_OK);
    CHECK(ws.n == 0); /* the modules own their weights, not the loader's set */

    if (enc) {
        float *pix = sam_malloc(sizeof(float) * HW * C), *mask = sam_malloc(sizeof(float) * S * S);
        float *feat = sam_malloc(sizeof(float) * HW * D), *pos = sam_malloc(sizeof(float) * HW * D);
        test_fill_random(pix, (size_t)(HW * C), 11);
        for (int64_t i = 0; i < (int64_t)S * S; i++) mask[i] = ((i / S) / 32 + (i % S) / 32) % 2 ? 10.0f : -10.0f;
        size_t used = sam2d_memory_used();
        st = sam_memory_encoder_forward(enc, pix, mask, feat, pos);
        CHECK(st == SAM2D_OK);
        CHECK_MSG(sam2d_memory_used() == used, "encoder allocated %zd bytes in forward",
                  (ssize_t)(sam2d_memory_used() - used));
        CHECK(all_finite(feat, (size_t)(HW * D)) && all_finite(pos, (size_t)(HW * D)));
        /* sine encoding: y channels first; position (0,0) has sin(2pi/(h+eps)) in channel 0 */
        CHECK(fabsf(pos[0] - sinf((float)(2.0 * M_PI) / (float)fh)) < 1e-5f);
        sam_free(pix), sam_free(mask), sam_free(feat), sam_free(pos);
    }

    if (att) {
        const int ptr_tokens = cfg.max_obj_ptrs_in_encoder * (C / D);
        const int max_frames = cfg.num_maskmem + 5; /* beyond the reservation: many conditioning frames */
        const int64_t Mmax = (int64_t)max_frames * HW + ptr_tokens;
        float *curr = sam_malloc(sizeof(float) * HW * C), *cpos = sam_malloc(sizeof(float) * HW * C);
        float *mem = sam_malloc(sizeof(float) * Mmax * D), *mpos = sam_malloc(sizeof(float) * Mmax * D);
        float *out = sam_malloc(sizeof(float) * HW * C);
        test_fill_random(curr, (size_t)(HW * C), 1), test_fill_random(cpos, (size_t)(HW * C), 2);
        test_fill_random(mem, (size_t)(Mmax * D), 3), test_fill_random(mpos, (size_t)(Mmax * D), 4);

        /* the largest bank reserved for: num_maskmem frames + every pointer token */
        int M = (int)(cfg.num_maskmem * HW + ptr_tokens);
        size_t used = sam2d_memory_used();
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, M, ptr_tokens, fh, fh, out);
        CHECK_MSG(st == SAM2D_OK, "forward: %s", sam2d_last_error());
        CHECK_MSG(sam2d_memory_used() == used, "attention allocated %zd bytes for the reserved bank",
                  (ssize_t)(sam2d_memory_used() - used));
        CHECK(all_finite(out, (size_t)(HW * C)));

        /* no pointer tokens, one frame */
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)HW, 0, fh, fh, out);
        CHECK(st == SAM2D_OK && all_finite(out, (size_t)(HW * C)));

        /* more frames than reserved: works; grows once, then stays */
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)Mmax, ptr_tokens, fh, fh, out);
        CHECK(st == SAM2D_OK && all_finite(out, (size_t)(HW * C)));
        used = sam2d_memory_used();
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)Mmax, ptr_tokens, fh, fh, out);
        CHECK(st == SAM2D_OK);
        CHECK_MSG(sam2d_memory_used() == used, "attention allocated again for the same bank");

        /* bad arguments are refused */
        CHECK(sam_memory_attention_forward(att, curr, cpos, mem, mpos, 0, 0, fh, fh, out) == SAM2D_ERR_INVALID_ARG);
        CHECK(sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)HW, (int)HW + 1, fh, fh, out) ==
              SAM2D_ERR_INVALID_ARG);
        CHECK(sam_memory_attention_forward(att, NULL, cpos, mem, mpos, (int)HW, 0, fh, fh, out) ==
              SAM2D_ERR_INVALID_ARG);
        sam_free(curr), sam_free(cpos), sam_free(mem), sam_free(mpos), sam_free(out);
    }
    sam_memory_encoder_free(enc);
    sam_memory_attention_free(att);
    sam_weight_set_free(&ws);

    sam_backend_cpu_free(be);
    return test_finish();
}
