/* pinfo.c - erlang:process_info/1,2 as built-in exports, so rpc:pinfo(CPid), rpc:pinfo(CPid,
 * Item) and erpc:call(CNode, erlang, process_info, [...]) answer in BEAM's shapes.
 *
 * What BEAM answers, and what a C process honestly has for it:
 *   - process_info(Pid) lists the keys BEAM's does, in its order (registered_name first when the
 *     process has a name); process_info(Pid, Item | [Item]) takes every item OTP 25 documents.
 *   - A pid of this node that is not alive: undefined. A pid of another node, or an item BEAM
 *     does not know: badarg, raised with BEAM's BIF frame (otp/apply.c).
 *   - status: running for the asking process itself, runnable with local messages queued for it,
 *     else waiting (a C process runs only inside a callback of the loop).
 *   - message_queue_len, messages: local messages not yet delivered (a C process gets every other
 *     message at once, in its callback); links: its links; monitored_by: whoever monitors it;
 *     monitors: the processes it monitors and those its erpc calls monitor ({process, Pid});
 *     trap_exit: its flag.
 *   - current_function, initial_call: a process spawned to run an export reads as the function it
 *     runs and what BEAM's would have been spawned as (erpc:execute_call/4, ...); any other C
 *     process is {beamlet, c_process, 0} (no Erlang function runs in it).
 *   - memory: the bytes of its struct, links, monitors and calls; heap_size and total_heap_size
 *     that in words; stack_size, reductions, catchlevel 0 (no Erlang stack, no reductions);
 *     garbage_collection with BEAM's keys and no collections; dictionary [], group_leader its own
 *     pid (a C process has no group leader: its output goes to the node's log), parent the process
 *     that spawned it (undefined for the node's own processes). */
#include "../runtime/internal.h"

#include <string.h>

typedef struct {
    bl_proc *p;    /* the process asked about */
    bl_proc *self; /* the process asking */
    const bl__mfa *cur, *init;
    const bl_pid *parent; /* NULL: none */
} pi_ctx;

typedef void (*pi_fn)(const pi_ctx *q, ei_x_buff *r);

static void encode_name(ei_x_buff *r, const char *a)
{
    ei_x_encode_atom_len_as(r, a, (int)strlen(a), ERLANG_UTF8, ERLANG_UTF8);
}

static void encode_mfa(ei_x_buff *r, const bl__mfa *m)
{
    ei_x_encode_tuple_header(r, 3);
    encode_name(r, m->mod);
    encode_name(r, m->fun);
    ei_x_encode_long(r, m->arity);
}

static int queued_for(const bl_proc *p, bl_localmsg **each, int max)
{
    int k = 0;
    for (bl_localmsg *m = p->n->localq_head; m; m = m->next) {
        if (m->kind != LOCAL_MSG) continue;
        int to_it = m->toname[0] ? p->reg && !strcmp(m->toname, p->reg->name)
                                 : bl_pid_equal(&m->to, &p->pid);
        if (!to_it) continue;
        if (each && k < max) each[k] = m;
        k++;
    }
    return k;
}

static size_t proc_bytes(const bl_proc *p)
{
    size_t b = sizeof(*p) + (p->reg ? sizeof(*p->reg) : 0);
    for (const bl_linkent *l = p->links; l; l = l->next)
        b += sizeof(*l);
    for (const bl_pmon *m = p->monitors; m; m = m->next)
        b += sizeof(*m);
    for (const bl_pmon_out *m = p->monitoring; m; m = m->next)
        b += sizeof(*m);
    b += HASH_CNT(hh, p->calls) * sizeof(bl_pcall);
    return b;
}

static void i_registered_name(const pi_ctx *q, ei_x_buff *r)
{
    if (q->p->reg)
        encode_name(r, q->p->reg->name);
    else
        ei_x_encode_empty_list(r);
}

static void i_current_function(const pi_ctx *q, ei_x_buff *r)
{
    encode_mfa(r, q->cur);
}

static void i_initial_call(const pi_ctx *q, ei_x_buff *r)
{
    encode_mfa(r, q->init);
}

