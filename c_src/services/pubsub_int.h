/* pubsub_int.h - state shared by the pub/sub files (docs/services.md, "Pub/sub"):
 *   pubsub.c         the `beamlet_pubsub` process, replication through repl.h, publishing, the API
 *   pubsub_topic.c   topic and pattern validation and matching
 *   pubsub_subs.c    local subscriptions, their priority queues and delivery
 *   pubsub_outbox.c  the durable outbox (at-least-once: SQLite rows, retries, acks)
 *   pubsub_window.c  the exactly-once de-duplication window
 *   pubsub_events.c  membership and leader events published on `cluster.events`, node events */
#ifndef BL_SERVICES_PUBSUB_INT_H
#define BL_SERVICES_PUBSUB_INT_H

#include "../runtime/internal.h"
#include "beamlet/cluster.h"
#include "beamlet/pubsub.h"
#include "repl.h"

#include "../store/sqlite.h"

#define PS_NAME "beamlet_pubsub"
#define TICK_MS 100
#define DEFAULT_MAX_QUEUE 10000
#define MAX_QUEUE_LIMIT 1000000
#define MAX_LOCAL_SUBS 4096
#define MAX_REMOTE_SUBS 65536
#define MAX_TOPICS 4096
#define OVERFLOW_TOPIC "_other"
#define EVENTS_TOPIC "cluster.events"
#define NAME_LEN 128       /* durable subscription name, NUL included */
#define MAX_PENDING 100000 /* at-least-once deliveries awaiting an ack, per publisher node */
#define ACK_WAIT 0.5       /* s before the first retry */
#define MAX_BACKOFF 5.0    /* s between retries at most */
#define MAX_SEEN 100000    /* exactly-once de-duplication window: ids kept per node */
#define SEEN_MAX_AGE_MS (24ull * 3600 * 1000)
enum { QOS_AMO = 0, QOS_ALO = 1, QOS_EO = 2 };
extern const char *const bl__ps_qos_names[3];

extern const char *const bl__ps_prio_names[3];

typedef struct psmsg {
    int refs;
    char topic[BL_PUBSUB_TOPIC_LEN];
    char id[BL_PUBSUB_ID_LEN];
    char publisher[BL_NODE_LEN];
    int prio, qos;
    unsigned ttl_ms;
    unsigned long long published_at;
    ev_tstamp expires_at; /* local clock; 0: none */
    int len;
    char payload[];
} psmsg;

typedef struct qitem {
    struct qitem *next;
    psmsg *m;
} qitem;

typedef struct lsub {
    bl__repl_link link; /* in this node's bucket */
    struct lsub *prev, *next;
    int id;
    char pattern[BL_PUBSUB_TOPIC_LEN];
    int is_pid;
    bl_pid pid;
    bl_pubsub_cb cb;
    void *ud;
    int paused;
    char name[NAME_LEN]; /* durable (at-least-once, exactly-once) subscriptions: non-empty */
    int qos;
    unsigned max_queue, qlen;
    qitem *qh[3], *qt[3];
} lsub;

typedef struct rsub {
    bl__repl_link link; /* in its owner's bucket */
    struct rsub *prev, *next;
    char node[BL_NODE_LEN];
    int id;
    char pattern[BL_PUBSUB_TOPIC_LEN];
    char name[NAME_LEN]; /* durable: kept while its node is down, keyed by (node, name) */
} rsub;

/* An at-least-once delivery awaiting its ack: one per (message, target node, durable name). */
typedef struct pend {
    struct pend *prev, *next;
    char node[BL_NODE_LEN], name[NAME_LEN];
    psmsg *m;
    unsigned attempts;
    ev_tstamp next_at;
} pend;

/* A row to delete from the outbox (an acknowledged or dropped delivery). */
typedef struct outbox_key {
    char id[BL_PUBSUB_ID_LEN], node[BL_NODE_LEN], name[NAME_LEN];
} outbox_key;

#define MAX_DELS 512 /* queued deletes: written in one transaction per tick, or when this full */

/* The outbox database: SQLite's entry points from the store layer's loader (store/sqlite.c). */
typedef struct store {
    bl__sqlite sq;
    sqlite3 *db;
    outbox_key *dels; /* deletes not written yet */
    unsigned ndels;
} store;

