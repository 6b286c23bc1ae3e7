/* Every kernel of the CUDA back end against the CPU back end on the same
 * random inputs: odd sizes (tails, partial tiles), the model's real shapes
 * (scaled where the CPU reference would be slow), strides, in-place calls.
 * Compared by normalised error max|gpu - cpu| / max|cpu| with a stated
 * tolerance: fp32 1e-6 for element-wise work, 1e-5 for sums (GEMMs, convs,
 * attention: different summation order); bf16 mode 2e-2 against fp32.
 * Outputs start as NaN so an element a kernel forgets to write fails.
 * Exits 77 (ctest: skipped) when no usable CUDA device is present. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "ops/ops.h"
#include "cuda_test_util.h"
#include "test_util.h"

static sam_backend *cpu, *gpu, *gpu16;

/* Device buffers of the current case, freed by case_end(). */
#define MAXBUF 64
static void *dbufs[MAXBUF];
static int ndbufs;
static sam_backend *dbuf_owner[MAXBUF];

static float *dalloc_on(sam_backend *be, size_t n) {
    float *d = sam_cuda_malloc(be, (n ? n : 1) * sizeof(float));
    if (!d) {
        fprintf(stderr, "FATAL: sam_cuda_malloc(%zu floats) failed: %s\n", n, sam2d_last_error());
        exit(1);
    }
    if (ndbufs == MAXBUF) {
        fprintf(stderr, "FATAL: too many buffers in one case\n");
        exit(1);
    }
    dbuf_owner[ndbufs] = be;
    dbufs[ndbufs++] = d;
    return d;
}

/* A device copy of host data h (n floats) on back end be. */
static float *dcopy_on(sam_backend *be, const float *h, size_t n) {
    float *d = dalloc_on(be, n);
    if (n) CHECK(sam_cuda_upload(be, d, h, n * sizeof(float)) == SAM2D_OK);
    return d;
}
static float *dcopy(const float *h, size_t n) { return dcopy_on(gpu, h, n); }

static void fetch_on(sam_backend *be, float *h, const float *d, size_t n) {
    if (n) CHECK(sam_cuda_download(be, h, d, n * sizeof(float)) == SAM2D_OK);
}
static void fetch(float *h, const float *d, size_t n) { fetch_on(gpu, h, d, n); }

static void case_end(void) {
    CHECK_MSG(sam_cuda_sync(gpu) == SAM2D_OK, "gpu: %s", sam_cuda_error_message(gpu));
    if (gpu16) CHECK_MSG(sam_cuda_sync(gpu16) == SAM2D_OK, "gpu16: %s", sam_cuda_error_message(gpu16));
    for (int i = 0; i < ndbufs; i++) sam_cuda_free(dbuf_owner[i], dbufs[i]);
    ndbufs = 0;
}

static float *hnan(size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    return h;
}

static double worst_norm;
static char worst_name[160];

/* max|got - want| / max|want|; NaN anywhere counts as infinite. */
static void check_norm(const char *name, const float *got, const float *want, size_t n, double tol) {
    double md = 0, mw = 0;
    size_t where = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (d != d) d = INFINITY;
        if (d > md) {
            md = d;
            where = i;
        }
        double w = fabs((double)want[i]);
        if (w > mw) mw = w;
    }
    double e = md / (mw > 1e-30 ? mw : 1e-30);
    if (md == 0) e = 0;
    printf("%-60s norm err %.3g (tol %.0e)\n", name, e, tol);
    if (e > worst_norm && e <= tol) {
        worst_norm = e;
        snprintf(worst_name, sizeof worst_name, "%s", name);
    }
    CHECK_MSG(e <= tol, "%s: normalised error %.3g > %.0e at %zu (gpu %g cpu %g)", name, e, tol, where,
              n ? (double)got[where] : 0.0, n ? (double)want[where] : 0.0);
}

/* ---- GEMMs ------------------------------------------------------------------ */

static void linear_case(int M, int N, int K, bool bias) {
    float *x = hrand((size_t)M * K, 1 + M, 1), *w = hrand((size_t)N * K, 2 + N, 0.1f), *b = hrand(N, 3, 1);
    float *want = hnan((size_t)M * N), *got = hnan((size_t)M * N);
    cpu->linear(cpu, want, x, w, bias ? b : NULL, M, N, K);
    float *dx = dcopy(x, (size_t)M * K), *dw = dcopy(w, (size_t)N * K), *db = dcopy(b, N);
    float *dy = dcopy(got, (size_t)M * N);
    gpu->linear(gpu, dy, dx, dw, bias ? db : NULL, M, N, K);
    fetch(got, dy, (size_t)M * N);
    char name[128];
    snprintf(name, sizeof name, "linear M=%d N=%d K=%d bias=%d", M, N, K, bias);
    check_norm(name, got, want, (size_t)M * N, K == 0 ? 0 : 1e-5);
    case_end();
    free(x), free(w), free(b), free(want), free(got);
}

