/* proc.c - processes: the pid table, registered names, message routing, links, exit signals,
 * monitors of local processes, and monitors a local process holds on remote ones (a service
 * freeing what a remote watcher held when it ends, bl__monitor_pid).
 *
 * A process is a handler table plus state; it runs only when a message or signal arrives. Messages
 * between local processes go through a queue drained between loop iterations, so handlers never
 * re-enter each other. A process that ends is unlinked from every table at once and freed after
 * the current handler returns. */
#include "internal.h"
#include "../dist/term.h"

#include <stdlib.h>
#include <string.h>

static void proc_terminate(bl_proc *p, const char *reason, int rlen);

bl_proc *bl_proc_by_pid(bl_node *n, const bl_pid *pid)
{
    bl_proc *p = NULL;
    unsigned num = pid->num;
    HASH_FIND_INT(n->procs, &num, p);
    if (p && bl_pid_equal(&p->pid, pid)) return p;
    return NULL;
}

bl_proc *bl_whereis(bl_node *n, const char *name)
{
    bl_regname *r = NULL;
    HASH_FIND_STR(n->names, name, r);
    return r ? r->p : NULL;
}

const bl_pid *bl_self(const bl_proc *p)
{
    return &p->pid;
}
bl_node *bl_proc_node(const bl_proc *p)
{
    return p->n;
}
void *bl_proc_data(const bl_proc *p)
{
    return p->ud;
}
void bl_trap_exit(bl_proc *p, int on)
{
    p->trap_exit = on;
}

int bl_register(bl_proc *p, const char *name)
{
    if (!name || !name[0] || strlen(name) >= BL_NAME_LEN || p->dead) return BL_EINVAL;
    if (p->reg) return BL_EEXIST;
    if (bl_whereis(p->n, name)) return BL_EEXIST;
    bl_regname *r = calloc(1, sizeof(*r));
    if (!r) return BL_ENOMEM;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->p = p;
    HASH_ADD_STR(p->n->names, name, r);
    p->reg = r;
    return BL_OK;
}

int bl_spawn(bl_node *n, const char *name, const bl_proc_ops *ops, void *ud, bl_proc **out)
{
    if (name && bl_whereis(n, name)) return BL_EEXIST;
    if (HASH_COUNT(n->procs) >= 0x7fff * 8) return BL_ENOMEM;
    bl_proc *p = calloc(1, sizeof(*p));
    if (!p) return BL_ENOMEM;
    p->n = n;
    if (ops) p->ops = *ops;
    p->ud = ud;
    /* num in 1..0x7fff, serial bumped on wrap; skip numbers still in use */
    for (;;) {
        unsigned num = n->next_pid_num++;
        if (n->next_pid_num > 0x7fff) {
            n->next_pid_num = 1;
            n->next_pid_serial = (n->next_pid_serial + 1) & 0x1fff;
        }
        bl_proc *used = NULL;
        HASH_FIND_INT(n->procs, &num, used);
        if (!used) {
            p->pid.num = num;
            break;
        }
    }
    p->pid.node = n->self_name; /* pinned: its generation never moves */
    p->pid.gen = 0;
    p->pid.serial = n->next_pid_serial;
    p->pid.creation = n->creation;
    HASH_ADD(hh, n->procs, pid.num, sizeof(unsigned), p);
    if (name && bl_register(p, name) != BL_OK) {
        HASH_DEL(n->procs, p);
        free(p); /* not registered: no p->reg */
        return BL_EINVAL;
    }
    if (out) *out = p;
    return BL_OK;
}

/* ---- sending ---- */

static int check_msg(const char *msg, int len)
{
    if (!msg || len < 2 || (unsigned char)msg[0] != 131) return BL_EINVAL;
    size_t i = 1;
    if (bl_term_check(msg, (size_t)len, &i) != 0 || i != (size_t)len) return BL_EINVAL;
    return BL_OK;
}

