/* devsim (ops/devsim.h): the CPU back end with its buffers behind a guard. */
#include "ops/devsim.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define DS_ALIGN 256

typedef struct {
    size_t off, size;
    bool used;
} ds_block;

typedef struct {
    const void *p;
    size_t size;
} ds_range;

typedef struct {
    sam_backend base; /* first: a sam_backend * is a ds_backend * */
    sam_backend *cpu;
    pthread_mutex_t mu;
    unsigned char *heap; /* (heap_size,) reserved PROT_NONE */
    size_t heap_size;
    ds_block *blocks; /* sorted by off, covering [0, top) */
    size_t nblocks, cap_blocks;
    size_t top;       /* end of the last block */
    size_t open_len;  /* bytes made accessible by the current open (0 = closed) */
    size_t in_use, peak;
    sam_devsim_counts counts;
    ds_range *consts; /* sorted by p */
    size_t nconsts, cap_consts;
} ds_backend;

/* The region of the last devsim made, for the fault handler's message. */
static unsigned char *volatile g_heap;
static volatile size_t g_heap_size;

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    const unsigned char *a = si->si_addr;
    if (g_heap && a >= g_heap && a < g_heap + g_heap_size) {
        char msg[200];
        int n = snprintf(msg, sizeof msg,
                         "devsim: host code touched a device buffer at heap offset %zu "
                         "(read or write outside the back-end table)\n",
                         (size_t)(a - g_heap));
        if (n > 0) (void)!write(2, msg, (size_t)n);
    }
    signal(sig, SIG_DFL); /* the faulting access repeats and ends the process */
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static void handler_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
}

static __attribute__((noreturn)) void violation(const char *entry, const char *what, const void *p) {
    sam_logf(SAM_LOG_ERROR, "devsim: %s: %s %p is not a device buffer%s", entry, what, p,
             what[0] == 'i' ? " or const memory" : "");
    abort();
}

static bool in_heap(const ds_backend *d, const void *p) {
    const unsigned char *c = p;
    return c >= d->heap && c < d->heap + d->top;
}

static bool in_const(const ds_backend *d, const void *p) {
    size_t lo = 0, hi = d->nconsts;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((const unsigned char *)d->consts[mid].p <= (const unsigned char *)p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return false;
    const ds_range *r = &d->consts[lo - 1];
    return (const unsigned char *)p < (const unsigned char *)r->p + (r->size ? r->size : 1);
}

static void check_out(ds_backend *d, const char *entry, const void *p) {
    if (!in_heap(d, p)) violation(entry, "output", p);
}
static void check_in(ds_backend *d, const char *entry, const void *p) {
    if (p && !in_heap(d, p) && !in_const(d, p)) violation(entry, "input", p);
}

static void open_heap(ds_backend *d) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (d->top + pg - 1) / pg * pg;
    if (len && mprotect(d->heap, len, PROT_READ | PROT_WRITE) != 0) {
        perror("devsim: mprotect");
        abort();
    }
    d->open_len = len;
}
static void close_heap(ds_backend *d) {
    if (d->open_len) mprotect(d->heap, d->open_len, PROT_NONE);
    d->open_len = 0;
}

#define DS(be) ds_backend *d = (ds_backend *)(be)
/* counter: which of counts this call adds to (kernels, to_host, to_dev, copies) */
#define ENTER_AS(d, counter) pthread_mutex_lock(&(d)->mu), open_heap(d), (d)->counts.counter++
#define ENTER(d) ENTER_AS(d, kernels)
#define LEAVE(d) close_heap(d), pthread_mutex_unlock(&(d)->mu)

/* ---- memory ---- */

static bool grow_blocks(ds_backend *d) {
    if (d->nblocks < d->cap_blocks) return true;
    size_t nc = d->cap_blocks ? d->cap_blocks * 2 : 256;
    ds_block *nb = sam_realloc(d->blocks, nc * sizeof *nb);
    if (!nb) return false;
    d->blocks = nb;
    d->cap_blocks = nc;
    return true;
}

