/* spawn.c - serving SPAWN_REQUEST: BEAM's spawn/4, rpc and erpc running C functions.
 *
 * A request names M:F/Arity with an argument list. erpc:execute_call(Res, M, F, A) (erpc:call,
 * erpc:multicall, rpc:call, rpc:multicall) and erpc:execute_cast(M, F, A) (erpc:cast, rpc:cast)
 * are understood as BEAM's erpc module would run them; anything else is a plain spawn of M:F/A.
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

typedef enum { SP_DIRECT, SP_CALL, SP_CAST } sp_kind;

typedef struct {
    unsigned magic;
    sp_kind kind;
    char mod[BL_NAME_LEN], fun[BL_NAME_LEN];
    int arity;
    char *res; /* SP_CALL: the encoded Res reference */
    int res_len;
    char *args; /* the argument list, always LIST_EXT or NIL (a STRING_EXT is expanded) */
    int args_len;
} spawn_ctx;

static void sp_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    spawn_ctx *c = ud;
    if (!c) return;
    c->magic = 0;
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

/* Copy the list term at b[*idx] into a fresh buffer as LIST_EXT/NIL; *idx moves past it.
 * Returns its length, or -1 if it is not a proper list. */
static int skip(const char *b, size_t end, int *idx)
{
    size_t j = (size_t)*idx;
    if (bl_term_check(b, end, &j) != 0) return -1;
    *idx = (int)j;
    return 0;
}

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

/* Recognise erpc:execute_call(Res, M, F, A) and erpc:execute_cast(M, F, A). */
static void unwrap_erpc(spawn_ctx *c, const char *b, size_t end, int idx)
{
    int want = !strcmp(c->fun, "execute_call") ? 4 : !strcmp(c->fun, "execute_cast") ? 3 : 0;
    if (strcmp(c->mod, "erpc") != 0 || !want || c->arity != want) return;
    int j = idx, n;
    if (ei_decode_list_header(b, &j, &n) < 0 || n != want) return;
    int rs = j, re = j;
    if (want == 4) {
        int type, size;
        if (ei_get_type(b, &j, &type, &size) < 0 ||
            (type != ERL_NEW_REFERENCE_EXT && type != ERL_NEWER_REFERENCE_EXT))
            return;
        if (skip(b, end, &j) < 0) return;
        re = j;
    }
    char m[MAXATOMLEN_UTF8], f[MAXATOMLEN_UTF8];
    if (!is_atom_at(b, j) || ei_decode_atom(b, &j, m) < 0 || !is_atom_at(b, j) ||
        ei_decode_atom(b, &j, f) < 0 || strlen(m) >= BL_NAME_LEN || strlen(f) >= BL_NAME_LEN)
        return;
    char *args = NULL;
    int alen = copy_list(b, end, &j, &args);
    if (alen < 0) return;
    int ai = 0, an;
    ei_decode_list_header(args, &ai, &an);
    if (want == 4) {
        c->res = malloc((size_t)(re - rs));
        if (!c->res) {
            free(args);
            return;
        }
        memcpy(c->res, b + rs, (size_t)(re - rs));
        c->res_len = re - rs;
    }
    free(c->args);
    c->args = args;
    c->args_len = alen;
    c->kind = want == 4 ? SP_CALL : SP_CAST;
    snprintf(c->mod, sizeof(c->mod), "%s", m);
    snprintf(c->fun, sizeof(c->fun), "%s", f);
    c->arity = an;
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

/* [{M, F, ArityOrArgs, []}] */
static void encode_stack(ei_x_buff *x, const spawn_ctx *c, int with_args)
{
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, c->mod);
    ei_x_encode_atom(x, c->fun);
    if (with_args)
        ei_x_append_buf(x, c->args, c->args_len);
    else
        ei_x_encode_long(x, c->arity);
    ei_x_encode_empty_list(x);
    ei_x_encode_empty_list(x);
}

enum { OUT_UNDEF = 100 };

