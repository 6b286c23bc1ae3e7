/* The CUDA back end's memory entries and small kernels (ops.h, "memory and
 * small kernels (issue 8)") against the CPU back end: buffers and const
 * memory with their accounting (device_memory up and down), const memory
 * readable by the host after publish (also while kernels are queued) and by
 * kernels, copies that round-trip (to_dev, to_host, copy, copy2d, zero),
 * fill / binarize / bf16 conversions bit-exact (NaN, inf, signed zeros, ties,
 * subnormals, overflow), affine within a normalised error of 1e-6 (the GPU
 * may fuse the multiply-add), sync returning the recorded error. The back end
 * is made by name (sam_cuda_register + sam_backend_create) and freed through
 * the table's destroy (sam_backend_free). Exits 77 without a usable GPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "model/bf16.h"
#include "ops/ops.h"
#include "cuda_test_util.h"
#include "test_util.h"

static sam_backend *cpu, *gpu;

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void sync_ok(sam_backend *be, const char *where) {
    int s = be->sync(be);
    CHECK_MSG(s == 0, "%s: sync returned %d: %s", where, s, sam_cuda_error_message(be));
}

/* Values that trip conversions and comparisons, spread over x (n >= 64). */
static const uint32_t specials[] = {
    0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, /* +-0, +-1 */
    0x3f808000u, 0x3f818000u, 0xbf808000u, 0x3f80ffffu, 0x3f807fffu, /* ties (even: down, odd: up), near ties */
    0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u, 0x7f7f7fffu, /* overflow to inf, largest finite */
    0x7f800000u, 0xff800000u,                          /* +-inf */
    0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7fa12345u, /* NaNs: quiet, signalling, payloads */
    0x00000001u, 0x00008000u, 0x00018000u, 0x007fffffu, 0x807fffffu, 0x00800000u, /* subnormals, smallest normal */
};
#define NSPECIAL (sizeof specials / sizeof specials[0])

static void put_specials(float *x, size_t n) {
    for (size_t i = 0; i < NSPECIAL; i++) x[(i * 7919) % n] = bits_f(specials[i]);
}

/* ---- the table and the registry ---------------------------------------------------------- */

static void table_and_registry(void) {
    /* the new entries by name (test_cuda_ops checks that no entry at all is NULL) */
    CHECK(gpu->buf_alloc && gpu->buf_free && gpu->const_alloc && gpu->const_publish && gpu->const_free);
    CHECK(gpu->to_dev && gpu->to_host && gpu->copy && gpu->copy2d && gpu->zero && gpu->sync);
    CHECK(gpu->fill && gpu->affine && gpu->binarize && gpu->rope && gpu->to_bf16 && gpu->from_bf16);
    CHECK(gpu->device_memory && gpu->destroy);
    CHECK(sam_backend_is_cuda(gpu) && strcmp(gpu->name, "cuda") == 0);
    CHECK(sam_backend_gpu_name() && strcmp(sam_backend_gpu_name(), "cuda") == 0);
    /* auto picks the GPU; a missing device fails with a reason */
    sam_backend *a = sam_backend_create("auto", 1, SAM_PRECISION_FP32);
    CHECK(a && sam_backend_is_cuda(a));
    sam_backend_free(a);
    CHECK(sam_backend_create("cuda:7", 1, SAM_PRECISION_FP32) == NULL);
    CHECK(sam2d_last_error()[0] != 0);
    sam_backend_free(NULL);
}

/* ---- accounting -------------------------------------------------------------------------- */

