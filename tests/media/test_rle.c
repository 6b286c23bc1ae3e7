/* COCO RLE: bit-exact round trip of the 605 SA-V masks encoded by pycocotools,
 * areas as the annotation file states them, hand-checked strings, bad input. */
#include <jansson.h>
#include <stdio.h>

#include "core/alloc.h"
#include "media/rle.h"
#include "test_util.h"

static void check_sav(void) {
    json_error_t jerr;
    json_t *root = json_load_file(SAM2D_TEST_DATA "/media/sav_000001_manual.json", 0, &jerr);
    CHECK_MSG(root != NULL, "%s", jerr.text);
    if (!root) return;
    json_t *masklet = json_object_get(root, "masklet");
    size_t nf = json_array_size(masklet);
    int n_obj = (int)json_integer_value(json_object_get(root, "masklet_num"));
    double resolution = json_number_value(json_object_get(root, "video_resolution"));
    CHECK(nf == 121 && n_obj == 5);
    int total = 0, same = 0, decoded = 0;
    double area_sum[8] = {0};
    int visible[8] = {0}, first[8], changes[8] = {0}, prev_vis[8] = {0};
    for (int o = 0; o < 8; o++) first[o] = -1;
    uint8_t *mask = NULL;
    size_t mask_cap = 0;
    for (size_t f = 0; f < nf; f++) {
        json_t *objs = json_array_get(masklet, f);
        for (int o = 0; o < n_obj && o < 8; o++) {
            json_t *m = json_array_get(objs, (size_t)o);
            const char *counts = json_string_value(json_object_get(m, "counts"));
            json_t *size = json_object_get(m, "size");
            int h = (int)json_integer_value(json_array_get(size, 0));
            int w = (int)json_integer_value(json_array_get(size, 1));
            total++;
            if ((size_t)h * w > mask_cap) {
                sam_free(mask);
                mask_cap = (size_t)h * w;
                mask = sam_malloc(mask_cap);
            }
            if (sam_rle_string_to_mask(counts, h, w, mask) != SAM2D_OK) continue;
            decoded++;
            uint64_t area = 0;
            for (size_t i = 0; i < (size_t)h * w; i++) area += mask[i];
            sam_rle r;
            CHECK(sam_rle_from_string(counts, h, w, &r) == SAM2D_OK);
            CHECK(sam_rle_area(&r) == area);
            sam_rle_free(&r);
            char *again = NULL;
            if (sam_rle_mask_to_string(mask, h, w, &again) == SAM2D_OK && strcmp(again, counts) == 0) same++;
            else if (same + 5 > total) fprintf(stderr, "mismatch frame %zu obj %d:\n %s\n %s\n", f, o, counts, again);
            sam_free(again);
            int vis = area > 0;
            if (vis) {
                area_sum[o] += (double)area;
                visible[o]++;
                if (first[o] < 0) first[o] = (int)f;
            }
            /* the first appearance is not a visibility change */
            if (first[o] >= 0 && (int)f > first[o] && vis != prev_vis[o]) changes[o]++;
            prev_vis[o] = vis;
        }
    }
    sam_free(mask);
    printf("SA-V masks: %d total, %d decoded, %d re-encoded to the identical string\n", total, decoded, same);
    CHECK(total == 605 && decoded == 605 && same == 605);
    /* masklet_size_abs = mean area over the frames where the object is visible,
     * masklet_size_rel = that / video_resolution. */
    json_t *abs_ = json_object_get(root, "masklet_size_abs"), *rel = json_object_get(root, "masklet_size_rel");
    json_t *fa = json_object_get(root, "masklet_first_appeared_frame");
    json_t *vc = json_object_get(root, "masklet_visibility_changes");
    for (int o = 0; o < n_obj && o < 8; o++) {
        double mean = visible[o] ? area_sum[o] / visible[o] : 0;
        double want = json_number_value(json_array_get(abs_, (size_t)o));
        double want_rel = json_number_value(json_array_get(rel, (size_t)o));
        printf("obj %d: mean visible area %.6f (file %.6f), rel %.8f (file %.8f), first %d, changes %d\n", o, mean,
               want, mean / resolution, want_rel, first[o], changes[o]);
        CHECK(fabs(mean - want) <= 1e-6 * want);
        CHECK(fabs(mean / resolution - want_rel) <= 1e-6 * want_rel);
        CHECK(first[o] == (int)json_number_value(json_array_get(fa, (size_t)o)));
        CHECK(changes[o] == (int)json_integer_value(json_array_get(vc, (size_t)o)));
    }
    json_decref(root);
}

