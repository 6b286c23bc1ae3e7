/* `sam2d info CHECKPOINT [--config FILE|PRESET] [--tensors] [--check] [--verbose]`:
 * what a checkpoint holds (family, sizes, parameter count) and whether it
 * matches a config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "sam2d/checkpoint.h"
#include "sam2d/config.h"
#include "sam2d/sam2d.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: sam2d info CHECKPOINT [--config FILE|PRESET] [--tensors] [--check] [--verbose]\n"
            "\n"
            "Prints the model family, sizes and parameter count of a SAM 2 / SAM 2.1\n"
            "checkpoint (.pt or .safetensors).\n"
            "  --config X   Meta's YAML model config, or a preset name (%s);\n"
            "               without it the config is inferred from the tensor shapes\n"
            "  --tensors    also list every tensor: name, dtype, shape\n"
            "  --check      list every difference between config and checkpoint\n"
            "  --verbose    print every config field\n"
            "Exit status: 0 ok, 1 failure or config/checkpoint mismatch, 2 usage.\n",
            sam2d_config_preset_names());
}

/* 1849562 -> "1,849,562" */
static void thousands(int64_t v, char *buf, size_t len) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(raw), k = 0;
    if (v < 0 && k + 1 < len) buf[k++] = '-';
    for (size_t i = 0; i < n && k + 2 < len; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = 0;
}

static void print_shape(FILE *f, int ndim, const int64_t *shape) {
    fputc('[', f);
    for (int i = 0; i < ndim; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)shape[i]);
    fputc(']', f);
}

static void print_list(FILE *f, const int *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", v[i]);
    fputc(']', f);
}

