/* `sam2d segment-image`: PNG masks + scores.json for clicks and a box on golden
 * micro's first frame, checked against the reference's image-scenario results. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "test_util.h"

#define TOL 1e-4 /* absolute, scores and logits */

static char gold_[1024], out_[1024];

static int run(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' segment-image '%s/video/00000.jpg' --model '%s/model.safetensors' --config '%s/config.yaml' "
             "--antialias off --out '%s' %s >/dev/null 2>&1",
             SAM2D_BINARY, gold_, gold_, gold_, out_, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Compare the run in out_ with the golden step `tag` (logits file gl, iou file gi). */
static void check_against(const char *tag, const char *gl, const char *gi, int want_masks) {
    char p[1400];
    snprintf(p, sizeof p, "%s/scores.json", out_);
    json_error_t jerr;
    json_t *js = json_load_file(p, 0, &jerr);
    CHECK_MSG(js != NULL, "%s: no scores.json", tag);
    if (!js) return;
    json_t *masks = json_object_get(js, "masks");
    CHECK((int)json_array_size(masks) == want_masks);
    sam_npy lg = {0}, iou = {0};
    snprintf(p, sizeof p, "%s/%s", gold_, gl);
    CHECK(sam_npy_read(p, &lg) == SAM2D_OK);
    snprintf(p, sizeof p, "%s/%s", gold_, gi);
    CHECK(sam_npy_read(p, &iou) == SAM2D_OK);
    int H = (int)json_integer_value(json_object_get(js, "height")), W = (int)json_integer_value(json_object_get(js, "width"));
    CHECK(lg.data && lg.ndim == 3 && lg.shape[1] == H && lg.shape[2] == W);
    for (int k = 0; k < want_masks && lg.data && iou.data; k++) {
        json_t *e = json_array_get(masks, (size_t)k);
        float score = (float)json_real_value(json_object_get(e, "score"));
        char lab[128];
        snprintf(lab, sizeof lab, "%s score %d", tag, k);
        CHECK_CLOSE_ARRAY(lab, &score, iou.data + k, 1, TOL);
        /* the PNG: foreground exactly where the reference logit > 0 (near-zero logits skipped) */
        snprintf(p, sizeof p, "%s/%s", out_, json_string_value(json_object_get(e, "file")));
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        CHECK(sam_image_decode_file(p, 0, &rgb, &w, &h) == SAM2D_OK);
        if (!rgb) continue;
        CHECK(w == W && h == H);
        int64_t diff = 0, area = 0;
        const float *ref = lg.data + (size_t)k * H * W;
        for (int64_t i = 0; i < (int64_t)H * W; i++) {
            bool fg = rgb[3 * i] > 0;
            area += fg;
            if (fabsf(ref[i]) >= TOL) diff += fg != (ref[i] > 0);
        }
        printf("%-48s %lld differing pixels, area %lld\n", p + strlen(out_) + 1, (long long)diff, (long long)area);
        CHECK(diff == 0);
        CHECK(area == json_integer_value(json_object_get(e, "area")));
        sam_free(rgb);
        /* --logits: the full-size logits too */
        const char *ln = json_string_value(json_object_get(e, "logits"));
        CHECK(ln != NULL);
        if (ln) {
            sam_npy o;
            snprintf(p, sizeof p, "%s/%s", out_, ln);
            if (sam_npy_read(p, &o) == SAM2D_OK) {
                snprintf(lab, sizeof lab, "%s logits %d", tag, k);
                CHECK(o.count == (int64_t)H * W);
                if (o.count == (int64_t)H * W) CHECK_CLOSE_ARRAY(lab, o.data, ref, (size_t)o.count, TOL);
                sam_npy_free(&o);
            } else {
                CHECK(0);
            }
        }
    }
    sam_npy_free(&lg);
    sam_npy_free(&iou);
    json_decref(js);
}

int main(void) {
    snprintf(gold_, sizeof gold_, "%s/golden/micro", SAM2D_TEST_DATA);
    snprintf(out_, sizeof out_, "/tmp/sam2d_test_segimg_%d", (int)getpid());
    /* one click: three masks (the reference's i_a) */
    CHECK(run("--point 95,115 --logits") == 0);
    check_against("click", "image/i_a_masks.npy", "image/i_a_iou_predictions.npy", 3);
    /* a box: one mask (i_b, dynamic multimask via stability inside the decoder) */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_);
    CHECK(system(cmd) == 0);
    CHECK(run("--box 182,42,268,108 --logits --device cpu") == 0);
    check_against("box", "image/i_b_logits_masks.npy", "image/i_b_iou_predictions.npy", 1);
    /* the same on devsim (the model on "device" memory): every file identical to the cpu run's */
    char cmp[4200];
    snprintf(cmp, sizeof cmp, "rm -rf '%s.cpu' && mv '%s' '%s.cpu'", out_, out_, out_);
    CHECK(system(cmp) == 0);
    CHECK(run("--box 182,42,268,108 --logits --device devsim") == 0);
    snprintf(cmp, sizeof cmp, "diff -r '%s.cpu' '%s' && rm -rf '%s.cpu'", out_, out_, out_);
    CHECK_MSG(system(cmp) == 0, "segment-image on devsim differs from the cpu run");
    CHECK(system(cmd) == 0);
    /* usage errors */
    CHECK(run("") == 2);                      /* no prompt */
    CHECK(run("--point 95") == 2);            /* malformed point */
    CHECK(run("--point 1,2,7") == 2);         /* bad label */
    CHECK(run("--box 10,10,5,5") == 2);       /* inverted box */
    CHECK(run("--bogus") == 2);
    CHECK(run("--point 95,115 --device gpu") == 2); /* not a device */
    CHECK(system(cmd) == 0);
    return test_finish();
}
