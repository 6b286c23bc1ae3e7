/* Pillow's 8-bit resampling (libImaging/Resample.c semantics) for BICUBIC. */
#include "media/resize_pil.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define PIL_PRECISION_BITS (32 - 8 - 2)

/* Keys' cubic with a = -0.5, as Pillow's bicubic_filter. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* Weights of one axis: bounds[2*i] = first source index, bounds[2*i+1] = taps,
 * kk[i*ksize + t] fixed-point weight. Same arithmetic as Pillow (double
 * weights normalised to sum 1, then rounded half away from zero to 2^22). */
typedef struct {
    int out, in, ksize;
    int *bounds; /* (2*out) */
    int32_t *kk; /* (out, ksize) */
} axis_coeffs;

static sam2d_status axis_init(axis_coeffs *a, int in, int out) {
    double scale = (double)in / out, filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    a->in = in;
    a->out = out;
    a->ksize = ksize;
    a->bounds = sam_malloc(sizeof(int) * 2 * (size_t)out);
    a->kk = sam_malloc(sizeof(int32_t) * (size_t)ksize * (size_t)out);
    double *w = sam_malloc(sizeof(double) * (size_t)ksize);
    if (!a->bounds || !a->kk || !w) {
        sam_free(w);
        return SAM_ERR(SAM2D_ERR_NOMEM, "resize: no memory for %d taps x %d", ksize, out);
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = a->kk + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = 0.0;
            if (x < xmax) v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PIL_PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PIL_PRECISION_BITS));
        }
        a->bounds[2 * i] = xmin;
        a->bounds[2 * i + 1] = xmax;
    }
    sam_free(w);
    return SAM2D_OK;
}

static void axis_free(axis_coeffs *a) {
    sam_free(a->bounds);
    sam_free(a->kk);
    memset(a, 0, sizeof(*a));
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PIL_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PIL_PRECISION_BITS);
}

struct sam_resize_plan {
    int in_w, in_h, out_w, out_h, c;
    int need_h, need_v;
    axis_coeffs hx, vy;
    uint8_t *scratch; /* (in_h, out_w, c) horizontal-pass output */
    int32_t *acc;     /* (out_w * c) vertical-pass row accumulator */
};

sam2d_status sam_resize_plan_create(int in_w, int in_h, int out_w, int out_h, int channels,
                                    sam_resize_plan **out) {
    *out = NULL;
    if (in_w <= 0 || in_h <= 0 || out_w <= 0 || out_h <= 0 || channels < 1 || channels > 4)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "resize: bad sizes %dx%d -> %dx%d (%d channels)", in_w, in_h,
                       out_w, out_h, channels);
    sam_resize_plan *p = sam_calloc(1, sizeof(*p));
    if (!p) return SAM_ERR(SAM2D_ERR_NOMEM, "resize: no memory");
    p->in_w = in_w;
    p->in_h = in_h;
    p->out_w = out_w;
    p->out_h = out_h;
    p->c = channels;
    /* Pillow skips an axis whose size does not change (box is the full image). */
    p->need_h = out_w != in_w;
    p->need_v = out_h != in_h;
    sam2d_status s = SAM2D_OK;
    if (p->need_h) s = axis_init(&p->hx, in_w, out_w);
    if (s == SAM2D_OK && p->need_v) s = axis_init(&p->vy, in_h, out_h);
    if (s == SAM2D_OK && p->need_h && p->need_v) {
        p->scratch = sam_malloc(sam_resize_plan_scratch_bytes(p));
        if (!p->scratch) s = SAM_ERR(SAM2D_ERR_NOMEM, "resize: no memory for scratch");
    }
    if (s == SAM2D_OK && p->need_v) {
        p->acc = sam_malloc(sizeof(int32_t) * (size_t)out_w * channels);
        if (!p->acc) s = SAM_ERR(SAM2D_ERR_NOMEM, "resize: no memory for accumulator");
    }
    if (s != SAM2D_OK) {
        sam_resize_plan_free(p);
        return s;
    }
    *out = p;
    return SAM2D_OK;
}

size_t sam_resize_plan_scratch_bytes(const sam_resize_plan *p) {
    return (size_t)p->in_h * p->out_w * p->c;
}

void sam_resize_plan_free(sam_resize_plan *p) {
    if (!p) return;
    axis_free(&p->hx);
    axis_free(&p->vy);
    sam_free(p->scratch);
    sam_free(p->acc);
    sam_free(p);
}

/* Rows [y0,y1) of src (in_w wide) -> same rows of dst (out_w wide). Integer sums
 * are exact, so any summation order gives Pillow's result (no overflow: the
 * absolute weights sum to under 2^23, times 255, plus the rounding term). */