static int local_enqueue(bl_node *n, int kind, const bl_pid *to, const char *toname,
                         const bl_pid *sender, const char *data, int len)
{
    bl_seqtok tok;
    int has_tok = kind == LOCAL_MSG && bl__seqtok_for_local(n, &tok);
    size_t extra = has_tok ? (size_t)tok.fl_len : 0;
    bl_localmsg *m = malloc(sizeof(*m) + (size_t)len + extra);
    if (!m) return BL_ENOMEM;
    m->next = NULL;
    m->kind = kind;
    if (to) m->to = *to;
    m->toname[0] = 0;
    if (toname) snprintf(m->toname, sizeof(m->toname), "%s", toname);
    m->has_sender = sender != NULL;
    if (sender) m->sender = *sender;
    /* a message sent under a trace carries it to its receiver */
    if (kind == LOCAL_MSG && n->ctx.trace.valid)
        m->trace = n->ctx.trace;
    else
        m->trace.valid = 0;
    m->tok_fl_len = has_tok ? tok.fl_len : 0;
    m->tok_serial = has_tok ? tok.serial : 0;
    m->len = len;
    memcpy(m->data, data, (size_t)len);
    if (has_tok) memcpy(m->data + len, tok.fl, extra);
    if (n->localq_tail)
        n->localq_tail->next = m;
    else
        n->localq_head = m;
    n->localq_tail = m;
    ev_idle_start(n->loop, &n->idle);
    return BL_OK;
}

/* The seq_trace token to send with a message now, encoded into *tok (allocated; free with
 * ei_x_free when 1 is returned). 0: none is current. */
static int token_for_send(bl_node *n, const bl_pid *sender, ei_x_buff *tok)
{
    if (!n->ctx.tok.valid || ei_x_new(tok) < 0) return 0;
    if (bl__seqtok_encode_send(n, sender, tok) != 1) {
        ei_x_free(tok);
        return 0;
    }
    return 1;
}

/* Send a message (with version byte) to a pid, from a local process (SEND_SENDER, as BEAM sends
 * to peers that take it) or from the runtime (from NULL: SEND). checked: the message is known to
 * be well formed; otherwise the distribution layer validates it on the walk it makes anyway (its
 * atom cache plan), so a message to a remote pid is walked once. A seq_trace token current now
 * goes with it (SEND_TT; runtime/seqtrace.c). */
static int send_to_pid(bl_node *n, const bl_pid *from, const bl_pid *to, const char *msg, int len,
                       int checked)
{
    if (bl__pid_is_local(n, to)) {
        int rc = checked ? BL_OK : check_msg(msg, len);
        return rc != BL_OK ? rc : local_enqueue(n, LOCAL_MSG, to, NULL, from, msg, len);
    }
    if (bl__pid_stale(to)) return BL_ENODEDOWN; /* its node was forgotten (runtime/intern.c) */
    ei_x_buff tok;
    if (token_for_send(n, from, &tok)) { /* {12, '', To, Token} (SEND_TT: any peer takes it) */
        bl_ctl c = {
            .op = BL_CTL_SEND_TT, .to = *to, .token_enc = tok.buff, .token_enc_len = tok.index};
        int rc =
            bl_ctl_encode(&n->scratch, &c, NULL, 0) < 0
                ? BL_EINVAL
                : bl_conn_send_frame(n, bl_pid_node(to), msg, len, checked ? 0 : BL_SEND_CHECK);
        ei_x_free(&tok);
        return rc;
    }
    if (from && !(bl_conn_peer_flags(n, bl_pid_node(to)) & BL_DFLAG_SEND_SENDER)) from = NULL;
    /* {2, '', To} or {22, From, To} encoded directly: the hot path skips building a bl_ctl */
    ei_x_buff *x = &n->scratch;
    x->index = 0;
    if (ei_x_encode_version(x) < 0 || ei_x_encode_tuple_header(x, 3) < 0 ||
        ei_x_encode_long(x, from ? BL_CTL_SEND_SENDER : BL_CTL_SEND) < 0 ||
        (from ? bl_x_encode_pid(x, from) : ei_x_encode_atom(x, "")) < 0 ||
        bl_x_encode_pid(x, to) < 0)
        return BL_EINVAL;
    return bl_conn_send_frame(n, bl_pid_node(to), msg, len, checked ? 0 : BL_SEND_CHECK);
}

int bl_send(bl_proc *from, const bl_pid *to, const char *msg, int len)
{
    if (!msg || len < 2 || (unsigned char)msg[0] != 131) return BL_EINVAL;
    if (from->dead) return BL_ENOPROC;
    return send_to_pid(from->n, &from->pid, to, msg, len, 0);
}

