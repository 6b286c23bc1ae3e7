/* The memory-bank sized attention: 4096 queries x 29,000 keys x 256 dims
 * (one head), as SAM 2 memory attention at 1024 px. A full score matrix would
 * take 4096 * 29000 * 4 B = 475 MB; the kernel must stay far below that.
 * Checks (a) 24 sampled output rows against a double-precision reference and
 * (b) that the extra memory (back end creation + the call), measured both
 * through the accounting allocator (sam2d_memory_peak) and as max RSS growth,
 * stays under the stated bound of 64 MB. */
#include <sys/resource.h>
#include <time.h>

#include "ops/ops.h"
#include "core/threadpool.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

#define LQ 4096
#define LK 29000
#define D 256
#define BOUND_MB 64.0

static double max_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

int main(void) {
    float *q = malloc(sizeof(float) * LQ * D), *k = malloc(sizeof(float) * LK * D);
    float *v = malloc(sizeof(float) * LK * D), *o = malloc(sizeof(float) * LQ * D);
    CHECK(q && k && v && o);
    if (!q || !k || !v || !o) return test_finish();
    test_fill_random(q, (size_t)LQ * D, 1);
    test_fill_random(k, (size_t)LK * D, 2);
    test_fill_random(v, (size_t)LK * D, 3);
    for (size_t i = 0; i < (size_t)LQ * D; i++) q[i] *= 2.0f; /* a less flat softmax */
    memset(o, 0, sizeof(float) * LQ * D);                    /* touch the output before measuring */

    /* Baseline before the back end exists: its scratch, thread stacks and
     * OpenBLAS buffers all count as the kernel's extra memory. */
    const size_t peak0 = sam2d_memory_peak(), used0 = sam2d_memory_used();
    const double rss0 = max_rss_mb();
    sam_backend *be = sam_backend_cpu_create(0);
    CHECK(be != NULL);
    if (!be) return test_finish();
    sam_attn_params p = sam_attn_dense(1, LQ, LK, D, D);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    be->attention(be, o, q, k, v, &p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    const double peak_mb = (double)(sam2d_memory_peak() - (peak0 > used0 ? used0 : peak0)) / (1 << 20);
    const double rss_mb = max_rss_mb() - rss0;
    printf("attention %dx%dx%d: %.2f s with %d threads; extra memory: allocator peak %.1f MB, max RSS growth %.1f MB "
           "(bound %.0f MB; a full score matrix is %.0f MB)\n",
           LQ, LK, D, secs, sam_default_threads(), peak_mb, rss_mb, BOUND_MB, (double)LQ * LK * 4 / 1e6);
    CHECK_MSG(peak_mb < BOUND_MB, "allocator peak grew by %.1f MB", peak_mb);
    CHECK_MSG(rss_mb < BOUND_MB, "max RSS grew by %.1f MB", rss_mb);

    /* sampled rows against double precision: first, last, tile edges, spread */
    int rows[24] = {0, 1, 63, 64, 65, 127, 128, 1000, 2047, 2048, 4031, 4032, 4094, 4095};
    for (int i = 14; i < 24; i++) rows[i] = 37 + i * 163;
    double *s = malloc(sizeof(double) * LK);
    float *got = malloc(sizeof(float) * 24 * D), *want = malloc(sizeof(float) * 24 * D);
    for (int t = 0; t < 24; t++) {
        const float *qi = q + (size_t)rows[t] * D;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < LK; j++) {
            double d = 0;
            for (int e = 0; e < D; e++) d += (double)qi[e] * k[(size_t)j * D + e];
            s[j] = d * p.scale;
            mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < LK; j++) sum += (s[j] = exp(s[j] - mx));
        for (int e = 0; e < D; e++) {
            double a = 0;
            for (int j = 0; j < LK; j++) a += s[j] * v[(size_t)j * D + e];
            want[t * D + e] = (float)(a / sum);
            got[t * D + e] = o[(size_t)rows[t] * D + e];
        }
    }
    CHECK_CLOSE_ARRAY("attention 4096x29000x256, 24 sampled rows", got, want, (size_t)24 * D, 1e-6);
    free(s), free(got), free(want);
    sam_backend_cpu_free(be);
    free(q), free(k), free(v), free(o);
    return test_finish();
}
