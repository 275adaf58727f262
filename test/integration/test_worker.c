/* test_worker.c - a beamlet node driven by the Erlang integration tests (test/integration/).
 *
 * Built only against the public API (beamlet/beamlet.h + ei.h). It registers two processes:
 *   echo: gen_server call Req -> {echo, Req}; message {FromPid, Msg} -> sends {echo, Msg} to
 * FromPid; message {who_sent, Pid} -> sends {sent_by, SenderPid | unknown} to Pid. ctl:  gen_server
 * calls that make the C side act (send, call, rpc, ping, links, exits, node monitoring, message
 * sinks and blasts); see ctl_call() below for the protocol. Usage: test_worker --sname NAME
 * --cookie COOKIE [--net-ticktime S] [--max-message-size BYTES]
 *                    [--log-level debug|info|warn|error]
 * SIGTERM/SIGINT make bl_node_run() return; the program then frees everything and exits 0.
 */
#include "../lib/test_cnode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPC_TIMEOUT_MS 5000u
#define PING_TIMEOUT_MS 5000u
#define BLAST_BATCH 2000
#define BLAST_RETRY_MS 2u

typedef enum { K_ECHO, K_CTL, K_PLAIN, K_TRAP, K_SINK, K_BLAST } wkind;

/* Every process this program spawns; removed in on_terminate. */
typedef struct wproc {
    struct wproc *next, *prev;
    bl_proc *p;
    bl_pid pid;
    wkind kind;
    bl_pid notify; /* K_TRAP, K_SINK */
    bl_pid target; /* K_BLAST */
    long n;        /* K_SINK: messages to wait for; K_BLAST: messages to send */
    long count;    /* K_SINK: received; K_BLAST: next sequence number */
    int timer;     /* K_BLAST: pending retry timer or 0 */
} wproc;

/* A node-monitor subscription made by {monitor_nodes, NotifyPid}. */
typedef struct wsub {
    struct wsub *next;
    int id;
    bl_pid notify;
} wsub;

typedef enum { P_CALL, P_RPC, P_PING, P_ERPC } pkind;

/* An outstanding asynchronous request whose answer goes back to a gen_server caller of ctl.
 * If ctl ends first the library drops the call without running its callback (docs/c-api.md), so
 * ctl's on_terminate frees whatever is still listed here. */
typedef struct pending {
    struct pending *next, *prev;
    pkind kind;
    bl_from from;
} pending;

static bl_node *g_node;
static bl_proc *g_ctl;
static wproc *g_procs;
static wsub *g_subs;
static pending *g_pending;

/* ---------------------------------------------------------------- helpers */

static wproc *find_proc(const bl_pid *pid)
{
    for (wproc *w = g_procs; w; w = w->next)
        if (bl_pid_equal(&w->pid, pid)) return w;
    return NULL;
}

static const char *err_atom(int rc)
{
    switch (rc) {
    case BL_EINVAL:
        return "einval";
    case BL_ENOMEM:
        return "enomem";
    case BL_ENOPROC:
        return "noproc";
    case BL_ENODEDOWN:
        return "nodedown";
    case BL_ETIMEOUT:
        return "timeout";
    case BL_EBUSY:
        return "busy";
    case BL_EEXIST:
        return "exists";
    case BL_ETOOBIG:
        return "toobig";
    case BL_ESYS:
        return "esys";
    case BL_EEPMD:
        return "epmd";
    case BL_ECONFIG:
        return "econfig";
    case BL_EBADRPC:
        return "badrpc";
    case BL_EEXCEPTION:
        return "exception";
    default:
        return "unknown";
    }
}

/* Append the term at buf[*idx] to x unchanged; advances *idx. */
static int copy_term(ei_x_buff *x, const char *buf, int *idx)
{
    int start = *idx;
    if (ei_skip_term(buf, idx) < 0) return -1;
    return ei_x_append_buf(x, buf + start, *idx - start);
}

static void enc_error(ei_x_buff *x, const char *atom)
{
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_atom(x, atom);
}

/* Reset a reply buffer to where it started and put {error, badarg} in it. */
static int reply_badarg(ei_x_buff *reply, int start)
{
    reply->index = start;
    enc_error(reply, "badarg");
    return 0;
}

static void reply_rc(ei_x_buff *reply, int rc)
{
    if (rc < 0)
        enc_error(reply, err_atom(rc));
    else
        ei_x_encode_atom(reply, "ok");
}

static int decode_long(const char *buf, int *idx, long *out)
{
    long long v;
    if (ei_decode_longlong(buf, idx, &v) < 0) return -1;
    *out = (long)v;
    return 0;
}

/* Send a version-prefixed message built by the caller from process `from` (logs failures). */
static int send_msg(bl_proc *from, const bl_pid *to, ei_x_buff *m)
{
    int rc = bl_send(from, to, m->buff, m->index);
    if (rc < 0) bl_log(g_node, BL_LOG_WARN, "test_worker: bl_send failed: %s", bl_strerror(rc));
    return rc;
}

