/* conn.c - distribution connections on the event loop.
 *
 * After a handshake the loop owns the stream (plain TCP or TLS, through the transport's ops table,
 * transport.h): non-blocking reads into a per-connection buffer
 * split into frames (frame.c) and decoded (control.c); writes go through a chunked queue flushed
 * with writev when the socket is writable (sendq.c). Ticks are answered and sent on net_ticktime;
 * a silent peer or one that stops reading is dropped with a log line. Sending to a node that is not
 * connected starts a connect (handshake.c) and queues the frame, like BEAM's auto-connect; a failed
 * connect backs off exponentially.
 *
 * One handshake at a time owns a node's slot (c->hs), in either direction, as in BEAM's
 * net_kernel. When the peer's handshake arrives while ours is pending, BEAM's rule decides
 * (bl_conn_hs_named): the node whose name sorts after the other's keeps its own attempt and
 * answers "nok"; the other drops its attempt and answers "ok_simultaneous". So a BEAM node and a C
 * node, or two C nodes, always keep the same single socket. A handshake from a node we hold a live
 * connection to is answered "alive": if the peer says its attempt is current (it restarted), the
 * old connection is closed once the new one has proved the cookie; if the old one closes first
 * (the peer dropped it and reconnected at once), the answered handshake becomes the pending one,
 * as in BEAM's up_pending_nodedown. */
#include "../runtime/internal.h"
#include "disthdr.h"
#include "frame.h"
#include "guard.h"
#include "handshake.h"
#include "term.h"
#include "hsm.h"
#include "tls.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024) /* free space per read on a busy connection */
#define MAX_IOV 64
#define FRAG_LOW_WATER (2 * BL_DH_FRAG_SIZE) /* queue fragments of a large message below this */

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_rtimer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);

bl_conn *bl_conn_find(bl_node *n, const char *node)
{
    bl_conn *c = NULL;
    HASH_FIND_STR(n->conns, node, c);
    return c;
}

uint64_t bl_conn_peer_flags(bl_node *n, const char *node)
{
    bl_conn *c = bl_conn_find(n, node);
    return c && c->state == CONN_UP ? c->peer_flags : 0;
}

static void notify_nodes(bl_node *n, bl_node_event ev, const char *node, const char *reason)
{
    bl_nodemon *m, *tmp;
    LL_FOREACH_SAFE(n->nodemons, m, tmp)
        m->cb(n, ev, node, reason, m->ud);
}

static bl_conn *conn_new(bl_node *n, const char *node)
{
    size_t len = strlen(node);
    bl_conn *c = calloc(1, sizeof(*c) + len + 1);
    if (!c) return NULL;
    c->n = n;
    memcpy(c->node, node, len + 1);
    c->fd = -1;
    c->state = CONN_DOWN;
    bl_sendq_init(&c->q);
    ev_io_init(&c->rio, conn_read_cb, -1, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, -1, EV_WRITE);
    ev_init(&c->rtimer, conn_rtimer_cb);
    c->rio.data = c->wio.data = c->rtimer.data = c;
    HASH_ADD_STR(n->conns, node, c);
    return c;
}

static void start_connect(bl_node *n, bl_conn *c)
{
    c->state = CONN_CONNECTING;
    if (c->hs) return; /* a handshake (ours or the peer's) is already under way */
    c->hs = bl_hs_connect(n, c->node);
    if (c->hs) bl_log(n, BL_LOG_DEBUG, "connecting to %s", c->node);
}

int bl_connect(bl_node *n, const char *node)
{
    if (!node || !strchr(node, '@') || strlen(node) >= BL_NODE_LEN) return BL_EINVAL;
    if (bl_is_local_node(n, node)) return BL_OK;
    bl_conn *c = bl_conn_find(n, node);
    if (!c && !(c = conn_new(n, node))) return BL_ENOMEM;
    if (c->state == CONN_UP) return BL_OK;
    if (c->state == CONN_DOWN && ev_now(n->loop) < c->retry_at) return BL_ENODEDOWN;
    if (c->state == CONN_DOWN && !c->hs) { /* about to dial: the allow-list and the bound */
        bl_refusal why = !bl_guard_allowed(n, node) ? BL_REFUSE_NOT_ALLOWED
                         : !bl_guard_room(n, 1)     ? BL_REFUSE_MAX_CONNECTIONS
                                                    : BL_REFUSE_NONE;
        if (why != BL_REFUSE_NONE) {
            char what[96] = "not on the allow-list";
            if (why != BL_REFUSE_NOT_ALLOWED) bl_guard_describe(n, why, what, sizeof(what));
            bl_guard_refused(n, why, node, "connect to %s refused: %s", node, what);
            if (!c->wanted && bl_sendq_bytes(&c->q) == 0) {
                HASH_DEL(n->conns, c);
                bl_sendq_free(&c->q);
                free(c);
            }
            return BL_ENODEDOWN;
        }
    }
    c->wanted = 1;
    start_connect(n, c);
    return BL_OK;
}

