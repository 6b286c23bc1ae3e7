/* Test harness for the HTTP service: starts `sam2d serve` as a child process
 * on a free loopback port with the given environment, speaks HTTP/1.0 to it
 * over plain sockets, and builds tar uploads. Header-only, test code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifndef SAM2D_TEST_SERVER_HARNESS_H
#define SAM2D_TEST_SERVER_HARNESS_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    int port;
    char log_path[256];
} srv_proc;

typedef struct {
    int status;
    char *headers; /* raw header block */
    char *body;    /* NUL-terminated (binary bodies may contain NULs: use len) */
    size_t len;
} http_resp;

static inline void http_resp_free(http_resp *r) {
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static inline int http_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {300, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send a request and read the whole response (the server closes HTTP/1.0 connections). */
/* Everything fd sends until the peer closes it (or a receive timeout / error),
 * NUL-terminated; closes fd. *out_len: the bytes read. */
static inline char *read_to_close(int fd, size_t *out_len) {
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 65536 > cap) buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    *out_len = len;
    return buf;
}

static inline int http_request(int port, const char *method, const char *path, const char *ctype, const void *body,
                               size_t body_len, const char *extra_headers, http_resp *out) {
    memset(out, 0, sizeof *out);
    int fd = http_connect(port);
    if (fd < 0) return -1;
    char head[2048];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s%s",
                      method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
                      extra_headers ? extra_headers : "");
    if (body) hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Length: %zu\r\n", body_len);
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\r\n");
    if (write_all(fd, head, (size_t)hn)) {
        close(fd);
        return -1;
    }
    /* a server may answer (e.g. 413) and stop reading before the body is sent: read the answer anyway */
    if (body && body_len) write_all(fd, body, body_len);
    size_t len;
    char *buf = read_to_close(fd, &len);
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(sep - buf);
    out->headers = strndup(buf, hl);
    out->len = len - hl - 4;
    out->body = malloc(out->len + 1);
    memcpy(out->body, sep + 4, out->len);
    out->body[out->len] = 0;
    sscanf(buf, "HTTP/%*s %d", &out->status);
    free(buf);
    return 0;
}

static inline int http_json(int port, const char *method, const char *path, const char *json, http_resp *out) {
    return http_request(port, method, path, json ? "application/json" : NULL, json, json ? strlen(json) : 0, NULL,
                        out);
}

/* POST/GET returning the status (-1: no answer); *body (optional) gets a malloc'd copy of the body. */
static inline int http_post(int port, const char *path, const char *json, char **body) {
    http_resp r;
    if (http_json(port, "POST", path, json, &r) != 0) return -1;
    int st = r.status;
    if (body) *body = strdup(r.body);
    http_resp_free(&r);
    return st;
}

static inline int http_get(int port, const char *path, char **body) {
    http_resp r;
    if (http_json(port, "GET", path, NULL, &r) != 0) return -1;
    int st = r.status;
    if (body) *body = strdup(r.body);
    http_resp_free(&r);
    return st;
}

/* multipart/form-data body with one field "file". */
static inline char *multipart_body(const void *data, size_t n, const char *filename, size_t *out_len,
                                   const char **ctype) {
    static const char *boundary = "----sam2dTestBoundary7MA4YWxkTrZu0gW";
    static char ct[128];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", boundary);
    *ctype = ct;
    char head[512], tail[128];
    int hn = snprintf(head, sizeof head,
                      "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n",
                      boundary, filename);
    int tn = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", boundary);
    char *b = malloc((size_t)hn + n + (size_t)tn);
    memcpy(b, head, (size_t)hn);
    memcpy(b + hn, data, n);
    memcpy(b + hn + n, tail, (size_t)tn);
    *out_len = (size_t)hn + n + (size_t)tn;
    return b;
}

static inline int http_upload(int port, const void *data, size_t n, const char *filename, const char *extra,
                              http_resp *out) {
    size_t len;
    const char *ct;
    char *body = multipart_body(data, n, filename, &len, &ct);
    int rc = http_request(port, "POST", "/session/start", ct, body, len, extra, out);
    free(body);
    return rc;
}

/* ---- tar (ustar) of files ---- */
typedef struct {
    char *buf;
    size_t len, cap;
} tar_buf;

