/* Convolutions on channels-last maps.
 *  - 1x1 / stride 1 / no padding / one group: a single GEMM (linear).
 *  - depthwise: direct loop, vectorised over channels.
 *  - one group, short reductions (taps * C_in <= CONV_ROW_MAX_K: the Hiera
 *    patch embed, 7x7x3 = 147): each pool item is one output row, gathered
 *    (im2col) into the thread's own slice and multiplied there by the packed
 *    weights with a register-blocked micro-kernel, so the gathered rows never
 *    leave L2 and nothing is written twice.
 *  - anything else: im2col of a block of output pixels into the scratch (so
 *    memory stays bounded whatever the image size) followed by one sgemm per
 *    group (threaded by the pool, see gemm.c). */
#include <string.h>

#include "core/log.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/simd.h"

#define VL SAM_VL
typedef sam_vf vf;

/* ---- depthwise ---------------------------------------------------------- */

typedef struct {
    float *y;          /* (N, Ho, Wo, C) */
    const float *x;    /* (N, H, W, C) */
    const float *wr;   /* (kh*kw, C): taps repacked channel-innermost */
    const float *b;    /* (C) or NULL */
    const sam_conv2d_params *p;
    int Ho, Wo;
} dw_ctx;

static void dw_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const dw_ctx *c = vctx;
    const sam_conv2d_params *p = c->p;
    const int C = p->C_in;
    for (int64_t r = r0; r < r1; r++) { /* r = n*Ho + oy */
        int n = (int)(r / c->Ho), oy = (int)(r % c->Ho);
        for (int ox = 0; ox < c->Wo; ox++) {
            float *yp = c->y + (r * c->Wo + ox) * C;
            if (c->b)
                memcpy(yp, c->b, (size_t)C * sizeof(float));
            else
                memset(yp, 0, (size_t)C * sizeof(float));
            for (int ky = 0; ky < p->kh; ky++) {
                int iy = oy * p->stride_h - p->pad_h + ky;
                if (iy < 0 || iy >= p->H) continue;
                for (int kx = 0; kx < p->kw; kx++) {
                    int ix = ox * p->stride_w - p->pad_w + kx;
                    if (ix < 0 || ix >= p->W) continue;
                    const float *xp = c->x + (((int64_t)n * p->H + iy) * p->W + ix) * C;
                    const float *wp = c->wr + (int64_t)(ky * p->kw + kx) * C;
                    for (int ch = 0; ch < C; ch++) yp[ch] += xp[ch] * wp[ch];
                }
            }
        }
    }
}

/* ---- im2col ------------------------------------------------------------- */

typedef struct {
    float *col;        /* (npix, kh*kw*Cg): one row per output pixel, taps (ky, kx, ci) */
    const float *x;    /* (N, H, W, C_in) */
    const sam_conv2d_params *p;
    int Ho, Wo, Cg, c0; /* channels of the group and its first channel */
    int64_t p0;         /* first output pixel of the block */
} col_ctx;

static void im2col_rows(void *vctx, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const col_ctx *c = vctx;
    const sam_conv2d_params *p = c->p;
    const int64_t K = (int64_t)p->kh * p->kw * c->Cg;
    for (int64_t i = i0; i < i1; i++) {
        int64_t pix = c->p0 + i;
        int ox = (int)(pix % c->Wo);
        int64_t t = pix / c->Wo;
        int oy = (int)(t % c->Ho);
        int n = (int)(t / c->Ho);
        float *dst = c->col + i * K;
        for (int ky = 0; ky < p->kh; ky++) {
            int iy = oy * p->stride_h - p->pad_h + ky;
            for (int kx = 0; kx < p->kw; kx++) {
                int ix = ox * p->stride_w - p->pad_w + kx;
                float *d = dst + (int64_t)(ky * p->kw + kx) * c->Cg;
                if (iy < 0 || iy >= p->H || ix < 0 || ix >= p->W)
                    memset(d, 0, (size_t)c->Cg * sizeof(float));
                else
                    memcpy(d, c->x + (((int64_t)n * p->H + iy) * p->W + ix) * p->C_in + c->c0,
                           (size_t)c->Cg * sizeof(float));
            }
        }
    }
}

/* ---- one output row per item: gather + micro-kernel ---------------------- */

#define CONV_MR 12            /* output pixels per micro-tile */
#define CONV_NR (2 * VL)      /* output channels per packed weight panel */
#define CONV_ROW_MAX_K 1024   /* taps * C_in up to which the row kernel is used */