int bl_is_connected(const bl_node *n, const char *node)
{
    bl_conn *c = NULL;
    HASH_FIND_STR(n->conns, node, c);
    return c && c->state == CONN_UP;
}

void bl__each_connected(bl_node *n, bl_peer_fn fn, void *ud)
{
    unsigned k = 0, max = HASH_COUNT(n->conns);
    char(*names)[BL_NODE_LEN] = max ? calloc(max, BL_NODE_LEN) : NULL;
    if (!names) return;
    bl_conn *c, *t;
    HASH_ITER(hh, n->conns, c, t) {
        if (c->state == CONN_UP && k < max) snprintf(names[k++], BL_NODE_LEN, "%s", c->node);
    }
    for (unsigned i = 0; i < k; i++)
        if (bl_is_connected(n, names[i])) fn(n, names[i], ud);
    free(names);
}

/* A frame goes into the send queue as pass-through ('p') until the handshake says the peer takes
 * distribution headers; from then on with a header, the atom cache and, when large, in fragments
 * (dist/disthdr.c). Frames queued while connecting are re-encoded when the connection comes up. */
static int queue_frame(bl_node *n, bl_conn *c, const char *msg, int msglen, int flags)
{
    size_t ctl = (size_t)n->scratch.index;
    size_t payload = 1 + ctl + (msg ? (size_t)msglen : 0);
    size_t before = bl_sendq_bytes(&c->q);
    if (payload > n->cfg.max_message_size) return BL_ETOOBIG;
    if (before > n->cfg.send_queue_high_water) return BL_EBUSY;
    if (c->state == CONN_UP && bl_dh_sends_headers(c->dh)) {
        /* large messages wait in fragments outside the queue, bounded separately, so that small
         * messages still go while a large one streams */
        if (!n->dh && !(n->dh = bl_dh_scratch_new())) return BL_ENOMEM;
        int r = bl_dh_send(c->dh, n->dh, &c->q, n->scratch.buff, ctl, msg, msg ? (size_t)msglen : 0,
                           n->cfg.send_queue_high_water, flags & BL_SEND_CHECK);
        if (r == -2) return BL_EBUSY;
        if (r == -3) return BL_EINVAL;
        if (r != 0) return BL_ENOMEM;
    } else {
        char *dst = bl_sendq_reserve(&c->q, 4 + payload);
        if (!dst) return BL_ENOMEM;
        bl_frame_put_len(dst, payload);
        dst[4] = 112; /* pass-through */
        memcpy(dst + 5, n->scratch.buff, ctl);
        if (msg) memcpy(dst + 5 + ctl, msg, (size_t)msglen);
        bl_sendq_commit(&c->q, 4 + payload);
    }
    c->msgs_out++;
    n->stats.msgs_out++;
    if (c->state == CONN_UP && !ev_is_active(&c->wio)) {
        if (before == 0) c->last_progress = ev_now(n->loop);
        ev_io_start(n->loop, &c->wio);
    }
    return BL_OK;
}

/* A message not yet validated (BL_SEND_CHECK) is walked here, unless the atom cache plan of a
 * header connection walks it anyway (bl_dh_send validates it then). */
static int msg_ok(const char *msg, int msglen)
{
    size_t i = 1;
    return msg && msglen >= 2 && (unsigned char)msg[0] == 131 &&
           bl_term_check(msg, (size_t)msglen, &i) == 0 && i == (size_t)msglen;
}

int bl_conn_send_frame(bl_node *n, const char *node, const char *msg, int msglen, int flags)
{
    if (!node || !*node) return BL_ENODEDOWN; /* a stale pid's node (runtime/intern.c) */
    bl_conn *c = bl_conn_find(n, node);
    if ((flags & BL_SEND_CHECK) && !(c && c->state == CONN_UP && bl_dh_sends_headers(c->dh))) {
        if (!msg_ok(msg, msglen)) return BL_EINVAL;
        flags &= ~BL_SEND_CHECK;
    }
    if (!c || c->state != CONN_UP) {
        int rc = bl_connect(n, node);
        if (rc != BL_OK) return rc;
        c = bl_conn_find(n, node);
        if (!c) return BL_ENODEDOWN;
    }
    return queue_frame(n, c, msg, msglen, flags);
}

