/* SAM prompt encoder + mask decoder (SAM2Base._build_sam_heads semantics).
 * Channels-last throughout; every kernel goes through the back end table.
 *
 * Device memory (ops.h, issue 8): weights and the tables made here (dense_pe,
 * a ones vector for the stability counts) are const memory; activations live
 * in the arena, which sits on the back end's buffers. The host only computes
 * the few point embeddings (host prompts, host staging, one to_dev) and reads
 * back M IoUs + the object score (+ two stability counts) with one to_host. */
#include "model/sam_heads.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/error.h"
#include "model/weights.h"

/* mask_downscaling hidden width: a constant of _build_sam_heads, not in the YAML. */
#define SAM_MASK_IN_CHANS 16
/* Point embeddings are made on the host this many at a time (host staging, then one to_dev). */
#define SAM_STAGE_POINTS 32
/* Bound on 1 + num_multimask_outputs (Meta's models: 4), for a host array of scores. */
#define SAM_MAX_MASK_TOKENS 16

typedef struct {
    int in, internal, heads;
    float *q_w, *q_b; /* (internal, in), (internal) */
    float *k_w, *k_b; /* (internal, in), (internal) */
    float *v_w, *v_b; /* (internal, in), (internal) */
    float *o_w, *o_b; /* (in, internal), (in) */
} heads_attn;

typedef struct {
    int num_layers;
    int dims[4];      /* dims[0] = input, dims[i+1] = output of layer i */
    float *w[3], *b[3]; /* layer i: (dims[i+1], dims[i]), (dims[i+1]) */
    bool sigmoid_out;
} heads_mlp;

typedef struct {
    heads_attn self_attn, t2i, i2t;
    float *n1_w, *n1_b, *n2_w, *n2_b, *n3_w, *n3_b, *n4_w, *n4_b; /* (C) each */
    float *mlp1_w, *mlp1_b; /* (mlp_dim, C), (mlp_dim) */
    float *mlp2_w, *mlp2_b; /* (C, mlp_dim), (C) */
} heads_layer;

struct sam_heads {
    sam_backend *be;
    int S, C, emb, low;     /* image size, d_model, S/16 grid, S/4 grid */
    int num_mask_tokens;    /* 1 + num_multimask_outputs */
    int depth, mlp_dim;
    bool pred_obj_scores, use_high_res, dynamic_stab, multimask_token_for_ptr;
    float stab_delta, stab_thresh;

    /* prompt encoder */
    float *pe_gauss;        /* (2, C/2) random Fourier frequencies */
    float *point_embed[4];  /* (C) each: neg, pos, box corner 0, box corner 1 */
    float *not_a_point;     /* (C) */
    float *no_mask;         /* (C) */
    float *md0_w, *md0_b;   /* (MIC/4, 1, 2, 2), (MIC/4) */
    float *md1_w, *md1_b;   /* LayerNorm2d (MIC/4) */
    float *md3_w, *md3_b;   /* (MIC, MIC/4, 2, 2), (MIC) */
    float *md4_w, *md4_b;   /* LayerNorm2d (MIC) */
    float *md6_w, *md6_b;   /* (C, MIC, 1, 1), (C) */
    float *dense_pe;        /* (emb*emb, C) const, made at create */
    float *stage;           /* (SAM_STAGE_POINTS, C) host staging of point embeddings */
    /* Host copies of the few weights the host reads per call (pe_gauss (2, C/2), point_embed (4, C),
     * not_a_point (C)): host reads of managed const memory would migrate its pages off a GPU. */
    float *host_w;          /* (6, C) host */
    const float *h_gauss, *h_point[4], *h_not_a_point; /* into host_w */

    /* mask decoder */
    heads_layer *layers;    /* (depth) */
    heads_attn final_attn;
    float *nf_w, *nf_b;     /* (C) */
    float *iou_token;       /* (C) */
    float *mask_tokens;     /* (num_mask_tokens, C) */
    float *obj_token;       /* (C) or NULL */
    float *up0_w, *up0_b;   /* ConvTranspose (C, C/4, 2, 2), (C/4) */
    float *up1_w, *up1_b;   /* LayerNorm2d (C/4) */
    float *up3_w, *up3_b;   /* ConvTranspose (C/4, C/8, 2, 2), (C/8) */
    heads_mlp *hyper;       /* (num_mask_tokens) */
    heads_mlp iou_head;
    heads_mlp obj_head;     /* num_layers 1 when it is a single Linear; 0 when absent */
    float *ones;            /* (low*low) const 1.0f: mask pixel counts as one linear; NULL without dynamic_stab */

    sam_weight_set weights;
    sam_arena arena;        /* activations; reserved by a dry run at create */
};

/* ------------------------------------------------------------------ loading */

static void load_attn(sam_weight_loader *L, heads_attn *a, int C, int internal, int heads, const char *prefix) {
    a->in = C;
    a->internal = internal;
    a->heads = heads;
    a->q_w = sam_weight(L, SAM_W2(internal, C), "%s.q_proj.weight", prefix);
    a->q_b = sam_weight(L, SAM_W1(internal), "%s.q_proj.bias", prefix);
    a->k_w = sam_weight(L, SAM_W2(internal, C), "%s.k_proj.weight", prefix);
    a->k_b = sam_weight(L, SAM_W1(internal), "%s.k_proj.bias", prefix);
    a->v_w = sam_weight(L, SAM_W2(internal, C), "%s.v_proj.weight", prefix);
    a->v_b = sam_weight(L, SAM_W1(internal), "%s.v_proj.bias", prefix);
    a->o_w = sam_weight(L, SAM_W2(C, internal), "%s.out_proj.weight", prefix);
    a->o_b = sam_weight(L, SAM_W1(C), "%s.out_proj.bias", prefix);
}

