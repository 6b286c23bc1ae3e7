/* Mask PNGs: DAVIS-style palette images (index = object id) and binary masks. */
#include "media/mask_png.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "media/image_io.h"

/* The PASCAL VOC / DAVIS colour map: bits of the index spread over the high bits of R, G, B. */
static void davis_palette(uint8_t pal[256 * 3]) {
    for (int i = 0; i < 256; i++) {
        int r = 0, g = 0, b = 0, c = i;
        for (int j = 0; j < 8; j++) {
            r |= ((c >> 0) & 1) << (7 - j);
            g |= ((c >> 1) & 1) << (7 - j);
            b |= ((c >> 2) & 1) << (7 - j);
            c >>= 3;
        }
        pal[3 * i] = (uint8_t)r;
        pal[3 * i + 1] = (uint8_t)g;
        pal[3 * i + 2] = (uint8_t)b;
    }
}

sam2d_status sam_mask_png_encode_palette(const uint8_t *ids, int h, int w, uint8_t **png, size_t *png_len) {
    uint8_t pal[256 * 3];
    davis_palette(pal);
    return sam_png_encode_raw(ids, w, h, 3 /* PNG_COLOR_TYPE_PALETTE */, pal, 256, png, png_len);
}

sam2d_status sam_mask_png_decode_palette(const uint8_t *png, size_t png_len, int max_dimension, uint8_t **ids,
                                         int *h, int *w) {
    *ids = NULL;
    if (sam_image_sniff(png, png_len) != SAM_IMAGE_PNG) return SAM_ERR(SAM2D_ERR_FORMAT, "mask: not a PNG");
    return sam_png_decode_mode(png, png_len, max_dimension, 1, 0, 0, NULL, ids, w, h);
}

sam2d_status sam_mask_png_encode_binary(const uint8_t *mask, int h, int w, uint8_t **png, size_t *png_len) {
    *png = NULL;
    if (!mask || h <= 0 || w <= 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "mask PNG: bad mask %dx%d", w, h);
    uint8_t *grey = sam_malloc((size_t)h * w);
    if (!grey) return SAM_ERR(SAM2D_ERR_NOMEM, "mask PNG: no memory");
    for (size_t i = 0; i < (size_t)h * w; i++) grey[i] = mask[i] ? 255 : 0;
    sam2d_status s = sam_png_encode_raw(grey, w, h, 0 /* PNG_COLOR_TYPE_GRAY */, NULL, 0, png, png_len);
    sam_free(grey);
    return s;
}

sam2d_status sam_mask_png_decode_binary(const uint8_t *png, size_t png_len, int max_dimension, uint8_t **mask,
                                        int *h, int *w) {
    SAM_TRY(sam_mask_png_decode_palette(png, png_len, max_dimension, mask, h, w));
    for (size_t i = 0; i < (size_t)*h * *w; i++) (*mask)[i] = (*mask)[i] != 0;
    return SAM2D_OK;
}

void sam_mask_ids_from_binary(const uint8_t *masks, const int *obj_ids, int n_obj, int h, int w, uint8_t *ids) {
    size_t hw = (size_t)h * w;
    memset(ids, 0, hw);
    for (int k = 0; k < n_obj; k++) {
        uint8_t id = (uint8_t)(obj_ids[k] < 0 ? 0 : obj_ids[k] > 255 ? 255 : obj_ids[k]);
        const uint8_t *m = masks + (size_t)k * hw;
        for (size_t i = 0; i < hw; i++)
            if (m[i]) ids[i] = id;
    }
}
