/* bif.c - the functions every node exports, so rpc:call/erpc:call from BEAM work on the questions
 * one asks any node. The erlang ones answer with what BEAM returns on a hidden node:
 *   erlang:node/0, is_alive/0, nodes/0 ([]: this node is hidden, so every connection is hidden),
 *   nodes/1 (visible | hidden | connected | this | known, or a list of them), registered/0,
 *   whereis/1, memory/0,1 (total = RSS, processes = the process table, system = the rest; atom,
 *   binary, code and ets are 0: a C node has no atom table, binary heap, code or ETS), and
 *   system_info/1 for process_count, process_limit, port_count, port_limit, schedulers,
 *   schedulers_online, logical_processors, logical_processors_online, wordsize, creation, machine,
 *   version, system_version, otp_release (the OTP release whose distribution protocol this node
 *   speaks) - any other key is badarg, as BEAM's answer to an unknown key.
 *   erlang:error/1,2, exit/1 and throw/1 raise as BEAM's do, with BEAM's stack frames (so
 *   erpc:call(CNode, erlang, error, [x]) raises {exception, x, [{erlang, error, [x], []}]}).
 *   erlang:process_info/1,2 is otp/pinfo.c. A built-in's own errors (badarg) carry the frame
 *   BEAM's BIFs have: {erlang, F, Args, [{error_info, #{module => erl_erts_errors}}]}.
 *   beamlet:info/0 and beamlet:stats/0 are the maps the beamlet process answers. */
#include "../runtime/internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BL_OTP_RELEASE "25"

static int is_atom(const char *b, int i)
{
    int type, size;
    return ei_get_type(b, &i, &type, &size) == 0 &&
           (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
            type == ERL_SMALL_ATOM_UTF8_EXT);
}

/* The first argument (after the list header) at *i; -1 if none. */
static int arg1(const char *args, int index, int *i)
{
    int n;
    *i = index;
    return ei_decode_list_header(args, i, &n) == 0 && n >= 1 ? 0 : -1;
}

static int badarg(ei_x_buff *r)
{
    r->index = 0;
    ei_x_encode_atom(r, "badarg");
    return BL_FN_ERROR;
}

static int f_node(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)a, (void)i, (void)ar, (void)ud;
    ei_x_encode_atom(r, bl_proc_node(self)->name);
    return BL_FN_RETURN;
}

static int f_is_alive(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)self, (void)a, (void)i, (void)ar, (void)ud;
    ei_x_encode_atom(r, "true");
    return BL_FN_RETURN;
}

enum { N_VISIBLE = 1, N_HIDDEN = 2, N_THIS = 4 };

static void encode_nodes(bl_node *n, ei_x_buff *r, int which)
{
    if (which & N_THIS) {
        ei_x_encode_list_header(r, 1);
        ei_x_encode_atom(r, n->name);
    }
    if (which & N_HIDDEN) { /* the node never publishes itself: all its connections are hidden */
        bl_conn *c, *t;
        HASH_ITER(hh, n->conns, c, t)
        {
            if (c->state != CONN_UP) continue;
            ei_x_encode_list_header(r, 1);
            ei_x_encode_atom(r, c->node);
        }
    }
    ei_x_encode_empty_list(r);
}

static int node_kind(const char *a)
{
    return !strcmp(a, "visible")     ? N_VISIBLE
           : !strcmp(a, "hidden")    ? N_HIDDEN
           : !strcmp(a, "connected") ? N_VISIBLE | N_HIDDEN
           : !strcmp(a, "this")      ? N_THIS
           : !strcmp(a, "known")     ? N_VISIBLE | N_HIDDEN | N_THIS
                                     : 0;
}

static int f_nodes0(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)a, (void)i, (void)ar, (void)ud;
    encode_nodes(bl_proc_node(self), r, N_VISIBLE);
    return BL_FN_RETURN;
}

static int f_nodes1(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)ar, (void)ud;
    int i, which = 0, type, size;
    char a[MAXATOMLEN_UTF8];
    if (arg1(args, index, &i) < 0) return badarg(r);
    if (is_atom(args, i)) {
        ei_decode_atom(args, &i, a);
        which = node_kind(a);
    } else if (ei_get_type(args, &i, &type, &size) == 0 && type == ERL_LIST_EXT) {
        int n;
        ei_decode_list_header(args, &i, &n);
        for (int k = 0; k < n; k++) {
            int w = is_atom(args, i) && ei_decode_atom(args, &i, a) == 0 ? node_kind(a) : 0;
            if (!w) return badarg(r);
            which |= w;
        }
    }
    if (!which) return badarg(r);
    encode_nodes(bl_proc_node(self), r, which);
    return BL_FN_RETURN;
}

