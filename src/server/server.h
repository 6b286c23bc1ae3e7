/* The HTTP service (DESIGN.md "Service contract"): libmicrohttpd with one
 * thread per connection (bounded by HTTP_MAX_CONNECTIONS), so a long
 * propagation stream never stalls other clients; JSON with jansson.
 *
 * Scheduling: every model call (prompt, mask, clear, one propagated frame)
 * takes a FIFO turn on the shared model, so a click in one session waits at
 * most for one frame of another session's propagation, and two propagations
 * interleave frame by frame. A session runs one mutating operation at a time:
 * a second one gets 409 (it is not queued). */
#ifndef SAM_SERVER_SERVER_H
#define SAM_SERVER_SERVER_H

#include "sam2d/model.h"
#include "server/settings.h"

typedef struct sam_server sam_server;

/* Start listening; the model is borrowed and must outlive the server. */
sam2d_status sam_server_start(const sam_settings *settings, sam2d_model *model, const char *model_name,
                              sam_server **out);
/* Stop accepting, cancel running propagations, wait for requests in flight,
 * free every session. */
void sam_server_stop(sam_server *srv);
int sam_server_port(const sam_server *srv);

#endif
