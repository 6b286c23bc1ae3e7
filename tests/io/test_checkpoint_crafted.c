/* Crafted .pt and .safetensors inputs, built byte by byte here: layouts torch
 * writes (prefixes, strides, offsets, f16/bf16, deflate, zip64, byteorder)
 * load correctly; broken or hostile files are refused with a clear message. */
#include "sam2d/checkpoint.h"
#include "test_checkpoint_util.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro/"

/* Load from memory, expect `want` and a message containing `substr`; print the message. */
static void expect(const char *what, const bb *b, sam2d_status want, const char *substr) {
    sam2d_checkpoint *ck = (sam2d_checkpoint *)1;
    sam2d_status s = sam2d_checkpoint_load_memory(b->p, b->n, NULL, &ck);
    const char *msg = sam2d_last_error();
    printf("%-34s -> %s: %s\n", what, sam2d_status_str(s), s ? msg : "");
    CHECK_MSG(s == want, "%s: got status %s, want %s (%s)", what, sam2d_status_str(s), sam2d_status_str(want), msg);
    CHECK_MSG(s == SAM2D_OK || ck == NULL, "%s: out not NULL on failure", what);
    if (substr) CHECK_MSG(strstr(msg, substr) != NULL, "%s: message '%s' lacks '%s'", what, msg, substr);
    if (s == SAM2D_OK) sam2d_checkpoint_free(ck);
}

/* Offset of the first occurrence of pat in b (the local header copy of a name). */
static size_t find_bytes(const bb *b, const char *pat, size_t len) {
    for (size_t i = 0; i + len <= b->n; i++)
        if (memcmp(b->p + i, pat, len) == 0) return i;
    return 0;
}

static sam2d_checkpoint *load_ok(const char *what, const bb *b) {
    sam2d_checkpoint *ck = NULL;
    sam2d_status s = sam2d_checkpoint_load_memory(b->p, b->n, NULL, &ck);
    CHECK_MSG(s == SAM2D_OK, "%s: %s", what, sam2d_last_error());
    return ck;
}

static const int64_t S23[] = {2, 3}, T23[] = {3, 1}, S32[] = {3, 2}, T32[] = {1, 3}, S4[] = {4}, T1[] = {1},
                     S3[] = {3}, S03[] = {0, 3}, T03[] = {3, 1};

/* storages of the standard crafted checkpoint */
static float st0[6], st1[8];
static const uint16_t st2[4] = {0x3c00, 0xc000, 0x7bff, 0x0001}; /* f16: 1, -2, 65504, 2^-24 */
static const uint16_t st3[3] = {0x3f80, 0xc000, 0x7f80};          /* bf16: 1, -2, inf */

/* The pickle of the standard crafted checkpoint (7 tensors). */
static bb std_pickle(void) {
    bb p = {0};
    pk_begin_model(&p);
    pk_tensor(&p, "w", "FloatStorage", "0", 6, 0, 2, S23, T23);
    pk_tensor(&p, "wt", "FloatStorage", "0", 6, 0, 2, S32, T32); /* transposed view of the same storage */
    pk_tensor(&p, "off", "FloatStorage", "1", 8, 2, 1, S4, T1);
    pk_tensor(&p, "h", "HalfStorage", "2", 4, 0, 1, S4, T1);
    pk_tensor(&p, "bf", "BFloat16Storage", "3", 3, 0, 1, S3, T1);
    pk_tensor(&p, "scalar", "FloatStorage", "1", 8, 5, 0, NULL, NULL);
    pk_tensor(&p, "empty", "FloatStorage", "4", 0, 0, 2, S03, T03); /* no entry needed: nothing to read */
    pk_end_model(&p);
    return p;
}

