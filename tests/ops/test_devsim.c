/* devsim enforces the device-memory rule of ops.h: a host access to a buffer
 * faults, a host pointer handed to a kernel aborts, and legal use works. Each
 * violation runs in a child process so the parent can check how it ended. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/devsim.h"
#include "ops/ops.h"
#include "test_util.h"

typedef void (*scenario)(sam_backend *be, float *buf, float *cst, float *host);

static void host_reads_buffer(sam_backend *be, float *buf, float *cst, float *host) {
    (void)be, (void)cst;
    host[0] = buf[0];
}
static void host_writes_buffer(sam_backend *be, float *buf, float *cst, float *host) {
    (void)be, (void)cst, (void)host;
    buf[10] = 1.0f;
}
static void kernel_gets_host_input(sam_backend *be, float *buf, float *cst, float *host) {
    (void)cst;
    be->add(be, buf, buf, host, 16);
}
static void kernel_writes_const(sam_backend *be, float *buf, float *cst, float *host) {
    (void)host;
    be->relu(be, cst, buf, 16);
}
static void to_dev_into_host(sam_backend *be, float *buf, float *cst, float *host) {
    (void)buf, (void)cst;
    be->to_dev(be, host + 16, host, 16 * 4);
}
static void legal_use(sam_backend *be, float *buf, float *cst, float *host) {
    be->to_dev(be, buf, host, 16 * 4);
    be->add(be, buf, buf, cst, 16);          /* const memory as an input */
    be->to_host(be, host + 16, buf, 16 * 4);
    for (int i = 0; i < 16; i++)
        if (host[16 + i] != host[i] + cst[i]) _exit(3); /* host may read const memory */
}

/* Child's end: the signal that killed it, or 100 + its exit status. */
static int run_child(scenario fn) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sam_backend *be = sam_backend_devsim_create(1, SAM_PRECISION_FP32);
        float *buf = be->buf_alloc(be, 64 * 4);
        float *cst = be->const_alloc(be, 16 * 4);
        float host[64];
        for (int i = 0; i < 16; i++) cst[i] = (float)i, host[i] = 0.5f * (float)i;
        be->const_publish(be, cst, 16 * 4);
        fn(be, buf, cst, host);
        be->buf_free(be, buf);
        be->const_free(be, cst);
        sam_backend_devsim_free(be);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 100 + WEXITSTATUS(st);
}

int main(void) {
    int r;
    r = run_child(host_reads_buffer);
    CHECK_MSG(r == SIGSEGV, "host read of a buffer: ended with %d, want SIGSEGV", r);
    r = run_child(host_writes_buffer);
    CHECK_MSG(r == SIGSEGV, "host write of a buffer: ended with %d, want SIGSEGV", r);
    r = run_child(kernel_gets_host_input);
    CHECK_MSG(r == SIGABRT, "host pointer as kernel input: ended with %d, want SIGABRT", r);
    r = run_child(kernel_writes_const);
    CHECK_MSG(r == SIGABRT, "kernel output into const memory: ended with %d, want SIGABRT", r);
    r = run_child(to_dev_into_host);
    CHECK_MSG(r == SIGABRT, "to_dev into host memory: ended with %d, want SIGABRT", r);
    r = run_child(legal_use);
    CHECK_MSG(r == 100, "legal use: ended with %d, want exit 0", r);
    return test_finish();
}
