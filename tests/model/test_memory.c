/* Memory encoder and memory attention against Meta's golden intermediates
 * (micro and shapes sets): first memory-encoder call (propagate preflight on
 * frame 0, object 1) and first memory-attention call (first tracked frame).
 * Tolerance: 1e-4 absolute + 1e-4 relative (|got - want| <= 1e-4 + 1e-4 |want|);
 * bf16-stored memory features within one bf16 step of the reference's.
 *
 * Everything runs twice: on the CPU back end, then on devsim (the device-memory
 * rule enforced), with the inputs uploaded into buffers (to_dev) and the outputs
 * fetched with to_host. Every fetched output of the devsim run must be bit for
 * bit the CPU run's (memcmp), and both within the golden tolerance. */
#include "core/alloc.h"
#include "core/npy.h"
#include "model/bf16.h"
#include "model/memory.h"
#include "ops/devsim.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "devsim_compare.h"
#include "golden_set.h"
#include "test_util.h"

#define ABS_TOL 1e-4
#define REL_TOL 1e-4

static int load(const char *set, const char *name, sam_npy *a) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s/%s", SAM2D_TEST_DATA, set, name);
    sam2d_status st = sam_npy_read(path, a);
    CHECK_MSG(st == SAM2D_OK, "read %s: %s", path, sam2d_last_error());
    return st == SAM2D_OK;
}

static void record(const char *set, const char *what_, const float *x, size_t n) {
    char what[96];
    snprintf(what, sizeof what, "%s %s", set, what_);
    devsim_record(what, x, n);
}

/* Buffers: n floats, uploaded from host (to_dev) or fetched into host memory (to_host). */
static void down(sam_backend *be, float *host, const float *dev, size_t n) {
    be->to_host(be, host, dev, n * sizeof(float));
}

/* (1, C, HW) channels-first -> (HW, C) */
static void cf_to_cl(float *dst, const float *src, int C, int64_t HW) {
    for (int c = 0; c < C; c++)
        for (int64_t i = 0; i < HW; i++) dst[i * C + c] = src[(int64_t)c * HW + i];
}

/* Worst absolute error and whether every element is within abs + rel * |want|. */
static void check_close(const char *set, const char *what, const float *got, const float *want, size_t n) {
    double worst = 0, worst_excess = -1;
    size_t at = 0, at_ex = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (d != d) d = INFINITY;
        if (d > worst) worst = d, at = i;
        double excess = d - (ABS_TOL + REL_TOL * fabs((double)want[i]));
        if (excess > worst_excess || i == 0) worst_excess = excess, at_ex = i;
    }
    printf("%-8s %-36s worst abs err %.3g at %zu (tol %.0e + %.0e rel)\n", set, what, worst, at, ABS_TOL, REL_TOL);
    CHECK_MSG(worst_excess <= 0, "%s %s: element %zu got %.9g want %.9g", set, what, at_ex, (double)got[at_ex],
              (double)want[at_ex]);
}

/* One bf16 step at the magnitude of v (the spacing of bf16 values around it). */
static double bf16_step(float v) {
    uint16_t h = sam_f32_to_bf16(fabsf(v));
    float a = sam_bf16_to_f32(h), b = sam_bf16_to_f32((uint16_t)(h + 1));
    return (double)b - (double)a;
}

