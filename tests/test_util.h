/* Minimal test helpers: CHECK records a failure and goes on; the summary line
 * "N passed, N failed" is printed by test_finish(), which returns the exit code. */
#ifndef SAM2D_TEST_UTIL_H
#define SAM2D_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            test_passed_++;                                                      \
        } else {                                                                 \
            test_failed_++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (cond) {                                                              \
            test_passed_++;                                                      \
        } else {                                                                 \
            test_failed_++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

static inline int test_finish(void) {
    printf("%d passed, %d failed\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}

/* Deterministic uniform random numbers in [-1, 1). */
static inline float test_randf(uint64_t *state) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*state >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}
static inline void test_fill_random(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) x[i] = test_randf(&seed);
}

/* Worst absolute error between two arrays; also reports where. */
static inline double test_max_abs_diff(const float *a, const float *b, size_t n, size_t *where) {
    double worst = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > worst || d != d) {
            worst = d != d ? INFINITY : d;
            w = i;
        }
    }
    if (where) *where = w;
    return worst;
}

/* Compare with a stated absolute tolerance and print the worst error. */
#define CHECK_CLOSE_ARRAY(name, got, want, n, tol)                                                   \
    do {                                                                                             \
        size_t where_;                                                                               \
        double worst_ = test_max_abs_diff((got), (want), (n), &where_);                              \
        printf("%-48s worst abs err %.3g (tol %.1g) at %zu\n", (name), worst_, (double)(tol), where_); \
        CHECK_MSG(worst_ <= (tol), "%s: worst %.3g > tol %.3g at %zu (got %g want %g)", (name), worst_, \
                  (double)(tol), where_, (double)(got)[where_], (double)(want)[where_]);               \
    } while (0)

#endif
