/* webhook.h - non-blocking HTTP POSTs of JSON with retries (webhook.c), for alert webhooks. */
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
void bl__webhooks_stats(bl__webhooks *w, bl__webhook_stats *out);
void bl__webhooks_free(bl__webhooks *w);

#endif
