/* Times the CUDA back end's kernels at the model's real sizes (SAM 2.1
 * Hiera-L at 1024x1024, the memory attention over 7 memories + pointers) in
 * fp32 and bf16 mode (plus const-memory weights, RoPE, bf16 storage and a
 * mask download, issue 8): median of a few runs after a warm-up, milliseconds per
 * call and GFLOP/s for the products. Inputs are random (timings only; the
 * tests check the numbers). Ends with one JSON line. Exit 77 without a GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_backend.h"
#include "ops/ops.h"

#define RUNS 7

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static sam_backend *be;
static char json[8192];
static size_t jlen;
static int failed;

/* A random device buffer of n floats (uniform [-1, 1)). */
static float *drand_buf(size_t n, unsigned seed) {
    float *h = malloc(n * sizeof(float));
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        h[i] = (float)((s >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
    }
    float *d = sam_cuda_malloc(be, n * sizeof(float));
    if (!d || sam_cuda_upload(be, d, h, n * sizeof(float)) != SAM2D_OK) {
        fprintf(stderr, "FATAL: device buffer of %zu floats: %s\n", n, sam2d_last_error());
        exit(1);
    }
    free(h);
    return d;
}

typedef void (*op_fn)(void *ctx);

static void timeit(const char *name, op_fn fn, void *ctx, double gflop) {
    fn(ctx); /* warm-up (scratch growth, cuBLAS heuristics) */
    if (sam_cuda_sync(be) != SAM2D_OK) {
        printf("%-46s FAILED: %s\n", name, sam_cuda_error_message(be));
        sam_cuda_clear_error(be);
        failed++;
        return;
    }
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_s();
        fn(ctx);
        sam_cuda_sync(be);
        t[r] = now_s() - t0;
    }
    qsort(t, RUNS, sizeof t[0], cmp_d);
    const double ms = t[RUNS / 2] * 1e3;
    if (gflop > 0)
        printf("%-46s %9.3f ms  %8.1f GFLOP/s\n", name, ms, gflop / (ms * 1e-3));
    else
        printf("%-46s %9.3f ms\n", name, ms);
    jlen += snprintf(json + jlen, sizeof json - jlen, "%s\"%s %s\":%.4f", jlen > 1 ? "," : "",
                     sam_precision_name(be->precision), name, ms);
}

/* ---- the ops ---- */

typedef struct {
    float *y, *x, *w, *b;
    int M, N, K;
} lin_ctx;
static void run_linear(void *c) {
    lin_ctx *l = c;
    be->linear(be, l->y, l->x, l->w, l->b, l->M, l->N, l->K);
}

typedef struct {
    float *o, *q, *k, *v;
    sam_attn_params p;
} att_ctx;
static void run_attn(void *c) {
    att_ctx *a = c;
    be->attention(be, a->o, a->q, a->k, a->v, &a->p);
}

typedef struct {
    float *y, *x, *w, *b;
    sam_conv2d_params p;
} conv_ctx;
static void run_conv(void *c) {
    conv_ctx *v = c;
    be->conv2d(be, v->y, v->x, v->w, v->b, &v->p);
}

typedef struct {
    float *y, *x, *g, *b;
    int64_t rows;
    int C;
} ln_ctx;
static void run_ln(void *c) {
    ln_ctx *l = c;
    be->layer_norm(be, l->y, l->x, l->g, l->b, l->rows, l->C, 1e-6f);
}
static void run_gelu(void *c) {
    ln_ctx *l = c;
    be->gelu(be, l->y, l->x, l->rows * l->C);
}

typedef struct {
    float *y, *x;
    int C, Hi, Wi, Ho, Wo;
    bool aa;
} rs_ctx;
static void run_resize(void *c) {
    rs_ctx *r = c;
    be->resize_bilinear(be, r->y, r->x, r->C, r->Hi, r->Wi, r->Ho, r->Wo, r->aa);
}

/* issue 8: const memory (managed, published) as weights, the small kernels of the tracker, a mask download */
typedef struct {
    float *x, *c, *s, *f; /* x (rows, 256) buffer, cos/sin (L, 128) const, f (rows*64) buffer */
    uint16_t *h;          /* (rows*64) bf16 buffer */
    float *host;          /* (n) host */
    int64_t rows, L, n;
} misc_ctx;
static void run_rope(void *c) {
    misc_ctx *m = c;
    be->rope(be, m->x, m->rows, 256, 1, 256, m->c, m->s, m->L);
}
static void run_bf16(void *c) {
    misc_ctx *m = c;
    be->to_bf16(be, m->h, m->f, m->rows * 64);
    be->from_bf16(be, m->f, m->h, m->rows * 64);
}
static void run_download(void *c) {
    misc_ctx *m = c;
    be->to_host(be, m->host, m->x, (size_t)m->n * sizeof(float));
}

