/* SAM 2 memory encoder and memory attention; see memory.h.
 *
 * Layouts: everything channels-last / token-major. The reference works in
 * BCHW for the encoder and seq-first for the attention; with batch 1 both are
 * plain (tokens, channels) matrices here.
 *
 * Memory (ops.h's device-memory rule): weights and the tables made at load
 * (the sine position encoding, the RoPE cos/sin tables, the folded W_ov/b_ov)
 * are const memory; activations live in arenas on the back end's buffers;
 * every tensor argument is a buffer. RoPE runs through be->rope. */
#include "model/memory.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/error.h"
#include "model/weights.h"

#define MEM_MAX_DS_LAYERS 8
#define MEM_MAX_FUSER 8
#define MEM_MAX_ATTN_LAYERS 16
/* Token rows per MLP chunk: the (rows, hidden) activation is the largest
 * buffer of both modules at 1024 px (32 MiB for the attention's FFN);
 * chunks of 1024 rows keep it at 8 MiB with GEMMs as efficient. Rows are
 * independent, so the results are the same. */
#define MEM_MLP_CHUNK 1024

/* Arena allocations are 64-byte aligned: count each with its padding. */
static size_t arena_bytes(size_t nfloats) { return (nfloats * sizeof(float) + 63) & ~(size_t)63; }

/* Register a Linear weight w (N, K) with the back end (bf16 mode packs it once)
 * or forget it (before w is freed). Preparing is only a speed-up: a failure
 * leaves the per-call path. */
static void prep_linear(sam_backend *be, const float *w, int N, int K, bool forget) {
    if (!w || !be || !be->linear_prepare || !be->linear_forget) return;
    if (forget)
        be->linear_forget(be, w);
    else
        (void)be->linear_prepare(be, w, N, K);
}

/* ------------------------------------------------------------------------- */
/* Sine position encoding (PositionEmbeddingSine, normalize=True, scale 2*pi),
 * float32 arithmetic in the reference's order. pos (h*w, num_feats):
 * first num_feats/2 channels encode y, the rest x; within each half the even
 * channels are sin, the odd ones cos. */
