#include "io/zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u

#define EOCD_SIZE 22
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
/* A hard cap keeps the index allocation bounded whatever the header says. */
#define MAX_ENTRIES (1u << 22)

struct sam_zip {
    const uint8_t *buf;
    size_t len;
    size_t n;
    sam_zip_entry *entries; // (n) in central-directory order
    const sam_zip_entry **sorted; // (n) entries sorted by name, for lookup
    char *names;            // all names, NUL-terminated, one block
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* [off, off+n) inside [0, len) without overflow. */
static int in_bounds(uint64_t off, uint64_t n, uint64_t len) { return off <= len && n <= len - off; }

size_t sam_zip_count(const sam_zip *z) { return z ? z->n : 0; }

const sam_zip_entry *sam_zip_entry_at(const sam_zip *z, size_t i) { return z && i < z->n ? &z->entries[i] : NULL; }

void sam_zip_close(sam_zip *z) {
    if (!z) return;
    sam_free(z->entries);
    sam_free(z->sorted);
    sam_free(z->names);
    sam_free(z);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(const sam_zip_entry *const *)a)->name, (*(const sam_zip_entry *const *)b)->name);
}

const sam_zip_entry *sam_zip_find(const sam_zip *z, const char *name) {
    if (!z || !name) return NULL;
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sam_zip_entry *e = z->sorted[mid];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* Locate the end-of-central-directory record: the last signature whose
 * comment length reaches exactly the end of the buffer. */
static sam2d_status find_eocd(const uint8_t *buf, size_t len, size_t *pos) {
    if (len < EOCD_SIZE) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: %zu bytes is too short for a zip archive", len);
    size_t lowest = len > EOCD_SIZE + 0xffff ? len - EOCD_SIZE - 0xffff : 0;
    for (size_t p = len - EOCD_SIZE + 1; p-- > lowest;) {
        if (rd32(buf + p) == SIG_EOCD && p + EOCD_SIZE + rd16(buf + p + 20) == len) {
            *pos = p;
            return SAM2D_OK;
        }
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "zip: no end-of-central-directory record (file truncated or not a zip)");
}

/* Zip64 extra field (id 1): 64-bit values for exactly those fields that hold 0xffffffff. */
static sam2d_status parse_zip64_extra(const uint8_t *x, size_t xlen, sam_zip_entry *e, int need_size,
                                      int need_csize, int need_off) {
    size_t p = 0;
    while (p + 4 <= xlen) {
        uint16_t id = rd16(x + p), sz = rd16(x + p + 2);
        if (p + 4 + sz > xlen) break; /* malformed tail: ignore like most readers, checked below */
        if (id == 1) {
            const uint8_t *d = x + p + 4;
            size_t need = 8u * (size_t)(need_size + need_csize + need_off);
            if (sz < need) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: zip64 extra field of '%s' too short", e->name);
            if (need_size) e->size = rd64(d), d += 8;
            if (need_csize) e->comp_size = rd64(d), d += 8;
            if (need_off) e->local_offset = rd64(d);
            return SAM2D_OK;
        }
        p += 4u + sz;
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "zip: entry '%s' needs a zip64 extra field and has none", e->name);
}

sam2d_status sam_zip_open(const uint8_t *buf, size_t len, uint64_t max_entry_bytes, sam_zip **out) {
    *out = NULL;
    if (!buf && len) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "zip: NULL buffer");
    size_t eocd = 0;
    SAM_TRY(find_eocd(buf, len, &eocd));
    const uint8_t *e = buf + eocd;
    uint64_t n_entries = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip: multi-disk archives are not supported");
    if (n_entries == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* Zip64: the locator sits right before the classic record. */
        if (eocd < 20 || rd32(buf + eocd - 20) != SIG_EOCD64_LOC)
            return SAM_ERR(SAM2D_ERR_FORMAT, "zip: zip64 sizes without a zip64 locator");
        uint64_t rec = rd64(buf + eocd - 20 + 8);
        if (!in_bounds(rec, 56, eocd - 20) || rd32(buf + rec) != SIG_EOCD64)
            return SAM_ERR(SAM2D_ERR_FORMAT, "zip: zip64 end record out of range or corrupt");
        n_entries = rd64(buf + rec + 32);
        cd_size = rd64(buf + rec + 40);
        cd_off = rd64(buf + rec + 48);
    }
    if (!in_bounds(cd_off, cd_size, eocd))
        return SAM_ERR(SAM2D_ERR_FORMAT,
                       "zip: central directory (offset %llu, %llu bytes) lies outside the %zu-byte file (truncated?)",
                       (unsigned long long)cd_off, (unsigned long long)cd_size, len);
    if (n_entries > cd_size / CENTRAL_SIZE || n_entries > MAX_ENTRIES)
        return SAM_ERR(SAM2D_ERR_FORMAT, "zip: %llu entries cannot fit in a %llu-byte central directory",
                       (unsigned long long)n_entries, (unsigned long long)cd_size);

    sam_zip *z = sam_calloc(1, sizeof *z);
    if (!z) return SAM_ERR(SAM2D_ERR_NOMEM, "zip: out of memory");
    z->buf = buf;
    z->len = len;
    z->n = (size_t)n_entries;
    z->entries = sam_calloc(z->n ? z->n : 1, sizeof *z->entries);
    z->sorted = sam_calloc(z->n ? z->n : 1, sizeof *z->sorted);
    /* Names are at most the central directory's size in total. */
    z->names = sam_malloc((size_t)cd_size + z->n + 1);
    sam2d_status st = SAM2D_OK;
    if (!z->entries || !z->sorted || !z->names) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "zip: out of memory for %zu entries", z->n);
        goto fail;
    }
    const uint8_t *cd = buf + cd_off;
    size_t p = 0, name_pos = 0;
    for (size_t i = 0; i < z->n; i++) {
        if (!in_bounds(p, CENTRAL_SIZE, cd_size) || rd32(cd + p) != SIG_CENTRAL) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "zip: central directory entry %zu is corrupt", i);
            goto fail;
        }
        const uint8_t *h = cd + p;
        sam_zip_entry *ze = &z->entries[i];
        size_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
        if (!in_bounds(p + CENTRAL_SIZE, nlen + xlen + clen, cd_size)) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "zip: central directory entry %zu runs past the directory", i);
            goto fail;
        }
        if (memchr(h + CENTRAL_SIZE, 0, nlen)) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "zip: entry %zu has a NUL byte in its name", i);
            goto fail;
        }
        memcpy(z->names + name_pos, h + CENTRAL_SIZE, nlen);
        z->names[name_pos + nlen] = 0;
        ze->name = z->names + name_pos;
        name_pos += nlen + 1;
        ze->flags = rd16(h + 8);
        ze->method = rd16(h + 10);
        ze->crc32 = rd32(h + 16);
        ze->comp_size = rd32(h + 20);
        ze->size = rd32(h + 24);
        ze->local_offset = rd32(h + 42);
        int need_size = ze->size == 0xffffffffu, need_csize = ze->comp_size == 0xffffffffu,
            need_off = ze->local_offset == 0xffffffffu;
        if (need_size || need_csize || need_off) {
            st = parse_zip64_extra(h + CENTRAL_SIZE + nlen, xlen, ze, need_size, need_csize, need_off);
            if (st) goto fail;
        }
        p += CENTRAL_SIZE + nlen + xlen + clen;
        z->sorted[i] = ze;
    }
    qsort(z->sorted, z->n, sizeof *z->sorted, cmp_names);
    for (size_t i = 1; i < z->n; i++) {
        if (strcmp(z->sorted[i - 1]->name, z->sorted[i]->name) == 0) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "zip: duplicate entry '%s'", z->sorted[i]->name);
            goto fail;
        }
    }
    for (size_t i = 0; i < z->n; i++) {
        sam_zip_entry *ze = &z->entries[i];
        if (max_entry_bytes && ze->size > max_entry_bytes) {
            st = SAM_ERR(SAM2D_ERR_LIMIT, "zip: entry '%s' would extract to %llu bytes (limit %llu)", ze->name,
                         (unsigned long long)ze->size, (unsigned long long)max_entry_bytes);
            goto fail;
        }
    }
    *out = z;
    return SAM2D_OK;
