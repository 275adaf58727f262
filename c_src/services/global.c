/* global.c - cluster-wide unique names: the `beamlet_global` process (docs/services.md, "Global
 * names"; include/beamlet/global.h). Names are atoms.
 *
 * Beam names (mixed clusters): registered in OTP global through a connected BEAM node with
 * rpc global:register_name(Name, Pid, {global, random_exit_name}); before that the node connects
 * to every node in that BEAM node's nodes() (a BEAM node with no connection to us drops the name).
 * The registered process is linked to beamlet_global (which traps exits) to keep this table right;
 * when it ends OTP global itself drops the name: every BEAM node's global monitors the pid, and
 * the monitor fires with the process's end (DIST_MONITOR_NAME, runtime/proc.c). (Before monitors
 * worked, this node sent global:unregister_name on exit; not needed any more.)
 * BEAM's own clash resolution may kill the process with an exit signal: same path.
 *
 * Beamlet names (C-only clusters): a table on the replicated-table layer (repl.h; each node owns
 * its entries {Name, Pid, Time}, Time in ms since the epoch; keys are names). Messages to
 * {beamlet_global, Node}: the layer's bl_global_add/del/sync/want/digest, and
 *   {bl_global_conflict, Owner, Name, Pid, Time}  Owner found its Name/Pid clashing with ours
 * accepted only from Owner itself (REG_SEND sender), a beamlet member not failed/left, for pids of
 * Owner. A failed, leaving or departed member's entries are dropped. A clash (one name, two pids)
 * is resolved the same way on every node: the older registration wins (then the smaller owner
 * node name, then the pid); random_exit_name: the loser's owner kills it (exit kill);
 * random_notify_name: the loser gets {global_name_conflict, Name} and loses the name;
 * notify_all_name: both lose the name and get {global_name_conflict, Name, OtherPid}. The owner
 * of a local entry in a clash tells the other owner (bl_global_conflict), so both act even if one
 * side only learnt of the clash. */
#include "../runtime/internal.h"
#include "beamlet/cluster.h"
#include "beamlet/global.h"
#include "dispatch.h"
#include "repl.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define GNAME "beamlet_global"
#define TICK_MS 1000u
#define POLL_MS 50u
#define CONNECT_WAIT_MS 3000u
#define RPC_TMO 5000u
#define MAX_WAIT 64
#define REFRESH_TICKS 3 /* beam names checked on every BEAM member every 3 s */

typedef struct gent {
    bl__repl_link link; /* in its owner's bucket */
    UT_hash_handle hh;
    char name[MAXATOMLEN]; /* valid_name: under 256 bytes (not ei's 1 KB atom buffer) */
    bl_pid pid;
    char owner[BL_NODE_LEN];
    unsigned long long time;
    int local;
} gent;

typedef struct bname {
    struct bname *next;
    char name[MAXATOMLEN_UTF8];
    bl_pid pid;
} bname;

enum { OP_REG, OP_WHEREIS, OP_SEND, OP_UNREG, OP_CONNECT, OP_REFRESH };

typedef struct gstate gstate;

typedef struct gop {
    struct gop *next, *prev;
    gstate *g;
    int kind, stage;
    char name[MAXATOMLEN_UTF8];
    bl_pid pid;
    int has_from;
    bl_from from;
    int has_req;
    bl_pid req;
    bl_global_cb cb;
    void *ud;
    char *msg;
    int msglen;
    char beam[BL_NODE_LEN];
    char alt[BL_NODE_LEN]; /* OP_REFRESH: another BEAM node that should know the name, or "" */
    char wait[MAX_WAIT][BL_NODE_LEN];
    int nwait;
    int timer;
    unsigned waited;
} gop;

struct gstate {
    bl_node *n;
    bl_proc *proc;
    bl_global_resolve method;
    bl_global_mode mode;
    gent *names;
    bname *bnames;
    gop *ops;
    bl__repl *repl;
    unsigned ticks;
    int timer_id;
};

static const char *const RESOLVE_NAMES[] = {"random_exit_name", "random_notify_name",
                                            "notify_all_name"};
static const char *const MODE_NAMES[] = {"auto", "beam", "beamlet"};

const char *bl_global_resolve_name(bl_global_resolve m)
{
    return (unsigned)m < 3 ? RESOLVE_NAMES[m] : "unknown";
}

static void proc_msg(bl_proc *self, const bl_msg *msg, void *ud);

static gstate *g_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, GNAME) : NULL;
    return p && !p->dead && p->ops.on_msg == proc_msg ? bl_proc_data(p) : NULL;
}

static int valid_name(const char *name)
{
    size_t l = name ? strlen(name) : 0;
    return l > 0 && l < MAXATOMLEN;
}

/* ---- members ---- */

static bl_member_info *members(bl_node *n, int *count)
{
    *count = 0;
    if (!n->cluster) return NULL;
    int k = bl_cluster_members(n, NULL, 0);
    if (k <= 0) return NULL;
    bl_member_info *m = calloc((size_t)k, sizeof(*m));
    if (!m) return NULL;
    *count = bl_cluster_members(n, m, k);
    if (*count > k) *count = k;
    return m;
}

/* A connected BEAM member, into out. */
static int beam_node(gstate *g, char out[BL_NODE_LEN])
{
    int k, ok = 0;
    bl_member_info *m = members(g->n, &k);
    for (int i = 0; i < k && !ok; i++) {
        if (strcmp(m[i].role, "beam") || m[i].state != BL_MEMBER_ACTIVE ||
            !bl_is_connected(g->n, m[i].node))
            continue;
        snprintf(out, BL_NODE_LEN, "%s", m[i].node);
        ok = 1;
    }
    free(m);
    return ok;
}

/* ---- the beamlet table ---- */

static gent *find(gstate *g, const char *name)
{
    gent *e = NULL;
    HASH_FIND_STR(g->names, name, e);
    return e;
}

static bname *bfind(gstate *g, const char *name)
{
    bname *b;
    LL_FOREACH(g->bnames, b) {
        if (!strcmp(b->name, name)) return b;
    }
    return NULL;
}

