/* Private to the CUDA back end: its state behind the public table, the error
 * recording macros, the shared scratch and the kernel entry points. */
#ifndef SAM_CUDA_CUDA_INTERNAL_CUH
#define SAM_CUDA_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdint.h>

extern "C" {
#include "core/error.h"
#include "core/log.h"
#include "cuda/cuda_backend.h"
#include "ops/ops.h"
}

/* A prepared (bf16) copy of a Linear weight, keyed by the fp32 device pointer. */
typedef struct {
    const float *w;  /* key: the fp32 weight (N, K) on the device; NULL = free slot */
    int N, K;
    void *wb;        /* (N, K) bf16 on the device */
} sam_cuda_wentry;

/* What an accounted allocation is, so that it is freed the matching way. */
enum {
    SAM_CUDA_MEM_DEVICE = 0,  /* cudaMalloc: buffers, scratch, workspace, prepared weights */
    SAM_CUDA_MEM_MANAGED = 1, /* cudaMallocManaged: const memory */
    SAM_CUDA_MEM_PINNED = 2   /* cudaMallocHost: const memory where managed memory cannot be shared (see const_alloc) */
};

typedef struct {
    void *p;
    size_t bytes;
    int kind; /* SAM_CUDA_MEM_* */
} sam_cuda_alloc_entry;

/* A chunk of const memory that small const allocations are carved from. */
typedef struct {
    char *base;
    size_t size, used; /* bytes; used only grows */
    int live;          /* allocations in it not yet freed: the chunk goes at 0 */
} sam_cuda_const_chunk;

typedef struct {
    sam_backend base; /* first: a sam_backend * is also a sam_cuda_backend * */
    uint32_t magic;   /* SAM_CUDA_MAGIC: tells a CUDA back end from others */
    int device;
    char devname[160];
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;     /* cuBLAS workspace (blas_ws_bytes) */
    size_t blas_ws_bytes;

    /* One mutex serialises every call (kernels share the scratch). */
    pthread_mutex_t mu;
    /* Grow-only scratch for im2col blocks, bf16 operands, resize taps, ... */
    void *scratch;
    size_t scratch_bytes;

    /* Device allocations and their sizes (bytes in use / peak). */
    pthread_mutex_t amu;
    sam_cuda_alloc_entry *allocs; /* (alloc_cap,) host; the first alloc_n used, searched linearly */
    size_t alloc_cap, alloc_n;
    size_t bytes_in_use, bytes_peak;
    size_t total_mem;   /* the device's memory (device_memory's total) */
    bool managed_const; /* const memory is managed memory (else pinned host memory: see const_alloc) */
    /* Small const allocations are carved from shared chunks (see const_alloc). */
    pthread_mutex_t cmu;
    sam_cuda_const_chunk *cchunks; /* (cchunk_cap,) host; the newest last */
    size_t cchunk_cap, cchunk_n;

    /* Prepared weights (bf16 mode). */
    sam_cuda_wentry *wreg; /* (wreg_cap,) host; the first wreg_n used, searched linearly */
    size_t wreg_cap, wreg_n;

    /* First error since create / clear. */
    sam2d_status err;
    char errmsg[512];
    int max_smem_optin; /* bytes of shared memory a block may opt into */
    int attn_path;      /* SAM_CUDA_ATTN_* (tests force one) */
} sam_cuda_backend;

#define SAM_CUDA_MAGIC 0x43554441u /* "CUDA" */

static inline sam_cuda_backend *sam_cuda_cb(sam_backend *be) { return (sam_cuda_backend *)be; }

