/* Max pool, nearest upsample, permute, concat and the dense attention params. */
#include "ops/ops.h"
#include "test_util.h"

static void permute_case(sam_backend *be, int ndim, const int64_t *shape, const int *perm, uint64_t seed) {
    int64_t n = 1, istr[6], oshape[6], ostr[6];
    for (int d = ndim - 1; d >= 0; d--) {
        istr[d] = n;
        n *= shape[d];
    }
    for (int d = 0; d < ndim; d++) oshape[d] = shape[perm[d]];
    int64_t m = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        ostr[d] = m;
        m *= oshape[d];
    }
    float *x = malloc(n * 4), *y = malloc(n * 4), *r = malloc(n * 4);
    test_fill_random(x, (size_t)n, seed);
    for (int64_t i = 0; i < n; i++) y[i] = NAN;
    be->permute(be, y, x, ndim, shape, perm);
    /* walk every output index and fetch x at the permuted coordinates */
    for (int64_t o = 0; o < n; o++) {
        int64_t rem = o, src = 0;
        for (int d = 0; d < ndim; d++) {
            int64_t c = rem / ostr[d];
            rem %= ostr[d];
            src += c * istr[perm[d]];
        }
        r[o] = x[src];
    }
    char name[96], *p = name;
    p += sprintf(p, "permute (");
    for (int d = 0; d < ndim; d++) p += sprintf(p, "%lld%s", (long long)shape[d], d + 1 < ndim ? "," : ")");
    p += sprintf(p, " perm ");
    for (int d = 0; d < ndim; d++) p += sprintf(p, "%d", perm[d]);
    CHECK_CLOSE_ARRAY(name, y, r, (size_t)n, 0);
    free(x), free(y), free(r);
}

