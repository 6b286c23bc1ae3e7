#define _GNU_SOURCE
/* The service under hostile or careless clients: malformed HTTP, slow and
 * silent connections, broken multipart uploads, archives media refuses, JSON
 * edge cases, an object flood, and a propagation whose client never reads
 * (cancel, close and SIGTERM must still work). After each scenario the
 * accounted memory returns to its baseline and the server exits 0 at SIGTERM
 * (under the sanitizer build that also means no leak). */
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>

#include "core/alloc.h"
#include <jansson.h>
#include <zlib.h>

#include "media/image_io.h"
#include "media/mask_png.h"
#include "media/rle.h"
#include "server/server_harness.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro"
#define BIG_FRAMES 40 /* frames of the upscaled clip (see big_frames) */

static const char *model_env[] = {"SAM2_CHECKPOINT=" MICRO "/model.pt", "SAM2_CONFIG=" MICRO "/config.yaml",
                                  "SAM2_THREADS=2", NULL};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A number after "field": (or after `field ` in Prometheus text) in a GET answer; -1 if absent. */
static long long number_in(int port, const char *path, const char *key) {
    char *b = NULL;
    long long v = -1;
    if (http_get(port, path, &b) == 200 && b) {
        const char *p = strstr(b, key);
        if (p) v = atoll(p + strlen(key));
    }
    free(b);
    return v;
}

static long long memory_bytes(int port) { return number_in(port, "/health", "\"memory_bytes\":"); }

/* Accounted memory comes back to `base` (frees may trail the last response a little). */
static bool memory_returns(int port, long long base) {
    long long m = -1;
    for (int i = 0; i < 100; i++) {
        m = memory_bytes(port);
        if (m == base) return true;
        usleep(50 * 1000);
    }
    fprintf(stderr, "memory_bytes %lld, baseline %lld\n", m, base);
    return false;
}

static int session_path_post(int port, const char *sid, const char *action, const char *json, char **body) {
    char path[160];
    snprintf(path, sizeof path, "/session/%s/%s", sid, action);
    return http_post(port, path, json, body);
}

static const char *session_state(int port, const char *sid, char *buf, size_t cap) {
    char path[160], *b = NULL;
    snprintf(path, sizeof path, "/session/%s", sid);
    buf[0] = 0;
    if (http_get(port, path, &b) == 200 && b) json_str_field(b, "state", buf, cap);
    free(b);
    return buf;
}

/* Send raw bytes on a fresh connection, read until the server closes (or timeout_s). */
static char *raw_exchange(int port, const void *data, size_t n, int timeout_s, size_t *out_len) {
    int fd = http_connect(port);
    if (fd < 0) return NULL;
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    write_all(fd, data, n);
    size_t len;
    char *buf = read_to_close(fd, &len);
    if (out_len) *out_len = len;
    return buf;
}