static void check_small(void) {
    uint8_t m[3 * 3] = {0};
    char *s = NULL;
    CHECK(sam_rle_mask_to_string(m, 3, 3, &s) == SAM2D_OK && strcmp(s, "9") == 0);
    sam_free(s);
    memset(m, 1, sizeof m);
    CHECK(sam_rle_mask_to_string(m, 3, 3, &s) == SAM2D_OK && strcmp(s, "09") == 0);
    sam_free(s);
    /* column-major: h=2, w=3, foreground at (row 0, col 1) -> runs 2,1,3 */
    uint8_t m2[2 * 3] = {0, 1, 0, 0, 0, 0};
    sam_rle r;
    CHECK(sam_rle_encode(m2, 2, 3, &r) == SAM2D_OK);
    CHECK(r.n == 3 && r.counts[0] == 2 && r.counts[1] == 1 && r.counts[2] == 3);
    CHECK(sam_rle_to_string(&r, &s) == SAM2D_OK && strcmp(s, "213") == 0);
    sam_free(s);
    sam_rle_free(&r);
    /* large runs need several 5-bit groups; negative deltas use the sign bit */
    int h = 100, w = 100;
    uint8_t *big = sam_calloc((size_t)h * w, 1), *back = sam_malloc((size_t)h * w);
    uint64_t seed = 3;
    for (int k = 0; k < 200; k++) {
        int x = (int)((test_randf(&seed) + 1) * 49.9), y = (int)((test_randf(&seed) + 1) * 49.9);
        int len = (int)((test_randf(&seed) + 1) * 400);
        for (int i = 0; i < len && y * w + x + i < h * w; i++) big[y * w + x + i] = 1;
    }
    CHECK(sam_rle_mask_to_string(big, h, w, &s) == SAM2D_OK);
    CHECK(sam_rle_string_to_mask(s, h, w, back) == SAM2D_OK);
    CHECK(memcmp(big, back, (size_t)h * w) == 0);
    sam_free(s);
    /* threshold variant: logits > 0 */
    float lg[4] = {-1.f, 0.f, 0.5f, 3.f};
    CHECK(sam_rle_encode_f32(lg, 2, 2, 0.0f, &r) == SAM2D_OK);
    /* column-major: column 0 is (-1, 0.5), column 1 is (0, 3) -> runs 1,1,1,1 */
    CHECK(r.n == 4 && r.counts[0] == 1 && r.counts[1] == 1 && r.counts[2] == 1 && r.counts[3] == 1);
    sam_rle_free(&r);
    sam_free(big);
    sam_free(back);
    /* malformed strings are refused with a message, not read past */
    CHECK(sam_rle_string_to_mask("9", 2, 5, m) == SAM2D_ERR_FORMAT);
    printf("short runs: %s\n", sam2d_last_error());
    CHECK(sam_rle_string_to_mask("9\x7f", 3, 3, m) == SAM2D_ERR_FORMAT);
    CHECK(sam_rle_string_to_mask("P", 3, 3, m) == SAM2D_ERR_FORMAT); /* continuation bit, then end */
    printf("cut short: %s\n", sam2d_last_error());
    CHECK(sam_rle_string_to_mask("0\x5f\x5f\x5f\x5f\x5f\x5f\x5f\x5f", 3, 3, m) == SAM2D_ERR_FORMAT);
}

int main(void) {
    check_small();
    check_sav();
    return test_finish();
}