static int holds(gstate *g, const bl_pid *pid)
{
    int k = 0;
    gent *e, *t;
    HASH_ITER(hh, g->names, e, t)
        k += e->local && bl_pid_equal(&e->pid, pid);
    bname *b;
    LL_FOREACH(g->bnames, b)
        k += bl_pid_equal(&b->pid, pid);
    return k;
}

/* Encoders OR every ei_x_* result (0 or -1) into rc and check it once at the end: a failed call
 * leaves the buffer valid, so going on is safe, and nothing half-encoded is sent. */
static int encode_conflict(ei_x_buff *x, gstate *g, const gent *e)
{
    int rc = ei_x_new_with_version(x);
    rc |= ei_x_encode_tuple_header(x, 5);
    rc |= ei_x_encode_atom(x, "bl_global_conflict");
    rc |= ei_x_encode_atom(x, g->n->name);
    rc |= ei_x_encode_atom(x, e->name);
    rc |= bl_x_encode_pid(x, &e->pid);
    return rc | ei_x_encode_ulonglong(x, e->time);
}

static gent *add_entry(gstate *g, const char *name, const bl_pid *pid, const char *owner,
                       unsigned long long time)
{
    if (strlen(name) >= sizeof(((gent *)0)->name)) return NULL; /* valid_name refuses these */
    gent *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->pid = *pid;
    snprintf(e->owner, sizeof(e->owner), "%s", owner);
    e->time = time;
    e->local = bl_is_local_node(g->n, owner);
    HASH_ADD_STR(g->names, name, e);
    return e;
}

/* Remove e; a local entry is announced and its process unlinked when it holds no other name. */
static void del_entry(gstate *g, gent *e, int announce)
{
    HASH_DEL(g->names, e);
    if (e->local && announce)
        bl__repl_local_del(g->repl, &e->link);
    else
        bl__repl_unlink(g->repl, &e->link);
    if (e->local && !holds(g, &e->pid)) bl_unlink(g->proc, &e->pid);
    free(e);
}

static int older(unsigned long long t1, const char *o1, const bl_pid *p1, unsigned long long t2,
                 const char *o2, const bl_pid *p2)
{
    if (t1 != t2) return t1 < t2;
    int c = strcmp(o1, o2);
    if (c) return c < 0;
    if (p1->num != p2->num) return p1->num < p2->num;
    return p1->serial < p2->serial;
}

static void notify(gstate *g, const bl_pid *to, const char *name, const bl_pid *other)
{
    ei_x_buff x;
    int rc = ei_x_new_with_version(&x);
    rc |= ei_x_encode_tuple_header(&x, other ? 3 : 2);
    rc |= ei_x_encode_atom(&x, "global_name_conflict");
    rc |= ei_x_encode_atom(&x, name);
    if (other) rc |= bl_x_encode_pid(&x, other);
    rc = rc ? BL_ENOMEM : bl_send(g->proc, to, x.buff, x.index);
    if (rc != BL_OK)
        bl_log(g->n, BL_LOG_WARN, "global: conflict notice for %s not sent: %s", name,
               bl_strerror(rc));
    ei_x_free(&x);
}

static void kill_local(gstate *g, const bl_pid *pid)
{
    bl_proc *p = bl_proc_by_pid(g->n, pid);
    if (!p || p->dead) return;
    char buf[16];
    int i = 0;
    ei_encode_atom(buf, &i, "kill");
    bl_proc_signal_exit(p, bl_self(g->proc), buf, i, 1);
}

static void send_conflict(gstate *g, const char *owner, const gent *mine)
{
    ei_x_buff x;
    if (encode_conflict(&x, g, mine) == 0)
        (void)bl_send_name(g->proc, GNAME, owner, x.buff, x.index);
    else
        bl_log(g->n, BL_LOG_WARN, "global: conflict for %s not sent (out of memory)", mine->name);
    ei_x_free(&x);
}

/* e (in the table) and (pid, owner, time) claim one name. add: the incoming entry may be added
 * when it wins. */
static void clash(gstate *g, gent *e, const bl_pid *pid, const char *owner, unsigned long long time,
                  int add)
{
    char name[MAXATOMLEN_UTF8];
    snprintf(name, sizeof(name), "%s", e->name);
    int inc_wins = older(time, owner, pid, e->time, e->owner, &e->pid);
    gent mine = *e;
    bl_log(g->n, BL_LOG_WARN, "global: name %s registered on %s and %s: %s (%s)", name, e->owner,
           owner,
           g->method == BL_GLOBAL_NOTIFY_ALL ? "both lose"
           : inc_wins                        ? "the latter wins"
                                             : "the former wins",
           bl_global_resolve_name(g->method));
    if (g->method == BL_GLOBAL_NOTIFY_ALL) {
        del_entry(g, e, 1);
        if (mine.local) {
            notify(g, &mine.pid, name, pid);
            send_conflict(g, owner, &mine);
        }
        return;
    }
    if (!inc_wins) {
        if (mine.local) send_conflict(g, owner, &mine);
        return;
    }
    del_entry(g, e, 1);
    if (mine.local) {
        if (g->method == BL_GLOBAL_RANDOM_EXIT)
            kill_local(g, &mine.pid);
        else
            notify(g, &mine.pid, name, NULL);
        send_conflict(g, owner, &mine);
    }
    if (add) add_entry(g, name, pid, owner, time);
}

/* owner's entry for name after applying it: the table's, or NULL when it lost a clash. */
static gent *apply_remote(gstate *g, const char *owner, const char *name, const bl_pid *pid,
                          unsigned long long time)
{
    gent *e = find(g, name);
    if (!e) return add_entry(g, name, pid, owner, time);
    if (!e->local && !strcmp(e->owner, owner)) {
        e->pid = *pid; /* the owner re-registered it */
        e->time = time;
        return e;
    }
    if (bl_pid_equal(&e->pid, pid)) return NULL; /* ours: a pid of owner never is */
    clash(g, e, pid, owner, time, 1);
    e = find(g, name);
    return e && !e->local && !strcmp(e->owner, owner) ? e : NULL;
}

/* ---- on the replicated-table layer ---- */

#define GENT(l) ((gent *)(void *)((char *)(l)-offsetof(gent, link)))

