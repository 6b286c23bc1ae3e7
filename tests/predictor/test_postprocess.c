/* fill holes / sprinkles / non-overlap on hand-made masks. */
#include "predictor/postprocess.h"

#include "core/alloc.h"
#include "test_util.h"

static void fill(float *m, int n, float v) {
    for (int i = 0; i < n; i++) m[i] = v;
}

static void test_components(void) {
    /* two diagonal pixels are one component (8-connectivity); an isolated one is another */
    const int H = 4, W = 5;
    uint8_t fg[20] = {1, 0, 0, 0, 1,
                      0, 1, 0, 0, 0,
                      0, 0, 0, 1, 1,
                      0, 0, 0, 1, 0};
    int32_t labels[20], area[20];
    void *scratch = sam_malloc(sam_cc_scratch_bytes(H, W));
    int n = sam_connected_components(fg, H, W, labels, area, scratch);
    CHECK(n == 3);
    CHECK(labels[0] == labels[6] && labels[0] > 0);
    CHECK(area[0] == 2 && area[6] == 2);
    CHECK(labels[4] != labels[0] && area[4] == 1);
    CHECK(labels[13] == labels[14] && labels[14] == labels[18] && area[18] == 3);
    CHECK(labels[1] == 0 && area[1] == 0);
    sam_free(scratch);
}

static void test_fill_holes(void) {
    const int H = 10, W = 10, n = 100;
    float m[100];
    void *scratch = sam_malloc(sam_cc_scratch_bytes(H, W));
    fill(m, n, 2.0f);
    m[1 * W + 1] = -1.0f;                 /* hole of 1 */
    for (int y = 5; y < 8; y++)           /* hole of 9 */
        for (int x = 5; x < 8; x++) m[y * W + x] = -3.0f;
    m[3 * W + 8] = 0.0f;                  /* score exactly 0 counts as background */
    m[4 * W + 9] = -0.5f;                 /* diagonal neighbour: one hole of 2 */
    sam_fill_holes(m, H, W, 4, scratch);
    CHECK(m[1 * W + 1] == 0.1f);
    CHECK(m[3 * W + 8] == 0.1f && m[4 * W + 9] == 0.1f);
    CHECK(m[6 * W + 6] == -3.0f);         /* area 9 > 4 stays */
    CHECK(m[0] == 2.0f);
    /* max_area 9 fills the big hole too; 0 is a no-op */
    sam_fill_holes(m, H, W, 9, scratch);
    CHECK(m[6 * W + 6] == 0.1f);
    fill(m, n, -1.0f);
    sam_fill_holes(m, H, W, 0, scratch);
    CHECK(m[0] == -1.0f);
    /* the whole background is one component of 100: not a hole */
    sam_fill_holes(m, H, W, 99, scratch);
    CHECK(m[55] == -1.0f);
    sam_fill_holes(m, H, W, 100, scratch);
    CHECK(m[55] == 0.1f);
    sam_free(scratch);
}

static void test_sprinkles(void) {
    const int H = 8, W = 8, n = 64;
    float m[64];
    void *scratch = sam_malloc(sam_cc_scratch_bytes(H, W));
    fill(m, n, -5.0f);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) m[y * W + x] = 5.0f; /* object of 16 */
    m[1 * W + 1] = -2.0f;                               /* hole of 1 inside it */
    m[6 * W + 6] = 3.0f;                                /* sprinkle of 1 */
    m[6 * W + 7] = 3.0f;                                /* -> sprinkle of 2 */
    sam_fill_holes_and_sprinkles(m, H, W, 2, 2, 0.0f, scratch);
    CHECK(m[1 * W + 1] == 10.0f);
    CHECK(m[6 * W + 6] == -10.0f && m[6 * W + 7] == -10.0f);
    CHECK(m[0] == 5.0f && m[7 * W + 0] == -5.0f);
    /* components come from the input: removing a sprinkle must not make the
     * background around it a different component (it is large anyway) and a
     * filled hole must not join the foreground count of the same call */
    fill(m, n, -5.0f);
    m[0] = 1.0f;
    sam_fill_holes_and_sprinkles(m, H, W, 0, 1, 0.0f, scratch);
    CHECK(m[0] == -10.0f);
    sam_free(scratch);
}

static void test_non_overlap(void) {
    float m[3 * 4] = {1.0f, -20.0f, 5.0f, 2.0f,    /* object 0 */
                      3.0f, -30.0f, 5.0f, -1.0f,   /* object 1 */
                      -2.0f, -25.0f, 0.0f, 2.0f};  /* object 2 */
    sam_non_overlap(m, 3, 4);
    /* pixel 0: object 1 wins */
    CHECK(m[0] == -10.0f && m[4] == 3.0f && m[8] == -10.0f);
    /* pixel 1: object 0 wins with -20; the others are already below -10 */
    CHECK(m[1] == -20.0f && m[5] == -30.0f && m[9] == -25.0f);
    /* pixel 2: tie between 0 and 1 -> the first (argmax) wins */
    CHECK(m[2] == 5.0f && m[6] == -10.0f && m[10] == -10.0f);
    /* pixel 3: tie between 0 and 2 */
    CHECK(m[3] == 2.0f && m[7] == -10.0f && m[11] == -10.0f);
    float one[2] = {1.0f, 2.0f};
    sam_non_overlap(one, 1, 2);
    CHECK(one[0] == 1.0f && one[1] == 2.0f);
}

int main(void) {
    test_components();
    test_fill_holes();
    test_sprinkles();
    test_non_overlap();
    return test_finish();
}
