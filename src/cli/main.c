#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ops/ops.h"
#include "sam2d/model.h"
#include "sam2d/sam2d.h"
#ifdef SAM2D_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

static sam2d_command *commands;

void sam2d_register_command(sam2d_command *cmd) {
    /* keep the list sorted by name for `help` */
    sam2d_command **p = &commands;
    while (*p && strcmp((*p)->name, cmd->name) < 0) p = &(*p)->next;
    cmd->next = *p;
    *p = cmd;
}

int sam2d_cli_fail(const char *cmd, const char *what) {
    fprintf(stderr, "sam2d %s: %s: %s\n", cmd, what, sam2d_last_error());
    return SAM2D_EXIT_FAIL;
}

bool sam2d_cli_parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

bool sam2d_cli_parse_floats(const char *s, float *out, int min, int max, int *n) {
    int k = 0;
    const char *p = s;
    while (*p && k < max) {
        char *end;
        errno = 0;
        float v = strtof(p, &end);
        if (end == p || errno == ERANGE || v != v) return false;
        out[k++] = v;
        p = end;
        if (*p == ',') {
            p++;
            if (!*p) return false;
        } else if (*p) {
            return false;
        }
    }
    if (*p || k < min) return false;
    *n = k;
    return true;
}

const char *sam2d_cli_default_model(char *buf, size_t len) {
    sam2d_default_checkpoint_path(getenv("MODEL_DIR"), getenv("SAM2_MODEL_SIZE"), buf, len);
    return buf;
}

const char *sam2d_cli_device(const char *cmd, const char *flag) {
    const char *d = flag ? flag : getenv("SAM2_DEVICE");
    const char *origin = flag ? "--device" : "SAM2_DEVICE";
    if (!d || !*d) return "auto";
    if (!strcmp(d, "auto") || !strcmp(d, "cpu") || !strcmp(d, "devsim")) return d;
    bool cuda = !strcmp(d, "cuda");
    if (!strncmp(d, "cuda:", 5)) {
        int idx;
        cuda = d[5] >= '0' && d[5] <= '9' && sam2d_cli_parse_int(d + 5, 0, 64, &idx);
    }
    if (!cuda) {
        fprintf(stderr, "sam2d %s: %s '%s': expected auto, cpu, cuda, cuda:N or devsim\n", cmd, origin, d);
        return NULL;
    }
    if (!sam_backend_gpu_name()) {
        fprintf(stderr, "sam2d %s: %s '%s': this build has no GPU back end (built without nvcc); use cpu or auto\n",
                cmd, origin, d);
        return NULL;
    }
    return d;
}

static void usage(FILE *f) {
    fprintf(f, "sam2d %s — SAM 2 / SAM 2.1 video segmentation in C\n\nusage: sam2d <command> [options]\n\ncommands:\n",
            SAM2D_VERSION);
    for (sam2d_command *c = commands; c; c = c->next) fprintf(f, "  %-16s %s\n", c->name, c->summary);
    fprintf(f, "\n`sam2d <command> --help` describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SAM2D_EXIT_USAGE : SAM2D_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("sam2d %s\n", SAM2D_VERSION);
        return SAM2D_EXIT_OK;
    }
#ifdef SAM2D_WITH_CUDA
    sam_cuda_register(); /* SAM2_DEVICE=auto|cuda can pick the GPU */
#endif
    for (sam2d_command *c = commands; c; c = c->next)
        if (!strcmp(c->name, argv[1])) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "sam2d: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return SAM2D_EXIT_USAGE;
}
