/* erpc.c - calls from C into other nodes the way OTP 23+'s erpc makes them.
 *
 * bl_erpc_call sends SPAWN_REQUEST for erpc:execute_call(Res, M, F, A) with the monitor option, as
 * erpc:call does: the peer answers SPAWN_REPLY (an error atom ends the call), then the monitor
 * exit of the spawned process carries {Res, return | throw | exit, V} or {Res, error, R, Stack}.
 * Value, exception, timeout and nodedown reach the callback as distinct statuses. A peer without
 * DFLAG_SPAWN (an ei node, or an OTP release before 23) gets the same call through rex, its
 * {badrpc, ...} answers mapped to the same statuses. The peer's flags are known only once the
 * connection is up, so a call to a node not connected yet waits for nodeup (its timer running).
 * bl_erpc_cast is erpc:cast: execute_cast(M, F, A) with no monitor (or a rex cast). */
#include "../runtime/internal.h"

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

/* pend = {M, F, Args}: the pieces back. */
static int split_pend(const bl_pcall *c, char *mod, char *fun, int *args_at, int *args_len)
{
    int i = 0, ar;
    if (ei_decode_tuple_header(c->pend, &i, &ar) < 0 || ar != 3 ||
        ei_decode_atom(c->pend, &i, mod) < 0 || ei_decode_atom(c->pend, &i, fun) < 0)
        return -1;
    *args_at = i;
    *args_len = c->pend_len - i;
    return 0;
}

static int send_spawn_request(bl_pcall *c, const char *mod, const char *fun, const char *args,
                              int alen)
{
    bl_proc *p = c->p;
    bl_node *n = p->n;
    char opts[32];
    int oi = 0;
    bl_ctl r = {.op = BL_CTL_SPAWN_REQUEST, .ref = c->ref, .from = p->pid, .arity = 3};
    snprintf(r.mod, sizeof(r.mod), "erpc");
    snprintf(r.fun, sizeof(r.fun), "execute_cast");
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return BL_ENOMEM;
    if (c->is_cast) {
        ei_x_encode_list_header(&x, 3);
    } else {
        snprintf(r.fun, sizeof(r.fun), "execute_call");
        r.arity = 4;
        ei_encode_list_header(opts, &oi, 1);
        ei_encode_atom(opts, &oi, "monitor");
        ei_encode_empty_list(opts, &oi);
        r.opts = opts;
        r.opts_len_enc = oi;
        bl__ref_make(n, &c->res);
        ei_x_encode_list_header(&x, 4);
        bl__x_encode_ref(&x, &c->res);
    }
    ei_x_encode_atom(&x, mod);
    ei_x_encode_atom(&x, fun);
    ei_x_append_buf(&x, args, alen);
    ei_x_encode_empty_list(&x);
    int rc = bl_ctl_encode(&n->scratch, &r, NULL, 0) < 0
                 ? BL_EINVAL
                 : bl_conn_send_frame(n, c->node, x.buff, x.index, 0);
    ei_x_free(&x);
    return rc;
}

static int send_rex(bl_pcall *c, const char *mod, const char *fun, const char *args, int alen)
{
    ei_x_buff x;
    if (ei_x_new(&x) < 0) return BL_ENOMEM;
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, c->is_cast ? "cast" : "call");
    ei_x_encode_atom(&x, mod);
    ei_x_encode_atom(&x, fun);
    ei_x_append_buf(&x, args, alen);
    if (c->is_cast) /* {cast, M, F, A, GroupLeader} */
        bl_x_encode_pid(&x, &c->p->pid);
    else
        ei_x_encode_atom(&x, "user");
    int rc;
    if (c->is_cast) {
        rc = bl_cast(c->p, NULL, "rex", c->node, x.buff, x.index);
    } else {
        c->kind = PCALL_ERPC_REX;
        rc = bl_pcall_send_gen(c, NULL, "rex", x.buff, x.index);
    }
    ei_x_free(&x);
    return rc;
}