int bl_send_name(bl_proc *from, const char *name, const char *node, const char *msg, int len)
{
    int rc = check_msg(msg, len);
    if (rc != BL_OK) return rc;
    if (!name || !name[0] || strlen(name) >= BL_NAME_LEN) return BL_EINVAL;
    bl_node *n = from->n;
    if (!node || bl_is_local_node(n, node)) { /* like BEAM's badarg for Name ! Msg */
        if (!bl_whereis(n, name)) return BL_ENOPROC;
        return local_enqueue(n, LOCAL_MSG, NULL, name, &from->pid, msg, len);
    }
    ei_x_buff tok;
    int has_tok = token_for_send(n, &from->pid, &tok);
    bl_ctl c = {.op = has_tok ? BL_CTL_REG_SEND_TT : BL_CTL_REG_SEND, .from = from->pid};
    if (has_tok) c.token_enc = tok.buff, c.token_enc_len = tok.index;
    snprintf(c.toname, sizeof(c.toname), "%s", name);
    rc = bl_ctl_encode(&n->scratch, &c, NULL, 0) < 0 ? BL_EINVAL
                                                     : bl_conn_send_frame(n, node, msg, len, 0);
    if (has_tok) ei_x_free(&tok);
    return rc;
}

int bl__send_alias(bl_node *n, const bl_pid *from, const bl__ref *alias, const char *node,
                   const char *msg, int len)
{
    ei_x_buff tok;
    int has_tok = token_for_send(n, from, &tok);
    bl_ctl c = {
        .op = has_tok ? BL_CTL_ALIAS_SEND_TT : BL_CTL_ALIAS_SEND, .ref = *alias, .from = *from};
    if (has_tok) c.token_enc = tok.buff, c.token_enc_len = tok.index;
    int rc = bl_ctl_encode(&n->scratch, &c, NULL, 0) < 0 ? BL_EINVAL
                                                         : bl_conn_send_frame(n, node, msg, len, 0);
    if (has_tok) ei_x_free(&tok);
    return rc;
}

int bl_send_msg(bl_node *n, const bl_pid *to, const char *msg, int len)
{
    return send_to_pid(n, NULL, to, msg, len, 1);
}

/* Internal: any term body (no version byte) to a pid, from the runtime. */
int bl_send_body(bl_node *n, const bl_pid *to, const char *body, int len)
{
    ei_x_buff *x = &n->scratch2;
    x->index = 0;
    if (ei_x_encode_version(x) < 0 || ei_x_append_buf(x, body, len) < 0) return BL_ENOMEM;
    return send_to_pid(n, NULL, to, x->buff, x->index, 1);
}

/* ---- control signals out ---- */

int bl_send_ctl(bl_node *n, const char *node, const bl_ctl *c, const char *reason, int rlen)
{
    if (!node || !*node) return BL_ENODEDOWN; /* a stale pid's node (runtime/intern.c) */
    if (bl_ctl_encode(&n->scratch, c, reason, rlen) < 0) return BL_EINVAL;
    return bl_conn_send_frame(n, node, NULL, 0, 0);
}
#define send_ctl bl_send_ctl

/* EXIT or MONITOR_P_EXIT: as the PAYLOAD_ variant (the reason after the control tuple, where a
 * large reason such as an erpc result can be fragmented) when the peer supports EXIT_PAYLOAD. */
static int send_exit_ctl(bl_node *n, const char *node, bl_ctl *c, const char *reason, int rlen)
{
    if (!(bl_conn_peer_flags(n, node) & BL_DFLAG_EXIT_PAYLOAD))
        return send_ctl(n, node, c, reason, rlen);
    c->op = c->op == BL_CTL_EXIT ? BL_CTL_PAYLOAD_EXIT : BL_CTL_PAYLOAD_MONITOR_P_EXIT;
    if (bl_ctl_encode(&n->scratch, c, NULL, 0) < 0) return BL_EINVAL;
    ei_x_buff *x = &n->scratch2;
    x->index = 0;
    if (ei_x_encode_version(x) < 0 || ei_x_append_buf(x, reason, rlen) < 0) return BL_ENOMEM;
    return bl_conn_send_frame(n, node, x->buff, x->index, 0);
}

static void encode_atom_body(ei_x_buff *x, const char *atom)
{
    x->index = 0;
    ei_x_encode_atom(x, atom);
}

/* ---- links ---- */

