/* Read-only zip reader over a byte buffer, enough for PyTorch's `.pt` files:
 * stored (method 0) and deflated (method 8) entries, zip64 sizes/offsets,
 * entries found through the central directory. Untrusted input: every
 * offset and length is checked against the buffer; nothing is executed.
 *
 * The reader does not copy the archive: the buffer must outlive the sam_zip. */
#ifndef SAM_IO_ZIP_H
#define SAM_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

typedef struct {
    const char *name;        /* NUL-terminated, owned by the sam_zip */
    uint64_t comp_size;      /* bytes in the archive */
    uint64_t size;           /* bytes once extracted */
    uint64_t local_offset;   /* offset of the local file header */
    uint32_t crc32;
    uint16_t method;         /* 0 stored, 8 deflate */
    uint16_t flags;
} sam_zip_entry;

typedef struct sam_zip sam_zip;

/* Parse the central directory. max_entry_bytes bounds the extracted size of
 * any one entry (0 = no bound besides SIZE_MAX). */
sam2d_status sam_zip_open(const uint8_t *buf, size_t len, uint64_t max_entry_bytes, sam_zip **out);
void sam_zip_close(sam_zip *z);

size_t sam_zip_count(const sam_zip *z);
const sam_zip_entry *sam_zip_entry_at(const sam_zip *z, size_t i);
/* Exact name match; NULL when absent. */
const sam_zip_entry *sam_zip_find(const sam_zip *z, const char *name);

/* Where an entry's stored bytes lie in the archive: local header verified and
 * the range checked against the buffer, but no CRC check and no inflation
 * (for a stored entry, *raw holds the e->size bytes of content). */
sam2d_status sam_zip_locate(const sam_zip *z, const sam_zip_entry *e, const uint8_t **raw);
/* Whether bytes (e->size of them) have the entry's CRC-32. */
int sam_zip_crc_matches(const sam_zip_entry *e, const uint8_t *bytes);

/* Bytes of an entry, CRC-checked. A stored entry is returned in place
 * (*owned = NULL); a deflated one is inflated into a new sam_malloc block
 * returned in *owned (the caller sam_frees it). */
sam2d_status sam_zip_get(const sam_zip *z, const sam_zip_entry *e, const uint8_t **data, void **owned);

#endif
