/* Input preprocessing with the reference's arithmetic (see preprocess.h). */
#include "model/preprocess.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threadpool.h"

const float sam_img_mean[3] = {0.485f, 0.456f, 0.406f};
const float sam_img_std[3] = {0.229f, 0.224f, 0.225f};

/* ---- plain bilinear (torch upsample_bilinear2d, align_corners=False) ---- */

typedef struct {
    int64_t i0, i1;
    float w0, w1;
} lin_tap;

/* Source taps of one axis exactly as torch computes them in float. */
static void linear_taps(lin_tap *t, int in, int out) {
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float real = scale * ((float)i + 0.5f) - 0.5f;
        if (real < 0) real = 0;
        int64_t i0 = (int64_t)real; /* real >= 0: truncation is floor */
        if (i0 > in - 1) i0 = in - 1;
        float lambda = real - (float)i0;
        if (lambda < 0) lambda = 0;
        if (lambda > 1) lambda = 1;
        t[i].i0 = i0;
        t[i].i1 = i0 + (i0 < in - 1 ? 1 : 0);
        t[i].w1 = lambda;
        t[i].w0 = 1.0f - lambda;
    }
}

/* ---- antialiased bilinear (torch _upsample_bilinear2d_aa): separable, width first ---- */

typedef struct {
    int n;       /* taps per output */
    int *xmin;   /* (out) */
    int *xsize;  /* (out) */
    float *w;    /* (out, n) */
} aa_taps;

static float aa_filter(float x) {
    if (x < 0) x = -x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* Mirrors torch's types: center and weights in float, the argument of the
 * filter evaluated in double and rounded to float. */
/* The normalised triangle-filter taps of every output index (buffers already sized). */
static void aa_taps_fill(aa_taps *t, int in, int out) {
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? 1.0f * scale : 1.0f;
    float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    for (int i = 0; i < out; i++) {
        float center = (float)(scale * (i + 0.5));
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xmax = (int64_t)(center + support + 0.5);
        if (xmax > in) xmax = in;
        int xsize = (int)(xmax - xmin);
        if (xsize > t->n) xsize = t->n;
        float *w = t->w + (size_t)i * (size_t)t->n;
        float total = 0;
        for (int j = 0; j < xsize; j++) {
            float arg = (float)(((float)(j + xmin) - center + 0.5) * invscale);
            w[j] = aa_filter(arg);
            total += w[j];
        }
        for (int j = 0; j < xsize; j++)
            if (total != 0.0f) w[j] /= total;
        for (int j = xsize; j < t->n; j++) w[j] = 0;
        t->xmin[i] = (int)xmin;
        t->xsize[i] = xsize;
    }
}

static int aa_taps_per_output(int in, int out) {
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? 1.0f * scale : 1.0f;
    return (int)ceilf(support) * 2 + 1;
}

static int aa_taps_make(aa_taps *t, int in, int out) {
    t->n = aa_taps_per_output(in, out);
    t->xmin = sam_malloc(sizeof(int) * (size_t)out);
    t->xsize = sam_malloc(sizeof(int) * (size_t)out);
    t->w = sam_malloc(sizeof(float) * (size_t)out * (size_t)t->n);
    if (!t->xmin || !t->xsize || !t->w) return -1;
    aa_taps_fill(t, in, out);
    return 0;
}

static void aa_taps_free(aa_taps *t) {
    sam_free(t->xmin);
    sam_free(t->xsize);
    sam_free(t->w);
}

static int resize_aa(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo) {
    aa_taps th = {0}, tw = {0};
    float *tmp = NULL;
    int rc = -1;
    if (aa_taps_make(&tw, Wi, Wo) || aa_taps_make(&th, Hi, Ho)) goto done;
    tmp = sam_malloc(sizeof(float) * (size_t)C * (size_t)Hi * (size_t)Wo);
    if (!tmp) goto done;
    /* Horizontal pass: (C, Hi, Wi) -> (C, Hi, Wo). torch skips a pass whose size is unchanged. */
    const float *src = x;
    if (Wo != Wi) {
        for (int64_t r = 0; r < (int64_t)C * Hi; r++) {
            const float *row = x + r * Wi;
            float *o = tmp + r * Wo;
            for (int i = 0; i < Wo; i++) {
                const float *w = tw.w + (size_t)i * (size_t)tw.n;
                const float *s = row + tw.xmin[i];
                float t = s[0] * w[0];
                for (int j = 1; j < tw.xsize[i]; j++) t += s[j] * w[j];
                o[i] = t;
            }
        }
        src = tmp;
    }
    /* Vertical pass: (C, Hi, Wo) -> (C, Ho, Wo). */
    for (int c = 0; c < C; c++) {
        const float *plane = src + (size_t)c * Hi * Wo;
        float *o = y + (size_t)c * Ho * Wo;
        if (Ho == Hi) {
            memcpy(o, plane, sizeof(float) * (size_t)Hi * Wo);
            continue;
        }
        for (int i = 0; i < Ho; i++) {
            const float *w = th.w + (size_t)i * (size_t)th.n;
            const float *s = plane + (size_t)th.xmin[i] * Wo;
            for (int xo = 0; xo < Wo; xo++) {
                float t = s[xo] * w[0];
                for (int j = 1; j < th.xsize[i]; j++) t += s[(size_t)j * Wo + xo] * w[j];
                o[(size_t)i * Wo + xo] = t;
            }
        }
    }
    rc = 0;
done:
    aa_taps_free(&tw);
    aa_taps_free(&th);
    sam_free(tmp);
    return rc;
}

static int resize_plain(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo) {
    lin_tap *th = sam_malloc(sizeof(lin_tap) * (size_t)Ho);
    lin_tap *tw = sam_malloc(sizeof(lin_tap) * (size_t)Wo);
    if (!th || !tw) {
        sam_free(th);
        sam_free(tw);
        return -1;
    }
    linear_taps(th, Hi, Ho);
    linear_taps(tw, Wi, Wo);
    for (int c = 0; c < C; c++) {
        const float *p = x + (size_t)c * Hi * Wi;
        float *o = y + (size_t)c * Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            const float *r0 = p + th[i].i0 * Wi, *r1 = p + th[i].i1 * Wi;
            for (int j = 0; j < Wo; j++) {
                /* Same association as torch: h-weights applied to the w-interpolated rows. */
                float t0 = r0[tw[j].i0] * tw[j].w0;
                t0 += r0[tw[j].i1] * tw[j].w1;
                float t1 = r1[tw[j].i0] * tw[j].w0;
                t1 += r1[tw[j].i1] * tw[j].w1;
                float v = t0 * th[i].w0;
                v += t1 * th[i].w1;
                o[(size_t)i * Wo + j] = v;
            }
        }
    }
    sam_free(th);
    sam_free(tw);
    return 0;
}

