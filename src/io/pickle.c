#include "io/pickle.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

/* ---- values ------------------------------------------------------------ */

enum {
    K_NONE,
    K_BOOL,
    K_INT,
    K_FLOAT,
    K_STR,     /* str or bytes: bytes live in the pickle buffer */
    K_TUPLE,   /* immutable: items in vm->pool */
    K_LIST,    /* mutable: own item array */
    K_DICT,    /* mutable: own array of key, value pairs (insertion order) */
    K_GLOBAL,  /* one of the allowed callables / storage classes */
    K_STORAGE, /* result of a persistent id: index into vm->storages */
    K_TENSOR,  /* result of _rebuild_tensor_v2: index into vm->tensors */
};

enum {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_REBUILD_PARAMETER_STATE,
    G_REBUILD_FROM_TYPE, /* torch._tensor._rebuild_from_type_v2(func, cls, args, state): func(*args) */
    G_TENSOR_CLASS,      /* torch.Tensor / Parameter: only a marker argument, never called */
    G_STORAGE,
};

static const char *const kind_names[] = {"None",   "bool", "int",    "float",   "str",   "tuple",
                                         "list",   "dict", "global", "storage", "tensor"};

typedef struct {
    uint8_t kind;
    uint8_t sub;   /* G_* for globals (dtype of a storage class in `i`), bool value */
    uint32_t n;    /* string length, items (tuple/list), pairs * 2 (dict) */
    uint32_t cap;  /* list/dict capacity */
    union {
        int64_t i;
        double f;
        const uint8_t *s;
        size_t first;    /* tuple: first item in vm->pool */
        uint32_t *items; /* list/dict */
    } u;
} pk_obj;

static const struct {
    const char *module, *name;
    uint8_t global;
    int dtype;
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, -1},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, -1},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, -1},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAMETER_STATE, -1},
    {"torch._tensor", "_rebuild_from_type_v2", G_REBUILD_FROM_TYPE, -1},
    {"torch", "Tensor", G_TENSOR_CLASS, -1},
    {"torch.nn.parameter", "Parameter", G_TENSOR_CLASS, -1},
    {"torch", "FloatStorage", G_STORAGE, SAM_PK_F32},
    {"torch", "HalfStorage", G_STORAGE, SAM_PK_F16},
    {"torch", "BFloat16Storage", G_STORAGE, SAM_PK_BF16},
    {"torch", "DoubleStorage", G_STORAGE, SAM_PK_F64},
    {"torch", "LongStorage", G_STORAGE, SAM_PK_I64},
    {"torch", "IntStorage", G_STORAGE, SAM_PK_I32},
    {"torch", "ShortStorage", G_STORAGE, SAM_PK_I16},
    {"torch", "CharStorage", G_STORAGE, SAM_PK_I8},
    {"torch", "ByteStorage", G_STORAGE, SAM_PK_U8},
    {"torch", "BoolStorage", G_STORAGE, SAM_PK_BOOL},
};

size_t sam_pk_dtype_size(sam_pk_dtype t) {
    switch (t) {
    case SAM_PK_F64: case SAM_PK_I64: return 8;
    case SAM_PK_F32: case SAM_PK_I32: return 4;
    case SAM_PK_F16: case SAM_PK_BF16: case SAM_PK_I16: return 2;
    case SAM_PK_I8: case SAM_PK_U8: case SAM_PK_BOOL: return 1;
    }
    return 0;
}

const char *sam_pk_dtype_name(sam_pk_dtype t) {
    for (size_t i = 0; i < sizeof allowed_globals / sizeof *allowed_globals; i++)
        if (allowed_globals[i].dtype == (int)t) return allowed_globals[i].name;
    return "?";
}

/* ---- VM ----------------------------------------------------------------- */

typedef struct {
    const uint8_t *p; // (len) the pickle
    size_t len, pos;
    size_t max_objects, max_stack, max_tensors;

    pk_obj *objs;     // (n_objs) every value created; freed together at the end
    size_t n_objs, cap_objs;
    uint32_t *stack;  // (n_stack) object indices
    size_t n_stack, cap_stack;
    size_t *marks;    // (n_marks) stack heights at MARK
    size_t n_marks, cap_marks;
    uint32_t *pool;   // tuple items
    size_t n_pool, cap_pool;
    uint32_t *memo;   // (n_memo) object index + 1; 0 = unset
    size_t n_memo, max_memo, memo_count; /* memo_count: keys set (MEMOIZE's next key) */

    sam_pk_storage *storages; // (n_storages); key points into the pickle until copied out
    size_t *key_lens;         // (n_storages)
    size_t n_storages, cap_storages;
    uint32_t *key_hash;       // (hash_cap) storage index + 1, open addressing
    size_t hash_cap;
    sam_pk_tensor *tensors;   // every tensor built, referenced by K_TENSOR objects
    size_t n_tensors, cap_tensors;
} vm_t;

