/* Golden-folder replay: manifest helpers and the image scenario. */
#include "predictor/replay.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "sam2d/image_predictor.h"

/* ------------------------------------------------------------------ helpers */

const char *sam_replay_path(const sam_replay_ctx *ctx, const char *rel, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", ctx->dir, rel);
    return buf;
}

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

sam2d_status sam_replay_mkdirs(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "mkdirs: bad path");
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return SAM_ERR(SAM2D_ERR_IO, "cannot create directory %s: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
    return SAM2D_OK;
}

sam2d_status sam_replay_write_npy(const char *out_dir, const char *rel, const float *data, int ndim,
                                  const int64_t *shape) {
    char path[4096];
    if (strstr(rel, "..")) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "result name '%s' leaves the output folder", rel);
    snprintf(path, sizeof path, "%s/%s", out_dir, rel);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        SAM_TRY(sam_replay_mkdirs(path));
        *slash = '/';
    }
    return sam_npy_write_f32(path, data, ndim, shape);
}

const char *sam_replay_result_name(const json_t *entry) {
    if (json_is_string(entry)) return json_string_value(entry);
    if (json_is_object(entry)) {
        const char *s = json_string_value(json_object_get(entry, "logical_name"));
        if (s) return s;
        return json_string_value(json_object_get(entry, "file"));
    }
    return NULL;
}

/* Frames sorted as SAM 2 sorts them: by the integer value of the file stem. */
typedef struct {
    long long key;
    char *path;
} frame_ent;

static int frame_cmp(const void *a, const void *b) {
    const frame_ent *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->path, y->path);
}

static bool is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot) return false;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

static sam2d_status list_frames(sam_replay_ctx *ctx, const char *folder) {
    DIR *d = opendir(folder);
    if (!d) return SAM2D_OK; /* a manifest without frames may still be replayed partly */
    frame_ent *ents = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    sam2d_status st = SAM2D_OK;
    while ((de = readdir(d))) {
        if (!is_image_name(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            frame_ent *ne = sam_realloc(ents, (size_t)cap * sizeof(*ents));
            if (!ne) {
                st = SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
                break;
            }
            ents = ne;
        }
        size_t len = strlen(folder) + strlen(de->d_name) + 2;
        ents[n].path = sam_malloc(len);
        if (!ents[n].path) {
            st = SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
            break;
        }
        snprintf(ents[n].path, len, "%s/%s", folder, de->d_name);
        ents[n].key = strtoll(de->d_name, NULL, 10);
        n++;
    }
    closedir(d);
    if (st != SAM2D_OK) {
        for (int i = 0; i < n; i++) sam_free(ents[i].path);
        sam_free(ents);
        return st;
    }
    qsort(ents, (size_t)n, sizeof(*ents), frame_cmp);
    ctx->frames = sam_calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!ctx->frames) {
        for (int i = 0; i < n; i++) sam_free(ents[i].path);
        sam_free(ents);
        return SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
    }
    for (int i = 0; i < n; i++) ctx->frames[i] = ents[i].path;
    ctx->num_frames = n;
    sam_free(ents);
    return SAM2D_OK;
}

sam2d_status sam_replay_open(const char *golden_dir, sam_replay_ctx *ctx) {
    memset(ctx, 0, sizeof(*ctx));
    if (!golden_dir || strlen(golden_dir) >= sizeof ctx->dir - 64)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "replay: bad folder");
    snprintf(ctx->dir, sizeof ctx->dir, "%s", golden_dir);
    char path[4200];
    json_error_t jerr;
    ctx->manifest = json_load_file(sam_replay_path(ctx, "manifest.json", path, sizeof path), 0, &jerr);
    if (!ctx->manifest)
        return SAM_ERR(SAM2D_ERR_FORMAT, "replay: cannot read %s: %s (line %d)", path, jerr.text, jerr.line);
    /* The folder named by the manifest ("video/00000.jpg ...") or video/. */
    char folder[256] = "video";
    const char *vf = json_string_value(json_object_get(json_object_get(ctx->manifest, "video"), "folder"));
    if (vf) {
        size_t k = 0;
        while (vf[k] && vf[k] != '/' && !isspace((unsigned char)vf[k]) && k < sizeof folder - 1) k++;
        if (vf[k] == '/' && k > 0) {
            memcpy(folder, vf, k);
            folder[k] = 0;
        }
    }
    sam2d_status st = list_frames(ctx, sam_replay_path(ctx, folder, path, sizeof path));
    if (st != SAM2D_OK) sam_replay_close(ctx);
    return st;
}

