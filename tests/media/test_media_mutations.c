/* Damaged input never crashes: valid JPEG, PNG, tar, zip, mp4 and RLE strings
 * with bytes flipped, cut or overwritten are either decoded or refused with a
 * status and a message (this test is meant for the ASan+UBSan pass). */
#include <stdio.h>

#include "core/alloc.h"
#include "media/archive.h"
#include "media/frames.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/rle.h"
#include "media_test_util.h"
#include "test_util.h"

static uint64_t rng = 12345;
static uint32_t rnd(uint32_t n) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((rng >> 33) % (n ? n : 1));
}

/* A damaged copy: a few flipped bytes, sometimes cut short, sometimes a run of 0xff. */
static uint8_t *mutate(const uint8_t *d, size_t n, size_t *out_n) {
    uint8_t *m = malloc(n ? n : 1);
    memcpy(m, d, n);
    int flips = 1 + (int)rnd(8);
    for (int k = 0; k < flips && n; k++) m[rnd((uint32_t)n)] ^= (uint8_t)(1u << rnd(8));
    if (rnd(4) == 0 && n > 16) memset(m + rnd((uint32_t)n - 8), 0xff, 8);
    *out_n = rnd(3) == 0 ? rnd((uint32_t)n + 1) : n;
    return m;
}

/* Open and read every frame; returns 1 when everything decoded. */
static int exercise_source(const uint8_t *d, size_t n, const sam_media_limits *lim) {
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_memory(d, n, NULL, lim, &src);
    if (s != SAM2D_OK) {
        CHECK(src == NULL && sam2d_last_error()[0] != 0);
        return 0;
    }
    int ok = 1;
    size_t fb = (size_t)sam_frame_source_width(src) * sam_frame_source_height(src) * 3;
    uint8_t *f = sam_malloc(fb);
    for (int i = sam_frame_source_count(src) - 1; i >= 0; i -= 3)
        if (sam_frame_source_get(src, i, f) != SAM2D_OK) ok = 0;
    sam_free(f);
    sam_frame_source_free(src);
    return ok;
}

/* SAM2D_MUTATION_SCALE=k runs k times more damaged copies (for longer hunts). */
static int scale(void) {
    const char *e = getenv("SAM2D_MUTATION_SCALE");
    int k = e ? atoi(e) : 1;
    return k < 1 ? 1 : k;
}

static void run_family(const char *name, const uint8_t *d, size_t n, int iters, const sam_media_limits *lim) {
    int decoded = 0;
    iters *= scale();
    CHECK_MSG(exercise_source(d, n, lim) == 1, "%s: the intact input must decode: %s", name, sam2d_last_error());
    for (int it = 0; it < iters; it++) {
        size_t mn;
        uint8_t *m = mutate(d, n, &mn);
        decoded += exercise_source(m, mn, lim);
        free(m);
    }
    printf("%-6s %d damaged copies: %d still decode, %d refused cleanly\n", name, iters, decoded, iters - decoded);
}

int main(void) {
    const char *seed = getenv("SAM2D_MUTATION_SEED");
    if (seed) rng = strtoull(seed, NULL, 10);
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    lim.max_dimension = 4096;
    size_t jn, pn, vn;
    uint8_t *jpg = mt_read(SAM2D_TEST_DATA "/golden/micro/video/00000.jpg", &jn);
    uint8_t *rgb = NULL, *png = NULL;
    int w, h;
    CHECK(jpg && sam_image_decode(jpg, jn, 0, &rgb, &w, &h) == SAM2D_OK);
    /* a small PNG keeps the loop fast */
    uint8_t small[48 * 32 * 3];
    mt_synth(small, 48, 32, 3);
    CHECK(sam_png_encode(small, 48, 32, 3, &png, &pn) == SAM2D_OK);
    run_family("JPEG", jpg, jn, 150, &lim);
    run_family("PNG", png, pn, 300, &lim);
    mt_buf tar = {0};
    mt_tar_add(&tar, "0.png", '0', png, pn);
    mt_tar_add(&tar, "1.png", '0', png, pn);
    mt_tar_end(&tar);
    run_family("tar", tar.d, tar.n, 300, &lim);
    mt_zip z = {0};
    mt_zip_add(&z, "0.png", png, pn, 1, 0);
    mt_zip_add(&z, "1.png", png, pn, 0, 0);
    mt_zip_end(&z);
    run_family("zip", z.out.d, z.out.n, 300, &lim);
    uint8_t *mp4 = mt_read(SAM2D_TEST_DATA "/golden/micro/video.mp4", &vn);
    CHECK(mp4 != NULL);
    if (mp4) run_family("mp4", mp4, vn, 60, &lim);
    /* RLE strings: random printable garbage is refused or decodes to exactly h*w pixels */
    uint8_t mask[20 * 30];
    int rle_ok = 0;
    for (int it = 0; it < 2000; it++) {
        char s[40];
        int len = (int)rnd(39);
        for (int k = 0; k < len; k++) s[k] = (char)(32 + rnd(95));
        s[len] = 0;
        if (sam_rle_string_to_mask(s, 20, 30, mask) == SAM2D_OK) rle_ok++;
    }
    printf("RLE    2000 random strings: %d decode to a 20x30 mask, the rest refused\n", rle_ok);
    /* mask PNG decoder on the damaged PNGs */
    for (int it = 0; it < 200; it++) {
        size_t mn;
        uint8_t *m = mutate(png, pn, &mn), *ids = NULL;
        int mh, mw;
        if (sam_mask_png_decode_palette(m, mn, 4096, &ids, &mh, &mw) == SAM2D_OK) sam_free(ids);
        free(m);
    }
    free(tar.d);
    free(z.out.d);
    sam_free(mp4);
    sam_free(jpg);
    sam_free(png);
    sam_free(rgb);
    return test_finish();
}