/* Record an error in the back end (first one wins) and in sam2d_last_error. */
void sam_cuda_record(sam_cuda_backend *cb, sam2d_status s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

bool sam_cuda_check_rt(sam_cuda_backend *cb, cudaError_t e, const char *what, const char *file, int line);
bool sam_cuda_check_blas(sam_cuda_backend *cb, cublasStatus_t s, const char *what, const char *file, int line);

/* Evaluate a CUDA runtime / cuBLAS call; on failure record it (with the call's
 * text and our file:line) and yield false. */
#define CUDA_CHECK(cb, call) sam_cuda_check_rt((cb), (call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(cb, call) sam_cuda_check_blas((cb), (call), #call, __FILE__, __LINE__)
/* After a kernel launch: launch configuration errors show up here. */
#define KERNEL_CHECK(cb) sam_cuda_check_rt((cb), cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
/* Record a bad argument / unsupported size. */
#define CUDA_FAIL(cb, status, ...) sam_cuda_record((cb), (status), __FILE__, __LINE__, __VA_ARGS__)

/* The scratch, grown (with a sync first, since queued kernels may still use
 * the old block) to at least `bytes`. NULL (error recorded) when it cannot be.
 * Caller holds cb->mu. */
void *sam_cuda_scratch(sam_cuda_backend *cb, size_t bytes);
/* Accounted device allocation for the back end's own use (no lock needed). */
void *sam_cuda_alloc_internal(sam_cuda_backend *cb, size_t bytes);
void sam_cuda_free_internal(sam_cuda_backend *cb, void *p);

/* Lock / unlock the back end around a table call. */
static inline sam_cuda_backend *sam_cuda_lock(sam_backend *be) {
    sam_cuda_backend *cb = sam_cuda_cb(be);
    pthread_mutex_lock(&cb->mu);
    cudaSetDevice(cb->device); /* the calling thread may have another current device */
    return cb;
}
static inline void sam_cuda_unlock(sam_cuda_backend *cb) { pthread_mutex_unlock(&cb->mu); }

/* Grid for a grid-stride loop over n items with `threads` per block. */
static inline unsigned sam_cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65536 * 8) b = 65536 * 8; /* the loops stride over the rest */
#ifdef SAM_CUDA_EMU
    if (b > 16) b = 16; /* tests/cuda/emu runs blocks one after another on the CPU */
#endif
    return (unsigned)b;
}

