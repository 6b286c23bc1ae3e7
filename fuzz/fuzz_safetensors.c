/* libFuzzer target: the .safetensors path (header length, JSON header, offsets,
 * overlap checks, copies) through sam2d_checkpoint_load_memory.
 * Build and run: see docs/fuzzing.md. */
#include <stdint.h>
#include <string.h>

#include "sam2d/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sam2d_checkpoint_params p = sam2d_checkpoint_default_params();
    p.max_file_bytes = (size_t)64 << 20;
    sam2d_checkpoint *ck = NULL;
    if (sam2d_checkpoint_load_memory(data, size, &p, &ck) == SAM2D_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < sam2d_checkpoint_count(ck); i++) {
            const sam2d_tensor_info *t = sam2d_checkpoint_tensor(ck, i);
            const uint8_t *d = t->data;
            size_t n = (size_t)t->numel * sam2d_dtype_size(t->dtype);
            for (size_t k = 0; k < n; k++) sink ^= d[k];
            if (sam2d_checkpoint_find(ck, t->name) != t) __builtin_trap();
        }
        (void)sink;
    }
    sam2d_checkpoint_free(ck);
    return 0;
}
