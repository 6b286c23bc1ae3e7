#define _GNU_SOURCE
/* The service over real HTTP: limits, lifecycle, expiry, bad input, auth,
 * disconnects, concurrency and shutdown, against `sam2d serve` running the
 * golden micro model. */
#include <pthread.h>

#include "server/server_harness.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro"

static const char *model_env[] = {"SAM2_CHECKPOINT=" MICRO "/model.pt", "SAM2_CONFIG=" MICRO "/config.yaml",
                                  "SAM2_THREADS=2", NULL};

static long long health_number(int port, const char *field) {
    char *b = NULL;
    long long v = -1;
    if (http_get(port, "/health", &b) == 200) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":", field);
        const char *p = strstr(b, key);
        if (p) v = atoll(p + strlen(key));
    }
    free(b);
    return v;
}

typedef struct {
    int port;
    char sid[64];
    int idx;
    int status;
} worker;

static void *mixed_request(void *arg) {
    worker *w = arg;
    char path[160];
    switch (w->idx % 5) {
    case 0: w->status = http_get(w->port, "/health", NULL); break;
    case 1:
        snprintf(path, sizeof path, "/session/%s", w->sid);
        w->status = http_get(w->port, path, NULL);
        break;
    case 2:
        snprintf(path, sizeof path, "/session/%s/prompt", w->sid);
        w->status = http_post(w->port, path, "{\"frame_idx\":1,\"obj_id\":5,\"points\":[[100,120]],\"labels\":[1]}", NULL);
        break;
    case 3:
        snprintf(path, sizeof path, "/session/%s/masks/0", w->sid);
        w->status = http_get(w->port, path, NULL);
        break;
    default: w->status = http_get(w->port, "/metrics", NULL); break;
    }
    return NULL;
}

