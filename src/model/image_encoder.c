/* SAM 2 image encoder: Hiera trunk, FPN neck, sine position encodings and the
 * decoder's conv_s0/conv_s1 projections (see image_encoder.h).
 *
 * Layout: every activation is channels-last (tokens, C) so that Linear layers
 * and 1x1 convs are single GEMMs. Windowed attention gathers groups of windows
 * (zero padded, as the reference pads after norm1) into a dense buffer, runs
 * qkv as one GEMM, attention with windows as the batch, and scatters the
 * projected result back while adding the residual. */
#include "model/image_encoder.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/error.h"

#define LN_EPS 1e-6f
/* Tokens per window group / MLP chunk: bounds scratch memory, keeps GEMMs large. */
#define GROUP_TOKENS 4096
/* Floats of qkv a window group may fill at least: groups of wide blocks are
 * cut to the size of the K/V the global blocks need anyway (the largest
 * buffer of the forward), so no group makes the arena grow. */
#define QKV_MIN_FLOATS ((size_t)1 << 21)
#define MLP_ROWS 512 /* rows per MLP chunk: GELU fused, the hidden stays small */
#define POOL_BAND_FLOATS ((size_t)1 << 20) /* shortcut projection of one band of a pooling block */
#define Q_ROWS 1024   /* queries per chunk of a global attention block (K/V projected once) */
/* Rows per chunk of a neck level that is only projected (lateral conv then conv_s). */
#define NECK_ROWS 1024
#define MAX_TAPS 64
#define MAX_BLOCKS 64

typedef struct {
    int dim, dim_out, heads, hidden;
    int window;            /* 0: global attention */
    bool pool;             /* q-pool (2x2 max) at this block */
    int H, W;              /* input map */
    int Ho, Wo;            /* output map (H/2 when pooling) */
    /* window geometry on the input map */
    int wh, ww;            /* window size (the whole map when global) */
    int nwh, nww;          /* windows per axis (after zero padding) */
    int qh, qw;            /* query window size (wh/2 when pooling) */
    int group;             /* windows per group */
    float *norm1_w, *norm1_b;  /* (dim) */
    float *qkv_w;              /* (3*dim_out, dim) */
    float *qkv_b;              /* (3*dim_out) */
    float *proj_w;             /* (dim_out, dim_out) attention output projection */
    float *proj_b;             /* (dim_out) */
    float *norm2_w, *norm2_b;  /* (dim_out) */
    float *mlp1_w;             /* (hidden, dim_out) */
    float *mlp1_b;             /* (hidden) */
    float *mlp2_w;             /* (dim_out, hidden) */
    float *mlp2_b;             /* (dim_out) */
    float *sc_w;               /* (dim_out, dim) shortcut projection when dim != dim_out, else NULL */
    float *sc_b;               /* (dim_out) */
} hiera_block;

typedef struct {
    sam_encoder_tap_kind kind;
    int index;
    float *dst;
} enc_tap;

struct sam_image_encoder {
    sam2d_model_config cfg;
    sam_backend *be;
    sam_weight_set weights;
    int S;                       /* input size */
    int C0;                      /* embed dim */
    int H0, W0;                  /* patch-embed map */
    int nblocks, nstages;
    int stage_end[SAM2D_MAX_STAGES];   /* last block of each stage */
    int stage_h[SAM2D_MAX_STAGES], stage_w[SAM2D_MAX_STAGES], stage_c[SAM2D_MAX_STAGES];
    hiera_block blk[MAX_BLOCKS];
    float *patch_w;              /* (C0, 3, 7, 7) */
    float *patch_b;              /* (C0) */
    float *pos_embed;            /* (H0*W0, C0) const: bicubic background + tiled window embed, made at load */
    /* neck */
    int d_model;
    float *lat_w[SAM2D_MAX_STAGES]; /* (d_model, stage_c[level]) lateral 1x1 conv of level (0 = highest res) */
    float *lat_b[SAM2D_MAX_STAGES]; /* (d_model) */
    bool topdown[SAM2D_MAX_STAGES];
    int nout;                    /* levels after scalp */
    bool high_res;               /* conv_s0/conv_s1 present and applied */
    float *conv_s0_w;            /* (d_model/8, d_model) */
    float *conv_s0_b;            /* (d_model/8) */
    float *conv_s1_w;            /* (d_model/4, d_model) */
    float *conv_s1_b;            /* (d_model/4) */
    float *pe_y[SAM2D_MAX_STAGES]; /* (h, d_model/2) const: sine table of the y half per level */
    float *pe_x[SAM2D_MAX_STAGES]; /* (w, d_model/2) const: x half */
    /* activations: buffers carved once from the arena (on the back end) at create */
    sam_arena arena;
    float *X;                    /* (max tokens*C) trunk activations, updated in place block by block */
    float *Y;                    /* (Ho*Wo*dim_out) output of a projecting block without pooling (none in SAM 2) */
    float *T;                    /* (band tokens, dim_out) shortcut projection before pooling */
    float *OB;                   /* (band output tokens, dim_out) one band of a pooling block's output */
    /* WIN holds norm1 of the gathered windows (or of a band) until qkv has read
     * them; then the attention output and the pooled queries (group*qh*qw,
     * dim_out) each, one after the other. QKV likewise holds the projected
     * attention output once the attention has read q, k and v. */
    float *WIN;                  /* (group*wh*ww or band tokens, dim) */
    float *QKV;                  /* (group*wh*ww, 3*dim_out); (tokens, 2*dim_out) K/V of a global block */
    float *N2;                   /* (MLP_ROWS, dim_out) */
    float *HID;                  /* (MLP_ROWS, hidden); a chunk of queries and its attention output */
    bool keep[SAM2D_MAX_STAGES];   /* level kept whole (part of the top-down pass), else streamed */
    float *LAT[SAM2D_MAX_STAGES]; /* (h*w, d_model) neck level outputs of kept levels, else NULL */
    float *LCH;                  /* (NECK_ROWS, d_model) chunk of a streamed level / of a top-down upsample */
    enc_tap taps[MAX_TAPS];      /* destinations are host arrays (filled with to_host) */
    int ntaps;
    bool prepared;               /* linear weights registered with the back end (forgotten at free) */
};

/* ------------------------------------------------------------------------ */
/* geometry                                                                  */

static int ceil_div(int a, int b) { return (a + b - 1) / b; }
static size_t mx(size_t a, size_t b) { return a > b ? a : b; }

/* Global attention without pooling: K/V of the whole map projected once, the
 * queries (projection, attention, output projection) in chunks of Q_ROWS. */
static bool kv_split(const hiera_block *b) {
    return !b->pool && b->nwh == 1 && b->nww == 1 && b->wh == b->H && b->ww == b->W;
}

typedef struct {
    int nblocks, nstages, H0, W0;
    int stage_end[SAM2D_MAX_STAGES];
    int h[SAM2D_MAX_STAGES], w[SAM2D_MAX_STAGES], c[SAM2D_MAX_STAGES];
} trunk_shape;

