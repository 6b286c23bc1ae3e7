/* The CPU emulation of CUDA / cuBLAS declared in cuda_emu.h. */
#include "cuda_emu.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <map>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

static cudaError_t last_err = cudaSuccess;
static pthread_mutex_t launch_mu = PTHREAD_MUTEX_INITIALIZER;
static std::map<const void *, int> smem_attr;
static std::map<const char *, size_t> managed; /* live managed allocations */
static std::map<const char *, size_t> pinned;  /* live cudaMallocHost allocations */

cudaError_t emu_set_error(cudaError_t e) {
    if (e != cudaSuccess) last_err = e;
    return e;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_err;
    last_err = cudaSuccess;
    return e;
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    }
    return "unknown error";
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    }
    return "cudaErrorUnknown";
}

cudaError_t cudaGetDeviceCount(int *n) {
    *n = getenv("SAM_EMU_NODEV") ? 0 : 1;
    return *n ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : emu_set_error(cudaErrorInvalidValue); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation of an sm_90 device");
    p->major = 9;
    p->totalGlobalMem = (size_t)80 << 30;
    return d == 0 ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d) {
    switch (a) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = 227 * 1024; break;
    case cudaDevAttrManagedMemory: *v = 1; break;
    case cudaDevAttrConcurrentManagedAccess: *v = getenv("SAM_EMU_NO_CONCURRENT_MANAGED") ? 0 : 1; break;
    default: *v = 0; break;
    }
    return d == 0 ? cudaSuccess : emu_set_error(cudaErrorInvalidValue);
}