/* The connection is up: send c as erpc or rex, as the peer's flags allow. */
int bl_erpc_send(bl_pcall *c)
{
    char mod[MAXATOMLEN_UTF8], fun[MAXATOMLEN_UTF8];
    int at, len;
    if (split_pend(c, mod, fun, &at, &len) < 0) return BL_EINVAL;
    c->pending = 0;
    if (bl_conn_peer_flags(c->p->n, c->node) & BL_DFLAG_SPAWN)
        return send_spawn_request(c, mod, fun, c->pend + at, len);
    return send_rex(c, mod, fun, c->pend + at, len);
}

static void noop_cb(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    (void)status;
    (void)buf;
    (void)index;
    (void)ud;
}

static int start(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
                 int argslen, unsigned timeout_ms, bl_call_cb cb, void *ud, int is_cast)
{
    if (!p || p->dead) return BL_ENOPROC;
    if (!node || !mod || !fun || !args || argslen <= 0 || strlen(mod) >= BL_NAME_LEN ||
        strlen(fun) >= BL_NAME_LEN || (!is_cast && !cb))
        return BL_EINVAL;
    bl_node *n = p->n;
    if (bl_is_local_node(n, node)) return BL_EINVAL;
    int type, size, i = 0;
    if (ei_get_type(args, &i, &type, &size) < 0 ||
        (type != ERL_LIST_EXT && type != ERL_NIL_EXT && type != ERL_STRING_EXT))
        return BL_EINVAL;
    int rc = bl_connect(n, node);
    if (rc != BL_OK) return rc;
    bl_pcall *c = bl_pcall_new(p, node, PCALL_ERPC, is_cast ? noop_cb : cb, ud);
    if (!c) return BL_ENOMEM;
    c->is_cast = is_cast;
    ei_x_buff x;
    if (ei_x_new(&x) < 0) {
        bl_pcall_free(c);
        return BL_ENOMEM;
    }
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, mod);
    ei_x_encode_atom(&x, fun);
    ei_x_append_buf(&x, args, argslen);
    c->pend = x.buff; /* owned by c now */
    c->pend_len = x.index;
    if (!bl_is_connected(n, node)) {
        c->pending = 1;
        bl_pcall_arm(c, is_cast ? n->cfg.connect_timeout_ms : timeout_ms);
        return BL_OK;
    }
    rc = bl_erpc_send(c);
    if (rc != BL_OK || is_cast) {
        bl_pcall_free(c);
        return rc;
    }
    bl_pcall_arm(c, timeout_ms);
    return BL_OK;
}

int bl_erpc_call(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
                 int argslen, unsigned timeout_ms, bl_call_cb cb, void *ud)
{
    return start(p, node, mod, fun, args, argslen, timeout_ms, cb, ud, 0);
}

int bl_erpc_cast(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
                 int argslen)
{
    return start(p, node, mod, fun, args, argslen, 0, NULL, NULL, 1);
}

/* Complete c with BL_EEXCEPTION and {Class, Reason, Stack}; stack NULL: []. */
static void exception(bl_pcall *c, const char *cls, const char *buf, int reason_at, int stack_at)
{
    ei_x_buff x;
    if (ei_x_new(&x) < 0) {
        bl_pcall_complete(c, BL_ENOMEM, NULL, 0);
        return;
    }
    int e = reason_at;
    bl__skip_term(buf, &e);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, cls);
    ei_x_append_buf(&x, buf + reason_at, e - reason_at);
    if (stack_at >= 0) {
        int se = stack_at;
        bl__skip_term(buf, &se);
        ei_x_append_buf(&x, buf + stack_at, se - stack_at);
    } else {
        ei_x_encode_empty_list(&x);
    }
    bl_pcall_complete(c, BL_EEXCEPTION, x.buff, 0);
    ei_x_free(&x);
}

