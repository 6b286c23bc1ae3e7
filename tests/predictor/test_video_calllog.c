/* The video session state machine against the reference's call log, on a
 * fake engine (no model): for every track_step of the golden scenarios the
 * same frame, flags, memory frames (with temporal-encoding index) and object
 * pointers (with temporal position), and every preflight memory encoding, in
 * the same order; every result and state dump produced under the manifest's
 * names. */
#include <jansson.h>

#include "model/track.h"
#include "sam2d/video_predictor.h"
#include "test_util.h"

#define MAX_LOG 512

typedef struct {
    char kind;  /* 't' track_step, 'm' preflight memory encoding */
    int frame;
    bool init, reverse, mask, prev, run_mem;
    int n_points;
    int n_mem, n_ptr;
    sam_mem_pick mem[32];
    sam_ptr_pick ptr[64];
} log_entry;

typedef struct {
    sam2d_model_config cfg;
    log_entry log[MAX_LOG];
    int n;
} fake;

static sam2d_status fake_features(void *ctx, const uint8_t *frame, float *buf, sam_track_feats *f) {
    (void)ctx, (void)frame, (void)buf;
    memset(f, 0, sizeof(*f));
    return SAM2D_OK;
}

static sam2d_status fake_step(void *ctx, const sam_track_feats *f, const sam_track_bank *bank,
                              const sam_track_step_in *in, sam_track_step_out *out) {
    fake *k = ctx;
    const int L = k->cfg.image_size / 4, C = k->cfg.d_model;
    if (k->n >= MAX_LOG) return SAM2D_ERR_LIMIT;
    log_entry *e = &k->log[k->n++];
    memset(e, 0, sizeof(*e));
    e->kind = 't';
    e->frame = in->frame_idx;
    e->init = in->is_init_cond_frame;
    e->reverse = in->reverse;
    e->mask = in->mask_input != NULL;
    e->prev = in->prev_mask_logits != NULL;
    e->run_mem = in->run_mem_encoder;
    e->n_points = in->has_points ? in->n_points : 0;
    e->n_mem = e->n_ptr = -1; /* no memory read */
    if (!in->is_init_cond_frame && !in->mask_input) {
        sam_mem_pick mem[64];
        sam_ptr_pick ptr[128];
        sam_track_select(&k->cfg, bank, in->frame_idx, in->reverse, mem, &e->n_mem, ptr, &e->n_ptr);
        for (int i = 0; i < e->n_mem && i < 32; i++) e->mem[i] = mem[i];
        for (int i = 0; i < e->n_ptr && i < 64; i++) e->ptr[i] = ptr[i];
        /* every picked frame must have an encoded memory, as in the reference */
        for (int i = 0; i < e->n_mem; i++) {
            const sam_frame_state *s = mem[i].cond ? bank->cond[mem[i].frame] : bank->non_cond[mem[i].frame];
            if (!s || !s->maskmem) return SAM2D_ERR_INTERNAL;
        }
    }
    for (int i = 0; i < L * L; i++) out->pred_masks[i] = 1.0f;
    for (int i = 0; i < C; i++) out->obj_ptr[i] = (float)in->frame_idx;
    out->object_score_logit = 1.0f;
    if (in->run_mem_encoder) memset(out->maskmem, 0, 2);
    (void)f;
    return SAM2D_OK;
}

static sam2d_status fake_encode(void *ctx, const sam_track_feats *f, const float *lowres, float score, bool pts,
                                uint16_t *maskmem) {
    fake *k = ctx;
    if (k->n >= MAX_LOG) return SAM2D_ERR_LIMIT;
    log_entry *e = &k->log[k->n++];
    memset(e, 0, sizeof(*e));
    e->kind = 'm';
    (void)f, (void)lowres, (void)score, (void)pts, (void)maskmem;
    return SAM2D_OK;
}