static void load_mlp(sam_weight_loader *L, heads_mlp *m, int in, int hidden, int out, int num_layers, bool sig,
                     const char *prefix) {
    m->num_layers = num_layers;
    m->sigmoid_out = sig;
    m->dims[0] = in;
    for (int i = 0; i < num_layers; i++) {
        m->dims[i + 1] = i == num_layers - 1 ? out : hidden;
        m->w[i] = sam_weight(L, SAM_W2(m->dims[i + 1], m->dims[i]), "%s.layers.%d.weight", prefix, i);
        m->b[i] = sam_weight(L, SAM_W1(m->dims[i + 1]), "%s.layers.%d.bias", prefix, i);
    }
}

/* sin/cos random Fourier features of one point already normalised to [0,1]^2 (x, y). */
static void pe_encode(const float *gauss /* (2, C/2) */, int half, float x, float y, float *out /* (2*half) */) {
    float cx = 2.0f * x - 1.0f, cy = 2.0f * y - 1.0f;
    const float two_pi = (float)(2.0 * M_PI); /* torch multiplies float32 by the scalar in float32 */
    for (int j = 0; j < half; j++) {
        float a = cx * gauss[j] + cy * gauss[half + j];
        a = two_pi * a;
        out[j] = sinf(a);
        out[half + j] = cosf(a);
    }
}

static sam2d_status heads_dry_run(sam_heads *h);

