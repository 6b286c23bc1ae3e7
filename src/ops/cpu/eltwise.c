/* Element-wise kernels, norms and softmax, threaded over the back end's pool.
 * Reductions accumulate in double so results sit within float rounding of
 * PyTorch's float32 ones (torch uses biased variance and eps inside sqrt). */
#include <math.h>
#include <string.h>

#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/simd.h"

/* Items per chunk for cheap element-wise work: big enough to amortise the
 * pool's hand-off, small enough to spread a 1M-element map over threads. */
#define EW_CHUNK 32768

enum { EW_GELU, EW_RELU, EW_SIGMOID, EW_ADD, EW_MUL, EW_AXPBY };

typedef struct {
    int op;
    float *y;          /* (n) */
    const float *a, *b; /* (n); b unused by the unary ops */
    float alpha, beta;
} ew_ctx;

/* GELU (exact erf form, with PyTorch's vectorised erf) and sigmoid on one vector. */
static inline sam_vf gelu_v(sam_vf x) { return sam_vgelu(x); }
static inline sam_vf sigmoid_v(sam_vf x) { return sam_vsplat(1.0f) / (sam_vsplat(1.0f) + sam_vexp(-x)); }

/* Apply a vector function to [i0, i1): whole vectors, then the tail through
 * a zero-padded buffer so tails get bit-identical results. */
#define MAP_V(fn, y, a, i0, i1)                                            \
    do {                                                                   \
        int64_t i_ = (i0);                                                 \
        for (; i_ + SAM_VL <= (i1); i_ += SAM_VL)                          \
            *(sam_vf *)((y) + i_) = fn(*(const sam_vf *)((a) + i_));       \
        if (i_ < (i1)) {                                                   \
            float buf_[SAM_VL] = {0};                                      \
            size_t n_ = (size_t)((i1) - i_) * sizeof(float);               \
            memcpy(buf_, (a) + i_, n_);                                    \
            sam_vf r_ = fn(*(const sam_vf *)buf_);                         \
            memcpy((y) + i_, &r_, n_);                                     \
        }                                                                  \
    } while (0)

static void ew_range(void *vctx, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const ew_ctx *c = vctx;
    float *y = c->y;
    const float *a = c->a, *b = c->b;
    switch (c->op) {
    case EW_GELU:
        MAP_V(gelu_v, y, a, i0, i1);
        break;
    case EW_RELU:
        for (int64_t i = i0; i < i1; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    case EW_SIGMOID:
        MAP_V(sigmoid_v, y, a, i0, i1);
        break;
    case EW_ADD:
        for (int64_t i = i0; i < i1; i++) y[i] = a[i] + b[i];
        break;
    case EW_MUL:
        for (int64_t i = i0; i < i1; i++) y[i] = a[i] * b[i];
        break;
    case EW_AXPBY: {
        const float al = c->alpha, bt = c->beta;
        for (int64_t i = i0; i < i1; i++) y[i] = a[i] * al + b[i] * bt;
        break;
    }
    }
}

static void ew_run(sam_backend *be, int op, float *y, const float *a, const float *b, float alpha, float beta,
                   int64_t n, int64_t chunk) {
    ew_ctx c = {op, y, a, b, alpha, beta};
    sam_parallel_for(be->pool, n, chunk, ew_range, &c);
}

/* The transcendental ones cost more per element: smaller chunks. */
void sam_cpu_gelu(sam_backend *be, float *y, const float *x, int64_t n) { ew_run(be, EW_GELU, y, x, NULL, 0, 0, n, 4096); }
void sam_cpu_relu(sam_backend *be, float *y, const float *x, int64_t n) { ew_run(be, EW_RELU, y, x, NULL, 0, 0, n, EW_CHUNK); }
void sam_cpu_sigmoid(sam_backend *be, float *y, const float *x, int64_t n) { ew_run(be, EW_SIGMOID, y, x, NULL, 0, 0, n, 4096); }
void sam_cpu_add(sam_backend *be, float *y, const float *a, const float *b, int64_t n) { ew_run(be, EW_ADD, y, a, b, 0, 0, n, EW_CHUNK); }
void sam_cpu_mul(sam_backend *be, float *y, const float *a, const float *b, int64_t n) { ew_run(be, EW_MUL, y, a, b, 0, 0, n, EW_CHUNK); }
void sam_cpu_axpby(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n) {
    ew_run(be, EW_AXPBY, y, a, b, alpha, beta, n, EW_CHUNK);
}

/* ---- per-row broadcasts -------------------------------------------------- */

typedef struct {
    int mul;
    float *y;           /* (rows, C) */
    const float *x, *v; /* x (rows, C), v (C) */
    int C;
} row_ctx;

static void row_range(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const row_ctx *c = vctx;
    const int C = c->C;
    for (int64_t r = r0; r < r1; r++) {
        float *y = c->y + r * C;
        const float *x = c->x + r * C;
        if (c->mul)
            for (int j = 0; j < C; j++) y[j] = x[j] * c->v[j];
        else
            for (int j = 0; j < C; j++) y[j] = x[j] + c->v[j];
    }
}

static int64_t rows_chunk(int64_t per_row, int64_t target) {
    int64_t ch = per_row > 0 ? target / per_row : target;
    return ch < 1 ? 1 : ch;
}

void sam_cpu_add_row(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C) {
    row_ctx c = {0, y, x, b, C};
    sam_parallel_for(be->pool, rows, rows_chunk(C, EW_CHUNK), row_range, &c);
}

void sam_cpu_mul_row(sam_backend *be, float *y, const float *x, const float *s, int64_t rows, int C) {
    row_ctx c = {1, y, x, s, C};
    sam_parallel_for(be->pool, rows, rows_chunk(C, EW_CHUNK), row_range, &c);
}

/* ---- LayerNorm (channels-last rows) ------------------------------------- */

typedef struct {
    float *y;                  /* (rows, C) */
    const float *x;            /* (rows, C) */
    const float *gamma, *beta; /* (C) or NULL */
    int C;
    float eps;
} ln_ctx;

/* Row statistics in double, 8 lanes at a time (vectorised, and as exact as
 * a scalar double loop for all practical purposes). */
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));
typedef double v8d __attribute__((vector_size(64)));