fail:
    sam_zip_close(z);
    return st;
}

sam2d_status sam_zip_locate(const sam_zip *z, const sam_zip_entry *e, const uint8_t **raw) {
    *raw = NULL;
    if (e->flags & 1) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip: entry '%s' is encrypted", e->name);
    if (e->method != 0 && e->method != 8)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip: entry '%s' uses compression method %u (only stored and deflate)",
                       e->name, (unsigned)e->method);
    if (!in_bounds(e->local_offset, LOCAL_SIZE, z->len) || rd32(z->buf + e->local_offset) != SIG_LOCAL)
        return SAM_ERR(SAM2D_ERR_FORMAT, "zip: local header of '%s' at offset %llu is missing (file truncated?)",
                       e->name, (unsigned long long)e->local_offset);
    const uint8_t *h = z->buf + e->local_offset;
    size_t nlen = rd16(h + 26), xlen = rd16(h + 28);
    uint64_t data_off = e->local_offset + LOCAL_SIZE + nlen + xlen;
    if (!in_bounds(e->local_offset + LOCAL_SIZE, nlen, z->len) || nlen != strlen(e->name) ||
        memcmp(h + LOCAL_SIZE, e->name, nlen) != 0)
        return SAM_ERR(SAM2D_ERR_FORMAT, "zip: local header of '%s' does not match the central directory", e->name);
    if (!in_bounds(data_off, e->comp_size, z->len))
        return SAM_ERR(SAM2D_ERR_FORMAT,
                       "zip: data of '%s' (%llu bytes at offset %llu) runs past the end of the %zu-byte file "
                       "(truncated?)",
                       e->name, (unsigned long long)e->comp_size, (unsigned long long)data_off, z->len);
    if (e->method == 0 && e->comp_size != e->size)
        return SAM_ERR(SAM2D_ERR_FORMAT, "zip: stored entry '%s' has size %llu but %llu bytes in the archive",
                       e->name, (unsigned long long)e->size, (unsigned long long)e->comp_size);
    *raw = z->buf + data_off;
    return SAM2D_OK;
}

