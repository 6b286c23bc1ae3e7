/* tar (ustar/pax/GNU long names) and zip (stored/deflate) readers for frame uploads. */
#include "media/archive.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"

sam_archive_kind sam_archive_sniff(const uint8_t *d, size_t n) {
    if (n >= 4 && d[0] == 'P' && d[1] == 'K' && ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6)))
        return SAM_ARCHIVE_ZIP;
    if (n >= 512 && memcmp(d + 257, "ustar", 5) == 0) return SAM_ARCHIVE_TAR;
    return SAM_ARCHIVE_NONE;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

/* Entries archivers add on their own, ignored rather than refused. */
static int is_junk(const char *name) {
    if (!strncmp(name, "__MACOSX/", 9)) return 1;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return !strcmp(base, ".DS_Store") || !strcmp(base, "Thumbs.db");
}

/* Relative, no "..", no absolute path, no backslash, no drive letter, printable. */
static sam2d_status check_name(const char *name, size_t len) {
    if (len == 0) return SAM_ERR(SAM2D_ERR_FORMAT, "archive: entry with an empty name");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '\\' || c == ':')
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "archive: unsafe entry name \"%.*s\"", (int)(len > 200 ? 200 : len),
                           name);
    }
    if (name[0] == '/') return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "archive: absolute path \"%.200s\" refused", name);
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t seg = slash ? (size_t)(slash - p) : strlen(p);
        if (seg == 2 && p[0] == '.' && p[1] == '.')
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "archive: path traversal in \"%.200s\" refused", name);
        if (!slash) break;
        p = slash + 1;
    }
    return SAM2D_OK;
}

static sam2d_status add_entry(sam_archive *a, int *cap, const char *name, size_t name_len, size_t offset,
                              size_t stored, size_t size, int method, uint32_t crc, const sam_media_limits *lim,
                              size_t *total) {
    char *nm = sam_malloc(name_len + 1);
    if (!nm) return SAM_ERR(SAM2D_ERR_NOMEM, "archive: no memory");
    memcpy(nm, name, name_len);
    nm[name_len] = 0;
    if (strlen(nm) != name_len) {
        sam_free(nm);
        return SAM_ERR(SAM2D_ERR_FORMAT, "archive: entry name contains a NUL byte");
    }
    sam2d_status s = check_name(nm, name_len);
    if (s != SAM2D_OK) {
        sam_free(nm);
        return s;
    }
    int is_dir = name_len > 0 && nm[name_len - 1] == '/';
    if (is_dir || is_junk(nm)) {
        sam_free(nm);
        return SAM2D_OK;
    }
    if (!has_image_ext(nm)) {
        s = SAM_ERR(SAM2D_ERR_UNSUPPORTED, "archive: entry \"%.200s\" is not a JPEG or PNG frame", nm);
        sam_free(nm);
        return s;
    }
    if (lim->max_entry_bytes && size > lim->max_entry_bytes) {
        s = SAM_ERR(SAM2D_ERR_LIMIT, "archive: entry \"%.200s\" is %zu bytes uncompressed (limit %zu)", nm, size,
                    lim->max_entry_bytes);
        sam_free(nm);
        return s;
    }
    /* Ratio check only where it means something: images barely compress, a bomb does. */
    if (method != 0 && size > (64u << 10) && lim->max_compression_ratio > 0 &&
        (double)size > lim->max_compression_ratio * (double)(stored ? stored : 1)) {
        s = SAM_ERR(SAM2D_ERR_LIMIT,
                    "archive: entry \"%.200s\" expands %zu -> %zu bytes (ratio over %.0f): refused as a "
                    "decompression bomb",
                    nm, stored, size, lim->max_compression_ratio);
        sam_free(nm);
        return s;
    }
    *total += size;
    if (lim->max_total_bytes && *total > lim->max_total_bytes) {
        sam_free(nm);
        return SAM_ERR(SAM2D_ERR_LIMIT, "archive: images total more than %zu bytes uncompressed",
                       lim->max_total_bytes);
    }
    if (a->count == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        sam_archive_entry *ne = sam_realloc(a->entries, sizeof(*ne) * (size_t)nc);
        if (!ne) {
            sam_free(nm);
            return SAM_ERR(SAM2D_ERR_NOMEM, "archive: no memory");
        }
        a->entries = ne;
        *cap = nc;
    }
    sam_archive_entry *e = &a->entries[a->count++];
    e->name = nm;
    e->offset = offset;
    e->stored_bytes = stored;
    e->size = size;
    e->method = method;
    e->crc32 = crc;
    return SAM2D_OK;
}

