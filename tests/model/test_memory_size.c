/* Memory encoder / attention at real model width (SAM 2.1 base_plus dims,
 * random weights, small image so it stays fast): scratch reserved at create
 * covers the largest bank the config allows (no allocation per call), larger
 * banks (many conditioning frames) still work, outputs stay finite. On the
 * CPU back end and on devsim (the device-memory rule enforced). */
#include "core/alloc.h"
#include "model/memory.h"
#include "model/weights.h"
#include "ops/devsim.h"
#include "ops/ops.h"
#include "sam2d/config.h"
#include "test_util.h"

/* Whether the n floats of buffer x are finite (fetched with to_host). */
static int all_finite(sam_backend *be, const float *x, size_t n) {
    float *h = sam_malloc(n * sizeof(float));
    if (!h) return 0;
    be->to_host(be, h, x, n * sizeof(float));
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(h[i])) ok = 0;
    sam_free(h);
    return ok;
}

/* Host bytes plus, on devsim, buffer bytes: what a call must not grow. */
static size_t mem_now(sam_backend *be) {
    return sam2d_memory_used() + (sam_backend_is_devsim(be) ? sam_devsim_bytes_in_use(be) : 0);
}

/* n floats in a new buffer, from host (to_dev) or uninitialised. */
static float *dev_up(sam_backend *be, const float *host, size_t n) {
    float *d = be->buf_alloc(be, n * sizeof(float));
    if (d && host) be->to_dev(be, d, host, n * sizeof(float));
    return d;
}

static void run(sam_backend *be) {
    sam2d_model_config cfg;
    sam2d_status st = sam2d_config_preset("sam2.1_base_plus", &cfg);
    CHECK_MSG(st == SAM2D_OK, "preset: %s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    cfg.image_size = 256; /* 16 x 16 tokens: the real widths at a small size */

    const int C = cfg.d_model, D = cfg.mem_dim, S = cfg.image_size;
    const int fh = S / cfg.backbone_stride;
    const int64_t HW = (int64_t)fh * fh;
    printf("== %s: d_model %d mem_dim %d layers %d dff %d heads %d, %dx%d tokens\n", be->name, C, D,
           cfg.mem_attn_num_layers, cfg.mem_attn_dim_feedforward, cfg.mem_attn_num_heads, fh, fh);

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
        float *pix = sam_malloc(sizeof(float) * HW * C), *mask = sam_malloc(sizeof(float) * S * S); /* host */
        test_fill_random(pix, (size_t)(HW * C), 11);
        for (int64_t i = 0; i < (int64_t)S * S; i++) mask[i] = ((i / S) / 32 + (i % S) / 32) % 2 ? 10.0f : -10.0f;
        float *d_pix = dev_up(be, pix, (size_t)(HW * C)), *d_mask = dev_up(be, mask, (size_t)S * S); /* buffers */
        float *feat = dev_up(be, NULL, (size_t)(HW * D)), *pos = dev_up(be, NULL, (size_t)(HW * D));
        size_t used = mem_now(be);
        st = sam_memory_encoder_forward(enc, d_pix, d_mask, feat, pos);
        CHECK(st == SAM2D_OK);
        CHECK_MSG(mem_now(be) == used, "encoder allocated %zd bytes in forward", (ssize_t)(mem_now(be) - used));
        CHECK(all_finite(be, feat, (size_t)(HW * D)) && all_finite(be, pos, (size_t)(HW * D)));
        /* sine encoding: y channels first; position (0,0) has sin(2pi/(h+eps)) in channel 0 */
        float p0 = sam_backend_read_f32(be, pos);
        CHECK(fabsf(p0 - sinf((float)(2.0 * M_PI) / (float)fh)) < 1e-5f);
        be->buf_free(be, d_pix), be->buf_free(be, d_mask), be->buf_free(be, feat), be->buf_free(be, pos);
        sam_free(pix), sam_free(mask);
    }

    if (att) {
        const int ptr_tokens = cfg.max_obj_ptrs_in_encoder * (C / D);
        const int max_frames = cfg.num_maskmem + 5; /* beyond the reservation: many conditioning frames */
        const int64_t Mmax = (int64_t)max_frames * HW + ptr_tokens;
        float *t = sam_malloc(sizeof(float) * Mmax * D); /* host, for the uploads */
        test_fill_random(t, (size_t)(HW * C), 1);
        float *curr = dev_up(be, t, (size_t)(HW * C));
        test_fill_random(t, (size_t)(HW * C), 2);
        float *cpos = dev_up(be, t, (size_t)(HW * C));
        test_fill_random(t, (size_t)(Mmax * D), 3);
        float *mem = dev_up(be, t, (size_t)(Mmax * D));
        test_fill_random(t, (size_t)(Mmax * D), 4);
        float *mpos = dev_up(be, t, (size_t)(Mmax * D));
        sam_free(t);
        float *out = dev_up(be, NULL, (size_t)(HW * C));

        /* the largest bank reserved for: num_maskmem frames + every pointer token */
        int M = (int)(cfg.num_maskmem * HW + ptr_tokens);
        size_t used = mem_now(be);
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, M, ptr_tokens, fh, fh, out);
        CHECK_MSG(st == SAM2D_OK, "forward: %s", sam2d_last_error());
        CHECK_MSG(mem_now(be) == used, "attention allocated %zd bytes for the reserved bank",
                  (ssize_t)(mem_now(be) - used));
        CHECK(all_finite(be, out, (size_t)(HW * C)));

        /* no pointer tokens, one frame */
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)HW, 0, fh, fh, out);
        CHECK(st == SAM2D_OK && all_finite(be, out, (size_t)(HW * C)));

        /* more frames than reserved: works; grows once, then stays */
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)Mmax, ptr_tokens, fh, fh, out);
        CHECK(st == SAM2D_OK && all_finite(be, out, (size_t)(HW * C)));
        used = mem_now(be);
        st = sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)Mmax, ptr_tokens, fh, fh, out);
        CHECK(st == SAM2D_OK);
        CHECK_MSG(mem_now(be) == used, "attention allocated again for the same bank");

        /* bad arguments are refused */
        CHECK(sam_memory_attention_forward(att, curr, cpos, mem, mpos, 0, 0, fh, fh, out) == SAM2D_ERR_INVALID_ARG);
        CHECK(sam_memory_attention_forward(att, curr, cpos, mem, mpos, (int)HW, (int)HW + 1, fh, fh, out) ==
              SAM2D_ERR_INVALID_ARG);
        CHECK(sam_memory_attention_forward(att, NULL, cpos, mem, mpos, (int)HW, 0, fh, fh, out) ==
              SAM2D_ERR_INVALID_ARG);
        be->buf_free(be, curr), be->buf_free(be, cpos), be->buf_free(be, mem), be->buf_free(be, mpos);
        be->buf_free(be, out);
    }
    sam_memory_encoder_free(enc);
    sam_memory_attention_free(att);
    sam_weight_set_free(&ws);
}

int main(void) {
    /* the CPU back end, then devsim (inputs in buffers, outputs fetched with to_host) */
    const char *devs[] = {"cpu", "devsim"};
    for (int i = 0; i < 2; i++) {
        sam_backend *be = sam_backend_create(devs[i], 2, SAM_PRECISION_FP32);
        CHECK_MSG(be != NULL, "%s: %s", devs[i], sam2d_last_error());
        if (!be) continue;
        run(be);
        if (sam_backend_is_devsim(be)) CHECK(sam_devsim_bytes_in_use(be) == 0);
        sam_backend_free(be);
    }
    return test_finish();
}
