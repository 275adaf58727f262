/* epmd.c - the EPMD client on the event loop (see epmd.h). */
#include "epmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EPMD_ALIVE2_REQ 120
#define EPMD_ALIVE2_RESP 121   /* 16-bit creation (EPMD before OTP 23) */
#define EPMD_ALIVE2_X_RESP 118 /* 32-bit creation */
#define EPMD_PORT_PLEASE2_REQ 122
#define EPMD_PORT2_RESP 119
#define EPMD_NAMES_REQ 110
#define NAMES_MAX (256 * 1024)

int bl_epmd_port(void)
{
    const char *e = getenv("ERL_EPMD_PORT");
    int p = e ? atoi(e) : 0;
    return p > 0 && p < 65536 ? p : 4369;
}

/* A non-blocking connect to addr at the EPMD port; -1 on immediate failure. */
static int epmd_connect(const struct sockaddr *addr, socklen_t alen)
{
    struct sockaddr_storage ss;
    if (alen > sizeof(ss)) return -1;
    memcpy(&ss, addr, alen);
    in_port_t port = htons((in_port_t)bl_epmd_port());
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = port;
    else if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = port;
    else
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&ss, alen) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether fd has the events of `want` ready now (a poll that does not wait). A timeout timer that
 * fires after the loop was starved (a loaded machine) runs before the I/O that became ready in
 * the same loop iteration: the answer may be waiting in the socket. A timer that finds it there
 * re-arms instead of failing, and the I/O watcher, already pending, takes the answer. Each
 * re-arm needs a ready socket, which the watcher's next run consumes or fails on. */
static int ready_now(int fd, short want)
{
    struct pollfd p = {.fd = fd, .events = want};
    return fd >= 0 && poll(&p, 1, 0) == 1 && p.revents;
}

/* ---- one-shot requests ---- */

enum { REQ_PORT, REQ_NAMES };

struct bl_epmd_req {
    struct ev_loop *loop;
    int kind;
    int fd;
    int connected;
    ev_io io;
    ev_timer timer;
    double tmo; /* seconds */
    unsigned char req[2 + 1 + 256];
    size_t reqlen, sent;
    char *buf;
    size_t len, cap;
    bl_epmd_port_cb port_cb;
    bl_epmd_names_cb names_cb;
    void *ud;
};

static void req_free(bl_epmd_req *r)
{
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    free(r);
}

static void req_finish(bl_epmd_req *r, int port, const char *names, const char *why)
{
    if (r->kind == REQ_PORT)
        r->port_cb(r->ud, port, why);
    else
        r->names_cb(r->ud, names, why);
    req_free(r);
}

/* The reply so far is complete (1), needs more (0), or is bad (-1). */
static int port_reply(bl_epmd_req *r, int *port, const char **why)
{
    const unsigned char *b = (const unsigned char *)r->buf;
    if (r->len < 2) return 0;
    if (b[0] != EPMD_PORT2_RESP) {
        *why = "garbage from EPMD";
        return -1;
    }
    if (b[1] != 0) {
        *why = "not registered in EPMD";
        return -1;
    }
    if (r->len < 4) return 0;
    *port = (b[2] << 8) | b[3];
    return 1;
}

static void req_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    bl_epmd_req *r = w->data;
    if (!r->connected) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            char why[96];
            snprintf(why, sizeof(why), "EPMD not reachable: %s", strerror(soerr));
            req_finish(r, -1, NULL, why);
            return;
        }
        r->connected = 1;
    }
    if ((revents & EV_WRITE) && r->sent < r->reqlen) {
        ssize_t k = send(r->fd, r->req + r->sent, r->reqlen - r->sent, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN && errno != EINTR) {
            req_finish(r, -1, NULL, "EPMD refused the request");
            return;
        }
        if (k > 0) r->sent += (size_t)k;
        if (r->sent == r->reqlen) {
            ev_io_stop(r->loop, &r->io);
            ev_io_set(&r->io, r->fd, EV_READ);
            ev_io_start(r->loop, &r->io);
        }
        return;
    }
    if (!(revents & EV_READ)) return;
    if (r->cap - r->len < 2048) {
        size_t nc = r->cap ? r->cap * 2 : 4096;
        if (nc > NAMES_MAX + 1) nc = NAMES_MAX + 1;
        if (nc <= r->len + 1) {
            req_finish(r, -1, NULL, "EPMD reply too long");
            return;
        }
        char *nb = realloc(r->buf, nc);
        if (!nb) {
            req_finish(r, -1, NULL, "out of memory");
            return;
        }
        r->buf = nb;
        r->cap = nc;
    }
    ssize_t k = recv(r->fd, r->buf + r->len, r->cap - 1 - r->len, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (k > 0) r->len += (size_t)k;
    if (r->kind == REQ_PORT) {
        int port = -1;
        const char *why = "EPMD closed the connection early";
        int st = port_reply(r, &port, &why);
        if (st != 0 || k <= 0) req_finish(r, st == 1 ? port : -1, NULL, st == 1 ? NULL : why);
        return;
    }
    if (k <= 0) { /* NAMES: the reply ends when EPMD closes */
        r->buf[r->len] = 0;
        if (r->len < 4)
            req_finish(r, -1, NULL, "EPMD closed the connection early");
        else
            req_finish(r, 0, r->buf + 4, NULL);
    }
}

