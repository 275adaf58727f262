/* spawn.c - serving SPAWN_REQUEST: BEAM's spawn/4, rpc and erpc running C functions.
 *
 * A request names M:F/Arity with an argument list. erpc:execute_call(Res, M, F, A) (erpc:call,
 * erpc:multicall, rpc:call, rpc:multicall) and erpc:execute_cast(M, F, A) (erpc:cast, rpc:cast)
 * are understood as BEAM's erpc module would run them; anything else is a plain spawn of M:F/A.
 * What apply(M, F, A) calls (erlang:apply, funs) is apply.c's answer; rex.c starts its calls
 * here too (bl__spawn_rex), answered in rpc's shapes.
 * Like BEAM: a process is spawned, linked and/or monitored as the options say, SPAWN_REPLY goes
 * back with its pid, then the exported function runs in it (otp/export.c). The process ends with
 * the reason BEAM's would have - {Res, return, V}, {Res, error, undef, [{M, F, Args, []}]}, normal,
 * {Reason, Stack} ... - and that reason reaches the parent as the monitor exit
 * (PAYLOAD_MONITOR_P_EXIT when the peer supports EXIT_PAYLOAD) or the link exit. A function may
 * answer later (BL_FN_LATER, then bl_fn_return) without blocking the loop. */
#include "../runtime/internal.h"
#include "../dist/term.h"

#include <stdlib.h>
#include <string.h>

#define SPAWN_MAGIC 0x62537057u

/* SP_DIRECT: spawn/4 of M:F/A; SP_CALL, SP_CAST: erpc:execute_call/4, execute_cast/3; SP_REX: a
 * rex {call | block_call, ...} (answered as rpc answers). */
typedef enum { SP_DIRECT, SP_CALL, SP_CAST, SP_REX } sp_kind;

typedef struct {
    unsigned magic;
    sp_kind kind;
    char *mfa; /* M, F, A back to back (owned); the terms bl__apply_resolve reads */
    int mfa_len;
    bl_apply ap; /* what apply(M, F, A) resolved to */
    char *res;   /* SP_CALL: the encoded Res reference */
    int res_len;
    char *args; /* the called function's argument list, LIST_EXT or NIL (a STRING_EXT expanded) */
    int args_len;
    int reply_to; /* SP_REX: 1 = from (a gen_server call), 2 = to ({rex, Answer}), 0 = answered */
    bl_from from;
    bl_pid to;
    bl_pid parent; /* the process that sent SPAWN_REQUEST (none for rex) */
    int builtin;   /* BL__EXPORT_* of the function it runs */
} spawn_ctx;

static void rex_answer(bl_node *n, spawn_ctx *c, const char *body, int len);

static void sp_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)reason;
    spawn_ctx *c = ud;
    if (!c) return;
    if (c->kind == SP_REX && c->reply_to && self && self->why) {
        /* ended before it answered (an exit signal, the node stopping): rex's DOWN answer */
        ei_x_buff r;
        if (ei_x_new(&r) == 0) {
            ei_x_encode_tuple_header(&r, 2);
            ei_x_encode_atom(&r, "badrpc");
            ei_x_encode_tuple_header(&r, 2);
            ei_x_encode_atom(&r, "EXIT");
            ei_x_append_buf(&r, self->why, self->why_len);
            rex_answer(self->n, c, r.buff, r.index);
            ei_x_free(&r);
        }
    }
    c->magic = 0;
    free(c->mfa);
    free(c->res);
    free(c->args);
    free(c);
}

static const bl_proc_ops SPAWN_OPS = {.on_terminate = sp_terminate};

static int is_atom_at(const char *b, int idx)
{
    int type, size;
    return ei_get_type(b, &idx, &type, &size) == 0 &&
           (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
            type == ERL_SMALL_ATOM_UTF8_EXT);
}

