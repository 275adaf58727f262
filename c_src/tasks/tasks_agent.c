/* tasks_agent.c - the agent side of the dispatcher (tasks_int.h, docs/tasks.md): the task
 * handlers of this node (C functions and BEAM processes), the advert to the leader (types,
 * capabilities, concurrency limit, load, what runs here) every second and at once when the
 * leader changes, the attempts the leader assigns (fenced by term: an assignment from an older
 * term than the newest seen is refused), their timeouts and cancellation, and their results,
 * kept and sent again until the leader acks them. A log of the last attempts (start, end,
 * outcome) answers `runs` for diagnostics and tests. */
#include "tasks_int.h"
#include "beamlet/cluster.h"
#include "beamlet/health.h"

#include <stdlib.h>
#include <string.h>

#define ADVERT_MS 1000u
#define RUNLOG 2048 /* attempts remembered (allocated with the first one) */

typedef struct handler {
    UT_hash_handle hh;
    char type[BL_TASK_TYPE_LEN];
    int beam; /* a BEAM process (pid) instead of C functions */
    bl_pid pid;
    bl_task_run_fn run;
    bl_task_cancel_fn cancel;
    void *ud;
} handler;

typedef struct attempt {
    UT_hash_handle hh; /* by ref */
    uint64_t ref;
    char id[BL_TASK_ID_LEN];
    char type[BL_TASK_TYPE_LEN];
    unsigned attempt;
    int done; /* finished: outcome and result kept until acked */
    char outcome[16];
    char *result;
    int result_len;
    int tmo_timer;
    int beam;
    bl_pid pid;
    int runlog; /* index in the run log */
} attempt;

typedef struct runrec {
    char id[BL_TASK_ID_LEN];
    unsigned attempt;
    unsigned long long start_ms, end_ms;
    char outcome[16];
} runrec;

struct tasks_agent {
    tasks_svc *s;
    bl_node *n;
    handler *handlers;
    attempt *attempts;
    uint64_t next_ref;
    unsigned long long max_term;
    int timer;
    unsigned active; /* attempts not done */
    int advertised;  /* the leader knows us: an empty advert takes us off its list */
    runrec *log;
    unsigned log_next, log_count;
};

/* the service keeps the agent; found through it */
static tasks_agent *g_lookup(bl_node *n);

static bl_proc *proc(tasks_agent *a)
{
    return bl__tasks_proc(a->s);
}

static int send_leader(tasks_agent *a, ei_x_buff *x)
{
    const char *l = bl_cluster_leader(a->n, NULL);
    if (!l) return BL_ENODEDOWN;
    if (bl_is_local_node(a->n, l))
        return bl_send_name(proc(a), TASKS_PROC, NULL, x->buff, x->index);
    return bl_cluster_send(proc(a), TASKS_PROC, l, x);
}

static void head(tasks_agent *a, ei_x_buff *x, const char *tag, int arity)
{
    ei_x_new_with_version(x);
    ei_x_encode_tuple_header(x, arity);
    ei_x_encode_atom(x, tag);
    ei_x_encode_atom(x, a->n->name);
}

static void send_result(tasks_agent *a, const attempt *t)
{
    ei_x_buff x;
    head(a, &x, "bl_tasks_result", 6);
    ei_x_encode_binary(&x, t->id, (long)strlen(t->id));
    ei_x_encode_ulong(&x, t->attempt);
    ei_x_encode_atom(&x, t->outcome);
    if (t->result && t->result_len)
        ei_x_append_buf(&x, t->result, t->result_len);
    else
        ei_x_encode_atom(&x, "undefined");
    (void)send_leader(a, &x);
    ei_x_free(&x);
}

static void reject(tasks_agent *a, const char *leader, const char *id, unsigned att,
                   const char *why)
{
    ei_x_buff x;
    head(a, &x, "bl_tasks_result", 6);
    ei_x_encode_binary(&x, id, (long)strlen(id));
    ei_x_encode_ulong(&x, att);
    ei_x_encode_atom(&x, "rejected");
    ei_x_encode_atom(&x, why);
    if (bl_is_local_node(a->n, leader))
        (void)bl_send_name(proc(a), TASKS_PROC, NULL, x.buff, x.index);
    else
        (void)bl_cluster_send(proc(a), TASKS_PROC, leader, &x);
    ei_x_free(&x);
}

/* ---- the advert ---- */

