/* Video decoding through FFmpeg against the ffmpeg CLI: videos made at run
 * time (several codecs and containers, odd size, rotation, VFR); frame count
 * = ffprobe -count_frames, pixels = ffmpeg's own rgb24 output within a small
 * tolerance; frame-accurate random access; refusals with clear messages. */
#include <stdio.h>

#include "core/alloc.h"
#include "media/frames.h"
#include "media/video.h"
#include "media_test_util.h"
#include "test_util.h"

/* The same YCbCr->RGB conversion as the CLI (swscale, bicubic flags): expect
 * equality; allow 2 levels for rounding paths that differ between builds. */
#define PIXEL_TOL 2

typedef struct {
    const char *name;     /* output file name */
    const char *args;     /* ffmpeg arguments after the input */
    const char *input;    /* lavfi input */
    int want_w, want_h;   /* upright size */
    int rotation;
} gen_case;

static int ffprobe_count(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 '%s'",
             path);
    return (int)mt_sh_int(cmd);
}

/* Compare every frame with the CLI's rgb24 output; also random-order access. */
static void check_video(const char *path, int want_w, int want_h, int want_rot, int max_check) {
    char rgbpath[512];
    snprintf(rgbpath, sizeof rgbpath, "%s.rgb", path);
    int ref_count = ffprobe_count(path);
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_path(path, &lim, &src);
    CHECK_MSG(s == SAM2D_OK, "%s: %s", path, sam2d_last_error());
    if (s != SAM2D_OK) return;
    int n = sam_frame_source_count(src), w = sam_frame_source_width(src), h = sam_frame_source_height(src);
    printf("%s: %d frames (ffprobe -count_frames %d), %dx%d, fps %.3f\n", strrchr(path, '/') + 1, n, ref_count, w, h,
           sam_frame_source_fps(src));
    CHECK_MSG(n == ref_count, "%s: %d frames, ffprobe says %d", path, n, ref_count);
    CHECK(w == want_w && h == want_h);
    CHECK(sam_frame_source_kind(src) == SAM_SOURCE_VIDEO);
    (void)want_rot;
    if (mt_sh("ffmpeg -nostdin -v error -y -i '%s' -f rawvideo -pix_fmt rgb24 -fps_mode passthrough '%s'", path, rgbpath)) {
        CHECK(0);
        sam_frame_source_free(src);
        return;
    }
    size_t ref_n = 0;
    uint8_t *ref = mt_read(rgbpath, &ref_n);
    size_t fb = (size_t)w * h * 3;
    CHECK(ref && ref_n == fb * (size_t)ref_count);
    uint8_t *got = sam_malloc(fb);
    int worst = 0;
    long long ndiff = 0;
    int checked = 0;
    for (int i = 0; ref && i < n && i < ref_count && i < max_check; i++) {
        s = sam_frame_source_get(src, i, got);
        CHECK_MSG(s == SAM2D_OK, "frame %d: %s", i, sam2d_last_error());
        for (size_t k = 0; k < fb; k++) {
            int d = abs((int)got[k] - (int)ref[(size_t)i * fb + k]);
            if (d) ndiff++;
            if (d > worst) worst = d;
        }
        checked++;
    }
    printf("  %d frames vs ffmpeg rgb24: worst abs diff %d (tol %d), %lld values differ\n", checked, worst, PIXEL_TOL,
           ndiff);
    CHECK(worst <= PIXEL_TOL);
    /* frame-accurate random access: backwards, jumps, repeats give the same pixels as sequential */
    int order[] = {n - 1, 0, n / 2, n / 2, 3, n - 2, 1, n / 3, n - 1};
    int bad = 0;
    for (size_t k = 0; ref && k < sizeof order / sizeof order[0]; k++) {
        int i = order[k];
        if (i < 0 || i >= n || i >= ref_count) continue;
        s = sam_frame_source_get(src, i, got);
        CHECK_MSG(s == SAM2D_OK, "random frame %d: %s", i, sam2d_last_error());
        int wd = 0;
        for (size_t q = 0; q < fb; q++) {
            int d = abs((int)got[q] - (int)ref[(size_t)i * fb + q]);
            if (d > wd) wd = d;
        }
        if (wd > PIXEL_TOL) {
            bad++;
            fprintf(stderr, "  random access frame %d differs by %d\n", i, wd);
        }
    }
    CHECK(bad == 0);
    CHECK(sam_frame_source_get(src, n, got) == SAM2D_ERR_NOT_FOUND);
    sam_free(got);
    sam_free(ref);
    sam_frame_source_free(src);
}