/* Grow *arr (elements of size `sz`) to hold at least `need`; bounded by `limit`. */
static sam2d_status grow(void **arr, size_t *cap, size_t need, size_t sz, size_t limit, const char *what) {
    if (need <= *cap) return SAM2D_OK;
    if (need > limit) return SAM_ERR(SAM2D_ERR_LIMIT, "pickle: too many %s (limit %zu)", what, limit);
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    if (nc > limit) nc = limit;
    void *na = sam_realloc(*arr, nc * sz);
    if (!na) return SAM_ERR(SAM2D_ERR_NOMEM, "pickle: out of memory growing %s", what);
    *arr = na;
    *cap = nc;
    return SAM2D_OK;
}

static sam2d_status new_obj(vm_t *vm, uint8_t kind, uint32_t *idx) {
    SAM_TRY(grow((void **)&vm->objs, &vm->cap_objs, vm->n_objs + 1, sizeof(pk_obj), vm->max_objects, "objects"));
    pk_obj *o = &vm->objs[vm->n_objs];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    *idx = (uint32_t)vm->n_objs++;
    return SAM2D_OK;
}

static sam2d_status push(vm_t *vm, uint32_t idx) {
    SAM_TRY(grow((void **)&vm->stack, &vm->cap_stack, vm->n_stack + 1, sizeof(uint32_t), vm->max_stack, "stack items"));
    vm->stack[vm->n_stack++] = idx;
    return SAM2D_OK;
}

static sam2d_status push_new(vm_t *vm, uint8_t kind, pk_obj **o) {
    uint32_t idx;
    SAM_TRY(new_obj(vm, kind, &idx));
    SAM_TRY(push(vm, idx));
    *o = &vm->objs[idx];
    return SAM2D_OK;
}

/* Items above the topmost mark (the mark itself is not removed). */
static sam2d_status mark_base(vm_t *vm, size_t op_pos, size_t *base) {
    if (vm->n_marks == 0) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: opcode at offset %zu needs a MARK and there is none", op_pos);
    *base = vm->marks[vm->n_marks - 1];
    if (*base > vm->n_stack) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: stack underflow below MARK at offset %zu", op_pos);
    return SAM2D_OK;
}

static sam2d_status pop_mark(vm_t *vm, size_t op_pos, size_t *base) {
    SAM_TRY(mark_base(vm, op_pos, base));
    vm->n_marks--;
    return SAM2D_OK;
}

static sam2d_status need_stack(vm_t *vm, size_t n, size_t op_pos) {
    /* items pushed before the last MARK belong to an outer frame */
    size_t floor = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (vm->n_stack < floor + n)
        return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: stack underflow at offset %zu (opcode needs %zu values)", op_pos, n);
    return SAM2D_OK;
}

static sam2d_status make_tuple(vm_t *vm, size_t base) {
    size_t n = vm->n_stack - base;
    SAM_TRY(grow((void **)&vm->pool, &vm->cap_pool, vm->n_pool + n, sizeof(uint32_t), (size_t)UINT32_MAX, "tuple items"));
    size_t first = vm->n_pool;
    if (n) memcpy(vm->pool + first, vm->stack + base, n * sizeof(uint32_t));
    vm->n_pool += n;
    vm->n_stack = base;
    pk_obj *o;
    SAM_TRY(push_new(vm, K_TUPLE, &o));
    o->n = (uint32_t)n;
    o->u.first = first;
    return SAM2D_OK;
}

/* Append items[0..n) to a list or dict object. */
static sam2d_status extend_items(vm_t *vm, uint32_t target, const uint32_t *items, size_t n) {
    if (n == 0) return SAM2D_OK;
    pk_obj *o = &vm->objs[target];
    size_t need = (size_t)o->n + n, cap = o->cap;
    void *arr = o->u.items;
    SAM_TRY(grow(&arr, &cap, need, sizeof(uint32_t), (size_t)UINT32_MAX, "container items"));
    o = &vm->objs[target];
    o->u.items = arr;
    o->cap = (uint32_t)cap;
    memcpy(o->u.items + o->n, items, n * sizeof(uint32_t));
    o->n = (uint32_t)need;
    return SAM2D_OK;
}

static int read_bytes(vm_t *vm, size_t n, const uint8_t **out) {
    if (n > vm->len - vm->pos) return 0;
    *out = vm->p + vm->pos;
    vm->pos += n;
    return 1;
}

static int read_uint(vm_t *vm, size_t n, uint64_t *v) {
    const uint8_t *b;
    if (!read_bytes(vm, n, &b)) return 0;
    *v = 0;
    for (size_t i = 0; i < n; i++) *v |= (uint64_t)b[i] << (8 * i);
    return 1;
}

static sam2d_status truncated(size_t op_pos) {
    return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: truncated operand of the opcode at offset %zu", op_pos);
}

static sam2d_status need_stack(vm_t *vm, size_t n, size_t op_pos);

