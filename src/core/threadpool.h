/* A persistent pool of worker threads for data-parallel loops.
 * One pool per model (created at load); parallel_for calls on the same pool
 * are serialised by an internal lock, so several sessions may share it.
 * Do not call sam_parallel_for from inside fn on the same pool (it would deadlock). */
#ifndef SAM_CORE_THREADPOOL_H
#define SAM_CORE_THREADPOOL_H

#include <stdint.h>

typedef struct sam_threadpool sam_threadpool;

/* fn handles items [begin, end); tid is in [0, nthreads). */
typedef void (*sam_range_fn)(void *ctx, int64_t begin, int64_t end, int tid);

/* nthreads <= 0 picks SAM2_THREADS from the environment, else the CPU count.
 * Idle workers poll SAM2_POOL_SPIN rounds (default 2000, ~0.1 ms) before sleeping. */
sam_threadpool *sam_threadpool_create(int nthreads);
void sam_threadpool_free(sam_threadpool *pool);
int sam_threadpool_size(const sam_threadpool *pool);

/* Split [0, n) into contiguous chunks of at least min_chunk items and run them
 * on the pool (the calling thread takes part). pool may be NULL: runs inline. */
void sam_parallel_for(sam_threadpool *pool, int64_t n, int64_t min_chunk, sam_range_fn fn, void *ctx);

/* Thread count from SAM2_THREADS, else the number of online CPUs. */
int sam_default_threads(void);

#endif