sam2d_status sam_replay_load_model(sam_replay_ctx *ctx, int num_threads) {
    char ck[4200], cfg[4200];
    sam_replay_path(ctx, "model.pt", ck, sizeof ck);
    if (!file_exists(ck)) sam_replay_path(ctx, "model.safetensors", ck, sizeof ck);
    if (!file_exists(ck)) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "replay: no model.pt or model.safetensors in %s", ctx->dir);
    sam_replay_path(ctx, "config.yaml", cfg, sizeof cfg);
    sam2d_model_params p = sam2d_model_default_params();
    p.checkpoint_path = ck;
    p.config_path = file_exists(cfg) ? cfg : NULL;
    p.num_threads = num_threads;
    snprintf(ctx->checkpoint, sizeof ctx->checkpoint, "%s", ck);
    return sam2d_model_load(&p, &ctx->model);
}

void sam_replay_close(sam_replay_ctx *ctx) {
    if (ctx->manifest) json_decref(ctx->manifest);
    sam2d_model_free(ctx->model);
    for (int i = 0; i < ctx->num_frames; i++) sam_free(ctx->frames[i]);
    sam_free(ctx->frames);
    memset(ctx, 0, sizeof(*ctx));
}

sam2d_status sam_replay_load_frame(const sam_replay_ctx *ctx, int i, uint8_t **rgb, int *width, int *height) {
    if (i < 0 || i >= ctx->num_frames)
        return SAM_ERR(SAM2D_ERR_NOT_FOUND, "replay: frame %d not in the folder (%d frames)", i, ctx->num_frames);
    sam2d_status st = sam_image_decode_file(ctx->frames[i], 0, rgb, width, height);
    if (st != SAM2D_OK) return sam_error_wrap(st, "decoding %s", ctx->frames[i]);
    return SAM2D_OK;
}

/* ----------------------------------------------------------- image scenario */

/* Which frame an image_scenario step uses: "frames_decoded_u8[k] ..." or a path "video/NNNNN.jpg ...". */
static sam2d_status step_image(const sam_replay_ctx *ctx, const json_t *step, uint8_t **rgb, int *w, int *h) {
    const json_t *fi = json_object_get(step, "frame_idx");
    if (json_is_integer(fi)) return sam_replay_load_frame(ctx, (int)json_integer_value(fi), rgb, w, h);
    const char *desc = json_string_value(json_object_get(step, "image"));
    if (!desc) return sam_replay_load_frame(ctx, 0, rgb, w, h); /* the scenario's default: the first frame */
    const char *br = strchr(desc, '[');
    if (br && strncmp(desc, "frames", 6) == 0) return sam_replay_load_frame(ctx, atoi(br + 1), rgb, w, h);
    /* A path: the first word, relative to the golden folder. */
    char rel[1024];
    size_t k = 0;
    while (desc[k] && !isspace((unsigned char)desc[k]) && k < sizeof rel - 1) {
        rel[k] = desc[k];
        k++;
    }
    rel[k] = 0;
    char path[5200];
    sam_replay_path(ctx, rel, path, sizeof path);
    if (strstr(rel, "..") || !file_exists(path))
        return SAM_ERR(SAM2D_ERR_NOT_FOUND, "replay: cannot tell which image '%s' means", desc);
    sam2d_status st = sam_image_decode_file(path, 0, rgb, w, h);
    if (st != SAM2D_OK) return sam_error_wrap(st, "decoding %s", path);
    return SAM2D_OK;
}

