/* Model configuration: presets vs Meta's published sizes, the YAML loader vs
 * the golden manifest, the expected state dict vs the golden checkpoint, the
 * config-vs-checkpoint check and the inference of a config from shapes. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro/"

static const char *const preset_names[8] = {"sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus", "sam2.1_large",
                                            "sam2_tiny",   "sam2_small",   "sam2_base_plus",   "sam2_large"};
/* Exact counts from our enumeration of SAM2Base's parameters; Meta publishes
 * 38.9M, 46M, 80.8M and 224.4M for SAM 2.1 (SAM 2.0 lacks two small tensors). */
static const int64_t preset_params[8] = {38962498, 46060354, 80850178, 224446642,
                                         38945986, 46043842, 80833666, 224430130};
static const double published_m[4] = {38.9, 46.0, 80.8, 224.4};

/* ---- helpers ---------------------------------------------------------------- */

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

/* Tensor list (names and shapes only) from a safetensors header. */
typedef struct {
    sam2d_tensor_info *t;
    size_t n;
    json_t *root; /* owns the names */
} header_list;

static int read_safetensors_header(const char *path, header_list *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char b[8];
    if (fread(b, 1, 8, f) != 8) {
        fclose(f);
        return -1;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    char *h = malloc(hl + 1);
    size_t got = fread(h, 1, hl, f);
    fclose(f);
    if (got != hl) {
        free(h);
        return -1;
    }
    h[hl] = 0;
    json_error_t err;
    out->root = json_loads(h, 0, &err);
    free(h);
    if (!out->root) return -1;
    out->t = calloc(json_object_size(out->root), sizeof *out->t);
    const char *key;
    json_t *v;
    json_object_foreach(out->root, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        sam2d_tensor_info *t = &out->t[out->n++];
        t->name = key;
        t->dtype = SAM2D_F32;
        json_t *shape = json_object_get(v, "shape");
        t->ndim = (int)json_array_size(shape);
        t->numel = 1;
        for (int i = 0; i < t->ndim; i++) t->numel *= t->shape[i] = json_integer_value(json_array_get(shape, (size_t)i));
    }
    return 0;
}

static void free_header(header_list *h) {
    free(h->t);
    json_decref(h->root);
}

/* The tensor list a config implies, as sam2d_tensor_info (for round trips). */
static sam2d_tensor_info *as_infos(const sam2d_config_tensor *t, size_t n) {
    sam2d_tensor_info *v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i].name = t[i].name;
        v[i].ndim = t[i].ndim;
        v[i].numel = 1;
        for (int j = 0; j < t[i].ndim; j++) v[i].numel *= v[i].shape[j] = t[i].shape[j];
    }
    return v;
}

/* ---- presets ------------------------------------------------------------------ */