static void sine_pos_encoding(float *pos, int h, int w, int num_feats, float temperature) {
    const int npf = num_feats / 2;
    const float scale = (float)(2.0 * M_PI);
    const float eps = 1e-6f;
    for (int y = 0; y < h; y++) {
        float ye = (float)(y + 1) / ((float)h + eps) * scale;
        for (int x = 0; x < w; x++) {
            float xe = (float)(x + 1) / ((float)w + eps) * scale;
            float *p = pos + ((int64_t)y * w + x) * num_feats;
            for (int i = 0; i < npf; i++) {
                /* dim_t = temperature ** (2 * (i // 2) / npf), all in float32 */
                float e = (float)(2 * (i / 2)) / (float)npf;
                float dim_t = powf(temperature, e);
                float vy = ye / dim_t, vx = xe / dim_t;
                p[i] = (i & 1) ? cosf(vy) : sinf(vy);
                p[npf + i] = (i & 1) ? cosf(vx) : sinf(vx);
            }
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Memory encoder */

typedef struct {
    float *dw_w, *dw_b;   // (C, 1, k, k), (C)  depthwise conv
    float *ln_w, *ln_b;   // (C), (C)          LayerNorm2d eps 1e-6
    float *pw1_w, *pw1_b; // (4C, C), (4C)
    float *pw2_w, *pw2_b; // (C, 4C), (C)
    float *gamma;         // (C) layer scale, NULL when the block has none
} cx_block;

struct sam_memory_encoder {
    sam_backend *be;
    int S, h, w;          /* input mask size, feature size */
    int C, mem_dim;       /* in_dim (= d_model), out_dim */
    int ds_layers, ds_k, ds_s, ds_p;
    int ds_ch[MEM_MAX_DS_LAYERS + 1];                 /* channels after each down-sampling conv (ds_ch[0] = 1) */
    int ds_hw[MEM_MAX_DS_LAYERS + 1];                 /* spatial side after each conv (ds_hw[0] = S) */
    float *ds_w[MEM_MAX_DS_LAYERS], *ds_b[MEM_MAX_DS_LAYERS];     // (c_i, c_{i-1}, k, k), (c_i)
    float *ds_ln_w[MEM_MAX_DS_LAYERS], *ds_ln_b[MEM_MAX_DS_LAYERS]; // (c_i)
    float *ds_out_w, *ds_out_b;                       // (C, c_last, 1, 1), (C)
    float *pix_w, *pix_b;                             // (C, C, 1, 1), (C)
    float *fuser_proj_w, *fuser_proj_b;               // (C, C, 1, 1), (C) or NULL (identity)
    int n_fuser, fuser_k, fuser_p;
    cx_block fuser[MEM_MAX_FUSER];
    float *out_w, *out_b;                             // (mem_dim, C, 1, 1), (mem_dim) or NULL when mem_dim == C
    float *pos;                                       // (h*w, mem_dim) const: sine encoding, computed once
    sam_weight_set weights;
    sam_arena arena;
    sam_arena *scratch;   /* &arena, or the memory attention's arena once shared */
    bool prepared;        /* linear weights registered with the back end */
};

static void menc_prepare(sam_memory_encoder *m, bool forget) {
    sam_backend *be = m->be;
    const int C = m->C;
    prep_linear(be, m->ds_out_w, C, m->ds_ch[m->ds_layers], forget);
    prep_linear(be, m->pix_w, C, C, forget);
    prep_linear(be, m->fuser_proj_w, C, C, forget);
    for (int i = 0; i < m->n_fuser; i++) {
        prep_linear(be, m->fuser[i].pw1_w, 4 * C, C, forget);
        prep_linear(be, m->fuser[i].pw2_w, C, 4 * C, forget);
    }
    prep_linear(be, m->out_w, m->mem_dim, C, forget);
}

void sam_memory_encoder_free(sam_memory_encoder *m) {
    if (!m) return;
    if (m->be) (void)m->be->sync(m->be); /* no queued kernel may still use what is freed here */
    if (m->prepared) menc_prepare(m, true);
    sam_weight_set_free(&m->weights); /* pos included */
    sam_arena_free(&m->arena);
    sam_free(m);
}

/* Scratch bytes of one forward (the layout of sam_memory_encoder_forward). */
static size_t menc_scratch_bytes(const sam_memory_encoder *m) {
    size_t ds_max = 0;
    for (int i = 1; i <= m->ds_layers; i++) {
        size_t n = (size_t)m->ds_hw[i] * m->ds_hw[i] * m->ds_ch[i];
        if (n > ds_max) ds_max = n;
    }
    size_t hw = (size_t)m->h * m->w;
    size_t chunk = hw < MEM_MLP_CHUNK ? hw : MEM_MLP_CHUNK;
    return 2 * arena_bytes(ds_max) + 3 * arena_bytes(hw * m->C) + arena_bytes(chunk * 4 * m->C) + 4096;
}

sam2d_status sam_memory_encoder_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L,
                                                   sam_backend *be, sam_memory_encoder **out) {
    if (!cfg || !L || !be || !out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: NULL argument");
    *out = NULL;
    if (cfg->image_size <= 0 || cfg->backbone_stride <= 0 || cfg->image_size % cfg->backbone_stride)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: image_size %d not a multiple of stride %d",
                       cfg->image_size, cfg->backbone_stride);
    if (cfg->mem_in_dim <= 0 || cfg->mem_dim <= 0 || cfg->mem_pos_num_feats != cfg->mem_dim ||
        cfg->mem_pos_num_feats % 2)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: bad dims in_dim %d out_dim %d pos feats %d",
                       cfg->mem_in_dim, cfg->mem_dim, cfg->mem_pos_num_feats);
    if (cfg->mask_ds_embed_dim != cfg->mem_in_dim)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: mask down-sampler dim %d != in_dim %d",
                       cfg->mask_ds_embed_dim, cfg->mem_in_dim);
    if (cfg->mask_ds_stride < 2 || cfg->mask_ds_kernel <= 0 || cfg->fuser_num_layers < 0 ||
        cfg->fuser_num_layers > MEM_MAX_FUSER || cfg->fuser_kernel <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: bad down-sampler/fuser config");

    sam_memory_encoder *m = sam_calloc(1, sizeof(*m));
    if (!m) return SAM_ERR(SAM2D_ERR_NOMEM, "memory encoder: out of memory");
    sam_weight_set_init_on(&m->weights, be); /* weights and tables in const memory */
    sam_arena_init(&m->arena);
    sam_arena_on_backend(&m->arena, be); /* activations in buffers */
    m->scratch = &m->arena;
    m->be = be;
    m->S = cfg->image_size;
    m->h = m->w = cfg->image_size / cfg->backbone_stride;
    m->C = cfg->mem_in_dim;
    m->mem_dim = cfg->mem_dim;
    m->ds_k = cfg->mask_ds_kernel;
    m->ds_s = cfg->mask_ds_stride;
    m->ds_p = cfg->mask_ds_padding;
    m->n_fuser = cfg->fuser_num_layers;
    m->fuser_k = cfg->fuser_kernel;
    m->fuser_p = cfg->fuser_padding;

    /* MaskDownSampler(total_stride=16): log(16)/log(stride) strided convs, each
     * multiplying the channels by stride^2. The YAMLs never change total_stride. */
    const int total_stride = 16;
    int nl = 0;
    for (int s = 1; s < total_stride; s *= m->ds_s) nl++;
    {
        int p = 1;
        for (int i = 0; i < nl; i++) p *= m->ds_s;
        if (p != total_stride || nl > MEM_MAX_DS_LAYERS) {
            sam_memory_encoder_free(m);
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "memory encoder: down-sampler stride %d does not divide 16",
                           m->ds_s);
        }
    }
    m->ds_layers = nl;
    m->ds_ch[0] = 1;
    m->ds_hw[0] = m->S;
    for (int i = 1; i <= nl; i++) {
        m->ds_ch[i] = m->ds_ch[i - 1] * m->ds_s * m->ds_s;
        m->ds_hw[i] = sam_conv_out(m->ds_hw[i - 1], m->ds_k, m->ds_s, m->ds_p);
    }
    if (m->ds_hw[nl] != m->h) {
        sam_memory_encoder_free(m);
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "memory encoder: down-sampled mask is %d px, features %d px",
                       m->ds_hw[nl], m->h);
    }

    const int C = m->C;
    /* Every buffer belongs to the encoder whatever the loader's own owner is. */
    sam_weight_set *prev_owner = L->owner;
    const int nerr0 = L->nerr;
    L->owner = &m->weights;
    const char *pre = "memory_encoder";
    /* nn.Sequential indices: conv, LayerNorm2d, GELU per layer, then the 1x1 conv. */
    for (int i = 0; i < nl; i++) {
        int ci = m->ds_ch[i], co = m->ds_ch[i + 1];
        m->ds_w[i] = sam_weight(L, SAM_W4(co, ci, m->ds_k, m->ds_k), "%s.mask_downsampler.encoder.%d.weight", pre,
                                3 * i);
        m->ds_b[i] = sam_weight(L, SAM_W1(co), "%s.mask_downsampler.encoder.%d.bias", pre, 3 * i);
        m->ds_ln_w[i] = sam_weight(L, SAM_W1(co), "%s.mask_downsampler.encoder.%d.weight", pre, 3 * i + 1);
        m->ds_ln_b[i] = sam_weight(L, SAM_W1(co), "%s.mask_downsampler.encoder.%d.bias", pre, 3 * i + 1);
    }
    m->ds_out_w = sam_weight(L, SAM_W4(C, m->ds_ch[nl], 1, 1), "%s.mask_downsampler.encoder.%d.weight", pre, 3 * nl);
    m->ds_out_b = sam_weight(L, SAM_W1(C), "%s.mask_downsampler.encoder.%d.bias", pre, 3 * nl);
    m->pix_w = sam_weight(L, SAM_W4(C, C, 1, 1), "%s.pix_feat_proj.weight", pre);
    m->pix_b = sam_weight(L, SAM_W1(C), "%s.pix_feat_proj.bias", pre);
    /* Fuser(input_projection=True) is not used by Meta's configs; accept it when present. */
    if (L->ck && sam_weight_exists(L, "%s.fuser.proj.weight", pre)) {
        m->fuser_proj_w = sam_weight(L, SAM_W4(C, C, 1, 1), "%s.fuser.proj.weight", pre);
        m->fuser_proj_b = sam_weight(L, SAM_W1(C), "%s.fuser.proj.bias", pre);
    }
    const int k = m->fuser_k;
    for (int i = 0; i < m->n_fuser; i++) {
        cx_block *b = &m->fuser[i];
        int in_per_group = cfg->fuser_use_dwconv ? 1 : C;
        if (!cfg->fuser_use_dwconv)
            sam_weight_loader_fail(L, "memory encoder: fuser without depthwise conv is not supported");
        b->dw_w = sam_weight(L, SAM_W4(C, in_per_group, k, k), "%s.fuser.layers.%d.dwconv.weight", pre, i);
        b->dw_b = sam_weight(L, SAM_W1(C), "%s.fuser.layers.%d.dwconv.bias", pre, i);
        b->ln_w = sam_weight(L, SAM_W1(C), "%s.fuser.layers.%d.norm.weight", pre, i);
        b->ln_b = sam_weight(L, SAM_W1(C), "%s.fuser.layers.%d.norm.bias", pre, i);
        b->pw1_w = sam_weight(L, SAM_W2(4 * C, C), "%s.fuser.layers.%d.pwconv1.weight", pre, i);
        b->pw1_b = sam_weight(L, SAM_W1(4 * C), "%s.fuser.layers.%d.pwconv1.bias", pre, i);
        b->pw2_w = sam_weight(L, SAM_W2(C, 4 * C), "%s.fuser.layers.%d.pwconv2.weight", pre, i);
        b->pw2_b = sam_weight(L, SAM_W1(C), "%s.fuser.layers.%d.pwconv2.bias", pre, i);
        b->gamma = cfg->fuser_layer_scale_init > 0
                       ? sam_weight(L, SAM_W1(C), "%s.fuser.layers.%d.gamma", pre, i)
                       : sam_weight_optional(L, SAM_W1(C), "%s.fuser.layers.%d.gamma", pre, i);
    }
    if (m->mem_dim != C) {
        m->out_w = sam_weight(L, SAM_W4(m->mem_dim, C, 1, 1), "%s.out_proj.weight", pre);
        m->out_b = sam_weight(L, SAM_W1(m->mem_dim), "%s.out_proj.bias", pre);
    }
    L->owner = prev_owner;
    if (L->nerr != nerr0) {
        /* the caller finishes the loader, which holds the complete message */
        sam_memory_encoder_free(m);
        return SAM_ERR(SAM2D_ERR_MISMATCH, "memory encoder: %d checkpoint tensor problem(s)", L->nerr - nerr0);
    }

    m->pos = sam_weight_set_alloc(&m->weights, (size_t)m->h * m->w * m->mem_dim);
    if (!m->pos || !sam_arena_reserve(&m->arena, menc_scratch_bytes(m))) {
        sam_memory_encoder_free(m);
        return SAM_ERR(SAM2D_ERR_NOMEM, "memory encoder: out of memory for scratch");
    }
    /* The encoding depends only on the (fixed) feature size: compute it once. */
    sine_pos_encoding(m->pos, m->h, m->w, cfg->mem_pos_num_feats, 10000.0f);
    sam_weight_set_publish(&m->weights); /* the last host write to const memory */
    menc_prepare(m, false);
    m->prepared = true;
    *out = m;
    return SAM2D_OK;
}

