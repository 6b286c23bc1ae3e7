/* Element-wise kernels, norms, softmax, resampling and data movement. Each
 * mirrors the CPU kernel of the same name (src/ops/cpu): same formulas, same
 * order of the sums where it matters, reductions in double as there. */
#include <math.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"

#define THREADS 256

/* i over [0, n) in a grid-stride loop */
#define GRID_LOOP(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- element-wise ----------------------------------------------------------- */

enum { EW_GELU, EW_RELU, EW_SIGMOID, EW_ADD, EW_MUL, EW_AXPBY };

__global__ void ew_kernel(int op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n) {
    GRID_LOOP(i, n) {
        const float x = a[i];
        float r;
        switch (op) {
        case EW_GELU: r = x * 0.5f * (1.0f + erff(x * 0.70710678118654752440f)); break;
        case EW_RELU: r = x > 0.0f ? x : 0.0f; break;
        case EW_SIGMOID: r = 1.0f / (1.0f + expf(-x)); break;
        case EW_ADD: r = x + b[i]; break;
        case EW_MUL: r = x * b[i]; break;
        default: r = x * alpha + b[i] * beta; break;
        }
        y[i] = r;
    }
}

static void ew(sam_backend *be, int op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n) {
    if (n <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    ew_kernel<<<sam_cuda_blocks(n, THREADS), THREADS, 0, cb->stream>>>(op, y, a, b, alpha, beta, n);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

void sam_cuda_gelu(sam_backend *be, float *y, const float *x, int64_t n) { ew(be, EW_GELU, y, x, NULL, 0, 0, n); }
void sam_cuda_relu(sam_backend *be, float *y, const float *x, int64_t n) { ew(be, EW_RELU, y, x, NULL, 0, 0, n); }
void sam_cuda_sigmoid(sam_backend *be, float *y, const float *x, int64_t n) { ew(be, EW_SIGMOID, y, x, NULL, 0, 0, n); }
void sam_cuda_add(sam_backend *be, float *y, const float *a, const float *b, int64_t n) { ew(be, EW_ADD, y, a, b, 0, 0, n); }
void sam_cuda_mul(sam_backend *be, float *y, const float *a, const float *b, int64_t n) { ew(be, EW_MUL, y, a, b, 0, 0, n); }
void sam_cuda_axpby(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n) {
    ew(be, EW_AXPBY, y, a, b, alpha, beta, n);
}

/* ---- per-row broadcasts -------------------------------------------------------- */

__global__ void row_kernel(int mul, float *y, const float *x, const float *v, int64_t rows, int C) {
    GRID_LOOP(i, rows * C) {
        const float s = v[i % C];
        y[i] = mul ? x[i] * s : x[i] + s;
    }
}

/* y rows (stride ldy) = b, or 0 without b */
__global__ void fill_rows_kernel(float *y, int64_t ldy, const float *b, int64_t rows, int C) {
    GRID_LOOP(i, rows * C) {
        const int c = (int)(i % C);
        y[(i / C) * ldy + c] = b ? b[c] : 0.0f;
    }
}

void sam_cuda_add_row_locked(sam_cuda_backend *cb, float *y, const float *x, const float *b, int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return;
    row_kernel<<<sam_cuda_blocks(rows * C, THREADS), THREADS, 0, cb->stream>>>(0, y, x, b, rows, C);
    KERNEL_CHECK(cb);
}

void sam_cuda_fill_rows_locked(sam_cuda_backend *cb, float *y, int64_t ldy, const float *b, int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return;
    fill_rows_kernel<<<sam_cuda_blocks(rows * C, THREADS), THREADS, 0, cb->stream>>>(y, ldy, b, rows, C);
    KERNEL_CHECK(cb);
}

void sam_cuda_add_row(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C) {
    sam_cuda_backend *cb = sam_cuda_lock(be);
    sam_cuda_add_row_locked(cb, y, x, b, rows, C);
    sam_cuda_unlock(cb);
}

void sam_cuda_mul_row(sam_backend *be, float *y, const float *x, const float *s, int64_t rows, int C) {
    if (rows <= 0 || C <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    row_kernel<<<sam_cuda_blocks(rows * C, THREADS), THREADS, 0, cb->stream>>>(1, y, x, s, rows, C);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* ---- LayerNorm: one warp per row -------------------------------------------------- */

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* One warp per row (sam_warp_layer_norm_row). */
__global__ void layer_norm_kernel(float *y, const float *x, const float *g, const float *bt, int64_t rows, int C,
                                  float eps) {
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps)
        sam_warp_layer_norm_row(y + r * C, x + r * C, C, g, bt, eps);
}

void sam_cuda_layer_norm(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta,
                         int64_t rows, int C, float eps) {
    if (rows <= 0 || C <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    layer_norm_kernel<<<sam_cuda_blocks(rows * 32, THREADS), THREADS, 0, cb->stream>>>(y, x, gamma, beta, rows, C,
                                                                                        eps);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* Channels-first: one thread per pixel, channel loops read consecutive pixels
 * across the warp (coalesced). */
__global__ void layer_norm_cf_kernel(float *y, const float *x, const float *g, const float *bt, int N, int C,
                                     int64_t HW, float eps) {
    GRID_LOOP(i, (int64_t)N * HW) {
        const int64_t n = i / HW, p = i % HW;
        const float *xp = x + n * C * HW + p;
        float *yp = y + n * C * HW + p;
        double s = 0;
        for (int c = 0; c < C; c++) s += xp[c * HW];
        const double mean = s / C;
        double q = 0;
        for (int c = 0; c < C; c++) {
            const double d = xp[c * HW] - mean;
            q += d * d;
        }
        const float rstd = (float)(1.0 / sqrt(q / C + (double)eps));
        const float m = (float)mean;
        for (int c = 0; c < C; c++) {
            const float gg = g ? g[c] : 1.0f, bb = bt ? bt[c] : 0.0f;
            yp[c * HW] = (xp[c * HW] - m) * rstd * gg + bb;
        }
    }
}

void sam_cuda_layer_norm_cf(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta, int N,
                            int C, int64_t HW, float eps) {
    if (N <= 0 || C <= 0 || HW <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    layer_norm_cf_kernel<<<sam_cuda_blocks((int64_t)N * HW, THREADS), THREADS, 0, cb->stream>>>(y, x, gamma, beta, N,
                                                                                                 C, HW, eps);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* ---- softmax: one warp per row ------------------------------------------------------ */

__global__ void softmax_kernel(float *y, const float *x, int64_t rows, int n) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float mx = -INFINITY;
        for (int j = lane; j < n; j += 32) mx = fmaxf(mx, xr[j]);
        mx = warp_max(mx);
        double s = 0;
        for (int j = lane; j < n; j += 32) s += expf(xr[j] - mx);
        s = sam_warp_sum(s);
        const float inv = (float)(1.0 / s);
        for (int j = lane; j < n; j += 32) yr[j] = expf(xr[j] - mx) * inv;
    }
}

void sam_cuda_softmax(sam_backend *be, float *y, const float *x, int64_t rows, int n) {
    if (rows <= 0 || n <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    softmax_kernel<<<sam_cuda_blocks(rows * 32, THREADS), THREADS, 0, cb->stream>>>(y, x, rows, n);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* ---- 2x2 max pool, nearest upsample ------------------------------------------------- */

/* The dense pool is the strided one with pixels C apart. */
void sam_cuda_maxpool2x2(sam_backend *be, float *y, const float *x, int N, int H, int W, int C) {
    sam_cuda_maxpool2x2_ld(be, y, x, N, H, W, C, C);
}

__global__ void upsample_kernel(float *y, const float *x, int N, int H, int W, int C, int fh, int fw) {
    const int Ho = H * fh, Wo = W * fw;
    GRID_LOOP(i, (int64_t)N * Ho * Wo * C) {
        const sam_nhwc p = sam_nhwc_of(i, Ho, Wo, C);
        const int c = p.c, ox = p.ox, oy = p.oy;
        const int64_t n = p.n;
        y[i] = x[((n * H + oy / fh) * W + ox / fw) * C + c];
    }
}

void sam_cuda_upsample_nearest(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw) {
    if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || fh <= 0 || fw <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    upsample_kernel<<<sam_cuda_blocks((int64_t)N * H * fh * W * fw * C, THREADS), THREADS, 0, cb->stream>>>(
        y, x, N, H, W, C, fh, fw);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* ---- bilinear resize --------------------------------------------------------------- */

/* Source taps of output index d along an axis (the CPU's linear_taps). The
 * product and the subtraction are rounded separately (no FMA), as in torch. */
__device__ __forceinline__ void lin_tap(int in, int out, int d, int *i0, int *i1, float *l0, float *l1) {
    const float scale = (float)in / (float)out;
    float src = __fsub_rn(__fmul_rn(scale, __fadd_rn((float)d, 0.5f)), 0.5f);
    if (src < 0.0f) src = 0.0f;
    int a = (int)src;
    if (a > in - 1) a = in - 1;
    float lam = __fsub_rn(src, (float)a);
    if (lam > 1.0f) lam = 1.0f;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    *l1 = lam;
    *l0 = __fsub_rn(1.0f, lam);
}

__global__ void bilinear_kernel(float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo) {
    GRID_LOOP(i, (int64_t)C * Ho * Wo) {
        const int ox = (int)(i % Wo);
        const int64_t r = i / Wo; /* ch*Ho + oy */
        const int oy = (int)(r % Ho);
        const int64_t ch = r / Ho;
        int h0, h1, w0, w1;
        float la, lb, wa, wb;
        lin_tap(Hi, Ho, oy, &h0, &h1, &la, &lb);
        lin_tap(Wi, Wo, ox, &w0, &w1, &wa, &wb);
        const float *xa = x + (ch * Hi + h0) * Wi;
        const float *xb = x + (ch * Hi + h1) * Wi;
        /* W inside, then H, as the CPU (and torch) nest them */
        float t0 = xa[w0] * wa;
        t0 += xa[w1] * wb;
        float t1 = xb[w0] * wa;
        t1 += xb[w1] * wb;
        float o = t0 * la;
        o += t1 * lb;
        y[i] = o;
    }
}

/* Antialias taps of one axis (the CPU's aa_taps, same float/double mix):
 * window start/size and ksize normalised weights per output index. */
__global__ void aa_taps_kernel(int in, int out, int ksize, int *xmin, int *xsize, float *wts) {
    GRID_LOOP(ii, out) {
        const int i = (int)ii;
        const float scale = (float)in / (float)out;
        const float support = scale >= 1.0f ? (float)(1.0 * scale) : 1.0f;
        const float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
        const float center = (float)(scale * ((double)i + 0.5));
        long long lo = (long long)((double)(center - support) + 0.5);
        if (lo < 0) lo = 0;
        long long hi = (long long)((double)(center + support) + 0.5);
        if (hi > in) hi = in;
        int n = (int)(hi - lo);
        if (n < 0) n = 0;
        if (n > ksize) n = ksize;
        float *w = wts + (int64_t)i * ksize;
        float total = 0.0f;
        for (int j = 0; j < n; j++) {
            float t = (float)(((double)((float)(j + lo) - center) + 0.5) * invscale);
            t = t < 0.0f ? -t : t;
            const float v = t < 1.0f ? 1.0f - t : 0.0f;
            w[j] = v;
            total += v;
        }
        if (total != 0.0f)
            for (int j = 0; j < n; j++) w[j] /= total;
        for (int j = n; j < ksize; j++) w[j] = 0.0f;
        xmin[i] = (int)lo;
        xsize[i] = n;
    }
}

/* Along W: x (R, in) -> y (R, out). */
__global__ void aa_horiz_kernel(float *y, const float *x, int64_t R, int in, int out, int ksize, const int *xmin,
                                const int *xsize, const float *wts) {
    GRID_LOOP(i, R * out) {
        const int o = (int)(i % out);
        const int64_t r = i / out;
        const float *w = wts + (int64_t)o * ksize;
        const float *xs = x + r * in + xmin[o];
        const int n = xsize[o];
        float acc = n > 0 ? xs[0] * w[0] : 0.0f;
        for (int j = 1; j < n; j++) acc += xs[j] * w[j];
        y[i] = acc;
    }
}

/* Along H: x (C, in, W) -> y (C, out, W). */
__global__ void aa_vert_kernel(float *y, const float *x, int C, int in, int out, int W, int ksize, const int *xmin,
                               const int *xsize, const float *wts) {
    GRID_LOOP(i, (int64_t)C * out * W) {
        const int ox = (int)(i % W);
        const int64_t r = i / W;
        const int oy = (int)(r % out);
        const int64_t ch = r / out;
        const float *w = wts + (int64_t)oy * ksize;
        const float *xs = x + (ch * in + xmin[oy]) * W + ox;
        const int n = xsize[oy];
        float acc = n > 0 ? xs[0] * w[0] : 0.0f;
        for (int j = 1; j < n; j++) acc += xs[(int64_t)j * W] * w[j];
        y[i] = acc;
    }
}

void sam_cuda_resize_bilinear(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo,
                              bool antialias) {
    if (C <= 0 || Ho <= 0 || Wo <= 0 || Hi <= 0 || Wi <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    if (!antialias) {
        bilinear_kernel<<<sam_cuda_blocks((int64_t)C * Ho * Wo, THREADS), THREADS, 0, cb->stream>>>(y, x, C, Hi, Wi,
                                                                                                     Ho, Wo);
        KERNEL_CHECK(cb);
        sam_cuda_unlock(cb);
        return;
    }
    /* As the CPU (and torch): W first, then H, skipping an axis whose size is unchanged. */
    const float sw = (float)Wi / (float)Wo, sh = (float)Hi / (float)Ho;
    const int kw = 2 * (int)ceilf(sw >= 1.0f ? sw : 1.0f) + 1;
    const int kh = 2 * (int)ceilf(sh >= 1.0f ? sh : 1.0f) + 1;
    const bool do_w = Wi != Wo, do_h = Hi != Ho;
    if (!do_w && !do_h) {
        CUDA_CHECK(cb, cudaMemcpyAsync(y, x, (size_t)C * Hi * Wi * sizeof(float), cudaMemcpyDeviceToDevice,
                                       cb->stream));
        sam_cuda_unlock(cb);
        return;
    }
    /* scratch: ints (wmin, wsz, hmin, hsz), weights, then the W-resized intermediate */
    const size_t ints = 2 * ((size_t)Wo + Ho), wts = (size_t)Wo * kw + (size_t)Ho * kh;
    const size_t off_tmp = ((ints + wts) * 4 + 255) & ~(size_t)255;
    const size_t tmp_bytes = do_w && do_h ? (size_t)C * Hi * Wo * sizeof(float) : 0;
    char *s = (char *)sam_cuda_scratch(cb, off_tmp + tmp_bytes);
    if (!s) {
        sam_cuda_unlock(cb);
        return;
    }
    int *wmin = (int *)s, *wsz = wmin + Wo, *hmin = wsz + Wo, *hsz = hmin + Ho;
    float *ww = (float *)(hsz + Ho), *wh = ww + (size_t)Wo * kw;
    float *tmp = (float *)(s + off_tmp);
    if (do_w) {
        aa_taps_kernel<<<sam_cuda_blocks(Wo, THREADS), THREADS, 0, cb->stream>>>(Wi, Wo, kw, wmin, wsz, ww);
        KERNEL_CHECK(cb);
    }
    if (do_h) {
        aa_taps_kernel<<<sam_cuda_blocks(Ho, THREADS), THREADS, 0, cb->stream>>>(Hi, Ho, kh, hmin, hsz, wh);
        KERNEL_CHECK(cb);
    }
    const float *src = x;
    if (do_w) {
        float *dst = do_h ? tmp : y;
        aa_horiz_kernel<<<sam_cuda_blocks((int64_t)C * Hi * Wo, THREADS), THREADS, 0, cb->stream>>>(
            dst, x, (int64_t)C * Hi, Wi, Wo, kw, wmin, wsz, ww);
        KERNEL_CHECK(cb);
        src = dst;
    }
    if (do_h) {
        aa_vert_kernel<<<sam_cuda_blocks((int64_t)C * Ho * Wo, THREADS), THREADS, 0, cb->stream>>>(
            y, src, C, Hi, Ho, Wo, kh, hmin, hsz, wh);
        KERNEL_CHECK(cb);
    }
    sam_cuda_unlock(cb);
}

/* ---- permute, concat ------------------------------------------------------------------ */

#define PERM_MAX 6

typedef struct {
    int nd;
    int64_t oshape[PERM_MAX];  /* output shape (merged dims) */
    int64_t istride[PERM_MAX]; /* input stride of each output dim */
} perm_desc;

/* One thread per output element (writes coalesced). */
__global__ void permute_kernel(float *y, const float *x, perm_desc d, int64_t total) {
    GRID_LOOP(i, total) {
        int64_t rem = i, off = 0;
        for (int k = d.nd - 1; k >= 0; k--) {
            off += (rem % d.oshape[k]) * d.istride[k];
            rem /= d.oshape[k];
        }
        y[i] = x[off];
    }
}

void sam_cuda_permute(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm) {
    if (ndim <= 0 || ndim > PERM_MAX) return;
    int64_t istr[PERM_MAX], acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        istr[d] = acc;
        acc *= shape[d];
    }
    const int64_t total = acc;
    if (total <= 0) return;
    /* drop size-1 dims, merge runs still contiguous in the input (as the CPU) */
    perm_desc pd;
    memset(&pd, 0, sizeof pd);
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        const int64_t sz = shape[perm[d]], st = istr[perm[d]];
        if (sz == 1) continue;
        if (nd > 0 && pd.istride[nd - 1] == st * sz) {
            pd.oshape[nd - 1] *= sz;
            pd.istride[nd - 1] = st;
            continue;
        }
        pd.oshape[nd] = sz;
        pd.istride[nd] = st;
        nd++;
    }
    if (nd == 0) { /* a single element */
        pd.oshape[0] = 1;
        pd.istride[0] = 1;
        nd = 1;
    }
    pd.nd = nd;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    if (nd == 1 && pd.istride[0] == 1)
        CUDA_CHECK(cb, cudaMemcpyAsync(y, x, (size_t)total * sizeof(float), cudaMemcpyDeviceToDevice, cb->stream));
    else {
        permute_kernel<<<sam_cuda_blocks(total, THREADS), THREADS, 0, cb->stream>>>(y, x, pd, total);
        KERNEL_CHECK(cb);
    }
    sam_cuda_unlock(cb);
}

void sam_cuda_concat_last(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows) {
    int Ctot = 0;
    for (int i = 0; i < nparts; i++) Ctot += Cs[i];
    if (rows <= 0 || Ctot <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    int off = 0;
    for (int i = 0; i < nparts; i++) {
        if (Cs[i] > 0)
            CUDA_CHECK(cb, cudaMemcpy2DAsync(y + off, (size_t)Ctot * sizeof(float), xs[i], (size_t)Cs[i] * sizeof(float),
                                             (size_t)Cs[i] * sizeof(float), (size_t)rows, cudaMemcpyDeviceToDevice,
                                             cb->stream));
        off += Cs[i];
    }
    sam_cuda_unlock(cb);
}

/* ---- fill, affine, binarize, bf16 storage (issue 8) --------------------------------------- */

enum { SM_FILL, SM_AFFINE, SM_BINARIZE };

/* As the CPU's ew_run: y = b; y = x * a + b; y = x > 0 ? 1 : 0 (NaN -> 0). */
__global__ void small_kernel(int op, float *y, const float *x, float a, float b, int64_t n) {
    GRID_LOOP(i, n) {
        float r;
        if (op == SM_FILL)
            r = b;
        else if (op == SM_AFFINE)
            r = x[i] * a + b;
        else
            r = x[i] > 0.0f ? 1.0f : 0.0f;
        y[i] = r;
    }
}

static void small(sam_backend *be, int op, float *y, const float *x, float a, float b, int64_t n) {
    if (n <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    small_kernel<<<sam_cuda_blocks(n, THREADS), THREADS, 0, cb->stream>>>(op, y, x, a, b, n);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

void sam_cuda_fill(sam_backend *be, float *y, float value, int64_t n) { small(be, SM_FILL, y, NULL, 0, value, n); }
void sam_cuda_affine(sam_backend *be, float *y, const float *x, float alpha, float beta, int64_t n) {
    small(be, SM_AFFINE, y, x, alpha, beta, n);
}
void sam_cuda_binarize(sam_backend *be, float *y, const float *x, int64_t n) { small(be, SM_BINARIZE, y, x, 0, 0, n); }

__global__ void to_bf16_kernel(uint16_t *y, const float *x, int64_t n) {
    GRID_LOOP(i, n) y[i] = sam_bf16_bits(x[i]);
}

__global__ void from_bf16_kernel(float *y, const uint16_t *x, int64_t n) {
    GRID_LOOP(i, n) y[i] = __uint_as_float((uint32_t)x[i] << 16);
}

void sam_cuda_to_bf16_locked(sam_cuda_backend *cb, uint16_t *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    to_bf16_kernel<<<sam_cuda_blocks(n, THREADS), THREADS, 0, cb->stream>>>(dst, src, n);
    KERNEL_CHECK(cb);
}

void sam_cuda_to_bf16(sam_backend *be, uint16_t *y, const float *x, int64_t n) {
    if (n <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    sam_cuda_to_bf16_locked(cb, y, x, n);
    sam_cuda_unlock(cb);
}

void sam_cuda_from_bf16(sam_backend *be, float *y, const uint16_t *x, int64_t n) {
    if (n <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    from_bf16_kernel<<<sam_cuda_blocks(n, THREADS), THREADS, 0, cb->stream>>>(y, x, n);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* ---- RoPE (the table's rope) ---------------------------------------------------------------- */

__global__ void rope_kernel(float *x, int64_t rows, int64_t stride, int heads, int hd, int half, const float *cs,
                            const float *sn, int64_t L) {
    GRID_LOOP(i, rows * heads * half) {
        const int j = (int)(i % half);
        const int64_t t = i / half;
        const int h = (int)(t % heads);
        const int64_t r = t / heads;
        float *v = x + r * stride + (int64_t)h * hd + 2 * j;
        const float c = cs[(r % L) * half + j], s = sn[(r % L) * half + j];
        const float re = v[0], im = v[1];
        v[0] = re * c - im * s;
        v[1] = re * s + im * c;
    }
}

void sam_cuda_rope(sam_backend *be, float *x, int64_t rows, int64_t stride, int heads, int head_dim,
                              const float *cos_t, const float *sin_t, int64_t L) {
    const int half = head_dim / 2;
    if (rows <= 0 || heads <= 0 || half <= 0 || L <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    rope_kernel<<<sam_cuda_blocks(rows * heads * half, THREADS), THREADS, 0, cb->stream>>>(x, rows, stride, heads, head_dim,
                                                                                           half, cos_t, sin_t, L);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}
