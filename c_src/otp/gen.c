/* gen.c - the gen_server message shapes, both ways, and the table of calls in flight.
 *
 * Serving: '$gen_call' {Pid, Tag} requests reach a process's on_call and the reply goes back as
 * {Tag, Reply} with Tag copied byte for byte. A Tag [alias|Ref] (OTP 24+) is answered like OTP's
 * gen:reply: ALIAS_SEND to the alias when the caller's node supports aliases, so a reply after the
 * caller gave up is dropped by the caller's node. '$gen_cast' reaches on_cast.
 * Calling: bl_call sends {'$gen_call', {Self, Tag}, Req} and monitors the target with MONITOR_P
 * under the same ref, so a missing or dying server answers BL_ENOPROC at once instead of a
 * timeout. Tag is [alias|Ref] when the peer supports aliases (the ref is then an alias of the
 * caller, active until the call completes: a late ALIAS_SEND reply is dropped here, as BEAM drops
 * it), else the plain Ref. The reply, the monitor exit, the timer or a nodedown completes the call
 * exactly once. rex, net_adm:ping and erpc requests (otp/erpc.c) are calls too. */
#include "../runtime/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int get_atom(const char *buf, int *idx, char *out)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
    if (type != ERL_ATOM_EXT && type != ERL_SMALL_ATOM_EXT && type != ERL_ATOM_UTF8_EXT &&
        type != ERL_SMALL_ATOM_UTF8_EXT)
        return -1;
    return ei_decode_atom(buf, idx, out);
}

static void call_key(const bl__ref *r, unsigned key[3])
{
    key[0] = r->n[0];
    key[1] = r->len > 1 ? r->n[1] : 0;
    key[2] = r->len > 2 ? r->n[2] : 0;
}

static int is_ref_type(int type)
{
    return type == ERL_NEW_REFERENCE_EXT || type == ERL_NEWER_REFERENCE_EXT;
}

/* A reference at *j into ref, its node interned in n; n NULL: only skipped (bl__tag_trace). */
static int get_ref(bl_node *n, const char *buf, int *j, bl__ref *ref)
{
    return n ? bl__decode_ref(n, buf, j, ref) : bl__skip_term(buf, j);
}

/* [alias|Ref] at *j (past it on success). */
static int decode_alias_ref(bl_node *n, const char *buf, int *j, bl__ref *ref)
{
    int type, size;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_list_header(buf, j, &size) < 0 || size != 1 || get_atom(buf, j, a) < 0 ||
        strcmp(a, "alias") != 0 || ei_get_type(buf, j, &type, &size) < 0 || !is_ref_type(type))
        return -1;
    return get_ref(n, buf, j, ref);
}

/* A call tag: Ref, [alias|Ref], or with a trace (docs/tracing.md) [Ref | <<Traceparent>>] or
 * [[alias|Ref] | <<Traceparent>>] (OTP's gen:reply answers [[alias|A] | _] at the alias A).
 * trace (may be NULL): the caller's trace when the tag has one, else cleared. */
static int decode_tag_trace(bl_node *n, const char *buf, int *idx, bl__ref *ref, bl_trace *trace,
                            int *aliased)
{
    int type, size, j = *idx;
    if (trace) trace->valid = 0;
    if (aliased) *aliased = 0;
    if (ei_get_type(buf, &j, &type, &size) < 0) return -1;
    if (is_ref_type(type)) {
        if (get_ref(n, buf, &j, ref) < 0) return -1;
        *idx = j;
        return 0;
    }
    if (type != ERL_LIST_EXT) return -1;
    int k = j;
    if (decode_alias_ref(n, buf, &k, ref) == 0) { /* [alias|Ref] */
        if (aliased) *aliased = 1;
        *idx = k;
        return 0;
    }
    if (ei_decode_list_header(buf, &j, &size) < 0 || size != 1 ||
        ei_get_type(buf, &j, &type, &size) < 0)
        return -1;
    if (type == ERL_LIST_EXT) {
        if (decode_alias_ref(n, buf, &j, ref) < 0) return -1;
        if (aliased) *aliased = 1;
    } else if (!is_ref_type(type) || get_ref(n, buf, &j, ref) < 0) {
        return -1;
    }
    char tp[BL_TRACEPARENT_LEN + 8];
    long len;
    if (ei_get_type(buf, &j, &type, &size) < 0 || type != ERL_BINARY_EXT ||
        (size_t)size >= sizeof(tp) || ei_decode_binary(buf, &j, tp, &len) < 0)
        return -1;
    if (trace) bl_trace_parse(tp, (size_t)len, trace); /* a bad one: no trace, the call stands */
    *idx = j;
    return 0;
}

