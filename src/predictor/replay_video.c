/* Replay of a golden folder's video_scenario: the same calls in the same
 * order on our session, results written under the manifest's names so that
 * they can be compared file by file with the reference's. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "model/bf16.h"
#include "model/track.h"
#include "sam2d/video_predictor.h"

typedef struct {
    sam2d_video_session *s;
    const char *out_dir;
    json_t *results;      /* manifest video_results */
    size_t next_result;   /* cursor into results */
    const char *tag;
    sam2d_replay_video_stats *stats;
    sam2d_status err;
} replay_ctx;

static sam2d_status make_dirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return SAM_ERR(SAM2D_ERR_IO, "mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return SAM_ERR(SAM2D_ERR_IO, "mkdir %s", buf);
    return SAM2D_OK;
}

/* logical name of a result entry's array ("out/..."): plain string or {logical_name} */
static const char *logical_name(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "logical_name"));
    return NULL;
}

static sam2d_status write_f32(const replay_ctx *c, const char *name, const float *data, int ndim,
                              const int64_t *shape) {
    if (!c->out_dir || !name) return SAM2D_OK;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", c->out_dir, name);
    char *slash = strrchr(path, '/');
    *slash = 0;
    SAM_TRY(make_dirs(path));
    *slash = '/';
    return sam_npy_write_f32(path, data, ndim, shape);
}

/* Write one frame result where the manifest expects the next result of this step. */
static sam2d_status emit_result(replay_ctx *c, const sam2d_video_frame_result *r, const char *call) {
    json_t *e = NULL;
    /* skip results of steps that return none (init_state, reset_state) */
    while (c->next_result < json_array_size(c->results)) {
        json_t *cand = json_array_get(c->results, c->next_result);
        const char *step = json_string_value(json_object_get(cand, "step"));
        if (step && !strcmp(step, c->tag) && (json_object_get(cand, "video_res_logits") ||
                                             json_object_get(cand, "updated_frames"))) {
            e = cand;
            break;
        }
        if (step && strcmp(step, c->tag) > 0) break;
        c->next_result++;
    }
    const int H = sam2d_video_height(c->s), W = sam2d_video_width(c->s);
    char name[512];
    const char *lname = NULL;
    int want_frame = -1;
    if (e && json_object_get(e, "updated_frames")) {
        /* remove_object: one entry lists every updated frame */
        json_t *uf = json_object_get(e, "updated_frames");
        for (size_t i = 0; i < json_array_size(uf); i++) {
            json_t *u = json_array_get(uf, i);
            if (json_integer_value(json_object_get(u, "frame_idx")) == r->frame_idx) {
                lname = logical_name(json_object_get(u, "video_res_logits"));
                want_frame = r->frame_idx;
            }
        }
    } else if (e) {
        lname = logical_name(json_object_get(e, "video_res_logits"));
        want_frame = (int)json_integer_value(json_object_get(e, "frame_idx"));
        json_t *ids = json_object_get(e, "obj_ids");
        bool same = want_frame == r->frame_idx && (int)json_array_size(ids) == r->num_objects;
        for (int i = 0; same && i < r->num_objects; i++)
            same = json_integer_value(json_array_get(ids, (size_t)i)) == r->obj_ids[i];
        if (!same) c->stats->mismatched++;
        c->next_result++;
    }
    if (!lname) {
        snprintf(name, sizeof(name), "out/%s_f%03d_video_res_logits.npy", c->tag, r->frame_idx);
        lname = name;
        if (e || strcmp(call, "remove_object")) c->stats->mismatched += e ? 1 : 0;
    }
    int64_t shape[4] = {r->num_objects, 1, H, W};
    c->stats->results++;
    return write_f32(c, lname, r->logits, 4, shape);
}

static int on_frame(void *user, const sam2d_video_frame_result *r) {
    replay_ctx *c = user;
    sam2d_status st = emit_result(c, r, "propagate_in_video");
    if (st != SAM2D_OK) {
        c->err = st;
        return 1;
    }
    return 0;
}