static void gen_and_check(const gen_case *c) {
    char path[512];
    mt_path(path, sizeof path, c->name);
    if (mt_sh("ffmpeg -nostdin -v error -y -f lavfi -i '%s' %s '%s'", c->input, c->args, path)) {
        CHECK_MSG(0, "could not make %s", c->name);
        return;
    }
    check_video(path, c->want_w, c->want_h, c->rotation, 1000);
}

static void expect_refusal(const char *path, const sam_media_limits *lim, sam2d_status want, const char *msg_part) {
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_path(path, lim, &src);
    const char *msg = sam2d_last_error();
    printf("refusal %-22s -> %s: %s\n", strrchr(path, '/') + 1, sam2d_status_str(s), msg);
    CHECK_MSG(s == want, "%s: got %s want %s", path, sam2d_status_str(s), sam2d_status_str(want));
    CHECK_MSG(strstr(msg, msg_part) != NULL, "message \"%s\" lacks \"%s\"", msg, msg_part);
    /* the seed's limit messages reach clients verbatim: nothing in front of them */
    if (!strncmp(msg_part, "Video ", 6)) CHECK_MSG(!strncmp(msg, msg_part, strlen(msg_part)), "\"%s\" does not start with the seed text", msg);
    CHECK(src == NULL);
    sam_frame_source_free(src);
}

