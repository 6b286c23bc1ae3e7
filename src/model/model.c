/* The shared model object: config + modules + back end. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"

sam2d_model_params sam2d_model_default_params(void) {
    sam2d_model_params p;
    memset(&p, 0, sizeof(p));
    p.device = "cpu";
    return p;
}

void sam2d_default_checkpoint_path(const char *dir, const char *size, char *buf, size_t len) {
    if (!dir || !*dir) dir = "./models";
    if (!size || !*size) size = "base_plus";
    snprintf(buf, len, "%s/sam2.1_hiera_%s.safetensors", dir, size);
    bool only_safetensors = access(buf, R_OK) == 0;
    snprintf(buf, len, "%s/sam2.1_hiera_%s.pt", dir, size);
    if (only_safetensors && access(buf, R_OK) != 0) snprintf(buf, len, "%s/sam2.1_hiera_%s.safetensors", dir, size);
}

void sam_model_memory_census(const sam2d_model *m, sam_model_memory *o) {
    memset(o, 0, sizeof(*o));
    o->weights = m->weights.bytes + sam_image_encoder_weight_bytes(m->encoder) + sam_heads_weight_bytes(m->heads) +
                 sam_memory_encoder_weight_bytes(m->mem_encoder) + sam_memory_attention_weight_bytes(m->mem_attention) +
                 (m->tracker ? sam_track_weight_bytes(m->tracker) : 0);
    o->encoder_arena = m->encoder ? sam_image_encoder_arena_bytes(m->encoder) : 0;
    o->heads_scratch = sam_heads_scratch_bytes(m->heads, &o->heads_scratch_resident);
    o->memory_scratch = sam_memory_attention_scratch_bytes(m->mem_attention, &o->memory_scratch_resident);
    if (m->tracker) {
        o->track_scratch = sam_track_scratch_bytes(m->tracker);
        o->track_scratch_resident = sam_track_scratch_resident(m->tracker);
    }
}

void sam_model_lock(sam2d_model *m) { pthread_mutex_lock(&m->lock); }
void sam_model_unlock(sam2d_model *m) { pthread_mutex_unlock(&m->lock); }

void sam2d_model_free(sam2d_model *m) {
    if (!m) return;
    sam_track_free(m->tracker);
    sam_memory_attention_free(m->mem_attention);
    sam_memory_encoder_free(m->mem_encoder);
    sam_image_encoder_free(m->encoder);
    sam_heads_free(m->heads);
    sam_weight_set_free(&m->weights);
    if (m->owns_be) sam_backend_free(m->be);
    pthread_mutex_destroy(&m->lock);
    sam_free(m);
}

sam2d_status sam_model_build(const sam2d_model_config *cfg, sam_weight_loader *L, sam_backend *be, bool owns_be,
                             sam2d_model **out) {
    *out = NULL;
    sam2d_model *m = sam_calloc(1, sizeof(*m));
    if (!m) {
        sam_weight_loader_finish(L);
        if (owns_be) sam_backend_free(be);
        return SAM_ERR(SAM2D_ERR_NOMEM, "model: out of memory");
    }
    m->cfg = *cfg;
    m->be = be;
    m->owns_be = owns_be;
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->device, sizeof m->device, "%s", be && be->name ? be->name : "cpu");
    sam_weight_set_init_on(&m->weights, be);

    /* Build every module against the same loader so one message lists every problem. */
    sam_weight_set *prev_owner = L->owner;
    L->owner = &m->weights;
    m->no_mem_embed = sam_weight(L, SAM_W3(1, 1, cfg->d_model), "no_mem_embed");
    L->owner = prev_owner;
    sam2d_status st_enc = sam_image_encoder_create_from_loader(cfg, L, be, &m->encoder);
    sam2d_status st_heads = sam_heads_create_from_loader(cfg, L, be, &m->heads);
    sam2d_status st_menc = sam_memory_encoder_create_from_loader(cfg, L, be, &m->mem_encoder);
    sam2d_status st_mattn = sam_memory_attention_create_from_loader(cfg, L, be, &m->mem_attention);
    sam2d_status st_track = SAM2D_OK;
    if (st_heads == SAM2D_OK && st_menc == SAM2D_OK && st_mattn == SAM2D_OK)
        st_track = sam_track_create_from_loader(cfg, L, be, m->heads, m->mem_encoder, m->mem_attention, &m->tracker);
    sam2d_status fin = sam_weight_loader_finish(L);
    sam2d_status st = fin != SAM2D_OK    ? fin
                      : st_enc != SAM2D_OK  ? st_enc
                      : st_heads != SAM2D_OK ? st_heads
                      : st_menc != SAM2D_OK  ? st_menc
                      : st_mattn != SAM2D_OK ? st_mattn
                                            : st_track;
    if (fin != SAM2D_OK) sam_error_wrap(fin, "loading the model");
    if (st == SAM2D_OK) {
        /* the top feature level (S/16) is trunk level (levels kept after scalp) - 1 */
        int levels = cfg->num_stages - cfg->scalp;
        if (levels > 3) levels = 3;
        const size_t fh = (size_t)(cfg->image_size / cfg->backbone_stride);
        m->vision_pos = sam_weight_set_alloc(&m->weights, fh * fh * (size_t)cfg->d_model);
        st = m->vision_pos ? sam_image_encoder_pos(m->encoder, levels - 1, m->vision_pos)
                           : SAM_ERR(SAM2D_ERR_NOMEM, "model: position encoding");
    }
    if (st == SAM2D_OK) sam_weight_set_publish(&m->weights);
    if (st != SAM2D_OK) {
        sam2d_model_free(m);
        return st;
    }
    *out = m;
    return SAM2D_OK;
}

