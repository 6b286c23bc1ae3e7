/* The CUDA back end: create/free, device and const memory and their
 * accounting, copies, error recording, the table's memory entries and the
 * function table. */
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

/* Remember p (false, nothing recorded, when the list cannot grow). */
static bool account_add(sam_cuda_backend *cb, void *p, size_t bytes, int kind) {
    pthread_mutex_lock(&cb->amu);
    if (cb->alloc_n == cb->alloc_cap) {
        size_t ncap = cb->alloc_cap ? 2 * cb->alloc_cap : 256;
        sam_cuda_alloc_entry *na = (sam_cuda_alloc_entry *)sam_realloc(cb->allocs, ncap * sizeof *na);
        if (na) {
            cb->allocs = na;
            cb->alloc_cap = ncap;
        }
    }
    const bool ok = cb->alloc_n < cb->alloc_cap;
    if (ok) {
        cb->allocs[cb->alloc_n++] = sam_cuda_alloc_entry{p, bytes, kind};
        cb->bytes_in_use += bytes;
        if (cb->bytes_in_use > cb->bytes_peak) cb->bytes_peak = cb->bytes_in_use;
    }
    pthread_mutex_unlock(&cb->amu);
    return ok;
}

/* Forget p; its kind, or -1 when it was not ours. Searched from the newest:
 * buffers tend to be freed in reverse order. */
static int account_remove(sam_cuda_backend *cb, void *p) {
    int kind = -1;
    pthread_mutex_lock(&cb->amu);
    for (size_t i = cb->alloc_n; i-- > 0;)
        if (cb->allocs[i].p == p) {
            cb->bytes_in_use -= cb->allocs[i].bytes;
            kind = cb->allocs[i].kind;
            cb->allocs[i] = cb->allocs[--cb->alloc_n];
            break;
        }
    pthread_mutex_unlock(&cb->amu);
    return kind;
}

/* The kind of the accounted allocation holding [p, p + bytes), or -1. */
static int account_kind(sam_cuda_backend *cb, const void *p, size_t bytes) {
    int kind = -1;
    const char *c = (const char *)p;
    pthread_mutex_lock(&cb->amu);
    for (size_t i = cb->alloc_n; i-- > 0;) {
        const char *b = (const char *)cb->allocs[i].p;
        if (c >= b && c < b + cb->allocs[i].bytes) {
            if (bytes <= cb->allocs[i].bytes - (size_t)(c - b)) kind = cb->allocs[i].kind;
            break;
        }
    }
    pthread_mutex_unlock(&cb->amu);
    return kind;
}

static void release(int kind, void *p) {
    if (kind == SAM_CUDA_MEM_PINNED)
        cudaFreeHost(p);
    else
        cudaFree(p); /* device and managed memory */
}

/* Allocate `bytes` of the given kind and account it; NULL (error recorded) on failure. */
static void *alloc_kind(sam_cuda_backend *cb, size_t bytes, int kind) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    cudaSetDevice(cb->device);
    bool ok;
    if (kind == SAM_CUDA_MEM_MANAGED)
        ok = CUDA_CHECK(cb, cudaMallocManaged(&p, bytes, cudaMemAttachGlobal));
    else if (kind == SAM_CUDA_MEM_PINNED)
        ok = CUDA_CHECK(cb, cudaMallocHost(&p, bytes));
    else
        ok = CUDA_CHECK(cb, cudaMalloc(&p, bytes));
    if (!ok) {
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return NULL;
    }
    if (!account_add(cb, p, bytes, kind)) {
        release(kind, p);
        CUDA_FAIL(cb, SAM2D_ERR_NOMEM, "no host memory to account a device allocation");
        return NULL;
    }
    return p;
}

