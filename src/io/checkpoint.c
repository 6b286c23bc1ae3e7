/* Checkpoint object, format detection, and the PyTorch `.pt` (zip + pickle) loader. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "io/checkpoint_internal.h"
#include "io/pickle.h"
#include "io/zip.h"

#define DEFAULT_MAX_FILE ((size_t)16 << 30)
#define DEFAULT_MAX_TENSORS 100000

sam2d_checkpoint_params sam2d_checkpoint_default_params(void) {
    sam2d_checkpoint_params p = {DEFAULT_MAX_FILE, DEFAULT_MAX_TENSORS};
    return p;
}

static sam2d_checkpoint_params resolve_params(const sam2d_checkpoint_params *p) {
    sam2d_checkpoint_params r = p ? *p : sam2d_checkpoint_default_params();
    if (!r.max_file_bytes) r.max_file_bytes = DEFAULT_MAX_FILE;
    if (!r.max_tensors) r.max_tensors = DEFAULT_MAX_TENSORS;
    return r;
}

/* ---- checkpoint object ----------------------------------------------------- */

void sam2d_checkpoint_free(sam2d_checkpoint *ck) {
    if (!ck) return;
    sam_free(ck->tensors);
    sam_free(ck->sorted);
    sam_free(ck->names);
    sam_free(ck->data);
    sam_free(ck);
}

sam2d_status sam_ckpt_new(const char *format, size_t n, size_t names_bytes, sam2d_checkpoint **out) {
    *out = NULL;
    sam2d_checkpoint *ck = sam_calloc(1, sizeof *ck);
    if (!ck) return SAM_ERR(SAM2D_ERR_NOMEM, "checkpoint: out of memory");
    ck->format = format;
    ck->n = n;
    ck->tensors = sam_calloc(n ? n : 1, sizeof *ck->tensors);
    ck->sorted = sam_calloc(n ? n : 1, sizeof *ck->sorted);
    ck->names = sam_malloc(names_bytes ? names_bytes : 1);
    ck->names_cap = names_bytes;
    if (!ck->tensors || !ck->sorted || !ck->names) {
        sam2d_checkpoint_free(ck);
        return SAM_ERR(SAM2D_ERR_NOMEM, "checkpoint: out of memory for %zu tensors", n);
    }
    *out = ck;
    return SAM2D_OK;
}

sam2d_status sam_ckpt_set_name(sam2d_checkpoint *ck, size_t i, const char *name, size_t len) {
    if (i >= ck->n || len + 1 > ck->names_cap - ck->names_used)
        return SAM_ERR(SAM2D_ERR_INTERNAL, "checkpoint: name block too small");
    char *dst = ck->names + ck->names_used;
    memcpy(dst, name, len);
    dst[len] = 0;
    ck->names_used += len + 1;
    ck->tensors[i].name = dst;
    return SAM2D_OK;
}

sam2d_status sam_ckpt_alloc_data(sam2d_checkpoint *ck, uint64_t max_bytes) {
    uint64_t total = 0;
    for (size_t i = 0; i < ck->n; i++) {
        const sam2d_tensor_info *t = &ck->tensors[i];
        uint64_t nb = 0, padded = 0;
        int bad = t->numel < 0 || __builtin_mul_overflow((uint64_t)t->numel, (uint64_t)sam2d_dtype_size(t->dtype), &nb);
        if (!bad) padded = (nb + 63) & ~(uint64_t)63;
        if (bad || padded < nb || total + padded < total || total + padded > max_bytes)
            return SAM_ERR(SAM2D_ERR_LIMIT, "checkpoint: tensor data exceeds the limit of %llu bytes (at '%s')",
                           (unsigned long long)max_bytes, t->name);
        total += padded;
    }
    if (total > SIZE_MAX) return SAM_ERR(SAM2D_ERR_LIMIT, "checkpoint: tensor data too large");
    ck->data = sam_malloc(total ? (size_t)total : 64);
    if (!ck->data)
        return SAM_ERR(SAM2D_ERR_NOMEM, "checkpoint: cannot allocate %llu bytes of weights", (unsigned long long)total);
    ck->data_bytes = (size_t)total;
    size_t off = 0;
    for (size_t i = 0; i < ck->n; i++) {
        sam2d_tensor_info *t = &ck->tensors[i];
        t->data = (uint8_t *)ck->data + off;
        off += ((size_t)t->numel * sam2d_dtype_size(t->dtype) + 63) & ~(size_t)63;
    }
    return SAM2D_OK;
}

