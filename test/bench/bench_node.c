/* bench_node.c - a beamlet node for `make bench` (test/bench/run.sh drives it from bl_bench.erl).
 *
 * Public API only (beamlet/beamlet.h, beamlet/config.h). Flags and environment as `beamlet node`.
 * Registered processes:
 *   bench: gen_server calls
 *     {sink, N, NotifyPid}             -> {ok, SinkPid}; the sink counts messages and sends
 *                                         {done, N} to NotifyPid after the N-th, then ends.
 *     {blast, TargetPid, N, NotifyPid} -> {ok, BlasterPid}; the blaster sends N messages
 *                                         {Self, {seq, I, <<"payload">>}} to TargetPid, retrying on
 *                                         a 1 ms timer while bl_send says BL_EBUSY, then sends
 *                                         {blast_sent, N, EBusyCount} to NotifyPid and ends.
 *     stats                            -> {stats, MsgsIn, MsgsOut, BytesIn, BytesOut}
 *   echo: gen_server call Req -> Req.
 * The node dies with its parent (PR_SET_PDEATHSIG) so a crashed driver leaves nothing behind.
 */
#include "../lib/test_cnode.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define BLAST_BATCH 8192  /* messages per loop turn before yielding to the loop */
#define BLAST_RETRY_MS 1u /* wait after BL_EBUSY */
#define MSG_MAX 1024

static bl_node *g_node;

/* ---------------------------------------------------------------- sink */

typedef struct sink {
    long n, count;
    bl_pid notify;
} sink;

static void send_done(bl_proc *self, const bl_pid *to, const char *tag, long a, int with_b, long b)
{
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, with_b ? 3 : 2);
    ei_x_encode_atom(&m, tag);
    ei_x_encode_long(&m, a);
    if (with_b) ei_x_encode_long(&m, b);
    int rc = bl_send(self, to, m.buff, m.index);
    if (rc < 0) bl_log(g_node, BL_LOG_WARN, "bench_node: cannot send %s: %s", tag, bl_strerror(rc));
    ei_x_free(&m);
}

static void sink_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    sink *s = ud;
    (void)msg;
    if (++s->count != s->n) return;
    send_done(self, &s->notify, "done", s->n, 0, 0);
    bl_exit(self, "normal");
}

static void free_ud(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    free(ud);
}

static const bl_proc_ops sink_ops = {.on_msg = sink_msg, .on_terminate = free_ud};

/* ---------------------------------------------------------------- blaster */

typedef struct blaster {
    bl_proc *p;
    bl_pid target, notify;
    long n, next; /* next: sequence number of the next message, 1..n */
    long ebusy;   /* how many bl_send calls returned BL_EBUSY */
    int timer;
    char msg[MSG_MAX];
    int prefix_len; /* version, {Self, {seq,  -- encoded once */
} blaster;

static void blast_tick(bl_node *n, void *ud);

static void blast_end(blaster *b)
{
    if (b->timer > 0) bl_timer_cancel(g_node, b->timer);
    b->timer = 0;
    bl_exit(b->p, "normal"); /* on_terminate frees b */
}

static void blast_tick(bl_node *n, void *ud)
{
    blaster *b = ud;
    b->timer = 0;
    int rc = 0;
    for (int sent = 0; b->next <= b->n && sent < BLAST_BATCH; sent++) {
        int i = b->prefix_len;
        ei_encode_long(b->msg, &i, b->next);
        ei_encode_binary(b->msg, &i, "payload", 7);
        rc = bl_send(b->p, &b->target, b->msg, i);
        if (rc < 0) break;
        b->next++;
    }
    if (b->next > b->n) {
        send_done(b->p, &b->notify, "blast_sent", b->n, 1, b->ebusy);
        blast_end(b);
        return;
    }
    if (rc == BL_EBUSY) {
        b->ebusy++;
    } else if (rc < 0) {
        bl_log(n, BL_LOG_WARN, "bench_node: blast stopped at %ld of %ld: %s", b->next, b->n,
               bl_strerror(rc));
        send_done(b->p, &b->notify, "blast_failed", b->next - 1, 1, rc);
        blast_end(b);
        return;
    }
    int id = bl_timer(n, rc == BL_EBUSY ? BLAST_RETRY_MS : 0, 0, blast_tick, b);
    if (id <= 0) {
        bl_log(n, BL_LOG_WARN, "bench_node: blast cannot arm a timer: %s", bl_strerror(id));
        blast_end(b);
        return;
    }
    b->timer = id;
}

static void blaster_terminate(bl_proc *self, const char *reason, void *ud)
{
    blaster *b = ud;
    (void)self;
    (void)reason;
    if (b->timer > 0) bl_timer_cancel(g_node, b->timer);
    free(b);
}

static const bl_proc_ops blaster_ops = {.on_terminate = blaster_terminate};

/* ---------------------------------------------------------------- bench (control) */