static int count_substr(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* ---------- malformed and unusual HTTP ---------- */

static void test_http_layer(int port, const char *sid) {
    char req[4096], *b;
    /* keep-alive with three pipelined requests in one write: three answers, in order */
    const char *pipe3 = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    b = raw_exchange(port, pipe3, strlen(pipe3), 10, NULL);
    CHECK_MSG(b && count_substr(b, "HTTP/1.1 200") == 2 && count_substr(b, "HTTP/1.1 404") == 1 &&
                  strstr(b, "HTTP/1.1 404") > strstr(b, "HTTP/1.1 200"),
              "pipelined: %.300s", b ? b : "(none)");
    free(b);
    /* a chunked JSON body is assembled like a plain one */
    const char *json = "{\"frame_idx\":0,\"obj_id\":1,\"points\":[[100,120]],\"labels\":[1]}";
    int n = snprintf(req, sizeof req,
                     "POST /session/%s/prompt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
                     "application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%.10s\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     sid, 10, json, strlen(json) - 10, json + 10);
    b = raw_exchange(port, req, (size_t)n, 30, NULL);
    CHECK_MSG(b && !strncmp(b, "HTTP/1.1 200", 12) && strstr(b, "\"counts\""), "chunked: %.300s", b ? b : "(none)");
    free(b);
    /* unknown method: our 405 with a JSON error */
    const char *foo = "FOO /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    b = raw_exchange(port, foo, strlen(foo), 10, NULL);
    CHECK_MSG(b && !strncmp(b, "HTTP/1.1 405", 12) && strstr(b, "\"error\""), "bad method: %.200s", b ? b : "");
    free(b);
    /* a 200 kB URL and a 100 kB header: refused by the HTTP layer, not a crash */
    size_t big = 200000;
    char *huge = malloc(big + 256);
    memcpy(huge, "GET /", 5);
    memset(huge + 5, 'a', big);
    n = snprintf(huge + 5 + big, 256, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    b = raw_exchange(port, huge, 5 + big + (size_t)n, 10, NULL);
    CHECK_MSG(b && (!strncmp(b, "HTTP/1.1 414", 12) || !strncmp(b, "HTTP/1.1 431", 12)), "huge url: %.100s",
              b ? b : "");
    free(b);
    n = snprintf(huge, 256, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + n, 'b', 100000);
    int m = snprintf(huge + n + 100000, 128, "\r\nConnection: close\r\n\r\n");
    b = raw_exchange(port, huge, (size_t)n + 100000 + (size_t)m, 10, NULL);
    CHECK_MSG(b && !strncmp(b, "HTTP/1.1 431", 12), "huge header: %.100s", b ? b : "");
    free(b);
    free(huge);
    /* garbage, an unknown protocol version, a body shorter than its Content-Length */
    b = raw_exchange(port, "garbage\r\n\r\n", 11, 10, NULL);
    CHECK(b && strstr(b, "HTTP/1.1 2") == NULL);
    free(b);
    const char *v99 = "GET /health HTTP/9.9\r\nHost: x\r\n\r\n";
    b = raw_exchange(port, v99, strlen(v99), 10, NULL);
    CHECK_MSG(b && !strncmp(b, "HTTP/1.1 505", 12), "HTTP/9.9: %.100s", b ? b : "");
    free(b);
    const char *huge_cl = "POST /cleanup HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                          "99999999999999999999999\r\n\r\n{}";
    b = raw_exchange(port, huge_cl, strlen(huge_cl), 10, NULL);
    CHECK_MSG(b && !strncmp(b, "HTTP/1.1 413", 12), "huge Content-Length: %.100s", b ? b : "");
    free(b);
    n = snprintf(req, sizeof req,
                 "POST /session/%s/prompt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"frame_idx\"", sid);
    b = raw_exchange(port, req, (size_t)n, 1, NULL); /* the client gives up; the server must not mind */
    free(b);
    CHECK(http_get(port, "/health", NULL) == 200);

    /* client text never becomes a metric label: quotes and newlines would break the exposition
     * format, and many distinct junk routes would fill the route table before real ones are seen */
    CHECK(http_get(port, "/session/abc/x%22y%0Az%7D", NULL) == 404);
    for (int i = 0; i < 120; i++) {
        char junk[64];
        snprintf(junk, sizeof junk, "/session/abc/junk%d", i);
        CHECK(http_get(port, junk, NULL) == 404);
    }
    const char *odd = "BREW\"X /session/abc/prompt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    b = raw_exchange(port, odd, strlen(odd), 10, NULL);
    free(b);
    CHECK(http_get(port, "/session/abc/frame/0", NULL) == 404); /* a real route first seen after the junk */
    char *metrics = NULL;
    CHECK(http_get(port, "/metrics", &metrics) == 200);
    bool clean = metrics != NULL;
    for (const char *line = metrics; clean && line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        clean = line[0] == '#' || !strncmp(line, "sam2d_", 6) || line[0] == '\n';
    CHECK_MSG(clean && !strstr(metrics, "junk") && !strstr(metrics, "x\"y") && !strstr(metrics, "BREW"),
              "metrics exposition polluted by client text");
    CHECK(metrics && strstr(metrics, "route=\"/session/{id}/frame\",status=\"404\""));
    free(metrics);
}

/* ---------- a slow client must not block others ---------- */

typedef struct {
    int port;
    double finished;
    bool answered;
} slow_client;

static void *slowloris(void *arg) {
    slow_client *sc = arg;
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghij\r\nConnection: close\r\n\r\n";
    int fd = http_connect(sc->port);
    if (fd < 0) return NULL;
    for (const char *p = req; *p; p++) { /* one byte every 25 ms: ~2 s for the request */
        if (write(fd, p, 1) != 1) break;
        usleep(25 * 1000);
    }
    char buf[512];
    ssize_t r = read(fd, buf, sizeof buf - 1);
    sc->answered = r > 12 && !strncmp(buf, "HTTP/1.1 200", 12);
    sc->finished = now_s();
    close(fd);
    return NULL;
}

static void test_slow_client(int port) {
    slow_client sc[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        sc[i] = (slow_client){port, 0, false};
        pthread_create(&th[i], NULL, slowloris, &sc[i]);
    }
    usleep(300 * 1000);
    int ok = 0;
    double last = 0;
    for (int i = 0; i < 5; i++) {
        if (http_get(port, "/health", NULL) == 200) ok++;
        last = now_s();
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECK_MSG(ok == 5, "only %d of 5 health checks answered beside slow clients", ok);
    /* the fast requests were all answered while the slow ones were still dribbling */
    for (int i = 0; i < 3; i++) CHECK(sc[i].answered && sc[i].finished > last);
}

/* ---------- broken uploads ---------- */

static char *multipart(const char *const *names, const void *const *datas, const size_t *lens, int nparts,
                       bool closing, size_t *out_len) {
    size_t cap = 4096;
    for (int i = 0; i < nparts; i++) cap += lens[i] + 512;
    char *b = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < nparts; i++) {
        n += (size_t)snprintf(b + n, cap - n,
                              "--BND\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"f%d.tar\"\r\n"
                              "Content-Type: application/octet-stream\r\n\r\n",
                              names[i], i);
        memcpy(b + n, datas[i], lens[i]);
        n += lens[i];
        n += (size_t)snprintf(b + n, cap - n, "\r\n");
    }
    if (closing) n += (size_t)snprintf(b + n, cap - n, "--BND--\r\n");
    *out_len = n;
    return b;
}

static int upload_raw(int port, const char *ctype, const char *body, size_t len, char **resp_body) {
    http_resp r;
    if (http_request(port, "POST", "/session/start", ctype, body, len, NULL, &r) != 0) return -1;
    int st = r.status;
    if (resp_body) *resp_body = strdup(r.body);
    http_resp_free(&r);
    return st;
}

static void expect_upload(int port, const char *what, const char *ctype, const char *body, size_t len, int status,
                          const char *needle) {
    char *rb = NULL;
    int st = upload_raw(port, ctype, body, len, &rb);
    CHECK_MSG(st == status && rb && strstr(rb, "\"error\"") && strstr(rb, needle), "%s: %d %s", what, st,
              rb ? rb : "");
    free(rb);
}

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, unsigned long v) { put16(p, (unsigned)(v & 0xffff)), put16(p + 2, (unsigned)(v >> 16)); }

/* A zip with one deflated entry "a.jpg" of `real` zero bytes whose headers declare `declared`
 * (a bomb: ~1000x compression; with declared < real, one that lies about its size). */
static uint8_t *zip_bomb(size_t real, unsigned long declared, size_t *out_len) {
    size_t cap = real / 500 + 4096;
    uint8_t *z = calloc(1, cap), *zero = calloc(1, 1 << 20);
    size_t off = 30 + 5; /* local header + name */
    z_stream zs = {0};
    deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    unsigned long crc = crc32(0, NULL, 0);
    for (size_t done = 0; done < real; done += 1 << 20) {
        zs.next_in = zero;
        zs.avail_in = 1 << 20;
        crc = crc32(crc, zero, 1 << 20);
        int flush = done + (1 << 20) >= real ? Z_FINISH : Z_NO_FLUSH;
        do {
            zs.next_out = z + off;
            zs.avail_out = (uInt)(cap - off - 200);
            deflate(&zs, flush);
            off = cap - 200 - zs.avail_out;
        } while (zs.avail_in > 0);
    }
    size_t comp = zs.total_out;
    deflateEnd(&zs);
    free(zero);
    uint8_t *h = z; /* local file header */
    put32(h, 0x04034b50), put16(h + 4, 20), put16(h + 8, 8), put32(h + 14, crc), put32(h + 18, comp);
    put32(h + 22, declared), put16(h + 26, 5), memcpy(h + 30, "a.jpg", 5);
    uint8_t *c = z + off; /* central directory entry */
    memset(c, 0, 46 + 5 + 22);
    put32(c, 0x02014b50), put16(c + 4, 20), put16(c + 6, 20), put16(c + 10, 8), put32(c + 16, crc);
    put32(c + 20, comp), put32(c + 24, declared), put16(c + 28, 5), memcpy(c + 46, "a.jpg", 5);
    uint8_t *e = c + 51; /* end of central directory */
    put32(e, 0x06054b50), put16(e + 8, 1), put16(e + 10, 1), put32(e + 12, 51), put32(e + 16, off);
    *out_len = off + 51 + 22;
    return z;
}

static void test_bad_uploads(int port, const tar_buf *frames) {
    const char *ct = "multipart/form-data; boundary=BND";
    const char *file1[] = {"file"}, *file2[] = {"file", "file"}, *video[] = {"video"};
    const void *d2[] = {frames->buf, frames->buf};
    size_t l2[] = {frames->len, frames->len}, l0[] = {0};
    size_t n;
    char *b = multipart(file2, d2, l2, 2, true, &n);
    expect_upload(port, "two file parts", ct, b, n, 400, "more than one 'file'");
    free(b);
    b = multipart(video, d2, l2, 1, true, &n);
    expect_upload(port, "field 'video'", ct, b, n, 400, "field 'file'");
    free(b);
    b = multipart(file1, d2, l0, 1, true, &n);
    expect_upload(port, "empty file", ct, b, n, 400, "non-empty field 'file'");
    free(b);
    b = multipart(file1, d2, l2, 1, false, &n);
    expect_upload(port, "no closing boundary", ct, b, n, 400, "truncated");
    expect_upload(port, "cut in the middle", ct, b, n / 2, 400, "truncated");
    expect_upload(port, "no boundary parameter", "multipart/form-data", b, n, 415, "multipart/form-data");
    expect_upload(port, "not multipart", "application/octet-stream", frames->buf, frames->len, 415,
                  "multipart/form-data");
    free(b);
    /* archives media refuses: the reason reaches the client */
    size_t jn;
    char *jpg = read_whole(MICRO "/video/00000.jpg", &jn);
    tar_buf t = {0};
    tar_add(&t, "../../escape.jpg", jpg, jn);
    tar_add(&t, "00001.jpg", jpg, jn);
    tar_finish(&t);
    http_resp r;
    CHECK(http_upload(port, t.buf, t.len, "trav.tar", NULL, &r) == 0);
    CHECK_MSG(r.status == 415 && strstr(r.body, "traversal"), "traversal: %d %s", r.status, r.body);
    http_resp_free(&r);
    free(t.buf);
    t = (tar_buf){0};
    tar_add(&t, "00000.jpg", "hello, not a picture", 20);
    tar_finish(&t);
    CHECK(http_upload(port, t.buf, t.len, "fake.tar", NULL, &r) == 0);
    CHECK_MSG(r.status == 415 && strstr(r.body, "not a JPEG or PNG"), "fake jpeg: %d %s", r.status, r.body);
    http_resp_free(&r);
    free(t.buf);
    /* zip bombs: one that declares its size, one that lies about it */
    size_t zl;
    uint8_t *zip = zip_bomb(100u << 20, 100ul << 20, &zl);
    CHECK(http_upload(port, zip, zl, "bomb.zip", NULL, &r) == 0);
    CHECK_MSG(r.status == 413 && strstr(r.body, "uncompressed"), "zip bomb (%zu bytes): %d %s", zl, r.status, r.body);
    http_resp_free(&r);
    free(zip);
    zip = zip_bomb(100u << 20, 1000, &zl);
    CHECK(http_upload(port, zip, zl, "liar.zip", NULL, &r) == 0);
    CHECK_MSG(r.status == 413 && strstr(r.body, "inflates beyond"), "lying zip: %d %s", r.status, r.body);
    http_resp_free(&r);
    free(zip);
    /* a truncated archive (half a frame) */
    t = tar_of_jpegs(MICRO "/video", 2);
    CHECK(http_upload(port, t.buf, 512 + jn / 2, "cut.tar", NULL, &r) == 0);
    CHECK_MSG(r.status == 415 || r.status == 400, "cut tar: %d %s", r.status, r.body);
    http_resp_free(&r);
    free(t.buf);
    free(jpg);
    CHECK(number_in(port, "/health", "\"active_sessions\":") == 0);
}

/* ---------- JSON edge cases ---------- */

static void test_json_edges(int port, const char *sid) {
    static const struct {
        const char *body;
        int status;
        const char *needle;
    } cases[] = {
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[NaN,1]],\"labels\":[1]}", 400, "malformed JSON"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[Infinity,1]],\"labels\":[1]}", 400, "malformed JSON"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1e400,1]],\"labels\":[1]}", 400, "malformed JSON"},
        {"{\"frame_idx\":0,\"obj_id\":99999999999999999999999,\"points\":[[1,1]],\"labels\":[1]}", 400, "malformed"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"obj_id\":2,\"points\":[[1,1]],\"labels\":[1]}", 400, "duplicate"},
        {"{\"frame_idx\":0.0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1]}", 400, "must be an integer"},
        {"{\"frame_idx\":0,\"obj_id\":-1,\"points\":[[1,1]],\"labels\":[1]}", 400, "out of range"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1],\"x\":\"\\ud800\"}", 400, "malformed"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1]} trailing", 400, "malformed"},
        {"\xff\xfe{}", 400, "malformed"},
        {"[1,2]", 400, "JSON object"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[320.001,0]],\"labels\":[1]}", 400, "outside"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[2]}", 400, "labels[0]"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"box\":[10,10,5,5]}", 400, "'box'"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1],\"clear_old_points\":1}", 400, "true or"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"\xc3\xa9t\xc3\xa9\":1}", 400, "unknown field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = NULL;
        int st = session_path_post(port, sid, "prompt", cases[i].body, &b);
        CHECK_MSG(st == cases[i].status && b && strstr(b, cases[i].needle), "case %zu: %d %s", i, st, b ? b : "");
        free(b);
    }
    /* deep nesting stops at the parser's depth limit */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    char *b = NULL;
    int st = session_path_post(port, sid, "prompt", deep, &b);
    CHECK_MSG(st == 400 && b && strstr(b, "depth"), "deep: %d %s", st, b ? b : "");
    free(b);
    free(deep);
    /* 64 points, some exactly on the border (x = width, y = height): accepted; 65: refused */
    char pts[4096] = "{\"frame_idx\":0,\"obj_id\":1,\"points\":[", lab[512] = "";
    for (int i = 0; i < 64; i++) {
        char one[32];
        snprintf(one, sizeof one, "%s[%d,%d]", i ? "," : "", i == 0 ? 320 : i * 5, i == 1 ? 240 : i * 3);
        strcat(pts, one);
        strcat(lab, i ? ",1" : "1");
    }
    char body[8192];
    snprintf(body, sizeof body, "%s],\"labels\":[%s]}", pts, lab);
    CHECK(session_path_post(port, sid, "prompt", body, NULL) == 200);
    snprintf(body, sizeof body, "%s,[0,0]],\"labels\":[%s,0]}", pts, lab);
    st = session_path_post(port, sid, "prompt", body, &b);
    CHECK_MSG(st == 400 && b && strstr(b, "at most 64"), "65 points: %d %s", st, b ? b : "");
    free(b);
    /* ids at the extremes of the accepted range */
    CHECK(session_path_post(port, sid, "prompt",
                            "{\"frame_idx\":9,\"obj_id\":2147483647,\"box\":[0,0,320,240]}", NULL) == 200);
    CHECK(session_path_post(port, sid, "remove_object", "{\"obj_id\":2147483647}", NULL) == 200);
}