static bl_linkent *find_link(bl_proc *p, const bl_pid *pid)
{
    bl_linkent *l;
    LL_FOREACH(p->links, l) if (bl_pid_equal(&l->pid, pid)) return l;
    return NULL;
}

static int add_link(bl_proc *p, const bl_pid *pid)
{
    if (find_link(p, pid)) return 0;
    bl_linkent *l = calloc(1, sizeof(*l));
    if (!l) return -1;
    l->pid = *pid;
    LL_PREPEND(p->links, l);
    return 1;
}

int bl_proc_add_link(bl_proc *p, const bl_pid *pid)
{
    return add_link(p, pid) < 0 ? BL_ENOMEM : BL_OK;
}

int bl_proc_add_monitor(bl_proc *p, const bl_pid *watcher, const bl__ref *ref, int by_name)
{
    bl_pmon *m = calloc(1, sizeof(*m));
    if (!m) return BL_ENOMEM;
    m->watcher = *watcher;
    m->ref = *ref;
    m->by_name = by_name;
    LL_PREPEND(p->monitors, m);
    return BL_OK;
}

/* ---- monitors of remote processes (bl__monitor_pid) ---- */

static bl_pmon_out *find_monitoring(bl_proc *p, const bl_pid *pid)
{
    bl_pmon_out *m;
    LL_FOREACH(p->monitoring, m) if (bl_pid_equal(&m->pid, pid)) return m;
    return NULL;
}

int bl__monitor_pid(bl_proc *p, const bl_pid *pid, bl__down_cb cb, void *ud)
{
    bl_node *n = p->n;
    if (p->dead || !pid->node || bl__pid_is_local(n, pid) || !cb) return BL_EINVAL;
    bl_pmon_out *m = find_monitoring(p, pid);
    if (m) {
        m->cb = cb;
        m->ud = ud;
        return BL_OK;
    }
    if (!(m = calloc(1, sizeof(*m)))) return BL_ENOMEM;
    m->pid = *pid;
    bl__ref_make(n, &m->ref);
    bl_ctl c = {.op = BL_CTL_MONITOR_P, .from = p->pid, .to = *pid, .ref = m->ref};
    int rc = send_ctl(n, bl_pid_node(pid), &c, NULL, 0);
    if (rc != BL_OK) {
        free(m);
        return rc;
    }
    m->cb = cb;
    m->ud = ud;
    LL_PREPEND(p->monitoring, m);
    return BL_OK;
}

void bl__demonitor_pid(bl_proc *p, const bl_pid *pid)
{
    bl_pmon_out *m = find_monitoring(p, pid);
    if (!m) return;
    bl_ctl c = {.op = BL_CTL_DEMONITOR_P, .from = p->pid, .to = m->pid, .ref = m->ref};
    (void)send_ctl(p->n, bl_pid_node(&m->pid), &c, NULL, 0);
    LL_DELETE(p->monitoring, m);
    free(m);
}

/* MONITOR_P_EXIT for one of them: 1 if it was (its callback ran), 0 if not ours. */
static int monitoring_fired(bl_node *n, const bl_ctl *ctl, const char *payload)
{
    bl_proc *p = bl_proc_by_pid(n, &ctl->to);
    if (!p || p->dead) return 0;
    bl_pmon_out *m;
    LL_FOREACH(p->monitoring, m)
    {
        if (!bl__ref_equal(&m->ref, &ctl->ref)) continue;
        bl_pmon_out fired = *m;
        LL_DELETE(p->monitoring, m);
        free(m);
        fired.cb(p, &fired.pid, payload, (int)ctl->reason_off, fired.ud);
        return 1;
    }
    return 0;
}

static void remove_link(bl_proc *p, const bl_pid *pid)
{
    bl_linkent *l = find_link(p, pid);
    if (l) {
        LL_DELETE(p->links, l);
        free(l);
    }
}

