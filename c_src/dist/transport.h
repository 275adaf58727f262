/* transport.h - the byte stream under the distribution layer: plain TCP or TLS.
 *
 * The handshake driver (handshake.c) and the connection (conn.c) read and write through a
 * bl_tx and its ops table, so framing, ticks, queues and backpressure are the same for every
 * transport. A transport owns its socket. Calls never block: when one cannot go on it returns
 * -1 (or 0 from handshake) with t->want set to the libev event it waits for (EV_READ or
 * EV_WRITE; TLS may want EV_WRITE to read and EV_READ to write); an error returns -1 with
 * t->want 0 and t->err saying why. Bytes a transport has taken off the socket but not yet
 * returned (TLS records) are invisible to libev: the caller asks pending() and re-reads. */
#ifndef BL_DIST_TRANSPORT_H
#define BL_DIST_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct bl_tx bl_tx;

typedef struct bl_tx_ops {
    const char *name; /* "tcp" or "tls", for logs */
    /* read until the transport says it would block (1), or until a short read (0) */
    int read_until_block;
    /* a streaming peer's socket may be read on a short timer instead of on readiness (conn.c) */
    int batch_reads;
    /* The transport's own handshake: 1 done, 0 wait for t->want, -1 failed (t->err). */
    int (*handshake)(bl_tx *t);
    /* > 0 bytes read, 0 the peer closed, -1 would block (t->want) or failed. */
    ssize_t (*recv)(bl_tx *t, void *buf, size_t len);
    /* > 0 bytes written (may be fewer than given), -1 would block (t->want) or failed. */
    ssize_t (*writev)(bl_tx *t, const struct iovec *iov, int iovcnt);
    /* bytes already taken off the socket and not returned yet */
    int (*pending)(const bl_tx *t);
    /* close the socket and free t */
    void (*close)(bl_tx *t);
} bl_tx_ops;

struct bl_tx {
    const bl_tx_ops *ops;
    int fd;
    int want; /* EV_READ / EV_WRITE after a call that would block */
    int got;  /* some bytes came from the peer (a silent probe is no failure) */
    char err[200];
};

/* A plain TCP stream on a connected non-blocking socket (takes fd; NULL when out of memory). */
bl_tx *bl_tx_tcp_new(int fd);

#endif