static int skip(const char *b, size_t end, int *idx)
{
    size_t j = (size_t)*idx;
    if (bl_term_check(b, end, &j) != 0) return -1;
    *idx = (int)j;
    return 0;
}

/* Copy the list term at b[*idx] into a fresh buffer as LIST_EXT/NIL; *idx moves past it.
 * Returns its length, or -1 if it is not a proper list. */
static int copy_list(const char *b, size_t end, int *idx, char **out)
{
    int type, size, start = *idx;
    if (ei_get_type(b, idx, &type, &size) < 0) return -1;
    ei_x_buff x;
    if (ei_x_new(&x) < 0) return -1;
    if (type == ERL_STRING_EXT) {
        char *s = malloc((size_t)size + 1);
        if (!s || ei_decode_string(b, idx, s) < 0) {
            free(s);
            ei_x_free(&x);
            return -1;
        }
        if (size > 0) ei_x_encode_list_header(&x, size);
        for (int i = 0; i < size; i++)
            ei_x_encode_long(&x, (unsigned char)s[i]);
        ei_x_encode_empty_list(&x);
        free(s);
    } else if (type == ERL_NIL_EXT || type == ERL_LIST_EXT) {
        int j = start, n;
        if (ei_decode_list_header(b, &j, &n) < 0) goto bad;
        for (int i = 0; i < n; i++)
            if (skip(b, end, &j) < 0) goto bad;
        if (n > 0) { /* the tail must be [] */
            int t, sz;
            if (ei_get_type(b, &j, &t, &sz) < 0 || t != ERL_NIL_EXT) goto bad;
            if (ei_decode_list_header(b, &j, &sz) < 0) goto bad;
        }
        ei_x_append_buf(&x, b + start, j - start);
        *idx = j;
    } else {
        goto bad;
    }
    *out = x.buff; /* ownership passes to the caller */
    return x.index;
bad:
    ei_x_free(&x);
    return -1;
}

static int set_mfa(spawn_ctx *c, const char *b, int len)
{
    c->mfa = malloc((size_t)len);
    if (!c->mfa) return -1;
    memcpy(c->mfa, b, (size_t)len);
    c->mfa_len = len;
    return 0;
}

/* Recognise erpc:execute_call(Res, M, F, A) and erpc:execute_cast(M, F, A): their M, F, A become
 * the request (any terms: apply's checks are bl__apply_resolve's). */
static int unwrap_erpc(spawn_ctx *c, const bl_ctl *ctl, const char *b, size_t end)
{
    int want = !strcmp(ctl->fun, "execute_call") ? 4 : !strcmp(ctl->fun, "execute_cast") ? 3 : 0;
    if (strcmp(ctl->mod, "erpc") != 0 || !want || ctl->arity != want) return 0;
    int j = (int)ctl->msg_off, n;
    if (ei_decode_list_header(b, &j, &n) < 0 || n != want) return 0;
    int rs = j, re = j;
    if (want == 4) {
        int type, size;
        if (ei_get_type(b, &j, &type, &size) < 0 ||
            (type != ERL_NEW_REFERENCE_EXT && type != ERL_NEWER_REFERENCE_EXT))
            return 0;
        if (skip(b, end, &j) < 0) return 0;
        re = j;
    }
    int m = j;
    for (int k = 0; k < 3; k++)
        if (skip(b, end, &j) < 0) return 0;
    if (set_mfa(c, b + m, j - m) < 0) return -1;
    if (want == 4) {
        c->res = malloc((size_t)(re - rs));
        if (!c->res) return -1;
        memcpy(c->res, b + rs, (size_t)(re - rs));
        c->res_len = re - rs;
    }
    c->kind = want == 4 ? SP_CALL : SP_CAST;
    return 1;
}

/* The spawn options: link, monitor, {monitor, Opts}; the process tuning options BEAM accepts
 * (priority, heap sizes, ...) are accepted and ignored. Returns 0, or -1 for badopt. */
