/* collector.h - a worker thread that reads metrics samples (procfs.h) so the loop never waits on
 * /proc or statfs. The loop requests a sample and is woken through `wake` (an ev_async it owns)
 * when one is ready; take it with bl__collector_take. */
#ifndef BL_HEALTH_COLLECTOR_H
#define BL_HEALTH_COLLECTOR_H

#include "beamlet/health.h"

#include <ev.h>

typedef struct bl__collector bl__collector;

/* root: the procfs root ("/proc"). NULL on failure. */
bl__collector *bl__collector_new(struct ev_loop *loop, ev_async *wake, const char *root);
/* Ask for a sample (coalesced with one already asked for). */
void bl__collector_request(bl__collector *c);
/* The finished sample (malloc'd, caller frees) or NULL. */
bl_health_metrics *bl__collector_take(bl__collector *c);
/* Stop the thread; never waits more than about two seconds. */
void bl__collector_free(bl__collector *c);

#endif
