/* The shared model: config + weights + back end + every module, loaded once
 * and then read-only. Any number of sessions / image predictors may use one
 * model; the model serialises their use of modules that own scratch buffers.
 *
 * Thread safety: load/free are not synchronised with users (free only after
 * every user is gone); everything else may be called from any thread. */
#ifndef SAM2D_MODEL_H
#define SAM2D_MODEL_H

#include <stddef.h>

#include "sam2d/config.h"
#include "sam2d/sam2d.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sam2d_model sam2d_model;

typedef struct {
    const char *checkpoint_path; /* Meta's .pt or a .safetensors (required) */
    const char *config_path;     /* Meta's YAML; NULL: `preset`, else guessed from the checkpoint */
    const char *preset;          /* e.g. "sam2.1_tiny"; used only when config_path is NULL */
    int num_threads;             /* <= 0: SAM2_THREADS or all CPUs */
    const char *device;          /* "cpu" (default), "auto" (the GPU when one works), "cuda[:N]", "devsim" (tests) */
    const char *precision;       /* "fp32" (exact, default) or "bf16"; NULL: SAM2_PRECISION, else fp32 */
} sam2d_model_params;

sam2d_model_params sam2d_model_default_params(void);

/* Where Meta's checkpoint of a size lives: dir/sam2.1_hiera_<size>.pt, or the
 * .safetensors of that name when only it exists. dir NULL/"" = "./models",
 * size NULL/"" = "base_plus". Writes buf (the .pt path when neither exists). */
void sam2d_default_checkpoint_path(const char *dir, const char *size, char *buf, size_t len);

/* Load config and checkpoint, build every module (weights converted to float32
 * once, activation scratch reserved). Fails with one message listing every
 * missing or mis-shaped tensor. */
sam2d_status sam2d_model_load(const sam2d_model_params *params, sam2d_model **out);
void sam2d_model_free(sam2d_model *m);

const sam2d_model_config *sam2d_model_get_config(const sam2d_model *m);
int sam2d_model_image_size(const sam2d_model *m);
/* Back end name ("cpu", ...). */
const char *sam2d_model_device(const sam2d_model *m);
/* "fp32" or "bf16". */
const char *sam2d_model_precision(const sam2d_model *m);
/* One line, e.g. "SAM 2.1 Hiera tiny-like (embed 96, 12 blocks), image 1024, cpu". */
void sam2d_model_describe(const sam2d_model *m, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