/* C(mr, nv*VL) = A(mr, K) . B(K, nv*VL) + bias; A rows at stride lda, B a
 * packed panel (rows of CONV_NR), C rows at stride ldc. */
static inline __attribute__((always_inline)) void conv_micro(const int mr, const int nv, int K, const float *A,
                                                             int64_t lda, const float *B, float *C, int64_t ldc,
                                                             const float *bias) {
    vf c0[CONV_MR], c1[CONV_MR];
    const vf b0 = bias ? *(const vf *)bias : (vf){0};
    const vf b1 = nv == 2 && bias ? *(const vf *)(bias + VL) : (vf){0};
    for (int r = 0; r < mr; r++) {
        c0[r] = b0;
        c1[r] = b1;
    }
    for (int k = 0; k < K; k++) {
        const vf w0 = *(const vf *)(B + (int64_t)k * CONV_NR);
        const vf w1 = nv == 2 ? *(const vf *)(B + (int64_t)k * CONV_NR + VL) : w0;
        for (int r = 0; r < mr; r++) {
            const float a = A[r * lda + k];
            c0[r] += a * w0;
            if (nv == 2) c1[r] += a * w1;
        }
    }
    for (int r = 0; r < mr; r++) {
        *(vf *)(C + r * ldc) = c0[r];
        if (nv == 2) *(vf *)(C + r * ldc + VL) = c1[r];
    }
}

static inline __attribute__((always_inline)) void conv_rows(const int nv, int M, int K, const float *A, int64_t lda,
                                                            const float *B, float *C, int64_t ldc, const float *bias) {
    for (int i = 0; i < M; i += CONV_MR) {
        const float *a = A + (int64_t)i * lda;
        float *c = C + (int64_t)i * ldc;
        switch (M - i < CONV_MR ? M - i : CONV_MR) {
        case 12: conv_micro(12, nv, K, a, lda, B, c, ldc, bias); break;
        case 11: conv_micro(11, nv, K, a, lda, B, c, ldc, bias); break;
        case 10: conv_micro(10, nv, K, a, lda, B, c, ldc, bias); break;
        case 9: conv_micro(9, nv, K, a, lda, B, c, ldc, bias); break;
        case 8: conv_micro(8, nv, K, a, lda, B, c, ldc, bias); break;
        case 7: conv_micro(7, nv, K, a, lda, B, c, ldc, bias); break;
        case 6: conv_micro(6, nv, K, a, lda, B, c, ldc, bias); break;
        case 5: conv_micro(5, nv, K, a, lda, B, c, ldc, bias); break;
        case 4: conv_micro(4, nv, K, a, lda, B, c, ldc, bias); break;
        case 3: conv_micro(3, nv, K, a, lda, B, c, ldc, bias); break;
        case 2: conv_micro(2, nv, K, a, lda, B, c, ldc, bias); break;
        default: conv_micro(1, nv, K, a, lda, B, c, ldc, bias); break;
        }
    }
}

typedef struct {
    float *y;          /* (N, Ho, Wo, C_out) */
    const float *x;    /* (N, H, W, C_in) */
    const float *wp;   /* (C_out/CONV_NR panels rounded up, K, CONV_NR): taps (ky, kx, ci) per row */
    const float *b;    /* (C_out) or NULL */
    const sam_conv2d_params *p;
    int Ho, Wo;
    int64_t K;         /* kh * kw * C_in */
    float *col;        /* per thread: (Wo, K) gathered taps of one output row */
} row_ctx;