/* Free p, which must be const memory (want_const) or device memory. */
static void free_kind(sam_cuda_backend *cb, void *p, bool want_const, const char *what) {
    if (!p) return;
    /* queued kernels may still use p: cudaFree is not ordered with our stream */
    if (cb->stream) CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    const int k = account_remove(cb, p);
    if (k < 0) {
        CUDA_FAIL(cb, SAM2D_ERR_INVALID_ARG, "%s of %p, which this back end did not allocate", what, p);
        return;
    }
    if ((k != SAM_CUDA_MEM_DEVICE) != want_const) /* freed all the same, the right way; the caller mixed them up */
        CUDA_FAIL(cb, SAM2D_ERR_INVALID_ARG, "%s of %p, which is %s", what, p,
                  k == SAM_CUDA_MEM_DEVICE ? "a buffer, not const memory" : "const memory, not a buffer");
    if (k == SAM_CUDA_MEM_PINNED)
        CUDA_CHECK(cb, cudaFreeHost(p));
    else
        CUDA_CHECK(cb, cudaFree(p));
}

void *sam_cuda_alloc_internal(sam_cuda_backend *cb, size_t bytes) { return alloc_kind(cb, bytes, SAM_CUDA_MEM_DEVICE); }

void sam_cuda_free_internal(sam_cuda_backend *cb, void *p) { free_kind(cb, p, false, "free"); }

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
/* cudaMemcpyDefault throughout (unified addressing, always on 64-bit Linux):
 * the direction follows from the pointers, so a source in const memory
 * (managed or pinned) is copied as well as one in a buffer. */

extern "C" sam2d_status sam_cuda_upload(sam_backend *be, void *dst_dev, const void *src_host, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda upload: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyDefault, cb->stream)) &&
              CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_upload_async(sam_backend *be, void *dst_dev, const void *src_host, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda upload: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyDefault, cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_download(sam_backend *be, void *dst_host, const void *src_dev, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda download: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDefault, cb->stream)) &&
              CUDA_CHECK(cb, cudaStreamSynchronize(cb->stream));
    sam_cuda_unlock(cb);
    return ok ? SAM2D_OK : SAM2D_ERR_INTERNAL;
}

extern "C" sam2d_status sam_cuda_copy(sam_backend *be, void *dst_dev, const void *src_dev, size_t bytes) {
    if (!be) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "cuda copy: no back end");
    if (bytes == 0) return SAM2D_OK;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    bool ok = CUDA_CHECK(cb, cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDefault, cb->stream));
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

/* ---- the table's memory entries (ops.h, issue 8) ---------------------------------------- */

static void *cu_buf_alloc(sam_backend *be, size_t bytes) { return sam_cuda_malloc(be, bytes); }
static void cu_buf_free(sam_backend *be, void *p) { sam_cuda_free(be, p); }

/* Const memory is managed memory: the host writes it in place while a module
 * loads, then publish marks it read-mostly and prefetches it to the device,
 * where kernels read it at device speed. The host may still read it at any
 * time, even while kernels run: a device with concurrentManagedAccess (every
 * GPU since Pascal on Linux, H100/H200 included) lets the CPU and the GPU use
 * managed memory at once, and read-mostly pages are duplicated to the reader
 * instead of migrated (so a host read does not pull weights off the GPU).
 * Without concurrentManagedAccess (Windows, some virtualised GPUs) a host
 * touch of managed memory while any kernel runs is a fault, so there const
 * memory is pinned host memory instead, which kernels read over the bus: slow
 * but correct (the choice is logged at create). */
/* A model has hundreds of small weight tensors: each its own managed (or
 * pinned) allocation would pay the driver's per-allocation granularity and
 * cost, so allocations below CONST_OWN_MIN share chunks of CONST_CHUNK bytes
 * (bump-allocated, 256-byte aligned; a chunk is freed when its last
 * allocation is). Larger ones, and tables a module remakes at run time, get
 * their own allocation so freeing them returns the memory. */
#define CONST_CHUNK ((size_t)16 << 20)
#define CONST_OWN_MIN ((size_t)1 << 20)

