/* JPEG decoding equals Pillow's (frames_decoded_u8.npy) and the Pillow bicubic
 * resize equals SAM 2's resized frames (frames_resized_u8.npy), bit for bit. */
#include <stdio.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "media/resize_pil.h"
#include "test_util.h"

static int count_diff(const uint8_t *a, const float *b, size_t n, int *worst) {
    int cnt = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d) cnt++;
        if (d > *worst) *worst = d;
    }
    return cnt;
}

static void check_set(const char *set, const char *dec_name, const char *res_name, int nframes_max) {
    char path[512];
    sam_npy dec = {0}, res = {0};
    snprintf(path, sizeof path, "%s/golden/%s/%s", SAM2D_TEST_DATA, set, dec_name);
    CHECK(sam_npy_read(path, &dec) == SAM2D_OK);
    snprintf(path, sizeof path, "%s/golden/%s/%s", SAM2D_TEST_DATA, set, res_name);
    CHECK(sam_npy_read(path, &res) == SAM2D_OK);
    if (!dec.data || !res.data) return;
    /* shapes *_f000.npy are (H,W,3); micro (T,H,W,3) */
    int T = dec.ndim == 4 ? (int)dec.shape[0] : 1;
    int H = (int)dec.shape[dec.ndim - 3], W = (int)dec.shape[dec.ndim - 2];
    int S = (int)res.shape[res.ndim - 2];
    if (T > nframes_max) T = nframes_max;
    sam_resize_plan *plan = NULL;
    CHECK(sam_resize_plan_create(W, H, S, S, 3, &plan) == SAM2D_OK);
    uint8_t *small = sam_malloc((size_t)S * S * 3);
    float *chw = sam_malloc(sizeof(float) * 3 * S * S);
    for (int t = 0; t < T; t++) {
        snprintf(path, sizeof path, "%s/golden/%s/video/%05d.jpg", SAM2D_TEST_DATA, set, t);
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        sam2d_status s = sam_image_decode_file(path, 0, &rgb, &w, &h);
        CHECK_MSG(s == SAM2D_OK, "%s: %s", path, sam2d_last_error());
        if (s != SAM2D_OK) continue;
        CHECK(w == W && h == H);
        int worst;
        int nd = count_diff(rgb, dec.data + (size_t)t * H * W * 3, (size_t)H * W * 3, &worst);
        printf("%s frame %d: JPEG decode vs Pillow: %d values differ, worst %d (tol 0)\n", set, t, nd, worst);
        CHECK(nd == 0);
        /* resize from the golden decoded frame (independent of our JPEG decoder) */
        uint8_t *gold = sam_malloc((size_t)H * W * 3);
        for (size_t i = 0; i < (size_t)H * W * 3; i++) gold[i] = (uint8_t)dec.data[(size_t)t * H * W * 3 + i];
        CHECK(sam_resize_plan_run(plan, gold, small, NULL) == SAM2D_OK);
        nd = count_diff(small, res.data + (size_t)t * S * S * 3, (size_t)S * S * 3, &worst);
        printf("%s frame %d: bicubic %dx%d->%d vs Pillow: %d values differ, worst %d (tol 0)\n", set, t, W, H, S, nd,
               worst);
        CHECK(nd == 0);
        /* one-off API gives the same */
        uint8_t *small2 = sam_malloc((size_t)S * S * 3);
        CHECK(sam_resize_pil_bicubic(gold, W, H, 3, small2, S, S) == SAM2D_OK);
        CHECK(memcmp(small, small2, (size_t)S * S * 3) == 0);
        sam_free(small2);
        sam_free(gold);
        sam_free(rgb);
    }
    /* normalisation follows the reference formula */
    sam_frame_normalize(small, S, chw);
    float want = (float)((double)small[0] / 255.0);
    want = (want - 0.485f) / 0.229f;
    CHECK(chw[0] == want);
    sam_free(chw);
    sam_free(small);
    sam_resize_plan_free(plan);
    sam_npy_free(&dec);
    sam_npy_free(&res);
}

/* Upscale, downscale by large factors, 1-pixel images, one axis only. */
static void check_shapes_and_identity(void) {
    uint64_t seed = 7;
    int sizes[][4] = {{5, 3, 17, 11}, {640, 360, 32, 32}, {1, 1, 4, 4}, {7, 9, 7, 30}, {30, 9, 7, 9}, {8, 8, 8, 8}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int iw = sizes[k][0], ih = sizes[k][1], ow = sizes[k][2], oh = sizes[k][3];
        uint8_t *in = sam_malloc((size_t)iw * ih * 3), *out = sam_malloc((size_t)ow * oh * 3);
        for (size_t i = 0; i < (size_t)iw * ih * 3; i++) in[i] = (uint8_t)((test_randf(&seed) + 1) * 127.9);
        CHECK(sam_resize_pil_bicubic(in, iw, ih, 3, out, ow, oh) == SAM2D_OK);
        if (iw == ow && ih == oh) CHECK(memcmp(in, out, (size_t)iw * ih * 3) == 0);
        sam_free(in);
        sam_free(out);
    }
    /* constant image stays constant (weights sum to one) */
    uint8_t flat[12 * 10 * 3], o[5 * 7 * 3];
    memset(flat, 200, sizeof flat);
    CHECK(sam_resize_pil_bicubic(flat, 12, 10, 3, o, 5, 7) == SAM2D_OK);
    int ok = 1;
    for (size_t i = 0; i < sizeof o; i++) ok &= o[i] == 200;
    CHECK(ok);
    uint8_t dummy[3];
    CHECK(sam_resize_pil_bicubic(flat, 0, 10, 3, dummy, 1, 1) == SAM2D_ERR_INVALID_ARG);
}

int main(void) {
    check_set("micro", "frames_decoded_u8.npy", "frames_resized_u8.npy", 100);
    check_set("shapes", "frames_decoded_u8_f000.npy", "frames_resized_u8_f000.npy", 1);
    check_shapes_and_identity();
    return test_finish();
}