static int r_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    const gent *e = GENT(l);
    if (ei_x_encode_tuple_header(x, 3) < 0 || ei_x_encode_atom(x, e->name) < 0 ||
        bl_x_encode_pid(x, &e->pid) < 0)
        return -1;
    return ei_x_encode_ulonglong(x, e->time);
}

static int r_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return ei_x_encode_atom(x, GENT(l)->name);
}

static int get_atom(const char *buf, int *idx, char *out);

static int r_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    gstate *g = svc;
    char name[MAXATOMLEN_UTF8];
    bl_pid pid;
    unsigned long long time;
    int ar;
    if (ei_decode_tuple_header(buf, idx, &ar) < 0 || ar != 3 || get_atom(buf, idx, name) < 0 ||
        bl_decode_pid(g->n, buf, idx, &pid) < 0 || ei_decode_ulonglong(buf, idx, &time) < 0 ||
        strcmp(bl_pid_node(&pid), owner) || !valid_name(name))
        return -1;
    gent *e = apply_remote(g, owner, name, &pid, time);
    *out = e ? &e->link : NULL;
    return 0;
}

static int r_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    char name[MAXATOMLEN_UTF8];
    if (get_atom(buf, idx, name) < 0) return -1;
    gent *e = find(svc, name);
    *out = e && !e->local && !strcmp(e->owner, owner) ? &e->link : NULL;
    return 0;
}

static int r_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    (void)why;
    del_entry(svc, GENT(l), 0);
    return 0;
}

static void r_owner_gone(void *svc, const char *owner, unsigned n, const char *why)
{
    gstate *g = svc;
    if (n) bl_log(g->n, BL_LOG_INFO, "global: %u names of %s removed (%s)", n, owner, why);
}

static const bl__repl_ops global_repl = {
    .proc_name = GNAME,
    .tag_add = "bl_global_add",
    .tag_del = "bl_global_del",
    .tag_sync = "bl_global_sync",
    .tag_want = "bl_global_want",
    .tag_digest = "bl_global_digest",
    .encode = r_encode,
    .encode_key = r_encode_key,
    .upsert = r_upsert,
    .find = r_find,
    .remove = r_remove,
    .owner_gone = r_owner_gone,
};

/* Register a beamlet name for a live local pid. */
static int table_register(gstate *g, const char *name, const bl_pid *pid)
{
    gent *e = find(g, name);
    if (e || bfind(g, name)) return e && bl_pid_equal(&e->pid, pid) ? BL_OK : BL_EEXIST;
    if (!holds(g, pid)) {
        int rc = bl_link(g->proc, pid);
        if (rc != BL_OK) return rc;
    }
    e = add_entry(g, name, pid, g->n->name, bl_now_ms());
    if (!e) {
        if (!holds(g, pid)) bl_unlink(g->proc, pid);
        return BL_ENOMEM;
    }
    return bl__repl_local_put(g->repl, &e->link);
}

/* ---- operations through a BEAM node ---- */

static void op_step(gop *op);

static void op_free(gop *op)
{
    gstate *g = op->g;
    DL_DELETE(g->ops, op);
    if (op->timer > 0) bl_timer_cancel(g->n, op->timer);
    free(op->msg);
    free(op);
}

static const char *err_atom(int status)
{
    switch (status) {
    case BL_ETIMEOUT:
        return "timeout";
    case BL_ENODEDOWN:
        return "nodedown";
    case BL_ENOPROC:
        return "noproc";
    case BL_EBADRPC:
        return "badrpc";
    case BL_EBUSY:
        return "busy";
    case BL_ENOMEM:
        return "enomem";
    default:
        return "failed";
    }
}

static int encode_error(ei_x_buff *r, const char *what)
{
    int rc = ei_x_encode_tuple_header(r, 2);
    rc |= ei_x_encode_atom(r, "error");
    return rc | ei_x_encode_atom(r, what);
}

static void op_finish(gop *op, int status, const bl_pid *pid)
{
    gstate *g = op->g;
    if (op->has_from) {
        ei_x_buff r;
        int rc = ei_x_new(&r);
        switch (op->kind) {
        case OP_REG:
            if (status == BL_OK || status == BL_EEXIST)
                rc |= ei_x_encode_atom(&r, status == BL_OK ? "yes" : "no");
            else
                rc |= encode_error(&r, err_atom(status));
            break;
        case OP_WHEREIS:
            if (status == BL_OK)
                rc |= bl_x_encode_pid(&r, pid);
            else if (status == BL_ENOPROC)
                rc |= ei_x_encode_atom(&r, "undefined");
            else
                rc |= encode_error(&r, err_atom(status));
            break;
        case OP_SEND:
            if (status == BL_OK) {
                rc |= bl_x_encode_pid(&r, pid);
            } else if (status == BL_ENOPROC) {
                rc |= ei_x_encode_tuple_header(&r, 2);
                rc |= ei_x_encode_atom(&r, "badarg");
                rc |= ei_x_encode_tuple_header(&r, 2);
                rc |= ei_x_encode_atom(&r, op->name);
                rc |= ei_x_append_buf(&r, op->msg + 1, op->msglen - 1); /* past the version byte */
            } else {
                rc |= encode_error(&r, err_atom(status));
            }
            break;
        default:
            rc |= ei_x_encode_atom(&r, "ok");
        }
        if (!rc)
            bl_reply(g->n, &op->from, r.buff, r.index);
        else
            bl_log(g->n, BL_LOG_WARN, "global: reply for %s not encoded: the caller times out",
                   op->name);
        ei_x_free(&r);
    }
    if (op->has_req && op->cb) {
        bl_proc *p = bl_proc_by_pid(g->n, &op->req);
        if (p && !p->dead) op->cb(p, status, pid, op->ud);
    }
    op_free(op);
}

static gop *op_new(gstate *g, int kind, const char *name)
{
    gop *op = calloc(1, sizeof(*op));
    if (!op) return NULL;
    op->g = g;
    op->kind = kind;
    if (name) snprintf(op->name, sizeof(op->name), "%s", name);
    DL_APPEND(g->ops, op);
    return op;
}

static void rpc_done(bl_proc *p, int status, const char *buf, int index, void *ud);