static int parse_opts(const char *b, const bl_ctl *ctl, int *link, int *monitor)
{
    static const char *const IGNORED[] = {"priority",      "fullsweep_after",
                                          "min_heap_size", "min_bin_vheap_size",
                                          "max_heap_size", "message_queue_data",
                                          "async_dist",    "reply_tag",
                                          "reply",         NULL};
    int i = (int)ctl->opts_off, n, type, size;
    size_t end = ctl->opts_off + ctl->opts_len;
    *link = *monitor = 0;
    if (ctl->opts_len == 0) return 0;
    if (ei_get_type(b, &i, &type, &size) < 0) return -1;
    if (type == ERL_NIL_EXT) return 0;
    if (type != ERL_LIST_EXT || ei_decode_list_header(b, &i, &n) < 0) return -1;
    for (int k = 0; k < n; k++) {
        char a[MAXATOMLEN_UTF8];
        int ar;
        if (is_atom_at(b, i)) {
            ei_decode_atom(b, &i, a);
            if (!strcmp(a, "link"))
                *link = 1;
            else if (!strcmp(a, "monitor"))
                *monitor = 1;
            else
                return -1;
            continue;
        }
        if (ei_decode_tuple_header(b, &i, &ar) < 0 || ar != 2 || !is_atom_at(b, i)) return -1;
        ei_decode_atom(b, &i, a);
        if (skip(b, end, &i) < 0) return -1;
        if (!strcmp(a, "monitor")) {
            *monitor = 1;
            continue;
        }
        int ok = 0;
        for (int q = 0; IGNORED[q]; q++)
            if (!strcmp(a, IGNORED[q])) ok = 1;
        if (!ok) return -1;
    }
    return 0;
}

static void spawn_reply(bl_node *n, const char *node, const bl_ctl *req, long flags,
                        const bl_pid *pid, const char *error)
{
    bl_ctl c = {.op = BL_CTL_SPAWN_REPLY, .ref = req->ref, .to = req->from, .spawn_flags = flags};
    if (pid) {
        c.from = *pid;
    } else {
        c.has_toname = 1;
        snprintf(c.toname, sizeof(c.toname), "%s", error);
    }
    (void)bl_send_ctl(n, node, &c, NULL, 0);
}

static const char *const CLASS[] = {"return", "throw", "exit", "error"};

static void rex_answer(bl_node *n, spawn_ctx *c, const char *body, int len)
{
    if (c->reply_to == 1) {
        (void)bl_reply(n, &c->from, body, len);
    } else if (c->reply_to == 2) { /* {rex, Answer}, as rex answers a plain {From, {call, ...}} */
        ei_x_buff x;
        if (ei_x_new_with_version(&x) == 0) {
            ei_x_encode_tuple_header(&x, 2);
            ei_x_encode_atom(&x, "rex");
            ei_x_append_buf(&x, body, len);
            (void)bl_send_msg(n, &c->to, x.buff, x.index);
            ei_x_free(&x);
        }
    }
    c->reply_to = 0;
}

/* Why the function failed, for the node's log. */
static void log_failure(bl_node *n, const spawn_ctx *c, int cls)
{
    const bl_apply *a = &c->ap;
    static const char *const WHY[] = {"undef",    "undef",  "badfun",
                                      "badarity", "badarg", "system_limit"};
    if (cls >= 0) {
        bl_log(n, BL_LOG_WARN, "process spawned for %s:%s/%d failed (%s)", a->mod, a->fun, a->arity,
               cls == BL_FN_THROW ? "throw" : "error");
    } else if (a->kind == BL_AP_UNDEF_FUN) {
        bl_log(n, BL_LOG_WARN,
               "process spawned for a fun of module %s failed (undef: a C node runs no Erlang "
               "code, only exported functions)",
               a->mod[0] ? a->mod : "?");
    } else if (a->kind == BL_AP_CALL) {
        bl_log(n, BL_LOG_WARN, "process spawned for %s:%s/%d failed (undef: not exported)", a->mod,
               a->fun, a->arity);
    } else {
        bl_log(n, BL_LOG_WARN, "process spawned for erlang:apply/%d failed (%s)",
               a->hop ? a->hop : 3, WHY[a->kind]);
    }
}