/* flags: 1 deflate, 2 zip64 entries + end records, 4 big-endian storages, 8 drop storage "1" */
static bb std_pt(const char *prefix, const bb *pkl, int flags) {
    f32_ramp(st0, 6);
    f32_ramp(st1, 8);
    uint8_t b0[sizeof st0], b1[sizeof st1], b2[sizeof st2], b3[sizeof st3];
    memcpy(b0, st0, sizeof b0);
    memcpy(b1, st1, sizeof b1);
    memcpy(b2, st2, sizeof b2);
    memcpy(b3, st3, sizeof b3);
    if (flags & 4) {
        for (size_t i = 0; i < sizeof b0; i += 4) { uint8_t t = b0[i]; b0[i] = b0[i + 3]; b0[i + 3] = t; t = b0[i + 1]; b0[i + 1] = b0[i + 2]; b0[i + 2] = t; }
        for (size_t i = 0; i < sizeof b1; i += 4) { uint8_t t = b1[i]; b1[i] = b1[i + 3]; b1[i + 3] = t; t = b1[i + 1]; b1[i + 1] = b1[i + 2]; b1[i + 2] = t; }
        for (size_t i = 0; i < sizeof b2; i += 2) { uint8_t t = b2[i]; b2[i] = b2[i + 1]; b2[i + 1] = t; }
        for (size_t i = 0; i < sizeof b3; i += 2) { uint8_t t = b3[i]; b3[i] = b3[i + 1]; b3[i + 1] = t; }
    }
    char n[6][64];
    snprintf(n[0], 64, "%sdata.pkl", prefix);
    snprintf(n[1], 64, "%sbyteorder", prefix);
    snprintf(n[2], 64, "%sdata/0", prefix);
    snprintf(n[3], 64, "%sdata/1", prefix);
    snprintf(n[4], 64, "%sdata/2", prefix);
    snprintf(n[5], 64, "%sdata/3", prefix);
    int dfl = flags & 1, z64 = (flags & 2) != 0;
    const char *order = flags & 4 ? "big" : "little";
    zent e[7] = {
        {n[0], pkl->p, pkl->n, dfl, z64}, {n[1], order, strlen(order), 0, 0}, {n[2], b0, sizeof b0, dfl, z64},
        {n[3], b1, sizeof b1, dfl, z64},  {n[4], b2, sizeof b2, 0, z64},      {n[5], b3, sizeof b3, dfl, 0},
        {"archive/version", "3\n", 2, 0, 0},
    };
    if (flags & 8) e[3] = e[6];
    return zip_build(e, 6 + !(flags & 8), z64);
}

static void check_std(const char *what, const sam2d_checkpoint *ck) {
    if (!ck) return;
    CHECK_MSG(sam2d_checkpoint_count(ck) == 7, "%s: %zu tensors", what, sam2d_checkpoint_count(ck));
    static const char *names[] = {"w", "wt", "off", "h", "bf", "scalar", "empty"};
    for (size_t i = 0; i < 7 && i < sam2d_checkpoint_count(ck); i++)
        CHECK_MSG(strcmp(sam2d_checkpoint_tensor(ck, i)->name, names[i]) == 0, "%s: tensor %zu is '%s'", what, i,
                  sam2d_checkpoint_tensor(ck, i)->name);
    float f[8];
    const sam2d_tensor_info *t = sam2d_checkpoint_find(ck, "w");
    static const float w[] = {0, 1, 2, 3, 4, 5}, wt[] = {0, 3, 1, 4, 2, 5}, off[] = {2, 3, 4, 5},
                       h[] = {1, -2, 65504, 5.9604644775390625e-08f};
    CHECK_MSG(t && t->dtype == SAM2D_F32 && t->ndim == 2 && t->numel == 6, "%s: w", what);
    if (t && t->numel == 6) {
        sam2d_tensor_to_f32(t, f);
        CHECK_CLOSE_ARRAY("w (contiguous view)", f, w, 6, 0.0);
    }
    t = sam2d_checkpoint_find(ck, "wt");
    if (t && t->shape[0] == 3 && t->shape[1] == 2) {
        sam2d_tensor_to_f32(t, f);
        CHECK_CLOSE_ARRAY("wt (transposed strides)", f, wt, 6, 0.0);
    } else CHECK_MSG(0, "%s: wt missing or misshaped", what);
    t = sam2d_checkpoint_find(ck, "off");
    if (t && t->numel == 4) {
        sam2d_tensor_to_f32(t, f);
        CHECK_CLOSE_ARRAY("off (storage offset 2)", f, off, 4, 0.0);
    } else CHECK_MSG(0, "%s: off missing", what);
    t = sam2d_checkpoint_find(ck, "h");
    if (t && t->dtype == SAM2D_F16 && t->numel == 4) {
        sam2d_tensor_to_f32(t, f);
        CHECK_CLOSE_ARRAY("h (f16 incl. max and subnormal)", f, h, 4, 0.0);
    } else CHECK_MSG(0, "%s: h missing or not F16", what);
    t = sam2d_checkpoint_find(ck, "bf");
    if (t && t->dtype == SAM2D_BF16 && t->numel == 3) {
        sam2d_tensor_to_f32(t, f);
        CHECK(f[0] == 1.0f && f[1] == -2.0f && isinf(f[2]) && f[2] > 0);
    } else CHECK_MSG(0, "%s: bf missing or not BF16", what);
    t = sam2d_checkpoint_find(ck, "scalar");
    if (t && t->ndim == 0 && t->numel == 1) {
        sam2d_tensor_to_f32(t, f);
        CHECK(f[0] == 5.0f);
    } else CHECK_MSG(0, "%s: scalar missing", what);
    t = sam2d_checkpoint_find(ck, "empty");
    CHECK(t && t->numel == 0 && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->data != NULL);
}

