/* Model configuration: Meta's constructor defaults, the eight built-in presets,
 * the hydra-style YAML loader, validation and printing. The expected state
 * dict (tensor names / shapes) lives in config_tensors.c. */
#include "sam2d/config.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/yaml.h"

/* ---- Field table: one row per struct field, for diff and print ---------- */

typedef struct {
    const char *name;
    char kind;      /* 'i' int (array of n), 'f' float, 'b' bool */
    size_t off;
    int n;          /* array length (1 for scalars) */
    ptrdiff_t cnt;  /* offset of the int holding the used length, or -1 */
} field_def;

#define CFG_ARRLEN(f) ((int)(sizeof(((sam2d_model_config *)0)->f) / sizeof(int)))
#define FI(f) {#f, 'i', offsetof(sam2d_model_config, f), CFG_ARRLEN(f), -1}
#define FA(f, c) {#f, 'i', offsetof(sam2d_model_config, f), CFG_ARRLEN(f), (ptrdiff_t)offsetof(sam2d_model_config, c)}
#define FF(f) {#f, 'f', offsetof(sam2d_model_config, f), 1, -1}
#define FB(f) {#f, 'b', offsetof(sam2d_model_config, f), 1, -1}

static const field_def fields[] = {
    FI(embed_dim), FI(num_heads), FI(num_stages), FA(stages, num_stages), FI(n_global_att_blocks),
    FA(global_att_blocks, n_global_att_blocks), FA(window_spec, num_stages), FI(window_pos_embed_bkg_spatial_size),
    FI(q_pool), FI(q_stride), FF(mlp_ratio), FF(dim_mul), FF(head_mul),
    FI(d_model), FA(backbone_channel_list, num_stages), FI(n_fpn_top_down_levels),
    FA(fpn_top_down_levels, n_fpn_top_down_levels), FI(scalp), FI(neck_pos_num_feats), FF(neck_pos_temperature),
    FB(neck_pos_normalize), FI(neck_kernel_size), FI(neck_stride), FI(neck_padding), FB(neck_fpn_interp_nearest),
    FB(neck_fuse_avg),
    FI(mem_attn_num_layers), FI(mem_attn_dim_feedforward), FI(mem_attn_num_heads), FF(mem_attn_rope_theta),
    FI(mem_attn_feat_sizes), FB(mem_attn_pos_enc_at_input), FB(mem_attn_pos_enc_at_attn),
    FB(mem_attn_pos_enc_at_cross_attn_keys), FB(mem_attn_pos_enc_at_cross_attn_queries), FB(mem_attn_rope_k_repeat),
    FI(mem_attn_kv_in_dim), FI(mem_attn_downsample_rate),
    FI(mem_dim), FI(mem_in_dim), FI(mem_pos_num_feats), FF(mem_pos_temperature), FB(mem_pos_normalize),
    FI(mask_ds_kernel), FI(mask_ds_stride), FI(mask_ds_padding), FI(mask_ds_total_stride), FI(mask_ds_embed_dim),
    FI(fuser_num_layers), FI(fuser_kernel), FI(fuser_padding), FB(fuser_use_dwconv), FF(fuser_layer_scale_init),
    FB(fuser_input_projection),
    FI(image_size), FI(backbone_stride), FI(num_maskmem), FF(sigmoid_scale_for_mem_enc), FF(sigmoid_bias_for_mem_enc),
    FB(binarize_mask_from_pts_for_mem_enc), FB(use_mask_input_as_output_without_sam), FI(max_cond_frames_in_attn),
    FB(directly_add_no_mem_embed), FB(use_high_res_features_in_sam), FB(multimask_output_in_sam),
    FI(multimask_min_pt_num), FI(multimask_max_pt_num), FB(multimask_output_for_tracking),
    FB(use_multimask_token_for_obj_ptr), FB(iou_prediction_use_sigmoid), FI(memory_temporal_stride_for_eval),
    FB(non_overlap_masks_for_mem_enc), FB(use_obj_ptrs_in_encoder), FI(max_obj_ptrs_in_encoder),
    FB(add_tpos_enc_to_obj_ptrs), FB(proj_tpos_enc_in_obj_ptrs), FB(use_signed_tpos_enc_to_obj_ptrs),
    FB(only_obj_ptrs_in_the_past_for_eval), FB(pred_obj_scores), FB(pred_obj_scores_mlp), FB(fixed_no_obj_ptr),
    FB(soft_no_obj_ptr), FB(use_mlp_for_obj_ptr_proj), FB(no_obj_embed_spatial),
    FB(dynamic_multimask_via_stability), FF(dynamic_multimask_stability_delta), FF(dynamic_multimask_stability_thresh),
    FI(fill_hole_area), FB(non_overlap_masks), FB(clear_non_cond_mem_around_input),
    FB(add_all_frames_to_correct_as_cond),
    FI(num_multimask_outputs), FI(iou_head_depth), FI(iou_head_hidden_dim), FI(decoder_depth), FI(decoder_num_heads),
    FI(decoder_mlp_dim), FI(decoder_attn_downsample_rate), FI(prompt_mask_in_chans),
};

int sam2d_config_diff(const sam2d_model_config *a, const sam2d_model_config *b, char *buf, size_t len) {
    int ndiff = 0;
    size_t used = 0;
    if (buf && len) buf[0] = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const field_def *f = &fields[i];
        const char *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
        bool same;
        if (f->kind == 'i') {
            int n = f->n;
            if (f->cnt >= 0) { /* compare only the used part of a counted array */
                int ca = *(const int *)((const char *)a + f->cnt), cb = *(const int *)((const char *)b + f->cnt);
                if (ca != cb) n = f->n;
                else n = ca < 0 ? 0 : (ca > f->n ? f->n : ca);
            }
            same = !memcmp(pa, pb, (size_t)n * sizeof(int));
        } else if (f->kind == 'f') {
            same = *(const float *)pa == *(const float *)pb;
        } else {
            same = *(const bool *)pa == *(const bool *)pb;
        }
        if (same) continue;
        ndiff++;
        if (buf && len > used + 1) {
            int k = snprintf(buf + used, len - used, "%s%s", ndiff > 1 ? ", " : "", f->name);
            if (k > 0) used += (size_t)k < len - used ? (size_t)k : len - used - 1;
        }
    }
    return ndiff;
}

void sam2d_config_print(const sam2d_model_config *cfg, FILE *out) {
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const field_def *f = &fields[i];
        const char *p = (const char *)cfg + f->off;
        fprintf(out, "  %-40s ", f->name);
        if (f->kind == 'f') {
            fprintf(out, "%g\n", (double)*(const float *)p);
        } else if (f->kind == 'b') {
            fprintf(out, "%s\n", *(const bool *)p ? "true" : "false");
        } else if (f->n == 1) {
            fprintf(out, "%d\n", *(const int *)p);
        } else {
            int n = f->cnt >= 0 ? *(const int *)((const char *)cfg + f->cnt) : f->n;
            if (n < 0) n = 0;
            if (n > f->n) n = f->n;
            fputc('[', out);
            for (int k = 0; k < n; k++) fprintf(out, "%s%d", k ? ", " : "", ((const int *)p)[k]);
            fputs("]\n", out);
        }
    }
}

/* ---- Defaults ------------------------------------------------------------ */

/* The defaults of Meta's constructors (Hiera, FpnNeck, RoPEAttention, MemoryEncoder,
 * MaskDownSampler, CXBlock, SAM2Base, SAM2VideoPredictor, MaskDecoder) and the
 * values SAM2Base hard-codes for its SAM heads. Required constructor arguments
 * get 0 and must come from the YAML. */
