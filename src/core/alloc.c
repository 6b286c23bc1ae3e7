#include "core/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sam2d/sam2d.h"

/* A 64-byte header in front of every block keeps the size and the alignment. */
#define HDR 64

static atomic_llong used_bytes;
static atomic_llong peak_bytes;

void sam_mem_account(long long delta) {
    long long now = atomic_fetch_add(&used_bytes, delta) + delta;
    long long peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
    }
}

size_t sam2d_memory_used(void) { return (size_t)atomic_load(&used_bytes); }
size_t sam2d_memory_peak(void) { return (size_t)atomic_load(&peak_bytes); }

void *sam_malloc(size_t n) {
    if (n == 0 || n > SIZE_MAX - 2 * HDR) return NULL;
    size_t total = (n + HDR + 63) & ~(size_t)63;
    unsigned char *raw = aligned_alloc(64, total);
    if (!raw) return NULL;
    memcpy(raw, &n, sizeof n);
    sam_mem_account((long long)n);
    return raw + HDR;
}

void *sam_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = sam_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

size_t sam_alloc_size(const void *p) {
    if (!p) return 0;
    size_t n;
    memcpy(&n, (const unsigned char *)p - HDR, sizeof n);
    return n;
}

void sam_free(void *p) {
    if (!p) return;
    unsigned char *raw = (unsigned char *)p - HDR;
    size_t n;
    memcpy(&n, raw, sizeof n);
    sam_mem_account(-(long long)n);
    free(raw);
}

void *sam_realloc(void *p, size_t n) {
    if (!p) return sam_malloc(n);
    if (n == 0) {
        sam_free(p);
        return NULL;
    }
    size_t old = sam_alloc_size(p);
    void *q = sam_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    sam_free(p);
    return q;
}

char *sam_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sam_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
