/* Tensor descriptors: views against index arithmetic done by hand, and the
 * F16/BF16 storage conversions (exhaustive round trips, rounding ties). */
#include "core/alloc.h"
#include "core/tensor.h"
#include "test_util.h"

static void test_views(void) {
    /* x[a][b][c] = 100a + 10b + c on a (3,4,5) tensor */
    float data[60];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 5; c++) data[a * 20 + b * 5 + c] = (float)(100 * a + 10 * b + c);
    sam_tensor t = sam_tensor_make(data, SAM2D_F32, 3, (int64_t[]){3, 4, 5});
    CHECK(sam_tensor_numel(&t) == 60 && sam_tensor_is_contiguous(&t));

    sam_tensor p;
    CHECK(sam_tensor_permute(&t, (int[]){2, 0, 1}, &p) == SAM2D_OK);
    CHECK(p.shape[0] == 5 && p.shape[1] == 3 && p.shape[2] == 4 && !sam_tensor_is_contiguous(&p));
    float out[60];
    sam_tensor_to_f32(&p, out);
    int bad = 0;
    for (int c = 0; c < 5; c++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 4; b++) bad += out[c * 12 + a * 4 + b] != (float)(100 * a + 10 * b + c);
    CHECK_MSG(bad == 0, "permute copy: %d wrong", bad);
    CHECK(sam_tensor_get(&p, (int64_t[]){4, 2, 3}) == 234.0f);

    sam_tensor s;
    CHECK(sam_tensor_slice(&t, 1, 1, 2, &s) == SAM2D_OK); /* b in [1,3) */
    sam_tensor_to_f32(&s, out);
    CHECK(s.shape[1] == 2 && out[0] == 10.0f && out[5] == 20.0f && out[10] == 110.0f);
    CHECK(sam_tensor_slice(&t, 1, 3, 2, &s) == SAM2D_ERR_INVALID_ARG);

    sam_tensor sel;
    CHECK(sam_tensor_select(&t, 2, 4, &sel) == SAM2D_OK); /* c = 4 -> (3,4) */
    CHECK(sel.ndim == 2 && sam_tensor_get(&sel, (int64_t[]){2, 3}) == 234.0f);

    sam_tensor r;
    CHECK(sam_tensor_reshape(&t, 2, (int64_t[]){12, 5}, &r) == SAM2D_OK && r.stride[0] == 5);
    CHECK(sam_tensor_reshape(&t, 2, (int64_t[]){7, 5}, &r) == SAM2D_ERR_INVALID_ARG);
    CHECK(sam_tensor_reshape(&p, 2, (int64_t[]){12, 5}, &r) == SAM2D_ERR_INVALID_ARG); /* not contiguous */
    CHECK(sam_tensor_permute(&t, (int[]){0, 0, 1}, &p) == SAM2D_ERR_INVALID_ARG);
}

static double ref_f16(uint16_t h) { /* value of a half by its definition */
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int e = (h >> 10) & 31;
        float f = sam_f16_to_f32((uint16_t)h);
        if (e == 31) {
            bad += (h & 1023) ? !isnan(f) : !isinf(f);
            continue;
        }
        bad += (double)f != ref_f16((uint16_t)h);
        bad += sam_f32_to_f16(f) != (uint16_t)h; /* exact values round trip */
    }
    CHECK_MSG(bad == 0, "f16 exhaustive: %d wrong", bad);
    /* ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10 */
    CHECK(sam_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);
    CHECK(sam_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02);
    CHECK(sam_f32_to_f16(65504.0f) == 0x7bff && sam_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(sam_f32_to_f16(-ldexpf(1, -25)) == 0x8000);           /* halfway to the smallest subnormal: even (0) */
    CHECK(sam_f32_to_f16(ldexpf(3, -26)) == 0x0001);            /* 0.75 ulp rounds up */
    /* random values: nearest half, checked against the two neighbours */
    uint64_t seed = 7;
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float f = test_randf(&seed) * 70000.0f;
        uint16_t h = sam_f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00) {
            bad += fabsf(f) < 65504.0f;
            continue;
        }
        double v = ref_f16(h), err = fabs(v - f);
        uint16_t up = (uint16_t)(h + 1), dn = (uint16_t)(h - 1);
        if ((up & 0x7c00) != 0x7c00) bad += fabs(ref_f16(up) - f) < err;
        if ((h & 0x7fff) != 0) bad += fabs(ref_f16(dn) - f) < err;
    }
    CHECK_MSG(bad == 0, "f16 nearest: %d wrong", bad);
}

static void test_storage(void) {
    sam_tensor b;
    CHECK(sam_tensor_alloc(SAM2D_BF16, 2, (int64_t[]){3, 7}, &b) == SAM2D_OK);
    float src[21], back[21];
    test_fill_random(src, 21, 3);
    CHECK(sam_tensor_from_f32(&b, src) == SAM2D_OK);
    CHECK(sam_tensor_to_f32(&b, back) == SAM2D_OK);
    double worst = 0;
    for (int i = 0; i < 21; i++) {
        double rel = fabs(back[i] - src[i]) / fmax(fabs(src[i]), 1e-30);
        if (rel > worst) worst = rel;
    }
    printf("bf16 storage round trip worst relative error %.3g (bound 2^-8: half an ulp of 8 significant bits)\n", worst);
    CHECK(worst <= 1.0 / 256);
    CHECK(sam_f32_to_bf16_value(1.0f + ldexpf(1, -8)) == 0x3f80); /* tie to even */
    CHECK(sam_f32_to_bf16_value(NAN) == 0x7fc0);
    size_t before = sam2d_memory_used();
    sam_tensor_free(&b);
    CHECK(sam2d_memory_used() < before);
}

int main(void) {
    test_views();
    test_half();
    test_storage();
    return test_finish();
}