static void constructor_defaults(sam2d_model_config *c) {
    memset(c, 0, sizeof *c);
    /* Hiera */
    c->embed_dim = 96;
    c->num_heads = 1;
    c->num_stages = 4;
    const int stages[4] = {2, 3, 16, 3}, win[4] = {8, 4, 14, 7}, glob[3] = {12, 16, 20};
    memcpy(c->stages, stages, sizeof stages);
    memcpy(c->window_spec, win, sizeof win);
    c->n_global_att_blocks = 3;
    memcpy(c->global_att_blocks, glob, sizeof glob);
    c->window_pos_embed_bkg_spatial_size[0] = c->window_pos_embed_bkg_spatial_size[1] = 14;
    c->q_pool = 3;
    c->q_stride[0] = c->q_stride[1] = 2;
    c->mlp_ratio = 4.0f;
    c->dim_mul = c->head_mul = 2.0f;
    /* FpnNeck (d_model, backbone_channel_list required); top-down levels: all */
    c->neck_kernel_size = 1;
    c->neck_stride = 1;
    c->neck_padding = 0;
    c->neck_fpn_interp_nearest = false; /* "bilinear" */
    c->neck_fuse_avg = false;
    c->n_fpn_top_down_levels = -1;      /* None: resolved to all levels after loading */
    c->scalp = 0;
    c->neck_pos_temperature = 10000.0f;
    c->neck_pos_normalize = true;
    /* RoPEAttention */
    c->mem_attn_rope_theta = 10000.0f;
    c->mem_attn_feat_sizes[0] = c->mem_attn_feat_sizes[1] = 64;
    c->mem_attn_rope_k_repeat = false;
    c->mem_attn_downsample_rate = 1;
    /* MemoryEncoder, MaskDownSampler, CXBlock, Fuser */
    c->mem_in_dim = 256;
    c->mem_pos_temperature = 10000.0f;
    c->mem_pos_normalize = true;
    c->mask_ds_embed_dim = 256;
    c->mask_ds_kernel = 4;
    c->mask_ds_stride = 4;
    c->mask_ds_padding = 0;
    c->mask_ds_total_stride = 16;
    c->fuser_kernel = 7;
    c->fuser_padding = 3;
    c->fuser_layer_scale_init = 1e-6f;
    c->fuser_use_dwconv = true;
    c->fuser_input_projection = false;
    /* SAM2Base */
    c->num_maskmem = 7;
    c->image_size = 512;
    c->backbone_stride = 16;
    c->sigmoid_scale_for_mem_enc = 1.0f;
    c->sigmoid_bias_for_mem_enc = 0.0f;
    c->max_cond_frames_in_attn = -1;
    c->multimask_min_pt_num = 1;
    c->multimask_max_pt_num = 1;
    c->memory_temporal_stride_for_eval = 1;
    c->max_obj_ptrs_in_encoder = 16;
    c->add_tpos_enc_to_obj_ptrs = true;
    /* MaskDecoder kwargs (sam_mask_decoder_extra_args None) */
    c->dynamic_multimask_via_stability = false;
    c->dynamic_multimask_stability_delta = 0.05f;
    c->dynamic_multimask_stability_thresh = 0.98f;
    /* SAM2VideoPredictor */
    c->fill_hole_area = 0;
    /* fixed in SAM2Base._build_sam_heads */
    c->num_multimask_outputs = 3;
    c->iou_head_depth = 3;
    c->iou_head_hidden_dim = 256;
    c->decoder_depth = 2;
    c->decoder_num_heads = 8;
    c->decoder_mlp_dim = 2048;
    c->decoder_attn_downsample_rate = 2;
    c->prompt_mask_in_chans = 16;
}

/* fpn_top_down_levels None means every level. */
static void resolve_top_down(sam2d_model_config *c) {
    if (c->n_fpn_top_down_levels < 0) {
        c->n_fpn_top_down_levels = c->num_stages;
        for (int i = 0; i < c->num_stages && i < SAM2D_MAX_STAGES; i++) c->fpn_top_down_levels[i] = i;
    }
}

/* The channel list Hiera reports (deepest stage first). */
static void trunk_channels(const sam2d_model_config *c, int *out) {
    int dim = c->embed_dim;
    int dims[SAM2D_MAX_STAGES] = {0};
    for (int s = 0; s < c->num_stages && s < SAM2D_MAX_STAGES; s++) {
        if (s > 0) dim = (int)((double)dim * (double)c->dim_mul);
        dims[s] = dim;
    }
    for (int s = 0; s < c->num_stages && s < SAM2D_MAX_STAGES; s++) out[s] = dims[c->num_stages - 1 - s];
}

/* ---- Presets ------------------------------------------------------------- */

typedef struct {
    const char *size;          /* "tiny", ... */
    const char *stem;          /* Meta's file stem suffix: "t", "s", "b+", "l" */
    int embed_dim, num_heads;
    int stages[4];
    int global[3];
    bool default_window_spec;  /* the YAML omits window_spec */
    int window_spec[4];
    bool default_bkg;          /* the YAML omits window_pos_embed_bkg_spatial_size */
} preset_def;

static const preset_def presets[] = {
    {"tiny", "t", 96, 1, {1, 2, 7, 2}, {5, 7, 9}, true, {0}, false},
    {"small", "s", 96, 1, {1, 2, 11, 2}, {7, 10, 13}, true, {0}, false},
    {"base_plus", "b+", 112, 2, {2, 3, 16, 3}, {12, 16, 20}, true, {0}, true},
    {"large", "l", 144, 2, {2, 6, 36, 4}, {23, 33, 43}, false, {8, 4, 16, 8}, false},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

/* build_sam2_video_predictor's hydra overrides (apply_postprocessing=True). */
typedef struct {
    bool dyn, delta, thresh, binarize, fill;
} override_mask;

static void apply_video_overrides(sam2d_model_config *c, override_mask set) {
    if (!set.dyn) c->dynamic_multimask_via_stability = true;
    if (!set.delta) c->dynamic_multimask_stability_delta = 0.05f;
    if (!set.thresh) c->dynamic_multimask_stability_thresh = 0.98f;
    if (!set.binarize) c->binarize_mask_from_pts_for_mem_enc = true;
    if (!set.fill) c->fill_hole_area = 8;
}

/* What Meta's sam2/ and sam2.1/ YAML files set (identical across sizes except
 * the trunk), on top of the constructor defaults. */
static void build_preset(const preset_def *p, bool v21, sam2d_model_config *c) {
    constructor_defaults(c);
    c->embed_dim = p->embed_dim;
    c->num_heads = p->num_heads;
    c->num_stages = 4;
    memcpy(c->stages, p->stages, sizeof p->stages);
    c->n_global_att_blocks = 3;
    memcpy(c->global_att_blocks, p->global, sizeof p->global);
    if (!p->default_window_spec) memcpy(c->window_spec, p->window_spec, sizeof p->window_spec);
    if (!p->default_bkg) c->window_pos_embed_bkg_spatial_size[0] = c->window_pos_embed_bkg_spatial_size[1] = 7;
    c->scalp = 1;
    c->d_model = 256;
    trunk_channels(c, c->backbone_channel_list);
    c->neck_pos_num_feats = 256;
    c->neck_pos_normalize = true;
    c->neck_pos_temperature = 10000.0f;
    c->n_fpn_top_down_levels = 2;
    c->fpn_top_down_levels[0] = 2;
    c->fpn_top_down_levels[1] = 3;
    c->neck_fpn_interp_nearest = true;
    c->mem_attn_pos_enc_at_input = true;
    c->mem_attn_dim_feedforward = 2048;
    c->mem_attn_pos_enc_at_attn = false;
    c->mem_attn_rope_theta = 10000.0f;
    c->mem_attn_feat_sizes[0] = c->mem_attn_feat_sizes[1] = 64;
    c->mem_attn_num_heads = 1;
    c->mem_attn_downsample_rate = 1;
    c->mem_attn_pos_enc_at_cross_attn_keys = true;
    c->mem_attn_pos_enc_at_cross_attn_queries = false;
    c->mem_attn_rope_k_repeat = true;
    c->mem_attn_kv_in_dim = 64;
    c->mem_attn_num_layers = 4;
    c->mem_dim = 64;
    c->mem_pos_num_feats = 64;
    c->mask_ds_kernel = 3;
    c->mask_ds_stride = 2;
    c->mask_ds_padding = 1;
    c->fuser_kernel = 7;
    c->fuser_padding = 3;
    c->fuser_layer_scale_init = 1e-6f;
    c->fuser_use_dwconv = true;
    c->fuser_num_layers = 2;
    c->num_maskmem = 7;
    c->image_size = 1024;
    c->sigmoid_scale_for_mem_enc = 20.0f;
    c->sigmoid_bias_for_mem_enc = -10.0f;
    c->use_mask_input_as_output_without_sam = true;
    c->directly_add_no_mem_embed = true;
    c->no_obj_embed_spatial = v21;
    c->use_high_res_features_in_sam = true;
    c->multimask_output_in_sam = true;
    c->iou_prediction_use_sigmoid = true;
    c->use_obj_ptrs_in_encoder = true;
    c->add_tpos_enc_to_obj_ptrs = v21;
    c->proj_tpos_enc_in_obj_ptrs = v21;
    c->use_signed_tpos_enc_to_obj_ptrs = v21;
    c->only_obj_ptrs_in_the_past_for_eval = true;
    c->pred_obj_scores = true;
    c->pred_obj_scores_mlp = true;
    c->fixed_no_obj_ptr = true;
    c->multimask_output_for_tracking = true;
    c->use_multimask_token_for_obj_ptr = true;
    c->multimask_min_pt_num = 0;
    c->multimask_max_pt_num = 1;
    c->use_mlp_for_obj_ptr_proj = true;
    apply_video_overrides(c, (override_mask){0});
}

const char *sam2d_config_preset_names(void) {
    return "sam2.1_tiny,sam2.1_small,sam2.1_base_plus,sam2.1_large,sam2_tiny,sam2_small,sam2_base_plus,sam2_large";
}

/* Sizes also go by Meta's file-name spellings. */
static int size_index(const char *s) {
    static const struct {
        const char *alias;
        int idx;
    } names[] = {{"tiny", 0}, {"t", 0}, {"small", 1}, {"s", 1}, {"base_plus", 2}, {"b+", 2}, {"base+", 2},
                 {"bplus", 2}, {"large", 3}, {"l", 3}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].alias)) return names[i].idx;
    return -1;
}

