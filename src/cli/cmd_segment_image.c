/* `sam2d segment-image IMAGE --point x,y[,label] ... --box x0,y0,x1,y1 --out DIR`:
 * one image, one prompt; binary PNG masks + scores.json. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/npy.h"
#include "media/image_io.h"
#include "predictor/replay.h"
#include "sam2d/image_predictor.h"
#include "sam2d/model.h"

#define MAX_POINTS 256

static void seg_usage(FILE *f) {
    fprintf(f,
            "usage: sam2d segment-image IMAGE [--point x,y[,label]]... [--box x0,y0,x1,y1]\n"
            "                           [--mask-input LOWRES.npy] --out DIR [options]\n"
            "  --point x,y[,label]  a click in image pixels; label 1 (default) foreground, 0 background\n"
            "  --box x0,y0,x1,y1    a box in image pixels\n"
            "  --mask-input F.npy   low-res logits (S/4 x S/4) from an earlier run (--logits writes them)\n"
            "  --multimask | --single  three masks or one (default: three for a single click, else one)\n"
            "  --logits             also write each mask's logits (mask_K.npy) and low-res logits (low_res_K.npy)\n"
            "  --model PATH         checkpoint (.pt or .safetensors); default $MODEL_DIR/sam2.1_hiera_<SAM2_MODEL_SIZE>.pt\n"
            "  --config YAML        Meta's model config (default: guessed from the checkpoint)\n"
            "  --threads N          CPU threads (default SAM2_THREADS or all)\n"
            "  --device D           auto (the GPU when one works, else the CPU), cpu, cuda, cuda:N, devsim\n"
            "                       (default SAM2_DEVICE, else auto)\n"
            "  --antialias on|off   resize with antialias (default on, as current torchvision)\n"
            "Writes DIR/mask_K.png (0/255) for every mask and DIR/scores.json.\n");
}

static int cmd_segment_image(int argc, char **argv) {
    const char *image = NULL, *out = NULL, *model_path = NULL, *config = NULL, *mask_file = NULL;
    const char *device_flag = NULL;
    float points[MAX_POINTS * 2], box[4];
    int labels[MAX_POINTS], np = 0, threads = 0, multimask = -1, logits = 0, antialias = 1;
    bool has_box = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            seg_usage(stdout);
            return SAM2D_EXIT_OK;
        } else if (!strcmp(a, "--point") && has_val) {
            float v[3];
            int n;
            if (np >= MAX_POINTS || !sam2d_cli_parse_floats(argv[++i], v, 2, 3, &n) || (n == 3 && v[2] != 0 && v[2] != 1)) {
                fprintf(stderr, "sam2d segment-image: bad --point '%s' (x,y or x,y,label with label 0/1)\n", argv[i]);
                return SAM2D_EXIT_USAGE;
            }
            points[2 * np] = v[0];
            points[2 * np + 1] = v[1];
            labels[np++] = n == 3 ? (int)v[2] : 1;
        } else if (!strcmp(a, "--box") && has_val) {
            int n;
            if (!sam2d_cli_parse_floats(argv[++i], box, 4, 4, &n) || box[2] < box[0] || box[3] < box[1]) {
                fprintf(stderr, "sam2d segment-image: bad --box '%s' (x0,y0,x1,y1 with x0<=x1, y0<=y1)\n", argv[i]);
                return SAM2D_EXIT_USAGE;
            }
            has_box = true;
        } else if (!strcmp(a, "--mask-input") && has_val) {
            mask_file = argv[++i];
        } else if (!strcmp(a, "--out") && has_val) {
            out = argv[++i];
        } else if (!strcmp(a, "--model") && has_val) {
            model_path = argv[++i];
        } else if (!strcmp(a, "--config") && has_val) {
            config = argv[++i];
        } else if (!strcmp(a, "--threads") && has_val) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--device") && has_val) {
            device_flag = argv[++i];
        } else if (!strcmp(a, "--antialias") && has_val) {
            const char *v = argv[++i];
            if (strcmp(v, "on") && strcmp(v, "off")) {
                fprintf(stderr, "sam2d segment-image: --antialias on|off\n");
                return SAM2D_EXIT_USAGE;
            }
            antialias = !strcmp(v, "on");
        } else if (!strcmp(a, "--multimask")) {
            multimask = 1;
        } else if (!strcmp(a, "--single")) {
            multimask = 0;
        } else if (!strcmp(a, "--logits")) {
            logits = 1;
        } else if (a[0] != '-' && !image) {
            image = a;
        } else {
            fprintf(stderr, "sam2d segment-image: unexpected argument '%s'\n", a);
            seg_usage(stderr);
            return SAM2D_EXIT_USAGE;
        }
    }
    if (!image || !out) {
        seg_usage(stderr);
        return SAM2D_EXIT_USAGE;
    }
    if (np == 0 && !has_box && !mask_file) {
        fprintf(stderr, "sam2d segment-image: give at least one --point, a --box or --mask-input\n");
        return SAM2D_EXIT_USAGE;
    }
    const char *device = sam2d_cli_device("segment-image", device_flag);
    if (!device) return SAM2D_EXIT_USAGE;
    if (multimask < 0) multimask = (np + (has_box ? 2 : 0)) <= 1; /* ambiguous single click: three candidates */

    uint8_t *rgb = NULL;
    int W = 0, H = 0;
    if (sam_image_decode_file(image, 0, &rgb, &W, &H) != SAM2D_OK) return sam2d_cli_fail("segment-image", image);
    for (int i = 0; i < np; i++)
        if (points[2 * i] < 0 || points[2 * i] > W || points[2 * i + 1] < 0 || points[2 * i + 1] > H)
            fprintf(stderr, "sam2d segment-image: warning: point %g,%g lies outside the %dx%d image\n", points[2 * i],
                    points[2 * i + 1], W, H);

    char mbuf[4096];
    sam2d_model_params mp = sam2d_model_default_params();
    mp.checkpoint_path = model_path ? model_path : sam2d_cli_default_model(mbuf, sizeof mbuf);
    mp.config_path = config;
    mp.num_threads = threads;
    mp.device = device;
    sam2d_model *model = NULL;
    sam2d_image_predictor *pred = NULL;
    sam_npy mask_npy = {0};
    json_t *js = NULL;
    int rc = SAM2D_EXIT_FAIL;
    if (sam2d_model_load(&mp, &model) != SAM2D_OK) {
        rc = sam2d_cli_fail("segment-image", mp.checkpoint_path);
        goto done;
    }
    sam2d_image_predictor_params pp = sam2d_image_predictor_default_params();
    pp.antialias = antialias;
    if (sam2d_image_predictor_create(model, &pp, &pred) != SAM2D_OK ||
        sam2d_image_predictor_set_image(pred, rgb, W, H) != SAM2D_OK) {
        rc = sam2d_cli_fail("segment-image", "encoding the image");
        goto done;
    }
    int L = sam2d_image_predictor_low_res_size(pred);
    sam2d_image_prompt q = {.points = np ? points : NULL, .labels = np ? labels : NULL, .n_points = np,
                            .box = has_box ? box : NULL, .multimask = multimask, .return_logits = true};
    if (mask_file) {
        if (sam_npy_read(mask_file, &mask_npy) != SAM2D_OK) {
            rc = sam2d_cli_fail("segment-image", mask_file);
            goto done;
        }
        if (mask_npy.count != (int64_t)L * L) {
            fprintf(stderr, "sam2d segment-image: %s must hold %dx%d low-res logits\n", mask_file, L, L);
            rc = SAM2D_EXIT_USAGE;
            goto done;
        }
        q.mask_input = mask_npy.data;
    }
    sam2d_image_result r;
    if (sam2d_image_predictor_predict(pred, &q, &r) != SAM2D_OK) {
        rc = sam2d_cli_fail("segment-image", "predicting");
        goto done;
    }
    if (sam_replay_mkdirs(out) != SAM2D_OK) {
        rc = sam2d_cli_fail("segment-image", out);
        goto done;
    }
    js = json_object();
    json_t *arr = json_array();
    json_object_set_new(js, "image", json_string(image));
    json_object_set_new(js, "width", json_integer(W));
    json_object_set_new(js, "height", json_integer(H));
    json_object_set_new(js, "multimask", json_boolean(multimask));
    json_object_set_new(js, "masks", arr);
    int best = 0;
    size_t hw = (size_t)W * H;
    uint8_t *bin = sam_malloc(hw);
    if (!bin) goto done;
    for (int k = 0; k < r.num_masks; k++) {
        if (r.iou[k] > r.iou[best]) best = k;
        const float *lg = r.masks + (size_t)k * hw;
        int64_t area = 0;
        for (size_t i = 0; i < hw; i++) {
            bin[i] = lg[i] > 0.0f ? 255 : 0;
            area += lg[i] > 0.0f;
        }
        uint8_t *png = NULL;
        size_t png_len = 0;
        char name[64], path[4200];
        snprintf(name, sizeof name, "mask_%d.png", k);
        snprintf(path, sizeof path, "%s/%s", out, name);
        if (sam_png_encode(bin, W, H, 1, &png, &png_len) != SAM2D_OK || sam_write_file(path, png, png_len) != SAM2D_OK) {
            sam_free(png);
            sam_free(bin);
            rc = sam2d_cli_fail("segment-image", path);
            goto done;
        }
        sam_free(png);
        json_t *e = json_object();
        json_object_set_new(e, "file", json_string(name));
        json_object_set_new(e, "score", json_real(r.iou[k]));
        json_object_set_new(e, "area", json_integer(area));
        if (logits) {
            char lname[64];
            int64_t sh[2] = {H, W}, shl[2] = {L, L};
            snprintf(lname, sizeof lname, "mask_%d.npy", k);
            snprintf(path, sizeof path, "%s/%s", out, lname);
            if (sam_npy_write_f32(path, lg, 2, sh) == SAM2D_OK) json_object_set_new(e, "logits", json_string(lname));
            snprintf(lname, sizeof lname, "low_res_%d.npy", k);
            snprintf(path, sizeof path, "%s/%s", out, lname);
            if (sam_npy_write_f32(path, r.low_res_masks + (size_t)k * L * L, 2, shl) == SAM2D_OK)
                json_object_set_new(e, "low_res_logits", json_string(lname));
        }
        json_array_append_new(arr, e);
    }
    sam_free(bin);
    json_object_set_new(js, "best", json_integer(best));
    char jpath[4200];
    snprintf(jpath, sizeof jpath, "%s/scores.json", out);
    if (json_dump_file(js, jpath, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "sam2d segment-image: cannot write %s\n", jpath);
        goto done;
    }
    printf("%d mask(s) written to %s (best %d, score %.4f)\n", r.num_masks, out, best, r.iou[best]);
    rc = SAM2D_EXIT_OK;
done:
    if (js) json_decref(js);
    sam_npy_free(&mask_npy);
    sam2d_image_predictor_free(pred);
    sam2d_model_free(model);
    sam_free(rgb);
    return rc;
}

SAM2D_COMMAND(segment_image, "segment-image", "segment one image from clicks / a box; PNG masks + scores.json",
              cmd_segment_image)
