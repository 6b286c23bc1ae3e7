/* bf16 mode: linear and attention against double-precision loops on the
 * bf16-rounded operands (only the fp32 summation order may differ), and
 * against fp32 by normalised error; every kernel path this CPU can run. */
#include "core/alloc.h"
#include "ops/cpu/bf16.h"
#include "ops/ops.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

/* ||a - b|| / ||b|| */
static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_linear_case(sam_backend *be16, sam_backend *be32, int M, int N, int K, bool bias, uint64_t seed) {
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * M * N), *r = malloc(sizeof(float) * M * N), *y32 = malloc(sizeof(float) * M * N);
    test_fill_random(x, (size_t)M * K, seed);
    test_fill_random(w, (size_t)N * K, seed + 1);
    test_fill_random(b, (size_t)N, seed + 2);
    for (int i = 0; i < M * N; i++) y[i] = NAN; /* output must be fully written */
    /* the kernel itself: the table sends small products to fp32 */
    CHECK(sam_cpu_linear_bf16(be16, y, x, w, bias ? b : NULL, M, N, K));
    be32->linear(be32, y32, x, w, bias ? b : NULL, M, N, K);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? b[j] : 0.0;
            for (int k = 0; k < K; k++) s += (double)sam_bf16_round(x[i * K + k]) * sam_bf16_round(w[j * K + k]);
            r[i * N + j] = (float)s;
        }
    char name[128];
    snprintf(name, sizeof name, "bf16 linear path %d M=%d N=%d K=%d bias=%d", sam_bf16_path(), M, N, K, bias);
    /* fp32 sums of K exact products of magnitude <= 1 */
    CHECK_CLOSE_ARRAY(name, y, r, (size_t)M * N, 2e-6 * K);
    double rel = rel_l2(y, y32, (size_t)M * N);
    printf("  normalised error vs fp32: %.3g (tol 1e-2)\n", rel);
    CHECK(rel < 1e-2 && rel > 0);
    free(x), free(w), free(b), free(y), free(r), free(y32);
}

/* Attention (batch, heads, Lq, Lk, d) in packed qkv-like layouts: bf16 vs fp32. */
static void test_attention_case(sam_backend *be16, sam_backend *be32, int batch, int heads, int Lq, int Lk, int dq,
                                int dv, uint64_t seed) {
    sam_attn_params p;
    memset(&p, 0, sizeof p);
    p.batch = batch;
    p.heads = heads;
    p.Lq = Lq;
    p.Lk = Lk;
    p.d_qk = dq;
    p.d_v = dv;
    p.q_stride = (int64_t)heads * dq + 3; /* padded rows: strides must be honoured */
    p.k_stride = (int64_t)heads * dq + 5;
    p.v_stride = (int64_t)heads * dv + 1;
    p.o_stride = (int64_t)heads * dv + 2;
    p.q_batch = p.q_stride * Lq;
    p.k_batch = p.k_stride * Lk;
    p.v_batch = p.v_stride * Lk;
    p.o_batch = p.o_stride * Lq;
    p.scale = 1.0f / sqrtf((float)dq);
    size_t nq = (size_t)(p.q_batch * batch), nk = (size_t)(p.k_batch * batch), nv = (size_t)(p.v_batch * batch),
           no = (size_t)(p.o_batch * batch);
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk), *v = malloc(sizeof(float) * nv);
    float *o = malloc(sizeof(float) * no), *o32 = malloc(sizeof(float) * no);
    test_fill_random(q, nq, seed);
    test_fill_random(k, nk, seed + 1);
    test_fill_random(v, nv, seed + 2);
    for (size_t i = 0; i < nq; i++) q[i] *= 3.0f; /* peaky softmax */
    for (size_t i = 0; i < no; i++) o[i] = o32[i] = 0.0f;
    bool ran = sam_cpu_attention_bf16(be16, o, q, k, v, &p);
    be32->attention(be32, o32, q, k, v, &p);
    if (sam_bf16_path() == SAM_BF16_PATH_C) {
        CHECK(!ran); /* no fast path: left to fp32 */
    } else {
        CHECK(ran);
        double rel = rel_l2(o, o32, no);
        size_t where;
        double worst = test_max_abs_diff(o, o32, no, &where);
        printf("bf16 attention path %d b=%d h=%d Lq=%d Lk=%d d=%d/%d: normalised error %.3g, worst %.3g (tol 2e-2)\n",
               sam_bf16_path(), batch, heads, Lq, Lk, dq, dv, rel, worst);
        CHECK(rel > 0 && rel < 2e-2);
        /* padding columns between rows untouched */
        int pads_ok = 1;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < Lq; i++)
                for (int e = heads * dv; e < p.o_stride; e++)
                    if (o[b * p.o_batch + i * p.o_stride + e] != 0.0f) pads_ok = 0;
        CHECK(pads_ok);
    }
    free(q), free(k), free(v), free(o), free(o32);
}

