/* PNG layouts become RGB the way Pillow's convert('RGB') makes them: alpha
 * dropped (not blended), grey replicated, palette expanded, 1-bit to 0/255,
 * 16-bit colour keeps the high byte, 16-bit grey (Pillow mode I) is clipped
 * at 255. Reference samples come from ffmpeg reading the same PNGs raw. Also
 * JPEG/PNG encoders round trip and header probing. */
#include <stdio.h>

#include "core/alloc.h"
#include "media/image_io.h"
#include "media_test_util.h"
#include "test_util.h"

#define W 19
#define H 7

/* Raw samples of a PNG as ffmpeg reads them, in pixel format fmt. */
static uint8_t *raw(const char *png, const char *fmt, size_t want) {
    char out[600];
    snprintf(out, sizeof out, "%s.%s.raw", png, fmt);
    if (mt_sh("ffmpeg -nostdin -v error -y -i '%s' -f rawvideo -pix_fmt %s '%s'", png, fmt, out)) return NULL;
    size_t n;
    uint8_t *d = mt_read(out, &n);
    if (d && n != want) {
        sam_free(d);
        return NULL;
    }
    return d;
}

static void check_fmt(const char *pix_fmt) {
    char png[512], name[64];
    snprintf(name, sizeof name, "t_%s.png", pix_fmt);
    mt_path(png, sizeof png, name);
    if (mt_sh("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=%dx%d -frames:v 1 -pix_fmt %s '%s'", W, H, pix_fmt, png)) {
        CHECK(0);
        return;
    }
    uint8_t want[W * H * 3];
    uint8_t *r = NULL;
    int ok = 1;
    if (!strcmp(pix_fmt, "rgba") || !strcmp(pix_fmt, "pal8")) {
        r = raw(png, "rgb24", W * H * 3);
        if (r) memcpy(want, r, sizeof want);
    } else if (!strcmp(pix_fmt, "ya8") || !strcmp(pix_fmt, "gray") || !strcmp(pix_fmt, "monob")) {
        r = raw(png, "gray", W * H);
        for (int i = 0; r && i < W * H; i++) want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = r[i];
    } else if (!strcmp(pix_fmt, "rgb48be") || !strcmp(pix_fmt, "rgba64be")) {
        int c = pix_fmt[3] == 'a' ? 4 : 3;
        r = raw(png, pix_fmt, (size_t)W * H * c * 2);
        for (int i = 0; r && i < W * H; i++)
            for (int k = 0; k < 3; k++) want[3 * i + k] = r[(size_t)(c * i + k) * 2]; /* high byte */
    } else if (!strcmp(pix_fmt, "gray16be")) {
        r = raw(png, "gray16be", (size_t)W * H * 2);
        for (int i = 0; r && i < W * H; i++) {
            int v = r[2 * i] << 8 | r[2 * i + 1];
            want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    CHECK_MSG(r != NULL, "%s: no reference", pix_fmt);
    if (!r) return;
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    sam2d_status s = sam_image_decode_file(png, 0, &rgb, &w, &h);
    CHECK_MSG(s == SAM2D_OK, "%s: %s", pix_fmt, sam2d_last_error());
    if (rgb) {
        int worst = 0;
        for (int i = 0; i < W * H * 3; i++) {
            int d = abs((int)rgb[i] - (int)want[i]);
            if (d > worst) worst = d;
        }
        ok = w == W && h == H && worst == 0;
        printf("PNG %-9s -> RGB: worst diff %d vs Pillow's rule (tol 0)\n", pix_fmt, worst);
        CHECK(ok);
    }
    sam_free(rgb);
    sam_free(r);
}

int main(void) {
    if (mt_have_ffmpeg()) {
        const char *fmts[] = {"rgba", "ya8", "pal8", "monob", "gray", "rgb48be", "gray16be", "rgba64be"};
        for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) check_fmt(fmts[i]);
    } else {
        printf("ffmpeg CLI not found: PNG layout checks skipped\n");
    }
    /* encoders round trip; probe reads the header only */
    uint8_t img[W * H * 3], *enc = NULL, *dec = NULL;
    mt_synth(img, W, H, 5);
    size_t n;
    int w, h;
    CHECK(sam_png_encode(img, W, H, 3, &enc, &n) == SAM2D_OK);
    CHECK(sam_image_sniff(enc, n) == SAM_IMAGE_PNG);
    CHECK(sam_image_probe(enc, n, &w, &h) == SAM2D_OK && w == W && h == H);
    CHECK(sam_image_decode(enc, n, 0, &dec, &w, &h) == SAM2D_OK && dec && memcmp(dec, img, sizeof img) == 0);
    uint8_t into[W * H * 3];
    CHECK(sam_image_decode_into(enc, n, W, H, into) == SAM2D_OK && memcmp(into, img, sizeof img) == 0);
    CHECK(sam_image_decode_into(enc, n, W + 1, H, into) == SAM2D_ERR_FORMAT);
    sam_free(dec);
    CHECK(sam_image_decode(enc, n, 10, &dec, &w, &h) == SAM2D_ERR_LIMIT && dec == NULL);
    sam_free(enc);
    for (int y = 0; y < H; y++) /* smooth: JPEG keeps it close */
        for (int x = 0; x < W; x++) {
            uint8_t *p = img + (y * W + x) * 3;
            p[0] = (uint8_t)(40 + x * 8), p[1] = (uint8_t)(60 + y * 20), p[2] = (uint8_t)(100 + (x + y) * 3);
        }
    CHECK(sam_jpeg_encode(img, W, H, 95, &enc, &n) == SAM2D_OK);
    CHECK(sam_image_sniff(enc, n) == SAM_IMAGE_JPEG);
    CHECK(sam_image_probe(enc, n, &w, &h) == SAM2D_OK && w == W && h == H);
    CHECK(sam_image_decode(enc, n, 0, &dec, &w, &h) == SAM2D_OK);
    int worst = 0;
    for (int i = 0; dec && i < W * H * 3; i++) {
        int d = abs((int)dec[i] - (int)img[i]);
        if (d > worst) worst = d;
    }
    printf("JPEG q95 round trip of a smooth image: worst diff %d (tol 16: 4:2:0 chroma)\n", worst);
    CHECK(worst <= 16);
    /* a truncated JPEG is an error, not a half-grey picture */
    sam_free(dec);
    dec = NULL;
    CHECK(sam_image_decode(enc, n - 20, 0, &dec, &w, &h) == SAM2D_ERR_FORMAT && dec == NULL);
    printf("truncated JPEG -> %s\n", sam2d_last_error());
    CHECK(sam_image_decode((const uint8_t *)"GIF89a", 6, 0, &dec, &w, &h) == SAM2D_ERR_FORMAT);
    sam_free(enc);
    mt_cleanup();
    return test_finish();
}