static int cmp_info_name(const void *a, const void *b) {
    return strcmp((*(const sam2d_tensor_info *const *)a)->name, (*(const sam2d_tensor_info *const *)b)->name);
}

sam2d_status sam_ckpt_finish(sam2d_checkpoint *ck) {
    for (size_t i = 0; i < ck->n; i++) ck->sorted[i] = &ck->tensors[i];
    qsort(ck->sorted, ck->n, sizeof *ck->sorted, cmp_info_name);
    for (size_t i = 1; i < ck->n; i++)
        if (strcmp(ck->sorted[i - 1]->name, ck->sorted[i]->name) == 0)
            return SAM_ERR(SAM2D_ERR_FORMAT, "checkpoint: tensor '%s' appears twice", ck->sorted[i]->name);
    return SAM2D_OK;
}

const char *sam2d_checkpoint_format(const sam2d_checkpoint *ck) { return ck ? ck->format : NULL; }

size_t sam2d_checkpoint_count(const sam2d_checkpoint *ck) { return ck ? ck->n : 0; }

const sam2d_tensor_info *sam2d_checkpoint_tensor(const sam2d_checkpoint *ck, size_t i) {
    return ck && i < ck->n ? &ck->tensors[i] : NULL;
}

const sam2d_tensor_info *sam2d_checkpoint_find(const sam2d_checkpoint *ck, const char *name) {
    if (!ck || !name) return NULL;
    size_t lo = 0, hi = ck->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ck->sorted[mid]->name);
        if (c == 0) return ck->sorted[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* IEEE half -> float, exact (subnormals, inf, NaN). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else if (exp) {
        bits = sign | (exp + 112) << 23 | man << 13;
    } else if (man) {
        /* subnormal: normalise the mantissa */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ff) << 13;
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void sam2d_tensor_to_f32(const sam2d_tensor_info *t, float *dst) {
    size_t n = (size_t)t->numel;
    const uint8_t *src = t->data;
    if (n == 0) return;
    switch (t->dtype) {
    case SAM2D_F32: memcpy(dst, src, n * sizeof(float)); break;
    case SAM2D_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case SAM2D_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, sizeof bits);
        }
        break;
    default: memset(dst, 0, n * sizeof(float)); break; /* never loaded: refused at load */
    }
}

/* ---- .pt ------------------------------------------------------------------- */

typedef struct {
    const uint8_t *bytes;          // storage contents (in the zip buffer or `owned`)
    size_t len;
    void *owned;                   // inflated copy, when the entry was deflated
    const sam_zip_entry *entry;
    int state;                     // 0 unresolved, 1 resolved
    int crc_pending;               // stored entry: CRC checked by the parallel pass
} storage_ref;

/* Work of the parallel pass: CRC of a stored storage's byte range, or the copy
 * of (a byte range of) one tensor. Big storages/tensors are split in chunks. */
enum { JOB_CRC, JOB_COPY };
typedef struct {
    uint8_t kind;
    size_t idx;            /* storage (JOB_CRC) or tensor (JOB_COPY) */
    uint64_t begin, end;   /* byte range; for a strided tensor the whole tensor */
    uint32_t crc;          /* JOB_CRC result */
} load_job;

typedef struct {
    const sam_pk_state_dict *sd;
    const sam2d_checkpoint *ck;
    const storage_ref *refs;
    load_job *jobs;
    int big;
} load_ctx;

#define JOB_CHUNK ((uint64_t)4 << 20)
#define PARALLEL_MIN_BYTES ((uint64_t)8 << 20)

static sam2d_dtype pk_to_dtype(sam_pk_dtype t, int *ok) {
    *ok = 1;
    switch (t) {
    case SAM_PK_F32: return SAM2D_F32;
    case SAM_PK_F16: return SAM2D_F16;
    case SAM_PK_BF16: return SAM2D_BF16;
    default: *ok = 0; return SAM2D_F32;
    }
}

