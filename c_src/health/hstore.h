/* hstore.h - the health service's persistent part (hstore.c): the event log / audit trail and
 * the metrics history (raw samples, 1 min and 1 h rollups with min/max/avg) in one SQLite file
 * per node, written through the store thread (c_src/store/) in one transaction per tick. */
#ifndef BL_HEALTH_HSTORE_H
#define BL_HEALTH_HSTORE_H

#include "health_int.h"

typedef struct bl__hstore bl__hstore;

/* Where the database of node lives: data_dir/health-NODE.db when data_dir is set, else
 * $XDG_STATE_HOME/beamlet/NODE/health.db, ~/.local/state/beamlet/NODE/health.db, or for a system
 * service (root, started by systemd or without HOME) /var/lib/beamlet/NODE/health.db. */
void bl__hstore_path(const bl_config *cfg, const char *node, char *out, size_t cap);

/* NULL when history is off (health_store false) or out of memory. */
bl__hstore *bl__hstore_open(bl_node *n);
void bl__hstore_close(bl__hstore *s);

/* Severity names: info < warn < critical. -1 for an unknown name. */
int bl__severity_level(const char *name);

/* Buffer an event (written at the next tick). body: a JSON object text (copied); who: the admin
 * who did it, or NULL; trace_id: the 32 hex digits of the trace it belongs to, or NULL. */
void bl__hstore_event(bl__hstore *s, unsigned long long time_ms, const char *node, const char *type,
                      const char *severity, const char *who, const char *trace_id,
                      const char *body);
/* Buffer the history series of one sample. */
void bl__hstore_sample(bl__hstore *s, const bl_health_metrics *m);
/* Write what is buffered now (admin actions: the audit trail does not wait for the tick). */
void bl__hstore_flush(bl__hstore *s);
/* Once a second: write what is buffered; now and then apply retention and the size bound. */
void bl__hstore_tick(bl__hstore *s);

/* Queue a maintenance job now (retention and size bound; the tick does it every minute). */
void bl__hstore_maintain(bl__hstore *s);
/* Jobs not finished yet (tests wait for 0). */
unsigned bl__hstore_pending(bl__hstore *s);

/* A small persistent key/value (maintenance mode across restarts). get: cb on the loop with the
 * value or NULL; set: written in order with the other jobs. */
typedef void (*bl__hstore_kv_cb)(const char *value, void *ud);
void bl__hstore_kv_set(bl__hstore *s, const char *key, const char *value);
void bl__hstore_kv_get(bl__hstore *s, const char *key, bl__hstore_kv_cb cb, void *ud);

/* Growth of every filesystem's used percent (a linear fit over the last day of 1 min rollups, or
 * of the raw samples when there are fewer than 30 of those): cb on the loop. */
typedef struct bl__trend {
    char mount[128];
    double used, per_day; /* last value, percent per day */
    int points;
    double span_s;
} bl__trend;
typedef void (*bl__hstore_trends_cb)(const bl__trend *t, int n, void *ud);
void bl__hstore_trends(bl__hstore *s, bl__hstore_trends_cb cb, void *ud);

/* Queries answer `from` later with bl_reply (return 1), or fill reply and return 0 on an error. */
typedef struct bl__event_query {
    unsigned long long since_ms, until_ms; /* until 0: now */
    char type[32], node[BL_NODE_LEN];      /* "" any */
    char trace_id[BL_TRACE_ID_LEN];        /* "" any */
    int min_severity;                      /* 0 info */
    unsigned limit;                        /* 0: 100 */
} bl__event_query;
int bl__hstore_events(bl__hstore *s, const bl_from *from, const bl__event_query *q,
                      ei_x_buff *reply);
/* metric "" lists the metric names recorded in the last day. */
int bl__hstore_history(bl__hstore *s, const bl_from *from, const char *metric,
                       unsigned long long since_ms, unsigned long long until_ms, ei_x_buff *reply);
/* #{path, error, rows_written, rows_dropped, pending_jobs} for the `store` request */
void bl__hstore_encode_info(bl__hstore *s, ei_x_buff *x);

#endif