/* by pointer: passing a 64-byte vector by value is ABI-dependent without AVX-512 */
static inline double hsum8(const v8d *v) {
    const v8d a = *v;
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static void row_moments(const float *x, int C, double *mean_out, double *var_out) {
    v8d s8 = {0};
    int j = 0;
    for (; j + 8 <= C; j += 8) s8 += __builtin_convertvector(*(const v8f *)(x + j), v8d);
    double s = hsum8(&s8);
    for (; j < C; j++) s += x[j];
    const double mean = s / C;
    v8d q8 = {0};
    const v8d m8 = (v8d){0} + mean;
    for (j = 0; j + 8 <= C; j += 8) {
        const v8d d = __builtin_convertvector(*(const v8f *)(x + j), v8d) - m8;
        q8 += d * d;
    }
    double q = hsum8(&q8);
    for (; j < C; j++) q += (x[j] - mean) * (x[j] - mean);
    *mean_out = mean;
    *var_out = q / C; /* biased, as torch */
}

void sam_cpu_ln_row(float *y, const float *x, int C, const float *g, const float *b, float eps) {
    double mean, var;
    row_moments(x, C, &mean, &var);
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    const float m = (float)mean;
    if (g && b)
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * rstd * g[j] + b[j];
    else if (g)
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * rstd * g[j];
    else if (b)
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * rstd + b[j];
    else
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * rstd;
}

static void ln_range(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const ln_ctx *c = vctx;
    const int C = c->C;
    for (int64_t r = r0; r < r1; r++) sam_cpu_ln_row(c->y + r * C, c->x + r * C, C, c->gamma, c->beta, c->eps);
}

void sam_cpu_layer_norm(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta,
                        int64_t rows, int C, float eps) {
    if (rows <= 0 || C <= 0) return;
    ln_ctx c = {y, x, gamma, beta, C, eps};
    sam_parallel_for(be->pool, rows, rows_chunk(C, 8192), ln_range, &c);
}

/* ---- LayerNorm2d on channels-first maps --------------------------------- */

#define LNCF_BLOCK 64 /* pixels normalised together: channel loops run over contiguous pixels */

typedef struct {
    float *y;                  /* (N, C, HW) */
    const float *x;            /* (N, C, HW) */
    const float *gamma, *beta; /* (C) or NULL */
    int C;
    int64_t HW, nblk;
    float eps;
} lncf_ctx;

static void lncf_range(void *vctx, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const lncf_ctx *c = vctx;
    const int C = c->C;
    const int64_t HW = c->HW;
    double sum[LNCF_BLOCK], var[LNCF_BLOCK];
    float mean_f[LNCF_BLOCK], rstd[LNCF_BLOCK];
    for (int64_t it = i0; it < i1; it++) {
        int64_t n = it / c->nblk, p0 = (it % c->nblk) * LNCF_BLOCK;
        int np = (int)(HW - p0 < LNCF_BLOCK ? HW - p0 : LNCF_BLOCK);
        const float *x = c->x + n * C * HW + p0;
        float *y = c->y + n * C * HW + p0;
        for (int p = 0; p < np; p++) sum[p] = var[p] = 0;
        for (int ch = 0; ch < C; ch++)
            for (int p = 0; p < np; p++) sum[p] += x[ch * HW + p];
        for (int p = 0; p < np; p++) sum[p] /= C;
        for (int ch = 0; ch < C; ch++)
            for (int p = 0; p < np; p++) {
                double d = x[ch * HW + p] - sum[p];
                var[p] += d * d;
            }
        for (int p = 0; p < np; p++) {
            mean_f[p] = (float)sum[p];
            rstd[p] = (float)(1.0 / sqrt(var[p] / C + (double)c->eps));
        }
        for (int ch = 0; ch < C; ch++) {
            const float g = c->gamma ? c->gamma[ch] : 1.0f, b = c->beta ? c->beta[ch] : 0.0f;
            for (int p = 0; p < np; p++) y[ch * HW + p] = (x[ch * HW + p] - mean_f[p]) * rstd[p] * g + b;
        }
    }
}

void sam_cpu_layer_norm_cf(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta, int N,
                           int C, int64_t HW, float eps) {
    if (N <= 0 || C <= 0 || HW <= 0) return;
    int64_t nblk = (HW + LNCF_BLOCK - 1) / LNCF_BLOCK;
    lncf_ctx c = {y, x, gamma, beta, C, HW, nblk, eps};
    sam_parallel_for(be->pool, (int64_t)N * nblk, rows_chunk((int64_t)C * LNCF_BLOCK, 16384), lncf_range, &c);
}

/* ---- softmax over the last dim ------------------------------------------ */

typedef struct {
    float *y;       /* (rows, n) */
    const float *x; /* (rows, n) */
    int n;
} sm_ctx;

static void sm_range(void *vctx, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const sm_ctx *c = vctx;
    const int n = c->n;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * n;
        float *y = c->y + r * n;
        sam_vf vm = sam_vsplat(-INFINITY);
        int j = 0;
        for (; j + SAM_VL <= n; j += SAM_VL) vm = sam_vmax(vm, *(const sam_vf *)(x + j));
        float mx = -INFINITY;
        for (int l = 0; l < SAM_VL; l++) mx = vm[l] > mx ? vm[l] : mx;
        for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
        const sam_vf vmx = sam_vsplat(mx);
#define SM_EXP(v) sam_vexp((v) - vmx)
        MAP_V(SM_EXP, y, x, 0, n);
#undef SM_EXP
        /* lane sums in float (as torch's vectorised reduction), combined in double */
        sam_vf vs = sam_vsplat(0.0f);
        for (j = 0; j + SAM_VL <= n; j += SAM_VL) vs += *(const sam_vf *)(y + j);
        double s = 0;
        for (int l = 0; l < SAM_VL; l++) s += vs[l];
        for (; j < n; j++) s += y[j];
        const float inv = (float)(1.0 / s);
        for (j = 0; j < n; j++) y[j] *= inv;
    }
}

