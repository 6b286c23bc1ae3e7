/* The deployment files stay valid: docker-compose accepts the compose file and
 * it declares the seed's service, port and variables; the Dockerfile builds
 * with the project's own dependency script. */
#include "test_util.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

int main(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "docker-compose -f '%s/docker-compose.yaml' config -q 2>&1", SAM2D_SOURCE_DIR);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "docker-compose config failed (status %d)", rc);
    char *compose = slurp(SAM2D_SOURCE_DIR "/docker-compose.yaml");
    CHECK(compose != NULL);
    if (compose) {
        const char *need[] = {"sam-service:", "8002:8002", "SESSION_TIMEOUT", "MAX_CONCURRENT_SESSIONS",
                              "CLEANUP_INTERVAL", "MAX_VIDEO_FRAMES", "MAX_FRAME_DIMENSION", "SAM2_MODEL_SIZE",
                              "SAM2_DEVICE", "MODEL_DIR", "/models"};
        for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) CHECK_MSG(strstr(compose, need[i]), "%s", need[i]);
    }
    char *docker = slurp(SAM2D_SOURCE_DIR "/Dockerfile");
    CHECK(docker && strstr(docker, "scripts/install-deps.sh") && strstr(docker, "EXPOSE 8002"));
    free(compose);
    free(docker);
    return test_finish();
}
