/* The video predictor's state machine (SAM2VideoPredictor, 12/2024): prompts,
 * per-object output dicts (cond / non-cond, temporary and consolidated),
 * preflight memory encoding, propagation, clearing, reset, removal. The model
 * work is delegated to a sam_video_engine (track.h). */
#include "sam2d/video_predictor.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "media/resize_pil.h"
#include "model/preprocess.h"
#include "model/track.h"
#include "predictor/postprocess.h"

sam2d_status (*sam_video_engine_hook)(struct sam2d_model *model, sam_video_engine *eng) = sam_video_model_engine;

enum { TRACK_NONE = 0, TRACK_FWD = 1, TRACK_REV = 2 };

typedef struct {
    int id;
    /* the reference's dicts keyed by frame, as (T) arrays of owned states */
    sam_frame_state **out_cond, **out_nc, **tmp_cond, **tmp_nc;
    int *cond_order;       /* (T) insertion order of out_cond keys */
    int n_cond;
    uint8_t *tracked;      /* (T) frames_tracked_per_obj: TRACK_* */
    float **pts;           /* (T) point_inputs coords (n, 2) in model pixels, or NULL */
    int **lbl;             /* (T) labels (n) */
    int *npts;             /* (T) */
    uint8_t *has_mask;     /* (T) mask_inputs_per_obj keys */
} vobj;

struct sam2d_video_session {
    sam2d_model_config cfg;
    sam_video_engine eng;
    sam_backend *be;           /* eng.be: where features and frame states live (NULL: host memory) */
    int T, vw, vh, S, L, C, D, hw;
    /* Frames as stored: one smaller than S x S stays at its own size (fh, fw, 3)
     * and is resized when encoded (the same bytes the upload-time resize gave);
     * a larger one is resized to (S, S, 3) once. NULL: never set (zeros). */
    uint8_t **frames;          /* (T) */
    int *frame_w, *frame_h;    /* (T) stored size */
    size_t frames_bytes;       /* sum of the stored frames */
    uint8_t *frame_s;          /* (S, S, 3) the frame being encoded, when stored smaller */
    sam_resize_plan *plan;     /* resize of the last stored size (a video's frames share one) */
    size_t plan_bytes;         /* its work buffer */
    int plan_w, plan_h;
    int fill_hole_area;
    bool non_overlap;
    vobj *objs;
    int n_obj, cap_obj;
    int *obj_ids;              /* (cap_obj) */
    float *feat_buf;           /* (eng.feat_floats) buffer: features of the cached frame */
    int cached_frame;
    sam_track_feats feats;
    float *res_logits;         /* (cap_obj, vh, vw) */
    float *res_scores;         /* (cap_obj) */
    float *mask_s;             /* (S, S) a mask prompt; allocated by the first one */
    float *mask_f;             /* (mask area) grows with the largest mask given */
    size_t mask_f_cap;
    float *prev_logits;        /* (L, L) buffer: a click's clamped previous logits */
    float *low_host;           /* (L, L) host: one state's low-res logits, downloaded */
    const sam_frame_state *low_host_of; /* whose logits low_host holds now, or NULL */
    void *spare[4];            /* freed state buffers kept for the next states (a re-tracked frame
                                * frees one and makes one per step; a GPU's free waits for it) */
    int n_spare;
    int *up_y, *up_x;          /* (vh, 2), (vw, 2): source rows / columns of the video-res upsample */
    float *up_wy, *up_wx;      /* (vh, 2), (vw, 2): their weights */
    void *cc_scratch;          /* fill holes on (L, L) */
    size_t state_bytes;        /* bytes of one stored frame state */
    int64_t n_states;
    size_t fixed_bytes;
    atomic_int cancel;
    sam2d_video_stage_fn stage_hook; /* between encoder and tracking step in propagate, or NULL */
    void *stage_user;
    sam2d_video_stats stats;   /* time inside the engine, excluding waits for the model lock */
};

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------- memory of the session ----------------
 * Features and frame states are buffers of the engine's back end (device
 * memory on a GPU); without one (fake engines) plain host memory. Host code
 * moves them only with these. */

static void *sbuf_new(const sam2d_video_session *s, size_t bytes) {
    if (!bytes) bytes = 64;
    return s->be ? s->be->buf_alloc(s->be, bytes) : sam_malloc(bytes);
}
static void sbuf_del(const sam2d_video_session *s, void *p) {
    if (!p) return;
    if (s->be) s->be->buf_free(s->be, p);
    else sam_free(p);
}
static void s_to_host(const sam2d_video_session *s, void *dst, const void *src, size_t bytes) {
    if (s->be) s->be->to_host(s->be, dst, src, bytes);
    else memcpy(dst, src, bytes);
}
static void s_to_dev(const sam2d_video_session *s, void *dst, const void *src, size_t bytes) {
    if (s->be) s->be->to_dev(s->be, dst, src, bytes);
    else memcpy(dst, src, bytes);
}

/* ---------------- frame states ---------------- */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* One buffer per state: [pred_masks (L, L) | obj_ptr (C) | maskmem (h*w, D) bf16]. */
static size_t state_data_bytes(const sam2d_video_session *s) {
    return align64((size_t)s->L * s->L * sizeof(float)) + align64((size_t)s->C * sizeof(float)) +
           align64((size_t)s->hw * s->D * sizeof(uint16_t));
}

static sam_frame_state *state_new(sam2d_video_session *s) {
    sam_frame_state *st = sam_calloc(1, sizeof(*st));
    if (!st) return NULL;
    char *p;
    if (s->n_spare > 0) {
        p = s->spare[--s->n_spare];
        s->fixed_bytes -= state_data_bytes(s);
    } else if (!(p = sbuf_new(s, state_data_bytes(s)))) {
        sam_free(st);
        return NULL;
    }
    st->pred_masks = (float *)p;
    st->obj_ptr = (float *)(p + align64((size_t)s->L * s->L * sizeof(float)));
    st->maskmem = NULL; /* set when encoded; its part of the buffer follows obj_ptr */
    s->n_states++;
    return st;
}

static uint16_t *state_mm_buf(const sam2d_video_session *s, sam_frame_state *st) {
    return (uint16_t *)((char *)st->obj_ptr + align64((size_t)s->C * sizeof(float)));
}

