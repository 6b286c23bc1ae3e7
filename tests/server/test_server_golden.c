/* End to end over HTTP: upload a golden folder's JPEG frames as a tar, replay
 * its video scenario through the API, and compare every returned mask with
 * Meta's reference logits: equal except pixels where |logit| < 1e-4. Both
 * sets run on the cpu back end and again with SAM2_DEVICE=devsim (the model on
 * "device" memory under the GPU rules), whose every mask must be the cpu
 * run's, byte for byte. SAM2D_TEST_DEVICE=cuda (bench/gpu/device_check.sh) adds
 * a pass on that device, against the reference with the same tolerance. */
#define _GNU_SOURCE
#include <jansson.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/rle.h"
#include "server/server_harness.h"
#include "test_util.h"

#define AMBIGUOUS 1e-4f

typedef struct {
    json_t *m;
    const char *dir;
    int port;
    char sid[64];
    int H, W;
    long long pixels_checked, ambiguous_flips;
    char *trace;          /* every returned "objects" array, in order (malloc'd) */
    size_t trace_len;
} ctx;

static void trace_add(ctx *c, json_t *objs) {
    char *t = json_dumps(objs, JSON_COMPACT | JSON_SORT_KEYS);
    if (!t) return;
    size_t n = strlen(t);
    c->trace = realloc(c->trace, c->trace_len + n + 2);
    memcpy(c->trace + c->trace_len, t, n);
    c->trace_len += n;
    c->trace[c->trace_len++] = '\n';
    c->trace[c->trace_len] = 0;
    free(t);
}

static const char *file_of(ctx *c, const char *logical) {
    json_t *map = json_object_get(c->m, "logical_name_to_file");
    json_t *f = json_object_get(map, logical);
    return f ? json_string_value(f) : logical;
}

/* Compare one {frame_idx, objects} JSON object with the reference file. */
static void compare_frame(ctx *c, const char *tag, json_t *got, json_t *want_entry) {
    int frame = (int)json_integer_value(json_object_get(want_entry, "frame_idx"));
    json_t *ref = json_object_get(want_entry, "video_res_logits");
    const char *logical = json_is_string(ref) ? json_string_value(ref)
                                              : json_string_value(json_object_get(ref, "logical_name"));
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", c->dir, file_of(c, logical));
    sam_npy want;
    if (sam_npy_read(path, &want) != SAM2D_OK) {
        CHECK_MSG(0, "cannot read %s", path);
        return;
    }
    CHECK_MSG(json_integer_value(json_object_get(got, "frame_idx")) == frame, "%s: frame %lld, expected %d", tag,
              json_integer_value(json_object_get(got, "frame_idx")), frame);
    json_t *objs = json_object_get(got, "objects"), *ids = json_object_get(want_entry, "obj_ids");
    trace_add(c, objs);
    size_t n = json_array_size(ids);
    CHECK_MSG(json_array_size(objs) == n, "%s f%d: %zu objects, expected %zu", tag, frame, json_array_size(objs), n);
    size_t plane = (size_t)c->H * c->W;
    uint8_t *mask = malloc(plane);
    int worst_hard = 0;
    for (size_t i = 0; i < n && i < json_array_size(objs); i++) {
        json_t *o = json_array_get(objs, i);
        CHECK(json_integer_value(json_object_get(o, "obj_id")) == json_integer_value(json_array_get(ids, i)));
        json_t *mk = json_object_get(o, "mask");
        const char *counts = json_string_value(json_object_get(mk, "counts"));
        if (!counts || sam_rle_string_to_mask(counts, c->H, c->W, mask) != SAM2D_OK) {
            CHECK_MSG(0, "%s f%d obj %zu: bad RLE", tag, frame, i);
            continue;
        }
        const float *lg = want.data + plane * i;
        int hard = 0, soft = 0;
        for (size_t k = 0; k < plane; k++) {
            int ref_on = lg[k] > 0;
            if (ref_on != mask[k]) {
                if (fabsf(lg[k]) < AMBIGUOUS) soft++;
                else hard++;
            }
        }
        c->pixels_checked += (long long)plane;
        c->ambiguous_flips += soft;
        if (hard > worst_hard) worst_hard = hard;
    }
    CHECK_MSG(worst_hard == 0, "%s frame %d: %d pixels differ where |logit| >= %g", tag, frame, worst_hard,
              (double)AMBIGUOUS);
    free(mask);
    sam_npy_free(&want);
}

/* The reference results of one step, in order. */
static int step_results(ctx *c, const char *tag, json_t **out, int cap) {
    int n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(c->m, "video_results"), i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "step")), tag) && json_object_get(r, "frame_idx") &&
            n < cap)
            out[n++] = r;
    }
    return n;
}