/* The reference predictor's resize: antialias or not, as the manifest recorded it. */
static bool manifest_antialias(const json_t *man) {
    const json_t *ip = json_object_get(json_object_get(man, "resampling"), "image_predictor");
    const json_t *checks = json_object_get(ip, "checks");
    const json_t *off = json_object_get(checks, "max_abs_diff_vs_F.interpolate_bilinear_antialias_False");
    const json_t *on = json_object_get(checks, "max_abs_diff_vs_F.interpolate_bilinear_antialias_True");
    if (json_is_number(off) && json_number_value(off) == 0.0) return false;
    if (json_is_number(on) && json_number_value(on) == 0.0) return true;
    const char *beh = json_string_value(json_object_get(ip, "behaviour"));
    if (beh && (strstr(beh, "NO antialias") || strstr(beh, "antialias=False"))) return false;
    if (beh && strstr(beh, "antialias=True")) return true;
    return false; /* torchvision < 0.17, what SAM 2's reference runs used */
}

static int read_floats(const json_t *arr, float *dst, int max) {
    if (!json_is_array(arr)) return -1;
    int n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_array(v)) {
            int k = read_floats(v, dst + n, max - n);
            if (k < 0) return -1;
            n += k;
        } else {
            if (!json_is_number(v) || n >= max) return -1;
            dst[n++] = (float)json_number_value(v);
        }
    }
    return n;
}

typedef struct {
    char tag[64];
    float *best_low; /* (L, L) low-res logits of the best-IoU mask, for mask_input_from */
} step_memo;

static const json_t *find_result(const json_t *man, const char *tag) {
    const json_t *res = json_object_get(man, "image_results"), *e;
    size_t i;
    json_array_foreach(res, i, e) {
        const char *s = json_string_value(json_object_get(e, "step"));
        if (s && !strcmp(s, tag)) return e;
    }
    return NULL;
}


static bool manifest_lists(const json_t *man, const char *rel) {
    return json_object_get(json_object_get(man, "files"), rel) != NULL ||
           json_object_get(json_object_get(man, "logical_name_to_file"), rel) != NULL;
}

/* The cached features as the reference stores them: (1, C, h, w) channels-first. */
static sam2d_status write_features(const sam_replay_ctx *ctx, const sam2d_image_predictor *pred, const char *out_dir) {
    const sam2d_model_config *cfg = sam2d_model_get_config(ctx->model);
    const char *in_name = "image/preprocessed_input.npy";
    const float *img = NULL;
    if (manifest_lists(ctx->manifest, in_name) && sam2d_image_predictor_input(pred, &img) == SAM2D_OK) {
        size_t ss = (size_t)cfg->image_size * cfg->image_size;
        float *cf = sam_malloc(ss * 3 * sizeof(float));
        if (!cf) return SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
        for (size_t i = 0; i < ss; i++)
            for (int c = 0; c < 3; c++) cf[(size_t)c * ss + i] = img[i * 3 + c];
        int64_t sh[4] = {1, 3, cfg->image_size, cfg->image_size};
        sam2d_status st = sam_replay_write_npy(out_dir, in_name, cf, 4, sh);
        sam_free(cf);
        SAM_TRY(st);
    }
    const float *f[3];
    SAM_TRY(sam2d_image_predictor_features(pred, &f[0], &f[1], &f[2]));
    const char *names[3] = {"image/features_image_embed.npy", "image/features_high_res0.npy",
                            "image/features_high_res1.npy"};
    int e = cfg->image_size / cfg->backbone_stride;
    int side[3] = {e, 4 * e, 2 * e}, ch[3] = {cfg->d_model, cfg->d_model / 8, cfg->d_model / 4};
    for (int k = 0; k < 3; k++) {
        if (!f[k] || !manifest_lists(ctx->manifest, names[k])) continue;
        size_t hw = (size_t)side[k] * side[k];
        float *cf = sam_malloc(hw * ch[k] * sizeof(float));
        if (!cf) return SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
        for (size_t i = 0; i < hw; i++)
            for (int c = 0; c < ch[k]; c++) cf[(size_t)c * hw + i] = f[k][i * ch[k] + c];
        int64_t sh[4] = {1, ch[k], side[k], side[k]};
        sam2d_status st = sam_replay_write_npy(out_dir, names[k], cf, 4, sh);
        sam_free(cf);
        SAM_TRY(st);
    }
    return SAM2D_OK;
}

