/* Frame sources (video / folder / archive / single image) and the session frame store. */
#include "media/frames.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "media/archive.h"
#include "media/image_io.h"
#include "media/resize_pil.h"
#include "media/video.h"

void sam_media_limits_default(sam_media_limits *l) {
    memset(l, 0, sizeof(*l));
    l->max_frames = 300;
    l->max_dimension = 1920;
    l->oversize = SAM_OVERSIZE_REFUSE;
    l->max_input_bytes = (size_t)2 << 30;
    l->max_archive_entries = 100000;
    l->max_entry_bytes = (size_t)64 << 20;
    l->max_total_bytes = (size_t)4 << 30;
    l->max_compression_ratio = 200.0;
}

/* A whole positive number in [1, max]; else SAM2D_ERR_INVALID_ARG naming the variable. */
static sam2d_status env_int(const char *name, int max, int *out) {
    const char *v = getenv(name);
    if (!v || !*v) return SAM2D_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    while (*end == ' ') end++;
    if (errno || *end || x < 1 || x > max)
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "%s=\"%.40s\" is not a whole number from 1 to %d", name, v, max);
    *out = (int)x;
    return SAM2D_OK;
}

sam2d_status sam_media_limits_from_env(sam_media_limits *l) {
    SAM_TRY(env_int("MAX_VIDEO_FRAMES", 1000000, &l->max_frames));
    SAM_TRY(env_int("MAX_FRAME_DIMENSION", 65536, &l->max_dimension));
    /* the same variable and values as `sam2d serve` (server/settings.c) */
    const char *p = getenv("DOWNSCALE_OVERSIZE");
    if (p && *p) {
        if (!strcmp(p, "0") || !strcmp(p, "false") || !strcmp(p, "no")) l->oversize = SAM_OVERSIZE_REFUSE;
        else if (!strcmp(p, "1") || !strcmp(p, "true") || !strcmp(p, "yes")) l->oversize = SAM_OVERSIZE_DOWNSCALE;
        else return SAM_ERR(SAM2D_ERR_INVALID_ARG, "DOWNSCALE_OVERSIZE=\"%.40s\" must be 0 or 1", p);
    }
    return SAM2D_OK;
}

struct sam_frame_source {
    sam_source_kind kind;
    sam_media_limits lim;
    int count;
    int width, height;   /* what get() returns (after the downscale policy) */
    int src_w, src_h;    /* upright native size */
    double fps;
    uint8_t *bytes;      /* owned input bytes (video, archive, image) */
    size_t nbytes;
    sam_video *video;
    sam_archive ar;
    char **paths;        /* (count) folder frames in SAM 2 order */
    int *order;          /* (count) archive entry of each frame */
    sam_resize_plan *down; /* native -> (width,height) when downscaling */
    uint8_t *full;       /* (src_h, src_w, 3) native frame before downscale */
};

static sam2d_status too_many(int n, int max) {
    return SAM_ERR(SAM2D_ERR_LIMIT, "Video has too many frames (%d > %d); raise MAX_VIDEO_FRAMES", n, max);
}

/* ---- SAM 2 frame order: integer value of the stem; natural order otherwise ---- */

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int stem_is_int(const char *name) {
    const char *b = base_name(name), *dot = strrchr(b, '.');
    if (!dot || dot == b) return 0;
    for (const char *c = b; c < dot; c++)
        if (!isdigit((unsigned char)*c)) return 0;
    return dot - b <= 18;
}

static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la])) la++;
            while (isdigit((unsigned char)b[lb])) lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : *b ? -1 : 0;
}

typedef struct {
    const char *name;
    long long key;
    int idx;
} sort_item;

