/* The state dict a config implies (names and shapes in PyTorch's order), the
 * parameter count, the config-vs-checkpoint check, and the reverse: a config
 * inferred from a checkpoint's shapes. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "sam2d/config.h"

#define MAX_BLOCKS 256

/* ---- Enumeration ----------------------------------------------------------- */

typedef struct {
    sam2d_config_tensor *v; /* (cap) */
    size_t n, cap;
    bool oom, too_long;
} emitter;

static void add(emitter *e, bool buffer, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(emitter *e, bool buffer, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (e->oom) return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 512;
        sam2d_config_tensor *v = sam_realloc(e->v, cap * sizeof *v);
        if (!v) {
            e->oom = true;
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    sam2d_config_tensor *t = &e->v[e->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof t->name) e->too_long = true;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->buffer = buffer;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NARGS(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* P(e, "name", dims...) for a parameter */
#define P(e, name, ...) add((e), false, NARGS(__VA_ARGS__), SHAPE(__VA_ARGS__), "%s", (name))

static void linear(emitter *e, const char *pre, int64_t in, int64_t out) {
    add(e, false, 2, SHAPE(out, in), "%s.weight", pre);
    add(e, false, 1, SHAPE(out), "%s.bias", pre);
}
static void norm(emitter *e, const char *pre, int64_t d) {
    add(e, false, 1, SHAPE(d), "%s.weight", pre);
    add(e, false, 1, SHAPE(d), "%s.bias", pre);
}
static void conv(emitter *e, const char *pre, int64_t in, int64_t out, int64_t k, int64_t groups) {
    add(e, false, 4, SHAPE(out, in / groups, k, k), "%s.weight", pre);
    add(e, false, 1, SHAPE(out), "%s.bias", pre);
}
static void conv_t(emitter *e, const char *pre, int64_t in, int64_t out, int64_t k) {
    add(e, false, 4, SHAPE(in, out, k, k), "%s.weight", pre);
    add(e, false, 1, SHAPE(out), "%s.bias", pre);
}
static void mlp(emitter *e, const char *pre, int64_t in, int64_t hidden, int64_t out, int layers) {
    char name[2 * SAM2D_CONFIG_TENSOR_NAME_MAX]; /* add() flags names that end up too long */
    for (int i = 0; i < layers; i++) {
        snprintf(name, sizeof name, "%s.layers.%d", pre, i);
        linear(e, name, i == 0 ? in : hidden, i == layers - 1 ? out : hidden);
    }
}
static void attention(emitter *e, const char *pre, int64_t dim, int64_t internal, int64_t kv_in) {
    char name[2 * SAM2D_CONFIG_TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "%s.q_proj", pre);
    linear(e, name, dim, internal);
    snprintf(name, sizeof name, "%s.k_proj", pre);
    linear(e, name, kv_in, internal);
    snprintf(name, sizeof name, "%s.v_proj", pre);
    linear(e, name, kv_in, internal);
    snprintf(name, sizeof name, "%s.out_proj", pre);
    linear(e, name, internal, dim);
}

static void enumerate(const sam2d_model_config *c, emitter *e) {
    char n[SAM2D_CONFIG_TENSOR_NAME_MAX];
    const int64_t d = c->d_model, md = c->mem_dim;
    const bool obj_ptrs = c->use_obj_ptrs_in_encoder;

    /* SAM2Base's own parameters, in assignment order */
    P(e, "maskmem_tpos_enc", c->num_maskmem, 1, 1, md);
    P(e, "no_mem_embed", 1, 1, d);
    P(e, "no_mem_pos_enc", 1, 1, d);
    if (c->pred_obj_scores && obj_ptrs) P(e, "no_obj_ptr", 1, d);
    if (c->no_obj_embed_spatial) P(e, "no_obj_embed_spatial", 1, md);

    /* Hiera trunk */
    const int64_t C = c->embed_dim;
    P(e, "image_encoder.trunk.pos_embed", 1, C, c->window_pos_embed_bkg_spatial_size[0],
      c->window_pos_embed_bkg_spatial_size[1]);
    P(e, "image_encoder.trunk.pos_embed_window", 1, C, c->window_spec[0], c->window_spec[0]);
    conv(e, "image_encoder.trunk.patch_embed.proj", 3, C, 7, 1);
    int stage_end[SAM2D_MAX_STAGES], depth = 0;
    for (int s = 0; s < c->num_stages; s++) stage_end[s] = (depth += c->stages[s]) - 1;
    int64_t dim = C;
    for (int i = 0; i < depth; i++) {
        int64_t dim_out = dim;
        for (int s = 0; s < c->num_stages - 1; s++)
            if (i - 1 == stage_end[s]) dim_out = (int64_t)((double)dim * (double)c->dim_mul);
        const int64_t hidden = (int64_t)((double)dim_out * (double)c->mlp_ratio);
#define B(suffix) (snprintf(n, sizeof n, "image_encoder.trunk.blocks.%d.%s", i, suffix), n)
        norm(e, B("norm1"), dim);
        linear(e, B("attn.qkv"), dim, 3 * dim_out);
        linear(e, B("attn.proj"), dim_out, dim_out);
        norm(e, B("norm2"), dim_out);
        linear(e, B("mlp.layers.0"), dim_out, hidden);
        linear(e, B("mlp.layers.1"), hidden, dim_out);
        if (dim != dim_out) linear(e, B("proj"), dim, dim_out);
#undef B
        dim = dim_out;
    }
    /* FPN neck: one lateral conv per backbone level */
    for (int s = 0; s < c->num_stages; s++) {
        snprintf(n, sizeof n, "image_encoder.neck.convs.%d.conv", s);
        conv(e, n, c->backbone_channel_list[s], d, c->neck_kernel_size, 1);
    }
    if (obj_ptrs) conv(e, "mask_downsample", 1, 1, 4, 1);

    /* memory attention */
    for (int l = 0; l < c->mem_attn_num_layers; l++) {
        const int64_t internal = d / c->mem_attn_downsample_rate;
#define L(suffix) (snprintf(n, sizeof n, "memory_attention.layers.%d.%s", l, suffix), n)
        attention(e, L("self_attn"), d, internal, d);
        attention(e, L("cross_attn_image"), d, internal, c->mem_attn_kv_in_dim);
        linear(e, L("linear1"), d, c->mem_attn_dim_feedforward);
        linear(e, L("linear2"), c->mem_attn_dim_feedforward, d);
        norm(e, L("norm1"), d);
        norm(e, L("norm2"), d);
        norm(e, L("norm3"), d);
#undef L
    }
    norm(e, "memory_attention.norm", d);

    /* memory encoder */
    {
        int layers = 0;
        for (int64_t p = 1; p < c->mask_ds_total_stride && layers < 16; p *= c->mask_ds_stride) layers++;
        int64_t cin = 1, cout = 1;
        for (int k = 0; k < layers; k++) {
            cout = cin * c->mask_ds_stride * c->mask_ds_stride;
            snprintf(n, sizeof n, "memory_encoder.mask_downsampler.encoder.%d", 3 * k);
            conv(e, n, cin, cout, c->mask_ds_kernel, 1);
            snprintf(n, sizeof n, "memory_encoder.mask_downsampler.encoder.%d", 3 * k + 1);
            norm(e, n, cout);
            cin = cout;
        }
        snprintf(n, sizeof n, "memory_encoder.mask_downsampler.encoder.%d", 3 * layers);
        conv(e, n, cout, c->mask_ds_embed_dim, 1, 1);
    }
    const int64_t in = c->mem_in_dim;
    conv(e, "memory_encoder.pix_feat_proj", in, in, 1, 1);
    if (c->fuser_input_projection) conv(e, "memory_encoder.fuser.proj", in, in, 1, 1);
    for (int l = 0; l < c->fuser_num_layers; l++) {
#define F(suffix) (snprintf(n, sizeof n, "memory_encoder.fuser.layers.%d.%s", l, suffix), n)
        if (c->fuser_layer_scale_init > 0) add(e, false, 1, SHAPE(in), "%s", F("gamma"));
        conv(e, F("dwconv"), in, in, c->fuser_kernel, c->fuser_use_dwconv ? in : 1);
        norm(e, F("norm"), in);
        linear(e, F("pwconv1"), in, 4 * in);
        linear(e, F("pwconv2"), 4 * in, in);
#undef F
    }
    if (md != in) conv(e, "memory_encoder.out_proj", in, md, 1, 1);

    /* prompt encoder */
    add(e, true, 2, SHAPE(2, d / 2), "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix");
    for (int i = 0; i < 4; i++) add(e, false, 2, SHAPE(1, d), "sam_prompt_encoder.point_embeddings.%d.weight", i);
    P(e, "sam_prompt_encoder.not_a_point_embed.weight", 1, d);
    const int64_t mic = c->prompt_mask_in_chans;
    conv(e, "sam_prompt_encoder.mask_downscaling.0", 1, mic / 4, 2, 1);
    norm(e, "sam_prompt_encoder.mask_downscaling.1", mic / 4);
    conv(e, "sam_prompt_encoder.mask_downscaling.3", mic / 4, mic, 2, 1);
    norm(e, "sam_prompt_encoder.mask_downscaling.4", mic);
    conv(e, "sam_prompt_encoder.mask_downscaling.6", mic, d, 1, 1);
    P(e, "sam_prompt_encoder.no_mask_embed.weight", 1, d);

    /* mask decoder */
    const int64_t dsi = d / c->decoder_attn_downsample_rate;
    for (int l = 0; l < c->decoder_depth; l++) {
#define D(suffix) (snprintf(n, sizeof n, "sam_mask_decoder.transformer.layers.%d.%s", l, suffix), n)
        attention(e, D("self_attn"), d, d, d);
        norm(e, D("norm1"), d);
        attention(e, D("cross_attn_token_to_image"), d, dsi, d);
        norm(e, D("norm2"), d);
        linear(e, D("mlp.layers.0"), d, c->decoder_mlp_dim);
        linear(e, D("mlp.layers.1"), c->decoder_mlp_dim, d);
        norm(e, D("norm3"), d);
        norm(e, D("norm4"), d);
        attention(e, D("cross_attn_image_to_token"), d, dsi, d);
#undef D
    }
    attention(e, "sam_mask_decoder.transformer.final_attn_token_to_image", d, dsi, d);
    norm(e, "sam_mask_decoder.transformer.norm_final_attn", d);
    const int64_t ntok = c->num_multimask_outputs + 1;
    P(e, "sam_mask_decoder.iou_token.weight", 1, d);
    P(e, "sam_mask_decoder.mask_tokens.weight", ntok, d);
    if (c->pred_obj_scores) P(e, "sam_mask_decoder.obj_score_token.weight", 1, d);
    conv_t(e, "sam_mask_decoder.output_upscaling.0", d, d / 4, 2);
    norm(e, "sam_mask_decoder.output_upscaling.1", d / 4);
    conv_t(e, "sam_mask_decoder.output_upscaling.3", d / 4, d / 8, 2);
    if (c->use_high_res_features_in_sam) {
        conv(e, "sam_mask_decoder.conv_s0", d, d / 8, 1, 1);
        conv(e, "sam_mask_decoder.conv_s1", d, d / 4, 1, 1);
    }
    for (int i = 0; i < ntok; i++) {
        snprintf(n, sizeof n, "sam_mask_decoder.output_hypernetworks_mlps.%d", i);
        mlp(e, n, d, d, d / 8, 3);
    }
    mlp(e, "sam_mask_decoder.iou_prediction_head", d, c->iou_head_hidden_dim, ntok, c->iou_head_depth);
    if (c->pred_obj_scores) {
        if (c->pred_obj_scores_mlp) mlp(e, "sam_mask_decoder.pred_obj_score_head", d, d, 1, 3);
        else linear(e, "sam_mask_decoder.pred_obj_score_head", d, 1);
    }

    /* object pointers */
    if (obj_ptrs) {
        if (c->use_mlp_for_obj_ptr_proj) mlp(e, "obj_ptr_proj", d, d, d, 3);
        else linear(e, "obj_ptr_proj", d, d);
    }
    if (c->proj_tpos_enc_in_obj_ptrs) linear(e, "obj_ptr_tpos_proj", d, md);
}

sam2d_status sam2d_config_tensors(const sam2d_model_config *cfg, sam2d_config_tensor **out, size_t *count) {
    if (!cfg || !out || !count) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config tensors: NULL argument");
    *out = NULL;
    *count = 0;
    SAM_TRY(sam2d_config_validate(cfg));
    emitter e = {0};
    enumerate(cfg, &e);
    if (e.oom || e.too_long) {
        sam_free(e.v);
        return e.oom ? SAM_ERR(SAM2D_ERR_NOMEM, "config tensors: out of memory")
                     : SAM_ERR(SAM2D_ERR_INTERNAL, "config tensors: a tensor name exceeds %d bytes",
                               SAM2D_CONFIG_TENSOR_NAME_MAX);
    }
    *out = e.v;
    *count = e.n;
    return SAM2D_OK;
}

void sam2d_config_tensors_free(sam2d_config_tensor *tensors) { sam_free(tensors); }

bool sam2d_config_is_buffer_name(const char *name) {
    return name && !strcmp(name, "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix");
}

int64_t sam2d_config_num_parameters(const sam2d_model_config *cfg) {
    sam2d_config_tensor *t;
    size_t n;
    if (sam2d_config_tensors(cfg, &t, &n) != SAM2D_OK) return -1;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].buffer) continue;
        int64_t k = 1;
        for (int j = 0; j < t[i].ndim; j++) k *= t[i].shape[j];
        total += k;
    }
    sam2d_config_tensors_free(t);
    return total;
}

/* ---- Config vs checkpoint -------------------------------------------------- */

typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
} named_shape;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named_shape *)a)->name, ((const named_shape *)b)->name);
}