static void i_current_location(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_tuple_header(r, 4);
    encode_name(r, q->cur->mod);
    encode_name(r, q->cur->fun);
    ei_x_encode_long(r, q->cur->arity);
    ei_x_encode_empty_list(r);
}

static void i_current_stacktrace(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_list_header(r, 1);
    i_current_location(q, r);
    ei_x_encode_empty_list(r);
}

static void i_status(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_atom(r, q->p == q->self             ? "running"
                        : queued_for(q->p, NULL, 0) ? "runnable"
                                                    : "waiting");
}

static void i_message_queue_len(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_long(r, queued_for(q->p, NULL, 0));
}

static void i_messages(const pi_ctx *q, ei_x_buff *r)
{
    bl_localmsg *each[256];
    int k = queued_for(q->p, each, 256);
    if (k > 256) k = 256; /* bounded: BEAM copies the whole queue; a C node's is short-lived */
    for (int j = 0; j < k; j++) {
        ei_x_encode_list_header(r, 1);
        ei_x_append_buf(r, each[j]->data + 1, each[j]->len - 1); /* past the version byte */
    }
    ei_x_encode_empty_list(r);
}

static void i_links(const pi_ctx *q, ei_x_buff *r)
{
    for (const bl_linkent *l = q->p->links; l; l = l->next) {
        ei_x_encode_list_header(r, 1);
        bl_x_encode_pid(r, &l->pid);
    }
    ei_x_encode_empty_list(r);
}

static void i_monitored_by(const pi_ctx *q, ei_x_buff *r)
{
    for (const bl_pmon *m = q->p->monitors; m; m = m->next) {
        ei_x_encode_list_header(r, 1);
        bl_x_encode_pid(r, &m->watcher);
    }
    ei_x_encode_empty_list(r);
}

static void i_monitors(const pi_ctx *q, ei_x_buff *r)
{
    for (const bl_pmon_out *m = q->p->monitoring; m; m = m->next) {
        ei_x_encode_list_header(r, 1);
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "process");
        bl_x_encode_pid(r, &m->pid);
    }
    bl_pcall *c, *t;
    HASH_ITER(hh, q->p->calls, c, t) {
        if (c->kind != PCALL_ERPC || !c->spawn_replied || !c->spawned.node) continue;
        ei_x_encode_list_header(r, 1);
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "process");
        bl_x_encode_pid(r, &c->spawned);
    }
    ei_x_encode_empty_list(r);
}

static void i_empty_list(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_empty_list(r);
}

static void i_zero(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_long(r, 0);
}

static void i_trap_exit(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_boolean(r, q->p->trap_exit);
}

static void i_error_handler(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_atom(r, "error_handler");
}

static void i_priority(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_atom(r, "normal");
}

static void i_group_leader(const pi_ctx *q, ei_x_buff *r)
{
    bl_x_encode_pid(r, &q->p->pid);
}

static void i_memory(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_ulong(r, (unsigned long)proc_bytes(q->p));
}

static void i_heap_words(const pi_ctx *q, ei_x_buff *r)
{
    ei_x_encode_ulong(r, (unsigned long)((proc_bytes(q->p) + sizeof(void *) - 1) / sizeof(void *)));
}

static void i_garbage_collection(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    static const char *const KEYS[] = {"min_bin_vheap_size", "min_heap_size", "fullsweep_after",
                                       "minor_gcs"};
    ei_x_encode_list_header(r, 5);
    ei_x_encode_tuple_header(r, 2); /* size 0: no bound, as BEAM's default */
    ei_x_encode_atom(r, "max_heap_size");
    ei_x_encode_map_header(r, 3);
    ei_x_encode_atom(r, "error_logger");
    ei_x_encode_boolean(r, 1);
    ei_x_encode_atom(r, "kill");
    ei_x_encode_boolean(r, 1);
    ei_x_encode_atom(r, "size");
    ei_x_encode_long(r, 0);
    for (int k = 0; k < 4; k++) {
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, KEYS[k]);
        ei_x_encode_long(r, 0);
    }
    ei_x_encode_empty_list(r);
}

