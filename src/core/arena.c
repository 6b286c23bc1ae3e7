#include "core/arena.h"

#include <stdbool.h>

#include "core/alloc.h"

struct sam_arena_chunk {
    sam_arena_chunk *next;
    size_t size, offset;
    unsigned char *data;
    bool external; /* a caller's buffer: not freed here */
};

void sam_arena_init(sam_arena *a) {
    a->chunks = NULL;
    a->used_total = a->high_water = a->capacity = a->borrowed = 0;
    a->mem = (sam_arena_allocator){0};
}

void sam_arena_set_allocator(sam_arena *a, sam_arena_allocator mem) { a->mem = mem; }

static void *chunk_data_alloc(sam_arena *a, size_t size) {
    return a->mem.alloc ? a->mem.alloc(a->mem.ctx, size) : sam_malloc(size);
}
static void chunk_data_free(sam_arena *a, void *p) {
    if (a->mem.alloc)
        a->mem.free(a->mem.ctx, p);
    else
        sam_free(p);
}

static sam_arena_chunk *new_chunk(sam_arena *a, size_t size) {
    sam_arena_chunk *c = sam_malloc(sizeof *c);
    if (!c) return NULL;
    c->data = chunk_data_alloc(a, size);
    if (!c->data) {
        sam_free(c);
        return NULL;
    }
    c->size = size;
    c->offset = 0;
    c->next = NULL;
    c->external = false;
    return c;
}

static void free_chunks(sam_arena *a) {
    sam_arena_chunk *c = a->chunks;
    while (c) {
        sam_arena_chunk *n = c->next;
        if (!c->external) chunk_data_free(a, c->data);
        sam_free(c);
        c = n;
    }
    a->chunks = NULL;
    a->capacity = a->borrowed = 0;
}

int sam_arena_reserve(sam_arena *a, size_t bytes) {
    if (a->chunks && !a->chunks->next && a->chunks->size >= bytes) return 1;
    if (a->used_total) return 0; /* only between runs */
    size_t want = bytes > a->capacity ? bytes : a->capacity;
    free_chunks(a);
    a->chunks = new_chunk(a, want);
    if (!a->chunks) return 0;
    a->capacity = want;
    return 1;
}

void *sam_arena_alloc(sam_arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need == 0) need = 64;
    sam_arena_chunk *c = a->chunks;
    if (!c || c->size - c->offset < need) {
        size_t sz = need > ((size_t)1 << 20) ? need : ((size_t)1 << 20);
        if (c && c->size > sz) sz = c->size;
        sam_arena_chunk *n = new_chunk(a, sz);
        if (!n) return NULL;
        n->next = c;
        a->chunks = n;
        a->capacity += sz;
        c = n;
    }
    void *p = c->data + c->offset;
    c->offset += need;
    a->used_total += need;
    if (a->used_total > a->high_water) a->high_water = a->used_total;
    return p;
}

size_t sam_arena_resident(const sam_arena *a) {
    size_t n = 0;
    for (const sam_arena_chunk *c = a->chunks; c; c = c->next)
        if (!c->external) n += sam_mem_resident(c->data, c->size);
    return n;
}

void sam_arena_use_buffer(sam_arena *a, void *buf, size_t bytes) {
    const sam_arena_chunk *c = a->chunks;
    if (buf && bytes && c && !c->next && c->external && c->data == buf && c->size == bytes) {
        a->used_total = 0;
        a->chunks->offset = 0;
        return;
    }
    free_chunks(a);
    a->used_total = 0;
    if (!buf || !bytes) return;
    sam_arena_chunk *e = sam_malloc(sizeof *e);
    if (!e) return; /* own chunks on the next allocation */
    e->data = buf;
    e->size = bytes;
    e->offset = 0;
    e->next = NULL;
    e->external = true;
    a->chunks = e;
    a->borrowed = bytes;
}

float *sam_arena_f32(sam_arena *a, size_t count) { return sam_arena_alloc(a, count * sizeof(float)); }

void sam_arena_reset(sam_arena *a) {
    if (a->chunks && a->chunks->next) {
        size_t want = a->high_water;
        free_chunks(a);
        a->chunks = new_chunk(a, want);
        a->capacity = a->chunks ? want : 0;
    }
    for (sam_arena_chunk *c = a->chunks; c; c = c->next) c->offset = 0;
    a->used_total = 0;
}

void sam_arena_free(sam_arena *a) {
    free_chunks(a);
    a->used_total = a->high_water = 0;
}

sam_arena_mark sam_arena_get_mark(const sam_arena *a) {
    sam_arena_mark m = {a->chunks, a->chunks ? a->chunks->offset : 0, a->used_total};
    return m;
}

void sam_arena_rewind(sam_arena *a, sam_arena_mark m) {
    /* Chunks added after the mark stay allocated (reset merges them later);
     * just mark them empty. */
    for (sam_arena_chunk *c = a->chunks; c && c != m.chunk; c = c->next) c->offset = 0;
    if (m.chunk) m.chunk->offset = m.offset;
    a->used_total = m.used_total;
}
