/* devsim: the CPU kernels behind the device-memory rule of ops.h, so that
 * model code can be checked on any machine for what would break on a GPU.
 *
 * Buffers (buf_alloc, arenas) come from one reserved region that is
 * inaccessible (PROT_NONE) except while a table entry runs: host code that
 * reads or writes a buffer directly faults at once (a SIGSEGV handler names
 * the offending address). Every pointer handed to a kernel is checked: outputs
 * must be buffers, inputs buffers or const memory (weights); a host pointer
 * aborts with the entry's name. Results are the CPU back end's, bit for bit.
 *
 * A test tool: one mutex serialises every entry (like a GPU stream); the
 * region is reserved, not committed (SAM2_DEVSIM_HEAP_MB, default 8192). */
#ifndef SAM_OPS_DEVSIM_H
#define SAM_OPS_DEVSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

sam_backend *sam_backend_devsim_create(int nthreads, sam_precision precision);
void sam_backend_devsim_free(sam_backend *be);
bool sam_backend_is_devsim(const sam_backend *be);
/* Bytes of buffers allocated now / at most. */
size_t sam_devsim_bytes_in_use(const sam_backend *be);
size_t sam_devsim_bytes_peak(const sam_backend *be);
/* Calls so far: kernels (table entries that compute), to_host (each one a
 * wait for the device on a GPU) and to_dev. For tests that bound the host
 * round trips of a step. */
typedef struct {
    uint64_t kernels, to_host, to_dev, copies;
} sam_devsim_counts;
sam_devsim_counts sam_devsim_get_counts(const sam_backend *be);
/* Whether p lies in a live buffer (for tests of the rule itself). */
bool sam_devsim_is_buffer(const sam_backend *be, const void *p);

#endif