/* A (n) const copy of a device buffer's contents, published. */
static float *const_copy(const float *dev, size_t n) {
    float *c = be->const_alloc(be, n * sizeof(float));
    if (!c) {
        fprintf(stderr, "FATAL: const memory of %zu floats: %s\n", n, sam2d_last_error());
        exit(1);
    }
    be->to_host(be, c, dev, n * sizeof(float)); /* the host writes const memory before publishing */
    be->const_publish(be, c, n * sizeof(float));
    return c;
}

static void misc_bench(void) {
    /* linear with its weight and bias in const memory: should time as with device buffers */
    lin_ctx l = {drand_buf((size_t)4096 * 2304, 1), drand_buf((size_t)4096 * 576, 2), NULL, NULL, 4096, 2304, 576};
    float *w = drand_buf((size_t)2304 * 576, 3), *b = drand_buf(2304, 4);
    l.w = const_copy(w, (size_t)2304 * 576);
    l.b = const_copy(b, 2304);
    timeit("linear 4096x2304x576 const weights", run_linear, &l, 2e-9 * 4096.0 * 2304 * 576);
    be->const_free(be, l.w), be->const_free(be, l.b);
    sam_cuda_free(be, w), sam_cuda_free(be, b), sam_cuda_free(be, l.y), sam_cuda_free(be, l.x);

    const int64_t rows = 7 * 4096, L = 4096, n = (int64_t)1080 * 1920;
    misc_ctx m = {drand_buf((size_t)rows * 256, 5), NULL, NULL, drand_buf((size_t)rows * 64, 6), NULL,
                  malloc((size_t)n * sizeof(float)), rows, L, n};
    float *cs = drand_buf((size_t)L * 128, 7), *sn = drand_buf((size_t)L * 128, 8);
    m.c = const_copy(cs, (size_t)L * 128);
    m.s = const_copy(sn, (size_t)L * 128);
    m.h = be->buf_alloc(be, (size_t)rows * 64 * sizeof(uint16_t));
    timeit("rope 7x4096 tokens d256 (const tables)", run_rope, &m, 0);
    timeit("to_bf16 + from_bf16 7x4096x64", run_bf16, &m, 0);
    timeit("to_host 1080x1920 floats (pageable)", run_download, &m, 0);
    be->const_free(be, m.c), be->const_free(be, m.s);
    be->buf_free(be, m.h);
    sam_cuda_free(be, cs), sam_cuda_free(be, sn), sam_cuda_free(be, m.x), sam_cuda_free(be, m.f);
    free(m.host);
}

static void linear_bench(int M, int N, int K, bool prepare) {
    lin_ctx l = {drand_buf((size_t)M * N, 1), drand_buf((size_t)M * K, 2), drand_buf((size_t)N * K, 3),
                 drand_buf(N, 4), M, N, K};
    if (prepare) be->linear_prepare(be, l.w, N, K);
    char name[96];
    snprintf(name, sizeof name, "linear %dx%dx%d%s", M, N, K, prepare ? " prepared" : "");
    timeit(name, run_linear, &l, 2e-9 * M * N * K);
    if (prepare) be->linear_forget(be, l.w);
    sam_cuda_free(be, l.y), sam_cuda_free(be, l.x), sam_cuda_free(be, l.w), sam_cuda_free(be, l.b);
}

static void attn_bench(const char *what, int batch, int heads, int Lq, int Lk, int d, int path) {
    att_ctx a;
    a.p = sam_attn_dense(heads, Lq, Lk, d, d);
    a.p.batch = batch;
    a.q = drand_buf((size_t)batch * Lq * heads * d, 5);
    a.k = drand_buf((size_t)batch * Lk * heads * d, 6);
    a.v = drand_buf((size_t)batch * Lk * heads * d, 7);
    a.o = drand_buf((size_t)batch * Lq * heads * d, 8);
    char name[128];
    snprintf(name, sizeof name, "attention %s b%d h%d %dx%d d%d %s", what, batch, heads, Lq, Lk, d,
             path == SAM_CUDA_ATTN_FLASH ? "flash" : path == SAM_CUDA_ATTN_CHUNKED ? "chunked" : "auto");
    sam_cuda_set_attention_path(be, path);
    timeit(name, run_attn, &a, 4e-9 * batch * heads * (double)Lq * Lk * d);
    sam_cuda_set_attention_path(be, SAM_CUDA_ATTN_AUTO);
    sam_cuda_free(be, a.q), sam_cuda_free(be, a.k), sam_cuda_free(be, a.v), sam_cuda_free(be, a.o);
}

