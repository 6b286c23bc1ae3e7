/* `sam2d replay GOLDEN_DIR --out DIR`: run a golden folder's scenarios through
 * our implementation and write every result under the manifest's file names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h"
#include "predictor/replay.h"
#include "sam2d/sam2d.h"
#include "sam2d/video_predictor.h"

/* The video scenario (src/predictor/replay_video.c) on the same model. */
static sam2d_status run_video(sam_replay_ctx *ctx, const char *out_dir) {
    sam2d_replay_video_stats stats;
    memset(&stats, 0, sizeof(stats));
    sam2d_status st = sam_replay_video(ctx->model, ctx->dir, out_dir, &stats);
    if (st == SAM2D_OK && ctx->verbose)
        printf("video_scenario: %d steps, %d results, %d state arrays, %d mismatched\n", stats.steps, stats.results,
               stats.states, stats.mismatched);
    return st;
}

/* One entry per scenario kind the manifest may hold. */
typedef struct {
    const char *manifest_key;
    const char *option; /* --only value */
    sam2d_status (*run)(sam_replay_ctx *ctx, const char *out_dir);
} replay_runner;

static const replay_runner runners[] = {
    {"image_scenario", "image", sam_replay_image},
    {"video_scenario", "video", run_video},
};

static void replay_usage(FILE *f) {
    fprintf(f,
            "usage: sam2d replay GOLDEN_DIR --out DIR [--only image|video] [--threads N] [--device D] [--quiet]\n"
            "Reads GOLDEN_DIR/manifest.json, loads model.pt (or model.safetensors) with config.yaml, runs\n"
            "each scenario of the manifest and writes its results as float32 .npy under DIR with the\n"
            "manifest's relative file names.\n"
            "--device: auto (the GPU when one works, else the CPU), cpu, cuda, cuda:N, devsim\n"
            "(default SAM2_DEVICE, else auto).\n");
}

/* sam_replay_load_model with a device: model.pt (else model.safetensors) with config.yaml when present. */
static sam2d_status load_model(sam_replay_ctx *ctx, int threads, const char *device) {
    char ck[4200], cfg[4200];
    sam_replay_path(ctx, "model.pt", ck, sizeof ck);
    if (access(ck, R_OK) != 0) sam_replay_path(ctx, "model.safetensors", ck, sizeof ck);
    if (access(ck, R_OK) != 0)
        return SAM_ERR(SAM2D_ERR_NOT_FOUND, "replay: no model.pt or model.safetensors in %s", ctx->dir);
    sam_replay_path(ctx, "config.yaml", cfg, sizeof cfg);
    sam2d_model_params p = sam2d_model_default_params();
    p.checkpoint_path = ck;
    p.config_path = access(cfg, R_OK) == 0 ? cfg : NULL;
    p.num_threads = threads;
    p.device = device;
    snprintf(ctx->checkpoint, sizeof ctx->checkpoint, "%s", ck);
    return sam2d_model_load(&p, &ctx->model);
}

static int cmd_replay(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *only = NULL, *device_flag = NULL;
    int threads = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            replay_usage(stdout);
            return SAM2D_EXIT_OK;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            device_flag = argv[++i];
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            quiet = 1;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "sam2d replay: unexpected argument '%s'\n", argv[i]);
            replay_usage(stderr);
            return SAM2D_EXIT_USAGE;
        }
    }
    if (!dir || !out) {
        replay_usage(stderr);
        return SAM2D_EXIT_USAGE;
    }
    const char *device = sam2d_cli_device("replay", device_flag);
    if (!device) return SAM2D_EXIT_USAGE;
    sam_replay_ctx ctx;
    if (sam_replay_open(dir, &ctx) != SAM2D_OK) return sam2d_cli_fail("replay", "reading the golden folder");
    ctx.verbose = !quiet;
    if (load_model(&ctx, threads, device) != SAM2D_OK) {
        sam_replay_close(&ctx);
        return sam2d_cli_fail("replay", "loading the model");
    }
    if (sam_replay_mkdirs(out) != SAM2D_OK) {
        sam_replay_close(&ctx);
        return sam2d_cli_fail("replay", "creating the output folder");
    }
    /* Every scenario runs even when an earlier one failed: each writes its own files. */
    int ran = 0, failed = 0;
    for (size_t k = 0; k < sizeof runners / sizeof runners[0]; k++) {
        if (only && strcmp(only, runners[k].option) != 0) continue;
        if (!json_object_get(ctx.manifest, runners[k].manifest_key)) continue;
        ran++;
        if (runners[k].run(&ctx, out) != SAM2D_OK) {
            sam2d_cli_fail("replay", runners[k].manifest_key);
            failed++;
            continue;
        }
        if (!quiet) printf("%s: done\n", runners[k].manifest_key);
    }
    sam_replay_close(&ctx);
    if (failed) return SAM2D_EXIT_FAIL;
    if (!ran) {
        fprintf(stderr, "sam2d replay: nothing to run in %s%s%s\n", dir, only ? " for --only " : "", only ? only : "");
        return SAM2D_EXIT_FAIL;
    }
    return SAM2D_EXIT_OK;
}

SAM2D_COMMAND(replay, "replay", "run a golden folder's scenarios and write the results as .npy", cmd_replay)