static void test_set(const char *set, sam_backend *be) {
    printf("== %s (%s)\n", set, be->name);
    sam2d_model_config cfg;
    sam2d_checkpoint *ck = NULL;
    if (!golden_set_load(set, &cfg, &ck)) return;
    sam2d_status st;
    const bool ds = sam_backend_is_devsim(be);

    const int C = cfg.d_model, D = cfg.mem_dim, S = cfg.image_size;
    const int fh = S / cfg.backbone_stride, fw = fh;
    const int64_t HW = (int64_t)fh * fw;

    /* ---------------- memory encoder ---------------- */
    sam_memory_encoder *enc = NULL;
    st = sam_memory_encoder_create(&cfg, ck, be, &enc);
    CHECK_MSG(st == SAM2D_OK, "encoder create: %s", sam2d_last_error());
    sam_npy pix = {0}, bin = {0}, want_feat = {0}, want_pos = {0}, want_bf16 = {0}, score = {0}, in_masks = {0};
    if (enc && load(set, "inter/neck_out_level2.npy", &pix) &&
        load(set, "state/s05_o1_f000_memenc_binarized_mask_u8.npy", &bin) &&
        load(set, "inter/memory_encoder_out_vision_features.npy", &want_feat) &&
        load(set, "inter/memory_encoder_out_vision_pos_enc0.npy", &want_pos) &&
        load(set, "state/s05_o1_f000_maskmem_features_bf16_as_f32.npy", &want_bf16) &&
        load(set, "state/s05_o1_f000_object_score_logits.npy", &score)) {
        CHECK(pix.count == HW * C && bin.count == (int64_t)S * S && want_feat.count == HW * D);
        float *pix_cl = sam_malloc(sizeof(float) * HW * C);   // (HW, C) host
        float *mask = sam_malloc(sizeof(float) * S * S);      // (S, S) host
        float *feat = sam_malloc(sizeof(float) * HW * D);     // (HW, D) host
        float *pos = sam_malloc(sizeof(float) * HW * D);      // (HW, D) host
        float *wf = sam_malloc(sizeof(float) * HW * D);       // (HW, D) reference, channels-last
        float *wp = sam_malloc(sizeof(float) * HW * D);
        float *wb = sam_malloc(sizeof(float) * HW * D);
        cf_to_cl(pix_cl, pix.data, C, HW);
        /* the caller's binarisation: (high_res > 0) * 20 - 10 */
        for (int64_t i = 0; i < (int64_t)S * S; i++) mask[i] = bin.data[i] > 0.5f ? 10.0f : -10.0f;
        /* micro also holds the scaled mask itself: it must be the same input */
        char p2[1024];
        snprintf(p2, sizeof p2, "%s/golden/%s/inter/memory_encoder_in_masks.npy", SAM2D_TEST_DATA, set);
        if (sam_npy_read(p2, &in_masks) == SAM2D_OK) {
            CHECK_CLOSE_ARRAY("in_masks == binarised*20-10", mask, in_masks.data, (size_t)S * S, 0.0);
            sam_npy_free(&in_masks);
        }
        cf_to_cl(wf, want_feat.data, D, HW);
        cf_to_cl(wp, want_pos.data, D, HW);
        cf_to_cl(wb, want_bf16.data, D, HW);

        float *d_pix = dev_up(be, pix_cl, (size_t)(HW * C)), *d_mask = dev_up(be, mask, (size_t)S * S); /* buffers */
        float *d_feat = dev_up(be, NULL, (size_t)(HW * D)), *d_pos = dev_up(be, NULL, (size_t)(HW * D));
        float *d_feat2 = dev_up(be, NULL, (size_t)(HW * D));
        st = sam_memory_encoder_forward(enc, d_pix, d_mask, d_feat, d_pos);
        CHECK_MSG(st == SAM2D_OK, "encoder forward: %s", sam2d_last_error());
        down(be, feat, d_feat, (size_t)(HW * D));
        down(be, pos, d_pos, (size_t)(HW * D));
        record(set, "memory_encoder vision_features", feat, (size_t)(HW * D));
        record(set, "memory_encoder vision_pos_enc0", pos, (size_t)(HW * D));
        check_close(set, "memory_encoder vision_features", feat, wf, (size_t)(HW * D));
        check_close(set, "memory_encoder vision_pos_enc0", pos, wp, (size_t)(HW * D));

        /* stored memory: + no_obj_embed_spatial when the object is absent, then bf16 */
        if (score.data[0] <= 0) {
            const sam2d_tensor_info *t = sam2d_checkpoint_find(ck, "no_obj_embed_spatial");
            CHECK(t && t->numel == D);
            if (t) {
                float e[1024];
                sam2d_tensor_to_f32(t, e);
                for (int64_t i = 0; i < HW * D; i++) feat[i] += e[i % D];
            }
        }
        sam_bf16_round_array(feat, (size_t)(HW * D));
        int64_t off = 0, far = 0;
        double worst_steps = 0;
        for (int64_t i = 0; i < HW * D; i++) {
            if (feat[i] == wb[i]) continue;
            off++;
            double steps = fabs((double)feat[i] - wb[i]) / bf16_step(wb[i]);
            if (steps > worst_steps) worst_steps = steps;
            if (steps > 1.0 + 1e-9) far++;
        }
        printf("%-8s %-36s %lld of %lld differ, worst %.2f bf16 steps (tol 1)\n", set, "maskmem_features bf16",
               (long long)off, (long long)(HW * D), worst_steps);
        CHECK_MSG(far == 0, "%s: %lld bf16 memory features more than one step off", set, (long long)far);

        /* a second call reuses the scratch: same result, nothing allocated (host or device) */
        size_t used = sam2d_memory_used(), in_use = ds ? sam_devsim_bytes_in_use(be) : 0;
        st = sam_memory_encoder_forward(enc, d_pix, d_mask, d_feat2, d_pos);
        CHECK(st == SAM2D_OK && sam2d_memory_used() == used);
        if (ds) CHECK(sam_devsim_bytes_in_use(be) == in_use);
        float *feat2 = sam_malloc(sizeof(float) * HW * D); // (HW, D) host
        down(be, feat2, d_feat2, (size_t)(HW * D));
        sam_bf16_round_array(feat2, (size_t)(HW * D));
        if (score.data[0] > 0) CHECK(memcmp(feat, feat2, sizeof(float) * HW * D) == 0);
        sam_free(feat2);
        be->buf_free(be, d_pix), be->buf_free(be, d_mask), be->buf_free(be, d_feat), be->buf_free(be, d_pos);
        be->buf_free(be, d_feat2);
        sam_free(pix_cl), sam_free(mask), sam_free(feat), sam_free(pos), sam_free(wf), sam_free(wp), sam_free(wb);
    }
    sam_npy_free(&pix), sam_npy_free(&bin), sam_npy_free(&want_feat), sam_npy_free(&want_pos);
    sam_npy_free(&want_bf16), sam_npy_free(&score);
    sam_memory_encoder_free(enc);

    /* ---------------- memory attention ---------------- */
    sam_memory_attention *att = NULL;
    st = sam_memory_attention_create(&cfg, ck, be, &att);
    CHECK_MSG(st == SAM2D_OK, "attention create: %s", sam2d_last_error());
    sam_npy curr = {0}, curr_pos = {0}, mem = {0}, mem_pos = {0}, l0in = {0}, out = {0};
    sam_npy lay[2];
    memset(lay, 0, sizeof lay);
    if (att && load(set, "inter/memory_attention_in_curr.npy", &curr) &&
        load(set, "inter/memory_attention_in_curr_pos.npy", &curr_pos) &&
        load(set, "inter/memory_attention_in_memory.npy", &mem) &&
        load(set, "inter/memory_attention_in_memory_pos.npy", &mem_pos) &&
        load(set, "inter/memory_attention_layer0_in_tgt.npy", &l0in) &&
        load(set, "inter/memory_attention_out.npy", &out) &&
        load(set, "inter/memory_attention_layer0_out.npy", &lay[0]) &&
        load(set, "inter/memory_attention_layer1_out.npy", &lay[1])) {
        const int M = (int)mem.shape[0], nptr = 2; /* manifest: memory_attention_num_obj_ptr_tokens */
        const int NL = cfg.mem_attn_num_layers;
        CHECK(curr.count == HW * C && mem.count == (int64_t)M * D && NL == 2);
        float *o = sam_malloc(sizeof(float) * HW * C);           // (HW, C) host
        float *lo = sam_malloc(sizeof(float) * NL * HW * C);     // (NL, HW, C) host
        /* the layer-0 input is curr + 0.1 * curr_pos */
        float *tin = sam_malloc(sizeof(float) * HW * C);
        for (int64_t i = 0; i < HW * C; i++) tin[i] = curr.data[i] + 0.1f * curr_pos.data[i];
        check_close(set, "memory_attention layer0_in_tgt", tin, l0in.data, (size_t)(HW * C));

        /* buffers */
        float *d_curr = dev_up(be, curr.data, (size_t)(HW * C)), *d_cpos = dev_up(be, curr_pos.data, (size_t)(HW * C));
        float *d_mem = dev_up(be, mem.data, (size_t)M * D), *d_mpos = dev_up(be, mem_pos.data, (size_t)M * D);
        float *d_o = dev_up(be, NULL, (size_t)(HW * C)), *d_lo = dev_up(be, NULL, (size_t)(NL * HW * C));
        st = sam_memory_attention_forward_layers(att, d_curr, d_cpos, d_mem, d_mpos, M, nptr, fh, fw, d_o, d_lo);
        CHECK_MSG(st == SAM2D_OK, "attention forward: %s", sam2d_last_error());
        down(be, o, d_o, (size_t)(HW * C));
        down(be, lo, d_lo, (size_t)(NL * HW * C));
        record(set, "memory_attention layer outputs", lo, (size_t)(NL * HW * C));
        record(set, "memory_attention out", o, (size_t)(HW * C));
        check_close(set, "memory_attention layer0_out", lo, lay[0].data, (size_t)(HW * C));
        check_close(set, "memory_attention layer1_out", lo + HW * C, lay[1].data, (size_t)(HW * C));
        check_close(set, "memory_attention out", o, out.data, (size_t)(HW * C));

        /* Another feature size in between (RoPE tables recomputed, then restored):
         * a half-size map with two memory frames (rope_k_repeat) and 2 pointer tokens. */
        {
            int sh = fh / 2, sw = fw / 2;
            int64_t shw = (int64_t)sh * sw;
            int sM = (int)(2 * shw + 2);
            float *c2 = sam_malloc(sizeof(float) * shw * C), *cp2 = sam_malloc(sizeof(float) * shw * C);
            float *m2 = sam_malloc(sizeof(float) * sM * D), *mp2 = sam_malloc(sizeof(float) * sM * D);
            float *o2 = sam_malloc(sizeof(float) * shw * C), *o3 = sam_malloc(sizeof(float) * shw * C);
            test_fill_random(c2, shw * C, 1), test_fill_random(cp2, shw * C, 2);
            test_fill_random(m2, sM * D, 3), test_fill_random(mp2, sM * D, 4);
            float *d_c2 = dev_up(be, c2, (size_t)(shw * C)), *d_cp2 = dev_up(be, cp2, (size_t)(shw * C));
            float *d_m2 = dev_up(be, m2, (size_t)sM * D), *d_mp2 = dev_up(be, mp2, (size_t)sM * D);
            float *d_o2 = dev_up(be, NULL, (size_t)(shw * C));
            st = sam_memory_attention_forward(att, d_c2, d_cp2, d_m2, d_mp2, sM, 2, sh, sw, d_o2);
            CHECK(st == SAM2D_OK);
            down(be, o2, d_o2, (size_t)(shw * C));
            record(set, "memory_attention half size", o2, (size_t)(shw * C));
            int finite = 1;
            for (int64_t i = 0; i < shw * C; i++) finite &= isfinite(o2[i]) != 0;
            CHECK(finite);
            /* swapping the two spatial memory frames (keys and values together) must not
             * change the result: each frame gets the same RoPE positions */
            memcpy(o3, m2, sizeof(float) * shw * D);
            memmove(m2, m2 + shw * D, sizeof(float) * shw * D);
            memcpy(m2 + shw * D, o3, sizeof(float) * shw * D);
            memcpy(o3, mp2, sizeof(float) * shw * D);
            memmove(mp2, mp2 + shw * D, sizeof(float) * shw * D);
            memcpy(mp2 + shw * D, o3, sizeof(float) * shw * D);
            be->to_dev(be, d_m2, m2, sizeof(float) * sM * D);
            be->to_dev(be, d_mp2, mp2, sizeof(float) * sM * D);
            st = sam_memory_attention_forward(att, d_c2, d_cp2, d_m2, d_mp2, sM, 2, sh, sw, d_o2);
            CHECK(st == SAM2D_OK);
            down(be, o3, d_o2, (size_t)(shw * C));
            CHECK_CLOSE_ARRAY("frame order invariance (rope_k_repeat)", o3, o2, (size_t)(shw * C), 1e-5);
            /* a bank that is not whole frames is refused */
            st = sam_memory_attention_forward(att, d_c2, d_cp2, d_m2, d_mp2, sM, 3, sh, sw, d_o2);
            CHECK(st == SAM2D_ERR_INVALID_ARG);
            be->buf_free(be, d_c2), be->buf_free(be, d_cp2), be->buf_free(be, d_m2), be->buf_free(be, d_mp2);
            be->buf_free(be, d_o2);
            sam_free(c2), sam_free(cp2), sam_free(m2), sam_free(mp2), sam_free(o2), sam_free(o3);
        }
        /* back at the golden size: same answer, no allocation (host or device) */
        size_t used = sam2d_memory_used(), in_use = ds ? sam_devsim_bytes_in_use(be) : 0;
        st = sam_memory_attention_forward(att, d_curr, d_cpos, d_mem, d_mpos, M, nptr, fh, fw, d_o);
        CHECK(st == SAM2D_OK);
        CHECK(sam2d_memory_used() == used);
        if (ds) CHECK(sam_devsim_bytes_in_use(be) == in_use);
        down(be, o, d_o, (size_t)(HW * C));
        record(set, "memory_attention out (second call)", o, (size_t)(HW * C));
        check_close(set, "memory_attention out (second call)", o, out.data, (size_t)(HW * C));
        be->buf_free(be, d_curr), be->buf_free(be, d_cpos), be->buf_free(be, d_mem), be->buf_free(be, d_mpos);
        be->buf_free(be, d_o), be->buf_free(be, d_lo);
        sam_free(o), sam_free(lo), sam_free(tin);
    }
    sam_npy_free(&curr), sam_npy_free(&curr_pos), sam_npy_free(&mem), sam_npy_free(&mem_pos);
    sam_npy_free(&l0in), sam_npy_free(&out), sam_npy_free(&lay[0]), sam_npy_free(&lay[1]);
    sam_memory_attention_free(att);
    sam2d_checkpoint_free(ck);
}

int main(void) {
    /* the same thread count and fp32 on both, so the kernels do exactly the same work */
    sam_backend *cpu = sam_backend_create("cpu", 2, SAM_PRECISION_FP32);
    CHECK(cpu != NULL);
    if (cpu) {
        test_set("micro", cpu);
        test_set("shapes", cpu);
    }
    sam_backend_free(cpu);

    sam_backend *ds = sam_backend_create("devsim", 2, SAM_PRECISION_FP32);
    CHECK(ds != NULL);
    if (ds) {
        devsim_compare_begin();
        test_set("micro", ds);
        test_set("shapes", ds);
        devsim_compare_end(ds);
    }
    sam_backend_free(ds);
    devsim_records_free();
    CHECK_MSG(sam2d_memory_used() == 0, "leak: %zu bytes", sam2d_memory_used());
    return test_finish();
}
