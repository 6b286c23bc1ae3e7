/* SAM 2 image encoder: Hiera trunk + FPN neck + sine position encodings, and
 * the mask decoder's conv_s0/conv_s1 high-resolution projections, which the
 * reference applies once per frame in forward_image (so they run here).
 *
 * Layouts are channels-last throughout (tokens, C), ready for GEMMs.
 * Weights are converted to float32 once at create into the back end's const
 * memory, with every table made at load (position embedding, sine tables);
 * the activation arena is reserved on the back end's buffers at create for
 * cfg->image_size, so a forward allocates nothing and the host never touches
 * an activation (ops.h, "memory and small kernels").
 *
 * Thread safety: the weights are read-only after create; one forward at a
 * time per encoder (it owns one activation arena) -- callers serialise. */
#ifndef SAM_MODEL_IMAGE_ENCODER_H
#define SAM_MODEL_IMAGE_ENCODER_H

#include <stddef.h>

#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"

typedef struct sam_image_encoder sam_image_encoder;

/* Loads the image_encoder.* weights and sam_mask_decoder.conv_s0/conv_s1 (f32),
 * reserves the arena. Fails with one message listing every missing/mis-shaped tensor. */
sam2d_status sam_image_encoder_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                                      sam_image_encoder **out);
/* Same from any loader (e.g. random mode for tests/benchmarks); L is not finished here. */
sam2d_status sam_image_encoder_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L,
                                                  sam_backend *be, sam_image_encoder **out);
void sam_image_encoder_free(sam_image_encoder *enc);

typedef struct {               /* all channels-last, caller-owned back-end buffers sized by sam_image_features_floats */
    int num_levels;            /* 3 (after scalp) */
    int h[3], w[3], c[3];      /* level 0 = S/4 (after conv_s0: d_model/8 ch), 1 = S/8 (conv_s1: d_model/4), 2 = S/16 (d_model) */
    float *feat[3];            /* (h*w, c) per level: backbone_fpn after conv_s0/s1 (levels 0/1), level 2 raw */
    float *pos[3];             /* (h*w, d_model) position encodings per level; NULL: not written */
} sam_image_features;

/* Floats needed for one frame's features (feat + pos of every level). */
size_t sam_image_features_floats(const sam2d_model_config *cfg);
/* Fill f's sizes and carve buf (sam_image_features_floats floats) into its arrays. */
void sam_image_features_bind(const sam2d_model_config *cfg, float *buf, sam_image_features *f);

/* Same with position encodings only for the levels whose bit is set in pos_levels
 * (others get pos = NULL, and forward skips them). The encodings are identical for
 * every frame and SAM 2 reads only the lowest-resolution one (memory attention), so
 * SAM_FEATURES_POS_TOP saves most of the per-frame size (e.g. 84 of 105 MiB at tiny@1024). */
#define SAM_FEATURES_POS_ALL 0x7u
#define SAM_FEATURES_POS_TOP 0x4u  /* level 2 (S/16) when there are 3 levels */
size_t sam_image_features_floats_ex(const sam2d_model_config *cfg, unsigned pos_levels);
void sam_image_features_bind_ex(const sam2d_model_config *cfg, float *buf, unsigned pos_levels, sam_image_features *f);
/* Write level `level`'s position encoding (h*w, d_model) into dst without a forward: a host
 * write, so dst is host memory or const memory not yet published (e.g. a model's table at load). */
sam2d_status sam_image_encoder_pos(const sam_image_encoder *enc, int level, float *dst);

/* img: (S, S, 3) normalised float, channels-last, S = cfg->image_size: a buffer.
 * Outputs (out's arrays) are buffers too. One forward at a time per encoder. */
sam2d_status sam_image_encoder_forward(sam_image_encoder *enc, const float *img, sam_image_features *out);

/* Debug / test taps: when set, forward copies intermediates into these
 * caller-owned HOST arrays (channels-last; to_host, so each tap waits for the
 * queued kernels). Sizes via sam_image_encoder_tap_size. */
typedef enum {
    SAM_ENC_TAP_PATCH_EMBED = 0,   /* (S/4, S/4, C) after patch embed, before pos embed */
    SAM_ENC_TAP_POS_EMBED,         /* (S/4, S/4, C) the interpolated pos embed */
    SAM_ENC_TAP_BLOCK,             /* (h, w, C_i) output of block `index` */
    SAM_ENC_TAP_STAGE,             /* (h, w, C_i) output of stage `index` (its last block) */
    SAM_ENC_TAP_NECK_OUT,          /* (h, w, d_model) neck level `index` (before scalp, 0 = S/4) */
    SAM_ENC_TAP_NECK_POS,          /* (h, w, d_model) neck pos level `index` (before scalp) */
} sam_encoder_tap_kind;
/* Number of floats of a tap (0 when the index is out of range). */
size_t sam_image_encoder_tap_size(const sam_image_encoder *enc, sam_encoder_tap_kind kind, int index);
/* Register dst for a tap (NULL removes it). At most 64 taps. */
sam2d_status sam_image_encoder_set_tap(sam_image_encoder *enc, sam_encoder_tap_kind kind, int index, float *dst);

/* Total trunk blocks (sum of cfg->stages). */
int sam_image_encoder_num_blocks(const sam_image_encoder *enc);
/* Bytes of weights and of the reserved activation arena. */
size_t sam_image_encoder_weight_bytes(const sam_image_encoder *enc);
size_t sam_image_encoder_arena_bytes(const sam_image_encoder *enc);

#endif