static void test_presets(void) {
    for (int i = 0; i < 8; i++) {
        sam2d_model_config c;
        sam2d_status st = sam2d_config_preset(preset_names[i], &c);
        CHECK_MSG(st == SAM2D_OK, "%s: %s", preset_names[i], sam2d_last_error());
        CHECK_MSG(sam2d_config_validate(&c) == SAM2D_OK, "%s: %s", preset_names[i], sam2d_last_error());
        int64_t p = sam2d_config_num_parameters(&c);
        printf("%-18s %lld parameters (%.2f M)\n", preset_names[i], (long long)p, (double)p / 1e6);
        CHECK_MSG(p == preset_params[i], "%s: %lld parameters, want %lld", preset_names[i], (long long)p,
                  (long long)preset_params[i]);
        /* Meta's rounding: within 0.05 M of the published figure */
        CHECK(fabs((double)p / 1e6 - published_m[i % 4]) < 0.1);
        /* video predictor overrides of build_sam.py */
        CHECK(c.dynamic_multimask_via_stability && c.dynamic_multimask_stability_delta == 0.05f &&
              c.dynamic_multimask_stability_thresh == 0.98f && c.binarize_mask_from_pts_for_mem_enc &&
              c.fill_hole_area == 8);
        CHECK(c.image_size == 1024 && c.d_model == 256 && c.mem_dim == 64 && c.mem_in_dim == 256 &&
              c.mask_ds_embed_dim == 256);
        CHECK(c.no_obj_embed_spatial == (i < 4) && c.proj_tpos_enc_in_obj_ptrs == (i < 4) &&
              c.add_tpos_enc_to_obj_ptrs == (i < 4));
        char desc[256];
        sam2d_config_describe(&c, desc, sizeof desc);
        CHECK_MSG(strstr(desc, i < 4 ? "SAM 2.1 Hiera" : "SAM 2 Hiera") && !strstr(desc, "-like"), "%s", desc);
    }
    sam2d_model_config t, l, a;
    CHECK(sam2d_config_preset("sam2.1_tiny", &t) == SAM2D_OK);
    CHECK(t.embed_dim == 96 && t.num_heads == 1 && t.stages[2] == 7 && t.n_global_att_blocks == 3 &&
          t.global_att_blocks[0] == 5 && t.window_spec[2] == 14 && t.window_pos_embed_bkg_spatial_size[0] == 7);
    CHECK(sam2d_config_preset("sam2.1_large", &l) == SAM2D_OK);
    CHECK(l.embed_dim == 144 && l.num_heads == 2 && l.stages[2] == 36 && l.window_spec[2] == 16 &&
          l.backbone_channel_list[0] == 1152);
    CHECK(sam2d_config_preset("sam2.1_base_plus", &a) == SAM2D_OK);
    CHECK(a.window_pos_embed_bkg_spatial_size[0] == 14 && a.global_att_blocks[2] == 20); /* constructor defaults */
    /* Meta's file names work as aliases */
    const char *aliases[] = {"sam2.1_hiera_b+", "sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml",
                             "SAM2.1_HIERA_BASE_PLUS"};
    for (int i = 0; i < 4; i++) {
        sam2d_model_config x;
        CHECK_MSG(sam2d_config_preset(aliases[i], &x) == SAM2D_OK && sam2d_config_diff(&x, &a, NULL, 0) == 0, "%s",
                  aliases[i]);
    }
    sam2d_model_config x;
    CHECK(sam2d_config_preset("sam2.1_huge", &x) == SAM2D_ERR_NOT_FOUND && strstr(sam2d_last_error(), "sam2.1_tiny"));
    CHECK(strstr(sam2d_config_preset_names(), "sam2_base_plus") != NULL);
    /* 2.0 and 2.1 differ in exactly the four switches of Meta's YAML files */
    sam2d_model_config t20;
    CHECK(sam2d_config_preset("sam2_hiera_t", &t20) == SAM2D_OK);
    char diff[512];
    CHECK_MSG(sam2d_config_diff(&t, &t20, diff, sizeof diff) == 4, "%s", diff);
    CHECK(strstr(diff, "no_obj_embed_spatial") && strstr(diff, "use_signed_tpos_enc_to_obj_ptrs"));
    FILE *sink = tmpfile();
    if (sink) {
        sam2d_config_print(&t, sink);
        CHECK(ftell(sink) > 1000);
        fclose(sink);
    }
}

/* ---- YAML written here, in the layout of Meta's files, vs the presets -------- */

