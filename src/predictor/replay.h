/* Scenario replay of a golden folder (manifest.json + config.yaml + model.pt or
 * model.safetensors + video/ frames): shared manifest/model helpers and the
 * image-scenario runner. The video-scenario runner (replay_video.c) uses the
 * same context; `sam2d replay` calls both.
 *
 * Nothing here knows the golden model's sizes: every dimension comes from the
 * manifest, the config and the frames. Not thread-safe (one context per run). */
#ifndef SAM_PREDICTOR_REPLAY_H
#define SAM_PREDICTOR_REPLAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sam2d/model.h"
#include "sam2d/sam2d.h"

typedef struct {
    char dir[4096];         /* the golden folder */
    json_t *manifest;       /* parsed manifest.json (owned) */
    sam2d_model *model;     /* loaded from the folder (owned), NULL until sam_replay_load_model */
    char checkpoint[4200];  /* the checkpoint file sam_replay_load_model used */
    char **frames;          /* sorted paths of video/ frames (owned) */
    int num_frames;
    int verbose;            /* print one line per step on stdout */
} sam_replay_ctx;

/* Read manifest.json and list the frame folder (video/ or manifest "video.folder"). */
sam2d_status sam_replay_open(const char *golden_dir, sam_replay_ctx *ctx);
/* Load the model: model.pt (else model.safetensors) with config.yaml (else guessed). */
sam2d_status sam_replay_load_model(sam_replay_ctx *ctx, int num_threads);
void sam_replay_close(sam_replay_ctx *ctx);

/* Path of a file inside the golden folder (buf of len bytes). */
const char *sam_replay_path(const sam_replay_ctx *ctx, const char *rel, char *buf, size_t len);
/* Decode frame i of the folder (JPEG/PNG as Pillow). *rgb is sam_malloc'd (H, W, 3). */
sam2d_status sam_replay_load_frame(const sam_replay_ctx *ctx, int i, uint8_t **rgb, int *width, int *height);
/* The relative file name a result entry stands for: the string itself, or the
 * "logical_name" of an {file, identical_to_earlier_result, logical_name} entry. NULL otherwise. */
const char *sam_replay_result_name(const json_t *entry);
/* Write float32 data as out_dir/rel (.npy), creating the directories on the way. */
sam2d_status sam_replay_write_npy(const char *out_dir, const char *rel, const float *data, int ndim,
                                  const int64_t *shape);
/* mkdir -p. */
sam2d_status sam_replay_mkdirs(const char *path);

/* Run manifest "image_scenario" (SAM2ImagePredictor.predict calls) and write every result
 * that "image_results" names (masks, iou_predictions, low_res_masks) under out_dir.
 * antialias of the predictor's resize follows manifest resampling.image_predictor.
 * Returns SAM2D_ERR_NOT_FOUND when the manifest has no image scenario. */
sam2d_status sam_replay_image(sam_replay_ctx *ctx, const char *out_dir);

#endif