static int decode_tag(bl_node *n, const char *buf, int *idx, bl__ref *ref)
{
    return decode_tag_trace(n, buf, idx, ref, NULL, NULL);
}

int bl__tag_trace(const char *tag, int len, bl_trace *out)
{
    bl__ref ref;
    int i = 0;
    out->valid = 0;
    return decode_tag_trace(NULL, tag, &i, &ref, out, NULL) == 0 && i == len && out->valid;
}

static bl_pcall *find_call(bl_proc *p, const bl__ref *ref)
{
    unsigned key[3];
    call_key(ref, key);
    bl_pcall *c = NULL;
    HASH_FIND(hh, p->calls, key, sizeof(key), c);
    return c && bl__ref_equal(&c->ref, ref) ? c : NULL;
}

/* ---- the call table ---- */

static void demonitor(bl_node *n, bl_pcall *c)
{
    bl_ctl d = {.op = BL_CTL_DEMONITOR_P, .from = c->p->pid, .ref = c->ref};
    if (c->kind == PCALL_ERPC) { /* the monitor the peer set up for our spawn_request */
        if (!c->spawn_replied) return;
        d.to = c->spawned;
    } else if (!c->monitored) {
        return;
    } else if (c->target_is_pid) {
        d.to = c->target;
    } else {
        d.has_toname = 1;
        snprintf(d.toname, sizeof(d.toname), "%s", c->target_name);
    }
    (void)bl_send_ctl(n, c->node, &d, NULL, 0);
}

/* Out of every table; the timer stopped. */
static void pcall_finish(bl_pcall *c)
{
    bl_proc *p = c->p;
    ev_timer_stop(p->n->loop, &c->timer);
    HASH_DEL(p->calls, c);
    if (c->aliased) {
        HASH_DELETE(ah, p->n->aliases, c);
        c->aliased = 0;
    }
}

void bl_pcall_free(bl_pcall *c)
{
    free(c->pend);
    free(c);
}

static void call_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_pcall_complete(w->data, BL_ETIMEOUT, NULL, 0);
}

bl_pcall *bl_pcall_new(bl_proc *p, const char *node, bl_pcall_kind kind, bl_call_cb cb, void *ud)
{
    bl_pcall *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->p = p;
    c->cb = cb;
    c->ud = ud;
    c->kind = kind;
    snprintf(c->node, sizeof(c->node), "%s", node);
    bl__ref_make(p->n, &c->ref);
    call_key(&c->ref, c->key);
    c->trace = p->n->ctx.trace; /* the callback runs under the trace the call was made in */
    return c;
}

void bl_pcall_arm(bl_pcall *c, unsigned timeout_ms)
{
    bl_proc *p = c->p;
    HASH_ADD(hh, p->calls, key, sizeof(c->key), c);
    ev_timer_init(&c->timer, call_timeout_cb, timeout_ms / 1000.0, 0);
    c->timer.data = c;
    ev_timer_start(p->n->loop, &c->timer);
}

void bl_pcall_complete(bl_pcall *c, int status, const char *buf, int index)
{
    bl_proc *p = c->p;
    pcall_finish(c);
    if (status != BL_ENODEDOWN && !c->pending) demonitor(p->n, c);
    bl_trace saved = p->n->ctx.trace;
    if (c->trace.valid) p->n->ctx.trace = c->trace;
    c->cb(p, status, buf, index, c->ud);
    p->n->ctx.trace = saved;
    bl_pcall_free(c);
}

/* ---- serving ---- */