/* A message id delivered to an exactly-once subscription (the de-duplication window). */
typedef struct seen {
    UT_hash_handle hh;
    struct seen *prev, *next; /* oldest first */
    unsigned long long at;
    char key[NAME_LEN + BL_PUBSUB_ID_LEN]; /* name, '\n', id */
} seen;

typedef struct tcount {
    UT_hash_handle hh;
    char topic[BL_PUBSUB_TOPIC_LEN];
    bl_pubsub_counters c;
} tcount;

typedef struct ps {
    bl_node *n;
    bl_proc *proc;
    lsub *subs;
    unsigned nsubs;
    rsub *remote;
    unsigned nremote;
    tcount *counts;
    unsigned ncounts;
    int next_sub_id;
    int timer_id, nodemon_id, cluster_sub, flush_timer;
    unsigned long ticks;
    unsigned long long epoch_ms, next_msg;
    bl__repl *repl;
    int delivering; /* inside a C callback */
    pend *pends;
    unsigned npend;
    seen *seen_h, *seen_l;
    unsigned nseen;
    store st;
} ps;

#define COUNT(s, topic, field)                                                                     \
    do {                                                                                           \
        bl_pubsub_counters *c_ = bl__ps_counters((s), (topic));                                    \
        if (c_) c_->field++;                                                                       \
    } while (0)

typedef struct subopts {
    unsigned max_queue;
    int paused, nolink, qos;
    char name[NAME_LEN]; /* non-empty: durable, at-least-once or exactly-once */
} subopts;

/* pubsub.c */
bl_pubsub_counters *bl__ps_counters(ps *s, const char *topic);
void bl__ps_msg_unref(psmsg *m);
lsub *bl__ps_find_sub(ps *s, int id);
void bl__ps_queue_clear(lsub *l);

/* pubsub_topic.c */
int bl__ps_match_levels(const char *p, const char *t);

/* pubsub_subs.c */
void bl__ps_schedule_flush(ps *s);
void bl__ps_del_sub(ps *s, lsub *l, int repl);
void bl__ps_enqueue(ps *s, lsub *l, psmsg *m);
void bl__ps_flush_all(ps *s);
void bl__ps_expire_queued(ps *s, ev_tstamp now);
psmsg *bl__ps_msg_new(const char *topic, const char *payload, int len);
void bl__ps_fan_out_local(ps *s, psmsg *m, int skip_durable);
int bl__ps_add_sub(ps *s, const char *pattern, const bl_pid *pid, bl_pubsub_cb cb, void *ud,
                   const subopts *o);
void bl__ps_del_subs_of(ps *s, const bl_pid *pid, const char *node, const char *why);

/* pubsub_outbox.c */
void bl__ps_store_close(ps *s);
/* A publish's rows: begin (-1: cannot), put each, end(ok) commits (0) or rolls back (ok = 0, or
 * a failed commit: -1). One transaction per publish. */
int bl__ps_store_begin(ps *s);
int bl__ps_store_put(ps *s, const pend *p);
int bl__ps_store_end(ps *s, int ok);
/* Queued, written by bl__ps_store_flush (every tick) in one transaction: a delete lost to a
 * crash only brings a redelivery, which at-least-once allows (exactly-once has its window). */
void bl__ps_store_del(ps *s, const pend *p);
void bl__ps_store_flush(ps *s);
void bl__ps_pend_free(ps *s, pend *p);
pend *bl__ps_pend_new(ps *s, psmsg *m, const char *node, const char *name);
void bl__ps_store_open(ps *s);
void bl__ps_local_durable(ps *s, psmsg *m, const char *name);
void bl__ps_pend_send(ps *s, pend *p);
void bl__ps_retry_pends(ps *s, ev_tstamp now);
void bl__ps_drop_pends(ps *s, const char *node, const char *name);
void bl__ps_handle_ack(ps *s, const char *node, const char *name, const char *id);
void bl__ps_ack_to(ps *s, const char *name, const char *id);
void bl__ps_do_ack(ps *s, const lsub *l, const char *id);

/* pubsub_window.c */
int bl__ps_seen_has(ps *s, const char *name, const char *id);
seen *bl__ps_seen_mem(ps *s, const char *key, unsigned long long at);
void bl__ps_seen_add(ps *s, const char *name, const char *id);
void bl__ps_seen_age(ps *s);

/* pubsub_events.c */
void bl__ps_on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud);
void bl__ps_on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud);

#endif
