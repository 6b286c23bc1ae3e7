/* The shared weight loader (model/weights.h) the encoder and the other modules
 * use: shape checks, every problem in one message, optional tensors, F16/BF16
 * conversion, random mode, and ownership (everything freed with the set). */
#include "core/alloc.h"
#include "model/weights.h"
#include "sam2d/checkpoint.h"
#include "test_util.h"

/* A safetensors file in memory: a (2, 3) F32, a (4) F16 and a (2) BF16 tensor. */
static size_t make_safetensors(unsigned char *buf) {
    const char *hdr = "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"b.half\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                      "\"c.bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[32,36]}}";
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    uint64_t n = padded;
    memcpy(buf, &n, 8); /* little-endian host */
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    unsigned char *d = buf + 8 + padded;
    float a[6] = {1, 2, 3, 4, 5, 6};
    memcpy(d, a, 24);
    uint16_t h[4] = {0x3c00, 0xc000, 0x3800, 0x0000}; /* 1, -2, 0.5, 0 */
    memcpy(d + 24, h, 8);
    uint16_t bf[2] = {0x3f80, 0x4040};                 /* 1, 3 */
    memcpy(d + 32, bf, 4);
    return 8 + padded + 36;
}

static void from_checkpoint(void) {
    unsigned char file[1024];
    size_t len = make_safetensors(file);
    sam2d_checkpoint *ck = NULL;
    sam2d_checkpoint_params cp = sam2d_checkpoint_default_params();
    sam2d_status st = sam2d_checkpoint_load_memory(file, len, &cp, &ck);
    CHECK_MSG(st == SAM2D_OK, "load: %s", sam2d_last_error());
    if (st != SAM2D_OK) return;

    size_t base = sam2d_memory_used();
    sam_weight_set set;
    sam_weight_set_init(&set);
    sam_weight_loader L;
    sam_weight_loader_init(&L, ck, &set);
    float *a = sam_weight(&L, SAM_W2(2, 3), "%s.weight", "a");
    float *b = sam_weight(&L, SAM_W1(4), "b.half");
    float *c = sam_weight(&L, SAM_W1(2), "c.bf");
    CHECK(a && a[0] == 1 && a[5] == 6);
    CHECK(b && b[0] == 1 && b[1] == -2 && b[2] == 0.5f && b[3] == 0);
    CHECK(c && c[0] == 1 && c[1] == 3);
    CHECK(sam_weight_optional(&L, SAM_W1(7), "not.there") == NULL); /* absent optional: no problem */
    CHECK(sam_weight_exists(&L, "a.weight") && !sam_weight_exists(&L, "zzz"));
    CHECK(L.nerr == 0 && L.nloaded == 3);
    CHECK(sam_weight_loader_finish(&L) == SAM2D_OK);
    CHECK(set.n == 3 && set.bytes == sizeof(float) * (6 + 4 + 2));

    /* Problems are collected, not fatal one by one; finish reports them all. */
    sam_weight_loader_init(&L, ck, &set);
    CHECK(sam_weight(&L, SAM_W2(3, 2), "a.weight") == NULL);            /* wrong shape */
    CHECK(sam_weight(&L, SAM_W1(4), "missing.one") == NULL);            /* missing */
    CHECK(sam_weight_optional(&L, SAM_W1(5), "b.half") == NULL);        /* present optional, wrong shape */
    sam_weight_loader_fail(&L, "custom problem %d", 42);
    CHECK(L.nerr == 4);
    const char *m = sam_weight_loader_message(&L);
    CHECK(strstr(m, "a.weight has shape (2, 3), expected (3, 2)") != NULL);
    CHECK(strstr(m, "missing tensor missing.one") != NULL);
    CHECK(strstr(m, "b.half") != NULL && strstr(m, "custom problem 42") != NULL);
    CHECK(sam_weight_loader_finish(&L) == SAM2D_ERR_MISMATCH);
    CHECK(strstr(sam2d_last_error(), "4 checkpoint problems") != NULL);
    CHECK(set.n == 3); /* failed fetches allocate nothing */

    sam_weight_set_free(&set);
    CHECK(sam2d_memory_used() == base);
    sam2d_checkpoint_free(ck);
}

static void random_mode(void) {
    size_t base = sam2d_memory_used();
    sam_weight_set s1, s2;
    sam_weight_set_init(&s1);
    sam_weight_set_init(&s2);
    sam_weight_loader L1, L2;
    sam_weight_loader_init_random(&L1, 5, 0.25f, &s1);
    sam_weight_loader_init_random(&L2, 5, 0.25f, &s2);
    float *x = sam_weight(&L1, SAM_W3(4, 5, 6), "anything.%d", 1);
    float *y = sam_weight(&L2, SAM_W3(4, 5, 6), "anything.%d", 1);
    float *o = sam_weight_optional(&L1, SAM_W1(3), "optional.is.created");
    CHECK(x && y && o);
    CHECK(sam_weight_exists(&L1, "whatever"));
    bool same = true, in_range = true, varied = false;
    for (int i = 0; i < 120; i++) {
        same = same && x[i] == y[i];
        in_range = in_range && x[i] >= -0.25f && x[i] < 0.25f;
        varied = varied || x[i] != x[0];
    }
    CHECK(same && in_range && varied);
    CHECK(sam_weight_loader_finish(&L1) == SAM2D_OK && sam_weight_loader_finish(&L2) == SAM2D_OK);
    sam_weight_set_free(&s1);
    sam_weight_set_free(&s2);
    CHECK(sam2d_memory_used() == base);

    /* Without an owner the caller frees each buffer. */
    sam_weight_loader L;
    sam_weight_loader_init_random(&L, 1, 1.0f, NULL);
    float *z = sam_weight(&L, SAM_W1(10), "z");
    CHECK(z != NULL);
    CHECK(sam_weight_loader_finish(&L) == SAM2D_OK);
    sam_free(z);
    CHECK(sam2d_memory_used() == base);
}

int main(void) {
    from_checkpoint();
    random_mode();
    return test_finish();
}
