/* The video predictor under other flag sets than the golden runs, on a micro
 * model with random weights: SAM 2.0 flags (unsigned, unprojected pointer
 * temporal encodings, no no_obj_embed_spatial), and a variant with a linear
 * pointer projection, no object-score head, temporal stride 2, at most 2
 * conditioning frames, single-mask tracking, non-overlapping masks and hole
 * filling; and one where a user's mask is a prompt to the heads, with soft
 * object presence. The golden scenario and a reverse-first propagation (frames ahead
 * of the only prompt, where no object pointer exists yet: the reference's
 * float32 CPU path fails there) must run and give finite outputs. Each
 * variant runs on the cpu and on devsim (every tensor in buffers host code
 * cannot touch): the results must be bit-identical (hashes compared). */
#include "model/model.h"
#include "model/track.h"
#include "model/weights.h"
#include "core/npy.h"
#include "sam2d/video_predictor.h"
#include "test_util.h"

static bool finite_ok;
static int frames_seen;
static uint64_t out_hash; /* FNV-1a over every result seen: the cpu and devsim runs must agree bit for bit */

static void hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) out_hash = (out_hash ^ b[i]) * 1099511628211ULL;
}

static void hash_result(const sam2d_video_session *s, const sam2d_video_frame_result *r) {
    hash_bytes(&r->frame_idx, sizeof r->frame_idx);
    hash_bytes(r->logits, (size_t)r->num_objects * sam2d_video_width(s) * sam2d_video_height(s) * sizeof(float));
    hash_bytes(r->object_scores, (size_t)r->num_objects * sizeof(float));
}

static int check_finite(void *user, const sam2d_video_frame_result *r) {
    const sam2d_video_session *s = user;
    int64_t n = (int64_t)r->num_objects * sam2d_video_width(s) * sam2d_video_height(s);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(r->logits[i])) finite_ok = false;
    for (int i = 0; i < r->num_objects; i++)
        if (!isfinite(r->object_scores[i])) finite_ok = false;
    hash_result(s, r);
    frames_seen++;
    return 0;
}