sam2d_status sam_heads_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L, sam_backend *be,
                                          sam_heads **out) {
    *out = NULL;
    if (!cfg || !be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_heads_create: NULL config or back end");
    int C = cfg->d_model, S = cfg->image_size;
    if (C <= 0 || C % 8 || S <= 0 || cfg->backbone_stride <= 0 || S % cfg->backbone_stride || S % 4 ||
        cfg->decoder_depth <= 0 || cfg->decoder_num_heads <= 0 || cfg->num_multimask_outputs < 1 ||
        cfg->num_multimask_outputs >= SAM_MAX_MASK_TOKENS ||
        cfg->iou_head_depth < 1 || cfg->iou_head_depth > 3)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_heads_create: unsupported config (d_model %d, image_size %d)", C, S);
    if ((C / 2) % cfg->decoder_num_heads || C % cfg->decoder_num_heads)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_heads_create: %d heads do not divide %d", cfg->decoder_num_heads, C);
    sam_heads *h = sam_calloc(1, sizeof(*h));
    if (!h) return SAM_ERR(SAM2D_ERR_NOMEM, "sam_heads_create: out of memory");
    sam_weight_set_init_on(&h->weights, be); /* weights and tables in const memory */
    sam_arena_init(&h->arena);
    sam_arena_on_backend(&h->arena, be); /* activations in buffers */
    h->be = be;
    /* Every buffer belongs to the heads object whatever the loader's own owner is. */
    sam_weight_set *prev_owner = L->owner;
    int nerr0 = L->nerr;
    L->owner = &h->weights;
    h->S = S;
    h->C = C;
    h->emb = S / cfg->backbone_stride;
    h->low = 4 * h->emb; /* mask_input_size = 4 x embedding size */
    h->num_mask_tokens = cfg->num_multimask_outputs + 1;
    h->depth = cfg->decoder_depth;
    h->mlp_dim = cfg->decoder_mlp_dim;
    h->pred_obj_scores = cfg->pred_obj_scores;
    h->use_high_res = cfg->use_high_res_features_in_sam;
    h->dynamic_stab = cfg->dynamic_multimask_via_stability;
    h->stab_delta = cfg->dynamic_multimask_stability_delta;
    h->stab_thresh = cfg->dynamic_multimask_stability_thresh;
    h->multimask_token_for_ptr = cfg->use_multimask_token_for_obj_ptr;

    int half = C / 2, mic = SAM_MASK_IN_CHANS;
    const char *pe = "sam_prompt_encoder";
    h->pe_gauss = sam_weight(L, SAM_W2(2, half), "%s.pe_layer.positional_encoding_gaussian_matrix", pe);
    for (int i = 0; i < 4; i++) h->point_embed[i] = sam_weight(L, SAM_W2(1, C), "%s.point_embeddings.%d.weight", pe, i);
    h->not_a_point = sam_weight(L, SAM_W2(1, C), "%s.not_a_point_embed.weight", pe);
    h->no_mask = sam_weight(L, SAM_W2(1, C), "%s.no_mask_embed.weight", pe);
    h->md0_w = sam_weight(L, SAM_W4(mic / 4, 1, 2, 2), "%s.mask_downscaling.0.weight", pe);
    h->md0_b = sam_weight(L, SAM_W1(mic / 4), "%s.mask_downscaling.0.bias", pe);
    h->md1_w = sam_weight(L, SAM_W1(mic / 4), "%s.mask_downscaling.1.weight", pe);
    h->md1_b = sam_weight(L, SAM_W1(mic / 4), "%s.mask_downscaling.1.bias", pe);
    h->md3_w = sam_weight(L, SAM_W4(mic, mic / 4, 2, 2), "%s.mask_downscaling.3.weight", pe);
    h->md3_b = sam_weight(L, SAM_W1(mic), "%s.mask_downscaling.3.bias", pe);
    h->md4_w = sam_weight(L, SAM_W1(mic), "%s.mask_downscaling.4.weight", pe);
    h->md4_b = sam_weight(L, SAM_W1(mic), "%s.mask_downscaling.4.bias", pe);
    h->md6_w = sam_weight(L, SAM_W4(C, mic, 1, 1), "%s.mask_downscaling.6.weight", pe);
    h->md6_b = sam_weight(L, SAM_W1(C), "%s.mask_downscaling.6.bias", pe);

    const char *md = "sam_mask_decoder";
    int nh = cfg->decoder_num_heads, ci = C / 2; /* cross attention downsample_rate 2 */
    char pre[160];
    h->layers = sam_calloc((size_t)h->depth, sizeof(heads_layer));
    h->hyper = sam_calloc((size_t)h->num_mask_tokens, sizeof(heads_mlp));
    if (!h->layers || !h->hyper) {
        L->owner = prev_owner;
        sam_heads_free(h);
        return SAM_ERR(SAM2D_ERR_NOMEM, "sam_heads_create: out of memory");
    }
    for (int l = 0; l < h->depth; l++) {
        heads_layer *y = &h->layers[l];
        snprintf(pre, sizeof pre, "%s.transformer.layers.%d.self_attn", md, l);
        load_attn(L, &y->self_attn, C, C, nh, pre);
        snprintf(pre, sizeof pre, "%s.transformer.layers.%d.cross_attn_token_to_image", md, l);
        load_attn(L, &y->t2i, C, ci, nh, pre);
        snprintf(pre, sizeof pre, "%s.transformer.layers.%d.cross_attn_image_to_token", md, l);
        load_attn(L, &y->i2t, C, ci, nh, pre);
        snprintf(pre, sizeof pre, "%s.transformer.layers.%d", md, l);
        y->n1_w = sam_weight(L, SAM_W1(C), "%s.norm1.weight", pre);
        y->n1_b = sam_weight(L, SAM_W1(C), "%s.norm1.bias", pre);
        y->n2_w = sam_weight(L, SAM_W1(C), "%s.norm2.weight", pre);
        y->n2_b = sam_weight(L, SAM_W1(C), "%s.norm2.bias", pre);
        y->n3_w = sam_weight(L, SAM_W1(C), "%s.norm3.weight", pre);
        y->n3_b = sam_weight(L, SAM_W1(C), "%s.norm3.bias", pre);
        y->n4_w = sam_weight(L, SAM_W1(C), "%s.norm4.weight", pre);
        y->n4_b = sam_weight(L, SAM_W1(C), "%s.norm4.bias", pre);
        y->mlp1_w = sam_weight(L, SAM_W2(h->mlp_dim, C), "%s.mlp.layers.0.weight", pre);
        y->mlp1_b = sam_weight(L, SAM_W1(h->mlp_dim), "%s.mlp.layers.0.bias", pre);
        y->mlp2_w = sam_weight(L, SAM_W2(C, h->mlp_dim), "%s.mlp.layers.1.weight", pre);
        y->mlp2_b = sam_weight(L, SAM_W1(C), "%s.mlp.layers.1.bias", pre);
    }
    snprintf(pre, sizeof pre, "%s.transformer.final_attn_token_to_image", md);
    load_attn(L, &h->final_attn, C, ci, nh, pre);
    h->nf_w = sam_weight(L, SAM_W1(C), "%s.transformer.norm_final_attn.weight", md);
    h->nf_b = sam_weight(L, SAM_W1(C), "%s.transformer.norm_final_attn.bias", md);
    h->iou_token = sam_weight(L, SAM_W2(1, C), "%s.iou_token.weight", md);
    h->mask_tokens = sam_weight(L, SAM_W2(h->num_mask_tokens, C), "%s.mask_tokens.weight", md);
    if (h->pred_obj_scores) h->obj_token = sam_weight(L, SAM_W2(1, C), "%s.obj_score_token.weight", md);
    h->up0_w = sam_weight(L, SAM_W4(C, C / 4, 2, 2), "%s.output_upscaling.0.weight", md);
    h->up0_b = sam_weight(L, SAM_W1(C / 4), "%s.output_upscaling.0.bias", md);
    h->up1_w = sam_weight(L, SAM_W1(C / 4), "%s.output_upscaling.1.weight", md);
    h->up1_b = sam_weight(L, SAM_W1(C / 4), "%s.output_upscaling.1.bias", md);
    h->up3_w = sam_weight(L, SAM_W4(C / 4, C / 8, 2, 2), "%s.output_upscaling.3.weight", md);
    h->up3_b = sam_weight(L, SAM_W1(C / 8), "%s.output_upscaling.3.bias", md);
    for (int i = 0; i < h->num_mask_tokens; i++) {
        snprintf(pre, sizeof pre, "%s.output_hypernetworks_mlps.%d", md, i);
        load_mlp(L, &h->hyper[i], C, C, C / 8, 3, false, pre);
    }
    snprintf(pre, sizeof pre, "%s.iou_prediction_head", md);
    load_mlp(L, &h->iou_head, C, cfg->iou_head_hidden_dim, h->num_mask_tokens, cfg->iou_head_depth,
             cfg->iou_prediction_use_sigmoid, pre);
    if (h->pred_obj_scores) {
        if (cfg->pred_obj_scores_mlp) {
            snprintf(pre, sizeof pre, "%s.pred_obj_score_head", md);
            load_mlp(L, &h->obj_head, C, C, 1, 3, false, pre);
        } else {
            h->obj_head.num_layers = 1;
            h->obj_head.dims[0] = C;
            h->obj_head.dims[1] = 1;
            h->obj_head.w[0] = sam_weight(L, SAM_W2(1, C), "%s.pred_obj_score_head.weight", md);
            h->obj_head.b[0] = sam_weight(L, SAM_W1(1), "%s.pred_obj_score_head.bias", md);
        }
    }
    L->owner = prev_owner;
    if (L->nerr != nerr0) {
        /* The caller finishes the loader (it owns the complete message). */
        sam_heads_free(h);
        return SAM_ERR(SAM2D_ERR_MISMATCH, "sam_heads: %d checkpoint tensor problem(s)", L->nerr - nerr0);
    }

    /* get_dense_pe: grid of pixel centres ((i + 0.5) / n) over the S/16 map, computed once
     * (const memory: the host writes it before publishing; pe_gauss is const, host-readable). */
    int e = h->emb;
    size_t n_low = (size_t)h->low * h->low;
    h->dense_pe = sam_weight_set_alloc(&h->weights, (size_t)e * e * C);
    h->ones = h->dynamic_stab ? sam_weight_set_alloc(&h->weights, n_low) : NULL;
    h->stage = sam_malloc((size_t)SAM_STAGE_POINTS * C * sizeof(float));
    h->host_w = sam_malloc((size_t)6 * C * sizeof(float));
    if (!h->dense_pe || (h->dynamic_stab && !h->ones) || !h->stage || !h->host_w) {
        sam_heads_free(h);
        return SAM_ERR(SAM2D_ERR_NOMEM, "sam_heads_create: out of memory");
    }
    for (int i = 0; i < e; i++)
        for (int j = 0; j < e; j++)
            pe_encode(h->pe_gauss, half, ((float)j + 0.5f) / (float)e, ((float)i + 0.5f) / (float)e,
                      h->dense_pe + ((size_t)i * e + j) * C);
    for (size_t i = 0; h->ones && i < n_low; i++) h->ones[i] = 1.0f;
    memcpy(h->host_w, h->pe_gauss, (size_t)C * sizeof(float)); /* (2, C/2) */
    for (int i = 0; i < 4; i++) memcpy(h->host_w + (size_t)(1 + i) * C, h->point_embed[i], (size_t)C * sizeof(float));
    memcpy(h->host_w + (size_t)5 * C, h->not_a_point, (size_t)C * sizeof(float));
    h->h_gauss = h->host_w;
    for (int i = 0; i < 4; i++) h->h_point[i] = h->host_w + (size_t)(1 + i) * C;
    h->h_not_a_point = h->host_w + (size_t)5 * C;
    sam_weight_set_publish(&h->weights); /* the last host write to const memory */

    sam2d_status st = heads_dry_run(h);
    if (st != SAM2D_OK) {
        sam_heads_free(h);
        return st;
    }
    *out = h;
    return SAM2D_OK;
}

sam2d_status sam_heads_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                              sam_heads **out) {
    *out = NULL;
    if (!ck) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_heads_create: NULL checkpoint");
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, NULL); /* the heads object takes every buffer itself */
    sam_heads *h = NULL;
    sam2d_status st = sam_heads_create_from_loader(cfg, &L, be, &h);
    sam2d_status fin = sam_weight_loader_finish(&L); /* the complete list of problems, if any */
    if (fin != SAM2D_OK) {
        sam_heads_free(h);
        return fin;
    }
    if (st != SAM2D_OK) return st;
    *out = h;
    return SAM2D_OK;
}

