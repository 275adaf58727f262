/* rex.c - the registered process `rex`, as OTP's rpc server answers on a BEAM node.
 *
 * BEAM uses rex for rpc:block_call, and for rpc:call to a node without DFLAG_SPAWN (an ei node,
 * our own bl_rpc); rpc:sbcast and old C-node clients talk to it by plain messages. Requests
 * (kernel's rpc.erl, OTP 25):
 *   gen_server:call  {call | block_call, M, F, A, GL}  -> the answer of apply(M, F, A), as rpc:
 *                    V, a thrown V, {badrpc, {'EXIT', R}}, {badrpc, {'EXIT', {R, Stack}}}
 *                    stop -> stopped (and rex goes on serving, as kernel restarts BEAM's)
 *   gen_server:cast  {cast, M, F, A, GL}           -> apply(M, F, A), no answer
 *   message          {From, {call, M, F, A, GL}}   -> From ! {rex, Answer}
 *                    {From, {sbcast, Name, Msg}}   -> Name ! Msg; From ! {rex, node(), node()}
 *                                                     or {rex, node(), {nonexisting_name, Name}}
 *                    {From, {send, Name, Msg}}     -> Name ! {From, Msg} (nonexisting_name too)
 *                    {From, features_request}      -> From ! {features_reply, node(), [erpc]}
 * Each call runs in a process of its own through the one dispatch spawn_request uses (spawn.c,
 * apply.c, the export table), so funs and erlang:apply work here as there. A block_call runs so
 * as well: BEAM's rex serves nothing else while a block_call runs, which here would let a C
 * function that answers later (BL_FN_LATER) hold every caller of the node, and two nodes
 * block_calling each other wait on each other forever. The group leader is not used (a C node
 * does no I/O for callers). Anything else is dropped, with a log line (at most LOG_BURST lines
 * per LOG_WINDOW_S seconds, then a count), as BEAM's rex ignores it: nothing crashes. */
#include "../runtime/internal.h"

#include <stdlib.h>
#include <string.h>

#define LOG_BURST 10
#define LOG_WINDOW_S 10.0

static int atom_is(const char *b, int i, const char *want)
{
    int type, size;
    char a[MAXATOMLEN_UTF8];
    return ei_get_type(b, &i, &type, &size) == 0 &&
           (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
            type == ERL_SMALL_ATOM_UTF8_EXT) &&
           ei_decode_atom(b, &i, a) == 0 && strcmp(a, want) == 0;
}

static int is_pid(const char *b, int i)
{
    int type, size;
    return ei_get_type(b, &i, &type, &size) == 0 &&
           (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT);
}

/* {Tag, M, F, A, GL} with Tag one of tags: the index of Tag, M, F, A at r. */
static int mfa_tuple(const char *b, int i, const char *const *tags, int ntags, bl_rex_req *r)
{
    int ar;
    if (ei_decode_tuple_header(b, &i, &ar) < 0 || ar != 5) return -1;
    int tag = -1;
    for (int k = 0; k < ntags && tag < 0; k++)
        if (atom_is(b, i, tags[k])) tag = k;
    if (tag < 0) return -1;
    if ((i = bl__term_end(b, i)) < 0) return -1;
    r->mfa_at = i;
    for (int k = 0; k < 3; k++)
        if ((i = bl__term_end(b, i)) < 0) return -1;
    r->mfa_end = i;
    return tag;
}