/* The scenario and two propagations of one flag variant on a device; returns the hash of every result. */
static uint64_t run_variant(const char *name, void (*tweak)(sam2d_model_config *), const char *device) {
    out_hash = 1469598103934665603ULL;
    sam2d_model_config cfg;
    sam2d_status st = sam2d_config_load_yaml(SAM2D_TEST_DATA "/golden/micro/config.yaml", &cfg);
    CHECK_MSG(st == SAM2D_OK, "config: %s", sam2d_last_error());
    if (st != SAM2D_OK) return 0;
    tweak(&cfg);
    sam_backend *be = sam_backend_create(device, 2, SAM_PRECISION_FP32);
    CHECK_MSG(be != NULL, "%s: back end %s: %s", name, device, sam2d_last_error());
    if (!be) return 0;
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 11, 0.05f, NULL);
    sam2d_model *m = NULL;
    st = sam_model_build(&cfg, &L, be, true, &m);
    CHECK_MSG(st == SAM2D_OK, "%s: model: %s", name, sam2d_last_error());
    if (st != SAM2D_OK) return 0;
    CHECK_MSG(m->tracker != NULL, "%s: the model has no tracker", name);
    sam_npy fr;
    CHECK(sam_npy_read(SAM2D_TEST_DATA "/golden/micro/frames_resized_u8.npy", &fr) == SAM2D_OK);
    const int T = (int)fr.shape[0], S = (int)fr.shape[1];
    uint8_t *u8 = malloc((size_t)fr.count);
    const uint8_t **frames = malloc(sizeof(uint8_t *) * (size_t)T);
    for (int64_t i = 0; i < fr.count; i++) u8[i] = (uint8_t)fr.data[i];
    for (int t = 0; t < T; t++) frames[t] = u8 + (size_t)t * S * S * 3;
    sam2d_video_session *s = NULL;
    if (st == SAM2D_OK) st = sam2d_video_session_create(m, frames, T, S, S, 320, 240, NULL, &s);
    CHECK_MSG(s != NULL, "%s: session: %s", name, sam2d_last_error());
    if (s) {
        sam2d_replay_video_stats stats;
        st = sam_replay_video_session(s, SAM2D_TEST_DATA "/golden/micro", NULL, &stats);
        CHECK_MSG(st == SAM2D_OK, "%s: scenario: %s", name, sam2d_last_error());
        printf("%s on %s: scenario %d steps, %d results\n", name, device, stats.steps, stats.results);
        /* what the scenario left on every frame (masks downloaded, upsampled, post-processed) */
        for (int f = 0; f < T; f++) {
            sam2d_video_frame_result r;
            CHECK(sam2d_video_get_frame(s, f, &r) == SAM2D_OK);
            hash_result(s, &r);
        }
        /* reverse-first: the only prompt on frame 5, propagation starts at 9 backwards */
        CHECK(sam2d_video_reset(s) == SAM2D_OK);
        float pt[2] = {160, 120};
        int lb = 1;
        CHECK(sam2d_video_add_points(s, 5, 1, pt, &lb, 1, NULL, true, NULL) == SAM2D_OK);
        CHECK(sam2d_video_add_points(s, 5, 2, pt, &lb, 1, NULL, true, NULL) == SAM2D_OK);
        finite_ok = true;
        frames_seen = 0;
        st = sam2d_video_propagate(s, 9, true, -1, check_finite, s);
        CHECK_MSG(st == SAM2D_OK, "%s: reverse-first: %s", name, sam2d_last_error());
        CHECK(frames_seen == 10 && finite_ok);
        /* then forward with max_frames: frames 5..7 */
        frames_seen = 0;
        CHECK(sam2d_video_propagate(s, -1, false, 2, check_finite, s) == SAM2D_OK);
        CHECK(frames_seen == 3 && finite_ok);
    }
    sam2d_video_session_free(s);
    sam_npy_free(&fr);
    free(u8);
    free(frames);
    sam2d_model_free(m);
    return out_hash;
}

static void sam20(sam2d_model_config *c) {
    c->no_obj_embed_spatial = false;
    c->proj_tpos_enc_in_obj_ptrs = false;
    c->use_signed_tpos_enc_to_obj_ptrs = false;
}

static void other(sam2d_model_config *c) {
    sam20(c);
    c->use_mlp_for_obj_ptr_proj = false;
    c->pred_obj_scores = false;
    c->pred_obj_scores_mlp = false;
    c->fixed_no_obj_ptr = false;
    c->memory_temporal_stride_for_eval = 2;
    c->max_cond_frames_in_attn = 2;
    c->multimask_output_for_tracking = false;
    c->non_overlap_masks = true;
    c->fill_hole_area = 8;
    c->binarize_mask_from_pts_for_mem_enc = false;
    c->add_tpos_enc_to_obj_ptrs = false;
}

/* A user's mask as a prompt to the heads (antialiased down to S/4) instead
 * of the output itself; soft object presence without the fixed pointer; one
 * object-pointer token whatever the mask count. */
static void mask_prompt(sam2d_model_config *c) {
    c->use_mask_input_as_output_without_sam = false;
    c->soft_no_obj_ptr = true;
    c->fixed_no_obj_ptr = false;
    c->use_multimask_token_for_obj_ptr = false;
}

/* Each variant on the cpu and on devsim (the device-memory rule enforced):
 * the same kernels, so every result must be bit-identical. */
static void both(const char *name, void (*tweak)(sam2d_model_config *)) {
    uint64_t a = run_variant(name, tweak, "cpu");
    uint64_t b = run_variant(name, tweak, "devsim");
    printf("%s: results hash cpu %016llx, devsim %016llx\n", name, (unsigned long long)a, (unsigned long long)b);
    CHECK_MSG(a == b, "%s: devsim results differ from the cpu's", name);
}

int main(void) {
    both("sam2.0 flags", sam20);
    both("other flags", other);
    both("mask prompt flags", mask_prompt);
    return test_finish();
}
