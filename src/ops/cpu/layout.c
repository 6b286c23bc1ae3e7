/* Data movement: permute and concatenation along the last dim. */
#include <string.h>

#include "ops/cpu/cpu_internal.h"

#define PERM_MAX 6

typedef struct {
    float *y;                  /* output, densely packed in oshape order */
    const float *x;            /* input, densely packed */
    int nd;                    /* output dims, after merging */
    int64_t oshape[PERM_MAX];  /* output shape */
    int64_t istride[PERM_MAX]; /* input stride of each output dim */
} perm_ctx;

/* One "row" = the last output dim; rows are independent, so parallel. */
static void perm_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const perm_ctx *c = vctx;
    const int last = c->nd - 1;
    const int64_t L = c->oshape[last], s = c->istride[last];
    for (int64_t r = r0; r < r1; r++) {
        int64_t rem = r, off = 0;
        for (int d = last - 1; d >= 0; d--) {
            off += (rem % c->oshape[d]) * c->istride[d];
            rem /= c->oshape[d];
        }
        float *y = c->y + r * L;
        const float *x = c->x + off;
        if (s == 1)
            memcpy(y, x, (size_t)L * sizeof(float));
        else
            for (int64_t j = 0; j < L; j++) y[j] = x[j * s];
    }
}

/* Batched 2-D transpose: output dims (..., R, L) where R is contiguous in the
 * input and L strided (e.g. NHWC <-> NCHW). Tiles keep both sides in cache
 * instead of touching one cache line per element. Items = (outer, row tile). */
#define TT 32
typedef struct {
    float *y;          /* (outer, R, L) */
    const float *x;    /* input, densely packed */
    int64_t R, L, ls;  /* rows and columns of one output matrix; input stride of a column step */
    int64_t nrt;       /* row tiles per matrix */
    const perm_ctx *pc; /* for the outer dims */
} tr_ctx;

static void tr_items(void *vctx, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const tr_ctx *c = vctx;
    const perm_ctx *pc = c->pc;
    for (int64_t it = i0; it < i1; it++) {
        int64_t outer = it / c->nrt, r0 = (it % c->nrt) * TT;
        int64_t rem = outer, off = 0;
        for (int d = pc->nd - 3; d >= 0; d--) {
            off += (rem % pc->oshape[d]) * pc->istride[d];
            rem /= pc->oshape[d];
        }
        const float *x = c->x + off;
        float *y = c->y + outer * c->R * c->L;
        int64_t r1 = r0 + TT < c->R ? r0 + TT : c->R;
        for (int64_t l0 = 0; l0 < c->L; l0 += TT) {
            int64_t l1 = l0 + TT < c->L ? l0 + TT : c->L;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t l = l0; l < l1; l++) y[r * c->L + l] = x[r + l * c->ls];
        }
    }
}

void sam_cpu_permute(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm) {
    if (ndim <= 0 || ndim > PERM_MAX) return;
    int64_t istr[PERM_MAX], total;
    int64_t acc = 1; /* row-major input strides */
    for (int d = ndim - 1; d >= 0; d--) {
        istr[d] = acc;
        acc *= shape[d];
    }
    total = acc;
    if (total <= 0) return;
    perm_ctx c;
    memset(&c, 0, sizeof c);
    c.y = y;
    c.x = x;
    /* Drop size-1 output dims and merge runs that stay contiguous in the input,
     * so e.g. (B, H, W, C) -> (B, C, H, W) becomes a 3-d transpose. */
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        int64_t sz = shape[perm[d]], st = istr[perm[d]];
        if (sz == 1) continue;
        if (nd > 0 && c.istride[nd - 1] == st * sz) {
            c.oshape[nd - 1] *= sz;
            c.istride[nd - 1] = st;
            continue;
        }
        c.oshape[nd] = sz;
        c.istride[nd] = st;
        nd++;
    }
    if (nd == 0) {
        y[0] = x[0];
        return;
    }
    c.nd = nd;
    if (nd >= 2 && c.istride[nd - 2] == 1 && c.istride[nd - 1] != 1) {
        tr_ctx t = {y, x, c.oshape[nd - 2], c.oshape[nd - 1], c.istride[nd - 1], (c.oshape[nd - 2] + TT - 1) / TT, &c};
        const int64_t outer = total / (t.R * t.L);
        sam_parallel_for(be->pool, outer * t.nrt, 1, tr_items, &t);
        return;
    }
    const int64_t rows = total / c.oshape[nd - 1];
    int64_t chunk = 16384 / c.oshape[nd - 1];
    sam_parallel_for(be->pool, rows, chunk < 1 ? 1 : chunk, perm_rows, &c);
}

typedef struct {
    float *y;               /* (rows, Ctot) */
    const float *const *xs; /* nparts of (rows, Cs[i]) */
    const int *Cs;
    int nparts, Ctot;
} cat_ctx;

static void cat_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const cat_ctx *c = vctx;
    for (int64_t r = r0; r < r1; r++) {
        float *y = c->y + r * c->Ctot;
        for (int i = 0; i < c->nparts; i++) {
            memcpy(y, c->xs[i] + r * c->Cs[i], (size_t)c->Cs[i] * sizeof(float));
            y += c->Cs[i];
        }
    }
}

void sam_cpu_concat_last(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows) {
    int Ctot = 0;
    for (int i = 0; i < nparts; i++) Ctot += Cs[i];
    if (rows <= 0 || Ctot <= 0) return;
    cat_ctx c = {y, xs, Cs, nparts, Ctot};
    int64_t chunk = 16384 / Ctot;
    sam_parallel_for(be->pool, rows, chunk < 1 ? 1 : chunk, cat_rows, &c);
}

