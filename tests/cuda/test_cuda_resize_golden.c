/* The CUDA back end's resizes against Meta's reference outputs (the same
 * data as tests/ops/test_resize_golden.c): the video predictor's upsampling
 * of 64x64 mask logits to 240x320 (F.interpolate bilinear,
 * align_corners=False; tolerance 1e-6 absolute, the dumps' own noise is
 * ~4e-7), and add_new_mask's antialiased 240x320 -> 256x256 resize of a
 * binary mask, thresholded at 0.5: pixel for pixel. Exits 77 without a GPU. */
#include "core/npy.h"
#include "cuda/cuda_backend.h"
#include "ops/ops.h"
#include "cuda_test_util.h"
#include "test_util.h"

/* y (n) on the host = resize of host x on the device. */
static void gpu_resize(sam_backend *be, float *y, const float *x, int C, int Hi, int Wi, int Ho, int Wo, bool aa) {
    const size_t nx = (size_t)C * Hi * Wi, ny = (size_t)C * Ho * Wo;
    float *dx = sam_cuda_malloc(be, nx * sizeof(float)), *dy = sam_cuda_malloc(be, ny * sizeof(float));
    CHECK(dx && dy);
    if (dx && dy) {
        CHECK(sam_cuda_upload(be, dx, x, nx * sizeof(float)) == SAM2D_OK);
        be->resize_bilinear(be, dy, dx, C, Hi, Wi, Ho, Wo, aa);
        CHECK(sam_cuda_download(be, y, dy, ny * sizeof(float)) == SAM2D_OK);
        CHECK_MSG(sam_cuda_sync(be) == SAM2D_OK, "%s", sam_cuda_error_message(be));
    }
    sam_cuda_free(be, dx);
    sam_cuda_free(be, dy);
}

int main(void) {
    if (!cuda_test_gpu_present()) return 77;
    sam_backend *be = sam_backend_cuda_create(0, SAM_PRECISION_FP32);
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
            const int Hi = (int)low.shape[2], Wi = (int)low.shape[3];
            float *y = malloc(sizeof(float) * 240 * 320);
            gpu_resize(be, y, low.data, 1, Hi, Wi, 240, 320, false);
            size_t where;
            worst_all = fmax(worst_all, test_max_abs_diff(y, out.data + (size_t)o * 240 * 320, 240 * 320, &where));
            char name[96];
            snprintf(name, sizeof name, "cuda golden s05 frame %d obj %d 64x64 -> 240x320", f, o + 1);
            CHECK_CLOSE_ARRAY(name, y, out.data + (size_t)o * 240 * 320, 240 * 320, 1e-6);
            compared++;
            free(y);
            sam_npy_free(&low);
        }
        sam_npy_free(&out);
    }
    printf("%d golden upsamplings compared on the GPU, worst abs err %.3g\n", compared, worst_all);
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
        gpu_resize(be, y, m.data, 1, H, W, S, S, true);
        int mismatch = 0, pos = 0;
        for (int i = 0; i < S * S; i++) {
            const float bin = y[i] >= 0.5f ? 1.0f : 0.0f;
            mismatch += bin != want.data[i];
            pos += bin > 0;
        }
        printf("cuda add_new_mask %dx%d -> %dx%d antialiased, >= 0.5: %d of %d pixels differ (%d set)\n", H, W, S, S,
               mismatch, S * S, pos);
        CHECK_MSG(mismatch == 0, "%d pixels differ", mismatch);
        CHECK(pos > 100);
        free(y);
    }
    if (s1 == SAM2D_OK) sam_npy_free(&m);
    if (s2 == SAM2D_OK) sam_npy_free(&want);
    sam_backend_cuda_free(be);
    return test_finish();
}