/* Peak resident memory of a process, kB (VmHWM). */
static long peak_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

/* Big JSON bodies: only /mask may be large, and no body may hold more values than any request
 * needs (parsed values cost ~20x their text: 30 MB of "0," used to take 0.65 GB). */
static void test_json_bodies(int port, pid_t pid, const char *sid) {
    size_t n = 30u << 20;
    char *big = malloc(n + 1);
    memcpy(big, "{\"x\":[", 6);
    for (size_t i = 6; i + 2 < n; i += 2) big[i] = '0', big[i + 1] = ',';
    memcpy(big + n - 4, "0]}", 4);
    long before = peak_rss_kb(pid);
    char path[160], *b = NULL;
    snprintf(path, sizeof path, "/session/%s/mask", sid);
    http_resp r;
    CHECK(http_request(port, "POST", path, "application/json", big, n - 1, NULL, &r) == 0);
    CHECK_MSG(r.status == 400 && strstr(r.body, "more than 10000 values"), "30 MB of values: %d %.200s", r.status,
              r.body ? r.body : "");
    http_resp_free(&r);
    long after = peak_rss_kb(pid);
    CHECK_MSG(before > 0 && after - before < 300 * 1024, "peak RSS grew by %ld MB", (after - before) >> 10);
    /* every other route takes at most 1 MiB */
    int st = session_path_post(port, sid, "clear", big, &b);
    CHECK_MSG(st == 413 && b && strstr(b, "larger than 1024 kB"), "clear with 30 MB: %d %s", st, b ? b : "");
    free(b);
    free(big);
}