sam2d_status sam2d_config_preset(const char *name, sam2d_model_config *out) {
    if (!name || !out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config preset: NULL argument");
    /* accept a path or file name: strip directories and a known extension */
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    char buf[64];
    size_t len = strlen(base);
    if (len >= sizeof buf) goto unknown;
    for (size_t i = 0; i <= len; i++) buf[i] = (char)tolower((unsigned char)base[i]);
    static const char *const exts[] = {".yaml", ".safetensors", ".pt"};
    for (size_t i = 0; i < 3; i++) {
        size_t el = strlen(exts[i]);
        if (len > el && !strcmp(buf + len - el, exts[i])) {
            buf[len - el] = 0;
            break;
        }
    }
    const char *rest;
    bool v21;
    if (!strncmp(buf, "sam2.1_", 7)) v21 = true, rest = buf + 7;
    else if (!strncmp(buf, "sam2_", 5)) v21 = false, rest = buf + 5;
    else goto unknown;
    if (!strncmp(rest, "hiera_", 6)) rest += 6;
    int idx = size_index(rest);
    if (idx < 0) goto unknown;
    build_preset(&presets[idx], v21, out);
    return SAM2D_OK;
unknown:
    return SAM_ERR(SAM2D_ERR_NOT_FOUND, "unknown config preset \"%s\" (known: %s; Meta's names like sam2.1_hiera_b+ work too)",
                   name, sam2d_config_preset_names());
}

/* ---- YAML loader --------------------------------------------------------- */

typedef struct {
    const sam_yaml_node *map;
    char path[160];
} sec;

static sam2d_status wrap(sam2d_status st, const sec *s, const char *key) {
    if (st == SAM2D_OK) return st;
    return sam_error_wrap(st, "config %s.%s", s->path, key);
}

/* Refuse keys the constructor does not take (hydra would fail on them too). */
static sam2d_status check_keys(const sec *s, const char *const *allowed) {
    for (const sam_yaml_node *c = s->map->first; c; c = c->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, c->key);
        if (!ok)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: unknown key %s.%s", c->line, s->path, c->key);
    }
    return SAM2D_OK;
}

static sam2d_status need(const sec *s, const char *key, const sam_yaml_node **n) {
    *n = sam_yaml_get(s->map, key);
    if (!*n || sam_yaml_is_null(*n))
        return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s needs a value for \"%s\"", s->map->line, s->path, key);
    return SAM2D_OK;
}

/* Each reader leaves *dst alone when the key is absent and not required. */
static sam2d_status rd_int(const sec *s, const char *key, bool required, int *dst) {
    const sam_yaml_node *n = sam_yaml_get(s->map, key);
    if (!n) return required ? need(s, key, &n) : SAM2D_OK;
    int64_t v;
    SAM_TRY(wrap(sam_yaml_as_int(n, &v), s, key));
    if (v < INT_MIN || v > INT_MAX) return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.%s out of range", n->line, s->path, key);
    *dst = (int)v;
    return SAM2D_OK;
}

static sam2d_status rd_float(const sec *s, const char *key, bool required, float *dst) {
    const sam_yaml_node *n = sam_yaml_get(s->map, key);
    if (!n) return required ? need(s, key, &n) : SAM2D_OK;
    double v;
    SAM_TRY(wrap(sam_yaml_as_double(n, &v), s, key));
    if (!(fabs(v) <= 3.0e38)) return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.%s out of range", n->line, s->path, key);
    *dst = (float)v;
    return SAM2D_OK;
}

static sam2d_status rd_bool(const sec *s, const char *key, bool required, bool *dst) {
    const sam_yaml_node *n = sam_yaml_get(s->map, key);
    if (!n) return required ? need(s, key, &n) : SAM2D_OK;
    return wrap(sam_yaml_as_bool(n, dst), s, key);
}

/* A list of ints; a null value gives count 0 when null_ok. */
static sam2d_status rd_list(const sec *s, const char *key, bool required, bool null_ok, int *dst, int cap, int *count,
                            bool *present) {
    const sam_yaml_node *n = sam_yaml_get(s->map, key);
    if (present) *present = n != NULL;
    if (!n) return required ? need(s, key, &n) : SAM2D_OK;
    if (null_ok && sam_yaml_is_null(n)) {
        *count = 0;
        return SAM2D_OK;
    }
    int64_t v[16];
    int k = 0;
    SAM_TRY(wrap(sam_yaml_as_int_list(n, v, cap < 16 ? cap : 16, &k), s, key));
    for (int i = 0; i < k; i++) {
        if (v[i] < INT_MIN || v[i] > INT_MAX)
            return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.%s out of range", n->line, s->path, key);
        dst[i] = (int)v[i];
    }
    *count = k;
    return SAM2D_OK;
}

/* A pair like [7, 7]. */
static sam2d_status rd_pair(const sec *s, const char *key, int *dst) {
    int v[2], k = 0;
    bool present;
    SAM_TRY(rd_list(s, key, false, false, v, 2, &k, &present));
    if (!present) return SAM2D_OK;
    if (k != 2) return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.%s needs two values", s->map->line, s->path, key);
    dst[0] = v[0];
    dst[1] = v[1];
    return SAM2D_OK;
}

static sam2d_status rd_string(const sec *s, const char *key, const char **dst) {
    const sam_yaml_node *n = sam_yaml_get(s->map, key);
    if (!n) return SAM2D_OK;
    if (n->kind != SAM_YAML_SCALAR)
        return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.%s must be a string", n->line, s->path, key);
    *dst = n->text;
    return SAM2D_OK;
}

/* A value that must stay at what we implement (e.g. weights_path: null). */
static sam2d_status rd_must_be_null(const sec *s, const char *key) {
    const sam_yaml_node *n = sam_yaml_get(s->map, key);
    if (n && !sam_yaml_is_null(n))
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s.%s must be null (other values are not supported)", n->line,
                       s->path, key);
    return SAM2D_OK;
}

static sam2d_status rd_must_be_true(const sec *s, const char *key) {
    bool v = true;
    SAM_TRY(rd_bool(s, key, false, &v));
    if (!v)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s.%s: only true is supported", sam_yaml_get(s->map, key)->line,
                       s->path, key);
    return SAM2D_OK;
}

