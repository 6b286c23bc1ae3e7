#include "server/device.h"

#include "model/model.h"

void sam_server_device_memory(const sam2d_model *m, size_t *used, size_t *total) {
    *used = *total = 0;
    if (!m || !m->be || !m->be->device_memory) return;
    m->be->device_memory(m->be, used, total);
}

void sam_server_device_memory_cb(void *model, size_t *used, size_t *total) {
    sam_server_device_memory(model, used, total);
}
