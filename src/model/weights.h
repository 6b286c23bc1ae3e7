/* Fetch named checkpoint tensors as float32 into model-owned buffers, checking
 * shapes. Every problem (missing tensor, wrong shape) is recorded instead of
 * stopping at the first, so a failed load reports one complete message:
 *
 *   sam_weight_loader L;
 *   sam_weight_loader_init(&L, ck, &model->weights);
 *   m->qkv_w = sam_weight(&L, 2, (int64_t[]){3 * C, C}, "%s.attn.qkv.weight", prefix);
 *   ...
 *   SAM_TRY(sam_weight_loader_finish(&L));   // SAM2D_ERR_MISMATCH listing every problem
 *
 * A loader can also run without a checkpoint ("random" mode): every requested
 * tensor is then synthesised with deterministic uniform values of the requested
 * shape, so a model of real size can be built and run in tests without a file.
 *
 * Not thread-safe (one loader per model being built). */
#ifndef SAM_MODEL_WEIGHTS_H
#define SAM_MODEL_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sam2d/checkpoint.h"
#include "sam2d/sam2d.h"

typedef struct sam_backend sam_backend;

/* Owns every buffer a loader hands out (freed together with the model). */
typedef struct {
    float **ptrs;
    size_t *sizes;  /* bytes of each buffer */
    size_t n, cap;
    size_t bytes;   /* total float bytes owned */
    sam_backend *be; /* NULL: host memory (sam_malloc); else the back end's const memory */
} sam_weight_set;

/* Buffers in host memory (tools, tests that never hand them to kernels). */
void sam_weight_set_init(sam_weight_set *s);
/* Buffers in be's const memory (ops.h): what every model module uses, so
 * kernels on any back end can read them. Call sam_weight_set_publish once
 * the module has finished writing them (tables made at load included). */
void sam_weight_set_init_on(sam_weight_set *s, sam_backend *be);
void sam_weight_set_publish(sam_weight_set *s);
/* A buffer of `count` floats owned by the set (for tables made at load);
 * NULL when out of memory. */
float *sam_weight_set_alloc(sam_weight_set *s, size_t count);
void sam_weight_set_free(sam_weight_set *s);   /* frees every buffer; the set is reusable */

typedef struct {
    const sam2d_checkpoint *ck;   /* NULL in random mode */
    sam_weight_set *owner;        /* receives every buffer; NULL: caller sam_free()s each */
    uint64_t rng;                 /* random mode state */
    float rand_scale;             /* random mode: values uniform in [-scale, scale) */
    int nerr;
    int nloaded;
    char *msg;                    /* accumulated problems, '\n'-separated (sam_malloc'd) */
    size_t msg_len, msg_cap;
} sam_weight_loader;

void sam_weight_loader_init(sam_weight_loader *L, const sam2d_checkpoint *ck, sam_weight_set *owner);
/* Random mode: no checkpoint; each tensor is filled with uniform values in
 * [-scale, scale) from a deterministic generator seeded with `seed`.
 * Tensors named "*.weight"/"*.bias" of LayerNorms are not special-cased. */
void sam_weight_loader_init_random(sam_weight_loader *L, uint64_t seed, float scale, sam_weight_set *owner);

/* The tensor `name` (printf format) as float32 with exactly the given shape.
 * Returns NULL (and records the problem) when missing or mis-shaped. */
float *sam_weight(sam_weight_loader *L, int ndim, const int64_t *shape, const char *name_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, but a missing tensor is not an error (returns NULL silently);
 * a present tensor with the wrong shape still is. In random mode it is created. */
float *sam_weight_optional(sam_weight_loader *L, int ndim, const int64_t *shape, const char *name_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Whether the checkpoint holds `name` (random mode: always true). */
bool sam_weight_exists(sam_weight_loader *L, const char *name_fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record a custom problem (e.g. a config/weight inconsistency found by the model). */
void sam_weight_loader_fail(sam_weight_loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Every problem recorded so far, one per line ("" when none). The error message set by
 * finish() is bounded by the library's error buffer; print this for the full list. */
const char *sam_weight_loader_message(const sam_weight_loader *L);

/* SAM2D_OK, or SAM2D_ERR_MISMATCH with every recorded problem in one message.
 * Releases the loader's message buffer either way (buffers already handed out stay
 * with their owner). */
sam2d_status sam_weight_loader_finish(sam_weight_loader *L);

/* Shape helpers: SAM_SHAPE(a, b) -> (const int64_t[]){a, b} with its ndim. */
#define SAM_W1(a) 1, (const int64_t[]){(a)}
#define SAM_W2(a, b) 2, (const int64_t[]){(a), (b)}
#define SAM_W3(a, b, c) 3, (const int64_t[]){(a), (b), (c)}
#define SAM_W4(a, b, c, d) 4, (const int64_t[]){(a), (b), (c), (d)}

#endif