static int on_removed(void *user, const sam2d_video_frame_result *r) {
    replay_ctx *c = user;
    sam2d_status st = emit_result(c, r, "remove_object");
    if (st != SAM2D_OK) c->err = st;
    return 0;
}

/* State dumps listed for this step: every object/frame entry, each field the manifest names. */
static sam2d_status dump_states(replay_ctx *c, json_t *manifest) {
    json_t *dumps = json_object_get(json_object_get(manifest, "state_dumps"), "dumps");
    for (size_t i = 0; i < json_array_size(dumps); i++) {
        json_t *d = json_array_get(dumps, i);
        if (strcmp(json_string_value(json_object_get(d, "step")) ?: "", c->tag)) continue;
        json_t *entries = json_object_get(d, "entries");
        for (size_t k = 0; k < json_array_size(entries); k++) {
            json_t *en = json_array_get(entries, k);
            int obj = (int)json_integer_value(json_object_get(en, "obj_id"));
            int f = (int)json_integer_value(json_object_get(en, "frame_idx"));
            sam2d_video_frame_state fs;
            if (sam2d_video_get_state(c->s, obj, f, &fs) != SAM2D_OK) {
                c->stats->mismatched++;
                continue;
            }
            const char *n;
            if ((n = logical_name(json_object_get(en, "pred_masks")))) {
                int64_t sh[4] = {1, 1, fs.low_res, fs.low_res};
                float *t = sam_malloc((size_t)fs.low_res * fs.low_res * sizeof(float)); /* host copy */
                if (!t) return SAM_ERR(SAM2D_ERR_NOMEM, "dump");
                sam2d_status st = sam2d_video_read_state(c->s, obj, f, t, NULL, NULL);
                if (st == SAM2D_OK) st = write_f32(c, n, t, 4, sh);
                sam_free(t);
                SAM_TRY(st);
                c->stats->states++;
            }
            if ((n = logical_name(json_object_get(en, "object_score_logits")))) {
                int64_t sh[2] = {1, 1};
                SAM_TRY(write_f32(c, n, &fs.object_score_logit, 2, sh));
                c->stats->states++;
            }
            if ((n = logical_name(json_object_get(en, "obj_ptr")))) {
                int64_t sh[2] = {1, fs.ptr_dim};
                float *t = sam_malloc((size_t)fs.ptr_dim * sizeof(float));
                if (!t) return SAM_ERR(SAM2D_ERR_NOMEM, "dump");
                sam2d_status st = sam2d_video_read_state(c->s, obj, f, NULL, t, NULL);
                if (st == SAM2D_OK) st = write_f32(c, n, t, 2, sh);
                sam_free(t);
                SAM_TRY(st);
                c->stats->states++;
            }
            if ((n = logical_name(json_object_get(en, "maskmem_features_bf16_as_f32")))) {
                if (!fs.has_maskmem) {
                    c->stats->mismatched++;
                    continue;
                }
                /* ours is (h*w, D) channels-last; the reference's (1, D, h, w) */
                const int hw = fs.mem_tokens, D = fs.mem_dim;
                int side = 1;
                while (side * side < hw) side++;
                float *t = sam_malloc((size_t)hw * D * sizeof(float));
                uint16_t *mm = sam_malloc((size_t)hw * D * sizeof(uint16_t));
                sam2d_status st = t && mm ? sam2d_video_read_state(c->s, obj, f, NULL, NULL, mm)
                                          : SAM_ERR(SAM2D_ERR_NOMEM, "dump");
                if (st == SAM2D_OK) {
                    for (int p = 0; p < hw; p++)
                        for (int ch = 0; ch < D; ch++) t[(size_t)ch * hw + p] = sam_bf16_to_f32(mm[(size_t)p * D + ch]);
                    int64_t sh[4] = {1, D, side, hw / side};
                    st = write_f32(c, n, t, 4, sh);
                }
                sam_free(t);
                sam_free(mm);
                SAM_TRY(st);
                c->stats->states++;
            }
        }
    }
    return SAM2D_OK;
}

