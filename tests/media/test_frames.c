/* Frame sources and the session frame store: SAM 2's folder order, the golden
 * micro frames through the store (resized bit for bit, both store modes),
 * normalised input, resident bytes per frame, folder refusals. */
#include <stdio.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/frames.h"
#include "media/image_io.h"
#include "media/resize_pil.h"
#include "media_test_util.h"
#include "test_util.h"

static void check_golden_store(sam_store_mode mode, int cache) {
    sam_npy res = {0}, dec = {0};
    CHECK(sam_npy_read(SAM2D_TEST_DATA "/golden/micro/frames_resized_u8.npy", &res) == SAM2D_OK);
    CHECK(sam_npy_read(SAM2D_TEST_DATA "/golden/micro/frames_decoded_u8.npy", &dec) == SAM2D_OK);
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_path(SAM2D_TEST_DATA "/golden/micro/video", NULL, &src);
    CHECK_MSG(s == SAM2D_OK, "%s", sam2d_last_error());
    if (!src || !res.data || !dec.data) {
        sam_frame_source_free(src);
        sam_npy_free(&res);
        sam_npy_free(&dec);
        return;
    }
    CHECK(sam_frame_source_kind(src) == SAM_SOURCE_FOLDER);
    CHECK(sam_frame_source_count(src) == 10);
    CHECK(sam_frame_source_width(src) == 320 && sam_frame_source_height(src) == 240);
    int T = (int)res.shape[0], S = (int)res.shape[1];
    size_t before = sam2d_memory_used();
    sam_frame_store *st = NULL;
    s = sam_frame_store_create(src, S, mode, cache, &st);
    CHECK_MSG(s == SAM2D_OK, "%s", sam2d_last_error());
    if (!st) {
        sam_npy_free(&res);
        sam_npy_free(&dec);
        return;
    }
    size_t fb = (size_t)S * S * 3;
    size_t accounted = sam2d_memory_used() - before;
    long long ndiff = 0;
    /* out of order on purpose: the on-demand cache must evict and re-decode */
    int order[] = {0, 9, 1, 8, 2, 7, 3, 6, 4, 5, 0, 5, 9};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        int i = order[k];
        const uint8_t *rgb = NULL;
        CHECK(sam_frame_store_get_resized(st, i, &rgb) == SAM2D_OK);
        for (size_t q = 0; rgb && q < fb; q++) ndiff += rgb[q] != (uint8_t)res.data[(size_t)i * fb + q];
    }
    printf("store mode %s: %d resized frames vs frames_resized_u8.npy: %lld values differ (tol 0)\n",
           mode == SAM_STORE_RESIZED ? "RESIZED" : "ON_DEMAND", T, ndiff);
    CHECK(ndiff == 0);
    /* model input = normalisation of the resized frame */
    float *chw = sam_malloc(sizeof(float) * 3 * fb / 3), *want = sam_malloc(sizeof(float) * fb);
    uint8_t *u8 = sam_malloc(fb);
    for (size_t q = 0; q < fb; q++) u8[q] = (uint8_t)res.data[3 * fb + q];
    sam_frame_normalize(u8, S, want);
    CHECK(sam_frame_store_get_input(st, 3, chw) == SAM2D_OK);
    CHECK(memcmp(chw, want, sizeof(float) * fb) == 0);
    /* the reference's own image-encoder input (its first call: video frame 0), bit for bit */
    sam_npy enc_in = {0};
    if (S == 256 && sam_npy_read(SAM2D_TEST_DATA "/golden/micro/inter/image_encoder_input.npy", &enc_in) == SAM2D_OK) {
        CHECK(sam_frame_store_get_input(st, 0, chw) == SAM2D_OK);
        CHECK(enc_in.count == (int64_t)fb);
        if (enc_in.count == (int64_t)fb)
            CHECK_CLOSE_ARRAY("frame 0 normalised vs inter/image_encoder_input", chw, enc_in.data, fb, 0.0);
        sam_npy_free(&enc_in);
    }
    /* original resolution frames are the decoded JPEGs */
    uint8_t *orig = sam_malloc(320 * 240 * 3);
    CHECK(sam_frame_store_get_original(st, 7, orig) == SAM2D_OK);
    long long od = 0;
    for (size_t q = 0; q < 320 * 240 * 3; q++) od += orig[q] != (uint8_t)dec.data[7 * 320 * 240 * 3 + q];
    CHECK(od == 0);
    size_t resident = sam_frame_store_resident_bytes(st);
    printf("  resident %zu bytes (%.1f KiB per frame; accounting allocator says %zu); float32 frames would be %zu "
           "per frame\n",
           resident, resident / 1024.0 / T, accounted, fb * 4);
    if (mode == SAM_STORE_RESIZED) CHECK(resident / T < fb + 4096); /* u8 frames + a small index */
    else CHECK(resident < (size_t)(cache + 2) * fb + 320 * 240 * 3 * 2); /* cache + decode buffer, not T frames */
    sam_free(orig);
    sam_free(u8);
    sam_free(chw);
    sam_free(want);
    sam_frame_store_free(st);
    sam_npy_free(&res);
    sam_npy_free(&dec);
}

