/* Matrix products through cuBLAS and the convolutions built on them.
 *
 * cuBLAS is column-major; our matrices are row-major. A row-major (R, C)
 * matrix at row stride ld is the column-major (C, R) matrix at the same ld,
 * i.e. its transpose, so row-major C = op(A) op(B) is computed as the
 * column-major C^T = op(B)^T op(A)^T: swap the operands (and M with N) and
 * keep each one's transpose flag. */
#include <cuda_bf16.h>
#include <limits.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"

extern "C" {
#include "core/alloc.h"
}

/* Products below this many multiply-adds stay fp32 in bf16 mode (as on the CPU). */
#define BF16_MIN_MACS ((int64_t)1 << 18)
/* Largest im2col block (floats) the scratch is grown to. */
#define COL_MAX_FLOATS ((int64_t)32 << 20)

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* ---- small kernels -------------------------------------------------------- */

/* C (M, N) at row stride ldc = beta * C (beta 0: zeros, whatever C held). */
__global__ void scale_rows_kernel(float *C, int64_t ldc, int M, int N, float beta) {
    const int64_t total = (int64_t)M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        float *c = C + (i / N) * ldc + i % N;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

/* dst (n) = src rounded to bf16 (as torch; sam_bf16_bits). */
static void to_bf16(sam_cuda_backend *cb, __nv_bfloat16 *dst, const float *src, int64_t n) {
    sam_cuda_to_bf16_locked(cb, (uint16_t *)dst, src, n);
}

/* ---- fp32 GEMM -------------------------------------------------------------- */

void sam_cuda_sgemm_locked(sam_cuda_backend *cb, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* no products: C = beta C, explicitly (BLAS skips beta == 1 only) */
        if (beta != 1.0f) {
            scale_rows_kernel<<<sam_cuda_blocks((int64_t)M * N, 256), 256, 0, cb->stream>>>(C, ldc, M, N, beta);
            KERNEL_CHECK(cb);
        }
        return;
    }
    if (!fits_int(lda) || !fits_int(ldb) || !fits_int(ldc)) {
        CUDA_FAIL(cb, SAM2D_ERR_UNSUPPORTED, "gemm: a row stride beyond int (%lld, %lld, %lld)", (long long)lda,
                  (long long)ldb, (long long)ldc);
        return;
    }
    CUBLAS_CHECK(cb, cublasSgemm(cb->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                 &alpha, B, (int)ldb, A, (int)lda, &beta, C, (int)ldc));
}

