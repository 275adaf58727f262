/* handshake.h - distribution handshakes on the event loop, both directions.
 *
 * Each handshake is a small struct with one socket watcher and one timer; there is no thread and
 * nothing waits on anything but its own socket, so any number of nodes can connect to each other
 * at once. An outgoing one resolves the host (resolve.h: IP literals at once, names off the
 * loop), asks the host's EPMD for the port (epmd.h), connects, then runs the state machine of
 * hsm.h; an incoming one runs the state machine on the accepted socket. Every step has a timeout
 * (connect_timeout_ms for resolve/EPMD/connect, handshake_timeout_ms per handshake packet), and
 * at most max_handshakes_per_address incoming handshakes run per remote address (a log line says
 * when that refuses one). Which socket survives a simultaneous connect is decided by conn.c with
 * BEAM's own rule (bl_conn_hs_named). */
#ifndef BL_DIST_HANDSHAKE_H
#define BL_DIST_HANDSHAKE_H

#include "beamlet/beamlet.h"

typedef struct bl_hs bl_hs;
struct bl_node;

/* Start an outgoing handshake to node; NULL when out of memory. */
bl_hs *bl_hs_connect(bl_node *n, const char *node);
/* Run an incoming handshake on an accepted socket (takes the fd in every case). */
void bl_hs_accept(bl_node *n, int fd);
/* Drop a handshake without telling conn.c (its pending slot was taken over). */
void bl_hs_abort(bl_hs *h);
/* Node stop: drop every handshake. */
void bl_hs_free_all(bl_node *n);
/* The stream a handshake runs on (NULL before it is connected): with TLS distribution, the
 * peer's verified certificate is there (bl__tls_peer_matches_host, dist/tls.h). */
const struct bl_tx *bl_hs_transport(const bl_hs *h);
/* How many handshakes are running (for stats). */
unsigned bl_hs_count(const bl_node *n);

#endif