static int f_registered(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)a, (void)i, (void)ar, (void)ud;
    bl_node *n = bl_proc_node(self);
    bl_regname *e, *t;
    HASH_ITER(hh, n->names, e, t)
    {
        ei_x_encode_list_header(r, 1);
        ei_x_encode_atom(r, e->name);
    }
    ei_x_encode_empty_list(r);
    return BL_FN_RETURN;
}

static int f_whereis(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)ar, (void)ud;
    int i;
    char a[MAXATOMLEN_UTF8];
    if (arg1(args, index, &i) < 0 || !is_atom(args, i) || ei_decode_atom(args, &i, a) < 0)
        return badarg(r);
    bl_proc *p = bl_whereis(bl_proc_node(self), a);
    if (p)
        bl_x_encode_pid(r, bl_self(p));
    else
        ei_x_encode_atom(r, "undefined");
    return BL_FN_RETURN;
}

/* ---- memory ---- */

static const char *const MEM_KEYS[] = {"total",     "processes", "processes_used", "system", "atom",
                                       "atom_used", "binary",    "code",           "ets",    NULL};

static unsigned long long rss_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0) return 0;
    buf[k] = 0;
    unsigned long long size = 0, rss = 0;
    if (sscanf(buf, "%llu %llu", &size, &rss) != 2) return 0;
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void mem_values(bl_node *n, unsigned long long v[9])
{
    unsigned long long total = rss_bytes();
    unsigned long long procs = (unsigned long long)HASH_COUNT(n->procs) * sizeof(bl_proc);
    if (procs > total) total = procs;
    v[0] = total;
    v[1] = v[2] = procs;
    v[3] = total - procs;
    v[4] = v[5] = v[6] = v[7] = v[8] = 0;
}

static int mem_index(const char *a)
{
    for (int k = 0; MEM_KEYS[k]; k++)
        if (!strcmp(a, MEM_KEYS[k])) return k;
    return -1;
}

static int f_memory0(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)a, (void)i, (void)ar, (void)ud;
    unsigned long long v[9];
    mem_values(bl_proc_node(self), v);
    for (int k = 0; MEM_KEYS[k]; k++) {
        ei_x_encode_list_header(r, 1);
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, MEM_KEYS[k]);
        ei_x_encode_ulonglong(r, v[k]);
    }
    ei_x_encode_empty_list(r);
    return BL_FN_RETURN;
}

static int f_memory1(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)ar, (void)ud;
    int i, type, size, k;
    char a[MAXATOMLEN_UTF8];
    unsigned long long v[9];
    mem_values(bl_proc_node(self), v);
    if (arg1(args, index, &i) < 0) return badarg(r);
    if (is_atom(args, i)) {
        ei_decode_atom(args, &i, a);
        if ((k = mem_index(a)) < 0) return badarg(r);
        ei_x_encode_ulonglong(r, v[k]);
        return BL_FN_RETURN;
    }
    if (ei_get_type(args, &i, &type, &size) < 0 || type != ERL_LIST_EXT) return badarg(r);
    int n;
    ei_decode_list_header(args, &i, &n);
    for (int q = 0; q < n; q++) {
        if (!is_atom(args, i) || ei_decode_atom(args, &i, a) < 0 || (k = mem_index(a)) < 0)
            return badarg(r);
        ei_x_encode_list_header(r, 1);
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, a);
        ei_x_encode_ulonglong(r, v[k]);
    }
    ei_x_encode_empty_list(r);
    return BL_FN_RETURN;
}

/* ---- system_info ---- */

