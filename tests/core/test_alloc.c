/* The accounting allocator: sizes, alignment, zeroing, accounting, and that
 * a freed large block leaves the process's resident memory at once. */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

static void test_blocks(void) {
    const size_t sizes[] = {1, 63, 64, 1000, (size_t)256 << 10, ((size_t)256 << 10) + 1, (size_t)5 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        const size_t n = sizes[i], before = sam2d_memory_used();
        unsigned char *p = sam_calloc(n, 1);
        CHECK_MSG(p && ((uintptr_t)p & 63) == 0, "block of %zu bytes: 64-byte aligned", n);
        if (!p) continue;
        CHECK(sam_alloc_size(p) == n);
        CHECK(sam2d_memory_used() == before + n);
        size_t nz = 0;
        for (size_t k = 0; k < n; k++) nz += p[k] != 0;
        CHECK_MSG(nz == 0, "calloc of %zu bytes: %zu non-zero bytes", n, nz);
        memset(p, 0xab, n);
        /* realloc keeps the bytes across the large-block boundary both ways */
        unsigned char *q = sam_realloc(p, n * 3 + 7);
        CHECK(q && q[0] == 0xab && q[n - 1] == 0xab && sam_alloc_size(q) == n * 3 + 7);
        unsigned char *r = q ? sam_realloc(q, n) : NULL;
        CHECK(r && r[n - 1] == 0xab);
        sam_free(r ? r : q);
        CHECK(sam2d_memory_used() == before);
    }
    CHECK(sam_malloc(0) == NULL);
    CHECK(sam_calloc(SIZE_MAX / 2, 4) == NULL);
    sam_free(NULL);
}

#if !defined(__SANITIZE_ADDRESS__)
static size_t rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = (size_t)strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb;
}
#endif

/* Several large buffers touched, the first ones freed while later ones stay:
 * the freed ones' pages must leave (with malloc they could stay on the heap). */
static void test_returned(void) {
#if defined(__SANITIZE_ADDRESS__)
    printf("sanitizer build: large blocks stay with malloc; skipped\n");
#else
    enum { NB = 6 };
    const size_t n = (size_t)6 << 20;
    unsigned char *b[NB];
    sam_free(sam_malloc(n + 4096)); /* with glibc's malloc this raised its mmap threshold above n */
    for (int i = 0; i < NB; i++) {
        b[i] = sam_malloc(n);
        CHECK(b[i] != NULL);
        if (b[i]) memset(b[i], 1, n);
    }
    const size_t full = rss_kb();
    for (int i = 0; i < NB - 1; i++) sam_free(b[i]);
    const size_t after = rss_kb();
    printf("RSS with %d x 6 MiB touched %zu KiB, after freeing %d of them %zu KiB\n", NB, full, NB - 1, after);
    CHECK(full > after && full - after >= (size_t)(NB - 1) * 6 * 1024 * 9 / 10);
    sam_free(b[NB - 1]);
#endif
}

int main(void) {
    test_blocks();
    test_returned();
    return test_finish();
}