/* ---------------------------------------------------------------- process bookkeeping */

static void on_terminate_common(bl_proc *self, const char *reason, void *ud)
{
    wproc *w = ud;
    (void)self;
    (void)reason;
    if (!w) return;
    if (w->timer > 0) bl_timer_cancel(g_node, w->timer);
    if (w->kind == K_CTL && g_ctl == w->p) {
        g_ctl = NULL;
        while (g_pending) { /* calls ctl made that will never complete */
            pending *pd = g_pending;
            g_pending = pd->next;
            free(pd);
        }
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        g_procs = w->next;
    if (w->next) w->next->prev = w->prev;
    free(w);
}

static wproc *wspawn(wkind kind, const char *name, const bl_proc_ops *ops, int *rc_out)
{
    wproc *w = calloc(1, sizeof *w);
    if (!w) {
        *rc_out = BL_ENOMEM;
        return NULL;
    }
    w->kind = kind;
    bl_proc *p = NULL;
    int rc = bl_spawn(g_node, name, ops, w, &p);
    if (rc < 0 || !p) {
        free(w);
        *rc_out = rc < 0 ? rc : BL_EINVAL;
        return NULL;
    }
    w->p = p;
    w->pid = *bl_self(p);
    w->next = g_procs;
    if (g_procs) g_procs->prev = w;
    g_procs = w;
    *rc_out = 0;
    return w;
}

/* Processes other than echo/ctl answer every call with {error, badarg} and ignore messages. */
static int plain_call(bl_proc *self, const bl_from *from, const char *buf, int index,
                      ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    (void)buf;
    (void)index;
    (void)ud;
    return reply_badarg(reply, reply->index);
}

static void plain_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    (void)msg;
    (void)ud;
}

static const bl_proc_ops plain_ops = {
    .on_msg = plain_msg, .on_call = plain_call, .on_terminate = on_terminate_common};

/* ---------------------------------------------------------------- echo */

static int echo_call(bl_proc *self, const bl_from *from, const char *buf, int index,
                     ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    (void)ud;
    int start = reply->index, idx = index;
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "echo");
    if (copy_term(reply, buf, &idx) < 0) return reply_badarg(reply, start);
    return 0;
}

/* {who_sent, ReplyTo}: ReplyTo gets {sent_by, Sender} (the sender the frame carried: REG_SEND and
 * SEND_SENDER do), or {sent_by, unknown}. */
static int who_sent(bl_proc *self, const bl_msg *msg)
{
    int idx = msg->index, arity;
    char tag[MAXATOMLEN_UTF8];
    bl_pid to;
    if (ei_decode_tuple_header(msg->buf, &idx, &arity) < 0 || arity != 2 ||
        ei_decode_atom(msg->buf, &idx, tag) < 0 || strcmp(tag, "who_sent") != 0 ||
        bl_decode_pid(bl_proc_node(self), msg->buf, &idx, &to) < 0)
        return 0;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "sent_by");
    if (msg->has_sender)
        bl_x_encode_pid(&m, &msg->sender);
    else
        ei_x_encode_atom(&m, "unknown");
    send_msg(self, &to, &m);
    ei_x_free(&m);
    return 1;
}

static void echo_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)ud;
    if (who_sent(self, msg)) return;
    int idx = msg->index, arity;
    bl_pid to;
    if (ei_decode_tuple_header(msg->buf, &idx, &arity) < 0 || arity != 2 ||
        bl_decode_pid(bl_proc_node(self), msg->buf, &idx, &to) < 0) {
        bl_log(g_node, BL_LOG_DEBUG, "test_worker: echo ignores a message that is not {Pid, Msg}");
        return;
    }
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "echo");
    if (copy_term(&m, msg->buf, &idx) == 0) send_msg(self, &to, &m);
    ei_x_free(&m);
}

static const bl_proc_ops echo_ops = {
    .on_msg = echo_msg, .on_call = echo_call, .on_terminate = on_terminate_common};

/* ---------------------------------------------------------------- trap / sink / blast processes */

static void trap_exit_cb(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud)
{
    wproc *w = ud;
    int idx = index;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 3);
    ei_x_encode_atom(&m, "c_got_exit");
    bl_x_encode_pid(&m, from);
    if (copy_term(&m, buf, &idx) == 0) send_msg(self, &w->notify, &m);
    ei_x_free(&m);
}

static const bl_proc_ops trap_ops = {.on_msg = plain_msg,
                                     .on_call = plain_call,
                                     .on_exit = trap_exit_cb,
                                     .on_terminate = on_terminate_common};

static void sink_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    wproc *w = ud;
    (void)msg;
    if (++w->count != w->n) return;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "sink_done");
    ei_x_encode_long(&m, w->n);
    send_msg(self, &w->notify, &m);
    ei_x_free(&m);
}

