/* Memory attention against a direct double-precision transcription of the
 * reference's layer (RoPEAttention with v_proj on every memory token, then
 * out_proj), so the reordered cross-attention (raw kv-wide values attended,
 * out_proj folded into v_proj), the per-head calls (2 heads here), the FFN
 * row chunks (1089 tokens: more than one chunk) and rope_k_repeat over two
 * memory frames plus pointer tokens are all checked at once.
 * Random weights; small widths so the plain reference stays fast.
 * Tolerance: 2e-5 absolute on outputs of magnitude ~0.1 (float32 vs double). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/memory.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/config.h"
#include "test_util.h"

#define SEED 77
#define SCALE 0.15f

typedef struct {
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
} ref_attn;

typedef struct {
    ref_attn sa, ca;
    const float *l1_w, *l1_b, *l2_w, *l2_b, *n1_w, *n1_b, *n2_w, *n2_b, *n3_w, *n3_b;
} ref_layer;

/* Same names, shapes and order as the module asks for them, so a random
 * loader with the same seed hands out the same values. */
static void fetch_attn(sam_weight_loader *L, ref_attn *w, const char *name, int i, int C, int Ci, int kv) {
    const char *p = "memory_attention.layers";
    w->q_w = sam_weight(L, SAM_W2(Ci, C), "%s.%d.%s.q_proj.weight", p, i, name);
    w->q_b = sam_weight(L, SAM_W1(Ci), "%s.%d.%s.q_proj.bias", p, i, name);
    w->k_w = sam_weight(L, SAM_W2(Ci, kv), "%s.%d.%s.k_proj.weight", p, i, name);
    w->k_b = sam_weight(L, SAM_W1(Ci), "%s.%d.%s.k_proj.bias", p, i, name);
    w->v_w = sam_weight(L, SAM_W2(Ci, kv), "%s.%d.%s.v_proj.weight", p, i, name);
    w->v_b = sam_weight(L, SAM_W1(Ci), "%s.%d.%s.v_proj.bias", p, i, name);
    w->o_w = sam_weight(L, SAM_W2(C, Ci), "%s.%d.%s.out_proj.weight", p, i, name);
    w->o_b = sam_weight(L, SAM_W1(C), "%s.%d.%s.out_proj.bias", p, i, name);
}

/* y (n, out) = x (n, in) . w (out, in)^T + b */
static void lin(double *y, const double *x, const float *w, const float *b, int64_t n, int out, int in) {
    for (int64_t r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) acc += x[r * in + i] * w[(int64_t)o * in + i];
            y[r * out + o] = acc;
        }
}

static void lnorm(double *y, const double *x, const float *g, const float *b, int64_t n, int C) {
    for (int64_t r = 0; r < n; r++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[r * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[r * C + c] - m) * (x[r * C + c] - m);
        v /= C;
        for (int c = 0; c < C; c++) y[r * C + c] = (x[r * C + c] - m) / sqrt(v + 1e-5) * g[c] + b[c];
    }
}

/* Axial RoPE of compute_axial_cis / apply_rotary_enc: rows r < n_rope use grid
 * token r % (w*h) (rope_k_repeat); pairs j < hd/4 rotate with x, the rest with y. */
static void rope(double *x, int64_t n_rope, int heads, int hd, int w, int h, float theta) {
    const int q4 = hd / 4;
    for (int64_t r = 0; r < n_rope; r++) {
        const int64_t tok = r % ((int64_t)w * h);
        const float tx = (float)(tok % w), ty = (float)(tok / w);
        for (int hh = 0; hh < heads; hh++)
            for (int j = 0; j < hd / 2; j++) {
                const float f = 1.0f / powf(theta, (float)(4 * (j % q4)) / (float)hd);
                const float ang = (j < q4 ? tx : ty) * f;
                double *v = x + r * heads * hd + hh * hd + 2 * j;
                const double c = cos(ang), s = sin(ang), re = v[0], im = v[1];
                v[0] = re * c - im * s;
                v[1] = re * s + im * c;
            }
    }
}

