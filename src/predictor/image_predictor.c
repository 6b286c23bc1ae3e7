/* SAM2ImagePredictor semantics: features cached per image, prompts mapped to the
 * model's square input, decoder outputs upsampled to the image's size. */
#include "sam2d/image_predictor.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "model/model.h"
#include "model/preprocess.h"

/* Memory (ops.h rule): everything the model computes on lives in back-end
 * buffers (device memory on a GPU); the user's data (the image's bytes, prompt
 * points, a mask prompt) and the results handed back are host memory, moved
 * with one to_dev / to_host each. Sizes that follow the image grow rarely.
 * On back ends whose buffers are host memory (the CPU's) the staging copies
 * are skipped: the host works in the buffers and results point into them. */
struct sam2d_image_predictor {
    sam2d_model *m;
    sam_backend *be;
    bool host_buffers;        /* the back end's buffers are host memory (ops.h: device_memory gives 0) */
    sam2d_image_predictor_params params;
    int S, C, L;              /* image size, d_model, low-res side (S/4) */
    int emb;                  /* S/16 */
    int max_masks;            /* num_multimask_outputs (3): the most masks one predict returns */
    bool has_image;
    int H, W;                 /* current image */
    float *input_host;        /* (S, S, 3) host: the normalised image, resized on the host (= input on host buffers) */
    float *input;             /* (S, S, 3) buffer: the encoder's input (one to_dev of input_host) */
    float *feat_buf;          /* sam_image_features_floats_ex(cfg, 0) floats, buffer */
    sam_image_features feats; /* views into feat_buf (buffers) */
    float *image_embed;       /* (emb*emb, C) buffer: level 2 + no_mem_embed */
    float *feat_host;         /* host copy of image_embed, high_res0, high_res1 for _features (made on demand) */
    bool feat_host_fresh;     /* feat_host holds the current image's */
    /* prompt scratch, sized at create for the largest prompt seen (grown rarely) */
    float *coords;            /* (cap_pts, 2) host */
    int *labels;              /* (cap_pts) host */
    float *sparse;            /* (cap_pts, C) buffer */
    int cap_pts;
    float *dense;             /* (emb*emb, C) buffer */
    float *mask_in;           /* (L, L) buffer: the user's mask prompt, uploaded */
    /* results */
    float *low;               /* (max_masks, L, L) buffer: raw decoder logits */
    float *masks_dev;         /* (max_masks, H, W) buffer: upsampled (and thresholded) masks */
    size_t masks_dev_cap;     /* floats */
    float *low_clamped;       /* (max_masks, L, L) host */
    float *iou;               /* (max_masks) host (the heads return host IoUs) */
    float *masks;             /* (max_masks, H, W) host (unused on host buffers: masks_dev is returned) */
    size_t masks_cap;         /* floats */
};

sam2d_image_predictor_params sam2d_image_predictor_default_params(void) {
    sam2d_image_predictor_params p;
    memset(&p, 0, sizeof(p));
    p.antialias = SAM_PREPROCESS_ANTIALIAS_DEFAULT;
    return p;
}

void sam2d_image_predictor_free(sam2d_image_predictor *p) {
    if (!p) return;
    sam_backend *be = p->be;
    if (!p->host_buffers) sam_free(p->input_host);
    be->buf_free(be, p->input);
    be->buf_free(be, p->feat_buf);
    be->buf_free(be, p->image_embed);
    sam_free(p->feat_host);
    sam_free(p->coords);
    sam_free(p->labels);
    be->buf_free(be, p->sparse);
    be->buf_free(be, p->dense);
    be->buf_free(be, p->mask_in);
    be->buf_free(be, p->low);
    be->buf_free(be, p->masks_dev);
    sam_free(p->low_clamped);
    sam_free(p->iou);
    sam_free(p->masks);
    sam_free(p);
}