static void *ds_alloc(sam_backend *be, size_t bytes) {
    DS(be);
    if (!bytes) return NULL;
    size_t need = (bytes + DS_ALIGN - 1) / DS_ALIGN * DS_ALIGN;
    void *res = NULL;
    pthread_mutex_lock(&d->mu);
    if (!grow_blocks(d)) goto out;
    for (size_t i = 0; i < d->nblocks; i++) { /* first fit among freed blocks */
        ds_block *b = &d->blocks[i];
        if (b->used || b->size < need) continue;
        if (b->size > need) { /* split: the rest stays free */
            memmove(&d->blocks[i + 2], &d->blocks[i + 1], (d->nblocks - i - 1) * sizeof *b);
            d->blocks[i + 1] = (ds_block){b->off + need, b->size - need, false};
            d->nblocks++;
            b->size = need;
        }
        b->used = true;
        res = d->heap + b->off;
        break;
    }
    if (!res) {
        if (d->top + need > d->heap_size) goto out;
        d->blocks[d->nblocks++] = (ds_block){d->top, need, true};
        res = d->heap + d->top;
        d->top += need;
    }
    d->in_use += need;
    if (d->in_use > d->peak) d->peak = d->in_use;
out:
    pthread_mutex_unlock(&d->mu);
    return res;
}

static void ds_free(sam_backend *be, void *p) {
    DS(be);
    if (!p) return;
    pthread_mutex_lock(&d->mu);
    size_t off = (size_t)((unsigned char *)p - d->heap);
    size_t i = 0;
    while (i < d->nblocks && d->blocks[i].off != off) i++;
    if (i == d->nblocks || !d->blocks[i].used || !in_heap(d, p)) {
        pthread_mutex_unlock(&d->mu);
        violation("buf_free", "pointer", p);
    }
    ds_block *b = &d->blocks[i];
    b->used = false;
    d->in_use -= b->size;
    /* Whole pages inside the block go back to the system (the range stays
     * reserved); a partial page may hold a neighbour's live data. */
    {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        size_t lo = (b->off + pg - 1) / pg * pg, hi = (b->off + b->size) / pg * pg;
        if (hi > lo) madvise(d->heap + lo, hi - lo, MADV_DONTNEED);
    }
    if (i + 1 < d->nblocks && !d->blocks[i + 1].used) { /* merge with the next */
        b->size += d->blocks[i + 1].size;
        memmove(&d->blocks[i + 1], &d->blocks[i + 2], (d->nblocks - i - 2) * sizeof *b);
        d->nblocks--;
    }
    if (i > 0 && !d->blocks[i - 1].used) { /* and the previous */
        d->blocks[i - 1].size += b->size;
        memmove(&d->blocks[i], &d->blocks[i + 1], (d->nblocks - i - 1) * sizeof *b);
        d->nblocks--;
        i--;
    }
    if (i == d->nblocks - 1 && !d->blocks[i].used) { /* a free tail lowers the top */
        d->top = d->blocks[i].off;
        d->nblocks--;
    }
    pthread_mutex_unlock(&d->mu);
}

static void *ds_const_alloc(sam_backend *be, size_t bytes) {
    DS(be);
    if (!bytes) return NULL;
    void *p = sam_malloc(bytes);
    if (!p) return NULL;
    pthread_mutex_lock(&d->mu);
    if (d->nconsts == d->cap_consts) {
        size_t nc = d->cap_consts ? d->cap_consts * 2 : 256;
        ds_range *nr = sam_realloc(d->consts, nc * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&d->mu);
            sam_free(p);
            return NULL;
        }
        d->consts = nr;
        d->cap_consts = nc;
    }
    size_t i = d->nconsts;
    while (i > 0 && (const unsigned char *)d->consts[i - 1].p > (unsigned char *)p) {
        d->consts[i] = d->consts[i - 1];
        i--;
    }
    d->consts[i] = (ds_range){p, bytes};
    d->nconsts++;
    pthread_mutex_unlock(&d->mu);
    return p;
}

