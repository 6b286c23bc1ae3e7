/* The image predictor on the devsim back end (device-memory rule enforced on
 * the CPU): the golden micro scenario within 1e-4 of Meta's outputs and
 * bit-identical to the CPU back end (image_golden_device.h). */
#include "image_golden_device.h"

int main(void) {
    int failures = image_golden_on_device("devsim");
    printf("devsim: %d failure(s)\n", failures);
    CHECK_MSG(sam2d_memory_used() == 0, "leak: %zu bytes", sam2d_memory_used());
    return test_finish();
}
