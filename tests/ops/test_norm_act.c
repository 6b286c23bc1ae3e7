/* LayerNorm (channels-last rows and channels-first maps), activations,
 * softmax and the element-wise ops against double-precision references. */
#include "ops/ops.h"
#include "test_util.h"

static float *rnd(size_t n, uint64_t seed, float scale) {
    float *x = malloc(n * sizeof(float));
    test_fill_random(x, n, seed);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static void ln_case(sam_backend *be, int64_t rows, int C, bool affine, bool inplace, float offset, uint64_t seed) {
    size_t n = (size_t)rows * C;
    float *x = rnd(n, seed, 3.0f), *g = rnd((size_t)C, seed + 1, 1.0f), *b = rnd((size_t)C, seed + 2, 1.0f);
    float *y = malloc(n * 4), *r = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] += offset; /* a large mean stresses the variance computation */
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += xr[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
        v /= C; /* biased, like torch */
        for (int c = 0; c < C; c++) {
            double t = (xr[c] - m) / sqrt(v + 1e-6);
            if (affine) t = t * g[c] + b[c];
            r[i * C + c] = (float)t;
        }
    }
    if (inplace) {
        memcpy(y, x, n * 4);
        be->layer_norm(be, y, y, affine ? g : NULL, affine ? b : NULL, rows, C, 1e-6f);
    } else {
        be->layer_norm(be, y, x, affine ? g : NULL, affine ? b : NULL, rows, C, 1e-6f);
    }
    char name[96];
    snprintf(name, sizeof name, "layer_norm rows=%lld C=%d aff=%d inpl=%d off=%g", (long long)rows, C, affine, inplace,
             offset);
    CHECK_CLOSE_ARRAY(name, y, r, n, offset > 10 ? 1e-5 : 4e-6);
    free(x), free(g), free(b), free(y), free(r);
}

static void lncf_case(sam_backend *be, int N, int C, int64_t HW, bool affine, bool inplace, uint64_t seed) {
    size_t n = (size_t)N * C * HW;
    float *x = rnd(n, seed, 2.0f), *g = rnd((size_t)C, seed + 1, 1.0f), *b = rnd((size_t)C, seed + 2, 1.0f);
    float *y = malloc(n * 4), *r = malloc(n * 4);
    for (int nn = 0; nn < N; nn++)
        for (int64_t p = 0; p < HW; p++) {
            const float *xp = x + (int64_t)nn * C * HW + p;
            double m = 0, v = 0;
            for (int c = 0; c < C; c++) m += xp[c * HW];
            m /= C;
            for (int c = 0; c < C; c++) v += (xp[c * HW] - m) * (xp[c * HW] - m);
            v /= C;
            for (int c = 0; c < C; c++) {
                double t = (xp[c * HW] - m) / sqrt(v + 1e-6);
                if (affine) t = t * g[c] + b[c];
                r[(int64_t)nn * C * HW + c * HW + p] = (float)t;
            }
        }
    if (inplace) {
        memcpy(y, x, n * 4);
        be->layer_norm_cf(be, y, y, affine ? g : NULL, affine ? b : NULL, N, C, HW, 1e-6f);
    } else {
        be->layer_norm_cf(be, y, x, affine ? g : NULL, affine ? b : NULL, N, C, HW, 1e-6f);
    }
    char name[96];
    snprintf(name, sizeof name, "layer_norm_cf N=%d C=%d HW=%lld aff=%d inpl=%d", N, C, (long long)HW, affine, inplace);
    CHECK_CLOSE_ARRAY(name, y, r, n, 4e-6);
    free(x), free(g), free(b), free(y), free(r);
}

