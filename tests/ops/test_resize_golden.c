/* The plain bilinear resize against Meta's reference itself: the video
 * predictor upsamples each object's low-res mask logits (64x64, stored in
 * the state dumps) to the video size (240x320) with
 * F.interpolate(bilinear, align_corners=False); the golden outputs hold the
 * result. Tolerance 1e-6 absolute (logits here are ~0.1; the dumps differ
 * from every float evaluation order by up to ~4e-7, so the inputs themselves
 * carry that noise).
 * The antialiased resize against the reference: add_new_mask resizes a
 * binary 240x320 mask to 256x256 with F.interpolate(antialias=True) and
 * thresholds at 0.5; the thresholded mask must match pixel for pixel. */
#include "core/npy.h"
#include "ops/ops.h"
#include "test_util.h"

int main(void) {
    sam_backend *be = sam_backend_cpu_create(2);
    CHECK(be != NULL);
    if (!be) return test_finish();
    char path[512];
    double worst_all = 0;
    int compared = 0;
    for (int f = 1; f <= 9; f++) {
        sam_npy out;
        snprintf(path, sizeof path, "%s/golden/micro/out/s05_f%03d_video_res_logits.npy", SAM2D_TEST_DATA, f);
        if (sam_npy_read(path, &out) != SAM2D_OK) {
            CHECK_MSG(0, "cannot read %s", path);
            continue;
        }
        CHECK(out.ndim == 4 && out.shape[2] == 240 && out.shape[3] == 320);
        for (int o = 0; o < out.shape[0]; o++) {
            sam_npy low;
            snprintf(path, sizeof path, "%s/golden/micro/state/s05_o%d_f%03d_pred_masks.npy", SAM2D_TEST_DATA, o + 1, f);
            if (sam_npy_read(path, &low) != SAM2D_OK) {
                CHECK_MSG(0, "cannot read %s", path);
                continue;
            }
            int Hi = (int)low.shape[2], Wi = (int)low.shape[3];
            float *y = malloc(sizeof(float) * 240 * 320);
            be->resize_bilinear(be, y, low.data, 1, Hi, Wi, 240, 320, false);
            size_t where;
            double w = test_max_abs_diff(y, out.data + (size_t)o * 240 * 320, 240 * 320, &where);
            worst_all = fmax(worst_all, w);
            char name[96];
            snprintf(name, sizeof name, "golden s05 frame %d obj %d 64x64 -> 240x320", f, o + 1);
            CHECK_CLOSE_ARRAY(name, y, out.data + (size_t)o * 240 * 320, 240 * 320, 1e-6);
            compared++;
            free(y);
            sam_npy_free(&low);
        }
        sam_npy_free(&out);
    }
    printf("%d golden upsamplings compared, worst abs err %.3g\n", compared, worst_all);
    CHECK(compared >= 9);

    sam_npy m, want;
    snprintf(path, sizeof path, "%s/golden/micro/inputs/s09b_mask_f002_u8.npy", SAM2D_TEST_DATA);
    sam2d_status s1 = sam_npy_read(path, &m);
    snprintf(path, sizeof path, "%s/golden/micro/inputs/s09b_mask_inputs_model_space.npy", SAM2D_TEST_DATA);
    sam2d_status s2 = sam_npy_read(path, &want);
    CHECK(s1 == SAM2D_OK && s2 == SAM2D_OK);
    if (s1 == SAM2D_OK && s2 == SAM2D_OK) {
        const int H = (int)m.shape[0], W = (int)m.shape[1], S = (int)want.shape[3];
        float *y = malloc(sizeof(float) * S * S);
        be->resize_bilinear(be, y, m.data, 1, H, W, S, S, true);
        int mismatch = 0, near_half = 0, pos = 0;
        for (int i = 0; i < S * S; i++) {
            float bin = y[i] >= 0.5f ? 1.0f : 0.0f;
            mismatch += bin != want.data[i];
            near_half += fabsf(y[i] - 0.5f) < 1e-6f;
            pos += bin > 0;
        }
        printf("add_new_mask %dx%d -> %dx%d antialiased, >= 0.5: %d of %d pixels differ (%d set, %d within 1e-6 of 0.5)\n",
               H, W, S, S, mismatch, S * S, pos, near_half);
        CHECK_MSG(mismatch == 0, "%d pixels differ", mismatch);
        CHECK(pos > 100); /* the mask is not empty */
        free(y);
    }
    if (s1 == SAM2D_OK) sam_npy_free(&m);
    if (s2 == SAM2D_OK) sam_npy_free(&want);
    sam_backend_cpu_free(be);
    return test_finish();
}