static void *cu_const_alloc(sam_backend *be, size_t bytes) {
    sam_cuda_backend *cb = sam_cuda_cb(be);
    const int kind = cb->managed_const ? SAM_CUDA_MEM_MANAGED : SAM_CUDA_MEM_PINNED;
    if (bytes == 0) return NULL;
    if (bytes >= CONST_OWN_MIN) return alloc_kind(cb, bytes, kind);
    const size_t need = (bytes + 255) & ~(size_t)255;
    void *p = NULL;
    pthread_mutex_lock(&cb->cmu);
    sam_cuda_const_chunk *c = cb->cchunk_n ? &cb->cchunks[cb->cchunk_n - 1] : NULL;
    if (!c || c->size - c->used < need) {
        if (cb->cchunk_n == cb->cchunk_cap) {
            size_t nc = cb->cchunk_cap ? cb->cchunk_cap * 2 : 16;
            sam_cuda_const_chunk *n = (sam_cuda_const_chunk *)sam_realloc(cb->cchunks, nc * sizeof *n);
            if (!n) goto out;
            cb->cchunks = n;
            cb->cchunk_cap = nc;
        }
        char *base = (char *)alloc_kind(cb, CONST_CHUNK, kind);
        if (!base) goto out;
        c = &cb->cchunks[cb->cchunk_n++];
        c->base = base;
        c->size = CONST_CHUNK;
        c->used = 0;
        c->live = 0;
    }
    p = c->base + c->used;
    c->used += need;
    c->live++;
out:
    pthread_mutex_unlock(&cb->cmu);
    return p;
}

static void cu_const_free(sam_backend *be, void *p) {
    if (!p) return;
    sam_cuda_backend *cb = sam_cuda_cb(be);
    char *chunk_to_free = NULL;
    bool pooled = false;
    pthread_mutex_lock(&cb->cmu);
    for (size_t i = 0; i < cb->cchunk_n; i++) {
        sam_cuda_const_chunk *c = &cb->cchunks[i];
        if ((char *)p < c->base || (char *)p >= c->base + c->used) continue;
        pooled = true;
        if (--c->live == 0) {
            chunk_to_free = c->base;
            memmove(c, c + 1, (cb->cchunk_n - i - 1) * sizeof *c);
            cb->cchunk_n--;
        }
        break;
    }
    pthread_mutex_unlock(&cb->cmu);
    if (!pooled)
        free_kind(cb, p, true, "const_free");
    else if (chunk_to_free)
        free_kind(cb, chunk_to_free, true, "const_free");
}