static void test_main_server(const tar_buf *frames) {
    srv_proc p;
    const char *env[] = {model_env[0], model_env[1], model_env[2], "MAX_CONCURRENT_SESSIONS=2", "SESSION_TIMEOUT=600",
                         "CLEANUP_INTERVAL=600", "MAX_UPLOAD_MB=4", NULL};
    CHECK_MSG(srv_start(&p, env, "api") == 0, "server did not start");
    if (!p.pid) {
        srv_dump_log(&p);
        return;
    }
    int port = p.port, st;
    char *b = NULL, path[200];

    /* health */
    CHECK(http_get(port, "/health", &b) == 200);
    CHECK(b && strstr(b, "\"model_loaded\":true") && strstr(b, "\"max_sessions\":2"));
    free(b);

    /* memory is returned: two identical session lifetimes end at the same accounting */
    long long mem_before = -1, mem_after1 = -1, mem_after2 = -1;
    for (int round = 0; round < 2; round++) {
        char *sid = http_session_start(port, frames, &st);
        CHECK(st == 200 && sid);
        if (!sid) break;
        snprintf(path, sizeof path, "/session/%s/prompt", sid);
        CHECK(http_post(port, path, "{\"frame_idx\":0,\"obj_id\":1,\"points\":[[95,115]],\"labels\":[1]}", NULL) == 200);
        if (round == 0) mem_before = health_number(port, "memory_bytes");
        CHECK(http_post(port, "/session/close", "{\"session_id\":\"x\"}", NULL) == 404);
        char body[128];
        snprintf(body, sizeof body, "{\"session_id\":\"%s\"}", sid);
        CHECK(http_post(port, "/session/close", body, NULL) == 200);
        snprintf(path, sizeof path, "/session/%s", sid);
        CHECK(http_get(port, path, NULL) == 404);
        if (round == 0) mem_after1 = health_number(port, "memory_bytes");
        else mem_after2 = health_number(port, "memory_bytes");
        free(sid);
    }
    printf("memory_bytes with a session %lld, after close #1 %lld, after close #2 %lld\n", mem_before, mem_after1,
           mem_after2);
    CHECK_MSG(mem_after1 > 0 && mem_after1 == mem_after2, "bytes not returned: %lld vs %lld", mem_after1, mem_after2);
    CHECK(mem_before > mem_after1);

    /* two sessions fill the service; the third gets 429 with Retry-After */
    char *s1 = http_session_start(port, frames, &st);
    char *s2 = http_session_start(port, frames, &st);
    CHECK(s1 && s2);
    http_resp r;
    CHECK(http_upload(port, frames->buf, frames->len, "frames.tar", NULL, &r) == 0);
    CHECK(r.status == 429);
    CHECK(r.body && strstr(r.body, "Maximum concurrent sessions reached"));
    CHECK(r.headers && strcasestr(r.headers, "Retry-After:"));
    http_resp_free(&r);
    if (!s1 || !s2) goto out;

    /* session status */
    snprintf(path, sizeof path, "/session/%s", s1);
    CHECK(http_get(port, path, &b) == 200);
    CHECK(b && strstr(b, "\"total_frames\":10") && strstr(b, "\"idle_time\"") && strstr(b, "\"state\":\"ready\""));
    free(b);

    /* bad input: each a 4xx with a message, none harms the session */
    snprintf(path, sizeof path, "/session/%s/prompt", s1);
    struct {
        const char *body;
        int status;
        const char *needle;
    } bad[] = {
        {"{not json", 400, "malformed JSON"},
        {"[1,2]", 400, "JSON object"},
        {"{\"frame_idx\":\"0\",\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1]}", 400, "frame_idx"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1],\"color\":3}", 400, "unknown field"},
        {"{\"frame_idx\":10,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[1]}", 400, "out of range"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1000,1]],\"labels\":[1]}", 400, "outside"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1]],\"labels\":[7]}", 400, "labels[0]"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"points\":[[1,1],[2,2]],\"labels\":[1]}", 400, "labels"},
        {"{\"frame_idx\":0,\"obj_id\":-3,\"points\":[[1,1]],\"labels\":[1]}", 400, "obj_id"},
        {"{\"frame_idx\":0,\"obj_id\":1}", 400, "points"},
        {"{\"frame_idx\":0,\"obj_id\":1,\"box\":[10,10,5,5]}", 400, "box"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *rb = NULL;
        int s = http_post(port, path, bad[i].body, &rb);
        CHECK_MSG(s == bad[i].status && rb && strstr(rb, bad[i].needle) && strstr(rb, "\"error\""),
                  "case %zu: %d %s", i, s, rb ? rb : "");
        free(rb);
    }
    snprintf(path, sizeof path, "/session/%s/remove_object", s1);
    CHECK(http_post(port, path, "{\"obj_id\":42}", NULL) == 404);
    snprintf(path, sizeof path, "/session/%s/clear", s1);
    CHECK(http_post(port, path, "{\"frame_idx\":0,\"obj_id\":42}", NULL) == 404);
    snprintf(path, sizeof path, "/session/%s/masks/99", s1);
    CHECK(http_get(port, path, NULL) == 400);
    snprintf(path, sizeof path, "/session/%s/masks/0", s1);
    CHECK(http_get(port, path, NULL) == 404); /* nothing computed yet */
    CHECK(http_get(port, "/session/nope/masks/0", NULL) == 404);
    CHECK(http_post(port, "/session/nope/prompt", "{}", NULL) == 404);
    CHECK(http_get(port, "/nowhere", NULL) == 404);
    CHECK(http_get(port, "/session/start", NULL) == 405);

    /* a valid prompt, masks as RLE and PNG, the frame as JPEG */
    snprintf(path, sizeof path, "/session/%s/prompt", s1);
    CHECK(http_post(port, path, "{\"frame_idx\":0,\"obj_id\":1,\"points\":[[95,115]],\"labels\":[1]}", &b) == 200);
    CHECK(b && strstr(b, "\"frame_idx\":0") && strstr(b, "\"counts\"") && strstr(b, "\"size\":[240,320]"));
    free(b);
    snprintf(path, sizeof path, "/session/%s/masks/0?format=png", s1);
    CHECK(http_json(port, "GET", path, NULL, &r) == 0 && r.status == 200 && r.len > 8 &&
          !memcmp(r.body, "\x89PNG", 4));
    http_resp_free(&r);
    snprintf(path, sizeof path, "/session/%s/frame/3", s1);
    CHECK(http_json(port, "GET", path, NULL, &r) == 0 && r.status == 200 && r.len > 100 &&
          (unsigned char)r.body[0] == 0xFF && (unsigned char)r.body[1] == 0xD8);
    http_resp_free(&r);

    /* a client that leaves mid-propagation cancels it; the session stays usable */
    {
        int fd = http_connect(port);
        char req[512];
        int n = snprintf(req, sizeof req,
                         "POST /session/%s/propagate HTTP/1.0\r\nContent-Type: application/json\r\n"
                         "Content-Length: 2\r\n\r\n{}",
                         s1);
        write_all(fd, req, (size_t)n);
        char buf[512];
        ssize_t got = read(fd, buf, sizeof buf); /* headers and maybe a frame */
        CHECK(got > 0);
        close(fd);
        /* the session frees its operation lock once the cancel lands */
        int ok = 0;
        for (int i = 0; i < 100 && !ok; i++) {
            char *sb = NULL;
            snprintf(path, sizeof path, "/session/%s", s1);
            if (http_get(port, path, &sb) == 200 && strstr(sb, "\"state\":\"ready\"")) ok = 1;
            free(sb);
            if (!ok) usleep(100 * 1000);
        }
        CHECK_MSG(ok, "session not ready after the client left");
        snprintf(path, sizeof path, "/session/%s/prompt", s1);
        CHECK(http_post(port, path, "{\"frame_idx\":2,\"obj_id\":1,\"points\":[[95,115]],\"labels\":[1]}", NULL) == 200);
    }

    /* a full propagation streams one line per frame, then a summary */
    snprintf(path, sizeof path, "/session/%s/propagate", s1);
    CHECK(http_post(port, path, "{\"start_frame_idx\":0,\"max_frames\":3}", &b) == 200);
    {
        int lines = 0;
        for (char *q = b; q && *q; q++) lines += *q == '\n';
        CHECK_MSG(lines == 5, "expected 4 frame lines + summary, got %d lines", lines);
        CHECK(b && strstr(b, "\"done\":true") && strstr(b, "\"frames\":4"));
    }
    free(b);

    /* 20 parallel requests of mixed kinds: no 5xx */
    {
        pthread_t th[20];
        worker w[20];
        for (int i = 0; i < 20; i++) {
            w[i].port = port;
            snprintf(w[i].sid, sizeof w[i].sid, "%s", s2);
            w[i].idx = i;
            w[i].status = -1;
            pthread_create(&th[i], NULL, mixed_request, &w[i]);
        }
        int bad5xx = 0, failed = 0;
        for (int i = 0; i < 20; i++) {
            pthread_join(th[i], NULL);
            if (w[i].status >= 500) bad5xx++;
            if (w[i].status < 0) failed++;
        }
        CHECK_MSG(bad5xx == 0 && failed == 0, "%d 5xx, %d failed connections", bad5xx, failed);
    }

    /* reset, remove, DELETE */
    snprintf(path, sizeof path, "/session/%s/remove_object", s1);
    CHECK(http_post(port, path, "{\"obj_id\":1}", &b) == 200);
    CHECK(b && strstr(b, "\"obj_ids\":[]"));
    free(b);
    snprintf(path, sizeof path, "/session/%s/reset", s2);
    CHECK(http_post(port, path, "{}", NULL) == 200);
    snprintf(path, sizeof path, "/session/%s", s2);
    CHECK(http_json(port, "DELETE", path, NULL, &r) == 0 && r.status == 200);
    http_resp_free(&r);
    CHECK(http_get(port, path, NULL) == 404);

    /* metrics: Prometheus names */
    CHECK(http_get(port, "/metrics", &b) == 200);
    CHECK(b && strstr(b, "sam2d_request_duration_seconds_bucket") && strstr(b, "sam2d_sessions_rejected_total 1") &&
          strstr(b, "sam2d_propagate_frame_duration_seconds_count") && strstr(b, "sam2d_memory_used_bytes") &&
          strstr(b, "sam2d_encode_duration_seconds_count") && strstr(b, "sam2d_track_step_duration_seconds_sum"));
    free(b);

    /* upload limit: more than MAX_UPLOAD_MB=4 */
    {
        size_t big = 5u << 20;
        char *junk = calloc(1, big);
        CHECK(http_upload(port, junk, big, "big.mp4", NULL, &r) == 0);
        CHECK_MSG(r.status == 413 || r.status == 429, "status %d", r.status);
        http_resp_free(&r);
        free(junk);
    }