static const bl_proc_ops sink_ops = {
    .on_msg = sink_msg, .on_call = plain_call, .on_terminate = on_terminate_common};

static const bl_proc_ops blast_ops = {
    .on_msg = plain_msg, .on_call = plain_call, .on_terminate = on_terminate_common};

static void blast_tick(bl_node *n, void *ud)
{
    wproc *w = ud;
    (void)n;
    w->timer = 0;
    ei_x_buff m;
    ei_x_new(&m);
    int sent = 0, rc = 0;
    while (w->count <= w->n && sent < BLAST_BATCH) {
        m.index = 0;
        ei_x_encode_version(&m);
        ei_x_encode_tuple_header(&m, 2);
        bl_x_encode_pid(&m, &w->pid);
        ei_x_encode_tuple_header(&m, 3);
        ei_x_encode_atom(&m, "seq");
        ei_x_encode_long(&m, w->count);
        ei_x_encode_binary(&m, "payload", 7);
        rc = bl_send(w->p, &w->target, m.buff, m.index);
        if (rc < 0) break;
        w->count++;
        sent++;
    }
    ei_x_free(&m);
    if (w->count > w->n) {
        bl_exit(w->p, "normal"); /* frees w */
        return;
    }
    if (rc < 0 && rc != BL_EBUSY) {
        bl_log(g_node, BL_LOG_WARN, "test_worker: blast stopped at %ld of %ld: %s", w->count, w->n,
               bl_strerror(rc));
        bl_exit(w->p, "normal");
        return;
    }
    /* BL_EBUSY: wait for the queue to drain; a full batch: yield to the loop. */
    int id = bl_timer(g_node, rc == BL_EBUSY ? BLAST_RETRY_MS : 0, 0, blast_tick, w);
    if (id <= 0) {
        bl_log(g_node, BL_LOG_WARN, "test_worker: blast cannot arm a timer: %s", bl_strerror(id));
        bl_exit(w->p, "normal");
        return;
    }
    w->timer = id;
}

/* ---------------------------------------------------------------- asynchronous answers */

static pending *new_pending(pkind kind, const bl_from *from)
{
    pending *pd = calloc(1, sizeof *pd);
    if (!pd) return NULL;
    pd->kind = kind;
    pd->from = *from;
    pd->next = g_pending;
    if (g_pending) g_pending->prev = pd;
    g_pending = pd;
    return pd;
}

/* Unlink and free (also used when starting the request failed). */
static void free_pending(pending *pd)
{
    if (!pd) return;
    if (pd->prev)
        pd->prev->next = pd->next;
    else
        g_pending = pd->next;
    if (pd->next) pd->next->prev = pd->prev;
    free(pd);
}

static void async_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    pending *pd = ud;
    ei_x_buff r;
    ei_x_new(&r);
    int idx = index;
    if (pd->kind == P_PING) {
        ei_x_encode_atom(&r, status == 0 ? "pong" : "pang");
    } else if (pd->kind == P_ERPC && (status == BL_EEXCEPTION || status == BL_EBADRPC)) {
        /* {exception, {Class, Reason, Stack}} or {badrpc, Reason} */
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, status == BL_EEXCEPTION ? "exception" : "badrpc");
        if (!buf || copy_term(&r, buf, &idx) < 0) {
            r.index = 0;
            enc_error(&r, "bad_result_term");
        }
    } else if (status == 0 || (status == BL_EBADRPC && pd->kind == P_RPC)) {
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, status == 0 ? "ok" : "badrpc");
        if (!buf || copy_term(&r, buf, &idx) < 0) {
            r.index = 0;
            enc_error(&r, "bad_result_term");
        }
    } else {
        enc_error(&r, err_atom(status));
    }
    int rc = bl_reply(bl_proc_node(p), &pd->from, r.buff, r.index);
    if (rc < 0) bl_log(g_node, BL_LOG_WARN, "test_worker: bl_reply failed: %s", bl_strerror(rc));
    ei_x_free(&r);
    free_pending(pd);
}

/* ---------------------------------------------------------------- node monitoring */

static void node_event(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    wsub *s = ud;
    (void)n;
    (void)reason;
    if (!g_ctl) return;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, ev == BL_NODEUP ? "c_nodeup" : "c_nodedown");
    ei_x_encode_atom(&m, node);
    send_msg(g_ctl, &s->notify, &m);
    ei_x_free(&m);
}

/* ---------------------------------------------------------------- ctl */

/* Term types a destination/argument may have. */
static int is_list_type(int type)
{
    return type == ERL_LIST_EXT || type == ERL_NIL_EXT || type == ERL_STRING_EXT;
}

