/* epmd.h - an EPMD client on the event loop (erl_dist_protocol.md, "EPMD Protocol").
 *
 * Every request is a non-blocking TCP exchange with a timeout over the whole exchange:
 *  - registration (ALIVE2_REQ -> ALIVE2_X_RESP with a 32-bit creation): the socket stays open for
 *    the node's lifetime, as EPMD requires; when EPMD closes it (EPMD restarted) the client
 *    registers again, retrying with back-off, and keeps the creation it was first given;
 *  - PORT_PLEASE2 lookups (the distribution port of a name on a host);
 *  - NAMES (the names registered on a host, as text lines).
 * EPMD's port is 4369, or ERL_EPMD_PORT like erl and ei. IPv4 and IPv6 addresses alike. */
#ifndef BL_DIST_EPMD_H
#define BL_DIST_EPMD_H

#include <ev.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef struct bl_epmd_req bl_epmd_req;

/* port > 0 on success; otherwise port is -1 and why says what failed. */
typedef void (*bl_epmd_port_cb)(void *ud, int port, const char *why);
/* names: the NAMES text (lines "name N at port P"), NUL-terminated; NULL with why on failure. */
typedef void (*bl_epmd_names_cb)(void *ud, const char *names, const char *why);

/* The EPMD port (ERL_EPMD_PORT or 4369). */
int bl_epmd_port(void);

/* Start a lookup of alive (the name before '@') at the EPMD on addr (its port is replaced by the
 * EPMD port). The callback runs exactly once, from the loop, unless the request is cancelled
 * first; the request frees itself after the callback. NULL when out of memory or no socket. */
bl_epmd_req *bl_epmd_port_please(struct ev_loop *loop, const struct sockaddr *addr, socklen_t alen,
                                 const char *alive, unsigned tmo_ms, bl_epmd_port_cb cb, void *ud);
bl_epmd_req *bl_epmd_names(struct ev_loop *loop, const struct sockaddr *addr, socklen_t alen,
                           unsigned tmo_ms, bl_epmd_names_cb cb, void *ud);
/* Whether the request's socket has what it waits for ready now (a late timeout of a caller's own
 * checks it before giving up: the answer may be waiting behind a starved loop). */
int bl_epmd_req_ready(const bl_epmd_req *r);
/* Cancel a request whose callback has not run: no callback, everything freed. */
void bl_epmd_cancel(bl_epmd_req *r);

/* ---- registration ---- */

typedef enum {
    BL_EPMD_REGISTERED,   /* first registration done: creation is valid */
    BL_EPMD_FAILED,       /* first registration failed (why): the node cannot start */
    BL_EPMD_LOST,         /* EPMD closed the registration socket; retrying */
    BL_EPMD_REREGISTERED, /* registered again after a loss */
} bl_epmd_event;

typedef void (*bl_epmd_reg_cb)(void *ud, bl_epmd_event ev, unsigned creation, const char *why);

typedef struct bl_epmd_reg {
    struct ev_loop *loop;
    char alive[256];
    int port, v6;
    unsigned tmo_ms;
    unsigned creation; /* from the first registration */
    int registered;    /* ever registered */
    unsigned tries;    /* first attempts that met a busy EPMD (epmd.c, REG_TRIES) */
    int fd;            /* the open registration socket, or -1 */
    ev_io io;
    ev_timer timer; /* request timeout, then retry back-off */
    unsigned backoff_ms;
    unsigned char buf[16];
    size_t len;
    int stage; /* 0 idle, 1 connecting, 2 awaiting reply, 3 registered, 4 waiting to retry */
    bl_epmd_reg_cb cb;
    void *ud;
} bl_epmd_reg;

/* Register alive on the local EPMD (127.0.0.1, or ::1 when v6) for the distribution port. */
int bl_epmd_register(bl_epmd_reg *r, struct ev_loop *loop, const char *alive, int port, int v6,
                     unsigned tmo_ms, bl_epmd_reg_cb cb, void *ud);
/* Unregister (close the socket) and stop every watcher. */
void bl_epmd_unregister(bl_epmd_reg *r);

#endif
