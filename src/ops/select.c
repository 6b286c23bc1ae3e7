/* Back ends by name (SAM2_DEVICE) and the GPU registry: the library itself
 * knows only the CPU back ends; a GPU library registers itself from the
 * program that links it, so the C library never depends on CUDA. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "ops/devsim.h"
#include "ops/ops.h"

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *gpu_name;
static sam_gpu_create_fn gpu_create;

void sam_backend_register_gpu(const char *name, sam_gpu_create_fn create) {
    pthread_mutex_lock(&reg_mu);
    gpu_name = name;
    gpu_create = create;
    pthread_mutex_unlock(&reg_mu);
}

const char *sam_backend_gpu_name(void) {
    pthread_mutex_lock(&reg_mu);
    const char *n = gpu_create ? gpu_name : NULL;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

static sam_backend *cpu_or_fail(int nthreads, sam_precision precision) {
    sam_backend *be = sam_backend_cpu_create_ex(nthreads, precision);
    if (!be) SAM_ERR(SAM2D_ERR_NOMEM, "cannot create the CPU back end");
    return be;
}

sam_backend *sam_backend_create(const char *device, int nthreads, sam_precision precision) {
    if (!device || !*device) device = "auto";
    if (!strcmp(device, "cpu")) return cpu_or_fail(nthreads, precision);
    if (!strcmp(device, "devsim")) {
        sam_backend *be = sam_backend_devsim_create(nthreads, precision);
        if (!be) SAM_ERR(SAM2D_ERR_NOMEM, "cannot create the devsim back end");
        return be;
    }
    pthread_mutex_lock(&reg_mu);
    sam_gpu_create_fn create = gpu_create;
    pthread_mutex_unlock(&reg_mu);
    const bool is_auto = !strcmp(device, "auto");
    int index = 0;
    if (!is_auto) {
        if (!strncmp(device, "cuda", 4)) {
            const char *rest = device + 4;
            if (*rest == ':') {
                char *end = NULL;
                long v = strtol(rest + 1, &end, 10);
                if (end == rest + 1 || *end || v < 0 || v > 64) {
                    SAM_ERR(SAM2D_ERR_INVALID_ARG, "device '%s': expected cuda or cuda:N", device);
                    return NULL;
                }
                index = (int)v;
            } else if (*rest) {
                SAM_ERR(SAM2D_ERR_INVALID_ARG, "device '%s': expected auto, cpu or cuda[:N]", device);
                return NULL;
            }
        } else {
            SAM_ERR(SAM2D_ERR_INVALID_ARG, "device '%s': expected auto, cpu or cuda[:N]", device);
            return NULL;
        }
        if (!create) {
            SAM_ERR(SAM2D_ERR_UNSUPPORTED, "device '%s': this build has no GPU back end (built without nvcc)", device);
            return NULL;
        }
        sam_backend *be = create(index, precision);
        if (!be) return NULL; /* create set the reason */
        sam_logf(SAM_LOG_INFO, "device: %s (%s)", be->name, device);
        return be;
    }
    if (create) {
        sam_backend *be = create(0, precision);
        if (be) {
            sam_logf(SAM_LOG_INFO, "device auto: using the GPU back end '%s'", be->name);
            return be;
        }
        sam_logf(SAM_LOG_INFO, "device auto: no usable GPU (%s); using the CPU", sam2d_last_error());
    } else {
        sam_logf(SAM_LOG_INFO, "device auto: this build has no GPU back end; using the CPU");
    }
    return cpu_or_fail(nthreads, precision);
}

void sam_backend_free(sam_backend *be) {
    if (be && be->destroy) be->destroy(be);
}

static void *arena_be_alloc(void *ctx, size_t bytes) {
    sam_backend *be = ctx;
    return be->buf_alloc(be, bytes);
}
static void arena_be_free(void *ctx, void *p) {
    sam_backend *be = ctx;
    be->buf_free(be, p);
}

void sam_arena_on_backend(sam_arena *a, sam_backend *be) {
    sam_arena_set_allocator(a, (sam_arena_allocator){.alloc = arena_be_alloc, .free = arena_be_free, .ctx = be});
}
