/* Named checkpoint tensors -> float32 model buffers, with every problem
 * collected into one message. */
#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "ops/ops.h"

void sam_weight_set_init(sam_weight_set *s) { memset(s, 0, sizeof(*s)); }

void sam_weight_set_init_on(sam_weight_set *s, sam_backend *be) {
    memset(s, 0, sizeof(*s));
    s->be = be;
}

static void set_release(sam_weight_set *s, float *p) {
    if (s && s->be)
        s->be->const_free(s->be, p);
    else
        sam_free(p);
}

void sam_weight_set_free(sam_weight_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) set_release(s, s->ptrs[i]);
    sam_free(s->ptrs);
    sam_free(s->sizes);
    sam_backend *be = s->be;
    memset(s, 0, sizeof(*s));
    s->be = be;
}

void sam_weight_set_publish(sam_weight_set *s) {
    if (!s || !s->be) return;
    for (size_t i = 0; i < s->n; i++) s->be->const_publish(s->be, s->ptrs[i], s->sizes[i]);
}

static int set_add(sam_weight_set *s, float *p, size_t bytes) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        float **np = sam_realloc(s->ptrs, nc * sizeof(*np));
        if (!np) return -1;
        s->ptrs = np;
        size_t *ns = sam_realloc(s->sizes, nc * sizeof(*ns));
        if (!ns) return -1;
        s->sizes = ns;
        s->cap = nc;
    }
    s->ptrs[s->n] = p;
    s->sizes[s->n++] = bytes;
    s->bytes += bytes;
    return 0;
}

void sam_weight_loader_init(sam_weight_loader *L, const sam2d_checkpoint *ck, sam_weight_set *owner) {
    memset(L, 0, sizeof(*L));
    L->ck = ck;
    L->owner = owner;
}

void sam_weight_loader_init_random(sam_weight_loader *L, uint64_t seed, float scale, sam_weight_set *owner) {
    memset(L, 0, sizeof(*L));
    L->owner = owner;
    L->rng = seed * 2862933555777941757ULL + 3037000493ULL;
    L->rand_scale = scale;
}

static void vappend(sam_weight_loader *L, const char *fmt, va_list ap) {
    char line[512];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof(line)) n = (int)sizeof(line) - 1;
    L->nerr++;
    /* Keep the message bounded: after ~64 KiB only the count grows. */
    if (L->msg_len + (size_t)n + 2 > 65536) return;
    if (L->msg_len + (size_t)n + 2 > L->msg_cap) {
        size_t nc = L->msg_cap ? L->msg_cap * 2 : 1024;
        while (nc < L->msg_len + (size_t)n + 2) nc *= 2;
        char *m = sam_realloc(L->msg, nc);
        if (!m) return;
        L->msg = m;
        L->msg_cap = nc;
    }
    if (L->msg_len) L->msg[L->msg_len++] = '\n';
    memcpy(L->msg + L->msg_len, line, (size_t)n);
    L->msg_len += (size_t)n;
    L->msg[L->msg_len] = 0;
}

void sam_weight_loader_fail(sam_weight_loader *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vappend(L, fmt, ap);
    va_end(ap);
}

static void append(sam_weight_loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(sam_weight_loader *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vappend(L, fmt, ap);
    va_end(ap);
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "(");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
}

static float *set_new(sam_weight_set *s, size_t bytes) {
    if (!bytes) bytes = sizeof(float);
    float *p = s && s->be ? s->be->const_alloc(s->be, bytes) : sam_malloc(bytes);
    if (!p) return NULL;
    if (s && set_add(s, p, bytes) != 0) {
        set_release(s, p);
        return NULL;
    }
    return p;
}

float *sam_weight_set_alloc(sam_weight_set *s, size_t count) { return set_new(s, count * sizeof(float)); }

static float *alloc_owned(sam_weight_loader *L, const char *name, int64_t numel) {
    size_t bytes = (size_t)numel * sizeof(float);
    float *p = set_new(L->owner, bytes);
    if (!p) append(L, "%s: out of memory (%zu bytes)", name, bytes);
    return p;
}

static float *fetch(sam_weight_loader *L, bool optional, int ndim, const int64_t *shape, const char *name) {
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    if (!L->ck) { /* random mode */
        float *p = alloc_owned(L, name, numel);
        if (!p) return NULL;
        for (int64_t i = 0; i < numel; i++) {
            L->rng = L->rng * 6364136223846793005ULL + 1442695040888963407ULL;
            float u = (float)((L->rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f; /* [-1, 1) */
            p[i] = u * L->rand_scale;
        }
        L->nloaded++;
        return p;
    }
    const sam2d_tensor_info *t = sam2d_checkpoint_find(L->ck, name);
    if (!t) {
        if (!optional) append(L, "missing tensor %s", name);
        return NULL;
    }
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[160], got[160];
        shape_str(want, sizeof(want), ndim, shape);
        shape_str(got, sizeof(got), t->ndim, t->shape);
        append(L, "tensor %s has shape %s, expected %s", name, got, want);
        return NULL;
    }
    float *p = alloc_owned(L, name, numel);
    if (!p) return NULL;
    sam2d_tensor_to_f32(t, p);
    L->nloaded++;
    return p;
}

float *sam_weight(sam_weight_loader *L, int ndim, const int64_t *shape, const char *name_fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof(name), name_fmt, ap);
    va_end(ap);
    return fetch(L, false, ndim, shape, name);
}

float *sam_weight_optional(sam_weight_loader *L, int ndim, const int64_t *shape, const char *name_fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof(name), name_fmt, ap);
    va_end(ap);
    return fetch(L, true, ndim, shape, name);
}

bool sam_weight_exists(sam_weight_loader *L, const char *name_fmt, ...) {
    if (!L->ck) return true;
    char name[256];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof(name), name_fmt, ap);
    va_end(ap);
    return sam2d_checkpoint_find(L->ck, name) != NULL;
}

const char *sam_weight_loader_message(const sam_weight_loader *L) { return L->msg ? L->msg : ""; }

sam2d_status sam_weight_loader_finish(sam_weight_loader *L) {
    sam2d_status st = SAM2D_OK;
    if (L->nerr) {
        st = SAM_ERR(SAM2D_ERR_MISMATCH, "%d checkpoint problem%s:\n%s%s", L->nerr, L->nerr == 1 ? "" : "s",
                     L->msg ? L->msg : "(out of memory while recording them)",
                     L->msg_len >= 65000 ? "\n..." : "");
    }
    sam_free(L->msg);
    L->msg = NULL;
    L->msg_len = L->msg_cap = 0;
    L->nerr = 0;
    return st;
}