/* ---- closing ---- */

static void conn_stop_io(bl_conn *c)
{
    ev_io_stop(c->n->loop, &c->rio);
    ev_io_stop(c->n->loop, &c->wio);
    ev_timer_stop(c->n->loop, &c->rtimer);
    c->streaming = 0;
    if (c->tx) {
        c->tx->ops->close(c->tx); /* closes the socket */
        c->tx = NULL;
    }
    c->fd = -1;
    c->read_wants_write = c->write_wants_read = 0;
}

void bl_conn_close(bl_conn *c, const char *reason)
{
    bl_node *n = c->n;
    if (c->state == CONN_CONNECTING && c->fd < 0) return; /* nothing open yet */
    if (c->reading) { /* finish in conn_parse, after the current frame */
        if (!c->close_pending) c->close_reason = strdup(reason);
        c->close_pending = 1;
        return;
    }
    int was_up = c->state == CONN_UP;
    conn_stop_io(c);
    bl_sendq_free(&c->q);
    bl_dh_conn_free(c->dh);
    c->dh = NULL;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
    c->state = CONN_DOWN;
    c->backoff_ms = 0;
    c->retry_at = 0;
    if (was_up) {
        n->stats.conns_dropped++;
        n->stats.connections--;
        bl_log(n, BL_LOG_INFO, "connection to %s closed: %s", c->node, reason);
        char node[BL_NODE_LEN];
        snprintf(node, sizeof(node), "%s", c->node);
        if (c->hs_alive) {
            /* BEAM's up_pending_nodedown: a handshake from the same node was told "alive" while
             * this connection was up (the peer reconnected before we saw it close the old one);
             * it becomes the node's pending handshake and is let through when it completes.
             * Dropping the entry would orphan it: it would finish and then be closed. */
            c->hs = c->hs_alive;
            c->hs_alive = NULL;
            c->state = CONN_CONNECTING;
            c->peer_flags = 0;
            c->unknown_ops_logged = 0;
            c->busy = c->close_pending = 0;
            free(c->close_reason);
            c->close_reason = NULL;
        } else {
            HASH_DEL(n->conns, c);
            free(c->close_reason);
            free(c);
        }
        bl_calls_node_down(n, node);
        bl_procs_node_down(n, node);
        notify_nodes(n, BL_NODEDOWN, node, reason);
    }
}

static int conn_flush(bl_conn *c);

int bl_disconnect(bl_node *n, const char *node)
{
    bl_conn *c = bl_conn_find(n, node);
    if (!c || c->state != CONN_UP) return BL_ENODEDOWN;
    (void)conn_flush(c); /* what was sent before the disconnect goes out (best effort) */
    bl_conn_close(c, "disconnected by request");
    return BL_OK;
}

/* ---- writing ---- */

static int conn_flush(bl_conn *c)
{
    bl_node *n = c->n;
    for (;;) {
        /* the next fragments of large messages join the queue as it drains */
        if (bl_dh_pending(c->dh) && bl_sendq_bytes(&c->q) < FRAG_LOW_WATER &&
            bl_dh_pump(c->dh, n->dh, &c->q, FRAG_LOW_WATER) < 0)
            return (errno = ENOMEM, -1);
        if (bl_sendq_bytes(&c->q) == 0) break;
        struct iovec iov[MAX_IOV];
        int k = bl_sendq_iov(&c->q, iov, MAX_IOV);
        ssize_t w = c->tx->ops->writev(c->tx, iov, k);
        if (w < 0) {
            if (c->tx->want == EV_READ) { /* TLS: the write goes on once the socket is readable */
                c->write_wants_read = 1;
                ev_io_stop(n->loop, &c->wio);
            }
            return c->tx->want ? 0 : -1;
        }
        bl_sendq_consume(&c->q, (size_t)w);
        c->bytes_out += (uint64_t)w;
        n->stats.bytes_out += (uint64_t)w;
        c->last_write = c->last_progress = ev_now(n->loop);
    }
    return 0;
}