/* Device memory starts as NaN bytes (0xff): a kernel reading what nobody wrote shows up. */
cudaError_t cudaMalloc(void **p, size_t n) {
#if defined(__SANITIZE_ADDRESS__)
    *p = malloc(n ? n : 1); /* exact size: ASan flags any access past the end */
#else
    *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
#endif
    if (!*p) return emu_set_error(cudaErrorMemoryAllocation);
    memset(*p, 0xff, n);
    return cudaSuccess;
}
static bool erase_from(std::map<const char *, size_t> &m, void *p) {
    pthread_mutex_lock(&launch_mu);
    const bool found = m.erase((const char *)p) > 0;
    pthread_mutex_unlock(&launch_mu);
    return found;
}
cudaError_t cudaFree(void *p) {
    if (erase_from(pinned, p)) { /* as CUDA: cudaFree of pinned host memory is an error */
        fprintf(stderr, "emu: cudaFree of pinned host memory %p (cudaFreeHost frees it)\n", p);
        abort();
    }
    erase_from(managed, p);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) {
    cudaError_t e = cudaMalloc(p, n);
    if (e == cudaSuccess) {
        pthread_mutex_lock(&launch_mu);
        pinned[(const char *)*p] = n;
        pthread_mutex_unlock(&launch_mu);
    }
    return e;
}
cudaError_t cudaFreeHost(void *p) {
    if (p && !erase_from(pinned, p)) {
        fprintf(stderr, "emu: cudaFreeHost of %p, not from cudaMallocHost\n", p);
        abort();
    }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocManaged(void **p, size_t n, unsigned flags) {
    if (n == 0 || flags != cudaMemAttachGlobal) return emu_set_error(cudaErrorInvalidValue);
    cudaError_t e = cudaMalloc(p, n); /* NaN bytes too: the host must write what kernels read */
    if (e == cudaSuccess) {
        pthread_mutex_lock(&launch_mu);
        managed[(const char *)*p] = n;
        pthread_mutex_unlock(&launch_mu);
    }
    return e;
}
/* [p, p + n) inside one live managed allocation */
static bool in_managed(const void *p, size_t n) {
    pthread_mutex_lock(&launch_mu);
    bool ok = false;
    auto it = managed.upper_bound((const char *)p);
    if (it != managed.begin()) {
        --it;
        const char *b = it->first, *c = (const char *)p;
        ok = c >= b && n <= it->second && (size_t)(c - b) <= it->second - n;
    }
    pthread_mutex_unlock(&launch_mu);
    return ok;
}
cudaError_t cudaMemAdvise(const void *p, size_t n, cudaMemoryAdvise advice, cudaMemLocation loc) {
    if (advice != cudaMemAdviseSetReadMostly || !in_managed(p, n)) {
        fprintf(stderr, "emu: cudaMemAdvise(%p, %zu, %d): not a managed range\n", p, n, (int)advice);
        return emu_set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaMemPrefetchAsync(const void *p, size_t n, cudaMemLocation loc, unsigned flags, cudaStream_t st) {
    if (!in_managed(p, n) || flags != 0 || !(loc.type == cudaMemLocationTypeHost || (loc.type == cudaMemLocationTypeDevice && loc.id == 0))) {
        fprintf(stderr, "emu: cudaMemPrefetchAsync(%p, %zu, type %d id %d): bad range or location\n", p, n,
                (int)loc.type, loc.id);
        return emu_set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) {
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st) {
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind k,
                              cudaStream_t st) {
    if (w > dp || w > sp) return emu_set_error(cudaErrorInvalidValue);
    for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = (cudaStream_t)0x1;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { return cudaSuccess; }
cudaError_t emu_func_set_attr(const void *f, int attr, int v) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > 227 * 1024)
        return emu_set_error(cudaErrorInvalidValue);
    pthread_mutex_lock(&launch_mu);
    smem_attr[f] = v;
    pthread_mutex_unlock(&launch_mu);
    return cudaSuccess;
}

/* ---- launches ---- */

static pthread_barrier_t block_bar;
static pthread_barrier_t warp_bar[32];
static unsigned char warp_buf[32][32][16];
static char *smem_buf;

typedef struct {
    unsigned t;
    const std::function<void()> *fn;
} thr_arg;

static void *thread_main(void *va) {
    thr_arg *a = (thr_arg *)va;
    threadIdx = dim3{a->t, 0, 0};
    for (unsigned b = 0; b < gridDim.x; b++) {
        blockIdx = dim3{b, 0, 0};
        (*a->fn)();
        pthread_barrier_wait(&block_bar); /* the whole block is done before the next reuses shared memory */
    }
    return NULL;
}

/* Fibers: the threads of a block as coroutines on the launching thread (a
 * hand-written switch on x86-64, else swapcontext), a barrier being a switch
 * back to the scheduler. Same semantics as the thread version, minus the cost
 * of creating and waking 256 threads per launch (the emulation's run time was
 * mostly that). A block
 * barrier lets threads go once every live thread of the block waits at one, a
 * warp barrier once every live lane of the warp waits at one; threads waiting
 * at different kinds of barrier with nothing else to run is a divergence bug:
 * reported, then abort. ASan builds (and SAM_EMU_PTHREADS=1) use the threads. */
enum { F_READY, F_AT_WARP, F_AT_BLOCK, F_DONE };
#define FIBER_STACK (256 * 1024)
static int fib_state[1024];
static char *fib_stacks; /* 1024 stacks, reserved once, pages on first use */
static unsigned fib_cur;
static const std::function<void()> *fib_fn;
static bool fibers_on;

static bool use_fibers(void) {
#if defined(__SANITIZE_ADDRESS__)
    return false; /* ASan does not follow the fibers' stacks */
#else
    return !getenv("SAM_EMU_PTHREADS");
#endif
}

#if defined(__x86_64__)
/* A switch is a call: it saves the callee-saved registers, the SSE/x87
 * control words and the stack pointer in *from, and resumes `to` (no system
 * call, unlike swapcontext, which also saves the signal mask). */
extern "C" void emu_ctx_switch(void **from, void *to);
asm(".text\n"
    ".globl emu_ctx_switch\n"
    ".type emu_ctx_switch,@function\n"
    "emu_ctx_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_ctx_switch,.-emu_ctx_switch\n");
static void *sched_sp, *fib_sp[1024];

static void fiber_main(void) {
    (*fib_fn)();
    fib_state[fib_cur] = F_DONE;
    emu_ctx_switch(&fib_sp[fib_cur], sched_sp); /* never comes back */
    abort();
}

/* A fresh stack whose first switch "returns" into fiber_main (entered as if called). */
static void fiber_make(unsigned t) {
    uint64_t *top = (uint64_t *)(fib_stacks + (size_t)(t + 1) * FIBER_STACK); /* 16-byte aligned */
    top[-1] = 0;                     /* fiber_main's return address: it never returns */
    top[-2] = (uint64_t)(uintptr_t)fiber_main;
    for (int i = 3; i <= 8; i++) top[-i] = 0; /* rbp rbx r12 r13 r14 r15 */
    uint32_t cw[2];
    asm volatile("stmxcsr %0\n fnstcw %1" : "=m"(cw[0]), "=m"(cw[1]));
    memcpy(&top[-9], cw, 8);
    fib_sp[t] = &top[-9];
}
static void fiber_enter(unsigned t) { emu_ctx_switch(&sched_sp, fib_sp[t]); }
static void fiber_wait(int state) {
    fib_state[fib_cur] = state;
    emu_ctx_switch(&fib_sp[fib_cur], sched_sp);
}
#else
static ucontext_t sched_ctx, fib_ctx[1024];

static void fiber_main(void) {
    (*fib_fn)();
    fib_state[fib_cur] = F_DONE;
    swapcontext(&fib_ctx[fib_cur], &sched_ctx);
}
static void fiber_make(unsigned t) {
    getcontext(&fib_ctx[t]);
    fib_ctx[t].uc_stack.ss_sp = fib_stacks + (size_t)t * FIBER_STACK;
    fib_ctx[t].uc_stack.ss_size = FIBER_STACK;
    fib_ctx[t].uc_link = NULL;
    makecontext(&fib_ctx[t], fiber_main, 0);
}
static void fiber_enter(unsigned t) { swapcontext(&sched_ctx, &fib_ctx[t]); }
static void fiber_wait(int state) {
    fib_state[fib_cur] = state;
    swapcontext(&fib_ctx[fib_cur], &sched_ctx);
}
#endif

static void run_block_fibers(unsigned block) {
    for (unsigned t = 0; t < block; t++) {
        fiber_make(t);
        fib_state[t] = F_READY;
    }
    for (unsigned pass = 0;; pass++) {
        /* Between two barriers the threads run one after another, forwards or backwards by pass and block:
         * a read of another thread's write without a barrier between them sees stale data (device memory
         * and shared memory start as NaN bytes) whichever of the two comes first. */
        const bool backwards = ((pass + blockIdx.x) & 1) != 0;
        for (unsigned i = 0; i < block; i++) {
            const unsigned t = backwards ? block - 1 - i : i;
            if (fib_state[t] == F_READY) {
                fib_cur = t;
                threadIdx = dim3{t, 0, 0};
                fiber_enter(t);
            }
        }
        /* everyone waits or is done: release a warp whose live lanes all wait at a warp barrier, else the block */
        bool released = false, all_done = true, all_block = true;
        for (unsigned w0 = 0; w0 < block; w0 += 32) {
            const unsigned w1 = w0 + 32 < block ? w0 + 32 : block;
            bool live = false, all_warp = true;
            for (unsigned t = w0; t < w1; t++) {
                if (fib_state[t] == F_DONE) continue;
                live = true;
                all_warp &= fib_state[t] == F_AT_WARP;
            }
            if (live && all_warp) {
                for (unsigned t = w0; t < w1; t++)
                    if (fib_state[t] == F_AT_WARP) fib_state[t] = F_READY;
                released = true;
            }
        }
        if (released) continue;
        for (unsigned t = 0; t < block; t++) {
            all_done &= fib_state[t] == F_DONE;
            all_block &= fib_state[t] == F_DONE || fib_state[t] == F_AT_BLOCK;
        }
        if (all_done) return;
        if (!all_block) {
            fprintf(stderr, "emu: divergent barriers in block %u: threads wait at __syncwarp and __syncthreads\n",
                    blockIdx.x);
            abort();
        }
        for (unsigned t = 0; t < block; t++)
            if (fib_state[t] == F_AT_BLOCK) fib_state[t] = F_READY;
    }
}

void emu_launch(const void *kernel, std::function<void()> fn, unsigned grid, unsigned block, size_t smem,
                cudaStream_t st) {
    pthread_mutex_lock(&launch_mu);
    int allowed = 48 * 1024;
    auto it = smem_attr.find(kernel);
    if (it != smem_attr.end() && it->second > allowed) allowed = it->second;
    if (grid == 0 || block == 0 || block > 1024 || smem > (size_t)allowed) {
        fprintf(stderr, "emu: bad launch: grid %u block %u smem %zu (allowed %d)\n", grid, block, smem, allowed);
        emu_set_error(cudaErrorInvalidConfiguration);
        pthread_mutex_unlock(&launch_mu);
        return;
    }
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    smem_buf = (char *)malloc(smem ? smem : 1);
    memset(smem_buf, 0xff, smem); /* garbage, as real shared memory */
    if (!fib_stacks && use_fibers()) {
        void *m = mmap(NULL, (size_t)1024 * FIBER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m != MAP_FAILED) fib_stacks = (char *)m;
    }
    fibers_on = fib_stacks != NULL;
    if (block == 1) {
        threadIdx = dim3{0, 0, 0};
        for (unsigned b = 0; b < grid; b++) {
            blockIdx = dim3{b, 0, 0};
            fn();
        }
    } else if (fibers_on) {
        fib_fn = &fn;
        for (unsigned b = 0; b < grid; b++) {
            blockIdx = dim3{b, 0, 0};
            if (b) memset(smem_buf, 0xff, smem); /* a block does not see the previous one's shared memory */
            run_block_fibers(block);
        }
        fib_fn = NULL;
    } else {
        pthread_barrier_init(&block_bar, NULL, block);
        const unsigned nw = (block + 31) / 32;
        for (unsigned w = 0; w < nw; w++)
            pthread_barrier_init(&warp_bar[w], NULL, block - 32 * w < 32 ? block - 32 * w : 32);
        pthread_t *th = (pthread_t *)malloc(block * sizeof *th);
        thr_arg *args = (thr_arg *)malloc(block * sizeof *args);
        for (unsigned t = 0; t < block; t++) {
            args[t] = thr_arg{t, &fn};
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setstacksize(&at, 256 * 1024);
            if (pthread_create(&th[t], &at, thread_main, &args[t]) != 0) {
                fprintf(stderr, "emu: pthread_create failed\n");
                abort();
            }
            pthread_attr_destroy(&at);
        }
        for (unsigned t = 0; t < block; t++) pthread_join(th[t], NULL);
        free(th);
        free(args);
        pthread_barrier_destroy(&block_bar);
        for (unsigned w = 0; w < nw; w++) pthread_barrier_destroy(&warp_bar[w]);
    }
    free(smem_buf);
    smem_buf = NULL;
    pthread_mutex_unlock(&launch_mu);
}

void *emu_smem(void) { return smem_buf; }

void __syncthreads(void) {
    if (blockDim.x <= 1) return;
    if (fibers_on)
        fiber_wait(F_AT_BLOCK);
    else
        pthread_barrier_wait(&block_bar);
}
void __syncwarp(unsigned mask) {
    if (blockDim.x <= 1) return;
    if (fibers_on)
        fiber_wait(F_AT_WARP);
    else
        pthread_barrier_wait(&warp_bar[threadIdx.x / 32]);
}
void emu_warp_exchange(const void *in, void *out, size_t bytes, int src_lane) {
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32;
    memcpy(warp_buf[w][lane], in, bytes);
    __syncwarp();
    memcpy(out, warp_buf[w][src_lane], bytes);
    __syncwarp();
}

/* ---- cuBLAS on OpenBLAS, column-major as cuBLAS defines it ---- */

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)0x2;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t m) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) { return CUBLAS_STATUS_SUCCESS; }