/* enc: the result of encoding args (an rpc whose arguments failed to encode is not sent). */
static int op_rpc(gop *op, const char *mod, const char *fun, const ei_x_buff *args, int enc)
{
    int rc = enc ? BL_ENOMEM
                 : bl_rpc(op->g->proc, op->beam, mod, fun, args->buff, args->index, RPC_TMO,
                          rpc_done, op);
    if (rc != BL_OK) op_finish(op, rc, NULL);
    return rc;
}

static int args_name(ei_x_buff *a, const char *name)
{
    int rc = ei_x_new(a);
    rc |= ei_x_encode_list_header(a, 1);
    rc |= ei_x_encode_atom(a, name);
    return rc | ei_x_encode_empty_list(a);
}

/* [Name, Pid, {global, random_exit_name}]: register_name's and re_register_name's arguments */
static int args_name_pid(ei_x_buff *a, const char *name, const bl_pid *pid)
{
    int rc = ei_x_new(a);
    rc |= ei_x_encode_list_header(a, 3);
    rc |= ei_x_encode_atom(a, name);
    rc |= bl_x_encode_pid(a, pid);
    rc |= ei_x_encode_tuple_header(a, 2);
    rc |= ei_x_encode_atom(a, "global");
    rc |= ei_x_encode_atom(a, "random_exit_name");
    return rc | ei_x_encode_empty_list(a);
}

static void poll_cb(bl_node *n, void *ud)
{
    (void)n;
    gop *op = ud;
    op->timer = 0;
    op->waited += POLL_MS;
    int all = 1;
    for (int i = 0; i < op->nwait && all; i++)
        all = bl_is_connected(op->g->n, op->wait[i]);
    if (!all && op->waited < CONNECT_WAIT_MS) {
        int id = bl_timer(op->g->n, POLL_MS, 0, poll_cb, op);
        if (id > 0) {
            op->timer = id;
            return;
        }
    }
    if (!all) bl_log(op->g->n, BL_LOG_WARN, "global: not connected to every BEAM node yet");
    op->stage = 2;
    op_step(op);
}

/* The next rpc of op. */
static void refresh_step(gop *op)
{
    ei_x_buff a;
    const char *to = op->stage == 1 ? op->alt : op->beam;
    if (!bl_is_connected(op->g->n, to)) {
        op_finish(op, BL_ENODEDOWN, NULL);
        return;
    }
    bname *b = bfind(op->g, op->name);
    if (!b || !bl_pid_equal(&b->pid, &op->pid)) { /* unregistered meanwhile */
        op_finish(op, BL_OK, NULL);
        return;
    }
    int rc = op->stage < 2 ? args_name(&a, op->name) : args_name_pid(&a, op->name, &op->pid);
    rc = rc ? BL_ENOMEM
            : bl_rpc(op->g->proc, to, "global", op->stage < 2 ? "whereis_name" : "re_register_name",
                     a.buff, a.index, RPC_TMO, rpc_done, op);
    ei_x_free(&a);
    if (rc != BL_OK) op_finish(op, rc, NULL);
}

static void op_step(gop *op)
{
    gstate *g = op->g;
    ei_x_buff a;
    int rc;
    if (op->kind == OP_REFRESH) {
        refresh_step(op);
        return;
    }
    if (!bl_is_connected(g->n, op->beam) && !beam_node(g, op->beam)) {
        op_finish(op, BL_ENODEDOWN, NULL);
        return;
    }
    switch (op->kind) {
    case OP_REG:
    case OP_CONNECT:
        if (op->stage == 0) {
            rc = ei_x_new(&a);
            rc |= ei_x_encode_empty_list(&a);
            op_rpc(op, "erlang", "nodes", &a, rc);
            ei_x_free(&a);
            return;
        }
        {
            bl_proc *p = bl_proc_by_pid(g->n, &op->pid);
            if (!p || p->dead) {
                op_finish(op, BL_ENOPROC, NULL);
                return;
            }
        }
        rc = args_name_pid(&a, op->name, &op->pid);
        op_rpc(op, "global", "register_name", &a, rc);
        ei_x_free(&a);
        return;
    case OP_WHEREIS:
    case OP_SEND:
        rc = args_name(&a, op->name);
        op_rpc(op, "global", "whereis_name", &a, rc);
        ei_x_free(&a);
        return;
    case OP_UNREG:
        rc = args_name(&a, op->name);
        op_rpc(op, "global", op->stage == 0 ? "whereis_name" : "unregister_name", &a, rc);
        ei_x_free(&a);
        return;
    }
}

static void connect_listed(gop *op, const char *buf, int index)
{
    int arity, j = index;
    op->nwait = 0;
    if (ei_decode_list_header(buf, &j, &arity) < 0) return;
    for (int i = 0; i < arity; i++) {
        char node[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &j, node) < 0) return;
        if (bl_is_local_node(op->g->n, node) || bl_is_connected(op->g->n, node)) continue;
        if (bl_connect(op->g->n, node) == BL_OK && op->nwait < MAX_WAIT)
            snprintf(op->wait[op->nwait++], BL_NODE_LEN, "%s", node);
    }
}