/* ---------- objects per session ---------- */

static void test_object_cap(int port, const char *sid, int max_objects) {
    char body[256], *b = NULL;
    for (int o = 1; o <= max_objects; o++) {
        snprintf(body, sizeof body, "{\"frame_idx\":0,\"obj_id\":%d,\"points\":[[%d,%d]],\"labels\":[1]}", o,
                 20 + 35 * (o % 8), 30 + 25 * (o / 8));
        CHECK(session_path_post(port, sid, "prompt", body, NULL) == 200);
    }
    int st = session_path_post(port, sid, "prompt",
                               "{\"frame_idx\":0,\"obj_id\":1000,\"points\":[[10,10]],\"labels\":[1]}", &b);
    CHECK_MSG(st == 413 && b && strstr(b, "MAX_OBJECTS"), "object %d: %d %s", max_objects + 1, st, b ? b : "");
    free(b);
    st = session_path_post(port, sid, "mask",
                           "{\"frame_idx\":0,\"obj_id\":1000,\"mask\":{\"size\":[240,320],\"counts\":\"PP[2\"}}", &b);
    CHECK_MSG(st == 413 && b && strstr(b, "MAX_OBJECTS"), "mask object: %d %s", st, b ? b : "");
    free(b);
    /* an existing object can still be refined */
    CHECK(session_path_post(port, sid, "prompt", "{\"frame_idx\":1,\"obj_id\":1,\"points\":[[60,60]],\"labels\":[1]}",
                            NULL) == 200);
}

