/* The CPU back end's memory entries and small kernels (ops.h, issue 8): on
 * the CPU every buffer is host memory, so these are malloc and memcpy. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "model/bf16.h"
#include "ops/cpu/cpu_internal.h"

static void *cpu_alloc(sam_backend *be, size_t bytes) {
    (void)be;
    return bytes ? sam_malloc(bytes) : NULL;
}
static void cpu_free(sam_backend *be, void *p) {
    (void)be;
    sam_free(p);
}
static void cpu_publish(sam_backend *be, const void *p, size_t bytes) { (void)be, (void)p, (void)bytes; }
static void cpu_copy(sam_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void cpu_copy2d(sam_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                       size_t row_bytes, size_t rows) {
    (void)be;
    for (size_t r = 0; r < rows; r++)
        memmove((unsigned char *)dst + r * dst_pitch, (const unsigned char *)src + r * src_pitch, row_bytes);
}
static void cpu_zero(sam_backend *be, void *dst, size_t bytes) {
    (void)be;
    if (bytes) memset(dst, 0, bytes);
}
static int cpu_sync(sam_backend *be) {
    (void)be;
    return 0;
}

typedef struct {
    float *y;
    const float *x;
    float a, b;
    int kind; /* 0 fill, 1 affine, 2 binarize */
} ew_job;

static void ew_run(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    const ew_job *J = ctx;
    float *y = J->y;
    const float *x = J->x;
    switch (J->kind) {
    case 0:
        for (int64_t i = begin; i < end; i++) y[i] = J->b;
        break;
    case 1:
        for (int64_t i = begin; i < end; i++) y[i] = x[i] * J->a + J->b;
        break;
    default:
        for (int64_t i = begin; i < end; i++) y[i] = x[i] > 0.0f ? 1.0f : 0.0f;
        break;
    }
}

static void ew(sam_backend *be, ew_job *J, int64_t n) {
    if (n > 0) sam_parallel_for(be->pool, n, 1 << 15, ew_run, J);
}
static void cpu_fill(sam_backend *be, float *y, float value, int64_t n) {
    ew_job J = {.y = y, .b = value, .kind = 0};
    ew(be, &J, n);
}
static void cpu_affine(sam_backend *be, float *y, const float *x, float alpha, float beta, int64_t n) {
    ew_job J = {.y = y, .x = x, .a = alpha, .b = beta, .kind = 1};
    ew(be, &J, n);
}
static void cpu_binarize(sam_backend *be, float *y, const float *x, int64_t n) {
    ew_job J = {.y = y, .x = x, .kind = 2};
    ew(be, &J, n);
}

typedef struct {
    float *x;
    int64_t stride, L;
    int heads, head_dim;
    const float *cs, *sn; /* (L, head_dim/2) */
} rope_job;

static void rope_run(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    const rope_job *J = ctx;
    const int half = J->head_dim / 2;
    for (int64_t r = begin; r < end; r++) {
        const float *c = J->cs + (r % J->L) * half, *s = J->sn + (r % J->L) * half;
        float *row = J->x + r * J->stride;
        for (int hd = 0; hd < J->heads; hd++) {
            float *v = row + (int64_t)hd * J->head_dim;
            for (int j = 0; j < half; j++) {
                float re = v[2 * j], im = v[2 * j + 1];
                v[2 * j] = re * c[j] - im * s[j];
                v[2 * j + 1] = re * s[j] + im * c[j];
            }
        }
    }
}

static void cpu_rope(sam_backend *be, float *x, int64_t rows, int64_t stride, int heads, int head_dim,
                     const float *cos_t, const float *sin_t, int64_t L) {
    if (rows <= 0 || L <= 0) return;
    rope_job J = {.x = x, .stride = stride, .L = L, .heads = heads, .head_dim = head_dim, .cs = cos_t, .sn = sin_t};
    sam_parallel_for(be->pool, rows, 256, rope_run, &J);
}

typedef struct {
    uint16_t *h;
    float *f;
    const uint16_t *hc;
    const float *fc;
} bf16_job;

static void to_bf16_run(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    const bf16_job *J = ctx;
    sam_f32_to_bf16_array(J->h + begin, J->fc + begin, (size_t)(end - begin));
}
static void from_bf16_run(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    const bf16_job *J = ctx;
    sam_bf16_to_f32_array(J->f + begin, J->hc + begin, (size_t)(end - begin));
}
static void cpu_to_bf16(sam_backend *be, uint16_t *y, const float *x, int64_t n) {
    bf16_job J = {.h = y, .fc = x};
    if (n > 0) sam_parallel_for(be->pool, n, 1 << 15, to_bf16_run, &J);
}
static void cpu_from_bf16(sam_backend *be, float *y, const uint16_t *x, int64_t n) {
    bf16_job J = {.f = y, .hc = x};
    if (n > 0) sam_parallel_for(be->pool, n, 1 << 15, from_bf16_run, &J);
}

static void cpu_device_memory(sam_backend *be, size_t *used, size_t *total) {
    (void)be;
    *used = *total = 0;
}

void sam_cpu_install_memory(sam_backend *be) {
    be->device_memory = cpu_device_memory;
    be->to_bf16 = cpu_to_bf16;
    be->from_bf16 = cpu_from_bf16;
    be->buf_alloc = cpu_alloc;
    be->buf_free = cpu_free;
    be->const_alloc = cpu_alloc;
    be->const_publish = cpu_publish;
    be->const_free = cpu_free;
    be->to_dev = cpu_copy;
    be->to_host = cpu_copy;
    be->copy = cpu_copy;
    be->copy2d = cpu_copy2d;
    be->zero = cpu_zero;
    be->sync = cpu_sync;
    be->fill = cpu_fill;
    be->affine = cpu_affine;
    be->binarize = cpu_binarize;
    be->rope = cpu_rope;
}
