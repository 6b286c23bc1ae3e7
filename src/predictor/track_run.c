/* `sam2d track` as a library piece: video -> S x S frames -> session ->
 * prompts -> propagation -> mask files. See track_run.h. */
#include "predictor/track_run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/resize_pil.h"
#include "media/rle.h"
#include "predictor/replay.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool sam_track_format_parse(const char *s, sam_track_format *out) {
    if (!s) return false;
    if (!strcmp(s, "png")) *out = SAM_TRACK_PNG;
    else if (!strcmp(s, "rle")) *out = SAM_TRACK_RLE;
    else if (!strcmp(s, "coco-json") || !strcmp(s, "coco")) *out = SAM_TRACK_COCO;
    else return false;
    return true;
}

/* ---------------------------------------------------------------- prompts */

typedef struct {
    int frame, obj_id;
    int n, cap;
    float *points;   /* (cap, 2) x, y in video pixels */
    int *labels;     /* (cap) */
    bool has_box;
    float box[4];
    char *mask_path; /* NULL unless a mask prompt */
} track_group;

struct sam_track_prompts {
    track_group *g; /* (n) */
    int n, cap;
};

sam2d_status sam_track_prompts_create(sam_track_prompts **out) {
    *out = sam_calloc(1, sizeof(**out));
    return *out ? SAM2D_OK : SAM_ERR(SAM2D_ERR_NOMEM, "prompts: no memory");
}

void sam_track_prompts_free(sam_track_prompts *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        sam_free(p->g[i].points);
        sam_free(p->g[i].labels);
        sam_free(p->g[i].mask_path);
    }
    sam_free(p->g);
    sam_free(p);
}

int sam_track_prompts_count(const sam_track_prompts *p) { return p ? p->n : 0; }

static sam2d_status group_get(sam_track_prompts *p, int frame, int obj_id, track_group **out) {
    if (frame < 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "prompt frame %d is negative", frame);
    if (obj_id < 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "object id %d is negative", obj_id);
    for (int i = 0; i < p->n; i++)
        if (p->g[i].frame == frame && p->g[i].obj_id == obj_id) {
            *out = &p->g[i];
            return SAM2D_OK;
        }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        track_group *g = sam_realloc(p->g, (size_t)cap * sizeof(*g));
        if (!g) return SAM_ERR(SAM2D_ERR_NOMEM, "prompts: no memory");
        p->g = g;
        p->cap = cap;
    }
    track_group *g = &p->g[p->n++];
    memset(g, 0, sizeof(*g));
    g->frame = frame;
    g->obj_id = obj_id;
    *out = g;
    return SAM2D_OK;
}

sam2d_status sam_track_prompts_add_point(sam_track_prompts *p, int frame, int obj_id, float x, float y, int label) {
    if (label != 0 && label != 1) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "point label %d (use 1 or 0)", label);
    if (x != x || y != y) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "point coordinates are not numbers");
    track_group *g;
    SAM_TRY(group_get(p, frame, obj_id, &g));
    if (g->mask_path)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame %d object %d has a mask prompt; points cannot be added", frame,
                       obj_id);
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 4;
        float *pts = sam_realloc(g->points, (size_t)cap * 2 * sizeof(float));
        if (!pts) return SAM_ERR(SAM2D_ERR_NOMEM, "prompts: no memory");
        g->points = pts;
        int *lab = sam_realloc(g->labels, (size_t)cap * sizeof(int));
        if (!lab) return SAM_ERR(SAM2D_ERR_NOMEM, "prompts: no memory");
        g->labels = lab;
        g->cap = cap;
    }
    g->points[2 * g->n] = x;
    g->points[2 * g->n + 1] = y;
    g->labels[g->n++] = label;
    return SAM2D_OK;
}