/* The palette PNG of a frame equals the RLE masks painted in order (later objects win), with many
 * objects (the PNG path keeps two planes, not one per object). */
static void test_png_masks(int port, const char *sid) {
    char path[160], *rle = NULL;
    snprintf(path, sizeof path, "/session/%s/masks/0", sid);
    CHECK(http_get(port, path, &rle) == 200);
    snprintf(path, sizeof path, "/session/%s/masks/0?format=png", sid);
    http_resp r;
    CHECK(http_json(port, "GET", path, NULL, &r) == 0 && r.status == 200);
    json_t *root = rle ? json_loads(rle, 0, NULL) : NULL;
    json_t *objs = json_object_get(root, "objects");
    uint8_t *ids = NULL;
    int h = 0, w = 0;
    CHECK(r.status == 200 &&
          sam_mask_png_decode_palette((const uint8_t *)r.body, r.len, 0, &ids, &h, &w) == SAM2D_OK);
    CHECK_MSG(json_array_size(objs) >= 8 && h == 240 && w == 320, "%zu objects, %dx%d", json_array_size(objs), w, h);
    if (ids && h == 240 && w == 320) {
        uint8_t *want = calloc((size_t)h * w, 1), *bin = malloc((size_t)h * w);
        for (size_t i = 0; i < json_array_size(objs); i++) {
            json_t *o = json_array_get(objs, i);
            const char *counts = json_string_value(json_object_get(json_object_get(o, "mask"), "counts"));
            CHECK(counts && sam_rle_string_to_mask(counts, h, w, bin) == SAM2D_OK);
            for (size_t k = 0; k < (size_t)h * w; k++)
                if (bin[k]) want[k] = (uint8_t)json_integer_value(json_object_get(o, "obj_id"));
        }
        size_t diff = 0;
        for (size_t k = 0; k < (size_t)h * w; k++) diff += want[k] != ids[k];
        CHECK_MSG(diff == 0, "%zu pixels differ between the PNG and the RLE masks", diff);
        free(want);
        free(bin);
    }
    sam_free(ids);
    json_decref(root);
    http_resp_free(&r);
    free(rle);
}

/* ---------- a propagation whose client never reads ---------- */

/* Start a propagation on a connection with a tiny receive buffer that is then never read. */
static int start_unread_propagation(int port, const char *sid) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /session/%s/propagate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 2\r\n\r\n{}",
                     sid);
    write_all(fd, req, (size_t)n);
    return fd;
}

/* Wait until the propagation makes no progress for a while although it still runs: the server
 * waits for the reader. Returns false if it finished (or never started) instead. */
static bool wait_stalled(int port, const char *sid) {
    long long last = -1;
    double since = now_s();
    char state[32];
    for (int i = 0; i < 1200; i++) {
        usleep(100 * 1000);
        long long f = number_in(port, "/metrics", "\nsam2d_frames_propagated_total ");
        if (strcmp(session_state(port, sid, state, sizeof state), "propagating") != 0) return false;
        if (f != last) {
            last = f;
            since = now_s();
        } else if (now_s() - since > 1.5) {
            return true;
        }
    }
    return false;
}

static bool wait_state(int port, const char *sid, const char *want, double timeout_s) {
    char state[32];
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        if (!strcmp(session_state(port, sid, state, sizeof state), want)) return true;
        usleep(100 * 1000);
    }
    fprintf(stderr, "session state '%s', expected '%s'\n", state, want);
    return false;
}

