/* Attention at the shapes SAM 2 runs it with, against a naive double
 * softmax(q k^T * scale) v: the Hiera windows of every stage (head dims 72,
 * 56, 96; 16, 64 and 256 keys; pooled queries read from their own buffer),
 * a global block's long key list (online softmax over many key tiles, odd
 * tails), and the memory attention's layouts (d 256, d_v 64 values shared by
 * the heads). Each case prints its worst error. */
#include "ops/ops.h"
#include "attn_ref.h"
#include "test_util.h"

static void run_case(sam_backend *be, const char *what, float *q, const float *k, const float *v, size_t nq, size_t no,
                     const sam_attn_params *p, float qscale) {
    for (size_t i = 0; i < nq; i++) q[i] *= qscale;
    float *o = malloc(no * sizeof(float)), *r = malloc(no * sizeof(float));
    for (size_t i = 0; i < no; i++) o[i] = r[i] = 7.0f; /* what the call must not write stays 7 */
    be->attention(be, o, q, k, v, p);
    ref_attention(r, q, k, v, p);
    char name[160];
    snprintf(name, sizeof name, "%s B=%d h=%d Lq=%d Lk=%d d=%d/%d", what, p->batch, p->heads, p->Lq, p->Lk, p->d_qk,
             p->d_v);
    CHECK_CLOSE_ARRAY(name, o, r, no, 2e-6);
    free(o), free(r);
}

/* A Hiera block: q, k, v of B windows interleaved in one (B, Lk, 3, heads, d)
 * buffer; pooled: the queries come from their own (B, Lq, heads, d) buffer. */
static void hiera_case(sam_backend *be, int B, int heads, int Lq, int Lk, int d, bool pooled, float qscale,
                       uint64_t seed) {
    const int O = heads * d;
    size_t nqkv = (size_t)B * Lk * 3 * O, nqp = (size_t)B * Lq * O, no = (size_t)B * Lq * O;
    float *qkv = malloc(nqkv * sizeof(float)), *qp = malloc(nqp * sizeof(float));
    test_fill_random(qkv, nqkv, seed);
    test_fill_random(qp, nqp, seed + 1);
    sam_attn_params p = sam_attn_dense(heads, Lq, Lk, d, d);
    p.batch = B;
    p.k_stride = p.v_stride = 3 * O;
    p.k_batch = p.v_batch = (int64_t)Lk * 3 * O;
    p.o_stride = O;
    p.o_batch = (int64_t)Lq * O;
    p.scale = 1.0f / sqrtf((float)d);
    if (pooled) {
        p.q_stride = O;
        p.q_batch = (int64_t)Lq * O;
        run_case(be, "hiera pooled", qp, qkv + O, qkv + 2 * O, nqp, no, &p, qscale);
    } else {
        p.q_stride = 3 * O;
        p.q_batch = (int64_t)Lk * 3 * O;
        /* q is the first third of each token: scaling it scales every q */
        float *q = malloc(nqkv * sizeof(float));
        memcpy(q, qkv, nqkv * sizeof(float));
        for (size_t t = 0; t < (size_t)B * Lk; t++)
            for (int e = 0; e < O; e++) q[t * 3 * O + e] *= qscale;
        run_case(be, "hiera", q, q + O, q + 2 * O, 0, no, &p, 1.0f);
        free(q);
    }
    free(qkv), free(qp);
}

/* The memory cross-attention: per head, queries (Lq, heads*d) at stride
 * heads*d, keys likewise, values (Lk, dv) shared, output into a (Lq, heads*dv) row. */
static void memory_case(sam_backend *be, int heads, int Lq, int Lk, int d, int dv, uint64_t seed) {
    const int Ci = heads * d;
    size_t nq = (size_t)Lq * Ci, nk = (size_t)Lk * Ci, nv = (size_t)Lk * dv, no = (size_t)Lq * heads * dv;
    float *q = malloc(nq * sizeof(float)), *k = malloc(nk * sizeof(float)), *v = malloc(nv * sizeof(float));
    test_fill_random(q, nq, seed);
    test_fill_random(k, nk, seed + 1);
    test_fill_random(v, nv, seed + 2);
    for (int h = 0; h < heads; h++) {
        sam_attn_params p = sam_attn_dense(1, Lq, Lk, d, dv);
        p.q_stride = p.k_stride = Ci;
        p.v_stride = dv;
        p.o_stride = (int64_t)heads * dv;
        p.scale = 1.0f / sqrtf((float)d);
        float *o = malloc(no * sizeof(float)), *r = malloc(no * sizeof(float));
        for (size_t i = 0; i < no; i++) o[i] = r[i] = 7.0f;
        be->attention(be, o + h * dv, q + h * d, k + h * d, v, &p);
        ref_attention(r + h * dv, q + h * d, k + h * d, v, &p);
        char name[160];
        snprintf(name, sizeof name, "memory cross head %d/%d Lq=%d Lk=%d d=%d/%d", h, heads, Lq, Lk, d, dv);
        CHECK_CLOSE_ARRAY(name, o, r, no, 2e-6);
        free(o), free(r);
    }
    free(q), free(k), free(v);
}

int main(void) {
    for (int nt = 2; nt <= 3; nt++) { /* 3: items split unevenly over the threads */
        sam_backend *be = sam_backend_cpu_create_ex(nt, SAM_PRECISION_FP32);
        CHECK(be != NULL);
        if (!be) return test_finish();
        /*                B  h  Lq   Lk   d  pooled qscale */
        hiera_case(be, 3, 2, 64, 64, 72, false, 1.0f, 1);  /* large stage 1: 8x8 windows */
        hiera_case(be, 5, 4, 16, 16, 72, false, 1.0f, 2);  /* stage 2: 4x4 windows */
        hiera_case(be, 2, 4, 16, 64, 72, true, 1.0f, 3);   /* stage 2's first block: pooled queries */
        hiera_case(be, 9, 8, 4, 16, 72, true, 1.0f, 4);    /* stage 3's first block */
        hiera_case(be, 2, 3, 256, 256, 72, false, 1.0f, 5); /* stage 3: 16x16 windows */
        hiera_case(be, 2, 2, 64, 64, 56, false, 1.0f, 6);  /* base_plus */
        hiera_case(be, 2, 1, 64, 64, 96, false, 1.0f, 7);  /* tiny / small */
        hiera_case(be, 3, 2, 49, 49, 72, false, 1.0f, 8);  /* odd window (padded images) */
        hiera_case(be, 1, 2, 37, 301, 40, true, 1.0f, 9);  /* odd sizes, one tile up to 512 keys */
        hiera_case(be, 1, 1, 33, 4096, 72, true, 1.0f, 10); /* global block: 16 key tiles */
        hiera_case(be, 1, 2, 19, 1031, 56, true, 6.0f, 11); /* peaked softmax over tiles with an odd tail */
        hiera_case(be, 1, 1, 70, 513, 72, true, 1.0f, 12);  /* two full tiles and one key */
        memory_case(be, 1, 40, 700, 256, 256, 20);          /* self-attention dims (BLAS path) */
        memory_case(be, 2, 33, 600, 128, 64, 21);           /* cross-attention layout, values shared */
        sam_backend_cpu_free(be);
    }
    return test_finish();
}