static int ctl_call(bl_proc *self, const bl_from *from, const char *buf, int index,
                    ei_x_buff *reply, void *ud)
{
    (void)ud;
    const int start = reply->index;
    int idx = index, arity = 0, type = 0, size = 0;
    char cmd[MAXATOMLEN_UTF8];

    if (ei_decode_atom(buf, &idx, cmd) == 0) {
        if (strcmp(cmd, "stats") == 0) {
            bl_stats st;
            bl_node_stats(g_node, &st);
            ei_x_encode_map_header(reply, 10);
            ei_x_encode_atom(reply, "msgs_in");
            ei_x_encode_ulonglong(reply, st.msgs_in);
            ei_x_encode_atom(reply, "msgs_out");
            ei_x_encode_ulonglong(reply, st.msgs_out);
            ei_x_encode_atom(reply, "bytes_in");
            ei_x_encode_ulonglong(reply, st.bytes_in);
            ei_x_encode_atom(reply, "bytes_out");
            ei_x_encode_ulonglong(reply, st.bytes_out);
            ei_x_encode_atom(reply, "conns_accepted");
            ei_x_encode_ulonglong(reply, st.conns_accepted);
            ei_x_encode_atom(reply, "conns_connected");
            ei_x_encode_ulonglong(reply, st.conns_connected);
            ei_x_encode_atom(reply, "conns_dropped");
            ei_x_encode_ulonglong(reply, st.conns_dropped);
            ei_x_encode_atom(reply, "handshakes_failed");
            ei_x_encode_ulonglong(reply, st.handshakes_failed);
            ei_x_encode_atom(reply, "connections");
            ei_x_encode_ulong(reply, st.connections);
            ei_x_encode_atom(reply, "processes");
            ei_x_encode_ulong(reply, st.processes);
            return 0;
        }
        return reply_badarg(reply, start);
    }

    idx = index;
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity < 1 ||
        ei_decode_atom(buf, &idx, cmd) < 0)
        return reply_badarg(reply, start);

    if (strcmp(cmd, "send") == 0 && arity == 4) {
        /* {send, Name, Node, Msg} */
        char name[MAXATOMLEN_UTF8], node[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, name) < 0 || ei_decode_atom(buf, &idx, node) < 0)
            return reply_badarg(reply, start);
        ei_x_buff m;
        ei_x_new_with_version(&m);
        int rc = copy_term(&m, buf, &idx);
        if (rc == 0)
            rc = bl_send_name(self, name, node, m.buff, m.index);
        else
            rc = BL_EINVAL;
        ei_x_free(&m);
        reply_rc(reply, rc);
        return 0;
    }

    if (strcmp(cmd, "send_pid") == 0 && arity == 3) {
        /* {send_pid, Pid, Msg} */
        bl_pid to;
        if (bl_decode_pid(bl_proc_node(self), buf, &idx, &to) < 0)
            return reply_badarg(reply, start);
        ei_x_buff m;
        ei_x_new_with_version(&m);
        int rc = copy_term(&m, buf, &idx) == 0 ? bl_send(self, &to, m.buff, m.index) : BL_EINVAL;
        ei_x_free(&m);
        reply_rc(reply, rc);
        return 0;
    }

    if ((strcmp(cmd, "call") == 0 && arity == 5) || (strcmp(cmd, "cast") == 0 && arity == 4)) {
        /* {call, NameOrPid, Node, Req, TimeoutMs} | {cast, NameOrPid, Node, Req} */
        int is_call = strcmp(cmd, "call") == 0;
        char name[MAXATOMLEN_UTF8], node[MAXATOMLEN_UTF8];
        bl_pid to;
        int by_pid = 0;
        long timeout = 0;
        if (ei_get_type(buf, &idx, &type, &size) < 0) return reply_badarg(reply, start);
        if (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT) {
            if (bl_decode_pid(bl_proc_node(self), buf, &idx, &to) < 0)
                return reply_badarg(reply, start);
            by_pid = 1;
            name[0] = '\0';
        } else if (ei_decode_atom(buf, &idx, name) < 0) {
            return reply_badarg(reply, start);
        }
        if (ei_decode_atom(buf, &idx, node) < 0) return reply_badarg(reply, start);
        ei_x_buff req;
        ei_x_new(&req);
        if (copy_term(&req, buf, &idx) < 0 ||
            (is_call && (decode_long(buf, &idx, &timeout) < 0 || timeout < 0))) {
            ei_x_free(&req);
            return reply_badarg(reply, start);
        }
        int rc;
        if (!is_call) {
            rc = bl_cast(self, by_pid ? &to : NULL, by_pid ? NULL : name, by_pid ? NULL : node,
                         req.buff, req.index);
            ei_x_free(&req);
            reply_rc(reply, rc);
            return 0;
        }
        pending *pd = new_pending(P_CALL, from);
        if (!pd) {
            ei_x_free(&req);
            enc_error(reply, "enomem");
            return 0;
        }
        rc = bl_call(self, by_pid ? &to : NULL, by_pid ? NULL : name, by_pid ? NULL : node,
                     req.buff, req.index, (unsigned)timeout, async_done, pd);
        ei_x_free(&req);
        if (rc < 0) {
            free_pending(pd);
            enc_error(reply, err_atom(rc));
            return 0;
        }
        return 1;
    }

    if (strcmp(cmd, "rpc") == 0 && arity == 5) {
        /* {rpc, Node, M, F, Args} */
        char node[MAXATOMLEN_UTF8], mod[MAXATOMLEN_UTF8], fun[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, node) < 0 || ei_decode_atom(buf, &idx, mod) < 0 ||
            ei_decode_atom(buf, &idx, fun) < 0 || ei_get_type(buf, &idx, &type, &size) < 0 ||
            !is_list_type(type))
            return reply_badarg(reply, start);
        ei_x_buff args;
        ei_x_new(&args);
        if (copy_term(&args, buf, &idx) < 0) {
            ei_x_free(&args);
            return reply_badarg(reply, start);
        }
        pending *pd = new_pending(P_RPC, from);
        int rc =
            pd ? bl_rpc(self, node, mod, fun, args.buff, args.index, RPC_TIMEOUT_MS, async_done, pd)
               : BL_ENOMEM;
        ei_x_free(&args);
        if (rc < 0) {
            free_pending(pd);
            enc_error(reply, err_atom(rc));
            return 0;
        }
        return 1;
    }

    if ((strcmp(cmd, "erpc") == 0 && arity == 6) || (strcmp(cmd, "erpc_cast") == 0 && arity == 5)) {
        /* {erpc, Node, M, F, Args, TimeoutMs} / {erpc_cast, Node, M, F, Args} */
        int cast = cmd[4] == '_';
        char node[MAXATOMLEN_UTF8], mod[MAXATOMLEN_UTF8], fun[MAXATOMLEN_UTF8];
        long tmo = 0;
        if (ei_decode_atom(buf, &idx, node) < 0 || ei_decode_atom(buf, &idx, mod) < 0 ||
            ei_decode_atom(buf, &idx, fun) < 0 || ei_get_type(buf, &idx, &type, &size) < 0 ||
            !is_list_type(type))
            return reply_badarg(reply, start);
        ei_x_buff args;
        ei_x_new(&args);
        if (copy_term(&args, buf, &idx) < 0 ||
            (!cast && (decode_long(buf, &idx, &tmo) < 0 || tmo < 0 || tmo > 600000))) {
            ei_x_free(&args);
            return reply_badarg(reply, start);
        }
        if (cast) {
            int rc = bl_erpc_cast(self, node, mod, fun, args.buff, args.index);
            ei_x_free(&args);
            reply_rc(reply, rc);
            return 0;
        }
        pending *pd = new_pending(P_ERPC, from);
        int rc = pd ? bl_erpc_call(self, node, mod, fun, args.buff, args.index, (unsigned)tmo,
                                   async_done, pd)
                    : BL_ENOMEM;
        ei_x_free(&args);
        if (rc < 0) {
            free_pending(pd);
            enc_error(reply, err_atom(rc));
            return 0;
        }
        return 1;
    }

    if (strcmp(cmd, "ping") == 0 && arity == 2) {
        char node[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, node) < 0) return reply_badarg(reply, start);
        pending *pd = new_pending(P_PING, from);
        int rc = pd ? bl_ping(self, node, PING_TIMEOUT_MS, async_done, pd) : BL_ENOMEM;
        if (rc < 0) {
            free_pending(pd);
            ei_x_encode_atom(reply, "pang");
            return 0;
        }
        return 1;
    }

    if ((strcmp(cmd, "spawn_linked") == 0 && arity == 2) ||
        (strcmp(cmd, "spawn_trap") == 0 && arity == 3)) {
        int trap = arity == 3;
        bl_pid link_to, notify;
        if (bl_decode_pid(bl_proc_node(self), buf, &idx, &link_to) < 0 ||
            (trap && bl_decode_pid(bl_proc_node(self), buf, &idx, &notify) < 0))
            return reply_badarg(reply, start);
        int rc;
        wproc *w = wspawn(trap ? K_TRAP : K_PLAIN, NULL, trap ? &trap_ops : &plain_ops, &rc);
        if (!w) {
            enc_error(reply, err_atom(rc));
            return 0;
        }
        if (trap) {
            w->notify = notify;
            bl_trap_exit(w->p, 1);
        }
        bl_pid cpid = w->pid;
        rc = bl_link(w->p, &link_to);
        if (rc < 0) {
            bl_exit(w->p, "normal");
            enc_error(reply, err_atom(rc));
            return 0;
        }
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        bl_x_encode_pid(reply, &cpid);
        return 0;
    }

    if (strcmp(cmd, "spawn_named") == 0 && arity == 2) {
        /* {spawn_named, Name}: a plain process registered as Name -> {ok, Pid} */
        char name[MAXATOMLEN_UTF8];
        int rc;
        if (ei_decode_atom(buf, &idx, name) < 0) return reply_badarg(reply, start);
        wproc *w = wspawn(K_PLAIN, name, &plain_ops, &rc);
        if (!w) {
            enc_error(reply, err_atom(rc));
            return 0;
        }
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        bl_x_encode_pid(reply, &w->pid);
        return 0;
    }

    if (strcmp(cmd, "exit") == 0 && arity == 3) {
        bl_pid pid;
        char reason[MAXATOMLEN_UTF8];
        if (bl_decode_pid(bl_proc_node(self), buf, &idx, &pid) < 0 ||
            ei_decode_atom(buf, &idx, reason) < 0)
            return reply_badarg(reply, start);
        wproc *w = find_proc(&pid);
        if (!w) {
            enc_error(reply, "noproc");
            return 0;
        }
        bl_exit(w->p, reason); /* may free w */
        ei_x_encode_atom(reply, "ok");
        return 0;
    }

    if (strcmp(cmd, "is_alive") == 0 && arity == 2) {
        bl_pid pid;
        if (bl_decode_pid(bl_proc_node(self), buf, &idx, &pid) < 0)
            return reply_badarg(reply, start);
        ei_x_encode_boolean(reply, find_proc(&pid) != NULL);
        return 0;
    }

    if (strcmp(cmd, "is_connected") == 0 && arity == 2) {
        char node[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, node) < 0) return reply_badarg(reply, start);
        ei_x_encode_boolean(reply, bl_is_connected(g_node, node) > 0);
        return 0;
    }

    if (strcmp(cmd, "disconnect") == 0 && arity == 2) {
        char node[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, node) < 0) return reply_badarg(reply, start);
        reply_rc(reply, bl_disconnect(g_node, node));
        return 0;
    }

    if (strcmp(cmd, "monitor_nodes") == 0 && arity == 2) {
        bl_pid notify;
        if (bl_decode_pid(bl_proc_node(self), buf, &idx, &notify) < 0)
            return reply_badarg(reply, start);
        wsub *s = calloc(1, sizeof *s);
        if (!s) {
            enc_error(reply, "enomem");
            return 0;
        }
        s->notify = notify;
        int id = bl_monitor_nodes(g_node, node_event, s);
        if (id <= 0) {
            free(s);
            enc_error(reply, err_atom(id));
            return 0;
        }
        s->id = id;
        s->next = g_subs;
        g_subs = s;
        ei_x_encode_atom(reply, "ok");
        return 0;
    }

    if (strcmp(cmd, "sink") == 0 && arity == 3) {
        long n;
        bl_pid notify;
        if (decode_long(buf, &idx, &n) < 0 || n <= 0 ||
            bl_decode_pid(bl_proc_node(self), buf, &idx, &notify) < 0)
            return reply_badarg(reply, start);
        int rc;
        wproc *w = wspawn(K_SINK, NULL, &sink_ops, &rc);
        if (!w) {
            enc_error(reply, err_atom(rc));
            return 0;
        }
        w->n = n;
        w->notify = notify;
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        bl_x_encode_pid(reply, &w->pid);
        return 0;
    }

    if (strcmp(cmd, "blast") == 0 && arity == 3) {
        bl_pid target;
        long n;
        if (bl_decode_pid(bl_proc_node(self), buf, &idx, &target) < 0 ||
            decode_long(buf, &idx, &n) < 0 || n < 0)
            return reply_badarg(reply, start);
        int rc;
        wproc *w = wspawn(K_BLAST, NULL, &blast_ops, &rc);
        if (!w) {
            enc_error(reply, err_atom(rc));
            return 0;
        }
        w->target = target;
        w->n = n;
        w->count = 1;
        int id = bl_timer(g_node, 0, 0, blast_tick, w);
        if (id <= 0) {
            bl_exit(w->p, "normal");
            enc_error(reply, err_atom(id));
            return 0;
        }
        w->timer = id;
        ei_x_encode_atom(reply, "ok");
        return 0;
    }

    return reply_badarg(reply, start);
}

