/* Frame sources: one API over a video file (FFmpeg), a folder of JPEG/PNG
 * frames, and a tar/zip archive of such frames, all checked against limits
 * before (and again during) decoding. And the frame store a session keeps:
 * compact uint8 frames at model resolution, never float32 copies.
 *
 * Limits and messages (SAM2D_ERR_LIMIT):
 *   "Video has too many frames (450 > 300); raise MAX_VIDEO_FRAMES"
 *   "Video dimensions exceed maximum (3840x2160 > 1920); raise MAX_FRAME_DIMENSION"
 * Undecodable input: SAM2D_ERR_FORMAT (malformed/truncated/not media) or
 * SAM2D_ERR_UNSUPPORTED (well-formed but no decoder / not allowed).
 *
 * Thread safety: a source or store is used by one thread at a time (the
 * session lock); distinct objects are independent. */
#ifndef SAM_MEDIA_FRAMES_H
#define SAM_MEDIA_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "sam2d/sam2d.h"

typedef enum {
    SAM_OVERSIZE_REFUSE = 0,    /* frames larger than max_dimension: SAM2D_ERR_LIMIT */
    SAM_OVERSIZE_DOWNSCALE = 1, /* shrink (aspect kept, Pillow bicubic) so max(w,h) <= max_dimension */
} sam_oversize_policy;

typedef struct {
    int max_frames;                  /* MAX_VIDEO_FRAMES (300) */
    int max_dimension;               /* MAX_FRAME_DIMENSION (1920): max width or height */
    sam_oversize_policy oversize;    /* default REFUSE */
    size_t max_input_bytes;          /* an upload / file read whole (default 2 GiB) */
    /* archives (tar/zip of frames) */
    int max_archive_entries;         /* entries of any kind (default 100000) */
    size_t max_entry_bytes;          /* one uncompressed image (default 64 MiB) */
    size_t max_total_bytes;          /* all uncompressed images (default 4 GiB) */
    double max_compression_ratio;    /* zip uncompressed/compressed per entry (default 200) */
} sam_media_limits;

void sam_media_limits_default(sam_media_limits *l);

/* Override from the environment: MAX_VIDEO_FRAMES, MAX_FRAME_DIMENSION (whole
 * numbers >= 1) and DOWNSCALE_OVERSIZE (0 | 1, as `sam2d serve`). Unset variables keep
 * l's values; an invalid value gives SAM2D_ERR_INVALID_ARG naming the variable
 * (the service stops start-up with that message). */
sam2d_status sam_media_limits_from_env(sam_media_limits *l);

typedef enum {
    SAM_SOURCE_VIDEO = 0,
    SAM_SOURCE_FOLDER,
    SAM_SOURCE_ARCHIVE,
    SAM_SOURCE_IMAGE, /* a single JPEG/PNG: one frame */
} sam_source_kind;

typedef struct sam_frame_source sam_frame_source;

/* Open a path: a folder of frames (*.jpg, *.jpeg, *.png in any case, ordered
 * by the integer value of the file stem as SAM 2 does; names that are not all
 * integers fall back to natural order), a tar/zip archive of frames, a single
 * image, or any video FFmpeg decodes. Counts every frame and checks limits
 * before returning (a video is decoded once to count exactly; folder and
 * archive frames have their headers read); frames are then decoded on demand.
 * A file (video, archive, image) is read whole into memory, up to
 * max_input_bytes; a folder is read frame by frame. */
sam2d_status sam_frame_source_open_path(const char *path, const sam_media_limits *lim,
                                        sam_frame_source **out);

/* Same from bytes in memory (an upload); the bytes are copied (the source
 * owns its copy and decodes from it on demand). The kind is told from
 * the bytes, never from a name: name_hint is accepted for callers' convenience,
 * not used, and may be NULL. */
sam2d_status sam_frame_source_open_memory(const uint8_t *data, size_t n, const char *name_hint,
                                          const sam_media_limits *lim, sam_frame_source **out);

/* Same, taking ownership of a sam_malloc'd buffer (no copy; freed with the
 * source, or at once on failure). For the server's upload buffer. */