void bl__agent_advertise(tasks_agent *a)
{
    if (!a) return;
    unsigned long long term = 0;
    const char *l = bl_cluster_leader(a->n, &term);
    if (!l || (!a->handlers && !a->attempts && !a->advertised)) return;
    a->advertised = a->handlers || a->attempts;
    ei_x_buff x;
    head(a, &x, "bl_tasks_agent", 4);
    ei_x_encode_ulonglong(&x, term > a->max_term ? term : a->max_term);
    ei_x_encode_map_header(&x, 5);
    ei_x_encode_atom(&x, "types");
    handler *h, *ht;
    HASH_ITER(hh, a->handlers, h, ht) {
        ei_x_encode_list_header(&x, 1);
        ei_x_encode_binary(&x, h->type, (long)strlen(h->type));
    }
    ei_x_encode_empty_list(&x);
    ei_x_encode_atom(&x, "capabilities");
    char caps[sizeof(a->n->cfg.capabilities)];
    snprintf(caps, sizeof(caps), "%s", a->n->cfg.capabilities);
    char *save = NULL;
    for (char *c = strtok_r(caps, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        while (*c == ' ')
            c++;
        if (!*c) continue;
        ei_x_encode_list_header(&x, 1);
        ei_x_encode_binary(&x, c, (long)strlen(c));
    }
    ei_x_encode_empty_list(&x);
    ei_x_encode_atom(&x, "limit");
    ei_x_encode_ulong(&x, a->n->cfg.task_concurrency);
    ei_x_encode_atom(&x, "load");
    /* the sample is 46 KB: on the heap, not the loop's stack (whose pages stay touched) */
    bl_health_metrics *m = malloc(sizeof(*m));
    double load = 0;
    if (m && bl_health_metrics_get(a->n, m) == BL_OK && m->ncpu) load = m->load1 / m->ncpu;
    free(m);
    ei_x_encode_double(&x, load);
    ei_x_encode_atom(&x, "running");
    attempt *t, *tt;
    HASH_ITER(hh, a->attempts, t, tt) {
        ei_x_encode_list_header(&x, 1);
        ei_x_encode_tuple_header(&x, 2);
        ei_x_encode_binary(&x, t->id, (long)strlen(t->id));
        ei_x_encode_ulong(&x, t->attempt);
    }
    ei_x_encode_empty_list(&x);
    (void)send_leader(a, &x);
    ei_x_free(&x);
}

static void resend(tasks_agent *a)
{
    attempt *t, *tt;
    HASH_ITER(hh, a->attempts, t, tt)
        if (t->done) send_result(a, t);
}

static void advert_cb(bl_node *n, void *ud)
{
    (void)n;
    tasks_agent *a = ud;
    bl__agent_advertise(a);
    resend(a);
}

void bl__agent_leader_changed(tasks_agent *a)
{
    if (!a) return;
    unsigned long long term = 0;
    bl_cluster_leader(a->n, &term);
    if (term > a->max_term) a->max_term = term;
    bl__agent_advertise(a);
    resend(a);
}

/* ---- attempts ---- */

static attempt *by_ref(tasks_agent *a, uint64_t ref)
{
    attempt *t = NULL;
    HASH_FIND(hh, a->attempts, &ref, sizeof(ref), t);
    return t;
}

static attempt *by_id(tasks_agent *a, const char *id)
{
    attempt *t, *tt;
    HASH_ITER(hh, a->attempts, t, tt)
        if (!strcmp(t->id, id)) return t;
    return NULL;
}

static void finish(tasks_agent *a, attempt *t, const char *outcome, const char *term, int len)
{
    if (t->done) return;
    t->done = 1;
    a->active--;
    if (t->tmo_timer > 0) bl_timer_cancel(a->n, t->tmo_timer);
    t->tmo_timer = 0;
    snprintf(t->outcome, sizeof(t->outcome), "%s", outcome);
    if (term && len > 0 && len <= TASK_MAX_TERM && (t->result = malloc((size_t)len))) {
        memcpy(t->result, term, (size_t)len);
        t->result_len = len;
    }
    runrec *r = &a->log[t->runlog]; /* a->log exists: made with the first attempt */
    if (!strcmp(r->id, t->id) && r->attempt == t->attempt) {
        r->end_ms = bl_now_ms();
        snprintf(r->outcome, sizeof(r->outcome), "%s", outcome);
    }
    send_result(a, t);
}

static void attempt_free(tasks_agent *a, attempt *t)
{
    HASH_DEL(a->attempts, t);
    if (!t->done) a->active--;
    if (t->tmo_timer > 0) bl_timer_cancel(a->n, t->tmo_timer);
    free(t->result);
    free(t);
}

static void stop_attempt(tasks_agent *a, attempt *t, const char *outcome)
{
    if (t->done) return;
    handler *h = NULL;
    HASH_FIND_STR(a->handlers, t->type, h);
    uint64_t ref = t->ref;
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_atom(&x, !strcmp(outcome, "timed_out") ? "timeout" : "cancelled");
    finish(a, t, outcome, x.buff, x.index);
    ei_x_free(&x);
    if (t->beam) {
        ei_x_buff m;
        ei_x_new_with_version(&m);
        ei_x_encode_tuple_header(&m, 2);
        ei_x_encode_atom(&m, "beamlet_task_cancel");
        ei_x_encode_ulonglong(&m, ref);
        (void)bl_send(proc(a), &t->pid, m.buff, m.index);
        ei_x_free(&m);
    } else if (h && h->cancel) {
        h->cancel(a->n, ref, h->ud);
    }
}

static void tmo_cb(bl_node *n, void *ud)
{
    tasks_agent *a = g_lookup(n);
    uint64_t ref = (uint64_t)(uintptr_t)ud;
    attempt *t = a ? by_ref(a, ref) : NULL;
    if (!t) return;
    t->tmo_timer = 0;
    stop_attempt(a, t, "timed_out");
}

/* {bl_tasks_assign, Leader, Term, Task} */
static void on_assign(tasks_agent *a, const char *leader, const char *buf, int idx)
{
    unsigned long long term;
    if (ei_decode_ulonglong(buf, &idx, &term) < 0) return;
    task *in = bl__task_decode(buf, &idx);
    if (!in) return;
    if (term < a->max_term) {
        reject(a, leader, in->id, in->attempt, "stale_term");
        goto out;
    }
    a->max_term = term;
    attempt *old = by_id(a, in->id);
    if (old) {
        if (old->attempt == in->attempt) { /* told again: say where it is */
            if (old->done) send_result(a, old);
        } else {
            reject(a, leader, in->id, in->attempt, "running_other_attempt");
        }
        goto out;
    }
    handler *h = NULL;
    HASH_FIND_STR(a->handlers, in->type, h);
    if (!h) {
        reject(a, leader, in->id, in->attempt, "no_handler");
        goto out;
    }
    if (a->active >= a->n->cfg.task_concurrency) {
        reject(a, leader, in->id, in->attempt, "busy");
        goto out;
    }
    if (!a->log) a->log = calloc(RUNLOG, sizeof(*a->log));
    attempt *t = a->log ? calloc(1, sizeof(*t)) : NULL;
    if (!t) {
        reject(a, leader, in->id, in->attempt, "enomem");
        goto out;
    }
    t->ref = ++a->next_ref;
    snprintf(t->id, sizeof(t->id), "%s", in->id);
    snprintf(t->type, sizeof(t->type), "%s", in->type);
    t->attempt = in->attempt;
    t->beam = h->beam;
    t->pid = h->pid;
    HASH_ADD(hh, a->attempts, ref, sizeof(t->ref), t);
    a->active++;
    runrec *r = &a->log[a->log_next];
    t->runlog = (int)a->log_next;
    a->log_next = (a->log_next + 1) % RUNLOG;
    if (a->log_count < RUNLOG) a->log_count++;
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", t->id);
    r->attempt = t->attempt;
    r->start_ms = bl_now_ms();
    int tid = bl_timer(a->n, in->timeout_ms ? in->timeout_ms : 60000, 0, tmo_cb,
                       (void *)(uintptr_t)t->ref);
    t->tmo_timer = tid > 0 ? tid : 0;
    ei_x_buff x;
    head(a, &x, "bl_tasks_started", 4);
    ei_x_encode_binary(&x, t->id, (long)strlen(t->id));
    ei_x_encode_ulong(&x, t->attempt);
    (void)send_leader(a, &x);
    ei_x_free(&x);
    uint64_t ref = t->ref;
    if (h->beam) {
        ei_x_buff m;
        ei_x_new_with_version(&m);
        ei_x_encode_tuple_header(&m, 3);
        ei_x_encode_atom(&m, "beamlet_task");
        ei_x_encode_ulonglong(&m, ref);
        ei_x_encode_map_header(&m, 7);
        ei_x_encode_atom(&m, "id");
        ei_x_encode_binary(&m, in->id, (long)strlen(in->id));
        ei_x_encode_atom(&m, "type");
        ei_x_encode_binary(&m, in->type, (long)strlen(in->type));
        ei_x_encode_atom(&m, "attempt");
        ei_x_encode_ulong(&m, in->attempt);
        ei_x_encode_atom(&m, "payload");
        if (in->payload)
            ei_x_append_buf(&m, in->payload, in->payload_len);
        else
            ei_x_encode_atom(&m, "undefined");
        ei_x_encode_atom(&m, "trace_id");
        ei_x_encode_binary(&m, in->trace_id, (long)strlen(in->trace_id));
        ei_x_encode_atom(&m, "timeout_ms");
        ei_x_encode_ulong(&m, in->timeout_ms);
        ei_x_encode_atom(&m, "node");
        ei_x_encode_atom(&m, a->n->name);
        int rc = bl_send(proc(a), &h->pid, m.buff, m.index);
        ei_x_free(&m);
        if (rc != BL_OK) {
            ei_x_buff e;
            ei_x_new(&e);
            ei_x_encode_atom(&e, "handler_unreachable");
            attempt *tt = by_ref(a, ref);
            if (tt) finish(a, tt, "failed", e.buff, e.index);
            ei_x_free(&e);
        }
    } else {
        char undef[16];
        int ui = 0;
        ei_encode_atom(undef, &ui, "undefined");
        bl_task_info info = {
            .ref = ref,
            .id = in->id,
            .type = in->type,
            .trace_id = in->trace_id,
            .attempt = in->attempt,
            .timeout_ms = in->timeout_ms,
            .payload = in->payload ? in->payload : undef,
            .payload_index = 0,
        };
        int rc = h->run(a->n, &info, h->ud);
        attempt *tt = by_ref(a, ref);
        if (rc != BL_OK && tt && !tt->done) {
            ei_x_buff e;
            ei_x_new(&e);
            ei_x_encode_atom(&e, bl_strerror(rc));
            finish(a, tt, "failed", e.buff, e.index);
            ei_x_free(&e);
        }
    }
out:
    bl__task_free(in);
}

int bl__agent_msg(tasks_agent *a, const char *tag, const bl_msg *msg, const char *buf, int idx,
                  int arity)
{
    char node[MAXATOMLEN_UTF8], id[BL_TASK_ID_LEN];
    unsigned long att;
    if (!strcmp(tag, "bl_tasks_assign") && arity == 4) {
        if (ei_decode_atom(buf, &idx, node) < 0 || !msg->has_sender ||
            strcmp(bl_pid_node(&msg->sender), node))
            return 1;
        on_assign(a, node, buf, idx);
        return 1;
    }
    if ((!strcmp(tag, "bl_tasks_cancel") || !strcmp(tag, "bl_tasks_result_ack")) && arity == 3) {
        if (bl__get_bin(buf, &idx, id, sizeof(id)) < 0 || ei_decode_ulong(buf, &idx, &att) < 0)
            return 1;
        attempt *t = by_id(a, id);
        if (!t || t->attempt != att) return 1;
        if (tag[9] == 'c') { /* cancel */
            stop_attempt(a, t, "cancelled");
        } else if (t->done) {
            attempt_free(a, t);
        }
        return 1;
    }
    return 0;
}

/* The handler of type, made (empty) when there is none yet; NULL when out of memory. */
static handler *handler_of(tasks_agent *a, const char *type)
{
    handler *h = NULL;
    HASH_FIND_STR(a->handlers, type, h);
    if (h || !(h = calloc(1, sizeof(*h)))) return h;
    snprintf(h->type, sizeof(h->type), "%s", type);
    HASH_ADD_STR(a->handlers, type, h);
    return h;
}

/* ---- the C API ---- */

int bl_task_handler(bl_node *n, const char *type, bl_task_run_fn run, bl_task_cancel_fn cancel,
                    void *ud)
{
    tasks_agent *a = g_lookup(n);
    if (!a) return BL_ENOPROC;
    if (!type || !type[0] || strlen(type) >= BL_TASK_TYPE_LEN || !run) return BL_EINVAL;
    handler *h = handler_of(a, type);
    if (!h) return BL_ENOMEM;
    h->beam = 0;
    h->run = run;
    h->cancel = cancel;
    h->ud = ud;
    bl__agent_advertise(a);
    return BL_OK;
}

int bl_task_handler_remove(bl_node *n, const char *type)
{
    tasks_agent *a = g_lookup(n);
    handler *h = NULL;
    if (!a) return BL_ENOPROC;
    HASH_FIND_STR(a->handlers, type, h);
    if (!h) return BL_ENOPROC;
    HASH_DEL(a->handlers, h);
    free(h);
    bl__agent_advertise(a);
    return BL_OK;
}

int bl_task_done(bl_node *n, uint64_t ref, int ok, const char *term, int len)
{
    tasks_agent *a = g_lookup(n);
    attempt *t = a ? by_ref(a, ref) : NULL;
    if (!t || t->done) return BL_ENOPROC;
    char dflt[16];
    int di = 0;
    if (!term) {
        ei_encode_atom(dflt, &di, ok ? "ok" : "error");
        term = dflt;
        len = di;
    }
    int i = 0;
    if (len <= 0 || bl__skip_term(term, &i) < 0 || i != len) return BL_EINVAL;
    finish(a, t, ok ? "succeeded" : "failed", term, len);
    return BL_OK;
}

int bl_task_progress(bl_node *n, uint64_t ref, unsigned percent, const char *note)
{
    tasks_agent *a = g_lookup(n);
    attempt *t = a ? by_ref(a, ref) : NULL;
    if (!t || t->done) return BL_ENOPROC;
    ei_x_buff x;
    head(a, &x, "bl_tasks_progress", 6);
    ei_x_encode_binary(&x, t->id, (long)strlen(t->id));
    ei_x_encode_ulong(&x, t->attempt);
    ei_x_encode_ulong(&x, percent > 100 ? 100 : percent);
    const char *s = note ? note : "";
    ei_x_encode_binary(&x, s, (long)(strlen(s) < 127 ? strlen(s) : 127));
    int rc = send_leader(a, &x);
    ei_x_free(&x);
    return rc == BL_ENODEDOWN ? BL_OK : rc; /* no leader now: progress is not kept */
}

/* ---- calls: BEAM handlers, runs ---- */

static void encode_error(ei_x_buff *r, const char *why)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_atom(r, why);
}