int bl_link(bl_proc *p, const bl_pid *to)
{
    bl_node *n = p->n;
    if (p->dead) return BL_ENOPROC;
    if (bl_pid_equal(to, &p->pid)) return BL_OK;
    if (bl__pid_is_local(n, to)) {
        bl_proc *q = bl_proc_by_pid(n, to);
        ei_x_buff r;
        if (!q) { /* like BEAM: linking to a dead process gives an exit signal noproc */
            ei_x_new(&r);
            ei_x_encode_atom(&r, "noproc");
            local_enqueue(n, LOCAL_EXIT, &p->pid, NULL, to, r.buff, r.index);
            ei_x_free(&r);
            return BL_OK;
        }
        if (add_link(p, to) < 0 || add_link(q, &p->pid) < 0) return BL_ENOMEM;
        return BL_OK;
    }
    int added = add_link(p, to);
    if (added < 0) return BL_ENOMEM;
    if (!added) return BL_OK;
    bl_ctl c = {.op = BL_CTL_LINK, .from = p->pid, .to = *to};
    int rc = send_ctl(n, bl_pid_node(to), &c, NULL, 0);
    if (rc == BL_ENODEDOWN) { /* like BEAM: noconnection exit signal */
        ei_x_buff r;
        ei_x_new(&r);
        ei_x_encode_atom(&r, "noconnection");
        local_enqueue(n, LOCAL_EXIT, &p->pid, NULL, to, r.buff, r.index);
        ei_x_free(&r);
        return BL_OK;
    }
    return rc;
}

int bl_unlink(bl_proc *p, const bl_pid *to)
{
    bl_node *n = p->n;
    if (!find_link(p, to)) return BL_OK;
    remove_link(p, to);
    if (bl__pid_is_local(n, to)) {
        bl_proc *q = bl_proc_by_pid(n, to);
        if (q) remove_link(q, &p->pid);
        return BL_OK;
    }
    bl_ctl c = {.op = BL_CTL_UNLINK_ID, .from = p->pid, .to = *to};
    c.unlink_id = ++n->unlink_seq;
    int rc = send_ctl(n, bl_pid_node(to), &c, NULL, 0);
    return rc == BL_ENODEDOWN ? BL_OK : rc;
}

/* ---- exits ---- */

static int reason_is_atom(const char *buf, int len, const char *atom)
{
    char a[MAXATOMLEN_UTF8];
    int i = 0;
    (void)len;
    return ei_decode_atom(buf, &i, a) == 0 && strcmp(a, atom) == 0;
}

void bl_proc_signal_exit(bl_proc *p, const bl_pid *from, const char *reason, int rlen, int is_exit2)
{
    if (p->dead) return;
    bl_node *n = p->n;
    if (is_exit2 && reason_is_atom(reason, rlen, "kill")) {
        ei_x_buff *x = &n->scratch2;
        encode_atom_body(x, "killed");
        char tmp[16];
        memcpy(tmp, x->buff, (size_t)x->index);
        proc_terminate(p, tmp, x->index);
        return;
    }
    if (!is_exit2) remove_link(p, from);
    if (p->trap_exit) {
        if (p->ops.on_exit) {
            p->ops.on_exit(p, from, reason, 0, p->ud);
            return;
        }
        /* deliver {'EXIT', From, Reason} as a message */
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 3);
        ei_x_encode_atom(&x, "EXIT");
        bl_x_encode_pid(&x, from);
        ei_x_append_buf(&x, reason, rlen);
        bl_msg m = {.buf = x.buff, .index = 1, .len = x.index};
        bl_proc_deliver(p, &m);
        ei_x_free(&x);
        return;
    }
    if (reason_is_atom(reason, rlen, "normal")) return;
    proc_terminate(p, reason, rlen);
}

static void proc_terminate(bl_proc *p, const char *reason, int rlen)
{
    bl_node *n = p->n;
    if (p->dead) return;
    p->dead = 1;
    HASH_DEL(n->procs, p);
    if (p->reg) { /* out of the name table now; the name stays readable until p is freed */
        bl_regname *r = NULL;
        HASH_FIND_STR(n->names, p->reg->name, r);
        if (r == p->reg) HASH_DEL(n->names, r);
    }
    bl_linkent *l, *lt;
    LL_FOREACH_SAFE(p->links, l, lt)
    {
        if (bl__pid_is_local(n, &l->pid)) {
            local_enqueue(n, LOCAL_EXIT, &l->pid, NULL, &p->pid, reason, rlen);
        } else {
            bl_ctl c = {.op = BL_CTL_EXIT, .from = p->pid, .to = l->pid};
            (void)send_exit_ctl(n, bl_pid_node(&l->pid), &c, reason, rlen);
        }
        LL_DELETE(p->links, l);
        free(l);
    }
    while (p->monitoring) /* a process that ends takes its monitors down, as BEAM's */
        bl__demonitor_pid(p, &p->monitoring->pid);
    bl_pmon *m, *mt;
    LL_FOREACH_SAFE(p->monitors, m, mt)
    {
        bl_ctl c = {.op = BL_CTL_MONITOR_P_EXIT, .from = p->pid, .to = m->watcher, .ref = m->ref};
        if (m->by_name && p->reg) { /* a name monitor: the exit names the process */
            c.has_toname = 1;
            snprintf(c.toname, sizeof(c.toname), "%s", p->reg->name);
        }
        (void)send_exit_ctl(n, bl_pid_node(&m->watcher), &c, reason, rlen);
        LL_DELETE(p->monitors, m);
        free(m);
    }
    bl_calls_free(p);
    if (p->ops.on_terminate) {
        char a[MAXATOMLEN_UTF8];
        int i = 0;
        const char *why = ei_decode_atom(reason, &i, a) == 0 ? a : "abnormal";
        p->why = reason;
        p->why_len = rlen;
        p->ops.on_terminate(p, why, p->ud);
        p->why = NULL;
    }
    p->zombie_next = n->zombies;
    n->zombies = p;
}