sam2d_status sam_frame_source_open_owned(uint8_t *data, size_t n, const sam_media_limits *lim,
                                         sam_frame_source **out);

void sam_frame_source_free(sam_frame_source *s);

sam_source_kind sam_frame_source_kind(const sam_frame_source *s);
int sam_frame_source_count(const sam_frame_source *s);
/* Size of the frames get() returns: after rotation metadata and after the
 * downscale policy; the video's own resolution as far as masks are concerned. */
int sam_frame_source_width(const sam_frame_source *s);
int sam_frame_source_height(const sam_frame_source *s);
/* Average frame rate (frames / duration for VFR video; 0 when unknown, e.g. folders). */
double sam_frame_source_fps(const sam_frame_source *s);
/* Presentation time of frame i in seconds (i / fps for folders). */
double sam_frame_source_time(const sam_frame_source *s, int i);
/* Bytes the source itself keeps (copied input, index, decoder state estimate). */
size_t sam_frame_source_resident_bytes(const sam_frame_source *s);

/* Frame i (0-based, frame accurate) as RGB u8 into rgb, which holds exactly
 * width*height*3 bytes. Sequential access is cheapest; random access seeks. */
sam2d_status sam_frame_source_get(sam_frame_source *s, int i, uint8_t *rgb /* (H,W,3) */);

/* ---- frame store: what a session keeps ----
 * SAM_STORE_RESIZED: every frame resized once (Pillow bicubic) to (S,S,3) u8:
 *   3*S*S bytes a frame (3 MiB at 1024 instead of the reference's 12 MiB f32).
 * SAM_STORE_ON_DEMAND: only the source (uploaded bytes) plus a small LRU cache
 *   of resized frames; frames are re-decoded when evicted. */
typedef enum {
    SAM_STORE_RESIZED = 0,
    SAM_STORE_ON_DEMAND = 1,
} sam_store_mode;

typedef struct sam_frame_store sam_frame_store;

/* Takes ownership of src (freed with the store, also on failure). image_size = S
 * (the model's square input). cache_frames: LRU size for ON_DEMAND (>= 1). */
sam2d_status sam_frame_store_create(sam_frame_source *src, int image_size, sam_store_mode mode,
                                    int cache_frames, sam_frame_store **out);
/* Open a source and build its store in one go. For a video and a RESIZED
 * store the frames are resized while the open pass counts them, so the video
 * is decoded once instead of twice. _owned takes a sam_malloc'd buffer. */
sam2d_status sam_frame_store_open_path(const char *path, const sam_media_limits *lim, int image_size,
                                       sam_store_mode mode, int cache_frames, sam_frame_store **out);
sam2d_status sam_frame_store_open_memory(const uint8_t *data, size_t n, const sam_media_limits *lim, int image_size,
                                         sam_store_mode mode, int cache_frames, sam_frame_store **out);
sam2d_status sam_frame_store_open_owned(uint8_t *data, size_t n, const sam_media_limits *lim, int image_size,
                                        sam_store_mode mode, int cache_frames, sam_frame_store **out);
void sam_frame_store_free(sam_frame_store *st);

sam_frame_source *sam_frame_store_source(sam_frame_store *st);
int sam_frame_store_count(const sam_frame_store *st);
int sam_frame_store_image_size(const sam_frame_store *st);

/* Model-resolution frame i, (S,S,3) u8, exactly SAM 2's resized frame. The
 * pointer stays valid until the next call on this store. */
sam2d_status sam_frame_store_get_resized(sam_frame_store *st, int i, const uint8_t **rgb /* (S,S,3) */);
/* Model input for frame i: normalised (3,S,S) float32, written to chw. */
sam2d_status sam_frame_store_get_input(sam_frame_store *st, int i, float *chw /* (3,S,S) */);
/* Original-resolution frame i (video width x height), decoded from the source. */
sam2d_status sam_frame_store_get_original(sam_frame_store *st, int i, uint8_t *rgb /* (H,W,3) */);

/* Bytes the store keeps resident (frames, cache, source), in total and per frame. */
size_t sam_frame_store_resident_bytes(const sam_frame_store *st);

#endif