int bl__rex_decode(const char *b, int idx, int form, bl_rex_req *r)
{
    static const char *const CALLS[] = {"call", "block_call"};
    static const char *const CAST[] = {"cast"};
    memset(r, 0, sizeof(*r));
    r->kind = BL_REX_BAD;
    int k, ar, i = idx;
    switch (form) {
    case BL_REX_FORM_CALL:
        if (atom_is(b, idx, "stop")) return r->kind = BL_REX_STOP;
        k = mfa_tuple(b, idx, CALLS, 2, r);
        if (k < 0) {
            r->why = "not {call | block_call, M, F, Args, GroupLeader}";
            return r->kind;
        }
        return r->kind = k == 0 ? BL_REX_CALL : BL_REX_BLOCK_CALL;
    case BL_REX_FORM_CAST:
        if (mfa_tuple(b, idx, CAST, 1, r) < 0) {
            r->why = "not {cast, M, F, Args, GroupLeader}";
            return r->kind;
        }
        return r->kind = BL_REX_CAST;
    default: /* a plain message {From, Request} */
        break;
    }
    r->why = "not {From, Request} with From a pid";
    if (ei_decode_tuple_header(b, &i, &ar) < 0 || ar != 2 || !is_pid(b, i)) return r->kind;
    r->from_at = i;
    if ((i = bl__term_end(b, i)) < 0) return r->kind;
    r->why = "an unknown request";
    if (atom_is(b, i, "features_request")) return r->kind = BL_REX_FEATURES;
    if (mfa_tuple(b, i, CALLS, 1, r) == 0) return r->kind = BL_REX_PLAIN_CALL;
    int j = i;
    if (ei_decode_tuple_header(b, &j, &ar) < 0 || ar != 3) return r->kind;
    int sb = atom_is(b, j, "sbcast"), sd = atom_is(b, j, "send");
    if (!sb && !sd) return r->kind;
    if ((j = bl__term_end(b, j)) < 0) return r->kind;
    r->name_at = j;
    if ((j = bl__term_end(b, j)) < 0) return r->kind;
    r->msg_at = j;
    if ((j = bl__term_end(b, j)) < 0) return r->kind;
    r->msg_end = j;
    r->why = NULL;
    return r->kind = sb ? BL_REX_SBCAST : BL_REX_SEND;
}

/* ---- the process ---- */

typedef struct {
    double window; /* start of the current log window (loop time) */
    unsigned logged;
    unsigned long suppressed;
} rex_state;

static void log_bad(bl_proc *self, rex_state *st, const char *what, const char *why)
{
    bl_node *n = bl_proc_node(self);
    double now = ev_now(n->loop);
    if (now - st->window >= LOG_WINDOW_S) {
        if (st->suppressed)
            bl_log(n, BL_LOG_WARN, "rex: %lu more bad requests were dropped without a log line",
                   st->suppressed);
        st->window = now;
        st->logged = 0;
        st->suppressed = 0;
    }
    if (st->logged >= LOG_BURST) {
        st->suppressed++;
        return;
    }
    st->logged++;
    bl_log(n, BL_LOG_WARN, "rex: dropped a %s that is %s (no answer, as BEAM's rex)", what,
           why ? why : "not understood");
}

static void encode_system_limit(ei_x_buff *x)
{
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "badrpc");
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "EXIT");
    ei_x_encode_atom(x, "system_limit");
}

static int rex_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                    void *ud)
{
    bl_node *n = bl_proc_node(self);
    bl_rex_req r;
    switch (bl__rex_decode(buf, idx, BL_REX_FORM_CALL, &r)) {
    case BL_REX_CALL:
    case BL_REX_BLOCK_CALL:
        if (bl__spawn_rex(n, buf + r.mfa_at, r.mfa_end - r.mfa_at, from, NULL) == BL_OK)
            return 1; /* the process answers */
        encode_system_limit(reply);
        return 0;
    case BL_REX_STOP:
        bl_log(n, BL_LOG_INFO,
               "rex: %s asked rex to stop: answered stopped, and rex goes on serving (BEAM's "
               "kernel restarts its rex)",
               bl_pid_node(&from->pid));
        return ei_x_encode_atom(reply, "stopped");
    default:
        log_bad(self, ud, "gen_server call", r.why);
        return -1;
    }
}

static void rex_cast(bl_proc *self, const char *buf, int idx, void *ud)
{
    bl_rex_req r;
    if (bl__rex_decode(buf, idx, BL_REX_FORM_CAST, &r) != BL_REX_CAST) {
        log_bad(self, ud, "gen_server cast", r.why);
        return;
    }
    if (bl__spawn_rex(bl_proc_node(self), buf + r.mfa_at, r.mfa_end - r.mfa_at, NULL, NULL) !=
        BL_OK)
        bl_log(bl_proc_node(self), BL_LOG_WARN, "rex: a cast was dropped (out of processes)");
}