static void state_free(sam2d_video_session *s, sam_frame_state *st) {
    if (!st) return;
    if (s->low_host_of == st) s->low_host_of = NULL; /* its address may come back */
    if (s->n_spare < (int)(sizeof s->spare / sizeof s->spare[0])) {
        s->spare[s->n_spare++] = st->pred_masks;
        s->fixed_bytes += state_data_bytes(s);
    } else {
        sbuf_del(s, st->pred_masks);
    }
    sam_free(st);
    s->n_states--;
}

/* The low-res logits of st in s->low_host: one download per state shown. */
static const float *state_low_host(sam2d_video_session *s, const sam_frame_state *st) {
    if (s->low_host_of != st) {
        s_to_host(s, s->low_host, st->pred_masks, (size_t)s->L * s->L * sizeof(float));
        s->low_host_of = st;
    }
    return s->low_host;
}

static void slot_set(sam2d_video_session *s, sam_frame_state **slot, sam_frame_state *st) {
    if (*slot && *slot != st) state_free(s, *slot);
    *slot = st;
}

/* ---------------- objects ---------------- */

static void obj_clear_frame_inputs(vobj *o, int f) {
    sam_free(o->pts[f]);
    sam_free(o->lbl[f]);
    o->pts[f] = NULL;
    o->lbl[f] = NULL;
    o->npts[f] = 0;
}

static void cond_remove(vobj *o, int f) {
    for (int i = 0; i < o->n_cond; i++)
        if (o->cond_order[i] == f) {
            memmove(o->cond_order + i, o->cond_order + i + 1, (size_t)(o->n_cond - i - 1) * sizeof(int));
            o->n_cond--;
            return;
        }
}

/* dict assignment: a new key goes last, an existing key keeps its place */
static void cond_put(sam2d_video_session *s, vobj *o, int f, sam_frame_state *st) {
    if (!o->out_cond[f]) o->cond_order[o->n_cond++] = f;
    slot_set(s, &o->out_cond[f], st);
}

static void obj_reset_results(sam2d_video_session *s, vobj *o) {
    for (int f = 0; f < s->T; f++) {
        slot_set(s, &o->out_cond[f], NULL);
        slot_set(s, &o->out_nc[f], NULL);
        slot_set(s, &o->tmp_cond[f], NULL);
        slot_set(s, &o->tmp_nc[f], NULL);
        obj_clear_frame_inputs(o, f);
        o->has_mask[f] = 0;
        o->tracked[f] = TRACK_NONE;
    }
    o->n_cond = 0;
}

static void obj_free(sam2d_video_session *s, vobj *o) {
    if (!o->out_cond) return;
    obj_reset_results(s, o);
    sam_free(o->out_cond);
    sam_free(o->out_nc);
    sam_free(o->tmp_cond);
    sam_free(o->tmp_nc);
    sam_free(o->cond_order);
    sam_free(o->tracked);
    sam_free(o->pts);
    sam_free(o->lbl);
    sam_free(o->npts);
    sam_free(o->has_mask);
    memset(o, 0, sizeof(*o));
}

static int obj_index(const sam2d_video_session *s, int obj_id) {
    for (int i = 0; i < s->n_obj; i++)
        if (s->objs[i].id == obj_id) return i;
    return -1;
}

static sam2d_status obj_get_or_add(sam2d_video_session *s, int obj_id, int *idx) {
    int i = obj_index(s, obj_id);
    if (i >= 0) {
        *idx = i;
        return SAM2D_OK;
    }
    if (s->n_obj == s->cap_obj) {
        int cap = s->cap_obj ? s->cap_obj * 2 : 1; /* video-res logits per slot: no spare ones up front */
        vobj *no = sam_realloc(s->objs, (size_t)cap * sizeof(vobj));
        if (!no) return SAM_ERR(SAM2D_ERR_NOMEM, "objects");
        s->objs = no;
        int *ids = sam_realloc(s->obj_ids, (size_t)cap * sizeof(int));
        if (!ids) return SAM_ERR(SAM2D_ERR_NOMEM, "objects");
        s->obj_ids = ids;
        float *rs = sam_realloc(s->res_scores, (size_t)cap * sizeof(float));
        if (!rs) return SAM_ERR(SAM2D_ERR_NOMEM, "objects");
        s->res_scores = rs;
        float *rl = sam_realloc(s->res_logits, (size_t)cap * s->vh * s->vw * sizeof(float));
        if (!rl) return SAM_ERR(SAM2D_ERR_NOMEM, "result buffer for %d objects", cap);
        s->res_logits = rl;
        s->cap_obj = cap;
    }
    vobj *o = &s->objs[s->n_obj];
    memset(o, 0, sizeof(*o));
    const size_t T = (size_t)s->T;
    o->id = obj_id;
    o->out_cond = sam_calloc(T, sizeof(void *));
    o->out_nc = sam_calloc(T, sizeof(void *));
    o->tmp_cond = sam_calloc(T, sizeof(void *));
    o->tmp_nc = sam_calloc(T, sizeof(void *));
    o->cond_order = sam_calloc(T, sizeof(int));
    o->tracked = sam_calloc(T, 1);
    o->pts = sam_calloc(T, sizeof(float *));
    o->lbl = sam_calloc(T, sizeof(int *));
    o->npts = sam_calloc(T, sizeof(int));
    o->has_mask = sam_calloc(T, 1);
    if (!o->out_cond || !o->out_nc || !o->tmp_cond || !o->tmp_nc || !o->cond_order || !o->tracked || !o->pts ||
        !o->lbl || !o->npts || !o->has_mask) {
        void *arrs[] = {o->out_cond, o->out_nc, o->tmp_cond, o->tmp_nc, o->cond_order,
                        o->tracked, o->pts, o->lbl, o->npts, o->has_mask};
        for (size_t k = 0; k < sizeof(arrs) / sizeof(arrs[0]); k++) sam_free(arrs[k]);
        memset(o, 0, sizeof(*o));
        return SAM_ERR(SAM2D_ERR_NOMEM, "object %d", obj_id);
    }
    s->obj_ids[s->n_obj] = obj_id;
    *idx = s->n_obj++;
    return SAM2D_OK;
}

