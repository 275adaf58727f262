/* guard.h - who may connect, and how much: admission control for distribution connections.
 *
 * - The node allow-list (config `allow`, like net_kernel:allow/1): entries NAME@HOST (that node),
 *   NAME@ (that name on any host) or HOST (any node on that host), matched as OTP's
 *   dist_util:is_allowed/2 does (dist/allow.c). Empty: every node. Applied both ways: an incoming handshake is
 *   answered "not_allowed" once the peer has sent its name, an outgoing connect is refused before
 *   it starts.
 * - Limits: max_connections (connections up plus handshakes running), handshakes running at once
 *   per remote address (max_handshakes_per_address) and started per second per address
 *   (max_handshake_rate_per_address, a token bucket with a burst of one second's worth).
 * - Refusal logs are budgeted (bl_guard_log): per remote address at most 20 lines per 10 s window
 *   (per node, for outgoing refusals, 3) and 100 lines per window over all keys (guard.c); what
 *   is over budget is counted and reported in one summary line per key when its window ends, so a
 *   flood cannot fill a disk. Every refusal is also counted per reason (bl_stats.refused_*).
 *
 * THE PEER-NAME HOOK (for transports, e.g. TLS): when an allow-list is set, every node name it
 * lets through is also offered to the transport's check (bl_guard_set_peer_check) before the
 * handshake goes on: incoming right after the peer's send_name, outgoing once the transport is
 * connected and before this node's send_name. TLS uses it to require that the peer certificate
 * matches the node's host (SAN DNS or IP), as OTP does with pkix_verify_hostname when an allow
 * list is set. The check refusing makes the handshake fail with the check's reason (incoming:
 * status "not_allowed"), counted as refused_not_allowed. Plain TCP installs no check. */
#ifndef BL_DIST_GUARD_H
#define BL_DIST_GUARD_H

#include "beamlet/beamlet.h"

#include <stddef.h>

typedef struct bl_guard bl_guard;
typedef struct bl_guard_key bl_guard_key; /* one remote address's counters */

typedef enum {
    BL_REFUSE_NONE = 0,
    BL_REFUSE_NOT_ALLOWED,     /* the node is not on the allow-list, or the peer check said no */
    BL_REFUSE_MAX_CONNECTIONS, /* max_connections reached */
    BL_REFUSE_PER_ADDRESS,     /* max_handshakes_per_address running from that address */
    BL_REFUSE_RATE,            /* max_handshake_rate_per_address exceeded */
    BL_REFUSE_BUSY,            /* the node-wide bound on handshakes running at once */
} bl_refusal;

/* What the peer check is told about the peer whose node name the allow-list let through. */
typedef struct bl_peer_id {
    const char *node; /* incoming: as announced in send_name; outgoing: the node dialled */
    const char *addr; /* the remote address as text */
    int fd;           /* the connection's socket */
    int outgoing;     /* this node initiated the connection */
    void *transport;  /* the transport's per-connection state (NULL for plain TCP) */
} bl_peer_id;

/* Return 0 to accept the peer under that name, -1 to refuse it with why[] filled in. */
typedef int (*bl_peer_check_fn)(bl_node *n, const bl_peer_id *peer, void *ud, char *why,
                                size_t whylen);

/* Set up from n->cfg (allow-list parsed); BL_OK or BL_ENOMEM. */
int bl_guard_new(bl_node *n);
void bl_guard_free(bl_node *n);
/* Install (or with fn NULL remove) the transport's peer-name check. */
void bl_guard_set_peer_check(bl_node *n, bl_peer_check_fn fn, void *ud);

/* 1 when node may connect (allow-list empty, or an entry matches). */
int bl_guard_allowed(const bl_node *n, const char *node);
/* The allow-list and the peer check together: 0 when node goes on, -1 with why[] otherwise.
 * Does not count or log (the caller does, with bl_guard_refused). */
int bl_guard_check_peer(bl_node *n, const bl_peer_id *peer, char *why, size_t whylen);

/* A connection from addr was accepted: may its handshake start? On BL_REFUSE_NONE *slot holds one
 * of addr's handshake slots (it stays valid while held): give it back with bl_guard_hs_done. */
bl_refusal bl_guard_accept(bl_node *n, const char *addr, bl_guard_key **slot);
void bl_guard_hs_done(bl_node *n, bl_guard_key *slot);
/* May one more connection come up? with_handshakes: count the handshakes running too (a
 * connection about to start a handshake); 0 for a handshake that has just completed. */
int bl_guard_room(const bl_node *n, int with_handshakes);

/* Count a refusal and log it within the budget of key (the remote address, or the node). */
void bl_guard_refused(bl_node *n, bl_refusal why, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A log line within the budget of key (the remote address, or the node). */
void bl_guard_log(bl_node *n, const char *key, bl_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The config key naming reason's limit, for log lines ("max_connections", ...). */
const char *bl_guard_reason(bl_refusal why);
/* "max_connections (2) reached": the limit and its value, for log lines. */
void bl_guard_describe(const bl_node *n, bl_refusal why, char *out, size_t outlen);

#endif