static void test_unread_stream_cancel(int port, const char *sid) {
    int fd = start_unread_propagation(port, sid);
    CHECK(fd >= 0);
    bool stalled = wait_stalled(port, sid);
    CHECK_MSG(stalled, "the propagation did not wait for its reader (STREAM_BUFFER_KB ignored?)");
    /* one operation at a time: a second propagation and a reset are refused, not queued */
    char *b = NULL;
    CHECK(session_path_post(port, sid, "propagate", "{}", NULL) == 409);
    CHECK(session_path_post(port, sid, "reset", "{}", NULL) == 409);
    CHECK(session_path_post(port, sid, "cancel", "{}", &b) == 200);
    CHECK(b && strstr(b, "\"cancelled\":true"));
    free(b);
    CHECK(session_path_post(port, sid, "cancel", "{}", NULL) == 200); /* twice is harmless */
    /* the cancel ends the propagation although the reader still reads nothing */
    CHECK(wait_state(port, sid, "ready", 20));
    CHECK(session_path_post(port, sid, "prompt", "{\"frame_idx\":2,\"obj_id\":1,\"points\":[[70,70]],\"labels\":[1]}",
                            NULL) == 200);
    /* the reader finally reads: it gets frame lines and the cancelled summary */
    size_t cap = 64 << 20, len = 0;
    char *all = malloc(cap);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        ssize_t r = read(fd, all + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
        all[len] = 0;
        if (strstr(all + (len > 4096 ? len - 4096 : 0), "\"done\":true")) break;
    }
    all[len] = 0;
    CHECK_MSG(strstr(all, "\"cancelled\":true") != NULL, "stream tail: %.200s", len > 200 ? all + len - 200 : all);
    free(all);
    close(fd);
}

/* Close a session while its propagation streams to a client that does not read: the session is
 * unlisted at once and freed when the stream lets go of it. */
static void test_close_during_propagation(int port, const char *sid, long long base) {
    int fd = start_unread_propagation(port, sid);
    CHECK(fd >= 0);
    usleep(100 * 1000);
    char path[160];
    snprintf(path, sizeof path, "/session/%s", sid);
    http_resp r;
    CHECK(http_json(port, "DELETE", path, NULL, &r) == 0 && r.status == 200);
    http_resp_free(&r);
    CHECK(http_get(port, path, NULL) == 404);
    CHECK(number_in(port, "/health", "\"active_sessions\":") == 0);
    close(fd);
    CHECK_MSG(memory_returns(port, base), "memory not returned after closing a session during propagation");
}

/* ---------- connection limit and silent connections ---------- */