static sam_track_bank obj_bank(const sam2d_video_session *s, const vobj *o) {
    sam_track_bank b = {.num_frames = s->T,
                        .n_cond = o->n_cond,
                        .cond_frames = o->cond_order,
                        .cond = (const sam_frame_state *const *)o->out_cond,
                        .non_cond = (const sam_frame_state *const *)o->out_nc};
    return b;
}

/* ---------------- engine calls ---------------- */

/* Frame f as the (S, S, 3) picture the encoder takes. */
static sam2d_status frame_pixels(sam2d_video_session *s, int f, const uint8_t **out) {
    const int S = s->S;
    const uint8_t *src = s->frames[f];
    if (src && s->frame_w[f] == S && s->frame_h[f] == S) {
        *out = src;
        return SAM2D_OK;
    }
    if (!s->frame_s) {
        s->frame_s = sam_malloc((size_t)S * S * 3);
        if (!s->frame_s) return SAM_ERR(SAM2D_ERR_NOMEM, "video session: frame buffer");
        s->fixed_bytes += (size_t)S * S * 3;
    }
    *out = s->frame_s;
    if (!src) {
        memset(s->frame_s, 0, (size_t)S * S * 3);
        return SAM2D_OK;
    }
    if (!s->plan || s->plan_w != s->frame_w[f] || s->plan_h != s->frame_h[f]) {
        sam_resize_plan_free(s->plan);
        s->fixed_bytes -= s->plan_bytes;
        s->plan = NULL;
        s->plan_bytes = 0;
        SAM_TRY(sam_resize_plan_create(s->frame_w[f], s->frame_h[f], S, S, 3, &s->plan));
        s->plan_bytes = sam_resize_plan_scratch_bytes(s->plan);
        s->fixed_bytes += s->plan_bytes;
        s->plan_w = s->frame_w[f];
        s->plan_h = s->frame_h[f];
    }
    return sam_resize_plan_run(s->plan, src, s->frame_s, NULL);
}

static sam2d_status get_features(sam2d_video_session *s, int f) {
    if (s->cached_frame == f) return SAM2D_OK;
    s->cached_frame = -1;
    const uint8_t *img = NULL;
    SAM_TRY(frame_pixels(s, f, &img));
    if (s->eng.lock) s->eng.lock(s->eng.ctx);
    double t0 = mono_now();
    sam2d_status st = s->eng.features(s->eng.ctx, img, s->feat_buf, &s->feats);
    s->stats.encoder_s += mono_now() - t0;
    s->stats.encoder_calls++;
    if (s->eng.unlock) s->eng.unlock(s->eng.ctx);
    if (st == SAM2D_OK) s->cached_frame = f; /* the reference caches one frame */
    return st;
}

/* _run_single_frame_inference for one object; *res receives a new state. */
static sam2d_status run_single(sam2d_video_session *s, vobj *o, int f, bool init_cond, bool reverse,
                               const float *pts, const int *lbl, int npts, bool has_pts, const float *mask_s,
                               bool run_mem, const float *prev_logits, sam_frame_state **res) {
    *res = NULL;
    SAM_TRY(get_features(s, f));
    sam_frame_state *st = state_new(s);
    if (!st) return SAM_ERR(SAM2D_ERR_NOMEM, "frame state");
    sam_track_bank bank = obj_bank(s, o);
    sam_track_step_in in = {.frame_idx = f,
                            .is_init_cond_frame = init_cond,
                            .reverse = reverse,
                            .point_coords = pts,
                            .point_labels = lbl,
                            .n_points = npts,
                            .has_points = has_pts,
                            .mask_input = mask_s,
                            .prev_mask_logits = prev_logits,
                            .run_mem_encoder = run_mem};
    sam_track_step_out out;
    memset(&out, 0, sizeof(out));
    out.pred_masks = st->pred_masks;
    out.obj_ptr = st->obj_ptr;
    out.maskmem = state_mm_buf(s, st);
    if (s->eng.lock) s->eng.lock(s->eng.ctx);
    double t0 = mono_now();
    sam2d_status rc = s->eng.step(s->eng.ctx, &s->feats, &bank, &in, &out);
    s->stats.step_s += mono_now() - t0;
    s->stats.step_calls++;
    if (s->eng.unlock) s->eng.unlock(s->eng.ctx);
    if (rc != SAM2D_OK) {
        state_free(s, st);
        return rc;
    }
    if (run_mem && s->cfg.num_maskmem > 0) st->maskmem = state_mm_buf(s, st);
    st->object_score_logit = out.object_score_logit;
    if (s->fill_hole_area > 0) {
        /* connected components on the host (as the reference's own extension
         * does on its device): down, filled, up; the host copy serves the output */
        const size_t lb = (size_t)s->L * s->L * sizeof(float);
        s_to_host(s, s->low_host, st->pred_masks, lb);
        sam_fill_holes(s->low_host, s->L, s->L, s->fill_hole_area, s->cc_scratch);
        s_to_dev(s, st->pred_masks, s->low_host, lb);
        s->low_host_of = st;
    }
    *res = st;
    return SAM2D_OK;
}

/* ---------------- outputs ---------------- */

/* Bilinear (align_corners=False, no antialias) index/weight table of one axis,
 * with torch's float32 steps: src = max(scale * (i + 0.5) - 0.5, 0). */
static void linear_axis(int in, int out, int *idx, float *w) {
    const float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float src = scale * ((float)i + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int i0 = (int)src;
        if (i0 > in - 1) i0 = in - 1;
        float l1 = src - (float)i0;
        idx[2 * i] = i0;
        idx[2 * i + 1] = i0 + (i0 < in - 1 ? 1 : 0);
        w[2 * i] = 1.0f - l1;
        w[2 * i + 1] = l1;
    }
}

/* Low-res (L, L) logits -> (vh, vw), the same products and sums as torch's
 * CPU kernel (rows outer), without fused multiply-adds, so results match bit for bit. */
