/* handshake.c - the handshake driver: sockets, timers and steps around hsm.c (see handshake.h).
 *
 * Reads take exactly what the current handshake packet still needs, so nothing that follows the
 * handshake (the peer's first frames) is read here: the connection starts on a clean stream. */
#include "handshake.h"
#include "../runtime/internal.h"
#include "epmd.h"
#include "guard.h"
#include "flags.h"
#include "hsm.h"
#include "resolve.h"
#include "tls.h"
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
    ST_RESOLVE, /* outgoing: waiting for the host's addresses */
    ST_EPMD,    /* outgoing: waiting for PORT_PLEASE2 */
    ST_CONNECT, /* outgoing: TCP connect in progress */
    ST_TLS,     /* TLS distribution: the TLS handshake under the distribution one */
    ST_RUN,     /* the handshake proper */
    ST_FLUSH,   /* done: the last packet is still being written */
    ST_NOK,     /* outgoing told "nok": waiting for the peer's connection to replace us */
} hs_stage;

struct bl_hs {
    struct bl_hs *prev, *next; /* in node->handshakes */
    bl_node *n;
    int outgoing;
    hs_stage stage;
    int fd;
    bl_tx *tx; /* the stream once connected (owns fd) */
    ev_io io;
    ev_timer timer;
    unsigned timer_ms; /* what the timer was last armed with */
    bl_resolve_wait *rw;
    bl_epmd_req *er;
    bl_addrs addrs;
    int addr_i;
    int port;
    char addr[INET6_ADDRSTRLEN]; /* remote address, for logs and the per-address bound */
    bl_guard_key *slot;          /* incoming: one of addr's per-address slots (guard.c) */
    char node[BL_NODE_LEN];      /* outgoing: dialled; incoming: once announced */
    int nok_sent;                /* incoming: answered "nok" (our own attempt wins) */
    int refused;                 /* refused by the allow-list or the peer check: logged already */
    int got;                     /* some bytes arrived */
    size_t outoff;
    bl_hsm m;
};

unsigned bl_hs_count(const bl_node *n)
{
    return n->nhandshakes;
}

static uint32_t random32(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v)) v ^= (uint32_t)random();
    return v;
}

static void arm_timer(bl_hs *h, unsigned ms)
{
    h->timer_ms = ms;
    ev_timer_stop(h->n->loop, &h->timer);
    ev_timer_set(&h->timer, ms / 1000.0, 0);
    ev_timer_start(h->n->loop, &h->timer);
}

static void watch(bl_hs *h, int events)
{
    ev_io_stop(h->n->loop, &h->io);
    if (h->fd < 0 || !events) return;
    ev_io_set(&h->io, h->fd, events);
    ev_io_start(h->n->loop, &h->io);
}

static void hs_free(bl_hs *h)
{
    bl_node *n = h->n;
    ev_io_stop(n->loop, &h->io);
    ev_timer_stop(n->loop, &h->timer);
    if (h->rw) bl_resolve_cancel(n->resolver, h->rw);
    if (h->er) bl_epmd_cancel(h->er);
    if (h->tx)
        h->tx->ops->close(h->tx);
    else if (h->fd >= 0)
        close(h->fd);
    bl_guard_hs_done(n, h->slot);
    DL_DELETE(n->handshakes, h);
    n->nhandshakes--;
    free(h);
}

void bl_hs_abort(bl_hs *h)
{
    if (h) hs_free(h);
}

void bl_hs_free_all(bl_node *n)
{
    while (n->handshakes)
        hs_free(n->handshakes);
}

/* The handshake ended without a connection. conn.c forgets it before it is freed, and hears of
 * the outcome after (its callbacks may start new handshakes or stop the node). */
