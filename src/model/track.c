#include "model/track.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "model/bf16.h"
#include "model/weights.h"

struct sam_track {
    const sam2d_model_config *cfg;
    sam2d_model_config cfg_copy;
    sam_backend *be;
    sam_heads *heads;               /* shared, not owned */
    sam_memory_encoder *menc;       /* shared, not owned */
    sam_memory_attention *mattn;    /* shared, not owned */
    int S, C, D, L, h, w, hw;

    /* own weights: const memory of the back end (host memory without one) */
    sam_weight_set weights;
    float *maskmem_tpos_enc;        /* (num_maskmem, D) const */
    float *no_mem_embed;            /* (C) const */
    float *no_mem_pos_enc;          /* (C) const */
    float *no_obj_ptr;              /* (C) const, or NULL */
    float *ptr_proj_w[3];           /* (C, C) const each; one layer when not an MLP */
    float *ptr_proj_b[3];           /* (C) const each */
    int ptr_proj_layers;            /* 0 (identity), 1 or 3 */
    float *tpos_proj_w;             /* (D, C) const, or NULL (identity) */
    float *tpos_proj_b;             /* (D) const */
    float *no_obj_embed_spatial;    /* (D) const, or NULL */
    float *mask_ds_w;               /* (4, 4) const mask_downsample conv, or NULL */
    float mask_ds_host[16];         /* host copies of it and its bias: the conv runs on the host */
    float mask_ds_b;                /* (a user's mask), so no managed page moves back per mask */
    /* buffers are host memory (CPU back end, or none): the frame is normalised
     * straight into its buffer and residency can be asked of the pages */
    bool host_buffers;

    /* Per-step buffers and the called modules' scratch share one region, laid
     * out by phase (a step runs memory attention, heads, memory encoder in
     * turn; the image encoder's input before them), so its size is the
     * largest phase, not the sum. Pages are touched only as used.
     *   always    [pix | high_res | ...
     *   attention [pix | memory | memory_pos | attention scratch]
     *   heads     [pix | high_res | dense | dec_masks | low_from_mask | heads scratch]
     *   encoder   [pix | high_res | mask_mem | mem_feat | mem_pos | encoder scratch]
     *   features  [normalised input image]
     * memory/memory_pos overlap high_res: the attention only runs before the
     * heads, and a mask used as output (which fills high_res first) skips it. */
    unsigned char *region;          /* buffer */
    size_t region_bytes;
    size_t region_heads;            /* bytes the heads' scratch got (the rest of the region after its offset) */
    float *pix;                     /* (hw, C) buffer: conditioned features */
    float *memory, *memory_pos;     /* (mem_cap, D) buffers */
    int64_t mem_cap;                /* rows */
    float *maskmem_pos;             /* (hw, D) buffer: constant sine encoding of the memory */
    bool have_maskmem_pos;
    float *sparse;                  /* (sparse_cap, C) buffer */
    float *coords;                  /* (sparse_cap, 2) host */
    int *labels;                    /* (sparse_cap) host */
    int sparse_cap;
    float *dense;                   /* (hw, C) buffer */
    float *dec_masks;               /* (4, L, L) buffer */
    float *dec_iou;                 /* (4) host (the heads fetch the IoUs) */
    float *dec_tokens;              /* (4, C) buffer */
    float *high_res;                /* (S, S) buffer */
    float *mask_mem;                /* (S, S) buffer: a caller's mask fed to the memory encoder */
    float *low_from_mask;           /* (L, L) buffer */
    float *low_host;                /* (L, L) host staging: mask_downsample of a user's mask */
    float *img_host;                /* (S, S, 3) host staging of the normalised frame (device buffers only) */
    float *mem_feat, *mem_pos;      /* (hw, D) buffers: memory encoder outputs */
    float *mlp_a, *mlp_b;           /* (C) buffers */
    float *tpos_in;                 /* (ptr_cap, C) host: sine inputs */
    float *tpos_dev;                /* (ptr_cap, C) buffer: tpos_in uploaded */
    float *tpos_out;                /* (ptr_cap, C) buffer */
    float *pos_f;                   /* (ptr_cap) host */
    sam_mem_pick *mem_pick;         /* (pick_cap) host */
    sam_ptr_pick *ptr_pick;         /* (pick_cap) host */
    int pick_cap;
    size_t scratch_bytes;
    /* one-shot test taps */
    float *tap_mem, *tap_mem_pos, *tap_mask;
    int64_t tap_cap;
    int *tap_M;
};

void sam_track_tap_memory(sam_track *t, float *memory, float *memory_pos, int64_t cap, int *M) {
    t->tap_mem = memory;
    t->tap_mem_pos = memory_pos;
    t->tap_cap = cap;
    t->tap_M = M;
}

void sam_track_tap_mem_mask(sam_track *t, float *mask) { t->tap_mask = mask; }

/* ---------------- selection (pure) ---------------- */