__attribute__((optimize("fp-contract=off"))) static void upsample_video(const sam2d_video_session *s,
                                                                        const float *x, float *y) {
    const int L = s->L;
    for (int oy = 0; oy < s->vh; oy++) {
        const float *r0 = x + (int64_t)s->up_y[2 * oy] * L, *r1 = x + (int64_t)s->up_y[2 * oy + 1] * L;
        const float h0 = s->up_wy[2 * oy], h1 = s->up_wy[2 * oy + 1];
        float *dst = y + (int64_t)oy * s->vw;
        for (int ox = 0; ox < s->vw; ox++) {
            const int a = s->up_x[2 * ox], b = s->up_x[2 * ox + 1];
            const float w0 = s->up_wx[2 * ox], w1 = s->up_wx[2 * ox + 1];
            float t0 = r0[a] * w0;
            t0 += r0[b] * w1;
            float t1 = r1[a] * w0;
            t1 += r1[b] * w1;
            float o = t0 * h0;
            o += t1 * h1;
            dst[ox] = o;
        }
    }
}

static void fill_result(sam2d_video_session *s, int f, sam2d_video_frame_result *r) {
    if (s->non_overlap) sam_non_overlap(s->res_logits, s->n_obj, (int64_t)s->vh * s->vw);
    if (!r) return;
    r->frame_idx = f;
    r->num_objects = s->n_obj;
    r->obj_ids = s->obj_ids;
    r->logits = s->res_logits;
    r->object_scores = s->res_scores;
}

static void put_object_output(sam2d_video_session *s, int i, const sam_frame_state *st) {
    float *dst = s->res_logits + (size_t)i * s->vh * s->vw;
    if (!st) {
        for (int64_t k = 0; k < (int64_t)s->vh * s->vw; k++) dst[k] = SAM_NO_OBJ_SCORE;
        s->res_scores[i] = SAM_NO_OBJ_SCORE;
        return;
    }
    /* straight from the low-res logits, bilinear without antialias (as the reference) */
    upsample_video(s, state_low_host(s, st), dst);
    s->res_scores[i] = st->object_score_logit;
}

/* _consolidate_temp_output_across_obj at video resolution + _get_orig_video_res_output */
static void consolidate(sam2d_video_session *s, int f, bool is_cond, sam2d_video_frame_result *r) {
    for (int i = 0; i < s->n_obj; i++) {
        vobj *o = &s->objs[i];
        const sam_frame_state *st = is_cond ? o->tmp_cond[f] : o->tmp_nc[f];
        if (!st) st = o->out_cond[f];
        if (!st) st = o->out_nc[f];
        put_object_output(s, i, st);
    }
    fill_result(s, f, r);
}

/* ---------------- session ---------------- */

sam2d_video_params sam2d_video_default_params(void) {
    sam2d_video_params p = {.fill_hole_area = -1, .non_overlap_masks = -1};
    return p;
}

sam2d_status sam_video_session_create_engine(const sam2d_model_config *cfg, const sam_video_engine *eng,
                                             const uint8_t *frames, int num_frames, int video_w, int video_h,
                                             int fill_hole_area, int non_overlap_masks,
                                             struct sam2d_video_session **out) {
    *out = NULL;
    if (num_frames <= 0 || video_w <= 0 || video_h <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "video session: %d frames of %dx%d", num_frames, video_w, video_h);
    sam2d_video_session *s = sam_calloc(1, sizeof(*s));
    if (!s) return SAM_ERR(SAM2D_ERR_NOMEM, "video session");
    s->cfg = *cfg;
    s->eng = *eng;
    s->be = eng->be;
    s->T = num_frames;
    s->vw = video_w;
    s->vh = video_h;
    s->S = cfg->image_size;
    s->L = cfg->image_size / 4;
    s->C = cfg->d_model;
    s->D = cfg->mem_dim;
    s->hw = (cfg->image_size / cfg->backbone_stride) * (cfg->image_size / cfg->backbone_stride);
    s->fill_hole_area = fill_hole_area >= 0 ? fill_hole_area : cfg->fill_hole_area;
    s->non_overlap = non_overlap_masks >= 0 ? non_overlap_masks != 0 : cfg->non_overlap_masks;
    s->cached_frame = -1;
    s->state_bytes = align64(sizeof(sam_frame_state)) + state_data_bytes(s);
    s->frames = sam_calloc((size_t)num_frames, sizeof(uint8_t *));
    s->frame_w = sam_calloc((size_t)num_frames, sizeof(int));
    s->frame_h = sam_calloc((size_t)num_frames, sizeof(int));
    s->feat_buf = sbuf_new(s, (eng->feat_floats ? eng->feat_floats : 1) * sizeof(float));
    s->prev_logits = sbuf_new(s, (size_t)s->L * s->L * sizeof(float));
    s->low_host = sam_malloc((size_t)s->L * s->L * sizeof(float));
    s->cc_scratch = sam_malloc(sam_cc_scratch_bytes(s->L, s->L));
    s->up_y = sam_malloc((size_t)video_h * 2 * sizeof(int));
    s->up_x = sam_malloc((size_t)video_w * 2 * sizeof(int));
    s->up_wy = sam_malloc((size_t)video_h * 2 * sizeof(float));
    s->up_wx = sam_malloc((size_t)video_w * 2 * sizeof(float));
    if (!s->frames || !s->frame_w || !s->frame_h || !s->feat_buf || !s->prev_logits || !s->low_host ||
        !s->cc_scratch || !s->up_y ||
        !s->up_x || !s->up_wy || !s->up_wx) {
        sam2d_video_session_free(s);
        return SAM_ERR(SAM2D_ERR_NOMEM, "video session of %d frames", num_frames);
    }
    const size_t fs = (size_t)s->S * s->S * 3;
    for (int i = 0; frames && i < num_frames; i++) {
        sam2d_status st = sam2d_video_session_set_frame(s, i, frames + fs * (size_t)i, s->S, s->S);
        if (st != SAM2D_OK) {
            sam2d_video_session_free(s);
            return st;
        }
    }
    linear_axis(s->L, video_h, s->up_y, s->up_wy);
    linear_axis(s->L, video_w, s->up_x, s->up_wx);
    s->fixed_bytes = sizeof(*s) + (size_t)num_frames * (sizeof(uint8_t *) + 2 * sizeof(int)) +
                     eng->feat_floats * sizeof(float) + 2 * (size_t)s->L * s->L * sizeof(float) +
                     sam_cc_scratch_bytes(s->L, s->L) +
                     ((size_t)video_h + video_w) * 2 * (sizeof(int) + sizeof(float));
    atomic_init(&s->cancel, 0);
    *out = s;
    return SAM2D_OK;
}

