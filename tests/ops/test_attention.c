/* Tiled online-softmax attention against a naive double-precision
 * softmax(q k^T * scale) v, on odd sizes, several heads, batches, strided
 * (packed qkv) inputs, d_qk != d_v, and large logits. */
#include "ops/ops.h"
#include "attn_ref.h"
#include "test_util.h"

/* Dense layout, one batch. */
static void dense_case(sam_backend *be, int heads, int Lq, int Lk, int dqk, int dv, float qscale, uint64_t seed) {
    sam_attn_params p = sam_attn_dense(heads, Lq, Lk, dqk, dv);
    size_t nq = (size_t)Lq * heads * dqk, nk = (size_t)Lk * heads * dqk, nv = (size_t)Lk * heads * dv,
           no = (size_t)Lq * heads * dv;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4), *o = malloc(no * 4), *r = malloc(no * 4);
    test_fill_random(q, nq, seed);
    test_fill_random(k, nk, seed + 1);
    test_fill_random(v, nv, seed + 2);
    for (size_t i = 0; i < nq; i++) q[i] *= qscale;
    for (size_t i = 0; i < no; i++) o[i] = NAN;
    be->attention(be, o, q, k, v, &p);
    ref_attention(r, q, k, v, &p);
    char name[96];
    snprintf(name, sizeof name, "attention h=%d Lq=%d Lk=%d dqk=%d dv=%d qs=%g", heads, Lq, Lk, dqk, dv, qscale);
    CHECK_CLOSE_ARRAY(name, o, r, no, 2e-6);
    free(q), free(k), free(v), free(o), free(r);
}

/* q, k, v interleaved in one packed (B, L, 3, heads, d) buffer, output
 * written into a wider buffer with a gap after each token: every stride and
 * batch stride differs from the dense one. */
static void packed_case(sam_backend *be, int B, int heads, int L, int d, uint64_t seed) {
    const int C = heads * d;
    size_t nqkv = (size_t)B * L * 3 * C, no = (size_t)B * L * (C + 5);
    float *qkv = malloc(nqkv * 4), *o = malloc(no * 4), *r = malloc(no * 4);
    test_fill_random(qkv, nqkv, seed);
    for (size_t i = 0; i < no; i++) o[i] = r[i] = 7.0f; /* gaps must stay untouched */
    sam_attn_params p = sam_attn_dense(heads, L, L, d, d);
    p.batch = B;
    p.q_stride = p.k_stride = p.v_stride = 3 * C;
    p.q_batch = p.k_batch = p.v_batch = (int64_t)L * 3 * C;
    p.o_stride = C + 5;
    p.o_batch = (int64_t)L * (C + 5);
    p.scale = 0.3f;
    be->attention(be, o, qkv, qkv + C, qkv + 2 * C, &p);
    ref_attention(r, qkv, qkv + C, qkv + 2 * C, &p);
    char name[96];
    snprintf(name, sizeof name, "attention packed B=%d h=%d L=%d d=%d", B, heads, L, d);
    CHECK_CLOSE_ARRAY(name, o, r, no, 2e-6);
    free(qkv), free(o), free(r);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();
    dense_case(be, 1, 1, 1, 8, 8, 1.0f, 1);
    dense_case(be, 1, 37, 53, 16, 16, 1.0f, 2);
    dense_case(be, 2, 65, 257, 32, 24, 1.0f, 3);     /* crosses query and key tile edges */
    dense_case(be, 8, 49, 49, 12, 12, 1.0f, 4);      /* Hiera window style */
    dense_case(be, 1, 129, 600, 64, 48, 1.0f, 5);    /* several key tiles */
    dense_case(be, 1, 70, 513, 256, 256, 1.0f, 6);   /* memory attention dims */
    dense_case(be, 3, 33, 300, 20, 7, 8.0f, 7);      /* large logits: peaked softmax, rescaling matters */
    dense_case(be, 1, 5, 1000, 3, 5, 1.0f, 8);
    /* wide heads (through OpenBLAS in unoptimised builds): same checks there */
    dense_case(be, 2, 77, 300, 128, 136, 1.0f, 11); /* d_v not a multiple of the vector tile */
    dense_case(be, 1, 300, 45, 160, 64, 4.0f, 12);
    packed_case(be, 2, 2, 40, 128, 13);
    packed_case(be, 3, 2, 50, 16, 9);
    packed_case(be, 2, 4, 64, 8, 10);
    sam_backend_cpu_free(be);
    return test_finish();
}
