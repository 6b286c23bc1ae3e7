/* libFuzzer target: the .pt path (zip reader + restricted unpickler).
 * An input starting with "PK" goes through sam2d_checkpoint_load_memory (zip,
 * byteorder, pickle, storage checks, strided copies); anything else is fed to
 * the unpickler directly, so the VM is fuzzed without the zip wrapper.
 * Build and run: see docs/fuzzing.md. */
#include <stdint.h>
#include <string.h>

#include "io/pickle.h"
#include "sam2d/checkpoint.h"

/* Reads every byte so ASan sees any out-of-bounds tensor pointer. */
static void touch(const sam2d_checkpoint *ck) {
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < sam2d_checkpoint_count(ck); i++) {
        const sam2d_tensor_info *t = sam2d_checkpoint_tensor(ck, i);
        const uint8_t *d = t->data;
        size_t n = (size_t)t->numel * sam2d_dtype_size(t->dtype);
        for (size_t k = 0; k < n; k++) sink ^= d[k];
        if (sam2d_checkpoint_find(ck, t->name) != t) __builtin_trap(); /* names are unique and findable */
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        sam2d_checkpoint_params p = sam2d_checkpoint_default_params();
        p.max_file_bytes = (size_t)64 << 20; /* bounds inflated and materialised bytes: no fuzzer OOM */
        sam2d_checkpoint *ck = NULL;
        if (sam2d_checkpoint_load_memory(data, size, &p, &ck) == SAM2D_OK) touch(ck);
        sam2d_checkpoint_free(ck);
    } else {
        sam_pk_limits lim = {1000, 1 << 20, 1 << 16};
        sam_pk_state_dict sd;
        if (sam_pickle_state_dict(data, size, &lim, &sd) == SAM2D_OK) {
            for (size_t i = 0; i < sd.n_tensors; i++)
                if (sd.tensors[i].storage >= sd.n_storages || strlen(sd.tensors[i].name) > size) __builtin_trap();
        }
        sam_pickle_state_dict_free(&sd);
    }
    return 0;
}