int bl__agent_call(tasks_agent *a, const char *tag, const bl_from *from, const char *buf, int idx,
                   int arity, ei_x_buff *r)
{
    (void)from;
    if (!strcmp(tag, "register_handler") && (arity == 3 || arity == 4)) {
        /* {register_handler, Type, Pid} | {register_handler, Type, Pid, Opts} */
        char type[BL_TASK_TYPE_LEN];
        bl_pid pid;
        if (bl__get_bin(buf, &idx, type, sizeof(type)) < 0 || !type[0] ||
            bl_decode_pid(a->n, buf, &idx, &pid) < 0) {
            encode_error(r, "bad_request");
            return 1;
        }
        handler *h = handler_of(a, type);
        if (!h) {
            encode_error(r, "enomem");
            return 1;
        }
        h->beam = 1;
        h->pid = pid;
        h->run = NULL;
        h->cancel = NULL;
        (void)bl_link(proc(a), &pid); /* its exit removes the handler */
        bl__agent_advertise(a);
        ei_x_encode_atom(r, "ok");
        return 1;
    }
    if (!strcmp(tag, "unregister_handler") && arity == 2) {
        char type[BL_TASK_TYPE_LEN];
        handler *h = NULL;
        if (bl__get_bin(buf, &idx, type, sizeof(type)) == 0) HASH_FIND_STR(a->handlers, type, h);
        if (h) {
            HASH_DEL(a->handlers, h);
            free(h);
            bl__agent_advertise(a);
        }
        ei_x_encode_atom(r, h ? "ok" : "not_found");
        return 1;
    }
    if (!strcmp(tag, "handlers") && arity == 0) {
        handler *h, *ht;
        HASH_ITER(hh, a->handlers, h, ht) {
            ei_x_encode_list_header(r, 1);
            ei_x_encode_binary(r, h->type, (long)strlen(h->type));
        }
        ei_x_encode_empty_list(r);
        return 1;
    }
    if (!strcmp(tag, "runs") && arity == 0) {
        /* the last attempts on this node, oldest first: #{id, attempt, start_ms, end_ms, outcome}
         */
        unsigned first = (a->log_next + RUNLOG - a->log_count) % RUNLOG;
        for (unsigned i = 0; i < a->log_count; i++) {
            runrec *x = &a->log[(first + i) % RUNLOG];
            ei_x_encode_list_header(r, 1);
            ei_x_encode_map_header(r, 5);
            ei_x_encode_atom(r, "id");
            ei_x_encode_binary(r, x->id, (long)strlen(x->id));
            ei_x_encode_atom(r, "attempt");
            ei_x_encode_ulong(r, x->attempt);
            ei_x_encode_atom(r, "start_ms");
            ei_x_encode_ulonglong(r, x->start_ms);
            ei_x_encode_atom(r, "end_ms");
            ei_x_encode_ulonglong(r, x->end_ms);
            ei_x_encode_atom(r, "outcome");
            ei_x_encode_atom(r, x->outcome[0] ? x->outcome : "running");
        }
        ei_x_encode_empty_list(r);
        return 1;
    }
    return 0;
}