static void ds_const_free(sam_backend *be, void *p) {
    DS(be);
    if (!p) return;
    pthread_mutex_lock(&d->mu);
    size_t i = 0;
    while (i < d->nconsts && d->consts[i].p != p) i++;
    if (i == d->nconsts) {
        pthread_mutex_unlock(&d->mu);
        violation("const_free", "pointer", p);
    }
    memmove(&d->consts[i], &d->consts[i + 1], (d->nconsts - i - 1) * sizeof *d->consts);
    d->nconsts--;
    pthread_mutex_unlock(&d->mu);
    sam_free(p);
}

static void ds_const_publish(sam_backend *be, const void *p, size_t bytes) {
    DS(be);
    (void)bytes;
    pthread_mutex_lock(&d->mu);
    bool ok = in_const(d, p);
    pthread_mutex_unlock(&d->mu);
    if (!ok) violation("const_publish", "pointer", p);
}

static void ds_to_dev(sam_backend *be, void *dst, const void *src, size_t bytes) {
    DS(be);
    if (!bytes) return;
    ENTER_AS(d, to_dev);
    check_out(d, "to_dev", dst);
    if (in_heap(d, src)) violation("to_dev", "host source", src);
    memcpy(dst, src, bytes);
    LEAVE(d);
}

static void ds_to_host(sam_backend *be, void *dst, const void *src, size_t bytes) {
    DS(be);
    if (!bytes) return;
    ENTER_AS(d, to_host);
    if (in_heap(d, dst)) violation("to_host", "host destination", dst);
    check_in(d, "to_host", src);
    memcpy(dst, src, bytes);
    LEAVE(d);
}

static void ds_copy(sam_backend *be, void *dst, const void *src, size_t bytes) {
    DS(be);
    if (!bytes) return;
    ENTER_AS(d, copies);
    check_out(d, "copy", dst);
    check_in(d, "copy", src);
    memmove(dst, src, bytes);
    LEAVE(d);
}

static void ds_copy2d(sam_backend *be, void *dst, size_t dp, const void *src, size_t sp, size_t row, size_t rows) {
    DS(be);
    if (!rows || !row) return;
    ENTER_AS(d, copies);
    check_out(d, "copy2d", dst);
    check_in(d, "copy2d", src);
    for (size_t r = 0; r < rows; r++) memmove((unsigned char *)dst + r * dp, (const unsigned char *)src + r * sp, row);
    LEAVE(d);
}

static void ds_zero(sam_backend *be, void *dst, size_t bytes) {
    DS(be);
    if (!bytes) return;
    ENTER_AS(d, copies);
    check_out(d, "zero", dst);
    memset(dst, 0, bytes);
    LEAVE(d);
}

static int ds_sync(sam_backend *be) {
    (void)be;
    return 0;
}

/* ---- kernels: check, open, run the CPU kernel, close ---- */

#define O(p) check_out(d, __func__ + 3, (p))
#define I(p) check_in(d, __func__ + 3, (p))