static void test_timeouts(const tar_buf *frames) {
    srv_proc p;
    const char *env[] = {model_env[0], model_env[1], model_env[2], "HTTP_TIMEOUT=1", "HTTP_MAX_CONNECTIONS=4",
                         "STREAM_BUFFER_KB=16", "MAX_OBJECTS=8", "MAX_CONCURRENT_SESSIONS=1",
                         "SESSION_TIMEOUT=2", "CLEANUP_INTERVAL=3600", NULL};
    CHECK_MSG(srv_start(&p, env, "robust-timeouts") == 0, "server did not start");
    if (!p.pid) return;
    /* more silent connections than HTTP_MAX_CONNECTIONS: the service still answers (at the latest once
     * HTTP_TIMEOUT has closed them), and every silent connection gets closed */
    int fds[6];
    for (int i = 0; i < 6; i++) fds[i] = http_connect(p.port);
    usleep(200 * 1000);
    bool answered = false;
    for (int i = 0; i < 50 && !answered; i++) {
        answered = http_get(p.port, "/health", NULL) == 200;
        if (!answered) usleep(100 * 1000);
    }
    CHECK_MSG(answered, "no answer while silent connections exceed HTTP_MAX_CONNECTIONS");
    for (int i = 0; i < 6; i++) {
        struct pollfd pf = {fds[i], POLLIN, 0};
        int ready = poll(&pf, 1, 6000);
        char c;
        CHECK_MSG(ready == 1 && read(fds[i], &c, 1) <= 0, "silent connection %d was not closed", i);
        close(fds[i]);
    }
    CHECK(http_get(p.port, "/health", NULL) == 200);
    /* an upload in progress holds a session slot: a second one is refused before its body is read
     * (uploads on disk never outnumber free slots), and the slot returns when the first one is abandoned */
    size_t mlen;
    const char *mct;
    char *mp = multipart_body(frames->buf, frames->len, "frames.tar", &mlen, &mct);
    int slow = http_connect(p.port);
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST /session/start HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", mct,
                      mlen);
    write_all(slow, head, (size_t)hn);
    write_all(slow, mp, mlen / 2);
    usleep(300 * 1000);
    http_resp r2;
    CHECK(http_upload(p.port, frames->buf, frames->len, "frames.tar", NULL, &r2) == 0);
    CHECK_MSG(r2.status == 429 && strstr(r2.body, "Maximum concurrent sessions"), "second upload: %d %s", r2.status,
              r2.body ? r2.body : "");
    http_resp_free(&r2);
    close(slow);
    free(mp);
    usleep(300 * 1000);
    /* a stream nobody reads is dropped after HTTP_TIMEOUT: the propagation stops, the session is free */
    char *sid = http_session_start(p.port, frames, NULL);
    CHECK(sid != NULL);
    if (sid) {
        for (int o = 1; o <= 8; o++) {
            char body[160];
            snprintf(body, sizeof body, "{\"frame_idx\":0,\"obj_id\":%d,\"points\":[[%d,%d]],\"labels\":[1]}", o,
                     100 + 200 * o, 20 + 12 * o);
            CHECK(session_path_post(p.port, sid, "prompt", body, NULL) == 200);
        }
        int fd = start_unread_propagation(p.port, sid);
        /* idle past SESSION_TIMEOUT while the stream holds it: /cleanup must not free it under the stream */
        usleep(2500 * 1000);
        char *b = NULL;
        CHECK(http_post(p.port, "/cleanup", "{}", &b) == 200);
        CHECK_MSG(b && !strstr(b, sid), "cleanup removed a session in use: %s", b ? b : "");
        free(b);
        char spath[160];
        snprintf(spath, sizeof spath, "/session/%s", sid);
        CHECK(http_get(p.port, spath, NULL) == 200);
        CHECK(wait_state(p.port, sid, "ready", 60));
        long long cancelled = number_in(p.port, "/metrics", "\nsam2d_propagations_cancelled_total ");
        long long frames = number_in(p.port, "/metrics", "\nsam2d_frames_propagated_total ");
        CHECK_MSG(cancelled == 1 && frames < BIG_FRAMES, "cancelled %lld, frames %lld", cancelled, frames);
        CHECK(session_path_post(p.port, sid, "prompt",
                                "{\"frame_idx\":3,\"obj_id\":2,\"points\":[[90,90]],\"labels\":[1]}", NULL) == 200);
        close(fd);
        /* a client that reads is never dropped, even when frames take longer than HTTP_TIMEOUT (as they
         * do here under the sanitizers): the stream sends whitespace between lines meanwhile */
        char *out = NULL;
        snprintf(spath, sizeof spath, "/session/%s/propagate", sid);
        CHECK(http_post(p.port, spath, "{\"start_frame_idx\":0,\"max_frames\":4}", &out) == 200);
        int lines = 0, parsed = 0;
        for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (nl) *nl = 0;
            json_t *v = json_loads(line, 0, NULL);
            lines++;
            parsed += json_is_object(v);
            json_decref(v);
        }
        CHECK_MSG(lines == 6 && parsed == 6, "%d lines, %d JSON objects", lines, parsed);
        free(out);
        /* once nobody holds it, the idle session expires */
        usleep(2500 * 1000);
        CHECK(http_post(p.port, "/cleanup", "{}", &b) == 200);
        CHECK_MSG(b && strstr(b, sid), "idle session not expired: %s", b ? b : "");
        free(b);
        free(sid);
    }
    int code = srv_stop(&p);
    CHECK_MSG(code == 0, "serve exit status %d after SIGTERM", code);
    if (code != 0) srv_dump_log(&p);
}

/* ---------- objects within the memory budget ---------- */

static void test_object_budget(const tar_buf *small) {
    srv_proc p;
    /* 67 MiB: the 10-frame micro session (about 66 MiB estimated) fits with room for a few objects */
    const char *env[] = {model_env[0], model_env[1], model_env[2], "MAX_MEMORY_MB=67", NULL};
    CHECK_MSG(srv_start(&p, env, "robust-budget") == 0, "server did not start");
    if (!p.pid) return;
    char *sid = http_session_start(p.port, small, NULL);
    CHECK(sid != NULL);
    if (sid) {
        int first_refused = 0;
        char body[160], *b = NULL;
        for (int o = 1; o <= 64 && !first_refused; o++) {
            snprintf(body, sizeof body, "{\"frame_idx\":0,\"obj_id\":%d,\"points\":[[%d,%d]],\"labels\":[1]}", o,
                     10 + 4 * o, 20 + 3 * o);
            free(b);
            b = NULL;
            int st = session_path_post(p.port, sid, "prompt", body, &b);
            if (st != 200) {
                first_refused = o;
                CHECK_MSG(st == 429 && b && strstr(b, "Memory budget exceeded") && strstr(b, "MAX_MEMORY_MB"),
                          "object %d: %d %s", o, st, b ? b : "");
            }
        }
        free(b);
        CHECK_MSG(first_refused > 1 && first_refused < 64, "first object refused: %d", first_refused);
        /* objects already there stay usable; removing one makes room again */
        CHECK(session_path_post(p.port, sid, "prompt", "{\"frame_idx\":1,\"obj_id\":1,\"points\":[[50,50]],\"labels\":[1]}",
                                NULL) == 200);
        CHECK(session_path_post(p.port, sid, "remove_object", "{\"obj_id\":2}", NULL) == 200);
        snprintf(body, sizeof body, "{\"frame_idx\":0,\"obj_id\":%d,\"points\":[[60,60]],\"labels\":[1]}",
                 first_refused);
        CHECK(session_path_post(p.port, sid, "prompt", body, NULL) == 200);
        free(sid);
    }
    int code = srv_stop(&p);
    CHECK_MSG(code == 0, "serve exit status %d after SIGTERM", code);
}

/* ---------- SIGTERM while a stream is not read ---------- */

static void test_sigterm_unread(srv_proc *p, const char *sid) {
    int fd = start_unread_propagation(p->port, sid);
    CHECK(wait_stalled(p->port, sid));
    /* the stop ends the propagation and cuts the silent reader off: well before the 30 s drain limit */
    double t0 = now_s();
    int code = srv_stop(p);
    double took = now_s() - t0;
    CHECK_MSG(code == 0, "serve exit status %d after SIGTERM", code);
    CHECK_MSG(took < 20, "SIGTERM took %.1f s with a stalled stream", took);
    if (fd >= 0) close(fd);
}

