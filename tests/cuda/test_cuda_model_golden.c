/* The whole model on the GPU: the golden scenarios of the micro model
 * (tests/data/golden/micro) run with SAM2_DEVICE "cuda" (sam_cuda_register +
 * the model's device parameter), through the scenario code the devsim tests
 * use (tests/predictor/image_golden_device.h, video_golden_device.h).
 *
 * Both headers compare the GPU run with Meta's outputs at the golden
 * tolerance and with the same run on the CPU back end, not bit for bit (the
 * GPU sums in another order: cuBLAS, warp reductions, fused multiply-adds)
 * but within the same tolerance: image 1e-4 on logits, IoUs and features,
 * binary masks differing in at most 1 pixel in 10^4; video 1e-4 + 1e-4 |ref|,
 * bf16 memory features one bf16 step + 1e-5.
 *
 * In the CPU emulation (tests/cuda/emu/run_emu.sh) both scenarios take ~2 min
 * on this project's 2-core machine. Exits 77 without a usable GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "predictor/image_golden_device.h"
#include "predictor/video_golden_device.h"
#include "cuda_test_util.h"
#include "test_util.h"

/* argv[1] "image" or "video": that scenario only (default both). */
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0); /* results interleave with the log, and survive a timeout */
    const char *only = argc > 1 ? argv[1] : "";
    if (!cuda_test_gpu_present()) return 77;
    if (strcmp(only, "video") != 0) {
        const int imf = image_golden_on_device("cuda");
        printf("image golden on cuda: %d failures\n", imf);
    }
    if (strcmp(only, "image") != 0) {
        const int vf = video_golden_on_device("cuda");
        printf("video golden on cuda: %d failures\n", vf);
    }
    return test_finish();
}
