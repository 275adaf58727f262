/* pubsub.h - topic-based publish/subscribe across the cluster: the `beamlet_pubsub` process.
 *
 * Topics are dot-separated levels ("metrics.web1.cpu"): 1..255 bytes, no empty level, no '*',
 * '#' or NUL. Patterns are topics whose levels may also be '*' (exactly one level) or, as the
 * last level only, '#' (zero or more levels: "cluster.#" matches "cluster" and
 * "cluster.events"). Subscriptions (C callbacks here, BEAM pids through the process protocol in
 * docs/services.md) live on the node they were made on and are replicated to every beamlet
 * member, so a publish on any node reaches every matching subscriber once.
 *
 * Delivery is at-most-once. Every subscription has a queue ordered by priority (high, normal,
 * low; FIFO within one); messages whose TTL ran out while queued are dropped and counted as
 * expired. Payloads are Erlang terms, passed as encoded term bodies (no version byte). */
#ifndef BEAMLET_PUBSUB_H
#define BEAMLET_PUBSUB_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include "beamlet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_PUBSUB_TOPIC_LEN 256 /* max topic/pattern length including NUL */
#define BL_PUBSUB_ID_LEN 320    /* max message id length including NUL */

typedef enum { BL_PRIO_HIGH = 0, BL_PRIO_NORMAL = 1, BL_PRIO_LOW = 2 } bl_pubsub_priority;

/* Delivery guarantee (docs/services.md): at-least-once and exactly-once need data_dir. */
typedef enum {
    BL_QOS_AT_MOST_ONCE = 0,
    BL_QOS_AT_LEAST_ONCE = 1,
    BL_QOS_EXACTLY_ONCE = 2
} bl_pubsub_qos;

typedef struct bl_pubsub_meta {
    const char *id;        /* unique message id */
    const char *publisher; /* node that published */
    bl_pubsub_priority priority;
    unsigned ttl_ms;                 /* 0: none */
    unsigned long long published_at; /* ms since the epoch, publisher's clock */
    int sub_id;                      /* the subscription delivering */
    const char *trace_id; /* the publisher's trace (32 hex digits; also current during the
                           * callback, docs/tracing.md), or NULL */
} bl_pubsub_meta;

/* payload/len: an encoded term body; decode with ei_decode_* from index 0. */
typedef void (*bl_pubsub_cb)(bl_node *n, const char *topic, const char *payload, int len,
                             const bl_pubsub_meta *meta, void *ud);

typedef struct bl_pubsub_counters {
    unsigned long long published, delivered, retried, expired, dropped;
} bl_pubsub_counters;

/* 1 if topic / pattern is valid, else 0. */
int bl_pubsub_topic_valid(const char *topic);
int bl_pubsub_pattern_valid(const char *pattern);
/* 1 if the (valid) topic matches the (valid) pattern; 0 otherwise or if either is invalid. */
int bl_pubsub_match(const char *pattern, const char *topic);

/* Subscribe a C callback on this node. max_queue: queued messages kept before the oldest of the
 * lowest priority is dropped (0: default 10000). Returns a subscription id > 0 or BL_EINVAL,
 * BL_ENOMEM, BL_ENOPROC (pubsub not running). */
int bl_pubsub_subscribe(bl_node *n, const char *pattern, unsigned max_queue, bl_pubsub_cb cb,
                        void *ud);
/* A durable subscription (at-least-once or exactly-once) of a C callback, identified by `name`
 * across restarts: subscribe again with the same name after a restart and what publishers still
 * hold for it is delivered. A delivery is acknowledged when the callback returns; exactly-once
 * also records its id in the persisted window, so a retry is not delivered again. Returns a
 * subscription id > 0, BL_EINVAL, BL_ENOMEM, BL_ENOPROC, or BL_ECONFIG without data_dir. */
int bl_pubsub_subscribe_durable(bl_node *n, const char *pattern, const char *name,
                                bl_pubsub_qos qos, unsigned max_queue, bl_pubsub_cb cb, void *ud);
/* BL_OK or BL_ENOPROC when there is no such subscription. */
int bl_pubsub_unsubscribe(bl_node *n, int sub_id);
/* Hold deliveries (they queue; TTLs still run) / let them flow again. */
int bl_pubsub_pause(bl_node *n, int sub_id, int paused);
/* Publish. payload: an encoded term body; ttl_ms 0: none. id_out (may be NULL): the message id.
 * Returns BL_OK, BL_EINVAL, BL_ETOOBIG, BL_ENOMEM, BL_ENOPROC. */
int bl_pubsub_publish(bl_node *n, const char *topic, const char *payload, int len,
                      bl_pubsub_priority prio, unsigned ttl_ms, char *id_out, size_t id_len);
/* Publish with a delivery guarantee: at-least-once / exactly-once messages go through the
 * durable outbox (BL_ECONFIG without data_dir) to durable subscriptions, at most once to others. */
int bl_pubsub_publish_qos(bl_node *n, const char *topic, const char *payload, int len,
                          bl_pubsub_priority prio, unsigned ttl_ms, bl_pubsub_qos qos, char *id_out,
                          size_t id_len);
/* This node's counters for one topic (zeros if never seen). */
int bl_pubsub_get_counters(bl_node *n, const char *topic, bl_pubsub_counters *out);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
