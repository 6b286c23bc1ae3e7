/* The memory entries and small kernels of the table (issue 8) on the CPU back
 * end and on devsim: against naive loops, and devsim equal to the CPU bit for
 * bit (it runs the same kernels behind its guard). */
#include <math.h>

#include "model/bf16.h"
#include "ops/devsim.h"
#include "ops/ops.h"
#include "sam2d/sam2d.h"
#include "test_util.h"

#define N 5000

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Runs every entry on be; results in host arrays (out of `be`'s buffers via to_host). */
static void run_entries(sam_backend *be, const char *tag, float *fill_o, float *aff_o, float *bin_o, float *rope_o,
                        uint16_t *bf_o, float *unbf_o, float *c2d_o) {
    float *hx = malloc(N * 4), *cs = NULL, *sn = NULL;
    test_fill_random(hx, N, 7);
    hx[3] = NAN, hx[4] = 0.0f, hx[5] = -0.0f, hx[6] = INFINITY, hx[7] = 1.00390625f; /* a bf16 tie */
    float *x = be->buf_alloc(be, N * 4), *y = be->buf_alloc(be, N * 4);
    uint16_t *h = be->buf_alloc(be, N * 2);
    CHECK(x && y && h);
    be->to_dev(be, x, hx, N * 4);

    be->fill(be, y, -1024.0f, N);
    be->to_host(be, fill_o, y, N * 4);
    be->affine(be, y, x, 20.0f, -10.0f, N);
    be->to_host(be, aff_o, y, N * 4);
    be->copy(be, y, x, N * 4);
    be->binarize(be, y, y, N); /* in place */
    be->to_host(be, bin_o, y, N * 4);

    /* RoPE tables in const memory, as a module makes them at load */
    const int L = 16, heads = 2, hd = 8, stride = 20, rows = 40; /* stride > heads*hd: untouched tail */
    cs = be->const_alloc(be, (size_t)L * hd / 2 * 4);
    sn = be->const_alloc(be, (size_t)L * hd / 2 * 4);
    for (int i = 0; i < L * hd / 2; i++) cs[i] = cosf(0.1f * (float)i), sn[i] = sinf(0.1f * (float)i);
    be->const_publish(be, cs, (size_t)L * hd / 2 * 4);
    be->const_publish(be, sn, (size_t)L * hd / 2 * 4);
    CHECK(cs[5] == cosf(0.5f)); /* host-readable after publish */
    be->copy(be, y, x, (size_t)rows * stride * 4);
    be->rope(be, y, rows, stride, heads, hd, cs, sn, L);
    be->to_host(be, rope_o, y, (size_t)rows * stride * 4);

    be->to_bf16(be, h, x, N);
    be->to_host(be, bf_o, h, N * 2);
    be->from_bf16(be, y, h, N);
    be->to_host(be, unbf_o, y, N * 4);

    /* copy2d: 10 rows of 7 floats from pitch 13 into pitch 9, the gaps zeroed first */
    be->zero(be, y, 90 * 4);
    be->copy2d(be, y, 9 * 4, x, 13 * 4, 7 * 4, 10);
    be->to_host(be, c2d_o, y, 90 * 4);
    CHECK_MSG(be->sync(be) == 0, "%s: sync", tag);

    be->const_free(be, cs);
    be->const_free(be, sn);
    be->buf_free(be, x);
    be->buf_free(be, y);
    be->buf_free(be, h);
    be->buf_free(be, NULL);
    free(hx);
}

int main(void) {
    float *hx = malloc(N * 4);
    test_fill_random(hx, N, 7);
    hx[3] = NAN, hx[4] = 0.0f, hx[5] = -0.0f, hx[6] = INFINITY, hx[7] = 1.00390625f;

    float *o[2][6];
    uint16_t *bf[2];
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 6; j++) o[k][j] = calloc(N, 4);
        bf[k] = calloc(N, 2);
    }
    sam_backend *cpu = sam_backend_create("cpu", 2, SAM_PRECISION_FP32);
    sam_backend *ds = sam_backend_create("devsim", 2, SAM_PRECISION_FP32);
    CHECK(cpu && ds);
    CHECK(sam_backend_is_devsim(ds) && !sam_backend_is_devsim(cpu));
    run_entries(cpu, "cpu", o[0][0], o[0][1], o[0][2], o[0][3], bf[0], o[0][4], o[0][5]);
    run_entries(ds, "devsim", o[1][0], o[1][1], o[1][2], o[1][3], bf[1], o[1][4], o[1][5]);

    /* naive references */
    int bad_fill = 0, bad_aff = 0, bad_bin = 0, bad_bf = 0, bad_unbf = 0;
    for (int i = 0; i < N; i++) {
        bad_fill += o[0][0][i] != -1024.0f;
        float a = hx[i] * 20.0f + -10.0f;
        bad_aff += !(bits(o[0][1][i]) == bits(a) || (isnan(a) && isnan(o[0][1][i])));
        bad_bin += o[0][2][i] != (hx[i] > 0.0f ? 1.0f : 0.0f);
        bad_bf += bf[0][i] != sam_f32_to_bf16(hx[i]);
        float back = sam_bf16_to_f32(bf[0][i]);
        bad_unbf += bits(o[0][4][i]) != bits(back);
    }
    CHECK_MSG(bad_fill == 0, "fill: %d wrong", bad_fill);
    CHECK_MSG(bad_aff == 0, "affine: %d wrong", bad_aff);
    CHECK_MSG(bad_bin == 0, "binarize: %d wrong (NaN -> 0)", bad_bin);
    CHECK_MSG(bad_bf == 0, "to_bf16: %d wrong", bad_bf);
    CHECK(bf[0][3] == 0x7fc0 && bf[0][7] == sam_f32_to_bf16(1.00390625f) && bf[0][5] == 0x8000);
    CHECK_MSG(bad_unbf == 0, "from_bf16: %d wrong", bad_unbf);

    /* rope against a double reference */
    {
        const int L = 16, heads = 2, hd = 8, stride = 20, rows = 40;
        double worst = 0;
        for (int r = 1; r < rows; r++) /* row 0 holds the NaN / inf specials */
            for (int c = 0; c < stride; c++) {
                double ref = hx[r * stride + c];
                int head = c / hd, j = (c % hd) / 2;
                if (head < heads) {
                    double ang = 0.1 * ((r % L) * hd / 2 + j);
                    double re = hx[r * stride + head * hd + 2 * j], im = hx[r * stride + head * hd + 2 * j + 1];
                    ref = (c % 2 == 0) ? re * cos(ang) - im * sin(ang) : re * sin(ang) + im * cos(ang);
                }
                double got = o[0][3][r * stride + c];
                double e = fabs(ref - got);
                if (e > worst || e != e) worst = e != e ? INFINITY : e;
            }
        printf("rope: worst abs error vs double %.3g (tol 1e-6)\n", worst);
        CHECK(worst <= 1e-6);
    }
    /* copy2d */
    {
        int bad = 0;
        for (int r = 0; r < 10; r++)
            for (int c = 0; c < 9; c++) {
                float want = c < 7 ? hx[r * 13 + c] : 0.0f;
                bad += bits(o[0][5][r * 9 + c]) != bits(want);
            }
        CHECK_MSG(bad == 0, "copy2d: %d wrong", bad);
    }
    /* devsim == cpu, bit for bit */
    for (int j = 0; j < 6; j++) CHECK_MSG(memcmp(o[0][j], o[1][j], N * 4) == 0, "devsim differs from cpu in output %d", j);
    CHECK(memcmp(bf[0], bf[1], N * 2) == 0);

    /* device_memory: host back ends report nothing, devsim its buffers */
    size_t used = 1, total = 1;
    cpu->device_memory(cpu, &used, &total);
    CHECK(used == 0 && total == 0);
    ds->device_memory(ds, &used, &total);
    size_t base = used;
    void *b = ds->buf_alloc(ds, 1 << 20);
    ds->device_memory(ds, &used, &total);
    CHECK(used == base + (1 << 20) && total > used);
    CHECK(sam_devsim_is_buffer(ds, b) && !sam_devsim_is_buffer(ds, hx));
    ds->buf_free(ds, b);
    CHECK(sam_devsim_bytes_in_use(ds) == 0 && sam_devsim_bytes_peak(ds) >= (1 << 20));

    /* the allocator reuses freed space and merges neighbours */
    void *p1 = ds->buf_alloc(ds, 1000), *p2 = ds->buf_alloc(ds, 1000), *p3 = ds->buf_alloc(ds, 1000);
    ds->buf_free(ds, p1);
    ds->buf_free(ds, p2);
    void *p4 = ds->buf_alloc(ds, 1800); /* fits in the merged hole */
    CHECK(p4 == p1);
    ds->buf_free(ds, p3);
    ds->buf_free(ds, p4);
    CHECK(sam_devsim_bytes_in_use(ds) == 0);

    /* freeing a block that shares a page with a live one leaves the live data alone
     * (a fresh devsim: the first block starts a page, the second shares it) */
    {
        sam_backend *d2 = sam_backend_create("devsim", 1, SAM_PRECISION_FP32);
        float *first = d2->buf_alloc(d2, 256), *second = d2->buf_alloc(d2, 1000 * 4);
        float ones[1000], back[1000];
        for (int i = 0; i < 1000; i++) ones[i] = 1.0f;
        d2->to_dev(d2, second, ones, sizeof ones);
        d2->buf_free(d2, first);
        d2->to_host(d2, back, second, sizeof back);
        CHECK_MSG(memcmp(ones, back, sizeof ones) == 0, "devsim: a free zeroed a neighbour's data");
        d2->buf_free(d2, second);
        sam_backend_free(d2);
    }

    /* unknown device names are refused with a reason */
    CHECK(sam_backend_create("tpu", 1, SAM_PRECISION_FP32) == NULL);
    CHECK(sam_backend_create("cuda:x", 1, SAM_PRECISION_FP32) == NULL);
    if (!sam_backend_gpu_name()) CHECK(sam_backend_create("cuda", 1, SAM_PRECISION_FP32) == NULL);
    printf("cuda refused: %s\n", sam2d_last_error());

    sam_backend_free(cpu);
    sam_backend_free(ds);
    sam_backend_free(NULL);
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 6; j++) free(o[k][j]);
        free(bf[k]);
    }
    free(hx);
    return test_finish();
}
