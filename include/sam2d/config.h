/* Model configuration: the hyper-parameters of Meta's SAM 2 / SAM 2.1 configs.
 * Built-in presets equal Meta's eight YAML files with the video predictor's
 * overrides (build_sam2_video_predictor), and a loader for Meta's hydra-style
 * YAML (`model: _target_: ...` layout).
 *
 * Thread safety: plain data; functions are reentrant. */
#ifndef SAM2D_CONFIG_H
#define SAM2D_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "sam2d/checkpoint.h"
#include "sam2d/sam2d.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SAM2D_MAX_STAGES 4
#define SAM2D_MAX_GLOBAL_BLOCKS 8

typedef struct {
    /* Hiera trunk (image_encoder.trunk) */
    int embed_dim;                                /* 96 tiny, 144 large */
    int num_heads;                                /* heads of stage 1 */
    int num_stages;                               /* 4 */
    int stages[SAM2D_MAX_STAGES];                 /* blocks per stage */
    int n_global_att_blocks;
    int global_att_blocks[SAM2D_MAX_GLOBAL_BLOCKS]; /* block indices with global attention */
    int window_spec[SAM2D_MAX_STAGES];            /* window size per stage */
    int window_pos_embed_bkg_spatial_size[2];     /* (h, w) of the background pos embed */
    int q_pool;                                   /* number of q-pool stages (3) */
    int q_stride[2];                              /* (2, 2) */
    float mlp_ratio;                              /* 4.0 */
    float dim_mul, head_mul;                      /* 2.0, 2.0 */
    /* FpnNeck */
    int d_model;                                  /* neck / hidden dim (256) */
    int backbone_channel_list[SAM2D_MAX_STAGES];  /* from deepest: (8C, 4C, 2C, C) */
    int n_fpn_top_down_levels;
    int fpn_top_down_levels[SAM2D_MAX_STAGES];    /* (2, 3) */
    int scalp;                                    /* 1: drop the lowest-resolution level */
    int neck_pos_num_feats;                       /* PositionEmbeddingSine num_pos_feats (= d_model) */
    float neck_pos_temperature;                   /* 10000 */
    bool neck_pos_normalize;                      /* true */

    /* MemoryAttention */
    int mem_attn_num_layers;                      /* 4 */
    int mem_attn_dim_feedforward;                 /* 2048 */
    int mem_attn_num_heads;                       /* 1 */
    float mem_attn_rope_theta;                    /* 10000 */
    int mem_attn_feat_sizes[2];                   /* (64, 64) at 1024 px; recomputed from the real size */
    bool mem_attn_pos_enc_at_input;               /* true */
    bool mem_attn_pos_enc_at_attn;                /* false */
    bool mem_attn_pos_enc_at_cross_attn_keys;     /* true */
    bool mem_attn_pos_enc_at_cross_attn_queries;  /* false */
    bool mem_attn_rope_k_repeat;                  /* true (cross attention) */
    int mem_attn_kv_in_dim;                       /* 64 = mem_dim */
    int mem_attn_downsample_rate;                 /* 1 */

    /* MemoryEncoder */
    int mem_dim;                                  /* out_dim, 64 */
    int mem_in_dim;                               /* in_dim, = d_model */
    int mem_pos_num_feats;                        /* 64 */
    int mask_ds_kernel, mask_ds_stride, mask_ds_padding; /* 3, 2, 1 */
    int mask_ds_embed_dim;                        /* = d_model */
    int fuser_num_layers;                         /* 2 */
    int fuser_kernel, fuser_padding;              /* 7, 3 */
    bool fuser_use_dwconv;                        /* true */
    float fuser_layer_scale_init;                 /* 1e-6 (only tells a layer-scale param exists) */

    /* SAM2Base */
    int image_size;                               /* 1024 */
    int backbone_stride;                          /* 16 */
    int num_maskmem;                              /* 7 */
    float sigmoid_scale_for_mem_enc;              /* 20 */
    float sigmoid_bias_for_mem_enc;               /* -10 */
    bool binarize_mask_from_pts_for_mem_enc;
    bool use_mask_input_as_output_without_sam;
    int max_cond_frames_in_attn;                  /* -1: all */
    bool directly_add_no_mem_embed;
    bool use_high_res_features_in_sam;
    bool multimask_output_in_sam;
    int multimask_min_pt_num, multimask_max_pt_num;
    bool multimask_output_for_tracking;
    bool use_multimask_token_for_obj_ptr;
    bool iou_prediction_use_sigmoid;
    int memory_temporal_stride_for_eval;
    bool non_overlap_masks_for_mem_enc;
    bool use_obj_ptrs_in_encoder;
    int max_obj_ptrs_in_encoder;                  /* 16 */
    bool add_tpos_enc_to_obj_ptrs;
    bool proj_tpos_enc_in_obj_ptrs;
    bool use_signed_tpos_enc_to_obj_ptrs;
    bool only_obj_ptrs_in_the_past_for_eval;
    bool pred_obj_scores;
    bool pred_obj_scores_mlp;
    bool fixed_no_obj_ptr;
    bool soft_no_obj_ptr;
    bool use_mlp_for_obj_ptr_proj;
    bool no_obj_embed_spatial;
    /* sam_mask_decoder_extra_args */
    bool dynamic_multimask_via_stability;
    float dynamic_multimask_stability_delta;      /* 0.05 */
    float dynamic_multimask_stability_thresh;     /* 0.98 */

    /* Video predictor */
    int fill_hole_area;                           /* 8 in build_sam.py */
    bool non_overlap_masks;
    bool clear_non_cond_mem_around_input;
    bool add_all_frames_to_correct_as_cond;

    /* Fixed by SAM's prompt encoder / mask decoder (not in the YAML). */
    int num_multimask_outputs;                    /* 3 */
    int iou_head_depth;                           /* 3 */
    int iou_head_hidden_dim;                      /* 256 */
    int decoder_depth;                            /* two-way transformer depth, 2 */
    int decoder_num_heads;                        /* 8 */
    int decoder_mlp_dim;                          /* 2048 */

    /* Less common constructor arguments (added after the fields above; same meaning as Meta's). */
    int neck_kernel_size, neck_stride, neck_padding; /* FpnNeck lateral convs: 1, 1, 0 */
    bool neck_fpn_interp_nearest;                 /* fpn_interp_model: "nearest" (all Meta configs) or "bilinear" */
    bool neck_fuse_avg;                           /* fuse_type "avg" instead of "sum" */
    float mem_pos_temperature;                    /* memory encoder PositionEmbeddingSine: 10000 */
    bool mem_pos_normalize;                       /* true */
    int mask_ds_total_stride;                     /* MaskDownSampler total_stride: 16 */
    bool fuser_input_projection;                  /* Fuser input_projection: adds fuser.proj (1x1 conv) */
    int decoder_attn_downsample_rate;             /* two-way transformer cross attentions: 2 */
    int prompt_mask_in_chans;                     /* prompt encoder mask_in_chans: 16 */
} sam2d_model_config;

