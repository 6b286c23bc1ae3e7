/* SAM heads: prompt encoder + mask decoder (two-way transformer, hypernetwork
 * MLPs, IoU head, object-score head), as SAM2Base builds them (_build_sam_heads).
 *
 * All maps are channels-last. S = cfg->image_size, C = cfg->d_model,
 * h = w = S / backbone_stride.
 *
 * Thread safety: the weights are read-only after create; each call uses
 * scratch owned by the heads object, so calls on one sam_heads must be
 * serialised by the caller (one heads object per session, or a lock). */
#ifndef SAM_MODEL_SAM_HEADS_H
#define SAM_MODEL_SAM_HEADS_H

#include <stdbool.h>

#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"

typedef struct sam_heads sam_heads;

sam2d_status sam_heads_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                              sam_heads **out);
/* Same from any loader (e.g. random mode in tests); L is not finished here, and the
 * heads object owns every buffer it fetched. */
sam2d_status sam_heads_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L, sam_backend *be,
                                          sam_heads **out);
void sam_heads_free(sam_heads *h);
/* Bytes of fp32 weights (dense_pe included) and of the activation arena:
 * reserved, and *resident the part ever touched (may be NULL). */
size_t sam_heads_weight_bytes(const sam_heads *h);
size_t sam_heads_scratch_bytes(const sam_heads *h, size_t *resident);
/* Bytes the activations need (the high water of the dry run at create and of
 * every call since), and running them in a caller's region (see
 * sam_arena_use_buffer; NULL returns to own memory). */
size_t sam_heads_scratch_need(const sam_heads *h);
void sam_heads_use_scratch(sam_heads *h, void *buf, size_t bytes);

/* Prompt encoder. coords (n, 2) in model pixels (0..S, before the +0.5 shift), labels (n): -1 pad, 0 neg,
 * 1 pos, 2/3 box corners. mask_input (S/4, S/4) logits or NULL (then no_mask_embed). Outputs: sparse (n, C),
 * dense (h*w, C) channels-last at S/16. n may be 0 (then sparse is untouched). */
sam2d_status sam_prompt_encode(sam_heads *h, const float *coords, const int *labels, int n, const float *mask_input,
                               float *sparse, float *dense);

/* (h*w, C): PositionEmbeddingRandom over the S/16 grid (get_dense_pe), computed once at create. */
const float *sam_heads_dense_pe(const sam_heads *h);

typedef struct {
    float *masks;      /* (num_masks, S/4, S/4) */
    float *iou;        /* (num_masks) */
    float *sam_tokens; /* (num_tokens, C); may be NULL when not wanted */
    float object_score_logit;
    int num_masks;
    int num_tokens;    /* 3 when multimask and use_multimask_token_for_obj_ptr, else 1 (token 0) */
} sam_decoder_out;

/* masks (num_masks, S/4, S/4); iou (num_masks); sam_tokens (num_tokens, C) — exactly MaskDecoder.forward's
 * outputs after its multimask slicing / dynamic-stability selection (num_masks = 3 if multimask else 1).
 * image_embed (h*w, C); high_res0 ((S/4)^2, C/8) and high_res1 ((S/8)^2, C/4), both NULL when the config
 * does not use high-res features; sparse (n_sparse, C); dense (h*w, C).
 * Caller buffers in out must hold num_multimask_outputs (3) masks / ious / tokens (the multimask case). */
sam2d_status sam_mask_decode(sam_heads *h, const float *image_embed, const float *high_res0,
                             const float *high_res1, const float *sparse, int n_sparse, const float *dense,
                             bool multimask, sam_decoder_out *out);

/* Same, and also the decoder's full outputs before the multimask selection, for tests and for
 * the video predictor's use_multimask_token_for_obj_ptr rule. all_masks (1+M, S/4, S/4), all_iou (1+M),
 * all_tokens (1+M, C); any may be NULL. */
sam2d_status sam_mask_decode_ex(sam_heads *h, const float *image_embed, const float *high_res0,
                                const float *high_res1, const float *sparse, int n_sparse, const float *dense,
                                bool multimask, sam_decoder_out *out, float *all_masks, float *all_iou,
                                float *all_tokens);

/* Number of mask tokens (1 + num_multimask_outputs). */
int sam_heads_num_mask_tokens(const sam_heads *h);
/* Side of the low-res mask grid (S/4). */
int sam_heads_low_res_size(const sam_heads *h);

#endif
