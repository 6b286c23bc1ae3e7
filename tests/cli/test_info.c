/* `sam2d info`: run the real program (SAM2D_BINARY) on the golden micro
 * checkpoint and check what it prints and its exit status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro/"

static char out[1 << 20];

/* Run `sam2d ARGS` (stderr merged); returns the exit status, output in `out`. */
static int run(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", SAM2D_BINARY, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines_with(const char *needle) {
    int k = 0;
    for (const char *p = out; (p = strstr(p, needle)); p++) k++;
    return k;
}

int main(void) {
    /* the acceptance example: the manifest's parameter count, raw and with separators */
    int rc = run("info " MICRO "model.pt --config " MICRO "config.yaml");
    printf("%s", out);
    CHECK_MSG(rc == 0, "exit %d", rc);
    CHECK(strstr(out, "parameters:  1849562 (1,849,562; 1.85 M)") != NULL);
    CHECK(strstr(out, "SAM 2.1 Hiera") != NULL);
    CHECK(strstr(out, "371 tensors") != NULL);
    CHECK(strstr(out, "every tensor matches the config") != NULL);
    CHECK(strstr(out, "image 256") != NULL);

    /* without --config: inferred from shapes, guesses said so */
    rc = run("info " MICRO "model.safetensors");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    CHECK(strstr(out, "1849562") && strstr(out, "safetensors") && strstr(out, "guesses"));

    /* --tensors: one line per tensor with name, dtype and shape */
    rc = run("info " MICRO "model.pt --tensors");
    CHECK(rc == 0);
    CHECK(strstr(out, "image_encoder.trunk.pos_embed ") && strstr(out, "F32   [1, 24, 7, 7]"));
    CHECK_MSG(count_lines_with("  F32 ") + count_lines_with(" F32   [") >= 371, "tensor lines missing");

    /* a wrong config: exit 1 and the differences named */
    rc = run("info " MICRO "model.pt --config sam2.1_tiny --check");
    CHECK_MSG(rc == 1, "exit %d", rc);
    CHECK(strstr(out, "MISMATCH") && strstr(out, "missing image_encoder.trunk.blocks.8.norm1.weight") &&
          strstr(out, "shape maskmem_tpos_enc: config [7, 1, 1, 64] checkpoint [7, 1, 1, 16]"));

    /* --verbose prints every config field */
    rc = run("info " MICRO "model.pt --config " MICRO "config.yaml --verbose");
    CHECK(rc == 0 && strstr(out, "fill_hole_area") && strstr(out, "mem_attn_kv_in_dim"));

    /* usage errors and failures */
    CHECK(run("info") == 2);
    CHECK(run("info " MICRO "model.pt --frobnicate") == 2);
    CHECK(run("info " MICRO "model.pt --config") == 2);
    rc = run("info /nonexistent/model.pt");
    CHECK(rc == 1 && strstr(out, "/nonexistent/model.pt"));
    rc = run("info " MICRO "model.pt --config no_such_preset");
    CHECK(rc == 1 && strstr(out, "unknown config preset"));
    rc = run("info " MICRO "model.pt --config /nonexistent/config.yaml");
    CHECK(rc == 1 && strstr(out, "cannot open config /nonexistent/config.yaml"));
    CHECK(run("info --help") == 0 && strstr(out, "--tensors"));
    return test_finish();
}