static void test_round(void) {
    CHECK(sam_bf16_round(1.0f) == 1.0f);
    CHECK(sam_bf16_round(1.0f + 1.0f / 256) == 1.0f);             /* tie -> even */
    CHECK(sam_bf16_round(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256); /* tie -> even (up) */
    CHECK(sam_bf16_round(1.0f + 1.5f / 256) == 1.0f + 2.0f / 256);
    CHECK(isnan(sam_bf16_round(NAN)));
    CHECK(isinf(sam_bf16_round(INFINITY)));
    /* the vector and scalar conversions agree */
    float v[37];
    uint16_t h[37];
    test_fill_random(v, 37, 7);
    v[3] = NAN;
    v[5] = -INFINITY;
    sam_bf16_from_f32(h, v, 37);
    int same = 1;
    for (int i = 0; i < 37; i++) {
        float f = sam_bf16_round(v[i]);
        uint32_t u;
        memcpy(&u, &f, 4);
        if ((uint16_t)(u >> 16) != h[i]) same = 0;
    }
    CHECK(same);
}

int main(void) {
    sam_precision p;
    CHECK(sam_precision_parse("bf16", &p) && p == SAM_PRECISION_BF16);
    CHECK(sam_precision_parse("FP32", &p) && p == SAM_PRECISION_FP32);
    CHECK(!sam_precision_parse("fp16", &p));
    test_round();
    sam_backend *be16 = sam_backend_cpu_create_ex(3, SAM_PRECISION_BF16);
    sam_backend *be32 = sam_backend_cpu_create_ex(3, SAM_PRECISION_FP32);
    CHECK(be16 && be32);
    if (!be16 || !be32) return test_finish();
    CHECK(be16->precision == SAM_PRECISION_BF16 && be32->precision == SAM_PRECISION_FP32);
    int best = sam_bf16_path();
    printf("bf16 path on this CPU: %d (0 AMX, 1 AVX512_BF16, 2 AVX-512F, 3 C)\n", best);
    for (int path = best; path <= SAM_BF16_PATH_C; path++) {
        sam_bf16_force_path(path);
        test_linear_case(be16, be32, 37, 45, 53, true, 1);    /* odd K, N tail */
        test_linear_case(be16, be32, 300, 70, 600, true, 2);  /* several k blocks and row blocks */
        test_linear_case(be16, be32, 13, 300, 96, false, 3);  /* several column blocks */
        test_linear_case(be16, be32, 1, 1000, 300, true, 4);
        test_attention_case(be16, be32, 3, 2, 37, 45, 40, 24, 5);   /* odd sizes, windows as batch */
        test_attention_case(be16, be32, 1, 1, 70, 300, 96, 96, 6);  /* several key panels */
        test_attention_case(be16, be32, 2, 1, 5, 16, 72, 72, 7);    /* few keys and queries */
        test_attention_case(be16, be32, 1, 2, 600, 1100, 64, 48, 8); /* key chunks (online softmax), row blocks */
        test_attention_case(be16, be32, 1, 1, 150, 1100, 40, 24, 9); /* one row block per item */
    }
    sam_bf16_force_path(-1);
    {
        /* through the table: a big product goes bf16, a tiny one stays fp32 (exact) */
        int M = 64, N = 96, K = 160;
        float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
        float *y = malloc(sizeof(float) * M * N), *y32 = malloc(sizeof(float) * M * N);
        test_fill_random(x, (size_t)M * K, 11);
        test_fill_random(w, (size_t)N * K, 12);
        be16->linear(be16, y, x, w, NULL, M, N, K);
        be32->linear(be32, y32, x, w, NULL, M, N, K);
        double rel = rel_l2(y, y32, (size_t)M * N);
        printf("table linear %dx%dx%d: normalised error vs fp32 %.3g\n", M, N, K, rel);
        CHECK(rel > 0 && rel < 1e-2);
        /* a prepared weight gives the same numbers as packing per call */
        float *y2 = malloc(sizeof(float) * M * N);
        CHECK(be16->linear_prepare(be16, w, N, K));
        CHECK(sam_bf16_prepared_bytes(be16) > 0);
        be16->linear(be16, y2, x, w, NULL, M, N, K);
        CHECK(memcmp(y, y2, sizeof(float) * M * N) == 0);
        /* a different shape at the same pointer is not taken for it */
        be16->linear(be16, y2, x, w, NULL, M, N - 32, K);
        {
            float *r = malloc(sizeof(float) * M * (N - 32));
            be32->linear(be32, r, x, w, NULL, M, N - 32, K);
            double e = rel_l2(y2, r, (size_t)M * (N - 32));
            CHECK(e > 0 && e < 1e-2);
            free(r);
        }
        be16->linear_forget(be16, w);
        CHECK(sam_bf16_prepared_bytes(be16) == 0);
        CHECK(be32->linear_prepare(be32, w, N, K)); /* fp32: nothing to do */
        be32->linear_forget(be32, w);
        /* many prepared weights (table growth, removal in any order) */
        for (int i = 0; i < 100; i++) CHECK(be16->linear_prepare(be16, w + i, 8, 8));
        for (int i = 0; i < 100; i += 2) be16->linear_forget(be16, w + i);
        be16->linear(be16, y2, x, w + 1, NULL, M, 8, 8);
        for (int i = 1; i < 100; i += 2) be16->linear_forget(be16, w + i);
        CHECK(sam_bf16_prepared_bytes(be16) == 0);
        CHECK(be16->linear_prepare(be16, w, N, K)); /* left prepared: freed with the back end */
        free(y2);
        /* the table's attention in bf16 mode differs from fp32 only by rounding */
        sam_attn_params p = sam_attn_dense(2, 40, 60, 32, 32);
        be16->attention(be16, y, x, w, w + 1, &p);
        be32->attention(be32, y32, x, w, w + 1, &p);
        rel = rel_l2(y, y32, 40 * 64);
        printf("table attention: normalised error vs fp32 %.3g\n", rel);
        CHECK(rel > 0 && rel < 2e-2);
        be16->linear(be16, y, x, w, NULL, 3, 5, 7);
        be32->linear(be32, y32, x, w, NULL, 3, 5, 7);
        CHECK(memcmp(y, y32, sizeof(float) * 15) == 0);
        free(x), free(w), free(y), free(y32);
    }
    sam_backend_cpu_free(be16);
    sam_backend_cpu_free(be32);
    return test_finish();
}