/* Map sizes and channels per stage, as the reference derives them. */
static void trunk_geometry(const sam2d_model_config *cfg, trunk_shape *t) {
    memset(t, 0, sizeof(*t));
    t->nstages = cfg->num_stages;
    t->H0 = t->W0 = sam_conv_out(cfg->image_size, 7, 4, 3);
    int h = t->H0, w = t->W0, c = cfg->embed_dim, end = -1;
    for (int s = 0; s < cfg->num_stages && s < SAM2D_MAX_STAGES; s++) {
        if (s > 0) {
            c = (int)(c * cfg->dim_mul);
            if (s <= cfg->q_pool) {
                h /= cfg->q_stride[0] > 0 ? cfg->q_stride[0] : 1;
                w /= cfg->q_stride[1] > 0 ? cfg->q_stride[1] : 1;
            }
        }
        end += cfg->stages[s];
        t->stage_end[s] = end;
        t->h[s] = h;
        t->w[s] = w;
        t->c[s] = c;
    }
    t->nblocks = end + 1;
}

static int out_levels(const sam2d_model_config *cfg) {
    int n = cfg->num_stages - cfg->scalp;
    return n < 0 ? 0 : (n > 3 ? 3 : n);
}

static int level_channels(const sam2d_model_config *cfg, int l) {
    if (cfg->use_high_res_features_in_sam) {
        if (l == 0) return cfg->d_model / 8;
        if (l == 1) return cfg->d_model / 4;
    }
    return cfg->d_model;
}

/* SAM_FEATURES_POS_TOP names "the last level" whatever the level count. */
static bool want_pos(unsigned mask, int l, int nlevels) {
    if (mask == SAM_FEATURES_POS_TOP) return l == nlevels - 1;
    return (mask >> l) & 1u;
}

size_t sam_image_features_floats_ex(const sam2d_model_config *cfg, unsigned pos_levels) {
    trunk_shape t;
    trunk_geometry(cfg, &t);
    size_t n = 0;
    int nl = out_levels(cfg);
    for (int l = 0; l < nl; l++)
        n += (size_t)t.h[l] * t.w[l] * (size_t)(level_channels(cfg, l) + (want_pos(pos_levels, l, nl) ? cfg->d_model : 0));
    return n;
}

size_t sam_image_features_floats(const sam2d_model_config *cfg) {
    return sam_image_features_floats_ex(cfg, SAM_FEATURES_POS_ALL);
}

void sam_image_features_bind_ex(const sam2d_model_config *cfg, float *buf, unsigned pos_levels, sam_image_features *f) {
    trunk_shape t;
    trunk_geometry(cfg, &t);
    memset(f, 0, sizeof(*f));
    f->num_levels = out_levels(cfg);
    for (int l = 0; l < f->num_levels; l++) {
        f->h[l] = t.h[l];
        f->w[l] = t.w[l];
        f->c[l] = level_channels(cfg, l);
        f->feat[l] = buf;
        buf += (size_t)t.h[l] * t.w[l] * f->c[l];
        if (want_pos(pos_levels, l, f->num_levels)) {
            f->pos[l] = buf;
            buf += (size_t)t.h[l] * t.w[l] * cfg->d_model;
        }
    }
}

void sam_image_features_bind(const sam2d_model_config *cfg, float *buf, sam_image_features *f) {
    sam_image_features_bind_ex(cfg, buf, SAM_FEATURES_POS_ALL, f);
}

/* ------------------------------------------------------------------------ */
/* constant tables                                                           */

/* torch's bicubic convolution coefficients (A = -0.75). */
static void cubic_coeffs(float t, float c[4]) {
    const float A = -0.75f;
    float x1 = t + 1.0f, x2 = 1.0f - t, x3 = x2 + 1.0f;
    c[0] = ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A;
    c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
    c[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
    c[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

typedef struct {
    int idx[4];
    float w[4];
} cubic_tap;

static void cubic_taps(cubic_tap *tp, int in, int out) {
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float real = scale * ((float)i + 0.5f) - 0.5f;
        float fl = floorf(real);
        int i0 = (int)fl;
        cubic_coeffs(real - fl, tp[i].w);
        for (int k = 0; k < 4; k++) {
            int j = i0 - 1 + k;
            tp[i].idx[k] = j < 0 ? 0 : (j > in - 1 ? in - 1 : j);
        }
    }
}

/* pos (H*W, C) = bicubic(bg (C, bh, bw) -> H x W, align_corners=False) + tile(win (C, ws, ws)). */
static sam2d_status make_pos_embed(float *pos, const float *bg, int bh, int bw, const float *win, int ws, int C, int H,
                                   int W) {
    cubic_tap *ty = sam_malloc(sizeof(cubic_tap) * (size_t)H);
    cubic_tap *tx = sam_malloc(sizeof(cubic_tap) * (size_t)W);
    if (!ty || !tx) {
        sam_free(ty);
        sam_free(tx);
        return SAM_ERR(SAM2D_ERR_NOMEM, "image encoder: out of memory for the position embedding");
    }
    cubic_taps(ty, bh, H);
    cubic_taps(tx, bw, W);
    for (int c = 0; c < C; c++) {
        const float *p = bg + (size_t)c * bh * bw;
        const float *wp = win + (size_t)c * ws * ws;
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                /* x-direction first for each of the 4 source rows, then y, as torch nests them. */
                float acc = 0;
                for (int k = 0; k < 4; k++) {
                    const float *row = p + (size_t)ty[y].idx[k] * bw;
                    float t = row[tx[x].idx[0]] * tx[x].w[0];
                    for (int m = 1; m < 4; m++) t += row[tx[x].idx[m]] * tx[x].w[m];
                    if (k == 0)
                        acc = t * ty[y].w[0];
                    else
                        acc += t * ty[y].w[k];
                }
                pos[((size_t)y * W + x) * C + c] = acc + wp[(y % ws) * ws + (x % ws)];
            }
        }
    }
    sam_free(ty);
    sam_free(tx);
    return SAM2D_OK;
}

/* Sine table of one axis for PositionEmbeddingSine: (n, npf) with coordinates
 * 1..n normalised by (n + 1e-6) * 2pi, channel k: sin (even k) / cos (odd k)
 * of coord / T^(2*(k/2)/npf); all in float32 as the reference. */
static void sine_table(float *tab, int n, int npf, float temperature, bool normalize) {
    const float scale = (float)(2.0 * M_PI);
    float denom = (float)n + 1e-6f;
    for (int i = 0; i < n; i++) {
        float e = (float)(i + 1);
        if (normalize) e = e / denom * scale;
        for (int k = 0; k < npf; k++) {
            float dim_t = powf(temperature, (float)(2 * (k / 2)) / (float)npf);
            float v = e / dim_t;
            tab[(size_t)i * npf + k] = (k & 1) ? cosf(v) : sinf(v);
        }
    }
}