/* Preset names: "sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus", "sam2.1_large",
 * "sam2_tiny", ... Also accepted: Meta's file stems ("sam2.1_hiera_t", "sam2.1_hiera_tiny",
 * "sam2.1_hiera_b+", ...). */
sam2d_status sam2d_config_preset(const char *name, sam2d_model_config *out);
/* Comma-separated list of the canonical preset names. */
const char *sam2d_config_preset_names(void);

/* Parse Meta's hydra-style YAML (file or text). Keys absent from the file take
 * the defaults of Meta's class constructors; the video predictor overrides of
 * build_sam2_video_predictor are applied unless the file sets them. */
sam2d_status sam2d_config_load_yaml(const char *path, sam2d_model_config *out);
sam2d_status sam2d_config_parse_yaml(const char *text, size_t len, sam2d_model_config *out);

/* Check the config's internal consistency (dims divisible, sizes > 0, ...). */
sam2d_status sam2d_config_validate(const sam2d_model_config *cfg);

/* Compare the tensors the config implies with a checkpoint's: every missing,
 * unexpected or wrongly-shaped tensor is listed in the error message
 * (sam2d_last_error). */
sam2d_status sam2d_config_check_checkpoint(const sam2d_model_config *cfg, const sam2d_checkpoint *ck);