/* Find "<prefix>/data.pkl" (prefix: one path component, any name) or a bare "data.pkl". */
static sam2d_status find_pickle(const sam_zip *z, const sam_zip_entry **pkl, size_t *prefix_len) {
    *pkl = NULL;
    for (size_t i = 0; i < sam_zip_count(z); i++) {
        const sam_zip_entry *e = sam_zip_entry_at(z, i);
        size_t n = strlen(e->name);
        int match = 0;
        if (n == 8 && strcmp(e->name, "data.pkl") == 0) match = 1;
        else if (n > 9 && strcmp(e->name + n - 9, "/data.pkl") == 0 && !memchr(e->name, '/', n - 9)) match = 1;
        if (!match) continue;
        if (*pkl) return SAM_ERR(SAM2D_ERR_FORMAT, "pt: archive holds several data.pkl ('%s', '%s')", (*pkl)->name, e->name);
        *pkl = e;
        *prefix_len = n - 8; /* keeps the trailing '/' */
    }
    if (!*pkl) return SAM_ERR(SAM2D_ERR_FORMAT, "pt: no <name>/data.pkl in the zip: not a PyTorch checkpoint");
    return SAM2D_OK;
}

/* Byte order of the storages: torch >= 1.10 writes "<prefix>/byteorder"; absent means little. */
static sam2d_status read_byteorder(const sam_zip *z, const char *prefix, size_t plen, int *big) {
    char name[512];
    *big = 0;
    if (plen + 10 > sizeof name) return SAM_ERR(SAM2D_ERR_FORMAT, "pt: archive prefix too long");
    memcpy(name, prefix, plen);
    memcpy(name + plen, "byteorder", 10);
    const sam_zip_entry *e = sam_zip_find(z, name);
    if (!e) return SAM2D_OK;
    const uint8_t *d;
    void *owned;
    SAM_TRY(sam_zip_get(z, e, &d, &owned));
    size_t n = (size_t)e->size;
    while (n && (d[n - 1] == '\n' || d[n - 1] == ' ')) n--;
    sam2d_status st = SAM2D_OK;
    if (n == 6 && memcmp(d, "little", 6) == 0) *big = 0;
    else if (n == 3 && memcmp(d, "big", 3) == 0) *big = 1;
    else st = SAM_ERR(SAM2D_ERR_FORMAT, "pt: byteorder entry is neither 'little' nor 'big'");
    sam_free(owned);
    return st;
}

static int mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static int add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }

/* C-order contiguous view (dims of size 1 may carry any stride). */
static int is_contiguous(const sam_pk_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* Copy a strided view of `src` into contiguous C order (elements of `es` bytes);
 * numel > 0 and the view lies inside the storage (checked before). */
static void gather(uint8_t *dst, const uint8_t *src, const sam_pk_tensor *t, size_t es) {
    int nd = t->ndim;
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) numel *= t->shape[d];
    src += (size_t)t->offset * es;
    int64_t idx[SAM2D_MAX_DIMS] = {0};
    int64_t inner = t->shape[nd - 1], istride = t->stride[nd - 1];
    for (int64_t done = 0; done < numel; done += inner) {
        int64_t off = 0;
        for (int d = 0; d < nd - 1; d++) off += idx[d] * t->stride[d];
        for (int64_t k = 0; k < inner; k++) {
            memcpy(dst, src + (size_t)(off + k * istride) * es, es);
            dst += es;
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static void byteswap(uint8_t *p, size_t n, size_t es) {
    for (size_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t c = p[a];
            p[a] = p[b];
            p[b] = c;
        }
}

static sam2d_status resolve_storage(const sam_zip *z, const char *prefix, size_t plen, const sam_pk_storage *s,
                                    storage_ref *r, const char *tensor, uint64_t *inflated, uint64_t max_inflated) {
    if (r->state) return SAM2D_OK;
    char name[600];
    size_t klen = strlen(s->key);
    if (plen + 5 + klen + 1 > sizeof name) return SAM_ERR(SAM2D_ERR_FORMAT, "pt: storage key too long");
    memcpy(name, prefix, plen);
    memcpy(name + plen, "data/", 5);
    memcpy(name + plen + 5, s->key, klen + 1);
    const sam_zip_entry *e = sam_zip_find(z, name);
    if (!e)
        return SAM_ERR(SAM2D_ERR_FORMAT, "pt: missing storage: tensor '%s' refers to '%s', which is not in the zip",
                       tensor, name);
    int64_t need;
    size_t es = sam_pk_dtype_size(s->dtype);
    if (!mul_ok(s->numel, (int64_t)es, &need) || (uint64_t)need > e->size)
        return SAM_ERR(SAM2D_ERR_FORMAT, "pt: storage '%s' holds %llu bytes but the pickle declares %lld %s elements",
                       name, (unsigned long long)e->size, (long long)s->numel, sam_pk_dtype_name(s->dtype));
    /* deflated storages are held until every tensor is copied: bound their total */
    if (e->method != 0) {
        if (e->size > max_inflated - *inflated)
            return SAM_ERR(SAM2D_ERR_LIMIT, "pt: compressed storages would inflate to more than %llu bytes",
                           (unsigned long long)max_inflated);
        *inflated += e->size;
    }
    if (e->method == 0) {
        SAM_TRY(sam_zip_locate(z, e, &r->bytes)); /* CRC: in the parallel pass */
        r->crc_pending = 1;
    } else {
        SAM_TRY(sam_zip_get(z, e, &r->bytes, &r->owned));
    }
    r->entry = e;
    r->len = (size_t)e->size;
    r->state = 1;
    return SAM2D_OK;
}

static void run_jobs(void *vctx, int64_t begin, int64_t end, int tid) {
    load_ctx *c = vctx;
    for (int64_t j = begin; j < end; j++) {
        load_job *jb = &c->jobs[j];
        if (jb->kind == JOB_CRC) {
            const uint8_t *b = c->refs[jb->idx].bytes + jb->begin;
            jb->crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), b, (size_t)(jb->end - jb->begin));
            continue;
        }
        const sam_pk_tensor *t = &c->sd->tensors[jb->idx];
        size_t es = sam_pk_dtype_size(c->sd->storages[t->storage].dtype);
        uint8_t *dst = (uint8_t *)c->ck->tensors[jb->idx].data;
        const uint8_t *src = c->refs[t->storage].bytes;
        if (is_contiguous(t)) {
            memcpy(dst + jb->begin, src + (size_t)t->offset * es + jb->begin, (size_t)(jb->end - jb->begin));
        } else {
            gather(dst, src, t, es);
        }
        if (c->big) byteswap(dst + jb->begin, (size_t)(jb->end - jb->begin) / es, es);
    }
}

static sam2d_status add_job(load_job **jobs, size_t *n, size_t *cap, uint8_t kind, size_t idx, uint64_t b, uint64_t e) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        load_job *nj = sam_realloc(*jobs, nc * sizeof *nj);
        if (!nj) return SAM_ERR(SAM2D_ERR_NOMEM, "pt: out of memory");
        *jobs = nj;
        *cap = nc;
    }
    load_job jb = {kind, idx, b, e, 0};
    (*jobs)[(*n)++] = jb;
    return SAM2D_OK;
}

/* CRC every stored storage and copy every tensor, in parallel for big files;
 * then report the first CRC mismatch, if any. */
static sam2d_status copy_tensors(const sam_pk_state_dict *sd, const sam2d_checkpoint *ck, storage_ref *refs, int big) {
    load_job *jobs = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    sam2d_status st = SAM2D_OK;
    for (size_t s = 0; s < sd->n_storages && !st; s++) {
        if (!refs[s].crc_pending) continue;
        for (uint64_t b = 0; b < refs[s].len && !st; b += JOB_CHUNK)
            st = add_job(&jobs, &n, &cap, JOB_CRC, s, b, b + JOB_CHUNK < refs[s].len ? b + JOB_CHUNK : refs[s].len);
        total += refs[s].len;
    }
    for (size_t i = 0; i < sd->n_tensors && !st; i++) {
        const sam2d_tensor_info *ti = &ck->tensors[i];
        uint64_t nb = (uint64_t)ti->numel * sam2d_dtype_size(ti->dtype);
        if (nb == 0) continue;
        total += nb;
        if (!is_contiguous(&sd->tensors[i])) {
            st = add_job(&jobs, &n, &cap, JOB_COPY, i, 0, nb);
            continue;
        }
        for (uint64_t b = 0; b < nb && !st; b += JOB_CHUNK) /* chunks are multiples of any element size */
            st = add_job(&jobs, &n, &cap, JOB_COPY, i, b, b + JOB_CHUNK < nb ? b + JOB_CHUNK : nb);
    }
    if (st) {
        sam_free(jobs);
        return st;
    }
    load_ctx c = {sd, ck, refs, jobs, big};
    /* a short-lived pool only when there is enough work to pay for it */
    sam_threadpool *pool = total >= PARALLEL_MIN_BYTES && sam_default_threads() > 1 ? sam_threadpool_create(0) : NULL;
    sam_parallel_for(pool, (int64_t)n, 1, run_jobs, &c);
    sam_threadpool_free(pool);
    /* chunk CRCs of one storage are consecutive jobs: combine them in order */
    for (size_t j = 0; j < n && jobs[j].kind == JOB_CRC;) {
        size_t s = jobs[j].idx;
        uLong crc = jobs[j].crc;
        for (j++; j < n && jobs[j].kind == JOB_CRC && jobs[j].idx == s; j++)
            crc = crc32_combine(crc, jobs[j].crc, (z_off_t)(jobs[j].end - jobs[j].begin)); /* chunks <= 4 MiB */
        if ((uint32_t)crc != refs[s].entry->crc32) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "zip: CRC mismatch in '%s' (stored %08x, computed %08x): file corrupt",
                         refs[s].entry->name, (unsigned)refs[s].entry->crc32, (unsigned)crc);
            break;
        }
    }
    sam_free(jobs);
    return st;
}

