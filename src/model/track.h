/* SAM2Base on the video side: one tracking step of one object on one frame
 * (track_step), the memory bank read (_prepare_memory_conditioned_features:
 * which frames and object pointers, with which temporal encodings), the SAM
 * heads wrapper (_forward_sam_heads / _use_mask_as_output: padding point,
 * multimask argmax, object presence, obj_ptr) and the memory write
 * (_encode_new_memory, bf16 storage).
 *
 * S = cfg->image_size, C = cfg->d_model, D = cfg->mem_dim, h = w = S / stride,
 * L = S / 4 (low-res mask side). All maps are channels-last / row-major.
 *
 * Memory (ops.h, issue 8): every map and state tensor below is a BUFFER of the
 * tracker's back end (device memory on a GPU) unless its comment says host:
 * user prompts (points, labels, an (S, S) mask prompt) and the few scalars the
 * host decides on (object score, IoUs) are host values. The tracker's own
 * weights are const memory; its scratch (one region shared with the heads and
 * memory modules, plus a few small buffers) is made at create and grows only
 * when a bank or prompt is larger than any before.
 *
 * Thread safety: the tracker's weights are read-only after create, but a step
 * uses the tracker's scratch and the shared heads / memory handles (which own
 * scratch too): calls on one tracker must be serialised by the caller. */
#ifndef SAM_MODEL_TRACK_H
#define SAM_MODEL_TRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "model/memory.h"
#include "model/sam_heads.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"

#define SAM_NO_OBJ_SCORE (-1024.0f)

/* What the reference keeps per object and frame (compact_current_out). */
typedef struct {
    uint16_t *maskmem;         /* (h*w, D) buffer: bf16 memory features; NULL until encoded */
    float *pred_masks;         /* (L, L) buffer: low-res mask logits */
    float *obj_ptr;            /* (C) buffer: object pointer */
    float object_score_logit;  /* host */
} sam_frame_state;

/* Read-only view of one object's memory bank (output_dict) for a step. */
typedef struct {
    int num_frames;
    int n_cond;
    const int *cond_frames;                  /* (n_cond) conditioning frames in insertion order */
    const sam_frame_state *const *cond;      /* (num_frames) NULL where frame is not conditioning */
    const sam_frame_state *const *non_cond;  /* (num_frames) NULL where absent */
} sam_track_bank;

/* One spatial memory fed to memory attention. */
typedef struct {
    int frame;
    int t_pos;        /* 0 for conditioning frames, else 1..num_maskmem-1 */
    int tpos_index;   /* row of maskmem_tpos_enc added to its position encoding */
    bool cond;        /* came from a conditioning output */
} sam_mem_pick;

/* One object pointer fed to memory attention. */
typedef struct {
    int frame;
    int pos;          /* temporal position before normalisation by (min(T, max_ptrs) - 1) */
    bool cond;
} sam_ptr_pick;

#define SAM_TRACK_MAX_PTRS 64

/* The memory-bank selection of the reference for frame_idx (pure; exposed for tests).
 * mem/ptr hold at least bank->n_cond + cfg->num_maskmem and SAM_TRACK_MAX_PTRS + n_cond entries.
 * Entries whose state lacks maskmem are not skipped here (the step refuses them). */
void sam_track_select(const sam2d_model_config *cfg, const sam_track_bank *bank, int frame_idx, bool reverse,
                      sam_mem_pick *mem, int *n_mem, sam_ptr_pick *ptr, int *n_ptr);

/* get_1d_sine_pe: out (n, dim) = [sin(pos/t) | cos(pos/t)], t_i = 10000^(2*floor(i/2)/(dim/2)). */
void sam_get_1d_sine_pe(const float *pos, int n, int dim, float *out);

/* The current frame's image features (see image_encoder.h). */
typedef struct {
    const float *vision_feat;  /* (h*w, C) buffer: top level (S/16) */
    const float *vision_pos;   /* (h*w, C) buffer or const: its position encoding */
    const float *high_res0;    /* (L*L, C/8) buffer after conv_s0, or NULL */
    const float *high_res1;    /* ((S/8)^2, C/4) buffer after conv_s1, or NULL */
} sam_track_feats;

typedef struct {
    int frame_idx;
    bool is_init_cond_frame;
    bool reverse;
    const float *point_coords;   /* (n_points, 2) host, in model pixels (x/W*S, y/H*S), or NULL */
    const int *point_labels;     /* (n_points) host: 0 neg, 1 pos, 2/3 box corners */
    int n_points;                /* 0 with NULL coords: no point prompt */
    bool has_points;             /* point_inputs is not None (even a box only) */
    const float *mask_input;     /* (S, S) HOST: the user's binary mask prompt, or NULL */
    const float *prev_mask_logits; /* (L, L) buffer: clamped previous logits fed as mask prompt, or NULL */
    bool run_mem_encoder;
} sam_track_step_in;

typedef struct {
    float *pred_masks;           /* (L, L) caller's buffer */
    float *obj_ptr;              /* (C) caller's buffer */
    uint16_t *maskmem;           /* (h*w, D) caller's buffer, written when run_mem_encoder */
    float object_score_logit;    /* host */
    /* diagnostics (for tests / logs; host) */
    int n_mem, n_ptr, num_obj_ptr_tokens, memory_tokens;
    sam_mem_pick mem[32];
    sam_ptr_pick ptr[SAM_TRACK_MAX_PTRS];
    float ious[4];
    int num_masks;
    bool multimask;
} sam_track_step_out;

typedef struct sam_track sam_track;