static void rpc_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    gop *op = ud;
    gstate *g = op->g;
    if (status != BL_OK) {
        bl_log(g->n, BL_LOG_WARN, "global: rpc to %s for %s failed: %s", op->beam, op->name,
               bl_strerror(status));
        op_finish(op, status, NULL);
        return;
    }
    char a[MAXATOMLEN_UTF8];
    bl_pid pid;
    int j = index;
    switch (op->kind) {
    case OP_CONNECT:
        connect_listed(op, buf, index);
        op_finish(op, BL_OK, NULL);
        return;
    case OP_REFRESH: /* does op->beam (then op->alt) still map the name to our pid? */
        if (op->stage == 2) {
            bl_log(g->n, BL_LOG_INFO, "global: %s registered again in OTP global (%s had lost it)",
                   op->name, op->beam);
            op_finish(op, BL_OK, NULL);
            return;
        }
        if (bl_decode_pid(g->n, buf, &j, &pid) == 0) {
            if (!bl_pid_equal(&pid, &op->pid)) { /* someone else holds it: ours was lost */
                bname *b = bfind(g, op->name);
                if (b && bl_pid_equal(&b->pid, &op->pid) && op->stage == 0) {
                    bl_log(g->n, BL_LOG_WARN, "global: %s now names another process in OTP global",
                           op->name);
                    LL_DELETE(g->bnames, b);
                    if (!holds(g, &b->pid)) bl_unlink(g->proc, &b->pid);
                    free(b);
                }
                op_finish(op, BL_OK, NULL);
                return;
            }
            if (op->stage == 0) { /* known there */
                op_finish(op, BL_OK, NULL);
                return;
            }
            op->stage = 2; /* alt still has it: re-register so op->beam learns it again */
        } else {
            if (op->stage == 1) { /* gone on alt too: leave it (the next refresh looks again) */
                op_finish(op, BL_OK, NULL);
                return;
            }
            op->stage = op->alt[0] ? 1 : 2;
        }
        refresh_step(op);
        return;
    case OP_REG:
        if (op->stage == 0) {
            connect_listed(op, buf, index);
            op->stage = 1;
            op->waited = 0;
            poll_cb(g->n, op);
            return;
        }
        if (ei_decode_atom(buf, &j, a) < 0 || strcmp(a, "yes")) {
            op_finish(op, BL_EEXIST, NULL);
            return;
        }
        {
            bl_proc *q = bl_proc_by_pid(g->n, &op->pid);
            bname *b = calloc(1, sizeof(*b));
            int linked =
                b && q && !q->dead && (holds(g, &op->pid) || bl_link(g->proc, &op->pid) == BL_OK);
            if (!linked) { /* it ended meanwhile (or no memory): take the name back */
                free(b);
                gop *u = op_new(g, OP_UNREG, op->name);
                if (u) {
                    u->pid = op->pid;
                    snprintf(u->beam, sizeof(u->beam), "%s", op->beam);
                    op_step(u);
                }
                op_finish(op, BL_ENOPROC, NULL);
                return;
            }
            snprintf(b->name, sizeof(b->name), "%s", op->name);
            b->pid = op->pid;
            LL_PREPEND(g->bnames, b);
            bl_log(g->n, BL_LOG_INFO, "global: %s registered in OTP global through %s", op->name,
                   op->beam);
            op_finish(op, BL_OK, &op->pid);
        }
        return;
    case OP_WHEREIS:
    case OP_SEND:
        if (bl_decode_pid(g->n, buf, &j, &pid) < 0) {
            op_finish(op, BL_ENOPROC, NULL);
            return;
        }
        if (op->kind == OP_SEND) {
            int rc = bl_send(g->proc, &pid, op->msg, op->msglen);
            op_finish(op, rc, &pid);
        } else {
            op_finish(op, BL_OK, &pid);
        }
        return;
    case OP_UNREG:
        if (op->stage == 0) {
            if (bl_decode_pid(g->n, buf, &j, &pid) < 0 || !bl_pid_equal(&pid, &op->pid)) {
                op_finish(op, BL_OK, NULL); /* not ours (any more) */
                return;
            }
            op->stage = 1;
            op_step(op);
            return;
        }
        bl_log(g->n, BL_LOG_INFO, "global: %s unregistered from OTP global", op->name);
        op_finish(op, BL_OK, NULL);
        return;
    }
}

static void start_unreg(gstate *g, bname *b)
{
    gop *u = op_new(g, OP_UNREG, b->name);
    if (!u) return;
    u->pid = b->pid;
    op_step(u);
}

/* ---- requests (shared by the gen_server protocol and the C API) ---- */

static int use_beam(gstate *g, char beam[BL_NODE_LEN])
{
    if (g->mode == BL_GLOBAL_BEAMLET) return 0;
    return beam_node(g, beam);
}

/* Starts a register; returns 1 when answered later (op), else a BL_* code now. */
static int do_register(gstate *g, const char *name, const bl_pid *pid, gop **out)
{
    *out = NULL;
    bl_proc *p = bl_proc_by_pid(g->n, pid);
    if (!valid_name(name) || !p || p->dead) return BL_EINVAL;
    char beam[BL_NODE_LEN];
    if (g->mode == BL_GLOBAL_BEAM && !beam_node(g, beam)) return BL_ENODEDOWN;
    if (!use_beam(g, beam)) return table_register(g, name, pid);
    bname *b = bfind(g, name);
    if (b) return bl_pid_equal(&b->pid, pid) ? BL_OK : BL_EEXIST;
    if (find(g, name)) return BL_EEXIST;
    gop *op = op_new(g, OP_REG, name);
    if (!op) return BL_ENOMEM;
    op->pid = *pid;
    snprintf(op->beam, sizeof(op->beam), "%s", beam);
    *out = op;
    return 1;
}

static int do_unregister(gstate *g, const char *name, const bl_pid *pid)
{
    gent *e = find(g, name);
    if (e && e->local && (!pid || bl_pid_equal(&e->pid, pid))) {
        del_entry(g, e, 1);
        return BL_OK;
    }
    bname *b = bfind(g, name);
    if (b && (!pid || bl_pid_equal(&b->pid, pid))) {
        LL_DELETE(g->bnames, b);
        start_unreg(g, b);
        if (!holds(g, &b->pid)) bl_unlink(g->proc, &b->pid);
        free(b);
        return BL_OK;
    }
    return BL_ENOPROC;
}

/* whereis / send: BL_OK with *pid, BL_ENOPROC, or 1 (an op went to a BEAM node). */
static int do_lookup(gstate *g, int kind, const char *name, bl_pid *pid, gop **out)
{
    *out = NULL;
    if (!valid_name(name)) return BL_EINVAL;
    gent *e = find(g, name);
    bname *b = e ? NULL : bfind(g, name);
    if (e || b) {
        *pid = e ? e->pid : b->pid;
        return BL_OK;
    }
    char beam[BL_NODE_LEN];
    if (g->mode == BL_GLOBAL_BEAMLET || !beam_node(g, beam)) return BL_ENOPROC;
    gop *op = op_new(g, kind, name);
    if (!op) return BL_ENOMEM;
    snprintf(op->beam, sizeof(op->beam), "%s", beam);
    *out = op;
    return 1;
}

/* ---- the process ---- */