static void i_fullsweep_after(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_long(r, 0);
}

static void i_backtrace(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    static const char TEXT[] = "C process: no Erlang stack\n";
    ei_x_encode_binary(r, TEXT, (long)sizeof(TEXT) - 1);
}

static void i_last_calls(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_boolean(r, 0);
}

static void i_message_queue_data(const pi_ctx *q, ei_x_buff *r)
{
    (void)q;
    ei_x_encode_atom(r, "off_heap");
}

static void i_parent(const pi_ctx *q, ei_x_buff *r)
{
    if (q->parent)
        bl_x_encode_pid(r, q->parent);
    else
        ei_x_encode_atom(r, "undefined");
}

typedef struct {
    const char *name;
    pi_fn fn;
    int in_all; /* listed by process_info/1 (in this order) */
} pi_item;

static const pi_item ITEMS[] = {
    {"registered_name", i_registered_name, 1},
    {"current_function", i_current_function, 1},
    {"initial_call", i_initial_call, 1},
    {"status", i_status, 1},
    {"message_queue_len", i_message_queue_len, 1},
    {"links", i_links, 1},
    {"dictionary", i_empty_list, 1},
    {"trap_exit", i_trap_exit, 1},
    {"error_handler", i_error_handler, 1},
    {"priority", i_priority, 1},
    {"group_leader", i_group_leader, 1},
    {"total_heap_size", i_heap_words, 1},
    {"heap_size", i_heap_words, 1},
    {"stack_size", i_zero, 1},
    {"reductions", i_zero, 1},
    {"garbage_collection", i_garbage_collection, 1},
    {"suspending", i_empty_list, 1},
    {"backtrace", i_backtrace, 0},
    {"binary", i_empty_list, 0},
    {"catchlevel", i_zero, 0},
    {"current_location", i_current_location, 0},
    {"current_stacktrace", i_current_stacktrace, 0},
    {"fullsweep_after", i_fullsweep_after, 0},
    {"garbage_collection_info", i_empty_list, 0},
    {"last_calls", i_last_calls, 0},
    {"memory", i_memory, 0},
    {"message_queue_data", i_message_queue_data, 0},
    {"messages", i_messages, 0},
    {"min_heap_size", i_zero, 0},
    {"min_bin_vheap_size", i_zero, 0},
    {"monitored_by", i_monitored_by, 0},
    {"monitors", i_monitors, 0},
    {"parent", i_parent, 0},
    {"sequential_trace_token", i_empty_list, 0},
};
#define N_ITEMS (sizeof(ITEMS) / sizeof(ITEMS[0]))

static int atom_at(const char *b, int i, char *out)
{
    int type, size;
    if (ei_get_type(b, &i, &type, &size) < 0 ||
        !(type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
          type == ERL_SMALL_ATOM_UTF8_EXT))
        return -1;
    return ei_decode_atom_as(b, &i, out, MAXATOMLEN_UTF8, ERLANG_UTF8, NULL, NULL);
}

static const pi_item *find_item(const char *b, int i)
{
    char a[MAXATOMLEN_UTF8];
    if (atom_at(b, i, a) < 0) return NULL;
    for (size_t k = 0; k < N_ITEMS; k++)
        if (!strcmp(a, ITEMS[k].name)) return &ITEMS[k];
    return NULL;
}

static void encode_pair(const pi_ctx *q, const pi_item *it, ei_x_buff *r)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, it->name);
    it->fn(q, r);
}

static int badarg(ei_x_buff *r)
{
    r->index = 0;
    ei_x_encode_atom(r, "badarg");
    return BL_FN_ERROR;
}

/* The pid argument: 0 and *out (NULL when not alive), or -1 for badarg (not a pid of here). */
static int target(bl_proc *self, const char *args, int *i, bl_proc **out)
{
    bl_node *n = bl_proc_node(self);
    int k;
    bl_pid pid;
    if (ei_decode_list_header(args, i, &k) < 0 || k < 1 || bl_decode_pid(n, args, i, &pid) < 0 ||
        !bl_pid_is_on(&pid, n->name))
        return -1;
    bl_proc *p = bl_proc_by_pid(n, &pid);
    *out = p && !p->dead ? p : NULL;
    return 0;
}

