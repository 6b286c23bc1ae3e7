#include "core/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

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
    int generation;
    int busy;     /* workers still inside the current job */
    int shutdown;
};

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
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->shutdown && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->shutdown) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sam_threadpool *sam_threadpool_create(int nthreads) {
    if (nthreads <= 0) nthreads = sam_default_threads();
    sam_threadpool *p = sam_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nthreads = nthreads;
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
    p->shutdown = 1;
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
    p->busy = nt - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_lock);
}