static sam2d_status memo_put(vm_t *vm, uint64_t key, size_t op_pos) {
    SAM_TRY(need_stack(vm, 1, op_pos));
    if (key >= vm->max_memo) return SAM_ERR(SAM2D_ERR_LIMIT, "pickle: memo key %llu too large at offset %zu", (unsigned long long)key, op_pos);
    if (key >= vm->n_memo) {
        size_t nn = vm->n_memo ? vm->n_memo : 64;
        while (nn <= key) nn *= 2;
        if (nn > vm->max_memo) nn = vm->max_memo;
        uint32_t *m = sam_realloc(vm->memo, nn * sizeof *m);
        if (!m) return SAM_ERR(SAM2D_ERR_NOMEM, "pickle: out of memory for the memo");
        memset(m + vm->n_memo, 0, (nn - vm->n_memo) * sizeof *m);
        vm->memo = m;
        vm->n_memo = nn;
    }
    if (!vm->memo[key]) vm->memo_count++;
    vm->memo[key] = vm->stack[vm->n_stack - 1] + 1;
    return SAM2D_OK;
}

static sam2d_status memo_get(vm_t *vm, uint64_t key, size_t op_pos) {
    if (key >= vm->n_memo || !vm->memo[key])
        return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: memo key %llu read before it was set (offset %zu)", (unsigned long long)key, op_pos);
    return push(vm, vm->memo[key] - 1);
}

static sam2d_status push_int(vm_t *vm, int64_t v) {
    pk_obj *o;
    SAM_TRY(push_new(vm, K_INT, &o));
    o->u.i = v;
    return SAM2D_OK;
}

static sam2d_status push_str(vm_t *vm, size_t n, size_t op_pos) {
    const uint8_t *b;
    if (!read_bytes(vm, n, &b))
        return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: string of %zu bytes at offset %zu runs past the end of the pickle", n, op_pos);
    if (n > UINT32_MAX) return SAM_ERR(SAM2D_ERR_LIMIT, "pickle: string too long at offset %zu", op_pos);
    pk_obj *o;
    SAM_TRY(push_new(vm, K_STR, &o));
    o->u.s = b;
    o->n = (uint32_t)n;
    return SAM2D_OK;
}

static int str_eq(const pk_obj *o, const char *s) {
    size_t n = strlen(s);
    return o->kind == K_STR && o->n == n && memcmp(o->u.s, s, n) == 0;
}

/* module + name as written in the pickle -> allowed global, or a refusal naming it. */
static sam2d_status resolve_global(vm_t *vm, const uint8_t *mod, size_t mlen, const uint8_t *name, size_t nlen, size_t op_pos) {
    for (size_t i = 0; i < sizeof allowed_globals / sizeof *allowed_globals; i++) {
        if (strlen(allowed_globals[i].module) == mlen && memcmp(allowed_globals[i].module, mod, mlen) == 0 &&
            strlen(allowed_globals[i].name) == nlen && memcmp(allowed_globals[i].name, name, nlen) == 0) {
            pk_obj *o;
            SAM_TRY(push_new(vm, K_GLOBAL, &o));
            o->sub = allowed_globals[i].global;
            o->u.i = allowed_globals[i].dtype;
            return SAM2D_OK;
        }
    }
    /* print at most 100 bytes of each part, non-printables as '?' */
    char m[101], nm[101];
    size_t ml = mlen < 100 ? mlen : 100, nl = nlen < 100 ? nlen : 100;
    for (size_t i = 0; i < ml; i++) m[i] = mod[i] >= 32 && mod[i] < 127 ? (char)mod[i] : '?';
    for (size_t i = 0; i < nl; i++) nm[i] = name[i] >= 32 && name[i] < 127 ? (char)name[i] : '?';
    m[ml] = nm[nl] = 0;
    return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                   "pickle: refusing global '%s.%s' at offset %zu: only state-dict types (OrderedDict, torch tensor "
                   "rebuild functions, torch storages) may appear in a checkpoint; nothing is executed",
                   m, nm, op_pos);
}