static inline void tar_add(tar_buf *t, const char *name, const void *data, size_t n) {
    size_t need = t->len + 512 + ((n + 511) / 512) * 512 + 1024;
    if (need > t->cap) {
        t->cap = need * 2;
        t->buf = realloc(t->buf, t->cap);
    }
    char *h = t->buf + t->len;
    memset(h, 0, 512);
    snprintf(h, 100, "%s", name);
    snprintf(h + 100, 8, "%07o", 0644);
    snprintf(h + 108, 8, "%07o", 0);
    snprintf(h + 116, 8, "%07o", 0);
    snprintf(h + 124, 12, "%011lo", (unsigned long)n);
    snprintf(h + 136, 12, "%011lo", 0UL);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    t->len += 512;
    memcpy(t->buf + t->len, data, n);
    memset(t->buf + t->len + n, 0, ((n + 511) / 512) * 512 - n);
    t->len += ((n + 511) / 512) * 512;
}

static inline void tar_finish(tar_buf *t) {
    if (t->len + 1024 > t->cap) t->buf = realloc(t->buf, t->cap = t->len + 1024);
    memset(t->buf + t->len, 0, 1024);
    t->len += 1024;
}

static inline char *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* tar of every *.jpg of a folder, in name order. */
static inline tar_buf tar_of_jpegs(const char *dir, int max_files) {
    tar_buf t = {0};
    DIR *d = opendir(dir);
    char *names[4096];
    int nn = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && nn < 4096)
        if (strstr(e->d_name, ".jpg")) names[nn++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    for (int i = 0; i < nn; i++) {
        if (i < max_files) {
            char p[1024];
            snprintf(p, sizeof p, "%.700s/%.250s", dir, names[i]);
            size_t n;
            char *data = read_whole(p, &n);
            if (data) tar_add(&t, names[i], data, n);
            free(data);
        }
        free(names[i]);
    }
    tar_finish(&t);
    return t;
}

/* ---- server process ---- */

/* envs: NULL-terminated "NAME=value" list added to the environment. */
static inline int srv_start(srv_proc *p, const char *const *envs, const char *tag) {
    p->port = free_port();
    snprintf(p->log_path, sizeof p->log_path, "/tmp/sam2d-test-%s-%d.log", tag, (int)getpid());
    p->pid = fork();
    if (p->pid == 0) {
        char port[32];
        snprintf(port, sizeof port, "PORT=%d", p->port);
        putenv(strdup(port));
        putenv("HOST=127.0.0.1");
        for (const char *const *e = envs; e && *e; e++) putenv(strdup(*e));
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        const char *bin = getenv("SAM2D_BINARY");
        if (!bin) bin = SAM2D_BINARY;
        execl(bin, bin, "serve", (char *)NULL);
        _exit(127);
    }
    /* wait for /health */
    for (int i = 0; i < 600; i++) {
        http_resp r;
        if (http_json(p->port, "GET", "/health", NULL, &r) == 0 && r.status == 200) {
            http_resp_free(&r);
            return 0;
        }
        http_resp_free(&r);
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return -1;
        }
        usleep(100 * 1000);
    }
    return -1;
}

/* SIGTERM and wait; returns the exit status (or -1). */
static inline int srv_stop(srv_proc *p) {
    if (p->pid <= 0) return -1;
    kill(p->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 600; i++) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(100 * 1000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    p->pid = 0;
    return -1;
}

static inline void srv_dump_log(const srv_proc *p) {
    size_t n;
    char *log = read_whole(p->log_path, &n);
    if (log) {
        fprintf(stderr, "---- server log (%s) ----\n%s\n----\n", p->log_path, log);
        free(log);
    }
}

/* Extract a string field "name":"..." from a JSON text (test convenience). */
static inline int json_str_field(const char *json, const char *name, char *out, size_t cap) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *p = strstr(json, key);
    if (!p) return -1;
    p += strlen(key);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < cap) out[i++] = *p++;
    out[i] = 0;
    return 0;
}

/* Upload a tar as a new session; the malloc'd session id, or NULL (status in *status when given). */
static inline char *http_session_start(int port, const tar_buf *t, int *status) {
    http_resp r;
    if (status) *status = -1;
    if (http_upload(port, t->buf, t->len, "frames.tar", NULL, &r) != 0) return NULL;
    if (status) *status = r.status;
    char id[64];
    char *ret = NULL;
    if (r.status == 200 && json_str_field(r.body, "session_id", id, sizeof id) == 0) ret = strdup(id);
    else fprintf(stderr, "session/start: %d %s\n", r.status, r.body);
    http_resp_free(&r);
    return ret;
}

#endif
