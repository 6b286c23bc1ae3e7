/* Builders for crafted checkpoint inputs (tests only): a growable byte buffer,
 * a pickle emitter that writes what torch.save writes for a state dict, and a
 * small zip writer (stored / deflate, optional zip64). No python needed. */
#ifndef SAM2D_TEST_CHECKPOINT_UTIL_H
#define SAM2D_TEST_CHECKPOINT_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bb;

static inline void bb_raw(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static inline void bb_u8(bb *b, unsigned v) {
    uint8_t x = (uint8_t)v;
    bb_raw(b, &x, 1);
}
static inline void bb_u16(bb *b, unsigned v) {
    bb_u8(b, v & 0xff);
    bb_u8(b, (v >> 8) & 0xff);
}
static inline void bb_u32(bb *b, uint32_t v) {
    bb_u16(b, v & 0xffff);
    bb_u16(b, v >> 16);
}
static inline void bb_u64(bb *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}
static inline void bb_str(bb *b, const char *s) { bb_raw(b, s, strlen(s)); }
static inline void bb_free(bb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- pickle (protocol 2, as torch.save writes it) ---- */

static inline void pk_op(bb *b, uint8_t op) { bb_u8(b, op); }
static inline void pk_str(bb *b, const char *s) {
    pk_op(b, 'X');
    bb_u32(b, (uint32_t)strlen(s));
    bb_str(b, s);
}
static inline void pk_int(bb *b, int64_t v) {
    if (v >= 0 && v < 256) {
        pk_op(b, 'K');
        bb_u8(b, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        pk_op(b, 'M');
        bb_u16(b, (unsigned)v);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        pk_op(b, 'J');
        bb_u32(b, (uint32_t)(int32_t)v);
    } else {
        pk_op(b, 0x8a);
        bb_u8(b, 8);
        bb_u64(b, (uint64_t)v);
    }
}
static inline void pk_global(bb *b, const char *mod, const char *name) {
    pk_op(b, 'c');
    bb_str(b, mod);
    bb_u8(b, '\n');
    bb_str(b, name);
    bb_u8(b, '\n');
}
static inline void pk_int_tuple(bb *b, int n, const int64_t *v) {
    pk_op(b, '(');
    for (int i = 0; i < n; i++) pk_int(b, v[i]);
    pk_op(b, 't');
}
/* name -> _rebuild_tensor_v2(persid(('storage', torch.<cls>, key, 'cpu', numel)), offset, shape, stride, False, OrderedDict()) */
static inline void pk_tensor(bb *b, const char *name, const char *cls, const char *key, int64_t storage_numel, int64_t offset,
                      int ndim, const int64_t *shape, const int64_t *stride) {
    pk_str(b, name);
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    pk_op(b, '(');
    pk_op(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", cls);
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, storage_numel);
    pk_op(b, 't');
    pk_op(b, 'Q');
    pk_int(b, offset);
    pk_int_tuple(b, ndim, shape);
    pk_int_tuple(b, ndim, stride);
    pk_op(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    pk_op(b, ')');
    pk_op(b, 'R');
    pk_op(b, 't');
    pk_op(b, 'R');
}
/* {"model": OrderedDict([ ... tensors ... ])}: begin, then tensors, then end. */
static inline void pk_begin_model(bb *b) {
    pk_op(b, 0x80);
    bb_u8(b, 2);
    pk_op(b, '}');
    pk_str(b, "model");
    pk_global(b, "collections", "OrderedDict");
    pk_op(b, ')');
    pk_op(b, 'R');
    pk_op(b, '(');
}
static inline void pk_end_model(bb *b) {
    pk_op(b, 'u');
    pk_op(b, 's');
    pk_op(b, '.');
}

/* ---- zip ---- */

typedef struct {
    const char *name;
    const void *data;
    size_t len;
    int deflate; /* method 8 instead of 0 */
    int zip64;   /* sizes/offset as 0xffffffff + zip64 extra field in the central directory */
} zent;

/* An archive of the given entries; zip64_end adds zip64 end records (entry count 0xffff in the classic one). */
static inline bb zip_build(const zent *e, int n, int zip64_end) {
    bb z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)e[i].data, (uInt)e[i].len);
        bb comp = {0};
        if (e[i].deflate) {
            z_stream s;
            memset(&s, 0, sizeof s);
            deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
            uLong bound = deflateBound(&s, (uLong)e[i].len);
            comp.p = malloc(bound + 16);
            s.next_in = (Bytef *)e[i].data;
            s.avail_in = (uInt)e[i].len;
            s.next_out = comp.p;
            s.avail_out = (uInt)bound + 16;
            deflate(&s, Z_FINISH);
            comp.n = s.total_out;
            deflateEnd(&s);
        } else {
            bb_raw(&comp, e[i].data, e[i].len);
        }
        size_t lho = z.n;
        size_t nl = strlen(e[i].name);
        bb_u32(&z, 0x04034b50);
        bb_u16(&z, 20);
        bb_u16(&z, 0);
        bb_u16(&z, e[i].deflate ? 8 : 0);
        bb_u32(&z, 0);
        bb_u32(&z, crc);
        bb_u32(&z, (uint32_t)comp.n);
        bb_u32(&z, (uint32_t)e[i].len);
        bb_u16(&z, (unsigned)nl);
        bb_u16(&z, 0);
        bb_str(&z, e[i].name);
        bb_raw(&z, comp.p, comp.n);

        bb_u32(&cd, 0x02014b50);
        bb_u16(&cd, 45);
        bb_u16(&cd, 45);
        bb_u16(&cd, 0);
        bb_u16(&cd, e[i].deflate ? 8 : 0);
        bb_u32(&cd, 0);
        bb_u32(&cd, crc);
        bb_u32(&cd, e[i].zip64 ? 0xffffffffu : (uint32_t)comp.n);
        bb_u32(&cd, e[i].zip64 ? 0xffffffffu : (uint32_t)e[i].len);
        bb_u16(&cd, (unsigned)nl);
        bb_u16(&cd, e[i].zip64 ? 28 : 0);
        bb_u16(&cd, 0);
        bb_u16(&cd, 0);
        bb_u16(&cd, 0);
        bb_u32(&cd, 0);
        bb_u32(&cd, e[i].zip64 ? 0xffffffffu : (uint32_t)lho);
        bb_str(&cd, e[i].name);
        if (e[i].zip64) {
            bb_u16(&cd, 1);
            bb_u16(&cd, 24);
            bb_u64(&cd, e[i].len);
            bb_u64(&cd, comp.n);
            bb_u64(&cd, lho);
        }
        bb_free(&comp);
    }
    size_t cd_off = z.n;
    bb_raw(&z, cd.p, cd.n);
    if (zip64_end) {
        size_t rec = z.n;
        bb_u32(&z, 0x06064b50);
        bb_u64(&z, 44);
        bb_u16(&z, 45);
        bb_u16(&z, 45);
        bb_u32(&z, 0);
        bb_u32(&z, 0);
        bb_u64(&z, (uint64_t)n);
        bb_u64(&z, (uint64_t)n);
        bb_u64(&z, cd.n);
        bb_u64(&z, cd_off);
        bb_u32(&z, 0x07064b50);
        bb_u32(&z, 0);
        bb_u64(&z, rec);
        bb_u32(&z, 1);
    }
    bb_u32(&z, 0x06054b50);
    bb_u16(&z, 0);
    bb_u16(&z, 0);
    bb_u16(&z, zip64_end ? 0xffff : (unsigned)n);
    bb_u16(&z, zip64_end ? 0xffff : (unsigned)n);
    bb_u32(&z, zip64_end ? 0xffffffffu : (uint32_t)cd.n);
    bb_u32(&z, zip64_end ? 0xffffffffu : (uint32_t)cd_off);
    bb_u16(&z, 0);
    bb_free(&cd);
    return z;
}

/* Little-endian float32 bytes of 0, 1, 2, ... n-1 (exact in every dtype we test). */
static inline void f32_ramp(float *v, int n) {
    for (int i = 0; i < n; i++) v[i] = (float)i;
}

/* Optional: write a crafted input as a fuzz seed when SAM2D_WRITE_CORPUS=<dir> is set. */
static inline void save_seed(const char *name, const bb *b) {
    const char *dir = getenv("SAM2D_WRITE_CORPUS");
    if (!dir || !*dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b->p, 1, b->n, f);
    fclose(f);
}

#endif