static sam2d_status ensure_points(sam2d_image_predictor *p, int n) {
    if (n <= p->cap_pts) return SAM2D_OK;
    int cap = n < 16 ? 16 : n;
    float *c = sam_realloc(p->coords, (size_t)cap * 2 * sizeof(float));
    if (c) p->coords = c;
    int *l = sam_realloc(p->labels, (size_t)cap * sizeof(int));
    if (l) p->labels = l;
    /* the sparse embeddings hold nothing between predicts: a fresh buffer */
    float *s = p->be->buf_alloc(p->be, (size_t)cap * p->C * sizeof(float));
    if (s) {
        p->be->buf_free(p->be, p->sparse);
        p->sparse = s;
    }
    if (!c || !l || !s) return SAM_ERR(SAM2D_ERR_NOMEM, "image predictor: out of memory");
    p->cap_pts = cap;
    return SAM2D_OK;
}

sam2d_status sam2d_image_predictor_create(sam2d_model *model, const sam2d_image_predictor_params *params,
                                          sam2d_image_predictor **out) {
    *out = NULL;
    if (!model) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "image predictor: NULL model");
    sam2d_image_predictor *p = sam_calloc(1, sizeof(*p));
    if (!p) return SAM_ERR(SAM2D_ERR_NOMEM, "image predictor: out of memory");
    p->m = model;
    sam_backend *be = p->be = model->be;
    p->params = params ? *params : sam2d_image_predictor_default_params();
    p->host_buffers = true;
    if (be->device_memory) {
        size_t used = 0, total = 0;
        be->device_memory(be, &used, &total);
        p->host_buffers = total == 0;
    }
    const sam2d_model_config *cfg = &model->cfg;
    p->S = cfg->image_size;
    p->C = cfg->d_model;
    p->emb = p->S / cfg->backbone_stride;
    p->L = sam_heads_low_res_size(model->heads);
    p->max_masks = cfg->num_multimask_outputs > 1 ? cfg->num_multimask_outputs : 1;
    size_t ee = (size_t)p->emb * p->emb, ll = (size_t)p->L * p->L;
    p->input = be->buf_alloc(be, (size_t)p->S * p->S * 3 * sizeof(float));
    p->input_host = p->host_buffers ? p->input : sam_malloc((size_t)p->S * p->S * 3 * sizeof(float));
    /* the decoder never reads the backbone position encodings: none are stored */
    p->feat_buf = be->buf_alloc(be, sam_image_features_floats_ex(cfg, 0) * sizeof(float));
    p->image_embed = be->buf_alloc(be, ee * p->C * sizeof(float));
    p->dense = be->buf_alloc(be, ee * p->C * sizeof(float));
    p->mask_in = be->buf_alloc(be, ll * sizeof(float));
    p->low = be->buf_alloc(be, (size_t)p->max_masks * ll * sizeof(float));
    p->low_clamped = sam_malloc((size_t)p->max_masks * ll * sizeof(float));
    p->iou = sam_malloc((size_t)p->max_masks * sizeof(float));
    if (!p->input_host || !p->input || !p->feat_buf || !p->image_embed || !p->dense || !p->mask_in || !p->low ||
        !p->low_clamped || !p->iou || ensure_points(p, 16) != SAM2D_OK) {
        sam2d_image_predictor_free(p);
        return SAM_ERR(SAM2D_ERR_NOMEM, "image predictor: out of memory");
    }
    sam_image_features_bind_ex(cfg, p->feat_buf, 0, &p->feats);
    *out = p;
    return SAM2D_OK;
}

/* Host array of at least `need` floats (grow-only; contents not kept). */
static bool grow_host(float **a, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    float *n = sam_malloc(need * sizeof(float));
    if (!n) return false;
    sam_free(*a);
    *a = n;
    *cap = need;
    return true;
}

