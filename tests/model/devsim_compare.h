/* A module test run twice: on the CPU back end, which records every output it
 * fetches (devsim_record), then on devsim, whose fetched outputs must be the
 * CPU run's bit for bit, in the same order. Also the buffer helpers both runs
 * use. One copy per test program (static state). */
#ifndef SAM_TESTS_MODEL_DEVSIM_COMPARE_H
#define SAM_TESTS_MODEL_DEVSIM_COMPARE_H

#include <stdbool.h>

#include "ops/devsim.h"
#include "ops/ops.h"
#include "test_util.h"

typedef struct {
    char what[96];
    float *data; /* plain malloc: outside sam_malloc's leak accounting */
    size_t n;
} devsim_rec;
static devsim_rec devsim_recs_[128];
static int devsim_nrec_, devsim_ncmp_, devsim_nsame_;
static bool devsim_comparing_;

static inline void devsim_record(const char *what, const float *x, size_t n) {
    if (!devsim_comparing_) {
        if (devsim_nrec_ == (int)(sizeof devsim_recs_ / sizeof devsim_recs_[0])) return;
        devsim_rec *r = &devsim_recs_[devsim_nrec_++];
        snprintf(r->what, sizeof r->what, "%s", what);
        r->data = malloc(n * sizeof(float));
        if (r->data) memcpy(r->data, x, n * sizeof(float));
        r->n = n;
        return;
    }
    CHECK_MSG(devsim_ncmp_ < devsim_nrec_, "devsim run fetched more outputs than the cpu run (%s)", what);
    if (devsim_ncmp_ >= devsim_nrec_) return;
    const devsim_rec *r = &devsim_recs_[devsim_ncmp_++];
    bool same = r->n == n && r->data && !memcmp(r->data, x, n * sizeof(float)) && !strcmp(r->what, what);
    if (same) devsim_nsame_++;
    CHECK_MSG(same, "devsim != cpu: %s (%zu floats; cpu's: %s, %zu floats, worst diff %.3g)", what, n, r->what, r->n,
              r->n == n && r->data ? test_max_abs_diff(r->data, x, n, NULL) : -1.0);
}

/* From now on outputs are compared with the recorded ones. */
static inline void devsim_compare_begin(void) { devsim_comparing_ = true; }

/* Every recorded output was compared, ds gave back every buffer; frees the records. */
static inline void devsim_compare_end(sam_backend *ds) {
    CHECK_MSG(devsim_ncmp_ == devsim_nrec_, "devsim run fetched %d outputs, the cpu run %d", devsim_ncmp_,
              devsim_nrec_);
    printf("devsim vs cpu: %d of %d fetched outputs bit-identical\n", devsim_nsame_, devsim_nrec_);
    CHECK(sam_devsim_bytes_in_use(ds) == 0); /* every buffer given back */
}
static inline void devsim_records_free(void) {
    for (int i = 0; i < devsim_nrec_; i++) free(devsim_recs_[i].data);
    devsim_nrec_ = 0;
}

/* Buffers of n floats, uploaded from host when host is given. */
static inline float *dev_new(sam_backend *be, size_t n) { return be->buf_alloc(be, n * sizeof(float)); }
static inline float *dev_up(sam_backend *be, const float *host, size_t n) {
    float *d = dev_new(be, n);
    if (d && host) be->to_dev(be, d, host, n * sizeof(float));
    return d;
}

#endif
