/* Helpers shared by the CUDA tests. */
#ifndef SAM_TESTS_CUDA_TEST_UTIL_H
#define SAM_TESTS_CUDA_TEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda/cuda_backend.h"
#include "test_util.h"

/* false (and a SKIP line) without a usable GPU: main then returns 77, which
 * ctest reports as skipped; else prints the device and offers it to
 * sam_backend_create. */
static inline bool cuda_test_gpu_present(void) {
    char why[256];
    if (!sam_cuda_available(why, sizeof why)) {
        printf("SKIP: no usable CUDA device: %s\n", why);
        return false;
    }
    printf("CUDA: %s\n", why);
    sam_cuda_register();
    return true;
}

/* n uniform values in [-scale, scale) (malloc'd host array). */
static inline float *hrand(size_t n, uint64_t seed, float scale) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    test_fill_random(h, n, seed);
    for (size_t i = 0; i < n; i++) h[i] *= scale;
    return h;
}

#endif
