/* The CUDA back end: create/free, device memory and its accounting, copies,
 * error recording, and the function table. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cuda/cuda_internal.cuh"

extern "C" {
#include "core/alloc.h"
}

#define SCRATCH_INIT ((size_t)80 << 20) /* 80 MiB: im2col blocks of SAM's convs and one 64 MiB attention score chunk fit */
#define BLAS_WS_BYTES ((size_t)32 << 20) /* what cuBLAS recommends for Hopper */

/* ---- errors -------------------------------------------------------------- */

void sam_cuda_record(sam_cuda_backend *cb, sam2d_status s, const char *file, int line, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sam_error_set(s, file, line, "cuda: %s", msg);
    if (cb && cb->err == SAM2D_OK) {
        const char *base = strrchr(file, '/');
        cb->err = s;
        snprintf(cb->errmsg, sizeof cb->errmsg, "%s (%s:%d)", msg, base ? base + 1 : file, line);
        sam_logf(SAM_LOG_ERROR, "cuda: %s", cb->errmsg);
    }
}

bool sam_cuda_check_rt(sam_cuda_backend *cb, cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return true;
    sam_cuda_record(cb, e == cudaErrorMemoryAllocation ? SAM2D_ERR_NOMEM : SAM2D_ERR_INTERNAL, file, line,
                    "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return false;
}

static const char *blas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "alloc failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "arch mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown status";
    }
}

bool sam_cuda_check_blas(sam_cuda_backend *cb, cublasStatus_t s, const char *what, const char *file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    sam_cuda_record(cb, s == CUBLAS_STATUS_ALLOC_FAILED ? SAM2D_ERR_NOMEM : SAM2D_ERR_INTERNAL, file, line,
                    "%s: cuBLAS %s (%d)", what, blas_status_name(s), (int)s);
    return false;
}

/* ---- availability --------------------------------------------------------- */

__global__ void probe_kernel(int *out) { *out = 0x5a2d; }

static pthread_once_t avail_once = PTHREAD_ONCE_INIT;
static bool avail_ok;
static char avail_why[256];

static void probe_device(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(avail_why, sizeof avail_why, "no usable CUDA driver/device: %s", cudaGetErrorString(e));
        return;
    }
    if (n <= 0) {
        snprintf(avail_why, sizeof avail_why, "no CUDA device");
        return;
    }
    int *d = NULL, h = 0;
    /* A kernel that actually runs: catches a build without code for this GPU's architecture. */
    if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaMalloc(&d, sizeof(int))) != cudaSuccess) {
        snprintf(avail_why, sizeof avail_why, "CUDA device 0 unusable: %s", cudaGetErrorString(e));
        return;
    }
    probe_kernel<<<1, 1>>>(d);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    if (e != cudaSuccess || h != 0x5a2d) {
        snprintf(avail_why, sizeof avail_why, "probe kernel failed on device 0: %s",
                 e != cudaSuccess ? cudaGetErrorString(e) : "wrong result");
        return;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(avail_why, sizeof avail_why, "%.200s (sm_%d%d)", prop.name, prop.major, prop.minor);
    avail_ok = true;
}

extern "C" bool sam_cuda_available(char *why, size_t n) {
    pthread_once(&avail_once, probe_device);
    if (why && n) snprintf(why, n, "%s", avail_why);
    return avail_ok;
}

/* ---- accounted device memory ---------------------------------------------- */

static void account_add(sam_cuda_backend *cb, void *p, size_t bytes) {
    pthread_mutex_lock(&cb->amu);
    if (cb->alloc_n == cb->alloc_cap) {
        size_t ncap = cb->alloc_cap ? 2 * cb->alloc_cap : 256;
        sam_cuda_alloc_entry *na = (sam_cuda_alloc_entry *)sam_realloc(cb->allocs, ncap * sizeof *na);
        if (na) {
            cb->allocs = na;
            cb->alloc_cap = ncap;
        }
    }
    if (cb->alloc_n < cb->alloc_cap) cb->allocs[cb->alloc_n++] = sam_cuda_alloc_entry{p, bytes};
    cb->bytes_in_use += bytes;
    if (cb->bytes_in_use > cb->bytes_peak) cb->bytes_peak = cb->bytes_in_use;
    pthread_mutex_unlock(&cb->amu);
}

