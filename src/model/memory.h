/* SAM 2 memory encoder and memory attention (with 2-D axial RoPE).
 *
 * Memory encoder: turns the current frame's S/16 features and its (already
 * scaled) high-res mask into a memory entry: mask down-sampler (strided convs +
 * LayerNorm2d + GELU), pixel-feature projection, fuser (ConvNeXt blocks),
 * output projection and a sine position encoding.
 *
 * Memory attention: a stack of layers (pre-norm RoPE self-attention, RoPE
 * cross-attention to the memory bank, ReLU FFN) and a final LayerNorm that
 * conditions the current frame's features on the memory bank.
 *
 * All tensors are channels-last / token-major float32. Handles keep read-only
 * weights plus per-handle scratch; a handle must not be used by two threads at
 * once (create one per concurrent computation or serialise calls).
 *
 * Memory (ops.h's device-memory rule): every tensor argument and output below
 * is a back-end BUFFER (device memory on a GPU; host memory on the CPU back
 * end). Weights and the tables made at load (sine position encoding, RoPE
 * cos/sin, the folded cross-attention projection) are const memory. The host
 * never touches an activation: the calls only queue kernels and copies (they
 * return before a GPU has finished; the caller's next to_host waits). Scratch
 * arenas live on the back end's buffers; a region given to *_use_scratch must
 * be a buffer too.
 *
 * Cross-attention arithmetic (issue 7): values are attended at the memory's
 * own width (mem_dim, 64) and v_proj is folded into out_proj at load
 * (W_o . W_v, b_o + W_o . b_v; exact since softmax rows sum to one), so no
 * (M, Ci) value tensor is made. Tiny at 1024 px with a full bank (7 frames +
 * 16 pointers, M = 28736): 419 instead of 606 GFLOP per call; outputs within
 * 6e-8 of the unreordered ones.
 * K projections are not cached across steps, by measurement: k_proj over the
 * whole bank costs 4 x 0.94 GFLOP per call, 0.04 s CPU, plus about 0.02 s
 * for its RoPE, i.e. ~2 % of the call's 3.4 s CPU (2 threads), while a cache
 * per (object, memory frame, layer) would hold 4 x 7 x 4096 x 256 floats =
 * 117 MiB per object (and must still add rope(W_k . tpos) each step, since a
 * frame's temporal encoding changes as tracking advances). */
#ifndef SAM_MODEL_MEMORY_H
#define SAM_MODEL_MEMORY_H

#include "model/weights.h"
#include "ops/ops.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"

/* ---------------- memory encoder ---------------- */

typedef struct sam_memory_encoder sam_memory_encoder;

/* Loads "memory_encoder.*" weights from ck. Scratch is sized for cfg->image_size. */
sam2d_status sam_memory_encoder_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                                       sam_memory_encoder **out);
/* Same from any loader (checkpoint or random mode, e.g. tests/benchmarks at
 * real size); L is not finished here and the encoder owns every buffer it fetched. */
sam2d_status sam_memory_encoder_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L,
                                                   sam_backend *be, sam_memory_encoder **out);
void sam_memory_encoder_free(sam_memory_encoder *m);

/* pix_feat (h*w, C) channels-last at S/16 (the current frame's top-level
 * features, C = cfg->mem_in_dim); mask (S, S) already scaled by the caller
 * (sigmoid*scale+bias, or binarised: the reference's skip_mask_sigmoid=True);
 * out_feat (h*w, mem_dim) float32 (the caller rounds to bf16 for storage);
 * out_pos (h*w, mem_dim) sine position encoding. S = cfg->image_size,
 * h = w = S / cfg->backbone_stride. */
sam2d_status sam_memory_encoder_forward(sam_memory_encoder *m, const float *pix_feat, const float *mask,
                                        float *out_feat, float *out_pos);

/* ---------------- memory attention ---------------- */

typedef struct sam_memory_attention sam_memory_attention;

/* Loads "memory_attention.*" weights from ck. Scratch is reserved for the
 * largest memory bank the config allows (num_maskmem frames of h*w tokens plus
 * max_obj_ptrs_in_encoder * (C / mem_dim) pointer tokens) at cfg->image_size. */
sam2d_status sam_memory_attention_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                                         sam_memory_attention **out);
/* Same from any loader; L is not finished here (as the encoder's). */
sam2d_status sam_memory_attention_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L,
                                                     sam_backend *be, sam_memory_attention **out);
void sam_memory_attention_free(sam_memory_attention *a);

/* curr/curr_pos (h*w, C) with C = d_model; memory/memory_pos (M, mem_dim): the
 * first M - num_obj_ptr_tokens rows are whole memory frames of h*w tokens each
 * (RoPE repeated per frame: rope_k_repeat), the last num_obj_ptr_tokens rows
 * are object-pointer tokens (no RoPE). out (h*w, C). feat_h/feat_w are the
 * actual feature size (RoPE tables are recomputed when it changes). */
sam2d_status sam_memory_attention_forward(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                          const float *memory, const float *memory_pos, int M,
                                          int num_obj_ptr_tokens, int feat_h, int feat_w, float *out);

/* Same, also copying each layer's output (before the final norm) into
 * layer_out (num_layers, h*w, C) buffer when it is not NULL (tests, debugging). */
sam2d_status sam_memory_attention_forward_layers(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                                 const float *memory, const float *memory_pos, int M,
                                                 int num_obj_ptr_tokens, int feat_h, int feat_w, float *out,
                                                 float *layer_out);

/* Same as sam_memory_attention_forward with the cross-attention keys' input
 * summed by the caller: keys (M, mem_dim) = memory + memory_pos when
 * cfg->mem_attn_pos_enc_at_cross_attn_keys, else memory. Saves the (M, mem_dim)
 * scratch copy (7 MiB with a full bank at 1024 px) when the caller can sum in place. */
sam2d_status sam_memory_attention_forward_keys(sam_memory_attention *a, const float *curr, const float *curr_pos,
                                               const float *memory, const float *keys, int M, int num_obj_ptr_tokens,
                                               int feat_h, int feat_w, float *out);

/* Makes the encoder run in the attention's scratch arena (grown to fit both)
 * and frees its own: a tracker runs them one after the other, never at once.
 * From then on the two handles are one unit for thread safety (never run both
 * at the same time), and the attention must outlive the encoder's calls.
 * Saves the encoder's scratch (24 MiB for tiny at 1024 px). */
sam2d_status sam_memory_share_scratch(sam_memory_encoder *m, sam_memory_attention *a);

/* Bytes of fp32 weights each module holds (the folded cross-attention
 * projections included), and of the attention's scratch arena (shared with the
 * encoder once sam_memory_share_scratch ran): reserved, and *resident the part
 * whose pages were ever touched (may be NULL). */
size_t sam_memory_encoder_weight_bytes(const sam_memory_encoder *m);
size_t sam_memory_attention_weight_bytes(const sam_memory_attention *a);
size_t sam_memory_attention_scratch_bytes(const sam_memory_attention *a, size_t *resident);

/* Scratch bytes of one call (the attention's for M memory tokens at the
 * configured feature size), and running each module in a caller's region
 * (see sam_arena_use_buffer; NULL returns to own memory; the encoder then
 * stops sharing the attention's arena). */
size_t sam_memory_attention_scratch_need(const sam_memory_attention *a, int64_t M);
size_t sam_memory_encoder_scratch_need(const sam_memory_encoder *m);
void sam_memory_attention_use_scratch(sam_memory_attention *a, void *buf, size_t bytes);
void sam_memory_encoder_use_scratch(sam_memory_encoder *m, void *buf, size_t bytes);

#endif