static const char *yaml_template =
    "# @package _global_\n"
    "model:\n"
    "  _target_: sam2.modeling.sam2_base.SAM2Base\n"
    "  image_encoder:\n"
    "    _target_: sam2.modeling.backbones.image_encoder.ImageEncoder\n"
    "    scalp: 1\n"
    "    trunk:\n"
    "      _target_: sam2.modeling.backbones.hieradet.Hiera\n"
    "      embed_dim: %d\n"
    "      num_heads: %d\n"
    "%s" /* stages, global blocks, window things: only where a size sets them */
    "    neck:\n"
    "      _target_: sam2.modeling.backbones.image_encoder.FpnNeck\n"
    "      position_encoding:\n"
    "        _target_: sam2.modeling.position_encoding.PositionEmbeddingSine\n"
    "        num_pos_feats: 256\n"
    "        normalize: true\n"
    "        scale: null\n"
    "        temperature: 10000\n"
    "      d_model: 256\n"
    "      backbone_channel_list: [%d, %d, %d, %d]\n"
    "      fpn_top_down_levels: [2, 3]\n"
    "      fpn_interp_model: nearest\n"
    "  memory_attention:\n"
    "    _target_: sam2.modeling.memory_attention.MemoryAttention\n"
    "    d_model: 256\n"
    "    pos_enc_at_input: true\n"
    "    layer:\n"
    "      _target_: sam2.modeling.memory_attention.MemoryAttentionLayer\n"
    "      activation: relu\n"
    "      dim_feedforward: 2048\n"
    "      dropout: 0.1\n"
    "      pos_enc_at_attn: false\n"
    "      self_attention:\n"
    "        _target_: sam2.modeling.sam.transformer.RoPEAttention\n"
    "        rope_theta: 10000.0\n"
    "        feat_sizes: [64, 64]\n"
    "        embedding_dim: 256\n"
    "        num_heads: 1\n"
    "        downsample_rate: 1\n"
    "        dropout: 0.1\n"
    "      d_model: 256\n"
    "      pos_enc_at_cross_attn_keys: true\n"
    "      pos_enc_at_cross_attn_queries: false\n"
    "      cross_attention:\n"
    "        _target_: sam2.modeling.sam.transformer.RoPEAttention\n"
    "        rope_theta: 10000.0\n"
    "        feat_sizes: [64, 64]\n"
    "        rope_k_repeat: True\n"
    "        embedding_dim: 256\n"
    "        num_heads: 1\n"
    "        downsample_rate: 1\n"
    "        dropout: 0.1\n"
    "        kv_in_dim: 64\n"
    "    num_layers: 4\n"
    "  memory_encoder:\n"
    "      _target_: sam2.modeling.memory_encoder.MemoryEncoder\n"
    "      out_dim: 64\n"
    "      position_encoding:\n"
    "        _target_: sam2.modeling.position_encoding.PositionEmbeddingSine\n"
    "        num_pos_feats: 64\n"
    "        normalize: true\n"
    "        scale: null\n"
    "        temperature: 10000\n"
    "      mask_downsampler:\n"
    "        _target_: sam2.modeling.memory_encoder.MaskDownSampler\n"
    "        kernel_size: 3\n"
    "        stride: 2\n"
    "        padding: 1\n"
    "      fuser:\n"
    "        _target_: sam2.modeling.memory_encoder.Fuser\n"
    "        layer:\n"
    "          _target_: sam2.modeling.memory_encoder.CXBlock\n"
    "          dim: 256\n"
    "          kernel_size: 7\n"
    "          padding: 3\n"
    "          layer_scale_init_value: 1e-6\n"
    "          use_dwconv: True\n"
    "        num_layers: 2\n"
    "  num_maskmem: 7\n"
    "  image_size: 1024\n"
    "  sigmoid_scale_for_mem_enc: 20.0\n"
    "  sigmoid_bias_for_mem_enc: -10.0\n"
    "  use_mask_input_as_output_without_sam: true\n"
    "  directly_add_no_mem_embed: true\n"
    "%s" /* 2.1: no_obj_embed_spatial */
    "  use_high_res_features_in_sam: true\n"
    "  multimask_output_in_sam: true\n"
    "  iou_prediction_use_sigmoid: True\n"
    "  use_obj_ptrs_in_encoder: true\n"
    "%s" /* tpos switches */
    "  only_obj_ptrs_in_the_past_for_eval: true\n"
    "  pred_obj_scores: true\n"
    "  pred_obj_scores_mlp: true\n"
    "  fixed_no_obj_ptr: true\n"
    "  multimask_output_for_tracking: true\n"
    "  use_multimask_token_for_obj_ptr: true\n"
    "  multimask_min_pt_num: 0\n"
    "  multimask_max_pt_num: 1\n"
    "  use_mlp_for_obj_ptr_proj: true\n"
    "  compile_image_encoder: False\n";