void bl_proc_exit_term(bl_proc *p, const char *reason, int rlen)
{
    proc_terminate(p, reason, rlen);
}

void bl_exit(bl_proc *p, const char *reason)
{
    char buf[MAXATOMLEN_UTF8 + 8];
    int i = 0;
    if (ei_encode_atom(buf, &i, reason ? reason : "normal") < 0) {
        i = 0;
        ei_encode_atom(buf, &i, "normal");
    }
    proc_terminate(p, buf, i);
}

void bl_zombies_free(bl_node *n)
{
    while (n->zombies) {
        bl_proc *p = n->zombies;
        n->zombies = p->zombie_next;
        free(p->reg);
        free(p);
    }
}

void bl_procs_shutdown(bl_node *n)
{
    bl_proc *p, *t;
    char buf[32];
    int i = 0;
    ei_encode_atom(buf, &i, "shutdown");
    HASH_ITER(hh, n->procs, p, t) proc_terminate(p, buf, i);
}

/* ---- delivery ---- */

void bl_proc_deliver_ctx(bl_proc *p, const bl_msg *m, const bl_trace *trace, const bl_seqtok *tok)
{
    if (p->dead) return;
    bl_node *n = p->n;
    bl__ctx_save save;
    bl__ctx_enter(n, p, &save);
    if (trace && trace->valid) n->ctx.trace = *trace;
    if (tok && tok->valid) bl__seqtok_received(n, p, tok);
    if (!bl_gen_try_dispatch(p, m) && p->ops.on_msg) p->ops.on_msg(p, m, p->ud);
    bl__ctx_leave(n, &save);
}

void bl_proc_deliver(bl_proc *p, const bl_msg *m)
{
    bl_proc_deliver_ctx(p, m, NULL, NULL);
}

/* What is queued now, in order (handlers may queue more, for the next round); with a budget
 * (seconds, > 0), BL_LOCALQ_TURN_MIN messages and then only until that much time has gone: the
 * rest is put back at the head. The count keeps the queue moving when the node gets little CPU
 * (a preempted turn uses up its time without doing the work). */
static void localq_drain(bl_node *n, double budget)
{
    bl_localmsg *m = n->localq_head, *last = n->localq_tail;
    n->localq_head = n->localq_tail = NULL;
    ev_tstamp until = budget > 0 && m ? ev_time() + budget : 0;
    for (int done = 0; m; done++) {
        if (until > 0 && done >= BL_LOCALQ_TURN_MIN && ev_time() >= until) {
            last->next = n->localq_head; /* before what the handlers queued meanwhile */
            if (!n->localq_head) n->localq_tail = last;
            n->localq_head = m;
            return;
        }
        bl_localmsg *next = m == last ? NULL : m->next;
        bl_proc *p = m->toname[0] ? bl_whereis(n, m->toname) : bl_proc_by_pid(n, &m->to);
        if (p && m->kind == LOCAL_MSG) {
            bl_msg msg;
            msg.buf = m->data;
            msg.index = 1;
            msg.len = m->len;
            msg.has_sender = m->has_sender;
            if (m->has_sender) msg.sender = m->sender;
            if (m->tok_fl_len > 0) {
                bl_seqtok tok;
                tok.valid = 1;
                tok.fl_len = m->tok_fl_len;
                tok.serial = m->tok_serial;
                memcpy(tok.fl, m->data + m->len, (size_t)m->tok_fl_len);
                bl_proc_deliver_ctx(p, &msg, &m->trace, &tok);
            } else {
                bl_proc_deliver_ctx(p, &msg, &m->trace, NULL);
            }
        } else if (p) {
            bl_proc_signal_exit(p, &m->sender, m->data, m->len, 0);
        }
        free(m);
        m = next;
    }
}

