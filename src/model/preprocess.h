/* Input preprocessing exactly as the reference:
 *  - image predictor (set_image): uint8 RGB -> float in [0,1] -> torchvision
 *    Resize((S, S)) bilinear, align_corners=False, with or without antialias
 *    (the golden data was made without; current torchvision antialiases by
 *    default, so that is our default) -> (x - mean) / std;
 *  - video path: frames already resized to S x S as uint8 (Pillow bicubic,
 *    done elsewhere) -> /255 -> (x - mean) / std.
 * mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225).
 * Outputs are (S, S, 3) channels-last float32 in HOST memory: the exact
 * arithmetic runs on the host from the bytes, into a staging array the caller
 * allocates once; the caller then uploads it with one be->to_dev into the
 * encoder's input buffer (or, where the back end's buffers are host memory,
 * writes straight into that buffer). Thread-safe (no state). */
#ifndef SAM_MODEL_PREPROCESS_H
#define SAM_MODEL_PREPROCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"
#include "sam2d/sam2d.h"

#define SAM_PREPROCESS_ANTIALIAS_DEFAULT true

extern const float sam_img_mean[3];
extern const float sam_img_std[3];

/* rgb: (H, W, 3) uint8 -> out: (S, S, 3) float normalised (host memory, never
 * a device buffer). Resizes on the host with torch's exact arithmetic (float32,
 * same operation order) straight from the bytes; be is unused (may be NULL). Allocates its
 * scratch per call (see sam_preprocess_scratch_bytes: about 12*H*S bytes with
 * antialias, a few KiB without); the _scratch form below allocates nothing. */
sam2d_status sam_preprocess_image(sam_backend *be, const uint8_t *rgb, int H, int W, int S, bool antialias,
                                  float *out);

/* Allocation-free form: scratch of at least sam_preprocess_scratch_bytes(H, W, S, antialias)
 * bytes (antialias: about 12*H*S; plain: a few KiB). Same results as sam_preprocess_image. */
size_t sam_preprocess_scratch_bytes(int H, int W, int S, bool antialias);
sam2d_status sam_preprocess_image_scratch(const uint8_t *rgb, int H, int W, int S, bool antialias, float *out,
                                          void *scratch, size_t scratch_bytes);

/* rgb: (S, S, 3) uint8 -> out: (S, S, 3) host memory, as the video loader: x = float32(u8 / 255.0
 * in double), then (x - mean) / std in float32. */
void sam_normalize_u8(const uint8_t *rgb, int S, float *out);

/* Host reference of the bilinear resize on planar maps x (C, Hi, Wi) -> y (C, Ho, Wo),
 * align_corners=False, antialias as torch's (only differs when shrinking). */
void sam_resize_bilinear_host(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo, bool antialias);

#endif