static void ds_linear(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(w), I(b);
    d->cpu->linear(d->cpu, y, x, w, b, M, N, K);
    LEAVE(d);
}
static bool ds_linear_prepare(sam_backend *be, const float *w, int N, int K) {
    DS(be);
    pthread_mutex_lock(&d->mu);
    if (!in_const(d, w)) violation("linear_prepare", "input", w);
    bool ok = d->cpu->linear_prepare(d->cpu, w, N, K);
    pthread_mutex_unlock(&d->mu);
    return ok;
}
static void ds_linear_forget(sam_backend *be, const float *w) {
    DS(be);
    pthread_mutex_lock(&d->mu);
    d->cpu->linear_forget(d->cpu, w);
    pthread_mutex_unlock(&d->mu);
}
static void ds_gemm(sam_backend *be, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    DS(be);
    ENTER(d);
    O(C), I(A), I(B);
    d->cpu->gemm(d->cpu, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    LEAVE(d);
}
static void ds_conv2d(sam_backend *be, float *y, const float *x, const float *w, const float *b,
                      const sam_conv2d_params *p) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(w), I(b);
    d->cpu->conv2d(d->cpu, y, x, w, b, p);
    LEAVE(d);
}
static void ds_conv_transpose2x2(sam_backend *be, float *y, const float *x, const float *w, const float *b, int N,
                                 int H, int W, int Ci, int Co) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(w), I(b);
    d->cpu->conv_transpose2x2(d->cpu, y, x, w, b, N, H, W, Ci, Co);
    LEAVE(d);
}
static void ds_layer_norm(sam_backend *be, float *y, const float *x, const float *g, const float *bt, int64_t rows,
                          int C, float eps) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(g), I(bt);
    d->cpu->layer_norm(d->cpu, y, x, g, bt, rows, C, eps);
    LEAVE(d);
}
static void ds_layer_norm_cf(sam_backend *be, float *y, const float *x, const float *g, const float *bt, int N, int C,
                             int64_t HW, float eps) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(g), I(bt);
    d->cpu->layer_norm_cf(d->cpu, y, x, g, bt, N, C, HW, eps);
    LEAVE(d);
}
#define DS_UNARY(fn)                                                      \
    static void ds_##fn(sam_backend *be, float *y, const float *x, int64_t n) { \
        DS(be);                                                           \
        ENTER(d);                                                         \
        O(y), I(x);                                                       \
        d->cpu->fn(d->cpu, y, x, n);                                      \
        LEAVE(d);                                                         \
    }
DS_UNARY(gelu)
DS_UNARY(relu)
DS_UNARY(sigmoid)
DS_UNARY(binarize)
#define DS_BINARY(fn)                                                                    \
    static void ds_##fn(sam_backend *be, float *y, const float *a, const float *b, int64_t n) { \
        DS(be);                                                                          \
        ENTER(d);                                                                        \
        O(y), I(a), I(b);                                                                \
        d->cpu->fn(d->cpu, y, a, b, n);                                                  \
        LEAVE(d);                                                                        \
    }
DS_BINARY(add)
DS_BINARY(mul)
#define DS_ROW(fn)                                                                                  \
    static void ds_##fn(sam_backend *be, float *y, const float *x, const float *b, int64_t rows, int C) { \
        DS(be);                                                                                     \
        ENTER(d);                                                                                   \
        O(y), I(x), I(b);                                                                           \
        d->cpu->fn(d->cpu, y, x, b, rows, C);                                                       \
        LEAVE(d);                                                                                   \
    }
