/* The config and checkpoint of a golden set (tests/data/golden/<set>), which
 * the model-level golden tests start from. When either fails to load, a CHECK
 * fails naming the file and the error, and false comes back. */
#ifndef SAM_TESTS_MODEL_GOLDEN_SET_H
#define SAM_TESTS_MODEL_GOLDEN_SET_H

#include <stdbool.h>
#include <stdio.h>

#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "test_util.h"

static inline bool golden_set_load(const char *set, sam2d_model_config *cfg, sam2d_checkpoint **ck) {
    char path[1024];
    *ck = NULL;
    snprintf(path, sizeof path, "%s/golden/%s/config.yaml", SAM2D_TEST_DATA, set);
    sam2d_status st = sam2d_config_load_yaml(path, cfg);
    CHECK_MSG(st == SAM2D_OK, "config %s: %s", path, sam2d_last_error());
    if (st != SAM2D_OK) return false;
    snprintf(path, sizeof path, "%s/golden/%s/model.safetensors", SAM2D_TEST_DATA, set);
    st = sam2d_checkpoint_load(path, NULL, ck);
    CHECK_MSG(st == SAM2D_OK, "checkpoint %s: %s", path, sam2d_last_error());
    return st == SAM2D_OK;
}

#endif