void sam_heads_free(sam_heads *h) {
    if (!h) return;
    if (h->be) (void)h->be->sync(h->be); /* no queued kernel may still use what is freed here */
    sam_weight_set_free(&h->weights);
    sam_arena_free(&h->arena);
    sam_free(h->layers);
    sam_free(h->hyper);
    sam_free(h->stage);
    sam_free(h->host_w);
    sam_free(h);
}

const float *sam_heads_dense_pe(const sam_heads *h) { return h->dense_pe; }
int sam_heads_num_mask_tokens(const sam_heads *h) { return h->num_mask_tokens; }
int sam_heads_low_res_size(const sam_heads *h) { return h->low; }

/* ----------------------------------------------------------- prompt encoder */

sam2d_status sam_prompt_encode(sam_heads *h, const float *coords, const int *labels, int n, const float *mask_input,
                               float *sparse, float *dense) {
    int C = h->C, half = C / 2;
    if (n < 0 || (n > 0 && (!coords || !labels || !sparse)) || !dense)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_prompt_encode: bad arguments");
    for (int i = 0; i < n; i++)
        if (labels[i] < -1 || labels[i] > 3)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_prompt_encode: label %d", labels[i]);
    sam_backend *be = h->be;
    sam_arena_reset(&h->arena); /* top-level entry: nothing of an earlier call is live */
    /* A few points from host prompts: made on the host (from host copies of the weights)
     * in the staging array, then uploaded, SAM_STAGE_POINTS at a time. */
    for (int i0 = 0; i0 < n; i0 += SAM_STAGE_POINTS) {
        int cnt = n - i0 < SAM_STAGE_POINTS ? n - i0 : SAM_STAGE_POINTS;
        for (int k = 0; k < cnt; k++) {
            int i = i0 + k, lab = labels[i];
            float *o = h->stage + (size_t)k * C; /* (C) host */
            if (lab == -1) { /* padding point: the embedding is replaced, not added to */
                memcpy(o, h->h_not_a_point, (size_t)C * sizeof(float));
                continue;
            }
            /* +0.5: pixel centre; normalised by the model's input size (x by width, y by height). */
            float x = (coords[2 * i] + 0.5f) / (float)h->S, y = (coords[2 * i + 1] + 0.5f) / (float)h->S;
            pe_encode(h->h_gauss, half, x, y, o);
            const float *add = h->h_point[lab];
            for (int c = 0; c < C; c++) o[c] += add[c];
        }
        be->to_dev(be, sparse + (size_t)i0 * C, h->stage, (size_t)cnt * C * sizeof(float));
    }

    int e = h->emb;
    if (!mask_input) {
        /* no_mask_embed on every pixel: 1 * x is x bit for bit (as the reference's expand) */
        be->fill(be, dense, 1.0f, (int64_t)e * e * C);
        be->mul_row(be, dense, dense, h->no_mask, (int64_t)e * e, C);
        return SAM2D_OK;
    }
    /* mask_downscaling: conv 2x2/2 -> LN2d -> GELU -> conv 2x2/2 -> LN2d -> GELU -> conv 1x1. */
    int mic = SAM_MASK_IN_CHANS, L4 = h->low, L8 = h->low / 2;
    sam_arena_mark mk = sam_arena_get_mark(&h->arena);
    float *t1 = sam_arena_f32(&h->arena, (size_t)L8 * L8 * (mic / 4)); /* (S/8, S/8, MIC/4) */
    float *t2 = sam_arena_f32(&h->arena, (size_t)e * e * mic);          /* (S/16, S/16, MIC) */
    if (!t1 || !t2) return SAM_ERR(SAM2D_ERR_NOMEM, "sam_prompt_encode: out of memory");
    sam_conv2d_params p1 = {.N = 1, .H = L4, .W = L4, .C_in = 1, .C_out = mic / 4, .kh = 2, .kw = 2,
                            .stride_h = 2, .stride_w = 2, .pad_h = 0, .pad_w = 0, .groups = 1};
    be->conv2d(be, t1, mask_input, h->md0_w, h->md0_b, &p1);
    be->layer_norm(be, t1, t1, h->md1_w, h->md1_b, (int64_t)L8 * L8, mic / 4, 1e-6f);
    be->gelu(be, t1, t1, (int64_t)L8 * L8 * (mic / 4));
    sam_conv2d_params p2 = {.N = 1, .H = L8, .W = L8, .C_in = mic / 4, .C_out = mic, .kh = 2, .kw = 2,
                            .stride_h = 2, .stride_w = 2, .pad_h = 0, .pad_w = 0, .groups = 1};
    be->conv2d(be, t2, t1, h->md3_w, h->md3_b, &p2);
    be->layer_norm(be, t2, t2, h->md4_w, h->md4_b, (int64_t)e * e, mic, 1e-6f);
    be->gelu(be, t2, t2, (int64_t)e * e * mic);
    be->linear(be, dense, t2, h->md6_w, h->md6_b, e * e, C, mic); /* 1x1 conv == per-pixel linear */
    sam_arena_rewind(&h->arena, mk);
    return SAM2D_OK;
}