sam2d_status sam2d_image_predictor_set_image(sam2d_image_predictor *p, const uint8_t *rgb, int width, int height) {
    if (!p || !rgb || width <= 0 || height <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "set_image: bad image (%dx%d)", width, height);
    if (p->params.max_dimension > 0 && (width > p->params.max_dimension || height > p->params.max_dimension))
        return SAM_ERR(SAM2D_ERR_LIMIT, "Image dimensions exceed maximum (%dx%d > %d)", width, height,
                       p->params.max_dimension);
    p->has_image = false;
    p->feat_host_fresh = false;
    sam_backend *be = p->be;
    size_t need = (size_t)p->max_masks * width * height;
    if (!p->host_buffers && !grow_host(&p->masks, &p->masks_cap, need))
        return SAM_ERR(SAM2D_ERR_NOMEM, "set_image: out of memory for %dx%d masks", width, height);
    if (need > p->masks_dev_cap) {
        float *md = be->buf_alloc(be, need * sizeof(float));
        if (!md) return SAM_ERR(SAM2D_ERR_NOMEM, "set_image: out of memory for %dx%d masks", width, height);
        be->buf_free(be, p->masks_dev);
        p->masks_dev = md;
        p->masks_dev_cap = need;
    }
    /* The resize and normalisation run on the host (exact torch arithmetic from the bytes; its
     * scratch, ~12*H*S bytes with antialias, lives only during the call), then one upload. */
    SAM_TRY(sam_preprocess_image(be, rgb, height, width, p->S, p->params.antialias, p->input_host));
    sam2d_model *m = p->m;
    sam_model_lock(m);
    if (!p->host_buffers) be->to_dev(be, p->input, p->input_host, (size_t)p->S * p->S * 3 * sizeof(float));
    sam2d_status st = sam_image_encoder_forward(m->encoder, p->input, &p->feats);
    sam_model_unlock(m);
    SAM_TRY(st);
    /* directly_add_no_mem_embed: the image predictor's S/16 features always get it. */
    size_t ee = (size_t)p->emb * p->emb;
    if (m->cfg.directly_add_no_mem_embed)
        be->add_row(be, p->image_embed, p->feats.feat[2], m->no_mem_embed, (int64_t)ee, p->C);
    else
        be->copy(be, p->image_embed, p->feats.feat[2], ee * p->C * sizeof(float));
    p->W = width;
    p->H = height;
    p->has_image = true;
    return SAM2D_OK;
}

sam2d_status sam2d_image_predictor_predict(sam2d_image_predictor *p, const sam2d_image_prompt *q,
                                           sam2d_image_result *res) {
    if (!p || !q || !res) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "predict: NULL argument");
    if (!p->has_image) return SAM_ERR(SAM2D_ERR_STATE, "predict: an image must be set first");
    if (q->n_points < 0 || (q->n_points > 0 && (!q->points || !q->labels)))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "predict: points without labels");
    if (q->n_points == 0 && !q->box && !q->mask_input)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "predict: give at least a point, a box or a mask");
    for (int i = 0; i < q->n_points; i++)
        if (q->labels[i] < -1 || q->labels[i] > 3)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "predict: point label %d (expected 0 or 1)", q->labels[i]);

    /* Box corners first (labels 2, 3), then the clicks, then the padding point that the
     * prompt encoder appends whenever points are given (boxes travel as points). */
    int n_box = q->box ? 2 : 0;
    int n = n_box + q->n_points;
    int n_tok = n > 0 ? n + 1 : 0;
    SAM_TRY(ensure_points(p, n_tok));
    float sx = (float)p->S, fw = (float)p->W, fh = (float)p->H;
    int k = 0;
    for (int i = 0; i < n_box; i++, k++) {
        p->coords[2 * k] = q->box[2 * i] / fw * sx;
        p->coords[2 * k + 1] = q->box[2 * i + 1] / fh * sx;
        p->labels[k] = 2 + i;
    }
    for (int i = 0; i < q->n_points; i++, k++) {
        p->coords[2 * k] = q->points[2 * i] / fw * sx;
        p->coords[2 * k + 1] = q->points[2 * i + 1] / fh * sx;
        p->labels[k] = q->labels[i];
    }
    if (n_tok) {
        p->coords[2 * k] = 0.0f;
        p->coords[2 * k + 1] = 0.0f;
        p->labels[k] = -1;
    }

    sam2d_model *m = p->m;
    sam_backend *be = p->be;
    size_t ll = (size_t)p->L * p->L;
    sam_decoder_out o = {.masks = p->low, .iou = p->iou, .sam_tokens = NULL};
    sam_model_lock(m);
    /* the user's mask prompt is host memory: the heads take a buffer */
    if (q->mask_input) be->to_dev(be, p->mask_in, q->mask_input, ll * sizeof(float));
    sam2d_status st = sam_prompt_encode(m->heads, p->coords, p->labels, n_tok, q->mask_input ? p->mask_in : NULL,
                                        p->sparse, p->dense);
    if (st == SAM2D_OK)
        st = sam_mask_decode(m->heads, p->image_embed, m->cfg.use_high_res_features_in_sam ? p->feats.feat[0] : NULL,
                             m->cfg.use_high_res_features_in_sam ? p->feats.feat[1] : NULL, p->sparse, n_tok,
                             p->dense, q->multimask, &o);
    sam_model_unlock(m);
    SAM_TRY(st);

    int nm = o.num_masks;
    size_t hw = (size_t)p->H * p->W;
    /* Full-size masks come from the unclamped logits (thresholded on the back end), then one download. */
    be->resize_bilinear(be, p->masks_dev, p->low, nm, p->L, p->L, p->H, p->W, false);
    if (!q->return_logits) be->binarize(be, p->masks_dev, p->masks_dev, (int64_t)nm * (int64_t)hw);
    if (!p->host_buffers) be->to_host(be, p->masks, p->masks_dev, (size_t)nm * hw * sizeof(float));
    /* Only the returned low-res copy is clamped: on the host, after its download (no clamp entry needed). */
    be->to_host(be, p->low_clamped, p->low, (size_t)nm * ll * sizeof(float));
    for (size_t i = 0; i < (size_t)nm * ll; i++) {
        float v = p->low_clamped[i];
        p->low_clamped[i] = v < -32.0f ? -32.0f : v > 32.0f ? 32.0f : v;
    }
    res->num_masks = nm;
    res->height = p->H;
    res->width = p->W;
    res->low_res = p->L;
    res->masks = p->host_buffers ? p->masks_dev : p->masks;
    res->iou = p->iou;
    res->low_res_masks = p->low_clamped;
    return SAM2D_OK;
}