/* End the process with what BEAM's would have for this outcome: cls BL_FN_RETURN..BL_FN_ERROR,
 * v the value or reason, st the stack (error and throw). rex gets rpc's answer first. */
static void finish(bl_proc *p, spawn_ctx *c, int cls, const char *v, int vlen, const char *st,
                   int slen)
{
    bl_node *n = p->n;
    ei_x_buff r;
    if (ei_x_new(&r) < 0) {
        bl_exit(p, "enomem");
        return;
    }
    if (c->kind == SP_CALL) { /* {Res, Class, V} | {Res, error, R, Stack} */
        ei_x_encode_tuple_header(&r, cls == BL_FN_ERROR ? 4 : 3);
        ei_x_append_buf(&r, c->res, c->res_len);
        ei_x_encode_atom(&r, CLASS[cls]);
        ei_x_append_buf(&r, v, vlen);
        if (cls == BL_FN_ERROR) ei_x_append_buf(&r, st, slen);
    } else if (c->kind == SP_REX) { /* V | V (thrown) | {badrpc, {'EXIT', R | {R, Stack}}} */
        ei_x_buff a;
        if (ei_x_new(&a) == 0) {
            if (cls == BL_FN_RETURN || cls == BL_FN_THROW) {
                ei_x_append_buf(&a, v, vlen);
            } else {
                ei_x_encode_tuple_header(&a, 2);
                ei_x_encode_atom(&a, "badrpc");
                ei_x_encode_tuple_header(&a, 2);
                ei_x_encode_atom(&a, "EXIT");
                if (cls == BL_FN_ERROR) ei_x_encode_tuple_header(&a, 2);
                ei_x_append_buf(&a, v, vlen);
                if (cls == BL_FN_ERROR) ei_x_append_buf(&a, st, slen);
            }
            rex_answer(n, c, a.buff, a.index);
            ei_x_free(&a);
        }
        ei_x_encode_atom(&r, "normal");
    } else if (cls == BL_FN_RETURN) {
        ei_x_encode_atom(&r, "normal");
    } else if (cls == BL_FN_EXIT) {
        ei_x_append_buf(&r, v, vlen);
    } else { /* {Reason, Stack}; a throw is {{nocatch, V}, Stack} */
        ei_x_encode_tuple_header(&r, 2);
        if (cls == BL_FN_THROW) {
            ei_x_encode_tuple_header(&r, 2);
            ei_x_encode_atom(&r, "nocatch");
        }
        ei_x_append_buf(&r, v, vlen);
        ei_x_append_buf(&r, st, slen);
    }
    bl_proc_exit_term(p, r.buff, r.index);
    ei_x_free(&r);
}

/* The function returned (kind) with term; the stack of an error or throw is its own frame. */
static void finish_fn(bl_proc *p, spawn_ctx *c, int kind, const char *term, int len)
{
    ei_x_buff st;
    if (ei_x_new(&st) < 0) {
        bl_exit(p, "enomem");
        return;
    }
    if (kind == BL_FN_ERROR || kind == BL_FN_THROW) {
        int trimmed = c->kind != SP_DIRECT;
        if (c->builtin == BL__EXPORT_RAISE)
            bl__apply_raise_stack(&c->ap, c->mfa, trimmed, &st);
        else if (c->builtin == BL__EXPORT_BIF && kind == BL_FN_ERROR)
            bl__apply_bif_stack(&c->ap, c->mfa, trimmed, &st);
        else
            bl__apply_fn_stack(&c->ap, trimmed, &st);
        if (c->kind != SP_CALL && c->kind != SP_REX) log_failure(p->n, c, kind);
    }
    finish(p, c, kind, term, len, st.buff, st.index);
    ei_x_free(&st);
}