static void ctx_of(bl_proc *self, bl_proc *p, pi_ctx *q, bl__mfa *cur, bl__mfa *init,
                   bl_pid *parent)
{
    q->p = p;
    q->self = self;
    q->parent = NULL;
    if (bl__spawn_mfa(p, cur, init, parent) == 0) {
        if (parent->node) q->parent = parent;
    } else {
        snprintf(cur->mod, sizeof(cur->mod), "beamlet");
        snprintf(cur->fun, sizeof(cur->fun), "c_process");
        cur->arity = 0;
        *init = *cur;
    }
    q->cur = cur;
    q->init = init;
}

static int f_pinfo1(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)ar, (void)ud;
    int i = index;
    bl_proc *p;
    if (target(self, args, &i, &p) < 0) return badarg(r);
    if (!p) {
        ei_x_encode_atom(r, "undefined");
        return BL_FN_RETURN;
    }
    pi_ctx q;
    bl__mfa cur, init;
    bl_pid parent;
    ctx_of(self, p, &q, &cur, &init, &parent);
    for (size_t k = 0; k < N_ITEMS && ITEMS[k].in_all; k++) {
        if (ITEMS[k].fn == i_registered_name && !p->reg) continue;
        ei_x_encode_list_header(r, 1);
        encode_pair(&q, &ITEMS[k], r);
    }
    ei_x_encode_empty_list(r);
    return BL_FN_RETURN;
}

static int f_pinfo2(bl_proc *self, const char *args, int index, int ar, ei_x_buff *r, void *ud)
{
    (void)ar, (void)ud;
    int i = index, type, size, n;
    bl_proc *p;
    if (target(self, args, &i, &p) < 0) return badarg(r);
    /* the items are checked first, as BEAM's: a bad item is badarg even for a dead pid */
    const pi_item *one = NULL;
    if (ei_get_type(args, &i, &type, &size) < 0) return badarg(r);
    if (type == ERL_NIL_EXT || type == ERL_LIST_EXT) {
        int j = i;
        if (ei_decode_list_header(args, &j, &n) < 0) return badarg(r);
        for (int k = 0; k < n; k++) {
            if (!find_item(args, j)) return badarg(r);
            if ((j = bl__term_end(args, j)) < 0) return badarg(r);
        }
        if (n > 0 && (ei_get_type(args, &j, &type, &size) < 0 || type != ERL_NIL_EXT))
            return badarg(r);
    } else if (!(one = find_item(args, i))) {
        return badarg(r);
    }
    if (!p) {
        ei_x_encode_atom(r, "undefined");
        return BL_FN_RETURN;
    }
    pi_ctx q;
    bl__mfa cur, init;
    bl_pid parent;
    ctx_of(self, p, &q, &cur, &init, &parent);
    if (one) {
        if (one->fn == i_registered_name && !p->reg)
            ei_x_encode_empty_list(r); /* process_info(P, registered_name): [] when it has none */
        else
            encode_pair(&q, one, r);
        return BL_FN_RETURN;
    }
    ei_decode_list_header(args, &i, &n);
    for (int k = 0; k < n; k++) {
        ei_x_encode_list_header(r, 1);
        encode_pair(&q, find_item(args, i), r);
        i = bl__term_end(args, i);
    }
    ei_x_encode_empty_list(r);
    return BL_FN_RETURN;
}

int bl__pinfo_start(bl_node *n)
{
    int rc = bl__export_builtin(n, "erlang", "process_info", 1, f_pinfo1, BL__EXPORT_BIF);
    if (rc != BL_OK && rc != BL_EEXIST) return rc;
    rc = bl__export_builtin(n, "erlang", "process_info", 2, f_pinfo2, BL__EXPORT_BIF);
    return rc == BL_EEXIST ? BL_OK : rc;
}