static void hs_fail(bl_hs *h, const char *why)
{
    bl_node *n = h->n;
    char node[BL_NODE_LEN], msg[320];
    snprintf(node, sizeof(node), "%s", h->node);
    snprintf(msg, sizeof(msg), "%s", why);
    int outgoing = h->outgoing;
    int role = node[0] ? bl_conn_hs_release(n, h, node) : 0;
    /* expected, not failures: our own attempt won a simultaneous connect ("nok" sent), or a peer
     * (a connect probe, or the other side of a race dropping its attempt) closed before a byte */
    int quiet = h->nok_sent || h->refused ||
                (h->m.state == BL_HSM_S_IN_NAME && h->m.inlen == 0 && !h->got &&
                 !(h->tx && h->tx->got));
    if (!outgoing) { /* within the address's log budget: a flood of bad handshakes is bounded */
        if (!quiet) n->stats.handshakes_failed++;
        bl_guard_log(n, h->addr, quiet ? BL_LOG_DEBUG : BL_LOG_WARN,
                     "incoming handshake refused: from %s%s%s%s: %s", h->addr, node[0] ? " (" : "",
                     node, node[0] ? ")" : "", msg);
    }
    hs_free(h);
    if (node[0]) bl_conn_hs_failed(n, node, outgoing, role, msg);
}

/* Write what the state machine queued; 1 when all of it is out, 0 when waiting, -1 on error. */
static int hs_flush(bl_hs *h)
{
    while (h->outoff < h->m.outlen) {
        struct iovec iov = {h->m.out + h->outoff, h->m.outlen - h->outoff};
        ssize_t k = h->tx->ops->writev(h->tx, &iov, 1);
        if (k < 0) return h->tx->want ? 0 : -1;
        h->outoff += (size_t)k;
    }
    h->outoff = h->m.outlen = 0;
    return 1;
}

const bl_tx *bl_hs_transport(const bl_hs *h)
{
    return h ? h->tx : NULL;
}

/* Hand a finished socket to conn.c. */
static void hs_up(bl_hs *h)
{
    bl_node *n = h->n;
    bl_tx *tx = h->tx;
    h->tx = NULL;
    h->fd = -1;
    char node[BL_NODE_LEN];
    snprintf(node, sizeof(node), "%s", h->m.peer);
    int outgoing = h->outgoing;
    uint64_t flags = h->m.flags;
    int role = bl_conn_hs_release(n, h, node);
    hs_free(h);
    bl_conn_hs_up(n, node, tx, outgoing, role, flags);
}

/* After feeding or deciding: send what is queued, then act on the machine's state. */
static void hs_after(bl_hs *h, int rc)
{
    int fl = hs_flush(h);
    if (fl < 0) {
        hs_fail(h, rc == BL_HSM_ERROR ? h->m.error : "write failed");
        return;
    }
    switch (rc) {
    case BL_HSM_ERROR:
        hs_fail(h, h->m.error);
        return;
    case BL_HSM_NOK: {
        /* the peer's own connection to us is in flight and wins; keep the pending slot (and the
         * frames queued for that node) until it arrives or the timeout says it never will */
        watch(h, 0);
        h->tx->ops->close(h->tx);
        h->tx = NULL;
        h->fd = -1;
        h->stage = ST_NOK;
        arm_timer(h, h->n->cfg.handshake_timeout_ms);
        bl_log(h->n, BL_LOG_DEBUG, "simultaneous connect with %s: waiting for its connection",
               h->node);
        return;
    }
    case BL_HSM_DONE:
        if (fl == 0) {
            h->stage = ST_FLUSH;
            watch(h, EV_WRITE);
            return;
        }
        hs_up(h);
        return;
    default:
        arm_timer(h, h->n->cfg.handshake_timeout_ms);
        watch(h, fl == 0 ? EV_READ | EV_WRITE : EV_READ);
        /* TLS may hold the next packet already: libev cannot see it */
        if (h->tx->ops->pending(h->tx)) ev_feed_event(h->n->loop, &h->io, EV_READ);
        return;
    }
}

/* THE PEER-NAME HOOK POINT (guard.h): the node name a handshake is about to go on with, incoming
 * as announced in send_name, outgoing once connected and before our send_name, passes the
 * allow-list and then the transport's peer check (TLS: the certificate matches the host). A
 * transport with a handshake of its own (TLS) has finished it by then: outgoing, it is called
 * where the handshake proper starts (ST_RUN), after the transport is up. 0 to go on; -1 when
 * refused (counted and logged here, why[] says why). */