/* Resident bytes at the real model size (1024) for a 720p-like source. */
static void report_1024(void) {
    char dir[512];
    mt_path(dir, sizeof dir, "big");
    mt_sh("mkdir -p '%s'", dir);
    int W = 1280, H = 720, T = 4;
    uint8_t *rgb = sam_malloc((size_t)W * H * 3);
    for (int t = 0; t < T; t++) {
        mt_synth(rgb, W, H, t);
        uint8_t *jpg;
        size_t n;
        CHECK(sam_jpeg_encode(rgb, W, H, 80, &jpg, &n) == SAM2D_OK);
        char p[600];
        snprintf(p, sizeof p, "%s/%d.jpg", dir, t);
        CHECK(sam_write_file(p, jpg, n) == SAM2D_OK);
        sam_free(jpg);
    }
    sam_free(rgb);
    for (int m = 0; m < 2; m++) {
        sam_frame_source *src = NULL;
        sam_frame_store *st = NULL;
        CHECK(sam_frame_source_open_path(dir, NULL, &src) == SAM2D_OK);
        if (!src) continue;
        CHECK(sam_frame_store_create(src, 1024, m ? SAM_STORE_ON_DEMAND : SAM_STORE_RESIZED, 2, &st) == SAM2D_OK);
        if (!st) continue;
        size_t r = sam_frame_store_resident_bytes(st);
        printf("1280x720 x %d frames at 1024: %s store %.2f MiB resident, %.2f MiB per frame (reference float32: 12 "
               "MiB per frame)\n",
               T, m ? "ON_DEMAND(cache 2)" : "RESIZED", r / 1048576.0, r / 1048576.0 / T);
        /* RESIZED: 3 MiB a frame (u8 1024x1024x3) plus the source's small index */
        if (!m) CHECK(r < (size_t)T * (3u << 20) + (1u << 20));
        else CHECK(r < (size_t)2 * (3u << 20) + (size_t)W * H * 3 + (3u << 20)); /* cache + decode buffer + plan */
        sam_frame_store_free(st);
    }
}

static void touch_png(const char *dir, const char *name, int w, int h, int idx) {
    uint8_t *rgb = sam_malloc((size_t)w * h * 3), *png;
    size_t n;
    mt_synth(rgb, w, h, idx);
    CHECK(sam_png_encode(rgb, w, h, 3, &png, &n) == SAM2D_OK);
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK(sam_write_file(p, png, n) == SAM2D_OK);
    sam_free(png);
    sam_free(rgb);
}

