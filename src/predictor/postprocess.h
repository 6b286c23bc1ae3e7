/* Mask post-processing of the video predictor, on the CPU (the reference
 * needs its CUDA extension for this; ours runs everywhere).
 *
 *  - fill holes: connected components (8-connectivity, as the reference's
 *    cc2d kernel) of the background (score <= 0); those of area <= max_area
 *    get the score 0.1 (sam2/utils/misc.py fill_holes_in_mask_scores);
 *  - remove sprinkles: components of the foreground (score > 0) of area
 *    <= max_area get -10 + threshold (SAM2Transforms.postprocess_masks, which
 *    finds both kinds of components on the INPUT mask);
 *  - non-overlap: per pixel only the highest-scoring object keeps its score,
 *    the others are clamped to at most -10 (_apply_non_overlapping_constraints).
 *
 * Scratch: the component labelling needs sam_cc_scratch_bytes(H, W) bytes,
 * provided by the caller so that nothing is allocated per frame.
 * Thread safety: pure functions over caller memory. */
#ifndef SAM_PREDICTOR_POSTPROCESS_H
#define SAM_PREDICTOR_POSTPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

/* Bytes of scratch the functions below need for an H x W mask. */
size_t sam_cc_scratch_bytes(int H, int W);

/* Label the 8-connected components of fg (H*W, nonzero = foreground).
 * labels (H*W): 0 on background, 1..n on foreground; area (H*W): the area of the
 * pixel's component (0 on background). Returns n. scratch: sam_cc_scratch_bytes
 * (labels/area may not alias it). */
int sam_connected_components(const uint8_t *fg, int H, int W, int32_t *labels, int32_t *area, void *scratch);

/* In place on mask (H*W) scores: background components (score <= 0) with area <= max_area
 * become 0.1. max_area <= 0: no-op. */
void sam_fill_holes(float *mask, int H, int W, int max_area, void *scratch);

/* In place, the image predictor's variant: components are found on the input
 * mask; background ones (<= threshold) of area <= max_hole become threshold + 10,
 * foreground ones (> threshold) of area <= max_sprinkle become threshold - 10. */
void sam_fill_holes_and_sprinkles(float *mask, int H, int W, int max_hole, int max_sprinkle, float threshold,
                                  void *scratch);

/* masks (n_obj, hw): for every pixel the first object with the largest score
 * keeps it, the others are clamped to at most -10. n_obj <= 1: no-op. */
void sam_non_overlap(float *masks, int n_obj, int64_t hw);

#endif