static int conn_read(bl_conn *c);

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    bl_conn *c = w->data;
    if (c->read_wants_write) { /* TLS: a read was waiting for this */
        c->read_wants_write = 0;
        ev_io_start(loop, &c->rio);
        if (conn_read(c) < 0) return; /* closed (c is gone) */
    }
    if (conn_flush(c) < 0) {
        char why[240];
        snprintf(why, sizeof(why), "%s", c->tx->err[0] ? c->tx->err : strerror(errno));
        bl_conn_close(c, why);
        return;
    }
    if (bl_sendq_bytes(&c->q) == 0 && !c->read_wants_write) ev_io_stop(loop, w);
}

/* ---- reading ---- */

static void log_unknown_op(bl_conn *c, long op)
{
    uint64_t bit = (op >= 0 && op < 64) ? (1ull << op) : (1ull << 63);
    if (c->unknown_ops_logged & bit) return;
    c->unknown_ops_logged |= bit;
    bl_log(c->n, BL_LOG_WARN, "unknown control message %ld from %s skipped (logged once)", op,
           c->node);
}

/* A connection's header state, its atom caches keeping their texts in the node's pool: the
 * connections of a full mesh cache much the same atoms (docs/memory.md). */
static bl_dh_conn *dh_conn_new(bl_node *n, uint64_t flags)
{
    if (!n->apool && !(n->apool = bl_apool_new())) return NULL;
    return bl_dh_conn_new(flags, n->apool);
}

/* A frame with a distribution header (131 'D' / 'E' / 'F'): resolve its atom cache refs and
 * reassemble fragments. Returns 1 with *payload / *len replaced by the pass-through form to decode,
 * 0 when a fragment was stored, -1 when the connection was closed (bad header or fragments). */
static int conn_header(bl_conn *c, const char **payload, size_t *len)
{
    bl_node *n = c->n;
    const char *why = "out of memory for distribution headers", *out = NULL;
    size_t olen = 0;
    int rc = BL_DH_ENOMEM;
    if ((c->dh || (c->dh = dh_conn_new(n, 0))) && (n->dh || (n->dh = bl_dh_scratch_new())))
        rc = bl_dh_recv(c->dh, n->dh, *payload, *len, n->cfg.max_message_size, &out, &olen, &why);
    if (rc == BL_DH_MSG) {
        *payload = out;
        *len = olen;
        return 1;
    }
    if (rc == BL_DH_NONE) return 0;
    bl_log(n, BL_LOG_WARN, "dropping connection to %s: %s (%zu-byte frame)", c->node, why, *len);
    bl_conn_close(c, why);
    return -1;
}

/* Dispatch every complete frame in buf[0..len); *used is what was consumed. Returns -1 when the
 * connection was closed. */
static int conn_parse_buf(bl_conn *c, const char *buf, size_t len, size_t *used)
{
    bl_node *n = c->n;
    size_t off = 0;
    for (;;) {
        size_t plen;
        int k = bl_frame_next(buf + off, len - off, n->cfg.max_message_size, &plen);
        if (k == BL_FRAME_MORE) break;
        if (k == BL_FRAME_TICK) {
            off += 4;
            continue;
        }
        if (k == BL_FRAME_TOOBIG) {
            char why[160];
            snprintf(why, sizeof(why), "frame of %zu bytes exceeds max_message_size (%zu)", plen,
                     n->cfg.max_message_size);
            bl_log(n, BL_LOG_WARN, "dropping connection to %s: %s", c->node, why);
            bl_conn_close(c, why);
            return -1;
        }
        const char *payload = buf + off + 4;
        off += 4 + plen;
        bl_ctl ctl;
        int rc;
        if ((unsigned char)payload[0] == 131) { /* a distribution header, not pass-through */
            int h = conn_header(c, &payload, &plen);
            if (h < 0) return -1;
            if (h == 0) continue;
            /* the rewrite validated both terms: decode without walking them again */
            rc = bl_ctl_decode_valid(n, payload, plen, bl_dh_ctl_end(n->dh), &ctl);
        } else {
            rc = bl_ctl_decode(n, payload, plen, &ctl);
        }
        if (rc == BL_CTL_EUNKNOWN) {
            log_unknown_op(c, ctl.op);
            continue;
        }
        if (rc != BL_CTL_OK) {
            bl_log(n, BL_LOG_WARN, "dropping connection to %s: malformed frame (%zu bytes)",
                   c->node, plen);
            bl_conn_close(c, "malformed frame");
            return -1;
        }
        c->msgs_in++;
        n->stats.msgs_in++;
        c->reading = 1;
        bl_route_incoming(n, c->node, &ctl, payload);
        c->reading = 0;
        if (c->close_pending) { /* a handler asked to close this connection */
            char why[160];
            snprintf(why, sizeof(why), "%s",
                     c->close_reason ? c->close_reason : "closed by a handler");
            free(c->close_reason);
            c->close_reason = NULL;
            bl_conn_close(c, why);
            return -1;
        }
    }
    *used = off;
    return 0;
}