static int f_system_info(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)ar, (void)ud;
    bl_node *n = bl_proc_node(self);
    int i;
    char a[MAXATOMLEN_UTF8];
    if (arg1(args, index, &i) < 0 || !is_atom(args, i) || ei_decode_atom(args, &i, a) < 0)
        return badarg(r);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!strcmp(a, "process_count"))
        ei_x_encode_ulong(r, HASH_COUNT(n->procs));
    else if (!strcmp(a, "process_limit"))
        ei_x_encode_long(r, 0x7fff * 8);
    else if (!strcmp(a, "port_count"))
        ei_x_encode_long(r, 0);
    else if (!strcmp(a, "port_limit"))
        ei_x_encode_long(r, 0);
    else if (!strcmp(a, "schedulers") || !strcmp(a, "schedulers_online"))
        ei_x_encode_long(r, 1); /* one event loop */
    else if (!strcmp(a, "logical_processors") || !strcmp(a, "logical_processors_online"))
        ei_x_encode_long(r, cpus > 0 ? cpus : 1);
    else if (!strcmp(a, "wordsize"))
        ei_x_encode_long(r, (long)sizeof(void *));
    else if (!strcmp(a, "creation"))
        ei_x_encode_ulong(r, n->creation);
    else if (!strcmp(a, "machine"))
        ei_x_encode_string(r, "beamlet");
    else if (!strcmp(a, "version"))
        ei_x_encode_string(r, BL_VERSION);
    else if (!strcmp(a, "otp_release"))
        ei_x_encode_string(r, BL_OTP_RELEASE);
    else if (!strcmp(a, "system_version"))
        ei_x_encode_string(r, "beamlet " BL_VERSION
                              " [C node, distribution protocol of OTP " BL_OTP_RELEASE "]\n");
    else
        return badarg(r);
    return BL_FN_RETURN;
}

/* ---- error/1,2, exit/1, throw/1: the first argument is the reason (error/2's Args any term,
 * as OTP 25 takes it) ---- */

static int raise_with(const char *args, int index, ei_x_buff *r, int kind)
{
    int i, e;
    if (arg1(args, index, &i) < 0 || (e = bl__term_end(args, i)) < 0) return badarg(r);
    ei_x_append_buf(r, args + i, e - i);
    return kind;
}

static int f_error(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)self, (void)ar, (void)ud;
    return raise_with(args, index, r, BL_FN_ERROR);
}

static int f_exit(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)self, (void)ar, (void)ud;
    return raise_with(args, index, r, BL_FN_EXIT);
}

static int f_throw(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)self, (void)ar, (void)ud;
    return raise_with(args, index, r, BL_FN_THROW);
}

static int f_info(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)a, (void)i, (void)ar, (void)ud;
    bl_builtin_encode_info(bl_proc_node(self), r);
    return BL_FN_RETURN;
}

static int f_stats(bl_proc *self, const char *a, int i, int ar, ei_x_buff *r, void *ud)
{
    (void)a, (void)i, (void)ar, (void)ud;
    bl_builtin_encode_stats(bl_proc_node(self), r);
    return BL_FN_RETURN;
}

typedef struct {
    const char *mod, *fun;
    int arity;
    bl_export_fn fn;
    int kind; /* BL__EXPORT_* */
} bif;

static const bif BIFS[] = {
    {"erlang", "node", 0, f_node, BL__EXPORT_BIF},
    {"erlang", "is_alive", 0, f_is_alive, BL__EXPORT_BIF},
    {"erlang", "nodes", 0, f_nodes0, BL__EXPORT_BIF},
    {"erlang", "nodes", 1, f_nodes1, BL__EXPORT_BIF},
    {"erlang", "registered", 0, f_registered, BL__EXPORT_BIF},
    {"erlang", "whereis", 1, f_whereis, BL__EXPORT_BIF},
    {"erlang", "memory", 0, f_memory0, BL__EXPORT_BIF},
    {"erlang", "memory", 1, f_memory1, BL__EXPORT_BIF},
    {"erlang", "system_info", 1, f_system_info, BL__EXPORT_BIF},
    {"erlang", "error", 1, f_error, BL__EXPORT_RAISE},
    {"erlang", "error", 2, f_error, BL__EXPORT_RAISE},
    {"erlang", "exit", 1, f_exit, BL__EXPORT_RAISE},
    {"erlang", "throw", 1, f_throw, BL__EXPORT_RAISE},
    {"beamlet", "info", 0, f_info, BL__EXPORT_C},
    {"beamlet", "stats", 0, f_stats, BL__EXPORT_C},
};

int bl_bifs_start(bl_node *n)
{
    for (size_t k = 0; k < sizeof(BIFS) / sizeof(BIFS[0]); k++) {
        int rc = bl__export_builtin(n, BIFS[k].mod, BIFS[k].fun, BIFS[k].arity, BIFS[k].fn,
                                    BIFS[k].kind);
        if (rc != BL_OK && rc != BL_EEXIST) return rc; /* the application's own version wins */
    }
    return bl__pinfo_start(n);
}