static void run(bl_proc *p, spawn_ctx *c)
{
    int m = 0, f, a;
    f = bl__term_end(c->mfa, m);
    a = f < 0 ? -1 : bl__term_end(c->mfa, f);
    if (a < 0) {
        bl_exit(p, "badarg"); /* not reached: the request was checked as a whole */
        return;
    }
    bl__apply_resolve(c->mfa, m, f, a, &c->ap);
    const bl_export_ent *e =
        c->ap.kind == BL_AP_CALL ? bl_export_find(p->n, c->ap.mod, c->ap.fun, c->ap.arity) : NULL;
    int ai = c->ap.args_at;
    c->builtin = bl__export_kind(e);
    if (e) c->args_len = copy_list(c->mfa, (size_t)c->mfa_len, &ai, &c->args);
    if (!e || c->args_len < 0) {
        ei_x_buff reason, stack;
        ei_x_new(&reason);
        ei_x_new(&stack);
        bl__apply_error(&c->ap, c->mfa, c->kind != SP_DIRECT, &reason, &stack);
        if (c->kind != SP_CALL && c->kind != SP_REX) log_failure(p->n, c, -1);
        finish(p, c, BL_FN_ERROR, reason.buff, reason.index, stack.buff, stack.index);
        ei_x_free(&reason);
        ei_x_free(&stack);
        return;
    }
    ei_x_buff result;
    if (ei_x_new(&result) < 0) {
        bl_exit(p, "enomem");
        return;
    }
    int kind = bl_export_invoke(e, p, c->args, 0, &result);
    if (kind == BL_FN_LATER || p->dead) {
        ei_x_free(&result);
        return;
    }
    if (kind < BL_FN_RETURN || kind > BL_FN_ERROR) kind = BL_FN_ERROR;
    if (result.index == 0) ei_x_encode_atom(&result, kind == BL_FN_RETURN ? "ok" : "badarg");
    finish_fn(p, c, kind, result.buff, result.index);
    ei_x_free(&result);
}

static spawn_ctx *ctx_new(sp_kind kind)
{
    spawn_ctx *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->magic = SPAWN_MAGIC;
    c->kind = kind;
    return c;
}

void bl_spawn_serve(bl_node *n, const char *from_node, const bl_ctl *ctl, const char *payload)
{
    if (!ctl->has_from || !ctl->has_ref || !ctl->has_mfa || !ctl->has_msg) return;
    if (strcmp(bl_pid_node(&ctl->from), from_node) != 0)
        return; /* a parent must live on the sender */
    int link, monitor;
    if (parse_opts(payload, ctl, &link, &monitor) < 0) {
        spawn_reply(n, from_node, ctl, 0, NULL, "badopt");
        return;
    }
    spawn_ctx *c = ctx_new(SP_DIRECT);
    if (c) c->parent = ctl->from;
    int u = c ? unwrap_erpc(c, ctl, payload, ctl->msg_end) : -1;
    if (u == 0) { /* spawn of M:F/A: the request is M, F and the argument list */
        ei_x_buff x;
        int ai = (int)ctl->msg_off, ae = ai;
        if (ei_x_new(&x) < 0 || skip(payload, ctl->msg_end, &ae) < 0) {
            u = -1;
        } else {
            ei_x_encode_atom(&x, ctl->mod);
            ei_x_encode_atom(&x, ctl->fun);
            ei_x_append_buf(&x, payload + ai, ae - ai);
            u = set_mfa(c, x.buff, x.index);
        }
        ei_x_free(&x);
    }
    bl_proc *p;
    if (u < 0 || bl_spawn(n, NULL, &SPAWN_OPS, c, &p) != BL_OK) {
        sp_terminate(NULL, NULL, c);
        spawn_reply(n, from_node, ctl, 0, NULL, "system_limit");
        return;
    }
    long flags = 0;
    if (link && bl_proc_add_link(p, &ctl->from) == BL_OK) flags |= BL_SPAWN_FLAG_LINK;
    if (monitor && bl_proc_add_monitor(p, &ctl->from, &ctl->ref, 0) == BL_OK)
        flags |= BL_SPAWN_FLAG_MONITOR;
    spawn_reply(n, from_node, ctl, flags, &p->pid, NULL);
    run(p, c);
}