int main(void) {
    sam_backend *be = sam_backend_cpu_create(3);
    CHECK(be != NULL);
    if (!be) return test_finish();

    /* max pool 2x2, odd H/W are floored */
    {
        int N = 2, H = 7, W = 9, C = 5, Ho = 3, Wo = 4;
        size_t nx = (size_t)N * H * W * C, ny = (size_t)N * Ho * Wo * C;
        float *x = malloc(nx * 4), *y = malloc(ny * 4), *r = malloc(ny * 4);
        test_fill_random(x, nx, 1);
        be->maxpool2x2(be, y, x, N, H, W, C);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++)
                    for (int c = 0; c < C; c++) {
                        float m = -INFINITY;
                        for (int dy = 0; dy < 2; dy++)
                            for (int dx = 0; dx < 2; dx++)
                                m = fmaxf(m, x[(((size_t)n * H + 2 * i + dy) * W + 2 * j + dx) * C + c]);
                        r[(((size_t)n * Ho + i) * Wo + j) * C + c] = m;
                    }
        CHECK_CLOSE_ARRAY("maxpool2x2 2x7x9x5", y, r, ny, 0);
        free(x), free(y), free(r);
    }

    /* nearest upsample by integer factors */
    int fac[3][2] = {{2, 2}, {4, 4}, {3, 1}};
    for (int t = 0; t < 3; t++) {
        int N = 2, H = 5, W = 3, C = 7, fh = fac[t][0], fw = fac[t][1];
        size_t nx = (size_t)N * H * W * C, ny = nx * fh * fw;
        float *x = malloc(nx * 4), *y = malloc(ny * 4), *r = malloc(ny * 4);
        test_fill_random(x, nx, 2 + t);
        be->upsample_nearest(be, y, x, N, H, W, C, fh, fw);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < H * fh; i++)
                for (int j = 0; j < W * fw; j++)
                    for (int c = 0; c < C; c++)
                        r[(((size_t)n * H * fh + i) * W * fw + j) * C + c] =
                            x[(((size_t)n * H + i / fh) * W + j / fw) * C + c];
        char name[64];
        snprintf(name, sizeof name, "upsample_nearest x(%d,%d)", fh, fw);
        CHECK_CLOSE_ARRAY(name, y, r, ny, 0);
        free(x), free(y), free(r);
    }

    /* permute */
    int64_t s4[4] = {2, 3, 5, 7};
    int p0[4] = {0, 3, 1, 2}, p1[4] = {0, 2, 3, 1}, p2[4] = {3, 2, 1, 0}, p3[4] = {1, 0, 2, 3}, p4[4] = {0, 1, 2, 3};
    permute_case(be, 4, s4, p0, 10); /* NHWC -> NCHW */
    permute_case(be, 4, s4, p1, 11); /* NCHW -> NHWC */
    permute_case(be, 4, s4, p2, 12);
    permute_case(be, 4, s4, p3, 13); /* last dim kept: row copies */
    permute_case(be, 4, s4, p4, 14); /* identity */
    int64_t s6[6] = {2, 3, 2, 5, 1, 3};
    int p6[6] = {0, 1, 3, 2, 4, 5}; /* window partition style */
    permute_case(be, 6, s6, p6, 15);
    int p7[6] = {5, 4, 3, 2, 1, 0};
    permute_case(be, 6, s6, p7, 16);
    int64_t s2[2] = {129, 67};
    int pt[2] = {1, 0};
    permute_case(be, 2, s2, pt, 17);
    int64_t sb[3] = {4096, 1, 256}; /* tokens (HW, C) -> (C, HW): tiled transpose */
    int pb[3] = {2, 1, 0};
    permute_case(be, 3, sb, pb, 19);
    int64_t sc[4] = {3, 37, 41, 5}; /* batched transposes with partial tiles */
    int pc[4] = {0, 3, 1, 2};
    permute_case(be, 4, sc, pc, 20);
    int pd[4] = {2, 0, 3, 1};
    permute_case(be, 4, sc, pd, 21);
    int64_t s1[3] = {1, 1, 1};
    int pi[3] = {2, 0, 1};
    permute_case(be, 3, s1, pi, 18);

    /* concat along the last dim */
    {
        int Cs[3] = {3, 1, 5};
        int64_t rows = 17;
        float *a = malloc(rows * 3 * 4), *b = malloc(rows * 4), *c = malloc(rows * 5 * 4);
        float *y = malloc(rows * 9 * 4), *r = malloc(rows * 9 * 4);
        test_fill_random(a, rows * 3, 20);
        test_fill_random(b, rows, 21);
        test_fill_random(c, rows * 5, 22);
        const float *xs[3] = {a, b, c};
        be->concat_last(be, y, xs, Cs, 3, rows);
        for (int64_t i = 0; i < rows; i++) {
            for (int j = 0; j < 3; j++) r[i * 9 + j] = a[i * 3 + j];
            r[i * 9 + 3] = b[i];
            for (int j = 0; j < 5; j++) r[i * 9 + 4 + j] = c[i * 5 + j];
        }
        CHECK_CLOSE_ARRAY("concat_last 17x(3+1+5)", y, r, (size_t)rows * 9, 0);
        free(a), free(b), free(c), free(y), free(r);
    }

    /* dense attention params */
    sam_attn_params p = sam_attn_dense(8, 100, 300, 32, 16);
    CHECK(p.batch == 1 && p.heads == 8 && p.Lq == 100 && p.Lk == 300 && p.d_qk == 32 && p.d_v == 16);
    CHECK(p.q_stride == 256 && p.k_stride == 256 && p.v_stride == 128 && p.o_stride == 128);
    CHECK(p.q_batch == 100 * 256 && p.k_batch == 300 * 256 && p.v_batch == 300 * 128 && p.o_batch == 100 * 128);
    CHECK(fabsf(p.scale - 1.0f / sqrtf(32.0f)) < 1e-7f);

    /* a single-threaded back end works too */
    sam_backend *b1 = sam_backend_cpu_create(1);
    CHECK(b1 != NULL);
    if (b1) {
        float x[6] = {1, -2, 3, -4, 5, -6}, y[6];
        b1->relu(b1, y, x, 6);
        CHECK(y[0] == 1 && y[1] == 0 && y[4] == 5 && y[5] == 0);
        sam_backend_cpu_free(b1);
    }
    sam_backend_cpu_free(NULL);
    sam_backend_cpu_free(be);
    return test_finish();
}