static void conv_row_items(void *vctx, int64_t r0, int64_t r1, int tid) {
    const row_ctx *c = vctx;
    const sam_conv2d_params *p = c->p;
    const int C = p->C_in, Wo = c->Wo, seg = p->kw * C;
    const int64_t K = c->K;
    float *col = c->col + (size_t)tid * Wo * K;
    for (int64_t r = r0; r < r1; r++) { /* r = n*Ho + oy */
        const int n = (int)(r / c->Ho), oy = (int)(r % c->Ho);
        /* gather: for each output pixel and kernel row, kw*C_in floats that
         * are contiguous in x (channels-last) unless they cross the border */
        for (int ox = 0; ox < Wo; ox++) {
            const int ix0 = ox * p->stride_w - p->pad_w;
            const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = p->W - ix0 < p->kw ? p->W - ix0 : p->kw;
            for (int ky = 0; ky < p->kh; ky++) {
                float *d = col + (int64_t)ox * K + (int64_t)ky * seg;
                const int iy = oy * p->stride_h - p->pad_h + ky;
                if (iy < 0 || iy >= p->H || kx1 <= kx0) {
                    memset(d, 0, (size_t)seg * sizeof(float));
                    continue;
                }
                if (kx0 > 0) memset(d, 0, (size_t)kx0 * C * sizeof(float));
                memcpy(d + (int64_t)kx0 * C, c->x + (((int64_t)n * p->H + iy) * p->W + ix0 + kx0) * C,
                       (size_t)(kx1 - kx0) * C * sizeof(float));
                if (kx1 < p->kw) memset(d + (int64_t)kx1 * C, 0, (size_t)(p->kw - kx1) * C * sizeof(float));
            }
        }
        float *y = c->y + r * Wo * p->C_out;
        for (int j = 0; j < p->C_out; j += CONV_NR) {
            const float *B = c->wp + (int64_t)(j / CONV_NR) * K * CONV_NR;
            const float *bias = c->b ? c->b + j : NULL;
            if (p->C_out - j >= CONV_NR)
                conv_rows(2, Wo, (int)K, col, K, B, y + j, p->C_out, bias);
            else /* C_out is a multiple of VL: one vector left */
                conv_rows(1, Wo, (int)K, col, K, B, y + j, p->C_out, bias);
        }
    }
}

/* The row kernel when the conv suits it and its buffers fit the scratch; false: nothing written. */
static bool conv_by_rows(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                         const sam_conv2d_params *p, int Ho, int Wo) {
    const int64_t K = (int64_t)p->kh * p->kw * p->C_in;
    if ((p->groups > 1) || K > CONV_ROW_MAX_K || p->C_out % VL != 0) return false;
    const int nt = sam_cpu_threads(be);
    const int npan = (p->C_out + CONV_NR - 1) / CONV_NR;
    const size_t wsize = (size_t)npan * K * CONV_NR, need = wsize + (size_t)nt * Wo * K;
    size_t cap;
    float *s = sam_cpu_scratch_lock(be, need, &cap);
    if (cap < need) {
        sam_cpu_scratch_unlock(be);
        return false;
    }
    const int taps = p->kh * p->kw;
    for (int pn = 0; pn < npan; pn++)
        for (int t = 0; t < taps; t++)
            for (int ci = 0; ci < p->C_in; ci++) {
                float *d = s + ((size_t)pn * K + (size_t)t * p->C_in + ci) * CONV_NR;
                for (int j = 0; j < CONV_NR; j++) {
                    const int co = pn * CONV_NR + j;
                    d[j] = co < p->C_out ? w[((int64_t)co * p->C_in + ci) * taps + t] : 0.0f;
                }
            }
    row_ctx c = {y, x, s, b, p, Ho, Wo, K, s + wsize};
    sam_parallel_for(be->pool, (int64_t)p->N * Ho, 1, conv_row_items, &c);
    sam_cpu_scratch_unlock(be);
    return true;
}

/* ---- scratch-free fallbacks ---------------------------------------------
 * Used only when the scratch cannot hold the packed weights plus one pixel
 * (a conv far larger than SAM's, or the allocator refusing to grow): slow
 * but always correct, so a kernel never returns without its output. */

typedef struct {
    float *y;                /* (N, Ho, Wo, C_out) */
    const float *x;          /* (N, H, W, C_in) */
    const float *w;          /* (C_out, C_in/groups, kh, kw) */
    const float *b;          /* (C_out) or NULL */
    const sam_conv2d_params *p;
    int Ho, Wo;
} direct_ctx;

static void conv_direct_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const direct_ctx *c = vctx;
    const sam_conv2d_params *p = c->p;
    const int G = p->groups > 0 ? p->groups : 1, Cg = p->C_in / G, Cog = p->C_out / G;
    for (int64_t r = r0; r < r1; r++) { /* r = n*Ho + oy */
        int n = (int)(r / c->Ho), oy = (int)(r % c->Ho);
        for (int ox = 0; ox < c->Wo; ox++)
            for (int co = 0; co < p->C_out; co++) {
                const int g = co / Cog;
                double acc = c->b ? c->b[co] : 0.0; /* long sequential sums: double keeps them accurate */
                for (int ky = 0; ky < p->kh; ky++) {
                    int iy = oy * p->stride_h - p->pad_h + ky;
                    if (iy < 0 || iy >= p->H) continue;
                    for (int kx = 0; kx < p->kw; kx++) {
                        int ix = ox * p->stride_w - p->pad_w + kx;
                        if (ix < 0 || ix >= p->W) continue;
                        const float *xp = c->x + (((int64_t)n * p->H + iy) * p->W + ix) * p->C_in + (int64_t)g * Cg;
                        const float *wp = c->w + ((int64_t)co * Cg * p->kh + ky) * p->kw + kx;
                        for (int ci = 0; ci < Cg; ci++) acc += (double)xp[ci] * wp[(int64_t)ci * p->kh * p->kw];
                    }
                }
                c->y[(r * c->Wo + ox) * p->C_out + co] = (float)acc;
            }
    }
}

