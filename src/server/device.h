/* What the service reports about the model's device: its back end's memory
 * (device back ends only) and a callback form of it for admission. */
#ifndef SAM_SERVER_DEVICE_H
#define SAM_SERVER_DEVICE_H

#include <stddef.h>

#include "sam2d/model.h"

/* Device memory the model's back end holds now and the device's total; both 0
 * on back ends that use host memory (the CPU). */
void sam_server_device_memory(const sam2d_model *m, size_t *used, size_t *total);
/* The same with the model as an opaque context (sam_sessions_limits.device_memory). */
void sam_server_device_memory_cb(void *model, size_t *used, size_t *total);

#endif