sam2d_status sam_memory_encoder_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                                       sam_memory_encoder **out) {
    if (out) *out = NULL;
    if (!ck) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: NULL checkpoint");
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, NULL);
    sam_memory_encoder *m = NULL;
    sam2d_status st = sam_memory_encoder_create_from_loader(cfg, &L, be, &m);
    sam2d_status fin = sam_weight_loader_finish(&L); /* the complete list of problems, if any */
    if (fin != SAM2D_OK) {
        sam_memory_encoder_free(m);
        return fin;
    }
    if (st != SAM2D_OK) return st;
    *out = m;
    return SAM2D_OK;
}

sam2d_status sam_memory_encoder_forward(sam_memory_encoder *m, const float *pix_feat, const float *mask,
                                        float *out_feat, float *out_pos) {
    if (!m || !pix_feat || !mask || !out_feat || !out_pos)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory encoder: NULL argument");
    sam_backend *be = m->be;
    const int C = m->C;
    const int64_t hw = (int64_t)m->h * m->w;

    sam_arena *ar = m->scratch;
    sam_arena_reset(ar);
    size_t ds_max = 0;
    for (int i = 1; i <= m->ds_layers; i++) {
        size_t n = (size_t)m->ds_hw[i] * m->ds_hw[i] * m->ds_ch[i];
        if (n > ds_max) ds_max = n;
    }
    float *ping = sam_arena_f32(ar, ds_max); // down-sampler activations, ping-pong
    float *pong = sam_arena_f32(ar, ds_max);
    float *x = sam_arena_f32(ar, (size_t)hw * C);      // (hw, C) fused features
    float *t = sam_arena_f32(ar, (size_t)hw * C);      // (hw, C) temporaries
    float *t2 = sam_arena_f32(ar, (size_t)hw * C);     // (hw, C)
    const int64_t chunk = hw < MEM_MLP_CHUNK ? hw : MEM_MLP_CHUNK;
    float *hid = sam_arena_f32(ar, (size_t)chunk * 4 * C); // (chunk, 4C) CX block MLP
    if (!ping || !pong || !x || !t || !t2 || !hid) return SAM_ERR(SAM2D_ERR_NOMEM, "memory encoder: scratch");

    /* Mask down-sampler: the (S, S) mask is a one-channel channels-last map. */
    const float *cur = mask;
    for (int i = 0; i < m->ds_layers; i++) {
        float *dst = (i & 1) ? pong : ping;
        sam_conv2d_params p = {.N = 1, .H = m->ds_hw[i], .W = m->ds_hw[i], .C_in = m->ds_ch[i],
                               .C_out = m->ds_ch[i + 1], .kh = m->ds_k, .kw = m->ds_k, .stride_h = m->ds_s,
                               .stride_w = m->ds_s, .pad_h = m->ds_p, .pad_w = m->ds_p, .groups = 1};
        be->conv2d(be, dst, cur, m->ds_w[i], m->ds_b[i], &p);
        int64_t rows = (int64_t)m->ds_hw[i + 1] * m->ds_hw[i + 1];
        be->layer_norm(be, dst, dst, m->ds_ln_w[i], m->ds_ln_b[i], rows, m->ds_ch[i + 1], 1e-6f);
        be->gelu(be, dst, dst, rows * m->ds_ch[i + 1]);
        cur = dst;
    }
    be->linear(be, t, cur, m->ds_out_w, m->ds_out_b, (int)hw, C, m->ds_ch[m->ds_layers]); // (hw, C) mask embedding

    /* Fuse: projected pixel features + mask embedding. */
    be->linear(be, x, pix_feat, m->pix_w, m->pix_b, (int)hw, C, C);
    be->add(be, x, x, t, hw * C);
    if (m->fuser_proj_w) {
        be->linear(be, t, x, m->fuser_proj_w, m->fuser_proj_b, (int)hw, C, C);
        be->copy(be, x, t, (size_t)hw * C * sizeof(float));
    }
    for (int i = 0; i < m->n_fuser; i++) {
        const cx_block *b = &m->fuser[i];
        sam_conv2d_params p = {.N = 1, .H = m->h, .W = m->w, .C_in = C, .C_out = C, .kh = m->fuser_k,
                               .kw = m->fuser_k, .stride_h = 1, .stride_w = 1, .pad_h = m->fuser_p,
                               .pad_w = m->fuser_p, .groups = C};
        be->conv2d(be, t, x, b->dw_w, b->dw_b, &p);
        be->layer_norm(be, t, t, b->ln_w, b->ln_b, hw, C, 1e-6f);
        for (int64_t r0 = 0; r0 < hw; r0 += chunk) {
            const int n = (int)(hw - r0 < chunk ? hw - r0 : chunk);
            be->linear(be, hid, t + r0 * C, b->pw1_w, b->pw1_b, n, 4 * C, C);
            be->gelu(be, hid, hid, (int64_t)n * 4 * C);
            be->linear(be, t2 + r0 * C, hid, b->pw2_w, b->pw2_b, n, C, 4 * C);
        }
        if (b->gamma) be->mul_row(be, t2, t2, b->gamma, hw, C);
        be->add(be, x, x, t2, hw * C);
    }
    if (m->out_w)
        be->linear(be, out_feat, x, m->out_w, m->out_b, (int)hw, m->mem_dim, C);
    else
        be->copy(be, out_feat, x, (size_t)hw * C * sizeof(float));
    be->copy(be, out_pos, m->pos, (size_t)hw * m->mem_dim * sizeof(float));
    return SAM2D_OK;
}

