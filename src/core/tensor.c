#include "core/tensor.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

sam_tensor sam_tensor_make(void *data, sam2d_dtype dtype, int ndim, const int64_t *shape) {
    sam_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim < 0 ? 0 : ndim > SAM_TENSOR_MAX_DIMS ? SAM_TENSOR_MAX_DIMS : ndim;
    t.data = data;
    int64_t s = 1;
    for (int i = t.ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

int64_t sam_tensor_numel(const sam_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

sam2d_status sam_tensor_alloc(sam2d_dtype dtype, int ndim, const int64_t *shape, sam_tensor *out) {
    if (ndim < 0 || ndim > SAM_TENSOR_MAX_DIMS) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "tensor: %d dims", ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && n > INT64_MAX / 8 / shape[i]))
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "tensor: bad shape");
        n *= shape[i];
    }
    size_t es = sam2d_dtype_size(dtype);
    void *p = sam_malloc((size_t)(n ? n : 1) * es);
    if (!p) return SAM_ERR(SAM2D_ERR_NOMEM, "tensor: cannot allocate %lld elements", (long long)n);
    *out = sam_tensor_make(p, dtype, ndim, shape);
    return SAM2D_OK;
}

void sam_tensor_free(sam_tensor *t) {
    sam_free(t->data);
    t->data = NULL;
}

bool sam_tensor_is_contiguous(const sam_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool sam_tensor_same_shape(const sam_tensor *a, const sam_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

sam2d_status sam_tensor_reshape(const sam_tensor *t, int ndim, const int64_t *shape, sam_tensor *out) {
    if (!sam_tensor_is_contiguous(t)) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "reshape of a non-contiguous view");
    if (ndim < 0 || ndim > SAM_TENSOR_MAX_DIMS) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "reshape: %d dims", ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (n != sam_tensor_numel(t))
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "reshape: %lld elements into %lld", (long long)sam_tensor_numel(t),
                       (long long)n);
    *out = sam_tensor_make(t->data, t->dtype, ndim, shape);
    return SAM2D_OK;
}

sam2d_status sam_tensor_permute(const sam_tensor *t, const int *perm, sam_tensor *out) {
    bool seen[SAM_TENSOR_MAX_DIMS] = {0};
    sam_tensor r = *t;
    for (int i = 0; i < t->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]])
            return SAM_ERR(SAM2D_ERR_INVALID_ARG, "permute: not a permutation");
        seen[perm[i]] = true;
        r.shape[i] = t->shape[perm[i]];
        r.stride[i] = t->stride[perm[i]];
    }
    *out = r;
    return SAM2D_OK;
}

static char *elem_ptr(const sam_tensor *t, int64_t offset) {
    return (char *)t->data + offset * (int64_t)sam2d_dtype_size(t->dtype);
}

sam2d_status sam_tensor_slice(const sam_tensor *t, int dim, int64_t start, int64_t len, sam_tensor *out) {
    if (dim < 0 || dim >= t->ndim || start < 0 || len < 0 || start + len > t->shape[dim])
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "slice: [%lld, +%lld) out of dim %d", (long long)start, (long long)len,
                       dim);
    sam_tensor r = *t;
    r.data = elem_ptr(t, start * t->stride[dim]);
    r.shape[dim] = len;
    *out = r;
    return SAM2D_OK;
}

sam2d_status sam_tensor_select(const sam_tensor *t, int dim, int64_t index, sam_tensor *out) {
    if (dim < 0 || dim >= t->ndim || index < 0 || index >= t->shape[dim])
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "select: index %lld out of dim %d", (long long)index, dim);
    sam_tensor r = *t;
    r.data = elem_ptr(t, index * t->stride[dim]);
    for (int i = dim; i + 1 < t->ndim; i++) {
        r.shape[i] = t->shape[i + 1];
        r.stride[i] = t->stride[i + 1];
    }
    r.ndim = t->ndim - 1;
    *out = r;
    return SAM2D_OK;
}

float sam_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (!man) {
            u = sign;
        } else { /* subnormal: value = man * 2^-24 exactly */
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sam_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00; /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float v = fabsf(f) * 16777216.0f;          /* units of 2^-24, exact scaling */
        float r = nearbyintf(v);                   /* ties to even under the default mode */
        return sign | (uint16_t)r;
    }
    /* normal: drop 13 mantissa bits with round to nearest even */
    uint32_t x = a - (112u << 23);
    x += 0x0fffu + ((x >> 13) & 1u);
    return sign | (uint16_t)(x >> 13);
}

float sam_bf16_to_f32_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sam_f32_to_bf16_value(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float load(const sam_tensor *t, int64_t off) {
    const char *p = elem_ptr(t, off);
    uint16_t h;
    float f;
    switch (t->dtype) {
    case SAM2D_F32: memcpy(&f, p, 4); return f;
    case SAM2D_F16: memcpy(&h, p, 2); return sam_f16_to_f32(h);
    case SAM2D_BF16: memcpy(&h, p, 2); return sam_bf16_to_f32_value(h);
    case SAM2D_U8: return (float)*(const uint8_t *)p;
    case SAM2D_I32: { int32_t v; memcpy(&v, p, 4); return (float)v; }
    case SAM2D_I64: { int64_t v; memcpy(&v, p, 8); return (float)v; }
    default: return 0;
    }
}

static void store(sam_tensor *t, int64_t off, float v) {
    char *p = elem_ptr(t, off);
    uint16_t h;
    switch (t->dtype) {
    case SAM2D_F32: memcpy(p, &v, 4); break;
    case SAM2D_F16: h = sam_f32_to_f16(v); memcpy(p, &h, 2); break;
    case SAM2D_BF16: h = sam_f32_to_bf16_value(v); memcpy(p, &h, 2); break;
    default: break;
    }
}

float sam_tensor_get(const sam_tensor *t, const int64_t *index) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += index[i] * t->stride[i];
    return load(t, off);
}

/* Visit every element in C order of the view: fn(offset, linear index). */
#define FOR_EACH_ELEMENT(t, body)                                            \
    do {                                                                     \
        int64_t idx_[SAM_TENSOR_MAX_DIMS] = {0}, off_ = 0, n_ = sam_tensor_numel(t); \
        for (int64_t lin_ = 0; lin_ < n_; lin_++) {                          \
            body;                                                            \
            for (int d_ = (t)->ndim - 1; d_ >= 0; d_--) {                    \
                off_ += (t)->stride[d_];                                     \
                if (++idx_[d_] < (t)->shape[d_]) break;                      \
                off_ -= (t)->stride[d_] * (t)->shape[d_];                    \
                idx_[d_] = 0;                                                \
            }                                                                \
        }                                                                    \
    } while (0)

sam2d_status sam_tensor_to_f32(const sam_tensor *t, float *dst) {
    if (t->dtype == SAM2D_F32 && sam_tensor_is_contiguous(t)) {
        memcpy(dst, t->data, (size_t)sam_tensor_numel(t) * 4);
        return SAM2D_OK;
    }
    FOR_EACH_ELEMENT(t, dst[lin_] = load(t, off_));
    return SAM2D_OK;
}

sam2d_status sam_tensor_from_f32(sam_tensor *t, const float *src) {
    if (t->dtype != SAM2D_F32 && t->dtype != SAM2D_F16 && t->dtype != SAM2D_BF16)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "tensor: cannot store into %s", sam2d_dtype_name(t->dtype));
    FOR_EACH_ELEMENT(t, store(t, off_, src[lin_]));
    return SAM2D_OK;
}
