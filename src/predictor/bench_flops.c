/* Analytic FLOP counts of SAM 2 per stage, from the config alone. Convention
 * (the one used for the reference figures): 2 x multiply-adds of every
 * linear, conv, transposed conv and attention product (QK^T and AV); norms,
 * activations, softmax, pooling and resizes are not counted. Tokens that the
 * reference computes on window padding are counted, since it computes them. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "predictor/bench_run.h"

static double linear_macs(double tokens, int in, int out) { return tokens * in * out; }

/* conv with output h x w. */
static double conv_macs(double oh, double ow, int cin, int cout, int k, int groups) {
    return oh * ow * (double)cout * (cin / groups) * k * k;
}

static int pad_up(int v, int m) { return m > 0 ? (v + m - 1) / m * m : v; }

/* One Hiera block (MultiScaleBlock) on an H x W map; returns MACs and the output size. */
static double hiera_block_macs(int *H, int *W, int dim, int dim_out, int heads, int window, bool q_pool,
                               int qs_h, int qs_w, float mlp_ratio) {
    (void)heads; /* attention MACs do not depend on the head split */
    double macs = 0;
    const int h = *H, w = *W;
    /* shortcut projection on the un-padded map before pooling */
    if (dim != dim_out) macs += linear_macs((double)h * w, dim, dim_out);
    /* windows: padded to a multiple of the window; global = one window of the whole map */
    const int ph = window > 0 ? pad_up(h, window) : h, pw = window > 0 ? pad_up(w, window) : w;
    const int wh = window > 0 ? window : h, ww = window > 0 ? window : w;
    const double nwin = (double)(ph / wh) * (pw / ww);
    const double kv_tokens = (double)wh * ww; /* keys per window */
    macs += linear_macs(nwin * kv_tokens, dim, 3 * dim_out);
    const int qh = q_pool ? wh / qs_h : wh, qw = q_pool ? ww / qs_w : ww;
    const double q_tokens = (double)qh * qw; /* queries per window */
    macs += 2.0 * nwin * q_tokens * kv_tokens * dim_out; /* QK^T and AV */
    macs += linear_macs(nwin * q_tokens, dim_out, dim_out); /* proj (padded queries too) */
    const int oh = q_pool ? h / qs_h : h, ow = q_pool ? w / qs_w : w;
    const int hidden = (int)((float)dim_out * mlp_ratio);
    macs += linear_macs((double)oh * ow, dim_out, hidden) + linear_macs((double)oh * ow, hidden, dim_out);
    *H = oh, *W = ow;
    return macs;
}

static bool in_list(const int *v, int n, int x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return true;
    return false;
}

/* Two-way transformer + output heads of the mask decoder for n_sparse prompt tokens. */
static double mask_decoder_macs(const sam2d_model_config *cfg, int n_sparse) {
    const int C = cfg->d_model, hw = cfg->image_size / cfg->backbone_stride;
    const double img = (double)hw * hw;
    const int ci = C / cfg->decoder_attn_downsample_rate; /* cross-attention inner dim */
    const double tok = (double)(cfg->num_multimask_outputs + 1 + 1 + (cfg->pred_obj_scores ? 1 : 0) + n_sparse);
    double macs = 0;
    for (int l = 0; l < cfg->decoder_depth; l++) {
        macs += 4 * linear_macs(tok, C, C) + 2 * tok * tok * C;                  /* token self-attention */
        macs += linear_macs(tok, C, ci) + 2 * linear_macs(img, C, ci) + linear_macs(tok, ci, C) +
                2 * tok * img * ci;                                               /* tokens -> image */
        macs += 2 * linear_macs(tok, C, cfg->decoder_mlp_dim);                   /* MLP */
        macs += linear_macs(img, C, ci) + 2 * linear_macs(tok, C, ci) + linear_macs(img, ci, C) +
                2 * tok * img * ci;                                               /* image -> tokens */
    }
    macs += linear_macs(tok, C, ci) + 2 * linear_macs(img, C, ci) + linear_macs(tok, ci, C) + 2 * tok * img * ci;
    /* upscaling: two 2x2 stride-2 transposed convs */
    macs += img * C * (C / 4) * 4 + img * 4 * (C / 4) * (C / 8) * 4;
    /* hypernetwork MLPs (3 layers) per mask token and the mask product at S/4 */
    const int nm = cfg->num_multimask_outputs + 1;
    macs += nm * (linear_macs(1, C, C) * 2 + linear_macs(1, C, C / 8));
    macs += (double)nm * (C / 8) * img * 16;
    /* IoU head, object-score head */
    macs += linear_macs(1, C, cfg->iou_head_hidden_dim) * 1 +
            linear_macs(1, cfg->iou_head_hidden_dim, cfg->iou_head_hidden_dim) * (cfg->iou_head_depth - 2) +
            linear_macs(1, cfg->iou_head_hidden_dim, nm);
    if (cfg->pred_obj_scores) macs += cfg->pred_obj_scores_mlp ? 2 * linear_macs(1, C, C) + C : C;
    /* prompt encoder: dense positional encoding of the S/16 grid (2 -> C/2 Fourier projection) */
    macs += img * 2 * (C / 2);
    return macs;
}