/* ------------------------------------------------------------------------- */
/* Memory attention */

typedef struct {
    float *q_w, *q_b; // (Ci, C), (Ci)
    float *k_w, *k_b; // (Ci, kv_in), (Ci)
    float *v_w, *v_b; // (Ci, kv_in), (Ci)
    float *o_w, *o_b; // (C, Ci), (C)
    /* Cross-attention only: out_proj folded into v_proj (computed at load into the
     * weight set's const memory), so values are attended at kv_in width. */
    float *ov_w;      // (C, heads*kv_in) const: W_o[:, head h] . W_v[head h, :] per head block
    float *ov_b;      // (C) const: b_o + W_o . b_v
} attn_w;

typedef struct {
    attn_w sa, ca;
    float *lin1_w, *lin1_b; // (dff, C), (dff)
    float *lin2_w, *lin2_b; // (C, dff), (C)
    float *n1_w, *n1_b, *n2_w, *n2_b, *n3_w, *n3_b; // (C) each
} mattn_layer;

struct sam_memory_attention {
    sam_backend *be;
    int C, Ci, heads, head_dim, kv_dim, dff, n_layers;
    float theta;
    bool pos_at_input, pos_at_attn, pos_at_ca_keys, pos_at_ca_queries, rope_k_repeat;
    mattn_layer layers[MEM_MAX_ATTN_LAYERS];
    float *norm_w, *norm_b; // (C) final LayerNorm
    /* RoPE tables, angle cos/sin per (token, pair), const memory: one for the
     * configured feature size (made at load, in the weight set) and one for
     * the last other size a call asked for (remade when that size changes). */
    int rope_h, rope_w;      /* the configured size */
    float *rope_cos;         // (rope_h*rope_w, head_dim/2) const
    float *rope_sin;         // (rope_h*rope_w, head_dim/2) const
    int alt_h, alt_w;        /* 0 when there is no other table */
    float *alt_tab;          // (2, alt_h*alt_w, head_dim/2) const (cos then sin), be->const_alloc'd
    const float *cur_cos, *cur_sin; /* the table of the size being run */
    int64_t cur_L;           /* its tokens */
    int max_hw;       /* feature tokens of cfg->image_size */
    int64_t max_mem;  /* memory tokens reserved for */
    sam_weight_set weights;
    sam_arena arena;
    bool prepared;    /* linear weights registered with the back end */
};

static void mattn_prepare(sam_memory_attention *a, bool forget) {
    sam_backend *be = a->be;
    const int C = a->C, Ci = a->Ci;
    for (int i = 0; i < a->n_layers; i++) {
        const mattn_layer *ly = &a->layers[i];
        prep_linear(be, ly->sa.q_w, Ci, C, forget);
        prep_linear(be, ly->sa.k_w, Ci, C, forget);
        prep_linear(be, ly->sa.v_w, Ci, C, forget);
        prep_linear(be, ly->sa.o_w, C, Ci, forget);
        prep_linear(be, ly->ca.q_w, Ci, C, forget);
        prep_linear(be, ly->ca.k_w, Ci, a->kv_dim, forget);
        prep_linear(be, ly->ca.ov_w, C, a->heads * a->kv_dim, forget);
        prep_linear(be, ly->lin1_w, a->dff, C, forget);
        prep_linear(be, ly->lin2_w, C, a->dff, forget);
    }
}

void sam_memory_attention_free(sam_memory_attention *a) {
    if (!a) return;
    if (a->be) (void)a->be->sync(a->be); /* no queued kernel may still use what is freed here */
    if (a->prepared) mattn_prepare(a, true);
    if (a->alt_tab) a->be->const_free(a->be, a->alt_tab);
    sam_weight_set_free(&a->weights); /* folded projections and the main RoPE table included */
    sam_arena_free(&a->arena);
    sam_free(a);
}

/* Axial RoPE angles as compute_axial_cis computes them in float32: the first
 * dim/4 pairs rotate with the x position, the next dim/4 with y. Token i of the
 * h x w grid has x = i % w, y = i / w. cs/sn (h*w, head_dim/2): host-writable
 * const memory (before its publish). */
static void rope_fill(const sam_memory_attention *a, float *cs, float *sn, int h, int w) {
    const int64_t L = (int64_t)h * w;
    const int dim = a->head_dim, half = dim / 2, q4 = dim / 4;
    float freqs[256];
    for (int j = 0; j < q4; j++) {
        float e = (float)(4 * j) / (float)dim;
        freqs[j] = 1.0f / powf(a->theta, e);
    }
    for (int64_t i = 0; i < L; i++) {
        float tx = (float)(i % w), ty = (float)(i / w);
        float *c = cs + i * half, *s = sn + i * half;
        for (int j = 0; j < q4; j++) {
            float ax = tx * freqs[j], ay = ty * freqs[j];
            c[j] = cosf(ax);
            s[j] = sinf(ax);
            c[q4 + j] = cosf(ay);
            s[q4 + j] = sinf(ay);
        }
    }
}

/* Select (or make) the tables for an h x w feature map. Another size than the
 * configured one is not on the hot path: its table is remade when it changes. */
