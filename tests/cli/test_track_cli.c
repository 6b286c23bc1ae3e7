/* `sam2d track` (CLI) end to end with the golden micro model:
 *   - video.mp4, one click, PNG: a palette PNG for every frame, summary line;
 *   - the golden scenario s09 (mask on frame 2 for object 3, two clicks for
 *     object 4, propagate forwards then backwards) as one --both run on the
 *     JPEG folder, RLE output: every frame's masks equal the reference's
 *     (logit > 0) wherever |reference logit| >= 1e-4 (the random-weight
 *     model's logits are tiny, so smaller ones are float noise);
 *   - coco-json and --reverse outputs; --progress draws on stderr;
 *   - every usage error exits 2 with a message, every runtime failure 1. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/rle.h"
#include "test_util.h"

#define LOGIT_EPS 1e-4 /* reference logits smaller than this are not compared */

static char gold_[1024], tmp_[256], out_[512];

/* Run `sam2d track <args>` with the micro model; stdout/stderr to out_/{stdout,stderr}.txt. */
static int run_track(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' track --model '%s/model.safetensors' --config '%s/config.yaml' %s >'%s/stdout.txt' "
             "2>'%s/stderr.txt'",
             SAM2D_BINARY, gold_, gold_, args, tmp_, tmp_);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", tmp_, name);
    uint8_t *d = NULL;
    size_t n = 0;
    if (sam_read_file(p, 0, &d, &n) != SAM2D_OK) return NULL;
    char *s = malloc(n + 1);
    memcpy(s, d, n);
    s[n] = 0;
    sam_free(d);
    return s;
}

static bool file_has(const char *name, const char *needle) {
    char *s = slurp(name);
    bool ok = s && strstr(s, needle);
    if (!ok) fprintf(stderr, "  %s lacks '%s': %s\n", name, needle, s ? s : "(missing)");
    free(s);
    return ok;
}

static void set_out(const char *sub) {
    snprintf(out_, sizeof out_, "%s/%s", tmp_, sub);
}

static void test_png_mp4(void) {
    set_out("png");
    char args[2048];
    snprintf(args, sizeof args, "'%s/video.mp4' --prompt 0:1:95,115 --out '%s'", gold_, out_);
    CHECK(run_track(args) == 0);
    CHECK(file_has("stdout.txt", "over 10/10 frame(s) of 320x240, png written"));
    int fg_frames = 0;
    for (int f = 0; f < 10; f++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%05d.png", out_, f);
        uint8_t *png = NULL, *ids = NULL;
        size_t n = 0;
        int h = 0, w = 0;
        CHECK_MSG(sam_read_file(p, 0, &png, &n) == SAM2D_OK, "%s missing", p);
        if (!png) continue;
        CHECK(sam_mask_png_decode_palette(png, n, 0, &ids, &h, &w) == SAM2D_OK);
        CHECK(h == 240 && w == 320);
        int bad = 0, fg = 0;
        for (int i = 0; ids && i < h * w; i++) {
            bad += ids[i] > 1;
            fg += ids[i] == 1;
        }
        CHECK(bad == 0);
        fg_frames += fg > 0;
        sam_free(png);
        sam_free(ids);
    }
    printf("png: 10 palette PNGs, %d with a non-empty mask\n", fg_frames);
    CHECK(fg_frames > 0);
}

/* Read masks.jsonl into per-frame, per-object masks: masks[(f * n_obj + k) * hw], ids in order. */
static int read_jsonl(const char *dir, int N, int H, int W, int n_obj, const int *ids, uint8_t *masks, int *frames) {
    char p[700];
    snprintf(p, sizeof p, "%s/masks.jsonl", dir);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *js = json_loads(line, 0, NULL);
        CHECK(js != NULL);
        if (!js) continue;
        int fi = (int)json_integer_value(json_object_get(js, "frame_idx"));
        CHECK(fi >= 0 && fi < N);
        if (frames) frames[lines] = fi;
        json_t *objs = json_object_get(js, "objects");
        CHECK((int)json_array_size(objs) == n_obj);
        for (int k = 0; k < n_obj && k < (int)json_array_size(objs) && fi >= 0 && fi < N; k++) {
            json_t *o = json_array_get(objs, (size_t)k), *m = json_object_get(o, "mask");
            CHECK(json_integer_value(json_object_get(o, "obj_id")) == ids[k]);
            CHECK(json_is_number(json_object_get(o, "object_score")));
            CHECK(json_integer_value(json_array_get(json_object_get(m, "size"), 0)) == H &&
                  json_integer_value(json_array_get(json_object_get(m, "size"), 1)) == W);
            if (masks)
                CHECK(sam_rle_string_to_mask(json_string_value(json_object_get(m, "counts")), H, W,
                                             masks + ((size_t)fi * n_obj + k) * H * W) == SAM2D_OK);
        }
        json_decref(js);
        lines++;
    }
    free(line);
    fclose(f);
    return lines;
}

