/* Kernel profiler for benchmarks: every entry of a back end's function table
 * is replaced by a wrapper that times the call and charges it (with the FLOPs
 * its arguments imply, for matmul-like kernels) to the current stage. Model
 * code keeps calling through the same table, so nothing else changes. */
#include <string.h>
#include <time.h>

#include "predictor/bench_run.h"

static sam_backend orig;            /* the kernels before wrapping (the CPU back end's, same for every instance) */
static sam_prof_stage stages[SAM_PROF_MAX_STAGES];
static int n_stages;
static int cur = -1;                /* index into stages, -1: not recording */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void charge(const char *op, double t0, double flops) {
    const double dt = now_s() - t0;
    if (cur < 0) return;
    sam_prof_stage *st = &stages[cur];
    st->seconds += dt;
    int i = 0;
    while (i < st->n_ops && st->ops[i].name != op) i++;
    if (i == st->n_ops) {
        if (st->n_ops == SAM_PROF_MAX_OPS) return;
        st->ops[st->n_ops++].name = op;
    }
    st->ops[i].calls++;
    st->ops[i].seconds += dt;
    st->ops[i].flops += flops;
}

const char *sam_prof_set_stage(const char *name) {
    const char *prev = cur >= 0 ? stages[cur].name : NULL;
    if (!name) {
        cur = -1;
        return prev;
    }
    int i = 0;
    while (i < n_stages && strcmp(stages[i].name, name) != 0) i++;
    if (i == n_stages) {
        if (n_stages == SAM_PROF_MAX_STAGES) {
            cur = -1;
            return prev;
        }
        memset(&stages[i], 0, sizeof(stages[i]));
        stages[i].name = name;
        n_stages++;
    }
    if (i != cur) stages[i].entries++;
    cur = i;
    return prev;
}

void sam_prof_reset(void) {
    n_stages = 0;
    cur = -1;
    memset(stages, 0, sizeof(stages));
}

int sam_prof_stages(const sam_prof_stage **out) {
    *out = stages;
    return n_stages;
}

/* ---- wrappers: same signatures as ops.h ---- */

static void w_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    double t = now_s();
    orig.linear(be, y, x, w, b, M, N, K);
    charge("linear", t, 2.0 * M * N * K);
}
static void w_gemm(sam_backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    double t = now_s();
    orig.gemm(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    charge("gemm", t, 2.0 * M * N * K);
}
static void w_conv2d(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                     const sam_conv2d_params *p) {
    double t = now_s();
    orig.conv2d(be, y, x, w, b, p);
    const double ho = sam_conv_out(p->H, p->kh, p->stride_h, p->pad_h), wo = sam_conv_out(p->W, p->kw, p->stride_w, p->pad_w);
    const int g = p->groups > 0 ? p->groups : 1;
    const char *name = g > 1 && g == p->C_in ? "conv2d_depthwise" : p->kh * p->kw == 1 ? "conv2d_1x1" : "conv2d";
    charge(name, t, 2.0 * p->N * ho * wo * p->C_out * (p->C_in / g) * p->kh * p->kw);
}
static void w_convt(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N, int H, int W,
                    int C_in, int C_out) {
    double t = now_s();
    orig.conv_transpose2x2(be, y, x, w, b, N, H, W, C_in, C_out);
    charge("conv_transpose2x2", t, 2.0 * N * H * W * C_in * C_out * 4);
}
static void w_layer_norm(sam_backend *be, float *y, const float *x, const float *g, const float *b, int64_t rows,
                         int C, float eps) {
    double t = now_s();
    orig.layer_norm(be, y, x, g, b, rows, C, eps);
    charge("layer_norm", t, 0);
}
static void w_layer_norm_cf(sam_backend *be, float *y, const float *x, const float *g, const float *b, int N, int C,
                            int64_t HW, float eps) {
    double t = now_s();
    orig.layer_norm_cf(be, y, x, g, b, N, C, HW, eps);
    charge("layer_norm", t, 0);
}
#define UNARY(fn)                                                                  \
    static void w_##fn(sam_backend *be, float *y, const float *x, int64_t n) {     \
        double t = now_s();                                                        \
        orig.fn(be, y, x, n);                                                      \
        charge(#fn, t, 0);                                                         \
    }
UNARY(gelu)
UNARY(relu)
UNARY(sigmoid)
#undef UNARY
#define BINARY(fn)                                                                           \
    static void w_##fn(sam_backend *be, float *y, const float *a, const float *b, int64_t n) { \
        double t = now_s();                                                                  \
        orig.fn(be, y, a, b, n);                                                             \
        charge("eltwise", t, 0);                                                             \
    }