static sam2d_status rope_prepare(sam_memory_attention *a, int h, int w) {
    const int64_t L = (int64_t)h * w;
    const int half = a->head_dim / 2;
    a->cur_L = L;
    if (h == a->rope_h && w == a->rope_w) {
        a->cur_cos = a->rope_cos;
        a->cur_sin = a->rope_sin;
        return SAM2D_OK;
    }
    if (h != a->alt_h || w != a->alt_w) {
        sam_backend *be = a->be;
        if (a->alt_tab) {
            (void)be->sync(be); /* queued ropes may still read the old table */
            be->const_free(be, a->alt_tab);
            a->alt_tab = NULL;
            a->alt_h = a->alt_w = 0;
        }
        size_t bytes = 2 * (size_t)L * half * sizeof(float);
        float *tab = be->const_alloc(be, bytes);
        if (!tab) return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: RoPE table for %dx%d", h, w);
        rope_fill(a, tab, tab + (size_t)L * half, h, w);
        be->const_publish(be, tab, bytes);
        a->alt_tab = tab;
        a->alt_h = h;
        a->alt_w = w;
    }
    a->cur_cos = a->alt_tab;
    a->cur_sin = a->alt_tab + (size_t)L * half;
    return SAM2D_OK;
}

/* x (rows, Ci) buffer: rotate each head's pairs; token r uses table row r % L
 * (the memory frames repeat the positions: rope_k_repeat). */
static void rope_apply(sam_memory_attention *a, float *x, int64_t rows) {
    if (rows <= 0) return;
    a->be->rope(a->be, x, rows, a->Ci, a->heads, a->head_dim, a->cur_cos, a->cur_sin, a->cur_L);
}

/* Floats of the region shared in turn by the self-attention's k, v and
 * output (3 x (Lq, Ci)), the cross-attention's keys (max(M, Lq), Ci) and the
 * FFN's hidden chunk (chunk, dff): none is live while another is in use. */
static int64_t mattn_shared_floats(const sam_memory_attention *a, int64_t Lq, int64_t M) {
    const int64_t Lk = M > Lq ? M : Lq, chunk = Lq < MEM_MLP_CHUNK ? Lq : MEM_MLP_CHUNK;
    int64_t n = Lk * a->Ci;
    if (3 * Lq * a->Ci > n) n = 3 * Lq * a->Ci;
    if (chunk * a->dff > n) n = chunk * a->dff;
    return n;
}

/* The running tgt lives in the caller's output; qin only when a position
 * encoding is added to queries, kin only when the keys' sum is ours to make. */
static bool mattn_needs_qin(const sam_memory_attention *a) { return a->pos_at_attn || a->pos_at_ca_queries; }
static bool mattn_needs_kin(const sam_memory_attention *a, bool keys_ready) {
    return !keys_ready && a->pos_at_ca_keys;
}

static size_t mattn_scratch_bytes(const sam_memory_attention *a, int64_t Lq, int64_t M, bool keys_ready) {
    return 2 * arena_bytes((size_t)Lq * a->C)          /* t, t2 */
           + (mattn_needs_qin(a) ? arena_bytes((size_t)Lq * a->C) : 0) /* qin */
           + arena_bytes((size_t)Lq * a->Ci)           /* q */
           + arena_bytes((size_t)mattn_shared_floats(a, Lq, M)) /* k / v / attn out / FFN hidden */
           + arena_bytes((size_t)Lq * a->heads * a->kv_dim) /* cross-attention out at kv width */
           + (mattn_needs_kin(a, keys_ready) ? arena_bytes((size_t)M * a->kv_dim) : 0) /* memory + pos */
           + 4096;
}

/* W_ov = W_o . blockdiag(W_v per head), b_ov = b_o + W_o . b_v, in double
 * (one rounding per element). Exact reordering of out_proj(P . v_proj(m)):
 * the softmax rows sum to one, so the value bias passes through unchanged. */
static sam2d_status fold_ov(sam_memory_attention *a, attn_w *w) {
    const int C = a->C, Ci = a->Ci, kv = a->kv_dim, H = a->heads, hd = a->head_dim;
    w->ov_w = sam_weight_set_alloc(&a->weights, (size_t)C * H * kv);
    w->ov_b = sam_weight_set_alloc(&a->weights, (size_t)C);
    if (!w->ov_w || !w->ov_b) return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: folded projections");
    for (int o = 0; o < C; o++) {
        const float *wo = w->o_w + (int64_t)o * Ci; /* row o of W_o (C, Ci) */
        for (int h = 0; h < H; h++)
            for (int j = 0; j < kv; j++) {
                double acc = 0.0;
                for (int e = 0; e < hd; e++) acc += (double)wo[h * hd + e] * w->v_w[(int64_t)(h * hd + e) * kv + j];
                w->ov_w[(int64_t)o * H * kv + h * kv + j] = (float)acc;
            }
        double b = w->o_b[o];
        for (int e = 0; e < Ci; e++) b += (double)wo[e] * w->v_b[e];
        w->ov_b[o] = (float)b;
    }
    return SAM2D_OK;
}

static void load_attn(sam_weight_loader *L, attn_w *w, const char *name, int layer, int C, int Ci, int kv) {
    const char *p = "memory_attention.layers";
    w->q_w = sam_weight(L, SAM_W2(Ci, C), "%s.%d.%s.q_proj.weight", p, layer, name);
    w->q_b = sam_weight(L, SAM_W1(Ci), "%s.%d.%s.q_proj.bias", p, layer, name);
    w->k_w = sam_weight(L, SAM_W2(Ci, kv), "%s.%d.%s.k_proj.weight", p, layer, name);
    w->k_b = sam_weight(L, SAM_W1(Ci), "%s.%d.%s.k_proj.bias", p, layer, name);
    w->v_w = sam_weight(L, SAM_W2(Ci, kv), "%s.%d.%s.v_proj.weight", p, layer, name);
    w->v_b = sam_weight(L, SAM_W1(Ci), "%s.%d.%s.v_proj.bias", p, layer, name);
    w->o_w = sam_weight(L, SAM_W2(C, Ci), "%s.%d.%s.out_proj.weight", p, layer, name);
    w->o_b = sam_weight(L, SAM_W1(C), "%s.%d.%s.out_proj.bias", p, layer, name);
}