static void ctl_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    (void)msg;
    (void)ud;
    bl_log(g_node, BL_LOG_DEBUG, "test_worker: ctl ignores a plain message");
}

static const bl_proc_ops ctl_ops = {
    .on_msg = ctl_msg, .on_call = ctl_call, .on_terminate = on_terminate_common};

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr, "usage: test_worker --sname NAME --cookie COOKIE [--net-ticktime S] "
                    "[--max-message-size BYTES] [--log-level debug|info|warn|error]\n");
}

static int parse_ulong(const char *s, unsigned long *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-') return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end) return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src);
    if (len == 0 || len >= cap) return -1;
    memcpy(dst, src, len + 1);
    return 0;
}

/* ---------------------------------------------------------------- exported functions
 * What BEAM's rpc/erpc/spawn reach on this node (module tw):
 *   tw:echo(X) -> X              tw:add(A, B) -> A + B
 *   tw:fail(R) -> error(R)       tw:throw(V) -> throw(V)       tw:exit(R) -> exit(R)
 *   tw:later(Ms, V) -> V after Ms milliseconds, answered from a timer (BL_FN_LATER)
 *   tw:wait() -> never returns (the process lives until an exit signal ends it)
 *   tw:notify(Pid, Msg) -> ok, and Pid ! Msg from the spawned process (for casts)
 *   tw:park(Pid) -> Pid ! {parked, self()}, then never returns (rex: killed before it answers) */

