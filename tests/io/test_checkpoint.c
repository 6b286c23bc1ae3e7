/* Golden checkpoints: Meta's micro model as .pt (torch zip + pickle) and as
 * .safetensors must give the same 371 tensors, bit for bit. */
#include <unistd.h>

#include "sam2d/checkpoint.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro/"

static void *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Same names, order, dtypes, shapes and bytes. Returns the number of differing tensors. */
static size_t compare(const sam2d_checkpoint *a, const sam2d_checkpoint *b, int same_order) {
    size_t bad = 0;
    for (size_t i = 0; i < sam2d_checkpoint_count(a); i++) {
        const sam2d_tensor_info *x = sam2d_checkpoint_tensor(a, i);
        const sam2d_tensor_info *y = same_order ? sam2d_checkpoint_tensor(b, i) : sam2d_checkpoint_find(b, x->name);
        int same = y && strcmp(x->name, y->name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim &&
                   x->numel == y->numel && memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) == 0 &&
                   memcmp(x->data, y->data, (size_t)x->numel * sam2d_dtype_size(x->dtype)) == 0;
        if (!same) {
            if (bad < 5) fprintf(stderr, "tensor %zu '%s' differs\n", i, x->name);
            bad++;
        }
    }
    return bad;
}

int main(void) {
    size_t mem0 = sam2d_memory_used();
    sam2d_checkpoint *pt = NULL, *st = NULL, *mem = NULL;
    sam2d_status s = sam2d_checkpoint_load(MICRO "model.pt", NULL, &pt);
    CHECK_MSG(s == SAM2D_OK, "load model.pt: %s", sam2d_last_error());
    s = sam2d_checkpoint_load(MICRO "model.safetensors", NULL, &st);
    CHECK_MSG(s == SAM2D_OK, "load model.safetensors: %s", sam2d_last_error());
    if (!pt || !st) return test_finish();

    CHECK(strcmp(sam2d_checkpoint_format(pt), "pt") == 0);
    CHECK(strcmp(sam2d_checkpoint_format(st), "safetensors") == 0);
    CHECK_MSG(sam2d_checkpoint_count(pt) == 371, "pt has %zu tensors", sam2d_checkpoint_count(pt));
    CHECK_MSG(sam2d_checkpoint_count(st) == 371, "safetensors has %zu tensors", sam2d_checkpoint_count(st));

    /* The point of the exercise: both formats give bit-identical tensors. */
    size_t bad = compare(pt, st, 0) + compare(st, pt, 0);
    printf("pt vs safetensors: %zu tensors, %zu differ (want 0, bit-exact)\n", sam2d_checkpoint_count(pt), bad);
    CHECK(bad == 0);
    /* both files keep the state-dict order */
    CHECK(compare(pt, st, 1) == 0);

    /* A few known entries (names and shapes from the state dict of the micro config). */
    const sam2d_tensor_info *t = sam2d_checkpoint_tensor(pt, 0);
    CHECK(t && strcmp(t->name, "maskmem_tpos_enc") == 0);
    CHECK(t && t->dtype == SAM2D_F32 && t->ndim == 4 && t->shape[0] == 7 && t->shape[1] == 1 && t->shape[2] == 1 &&
          t->shape[3] == 16 && t->numel == 112);
    t = sam2d_checkpoint_find(pt, "no_mem_embed");
    CHECK(t && t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == 1 && t->shape[2] == 32);
    t = sam2d_checkpoint_find(pt, "image_encoder.trunk.patch_embed.proj.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 24 && t->shape[1] == 3 && t->shape[2] == 7 && t->shape[3] == 7);
    CHECK(sam2d_checkpoint_find(pt, "no_such_tensor") == NULL);
    CHECK(sam2d_checkpoint_find(pt, "") == NULL);
    CHECK(sam2d_checkpoint_tensor(pt, 371) == NULL);

    /* Every tensor is 64-byte aligned and its float32 copy equals its bytes. */
    size_t misaligned = 0, total = 0;
    for (size_t i = 0; i < sam2d_checkpoint_count(pt); i++) {
        const sam2d_tensor_info *x = sam2d_checkpoint_tensor(pt, i);
        misaligned += ((uintptr_t)x->data & 63) != 0;
        total += (size_t)x->numel;
    }
    CHECK(misaligned == 0);
    t = sam2d_checkpoint_find(pt, "no_mem_embed");
    if (t) {
        float f[32];
        sam2d_tensor_to_f32(t, f);
        CHECK_CLOSE_ARRAY("to_f32(no_mem_embed) vs raw", f, (const float *)t->data, 32, 0.0);
    }
    printf("%zu parameters\n", total);

    /* load_memory gives the same, and the buffer may be freed right after. */
    size_t len = 0;
    void *buf = read_all(MICRO "model.pt", &len);
    CHECK(buf != NULL);
    if (buf) {
        s = sam2d_checkpoint_load_memory(buf, len, NULL, &mem);
        memset(buf, 0, len);
        free(buf);
        CHECK_MSG(s == SAM2D_OK, "load_memory: %s", sam2d_last_error());
        if (mem) CHECK(compare(pt, mem, 1) == 0);
    }

    /* A truncated file on disk: refused, and the message names the file. */
    char tmp[] = "/tmp/sam2d_ckpt_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    buf = read_all(MICRO "model.pt", &len);
    if (fd >= 0 && buf) {
        FILE *f = fdopen(fd, "wb");
        fwrite(buf, 1, len / 3, f);
        fclose(f);
        sam2d_checkpoint *tr = NULL;
        s = sam2d_checkpoint_load(tmp, NULL, &tr);
        printf("truncated file -> %s: %s\n", sam2d_status_str(s), sam2d_last_error());
        CHECK(s == SAM2D_ERR_FORMAT && tr == NULL && strstr(sam2d_last_error(), tmp) != NULL &&
              strstr(sam2d_last_error(), "truncated") != NULL);
        f = fopen(tmp, "wb"); /* empty */
        fclose(f);
        CHECK(sam2d_checkpoint_load(tmp, NULL, &tr) == SAM2D_ERR_FORMAT && tr == NULL);
        unlink(tmp);
    }
    free(buf);
    sam2d_checkpoint *dir = NULL;
    CHECK(sam2d_checkpoint_load(MICRO, NULL, &dir) == SAM2D_ERR_IO && dir == NULL);

    /* A file limit below the file size is refused up front. */
    sam2d_checkpoint_params p = sam2d_checkpoint_default_params();
    p.max_file_bytes = 1 << 20;
    sam2d_checkpoint *small = NULL;
    CHECK(sam2d_checkpoint_load(MICRO "model.pt", &p, &small) == SAM2D_ERR_LIMIT && small == NULL);
    p = sam2d_checkpoint_default_params();
    p.max_tensors = 100;
    CHECK(sam2d_checkpoint_load(MICRO "model.safetensors", &p, &small) == SAM2D_ERR_LIMIT && small == NULL);
    CHECK(sam2d_checkpoint_load(MICRO "model.pt", &p, &small) == SAM2D_ERR_LIMIT && small == NULL);
    CHECK(sam2d_checkpoint_load(MICRO "missing.pt", NULL, &small) == SAM2D_ERR_IO && small == NULL);

    /* The trained demo model shipped in models/ against the golden shapes safetensors. */
    sam2d_checkpoint *spt = NULL, *sst = NULL;
    s = sam2d_checkpoint_load(SAM2D_SOURCE_DIR "/models/sam2.1_hiera_micro_shapes.pt", NULL, &spt);
    CHECK_MSG(s == SAM2D_OK, "load shapes .pt: %s", sam2d_last_error());
    s = sam2d_checkpoint_load(SAM2D_TEST_DATA "/golden/shapes/model.safetensors", NULL, &sst);
    CHECK_MSG(s == SAM2D_OK, "load shapes .safetensors: %s", sam2d_last_error());
    if (spt && sst) {
        bad = compare(spt, sst, 0) + compare(sst, spt, 0);
        printf("shapes .pt vs .safetensors: %zu tensors, %zu differ (want 0, bit-exact)\n", sam2d_checkpoint_count(spt), bad);
        CHECK(bad == 0 && sam2d_checkpoint_count(spt) == 371);
    }
    sam2d_checkpoint_free(spt);
    sam2d_checkpoint_free(sst);

    sam2d_checkpoint_free(pt);
    sam2d_checkpoint_free(st);
    sam2d_checkpoint_free(mem);
    sam2d_checkpoint_free(NULL);
    CHECK_MSG(sam2d_memory_used() == mem0, "memory after free %zu, before %zu", sam2d_memory_used(), mem0);
    return test_finish();
}