/* Keep what is left after parsing a read done into the node's scratch buffer (a partial frame)
 * in the connection's own buffer. Returns -1 when out of memory (the connection is closed). */
static int keep_partial(bl_conn *c, const char *rest, size_t len)
{
    if (len == 0) {
        if (c->rbuf && !c->busy) { /* a burst's buffer, drained: a quiet connection keeps none */
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
        return 0;
    }
    /* room for the rest of the frame's next read: large on a busy connection, a page on a
     * quiet one (a heartbeat split between two reads needs no 64 KiB buffer) */
    size_t need = len + (c->busy ? READ_CHUNK : 4096);
    if (need > 8192 && need < READ_CHUNK) need = READ_CHUNK; /* mapped on its own: no heap hole */
    if (need > c->rcap) {
        char *nb = realloc(c->rbuf, need);
        if (!nb) {
            bl_conn_close(c, "out of memory for read buffer");
            return -1;
        }
        c->rbuf = nb;
        c->rcap = need;
    }
    memcpy(c->rbuf, rest, len);
    c->rlen = len;
    return 0;
}

/* Reads go into the node's scratch buffer and are parsed in place; only a partial frame is
 * copied into the connection's own buffer, which grows for large frames and busy peers and is
 * released once drained, so a full mesh of quiet connections holds no read buffers. */
static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    bl_conn *c = w->data;
    if (c->write_wants_read) { /* TLS: a write was waiting for this */
        c->write_wants_read = 0;
        if (bl_sendq_bytes(&c->q) > 0) ev_io_start(loop, &c->wio);
    }
    (void)conn_read(c);
}

/* Batched reads of a streaming peer (transports with batch_reads: plain TCP). Waking the loop for
 * every few segments of a stream of small messages costs the *sender* most: on loopback its write
 * delivers the segment to our socket inside its own system call, wakes our epoll wait there, and
 * each of our reads that drains the socket sends it an ACK that frees its congestion window for
 * the next small segment. A BEAM receiver lags (its socket stays full, the sender appends to
 * unsent data), so a BEAM sender spends less CPU per message on a BEAM peer than on a C node that
 * keeps up (docs/testing.md, "Why BEAM->beamlet was slower on TCP"). So when one wake-up brings
 * STREAM_FRAMES frames or more, the read watcher stops and the socket is read every STREAM_READ_S
 * instead, until a turn brings fewer than STREAM_LEAVE_FRAMES: the peer's segments then wake
 * nobody, each read takes a batch, and one ACK goes back per turn. A message of such a stream
 * waits at most STREAM_READ_S; a connection that carries calls or a slow stream never enters it.
 * The kernel's receive buffer grows with the stream (autotuning), and a turn reads up to 1 MiB. */
#define STREAM_FRAMES 32
#define STREAM_LEAVE_FRAMES 8
#define STREAM_READ_S 0.00025

static void conn_stream_mode(bl_conn *c, uint64_t frames)
{
    bl_node *n = c->n;
    if (!c->tx->ops->batch_reads) return;
    if (!c->streaming && frames >= STREAM_FRAMES) {
        c->streaming = 1;
        ev_io_stop(n->loop, &c->rio);
        ev_timer_set(&c->rtimer, STREAM_READ_S, STREAM_READ_S);
        ev_timer_start(n->loop, &c->rtimer);
    } else if (c->streaming && frames < STREAM_LEAVE_FRAMES) {
        c->streaming = 0;
        ev_timer_stop(n->loop, &c->rtimer);
        ev_io_start(n->loop, &c->rio);
    }
}

static void conn_rtimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_conn *c = w->data;
    c->batched_reads++;
    (void)conn_read(c);
}

