/* global_node.c - a beamlet node driven by test/services/global/bl_global_tests.erl through the
 * public global-names API (beamlet/global.h). It registers `ctl`, whose gen_server calls make the
 * C side act:
 *   {spawn, Name}          -> {ok, Pid} | no | {error, E}   spawn a process, bl_global_register
 *   {exit, Pid}            -> ok          the process ends (reason normal)
 *   {alive, Pid}           -> true | false
 *   {msgs, Pid}            -> [Msg]       messages the process received (cleared)
 *   {whereis, Name}        -> Pid | undefined               bl_global_whereis
 *   {send, Name, Msg}      -> {ok, Pid} | {error, E}        bl_global_send
 *   {unregister, Pid, Name}-> ok | {error, E}               bl_global_unregister
 * Usage: global_node [--global-mode auto|beam|beamlet] [--global-resolve METHOD] NODE FLAGS
 * (NODE FLAGS as for `beamlet node`, e.g. --sname, --cookie, --cluster, --join). */
#include "../../lib/test_cnode.h"
#include <beamlet/global.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wproc {
    struct wproc *next;
    bl_proc *p;
    bl_pid pid;
    ei_x_buff msgs;
    int nmsgs;
} wproc;

typedef struct worker {
    bl_node *n;
    wproc *procs;
} worker;

typedef struct pending {
    worker *w;
    bl_from from;
    int kind; /* 0 register, 1 whereis, 2 send */
} pending;

static worker W;

static wproc *find_w(worker *w, const bl_pid *pid)
{
    for (wproc *x = w->procs; x; x = x->next)
        if (bl_pid_equal(&x->pid, pid)) return x;
    return NULL;
}

static void plain_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    worker *w = ud;
    wproc *x = find_w(w, bl_self(self));
    int j = msg->index;
    if (!x || ei_skip_term(msg->buf, &j) < 0) return;
    ei_x_append_buf(&x->msgs, msg->buf + msg->index, j - msg->index);
    x->nmsgs++;
}

static void plain_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)reason;
    worker *w = ud;
    wproc **pp = &w->procs;
    while (*pp) {
        if ((*pp)->p == self) {
            wproc *d = *pp;
            *pp = d->next;
            ei_x_free(&d->msgs);
            free(d);
            return;
        }
        pp = &(*pp)->next;
    }
}

static const bl_proc_ops plain_ops = {.on_msg = plain_msg, .on_terminate = plain_terminate};

static void encode_err(ei_x_buff *r, int rc)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_string(r, bl_strerror(rc));
}

static void done_cb(bl_proc *p, int status, const bl_pid *pid, void *ud)
{
    (void)p;
    pending *pd = ud;
    ei_x_buff r;
    ei_x_new(&r);
    if (pd->kind == 0) {
        if (status == BL_OK) {
            ei_x_encode_tuple_header(&r, 2);
            ei_x_encode_atom(&r, "ok");
            bl_x_encode_pid(&r, pid);
        } else if (status == BL_EEXIST) {
            ei_x_encode_atom(&r, "no");
        } else {
            encode_err(&r, status);
        }
    } else if (status == BL_OK) {
        if (pd->kind == 2) {
            ei_x_encode_tuple_header(&r, 2);
            ei_x_encode_atom(&r, "ok");
        }
        bl_x_encode_pid(&r, pid);
    } else if (status == BL_ENOPROC && pd->kind == 1) {
        ei_x_encode_atom(&r, "undefined");
    } else {
        encode_err(&r, status);
    }
    bl_reply(pd->w->n, &pd->from, r.buff, r.index);
    ei_x_free(&r);
    free(pd);
}

/* Invalid inputs to the C API: returns the list of checks that failed ([] when all passed). */
static int api_checks(worker *w, bl_proc *self, ei_x_buff *r)
{
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    struct {
        const char *what;
        int ok;
    } c[] = {
        {"register_null_proc", bl_global_register(NULL, "x", NULL, NULL) == BL_EINVAL},
        {"register_empty_name", bl_global_register(self, "", NULL, NULL) == BL_EINVAL},
        {"register_null_name", bl_global_register(self, NULL, NULL, NULL) == BL_EINVAL},
        {"register_long_name", bl_global_register(self, longname, NULL, NULL) == BL_EINVAL},
        {"whereis_long_name", bl_global_whereis(self, longname, NULL, NULL) == BL_EINVAL},
        {"send_no_version", bl_global_send(self, "x", "\x64\x00\x01x", 4, NULL, NULL) == BL_EINVAL},
        {"send_null_msg", bl_global_send(self, "x", NULL, 0, NULL, NULL) == BL_EINVAL},
        {"unregister_not_held", bl_global_unregister(self, "never_registered") == BL_ENOPROC},
        {"unregister_null", bl_global_unregister(NULL, "x") == BL_EINVAL},
        {"set_resolve_bad", bl_global_set_resolve(w->n, (bl_global_resolve)7) == BL_EINVAL},
        {"set_mode_bad", bl_global_set_mode(w->n, (bl_global_mode)9) == BL_EINVAL},
        {"set_resolve_null", bl_global_set_resolve(NULL, BL_GLOBAL_RANDOM_EXIT) == BL_ENOPROC},
        {"resolve_name", !strcmp(bl_global_resolve_name(BL_GLOBAL_NOTIFY_ALL), "notify_all_name")},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        if (c[i].ok) continue;
        ei_x_encode_list_header(r, 1);
        ei_x_encode_atom(r, c[i].what);
    }
    return ei_x_encode_empty_list(r);
}

