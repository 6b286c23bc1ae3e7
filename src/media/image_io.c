/* JPEG (libjpeg-turbo) and PNG (libpng) decode/encode, Pillow-compatible RGB. */
#include "media/image_io.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"

/* Never allocate an image buffer above this, whatever the limits say. */
#define SAM_IMAGE_MAX_BYTES ((size_t)1 << 31)

sam_image_format sam_image_sniff(const uint8_t *d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return SAM_IMAGE_JPEG;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n >= 8 && memcmp(d, png_sig, 8) == 0) return SAM_IMAGE_PNG;
    return SAM_IMAGE_UNKNOWN;
}

/* ---------------- JPEG ---------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_err_exit(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* libjpeg warns (and goes on) on corrupt data; a truncated file is still an error for us. */
static void jpeg_err_emit(j_common_ptr c, int level) {
    jpeg_err *e = (jpeg_err *)c->err;
    if (level < 0 && e->pub.num_warnings++ == 0) c->err->format_message(c, e->msg);
}

/* A progressive JPEG can hold thousands of tiny scans that cost seconds each:
 * stop after a number no real encoder writes. */
#define SAM_JPEG_MAX_SCANS 1000
static void jpeg_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (c->is_decompressor && d->input_scan_number > SAM_JPEG_MAX_SCANS) {
        jpeg_err *e = (jpeg_err *)c->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", SAM_JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

static sam2d_status check_dims(int w, int h, int max_dimension, const char *what) {
    if (w <= 0 || h <= 0) return SAM_ERR(SAM2D_ERR_FORMAT, "%s: invalid size %dx%d", what, w, h);
    if (max_dimension > 0 && (w > max_dimension || h > max_dimension))
        return SAM_ERR(SAM2D_ERR_LIMIT, "Video dimensions exceed maximum (%dx%d > %d); raise MAX_FRAME_DIMENSION", w,
                       h, max_dimension);
    if ((size_t)w * (size_t)h * 3 > SAM_IMAGE_MAX_BYTES)
        return SAM_ERR(SAM2D_ERR_LIMIT, "%s: image too large (%dx%d)", what, w, h);
    return SAM2D_OK;
}

/* Pillow's CMYK -> RGB (after un-inverting Adobe CMYK). */
static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static sam2d_status jpeg_decode(const uint8_t *data, size_t n, int max_dimension, int want_w, int want_h,
                                uint8_t *into, uint8_t **rgb_out, int *wo, int *ho) {
    struct jpeg_decompress_struct ci;
    jpeg_err je;
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    memset(&ci, 0, sizeof(ci));
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_err_exit;
    je.pub.emit_message = jpeg_err_emit;
    je.msg[0] = 0;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        if (!into) sam_free(rgb);
        sam_free(row);
        return SAM_ERR(SAM2D_ERR_FORMAT, "JPEG: %s", je.msg);
    }
    jpeg_create_decompress(&ci);
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_progress};
    ci.progress = &progress;
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    int w = (int)ci.image_width, h = (int)ci.image_height;
    sam2d_status s = check_dims(w, h, max_dimension, "JPEG");
    if (s == SAM2D_OK && into && (w != want_w || h != want_h))
        s = SAM_ERR(SAM2D_ERR_FORMAT, "JPEG is %dx%d, expected %dx%d", w, h, want_w, want_h);
    if (s != SAM2D_OK) {
        jpeg_destroy_decompress(&ci);
        return s;
    }
    /* Pillow's defaults: ISLOW IDCT, fancy upsampling. */
    ci.dct_method = JDCT_ISLOW;
    ci.do_fancy_upsampling = TRUE;
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&ci);
    rgb = into ? into : sam_malloc((size_t)w * h * 3);
    if (!rgb) {
        jpeg_destroy_decompress(&ci);
        return SAM_ERR(SAM2D_ERR_NOMEM, "JPEG: no memory for %dx%d", w, h);
    }
    if (cmyk) {
        row = sam_malloc((size_t)w * 4);
        if (!row) longjmp(je.jb, 1);
    }
    while (ci.output_scanline < ci.output_height) {
        uint8_t *dst = rgb + (size_t)ci.output_scanline * w * 3;
        JSAMPROW rp = cmyk ? row : dst;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) break;
        if (cmyk) {
            for (int x = 0; x < w; x++) {
                const uint8_t *p = row + 4 * x;
                int c = p[0], m = p[1], y = p[2], k = p[3];
                if (ci.saw_Adobe_marker) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
                int nk = 255 - k;
                dst[3 * x + 0] = (uint8_t)(nk - muldiv255(c, nk));
                dst[3 * x + 1] = (uint8_t)(nk - muldiv255(m, nk));
                dst[3 * x + 2] = (uint8_t)(nk - muldiv255(y, nk));
            }
        }
    }
    int warned = je.pub.num_warnings > 0;
    if (!warned) jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    sam_free(row);
    if (warned) {
        if (!into) sam_free(rgb);
        return SAM_ERR(SAM2D_ERR_FORMAT, "JPEG: corrupt or truncated data (%s)", je.msg);
    }
    if (rgb_out) *rgb_out = rgb;
    if (wo) *wo = w;
    if (ho) *ho = h;
    return SAM2D_OK;
}

