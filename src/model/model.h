/* Inside of the shared model object (include/sam2d/model.h). Modules are
 * created once at load and are read-only afterwards, except for the scratch
 * buffers the encoder and the heads own: callers hold the model lock around
 * calls into them (sam_model_lock), so sessions sharing a model never
 * interleave inside one module.
 *
 * To add a module: add its pointer below, create it in sam_model_build
 * (model.c) from the same loader, free it in sam2d_model_free. */
#ifndef SAM_MODEL_MODEL_H
#define SAM_MODEL_MODEL_H

#include <pthread.h>
#include <stdbool.h>

#include "model/image_encoder.h"
#include "model/memory.h"
#include "model/sam_heads.h"
#include "model/track.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "sam2d/model.h"

struct sam2d_model {
    sam2d_model_config cfg;
    sam_backend *be;
    bool owns_be;
    sam_image_encoder *encoder;
    sam_heads *heads;
    float *no_mem_embed;       /* (d_model): added to S/16 features of frames without memory */
    float *vision_pos;         /* ((S/16)^2, d_model) position encoding of the top level: the same for every
                                  frame, so made once here rather than per frame in every session */
    sam_weight_set weights;    /* model-level tensors (no_mem_embed, ...) */
    pthread_mutex_t lock;      /* serialises use of encoder / heads scratch */
    char device[16];
    sam_memory_encoder *mem_encoder;
    sam_memory_attention *mem_attention;
    sam_track *tracker;        /* SAM2Base's video side, on top of heads + memory modules */
};

/* Build a model from a loader (checkpoint or random mode) and a back end. The
 * loader is finished inside (its message becomes the error). owns_be: the model
 * frees the back end. */
sam2d_status sam_model_build(const sam2d_model_config *cfg, sam_weight_loader *L, sam_backend *be, bool owns_be,
                             sam2d_model **out);
/* Same from an open checkpoint (not kept: weights are copied). */
sam2d_status sam_model_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                              bool owns_be, sam2d_model **out);

/* What a model holds, by part (bytes); *_resident: pages touched so far. */
typedef struct {
    size_t weights;          /* fp32 weights of every module, with the tables made from them at load */
    size_t encoder_arena;    /* image encoder activations (reserved) */
    size_t heads_scratch, heads_scratch_resident;
    size_t memory_scratch, memory_scratch_resident; /* memory attention + memory encoder (one arena) */
    size_t track_scratch, track_scratch_resident;   /* the tracker's own buffers */
} sam_model_memory;
void sam_model_memory_census(const sam2d_model *m, sam_model_memory *out);

void sam_model_lock(sam2d_model *m);
void sam_model_unlock(sam2d_model *m);

#endif