/* A reply {Tag, Reply} to one of our gen/rex calls? */
static int try_reply(bl_proc *p, const bl_msg *m, int idx)
{
    bl__ref ref;
    if (!p->calls || decode_tag(p->n, m->buf, &idx, &ref) < 0) return 0;
    bl_pcall *c = find_call(p, &ref);
    if (!c || c->kind == PCALL_ERPC || c->pending) return 0;
    if (c->kind == PCALL_ERPC_REX) {
        bl_erpc_rex_reply(c, m->buf, idx);
        return 1;
    }
    int status = 0;
    if (c->kind == PCALL_REX) { /* {badrpc, Reason} */
        int j = idx, ar;
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_tuple_header(m->buf, &j, &ar) == 0 && ar == 2 &&
            get_atom(m->buf, &j, a) == 0 && strcmp(a, "badrpc") == 0) {
            status = BL_EBADRPC;
            idx = j;
        }
    }
    bl_pcall_complete(c, status, m->buf, idx);
    return 1;
}

/* A traced call reaches a C process: a debug line, and a trace event when it is sampled. */
static void trace_served(bl_proc *p, const bl_from *from, const char *buf, int j)
{
    if (p->n->cfg.log_level < BL_LOG_DEBUG && !bl_trace_sampled(p->n)) return;
    char req[MAXATOMLEN_UTF8] = "", who[64];
    int k = j, ar;
    if (get_atom(buf, &k, req) < 0) { /* {Atom, ...}: its atom names the request */
        k = j;
        if (ei_decode_tuple_header(buf, &k, &ar) < 0 || ar < 1 || get_atom(buf, &k, req) < 0)
            req[0] = 0;
    }
    if (p->reg)
        snprintf(who, sizeof(who), "%s", p->reg->name);
    else
        snprintf(who, sizeof(who), "<%u.%u>", p->pid.num, p->pid.serial);
    bl_log(p->n, BL_LOG_DEBUG, "call to %s from %s (request %s)", who, bl_pid_node(&from->pid),
           req[0] ? req : "-");
    if (!bl_trace_sampled(p->n)) return;
    json_t *d =
        json_pack("{s:s, s:s, s:s}", "process", who, "caller_node", from->pid.node, "request", req);
    char *txt = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    bl_trace_event(p->n, "call", txt);
    free(txt);
    json_decref(d);
}

int bl_gen_try_dispatch(bl_proc *p, const bl_msg *m)
{
    const char *buf = m->buf;
    int idx = m->index, arity;
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0) return 0;
    if (arity == 2 && try_reply(p, m, idx)) return 1;
    char tag[MAXATOMLEN_UTF8];
    int j = idx;
    if (get_atom(buf, &j, tag) < 0) return 0;
    if (arity == 3 && strcmp(tag, "$gen_call") == 0 && p->ops.on_call) {
        bl_from from;
        int fa;
        if (ei_decode_tuple_header(buf, &j, &fa) < 0 || fa != 2) return 0;
        if (bl_decode_pid(p->n, buf, &j, &from.pid) < 0) return 0;
        from.server = p->pid;
        int tstart = j;
        if (bl__skip_term(buf, &j) < 0 || j - tstart > BL_TAG_MAX) return 0;
        from.tag_len = j - tstart;
        memcpy(from.tag, buf + tstart, (size_t)from.tag_len);
        bl_trace caller;
        if (bl__tag_trace(from.tag, from.tag_len, &caller)) { /* this hop: a child span */
            bl_trace_child(&caller, &p->n->ctx.trace);
            trace_served(p, &from, buf, j);
        }
        ei_x_buff reply;
        if (ei_x_new(&reply) < 0) return 1;
        int rc = p->ops.on_call(p, &from, buf, j, &reply, p->ud);
        if (rc == 0) {
            int sr = bl_reply(p->n, &from, reply.buff, reply.index);
            if (sr != BL_OK)
                bl_log(p->n, BL_LOG_WARN, "reply to %s failed: %s", bl_pid_node(&from.pid),
                       bl_strerror(sr));
        }
        ei_x_free(&reply);
        return 1;
    }
    if (arity == 2 && strcmp(tag, "$gen_cast") == 0 && p->ops.on_cast) {
        p->ops.on_cast(p, buf, j, p->ud);
        return 1;
    }
    return 0;
}

