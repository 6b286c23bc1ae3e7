/* Shared between the .pt and .safetensors loaders: the checkpoint object and
 * the steps that build it (names, one data allocation, lookup index). */
#ifndef SAM_IO_CHECKPOINT_INTERNAL_H
#define SAM_IO_CHECKPOINT_INTERNAL_H

#include "sam2d/checkpoint.h"

struct sam2d_checkpoint {
    const char *format;                // "pt" or "safetensors"
    size_t n;
    sam2d_tensor_info *tensors;        // (n) in file order
    const sam2d_tensor_info **sorted;  // (n) by name, for sam2d_checkpoint_find
    char *names;                       // every name, NUL-terminated, one block
    size_t names_used, names_cap;
    void *data;                        // every tensor's bytes, one 64-byte aligned block
    size_t data_bytes;
};

/* Empty checkpoint for n tensors whose names total at most names_bytes (NULs included). */
sam2d_status sam_ckpt_new(const char *format, size_t n, size_t names_bytes, sam2d_checkpoint **out);
/* Copy a name into the checkpoint's name block; tensor i gets it. */
sam2d_status sam_ckpt_set_name(sam2d_checkpoint *ck, size_t i, const char *name, size_t len);
/* Once every tensor has dtype, ndim, shape and numel: one allocation for all data
 * (each tensor 64-byte aligned); sets tensors[i].data. Refuses more than max_bytes. */
sam2d_status sam_ckpt_alloc_data(sam2d_checkpoint *ck, uint64_t max_bytes);
/* Build the name index; refuses duplicate names. */
sam2d_status sam_ckpt_finish(sam2d_checkpoint *ck);

/* Format-specific loaders over a byte buffer (buf outlives the call only). */
sam2d_status sam_ckpt_load_pt(const uint8_t *buf, size_t len, const sam2d_checkpoint_params *p, sam2d_checkpoint **out);
sam2d_status sam_ckpt_load_safetensors(const uint8_t *buf, size_t len, const sam2d_checkpoint_params *p,
                                       sam2d_checkpoint **out);

#endif