typedef struct later_t {
    struct later_t *next, *prev;
    bl_pid self;
    char *term;
    int len;
} later_t;

static later_t *g_later; /* timers not fired yet: freed at exit if the node stops first */

static void later_free(later_t *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        g_later = l->next;
    if (l->next) l->next->prev = l->prev;
    free(l->term);
    free(l);
}

static int first_arg(const char *args, int index, int *idx)
{
    int n;
    *idx = index;
    return ei_decode_list_header(args, idx, &n) < 0 || n < 1 ? -1 : 0;
}

static int fn_copy1(const char *args, int index, ei_x_buff *r)
{
    int i;
    if (first_arg(args, index, &i) < 0 || copy_term(r, args, &i) < 0) return -1;
    return 0;
}

static int fn_echo(bl_proc *self, const char *args, int index, int arity, ei_x_buff *r, void *ud)
{
    (void)self, (void)arity;
    return fn_copy1(args, index, r) < 0 ? BL_FN_ERROR : (int)(long)ud;
}

static int fn_add(bl_proc *self, const char *args, int index, int arity, ei_x_buff *r, void *ud)
{
    (void)self, (void)arity, (void)ud;
    int i;
    long a, b;
    if (first_arg(args, index, &i) < 0 || decode_long(args, &i, &a) < 0 ||
        decode_long(args, &i, &b) < 0) {
        ei_x_encode_atom(r, "badarith");
        return BL_FN_ERROR;
    }
    ei_x_encode_long(r, a + b);
    return BL_FN_RETURN;
}