static void gemm_case(bool ta, bool tb, int M, int N, int K, int pad, float alpha, float beta) {
    /* stored shapes: A (M, K) or (K, M); B (K, N) or (N, K); each row padded by `pad` */
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    size_t na = (size_t)ar * lda, nb = (size_t)br * ldb, nc = (size_t)M * ldc;
    float *A = hrand(na, 11, 1), *B = hrand(nb, 12, 1), *C0 = hrand(nc, 13, 1);
    float *want = malloc(nc * 4), *got = malloc(nc * 4);
    memcpy(want, C0, nc * 4);
    cpu->gemm(cpu, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, want, ldc);
    float *dA = dcopy(A, na), *dB = dcopy(B, nb), *dC = dcopy(C0, nc);
    gpu->gemm(gpu, ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
    fetch(got, dC, nc);
    char name[128];
    snprintf(name, sizeof name, "gemm ta=%d tb=%d M=%d N=%d K=%d pad=%d a=%g b=%g", ta, tb, M, N, K, pad, alpha, beta);
    check_norm(name, got, want, nc, 1e-5); /* the padding columns must stay as they were: compared too */
    case_end();
    free(A), free(B), free(C0), free(want), free(got);
}

static void bf16_linear_case(int M, int N, int K) {
    float *x = hrand((size_t)M * K, 21, 1), *w = hrand((size_t)N * K, 22, 0.1f), *b = hrand(N, 23, 1);
    float *want = hnan((size_t)M * N), *got = hnan((size_t)M * N), *got2 = hnan((size_t)M * N);
    cpu->linear(cpu, want, x, w, b, M, N, K); /* fp32 reference */
    float *dx = dcopy_on(gpu16, x, (size_t)M * K), *dw = dcopy_on(gpu16, w, (size_t)N * K), *db = dcopy_on(gpu16, b, N);
    float *dy = dcopy_on(gpu16, got, (size_t)M * N);
    gpu16->linear(gpu16, dy, dx, dw, db, M, N, K);
    fetch_on(gpu16, got, dy, (size_t)M * N);
    char name[128];
    snprintf(name, sizeof name, "bf16 linear M=%d N=%d K=%d (vs fp32)", M, N, K);
    check_norm(name, got, want, (size_t)M * N, 2e-2);
    /* a prepared weight gives the same numbers */
    CHECK(gpu16->linear_prepare(gpu16, dw, N, K));
    gpu16->linear(gpu16, dy, dx, dw, db, M, N, K);
    fetch_on(gpu16, got2, dy, (size_t)M * N);
    snprintf(name, sizeof name, "bf16 linear M=%d N=%d K=%d prepared == unprepared", M, N, K);
    check_norm(name, got2, got, (size_t)M * N, 1e-6);
    gpu16->linear_forget(gpu16, dw);
    case_end();
    free(x), free(w), free(b), free(want), free(got), free(got2);
}

static void bf16_gemm_case(int M, int N, int K) {
    /* bf16 mode may use TF32 in gemm: close to fp32, not equal */
    float *A = hrand((size_t)M * K, 31, 1), *B = hrand((size_t)N * K, 32, 1);
    float *want = hnan((size_t)M * N), *got = hnan((size_t)M * N);
    cpu->gemm(cpu, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, want, N);
    float *dA = dcopy_on(gpu16, A, (size_t)M * K), *dB = dcopy_on(gpu16, B, (size_t)N * K);
    float *dC = dcopy_on(gpu16, got, (size_t)M * N);
    gpu16->gemm(gpu16, false, true, M, N, K, 1.0f, dA, K, dB, K, 0.0f, dC, N);
    fetch_on(gpu16, got, dC, (size_t)M * N);
    check_norm("bf16-mode gemm (TF32 allowed, vs fp32)", got, want, (size_t)M * N, 1e-2);
    case_end();
    free(A), free(B), free(want), free(got);
}

/* ---- convolutions ------------------------------------------------------------------ */

static void conv_case(int N, int H, int W, int Ci, int Co, int kh, int kw, int sh, int sw, int ph, int pw, int G,
                      bool bias) {
    sam_conv2d_params p = {N, H, W, Ci, Co, kh, kw, sh, sw, ph, pw, G};
    const int Ho = sam_conv_out(H, kh, sh, ph), Wo = sam_conv_out(W, kw, sw, pw);
    size_t nx = (size_t)N * H * W * Ci, nw = (size_t)Co * (Ci / G) * kh * kw, ny = (size_t)N * Ho * Wo * Co;
    float *x = hrand(nx, 41, 1), *w = hrand(nw, 42, 0.2f), *b = hrand(Co, 43, 1);
    float *want = hnan(ny), *got = hnan(ny);
    cpu->conv2d(cpu, want, x, w, bias ? b : NULL, &p);
    float *dx = dcopy(x, nx), *dw = dcopy(w, nw), *db = dcopy(b, Co), *dy = dcopy(got, ny);
    gpu->conv2d(gpu, dy, dx, dw, bias ? db : NULL, &p);
    fetch(got, dy, ny);
    char name[160];
    snprintf(name, sizeof name, "conv2d %dx%dx%dx%d->%d k%dx%d s%dx%d p%dx%d g%d bias=%d", N, H, W, Ci, Co, kh, kw, sh,
             sw, ph, pw, G, bias);
    check_norm(name, got, want, ny, 1e-5);
    case_end();
    free(x), free(w), free(b), free(want), free(got);
}

static void convt_case(int N, int H, int W, int Ci, int Co, bool bias) {
    size_t nx = (size_t)N * H * W * Ci, nw = (size_t)Ci * Co * 4, ny = (size_t)N * 4 * H * W * Co;
    float *x = hrand(nx, 51, 1), *w = hrand(nw, 52, 0.2f), *b = hrand(Co, 53, 1);
    float *want = hnan(ny), *got = hnan(ny);
    cpu->conv_transpose2x2(cpu, want, x, w, bias ? b : NULL, N, H, W, Ci, Co);
    float *dx = dcopy(x, nx), *dw = dcopy(w, nw), *db = dcopy(b, Co), *dy = dcopy(got, ny);
    gpu->conv_transpose2x2(gpu, dy, dx, dw, bias ? db : NULL, N, H, W, Ci, Co);
    fetch(got, dy, ny);
    char name[128];
    snprintf(name, sizeof name, "conv_transpose2x2 %dx%dx%dx%d->%d bias=%d", N, H, W, Ci, Co, bias);
    check_norm(name, got, want, ny, 1e-5);
    case_end();
    free(x), free(w), free(b), free(want), free(got);
}

/* ---- norms, element-wise, softmax ------------------------------------------------------ */

static void layer_norm_case(int64_t rows, int C, bool affine, bool inplace, float offset) {
    size_t n = (size_t)rows * C;
    float *x = hrand(n, 61, 3), *g = hrand(C, 62, 1), *b = hrand(C, 63, 1);
    for (size_t i = 0; i < n; i++) x[i] += offset; /* a large mean: the variance pass must cope */
    float *want = hnan(n), *got = hnan(n);
    cpu->layer_norm(cpu, want, x, affine ? g : NULL, affine ? b : NULL, rows, C, 1e-6f);
    float *dx = dcopy(x, n), *dg = dcopy(g, C), *db = dcopy(b, C), *dy = inplace ? dx : dcopy(got, n);
    gpu->layer_norm(gpu, dy, dx, affine ? dg : NULL, affine ? db : NULL, rows, C, 1e-6f);
    fetch(got, dy, n);
    char name[128];
    snprintf(name, sizeof name, "layer_norm rows=%lld C=%d affine=%d inplace=%d offset=%g", (long long)rows, C, affine,
             inplace, offset);
    check_norm(name, got, want, n, 1e-5);
    case_end();
    free(x), free(g), free(b), free(want), free(got);
}

static void layer_norm_cf_case(int N, int C, int64_t HW, bool affine) {
    size_t n = (size_t)N * C * HW;
    float *x = hrand(n, 71, 2), *g = hrand(C, 72, 1), *b = hrand(C, 73, 1);
    float *want = hnan(n), *got = hnan(n);
    cpu->layer_norm_cf(cpu, want, x, affine ? g : NULL, affine ? b : NULL, N, C, HW, 1e-6f);
    float *dx = dcopy(x, n), *dg = dcopy(g, C), *db = dcopy(b, C), *dy = dcopy(got, n);
    gpu->layer_norm_cf(gpu, dy, dx, affine ? dg : NULL, affine ? db : NULL, N, C, HW, 1e-6f);
    fetch(got, dy, n);
    char name[128];
    snprintf(name, sizeof name, "layer_norm_cf N=%d C=%d HW=%lld affine=%d", N, C, (long long)HW, affine);
    check_norm(name, got, want, n, 1e-5);
    case_end();
    free(x), free(g), free(b), free(want), free(got);
}

static void eltwise_cases(int64_t n) {
    float *a = hrand(n, 81, 6), *b = hrand(n, 82, 3), *want = hnan(n), *got = hnan(n);
    float *da = dcopy(a, n), *db = dcopy(b, n), *dy = dcopy(got, n);
    char name[96];
#define UNARY(op, tol)                                                    \
    cpu->op(cpu, want, a, n);                                             \
    gpu->op(gpu, dy, da, n);                                              \
    fetch(got, dy, n);                                                    \
    snprintf(name, sizeof name, #op " n=%lld", (long long)n);             \
    check_norm(name, got, want, n, tol);
#define BINARY(op, tol)                                                   \
    cpu->op(cpu, want, a, b, n);                                          \
    gpu->op(gpu, dy, da, db, n);                                          \
    fetch(got, dy, n);                                                    \
    snprintf(name, sizeof name, #op " n=%lld", (long long)n);             \
    check_norm(name, got, want, n, tol);
    UNARY(gelu, 1e-6)
    UNARY(relu, 0)
    UNARY(sigmoid, 1e-6)
    BINARY(add, 0)
    BINARY(mul, 0)
#undef UNARY
#undef BINARY
    cpu->axpby(cpu, want, a, 0.75f, b, -1.5f, n);
    gpu->axpby(gpu, dy, da, 0.75f, db, -1.5f, n);
    fetch(got, dy, n);
    snprintf(name, sizeof name, "axpby n=%lld", (long long)n);
    check_norm(name, got, want, n, 1e-6);
    /* in place */
    cpu->gelu(cpu, want, a, n);
    gpu->gelu(gpu, da, da, n);
    fetch(got, da, n);
    check_norm("gelu in place", got, want, n, 1e-6);
    case_end();
    free(a), free(b), free(want), free(got);
}

static void row_cases(int64_t rows, int C) {
    size_t n = (size_t)rows * C;
    float *x = hrand(n, 91, 2), *v = hrand(C, 92, 2), *want = hnan(n), *got = hnan(n);
    float *dx = dcopy(x, n), *dv = dcopy(v, C), *dy = dcopy(got, n);
    char name[96];
    cpu->add_row(cpu, want, x, v, rows, C);
    gpu->add_row(gpu, dy, dx, dv, rows, C);
    fetch(got, dy, n);
    snprintf(name, sizeof name, "add_row rows=%lld C=%d", (long long)rows, C);
    check_norm(name, got, want, n, 0);
    cpu->mul_row(cpu, want, x, v, rows, C);
    gpu->mul_row(gpu, dx, dx, dv, rows, C); /* in place */
    fetch(got, dx, n);
    snprintf(name, sizeof name, "mul_row rows=%lld C=%d (in place)", (long long)rows, C);
    check_norm(name, got, want, n, 0);
    case_end();
    free(x), free(v), free(want), free(got);
}

static void softmax_case(int64_t rows, int n, float scale, bool inplace) {
    size_t t = (size_t)rows * n;
    float *x = hrand(t, 101, scale), *want = hnan(t), *got = hnan(t);
    cpu->softmax(cpu, want, x, rows, n);
    float *dx = dcopy(x, t), *dy = inplace ? dx : dcopy(got, t);
    gpu->softmax(gpu, dy, dx, rows, n);
    fetch(got, dy, t);
    char name[96];
    snprintf(name, sizeof name, "softmax rows=%lld n=%d scale=%g inplace=%d", (long long)rows, n, scale, inplace);
    check_norm(name, got, want, t, 1e-5);
    case_end();
    free(x), free(want), free(got);
}

/* ---- resampling, layout -------------------------------------------------------------------- */

static void maxpool_case(int N, int H, int W, int C) {
    size_t nx = (size_t)N * H * W * C, ny = (size_t)N * (H / 2) * (W / 2) * C;
    float *x = hrand(nx, 111, 1), *want = hnan(ny), *got = hnan(ny);
    cpu->maxpool2x2(cpu, want, x, N, H, W, C);
    float *dx = dcopy(x, nx), *dy = dcopy(got, ny);
    gpu->maxpool2x2(gpu, dy, dx, N, H, W, C);
    fetch(got, dy, ny);
    char name[96];
    snprintf(name, sizeof name, "maxpool2x2 %dx%dx%dx%d", N, H, W, C);
    check_norm(name, got, want, ny, 0);
    case_end();
    free(x), free(want), free(got);
}

static void resize_case(int C, int Hi, int Wi, int Ho, int Wo, bool aa) {
    size_t nx = (size_t)C * Hi * Wi, ny = (size_t)C * Ho * Wo;
    float *x = hrand(nx, 121, 1), *want = hnan(ny), *got = hnan(ny);
    cpu->resize_bilinear(cpu, want, x, C, Hi, Wi, Ho, Wo, aa);
    float *dx = dcopy(x, nx), *dy = dcopy(got, ny);
    gpu->resize_bilinear(gpu, dy, dx, C, Hi, Wi, Ho, Wo, aa);
    fetch(got, dy, ny);
    char name[96];
    snprintf(name, sizeof name, "resize_bilinear %dx%dx%d -> %dx%d antialias=%d", C, Hi, Wi, Ho, Wo, aa);
    check_norm(name, got, want, ny, 1e-6);
    case_end();
    free(x), free(want), free(got);
}

static void upsample_case(int N, int H, int W, int C, int fh, int fw) {
    size_t nx = (size_t)N * H * W * C, ny = nx * fh * fw;
    float *x = hrand(nx, 131, 1), *want = hnan(ny), *got = hnan(ny);
    cpu->upsample_nearest(cpu, want, x, N, H, W, C, fh, fw);
    float *dx = dcopy(x, nx), *dy = dcopy(got, ny);
    gpu->upsample_nearest(gpu, dy, dx, N, H, W, C, fh, fw);
    fetch(got, dy, ny);
    char name[96];
    snprintf(name, sizeof name, "upsample_nearest %dx%dx%dx%d x%dx%d", N, H, W, C, fh, fw);
    check_norm(name, got, want, ny, 0);
    case_end();
    free(x), free(want), free(got);
}

static void permute_case(int ndim, const int64_t *shape, const int *perm) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float *x = hrand(n, 141, 1), *want = hnan(n), *got = hnan(n);
    cpu->permute(cpu, want, x, ndim, shape, perm);
    float *dx = dcopy(x, n), *dy = dcopy(got, n);
    gpu->permute(gpu, dy, dx, ndim, shape, perm);
    fetch(got, dy, n);
    char name[128];
    int o = snprintf(name, sizeof name, "permute (");
    for (int d = 0; d < ndim; d++) o += snprintf(name + o, sizeof name - o, "%lld%s", (long long)shape[d], d + 1 < ndim ? "," : ") perm (");
    for (int d = 0; d < ndim; d++) o += snprintf(name + o, sizeof name - o, "%d%s", perm[d], d + 1 < ndim ? "," : ")");
    check_norm(name, got, want, n, 0);
    case_end();
    free(x), free(want), free(got);
}

static void concat_case(int64_t rows) {
    const int Cs[4] = {3, 0, 17, 256};
    float *hx[4], *dx[4];
    int Ct = 0;
    for (int i = 0; i < 4; i++) {
        hx[i] = hrand((size_t)rows * Cs[i], 151 + i, 1);
        dx[i] = dcopy(hx[i], (size_t)rows * Cs[i]);
        Ct += Cs[i];
    }
    size_t ny = (size_t)rows * Ct;
    float *want = hnan(ny), *got = hnan(ny), *dy = dcopy(got, ny);
    cpu->concat_last(cpu, want, (const float *const *)hx, Cs, 4, rows);
    gpu->concat_last(gpu, dy, (const float *const *)dx, Cs, 4, rows);
    fetch(got, dy, ny);
    check_norm("concat_last rows=1001 C=3+0+17+256", got, want, ny, 0);
    case_end();
    for (int i = 0; i < 4; i++) free(hx[i]);
    free(want), free(got);
}

/* ---- attention ---------------------------------------------------------------------------- */

/* Both attention paths (fused kernel where the head dims allow it, cuBLAS
 * key chunks) against one CPU result. */
static void attention_run(sam_backend *g, const char *tag, const sam_attn_params *p, size_t nq, size_t nk, size_t nv,
                          size_t no, float qscale, double tol) {
    float *q = hrand(nq, 161, qscale), *k = hrand(nk, 162, 1), *v = hrand(nv, 163, 1);
    float *want = hrand(no, 164, 1), *got = malloc(no * 4), *init = malloc(no * 4);
    memcpy(init, want, no * 4); /* gaps in the output (strides) must stay as they were */
    cpu->attention(cpu, want, q, k, v, p);
    float *dq = dcopy_on(g, q, nq), *dk = dcopy_on(g, k, nk), *dv = dcopy_on(g, v, nv), *dy = dcopy_on(g, init, no);
    for (int path = SAM_CUDA_ATTN_FLASH; path <= SAM_CUDA_ATTN_CHUNKED; path++) {
        if (path == SAM_CUDA_ATTN_FLASH && (p->d_qk > 256 || p->d_v > 256)) continue;
        CHECK(sam_cuda_upload(g, dy, init, no * 4) == SAM2D_OK);
        sam_cuda_set_attention_path(g, path);
        g->attention(g, dy, dq, dk, dv, p);
        fetch_on(g, got, dy, no);
        char name[160];
        snprintf(name, sizeof name, "attention%s %s b=%d h=%d Lq=%d Lk=%d dqk=%d dv=%d qs=%g", tag,
                 path == SAM_CUDA_ATTN_FLASH ? "flash" : "chunked", p->batch, p->heads, p->Lq, p->Lk, p->d_qk, p->d_v,
                 qscale);
        check_norm(name, got, want, no, tol);
    }
    sam_cuda_set_attention_path(g, SAM_CUDA_ATTN_AUTO);
    case_end();
    free(q), free(k), free(v), free(want), free(got), free(init);
}

static void attention_dense(int heads, int Lq, int Lk, int dqk, int dv, float qscale) {
    sam_attn_params p = sam_attn_dense(heads, Lq, Lk, dqk, dv);
    attention_run(gpu, "", &p, (size_t)Lq * heads * dqk, (size_t)(Lk ? Lk : 1) * heads * dqk,
                  (size_t)(Lk ? Lk : 1) * heads * dv, (size_t)Lq * heads * dv, qscale, 1e-5);
}

/* q, k, v interleaved in one (B, L, 3, heads, d) buffer; output rows with a gap of 5. */
static void attention_packed(int B, int heads, int L, int d) {
    const int C = heads * d;
    sam_attn_params p = sam_attn_dense(heads, L, L, d, d);
    p.batch = B;
    p.q_stride = p.k_stride = p.v_stride = 3 * C;
    p.q_batch = p.k_batch = p.v_batch = (int64_t)L * 3 * C;
    p.o_stride = C + 5;
    p.o_batch = (int64_t)L * (C + 5);
    size_t nqkv = (size_t)B * L * 3 * C, no = (size_t)B * L * (C + 5);
    float *qkv = hrand(nqkv, 171, 1), *want = hrand(no, 172, 1), *got = malloc(no * 4), *init = malloc(no * 4);
    memcpy(init, want, no * 4);
    cpu->attention(cpu, want, qkv, qkv + C, qkv + 2 * C, &p);
    float *dqkv = dcopy(qkv, nqkv), *dy = dcopy(init, no);
    for (int path = SAM_CUDA_ATTN_FLASH; path <= SAM_CUDA_ATTN_CHUNKED; path++) {
        CHECK(sam_cuda_upload(gpu, dy, init, no * 4) == SAM2D_OK);
        sam_cuda_set_attention_path(gpu, path);
        gpu->attention(gpu, dy, dqkv, dqkv + C, dqkv + 2 * C, &p);
        fetch(got, dy, no);
        char name[128];
        snprintf(name, sizeof name, "attention packed qkv %s B=%d h=%d L=%d d=%d",
                 path == SAM_CUDA_ATTN_FLASH ? "flash" : "chunked", B, heads, L, d);
        check_norm(name, got, want, no, 1e-5);
    }
    sam_cuda_set_attention_path(gpu, SAM_CUDA_ATTN_AUTO);
    case_end();
    free(qkv), free(want), free(got), free(init);
}

/* ---- RoPE (the table's rope) against a host loop and the CPU back end's rope ------------------- */

static void rope_case(int64_t rows, int heads, int hd, int64_t L, int64_t pad) {
    const int half = hd / 2;
    const int64_t stride = (int64_t)heads * hd + pad;
    size_t nx = (size_t)rows * stride, nt = (size_t)L * half;
    float *x = hrand(nx, 191, 2), *cs = hrand(nt, 192, 1), *sn = hrand(nt, 193, 1), *want = malloc(nx * 4);
    float *got = malloc(nx * 4);
    memcpy(want, x, nx * 4);
    for (int64_t r = 0; r < rows; r++)
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++) {
                float *v = want + r * stride + (int64_t)h * hd + 2 * j;
                const float c = cs[(r % L) * half + j], s = sn[(r % L) * half + j];
                const float re = v[0], im = v[1];
                v[0] = re * c - im * s;
                v[1] = re * s + im * c;
            }
    float *dx = dcopy(x, nx), *dc = dcopy(cs, nt), *ds = dcopy(sn, nt);
    gpu->rope(gpu, dx, rows, stride, heads, hd, dc, ds, L);
    fetch(got, dx, nx);
    char name[96];
    snprintf(name, sizeof name, "rope rows=%lld heads=%d hd=%d L=%lld pad=%lld", (long long)rows, heads, hd,
             (long long)L, (long long)pad);
    check_norm(name, got, want, nx, 1e-6);
    float *cpu_out = malloc(nx * 4);
    memcpy(cpu_out, x, nx * 4);
    cpu->rope(cpu, cpu_out, rows, stride, heads, hd, cs, sn, L);
    check_norm("  the same against the CPU back end's rope", got, cpu_out, nx, 1e-6);
    free(cpu_out);
    case_end();
    free(x), free(cs), free(sn), free(want), free(got);
}

/* ---- several threads on one back end ------------------------------------------------------ */

typedef struct {
    const float *dx, *dw; /* device inputs shared by all threads */
    float *dy;            /* this thread's output */
    float *out;           /* host copy of the last result */
    int M, N, K, reps;
} thr_job;

static void *thr_main(void *v) {
    thr_job *j = v;
    for (int r = 0; r < j->reps; r++) {
        gpu->linear(gpu, j->dy, j->dx, j->dw, NULL, j->M, j->N, j->K);
        gpu->gelu(gpu, j->dy, j->dy, (int64_t)j->M * j->N);
        sam_cuda_download(gpu, j->out, j->dy, (size_t)j->M * j->N * sizeof(float));
    }
    return NULL;
}

static void threads_case(void) {
    enum { NT = 4, M = 200, N = 96, K = 160 };
    float *x = hrand((size_t)M * K, 181, 1), *w = hrand((size_t)N * K, 182, 0.1f), *want = hnan((size_t)M * N);
    cpu->linear(cpu, want, x, w, NULL, M, N, K);
    cpu->gelu(cpu, want, want, (int64_t)M * N);
    float *dx = dcopy(x, (size_t)M * K), *dw = dcopy(w, (size_t)N * K);
    pthread_t th[NT];
    thr_job jobs[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t] = (thr_job){dx, dw, dalloc_on(gpu, (size_t)M * N), hnan((size_t)M * N), M, N, K, 10};
        pthread_create(&th[t], NULL, thr_main, &jobs[t]);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < NT; t++) {
        check_norm("linear+gelu from 4 threads on one back end", jobs[t].out, want, (size_t)M * N, 1e-5);
        free(jobs[t].out);
    }
    case_end();
    free(x), free(w), free(want);
}

