#define _GNU_SOURCE
/* The service on a device back end (SAM2_DEVICE=devsim: the CPU kernels behind
 * the GPU memory rules, whose device memory is its reserved region): /health
 * and /metrics report the device and its memory, admission refuses a session
 * whose device estimate does not fit the device's free memory, and bad or
 * unavailable devices stop start-up with a message naming SAM2_DEVICE. */
#include "server/server_harness.h"
#include "test_util.h"

#define MICRO SAM2D_TEST_DATA "/golden/micro"
#define CKPT "SAM2_CHECKPOINT=" MICRO "/model.pt"
#define CONF "SAM2_CONFIG=" MICRO "/config.yaml"

static long long json_number(const char *body, const char *field) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *p = body ? strstr(body, key) : NULL;
    return p ? atoll(p + strlen(key)) : -1;
}

static long long health_device(int port, const char *field) {
    char *b = NULL;
    long long v = http_get(port, "/health", &b) == 200 ? json_number(b, field) : -1;
    free(b);
    return v;
}

/* /health and /metrics on devsim (and none of the device fields on the CPU). */
static void test_health(void) {
    srv_proc p;
    const char *env[] = {CKPT, CONF, "SAM2_THREADS=1", "SAM2_DEVICE=devsim", NULL};
    CHECK_MSG(srv_start(&p, env, "devsim") == 0, "server on devsim did not start");
    if (!p.pid) return;
    char *b = NULL;
    CHECK(http_get(p.port, "/health", &b) == 200);
    printf("devsim /health: %s\n", b ? b : "");
    CHECK_MSG(b && strstr(b, "\"device\":\"devsim\""), "device: %s", b ? b : "");
    long long used = json_number(b, "device_memory_used_bytes"), total = json_number(b, "device_memory_total_bytes");
    /* the model's weights (const memory) and scratch arenas count as used; the region is the total */
    CHECK_MSG(used > 0 && total > used, "device memory used %lld total %lld", used, total);
    CHECK_MSG(total == 8192LL << 20, "total %lld: expected the default 8192 MiB region", total);
    CHECK(json_number(b, "sessions_device_memory_bytes") == 0);
    free(b);
    b = NULL;
    CHECK(http_get(p.port, "/metrics", &b) == 200);
    CHECK_MSG(b && strstr(b, "sam2d_device_info{device=\"devsim\"} 1"), "metrics device info");
    CHECK_MSG(b && strstr(b, "sam2d_device_memory_total_bytes 8589934592"), "metrics device total");
    CHECK_MSG(b && strstr(b, "\nsam2d_device_memory_used_bytes "), "metrics device used");
    free(b);

    /* a session is admitted for its device estimate: frames x objects x per-frame outputs + 64 MiB of
     * working buffers; a second object raises it, removing it lowers it, closing gives it back */
    tar_buf frames = tar_of_jpegs(MICRO "/video", 3);
    int st = 0;
    char *sid = http_session_start(p.port, &frames, &st);
    CHECK(st == 200 && sid);
    if (sid) {
        char path[160], body[160];
        long long a1 = health_device(p.port, "sessions_device_memory_bytes");
        CHECK_MSG(a1 > 64LL << 20 && a1 < 70LL << 20, "one object, 3 frames: %lld", a1);
        snprintf(path, sizeof path, "/session/%s/prompt", sid);
        CHECK(http_post(p.port, path, "{\"frame_idx\":0,\"obj_id\":1,\"points\":[[95,115]],\"labels\":[1]}", NULL) ==
              200);
        CHECK(health_device(p.port, "sessions_device_memory_bytes") == a1);
        CHECK(http_post(p.port, path, "{\"frame_idx\":1,\"obj_id\":2,\"points\":[[200,60]],\"labels\":[1]}", NULL) ==
              200);
        long long a2 = health_device(p.port, "sessions_device_memory_bytes");
        CHECK_MSG(a2 > a1, "two objects: %lld, one: %lld", a2, a1);
        CHECK(health_device(p.port, "device_memory_used_bytes") > used); /* the session's buffers */
        snprintf(path, sizeof path, "/session/%s/remove_object", sid);
        CHECK(http_post(p.port, path, "{\"obj_id\":2}", NULL) == 200);
        CHECK_MSG(health_device(p.port, "sessions_device_memory_bytes") == a1, "after remove_object");
        snprintf(body, sizeof body, "{\"session_id\":\"%s\"}", sid);
        CHECK(http_post(p.port, "/session/close", body, NULL) == 200);
        CHECK(health_device(p.port, "sessions_device_memory_bytes") == 0);
        printf("devsim session: admitted %lld bytes (1 object), %lld (2 objects)\n", a1, a2);
    }
    free(sid);
    free(frames.buf);
    CHECK(srv_stop(&p) == 0);
    char *log = read_whole(p.log_path, &(size_t){0});
    /* the library logs the back end it picked; serve logs the device memory after the load */
    CHECK_MSG(log && strstr(log, "device devsim:") && strstr(log, "MiB of device memory in use"), "log: %s",
              log ? log : "");
    free(log);
    if (test_failed_) srv_dump_log(&p);

    const char *env_cpu[] = {CKPT, CONF, "SAM2_THREADS=1", "SAM2_DEVICE=cpu", NULL};
    CHECK(srv_start(&p, env_cpu, "cpudev") == 0);
    if (!p.pid) return;
    b = NULL;
    CHECK(http_get(p.port, "/health", &b) == 200);
    CHECK_MSG(b && strstr(b, "\"device\":\"cpu\"") && !strstr(b, "device_memory"), "cpu health: %s", b ? b : "");
    free(b);
    b = NULL;
    CHECK(http_get(p.port, "/metrics", &b) == 200);
    CHECK(b && strstr(b, "sam2d_device_info{device=\"cpu\"} 1") && !strstr(b, "sam2d_device_memory_total_bytes"));
    free(b);
    CHECK(srv_stop(&p) == 0);
}