static uint64_t hash_key(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* ('storage', StorageClass, key, location, numel) -> storage value, shared by key. */
static sam2d_status persistent_load(vm_t *vm, uint32_t pid_idx, size_t op_pos) {
    const pk_obj *pid = &vm->objs[pid_idx];
    if (pid->kind != K_TUPLE || pid->n != 5 || !str_eq(&vm->objs[vm->pool[pid->u.first]], "storage"))
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                       "pickle: persistent id at offset %zu is not ('storage', type, key, location, numel)", op_pos);
    const uint32_t *it = vm->pool + pid->u.first;
    const pk_obj *cls = &vm->objs[it[1]], *key = &vm->objs[it[2]], *loc = &vm->objs[it[3]], *numel = &vm->objs[it[4]];
    if (cls->kind != K_GLOBAL || cls->sub != G_STORAGE)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: persistent id at offset %zu does not name a torch storage class", op_pos);
    if (key->kind != K_STR || key->n == 0 || key->n > 64 || loc->kind != K_STR || numel->kind != K_INT || numel->u.i < 0)
        return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: malformed storage persistent id at offset %zu", op_pos);
    for (uint32_t i = 0; i < key->n; i++) {
        uint8_t c = key->u.s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-'))
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: storage key at offset %zu has an invalid character", op_pos);
    }
    uint64_t h = hash_key(key->u.s, key->n);
    if (vm->n_storages * 2 + 2 > vm->hash_cap) {
        size_t nc = vm->hash_cap ? vm->hash_cap * 2 : 256;
        uint32_t *nh = sam_calloc(nc, sizeof *nh);
        if (!nh) return SAM_ERR(SAM2D_ERR_NOMEM, "pickle: out of memory");
        for (size_t i = 0; i < vm->n_storages; i++) {
            size_t j = hash_key((const uint8_t *)vm->storages[i].key, vm->key_lens[i]) & (nc - 1);
            while (nh[j]) j = (j + 1) & (nc - 1);
            nh[j] = (uint32_t)i + 1;
        }
        sam_free(vm->key_hash);
        vm->key_hash = nh;
        vm->hash_cap = nc;
    }
    size_t j = h & (vm->hash_cap - 1);
    size_t found = SIZE_MAX;
    while (vm->key_hash[j]) {
        size_t s = vm->key_hash[j] - 1;
        if (vm->key_lens[s] == key->n && memcmp(vm->storages[s].key, key->u.s, key->n) == 0) {
            found = s;
            break;
        }
        j = (j + 1) & (vm->hash_cap - 1);
    }
    if (found != SIZE_MAX) {
        const sam_pk_storage *s = &vm->storages[found];
        if ((int)s->dtype != (int)cls->u.i || s->numel != numel->u.i)
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: storage '%.*s' declared twice with different type or size (offset %zu)",
                           (int)key->n, (const char *)key->u.s, op_pos);
    } else {
        if (vm->n_storages >= vm->max_tensors * 4 + 16)
            return SAM_ERR(SAM2D_ERR_LIMIT, "pickle: too many storages (limit %zu)", vm->max_tensors * 4 + 16);
        SAM_TRY(grow((void **)&vm->storages, &vm->cap_storages, vm->n_storages + 1, sizeof *vm->storages, SIZE_MAX / 64, "storages"));
        size_t cap = vm->cap_storages; /* key_lens grows in step with storages */
        size_t *kl = sam_realloc(vm->key_lens, cap * sizeof *kl);
        if (!kl) return SAM_ERR(SAM2D_ERR_NOMEM, "pickle: out of memory");
        vm->key_lens = kl;
        found = vm->n_storages++;
        vm->storages[found].key = (const char *)key->u.s;
        vm->key_lens[found] = key->n;
        vm->storages[found].dtype = (sam_pk_dtype)cls->u.i;
        vm->storages[found].numel = numel->u.i;
        vm->key_hash[j] = (uint32_t)found + 1;
    }
    pk_obj *o;
    SAM_TRY(push_new(vm, K_STORAGE, &o));
    o->u.i = (int64_t)found;
    return SAM2D_OK;
}

static sam2d_status int_tuple(vm_t *vm, const pk_obj *t, int64_t *vals, int *n, const char *what, size_t op_pos) {
    if (t->kind != K_TUPLE) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: tensor %s is not a tuple (offset %zu)", what, op_pos);
    if (t->n > SAM2D_MAX_DIMS)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: tensor with %u dimensions (max %d) at offset %zu", t->n, SAM2D_MAX_DIMS, op_pos);
    for (uint32_t i = 0; i < t->n; i++) {
        const pk_obj *v = &vm->objs[vm->pool[t->u.first + i]];
        if (v->kind != K_INT || v->u.i < 0)
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: tensor %s holds a non-integer or negative value (offset %zu)", what, op_pos);
        vals[i] = v->u.i;
    }
    *n = (int)t->n;
    return SAM2D_OK;
}