/* ---- back end plumbing -------------------------------------------------------------------- */

static void plumbing(void) {
    size_t before = sam_cuda_bytes_in_use(gpu);
    void *d = sam_cuda_malloc(gpu, 1 << 20);
    CHECK(d != NULL);
    CHECK(sam_cuda_bytes_in_use(gpu) == before + (1 << 20));
    CHECK(sam_cuda_bytes_peak(gpu) >= before + (1 << 20));
    float h[4] = {1, 2, 3, 4}, r[4] = {0};
    CHECK(sam_cuda_memset0(gpu, d, 1 << 20) == SAM2D_OK);
    CHECK(sam_cuda_upload(gpu, (char *)d + 16, h, sizeof h) == SAM2D_OK);
    CHECK(sam_cuda_copy(gpu, d, (char *)d + 16, sizeof h) == SAM2D_OK);
    CHECK(sam_cuda_download(gpu, r, d, sizeof r) == SAM2D_OK);
    CHECK(r[0] == 1 && r[3] == 4);
    float *pin = sam_cuda_host_alloc(1024);
    CHECK(pin != NULL);
    if (pin) {
        pin[0] = 7;
        CHECK(sam_cuda_upload_async(gpu, d, pin, 4) == SAM2D_OK);
        CHECK(sam_cuda_download(gpu, r, d, 4) == SAM2D_OK);
        CHECK(r[0] == 7);
        sam_cuda_host_free(pin);
    }
    sam_cuda_free(gpu, d);
    CHECK(sam_cuda_bytes_in_use(gpu) == before);
    CHECK(sam_backend_is_cuda(gpu) && !sam_backend_is_cuda(cpu));
    /* every entry of the table is filled (entries appended to ops.h later must be implemented too);
     * all members from `linear` on are function pointers */
    {
        typedef void (*any_fn)(void);
        const size_t n = (sizeof(sam_backend) - offsetof(sam_backend, linear)) / sizeof(any_fn);
        const char *base = (const char *)gpu + offsetof(sam_backend, linear);
        for (size_t i = 0; i < n; i++) {
            any_fn f;
            memcpy(&f, base + i * sizeof(any_fn), sizeof f);
            CHECK_MSG(f != NULL, "table entry %zu (counting from linear) is NULL in the CUDA back end", i);
        }
        printf("table: %zu entries, all set\n", n);
    }
    printf("device: %s\n", sam_cuda_device_name(gpu));

    /* SAM2_DEVICE resolution: the CUDA library registers itself, ops/select.c decides */
    sam_cuda_register();
    CHECK(sam_backend_gpu_name() && strcmp(sam_backend_gpu_name(), "cuda") == 0);
    sam_backend *a = sam_backend_create("cpu", 1, SAM_PRECISION_FP32);
    CHECK(a && !sam_backend_is_cuda(a) && strcmp(a->name, "cpu") == 0);
    sam_backend_free(a);
    a = sam_backend_create("auto", 1, SAM_PRECISION_BF16);
    CHECK(a && sam_backend_is_cuda(a) && a->precision == SAM_PRECISION_BF16);
    sam_backend_free(a);
    a = sam_backend_create("cuda:0", 1, SAM_PRECISION_FP32);
    CHECK(a && sam_backend_is_cuda(a));
    sam_backend_free(a);
    CHECK(sam_backend_create("cuda:99", 1, SAM_PRECISION_FP32) == NULL);
    CHECK(sam_backend_create("tpu", 1, SAM_PRECISION_FP32) == NULL);
    CHECK(strstr(sam2d_last_error(), "tpu") != NULL);

    /* a bad call records an error instead of crashing, and it can be cleared */
    sam_conv2d_params cp = {1, 4, 4, 3, 4, 1, 1, 1, 1, 0, 0, 2}; /* 2 groups do not divide 3 channels */
    float *dx = dalloc_on(gpu, 64);
    gpu->conv2d(gpu, dx, dx, dx, NULL, &cp);
    CHECK(sam_cuda_sync(gpu) == SAM2D_ERR_INVALID_ARG);
    CHECK(strstr(sam_cuda_error_message(gpu), "groups") != NULL);
    sam_cuda_clear_error(gpu);
    CHECK(sam_cuda_sync(gpu) == SAM2D_OK);
    case_end();
}