void sam_resize_bilinear_host(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo, bool antialias) {
    /* Antialias only changes shrinking axes; torch's aa kernel handles both anyway. */
    int rc = antialias ? resize_aa(y, x, C, Hi, Wi, Ho, Wo) : resize_plain(y, x, C, Hi, Wi, Ho, Wo);
    if (rc != 0) memset(y, 0, sizeof(float) * (size_t)C * Ho * Wo);
}

/* ---- the image predictor's path straight from uint8 (no float copy of the input) ---- */

/* Bump carving of the caller's scratch, 64-byte aligned. */
typedef struct {
    unsigned char *p;
    size_t left;
} carve;

static void *carve_take(carve *c, size_t bytes) {
    size_t pad = (64 - ((uintptr_t)c->p & 63)) & 63;
    if (bytes + pad > c->left) return NULL;
    void *r = c->p + pad;
    c->p += pad + bytes;
    c->left -= pad + bytes;
    return r;
}

static size_t aa_taps_bytes(int in, int out) {
    return 3 * 64 + sizeof(int) * 2 * (size_t)out + sizeof(float) * (size_t)out * aa_taps_per_output(in, out);
}

size_t sam_preprocess_scratch_bytes(int H, int W, int S, bool antialias) {
    if (H <= 0 || W <= 0 || S <= 0) return 0;
    if (!antialias) return 2 * 64 + sizeof(lin_tap) * ((size_t)S + S);
    return aa_taps_bytes(W, S) + aa_taps_bytes(H, S) + 64 + sizeof(float) * (size_t)3 * H * S;
}

/* aa_taps_make into carved memory (no allocation). */
static int aa_taps_carve(aa_taps *t, int in, int out, carve *c) {
    t->n = aa_taps_per_output(in, out);
    t->xmin = carve_take(c, sizeof(int) * (size_t)out);
    t->xsize = carve_take(c, sizeof(int) * (size_t)out);
    t->w = carve_take(c, sizeof(float) * (size_t)out * t->n);
    if (!t->xmin || !t->xsize || !t->w) return -1;
    aa_taps_fill(t, in, out);
    return 0;
}