static sam2d_status call_global(vm_t *vm, const pk_obj *fn, uint32_t args_idx, size_t op_pos) {
    const pk_obj *args = &vm->objs[args_idx];
    if (args->kind != K_TUPLE) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: REDUCE arguments are not a tuple (offset %zu)", op_pos);
    const uint32_t *a = args->n ? vm->pool + args->u.first : NULL; /* no arithmetic on a NULL pool */
    switch (fn->sub) {
    case G_ORDERED_DICT: {
        if (args->n != 0) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: OrderedDict called with arguments (offset %zu)", op_pos);
        pk_obj *o;
        return push_new(vm, K_DICT, &o);
    }
    case G_REBUILD_TENSOR_V2: {
        /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
        if (args->n != 6 && args->n != 7)
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: _rebuild_tensor_v2 takes 6 or 7 arguments, got %u (offset %zu)", args->n, op_pos);
        const pk_obj *st = &vm->objs[a[0]], *off = &vm->objs[a[1]];
        if (st->kind != K_STORAGE) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: _rebuild_tensor_v2 without a storage (offset %zu)", op_pos);
        if (off->kind != K_INT || off->u.i < 0) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: bad tensor storage offset (offset %zu)", op_pos);
        sam_pk_tensor t;
        memset(&t, 0, sizeof t);
        int nd2;
        SAM_TRY(int_tuple(vm, &vm->objs[a[2]], t.shape, &t.ndim, "size", op_pos));
        SAM_TRY(int_tuple(vm, &vm->objs[a[3]], t.stride, &nd2, "stride", op_pos));
        if (nd2 != t.ndim) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: tensor size and stride differ in length (offset %zu)", op_pos);
        t.storage = (size_t)st->u.i;
        t.offset = off->u.i;
        if (vm->n_tensors >= vm->max_tensors)
            return SAM_ERR(SAM2D_ERR_LIMIT, "pickle: more than %zu tensors", vm->max_tensors);
        SAM_TRY(grow((void **)&vm->tensors, &vm->cap_tensors, vm->n_tensors + 1, sizeof t, vm->max_tensors, "tensors"));
        vm->tensors[vm->n_tensors] = t;
        pk_obj *o;
        SAM_TRY(push_new(vm, K_TENSOR, &o));
        o->u.i = (int64_t)vm->n_tensors++;
        return SAM2D_OK;
    }
    case G_REBUILD_PARAMETER:
    case G_REBUILD_PARAMETER_STATE: {
        /* (data, requires_grad, backward_hooks[, state]): a Parameter is its data for us */
        uint32_t want = fn->sub == G_REBUILD_PARAMETER ? 3 : 4;
        if (args->n != want || vm->objs[a[0]].kind != K_TENSOR)
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: malformed _rebuild_parameter call (offset %zu)", op_pos);
        return push(vm, a[0]);
    }
    case G_REBUILD_FROM_TYPE: {
        /* tensors with Python state: the class and state do not matter for weights */
        if (args->n != 4 || vm->objs[a[0]].kind != K_GLOBAL || vm->objs[a[1]].kind != K_GLOBAL ||
            vm->objs[a[1]].sub != G_TENSOR_CLASS)
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: malformed _rebuild_from_type_v2 call (offset %zu)", op_pos);
        pk_obj inner = vm->objs[a[0]];
        /* one level only: keeps the C stack bounded whatever the input */
        if (inner.sub != G_REBUILD_TENSOR_V2 && inner.sub != G_REBUILD_PARAMETER && inner.sub != G_REBUILD_PARAMETER_STATE)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: _rebuild_from_type_v2 of an unsupported function (offset %zu)", op_pos);
        return call_global(vm, &inner, a[2], op_pos);
    }
    case G_TENSOR_CLASS:
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: tensor class called directly (offset %zu)", op_pos);
    default:
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: torch storage class called directly (offset %zu)", op_pos);
    }
}

/* ---- interpreter ---------------------------------------------------------- */