sam2d_status sam_track_prompts_add_box(sam_track_prompts *p, int frame, int obj_id, const float box[4]) {
    for (int k = 0; k < 4; k++)
        if (box[k] != box[k]) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "box coordinates are not numbers");
    if (box[2] < box[0] || box[3] < box[1])
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "box %g,%g,%g,%g: need x0 <= x1 and y0 <= y1", box[0], box[1], box[2],
                       box[3]);
    track_group *g;
    SAM_TRY(group_get(p, frame, obj_id, &g));
    if (g->mask_path)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame %d object %d has a mask prompt; a box cannot be added", frame,
                       obj_id);
    if (g->has_box) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame %d object %d has two boxes (one allowed)", frame, obj_id);
    memcpy(g->box, box, sizeof(g->box));
    g->has_box = true;
    return SAM2D_OK;
}

sam2d_status sam_track_prompts_add_mask(sam_track_prompts *p, int frame, int obj_id, const char *png_path) {
    if (!png_path || !*png_path) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "mask prompt without a file");
    track_group *g;
    SAM_TRY(group_get(p, frame, obj_id, &g));
    if (g->mask_path || g->n || g->has_box)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG,
                       "frame %d object %d: a mask prompt cannot be combined with points, a box or another mask",
                       frame, obj_id);
    g->mask_path = sam_strdup(png_path);
    return g->mask_path ? SAM2D_OK : SAM_ERR(SAM2D_ERR_NOMEM, "prompts: no memory");
}

sam2d_status sam_track_prompts_validate(const sam_track_prompts *p, int num_frames, int width, int height,
                                        sam_track_format format, int *outside) {
    int out = 0;
    if (!p || p->n == 0) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "no prompt given");
    for (int i = 0; i < p->n; i++) {
        const track_group *g = &p->g[i];
        if (g->frame >= num_frames)
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "prompt on frame %d, but the video has %d frames (0..%d)", g->frame,
                           num_frames, num_frames - 1);
        if (format == SAM_TRACK_PNG && (g->obj_id < 1 || g->obj_id > 255))
            return SAM_ERR(SAM2D_ERR_INVALID_ARG,
                           "object id %d does not fit a palette PNG (1..255); use --format rle or coco-json",
                           g->obj_id);
        for (int k = 0; k < g->n; k++) {
            float x = g->points[2 * k], y = g->points[2 * k + 1];
            if (x < 0 || y < 0 || x > (float)width || y > (float)height) out++;
        }
        if (g->has_box && (g->box[0] < 0 || g->box[1] < 0 || g->box[2] > (float)width || g->box[3] > (float)height))
            out++;
    }
    if (outside) *outside = out;
    return SAM2D_OK;
}

/* objects in ascending id, each object's frames in ascending order */
static int group_cmp(const void *a, const void *b) {
    const track_group *x = *(const track_group *const *)a, *y = *(const track_group *const *)b;
    if (x->obj_id != y->obj_id) return x->obj_id < y->obj_id ? -1 : 1;
    return (x->frame > y->frame) - (x->frame < y->frame);
}

/* ---------------------------------------------------------------- job */

struct sam_track_job {
    sam_frame_source *src;
    char *path; /* the video as given (COCO info) */
    int num_frames, width, height;
    bool ran;
};

sam2d_status sam_track_job_open(const char *video_path, const sam_media_limits *lim, sam_track_job **out) {
    *out = NULL;
    sam_media_limits dl;
    if (!lim) {
        sam_media_limits_default(&dl);
        lim = &dl;
    }
    sam_track_job *j = sam_calloc(1, sizeof(*j));
    if (!j) return SAM_ERR(SAM2D_ERR_NOMEM, "track: no memory");
    sam2d_status st = sam_frame_source_open_path(video_path, lim, &j->src);
    if (st != SAM2D_OK) {
        sam_free(j);
        return st;
    }
    j->path = sam_strdup(video_path);
    j->num_frames = sam_frame_source_count(j->src);
    j->width = sam_frame_source_width(j->src);
    j->height = sam_frame_source_height(j->src);
    if (j->num_frames <= 0) {
        sam_track_job_free(j);
        return SAM_ERR(SAM2D_ERR_FORMAT, "%s holds no frames", video_path);
    }
    *out = j;
    return SAM2D_OK;
}

void sam_track_job_free(sam_track_job *j) {
    if (!j) return;
    sam_frame_source_free(j->src);
    sam_free(j->path);
    sam_free(j);
}

