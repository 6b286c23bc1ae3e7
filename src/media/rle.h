/* COCO run-length encoding, identical to pycocotools: runs over the mask in
 * column-major (Fortran) order, starting with a run of zeros (possibly 0
 * long), and the compact string form (LEB128-like 5-bit groups with sign,
 * delta against the run two back, chars offset by 48). Thread safety: pure. */
#ifndef SAM_MEDIA_RLE_H
#define SAM_MEDIA_RLE_H

#include <stddef.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

typedef struct {
    int h, w;
    uint32_t *counts; /* (n) run lengths, sam_malloc'd */
    size_t n;
} sam_rle;

/* mask: (h,w) row-major, nonzero = foreground. */
sam2d_status sam_rle_encode(const uint8_t *mask /* (h,w) */, int h, int w, sam_rle *out);
/* Same from a logits/probability map: foreground where value > threshold. */
sam2d_status sam_rle_encode_f32(const float *m /* (h,w) */, int h, int w, float threshold, sam_rle *out);
/* Fill a (h,w) row-major 0/1 mask; SAM2D_ERR_FORMAT if runs do not sum to h*w. */
sam2d_status sam_rle_decode(const sam_rle *r, uint8_t *mask /* (h,w) */);
void sam_rle_free(sam_rle *r);

/* Foreground pixel count (pycocotools area). */
uint64_t sam_rle_area(const sam_rle *r);

/* Counts <-> compact string (pycocotools rleToString / rleFrString). The
 * string is sam_malloc'd and NUL-terminated. */
sam2d_status sam_rle_to_string(const sam_rle *r, char **str);
sam2d_status sam_rle_from_string(const char *str, int h, int w, sam_rle *out);

/* Convenience: mask (h,w) -> string, string -> mask. */
sam2d_status sam_rle_mask_to_string(const uint8_t *mask /* (h,w) */, int h, int w, char **str);
sam2d_status sam_rle_string_to_mask(const char *str, int h, int w, uint8_t *mask /* (h,w) */);

#endif