static int reply_ok_pid(ei_x_buff *reply, const bl_pid *pid)
{
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "ok");
    bl_x_encode_pid(reply, pid);
    return 0;
}

static int reply_error(ei_x_buff *reply, const char *why)
{
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    ei_x_encode_atom(reply, why);
    return 0;
}

static int start_sink(bl_node *n, long count, const bl_pid *notify, ei_x_buff *reply)
{
    sink *s = calloc(1, sizeof(*s));
    if (!s) return reply_error(reply, "enomem");
    s->n = count;
    s->notify = *notify;
    bl_proc *p;
    int rc = bl_spawn(n, NULL, &sink_ops, s, &p);
    if (rc < 0) {
        free(s);
        return reply_error(reply, "spawn_failed");
    }
    return reply_ok_pid(reply, bl_self(p));
}

static int start_blast(bl_node *n, const bl_pid *target, long count, const bl_pid *notify,
                       ei_x_buff *reply)
{
    blaster *b = calloc(1, sizeof(*b));
    if (!b) return reply_error(reply, "enomem");
    b->target = *target;
    b->notify = *notify;
    b->n = count;
    b->next = 1;
    int rc = bl_spawn(n, NULL, &blaster_ops, b, &b->p);
    if (rc < 0) {
        free(b);
        return reply_error(reply, "spawn_failed");
    }
    int i = 0;
    ei_encode_version(b->msg, &i);
    ei_encode_tuple_header(b->msg, &i, 2);
    bl_encode_pid(b->msg, &i, bl_self(b->p));
    ei_encode_tuple_header(b->msg, &i, 3);
    ei_encode_atom(b->msg, &i, "seq");
    b->prefix_len = i;
    if (count <= 0) {
        send_done(b->p, &b->notify, "blast_sent", 0, 1, 0);
        reply_ok_pid(reply, bl_self(b->p));
        bl_exit(b->p, "normal");
        return 0;
    }
    b->timer = bl_timer(n, 0, 0, blast_tick, b);
    if (b->timer <= 0) {
        bl_exit(b->p, "normal");
        return reply_error(reply, "timer_failed");
    }
    return reply_ok_pid(reply, bl_self(b->p));
}

static int bench_call(bl_proc *self, const bl_from *from, const char *buf, int index,
                      ei_x_buff *reply, void *ud)
{
    (void)from;
    (void)ud;
    bl_node *n = bl_proc_node(self);
    int idx = index, arity = 0;
    char cmd[MAXATOMLEN_UTF8];
    if (ei_decode_atom(buf, &idx, cmd) == 0) {
        if (strcmp(cmd, "stats") == 0) {
            bl_stats st;
            bl_node_stats(n, &st);
            ei_x_encode_tuple_header(reply, 5);
            ei_x_encode_atom(reply, "stats");
            ei_x_encode_ulonglong(reply, st.msgs_in);
            ei_x_encode_ulonglong(reply, st.msgs_out);
            ei_x_encode_ulonglong(reply, st.bytes_in);
            ei_x_encode_ulonglong(reply, st.bytes_out);
            return 0;
        }
        return reply_error(reply, "badarg");
    }
    idx = index;
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity < 1 ||
        ei_decode_atom(buf, &idx, cmd) < 0)
        return reply_error(reply, "badarg");
    long count;
    bl_pid p1, p2;
    if (strcmp(cmd, "sink") == 0 && arity == 3 && ei_decode_long(buf, &idx, &count) == 0 &&
        count > 0 && bl_decode_pid(n, buf, &idx, &p1) == 0)
        return start_sink(n, count, &p1, reply);
    if (strcmp(cmd, "blast") == 0 && arity == 4 && bl_decode_pid(n, buf, &idx, &p1) == 0 &&
        ei_decode_long(buf, &idx, &count) == 0 && bl_decode_pid(n, buf, &idx, &p2) == 0)
        return start_blast(n, &p1, count, &p2, reply);
    return reply_error(reply, "badarg");
}

static const bl_proc_ops bench_ops = {.on_call = bench_call};

/* ---------------------------------------------------------------- echo */

static int echo_call(bl_proc *self, const bl_from *from, const char *buf, int index,
                     ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    (void)ud;
    int end = index;
    if (ei_skip_term(buf, &end) < 0) return -1;
    return ei_x_append_buf(reply, buf + index, end - index) < 0 ? -1 : 0;
}

static const bl_proc_ops echo_ops = {.on_call = echo_call};

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    ei_init();
    bl_node *n;
    int code = test_cnode_start("bench_node", argc - 1, argv + 1, &n);
    if (code) return code;
    g_node = n;
    int rc;
    if ((rc = bl_spawn(n, "bench", &bench_ops, NULL, NULL)) != BL_OK ||
        (rc = bl_spawn(n, "echo", &echo_ops, NULL, NULL)) != BL_OK)
        return test_cnode_fail("bench_node", n, rc);
    test_cnode_run(n);
    return 0;
}