sam2d_status sam_replay_image(sam_replay_ctx *ctx, const char *out_dir) {
    const json_t *scen = json_object_get(ctx->manifest, "image_scenario");
    if (!json_is_array(scen) || json_array_size(scen) == 0)
        return SAM_ERR(SAM2D_ERR_NOT_FOUND, "replay: the manifest has no image_scenario");
    if (!ctx->model) return SAM_ERR(SAM2D_ERR_STATE, "replay: model not loaded");
    sam2d_image_predictor_params pp = sam2d_image_predictor_default_params();
    pp.antialias = manifest_antialias(ctx->manifest);
    sam2d_image_predictor *pred = NULL;
    SAM_TRY(sam2d_image_predictor_create(ctx->model, &pp, &pred));
    int L = sam2d_image_predictor_low_res_size(pred);
    size_t nsteps = json_array_size(scen);
    step_memo *memo = sam_calloc(nsteps, sizeof(*memo));
    float *coords = NULL, *mask_in = sam_malloc((size_t)L * L * sizeof(float));
    int *labels = NULL;
    char cur_image[1024] = "";
    bool have_image = false;
    sam2d_status st = SAM2D_OK;
    if (!memo || !mask_in) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
        goto out;
    }
    for (size_t si = 0; si < nsteps && st == SAM2D_OK; si++) {
        const json_t *step = json_array_get(scen, si);
        const char *tag = json_string_value(json_object_get(step, "tag"));
        const char *call = json_string_value(json_object_get(step, "call"));
        if (!tag) tag = "step";
        snprintf(memo[si].tag, sizeof memo[si].tag, "%s", tag);
        if (call && strcmp(call, "predict") != 0) {
            st = SAM_ERR(SAM2D_ERR_UNSUPPORTED, "replay: image_scenario call '%s' (step %s)", call, tag);
            break;
        }
        /* set_image when the step names another image than the current one */
        char key[1024];
        const json_t *fi = json_object_get(step, "frame_idx");
        if (json_is_integer(fi))
            snprintf(key, sizeof key, "#%lld", (long long)json_integer_value(fi));
        else
            snprintf(key, sizeof key, "%s", json_string_value(json_object_get(step, "image")) ?: "");
        if (!have_image || strcmp(key, cur_image) != 0) {
            uint8_t *rgb = NULL;
            int w = 0, h = 0;
            st = step_image(ctx, step, &rgb, &w, &h);
            if (st == SAM2D_OK) st = sam2d_image_predictor_set_image(pred, rgb, w, h);
            sam_free(rgb);
            if (st != SAM2D_OK) break;
            /* the first image's features, when the manifest lists them */
            if (!have_image) st = write_features(ctx, pred, out_dir);
            if (st != SAM2D_OK) break;
            snprintf(cur_image, sizeof cur_image, "%s", key);
            have_image = true;
        }
        /* prompt */
        sam2d_image_prompt q;
        memset(&q, 0, sizeof(q));
        const json_t *pc = json_object_get(step, "point_coords"), *pl = json_object_get(step, "point_labels");
        if (pc && !json_is_null(pc)) {
            int np = (int)json_array_size(pc);
            sam_free(coords);
            sam_free(labels);
            coords = sam_malloc((size_t)(np ? np : 1) * 2 * sizeof(float));
            labels = sam_malloc((size_t)(np ? np : 1) * sizeof(int));
            if (!coords || !labels) {
                st = SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
                break;
            }
            if (read_floats(pc, coords, 2 * np) != 2 * np || !json_is_array(pl) || (int)json_array_size(pl) != np) {
                st = SAM_ERR(SAM2D_ERR_FORMAT, "replay: step %s: malformed point_coords/point_labels", tag);
                break;
            }
            for (int i = 0; i < np; i++) labels[i] = (int)json_number_value(json_array_get(pl, (size_t)i)); /* 1 or 1.0 */
            q.points = coords;
            q.labels = labels;
            q.n_points = np;
        }
        float box[4];
        const json_t *bx = json_object_get(step, "box");
        if (bx && !json_is_null(bx)) {
            if (read_floats(bx, box, 4) != 4) {
                st = SAM_ERR(SAM2D_ERR_FORMAT, "replay: step %s: malformed box", tag);
                break;
            }
            q.box = box;
        }
        const char *from = json_string_value(json_object_get(step, "mask_input_from"));
        const char *mfile = json_string_value(json_object_get(step, "mask_input_file"));
        if (from) {
            const float *src = NULL;
            for (size_t j = 0; j < si; j++)
                if (!strcmp(memo[j].tag, from)) src = memo[j].best_low;
            if (!src) {
                st = SAM_ERR(SAM2D_ERR_FORMAT, "replay: step %s: mask_input_from unknown step '%s'", tag, from);
                break;
            }
            memcpy(mask_in, src, (size_t)L * L * sizeof(float));
            q.mask_input = mask_in;
        } else if (mfile) {
            char path[5200];
            sam_npy a;
            st = sam_npy_read(sam_replay_path(ctx, mfile, path, sizeof path), &a);
            if (st != SAM2D_OK) break;
            if (a.count != (int64_t)L * L) {
                sam_npy_free(&a);
                st = SAM_ERR(SAM2D_ERR_FORMAT, "replay: %s is not %dx%d", mfile, L, L);
                break;
            }
            memcpy(mask_in, a.data, (size_t)L * L * sizeof(float));
            sam_npy_free(&a);
            q.mask_input = mask_in;
        }
        const json_t *mm = json_object_get(step, "multimask_output");
        q.multimask = mm ? json_is_true(mm) : true; /* predict()'s defaults */
        q.return_logits = json_is_true(json_object_get(step, "return_logits"));

        sam2d_image_result r;
        st = sam2d_image_predictor_predict(pred, &q, &r);
        if (st != SAM2D_OK) {
            sam_error_wrap(st, "replay: step %s", tag);
            break;
        }
        int best = 0;
        for (int i = 1; i < r.num_masks; i++)
            if (r.iou[i] > r.iou[best]) best = i;
        memo[si].best_low = sam_malloc((size_t)L * L * sizeof(float));
        if (!memo[si].best_low) {
            st = SAM_ERR(SAM2D_ERR_NOMEM, "replay: out of memory");
            break;
        }
        memcpy(memo[si].best_low, r.low_res_masks + (size_t)best * L * L, (size_t)L * L * sizeof(float));

        /* results under the manifest's names (default names when it lists none) */
        const json_t *res = find_result(ctx->manifest, tag);
        char def_m[256], def_i[256], def_l[256];
        snprintf(def_m, sizeof def_m, "image/%s_masks.npy", tag);
        snprintf(def_i, sizeof def_i, "image/%s_iou_predictions.npy", tag);
        snprintf(def_l, sizeof def_l, "image/%s_low_res_masks.npy", tag);
        const char *n_m = res ? sam_replay_result_name(json_object_get(res, "masks")) : NULL;
        const char *n_i = res ? sam_replay_result_name(json_object_get(res, "iou_predictions")) : NULL;
        const char *n_l = res ? sam_replay_result_name(json_object_get(res, "low_res_masks")) : NULL;
        int64_t sh_m[3] = {r.num_masks, r.height, r.width}, sh_i[1] = {r.num_masks}, sh_l[3] = {r.num_masks, L, L};
        st = sam_replay_write_npy(out_dir, n_m ? n_m : def_m, r.masks, 3, sh_m);
        if (st == SAM2D_OK) st = sam_replay_write_npy(out_dir, n_i ? n_i : def_i, r.iou, 1, sh_i);
        if (st == SAM2D_OK) st = sam_replay_write_npy(out_dir, n_l ? n_l : def_l, r.low_res_masks, 3, sh_l);
        if (st == SAM2D_OK && q.mask_input) {
            char n_in[256];
            snprintf(n_in, sizeof n_in, "image/%s_mask_input.npy", tag);
            if (manifest_lists(ctx->manifest, n_in)) {
                int64_t sh_in[3] = {1, L, L};
                st = sam_replay_write_npy(out_dir, n_in, q.mask_input, 3, sh_in);
            }
        }
        if (st == SAM2D_OK && ctx->verbose) {
            printf("%s: %d mask(s), iou", tag, r.num_masks);
            for (int i = 0; i < r.num_masks; i++) printf(" %.6f", r.iou[i]);
            printf("\n");
        }
    }
out:
    if (memo)
        for (size_t i = 0; i < nsteps; i++) sam_free(memo[i].best_low);
    sam_free(memo);
    sam_free(coords);
    sam_free(labels);
    sam_free(mask_in);
    sam2d_image_predictor_free(pred);
    return st;
}