static sam2d_status run(vm_t *vm, uint32_t *result) {
    while (vm->pos < vm->len) {
        size_t op_pos = vm->pos;
        uint8_t op = vm->p[vm->pos++];
        uint64_t v;
        const uint8_t *b;
        size_t base = 0;
        pk_obj *o;
        switch (op) {
        case 0x80: /* PROTO */
            if (!read_uint(vm, 1, &v)) return truncated(op_pos);
            if (v > 5) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: protocol %llu is not supported", (unsigned long long)v);
            break;
        case 0x95: /* FRAME (protocol 4): only a length hint */
            if (!read_uint(vm, 8, &v)) return truncated(op_pos);
            break;
        case '.': /* STOP */
            if (vm->n_stack == 0 || vm->n_marks)
                return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: STOP at offset %zu with %s", op_pos,
                               vm->n_stack ? "an unclosed MARK" : "an empty stack");
            *result = vm->stack[vm->n_stack - 1];
            return SAM2D_OK;
        case '(': /* MARK */
            SAM_TRY(grow((void **)&vm->marks, &vm->cap_marks, vm->n_marks + 1, sizeof(size_t), vm->max_stack, "marks"));
            vm->marks[vm->n_marks++] = vm->n_stack;
            break;
        case '0': /* POP */
            SAM_TRY(need_stack(vm, 1, op_pos));
            vm->n_stack--;
            break;
        case '1': /* POP_MARK */
            SAM_TRY(pop_mark(vm, op_pos, &base));
            vm->n_stack = base;
            break;
        case '2': /* DUP */
            SAM_TRY(need_stack(vm, 1, op_pos));
            SAM_TRY(push(vm, vm->stack[vm->n_stack - 1]));
            break;
        case 'N': SAM_TRY(push_new(vm, K_NONE, &o)); break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            SAM_TRY(push_new(vm, K_BOOL, &o));
            o->sub = op == 0x88;
            o->u.i = op == 0x88;
            break;
        case 'J': /* BININT: signed 32-bit */
            if (!read_uint(vm, 4, &v)) return truncated(op_pos);
            SAM_TRY(push_int(vm, (int64_t)(int32_t)(uint32_t)v));
            break;
        case 'K': /* BININT1 */
            if (!read_uint(vm, 1, &v)) return truncated(op_pos);
            SAM_TRY(push_int(vm, (int64_t)v));
            break;
        case 'M': /* BININT2 */
            if (!read_uint(vm, 2, &v)) return truncated(op_pos);
            SAM_TRY(push_int(vm, (int64_t)v));
            break;
        case 0x8a: /* LONG1 */
        case 0x8b: { /* LONG4 */
            if (!read_uint(vm, op == 0x8a ? 1 : 4, &v)) return truncated(op_pos);
            if (v > 8) return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: integer of %llu bytes at offset %zu does not fit 64 bits", (unsigned long long)v, op_pos);
            if (!read_bytes(vm, (size_t)v, &b)) return truncated(op_pos);
            uint64_t u = 0;
            for (size_t i = 0; i < v; i++) u |= (uint64_t)b[i] << (8 * i);
            if (v && v < 8 && (b[v - 1] & 0x80)) u |= ~0ull << (8 * v); /* sign-extend two's complement */
            SAM_TRY(push_int(vm, (int64_t)u));
            break;
        }
        case 'G': { /* BINFLOAT: big-endian IEEE double */
            if (!read_bytes(vm, 8, &b)) return truncated(op_pos);
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = u << 8 | b[i];
            SAM_TRY(push_new(vm, K_FLOAT, &o));
            memcpy(&o->u.f, &u, sizeof u);
            break;
        }
        case 'X': case 'B': /* BINUNICODE, BINBYTES: u32 length */
            if (!read_uint(vm, 4, &v)) return truncated(op_pos);
            SAM_TRY(push_str(vm, (size_t)v, op_pos));
            break;
        case 'T': /* BINSTRING: s32 length */
            if (!read_uint(vm, 4, &v)) return truncated(op_pos);
            if (v & 0x80000000u) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: negative string length at offset %zu", op_pos);
            SAM_TRY(push_str(vm, (size_t)v, op_pos));
            break;
        case 0x8c: case 'U': case 'C': /* SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES */
            if (!read_uint(vm, 1, &v)) return truncated(op_pos);
            SAM_TRY(push_str(vm, (size_t)v, op_pos));
            break;
        case 0x8d: case 0x8e: /* BINUNICODE8, BINBYTES8 */
            if (!read_uint(vm, 8, &v)) return truncated(op_pos);
            if (v > vm->len) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: string of %llu bytes at offset %zu runs past the end of the pickle", (unsigned long long)v, op_pos);
            SAM_TRY(push_str(vm, (size_t)v, op_pos));
            break;
        case ')': /* EMPTY_TUPLE */
            SAM_TRY(make_tuple(vm, vm->n_stack));
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t n = (size_t)(op - 0x84);
            SAM_TRY(need_stack(vm, n, op_pos));
            SAM_TRY(make_tuple(vm, vm->n_stack - n));
            break;
        }
        case 't': /* TUPLE */
            SAM_TRY(pop_mark(vm, op_pos, &base));
            SAM_TRY(make_tuple(vm, base));
            break;
        case ']': SAM_TRY(push_new(vm, K_LIST, &o)); break;
        case '}': SAM_TRY(push_new(vm, K_DICT, &o)); break;
        case 'l': case 'd': { /* LIST, DICT from the items above MARK */
            SAM_TRY(pop_mark(vm, op_pos, &base));
            size_t n = vm->n_stack - base;
            if (op == 'd' && n % 2) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: DICT with an odd number of items at offset %zu", op_pos);
            uint32_t idx;
            SAM_TRY(new_obj(vm, op == 'l' ? K_LIST : K_DICT, &idx));
            if (n) SAM_TRY(extend_items(vm, idx, vm->stack + base, n));
            vm->n_stack = base;
            SAM_TRY(push(vm, idx));
            break;
        }
        case 'a': /* APPEND */
        case 's': { /* SETITEM */
            size_t n = op == 'a' ? 1 : 2;
            SAM_TRY(need_stack(vm, n + 1, op_pos));
            uint32_t target = vm->stack[vm->n_stack - n - 1];
            uint8_t want = op == 'a' ? K_LIST : K_DICT;
            if (vm->objs[target].kind != want)
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: %s on a %s at offset %zu", op == 'a' ? "APPEND" : "SETITEM",
                               kind_names[vm->objs[target].kind], op_pos);
            SAM_TRY(extend_items(vm, target, vm->stack + vm->n_stack - n, n));
            vm->n_stack -= n;
            break;
        }
        case 'e': /* APPENDS */
        case 'u': { /* SETITEMS */
            SAM_TRY(pop_mark(vm, op_pos, &base));
            if (base == 0 || base - 1 < (vm->n_marks ? vm->marks[vm->n_marks - 1] : 0))
                return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: stack underflow at offset %zu (no container below MARK)", op_pos);
            uint32_t target = vm->stack[base - 1];
            uint8_t want = op == 'e' ? K_LIST : K_DICT;
            size_t n = vm->n_stack - base;
            if (vm->objs[target].kind != want)
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: %s on a %s at offset %zu", op == 'e' ? "APPENDS" : "SETITEMS",
                               kind_names[vm->objs[target].kind], op_pos);
            if (op == 'u' && n % 2) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: SETITEMS with an odd number of items at offset %zu", op_pos);
            if (n) SAM_TRY(extend_items(vm, target, vm->stack + base, n));
            vm->n_stack = base;
            break;
        }
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *start = vm->p + vm->pos, *end = vm->p + vm->len;
            const uint8_t *nl1 = memchr(start, '\n', (size_t)(end - start));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
            if (!nl2) return truncated(op_pos);
            vm->pos = (size_t)(nl2 + 1 - vm->p);
            SAM_TRY(resolve_global(vm, start, (size_t)(nl1 - start), nl1 + 1, (size_t)(nl2 - nl1 - 1), op_pos));
            break;
        }
        case 0x93: { /* STACK_GLOBAL: module and name strings on the stack */
            SAM_TRY(need_stack(vm, 2, op_pos));
            const pk_obj *m = &vm->objs[vm->stack[vm->n_stack - 2]], *n = &vm->objs[vm->stack[vm->n_stack - 1]];
            if (m->kind != K_STR || n->kind != K_STR)
                return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: STACK_GLOBAL without strings at offset %zu", op_pos);
            const uint8_t *ms = m->u.s, *ns = n->u.s;
            size_t ml = m->n, nl = n->n;
            vm->n_stack -= 2;
            SAM_TRY(resolve_global(vm, ms, ml, ns, nl, op_pos));
            break;
        }
        case 'R': { /* REDUCE: callable(*args) */
            SAM_TRY(need_stack(vm, 2, op_pos));
            uint32_t fn = vm->stack[vm->n_stack - 2], args = vm->stack[vm->n_stack - 1];
            if (vm->objs[fn].kind != K_GLOBAL)
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: REDUCE calls a %s at offset %zu", kind_names[vm->objs[fn].kind], op_pos);
            vm->n_stack -= 2;
            pk_obj f = vm->objs[fn]; /* copy: the object array may move */
            SAM_TRY(call_global(vm, &f, args, op_pos));
            break;
        }
        case 'Q': { /* BINPERSID */
            SAM_TRY(need_stack(vm, 1, op_pos));
            uint32_t pid = vm->stack[--vm->n_stack];
            SAM_TRY(persistent_load(vm, pid, op_pos));
            break;
        }
        case 'b': { /* BUILD: only the OrderedDict `_metadata` attribute, which we ignore */
            SAM_TRY(need_stack(vm, 2, op_pos));
            uint32_t target = vm->stack[vm->n_stack - 2], state = vm->stack[vm->n_stack - 1];
            uint8_t sk = vm->objs[state].kind;
            if (vm->objs[target].kind != K_DICT || (sk != K_DICT && sk != K_TUPLE && sk != K_NONE))
                return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "pickle: BUILD of a %s from a %s at offset %zu",
                               kind_names[vm->objs[target].kind], kind_names[sk], op_pos);
            vm->n_stack--;
            break;
        }
        case 'q': /* BINPUT */
            if (!read_uint(vm, 1, &v)) return truncated(op_pos);
            SAM_TRY(memo_put(vm, v, op_pos));
            break;
        case 'r': /* LONG_BINPUT */
            if (!read_uint(vm, 4, &v)) return truncated(op_pos);
            SAM_TRY(memo_put(vm, v, op_pos));
            break;
        case 0x94: /* MEMOIZE */
            SAM_TRY(memo_put(vm, vm->memo_count, op_pos));
            break;
        case 'h': /* BINGET */
            if (!read_uint(vm, 1, &v)) return truncated(op_pos);
            SAM_TRY(memo_get(vm, v, op_pos));
            break;
        case 'j': /* LONG_BINGET */
            if (!read_uint(vm, 4, &v)) return truncated(op_pos);
            SAM_TRY(memo_get(vm, v, op_pos));
            break;
        case 'i': case 'o': case 0x81: case 0x92: case 'P': case 0x82: case 0x83: case 0x84: case 'I': case 'L':
        case 'F': case 'S': case 'V': case 'p': case 'g':
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED,
                           "pickle: opcode '%c' (0x%02x) at offset %zu is not allowed in a checkpoint "
                           "(object construction or text protocol)",
                           op >= 32 && op < 127 ? op : '?', op, op_pos);
        default:
            return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: unknown opcode 0x%02x at offset %zu", op, op_pos);
        }
    }
    return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: ended after %zu bytes without STOP (truncated)", vm->len);
}