/* pos (h*w, d) = [pe_y[y] | pe_x[x]] (y channels first). */
static void assemble_pos(float *pos, const float *pe_y, const float *pe_x, int h, int w, int d) {
    int half = d / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *o = pos + ((size_t)y * w + x) * d;
            memcpy(o, pe_y + (size_t)y * half, sizeof(float) * half);
            memcpy(o + half, pe_x + (size_t)x * half, sizeof(float) * half);
        }
}

/* The same into a buffer, with copies only (no host access): the y half of
 * every column, then the x half of every row; h + w queued 2-D copies. */
static void assemble_pos_dev(sam_backend *be, float *pos, const float *pe_y, const float *pe_x, int h, int w, int d) {
    const size_t half = (size_t)d / 2, hb = half * sizeof(float);
    for (int x = 0; x < w; x++) be->copy2d(be, pos + (size_t)x * d, (size_t)w * d * sizeof(float), pe_y, hb, hb, (size_t)h);
    for (int y = 0; y < h; y++)
        be->copy2d(be, pos + (size_t)y * w * d + half, (size_t)d * sizeof(float), pe_x, hb, hb, (size_t)w);
}

/* ------------------------------------------------------------------------ */
/* create / free                                                             */

static bool in_list(const int *list, int n, int v) {
    for (int i = 0; i < n; i++)
        if (list[i] == v) return true;
    return false;
}

static sam2d_status check_config(const sam2d_model_config *cfg, const trunk_shape *t) {
    if (cfg->image_size <= 0 || cfg->embed_dim <= 0 || cfg->num_heads <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: bad image_size/embed_dim/num_heads");
    if (cfg->num_stages < 1 || cfg->num_stages > SAM2D_MAX_STAGES)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: %d stages (1..%d supported)", cfg->num_stages,
                       SAM2D_MAX_STAGES);
    if (t->nblocks <= 0 || t->nblocks > MAX_BLOCKS)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: %d blocks (1..%d supported)", t->nblocks, MAX_BLOCKS);
    for (int s = 0; s < cfg->num_stages; s++)
        if (cfg->stages[s] <= 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: stage %d has no blocks", s);
    if (cfg->q_pool < 0 || cfg->q_pool > cfg->num_stages - 1)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: q_pool %d out of range", cfg->q_pool);
    if (cfg->q_pool > 0 && (cfg->q_stride[0] != 2 || cfg->q_stride[1] != 2))
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: q_stride (%d, %d) (only (2, 2))", cfg->q_stride[0],
                       cfg->q_stride[1]);
    if (cfg->scalp < 0 || cfg->num_stages - cfg->scalp < 1 || cfg->num_stages - cfg->scalp > 3)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: %d stages with scalp %d (1..3 output levels)",
                       cfg->num_stages, cfg->scalp);
    if (cfg->d_model <= 0 || cfg->d_model % 8)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: d_model %d (must be a multiple of 8)", cfg->d_model);
    if (cfg->neck_pos_num_feats != cfg->d_model || cfg->neck_pos_num_feats % 4)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: neck position features %d != d_model %d",
                       cfg->neck_pos_num_feats, cfg->d_model);
    int ws0 = cfg->window_spec[0];
    if (ws0 <= 0 || t->H0 % ws0 || t->W0 % ws0)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                       "image encoder: patch grid %dx%d is not a multiple of the first window %d (image_size %d)",
                       t->H0, t->W0, ws0, cfg->image_size);
    for (int s = 0; s + 1 < cfg->num_stages; s++)
        if (in_list(cfg->fpn_top_down_levels, cfg->n_fpn_top_down_levels, s) &&
            (t->h[s] != 2 * t->h[s + 1] || t->w[s] != 2 * t->w[s + 1]))
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                           "image encoder: top-down level %d (%dx%d) is not twice level %d (%dx%d); use an image size "
                           "divisible by %d",
                           s, t->h[s], t->w[s], s + 1, t->h[s + 1], t->w[s + 1], 4 << cfg->num_stages);
    for (int s = 0; s < cfg->num_stages; s++) {
        int want = cfg->backbone_channel_list[cfg->num_stages - 1 - s];
        if (want != t->c[s])
            return SAM_ERR(SAM2D_ERR_MISMATCH, "image encoder: backbone_channel_list[%d] = %d but stage %d has %d channels",
                           cfg->num_stages - 1 - s, want, s, t->c[s]);
        if (t->h[s] <= 0 || t->w[s] <= 0)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: image_size %d too small", cfg->image_size);
    }
    return SAM2D_OK;
}

/* Block hyper-parameters exactly as Hiera.__init__ assigns them. */
static sam2d_status plan_blocks(sam_image_encoder *e) {
    const sam2d_model_config *cfg = &e->cfg;
    int dim = cfg->embed_dim, heads = cfg->num_heads, cur_stage = 1;
    int h = e->H0, w = e->W0;
    for (int i = 0; i < e->nblocks; i++) {
        hiera_block *b = &e->blk[i];
        int dim_out = dim;
        int window = cfg->window_spec[cur_stage - 1];
        if (in_list(cfg->global_att_blocks, cfg->n_global_att_blocks, i)) window = 0;
        bool stage_change = false;
        for (int s = 0; s < e->nstages - 1; s++)
            if (i - 1 == e->stage_end[s]) stage_change = true;
        if (stage_change) {
            dim_out = (int)(dim * cfg->dim_mul);
            heads = (int)(heads * cfg->head_mul);
            cur_stage++;
        }
        bool pool = false;
        for (int s = 0; s < cfg->q_pool && s < e->nstages - 1; s++)
            if (i == e->stage_end[s] + 1) pool = true;
        b->dim = dim;
        b->dim_out = dim_out;
        b->heads = heads;
        b->hidden = (int)(dim_out * cfg->mlp_ratio);
        b->window = window;
        b->pool = pool;
        b->H = h;
        b->W = w;
        if (heads <= 0 || dim_out % heads)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: block %d: %d channels not divisible by %d heads", i,
                           dim_out, heads);
        if (pool && dim == dim_out)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: block %d pools without changing channels", i);
        /* pooling blocks write their output over their consumed input, a band of window rows at a time */
        if (pool && (size_t)(window > 0 ? window : h) / 2 * (w / 2) * dim_out > (size_t)(window > 0 ? window : h) * w * dim)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: block %d grows the map when pooling", i);
        if (window > 0) {
            b->wh = b->ww = window;
            b->nwh = ceil_div(h, window);
            b->nww = ceil_div(w, window);
        } else {
            b->wh = h;
            b->ww = w;
            b->nwh = b->nww = 1;
        }
        if (pool) {
            b->Ho = h / 2;
            b->Wo = w / 2;
            b->qh = b->wh / 2;
            b->qw = b->ww / 2;
            /* The reference unpartitions the pooled windows with the padding recomputed
             * for the pooled map; both grids must agree. */
            if (window > 0 && (ceil_div(b->Ho, b->qh) != b->nwh || ceil_div(b->Wo, b->qw) != b->nww))
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                               "image encoder: block %d: window %d does not tile the %dx%d map consistently after pooling",
                               i, window, h, w);
        } else {
            b->Ho = h;
            b->Wo = w;
            b->qh = b->wh;
            b->qw = b->ww;
        }
        if (b->hidden <= 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: mlp_ratio %g", cfg->mlp_ratio);
        h = b->Ho;
        w = b->Wo;
        dim = dim_out;
    }
    /* Window groups: up to GROUP_TOKENS tokens and the qkv budget. */
    size_t budget = QKV_MIN_FLOATS;
    for (int i = 0; i < e->nblocks; i++) {
        const hiera_block *b = &e->blk[i];
        if (b->nwh * b->nww == 1) budget = mx(budget, (size_t)b->wh * b->ww * (kv_split(b) ? 2 : 3) * b->dim_out);
    }
    for (int i = 0; i < e->nblocks; i++) {
        hiera_block *b = &e->blk[i];
        size_t lk = (size_t)b->wh * b->ww, g = (size_t)GROUP_TOKENS / lk, gb = budget / (lk * 3 * b->dim_out);
        if (gb < g) g = gb;
        if (g < 1) g = 1;
        if (g > (size_t)(b->nwh * b->nww)) g = (size_t)(b->nwh * b->nww);
        b->group = (int)g;
    }
    return SAM2D_OK;
}

