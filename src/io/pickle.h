/* Restricted unpickler for PyTorch state dicts (the `data.pkl` of a `.pt`).
 *
 * It interprets pickle opcodes in a small VM that only knows plain values
 * (None, bool, int, float, str/bytes, tuple, list, dict) plus exactly the
 * globals a state dict needs: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter(_with_state)
 * and the typed torch.*Storage classes (only inside persistent ids). Any other
 * global (os.system, builtins.eval, ...) is refused with SAM2D_ERR_UNSUPPORTED
 * naming it; nothing is ever executed. Stack, memo, object count and lengths
 * are bounded. */
#ifndef SAM_IO_PICKLE_H
#define SAM_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "sam2d/checkpoint.h"
#include "sam2d/sam2d.h"

/* Element types of the torch storage classes we recognise. Only F32/F16/BF16
 * tensors are loadable; the others are named in refusals. */
typedef enum {
    SAM_PK_F32 = 0,
    SAM_PK_F16,
    SAM_PK_BF16,
    SAM_PK_F64,
    SAM_PK_I64,
    SAM_PK_I32,
    SAM_PK_I16,
    SAM_PK_I8,
    SAM_PK_U8,
    SAM_PK_BOOL,
} sam_pk_dtype;

size_t sam_pk_dtype_size(sam_pk_dtype t);
const char *sam_pk_dtype_name(sam_pk_dtype t); /* torch class name, e.g. "FloatStorage" */

typedef struct {
    const char *key;   /* NUL-terminated storage key ("0", "1", ...): the zip entry <prefix>/data/<key> */
    sam_pk_dtype dtype;
    int64_t numel;     /* elements of dtype, as declared by the persistent id */
} sam_pk_storage;

typedef struct {
    const char *name;  /* NUL-terminated state-dict key */
    size_t storage;    /* index into sam_pk_state_dict.storages */
    int64_t offset;    /* storage offset, in elements */
    int ndim;
    int64_t shape[SAM2D_MAX_DIMS];
    int64_t stride[SAM2D_MAX_DIMS]; /* in elements */
} sam_pk_tensor;

typedef struct {
    sam_pk_storage *storages; // (n_storages) in first-use order
    size_t n_storages;
    sam_pk_tensor *tensors;   // (n_tensors) in state-dict order
    size_t n_tensors;
    char *strings;            // backing store of every name and key above
} sam_pk_state_dict;

typedef struct {
    size_t max_tensors;  /* 0 = 100000 */
    size_t max_objects;  /* values the VM may create; 0 = 1 << 24 */
    size_t max_stack;    /* stack + mark depth; 0 = 1 << 20 */
} sam_pk_limits;

/* Unpickle `pkl` and return the state dict it holds: {"model": state_dict}
 * (Meta's layout; other simple top-level entries are ignored) or a bare state
 * dict. Only tensor values are returned; other values in the dict are skipped.
 * Does not check tensors against storage sizes (the caller knows those). */
sam2d_status sam_pickle_state_dict(const uint8_t *pkl, size_t len, const sam_pk_limits *lim,
                                   sam_pk_state_dict *out);
void sam_pickle_state_dict_free(sam_pk_state_dict *sd);

#endif
