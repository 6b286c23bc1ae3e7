/* bf16 conversion (src/model/bf16.h): round to nearest even as torch's
 * .to(torch.bfloat16), NaN/inf/zero/subnormal handling, array helpers. */
#include <float.h>
#include <math.h>

#include "model/bf16.h"
#include "test_util.h"

static float f_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x007fu) != 0; }

int main(void) {
    /* exact values pass unchanged */
    CHECK(sam_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(sam_f32_to_bf16(-2.0f) == 0xc000);
    CHECK(sam_f32_to_bf16(0.0f) == 0x0000);
    CHECK(sam_f32_to_bf16(-0.0f) == 0x8000);
    CHECK(sam_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(sam_bf16_to_f32(0xc000) == -2.0f);

    /* ties go to the even neighbour, otherwise to the nearest */
    CHECK(sam_f32_to_bf16(f_of(0x3f808000u)) == 0x3f80); /* tie, 0x3f80 even: down */
    CHECK(sam_f32_to_bf16(f_of(0x3f818000u)) == 0x3f82); /* tie, 0x3f81 odd: up */
    CHECK(sam_f32_to_bf16(f_of(0x3f808001u)) == 0x3f81); /* just above half */
    CHECK(sam_f32_to_bf16(f_of(0x3f807fffu)) == 0x3f80); /* just below half */
    CHECK(sam_f32_to_bf16(f_of(0xbf818000u)) == 0xbf82); /* negative tie */
    CHECK(sam_f32_to_bf16(f_of(0x3f7fffffu)) == 0x3f80); /* carry into the exponent */

    /* infinities stay, overflow rounds to infinity as torch does */
    CHECK(sam_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(sam_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(sam_f32_to_bf16(FLT_MAX) == 0x7f80);
    CHECK(sam_f32_to_bf16(f_of(0x7f7f7fffu)) == 0x7f7f); /* largest value below the overflow boundary */
    CHECK(isinf(sam_bf16_to_f32(0x7f80)) && sam_bf16_to_f32(0xff80) < 0);

    /* every NaN stays NaN (a signalling NaN must not round to infinity) */
    CHECK(bf16_is_nan(sam_f32_to_bf16(NAN)));
    CHECK(bf16_is_nan(sam_f32_to_bf16(f_of(0x7f800001u))));
    CHECK(bf16_is_nan(sam_f32_to_bf16(f_of(0xffffffffu))));
    CHECK(bf16_is_nan(sam_f32_to_bf16(f_of(0x7fffffffu))));
    CHECK(isnan(sam_bf16_to_f32(sam_f32_to_bf16(NAN))));

    /* subnormals round like normals, no flush to zero */
    CHECK(sam_f32_to_bf16(f_of(0x00000001u)) == 0x0000);
    CHECK(sam_f32_to_bf16(f_of(0x00008000u)) == 0x0000); /* tie to even (0) */
    CHECK(sam_f32_to_bf16(f_of(0x00018000u)) == 0x0002); /* tie to even (2) */
    CHECK(sam_f32_to_bf16(f_of(0x00008001u)) == 0x0001);
    CHECK(sam_f32_to_bf16(f_of(0x00010000u)) == 0x0001);
    CHECK(sam_f32_to_bf16(f_of(0x007fffffu)) == 0x0080); /* largest subnormal rounds up to the smallest normal */
    CHECK(sam_f32_to_bf16(f_of(0x80018000u)) == 0x8002);
    CHECK(sam_bf16_to_f32(0x0001) == f_of(0x00010000u));

    /* every non-NaN bf16 survives a round trip */
    int rt_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (bf16_is_nan((uint16_t)h)) continue;
        if (sam_f32_to_bf16(sam_bf16_to_f32((uint16_t)h)) != h) rt_bad++;
    }
    CHECK_MSG(rt_bad == 0, "%d bf16 values do not round-trip", rt_bad);

    /* random values: the result is a nearest bf16 neighbour (checked in double) */
    uint64_t s = 12345;
    int near_bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t u = (uint32_t)(s >> 32);
        float f = f_of(u);
        if (!isfinite(f) || fabsf(f) > 1e38f) continue;
        uint16_t h = sam_f32_to_bf16(f);
        double got = sam_bf16_to_f32(h);
        uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1); /* truncation and next (same sign) */
        double dl = fabs((double)sam_bf16_to_f32(lo) - f), dh = fabs((double)sam_bf16_to_f32(hi) - f);
        double best = dl < dh ? dl : dh;
        if (fabs(got - f) != best) near_bad++;
    }
    CHECK_MSG(near_bad == 0, "%d random values not rounded to nearest", near_bad);

    /* array helpers agree with the scalar ones */
    float src[5] = {1.00390625f, -3.14159f, 1e-40f, 65504.0f, -0.0f};
    uint16_t h[5];
    float back[5], r[5];
    sam_f32_to_bf16_array(h, src, 5);
    sam_bf16_to_f32_array(back, h, 5);
    memcpy(r, src, sizeof(r));
    sam_bf16_round_array(r, 5);
    int arr_bad = 0;
    for (int i = 0; i < 5; i++) {
        if (h[i] != sam_f32_to_bf16(src[i])) arr_bad++;
        if (memcmp(&back[i], &r[i], 4) != 0) arr_bad++;
        if (back[i] != sam_bf16_to_f32(h[i])) arr_bad++;
    }
    CHECK(arr_bad == 0);
    CHECK(h[0] == 0x3f80); /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1 */
    return test_finish();
}
