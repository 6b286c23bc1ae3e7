/* Host round trips of a tracked frame. On a GPU every to_host waits for the
 * device, so a frame's step must fetch only what the host decides on (the
 * object score, the heads' IoUs) and the mask it hands to the user: this test
 * counts the transfers and kernels of each propagated frame on devsim (the
 * same code path a GPU runs) and bounds them, so a change that adds a host
 * round trip inside a frame fails here rather than as a slow GPU later. */
#include <stdint.h>

#include "model/model.h"
#include "ops/devsim.h"
#include "sam2d/model.h"
#include "sam2d/video_predictor.h"
#include "test_util.h"

/* Per tracked frame and object: one fetch of the heads' scalars (IoUs,
 * object score: the host decides on them) and one of the mask for the user;
 * anything past this bound is a new round trip that needs a reason. */
#define MAX_TO_HOST_PER_OBJECT 2
/* The frame's image upload and the small host-made tables of a step (the
 * object pointers' temporal encodings); measured 5 with two objects. */
#define MAX_TO_DEV_PER_FRAME 8

typedef struct {
    sam_backend *be;
    sam_devsim_counts last;
    int frames;
    uint64_t worst_to_host, worst_to_dev, worst_kernels;
} counter;

static int on_frame(void *user, const sam2d_video_frame_result *r) {
    counter *c = user;
    sam_devsim_counts now = sam_devsim_get_counts(c->be);
    uint64_t th = now.to_host - c->last.to_host, td = now.to_dev - c->last.to_dev, k = now.kernels - c->last.kernels;
    printf("frame %d: %d objects, %llu kernels, %llu to_host, %llu to_dev, %llu copies\n", r->frame_idx,
           r->num_objects, (unsigned long long)k, (unsigned long long)th, (unsigned long long)td,
           (unsigned long long)(now.copies - c->last.copies));
    if (c->frames > 0) { /* the first callback's window includes the session's setup */
        uint64_t th_obj = (th + (uint64_t)r->num_objects - 1) / (uint64_t)r->num_objects;
        if (th_obj > c->worst_to_host) c->worst_to_host = th_obj;
        if (td > c->worst_to_dev) c->worst_to_dev = td;
        if (k > c->worst_kernels) c->worst_kernels = k;
    }
    c->frames++;
    c->last = now;
    return 0;
}

int main(void) {
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = SAM2D_TEST_DATA "/golden/micro/model.safetensors";
    mp.config_path = SAM2D_TEST_DATA "/golden/micro/config.yaml";
    mp.device = "devsim";
    mp.num_threads = 2;
    sam2d_model *model = NULL;
    if (sam2d_model_load(&mp, &model) != SAM2D_OK) {
        fprintf(stderr, "model: %s\n", sam2d_last_error());
        return 1;
    }
    CHECK(sam_backend_is_devsim(model->be));

    enum { NF = 6, W = 96, H = 64 };
    uint8_t *frames[NF];
    for (int f = 0; f < NF; f++) { /* a bright square drifting over a gradient */
        frames[f] = malloc(W * H * 3);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                bool in = x >= 20 + 3 * f && x < 50 + 3 * f && y >= 15 && y < 45;
                for (int ch = 0; ch < 3; ch++) frames[f][(y * W + x) * 3 + ch] = in ? 230 : (uint8_t)(x + y + 40 * ch);
            }
    }
    sam2d_video_session *s = NULL;
    sam2d_status st = sam2d_video_session_create(model, (const uint8_t *const *)frames, NF, W, H, W, H, NULL, &s);
    CHECK_MSG(st == SAM2D_OK, "session: %s", sam2d_last_error());
    if (st == SAM2D_OK) {
        const float p1[2] = {35, 30}, p2[2] = {80, 55};
        const int l1[1] = {1};
        sam2d_video_frame_result r;
        CHECK(sam2d_video_add_points(s, 0, 1, p1, l1, 1, NULL, false, &r) == SAM2D_OK);
        CHECK(sam2d_video_add_points(s, 0, 2, p2, l1, 1, NULL, false, &r) == SAM2D_OK);
        counter c = {.be = model->be};
        c.last = sam_devsim_get_counts(model->be);
        CHECK(sam2d_video_propagate(s, 0, false, -1, on_frame, &c) == SAM2D_OK);
        CHECK(c.frames == NF);
        printf("worst tracked frame: %llu kernels, %llu to_host per object (bound %d), %llu to_dev (bound %d)\n",
               (unsigned long long)c.worst_kernels, (unsigned long long)c.worst_to_host, MAX_TO_HOST_PER_OBJECT,
               (unsigned long long)c.worst_to_dev, MAX_TO_DEV_PER_FRAME);
        CHECK(c.worst_to_host >= 1); /* the mask for the user comes down */
        CHECK(c.worst_to_host <= MAX_TO_HOST_PER_OBJECT);
        CHECK(c.worst_to_dev <= MAX_TO_DEV_PER_FRAME);
        sam2d_video_session_free(s);
    }
    for (int f = 0; f < NF; f++) free(frames[f]);
    sam2d_model_free(model);
    return test_finish();
}