void sam_cuda_gemm(sam_backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    sam_cuda_backend *cb = sam_cuda_lock(be);
    sam_cuda_sgemm_locked(cb, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    sam_cuda_unlock(cb);
}

/* ---- prepared (bf16) weights ------------------------------------------------ */

static sam_cuda_wentry *wreg_find(sam_cuda_backend *cb, const float *w) {
    for (size_t i = 0; i < cb->wreg_n; i++)
        if (cb->wreg[i].w == w) return &cb->wreg[i];
    return NULL;
}

static void wreg_remove(sam_cuda_backend *cb, const float *w) {
    sam_cuda_wentry *e = wreg_find(cb, w);
    if (!e) return;
    sam_cuda_free_internal(cb, e->wb);
    *e = cb->wreg[--cb->wreg_n];
}

bool sam_cuda_linear_prepare(sam_backend *be, const float *w, int N, int K) {
    if (be->precision != SAM_PRECISION_BF16 || !w || N <= 0 || K <= 0) return true; /* fp32 reads w as it is */
    sam_cuda_backend *cb = sam_cuda_lock(be);
    wreg_remove(cb, w); /* re-preparing replaces */
    bool ok = false;
    if (cb->wreg_n == cb->wreg_cap) {
        size_t ncap = cb->wreg_cap ? 2 * cb->wreg_cap : 64;
        sam_cuda_wentry *nw = (sam_cuda_wentry *)sam_realloc(cb->wreg, ncap * sizeof *nw);
        if (nw) {
            cb->wreg = nw;
            cb->wreg_cap = ncap;
        }
    }
    if (cb->wreg_n < cb->wreg_cap) {
        void *wb = sam_cuda_alloc_internal(cb, (size_t)N * K * sizeof(__nv_bfloat16));
        if (wb) {
            to_bf16(cb, (__nv_bfloat16 *)wb, w, (int64_t)N * K);
            cb->wreg[cb->wreg_n++] = sam_cuda_wentry{w, N, K, wb};
            ok = true;
        }
    }
    sam_cuda_unlock(cb);
    return ok;
}

void sam_cuda_linear_forget(sam_backend *be, const float *w) {
    sam_cuda_backend *cb = sam_cuda_lock(be);
    wreg_remove(cb, w);
    sam_cuda_unlock(cb);
}

void sam_cuda_wreg_free(sam_cuda_backend *cb) {
    for (size_t i = 0; i < cb->wreg_n; i++) sam_cuda_free_internal(cb, cb->wreg[i].wb);
    sam_free(cb->wreg);
    cb->wreg = NULL;
    cb->wreg_n = cb->wreg_cap = 0;
}

/* ---- linear ----------------------------------------------------------------- */

/* y(M,N) = bf16(x) . bf16(w)^T + beta y with fp32 sums; false when the scratch
 * cannot hold the converted operands (the caller runs fp32). */
static bool linear_bf16(sam_cuda_backend *cb, float *y, const float *x, const float *w, int M, int N, int K,
                        float beta) {
    const sam_cuda_wentry *e = wreg_find(cb, w);
    const void *wb = e && e->N == N && e->K == K ? e->wb : NULL;
    const size_t xbytes = ((size_t)M * K * sizeof(__nv_bfloat16) + 255) & ~(size_t)255;
    const size_t need = xbytes + (wb ? 0 : (size_t)N * K * sizeof(__nv_bfloat16));
    const bool clean = cb->err == SAM2D_OK;
    char *s = (char *)sam_cuda_scratch(cb, need);
    if (!s) {
        if (clean) { /* not fatal: fp32 instead (the message stays in sam2d_last_error) */
            cb->err = SAM2D_OK;
            cb->errmsg[0] = 0;
        }
        return false;
    }
    __nv_bfloat16 *xb = (__nv_bfloat16 *)s;
    to_bf16(cb, xb, x, (int64_t)M * K);
    if (!wb) {
        __nv_bfloat16 *wt = (__nv_bfloat16 *)(s + xbytes);
        to_bf16(cb, wt, w, (int64_t)N * K);
        wb = wt;
    }
    const float one = 1.0f;
    CUBLAS_CHECK(cb, cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, wb, CUDA_R_16BF, K, xb,
                                  CUDA_R_16BF, K, &beta, y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return true;
}

void sam_cuda_linear_product_locked(sam_cuda_backend *cb, float *y, const float *x, const float *w, int M, int N,
                                    int K, float beta) {
    if (M <= 0 || N <= 0) return;
    bool done = false;
    if (K > 0 && cb->base.precision == SAM_PRECISION_BF16 && (int64_t)M * N * K >= BF16_MIN_MACS)
        done = linear_bf16(cb, y, x, w, M, N, K, beta);
    if (!done) sam_cuda_sgemm_locked(cb, false, true, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}

void sam_cuda_linear_locked(sam_cuda_backend *cb, float *y, const float *x, const float *w, const float *b, int M,
                            int N, int K) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        sam_cuda_fill_rows_locked(cb, y, N, b, M, N);
        return;
    }
    sam_cuda_linear_product_locked(cb, y, x, w, M, N, K, 0.0f);
    if (b) sam_cuda_add_row_locked(cb, y, y, b, M, N);
}

void sam_cuda_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    sam_cuda_backend *cb = sam_cuda_lock(be);
    sam_cuda_linear_locked(cb, y, x, w, b, M, N, K);
    sam_cuda_unlock(cb);
}

/* ---- conv2d ----------------------------------------------------------------- */

