/* The video predictor on the devsim back end (ops/devsim.h): every tensor of
 * the model in buffers that host code cannot touch.
 *  - the golden video scenario: bit-identical to the cpu run and within the
 *    golden tolerance (video_golden_device.h);
 *  - a session's device buffers: a frame state per tracked frame and object,
 *    all of them back after reset (but the session's fixed ones) and after
 *    the session is freed. */
#include "core/npy.h"
#include "model/model.h"
#include "model/golden_set.h" /* tests/model */
#include "ops/devsim.h"
#include "video_golden_device.h"

static void test_session_buffers(void) {
    sam2d_model_config cfg;
    sam2d_checkpoint *ck = NULL;
    if (!golden_set_load("micro", &cfg, &ck)) return;
    sam_backend *be = sam_backend_devsim_create(2, SAM_PRECISION_FP32);
    CHECK(be != NULL);
    sam2d_model *m = NULL;
    sam2d_status st = be ? sam_model_create(&cfg, ck, be, true, &m) : SAM2D_ERR_NOMEM;
    CHECK_MSG(st == SAM2D_OK, "model: %s", sam2d_last_error());
    sam_npy fr;
    memset(&fr, 0, sizeof fr);
    if (st == SAM2D_OK) st = sam_npy_read(SAM2D_TEST_DATA "/golden/micro/frames_resized_u8.npy", &fr);
    CHECK(st == SAM2D_OK);
    if (st != SAM2D_OK) {
        sam2d_model_free(m);
        sam2d_checkpoint_free(ck);
        return;
    }
    const int T = (int)fr.shape[0], S = (int)fr.shape[1], NF = 4;
    uint8_t *u8 = malloc((size_t)fr.count);
    const uint8_t **frames = malloc(sizeof(uint8_t *) * (size_t)T);
    for (int64_t i = 0; i < fr.count; i++) u8[i] = (uint8_t)fr.data[i];
    for (int t = 0; t < T; t++) frames[t] = u8 + (size_t)t * S * S * 3;

    const size_t model_bytes = sam_devsim_bytes_in_use(be);
    sam2d_video_session *s = NULL;
    st = sam2d_video_session_create(m, frames, NF, S, S, 320, 240, NULL, &s);
    CHECK_MSG(st == SAM2D_OK, "session: %s", sam2d_last_error());
    const size_t session_bytes = sam_devsim_bytes_in_use(be);
    if (s) {
        float pt[2][2] = {{95, 115}, {200, 70}};
        int lb = 1;
        CHECK(sam2d_video_add_points(s, 0, 1, pt[0], &lb, 1, NULL, true, NULL) == SAM2D_OK);
        CHECK(sam2d_video_add_points(s, 0, 2, pt[1], &lb, 1, NULL, true, NULL) == SAM2D_OK);
        CHECK(sam2d_video_propagate(s, -1, false, -1, NULL, NULL) == SAM2D_OK);
        const size_t tracked = sam_devsim_bytes_in_use(be);
        sam_video_session_census c;
        sam_video_session_memory_census(s, &c);
        const size_t data = c.state_bytes - 64; /* the state's buffer; its 64-byte header is host memory */
        printf("devsim buffers: model %zu, session %zu, after tracking %d frames x 2 objects %zu (+%lld states "
               "of %zu bytes)\n",
               model_bytes, session_bytes - model_bytes, NF, tracked, (long long)c.n_states, data);
        CHECK(c.n_states == 2 * NF);
        /* devsim rounds each buffer up to its alignment (at most 256 bytes more) */
        const size_t grown = tracked - session_bytes, want = (size_t)c.n_states * data;
        CHECK_MSG(grown >= want && grown <= want + (size_t)c.n_states * 256,
                  "states' buffers: %zu bytes, expected %zu (+ alignment)", grown, want);
        /* re-tracking reuses freed states' buffers: nothing grows */
        CHECK(sam2d_video_add_points(s, 2, 1, pt[0], &lb, 1, NULL, true, NULL) == SAM2D_OK);
        CHECK(sam2d_video_propagate(s, -1, false, -1, NULL, NULL) == SAM2D_OK);
        CHECK(sam2d_video_propagate(s, -1, false, -1, NULL, NULL) == SAM2D_OK);
        const size_t again = sam_devsim_bytes_in_use(be);
        sam_video_session_memory_census(s, &c);
        CHECK_MSG(again <= session_bytes + (size_t)(c.n_states + 4) * (data + 256), "after re-tracking: %zu bytes",
                  again);
        /* a copy of a stored state comes out through the public reader */
        sam2d_video_frame_state fs;
        CHECK(sam2d_video_get_state(s, 1, 3, &fs) == SAM2D_OK && fs.has_maskmem && !fs.is_cond);
        float *pm = malloc((size_t)fs.low_res * fs.low_res * sizeof(float));
        uint16_t *mm = malloc((size_t)fs.mem_tokens * fs.mem_dim * sizeof(uint16_t));
        CHECK(sam2d_video_read_state(s, 1, 3, pm, NULL, mm) == SAM2D_OK);
        bool finite = true;
        for (int i = 0; i < fs.low_res * fs.low_res; i++) finite = finite && isfinite(pm[i]);
        CHECK(finite);
        free(pm);
        free(mm);
        CHECK(sam2d_video_reset(s) == SAM2D_OK);
        CHECK_MSG(sam_devsim_bytes_in_use(be) == session_bytes, "after reset: %zu bytes, expected %zu",
                  sam_devsim_bytes_in_use(be), session_bytes);
    }
    sam2d_video_session_free(s);
    CHECK_MSG(sam_devsim_bytes_in_use(be) == model_bytes, "after the session: %zu bytes, expected %zu",
              sam_devsim_bytes_in_use(be), model_bytes);
    sam_npy_free(&fr);
    free(u8);
    free(frames);
    sam2d_model_free(m);
    sam2d_checkpoint_free(ck);
}

int main(void) {
    test_session_buffers();
    int fails = video_golden_on_device("devsim");
    printf("devsim video golden: %d failure(s)\n", fails);
    return test_finish();
}
