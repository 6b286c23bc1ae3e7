/* Resampling: bilinear resize as torch.nn.functional.interpolate
 * (align_corners=False, with or without antialias), nearest upsample by
 * integer factors, and 2x2 max pooling. Index/weight arithmetic is in float,
 * as PyTorch does it for float tensors, so taps and weights match bit for bit
 * in the common cases. */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "ops/cpu/cpu_internal.h"

/* ---- plain bilinear ------------------------------------------------------ */

/* Source taps of one axis: i0/i1 and weights l0/l1 for every output index. */
static void linear_taps(int in, int out, int32_t *i0, int32_t *i1, float *l0, float *l1) {
    const float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        /* volatile keeps the product rounded on its own (no FMA), as in
         * torch's two-step float expression */
        volatile float prod = scale * ((float)d + 0.5f);
        float src = prod - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int a = (int)src;
        if (a > in - 1) a = in - 1;
        float lam = src - (float)a;
        if (lam > 1.0f) lam = 1.0f;
        i0[d] = a;
        i1[d] = a + (a < in - 1 ? 1 : 0);
        l1[d] = lam;
        l0[d] = 1.0f - lam;
    }
}

typedef struct {
    float *y;       /* (C, Ho, Wo) */
    const float *x; /* (C, Hi, Wi) */
    int Hi, Wi, Ho, Wo;
    const int32_t *h0, *h1, *w0, *w1;
    const float *hl0, *hl1, *wl0, *wl1; /* (Ho), (Ho), (Wo), (Wo): weights of the two taps */
} bl_ctx;

static void bl_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const bl_ctx *c = vctx;
    for (int64_t r = r0; r < r1; r++) { /* r = ch*Ho + oy */
        int64_t ch = r / c->Ho;
        int oy = (int)(r % c->Ho);
        const float *xa = c->x + (ch * c->Hi + c->h0[oy]) * c->Wi;
        const float *xb = c->x + (ch * c->Hi + c->h1[oy]) * c->Wi;
        const float la = c->hl0[oy], lb = c->hl1[oy];
        float *y = c->y + r * c->Wo;
        for (int ox = 0; ox < c->Wo; ox++) {
            const int a = c->w0[ox], b = c->w1[ox];
            const float wa = c->wl0[ox], wb = c->wl1[ox];
            /* Same nesting as PyTorch: interpolate along W inside, then H. */
            float t0 = xa[a] * wa;
            t0 += xa[b] * wb;
            float t1 = xb[a] * wa;
            t1 += xb[b] * wb;
            float o = t0 * la;
            o += t1 * lb;
            y[ox] = o;
        }
    }
}

/* ---- antialiased bilinear (separable triangle filter) -------------------- */

static float tri(float x) {
    if (x < 0.0f) x = -x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* Window start/size and normalised weights (out, ksize) of one axis. The
 * float/double mix of each expression follows PyTorch's float path so that
 * window bounds and weights round the same way. */
static void aa_taps(int in, int out, int ksize, int32_t *xmin, int32_t *xsize, float *wts) {
    const float scale = (float)in / (float)out;
    const float support = scale >= 1.0f ? (float)(1.0 * scale) : 1.0f; /* bilinear: interp_size/2 == 1 */
    const float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    for (int i = 0; i < out; i++) {
        const float center = (float)(scale * ((double)i + 0.5));
        int64_t lo = (int64_t)((double)(center - support) + 0.5);
        if (lo < 0) lo = 0;
        int64_t hi = (int64_t)((double)(center + support) + 0.5);
        if (hi > in) hi = in;
        int n = (int)(hi - lo);
        if (n < 0) n = 0;
        if (n > ksize) n = ksize;
        float *w = wts + (int64_t)i * ksize;
        float total = 0.0f;
        for (int j = 0; j < n; j++) {
            float v = tri((float)(((double)((float)(j + lo) - center) + 0.5) * invscale));
            w[j] = v;
            total += v;
        }
        if (total != 0.0f)
            for (int j = 0; j < n; j++) w[j] /= total;
        for (int j = n; j < ksize; j++) w[j] = 0.0f;
        xmin[i] = (int32_t)lo;
        xsize[i] = n;
    }
}

typedef struct {
    float *y;           /* horizontal: (R, out); vertical: (C, out, W) */
    const float *x;     /* horizontal: (R, in); vertical: (C, in, W) */
    int vertical;       /* 0: along W (x (R, Wi) -> y (R, Wo)); 1: along H of (C, Hi, W) -> (C, Ho, W) */
    int in, out, W, ksize;
    const int32_t *xmin, *xsize;
    const float *wts;   /* (out, ksize) normalised weights */
} aa_ctx;

static void aa_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const aa_ctx *c = vctx;
    for (int64_t r = r0; r < r1; r++) {
        if (!c->vertical) {
            const float *x = c->x + r * c->in;
            float *y = c->y + r * c->out;
            for (int o = 0; o < c->out; o++) {
                const float *w = c->wts + (int64_t)o * c->ksize;
                const float *xs = x + c->xmin[o];
                float acc = xs[0] * w[0];
                for (int j = 1; j < c->xsize[o]; j++) acc += xs[j] * w[j];
                y[o] = acc;
            }
        } else { /* r = ch*out + oy: one output row, weights shared by the row */
            int64_t ch = r / c->out;
            int oy = (int)(r % c->out);
            const float *w = c->wts + (int64_t)oy * c->ksize;
            const float *x = c->x + (ch * c->in + c->xmin[oy]) * c->W;
            float *y = c->y + r * c->W;
            for (int ox = 0; ox < c->W; ox++) y[ox] = x[ox] * w[0];
            for (int j = 1; j < c->xsize[oy]; j++)
                for (int ox = 0; ox < c->W; ox++) y[ox] += x[(int64_t)j * c->W + ox] * w[j];
        }
    }
}