int bl_epmd_req_ready(const bl_epmd_req *r)
{
    return ready_now(r->fd, r->sent < r->reqlen ? POLLOUT : POLLIN);
}

static void req_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_epmd_req *r = w->data;
    if (bl_epmd_req_ready(r)) {
        ev_timer_set(&r->timer, r->tmo, 0);
        ev_timer_start(loop, &r->timer);
        return;
    }
    req_finish(r, -1, NULL,
               r->connected ? "EPMD did not answer in time" : "EPMD connect timed out");
}

static bl_epmd_req *req_start(struct ev_loop *loop, int kind, const struct sockaddr *addr,
                              socklen_t alen, unsigned tmo_ms)
{
    bl_epmd_req *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->loop = loop;
    r->kind = kind;
    r->fd = epmd_connect(addr, alen);
    if (r->fd < 0) {
        free(r);
        return NULL;
    }
    ev_io_init(&r->io, req_io_cb, r->fd, EV_WRITE);
    r->tmo = tmo_ms / 1000.0;
    ev_timer_init(&r->timer, req_timer_cb, r->tmo, 0);
    r->io.data = r->timer.data = r;
    ev_io_start(loop, &r->io);
    ev_timer_start(loop, &r->timer);
    return r;
}

bl_epmd_req *bl_epmd_port_please(struct ev_loop *loop, const struct sockaddr *addr, socklen_t alen,
                                 const char *alive, unsigned tmo_ms, bl_epmd_port_cb cb, void *ud)
{
    size_t nl = strlen(alive);
    if (nl == 0 || nl > 255) return NULL;
    bl_epmd_req *r = req_start(loop, REQ_PORT, addr, alen, tmo_ms);
    if (!r) return NULL;
    r->req[0] = (unsigned char)((nl + 1) >> 8);
    r->req[1] = (unsigned char)(nl + 1);
    r->req[2] = EPMD_PORT_PLEASE2_REQ;
    memcpy(r->req + 3, alive, nl);
    r->reqlen = 3 + nl;
    r->port_cb = cb;
    r->ud = ud;
    return r;
}

bl_epmd_req *bl_epmd_names(struct ev_loop *loop, const struct sockaddr *addr, socklen_t alen,
                           unsigned tmo_ms, bl_epmd_names_cb cb, void *ud)
{
    bl_epmd_req *r = req_start(loop, REQ_NAMES, addr, alen, tmo_ms);
    if (!r) return NULL;
    r->req[0] = 0;
    r->req[1] = 1;
    r->req[2] = EPMD_NAMES_REQ;
    r->reqlen = 3;
    r->names_cb = cb;
    r->ud = ud;
    return r;
}

void bl_epmd_cancel(bl_epmd_req *r)
{
    if (r) req_free(r);
}

/* ---- registration ---- */

static void reg_attempt(bl_epmd_reg *r);

static void reg_close(bl_epmd_reg *r)
{
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->len = 0;
}

/* First registration attempts that may end on a busy EPMD (no answer in time, the connection
 * closed early: an EPMD serving a hundred nodes that boot at once on a starved machine) before the
 * node gives up; a refused name, garbage, or no EPMD at all end it at once. */
#define REG_TRIES 4

static void reg_failed_as(bl_epmd_reg *r, const char *why, int busy)
{
    reg_close(r);
    if (!r->registered && (!busy || ++r->tries >= REG_TRIES)) {
        r->stage = 0;
        r->cb(r->ud, BL_EPMD_FAILED, 0, why);
        return;
    }
    /* lost after a registration, or a busy EPMD before the first: retry with back-off */
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 500;
    if (r->backoff_ms > 10000) r->backoff_ms = 10000;
    r->stage = 4;
    ev_timer_set(&r->timer, r->backoff_ms / 1000.0, 0);
    ev_timer_start(r->loop, &r->timer);
}

static void reg_failed(bl_epmd_reg *r, const char *why)
{
    reg_failed_as(r, why, 0);
}

