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