static void test_s09_both(void) {
    set_out("s09");
    const int N = 10, H = 240, W = 320, ids[2] = {3, 4};
    /* the scenario's mask as a PNG */
    char p[1400], args[4096];
    sam_npy m = {0};
    snprintf(p, sizeof p, "%s/inputs/s09b_mask_f002_u8.npy", gold_);
    CHECK(sam_npy_read(p, &m) == SAM2D_OK && m.count == H * W);
    if (m.count != H * W) return;
    uint8_t *bin = malloc((size_t)H * W), *png = NULL;
    size_t n = 0;
    for (int i = 0; i < H * W; i++) bin[i] = m.data[i] > 0.5f;
    sam_npy_free(&m);
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/s09_mask.png", tmp_);
    CHECK(sam_mask_png_encode_binary(bin, H, W, &png, &n) == SAM2D_OK && sam_write_file(mpath, png, n) == SAM2D_OK);
    sam_free(png);
    free(bin);
    /* object 4's clicks given before object 3's mask: the CLI still adds objects in ascending id */
    snprintf(args, sizeof args,
             "'%s/video' --prompt 2:4:219,83 --mask 2:3:%s --prompt 2:4:234,92,1 --both --format rle --out '%s'",
             gold_, mpath, out_);
    CHECK(run_track(args) == 0);
    CHECK(file_has("stdout.txt", "tracked 2 object(s) over 10/10 frame(s)"));
    uint8_t *ours = calloc((size_t)N * 2, (size_t)H * W);
    int frames[16];
    int lines = read_jsonl(out_, N, H, W, 2, ids, ours, frames);
    CHECK_MSG(lines == N, "%d lines", lines);
    for (int i = 0; i < lines && i < N; i++) CHECK(frames[i] == i); /* one line per frame, in frame order */
    /* reference: s09c for frame 2, s09d forwards (3..9), s09e backwards (1, 0) */
    int64_t flips = 0, compared = 0, fg = 0;
    for (int f = 0; f < N; f++) {
        const char *step = f == 2 ? "s09c" : f > 2 ? "s09d" : "s09e";
        snprintf(p, sizeof p, "%s/out/%s_f%03d_video_res_logits.npy", gold_, step, f);
        sam_npy r = {0};
        CHECK_MSG(sam_npy_read(p, &r) == SAM2D_OK && r.count == 2 * H * W, "%s", p);
        if (r.count != 2 * H * W) continue;
        int64_t ff = 0;
        for (int64_t i = 0; i < r.count; i++) {
            if (fabsf(r.data[i]) < LOGIT_EPS) continue;
            compared++;
            fg += ours[(size_t)f * 2 * H * W + i] != 0;
            ff += (ours[(size_t)f * 2 * H * W + i] != 0) != (r.data[i] > 0);
        }
        if (ff) printf("  frame %d: %lld pixels differ from the reference\n", f, (long long)ff);
        flips += ff;
        sam_npy_free(&r);
    }
    printf("s09 --both: %d frames x 2 objects, %lld pixels compared (|ref logit| >= %g), %lld foreground, %lld differ\n",
           N, (long long)compared, LOGIT_EPS, (long long)fg, (long long)flips);
    CHECK(compared > 0 && fg > 0);
    CHECK(flips == 0);
    /* the same run as palette PNGs: pixel = the largest id whose mask covers it */
    char png_out[700];
    snprintf(png_out, sizeof png_out, "%s/s09png", tmp_);
    snprintf(args, sizeof args, "'%s/video' --prompt 2:4:219,83 --mask 2:3:%s --prompt 2:4:234,92,1 --both --out '%s'",
             gold_, mpath, png_out);
    CHECK(run_track(args) == 0);
    int64_t png_diff = 0;
    for (int f = 0; f < N; f++) {
        snprintf(p, sizeof p, "%s/%05d.png", png_out, f);
        uint8_t *pb = NULL, *pid = NULL;
        size_t pn = 0;
        int h = 0, w = 0;
        CHECK_MSG(sam_read_file(p, 0, &pb, &pn) == SAM2D_OK && sam_mask_png_decode_palette(pb, pn, 0, &pid, &h, &w) == SAM2D_OK &&
                      h == H && w == W,
                  "%s", p);
        for (int i = 0; pid && h == H && w == W && i < H * W; i++) {
            const uint8_t *m3 = ours + (size_t)f * 2 * H * W, *m4 = m3 + (size_t)H * W;
            int want = m4[i] ? 4 : m3[i] ? 3 : 0;
            png_diff += pid[i] != want;
        }
        sam_free(pb);
        sam_free(pid);
    }
    printf("s09 png: %lld pixels differ from the RLE masks combined (larger id on top)\n", (long long)png_diff);
    CHECK(png_diff == 0);
    free(ours);
}