out:
    free(s1);
    free(s2);
    int code = srv_stop(&p);
    CHECK_MSG(code == 0, "serve exit status %d after SIGTERM", code);
    if (test_failed_) srv_dump_log(&p);
}

static void test_limits_and_expiry(const tar_buf *frames) {
    /* frame and dimension limits from metadata; lazy expiry; /cleanup */
    srv_proc p;
    const char *env[] = {model_env[0], model_env[1], model_env[2], "MAX_VIDEO_FRAMES=5", "SESSION_TIMEOUT=1",
                         "CLEANUP_INTERVAL=3600", NULL};
    CHECK(srv_start(&p, env, "limits") == 0);
    if (!p.pid) return;
    http_resp r;
    CHECK(http_upload(p.port, frames->buf, frames->len, "frames.tar", NULL, &r) == 0);
    CHECK_MSG(r.status == 413 && strstr(r.body, "Video has too many frames") && strstr(r.body, "MAX_VIDEO_FRAMES"),
              "%d %s", r.status, r.body);
    http_resp_free(&r);
    CHECK(http_upload(p.port, "", 0, "empty.mp4", NULL, &r) == 0);
    CHECK(r.status == 400);
    http_resp_free(&r);
    CHECK(http_upload(p.port, "this is not a video at all", 26, "x.mp4", NULL, &r) == 0);
    CHECK_MSG(r.status == 415, "not-a-video: %d %s", r.status, r.body);
    http_resp_free(&r);
    tar_buf small = tar_of_jpegs(MICRO "/video", 3);
    int st;
    char *sid = http_session_start(p.port, &small, &st);
    char *sid2 = http_session_start(p.port, &small, &st);
    CHECK(sid && sid2);
    sleep(2);
    char path[160], *b = NULL;
    if (sid) {
        snprintf(path, sizeof path, "/session/%s", sid);
        CHECK(http_get(p.port, path, NULL) == 404); /* expired, found lazily */
    }
    CHECK(http_post(p.port, "/cleanup", "{}", &b) == 200);
    CHECK_MSG(b && sid2 && strstr(b, sid2) && strstr(b, "\"active_sessions\":0"), "cleanup: %s", b ? b : "");
    free(b);
    free(sid);
    free(sid2);
    free(small.buf);
    srv_stop(&p);

    /* dimension limit, auth, reaper */
    /* memory budget: admission by estimated session memory */
    const char *envm[] = {model_env[0], model_env[1], model_env[2], "MAX_MEMORY_MB=1", NULL};
    CHECK(srv_start(&p, envm, "budget") == 0);
    if (!p.pid) return;
    CHECK(http_upload(p.port, frames->buf, frames->len, "frames.tar", NULL, &r) == 0);
    CHECK_MSG(r.status == 429 && strstr(r.body, "Memory budget exceeded") && strstr(r.body, "MAX_MEMORY_MB") &&
                  strcasestr(r.headers, "Retry-After:"),
              "%d %s", r.status, r.body);
    http_resp_free(&r);
    srv_stop(&p);

    const char *env2[] = {model_env[0], model_env[1], model_env[2], "MAX_FRAME_DIMENSION=100", "API_TOKEN=s3cret",
                          NULL};
    CHECK(srv_start(&p, env2, "dims") == 0);
    if (!p.pid) return;
    CHECK(http_get(p.port, "/health", NULL) == 200);
    CHECK(http_get(p.port, "/metrics", NULL) == 401);
    CHECK(http_request(p.port, "GET", "/metrics", NULL, NULL, 0, "Authorization: Bearer s3cret\r\n", &r) == 0 &&
          r.status == 200);
    http_resp_free(&r);
    CHECK(http_upload(p.port, frames->buf, frames->len, "frames.tar", "Authorization: Bearer s3cret\r\n", &r) == 0);
    CHECK_MSG(r.status == 413 && strstr(r.body, "Video dimensions exceed maximum") &&
                  strstr(r.body, "MAX_FRAME_DIMENSION"),
              "%d %s", r.status, r.body);
    http_resp_free(&r);
    srv_stop(&p);

    char logfile[128], logenv[160];
    snprintf(logfile, sizeof logfile, "/tmp/sam2d-test-logfile-%d.log", (int)getpid());
    snprintf(logenv, sizeof logenv, "LOG_FILE=%s", logfile);
    const char *env3[] = {model_env[0], model_env[1], model_env[2], "SESSION_TIMEOUT=1", "CLEANUP_INTERVAL=1",
                          "LOG_FORMAT=json", logenv, NULL};
    CHECK(srv_start(&p, env3, "reaper") == 0);
    if (!p.pid) return;
    small = tar_of_jpegs(MICRO "/video", 2);
    sid = http_session_start(p.port, &small, &st);
    CHECK(sid != NULL);
    int gone = 0;
    for (int i = 0; i < 50 && !gone; i++) {
        usleep(200 * 1000);
        gone = health_number(p.port, "active_sessions") == 0;
    }
    CHECK_MSG(gone, "the reaper did not expire the idle session");
    free(sid);
    free(small.buf);
    srv_stop(&p);
    size_t n;
    char *log = read_whole(p.log_path, &n);
    CHECK(log && strstr(log, "reaper: 1 idle session(s) expired"));
    /* LOG_FORMAT=json: one JSON object a line; LOG_FILE gets the same lines */
    CHECK(log && strstr(log, "{\"ts\":\"") && strstr(log, "\"level\":\"INFO\",\"msg\":\"session started\""));
    free(log);
    log = read_whole(logfile, &n);
    CHECK(log && strstr(log, "\"msg\":\"reaper: 1 idle session(s) expired\""));
    free(log);
    unlink(logfile);

    /* an invalid variable stops start-up naming it */
    const char *env4[] = {model_env[0], model_env[1], "MAX_CONCURRENT_SESSIONS=zero", NULL};
    CHECK(srv_start(&p, env4, "badenv") != 0);
    log = read_whole(p.log_path, &n);
    CHECK(log && strstr(log, "MAX_CONCURRENT_SESSIONS"));
    free(log);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    tar_buf frames = tar_of_jpegs(MICRO "/video", 1000);
    CHECK(frames.len > 1024);
    test_main_server(&frames);
    test_limits_and_expiry(&frames);
    free(frames.buf);
    return test_finish();
}