static bool same_shape(const named_shape *a, const named_shape *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

static size_t fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t k = 0;
    int w = snprintf(buf, len, "[");
    k += w > 0 ? (size_t)w : 0;
    for (int i = 0; i < ndim && k < len; i++) {
        w = snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
        k += w > 0 ? (size_t)w : 0;
    }
    if (k < len) {
        w = snprintf(buf + k, len - k, "]");
        k += w > 0 ? (size_t)w : 0;
    }
    return k;
}

enum { PROB_MISSING, PROB_UNEXPECTED, PROB_SHAPE };
typedef struct {
    int kind;
    const named_shape *want, *got; /* want: from the config; got: from the checkpoint */
} problem;

/* Appends to buf without overflowing; returns false once full. */
typedef struct {
    char *buf;
    size_t len, used;
} sink;
static bool put(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool put(sink *s, const char *fmt, ...) {
    if (!s->buf || s->used + 1 >= s->len) return false;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->buf + s->used, s->len - s->used, fmt, ap);
    va_end(ap);
    if (k < 0) return false;
    if ((size_t)k >= s->len - s->used) {
        s->used = s->len - 1;
        return false;
    }
    s->used += (size_t)k;
    return true;
}

static void describe_problem(const problem *p, char *buf, size_t len) {
    char a[96], b[96];
    if (p->kind == PROB_MISSING) {
        fmt_shape(a, sizeof a, p->want->ndim, p->want->shape);
        snprintf(buf, len, "%s %s", p->want->name, a);
    } else if (p->kind == PROB_UNEXPECTED) {
        fmt_shape(a, sizeof a, p->got->ndim, p->got->shape);
        snprintf(buf, len, "%s %s", p->got->name, a);
    } else {
        fmt_shape(a, sizeof a, p->want->ndim, p->want->shape);
        fmt_shape(b, sizeof b, p->got->ndim, p->got->shape);
        snprintf(buf, len, "%s: config %s checkpoint %s", p->want->name, a, b);
    }
}