static int floor_div(int a, int b) {
    int q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static bool in_list(const sam_mem_pick *m, int n, int frame) {
    for (int i = 0; i < n; i++)
        if (m[i].frame == frame) return true;
    return false;
}

void sam_track_select(const sam2d_model_config *cfg, const sam_track_bank *bank, int f, bool reverse,
                      sam_mem_pick *mem, int *n_mem, sam_ptr_pick *ptr, int *n_ptr) {
    const int T = bank->num_frames;
    const int nm = cfg->num_maskmem;
    int nsel = 0;
    /* select_closest_cond_frames: every cond frame, unless a limit is set */
    const int maxc = cfg->max_cond_frames_in_attn;
    const bool all = maxc == -1 || bank->n_cond <= maxc;
    if (all) {
        for (int i = 0; i < bank->n_cond; i++) mem[nsel++] = (sam_mem_pick){bank->cond_frames[i], 0, nm - 1, true};
    } else {
        int before = -1, after = -1;
        for (int i = 0; i < bank->n_cond; i++) {
            int t = bank->cond_frames[i];
            if (t < f && (before < 0 || t > before)) before = t;
            if (t >= f && (after < 0 || t < after)) after = t;
        }
        if (before >= 0) mem[nsel++] = (sam_mem_pick){before, 0, nm - 1, true};
        if (after >= 0) mem[nsel++] = (sam_mem_pick){after, 0, nm - 1, true};
        /* then the nearest others; a stable choice over insertion order (Python's sorted) */
        while (nsel < maxc) {
            int best = -1, bestd = 0;
            for (int i = 0; i < bank->n_cond; i++) {
                int t = bank->cond_frames[i];
                if (in_list(mem, nsel, t)) continue;
                int d = abs(t - f);
                if (best < 0 || d < bestd) {
                    best = t;
                    bestd = d;
                }
            }
            if (best < 0) break;
            mem[nsel++] = (sam_mem_pick){best, 0, nm - 1, true};
        }
    }
#define UNSELECTED(t) (!all && bank->cond[(t)] && !in_list(mem, nsel, (t)))
    int nmem = nsel;
    const int stride = cfg->memory_temporal_stride_for_eval > 0 ? cfg->memory_temporal_stride_for_eval : 1;
    for (int t_pos = 1; t_pos < nm; t_pos++) {
        int t_rel = nm - t_pos;
        int prev;
        if (t_rel == 1) {
            prev = reverse ? f + t_rel : f - t_rel;
        } else if (!reverse) {
            prev = floor_div(f - 2, stride) * stride - (t_rel - 2) * stride;
        } else {
            prev = -floor_div(-(f + 2), stride) * stride + (t_rel - 2) * stride;
        }
        if (prev < 0 || prev >= T) continue;
        if (bank->non_cond[prev]) mem[nmem++] = (sam_mem_pick){prev, t_pos, nm - t_pos - 1, false};
        else if (UNSELECTED(prev)) mem[nmem++] = (sam_mem_pick){prev, t_pos, nm - t_pos - 1, true};
    }
    *n_mem = nmem;

    int np = 0;
    if (cfg->use_obj_ptrs_in_encoder) {
        int max_ptrs = T < cfg->max_obj_ptrs_in_encoder ? T : cfg->max_obj_ptrs_in_encoder;
        const int sign = reverse ? -1 : 1;
        for (int i = 0; i < nsel; i++) {
            int t = mem[i].frame;
            if (cfg->only_obj_ptrs_in_the_past_for_eval && (reverse ? t < f : t > f)) continue;
            int pos = cfg->use_signed_tpos_enc_to_obj_ptrs ? (f - t) * sign : abs(f - t);
            ptr[np++] = (sam_ptr_pick){t, pos, true};
        }
        for (int d = 1; d < max_ptrs && np < nsel + SAM_TRACK_MAX_PTRS; d++) {
            int t = reverse ? f + d : f - d;
            if (t < 0 || t >= T) break;
            if (bank->non_cond[t]) ptr[np++] = (sam_ptr_pick){t, d, false};
            else if (UNSELECTED(t)) ptr[np++] = (sam_ptr_pick){t, d, true};
        }
    }
#undef UNSELECTED
    *n_ptr = np;
}

void sam_get_1d_sine_pe(const float *pos, int n, int dim, float *out) {
    const int pe = dim / 2;
    for (int j = 0; j < pe; j++) {
        /* same float32 steps as the reference: (2 * floor(j/2)) / pe, then 10000^x */
        float e = (2.0f * (float)(j / 2)) / (float)pe;
        float dim_t = powf(10000.0f, e);
        for (int i = 0; i < n; i++) {
            float v = pos[i] / dim_t;
            out[(int64_t)i * dim + j] = sinf(v);
            out[(int64_t)i * dim + pe + j] = cosf(v);
        }
    }
}

/* ---------------- create / free ---------------- */

/* Where the tracker's tensors come from: an open checkpoint or a weight loader. */
typedef struct {
    const sam2d_checkpoint *ck;
    sam_weight_loader *L;
} weight_src;

/* One tensor into the tracker's own weight set (const memory). */
static sam2d_status load_f32(sam_track *t, weight_src *src, const char *name, bool optional, int ndim,
                             const int64_t *shape, float **dst) {
    *dst = NULL;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    if (src->L) {
        /* the tracker owns its tensors: the loader hands them to its set */
        sam_weight_set *owner = src->L->owner;
        src->L->owner = &t->weights;
        *dst = optional ? sam_weight_optional(src->L, ndim, shape, "%s", name) : sam_weight(src->L, ndim, shape, "%s", name);
        src->L->owner = owner;
        if (!*dst) return optional ? SAM2D_OK : SAM2D_ERR_MISMATCH; /* the loader holds the message */
        return SAM2D_OK;
    }
    const sam2d_tensor_info *ti = sam2d_checkpoint_find(src->ck, name);
    if (!ti) {
        if (optional) return SAM2D_OK;
        return SAM_ERR(SAM2D_ERR_MISMATCH, "checkpoint lacks %s", name);
    }
    if (ti->numel != numel)
        return SAM_ERR(SAM2D_ERR_MISMATCH, "%s has %lld values, expected %lld", name, (long long)ti->numel,
                       (long long)numel);
    *dst = sam_weight_set_alloc(&t->weights, (size_t)numel);
    if (!*dst) return SAM_ERR(SAM2D_ERR_NOMEM, "loading %s", name);
    sam2d_tensor_to_f32(ti, *dst); /* host write before publish */
    return SAM2D_OK;
}

/* Buffers of the back end (device memory on a GPU); host memory without one (tests). */
static void *buf_new(sam_track *t, size_t bytes) {
    if (!bytes) bytes = 64;
    void *p = t->be ? t->be->buf_alloc(t->be, bytes) : sam_malloc(bytes);
    if (p) t->scratch_bytes += bytes;
    return p;
}

static void buf_del(sam_track *t, void *p, size_t bytes) {
    if (!p) return;
    t->scratch_bytes -= bytes ? bytes : 64;
    if (t->be) t->be->buf_free(t->be, p);
    else sam_free(p);
}

/* Host arrays (prompts, picks, staging). */
static void *host_new(sam_track *t, size_t bytes) {
    t->scratch_bytes += bytes;
    return sam_calloc(1, bytes ? bytes : 1);
}

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Lay the region out for a bank of `rows` memory tokens (and the heads'
 * current need), growing it when either grew. Only between steps or at a
 * step's start: nothing in the region is live then. Cheap when nothing changed. */
static sam2d_status region_layout(sam_track *t, int64_t rows) {
    const size_t heads_need = al64(sam_heads_scratch_need(t->heads));
    if (rows <= t->mem_cap && heads_need <= t->region_heads && t->region) return SAM2D_OK;
    if (rows < t->mem_cap) rows = t->mem_cap;
    const size_t hw = (size_t)t->hw, C = (size_t)t->C, D = (size_t)t->D, SS = (size_t)t->S * t->S,
                 LL = (size_t)t->L * t->L;
    const size_t pixB = al64(hw * C * sizeof(float)), highB = al64(SS * sizeof(float));
    const size_t memB = al64((size_t)rows * D * sizeof(float)), featB = al64(hw * D * sizeof(float));
    const size_t denseB = al64(hw * C * sizeof(float)), decB = al64(4 * LL * sizeof(float)),
                 lowB = al64(LL * sizeof(float));
    const size_t attnB = al64(sam_memory_attention_scratch_need(t->mattn, rows));
    const size_t encB = al64(sam_memory_encoder_scratch_need(t->menc));
    const size_t oA = pixB, oB = pixB + highB, oC = pixB + highB;
    const size_t endA = oA + 2 * memB + attnB;
    const size_t endB = oB + denseB + decB + lowB + heads_need;
    const size_t endC = oC + highB + 2 * featB + encB;
    const size_t endF = al64(SS * 3 * sizeof(float));
    size_t need = endA;
    if (endB > need) need = endB;
    if (endC > need) need = endC;
    if (endF > need) need = endF;
    if (need > t->region_bytes) {
        /* the modules leave the old region before it goes */
        sam_heads_use_scratch(t->heads, NULL, 0);
        sam_memory_attention_use_scratch(t->mattn, NULL, 0);
        sam_memory_encoder_use_scratch(t->menc, NULL, 0);
        buf_del(t, t->region, t->region_bytes);
        t->region_bytes = 0;
        t->region = buf_new(t, need);
        if (!t->region)
            return SAM_ERR(SAM2D_ERR_NOMEM, "tracker scratch (%lld memory rows)", (long long)rows);
        t->region_bytes = need;
    }
    unsigned char *r = t->region;
    t->pix = (float *)r;
    t->high_res = (float *)(r + pixB);
    t->memory = (float *)(r + oA);
    t->memory_pos = (float *)(r + oA + memB);
    /* each module gets the rest of the region after its offset: slack for a
     * call larger than planned (e.g. more prompt points) before a re-layout */
    const size_t R = t->region_bytes;
    sam_memory_attention_use_scratch(t->mattn, r + oA + 2 * memB, R - (oA + 2 * memB));
    t->dense = (float *)(r + oB);
    t->dec_masks = (float *)(r + oB + denseB);
    t->low_from_mask = (float *)(r + oB + denseB + decB);
    sam_heads_use_scratch(t->heads, r + oB + denseB + decB + lowB, R - (oB + denseB + decB + lowB));
    t->mask_mem = (float *)(r + oC);
    t->mem_feat = (float *)(r + oC + highB);
    t->mem_pos = (float *)(r + oC + highB + featB);
    sam_memory_encoder_use_scratch(t->menc, r + oC + highB + 2 * featB, R - (oC + highB + 2 * featB));
    t->mem_cap = rows;
    t->region_heads = R - (oB + denseB + decB + lowB);
    return SAM2D_OK;
}

/* Host arrays grow with sam_realloc; their buffer twins are replaced (nothing in them outlives a step). */
static sam2d_status reserve_picks(sam_track *t, int n_cond) {
    int need = n_cond + t->cfg->num_maskmem + SAM_TRACK_MAX_PTRS + 1;
    if (need <= t->pick_cap) return SAM2D_OK;
    const size_t old = (size_t)t->pick_cap, C = (size_t)t->C;
    sam_mem_pick *m = sam_realloc(t->mem_pick, (size_t)need * sizeof(*m));
    if (!m) return SAM_ERR(SAM2D_ERR_NOMEM, "pick scratch");
    t->mem_pick = m;
    sam_ptr_pick *p = sam_realloc(t->ptr_pick, (size_t)need * sizeof(*p));
    if (!p) return SAM_ERR(SAM2D_ERR_NOMEM, "pick scratch");
    t->ptr_pick = p;
    float *a = sam_realloc(t->tpos_in, (size_t)need * C * sizeof(float));
    if (!a) return SAM_ERR(SAM2D_ERR_NOMEM, "pick scratch");
    t->tpos_in = a;
    float *c = sam_realloc(t->pos_f, (size_t)need * sizeof(float));
    if (!c) return SAM_ERR(SAM2D_ERR_NOMEM, "pick scratch");
    t->pos_f = c;
    buf_del(t, t->tpos_dev, old * C * sizeof(float));
    buf_del(t, t->tpos_out, old * C * sizeof(float));
    t->tpos_dev = buf_new(t, (size_t)need * C * sizeof(float));
    t->tpos_out = buf_new(t, (size_t)need * C * sizeof(float));
    t->scratch_bytes += ((size_t)need - old) * (sizeof(*m) + sizeof(*p) + (C + 1) * sizeof(float));
    t->pick_cap = need;
    if (!t->tpos_dev || !t->tpos_out) {
        buf_del(t, t->tpos_dev, (size_t)need * C * sizeof(float));
        buf_del(t, t->tpos_out, (size_t)need * C * sizeof(float));
        t->tpos_dev = t->tpos_out = NULL;
        t->pick_cap = 0; /* retried (and the buffers made) on the next step */
        return SAM_ERR(SAM2D_ERR_NOMEM, "pick scratch");
    }
    return SAM2D_OK;
}

static sam2d_status reserve_sparse(sam_track *t, int n) {
    if (n <= t->sparse_cap) return SAM2D_OK;
    const size_t old = (size_t)t->sparse_cap, C = (size_t)t->C;
    float *c = sam_realloc(t->coords, (size_t)n * 2 * sizeof(float));
    if (!c) return SAM_ERR(SAM2D_ERR_NOMEM, "prompt scratch");
    t->coords = c;
    int *l = sam_realloc(t->labels, (size_t)n * sizeof(int));
    if (!l) return SAM_ERR(SAM2D_ERR_NOMEM, "prompt scratch");
    t->labels = l;
    t->scratch_bytes += ((size_t)n - old) * (2 * sizeof(float) + sizeof(int));
    buf_del(t, t->sparse, old * C * sizeof(float));
    t->sparse = buf_new(t, (size_t)n * C * sizeof(float));
    t->sparse_cap = n;
    if (!t->sparse) {
        t->sparse_cap = 0;
        return SAM_ERR(SAM2D_ERR_NOMEM, "prompt scratch");
    }
    return SAM2D_OK;
}

void sam_track_free(sam_track *t) {
    if (!t) return;
    if (t->region) { /* the modules outlive the tracker: back to their own scratch */
        sam_heads_use_scratch(t->heads, NULL, 0);
        sam_memory_attention_use_scratch(t->mattn, NULL, 0);
        sam_memory_encoder_use_scratch(t->menc, NULL, 0);
    }
    const size_t C = (size_t)t->C, pc = (size_t)t->pick_cap;
    buf_del(t, t->region, t->region_bytes);
    buf_del(t, t->maskmem_pos, (size_t)t->hw * t->D * sizeof(float));
    buf_del(t, t->sparse, (size_t)t->sparse_cap * C * sizeof(float));
    buf_del(t, t->dec_tokens, 4 * C * sizeof(float));
    buf_del(t, t->mlp_a, C * sizeof(float));
    buf_del(t, t->mlp_b, C * sizeof(float));
    buf_del(t, t->tpos_dev, pc * C * sizeof(float));
    buf_del(t, t->tpos_out, pc * C * sizeof(float));
    void *host[] = {t->coords, t->labels, t->dec_iou, t->low_host, t->img_host, t->tpos_in,
                    t->pos_f, t->mem_pick, t->ptr_pick};
    for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++) sam_free(host[i]);
    sam_weight_set_free(&t->weights);
    sam_free(t);
}

