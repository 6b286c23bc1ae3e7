/* Helpers shared by the media tests: temp dirs, running the ffmpeg CLI, files. */
#ifndef SAM2D_MEDIA_TEST_UTIL_H
#define SAM2D_MEDIA_TEST_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/image_io.h"

static char mt_dir[256];

static inline const char *mt_tmpdir(void) {
    if (!mt_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(mt_dir, sizeof mt_dir, "%s/sam2d_media_XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(mt_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return mt_dir;
}

static inline void mt_cleanup(void) {
    if (mt_dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", mt_dir);
        if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", mt_dir);
    }
}

static inline char *mt_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", mt_tmpdir(), name);
    return buf;
}

/* Run a shell command; 0 on success. */
static inline int mt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int mt_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r != 0) fprintf(stderr, "command failed (%d): %s\n", r, cmd);
    return r;
}

/* First line of a command's output as an integer (-1 on failure). */
static inline long mt_sh_int(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[128] = "";
    long v = -1;
    if (fgets(line, sizeof line, p)) v = strtol(line, NULL, 10);
    pclose(p);
    return v;
}

static inline int mt_have_ffmpeg(void) {
    return system("ffmpeg -version >/dev/null 2>&1") == 0 && system("ffprobe -version >/dev/null 2>&1") == 0;
}

static inline uint8_t *mt_read(const char *path, size_t *n) {
    uint8_t *d = NULL;
    if (sam_read_file(path, 0, &d, n) != SAM2D_OK) return NULL;
    return d;
}

#endif