/* out (Lq, C) = out_proj(MHA(rope(q_proj(qin)), rope(k_proj(kin))[:n_rope], v_proj(vin))) */
static void ref_attention(double *out, const ref_attn *w, const double *qin, int64_t Lq, const double *kin,
                          const double *vin, int64_t Lk, int kv, int64_t n_rope, int C, int Ci, int heads, int fw,
                          int fh, float theta) {
    const int hd = Ci / heads;
    double *q = malloc(sizeof(double) * Lq * Ci), *k = malloc(sizeof(double) * Lk * Ci);
    double *v = malloc(sizeof(double) * Lk * Ci), *o = calloc((size_t)Lq * Ci, sizeof(double));
    double *s = malloc(sizeof(double) * Lk);
    lin(q, qin, w->q_w, w->q_b, Lq, Ci, C);
    lin(k, kin, w->k_w, w->k_b, Lk, Ci, kv);
    lin(v, vin, w->v_w, w->v_b, Lk, Ci, kv);
    rope(q, Lq, heads, hd, fw, fh, theta);
    rope(k, n_rope, heads, hd, fw, fh, theta);
    for (int hh = 0; hh < heads; hh++)
        for (int64_t i = 0; i < Lq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < Lk; j++) {
                double d = 0;
                for (int e = 0; e < hd; e++) d += q[i * Ci + hh * hd + e] * k[j * Ci + hh * hd + e];
                s[j] = d / sqrt((double)hd);
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < Lk; j++) sum += (s[j] = exp(s[j] - mx));
            double *oi = o + i * Ci + hh * hd;
            for (int64_t j = 0; j < Lk; j++)
                for (int e = 0; e < hd; e++) oi[e] += s[j] / sum * v[j * Ci + hh * hd + e];
        }
    lin(out, o, w->o_w, w->o_b, Lq, C, Ci);
    free(q), free(k), free(v), free(o), free(s);
}