static void load_weights(sam_image_encoder *e, sam_weight_loader *L) {
    const sam2d_model_config *cfg = &e->cfg;
    const char *tp = "image_encoder.trunk";
    int C0 = cfg->embed_dim, ws0 = cfg->window_spec[0];
    e->patch_w = sam_weight(L, SAM_W4(C0, 3, 7, 7), "%s.patch_embed.proj.weight", tp);
    e->patch_b = sam_weight(L, SAM_W1(C0), "%s.patch_embed.proj.bias", tp);
    int bh = cfg->window_pos_embed_bkg_spatial_size[0], bw = cfg->window_pos_embed_bkg_spatial_size[1];
    float *bg = sam_weight(L, SAM_W4(1, C0, bh, bw), "%s.pos_embed", tp);
    float *win = sam_weight(L, SAM_W4(1, C0, ws0, ws0), "%s.pos_embed_window", tp);
    /* Both only feed the precomputed table; keep them (owned by the set) for simplicity.
     * The table is const memory of the set, written here before the set is published. */
    e->pos_embed = NULL;
    if (bg && win) {
        e->pos_embed = sam_weight_set_alloc(&e->weights, (size_t)e->H0 * e->W0 * C0);
        if (!e->pos_embed)
            sam_weight_loader_fail(L, "out of memory for the position embedding");
        else if (make_pos_embed(e->pos_embed, bg, bh, bw, win, ws0, C0, e->H0, e->W0) != SAM2D_OK)
            sam_weight_loader_fail(L, "out of memory for the position embedding");
    }
    for (int i = 0; i < e->nblocks; i++) {
        hiera_block *b = &e->blk[i];
        int d = b->dim, o = b->dim_out, hd = b->hidden;
        b->norm1_w = sam_weight(L, SAM_W1(d), "%s.blocks.%d.norm1.weight", tp, i);
        b->norm1_b = sam_weight(L, SAM_W1(d), "%s.blocks.%d.norm1.bias", tp, i);
        b->qkv_w = sam_weight(L, SAM_W2(3 * o, d), "%s.blocks.%d.attn.qkv.weight", tp, i);
        b->qkv_b = sam_weight(L, SAM_W1(3 * o), "%s.blocks.%d.attn.qkv.bias", tp, i);
        b->proj_w = sam_weight(L, SAM_W2(o, o), "%s.blocks.%d.attn.proj.weight", tp, i);
        b->proj_b = sam_weight(L, SAM_W1(o), "%s.blocks.%d.attn.proj.bias", tp, i);
        b->norm2_w = sam_weight(L, SAM_W1(o), "%s.blocks.%d.norm2.weight", tp, i);
        b->norm2_b = sam_weight(L, SAM_W1(o), "%s.blocks.%d.norm2.bias", tp, i);
        b->mlp1_w = sam_weight(L, SAM_W2(hd, o), "%s.blocks.%d.mlp.layers.0.weight", tp, i);
        b->mlp1_b = sam_weight(L, SAM_W1(hd), "%s.blocks.%d.mlp.layers.0.bias", tp, i);
        b->mlp2_w = sam_weight(L, SAM_W2(o, hd), "%s.blocks.%d.mlp.layers.1.weight", tp, i);
        b->mlp2_b = sam_weight(L, SAM_W1(o), "%s.blocks.%d.mlp.layers.1.bias", tp, i);
        if (d != o) {
            b->sc_w = sam_weight(L, SAM_W2(o, d), "%s.blocks.%d.proj.weight", tp, i);
            b->sc_b = sam_weight(L, SAM_W1(o), "%s.blocks.%d.proj.bias", tp, i);
        }
    }
    int n = e->nstages - 1, dm = cfg->d_model;
    for (int lvl = 0; lvl < e->nstages; lvl++) {
        /* neck.convs[j] takes the j-th entry of backbone_channel_list (deepest first). */
        int j = n - lvl;
        e->lat_w[lvl] = sam_weight(L, SAM_W4(dm, e->stage_c[lvl], 1, 1), "image_encoder.neck.convs.%d.conv.weight", j);
        e->lat_b[lvl] = sam_weight(L, SAM_W1(dm), "image_encoder.neck.convs.%d.conv.bias", j);
    }
    if (e->high_res) {
        e->conv_s0_w = sam_weight(L, SAM_W4(dm / 8, dm, 1, 1), "sam_mask_decoder.conv_s0.weight");
        e->conv_s0_b = sam_weight(L, SAM_W1(dm / 8), "sam_mask_decoder.conv_s0.bias");
        e->conv_s1_w = sam_weight(L, SAM_W4(dm / 4, dm, 1, 1), "sam_mask_decoder.conv_s1.weight");
        e->conv_s1_b = sam_weight(L, SAM_W1(dm / 4), "sam_mask_decoder.conv_s1.bias");
    }
}

/* Let the back end prepare (bf16 mode: pack once) or forget every Linear /
 * 1x1-conv weight of the encoder. Preparing is only a speed-up: a failure
 * leaves the per-call path. */
static void prepare_linears(sam_image_encoder *e, bool forget) {
    sam_backend *be = e->be;
    if (!be->linear_prepare || !be->linear_forget) return;
#define PREP(w, n, k)                                         \
    do {                                                      \
        if (w) {                                              \
            if (forget)                                       \
                be->linear_forget(be, (w));                   \
            else                                              \
                (void)be->linear_prepare(be, (w), (n), (k));  \
        }                                                     \
    } while (0)
    for (int i = 0; i < e->nblocks; i++) {
        hiera_block *b = &e->blk[i];
        if (kv_split(b)) { /* q and k/v projected separately */
            PREP(b->qkv_w, b->dim_out, b->dim);
            PREP(b->qkv_w + (size_t)b->dim_out * b->dim, 2 * b->dim_out, b->dim);
        } else {
            PREP(b->qkv_w, 3 * b->dim_out, b->dim);
        }
        PREP(b->proj_w, b->dim_out, b->dim_out);
        PREP(b->mlp1_w, b->hidden, b->dim_out);
        PREP(b->mlp2_w, b->dim_out, b->hidden);
        PREP(b->sc_w, b->dim_out, b->dim);
    }
    for (int l = 0; l < e->nstages; l++) PREP(e->lat_w[l], e->d_model, e->stage_c[l]);
    PREP(e->conv_s0_w, e->d_model / 8, e->d_model);
    PREP(e->conv_s1_w, e->d_model / 4, e->d_model);
#undef PREP
}