static void test_pt_layouts(void) {
    bb pkl = std_pickle();
    bb z = std_pt("archive/", &pkl, 0);
    save_seed("pt_std", &z);
    sam2d_checkpoint *ck = load_ok("std archive/", &z);
    check_std("std archive/", ck);
    CHECK(ck && strcmp(sam2d_checkpoint_format(ck), "pt") == 0);
    sam2d_checkpoint_free(ck);

    /* the prefix is any folder name */
    bb z2 = std_pt("my_model-v2/", &pkl, 0);
    ck = load_ok("prefix my_model-v2/", &z2);
    check_std("prefix my_model-v2/", ck);
    sam2d_checkpoint_free(ck);
    bb_free(&z2);

    /* deflated entries, zip64 sizes and end records, big-endian storages */
    for (int flags = 1; flags < 8; flags++) {
        char what[64];
        snprintf(what, sizeof what, "variant deflate=%d zip64=%d big=%d", flags & 1, (flags >> 1) & 1, (flags >> 2) & 1);
        bb zz = std_pt("archive/", &pkl, flags);
        if (flags == 3) save_seed("pt_deflate_zip64", &zz);
        ck = load_ok(what, &zz);
        check_std(what, ck);
        sam2d_checkpoint_free(ck);
        bb_free(&zz);
    }

    /* Every truncation of a valid file is refused, never crashes. */
    size_t ok = 0;
    for (size_t n = 0; n < z.n; n++) {
        sam2d_checkpoint *t = NULL;
        if (sam2d_checkpoint_load_memory(z.p, n, NULL, &t) == SAM2D_OK) ok++;
        sam2d_checkpoint_free(t);
    }
    CHECK_MSG(ok == 0, "%zu truncations of the crafted .pt loaded", ok);
    /* Single-byte corruption anywhere: refused or loaded, never a crash (ASan checks). */
    for (size_t i = 0; i < z.n; i++) {
        static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80};
        for (size_t v = 0; v < sizeof vals; v++) {
            uint8_t keep = z.p[i];
            z.p[i] = vals[v];
            sam2d_checkpoint *t = NULL;
            sam2d_checkpoint_load_memory(z.p, z.n, NULL, &t);
            sam2d_checkpoint_free(t);
            z.p[i] = keep;
        }
    }
    bb_free(&z);
    bb_free(&pkl);
}

