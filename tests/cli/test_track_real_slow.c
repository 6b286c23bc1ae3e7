/* `sam2d track` on a real clip (tests/data/media/bedroom.mp4: 200 frames of
 * 960x540 H.264) with the golden micro model: the run ends with exit 0 and a
 * palette PNG of the video's size for every frame, holding only the prompted
 * ids. (Random weights: what the masks show is not checked, only that the whole
 * pipeline — decode, resize, session, propagation, writing — runs end to end.) */
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "test_util.h"

int main(void) {
    char tmp[256] = "/tmp/sam2d_test_track_real_XXXXXX", cmd[8192], p[600];
    CHECK(mkdtemp(tmp) != NULL);
    snprintf(cmd, sizeof cmd,
             "'%s' track '%s/media/bedroom.mp4' --model '%s/golden/micro/model.safetensors' "
             "--config '%s/golden/micro/config.yaml' --prompt 0:1:480,300 --box 0:2:100,100,400,400 "
             "--out '%s/masks' >'%s/stdout.txt' 2>'%s/stderr.txt'",
             SAM2D_BINARY, SAM2D_TEST_DATA, SAM2D_TEST_DATA, SAM2D_TEST_DATA, tmp, tmp, tmp);
    int rc = system(cmd);
    CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "exit %d", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    uint8_t *txt = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/stdout.txt", tmp);
    if (sam_read_file(p, 0, &txt, &n) == SAM2D_OK && n > 0) {
        txt[n - 1] = 0;
        printf("%s\n", (char *)txt);
        CHECK(strstr((char *)txt, "tracked 2 object(s) over 200/200 frame(s) of 960x540") != NULL);
    } else {
        CHECK_MSG(0, "no summary line");
    }
    sam_free(txt);
    int ok = 0, fg_frames = 0;
    for (int f = 0; f < 200; f++) {
        uint8_t *png = NULL, *ids = NULL;
        int h = 0, w = 0, bad = 0, fg = 0;
        snprintf(p, sizeof p, "%s/masks/%05d.png", tmp, f);
        if (sam_read_file(p, 0, &png, &n) == SAM2D_OK && sam_mask_png_decode_palette(png, n, 0, &ids, &h, &w) == SAM2D_OK &&
            h == 540 && w == 960) {
            for (int i = 0; i < h * w; i++) {
                bad += ids[i] > 2;
                fg += ids[i] != 0;
            }
            ok += bad == 0;
            fg_frames += fg > 0;
        }
        sam_free(png);
        sam_free(ids);
    }
    printf("%d/200 frames with a valid 960x540 palette PNG, %d with foreground\n", ok, fg_frames);
    CHECK(ok == 200);
    if (test_failed_ == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        CHECK(system(cmd) == 0);
    }
    return test_finish();
}
