/* repl.h - the replicated-table layer under the cluster services (docs/services.md,
 * "Replication"). Private to libbeamlet (services/ only).
 *
 * A service (registry, pub/sub, global names) registers a static const ops table and embeds a
 * bl__repl_link in each entry. The layer owns what every replicated table needs:
 *  - per-owner buckets: the entries each node owns, so a sync replaces one owner's bucket and a
 *    failed, left or forgotten member frees it in O(its entries);
 *  - the wire messages {P_add, Owner, [E]}, {P_del, Owner, [K]}, {P_sync, Owner, [E]},
 *    {P_want, Node} and {P_digest, Owner, Proto, Count, Digest}, accepted only from Owner itself
 *    while it is a live beamlet member;
 *  - one canonical list encoding (a proper list); chained cells are decoded too (older nodes);
 *  - membership changes: a joining, returning or reconnected member gets our sync and a want;
 *    a failed, leaving, left or forgotten one loses its bucket;
 *  - repair at (almost) no cost: every REPAIR_MS one member in turn gets our bucket's count and
 *    digest (a sum of the entries' encoding hashes); a receiver whose copy differs asks for a sync;
 *  - after a failed send to a member only a full sync goes to it next (retried on a timer);
 *  - optionally, a subset of the members holds the table (ops->wants), and an add may ask for
 *    acks ({P_add, Owner, [E], Seq} answered by {P_ack, Node, Seq} once applied), so a service
 *    can wait until its peers hold an entry before it answers its caller (the task queue).
 *
 * Wire lists: one canonical encoding, a proper list with its length in one header ([A, B, C]).
 * The decoder also walks chained cells ([A | [B | [C | []]]]) and rejects an improper tail. */
#ifndef BL_SERVICES_REPL_H
#define BL_SERVICES_REPL_H

#include "../runtime/internal.h"

#include <ei.h>
#include <stdint.h>

#define BL__REPL_PROTO 1 /* the version in digest messages */

/* Iterates the elements of an encoded list, across chained cells. */
typedef struct bl__list_it {
    const char *buf;
    int *idx;
    int left;  /* elements left in the current cell run */
    int state; /* 0 walking, 1 ended at [], -1 not a list or improper tail */
} bl__list_it;

/* Start on the list at *idx. Returns 0, or -1 when the term is not a list. */
int bl__list_begin(bl__list_it *it, const char *buf, int *idx);
/* 1: the next element starts at *idx (the caller decodes it, moving *idx past it);
 * 0: the list ended with [] (*idx is past it); -1: an improper tail or a malformed list. */
int bl__list_next(bl__list_it *it);

/* 64-bit FNV-1a of a byte span: an entry's encoding hash (bucket digests are their sum). */
uint64_t bl__repl_hash(const char *p, int len);

struct bl__repl_node;

/* Embedded in each replicated entry of a service. */
typedef struct bl__repl_link {
    struct bl__repl_link *prev, *next;
    struct bl__repl_node *owner; /* NULL: in no bucket */
    uint64_t hash;
    unsigned gen;
} bl__repl_link;

typedef enum {
    BL__REPL_STALE,   /* not in the owner's latest sync */
    BL__REPL_DELETED, /* the owner deleted it */
    BL__REPL_GONE,    /* the owner failed, left or was forgotten */
} bl__repl_why;

typedef struct bl__repl bl__repl;

