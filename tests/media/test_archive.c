/* Frames uploaded as tar / zip archives: order, pixels, and every refusal
 * (non-image entries, path traversal, symlinks, bombs, lying sizes, truncation,
 * too many frames, mixed sizes) with a clear message and no crash. */
#include <stdio.h>

#include "core/alloc.h"
#include "media/archive.h"
#include "media/frames.h"
#include "media/image_io.h"
#include "media_test_util.h"
#include "test_util.h"

#define FW 40
#define FH 24

static uint8_t *png_frame(int idx, int w, int h, size_t *n) {
    uint8_t *rgb = sam_malloc((size_t)w * h * 3), *out = NULL;
    mt_synth(rgb, w, h, idx);
    CHECK(sam_png_encode(rgb, w, h, 3, &out, n) == SAM2D_OK);
    sam_free(rgb);
    return out;
}

static uint8_t *jpg_frame(int idx, size_t *n) {
    uint8_t *rgb = sam_malloc(FW * FH * 3), *out = NULL;
    mt_synth(rgb, FW, FH, idx);
    CHECK(sam_jpeg_encode(rgb, FW, FH, 90, &out, n) == SAM2D_OK);
    sam_free(rgb);
    return out;
}

/* Open from memory, expect success; frame k must be synth frame want_idx[k] (PNG: exact). */
static void expect_frames(const char *what, const uint8_t *d, size_t n, const int *want_idx, int count, int exact) {
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_memory(d, n, what, NULL, &src);
    CHECK_MSG(s == SAM2D_OK, "%s: %s", what, sam2d_last_error());
    if (!src) return;
    CHECK(sam_frame_source_kind(src) == SAM_SOURCE_ARCHIVE);
    CHECK(sam_frame_source_count(src) == count);
    CHECK(sam_frame_source_width(src) == FW && sam_frame_source_height(src) == FH);
    uint8_t got[FW * FH * 3], want[FW * FH * 3];
    int worst = 0;
    for (int i = 0; i < count && i < sam_frame_source_count(src); i++) {
        CHECK(sam_frame_source_get(src, i, got) == SAM2D_OK);
        if (exact) {
            mt_synth(want, FW, FH, want_idx[i]);
        } else { /* JPEG: the decode of the very bytes that went in */
            size_t jn;
            uint8_t *jpg = jpg_frame(want_idx[i], &jn), *dec = NULL;
            int w, h;
            CHECK(sam_image_decode(jpg, jn, 0, &dec, &w, &h) == SAM2D_OK);
            if (dec) memcpy(want, dec, sizeof want);
            sam_free(dec);
            sam_free(jpg);
        }
        for (size_t k = 0; k < sizeof got; k++) {
            int dd = abs((int)got[k] - (int)want[k]);
            if (dd > worst) worst = dd;
        }
    }
    printf("%-28s %d frames in numeric order, worst diff vs source %d (%s)\n", what, count, worst,
           exact ? "vs PNG source, tol 0" : "vs decoding the same JPEG bytes, tol 0");
    CHECK(worst == 0);
    sam_frame_source_free(src);
}

static void expect_refusal(const char *what, const uint8_t *d, size_t n, const sam_media_limits *lim,
                           sam2d_status want, const char *part) {
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_memory(d, n, what, lim, &src);
    const char *msg = sam2d_last_error();
    printf("refusal %-26s -> %s: %s\n", what, sam2d_status_str(s), msg);
    CHECK_MSG(s == want, "%s: got %s want %s", what, sam2d_status_str(s), sam2d_status_str(want));
    CHECK_MSG(strstr(msg, part) != NULL, "%s: message lacks \"%s\"", what, part);
    /* the seed's limit messages reach clients verbatim: nothing in front of them */
    if (!strncmp(part, "Video ", 6)) CHECK_MSG(!strncmp(msg, part, strlen(part)), "\"%s\" does not start with the seed text", msg);
    CHECK(src == NULL);
    sam_frame_source_free(src);
}