sam2d_status sam_preprocess_image_scratch(const uint8_t *rgb, int H, int W, int S, bool antialias, float *out,
                                          void *scratch, size_t scratch_bytes) {
    if (!rgb || !out || H <= 0 || W <= 0 || S <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "preprocess: bad image %dx%d -> %d", H, W, S);
    size_t need = sam_preprocess_scratch_bytes(H, W, S, antialias);
    if (!scratch || scratch_bytes < need)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "preprocess: scratch of %zu bytes, need %zu", scratch_bytes, need);
    /* ToTensor's value of each byte: u8 / 255 in float32. */
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (float)v / 255.0f;
    float mean[3], sd[3];
    memcpy(mean, sam_img_mean, sizeof(mean));
    memcpy(sd, sam_img_std, sizeof(sd));
    carve c = {scratch, scratch_bytes};

    if (H == S && W == S) { /* torch returns the input unchanged when sizes match */
        for (size_t i = 0; i < (size_t)S * S * 3; i++) out[i] = (lut[rgb[i]] - mean[i % 3]) / sd[i % 3];
        return SAM2D_OK;
    }
    if (!antialias) {
        lin_tap *th = carve_take(&c, sizeof(lin_tap) * (size_t)S);
        lin_tap *tw = carve_take(&c, sizeof(lin_tap) * (size_t)S);
        linear_taps(th, H, S);
        linear_taps(tw, W, S);
        for (int i = 0; i < S; i++) {
            const uint8_t *r0 = rgb + (size_t)th[i].i0 * W * 3, *r1 = rgb + (size_t)th[i].i1 * W * 3;
            for (int j = 0; j < S; j++) {
                const int64_t a = tw[j].i0 * 3, b = tw[j].i1 * 3;
                float *o = out + ((size_t)i * S + j) * 3;
                for (int ch = 0; ch < 3; ch++) {
                    /* Same association as resize_plain (torch's order). */
                    float t0 = lut[r0[a + ch]] * tw[j].w0;
                    t0 += lut[r0[b + ch]] * tw[j].w1;
                    float t1 = lut[r1[a + ch]] * tw[j].w0;
                    t1 += lut[r1[b + ch]] * tw[j].w1;
                    float v = t0 * th[i].w0;
                    v += t1 * th[i].w1;
                    o[ch] = (v - mean[ch]) / sd[ch];
                }
            }
        }
        return SAM2D_OK;
    }
    /* Antialias: horizontal pass into tmp (H, S, 3), then vertical, as torch (width first). */
    aa_taps tw, th;
    if (aa_taps_carve(&tw, W, S, &c) || aa_taps_carve(&th, H, S, &c))
        return SAM_ERR(SAM2D_ERR_INTERNAL, "preprocess: scratch accounting");
    float *tmp = carve_take(&c, sizeof(float) * (size_t)3 * H * S);
    if (!tmp) return SAM_ERR(SAM2D_ERR_INTERNAL, "preprocess: scratch accounting");
    for (int y = 0; y < H; y++) {
        const uint8_t *row = rgb + (size_t)y * W * 3;
        float *o = tmp + (size_t)y * S * 3;
        for (int x = 0; x < S; x++) {
            const float *w = tw.w + (size_t)x * tw.n;
            const uint8_t *sp = row + (size_t)tw.xmin[x] * 3;
            for (int ch = 0; ch < 3; ch++) {
                float t;
                if (W == S) { /* unchanged axis: torch leaves it as is */
                    t = lut[row[(size_t)x * 3 + ch]];
                } else {
                    t = lut[sp[ch]] * w[0];
                    for (int j = 1; j < tw.xsize[x]; j++) t += lut[sp[(size_t)j * 3 + ch]] * w[j];
                }
                o[(size_t)x * 3 + ch] = t;
            }
        }
    }
    for (int i = 0; i < S; i++) {
        const float *w = th.w + (size_t)i * th.n;
        const float *sp = tmp + (size_t)th.xmin[i] * S * 3;
        float *o = out + (size_t)i * S * 3;
        for (int x = 0; x < S * 3; x++) {
            float t;
            if (H == S) {
                t = tmp[(size_t)i * S * 3 + x];
            } else {
                t = sp[x] * w[0];
                for (int j = 1; j < th.xsize[i]; j++) t += sp[(size_t)j * S * 3 + x] * w[j];
            }
            o[x] = (t - mean[x % 3]) / sd[x % 3];
        }
    }
    return SAM2D_OK;
}

sam2d_status sam_preprocess_image(sam_backend *be, const uint8_t *rgb, int H, int W, int S, bool antialias,
                                  float *out) {
    (void)be;
    if (!rgb || !out || H <= 0 || W <= 0 || S <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "preprocess: bad image %dx%d -> %d", H, W, S);
    size_t n = sam_preprocess_scratch_bytes(H, W, S, antialias);
    void *scratch = sam_malloc(n);
    if (!scratch) return SAM_ERR(SAM2D_ERR_NOMEM, "preprocess: out of memory (%zu bytes) for a %dx%d image", n, H, W);
    sam2d_status st = sam_preprocess_image_scratch(rgb, H, W, S, antialias, out, scratch, n);
    sam_free(scratch);
    return st;
}

void sam_normalize_u8(const uint8_t *rgb, int S, float *out) {
    /* Pixel value -> float32(v / 255.0 in double), as numpy does before torch sees it. */
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (float)(v / 255.0);
    for (size_t i = 0; i < (size_t)S * S; i++)
        for (int c = 0; c < 3; c++) out[i * 3 + c] = (lut[rgb[i * 3 + c]] - sam_img_mean[c]) / sam_img_std[c];
}
