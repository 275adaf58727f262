/* webhook.h - non-blocking HTTP (webhook.c): POSTs of JSON with retries for alert webhooks, GETs
 * for HTTP health checks. */
#ifndef BL_HEALTH_WEBHOOK_H
#define BL_HEALTH_WEBHOOK_H

#include "beamlet/beamlet.h"

#include <ev.h>

typedef struct bl__webhooks bl__webhooks;

typedef struct bl__webhook_stats {
    unsigned long long posted, delivered, retried, dropped;
    unsigned queued, inflight;
} bl__webhook_stats;

bl__webhooks *bl__webhooks_new(bl_node *n, struct ev_loop *loop);
/* Queue a POST of json to url. BL_OK, BL_ENOMEM, BL_ESYS (libcurl cannot be loaded). */
int bl__webhooks_post(bl__webhooks *w, const char *url, const char *json);
/* A GET with a timeout (checks): cb(status, error) once on the loop, status 0 with error on a
 * transport failure; no retries. Dropped without cb when w is freed first. */
typedef void (*bl__http_cb)(long status, const char *error, void *ud);
int bl__http_get(bl__webhooks *w, const char *url, unsigned timeout_ms, bl__http_cb cb, void *ud);
void bl__webhooks_stats(bl__webhooks *w, bl__webhook_stats *out);
void bl__webhooks_free(bl__webhooks *w);

#endif