/* End the process with the reason BEAM's would have for this outcome. */
static void finish(bl_proc *p, spawn_ctx *c, int kind, const char *term, int len)
{
    bl_node *n = p->n;
    ei_x_buff r;
    ei_x_new(&r);
    int failed = kind != BL_FN_RETURN;
    if (c->kind == SP_CALL) {
        ei_x_encode_tuple_header(&r, kind == BL_FN_ERROR || kind == OUT_UNDEF ? 4 : 3);
        ei_x_append_buf(&r, c->res, c->res_len);
        ei_x_encode_atom(&r, kind == BL_FN_RETURN  ? "return"
                             : kind == BL_FN_THROW ? "throw"
                             : kind == BL_FN_EXIT  ? "exit"
                                                   : "error");
        if (kind == OUT_UNDEF)
            ei_x_encode_atom(&r, "undef");
        else
            ei_x_append_buf(&r, term, len);
        if (kind == BL_FN_ERROR || kind == OUT_UNDEF) encode_stack(&r, c, kind == OUT_UNDEF);
        failed = 0; /* erpc reports it to the caller */
    } else if (kind == BL_FN_RETURN) {
        ei_x_encode_atom(&r, "normal");
    } else if (kind == BL_FN_EXIT) {
        ei_x_append_buf(&r, term, len);
    } else { /* {Reason, Stack}; a throw is {{nocatch, V}, Stack} */
        ei_x_encode_tuple_header(&r, 2);
        if (kind == OUT_UNDEF) {
            ei_x_encode_atom(&r, "undef");
        } else if (kind == BL_FN_THROW) {
            ei_x_encode_tuple_header(&r, 2);
            ei_x_encode_atom(&r, "nocatch");
            ei_x_append_buf(&r, term, len);
        } else {
            ei_x_append_buf(&r, term, len);
        }
        encode_stack(&r, c, kind == OUT_UNDEF);
    }
    if (failed && kind != BL_FN_EXIT)
        bl_log(n, BL_LOG_WARN, "process spawned for %s:%s/%d failed (%s)", c->mod, c->fun, c->arity,
               kind == OUT_UNDEF     ? "undef"
               : kind == BL_FN_THROW ? "throw"
                                     : "error");
    bl_proc_exit_term(p, r.buff, r.index);
    ei_x_free(&r);
}

static void run(bl_proc *p, spawn_ctx *c)
{
    const bl_export_ent *e = bl_export_find(p->n, c->mod, c->fun, c->arity);
    if (!e) {
        finish(p, c, OUT_UNDEF, NULL, 0);
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
    finish(p, c, kind, result.buff, result.index);
    ei_x_free(&result);
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
    spawn_ctx *c = calloc(1, sizeof(*c));
    if (!c || strlen(ctl->mod) >= BL_NAME_LEN || strlen(ctl->fun) >= BL_NAME_LEN) {
        free(c);
        spawn_reply(n, from_node, ctl, 0, NULL, "system_limit");
        return;
    }
    c->magic = SPAWN_MAGIC;
    c->kind = SP_DIRECT;
    snprintf(c->mod, sizeof(c->mod), "%s", ctl->mod);
    snprintf(c->fun, sizeof(c->fun), "%s", ctl->fun);
    c->arity = (int)ctl->arity;
    int ai = (int)ctl->msg_off;
    c->args_len = copy_list(payload, ctl->msg_end, &ai, &c->args);
    if (c->args_len < 0) { /* bl_ctl_decode checked the list: only out of memory gets here */
        free(c);
        spawn_reply(n, from_node, ctl, 0, NULL, "system_limit");
        return;
    }
    unwrap_erpc(c, payload, ctl->msg_end, (int)ctl->msg_off);

    bl_proc *p;
    if (bl_spawn(n, NULL, &SPAWN_OPS, c, &p) != BL_OK) {
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

int bl_fn_return(bl_node *n, const bl_pid *self, int kind, const char *term, int len)
{
    if (!n || !self || kind < BL_FN_RETURN || kind > BL_FN_ERROR || !term || len <= 0)
        return BL_EINVAL;
    bl_proc *p = bl_proc_by_pid(n, self);
    if (!p || p->dead) return BL_ENOPROC;
    spawn_ctx *c = p->ud;
    if (p->ops.on_terminate != sp_terminate || !c || c->magic != SPAWN_MAGIC) return BL_EINVAL;
    int i = 0;
    if (ei_skip_term(term, &i) < 0 || i != len) return BL_EINVAL;
    finish(p, c, kind, term, len);
    return BL_OK;
}