/* A required sub-mapping built by one of `targets` (hydra _target_ names). */
static sam2d_status sub(const sec *s, const char *key, const char *const *targets, sec *out) {
    const sam_yaml_node *n;
    SAM_TRY(need(s, key, &n));
    if (n->kind != SAM_YAML_MAP)
        return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.%s must be a mapping", n->line, s->path, key);
    out->map = n;
    int k = snprintf(out->path, sizeof out->path, "%s.%s", s->path, key);
    if (k < 0 || (size_t)k >= sizeof out->path)
        return SAM_ERR(SAM2D_ERR_LIMIT, "config line %d: key path too long", n->line);
    const sam_yaml_node *t = sam_yaml_get(n, "_target_");
    if (!t || t->kind != SAM_YAML_SCALAR)
        return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s has no _target_", n->line, out->path);
    for (const char *const *p = targets; *p; p++)
        if (!strcmp(*p, t->text)) return SAM2D_OK;
    return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s._target_ %s is not supported (expected %s)", t->line, out->path,
                   t->text, targets[0]);
}

static const char *const T_POS_SINE[] = {"sam2.modeling.position_encoding.PositionEmbeddingSine", NULL};
static const char *const T_ROPE[] = {"sam2.modeling.sam.transformer.RoPEAttention", NULL};

static sam2d_status load_pos_sine(const sec *s, int *num_feats, float *temperature, bool *normalize) {
    static const char *const keys[] = {"_target_", "num_pos_feats", "temperature", "normalize", "scale",
                                       "warmup_cache", "image_size", "strides", NULL};
    SAM_TRY(check_keys(s, keys));
    SAM_TRY(rd_int(s, "num_pos_feats", true, num_feats));
    SAM_TRY(rd_float(s, "temperature", false, temperature));
    SAM_TRY(rd_bool(s, "normalize", false, normalize));
    SAM_TRY(rd_must_be_null(s, "scale")); /* None: 2*pi */
    if (!*normalize)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s.normalize false is not supported", s->map->line, s->path);
    return SAM2D_OK;
}

typedef struct {
    int dim, heads, ds, kv_in_dim, feat[2];
    float theta;
    bool k_repeat;
} rope_args;

static sam2d_status load_rope(const sec *s, rope_args *r) {
    static const char *const keys[] = {"_target_", "rope_theta", "rope_k_repeat", "feat_sizes", "embedding_dim",
                                       "num_heads", "downsample_rate", "dropout", "kv_in_dim", NULL};
    SAM_TRY(check_keys(s, keys));
    r->theta = 10000.0f;
    r->k_repeat = false;
    r->feat[0] = r->feat[1] = 64;
    r->ds = 1;
    SAM_TRY(rd_int(s, "embedding_dim", true, &r->dim));
    SAM_TRY(rd_int(s, "num_heads", true, &r->heads));
    SAM_TRY(rd_int(s, "downsample_rate", false, &r->ds));
    SAM_TRY(rd_float(s, "rope_theta", false, &r->theta));
    SAM_TRY(rd_bool(s, "rope_k_repeat", false, &r->k_repeat));
    SAM_TRY(rd_pair(s, "feat_sizes", r->feat));
    r->kv_in_dim = r->dim;
    const sam_yaml_node *kv = sam_yaml_get(s->map, "kv_in_dim");
    if (kv && !sam_yaml_is_null(kv)) SAM_TRY(rd_int(s, "kv_in_dim", false, &r->kv_in_dim));
    return SAM2D_OK;
}

static sam2d_status load_image_encoder(const sec *model, sam2d_model_config *c) {
    static const char *const T_IE[] = {"sam2.modeling.backbones.image_encoder.ImageEncoder", NULL};
    static const char *const T_HIERA[] = {"sam2.modeling.backbones.hieradet.Hiera", NULL};
    static const char *const T_FPN[] = {"sam2.modeling.backbones.image_encoder.FpnNeck", NULL};
    sec ie, tr, nk, pe;
    SAM_TRY(sub(model, "image_encoder", T_IE, &ie));
    static const char *const ie_keys[] = {"_target_", "trunk", "neck", "scalp", NULL};
    SAM_TRY(check_keys(&ie, ie_keys));
    SAM_TRY(rd_int(&ie, "scalp", false, &c->scalp));

    SAM_TRY(sub(&ie, "trunk", T_HIERA, &tr));
    static const char *const tr_keys[] = {"_target_", "embed_dim", "num_heads", "drop_path_rate", "q_pool", "q_stride",
                                          "stages", "dim_mul", "head_mul", "window_pos_embed_bkg_spatial_size",
                                          "window_spec", "global_att_blocks", "weights_path", "return_interm_layers",
                                          NULL};
    SAM_TRY(check_keys(&tr, tr_keys));
    SAM_TRY(rd_int(&tr, "embed_dim", false, &c->embed_dim));
    SAM_TRY(rd_int(&tr, "num_heads", false, &c->num_heads));
    SAM_TRY(rd_int(&tr, "q_pool", false, &c->q_pool));
    SAM_TRY(rd_pair(&tr, "q_stride", c->q_stride));
    int n_stages = c->num_stages, n_win = c->num_stages;
    SAM_TRY(rd_list(&tr, "stages", false, false, c->stages, SAM2D_MAX_STAGES, &n_stages, NULL));
    SAM_TRY(rd_list(&tr, "window_spec", false, false, c->window_spec, SAM2D_MAX_STAGES, &n_win, NULL));
    if (n_stages != n_win)
        return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s: stages has %d entries but window_spec %d", tr.map->line,
                       tr.path, n_stages, n_win);
    c->num_stages = n_stages;
    SAM_TRY(rd_float(&tr, "dim_mul", false, &c->dim_mul));
    SAM_TRY(rd_float(&tr, "head_mul", false, &c->head_mul));
    SAM_TRY(rd_pair(&tr, "window_pos_embed_bkg_spatial_size", c->window_pos_embed_bkg_spatial_size));
    SAM_TRY(rd_list(&tr, "global_att_blocks", false, true, c->global_att_blocks, SAM2D_MAX_GLOBAL_BLOCKS,
                    &c->n_global_att_blocks, NULL));
    SAM_TRY(rd_must_be_null(&tr, "weights_path"));
    SAM_TRY(rd_must_be_true(&tr, "return_interm_layers"));

    SAM_TRY(sub(&ie, "neck", T_FPN, &nk));
    static const char *const nk_keys[] = {"_target_", "position_encoding", "d_model", "backbone_channel_list",
                                          "kernel_size", "stride", "padding", "fpn_interp_model", "fuse_type",
                                          "fpn_top_down_levels", NULL};
    SAM_TRY(check_keys(&nk, nk_keys));
    SAM_TRY(rd_int(&nk, "d_model", true, &c->d_model));
    int n_ch = 0;
    SAM_TRY(rd_list(&nk, "backbone_channel_list", true, false, c->backbone_channel_list, SAM2D_MAX_STAGES, &n_ch, NULL));
    SAM_TRY(rd_int(&nk, "kernel_size", false, &c->neck_kernel_size));
    SAM_TRY(rd_int(&nk, "stride", false, &c->neck_stride));
    SAM_TRY(rd_int(&nk, "padding", false, &c->neck_padding));
    const char *interp = "bilinear", *fuse = "sum";
    SAM_TRY(rd_string(&nk, "fpn_interp_model", &interp));
    SAM_TRY(rd_string(&nk, "fuse_type", &fuse));
    if (!strcmp(interp, "nearest")) c->neck_fpn_interp_nearest = true;
    else if (!strcmp(interp, "bilinear")) c->neck_fpn_interp_nearest = false;
    else return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config: %s.fpn_interp_model \"%s\" (nearest or bilinear)", nk.path, interp);
    if (!strcmp(fuse, "sum")) c->neck_fuse_avg = false;
    else if (!strcmp(fuse, "avg")) c->neck_fuse_avg = true;
    else return SAM_ERR(SAM2D_ERR_FORMAT, "config: %s.fuse_type \"%s\" (sum or avg)", nk.path, fuse);
    const sam_yaml_node *td = sam_yaml_get(nk.map, "fpn_top_down_levels");
    if (td && !sam_yaml_is_null(td))
        SAM_TRY(rd_list(&nk, "fpn_top_down_levels", false, false, c->fpn_top_down_levels, SAM2D_MAX_STAGES,
                        &c->n_fpn_top_down_levels, NULL));
    SAM_TRY(sub(&nk, "position_encoding", T_POS_SINE, &pe));
    SAM_TRY(load_pos_sine(&pe, &c->neck_pos_num_feats, &c->neck_pos_temperature, &c->neck_pos_normalize));

    /* ImageEncoder asserts the neck's channel list equals the trunk's */
    int want[SAM2D_MAX_STAGES] = {0};
    if (c->num_stages >= 1 && c->num_stages <= SAM2D_MAX_STAGES) {
        trunk_channels(c, want);
        if (n_ch != c->num_stages || memcmp(want, c->backbone_channel_list, (size_t)n_ch * sizeof(int)))
            return SAM_ERR(SAM2D_ERR_MISMATCH,
                           "config line %d: %s.backbone_channel_list must equal the trunk's channels [%d, %d, %d, %d]",
                           nk.map->line, nk.path, want[0], want[1], want[2], want[3]);
    }
    return SAM2D_OK;
}

