/* A real 720p H.264 clip (SA-V demo, 289 frames): frame count = ffprobe
 * -count_frames; sampled frames = ffmpeg's own rgb24 output (the CLI's select
 * filter picks the same frames); random access; the default limits accept it
 * and MAX_VIDEO_FRAMES below its count refuses it from metadata. */
#include <stdio.h>

#include "core/alloc.h"
#include "media/frames.h"
#include "media_test_util.h"
#include "test_util.h"

#define CLIP SAM2D_TEST_DATA "/media/01_dog.mp4"
#define PIXEL_TOL 2

int main(void) {
    if (!mt_have_ffmpeg()) {
        printf("ffmpeg CLI not found: skipped\n");
        return test_finish();
    }
    int want = (int)mt_sh_int("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                              "stream=nb_read_frames -of csv=p=0 '" CLIP "'");
    sam_frame_source *src = NULL;
    sam2d_status s = sam_frame_source_open_path(CLIP, NULL, &src);
    CHECK_MSG(s == SAM2D_OK, "%s", sam2d_last_error());
    if (!src) return test_finish();
    int n = sam_frame_source_count(src), w = sam_frame_source_width(src), h = sam_frame_source_height(src);
    printf("01_dog.mp4: %d frames (ffprobe -count_frames %d), %dx%d, %.3f fps, source resident %zu bytes\n", n, want,
           w, h, sam_frame_source_fps(src), sam_frame_source_resident_bytes(src));
    CHECK(n == want && w == 1280 && h == 720);
    const int pick[] = {0, 1, 47, 100, 150, 233, 288};
    const int np = sizeof pick / sizeof pick[0];
    char rgbpath[512];
    mt_path(rgbpath, sizeof rgbpath, "dog.rgb");
    CHECK(mt_sh("ffmpeg -nostdin -v error -y -i '" CLIP "' -vf \"select='eq(n\\,0)+eq(n\\,1)+eq(n\\,47)+eq(n\\,100)+eq(n\\,150)+"
                "eq(n\\,233)+eq(n\\,288)'\" -fps_mode passthrough -f rawvideo -pix_fmt rgb24 '%s'",
                rgbpath) == 0);
    size_t rn = 0;
    uint8_t *ref = mt_read(rgbpath, &rn);
    size_t fb = (size_t)w * h * 3;
    CHECK(ref && rn == fb * np);
    uint8_t *got = sam_malloc(fb);
    /* sequential order first, then the same frames backwards (seeks) */
    for (int pass = 0; pass < 2 && ref && rn == fb * np; pass++) {
        int worst = 0;
        long long nd = 0;
        for (int k = 0; k < np; k++) {
            int j = pass ? np - 1 - k : k;
            s = sam_frame_source_get(src, pick[j], got);
            CHECK_MSG(s == SAM2D_OK, "frame %d: %s", pick[j], sam2d_last_error());
            for (size_t q = 0; q < fb; q++) {
                int d = abs((int)got[q] - (int)ref[(size_t)j * fb + q]);
                nd += d != 0;
                if (d > worst) worst = d;
            }
        }
        printf("%s: %d sampled frames vs ffmpeg rgb24: worst abs diff %d (tol %d), %lld values differ\n",
               pass ? "backwards (seeking)" : "forward", np, worst, PIXEL_TOL, nd);
        CHECK(worst <= PIXEL_TOL);
    }
    sam_free(got);
    sam_free(ref);
    sam_frame_source_free(src);
    /* refused from the container's frame count, before decoding */
    sam_media_limits lim;
    sam_media_limits_default(&lim);
    lim.max_frames = 100;
    s = sam_frame_source_open_path(CLIP, &lim, &src);
    printf("max 100 frames -> %s\n", sam2d_last_error());
    CHECK(s == SAM2D_ERR_LIMIT && strstr(sam2d_last_error(), "Video has too many frames (289 > 100)"));
    sam_media_limits_default(&lim);
    lim.max_dimension = 1024;
    s = sam_frame_source_open_path(CLIP, &lim, &src);
    printf("max dimension 1024 -> %s\n", sam2d_last_error());
    CHECK(s == SAM2D_ERR_LIMIT &&
          strstr(sam2d_last_error(), "Video dimensions exceed maximum (1280x720 > 1024); raise MAX_FRAME_DIMENSION"));
    mt_cleanup();
    return test_finish();
}
