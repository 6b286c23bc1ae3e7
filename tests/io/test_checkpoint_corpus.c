/* Replays the fuzz seeds and any crash reproducers kept in fuzz/fuzz_corpus/
 * through the loaders (as the fuzz targets do), so regressions show up in the
 * normal and sanitizer test runs without clang/libFuzzer. */
#include <dirent.h>

#include "io/pickle.h"
#include "sam2d/checkpoint.h"
#include "test_util.h"

#define CORPUS SAM2D_SOURCE_DIR "/fuzz/fuzz_corpus"

static size_t mem0;
static size_t by_status[16];

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Same dispatch as fuzz/fuzz_checkpoint_pt.c; returns the status and tensor count. */
static sam2d_status replay(const uint8_t *d, size_t n, int pickle_direct, size_t *count) {
    *count = 0;
    if (pickle_direct && !(n >= 2 && d[0] == 'P' && d[1] == 'K')) {
        sam_pk_state_dict sd;
        sam2d_status s = sam_pickle_state_dict(d, n, NULL, &sd);
        *count = sd.n_tensors;
        sam_pickle_state_dict_free(&sd);
        return s;
    }
    sam2d_checkpoint_params p = sam2d_checkpoint_default_params();
    p.max_file_bytes = (size_t)64 << 20;
    sam2d_checkpoint *ck = NULL;
    sam2d_status s = sam2d_checkpoint_load_memory(d, n, &p, &ck);
    *count = sam2d_checkpoint_count(ck);
    sam2d_checkpoint_free(ck);
    return s;
}

static size_t replay_dir(const char *sub, int pickle_direct) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", CORPUS, sub);
    DIR *dp = opendir(dir);
    CHECK_MSG(dp != NULL, "cannot open %s", dir);
    if (!dp) return 0;
    size_t files = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        uint8_t *b = read_all(path, &len);
        if (!b) continue;
        size_t count;
        sam2d_status s = replay(b, len, pickle_direct, &count);
        if (strncmp(de->d_name, "pt_", 3) == 0 || strncmp(de->d_name, "pk_", 3) == 0 || strncmp(de->d_name, "st_", 3) == 0)
            printf("%-12s %-28s %7zu bytes -> %s, %zu tensors\n", sub, de->d_name, len, sam2d_status_str(s), count);
        if ((int)s >= 0 && (int)s < 16) by_status[s]++;
        /* known seeds have known outcomes; everything else must merely not crash */
        if (!strcmp(de->d_name, "pt_std") || !strcmp(de->d_name, "pt_deflate_zip64")) CHECK(s == SAM2D_OK && count == 7);
        if (!strcmp(de->d_name, "pk_micro_data.pkl")) CHECK(s == SAM2D_OK && count == 371);
        if (!strcmp(de->d_name, "st_std")) CHECK(s == SAM2D_OK && count == 3);
        if (strstr(de->d_name, "os_system")) CHECK(s == SAM2D_ERR_UNSUPPORTED);
        free(b);
        files++;
    }
    closedir(dp);
    return files;
}

int main(void) {
    mem0 = sam2d_memory_used();
    size_t n = replay_dir("pt", 1) + replay_dir("safetensors", 0);
    CHECK_MSG(n >= 8, "only %zu corpus files", n);
    printf("%zu files replayed:", n);
    for (int s = 0; s < 16; s++)
        if (by_status[s]) printf(" %zu %s;", by_status[s], sam2d_status_str((sam2d_status)s));
    printf("\n");
    CHECK_MSG(sam2d_memory_used() == mem0, "memory leaked: %zu bytes", sam2d_memory_used() - mem0);
    return test_finish();
}