/* ---- result --------------------------------------------------------------- */

static void vm_free(vm_t *vm) {
    for (size_t i = 0; i < vm->n_objs; i++)
        if (vm->objs[i].kind == K_LIST || vm->objs[i].kind == K_DICT) sam_free(vm->objs[i].u.items);
    sam_free(vm->objs);
    sam_free(vm->stack);
    sam_free(vm->marks);
    sam_free(vm->pool);
    sam_free(vm->memo);
    sam_free(vm->storages);
    sam_free(vm->key_lens);
    sam_free(vm->key_hash);
    sam_free(vm->tensors);
}

void sam_pickle_state_dict_free(sam_pk_state_dict *sd) {
    if (!sd) return;
    sam_free(sd->storages);
    sam_free(sd->tensors);
    sam_free(sd->strings);
    memset(sd, 0, sizeof *sd);
}

/* Copy the tensors of dict `d` (and the storages they use) out of the VM. */
static sam2d_status extract(vm_t *vm, const pk_obj *d, sam_pk_state_dict *out) {
    size_t n_t = 0, bytes = 0;
    for (uint32_t i = 0; i + 1 < d->n; i += 2) {
        const pk_obj *k = &vm->objs[d->u.items[i]], *val = &vm->objs[d->u.items[i + 1]];
        if (val->kind != K_TENSOR) continue; /* tolerate simple non-tensor entries */
        if (k->kind != K_STR) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: state-dict key of a tensor is a %s, not a string", kind_names[k->kind]);
        if (memchr(k->u.s, 0, k->n)) return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: tensor name with a NUL byte");
        n_t++;
        bytes += (size_t)k->n + 1;
    }
    if (n_t == 0)
        return SAM_ERR(SAM2D_ERR_FORMAT, "pickle: no tensors found (expected {'model': state_dict} or a state dict)");
    if (n_t > vm->max_tensors) return SAM_ERR(SAM2D_ERR_LIMIT, "pickle: more than %zu tensors", vm->max_tensors);
    for (size_t i = 0; i < vm->n_storages; i++) bytes += vm->key_lens[i] + 1;
    out->tensors = sam_calloc(n_t, sizeof *out->tensors);
    out->storages = sam_calloc(vm->n_storages ? vm->n_storages : 1, sizeof *out->storages);
    out->strings = sam_malloc(bytes ? bytes : 1);
    if (!out->tensors || !out->storages || !out->strings) return SAM_ERR(SAM2D_ERR_NOMEM, "pickle: out of memory");
    char *s = out->strings;
    for (size_t i = 0; i < vm->n_storages; i++) {
        out->storages[i] = vm->storages[i];
        memcpy(s, vm->storages[i].key, vm->key_lens[i]);
        s[vm->key_lens[i]] = 0;
        out->storages[i].key = s;
        s += vm->key_lens[i] + 1;
    }
    out->n_storages = vm->n_storages;
    for (uint32_t i = 0; i + 1 < d->n; i += 2) {
        const pk_obj *k = &vm->objs[d->u.items[i]], *val = &vm->objs[d->u.items[i + 1]];
        if (val->kind != K_TENSOR) continue;
        sam_pk_tensor *t = &out->tensors[out->n_tensors++];
        *t = vm->tensors[val->u.i];
        memcpy(s, k->u.s, k->n);
        s[k->n] = 0;
        t->name = s;
        s += k->n + 1;
    }
    return SAM2D_OK;
}