/* Depthwise: one thread per output value, channels fastest (coalesced).
 * Sums from the bias, taps in (ky, kx) order, as the CPU kernel. */
__global__ void dwconv_kernel(float *y, const float *x, const float *w, const float *b, int N, int H, int W, int C,
                              int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
    const int64_t total = (int64_t)N * Ho * Wo * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const sam_nhwc p = sam_nhwc_of(i, Ho, Wo, C);
        const int c = p.c, ox = p.ox, oy = p.oy;
        const int64_t n = p.n;
        float acc = b ? b[c] : 0.0f;
        const float *wc = w + (int64_t)c * kh * kw;
        for (int ky = 0; ky < kh; ky++) {
            const int iy = oy * sh - ph + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ox * sw - pw + kx;
                if (ix < 0 || ix >= W) continue;
                acc += x[((n * H + iy) * W + ix) * C + c] * wc[ky * kw + kx];
            }
        }
        y[i] = acc;
    }
}

/* col (nb, K) for output pixels [p0, p0+nb), group g: K = Cg*kh*kw in
 * (ci, ky, kx) order, which is the weight's own (C_out, Cg, kh, kw) order,
 * so the weights need no repacking. */
__global__ void im2col_kernel(float *col, const float *x, int64_t p0, int64_t nb, int H, int W, int C_in, int c0,
                              int Cg, int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
    const int taps = kh * kw;
    const int64_t K = (int64_t)Cg * taps;
    const int64_t total = nb * K;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / K;
        const int kk = (int)(i % K);
        const int ci = kk / taps, tp = kk % taps;
        const int ky = tp / kw, kx = tp % kw;
        const int64_t pix = p0 + r;
        const int ox = (int)(pix % Wo);
        const int64_t t = pix / Wo;
        const int oy = (int)(t % Ho);
        const int64_t n = t / Ho;
        const int iy = oy * sh - ph + ky, ix = ox * sw - pw + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = x[((n * H + iy) * W + ix) * C_in + c0 + ci];
        col[i] = v;
    }
}