static void test_coco_reverse_progress(void) {
    char args[2048], p[700];
    /* coco-json */
    set_out("coco");
    snprintf(args, sizeof args, "'%s/video.mp4' --prompt 0:7:95,115 --box 0:9:182,42,268,108 --format coco-json --out '%s'",
             gold_, out_);
    CHECK(run_track(args) == 0);
    snprintf(p, sizeof p, "%s/annotations.json", out_);
    json_t *js = json_load_file(p, 0, NULL);
    CHECK_MSG(js != NULL, "%s unreadable", p);
    if (js) {
        CHECK(json_array_size(json_object_get(js, "images")) == 10);
        CHECK(json_array_size(json_object_get(js, "categories")) == 1);
        json_t *anns = json_object_get(js, "annotations");
        size_t k;
        json_t *a;
        int bad = 0, objs[2] = {0, 0};
        json_array_foreach(anns, k, a) {
            json_t *seg = json_object_get(a, "segmentation"), *bb = json_object_get(a, "bbox");
            int obj = (int)json_integer_value(json_object_get(a, "obj_id"));
            if (obj == 7) objs[0]++;
            else if (obj == 9) objs[1]++;
            else bad++;
            sam_rle r = {0};
            if (sam_rle_from_string(json_string_value(json_object_get(seg, "counts")), 240, 320, &r) != SAM2D_OK) {
                bad++;
                continue;
            }
            bad += (json_int_t)sam_rle_area(&r) != json_integer_value(json_object_get(a, "area"));
            bad += json_array_size(bb) != 4 || json_integer_value(json_array_get(bb, 2)) <= 0;
            bad += json_integer_value(json_object_get(a, "image_id")) < 1 ||
                   json_integer_value(json_object_get(a, "image_id")) > 10;
            sam_rle_free(&r);
        }
        printf("coco: %zu annotations (object 7: %d, object 9: %d), %d bad\n", json_array_size(anns), objs[0], objs[1],
               bad);
        CHECK(json_array_size(anns) > 0 && bad == 0);
        json_decref(js);
    }
    /* --reverse from frame 5: frames 5..0 only */
    set_out("reverse");
    snprintf(args, sizeof args, "'%s/video' --prompt 5:1:125,127 --reverse --format rle --out '%s' --progress", gold_,
             out_);
    CHECK(run_track(args) == 0);
    int ids[1] = {1}, frames[16];
    int lines = read_jsonl(out_, 10, 240, 320, 1, ids, NULL, frames);
    CHECK_MSG(lines == 6, "--reverse from 5: %d lines", lines);
    for (int i = 0; i < lines && i < 6; i++) CHECK(frames[i] == i);
    CHECK(file_has("stdout.txt", "over 6/10 frame(s)"));
    CHECK(file_has("stderr.txt", "frames/s"));
    CHECK(file_has("stderr.txt", "track "));
    /* one object prompted on two frames, another on one, both directions from frame 3: every frame once */
    set_out("both");
    snprintf(args, sizeof args,
             "'%s/video' --prompt 6:1:125,127 --prompt 3:1:95,115 --box 3:2:182,42,268,108 --both --format rle "
             "--out '%s' --device cpu",
             gold_, out_);
    CHECK(run_track(args) == 0);
    int ids2[2] = {1, 2};
    lines = read_jsonl(out_, 10, 240, 320, 2, ids2, NULL, frames);
    CHECK_MSG(lines == 10, "--both from 3: %d lines", lines);
    for (int i = 0; i < lines && i < 10; i++) CHECK(frames[i] == i);
    CHECK(file_has("stdout.txt", "tracked 2 object(s) over 10/10 frame(s)"));

    /* the same job on devsim (the model on "device" memory): masks.jsonl byte for byte the cpu run's */
    char cpu_out[1100];
    snprintf(cpu_out, sizeof cpu_out, "%s", out_);
    set_out("both-devsim");
    snprintf(args, sizeof args,
             "'%s/video' --prompt 6:1:125,127 --prompt 3:1:95,115 --box 3:2:182,42,268,108 --both --format rle "
             "--out '%s' --device devsim",
             gold_, out_);
    CHECK(run_track(args) == 0);
    char cmp[2400];
    snprintf(cmp, sizeof cmp, "cmp -s '%s/masks.jsonl' '%s/masks.jsonl'", cpu_out, out_);
    CHECK_MSG(system(cmp) == 0, "track on devsim: masks.jsonl differs from the cpu run's");
}