static void later_fire(bl_node *n, void *ud)
{
    later_t *l = ud;
    int rc = bl_fn_return(n, &l->self, BL_FN_RETURN, l->term, l->len);
    if (rc < 0) bl_log(n, BL_LOG_INFO, "test_worker: tw:later process gone (%s)", bl_strerror(rc));
    later_free(l);
}

static int fn_later(bl_proc *self, const char *args, int index, int arity, ei_x_buff *r, void *ud)
{
    (void)arity, (void)ud;
    int i, v;
    long ms;
    if (first_arg(args, index, &i) < 0 || decode_long(args, &i, &ms) < 0 || ms < 0 || ms > 600000) {
        ei_x_encode_atom(r, "badarg");
        return BL_FN_ERROR;
    }
    v = i;
    if (ei_skip_term(args, &i) < 0) return BL_FN_ERROR;
    later_t *l = calloc(1, sizeof *l);
    if (!l || !(l->term = malloc((size_t)(i - v)))) {
        free(l);
        ei_x_encode_atom(r, "enomem");
        return BL_FN_ERROR;
    }
    memcpy(l->term, args + v, (size_t)(i - v));
    l->len = i - v;
    l->self = *bl_self(self);
    l->next = g_later;
    if (g_later) g_later->prev = l;
    g_later = l;
    bl_timer(bl_proc_node(self), (unsigned)ms, 0, later_fire, l);
    return BL_FN_LATER;
}

static int fn_wait(bl_proc *self, const char *args, int index, int arity, ei_x_buff *r, void *ud)
{
    (void)self, (void)args, (void)index, (void)arity, (void)r, (void)ud;
    return BL_FN_LATER;
}

static int fn_notify(bl_proc *self, const char *args, int index, int arity, ei_x_buff *r, void *ud)
{
    (void)arity, (void)ud;
    int i;
    bl_pid to;
    ei_x_buff m;
    if (first_arg(args, index, &i) < 0 || bl_decode_pid(bl_proc_node(self), args, &i, &to) < 0) {
        ei_x_encode_atom(r, "badarg");
        return BL_FN_ERROR;
    }
    ei_x_new_with_version(&m);
    copy_term(&m, args, &i);
    send_msg(self, &to, &m);
    ei_x_free(&m);
    ei_x_encode_atom(r, "ok");
    return BL_FN_RETURN;
}

/* tw:park(Pid): Pid ! {parked, self()}, then no answer until an exit signal ends the process */
static int fn_park(bl_proc *self, const char *args, int index, int arity, ei_x_buff *r, void *ud)
{
    (void)arity, (void)ud;
    int i;
    bl_pid to;
    ei_x_buff m;
    if (first_arg(args, index, &i) < 0 || bl_decode_pid(bl_proc_node(self), args, &i, &to) < 0) {
        ei_x_encode_atom(r, "badarg");
        return BL_FN_ERROR;
    }
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "parked");
    bl_x_encode_pid(&m, bl_self(self));
    send_msg(self, &to, &m);
    ei_x_free(&m);
    return BL_FN_LATER;
}