static void cu_const_publish(sam_backend *be, const void *p, size_t bytes) {
    if (!p || bytes == 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    const int kind = account_kind(cb, p, bytes);
    if (kind != SAM_CUDA_MEM_MANAGED && kind != SAM_CUDA_MEM_PINNED) {
        CUDA_FAIL(cb, SAM2D_ERR_INVALID_ARG, "const_publish: [%p, +%zu) is not const memory of this back end", p,
                  bytes);
    } else if (kind == SAM_CUDA_MEM_MANAGED) {
        /* read-mostly first, so the prefetch makes a device copy and the host keeps its pages readable */
#if CUDART_VERSION >= 13000
        cudaMemLocation loc;
        loc.type = cudaMemLocationTypeDevice;
        loc.id = cb->device;
        CUDA_CHECK(cb, cudaMemAdvise(p, bytes, cudaMemAdviseSetReadMostly, loc));
        CUDA_CHECK(cb, cudaMemPrefetchAsync(p, bytes, loc, 0, cb->stream));
#else
        CUDA_CHECK(cb, cudaMemAdvise(p, bytes, cudaMemAdviseSetReadMostly, cb->device));
        CUDA_CHECK(cb, cudaMemPrefetchAsync(p, bytes, cb->device, cb->stream));
#endif
    }
    sam_cuda_unlock(cb);
}

static void cu_to_dev(sam_backend *be, void *dst, const void *src_host, size_t bytes) {
    sam_cuda_upload(be, dst, src_host, bytes); /* errors are recorded for sync */
}
static void cu_to_host(sam_backend *be, void *dst_host, const void *src, size_t bytes) {
    sam_cuda_download(be, dst_host, src, bytes);
}
static void cu_copy(sam_backend *be, void *dst, const void *src, size_t bytes) {
    if (dst != src) sam_cuda_copy(be, dst, src, bytes);
}
static void cu_zero(sam_backend *be, void *dst, size_t bytes) { sam_cuda_memset0(be, dst, bytes); }

static void cu_copy2d(sam_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                      size_t row_bytes, size_t rows) {
    if (rows == 0 || row_bytes == 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    if (rows == 1 || dst_pitch < row_bytes || src_pitch < row_bytes) {
        /* one row, or rows that overlap their neighbours (cudaMemcpy2D refuses pitch < width): row by row, in order */
        for (size_t r = 0; r < rows; r++)
            if (!CUDA_CHECK(cb, cudaMemcpyAsync((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch,
                                                row_bytes, cudaMemcpyDefault, cb->stream)))
                break;
    } else {
        CUDA_CHECK(cb, cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, cudaMemcpyDefault, cb->stream));
    }
    sam_cuda_unlock(cb);
}

static int cu_sync(sam_backend *be) { return (int)sam_cuda_sync(be); }

static void cu_device_memory(sam_backend *be, size_t *used, size_t *total) {
    *used = sam_cuda_bytes_in_use(be);
    *total = sam_cuda_cb(be)->total_mem;
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
    pthread_mutex_init(&cb->cmu, NULL);

    cudaDeviceProp prop;
    bool ok = CUDA_CHECK(cb, cudaSetDevice(device)) && CUDA_CHECK(cb, cudaGetDeviceProperties(&prop, device));
    if (ok) {
        snprintf(cb->devname, sizeof cb->devname, "%.120s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1 << 30));
        int optin = 0;
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
        cb->max_smem_optin = optin > 0 ? optin : 48 * 1024;
        cb->total_mem = prop.totalGlobalMem;
        int managed = 0, concurrent = 0;
        cudaDeviceGetAttribute(&managed, cudaDevAttrManagedMemory, device);
        cudaDeviceGetAttribute(&concurrent, cudaDevAttrConcurrentManagedAccess, device);
        cb->managed_const = managed && concurrent;
        if (!cb->managed_const)
            sam_logf(SAM_LOG_WARN, "cuda: %s cannot share managed memory with the CPU while kernels run; weights "
                                   "stay in pinned host memory (slow)", prop.name);
    }
    ok = ok && CUDA_CHECK(cb, cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking));
    ok = ok && CUBLAS_CHECK(cb, cublasCreate(&cb->blas));
    ok = ok && CUBLAS_CHECK(cb, cublasSetStream(cb->blas, cb->stream));
    /* fp32: IEEE products (no TF32); bf16 mode allows TF32 tensor cores in the fp32 GEMMs */
    ok = ok && CUBLAS_CHECK(cb, cublasSetMathMode(cb->blas, be->precision == SAM_PRECISION_BF16
                                                                 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                 : CUBLAS_DEFAULT_MATH));
    ok = ok && CUBLAS_CHECK(cb, cublasSetPointerMode(cb->blas, CUBLAS_POINTER_MODE_HOST));
    /* the workspace after cublasSetStream, which resets it to the default pool */
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
    be->buf_alloc = cu_buf_alloc;
    be->buf_free = cu_buf_free;
    be->const_alloc = cu_const_alloc;
    be->const_publish = cu_const_publish;
    be->const_free = cu_const_free;
    be->to_dev = cu_to_dev;
    be->to_host = cu_to_host;
    be->copy = cu_copy;
    be->copy2d = cu_copy2d;
    be->zero = cu_zero;
    be->sync = cu_sync;
    be->fill = sam_cuda_fill;
    be->affine = sam_cuda_affine;
    be->binarize = sam_cuda_binarize;
    be->rope = sam_cuda_rope;
    be->to_bf16 = sam_cuda_to_bf16;
    be->from_bf16 = sam_cuda_from_bf16;
    be->device_memory = cu_device_memory;
    be->destroy = sam_backend_cuda_free;
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
    for (size_t i = 0; i < cb->alloc_n; i++) release(cb->allocs[i].kind, cb->allocs[i].p);
    if (cb->stream) cudaStreamDestroy(cb->stream);
    sam_free(cb->allocs);
    sam_free(cb->cchunks);
    pthread_mutex_destroy(&cb->cmu);
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