static bool jbool(json_t *o, const char *k) { return json_is_true(json_object_get(o, k)); }
static int jint(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

static void config_from_manifest(json_t *m, sam2d_model_config *c) {
    memset(c, 0, sizeof(*c));
    json_t *mo = json_object_get(m, "model"), *fl = json_object_get(mo, "flags_in_effect");
    c->image_size = jint(mo, "image_size");
    c->backbone_stride = jint(mo, "backbone_stride");
    c->d_model = jint(mo, "neck_d_model");
    c->mem_dim = jint(mo, "mem_dim");
    c->num_maskmem = jint(fl, "num_maskmem");
    c->max_cond_frames_in_attn = jint(fl, "max_cond_frames_in_attn");
    c->memory_temporal_stride_for_eval = jint(fl, "memory_temporal_stride_for_eval");
    c->use_obj_ptrs_in_encoder = jbool(fl, "use_obj_ptrs_in_encoder");
    c->max_obj_ptrs_in_encoder = jint(fl, "max_obj_ptrs_in_encoder");
    c->use_signed_tpos_enc_to_obj_ptrs = jbool(fl, "use_signed_tpos_enc_to_obj_ptrs");
    c->only_obj_ptrs_in_the_past_for_eval = jbool(fl, "only_obj_ptrs_in_the_past_for_eval");
    c->add_all_frames_to_correct_as_cond = jbool(fl, "add_all_frames_to_correct_as_cond");
    c->fill_hole_area = 0;
}

static void check_folder(const char *name) {
    char dir[1024], path[1100];
    snprintf(dir, sizeof(dir), "%s/golden/%s", SAM2D_TEST_DATA, name);
    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    CHECK_MSG(m != NULL, "%s: %s", path, jerr.text);
    if (!m) return;
    static fake k;
    memset(&k, 0, sizeof(k));
    config_from_manifest(m, &k.cfg);
    json_t *v = json_object_get(m, "video");
    const int T = jint(v, "frames"), S = k.cfg.image_size;
    uint8_t *frames = calloc((size_t)T * S * S * 3, 1);
    sam_video_engine eng = {.ctx = &k, .features = fake_features, .step = fake_step, .encode = fake_encode};
    struct sam2d_video_session *s = NULL;
    sam2d_status st = sam_video_session_create_engine(&k.cfg, &eng, frames, T, jint(v, "width"), jint(v, "height"),
                                                      0, 0, &s);
    CHECK(st == SAM2D_OK);
    sam2d_replay_video_stats stats;
    st = sam_replay_video_session(s, dir, NULL, &stats);
    CHECK_MSG(st == SAM2D_OK, "%s: replay failed: %s", name, sam2d_last_error());
    CHECK_MSG(stats.mismatched == 0, "%s: %d results differ in frame or objects", name, stats.mismatched);
    /* every logical result name and every state field of the manifest was produced */
    int want_results = 0, want_states = 0;
    json_t *vr = json_object_get(m, "video_results");
    for (size_t i = 0; i < json_array_size(vr); i++) {
        json_t *e = json_array_get(vr, i);
        if (json_object_get(e, "video_res_logits")) want_results++;
        want_results += (int)json_array_size(json_object_get(e, "updated_frames"));
    }
    json_t *dumps = json_object_get(json_object_get(m, "state_dumps"), "dumps");
    for (size_t i = 0; i < json_array_size(dumps); i++) {
        json_t *en = json_object_get(json_array_get(dumps, i), "entries");
        for (size_t j = 0; j < json_array_size(en); j++) {
            json_t *e = json_array_get(en, j);
            want_states += !!json_object_get(e, "pred_masks") + !!json_object_get(e, "object_score_logits") +
                           !!json_object_get(e, "obj_ptr") + !!json_object_get(e, "maskmem_features_bf16_as_f32");
        }
    }
    printf("%s: %d steps, %d/%d results, %d/%d state arrays\n", name, stats.steps, stats.results, want_results,
           stats.states, want_states);
    CHECK(stats.results == want_results);
    CHECK(stats.states == want_states);

    /* the call log, entry by entry */
    json_t *cl = json_object_get(m, "call_log");
    size_t n_ref = json_array_size(cl);
    CHECK_MSG((size_t)k.n == n_ref, "%s: %d engine calls, reference %zu", name, k.n, n_ref);
    int bad = 0;
    for (size_t i = 0; i < n_ref && i < (size_t)k.n; i++) {
        json_t *r = json_array_get(cl, i);
        const log_entry *e = &k.log[i];
        const char *kind = json_string_value(json_object_get(r, "kind"));
        const char *stp = json_string_value(json_object_get(r, "step"));
        bool ok;
        if (!strncmp(kind, "memory_encoder", 14)) {
            ok = e->kind == 'm';
        } else {
            ok = e->kind == 't' && e->frame == jint(r, "frame_idx") && e->init == jbool(r, "is_init_cond_frame") &&
                 e->reverse == jbool(r, "reverse") && e->n_points == jint(r, "n_points") &&
                 e->mask == jbool(r, "mask_input") && e->prev == jbool(r, "prev_sam_mask_logits") &&
                 e->run_mem == jbool(r, "run_mem_encoder");
            json_t *mf = json_object_get(r, "memory_frames"), *pf = json_object_get(r, "obj_ptr_frames");
            if (json_is_array(mf)) {
                ok = ok && e->n_mem == (int)json_array_size(mf);
                for (int j = 0; ok && j < e->n_mem; j++) {
                    json_t *x = json_array_get(mf, (size_t)j);
                    ok = e->mem[j].frame == jint(x, "frame") && e->mem[j].t_pos == jint(x, "t_pos") &&
                         e->mem[j].tpos_index == jint(x, "tpos_enc_index") && e->mem[j].cond == jbool(x, "cond");
                }
            } else {
                ok = ok && e->n_mem < 0;
            }
            if (json_is_array(pf)) {
                ok = ok && e->n_ptr == (int)json_array_size(pf);
                for (int j = 0; ok && j < e->n_ptr; j++) {
                    json_t *x = json_array_get(pf, (size_t)j);
                    ok = e->ptr[j].frame == jint(x, "frame") && e->ptr[j].pos == jint(x, "pos") &&
                         e->ptr[j].cond == jbool(x, "cond");
                }
            }
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s: call %zu (%s %s frame %d) differs: ours kind %c frame %d init %d rev %d pts %d "
                    "mask %d prev %d mem %d/%d ptr %d\n", name, i, stp, kind, jint(r, "frame_idx"), e->kind, e->frame,
                    e->init, e->reverse, e->n_points, e->mask, e->prev, e->run_mem, e->n_mem, e->n_ptr);
        CHECK(ok);
    }
    printf("%s: %zu call-log entries compared, %d differ\n", name, n_ref, bad);
    sam2d_video_session_free(s);
    free(frames);
    json_decref(m);
}

/* sam_get_1d_sine_pe: [sin | cos] halves, not interleaved. */
static void test_sine_pe(void) {
    float pos[2] = {0.0f, 0.5f}, out[2 * 8];
    sam_get_1d_sine_pe(pos, 2, 8, out);
    CHECK(out[0] == 0.0f && out[4] == 1.0f);              /* pos 0: sin 0 | cos 1 */
    CHECK(fabsf(out[8] - sinf(0.5f)) < 1e-7f);            /* dim_t[0] = 1 */
    CHECK(fabsf(out[8 + 4] - cosf(0.5f)) < 1e-7f);
    CHECK(fabsf(out[8 + 2] - sinf(0.5f / 100.0f)) < 1e-7f); /* dim_t[2] = 10000^(2/4) */
    CHECK(out[8 + 1] == out[8 + 0]);                      /* floor(j/2): pairs share a frequency */
}

/* The stage hook runs once per frame with an object to track, after the
 * frame's encoding and before its tracking step. */
static int hook_calls, hook_order_ok = 1;
static void count_stage(void *user) {
    const fake *k = user;
    int steps = 0;
    for (int i = 0; i < k->n; i++) steps += k->log[i].kind == 't';
    hook_order_ok = hook_order_ok && steps == hook_calls; /* no step of this frame yet */
    hook_calls++;
}

static int cancel_calls;
static int cancel_after_two(void *user, const sam2d_video_frame_result *r) {
    (void)user, (void)r;
    return ++cancel_calls >= 2;
}

/* Session memory grows by a fixed amount per tracked frame and object (the
 * documented bf16 memory + low-res logits + pointer + bookkeeping), and
 * re-tracking the same frames does not grow it. */
static size_t mem_seen[64];
static int mem_n;
static int record_mem(void *user, const sam2d_video_frame_result *r) {
    if (mem_n < 64) mem_seen[mem_n++] = sam2d_video_session_memory_bytes((const sam2d_video_session *)user);
    (void)r;
    return 0;
}

static void test_memory_growth(void) {
    static fake k;
    memset(&k, 0, sizeof(k));
    sam2d_model_config *c = &k.cfg;
    c->image_size = 256;
    c->backbone_stride = 16;
    c->d_model = 32;
    c->mem_dim = 16;
    c->num_maskmem = 7;
    c->max_cond_frames_in_attn = -1;
    c->memory_temporal_stride_for_eval = 1;
    c->use_obj_ptrs_in_encoder = true;
    c->max_obj_ptrs_in_encoder = 16;
    const int T = 12, S = 256;
    uint8_t *frames = calloc((size_t)T * S * S * 3, 1);
    sam_video_engine eng = {.ctx = &k, .features = fake_features, .step = fake_step, .encode = fake_encode};
    struct sam2d_video_session *s = NULL;
    CHECK(sam_video_session_create_engine(c, &eng, frames, T, 64, 48, 0, 0, &s) == SAM2D_OK);
    if (!s) return;
    float pt[2] = {10, 10};
    int lb = 1;
    CHECK(sam2d_video_add_points(s, 0, 7, pt, &lb, 1, NULL, true, NULL) == SAM2D_OK);
    mem_n = 0;
    CHECK(sam2d_video_propagate(s, 0, false, -1, record_mem, s) == SAM2D_OK);
    /* (S/16)^2 * mem_dim bf16 + (S/4)^2 float + d_model float, each 64-byte aligned, + the header */
    const size_t per_frame = 256 * 16 * 2 + 64 * 64 * 4 + 32 * 4 + 64;
    bool constant = mem_n == T;
    for (int i = 2; i < mem_n; i++) constant = constant && mem_seen[i] - mem_seen[i - 1] == per_frame;
    printf("session memory: %zu bytes after frame 0, +%zu per tracked frame per object (expected %zu)\n",
           mem_seen[0], mem_n > 2 ? mem_seen[2] - mem_seen[1] : 0, per_frame);
    CHECK(constant);
    /* clearing the prompts of a conditioning frame keeps its output as a plain
     * memory and forgets that the frame was tracked: the next click is an
     * initial conditioning frame again */
    sam2d_video_frame_state fs;
    CHECK(sam2d_video_get_state(s, 7, 0, &fs) == SAM2D_OK && fs.is_cond);
    sam2d_video_frame_result cr;
    CHECK(sam2d_video_clear_prompts(s, 0, 7, &cr) == SAM2D_OK && cr.num_objects == 1 && cr.frame_idx == 0);
    CHECK(sam2d_video_get_state(s, 7, 0, &fs) == SAM2D_OK && !fs.is_cond);
    k.n = 0;
    CHECK(sam2d_video_add_points(s, 0, 7, pt, &lb, 1, NULL, true, NULL) == SAM2D_OK);
    CHECK(k.n == 1 && k.log[0].init && k.log[0].prev); /* prev: the kept output feeds the click */
    /* a click on a tracked frame is a correction: non-conditioning, with the tracking direction */
    k.n = 0;
    CHECK(sam2d_video_add_points(s, 5, 7, pt, &lb, 1, NULL, true, NULL) == SAM2D_OK);
    CHECK(k.n == 1 && !k.log[0].init && !k.log[0].reverse && k.log[0].n_mem > 0);
    CHECK(sam2d_video_propagate(s, 0, false, -1, NULL, NULL) == SAM2D_OK);
    size_t after = sam2d_video_session_memory_bytes(s);
    int pf[4];
    CHECK(sam2d_video_prompt_frames(s, 7, pf, 4) == 2 && pf[0] == 0 && pf[1] == 5);
    CHECK(sam2d_video_prompt_frames(s, 8, pf, 4) == -1);
    sam2d_video_frame_result gr;
    CHECK(sam2d_video_get_frame(s, 3, &gr) == SAM2D_OK && gr.frame_idx == 3 && gr.num_objects == 1 &&
          gr.object_scores[0] == 1.0f && gr.logits[0] == 1.0f);
    k.n = 0;
    sam2d_video_set_stage_hook(s, count_stage, &k);
    CHECK(sam2d_video_propagate(s, 0, false, -1, NULL, NULL) == SAM2D_OK);
    sam2d_video_set_stage_hook(s, NULL, NULL);
    /* frame 0 is the only conditioning frame (the click on 5 was a correction) */
    CHECK_MSG(hook_calls == T - 1 && hook_order_ok, "stage hook: %d calls (want %d), order %s", hook_calls, T - 1,
              hook_order_ok ? "ok" : "wrong");
    CHECK(sam2d_video_session_memory_bytes(s) == after);
    /* reset gives everything per-frame back */
    CHECK(sam2d_video_reset(s) == SAM2D_OK);
    CHECK(sam2d_video_session_memory_bytes(s) < mem_seen[0]);
    /* cancel from the callback stops propagation with SAM2D_ERR_CANCELLED */
    CHECK(sam2d_video_add_points(s, 3, 7, pt, &lb, 1, NULL, true, NULL) == SAM2D_OK);
    CHECK(sam2d_video_propagate(s, -1, false, -1, cancel_after_two, NULL) == SAM2D_ERR_CANCELLED);
    CHECK(cancel_calls == 2);
    /* errors: unknown object, bad frame, box without clearing */
    CHECK(sam2d_video_clear_prompts(s, 0, 99, NULL) == SAM2D_ERR_NOT_FOUND);
    CHECK(sam2d_video_add_points(s, T, 7, pt, &lb, 1, NULL, true, NULL) == SAM2D_ERR_INVALID_ARG);
    float box[4] = {1, 1, 5, 5};
    CHECK(sam2d_video_add_points(s, 0, 7, NULL, NULL, 0, box, false, NULL) == SAM2D_ERR_INVALID_ARG);
    CHECK(sam2d_video_remove_object(s, 12345) == SAM2D_OK);
    CHECK(sam2d_video_remove_object(s, 7) == SAM2D_OK && sam2d_video_num_objects(s) == 0);
    CHECK(sam2d_video_propagate(s, -1, false, -1, NULL, NULL) == SAM2D_ERR_STATE);
    sam2d_video_session_free(s);
    free(frames);
}

int main(void) {
    test_sine_pe();
    test_memory_growth();
    check_folder("micro");
    check_folder("shapes");
    return test_finish();
}