/* ---- windows (Hiera) ------------------------------------------------------ */

typedef struct {
    float *y;           /* (nwin, wh, ww, C) windows */
    const float *x;     /* (H, W, C) map */
    int H, W, C, wh, ww, nww, w0;
    bool norm;
    const float *gamma, *beta; /* (C) or NULL */
    float eps;
} win_ctx;

/* Items are window rows: row i of window w0 + k is map row wy*wh + i from column wx*ww. */
static void part_rows(void *vc, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const win_ctx *c = vc;
    const size_t C = (size_t)c->C;
    for (int64_t it = i0; it < i1; it++) {
        const int k = (int)(it / c->wh), i = (int)(it % c->wh), wi = c->w0 + k;
        const int y = (wi / c->nww) * c->wh + i, x0 = (wi % c->nww) * c->ww;
        float *d = c->y + (size_t)it * c->ww * C;
        int valid = y < c->H ? c->W - x0 : 0;
        if (valid > c->ww) valid = c->ww;
        if (valid < 0) valid = 0;
        const float *s = c->x + ((size_t)y * c->W + x0) * C;
        if (c->norm)
            for (int j = 0; j < valid; j++) sam_cpu_ln_row(d + j * C, s + j * C, c->C, c->gamma, c->beta, c->eps);
        else if (valid)
            memcpy(d, s, sizeof(float) * C * valid);
        if (valid < c->ww) memset(d + valid * C, 0, sizeof(float) * C * (size_t)(c->ww - valid));
    }
}

void sam_cpu_window_partition(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                              int nwin, bool norm, const float *gamma, const float *beta, float eps) {
    if (nwin <= 0 || wh <= 0 || ww <= 0 || C <= 0) return;
    win_ctx c = {y, x, H, W, C, wh, ww, (W + ww - 1) / ww, w0, norm, gamma, beta, eps};
    const int64_t per = (int64_t)ww * C * (norm ? 4 : 1); /* work of one item, in float-copies */
    int64_t chunk = 16384 / (per > 0 ? per : 1);
    sam_parallel_for(be->pool, (int64_t)nwin * wh, chunk < 1 ? 1 : chunk, part_rows, &c);
}

static void unpart_rows(void *vc, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const win_ctx *c = vc;
    const size_t C = (size_t)c->C;
    for (int64_t it = i0; it < i1; it++) {
        const int k = (int)(it / c->wh), i = (int)(it % c->wh), wi = c->w0 + k;
        const int y = (wi / c->nww) * c->wh + i, x0 = (wi % c->nww) * c->ww;
        if (y >= c->H) continue;
        int valid = c->W - x0 < c->ww ? c->W - x0 : c->ww;
        const float *s = c->x + (size_t)it * c->ww * C;
        float *d = c->y + ((size_t)y * c->W + x0) * C;
        for (size_t j = 0; j < (size_t)valid * C; j++) d[j] = s[j] + d[j];
    }
}

void sam_cpu_window_unpartition_add(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww,
                                    int w0, int nwin) {
    if (nwin <= 0 || wh <= 0 || ww <= 0 || C <= 0) return;
    win_ctx c = {y, x, H, W, C, wh, ww, (W + ww - 1) / ww, w0, false, NULL, NULL, 0};
    int64_t chunk = 16384 / ((int64_t)ww * C);
    sam_parallel_for(be->pool, (int64_t)nwin * wh, chunk < 1 ? 1 : chunk, unpart_rows, &c);
}

/* ---- strided 2x2 max pool ------------------------------------------------- */

typedef struct {
    float *y;       /* (N, H/2, W/2, C) */
    const float *x; /* (N, H, W) pixels at ldx */
    int H, W, C;
    int64_t ldx;
} mp_ctx;

static inline float max_nan(float m, float v) { return (v > m || v != v) ? v : m; }

static void mp_rows(void *vc, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const mp_ctx *c = vc;
    const int Ho = c->H / 2, Wo = c->W / 2, C = c->C;
    const int64_t ld = c->ldx;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t n = r / Ho, i = r % Ho;
        const float *row = c->x + ((n * c->H + 2 * i) * c->W) * ld;
        float *o = c->y + r * Wo * C;
        for (int j = 0; j < Wo; j++) {
            const float *p00 = row + (int64_t)(2 * j) * ld, *p01 = p00 + ld, *p10 = p00 + (int64_t)c->W * ld,
                        *p11 = p10 + ld;
            float *d = o + (int64_t)j * C;
            for (int ch = 0; ch < C; ch++) d[ch] = max_nan(max_nan(max_nan(p00[ch], p01[ch]), p10[ch]), p11[ch]);
        }
    }
}

void sam_cpu_maxpool2x2_ld(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx) {
    const int Ho = H / 2, Wo = W / 2;
    if (N <= 0 || Ho <= 0 || Wo <= 0 || C <= 0) return;
    mp_ctx c = {y, x, H, W, C, ldx};
    int64_t chunk = 16384 / ((int64_t)Wo * C * 4);
    sam_parallel_for(be->pool, (int64_t)N * Ho, chunk < 1 ? 1 : chunk, mp_rows, &c);
}

/* The dense pool is the strided one with pixels C apart. */
void sam_cpu_maxpool2x2(sam_backend *be, float *y, const float *x, int N, int H, int W, int C) {
    sam_cpu_maxpool2x2_ld(be, y, x, N, H, W, C, C);
}
