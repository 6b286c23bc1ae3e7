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

/* ---- tiny archive writers, so tests can make any entry (bad names included) ---- */
#include <zlib.h>

typedef struct {
    uint8_t *d;
    size_t n, cap;
} mt_buf;

static inline void mt_put(mt_buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        b->d = realloc(b->d, cap);
        b->cap = cap;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static inline void mt_put16(mt_buf *b, unsigned v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    mt_put(b, x, 2);
}
static inline void mt_put32(mt_buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    mt_put(b, x, 4);
}

/* One ustar entry (type '0' file, '5' dir, '2' symlink). */
static inline void mt_tar_add(mt_buf *b, const char *name, char type, const uint8_t *data, size_t n) {
    uint8_t h[512];
    memset(h, 0, sizeof h);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011zo", type == '0' ? n : (size_t)0);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (uint8_t)type;
    if (type == '2') snprintf((char *)h + 157, 100, "%s", "/etc/passwd");
    memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    mt_put(b, h, 512);
    if (type == '0' && n) {
        mt_put(b, data, n);
        uint8_t pad[512] = {0};
        if (n % 512) mt_put(b, pad, 512 - n % 512);
    }
}
static inline void mt_tar_end(mt_buf *b) {
    uint8_t z[1024] = {0};
    mt_put(b, z, sizeof z);
}

/* Zip writer: entries collected, then the central directory. declared_size
 * (when nonzero) overrides the uncompressed size written to the headers. */
typedef struct {
    mt_buf out, cd;
    int count;
} mt_zip;

static inline void mt_zip_add(mt_zip *z, const char *name, const uint8_t *data, size_t n, int use_deflate,
                              uint32_t declared_size) {
    uint8_t *comp = NULL;
    size_t clen = n;
    if (use_deflate) {
        z_stream s;
        memset(&s, 0, sizeof s);
        deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
        clen = deflateBound(&s, (uLong)n);
        comp = malloc(clen ? clen : 1);
        s.next_in = (Bytef *)data;
        s.avail_in = (uInt)n;
        s.next_out = comp;
        s.avail_out = (uInt)clen;
        deflate(&s, Z_FINISH);
        clen = s.total_out;
        deflateEnd(&s);
    }
    uint32_t crc = (uint32_t)crc32(0L, data, (uInt)n);
    uint32_t usize = declared_size ? declared_size : (uint32_t)n;
    size_t off = z->out.n, nl = strlen(name);
    mt_put32(&z->out, 0x04034b50);
    mt_put16(&z->out, 20);
    mt_put16(&z->out, 0);
    mt_put16(&z->out, use_deflate ? 8 : 0);
    mt_put16(&z->out, 0);
    mt_put16(&z->out, 0);
    mt_put32(&z->out, crc);
    mt_put32(&z->out, (uint32_t)clen);
    mt_put32(&z->out, usize);
    mt_put16(&z->out, (unsigned)nl);
    mt_put16(&z->out, 0);
    mt_put(&z->out, name, nl);
    if (clen) mt_put(&z->out, use_deflate ? comp : data, clen);
    free(comp);
    mt_put32(&z->cd, 0x02014b50);
    mt_put16(&z->cd, 20);
    mt_put16(&z->cd, 20);
    mt_put16(&z->cd, 0);
    mt_put16(&z->cd, use_deflate ? 8 : 0);
    mt_put16(&z->cd, 0);
    mt_put16(&z->cd, 0);
    mt_put32(&z->cd, crc);
    mt_put32(&z->cd, (uint32_t)clen);
    mt_put32(&z->cd, usize);
    mt_put16(&z->cd, (unsigned)nl);
    mt_put16(&z->cd, 0);
    mt_put16(&z->cd, 0);
    mt_put16(&z->cd, 0);
    mt_put16(&z->cd, 0);
    mt_put32(&z->cd, 0);
    mt_put32(&z->cd, (uint32_t)off);
    mt_put(&z->cd, name, nl);
    z->count++;
}

/* Finish: returns the archive in z->out (caller frees z->out.d). */
static inline void mt_zip_end(mt_zip *z) {
    size_t cd_off = z->out.n;
    mt_put(&z->out, z->cd.d, z->cd.n);
    mt_put32(&z->out, 0x06054b50);
    mt_put16(&z->out, 0);
    mt_put16(&z->out, 0);
    mt_put16(&z->out, (unsigned)z->count);
    mt_put16(&z->out, (unsigned)z->count);
    mt_put32(&z->out, (uint32_t)z->cd.n);
    mt_put32(&z->out, (uint32_t)cd_off);
    mt_put16(&z->out, 0);
    free(z->cd.d);
    z->cd.d = NULL;
}

/* A synthetic RGB frame (w,h,3) that differs per index. */
static inline void mt_synth(uint8_t *rgb, int w, int h, int idx) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            p[2] = (uint8_t)((idx * 37 + (x / 4 + y / 4) * 16) & 255);
        }
}

#endif
