/* pg_worker.c - a beamlet node driven by test/services/bl_pg_tests.erl through the public pg API
 * (beamlet/pg.h). It registers `ctl`, whose gen_server calls make the C side act:
 *   {spawn_join, Scope, Group}   -> {ok, Pid}    spawn a process and join it to Group
 *   {join, Pid, Scope, Group}    -> ok | {error, E}
 *   {leave, Pid, Scope, Group}   -> ok | not_joined | {error, E}
 *   {exit, Pid}                  -> ok           the process ends (reason normal)
 *   {members, Scope, Group}      -> [Pid]        bl_pg_get_members
 *   {local_members, Scope, Group}-> [Pid]        bl_pg_get_local_members
 *   {start_scope, Scope}         -> ok | {error, E}
 *   {monitor, Scope}             -> ok           record join/leave events (bl_pg_monitor)
 *   events                       -> [{join | leave, Scope, Group, [Pid]}] (and clears them)
 *   {connect, Node}              -> ok
 *   {spawn_join_ei, Scope}       -> {ok, Pid}    join {ei_group, "abc", 300000000, [1, 2]}, encoded
 *                                                by ei as non-BEAM forms (a list, not a string)
 * Usage: pg_worker --sname NAME --cookie COOKIE [--net-ticktime S] */
#include "../lib/test_cnode.h"
#include <beamlet/pg.h>
#include <ei.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MEMBERS 1024

typedef struct wproc {
    struct wproc *next;
    bl_proc *p;
    bl_pid pid;
} wproc;

typedef struct worker {
    bl_node *n;
    wproc *procs;
    ei_x_buff events;
    int nevents;
} worker;

static void plain_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)reason;
    worker *w = ud;
    wproc **pp = &w->procs;
    while (*pp) {
        if ((*pp)->p == self) {
            wproc *d = *pp;
            *pp = d->next;
            free(d);
            return;
        }
        pp = &(*pp)->next;
    }
}

static const bl_proc_ops plain_ops = {.on_terminate = plain_terminate};

static bl_proc *find_proc(worker *w, const bl_pid *pid)
{
    for (wproc *x = w->procs; x; x = x->next)
        if (bl_pid_equal(&x->pid, pid)) return x->p;
    return NULL;
}

static void on_pg(bl_node *n, const char *scope, bl_pg_event ev, const char *group, int glen,
                  const bl_pid *pids, int npids, void *ud)
{
    (void)n;
    worker *w = ud;
    ei_x_buff *x = &w->events;
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, ev == BL_PG_JOIN ? "join" : "leave");
    ei_x_encode_atom(x, scope);
    ei_x_append_buf(x, group, glen);
    ei_x_encode_list_header(x, npids);
    for (int i = 0; i < npids; i++)
        bl_x_encode_pid(x, &pids[i]);
    ei_x_encode_empty_list(x);
    w->nevents++;
}

static int span(const char *buf, int *idx, const char **start, int *len)
{
    int b = *idx;
    if (ei_skip_term(buf, idx) < 0) return -1;
    *start = buf + b;
    *len = *idx - b;
    return 0;
}

static int reply_rc(ei_x_buff *r, int rc)
{
    if (rc == BL_OK) return ei_x_encode_atom(r, "ok");
    if (rc == BL_PG_NOT_JOINED) return ei_x_encode_atom(r, "not_joined");
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    return ei_x_encode_string(r, bl_strerror(rc));
}