int bl_reply(bl_node *n, const bl_from *from, const char *reply, int len)
{
    if (!from || from->tag_len <= 0 || from->tag_len > BL_TAG_MAX || !reply || len <= 0)
        return BL_EINVAL;
    /* {Tag, Reply} once, into the runtime's message buffer; the distribution layer encodes it
     * from there straight into the connection's send queue (no buffer of its own per reply) */
    ei_x_buff *xp = &n->scratch2;
    xp->index = 0;
    if (ei_x_encode_version(xp) < 0 || ei_x_encode_tuple_header(xp, 2) < 0 ||
        ei_x_append_buf(xp, from->tag, from->tag_len) < 0 || ei_x_append_buf(xp, reply, len) < 0)
        return BL_ENOMEM;
    const ei_x_buff x = *xp;
    bl__ref alias;
    int ti = 0, rc, aliased = 0;
    /* [alias|Ref] to a node that knows aliases: to the alias, as OTP's gen:reply does */
    if (!bl__pid_is_local(n, &from->pid) && (unsigned char)from->tag[0] == ERL_LIST_EXT &&
        decode_tag_trace(n, from->tag, &ti, &alias, NULL, &aliased) == 0 && aliased &&
        (bl_conn_peer_flags(n, bl_pid_node(&from->pid)) & BL_DFLAG_ALIAS)) {
        bl_proc *sp = from->server.node ? bl_proc_by_pid(n, &from->server) : NULL;
        if (!sp) sp = bl_whereis(n, "net_kernel"); /* a bl_from built by hand: any local pid */
        rc = bl__send_alias(n, sp ? &sp->pid : &from->server, &alias, bl_pid_node(&from->pid),
                            x.buff, x.index);
    } else {
        rc = bl_send_msg(n, &from->pid, x.buff, x.index);
    }
    return rc;
}

/* ---- calling ---- */

/* Send Msg (with version byte) to a pid or {name, node} from p. */
static int send_dest(bl_proc *p, const bl_pid *to_pid, const char *name, const char *node,
                     const char *msg, int len)
{
    if (to_pid) return bl_send(p, to_pid, msg, len);
    return bl_send_name(p, name, node, msg, len);
}

int bl_pcall_send_gen(bl_pcall *c, const bl_pid *to_pid, const char *name, const char *req,
                      int reqlen)
{
    bl_proc *p = c->p;
    bl_node *n = p->n;
    int local = bl_is_local_node(n, c->node);
    if (to_pid) {
        c->target = *to_pid;
        c->target_is_pid = 1;
    } else {
        snprintf(c->target_name, sizeof(c->target_name), "%s", name);
    }
    if (!local) { /* monitor first: the MONITOR_P_EXIT for a missing server comes back at once */
        bl_ctl mon = {.op = BL_CTL_MONITOR_P, .from = p->pid, .ref = c->ref};
        if (to_pid) {
            mon.to = *to_pid;
        } else {
            mon.has_toname = 1;
            snprintf(mon.toname, sizeof(mon.toname), "%s", name);
        }
        int rc = bl_send_ctl(n, c->node, &mon, NULL, 0);
        if (rc != BL_OK) return rc;
        c->monitored = 1;
        if (bl_conn_peer_flags(n, c->node) & BL_DFLAG_ALIAS) {
            HASH_ADD(ah, n->aliases, key, sizeof(c->key), c);
            c->aliased = 1;
        }
    }

    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "$gen_call");
    ei_x_encode_tuple_header(&x, 2);
    bl_x_encode_pid(&x, &p->pid);
    char tp[BL_TRACEPARENT_LEN];
    int traced = bl_trace_format(&n->ctx.trace, tp, sizeof(tp)) == BL_OK;
    if (traced) ei_x_encode_list_header(&x, 1); /* [Tag | <<Traceparent>>] */
    if (c->aliased) {
        ei_x_encode_list_header(&x, 1);
        ei_x_encode_atom(&x, "alias");
    }
    bl__x_encode_ref(&x, &c->ref);
    if (traced) ei_x_encode_binary(&x, tp, (long)strlen(tp));
    ei_x_append_buf(&x, req, reqlen);
    int rc = send_dest(p, to_pid, name, local ? NULL : c->node, x.buff, x.index);
    ei_x_free(&x);
    if (rc != BL_OK) {
        demonitor(n, c);
        c->monitored = 0;
        if (c->aliased) {
            HASH_DELETE(ah, n->aliases, c);
            c->aliased = 0;
        }
    }
    return rc;
}