/* Guess the config from a checkpoint's tensor shapes (family, sizes, flags);
 * used when no YAML is given. Everything a shape tells is read from the shapes;
 * the rest (num_heads, global attention blocks, window sizes, image_size, the
 * inference switches) comes from the preset whose trunk has the same sizes and
 * whose version (2.1: no_obj_embed_spatial / obj_ptr_tpos_proj present) fits.
 * No such preset: SAM2D_ERR_NOT_FOUND, with *out still filled with the shape
 * facts and SAM 2.x tiny guesses for the rest (good for `sam2d info`, not for
 * running). Not a SAM 2 state dict: SAM2D_ERR_FORMAT. */
sam2d_status sam2d_config_from_checkpoint(const sam2d_checkpoint *ck, sam2d_model_config *out);

/* Human-readable family, e.g. "SAM 2.1 Hiera tiny-like (embed 96, 12 blocks)". */
void sam2d_config_describe(const sam2d_model_config *cfg, char *buf, size_t len);

/* Total parameters implied by the config (equals the checkpoint's when they match).
 * Registered buffers (the prompt encoder's random Fourier matrix) are not
 * parameters, as in PyTorch's model.parameters(). -1 when the config is invalid. */
int64_t sam2d_config_num_parameters(const sam2d_model_config *cfg);

/* ---- Expected state dict -------------------------------------------------- */

#define SAM2D_CONFIG_TENSOR_NAME_MAX 128

typedef struct {
    char name[SAM2D_CONFIG_TENSOR_NAME_MAX]; /* state-dict key, e.g. "image_encoder.trunk.pos_embed" */
    int ndim;
    int64_t shape[4];
    bool buffer;                             /* a registered buffer, not a parameter */
} sam2d_config_tensor;

/* Every state-dict tensor of SAM2Base built from cfg, in PyTorch's state-dict
 * order. *out is allocated by the library: free it with sam2d_config_tensors_free. */
sam2d_status sam2d_config_tensors(const sam2d_model_config *cfg, sam2d_config_tensor **out, size_t *count);
void sam2d_config_tensors_free(sam2d_config_tensor *tensors);

/* Same check as sam2d_config_check_checkpoint on a plain tensor list (only
 * name, ndim and shape are read), e.g. a safetensors header. */
sam2d_status sam2d_config_check_tensors(const sam2d_model_config *cfg, const sam2d_tensor_info *tensors, size_t n);
/* The full comparison, one problem per line: "missing NAME [shape]",
 * "unexpected NAME [shape]", "shape NAME: config [..] checkpoint [..]" (buf may
 * be NULL; truncated to len). Returns the number of problems (0: all match),
 * or -1 when cfg is invalid. Use it where the error message (bounded) is not enough. */
long sam2d_config_compare_tensors(const sam2d_model_config *cfg, const sam2d_tensor_info *tensors, size_t n, char *buf,
                                  size_t len);
/* Same inference as sam2d_config_from_checkpoint on a plain tensor list. */
sam2d_status sam2d_config_from_tensors(const sam2d_tensor_info *tensors, size_t n, sam2d_model_config *out);

/* True for state-dict names that are buffers rather than parameters. */
bool sam2d_config_is_buffer_name(const char *name);

/* Field-by-field comparison: the number of differing fields; their names
 * (comma separated, truncated to len) go to buf when buf is not NULL. */
int sam2d_config_diff(const sam2d_model_config *a, const sam2d_model_config *b, char *buf, size_t len);

/* Print every field as "name: value" lines (for `sam2d info --verbose`). */
void sam2d_config_print(const sam2d_model_config *cfg, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