/* BIG_FRAMES frames of the micro clip stretched to 1920x160: column-major RLE grows with the width, so
 * NDJSON lines are hundreds of kB while the mask resizing stays cheap (the model's cost does not depend
 * on the video size); a reader that stops reading fills the socket buffers within a few frames. */
static tar_buf big_frames(void) {
    tar_buf t = {0};
    uint8_t *jpg[10] = {0};
    size_t jl[10] = {0};
    for (int i = 0; i < 10; i++) {
        char path[512];
        snprintf(path, sizeof path, MICRO "/video/%05d.jpg", i);
        uint8_t *rgb = NULL;
        int w, h;
        if (sam_image_decode_file(path, 0, &rgb, &w, &h) != SAM2D_OK) continue;
        int W = 6 * w, H = 2 * h / 3;
        uint8_t *up = malloc((size_t)W * H * 3); /* (H, W, 3) nearest-neighbour */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                memcpy(up + ((size_t)y * W + x) * 3, rgb + ((size_t)(y * 3 / 2) * w + x / 6) * 3, 3);
        sam_jpeg_encode(up, W, H, 85, &jpg[i], &jl[i]);
        free(up);
        sam_free(rgb);
    }
    for (int f = 0; f < BIG_FRAMES; f++) {
        char name[32];
        snprintf(name, sizeof name, "f%04d.jpg", f);
        if (jpg[f % 10]) tar_add(&t, name, jpg[f % 10], jl[f % 10]);
    }
    tar_finish(&t);
    for (int i = 0; i < 10; i++) sam_free(jpg[i]);
    return t;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    tar_buf small = tar_of_jpegs(MICRO "/video", 1000);
    tar_buf big = big_frames();
    CHECK(big.len > 1024);
    srv_proc p;
    const char *env[] = {model_env[0], model_env[1], model_env[2], "STREAM_BUFFER_KB=16", "MAX_OBJECTS=8",
                         "MAX_CONCURRENT_SESSIONS=4", NULL};
    CHECK_MSG(srv_start(&p, env, "robust") == 0, "server did not start");
    if (p.pid) {
        int port = p.port;
        /* warm up: the first session may leave lasting caches; the baseline is after it */
        char *sid = http_session_start(port, &small, NULL);
        CHECK(sid != NULL);
        if (sid) {
            CHECK(session_path_post(port, sid, "prompt",
                                    "{\"frame_idx\":0,\"obj_id\":1,\"points\":[[100,120]],\"labels\":[1]}", NULL) == 200);
            /* the model's prompt scratch grows once to the largest point count (64) and stays */
            char pts[2048] = "{\"frame_idx\":0,\"obj_id\":2,\"points\":[", lab[256] = "";
            for (int i = 0; i < 64; i++) {
                char one[32];
                snprintf(one, sizeof one, "%s[%d,%d]", i ? "," : "", i * 5, i * 3);
                strcat(pts, one);
                strcat(lab, i ? ",1" : "1");
            }
            char body64[4096];
            snprintf(body64, sizeof body64, "%s],\"labels\":[%s]}", pts, lab);
            CHECK(session_path_post(port, sid, "prompt", body64, NULL) == 200);
            CHECK(http_post(port, "/session/close", "{\"session_id\":\"x\"}", NULL) == 404);
            char body[128];
            snprintf(body, sizeof body, "{\"session_id\":\"%s\"}", sid);
            CHECK(http_post(port, "/session/close", body, NULL) == 200);
            free(sid);
        }
        long long base = memory_bytes(port);
        CHECK(base > 0);
        fprintf(stderr, "baseline memory_bytes %lld\n", base);

        sid = http_session_start(port, &small, NULL);
        CHECK(sid != NULL);
        if (sid) {
            test_http_layer(port, sid);
            test_slow_client(port);
            test_json_edges(port, sid);
            test_json_bodies(port, p.pid, sid);
            test_object_cap(port, sid, 8);
            test_png_masks(port, sid);
            test_close_during_propagation(port, sid, base);
            free(sid);
        }
        CHECK_MSG(memory_returns(port, base), "after HTTP, JSON and object scenarios");
        test_bad_uploads(port, &small);
        CHECK_MSG(memory_returns(port, base), "after refused uploads");

        sid = http_session_start(port, &big, NULL);
        CHECK(sid != NULL);
        if (sid) {
            for (int o = 1; o <= 8; o++) {
                char body[160];
                snprintf(body, sizeof body, "{\"frame_idx\":0,\"obj_id\":%d,\"points\":[[%d,%d]],\"labels\":[1]}", o,
                         100 + 200 * o, 20 + 12 * o);
                CHECK(session_path_post(port, sid, "prompt", body, NULL) == 200);
            }
            test_unread_stream_cancel(port, sid);
            CHECK(http_get(port, "/health", NULL) == 200);
            test_sigterm_unread(&p, sid);
            free(sid);
        }
        if (p.pid) srv_stop(&p);
        if (test_failed_) srv_dump_log(&p);
    }
    test_object_budget(&small);
    test_timeouts(&big);
    free(small.buf);
    free(big.buf);
    return test_finish();
}