static void check_order(void) {
    /* integer stems sort numerically (SAM 2: int(stem)), not as strings */
    char dir[512];
    mt_path(dir, sizeof dir, "num");
    mt_sh("mkdir -p '%s'", dir);
    const char *names[] = {"10.png", "9.jpg", "100.PNG", "0011.jpeg", "2.png"};
    const int ids[] = {10, 9, 100, 11, 2};
    /* mixed extensions: write PNG bytes for .png and JPEG-named files are PNG too (content decides) */
    for (int i = 0; i < 5; i++) touch_png(dir, names[i], 8, 6, ids[i]);
    touch_png(dir, ".hidden.png", 8, 6, 0);
    mt_sh("echo notes > '%s/readme.txt'", dir);
    sam_frame_source *src = NULL;
    CHECK(sam_frame_source_open_path(dir, NULL, &src) == SAM2D_OK);
    const int want[] = {2, 9, 10, 11, 100};
    if (src) {
        CHECK(sam_frame_source_count(src) == 5);
        uint8_t got[8 * 6 * 3], ref[8 * 6 * 3];
        int ok = 1;
        for (int i = 0; i < 5 && i < sam_frame_source_count(src); i++) {
            CHECK(sam_frame_source_get(src, i, got) == SAM2D_OK);
            mt_synth(ref, 8, 6, want[i]);
            ok &= memcmp(got, ref, sizeof got) == 0;
        }
        printf("numeric folder order 2, 9, 10, 11, 100: %s\n", ok ? "ok" : "WRONG");
        CHECK(ok);
        sam_frame_source_free(src);
    }
    /* non-integer names fall back to natural order */
    mt_path(dir, sizeof dir, "nat");
    mt_sh("mkdir -p '%s'", dir);
    const char *nn[] = {"frame_10.png", "frame_2.png", "frame_1.png"};
    const int nid[] = {10, 2, 1};
    for (int i = 0; i < 3; i++) touch_png(dir, nn[i], 8, 6, nid[i]);
    CHECK(sam_frame_source_open_path(dir, NULL, &src) == SAM2D_OK);
    if (src) {
        uint8_t got[8 * 6 * 3], ref[8 * 6 * 3];
        int ok = 1;
        const int nw[] = {1, 2, 10};
        for (int i = 0; i < 3; i++) {
            CHECK(sam_frame_source_get(src, i, got) == SAM2D_OK);
            mt_synth(ref, 8, 6, nw[i]);
            ok &= memcmp(got, ref, sizeof got) == 0;
        }
        printf("natural folder order frame_1, frame_2, frame_10: %s\n", ok ? "ok" : "WRONG");
        CHECK(ok);
        sam_frame_source_free(src);
    }
    /* refusals */
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    lim.max_frames = 4;
    mt_path(dir, sizeof dir, "num");
    sam2d_status s = sam_frame_source_open_path(dir, &lim, &src);
    printf("folder, max 4 frames -> %s\n", sam2d_last_error());
    CHECK(s == SAM2D_ERR_LIMIT && strstr(sam2d_last_error(), "Video has too many frames (5 > 4); raise MAX_VIDEO_FRAMES"));
    mt_path(dir, sizeof dir, "none");
    mt_sh("mkdir -p '%s'", dir);
    s = sam_frame_source_open_path(dir, NULL, &src);
    printf("empty folder -> %s\n", sam2d_last_error());
    CHECK(s == SAM2D_ERR_FORMAT && src == NULL);
    s = sam_frame_source_open_path("/nonexistent/sam2d/none", NULL, &src);
    CHECK(s == SAM2D_ERR_IO && src == NULL);
    /* a single image is a one-frame source */
    size_t n;
    uint8_t *d = mt_read(SAM2D_TEST_DATA "/golden/micro/video/00003.jpg", &n);
    CHECK(d && sam_frame_source_open_memory(d, n, "x.jpg", NULL, &src) == SAM2D_OK);
    if (src) {
        CHECK(sam_frame_source_kind(src) == SAM_SOURCE_IMAGE && sam_frame_source_count(src) == 1);
        sam_frame_source_free(src);
    }
    /* an upload over the byte limit */
    lim.max_input_bytes = 100;
    s = sam_frame_source_open_memory(d, n, "x.jpg", &lim, &src);
    printf("upload over byte limit -> %s\n", sam2d_last_error());
    CHECK(s == SAM2D_ERR_LIMIT && src == NULL);
    /* a truncated JPEG frame is an error at get time, with the frame named */
    mt_path(dir, sizeof dir, "trunc");
    mt_sh("mkdir -p '%s'", dir);
    char p[600];
    snprintf(p, sizeof p, "%s/0.jpg", dir);
    CHECK(sam_write_file(p, d, n / 2) == SAM2D_OK);
    s = sam_frame_source_open_path(dir, NULL, &src);
    if (s == SAM2D_OK) {
        uint8_t *f = sam_malloc(320 * 240 * 3);
        s = sam_frame_source_get(src, 0, f);
        sam_free(f);
        sam_frame_source_free(src);
    }
    printf("truncated JPEG frame -> %s\n", sam2d_last_error());
    CHECK(s == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "0.jpg"));
    sam_free(d);
}

