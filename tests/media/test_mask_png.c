/* Mask PNGs: DAVIS palette PNG per frame (pixel = object id) and binary PNG
 * per object round trip exactly; palette colours are DAVIS's; bad input refused. */
#include <stdio.h>

#include "core/alloc.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/rle.h"
#include "test_util.h"

int main(void) {
    const int h = 37, w = 53, n_obj = 3;
    const int obj_ids[3] = {1, 2, 7};
    uint8_t *masks = sam_calloc((size_t)n_obj * h * w, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            masks[0 * h * w + y * w + x] = (x - 10) * (x - 10) + (y - 12) * (y - 12) < 80;
            masks[1 * h * w + y * w + x] = x > 30 && y > 5 && y < 30;
            masks[2 * h * w + y * w + x] = x > 40 && y > 20; /* overlaps object 2: the later id wins */
        }
    uint8_t *ids = sam_malloc((size_t)h * w);
    sam_mask_ids_from_binary(masks, obj_ids, n_obj, h, w, ids);
    CHECK(ids[25 * w + 45] == 7 && ids[10 * w + 35] == 2 && ids[12 * w + 10] == 1 && ids[0] == 0);
    /* palette PNG round trip */
    uint8_t *png = NULL, *back = NULL;
    size_t n = 0;
    int bh = 0, bw = 0;
    CHECK(sam_mask_png_encode_palette(ids, h, w, &png, &n) == SAM2D_OK);
    CHECK(sam_mask_png_decode_palette(png, n, 0, &back, &bh, &bw) == SAM2D_OK);
    CHECK(bh == h && bw == w && back && memcmp(back, ids, (size_t)h * w) == 0);
    /* seen as an image, the pixels carry DAVIS colours: 1 = (128,0,0), 2 = (0,128,0), 7 = (128,128,128) */
    uint8_t *rgb = NULL;
    int iw, ih;
    CHECK(sam_image_decode(png, n, 0, &rgb, &iw, &ih) == SAM2D_OK);
    if (rgb) {
        const uint8_t *p1 = rgb + (12 * w + 10) * 3, *p2 = rgb + (10 * w + 35) * 3, *p7 = rgb + (25 * w + 45) * 3;
        printf("palette colours: id1 (%d,%d,%d) id2 (%d,%d,%d) id7 (%d,%d,%d)\n", p1[0], p1[1], p1[2], p2[0], p2[1],
               p2[2], p7[0], p7[1], p7[2]);
        CHECK(p1[0] == 128 && p1[1] == 0 && p1[2] == 0);
        CHECK(p2[0] == 0 && p2[1] == 128 && p2[2] == 0);
        CHECK(p7[0] == 128 && p7[1] == 128 && p7[2] == 128);
        CHECK(rgb[0] == 0 && rgb[1] == 0 && rgb[2] == 0);
    }
    sam_free(rgb);
    sam_free(png);
    sam_free(back);
    /* binary PNG per object round trip, and it agrees with the RLE of the same mask */
    for (int k = 0; k < n_obj; k++) {
        const uint8_t *m = masks + (size_t)k * h * w;
        CHECK(sam_mask_png_encode_binary(m, h, w, &png, &n) == SAM2D_OK);
        CHECK(sam_mask_png_decode_binary(png, n, 0, &back, &bh, &bw) == SAM2D_OK);
        CHECK(back && bh == h && bw == w && memcmp(back, m, (size_t)h * w) == 0);
        char *s1 = NULL, *s2 = NULL;
        CHECK(sam_rle_mask_to_string(m, h, w, &s1) == SAM2D_OK);
        CHECK(back && sam_rle_mask_to_string(back, h, w, &s2) == SAM2D_OK);
        CHECK(s1 && s2 && strcmp(s1, s2) == 0);
        sam_free(s1);
        sam_free(s2);
        sam_free(png);
        sam_free(back);
    }
    /* an RGB PNG of a mask (white on black) also decodes to 0/1 */
    uint8_t *rgbm = sam_malloc((size_t)h * w * 3);
    for (size_t i = 0; i < (size_t)h * w; i++) rgbm[3 * i] = rgbm[3 * i + 1] = rgbm[3 * i + 2] = masks[i] ? 255 : 0;
    CHECK(sam_png_encode(rgbm, w, h, 3, &png, &n) == SAM2D_OK);
    CHECK(sam_mask_png_decode_binary(png, n, 0, &back, &bh, &bw) == SAM2D_OK);
    CHECK(back && memcmp(back, masks, (size_t)h * w) == 0);
    sam_free(back);
    /* refusals: too large for the limit, truncated, not a PNG */
    CHECK(sam_mask_png_decode_palette(png, n, 20, &back, &bh, &bw) == SAM2D_ERR_LIMIT && back == NULL);
    CHECK(sam_mask_png_decode_palette(png, n / 2, 0, &back, &bh, &bw) == SAM2D_ERR_FORMAT && back == NULL);
    printf("truncated mask PNG -> %s\n", sam2d_last_error());
    CHECK(sam_mask_png_decode_palette((const uint8_t *)"GIF89a....", 10, 0, &back, &bh, &bw) == SAM2D_ERR_FORMAT);
    sam_free(png);
    sam_free(rgbm);
    sam_free(ids);
    sam_free(masks);
    return test_finish();
}