static void conv_bench(const char *what, sam_conv2d_params p) {
    const int Ho = sam_conv_out(p.H, p.kh, p.stride_h, p.pad_h), Wo = sam_conv_out(p.W, p.kw, p.stride_w, p.pad_w);
    conv_ctx c = {drand_buf((size_t)p.N * Ho * Wo * p.C_out, 9), drand_buf((size_t)p.N * p.H * p.W * p.C_in, 10),
                  drand_buf((size_t)p.C_out * (p.C_in / p.groups) * p.kh * p.kw, 11), drand_buf(p.C_out, 12), p};
    char name[96];
    snprintf(name, sizeof name, "conv2d %s", what);
    timeit(name, run_conv, &c,
           2e-9 * p.N * Ho * Wo * (double)p.C_out * (p.C_in / p.groups) * p.kh * p.kw);
    sam_cuda_free(be, c.y), sam_cuda_free(be, c.x), sam_cuda_free(be, c.w), sam_cuda_free(be, c.b);
}

static void run_all(sam_precision prec) {
    be = sam_backend_cuda_create(0, prec);
    if (!be) {
        fprintf(stderr, "FATAL: %s\n", sam2d_last_error());
        exit(1);
    }
    printf("== %s, %s\n", sam_cuda_device_name(be), sam_precision_name(prec));
    /* Hiera-L: stage 1 MLP (65536 tokens, 144 -> 576), stage 3 qkv and MLP (4096 tokens, 576) */
    linear_bench(65536, 576, 144, false);
    linear_bench(4096, 1728, 576, false);
    linear_bench(4096, 2304, 576, true);
    linear_bench(4096, 256, 256, false);
    misc_bench();
    /* memory attention: self (4096 tokens) and cross over 7 memories of 4096 + 64 pointer tokens */
    for (int path = SAM_CUDA_ATTN_FLASH; path <= SAM_CUDA_ATTN_CHUNKED; path++) {
        attn_bench("mem-self", 1, 1, 4096, 4096, 256, path);
        attn_bench("mem-cross", 1, 1, 4096, 7 * 4096 + 64, 256, path);
        attn_bench("hiera-global", 1, 8, 4096, 4096, 72, path); /* Hiera-L stage 3 global blocks */
    }
    attn_bench("hiera-win", 1024, 2, 64, 64, 72, SAM_CUDA_ATTN_AUTO); /* Hiera-L stage 1: 8x8 windows */
    attn_bench("decoder", 1, 8, 7, 4096, 16, SAM_CUDA_ATTN_AUTO);
    sam_conv2d_params pe = {1, 1024, 1024, 3, 144, 7, 7, 4, 4, 3, 3, 1};
    conv_bench("patch-embed 1024 3->144 7x7 s4", pe);
    sam_conv2d_params dw = {1, 64, 64, 256, 256, 7, 7, 1, 1, 3, 3, 256};
    conv_bench("depthwise 64x64x256 7x7", dw);
    sam_conv2d_params ds = {1, 512, 512, 4, 16, 3, 3, 2, 2, 1, 1, 1};
    conv_bench("mask-downsample 512 4->16 3x3 s2", ds);
    ln_ctx l = {drand_buf((size_t)65536 * 576, 13), drand_buf((size_t)65536 * 576, 14), drand_buf(576, 15),
                drand_buf(576, 16), 65536, 144};
    timeit("layer_norm 65536x144", run_ln, &l, 0);
    l.C = 576;
    timeit("gelu 65536x576", run_gelu, &l, 0);
    sam_cuda_free(be, l.y), sam_cuda_free(be, l.x), sam_cuda_free(be, l.g), sam_cuda_free(be, l.b);
    rs_ctx r = {drand_buf((size_t)3 * 1080 * 1920, 17), drand_buf((size_t)3 * 1080 * 1920, 18), 3, 1080, 1920, 1024,
                1024, true};
    timeit("resize antialias 3x1080x1920 -> 1024", run_resize, &r, 0);
    r.C = 1, r.Hi = 256, r.Wi = 256, r.Ho = 1080, r.Wo = 1920, r.aa = false;
    timeit("resize mask 256 -> 1080x1920", run_resize, &r, 0);
    sam_cuda_free(be, r.y), sam_cuda_free(be, r.x);
    printf("device bytes peak %zu\n", sam_cuda_bytes_peak(be));
    sam_backend_cuda_free(be);
}

int main(int argc, char **argv) {
    char why[256];
    if (!sam_cuda_available(why, sizeof why)) {
        printf("SKIP: no usable CUDA device: %s\n", why);
        return 77;
    }
    json[0] = '{';
    jlen = 1;
    run_all(SAM_PRECISION_FP32);
    if (!(argc > 1 && strcmp(argv[1], "--fp32-only") == 0)) run_all(SAM_PRECISION_BF16);
    snprintf(json + jlen, sizeof json - jlen, ",\"device\":\"%s\",\"failed\":%d}", why, failed);
    printf("%s\n", json);
    return failed ? 1 : 0;
}