static sam2d_status track_create(const sam2d_model_config *cfg, weight_src *src, sam_backend *be, sam_heads *heads,
                                 sam_memory_encoder *menc, sam_memory_attention *mattn, sam_track **out) {
    *out = NULL;
    if (cfg->image_size <= 0 || cfg->backbone_stride <= 0 || cfg->image_size % cfg->backbone_stride ||
        cfg->image_size % 4 || cfg->d_model <= 0 || cfg->mem_dim <= 0 || cfg->d_model % cfg->mem_dim)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "tracker: inconsistent sizes (image %d, stride %d, C %d, mem_dim %d)",
                       cfg->image_size, cfg->backbone_stride, cfg->d_model, cfg->mem_dim);
    if (cfg->num_maskmem < 0 || cfg->num_maskmem > 30)
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "tracker: num_maskmem %d", cfg->num_maskmem);
    sam_track *t = sam_calloc(1, sizeof(*t));
    if (!t) return SAM_ERR(SAM2D_ERR_NOMEM, "tracker");
    t->cfg_copy = *cfg;
    t->cfg = &t->cfg_copy;
    t->be = be;
    t->heads = heads;
    t->menc = menc;
    t->mattn = mattn;
    t->S = cfg->image_size;
    t->C = cfg->d_model;
    t->D = cfg->mem_dim;
    t->L = cfg->image_size / 4;
    t->h = t->w = cfg->image_size / cfg->backbone_stride;
    t->hw = t->h * t->w;
    sam_weight_set_init_on(&t->weights, be);
    t->host_buffers = true;
    if (be && be->device_memory) {
        size_t used = 0, total = 0;
        be->device_memory(be, &used, &total);
        t->host_buffers = total == 0; /* ops.h: both 0 for back ends on host memory */
    }
    const int C = t->C, D = t->D;
    sam2d_status st = SAM2D_OK;
    /* with a loader every problem is collected (the caller finishes it); with a checkpoint stop at the first */
    sam2d_status st_any = SAM2D_OK;