/* qsort has no context argument: the mode of the current sort, per thread. */
static _Thread_local int tl_numeric;
static int cmp_items(const void *pa, const void *pb) {
    const sort_item *a = pa, *b = pb;
    if (tl_numeric && a->key != b->key) return a->key < b->key ? -1 : 1;
    int c = natural_cmp(base_name(a->name), base_name(b->name));
    if (c) return c;
    c = strcmp(a->name, b->name);
    return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

/* Sort names in place order; writes the permutation into perm. */
static sam2d_status frame_order(const char **names, int n, int *perm) {
    sort_item *it = sam_malloc(sizeof(*it) * (size_t)(n ? n : 1));
    if (!it) return SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
    int numeric = 1;
    for (int i = 0; i < n; i++) {
        it[i].name = names[i];
        it[i].idx = i;
        it[i].key = 0;
        if (stem_is_int(names[i])) it[i].key = strtoll(base_name(names[i]), NULL, 10);
        else numeric = 0;
    }
    tl_numeric = numeric;
    qsort(it, (size_t)n, sizeof(*it), cmp_items);
    for (int i = 0; i < n; i++) perm[i] = it[i].idx;
    sam_free(it);
    return SAM2D_OK;
}

static int image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* ---- per-kind raw access (native size) ---- */

static sam2d_status raw_bytes(sam_frame_source *s, int i, uint8_t **d, size_t *n, const char **label) {
    *label = "";
    if (s->kind == SAM_SOURCE_FOLDER) {
        *label = s->paths[i];
        return sam_read_file(s->paths[i], s->lim.max_entry_bytes, d, n);
    }
    *label = s->ar.entries[s->order[i]].name;
    return sam_archive_read(&s->ar, s->order[i], &s->lim, d, n);
}

static sam2d_status get_native(sam_frame_source *s, int i, uint8_t *rgb) {
    if (s->kind == SAM_SOURCE_VIDEO) return sam_video_get(s->video, i, rgb);
    if (s->kind == SAM_SOURCE_IMAGE) return sam_image_decode_into(s->bytes, s->nbytes, s->src_w, s->src_h, rgb);
    uint8_t *d;
    size_t n;
    const char *label;
    SAM_TRY(raw_bytes(s, i, &d, &n, &label));
    sam2d_status st = sam_image_decode_into(d, n, s->src_w, s->src_h, rgb);
    sam_free(d);
    if (st != SAM2D_OK) return sam_error_wrap(st, "frame %d (%s)", i, label);
    return SAM2D_OK;
}

/* Check every image's header: same size for all, within limits, really an image. */
static sam2d_status probe_images(sam_frame_source *s) {
    for (int i = 0; i < s->count; i++) {
        uint8_t *d;
        size_t n;
        const char *label;
        SAM_TRY(raw_bytes(s, i, &d, &n, &label));
        int w = 0, h = 0;
        sam2d_status st = sam_image_probe(d, n, &w, &h);
        sam_free(d);
        if (st != SAM2D_OK) return sam_error_wrap(st, "frame %d (%s)", i, label);
        if (i == 0) {
            s->src_w = w;
            s->src_h = h;
        } else if (w != s->src_w || h != s->src_h) {
            return SAM_ERR(SAM2D_ERR_UNSUPPORTED, "frame %d (%s) is %dx%d but frame 0 is %dx%d: all frames must have one size",
                           i, label, w, h, s->src_w, s->src_h);
        }
    }
    return SAM2D_OK;
}

/* Size frames come out at: native, or shrunk (aspect kept) to fit max_dimension
 * under the downscale policy; SAM2D_ERR_LIMIT when oversize is refused. */
static sam2d_status target_size(int src_w, int src_h, const sam_media_limits *lim, int *w, int *h) {
    int md = lim->max_dimension;
    *w = src_w;
    *h = src_h;
    if (md <= 0 || (src_w <= md && src_h <= md)) return SAM2D_OK;
    if (lim->oversize == SAM_OVERSIZE_REFUSE)
        return SAM_ERR(SAM2D_ERR_LIMIT, "Video dimensions exceed maximum (%dx%d > %d); raise MAX_FRAME_DIMENSION",
                       src_w, src_h, md);
    double f = (double)md / (src_w > src_h ? src_w : src_h);
    *w = (int)(src_w * f + 0.5);
    *h = (int)(src_h * f + 0.5);
    if (*w < 1) *w = 1;
    if (*h < 1) *h = 1;
    if (*w > md) *w = md;
    if (*h > md) *h = md;
    return SAM2D_OK;
}

/* Apply the dimension limit / downscale policy to src_w x src_h. */
static sam2d_status apply_size_policy(sam_frame_source *s) {
    SAM_TRY(target_size(s->src_w, s->src_h, &s->lim, &s->width, &s->height));
    if (s->width == s->src_w && s->height == s->src_h) return SAM2D_OK;
    SAM_TRY(sam_resize_plan_create(s->src_w, s->src_h, s->width, s->height, 3, &s->down));
    s->full = sam_malloc((size_t)s->src_w * s->src_h * 3);
    if (!s->full) return SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory for a %dx%d frame", s->src_w, s->src_h);
    return SAM2D_OK;
}

static sam2d_status open_owned_bytes(sam_frame_source *s, sam_video_frame_fn on_frame, void *user) {
    const uint8_t *d = s->bytes;
    size_t n = s->nbytes;
    if (n == 0) return SAM_ERR(SAM2D_ERR_FORMAT, "empty upload (0 bytes): not a video, image or archive");
    if (sam_image_sniff(d, n) != SAM_IMAGE_UNKNOWN) {
        s->kind = SAM_SOURCE_IMAGE;
        s->count = 1;
        SAM_TRY(sam_image_probe(d, n, &s->src_w, &s->src_h));
        return apply_size_policy(s);
    }
    if (sam_archive_sniff(d, n) != SAM_ARCHIVE_NONE) {
        s->kind = SAM_SOURCE_ARCHIVE;
        SAM_TRY(sam_archive_open(d, n, &s->lim, &s->ar));
        if (s->lim.max_frames > 0 && s->ar.count > s->lim.max_frames) return too_many(s->ar.count, s->lim.max_frames);
        s->count = s->ar.count;
        s->order = sam_malloc(sizeof(int) * (size_t)s->count);
        const char **names = sam_malloc(sizeof(char *) * (size_t)s->count);
        if (!s->order || !names) {
            sam_free(names);
            return SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
        }
        for (int i = 0; i < s->count; i++) names[i] = s->ar.entries[i].name;
        sam2d_status st = frame_order(names, s->count, s->order);
        sam_free(names);
        SAM_TRY(st);
        SAM_TRY(probe_images(s));
        return apply_size_policy(s);
    }
    s->kind = SAM_SOURCE_VIDEO;
    /* the video layer refuses oversize itself unless we downscale afterwards */
    SAM_TRY(sam_video_open_memory_ex(d, n, &s->lim, on_frame, user, &s->video));
    s->count = sam_video_count(s->video);
    s->src_w = sam_video_width(s->video);
    s->src_h = sam_video_height(s->video);
    s->fps = sam_video_fps(s->video);
    return apply_size_policy(s);
}

static sam2d_status open_folder(sam_frame_source *s, const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return SAM_ERR(SAM2D_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
    int cap = 0, n = 0, stored = 0; /* n counts every frame, stored those kept in names */
    char **names = NULL;
    sam2d_status st = SAM2D_OK;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.' || !image_ext(de->d_name)) continue;
        if (s->lim.max_frames > 0 && n >= s->lim.max_frames) {
            n++; /* keep counting for the message */
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = sam_realloc(names, sizeof(char *) * (size_t)cap);
            if (!nn) {
                st = SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
                break;
            }
            names = nn;
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        names[n] = sam_malloc(len);
        if (!names[n]) {
            st = SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
            break;
        }
        snprintf(names[n], len, "%s/%s", dir, de->d_name);
        n++;
        stored = n;
    }
    closedir(dp);
    if (st == SAM2D_OK && n == 0) st = SAM_ERR(SAM2D_ERR_FORMAT, "no JPEG or PNG frames in folder %s", dir);
    if (st == SAM2D_OK && s->lim.max_frames > 0 && n > s->lim.max_frames) st = too_many(n, s->lim.max_frames);
    if (st != SAM2D_OK) {
        for (int i = 0; i < stored; i++) sam_free(names[i]);
        sam_free(names);
        return st;
    }
    int *perm = sam_malloc(sizeof(int) * (size_t)n);
    s->paths = sam_calloc((size_t)n, sizeof(char *));
    if (!perm || !s->paths) st = SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
    if (st == SAM2D_OK) st = frame_order((const char **)names, n, perm);
    if (st == SAM2D_OK) {
        for (int i = 0; i < n; i++) s->paths[i] = names[perm[i]];
        s->count = n;
    } else {
        for (int i = 0; i < n; i++) sam_free(names[i]);
    }
    sam_free(perm);
    sam_free(names);
    SAM_TRY(st);
    SAM_TRY(probe_images(s));
    return apply_size_policy(s);
}

static sam2d_status source_open_path(const char *path, const sam_media_limits *lim, sam_video_frame_fn on_frame,
                                     void *user, sam_frame_source **out) {
    *out = NULL;
    sam_frame_source *s = sam_calloc(1, sizeof(*s));
    if (!s) return SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
    if (lim) s->lim = *lim;
    else sam_media_limits_default(&s->lim);
    struct stat st;
    sam2d_status r;
    if (stat(path, &st) != 0) {
        r = SAM_ERR(SAM2D_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        s->kind = SAM_SOURCE_FOLDER;
        r = open_folder(s, path);
    } else {
        r = sam_read_file(path, s->lim.max_input_bytes, &s->bytes, &s->nbytes);
        if (r == SAM2D_OK) r = open_owned_bytes(s, on_frame, user);
    }
    if (r != SAM2D_OK) {
        sam_frame_source_free(s);
        /* no path prefix: the seed messages reach HTTP clients as they are, and an
         * upload's temporary path is nobody's business; I/O messages name the path */
        return r;
    }
    *out = s;
    return SAM2D_OK;
}

sam2d_status sam_frame_source_open_path(const char *path, const sam_media_limits *lim, sam_frame_source **out) {
    return source_open_path(path, lim, NULL, NULL, out);
}

static sam2d_status source_open_owned(uint8_t *data, size_t n, const sam_media_limits *lim,
                                      sam_video_frame_fn on_frame, void *user, sam_frame_source **out) {
    *out = NULL;
    sam_frame_source *s = sam_calloc(1, sizeof(*s));
    if (!s) {
        sam_free(data);
        return SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory");
    }
    if (lim) s->lim = *lim;
    else sam_media_limits_default(&s->lim);
    s->bytes = data;
    s->nbytes = data ? n : 0;
    sam2d_status r = SAM2D_OK;
    if (s->lim.max_input_bytes && n > s->lim.max_input_bytes)
        r = SAM_ERR(SAM2D_ERR_LIMIT, "upload too large (%zu bytes > %zu)", n, s->lim.max_input_bytes);
    if (r == SAM2D_OK) r = open_owned_bytes(s, on_frame, user);
    if (r != SAM2D_OK) {
        sam_frame_source_free(s);
        return r;
    }
    *out = s;
    return SAM2D_OK;
}

sam2d_status sam_frame_source_open_owned(uint8_t *data, size_t n, const sam_media_limits *lim,
                                         sam_frame_source **out) {
    return source_open_owned(data, n, lim, NULL, NULL, out);
}

/* Copy the caller's bytes (refusing oversize uploads before copying). */
static sam2d_status copy_upload(const uint8_t *data, size_t n, const sam_media_limits *lim, uint8_t **copy) {
    *copy = NULL;
    sam_media_limits dl;
    if (!lim) {
        sam_media_limits_default(&dl);
        lim = &dl;
    }
    if (lim->max_input_bytes && n > lim->max_input_bytes)
        return SAM_ERR(SAM2D_ERR_LIMIT, "upload too large (%zu bytes > %zu)", n, lim->max_input_bytes);
    if (n == 0) return SAM2D_OK;
    *copy = sam_malloc(n);
    if (!*copy) return SAM_ERR(SAM2D_ERR_NOMEM, "frames: no memory for %zu bytes", n);
    memcpy(*copy, data, n);
    return SAM2D_OK;
}

sam2d_status sam_frame_source_open_memory(const uint8_t *data, size_t n, const char *name_hint,
                                          const sam_media_limits *lim, sam_frame_source **out) {
    (void)name_hint;
    *out = NULL;
    uint8_t *copy;
    SAM_TRY(copy_upload(data, n, lim, &copy));
    return source_open_owned(copy, n, lim, NULL, NULL, out);
}

void sam_frame_source_free(sam_frame_source *s) {
    if (!s) return;
    sam_video_free(s->video);
    sam_archive_close(&s->ar);
    if (s->paths)
        for (int i = 0; i < s->count; i++) sam_free(s->paths[i]);
    sam_free(s->paths);
    sam_free(s->order);
    sam_resize_plan_free(s->down);
    sam_free(s->full);
    sam_free(s->bytes);
    sam_free(s);
}

sam_source_kind sam_frame_source_kind(const sam_frame_source *s) { return s->kind; }
int sam_frame_source_count(const sam_frame_source *s) { return s->count; }
int sam_frame_source_width(const sam_frame_source *s) { return s->width; }
int sam_frame_source_height(const sam_frame_source *s) { return s->height; }
double sam_frame_source_fps(const sam_frame_source *s) { return s->fps; }

double sam_frame_source_time(const sam_frame_source *s, int i) {
    if (s->video) return sam_video_time(s->video, i);
    return s->fps > 0 ? i / s->fps : 0;
}

size_t sam_frame_source_resident_bytes(const sam_frame_source *s) {
    size_t b = sizeof(*s) + sam_alloc_size(s->bytes) + sam_alloc_size(s->full);
    if (s->video) b += sam_video_resident_bytes(s->video);
    if (s->paths)
        for (int i = 0; i < s->count; i++) b += sam_alloc_size(s->paths[i]) + sizeof(char *);
    if (s->ar.entries) b += (size_t)s->ar.count * (sizeof(sam_archive_entry) + 32 + sizeof(int));
    if (s->down) b += sam_resize_plan_scratch_bytes(s->down);
    return b;
}

sam2d_status sam_frame_source_get(sam_frame_source *s, int i, uint8_t *rgb) {
    if (!s || !rgb) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frames: NULL argument");
    if (i < 0 || i >= s->count) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "frame %d out of range (0..%d)", i, s->count - 1);
    if (!s->down) return get_native(s, i, rgb);
    SAM_TRY(get_native(s, i, s->full));
    return sam_resize_plan_run(s->down, s->full, rgb, NULL);
}

/* ---------------- frame store ---------------- */

struct sam_frame_store {
    sam_frame_source *src;
    int S;
    sam_store_mode mode;
    int count;
    uint8_t *frames;      /* RESIZED: (count, S, S, 3) */
    int cache_n;          /* ON_DEMAND: LRU of resized frames */
    int *cache_idx;       /* (cache_n) frame held by each slot, -1 empty */
    uint64_t *cache_used; /* (cache_n) last-use tick */
    uint64_t tick;
    uint8_t *cache;       /* (cache_n, S, S, 3) */
    uint8_t *orig;        /* (H, W, 3) decode buffer */
    sam_resize_plan *plan; /* (W,H) -> (S,S) */
};

/* prefilled: (count,S,S,3) frames already resized during the open scan (ownership taken), or NULL. */
static sam2d_status store_create(sam_frame_source *src, int image_size, sam_store_mode mode, int cache_frames,
                                 uint8_t *prefilled, sam_frame_store **out) {
    *out = NULL;
    if (!src) {
        sam_free(prefilled);
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame store: no source");
    }
    if (image_size <= 0 || image_size > 8192) {
        sam_free(prefilled);
        sam_frame_source_free(src);
        return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame store: bad image size %d", image_size);
    }
    sam_frame_store *st = sam_calloc(1, sizeof(*st));
    if (!st) {
        sam_free(prefilled);
        sam_frame_source_free(src);
        return SAM_ERR(SAM2D_ERR_NOMEM, "frame store: no memory");
    }
    st->src = src;
    st->S = image_size;
    st->mode = mode;
    st->count = src->count;
    size_t fb = (size_t)image_size * image_size * 3;
    if (mode != SAM_STORE_RESIZED) {
        sam_free(prefilled);
        prefilled = NULL;
    }
    sam2d_status r = sam_resize_plan_create(src->width, src->height, image_size, image_size, 3, &st->plan);
    if (r == SAM2D_OK) {
        st->orig = sam_malloc((size_t)src->width * src->height * 3);
        if (!st->orig) r = SAM_ERR(SAM2D_ERR_NOMEM, "frame store: no memory");
    }
    if (r == SAM2D_OK && mode == SAM_STORE_RESIZED && prefilled) {
        st->frames = prefilled;
        prefilled = NULL;
    } else if (r == SAM2D_OK && mode == SAM_STORE_RESIZED) {
        st->frames = sam_malloc(fb * (size_t)st->count);
        if (!st->frames) r = SAM_ERR(SAM2D_ERR_NOMEM, "frame store: no memory for %d frames", st->count);
        /* one sequential decode pass: cheapest for video */
        for (int i = 0; r == SAM2D_OK && i < st->count; i++) {
            r = sam_frame_source_get(src, i, st->orig);
            if (r == SAM2D_OK) r = sam_resize_plan_run(st->plan, st->orig, st->frames + fb * (size_t)i, NULL);
        }
    } else if (r == SAM2D_OK) {
        st->cache_n = cache_frames < 1 ? 1 : cache_frames;
        st->cache_idx = sam_malloc(sizeof(int) * (size_t)st->cache_n);
        st->cache_used = sam_calloc((size_t)st->cache_n, sizeof(uint64_t));
        st->cache = sam_malloc(fb * (size_t)st->cache_n);
        if (!st->cache_idx || !st->cache_used || !st->cache) r = SAM_ERR(SAM2D_ERR_NOMEM, "frame store: no memory");
        else
            for (int k = 0; k < st->cache_n; k++) st->cache_idx[k] = -1;
    }
    sam_free(prefilled);
    if (mode == SAM_STORE_RESIZED) {
        /* every frame is resized now: the decode buffer and weights are not needed any more */
        sam_free(st->orig);
        st->orig = NULL;
        sam_resize_plan_free(st->plan);
        st->plan = NULL;
    }
    if (r != SAM2D_OK) {
        sam_frame_store_free(st);
        return r;
    }
    *out = st;
    return SAM2D_OK;
}

sam2d_status sam_frame_store_create(sam_frame_source *src, int image_size, sam_store_mode mode, int cache_frames,
                                    sam_frame_store **out) {
    return store_create(src, image_size, mode, cache_frames, NULL, out);
}

/* Resizes each video frame as the open scan decodes it (one decode pass for a RESIZED store). */
typedef struct {
    int S;
    sam_media_limits lim;
    int w, h;               /* size after the downscale policy */
    sam_resize_plan *down;  /* native -> (w,h), when downscaling */
    sam_resize_plan *plan;  /* (w,h) -> (S,S) */
    uint8_t *mid;           /* (h,w,3) downscaled frame */
    uint8_t *frames;        /* (cap,S,S,3) */
    int count, cap;
} prefill;

static sam2d_status prefill_frame(void *user, int idx, int expected, const uint8_t *rgb, int w, int h) {
    prefill *p = user;
    if (!p->plan) {
        SAM_TRY(target_size(w, h, &p->lim, &p->w, &p->h));
        if (p->w != w || p->h != h) {
            SAM_TRY(sam_resize_plan_create(w, h, p->w, p->h, 3, &p->down));
            p->mid = sam_malloc((size_t)p->w * p->h * 3);
            if (!p->mid) return SAM_ERR(SAM2D_ERR_NOMEM, "frame store: no memory");
        }
        SAM_TRY(sam_resize_plan_create(p->w, p->h, p->S, p->S, 3, &p->plan));
    }
    size_t fb = (size_t)p->S * p->S * 3;
    if (idx >= p->cap) {
        /* size for the container's count; grow by a quarter when it was wrong (copies are 3 MiB a frame) */
        int cap = p->cap ? p->cap + p->cap / 4 + 1 : (expected > 0 ? expected : 32);
        if (p->lim.max_frames > 0 && cap > p->lim.max_frames) cap = p->lim.max_frames;
        if (cap <= idx) cap = idx + 1;
        uint8_t *nf = sam_realloc(p->frames, fb * (size_t)cap);
        if (!nf) return SAM_ERR(SAM2D_ERR_NOMEM, "frame store: no memory for %d frames", cap);
        p->frames = nf;
        p->cap = cap;
    }
    if (p->down) {
        SAM_TRY(sam_resize_plan_run(p->down, rgb, p->mid, NULL));
        rgb = p->mid;
    }
    SAM_TRY(sam_resize_plan_run(p->plan, rgb, p->frames + fb * (size_t)idx, NULL));
    p->count = idx + 1;
    return SAM2D_OK;
}

static sam2d_status store_open(const char *path, uint8_t *owned, size_t n, const sam_media_limits *lim,
                               int image_size, sam_store_mode mode, int cache_frames, sam_frame_store **out) {
    *out = NULL;
    prefill p;
    memset(&p, 0, sizeof p);
    p.S = image_size;
    if (lim) p.lim = *lim;
    else sam_media_limits_default(&p.lim);
    int use = mode == SAM_STORE_RESIZED && image_size > 0 && image_size <= 8192;
    sam_frame_source *src = NULL;
    sam2d_status r = path ? source_open_path(path, lim, use ? prefill_frame : NULL, &p, &src)
                          : source_open_owned(owned, n, lim, use ? prefill_frame : NULL, &p, &src);
    sam_resize_plan_free(p.down);
    sam_resize_plan_free(p.plan);
    sam_free(p.mid);
    if (r != SAM2D_OK) {
        sam_free(p.frames);
        return r;
    }
    /* only a video source went through the scan; others fill the store by decoding */
    uint8_t *pre = NULL;
    if (p.frames && src->kind == SAM_SOURCE_VIDEO && p.count == src->count && p.w == src->width &&
        p.h == src->height) {
        /* give back the slack when the estimate was well over (a copy, so not for a frame or two) */
        size_t bytes = (size_t)p.count * image_size * image_size * 3;
        pre = p.cap > p.count + p.count / 8 + 1 ? sam_realloc(p.frames, bytes) : p.frames;
        if (!pre) pre = p.frames;
    } else
        sam_free(p.frames);
    return store_create(src, image_size, mode, cache_frames, pre, out);
}

sam2d_status sam_frame_store_open_path(const char *path, const sam_media_limits *lim, int image_size,
                                       sam_store_mode mode, int cache_frames, sam_frame_store **out) {
    if (!path) return SAM_ERR(SAM2D_ERR_INVALID_ARG, "frame store: no path");
    return store_open(path, NULL, 0, lim, image_size, mode, cache_frames, out);
}

sam2d_status sam_frame_store_open_owned(uint8_t *data, size_t n, const sam_media_limits *lim, int image_size,
                                        sam_store_mode mode, int cache_frames, sam_frame_store **out) {
    return store_open(NULL, data, n, lim, image_size, mode, cache_frames, out);
}

sam2d_status sam_frame_store_open_memory(const uint8_t *data, size_t n, const sam_media_limits *lim, int image_size,
                                         sam_store_mode mode, int cache_frames, sam_frame_store **out) {
    *out = NULL;
    uint8_t *copy;
    SAM_TRY(copy_upload(data, n, lim, &copy));
    return store_open(NULL, copy, n, lim, image_size, mode, cache_frames, out);
}

void sam_frame_store_free(sam_frame_store *st) {
    if (!st) return;
    sam_frame_source_free(st->src);
    sam_free(st->frames);
    sam_free(st->cache_idx);
    sam_free(st->cache_used);
    sam_free(st->cache);
    sam_free(st->orig);
    sam_resize_plan_free(st->plan);
    sam_free(st);
}

sam_frame_source *sam_frame_store_source(sam_frame_store *st) { return st->src; }
int sam_frame_store_count(const sam_frame_store *st) { return st->count; }
int sam_frame_store_image_size(const sam_frame_store *st) { return st->S; }

sam2d_status sam_frame_store_get_resized(sam_frame_store *st, int i, const uint8_t **rgb) {
    *rgb = NULL;
    if (i < 0 || i >= st->count) return SAM_ERR(SAM2D_ERR_NOT_FOUND, "frame %d out of range (0..%d)", i, st->count - 1);
    size_t fb = (size_t)st->S * st->S * 3;
    if (st->mode == SAM_STORE_RESIZED) {
        *rgb = st->frames + fb * (size_t)i;
        return SAM2D_OK;
    }
    int slot = 0;
    for (int k = 0; k < st->cache_n; k++) {
        if (st->cache_idx[k] == i) {
            st->cache_used[k] = ++st->tick;
            *rgb = st->cache + fb * (size_t)k;
            return SAM2D_OK;
        }
        if (st->cache_used[k] < st->cache_used[slot]) slot = k;
    }
    st->cache_idx[slot] = -1;
    SAM_TRY(sam_frame_source_get(st->src, i, st->orig));
    SAM_TRY(sam_resize_plan_run(st->plan, st->orig, st->cache + fb * (size_t)slot, NULL));
    st->cache_idx[slot] = i;
    st->cache_used[slot] = ++st->tick;
    *rgb = st->cache + fb * (size_t)slot;
    return SAM2D_OK;
}

sam2d_status sam_frame_store_get_input(sam_frame_store *st, int i, float *chw) {
    const uint8_t *rgb;
    SAM_TRY(sam_frame_store_get_resized(st, i, &rgb));
    sam_frame_normalize(rgb, st->S, chw);
    return SAM2D_OK;
}

sam2d_status sam_frame_store_get_original(sam_frame_store *st, int i, uint8_t *rgb) {
    return sam_frame_source_get(st->src, i, rgb);
}

size_t sam_frame_store_resident_bytes(const sam_frame_store *st) {
    size_t b = sizeof(*st) + sam_alloc_size(st->frames) + sam_alloc_size(st->cache) + sam_alloc_size(st->orig) +
               sam_alloc_size(st->cache_idx) + sam_alloc_size(st->cache_used);
    if (st->plan) b += sam_resize_plan_scratch_bytes(st->plan);
    return b + sam_frame_source_resident_bytes(st->src);
}