/* ---------------- tar ---------------- */

static int tar_octal(const uint8_t *f, size_t len, uint64_t *out) {
    if (f[0] & 0x80) { /* GNU base-256 */
        uint64_t v = f[0] & 0x7f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 55) return 0;
            v = v << 8 | f[i];
        }
        *out = v;
        return 1;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < len && (f[i] == ' ' || f[i] == 0)) i++;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60) return 0;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != 0) return 0;
    *out = v;
    return 1;
}

static int tar_checksum_ok(const uint8_t *h) {
    uint64_t want;
    if (!tar_octal(h + 148, 8, &want)) return 0;
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return sum == want;
}

/* Extract "path=" from a pax extended header body. */
static int pax_path(const uint8_t *d, size_t n, const char **path, size_t *plen) {
    size_t p = 0;
    int found = 0;
    while (p < n) {
        size_t len = 0, q = p;
        while (q < n && d[q] >= '0' && d[q] <= '9' && len < n) len = len * 10 + (d[q++] - '0');
        if (q >= n || d[q] != ' ' || len == 0 || len > n - p) return found;
        const uint8_t *kv = d + q + 1, *end = d + p + len;
        if (end - kv > 5 && !memcmp(kv, "path=", 5)) {
            *path = (const char *)kv + 5;
            *plen = (size_t)(end - kv - 5);
            if (*plen && (*path)[*plen - 1] == '\n') (*plen)--;
            found = 1;
        }
        p += len;
    }
    return found;
}

static sam2d_status tar_open(const uint8_t *d, size_t n, const sam_media_limits *lim, sam_archive *a) {
    size_t pos = 0, total = 0;
    int cap = 0, seen = 0;
    const char *long_name = NULL;
    size_t long_len = 0;
    char namebuf[256 + 2];
    while (pos + 512 <= n) {
        const uint8_t *h = d + pos;
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++) zero = h[i] == 0;
        if (zero) return SAM2D_OK; /* end-of-archive marker */
        if (!tar_checksum_ok(h)) return SAM_ERR(SAM2D_ERR_FORMAT, "tar: bad header checksum at offset %zu", pos);
        uint64_t size;
        if (!tar_octal(h + 124, 12, &size)) return SAM_ERR(SAM2D_ERR_FORMAT, "tar: bad size field at %zu", pos);
        size_t data = pos + 512;
        if (size > n - data) return SAM_ERR(SAM2D_ERR_FORMAT, "tar: entry at %zu runs past the end (truncated)", pos);
        size_t next = data + (size_t)((size + 511) & ~(uint64_t)511);
        if (++seen > lim->max_archive_entries && lim->max_archive_entries > 0)
            return SAM_ERR(SAM2D_ERR_LIMIT, "archive: more than %d entries", lim->max_archive_entries);
        char type = (char)h[156];
        if (type == 'x' || type == 'L') {
            /* name of the next entry */
            if (type == 'x') {
                if (!pax_path(d + data, (size_t)size, &long_name, &long_len)) long_name = NULL;
            } else {
                long_name = (const char *)d + data;
                long_len = strnlen(long_name, (size_t)size);
            }
            pos = next;
            continue;
        }
        if (type == 'g') { /* global pax header: no entry */
            pos = next;
            continue;
        }
        const char *name;
        size_t name_len;
        if (long_name) {
            name = long_name;
            name_len = long_len;
        } else {
            size_t pl = strnlen((const char *)h + 345, 155), nl = strnlen((const char *)h, 100);
            if (pl && !memcmp(h + 257, "ustar", 5)) {
                memcpy(namebuf, h + 345, pl);
                namebuf[pl] = '/';
                memcpy(namebuf + pl + 1, h, nl);
                name_len = pl + 1 + nl;
            } else {
                memcpy(namebuf, h, nl);
                name_len = nl;
            }
            namebuf[name_len] = 0;
            name = namebuf;
        }
        long_name = NULL;
        if (type == '5') {
            SAM_TRY(check_name(name, name_len));
        } else if (type == '0' || type == 0 || type == '7') {
            SAM_TRY(add_entry(a, &cap, name, name_len, data, (size_t)size, (size_t)size, 0, 0, lim, &total));
        } else {
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "tar: entry \"%.*s\" is not a regular file (type '%c'): refused",
                           (int)(name_len > 200 ? 200 : name_len), name, type ? type : '0');
        }
        pos = next;
    }
    /* every tar writer ends with zero blocks: running out of data first means truncation */
    return SAM_ERR(SAM2D_ERR_FORMAT, "tar: truncated at offset %zu (no end-of-archive marker)", pos);
}

