/* `sam2d track` on a real clip (tests/data/media/bedroom.mp4: 200 frames of
 * 960x540 H.264) with the golden micro model: the run ends with exit 0 and a
 * palette PNG of the video's size for every frame, holding only the prompted
 * ids. (Random weights: what the masks show is not checked, only that the whole
 * pipeline — decode, resize, session, propagation, writing — runs end to end.)
 * Then Ctrl-C: SIGINT during tracking stops after the current frame, exits 1
 * with an "interrupted" message and leaves the masks of the frames done. */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "test_util.h"

static void test_sigint(const char *tmp) {
    char video[600], model[600], config[600], out[600];
    snprintf(video, sizeof video, "%s/media/bedroom.mp4", SAM2D_TEST_DATA);
    snprintf(model, sizeof model, "%s/golden/micro/model.safetensors", SAM2D_TEST_DATA);
    snprintf(config, sizeof config, "%s/golden/micro/config.yaml", SAM2D_TEST_DATA);
    snprintf(out, sizeof out, "%s/int", tmp);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(fds[1], 2);
        close(fds[0]);
        char *argv[] = {(char *)SAM2D_BINARY, "track", video, "--model", model, "--config", config, "--prompt",
                        "0:1:480,300", "--format", "rle", "--out", out, "--progress", NULL};
        execv(SAM2D_BINARY, argv);
        _exit(127);
    }
    close(fds[1]);
    /* wait for the first tracking step on the progress bar, then interrupt */
    char buf[1 << 16];
    size_t len = 0;
    bool sent = false;
    ssize_t r;
    while ((r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t)r;
        buf[len] = 0;
        if (!sent && strstr(buf, "track  [")) {
            CHECK(kill(pid, SIGINT) == 0);
            sent = true;
        }
        if (len > sizeof buf / 2) { /* keep the tail */
            memmove(buf, buf + len - 1024, 1024);
            len = 1024;
        }
    }
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(sent);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 1, "SIGINT: status %d", status);
    CHECK_MSG(strstr(buf, "interrupted after") != NULL, "SIGINT: stderr ends with: %s", buf);
    char p[700];
    snprintf(p, sizeof p, "%s/masks.jsonl", out);
    FILE *f = fopen(p, "r");
    int lines = 0, c;
    while (f && (c = fgetc(f)) != EOF) lines += c == '\n';
    if (f) fclose(f);
    printf("SIGINT during tracking: exit %d, %d frame(s) of 200 written\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           lines);
    CHECK(lines >= 1 && lines < 200);
}

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
    test_sigint(tmp);
    if (test_failed_ == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        CHECK(system(cmd) == 0);
    }
    return test_finish();
}