static char *api(ctx *c, const char *action, json_t *body, int *status) {
    char path[256];
    snprintf(path, sizeof path, "/session/%s/%s", c->sid, action);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    http_resp r;
    *status = -1;
    char *ret = NULL;
    if (http_json(c->port, "POST", path, text, &r) == 0) {
        *status = r.status;
        ret = strdup(r.body);
    }
    free(text);
    http_resp_free(&r);
    return ret;
}

/* Returns the set's trace (malloc'd; NULL when it did not run). */
static char *run_set(const char *set, const char *device) {
    ctx c = {0};
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, SAM2D_TEST_DATA "/golden/%s", set);
    c.dir = dir;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    c.m = json_load_file(path, 0, NULL);
    CHECK_MSG(c.m != NULL, "cannot read %s", path);
    if (!c.m) return NULL;
    json_t *video = json_object_get(c.m, "video");
    c.W = (int)json_integer_value(json_object_get(video, "width"));
    c.H = (int)json_integer_value(json_object_get(video, "height"));

    char ck[1100], cf[1100];
    snprintf(path, sizeof path, "%s/model.pt", dir);
    struct stat st;
    if (stat(path, &st) == 0) snprintf(ck, sizeof ck, "SAM2_CHECKPOINT=%s", path);
    else snprintf(ck, sizeof ck, "SAM2_CHECKPOINT=%s/model.safetensors", dir);
    snprintf(cf, sizeof cf, "SAM2_CONFIG=%s/config.yaml", dir);
    char dev[64];
    snprintf(dev, sizeof dev, "SAM2_DEVICE=%s", device);
    const char *env[] = {ck, cf, "SAM2_THREADS=2", dev, NULL};
    srv_proc p;
    CHECK_MSG(srv_start(&p, env, set) == 0, "%s: server on %s did not start", set, device);
    if (!p.pid) {
        srv_dump_log(&p);
        json_decref(c.m);
        return NULL;
    }
    char *health = NULL;
    char want_dev[64];
    snprintf(want_dev, sizeof want_dev, "\"device\":\"%s\"", device);
    CHECK(http_get(p.port, "/health", &health) == 200);
    CHECK_MSG(health && strstr(health, want_dev), "%s: /health %s", set, health ? health : "");
    free(health);
    c.port = p.port;
    snprintf(path, sizeof path, "%s/video", dir);
    tar_buf t = tar_of_jpegs(path, 100000);
    http_resp r;
    CHECK(http_upload(c.port, t.buf, t.len, "frames.tar", NULL, &r) == 0 && r.status == 200);
    json_str_field(r.body ? r.body : "", "session_id", c.sid, sizeof c.sid);
    http_resp_free(&r);
    free(t.buf);

    size_t si;
    json_t *step;
    json_array_foreach(json_object_get(c.m, "video_scenario"), si, step) {
        const char *tag = json_string_value(json_object_get(step, "tag"));
        const char *call = json_string_value(json_object_get(step, "call"));
        json_t *want[512];
        int nwant = step_results(&c, tag, want, 512), status;
        char *resp = NULL;
        if (!strcmp(call, "init_state")) continue;
        if (!strcmp(call, "add_new_points_or_box")) {
            json_t *b = json_object();
            json_object_set(b, "frame_idx", json_object_get(step, "frame_idx"));
            json_object_set(b, "obj_id", json_object_get(step, "obj_id"));
            if (json_object_get(step, "points")) {
                json_object_set(b, "points", json_object_get(step, "points"));
                json_object_set(b, "labels", json_object_get(step, "labels"));
            }
            if (json_object_get(step, "box")) json_object_set(b, "box", json_object_get(step, "box"));
            if (json_object_get(step, "clear_old_points"))
                json_object_set(b, "clear_old_points", json_object_get(step, "clear_old_points"));
            resp = api(&c, "prompt", b, &status);
        } else if (!strcmp(call, "add_new_mask")) {
            snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(step, "mask_file")));
            sam_npy mk;
            CHECK(sam_npy_read(path, &mk) == SAM2D_OK);
            int mh = (int)mk.shape[0], mw = (int)mk.shape[1];
            uint8_t *u8 = malloc((size_t)mh * mw);
            for (size_t k = 0; k < (size_t)mh * mw; k++) u8[k] = mk.data[k] > 0;
            char *counts = NULL;
            CHECK(sam_rle_mask_to_string(u8, mh, mw, &counts) == SAM2D_OK);
            json_t *b = json_pack("{s:O,s:O,s:{s:[i,i],s:s}}", "frame_idx", json_object_get(step, "frame_idx"),
                                  "obj_id", json_object_get(step, "obj_id"), "mask", "size", mh, mw, "counts",
                                  counts ? counts : "");
            sam_free(counts);
            free(u8);
            sam_npy_free(&mk);
            resp = api(&c, "mask", b, &status);
        } else if (!strcmp(call, "propagate_in_video")) {
            json_t *b = json_object();
            if (json_object_get(step, "start_frame_idx"))
                json_object_set(b, "start_frame_idx", json_object_get(step, "start_frame_idx"));
            if (json_object_get(step, "reverse")) json_object_set(b, "reverse", json_object_get(step, "reverse"));
            if (json_object_get(step, "max_frame_num_to_track"))
                json_object_set(b, "max_frames", json_object_get(step, "max_frame_num_to_track"));
            resp = api(&c, "propagate", b, &status);
            CHECK_MSG(status == 200, "%s: propagate %d %s", tag, status, resp ? resp : "");
            int line = 0;
            for (char *q = resp; q && *q;) {
                char *nl = strchr(q, '\n');
                if (nl) *nl = 0;
                json_t *lj = json_loads(q, 0, NULL);
                if (lj && json_object_get(lj, "done")) {
                    CHECK_MSG(json_integer_value(json_object_get(lj, "frames")) == nwant && !json_object_get(lj, "error"),
                              "%s: summary %s (expected %d frames)", tag, q, nwant);
                } else if (lj) {
                    if (line < nwant) compare_frame(&c, tag, lj, want[line]);
                    line++;
                }
                json_decref(lj);
                q = nl ? nl + 1 : q + strlen(q);
            }
            CHECK_MSG(line == nwant, "%s: %d frames streamed, reference %d", tag, line, nwant);
            printf("%s %s: %d frames compared\n", set, tag, line);
            free(resp);
            continue;
        } else if (!strcmp(call, "reset_state")) {
            resp = api(&c, "reset", json_object(), &status);
            CHECK(status == 200);
            free(resp);
            continue;
        } else if (!strcmp(call, "remove_object")) {
            resp = api(&c, "remove_object", json_pack("{s:O}", "obj_id", json_object_get(step, "obj_id")), &status);
            CHECK_MSG(status == 200, "%s: %d %s", tag, status, resp ? resp : "");
            free(resp);
            continue;
        } else {
            CHECK_MSG(0, "unknown call %s", call);
            continue;
        }
        CHECK_MSG(status == 200, "%s: %s -> %d %s", tag, call, status, resp ? resp : "");
        json_t *got = resp ? json_loads(resp, 0, NULL) : NULL;
        if (got && nwant == 1) compare_frame(&c, tag, got, want[0]);
        else CHECK_MSG(0, "%s: no comparable result", tag);
        printf("%s %s: compared\n", set, tag);
        json_decref(got);
        free(resp);
    }
    printf("%s on %s: %lld pixels compared, %lld flips where |logit| < %g (allowed)\n", set, device,
           c.pixels_checked, c.ambiguous_flips, (double)AMBIGUOUS);
    CHECK(c.pixels_checked > 0);
    CHECK(srv_stop(&p) == 0);
    if (test_failed_) srv_dump_log(&p);
    json_decref(c.m);
    return c.trace;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    static const char *const sets[] = {"micro", "shapes"};
    /* SAM2D_TEST_GOLDEN_SETS=micro: the GPU run's slimmed tree (bench/gpu/slim_tree.sh) has no shapes set */
    const char *only = getenv("SAM2D_TEST_GOLDEN_SETS");
    for (int i = 0; i < 2; i++) {
        if (only && *only && !strstr(only, sets[i])) {
            printf("%s: not run (SAM2D_TEST_GOLDEN_SETS=%s)\n", sets[i], only);
            continue;
        }
        char *cpu = run_set(sets[i], "cpu");
        char *dev = run_set(sets[i], "devsim");
        /* the same kernels on "device" memory: every mask identical to the cpu run's */
        CHECK_MSG(cpu && dev && !strcmp(cpu, dev), "%s: devsim masks differ from the cpu run's", sets[i]);
        printf("%s: devsim and cpu masks %s (%zu bytes of RLE JSON)\n", sets[i],
               cpu && dev && !strcmp(cpu, dev) ? "identical" : "DIFFER", cpu ? strlen(cpu) : 0);
        free(cpu);
        free(dev);
        const char *extra = getenv("SAM2D_TEST_DEVICE");
        if (extra && *extra) free(run_set(sets[i], extra));
    }
    return test_finish();
}