/* ------------------------------------------------------------- mask decoder */

/* out (Lq, C) = Attention(q_in (Lq, C), k_in (Lk, C), v_in (Lk, C)). */
static sam2d_status attn_forward(sam_heads *h, const heads_attn *a, const float *q_in, const float *k_in,
                                 const float *v_in, int Lq, int Lk, float *out) {
    sam_backend *be = h->be;
    sam_arena_mark mk = sam_arena_get_mark(&h->arena);
    int D = a->internal;
    float *q = sam_arena_f32(&h->arena, (size_t)Lq * D); /* (Lq, D) */
    float *k = sam_arena_f32(&h->arena, (size_t)Lk * D); /* (Lk, D) */
    float *v = sam_arena_f32(&h->arena, (size_t)Lk * D); /* (Lk, D) */
    float *o = sam_arena_f32(&h->arena, (size_t)Lq * D); /* (Lq, D) */
    if (!q || !k || !v || !o) return SAM_ERR(SAM2D_ERR_NOMEM, "mask decoder attention: out of memory");
    be->linear(be, q, q_in, a->q_w, a->q_b, Lq, D, a->in);
    be->linear(be, k, k_in, a->k_w, a->k_b, Lk, D, a->in);
    be->linear(be, v, v_in, a->v_w, a->v_b, Lk, D, a->in);
    int dh = D / a->heads;
    sam_attn_params ap = sam_attn_dense(a->heads, Lq, Lk, dh, dh);
    be->attention(be, o, q, k, v, &ap);
    be->linear(be, out, o, a->o_w, a->o_b, Lq, a->in, D);
    sam_arena_rewind(&h->arena, mk);
    return SAM2D_OK;
}

/* y (rows, out) = MLP(x (rows, in)): ReLU between layers, optional sigmoid at the end. */
static sam2d_status mlp_forward(sam_heads *h, const heads_mlp *m, const float *x, int rows, float *y) {
    sam_backend *be = h->be;
    sam_arena_mark mk = sam_arena_get_mark(&h->arena);
    const float *cur = x;
    for (int i = 0; i < m->num_layers; i++) {
        bool last = i == m->num_layers - 1;
        float *dst = last ? y : sam_arena_f32(&h->arena, (size_t)rows * m->dims[i + 1]);
        if (!dst) return SAM_ERR(SAM2D_ERR_NOMEM, "mask decoder MLP: out of memory");
        be->linear(be, dst, cur, m->w[i], m->b[i], rows, m->dims[i + 1], m->dims[i]);
        if (!last) be->relu(be, dst, dst, (int64_t)rows * m->dims[i + 1]);
        cur = dst;
    }
    if (m->sigmoid_out) be->sigmoid(be, y, y, (int64_t)rows * m->dims[m->num_layers]);
    sam_arena_rewind(&h->arena, mk);
    return SAM2D_OK;
}