/* casts from BEAM handlers: {task_done, Ref, {ok, R} | {error, E}}, {task_progress, Ref, Pct,
 * Note} -- as '$gen_cast' or plain messages */
static int beam_cast(tasks_agent *a, const char *buf, int idx)
{
    int ar, ar2;
    char tag[MAXATOMLEN_UTF8], k[MAXATOMLEN_UTF8];
    unsigned long long ref;
    if (ei_decode_tuple_header(buf, &idx, &ar) < 0 || ei_decode_atom(buf, &idx, tag) < 0) return 0;
    if (!strcmp(tag, "task_done") && ar == 3) {
        if (ei_decode_ulonglong(buf, &idx, &ref) < 0 ||
            ei_decode_tuple_header(buf, &idx, &ar2) < 0 || ar2 != 2 ||
            ei_decode_atom(buf, &idx, k) < 0)
            return 1;
        int start = idx;
        if (bl__skip_term(buf, &idx) < 0) return 1;
        attempt *t = by_ref(a, ref);
        if (t && !t->done)
            finish(a, t, !strcmp(k, "ok") ? "succeeded" : "failed", buf + start, idx - start);
        return 1;
    }
    if (!strcmp(tag, "task_progress") && ar == 4) {
        unsigned long pct;
        char note[128] = "";
        if (ei_decode_ulonglong(buf, &idx, &ref) < 0 || ei_decode_ulong(buf, &idx, &pct) < 0)
            return 1;
        (void)bl__get_bin(buf, &idx, note, sizeof(note));
        (void)bl_task_progress(a->n, ref, (unsigned)pct, note);
        return 1;
    }
    return 0;
}

