/* The zip reader on its own: lookup, stored and deflated entries, zip64, and
 * the ways an archive can lie (duplicates, mismatched local headers, corrupt
 * or oversized deflate streams, size limits). */
#include "core/alloc.h"
#include "io/zip.h"
#include "test_checkpoint_util.h"
#include "test_util.h"

static void test_read(int deflate, int zip64) {
    char big[5000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 7);
    zent e[3] = {{"x/data.pkl", "pickle", 6, deflate, zip64}, {"x/data/0", big, sizeof big, deflate, zip64},
                 {"x/empty", "", 0, deflate, 0}};
    bb z = zip_build(e, 3, zip64);
    sam_zip *zip = NULL;
    sam2d_status s = sam_zip_open(z.p, z.n, 0, &zip);
    CHECK_MSG(s == SAM2D_OK, "open deflate=%d zip64=%d: %s", deflate, zip64, sam2d_last_error());
    if (zip) {
        CHECK(sam_zip_count(zip) == 3);
        CHECK(sam_zip_entry_at(zip, 3) == NULL);
        CHECK(sam_zip_find(zip, "x/data") == NULL && sam_zip_find(zip, "x/data/00") == NULL);
        const sam_zip_entry *d = sam_zip_find(zip, "x/data/0");
        CHECK(d && d->size == sizeof big && d->method == (deflate ? 8 : 0));
        if (d) {
            const uint8_t *p;
            void *owned;
            s = sam_zip_get(zip, d, &p, &owned);
            CHECK_MSG(s == SAM2D_OK && memcmp(p, big, sizeof big) == 0, "get: %s", sam2d_last_error());
            CHECK(deflate ? owned != NULL : owned == NULL);
            if (!deflate) CHECK(p > z.p && p < z.p + z.n); /* stored: read in place */
            sam_free(owned);
        }
        const sam_zip_entry *em = sam_zip_find(zip, "x/empty");
        if (em) {
            const uint8_t *p;
            void *owned;
            CHECK(sam_zip_get(zip, em, &p, &owned) == SAM2D_OK);
            sam_free(owned);
        } else CHECK(0);
        sam_zip_close(zip);
    }
    /* a size limit below an entry refuses the archive */
    s = sam_zip_open(z.p, z.n, 1000, &zip);
    CHECK(s == SAM2D_ERR_LIMIT && zip == NULL && strstr(sam2d_last_error(), "x/data/0"));
    bb_free(&z);
}

static size_t find(const bb *z, const char *pat, size_t len, size_t from) {
    for (size_t i = from; i + len <= z->n; i++)
        if (memcmp(z->p + i, pat, len) == 0) return i;
    return SIZE_MAX;
}

static sam2d_status get_first(const bb *z, const char *name) {
    sam_zip *zip = NULL;
    sam2d_status s = sam_zip_open(z->p, z->n, 0, &zip);
    if (s) return s;
    const sam_zip_entry *e = sam_zip_find(zip, name);
    const uint8_t *p;
    void *owned = NULL;
    s = e ? sam_zip_get(zip, e, &p, &owned) : SAM2D_ERR_NOT_FOUND;
    sam_free(owned);
    sam_zip_close(zip);
    return s;
}

static void test_lies(void) {
    /* duplicate names */
    zent d[2] = {{"a", "1", 1, 0, 0}, {"a", "2", 1, 0, 0}};
    bb z = zip_build(d, 2, 0);
    sam_zip *zip = NULL;
    CHECK(sam_zip_open(z.p, z.n, 0, &zip) == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "duplicate"));
    bb_free(&z);

    /* local header name differs from the central directory */
    zent e[1] = {{"data/0", "hello world", 11, 0, 0}};
    z = zip_build(e, 1, 0);
    size_t at = find(&z, "data/0", 6, 0); /* first hit: the local header */
    z.p[at] = 'D';
    CHECK(get_first(&z, "data/0") == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "does not match"));
    bb_free(&z);

    /* corrupt deflate stream */
    char text[2000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)(i * 7);
    zent f[1] = {{"t", text, sizeof text, 1, 0}};
    z = zip_build(f, 1, 0);
    for (size_t i = 30 + 1; i < 30 + 1 + 40; i++) z.p[i] ^= 0x5a;
    sam2d_status s = get_first(&z, "t");
    CHECK_MSG(s == SAM2D_ERR_FORMAT, "corrupt deflate: %s", sam2d_last_error());
    printf("corrupt deflate stream -> %s\n", sam2d_last_error());
    bb_free(&z);

    /* deflate stream longer than the declared size (a zip bomb in miniature) */
    z = zip_build(f, 1, 0);
    at = find(&z, "PK\x01\x02", 4, 0);
    CHECK(at != SIZE_MAX);
    memcpy(z.p + at + 24, "\x64\x00\x00\x00", 4); /* declare 100 bytes */
    s = get_first(&z, "t");
    CHECK_MSG(s == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "of 100 bytes"), "bomb: %s", sam2d_last_error());
    printf("deflate longer than declared -> %s\n", sam2d_last_error());
    bb_free(&z);

    /* zip64 size requested but no zip64 extra field */
    zent g[1] = {{"g", "abc", 3, 0, 0}};
    z = zip_build(g, 1, 0);
    at = find(&z, "PK\x01\x02", 4, 0);
    memcpy(z.p + at + 24, "\xff\xff\xff\xff", 4);
    CHECK(sam_zip_open(z.p, z.n, 0, &zip) == SAM2D_ERR_FORMAT && strstr(sam2d_last_error(), "zip64"));
    bb_free(&z);

    /* an empty archive is fine */
    z = zip_build(NULL, 0, 0);
    CHECK(sam_zip_open(z.p, z.n, 0, &zip) == SAM2D_OK && sam_zip_count(zip) == 0 && sam_zip_find(zip, "a") == NULL);
    sam_zip_close(zip);
    /* and the end record with a comment that runs past the file is not one */
    z.p[z.n - 2] = 5;
    CHECK(sam_zip_open(z.p, z.n, 0, &zip) == SAM2D_ERR_FORMAT);
    bb_free(&z);
}

int main(void) {
    size_t mem0 = sam2d_memory_used();
    for (int deflate = 0; deflate < 2; deflate++)
        for (int zip64 = 0; zip64 < 2; zip64++) test_read(deflate, zip64);
    test_lies();
    CHECK_MSG(sam2d_memory_used() == mem0, "memory leaked: %zu bytes", sam2d_memory_used() - mem0);
    return test_finish();
}