static void accounting(void) {
    size_t u0, total;
    gpu->device_memory(gpu, &u0, &total);
    CHECK(total > 0 && u0 > 0 && u0 <= total); /* the scratch and the cuBLAS workspace are held from create */
    CHECK(u0 == sam_cuda_bytes_in_use(gpu));
    size_t cu, ct;
    cpu->device_memory(cpu, &cu, &ct);
    CHECK(cu == 0 && ct == 0);

    CHECK(gpu->buf_alloc(gpu, 0) == NULL && gpu->const_alloc(gpu, 0) == NULL);
    gpu->buf_free(gpu, NULL);
    gpu->const_free(gpu, NULL);

    const size_t nb = ((size_t)3 << 20) + 5, nc = ((size_t)1 << 20) + 3;
    void *b = gpu->buf_alloc(gpu, nb);
    void *c = gpu->const_alloc(gpu, nc);
    CHECK(b && c);
    CHECK(((uintptr_t)b & 63) == 0 && ((uintptr_t)c & 63) == 0);
    size_t u1, t1;
    gpu->device_memory(gpu, &u1, &t1);
    CHECK_MSG(u1 == u0 + nb + nc && t1 == total, "used %zu -> %zu after %zu + %zu bytes", u0, u1, nb, nc);
    gpu->const_free(gpu, c);
    gpu->device_memory(gpu, &u1, &t1);
    CHECK(u1 == u0 + nb);
    gpu->buf_free(gpu, b);
    gpu->device_memory(gpu, &u1, &t1);
    CHECK_MSG(u1 == u0, "used %zu after freeing everything, %zu before", u1, u0);
    sync_ok(gpu, "accounting");

    /* 300 small weight tensors share const chunks: far less than one driver
     * allocation each, distinct, aligned; freeing them all returns it all */
    enum { NSMALL = 300 };
    void *small[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
        small[i] = gpu->const_alloc(gpu, (size_t)(i % 7 + 1) * 1000);
        CHECK(small[i] && ((uintptr_t)small[i] & 255) == 0);
        memset(small[i], i & 0xff, (size_t)(i % 7 + 1) * 1000); /* host-writable before publish */
    }
    for (int i = 1; i < NSMALL; i++) CHECK(small[i] != small[i - 1]);
    gpu->device_memory(gpu, &u1, &t1);
    CHECK_MSG(u1 - u0 <= ((size_t)32 << 20), "300 small const tensors hold %zu bytes", u1 - u0);
    int intact = 0;
    for (int i = 0; i < NSMALL; i++) intact += ((unsigned char *)small[i])[(i % 7 + 1) * 1000 - 1] == (i & 0xff);
    CHECK(intact == NSMALL); /* no two overlap */
    for (int i = 0; i < NSMALL; i++) gpu->const_free(gpu, small[i]);
    gpu->device_memory(gpu, &u1, &t1);
    CHECK_MSG(u1 == u0, "used %zu after freeing the small const tensors, %zu before", u1, u0);
    sync_ok(gpu, "const chunks");
}

/* ---- const memory ------------------------------------------------------------------------ */

/* be: a CUDA back end (its const memory is managed or, without concurrent
 * managed access, pinned host memory). */
static void const_case(sam_backend *be, const char *label) {
    enum { M = 67, N = 45, K = 33 };
    const size_t nw = (size_t)N * K;
    float *w = be->const_alloc(be, nw * sizeof(float)); /* (N, K) const */
    float *bias = be->const_alloc(be, N * sizeof(float)); /* (N) const */
    CHECK(w && bias);
    if (!w || !bias) return;
    float *hw = hrand(nw, 11, 0.2f), *hb = hrand(N, 12, 1), *hx = hrand((size_t)M * K, 13, 1);
    /* the host writes const memory in place while building, then publishes */
    memcpy(w, hw, nw * sizeof(float));
    for (int i = 0; i < N; i++) bias[i] = hb[i];
    be->const_publish(be, w, nw * sizeof(float));
    be->const_publish(be, bias, N * sizeof(float));
    CHECK_MSG(memcmp(w, hw, nw * sizeof(float)) == 0, "%s: const memory reads back after publish", label);

    /* kernels read it: linear with const weights and bias, against the CPU */
    float *x = be->buf_alloc(be, (size_t)M * K * sizeof(float)); /* (M, K) buffer */
    float *y = be->buf_alloc(be, (size_t)M * N * sizeof(float)); /* (M, N) buffer */
    float *big = be->buf_alloc(be, ((size_t)1 << 18) * sizeof(float)); /* keeps the GPU busy */
    be->to_dev(be, x, hx, (size_t)M * K * sizeof(float));
    be->linear(be, y, x, w, bias, M, N, K);
    /* the host reads const memory while kernels are queued (legal: see const_alloc in backend.cu) */
    be->fill(be, big, 1.0f, (int64_t)1 << 18);
    for (int r = 0; r < 20; r++) be->affine(be, big, big, 1.0f, 0.5f, (int64_t)1 << 18);
    double s = 0, s_ref = 0;
    for (size_t i = 0; i < nw; i++) s += w[i], s_ref += hw[i];
    CHECK_MSG(s == s_ref, "%s: host read of const memory while kernels run", label);
    float *got = malloc((size_t)M * N * sizeof(float)), *want = malloc((size_t)M * N * sizeof(float));
    be->to_host(be, got, y, (size_t)M * N * sizeof(float));
    cpu->linear(cpu, want, hx, hw, hb, M, N, K);
    double md = 0, mw = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        double d = fabs((double)got[i] - want[i]);
        md = d == d && d > md ? d : (d != d ? INFINITY : md);
        mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
    }
    printf("%s: linear with const weights: normalised error %.3g (tol 1e-5)\n", label, md / mw);
    CHECK(md / mw <= 1e-5);
    float last;
    be->to_host(be, &last, big + 12345, sizeof last);
    CHECK(last == 11.0f); /* 1 + 20 * 0.5 */
    /* a copy from const memory into a buffer */
    be->copy(be, y, bias, N * sizeof(float));
    be->to_host(be, got, y, N * sizeof(float));
    CHECK(memcmp(got, hb, N * sizeof(float)) == 0);
    sync_ok(be, label);
    be->buf_free(be, big);
    be->buf_free(be, y);
    be->buf_free(be, x);
    be->const_free(be, bias);
    be->const_free(be, w);
    free(hw), free(hb), free(hx), free(got), free(want);
}