sam2d_status sam_memory_attention_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L,
                                                     sam_backend *be, sam_memory_attention **out) {
    if (!cfg || !L || !be || !out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory attention: NULL argument");
    *out = NULL;
    const int C = cfg->d_model, heads = cfg->mem_attn_num_heads;
    const int ds = cfg->mem_attn_downsample_rate > 0 ? cfg->mem_attn_downsample_rate : 1;
    if (C <= 0 || heads <= 0 || C % ds || (C / ds) % heads || ((C / ds) / heads) % 4 ||
        (C / ds) / heads / 4 > 256 || cfg->mem_attn_num_layers <= 0 ||
        cfg->mem_attn_num_layers > MEM_MAX_ATTN_LAYERS || cfg->mem_attn_kv_in_dim <= 0 ||
        cfg->mem_attn_dim_feedforward <= 0 || cfg->image_size <= 0 || cfg->backbone_stride <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG,
                       "memory attention: bad config (d_model %d, heads %d, downsample %d, layers %d, kv_in %d)", C,
                       heads, ds, cfg->mem_attn_num_layers, cfg->mem_attn_kv_in_dim);

    if (cfg->mem_dim > 0 && cfg->mem_attn_kv_in_dim != cfg->mem_dim)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory attention: kv_in_dim %d != mem_dim %d",
                       cfg->mem_attn_kv_in_dim, cfg->mem_dim);
    sam_memory_attention *a = sam_calloc(1, sizeof(*a));
    if (!a) return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: out of memory");
    sam_weight_set_init_on(&a->weights, be); /* weights and tables in const memory */
    sam_arena_init(&a->arena);
    sam_arena_on_backend(&a->arena, be); /* activations in buffers */
    a->be = be;
    a->C = C;
    a->Ci = C / ds;
    a->heads = heads;
    a->head_dim = a->Ci / heads;
    a->kv_dim = cfg->mem_attn_kv_in_dim;
    a->dff = cfg->mem_attn_dim_feedforward;
    a->n_layers = cfg->mem_attn_num_layers;
    a->theta = cfg->mem_attn_rope_theta > 0 ? cfg->mem_attn_rope_theta : 10000.0f;
    a->pos_at_input = cfg->mem_attn_pos_enc_at_input;
    a->pos_at_attn = cfg->mem_attn_pos_enc_at_attn;
    a->pos_at_ca_keys = cfg->mem_attn_pos_enc_at_cross_attn_keys;
    a->pos_at_ca_queries = cfg->mem_attn_pos_enc_at_cross_attn_queries;
    a->rope_k_repeat = cfg->mem_attn_rope_k_repeat;

    sam_weight_set *prev_owner = L->owner;
    const int nerr0 = L->nerr;
    L->owner = &a->weights;
    for (int i = 0; i < a->n_layers; i++) {
        mattn_layer *ly = &a->layers[i];
        load_attn(L, &ly->sa, "self_attn", i, C, a->Ci, C);
        load_attn(L, &ly->ca, "cross_attn_image", i, C, a->Ci, a->kv_dim);
        const char *p = "memory_attention.layers";
        ly->lin1_w = sam_weight(L, SAM_W2(a->dff, C), "%s.%d.linear1.weight", p, i);
        ly->lin1_b = sam_weight(L, SAM_W1(a->dff), "%s.%d.linear1.bias", p, i);
        ly->lin2_w = sam_weight(L, SAM_W2(C, a->dff), "%s.%d.linear2.weight", p, i);
        ly->lin2_b = sam_weight(L, SAM_W1(C), "%s.%d.linear2.bias", p, i);
        ly->n1_w = sam_weight(L, SAM_W1(C), "%s.%d.norm1.weight", p, i);
        ly->n1_b = sam_weight(L, SAM_W1(C), "%s.%d.norm1.bias", p, i);
        ly->n2_w = sam_weight(L, SAM_W1(C), "%s.%d.norm2.weight", p, i);
        ly->n2_b = sam_weight(L, SAM_W1(C), "%s.%d.norm2.bias", p, i);
        ly->n3_w = sam_weight(L, SAM_W1(C), "%s.%d.norm3.weight", p, i);
        ly->n3_b = sam_weight(L, SAM_W1(C), "%s.%d.norm3.bias", p, i);
    }
    a->norm_w = sam_weight(L, SAM_W1(C), "memory_attention.norm.weight");
    a->norm_b = sam_weight(L, SAM_W1(C), "memory_attention.norm.bias");
    L->owner = prev_owner;
    if (L->nerr != nerr0) {
        sam_memory_attention_free(a);
        return SAM_ERR(SAM2D_ERR_MISMATCH, "memory attention: %d checkpoint tensor problem(s)", L->nerr - nerr0);
    }
    for (int i = 0; i < a->n_layers; i++) {
        sam2d_status fst = fold_ov(a, &a->layers[i].ca);
        if (fst != SAM2D_OK) {
            sam_memory_attention_free(a);
            return fst;
        }
    }

    /* Reserve for the largest bank the config allows at its image size:
     * num_maskmem frames (cond + recent) plus every object-pointer token. */
    int fh = cfg->image_size / cfg->backbone_stride;
    a->max_hw = fh * fh;
    int ptr_tokens = cfg->max_obj_ptrs_in_encoder * (C / (a->kv_dim > 0 ? a->kv_dim : C));
    a->max_mem = (int64_t)(cfg->num_maskmem > 0 ? cfg->num_maskmem : 1) * a->max_hw + ptr_tokens;
    if (!sam_arena_reserve(&a->arena, mattn_scratch_bytes(a, a->max_hw, a->max_mem, false))) {
        sam_memory_attention_free(a);
        return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: out of memory for scratch");
    }
    a->rope_cos = sam_weight_set_alloc(&a->weights, (size_t)a->max_hw * (a->head_dim / 2));
    a->rope_sin = sam_weight_set_alloc(&a->weights, (size_t)a->max_hw * (a->head_dim / 2));
    if (!a->rope_cos || !a->rope_sin) {
        sam_memory_attention_free(a);
        return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: RoPE tables");
    }
    rope_fill(a, a->rope_cos, a->rope_sin, fh, fh);
    a->rope_h = a->rope_w = fh;
    sam_weight_set_publish(&a->weights); /* the last host write to const memory */
    mattn_prepare(a, false);
    a->prepared = true;
    *out = a;
    return SAM2D_OK;
}

sam2d_status sam_memory_attention_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                                         sam_memory_attention **out) {
    if (out) *out = NULL;
    if (!ck) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory attention: NULL checkpoint");
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, NULL);
    sam_memory_attention *a = NULL;
    sam2d_status st = sam_memory_attention_create_from_loader(cfg, &L, be, &a);
    sam2d_status fin = sam_weight_loader_finish(&L);
    if (fin != SAM2D_OK) {
        sam_memory_attention_free(a);
        return fin;
    }
    if (st != SAM2D_OK) return st;
    *out = a;
    return SAM2D_OK;
}