void bl__agent_exit(tasks_agent *a, const bl_pid *pid)
{
    if (!a) return;
    handler *h, *ht;
    int changed = 0;
    HASH_ITER(hh, a->handlers, h, ht) {
        if (h->beam && bl_pid_equal(&h->pid, pid)) {
            HASH_DEL(a->handlers, h);
            free(h);
            changed = 1;
        }
    }
    attempt *t, *tt;
    HASH_ITER(hh, a->attempts, t, tt) {
        if (t->beam && !t->done && bl_pid_equal(&t->pid, pid)) {
            ei_x_buff e;
            ei_x_new(&e);
            ei_x_encode_atom(&e, "handler_exited");
            finish(a, t, "failed", e.buff, e.index);
            ei_x_free(&e);
        }
    }
    if (changed) bl__agent_advertise(a);
}

/* ---- lifecycle ---- */

static tasks_agent *g_lookup(bl_node *n)
{
    tasks_svc *s = bl__tasks_of(n);
    return s ? bl__tasks_agent_of(s) : NULL;
}

tasks_agent *bl__agent_new(tasks_svc *s, bl_node *n)
{
    tasks_agent *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    a->s = s;
    a->n = n;
    int id = bl_timer(n, ADVERT_MS, ADVERT_MS, advert_cb, a);
    if (id <= 0) {
        free(a);
        return NULL;
    }
    a->timer = id;
    return a;
}

int bl__agent_cast(tasks_agent *a, const char *buf, int idx)
{
    return a ? beam_cast(a, buf, idx) : 0;
}

void bl__agent_free(tasks_agent *a)
{
    if (!a) return;
    if (a->timer > 0) bl_timer_cancel(a->n, a->timer);
    attempt *t, *tt;
    HASH_ITER(hh, a->attempts, t, tt) {
        HASH_DEL(a->attempts, t);
        if (t->tmo_timer > 0) bl_timer_cancel(a->n, t->tmo_timer);
        free(t->result);
        free(t);
    }
    handler *h, *ht;
    HASH_ITER(hh, a->handlers, h, ht) {
        HASH_DEL(a->handlers, h);
        free(h);
    }
    free(a->log);
    free(a);
}