static int hs_peer_accepted(bl_hs *h, const char *node, char *why, size_t whylen)
{
    bl_peer_id peer = {node, h->addr, h->fd, h->outgoing, h->n->tls ? (void *)h->tx : NULL};
    why[0] = 0;
    if (bl_guard_check_peer(h->n, &peer, why, whylen) == 0) return 0;
    h->refused = 1;
    if (h->outgoing) /* conn.c logs the failed connect, with its backoff */
        h->n->stats.refused_not_allowed++;
    else
        bl_guard_refused(h->n, BL_REFUSE_NOT_ALLOWED, h->addr,
                         "incoming handshake refused: from %s: %s (answered not_allowed)", h->addr,
                         why);
    return -1;
}

static void hs_decide(bl_hs *h, int rc)
{
    bl_node *n = h->n;
    while (rc == BL_HSM_DECIDE || rc == BL_HSM_PENDING) {
        if (rc == BL_HSM_DECIDE) {
            snprintf(h->node, sizeof(h->node), "%s", h->m.peer);
            char why[200];
            if (hs_peer_accepted(h, h->m.peer, why, sizeof(why)) < 0) {
                /* refused before it takes any slot: logged and counted once, not as a failure */
                h->node[0] = 0;
                rc = bl_hsm_decide(&h->m, BL_HS_STATUS_NOT_ALLOWED);
                continue;
            }
            bl_hs_status st = bl_conn_hs_named(n, h, h->m.peer);
            h->nok_sent = st == BL_HS_STATUS_NOK;
            rc = bl_hsm_decide(&h->m, st);
        } else {
            rc = bl_hsm_still_pending(&h->m, bl_conn_hs_still_pending(n, h, h->node));
        }
    }
    hs_after(h, rc);
}

static void hs_read(bl_hs *h)
{
    unsigned char buf[4 + BL_HSM_PACKET_MAX];
    for (;;) {
        size_t want = bl_hsm_want(&h->m);
        if (want > sizeof(buf)) want = sizeof(buf);
        ssize_t k = h->tx->ops->recv(h->tx, buf, want);
        if (k == 0) {
            hs_fail(h, "connection closed by peer during the handshake");
            return;
        }
        if (k < 0) {
            if (h->tx->want == EV_WRITE) watch(h, EV_READ | EV_WRITE); /* TLS: read wants write */
            if (h->tx->want) return;
            hs_fail(h, h->tx->err);
            return;
        }
        /* a TLS ClientHello where a plain handshake's 2-byte length should be */
        if (!h->got && !h->outgoing && !h->n->tls && buf[0] == 0x16) {
            h->got = 1;
            hs_fail(h, "a TLS ClientHello, but this node runs plain TCP distribution (tls is "
                       "false)");
            return;
        }
        size_t used;
        h->got = 1;
        int rc = bl_hsm_feed(&h->m, (const char *)buf, (size_t)k, &used);
        if (rc == BL_HSM_MORE && h->m.outlen == 0) {
            if (h->m.inlen == 0) arm_timer(h, h->n->cfg.handshake_timeout_ms);
            continue; /* a packet is still incomplete: read on */
        }
        hs_decide(h, rc);
        return;
    }
}

/* The distribution handshake proper, on the stream (4-byte packet lengths inside TLS). */
static void hs_run(bl_hs *h)
{
    bl_node *n = h->n;
    h->stage = ST_RUN;
    if (h->outgoing)
        bl_hsm_init_out(&h->m, n->name, n->cookie, BL_DFLAGS_ADVERTISED, n->creation, h->node,
                        random32());
    else
        bl_hsm_init_in(&h->m, n->name, n->cookie, BL_DFLAGS_ADVERTISED, n->creation, random32());
    if (n->tls) bl_hsm_set_len4(&h->m);
    if (h->outgoing) {
        hs_after(h, BL_HSM_MORE);
        return;
    }
    arm_timer(h, n->cfg.handshake_timeout_ms);
    watch(h, EV_READ);
    if (h->tx->ops->pending(h->tx)) ev_feed_event(n->loop, &h->io, EV_READ);
}

/* Drive the transport's handshake (TLS): interest follows what OpenSSL wants; one deadline. */
static void hs_tls_step(bl_hs *h)
{
    int r = h->tx->ops->handshake(h->tx);
    if (r == 0) {
        watch(h, h->tx->want);
        return;
    }
    if (r < 0) {
        char why[260];
        if (h->outgoing)
            snprintf(why, sizeof(why), "%s (%s:%d)", h->tx->err, h->addr, h->port);
        else
            snprintf(why, sizeof(why), "%s", h->tx->err);
        hs_fail(h, why);
        return;
    }
    hs_run(h);
}