/* Loads SAM2Base's own tensors (maskmem_tpos_enc, no_mem_embed, no_mem_pos_enc,
 * no_obj_ptr, obj_ptr_proj, obj_ptr_tpos_proj, no_obj_embed_spatial,
 * mask_downsample) and keeps the shared module handles (not owned).
 * Scratch is reserved here for num_maskmem memory frames; more conditioning
 * frames grow it once. */
sam2d_status sam_track_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                              sam_heads *heads, sam_memory_encoder *menc, sam_memory_attention *mattn,
                              sam_track **out);
/* Same from a weight loader (e.g. while the model is built, or random mode);
 * problems are recorded in L, which the caller finishes. */
sam2d_status sam_track_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L, sam_backend *be,
                                          sam_heads *heads, sam_memory_encoder *menc, sam_memory_attention *mattn,
                                          sam_track **out);
void sam_track_free(sam_track *t);
size_t sam_track_weight_bytes(const sam_track *t);
size_t sam_track_scratch_bytes(const sam_track *t);
/* The part of the tracker's scratch whose pages are resident now. */
size_t sam_track_scratch_resident(const sam_track *t);

/* track_step for one object (batch 1). */
sam2d_status sam_track_step(sam_track *t, const sam_track_feats *f, const sam_track_bank *bank,
                            const sam_track_step_in *in, sam_track_step_out *out);

/* _encode_new_memory from a stored low-res mask (L, L) buffer (the predictor's preflight):
 * bilinear up to (S, S), binarised (is_mask_from_pts and the config says so) or
 * sigmoid, scaled, encoded, no_obj_embed_spatial added when the score <= 0,
 * rounded to bf16 into maskmem (h*w, D). */
sam2d_status sam_track_encode_memory(sam_track *t, const sam_track_feats *f, const float *pred_masks_lowres,
                                     float object_score_logit, bool is_mask_from_pts, uint16_t *maskmem);

/* Same from an (S, S) high-res mask buffer. Optional tap (host array): the binarised/scaled mask fed
 * to the encoder. */
sam2d_status sam_track_encode_memory_highres(sam_track *t, const sam_track_feats *f, const float *high_res,
                                             float object_score_logit, bool is_mask_from_pts, uint16_t *maskmem,
                                             float *mask_for_mem_tap);

/* Test taps (host arrays, filled with to_host): the next memory-attention call
 * copies its memory (M, D) and memory_pos (M, D) (M <= cap rows) and sets *M;
 * the next memory-encoder call copies its (S, S) input mask. Each tap fires
 * once, then disarms. NULL disarms. */
void sam_track_tap_memory(sam_track *t, float *memory, float *memory_pos, int64_t cap, int *M);
void sam_track_tap_mem_mask(sam_track *t, float *mask);


/* The model's tracker, or NULL. */
struct sam2d_model;
sam_track *sam_video_model_tracker(struct sam2d_model *model);

/* ---------------- video predictor back end (internal) ----------------
 * The per-frame work a video session delegates, as a table so that the
 * session state machine can also run on a fake (tests of the bookkeeping
 * against the reference's call log, without a model). */
typedef struct {
    void *ctx;
    const sam2d_model_config *cfg; /* the model's config (set by the hook) */
    /* Where the session keeps the features and every frame state: the model's
     * back end (buffers), or NULL for host memory (fake engines in tests). */
    sam_backend *be;
    size_t feat_floats;   /* floats of one frame's features buffer (owned by the session) */
    /* normalise + encode one (S, S, 3) uint8 host frame into buf (a buffer), point f's arrays into it */
    sam2d_status (*features)(void *ctx, const uint8_t *frame, float *buf, sam_track_feats *f);
    sam2d_status (*step)(void *ctx, const sam_track_feats *f, const sam_track_bank *bank,
                         const sam_track_step_in *in, sam_track_step_out *out);
    sam2d_status (*encode)(void *ctx, const sam_track_feats *f, const float *pred_masks_lowres, float score,
                           bool is_mask_from_pts, uint16_t *maskmem);
    void (*lock)(void *ctx);    /* around each call above: the modules' scratch is shared */
    void (*unlock)(void *ctx);
} sam_video_engine;

struct sam2d_video_session;
/* Session on an engine (the public constructor builds the model's engine).
 * frames: num_frames * (S, S, 3) uint8, copied; NULL leaves them zero (filled later). */
sam2d_status sam_video_session_create_engine(const sam2d_model_config *cfg, const sam_video_engine *eng,
                                             const uint8_t *frames, int num_frames, int video_w, int video_h,
                                             int fill_hole_area, int non_overlap_masks,
                                             struct sam2d_video_session **out);

/* Where a session's bytes go (sam2d_video_session_memory_bytes = total). */
typedef struct {
    size_t total;
    size_t frames;         /* the stored video frames, all of them */
    size_t frame_bytes;    /* one stored frame */
    size_t features;       /* the cached frame's features buffer */
    size_t states;         /* every stored (object, frame) output */
    size_t state_bytes;    /* one of them: bf16 memory, low-res logits, object pointer */
    int64_t n_states;
    size_t objects;        /* per-object bookkeeping (arrays over frames, video-res result logits) */
    int n_objects;
    size_t fixed_other;    /* scratch of the session (masks, upsampling tables, hole filling) */
} sam_video_session_census;
void sam_video_session_memory_census(const struct sam2d_video_session *s, sam_video_session_census *out);

/* The engine of a loaded model (its encoder, heads and video modules). */
struct sam2d_model;
sam2d_status sam_video_model_engine(struct sam2d_model *model, sam_video_engine *eng);
/* How sessions get an engine: sam_video_model_engine unless a tool wraps it
 * (bench times the engine's calls this way). */
extern sam2d_status (*sam_video_engine_hook)(struct sam2d_model *model, sam_video_engine *eng);

#endif