/* ---------------- PNG ---------------- */

typedef struct {
    const uint8_t *d;
    size_t n, pos;
} png_mem;

static void png_read_mem(png_structp p, png_bytep out, png_size_t len) {
    png_mem *m = png_get_io_ptr(p);
    if (len > m->n - m->pos) png_error(p, "truncated PNG data");
    memcpy(out, m->d + m->pos, len);
    m->pos += len;
}

static void png_err_fn(png_structp p, png_const_charp msg) {
    char *buf = png_get_error_ptr(p);
    snprintf(buf, 200, "%s", msg);
    png_longjmp(p, 1);
}
static void png_warn_fn(png_structp p, png_const_charp msg) { (void)p, (void)msg; }

sam2d_status sam_png_decode_mode(const uint8_t *data, size_t n, int max_dimension, int mode, int want_w,
                                 int want_h, uint8_t *into, uint8_t **out, int *wo, int *ho) {
    char msg[200] = "";
    png_mem m = {data, n, 0};
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, msg, png_err_fn, png_warn_fn);
    if (!p) return SAM_ERR(SAM2D_ERR_NOMEM, "PNG: no memory");
    png_infop info = png_create_info_struct(p);
    uint8_t *volatile buf = NULL;
    uint16_t *volatile row16 = NULL;
    if (!info) {
        png_destroy_read_struct(&p, NULL, NULL);
        return SAM_ERR(SAM2D_ERR_NOMEM, "PNG: no memory");
    }
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_read_struct(&p, &info, NULL);
        if (!into) sam_free(buf);
        sam_free(row16);
        return SAM_ERR(SAM2D_ERR_FORMAT, "PNG: %s", msg);
    }
    png_set_read_fn(p, &m, png_read_mem);
    /* Bound libpng's own allocations (a text chunk bomb, a huge row). */
    png_set_chunk_malloc_max(p, 64u << 20);
    png_read_info(p, info);
    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(p, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    int w = (int)(w32 > 0x7fffffff ? 0 : w32), h = (int)(h32 > 0x7fffffff ? 0 : h32);
    sam2d_status s = check_dims(w, h, max_dimension, "PNG");
    if (s == SAM2D_OK && into && (w != want_w || h != want_h))
        s = SAM_ERR(SAM2D_ERR_FORMAT, "PNG is %dx%d, expected %dx%d", w, h, want_w, want_h);
    if (s != SAM2D_OK) {
        png_destroy_read_struct(&p, &info, NULL);
        return s;
    }
    int gray16_clip = 0;
    if (mode == 3) {
        if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
        if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
        if (ctype == PNG_COLOR_TYPE_GRAY && depth == 16) {
            /* Pillow opens 16-bit grey as mode I and convert('RGB') clips to 255. */
            gray16_clip = 1;
            png_set_swap(p); /* host little-endian u16 */
        } else if (depth == 16) {
            png_set_strip_16(p); /* Pillow keeps the high byte */
        }
        if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(p);
        if (ctype == PNG_COLOR_TYPE_PALETTE && png_get_valid(p, info, PNG_INFO_tRNS)) png_set_strip_alpha(p);
        if (!gray16_clip && (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA))
            png_set_gray_to_rgb(p);
    } else {
        if (depth < 8) png_set_packing(p);
        if (depth == 16) png_set_strip_16(p);
        if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(p);
        if (ctype & PNG_COLOR_MASK_COLOR && ctype != PNG_COLOR_TYPE_PALETTE) png_set_rgb_to_gray_fixed(p, 1, -1, -1);
    }
    int passes = png_set_interlace_handling(p);
    png_read_update_info(p, info);
    size_t rowbytes = png_get_rowbytes(p, info);
    int chans = png_get_channels(p, info);
    size_t want_row = (size_t)w * (gray16_clip ? 2 : (size_t)mode);
    if (rowbytes != want_row || (!gray16_clip && chans != mode)) {
        png_destroy_read_struct(&p, &info, NULL);
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "PNG: unsupported layout (type %d, depth %d)", ctype, depth);
    }
    buf = into ? into : sam_malloc((size_t)w * h * mode);
    if (!buf) {
        png_destroy_read_struct(&p, &info, NULL);
        return SAM_ERR(SAM2D_ERR_NOMEM, "PNG: no memory for %dx%d", w, h);
    }
    if (gray16_clip) {
        /* Interlaced 16-bit grey needs the whole image; keep it simple and support rows of
         * a non-interlaced image, else the full u16 image. */
        row16 = sam_malloc((size_t)w * 2 * (passes > 1 ? (size_t)h : 1));
        if (!row16) png_error(p, "no memory");
        for (int pass = 0; pass < passes; pass++)
            for (int y = 0; y < h; y++) {
                uint16_t *r = row16 + (passes > 1 ? (size_t)y * w : 0);
                png_read_row(p, (png_bytep)r, NULL);
                if (pass == passes - 1)
                    for (int x = 0; x < w; x++) {
                        uint8_t v = r[x] > 255 ? 255 : (uint8_t)r[x];
                        uint8_t *o = buf + ((size_t)y * w + x) * 3;
                        o[0] = o[1] = o[2] = v;
                    }
            }
    } else {
        for (int pass = 0; pass < passes; pass++)
            for (int y = 0; y < h; y++) png_read_row(p, buf + (size_t)y * rowbytes, NULL);
    }
    png_destroy_read_struct(&p, &info, NULL);
    sam_free(row16);
    if (out) *out = buf;
    if (wo) *wo = w;
    if (ho) *ho = h;
    return SAM2D_OK;
}

