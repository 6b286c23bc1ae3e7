/* Reading tar and zip archives of frame images (uploads), with limits:
 * entries must be plain files with image extensions (.jpg/.jpeg/.png) and
 * safe relative names (no "..", no absolute paths, no drive letters, no
 * backslashes); directories are skipped; any other entry refuses the whole
 * archive. Sizes and zip compression ratios are checked against the limits
 * before inflating, and again while inflating (headers can lie).
 * Thread safety: re-entrant; an archive object is used by one thread at a time. */
#ifndef SAM_MEDIA_ARCHIVE_H
#define SAM_MEDIA_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "media/frames.h"
#include "sam2d/sam2d.h"

typedef enum {
    SAM_ARCHIVE_NONE = 0,
    SAM_ARCHIVE_TAR,
    SAM_ARCHIVE_ZIP,
} sam_archive_kind;

sam_archive_kind sam_archive_sniff(const uint8_t *data, size_t n);

typedef struct {
    char *name;              /* path inside the archive (sam_malloc'd) */
    size_t offset;           /* of the stored data in the archive bytes */
    size_t stored_bytes;     /* compressed size (= size when stored) */
    size_t size;             /* uncompressed size */
    int method;              /* 0 stored, 8 deflate */
    uint32_t crc32;          /* zip only (0 for tar) */
} sam_archive_entry;

typedef struct {
    sam_archive_kind kind;
    const uint8_t *data;     /* borrowed archive bytes */
    size_t n;
    sam_archive_entry *entries; /* (count) image entries, archive order */
    int count;
} sam_archive;

/* List the image entries of an archive in memory (data is borrowed). */
sam2d_status sam_archive_open(const uint8_t *data, size_t n, const sam_media_limits *lim, sam_archive *out);
void sam_archive_close(sam_archive *a);

/* Uncompressed bytes of entry i into a sam_malloc'd buffer (verifies size and CRC). */
sam2d_status sam_archive_read(const sam_archive *a, int i, const sam_media_limits *lim,
                              uint8_t **data, size_t *n);

#endif