/* The self-attention (the cross-attention is reordered: cross_attention below):
 * out (Lq, C) = out_proj(attention(rope(q_proj(qin)), rope(k_proj(kin))[:n_rope], v_proj(vin))).
 * kin/vin (Lk, kv_in); q/k/v/ao are scratch. Keys beyond n_rope (object
 * pointers) keep no rotation. */
static void rope_attention(sam_memory_attention *a, const attn_w *w, float *out, const float *qin, int64_t Lq,
                           const float *kin, const float *vin, int64_t Lk, int kv_in, int64_t n_rope, float *q,
                           float *k, float *v, float *ao) {
    sam_backend *be = a->be;
    be->linear(be, q, qin, w->q_w, w->q_b, (int)Lq, a->Ci, a->C);
    be->linear(be, k, kin, w->k_w, w->k_b, (int)Lk, a->Ci, kv_in);
    be->linear(be, v, vin, w->v_w, w->v_b, (int)Lk, a->Ci, kv_in);
    rope_apply(a, q, Lq);
    rope_apply(a, k, n_rope);
    sam_attn_params p = sam_attn_dense(a->heads, (int)Lq, (int)Lk, a->head_dim, a->head_dim);
    p.scale = 1.0f / sqrtf((float)a->head_dim);
    be->attention(be, ao, q, k, v, &p);
    be->linear(be, out, ao, w->o_w, w->o_b, (int)Lq, a->C, a->Ci);
}

/* Cross-attention to the memory bank, reordered: the reference projects every
 * memory token to Ci values and then projects the attended sum with out_proj;
 * both are linear, so the raw kv_in-wide memory is attended and the folded
 * (C, heads*kv_in) projection is applied once per query. At 1024 px this is
 * a quarter of the value arithmetic (64 against 256 wide) and no (M, Ci) V.
 * out (Lq, C); keys (M, kv_in) memory + pos; memory (M, kv_in); q/k/ao scratch. */
static void cross_attention(sam_memory_attention *a, const attn_w *w, float *out, const float *qin, int64_t Lq,
                            const float *keys, const float *memory, int64_t M, int64_t n_rope, float *q, float *k,
                            float *ao) {
    sam_backend *be = a->be;
    const int kv = a->kv_dim, H = a->heads, hd = a->head_dim;
    be->linear(be, q, qin, w->q_w, w->q_b, (int)Lq, a->Ci, a->C);
    be->linear(be, k, keys, w->k_w, w->k_b, (int)M, a->Ci, kv);
    rope_apply(a, q, Lq);
    rope_apply(a, k, n_rope);
    /* every head attends the same kv_in-wide values: one call per head */
    for (int h = 0; h < H; h++) {
        sam_attn_params p = sam_attn_dense(1, (int)Lq, (int)M, hd, kv);
        p.q_stride = p.k_stride = a->Ci;
        p.v_stride = kv;
        p.o_stride = (int64_t)H * kv;
        p.scale = 1.0f / sqrtf((float)hd);
        be->attention(be, ao + (int64_t)h * kv, q + (int64_t)h * hd, k + (int64_t)h * hd, memory, &p);
    }
    be->linear(be, out, ao, w->ov_w, w->ov_b, (int)Lq, a->C, H * kv);
}

sam2d_status sam_memory_attention_forward(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                          const float *memory, const float *memory_pos, int M,
                                          int num_obj_ptr_tokens, int feat_h, int feat_w, float *out) {
    return sam_memory_attention_forward_layers(a, curr, curr_pos, memory, memory_pos, M, num_obj_ptr_tokens, feat_h,
                                               feat_w, out, NULL);
}

/* keys_ready: memory_pos already holds the keys' input (memory + pos when the
 * config adds it, else memory itself). */
static sam2d_status mattn_forward(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                  const float *memory, const float *memory_pos, bool keys_ready, int M,
                                  int num_obj_ptr_tokens, int feat_h, int feat_w, float *out, float *layer_out);

sam2d_status sam_memory_attention_forward_layers(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                                 const float *memory, const float *memory_pos, int M,
                                                 int num_obj_ptr_tokens, int feat_h, int feat_w, float *out,
                                                 float *layer_out) {
    return mattn_forward(a, curr, curr_pos, memory, memory_pos, false, M, num_obj_ptr_tokens, feat_h, feat_w, out,
                         layer_out);
}

sam2d_status sam_memory_attention_forward_keys(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                               const float *memory, const float *keys, int M, int num_obj_ptr_tokens,
                                               int feat_h, int feat_w, float *out) {
    if (!keys) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory attention: NULL keys");
    return mattn_forward(a, curr, curr_pos, memory, keys, true, M, num_obj_ptr_tokens, feat_h, feat_w, out, NULL);
}