typedef struct bl__repl_ops {
    const char *proc_name; /* the service's registered process on every node */
    const char *tag_add, *tag_del, *tag_sync, *tag_want, *tag_digest;
    /* One local entry as an element of add/sync; its key as an element of del. */
    int (*encode)(void *svc, ei_x_buff *x, const bl__repl_link *e);
    int (*encode_key)(void *svc, ei_x_buff *x, const bl__repl_link *e);
    /* Decode the element at *idx sent by owner, insert or replace it in the service's tables;
     * *out: the entry's link, or NULL when a domain rule refused it. -1: malformed. */
    int (*upsert)(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out);
    /* Decode a key at *idx; *out: owner's entry with that key, or NULL. -1: malformed. */
    int (*find)(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out);
    /* A remote entry (already out of its bucket) goes; return 1 to keep it (put back). */
    int (*remove)(void *svc, bl__repl_link *e, bl__repl_why why);
    /* Optional: owner's bucket was dropped (n entries removed). */
    void (*owner_gone)(void *svc, const char *owner, unsigned n, const char *why);
    /* Optional: 0 when node takes no part in this table (nothing is sent to it); NULL: every
     * peer does. */
    int (*wants)(void *svc, const char *node);
    /* Optional: the tag of {P_ack, Node, Seq}, the answer to an add that asks for one
     * ({P_add, Owner, [E], Seq}); needed by bl__repl_local_put_acked. */
    const char *tag_ack;
    /* 1: a nodedown drops the owner's bucket at once even with a cluster layer (pg, as OTP's
     * pg does: members of a disconnected node are gone; the next nodeup exchanges again). */
    int drop_on_nodedown;
} bl__repl_ops;

typedef struct bl__repl_stats {
    uint64_t msgs_out, bytes_out, syncs_out, wants_out, digests_out, send_failures;
} bl__repl_stats;

/* After the service's process is spawned (proc). NULL on ENOMEM. */
bl__repl *bl__repl_new(bl_node *n, bl_proc *proc, const bl__repl_ops *ops, void *svc);
/* The same for a service whose process name varies per instance (pg scopes): messages go to
 * name (copied) instead of ops->proc_name. */
bl__repl *bl__repl_new_named(bl_node *n, bl_proc *proc, const bl__repl_ops *ops, void *svc,
                             const char *name);
/* Our sync and a want to every peer now (a service instance started after the node). */
void bl__repl_exchange_all(bl__repl *r);
/* 1 when messages from node are replicated through this layer (a live beamlet member). */
int bl__repl_is_peer(const bl__repl *r, const char *node);
/* Stops timers and subscriptions, frees the buckets without touching the entries (the
 * service frees those, before or after). */
void bl__repl_free(bl__repl *r);
/* A message to the service's process: 1 if it was one of the layer's (handled), else 0. */
int bl__repl_handle(bl__repl *r, const bl_msg *msg);
/* A new or changed local entry: into the local bucket, announced to every member. */
int bl__repl_local_put(bl__repl *r, bl__repl_link *e);
/* As bl__repl_local_put, and the add asks every peer it went to for an ack. done runs once,
 * on the loop, with how many peers applied it (acked) out of those asked: when all answered or
 * went down, or after timeout_ms -- or before this returns, when no peer was asked. Not after
 * bl__repl_free. BL_OK, BL_ENOMEM, BL_EINVAL (ops without tag_ack). */
typedef void (*bl__repl_acked_fn)(void *ud, unsigned acked, unsigned asked);
int bl__repl_local_put_acked(bl__repl *r, bl__repl_link *e, unsigned timeout_ms,
                             bl__repl_acked_fn done, void *ud);
/* A local entry removed: announced (del), out of the bucket. */
void bl__repl_local_del(bl__repl *r, bl__repl_link *e);
/* A remote entry the service added by itself (not from a message): into owner's bucket, hashed
 * by its encoding. */
void bl__repl_remote_put(bl__repl *r, const char *owner, bl__repl_link *e);
/* Take an entry out of its bucket without announcing anything (the service drops it itself). */
void bl__repl_unlink(bl__repl *r, bl__repl_link *e);
/* Drop owner's bucket (each entry through ops->remove, BL__REPL_GONE). */
void bl__repl_drop_owner(bl__repl *r, const char *owner, const char *why);
/* Our whole set to node now. */
void bl__repl_sync_to(bl__repl *r, const char *node);
/* Entries held for owner (this node included). */
unsigned bl__repl_count(const bl__repl *r, const char *owner);
const bl__repl_stats *bl__repl_get_stats(const bl__repl *r);
/* Replace how messages leave (default: bl_cluster_send to ops->proc_name on node); for tests
 * and the fuzzer, which run on a node that is never started. */
typedef int (*bl__repl_send_fn)(void *ud, const char *node, const ei_x_buff *x);
void bl__repl_set_send(bl__repl *r, bl__repl_send_fn fn, void *ud);

#endif
