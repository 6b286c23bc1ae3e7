/* .safetensors: u64 little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the raw little-endian tensor bytes. Every field is checked against the
 * file: sizes must match shapes, ranges must lie in the data and not overlap. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/checkpoint_internal.h"

#define MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's own cap */

typedef struct {
    uint64_t begin, end;
    size_t index;
} range_t;

static int cmp_range(const void *a, const void *b) {
    const range_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_dtype(const char *s, sam2d_dtype *t) {
    if (strcmp(s, "F32") == 0) return *t = SAM2D_F32, 1;
    if (strcmp(s, "F16") == 0) return *t = SAM2D_F16, 1;
    if (strcmp(s, "BF16") == 0) return *t = SAM2D_BF16, 1;
    static const char *const known[] = {"F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "C64"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(s, known[i]) == 0) return -1;
    return 0;
}

/* Non-negative JSON integer. */
static int get_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

sam2d_status sam_ckpt_load_safetensors(const uint8_t *buf, size_t len, const sam2d_checkpoint_params *p,
                                       sam2d_checkpoint **out) {
    *out = NULL;
    if (len < 8) return SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: file of %zu bytes is truncated", len);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen > len - 8)
        return SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: header length %llu exceeds the %zu-byte file (truncated or lying)",
                       (unsigned long long)hlen, len);
    if (hlen > MAX_HEADER)
        return SAM_ERR(SAM2D_ERR_LIMIT, "safetensors: header of %llu bytes exceeds %llu", (unsigned long long)hlen,
                       (unsigned long long)MAX_HEADER);
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: header is not valid JSON: %s (at byte %d)", jerr.text, jerr.position);
    sam2d_status st = SAM2D_OK;
    sam2d_checkpoint *ck = NULL;
    range_t *ranges = NULL;
    if (!json_is_object(root)) {
        st = SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: header is not a JSON object");
        goto done;
    }
    size_t n = 0, names = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        n++;
        names += strlen(key) + 1;
    }
    if (n > p->max_tensors) {
        st = SAM_ERR(SAM2D_ERR_LIMIT, "safetensors: %zu tensors exceeds the limit of %zu", n, p->max_tensors);
        goto done;
    }
    if ((st = sam_ckpt_new("safetensors", n, names, &ck))) goto done;
    ranges = sam_calloc(n ? n : 1, sizeof *ranges);
    if (!ranges) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "safetensors: out of memory");
        goto done;
    }
    size_t i = 0;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                st = SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: __metadata__ is not an object");
                goto done;
            }
            continue;
        }
        sam2d_tensor_info *t = &ck->tensors[i];
        if ((st = sam_ckpt_set_name(ck, i, key, strlen(key)))) goto done;
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: entry '%s' lacks dtype, shape or data_offsets", key);
            goto done;
        }
        int dt = parse_dtype(json_string_value(jd), &t->dtype);
        if (dt <= 0) {
            st = SAM_ERR(dt < 0 ? SAM2D_ERR_UNSUPPORTED : SAM2D_ERR_FORMAT,
                         "safetensors: tensor '%s' has %s dtype %s; only F32, F16 and BF16 are supported", key,
                         dt < 0 ? "unsupported" : "unknown", json_string_value(jd));
            goto done;
        }
        if (json_array_size(js) > SAM2D_MAX_DIMS) {
            st = SAM_ERR(SAM2D_ERR_UNSUPPORTED, "safetensors: tensor '%s' has %zu dimensions (max %d)", key,
                         json_array_size(js), SAM2D_MAX_DIMS);
            goto done;
        }
        t->ndim = (int)json_array_size(js);
        uint64_t numel = 1, nbytes, b, e;
        for (int d = 0; d < t->ndim; d++) {
            uint64_t dim;
            if (!get_u64(json_array_get(js, (size_t)d), &dim) || __builtin_mul_overflow(numel, dim, &numel) ||
                numel > (uint64_t)INT64_MAX) {
                st = SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: tensor '%s' has a malformed or overflowing shape", key);
                goto done;
            }
            t->shape[d] = (int64_t)dim;
        }
        t->numel = (int64_t)numel;
        if (!get_u64(json_array_get(jo, 0), &b) || !get_u64(json_array_get(jo, 1), &e) || b > e) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: tensor '%s' has malformed data_offsets", key);
            goto done;
        }
        if (e > data_len) {
            st = SAM_ERR(SAM2D_ERR_FORMAT,
                         "safetensors: tensor '%s' data_offsets [%llu, %llu) run past the %llu bytes of data "
                         "(header lies about sizes or file truncated)",
                         key, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
            goto done;
        }
        if (__builtin_mul_overflow(numel, (uint64_t)sam2d_dtype_size(t->dtype), &nbytes) || nbytes != e - b) {
            st = SAM_ERR(SAM2D_ERR_FORMAT,
                         "safetensors: tensor '%s' of shape with %llu %s elements needs %llu bytes but data_offsets "
                         "span %llu (header lies about sizes)",
                         key, (unsigned long long)numel, json_string_value(jd),
                         (unsigned long long)(numel * sam2d_dtype_size(t->dtype)), (unsigned long long)(e - b));
            goto done;
        }
        ranges[i].begin = b;
        ranges[i].end = e;
        ranges[i].index = i;
        i++;
    }
    qsort(ranges, n, sizeof *ranges, cmp_range);
    for (size_t k = 1; k < n; k++) {
        if (ranges[k].begin < ranges[k - 1].end) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "safetensors: tensors '%s' and '%s' overlap in the data",
                         ck->tensors[ranges[k - 1].index].name, ck->tensors[ranges[k].index].name);
            goto done;
        }
    }
    if ((st = sam_ckpt_alloc_data(ck, p->max_file_bytes))) goto done;
    for (size_t k = 0; k < n; k++)
        memcpy((void *)ck->tensors[ranges[k].index].data, data + ranges[k].begin, (size_t)(ranges[k].end - ranges[k].begin));
    st = sam_ckpt_finish(ck);
done:
    json_decref(root);
    sam_free(ranges);
    if (st) sam2d_checkpoint_free(ck);
    else *out = ck;
    return st;
}