static void reg_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_epmd_reg *r = w->data;
    if (r->stage == 1) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            char why[96];
            snprintf(why, sizeof(why), "EPMD not reachable: %s", strerror(soerr));
            reg_failed(r, why);
            return;
        }
        size_t nl = strlen(r->alive);
        unsigned char req[2 + 13 + 256];
        size_t body = 1 + 2 + 1 + 1 + 2 + 2 + 2 + nl + 2;
        unsigned char *p = req;
        *p++ = (unsigned char)(body >> 8);
        *p++ = (unsigned char)body;
        *p++ = EPMD_ALIVE2_REQ;
        *p++ = (unsigned char)(r->port >> 8);
        *p++ = (unsigned char)r->port;
        *p++ = 77; /* normal node: what erl_epmd registers, hidden or not */
        *p++ = 0;  /* TCP (IPv4 or IPv6: erl_epmd sends 0 for both) */
        *p++ = 0;
        *p++ = 6; /* highest version */
        *p++ = 0;
        *p++ = 6; /* lowest version */
        *p++ = (unsigned char)(nl >> 8);
        *p++ = (unsigned char)nl;
        memcpy(p, r->alive, nl);
        p += nl;
        *p++ = 0; /* no extra */
        *p++ = 0;
        /* a small request on a fresh loopback socket: one send either goes whole or fails */
        ssize_t k = send(r->fd, req, (size_t)(p - req), MSG_NOSIGNAL);
        if (k != p - req) {
            reg_failed(r, "EPMD refused the registration request");
            return;
        }
        r->stage = 2;
        ev_io_stop(r->loop, &r->io);
        ev_io_set(&r->io, r->fd, EV_READ);
        ev_io_start(r->loop, &r->io);
        return;
    }
    if (r->stage == 2) {
        ssize_t k = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (k <= 0) {
            reg_failed_as(r, "EPMD closed the registration connection", 1);
            return;
        }
        r->len += (size_t)k;
        if (r->len < 2) return;
        if (r->buf[0] != EPMD_ALIVE2_X_RESP && r->buf[0] != EPMD_ALIVE2_RESP) {
            reg_failed(r, "garbage from EPMD");
            return;
        }
        if (r->buf[1] != 0) {
            reg_failed(r, "EPMD refused the registration (is the name taken?)");
            return;
        }
        size_t need = r->buf[0] == EPMD_ALIVE2_X_RESP ? 6 : 4;
        if (r->len < need) return;
        unsigned creation = r->buf[0] == EPMD_ALIVE2_X_RESP
                                ? ((unsigned)r->buf[2] << 24) | ((unsigned)r->buf[3] << 16) |
                                      ((unsigned)r->buf[4] << 8) | r->buf[5]
                                : ((unsigned)r->buf[2] << 8) | r->buf[3];
        ev_timer_stop(r->loop, &r->timer);
        r->stage = 3;
        r->backoff_ms = 0;
        int again = r->registered;
        if (!r->registered) r->creation = creation;
        r->registered = 1;
        r->cb(r->ud, again ? BL_EPMD_REREGISTERED : BL_EPMD_REGISTERED, r->creation, NULL);
        return;
    }
    if (r->stage == 3) { /* EPMD never writes on a registration socket: EOF means it is gone */
        char b[16];
        ssize_t k = recv(r->fd, b, sizeof(b), 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (k > 0) return;
        r->cb(r->ud, BL_EPMD_LOST, r->creation, "EPMD closed the registration connection");
        reg_failed(r, "lost");
    }
}

static void reg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_epmd_reg *r = w->data;
    if (r->stage == 4) {
        reg_attempt(r);
        return;
    }
    if ((r->stage == 1 || r->stage == 2) && ready_now(r->fd, r->stage == 1 ? POLLOUT : POLLIN)) {
        ev_timer_set(&r->timer, r->tmo_ms / 1000.0, 0);
        ev_timer_start(loop, &r->timer);
        return;
    }
    reg_failed_as(r, "EPMD did not answer in time", 1);
}

static void reg_attempt(bl_epmd_reg *r)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t alen;
    if (r->v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        alen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        alen = sizeof(*a);
    }
    r->len = 0;
    r->fd = epmd_connect((struct sockaddr *)&ss, alen);
    if (r->fd < 0) {
        reg_failed(r, "cannot connect to EPMD");
        return;
    }
    r->stage = 1;
    ev_io_set(&r->io, r->fd, EV_WRITE);
    ev_io_start(r->loop, &r->io);
    ev_timer_set(&r->timer, r->tmo_ms / 1000.0, 0);
    ev_timer_start(r->loop, &r->timer);
}

int bl_epmd_register(bl_epmd_reg *r, struct ev_loop *loop, const char *alive, int port, int v6,
                     unsigned tmo_ms, bl_epmd_reg_cb cb, void *ud)
{
    memset(r, 0, sizeof(*r));
    if (strlen(alive) == 0 || strlen(alive) > 255) return -1;
    r->loop = loop;
    snprintf(r->alive, sizeof(r->alive), "%s", alive);
    r->port = port;
    r->v6 = v6;
    r->tmo_ms = tmo_ms;
    r->fd = -1;
    r->cb = cb;
    r->ud = ud;
    ev_io_init(&r->io, reg_io_cb, -1, EV_WRITE);
    ev_timer_init(&r->timer, reg_timer_cb, 0, 0);
    r->io.data = r->timer.data = r;
    reg_attempt(r);
    return 0;
}

void bl_epmd_unregister(bl_epmd_reg *r)
{
    if (!r->loop) return;
    reg_close(r);
    r->stage = 0;
}
