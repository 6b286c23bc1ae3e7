/* Bump allocator for activations. A model reserves its arenas once (a dry run
 * at load for the largest input); after that sam_arena_reset() + allocations
 * of the same sizes never touch the system allocator. Not thread-safe: one
 * arena per running computation. */
#ifndef SAM_CORE_ARENA_H
#define SAM_CORE_ARENA_H

#include <stddef.h>

typedef struct sam_arena_chunk sam_arena_chunk;
/* Where chunks come from: NULL alloc = sam_malloc (host memory); a back
 * end's buffers (device memory on a GPU) through sam_arena_on_backend (ops). */
typedef struct {
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *p);
    void *ctx;
} sam_arena_allocator;
typedef struct sam_arena {
    sam_arena_chunk *chunks; /* newest first */
    sam_arena_allocator mem;
    size_t used_total;       /* bytes handed out since the last reset */
    size_t high_water;       /* largest used_total seen */
    size_t capacity;         /* bytes owned */
    size_t borrowed;         /* bytes of a caller's buffer in use (sam_arena_use_buffer) */
} sam_arena;

void sam_arena_init(sam_arena *a);
/* Chunks from `mem` from now on (call right after init). */
void sam_arena_set_allocator(sam_arena *a, sam_arena_allocator mem);
/* Make sure one chunk of at least `bytes` exists (merging smaller chunks). */
int sam_arena_reserve(sam_arena *a, size_t bytes);
/* 64-byte aligned, uninitialised; NULL only when the system is out of memory. */
void *sam_arena_alloc(sam_arena *a, size_t bytes);
float *sam_arena_f32(sam_arena *a, size_t count);
/* Forget every allocation; if more than one chunk was needed, merge them into
 * one chunk of the high-water size so the next run allocates nothing. */
void sam_arena_reset(sam_arena *a);
void sam_arena_free(sam_arena *a);
/* Bytes of the arena's own chunks that are resident now (pages ever touched;
 * a borrowed buffer is its owner's to count). */
size_t sam_arena_resident(const sam_arena *a);

/* Run in the caller's buffer (64-byte aligned, `bytes` long) from now on,
 * freeing the arena's own chunks: modules that never run at the same time
 * can share one region. The buffer must outlive the arena's use of it; more
 * than it holds falls back to own chunks (reset then drops the buffer).
 * Forgets any allocation (call between runs). NULL / 0 returns to own
 * chunks (none until the next allocation). No-op when already in place. */
void sam_arena_use_buffer(sam_arena *a, void *buf, size_t bytes);

/* Mark/rewind for scoped temporaries inside one run. */
typedef struct {
    sam_arena_chunk *chunk;
    size_t offset;
    size_t used_total;
} sam_arena_mark;
sam_arena_mark sam_arena_get_mark(const sam_arena *a);
void sam_arena_rewind(sam_arena *a, sam_arena_mark m);

#endif