static sam2d_status load_mask_file(const char *dir, const char *rel, uint8_t **mask, int *h, int *w) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    sam_npy a;
    SAM_TRY(sam_npy_read(path, &a));
    if (a.ndim != 2) {
        sam_npy_free(&a);
        return SAM_ERR(SAM2D_ERR_FORMAT, "%s: expected a 2-D mask", path);
    }
    *h = (int)a.shape[0];
    *w = (int)a.shape[1];
    *mask = sam_malloc((size_t)a.count);
    if (!*mask) {
        sam_npy_free(&a);
        return SAM_ERR(SAM2D_ERR_NOMEM, "mask");
    }
    for (int64_t i = 0; i < a.count; i++) (*mask)[i] = a.data[i] != 0.0f;
    sam_npy_free(&a);
    return SAM2D_OK;
}

static sam2d_status run_step(replay_ctx *c, json_t *manifest, json_t *step, const char *dir) {
    const char *call = json_string_value(json_object_get(step, "call"));
    if (!call) return SAM_ERR(SAM2D_ERR_FORMAT, "scenario step without call");
    c->stats->steps++;
    sam2d_video_frame_result r;
    if (!strcmp(call, "init_state")) return SAM2D_OK; /* the session already holds the video */
    if (!strcmp(call, "reset_state")) return sam2d_video_reset(c->s);
    if (!strcmp(call, "add_new_points_or_box") || !strcmp(call, "add_new_points")) {
        int f = (int)json_integer_value(json_object_get(step, "frame_idx"));
        int obj = (int)json_integer_value(json_object_get(step, "obj_id"));
        json_t *pts = json_object_get(step, "points"), *lbl = json_object_get(step, "labels");
        json_t *box = json_object_get(step, "box");
        json_t *clr = json_object_get(step, "clear_old_points");
        int n = (int)json_array_size(pts);
        float *p = sam_malloc((size_t)(n ? n : 1) * 2 * sizeof(float));
        int *l = sam_malloc((size_t)(n ? n : 1) * sizeof(int));
        float b[4];
        if (!p || !l) {
            sam_free(p);
            sam_free(l);
            return SAM_ERR(SAM2D_ERR_NOMEM, "points");
        }
        for (int i = 0; i < n; i++) {
            json_t *pt = json_array_get(pts, (size_t)i);
            p[2 * i] = (float)json_number_value(json_array_get(pt, 0));
            p[2 * i + 1] = (float)json_number_value(json_array_get(pt, 1));
            l[i] = (int)json_integer_value(json_array_get(lbl, (size_t)i));
        }
        for (int i = 0; i < 4 && box; i++) b[i] = (float)json_number_value(json_array_get(box, (size_t)i));
        sam2d_status st = sam2d_video_add_points(c->s, f, obj, n ? p : NULL, n ? l : NULL, n, box ? b : NULL,
                                                 clr ? json_is_true(clr) : true, &r);
        sam_free(p);
        sam_free(l);
        SAM_TRY(st);
        return emit_result(c, &r, call);
    }
    if (!strcmp(call, "add_new_mask")) {
        int f = (int)json_integer_value(json_object_get(step, "frame_idx"));
        int obj = (int)json_integer_value(json_object_get(step, "obj_id"));
        const char *mf = json_string_value(json_object_get(step, "mask_file"));
        if (!mf) return SAM_ERR(SAM2D_ERR_FORMAT, "add_new_mask step without mask_file");
        uint8_t *m = NULL;
        int h = 0, w = 0;
        SAM_TRY(load_mask_file(dir, mf, &m, &h, &w));
        sam2d_status st = sam2d_video_add_mask(c->s, f, obj, m, h, w, &r);
        sam_free(m);
        SAM_TRY(st);
        return emit_result(c, &r, call);
    }
    if (!strcmp(call, "propagate_in_video")) {
        json_t *sf = json_object_get(step, "start_frame_idx");
        json_t *mx = json_object_get(step, "max_frame_num_to_track");
        json_t *rv = json_object_get(step, "reverse");
        c->err = SAM2D_OK;
        sam2d_status st = sam2d_video_propagate(c->s, json_is_integer(sf) ? (int)json_integer_value(sf) : -1,
                                                rv && json_is_true(rv), json_is_integer(mx) ? (int)json_integer_value(mx) : -1,
                                                on_frame, c);
        if (c->err != SAM2D_OK) return c->err;
        SAM_TRY(st);
        return dump_states(c, manifest);
    }
    if (!strcmp(call, "clear_all_prompts_in_frame")) {
        int f = (int)json_integer_value(json_object_get(step, "frame_idx"));
        int obj = (int)json_integer_value(json_object_get(step, "obj_id"));
        SAM_TRY(sam2d_video_clear_prompts(c->s, f, obj, &r));
        return emit_result(c, &r, call);
    }
    if (!strcmp(call, "remove_object")) {
        int obj = (int)json_integer_value(json_object_get(step, "obj_id"));
        c->err = SAM2D_OK;
        SAM_TRY(sam2d_video_remove_object_ex(c->s, obj, on_removed, c));
        /* the manifest's entry for this step is consumed as a whole */
        while (c->next_result < json_array_size(c->results)) {
            const char *stp = json_string_value(json_object_get(json_array_get(c->results, c->next_result), "step"));
            if (!stp || strcmp(stp, c->tag) > 0) break;
            c->next_result++;
        }
        return c->err;
    }
    return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "scenario call '%s' is not supported", call);
}

