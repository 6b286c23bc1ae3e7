/* Video predictor sessions: SAM 2.1's SAM2VideoPredictor (12/2024 version,
 * objects tracked independently) as a C state machine.
 *
 * A session owns one video (its frames resized once to S x S uint8) and all
 * prompts, per-object outputs and the memory bank; the model is shared
 * read-only by any number of sessions.
 *
 * Thread safety: one session = one thread at a time (the caller serialises
 * calls on a session, e.g. with a per-session lock). sam2d_video_cancel() is
 * the exception: it may be called from any thread while propagate runs.
 * Different sessions may run concurrently on one model; they take turns in
 * the model's modules, one frame step at a time.
 *
 * Coordinates are video pixels (x, y); masks and logits are at the video's
 * resolution (H, W), row-major. Object ids are the caller's integers.
 *
 * Memory: per tracked frame and object the session keeps what the reference
 * keeps: bf16 memory features (S/16)^2 * mem_dim * 2 bytes, float32 low-res
 * logits (S/4)^2 * 4 bytes, the object pointer d_model * 4 bytes (+ ~64 bytes
 * of bookkeeping). SAM 2.1 at 1024 px: 524288 + 262144 + 1024 = 787456 bytes
 * (~769 KiB) per frame per object. Frames: min(W*H, S*S) * 3 bytes each
 * (kept at the video size when smaller than S x S, resized when encoded).
 * Where the model runs on a GPU, the per-frame states and the cached frame's
 * features are device memory; frames, prompts and the masks handed out stay
 * in host memory (each object's low-res logits are downloaded once per frame
 * and upsampled on the host). */
#ifndef SAM2D_VIDEO_PREDICTOR_H
#define SAM2D_VIDEO_PREDICTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sam2d/model.h"
#include "sam2d/sam2d.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sam2d_video_session sam2d_video_session;

typedef struct {
    int fill_hole_area;      /* -1: the model config's (SAM 2's build uses 8); 0 off */
    int non_overlap_masks;   /* -1: the model config's; 0 off; 1 on */
} sam2d_video_params;

sam2d_video_params sam2d_video_default_params(void);


/* New session on num_frames RGB frames (each (frame_h, frame_w, 3) uint8).
 * Frames that are not S x S are resized as SAM 2's loader does (Pillow bicubic,
 * aspect not kept); frames already S x S are taken as they are. video_w/video_h
 * is the resolution of prompts and outputs (the original video's). Frames are
 * copied (3*S*S bytes each). */
sam2d_status sam2d_video_session_create(sam2d_model *model, const uint8_t *const *frames, int num_frames,
                                        int frame_w, int frame_h, int video_w, int video_h,
                                        const sam2d_video_params *params, sam2d_video_session **out);
void sam2d_video_session_free(sam2d_video_session *s);

/* The same in two steps, so a caller can decode one frame at a time without
 * holding the whole video: begin allocates the session's frames (3*S*S bytes
 * each), set_frame fills frame i from an RGB picture of any size (resized as
 * SAM 2's loader does; S x S is copied). Every frame must be set before the
 * first prompt. */
sam2d_status sam2d_video_session_begin(sam2d_model *model, int num_frames, int video_w, int video_h,
                                       const sam2d_video_params *params, sam2d_video_session **out);
sam2d_status sam2d_video_session_set_frame(sam2d_video_session *s, int frame_idx, const uint8_t *rgb, int frame_w,
                                           int frame_h);

int sam2d_video_num_frames(const sam2d_video_session *s);
int sam2d_video_width(const sam2d_video_session *s);
int sam2d_video_height(const sam2d_video_session *s);

/* Result of one frame: every object of the session, in obj_ids order.
 * Buffers belong to the session and stay valid until its next call. */
typedef struct {
    int frame_idx;
    int num_objects;
    const int *obj_ids;          /* (num_objects) */
    const float *logits;         /* (num_objects, H, W) video-resolution mask logits (> 0 = object) */
    const float *object_scores;  /* (num_objects) object-presence logits (-1024 when an object has no output) */
} sam2d_video_frame_result;

/* add_new_points_or_box: points (n, 2) with labels (n) (1 positive, 0
 * negative), and/or box (4: x0, y0, x1, y1; needs clear_old_points). A new
 * obj_id creates the object. */
sam2d_status sam2d_video_add_points(sam2d_video_session *s, int frame_idx, int obj_id, const float *points,
                                    const int *labels, int n, const float *box, bool clear_old_points,
                                    sam2d_video_frame_result *out);

/* add_new_mask: mask (mask_h, mask_w) nonzero = object, any size (resized to
 * S x S, antialiased bilinear, >= 0.5). */
sam2d_status sam2d_video_add_mask(sam2d_video_session *s, int frame_idx, int obj_id, const uint8_t *mask,
                                  int mask_h, int mask_w, sam2d_video_frame_result *out);

/* Called once per propagated frame; return nonzero to stop (propagate then
 * returns SAM2D_ERR_CANCELLED after the frames already done). */
typedef int (*sam2d_video_frame_cb)(void *user, const sam2d_video_frame_result *r);

/* propagate_in_video: start_frame < 0 = the first conditioning frame of any
 * object; max_frames < 0 = the whole video. */