/* ---- internal helpers shared between files (caller holds cb->mu) ---- */
/* y (rows, C) = x (rows, C) + b (C) (y may be x). */
void sam_cuda_add_row_locked(sam_cuda_backend *cb, float *y, const float *x, const float *b, int64_t rows, int C);
/* y (rows, C) at row stride ldy: every row = b (C), or zeros when b is NULL. */
void sam_cuda_fill_rows_locked(sam_cuda_backend *cb, float *y, int64_t ldy, const float *b, int64_t rows, int C);
/* Row-major C(M,N) = alpha op(A) op(B) + beta C through cuBLAS (fp32 / TF32 as the mode says). */
void sam_cuda_sgemm_locked(sam_cuda_backend *cb, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* y(M,N) = x(M,K) . w(N,K)^T + beta y (bf16 operands when the mode and size say so); K 0: beta y. */
void sam_cuda_linear_product_locked(sam_cuda_backend *cb, float *y, const float *x, const float *w, int M, int N,
                                    int K, float beta);
/* y(M,N) = x(M,K) . w(N,K)^T + b, as the table's linear (bf16 when the mode and size say so). */
void sam_cuda_linear_locked(sam_cuda_backend *cb, float *y, const float *x, const float *w, const float *b, int M,
                            int N, int K);

/* ---- table entries (see ops.h for the contracts) ---- */
void sam_cuda_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K);
bool sam_cuda_linear_prepare(sam_backend *be, const float *w, int N, int K);
void sam_cuda_linear_forget(sam_backend *be, const float *w);
void sam_cuda_wreg_free(sam_cuda_backend *cb);
void sam_cuda_gemm(sam_backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void sam_cuda_conv2d(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                     const sam_conv2d_params *p);
void sam_cuda_conv_transpose2x2(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N,
                                int H, int W, int C_in, int C_out);
void sam_cuda_layer_norm(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta,
                         int64_t rows, int C, float eps);
void sam_cuda_layer_norm_cf(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta, int N,
                            int C, int64_t HW, float eps);
void sam_cuda_gelu(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cuda_relu(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cuda_sigmoid(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cuda_add(sam_backend *be, float *y, const float *a, const float *b, int64_t n);
void sam_cuda_mul(sam_backend *be, float *y, const float *a, const float *b, int64_t n);
void sam_cuda_add_row(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C);
void sam_cuda_mul_row(sam_backend *be, float *y, const float *x, const float *s, int64_t rows, int C);
void sam_cuda_axpby(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n);
void sam_cuda_softmax(sam_backend *be, float *y, const float *x, int64_t rows, int n);
void sam_cuda_maxpool2x2(sam_backend *be, float *y, const float *x, int N, int H, int W, int C);
void sam_cuda_resize_bilinear(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo,
                              bool antialias);
void sam_cuda_upsample_nearest(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw);
void sam_cuda_permute(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm);
void sam_cuda_concat_last(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows);
void sam_cuda_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                        const sam_attn_params *p);
void sam_cuda_linear_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                        sam_act act, const float *residual);
/* Coordinates of flat index i in a channels-last (N, Ho, Wo, C) tensor. */
struct sam_nhwc {
    int64_t n;
    int oy, ox, c;
};
__device__ __forceinline__ sam_nhwc sam_nhwc_of(int64_t i, int Ho, int Wo, int C) {
    sam_nhwc p;
    p.c = (int)(i % C);
    int64_t t = i / C;
    p.ox = (int)(t % Wo);
    t /= Wo;
    p.oy = (int)(t % Ho);
    p.n = t / Ho;
    return p;
}

/* float -> bf16 bits as torch's .to(bfloat16) (src/model/bf16.h): nearest
 * even, any NaN -> 0x7fc0, overflow to inf; in integers, so the result does
 * not depend on the device's conversion instructions (which keep NaN payloads). */
__device__ __forceinline__ uint16_t sam_bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Sum over the 32 lanes of a warp; every lane gets the total. */
__device__ __forceinline__ double sam_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* LayerNorm of one row of C by one warp, as the CPU kernel: mean and biased
 * variance in double (two passes), then (x - mean) * rstd * gamma + beta in
 * float; gamma/beta may be NULL. In-place safe: each lane writes only the
 * elements it alone reads in the last pass. */
__device__ __forceinline__ void sam_warp_layer_norm_row(float *yr, const float *xr, int C, const float *g,
                                                        const float *bt, float eps) {
    const int lane = threadIdx.x & 31;
    double s = 0;
    for (int j = lane; j < C; j += 32) s += xr[j];
    const double mean = sam_warp_sum(s) / C;
    double q = 0;
    for (int j = lane; j < C; j += 32) {
        const double d = xr[j] - mean;
        q += d * d;
    }
    const double var = sam_warp_sum(q) / C;
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    const float m = (float)mean;
    for (int j = lane; j < C; j += 32) {
        float v = (xr[j] - m) * rstd;
        if (g) v *= g[j];
        if (bt) v += bt[j];
        yr[j] = v;
    }
}

void sam_cuda_window_partition(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                               int nwin, bool norm, const float *gamma, const float *beta, float eps);
void sam_cuda_window_unpartition_add(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww,
                                     int w0, int nwin);
void sam_cuda_maxpool2x2_ld(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx);

/* issue 8: the memory entries are in backend.cu; these small kernels in eltwise.cu */
void sam_cuda_fill(sam_backend *be, float *y, float value, int64_t n);
void sam_cuda_affine(sam_backend *be, float *y, const float *x, float alpha, float beta, int64_t n);
void sam_cuda_binarize(sam_backend *be, float *y, const float *x, int64_t n);
void sam_cuda_rope(sam_backend *be, float *x, int64_t rows, int64_t stride, int heads, int head_dim,
                   const float *cos_t, const float *sin_t, int64_t L);
void sam_cuda_to_bf16(sam_backend *be, uint16_t *y, const float *x, int64_t n);
void sam_cuda_from_bf16(sam_backend *be, float *y, const uint16_t *x, int64_t n);
/* dst (n) = bf16 bits of src, queued (caller holds cb->mu). */
void sam_cuda_to_bf16_locked(sam_cuda_backend *cb, uint16_t *dst, const float *src, int64_t n);

#endif