#define LOAD(dst, name, opt, ...)                                                      \
    do {                                                                               \
        if (st == SAM2D_OK || src->L) {                                                \
            sam2d_status s_ = load_f32(t, src, name, opt, __VA_ARGS__, &(dst));        \
            if (s_ != SAM2D_OK && st_any == SAM2D_OK) st_any = s_;                     \
            if (!src->L) st = s_;                                                      \
        }                                                                              \
    } while (0)
    if (cfg->num_maskmem > 0) LOAD(t->maskmem_tpos_enc, "maskmem_tpos_enc", false, SAM_W4(cfg->num_maskmem, 1, 1, D));
    LOAD(t->no_mem_embed, "no_mem_embed", false, SAM_W3(1, 1, C));
    LOAD(t->no_mem_pos_enc, "no_mem_pos_enc", true, SAM_W3(1, 1, C));
    if (cfg->pred_obj_scores && cfg->use_obj_ptrs_in_encoder) LOAD(t->no_obj_ptr, "no_obj_ptr", false, SAM_W2(1, C));
    if (cfg->use_obj_ptrs_in_encoder) {
        if (cfg->use_mlp_for_obj_ptr_proj) {
            t->ptr_proj_layers = 3;
            char name[64];
            for (int i = 0; i < 3; i++) {
                snprintf(name, sizeof(name), "obj_ptr_proj.layers.%d.weight", i);
                LOAD(t->ptr_proj_w[i], name, false, SAM_W2(C, C));
                snprintf(name, sizeof(name), "obj_ptr_proj.layers.%d.bias", i);
                LOAD(t->ptr_proj_b[i], name, false, SAM_W1(C));
            }
        } else {
            t->ptr_proj_layers = 1;
            LOAD(t->ptr_proj_w[0], "obj_ptr_proj.weight", false, SAM_W2(C, C));
            LOAD(t->ptr_proj_b[0], "obj_ptr_proj.bias", false, SAM_W1(C));
        }
        float *mb = NULL;
        LOAD(t->mask_ds_w, "mask_downsample.weight", false, SAM_W4(1, 1, 4, 4));
        LOAD(mb, "mask_downsample.bias", false, SAM_W1(1));
        if (mb) t->mask_ds_b = mb[0]; /* read on the host before publish */
        if (t->mask_ds_w) memcpy(t->mask_ds_host, t->mask_ds_w, sizeof t->mask_ds_host);
    }
    if (cfg->proj_tpos_enc_in_obj_ptrs) {
        LOAD(t->tpos_proj_w, "obj_ptr_tpos_proj.weight", false, SAM_W2(D, C));
        LOAD(t->tpos_proj_b, "obj_ptr_tpos_proj.bias", false, SAM_W1(D));
    }
    if (cfg->no_obj_embed_spatial) LOAD(t->no_obj_embed_spatial, "no_obj_embed_spatial", false, SAM_W2(1, D));