static int start_call(bl_proc *p, const bl_pid *to_pid, const char *name, const char *node,
                      const char *req, int reqlen, unsigned timeout_ms, bl_call_cb cb, void *ud,
                      bl_pcall_kind kind)
{
    bl_node *n = p->n;
    if (p->dead) return BL_ENOPROC;
    if (!cb || !req || reqlen <= 0 || (!to_pid && (!name || !name[0]))) return BL_EINVAL;
    if (!to_pid && name && strlen(name) >= BL_NAME_LEN) return BL_EINVAL;
    const char *tnode = to_pid ? bl_pid_node(to_pid) : (node ? node : n->name);
    int local = bl_is_local_node(n, tnode);
    if (local && !(to_pid ? bl_proc_by_pid(n, to_pid) : bl_whereis(n, name))) return BL_ENOPROC;

    bl_pcall *c = bl_pcall_new(p, tnode, kind, cb, ud);
    if (!c) return BL_ENOMEM;
    int rc = bl_pcall_send_gen(c, to_pid, name, req, reqlen);
    if (rc != BL_OK) {
        bl_pcall_free(c);
        return rc;
    }
    bl_pcall_arm(c, timeout_ms);
    return BL_OK;
}

int bl_call(bl_proc *p, const bl_pid *to_pid, const char *name, const char *node, const char *req,
            int reqlen, unsigned timeout_ms, bl_call_cb cb, void *ud)
{
    return start_call(p, to_pid, name, node, req, reqlen, timeout_ms, cb, ud, PCALL_GEN);
}

int bl_cast(bl_proc *p, const bl_pid *to_pid, const char *name, const char *node, const char *req,
            int reqlen)
{
    if (!req || reqlen <= 0) return BL_EINVAL;
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "$gen_cast");
    ei_x_append_buf(&x, req, reqlen);
    int rc = send_dest(p, to_pid, name, node, x.buff, x.index);
    ei_x_free(&x);
    return rc;
}

int bl_rpc(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
           int argslen, unsigned timeout_ms, bl_call_cb cb, void *ud)
{
    if (!mod || !fun || !args || argslen <= 0) return BL_EINVAL;
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, "call");
    ei_x_encode_atom(&x, mod);
    ei_x_encode_atom(&x, fun);
    ei_x_append_buf(&x, args, argslen);
    ei_x_encode_atom(&x, "user");
    int rc = start_call(p, NULL, "rex", node, x.buff, x.index, timeout_ms, cb, ud, PCALL_REX);
    ei_x_free(&x);
    return rc;
}

typedef struct {
    bl_call_cb cb;
    void *ud;
} ping_ctx;

static void ping_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    ping_ctx *pc = ud;
    char a[MAXATOMLEN_UTF8];
    if (status == 0 && !(get_atom(buf, &index, a) == 0 && strcmp(a, "yes") == 0))
        status = BL_EINVAL;
    pc->cb(p, status, NULL, 0, pc->ud);
    free(pc);
}

int bl_ping(bl_proc *p, const char *node, unsigned timeout_ms, bl_call_cb cb, void *ud)
{
    if (!node || !cb) return BL_EINVAL;
    ping_ctx *pc = malloc(sizeof(*pc));
    if (!pc) return BL_ENOMEM;
    pc->cb = cb;
    pc->ud = ud;
    char req[BL_NODE_LEN + 64];
    int i = 0;
    ei_encode_tuple_header(req, &i, 2);
    ei_encode_atom(req, &i, "is_auth");
    ei_encode_atom(req, &i, p->n->name);
    int rc = start_call(p, NULL, "net_kernel", node, req, i, timeout_ms, ping_done, pc, PCALL_GEN);
    if (rc != BL_OK) free(pc);
    return rc;
}