static void test_pt_refusals(void) {
    /* truncated real checkpoint */
    FILE *f = fopen(MICRO "model.pt", "rb");
    CHECK(f != NULL);
    if (f) {
        bb real = {0};
        uint8_t tmp[65536];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) bb_raw(&real, tmp, n);
        fclose(f);
        size_t full = real.n;
        real.n = full / 2;
        expect("truncated .pt (half)", &real, SAM2D_ERR_FORMAT, "end-of-central-directory");
        real.n = full - 1;
        expect("truncated .pt (last byte)", &real, SAM2D_ERR_FORMAT, "truncated");
        /* cut just after the central directory start: classic record intact but data gone */
        bb cut = {0};
        bb_raw(&cut, real.p + full - 22, 22); /* EOCD alone, pointing at a directory that is not there */
        expect("truncated .pt (only end record)", &cut, SAM2D_ERR_FORMAT, "outside");
        bb_free(&cut);
        bb_free(&real);
    }

    bb pkl = std_pickle();
    bb z = std_pt("archive/", &pkl, 8);
    expect("missing storage", &z, SAM2D_ERR_FORMAT, "missing storage");
    CHECK(strstr(sam2d_last_error(), "archive/data/1") != NULL);
    bb_free(&z);

    /* CRC mismatch: corrupt one stored storage byte */
    z = std_pt("archive/", &pkl, 0);
    size_t at = 0;
    for (size_t i = 0; i + 12 < z.n; i++)
        if (memcmp(z.p + i, "archive/data/1", 14) == 0) {
            at = i + 14 + 4; /* into the stored bytes */
            break;
        }
    CHECK(at > 0);
    z.p[at] ^= 0x40;
    expect("corrupted storage byte", &z, SAM2D_ERR_FORMAT, "CRC");
    bb_free(&z);
    bb_free(&pkl);

    /* out-of-range storage offset / strides / storage larger than its entry */
    struct {
        const char *what;
        int64_t storage_numel, offset;
        const int64_t *shape, *stride;
        const char *substr;
    } views[] = {
        {"out-of-range storage offset", 6, 5, S4, T1, "out of range"},
        {"out-of-range strides", 6, 0, S32, T23, "out of range"},
        {"storage numel past its entry", 600, 0, S4, T1, "holds 24 bytes"},
        {"huge storage offset", 6, (int64_t)1 << 62, S4, T1, "out of range"},
    };
    for (size_t v = 0; v < sizeof views / sizeof *views; v++) {
        bb p = {0};
        pk_begin_model(&p);
        pk_tensor(&p, "x", "FloatStorage", "0", views[v].storage_numel, views[v].offset, views[v].shape == S4 ? 1 : 2,
                  views[v].shape, views[v].stride);
        pk_end_model(&p);
        float d[6] = {0};
        zent e[2] = {{"archive/data.pkl", p.p, p.n, 0, 0}, {"archive/data/0", d, sizeof d, 0, 0}};
        bb zz = zip_build(e, 2, 0);
        expect(views[v].what, &zz, SAM2D_ERR_FORMAT, views[v].substr);
        bb_free(&zz);
        bb_free(&p);
    }

    /* a pickle that calls os.system, built like a malicious torch file */
    {
        bb p = {0};
        pk_op(&p, 0x80);
        bb_u8(&p, 2);
        pk_global(&p, "posix", "system");
        pk_op(&p, '(');
        pk_str(&p, "echo pwned > /tmp/sam2d_pwned");
        pk_op(&p, 't');
        pk_op(&p, 'R');
        pk_op(&p, '.');
        zent e[1] = {{"archive/data.pkl", p.p, p.n, 0, 0}};
        bb zz = zip_build(e, 1, 0);
        save_seed("pt_os_system", &zz);
        expect("pickle calling os.system", &zz, SAM2D_ERR_UNSUPPORTED, "refusing global 'posix.system'");
        bb_free(&zz);
        /* the same hidden as a tensor value inside a legit-looking state dict */
        bb q = {0};
        pk_begin_model(&q);
        pk_str(&q, "weight");
        pk_global(&q, "os", "system");
        pk_str(&q, "id");
        pk_op(&q, 0x85);
        pk_op(&q, 'R');
        pk_end_model(&q);
        zent e2[1] = {{"model/data.pkl", q.p, q.n, 1, 0}};
        zz = zip_build(e2, 1, 0);
        expect("os.system inside the state dict", &zz, SAM2D_ERR_UNSUPPORTED, "'os.system'");
        bb_free(&zz);
        bb_free(&q);
        bb_free(&p);
    }

    /* unsupported tensor dtype */
    {
        bb p = {0};
        pk_begin_model(&p);
        pk_tensor(&p, "steps", "LongStorage", "0", 1, 0, 0, NULL, NULL);
        pk_end_model(&p);
        int64_t d = 7;
        zent e[2] = {{"archive/data.pkl", p.p, p.n, 0, 0}, {"archive/data/0", &d, sizeof d, 0, 0}};
        bb zz = zip_build(e, 2, 0);
        expect("int64 tensor", &zz, SAM2D_ERR_UNSUPPORTED, "LongStorage");
        bb_free(&zz);
        bb_free(&p);
    }

    /* zip structure */
    {
        bb b = {0};
        bb_str(&b, "PK\x03\x04 this is not really a zip archive at all........");
        expect("bad zip (magic only)", &b, SAM2D_ERR_FORMAT, "end-of-central-directory");
        bb_free(&b);
        bb_str(&b, "GIF89a not a checkpoint");
        expect("not a checkpoint", &b, SAM2D_ERR_FORMAT, "neither");
        bb_free(&b);
        bb_u8(&b, 0x80);
        bb_u8(&b, 0x02);
        bb_str(&b, "legacy pickle");
        expect("legacy torch format", &b, SAM2D_ERR_UNSUPPORTED, "legacy");
        bb_free(&b);
        expect("empty buffer", &b, SAM2D_ERR_FORMAT, NULL);

        bb pk = std_pickle();
        bb zz = std_pt("archive/", &pk, 0);
        /* entry past EOF: give data/0 a compressed size beyond the file in the central directory */
        size_t cd = 0;
        for (size_t i = zz.n - 22; i > 0; i--)
            if (memcmp(zz.p + i, "PK\x01\x02", 4) == 0 && memcmp(zz.p + i + 46, "archive/data/0", 14) == 0) cd = i;
        CHECK(cd > 0);
        bb bad = {0};
        bb_raw(&bad, zz.p, zz.n);
        memcpy(bad.p + cd + 20, "\x00\x00\x00\x10", 4); /* comp size 256 MiB */
        memcpy(bad.p + cd + 24, "\x00\x00\x00\x10", 4);
        expect("entry past EOF", &bad, SAM2D_ERR_FORMAT, "runs past the end");
        memcpy(bad.p, zz.p, zz.n);
        memcpy(bad.p + cd + 42, "\x00\x00\x00\x7f", 4); /* local header offset far away */
        expect("local header past EOF", &bad, SAM2D_ERR_FORMAT, "local header");
        memcpy(bad.p, zz.p, zz.n);
        memcpy(bad.p + zz.n - 22 + 10, "\xff\xfe", 2); /* entry count far beyond the directory */
        expect("huge zip entry count", &bad, SAM2D_ERR_FORMAT, "cannot fit");
        memcpy(bad.p, zz.p, zz.n);
        memcpy(bad.p + cd + 10, "\x0e\x00", 2); /* compression method 14 (LZMA) */
        expect("unknown compression", &bad, SAM2D_ERR_UNSUPPORTED, "compression method 14");
        memcpy(bad.p, zz.p, zz.n);
        bad.p[cd + 8] |= 1; /* encrypted */
        expect("encrypted entry", &bad, SAM2D_ERR_UNSUPPORTED, "encrypted");
        bb_free(&bad);
        bb_free(&zz);
        bb_free(&pk);
    }

    /* a zip without data.pkl, and one with a pickle that is not a checkpoint */
    {
        zent e[1] = {{"archive/readme.txt", "hi", 2, 0, 0}};
        bb zz = zip_build(e, 1, 0);
        expect("zip without data.pkl", &zz, SAM2D_ERR_FORMAT, "data.pkl");
        bb_free(&zz);
        static const uint8_t underflow[] = {0x80, 2, 't', '.'};
        zent e2[1] = {{"archive/data.pkl", underflow, sizeof underflow, 0, 0}};
        zz = zip_build(e2, 1, 0);
        expect("pickle stack underflow (TUPLE)", &zz, SAM2D_ERR_FORMAT, "MARK");
        bb_free(&zz);
        static const uint8_t underflow2[] = {0x80, 2, 'N', 'R', '.'};
        zent e3[1] = {{"archive/data.pkl", underflow2, sizeof underflow2, 0, 0}};
        zz = zip_build(e3, 1, 0);
        expect("pickle stack underflow (REDUCE)", &zz, SAM2D_ERR_FORMAT, "underflow");
        bb_free(&zz);
        static const uint8_t hugestr[] = {0x80, 2, 'X', 0xff, 0xff, 0xff, 0xff, 'a', '.'};
        zent e4[1] = {{"archive/data.pkl", hugestr, sizeof hugestr, 0, 0}};
        zz = zip_build(e4, 1, 0);
        expect("pickle huge string length", &zz, SAM2D_ERR_FORMAT, "runs past the end");
        bb_free(&zz);
    }
}

