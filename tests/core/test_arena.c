/* Arena reuse and the residency helpers the memory breakdown is built on. */
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "test_util.h"

static void test_resident(void) {
    const size_t n = (size_t)8 << 20;
    unsigned char *p = sam_malloc(n); /* large: fresh pages from the system */
    CHECK(p != NULL);
    if (!p) return;
    CHECK(sam_mem_resident(p, n) < n / 2); /* untouched pages cost nothing yet */
    memset(p, 1, n / 2);
    const size_t r = sam_mem_resident(p, n);
    CHECK(r >= n / 2 && r < n / 2 + ((size_t)1 << 20));
    memset(p, 1, n);
    CHECK(sam_mem_resident(p, n) == n);
    CHECK(sam_mem_resident(p + 10, 100) == 100); /* partial pages count only the asked bytes */
    CHECK(sam_mem_resident(NULL, 10) == 0);
    sam_free(p);
}

static void test_arena_resident(void) {
    sam_arena a;
    sam_arena_init(&a);
    CHECK(sam_arena_reserve(&a, (size_t)4 << 20));
    CHECK(sam_arena_resident(&a) < ((size_t)2 << 20));
    float *x = sam_arena_f32(&a, (size_t)1 << 20); /* 4 MiB */
    CHECK(x != NULL);
    if (x) memset(x, 0, (size_t)4 << 20);
    CHECK(sam_arena_resident(&a) >= ((size_t)4 << 20));
    sam_arena_reset(&a);
    CHECK(sam_arena_f32(&a, (size_t)1 << 20) == x); /* same bytes again: nothing allocated */
    sam_arena_free(&a);
    CHECK(sam_arena_resident(&a) == 0);
}

int main(void) {
    test_resident();
    test_arena_resident();
    return test_finish();
}