/* ---------------- common ---------------- */

sam2d_status sam_image_probe(const uint8_t *data, size_t n, int *width, int *height) {
    sam_image_format f = sam_image_sniff(data, n);
    if (f == SAM_IMAGE_PNG) {
        if (n < 24 || memcmp(data + 12, "IHDR", 4) != 0) return SAM_ERR(SAM2D_ERR_FORMAT, "PNG: no IHDR");
        uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
        uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
        if (w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff)
            return SAM_ERR(SAM2D_ERR_FORMAT, "PNG: invalid size %ux%u", w, h);
        *width = (int)w;
        *height = (int)h;
        return SAM2D_OK;
    }
    if (f == SAM_IMAGE_JPEG) {
        struct jpeg_decompress_struct ci;
        jpeg_err je;
        memset(&ci, 0, sizeof(ci));
        ci.err = jpeg_std_error(&je.pub);
        je.pub.error_exit = jpeg_err_exit;
        je.pub.emit_message = jpeg_err_emit;
        if (setjmp(je.jb)) {
            jpeg_destroy_decompress(&ci);
            return SAM_ERR(SAM2D_ERR_FORMAT, "JPEG: %s", je.msg);
        }
        jpeg_create_decompress(&ci);
        jpeg_mem_src(&ci, data, (unsigned long)n);
        jpeg_read_header(&ci, TRUE);
        *width = (int)ci.image_width;
        *height = (int)ci.image_height;
        jpeg_destroy_decompress(&ci);
        return SAM2D_OK;
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "not a JPEG or PNG image");
}

sam2d_status sam_image_decode(const uint8_t *data, size_t n, int max_dimension, uint8_t **rgb, int *width,
                              int *height) {
    *rgb = NULL;
    switch (sam_image_sniff(data, n)) {
    case SAM_IMAGE_JPEG: return jpeg_decode(data, n, max_dimension, 0, 0, NULL, rgb, width, height);
    case SAM_IMAGE_PNG: return sam_png_decode_mode(data, n, max_dimension, 3, 0, 0, NULL, rgb, width, height);
    default: return SAM_ERR(SAM2D_ERR_FORMAT, "not a JPEG or PNG image (%zu bytes)", n);
    }
}

sam2d_status sam_image_decode_into(const uint8_t *data, size_t n, int width, int height, uint8_t *rgb) {
    switch (sam_image_sniff(data, n)) {
    case SAM_IMAGE_JPEG: return jpeg_decode(data, n, 0, width, height, rgb, NULL, NULL, NULL);
    case SAM_IMAGE_PNG: return sam_png_decode_mode(data, n, 0, 3, width, height, rgb, NULL, NULL, NULL);
    default: return SAM_ERR(SAM2D_ERR_FORMAT, "not a JPEG or PNG image (%zu bytes)", n);
    }
}

sam2d_status sam_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return SAM_ERR(SAM2D_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return SAM_ERR(SAM2D_ERR_IO, "%s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        fclose(f);
        return SAM_ERR(SAM2D_ERR_LIMIT, "%s is too large (%zu bytes > %zu)", path, size, max_bytes);
    }
    uint8_t *buf = sam_malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return SAM_ERR(SAM2D_ERR_NOMEM, "no memory to read %s (%zu bytes)", path, size);
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    fclose(f);
    if (got != size) {
        sam_free(buf);
        return SAM_ERR(SAM2D_ERR_IO, "short read on %s", path);
    }
    *data = buf;
    *n = size;
    return SAM2D_OK;
}