int sam_zip_crc_matches(const sam_zip_entry *e, const uint8_t *bytes) {
    uLong crc = crc32_z(0L, Z_NULL, 0);
    if (e->size) crc = crc32_z(crc, bytes, (size_t)e->size);
    return (uint32_t)crc == e->crc32;
}

sam2d_status sam_zip_get(const sam_zip *z, const sam_zip_entry *e, const uint8_t **data, void **owned) {
    *data = NULL;
    *owned = NULL;
    const uint8_t *src;
    SAM_TRY(sam_zip_locate(z, e, &src));
    const uint8_t *bytes = src;
    uint8_t *buf = NULL;
    if (e->method == 8) {
        if (e->size > SIZE_MAX - 1) return SAM_ERR(SAM2D_ERR_LIMIT, "zip: entry '%s' too large", e->name);
        buf = sam_malloc((size_t)e->size + 1);
        if (!buf) return SAM_ERR(SAM2D_ERR_NOMEM, "zip: no memory to inflate '%s' (%llu bytes)", e->name,
                                 (unsigned long long)e->size);
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            sam_free(buf);
            return SAM_ERR(SAM2D_ERR_NOMEM, "zip: inflateInit failed");
        }
        /* zlib counts in uInt: feed and drain in chunks so >4 GiB entries work.
         * The output has one spare byte so a stream longer than declared is caught. */
        const uint64_t cap = e->size + 1;
        uint64_t in_left = e->comp_size;
        zs.next_in = (Bytef *)src;
        zs.next_out = buf;
        int zr = Z_OK;
        for (;;) {
            if (zs.avail_in == 0 && in_left) {
                zs.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
                in_left -= zs.avail_in;
            }
            if (zs.avail_out == 0) {
                uint64_t room = cap - (uint64_t)(zs.next_out - buf);
                if (room == 0) break;
                zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
            }
            zr = inflate(&zs, Z_NO_FLUSH);
            if (zr == Z_STREAM_END) break;
            if (zr != Z_OK && zr != Z_BUF_ERROR) break;
            if (zr == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) break;
        }
        uint64_t produced = (uint64_t)(zs.next_out - buf);
        inflateEnd(&zs);
        if (zr != Z_STREAM_END || produced != e->size) {
            sam_free(buf);
            return SAM_ERR(SAM2D_ERR_FORMAT, "zip: deflate data of '%s' is corrupt (got %llu of %llu bytes)",
                           e->name, (unsigned long long)produced, (unsigned long long)e->size);
        }
        bytes = buf;
    }
    if (!sam_zip_crc_matches(e, bytes)) {
        sam_free(buf);
        return SAM_ERR(SAM2D_ERR_FORMAT, "zip: CRC mismatch in '%s' (stored %08x): file corrupt", e->name,
                       (unsigned)e->crc32);
    }
    *data = bytes;
    *owned = buf;
    return SAM2D_OK;
}