static void conv_direct(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                        const sam_conv2d_params *p, int Ho, int Wo) {
    sam_logf(SAM_LOG_WARN, "conv2d: scratch too small, using the direct loop (%dx%d kernel, %d->%d channels)", p->kh,
             p->kw, p->C_in, p->C_out);
    direct_ctx c = {y, x, w, b, p, Ho, Wo};
    sam_parallel_for(be->pool, (int64_t)p->N * Ho, 1, conv_direct_rows, &c);
}

void sam_cpu_conv2d(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                    const sam_conv2d_params *p) {
    const int Ho = sam_conv_out(p->H, p->kh, p->stride_h, p->pad_h);
    const int Wo = sam_conv_out(p->W, p->kw, p->stride_w, p->pad_w);
    const int G = p->groups > 0 ? p->groups : 1;
    if (p->N <= 0 || Ho <= 0 || Wo <= 0 || p->C_out <= 0) return;
    const int64_t npix = (int64_t)p->N * Ho * Wo;
    const int taps = p->kh * p->kw;

    if (taps == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0 && G == 1) {
        sam_cpu_linear(be, y, x, w, b, (int)npix, p->C_out, p->C_in); /* w (C_out, C_in, 1, 1) == (C_out, C_in) */
        return;
    }

    size_t cap;
    if (G == p->C_in && G == p->C_out) {
        float *wr = sam_cpu_scratch_lock(be, (size_t)taps * p->C_in, &cap); /* (taps, C) */
        for (int ch = 0; ch < p->C_in; ch++)
            for (int t = 0; t < taps; t++) wr[(int64_t)t * p->C_in + ch] = w[(int64_t)ch * taps + t];
        dw_ctx c = {y, x, wr, b, p, Ho, Wo};
        sam_parallel_for(be->pool, (int64_t)p->N * Ho, 1, dw_rows, &c);
        sam_cpu_scratch_unlock(be);
        return;
    }

    if (conv_by_rows(be, y, x, w, b, p, Ho, Wo)) return;

    const int Cg = p->C_in / G, Cog = p->C_out / G;
    const int64_t K = (int64_t)taps * Cg;
    const int64_t wsize = (int64_t)p->C_out * K;
    /* Aim for a col block of ~4M floats, but at least one pixel. */
    int64_t want_pix = ((int64_t)4 << 20) / K;
    if (want_pix < 1) want_pix = 1;
    if (want_pix > npix) want_pix = npix;
    float *s = sam_cpu_scratch_lock(be, (size_t)(wsize + want_pix * K), &cap);
    float *wr = s;          /* (C_out, taps*Cg): rows (ky, kx, ci) to match col */
    float *col = s + wsize; /* (blk, K) */
    int64_t blk = ((int64_t)cap - wsize) / K;
    if (blk > npix) blk = npix;
    if (blk < 1) { /* the scratch could not grow: not for SAM's sizes */
        sam_cpu_scratch_unlock(be);
        conv_direct(be, y, x, w, b, p, Ho, Wo);
        return;
    }
    for (int co = 0; co < p->C_out; co++)
        for (int ci = 0; ci < Cg; ci++)
            for (int t = 0; t < taps; t++) wr[co * K + (int64_t)t * Cg + ci] = w[((int64_t)co * Cg + ci) * taps + t];

    for (int64_t p0 = 0; p0 < npix; p0 += blk) {
        int64_t nb = npix - p0 < blk ? npix - p0 : blk;
        float *yb = y + p0 * p->C_out;
        for (int64_t i = 0; i < nb; i++) {
            if (b)
                memcpy(yb + i * p->C_out, b, (size_t)p->C_out * sizeof(float));
            else
                memset(yb + i * p->C_out, 0, (size_t)p->C_out * sizeof(float));
        }
        for (int g = 0; g < G; g++) {
            col_ctx c = {col, x, p, Ho, Wo, Cg, g * Cg, p0};
            sam_parallel_for(be->pool, nb, 64, im2col_rows, &c);
            sam_cpu_gemm(be, false, true, (int)nb, Cog, (int)K, 1.0f, col, K, wr + (int64_t)g * Cog * K, K, 1.0f,
                         yb + (int64_t)g * Cog, p->C_out);
        }
    }
    sam_cpu_scratch_unlock(be);
}