sam2d_status sam2d_video_session_begin(sam2d_model *model, int num_frames, int video_w, int video_h,
                                       const sam2d_video_params *params, sam2d_video_session **out) {
    *out = NULL;
    if (!model || num_frames <= 0 || video_w <= 0 || video_h <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "video session: bad size (%d frames of %dx%d)", num_frames, video_w,
                       video_h);
    if (!sam_video_engine_hook) return SAM_ERR(SAM2D_ERR_STATE, "video session: no video engine");
    sam_video_engine eng;
    SAM_TRY(sam_video_engine_hook((struct sam2d_model *)model, &eng));
    sam2d_video_params p = params ? *params : sam2d_video_default_params();
    return sam_video_session_create_engine(eng.cfg, &eng, NULL, num_frames, video_w, video_h, p.fill_hole_area,
                                           p.non_overlap_masks, out);
}

sam2d_status sam2d_video_session_set_frame(sam2d_video_session *s, int frame_idx, const uint8_t *rgb, int frame_w,
                                           int frame_h) {
    if (!s || !rgb || frame_w <= 0 || frame_h <= 0)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "video session: bad frame");
    if (frame_idx < 0 || frame_idx >= s->T)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "video session: frame %d out of range [0, %d]", frame_idx, s->T - 1);
    if (frame_idx == s->cached_frame) s->cached_frame = -1;
    /* smaller than S x S: kept as given, resized when encoded; else resized now */
    const bool keep = (size_t)frame_w * frame_h <= (size_t)s->S * s->S;
    const int w = keep ? frame_w : s->S, h = keep ? frame_h : s->S;
    const size_t bytes = (size_t)w * h * 3;
    uint8_t *dst = s->frames[frame_idx];
    if (!dst || sam_alloc_size(dst) != bytes) {
        uint8_t *n = sam_malloc(bytes);
        if (!n) return SAM_ERR(SAM2D_ERR_NOMEM, "video session: frame %d (%dx%d)", frame_idx, w, h);
        s->frames_bytes -= sam_alloc_size(dst);
        sam_free(dst);
        s->frames[frame_idx] = dst = n;
        s->frames_bytes += bytes;
    }
    s->frame_w[frame_idx] = w;
    s->frame_h[frame_idx] = h;
    if (keep) {
        memcpy(dst, rgb, bytes);
        return SAM2D_OK;
    }
    /* SAM 2's loader: Pillow bicubic to S x S, aspect not kept */
    sam_resize_plan *plan = NULL;
    SAM_TRY(sam_resize_plan_create(frame_w, frame_h, s->S, s->S, 3, &plan));
    sam2d_status st = sam_resize_plan_run(plan, rgb, dst, NULL);
    sam_resize_plan_free(plan);
    return st;
}

sam2d_status sam2d_video_session_create(sam2d_model *model, const uint8_t *const *frames, int num_frames,
                                        int frame_w, int frame_h, int video_w, int video_h,
                                        const sam2d_video_params *params, sam2d_video_session **out) {
    *out = NULL;
    if (!frames) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "video session: bad frames");
    sam2d_video_session *s = NULL;
    SAM_TRY(sam2d_video_session_begin(model, num_frames, video_w, video_h, params, &s));
    for (int i = 0; i < num_frames; i++) {
        sam2d_status st = frames[i] ? sam2d_video_session_set_frame(s, i, frames[i], frame_w, frame_h)
                                    : SAM_ERR(SAM2D_ERR_INVALID_ARG, "video session: frame %d is NULL", i);
        if (st != SAM2D_OK) {
            sam2d_video_session_free(s);
            return st;
        }
    }
    *out = s;
    return SAM2D_OK;
}

void sam2d_video_session_free(sam2d_video_session *s) {
    if (!s) return;
    for (int i = 0; i < s->n_obj; i++) obj_free(s, &s->objs[i]);
    sam_free(s->objs);
    sam_free(s->obj_ids);
    sam_free(s->res_logits);
    sam_free(s->res_scores);
    for (int i = 0; s->frames && i < s->T; i++) sam_free(s->frames[i]);
    sam_free(s->frames);
    sam_free(s->frame_w);
    sam_free(s->frame_h);
    sam_free(s->frame_s);
    sam_resize_plan_free(s->plan);
    for (int i = 0; i < s->n_spare; i++) sbuf_del(s, s->spare[i]);
    sbuf_del(s, s->feat_buf);
    sam_free(s->mask_s);
    sam_free(s->mask_f);
    sbuf_del(s, s->prev_logits);
    sam_free(s->low_host);
    sam_free(s->cc_scratch);
    sam_free(s->up_y);
    sam_free(s->up_x);
    sam_free(s->up_wy);
    sam_free(s->up_wx);
    sam_free(s);
}

int sam2d_video_num_frames(const sam2d_video_session *s) { return s->T; }
int sam2d_video_width(const sam2d_video_session *s) { return s->vw; }
int sam2d_video_height(const sam2d_video_session *s) { return s->vh; }
int sam2d_video_num_objects(const sam2d_video_session *s) { return s->n_obj; }
const int *sam2d_video_obj_ids(const sam2d_video_session *s) { return s->obj_ids; }

size_t sam2d_video_session_memory_bytes(const sam2d_video_session *s) {
    size_t per_obj = (size_t)s->T * (4 * sizeof(void *) + sizeof(int) * 2 + 2 + 2 * sizeof(void *));
    return s->fixed_bytes + s->frames_bytes + (size_t)s->n_states * s->state_bytes + (size_t)s->cap_obj * (sizeof(vobj) + per_obj) +
           (size_t)s->cap_obj * ((size_t)s->vh * s->vw + 2) * sizeof(float) + s->mask_f_cap * sizeof(float);
}