BINARY(add)
BINARY(mul)
#undef BINARY
static void w_add_row(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C) {
    double t = now_s();
    orig.add_row(be, y, x, b, rows, C);
    charge("eltwise", t, 0);
}
static void w_mul_row(sam_backend *be, float *y, const float *x, const float *s, int64_t rows, int C) {
    double t = now_s();
    orig.mul_row(be, y, x, s, rows, C);
    charge("eltwise", t, 0);
}
static void w_axpby(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n) {
    double t = now_s();
    orig.axpby(be, y, a, alpha, b, beta, n);
    charge("eltwise", t, 0);
}
static void w_softmax(sam_backend *be, float *y, const float *x, int64_t rows, int n) {
    double t = now_s();
    orig.softmax(be, y, x, rows, n);
    charge("softmax", t, 0);
}
static void w_maxpool(sam_backend *be, float *y, const float *x, int N, int H, int W, int C) {
    double t = now_s();
    orig.maxpool2x2(be, y, x, N, H, W, C);
    charge("maxpool2x2", t, 0);
}
static void w_resize(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo, bool aa) {
    double t = now_s();
    orig.resize_bilinear(be, y, x, C, Hi, Wi, Ho, Wo, aa);
    charge("resize_bilinear", t, 0);
}
static void w_upsample(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw) {
    double t = now_s();
    orig.upsample_nearest(be, y, x, N, H, W, C, fh, fw);
    charge("upsample_nearest", t, 0);
}
static void w_permute(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm) {
    double t = now_s();
    orig.permute(be, y, x, ndim, shape, perm);
    charge("permute", t, 0);
}
static void w_concat(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows) {
    double t = now_s();
    orig.concat_last(be, y, xs, Cs, nparts, rows);
    charge("concat_last", t, 0);
}
static void w_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                        const sam_attn_params *p) {
    double t = now_s();
    orig.attention(be, out, q, k, v, p);
    /* long key sequences are the memory bank's cross-attention: keep them apart */
    const char *name = p->Lk > 8192 ? "attention_memory" : "attention";
    charge(name, t, 2.0 * p->batch * p->heads * (double)p->Lq * p->Lk * (p->d_qk + p->d_v));
}

static void w_linear_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                        sam_act act, const float *res) {
    double t = now_s();
    orig.linear_ep(be, y, x, w, b, M, N, K, act, res);
    charge("linear_ep", t, 2.0 * M * N * K);
}
static void w_win_part(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0, int nwin,
                       bool norm, const float *g, const float *b, float eps) {
    double t = now_s();
    orig.window_partition(be, y, x, H, W, C, wh, ww, w0, nwin, norm, g, b, eps);
    charge("window_partition", t, 0);
}
static void w_win_unpart(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                         int nwin) {
    double t = now_s();
    orig.window_unpartition_add(be, y, x, H, W, C, wh, ww, w0, nwin);
    charge("window_unpartition", t, 0);
}
static void w_maxpool_ld(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx) {
    double t = now_s();
    orig.maxpool2x2_ld(be, y, x, N, H, W, C, ldx);
    charge("maxpool2x2", t, 0);
}

bool sam_prof_install(sam_backend *be) {
    sam_prof_reset();
    /* host timers around queued GPU kernels would time the launches, and a device back end's
     * table is not the CPU one this file copies: the CPU back end only */
    if (!be || !be->name || strcmp(be->name, "cpu") != 0) return false;
    if (be->linear == w_linear) return true; /* already wrapped */
    orig = *be;
#define WRAP(field, fn) \
    if (be->field) be->field = fn
    WRAP(linear, w_linear);
    WRAP(gemm, w_gemm);
    WRAP(conv2d, w_conv2d);
    WRAP(conv_transpose2x2, w_convt);
    WRAP(layer_norm, w_layer_norm);
    WRAP(layer_norm_cf, w_layer_norm_cf);
    WRAP(gelu, w_gelu);
    WRAP(relu, w_relu);
    WRAP(sigmoid, w_sigmoid);
    WRAP(add, w_add);
    WRAP(mul, w_mul);
    WRAP(add_row, w_add_row);
    WRAP(mul_row, w_mul_row);
    WRAP(axpby, w_axpby);
    WRAP(softmax, w_softmax);
    WRAP(maxpool2x2, w_maxpool);
    WRAP(resize_bilinear, w_resize);
    WRAP(upsample_nearest, w_upsample);
    WRAP(permute, w_permute);
    WRAP(concat_last, w_concat);
    WRAP(attention, w_attention);
    WRAP(linear_ep, w_linear_ep);
    WRAP(window_partition, w_win_part);
    WRAP(window_unpartition_add, w_win_unpart);
    WRAP(maxpool2x2_ld, w_maxpool_ld);
#undef WRAP
    return true;
}
