/* Masks as PNG: one palette PNG per frame (pixel = object id, 0 = background,
 * DAVIS palette), and one binary PNG per object (0 / 255 grey).
 * Thread safety: pure. */
#ifndef SAM_MEDIA_MASK_PNG_H
#define SAM_MEDIA_MASK_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

/* ids: (h,w) object id per pixel (0..255). Output sam_malloc'd. */
sam2d_status sam_mask_png_encode_palette(const uint8_t *ids /* (h,w) */, int h, int w,
                                         uint8_t **png, size_t *png_len);
/* Decode a palette (or grey) PNG to ids (h,w) u8 (palette index = id). *ids sam_malloc'd. */
sam2d_status sam_mask_png_decode_palette(const uint8_t *png, size_t png_len, int max_dimension,
                                         uint8_t **ids, int *h, int *w);

/* Binary mask (nonzero = foreground) -> 8-bit grey PNG of 0/255, which every tool reads. */
sam2d_status sam_mask_png_encode_binary(const uint8_t *mask /* (h,w) */, int h, int w,
                                        uint8_t **png, size_t *png_len);
/* Any PNG -> 0/1 mask (pixel > 0 after conversion to grey is foreground). */
sam2d_status sam_mask_png_decode_binary(const uint8_t *png, size_t png_len, int max_dimension,
                                        uint8_t **mask, int *h, int *w);

/* Combine per-object binary masks into an id map: later objects win where masks
 * overlap (ids[k] written in order). masks: (n_obj,h,w). */
void sam_mask_ids_from_binary(const uint8_t *masks /* (n_obj,h,w) */, const int *obj_ids, int n_obj,
                              int h, int w, uint8_t *ids /* (h,w) */);

#endif