/* A storage bigger than the 4 MiB work chunk and a file above the parallel
 * threshold: chunked CRCs are combined, chunked copies land in place, and a
 * flipped byte in the last chunk is still caught. */
static void test_pt_big(void) {
    const int64_t n = 2500000; /* 10 MB of float32: 3 chunks */
    float *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(i % 1000003);
    bb p = {0};
    pk_begin_model(&p);
    int64_t shape[2] = {n / 2, 2}, stride[2] = {2, 1}, tshape[2] = {2, n / 2}, tstride[2] = {1, 2};
    pk_tensor(&p, "big", "FloatStorage", "0", n, 0, 2, shape, stride);
    pk_tensor(&p, "big_t", "FloatStorage", "0", n, 0, 2, tshape, tstride); /* strided: copied whole */
    pk_end_model(&p);
    zent e[2] = {{"archive/data.pkl", p.p, p.n, 0, 0}, {"archive/data/0", d, (size_t)n * sizeof *d, 0, 0}};
    bb z = zip_build(e, 2, 0);
    sam2d_checkpoint *ck = load_ok("10 MB storage", &z);
    if (ck) {
        const sam2d_tensor_info *t = sam2d_checkpoint_find(ck, "big"), *tt = sam2d_checkpoint_find(ck, "big_t");
        CHECK(t && t->numel == n && memcmp(t->data, d, (size_t)n * sizeof *d) == 0);
        int ok = tt && tt->numel == n;
        for (int64_t i = 0; ok && i < n / 2; i += 997) {
            const float *v = tt->data;
            ok = v[i] == d[2 * i] && v[n / 2 + i] == d[2 * i + 1];
        }
        CHECK_MSG(ok, "transposed 10 MB view wrong");
        sam2d_checkpoint_free(ck);
    }
    /* flip a byte near the end of the storage (last CRC chunk) */
    size_t at = find_bytes(&z, "archive/data/0", 14) + 14 + (size_t)n * sizeof *d - 3;
    z.p[at] ^= 1;
    expect("10 MB storage, last chunk corrupt", &z, SAM2D_ERR_FORMAT, "CRC mismatch in 'archive/data/0'");
    bb_free(&z);
    bb_free(&p);
    free(d);
}