int bl__spawn_rex(bl_node *n, const char *mfa, int len, const bl_from *from, const bl_pid *to)
{
    spawn_ctx *c = ctx_new(from || to ? SP_REX : SP_CAST);
    if (!c || set_mfa(c, mfa, len) < 0) {
        sp_terminate(NULL, NULL, c);
        return BL_ENOMEM;
    }
    if (from) {
        c->from = *from;
        c->reply_to = 1;
    } else if (to) {
        c->to = *to;
        c->reply_to = 2;
    }
    bl_proc *p;
    int rc = bl_spawn(n, NULL, &SPAWN_OPS, c, &p);
    if (rc != BL_OK) {
        c->reply_to = 0;
        sp_terminate(NULL, NULL, c);
        return rc;
    }
    run(p, c);
    return BL_OK;
}

int bl_fn_return(bl_node *n, const bl_pid *self, int kind, const char *term, int len)
{
    if (!n || !self || kind < BL_FN_RETURN || kind > BL_FN_ERROR || !term || len <= 0)
        return BL_EINVAL;
    bl_proc *p = bl_proc_by_pid(n, self);
    if (!p || p->dead) return BL_ENOPROC;
    spawn_ctx *c = p->ud;
    if (p->ops.on_terminate != sp_terminate || !c || c->magic != SPAWN_MAGIC) return BL_EINVAL;
    int i = 0;
    if (bl__skip_term(term, &i) < 0 || i != len) return BL_EINVAL;
    finish_fn(p, c, kind, term, len);
    return BL_OK;
}

int bl__spawn_mfa(const bl_proc *p, bl__mfa *cur, bl__mfa *init, bl_pid *parent)
{
    spawn_ctx *c = p->ud;
    if (p->ops.on_terminate != sp_terminate || !c || c->magic != SPAWN_MAGIC) return -1;
    snprintf(cur->mod, sizeof(cur->mod), "%s", c->ap.mod);
    snprintf(cur->fun, sizeof(cur->fun), "%s", c->ap.fun);
    cur->arity = c->ap.arity;
    *init = *cur;
    int rex = c->kind == SP_REX || (c->kind == SP_CAST && !c->parent.node);
    if (rex) { /* rex spawns fun() -> apply(M, F, A) end */
        snprintf(init->mod, sizeof(init->mod), "erlang");
        snprintf(init->fun, sizeof(init->fun), "apply");
        init->arity = 2;
    } else if (c->kind == SP_CALL || c->kind == SP_CAST) { /* what BEAM's was spawned as */
        snprintf(init->mod, sizeof(init->mod), "erpc");
        snprintf(init->fun, sizeof(init->fun), "%s",
                 c->kind == SP_CALL ? "execute_call" : "execute_cast");
        init->arity = c->kind == SP_CALL ? 4 : 3;
    } else { /* spawn/4 of M:F/A: the request's own M, F and arity */
        int i = 0, f = bl__term_end(c->mfa, 0), a = f < 0 ? -1 : bl__term_end(c->mfa, f);
        int len = a < 0 ? -1 : bl__list_len(c->mfa, a);
        if (ei_decode_atom_as(c->mfa, &i, init->mod, sizeof(init->mod), ERLANG_UTF8, NULL, NULL) ==
                0 &&
            f >= 0 &&
            ei_decode_atom_as(c->mfa, &f, init->fun, sizeof(init->fun), ERLANG_UTF8, NULL, NULL) ==
                0 &&
            len >= 0)
            init->arity = len;
    }
    *parent = c->parent;
    return 0;
}