/* ---- copies -------------------------------------------------------------------------------- */

static void copies(void) {
    enum { R = 37, CW = 53 };                /* a (R, CW) float matrix */
    const size_t n = (size_t)R * CW, bytes = n * sizeof(float);
    float *h = hrand(n, 21, 1), *keep = malloc(bytes), *back = malloc(bytes);
    memcpy(keep, h, bytes);
    char *b1 = gpu->buf_alloc(gpu, bytes), *b2 = gpu->buf_alloc(gpu, bytes), *b3 = gpu->buf_alloc(gpu, bytes);
    /* host mirrors of b1..b3 for the CPU back end, which runs the same calls */
    char *c1 = malloc(bytes), *c2 = malloc(bytes), *c3 = malloc(bytes);

    gpu->to_dev(gpu, b1, h, bytes);
    memset(h, 0x5a, bytes); /* to_dev has returned: the source may be reused */
    gpu->to_host(gpu, back, b1, bytes);
    CHECK(memcmp(back, keep, bytes) == 0);
    cpu->to_dev(cpu, c1, keep, bytes);

    /* the same sequence on both back ends */
    sam_backend *bes[2] = {gpu, cpu};
    char *bufs[2][3] = {{b1, b2, b3}, {c1, c2, c3}};
    for (int k = 0; k < 2; k++) {
        sam_backend *be = bes[k];
        char *x1 = bufs[k][0], *x2 = bufs[k][1], *x3 = bufs[k][2];
        be->fill(be, (float *)x2, -7.5f, (int64_t)n);
        be->fill(be, (float *)x3, 2.0f, (int64_t)n);
        be->copy(be, x2, x1, bytes / 2);
        be->copy(be, x2, x2, bytes); /* dst == src: nothing */
        be->zero(be, x2 + 4 * 100, 4 * 33);
        /* a (20, 17) block at (5, 9) of x1 into x3 at (2, 1), another pitch */
        be->copy2d(be, x3 + (2 * 31 + 1) * 4, 31 * 4, x1 + (5 * CW + 9) * 4, CW * 4, 17 * 4, 20);
        /* one row, and rows that overlap in the destination (pitch < width: applied in order) */
        be->copy2d(be, x3 + 4 * 700, 0, x1 + 4, 1, 4 * 9, 1);
        be->copy2d(be, x3 + 4 * 900, 4 * 5, x1 + 4 * 200, 4 * 11, 4 * 8, 6);
        be->copy2d(be, x3, 4, x3, 4, 0, 10); /* nothing */
    }
    float *g = malloc(bytes), *c = malloc(bytes);
    gpu->to_host(gpu, g, b2, bytes);
    CHECK_MSG(memcmp(g, c2, bytes) == 0, "copy / zero / fill: GPU and CPU buffers differ");
    gpu->to_host(gpu, g, b3, bytes);
    memcpy(c, c3, bytes);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&g[i], &c[i], 4) != 0;
    CHECK_MSG(diff == 0, "copy2d: %zu of %zu floats differ from the CPU back end", diff, n);
    /* to_host of a part, at an offset */
    float part[7];
    gpu->to_host(gpu, part, b1 + 4 * 301, sizeof part);
    CHECK(memcmp(part, keep + 301, sizeof part) == 0);
    sync_ok(gpu, "copies");
    gpu->buf_free(gpu, b3), gpu->buf_free(gpu, b2), gpu->buf_free(gpu, b1);
    free(c1), free(c2), free(c3), free(h), free(keep), free(back), free(g), free(c);
}

