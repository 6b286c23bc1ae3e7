/* The CUDA back end: the same function table as the CPU one (ops/ops.h), on
 * one NVIDIA GPU. cuBLAS does the big products; our own kernels the rest
 * (norms, activations, convolutions, resizes, flash-style attention).
 *
 * Every pointer handed to the table's kernels is a buffer (device memory:
 * buf_alloc = sam_cuda_malloc) or, for inputs, const memory (const_alloc:
 * managed memory, see backend.cu); host arrays of parameters (concat_last's
 * xs/Cs, permute's shape/perm, sam_conv2d_params, sam_attn_params) stay in
 * host memory. Programs reach it by name: sam_cuda_register() once, then
 * sam_backend_create("cuda" / "cuda:N" / "auto", ...) and sam_backend_free
 * (ops.h); the functions below are for tests and benchmarks.
 *
 * Execution: one CUDA stream per back end, the cuBLAS handle bound to it.
 * Kernels are queued and return at once (no host round trip); the results are
 * visible to the host after sam_cuda_download or sam_cuda_sync. The table's
 * kernels return void, so a failure (launch error, cuBLAS status, unsupported
 * size) is recorded in the back end: the first one is kept with its file:line
 * and returned by sam_cuda_sync / sam_cuda_status (it also sets
 * sam2d_last_error on the failing thread). Calls are serialised by a mutex,
 * so a back end may be shared by threads as the CPU one.
 *
 * Precision: fp32 is IEEE fp32 throughout (cuBLAS default math, no TF32).
 * bf16: linear layers above ~2^18 multiply-adds (linear, linear_ep, 1x1
 * convs) run cuBLAS GEMMs on bf16 operands with fp32 sums (weights converted
 * once by linear_prepare); the other cuBLAS products (gemm, convs, the
 * chunked attention) may use TF32 tensor cores; our own kernels stay fp32.
 *
 * Only built when CMake finds nvcc (SAM2D_CUDA); this header is plain C. */
#ifndef SAM_CUDA_CUDA_BACKEND_H
#define SAM_CUDA_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/ops.h"
#include "sam2d/sam2d.h"

#ifdef __cplusplus
extern "C" {
#endif

/* true when a CUDA device is present and runs this build's kernels (a tiny
 * probe kernel is launched on device 0). Otherwise false with the reason in
 * why (n bytes, may be NULL). Cheap after the first call (cached). */
bool sam_cuda_available(char *why, size_t n);

/* A back end on device `device` (0 = first). Reserves the stream, the cuBLAS
 * handle and workspace, and the kernel scratch. NULL on failure (reason in
 * sam2d_last_error()). */
sam_backend *sam_backend_cuda_create(int device, sam_precision precision);
/* Waits for queued work, then frees everything the back end holds (prepared
 * weights included; buffers from sam_cuda_malloc must be freed by their owner
 * first, any left are reported in the log and freed). NULL is fine. */
void sam_backend_cuda_free(sam_backend *be);
/* Offer this back end to sam_backend_create (ops.h) as the GPU back end
 * ("cuda", "cuda:N", "auto"); programs that link the CUDA library call it once
 * at start. */
void sam_cuda_register(void);
/* true when be was made by sam_backend_cuda_create. */
bool sam_backend_is_cuda(const sam_backend *be);
/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" and the like. */
const char *sam_cuda_device_name(const sam_backend *be);

/* Device memory, accounted per back end (the table's buf_alloc/buf_free).
 * sam_cuda_malloc returns 256-byte aligned memory, NULL on failure or bytes == 0. */
void *sam_cuda_malloc(sam_backend *be, size_t bytes);
void sam_cuda_free(sam_backend *be, void *dev);
/* Bytes of device memory the back end holds now (buffers, const memory,
 * scratch, cuBLAS workspace, prepared weights; = device_memory's used) and
 * the most it held. */
size_t sam_cuda_bytes_in_use(const sam_backend *be);
size_t sam_cuda_bytes_peak(const sam_backend *be);

/* Copies between host and device memory, in the back end's stream order
 * (after every kernel queued before them). upload returns once src_host may be
 * reused; download once dst_host holds the data. upload_async only queues the
 * copy: src_host (best pinned, from sam_cuda_host_alloc) must stay unchanged
 * until the next sam_cuda_sync or download. Device-to-device copies and
 * memset0 are queued. */
sam2d_status sam_cuda_upload(sam_backend *be, void *dst_dev, const void *src_host, size_t bytes);
sam2d_status sam_cuda_upload_async(sam_backend *be, void *dst_dev, const void *src_host, size_t bytes);
sam2d_status sam_cuda_download(sam_backend *be, void *dst_host, const void *src_dev, size_t bytes);
sam2d_status sam_cuda_copy(sam_backend *be, void *dst_dev, const void *src_dev, size_t bytes);
sam2d_status sam_cuda_memset0(sam_backend *be, void *dst_dev, size_t bytes);

/* Pinned (page-locked) host memory for frames and masks: faster copies.
 * NULL on failure. */
void *sam_cuda_host_alloc(size_t bytes);
void sam_cuda_host_free(void *p);

/* Wait for every queued kernel; returns the first error recorded since
 * create (or since sam_cuda_clear_error), SAM2D_OK when none. */
sam2d_status sam_cuda_sync(sam_backend *be);
/* The recorded error without waiting, and its message ("" when none). */
sam2d_status sam_cuda_status(const sam_backend *be);
const char *sam_cuda_error_message(const sam_backend *be);
/* Forget a recorded error (the next one is kept again). A sticky CUDA error
 * (illegal address, ...) keeps failing every later call. */
void sam_cuda_clear_error(sam_backend *be);

/* Attention has two implementations: a fused flash-style kernel (key tiles
 * in shared memory, online softmax, head dims up to 256) for many small
 * problems, and key chunks through cuBLAS (scores of one chunk in the
 * scratch, online softmax between chunks) for a few big ones such as the
 * memory attention. AUTO picks by size; tests and benchmarks force one. */
enum { SAM_CUDA_ATTN_AUTO = 0, SAM_CUDA_ATTN_FLASH = 1, SAM_CUDA_ATTN_CHUNKED = 2 };
void sam_cuda_set_attention_path(sam_backend *be, int path);

#ifdef __cplusplus
}
#endif
#endif
