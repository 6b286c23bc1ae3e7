/* Still images: JPEG and PNG decode to packed RGB uint8 (H,W,3), encode back.
 * JPEG decoding matches Pillow's Image.open(p).convert('RGB') (libjpeg-turbo,
 * ISLOW IDCT, fancy upsampling on), so frames equal what SAM 2's loader sees.
 * Thread safety: all functions are re-entrant. */
#ifndef SAM_MEDIA_IMAGE_IO_H
#define SAM_MEDIA_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

typedef enum {
    SAM_IMAGE_UNKNOWN = 0,
    SAM_IMAGE_JPEG,
    SAM_IMAGE_PNG,
} sam_image_format;

/* Kind of image from its first bytes (magic numbers), SAM_IMAGE_UNKNOWN otherwise. */
sam_image_format sam_image_sniff(const uint8_t *data, size_t n);

/* Read only the header: width and height (before any pixel is decoded). */
sam2d_status sam_image_probe(const uint8_t *data, size_t n, int *width, int *height);

/* Decode a JPEG or PNG held in memory to RGB u8. *rgb is sam_malloc'd (H,W,3);
 * free with sam_free. Refuses (SAM2D_ERR_LIMIT) an image whose width or height
 * exceeds max_dimension (0 = no limit) before decoding pixels, so a tiny file
 * that claims 60000x60000 costs nothing. Grey, palette, alpha and 16-bit inputs
 * become 8-bit RGB the way Pillow's convert('RGB') does (alpha dropped). */
sam2d_status sam_image_decode(const uint8_t *data, size_t n, int max_dimension,
                              uint8_t **rgb, int *width, int *height);

/* Same from a file. */
sam2d_status sam_image_decode_file(const char *path, int max_dimension,
                                   uint8_t **rgb, int *width, int *height);

/* Decode into a caller buffer of exactly (H,W,3) bytes whose size the caller
 * already knows (from sam_image_probe); SAM2D_ERR_FORMAT if dimensions differ. */
sam2d_status sam_image_decode_into(const uint8_t *data, size_t n, int width, int height,
                                   uint8_t *rgb /* (H,W,3) */);

/* Encode RGB u8 (H,W,3) as baseline JPEG (quality 1..100, 4:2:0). *out is
 * sam_malloc'd; *out_len its size. */
sam2d_status sam_jpeg_encode(const uint8_t *rgb /* (H,W,3) */, int width, int height, int quality,
                             uint8_t **out, size_t *out_len);

/* Encode RGB u8 (H,W,3) (channels = 3) or grey (H,W) (channels = 1) as PNG. */
sam2d_status sam_png_encode(const uint8_t *pixels, int width, int height, int channels,
                            uint8_t **out, size_t *out_len);

/* Lower level PNG, shared with mask_png.c. mode 3: RGB as Pillow's
 * convert('RGB'); mode 1: one 8-bit channel, palette indices kept as they are
 * (not expanded), colour reduced to grey. When into != NULL it must hold
 * want_w*want_h*mode bytes and the image must have that size; otherwise *out
 * is sam_malloc'd. */
sam2d_status sam_png_decode_mode(const uint8_t *data, size_t n, int max_dimension, int mode, int want_w,
                                 int want_h, uint8_t *into, uint8_t **out, int *wo, int *ho);
/* 8-bit PNG writer: ctype is libpng's PNG_COLOR_TYPE_{RGB,GRAY,PALETTE} (2, 0, 3);
 * palette (n_palette,3) for PALETTE. */
sam2d_status sam_png_encode_raw(const uint8_t *pixels, int width, int height, int ctype, const uint8_t *palette,
                                int n_palette, uint8_t **out, size_t *out_len);

/* Read a whole file into a sam_malloc'd buffer, refusing files over max_bytes (0 = no limit). */
sam2d_status sam_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *n);
/* Write a buffer to a file (truncating). */
sam2d_status sam_write_file(const char *path, const uint8_t *data, size_t n);

#endif