#undef LOAD
    if (st_any != SAM2D_OK) st = st_any;
    if (st != SAM2D_OK) {
        sam_track_free(t);
        return st;
    }
    sam_weight_set_publish(&t->weights); /* no host write after this */
    const int64_t hw = t->hw;
    t->maskmem_pos = buf_new(t, (size_t)hw * D * sizeof(float));
    t->dec_tokens = buf_new(t, (size_t)4 * C * sizeof(float));
    t->mlp_a = buf_new(t, (size_t)C * sizeof(float));
    t->mlp_b = buf_new(t, (size_t)C * sizeof(float));
    t->dec_iou = host_new(t, 4 * sizeof(float));
    t->low_host = host_new(t, (size_t)t->L * t->L * sizeof(float));
    if (!t->maskmem_pos || !t->dec_iou || !t->dec_tokens || !t->mlp_a || !t->mlp_b || !t->low_host) {
        sam_track_free(t);
        return SAM_ERR(SAM2D_ERR_NOMEM, "tracker scratch");
    }
    /* the usual bank: one cond frame + num_maskmem-1 previous frames + pointers */
    int64_t rows = (int64_t)(cfg->num_maskmem > 0 ? cfg->num_maskmem : 1) * hw +
                   (int64_t)(cfg->max_obj_ptrs_in_encoder + 1) * (C / D);
    if ((st = region_layout(t, rows)) != SAM2D_OK || (st = reserve_picks(t, 4)) != SAM2D_OK ||
        (st = reserve_sparse(t, 8)) != SAM2D_OK) {
        sam_track_free(t);
        return st;
    }
    *out = t;
    return SAM2D_OK;
}

sam2d_status sam_track_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                              sam_heads *heads, sam_memory_encoder *menc, sam_memory_attention *mattn,
                              sam_track **out) {
    weight_src src = {.ck = ck};
    return track_create(cfg, &src, be, heads, menc, mattn, out);
}

sam2d_status sam_track_create_from_loader(const sam2d_model_config *cfg, sam_weight_loader *L, sam_backend *be,
                                          sam_heads *heads, sam_memory_encoder *menc, sam_memory_attention *mattn,
                                          sam_track **out) {
    weight_src src = {.L = L};
    return track_create(cfg, &src, be, heads, menc, mattn, out);
}

size_t sam_track_weight_bytes(const sam_track *t) { return t->weights.bytes; }
size_t sam_track_scratch_bytes(const sam_track *t) { return t->scratch_bytes; }

size_t sam_track_scratch_resident(const sam_track *t) {
    /* host arrays, and the buffers when they are host memory (a device's are not pages of ours) */
    const void *host[] = {t->coords, t->labels, t->dec_iou, t->low_host, t->img_host, t->tpos_in,
                          t->pos_f, t->mem_pick, t->ptr_pick};
    const void *bufs[] = {t->region, t->maskmem_pos, t->sparse, t->dec_tokens, t->mlp_a, t->mlp_b,
                          t->tpos_dev, t->tpos_out};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++) n += sam_mem_resident(host[i], sam_alloc_size(host[i]));
    for (size_t i = 0; t->host_buffers && i < sizeof(bufs) / sizeof(bufs[0]); i++)
        n += sam_mem_resident(bufs[i], sam_alloc_size(bufs[i]));
    return n;
}

/* ---------------- heads wrapper ---------------- */

/* obj_ptr_proj: Linear or 3-layer MLP with ReLU between layers. */
static void project_ptr(sam_track *t, const float *tok, float *dst) {
    const int C = t->C;
    if (t->ptr_proj_layers == 0) {
        t->be->copy(t->be, dst, tok, (size_t)C * sizeof(float));
        return;
    }
    if (t->ptr_proj_layers == 1) {
        t->be->linear(t->be, dst, tok, t->ptr_proj_w[0], t->ptr_proj_b[0], 1, C, C);
        return;
    }
    t->be->linear(t->be, t->mlp_a, tok, t->ptr_proj_w[0], t->ptr_proj_b[0], 1, C, C);
    t->be->relu(t->be, t->mlp_a, t->mlp_a, C);
    t->be->linear(t->be, t->mlp_b, t->mlp_a, t->ptr_proj_w[1], t->ptr_proj_b[1], 1, C, C);
    t->be->relu(t->be, t->mlp_b, t->mlp_b, C);
    t->be->linear(t->be, dst, t->mlp_b, t->ptr_proj_w[2], t->ptr_proj_b[2], 1, C, C);
}

/* Presence handling of obj_ptr (C) buffer: lambda * ptr (fixed_no_obj_ptr, else ptr)
 * + (1 - lambda) * no_obj_ptr; lambda is the host's decision. */
static void apply_presence(sam_track *t, float *ptr, float lambda) {
    const sam2d_model_config *cfg = t->cfg;
    if (!cfg->pred_obj_scores || !t->no_obj_ptr) return;
    t->be->axpby(t->be, ptr, ptr, cfg->fixed_no_obj_ptr ? lambda : 1.0f, t->no_obj_ptr, 1.0f - lambda, t->C);
}

typedef struct {
    float *low_res;      /* (L, L) buffer: the selected mask (points into dec_masks) */
    float score;
    int best;
} heads_result;

/* _forward_sam_heads for batch 1. coords/labels: the user's points, host (n may
 * be 0, has_points false = the reference's "no point_inputs": one padding
 * point); feat (hw, C) buffer; mask_lowres (L, L) buffer or NULL. obj_ptr (C)
 * buffer written. The heads return the IoUs and the object score on the host:
 * the multimask argmax and the presence are host decisions. */