static int get_atom(const char *buf, int *idx, char *out)
{
    erlang_char_encoding was, res;
    return ei_decode_atom_as(buf, idx, out, MAXATOMLEN_UTF8, ERLANG_UTF8, &was, &res);
}

/* {bl_global_conflict, Owner, Name, Pid, Time}: Owner holds Name for Pid too. */
static void on_conflict(gstate *g, const bl_msg *msg, int idx)
{
    const char *buf = msg->buf;
    char owner[MAXATOMLEN_UTF8], name[MAXATOMLEN_UTF8];
    bl_pid pid;
    unsigned long long time;
    if (get_atom(buf, &idx, owner) < 0 || !msg->has_sender ||
        strcmp(bl_pid_node(&msg->sender), owner) || !bl_cluster_is_peer(g->n, owner) ||
        get_atom(buf, &idx, name) < 0 || bl_decode_pid(g->n, buf, &idx, &pid) < 0 ||
        strcmp(bl_pid_node(&pid), owner) || !valid_name(name) ||
        ei_decode_ulonglong(buf, &idx, &time) < 0)
        return;
    gent *e = find(g, name);
    if (!e || !e->local || bl_pid_equal(&e->pid, &pid)) return;
    clash(g, e, &pid, owner, time, 1);
    if ((e = find(g, name)) && !e->local) bl__repl_remote_put(g->repl, owner, &e->link);
}

static void proc_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    gstate *g = ud;
    if (bl__repl_handle(g->repl, msg)) return;
    int idx = msg->index, arity;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(msg->buf, &idx, &arity) == 0 && arity == 5 &&
        get_atom(msg->buf, &idx, tag) == 0 && !strcmp(tag, "bl_global_conflict"))
        on_conflict(g, msg, idx);
}

static void proc_exit(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud)
{
    (void)self;
    (void)buf;
    (void)index;
    gstate *g = ud;
    gent *e, *t;
    HASH_ITER(hh, g->names, e, t) {
        if (e->local && bl_pid_equal(&e->pid, from)) del_entry(g, e, 1);
    }
    bname *b, *bt;
    LL_FOREACH_SAFE(g->bnames, b, bt) {
        if (!bl_pid_equal(&b->pid, from)) continue;
        LL_DELETE(g->bnames, b); /* OTP global's own monitor removes the name */
        free(b);
    }
}

static int reply_rc(ei_x_buff *r, int rc)
{
    if (rc == BL_OK) return ei_x_encode_atom(r, "ok");
    return encode_error(r, rc == BL_EINVAL ? "badarg" : err_atom(rc));
}

/* The two settings a request ({set_resolve, A}, {set_mode, A}), the config and the C API change:
 * each is an index into its table of names. */
typedef enum { SET_RESOLVE, SET_MODE } setting;
static const char *const *const SETTING_NAMES[] = {RESOLVE_NAMES, MODE_NAMES};

/* the value named a, or -1 */
static int setting_from(setting s, const char *a)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(a, SETTING_NAMES[s][i])) return i;
    return -1;
}

static int setting_set(gstate *g, setting s, int v)
{
    if (v < 0 || v > 2) return BL_EINVAL;
    if (s == SET_MODE)
        g->mode = (bl_global_mode)v;
    else
        g->method = (bl_global_resolve)v;
    return BL_OK;
}

/* ---- requests: gen_server calls to beamlet_global ---- */

static int bad(ei_x_buff *r)
{
    return encode_error(r, "badarg");
}

/* Every name this node knows, ours (g->names) and BEAM's (g->bnames): as atoms, or with rows
 * {Name, Pid, Owner, beamlet | beam} */
static int encode_names(gstate *g, ei_x_buff *r, int rows)
{
    gent *e, *t;
    bname *b;
    long k = 0;
    int rc = 0;
    LL_COUNT(g->bnames, b, k); /* sets k */
    k += (long)HASH_COUNT(g->names);
    if (k) rc |= ei_x_encode_list_header(r, k);
    HASH_ITER(hh, g->names, e, t) {
        if (rows) {
            rc |= ei_x_encode_tuple_header(r, 4);
            rc |= ei_x_encode_atom(r, e->name);
            rc |= bl_x_encode_pid(r, &e->pid);
            rc |= ei_x_encode_atom(r, e->owner);
            rc |= ei_x_encode_atom(r, "beamlet");
        } else {
            rc |= ei_x_encode_atom(r, e->name);
        }
    }
    LL_FOREACH(g->bnames, b) {
        if (rows) {
            rc |= ei_x_encode_tuple_header(r, 4);
            rc |= ei_x_encode_atom(r, b->name);
            rc |= bl_x_encode_pid(r, &b->pid);
            rc |= ei_x_encode_atom(r, g->n->name);
            rc |= ei_x_encode_atom(r, "beam");
        } else {
            rc |= ei_x_encode_atom(r, b->name);
        }
    }
    return rc | ei_x_encode_empty_list(r);
}

static int rq_registered(void *ud, const bl_from *from, const char *buf, int j, int arity,
                         ei_x_buff *r)
{
    (void)from, (void)buf, (void)j, (void)arity;
    return encode_names(ud, r, 0);
}

static int rq_table(void *ud, const bl_from *from, const char *buf, int j, int arity, ei_x_buff *r)
{
    (void)from, (void)buf, (void)j, (void)arity;
    return encode_names(ud, r, 1);
}

static int rq_config(void *ud, const bl_from *from, const char *buf, int j, int arity, ei_x_buff *r)
{
    (void)from, (void)buf, (void)j, (void)arity;
    gstate *g = ud;
    int rc = ei_x_encode_tuple_header(r, 2);
    rc |= ei_x_encode_atom(r, MODE_NAMES[g->mode]);
    return rc | ei_x_encode_atom(r, RESOLVE_NAMES[g->method]);
}