/* ---- fill, affine, binarize --------------------------------------------------------------- */

static void small_kernels(int64_t n) {
    const size_t bytes = (size_t)n * sizeof(float);
    float *x = hrand((size_t)n, 31 + n, 4);
    if (n >= 64) put_specials(x, (size_t)n);
    float *dx = gpu->buf_alloc(gpu, bytes), *dy = gpu->buf_alloc(gpu, bytes);
    float *got = malloc(bytes), *want = malloc(bytes);
    gpu->to_dev(gpu, dx, x, bytes);

    gpu->fill(gpu, dy, -3.25f, n);
    cpu->fill(cpu, want, -3.25f, n);
    gpu->to_host(gpu, got, dy, bytes);
    CHECK_MSG(memcmp(got, want, bytes) == 0, "fill n=%lld", (long long)n);

    gpu->binarize(gpu, dy, dx, n);
    cpu->binarize(cpu, want, x, n);
    gpu->to_host(gpu, got, dy, bytes);
    CHECK_MSG(memcmp(got, want, bytes) == 0, "binarize n=%lld (NaN -> 0, -0 -> 0)", (long long)n);

    /* affine, then in place */
    for (int inplace = 0; inplace < 2; inplace++) {
        float *src = inplace ? dy : dx;
        if (inplace) {
            gpu->to_dev(gpu, dy, x, bytes);
            memcpy(want, x, bytes);
            cpu->affine(cpu, want, want, 1.75f, -0.125f, n);
        } else {
            cpu->affine(cpu, want, x, 1.75f, -0.125f, n);
        }
        gpu->affine(gpu, dy, src, 1.75f, -0.125f, n);
        gpu->to_host(gpu, got, dy, bytes);
        double md = 0, mw = 0;
        size_t nan_mismatch = 0;
        for (int64_t i = 0; i < n; i++) {
            const bool gn = got[i] != got[i], wn = want[i] != want[i];
            if (gn || wn) {
                nan_mismatch += gn != wn;
                continue;
            }
            if (isinf(want[i]) || isinf(got[i])) {
                nan_mismatch += got[i] != want[i];
                continue;
            }
            double d = fabs((double)got[i] - want[i]);
            md = d > md ? d : md;
            mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
        }
        const double e = mw > 0 ? md / mw : md;
        printf("affine n=%lld%s: normalised error %.3g (tol 1e-6), NaN/inf mismatches %zu\n", (long long)n,
               inplace ? " in place" : "", e, nan_mismatch);
        CHECK(e <= 1e-6 && nan_mismatch == 0);
    }
    sync_ok(gpu, "small kernels");
    gpu->buf_free(gpu, dy), gpu->buf_free(gpu, dx);
    free(x), free(got), free(want);
}

/* ---- bf16 storage -------------------------------------------------------------------------- */

