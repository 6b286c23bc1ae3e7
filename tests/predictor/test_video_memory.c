/* Session memory (issue 7): frames smaller than S x S are kept at their own
 * size and resized when encoded. The masks must be bit-for-bit those of a
 * session given the frames already resized, with fewer bytes held; and the
 * model's tracker region must stay the largest phase, not the sum, and the
 * top-level position encoding the model keeps once must be the encoder's. Micro
 * model (random weights) at 512 px, the golden micro video (320x240). */
#include <string.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/resize_pil.h"
#include "model/image_encoder.h"
#include "model/model.h"
#include "model/track.h"
#include "model/weights.h"
#include "sam2d/video_predictor.h"
#include "test_util.h"

enum { NF = 4 };

typedef struct {
    float *logits[NF]; /* (H, W) per frame, one object */
    float score[NF];
    int W, H;
} run_out;

static int keep_frame(void *user, const sam2d_video_frame_result *r) {
    run_out *o = user;
    if (r->frame_idx >= 0 && r->frame_idx < NF && r->num_objects == 1) {
        const size_t n = (size_t)o->W * o->H;
        if (!o->logits[r->frame_idx]) o->logits[r->frame_idx] = malloc(n * sizeof(float));
        memcpy(o->logits[r->frame_idx], r->logits, n * sizeof(float));
        o->score[r->frame_idx] = r->object_scores[0];
    }
    return 0;
}

static size_t run_session(sam2d_model *m, const uint8_t *const *frames, int fw, int fh, int W, int H, run_out *o) {
    sam2d_video_session *s = NULL;
    sam2d_status st = sam2d_video_session_create(m, frames, NF, fw, fh, W, H, NULL, &s);
    CHECK_MSG(st == SAM2D_OK, "session: %s", sam2d_last_error());
    if (st != SAM2D_OK) return 0;
    o->W = W, o->H = H;
    const float pt[2] = {160, 120};
    const int lab[1] = {1};
    sam2d_video_frame_result res;
    st = sam2d_video_add_points(s, 0, 1, pt, lab, 1, NULL, true, &res);
    CHECK_MSG(st == SAM2D_OK, "click: %s", sam2d_last_error());
    if (st == SAM2D_OK) st = sam2d_video_propagate(s, 0, false, -1, keep_frame, o);
    CHECK_MSG(st == SAM2D_OK, "propagate: %s", sam2d_last_error());
    sam_video_session_census c;
    sam_video_session_memory_census(s, &c);
    CHECK(c.total == sam2d_video_session_memory_bytes(s));
    CHECK(c.n_states >= NF && c.state_bytes > 0);
    const size_t frames_bytes = c.frames;
    sam2d_video_session_free(s);
    return frames_bytes;
}

int main(void) {
    sam2d_model_config cfg;
    sam2d_status st = sam2d_config_load_yaml(SAM2D_TEST_DATA "/golden/micro/config.yaml", &cfg);
    CHECK_MSG(st == SAM2D_OK, "config: %s", sam2d_last_error());
    if (st != SAM2D_OK) return test_finish();
    cfg.image_size = 512; /* 320x240 frames are smaller than 512 x 512 */
    const int S = cfg.image_size;
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 5, 0.05f, NULL);
    sam2d_model *m = NULL;
    st = sam_model_build(&cfg, &L, sam_backend_cpu_create(2), true, &m);
    CHECK_MSG(st == SAM2D_OK, "model: %s", sam2d_last_error());
    if (st != SAM2D_OK) return test_finish();

    /* the tracker's region is the largest phase, well under the sum of its users */
    sam_model_memory mm;
    sam_model_memory_census(m, &mm);
    const size_t sum = sam_memory_attention_scratch_need(m->mem_attention, (int64_t)cfg.num_maskmem * (S / 16) * (S / 16)) +
                       sam_memory_encoder_scratch_need(m->mem_encoder) + sam_heads_scratch_need(m->heads);
    printf("tracker scratch %.2f MiB; attention + encoder + heads scratch alone %.2f MiB\n",
           mm.track_scratch / 1048576.0, sum / 1048576.0);
    CHECK(mm.track_scratch < sum);
    CHECK(mm.heads_scratch == 0 && mm.memory_scratch == 0); /* they run in the region: nothing of their own */

    /* the model's top-level position encoding is the one a forward writes, bit for bit */
    {
        const size_t nf = sam_image_features_floats_ex(&cfg, SAM_FEATURES_POS_TOP);
        float *fb = sam_malloc(nf * sizeof(float)), *img = sam_calloc((size_t)S * S * 3, sizeof(float));
        sam_image_features f;
        sam_image_features_bind_ex(&cfg, fb, SAM_FEATURES_POS_TOP, &f);
        const int top = f.num_levels - 1;
        CHECK(sam_image_encoder_forward(m->encoder, img, &f) == SAM2D_OK);
        const size_t n = (size_t)f.h[top] * f.w[top] * cfg.d_model;
        CHECK(f.h[top] == S / cfg.backbone_stride && m->vision_pos && sam_alloc_size(m->vision_pos) == n * sizeof(float));
        CHECK_MSG(m->vision_pos && !memcmp(f.pos[top], m->vision_pos, n * sizeof(float)),
                  "the model's vision_pos differs from the encoder's");
        sam_free(fb), sam_free(img);
    }

    sam_npy fr;
    st = sam_npy_read(SAM2D_TEST_DATA "/golden/micro/frames_decoded_u8.npy", &fr);
    CHECK(st == SAM2D_OK && fr.ndim == 4);
    if (st != SAM2D_OK) {
        sam2d_model_free(m);
        return test_finish();
    }
    const int H = (int)fr.shape[1], W = (int)fr.shape[2];
    uint8_t *orig = malloc((size_t)NF * W * H * 3), *big = malloc((size_t)NF * S * S * 3);
    const uint8_t *fo[NF], *fb[NF];
    for (size_t i = 0; i < (size_t)NF * W * H * 3; i++) orig[i] = (uint8_t)fr.data[i];
    sam_resize_plan *plan = NULL;
    CHECK(sam_resize_plan_create(W, H, S, S, 3, &plan) == SAM2D_OK);
    for (int t = 0; t < NF; t++) {
        fo[t] = orig + (size_t)t * W * H * 3;
        fb[t] = big + (size_t)t * S * S * 3;
        CHECK(sam_resize_plan_run(plan, fo[t], big + (size_t)t * S * S * 3, NULL) == SAM2D_OK);
    }
    sam_resize_plan_free(plan);

    run_out a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    const size_t fa = run_session(m, fo, W, H, W, H, &a); /* kept at 320x240 */
    const size_t fbytes = run_session(m, fb, S, S, W, H, &b); /* given resized */
    printf("stored frames: %zu bytes at video size, %zu resized\n", fa, fbytes);
    CHECK(fa == (size_t)NF * W * H * 3);
    CHECK(fbytes == (size_t)NF * S * S * 3);
    int differ = 0;
    for (int t = 0; t < NF; t++) {
        CHECK_MSG(a.logits[t] && b.logits[t], "frame %d has no output", t);
        if (!a.logits[t] || !b.logits[t]) continue;
        if (memcmp(a.logits[t], b.logits[t], (size_t)W * H * sizeof(float)) || a.score[t] != b.score[t]) differ++;
    }
    CHECK_MSG(differ == 0, "%d frames differ between stored sizes (must be bit-for-bit)", differ);
    for (int t = 0; t < NF; t++) free(a.logits[t]), free(b.logits[t]);
    free(orig), free(big);
    sam_npy_free(&fr);
    sam2d_model_free(m);
    return test_finish();
}
