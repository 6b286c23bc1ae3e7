/* Config vs a loaded checkpoint: thin wrappers that hand the checkpoint's
 * tensor list to the shape-level functions of config_tensors.c. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "sam2d/config.h"

/* The checkpoint API hands out tensors one by one; the checks take an array. */
static sam2d_status tensor_array(const sam2d_checkpoint *ck, sam2d_tensor_info **out, size_t *n) {
    *n = sam2d_checkpoint_count(ck);
    *out = sam_malloc((*n + 1) * sizeof **out);
    if (!*out) return SAM_ERR(SAM2D_ERR_NOMEM, "config: out of memory");
    for (size_t i = 0; i < *n; i++) (*out)[i] = *sam2d_checkpoint_tensor(ck, i);
    return SAM2D_OK;
}

sam2d_status sam2d_config_check_checkpoint(const sam2d_model_config *cfg, const sam2d_checkpoint *ck) {
    if (!cfg || !ck) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config check: NULL argument");
    sam2d_tensor_info *t;
    size_t n;
    SAM_TRY(tensor_array(ck, &t, &n));
    sam2d_status st = sam2d_config_check_tensors(cfg, t, n);
    sam_free(t);
    return st;
}

sam2d_status sam2d_config_from_checkpoint(const sam2d_checkpoint *ck, sam2d_model_config *out) {
    if (!ck || !out) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "config from checkpoint: NULL argument");
    sam2d_tensor_info *t;
    size_t n;
    SAM_TRY(tensor_array(ck, &t, &n));
    sam2d_status st = sam2d_config_from_tensors(t, n, out);
    sam_free(t);
    return st;
}