static void bf16_cases(void) {
    /* float -> bf16: the specials and random bit patterns (every exponent, NaNs included) */
    const int64_t n = (int64_t)1 << 18;
    uint32_t *u = malloc((size_t)n * 4);
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        u[i] = (uint32_t)(st >> 11);
        if (i % 5 == 0) u[i] = (u[i] & 0xffff0000u) | 0x8000u; /* exact ties */
    }
    for (size_t i = 0; i < NSPECIAL; i++) u[i] = specials[i];
    const float *x = (const float *)u;
    float *dx = gpu->buf_alloc(gpu, (size_t)n * 4);
    uint16_t *dh = gpu->buf_alloc(gpu, (size_t)n * 2);
    uint16_t *got = malloc((size_t)n * 2), *want = malloc((size_t)n * 2);
    gpu->to_dev(gpu, dx, x, (size_t)n * 4);
    gpu->to_bf16(gpu, dh, dx, n - 3); /* an odd count: the last halves stay as they were */
    gpu->to_host(gpu, got, dh, (size_t)(n - 3) * 2);
    cpu->to_bf16(cpu, want, x, n - 3);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n - 3; i++)
        if (got[i] != want[i] || got[i] != sam_f32_to_bf16(x[i])) {
            bad++;
            if (first < 0) first = i;
        }
    CHECK_MSG(bad == 0, "to_bf16: %lld of %lld differ; first %08x -> gpu %04x cpu %04x", (long long)bad,
              (long long)(n - 3), first >= 0 ? u[first] : 0, first >= 0 ? got[first] : 0, first >= 0 ? want[first] : 0);
    /* the rules spelt out */
    CHECK(got[4] == 0x3f80 && got[5] == 0x3f82 && got[9] == 0x7f80 && got[10] == 0xff80); /* ties even, overflow */
    for (int i = 15; i <= 20; i++) CHECK_MSG(got[i] == 0x7fc0, "NaN %08x -> %04x, not 0x7fc0", specials[i], got[i]);
    CHECK(got[1] == 0x8000 && got[22] == 0x0000 && got[23] == 0x0002); /* -0 kept, subnormal ties */

    /* bf16 -> float: every pattern, bit-exact (NaN payloads kept) */
    uint16_t *all = malloc(65536 * 2);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    float *df = gpu->buf_alloc(gpu, 65536 * 4);
    gpu->to_dev(gpu, dh, all, 65536 * 2);
    gpu->from_bf16(gpu, df, dh, 65536);
    uint32_t *fg = malloc(65536 * 4), *fc = malloc(65536 * 4);
    gpu->to_host(gpu, fg, df, 65536 * 4);
    cpu->from_bf16(cpu, (float *)fc, all, 65536);
    CHECK_MSG(memcmp(fg, fc, 65536 * 4) == 0, "from_bf16 differs from the CPU back end");
    CHECK(fg[0x3f80] == 0x3f800000u && fg[0xffc1] == 0xffc10000u);
    /* in place in one buffer: to_bf16 into the front of the floats it reads is not allowed; round trip instead */
    gpu->to_bf16(gpu, dh, df, 65536);
    gpu->to_host(gpu, got, dh, 65536 * 2);
    size_t rt_bad = 0;
    for (int i = 0; i < 65536; i++) {
        const bool is_nan = (i & 0x7fff) > 0x7f80;
        rt_bad += got[i] != (is_nan ? 0x7fc0 : i);
    }
    CHECK_MSG(rt_bad == 0, "bf16 -> float -> bf16: %zu patterns do not come back", rt_bad);
    printf("bf16: %lld floats -> bf16 and 65536 bf16 -> float bit-exact against the CPU\n", (long long)(n - 3));
    sync_ok(gpu, "bf16");
    gpu->buf_free(gpu, df), gpu->buf_free(gpu, dh), gpu->buf_free(gpu, dx);
    free(u), free(got), free(want), free(all), free(fg), free(fc);
}

/* ---- errors through sync ------------------------------------------------------------------ */

static void errors(void) {
    sync_ok(gpu, "errors: start");
    float *b = gpu->buf_alloc(gpu, 256);
    gpu->const_publish(gpu, b, 256); /* a buffer is not const memory */
    int s = gpu->sync(gpu);
    CHECK_MSG(s == SAM2D_ERR_INVALID_ARG, "const_publish of a buffer: sync returned %d", s);
    CHECK(strstr(sam_cuda_error_message(gpu), "const") != NULL);
    sam_cuda_clear_error(gpu);
    sync_ok(gpu, "errors: cleared");
    int local;
    gpu->buf_free(gpu, &local); /* not ours: recorded, nothing freed */
    CHECK(gpu->sync(gpu) == SAM2D_ERR_INVALID_ARG);
    sam_cuda_clear_error(gpu);
    gpu->buf_free(gpu, b);
    sync_ok(gpu, "errors: end");
}

int main(void) {
    if (!cuda_test_gpu_present()) return 77;
    cpu = sam_backend_create("cpu", 0, SAM_PRECISION_FP32);
    gpu = sam_backend_create("cuda", 0, SAM_PRECISION_FP32);
    if (!cpu || !gpu) {
        fprintf(stderr, "FATAL: back end creation failed: %s\n", sam2d_last_error());
        return 1;
    }
    table_and_registry();
    accounting();
    const_case(gpu, "const (managed)");
    /* a device without concurrent managed access (the emulation can pretend; a real GPU ignores this) */
    setenv("SAM_EMU_NO_CONCURRENT_MANAGED", "1", 1);
    sam_backend *g2 = sam_backend_create("cuda:0", 0, SAM_PRECISION_FP32);
    unsetenv("SAM_EMU_NO_CONCURRENT_MANAGED");
    CHECK(g2 != NULL);
    if (g2) {
        const_case(g2, "const (second back end)");
        sam_backend_free(g2);
    }
    copies();
    small_kernels(1000003);
    small_kernels(5);
    small_kernels(100);
    bf16_cases();
    errors();
    size_t used, total;
    gpu->device_memory(gpu, &used, &total);
    printf("device memory: %zu bytes used of %zu\n", used, total);
    sam_backend_free(gpu);
    sam_backend_free(cpu);
    return test_finish();
}