static int rq_register(void *ud, const bl_from *from, const char *buf, int j, int arity,
                       ei_x_buff *r)
{
    (void)arity;
    gstate *g = ud;
    char name[MAXATOMLEN_UTF8];
    bl_pid pid;
    gop *op = NULL;
    if (get_atom(buf, &j, name) < 0 || bl_decode_pid(g->n, buf, &j, &pid) < 0) return bad(r);
    int rc = do_register(g, name, &pid, &op);
    if (rc == 1) {
        op->has_from = 1;
        op->from = *from;
        op_step(op);
        return 1;
    }
    if (rc == BL_EINVAL) return bad(r);
    if (rc == BL_OK || rc == BL_EEXIST) return ei_x_encode_atom(r, rc == BL_OK ? "yes" : "no");
    return reply_rc(r, rc);
}

static int rq_unregister(void *ud, const bl_from *from, const char *buf, int j, int arity,
                         ei_x_buff *r)
{
    (void)from, (void)arity;
    char name[MAXATOMLEN_UTF8];
    if (get_atom(buf, &j, name) < 0 || !valid_name(name)) return bad(r);
    do_unregister(ud, name, NULL);
    return ei_x_encode_atom(r, "ok");
}

/* {whereis, Name} (arity 2) or {send, Name, Msg} (arity 3) */
static int rq_lookup(void *ud, const bl_from *from, const char *buf, int j, int arity, ei_x_buff *r)
{
    gstate *g = ud;
    char name[MAXATOMLEN_UTF8];
    bl_pid pid;
    gop *op = NULL;
    int is_send = arity == 3;
    const char *m = NULL;
    int mlen = 0;
    if (get_atom(buf, &j, name) < 0 || !valid_name(name)) return bad(r);
    if (is_send) {
        int k = j;
        if (bl__skip_term(buf, &k) < 0) return bad(r);
        m = buf + j;
        mlen = k - j;
    }
    int rc = do_lookup(g, is_send ? OP_SEND : OP_WHEREIS, name, &pid, &op);
    if (rc == 1) {
        if (is_send) {
            op->msg = malloc((size_t)mlen + 1);
            if (!op->msg) {
                op_free(op);
                return reply_rc(r, BL_ENOMEM);
            }
            op->msg[0] = (char)131;
            memcpy(op->msg + 1, m, (size_t)mlen);
            op->msglen = mlen + 1;
        }
        op->has_from = 1;
        op->from = *from;
        op_step(op);
        return 1;
    }
    if (rc == BL_OK && is_send) {
        ei_x_buff x;
        int enc = ei_x_new_with_version(&x);
        enc |= ei_x_append_buf(&x, m, mlen);
        rc = enc ? BL_ENOMEM : bl_send(g->proc, &pid, x.buff, x.index);
        ei_x_free(&x);
        if (rc != BL_OK) return reply_rc(r, rc);
    }
    if (rc == BL_OK) return bl_x_encode_pid(r, &pid);
    if (rc != BL_ENOPROC) return reply_rc(r, rc);
    if (!is_send) return ei_x_encode_atom(r, "undefined");
    rc = ei_x_encode_tuple_header(r, 2);
    rc |= ei_x_encode_atom(r, "badarg");
    rc |= ei_x_encode_tuple_header(r, 2);
    rc |= ei_x_encode_atom(r, name);
    return rc | ei_x_append_buf(r, m, mlen);
}

/* {set_resolve, A} and {set_mode, A}: one handler, the rows say which setting */
static int rq_set(gstate *g, setting s, const char *buf, int j, ei_x_buff *r)
{
    char name[MAXATOMLEN_UTF8];
    if (get_atom(buf, &j, name) < 0 || setting_set(g, s, setting_from(s, name)) != BL_OK)
        return bad(r);
    return ei_x_encode_atom(r, "ok");
}

static int rq_set_resolve(void *ud, const bl_from *from, const char *buf, int j, int arity,
                          ei_x_buff *r)
{
    (void)from, (void)arity;
    return rq_set(ud, SET_RESOLVE, buf, j, r);
}

static int rq_set_mode(void *ud, const bl_from *from, const char *buf, int j, int arity,
                       ei_x_buff *r)
{
    (void)from, (void)arity;
    return rq_set(ud, SET_MODE, buf, j, r);
}

static const bl__req REQUESTS[] = {
    {"registered", 0, 0, rq_registered}, {"table", 0, 0, rq_table},
    {"config", 0, 0, rq_config},         {"register", 3, 3, rq_register},
    {"unregister", 2, 2, rq_unregister}, {"whereis", 2, 2, rq_lookup},
    {"send", 3, 3, rq_lookup},           {"set_resolve", 2, 2, rq_set_resolve},
    {"set_mode", 2, 2, rq_set_mode},
};

static int proc_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *r,
                     void *ud)
{
    (void)self;
    int rc =
        bl__req_dispatch(REQUESTS, sizeof(REQUESTS) / sizeof(REQUESTS[0]), ud, from, buf, idx, r);
    return rc == BL__REQ_NONE ? bad(r) : rc;
}

/* ---- node and cluster events, the tick ---- */

/* A BEAM node that lost its connection to us dropped our names (its monitor fired) and does not
 * learn them again when the connection comes back: ask every BEAM member, re-register where lost.
 */
static void refresh(gstate *g)
{
    int k;
    bl_member_info *m = members(g->n, &k);
    for (int i = 0; i < k; i++) {
        if (strcmp(m[i].role, "beam") || m[i].state != BL_MEMBER_ACTIVE ||
            !bl_is_connected(g->n, m[i].node))
            continue;
        const char *alt = "";
        for (int j = 0; j < k && !alt[0]; j++)
            if (j != i && !strcmp(m[j].role, "beam") && m[j].state == BL_MEMBER_ACTIVE &&
                bl_is_connected(g->n, m[j].node))
                alt = m[j].node;
        bname *b;
        LL_FOREACH(g->bnames, b) {
            gop *op = op_new(g, OP_REFRESH, b->name);
            if (!op) break;
            op->pid = b->pid;
            snprintf(op->beam, sizeof(op->beam), "%s", m[i].node);
            snprintf(op->alt, sizeof(op->alt), "%s", alt);
            op_step(op);
        }
    }
    free(m);
}

static void on_tick(bl_node *n, void *ud)
{
    (void)n;
    gstate *g = ud;
    char beam[BL_NODE_LEN];
    if (g->bnames && ++g->ticks % REFRESH_TICKS == 0) refresh(g);
    if (g->bnames && beam_node(g, beam)) { /* BEAM nodes that appeared since: connect */
        gop *op = op_new(g, OP_CONNECT, NULL);
        if (op) {
            snprintf(op->beam, sizeof(op->beam), "%s", beam);
            op_step(op);
        }
    }
}

