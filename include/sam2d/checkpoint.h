/* Checkpoints: Meta's PyTorch `.pt` files (zip + restricted unpickler; torch
 * 1.x/2.x layouts, with or without a byteorder entry) and `.safetensors`.
 *
 * Untrusted input: every length and offset is bounds-checked; the unpickler
 * accepts only what a state dict needs and never executes anything.
 * Tensors are materialised contiguous (strides and storage offsets resolved)
 * in their stored dtype (F32, F16 or BF16) inside one allocation.
 *
 * Thread safety: a loaded checkpoint is immutable; any number of threads may
 * read it. Load/free are not synchronised with readers. */
#ifndef SAM2D_CHECKPOINT_H
#define SAM2D_CHECKPOINT_H

#include "sam2d/sam2d.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SAM2D_MAX_DIMS 8

typedef struct sam2d_checkpoint sam2d_checkpoint;

typedef struct {
    const char *name;        /* state-dict key, e.g. "image_encoder.trunk.pos_embed" */
    sam2d_dtype dtype;       /* SAM2D_F32, SAM2D_F16 or SAM2D_BF16 (others refused at load) */
    int ndim;
    int64_t shape[SAM2D_MAX_DIMS];
    int64_t numel;
    const void *data;        /* contiguous, C order, little endian; numel * dtype size bytes */
} sam2d_tensor_info;

typedef struct {
    size_t max_file_bytes;   /* refuse larger files; 0 = 16 GiB. Also bounds the bytes of
                                deflated zip entries once inflated and of all materialised
                                tensors (a strided view may be larger than its storage). */
    size_t max_tensors;      /* 0 = 100000 */
} sam2d_checkpoint_params;

sam2d_checkpoint_params sam2d_checkpoint_default_params(void);

/* Load a .pt (zip) or .safetensors file, recognised by content, not by name.
 * For a .pt holding {"model": state_dict} (Meta's layout) the inner dict is
 * used; a bare state dict works too. Non-tensor entries are skipped.
 * Errors: SAM2D_ERR_IO (open/map), SAM2D_ERR_FORMAT (malformed, truncated or
 * lying file: bad zip, CRC mismatch, missing storage, out-of-range view, ...),
 * SAM2D_ERR_UNSUPPORTED (a pickle global outside the allow-list such as
 * os.system, other dtypes, legacy non-zip torch files), SAM2D_ERR_LIMIT
 * (params exceeded); the message (sam2d_last_error) names the entry/tensor. */
sam2d_status sam2d_checkpoint_load(const char *path, const sam2d_checkpoint_params *params,
                                   sam2d_checkpoint **out);
/* Same from bytes in memory (copied as needed; buf may be freed afterwards). */
sam2d_status sam2d_checkpoint_load_memory(const void *buf, size_t len, const sam2d_checkpoint_params *params,
                                          sam2d_checkpoint **out);
void sam2d_checkpoint_free(sam2d_checkpoint *ck);

/* "pt" or "safetensors". */
const char *sam2d_checkpoint_format(const sam2d_checkpoint *ck);
size_t sam2d_checkpoint_count(const sam2d_checkpoint *ck);
/* i in [0, count): tensors in file order. */
const sam2d_tensor_info *sam2d_checkpoint_tensor(const sam2d_checkpoint *ck, size_t i);
/* NULL when absent. */
const sam2d_tensor_info *sam2d_checkpoint_find(const sam2d_checkpoint *ck, const char *name);

/* Copy a tensor into dst as float32 (numel floats), converting F16/BF16. */
void sam2d_tensor_to_f32(const sam2d_tensor_info *t, float *dst);

#ifdef __cplusplus
}
#endif
#endif