/* TwoWayTransformer: queries (T, C) and keys (HW, C) updated in place; qpe = the initial tokens,
 * kpe = dense positional encoding. */
static sam2d_status two_way(sam_heads *h, float *queries, float *keys, const float *qpe, const float *kpe, int T,
                            int HW) {
    sam_backend *be = h->be;
    int C = h->C;
    sam_arena_mark mk = sam_arena_get_mark(&h->arena);
    float *q = sam_arena_f32(&h->arena, (size_t)T * C);            /* (T, C) */
    float *t = sam_arena_f32(&h->arena, (size_t)T * C);            /* (T, C) */
    float *kp = sam_arena_f32(&h->arena, (size_t)HW * C);          /* (HW, C) keys + pe */
    float *kt = sam_arena_f32(&h->arena, (size_t)HW * C);          /* (HW, C) */
    float *hid = sam_arena_f32(&h->arena, (size_t)T * h->mlp_dim); /* (T, mlp_dim) */
    if (!q || !t || !kp || !kt || !hid) return SAM_ERR(SAM2D_ERR_NOMEM, "two-way transformer: out of memory");
    for (int l = 0; l < h->depth; l++) {
        const heads_layer *y = &h->layers[l];
        if (l == 0) { /* skip_first_layer_pe: plain self-attention that replaces the queries */
            SAM_TRY(attn_forward(h, &y->self_attn, queries, queries, queries, T, T, t));
            be->copy(be, queries, t, (size_t)T * C * sizeof(float));
        } else {
            be->add(be, q, queries, qpe, (int64_t)T * C);
            SAM_TRY(attn_forward(h, &y->self_attn, q, q, queries, T, T, t));
            be->add(be, queries, queries, t, (int64_t)T * C);
        }
        be->layer_norm(be, queries, queries, y->n1_w, y->n1_b, T, C, 1e-5f);

        be->add(be, q, queries, qpe, (int64_t)T * C);
        be->add(be, kp, keys, kpe, (int64_t)HW * C);
        SAM_TRY(attn_forward(h, &y->t2i, q, kp, keys, T, HW, t));
        be->add(be, queries, queries, t, (int64_t)T * C);
        be->layer_norm(be, queries, queries, y->n2_w, y->n2_b, T, C, 1e-5f);

        be->linear(be, hid, queries, y->mlp1_w, y->mlp1_b, T, h->mlp_dim, C);
        be->relu(be, hid, hid, (int64_t)T * h->mlp_dim);
        be->linear(be, t, hid, y->mlp2_w, y->mlp2_b, T, C, h->mlp_dim);
        be->add(be, queries, queries, t, (int64_t)T * C);
        be->layer_norm(be, queries, queries, y->n3_w, y->n3_b, T, C, 1e-5f);

        be->add(be, q, queries, qpe, (int64_t)T * C); /* keys unchanged since kp was formed */
        SAM_TRY(attn_forward(h, &y->i2t, kp, q, queries, HW, T, kt));
        be->add(be, keys, keys, kt, (int64_t)HW * C);
        be->layer_norm(be, keys, keys, y->n4_w, y->n4_b, HW, C, 1e-5f);
    }
    be->add(be, q, queries, qpe, (int64_t)T * C);
    be->add(be, kp, keys, kpe, (int64_t)HW * C);
    SAM_TRY(attn_forward(h, &h->final_attn, q, kp, keys, T, HW, t));
    be->add(be, queries, queries, t, (int64_t)T * C);
    be->layer_norm(be, queries, queries, h->nf_w, h->nf_b, T, C, 1e-5f);
    sam_arena_rewind(&h->arena, mk);
    return SAM2D_OK;
}

/* counts (2) buffer = the numbers of pixels of m (n) buffer above +delta and above -delta,
 * on the device: (m - delta) > 0 is exactly m > delta (a float difference has the sign
 * of the exact one), and the 0/1 sums are exact in fp32 (n < 2^24). tmp (2, n) buffer. */
static void stability_counts(sam_heads *h, float *counts, const float *m, int n, float delta, float *tmp) {
    sam_backend *be = h->be;
    be->affine(be, tmp, m, 1.0f, -delta, n);
    be->affine(be, tmp + n, m, 1.0f, delta, n);
    be->binarize(be, tmp, tmp, 2 * (int64_t)n);
    be->linear(be, counts, tmp, h->ones, NULL, 2, 1, n); /* (2, n) . ones (1, n)^T */
}

