#include "core/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sam2d/sam2d.h"

/* A 64-byte header in front of every block keeps the size, how the block was
 * obtained, and the alignment. */
#define HDR 64

/* Large blocks come straight from mmap and go back with munmap: freed memory
 * leaves the process at once. Through malloc, glibc raises its mmap threshold
 * after the first large free (up to 32 MiB), so later buffers of a few MiB
 * land on the heap, and freed ones there stay resident until the heap top is
 * free: a freed session or benchmark buffer kept counting in the RSS. Fresh
 * mappings are also zero already, so sam_calloc needs no pass over them.
 * Under AddressSanitizer every block stays with malloc (checked, leak-tracked). */
#if defined(__SANITIZE_ADDRESS__)
#define SAM_ALLOC_MMAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAM_ALLOC_MMAP 0
#endif
#endif
#ifndef SAM_ALLOC_MMAP
#define SAM_ALLOC_MMAP 1
#endif
#define MMAP_MIN ((size_t)256 << 10)
enum { VIA_MALLOC = 1, VIA_MMAP = 2 };

static size_t page_size(void) {
    static size_t pg;
    if (!pg) {
        long v = sysconf(_SC_PAGESIZE);
        pg = v > 0 ? (size_t)v : 4096;
    }
    return pg;
}

static size_t block_via(const void *p) {
    size_t how;
    memcpy(&how, (const unsigned char *)p - HDR + sizeof(size_t), sizeof how);
    return how;
}

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
    size_t how = VIA_MALLOC;
    unsigned char *raw = NULL;
    if (SAM_ALLOC_MMAP && total >= MMAP_MIN) {
        const size_t pg = page_size(), len = (total + pg - 1) & ~(pg - 1);
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        raw = m;
        how = VIA_MMAP;
    } else {
        raw = aligned_alloc(64, total);
        if (!raw) return NULL;
    }
    memcpy(raw, &n, sizeof n);
    memcpy(raw + sizeof n, &how, sizeof how);
    sam_mem_account((long long)n);
    return raw + HDR;
}

void *sam_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = sam_malloc(count * size);
    if (p && block_via(p) != VIA_MMAP) memset(p, 0, count * size); /* fresh mappings are zero */
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
    if (block_via(p) == VIA_MMAP) {
        const size_t pg = page_size(), total = (n + HDR + 63) & ~(size_t)63;
        munmap(raw, (total + pg - 1) & ~(pg - 1));
    } else {
        free(raw);
    }
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

size_t sam_mem_resident(const void *p, size_t n) {
    if (!p || !n) return 0;
    const long pg_l = sysconf(_SC_PAGESIZE);
    const uintptr_t pg = pg_l > 0 ? (uintptr_t)pg_l : 4096;
    const uintptr_t a = (uintptr_t)p, b = a + n;
    const uintptr_t lo = a & ~(pg - 1), hi = (b + pg - 1) & ~(pg - 1);
    size_t res = 0;
    unsigned char vec[256];
    for (uintptr_t s = lo; s < hi;) {
        const size_t npg = (size_t)((hi - s) / pg) < sizeof vec ? (size_t)((hi - s) / pg) : sizeof vec;
        if (mincore((void *)s, npg * pg, vec) != 0) return n; /* unknown: count it all */
        for (size_t i = 0; i < npg; i++) {
            if (!(vec[i] & 1)) continue;
            /* only the part of the page inside [a, b) */
            const uintptr_t ps = s + i * pg, pe = ps + pg;
            res += (size_t)((pe < b ? pe : b) - (ps > a ? ps : a));
        }
        s += npg * pg;
    }
    return res;
}
