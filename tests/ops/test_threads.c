/* One back end used from several threads at once (the contract in ops.h):
 * every thread runs the same mix of kernels (conv through the shared scratch,
 * linear through the pool, attention with per-thread scratch slices) and must
 * get exactly the results of a run alone. */
#include <pthread.h>

#include "ops/ops.h"
#include "test_util.h"

#define NTH 4
#define ROUNDS 6

typedef struct {
    sam_backend *be;
    const float *x, *w, *b, *q, *k, *v;
    float *conv_out, *lin_out, *att_out, *rs_out, *att2_out;
} job;

static sam_conv2d_params conv_p = {1, 33, 29, 24, 16, 3, 3, 1, 1, 1, 1, 1};

static void run_job(job *j) {
    sam_backend *be = j->be;
    be->conv2d(be, j->conv_out, j->x, j->w, j->b, &conv_p);
    be->linear(be, j->lin_out, j->x, j->w, j->b, 33 * 29, 16, 24);
    sam_attn_params p = sam_attn_dense(2, 300, 700, 24, 24);
    be->attention(be, j->att_out, j->q, j->k, j->v, &p);
    be->resize_bilinear(be, j->rs_out, j->x, 3, 33, 29, 71, 13, true);
    sam_attn_params p2 = sam_attn_dense(1, 100, 150, 128, 128); /* BLAS inside pool workers */
    be->attention(be, j->att2_out, j->k, j->v, j->k, &p2); /* q, k, v all within the 700x48 buffers */
}

static void *thread_main(void *arg) {
    for (int r = 0; r < ROUNDS; r++) run_job(arg);
    return NULL;
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();
    size_t nx = 33 * 29 * 24, nw = 16 * 24 * 9, nq = 300 * 48, nk = 700 * 48;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(16 * 4), *q = malloc(nq * 4), *k = malloc(nk * 4),
          *v = malloc(nk * 4);
    test_fill_random(x, nx, 1);
    test_fill_random(w, nw, 2);
    test_fill_random(b, 16, 3);
    test_fill_random(q, nq, 4);
    test_fill_random(k, nk, 5);
    test_fill_random(v, nk, 6);
    size_t nconv = 33 * 29 * 16, nlin = 33 * 29 * 16, natt = 300 * 48, nrs = 3 * 71 * 13, natt2 = 100 * 128;
    job jobs[NTH + 1];
    for (int t = 0; t <= NTH; t++) {
        jobs[t] = (job){be,          x,           w,           b,           q,           k,
                        v,           malloc(nconv * 4), malloc(nlin * 4), malloc(natt * 4), malloc(nrs * 4),
                        malloc(natt2 * 4)};
    }
    run_job(&jobs[NTH]); /* alone: the expected results */
    pthread_t th[NTH];
    for (int t = 0; t < NTH; t++) pthread_create(&th[t], NULL, thread_main, &jobs[t]);
    for (int t = 0; t < NTH; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < NTH; t++) {
        CHECK(memcmp(jobs[t].conv_out, jobs[NTH].conv_out, nconv * 4) == 0);
        CHECK(memcmp(jobs[t].lin_out, jobs[NTH].lin_out, nlin * 4) == 0);
        CHECK(memcmp(jobs[t].att_out, jobs[NTH].att_out, natt * 4) == 0);
        CHECK(memcmp(jobs[t].rs_out, jobs[NTH].rs_out, nrs * 4) == 0);
        CHECK(memcmp(jobs[t].att2_out, jobs[NTH].att2_out, natt2 * 4) == 0);
    }
    printf("%d threads x %d rounds of conv/linear/attention/resize on one back end: results identical to a lone run\n",
           NTH, ROUNDS);
    for (int t = 0; t <= NTH; t++) free(jobs[t].conv_out), free(jobs[t].lin_out), free(jobs[t].att_out), free(jobs[t].rs_out), free(jobs[t].att2_out);
    free(x), free(w), free(b), free(q), free(k), free(v);
    sam_backend_cpu_free(be);
    return test_finish();
}