sam2d_status sam_mask_decode_ex(sam_heads *h, const float *image_embed, const float *high_res0,
                                const float *high_res1, const float *sparse, int n_sparse, const float *dense,
                                bool multimask, sam_decoder_out *out, float *all_masks, float *all_iou,
                                float *all_tokens) {
    if (!h || !image_embed || !dense || (n_sparse > 0 && !sparse) || n_sparse < 0 || !out || !out->masks ||
        !out->iou)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_mask_decode: bad arguments");
    if (h->use_high_res && (!high_res0 || !high_res1))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "sam_mask_decode: this model needs the high-res features");
    sam_backend *be = h->be;
    int C = h->C, e = h->emb, HW = e * e, M = h->num_mask_tokens;
    int s = h->pred_obj_scores ? 1 : 0;
    int T = s + 1 + M + n_sparse;
    int L2 = 2 * e, L4 = 4 * e, HW4 = L4 * L4;
    bool stab = !multimask && h->dynamic_stab; /* the single-mask output may switch by stability */
    const size_t fb = sizeof(float);

    sam_arena_reset(&h->arena); /* top-level entry: nothing of an earlier call is live */
    sam_arena_mark mk = sam_arena_get_mark(&h->arena);
    float *tokens = sam_arena_f32(&h->arena, (size_t)T * C);  /* (T, C) initial tokens = query pe */
    float *queries = sam_arena_f32(&h->arena, (size_t)T * C); /* (T, C) */
    float *keys = sam_arena_f32(&h->arena, (size_t)HW * C);   /* (HW, C) */
    float *up1 = sam_arena_f32(&h->arena, (size_t)L2 * L2 * (C / 4)); /* (2e, 2e, C/4) */
    float *up2 = sam_arena_f32(&h->arena, (size_t)HW4 * (C / 8));     /* (4e, 4e, C/8) */
    float *hyper = sam_arena_f32(&h->arena, (size_t)M * (C / 8));     /* (M, C/8) */
    float *masks = sam_arena_f32(&h->arena, (size_t)M * HW4);         /* (M, 4e*4e) */
    /* (M + 3): iou (M), object score (1), stability counts (2): one to_host fetches them */
    float *scal = sam_arena_f32(&h->arena, (size_t)M + 3);
    if (!tokens || !queries || !keys || !up1 || !up2 || !hyper || !masks || !scal) {
        sam_arena_rewind(&h->arena, mk);
        return SAM_ERR(SAM2D_ERR_NOMEM, "sam_mask_decode: out of memory");
    }
    /* Output tokens [obj_score?, iou, mask tokens...] (const memory) then the prompt tokens. */
    float *tp = tokens;
    if (s) {
        be->copy(be, tp, h->obj_token, (size_t)C * fb);
        tp += C;
    }
    be->copy(be, tp, h->iou_token, (size_t)C * fb);
    tp += C;
    be->copy(be, tp, h->mask_tokens, (size_t)M * C * fb);
    tp += (size_t)M * C;
    if (n_sparse) be->copy(be, tp, sparse, (size_t)n_sparse * C * fb);
    be->copy(be, queries, tokens, (size_t)T * C * fb);
    be->add(be, keys, image_embed, dense, (int64_t)HW * C);

    sam2d_status st = two_way(h, queries, keys, tokens, h->dense_pe, T, HW);
    if (st != SAM2D_OK) goto done;

    /* Upscaling: keys are already the (e, e, C) map channels-last. */
    be->conv_transpose2x2(be, up1, keys, h->up0_w, h->up0_b, 1, e, e, C, C / 4);
    if (h->use_high_res) be->add(be, up1, up1, high_res1, (int64_t)L2 * L2 * (C / 4));
    be->layer_norm(be, up1, up1, h->up1_w, h->up1_b, (int64_t)L2 * L2, C / 4, 1e-6f);
    be->gelu(be, up1, up1, (int64_t)L2 * L2 * (C / 4));
    be->conv_transpose2x2(be, up2, up1, h->up3_w, h->up3_b, 1, L2, L2, C / 4, C / 8);
    if (h->use_high_res) be->add(be, up2, up2, high_res0, (int64_t)HW4 * (C / 8));
    be->gelu(be, up2, up2, (int64_t)HW4 * (C / 8));

    const float *mask_tok = queries + (size_t)(s + 1) * C; /* (M, C) buffer */
    for (int i = 0; i < M; i++) {
        st = mlp_forward(h, &h->hyper[i], mask_tok + (size_t)i * C, 1, hyper + (size_t)i * (C / 8));
        if (st != SAM2D_OK) goto done;
    }
    /* masks (M, HW4) = hyper (M, C/8) . up2 (HW4, C/8)^T */
    be->linear(be, masks, hyper, up2, NULL, M, HW4, C / 8);
    st = mlp_forward(h, &h->iou_head, queries + (size_t)s * C, 1, scal);
    if (st != SAM2D_OK) goto done;
    if (h->pred_obj_scores) {
        st = mlp_forward(h, &h->obj_head, queries, 1, scal + M);
        if (st != SAM2D_OK) goto done;
    } else {
        be->fill(be, scal + M, 10.0f, 1); /* the reference's constant when no object-score head exists */
    }
    if (stab) {
        /* (2, HW4) scratch: up2 is dead once the masks are made (and large enough when C >= 16) */
        sam_arena_mark mk2 = sam_arena_get_mark(&h->arena);
        float *tmp = C / 8 >= 2 ? up2 : sam_arena_f32(&h->arena, 2 * (size_t)HW4);
        if (!tmp) {
            st = SAM_ERR(SAM2D_ERR_NOMEM, "sam_mask_decode: out of memory");
            goto done;
        }
        stability_counts(h, scal + M + 1, masks, HW4, h->stab_delta, tmp);
        sam_arena_rewind(&h->arena, mk2);
    }
    /* The host decides on these: one fetch (it waits for the kernels above). */
    float hs[SAM_MAX_MASK_TOKENS + 3]; /* (M + 3) host: iou, object score, counts */
    be->to_host(be, hs, scal, (size_t)(M + 1 + (stab ? 2 : 0)) * fb);
    const float *iou = hs; /* (M) host */

    if (all_masks) be->copy(be, all_masks, masks, (size_t)M * HW4 * fb);
    if (all_iou) memcpy(all_iou, iou, (size_t)M * fb);
    if (all_tokens) be->copy(be, all_tokens, mask_tok, (size_t)M * C * fb);

    /* MaskDecoder.forward's selection. */
    if (multimask) {
        out->num_masks = M - 1;
        be->copy(be, out->masks, masks + HW4, (size_t)(M - 1) * HW4 * fb);
        memcpy(out->iou, iou + 1, (size_t)(M - 1) * fb);
    } else {
        int pick = 0;
        /* stability = area above +delta / area above -delta (1 when the latter is empty) */
        if (stab && (hs[M + 2] > 0 ? hs[M + 1] / hs[M + 2] : 1.0f) < h->stab_thresh) {
            pick = 1; /* best multimask output by predicted IoU (first on ties, as argmax) */
            for (int i = 2; i < M; i++)
                if (iou[i] > iou[pick]) pick = i;
        }
        out->num_masks = 1;
        be->copy(be, out->masks, masks + (size_t)pick * HW4, (size_t)HW4 * fb);
        out->iou[0] = iou[pick];
    }
    if (multimask && h->multimask_token_for_ptr) {
        out->num_tokens = M - 1;
        if (out->sam_tokens) be->copy(be, out->sam_tokens, mask_tok + C, (size_t)(M - 1) * C * fb);
    } else {
        out->num_tokens = 1; /* token 0, also when the stability rule picked another mask */
        if (out->sam_tokens) be->copy(be, out->sam_tokens, mask_tok, (size_t)C * fb);
    }
    out->object_score_logit = hs[M];