/* ---------------- zip ---------------- */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static sam2d_status zip_open(const uint8_t *d, size_t n, const sam_media_limits *lim, sam_archive *a) {
    if (n < 22) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: too short (%zu bytes)", n);
    size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
    size_t eocd = (size_t)-1;
    for (size_t i = n - 22 + 1; i-- > lo;)
        if (le32(d + i) == 0x06054b50) {
            eocd = i;
            break;
        }
    if (eocd == (size_t)-1) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: no end of central directory (truncated?)");
    uint32_t n_entries = le16(d + eocd + 10), cd_size = le32(d + eocd + 12), cd_off = le32(d + eocd + 16);
    if (n_entries == 0xffff || cd_off == 0xffffffffu) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip64 archives are not supported");
    if (lim->max_archive_entries > 0 && n_entries > (uint32_t)lim->max_archive_entries)
        return SAM_ERR(SAM2D_ERR_LIMIT, "archive: %u entries (limit %d)", n_entries, lim->max_archive_entries);
    if ((size_t)cd_off + cd_size > eocd) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: central directory out of bounds");
    size_t p = cd_off, total = 0;
    int cap = 0;
    for (uint32_t i = 0; i < n_entries; i++) {
        if (p + 46 > eocd || le32(d + p) != 0x02014b50)
            return SAM_ERR(SAM2D_ERR_FORMAT, "zip: bad central directory entry %u", i);
        uint16_t flags = le16(d + p + 8), method = le16(d + p + 10);
        uint32_t crc = le32(d + p + 16), csize = le32(d + p + 20), usize = le32(d + p + 24);
        uint16_t nlen = le16(d + p + 28), xlen = le16(d + p + 30), clen = le16(d + p + 32);
        uint32_t lho = le32(d + p + 42);
        uint32_t ext_attr = le32(d + p + 38);
        uint16_t made_by = le16(d + p + 4);
        const char *name = (const char *)d + p + 46;
        if (p + 46 + nlen + xlen + clen > eocd) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: entry %u out of bounds", i);
        p += 46 + (size_t)nlen + xlen + clen;
        int is_dir = nlen > 0 && name[nlen - 1] == '/';
        /* Unix symlinks (mode S_IFLNK in the high attribute bits) are refused, like tar's. */
        if ((made_by >> 8) == 3 && ((ext_attr >> 16) & 0170000) == 0120000)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip: entry \"%.*s\" is a symbolic link: refused",
                           nlen > 200 ? 200 : nlen, name);
        if (is_dir) {
            SAM_TRY(check_name(name, nlen));
            continue;
        }
        if (flags & 1) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip: encrypted entries are not supported");
        if (method != 0 && method != 8)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip: compression method %u not supported", method);
        if (csize == 0xffffffffu || usize == 0xffffffffu || lho == 0xffffffffu)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "zip64 entries are not supported");
        if ((size_t)lho + 30 > n || le32(d + lho) != 0x04034b50)
            return SAM_ERR(SAM2D_ERR_FORMAT, "zip: bad local header for entry %u", i);
        size_t data = (size_t)lho + 30 + le16(d + lho + 26) + le16(d + lho + 28);
        if (data > n || csize > n - data)
            return SAM_ERR(SAM2D_ERR_FORMAT, "zip: entry %u data runs past the end (truncated)", i);
        if (method == 0 && csize != usize) return SAM_ERR(SAM2D_ERR_FORMAT, "zip: stored entry %u sizes differ", i);
        SAM_TRY(add_entry(a, &cap, name, nlen, data, csize, usize, method, crc, lim, &total));
    }
    return SAM2D_OK;
}

