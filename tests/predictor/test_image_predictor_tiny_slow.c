/* The image predictor on the real tiny model's shapes (1024 px, d_model 256,
 * random weights): model object built from a random-mode loader, an image of
 * another aspect ratio, clicks / box / mask prompts. Checks shapes, finiteness
 * and the API's invariants (no dimension of the golden models is assumed),
 * then the same on devsim (the device-memory rule enforced on the CPU), whose
 * every output must be bit-identical to the CPU back end's. */
#include <stdbool.h>

#include "core/alloc.h"
#include "model/model.h"
#include "sam2d/config.h"
#include "sam2d/image_predictor.h"
#include "test_util.h"

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

enum { NOUT = 9 };
typedef struct {
    float *v[NOUT]; /* features (3), first predict (masks, low, iou), second predict (masks, low, iou) */
    size_t n[NOUT];
} outputs;

static void keep(outputs *o, int k, const float *src, size_t n) {
    o->v[k] = sam_malloc(n * sizeof(float));
    o->n[k] = n;
    if (o->v[k]) memcpy(o->v[k], src, n * sizeof(float));
}

static void run(const char *device, outputs *o) {
    printf("== %s\n", device);
    memset(o, 0, sizeof(*o));
    sam2d_model_config cfg;
    CHECK(sam2d_config_preset("sam2.1_tiny", &cfg) == SAM2D_OK);
    sam_backend *be = sam_backend_create(device, 0, SAM_PRECISION_FP32);
    CHECK_MSG(be != NULL, "%s: %s", device, sam2d_last_error());
    if (!be) return;
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 11, 0.05f, NULL);
    sam2d_model *m = NULL;
    sam2d_status st = sam_model_build(&cfg, &L, be, true, &m);
    CHECK_MSG(st == SAM2D_OK, "build: %s", sam2d_last_error());
    if (st != SAM2D_OK) return;
    CHECK(sam2d_model_image_size(m) == 1024);
    char desc[256];
    sam2d_model_describe(m, desc, sizeof desc);
    printf("%s\n", desc);

    sam2d_image_predictor *p = NULL;
    CHECK(sam2d_image_predictor_create(m, NULL, &p) == SAM2D_OK);
    int W = 640, H = 360;
    uint8_t *img = sam_malloc((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *px = img + ((size_t)y * W + x) * 3;
            px[0] = (uint8_t)(x * 255 / W);
            px[1] = (uint8_t)(y * 255 / H);
            px[2] = (uint8_t)(((x / 40) + (y / 40)) % 2 ? 200 : 30);
        }
    st = sam2d_image_predictor_set_image(p, img, W, H);
    CHECK_MSG(st == SAM2D_OK, "set_image: %s", sam2d_last_error());
    sam_free(img);
    int L4 = sam2d_image_predictor_low_res_size(p);
    CHECK(L4 == 256);
    const float *fe, *f0, *f1;
    CHECK(sam2d_image_predictor_features(p, &fe, &f0, &f1) == SAM2D_OK);
    CHECK(all_finite(fe, (size_t)64 * 64 * 256) && all_finite(f0, (size_t)256 * 256 * 32) &&
          all_finite(f1, (size_t)128 * 128 * 64));
    keep(o, 0, fe, (size_t)64 * 64 * 256);
    keep(o, 1, f0, (size_t)256 * 256 * 32);
    keep(o, 2, f1, (size_t)128 * 128 * 64);

    float click[2] = {320, 180};
    int pos[1] = {1};
    sam2d_image_prompt q = {.points = click, .labels = pos, .n_points = 1, .multimask = true, .return_logits = true};
    sam2d_image_result r;
    st = sam2d_image_predictor_predict(p, &q, &r);
    CHECK(st == SAM2D_OK && r.num_masks == 3 && r.width == W && r.height == H && r.low_res == 256);
    if (st == SAM2D_OK) {
        CHECK(all_finite(r.masks, (size_t)3 * W * H) && all_finite(r.low_res_masks, (size_t)3 * 256 * 256));
        bool clamped = true;
        for (size_t i = 0; i < (size_t)3 * 256 * 256; i++) clamped &= fabsf(r.low_res_masks[i]) <= 32.0f;
        CHECK(clamped);
        for (int k = 0; k < 3; k++) CHECK(r.iou[k] >= 0 && r.iou[k] <= 1); /* sigmoid IoU head (SAM 2.1) */
        keep(o, 3, r.masks, (size_t)3 * W * H);
        keep(o, 4, r.low_res_masks, (size_t)3 * 256 * 256);
        keep(o, 5, r.iou, 3);
    }
    /* feed the best low-res mask back with a box and a negative click, binary output */
    float *prev = sam_malloc((size_t)256 * 256 * sizeof(float));
    memcpy(prev, r.low_res_masks, (size_t)256 * 256 * sizeof(float));
    float box[4] = {100, 50, 500, 300}, neg[2] = {110, 60};
    int nl[1] = {0};
    sam2d_image_prompt q2 = {.points = neg, .labels = nl, .n_points = 1, .box = box, .mask_input = prev};
    st = sam2d_image_predictor_predict(p, &q2, &r);
    CHECK(st == SAM2D_OK && r.num_masks == 1);
    if (st == SAM2D_OK) {
        bool binary = true;
        for (size_t i = 0; i < (size_t)W * H; i++) binary &= r.masks[i] == 0.0f || r.masks[i] == 1.0f;
        CHECK(binary);
        keep(o, 6, r.masks, (size_t)W * H);
        keep(o, 7, r.low_res_masks, (size_t)256 * 256);
        keep(o, 8, r.iou, 1);
    }
    sam_free(prev);
    sam2d_image_predictor_free(p);
    sam2d_model_free(m); /* frees the back end (owned) */
}

int main(void) {
    outputs cpu, dev;
    run("cpu", &cpu);
    run("devsim", &dev);
    static const char *names[NOUT] = {"image_embed", "high_res0", "high_res1", "masks 1", "low_res 1",
                                      "iou 1",       "masks 2",   "low_res 2", "iou 2"};
    int same = 0;
    for (int k = 0; k < NOUT; k++) {
        bool eq = cpu.v[k] && dev.v[k] && cpu.n[k] == dev.n[k] && !memcmp(cpu.v[k], dev.v[k], cpu.n[k] * sizeof(float));
        CHECK_MSG(eq, "devsim %s differs from the cpu's", names[k]);
        same += eq;
        sam_free(cpu.v[k]);
        sam_free(dev.v[k]);
    }
    printf("devsim vs cpu: %d of %d outputs bit-identical\n", same, NOUT);
    CHECK_MSG(sam2d_memory_used() == 0, "leak: %zu bytes", sam2d_memory_used());
    return test_finish();
}