/* Window rows per band of a pooling block: about GROUP_TOKENS input tokens,
 * and at most POOL_BAND_FLOATS of shortcut projection. */
static int pool_wrows(const hiera_block *b) {
    int k = GROUP_TOKENS / (b->wh * b->W);
    size_t kb = POOL_BAND_FLOATS / ((size_t)b->wh * b->W * b->dim_out);
    if ((size_t)k > kb) k = (int)kb;
    return k < 1 ? 1 : k;
}

/* Scratch sizes (floats) for the whole forward, carved once. */
typedef struct {
    size_t act, y, t, ob, win, qkv, n2, hid, lch;
    size_t lat[SAM2D_MAX_STAGES];
} enc_sizes;

static void scratch_sizes(const sam_image_encoder *e, enc_sizes *z) {
    memset(z, 0, sizeof(*z));
    z->act = (size_t)e->H0 * e->W0 * e->C0;
    for (int i = 0; i < e->nblocks; i++) {
        const hiera_block *b = &e->blk[i];
        size_t in = (size_t)b->H * b->W, out = (size_t)b->Ho * b->Wo;
        z->act = mx(z->act, mx(in * b->dim, out * b->dim_out));
        if (b->pool) { /* one band of window rows: its shortcut and its output */
            size_t rows = (size_t)pool_wrows(b) * b->wh;
            if (rows > (size_t)b->H) rows = (size_t)b->H;
            z->t = mx(z->t, rows * b->W * b->dim_out);
            z->win = mx(z->win, rows * b->W * b->dim);
            z->ob = mx(z->ob, (size_t)pool_wrows(b) * b->qh * b->Wo * b->dim_out);
        } else if (b->dim != b->dim_out) {
            z->y = mx(z->y, out * b->dim_out);
            z->win = mx(z->win, (size_t)GROUP_TOKENS * b->dim);
        }
        size_t lk = (size_t)b->group * b->wh * b->ww, lq = (size_t)b->group * b->qh * b->qw;
        z->win = mx(z->win, lk * b->dim);
        /* the attention output, then the pooled queries, share WIN (read by qkv before) */
        z->win = mx(z->win, lq * b->dim_out * (b->pool ? 2 : 1));
        z->qkv = mx(z->qkv, lk * (kv_split(b) ? 2 : 3) * b->dim_out);
        /* a chunk never has more rows than the map: the late, wide stages need no more than their tokens */
        size_t mrows = out < (size_t)MLP_ROWS ? out : (size_t)MLP_ROWS;
        z->n2 = mx(z->n2, mrows * b->dim_out);
        z->hid = mx(z->hid, mrows * b->hidden);
        /* a chunk of queries and its attention output live in HID during the attention */
        if (kv_split(b)) z->hid = mx(z->hid, 2 * (out < (size_t)Q_ROWS ? out : (size_t)Q_ROWS) * b->dim_out);
    }
    for (int l = 0; l < e->nstages; l++) {
        size_t n = (size_t)e->stage_h[l] * e->stage_w[l] * e->d_model;
        if (e->keep[l]) z->lat[l] = n;
    }
    z->lch = (size_t)NECK_ROWS * e->d_model;
    for (int l = 0; l + 1 < e->nstages; l++) /* at least one source row of a top-down upsample */
        if (e->topdown[l]) z->lch = mx(z->lch, (size_t)4 * e->stage_w[l + 1] * e->d_model);
}

static size_t sizes_total(const enc_sizes *z, int nstages) {
    size_t f[] = {z->act, z->y, z->t, z->ob, z->win, z->qkv, z->n2, z->hid, z->lch};
    size_t tot = 0;
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) tot += (f[i] * sizeof(float) + 63) & ~(size_t)63;
    for (int l = 0; l < nstages; l++) tot += (z->lat[l] * sizeof(float) + 63) & ~(size_t)63;
    return tot + 64;
}

sam2d_status sam_image_encoder_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L,
                                                  sam_backend *be, sam_image_encoder **out) {
    *out = NULL;
    if (!cfg || !L || !be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: NULL argument");
    if (!be->linear_ep || !be->window_partition || !be->window_unpartition_add || !be->maxpool2x2_ld)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "image encoder: back end '%s' lacks linear_ep or the window kernels",
                       be->name ? be->name : "?");
    trunk_shape t;
    trunk_geometry(cfg, &t);
    SAM_TRY(check_config(cfg, &t));
    sam_image_encoder *e = sam_calloc(1, sizeof(*e));
    if (!e) return SAM_ERR(SAM2D_ERR_NOMEM, "image encoder: out of memory");
    e->cfg = *cfg;
    e->be = be;
    sam_weight_set_init_on(&e->weights, be);
    sam_arena_init(&e->arena);
    sam_arena_on_backend(&e->arena, be);
    e->S = cfg->image_size;
    e->C0 = cfg->embed_dim;
    e->H0 = t.H0;
    e->W0 = t.W0;
    e->nblocks = t.nblocks;
    e->nstages = t.nstages;
    for (int s = 0; s < t.nstages; s++) {
        e->stage_end[s] = t.stage_end[s];
        e->stage_h[s] = t.h[s];
        e->stage_w[s] = t.w[s];
        e->stage_c[s] = t.c[s];
        e->topdown[s] = in_list(cfg->fpn_top_down_levels, cfg->n_fpn_top_down_levels, s);
    }
    /* A level is kept whole when the top-down pass writes into it or reads it;
     * the others (levels 0 and 1 in SAM 2) are streamed straight into the output. */
    for (int s = 0; s < t.nstages; s++)
        e->keep[s] = e->topdown[s] || (s > 0 && e->topdown[s - 1]) || s >= out_levels(cfg);
    e->d_model = cfg->d_model;
    e->nout = out_levels(cfg);
    e->high_res = cfg->use_high_res_features_in_sam;
    sam2d_status st = plan_blocks(e);
    if (st != SAM2D_OK) {
        sam_image_encoder_free(e);
        return st;
    }
    /* Weights go into the encoder's own set whatever the caller's loader owner is. */
    sam_weight_set *saved_owner = L->owner;
    int nerr0 = L->nerr; /* the loader may be shared with other modules */
    L->owner = &e->weights;
    load_weights(e, L);
    L->owner = saved_owner;
    if (L->nerr > nerr0) {
        sam_image_encoder_free(e);
        return SAM_ERR(SAM2D_ERR_MISMATCH, "image encoder: %d checkpoint problem(s): %s", L->nerr - nerr0,
                       L->msg ? L->msg : "");
    }
    /* Sine tables per neck level (const memory of the set). */
    int half = e->d_model / 2;
    for (int l = 0; l < e->nstages; l++) {
        e->pe_y[l] = sam_weight_set_alloc(&e->weights, (size_t)e->stage_h[l] * half);
        e->pe_x[l] = sam_weight_set_alloc(&e->weights, (size_t)e->stage_w[l] * half);
        if (!e->pe_y[l] || !e->pe_x[l]) {
            sam_image_encoder_free(e);
            return SAM_ERR(SAM2D_ERR_NOMEM, "image encoder: out of memory");
        }
        sine_table(e->pe_y[l], e->stage_h[l], half, cfg->neck_pos_temperature, cfg->neck_pos_normalize);
        sine_table(e->pe_x[l], e->stage_w[l], half, cfg->neck_pos_temperature, cfg->neck_pos_normalize);
    }
    /* The last host write into the set: from here on kernels only read it. */
    sam_weight_set_publish(&e->weights);
    prepare_linears(e, false);
    e->prepared = true;
    /* Activations: one reservation, carved once. */
    enc_sizes z;
    scratch_sizes(e, &z);
    if (!sam_arena_reserve(&e->arena, sizes_total(&z, e->nstages))) {
        sam_image_encoder_free(e);
        return SAM_ERR(SAM2D_ERR_NOMEM, "image encoder: cannot reserve %zu bytes of activations",
                       sizes_total(&z, e->nstages));
    }
    sam_arena *a = &e->arena;
    e->X = sam_arena_f32(a, z.act);
    e->Y = sam_arena_f32(a, z.y);
    e->T = sam_arena_f32(a, z.t);
    e->OB = sam_arena_f32(a, z.ob);
    e->WIN = sam_arena_f32(a, z.win);
    e->QKV = sam_arena_f32(a, z.qkv);
    e->N2 = sam_arena_f32(a, z.n2);
    e->HID = sam_arena_f32(a, z.hid);
    e->LCH = sam_arena_f32(a, z.lch);
    for (int l = 0; l < e->nstages; l++) e->LAT[l] = e->keep[l] ? sam_arena_f32(a, z.lat[l]) : NULL;
    *out = e;
    return SAM2D_OK;
}