void sam_cpu_softmax(sam_backend *be, float *y, const float *x, int64_t rows, int n) {
    if (rows <= 0 || n <= 0) return;
    sm_ctx c = {y, x, n};
    sam_parallel_for(be->pool, rows, rows_chunk(n, 4096), sm_range, &c);
}

/* ---- linear epilogue ------------------------------------------------------ */

/* y = act(src + bias) + res over one output tile, one row at a time (the tile
 * is hot in cache). Each element of res is read before the same element of y
 * is written, so res == y and src == y are both fine. */
void sam_cpu_ep_apply(float *y, int64_t ldy, const float *src, int64_t lds, int rows, int cols, const float *bias,
                      sam_act act, const float *res, int64_t ldr) {
    for (int r = 0; r < rows; r++) {
        const float *s = src + r * lds;
        const float *q = res ? res + r * ldr : NULL;
        float *d = y + r * ldy;
        int j = 0;
        for (; j + SAM_VL <= cols; j += SAM_VL) {
            sam_vf v = *(const sam_vf *)(s + j);
            if (bias) v += *(const sam_vf *)(bias + j);
            if (act == SAM_ACT_GELU)
                v = sam_vgelu(v);
            else if (act == SAM_CPU_ACT_GELU_FAST)
                v = sam_vgelu_fast(v);
            else if (act == SAM_ACT_RELU)
                v = sam_vselect(v > sam_vsplat(0.0f), v, sam_vsplat(0.0f));
            if (q) v += *(const sam_vf *)(q + j);
            *(sam_vf *)(d + j) = v;
        }
        if (j < cols) { /* tail through zero-padded buffers: same per-element results */
            float vb[SAM_VL] = {0}, qb[SAM_VL] = {0}, bb[SAM_VL] = {0};
            const size_t n = (size_t)(cols - j) * sizeof(float);
            memcpy(vb, s + j, n);
            if (bias) memcpy(bb, bias + j, n);
            if (q) memcpy(qb, q + j, n);
            sam_vf v = *(const sam_vf *)vb + *(const sam_vf *)bb;
            if (!bias) v = *(const sam_vf *)vb;
            if (act == SAM_ACT_GELU)
                v = sam_vgelu(v);
            else if (act == SAM_CPU_ACT_GELU_FAST)
                v = sam_vgelu_fast(v);
            else if (act == SAM_ACT_RELU)
                v = sam_vselect(v > sam_vsplat(0.0f), v, sam_vsplat(0.0f));
            if (q) v += *(const sam_vf *)qb;
            memcpy(d + j, &v, n);
        }
    }
}