static void check_video_store(void) {
    /* the golden micro mp4 through the store: same size, on-demand equals resized */
    sam_frame_source *a = NULL, *b = NULL;
    CHECK(sam_frame_source_open_path(SAM2D_TEST_DATA "/golden/micro/video.mp4", NULL, &a) == SAM2D_OK);
    CHECK(sam_frame_source_open_path(SAM2D_TEST_DATA "/golden/micro/video.mp4", NULL, &b) == SAM2D_OK);
    if (!a || !b) {
        sam_frame_source_free(a);
        sam_frame_source_free(b);
        return;
    }
    CHECK(sam_frame_source_count(a) == 10 && sam_frame_source_width(a) == 320);
    CHECK(fabs(sam_frame_source_fps(a) - 10.0) < 1e-9);
    sam_frame_store *sa = NULL, *sb = NULL;
    CHECK(sam_frame_store_create(a, 256, SAM_STORE_RESIZED, 0, &sa) == SAM2D_OK);
    CHECK(sam_frame_store_create(b, 256, SAM_STORE_ON_DEMAND, 3, &sb) == SAM2D_OK);
    int same = 1;
    for (int i = 9; sa && sb && i >= 0; i -= 2) {
        const uint8_t *x, *y;
        CHECK(sam_frame_store_get_resized(sa, i, &x) == SAM2D_OK);
        CHECK(sam_frame_store_get_resized(sb, i, &y) == SAM2D_OK);
        same &= memcmp(x, y, 256 * 256 * 3) == 0;
    }
    CHECK(same);
    /* the mp4 was encoded from the same frames as the JPEGs: close, not equal */
    sam_npy res = {0};
    CHECK(sam_npy_read(SAM2D_TEST_DATA "/golden/micro/frames_resized_u8.npy", &res) == SAM2D_OK);
    const uint8_t *x;
    if (sa && res.data && sam_frame_store_get_resized(sa, 4, &x) == SAM2D_OK) {
        double mad = 0;
        for (size_t q = 0; q < 256 * 256 * 3; q++) mad += fabs((double)x[q] - res.data[4 * 256 * 256 * 3 + q]);
        mad /= 256 * 256 * 3;
        printf("micro video.mp4 vs JPEG folder after resize: mean abs diff %.2f (lossy codecs; tol 4)\n", mad);
        CHECK(mad < 4);
    }
    sam_npy_free(&res);
    sam_frame_store_free(sa);
    sam_frame_store_free(sb);
}