sam2d_status sam_archive_open(const uint8_t *data, size_t n, const sam_media_limits *lim, sam_archive *out) {
    memset(out, 0, sizeof(*out));
    sam_media_limits dl;
    if (!lim) {
        sam_media_limits_default(&dl);
        lim = &dl;
    }
    out->data = data;
    out->n = n;
    out->kind = sam_archive_sniff(data, n);
    sam2d_status s;
    if (out->kind == SAM_ARCHIVE_ZIP) s = zip_open(data, n, lim, out);
    else if (out->kind == SAM_ARCHIVE_TAR) s = tar_open(data, n, lim, out);
    else s = SAM_ERR(SAM2D_ERR_FORMAT, "not a tar or zip archive");
    if (s == SAM2D_OK && out->count == 0) s = SAM_ERR(SAM2D_ERR_FORMAT, "archive holds no JPEG or PNG frames");
    if (s != SAM2D_OK) sam_archive_close(out);
    return s;
}

void sam_archive_close(sam_archive *a) {
    if (!a) return;
    for (int i = 0; i < a->count; i++) sam_free(a->entries[i].name);
    sam_free(a->entries);
    a->entries = NULL;
    a->count = 0;
}

sam2d_status sam_archive_read(const sam_archive *a, int i, const sam_media_limits *lim, uint8_t **data, size_t *n) {
    *data = NULL;
    *n = 0;
    if (i < 0 || i >= a->count) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "archive: no entry %d", i);
    const sam_archive_entry *e = &a->entries[i];
    /* the listing checked this already; limits may be tighter now */
    if (lim && lim->max_entry_bytes && e->size > lim->max_entry_bytes)
        return SAM_ERR(SAM2D_ERR_LIMIT, "archive: entry \"%.200s\" is %zu bytes uncompressed (limit %zu)", e->name,
                       e->size, lim->max_entry_bytes);
    uint8_t *buf = sam_malloc(e->size ? e->size : 1);
    if (!buf) return SAM_ERR(SAM2D_ERR_NOMEM, "archive: no memory for %zu bytes", e->size);
    if (e->method == 0) {
        memcpy(buf, a->data + e->offset, e->size);
    } else {
        /* Inflate into exactly the declared size: more output than declared is an error,
         * so a lying header cannot make us write past the buffer or run unbounded. */
        z_stream z;
        memset(&z, 0, sizeof z);
        if (inflateInit2(&z, -15) != Z_OK) {
            sam_free(buf);
            return SAM_ERR(SAM2D_ERR_NOMEM, "archive: inflateInit failed");
        }
        z.next_in = (Bytef *)(a->data + e->offset);
        z.avail_in = (uInt)e->stored_bytes;
        z.next_out = buf;
        z.avail_out = (uInt)e->size;
        int r = inflate(&z, Z_FINISH);
        size_t got = e->size - z.avail_out;
        int full = z.avail_out == 0;
        inflateEnd(&z);
        if (r != Z_STREAM_END || got != e->size) {
            sam_free(buf);
            if (full && r != Z_DATA_ERROR && r != Z_MEM_ERROR)
                return SAM_ERR(SAM2D_ERR_LIMIT, "archive: entry \"%.200s\" inflates beyond its declared %zu bytes",
                               e->name, e->size);
            return SAM_ERR(SAM2D_ERR_FORMAT, "archive: entry \"%.200s\" is corrupt or truncated", e->name);
        }
    }
    if (a->kind == SAM_ARCHIVE_ZIP && crc32(0L, buf, (uInt)e->size) != e->crc32) {
        sam_free(buf);
        return SAM_ERR(SAM2D_ERR_FORMAT, "archive: CRC mismatch in \"%.200s\"", e->name);
    }
    *data = buf;
    *n = e->size;
    return SAM2D_OK;
}