void sam_video_session_memory_census(const sam2d_video_session *s, sam_video_session_census *o) {
    memset(o, 0, sizeof(*o));
    o->total = sam2d_video_session_memory_bytes(s);
    o->frames = s->frames_bytes;
    for (int i = 0; i < s->T && !o->frame_bytes; i++) o->frame_bytes = sam_alloc_size(s->frames[i]);
    o->features = s->eng.feat_floats * sizeof(float);
    o->state_bytes = s->state_bytes;
    o->n_states = s->n_states;
    o->states = (size_t)s->n_states * s->state_bytes;
    o->n_objects = s->n_obj;
    o->objects = o->total - s->fixed_bytes - s->frames_bytes - o->states;
    o->fixed_other = s->fixed_bytes - o->features;
}

static sam2d_status check_frame(const sam2d_video_session *s, int f) {
    if (f < 0 || f >= s->T) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame %d out of range [0, %d)", f, s->T);
    return SAM2D_OK;
}

/* ---------------- prompts ---------------- */

sam2d_status sam2d_video_add_points(sam2d_video_session *s, int f, int obj_id, const float *points, const int *labels,
                                    int n, const float *box, bool clear_old_points, sam2d_video_frame_result *res) {
    SAM_TRY(check_frame(s, f));
    if (n < 0 || (n > 0 && (!points || !labels)))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "points and labels must be given together");
    if (n == 0 && !box) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "at least one of points or box must be given");
    if (box && !clear_old_points)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "a box must come before any point: use clear_old_points");
    for (int i = 0; i < n; i++)
        if (labels[i] != 0 && labels[i] != 1 && labels[i] != 2 && labels[i] != 3)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "point label %d (0 negative, 1 positive)", labels[i]);
    int idx;
    SAM_TRY(obj_get_or_add(s, obj_id, &idx));
    vobj *o = &s->objs[idx];
    const int nb = box ? 2 : 0;
    const int old = clear_old_points ? 0 : o->npts[f];
    const int total = old + nb + n;
    float *np = sam_malloc((size_t)total * 2 * sizeof(float));
    int *nl = sam_malloc((size_t)total * sizeof(int));
    if (!np || !nl) {
        sam_free(np);
        sam_free(nl);
        return SAM_ERR(SAM2D_ERR_NOMEM, "points");
    }
    if (old) {
        memcpy(np, o->pts[f], (size_t)old * 2 * sizeof(float));
        memcpy(nl, o->lbl[f], (size_t)old * sizeof(int));
    }
    /* normalise as the reference in float32: (x / W) * S */
    const float fw = (float)s->vw, fh = (float)s->vh, fS = (float)s->S;
    for (int i = 0; i < nb; i++) {
        np[2 * (old + i)] = (box[2 * i] / fw) * fS;
        np[2 * (old + i) + 1] = (box[2 * i + 1] / fh) * fS;
        nl[old + i] = 2 + i;
    }
    for (int i = 0; i < n; i++) {
        np[2 * (old + nb + i)] = (points[2 * i] / fw) * fS;
        np[2 * (old + nb + i) + 1] = (points[2 * i + 1] / fh) * fS;
        nl[old + nb + i] = labels[i];
    }
    obj_clear_frame_inputs(o, f);
    o->pts[f] = np;
    o->lbl[f] = nl;
    o->npts[f] = total;
    o->has_mask[f] = 0;

    const bool init = o->tracked[f] == TRACK_NONE;
    const bool reverse = !init && o->tracked[f] == TRACK_REV;
    const bool is_cond = init || s->cfg.add_all_frames_to_correct_as_cond;
    const sam_frame_state *prev = is_cond ? o->tmp_cond[f] : o->tmp_nc[f];
    if (!prev) prev = o->out_cond[f];
    if (!prev) prev = o->out_nc[f];
    const float *prev_logits = NULL;
    if (prev) {
        /* the previous logits, clamped, become the mask prompt of the click
         * (on the host: a click's one download and upload, no clamp entry) */
        const float *v = state_low_host(s, prev);
        float *c = s->low_host;
        for (int64_t i = 0; i < (int64_t)s->L * s->L; i++) c[i] = v[i] < -32.0f ? -32.0f : (v[i] > 32.0f ? 32.0f : v[i]);
        s->low_host_of = NULL;
        s_to_dev(s, s->prev_logits, c, (size_t)s->L * s->L * sizeof(float));
        prev_logits = s->prev_logits;
    }
    sam_frame_state *st;
    SAM_TRY(run_single(s, o, f, init, reverse, np, nl, total, true, NULL, false, prev_logits, &st));
    slot_set(s, is_cond ? &o->tmp_cond[f] : &o->tmp_nc[f], st);
    consolidate(s, f, is_cond, res);
    return SAM2D_OK;
}

sam2d_status sam2d_video_add_mask(sam2d_video_session *s, int f, int obj_id, const uint8_t *mask, int mh, int mw,
                                  sam2d_video_frame_result *res) {
    SAM_TRY(check_frame(s, f));
    if (!mask || mh <= 0 || mw <= 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "mask of %dx%d", mw, mh);
    const int S = s->S;
    if (!s->mask_s) {
        s->mask_s = sam_malloc((size_t)S * S * sizeof(float));
        if (!s->mask_s) return SAM_ERR(SAM2D_ERR_NOMEM, "mask prompt");
        s->fixed_bytes += (size_t)S * S * sizeof(float);
    }
    if (mh == S && mw == S) {
        for (int64_t i = 0; i < (int64_t)S * S; i++) s->mask_s[i] = mask[i] ? 1.0f : 0.0f;
    } else {
        size_t need = (size_t)mh * mw;
        if (need > s->mask_f_cap) {
            float *m = sam_realloc(s->mask_f, need * sizeof(float));
            if (!m) return SAM_ERR(SAM2D_ERR_NOMEM, "mask of %dx%d", mw, mh);
            s->mask_f = m;
            s->mask_f_cap = need;
        }
        for (size_t i = 0; i < need; i++) s->mask_f[i] = mask[i] ? 1.0f : 0.0f;
        sam_resize_bilinear_host(s->mask_s, s->mask_f, 1, mh, mw, S, S, true);
        for (int64_t i = 0; i < (int64_t)S * S; i++) s->mask_s[i] = s->mask_s[i] >= 0.5f ? 1.0f : 0.0f;
    }
    int idx;
    SAM_TRY(obj_get_or_add(s, obj_id, &idx));
    vobj *o = &s->objs[idx];
    o->has_mask[f] = 1;
    obj_clear_frame_inputs(o, f);
    const bool init = o->tracked[f] == TRACK_NONE;
    const bool reverse = !init && o->tracked[f] == TRACK_REV;
    const bool is_cond = init || s->cfg.add_all_frames_to_correct_as_cond;
    sam_frame_state *st;
    SAM_TRY(run_single(s, o, f, init, reverse, NULL, NULL, 0, false, s->mask_s, false, NULL, &st));
    slot_set(s, is_cond ? &o->tmp_cond[f] : &o->tmp_nc[f], st);
    consolidate(s, f, is_cond, res);
    return SAM2D_OK;
}