static sam2d_status forward_heads(sam_track *t, const float *feat, const sam_track_feats *f, const float *coords,
                                  const int *labels, int n, bool has_points, const float *mask_lowres,
                                  bool multimask, float *obj_ptr, heads_result *r, sam_track_step_out *diag) {
    const sam2d_model_config *cfg = t->cfg;
    const int C = t->C;
    const int64_t LL = (int64_t)t->L * t->L;
    int np = has_points ? n : 1;
    SAM_TRY(reserve_sparse(t, np + 1));
    if (has_points) {
        memcpy(t->coords, coords, (size_t)n * 2 * sizeof(float));
        memcpy(t->labels, labels, (size_t)n * sizeof(int));
    } else {
        t->coords[0] = t->coords[1] = 0.0f;
        t->labels[0] = -1;
    }
    /* boxes are passed as points, so the prompt encoder always appends a padding point */
    t->coords[2 * np] = t->coords[2 * np + 1] = 0.0f;
    t->labels[np] = -1;
    SAM_TRY(sam_prompt_encode(t->heads, t->coords, t->labels, np + 1, mask_lowres, t->sparse, t->dense));
    sam_decoder_out d = {.masks = t->dec_masks, .iou = t->dec_iou, .sam_tokens = t->dec_tokens};
    SAM_TRY(sam_mask_decode(t->heads, feat, f->high_res0, f->high_res1, t->sparse, np + 1, t->dense, multimask, &d));
    const bool appearing = d.object_score_logit > 0.0f;
    if (cfg->pred_obj_scores && !appearing)
        t->be->fill(t->be, t->dec_masks, SAM_NO_OBJ_SCORE, (int64_t)d.num_masks * LL);
    int best = 0;
    if (multimask) /* argmax: the first of equal maxima, as torch */
        for (int i = 1; i < d.num_masks; i++)
            if (d.iou[i] > d.iou[best]) best = i;
    const float *tok = t->dec_tokens;
    if (multimask && cfg->use_multimask_token_for_obj_ptr) tok = t->dec_tokens + (int64_t)best * C;
    project_ptr(t, tok, obj_ptr);
    if (cfg->pred_obj_scores) {
        float lambda = cfg->soft_no_obj_ptr ? 1.0f / (1.0f + expf(-d.object_score_logit)) : (appearing ? 1.0f : 0.0f);
        apply_presence(t, obj_ptr, lambda);
    }
    r->low_res = t->dec_masks + (int64_t)best * LL;
    r->score = cfg->pred_obj_scores ? d.object_score_logit : 10.0f; /* no score head: always present */
    r->best = best;
    if (diag) {
        diag->num_masks = d.num_masks;
        diag->multimask = multimask;
        for (int i = 0; i < d.num_masks && i < 4; i++) diag->ious[i] = d.iou[i];
    }
    return SAM2D_OK;
}

/* ---------------- memory conditioning ---------------- */

static sam2d_status prepare_memory_conditioned(sam_track *t, const sam_track_feats *f, const sam_track_bank *bank,
                                               int frame, bool init_cond, bool reverse, const float **feat_out,
                                               sam_track_step_out *diag) {
    const sam2d_model_config *cfg = t->cfg;
    const int C = t->C, D = t->D;
    const int64_t hw = t->hw;
    if (cfg->num_maskmem == 0) {
        *feat_out = f->vision_feat;
        return SAM2D_OK;
    }
    if (init_cond) {
        if (!cfg->directly_add_no_mem_embed)
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "tracker: directly_add_no_mem_embed=false is not supported");
        t->be->add_row(t->be, t->pix, f->vision_feat, t->no_mem_embed, hw, C);
        *feat_out = t->pix;
        return SAM2D_OK;
    }
    if (bank->n_cond <= 0) return SAM_ERR(SAM2D_ERR_STATE, "tracking frame %d without any conditioning frame", frame);
    SAM_TRY(reserve_picks(t, bank->n_cond));
    int n_mem = 0, n_ptr = 0;
    sam_track_select(cfg, bank, frame, reverse, t->mem_pick, &n_mem, t->ptr_pick, &n_ptr);
    const int split = C / D; /* tokens per pointer */
    int64_t rows = (int64_t)n_mem * hw + (int64_t)n_ptr * split;
    SAM_TRY(region_layout(t, rows));
    if (!t->have_maskmem_pos && n_mem > 0)
        return SAM_ERR(SAM2D_ERR_STATE, "tracker: memory position encoding unknown (no memory encoded yet)");
    sam_backend *be = t->be;
    for (int i = 0; i < n_mem; i++) {
        const sam_mem_pick *p = &t->mem_pick[i];
        const sam_frame_state *s = p->cond ? bank->cond[p->frame] : bank->non_cond[p->frame];
        if (!s || !s->maskmem) return SAM_ERR(SAM2D_ERR_STATE, "memory of frame %d was never encoded", p->frame);
        float *m = t->memory + (int64_t)i * hw * D;
        float *mp = t->memory_pos + (int64_t)i * hw * D;
        be->from_bf16(be, m, s->maskmem, hw * D); /* stored bf16, attended in float32 */
        be->add_row(be, mp, t->maskmem_pos, t->maskmem_tpos_enc + (int64_t)p->tpos_index * D, hw, D);
    }
    if (n_ptr > 0) {
        float *m = t->memory + (int64_t)n_mem * hw * D;   /* (n_ptr * split, D) buffer */
        float *mp = t->memory_pos + (int64_t)n_mem * hw * D;
        for (int i = 0; i < n_ptr; i++) {
            const sam_ptr_pick *p = &t->ptr_pick[i];
            const sam_frame_state *s = p->cond ? bank->cond[p->frame] : bank->non_cond[p->frame];
            /* a C-dim pointer becomes C/D tokens of D (reshape + permute of the reference) */
            be->copy(be, m + (int64_t)i * C, s->obj_ptr, (size_t)C * sizeof(float));
        }
        if (cfg->add_tpos_enc_to_obj_ptrs) {
            int max_ptrs = bank->num_frames < cfg->max_obj_ptrs_in_encoder ? bank->num_frames
                                                                           : cfg->max_obj_ptrs_in_encoder;
            float t_diff_max = (float)(max_ptrs - 1);
            const int tdim = cfg->proj_tpos_enc_in_obj_ptrs ? C : D;
            /* the sine encoding of a few positions: host math, one upload */
            for (int i = 0; i < n_ptr; i++) t->pos_f[i] = (float)t->ptr_pick[i].pos / t_diff_max;
            sam_get_1d_sine_pe(t->pos_f, n_ptr, tdim, t->tpos_in);
            be->to_dev(be, t->tpos_dev, t->tpos_in, (size_t)n_ptr * tdim * sizeof(float));
            const float *pe = t->tpos_dev; /* (n_ptr, D) buffer */
            if (cfg->proj_tpos_enc_in_obj_ptrs) {
                be->linear(be, t->tpos_out, t->tpos_dev, t->tpos_proj_w, t->tpos_proj_b, n_ptr, D, C);
                pe = t->tpos_out;
            }
            /* each pointer's encoding repeated over its split tokens: one strided copy per token slot */
            const size_t row = (size_t)D * sizeof(float);
            for (int k = 0; k < split; k++) be->copy2d(be, mp + (int64_t)k * D, split * row, pe, row, row, (size_t)n_ptr);
        } else {
            be->zero(be, mp, (size_t)n_ptr * split * D * sizeof(float));
        }
    }
    const int n_tok = n_ptr * split;
    if (t->tap_mem && rows <= t->tap_cap) {
        be->to_host(be, t->tap_mem, t->memory, (size_t)rows * D * sizeof(float));
        be->to_host(be, t->tap_mem_pos, t->memory_pos, (size_t)rows * D * sizeof(float));
        *t->tap_M = (int)rows;
        t->tap_mem = NULL;
    }
    /* the keys' input (memory + pos) is summed in place: memory_pos is ours and not read again */
    const float *keys = t->memory;
    if (cfg->mem_attn_pos_enc_at_cross_attn_keys) {
        t->be->add(t->be, t->memory_pos, t->memory, t->memory_pos, rows * D);
        keys = t->memory_pos;
    }
    SAM_TRY(sam_memory_attention_forward_keys(t->mattn, f->vision_feat, f->vision_pos, t->memory, keys, (int)rows,
                                              n_tok, t->h, t->w, t->pix));
    *feat_out = t->pix;
    if (diag) {
        diag->n_mem = n_mem < 32 ? n_mem : 32;
        for (int i = 0; i < diag->n_mem; i++) diag->mem[i] = t->mem_pick[i];
        diag->n_ptr = n_ptr < SAM_TRACK_MAX_PTRS ? n_ptr : SAM_TRACK_MAX_PTRS;
        for (int i = 0; i < diag->n_ptr; i++) diag->ptr[i] = t->ptr_pick[i];
        diag->num_obj_ptr_tokens = n_tok;
        diag->memory_tokens = (int)rows;
    }
    return SAM2D_OK;
}

