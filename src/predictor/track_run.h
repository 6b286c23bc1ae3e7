/* The work of `sam2d track`, as a library piece the CLI and tests share:
 * open a video (file, frame folder or archive), decode it frame by frame into
 * the model's S x S frames (Pillow bicubic, as SAM 2's loader), add the
 * prompts (one add_new_points_or_box / add_new_mask call per frame and
 * object, objects in ascending id), propagate forward / reverse / both, and
 * write the masks (palette PNGs, a JSON-lines RLE file, or a COCO file).
 *
 * Thread safety: a job is used by one thread; distinct jobs are independent
 * (they share the model, which serialises its modules itself). */
#ifndef SAM_PREDICTOR_TRACK_RUN_H
#define SAM_PREDICTOR_TRACK_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/frames.h"
#include "sam2d/model.h"
#include "sam2d/sam2d.h"
#include "sam2d/video_predictor.h"

typedef enum {
    SAM_TRACK_FORWARD = 0,
    SAM_TRACK_REVERSE,
    SAM_TRACK_BOTH, /* forward, then reverse, both from the first prompted frame */
} sam_track_direction;

typedef enum {
    SAM_TRACK_PNG = 0, /* DIR/%05d.png: palette PNG, pixel = obj_id (1..255), later id wins on overlap */
    SAM_TRACK_RLE,     /* DIR/masks.jsonl: {"frame_idx","objects":[{"obj_id","mask":{"size","counts"},"object_score"}]} */
    SAM_TRACK_COCO,    /* DIR/annotations.json: COCO images / annotations (RLE segmentation) / categories */
} sam_track_format;

/* Parse "png" / "rle" / "coco-json"; false when unknown. */
bool sam_track_format_parse(const char *s, sam_track_format *out);

/* ---- prompts: grouped per (frame, object) ---- */
typedef struct sam_track_prompts sam_track_prompts;

sam2d_status sam_track_prompts_create(sam_track_prompts **out);
void sam_track_prompts_free(sam_track_prompts *p);
/* A click (label 1 foreground, 0 background). Points and the box of one
 * (frame, object) form ONE prompt. */
sam2d_status sam_track_prompts_add_point(sam_track_prompts *p, int frame, int obj_id, float x, float y, int label);
/* A box (x0, y0, x1, y1); a second box for the same frame and object is refused. */
sam2d_status sam_track_prompts_add_box(sam_track_prompts *p, int frame, int obj_id, const float box[4]);
/* A mask from a PNG file (pixel > 0 = object; any size); refused when the same
 * frame and object already has points, a box or a mask. The file is read by run. */
sam2d_status sam_track_prompts_add_mask(sam_track_prompts *p, int frame, int obj_id, const char *png_path);
/* Number of (frame, object) prompts. */
int sam_track_prompts_count(const sam_track_prompts *p);
/* SAM2D_ERR_INVALID_ARG (with a message) when a prompt names a frame outside
 * 0..num_frames-1, or, for PNG output, an obj_id outside 1..255. Points
 * outside the video are allowed (SAM 2 takes them); *outside counts them. */
sam2d_status sam_track_prompts_validate(const sam_track_prompts *p, int num_frames, int width, int height,
                                        sam_track_format format, int *outside);

/* ---- a job: one video, one run ---- */
typedef struct sam_track_job sam_track_job;

/* phase: "decode" (frames), "prompt" (prompt calls), "track" (propagation);
 * done of total steps of that phase. */
typedef void (*sam_track_progress_fn)(void *user, const char *phase, int done, int total);

typedef struct {
    const char *out_dir;           /* created (with parents) when missing */
    sam_track_format format;
    sam_track_direction direction;
    sam2d_video_params video;      /* sam2d_video_default_params() */
    sam_track_progress_fn progress; /* may be NULL */
    void *progress_user;
    /* When non-NULL and *cancel becomes nonzero (e.g. from a SIGINT handler),
     * the run stops after the current frame, still writes the masks of the
     * frames done, and returns SAM2D_ERR_CANCELLED. */
    const volatile int *cancel;
} sam_track_options;

void sam_track_default_options(sam_track_options *o);

typedef struct {
    int num_frames;           /* frames of the video */
    int width, height;        /* video resolution (masks) */
    int image_size;           /* S */
    int num_objects;
    int frames_written;       /* distinct frames with an output */
    int frames_tracked;       /* propagation steps (a frame visited twice with --both counts twice) */
    int64_t mask_pixels;      /* foreground pixels over every written frame and object */
    double decode_s, prompt_s, track_s, write_s;
    size_t frame_bytes;       /* bytes a frame costs the session (3*S*S) */
    size_t source_bytes;      /* what the frame source kept resident while decoding */
    size_t session_bytes;     /* sam2d_video_session_memory_bytes at the end */
} sam_track_stats;

/* Open the video and count its frames (checks lim; nothing decoded yet). */
sam2d_status sam_track_job_open(const char *video_path, const sam_media_limits *lim, sam_track_job **out);
void sam_track_job_free(sam_track_job *j);
int sam_track_job_num_frames(const sam_track_job *j);
int sam_track_job_width(const sam_track_job *j);
int sam_track_job_height(const sam_track_job *j);

/* Decode, prompt, propagate and write. 
 * Can run once per job. stats may be NULL. */
sam2d_status sam_track_job_run(sam_track_job *j, sam2d_model *model, const sam_track_prompts *p,
                               const sam_track_options *o, sam_track_stats *stats);

#endif