/* The socket is connected (or accepted): put the node's transport on it. */
static void hs_stream(bl_hs *h)
{
    bl_node *n = h->n;
    if (n->tls) {
        const char *at = strchr(h->node, '@');
        h->tx = bl__tls_tx_new(n->tls, h->fd, !h->outgoing, h->outgoing && at ? at + 1 : NULL);
    } else {
        h->tx = bl_tx_tcp_new(h->fd);
        if (!h->tx) close(h->fd);
    }
    if (!h->tx) {
        h->fd = -1;
        hs_fail(h, "out of memory for the connection's transport");
        return;
    }
    if (!n->tls) {
        hs_run(h);
        return;
    }
    h->stage = ST_TLS;
    arm_timer(h, n->cfg.handshake_timeout_ms); /* one deadline for the whole TLS handshake */
    hs_tls_step(h);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    bl_hs *h = w->data;
    if (h->stage == ST_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            char why[96];
            snprintf(why, sizeof(why), "connect to %s:%d failed: %s", h->addr, h->port,
                     strerror(soerr));
            hs_fail(h, why);
            return;
        }
        char why[200];
        if (hs_peer_accepted(h, h->node, why, sizeof(why)) < 0) {
            hs_fail(h, why);
            return;
        }
        hs_stream(h);
        return;
    }
    if (h->stage == ST_TLS) {
        hs_tls_step(h);
        return;
    }
    if (revents & EV_WRITE) {
        int fl = hs_flush(h);
        if (fl < 0) {
            hs_fail(h, "write failed");
            return;
        }
        if (fl == 1) {
            if (h->stage == ST_FLUSH) {
                hs_up(h);
                return;
            }
            watch(h, EV_READ);
        }
    }
    if (revents & EV_READ) hs_read(h);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_hs *h = w->data;
    static const char *const what[] = {
        [ST_RESOLVE] = "host lookup timed out",
        [ST_EPMD] = "EPMD lookup timed out",
        [ST_CONNECT] = "TCP connect timed out",
        [ST_TLS] = "TLS handshake timed out (peer stalled)",
        [ST_RUN] = "timed out (peer stalled mid-handshake)",
        [ST_FLUSH] = "timed out writing the last handshake packet",
        [ST_NOK] = "peer answered nok (simultaneous connect) but its own connection never came",
    };
    /* A timer that fires after the loop was starved (a loaded machine) runs before the I/O that
     * became ready in the same loop iteration. If the socket has what this step waits for, its
     * watcher is pending: the peer did not stall, we did. Each re-arm needs a ready socket,
     * which the watcher consumes or fails on, so a peer that really stalls still times out. */
    int ready = 0;
    if (h->fd >= 0 && ev_is_active(&h->io)) {
        struct pollfd p = {.fd = h->fd,
                           .events = (short)(((h->io.events & EV_READ) ? POLLIN : 0) |
                                             ((h->io.events & EV_WRITE) ? POLLOUT : 0))};
        ready = p.events && poll(&p, 1, 0) == 1 && p.revents;
    } else if (h->stage == ST_EPMD && h->er) {
        ready = bl_epmd_req_ready(h->er);
    }
    if (ready) {
        unsigned ms = h->timer_ms ? h->timer_ms : h->n->cfg.handshake_timeout_ms;
        ev_timer_set(&h->timer, ms / 1000.0, 0);
        ev_timer_start(loop, &h->timer);
        return;
    }
    hs_fail(h, what[h->stage]);
}

/* ---- outgoing steps ---- */

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
    if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)outsz);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)outsz);
}

static void start_epmd(bl_hs *h);