/* ---------------- memory encoding ---------------- */

sam2d_status sam_track_encode_memory_highres(sam_track *t, const sam_track_feats *f, const float *high_res,
                                             float score, bool is_mask_from_pts, uint16_t *maskmem,
                                             float *mask_for_mem_tap) {
    const sam2d_model_config *cfg = t->cfg;
    const int64_t SS = (int64_t)t->S * t->S, hw = t->hw;
    const int D = t->D;
    sam_backend *be = t->be;
    /* our own (S, S) buffer is transformed in place (nothing reads it after),
     * so mask_mem's pages are only touched for a caller's mask */
    float *m = high_res == t->high_res ? t->high_res : t->mask_mem; /* (S, S) buffer */
    if (cfg->binarize_mask_from_pts_for_mem_enc && is_mask_from_pts) be->binarize(be, m, high_res, SS);
    else be->sigmoid(be, m, high_res, SS);
    /* scale then bias, two float32 steps as the reference */
    if (cfg->sigmoid_scale_for_mem_enc != 1.0f) be->affine(be, m, m, cfg->sigmoid_scale_for_mem_enc, 0.0f, SS);
    if (cfg->sigmoid_bias_for_mem_enc != 0.0f) be->affine(be, m, m, 1.0f, cfg->sigmoid_bias_for_mem_enc, SS);
    if (mask_for_mem_tap) be->to_host(be, mask_for_mem_tap, m, (size_t)SS * sizeof(float));
    if (t->tap_mask) {
        be->to_host(be, t->tap_mask, m, (size_t)SS * sizeof(float));
        t->tap_mask = NULL;
    }
    SAM_TRY(sam_memory_encoder_forward(t->menc, f->vision_feat, m, t->mem_feat, t->mem_pos));
    if (!t->have_maskmem_pos) {
        /* the encoder's position encoding only depends on the size: keep the first */
        be->copy(be, t->maskmem_pos, t->mem_pos, (size_t)hw * D * sizeof(float));
        t->have_maskmem_pos = true;
    }
    if (t->no_obj_embed_spatial && !(score > 0.0f)) be->add_row(be, t->mem_feat, t->mem_feat, t->no_obj_embed_spatial, hw, D);
    be->to_bf16(be, maskmem, t->mem_feat, hw * D);
    return SAM2D_OK;
}

sam2d_status sam_track_encode_memory(sam_track *t, const sam_track_feats *f, const float *pred_masks_lowres,
                                     float score, bool is_mask_from_pts, uint16_t *maskmem) {
    SAM_TRY(region_layout(t, t->mem_cap)); /* nothing live yet: the heads' need may have grown */
    t->be->resize_bilinear(t->be, t->high_res, pred_masks_lowres, 1, t->L, t->L, t->S, t->S, false);
    return sam_track_encode_memory_highres(t, f, t->high_res, score, is_mask_from_pts, maskmem, NULL);
}

/* ---------------- track_step ---------------- */

static bool use_multimask(const sam2d_model_config *cfg, bool init_cond, bool has_points, int n_points) {
    int num_pts = has_points ? n_points : 0;
    return cfg->multimask_output_in_sam && (init_cond || cfg->multimask_output_for_tracking) &&
           cfg->multimask_min_pt_num <= num_pts && num_pts <= cfg->multimask_max_pt_num;
}