static void test_errors(void) {
    char args[2048];
    set_out("err");
    struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"", 2, "no VIDEO"},
        {"'@G/video.mp4' --prompt 0:1:95,115", 2, "--out"},
        {"'@G/video.mp4' --out '@O'", 2, "at least one --prompt"},
        {"'@G/video.mp4' --prompt 0:1:abc --out '@O'", 2, "bad --prompt"},
        {"'@G/video.mp4' --prompt 1:95,115 --out '@O'", 2, "bad --prompt"},
        {"'@G/video.mp4' --prompt 0:1:95,115,2 --out '@O'", 2, "bad --prompt"},
        {"'@G/video.mp4' --box 0:1:10,10,5,5 --out '@O'", 2, "bad --box"},
        {"'@G/video.mp4' --box 0:1:1,1,5,5 --box 0:1:2,2,6,6 --out '@O'", 2, "two boxes"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --mask 0:1:x.png --out '@O'", 2, "mask prompt cannot"},
        {"'@G/video.mp4' --prompt 10:1:95,115 --out '@O'", 2, "the video has 10 frames"},
        {"'@G/video.mp4' --prompt 0:300:95,115 --out '@O'", 2, "palette PNG"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out '@O' --format gif", 2, "unknown --format"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out '@O' --reverse --both", 2, "at most one"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out '@O' --bogus", 2, "unexpected argument"},
        {"'@G/video.mp4' --prompt", 2, "needs a value"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out '@O' --device gpu", 2, "expected auto, cpu, cuda, cuda:N or devsim"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out '@O' --device", 2, "needs a value"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out '@O' --max-frames 5", 1, "too many frames"},
        {"'@G/no_such_video.mp4' --prompt 0:1:95,115 --out '@O'", 1, "no_such_video.mp4"},
        {"'@G/config.yaml' --prompt 0:1:95,115 --out '@O'", 1, "config.yaml"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --mask 0:2:/nonexistent/m.png --out '@O'", 1, "m.png"},
        {"'@G/video.mp4' --prompt 0:1:95,115 --out /proc/sam2d_no_such_dir/x", 1, "cannot create directory"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        /* expand @G (golden folder) and @O (output folder) */
        char *d = args;
        for (const char *s = cases[c].args; *s && d < args + sizeof args - 1100; s++) {
            if (s[0] == '@' && (s[1] == 'G' || s[1] == 'O')) {
                d += sprintf(d, "%s", s[1] == 'G' ? gold_ : out_);
                s++;
            } else {
                *d++ = *s;
            }
        }
        *d = 0;
        int rc = run_track(args);
        CHECK_MSG(rc == cases[c].rc, "`track %s`: exit %d, want %d", cases[c].args, rc, cases[c].rc);
        CHECK_MSG(file_has("stderr.txt", cases[c].msg), "`track %s`: message", cases[c].args);
        if (cases[c].rc == 2 && cases[c].args[0]) CHECK(file_has("stderr.txt", "usage: sam2d track"));
    }
    /* a missing model fails at run time, not as a usage error */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' track '%s/video.mp4' --model /nonexistent/m.pt --prompt 0:1:95,115 --out '%s' >/dev/null "
             "2>'%s/stderr.txt'",
             SAM2D_BINARY, gold_, out_, tmp_);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    CHECK(file_has("stderr.txt", "/nonexistent/m.pt"));
    printf("errors: %zu usage / runtime failures checked\n", sizeof cases / sizeof *cases + 1);
}

int main(void) {
    snprintf(gold_, sizeof gold_, "%s/golden/micro", SAM2D_TEST_DATA);
    snprintf(tmp_, sizeof tmp_, "/tmp/sam2d_test_track_XXXXXX");
    CHECK(mkdtemp(tmp_) != NULL);
    test_png_mp4();
    test_s09_both();
    test_coco_reverse_progress();
    test_errors();
    int rc = test_finish();
    if (rc == 0) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_);
        if (system(cmd) != 0) return 1;
    }
    return rc;
}