sam2d_status sam_replay_video_session(sam2d_video_session *s, const char *golden_dir, const char *out_dir,
                                      sam2d_replay_video_stats *stats) {
    sam2d_replay_video_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof(*stats));
    char path[4096];
    snprintf(path, sizeof(path), "%s/manifest.json", golden_dir);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m) return SAM_ERR(SAM2D_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    replay_ctx c = {.s = s, .out_dir = out_dir, .results = json_object_get(m, "video_results"), .stats = stats};
    json_t *scen = json_object_get(m, "video_scenario");
    sam2d_status st = json_is_array(scen) ? SAM2D_OK : SAM_ERR(SAM2D_ERR_FORMAT, "%s: no video_scenario", path);
    for (size_t i = 0; st == SAM2D_OK && i < json_array_size(scen); i++) {
        json_t *step = json_array_get(scen, i);
        c.tag = json_string_value(json_object_get(step, "tag"));
        if (!c.tag) c.tag = "s";
        st = run_step(&c, m, step, golden_dir);
        if (st != SAM2D_OK) sam_error_wrap(st, "scenario step %s: ", c.tag);
    }
    json_decref(m);
    return st;
}

static int cmp_frame_names(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    long ix = strtol(x, NULL, 10), iy = strtol(y, NULL, 10);
    if (ix != iy) return ix < iy ? -1 : 1;
    return strcmp(x, y);
}

/* The video's frames: frames_resized_u8.npy (exact bytes of the reference's
 * loader) when present, else the JPEG folder decoded and resized by the session. */