void bl_localq_drain(bl_node *n)
{
    localq_drain(n, 0);
}

void bl_localq_drain_turn(bl_node *n)
{
    localq_drain(n, BL_LOCALQ_TURN_S);
}

/* ---- incoming control messages ---- */

static void reply_noproc_exit(bl_node *n, const char *node, const bl_ctl *ctl)
{
    char buf[32];
    int i = 0;
    ei_encode_atom(buf, &i, "noproc");
    bl_ctl c = {.op = BL_CTL_EXIT, .from = ctl->to, .to = ctl->from};
    (void)send_ctl(n, node, &c, buf, i);
}

void bl_route_incoming(bl_node *n, const char *from_node, const bl_ctl *ctl, const char *payload)
{
    bl_proc *p = NULL;
    switch (ctl->op) {
    case BL_CTL_SEND:
    case BL_CTL_SEND_TT:
    case BL_CTL_SEND_SENDER:
    case BL_CTL_SEND_SENDER_TT:
    case BL_CTL_REG_SEND:
    case BL_CTL_REG_SEND_TT: {
        int by_name = ctl->op == BL_CTL_REG_SEND || ctl->op == BL_CTL_REG_SEND_TT;
        p = by_name ? bl_whereis(n, ctl->toname) : bl_proc_by_pid(n, &ctl->to);
        if (!p) {
            if (by_name)
                bl_log(n, BL_LOG_DEBUG, "message from %s to unregistered name '%s' dropped",
                       from_node, ctl->toname);
            return;
        }
        bl_msg m; /* field by field: zero-filling its 1 KB sender pid per message shows up */
        m.buf = payload;
        m.index = (int)ctl->msg_off;
        m.len = (int)ctl->msg_end;
        m.has_sender = ctl->has_from;
        if (ctl->has_from) m.sender = ctl->from;
        if (ctl->has_token) { /* seq_trace: the token is current while p handles it */
            bl_seqtok tok;
            if (bl__seqtok_decode(payload, ctl->token_off, ctl->token_len, &tok) == 0) {
                bl_proc_deliver_ctx(p, &m, NULL, &tok);
                return;
            }
            bl_log(n, BL_LOG_DEBUG,
                   "seq_trace token from %s not carried (malformed or label "
                   "over %d bytes)",
                   from_node, BL_SEQTOK_MAX);
        }
        bl_proc_deliver(p, &m);
        return;
    }
    case BL_CTL_LINK:
        p = bl_proc_by_pid(n, &ctl->to);
        if (!p)
            reply_noproc_exit(n, from_node, ctl);
        else
            add_link(p, &ctl->from);
        return;
    case BL_CTL_UNLINK:
        if ((p = bl_proc_by_pid(n, &ctl->to))) remove_link(p, &ctl->from);
        return;
    case BL_CTL_UNLINK_ID: {
        if ((p = bl_proc_by_pid(n, &ctl->to))) remove_link(p, &ctl->from);
        bl_ctl c = {.op = BL_CTL_UNLINK_ID_ACK,
                    .unlink_id = ctl->unlink_id,
                    .from = ctl->to,
                    .to = ctl->from};
        (void)send_ctl(n, from_node, &c, NULL, 0);
        return;
    }
    case BL_CTL_EXIT:
    case BL_CTL_EXIT_TT:
    case BL_CTL_EXIT2:
    case BL_CTL_EXIT2_TT:
    case BL_CTL_PAYLOAD_EXIT:
    case BL_CTL_PAYLOAD_EXIT_TT:
    case BL_CTL_PAYLOAD_EXIT2:
    case BL_CTL_PAYLOAD_EXIT2_TT: {
        p = bl_proc_by_pid(n, &ctl->to);
        if (!p) return;
        int is_exit2 = ctl->op == BL_CTL_EXIT2 || ctl->op == BL_CTL_EXIT2_TT ||
                       ctl->op == BL_CTL_PAYLOAD_EXIT2 || ctl->op == BL_CTL_PAYLOAD_EXIT2_TT;
        if (!is_exit2 && !find_link(p, &ctl->from)) return; /* stale: no longer linked */
        bl_proc_signal_exit(p, &ctl->from, payload + ctl->reason_off, (int)ctl->reason_len,
                            is_exit2);
        return;
    }
    case BL_CTL_MONITOR_P: {
        p = ctl->has_toname ? bl_whereis(n, ctl->toname) : bl_proc_by_pid(n, &ctl->to);
        if (!p) {
            char buf[32];
            int i = 0;
            ei_encode_atom(buf, &i, "noproc");
            bl_ctl c = {.op = BL_CTL_MONITOR_P_EXIT, .to = ctl->from, .ref = ctl->ref};
            if (ctl->has_toname) {
                c.has_toname = 1;
                memcpy(c.toname, ctl->toname, sizeof(c.toname));
            }
            if (!ctl->has_toname) c.from = ctl->to;
            (void)send_ctl(n, from_node, &c, buf, i);
            return;
        }
        (void)bl_proc_add_monitor(p, &ctl->from, &ctl->ref, ctl->has_toname);
        return;
    }
    case BL_CTL_DEMONITOR_P: {
        p = ctl->has_toname ? bl_whereis(n, ctl->toname) : bl_proc_by_pid(n, &ctl->to);
        if (!p) return;
        bl_pmon *m, *t;
        LL_FOREACH_SAFE(p->monitors, m, t)
        {
            if (m->ref.len == ctl->ref.len &&
                memcmp(m->ref.n, ctl->ref.n, sizeof(unsigned) * (size_t)m->ref.len) == 0 &&
                bl_pid_equal(&m->watcher, &ctl->from)) {
                LL_DELETE(p->monitors, m);
                free(m);
            }
        }
        return;
    }
    case BL_CTL_MONITOR_P_EXIT:
    case BL_CTL_PAYLOAD_MONITOR_P_EXIT:
        if (!monitoring_fired(n, ctl, payload)) bl_calls_monitor_exit(n, ctl, payload);
        return;
    case BL_CTL_SPAWN_REQUEST:
    case BL_CTL_SPAWN_REQUEST_TT:
        bl_spawn_serve(n, from_node, ctl, payload);
        return;
    case BL_CTL_SPAWN_REPLY:
    case BL_CTL_SPAWN_REPLY_TT:
        bl_calls_spawn_reply(n, ctl);
        return;
    case BL_CTL_ALIAS_SEND:
    case BL_CTL_ALIAS_SEND_TT:
        bl_alias_deliver(n, from_node, ctl, payload);
        return;
    default: /* NODE_LINK, GROUP_LEADER, UNLINK_ID_ACK: nothing to do */
        return;
    }
}