int sam2d_image_predictor_low_res_size(const sam2d_image_predictor *p) { return p->L; }

sam2d_status sam2d_image_predictor_features(const sam2d_image_predictor *cp, const float **image_embed,
                                            const float **high_res0, const float **high_res1) {
    if (!cp->has_image) return SAM_ERR(SAM2D_ERR_STATE, "features: no image set");
    /* The cached features are back-end buffers; callers get host copies, downloaded once
     * per image on the first request (a diagnostic path: replay, tests). The copy is a
     * cache, so the predictor stays logically const. */
    sam2d_image_predictor *p = (sam2d_image_predictor *)cp;
    sam_backend *be = p->be;
    size_t ee = (size_t)p->emb * p->emb * p->C;
    size_t n0 = p->feats.feat[0] ? (size_t)p->feats.h[0] * p->feats.w[0] * p->feats.c[0] : 0;
    size_t n1 = p->feats.feat[1] ? (size_t)p->feats.h[1] * p->feats.w[1] * p->feats.c[1] : 0;
    if (p->host_buffers) { /* readable as they are */
        if (image_embed) *image_embed = p->image_embed;
        if (high_res0) *high_res0 = p->feats.feat[0];
        if (high_res1) *high_res1 = p->feats.feat[1];
        return SAM2D_OK;
    }
    if (!p->feat_host) {
        p->feat_host = sam_malloc((ee + n0 + n1) * sizeof(float));
        if (!p->feat_host) return SAM_ERR(SAM2D_ERR_NOMEM, "features: out of memory");
    }
    if (!p->feat_host_fresh) {
        sam_model_lock(p->m); /* the back end's queue may be shared with other sessions */
        be->to_host(be, p->feat_host, p->image_embed, ee * sizeof(float));
        if (n0) be->to_host(be, p->feat_host + ee, p->feats.feat[0], n0 * sizeof(float));
        if (n1) be->to_host(be, p->feat_host + ee + n0, p->feats.feat[1], n1 * sizeof(float));
        sam_model_unlock(p->m);
        p->feat_host_fresh = true;
    }
    if (image_embed) *image_embed = p->feat_host;
    if (high_res0) *high_res0 = n0 ? p->feat_host + ee : NULL;
    if (high_res1) *high_res1 = n1 ? p->feat_host + ee + n0 : NULL;
    return SAM2D_OK;
}

sam2d_status sam2d_image_predictor_input(const sam2d_image_predictor *p, const float **image) {
    if (!p->has_image) return SAM_ERR(SAM2D_ERR_STATE, "input: no image set");
    *image = p->input_host; /* the host copy the encoder's input was uploaded from */
    return SAM2D_OK;
}