sam2d_status sam_model_create(const sam2d_model_config *cfg, const sam2d_checkpoint *ck, sam_backend *be,
                              bool owns_be, sam2d_model **out) {
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, NULL);
    return sam_model_build(cfg, &L, be, owns_be, out);
}

sam2d_status sam2d_model_load(const sam2d_model_params *params, sam2d_model **out) {
    *out = NULL;
    sam2d_model_params p = params ? *params : sam2d_model_default_params();
    if (!p.checkpoint_path) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "model: no checkpoint path");

    sam2d_checkpoint *ck = NULL;
    sam2d_checkpoint_params cp = sam2d_checkpoint_default_params();
    sam2d_status st = sam2d_checkpoint_load(p.checkpoint_path, &cp, &ck);
    if (st != SAM2D_OK) return sam_error_wrap(st, "loading %s", p.checkpoint_path);

    sam2d_model_config cfg;
    /* Without a config or preset, a YAML beside the checkpoint (same stem) wins over guessing from shapes. */
    char sibling[1024];
    const char *config_path = p.config_path;
    if (!config_path && !p.preset) {
        snprintf(sibling, sizeof sibling, "%s", p.checkpoint_path);
        char *dot = strrchr(sibling, '.'), *slash = strrchr(sibling, '/');
        if (dot && (!slash || dot > slash) && (size_t)(dot - sibling) + 6 < sizeof sibling) {
            strcpy(dot, ".yaml");
            if (access(sibling, R_OK) == 0) config_path = sibling;
        }
    }
    if (config_path)
        st = sam2d_config_load_yaml(config_path, &cfg);
    else if (p.preset)
        st = sam2d_config_preset(p.preset, &cfg);
    else
        st = sam2d_config_from_checkpoint(ck, &cfg);
    if (st == SAM2D_OK) st = sam2d_config_validate(&cfg);
    /* One message listing every missing, unexpected or mis-shaped tensor. */
    if (st == SAM2D_OK) st = sam2d_config_check_checkpoint(&cfg, ck);
    if (st != SAM2D_OK) {
        sam2d_checkpoint_free(ck);
        return st;
    }
    /* precision: the parameter, else SAM2_PRECISION, else fp32 */
    const char *prec_name = p.precision ? p.precision : getenv("SAM2_PRECISION");
    sam_precision prec = SAM_PRECISION_FP32;
    if (prec_name && *prec_name && !sam_precision_parse(prec_name, &prec)) {
        sam2d_checkpoint_free(ck);
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "%s '%s' is not fp32 or bf16",
                       p.precision ? "model: precision" : "SAM2_PRECISION", prec_name);
    }
    sam_backend *be = sam_backend_create(p.device, p.num_threads, prec);
    if (!be) {
        sam2d_checkpoint_free(ck);
        char why[256];
        snprintf(why, sizeof why, "%s", sam2d_last_error());
        return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "model: %s", why);
    }
    st = sam_model_create(&cfg, ck, be, true, out);
    /* Every module copied what it needs; the file's bytes are not kept. */
    sam2d_checkpoint_free(ck);
    return st;
}

const sam2d_model_config *sam2d_model_get_config(const sam2d_model *m) { return &m->cfg; }
int sam2d_model_image_size(const sam2d_model *m) { return m->cfg.image_size; }
const char *sam2d_model_device(const sam2d_model *m) { return m->device; }
const char *sam2d_model_precision(const sam2d_model *m) { return sam_precision_name(m->be->precision); }

void sam2d_model_describe(const sam2d_model *m, char *buf, size_t len) {
    char fam[160];
    sam2d_config_describe(&m->cfg, fam, sizeof fam);
    snprintf(buf, len, "%s, image %d, %s", fam, m->cfg.image_size, m->device);
}
