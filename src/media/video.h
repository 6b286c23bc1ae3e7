/* Video decoding through FFmpeg (libavformat/libavcodec/libswscale): any
 * container and codec the installed libraries decode, rotation metadata
 * honoured (frames come out upright, as the ffmpeg CLI shows them), variable
 * frame rate kept as is (one output frame per decoded frame, no duplication),
 * frame-accurate random access by an index of presentation times built while
 * counting. Used through frames.h; exposed for tests and tools.
 * Thread safety: one thread per sam_video at a time. */
#ifndef SAM_MEDIA_VIDEO_H
#define SAM_MEDIA_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#include "media/frames.h"
#include "sam2d/sam2d.h"

typedef struct sam_video sam_video;

/* Open from memory (the bytes are borrowed and must outlive the video).
 * Refuses by container metadata first (frame count, dimensions), then decodes
 * every frame once to count them exactly (metadata can lie), enforcing the
 * limits again while doing so. */
sam2d_status sam_video_open_memory(const uint8_t *data, size_t n, const sam_media_limits *lim,
                                   sam_video **out);
void sam_video_free(sam_video *v);

/* Same, and hand every frame to on_frame as it is decoded during that counting
 * pass (upright RGB u8 (height,width,3), valid during the call), so a caller
 * that wants every frame anyway decodes the video once. expected is the frame
 * count the container states or implies (0 unknown; a hint for buffer sizes,
 * not a promise). A non-OK status from on_frame stops the open with it. */
typedef sam2d_status (*sam_video_frame_fn)(void *user, int index, int expected, const uint8_t *rgb /* (H,W,3) */,
                                           int width, int height);
sam2d_status sam_video_open_memory_ex(const uint8_t *data, size_t n, const sam_media_limits *lim,
                                      sam_video_frame_fn on_frame, void *user, sam_video **out);

int sam_video_count(const sam_video *v);
/* Upright size after rotation, before any downscale policy. */
int sam_video_width(const sam_video *v);
int sam_video_height(const sam_video *v);
double sam_video_fps(const sam_video *v);
double sam_video_time(const sam_video *v, int i);
/* Rotation applied to decoded pictures, degrees clockwise (0, 90, 180, 270). */
int sam_video_rotation(const sam_video *v);
const char *sam_video_codec_name(const sam_video *v);
size_t sam_video_resident_bytes(const sam_video *v);

/* Frame i as upright RGB u8 (height,width,3). */
sam2d_status sam_video_get(sam_video *v, int i, uint8_t *rgb /* (H,W,3) */);

#endif