/* A device too small for a session's estimate: 429 naming device memory, before any model work;
 * the slot is given back (a later /health shows no session and nothing admitted). */
static void test_admission(void) {
    srv_proc p;
    const char *env[] = {CKPT, CONF, "SAM2_THREADS=1", "SAM2_DEVICE=devsim", "SAM2_DEVSIM_HEAP_MB=48", NULL};
    CHECK_MSG(srv_start(&p, env, "devsim-small") == 0, "server on a 48 MiB devsim did not start");
    if (!p.pid) return;
    tar_buf frames = tar_of_jpegs(MICRO "/video", 3);
    http_resp r;
    CHECK(http_upload(p.port, frames.buf, frames.len, "frames.tar", NULL, &r) == 0);
    printf("small device: %d %s\n", r.status, r.body ? r.body : "");
    CHECK_MSG(r.status == 429 && r.body && strstr(r.body, "Device memory exhausted") && strstr(r.body, "of 48 MiB"),
              "%d %s", r.status, r.body ? r.body : "");
    http_resp_free(&r);
    char *b = NULL;
    CHECK(http_get(p.port, "/health", &b) == 200);
    CHECK_MSG(json_number(b, "active_sessions") == 0 && json_number(b, "sessions_device_memory_bytes") == 0, "%s",
              b ? b : "");
    free(b);
    b = NULL;
    CHECK(http_get(p.port, "/metrics", &b) == 200);
    CHECK_MSG(b && strstr(b, "sam2d_sessions_rejected_total 1"), "rejection not counted");
    free(b);
    free(frames.buf);
    CHECK(srv_stop(&p) == 0);
    if (test_failed_) srv_dump_log(&p);
}

/* Start-up refuses what it cannot use, naming SAM2_DEVICE. */
static void test_bad_devices(void) {
    srv_proc p;
    const char *env_bad[] = {CKPT, CONF, "SAM2_DEVICE=gpu", NULL};
    CHECK(srv_start(&p, env_bad, "baddev") != 0);
    size_t n = 0;
    char *log = read_whole(p.log_path, &n);
    CHECK_MSG(log && strstr(log, "SAM2_DEVICE") && strstr(log, "'gpu'"), "log: %s", log ? log : "");
    free(log);
    static const char *const bad[] = {"SAM2_DEVICE=cuda:x", "SAM2_DEVICE=cuda:N", "SAM2_DEVICE=cuda:", "SAM2_DEVICE=cuda:65"};
    for (int i = 0; i < 4; i++) {
        const char *env_idx[] = {CKPT, CONF, bad[i], NULL};
        CHECK_MSG(srv_start(&p, env_idx, "baddev2") != 0, "%s accepted", bad[i]);
        log = read_whole(p.log_path, &n);
        CHECK_MSG(log && strstr(log, "invalid setting: SAM2_DEVICE"), "%s: log %s", bad[i], log ? log : "");
        free(log);
    }
    /* cuda without a working GPU (this build or machine): no silent fall-back to the CPU */
    const char *env_cuda[] = {CKPT, CONF, "SAM2_DEVICE=cuda", NULL};
    if (srv_start(&p, env_cuda, "nocuda") == 0) { /* a CUDA build on a GPU machine */
        char *b = NULL;
        CHECK(http_get(p.port, "/health", &b) == 200);
        CHECK_MSG(b && strstr(b, "\"device\":\"cuda") && strstr(b, "device_memory_total_bytes"), "%s", b ? b : "");
        free(b);
        CHECK(srv_stop(&p) == 0);
    } else {
        log = read_whole(p.log_path, &n);
        CHECK_MSG(log && strstr(log, "on SAM2_DEVICE=cuda"), "log: %s", log ? log : "");
        free(log);
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_bad_devices();
    test_health();
    test_admission();
    return test_finish();
}