/* Returns -1 when the connection was closed (c is freed), 0 otherwise. */
static int conn_read(bl_conn *c)
{
    bl_node *n = c->n;
    uint64_t frames0 = c->msgs_in;
    for (int rounds = 0; rounds < 16; rounds++) {
        int direct = c->rlen == 0; /* nothing pending: read straight into the scratch buffer */
        char *dst;
        size_t space;
        if (direct) {
            if (!n->rscratch && !(n->rscratch = malloc(BL__RSCRATCH))) {
                bl_conn_close(c, "out of memory for read buffer");
                return -1;
            }
            dst = n->rscratch;
            space = BL__RSCRATCH;
        } else {
            size_t want_free = c->busy ? READ_CHUNK : 4096;
            if (c->rcap - c->rlen < want_free) {
                size_t need = c->rcap * 2;
                while (need - c->rlen < want_free)
                    need *= 2;
                /* a frame may be up to max_message_size + header; never grow past that + a chunk */
                size_t limit = n->cfg.max_message_size + 4 + 2 * READ_CHUNK;
                if (need > limit) need = limit;
                if (need > c->rcap) {
                    char *nb = realloc(c->rbuf, need);
                    if (!nb) {
                        bl_conn_close(c, "out of memory for read buffer");
                        return -1;
                    }
                    c->rbuf = nb;
                    c->rcap = need;
                }
            }
            dst = c->rbuf + c->rlen;
            space = c->rcap - c->rlen;
        }
        ssize_t r = c->tx->ops->recv(c->tx, dst, space);
        if (r == 0) {
            bl_conn_close(c, "connection closed by peer");
            return -1;
        }
        if (r < 0) {
            if (c->tx->want == EV_WRITE) { /* TLS: the read goes on once writable */
                c->read_wants_write = 1;
                ev_io_stop(n->loop, &c->rio);
                ev_io_start(n->loop, &c->wio);
            }
            if (c->tx->want) {
                conn_stream_mode(c, c->msgs_in - frames0);
                return 0;
            }
            char why[240];
            snprintf(why, sizeof(why), "%s", c->tx->err);
            bl_conn_close(c, why);
            return -1;
        }
        c->bytes_in += (uint64_t)r;
        n->stats.bytes_in += (uint64_t)r;
        c->last_read = ev_now(n->loop);
        if ((size_t)r == space)
            c->busy = 1; /* reads fill the buffer: read bigger chunks */
        else if ((size_t)r < space / 8)
            c->busy = 0; /* the burst is over: a drained buffer goes back */
        if (direct) {
            size_t used = 0;
            if (conn_parse_buf(c, n->rscratch, (size_t)r, &used) < 0) return -1;
            if (keep_partial(c, n->rscratch + used, (size_t)r - used) < 0) return -1;
        } else {
            c->rlen += (size_t)r;
            size_t used = 0;
            if (conn_parse_buf(c, c->rbuf, c->rlen, &used) < 0) return -1;
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
            if (c->rlen == 0 && !c->busy) { /* drained: a quiet connection keeps no buffer */
                free(c->rbuf);
                c->rbuf = NULL;
                c->rcap = 0;
            }
        }
        /* drained the socket (TLS reads one record at a time: read on until it would block) */
        if ((size_t)r < space && !c->tx->ops->read_until_block) {
            conn_stream_mode(c, c->msgs_in - frames0);
            return 0;
        }
    }
    /* enough for one round; bytes TLS already holds are invisible to libev: come back for them */
    if (c->tx->ops->pending(c->tx)) ev_feed_event(n->loop, &c->rio, EV_READ);
    return 0;
}

/* ---- handshakes (handshake.c reports here) ---- */