sam2d_status sam_write_file(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return SAM_ERR(SAM2D_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    size_t put = n ? fwrite(data, 1, n, f) : 0;
    int bad = fclose(f) != 0 || put != n;
    if (bad) return SAM_ERR(SAM2D_ERR_IO, "write failed on %s", path);
    return SAM2D_OK;
}

sam2d_status sam_image_decode_file(const char *path, int max_dimension, uint8_t **rgb, int *width, int *height) {
    uint8_t *d;
    size_t n;
    *rgb = NULL;
    SAM_TRY(sam_read_file(path, 0, &d, &n));
    sam2d_status s = sam_image_decode(d, n, max_dimension, rgb, width, height);
    sam_free(d);
    if (s != SAM2D_OK) return sam_error_wrap(s, "%s", path);
    return s;
}

/* ---------------- encoders ---------------- */

sam2d_status sam_jpeg_encode(const uint8_t *rgb, int width, int height, int quality, uint8_t **out,
                             size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!rgb || width <= 0 || height <= 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "JPEG encode: bad image");
    struct jpeg_compress_struct ci;
    jpeg_err je;
    unsigned char *volatile mem = NULL;
    unsigned long memlen = 0;
    memset(&ci, 0, sizeof(ci));
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_err_exit;
    if (setjmp(je.jb)) {
        jpeg_destroy_compress(&ci);
        free(mem);
        return SAM_ERR(SAM2D_ERR_INTERNAL, "JPEG encode: %s", je.msg);
    }
    jpeg_create_compress(&ci);
    unsigned char *m = NULL;
    jpeg_mem_dest(&ci, &m, &memlen);
    ci.image_width = (JDIMENSION)width;
    ci.image_height = (JDIMENSION)height;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = (JSAMPROW)(rgb + (size_t)ci.next_scanline * width * 3);
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    mem = m;
    jpeg_destroy_compress(&ci);
    uint8_t *buf = sam_malloc(memlen);
    if (!buf) {
        free(mem);
        return SAM_ERR(SAM2D_ERR_NOMEM, "JPEG encode: no memory");
    }
    memcpy(buf, mem, memlen);
    free(mem);
    *out = buf;
    *out_len = memlen;
    return SAM2D_OK;
}

typedef struct {
    uint8_t *d;
    size_t n, cap;
    int oom;
} png_wbuf;

static void png_write_mem(png_structp p, png_bytep data, png_size_t len) {
    png_wbuf *b = png_get_io_ptr(p);
    if (b->oom) return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len) cap *= 2;
        uint8_t *nd = sam_realloc(b->d, cap);
        if (!nd) {
            b->oom = 1;
            return;
        }
        b->d = nd;
        b->cap = cap;
    }
    memcpy(b->d + b->n, data, len);
    b->n += len;
}
static void png_flush_mem(png_structp p) { (void)p; }

sam2d_status sam_png_encode_raw(const uint8_t *pixels, int width, int height, int ctype, const uint8_t *palette,
                                int n_palette, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!pixels || width <= 0 || height <= 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "PNG encode: bad image");
    char msg[200] = "";
    png_wbuf b = {0};
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, png_err_fn, png_warn_fn);
    if (!p) return SAM_ERR(SAM2D_ERR_NOMEM, "PNG encode: no memory");
    png_infop info = png_create_info_struct(p);
    if (!info || setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        sam_free(b.d);
        return SAM_ERR(SAM2D_ERR_INTERNAL, "PNG encode: %s", msg);
    }
    int chans = ctype == PNG_COLOR_TYPE_RGB ? 3 : 1;
    png_set_write_fn(p, &b, png_write_mem, png_flush_mem);
    png_set_compression_level(p, 6);
    png_set_IHDR(p, info, (png_uint_32)width, (png_uint_32)height, 8, ctype, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < n_palette; i++) {
            pal[i].red = palette[3 * i];
            pal[i].green = palette[3 * i + 1];
            pal[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(p, info, pal, n_palette);
    }
    png_write_info(p, info);
    for (int y = 0; y < height; y++) png_write_row(p, (png_const_bytep)(pixels + (size_t)y * width * chans));
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    if (b.oom) {
        sam_free(b.d);
        return SAM_ERR(SAM2D_ERR_NOMEM, "PNG encode: no memory");
    }
    *out = b.d;
    *out_len = b.n;
    return SAM2D_OK;
}

sam2d_status sam_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out,
                            size_t *out_len) {
    if (channels != 1 && channels != 3) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "PNG encode: %d channels", channels);
    return sam_png_encode_raw(pixels, width, height, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                              NULL, 0, out, out_len);
}