static void test_yaml_vs_presets(void) {
    static const char *const trunk[4] = {
        "      stages: [1, 2, 7, 2]\n      global_att_blocks: [5, 7, 9]\n"
        "      window_pos_embed_bkg_spatial_size: [7, 7]\n",
        "      stages: [1, 2, 11, 2]\n      global_att_blocks: [7, 10, 13]\n"
        "      window_pos_embed_bkg_spatial_size: [7, 7]\n",
        "",
        "      stages: [2, 6, 36, 4]\n      global_att_blocks: [23, 33, 43]\n"
        "      window_pos_embed_bkg_spatial_size: [7, 7]\n      window_spec: [8, 4, 16, 8]\n",
    };
    static const int embed[4] = {96, 96, 112, 144}, heads[4] = {1, 1, 2, 2};
    static char text[8192];
    for (int i = 0; i < 8; i++) {
        int s = i % 4;
        bool v21 = i < 4;
        int C = embed[s];
        snprintf(text, sizeof text, yaml_template, C, heads[s], trunk[s], 8 * C, 4 * C, 2 * C, C,
                 v21 ? "  no_obj_embed_spatial: true\n" : "",
                 v21 ? "  add_tpos_enc_to_obj_ptrs: true\n  proj_tpos_enc_in_obj_ptrs: true\n"
                       "  use_signed_tpos_enc_to_obj_ptrs: true\n"
                     : "  add_tpos_enc_to_obj_ptrs: false\n");
        sam2d_model_config y, p;
        sam2d_status st = sam2d_config_parse_yaml(text, strlen(text), &y);
        CHECK_MSG(st == SAM2D_OK, "%s yaml: %s", preset_names[i], sam2d_last_error());
        CHECK(sam2d_config_preset(preset_names[i], &p) == SAM2D_OK);
        char diff[512];
        int nd = sam2d_config_diff(&y, &p, diff, sizeof diff);
        CHECK_MSG(nd == 0, "%s: YAML and preset differ in %d fields: %s", preset_names[i], nd, diff);
    }
    /* a file that sets a video-predictor override keeps its own value */
    snprintf(text, sizeof text, yaml_template, 96, 1, trunk[0], 768, 384, 192, 96, "", "");
    size_t k = strlen(text);
    snprintf(text + k, sizeof text - k,
             "  fill_hole_area: 0\n  sam_mask_decoder_extra_args:\n    dynamic_multimask_stability_thresh: 0.9\n");
    sam2d_model_config y;
    CHECK_MSG(sam2d_config_parse_yaml(text, strlen(text), &y) == SAM2D_OK, "%s", sam2d_last_error());
    CHECK(y.fill_hole_area == 0 && y.dynamic_multimask_stability_thresh == 0.9f && y.dynamic_multimask_via_stability &&
          y.binarize_mask_from_pts_for_mem_enc);
}

/* ---- golden micro config vs its manifest --------------------------------------- */

typedef struct {
    const char *name;
    char kind; /* i, f, b */
    size_t off;
} flag_field;
#define FLAG(k, f) {#f, k, offsetof(sam2d_model_config, f)}
static const flag_field flag_fields[] = {
    FLAG('i', num_maskmem), FLAG('i', image_size), FLAG('f', sigmoid_scale_for_mem_enc),
    FLAG('f', sigmoid_bias_for_mem_enc), FLAG('b', binarize_mask_from_pts_for_mem_enc),
    FLAG('b', use_mask_input_as_output_without_sam), FLAG('i', max_cond_frames_in_attn),
    FLAG('b', directly_add_no_mem_embed), FLAG('b', use_high_res_features_in_sam), FLAG('b', multimask_output_in_sam),
    FLAG('i', multimask_min_pt_num), FLAG('i', multimask_max_pt_num), FLAG('b', multimask_output_for_tracking),
    FLAG('b', use_multimask_token_for_obj_ptr), FLAG('b', iou_prediction_use_sigmoid),
    FLAG('i', memory_temporal_stride_for_eval), FLAG('b', non_overlap_masks_for_mem_enc),
    FLAG('b', use_obj_ptrs_in_encoder), FLAG('i', max_obj_ptrs_in_encoder), FLAG('b', add_tpos_enc_to_obj_ptrs),
    FLAG('b', proj_tpos_enc_in_obj_ptrs), FLAG('b', use_signed_tpos_enc_to_obj_ptrs),
    FLAG('b', only_obj_ptrs_in_the_past_for_eval), FLAG('b', pred_obj_scores), FLAG('b', pred_obj_scores_mlp),
    FLAG('b', fixed_no_obj_ptr), FLAG('b', soft_no_obj_ptr), FLAG('b', use_mlp_for_obj_ptr_proj),
    FLAG('i', fill_hole_area), FLAG('b', non_overlap_masks), FLAG('b', clear_non_cond_mem_around_input),
    FLAG('b', add_all_frames_to_correct_as_cond),
};

static void check_int_array(const char *what, json_t *arr, const int *got, int n) {
    CHECK_MSG((int)json_array_size(arr) == n, "%s: %zu entries, config has %d", what, json_array_size(arr), n);
    for (int i = 0; i < n && i < (int)json_array_size(arr); i++)
        CHECK_MSG(json_integer_value(json_array_get(arr, (size_t)i)) == got[i], "%s[%d]: manifest %lld, config %d", what,
                  i, (long long)json_integer_value(json_array_get(arr, (size_t)i)), got[i]);
}