static int setup_fd(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The header state for the flags this connection negotiated. With distribution headers (atom
 * cache, fragments) every frame to this peer carries one from now on, so what was queued as
 * pass-through while connecting is re-encoded first. */
static void conn_headers_up(bl_node *n, bl_conn *c, uint64_t flags)
{
    bl_dh_conn_free(c->dh);
    c->dh = dh_conn_new(n, flags);
    if (!bl_dh_sends_headers(c->dh) || bl_sendq_bytes(&c->q) == 0) return;
    if ((n->dh || (n->dh = bl_dh_scratch_new())) && bl_dh_requeue(c->dh, n->dh, &c->q) == 0) return;
    /* out of memory (bl_dh_requeue emptied the queue): like a connection that dropped them */
    bl_log(n, BL_LOG_WARN, "connection to %s: out of memory re-encoding queued messages, dropped",
           c->node);
    bl_sendq_free(&c->q);
}

static void conn_start(bl_node *n, bl_conn *c, bl_tx *tx)
{
    int fd = tx->fd;
    c->tx = tx;
    c->fd = fd;
    ev_io_set(&c->rio, fd, EV_READ);
    ev_io_set(&c->wio, fd, EV_WRITE);
    ev_io_start(n->loop, &c->rio);
    c->last_read = c->last_write = c->last_progress = ev_now(n->loop);
    if (bl_sendq_bytes(&c->q) > 0) ev_io_start(n->loop, &c->wio);
    /* what TLS read past the handshake (the peer's first frames) is not on the socket any more */
    if (tx->ops->pending(tx)) ev_feed_event(n->loop, &c->rio, EV_READ);
}

/* BEAM's net_kernel accept_pending: the status for a handshake from node. */
bl_hs_status bl_conn_hs_named(bl_node *n, bl_hs *h, const char *node)
{
    if (bl_is_local_node(n, node)) {
        bl_log(n, BL_LOG_WARN, "refusing a connection that claims our own name %s", node);
        return BL_HS_STATUS_NOT_ALLOWED;
    }
    bl_conn *c = bl_conn_find(n, node);
    if (c && c->state == CONN_UP) { /* up_pending: ask the peer whether it restarted */
        if (c->hs_alive) return BL_HS_STATUS_CLOSE;
        c->hs_alive = h;
        return BL_HS_STATUS_ALIVE;
    }
    if (c && c->hs) {
        if (strcmp(n->name, node) > 0) return BL_HS_STATUS_NOK; /* ours wins */
        bl_log(n, BL_LOG_DEBUG, "simultaneous connect with %s: taking its connection", node);
        bl_hs_abort(c->hs);
        c->hs = h;
        return BL_HS_STATUS_OK_SIMULTANEOUS;
    }
    if (!c && !(c = conn_new(n, node))) return BL_HS_STATUS_CLOSE;
    c->state = CONN_CONNECTING; /* frames for node queue up meanwhile */
    c->hs = h;
    return BL_HS_STATUS_OK;
}

/* BEAM's is_pending: told "alive", is our attempt still the one we want? */
int bl_conn_hs_still_pending(bl_node *n, bl_hs *h, const char *node)
{
    bl_conn *c = bl_conn_find(n, node);
    return c && c->hs == h && c->state != CONN_UP;
}

int bl_conn_hs_release(bl_node *n, bl_hs *h, const char *node)
{
    bl_conn *c = bl_conn_find(n, node);
    int role = 0;
    if (c && c->hs == h) {
        c->hs = NULL;
        role |= BL_HS_ROLE_PENDING;
    }
    if (c && c->hs_alive == h) {
        c->hs_alive = NULL;
        role |= BL_HS_ROLE_ALIVE;
    }
    return role;
}

void bl_conn_hs_up(bl_node *n, const char *node, bl_tx *tx, int outgoing, int role, uint64_t flags)
{
    bl_conn *c = bl_conn_find(n, node);
    if (role & BL_HS_ROLE_ALIVE) { /* the peer restarted: its old connection goes first */
        if (c && c->state == CONN_UP)
            bl_conn_close(c, "replaced by a new connection from the peer");
        c = bl_conn_find(n, node);
    }
    if (!role || n->stopping || (c && c->state == CONN_UP) || setup_fd(tx->fd) < 0) {
        tx->ops->close(tx); /* nobody waits for this socket any more */
        return;
    }
    if (!bl_guard_room(n, 0)) { /* the last word on max_connections, both directions */
        tx->ops->close(tx);
        bl_guard_refused(n, BL_REFUSE_MAX_CONNECTIONS, node,
                         "connection %s %s refused after its handshake: max_connections (%u) "
                         "reached",
                         outgoing ? "to" : "from", node, n->cfg.max_connections);
        bl_conn_hs_failed(n, node, outgoing, role, "max_connections reached");
        return;
    }
    if (!c && !(c = conn_new(n, node))) {
        tx->ops->close(tx);
        return;
    }
    conn_headers_up(n, c, flags);
    c->peer_flags = flags; /* the common set: what both sides advertised */
    c->state = CONN_UP;
    c->outgoing = outgoing;
    c->backoff_ms = 0;
    c->wanted = 0;
    n->stats.connections++;
    if (outgoing)
        n->stats.conns_connected++;
    else
        n->stats.conns_accepted++;
    conn_start(n, c, tx);
    char how[96];
    bl__tls_describe(tx, how, sizeof(how));
    bl_log(n, BL_LOG_INFO, "connected to %s (%s%s%s)", node, outgoing ? "outgoing" : "incoming",
           how[0] ? ", " : "", how);
    notify_nodes(n, BL_NODEUP, node, NULL);
}

void bl_conn_hs_failed(bl_node *n, const char *node, int outgoing, int role, const char *why)
{
    if (!(role & BL_HS_ROLE_PENDING)) return; /* it held no slot: nothing waits on it */
    if (outgoing) {
        bl_conn_connect_failed(n, node, why);
        return;
    }
    bl_conn *c = bl_conn_find(n, node);
    if (!c || c->state != CONN_CONNECTING || c->hs) return;
    if (c->wanted || bl_sendq_bytes(&c->q) > 0) { /* we want this node: connect ourselves */
        start_connect(n, c);
        return;
    }
    HASH_DEL(n->conns, c);
    bl_sendq_free(&c->q);
    bl_dh_conn_free(c->dh);
    free(c->rbuf);
    free(c->close_reason);
    free(c);
}

void bl_conn_connect_failed(bl_node *n, const char *node, const char *why)
{
    bl_conn *c = bl_conn_find(n, node);
    n->stats.handshakes_failed++;
    if (!c) return;
    if (c->state != CONN_CONNECTING) return; /* an incoming connection won meanwhile */
    c->wanted = 0;
    unsigned b = c->backoff_ms ? c->backoff_ms * 2 : 100;
    if (b > n->cfg.reconnect_backoff_max_ms) b = n->cfg.reconnect_backoff_max_ms;
    c->backoff_ms = b;
    c->retry_at = ev_now(n->loop) + b / 1000.0;
    c->state = CONN_DOWN;
    size_t dropped = bl_sendq_bytes(&c->q);
    bl_sendq_free(&c->q);
    bl_log(n, BL_LOG_WARN, "connect to %s failed: %s (retry allowed in %u ms%s)", node, why, b,
           dropped ? ", queued messages dropped" : "");
    bl_calls_node_down(n, node);
    bl_procs_node_down(n, node);
}

/* ---- ticks ---- */

void bl_conn_tick_all(bl_node *n)
{
    ev_tstamp now = ev_now(n->loop);
    double t = n->cfg.net_ticktime_s;
    bl_conn *c, *tmp;
    HASH_ITER(hh, n->conns, c, tmp) {
        if (c->state != CONN_UP) continue;
        if (now - c->last_read > t) {
            bl_log(n, BL_LOG_WARN, "node %s not responding for %.0f s (net_ticktime): dropping",
                   c->node, now - c->last_read);
            bl_conn_close(c, "net_tick_timeout");
            continue;
        }
        if (bl_sendq_bytes(&c->q) > 0 && now - c->last_progress > t) {
            bl_log(n, BL_LOG_WARN,
                   "node %s has not read for %.0f s with %zu bytes queued: dropping", c->node,
                   now - c->last_progress, bl_sendq_bytes(&c->q));
            bl_conn_close(c, "peer not reading");
            continue;
        }
        if (bl_sendq_bytes(&c->q) == 0 && now - c->last_write >= t / 4 - 0.05) {
            char *dst = bl_sendq_reserve(&c->q, 4);
            if (!dst) continue;
            memset(dst, 0, 4);
            bl_sendq_commit(&c->q, 4);
            ev_io_start(n->loop, &c->wio);
        }
    }
}

void bl_conn_close_all(bl_node *n)
{
    bl_hs_free_all(n); /* no handshake outlives the node's connections */
    bl_conn *c, *tmp;
    HASH_ITER(hh, n->conns, c, tmp) {
        c->hs = c->hs_alive = NULL; /* freed above */
        if (c->state == CONN_UP) {
            (void)conn_flush(c); /* best effort, non-blocking */
            bl_conn_close(c, "node stopping");
        } else {
            HASH_DEL(n->conns, c);
            bl_sendq_free(&c->q);
            bl_dh_conn_free(c->dh);
            free(c->rbuf);
            free(c->close_reason);
            free(c);
        }
    }
}

/* ---- accepting ---- */

void bl_conn_listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_node *n = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                bl_log(n, BL_LOG_WARN, "accept failed: %s", strerror(errno));
            return;
        }
        if (n->stopping) {
            close(fd);
            continue;
        }
        bl_hs_accept(n, fd); /* admission (guard.c) decides there, knowing the address */
    }
}