static int run_info(int argc, char **argv) {
    const char *ckpt_path = NULL, *config_arg = NULL;
    bool tensors = false, check = false, verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return SAM2D_EXIT_OK;
        } else if (!strcmp(a, "--config")) {
            if (++i >= argc) {
                fprintf(stderr, "sam2d info: --config needs a value\n");
                return SAM2D_EXIT_USAGE;
            }
            config_arg = argv[i];
        } else if (!strncmp(a, "--config=", 9)) {
            config_arg = a + 9;
        } else if (!strcmp(a, "--tensors")) {
            tensors = true;
        } else if (!strcmp(a, "--check")) {
            check = true;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            verbose = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sam2d info: unknown option %s\n\n", a);
            usage(stderr);
            return SAM2D_EXIT_USAGE;
        } else if (!ckpt_path) {
            ckpt_path = a;
        } else {
            fprintf(stderr, "sam2d info: more than one checkpoint given\n\n");
            usage(stderr);
            return SAM2D_EXIT_USAGE;
        }
    }
    if (!ckpt_path) {
        usage(stderr);
        return SAM2D_EXIT_USAGE;
    }

    sam2d_checkpoint *ck = NULL;
    if (sam2d_checkpoint_load(ckpt_path, NULL, &ck) != SAM2D_OK) return sam2d_cli_fail("info", "loading the checkpoint");
    size_t n = sam2d_checkpoint_count(ck);

    /* the checkpoint's own facts: tensors, dtypes, parameters (buffers excluded) */
    int64_t params = 0, buffers = 0;
    size_t per_dtype[8] = {0};
    for (size_t i = 0; i < n; i++) {
        const sam2d_tensor_info *t = sam2d_checkpoint_tensor(ck, i);
        if (sam2d_config_is_buffer_name(t->name)) buffers += t->numel;
        else params += t->numel;
        if ((unsigned)t->dtype < 8) per_dtype[t->dtype]++;
    }
    printf("file:        %s\n", ckpt_path);
    printf("format:      %s, %zu tensors (", sam2d_checkpoint_format(ck), n);
    bool first = true;
    for (int d = 0; d < 8; d++)
        if (per_dtype[d]) {
            printf("%s%s: %zu", first ? "" : ", ", sam2d_dtype_name((sam2d_dtype)d), per_dtype[d]);
            first = false;
        }
    printf(")\n");

    /* config: given (YAML file or preset) or inferred */
    sam2d_model_config cfg;
    int rc = SAM2D_EXIT_OK;
    bool have_cfg = true, guessed = false;
    char source[600];
    if (config_arg) {
        struct stat sb;
        sam2d_status st;
        size_t al = strlen(config_arg);
        /* an existing file, or anything spelled like a path, is a YAML file */
        bool is_path = strchr(config_arg, '/') || (al > 5 && !strcmp(config_arg + al - 5, ".yaml")) ||
                       (al > 4 && !strcmp(config_arg + al - 4, ".yml"));
        if (stat(config_arg, &sb) == 0 || is_path) {
            st = sam2d_config_load_yaml(config_arg, &cfg);
            snprintf(source, sizeof source, "%s", config_arg);
        } else {
            st = sam2d_config_preset(config_arg, &cfg);
            snprintf(source, sizeof source, "preset %s", config_arg);
        }
        if (st != SAM2D_OK) {
            sam2d_checkpoint_free(ck);
            return sam2d_cli_fail("info", "reading the config");
        }
    } else {
        sam2d_status st = sam2d_config_from_checkpoint(ck, &cfg);
        if (st == SAM2D_OK) {
            snprintf(source, sizeof source, "inferred from the tensor shapes");
        } else if (st == SAM2D_ERR_NOT_FOUND) {
            guessed = true;
            snprintf(source, sizeof source, "inferred from the tensor shapes (no preset matches: heads, global blocks, "
                                            "window sizes and image size are guesses; pass --config)");
        } else {
            have_cfg = false;
            fprintf(stderr, "sam2d info: cannot infer a config: %s\n", sam2d_last_error());
            snprintf(source, sizeof source, "none");
        }
    }

    if (have_cfg) {
        char desc[256];
        sam2d_config_describe(&cfg, desc, sizeof desc);
        printf("model:       %s\n", desc);
        printf("config:      %s\n", source);
        printf("trunk:       embed_dim %d, num_heads %d, stages ", cfg.embed_dim, cfg.num_heads);
        print_list(stdout, cfg.stages, cfg.num_stages);
        printf(", global attention blocks ");
        print_list(stdout, cfg.global_att_blocks, cfg.n_global_att_blocks);
        printf(", window_spec ");
        print_list(stdout, cfg.window_spec, cfg.num_stages);
        printf("\n");
        printf("sizes:       image %d, backbone stride %d, d_model %d, mem_dim %d, memory attention %d layers, "
               "num_maskmem %d\n",
               cfg.image_size, cfg.backbone_stride, cfg.d_model, cfg.mem_dim, cfg.mem_attn_num_layers, cfg.num_maskmem);
    }
    char sep[40];
    thousands(params, sep, sizeof sep);
    printf("parameters:  %lld (%s; %.2f M)\n", (long long)params, sep, (double)params / 1e6);
    if (buffers) printf("buffers:     %lld values (not parameters)\n", (long long)buffers);

    if (have_cfg) {
        int64_t want = sam2d_config_num_parameters(&cfg);
        sam2d_status st = sam2d_config_check_checkpoint(&cfg, ck);
        if (st == SAM2D_OK) {
            printf("check:       every tensor matches the config (%lld parameters)%s\n", (long long)want,
                   guessed ? "; shapes only" : "");
        } else {
            rc = SAM2D_EXIT_FAIL;
            printf("check:       MISMATCH: %s\n", sam2d_last_error());
            if (check) {
                sam2d_tensor_info *list = NULL;
                /* the full list: the error message above is bounded */
                static char report[1 << 20];
                size_t k = 0;
                list = calloc(n + 1, sizeof *list);
                if (list) {
                    for (k = 0; k < n; k++) list[k] = *sam2d_checkpoint_tensor(ck, k);
                    long np = sam2d_config_compare_tensors(&cfg, list, n, report, sizeof report);
                    printf("differences (%ld):\n%s", np, report);
                    free(list);
                }
            } else {
                printf("             (--check lists every difference)\n");
            }
        }
        if (verbose) {
            printf("config fields:\n");
            sam2d_config_print(&cfg, stdout);
        }
    }

    if (tensors) {
        printf("tensors:\n");
        for (size_t i = 0; i < n; i++) {
            const sam2d_tensor_info *t = sam2d_checkpoint_tensor(ck, i);
            printf("  %-80s %-5s ", t->name, sam2d_dtype_name(t->dtype));
            print_shape(stdout, t->ndim, t->shape);
            printf("\n");
        }
    }
    sam2d_checkpoint_free(ck);
    return rc;
}

SAM2D_COMMAND(info, "info", "model family, sizes, parameter count and tensors of a checkpoint", run_info)