static int export_all(bl_node *n)
{
    int rc = bl_export(n, "tw", "echo", 1, fn_echo, (void *)(long)BL_FN_RETURN);
    if (rc == 0) rc = bl_export(n, "tw", "fail", 1, fn_echo, (void *)(long)BL_FN_ERROR);
    if (rc == 0) rc = bl_export(n, "tw", "throw", 1, fn_echo, (void *)(long)BL_FN_THROW);
    if (rc == 0) rc = bl_export(n, "tw", "exit", 1, fn_echo, (void *)(long)BL_FN_EXIT);
    if (rc == 0) rc = bl_export(n, "tw", "add", 2, fn_add, NULL);
    if (rc == 0) rc = bl_export(n, "tw", "later", 2, fn_later, NULL);
    if (rc == 0) rc = bl_export(n, "tw", "wait", 0, fn_wait, NULL);
    if (rc == 0) rc = bl_export(n, "tw", "notify", 2, fn_notify, NULL);
    if (rc == 0) rc = bl_export(n, "tw", "park", 1, fn_park, NULL);
    /* exported twice: refused */
    if (rc == 0 && bl_export(n, "tw", "echo", 1, fn_echo, NULL) != BL_EEXIST) rc = BL_EINVAL;
    return rc;
}

int main(int argc, char **argv)
{
    bl_config cfg;
    bl_config_init(&cfg);
    int have_name = 0;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long v;
        if (!val) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(opt, "--sname") == 0) {
            if (copy_str(cfg.name, sizeof cfg.name, val) < 0) {
                usage();
                return 2;
            }
            cfg.longnames = 0;
            have_name = 1;
        } else if (strcmp(opt, "--cookie") == 0) {
            if (copy_str(cfg.cookie, sizeof cfg.cookie, val) < 0) {
                usage();
                return 2;
            }
        } else if (strcmp(opt, "--net-ticktime") == 0 && parse_ulong(val, &v) == 0 && v > 0) {
            cfg.net_ticktime_s = (unsigned)v;
        } else if (strcmp(opt, "--max-message-size") == 0 && parse_ulong(val, &v) == 0 && v > 0) {
            cfg.max_message_size = (size_t)v;
        } else if (!strncmp(opt, "--tls", 5) && test_cnode_tls_opt(&cfg, opt, val) == 0) {
            /* TLS distribution (--tls true, --tls-cert F, ...), as `beamlet node` takes it */
        } else if (strcmp(opt, "--log-level") == 0) {
            if (strcmp(val, "debug") == 0)
                cfg.log_level = BL_LOG_DEBUG;
            else if (strcmp(val, "info") == 0)
                cfg.log_level = BL_LOG_INFO;
            else if (strcmp(val, "warn") == 0)
                cfg.log_level = BL_LOG_WARN;
            else if (strcmp(val, "error") == 0)
                cfg.log_level = BL_LOG_ERROR;
            else {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!have_name) {
        usage();
        return 2;
    }
    snprintf(cfg.role, sizeof cfg.role, "%s", "worker");

    bl_node *n = NULL;
    int rc = bl_node_new(&cfg, &n);
    if (rc < 0) {
        fprintf(stderr, "test_worker: bl_node_new: %s\n", bl_strerror(rc));
        return 1;
    }
    g_node = n;
    rc = export_all(n);
    if (rc < 0) {
        fprintf(stderr, "test_worker: bl_export: %s\n", bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    rc = bl_node_start(n);
    if (rc < 0) {
        fprintf(stderr, "test_worker: bl_node_start: %s\n", bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    wproc *echo = wspawn(K_ECHO, "echo", &echo_ops, &rc);
    wproc *ctl = echo ? wspawn(K_CTL, "ctl", &ctl_ops, &rc) : NULL;
    if (!ctl) {
        fprintf(stderr, "test_worker: bl_spawn: %s\n", bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    g_ctl = ctl->p;

    rc = bl_node_run(n);
    bl_node_free(n);
    g_node = NULL;
    while (g_later)
        later_free(g_later);

    int status = rc == 0 ? 0 : 1;
    if (rc != 0) fprintf(stderr, "test_worker: bl_node_run returned %s\n", bl_strerror(rc));
    int left = 0;
    while (g_procs) { /* the library should have terminated every process */
        wproc *w = g_procs;
        g_procs = w->next;
        free(w);
        left++;
    }
    if (left) {
        fprintf(stderr, "test_worker: %d processes never got on_terminate\n", left);
        status = 3;
    }
    while (g_subs) {
        wsub *s = g_subs;
        g_subs = s->next;
        free(s);
    }
    return status;
}