static sam2d_status load_frames(const char *dir, int S, uint8_t ***frames, int *n, int *fw, int *fh) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/frames_resized_u8.npy", dir);
    sam_npy a;
    *frames = NULL;
    *n = 0;
    if (access(path, R_OK) == 0) {
        SAM_TRY(sam_npy_read(path, &a));
        if (a.ndim != 4 || a.shape[1] != S || a.shape[2] != S || a.shape[3] != 3) {
            sam_npy_free(&a);
            return SAM_ERR(SAM2D_ERR_FORMAT, "%s: expected (T, %d, %d, 3)", path, S, S);
        }
        int T = (int)a.shape[0];
        uint8_t **fr = sam_calloc((size_t)T, sizeof(uint8_t *));
        for (int t = 0; fr && t < T; t++) {
            fr[t] = sam_malloc((size_t)S * S * 3);
            if (!fr[t]) break;
            for (int64_t i = 0; i < (int64_t)S * S * 3; i++) fr[t][i] = (uint8_t)a.data[(int64_t)t * S * S * 3 + i];
        }
        sam_npy_free(&a);
        *frames = fr;
        *n = T;
        *fw = *fh = S;
        if (!fr) return SAM_ERR(SAM2D_ERR_NOMEM, "frames");
        for (int t = 0; t < T; t++)
            if (!fr[t]) return SAM_ERR(SAM2D_ERR_NOMEM, "frames");
        return SAM2D_OK;
    }
    snprintf(path, sizeof(path), "%s/video", dir);
    DIR *d = opendir(path);
    if (!d) return SAM_ERR(SAM2D_ERR_IO, "%s: neither frames_resized_u8.npy nor a video/ folder", dir);
    char **names = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *dot = strrchr(de->d_name, '.');
        if (!dot || (strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg"))) continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, (size_t)cap * sizeof(char *));
            if (!nn) break;
            names = nn;
        }
        names[cnt++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)cnt, sizeof(char *), cmp_frame_names);
    sam2d_status st = cnt ? SAM2D_OK : SAM_ERR(SAM2D_ERR_FORMAT, "%s: no JPEG frames", path);
    uint8_t **fr = cnt ? sam_calloc((size_t)cnt, sizeof(uint8_t *)) : NULL;
    for (int t = 0; st == SAM2D_OK && t < cnt; t++) {
        char fp[8192];
        int w = 0, h = 0;
        snprintf(fp, sizeof(fp), "%s/%s", path, names[t]);
        st = sam_image_decode_file(fp, 0, &fr[t], &w, &h);
        if (st == SAM2D_OK && t > 0 && (w != *fw || h != *fh))
            st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: frame size differs from the first frame", fp);
        *fw = w;
        *fh = h;
    }
    for (int t = 0; t < cnt; t++) free(names[t]);
    free(names);
    *frames = fr;
    *n = cnt;
    return st;
}

sam2d_status sam_replay_video(sam2d_model *model, const char *golden_dir, const char *out_dir,
                              sam2d_replay_video_stats *stats) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/manifest.json", golden_dir);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m) return SAM_ERR(SAM2D_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    json_t *v = json_object_get(m, "video");
    int vw = (int)json_integer_value(json_object_get(v, "width"));
    int vh = (int)json_integer_value(json_object_get(v, "height"));
    /* the reference's own post-processing flags (its CPU run never fills holes) */
    sam2d_video_params vp = sam2d_video_default_params();
    json_t *flags = json_object_get(json_object_get(m, "model"), "flags_in_effect");
    json_t *fh_area = json_object_get(flags, "fill_hole_area"), *nov = json_object_get(flags, "non_overlap_masks");
    if (json_is_integer(fh_area)) vp.fill_hole_area = (int)json_integer_value(fh_area);
    if (json_is_boolean(nov)) vp.non_overlap_masks = json_is_true(nov);
    json_decref(m);
    if (!sam_video_engine_hook)
        return SAM_ERR(SAM2D_ERR_STATE, "replay: the model has no video modules");
    sam_video_engine eng;
    SAM_TRY(sam_video_engine_hook((struct sam2d_model *)model, &eng));
    const int S = eng.cfg->image_size;
    uint8_t **frames = NULL;
    int n = 0, fw = 0, fh = 0;
    sam2d_status st = load_frames(golden_dir, S, &frames, &n, &fw, &fh);
    if (st == SAM2D_OK && (vw <= 0 || vh <= 0)) {
        if (fw != S || fh != S) {
            vw = fw;
            vh = fh;
        } else {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: manifest lacks video width/height", path);
        }
    }
    sam2d_video_session *s = NULL;
    if (st == SAM2D_OK)
        st = sam2d_video_session_create(model, (const uint8_t *const *)frames, n, fw, fh, vw, vh, &vp, &s);
    for (int t = 0; t < n && frames; t++) sam_free(frames[t]);
    sam_free(frames);
    if (st == SAM2D_OK) st = sam_replay_video_session(s, golden_dir, out_dir, stats);
    sam2d_video_session_free(s);
    return st;
}