DS_ROW(add_row)
DS_ROW(mul_row)
static void ds_axpby(sam_backend *be, float *y, const float *a, float alpha, const float *b, float beta, int64_t n) {
    DS(be);
    ENTER(d);
    O(y), I(a), I(b);
    d->cpu->axpby(d->cpu, y, a, alpha, b, beta, n);
    LEAVE(d);
}
static void ds_softmax(sam_backend *be, float *y, const float *x, int64_t rows, int n) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->softmax(d->cpu, y, x, rows, n);
    LEAVE(d);
}
static void ds_maxpool2x2(sam_backend *be, float *y, const float *x, int N, int H, int W, int C) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->maxpool2x2(d->cpu, y, x, N, H, W, C);
    LEAVE(d);
}
static void ds_resize_bilinear(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo,
                               bool aa) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->resize_bilinear(d->cpu, y, x, C, Hi, Wi, Ho, Wo, aa);
    LEAVE(d);
}
static void ds_upsample_nearest(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int fh, int fw) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->upsample_nearest(d->cpu, y, x, N, H, W, C, fh, fw);
    LEAVE(d);
}
static void ds_permute(sam_backend *be, float *y, const float *x, int ndim, const int64_t *shape, const int *perm) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->permute(d->cpu, y, x, ndim, shape, perm);
    LEAVE(d);
}
static void ds_concat_last(sam_backend *be, float *y, const float *const *xs, const int *Cs, int nparts, int64_t rows) {
    DS(be);
    ENTER(d);
    O(y);
    for (int i = 0; i < nparts; i++) I(xs[i]);
    d->cpu->concat_last(d->cpu, y, xs, Cs, nparts, rows);
    LEAVE(d);
}
static void ds_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                         const sam_attn_params *p) {
    DS(be);
    ENTER(d);
    O(out), I(q), I(k), I(v);
    d->cpu->attention(d->cpu, out, q, k, v, p);
    LEAVE(d);
}
static void ds_linear_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N, int K,
                         sam_act act, const float *res) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(w), I(b), I(res);
    d->cpu->linear_ep(d->cpu, y, x, w, b, M, N, K, act, res);
    LEAVE(d);
}
static void ds_window_partition(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww, int w0,
                                int nwin, bool norm, const float *g, const float *bt, float eps) {
    DS(be);
    ENTER(d);
    O(y), I(x), I(g), I(bt);
    d->cpu->window_partition(d->cpu, y, x, H, W, C, wh, ww, w0, nwin, norm, g, bt, eps);
    LEAVE(d);
}
static void ds_window_unpartition_add(sam_backend *be, float *y, const float *x, int H, int W, int C, int wh, int ww,
                                      int w0, int nwin) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->window_unpartition_add(d->cpu, y, x, H, W, C, wh, ww, w0, nwin);
    LEAVE(d);
}
static void ds_maxpool2x2_ld(sam_backend *be, float *y, const float *x, int N, int H, int W, int C, int64_t ldx) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->maxpool2x2_ld(d->cpu, y, x, N, H, W, C, ldx);
    LEAVE(d);
}
static void ds_fill(sam_backend *be, float *y, float value, int64_t n) {
    DS(be);
    ENTER(d);
    O(y);
    d->cpu->fill(d->cpu, y, value, n);
    LEAVE(d);
}
static void ds_affine(sam_backend *be, float *y, const float *x, float alpha, float beta, int64_t n) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->affine(d->cpu, y, x, alpha, beta, n);
    LEAVE(d);
}
static void ds_rope(sam_backend *be, float *x, int64_t rows, int64_t stride, int heads, int head_dim, const float *c,
                    const float *s, int64_t L) {
    DS(be);
    ENTER(d);
    O(x), I(c), I(s);
    d->cpu->rope(d->cpu, x, rows, stride, heads, head_dim, c, s, L);
    LEAVE(d);
}

static void ds_to_bf16(sam_backend *be, uint16_t *y, const float *x, int64_t n) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->to_bf16(d->cpu, y, x, n);
    LEAVE(d);
}
static void ds_from_bf16(sam_backend *be, float *y, const uint16_t *x, int64_t n) {
    DS(be);
    ENTER(d);
    O(y), I(x);
    d->cpu->from_bf16(d->cpu, y, x, n);
    LEAVE(d);
}

static void ds_device_memory(sam_backend *be, size_t *used, size_t *total) {
    DS(be);
    pthread_mutex_lock(&d->mu);
    size_t c = 0;
    for (size_t i = 0; i < d->nconsts; i++) c += d->consts[i].size;
    *used = d->in_use + c;
    *total = d->heap_size;
    pthread_mutex_unlock(&d->mu);
}

static void ds_destroy(sam_backend *be) { sam_backend_devsim_free(be); }