/* Name ! Msg on this node (Name an atom or a pid); 0 when it was delivered. */
static int deliver(bl_proc *self, const char *b, int name_at, const char *msg, int len)
{
    bl_node *n = bl_proc_node(self);
    int type, size, i = name_at;
    if (ei_get_type(b, &i, &type, &size) < 0) return -1;
    if (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT) {
        bl_pid pid;
        if (bl_decode_pid(n, b, &i, &pid) < 0) return -1;
        return bl_send_msg(n, &pid, msg, len) == BL_OK ? 0 : -1;
    }
    char name[MAXATOMLEN_UTF8];
    if (ei_decode_atom(b, &i, name) == 0 && strlen(name) < BL_NAME_LEN && bl_whereis(n, name))
        return bl_send_name(self, name, NULL, msg, len) == BL_OK ? 0 : -1;
    return -1;
}

/* From ! {rex, node(), Result} with Result node() (what) or {nonexisting_name, Name}. */
static void sbcast_answer(bl_proc *self, const bl_pid *to, const char *b, const bl_rex_req *r,
                          int ok)
{
    bl_node *n = bl_proc_node(self);
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "rex");
    ei_x_encode_atom(&x, n->name);
    if (ok) {
        ei_x_encode_atom(&x, n->name);
    } else {
        ei_x_encode_tuple_header(&x, 2);
        ei_x_encode_atom(&x, "nonexisting_name");
        ei_x_append_buf(&x, b + r->name_at, r->msg_at - r->name_at);
    }
    (void)bl_send_msg(n, to, x.buff, x.index);
    ei_x_free(&x);
}

static void rex_msg(bl_proc *self, const bl_msg *m, void *ud)
{
    bl_node *n = bl_proc_node(self);
    const char *b = m->buf;
    bl_rex_req r;
    int kind = bl__rex_decode(b, m->index, BL_REX_FORM_MSG, &r);
    if (kind == BL_REX_BAD) {
        log_bad(self, ud, "message", r.why);
        return;
    }
    bl_pid from;
    int i = r.from_at;
    if (bl_decode_pid(n, b, &i, &from) < 0) return;
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    switch (kind) {
    case BL_REX_FEATURES: /* spawn_request is served: rpc may use erpc towards this node */
        ei_x_encode_tuple_header(&x, 3);
        ei_x_encode_atom(&x, "features_reply");
        ei_x_encode_atom(&x, n->name);
        ei_x_encode_list_header(&x, 1);
        ei_x_encode_atom(&x, "erpc");
        ei_x_encode_empty_list(&x);
        (void)bl_send_msg(n, &from, x.buff, x.index);
        break;
    case BL_REX_PLAIN_CALL:
        if (bl__spawn_rex(n, b + r.mfa_at, r.mfa_end - r.mfa_at, NULL, &from) != BL_OK) {
            ei_x_encode_tuple_header(&x, 2);
            ei_x_encode_atom(&x, "rex");
            encode_system_limit(&x);
            (void)bl_send_msg(n, &from, x.buff, x.index);
        }
        break;
    case BL_REX_SBCAST:
        ei_x_append_buf(&x, b + r.msg_at, r.msg_end - r.msg_at);
        sbcast_answer(self, &from, b, &r, deliver(self, b, r.name_at, x.buff, x.index) == 0);
        break;
    default: /* BL_REX_SEND: Name ! {From, Msg}; it is up to Name to answer */
        ei_x_encode_tuple_header(&x, 2);
        bl_x_encode_pid(&x, &from);
        ei_x_append_buf(&x, b + r.msg_at, r.msg_end - r.msg_at);
        if (deliver(self, b, r.name_at, x.buff, x.index) != 0) sbcast_answer(self, &from, b, &r, 0);
        break;
    }
    ei_x_free(&x);
}

static void rex_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    free(ud);
}

int bl_rex_start(bl_node *n)
{
    static const bl_proc_ops ops = {
        .on_call = rex_call, .on_cast = rex_cast, .on_msg = rex_msg, .on_terminate = rex_terminate};
    rex_state *st = calloc(1, sizeof(*st));
    if (!st) return BL_ENOMEM;
    int rc = bl_spawn(n, "rex", &ops, st, NULL);
    if (rc != BL_OK) free(st);
    return rc;
}