static bool bad_dims(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb, int ldc) {
    const int ar = ta == CUBLAS_OP_N ? m : k, br = tb == CUBLAS_OP_N ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "emu: cuBLAS invalid value: op %d %d m %d n %d k %d lda %d ldb %d ldc %d\n", ta, tb, m, n, k,
                lda, ldb, ldc);
        return true;
    }
    return false;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    if (bad_dims(ta, tb, m, n, k, lda, ldb, ldc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

static float *bf16_to_f32(const void *src, int rows, int cols, int ld) {
    /* column-major (rows, cols) at leading dimension ld */
    float *d = (float *)malloc(((size_t)ld * cols + 1) * sizeof(float));
    const uint16_t *s = (const uint16_t *)src;
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) {
            uint32_t u = (uint32_t)s[(size_t)c * ld + r] << 16;
            memcpy(&d[(size_t)c * ld + r], &u, 4);
        }
    return d;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t algo) {
    if (at != CUDA_R_16BF || bt != CUDA_R_16BF || ct != CUDA_R_32F || comp != CUBLAS_COMPUTE_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (bad_dims(ta, tb, m, n, k, lda, ldb, ldc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    float *a = bf16_to_f32(A, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda);
    float *b = bf16_to_f32(B, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb);
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                m, n, k, *(const float *)alpha, a, lda, b, ldb, *(const float *)beta, (float *)C, ldc);
    free(a);
    free(b);
    return CUBLAS_STATUS_SUCCESS;
}