/* ---- 2x2 stride-2 transposed conv --------------------------------------- */

typedef struct {
    float *y;         /* (N, 2H, 2W, C_out) */
    const float *t;   /* (blk, 4*C_out): per input pixel, the 4 output pixels (dy, dx) */
    const float *b;   /* (C_out) or NULL */
    int H, W, C_out;
    int64_t p0;
} ct_ctx;

static void ct_scatter(void *vctx, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const ct_ctx *c = vctx;
    const int Co = c->C_out;
    for (int64_t i = i0; i < i1; i++) {
        int64_t pix = c->p0 + i;
        int j = (int)(pix % c->W);
        int64_t r = pix / c->W;
        int ii = (int)(r % c->H);
        int64_t n = r / c->H;
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                float *yp = c->y + ((n * 2 * c->H + 2 * ii + dy) * 2 * c->W + 2 * j + dx) * Co;
                const float *tp = c->t + i * 4 * Co + (dy * 2 + dx) * Co;
                if (c->b)
                    for (int o = 0; o < Co; o++) yp[o] = tp[o] + c->b[o];
                else
                    memcpy(yp, tp, (size_t)Co * sizeof(float));
            }
    }
}

void sam_cpu_conv_transpose2x2(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N,
                               int H, int W, int C_in, int C_out) {
    const int64_t npix = (int64_t)N * H * W;
    if (npix <= 0 || C_out <= 0) return;
    const int64_t Nc = 4 * (int64_t)C_out;
    const int64_t wsize = (int64_t)C_in * Nc;
    int64_t want_pix = ((int64_t)2 << 20) / Nc;
    if (want_pix < 1) want_pix = 1;
    if (want_pix > npix) want_pix = npix;
    size_t cap;
    float *s = sam_cpu_scratch_lock(be, (size_t)(wsize + want_pix * Nc), &cap);
    float *wr = s;        /* (C_in, 4*C_out), columns (dy, dx, co) */
    float *t = s + wsize; /* (blk, 4*C_out) */
    int64_t blk = ((int64_t)cap - wsize) / Nc;
    if (blk > npix) blk = npix;
    if (blk < 1) { /* the scratch could not grow: direct loop, one output pixel at a time */
        sam_cpu_scratch_unlock(be);
        sam_logf(SAM_LOG_WARN, "conv_transpose2x2: scratch too small, using the direct loop (%d->%d)", C_in, C_out);
        for (int64_t pix = 0; pix < npix; pix++) {
            int j = (int)(pix % W);
            int64_t r = pix / W;
            int i = (int)(r % H);
            int64_t n = r / H;
            for (int k = 0; k < 4; k++) {
                float *yp = y + ((n * 2 * H + 2 * i + k / 2) * 2 * W + 2 * j + k % 2) * C_out;
                for (int co = 0; co < C_out; co++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < C_in; ci++)
                        acc += (double)x[pix * C_in + ci] * w[((int64_t)ci * C_out + co) * 4 + k];
                    yp[co] = (float)acc;
                }
            }
        }
        return;
    }
    for (int ci = 0; ci < C_in; ci++)
        for (int co = 0; co < C_out; co++)
            for (int k = 0; k < 4; k++) wr[ci * Nc + k * C_out + co] = w[((int64_t)ci * C_out + co) * 4 + k];
    for (int64_t p0 = 0; p0 < npix; p0 += blk) {
        int64_t nb = npix - p0 < blk ? npix - p0 : blk;
        if (C_in > 0)
            sam_cpu_gemm(be, false, false, (int)nb, (int)Nc, C_in, 1.0f, x + p0 * C_in, C_in, wr, Nc, 0.0f, t, Nc);
        else
            memset(t, 0, (size_t)(nb * Nc) * sizeof(float));
        ct_ctx c = {y, t, b, H, W, C_out, p0};
        sam_parallel_for(be->pool, nb, 64, ct_scatter, &c);
    }
    sam_cpu_scratch_unlock(be);
}