static sam2d_status load_memory_attention(const sec *model, sam2d_model_config *c) {
    static const char *const T_MA[] = {"sam2.modeling.memory_attention.MemoryAttention", NULL};
    static const char *const T_MAL[] = {"sam2.modeling.memory_attention.MemoryAttentionLayer", NULL};
    sec ma, ly, sa, ca;
    SAM_TRY(sub(model, "memory_attention", T_MA, &ma));
    static const char *const ma_keys[] = {"_target_", "d_model", "pos_enc_at_input", "layer", "num_layers",
                                          "batch_first", NULL};
    SAM_TRY(check_keys(&ma, ma_keys));
    int d_model = 0, layer_d = 0;
    SAM_TRY(rd_int(&ma, "d_model", true, &d_model));
    SAM_TRY(rd_bool(&ma, "pos_enc_at_input", true, &c->mem_attn_pos_enc_at_input));
    SAM_TRY(rd_int(&ma, "num_layers", true, &c->mem_attn_num_layers));
    SAM_TRY(rd_must_be_true(&ma, "batch_first"));

    SAM_TRY(sub(&ma, "layer", T_MAL, &ly));
    static const char *const ly_keys[] = {"_target_", "activation", "cross_attention", "d_model", "dim_feedforward",
                                          "dropout", "pos_enc_at_attn", "pos_enc_at_cross_attn_keys",
                                          "pos_enc_at_cross_attn_queries", "self_attention", NULL};
    SAM_TRY(check_keys(&ly, ly_keys));
    const sam_yaml_node *act;
    SAM_TRY(need(&ly, "activation", &act));
    if (act->kind != SAM_YAML_SCALAR || strcmp(act->text, "relu"))
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s.activation: only relu is supported", act->line, ly.path);
    const sam_yaml_node *dummy;
    SAM_TRY(need(&ly, "dropout", &dummy)); /* required by the constructor; no effect at inference */
    SAM_TRY(rd_int(&ly, "d_model", true, &layer_d));
    SAM_TRY(rd_int(&ly, "dim_feedforward", true, &c->mem_attn_dim_feedforward));
    SAM_TRY(rd_bool(&ly, "pos_enc_at_attn", true, &c->mem_attn_pos_enc_at_attn));
    SAM_TRY(rd_bool(&ly, "pos_enc_at_cross_attn_keys", true, &c->mem_attn_pos_enc_at_cross_attn_keys));
    SAM_TRY(rd_bool(&ly, "pos_enc_at_cross_attn_queries", true, &c->mem_attn_pos_enc_at_cross_attn_queries));

    rope_args rs, rc;
    SAM_TRY(sub(&ly, "self_attention", T_ROPE, &sa));
    SAM_TRY(load_rope(&sa, &rs));
    SAM_TRY(sub(&ly, "cross_attention", T_ROPE, &ca));
    SAM_TRY(load_rope(&ca, &rc));
    /* one set of fields describes both attentions: they must agree */
    if (rs.heads != rc.heads || rs.ds != rc.ds || rs.theta != rc.theta || rs.feat[0] != rc.feat[0] ||
        rs.feat[1] != rc.feat[1])
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                       "config line %d: self_attention and cross_attention must share num_heads, downsample_rate, "
                       "rope_theta and feat_sizes",
                       ly.map->line);
    if (rs.k_repeat)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s.rope_k_repeat true is not supported", sa.map->line,
                       sa.path);
    if (rs.kv_in_dim != rs.dim)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "config line %d: %s.kv_in_dim must equal embedding_dim", sa.map->line, sa.path);
    if (d_model != c->d_model || layer_d != c->d_model || rs.dim != c->d_model || rc.dim != c->d_model)
        return SAM_ERR(SAM2D_ERR_MISMATCH,
                       "config line %d: memory attention d_model (%d), layer d_model (%d) and embedding dims (%d, %d) "
                       "must equal the neck d_model %d",
                       ma.map->line, d_model, layer_d, rs.dim, rc.dim, c->d_model);
    c->mem_attn_num_heads = rs.heads;
    c->mem_attn_downsample_rate = rs.ds;
    c->mem_attn_rope_theta = rs.theta;
    c->mem_attn_feat_sizes[0] = rs.feat[0];
    c->mem_attn_feat_sizes[1] = rs.feat[1];
    c->mem_attn_rope_k_repeat = rc.k_repeat;
    c->mem_attn_kv_in_dim = rc.kv_in_dim;
    return SAM2D_OK;
}

static sam2d_status load_memory_encoder(const sec *model, sam2d_model_config *c) {
    static const char *const T_ME[] = {"sam2.modeling.memory_encoder.MemoryEncoder", NULL};
    static const char *const T_MDS[] = {"sam2.modeling.memory_encoder.MaskDownSampler", NULL};
    static const char *const T_FU[] = {"sam2.modeling.memory_encoder.Fuser", NULL};
    static const char *const T_CX[] = {"sam2.modeling.memory_encoder.CXBlock", NULL};
    sec me, ds, fu, cx, pe;
    SAM_TRY(sub(model, "memory_encoder", T_ME, &me));
    static const char *const me_keys[] = {"_target_", "out_dim", "mask_downsampler", "fuser", "position_encoding",
                                          "in_dim", NULL};
    SAM_TRY(check_keys(&me, me_keys));
    SAM_TRY(rd_int(&me, "out_dim", true, &c->mem_dim));
    SAM_TRY(rd_int(&me, "in_dim", false, &c->mem_in_dim));

    SAM_TRY(sub(&me, "mask_downsampler", T_MDS, &ds));
    static const char *const ds_keys[] = {"_target_", "embed_dim", "kernel_size", "stride", "padding", "total_stride", NULL};
    SAM_TRY(check_keys(&ds, ds_keys));
    SAM_TRY(rd_int(&ds, "embed_dim", false, &c->mask_ds_embed_dim));
    SAM_TRY(rd_int(&ds, "kernel_size", false, &c->mask_ds_kernel));
    SAM_TRY(rd_int(&ds, "stride", false, &c->mask_ds_stride));
    SAM_TRY(rd_int(&ds, "padding", false, &c->mask_ds_padding));
    SAM_TRY(rd_int(&ds, "total_stride", false, &c->mask_ds_total_stride));

    SAM_TRY(sub(&me, "fuser", T_FU, &fu));
    static const char *const fu_keys[] = {"_target_", "layer", "num_layers", "dim", "input_projection", NULL};
    SAM_TRY(check_keys(&fu, fu_keys));
    SAM_TRY(rd_int(&fu, "num_layers", true, &c->fuser_num_layers));
    SAM_TRY(rd_bool(&fu, "input_projection", false, &c->fuser_input_projection));
    int fuser_dim = -1;
    const sam_yaml_node *fd = sam_yaml_get(fu.map, "dim");
    if (fd && !sam_yaml_is_null(fd)) SAM_TRY(rd_int(&fu, "dim", false, &fuser_dim));
    if (c->fuser_input_projection && fuser_dim < 0)
        return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: %s.input_projection needs dim", fu.map->line, fu.path);

    SAM_TRY(sub(&fu, "layer", T_CX, &cx));
    static const char *const cx_keys[] = {"_target_", "dim", "kernel_size", "padding", "drop_path",
                                          "layer_scale_init_value", "use_dwconv", NULL};
    SAM_TRY(check_keys(&cx, cx_keys));
    int cx_dim = 0;
    SAM_TRY(rd_int(&cx, "dim", true, &cx_dim));
    SAM_TRY(rd_int(&cx, "kernel_size", false, &c->fuser_kernel));
    SAM_TRY(rd_int(&cx, "padding", false, &c->fuser_padding));
    SAM_TRY(rd_float(&cx, "layer_scale_init_value", false, &c->fuser_layer_scale_init));
    SAM_TRY(rd_bool(&cx, "use_dwconv", false, &c->fuser_use_dwconv));
    if (cx_dim != c->mem_in_dim || (fuser_dim >= 0 && fuser_dim != c->mem_in_dim))
        return SAM_ERR(SAM2D_ERR_MISMATCH, "config line %d: %s.dim (%d) must equal memory_encoder.in_dim (%d)", cx.map->line,
                       cx.path, cx_dim, c->mem_in_dim);

    SAM_TRY(sub(&me, "position_encoding", T_POS_SINE, &pe));
    SAM_TRY(load_pos_sine(&pe, &c->mem_pos_num_feats, &c->mem_pos_temperature, &c->mem_pos_normalize));
    return SAM2D_OK;
}

