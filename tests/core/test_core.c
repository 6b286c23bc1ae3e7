/* Core services: the accounting allocator, arenas, the thread pool, .npy files
 * and error messages. */
#include <stdatomic.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/threadpool.h"
#include "test_util.h"

static void test_alloc(void) {
    size_t base = sam2d_memory_used();
    void *a = sam_malloc(1000), *b = sam_calloc(10, 100);
    CHECK(a && b && ((uintptr_t)a % 64) == 0 && ((uintptr_t)b % 64) == 0);
    CHECK(sam2d_memory_used() == base + 2000);
    CHECK(sam_alloc_size(a) == 1000 && sam_alloc_size(NULL) == 0);
    a = sam_realloc(a, 5000);
    CHECK(a && sam2d_memory_used() == base + 6000);
    CHECK(((char *)b)[999] == 0);
    sam_free(a);
    sam_free(b);
    sam_free(NULL);
    CHECK(sam2d_memory_used() == base);
    CHECK(sam2d_memory_peak() >= base + 6000);
    CHECK(sam_malloc(0) == NULL && sam_calloc(SIZE_MAX / 2, 4) == NULL);
}

static void test_arena(void) {
    sam_arena a;
    sam_arena_init(&a);
    CHECK(sam_arena_reserve(&a, 1 << 16));
    size_t cap = a.capacity;
    float *x = sam_arena_f32(&a, 1000), *y = sam_arena_f32(&a, 1000);
    CHECK(x && y && y >= x + 1000 && ((uintptr_t)y % 64) == 0);
    sam_arena_mark m = sam_arena_get_mark(&a);
    float *z = sam_arena_f32(&a, 100);
    sam_arena_rewind(&a, m);
    CHECK(sam_arena_f32(&a, 100) == z); /* rewound space is handed out again */
    /* outgrow the reserve: a second chunk, merged at reset, then no growth */
    void *big = sam_arena_alloc(&a, 3u << 20);
    CHECK(big != NULL && a.capacity > cap);
    size_t hw = a.high_water;
    sam_arena_reset(&a);
    size_t after_reset = a.capacity;
    CHECK(after_reset >= hw);
    size_t used_before = sam2d_memory_used();
    sam_arena_f32(&a, 1000);
    sam_arena_f32(&a, 1000);
    sam_arena_alloc(&a, 3u << 20);
    CHECK_MSG(sam2d_memory_used() == used_before && a.capacity == after_reset,
              "a second identical run allocated memory");
    sam_arena_free(&a);
}

typedef struct {
    atomic_int *hits;
    atomic_long sum;
} pf_ctx;

static void pf_fn(void *ctx, int64_t b, int64_t e, int tid) {
    pf_ctx *c = ctx;
    (void)tid;
    for (int64_t i = b; i < e; i++) {
        atomic_fetch_add(&c->hits[i], 1);
        atomic_fetch_add(&c->sum, (long)i);
    }
}

/* spin: SAM2_POOL_SPIN for this pool (NULL: the default); both the polling and
 * the sleeping hand-off must run every item exactly once. */
static void test_pool(const char *spin) {
    if (spin) setenv("SAM2_POOL_SPIN", spin, 1);
    else unsetenv("SAM2_POOL_SPIN");
    sam_threadpool *p = sam_threadpool_create(4);
    unsetenv("SAM2_POOL_SPIN");
    CHECK(p && sam_threadpool_size(p) == 4);
    enum { N = 10007 };
    static atomic_int hits[N];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < N; i++) atomic_store(&hits[i], 0);
        pf_ctx c = {hits, 0};
        sam_parallel_for(p, N, 1 + round, pf_fn, &c);
        int wrong = 0;
        for (int i = 0; i < N; i++) wrong += atomic_load(&hits[i]) != 1;
        CHECK_MSG(wrong == 0 && atomic_load(&c.sum) == (long)N * (N - 1) / 2, "round %d: %d items not run once",
                  round, wrong);
    }
    pf_ctx c = {hits, 0};
    sam_parallel_for(NULL, 10, 1, pf_fn, &c); /* no pool: inline */
    sam_parallel_for(p, 0, 1, pf_fn, &c);     /* empty range */
    sam_threadpool_free(p);
    setenv("SAM2_THREADS", "3", 1);
    CHECK(sam_default_threads() == 3);
    setenv("SAM2_THREADS", "junk", 1);
    CHECK(sam_default_threads() >= 1);
    unsetenv("SAM2_THREADS");
}

static void test_npy(void) {
    char path[] = "/tmp/sam2d-npy-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    float v[6] = {1, -2.5f, 3, 1e-7f, 5, 6};
    CHECK(sam_npy_write_f32(path, v, 2, (int64_t[]){2, 3}) == SAM2D_OK);
    sam_npy a;
    CHECK(sam_npy_read(path, &a) == SAM2D_OK);
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && !memcmp(a.data, v, sizeof v));
    sam_npy_free(&a);
    uint8_t u[5] = {0, 1, 2, 254, 255};
    CHECK(sam_npy_write_u8(path, u, 1, (int64_t[]){5}) == SAM2D_OK);
    CHECK(sam_npy_read(path, &a) == SAM2D_OK && a.ndim == 1 && a.shape[0] == 5 && a.data[4] == 255.0f);
    sam_npy_free(&a);
    FILE *f = fopen(path, "wb");
    fputs("not numpy", f);
    fclose(f);
    CHECK(sam_npy_read(path, &a) == SAM2D_ERR_FORMAT);
    CHECK(strstr(sam2d_last_error(), "not a .npy") != NULL);
    unlink(path);
    CHECK(sam_npy_read("/nonexistent/x.npy", &a) == SAM2D_ERR_IO);
    /* golden files read: the micro point labels are int32 */
    CHECK(sam_npy_read(SAM2D_TEST_DATA "/golden/micro/inputs/s02_point_labels.npy", &a) == SAM2D_OK);
    CHECK(a.count == 1 && a.data[0] == 1.0f);
    sam_npy_free(&a);
}

static void test_errors(void) {
    sam2d_status s = SAM_ERR(SAM2D_ERR_FORMAT, "bad thing %d", 42);
    CHECK(s == SAM2D_ERR_FORMAT);
    CHECK(strstr(sam2d_last_error(), "bad thing 42") && strstr(sam2d_last_error(), "test_core.c:"));
    sam_error_wrap(s, "loading %s", "x.pt");
    CHECK(!strncmp(sam2d_last_error(), "loading x.pt: bad thing 42", 26));
    CHECK(!strcmp(sam2d_status_str(SAM2D_ERR_LIMIT), "limit exceeded"));
    CHECK(sam2d_dtype_size(SAM2D_BF16) == 2 && !strcmp(sam2d_dtype_name(SAM2D_F16), "F16"));
}

int main(void) {
    test_alloc();
    test_arena();
    test_pool(NULL);
    test_pool("0");
    test_npy();
    test_errors();
    return test_finish();
}