static void pass_horizontal(const axis_coeffs *a, const uint8_t *src, uint8_t *dst, int y0, int y1, int c) {
    for (int y = y0; y < y1; y++) {
        const uint8_t *row = src + (size_t)y * a->in * c;
        uint8_t *o = dst + (size_t)y * a->out * c;
        if (c == 3) {
            for (int i = 0; i < a->out; i++) {
                int xmin = a->bounds[2 * i], n = a->bounds[2 * i + 1];
                const int32_t *k = a->kk + (size_t)i * a->ksize;
                const uint8_t *p = row + (size_t)xmin * 3;
                int32_t s0 = 1 << (PIL_PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < n; x++) {
                    s0 += (int32_t)p[3 * x] * k[x];
                    s1 += (int32_t)p[3 * x + 1] * k[x];
                    s2 += (int32_t)p[3 * x + 2] * k[x];
                }
                o[3 * i] = clip8(s0);
                o[3 * i + 1] = clip8(s1);
                o[3 * i + 2] = clip8(s2);
            }
            continue;
        }
        for (int i = 0; i < a->out; i++) {
            int xmin = a->bounds[2 * i], n = a->bounds[2 * i + 1];
            const int32_t *k = a->kk + (size_t)i * a->ksize;
            for (int ch = 0; ch < c; ch++) {
                int32_t ss = 1 << (PIL_PRECISION_BITS - 1);
                const uint8_t *p = row + (size_t)xmin * c + ch;
                for (int x = 0; x < n; x++) ss += (int32_t)p[(size_t)x * c] * k[x];
                o[(size_t)i * c + ch] = clip8(ss);
            }
        }
    }
}

/* Row by row with a whole-row accumulator: the inner loop runs along memory
 * and vectorises. acc holds width*c int32. */
static void pass_vertical(const axis_coeffs *a, const uint8_t *src, uint8_t *dst, int width, int c, int32_t *acc) {
    size_t stride = (size_t)width * c;
    for (int i = 0; i < a->out; i++) {
        int ymin = a->bounds[2 * i], n = a->bounds[2 * i + 1];
        const int32_t *k = a->kk + (size_t)i * a->ksize;
        for (size_t x = 0; x < stride; x++) acc[x] = 1 << (PIL_PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *p = src + (size_t)(ymin + y) * stride;
            int32_t ky = k[y];
            for (size_t x = 0; x < stride; x++) acc[x] += (int32_t)p[x] * ky;
        }
        uint8_t *o = dst + (size_t)i * stride;
        for (size_t x = 0; x < stride; x++) o[x] = clip8(acc[x]);
    }
}

sam2d_status sam_resize_plan_run(sam_resize_plan *p, const uint8_t *src, uint8_t *dst, uint8_t *scratch) {
    if (!p || !src || !dst) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "resize: NULL argument");
    if (!p->need_h && !p->need_v) {
        memcpy(dst, src, (size_t)p->in_w * p->in_h * p->c);
    } else if (p->need_h && !p->need_v) {
        pass_horizontal(&p->hx, src, dst, 0, p->in_h, p->c);
    } else if (!p->need_h) {
        pass_vertical(&p->vy, src, dst, p->in_w, p->c, p->acc);
    } else {
        uint8_t *tmp = scratch ? scratch : p->scratch;
        /* Only the rows the vertical pass reads need the horizontal pass. */
        int y0 = p->vy.bounds[0];
        int y1 = p->vy.bounds[2 * (p->out_h - 1)] + p->vy.bounds[2 * (p->out_h - 1) + 1];
        pass_horizontal(&p->hx, src, tmp, y0, y1, p->c);
        pass_vertical(&p->vy, tmp, dst, p->out_w, p->c, p->acc);
    }
    return SAM2D_OK;
}

sam2d_status sam_resize_pil_bicubic(const uint8_t *src, int in_w, int in_h, int channels, uint8_t *dst, int out_w,
                                    int out_h) {
    sam_resize_plan *p;
    SAM_TRY(sam_resize_plan_create(in_w, in_h, out_w, out_h, channels, &p));
    sam2d_status s = sam_resize_plan_run(p, src, dst, NULL);
    sam_resize_plan_free(p);
    return s;
}

void sam_frame_normalize(const uint8_t *rgb, int size, float *chw) {
    /* The reference divides by 255 in float64, stores float32, then subtracts
     * and divides by float32 mean/std. */
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float stdv[3] = {0.229f, 0.224f, 0.225f};
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float f = (float)((double)v / 255.0);
            f = f - mean[c];
            lut[c][v] = f / stdv[c];
        }
    size_t hw = (size_t)size * size;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) chw[(size_t)c * hw + i] = lut[c][rgb[i * 3 + c]];
}
