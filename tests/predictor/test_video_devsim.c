/* The golden video scenario on the devsim back end (ops/devsim.h): every
 * tensor of the model in buffers that host code cannot touch, results
 * bit-identical to the cpu run and within the golden tolerance. */
#include "video_golden_device.h"

int main(void) {
    int fails = video_golden_on_device("devsim");
    printf("devsim video golden: %d failure(s)\n", fails);
    return test_finish();
}