/* ---------------- propagation ---------------- */

/* clear_non_cond_mem_around_input: drop this object's tracked memories within
 * stride * num_maskmem frames of an input frame (the reference calls a per-object
 * helper it does not define; this is its evident meaning, on one object). */
static void clear_nc_around(sam2d_video_session *s, vobj *o, int f) {
    if (!s->cfg.clear_non_cond_mem_around_input) return;
    const int r = s->cfg.memory_temporal_stride_for_eval > 0 ? s->cfg.memory_temporal_stride_for_eval : 1;
    for (int t = f - r * s->cfg.num_maskmem; t <= f + r * s->cfg.num_maskmem; t++)
        if (t >= 0 && t < s->T) slot_set(s, &o->out_nc[t], NULL);
}

static sam2d_status preflight(sam2d_video_session *s) {
    if (s->n_obj == 0) return SAM_ERR(SAM2D_ERR_STATE, "no points or masks were given for any object");
    for (int i = 0; i < s->n_obj; i++) {
        vobj *o = &s->objs[i];
        for (int c = 0; c < 2; c++) {
            const bool is_cond = c == 1;
            sam_frame_state **tmp = is_cond ? o->tmp_cond : o->tmp_nc;
            for (int f = 0; f < s->T; f++) {
                sam_frame_state *st = tmp[f];
                if (!st) continue;
                if (!st->maskmem) {
                    /* outputs from user input: memory from the upsampled, binarised logits */
                    SAM_TRY(get_features(s, f));
                    if (s->eng.lock) s->eng.lock(s->eng.ctx);
                    double t0 = mono_now();
                    sam2d_status rc = s->eng.encode(s->eng.ctx, &s->feats, st->pred_masks, st->object_score_logit,
                                                    true, state_mm_buf(s, st));
                    s->stats.memory_encoder_s += mono_now() - t0;
                    s->stats.memory_encoder_calls++;
                    if (s->eng.unlock) s->eng.unlock(s->eng.ctx);
                    SAM_TRY(rc);
                    st->maskmem = state_mm_buf(s, st);
                }
                tmp[f] = NULL;
                if (is_cond) cond_put(s, o, f, st);
                else slot_set(s, &o->out_nc[f], st);
                clear_nc_around(s, o, f);
            }
        }
        if (o->n_cond == 0)
            return SAM_ERR(SAM2D_ERR_STATE, "no points or masks were given for object %d", o->id);
        for (int k = 0; k < o->n_cond; k++) slot_set(s, &o->out_nc[o->cond_order[k]], NULL);
    }
    return SAM2D_OK;
}

void sam2d_video_cancel(sam2d_video_session *s) { atomic_store(&s->cancel, 1); }

void sam2d_video_set_stage_hook(sam2d_video_session *s, sam2d_video_stage_fn fn, void *user) {
    s->stage_hook = fn;
    s->stage_user = user;
}

sam2d_status sam2d_video_propagate(sam2d_video_session *s, int start, bool reverse, int max_frames,
                                   sam2d_video_frame_cb cb, void *user) {
    atomic_store(&s->cancel, 0);
    SAM_TRY(preflight(s));
    if (start < 0) {
        start = s->T;
        for (int i = 0; i < s->n_obj; i++)
            for (int k = 0; k < s->objs[i].n_cond; k++)
                if (s->objs[i].cond_order[k] < start) start = s->objs[i].cond_order[k];
    }
    SAM_TRY(check_frame(s, start));
    if (max_frames < 0) max_frames = s->T;
    int first, last, step;
    if (reverse) {
        int end = start - max_frames > 0 ? start - max_frames : 0;
        first = start;
        last = end;
        step = -1;
        if (start == 0) return SAM2D_OK; /* the reference skips reverse tracking from frame 0 */
    } else {
        int end = start + max_frames < s->T - 1 ? start + max_frames : s->T - 1;
        first = start;
        last = end;
        step = 1;
    }
    for (int f = first;; f += step) {
        if (s->stage_hook) {
            bool track = false;
            for (int i = 0; i < s->n_obj; i++) track = track || !s->objs[i].out_cond[f];
            if (track) {
                SAM_TRY(get_features(s, f)); /* cached: the objects' steps below reuse it */
                s->stage_hook(s->stage_user);
            }
        }
        for (int i = 0; i < s->n_obj; i++) {
            vobj *o = &s->objs[i];
            const sam_frame_state *st = o->out_cond[f];
            if (st) clear_nc_around(s, o, f);
            if (!st) {
                sam_frame_state *ns;
                SAM_TRY(run_single(s, o, f, false, reverse, NULL, NULL, 0, false, NULL, true, NULL, &ns));
                slot_set(s, &o->out_nc[f], ns);
                st = ns;
            }
            o->tracked[f] = reverse ? TRACK_REV : TRACK_FWD;
            put_object_output(s, i, st);
        }
        sam2d_video_frame_result r;
        fill_result(s, f, &r);
        if (cb && cb(user, &r)) return SAM_ERR(SAM2D_ERR_CANCELLED, "propagation stopped at frame %d", f);
        if (atomic_load(&s->cancel)) return SAM_ERR(SAM2D_ERR_CANCELLED, "propagation cancelled at frame %d", f);
        if (f == last) break;
    }
    return SAM2D_OK;
}

/* ---------------- clearing ---------------- */

static void clear_frame(sam2d_video_session *s, vobj *o, int f) {
    obj_clear_frame_inputs(o, f);
    o->has_mask[f] = 0;
    slot_set(s, &o->tmp_cond[f], NULL);
    slot_set(s, &o->tmp_nc[f], NULL);
    sam_frame_state *st = o->out_cond[f];
    if (st) {
        /* a cleared conditioning output stays as an ordinary tracked memory */
        o->out_cond[f] = NULL;
        cond_remove(o, f);
        slot_set(s, &o->out_nc[f], st);
        o->tracked[f] = TRACK_NONE;
    }
}