/* Forget p; false when it was not ours. Searched from the newest: buffers
 * tend to be freed in reverse order. */
static bool account_remove(sam_cuda_backend *cb, void *p) {
    bool found = false;
    pthread_mutex_lock(&cb->amu);
    for (size_t i = cb->alloc_n; i-- > 0;)
        if (cb->allocs[i].p == p) {
            cb->bytes_in_use -= cb->allocs[i].bytes;
            cb->allocs[i] = cb->allocs[--cb->alloc_n];
            found = true;
            break;
        }
    pthread_mutex_unlock(&cb->amu);
    return found;
}

void *sam_cuda_alloc_internal(sam_cuda_backend *cb, size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    cudaSetDevice(cb->device);
    if (!CUDA_CHECK(cb, cudaMalloc(&p, bytes))) {
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return NULL;
    }
    account_add(cb, p, bytes);
    return p;
}

void sam_cuda_free_internal(sam_cuda_backend *cb, void *p) {
    if (!p) return;
    /* queued kernels may still use p: cudaFree is not ordered with our stream */
    if (cb->stream) CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    if (!account_remove(cb, p))
        CUDA_FAIL(cb, SAM2D_ERR_INVALID_ARG, "free of %p, which this back end did not allocate", p);
    CUDA_CHECK(cb, cudaFree(p));
}

extern "C" void *sam_cuda_malloc(sam_backend *be, size_t bytes) {
    if (!be || bytes == 0) return NULL;
    return sam_cuda_alloc_internal(sam_cuda_cb(be), bytes); /* cudaMalloc: 256-byte aligned */
}

extern "C" void sam_cuda_free(sam_backend *be, void *dev) {
    if (!be || !dev) return;
    sam_cuda_free_internal(sam_cuda_cb(be), dev);
}

extern "C" size_t sam_cuda_bytes_in_use(const sam_backend *be) {
    sam_cuda_backend *cb = (sam_cuda_backend *)be;
    if (!cb) return 0;
    pthread_mutex_lock(&cb->amu);
    size_t v = cb->bytes_in_use;
    pthread_mutex_unlock(&cb->amu);
    return v;
}

extern "C" size_t sam_cuda_bytes_peak(const sam_backend *be) {
    sam_cuda_backend *cb = (sam_cuda_backend *)be;
    if (!cb) return 0;
    pthread_mutex_lock(&cb->amu);
    size_t v = cb->bytes_peak;
    pthread_mutex_unlock(&cb->amu);
    return v;
}

void *sam_cuda_scratch(sam_cuda_backend *cb, size_t bytes) {
    if (bytes <= cb->scratch_bytes) return cb->scratch;
    size_t want = cb->scratch_bytes + cb->scratch_bytes / 2;
    if (want < bytes) want = bytes;
    want = (want + 255) & ~(size_t)255;
    /* queued kernels may still read the old block */
    if (!CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream))) return NULL;
    const bool clean = cb->err == SAM2D_OK;
    void *nb = sam_cuda_alloc_internal(cb, want);
    if (!nb && want > bytes) {
        nb = sam_cuda_alloc_internal(cb, want = bytes);
        if (nb && clean) { /* the exact size fitted: the failed larger try is no error */
            cb->err = SAM2D_OK;
            cb->errmsg[0] = 0;
        }
    }
    if (!nb) {
        CUDA_FAIL(cb, SAM2D_ERR_NOMEM, "scratch: cannot grow to %zu bytes", bytes);
        return NULL;
    }
    sam_cuda_free_internal(cb, cb->scratch);
    cb->scratch = nb;
    cb->scratch_bytes = want;
    return nb;
}

