/* The whole model on the GPU: the golden scenarios of the micro model
 * (tests/data/golden/micro) run with SAM2_DEVICE "cuda" (sam_cuda_register +
 * the model's device parameter), through the scenario code the devsim tests
 * use (tests/predictor/image_golden_device.h, video_golden_device.h).
 *
 * Image scenario tolerances: against Meta's outputs the golden tolerance, 1e-4 absolute on
 * logits, IoUs and features, binary masks equal wherever the reference logit
 * is not within 1e-4 of 0 (as every golden test). Against the same run on the
 * CPU back end NOT bit for bit (the header's devsim rule): the GPU sums in
 * another order (cuBLAS, warp reductions, fused multiply-adds), so the
 * features and logits are compared within the same 1e-4 and binary masks may
 * differ in at most 1 pixel in 10^4 (pixels whose logit is ~0).
 * Video scenario: video_golden_on_device("cuda") itself compares a GPU run
 * with the reference and with the CPU run at the golden tolerance
 * (1e-4 + 1e-4 |ref|; bf16 memory features one bf16 step + 1e-5).
 *
 * In the CPU emulation (tests/cuda/emu/run_emu.sh) both scenarios take ~2 min
 * on this project's 2-core machine. Exits 77 without a usable GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "predictor/image_golden_device.h"
#include "predictor/video_golden_device.h"
#include "test_util.h"

#define GOLD_TOL 1e-4        /* absolute, as IGD_TOL */
#define MASK_DIFF_FRAC 1e-4  /* binary masks: differing pixels allowed against the CPU run */

/* Binary masks (0/1) of a run against the CPU's: differing fraction. */
static double mask_diff(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += (a[i] > 0.5f) != (b[i] > 0.5f);
    return n ? (double)d / (double)n : 0.0;
}

/* The image scenario on "cuda": golden checks from the header, the CPU
 * comparison within tolerances (the header's own comparison is exact). */
static void image_golden_cuda(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/golden/micro", SAM2D_TEST_DATA);
    printf("== image predictor golden micro on cuda\n");
    igd_run dev, cpu;
    const bool ran_dev = igd_run_scenario(dir, "cuda", &dev);
    const bool ran_cpu = igd_run_scenario(dir, "cpu", &cpu);
    CHECK(ran_dev && ran_cpu);
    if (ran_dev) {
        igd_check_feature(dir, "cuda features image_embed (+no_mem_embed)", dev.feat[0], dev.nfeat[0],
                          "image/features_image_embed.npy");
        igd_check_feature(dir, "cuda features high_res0", dev.feat[1], dev.nfeat[1], "image/features_high_res0.npy");
        igd_check_feature(dir, "cuda features high_res1", dev.feat[2], dev.nfeat[2], "image/features_high_res1.npy");
        int golden = 0;
        for (int i = 0; i < dev.nsteps; i++)
            if (dev.steps[i].golden) {
                igd_check_golden_step(dir, "cuda", &dev.steps[i]);
                golden++;
            }
        CHECK_MSG(golden >= 4, "%d golden steps ran on cuda", golden);
    }
    if (ran_dev && ran_cpu) {
        for (int k = 0; k < 3; k++)
            if (dev.feat[k] && cpu.feat[k]) {
                char lab[64];
                snprintf(lab, sizeof lab, "cuda vs cpu feature %d", k);
                CHECK_CLOSE_ARRAY(lab, dev.feat[k], cpu.feat[k], dev.nfeat[k], GOLD_TOL);
            }
        CHECK_MSG(dev.nsteps == cpu.nsteps, "cuda: %d steps, cpu %d", dev.nsteps, cpu.nsteps);
        for (int i = 0; i < dev.nsteps && i < cpu.nsteps; i++) {
            const igd_step *a = &dev.steps[i], *b = &cpu.steps[i];
            const bool shape = a->nm == b->nm && a->H == b->H && a->W == b->W && a->L == b->L;
            CHECK_MSG(shape, "cuda: step %s has another shape than on the cpu", a->tag);
            if (!shape) continue;
            char lab[160];
            snprintf(lab, sizeof lab, "cuda vs cpu %s iou", a->tag);
            CHECK_CLOSE_ARRAY(lab, a->iou, b->iou, (size_t)a->nm, GOLD_TOL);
            snprintf(lab, sizeof lab, "cuda vs cpu %s low-res logits", a->tag);
            CHECK_CLOSE_ARRAY(lab, a->low, b->low, (size_t)a->nm * a->L * a->L, GOLD_TOL);
            const size_t n = (size_t)a->nm * a->H * a->W;
            if (a->return_logits) {
                snprintf(lab, sizeof lab, "cuda vs cpu %s mask logits", a->tag);
                CHECK_CLOSE_ARRAY(lab, a->masks, b->masks, n, GOLD_TOL);
            } else {
                const double f = mask_diff(a->masks, b->masks, n);
                printf("cuda vs cpu %-40s binary masks differ in %.3g of the pixels (tol %.0e)\n", a->tag, f,
                       MASK_DIFF_FRAC);
                CHECK(f <= MASK_DIFF_FRAC);
            }
        }
    }
    igd_run_free(&dev); /* also what a failed run had filled */
    igd_run_free(&cpu);
}

/* argv[1] "image" or "video": that scenario only (default both). */
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0); /* results interleave with the log, and survive a timeout */
    const char *only = argc > 1 ? argv[1] : "";
    char why[256];
    if (!sam_cuda_available(why, sizeof why)) {
        printf("SKIP: no usable CUDA device: %s\n", why);
        return 77;
    }
    printf("CUDA: %s\n", why);
    sam_cuda_register();
    if (strcmp(only, "video") != 0) image_golden_cuda();
    if (strcmp(only, "image") != 0) {
        const int vf = video_golden_on_device("cuda");
        printf("video golden on cuda: %d failures\n", vf);
    }
    return test_finish();
}