sam2d_status sam2d_video_clear_prompts(sam2d_video_session *s, int f, int obj_id, sam2d_video_frame_result *res) {
    SAM_TRY(check_frame(s, f));
    int idx = obj_index(s, obj_id);
    if (idx < 0) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "unknown object id %d", obj_id);
    clear_frame(s, &s->objs[idx], f);
    bool is_cond = false;
    for (int i = 0; i < s->n_obj; i++) is_cond = is_cond || s->objs[i].tmp_cond[f];
    consolidate(s, f, is_cond, res);
    return SAM2D_OK;
}

sam2d_status sam2d_video_reset(sam2d_video_session *s) {
    for (int i = 0; i < s->n_obj; i++) obj_free(s, &s->objs[i]);
    s->n_obj = 0;
    /* every per-frame byte goes back, the spare state buffers too */
    for (; s->n_spare > 0; s->fixed_bytes -= state_data_bytes(s)) sbuf_del(s, s->spare[--s->n_spare]);
    return SAM2D_OK;
}

sam2d_status sam2d_video_remove_object_ex(sam2d_video_session *s, int obj_id, sam2d_video_frame_cb cb, void *user) {
    int idx = obj_index(s, obj_id);
    if (idx < 0) return SAM2D_OK;
    if (s->n_obj == 1) return sam2d_video_reset(s);
    vobj *o = &s->objs[idx];
    /* frames with prompts of the removed object: cleared, then reported (ascending) */
    uint8_t *touched = sam_calloc((size_t)s->T, 1);
    if (!touched) return SAM_ERR(SAM2D_ERR_NOMEM, "remove object");
    for (int f = 0; f < s->T; f++)
        if (o->pts[f] || o->has_mask[f]) {
            touched[f] = 1;
            clear_frame(s, o, f);
        }
    obj_free(s, o);
    memmove(s->objs + idx, s->objs + idx + 1, (size_t)(s->n_obj - idx - 1) * sizeof(vobj));
    memmove(s->obj_ids + idx, s->obj_ids + idx + 1, (size_t)(s->n_obj - idx - 1) * sizeof(int));
    s->n_obj--;
    for (int f = 0; cb && f < s->T; f++) {
        if (!touched[f]) continue;
        bool is_cond = false;
        for (int i = 0; i < s->n_obj; i++) is_cond = is_cond || s->objs[i].tmp_cond[f];
        sam2d_video_frame_result r;
        consolidate(s, f, is_cond, &r);
        cb(user, &r);
    }
    sam_free(touched);
    return SAM2D_OK;
}

sam2d_status sam2d_video_remove_object(sam2d_video_session *s, int obj_id) {
    return sam2d_video_remove_object_ex(s, obj_id, NULL, NULL);
}

sam2d_status sam2d_video_get_frame(sam2d_video_session *s, int f, sam2d_video_frame_result *res) {
    SAM_TRY(check_frame(s, f));
    bool is_cond = false;
    for (int i = 0; i < s->n_obj; i++) is_cond = is_cond || s->objs[i].tmp_cond[f];
    consolidate(s, f, is_cond, res);
    return SAM2D_OK;
}

int sam2d_video_prompt_frames(const sam2d_video_session *s, int obj_id, int *frames, int cap) {
    int idx = obj_index(s, obj_id);
    if (idx < 0) return -1;
    const vobj *o = &s->objs[idx];
    int n = 0;
    for (int f = 0; f < s->T; f++)
        if (o->pts[f] || o->has_mask[f]) {
            if (n < cap && frames) frames[n] = f;
            n++;
        }
    return n;
}

static sam2d_status find_state(const sam2d_video_session *s, int obj_id, int f, const sam_frame_state **st,
                               bool *cond, int *idx_out) {
    SAM_TRY(check_frame(s, f));
    int idx = obj_index(s, obj_id);
    if (idx < 0) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "unknown object id %d", obj_id);
    const vobj *o = &s->objs[idx];
    *st = o->out_cond[f];
    *cond = *st != NULL;
    if (!*st) *st = o->out_nc[f];
    if (!*st) return SAM2D_ERR_NOT_FOUND;
    *idx_out = idx;
    return SAM2D_OK;
}

sam2d_status sam2d_video_get_state(const sam2d_video_session *s, int obj_id, int f, sam2d_video_frame_state *out) {
    const sam_frame_state *st = NULL;
    bool cond = false;
    int idx = 0;
    SAM_TRY(find_state(s, obj_id, f, &st, &cond, &idx));
    out->is_cond = cond;
    out->tracked_reverse = s->objs[idx].tracked[f] == TRACK_REV;
    out->has_maskmem = st->maskmem != NULL;
    out->object_score_logit = st->object_score_logit;
    out->low_res = s->L;
    out->mem_tokens = s->hw;
    out->mem_dim = s->D;
    out->ptr_dim = s->C;
    return SAM2D_OK;
}

sam2d_status sam2d_video_read_state(const sam2d_video_session *s, int obj_id, int f, float *pred_masks,
                                    float *obj_ptr, uint16_t *maskmem) {
    const sam_frame_state *st = NULL;
    bool cond = false;
    int idx = 0;
    SAM_TRY(find_state(s, obj_id, f, &st, &cond, &idx));
    if (maskmem && !st->maskmem)
        return SAM_ERR(SAM2D_ERR_STATE, "object %d has no memory features on frame %d", obj_id, f);
    if (pred_masks) s_to_host(s, pred_masks, st->pred_masks, (size_t)s->L * s->L * sizeof(float));
    if (obj_ptr) s_to_host(s, obj_ptr, st->obj_ptr, (size_t)s->C * sizeof(float));
    if (maskmem) s_to_host(s, maskmem, st->maskmem, (size_t)s->hw * s->D * sizeof(uint16_t));
    return SAM2D_OK;
}

void sam2d_video_get_stats(const sam2d_video_session *s, sam2d_video_stats *out) { *out = s->stats; }