/* Compact form for the error message: "name [a,b]" or "name [a,b] vs [c,d]". */
static void describe_short(const problem *p, char *buf, size_t len) {
    char a[96], b[96];
    const named_shape *x = p->kind == PROB_UNEXPECTED ? p->got : p->want;
    fmt_shape(a, sizeof a, x->ndim, x->shape);
    if (p->kind == PROB_SHAPE) {
        fmt_shape(b, sizeof b, p->got->ndim, p->got->shape);
        snprintf(buf, len, "%s %s vs %s", x->name, a, b);
    } else {
        snprintf(buf, len, "%s %s", x->name, a);
    }
}

/* Compare; fills *probs (allocated) in config order then checkpoint order. */
static sam2d_status compare(const sam2d_model_config *cfg, const sam2d_tensor_info *tensors, size_t n,
                            sam2d_config_tensor **exp_out, named_shape **ns_out, problem **probs_out, size_t *nprob,
                            size_t counts[3]) {
    sam2d_config_tensor *exp;
    size_t ne;
    SAM_TRY(sam2d_config_tensors(cfg, &exp, &ne));
    named_shape *ns = sam_malloc((ne + n + 1) * sizeof *ns);
    problem *probs = sam_malloc((ne + n + 1) * sizeof *probs);
    if (!ns || !probs) {
        sam_free(ns);
        sam_free(probs);
        sam2d_config_tensors_free(exp);
        return SAM_ERR(SAM2D_ERR_NOMEM, "config check: out of memory");
    }
    named_shape *want = ns, *got = ns + ne;
    for (size_t i = 0; i < ne; i++) want[i] = (named_shape){exp[i].name, exp[i].ndim, exp[i].shape};
    for (size_t i = 0; i < n; i++)
        got[i] = (named_shape){tensors[i].name ? tensors[i].name : "", tensors[i].ndim, tensors[i].shape};
    /* sorted copies for lookups; reports keep file / config order */
    named_shape *sw = sam_malloc((ne + 1) * sizeof *sw), *sg = sam_malloc((n + 1) * sizeof *sg);
    if (!sw || !sg) {
        sam_free(sw);
        sam_free(sg);
        sam_free(ns);
        sam_free(probs);
        sam2d_config_tensors_free(exp);
        return SAM_ERR(SAM2D_ERR_NOMEM, "config check: out of memory");
    }
    memcpy(sw, want, ne * sizeof *sw);
    memcpy(sg, got, n * sizeof *sg);
    qsort(sw, ne, sizeof *sw, cmp_named);
    qsort(sg, n, sizeof *sg, cmp_named);
    size_t np = 0;
    counts[0] = counts[1] = counts[2] = 0;
    for (size_t i = 0; i < ne; i++) {
        named_shape *hit = bsearch(&want[i], sg, n, sizeof *sg, cmp_named);
        if (!hit) {
            probs[np++] = (problem){PROB_MISSING, &want[i], NULL};
            counts[0]++;
        } else if (!same_shape(&want[i], hit)) {
            /* point into `got` (stable storage), not the sorted scratch copy */
            const named_shape *g = NULL;
            for (size_t j = 0; j < n && !g; j++)
                if (!strcmp(got[j].name, want[i].name)) g = &got[j];
            probs[np++] = (problem){PROB_SHAPE, &want[i], g};
            counts[2]++;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!bsearch(&got[i], sw, ne, sizeof *sw, cmp_named)) {
            probs[np++] = (problem){PROB_UNEXPECTED, NULL, &got[i]};
            counts[1]++;
        }
    sam_free(sw);
    sam_free(sg);
    *exp_out = exp;
    *ns_out = ns;
    *probs_out = probs;
    *nprob = np;
    return SAM2D_OK;
}

long sam2d_config_compare_tensors(const sam2d_model_config *cfg, const sam2d_tensor_info *tensors, size_t n, char *buf,
                                  size_t len) {
    if (buf && len) buf[0] = 0;
    if (!cfg || (!tensors && n)) return -1;
    sam2d_config_tensor *exp;
    named_shape *ns;
    problem *probs;
    size_t np, counts[3];
    if (compare(cfg, tensors, n, &exp, &ns, &probs, &np, counts) != SAM2D_OK) return -1;
    sink s = {buf, len, 0};
    static const char *const kind[] = {"missing", "unexpected", "shape"};
    char line[512];
    for (size_t i = 0; i < np; i++) {
        describe_problem(&probs[i], line, sizeof line);
        put(&s, "%s %s\n", kind[probs[i].kind], line);
    }
    sam_free(probs);
    sam_free(ns);
    sam2d_config_tensors_free(exp);
    return (long)np;
}

sam2d_status sam2d_config_check_tensors(const sam2d_model_config *cfg, const sam2d_tensor_info *tensors, size_t n) {
    if (!cfg || (!tensors && n)) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config check: NULL argument");
    sam2d_config_tensor *exp;
    named_shape *ns;
    problem *probs;
    size_t np, counts[3];
    SAM_TRY(compare(cfg, tensors, n, &exp, &ns, &probs, &np, counts));
    if (np == 0) {
        sam_free(probs);
        sam_free(ns);
        sam2d_config_tensors_free(exp);
        return SAM2D_OK;
    }
    /* First a summary that survives the bounded error buffer (and a caller's
     * sam_error_wrap, which keeps 500 bytes): the counts, then at least the
     * first problem of each kind, more while a share of the budget lasts. */
    enum { SUMMARY = 480, FULL = 1 << 16 };
    char *msg = sam_malloc(FULL);
    if (!msg) {
        sam_free(probs);
        sam_free(ns);
        sam2d_config_tensors_free(exp);
        return SAM_ERR(SAM2D_ERR_MISMATCH, "config and checkpoint differ: %zu missing, %zu unexpected, %zu wrong shape",
                       counts[0], counts[1], counts[2]);
    }
    sink s = {msg, SUMMARY, 0};
    put(&s, "config and checkpoint differ: %zu missing, %zu unexpected, %zu wrong shape (config vs checkpoint)",
        counts[0], counts[1], counts[2]);
    static const char *const title[] = {"missing", "unexpected", "wrong shape"};
    size_t share = (SUMMARY - s.used - 1) / (size_t)((counts[0] > 0) + (counts[1] > 0) + (counts[2] > 0));
    char line[512];
    size_t shown_all = 0;
    for (int k = 0; k < 3; k++) {
        if (!counts[k]) continue;
        size_t limit = s.used + share, shown = 0;
        put(&s, "; %s: ", title[k]);
        for (size_t i = 0; i < np; i++) {
            if (probs[i].kind != k) continue;
            describe_short(&probs[i], line, sizeof line);
            size_t need = strlen(line) + 2 + 12; /* room for the "(+N more)" tail */
            if (shown > 0 && s.used + need > limit) break;
            if (!put(&s, "%s%s", shown ? ", " : "", line)) break;
            shown++;
        }
        if (shown < counts[k]) put(&s, "%s(+%zu more)", shown ? " " : "", counts[k] - shown);
        shown_all += shown;
    }
    size_t summary_len = s.used;
    /* then every problem, for builds whose error buffer can hold it */
    s.len = FULL;
    if (shown_all < np) put(&s, ". All:");
    for (size_t i = 0; i < np && shown_all < np; i++) {
        describe_short(&probs[i], line, sizeof line);
        if (!put(&s, " %s %s;", probs[i].kind == PROB_MISSING ? "missing" : probs[i].kind == PROB_UNEXPECTED ? "unexpected" : "shape", line)) break;
    }
    sam_free(probs);
    sam_free(ns);
    sam2d_config_tensors_free(exp);
    sam2d_status st = SAM_ERR(SAM2D_ERR_MISMATCH, "%s", msg);
    if (strncmp(sam2d_last_error(), msg, s.used)) {
        /* the full list did not fit: keep the summary whole instead of a cut list */
        msg[summary_len] = 0;
        st = SAM_ERR(SAM2D_ERR_MISMATCH, "%s (full list: sam2d_config_compare_tensors or `sam2d info --check`)", msg);
    }
    sam_free(msg);
    return st;
}

/* ---- Config from shapes ----------------------------------------------------- */

typedef struct {
    const sam2d_tensor_info *t;
    size_t n;
} tlist;

static const sam2d_tensor_info *find(const tlist *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const sam2d_tensor_info *find(const tlist *L, const char *fmt, ...) {
    char name[SAM2D_CONFIG_TENSOR_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < L->n; i++)
        if (L->t[i].name && !strcmp(L->t[i].name, name)) return &L->t[i];
    return NULL;
}

/* shape[i] of a tensor that must exist with ndim dims */
static sam2d_status dim_of(const sam2d_tensor_info *t, const char *name, int ndim, int i, int *out) {
    if (!t) return SAM_ERR(SAM2D_ERR_FORMAT, "not a SAM 2 checkpoint: no tensor %s", name);
    if (t->ndim != ndim || t->shape[i] <= 0 || t->shape[i] > (1 << 24))
        return SAM_ERR(SAM2D_ERR_FORMAT, "checkpoint tensor %s has an unexpected shape", name);
    *out = (int)t->shape[i];
    return SAM2D_OK;
}

#define DIM(out, ndim, i, ...)                                                   \
    do {                                                                         \
        char nm_[SAM2D_CONFIG_TENSOR_NAME_MAX];                                   \
        snprintf(nm_, sizeof nm_, __VA_ARGS__);                                   \
        SAM_TRY(dim_of(find(&L, "%s", nm_), nm_, (ndim), (i), &(out)));          \
    } while (0)

static int count_indexed(const tlist *L, const char *fmt_with_d, int max) {
    int k = 0;
    while (k < max && find(L, fmt_with_d, k)) k++;
    return k;
}

sam2d_status sam2d_config_from_tensors(const sam2d_tensor_info *tensors, size_t n, sam2d_model_config *out) {
    if (!out || (!tensors && n)) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config from tensors: NULL argument");
    tlist L = {tensors, n};
    int embed = 0;
    DIM(embed, 4, 0, "image_encoder.trunk.patch_embed.proj.weight");
    int depth = count_indexed(&L, "image_encoder.trunk.blocks.%d.norm1.weight", MAX_BLOCKS);
    if (depth == 0) return SAM_ERR(SAM2D_ERR_FORMAT, "not a SAM 2 checkpoint: no image_encoder.trunk.blocks");
    /* a stage starts at block 0 and at every block with a width-changing proj */
    int stages[SAM2D_MAX_STAGES] = {0}, ns = 0;
    for (int i = 0; i < depth; i++) {
        if (i == 0 || find(&L, "image_encoder.trunk.blocks.%d.proj.weight", i)) {
            if (ns == SAM2D_MAX_STAGES)
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "checkpoint trunk has more than %d stages", SAM2D_MAX_STAGES);
            ns++;
        }
        stages[ns - 1]++;
    }
    bool v21 = find(&L, "no_obj_embed_spatial") || find(&L, "obj_ptr_tpos_proj.weight");

    /* start from the preset of the same trunk sizes, or tiny's values as guesses */
    static const char *const sizes[] = {"tiny", "small", "base_plus", "large"};
    sam2d_model_config c;
    bool matched = false;
    for (size_t i = 0; i < 4 && !matched; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s_%s", v21 ? "sam2.1" : "sam2", sizes[i]);
        SAM_TRY(sam2d_config_preset(name, &c));
        matched = c.embed_dim == embed && c.num_stages == ns && !memcmp(c.stages, stages, sizeof stages);
    }
    if (!matched) {
        SAM_TRY(sam2d_config_preset(v21 ? "sam2.1_tiny" : "sam2_tiny", &c));
        c.embed_dim = embed;
        c.num_stages = ns;
        memcpy(c.stages, stages, sizeof stages);
        /* global attention blocks cannot be seen in shapes: keep those that still exist */
        int k = 0;
        for (int i = 0; i < c.n_global_att_blocks; i++)
            if (c.global_att_blocks[i] < depth) c.global_att_blocks[k++] = c.global_att_blocks[i];
        c.n_global_att_blocks = k;
        if (c.q_pool > ns - 1) c.q_pool = ns - 1;
        if (c.scalp > ns - 1) c.scalp = ns - 1;
    }

    /* trunk facts */
    int v = 0;
    DIM(c.window_pos_embed_bkg_spatial_size[0], 4, 2, "image_encoder.trunk.pos_embed");
    DIM(c.window_pos_embed_bkg_spatial_size[1], 4, 3, "image_encoder.trunk.pos_embed");
    DIM(c.window_spec[0], 4, 2, "image_encoder.trunk.pos_embed_window");
    if (ns > 1) {
        DIM(v, 2, 0, "image_encoder.trunk.blocks.%d.proj.weight", stages[0]);
        c.dim_mul = (float)v / (float)embed;
    }
    DIM(v, 2, 0, "image_encoder.trunk.blocks.0.mlp.layers.0.weight");
    c.mlp_ratio = (float)v / (float)embed;
    /* neck */
    DIM(c.d_model, 4, 0, "image_encoder.neck.convs.0.conv.weight");
    DIM(c.neck_kernel_size, 4, 2, "image_encoder.neck.convs.0.conv.weight");
    for (int s = 0; s < ns; s++) DIM(c.backbone_channel_list[s], 4, 1, "image_encoder.neck.convs.%d.conv.weight", s);
    c.neck_pos_num_feats = c.d_model;
    if (!matched) { /* as Meta's configs: top-down features on the two deepest levels */
        c.n_fpn_top_down_levels = 0;
        for (int s = ns - 2 < 0 ? 0 : ns - 2; s < ns; s++) c.fpn_top_down_levels[c.n_fpn_top_down_levels++] = s;
    }
    /* memory attention */
    c.mem_attn_num_layers = count_indexed(&L, "memory_attention.layers.%d.norm1.weight", 64);
    DIM(c.mem_attn_dim_feedforward, 2, 0, "memory_attention.layers.0.linear1.weight");
    DIM(c.mem_attn_kv_in_dim, 2, 1, "memory_attention.layers.0.cross_attn_image.k_proj.weight");
    DIM(v, 2, 0, "memory_attention.layers.0.self_attn.q_proj.weight");
    c.mem_attn_downsample_rate = v > 0 && c.d_model % v == 0 ? c.d_model / v : 1;
    /* memory encoder */
    DIM(c.mem_in_dim, 4, 0, "memory_encoder.pix_feat_proj.weight");
    const sam2d_tensor_info *op = find(&L, "memory_encoder.out_proj.weight");
    if (op) DIM(c.mem_dim, 4, 0, "memory_encoder.out_proj.weight");
    else c.mem_dim = c.d_model;
    c.mem_pos_num_feats = c.mem_dim;
    {
        int layers = 0;
        while (layers < 16 && find(&L, "memory_encoder.mask_downsampler.encoder.%d.weight", 3 * layers + 1)) layers++;
        int c0;
        DIM(c0, 4, 0, "memory_encoder.mask_downsampler.encoder.0.weight");
        DIM(c.mask_ds_kernel, 4, 2, "memory_encoder.mask_downsampler.encoder.0.weight");
        int stride = (int)lround(sqrt((double)c0));
        if (stride * stride != c0 || layers == 0)
            return SAM_ERR(SAM2D_ERR_FORMAT, "checkpoint mask_downsampler: unexpected first layer shape");
        c.mask_ds_stride = stride;
        c.mask_ds_total_stride = 1;
        for (int k = 0; k < layers; k++) c.mask_ds_total_stride *= stride;
        DIM(c.mask_ds_embed_dim, 4, 0, "memory_encoder.mask_downsampler.encoder.%d.weight", 3 * layers);
    }
    c.fuser_num_layers = count_indexed(&L, "memory_encoder.fuser.layers.%d.dwconv.weight", 64);
    if (c.fuser_num_layers > 0) {
        DIM(c.fuser_kernel, 4, 2, "memory_encoder.fuser.layers.0.dwconv.weight");
        DIM(v, 4, 1, "memory_encoder.fuser.layers.0.dwconv.weight");
        c.fuser_use_dwconv = v == 1 && c.mem_in_dim > 1;
        c.fuser_padding = c.fuser_kernel / 2;
        if (!find(&L, "memory_encoder.fuser.layers.0.gamma")) c.fuser_layer_scale_init = 0;
    }
    c.fuser_input_projection = find(&L, "memory_encoder.fuser.proj.weight") != NULL;
    DIM(c.num_maskmem, 4, 0, "maskmem_tpos_enc");
    /* heads and flags that show as presence of tensors */
    c.use_high_res_features_in_sam = find(&L, "sam_mask_decoder.conv_s0.weight") != NULL;
    c.pred_obj_scores = find(&L, "sam_mask_decoder.obj_score_token.weight") != NULL;
    c.pred_obj_scores_mlp = c.pred_obj_scores && find(&L, "sam_mask_decoder.pred_obj_score_head.layers.0.weight");
    c.use_obj_ptrs_in_encoder = find(&L, "obj_ptr_proj.weight") || find(&L, "obj_ptr_proj.layers.0.weight");
    c.use_mlp_for_obj_ptr_proj = find(&L, "obj_ptr_proj.layers.0.weight") != NULL;
    c.proj_tpos_enc_in_obj_ptrs = find(&L, "obj_ptr_tpos_proj.weight") != NULL;
    if (c.proj_tpos_enc_in_obj_ptrs) c.add_tpos_enc_to_obj_ptrs = true;
    c.no_obj_embed_spatial = find(&L, "no_obj_embed_spatial") != NULL;
    if (!(c.pred_obj_scores && c.use_obj_ptrs_in_encoder)) c.fixed_no_obj_ptr = false;
    DIM(v, 2, 0, "sam_mask_decoder.mask_tokens.weight");
    c.num_multimask_outputs = v - 1;
    c.decoder_depth = count_indexed(&L, "sam_mask_decoder.transformer.layers.%d.norm1.weight", 16);
    DIM(c.decoder_mlp_dim, 2, 0, "sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight");
    DIM(v, 2, 0, "sam_mask_decoder.transformer.final_attn_token_to_image.q_proj.weight");
    c.decoder_attn_downsample_rate = v > 0 && c.d_model % v == 0 ? c.d_model / v : 2;
    c.iou_head_depth = count_indexed(&L, "sam_mask_decoder.iou_prediction_head.layers.%d.weight", 16);
    DIM(c.iou_head_hidden_dim, 2, 0, "sam_mask_decoder.iou_prediction_head.layers.0.weight");
    DIM(c.prompt_mask_in_chans, 4, 0, "sam_prompt_encoder.mask_downscaling.3.weight");

    *out = c;
    sam2d_status st = sam2d_config_validate(&c);
    if (st != SAM2D_OK) return sam_error_wrap(st, "config inferred from the checkpoint is not usable");
    SAM_TRY(sam2d_config_check_tensors(&c, tensors, n));
    if (!matched) {
        char stg[64];
        size_t k = 0;
        for (int s = 0; s < ns; s++) k += (size_t)snprintf(stg + k, sizeof stg - k, "%s%d", s ? ", " : "", stages[s]);
        return SAM_ERR(SAM2D_ERR_NOT_FOUND,
                       "the checkpoint's trunk (embed_dim %d, stages [%s]) matches no preset: num_heads, global "
                       "attention blocks, window sizes and image_size are guesses; give the model's YAML config",
                       embed, stg);
    }
    return SAM2D_OK;
}