int main(void) {
    if (!cuda_test_gpu_present()) return 77;
    cpu = sam_backend_cpu_create_ex(0, SAM_PRECISION_FP32);
    gpu = sam_backend_cuda_create(0, SAM_PRECISION_FP32);
    gpu16 = sam_backend_cuda_create(0, SAM_PRECISION_BF16);
    if (!cpu || !gpu || !gpu16) {
        fprintf(stderr, "FATAL: back end creation failed: %s\n", sam2d_last_error());
        return 1;
    }

    plumbing();
    threads_case();
    rope_case(4096, 1, 256, 4096, 0);     /* memory attention queries */
    rope_case(3 * 4096 + 5, 1, 256, 4096, 0); /* keys of several memories: the table repeats */
    rope_case(77, 3, 16, 10, 7);          /* heads, padded rows */

    /* linear / gemm: odd sizes, the encoder's and the heads' shapes */
    linear_case(37, 53, 71, true);
    linear_case(1, 1, 1, false);
    linear_case(5, 7, 0, true); /* K = 0: bias only */
    linear_case(4096, 768, 256, true);
    linear_case(4096, 256, 1024, false);
    linear_case(1000, 3, 768, true);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gemm_case(ta, tb, 33, 45, 57, 3, 1.5f, 0.5f);
    gemm_case(false, true, 257, 129, 64, 0, 1.0f, 0.0f);
    gemm_case(true, false, 64, 64, 4096, 7, 0.125f, 1.0f);
    gemm_case(false, false, 9, 11, 0, 2, 1.0f, 0.5f); /* K = 0: C = beta C */

    /* convs: patch embed (C_in 3, 7x7 s4 p3), depthwise 7x7 (memory fuser), 3x3/2x2 stride 2
     * (mask downsampler, mask-input convs), 1x1, grouped, no bias */
    conv_case(1, 256, 256, 3, 96, 7, 7, 4, 4, 3, 3, 1, true);
    conv_case(1, 64, 64, 256, 256, 7, 7, 1, 1, 3, 3, 256, true);
    conv_case(2, 13, 17, 5, 5, 3, 5, 2, 1, 1, 2, 5, false);
    conv_case(1, 256, 256, 1, 4, 3, 3, 2, 2, 1, 1, 1, true);
    conv_case(1, 128, 128, 4, 16, 3, 3, 2, 2, 1, 1, 1, true);
    conv_case(1, 256, 256, 1, 4, 2, 2, 2, 2, 0, 0, 1, true);
    conv_case(1, 64, 64, 256, 64, 1, 1, 1, 1, 0, 0, 1, true);
    conv_case(2, 9, 11, 6, 10, 3, 3, 1, 1, 1, 1, 2, true);
    conv_case(1, 7, 9, 4, 8, 1, 1, 2, 2, 0, 0, 1, false); /* 1x1 strided: not the linear path */

    convt_case(1, 64, 64, 256, 64, true);
    convt_case(1, 128, 128, 64, 32, true);
    convt_case(2, 5, 7, 3, 5, false);

    layer_norm_case(4096, 256, true, false, 0);
    layer_norm_case(37, 1000, false, false, 0);
    layer_norm_case(333, 7, true, true, 100);
    layer_norm_case(65536, 96, true, false, 0);
    layer_norm_cf_case(2, 33, 1001, true);
    layer_norm_cf_case(1, 256, 4096, false);

    eltwise_cases(1000003);
    eltwise_cases(5);
    row_cases(999, 77);
    row_cases(4096, 256);

    softmax_case(100, 4099, 1, false);
    softmax_case(5000, 7, 50, true);
    softmax_case(3, 1, 1, false);

    maxpool_case(2, 33, 47, 19);
    maxpool_case(1, 256, 256, 96);

    resize_case(3, 17, 23, 64, 80, false);
    resize_case(3, 100, 120, 33, 41, false);
    resize_case(1, 256, 256, 1080, 1920, false); /* mask up to the video size */
    resize_case(3, 1080, 1920, 1024, 1024, true); /* frame preprocessing */
    resize_case(3, 100, 120, 33, 41, true);
    resize_case(2, 50, 60, 50, 21, true);  /* only W changes */
    resize_case(2, 50, 60, 17, 60, true);  /* only H changes */
    resize_case(1, 40, 30, 40, 30, true);  /* nothing changes */
    resize_case(2, 20, 30, 45, 70, true);  /* growing: same as plain */

    upsample_case(2, 7, 9, 5, 2, 3);
    upsample_case(1, 64, 64, 256, 2, 2);

    {
        const int64_t s5[5] = {2, 3, 4, 5, 6};
        const int p5a[5] = {4, 2, 0, 3, 1}, p5b[5] = {0, 1, 2, 3, 4};
        permute_case(5, s5, p5a);
        permute_case(5, s5, p5b);
        const int64_t s4[4] = {1, 64, 64, 256};
        const int p4[4] = {0, 3, 1, 2}, p4b[4] = {0, 2, 3, 1};
        permute_case(4, s4, p4);
        const int64_t s4b[4] = {1, 256, 64, 64};
        permute_case(4, s4b, p4b);
        const int64_t s6[6] = {2, 1, 3, 4, 1, 5};
        const int p6[6] = {5, 4, 3, 2, 1, 0};
        permute_case(6, s6, p6);
        const int64_t s1[3] = {1, 1, 1};
        const int p1[3] = {2, 1, 0};
        permute_case(3, s1, p1);
    }
    concat_case(1001);

    /* attention: odd sizes and partial tiles, d_qk != d_v, wide heads, large
     * logits, packed strides, the memory attention's shapes (1 head, d 256,
     * Lk = several memories) reduced, windows (batch), Lk = 0 */
    attention_dense(2, 37, 53, 16, 16, 1);
    attention_dense(3, 70, 33, 32, 48, 1);
    attention_dense(1, 1, 1, 8, 8, 1);
    attention_dense(1, 300, 1000, 256, 256, 1);
    attention_dense(2, 65, 129, 64, 64, 8); /* large logits */
    attention_dense(8, 256, 256, 32, 32, 1); /* mask decoder style */
    attention_dense(1, 1024, 4100, 256, 256, 1);
    attention_dense(1, 4096, 7, 64, 64, 1);
    attention_dense(2, 5, 0, 16, 16, 1);
    attention_dense(1, 17, 19, 256, 13, 1);
    attention_dense(1, 17, 19, 5, 200, 1);
    attention_dense(1, 300, 270, 320, 288, 1); /* beyond the fused kernel's 256: cuBLAS chunks only */
    attention_dense(1, 4096, 4100, 64, 64, 1);  /* Lq x Ck over the chunk budget: several chunks */
    attention_packed(3, 2, 77, 48);
    attention_packed(16, 1, 64, 96); /* Hiera windows 8x8, C 96 */
    {
        sam_attn_params p = sam_attn_dense(2, 100, 300, 64, 64);
        attention_run(gpu16, " bf16-mode", &p, (size_t)100 * 128, (size_t)300 * 128, (size_t)300 * 128,
                      (size_t)100 * 128, 1, 2e-2);
    }

    /* bf16 mode */
    bf16_linear_case(512, 768, 768);
    bf16_linear_case(4096, 256, 64);
    bf16_gemm_case(300, 200, 500);

    printf("worst passing normalised error: %.3g (%s)\n", worst_norm, worst_name);
    printf("device bytes: in use %zu, peak %zu\n", sam_cuda_bytes_in_use(gpu), sam_cuda_bytes_peak(gpu));
    sam_backend_cuda_free(gpu16);
    sam_backend_cuda_free(gpu);
    sam_backend_cpu_free(cpu);
    return test_finish();
}