sam2d_status sam_pickle_state_dict(const uint8_t *pkl, size_t len, const sam_pk_limits *lim, sam_pk_state_dict *out) {
    memset(out, 0, sizeof *out);
    if (!pkl && len) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "pickle: NULL buffer");
    vm_t vm;
    memset(&vm, 0, sizeof vm);
    vm.p = pkl;
    vm.len = len;
    vm.max_tensors = lim && lim->max_tensors ? lim->max_tensors : 100000;
    vm.max_objects = lim && lim->max_objects ? lim->max_objects : (size_t)1 << 24;
    vm.max_stack = lim && lim->max_stack ? lim->max_stack : (size_t)1 << 20;
    if (vm.max_objects > UINT32_MAX - 1) vm.max_objects = UINT32_MAX - 1;
    /* a real pickler numbers memo entries consecutively, each costing >= 2 bytes */
    vm.max_memo = len < 256 ? 256 : len;
    uint32_t root = 0;
    sam2d_status st = run(&vm, &root);
    if (st == SAM2D_OK) {
        const pk_obj *top = &vm.objs[root];
        if (top->kind != K_DICT) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "pickle: top-level value is a %s, expected a dict", kind_names[top->kind]);
        } else {
            const pk_obj *sd = top;
            for (uint32_t i = 0; i + 1 < top->n; i += 2) {
                if (str_eq(&vm.objs[top->u.items[i]], "model")) {
                    const pk_obj *m = &vm.objs[top->u.items[i + 1]];
                    if (m->kind == K_DICT) sd = m;
                    else if (m->kind != K_TENSOR) /* a tensor named "model": top is the state dict */
                        st = SAM_ERR(SAM2D_ERR_FORMAT, "pickle: checkpoint['model'] is a %s, expected a state dict", kind_names[m->kind]);
                }
            }
            if (st == SAM2D_OK) st = extract(&vm, sd, out);
        }
    }
    vm_free(&vm);
    if (st != SAM2D_OK) sam_pickle_state_dict_free(out);
    return st;
}