static void on_port(void *ud, int port, const char *why)
{
    bl_hs *h = ud;
    h->er = NULL;
    if (port <= 0) {
        if (++h->addr_i < h->addrs.n) {
            start_epmd(h);
            return;
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "%s (EPMD at %s)", why, h->addr);
        hs_fail(h, msg);
        return;
    }
    h->port = port;
    struct sockaddr_storage ss = h->addrs.a[h->addr_i];
    socklen_t len = h->addrs.len[h->addr_i];
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((in_port_t)port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((in_port_t)port);
    h->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (h->fd < 0) {
        hs_fail(h, "cannot create a socket");
        return;
    }
    if (connect(h->fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
        char msg[128];
        snprintf(msg, sizeof(msg), "connect to %s:%d failed: %s", h->addr, port, strerror(errno));
        hs_fail(h, msg);
        return;
    }
    h->stage = ST_CONNECT;
    arm_timer(h, h->n->cfg.connect_timeout_ms);
    watch(h, EV_WRITE);
}

static void start_epmd(bl_hs *h)
{
    h->stage = ST_EPMD;
    addr_text(&h->addrs.a[h->addr_i], h->addr, sizeof(h->addr));
    char alive[BL_NODE_LEN];
    snprintf(alive, sizeof(alive), "%.*s", (int)strcspn(h->node, "@"), h->node);
    arm_timer(h, h->n->cfg.connect_timeout_ms + 1000); /* the request has its own timeout */
    h->er = bl_epmd_port_please(h->n->loop, (struct sockaddr *)&h->addrs.a[h->addr_i],
                                h->addrs.len[h->addr_i], alive, h->n->cfg.connect_timeout_ms,
                                on_port, h);
    if (!h->er) hs_fail(h, "cannot open a connection to EPMD");
}

static void on_resolved(void *ud, const bl_addrs *addrs, const char *why)
{
    bl_hs *h = ud;
    h->rw = NULL;
    if (!addrs) {
        hs_fail(h, why);
        return;
    }
    h->addrs = *addrs;
    h->addr_i = 0;
    start_epmd(h);
}

static bl_hs *hs_new(bl_node *n, int outgoing)
{
    bl_hs *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->n = n;
    h->outgoing = outgoing;
    h->fd = -1;
    ev_io_init(&h->io, io_cb, -1, EV_READ);
    ev_timer_init(&h->timer, timer_cb, 0, 0);
    h->io.data = h->timer.data = h;
    DL_APPEND(n->handshakes, h);
    n->nhandshakes++;
    return h;
}

/* Deferred start: the resolver may answer at once, and conn.c must have recorded the handshake
 * as its node's pending one before any outcome is reported. */
static void start_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_hs *h = w->data;
    ev_timer_stop(h->n->loop, &h->timer);
    h->stage = ST_RESOLVE;
    ev_set_cb(&h->timer, timer_cb);
    arm_timer(h, h->n->cfg.connect_timeout_ms);
    const char *host = strchr(h->node, '@') + 1;
    int family = h->n->inet6 ? AF_INET6 : AF_INET;
    h->rw = bl_resolve(h->n->resolver, host, family, on_resolved, h);
}

bl_hs *bl_hs_connect(bl_node *n, const char *node)
{
    if (!strchr(node, '@')) return NULL;
    bl_hs *h = hs_new(n, 1);
    if (!h) return NULL;
    snprintf(h->node, sizeof(h->node), "%s", node);
    h->stage = ST_RESOLVE;
    ev_set_cb(&h->timer, start_cb);
    ev_timer_set(&h->timer, 0, 0);
    ev_timer_start(n->loop, &h->timer);
    return h;
}

/* ---- incoming ---- */

void bl_hs_accept(bl_node *n, int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        addr_text(&ss, addr, sizeof(addr));
        if (ss.ss_family == AF_INET6 && !strncmp(addr, "::ffff:", 7)) /* v4-mapped */
            memmove(addr, addr + 7, strlen(addr + 7) + 1);
    }
    bl_guard_key *slot = NULL;
    bl_refusal why = bl_guard_accept(n, addr, &slot);
    if (why != BL_REFUSE_NONE) {
        char what[96];
        bl_guard_describe(n, why, what, sizeof(what));
        n->stats.handshakes_failed++;
        bl_guard_refused(n, why, addr, "connection from %s refused: %s", addr, what);
        close(fd);
        return;
    }
    bl_hs *h = hs_new(n, 0);
    if (!h) {
        bl_guard_hs_done(n, slot);
        close(fd);
        return;
    }
    h->slot = slot;
    snprintf(h->addr, sizeof(h->addr), "%s", addr);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    h->fd = fd;
    hs_stream(h);
}