static int ctl_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *r,
                    void *ud)
{
    worker *w = ud;
    char a[MAXATOMLEN_UTF8], name[MAXATOMLEN_UTF8];
    int j = idx, arity;
    bl_pid pid;
    if (ei_decode_atom(buf, &j, a) == 0 && !strcmp(a, "api_checks")) return api_checks(w, self, r);
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &arity) < 0 || ei_decode_atom(buf, &j, a) < 0) goto bad;
    if (!strcmp(a, "spawn") && arity == 2) {
        if (ei_decode_atom(buf, &j, name) < 0) goto bad;
        wproc *x = calloc(1, sizeof(*x));
        pending *pd = calloc(1, sizeof(*pd));
        bl_proc *p;
        if (!x || !pd || bl_spawn(w->n, NULL, &plain_ops, w, &p) != BL_OK) {
            free(x);
            free(pd);
            encode_err(r, BL_ENOMEM);
            return 0;
        }
        ei_x_new(&x->msgs);
        x->p = p;
        x->pid = *bl_self(p);
        x->next = w->procs;
        w->procs = x;
        pd->w = w;
        pd->from = *from;
        pd->kind = 0;
        int rc = bl_global_register(p, name, done_cb, pd);
        if (rc != BL_OK) {
            free(pd);
            if (rc == BL_EEXIST) return ei_x_encode_atom(r, "no");
            encode_err(r, rc);
            return 0;
        }
        return 1;
    }
    if ((!strcmp(a, "whereis") && arity == 2) || (!strcmp(a, "send") && arity == 3)) {
        if (ei_decode_atom(buf, &j, name) < 0) goto bad;
        pending *pd = calloc(1, sizeof(*pd));
        if (!pd) goto bad;
        pd->w = w;
        pd->from = *from;
        pd->kind = a[0] == 's' ? 2 : 1;
        int rc;
        if (pd->kind == 2) {
            int k = j;
            ei_x_buff m;
            if (ei_skip_term(buf, &k) < 0) {
                free(pd);
                goto bad;
            }
            ei_x_new_with_version(&m);
            ei_x_append_buf(&m, buf + j, k - j);
            rc = bl_global_send(self, name, m.buff, m.index, done_cb, pd);
            ei_x_free(&m);
        } else {
            rc = bl_global_whereis(self, name, done_cb, pd);
        }
        if (rc != BL_OK) {
            free(pd);
            encode_err(r, rc);
            return 0;
        }
        return 1;
    }
    if (!strcmp(a, "unregister") && arity == 3) {
        if (bl_decode_pid(bl_proc_node(self), buf, &j, &pid) < 0 ||
            ei_decode_atom(buf, &j, name) < 0)
            goto bad;
        wproc *x = find_w(w, &pid);
        int rc = x ? bl_global_unregister(x->p, name) : BL_ENOPROC;
        if (rc == BL_OK) return ei_x_encode_atom(r, "ok");
        encode_err(r, rc);
        return 0;
    }
    if (arity == 2 && bl_decode_pid(bl_proc_node(self), buf, &j, &pid) == 0) {
        wproc *x = find_w(w, &pid);
        if (!strcmp(a, "alive")) return ei_x_encode_atom(r, x ? "true" : "false");
        if (!strcmp(a, "exit")) {
            if (x) bl_exit(x->p, "normal");
            return ei_x_encode_atom(r, "ok");
        }
        if (!strcmp(a, "msgs")) {
            if (x && x->nmsgs) {
                ei_x_encode_list_header(r, x->nmsgs);
                ei_x_append_buf(r, x->msgs.buff, x->msgs.index);
                x->msgs.index = 0;
                x->nmsgs = 0;
            }
            return ei_x_encode_empty_list(r);
        }
    }
bad:
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    return ei_x_encode_atom(r, "badarg");
}

static const bl_proc_ops ctl_ops = {.on_call = ctl_call};

int main(int argc, char **argv)
{
    bl_global_mode mode = BL_GLOBAL_AUTO;
    bl_global_resolve method = BL_GLOBAL_RANDOM_EXIT;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    if (!rest) return 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(o, "--global-mode")) {
            mode = !strcmp(v, "beam")      ? BL_GLOBAL_BEAM
                   : !strcmp(v, "beamlet") ? BL_GLOBAL_BEAMLET
                                           : BL_GLOBAL_AUTO;
            i++;
        } else if (!strcmp(o, "--global-resolve")) {
            method = !strcmp(v, "random_notify_name") ? BL_GLOBAL_RANDOM_NOTIFY
                     : !strcmp(v, "notify_all_name")  ? BL_GLOBAL_NOTIFY_ALL
                                                      : BL_GLOBAL_RANDOM_EXIT;
            i++;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    int code = test_cnode_start("global_node", nrest, rest, &W.n);
    free(rest);
    if (code) return code;
    int rc = bl_global_set_mode(W.n, mode);
    if (rc == BL_OK) rc = bl_global_set_resolve(W.n, method);
    if (rc == BL_OK) rc = bl_spawn(W.n, "ctl", &ctl_ops, &W, NULL);
    if (rc == BL_OK) rc = bl_node_run(W.n);
    if (rc != BL_OK) fprintf(stderr, "global_node: %s\n", bl_strerror(rc));
    bl_node_free(W.n);
    int left = 0;
    while (W.procs) {
        wproc *x = W.procs;
        W.procs = x->next;
        ei_x_free(&x->msgs);
        free(x);
        left++;
    }
    if (left) fprintf(stderr, "global_node: %d processes never got on_terminate\n", left);
    return rc == BL_OK && !left ? 0 : 1;
}