int sam_track_job_num_frames(const sam_track_job *j) { return j->num_frames; }
int sam_track_job_width(const sam_track_job *j) { return j->width; }
int sam_track_job_height(const sam_track_job *j) { return j->height; }

void sam_track_default_options(sam_track_options *o) {
    memset(o, 0, sizeof(*o));
    o->out_dir = ".";
    o->format = SAM_TRACK_PNG;
    o->direction = SAM_TRACK_FORWARD;
    o->video = sam2d_video_default_params();
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    const sam_track_options *o;
    int N, W, H;
    json_t **rec;       /* (N) per-frame objects array (RLE / COCO), NULL until the frame is output */
    uint8_t *seen;      /* (N) frame has an output */
    uint8_t *ids;       /* (H, W) PNG id map */
    sam2d_status err;   /* first failure inside the callback */
    int tracked, track_total;
    sam_track_stats *stats;
    double write_s;
} track_writer;

static sam2d_status write_png_frame(track_writer *w, const sam2d_video_frame_result *r) {
    const size_t hw = (size_t)w->W * w->H;
    memset(w->ids, 0, hw);
    /* objects come in creation order = ascending id: a later (larger) id wins on overlap */
    for (int k = 0; k < r->num_objects; k++) {
        const float *lg = r->logits + (size_t)k * hw;
        const uint8_t id = (uint8_t)r->obj_ids[k];
        for (size_t i = 0; i < hw; i++)
            if (lg[i] > 0.0f) w->ids[i] = id;
    }
    uint8_t *png = NULL;
    size_t len = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%05d.png", w->o->out_dir, r->frame_idx);
    sam2d_status st = sam_mask_png_encode_palette(w->ids, w->H, w->W, &png, &len);
    if (st == SAM2D_OK) st = sam_write_file(path, png, len);
    sam_free(png);
    return st;
}

/* The objects array of one frame, as the service streams it. */
static sam2d_status frame_objects_json(track_writer *w, const sam2d_video_frame_result *r, json_t **out) {
    const size_t hw = (size_t)w->W * w->H;
    json_t *arr = json_array();
    if (!arr) return SAM_ERR(SAM2D_ERR_NOMEM, "track: no memory");
    for (int k = 0; k < r->num_objects; k++) {
        const float *lg = r->logits + (size_t)k * hw;
        sam_rle rle = {0};
        char *counts = NULL;
        sam2d_status st = sam_rle_encode_f32(lg, w->H, w->W, 0.0f, &rle);
        if (st == SAM2D_OK) st = sam_rle_to_string(&rle, &counts);
        if (st != SAM2D_OK) {
            sam_rle_free(&rle);
            json_decref(arr);
            return st;
        }
        double score = r->object_scores[k];
        if (score != score) score = -1024.0; /* jansson refuses NaN */
        json_t *o = json_pack("{s:i,s:{s:[i,i],s:s},s:f}", "obj_id", r->obj_ids[k], "mask", "size", w->H, w->W,
                              "counts", counts, "object_score", score);
        if (o && w->o->format == SAM_TRACK_COCO) {
            /* area and bbox from the same > 0 test the RLE used */
            int x0 = w->W, y0 = w->H, x1 = -1, y1 = -1;
            for (int y = 0; y < w->H; y++) {
                const float *row = lg + (size_t)y * w->W;
                for (int x = 0; x < w->W; x++)
                    if (row[x] > 0.0f) {
                        if (x < x0) x0 = x;
                        if (x > x1) x1 = x;
                        if (y < y0) y0 = y;
                        y1 = y;
                    }
            }
            json_object_set_new(o, "area", json_integer((json_int_t)sam_rle_area(&rle)));
            if (x1 >= 0)
                json_object_set_new(o, "bbox", json_pack("[i,i,i,i]", x0, y0, x1 - x0 + 1, y1 - y0 + 1));
        }
        sam_free(counts);
        sam_rle_free(&rle);
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return SAM_ERR(SAM2D_ERR_NOMEM, "track: no memory");
        }
    }
    *out = arr;
    return SAM2D_OK;
}