/* Check one tensor's view against its storage; returns its numel. */
static sam2d_status check_view(const sam_pk_tensor *t, const sam_pk_storage *s, int64_t *numel_out) {
    int64_t numel = 1, last = t->offset;
    for (int d = 0; d < t->ndim; d++)
        if (!mul_ok(numel, t->shape[d], &numel))
            return SAM_ERR(SAM2D_ERR_FORMAT, "pt: tensor '%s' has an overflowing shape", t->name);
    if (numel > 0) {
        for (int d = 0; d < t->ndim; d++) {
            int64_t span;
            if (!mul_ok(t->shape[d] - 1, t->stride[d], &span) || !add_ok(last, span, &last))
                return SAM_ERR(SAM2D_ERR_FORMAT, "pt: tensor '%s' has overflowing strides", t->name);
        }
        if (last >= s->numel)
            return SAM_ERR(SAM2D_ERR_FORMAT,
                           "pt: tensor '%s' is out of range: storage offset %lld with its size/stride reaches element "
                           "%lld of a storage of %lld elements",
                           t->name, (long long)t->offset, (long long)last, (long long)s->numel);
    }
    *numel_out = numel;
    return SAM2D_OK;
}

sam2d_status sam_ckpt_load_pt(const uint8_t *buf, size_t len, const sam2d_checkpoint_params *p, sam2d_checkpoint **out) {
    *out = NULL;
    sam_zip *z = NULL;
    sam_pk_state_dict sd;
    memset(&sd, 0, sizeof sd);
    storage_ref *refs = NULL;
    sam2d_checkpoint *ck = NULL;
    void *pkl_owned = NULL;
    sam2d_status st = sam_zip_open(buf, len, p->max_file_bytes, &z);
    if (st) goto done;
    const sam_zip_entry *pe;
    size_t plen = 0;
    if ((st = find_pickle(z, &pe, &plen))) goto done;
    int big;
    if ((st = read_byteorder(z, pe->name, plen, &big))) goto done;
    const uint8_t *pkl;
    if ((st = sam_zip_get(z, pe, &pkl, &pkl_owned))) goto done;
    sam_pk_limits lim = {p->max_tensors, 0, 0};
    if ((st = sam_pickle_state_dict(pkl, (size_t)pe->size, &lim, &sd))) goto done;
    sam_free(pkl_owned);
    pkl_owned = NULL;

    size_t names = 0;
    for (size_t i = 0; i < sd.n_tensors; i++) names += strlen(sd.tensors[i].name) + 1;
    if ((st = sam_ckpt_new("pt", sd.n_tensors, names, &ck))) goto done;
    refs = sam_calloc(sd.n_storages ? sd.n_storages : 1, sizeof *refs);
    if (!refs) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "pt: out of memory");
        goto done;
    }
    uint64_t inflated = 0;
    for (size_t i = 0; i < sd.n_tensors; i++) {
        const sam_pk_tensor *t = &sd.tensors[i];
        const sam_pk_storage *s = &sd.storages[t->storage];
        sam2d_tensor_info *ti = &ck->tensors[i];
        int ok;
        ti->dtype = pk_to_dtype(s->dtype, &ok);
        if (!ok) {
            st = SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pt: tensor '%s' is stored as torch.%s; only float32, float16 and bfloat16 are supported",
                         t->name, sam_pk_dtype_name(s->dtype));
            goto done;
        }
        if ((st = sam_ckpt_set_name(ck, i, t->name, strlen(t->name)))) goto done;
        ti->ndim = t->ndim;
        memcpy(ti->shape, t->shape, sizeof ti->shape);
        if ((st = check_view(t, s, &ti->numel))) goto done;
        if (ti->numel > 0 && (st = resolve_storage(z, pe->name, plen, s, &refs[t->storage], t->name, &inflated,
                                                  p->max_file_bytes))) goto done;
    }
    if ((st = sam_ckpt_alloc_data(ck, p->max_file_bytes))) goto done;
    if ((st = copy_tensors(&sd, ck, refs, big))) goto done;
    st = sam_ckpt_finish(ck);