static void proc_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    gstate *g = ud;
    bl_node *n = g->n;
    if (g->timer_id > 0) bl_timer_cancel(n, g->timer_id);
    bl__repl_free(g->repl);
    gent *e, *t;
    HASH_ITER(hh, g->names, e, t) {
        HASH_DEL(g->names, e);
        free(e);
    }
    while (g->bnames) {
        bname *b = g->bnames;
        g->bnames = b->next;
        free(b);
    }
    while (g->ops)
        op_free(g->ops); /* their rpcs were dropped with this process */
    free(g);
}

static const bl_proc_ops global_ops = {
    .on_msg = proc_msg, .on_call = proc_call, .on_exit = proc_exit, .on_terminate = proc_terminate};

int bl_global_start(bl_node *n);

int bl_global_start(bl_node *n)
{
    if (!n->cfg.cluster_member) return BL_OK;
    gstate *g = calloc(1, sizeof(*g));
    if (!g) return BL_ENOMEM;
    g->n = n;
    g->method = BL_GLOBAL_RANDOM_EXIT;
    g->mode = BL_GLOBAL_AUTO;
    if (n->cfg.global_resolve[0])
        (void)setting_set(g, SET_RESOLVE, setting_from(SET_RESOLVE, n->cfg.global_resolve));
    if (n->cfg.global_mode[0])
        (void)setting_set(g, SET_MODE, setting_from(SET_MODE, n->cfg.global_mode));
    int rc = bl_spawn(n, GNAME, &global_ops, g, &g->proc);
    if (rc != BL_OK) {
        free(g);
        return rc;
    }
    bl_trap_exit(g->proc, 1);
    g->repl = bl__repl_new(n, g->proc, &global_repl, g);
    g->timer_id = bl_timer(n, TICK_MS, TICK_MS, on_tick, g);
    if (!g->repl || g->timer_id < 0) return BL_ENOMEM;
    return BL_OK;
}

/* ---- public C API ---- */

int bl_global_set_resolve(bl_node *n, bl_global_resolve method)
{
    gstate *g = g_of(n);
    return g ? setting_set(g, SET_RESOLVE, (int)method) : BL_ENOPROC;
}

int bl_global_set_mode(bl_node *n, bl_global_mode mode)
{
    gstate *g = g_of(n);
    return g ? setting_set(g, SET_MODE, (int)mode) : BL_ENOPROC;
}

static void attach(gop *op, bl_proc *p, bl_global_cb cb, void *ud)
{
    op->has_req = 1;
    op->req = *bl_self(p);
    op->cb = cb;
    op->ud = ud;
}

static void later_cb(bl_node *n, void *ud)
{
    (void)n;
    gop *op = ud;
    op->timer = 0;
    op_finish(op, op->stage, op->stage == BL_OK ? &op->pid : NULL);
}

/* An answer known now, reported from the loop so cb never runs inside the caller. */
static int answer_later(gstate *g, int kind, const char *name, bl_proc *p, int status,
                        const bl_pid *pid, bl_global_cb cb, void *ud)
{
    if (!cb) return status == BL_ENOPROC && kind != OP_REG ? BL_OK : status;
    gop *op = op_new(g, kind, name);
    if (!op) return BL_ENOMEM;
    attach(op, p, cb, ud);
    op->stage = status;
    if (status == BL_OK) op->pid = *pid;
    int id = bl_timer(g->n, 0, 0, later_cb, op);
    if (id <= 0) {
        op_free(op);
        return BL_ENOMEM;
    }
    op->timer = id;
    return BL_OK;
}

int bl_global_register(bl_proc *p, const char *name, bl_global_cb cb, void *ud)
{
    if (!p || p->dead || !valid_name(name)) return BL_EINVAL;
    gstate *g = g_of(p->n);
    if (!g) return BL_ENOPROC;
    gop *op;
    int rc = do_register(g, name, bl_self(p), &op);
    if (rc == 1) {
        attach(op, p, cb, ud);
        op_step(op);
        return BL_OK;
    }
    if (rc != BL_OK && rc != BL_EEXIST) return rc;
    return answer_later(g, OP_REG, name, p, rc, bl_self(p), cb, ud);
}

int bl_global_unregister(bl_proc *p, const char *name)
{
    if (!p || !valid_name(name)) return BL_EINVAL;
    gstate *g = g_of(p->n);
    if (!g) return BL_ENOPROC;
    return do_unregister(g, name, bl_self(p));
}

static int lookup(bl_proc *p, int kind, const char *name, const char *msg, int len, bl_global_cb cb,
                  void *ud)
{
    if (!p || p->dead || !valid_name(name)) return BL_EINVAL;
    if (kind == OP_SEND && (!msg || len < 2 || (unsigned char)msg[0] != 131)) return BL_EINVAL;
    gstate *g = g_of(p->n);
    if (!g) return BL_ENOPROC;
    gop *op;
    bl_pid pid;
    int rc = do_lookup(g, kind, name, &pid, &op);
    if (rc == 1) {
        if (kind == OP_SEND) {
            if (!(op->msg = malloc((size_t)len))) {
                op_free(op);
                return BL_ENOMEM;
            }
            memcpy(op->msg, msg, (size_t)len);
            op->msglen = len;
        }
        attach(op, p, cb, ud);
        op_step(op);
        return BL_OK;
    }
    if (rc == BL_OK && kind == OP_SEND) rc = bl_send(p, &pid, msg, len);
    if (rc != BL_OK && rc != BL_ENOPROC) return rc;
    return answer_later(g, kind, name, p, rc, &pid, cb, ud);
}

int bl_global_whereis(bl_proc *p, const char *name, bl_global_cb cb, void *ud)
{
    return lookup(p, OP_WHEREIS, name, NULL, 0, cb, ud);
}

int bl_global_send(bl_proc *p, const char *name, const char *msg, int len, bl_global_cb cb,
                   void *ud)
{
    return lookup(p, OP_SEND, name, msg, len, cb, ud);
}
