/* handshake.h - distribution handshakes off the loop thread.
 *
 * ei's handshake (ei_accept_tmo / ei_connect_tmo) is synchronous, so it runs on a small elastic
 * pool of worker threads: a thread exists only while there is a handshake to run, up to a
 * configured maximum. The loop accepts sockets itself and hands each accepted fd to a worker; a
 * peer that stalls mid-handshake ties up one worker until its timeout, never the loop. Finished
 * fds come back through an ev_async. */
#ifndef BL_DIST_HANDSHAKE_H
#define BL_DIST_HANDSHAKE_H

#include "beamlet/beamlet.h"

typedef struct bl_hs_pool bl_hs_pool;

typedef struct bl_hs_result {
    struct bl_hs_result *next;
    int outgoing;
    int fd;                 /* >= 0 on success */
    char node[BL_NODE_LEN]; /* peer node name (for accepts: as the peer announced it) */
    char error[160];        /* on failure */
} bl_hs_result;

/* The ussi socket callbacks for ei_connect_xinit_ussi. */
extern ei_socket_callbacks bl_hs_callbacks;

/* notify(arg) is called from a worker thread after a result is queued (use ev_async_send). */
bl_hs_pool *bl_hs_pool_new(ei_cnode *ec, unsigned max_threads, unsigned accept_tmo_ms,
                           unsigned connect_tmo_ms, void (*notify)(void *), void *arg);
/* Shut down: waits for running workers to finish (bounded by their timeouts). */
void bl_hs_pool_free(bl_hs_pool *p);
int bl_hs_accept(bl_hs_pool *p, int fd, int lfd);
int bl_hs_connect(bl_hs_pool *p, const char *node);
/* Take all finished results (a list the caller frees with free()). */
bl_hs_result *bl_hs_take(bl_hs_pool *p);

#endif