/* One-pass open (frames resized while the open scan decodes) = two-pass, also when downscaling. */
static void check_one_pass(void) {
    for (int down = 0; down < 2; down++) {
        sam_media_limits lim;
        sam_media_limits_default(&lim);
        if (down) {
            lim.max_dimension = 200;
            lim.oversize = SAM_OVERSIZE_DOWNSCALE;
        }
        sam_frame_source *src = NULL;
        sam_frame_store *two = NULL, *one = NULL, *own = NULL;
        CHECK(sam_frame_source_open_path(SAM2D_TEST_DATA "/golden/micro/video.mp4", &lim, &src) == SAM2D_OK);
        CHECK(src && sam_frame_store_create(src, 128, SAM_STORE_RESIZED, 0, &two) == SAM2D_OK);
        CHECK(sam_frame_store_open_path(SAM2D_TEST_DATA "/golden/micro/video.mp4", &lim, 128, SAM_STORE_RESIZED, 0,
                                        &one) == SAM2D_OK);
        size_t n;
        uint8_t *bytes = mt_read(SAM2D_TEST_DATA "/golden/micro/video.mp4", &n);
        CHECK(bytes && sam_frame_store_open_owned(bytes, n, &lim, 128, SAM_STORE_RESIZED, 0, &own) == SAM2D_OK);
        if (!one || !two || !own) {
            sam_frame_store_free(one);
            sam_frame_store_free(two);
            sam_frame_store_free(own);
            continue;
        }
        sam_frame_source *s1 = sam_frame_store_source(one);
        printf("one-pass store%s: %d frames, source %dx%d\n", down ? " (downscale to 200)" : "",
               sam_frame_store_count(one), sam_frame_source_width(s1), sam_frame_source_height(s1));
        CHECK(sam_frame_store_count(one) == 10 && sam_frame_store_count(own) == 10);
        CHECK(sam_frame_source_width(s1) == (down ? 200 : 320) && sam_frame_source_height(s1) == (down ? 150 : 240));
        int same = 1;
        for (int i = 0; i < 10; i++) {
            const uint8_t *a, *b, *c;
            CHECK(sam_frame_store_get_resized(one, i, &a) == SAM2D_OK);
            CHECK(sam_frame_store_get_resized(two, i, &b) == SAM2D_OK);
            CHECK(sam_frame_store_get_resized(own, i, &c) == SAM2D_OK);
            same &= memcmp(a, b, 128 * 128 * 3) == 0 && memcmp(a, c, 128 * 128 * 3) == 0;
        }
        CHECK(same);
        CHECK(sam_frame_store_resident_bytes(one) == sam_frame_store_resident_bytes(two));
        sam_frame_store_free(one);
        sam_frame_store_free(two);
        sam_frame_store_free(own);
    }
    /* a refused open through the store API leaves nothing behind */
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    lim.max_frames = 5;
    sam_frame_store *st = NULL;
    CHECK(sam_frame_store_open_path(SAM2D_TEST_DATA "/golden/micro/video.mp4", &lim, 128, SAM_STORE_RESIZED, 0,
                                    &st) == SAM2D_ERR_LIMIT && st == NULL);
    CHECK(sam_frame_store_open_memory((const uint8_t *)"", 0, NULL, 128, SAM_STORE_RESIZED, 0, &st) ==
              SAM2D_ERR_FORMAT && st == NULL);
}

static void check_env(void) {
    sam_media_limits l;
    sam_media_limits_default(&l);
    CHECK(l.max_frames == 300 && l.max_dimension == 1920 && l.oversize == SAM_OVERSIZE_REFUSE);
    setenv("MAX_VIDEO_FRAMES", "450", 1);
    setenv("MAX_FRAME_DIMENSION", "3840", 1);
    setenv("DOWNSCALE_OVERSIZE", "1", 1);
    CHECK(sam_media_limits_from_env(&l) == SAM2D_OK);
    CHECK(l.max_frames == 450 && l.max_dimension == 3840 && l.oversize == SAM_OVERSIZE_DOWNSCALE);
    setenv("MAX_VIDEO_FRAMES", "12x", 1);
    CHECK(sam_media_limits_from_env(&l) == SAM2D_ERR_INVALID_ARG);
    printf("bad env -> %s\n", sam2d_last_error());
    CHECK(strstr(sam2d_last_error(), "MAX_VIDEO_FRAMES") != NULL);
    setenv("MAX_VIDEO_FRAMES", "0", 1);
    CHECK(sam_media_limits_from_env(&l) == SAM2D_ERR_INVALID_ARG);
    unsetenv("MAX_VIDEO_FRAMES");
    setenv("DOWNSCALE_OVERSIZE", "shrink", 1);
    CHECK(sam_media_limits_from_env(&l) == SAM2D_ERR_INVALID_ARG && strstr(sam2d_last_error(), "DOWNSCALE_OVERSIZE"));
    unsetenv("DOWNSCALE_OVERSIZE");
    unsetenv("MAX_FRAME_DIMENSION");
}

int main(void) {
    size_t base = sam2d_memory_used();
    check_env();
    check_one_pass();
    check_golden_store(SAM_STORE_RESIZED, 0);
    check_golden_store(SAM_STORE_ON_DEMAND, 3);
    check_order();
    check_video_store();
    report_1024();
    printf("accounting allocator: %zu bytes still in use after freeing everything\n", sam2d_memory_used() - base);
    CHECK(sam2d_memory_used() == base);
    mt_cleanup();
    return test_finish();
}