sam2d_status sam_image_encoder_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                                      sam_image_encoder **out) {
    *out = NULL;
    if (!ck) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: NULL checkpoint");
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, NULL);
    sam2d_status st = sam_image_encoder_create_from_loader(cfg, &L, be, out);
    /* With weight problems, finish() records the complete list as the message. */
    sam2d_status st2 = sam_weight_loader_finish(&L);
    if (st == SAM2D_OK && st2 != SAM2D_OK) {
        sam_image_encoder_free(*out);
        *out = NULL;
        st = st2;
    }
    return st;
}

void sam_image_encoder_free(sam_image_encoder *e) {
    if (!e) return;
    if (e->prepared) prepare_linears(e, true); /* before the weights go */
    sam_weight_set_free(&e->weights); /* pos_embed and the sine tables with it */
    sam_arena_free(&e->arena);
    sam_free(e);
}

/* ------------------------------------------------------------------------ */
/* taps                                                                      */

size_t sam_image_encoder_tap_size(const sam_image_encoder *e, sam_encoder_tap_kind kind, int index) {
    switch (kind) {
    case SAM_ENC_TAP_PATCH_EMBED:
    case SAM_ENC_TAP_POS_EMBED: return (size_t)e->H0 * e->W0 * e->C0;
    case SAM_ENC_TAP_BLOCK:
        if (index < 0 || index >= e->nblocks) return 0;
        return (size_t)e->blk[index].Ho * e->blk[index].Wo * e->blk[index].dim_out;
    case SAM_ENC_TAP_STAGE:
        if (index < 0 || index >= e->nstages) return 0;
        return (size_t)e->stage_h[index] * e->stage_w[index] * e->stage_c[index];
    case SAM_ENC_TAP_NECK_OUT:
    case SAM_ENC_TAP_NECK_POS:
        if (index < 0 || index >= e->nstages) return 0;
        return (size_t)e->stage_h[index] * e->stage_w[index] * e->d_model;
    }
    return 0;
}