/* ---- copies and synchronisation -------------------------------------------- */

extern "C" sam2d_status sam_cuda_upload(sam_backend *be, void *dst_dev, const void *src_host, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda upload: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, cb->stream)) &&
              CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_upload_async(sam_backend *be, void *dst_dev, const void *src_host, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda upload: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_download(sam_backend *be, void *dst_host, const void *src_dev, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda download: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, cb->stream)) &&
              CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_copy(sam_backend *be, void *dst_dev, const void *src_dev, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda copy: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice, cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_memset0(sam_backend *be, void *dst_dev, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda memset: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemsetAsync(dst_dev, 0, bytes, cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

/* Pinned blocks carry their size in a 64-byte header (for the accounting). */
#define HOST_HDR 64

extern "C" void *sam_cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0 || cudaMallocHost(&p, bytes + HOST_HDR) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    memcpy(p, &bytes, sizeof bytes);
    sam_mem_account((long long)(bytes + HOST_HDR));
    return (char *)p + HOST_HDR;
}

extern "C" void sam_cuda_host_free(void *p) {
    if (!p) return;
    char *base = (char *)p - HOST_HDR;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    sam_mem_account(-(long long)(bytes + HOST_HDR));
    cudaFreeHost(base);
}

extern "C" sam2d_status sam_cuda_sync(sam_backend *be) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda sync: no back end");
    sam_cuda_backend *cb = sam_cuda_lock(be);
    CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    sam2d_status s = cb->err;
    if (s != SAM2D_OK) sam_error_set(s, __FILE__, __LINE__, "cuda: %s", cb->errmsg);
    sam_cuda_unlock(cb);
    return s;
}

extern "C" sam2d_status sam_cuda_status(const sam_backend *be) { return be ? ((const sam_cuda_backend *)be)->err : SAM2D_OK; }

extern "C" const char *sam_cuda_error_message(const sam_backend *be) {
    return be ? ((const sam_cuda_backend *)be)->errmsg : "";
}

extern "C" void sam_cuda_clear_error(sam_backend *be) {
    if (!be) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    cb->err = SAM2D_OK;
    cb->errmsg[0] = 0;
    cudaGetLastError();
    sam_cuda_unlock(cb);
}

extern "C" bool sam_backend_is_cuda(const sam_backend *be) {
    return be && be->name && strcmp(be->name, "cuda") == 0 && ((const sam_cuda_backend *)be)->magic == SAM_CUDA_MAGIC;
}

extern "C" const char *sam_cuda_device_name(const sam_backend *be) {
    return be ? ((const sam_cuda_backend *)be)->devname : "";
}

/* ---- create / free --------------------------------------------------------- */

extern "C" sam_backend *sam_backend_cuda_create(int device, sam_precision precision) {
    char why[256];
    if (!sam_cuda_available(why, sizeof why)) {
        SAM_ERR(SAM2D_ERR_UNSUPPORTED, "cuda: %s", why);
        return NULL;
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || device < 0 || device >= ndev) {
        SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda: no device %d (%d present)", device, ndev);
        return NULL;
    }
    sam_cuda_backend *cb = (sam_cuda_backend *)sam_calloc(1, sizeof *cb);
    if (!cb) {
        SAM_ERR(SAM2D_ERR_NOMEM, "cuda: back end state");
        return NULL;
    }
    sam_backend *be = &cb->base;
    be->name = "cuda";
    be->pool = NULL;
    be->precision = precision == SAM_PRECISION_BF16 ? SAM_PRECISION_BF16 : SAM_PRECISION_FP32;
    cb->magic = SAM_CUDA_MAGIC;
    cb->device = device;
    pthread_mutex_init(&cb->mu, NULL);
    pthread_mutex_init(&cb->amu, NULL);

    cudaDeviceProp prop;
    bool ok = CUDA_CHECK(cb, cudaSetDevice(device)) && CUDA_CHECK(cb, cudaGetDeviceProperties(&prop, device));
    if (ok) {
        snprintf(cb->devname, sizeof cb->devname, "%.120s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1 << 30));
        int optin = 0;
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
        cb->max_smem_optin = optin > 0 ? optin : 48 * 1024;
    }
    ok = ok && CUDA_CHECK(cb, cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking));
    ok = ok && CUBLAS_CHECK(cb, cublasCreate(&cb->blas));
    ok = ok && CUBLAS_CHECK(cb, cublasSetStream(cb->blas, cb->stream));
    /* fp32: IEEE products (no TF32); bf16 mode allows TF32 tensor cores in the fp32 GEMMs */
    ok = ok && CUBLAS_CHECK(cb, cublasSetMathMode(cb->blas, be->precision == SAM_PRECISION_BF16
                                                                 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                 : CUBLAS_DEFAULT_MATH));
    ok = ok && CUBLAS_CHECK(cb, cublasSetPointerMode(cb->blas, CUBLAS_POINTER_MODE_HOST));
    if (ok) {
        cb->blas_ws = sam_cuda_alloc_internal(cb, BLAS_WS_BYTES);
        ok = cb->blas_ws && CUBLAS_CHECK(cb, cublasSetWorkspace(cb->blas, cb->blas_ws, BLAS_WS_BYTES));
        cb->blas_ws_bytes = BLAS_WS_BYTES;
    }
    if (ok) {
        cb->scratch = sam_cuda_alloc_internal(cb, SCRATCH_INIT);
        cb->scratch_bytes = cb->scratch ? SCRATCH_INIT : 0;
        ok = cb->scratch != NULL;
    }
    if (!ok) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cb->errmsg);
        sam_backend_cuda_free(be);
        SAM_ERR(SAM2D_ERR_INTERNAL, "cuda: back end on device %d: %s", device, msg);
        return NULL;
    }

    be->linear = sam_cuda_linear;
    be->linear_prepare = sam_cuda_linear_prepare;
    be->linear_forget = sam_cuda_linear_forget;
    be->gemm = sam_cuda_gemm;
    be->conv2d = sam_cuda_conv2d;
    be->conv_transpose2x2 = sam_cuda_conv_transpose2x2;
    be->layer_norm = sam_cuda_layer_norm;
    be->layer_norm_cf = sam_cuda_layer_norm_cf;
    be->gelu = sam_cuda_gelu;
    be->relu = sam_cuda_relu;
    be->sigmoid = sam_cuda_sigmoid;
    be->add = sam_cuda_add;
    be->mul = sam_cuda_mul;
    be->add_row = sam_cuda_add_row;
    be->mul_row = sam_cuda_mul_row;
    be->axpby = sam_cuda_axpby;
    be->softmax = sam_cuda_softmax;
    be->maxpool2x2 = sam_cuda_maxpool2x2;
    be->resize_bilinear = sam_cuda_resize_bilinear;
    be->upsample_nearest = sam_cuda_upsample_nearest;
    be->permute = sam_cuda_permute;
    be->concat_last = sam_cuda_concat_last;
    be->attention = sam_cuda_attention;
    be->linear_ep = sam_cuda_linear_ep;
    be->window_partition = sam_cuda_window_partition;
    be->window_unpartition_add = sam_cuda_window_unpartition_add;
    be->maxpool2x2_ld = sam_cuda_maxpool2x2_ld;
    { /* entries appended to ops.h after this back end was written would stay NULL: say so at once */
        typedef void (*any_fn)(void);
        const size_t n = (sizeof(sam_backend) - offsetof(sam_backend, linear)) / sizeof(any_fn);
        size_t missing = 0;
        for (size_t i = 0; i < n; i++) {
            any_fn f;
            memcpy(&f, (const char *)be + offsetof(sam_backend, linear) + i * sizeof(any_fn), sizeof f);
            missing += f == NULL;
        }
        if (missing) sam_logf(SAM_LOG_WARN, "cuda: %zu back-end table entries are not implemented (NULL)", missing);
    }
    sam_logf(SAM_LOG_INFO, "cuda: back end on %s, precision %s", cb->devname, sam_precision_name(be->precision));
    return be;
}