/* ---- completing calls from outside ---- */

void bl_calls_node_down(bl_node *n, const char *node)
{
    bl_proc *p, *pt;
    HASH_ITER(hh, n->procs, p, pt)
    {
        bl_pcall *c, *ct;
        HASH_ITER(hh, p->calls, c, ct)
        {
            if (strcmp(c->node, node) != 0) continue;
            bl_pcall_complete(c, BL_ENODEDOWN, NULL, 0);
            if (p->dead) break; /* the callback ended the process; its calls are gone */
        }
    }
}

void bl_calls_monitor_exit(bl_node *n, const bl_ctl *ctl, const char *payload)
{
    bl_proc *p = bl_proc_by_pid(n, &ctl->to);
    if (!p) return;
    bl_pcall *c = find_call(p, &ctl->ref);
    if (!c || c->pending) return;
    c->monitored = 0; /* the monitor fired: nothing to demonitor */
    if (c->kind == PCALL_ERPC) {
        c->spawn_replied = 0;
        bl_erpc_down(c, payload, (int)ctl->reason_off);
        return;
    }
    char a[MAXATOMLEN_UTF8];
    int i = (int)ctl->reason_off;
    int status =
        get_atom(payload, &i, a) == 0 && strcmp(a, "noconnection") == 0 ? BL_ENODEDOWN : BL_ENOPROC;
    bl_pcall_complete(c, status, payload, (int)ctl->reason_off);
}

void bl_calls_spawn_reply(bl_node *n, const bl_ctl *ctl)
{
    bl_proc *p = bl_proc_by_pid(n, &ctl->to);
    bl_pcall *c = p ? find_call(p, &ctl->ref) : NULL;
    if (!c || c->kind != PCALL_ERPC || c->spawn_replied) {
        /* abandoned (timed out, or the parent ended): undo what the peer set up, like BEAM */
        if (ctl->has_from && (ctl->spawn_flags & BL_SPAWN_FLAG_MONITOR)) {
            bl_ctl d = {
                .op = BL_CTL_DEMONITOR_P, .from = ctl->to, .to = ctl->from, .ref = ctl->ref};
            (void)bl_send_ctl(n, bl_pid_node(&ctl->from), &d, NULL, 0);
        }
        return;
    }
    if (!ctl->has_from) { /* {31, ReqId, To, Flags, ErrorAtom} */
        char buf[MAXATOMLEN_UTF8 + 8];
        int i = 0;
        ei_encode_atom(buf, &i, ctl->toname);
        bl_pcall_complete(c, BL_EBADRPC, buf, 0);
        return;
    }
    c->spawned = ctl->from;
    c->spawn_replied = 1;
}

void bl_alias_deliver(bl_node *n, const char *from_node, const bl_ctl *ctl, const char *payload)
{
    unsigned key[3];
    call_key(&ctl->ref, key);
    bl_pcall *c = NULL;
    HASH_FIND(ah, n->aliases, key, sizeof(key), c);
    if (!c || !bl__ref_equal(&c->ref, &ctl->ref)) {
        bl_log(n, BL_LOG_DEBUG, "message from %s to an inactive alias dropped", from_node);
        return;
    }
    bl_msg m;
    m.buf = payload;
    m.index = (int)ctl->msg_off;
    m.len = (int)ctl->msg_end;
    m.has_sender = ctl->has_from;
    if (ctl->has_from) m.sender = ctl->from;
    bl_seqtok tok;
    int has_tok =
        ctl->has_token && bl__seqtok_decode(payload, ctl->token_off, ctl->token_len, &tok) == 0;
    bl_proc_deliver_ctx(c->p, &m, NULL, has_tok ? &tok : NULL);
}

void bl_calls_free(bl_proc *p)
{
    bl_pcall *c, *t;
    HASH_ITER(hh, p->calls, c, t)
    {
        pcall_finish(c);
        if (!c->pending) demonitor(p->n, c);
        bl_pcall_free(c);
    }
}