sam2d_status sam_image_encoder_set_tap(sam_image_encoder *e, sam_encoder_tap_kind kind, int index, float *dst) {
    if (sam_image_encoder_tap_size(e, kind, index) == 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: no tap %d/%d", (int)kind, index);
    for (int i = 0; i < e->ntaps; i++) {
        if (e->taps[i].kind == kind && e->taps[i].index == index) {
            if (dst) {
                e->taps[i].dst = dst;
            } else {
                e->taps[i] = e->taps[--e->ntaps];
            }
            return SAM2D_OK;
        }
    }
    if (!dst) return SAM2D_OK;
    if (e->ntaps == MAX_TAPS) return SAM_ERR(SAM2D_ERR_LIMIT, "image encoder: more than %d taps", MAX_TAPS);
    e->taps[e->ntaps++] = (enc_tap){kind, index, dst};
    return SAM2D_OK;
}

/* src: a buffer or const memory; the tap's destination is host memory. */
static void tap(sam_image_encoder *e, sam_encoder_tap_kind kind, int index, const float *src) {
    for (int i = 0; i < e->ntaps; i++)
        if (e->taps[i].kind == kind && e->taps[i].index == index)
            e->be->to_host(e->be, e->taps[i].dst, src, sizeof(float) * sam_image_encoder_tap_size(e, kind, index));
}

sam2d_status sam_image_encoder_pos(const sam_image_encoder *e, int level, float *dst) {
    if (!e || !dst || level < 0 || level >= e->nstages)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: no position encoding for level %d", level);
    /* A host write: dst is host memory or const memory not yet published; the tables are const (host-readable). */
    assemble_pos(dst, e->pe_y[level], e->pe_x[level], e->stage_h[level], e->stage_w[level], e->d_model);
    return SAM2D_OK;
}

int sam_image_encoder_num_blocks(const sam_image_encoder *e) { return e->nblocks; }
size_t sam_image_encoder_weight_bytes(const sam_image_encoder *e) {
    return e->weights.bytes; /* the tables made at load included */
}
size_t sam_image_encoder_arena_bytes(const sam_image_encoder *e) { return e->arena.capacity; }

/* ------------------------------------------------------------------------ */
/* forward                                                                   */

/* y += proj(attention) of windows [wa, wb) of x, where y is a map of yh rows
 * x Wo whose first window is wa (the block's output map, or one band of it). */
static void attend_windows(sam_image_encoder *e, const hiera_block *b, const float *x, float *y, int yh, int wa,
                           int wb) {
    sam_backend *be = e->be;
    const int C = b->dim, O = b->dim_out, lk = b->wh * b->ww, lq = b->qh * b->qw, hd = O / b->heads;
    for (int w0 = wa; w0 < wb; w0 += b->group) {
        int g = wb - w0 < b->group ? wb - w0 : b->group;
        float *ao = e->WIN, *qp = e->WIN + (size_t)g * lq * O, *po = e->QKV; /* see the struct: buffers reused in turn */
        /* norm1 on the way into the windows; the padding stays 0 as the reference pads after norm1 */
        be->window_partition(be, e->WIN, x, b->H, b->W, C, b->wh, b->ww, w0, g, true, b->norm1_w, b->norm1_b, LN_EPS);
        be->linear(be, e->QKV, e->WIN, b->qkv_w, b->qkv_b, g * lk, 3 * O, C);
        sam_attn_params p;
        memset(&p, 0, sizeof(p));
        p.batch = g;
        p.heads = b->heads;
        p.Lq = lq;
        p.Lk = lk;
        p.d_qk = p.d_v = hd;
        p.k_stride = p.v_stride = 3 * (int64_t)O;
        p.k_batch = p.v_batch = (int64_t)lk * 3 * O;
        p.o_stride = O;
        p.o_batch = (int64_t)lq * O;
        p.scale = (float)(1.0 / sqrt((double)hd));
        const float *q;
        if (b->pool) {
            be->maxpool2x2_ld(be, qp, e->QKV, g, b->wh, b->ww, O, 3 * (int64_t)O);
            q = qp;
            p.q_stride = O;
            p.q_batch = (int64_t)lq * O;
        } else {
            q = e->QKV;
            p.q_stride = 3 * (int64_t)O;
            p.q_batch = (int64_t)lk * 3 * O;
        }
        be->attention(be, ao, q, e->QKV + O, e->QKV + 2 * O, &p);
        be->linear(be, po, ao, b->proj_w, b->proj_b, g * lq, O, O);
        be->window_unpartition_add(be, y, po, yh, b->Wo, O, b->qh, b->qw, w0 - wa, g);
    }
}

/* Global attention without pooling: y += proj(attention(norm1(x))), K/V of
 * every token projected once, then the queries in chunks (projection,
 * attention, output projection with the residual) so no full q exists. */
static void attend_global(sam_image_encoder *e, const hiera_block *b, const float *x, float *y) {
    sam_backend *be = e->be;
    const int C = b->dim, O = b->dim_out, hd = O / b->heads;
    const size_t ntok = (size_t)b->H * b->W;
    float *kv = e->QKV; /* (ntok, 2*O): k then v of each token */
    be->layer_norm(be, e->WIN, x, b->norm1_w, b->norm1_b, (int64_t)ntok, C, LN_EPS);
    be->linear(be, kv, e->WIN, b->qkv_w + (size_t)O * C, b->qkv_b + O, (int)ntok, 2 * O, C);
    for (size_t r0 = 0; r0 < ntok; r0 += Q_ROWS) {
        int rows = (int)(ntok - r0 < Q_ROWS ? ntok - r0 : Q_ROWS);
        float *qc = e->HID, *oc = e->HID + (size_t)rows * O; /* (rows, O) each */
        be->linear(be, qc, e->WIN + r0 * C, b->qkv_w, b->qkv_b, rows, O, C);
        sam_attn_params p = sam_attn_dense(b->heads, rows, (int)ntok, hd, hd);
        p.k_stride = p.v_stride = 2 * (int64_t)O;
        p.k_batch = p.v_batch = (int64_t)ntok * 2 * O;
        p.scale = (float)(1.0 / sqrt((double)hd));
        be->attention(be, oc, qc, kv, kv + O, &p);
        be->linear_ep(be, y + r0 * O, oc, b->proj_w, b->proj_b, rows, O, O, SAM_ACT_NONE, y + r0 * O);
    }
}

/* dst (n) = src (n) through the back end (a 1-D identity permute). */
static void copy_floats(sam_backend *be, float *dst, const float *src, size_t n) {
    const int64_t shape[1] = {(int64_t)n};
    const int perm[1] = {0};
    be->permute(be, dst, src, 1, shape, perm);
}

/* Attention half of a pooling block, in place: x (H, W, dim) -> x (Ho, Wo,
 * dim_out) = maxpool(proj(norm1(x))) + proj(attention with pooled queries).
 * Bands of whole window rows are finished one at a time in OB and copied to
 * the start of x: a band's output never reaches past its own input (checked at
 * plan), so only rows already consumed are overwritten. */
static void pool_block_attention(sam_image_encoder *e, const hiera_block *b, float *x) {
    sam_backend *be = e->be;
    const int H = b->H, W = b->W, C = b->dim, O = b->dim_out, k = pool_wrows(b);
    for (int wr = 0; wr < b->nwh; wr += k) {
        const int kr = b->nwh - wr < k ? b->nwh - wr : k;
        const int r0 = wr * b->wh, r1 = (wr + kr) * b->wh < H ? (wr + kr) * b->wh : H;
        const int o0 = wr * b->qh, o1 = (wr + kr) * b->qh < b->Ho ? (wr + kr) * b->qh : b->Ho;
        const int rows = (r1 - r0) & ~1; /* the pool floors an odd last row away */
        /* shortcut: maxpool(proj(norm1(x))) of the band's rows */
        be->layer_norm(be, e->WIN, x + (size_t)r0 * W * C, b->norm1_w, b->norm1_b, (int64_t)rows * W, C, LN_EPS);
        be->linear(be, e->T, e->WIN, b->sc_w, b->sc_b, rows * W, O, C);
        be->maxpool2x2(be, e->OB, e->T, 1, rows, W, O);
        attend_windows(e, b, x, e->OB, o1 - o0, wr * b->nww, (wr + kr) * b->nww);
        copy_floats(be, x + (size_t)o0 * b->Wo * O, e->OB, (size_t)(o1 - o0) * b->Wo * O);
    }
}

/* One MultiScaleBlock, in place: x (H, W, dim) -> x (Ho, Wo, dim_out). norm1 is
 * computed per window group / row band, so no full normalised copy exists. */
static void run_block(sam_image_encoder *e, const hiera_block *b, float *x) {
    sam_backend *be = e->be;
    const int C = b->dim, O = b->dim_out;
    const size_t ntok = (size_t)b->H * b->W, nout = (size_t)b->Ho * b->Wo;
    float *y = x; /* the residual stream the attention and the MLP add into */
    if (b->pool) {
        pool_block_attention(e, b, x);
    } else {
        if (b->sc_w) { /* a projecting block without pooling (not in SAM 2's configs): separate output */
            y = e->Y;
            for (size_t r0 = 0; r0 < ntok; r0 += GROUP_TOKENS) {
                int rows = (int)(ntok - r0 < GROUP_TOKENS ? ntok - r0 : GROUP_TOKENS);
                be->layer_norm(be, e->WIN, x + r0 * C, b->norm1_w, b->norm1_b, rows, C, LN_EPS);
                be->linear(be, y + r0 * O, e->WIN, b->sc_w, b->sc_b, rows, O, C);
            }
        }
        /* Identity shortcut: y is x. Safe because windows do not overlap: a
         * group's tokens are read before the same tokens are written. */
        if (kv_split(b))
            attend_global(e, b, x, y);
        else
            attend_windows(e, b, x, y, b->Ho, 0, b->nwh * b->nww);
    }

    /* MLP in row chunks: y += mlp2(gelu(mlp1(norm2(y)))), GELU and the residual fused into the products. */
    for (size_t r0 = 0; r0 < nout; r0 += MLP_ROWS) {
        int rows = (int)(nout - r0 < MLP_ROWS ? nout - r0 : MLP_ROWS);
        float *yr = y + r0 * O;
        be->layer_norm(be, e->N2, yr, b->norm2_w, b->norm2_b, rows, O, LN_EPS);
        be->linear_ep(be, e->HID, e->N2, b->mlp1_w, b->mlp1_b, rows, b->hidden, O, SAM_ACT_GELU, NULL);
        be->linear_ep(be, yr, e->HID, b->mlp2_w, b->mlp2_b, rows, O, b->hidden, SAM_ACT_NONE, yr);
    }
    if (y != x) copy_floats(be, x, y, nout * O);
}

/* Output of level l for rows [r0, r0+n) from its neck features lat (n, d_model):
 * conv_s0/conv_s1 on levels 0/1 as forward_image does, other levels as they are. */
static void project_level(sam_image_encoder *e, int l, const float *lat, int r0, int n, sam_image_features *out) {
    sam_backend *be = e->be;
    int dm = e->d_model;
    if (e->high_res && l == 0)
        be->linear(be, out->feat[0] + (size_t)r0 * (dm / 8), lat, e->conv_s0_w, e->conv_s0_b, n, dm / 8, dm);
    else if (e->high_res && l == 1)
        be->linear(be, out->feat[1] + (size_t)r0 * (dm / 4), lat, e->conv_s1_w, e->conv_s1_b, n, dm / 4, dm);
    else
        copy_floats(be, out->feat[l] + (size_t)r0 * dm, lat, (size_t)n * dm);
}

/* A level outside the top-down pass: lateral conv and output projection in row
 * chunks, so its full d_model map never exists (it is the largest one). */
static void stream_level(sam_image_encoder *e, int l, const float *x, sam_image_features *out) {
    sam_backend *be = e->be;
    int ntok = e->stage_h[l] * e->stage_w[l], C = e->stage_c[l], dm = e->d_model;
    float *tapdst = NULL;
    for (int i = 0; i < e->ntaps; i++)
        if (e->taps[i].kind == SAM_ENC_TAP_NECK_OUT && e->taps[i].index == l) tapdst = e->taps[i].dst;
    for (int r0 = 0; r0 < ntok; r0 += NECK_ROWS) {
        int n = ntok - r0 < NECK_ROWS ? ntok - r0 : NECK_ROWS;
        be->linear(be, e->LCH, x + (size_t)r0 * C, e->lat_w[l], e->lat_b[l], n, dm, C);
        if (tapdst) be->to_host(be, tapdst + (size_t)r0 * dm, e->LCH, sizeof(float) * (size_t)n * dm);
        if (l < e->nout) project_level(e, l, e->LCH, r0, n, out);
    }
}

sam2d_status sam_image_encoder_forward(sam_image_encoder *e, const float *img, sam_image_features *out) {
    if (!e || !img || !out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: NULL argument");
    if (out->num_levels != e->nout)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: features bound for %d levels, encoder gives %d",
                       out->num_levels, e->nout);
    for (int l = 0; l < e->nout; l++)
        if (out->h[l] != e->stage_h[l] || out->w[l] != e->stage_w[l] || !out->feat[l])
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image encoder: features not bound for this model (level %d)", l);
    sam_backend *be = e->be;

    /* Patch embed (7x7 stride 4 pad 3) + position embedding. */
    sam_conv2d_params cp = {.N = 1, .H = e->S, .W = e->S, .C_in = 3, .C_out = e->C0, .kh = 7, .kw = 7,
                            .stride_h = 4, .stride_w = 4, .pad_h = 3, .pad_w = 3, .groups = 1};
    float *x = e->X;
    be->conv2d(be, x, img, e->patch_w, e->patch_b, &cp);
    tap(e, SAM_ENC_TAP_PATCH_EMBED, 0, x);
    tap(e, SAM_ENC_TAP_POS_EMBED, 0, e->pos_embed);
    be->add(be, x, x, e->pos_embed, (int64_t)e->H0 * e->W0 * e->C0);

    int stage = 0;
    for (int i = 0; i < e->nblocks; i++) {
        run_block(e, &e->blk[i], x);
        tap(e, SAM_ENC_TAP_BLOCK, i, x);
        if (stage < e->nstages && i == e->stage_end[stage]) {
            tap(e, SAM_ENC_TAP_STAGE, stage, x);
            /* Lateral 1x1 conv of this level now, so the stage output need not be kept. */
            int ntok = e->stage_h[stage] * e->stage_w[stage];
            if (e->keep[stage])
                be->linear(be, e->LAT[stage], x, e->lat_w[stage], e->lat_b[stage], ntok, e->d_model,
                           e->stage_c[stage]);
            else
                stream_level(e, stage, x, out);
            stage++;
        }
    }

    /* Top-down pass from the deepest level: nearest x2 of the previous output
     * added into the levels listed in fpn_top_down_levels. */
    int dm = e->d_model;
    for (int l = e->nstages - 2; l >= 0; l--) {
        if (!e->topdown[l]) continue;
        int h = e->stage_h[l + 1], w = e->stage_w[l + 1];
        /* in bands of source rows whose x2 upsample fits the chunk buffer */
        int band = NECK_ROWS / (4 * w);
        if (band < 1) band = 1;
        for (int r0 = 0; r0 < h; r0 += band) {
            int n = h - r0 < band ? h - r0 : band;
            be->upsample_nearest(be, e->LCH, e->LAT[l + 1] + (size_t)r0 * w * dm, 1, n, w, dm, 2, 2);
            float *dst = e->LAT[l] + (size_t)2 * r0 * (2 * w) * dm;
            be->add(be, dst, dst, e->LCH, (int64_t)4 * n * w * dm);
        }
    }
    for (int l = 0; l < e->nstages; l++) {
        if (e->keep[l]) tap(e, SAM_ENC_TAP_NECK_OUT, l, e->LAT[l]);
        for (int i = 0; i < e->ntaps; i++)
            if (e->taps[i].kind == SAM_ENC_TAP_NECK_POS && e->taps[i].index == l)
                assemble_pos(e->taps[i].dst, e->pe_y[l], e->pe_x[l], e->stage_h[l], e->stage_w[l], dm);
    }

    /* Outputs after scalp (streamed levels are already written). */
    for (int l = 0; l < e->nout; l++) {
        if (e->keep[l]) project_level(e, l, e->LAT[l], 0, e->stage_h[l] * e->stage_w[l], out);
        if (out->pos[l]) assemble_pos_dev(be, out->pos[l], e->pe_y[l], e->pe_x[l], e->stage_h[l], e->stage_w[l], dm);
    }
    return SAM2D_OK;
}