sam2d_status sam_track_step(sam_track *t, const sam_track_feats *f, const sam_track_bank *bank,
                            const sam_track_step_in *in, sam_track_step_out *out) {
    const sam2d_model_config *cfg = t->cfg;
    const int S = t->S, L = t->L;
    const int64_t LL = (int64_t)L * L, SS = (int64_t)S * S;
    sam_backend *be = t->be;
    SAM_TRY(region_layout(t, t->mem_cap)); /* nothing live yet: the heads' need may have grown */
    out->n_mem = out->n_ptr = out->num_obj_ptr_tokens = out->memory_tokens = 0;
    out->num_masks = 0;
    out->multimask = false;
    const bool has_points = in->has_points && in->n_points >= 0;
    if (in->mask_input && has_points) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "track step: points and mask together");
    const float *high_res = NULL; /* (S, S) mask for the memory encoder */
    if (in->mask_input && cfg->use_mask_input_as_output_without_sam) {
        /* _use_mask_as_output: the mask itself becomes the output, SAM only gives obj_ptr */
        be->to_dev(be, t->high_res, in->mask_input, (size_t)SS * sizeof(float));
        be->affine(be, t->high_res, t->high_res, 20.0f, -10.0f, SS);
        high_res = t->high_res;
        be->resize_bilinear(be, out->pred_masks, t->high_res, 1, S, S, L, L, true);
        bool any = false; /* the user's mask is host data: decided here */
        for (int64_t i = 0; i < SS && !any; i++) any = in->mask_input[i] > 0.0f;
        const float lambda = any ? 1.0f : 0.0f;
        if (cfg->use_obj_ptrs_in_encoder) {
            /* mask_downsample: a 4x4 stride-4 conv from (S, S) to (L, L), on the
             * host from the user's mask, then uploaded */
            const float *w = t->mask_ds_host;
            for (int y = 0; y < L; y++)
                for (int x = 0; x < L; x++) {
                    float acc = 0.0f;
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++)
                            acc += w[i * 4 + j] * in->mask_input[(int64_t)(4 * y + i) * S + 4 * x + j];
                    t->low_host[(int64_t)y * L + x] = acc + t->mask_ds_b;
                }
            be->to_dev(be, t->low_from_mask, t->low_host, (size_t)LL * sizeof(float));
            heads_result r;
            SAM_TRY(forward_heads(t, f->vision_feat, f, NULL, NULL, 0, false, t->low_from_mask, false, out->obj_ptr,
                                  &r, NULL));
        } else {
            be->zero(be, out->obj_ptr, (size_t)t->C * sizeof(float));
        }
        apply_presence(t, out->obj_ptr, lambda);
        out->object_score_logit = 20.0f * lambda + -10.0f;
        out->num_masks = 1;
        out->ious[0] = 1.0f;
    } else {
        const float *feat = NULL;
        SAM_TRY(prepare_memory_conditioned(t, f, bank, in->frame_idx, in->is_init_cond_frame, in->reverse, &feat, out));
        const float *mask_prompt = in->prev_mask_logits; /* (L, L) buffer or NULL */
        if (!mask_prompt && in->mask_input) {
            /* an (S, S) mask prompt without use_mask_input_as_output: uploaded
             * (the attention, which shares high_res, is done), antialiased down to (L, L) */
            be->to_dev(be, t->high_res, in->mask_input, (size_t)SS * sizeof(float));
            be->resize_bilinear(be, t->low_from_mask, t->high_res, 1, S, S, L, L, true);
            mask_prompt = t->low_from_mask;
        }
        bool mm = use_multimask(cfg, in->is_init_cond_frame, has_points, in->n_points);
        heads_result r;
        SAM_TRY(forward_heads(t, feat, f, in->point_coords, in->point_labels, in->n_points, has_points, mask_prompt,
                              mm, out->obj_ptr, &r, out));
        be->copy(be, out->pred_masks, r.low_res, (size_t)LL * sizeof(float));
        out->object_score_logit = r.score;
    }
    if (in->run_mem_encoder && cfg->num_maskmem > 0) {
        if (!high_res) {
            be->resize_bilinear(be, t->high_res, out->pred_masks, 1, L, L, S, S, false);
            high_res = t->high_res;
        }
        SAM_TRY(sam_track_encode_memory_highres(t, f, high_res, out->object_score_logit, has_points, out->maskmem,
                                                NULL));
    }
    return SAM2D_OK;
}

/* ---------------- the model's engine (video predictor back end) ----------------
 * The model builds its video modules at load (model.c); sessions reach them
 * through this engine table. */

#include <pthread.h>

#include "model/image_encoder.h"
#include "model/model.h"
#include "model/preprocess.h"
#include "sam2d/video_predictor.h"

static sam2d_status eng_features(void *ctx, const uint8_t *frame, float *buf, sam_track_feats *f) {
    sam2d_model *model = ctx;
    const sam2d_model_config *cfg = &model->cfg;
    const int S = cfg->image_size;
    sam_track *t = model->tracker;
    /* the normalised input lives in the tracker's region, idle while the image
     * encoder runs (the model lock is held around engine calls) */
    float *img = (float *)t->region; /* (S, S, 3) buffer: normalised input */
    if (t->host_buffers) {
        sam_normalize_u8(frame, S, img); /* the buffer is host memory: no staging */
    } else {
        /* normalised on the host into a staging array made once, then one upload */
        const size_t bytes = (size_t)S * S * 3 * sizeof(float);
        if (!t->img_host && !(t->img_host = host_new(t, bytes)))
            return SAM_ERR(SAM2D_ERR_NOMEM, "video: frame staging (%dx%d)", S, S);
        sam_normalize_u8(frame, S, t->img_host);
        t->be->to_dev(t->be, img, t->img_host, bytes);
    }
    sam_image_features feats;
    /* no position encodings: only the top level's is read (memory attention),
     * and it is the same for every frame (the model's) */
    sam_image_features_bind_ex(cfg, buf, 0, &feats);
    SAM_TRY(sam_image_encoder_forward(model->encoder, img, &feats));
    const int top = feats.num_levels - 1;
    f->vision_feat = feats.feat[top];
    f->vision_pos = model->vision_pos;
    f->high_res0 = cfg->use_high_res_features_in_sam && top >= 2 ? feats.feat[0] : NULL;
    f->high_res1 = cfg->use_high_res_features_in_sam && top >= 2 ? feats.feat[1] : NULL;
    return SAM2D_OK;
}

static sam2d_status eng_step(void *ctx, const sam_track_feats *f, const sam_track_bank *bank,
                             const sam_track_step_in *in, sam_track_step_out *out) {
    return sam_track_step(((sam2d_model *)ctx)->tracker, f, bank, in, out);
}

static sam2d_status eng_encode(void *ctx, const sam_track_feats *f, const float *lowres, float score, bool pts,
                               uint16_t *maskmem) {
    return sam_track_encode_memory(((sam2d_model *)ctx)->tracker, f, lowres, score, pts, maskmem);
}

static void eng_lock(void *ctx) { pthread_mutex_lock(&((sam2d_model *)ctx)->lock); }
static void eng_unlock(void *ctx) { pthread_mutex_unlock(&((sam2d_model *)ctx)->lock); }

sam2d_status sam_video_model_engine(struct sam2d_model *model, sam_video_engine *eng) {
    if (!model->tracker) return SAM_ERR(SAM2D_ERR_STATE, "video: the model has no video modules");
    const sam2d_model_config *cfg = &model->cfg;
    memset(eng, 0, sizeof(*eng));
    eng->ctx = model;
    eng->be = model->be;
    eng->cfg = cfg;
    eng->feat_floats = sam_image_features_floats_ex(cfg, 0);
    eng->features = eng_features;
    eng->step = eng_step;
    eng->encode = eng_encode;
    eng->lock = eng_lock;
    eng->unlock = eng_unlock;
    return SAM2D_OK;
}

sam_track *sam_video_model_tracker(struct sam2d_model *model) { return model->tracker; }