int main(void) {
    const char *names[] = {"10.png", "2.png", "0.png", "1.png"};
    const int ids[] = {10, 2, 0, 1};
    const int order[] = {0, 1, 2, 10};
    size_t n;
    /* tar of PNGs, out of order in the archive */
    {
        mt_buf b = {0};
        mt_tar_add(&b, "clip/", '5', NULL, 0);
        for (int i = 0; i < 4; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "clip/%s", names[i]);
            uint8_t *png = png_frame(ids[i], FW, FH, &n);
            mt_tar_add(&b, nm, '0', png, n);
            sam_free(png);
        }
        mt_tar_end(&b);
        expect_frames("tar of PNGs", b.d, b.n, order, 4, 1);
        /* the same archive truncated */
        expect_refusal("truncated tar", b.d, b.n / 2, NULL, SAM2D_ERR_FORMAT, "truncated");
        free(b.d);
    }
    /* zip: stored and deflated JPEGs, a directory, macOS junk */
    {
        mt_zip z = {0};
        mt_zip_add(&z, "frames/", (const uint8_t *)"", 0, 0, 0);
        for (int i = 0; i < 4; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "frames/%d.jpg", ids[i]);
            uint8_t *jpg = jpg_frame(ids[i], &n);
            mt_zip_add(&z, nm, jpg, n, i % 2, 0);
            sam_free(jpg);
        }
        mt_zip_add(&z, "__MACOSX/frames/._0.jpg", (const uint8_t *)"junk", 4, 0, 0);
        mt_zip_end(&z);
        expect_frames("zip of JPEGs", z.out.d, z.out.n, order, 4, 0);
        expect_refusal("truncated zip", z.out.d, z.out.n - 30, NULL, SAM2D_ERR_FORMAT, "zip");
        /* too many frames */
        sam_media_limits lim;
        sam_media_limits_default(&lim);
        lim.max_frames = 3;
        expect_refusal("too many frames", z.out.d, z.out.n, &lim, SAM2D_ERR_LIMIT,
                       "Video has too many frames (4 > 3); raise MAX_VIDEO_FRAMES");
        sam_media_limits_default(&lim);
        lim.max_dimension = 30;
        expect_refusal("too large", z.out.d, z.out.n, &lim, SAM2D_ERR_LIMIT,
                       "Video dimensions exceed maximum (40x24 > 30); raise MAX_FRAME_DIMENSION");
        lim.oversize = SAM_OVERSIZE_DOWNSCALE;
        sam_frame_source *src = NULL;
        CHECK(sam_frame_source_open_memory(z.out.d, z.out.n, NULL, &lim, &src) == SAM2D_OK);
        if (src) {
            CHECK(sam_frame_source_width(src) == 30 && sam_frame_source_height(src) == 18);
            uint8_t f[30 * 18 * 3];
            CHECK(sam_frame_source_get(src, 3, f) == SAM2D_OK);
            sam_frame_source_free(src);
        }
        /* a CRC error in stored data */
        uint8_t *bad = malloc(z.out.n);
        memcpy(bad, z.out.d, z.out.n);
        size_t off = 30 + strlen("frames/") + 30 + strlen("frames/10.jpg") + 200; /* inside the first JPEG */
        bad[off] ^= 0x55;
        expect_refusal("CRC mismatch", bad, z.out.n, NULL, SAM2D_ERR_FORMAT, "CRC");
        free(bad);
        free(z.out.d);
    }
    /* the system tar (GNU format) works too */
    {
        char dir[512], tarp[512];
        mt_path(dir, sizeof dir, "gnu");
        mt_path(tarp, sizeof tarp, "gnu.tar");
        mt_sh("mkdir -p '%s'", dir);
        for (int i = 0; i < 4; i++) {
            char p[600];
            snprintf(p, sizeof p, "%s/%05d.png", dir, ids[i]);
            uint8_t *png = png_frame(ids[i], FW, FH, &n);
            CHECK(sam_write_file(p, png, n) == SAM2D_OK);
            sam_free(png);
        }
        if (mt_sh("cd '%s' && tar -cf '%s' gnu", mt_tmpdir(), tarp) == 0) {
            uint8_t *d = mt_read(tarp, &n);
            expect_frames("GNU tar", d, n, order, 4, 1);
            sam_free(d);
        }
    }
    size_t pn;
    uint8_t *png = png_frame(0, FW, FH, &pn);
    /* refusals by entry */
    {
        mt_buf b = {0};
        mt_tar_add(&b, "0.png", '0', png, pn);
        mt_tar_add(&b, "../1.png", '0', png, pn);
        mt_tar_end(&b);
        expect_refusal("tar path traversal", b.d, b.n, NULL, SAM2D_ERR_UNSUPPORTED, "path traversal");
        free(b.d);
        memset(&b, 0, sizeof b);
        mt_tar_add(&b, "0.png", '0', png, pn);
        mt_tar_add(&b, "notes.txt", '0', (const uint8_t *)"hello", 5);
        mt_tar_end(&b);
        expect_refusal("tar non-image entry", b.d, b.n, NULL, SAM2D_ERR_UNSUPPORTED, "not a JPEG or PNG frame");
        free(b.d);
        memset(&b, 0, sizeof b);
        mt_tar_add(&b, "1.png", '2', NULL, 0);
        mt_tar_end(&b);
        expect_refusal("tar symlink", b.d, b.n, NULL, SAM2D_ERR_UNSUPPORTED, "not a regular file");
        free(b.d);
        memset(&b, 0, sizeof b);
        mt_tar_add(&b, "0.png", '0', (const uint8_t *)"this is text", 12);
        mt_tar_end(&b);
        expect_refusal("tar fake PNG", b.d, b.n, NULL, SAM2D_ERR_FORMAT, "0.png");
        free(b.d);
        memset(&b, 0, sizeof b);
        mt_tar_add(&b, "0.png", '0', png, pn);
        size_t pn2;
        uint8_t *png2 = png_frame(1, FW + 2, FH, &pn2);
        mt_tar_add(&b, "1.png", '0', png2, pn2);
        sam_free(png2);
        mt_tar_end(&b);
        expect_refusal("mixed frame sizes", b.d, b.n, NULL, SAM2D_ERR_UNSUPPORTED, "all frames must have one size");
        free(b.d);
        memset(&b, 0, sizeof b);
        mt_tar_add(&b, "empty/", '5', NULL, 0);
        mt_tar_end(&b);
        expect_refusal("archive without frames", b.d, b.n, NULL, SAM2D_ERR_FORMAT, "no JPEG or PNG frames");
        free(b.d);
        mt_zip z = {0};
        mt_zip_add(&z, "/etc/0.png", png, pn, 0, 0);
        mt_zip_end(&z);
        expect_refusal("zip absolute path", z.out.d, z.out.n, NULL, SAM2D_ERR_UNSUPPORTED, "absolute path");
        free(z.out.d);
        memset(&z, 0, sizeof z);
        mt_zip_add(&z, "a\\..\\0.png", png, pn, 0, 0);
        mt_zip_end(&z);
        expect_refusal("zip backslash name", z.out.d, z.out.n, NULL, SAM2D_ERR_UNSUPPORTED, "unsafe entry name");
        free(z.out.d);
    }
    /* decompression bombs */
    {
        size_t big = (size_t)24 << 20; /* 24 MiB of zeros deflate to ~24 KiB */
        uint8_t *zeros = calloc(big, 1);
        memcpy(zeros, png, pn < 64 ? pn : 64);
        mt_zip z = {0};
        mt_zip_add(&z, "0.png", zeros, big, 1, 0);
        mt_zip_end(&z);
        printf("bomb: %zu bytes -> %zu\n", z.out.n, big);
        expect_refusal("zip bomb (ratio)", z.out.d, z.out.n, NULL, SAM2D_ERR_LIMIT, "decompression bomb");
        free(z.out.d);
        /* the same entry lying about its size: declared 4000 bytes */
        memset(&z, 0, sizeof z);
        mt_zip_add(&z, "0.png", zeros, big, 1, 4000);
        mt_zip_end(&z);
        expect_refusal("zip bomb (lying size)", z.out.d, z.out.n, NULL, SAM2D_ERR_LIMIT, "beyond its declared");
        free(z.out.d);
        free(zeros);
        /* an entry over the per-entry limit */
        sam_media_limits lim;
        sam_media_limits_default(&lim);
        lim.max_entry_bytes = 100;
        memset(&z, 0, sizeof z);
        mt_zip_add(&z, "0.png", png, pn, 0, 0);
        mt_zip_end(&z);
        expect_refusal("entry over size limit", z.out.d, z.out.n, &lim, SAM2D_ERR_LIMIT, "uncompressed (limit 100)");
        free(z.out.d);
        /* a PNG whose header claims 100000 x 100000 pixels (pixel bomb) */
        uint8_t *claim = malloc(pn);
        memcpy(claim, png, pn);
        uint8_t dims[8] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0};
        memcpy(claim + 16, dims, 8);
        uint32_t crc = (uint32_t)crc32(0L, claim + 12, 17);
        claim[29] = (uint8_t)(crc >> 24), claim[30] = (uint8_t)(crc >> 16), claim[31] = (uint8_t)(crc >> 8),
        claim[32] = (uint8_t)crc;
        memset(&z, 0, sizeof z);
        mt_zip_add(&z, "0.png", claim, pn, 0, 0);
        mt_zip_end(&z);
        expect_refusal("PNG pixel bomb in zip", z.out.d, z.out.n, NULL, SAM2D_ERR_LIMIT,
                       "Video dimensions exceed maximum (100000x100000 > 1920)");
        free(z.out.d);
        uint8_t *rgb = NULL;
        int w, h;
        sam2d_status s = sam_image_decode(claim, pn, 0, &rgb, &w, &h);
        printf("PNG pixel bomb, no dimension limit -> %s: %s\n", sam2d_status_str(s), sam2d_last_error());
        CHECK(s != SAM2D_OK && rgb == NULL);
        free(claim);
    }
    sam_free(png);
    mt_cleanup();
    return test_finish();
}