static void softmax_case(sam_backend *be, int64_t rows, int n, float scale, bool inplace, uint64_t seed) {
    size_t tot = (size_t)rows * n;
    float *x = rnd(tot, seed, scale), *y = malloc(tot * 4), *r = malloc(tot * 4);
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * n;
        double m = -INFINITY, s = 0;
        for (int j = 0; j < n; j++) m = xr[j] > m ? xr[j] : m;
        for (int j = 0; j < n; j++) s += exp((double)xr[j] - m);
        for (int j = 0; j < n; j++) r[i * n + j] = (float)(exp((double)xr[j] - m) / s);
    }
    if (inplace) {
        memcpy(y, x, tot * 4);
        be->softmax(be, y, y, rows, n);
    } else {
        be->softmax(be, y, x, rows, n);
    }
    char name[96];
    snprintf(name, sizeof name, "softmax rows=%lld n=%d scale=%g inpl=%d", (long long)rows, n, scale, inplace);
    CHECK_CLOSE_ARRAY(name, y, r, tot, 2e-7);
    /* rows sum to one */
    double worst = 0;
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) s += y[i * n + j];
        worst = fmax(worst, fabs(s - 1.0));
    }
    CHECK_MSG(worst < 1e-5, "row sums off by %g", worst);
    free(x), free(y), free(r);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();

    ln_case(be, 37, 67, true, false, 0.0f, 1);
    ln_case(be, 37, 67, true, true, 0.0f, 2);
    ln_case(be, 5, 256, false, false, 0.0f, 3);
    ln_case(be, 3001, 96, true, false, 0.0f, 4); /* enough rows to split over threads */
    ln_case(be, 9, 33, true, false, 100.0f, 5);
    ln_case(be, 1, 1, true, false, 0.0f, 6);     /* C = 1: output is beta */
    lncf_case(be, 2, 13, 131, true, false, 7);   /* HW not a multiple of the pixel block */
    lncf_case(be, 1, 32, 64, true, true, 8);
    lncf_case(be, 3, 5, 7, false, false, 9);
    lncf_case(be, 1, 16, 4099, true, false, 10);

    /* activations */
    const int64_t n = 100003;
    float *x = rnd((size_t)n, 11, 6.0f), *a = rnd((size_t)n, 12, 2.0f), *y = malloc(n * 4), *r = malloc(n * 4);
    be->gelu(be, y, x, n);
    for (int64_t i = 0; i < n; i++) r[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
    CHECK_CLOSE_ARRAY("gelu (erf form)", y, r, (size_t)n, 1e-6);
    be->relu(be, y, x, n);
    for (int64_t i = 0; i < n; i++) r[i] = x[i] > 0 ? x[i] : 0;
    CHECK_CLOSE_ARRAY("relu", y, r, (size_t)n, 0);
    be->sigmoid(be, y, x, n);
    for (int64_t i = 0; i < n; i++) r[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
    CHECK_CLOSE_ARRAY("sigmoid", y, r, (size_t)n, 2e-7);
    float big[4] = {-100.0f, 100.0f, -1000.0f, 0.0f}, bo[4];
    be->sigmoid(be, bo, big, 4);
    CHECK(bo[0] >= 0 && bo[0] < 1e-30f && bo[1] == 1.0f && bo[2] == 0.0f && bo[3] == 0.5f);
    float sp[3] = {NAN, INFINITY, 30.0f}, so[3];
    be->gelu(be, so, sp, 3);
    CHECK(isnan(so[0]) && isinf(so[1]) && so[1] > 0 && so[2] == 30.0f);
    be->sigmoid(be, so, sp, 3);
    CHECK(isnan(so[0]) && so[1] == 1.0f && so[2] == 1.0f);
    memcpy(y, x, n * 4);
    be->gelu(be, y, y, n); /* in place */
    for (int64_t i = 0; i < n; i++) r[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
    CHECK_CLOSE_ARRAY("gelu in place", y, r, (size_t)n, 1e-6);

    /* binary element-wise */
    be->add(be, y, x, a, n);
    for (int64_t i = 0; i < n; i++) r[i] = x[i] + a[i];
    CHECK_CLOSE_ARRAY("add", y, r, (size_t)n, 0);
    be->mul(be, y, x, a, n);
    for (int64_t i = 0; i < n; i++) r[i] = x[i] * a[i];
    CHECK_CLOSE_ARRAY("mul", y, r, (size_t)n, 0);
    be->axpby(be, y, x, 0.75f, a, -1.25f, n);
    for (int64_t i = 0; i < n; i++) r[i] = (float)((double)x[i] * 0.75 + (double)a[i] * -1.25);
    CHECK_CLOSE_ARRAY("axpby", y, r, (size_t)n, 1e-6);
    memcpy(y, x, n * 4);
    be->add(be, y, y, a, n);
    for (int64_t i = 0; i < n; i++) r[i] = x[i] + a[i];
    CHECK_CLOSE_ARRAY("add in place", y, r, (size_t)n, 0);

    /* row broadcasts: rows x C with odd C */
    const int C = 37;
    const int64_t rows = n / C;
    be->add_row(be, y, x, a, rows, C);
    for (int64_t i = 0; i < rows * C; i++) r[i] = x[i] + a[i % C];
    CHECK_CLOSE_ARRAY("add_row", y, r, (size_t)(rows * C), 0);
    be->mul_row(be, y, x, a, rows, C);
    for (int64_t i = 0; i < rows * C; i++) r[i] = x[i] * a[i % C];
    CHECK_CLOSE_ARRAY("mul_row", y, r, (size_t)(rows * C), 0);
    memcpy(y, x, n * 4);
    be->mul_row(be, y, y, a, rows, C);
    CHECK_CLOSE_ARRAY("mul_row in place", y, r, (size_t)(rows * C), 0);

    /* softmax */
    softmax_case(be, 7, 1001, 1.0f, false, 13);
    softmax_case(be, 64, 65, 30.0f, true, 14); /* large logits: must subtract the max */
    softmax_case(be, 3000, 17, 2.0f, false, 15);
    softmax_case(be, 2, 1, 1.0f, false, 16);

    free(x), free(a), free(y), free(r);
    sam_backend_cpu_free(be);
    return test_finish();
}
