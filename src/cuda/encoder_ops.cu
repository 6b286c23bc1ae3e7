/* The table entries added for the image encoder (issue 7): linear with a
 * fused epilogue, Hiera window partition (optionally layer-normalised) and
 * its accumulating reverse, and the strided 2x2 max pool. Semantics as the
 * CPU ones in src/ops/cpu (gemm.c, layout.c). */
#include <math.h>

#include "cuda/cuda_internal.cuh"

#define THREADS 256
#define GRID_LOOP(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- linear_ep ------------------------------------------------------------------ */

/* y (M, N) = act(y + bias) + res (res NULL or not overlapping y). */
__global__ void epilogue_kernel(float *y, int64_t M, int N, const float *bias, int act, const float *res) {
    GRID_LOOP(i, M * N) {
        float v = y[i];
        if (bias) v += bias[i % N];
        if (act == SAM_ACT_GELU)
            v = v * 0.5f * (1.0f + erff(v * 0.70710678118654752440f));
        else if (act == SAM_ACT_RELU)
            v = v > 0.0f ? v : 0.0f;
        if (res) v += res[i];
        y[i] = v;
    }
}

void sam_cuda_linear_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                        sam_act act, const float *residual) {
    if (M <= 0 || N <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    if (residual == y && act != SAM_ACT_NONE) {
        CUDA_FAIL(cb, SAM2D_ERR_INVALID_ARG, "linear_ep: residual == y needs SAM_ACT_NONE");
    } else if (residual == y) {
        /* y += x w^T + b: the product accumulates onto y (beta 1) */
        sam_cuda_linear_product_locked(cb, y, x, w, M, N, K, 1.0f);
        if (b) sam_cuda_add_row_locked(cb, y, y, b, M, N);
    } else {
        sam_cuda_linear_product_locked(cb, y, x, w, M, N, K, 0.0f); /* K 0: zeros */
        if (b || act != SAM_ACT_NONE || residual) {
            epilogue_kernel<<<sam_cuda_blocks((int64_t)M * N, THREADS), THREADS, 0, cb->stream>>>(y, M, N, b, (int)act,
                                                                                                   residual);
            KERNEL_CHECK(cb);
        }
    }
    sam_cuda_unlock(cb);
}

/* ---- windows ------------------------------------------------------------------------ */

/* One warp per window token: the map token (layer-normalised when norm, as
 * layer_norm: double moments, biased variance) or zeros in the padding. */
__global__ void window_partition_kernel(float *y, const float *x, int H, int W, int C, int wh, int ww, int nww, int w0,
                                        int64_t ntok, int norm, const float *g, const float *bt, float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t t = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); t < ntok; t += warps) {
        const int j = (int)(t % ww);
        const int64_t rw = t / ww; /* k*wh + i */
        const int i = (int)(rw % wh), wi = w0 + (int)(rw / wh);
        const int yy = (wi / nww) * wh + i, xx = (wi % nww) * ww + j;
        float *d = y + t * C;
        if (yy >= H || xx >= W) {
            for (int c = lane; c < C; c += 32) d[c] = 0.0f;
            continue;
        }
        const float *s = x + ((int64_t)yy * W + xx) * C;
        if (!norm) {
            for (int c = lane; c < C; c += 32) d[c] = s[c];
            continue;
        }
        sam_warp_layer_norm_row(d, s, C, g, bt, eps);
    }
}

void sam_cuda_window_partition(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                               int nwin, bool norm, const float *gamma, const float *beta, float eps) {
    if (nwin <= 0 || wh <= 0 || ww <= 0 || C <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    const int64_t ntok = (int64_t)nwin * wh * ww;
    window_partition_kernel<<<sam_cuda_blocks(ntok * 32, THREADS), THREADS, 0, cb->stream>>>(
        y, x, H, W, C, wh, ww, (W + ww - 1) / ww, w0, ntok, norm ? 1 : 0, gamma, beta, eps);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* y (H, W, C) += the valid tokens of windows x (nwin, wh, ww, C); windows do not overlap. */
__global__ void window_unpartition_add_kernel(float *y, const float *x, int H, int W, int C, int wh, int ww, int nww,
                                              int w0, int64_t total) {
    GRID_LOOP(e, total) {
        const int c = (int)(e % C);
        const int64_t t = e / C;
        const int j = (int)(t % ww);
        const int64_t rw = t / ww;
        const int i = (int)(rw % wh), wi = w0 + (int)(rw / wh);
        const int yy = (wi / nww) * wh + i, xx = (wi % nww) * ww + j;
        if (yy >= H || xx >= W) continue;
        float *d = y + ((int64_t)yy * W + xx) * C + c;
        *d = x[e] + *d;
    }
}

void sam_cuda_window_unpartition_add(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww,
                                     int w0, int nwin) {
    if (nwin <= 0 || wh <= 0 || ww <= 0 || C <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    const int64_t total = (int64_t)nwin * wh * ww * C;
    window_unpartition_add_kernel<<<sam_cuda_blocks(total, THREADS), THREADS, 0, cb->stream>>>(
        y, x, H, W, C, wh, ww, (W + ww - 1) / ww, w0, total);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}

/* ---- strided 2x2 max pool (NaN propagates, as torch) ---------------------------------- */

__device__ __forceinline__ float max_nan(float m, float v) { return (v > m || v != v) ? v : m; }

__global__ void maxpool_ld_kernel(float *y, const float *x, int N, int H, int W, int C, int64_t ldx, int Ho, int Wo) {
    GRID_LOOP(i, (int64_t)N * Ho * Wo * C) {
        const sam_nhwc p = sam_nhwc_of(i, Ho, Wo, C);
        const int c = p.c, ox = p.ox, oy = p.oy;
        const int64_t n = p.n;
        const float *p00 = x + ((n * H + 2 * oy) * W + 2 * ox) * ldx + c;
        const float *p10 = p00 + (int64_t)W * ldx;
        y[i] = max_nan(max_nan(max_nan(p00[0], p00[ldx]), p10[0]), p10[ldx]);
    }
}

void sam_cuda_maxpool2x2_ld(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx) {
    const int Ho = H / 2, Wo = W / 2;
    if (N <= 0 || Ho <= 0 || Wo <= 0 || C <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    maxpool_ld_kernel<<<sam_cuda_blocks((int64_t)N * Ho * Wo * C, THREADS), THREADS, 0, cb->stream>>>(y, x, N, H, W, C,
                                                                                                       ldx, Ho, Wo);
    KERNEL_CHECK(cb);
    sam_cuda_unlock(cb);
}