static int ctl_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *r,
                    void *ud)
{
    (void)from;
    worker *w = ud;
    char a[MAXATOMLEN_UTF8], scope[MAXATOMLEN_UTF8];
    int j = idx, arity;
    if (ei_decode_atom(buf, &j, a) == 0 && !strcmp(a, "events")) {
        if (w->nevents) {
            ei_x_encode_list_header(r, w->nevents);
            ei_x_append_buf(r, w->events.buff, w->events.index);
        }
        w->events.index = 0;
        w->nevents = 0;
        return ei_x_encode_empty_list(r);
    }
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &arity) < 0 || ei_decode_atom(buf, &j, a) < 0) goto bad;
    const char *g;
    int glen;
    bl_pid pid;
    if (!strcmp(a, "spawn_join") && arity == 3) {
        if (ei_decode_atom(buf, &j, scope) < 0 || span(buf, &j, &g, &glen) < 0) goto bad;
        bl_proc *p;
        wproc *x = calloc(1, sizeof(*x));
        if (!x) return reply_rc(r, BL_ENOMEM);
        int rc = bl_spawn(w->n, NULL, &plain_ops, w, &p);
        if (rc != BL_OK) {
            free(x);
            return reply_rc(r, rc);
        }
        x->p = p;
        x->pid = *bl_self(p);
        x->next = w->procs;
        w->procs = x;
        rc = bl_pg_join(p, scope, g, glen);
        if (rc != BL_OK) return reply_rc(r, rc);
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "ok");
        return bl_x_encode_pid(r, bl_self(p));
    }
    if (!strcmp(a, "spawn_join_ei") && arity == 2) {
        if (ei_decode_atom(buf, &j, scope) < 0) goto bad;
        ei_x_buff eg;
        ei_x_new(&eg);
        ei_x_encode_tuple_header(&eg, 4);
        ei_x_encode_atom_len_as(&eg, "ei_group", 8, ERLANG_ASCII, ERLANG_LATIN1); /* ATOM_EXT */
        ei_x_encode_list_header(&eg, 3); /* "abc" as a LIST_EXT of INTEGER_EXT, not a string */
        for (int k = 0; k < 3; k++) {
            char b[5] = {'b', 0, 0, 0, (char)('a' + k)};
            ei_x_append_buf(&eg, b, 5);
        }
        ei_x_encode_empty_list(&eg);
        ei_x_encode_longlong(&eg, 300000000);
        ei_x_encode_list_header(&eg, 2);
        ei_x_encode_long(&eg, 1);
        ei_x_encode_long(&eg, 2);
        ei_x_encode_empty_list(&eg);
        bl_proc *p;
        wproc *x = calloc(1, sizeof(*x));
        int rc = x ? bl_spawn(w->n, NULL, &plain_ops, w, &p) : BL_ENOMEM;
        if (rc != BL_OK) {
            free(x);
            ei_x_free(&eg);
            return reply_rc(r, rc);
        }
        x->p = p;
        x->pid = *bl_self(p);
        x->next = w->procs;
        w->procs = x;
        rc = bl_pg_join(p, scope, eg.buff, eg.index);
        ei_x_free(&eg);
        if (rc != BL_OK) return reply_rc(r, rc);
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "ok");
        return bl_x_encode_pid(r, bl_self(p));
    }
    if ((!strcmp(a, "join") || !strcmp(a, "leave")) && arity == 4) {
        if (bl_decode_pid(bl_proc_node(self), buf, &j, &pid) < 0 ||
            ei_decode_atom(buf, &j, scope) < 0 || span(buf, &j, &g, &glen) < 0)
            goto bad;
        bl_proc *p = find_proc(w, &pid);
        if (!p) return reply_rc(r, BL_ENOPROC);
        return reply_rc(r, a[0] == 'j' ? bl_pg_join(p, scope, g, glen)
                                       : bl_pg_leave(p, scope, g, glen));
    }
    if (!strcmp(a, "exit") && arity == 2) {
        if (bl_decode_pid(bl_proc_node(self), buf, &j, &pid) < 0) goto bad;
        bl_proc *p = find_proc(w, &pid);
        if (!p) return reply_rc(r, BL_ENOPROC);
        bl_exit(p, "normal");
        return reply_rc(r, BL_OK);
    }
    if ((!strcmp(a, "members") || !strcmp(a, "local_members")) && arity == 3) {
        if (ei_decode_atom(buf, &j, scope) < 0 || span(buf, &j, &g, &glen) < 0) goto bad;
        static bl_pid out[MAX_MEMBERS]; /* 1 KB each: keep it off the stack */
        int k = a[0] == 'm' ? bl_pg_get_members(w->n, scope, g, glen, out, MAX_MEMBERS)
                            : bl_pg_get_local_members(w->n, scope, g, glen, out, MAX_MEMBERS);
        if (k < 0) return reply_rc(r, k);
        if (k > MAX_MEMBERS) k = MAX_MEMBERS;
        if (k) ei_x_encode_list_header(r, k);
        for (int i = 0; i < k; i++)
            bl_x_encode_pid(r, &out[i]);
        return ei_x_encode_empty_list(r);
    }
    if (!strcmp(a, "start_scope") && arity == 2) {
        if (ei_decode_atom(buf, &j, scope) < 0) goto bad;
        return reply_rc(r, bl_pg_start_scope(w->n, scope));
    }
    if (!strcmp(a, "monitor") && arity == 2) {
        if (ei_decode_atom(buf, &j, scope) < 0) goto bad;
        int id = bl_pg_monitor(w->n, scope, on_pg, w);
        return reply_rc(r, id > 0 ? BL_OK : id);
    }
    if (!strcmp(a, "connect") && arity == 2) {
        if (ei_decode_atom(buf, &j, scope) < 0) goto bad;
        return reply_rc(r, bl_connect(w->n, scope));
    }