sam_backend *sam_backend_devsim_create(int nthreads, sam_precision precision) {
    ds_backend *d = sam_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->cpu = sam_backend_cpu_create_ex(nthreads, precision);
    const char *mb = getenv("SAM2_DEVSIM_HEAP_MB");
    long heap_mb = mb && *mb ? atol(mb) : 8192;
    if (heap_mb < 16) heap_mb = 16;
    d->heap_size = (size_t)heap_mb << 20;
    void *h = d->cpu ? mmap(NULL, d->heap_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                     : MAP_FAILED;
    if (h == MAP_FAILED) {
        sam_backend_cpu_free(d->cpu);
        sam_free(d);
        return NULL;
    }
    d->heap = h;
    pthread_mutex_init(&d->mu, NULL);
    g_heap = d->heap;
    g_heap_size = d->heap_size;
    pthread_once(&handler_once, handler_init);

    sam_backend *be = &d->base;
    be->name = "devsim";
    be->pool = d->cpu->pool; /* host-side loops over host data may use it */
    be->precision = d->cpu->precision;
    be->linear = ds_linear;
    be->linear_prepare = ds_linear_prepare;
    be->linear_forget = ds_linear_forget;
    be->gemm = ds_gemm;
    be->conv2d = ds_conv2d;
    be->conv_transpose2x2 = ds_conv_transpose2x2;
    be->layer_norm = ds_layer_norm;
    be->layer_norm_cf = ds_layer_norm_cf;
    be->gelu = ds_gelu;
    be->relu = ds_relu;
    be->sigmoid = ds_sigmoid;
    be->add = ds_add;
    be->mul = ds_mul;
    be->add_row = ds_add_row;
    be->mul_row = ds_mul_row;
    be->axpby = ds_axpby;
    be->softmax = ds_softmax;
    be->maxpool2x2 = ds_maxpool2x2;
    be->resize_bilinear = ds_resize_bilinear;
    be->upsample_nearest = ds_upsample_nearest;
    be->permute = ds_permute;
    be->concat_last = ds_concat_last;
    be->attention = ds_attention;
    be->linear_ep = ds_linear_ep;
    be->window_partition = ds_window_partition;
    be->window_unpartition_add = ds_window_unpartition_add;
    be->maxpool2x2_ld = ds_maxpool2x2_ld;
    be->buf_alloc = ds_alloc;
    be->buf_free = ds_free;
    be->const_alloc = ds_const_alloc;
    be->const_publish = ds_const_publish;
    be->const_free = ds_const_free;
    be->to_dev = ds_to_dev;
    be->to_host = ds_to_host;
    be->copy = ds_copy;
    be->copy2d = ds_copy2d;
    be->zero = ds_zero;
    be->sync = ds_sync;
    be->fill = ds_fill;
    be->affine = ds_affine;
    be->binarize = ds_binarize;
    be->rope = ds_rope;
    be->to_bf16 = ds_to_bf16;
    be->from_bf16 = ds_from_bf16;
    be->device_memory = ds_device_memory;
    be->destroy = ds_destroy;
    return be;
}

bool sam_backend_is_devsim(const sam_backend *be) { return be && be->destroy == ds_destroy; }

void sam_backend_devsim_free(sam_backend *be) {
    if (!be) return;
    DS(be);
    if (d->in_use) sam_logf(SAM_LOG_WARN, "devsim: %zu bytes of buffers still allocated at free", d->in_use);
    if (d->nconsts) sam_logf(SAM_LOG_WARN, "devsim: %zu const buffers still allocated at free", d->nconsts);
    for (size_t i = 0; i < d->nconsts; i++) sam_free((void *)d->consts[i].p);
    if (g_heap == d->heap) g_heap = NULL;
    munmap(d->heap, d->heap_size);
    sam_free(d->blocks);
    sam_free(d->consts);
    pthread_mutex_destroy(&d->mu);
    sam_backend_cpu_free(d->cpu);
    sam_free(d);
}

sam_devsim_counts sam_devsim_get_counts(const sam_backend *be) {
    ds_backend *d = (ds_backend *)be;
    pthread_mutex_lock(&d->mu);
    sam_devsim_counts c = d->counts;
    pthread_mutex_unlock(&d->mu);
    return c;
}

size_t sam_devsim_bytes_in_use(const sam_backend *be) { return ((const ds_backend *)be)->in_use; }
size_t sam_devsim_bytes_peak(const sam_backend *be) { return ((const ds_backend *)be)->peak; }

bool sam_devsim_is_buffer(const sam_backend *be, const void *p) {
    const ds_backend *d = (const ds_backend *)be;
    return in_heap(d, p);
}