static sam2d_status mattn_forward(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                  const float *memory, const float *memory_pos, bool keys_ready, int M,
                                  int num_obj_ptr_tokens, int feat_h, int feat_w, float *out, float *layer_out) {
    if (!a || !curr || !memory || !out || (a->pos_at_ca_keys && !memory_pos) ||
        ((a->pos_at_input || a->pos_at_attn || a->pos_at_ca_queries) && !curr_pos))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory attention: NULL argument");
    if (feat_h <= 0 || feat_w <= 0 || M <= 0 || num_obj_ptr_tokens < 0 || num_obj_ptr_tokens > M)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory attention: bad sizes (feat %dx%d, M %d, ptr tokens %d)",
                       feat_h, feat_w, M, num_obj_ptr_tokens);
    const int64_t Lq = (int64_t)feat_h * feat_w;
    const int64_t n_rope = M - num_obj_ptr_tokens;
    if (n_rope > 0 && n_rope != Lq && !(a->rope_k_repeat && n_rope % Lq == 0))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG,
                       "memory attention: %lld RoPE memory tokens are not whole frames of %lld tokens",
                       (long long)n_rope, (long long)Lq);
    SAM_TRY(rope_prepare(a, feat_h, feat_w));

    sam_backend *be = a->be;
    const int C = a->C;
    sam_arena_reset(&a->arena);
    /* A bank larger than reserved (many conditioning frames) grows the arena
     * once to one chunk of the new size; equal or smaller banks allocate nothing. */
    if (!sam_arena_reserve(&a->arena, mattn_scratch_bytes(a, Lq, M, keys_ready)))
        return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: scratch for %d memory tokens", M);
    /* the running tgt in the output buffer (normalised in place at the end),
     * unless the output doubles as the position input, read every layer */
    const bool x_in_out = out != curr_pos;
    float *x = x_in_out ? out : sam_arena_f32(&a->arena, (size_t)Lq * C); // (Lq, C) running tgt
    float *t = sam_arena_f32(&a->arena, (size_t)Lq * C);               // (Lq, C) normed tgt
    float *qin = mattn_needs_qin(a) ? sam_arena_f32(&a->arena, (size_t)Lq * C) : t; // (Lq, C) normed tgt + pos
    float *t2 = sam_arena_f32(&a->arena, (size_t)Lq * C);              // (Lq, C) branch output
    float *q = sam_arena_f32(&a->arena, (size_t)Lq * a->Ci);           // (Lq, Ci)
    float *big = sam_arena_f32(&a->arena, (size_t)mattn_shared_floats(a, Lq, M));
    float *k = big;                                                    // (max(M, Lq), Ci) keys
    float *v = big + Lq * a->Ci;                                       // (Lq, Ci) self-attention values
    float *ao = big + 2 * Lq * a->Ci;                                  // (Lq, Ci) self-attention out
    float *hid = big;                                                  // (chunk, dff) FFN hidden
    float *aov = sam_arena_f32(&a->arena, (size_t)Lq * a->heads * a->kv_dim); // (Lq, heads*kv_dim)
    float *kin = mattn_needs_kin(a, keys_ready) ? sam_arena_f32(&a->arena, (size_t)M * a->kv_dim)
                                                : t2; // (M, kv_dim) memory + memory_pos (unused: never read)
    const int64_t chunk = Lq < MEM_MLP_CHUNK ? Lq : MEM_MLP_CHUNK;
    if (!x || !t || !qin || !t2 || !q || !big || !aov || !kin)
        return SAM_ERR(SAM2D_ERR_NOMEM, "memory attention: scratch");

    if (a->pos_at_input)
        be->axpby(be, x, curr, 1.0f, curr_pos, 0.1f, Lq * C);
    else if (x != curr)
        be->copy(be, x, curr, (size_t)Lq * C * sizeof(float));
    /* Cross-attention keys are the same for every layer. */
    const float *keys = memory;
    if (keys_ready) {
        keys = memory_pos; /* the caller's sum: kin stays untouched (its pages never become resident) */
    } else if (a->pos_at_ca_keys) {
        be->add(be, kin, memory, memory_pos, (int64_t)M * a->kv_dim);
        keys = kin;
    }

    for (int i = 0; i < a->n_layers; i++) {
        const mattn_layer *ly = &a->layers[i];
        /* self-attention (pre-norm); RoPE on q and k */
        be->layer_norm(be, t, x, ly->n1_w, ly->n1_b, Lq, C, 1e-5f);
        const float *sq = t;
        if (a->pos_at_attn) {
            be->add(be, qin, t, curr_pos, Lq * C);
            sq = qin;
        }
        rope_attention(a, &ly->sa, t2, sq, Lq, sq, t, Lq, C, Lq, q, k, v, ao);
        be->add(be, x, x, t2, Lq * C);

        /* cross-attention to the memory bank; RoPE on q and the spatial keys */
        be->layer_norm(be, t, x, ly->n2_w, ly->n2_b, Lq, C, 1e-5f);
        const float *cq = t;
        if (a->pos_at_ca_queries) {
            be->add(be, qin, t, curr_pos, Lq * C);
            cq = qin;
        }
        cross_attention(a, &ly->ca, t2, cq, Lq, keys, memory, M, n_rope, q, k, aov);
        be->add(be, x, x, t2, Lq * C);

        /* feed-forward */
        be->layer_norm(be, t, x, ly->n3_w, ly->n3_b, Lq, C, 1e-5f);
        for (int64_t r0 = 0; r0 < Lq; r0 += chunk) {
            const int n = (int)(Lq - r0 < chunk ? Lq - r0 : chunk);
            be->linear(be, hid, t + r0 * C, ly->lin1_w, ly->lin1_b, n, a->dff, C);
            be->relu(be, hid, hid, (int64_t)n * a->dff);
            be->linear(be, t2 + r0 * C, hid, ly->lin2_w, ly->lin2_b, n, C, a->dff);
        }
        be->add(be, x, x, t2, Lq * C);
        if (layer_out) be->copy(be, layer_out + (size_t)i * Lq * C, x, (size_t)Lq * C * sizeof(float));
    }
    be->layer_norm(be, out, x, a->norm_w, a->norm_b, Lq, C, 1e-5f);
    return SAM2D_OK;
}

sam2d_status sam_memory_share_scratch(sam_memory_encoder *m, sam_memory_attention *a) {
    if (!m || !a) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "memory: NULL argument");
    if (m->scratch == &a->arena) return SAM2D_OK;
    const size_t need = menc_scratch_bytes(m), have = mattn_scratch_bytes(a, a->max_hw, a->max_mem, false);
    if (!sam_arena_reserve(&a->arena, need > have ? need : have))
        return SAM_ERR(SAM2D_ERR_NOMEM, "memory: shared scratch");
    sam_arena_free(&m->arena);
    sam_arena_init(&m->arena);
    sam_arena_on_backend(&m->arena, m->be); /* its own chunks, if ever needed again, stay buffers */
    m->scratch = &a->arena;
    return SAM2D_OK;
}

size_t sam_memory_encoder_weight_bytes(const sam_memory_encoder *m) {
    return m ? m->weights.bytes : 0; /* its pos table included */
}

size_t sam_memory_attention_weight_bytes(const sam_memory_attention *a) {
    if (!a) return 0;
    /* the set holds the folded W_o . W_v, b and the configured size's RoPE tables; + another size's */
    return a->weights.bytes + 2 * (size_t)a->alt_h * a->alt_w * (a->head_dim / 2) * sizeof(float);
}

size_t sam_memory_attention_scratch_bytes(const sam_memory_attention *a, size_t *resident) {
    if (resident) *resident = a ? sam_arena_resident(&a->arena) : 0;
    return a ? a->arena.capacity : 0;
}

size_t sam_memory_attention_scratch_need(const sam_memory_attention *a, int64_t M) {
    return a ? mattn_scratch_bytes(a, a->max_hw, M, true) : 0;
}

size_t sam_memory_encoder_scratch_need(const sam_memory_encoder *m) { return m ? menc_scratch_bytes(m) : 0; }

void sam_memory_attention_use_scratch(sam_memory_attention *a, void *buf, size_t bytes) {
    if (a) sam_arena_use_buffer(&a->arena, buf, bytes);
}

void sam_memory_encoder_use_scratch(sam_memory_encoder *m, void *buf, size_t bytes) {
    if (!m) return;
    m->scratch = &m->arena;
    sam_arena_use_buffer(&m->arena, buf, bytes);
}
