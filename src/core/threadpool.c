#include "core/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#include "core/alloc.h"

struct sam_threadpool {
    int nthreads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t run_lock; /* one parallel_for at a time */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    /* current job */
    sam_range_fn fn;
    void *ctx;
    int64_t n, chunk;
    int64_t next; /* next chunk start, under mu */
    /* Read without mu during the spin phase, so every access is atomic. */
    int generation;
    int busy;     /* workers still inside the current job */
    int shutdown;
    int spin;     /* cpu_relax rounds to poll before sleeping on a condition variable */
};

/* Waking a sleeping thread costs tens of microseconds (more on a busy core),
 * and a frame makes thousands of parallel_for calls, most of them short:
 * polling for about 0.1 ms first lets back-to-back calls skip the futex.
 * SAM2_POOL_SPIN sets the rounds (0 turns the spin off). */
#define POOL_SPIN_DEFAULT 2000

static int load_i(const int *v) { return __atomic_load_n(v, __ATOMIC_ACQUIRE); }

static int spin_rounds(void) {
    const char *e = getenv("SAM2_POOL_SPIN");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v >= 0 && v <= 10000000) return (int)v;
    }
    return POOL_SPIN_DEFAULT;
}

int sam_default_threads(void) {
    const char *e = getenv("SAM2_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v > 0 && v <= 1024) return (int)v;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int take_chunk(sam_threadpool *p, int64_t *b, int64_t *e) {
    if (p->next >= p->n) return 0;
    *b = p->next;
    *e = p->next + p->chunk < p->n ? p->next + p->chunk : p->n;
    p->next = *e;
    return 1;
}

static void run_chunks(sam_threadpool *p, int tid) {
    for (;;) {
        int64_t b, e;
        pthread_mutex_lock(&p->mu);
        int ok = take_chunk(p, &b, &e);
        pthread_mutex_unlock(&p->mu);
        if (!ok) return;
        p->fn(p->ctx, b, e, tid);
    }
}

typedef struct {
    sam_threadpool *pool;
    int tid;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    sam_threadpool *p = wa->pool;
    int tid = wa->tid;
    sam_free(wa);
    int seen = 0;
    for (;;) {
        for (int i = 0; i < p->spin && load_i(&p->generation) == seen && !load_i(&p->shutdown); i++) cpu_relax();
        pthread_mutex_lock(&p->mu);
        while (!load_i(&p->shutdown) && load_i(&p->generation) == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (load_i(&p->shutdown)) break;
        seen = load_i(&p->generation);
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, tid);
        pthread_mutex_lock(&p->mu);
        if (__atomic_sub_fetch(&p->busy, 1, __ATOMIC_ACQ_REL) == 0) pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sam_threadpool *sam_threadpool_create(int nthreads) {
    if (nthreads <= 0) nthreads = sam_default_threads();
    sam_threadpool *p = sam_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nthreads = nthreads;
    p->spin = spin_rounds();
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (nthreads > 1) {
        p->threads = sam_calloc((size_t)nthreads - 1, sizeof(pthread_t));
        if (!p->threads) {
            sam_free(p);
            return NULL;
        }
        for (int i = 1; i < nthreads; i++) {
            worker_arg *wa = sam_malloc(sizeof *wa);
            if (wa) {
                wa->pool = p;
                wa->tid = i;
            }
            if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                sam_free(wa);
                p->nthreads = i; /* keep what started */
                break;
            }
        }
    }
    return p;
}

void sam_threadpool_free(sam_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->shutdown, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nthreads; i++) pthread_join(p->threads[i - 1], NULL);
    sam_free(p->threads);
    pthread_mutex_destroy(&p->run_lock);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    sam_free(p);
}

int sam_threadpool_size(const sam_threadpool *p) { return p ? p->nthreads : 1; }

void sam_parallel_for(sam_threadpool *p, int64_t n, int64_t min_chunk, sam_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int nt = p ? p->nthreads : 1;
    if (nt <= 1 || n <= min_chunk) {
        fn(ctx, 0, n, 0);
        return;
    }
    /* A few chunks per thread balances uneven work without much locking. */
    int64_t chunk = (n + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
    if (chunk < min_chunk) chunk = min_chunk;
    pthread_mutex_lock(&p->run_lock);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    p->next = 0;
    __atomic_store_n(&p->busy, nt - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&p->generation, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    for (int i = 0; i < p->spin && load_i(&p->busy) > 0; i++) cpu_relax();
    pthread_mutex_lock(&p->mu);
    while (load_i(&p->busy) > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_lock);
}