/* The monitor exit of our erpc:execute_call process: reason at buf[idx]. */
void bl_erpc_down(bl_pcall *c, const char *buf, int idx)
{
    int i = idx, ar;
    char a[MAXATOMLEN_UTF8];
    bl__ref res;
    if (ei_decode_tuple_header(buf, &i, &ar) == 0 && (ar == 3 || ar == 4) &&
        bl__decode_ref(c->p->n, buf, &i, &res) == 0 && bl__ref_equal(&res, &c->res) &&
        get_atom(buf, &i, a) == 0) {
        if (ar == 3 && !strcmp(a, "return")) {
            bl_pcall_complete(c, 0, buf, i);
            return;
        }
        if (ar == 3 && (!strcmp(a, "throw") || !strcmp(a, "exit") || !strcmp(a, "error"))) {
            exception(c, a, buf, i, -1);
            return;
        }
        if (ar == 4 && !strcmp(a, "error")) {
            int s = i;
            bl__skip_term(buf, &s);
            exception(c, "error", buf, i, s);
            return;
        }
    }
    i = idx;
    if (get_atom(buf, &i, a) == 0 && !strcmp(a, "noconnection")) {
        bl_pcall_complete(c, BL_ENODEDOWN, NULL, 0);
        return;
    }
    exception(c, "exit", buf, idx, -1); /* killed before it could answer: erpc's {signal, R} */
}

/* rex's answer to a bl_erpc_call made through rex. */
void bl_erpc_rex_reply(bl_pcall *c, const char *buf, int idx)
{
    int i = idx, ar;
    char a[MAXATOMLEN_UTF8];
    if (!(ei_decode_tuple_header(buf, &i, &ar) == 0 && ar == 2 && get_atom(buf, &i, a) == 0 &&
          !strcmp(a, "badrpc"))) {
        bl_pcall_complete(c, 0, buf, idx);
        return;
    }
    int r = i, j = i;
    if (get_atom(buf, &j, a) == 0) {
        if (!strcmp(a, "nodedown")) {
            bl_pcall_complete(c, BL_ENODEDOWN, NULL, 0);
            return;
        }
        if (!strcmp(a, "timeout")) {
            bl_pcall_complete(c, BL_ETIMEOUT, NULL, 0);
            return;
        }
    }
    j = r;
    if (ei_decode_tuple_header(buf, &j, &ar) == 0 && ar == 2 && get_atom(buf, &j, a) == 0 &&
        !strcmp(a, "EXIT")) { /* {'EXIT', {Reason, Stack}} for errors, {'EXIT', R} for exits */
        int k = j, ar2, type, size;
        if (ei_decode_tuple_header(buf, &k, &ar2) == 0 && ar2 == 2) {
            int s = k;
            bl__skip_term(buf, &s);
            if (ei_get_type(buf, &s, &type, &size) == 0 &&
                (type == ERL_LIST_EXT || type == ERL_NIL_EXT)) {
                exception(c, "error", buf, k, s);
                return;
            }
        }
        exception(c, "exit", buf, j, -1);
        return;
    }
    bl_pcall_complete(c, BL_EBADRPC, buf, r);
}

/* nodeup: send the calls that waited for this connection. */
static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)reason;
    (void)ud;
    if (ev != BL_NODEUP) return;
    bl_proc *p, *pt;
    HASH_ITER(hh, n->procs, p, pt)
    {
        bl_pcall *c, *ct;
        HASH_ITER(hh, p->calls, c, ct)
        {
            if (!c->pending || strcmp(c->node, node) != 0) continue;
            int rc = bl_erpc_send(c);
            if (rc != BL_OK || c->is_cast) bl_pcall_complete(c, rc, NULL, 0);
            if (p->dead) break;
        }
    }
}

int bl_erpc_start(bl_node *n)
{
    int id = bl_monitor_nodes(n, on_node, NULL);
    return id > 0 ? BL_OK : id;
}
