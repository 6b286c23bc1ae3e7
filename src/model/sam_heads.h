/* SAM heads: prompt encoder + mask decoder (two-way transformer, hypernetwork
 * MLPs, IoU head, object-score head), as SAM2Base builds them (_build_sam_heads).
 *
 * All maps are channels-last. S = cfg->image_size, C = cfg->d_model,
 * h = w = S / backbone_stride.
 *
 * Thread safety: the weights are read-only after create; each call uses
 * scratch owned by the heads object, so calls on one sam_heads must be
 * serialised by the caller (one heads object per session, or a lock).
 *
 * Memory (ops.h's device-memory rule): every tensor argument and output is a
 * back-end BUFFER (device memory on a GPU) except what is marked "host":
 * prompt points/labels, iou[] and object_score_logit. Weights and the tables
 * made at create (dense_pe) are const memory. Per call the host does only:
 * the point embeddings (n * C floats, made on the host from const weights in a
 * staging array allocated at create, then to_dev), and ONE to_host of
 * M + 1 (+ 2) floats (IoUs, object score and, for the single-mask dynamic
 * stability rule, two pixel counts made on the device) to choose the output;
 * the chosen masks/tokens are then copied buffer to buffer. Nothing is
 * allocated per call (the arena, on the back end's buffers, is sized at create). */
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
/* Bytes of fp32 weights and tables in const memory (dense_pe included) and of the activation arena:
 * reserved, and *resident the part ever touched (may be NULL). */
size_t sam_heads_weight_bytes(const sam_heads *h);
size_t sam_heads_scratch_bytes(const sam_heads *h, size_t *resident);
/* Bytes the activations need (the high water of the dry run at create and of
 * every call since), and running them in a caller's region (a buffer; see
 * sam_arena_use_buffer; NULL returns to own buffers). */
size_t sam_heads_scratch_need(const sam_heads *h);
void sam_heads_use_scratch(sam_heads *h, void *buf, size_t bytes);

/* Prompt encoder. coords (n, 2) host, in model pixels (0..S, before the +0.5 shift), labels (n) host: -1 pad,
 * 0 neg, 1 pos, 2/3 box corners. mask_input (S/4, S/4) logits buffer, or NULL (then no_mask_embed). Outputs
 * (buffers): sparse (n, C), dense (h*w, C) channels-last at S/16. n may be 0 (then sparse is untouched). */
sam2d_status sam_prompt_encode(sam_heads *h, const float *coords, const int *labels, int n, const float *mask_input,
                               float *sparse, float *dense);

/* (h*w, C) const memory (host-readable): PositionEmbeddingRandom over the S/16 grid (get_dense_pe),
 * computed once at create. */
const float *sam_heads_dense_pe(const sam_heads *h);

typedef struct {
    float *masks;      /* (num_masks, S/4, S/4) buffer */
    float *iou;        /* (num_masks) host */
    float *sam_tokens; /* (num_tokens, C) buffer; may be NULL when not wanted */
    float object_score_logit; /* host */
    int num_masks;
    int num_tokens;    /* 3 when multimask and use_multimask_token_for_obj_ptr, else 1 (token 0) */
} sam_decoder_out;

/* masks (num_masks, S/4, S/4); iou (num_masks); sam_tokens (num_tokens, C) — exactly MaskDecoder.forward's
 * outputs after its multimask slicing / dynamic-stability selection (num_masks = 3 if multimask else 1).
 * image_embed (h*w, C); high_res0 ((S/4)^2, C/8) and high_res1 ((S/8)^2, C/4), both NULL when the config
 * does not use high-res features; sparse (n_sparse, C); dense (h*w, C): all buffers.
 * out->masks / out->sam_tokens (buffers) and out->iou (host) must hold num_multimask_outputs (3) masks /
 * tokens / ious (the multimask case). Returns once out->iou / object_score_logit are on the host; the
 * mask/token copies are queued on the back end (a later to_host of them waits for them). */
sam2d_status sam_mask_decode(sam_heads *h, const float *image_embed, const float *high_res0,
                             const float *high_res1, const float *sparse, int n_sparse, const float *dense,
                             bool multimask, sam_decoder_out *out);

/* Same, and also the decoder's full outputs before the multimask selection, for tests and for
 * the video predictor's use_multimask_token_for_obj_ptr rule. all_masks (1+M, S/4, S/4) buffer,
 * all_iou (1+M) host, all_tokens (1+M, C) buffer; any may be NULL. */
sam2d_status sam_mask_decode_ex(sam_heads *h, const float *image_embed, const float *high_res0,
                                const float *high_res1, const float *sparse, int n_sparse, const float *dense,
                                bool multimask, sam_decoder_out *out, float *all_masks, float *all_iou,
                                float *all_tokens);

/* Number of mask tokens (1 + num_multimask_outputs). */
int sam_heads_num_mask_tokens(const sam_heads *h);
/* Side of the low-res mask grid (S/4). */
int sam_heads_low_res_size(const sam_heads *h);

#endif