static void check_refusals(void) {
    char path[512], p2[512];
    sam_media_limits lim;
    mt_path(path, sizeof path, "h264.mp4"); /* 24 frames, 96x64 */
    sam_media_limits_default(&lim);
    lim.max_frames = 10;
    expect_refusal(path, &lim, SAM2D_ERR_LIMIT, "Video has too many frames (24 > 10); raise MAX_VIDEO_FRAMES");
    sam_media_limits_default(&lim);
    lim.max_dimension = 50;
    expect_refusal(path, &lim, SAM2D_ERR_LIMIT,
                   "Video dimensions exceed maximum (96x64 > 50); raise MAX_FRAME_DIMENSION");
    /* webm has no frame count in its header: the estimate is within slack, so decoding finds the excess */
    mt_path(p2, sizeof p2, "vp9.webm");
    sam_media_limits_default(&lim);
    lim.max_frames = 23;
    expect_refusal(p2, &lim, SAM2D_ERR_LIMIT, "Video has too many frames (24 > 23); raise MAX_VIDEO_FRAMES");
    /* opt-in downscale instead of refusing */
    sam_media_limits_default(&lim);
    lim.max_dimension = 48;
    lim.oversize = SAM_OVERSIZE_DOWNSCALE;
    sam_frame_source *src = NULL;
    CHECK(sam_frame_source_open_path(path, &lim, &src) == SAM2D_OK);
    if (src) {
        printf("downscale policy: 96x64 -> %dx%d\n", sam_frame_source_width(src), sam_frame_source_height(src));
        CHECK(sam_frame_source_width(src) == 48 && sam_frame_source_height(src) == 32);
        uint8_t *f = sam_malloc(48 * 32 * 3);
        CHECK(sam_frame_source_get(src, 5, f) == SAM2D_OK);
        sam_free(f);
        sam_frame_source_free(src);
    }
    sam_media_limits_default(&lim);
    /* zero bytes */
    mt_path(p2, sizeof p2, "empty.mp4");
    CHECK(sam_write_file(p2, (const uint8_t *)"", 0) == SAM2D_OK);
    expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "0 bytes");
    /* truncated: the mp4 index (moov) is at the end */
    size_t n = 0;
    uint8_t *d = mt_read(path, &n);
    mt_path(p2, sizeof p2, "truncated.mp4");
    CHECK(d && sam_write_file(p2, d, n / 2) == SAM2D_OK);
    expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "");
    sam_free(d);
    /* truncated with the index first (faststart): frames missing at the end */
    char fs[512];
    mt_path(fs, sizeof fs, "faststart.mp4");
    if (mt_sh("ffmpeg -nostdin -v error -y -i '%s' -c copy -movflags +faststart '%s'", path, fs) == 0) {
        d = mt_read(fs, &n);
        mt_path(p2, sizeof p2, "truncated_faststart.mp4");
        CHECK(d && sam_write_file(p2, d, n * 2 / 3) == SAM2D_OK);
        expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "truncated");
        sam_free(d);
    }
    /* not a video */
    mt_path(p2, sizeof p2, "notes.mp4");
    const char *txt = "This is a text file, not a video.\nIt has a few lines of words.\n";
    CHECK(sam_write_file(p2, (const uint8_t *)txt, strlen(txt)) == SAM2D_OK);
    expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "not a video");
    mt_path(p2, sizeof p2, "random.bin");
    uint8_t junk[4096];
    uint64_t seed = 11;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(test_randf(&seed) * 127 + 128);
    CHECK(sam_write_file(p2, junk, sizeof junk) == SAM2D_OK);
    expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "");
    /* audio with cover art only */
    mt_path(p2, sizeof p2, "cover.mp3");
    if (mt_sh("ffmpeg -nostdin -v error -y -f lavfi -i sine=duration=0.3 -f lavfi -i testsrc=size=32x32:duration=0.1 "
              "-map 0 -map 1 -frames:v 1 -c:a libmp3lame -c:v mjpeg -disposition:v attached_pic '%s'",
              p2) == 0)
        expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "cover art");
    /* audio only */
    mt_path(p2, sizeof p2, "tone.wav");
    if (mt_sh("ffmpeg -nostdin -v error -y -f lavfi -i sine=duration=0.2 '%s'", p2) == 0)
        expect_refusal(p2, &lim, SAM2D_ERR_FORMAT, "no video stream");
}