int main(void) {
    sam2d_model_config cfg;
    sam2d_status st = sam2d_config_preset("sam2.1_tiny", &cfg);
    CHECK_MSG(st == SAM2D_OK, "preset: %s", sam2d_last_error());
    if (st != SAM2D_OK) return test_finish();
    /* narrow widths, two heads, one layer; 528 px -> 33 x 33 = 1089 tokens */
    cfg.image_size = 528;
    cfg.d_model = 64;
    cfg.mem_dim = cfg.mem_attn_kv_in_dim = cfg.mem_pos_num_feats = 32;
    cfg.mem_attn_num_heads = 2;
    cfg.mem_attn_dim_feedforward = 128;
    cfg.mem_attn_num_layers = 1;
    const int C = cfg.d_model, kv = cfg.mem_dim, heads = cfg.mem_attn_num_heads, Ci = C, dff = 128;
    const int fh = cfg.image_size / cfg.backbone_stride, fw = fh;
    const int64_t Lq = (int64_t)fh * fw;
    const int n_frames = 2, n_ptr_tok = 6;
    const int64_t n_rope = n_frames * Lq, M = n_rope + n_ptr_tok;
    CHECK(Lq > 1024); /* more than one FFN chunk */

    sam_backend *be = sam_backend_cpu_create(2);
    CHECK(be != NULL);
    if (!be) return test_finish();
    sam_weight_set ws_mod, ws_ref;
    sam_weight_set_init(&ws_mod);
    sam_weight_set_init(&ws_ref);
    sam_weight_loader Lm, Lr;
    sam_weight_loader_init_random(&Lm, SEED, SCALE, &ws_mod);
    sam_weight_loader_init_random(&Lr, SEED, SCALE, &ws_ref);
    sam_memory_attention *a = NULL;
    st = sam_memory_attention_create_from_loader(&cfg, &Lm, be, &a);
    CHECK_MSG(st == SAM2D_OK, "create: %s", sam2d_last_error());
    ref_layer ly;
    fetch_attn(&Lr, &ly.sa, "self_attn", 0, C, Ci, C);
    fetch_attn(&Lr, &ly.ca, "cross_attn_image", 0, C, Ci, kv);
    const char *p = "memory_attention.layers";
    ly.l1_w = sam_weight(&Lr, SAM_W2(dff, C), "%s.0.linear1.weight", p);
    ly.l1_b = sam_weight(&Lr, SAM_W1(dff), "%s.0.linear1.bias", p);
    ly.l2_w = sam_weight(&Lr, SAM_W2(C, dff), "%s.0.linear2.weight", p);
    ly.l2_b = sam_weight(&Lr, SAM_W1(C), "%s.0.linear2.bias", p);
    ly.n1_w = sam_weight(&Lr, SAM_W1(C), "%s.0.norm1.weight", p);
    ly.n1_b = sam_weight(&Lr, SAM_W1(C), "%s.0.norm1.bias", p);
    ly.n2_w = sam_weight(&Lr, SAM_W1(C), "%s.0.norm2.weight", p);
    ly.n2_b = sam_weight(&Lr, SAM_W1(C), "%s.0.norm2.bias", p);
    ly.n3_w = sam_weight(&Lr, SAM_W1(C), "%s.0.norm3.weight", p);
    ly.n3_b = sam_weight(&Lr, SAM_W1(C), "%s.0.norm3.bias", p);
    const float *nw = sam_weight(&Lr, SAM_W1(C), "memory_attention.norm.weight");
    const float *nb = sam_weight(&Lr, SAM_W1(C), "memory_attention.norm.bias");
    CHECK(nw && nb && ly.n3_b);

    float *curr = sam_malloc(sizeof(float) * Lq * C), *cpos = sam_malloc(sizeof(float) * Lq * C); // (Lq, C)
    float *mem = sam_malloc(sizeof(float) * M * kv), *mpos = sam_malloc(sizeof(float) * M * kv);  // (M, kv)
    float *out = sam_malloc(sizeof(float) * Lq * C);                                             // (Lq, C)
    float *want = sam_malloc(sizeof(float) * Lq * C);
    test_fill_random(curr, (size_t)(Lq * C), 1);
    test_fill_random(cpos, (size_t)(Lq * C), 2);
    test_fill_random(mem, (size_t)(M * kv), 3);
    test_fill_random(mpos, (size_t)(M * kv), 4);
    if (a && nw && nb && ly.n3_b) {
        st = sam_memory_attention_forward(a, curr, cpos, mem, mpos, (int)M, n_ptr_tok, fh, fw, out);
        CHECK_MSG(st == SAM2D_OK, "forward: %s", sam2d_last_error());

        /* the reference's layer, in double */
        double *x = calloc((size_t)(Lq * C), sizeof(double)), *t = calloc((size_t)(Lq * C), sizeof(double));
        double *qin = calloc((size_t)(Lq * C), sizeof(double)), *t2 = calloc((size_t)(Lq * C), sizeof(double));
        double *kin = malloc(sizeof(double) * M * kv), *vin = malloc(sizeof(double) * M * kv);
        double *hid = malloc(sizeof(double) * Lq * dff);
        for (int64_t i = 0; i < Lq * C; i++)
            x[i] = cfg.mem_attn_pos_enc_at_input ? curr[i] + 0.1 * (double)cpos[i] : curr[i];
        for (int64_t i = 0; i < M * kv; i++) {
            vin[i] = mem[i];
            kin[i] = cfg.mem_attn_pos_enc_at_cross_attn_keys ? (double)mem[i] + mpos[i] : mem[i];
        }
        lnorm(t, x, ly.n1_w, ly.n1_b, Lq, C);
        for (int64_t i = 0; i < Lq * C; i++) qin[i] = cfg.mem_attn_pos_enc_at_attn ? t[i] + cpos[i] : t[i];
        ref_attention(t2, &ly.sa, qin, Lq, qin, t, Lq, C, Lq, C, Ci, heads, fw, fh, cfg.mem_attn_rope_theta);
        for (int64_t i = 0; i < Lq * C; i++) x[i] += t2[i];
        lnorm(t, x, ly.n2_w, ly.n2_b, Lq, C);
        for (int64_t i = 0; i < Lq * C; i++) qin[i] = cfg.mem_attn_pos_enc_at_cross_attn_queries ? t[i] + cpos[i] : t[i];
        ref_attention(t2, &ly.ca, qin, Lq, kin, vin, M, kv, n_rope, C, Ci, heads, fw, fh, cfg.mem_attn_rope_theta);
        for (int64_t i = 0; i < Lq * C; i++) x[i] += t2[i];
        lnorm(t, x, ly.n3_w, ly.n3_b, Lq, C);
        lin(hid, t, ly.l1_w, ly.l1_b, Lq, dff, C);
        for (int64_t i = 0; i < Lq * dff; i++) hid[i] = hid[i] > 0 ? hid[i] : 0;
        lin(t2, hid, ly.l2_w, ly.l2_b, Lq, C, dff);
        for (int64_t i = 0; i < Lq * C; i++) x[i] += t2[i];
        lnorm(t, x, nw, nb, Lq, C);
        double mag = 0;
        for (int64_t i = 0; i < Lq * C; i++) {
            want[i] = (float)t[i];
            if (fabs(t[i]) > mag) mag = fabs(t[i]);
        }
        printf("reference output max |value| %.3g\n", mag);
        CHECK(mag > 0.05); /* a meaningful magnitude for the tolerance below */
        CHECK_CLOSE_ARRAY("memory attention vs double reference", out, want, (size_t)(Lq * C), 2e-5);
        free(x), free(t), free(qin), free(t2), free(kin), free(vin), free(hid);
    }
    sam_free(curr), sam_free(cpos), sam_free(mem), sam_free(mpos), sam_free(out), sam_free(want);
    sam_memory_attention_free(a);
    sam_weight_set_free(&ws_mod);
    sam_weight_set_free(&ws_ref);
    sam_backend_cpu_free(be);
    return test_finish();
}
