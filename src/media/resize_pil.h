/* Pillow-exact 8-bit resampling: Image.resize((W,H)) with the default BICUBIC
 * filter (a = -0.5) on RGB, as SAM 2's video loader uses to make the model's
 * square input. Separable, horizontal pass first, 22-bit fixed-point weights,
 * uint8 intermediate: output equals Pillow 9.x bit for bit. Also the
 * normalisation SAM 2 applies afterwards. Thread safety: re-entrant. */
#ifndef SAM_MEDIA_RESIZE_PIL_H
#define SAM_MEDIA_RESIZE_PIL_H

#include <stdint.h>

#include "sam2d/sam2d.h"

/* Resize interleaved u8 (in_h,in_w,channels) to (out_h,out_w,channels);
 * channels 1..4. One-off convenience: builds a plan, runs it, frees it
 * (use a plan for every frame of a video). */
sam2d_status sam_resize_pil_bicubic(const uint8_t *src /* (in_h,in_w,C) */, int in_w, int in_h, int channels,
                                    uint8_t *dst /* (out_h,out_w,C) */, int out_w, int out_h);

/* Precomputed weights for one (in -> out) size pair, reusable for every frame
 * of a video so nothing is allocated per frame. */
typedef struct sam_resize_plan sam_resize_plan;
sam2d_status sam_resize_plan_create(int in_w, int in_h, int out_w, int out_h, int channels,
                                    sam_resize_plan **out);
/* Run a plan. A plan owns its work buffers: one thread at a time per plan.
 * scratch (sam_resize_plan_scratch_bytes(plan) bytes) may be NULL, then the
 * plan's own buffer is used. */
sam2d_status sam_resize_plan_run(sam_resize_plan *p, const uint8_t *src, uint8_t *dst, uint8_t *scratch);
size_t sam_resize_plan_scratch_bytes(const sam_resize_plan *p);
void sam_resize_plan_free(sam_resize_plan *p);

/* SAM 2 input normalisation of a resized frame: float32(u8/255 in double)
 * minus ImageNet mean, divided by std, in float32; (S,S,3) u8 -> (3,S,S) f32. */
void sam_frame_normalize(const uint8_t *rgb /* (S,S,3) */, int size, float *chw /* (3,S,S) */);

#endif