void sam_cpu_resize_bilinear(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo,
                             bool antialias) {
    if (C <= 0 || Ho <= 0 || Wo <= 0 || Hi <= 0 || Wi <= 0) return;
    size_t cap;
    if (!antialias) {
        float *s = sam_cpu_scratch_lock(be, 4 * ((size_t)Ho + Wo), &cap);
        int32_t *h0 = (int32_t *)s, *h1 = h0 + Ho, *w0 = h1 + Ho, *w1 = w0 + Wo;
        float *hl0 = (float *)(w1 + Wo), *hl1 = hl0 + Ho, *wl0 = hl1 + Ho, *wl1 = wl0 + Wo;
        linear_taps(Hi, Ho, h0, h1, hl0, hl1);
        linear_taps(Wi, Wo, w0, w1, wl0, wl1);
        bl_ctx c = {y, x, Hi, Wi, Ho, Wo, h0, h1, w0, w1, hl0, hl1, wl0, wl1};
        sam_parallel_for(be->pool, (int64_t)C * Ho, 16, bl_rows, &c);
        sam_cpu_scratch_unlock(be);
        return;
    }
    /* PyTorch resamples W first, then H, skipping an axis whose size is unchanged. */
    const float sw = (float)Wi / (float)Wo, sh = (float)Hi / (float)Ho;
    const int kw = 2 * (int)ceilf(sw >= 1.0f ? sw : 1.0f) + 1;
    const int kh = 2 * (int)ceilf(sh >= 1.0f ? sh : 1.0f) + 1;
    const int do_w = Wi != Wo, do_h = Hi != Ho;
    if (!do_w && !do_h) {
        memcpy(y, x, (size_t)C * Hi * Wi * sizeof(float));
        return;
    }
    const size_t taps = 2 * ((size_t)Wo + Ho) + (size_t)Wo * kw + (size_t)Ho * kh;
    const size_t plane = do_w && do_h ? (size_t)Hi * Wo : 0; /* intermediate of one channel */
    float *s = sam_cpu_scratch_lock(be, taps + (size_t)C * plane, &cap);
    if (cap < taps + plane) { /* a map far beyond SAM's sizes */
        sam_cpu_scratch_unlock(be);
        sam_logf(SAM_LOG_ERROR, "resize_bilinear: %dx%d -> %dx%d needs more scratch than allowed; output zeroed", Hi, Wi,
                 Ho, Wo);
        memset(y, 0, (size_t)C * Ho * Wo * sizeof(float));
        return;
    }
    int32_t *wmin = (int32_t *)s, *wsz = wmin + Wo, *hmin = wsz + Wo, *hsz = hmin + Ho;
    float *ww = (float *)(hsz + Ho), *wh = ww + (size_t)Wo * kw, *tmp = wh + (size_t)Ho * kh;
    if (do_w) aa_taps(Wi, Wo, kw, wmin, wsz, ww);
    if (do_h) aa_taps(Hi, Ho, kh, hmin, hsz, wh);
    /* channels in groups whose intermediate fits the scratch */
    const int group = plane ? (int)((cap - taps) / plane < (size_t)C ? (cap - taps) / plane : (size_t)C) : C;
    for (int c0 = 0; c0 < C; c0 += group) {
        const int nc = C - c0 < group ? C - c0 : group;
        const float *src = x + (size_t)c0 * Hi * Wi;
        float *dst_y = y + (size_t)c0 * Ho * Wo;
        if (do_w) {
            float *dst = do_h ? tmp : dst_y;
            aa_ctx c = {dst, src, 0, Wi, Wo, 0, kw, wmin, wsz, ww};
            sam_parallel_for(be->pool, (int64_t)nc * Hi, 16, aa_rows, &c);
            src = dst;
        }
        if (do_h) {
            aa_ctx c = {dst_y, src, 1, Hi, Ho, Wo, kh, hmin, hsz, wh};
            sam_parallel_for(be->pool, (int64_t)nc * Ho, 4, aa_rows, &c);
        }
    }
    sam_cpu_scratch_unlock(be);
}

/* ---- nearest upsample by integer factors --------------------------------- */

typedef struct {
    float *y;       /* (N, H*fh, W*fw, C) */
    const float *x; /* (N, H, W, C) */
    int H, W, C, fh, fw;
} up_ctx;

static void up_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const up_ctx *c = vctx;
    const int Wo = c->W * c->fw;
    for (int64_t r = r0; r < r1; r++) { /* r = n*(H*fh) + oy */
        int64_t n = r / ((int64_t)c->H * c->fh);
        int iy = (int)(r % ((int64_t)c->H * c->fh)) / c->fh;
        const float *x = c->x + (n * c->H + iy) * c->W * c->C;
        float *y = c->y + r * Wo * c->C;
        for (int ox = 0; ox < Wo; ox++) memcpy(y + (int64_t)ox * c->C, x + (int64_t)(ox / c->fw) * c->C, (size_t)c->C * sizeof(float));
    }
}

void sam_cpu_upsample_nearest(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw) {
    if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || fh <= 0 || fw <= 0) return;
    up_ctx c = {y, x, H, W, C, fh, fw};
    sam_parallel_for(be->pool, (int64_t)N * H * fh, 8, up_rows, &c);
}