sam2d_status sam_bench_count_flops(const sam2d_model_config *cfg, sam_bench_flops *out) {
    memset(out, 0, sizeof(*out));
    if (sam2d_config_validate(cfg) != SAM2D_OK) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "bench: invalid config");
    const int S = cfg->image_size;
    /* Hiera patch embedding: 7x7 stride 4 pad 3 conv, 3 -> embed_dim */
    int H = sam_conv_out(S, 7, 4, 3), W = H;
    double pe = conv_macs(H, W, 3, cfg->embed_dim, 7, 1);

    /* blocks, following Hiera's construction: the first block of a stage still
     * uses the previous stage's window size and pools q */
    int depth = 0, stage_end[SAM2D_MAX_STAGES];
    for (int s = 0; s < cfg->num_stages; s++) {
        depth += cfg->stages[s];
        stage_end[s] = depth - 1;
    }
    int dim = cfg->embed_dim, heads = cfg->num_heads, cur_stage = 1;
    int level_h[SAM2D_MAX_STAGES], level_c[SAM2D_MAX_STAGES];
    double trunk = 0;
    for (int i = 0; i < depth; i++) {
        int dim_out = dim;
        int window = cfg->window_spec[cur_stage - 1];
        if (in_list(cfg->global_att_blocks, cfg->n_global_att_blocks, i)) window = 0;
        if (in_list(stage_end, cfg->num_stages, i - 1)) {
            dim_out = (int)((float)dim * cfg->dim_mul);
            heads = (int)((float)heads * cfg->head_mul);
            cur_stage++;
        }
        bool q_pool = false;
        for (int s = 0; s < cfg->num_stages - 1 && s < cfg->q_pool; s++)
            if (i == stage_end[s] + 1) q_pool = true;
        trunk += hiera_block_macs(&H, &W, dim, dim_out, heads, window, q_pool, cfg->q_stride[0], cfg->q_stride[1],
                                  cfg->mlp_ratio);
        dim = dim_out;
        for (int s = 0; s < cfg->num_stages; s++)
            if (i == stage_end[s]) level_h[s] = H, level_c[s] = dim;
    }
    /* FPN neck: a lateral conv on every trunk level (the dropped one too), then conv_s0/conv_s1 */
    double neck = 0;
    for (int s = 0; s < cfg->num_stages; s++)
        neck += conv_macs(sam_conv_out(level_h[s], cfg->neck_kernel_size, cfg->neck_stride, cfg->neck_padding),
                          sam_conv_out(level_h[s], cfg->neck_kernel_size, cfg->neck_stride, cfg->neck_padding),
                          level_c[s], cfg->d_model, cfg->neck_kernel_size, 1);
    if (cfg->use_high_res_features_in_sam) {
        neck += linear_macs((double)level_h[0] * level_h[0], cfg->d_model, cfg->d_model / 8);
        neck += linear_macs((double)level_h[1] * level_h[1], cfg->d_model, cfg->d_model / 4);
    }
    out->patch_embed = 2 * pe;
    out->trunk = 2 * trunk;
    out->neck = 2 * neck;
    out->image_encoder = out->patch_embed + out->trunk + out->neck;

    /* memory attention: self-attention (RoPE, inner dim C), cross-attention from C to kv_in_dim keys, FFN */
    const int C = cfg->d_model, D = cfg->mem_dim, hw = S / cfg->backbone_stride;
    const double q = (double)hw * hw;
    const int ci = C / cfg->mem_attn_downsample_rate;
    double fixed = 0, per_tok = 0;
    for (int l = 0; l < cfg->mem_attn_num_layers; l++) {
        fixed += 4 * linear_macs(q, C, C) + 2 * q * q * C;
        fixed += linear_macs(q, C, ci) + linear_macs(q, ci, C);
        fixed += 2 * linear_macs(q, C, cfg->mem_attn_dim_feedforward);
        per_tok += 2.0 * cfg->mem_attn_kv_in_dim * ci + 2.0 * q * ci;
    }
    out->mem_attn_fixed = 2 * fixed;
    out->mem_attn_per_token = 2 * per_tok;

    /* memory encoder */
    double me = 0;
    int mh = S, cin = 1;
    const int nl = (int)lround(log((double)cfg->mask_ds_total_stride) / log((double)cfg->mask_ds_stride));
    for (int l = 0; l < nl; l++) {
        int cout = cin * cfg->mask_ds_stride * cfg->mask_ds_stride;
        mh = sam_conv_out(mh, cfg->mask_ds_kernel, cfg->mask_ds_stride, cfg->mask_ds_padding);
        me += conv_macs(mh, mh, cin, cout, cfg->mask_ds_kernel, 1);
        cin = cout;
    }
    me += linear_macs((double)mh * mh, cin, cfg->mask_ds_embed_dim);
    const int Ci = cfg->mem_in_dim;
    me += linear_macs(q, Ci, Ci); /* pix_feat_proj */
    if (cfg->fuser_input_projection) me += linear_macs(q, Ci, Ci);
    for (int l = 0; l < cfg->fuser_num_layers; l++) {
        me += cfg->fuser_use_dwconv ? conv_macs(hw, hw, Ci, Ci, cfg->fuser_kernel, Ci)
                                    : conv_macs(hw, hw, Ci, Ci, cfg->fuser_kernel, 1);
        me += 2 * linear_macs(q, Ci, 4 * Ci);
    }
    if (D != Ci) me += linear_macs(q, Ci, D);
    out->mem_encoder = 2 * me;

    /* heads: tracked frames feed a padding point only (label -1) plus the pad token; a click 1 point + pad */
    out->heads_track = 2 * mask_decoder_macs(cfg, 2);
    out->heads_click = 2 * mask_decoder_macs(cfg, 2);
    /* object pointer projection (MLP or linear) and its temporal projection: a few rows */
    double ptr = cfg->use_mlp_for_obj_ptr_proj ? 3 * linear_macs(1, C, C) : linear_macs(1, C, C);
    out->heads_track += 2 * ptr;

    /* a full bank as on frame num_maskmem + 1 of a video clicked on frame 0: num_maskmem memories, that many + 1 pointers */
    out->memory_tokens_full =
        cfg->num_maskmem * hw * hw + (cfg->use_obj_ptrs_in_encoder ? (C / D) * (cfg->num_maskmem + 1) : 0);
    out->track_frame_full = sam_bench_track_frame_flops(cfg, out, cfg->num_maskmem, cfg->num_maskmem + 1);
    return SAM2D_OK;
}

double sam_bench_track_frame_flops(const sam2d_model_config *cfg, const sam_bench_flops *f, int n_mem_frames,
                                   int n_ptrs) {
    const int hw = cfg->image_size / cfg->backbone_stride;
    const int split = cfg->mem_dim > 0 ? cfg->d_model / cfg->mem_dim : 1;
    const double tokens = (double)n_mem_frames * hw * hw + (cfg->use_obj_ptrs_in_encoder ? (double)n_ptrs * split : 0);
    return f->image_encoder + f->mem_attn_fixed + tokens * f->mem_attn_per_token + f->heads_track + f->mem_encoder;
}