bad:
    (void)self;
    return reply_rc(r, BL_EINVAL);
}

static const bl_proc_ops ctl_ops = {.on_call = ctl_call};

int main(int argc, char **argv)
{
    bl_config cfg;
    bl_config_init(&cfg);
    int have_name = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (!strcmp(opt, "--sname") && strlen(val) < sizeof cfg.name) {
            snprintf(cfg.name, sizeof cfg.name, "%s", val);
            cfg.longnames = 0;
            have_name = 1;
        } else if (!strcmp(opt, "--cookie") && strlen(val) < sizeof cfg.cookie) {
            snprintf(cfg.cookie, sizeof cfg.cookie, "%s", val);
        } else if (!strcmp(opt, "--net-ticktime") && atoi(val) > 0) {
            cfg.net_ticktime_s = (unsigned)atoi(val);
        } else if (!strncmp(opt, "--tls", 5) && test_cnode_tls_opt(&cfg, opt, val) == 0) {
            /* TLS distribution (--tls true, --tls-cert F, ...), as `beamlet node` takes it */
        } else if (!strcmp(opt, "--log-level") && !strcmp(val, "debug")) {
            cfg.log_level = BL_LOG_DEBUG;
        } else {
            have_name = 0;
            break;
        }
    }
    if (!have_name || argc % 2 == 0) {
        fprintf(stderr, "usage: pg_worker --sname NAME --cookie COOKIE [--net-ticktime S]\n");
        return 2;
    }
    snprintf(cfg.role, sizeof cfg.role, "%s", "worker");
    worker w = {0};
    if (ei_x_new(&w.events) < 0) return 1;
    int rc = bl_node_new(&cfg, &w.n);
    if (rc < 0) {
        fprintf(stderr, "pg_worker: bl_node_new: %s\n", bl_strerror(rc));
        ei_x_free(&w.events);
        return 1;
    }
    rc = bl_node_start(w.n);
    if (rc == BL_OK) rc = bl_spawn(w.n, "ctl", &ctl_ops, &w, NULL);
    if (rc == BL_OK) rc = bl_node_run(w.n);
    if (rc != BL_OK) fprintf(stderr, "pg_worker: %s\n", bl_strerror(rc));
    bl_node_free(w.n);
    ei_x_free(&w.events);
    int left = 0;
    while (w.procs) {
        wproc *x = w.procs;
        w.procs = x->next;
        free(x);
        left++;
    }
    if (left) fprintf(stderr, "pg_worker: %d processes never got on_terminate\n", left);
    return rc == BL_OK && !left ? 0 : 1;
}