int main(void) {
    if (!mt_have_ffmpeg()) {
        printf("ffmpeg CLI not found: skipped\n");
        return test_finish();
    }
    static const gen_case cases[] = {
        {"h264.mp4", "-frames:v 24 -c:v libx264 -pix_fmt yuv420p -g 8 -bf 2", "testsrc2=size=96x64:rate=10", 96, 64, 0},
        {"odd444.mkv", "-frames:v 12 -c:v ffv1 -pix_fmt yuv444p", "testsrc=size=67x45:rate=10", 67, 45, 0},
        {"vp9.webm", "-frames:v 24 -c:v libvpx-vp9 -deadline realtime -g 6", "testsrc2=size=80x48:rate=12", 80, 48, 0},
        {"vp9odd.webm", "-frames:v 7 -c:v libvpx-vp9 -deadline realtime -pix_fmt yuv420p", "testsrc=size=67x45:rate=7", 67, 45, 0},
        {"mpeg4.mov", "-frames:v 15 -c:v mpeg4 -q:v 3 -g 4", "testsrc2=size=64x48:rate=15", 64, 48, 0},
        {"mjpeg.avi", "-frames:v 6 -c:v mjpeg -q:v 3", "testsrc=size=51x37:rate=5", 51, 37, 0},
        {"ffv1.mkv", "-frames:v 8 -c:v ffv1 -pix_fmt yuv420p", "testsrc2=size=72x40:rate=8", 72, 40, 0},
        {"hevc.mp4", "-frames:v 10 -c:v libx265 -x265-params log-level=error -pix_fmt yuv420p", "testsrc2=size=64x64:rate=10", 64, 64, 0},
        {"av1.mkv", "-frames:v 6 -c:v libaom-av1 -cpu-used 8 -row-mt 1", "testsrc2=size=64x48:rate=6", 64, 48, 0},
        /* variable frame rate: frame times 0, .04, .08 ... then gaps of .24 s */
        {"vfr.mp4", "-frames:v 20 -vf \"setpts=if(lt(N\\,10)\\,N*0.04\\,0.4+(N-10)*0.24)/TB\" -fps_mode vfr -c:v libx264 -pix_fmt yuv420p",
         "testsrc2=size=64x48:rate=25", 64, 48, 0},
        /* MPEG-TS: no index, timestamps start late; open GOPs: frames before a keyframe reference the previous GOP */
        {"h264.ts", "-frames:v 30 -c:v libx264 -pix_fmt yuv420p -g 10 -bf 3 -x264-params open-gop=1 -f mpegts",
         "testsrc2=size=64x48:rate=25", 64, 48, 0},
        {"opengop.mkv", "-frames:v 30 -c:v libx264 -pix_fmt yuv420p -g 7 -bf 3 -x264-params open-gop=1",
         "testsrc2=size=64x48:rate=25", 64, 48, 0},
        /* raw Annex B stream and AVI: no or guessed timestamps */
        {"raw.h264", "-frames:v 20 -c:v libx264 -pix_fmt yuv420p -g 6 -bf 2 -f h264", "testsrc2=size=64x48:rate=25", 64,
         48, 0},
        {"bframes.avi", "-frames:v 20 -c:v mpeg4 -bf 2 -g 6 -q:v 4", "testsrc2=size=64x48:rate=25", 64, 48, 0},
        {"bt709.mkv", "-frames:v 4 -c:v libx264 -pix_fmt yuv420p -colorspace bt709 -color_primaries bt709 -color_trc bt709",
         "testsrc2=size=64x48:rate=4", 64, 48, 0},
        {"fullrange.mp4", "-frames:v 4 -c:v libx264 -pix_fmt yuvj420p", "testsrc2=size=64x48:rate=4", 64, 48, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gen_and_check(&cases[i]);
    /* rotation: FFmpeg 5.1 writes a display matrix only when remuxing with a rotate tag */
    static const struct {
        const char *name;
        int rot, w, h;
    } rots[] = {{"rot90.mp4", 90, 64, 96}, {"rot180.mp4", 180, 96, 64}, {"rot270.mov", 270, 64, 96}};
    for (size_t i = 0; i < sizeof rots / sizeof rots[0]; i++) {
        char base[512], path[512];
        mt_path(base, sizeof base, "h264.mp4");
        mt_path(path, sizeof path, rots[i].name);
        if (mt_sh("ffmpeg -nostdin -v error -y -i '%s' -c copy -metadata:s:v:0 rotate=%d '%s'", base, rots[i].rot, path)) {
            CHECK(0);
            continue;
        }
        check_video(path, rots[i].w, rots[i].h, rots[i].rot, 1000);
    }
    /* VFR: presentation times come from the stream */
    {
        char path[512];
        sam_frame_source *src = NULL;
        if (sam_frame_source_open_path(mt_path(path, sizeof path, "vfr.mp4"), NULL, &src) == SAM2D_OK) {
            double t9 = sam_frame_source_time(src, 9), t11 = sam_frame_source_time(src, 11);
            printf("vfr times: t9 %.3f t11 %.3f\n", t9, t11);
            CHECK(fabs(t9 - 0.36) < 0.01 && fabs(t11 - 0.64) < 0.01);
            sam_frame_source_free(src);
        }
    }
    check_refusals();
    mt_cleanup();
    return test_finish();
}