extern "C" void sam_backend_cuda_free(sam_backend *be) {
    if (!be) return;
    sam_cuda_backend *cb = sam_cuda_cb(be);
    cudaSetDevice(cb->device);
    if (cb->stream) cudaStreamSynchronize(cb->stream);
    sam_cuda_wreg_free(cb);
    if (cb->blas) cublasDestroy(cb->blas);
    sam_cuda_free_internal(cb, cb->blas_ws);
    sam_cuda_free_internal(cb, cb->scratch);
    if (cb->alloc_n)
        sam_logf(SAM_LOG_WARN, "cuda: %zu device buffers (%zu bytes) still allocated at free; freeing them",
                 cb->alloc_n, cb->bytes_in_use);
    for (size_t i = 0; i < cb->alloc_n; i++) cudaFree(cb->allocs[i].p);
    if (cb->stream) cudaStreamDestroy(cb->stream);
    sam_free(cb->allocs);
    pthread_mutex_destroy(&cb->amu);
    pthread_mutex_destroy(&cb->mu);
    sam_free(cb);
}

/* ---- SAM2_DEVICE ------------------------------------------------------------ */

static sam_backend *create_registered(int index, sam_precision precision) {
    char why[256];
    if (!sam_cuda_available(why, sizeof why)) {
        SAM_ERR(SAM2D_ERR_UNSUPPORTED, "no usable GPU: %s", why);
        return NULL;
    }
    return sam_backend_cuda_create(index, precision);
}

