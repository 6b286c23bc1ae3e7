/* The back-end function table. Model code calls kernels only through a
 * sam_backend, so a CUDA back end can be added without touching the model.
 *
 * Conventions (all kernels):
 *  - float32 data, row-major, densely packed unless a stride is given;
 *  - images and feature maps are channels-last: (N, H, W, C);
 *  - weights keep PyTorch's layout (Linear (out, in); Conv (out, in/groups, kh, kw);
 *    ConvTranspose (in, out, kh, kw)) so checkpoints load without reshuffling;
 *  - outputs never alias inputs unless the comment says in-place is allowed;
 *  - pointers are in the back end's memory (host memory for the CPU back end).
 *
 * Thread safety: a back end may be used from several threads; each call runs
 * to completion (CPU kernels share one thread pool, serialised inside it). */
#ifndef SAM_OPS_OPS_H
#define SAM_OPS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sam_threadpool sam_threadpool;

typedef struct {
    int N, H, W, C_in;   /* input (N, H, W, C_in) */
    int C_out;
    int kh, kw;
    int stride_h, stride_w;
    int pad_h, pad_w;    /* zero padding, both sides */
    int groups;          /* C_in and C_out divisible by it; groups == C_in == C_out is depthwise */
} sam_conv2d_params;

/* Output size of a conv: floor((H + 2*pad - k) / stride) + 1. */
static inline int sam_conv_out(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

typedef struct {
    int batch;           /* independent problems (e.g. windows) */
    int heads;
    int Lq, Lk;          /* queries, keys */
    int d_qk, d_v;       /* per-head dims of q/k and of v */
    /* Row strides (elements) between consecutive tokens; head h of token i
     * starts at base + i*stride + h*d. Batch strides between problems. */
    int64_t q_stride, k_stride, v_stride, o_stride;
    int64_t q_batch, k_batch, v_batch, o_batch;
    float scale;         /* usually 1/sqrt(d_qk) */
} sam_attn_params;

/* Arithmetic of the big products (linear layers, attention). FP32 is exact
 * (the reference's float32); BF16 rounds their operands to bf16 and sums in
 * fp32 (not within 1e-4 of the reference: ~0.1-0.6 % normalised error on the
 * encoder's features, >99.8 % mask agreement on the golden videos). The CPU
 * back end uses AMX-BF16 tiles where present (~3x faster encoder on this
 * project's machine), else AVX512_BF16 (where vdpbf16ps runs at the FMA rate
 * it doubles the products' speed; on this machine it does not), else AVX-512F
 * or C with the same results. Products below ~2^18 multiply-adds, gemm() and
 * everything else stay fp32. */
typedef enum { SAM_PRECISION_FP32 = 0, SAM_PRECISION_BF16 = 1 } sam_precision;

/* Activation applied by linear_ep. GELU is the exact erf form (as gelu). */
typedef enum { SAM_ACT_NONE = 0, SAM_ACT_GELU = 1, SAM_ACT_RELU = 2 } sam_act;

typedef struct sam_backend sam_backend;
struct sam_backend {
    const char *name;
    sam_threadpool *pool; /* CPU: worker threads; may be NULL (single thread) */
    sam_precision precision; /* fixed at create */

    /* y(M,N) = x(M,K) . w(N,K)^T + b(N); b may be NULL. */
    void (*linear)(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K);

    /* Optional preparation of a Linear weight w (N, K) that is used many times:
     * later linear calls with this exact w, N and K use a copy in the back
     * end's preferred form (bf16 panels in bf16 mode; nothing in fp32 mode).
     * The owner must call linear_forget before freeing or changing w. false
     * when out of memory (linear calls still work, just without the copy). */
    bool (*linear_prepare)(sam_backend *be, const float *w, int N, int K);
    void (*linear_forget)(sam_backend *be, const float *w);

    /* C(M,N) = alpha * op(A) . op(B) + beta * C; op transposes when the flag is set.
     * lda/ldb/ldc are row strides of the stored (untransposed) matrices. */
    void (*gemm)(sam_backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

    /* y (N, Ho, Wo, C_out) = conv(x (N, H, W, C_in), w (C_out, C_in/groups, kh, kw)) + b (C_out) or NULL. */
    void (*conv2d)(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                   const sam_conv2d_params *p);

    /* 2x2 stride-2 transposed conv: x (N, H, W, C_in), w (C_in, C_out, 2, 2), b (C_out) or NULL,
     * y (N, 2H, 2W, C_out). */
    void (*conv_transpose2x2)(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N, int H,
                              int W, int C_in, int C_out);

    /* LayerNorm over the last dim of x (rows, C): also LayerNorm2d on channels-last maps.
     * gamma/beta may be NULL (then 1/0). In-place (y == x) allowed. */
    void (*layer_norm)(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta, int64_t rows,
                       int C, float eps);
    /* LayerNorm2d on a channels-first map x (N, C, HW): normalise over C for every pixel. In-place allowed. */
    void (*layer_norm_cf)(sam_backend *be, float *y, const float *x, const float *gamma, const float *beta, int N, int C,
                          int64_t HW, float eps);

    /* Element-wise, in-place allowed. GELU is the exact erf form. */
    void (*gelu)(sam_backend *be, float *y, const float *x, int64_t n);
    void (*relu)(sam_backend *be, float *y, const float *x, int64_t n);
    void (*sigmoid)(sam_backend *be, float *y, const float *x, int64_t n);
    void (*add)(sam_backend *be, float *y, const float *a, const float *b, int64_t n);   /* y = a + b */
    void (*mul)(sam_backend *be, float *y, const float *a, const float *b, int64_t n);   /* y = a * b */
    /* y(rows, C) = x(rows, C) + b(C), broadcast over rows (bias / per-channel add). In-place allowed. */
    void (*add_row)(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C);
    /* y(rows, C) = x(rows, C) * s(C) (layer scale). In-place allowed. */
    void (*mul_row)(sam_backend *be, float *y, const float *x, const float *s, int64_t rows, int C);
    /* y = a * alpha + b * beta, in-place allowed */
    void (*axpby)(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n);

    /* Softmax over the last dim of x (rows, n). In-place allowed. */
    void (*softmax)(sam_backend *be, float *y, const float *x, int64_t rows, int n);

    /* 2x2 stride-2 max pool, channels-last, floor: x (N, H, W, C) -> y (N, H/2, W/2, C);
     * NaN propagates as in torch (= maxpool2x2_ld with ldx = C). */
    void (*maxpool2x2)(sam_backend *be, float *y, const float *x, int N, int H, int W, int C);

    /* Bilinear resize of planar maps x (C, Hi, Wi) -> y (C, Ho, Wo), align_corners=False,
     * as torch.nn.functional.interpolate; antialias as its antialias=True (only
     * differs when shrinking). */
    void (*resize_bilinear)(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo,
                            bool antialias);

    /* Nearest upsample by integer factors, channels-last: x (N, H, W, C) -> y (N, H*fh, W*fw, C). */
    void (*upsample_nearest)(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw);

    /* Copy with permuted axes: x has `ndim` dims `shape`; y[perm-ordered] = x.
     * y's shape is (shape[perm[0]], ..., shape[perm[ndim-1]]). ndim <= 6. */
    void (*permute)(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm);

    /* Concatenate along the last dim: y (rows, sum C_i) from parts x_i (rows, C_i). */
    void (*concat_last)(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows);

    /* Multi-head attention out = softmax(q k^T * scale) v without materialising
     * the score matrix (tiled over keys, online softmax): memory O(tile), not O(Lq*Lk). */
    void (*attention)(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                      const sam_attn_params *p);

    /* ---- added for the image encoder (issue 7); new entries go below ---- */

    /* Linear with a fused epilogue: y(M,N) = act(x(M,K) . w(N,K)^T + b(N)) + residual(M,N).
     * b and residual may be NULL. residual may be y itself (y += ...) only with
     * SAM_ACT_NONE; otherwise it must not overlap y. Same precision rules and
     * prepared weights as linear; the epilogue runs on each output block while
     * it is in cache (no extra pass over y). */
    void (*linear_ep)(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                      sam_act act, const float *residual);

    /* Window partition of a channels-last map x (H, W, C) on the grid of
     * ceil(H/wh) x ceil(W/ww) windows (raster order, the map zero padded at the
     * bottom/right): y (nwin, wh, ww, C) = windows [w0, w0 + nwin). With norm,
     * every token inside the map is layer-normalised over C on the way
     * (gamma/beta (C) or NULL, as layer_norm) and the padding stays exactly 0. */
    void (*window_partition)(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                             int nwin, bool norm, const float *gamma, const float *beta, float eps);
    /* The reverse, accumulating: y (H, W, C) += windows [w0, w0 + nwin) of x
     * (nwin, wh, ww, C) on the same grid; tokens in the padding are dropped. */
    void (*window_unpartition_add)(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww,
                                   int w0, int nwin);
    /* maxpool2x2 with strided pixels: x (N, H, W) pixels of C floats, ldx
     * (>= C) floats apart (e.g. the q part of a packed qkv); y (N, H/2, W/2, C)
     * dense. NaN propagates as in torch. */
    void (*maxpool2x2_ld)(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx);

    /* ---- memory and small kernels (issue 8): the model on device memory ---- */
    /* The rule (see DESIGN notes in docs/): activations and per-session state
     * live in "buffers" (buf_alloc, arenas made on the back end). On a GPU
     * they are device memory, which host code must never read or write: it
     * moves data only with to_dev / to_host / copy / copy2d / zero and computes
     * only through this table. Weights and the tables a module makes at load
     * are "const" memory (const_alloc): the host writes them while building
     * and may read them at any time; kernels read them too (CUDA: managed
     * memory kept on the device). On the CPU all of it is host memory and
     * these entries are malloc/memcpy, so the CPU path costs nothing extra.
     * The devsim back end (ops/devsim.h) enforces the rule on the CPU. */

    /* 64-byte aligned; NULL on failure or bytes == 0. buf_free(NULL) is fine. */
    void *(*buf_alloc)(sam_backend *be, size_t bytes);
    void (*buf_free)(sam_backend *be, void *p);
    /* Const memory: host-writable until const_publish(p) (once, after the
     * last host write), then read-only for host and kernels alike. */
    void *(*const_alloc)(sam_backend *be, size_t bytes);
    void (*const_publish)(sam_backend *be, const void *p, size_t bytes);
    void (*const_free)(sam_backend *be, void *p);
    /* Copies in the back end's order (after every kernel queued before them).
     * to_dev: dst a buffer, src host memory; returns once src may be reused.
     * to_host: dst host memory; returns once dst holds the data (so it waits
     * for the kernels before it). copy/copy2d/zero: buffers or const memory
     * as sources, buffers as destinations; queued. Pitches in bytes. */
    void (*to_dev)(sam_backend *be, void *dst, const void *src_host, size_t bytes);
    void (*to_host)(sam_backend *be, void *dst_host, const void *src, size_t bytes);
    void (*copy)(sam_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy2d)(sam_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t row_bytes,
                   size_t rows);
    void (*zero)(sam_backend *be, void *dst, size_t bytes);
    /* Waits for every queued kernel; 0 (SAM2D_OK) or the first error the back
     * end recorded (a sam2d_status: failed launch, device out of memory). */
    int (*sync)(sam_backend *be);

    /* y[i] = value. */
    void (*fill)(sam_backend *be, float *y, float value, int64_t n);
    /* y = x * alpha + beta; in-place allowed. */
    void (*affine)(sam_backend *be, float *y, const float *x, float alpha, float beta, int64_t n);
    /* y = x > 0 ? 1 : 0 (NaN -> 0); in-place allowed. */
    void (*binarize)(sam_backend *be, float *y, const float *x, int64_t n);
    /* Axial RoPE in place: x (rows, at `stride` floats per token), every
     * head's consecutive pairs (x[2j], x[2j+1]) rotated as complex numbers by
     * cos_t/sin_t (L, head_dim/2); token r uses table row r % L. */
    void (*rope)(sam_backend *be, float *x, int64_t rows, int64_t stride, int heads, int head_dim, const float *cos_t,
                 const float *sin_t, int64_t L);

    /* bf16 storage (as torch's .to(bfloat16): nearest even, NaN -> 0x7fc0):
     * y (n) = bf16(x), and back (exact). */
    void (*to_bf16)(sam_backend *be, uint16_t *y, const float *x, int64_t n);
    void (*from_bf16)(sam_backend *be, float *y, const uint16_t *x, int64_t n);

    /* Device memory the back end holds now (buffers, const memory, its own
     * scratch) and the device's total; both 0 for back ends on host memory
     * (sam_malloc accounts those). */
    void (*device_memory)(sam_backend *be, size_t *used, size_t *total);

    /* Frees the back end (any kind); NULL-safe through sam_backend_free. */
    void (*destroy)(sam_backend *be);
};

/* Back ends by name, the one policy for SAM2_DEVICE: "cpu"; "devsim" (the CPU
 * kernels behind the device-memory rule, for tests); "cuda" / "cuda:N" (a GPU
 * back end must be registered and working, else NULL with the reason in
 * sam2d_last_error()); "auto", "" or NULL (the registered GPU back end when it
 * works, else the CPU; the choice is logged). nthreads as for the CPU back end. */
sam_backend *sam_backend_create(const char *device, int nthreads, sam_precision precision);
void sam_backend_free(sam_backend *be);
/* A GPU back end offers itself here (the CUDA library's sam_cuda_register()
 * calls it; programs that link it call that at start). create(index, precision)
 * returns NULL with sam2d_last_error() set when no GPU works. */
typedef sam_backend *(*sam_gpu_create_fn)(int index, sam_precision precision);
void sam_backend_register_gpu(const char *name, sam_gpu_create_fn create);
/* The registered GPU back end's name, or NULL. */
const char *sam_backend_gpu_name(void);

/* Arena chunks from be's buffers (core/arena.h); call right after sam_arena_init. */
typedef struct sam_arena sam_arena;
void sam_arena_on_backend(sam_arena *a, sam_backend *be);

/* Host copies of a few values (e.g. scores the host decides on): to_host
 * into a small host array. */
static inline float sam_backend_read_f32(sam_backend *be, const float *src) {
    float v;
    be->to_host(be, &v, src, sizeof v);
    return v;
}

/* The CPU back end (BLAS + own kernels). nthreads <= 0: SAM2_THREADS or all CPUs.
 * Precision from SAM2_PRECISION ("fp32", the default, or "bf16"). Returns NULL
 * on allocation failure, or (with an error logged that names the variable) when
 * SAM2_PRECISION holds anything else. It switches OpenBLAS to one thread
 * (process-wide) and splits BLAS calls over its own pool instead, so call
 * BLAS through the table, not directly. Kernel scratch (grow-only, at most
 * 64 MiB) is allocated once per back end through sam_malloc. */
sam_backend *sam_backend_cpu_create(int nthreads);
/* With an explicit precision (the environment's SAM2_PRECISION is not read). */
sam_backend *sam_backend_cpu_create_ex(int nthreads, sam_precision precision);
/* "fp32" / "bf16" (case-insensitive) -> *out; false for anything else. */
bool sam_precision_parse(const char *s, sam_precision *out);
const char *sam_precision_name(sam_precision p);
void sam_backend_cpu_free(sam_backend *be);

/* Attention params for dense (L, heads*d) token-major tensors, one batch. */
sam_attn_params sam_attn_dense(int heads, int Lq, int Lk, int d_qk, int d_v);

#endif