static sam2d_status writer_frame(track_writer *w, const sam2d_video_frame_result *r) {
    if (r->frame_idx < 0 || r->frame_idx >= w->N)
        return SAM_ERR(SAM2D_ERR_INTERNAL, "track: result for frame %d of %d", r->frame_idx, w->N);
    double t0 = now_s();
    sam2d_status st = SAM2D_OK;
    int64_t fg = 0;
    const size_t hw = (size_t)w->W * w->H;
    for (int k = 0; k < r->num_objects; k++) {
        const float *lg = r->logits + (size_t)k * hw;
        for (size_t i = 0; i < hw; i++) fg += lg[i] > 0.0f;
    }
    if (w->o->format == SAM_TRACK_PNG) {
        st = write_png_frame(w, r);
    } else {
        json_t *arr = NULL;
        st = frame_objects_json(w, r, &arr);
        if (st == SAM2D_OK) {
            if (w->rec[r->frame_idx]) json_decref(w->rec[r->frame_idx]); /* a revisited frame: the last output wins */
            w->rec[r->frame_idx] = arr;
        }
    }
    if (st == SAM2D_OK && w->stats) {
        if (!w->seen[r->frame_idx]) w->stats->frames_written++;
        w->stats->mask_pixels += fg;
    }
    w->seen[r->frame_idx] = 1;
    w->write_s += now_s() - t0;
    return st;
}

static int propagate_cb(void *user, const sam2d_video_frame_result *r) {
    track_writer *w = user;
    sam2d_status st = writer_frame(w, r);
    if (st != SAM2D_OK) {
        w->err = st;
        return 1;
    }
    w->tracked++;
    if (w->o->progress) w->o->progress(w->o->progress_user, "track", w->tracked, w->track_total);
    return w->o->cancel && *w->o->cancel;
}

static sam2d_status write_jsonl(track_writer *w) {
    char path[4200];
    snprintf(path, sizeof path, "%s/masks.jsonl", w->o->out_dir);
    FILE *f = fopen(path, "w");
    if (!f) return SAM_ERR(SAM2D_ERR_IO, "cannot write %s", path);
    bool ok = true;
    for (int i = 0; i < w->N && ok; i++) {
        if (!w->rec[i]) continue;
        json_t *line = json_pack("{s:i,s:O}", "frame_idx", i, "objects", w->rec[i]);
        char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
        ok = s && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
        free(s);
        json_decref(line);
    }
    if (fclose(f) != 0) ok = false;
    return ok ? SAM2D_OK : SAM_ERR(SAM2D_ERR_IO, "cannot write %s", path);
}