/* ---- safetensors ---- */

static bb st_build(const char *header, const void *data, size_t len) {
    bb b = {0};
    bb_u64(&b, strlen(header));
    bb_str(&b, header);
    bb_raw(&b, data, len);
    return b;
}

static void test_safetensors(void) {
    uint8_t data[64];
    float f4[4] = {1, 2, 3, 4};
    memcpy(data, f4, 16);
    memcpy(data + 16, st2, 8);
    memcpy(data + 24, st3, 6);
    bb b = st_build("{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]},"
                    "\"bf\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]}}   ",
                    data, 30);
    save_seed("st_std", &b);
    sam2d_checkpoint *ck = load_ok("crafted safetensors", &b);
    if (ck) {
        CHECK(strcmp(sam2d_checkpoint_format(ck), "safetensors") == 0);
        CHECK(sam2d_checkpoint_count(ck) == 3);
        const sam2d_tensor_info *t = sam2d_checkpoint_tensor(ck, 0);
        CHECK(t && strcmp(t->name, "a") == 0 && t->ndim == 2 && memcmp(t->data, f4, 16) == 0);
        t = sam2d_checkpoint_find(ck, "h");
        float f[4];
        static const float h[] = {1, -2, 65504, 5.9604644775390625e-08f};
        if (t && t->dtype == SAM2D_F16) {
            sam2d_tensor_to_f32(t, f);
            CHECK_CLOSE_ARRAY("safetensors f16", f, h, 4, 0.0);
        } else CHECK(0);
        t = sam2d_checkpoint_find(ck, "bf");
        CHECK(t && t->dtype == SAM2D_BF16 && t->numel == 3);
        sam2d_checkpoint_free(ck);
    }
    size_t ok = 0;
    for (size_t n = 0; n < b.n; n++) {
        sam2d_checkpoint *t = NULL;
        if (sam2d_checkpoint_load_memory(b.p, n, NULL, &t) == SAM2D_OK) ok++;
        sam2d_checkpoint_free(t);
    }
    CHECK_MSG(ok == 0, "%zu truncations of the crafted safetensors loaded", ok);
    bb_free(&b);

    struct {
        const char *what, *header;
        size_t data_len;
        sam2d_status want;
        const char *substr;
    } cases[] = {
        {"header lies: offsets past data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
         SAM2D_ERR_FORMAT, "run past"},
        {"header lies: shape vs offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
         SAM2D_ERR_FORMAT, "lies about sizes"},
        {"header lies: dtype vs offsets", "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
         SAM2D_ERR_FORMAT, "lies about sizes"},
        {"overlapping tensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         16, SAM2D_ERR_FORMAT, "overlap"},
        {"begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16, SAM2D_ERR_FORMAT,
         "malformed data_offsets"},
        {"overflowing shape",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,16]}}", 16,
         SAM2D_ERR_FORMAT, "overflowing shape"},
        {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16, SAM2D_ERR_FORMAT,
         "shape"},
        {"int64 tensor", "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
         SAM2D_ERR_UNSUPPORTED, "I64"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, SAM2D_ERR_FORMAT,
         "Q7"},
        {"missing fields", "{\"a\":{\"dtype\":\"F32\"}}", 16, SAM2D_ERR_FORMAT, "lacks"},
        {"not JSON", "{\"a\":", 16, SAM2D_ERR_FORMAT, "JSON"},
        {"duplicate names",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         16, SAM2D_ERR_FORMAT, "JSON"},
        {"nine dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 16,
         SAM2D_ERR_UNSUPPORTED, "dimensions"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        bb s = st_build(cases[c].header, data, cases[c].data_len);
        expect(cases[c].what, &s, cases[c].want, cases[c].substr);
        bb_free(&s);
    }
    /* header length fields that lie */
    bb s = st_build("{}", data, 0);
    s.p[0] = 0xff; /* 255 > file */
    expect("header length past EOF", &s, SAM2D_ERR_FORMAT, "exceeds");
    memset(s.p, 0xff, 8);
    s.p[7] = 0x7f; /* 2^63 - 1 */
    expect("huge header length", &s, SAM2D_ERR_FORMAT, "exceeds");
    bb_free(&s);
}

int main(void) {
    size_t mem0 = sam2d_memory_used();
    test_pt_layouts();
    test_pt_refusals();
    test_pt_big();
    test_safetensors();
    CHECK_MSG(sam2d_memory_used() == mem0, "memory leaked: %zu bytes", sam2d_memory_used() - mem0);
    return test_finish();
}