done:
    sam_arena_rewind(&h->arena, mk);
    return st;
}

sam2d_status sam_mask_decode(sam_heads *h, const float *image_embed, const float *high_res0, const float *high_res1,
                             const float *sparse, int n_sparse, const float *dense, bool multimask,
                             sam_decoder_out *out) {
    return sam_mask_decode_ex(h, image_embed, high_res0, high_res1, sparse, n_sparse, dense, multimask, out, NULL,
                              NULL, NULL);
}

/* Run every path once on zeros with a typical prompt count so the arena reaches its
 * high-water size now; later calls with as many tokens allocate nothing. The inputs
 * are one temporary buffer (zeroed on the back end), freed before returning. */
static sam2d_status heads_dry_run(sam_heads *h) {
    sam_backend *be = h->be;
    int C = h->C, e = h->emb, L4 = h->low, M = h->num_mask_tokens;
    enum { NPTS = 8 };
    size_t n_in = (size_t)e * e * C * 2 + (size_t)L4 * L4 * (1 + C / 8) + (size_t)(2 * e) * (2 * e) * (C / 4) +
                  (size_t)NPTS * C + (size_t)M * ((size_t)L4 * L4 + C);
    float *buf = be->buf_alloc(be, n_in * sizeof(float)); /* buffer */
    if (!buf) return SAM_ERR(SAM2D_ERR_NOMEM, "sam_heads: out of memory");
    be->zero(be, buf, n_in * sizeof(float));
    float *embed = buf;                                   /* (e*e, C) */
    float *dense = embed + (size_t)e * e * C;             /* (e*e, C) */
    float *mask_in = dense + (size_t)e * e * C;           /* (L4*L4) */
    float *hr0 = mask_in + (size_t)L4 * L4;               /* (L4*L4, C/8) */
    float *hr1 = hr0 + (size_t)L4 * L4 * (C / 8);         /* ((2e)^2, C/4) */
    float *sparse = hr1 + (size_t)(2 * e) * (2 * e) * (C / 4); /* (NPTS, C) */
    float *om = sparse + (size_t)NPTS * C;                /* (M, L4*L4) */
    float *ot = om + (size_t)M * L4 * L4;                 /* (M, C) */
    float coords[2 * NPTS] = {0}, oi[SAM_MAX_MASK_TOKENS]; /* host */
    int labels[NPTS];
    for (int i = 0; i < NPTS; i++) labels[i] = i % 2;
    sam_decoder_out o = {.masks = om, .iou = oi, .sam_tokens = ot};
    sam2d_status st = sam_prompt_encode(h, coords, labels, NPTS, mask_in, sparse, dense);
    if (st == SAM2D_OK) st = sam_mask_decode(h, embed, hr0, hr1, sparse, NPTS, dense, false, &o);
    int sst = be->sync(be); /* nothing queued may still read buf */
    if (st == SAM2D_OK && sst != SAM2D_OK) st = SAM_ERR((sam2d_status)sst, "sam_heads: dry run failed on the device");
    be->buf_free(be, buf);
    sam_arena_reset(&h->arena);
    return st;
}

size_t sam_heads_weight_bytes(const sam_heads *h) {
    return h ? h->weights.bytes : 0; /* dense_pe and the ones vector are in the set */
}

size_t sam_heads_scratch_bytes(const sam_heads *h, size_t *resident) {
    if (resident) *resident = h ? sam_arena_resident(&h->arena) : 0;
    return h ? h->arena.capacity : 0;
}

size_t sam_heads_scratch_need(const sam_heads *h) { return h ? h->arena.high_water : 0; }

void sam_heads_use_scratch(sam_heads *h, void *buf, size_t bytes) {
    if (h) sam_arena_use_buffer(&h->arena, buf, bytes);
}