done:
    if (refs)
        for (size_t i = 0; i < sd.n_storages; i++) sam_free(refs[i].owned);
    sam_free(refs);
    sam_free(pkl_owned);
    sam_pickle_state_dict_free(&sd);
    sam_zip_close(z);
    if (st) sam2d_checkpoint_free(ck);
    else *out = ck;
    return st;
}

/* ---- entry points ---------------------------------------------------------- */

static sam2d_status load_buffer(const uint8_t *buf, size_t len, const sam2d_checkpoint_params *p, sam2d_checkpoint **out) {
    if (len >= 4 && buf[0] == 'P' && buf[1] == 'K' &&
        ((buf[2] == 3 && buf[3] == 4) || (buf[2] == 5 && buf[3] == 6)))
        return sam_ckpt_load_pt(buf, len, p, out);
    if (len >= 9 && buf[8] == '{') return sam_ckpt_load_safetensors(buf, len, p, out);
    if (len >= 2 && buf[0] == 0x80)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                       "checkpoint: legacy (pre-zip) torch.save format; re-save it with torch >= 1.6 or convert to safetensors");
    return SAM_ERR(SAM2D_ERR_FORMAT, "checkpoint: neither a PyTorch .pt zip nor a .safetensors file (%zu bytes)", len);
}

sam2d_status sam2d_checkpoint_load_memory(const void *buf, size_t len, const sam2d_checkpoint_params *params,
                                          sam2d_checkpoint **out) {
    if (!out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "checkpoint: out is NULL");
    *out = NULL;
    if (!buf && len) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "checkpoint: NULL buffer");
    sam2d_checkpoint_params p = resolve_params(params);
    if (len > p.max_file_bytes)
        return SAM_ERR(SAM2D_ERR_LIMIT, "checkpoint: %zu bytes exceeds the limit of %zu", len, p.max_file_bytes);
    return load_buffer(buf, len, &p, out);
}

sam2d_status sam2d_checkpoint_load(const char *path, const sam2d_checkpoint_params *params, sam2d_checkpoint **out) {
    if (!out || !path) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "checkpoint: NULL argument");
    *out = NULL;
    sam2d_checkpoint_params p = resolve_params(params);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SAM_ERR(SAM2D_ERR_IO, "cannot open checkpoint %s", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return SAM_ERR(SAM2D_ERR_IO, "checkpoint %s is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > p.max_file_bytes) {
        close(fd);
        return SAM_ERR(SAM2D_ERR_LIMIT, "checkpoint %s: %lld bytes exceeds the limit of %zu", path,
                       (long long)sb.st_size, p.max_file_bytes);
    }
    size_t len = (size_t)sb.st_size;
    if (len == 0) {
        close(fd);
        return SAM_ERR(SAM2D_ERR_FORMAT, "checkpoint %s is empty", path);
    }
    /* Map the file (the page cache holds it; tensors are copied out, then it is unmapped). */
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return SAM_ERR(SAM2D_ERR_IO, "cannot map checkpoint %s", path);
    madvise(map, len, MADV_SEQUENTIAL);
    sam2d_status st = load_buffer(map, len, &p, out);
    munmap(map, len);
    if (st) sam_error_wrap(st, "loading %s", path);
    return st;
}