void sam_cuda_conv2d(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                     const sam_conv2d_params *p) {
    const int Ho = sam_conv_out(p->H, p->kh, p->stride_h, p->pad_h);
    const int Wo = sam_conv_out(p->W, p->kw, p->stride_w, p->pad_w);
    const int G = p->groups > 0 ? p->groups : 1;
    if (p->N <= 0 || Ho <= 0 || Wo <= 0 || p->C_out <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    const int64_t npix = (int64_t)p->N * Ho * Wo;
    const int taps = p->kh * p->kw;

    if (p->C_in % G != 0 || p->C_out % G != 0) {
        CUDA_FAIL(cb, SAM2D_ERR_INVALID_ARG, "conv2d: %d groups do not divide %d -> %d channels", G, p->C_in,
                  p->C_out);
    } else if (taps == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0 && G == 1) {
        if (npix > INT_MAX)
            CUDA_FAIL(cb, SAM2D_ERR_UNSUPPORTED, "conv2d 1x1: %lld pixels", (long long)npix);
        else /* w (C_out, C_in, 1, 1) == (C_out, C_in) */
            sam_cuda_linear_locked(cb, y, x, w, b, (int)npix, p->C_out, p->C_in);
    } else if (G == p->C_in && G == p->C_out) {
        dwconv_kernel<<<sam_cuda_blocks(npix * p->C_out, 256), 256, 0, cb->stream>>>(
            y, x, w, b, p->N, p->H, p->W, p->C_in, p->kh, p->kw, p->stride_h, p->stride_w, p->pad_h, p->pad_w, Ho, Wo);
        KERNEL_CHECK(cb);
    } else {
        const int Cg = p->C_in / G, Cog = p->C_out / G;
        const int64_t K = (int64_t)taps * Cg;
        int64_t blk = K > 0 ? COL_MAX_FLOATS / K : npix;
        if (blk < 1) blk = 1;
        if (blk > npix) blk = npix;
        if (blk > INT_MAX) blk = INT_MAX;
        float *col = K > 0 ? (float *)sam_cuda_scratch(cb, (size_t)(blk * K) * sizeof(float)) : NULL;
        if (K > 0 && !col) {
            sam_cuda_unlock(cb);
            return; /* error recorded */
        }
        for (int64_t p0 = 0; p0 < npix; p0 += blk) {
            const int64_t nb = npix - p0 < blk ? npix - p0 : blk;
            float *yb = y + p0 * p->C_out;
            /* bias first; each group's product then adds onto its columns */
            sam_cuda_fill_rows_locked(cb, yb, p->C_out, b, nb, p->C_out);
            if (K == 0) continue;
            for (int g = 0; g < G; g++) {
                im2col_kernel<<<sam_cuda_blocks(nb * K, 256), 256, 0, cb->stream>>>(
                    col, x, p0, nb, p->H, p->W, p->C_in, g * Cg, Cg, p->kh, p->kw, p->stride_h, p->stride_w, p->pad_h,
                    p->pad_w, Ho, Wo);
                KERNEL_CHECK(cb);
                sam_cuda_sgemm_locked(cb, false, true, (int)nb, Cog, (int)K, 1.0f, col, K, w + (int64_t)g * Cog * K, K,
                                      1.0f, yb + (int64_t)g * Cog, p->C_out);
            }
        }
    }
    sam_cuda_unlock(cb);
}

/* ---- 2x2 stride-2 transposed conv ------------------------------------------- */

/* t (nb, C_out*4) holds, per input pixel, column co*4 + dy*2 + dx (the weight's
 * own (C_in, C_out, 2, 2) order); spread to the 4 output pixels, plus bias. */
__global__ void ct_scatter_kernel(float *y, const float *t, const float *b, int64_t p0, int64_t nb, int H, int W,
                                  int Co) {
    const int64_t total = nb * 4 * Co;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int co = (int)(i % Co);
        const int k = (int)((i / Co) % 4);
        const int64_t r = i / (4 * (int64_t)Co);
        const int64_t pix = p0 + r;
        const int j = (int)(pix % W);
        const int64_t rr = pix / W;
        const int ii = (int)(rr % H);
        const int64_t n = rr / H;
        const int dy = k >> 1, dx = k & 1;
        float v = t[r * 4 * Co + (int64_t)co * 4 + k];
        if (b) v += b[co];
        y[((n * 2 * H + 2 * ii + dy) * 2 * W + 2 * j + dx) * Co + co] = v;
    }
}

void sam_cuda_conv_transpose2x2(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N,
                                int H, int W, int C_in, int C_out) {
    const int64_t npix = (int64_t)N * H * W;
    if (npix <= 0 || C_out <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    const int64_t Nc = 4 * (int64_t)C_out;
    int64_t blk = COL_MAX_FLOATS / Nc;
    if (blk < 1) blk = 1;
    if (blk > npix) blk = npix;
    if (blk > INT_MAX) blk = INT_MAX;
    float *t = (float *)sam_cuda_scratch(cb, (size_t)(blk * Nc) * sizeof(float));
    if (t && Nc > INT_MAX) {
        CUDA_FAIL(cb, SAM2D_ERR_UNSUPPORTED, "conv_transpose2x2: %d output channels", C_out);
        t = NULL;
    }
    for (int64_t p0 = 0; t && p0 < npix; p0 += blk) {
        const int64_t nb = npix - p0 < blk ? npix - p0 : blk;
        if (C_in > 0)
            sam_cuda_sgemm_locked(cb, false, false, (int)nb, (int)Nc, C_in, 1.0f, x + p0 * C_in, C_in, w, Nc, 0.0f,
                                  t, Nc);
        else
            CUDA_CHECK(cb, cudaMemsetAsync(t, 0, (size_t)(nb * Nc) * sizeof(float), cb->stream));
        ct_scatter_kernel<<<sam_cuda_blocks(nb * Nc, 256), 256, 0, cb->stream>>>(y, t, b, p0, nb, H, W, C_out);
        KERNEL_CHECK(cb);
    }
    sam_cuda_unlock(cb);
}