static sam2d_status load_model(const sam_yaml_node *root, sam2d_model_config *c) {
    static const char *const T_MODEL[] = {"sam2.modeling.sam2_base.SAM2Base", "sam2.sam2_video_predictor.SAM2VideoPredictor",
                                          "sam2.sam2_video_predictor.SAM2VideoPredictorVOS", NULL};
    sec top = {.map = root, .path = ""}, m;
    if (!sam_yaml_get(root, "model"))
        return SAM_ERR(SAM2D_ERR_FORMAT, "config: no top-level \"model\" mapping (is this one of Meta's model configs?)");
    SAM_TRY(sub(&top, "model", T_MODEL, &m));
    memmove(m.path, m.path + 1, strlen(m.path)); /* "model", not ".model" */
    static const char *const keys[] = {
        "_target_", "image_encoder", "memory_attention", "memory_encoder", "num_maskmem", "image_size",
        "backbone_stride", "sigmoid_scale_for_mem_enc", "sigmoid_bias_for_mem_enc", "binarize_mask_from_pts_for_mem_enc",
        "use_mask_input_as_output_without_sam", "max_cond_frames_in_attn", "directly_add_no_mem_embed",
        "use_high_res_features_in_sam", "multimask_output_in_sam", "multimask_min_pt_num", "multimask_max_pt_num",
        "multimask_output_for_tracking", "use_multimask_token_for_obj_ptr", "iou_prediction_use_sigmoid",
        "memory_temporal_stride_for_eval", "non_overlap_masks_for_mem_enc", "use_obj_ptrs_in_encoder",
        "max_obj_ptrs_in_encoder", "add_tpos_enc_to_obj_ptrs", "proj_tpos_enc_in_obj_ptrs",
        "use_signed_tpos_enc_to_obj_ptrs", "only_obj_ptrs_in_the_past_for_eval", "pred_obj_scores",
        "pred_obj_scores_mlp", "fixed_no_obj_ptr", "soft_no_obj_ptr", "use_mlp_for_obj_ptr_proj", "no_obj_embed_spatial",
        "sam_mask_decoder_extra_args", "compile_image_encoder",
        /* SAM2VideoPredictor */
        "fill_hole_area", "non_overlap_masks", "clear_non_cond_mem_around_input", "add_all_frames_to_correct_as_cond",
        NULL};
    SAM_TRY(check_keys(&m, keys));

    SAM_TRY(load_image_encoder(&m, c));
    SAM_TRY(load_memory_attention(&m, c));
    SAM_TRY(load_memory_encoder(&m, c));

    static const struct {
        const char *key;
        size_t off;
    } ints[] = {
        {"num_maskmem", offsetof(sam2d_model_config, num_maskmem)},
        {"image_size", offsetof(sam2d_model_config, image_size)},
        {"backbone_stride", offsetof(sam2d_model_config, backbone_stride)},
        {"max_cond_frames_in_attn", offsetof(sam2d_model_config, max_cond_frames_in_attn)},
        {"multimask_min_pt_num", offsetof(sam2d_model_config, multimask_min_pt_num)},
        {"multimask_max_pt_num", offsetof(sam2d_model_config, multimask_max_pt_num)},
        {"memory_temporal_stride_for_eval", offsetof(sam2d_model_config, memory_temporal_stride_for_eval)},
        {"max_obj_ptrs_in_encoder", offsetof(sam2d_model_config, max_obj_ptrs_in_encoder)},
        {"fill_hole_area", offsetof(sam2d_model_config, fill_hole_area)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        SAM_TRY(rd_int(&m, ints[i].key, false, (int *)((char *)c + ints[i].off)));
    SAM_TRY(rd_float(&m, "sigmoid_scale_for_mem_enc", false, &c->sigmoid_scale_for_mem_enc));
    SAM_TRY(rd_float(&m, "sigmoid_bias_for_mem_enc", false, &c->sigmoid_bias_for_mem_enc));
    static const struct {
        const char *key;
        size_t off;
    } bools[] = {
        {"binarize_mask_from_pts_for_mem_enc", offsetof(sam2d_model_config, binarize_mask_from_pts_for_mem_enc)},
        {"use_mask_input_as_output_without_sam", offsetof(sam2d_model_config, use_mask_input_as_output_without_sam)},
        {"directly_add_no_mem_embed", offsetof(sam2d_model_config, directly_add_no_mem_embed)},
        {"use_high_res_features_in_sam", offsetof(sam2d_model_config, use_high_res_features_in_sam)},
        {"multimask_output_in_sam", offsetof(sam2d_model_config, multimask_output_in_sam)},
        {"multimask_output_for_tracking", offsetof(sam2d_model_config, multimask_output_for_tracking)},
        {"use_multimask_token_for_obj_ptr", offsetof(sam2d_model_config, use_multimask_token_for_obj_ptr)},
        {"iou_prediction_use_sigmoid", offsetof(sam2d_model_config, iou_prediction_use_sigmoid)},
        {"non_overlap_masks_for_mem_enc", offsetof(sam2d_model_config, non_overlap_masks_for_mem_enc)},
        {"use_obj_ptrs_in_encoder", offsetof(sam2d_model_config, use_obj_ptrs_in_encoder)},
        {"add_tpos_enc_to_obj_ptrs", offsetof(sam2d_model_config, add_tpos_enc_to_obj_ptrs)},
        {"proj_tpos_enc_in_obj_ptrs", offsetof(sam2d_model_config, proj_tpos_enc_in_obj_ptrs)},
        {"use_signed_tpos_enc_to_obj_ptrs", offsetof(sam2d_model_config, use_signed_tpos_enc_to_obj_ptrs)},
        {"only_obj_ptrs_in_the_past_for_eval", offsetof(sam2d_model_config, only_obj_ptrs_in_the_past_for_eval)},
        {"pred_obj_scores", offsetof(sam2d_model_config, pred_obj_scores)},
        {"pred_obj_scores_mlp", offsetof(sam2d_model_config, pred_obj_scores_mlp)},
        {"fixed_no_obj_ptr", offsetof(sam2d_model_config, fixed_no_obj_ptr)},
        {"soft_no_obj_ptr", offsetof(sam2d_model_config, soft_no_obj_ptr)},
        {"use_mlp_for_obj_ptr_proj", offsetof(sam2d_model_config, use_mlp_for_obj_ptr_proj)},
        {"no_obj_embed_spatial", offsetof(sam2d_model_config, no_obj_embed_spatial)},
        {"non_overlap_masks", offsetof(sam2d_model_config, non_overlap_masks)},
        {"clear_non_cond_mem_around_input", offsetof(sam2d_model_config, clear_non_cond_mem_around_input)},
        {"add_all_frames_to_correct_as_cond", offsetof(sam2d_model_config, add_all_frames_to_correct_as_cond)},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
        SAM_TRY(rd_bool(&m, bools[i].key, false, (bool *)((char *)c + bools[i].off)));
    bool compile = false;
    SAM_TRY(rd_bool(&m, "compile_image_encoder", false, &compile)); /* a PyTorch speed switch: no effect here */

    override_mask set = {0};
    const sam_yaml_node *xa = sam_yaml_get(m.map, "sam_mask_decoder_extra_args");
    if (xa && !sam_yaml_is_null(xa)) {
        if (xa->kind != SAM_YAML_MAP)
            return SAM_ERR(SAM2D_ERR_FORMAT, "config line %d: model.sam_mask_decoder_extra_args must be a mapping", xa->line);
        sec x = {.map = xa, .path = "model.sam_mask_decoder_extra_args"};
        static const char *const x_keys[] = {"dynamic_multimask_via_stability", "dynamic_multimask_stability_delta",
                                             "dynamic_multimask_stability_thresh", NULL};
        SAM_TRY(check_keys(&x, x_keys));
        SAM_TRY(rd_bool(&x, "dynamic_multimask_via_stability", false, &c->dynamic_multimask_via_stability));
        SAM_TRY(rd_float(&x, "dynamic_multimask_stability_delta", false, &c->dynamic_multimask_stability_delta));
        SAM_TRY(rd_float(&x, "dynamic_multimask_stability_thresh", false, &c->dynamic_multimask_stability_thresh));
        set.dyn = sam_yaml_get(xa, "dynamic_multimask_via_stability") != NULL;
        set.delta = sam_yaml_get(xa, "dynamic_multimask_stability_delta") != NULL;
        set.thresh = sam_yaml_get(xa, "dynamic_multimask_stability_thresh") != NULL;
    }
    set.binarize = sam_yaml_get(m.map, "binarize_mask_from_pts_for_mem_enc") != NULL;
    set.fill = sam_yaml_get(m.map, "fill_hole_area") != NULL;
    apply_video_overrides(c, set);
    resolve_top_down(c);
    return SAM2D_OK;
}

sam2d_status sam2d_config_parse_yaml(const char *text, size_t len, sam2d_model_config *out) {
    if (!out || (!text && len)) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config: NULL argument");
    sam_yaml_doc doc;
    SAM_TRY(sam_yaml_parse(text, len, NULL, &doc));
    sam2d_model_config c;
    constructor_defaults(&c);
    sam2d_status st = load_model(doc.root, &c);
    sam_yaml_free(&doc);
    SAM_TRY(st);
    SAM_TRY(sam2d_config_validate(&c));
    *out = c;
    return SAM2D_OK;
}

sam2d_status sam2d_config_load_yaml(const char *path, sam2d_model_config *out) {
    if (!path || !out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return SAM_ERR(SAM2D_ERR_IO, "cannot open config %s", path);
    size_t cap = 1u << 20; /* the YAML parser's own limit */
    char *buf = sam_malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return SAM_ERR(SAM2D_ERR_NOMEM, "config: out of memory");
    }
    size_t n = fread(buf, 1, cap + 1, f);
    bool err = ferror(f);
    fclose(f);
    sam2d_status st;
    if (err) st = SAM_ERR(SAM2D_ERR_IO, "cannot read config %s", path);
    else if (n > cap) st = SAM_ERR(SAM2D_ERR_LIMIT, "config %s is larger than %zu bytes", path, cap);
    else st = sam2d_config_parse_yaml(buf, n, out);
    sam_free(buf);
    if (st != SAM2D_OK && !err && n <= cap) sam_error_wrap(st, "%s", path);
    return st;
}

/* ---- Validation ---------------------------------------------------------- */

#define REQUIRE(cond, ...)                                                   \
    do {                                                                     \
        if (!(cond)) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config: " __VA_ARGS__); \
    } while (0)

sam2d_status sam2d_config_validate(const sam2d_model_config *c) {
    if (!c) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config: NULL");
    /* trunk */
    REQUIRE(c->embed_dim > 0 && c->embed_dim <= 65536, "embed_dim %d out of range", c->embed_dim);
    REQUIRE(c->num_heads > 0 && c->num_heads <= 4096, "num_heads %d out of range", c->num_heads);
    REQUIRE(c->num_stages >= 1 && c->num_stages <= SAM2D_MAX_STAGES, "num_stages %d not in [1, %d]", c->num_stages,
            SAM2D_MAX_STAGES);
    int depth = 0;
    for (int s = 0; s < c->num_stages; s++) {
        REQUIRE(c->stages[s] > 0 && c->stages[s] <= 256, "stages[%d] = %d out of range", s, c->stages[s]);
        REQUIRE(c->window_spec[s] >= 0 && c->window_spec[s] <= 1024, "window_spec[%d] = %d out of range", s,
                c->window_spec[s]);
        depth += c->stages[s];
    }
    REQUIRE(c->window_spec[0] > 0, "window_spec[0] must be > 0 (it sizes pos_embed_window)");
    REQUIRE(c->q_pool >= 0 && c->q_pool <= c->num_stages - 1, "q_pool %d not in [0, %d]", c->q_pool, c->num_stages - 1);
    REQUIRE(c->q_stride[0] >= 1 && c->q_stride[1] >= 1 && c->q_stride[0] <= 16 && c->q_stride[1] <= 16,
            "q_stride out of range");
    REQUIRE(c->n_global_att_blocks >= 0 && c->n_global_att_blocks <= SAM2D_MAX_GLOBAL_BLOCKS,
            "n_global_att_blocks %d out of range", c->n_global_att_blocks);
    for (int i = 0; i < c->n_global_att_blocks; i++)
        REQUIRE(c->global_att_blocks[i] >= 0 && c->global_att_blocks[i] < depth,
                "global_att_blocks[%d] = %d is not a block index (the trunk has %d blocks)", i, c->global_att_blocks[i],
                depth);
    REQUIRE(c->window_pos_embed_bkg_spatial_size[0] > 0 && c->window_pos_embed_bkg_spatial_size[1] > 0 &&
                c->window_pos_embed_bkg_spatial_size[0] <= 1024 && c->window_pos_embed_bkg_spatial_size[1] <= 1024,
            "window_pos_embed_bkg_spatial_size out of range");
    REQUIRE(c->mlp_ratio > 0 && c->mlp_ratio <= 64, "mlp_ratio out of range");
    REQUIRE(c->dim_mul >= 1 && c->dim_mul <= 16 && c->head_mul >= 1 && c->head_mul <= 16, "dim_mul / head_mul out of range");
    {
        int dim = c->embed_dim, heads = c->num_heads;
        for (int s = 0; s < c->num_stages; s++) {
            if (s > 0) {
                dim = (int)((double)dim * (double)c->dim_mul);
                heads = (int)((double)heads * (double)c->head_mul);
            }
            REQUIRE(dim > 0 && dim <= 1 << 20 && heads > 0 && dim % heads == 0,
                    "stage %d: %d heads do not divide the width %d", s, heads, dim);
        }
        int want[SAM2D_MAX_STAGES];
        trunk_channels(c, want);
        for (int s = 0; s < c->num_stages; s++)
            REQUIRE(c->backbone_channel_list[s] == want[s], "backbone_channel_list[%d] = %d, the trunk gives %d", s,
                    c->backbone_channel_list[s], want[s]);
    }
    /* neck */
    REQUIRE(c->d_model > 0 && c->d_model <= 65536 && c->d_model % 8 == 0, "d_model %d must be a positive multiple of 8",
            c->d_model);
    REQUIRE(c->scalp >= 0 && c->scalp < c->num_stages, "scalp %d out of range", c->scalp);
    REQUIRE(c->n_fpn_top_down_levels >= 0 && c->n_fpn_top_down_levels <= c->num_stages, "fpn_top_down_levels count");
    for (int i = 0; i < c->n_fpn_top_down_levels; i++)
        REQUIRE(c->fpn_top_down_levels[i] >= 0 && c->fpn_top_down_levels[i] < c->num_stages,
                "fpn_top_down_levels[%d] = %d out of range", i, c->fpn_top_down_levels[i]);
    REQUIRE(c->neck_pos_num_feats == c->d_model, "neck position encoding num_pos_feats %d must equal d_model %d",
            c->neck_pos_num_feats, c->d_model);
    REQUIRE(c->neck_kernel_size >= 1 && c->neck_kernel_size <= 15 && c->neck_stride >= 1 && c->neck_padding >= 0,
            "neck conv geometry out of range");
    REQUIRE(c->neck_pos_temperature > 0 && c->mem_pos_temperature > 0, "position encoding temperature must be > 0");
    /* image geometry: the last kept level has the backbone stride (patch stride 4, x2 per stage) */
    REQUIRE(c->image_size > 0 && c->image_size <= 16384, "image_size %d out of range", c->image_size);
    REQUIRE(c->backbone_stride > 0 && c->image_size % c->backbone_stride == 0,
            "image_size %d is not a multiple of backbone_stride %d", c->image_size, c->backbone_stride);
    {
        int stride = 4;
        for (int s = 0; s < c->q_pool && s < c->num_stages - 1 - c->scalp; s++) stride *= c->q_stride[0];
        REQUIRE(stride == c->backbone_stride, "backbone_stride %d but the trunk's kept lowest level has stride %d",
                c->backbone_stride, stride);
    }
    /* memory attention */
    REQUIRE(c->mem_attn_num_layers >= 1 && c->mem_attn_num_layers <= 64, "mem_attn_num_layers out of range");
    REQUIRE(c->mem_attn_dim_feedforward > 0, "mem_attn_dim_feedforward must be > 0");
    REQUIRE(c->mem_attn_downsample_rate >= 1 && c->d_model % c->mem_attn_downsample_rate == 0,
            "mem_attn_downsample_rate %d must divide d_model", c->mem_attn_downsample_rate);
    {
        int internal = c->d_model / c->mem_attn_downsample_rate;
        REQUIRE(c->mem_attn_num_heads >= 1 && internal % c->mem_attn_num_heads == 0 &&
                    (internal / c->mem_attn_num_heads) % 4 == 0,
                "memory attention head width (%d / %d heads) must be a multiple of 4 (axial RoPE)", internal,
                c->mem_attn_num_heads);
    }
    REQUIRE(c->mem_attn_rope_theta > 0, "mem_attn_rope_theta must be > 0");
    REQUIRE(c->mem_attn_kv_in_dim == c->mem_dim, "mem_attn kv_in_dim %d must equal the memory dim %d",
            c->mem_attn_kv_in_dim, c->mem_dim);
    /* memory encoder */
    REQUIRE(c->mem_dim > 0 && c->mem_dim <= 65536, "mem_dim out of range");
    REQUIRE(c->mem_in_dim == c->d_model, "memory_encoder in_dim %d must equal d_model %d", c->mem_in_dim, c->d_model);
    REQUIRE(c->mask_ds_embed_dim == c->mem_in_dim, "mask_downsampler embed_dim %d must equal memory_encoder in_dim %d",
            c->mask_ds_embed_dim, c->mem_in_dim);
    REQUIRE(c->mem_pos_num_feats == c->mem_dim && c->mem_pos_num_feats % 2 == 0,
            "memory position encoding num_pos_feats %d must equal the memory dim %d", c->mem_pos_num_feats, c->mem_dim);
    REQUIRE(c->mask_ds_kernel >= 1 && c->mask_ds_kernel <= 15 && c->mask_ds_padding >= 0, "mask_downsampler geometry");
    REQUIRE(c->mask_ds_stride >= 2 && c->mask_ds_total_stride >= c->mask_ds_stride, "mask_downsampler stride");
    {
        int p = 1, k = 0;
        while (p < c->mask_ds_total_stride && k < 16) p *= c->mask_ds_stride, k++;
        REQUIRE(p == c->mask_ds_total_stride, "mask_downsampler total_stride %d is not a power of stride %d",
                c->mask_ds_total_stride, c->mask_ds_stride);
    }
    REQUIRE(c->fuser_num_layers >= 0 && c->fuser_num_layers <= 64, "fuser_num_layers out of range");
    REQUIRE(c->fuser_kernel >= 1 && c->fuser_kernel <= 31 && c->fuser_padding >= 0, "fuser geometry");
    /* SAM2Base */
    REQUIRE(c->num_maskmem >= 1 && c->num_maskmem <= 64, "num_maskmem %d out of range", c->num_maskmem);
    REQUIRE(c->multimask_min_pt_num >= 0 && c->multimask_max_pt_num >= c->multimask_min_pt_num,
            "multimask_min/max_pt_num");
    REQUIRE(c->memory_temporal_stride_for_eval >= 1, "memory_temporal_stride_for_eval must be >= 1");
    REQUIRE(c->max_obj_ptrs_in_encoder >= 0, "max_obj_ptrs_in_encoder must be >= 0");
    REQUIRE(!c->proj_tpos_enc_in_obj_ptrs || c->add_tpos_enc_to_obj_ptrs,
            "proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs (as Meta asserts)");
    REQUIRE(!c->fixed_no_obj_ptr || (c->pred_obj_scores && c->use_obj_ptrs_in_encoder),
            "fixed_no_obj_ptr needs pred_obj_scores and use_obj_ptrs_in_encoder (as Meta asserts)");
    REQUIRE(c->fill_hole_area >= 0, "fill_hole_area must be >= 0");
    /* SAM heads */
    REQUIRE(c->num_multimask_outputs >= 1 && c->num_multimask_outputs <= 16, "num_multimask_outputs");
    REQUIRE(c->iou_head_depth >= 1 && c->iou_head_hidden_dim > 0, "iou head");
    REQUIRE(c->decoder_depth >= 1 && c->decoder_depth <= 16 && c->decoder_mlp_dim > 0, "decoder depth / mlp dim");
    REQUIRE(c->decoder_attn_downsample_rate >= 1 && c->d_model % c->decoder_attn_downsample_rate == 0 &&
                c->decoder_num_heads >= 1 && (c->d_model / c->decoder_attn_downsample_rate) % c->decoder_num_heads == 0 &&
                c->d_model % c->decoder_num_heads == 0,
            "decoder heads %d must divide d_model %d and its downsampled width", c->decoder_num_heads, c->d_model);
    REQUIRE(c->prompt_mask_in_chans >= 4 && c->prompt_mask_in_chans % 4 == 0, "prompt_mask_in_chans");
    return SAM2D_OK;
}

/* ---- Description ----------------------------------------------------------- */

void sam2d_config_describe(const sam2d_model_config *c, char *buf, size_t len) {
    if (!buf || !len) return;
    bool v21 = c->no_obj_embed_spatial || c->proj_tpos_enc_in_obj_ptrs;
    const char *size = NULL;
    int depth = 0;
    for (int s = 0; s < c->num_stages && s < SAM2D_MAX_STAGES; s++) depth += c->stages[s];
    for (size_t i = 0; i < N_PRESETS; i++)
        if (presets[i].embed_dim == c->embed_dim && c->num_stages == 4 &&
            !memcmp(presets[i].stages, c->stages, sizeof presets[i].stages))
            size = presets[i].size;
    bool exact = false;
    if (size) {
        sam2d_model_config p;
        char name[32];
        snprintf(name, sizeof name, "%s_%s", v21 ? "sam2.1" : "sam2", size);
        if (sam2d_config_preset(name, &p) == SAM2D_OK) {
            /* post-processing switches do not change the model */
            p.fill_hole_area = c->fill_hole_area;
            p.non_overlap_masks = c->non_overlap_masks;
            p.clear_non_cond_mem_around_input = c->clear_non_cond_mem_around_input;
            p.add_all_frames_to_correct_as_cond = c->add_all_frames_to_correct_as_cond;
            exact = sam2d_config_diff(&p, c, NULL, 0) == 0;
        }
    }
    char stages[64] = "";
    size_t k = 0;
    for (int s = 0; s < c->num_stages && s < SAM2D_MAX_STAGES; s++)
        k += (size_t)snprintf(stages + k, sizeof stages - k, "%s%d", s ? "," : "", c->stages[s]);
    snprintf(buf, len, "SAM %s Hiera %s%s (embed %d, %d blocks [%s], d_model %d, mem_dim %d)", v21 ? "2.1" : "2",
             size ? size : "custom", size && !exact ? "-like" : "", c->embed_dim, depth, stages, c->d_model, c->mem_dim);
}