static sam2d_status write_coco(track_writer *w, const char *video_name, double fps) {
    json_t *root = json_object(), *images = json_array(), *anns = json_array();
    json_object_set_new(root, "info",
                        json_pack("{s:s,s:s,s:i,s:i,s:i,s:f}", "description", "sam2d track", "video", video_name,
                                  "width", w->W, "height", w->H, "num_frames", w->N, "fps", fps));
    json_object_set_new(root, "images", images);
    json_object_set_new(root, "annotations", anns);
    json_object_set_new(root, "categories", json_pack("[{s:i,s:s}]", "id", 1, "name", "object"));
    json_int_t ann_id = 1;
    for (int i = 0; i < w->N; i++) {
        char name[32];
        snprintf(name, sizeof name, "%05d.jpg", i);
        json_array_append_new(images, json_pack("{s:i,s:i,s:s,s:i,s:i}", "id", i + 1, "frame_idx", i, "file_name",
                                                name, "width", w->W, "height", w->H));
        if (!w->rec[i]) continue;
        size_t k;
        json_t *o;
        json_array_foreach(w->rec[i], k, o) {
            json_int_t area = json_integer_value(json_object_get(o, "area"));
            if (area <= 0) continue; /* COCO has no empty annotations */
            int obj = (int)json_integer_value(json_object_get(o, "obj_id"));
            json_array_append_new(
                anns, json_pack("{s:I,s:i,s:i,s:i,s:i,s:O,s:I,s:O,s:i,s:O}", "id", ann_id++, "image_id", i + 1,
                                "category_id", 1, "obj_id", obj, "track_id", obj, "segmentation",
                                json_object_get(o, "mask"), "area", area, "bbox", json_object_get(o, "bbox"),
                                "iscrowd", 0, "score", json_object_get(o, "object_score")));
        }
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/annotations.json", w->o->out_dir);
    int rc = json_dump_file(root, path, JSON_COMPACT);
    json_decref(root);
    return rc == 0 ? SAM2D_OK : SAM_ERR(SAM2D_ERR_IO, "cannot write %s", path);
}

/* ---------------------------------------------------------------- run */

/* Every frame resized to S x S as SAM 2's loader does, decoded one at a time so
 * only one original frame is ever held. */
/* Decode one frame at a time straight into the session (which keeps it at
 * model resolution): only one original-size frame is ever held. */
static sam2d_status decode_frames(sam_track_job *j, sam2d_video_session *vs, const sam_track_options *o,
                                  sam_track_stats *stats) {
    uint8_t *orig = sam_malloc((size_t)j->width * j->height * 3); /* (H, W, 3) one decoded frame */
    sam2d_status st = orig ? SAM2D_OK : SAM_ERR(SAM2D_ERR_NOMEM, "no memory for a %dx%d frame", j->width, j->height);
    for (int i = 0; st == SAM2D_OK && i < j->num_frames; i++) {
        if (o->cancel && *o->cancel) {
            st = SAM_ERR(SAM2D_ERR_CANCELLED, "interrupted while decoding frame %d of %d", i, j->num_frames);
            break;
        }
        st = sam_frame_source_get(j->src, i, orig);
        if (st != SAM2D_OK) {
            sam_error_wrap(st, "decoding frame %d: ", i);
            break;
        }
        st = sam2d_video_session_set_frame(vs, i, orig, j->width, j->height);
        if (o->progress) o->progress(o->progress_user, "decode", i + 1, j->num_frames);
    }
    if (stats) stats->source_bytes = sam_frame_source_resident_bytes(j->src);
    sam_free(orig);
    return st;
}

/* One add_new_points_or_box / add_new_mask call. A mask of any size is taken
 * (the session resizes it to S x S as the reference does). */
static sam2d_status add_group(sam2d_video_session *vs, const track_group *g) {
    sam2d_video_frame_result r;
    if (!g->mask_path)
        return sam2d_video_add_points(vs, g->frame, g->obj_id, g->n ? g->points : NULL, g->n ? g->labels : NULL, g->n,
                                      g->has_box ? g->box : NULL, true, &r);
    uint8_t *png = NULL, *mask = NULL;
    size_t n = 0;
    int mh = 0, mw = 0;
    sam2d_status st = sam_read_file(g->mask_path, (size_t)256 << 20, &png, &n);
    if (st == SAM2D_OK) st = sam_mask_png_decode_binary(png, n, 16384, &mask, &mh, &mw);
    if (st != SAM2D_OK) sam_error_wrap(st, "mask prompt %s: ", g->mask_path);
    if (st == SAM2D_OK) st = sam2d_video_add_mask(vs, g->frame, g->obj_id, mask, mh, mw, &r);
    sam_free(png);
    sam_free(mask);
    return st;
}

sam2d_status sam_track_job_run(sam_track_job *j, sam2d_model *model, const sam_track_prompts *p,
                               const sam_track_options *o, sam_track_stats *stats) {
    if (!j || !model || !p || !o || !o->out_dir) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "track: missing argument");
    if (j->ran || !j->src) return SAM_ERR(SAM2D_ERR_STATE, "track: a job runs once");
    j->ran = true;
    SAM_TRY(sam_track_prompts_validate(p, j->num_frames, j->width, j->height, o->format, NULL));
    sam_track_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof(*stats));
    const int N = j->num_frames, W = j->width, H = j->height, S = sam2d_model_image_size(model);
    stats->num_frames = N;
    stats->width = W;
    stats->height = H;
    stats->image_size = S;
    stats->frame_bytes = (size_t)S * S * 3;
    SAM_TRY(sam_replay_mkdirs(o->out_dir));

    /* frames: decoded one at a time into the session; the source (e.g. the
     * file's bytes) is released before tracking starts */
    double t0 = now_s();
    sam2d_video_session *vs = NULL;
    SAM_TRY(sam2d_video_session_begin(model, N, W, H, &o->video, &vs));
    sam2d_status st = decode_frames(j, vs, o, stats);
    const double fps = sam_frame_source_fps(j->src);
    sam_frame_source_free(j->src);
    j->src = NULL;
    if (st != SAM2D_OK) {
        sam2d_video_session_free(vs);
        vs = NULL;
    }
    stats->decode_s = now_s() - t0;
    if (st != SAM2D_OK) return st;

    track_writer w = {.o = o, .N = N, .W = W, .H = H, .stats = stats};
    const track_group **order = sam_malloc((size_t)p->n * sizeof(*order)); /* (n) groups in call order */
    w.seen = sam_calloc((size_t)N, 1);
    if (o->format == SAM_TRACK_PNG) w.ids = sam_malloc((size_t)W * H);
    else w.rec = sam_calloc((size_t)N, sizeof(json_t *));
    if (!order || !w.seen || (o->format == SAM_TRACK_PNG ? !w.ids : !w.rec)) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "track: no memory");
        goto done;
    }

    /* prompts: objects in ascending id, one call per (frame, object) */
    t0 = now_s();
    int first = N;
    for (int i = 0; i < p->n; i++) {
        order[i] = &p->g[i];
        if (p->g[i].frame < first) first = p->g[i].frame;
    }
    qsort(order, (size_t)p->n, sizeof(*order), group_cmp);
    for (int i = 0; st == SAM2D_OK && i < p->n; i++) {
        if (o->cancel && *o->cancel) {
            st = SAM_ERR(SAM2D_ERR_CANCELLED, "interrupted while adding prompts");
            break;
        }
        st = add_group(vs, order[i]);
        if (st != SAM2D_OK)
            sam_error_wrap(st, "prompt on frame %d for object %d: ", order[i]->frame, order[i]->obj_id);
        if (o->progress) o->progress(o->progress_user, "prompt", i + 1, p->n);
    }
    stats->num_objects = sam2d_video_num_objects(vs);
    stats->prompt_s = now_s() - t0;
    if (st != SAM2D_OK) goto done;

    /* propagation from the first prompted frame (the reference's default start) */
    t0 = now_s();
    const bool fwd = o->direction != SAM_TRACK_REVERSE, rev = o->direction != SAM_TRACK_FORWARD;
    w.track_total = (fwd ? N - first : 0) + (rev ? first + 1 : 0);
    bool skipped = false; /* --both interrupted between its two passes */
    if (fwd) st = sam2d_video_propagate(vs, -1, false, -1, propagate_cb, &w);
    if (st == SAM2D_OK && rev) {
        if (fwd && o->cancel && *o->cancel) skipped = true;
        else st = sam2d_video_propagate(vs, -1, true, -1, propagate_cb, &w);
    }
    if (st != SAM2D_OK && w.err != SAM2D_OK) st = w.err; /* the callback's failure, not "cancelled" */
    const bool cancelled = skipped || (w.err == SAM2D_OK && st == SAM2D_ERR_CANCELLED);
    stats->frames_tracked = w.tracked;
    stats->track_s = now_s() - t0 - w.write_s;
    stats->session_bytes = sam2d_video_session_memory_bytes(vs);
    if (st != SAM2D_OK && !cancelled) goto done;

    /* an interrupted run still leaves the masks of the frames it finished */
    t0 = now_s();
    st = SAM2D_OK;
    if (o->format == SAM_TRACK_RLE) st = write_jsonl(&w);
    else if (o->format == SAM_TRACK_COCO) st = write_coco(&w, j->path ? j->path : "", fps);
    stats->write_s = w.write_s + now_s() - t0;
    if (st == SAM2D_OK && cancelled)
        st = SAM_ERR(SAM2D_ERR_CANCELLED, "interrupted after %d of %d tracking steps; the masks of %d frame(s) were written",
                     w.tracked, w.track_total, stats->frames_written);

done:
    if (w.rec)
        for (int i = 0; i < N; i++)
            if (w.rec[i]) json_decref(w.rec[i]);
    sam_free(w.rec);
    sam_free(w.seen);
    sam_free(w.ids);
    sam_free(order);
    sam2d_video_session_free(vs);
    return st;
}