sam2d_status sam2d_video_propagate(sam2d_video_session *s, int start_frame, bool reverse, int max_frames,
                                   sam2d_video_frame_cb cb, void *user);

/* Called by propagate between a frame's image encoding and its tracking step
 * (once per frame that has an object to track), on the propagating thread.
 * A caller that serialises sessions on one model can let another session's
 * request run there: the frame's features stay in this session, and the
 * model's shared buffers hold nothing of this frame between the two stages.
 * fn NULL: no call. Set it before propagate, not while it runs. */
typedef void (*sam2d_video_stage_fn)(void *user);
void sam2d_video_set_stage_hook(sam2d_video_session *s, sam2d_video_stage_fn fn, void *user);

/* Ask a running propagate to stop after the current frame (any thread). */
void sam2d_video_cancel(sam2d_video_session *s);

/* clear_all_prompts_in_frame for one object; out may be NULL. */
sam2d_status sam2d_video_clear_prompts(sam2d_video_session *s, int frame_idx, int obj_id,
                                       sam2d_video_frame_result *out);
/* reset_state: forget every object, prompt and output (frames stay). */
sam2d_status sam2d_video_reset(sam2d_video_session *s);
/* remove_object: an unknown id is not an error; removing the last object resets. */
sam2d_status sam2d_video_remove_object(sam2d_video_session *s, int obj_id);

/* The current masks of a frame (what the last prompt or propagation left for
 * each object; -1024 logits for an object without output there). */
sam2d_status sam2d_video_get_frame(sam2d_video_session *s, int frame_idx, sam2d_video_frame_result *out);

/* Frames where object obj_id has prompts (points/box or mask), ascending; writes
 * up to cap of them and returns how many there are (-1 for an unknown object). */
int sam2d_video_prompt_frames(const sam2d_video_session *s, int obj_id, int *frames, int cap);

int sam2d_video_num_objects(const sam2d_video_session *s);
/* (num_objects) ids in creation order; valid until the next call. */
const int *sam2d_video_obj_ids(const sam2d_video_session *s);

/* Cumulative compute time of the session inside the model (waits for the
 * shared model excluded): image encoder runs, tracking steps (SAM heads and
 * memory attention, with the memory encoder of tracked frames), and memory
 * encodings of prompted frames before a propagation. */
typedef struct {
    int64_t encoder_calls, step_calls, memory_encoder_calls;
    double encoder_s, step_s, memory_encoder_s;
} sam2d_video_stats;
void sam2d_video_get_stats(const sam2d_video_session *s, sam2d_video_stats *out);

/* Bytes the session holds (frames, per-frame state, scratch, caches). */
size_t sam2d_video_session_memory_bytes(const sam2d_video_session *s);

/* The stored per-frame state of an object (the reference's output_dict entry),
 * for dumps and tests: what it is, and the sizes of its tensors.
 * SAM2D_ERR_NOT_FOUND when the object has no stored output on that frame.
 * The tensors themselves live where the model runs (device memory on a GPU):
 * sam2d_video_read_state copies them out. */
typedef struct {
    bool is_cond;
    bool tracked_reverse;
    bool has_maskmem;          /* memory features encoded */
    float object_score_logit;
    int low_res;     /* S/4 */
    int mem_tokens;  /* h*w */
    int mem_dim;
    int ptr_dim;     /* d_model */
} sam2d_video_frame_state;

sam2d_status sam2d_video_get_state(const sam2d_video_session *s, int obj_id, int frame_idx,
                                   sam2d_video_frame_state *out);

/* Copies of a stored state's tensors into caller arrays (each may be NULL):
 * pred_masks (S/4, S/4) low-res logits, obj_ptr (d_model), maskmem (h*w,
 * mem_dim) bf16 channels-last (SAM2D_ERR_STATE when not encoded). Waits for
 * the model's queued work. */
sam2d_status sam2d_video_read_state(const sam2d_video_session *s, int obj_id, int frame_idx, float *pred_masks,
                                    float *obj_ptr, uint16_t *maskmem);

/* remove_object that also reports, through cb, the consolidated output of
 * every frame where the removed object had prompts (the reference's
 * updated_frames). cb may be NULL. */
sam2d_status sam2d_video_remove_object_ex(sam2d_video_session *s, int obj_id, sam2d_video_frame_cb cb, void *user);

/* ---- replay of a golden folder's video scenario (`sam2d replay`) ----
 * Reads <golden_dir>/manifest.json, runs its video_scenario in order (init
 * from frames_resized_u8.npy when present, else from the JPEG folder video/),
 * and writes every returned result to <out_dir>/out/<logical name>.npy and
 * every state dump listed in the manifest to <out_dir>/state/... (the
 * manifest's names and shapes). out_dir NULL: run without writing. */
typedef struct {
    int steps;            /* scenario calls run */
    int results;          /* result arrays produced */
    int states;           /* state arrays produced */
    int mismatched;       /* results whose frame / objects differ from the manifest's */
} sam2d_replay_video_stats;

sam2d_status sam_replay_video(sam2d_model *model, const char *golden_dir, const char *out_dir,
                              sam2d_replay_video_stats *stats);
/* Same on an existing session holding that video (tests use fake engines). */
sam2d_status sam_replay_video_session(sam2d_video_session *s, const char *golden_dir, const char *out_dir,
                                      sam2d_replay_video_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