static void test_micro_yaml(sam2d_model_config *micro) {
    sam2d_status st = sam2d_config_load_yaml(MICRO "config.yaml", micro);
    CHECK_MSG(st == SAM2D_OK, "%s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    json_error_t err;
    json_t *man = json_load_file(MICRO "manifest.json", 0, &err);
    CHECK_MSG(man != NULL, "manifest: %s", err.text);
    if (!man) return;
    json_t *model = json_object_get(man, "model");
    json_t *flags = json_object_get(model, "flags_in_effect");
    CHECK(json_object_size(flags) == sizeof flag_fields / sizeof flag_fields[0]);
    const char *key;
    json_t *v;
    json_object_foreach(flags, key, v) {
        const flag_field *f = NULL;
        for (size_t i = 0; i < sizeof flag_fields / sizeof flag_fields[0]; i++)
            if (!strcmp(flag_fields[i].name, key)) f = &flag_fields[i];
        CHECK_MSG(f != NULL, "manifest flag %s has no config field", key);
        if (!f) continue;
        const char *p = (const char *)micro + f->off;
        if (f->kind == 'b') CHECK_MSG(*(const bool *)p == json_is_true(v), "%s", key);
        else if (f->kind == 'i') CHECK_MSG(*(const int *)p == json_integer_value(v), "%s: %d", key, *(const int *)p);
        else CHECK_MSG(*(const float *)p == (float)json_number_value(v), "%s: %g", key, (double)*(const float *)p);
    }
    json_t *h = json_object_get(model, "hiera");
    CHECK(micro->embed_dim == json_integer_value(json_object_get(h, "embed_dim")));
    CHECK(micro->num_heads == json_integer_value(json_object_get(h, "num_heads")));
    check_int_array("stages", json_object_get(h, "stages"), micro->stages, micro->num_stages);
    check_int_array("global_att_blocks", json_object_get(h, "global_att_blocks"), micro->global_att_blocks,
                    micro->n_global_att_blocks);
    check_int_array("window_spec", json_object_get(h, "window_spec"), micro->window_spec, micro->num_stages);
    check_int_array("window_pos_embed_bkg_spatial_size", json_object_get(h, "window_pos_embed_bkg_spatial_size"),
                    micro->window_pos_embed_bkg_spatial_size, 2);
    check_int_array("channel_list", json_object_get(h, "channel_list"), micro->backbone_channel_list, micro->num_stages);
    CHECK(micro->image_size == json_integer_value(json_object_get(model, "image_size")));
    CHECK(micro->backbone_stride == json_integer_value(json_object_get(model, "backbone_stride")));
    CHECK(micro->d_model == json_integer_value(json_object_get(model, "neck_d_model")));
    CHECK(micro->mem_attn_num_layers == json_integer_value(json_object_get(model, "memory_attention_layers")));
    CHECK(micro->mem_attn_dim_feedforward ==
          json_integer_value(json_object_get(model, "memory_attention_dim_feedforward")));
    CHECK(micro->mem_dim == json_integer_value(json_object_get(model, "mem_dim")));
    CHECK(micro->mem_in_dim == 32 && micro->mask_ds_embed_dim == 32 && micro->mem_attn_kv_in_dim == 16);
    CHECK(micro->dynamic_multimask_via_stability && micro->dynamic_multimask_stability_delta == 0.05f &&
          micro->dynamic_multimask_stability_thresh == 0.98f);
    int64_t np = sam2d_config_num_parameters(micro);
    int64_t want = json_integer_value(json_object_get(model, "num_parameters"));
    printf("micro: %lld parameters (manifest %lld)\n", (long long)np, (long long)want);
    CHECK(np == want && want == 1849562);
    sam2d_config_tensor *t;
    size_t n;
    CHECK(sam2d_config_tensors(micro, &t, &n) == SAM2D_OK);
    CHECK_MSG((int64_t)n == json_integer_value(json_object_get(model, "state_dict_tensors")), "%zu tensors", n);
    sam2d_config_tensors_free(t);
    char desc[256];
    sam2d_config_describe(micro, desc, sizeof desc);
    printf("micro: %s\n", desc);
    CHECK(strstr(desc, "SAM 2.1 Hiera custom") && strstr(desc, "embed 24"));
    json_decref(man);
}

/* ---- config vs checkpoint -------------------------------------------------------- */

static void test_check(const sam2d_model_config *micro) {
    header_list h;
    CHECK(read_safetensors_header(MICRO "model.safetensors", &h) == 0);
    if (!h.t) return;
    /* same names, same shapes and the same order as Meta's state dict */
    sam2d_config_tensor *t;
    size_t n;
    CHECK(sam2d_config_tensors(micro, &t, &n) == SAM2D_OK);
    CHECK(n == h.n);
    size_t order_ok = 0;
    for (size_t i = 0; i < n && i < h.n; i++) order_ok += !strcmp(t[i].name, h.t[i].name);
    CHECK_MSG(order_ok == n, "%zu of %zu names in state-dict order", order_ok, n);
    size_t nbuf = 0;
    for (size_t i = 0; i < n; i++) nbuf += t[i].buffer;
    CHECK(nbuf == 1 && sam2d_config_is_buffer_name("sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"));
    sam2d_config_tensors_free(t);

    sam2d_status st = sam2d_config_check_tensors(micro, h.t, h.n);
    CHECK_MSG(st == SAM2D_OK, "micro config vs micro safetensors: %s", sam2d_last_error());
    CHECK(sam2d_config_compare_tensors(micro, h.t, h.n, NULL, 0) == 0);

    /* the tiny preset against the micro checkpoint: every kind of problem is named */
    sam2d_model_config tiny;
    CHECK(sam2d_config_preset("sam2.1_tiny", &tiny) == SAM2D_OK);
    st = sam2d_config_check_tensors(&tiny, h.t, h.n);
    const char *msg = sam2d_last_error();
    printf("tiny vs micro: %s\n", msg);
    CHECK(st == SAM2D_ERR_MISMATCH);
    CHECK_MSG(strstr(msg, "missing") && strstr(msg, "image_encoder.trunk.blocks.8.norm1.weight"), "no missing name");
    CHECK_MSG(strstr(msg, "wrong shape") && strstr(msg, "maskmem_tpos_enc [7, 1, 1, 64] vs [7, 1, 1, 16]"),
              "no wrongly-shaped name with both shapes");
    /* the summary survives a caller's sam_error_wrap (which keeps 500 bytes) */
    CHECK(strlen(msg) < 1024);
    CHECK(strstr(msg, "wrong shape") - msg < 480);
    CHECK(strstr(msg, "more)") != NULL); /* the rest is counted, not dropped silently */
    static char report[1 << 17];
    long np = sam2d_config_compare_tensors(&tiny, h.t, h.n, report, sizeof report);
    sam2d_config_tensor *tt;
    size_t tn;
    CHECK(sam2d_config_tensors(&tiny, &tt, &tn) == SAM2D_OK);
    long lines = 0, missing = 0;
    for (const char *p = report; *p; p++) lines += *p == '\n';
    for (const char *p = report; (p = strstr(p, "missing ")); p++) missing++;
    CHECK_MSG(np > 0 && lines == np, "%ld problems, %ld report lines", np, lines);
    /* tiny has 4 more trunk blocks (12 tensors each, + proj of its stage-change block 10)
     * and 2 more memory-attention layers (26 tensors each) */
    CHECK_MSG(missing == 4 * 12 + 2 + 2 * 26, "%ld missing", missing);
    CHECK(strstr(report, "unexpected image_encoder.trunk.blocks.6.proj.weight [192, 96]\n") != NULL);
    CHECK(strstr(report, "shape image_encoder.trunk.pos_embed: config [1, 96, 7, 7] checkpoint [1, 24, 7, 7]"));
    sam2d_config_tensors_free(tt);

    /* the SAM 2.0 flavour of the micro config: two tensors are unexpected */
    sam2d_model_config v20 = *micro;
    v20.no_obj_embed_spatial = false;
    v20.proj_tpos_enc_in_obj_ptrs = false;
    st = sam2d_config_check_tensors(&v20, h.t, h.n);
    msg = sam2d_last_error();
    CHECK(st == SAM2D_ERR_MISMATCH && strstr(msg, "0 missing, 3 unexpected, 0 wrong shape") &&
          strstr(msg, "no_obj_embed_spatial [1, 16]") && strstr(msg, "obj_ptr_tpos_proj.bias [16]"));

    /* the real loader (model.pt) agrees */
    sam2d_checkpoint *ck = NULL;
    st = sam2d_checkpoint_load(MICRO "model.pt", NULL, &ck);
    CHECK_MSG(st == SAM2D_OK, "load model.pt: %s", sam2d_last_error());
    if (ck) {
        CHECK_MSG(sam2d_config_check_checkpoint(micro, ck) == SAM2D_OK, "%s", sam2d_last_error());
        CHECK(sam2d_config_check_checkpoint(&tiny, ck) == SAM2D_ERR_MISMATCH);
        sam2d_model_config inf;
        st = sam2d_config_from_checkpoint(ck, &inf);
        CHECK_MSG(st == SAM2D_ERR_NOT_FOUND && strstr(sam2d_last_error(), "embed_dim 24"), "%s", sam2d_last_error());
        CHECK(sam2d_config_check_checkpoint(&inf, ck) == SAM2D_OK);
        sam2d_checkpoint_free(ck);
    }

    /* inference from the micro shapes: every shape fact right, guesses flagged */
    sam2d_model_config inf;
    st = sam2d_config_from_tensors(h.t, h.n, &inf);
    CHECK(st == SAM2D_ERR_NOT_FOUND);
    CHECK(inf.embed_dim == 24 && inf.num_stages == 4 && inf.stages[0] == 1 && inf.stages[1] == 2 && inf.stages[2] == 3 &&
          inf.stages[3] == 2);
    CHECK(inf.d_model == 32 && inf.mem_dim == 16 && inf.mem_in_dim == 32 && inf.mask_ds_embed_dim == 32 &&
          inf.mem_attn_num_layers == 2 && inf.mem_attn_dim_feedforward == 64 && inf.mem_attn_kv_in_dim == 16);
    CHECK(inf.no_obj_embed_spatial && inf.proj_tpos_enc_in_obj_ptrs && inf.use_high_res_features_in_sam &&
          inf.pred_obj_scores_mlp && inf.use_mlp_for_obj_ptr_proj);
    CHECK(inf.window_spec[0] == 8 && inf.window_pos_embed_bkg_spatial_size[0] == 7);
    CHECK(sam2d_config_num_parameters(&inf) == 1849562);
    free_header(&h);

    /* not a SAM 2 state dict */
    sam2d_tensor_info junk = {.name = "fc.weight", .ndim = 2, .shape = {3, 4}, .numel = 12};
    CHECK(sam2d_config_from_tensors(&junk, 1, &inf) == SAM2D_ERR_FORMAT);
    CHECK(sam2d_config_check_tensors(micro, &junk, 1) == SAM2D_ERR_MISMATCH &&
          strstr(sam2d_last_error(), "371 missing, 1 unexpected"));
}

/* The trained golden model (set S) has the same config and layout. */
static void test_shapes_model(const sam2d_model_config *micro) {
    sam2d_model_config s;
    sam2d_status st = sam2d_config_load_yaml(SAM2D_TEST_DATA "/golden/shapes/config.yaml", &s);
    CHECK_MSG(st == SAM2D_OK, "%s", sam2d_last_error());
    char diff[256];
    CHECK_MSG(sam2d_config_diff(&s, micro, diff, sizeof diff) == 0, "shapes vs micro config: %s", diff);
    header_list h;
    CHECK(read_safetensors_header(SAM2D_TEST_DATA "/golden/shapes/model.safetensors", &h) == 0);
    if (!h.t) return;
    CHECK_MSG(sam2d_config_check_tensors(&s, h.t, h.n) == SAM2D_OK, "%s", sam2d_last_error());
    free_header(&h);
}

/* Inference round trip: each preset's own state dict gives back the preset. */
static void test_infer_presets(void) {
    for (int i = 0; i < 8; i++) {
        sam2d_model_config p, q;
        CHECK(sam2d_config_preset(preset_names[i], &p) == SAM2D_OK);
        sam2d_config_tensor *t;
        size_t n;
        CHECK(sam2d_config_tensors(&p, &t, &n) == SAM2D_OK);
        sam2d_tensor_info *info = as_infos(t, n);
        sam2d_status st = sam2d_config_from_tensors(info, n, &q);
        CHECK_MSG(st == SAM2D_OK, "%s: %s", preset_names[i], sam2d_last_error());
        char diff[512];
        int nd = sam2d_config_diff(&p, &q, diff, sizeof diff);
        CHECK_MSG(nd == 0, "%s inferred differs in %d fields: %s", preset_names[i], nd, diff);
        free(info);
        sam2d_config_tensors_free(t);
    }
}

/* ---- refusals ------------------------------------------------------------------------ */

static void expect_yaml_error(const char *what, const char *text, sam2d_status want, const char *needle) {
    sam2d_model_config c;
    sam2d_status st = sam2d_config_parse_yaml(text, strlen(text), &c);
    CHECK_MSG(st == want, "%s: got %s (%s)", what, sam2d_status_str(st), sam2d_last_error());
    CHECK_MSG(strstr(sam2d_last_error(), needle) != NULL, "%s: \"%s\" lacks \"%s\"", what, sam2d_last_error(), needle);
}

static void test_refusals(void) {
    size_t len;
    char *micro = read_text(MICRO "config.yaml", &len);
    CHECK(micro != NULL);
    if (!micro) return;
    static char text[16384];
    /* replace the first occurrence of `from` in the micro YAML by `to` */
#define EDIT(from, to)                                                                          \
    do {                                                                                        \
        char *at_ = strstr(micro, from);                                                        \
        CHECK_MSG(at_ != NULL, "micro yaml lacks %s", from);                                   \
        if (at_)                                                                                \
            snprintf(text, sizeof text, "%.*s%s%s", (int)(at_ - micro), micro, to, at_ + strlen(from)); \
    } while (0)
    EDIT("      stages: [1, 2, 3, 2]\n", "      stages: [1, 2, 3, 2\n");
    expect_yaml_error("unclosed list", text, SAM2D_ERR_FORMAT, "line 19");
    EDIT("      stages: [1, 2, 3, 2]\n", "      stagez: [1, 2, 3, 2]\n");
    expect_yaml_error("unknown key", text, SAM2D_ERR_UNSUPPORTED, "line 19: unknown key model.image_encoder.trunk.stagez");
    EDIT("      embed_dim: 24\n", "      embed_dim: 24.5\n");
    expect_yaml_error("float for int", text, SAM2D_ERR_FORMAT, "line 17");
    EDIT("      d_model: 32\n      backbone", "      backbone");
    expect_yaml_error("missing required", text, SAM2D_ERR_FORMAT, "needs a value for \"d_model\"");
    EDIT("sam2.modeling.backbones.hieradet.Hiera", "sam2.modeling.backbones.vit.ViT");
    expect_yaml_error("other backbone", text, SAM2D_ERR_UNSUPPORTED, "_target_ sam2.modeling.backbones.vit.ViT");
    EDIT("      backbone_channel_list: [192, 96, 48, 24]", "      backbone_channel_list: [192, 96, 48, 23]");
    expect_yaml_error("channel list", text, SAM2D_ERR_MISMATCH, "trunk's channels");
    EDIT("      in_dim: 32", "      in_dim: 64");
    expect_yaml_error("memory in_dim", text, SAM2D_ERR_MISMATCH, "must equal memory_encoder.in_dim");
    EDIT("      activation: relu", "      activation: gelu");
    expect_yaml_error("activation", text, SAM2D_ERR_UNSUPPORTED, "only relu");
    EDIT("  num_maskmem: 7", "  num_maskmem: ${scratch.num_maskmem}");
    expect_yaml_error("interpolation", text, SAM2D_ERR_FORMAT, "${scratch.num_maskmem}");
    EDIT("  num_maskmem: 7", "  num_maskmem:\n  - 7");
    expect_yaml_error("block sequence", text, SAM2D_ERR_UNSUPPORTED, "block sequences");
    EDIT("  image_size: 256", "  image_size: 250");
    expect_yaml_error("image size", text, SAM2D_ERR_INVALID_ARG, "backbone_stride");
    EDIT("      global_att_blocks: [4]", "      global_att_blocks: [8]");
    expect_yaml_error("global block", text, SAM2D_ERR_INVALID_ARG, "not a block index");
    expect_yaml_error("not a model config", "trainer:\n  max_epochs: 3\n", SAM2D_ERR_FORMAT, "model");
#undef EDIT
    free(micro);
    sam2d_model_config c;
    CHECK(sam2d_config_load_yaml("/nonexistent/config.yaml", &c) == SAM2D_ERR_IO);

    /* validate catches configs built by hand */
    sam2d_model_config bad;
    CHECK(sam2d_config_preset("sam2.1_tiny", &bad) == SAM2D_OK);
    bad.d_model = 250;
    CHECK(sam2d_config_validate(&bad) == SAM2D_ERR_INVALID_ARG);
    CHECK(sam2d_config_num_parameters(&bad) == -1);
    CHECK(sam2d_config_preset("sam2.1_tiny", &bad) == SAM2D_OK);
    bad.num_stages = 5;
    CHECK(sam2d_config_validate(&bad) == SAM2D_ERR_INVALID_ARG);
    CHECK(sam2d_config_preset("sam2.1_tiny", &bad) == SAM2D_OK);
    bad.mem_attn_kv_in_dim = 32;
    CHECK(sam2d_config_validate(&bad) == SAM2D_ERR_INVALID_ARG && strstr(sam2d_last_error(), "kv_in_dim"));
}

int main(void) {
    sam2d_model_config micro;
    memset(&micro, 0, sizeof micro);
    test_presets();
    test_yaml_vs_presets();
    test_micro_yaml(&micro);
    test_check(&micro);
    test_shapes_model(&micro);
    test_infer_presets();
    test_refusals();
    return test_finish();
}