extern "C" void sam_cuda_register(void) { sam_backend_register_gpu("cuda", create_registered); }

extern "C" sam_backend *sam_backend_create_for_device(const char *device, int nthreads, sam_precision precision) {
    const char *d = device && *device ? device : "auto";
    int dev = 0;
    const bool want_cuda = strcasecmp(d, "cuda") == 0 || (strncasecmp(d, "cuda:", 5) == 0 && sscanf(d + 5, "%d", &dev) == 1);
    if (strcasecmp(d, "cpu") != 0 && strcasecmp(d, "auto") != 0 && !want_cuda) {
        SAM_ERR(SAM2D_ERR_INVALID_ARG, "SAM2_DEVICE: '%s' is not auto, cpu, cuda or cuda:N", d);
        return NULL;
    }
    if (strcasecmp(d, "cpu") != 0) {
        char why[256];
        if (sam_cuda_available(why, sizeof why)) {
            sam_backend *be = sam_backend_cuda_create(dev, precision);
            if (be) {
                sam_logf(SAM_LOG_INFO, "device: cuda:%d, %s (SAM2_DEVICE=%s)", dev, sam_cuda_device_name(be), d);
                return be;
            }
            if (want_cuda) return NULL; /* reason already in sam2d_last_error */
            sam_logf(SAM_LOG_WARN, "device: the GPU did not start (%s); using the CPU", sam2d_last_error());
        } else if (want_cuda) {
            SAM_ERR(SAM2D_ERR_UNSUPPORTED, "SAM2_DEVICE=%s but %s", d, why);
            return NULL;
        } else {
            sam_logf(SAM_LOG_INFO, "device: cpu (SAM2_DEVICE=auto, no usable GPU: %s)", why);
        }
    } else {
        sam_logf(SAM_LOG_INFO, "device: cpu (SAM2_DEVICE=cpu)");
    }
    sam_backend *be = sam_backend_cpu_create_ex(nthreads, precision);
    if (!be) SAM_ERR(SAM2D_ERR_NOMEM, "cpu back end");
    return be;
}

extern "C" void sam_backend_free_any(sam_backend *be) {
    if (!be) return;
    if (sam_backend_is_cuda(be))
        sam_backend_cuda_free(be);
    else
        sam_backend_cpu_free(be);
}