/* A node went away: linked processes get noconnection, monitors from it vanish, and our
 * monitors of its processes fire with noconnection. */
void bl_procs_node_down(bl_node *n, const char *node)
{
    char reason[32];
    int rl = 0;
    ei_encode_atom(reason, &rl, "noconnection");
    bl_proc *p, *t;
    HASH_ITER(hh, n->procs, p, t)
    {
        for (bl_pmon_out **o = &p->monitoring; *o && !p->dead;) {
            if (strcmp(bl_pid_node(&(*o)->pid), node) != 0) {
                o = &(*o)->next;
                continue;
            }
            bl_pmon_out fired = **o;
            free(*o);
            *o = fired.next;
            fired.cb(p, &fired.pid, reason, 0, fired.ud);
            o = &p->monitoring; /* the callback may have changed the list */
        }
        bl_pmon *m, *mt;
        LL_FOREACH_SAFE(p->monitors, m, mt)
        {
            if (strcmp(bl_pid_node(&m->watcher), node) == 0) {
                LL_DELETE(p->monitors, m);
                free(m);
            }
        }
        bl_linkent *l, *lt;
        LL_FOREACH_SAFE(p->links, l, lt)
        {
            if (strcmp(bl_pid_node(&l->pid), node) == 0) {
                bl_pid from = l->pid;
                local_enqueue(n, LOCAL_EXIT, &p->pid, NULL, &from, reason, rl);
            }
        }
    }
}
