#include "core/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

void sam_npy_free(sam_npy *a) {
    if (!a) return;
    sam_free(a->data);
    a->data = NULL;
}

static int parse_header(const char *h, sam_npy *out) {
    const char *d = strstr(h, "'descr'");
    const char *f = strstr(h, "'fortran_order'");
    const char *s = strstr(h, "'shape'");
    if (!d || !f || !s) return 0;
    d = strchr(d + 7, '\'');
    if (!d) return 0;
    const char *e = strchr(d + 1, '\'');
    if (!e || e - d - 1 >= (long)sizeof out->descr || e - d - 1 < 2) return 0;
    memcpy(out->descr, d + 1, (size_t)(e - d - 1));
    out->descr[e - d - 1] = 0;
    if (strncmp(strchr(f, ':') + 1 + strspn(strchr(f, ':') + 1, " "), "False", 5) != 0) return 0;
    s = strchr(s, '(');
    if (!s) return 0;
    s++;
    out->ndim = 0;
    out->count = 1;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || out->ndim >= SAM_NPY_MAX_DIMS) return 0;
        out->shape[out->ndim++] = v;
        if (v && out->count > INT64_MAX / v) return 0;
        out->count *= v;
        s = end;
    }
    return *s == ')';
}

sam2d_status sam_npy_read(const char *path, sam_npy *out) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return SAM_ERR(SAM2D_ERR_IO, "cannot open %s", path);
    unsigned char pre[12];
    sam2d_status st = SAM2D_OK;
    char *hdr = NULL;
    void *raw = NULL;
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: not a .npy file", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: truncated header", path);
            goto done;
        }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    if (hlen > 1 << 20) {
        st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: header too long", path);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, fp) != hlen) {
        st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: truncated header", path);
        goto done;
    }
    hdr[hlen] = 0;
    if (!parse_header(hdr, out)) {
        st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: unsupported header %s", path, hdr);
        goto done;
    }
    const char *t = out->descr;
    size_t es;
    if (!strcmp(t, "<f4") || !strcmp(t, "<i4")) es = 4;
    else if (!strcmp(t, "<f8") || !strcmp(t, "<i8")) es = 8;
    else if (!strcmp(t, "|u1") || !strcmp(t, "|b1")) es = 1;
    else {
        st = SAM_ERR(SAM2D_ERR_UNSUPPORTED, "%s: dtype %s not supported", path, t);
        goto done;
    }
    size_t n = (size_t)out->count;
    raw = malloc(n * es + 1);
    out->data = sam_malloc((n ? n : 1) * sizeof(float));
    if (!raw || !out->data) {
        st = SAM_ERR(SAM2D_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(raw, es, n, fp) != n) {
        st = SAM_ERR(SAM2D_ERR_FORMAT, "%s: truncated data", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        float v;
        if (!strcmp(t, "<f4")) memcpy(&v, (char *)raw + 4 * i, 4);
        else if (!strcmp(t, "<i4")) { int32_t x; memcpy(&x, (char *)raw + 4 * i, 4); v = (float)x; }
        else if (!strcmp(t, "<f8")) { double x; memcpy(&x, (char *)raw + 8 * i, 8); v = (float)x; }
        else if (!strcmp(t, "<i8")) { int64_t x; memcpy(&x, (char *)raw + 8 * i, 8); v = (float)x; }
        else v = ((unsigned char *)raw)[i];
        out->data[i] = v;
    }
done:
    free(hdr);
    free(raw);
    fclose(fp);
    if (st != SAM2D_OK) sam_npy_free(out);
    return st;
}

static sam2d_status write_npy(const char *path, const void *data, size_t es, const char *descr, int ndim,
                              const int64_t *shape) {
    char dict[256], shp[160] = "";
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        char part[32];
        snprintf(part, sizeof part, "%s%lld", i ? ", " : "", (long long)shape[i]);
        strncat(shp, part, sizeof shp - strlen(shp) - 1);
        count *= (size_t)shape[i];
    }
    if (ndim == 1) strncat(shp, ",", sizeof shp - strlen(shp) - 1); /* "(5,)" */
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shp);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *fp = fopen(path, "wb");
    if (!fp) return SAM_ERR(SAM2D_ERR_IO, "cannot write %s", path);
    unsigned short hl = (unsigned short)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    int ok = fwrite(pre, 1, 10, fp) == 10 && fwrite(dict, 1, (size_t)n, fp) == (size_t)n;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', fp) != EOF;
    ok = ok && fputc('\n', fp) != EOF;
    ok = ok && (count == 0 || fwrite(data, es, count, fp) == count);
    ok = (fclose(fp) == 0) && ok;
    return ok ? SAM2D_OK : SAM_ERR(SAM2D_ERR_IO, "write failed: %s", path);
}

sam2d_status sam_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    return write_npy(path, data, 4, "<f4", ndim, shape);
}

sam2d_status sam_npy_write_u8(const char *path, const uint8_t *data, int ndim, const int64_t *shape) {
    return write_npy(path, data, 1, "|u1", ndim, shape);
}
