/* tasks.c - the `beamlet_tasks` process (docs/tasks.md): the task queue owned by the leader
 * among the coordinators, its replicas on the other coordinators, placement on agents, timeouts,
 * retries with backoff, cancellation, takeover by a new leader, and the client protocol.
 *
 * Replication: the queue is one table of services/repl.c, held by coordinators only (ops.wants),
 * owned by the leader. A submit is answered only after the other live coordinators acked the new
 * record (bl__repl_local_put_acked; a majority of the coordinators must hold it), and so is an
 * assignment before it goes to the agent and a final state before the agent's result is acked
 * and waiters are answered. Copies are ordered by (term, ver): a new leader rewrites every record
 * under its term, so nothing from a deposed leader overwrites them.
 *
 * Takeover: a coordinator that becomes leader adopts every record it holds, asks the others for
 * theirs (offers), and for TAKEOVER_S assigns nothing while agents re-advertise what they run;
 * an assigned task that its agent's advert does not name afterwards is reassigned. Agents keep
 * results until the leader acks them, so a result reached a dead leader is sent again. Execution
 * is at least once; the result of a task id is recorded once (the first final state wins).
 *
 * Queue timeout: a task queued longer than its queue_timeout_ms (the submit's, else the leader's
 * task_queue_timeout_ms at submit; 0: never) fails with the reason queue_timeout (tick()).
 * Every transition also goes to the leader's feed (tasks_feed.c) that watchers of every task
 * read with {changes, ...}. */
#include "tasks_int.h"
#include "beamlet/trace.h"
#include "beamlet/cluster.h"
#include "beamlet/health.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define TICK_MS 100u
#define TAKEOVER_S 2.5
#define CHECK_GRACE_S 2.5 /* an assignment younger than this may be missing from an advert */
#define DEADLINE_GRACE_S 5.0
#define AGENT_STALE_S 4.0
#define REPL_TIMEOUT_MS 3000u
#define KEEP_FINAL 20000u /* final tasks kept (the oldest go first) */
#define MAX_OPEN 100000u  /* tasks not final at once */
#define MAX_REASSIGN 20u  /* lost agents per task before it fails */

typedef struct agent_info {
    UT_hash_handle hh;
    char node[BL_NODE_LEN];
    char types[32][BL_TASK_TYPE_LEN];
    unsigned ntypes;
    char caps[32][64];
    unsigned ncaps;
    unsigned limit, inflight, busy;
    double load, last_seen;
    unsigned long long assigned_total;
} agent_info;

typedef struct waiter {
    struct waiter *next;
    bl_from from;
    char id[BL_TASK_ID_LEN];
    unsigned long long after_ver; /* 0: until final; else: until ver > after_ver */
    int timer;
    struct tasks_svc *s;
} waiter;

typedef struct idem_ent {
    UT_hash_handle hh;
    char key[128];
    char id[BL_TASK_ID_LEN];
} idem_ent;

typedef enum { PUT_SUBMIT, PUT_ASSIGN, PUT_FINAL } put_kind;

typedef struct put_ctx {
    struct tasks_svc *s;
    put_kind kind;
    char id[BL_TASK_ID_LEN];
    unsigned attempt;
    int has_from;
    bl_from from;
    char agent[BL_NODE_LEN]; /* PUT_FINAL: whose result to ack */
    unsigned long long store_seq; /* the change in this node's store: answered once written */
    unsigned acked, asked;
} put_ctx;

typedef struct proxy {
    struct proxy *prev, *next;
    struct tasks_svc *s;
    bl_from from;
} proxy;

struct tasks_svc {
    bl_node *n;
    bl_proc *proc;
    bl__repl *repl;
    task *tasks;
    idem_ent *idem;
    agent_info *agents;
    waiter *waiters;
    tasks_agent *agent;
    tasks_store *store;
    int coordinator, loaded, leader, adopted;
    unsigned long long term;
    double takeover_until;
    int tick_timer, cluster_sub;
    unsigned open; /* tasks not final */
    unsigned long long id_seq;
    unsigned long ticks;
    int dispatch_timer;
    bl__builtins *builtins;
    proxy *proxies; /* forwarded calls in flight (dropped with the process: freed here) */
    struct open_ent *open_list; /* the tasks not final: what placement and timeouts walk */
    tasks_feed *feed;           /* transitions for watchers (the leader's) */
    unsigned long long queue_timeouts; /* tasks failed with queue_timeout by this leader */
};

/* the node struct has no slot for us: found by registered name */
tasks_svc *bl__tasks_of(bl_node *n)
{
    bl_proc *p = bl_whereis(n, TASKS_PROC);
    return p ? bl_proc_data(p) : NULL;
}

tasks_agent *bl__tasks_agent_of(tasks_svc *s)
{
    return s->agent;
}

bl_proc *bl__tasks_proc(tasks_svc *s)
{
    return s->proc;
}

const char *bl__tasks_leader(tasks_svc *s, unsigned long long *term)
{
    return bl_cluster_leader(s->n, term);
}

static double now_s(tasks_svc *s)
{
    return ev_now(s->n->loop);
}

/* ---- events ---- */

/* a failed, timed out or cancelled task's reason when it is an atom (queue_timeout, timeout,
 * agent_lost, ...): "" otherwise */
static void reason_atom(const task *t, char out[MAXATOMLEN_UTF8])
{
    int i = 0;
    out[0] = 0;
    if (t->state == TS_SUCCEEDED || !ts_final(t->state) || !t->result || t->result_len <= 0 ||
        ei_decode_atom(t->result, &i, out) < 0)
        out[0] = 0;
}

static void event(tasks_svc *s, const task *t)
{
    char why[MAXATOMLEN_UTF8];
    reason_atom(t, why);
    if (s->leader) bl__feed_push(s->feed, t, why);
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "task", t->id, "type", t->type, "state",
                          bl__task_state_name(t->state), "attempt", (json_int_t)t->attempt, "agent",
                          t->agent, "trace_id", t->trace_id);
    if (j && why[0]) json_object_set_new(j, "error", json_string(why));
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    /* the event and the log line under the task's trace: `events --trace ID` finds them */
    const bl_trace *cur = bl_trace_current(s->n);
    bl_trace was = cur ? *cur : (bl_trace){0}, tt;
    int traced = bl_trace_from_id(t->trace_id, 0, &tt) == BL_OK;
    if (traced) bl_trace_set(s->n, &tt);
    if (txt)
        bl_health_event(s->n, "task",
                        t->state == TS_FAILED || t->state == TS_TIMED_OUT ? "warn" : "info", NULL,
                        txt);
    free(txt);
    json_decref(j);
    bl_log(s->n, BL_LOG_DEBUG, "task %s (%s) %s attempt %u agent %s", t->id, t->type,
           bl__task_state_name(t->state), t->attempt, t->agent[0] ? t->agent : "-");
    if (traced) bl_trace_set(s->n, cur ? &was : NULL);
}

/* ---- the table ---- */

static task *find(tasks_svc *s, const char *id)
{
    task *t = NULL;
    HASH_FIND_STR(s->tasks, id, t);
    return t;
}

static void idem_add(tasks_svc *s, const task *t)
{
    if (!t->idem[0]) return;
    idem_ent *e = NULL;
    HASH_FIND_STR(s->idem, t->idem, e);
    if (e) return;
    if (!(e = calloc(1, sizeof(*e)))) return;
    snprintf(e->key, sizeof(e->key), "%s", t->idem);
    snprintf(e->id, sizeof(e->id), "%s", t->id);
    HASH_ADD_STR(s->idem, key, e);
}

static void idem_del(tasks_svc *s, const task *t)
{
    idem_ent *e = NULL;
    if (!t->idem[0]) return;
    HASH_FIND_STR(s->idem, t->idem, e);
    if (e && !strcmp(e->id, t->id)) {
        HASH_DEL(s->idem, e);
        free(e);
    }
}

/* t is on the open list exactly while it is not final */
static void open_sync(tasks_svc *s, task *t)
{
    int want = !ts_final(t->state);
    if (want == (t->open.t != NULL)) return;
    if (want) {
        t->open.t = t;
        DL_APPEND(s->open_list, &t->open);
        s->open++;
    } else {
        DL_DELETE(s->open_list, &t->open);
        t->open.t = NULL;
        s->open--;
    }
}

static void insert(tasks_svc *s, task *t)
{
    HASH_ADD_STR(s->tasks, id, t);
    idem_add(s, t);
    t->open.t = NULL;
    open_sync(s, t);
}

static void drop(tasks_svc *s, task *t)
{
    HASH_DEL(s->tasks, t);
    idem_del(s, t);
    if (t->open.t) {
        DL_DELETE(s->open_list, &t->open);
        s->open--;
    }
    bl__tstore_del(s->store, t->id);
    bl__task_free(t);
}

static void persist(tasks_svc *s, task *t)
{
    bl__tstore_put(s->store, t);
}

static void waiters_check(tasks_svc *s, const task *t);
static void soon(tasks_svc *s);
static void adopt(tasks_svc *s);

/* A change on the leader: new version, history, event, announce (acked when ctx is given). */
static int commit(tasks_svc *s, task *t, int transition, put_ctx *ctx);

static void put_done(void *ud, unsigned acked, unsigned asked);

static unsigned need_acks(tasks_svc *s)
{
    unsigned c = bl_cluster_coordinator_count(s->n);
    return c ? c / 2 : 0; /* a majority, this node included */
}

static int commit(tasks_svc *s, task *t, int transition, put_ctx *ctx)
{
    unsigned long long now = bl_now_ms();
    int was_final = 0;
    (void)was_final;
    t->ver++;
    t->term = s->term;
    t->updated_ms = now;
    open_sync(s, t);
    if (transition) bl__task_hist_add(t, t->state, now);
    persist(s, t);
    if (transition) event(s, t);
    int rc;
    if (ctx) {
        ctx->store_seq = bl__tstore_seq(s->store);
        t->repl_pending++;
        rc = bl__repl_local_put_acked(s->repl, &t->link, REPL_TIMEOUT_MS, put_done, ctx);
        if (rc != BL_OK) {
            t->repl_pending--;
            free(ctx);
        }
    } else {
        rc = bl__repl_local_put(s->repl, &t->link);
    }
    waiters_check(s, t);
    return rc;
}

static void set_state(task *t, int st)
{
    t->state = st;
}

/* ---- waiters ---- */

static void reply_task(tasks_svc *s, const bl_from *from, const task *t)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "ok");
    bl__task_encode(t, &x, 1);
    bl_reply(s->n, from, x.buff, x.index);
    ei_x_free(&x);
}

static void reply_error(tasks_svc *s, const bl_from *from, const char *why)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "error");
    ei_x_encode_atom(&x, why);
    bl_reply(s->n, from, x.buff, x.index);
    ei_x_free(&x);
}

static void waiter_free(tasks_svc *s, waiter *w)
{
    waiter **pp;
    for (pp = &s->waiters; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp) *pp = w->next;
    if (w->timer > 0) bl_timer_cancel(s->n, w->timer);
    free(w);
}

static void waiter_timeout(bl_node *n, void *ud)
{
    (void)n;
    waiter *w = ud;
    tasks_svc *s = w->s;
    w->timer = 0;
    task *t = find(s, w->id);
    if (t)
        reply_task(s, &w->from, t);
    else
        reply_error(s, &w->from, "not_found");
    waiter_free(s, w);
}

static void waiters_check(tasks_svc *s, const task *t)
{
    for (waiter *w = s->waiters, *next; w; w = next) {
        next = w->next;
        if (strcmp(w->id, t->id)) continue;
        if (t->repl_pending && ts_final(t->state)) continue; /* answered once replicated */
        if (w->after_ver ? t->ver > w->after_ver : ts_final(t->state)) {
            reply_task(s, &w->from, t);
            waiter_free(s, w);
        }
    }
}

static void waiters_fail_all(tasks_svc *s, const char *why)
{
    while (s->waiters) {
        reply_error(s, &s->waiters->from, why);
        waiter_free(s, s->waiters);
    }
}

/* ---- sending to agents ---- */

static int send_msg(tasks_svc *s, const char *node, ei_x_buff *x)
{
    return bl_cluster_send(s->proc, TASKS_PROC, node, x);
}

static void send_assign(tasks_svc *s, task *t)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "bl_tasks_assign");
    ei_x_encode_atom(&x, s->n->name);
    ei_x_encode_ulonglong(&x, s->term);
    bl__task_encode(t, &x, 1);
    int rc = send_msg(s, t->agent, &x);
    ei_x_free(&x);
    if (rc != BL_OK) { /* never reached it: queued again at once */
        bl_log(s->n, BL_LOG_INFO, "task %s: assignment to %s not sent (%s): queued again", t->id,
               t->agent, bl_strerror(rc));
        t->agent[0] = 0;
        set_state(t, TS_QUEUED);
        t->attempt--;
        commit(s, t, 1, NULL);
        soon(s);
    }
}

static void send_cancel(tasks_svc *s, const char *agent, const task *t, unsigned attempt)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "bl_tasks_cancel");
    ei_x_encode_binary(&x, t->id, (long)strlen(t->id));
    ei_x_encode_ulong(&x, attempt);
    (void)send_msg(s, agent, &x);
    ei_x_free(&x);
}

static void send_result_ack(tasks_svc *s, const char *agent, const char *id, unsigned attempt)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "bl_tasks_result_ack");
    ei_x_encode_binary(&x, id, (long)strlen(id));
    ei_x_encode_ulong(&x, attempt);
    (void)send_msg(s, agent, &x);
    ei_x_free(&x);
}

/* ---- acked puts ---- */

static void put_finish(put_ctx *c);

static void put_written(void *ud, int ok)
{
    put_ctx *c = ud;
    if (ok)
        put_finish(c);
    else
        free(c); /* the service is stopping */
}

/* Acked by the coordinators that answered: carried out once this node's own store has the
 * change too, so an acknowledged change survives a kill -9 of every coordinator at once (the
 * others' copies are in memory when they ack, and on disk within a batch). */
static void put_done(void *ud, unsigned acked, unsigned asked)
{
    put_ctx *c = ud;
    c->acked = acked;
    c->asked = asked;
    if (bl__tstore_when_written(c->s->store, c->store_seq, put_written, c)) return;
    put_finish(c);
}

static void put_finish(put_ctx *c)
{
    tasks_svc *s = c->s;
    unsigned acked = c->acked, asked = c->asked;
    task *t = find(s, c->id);
    unsigned need = need_acks(s);
    int ok = acked >= need;
    if (t) t->repl_pending--;
    if (!ok)
        bl_log(s->n, BL_LOG_WARN, "task %s: %u of %u coordinators acked (%u needed)", c->id, acked,
               asked, need);
    switch (c->kind) {
    case PUT_SUBMIT:
        if (c->has_from) {
            ei_x_buff x;
            ei_x_new(&x);
            ei_x_encode_tuple_header(&x, 2);
            if (ok) {
                ei_x_encode_atom(&x, "ok");
                ei_x_encode_binary(&x, c->id, (long)strlen(c->id));
            } else {
                ei_x_encode_atom(&x, "error");
                ei_x_encode_tuple_header(&x, 2);
                ei_x_encode_atom(&x, "not_replicated");
                ei_x_encode_binary(&x, c->id, (long)strlen(c->id));
            }
            bl_reply(s->n, &c->from, x.buff, x.index);
            ei_x_free(&x);
        }
        soon(s);
        break;
    case PUT_ASSIGN:
        if (!t || t->state != TS_ASSIGNED || t->attempt != c->attempt || !s->leader) break;
        if (!ok) { /* not held by a majority: not sent; tried again later */
            t->agent[0] = 0;
            t->attempt--;
            set_state(t, TS_QUEUED);
            t->next_at_ms = bl_now_ms() + 1000;
            commit(s, t, 1, NULL);
            break;
        }
        t->check_after = now_s(s) + CHECK_GRACE_S;
        t->deadline = now_s(s) + t->timeout_ms / 1000.0 + DEADLINE_GRACE_S;
        send_assign(s, t);
        break;
    case PUT_FINAL:
        if (c->agent[0]) send_result_ack(s, c->agent, c->id, c->attempt);
        if (t) waiters_check(s, t);
        break;
    }
    free(c);
}

static put_ctx *ctx_new(tasks_svc *s, put_kind kind, const task *t)
{
    put_ctx *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->s = s;
    c->kind = kind;
    snprintf(c->id, sizeof(c->id), "%s", t->id);
    c->attempt = t->attempt;
    return c;
}

/* ---- placement ---- */

static int has(char (*list)[64], unsigned n, const char *v)
{
    for (unsigned i = 0; i < n; i++)
        if (!strcmp(list[i], v)) return 1;
    return 0;
}

static int agent_fits(const agent_info *a, const task *t)
{
    int ok = 0;
    for (unsigned i = 0; i < a->ntypes && !ok; i++)
        ok = !strcmp(a->types[i], t->type);
    if (!ok) return 0;
    for (unsigned i = 0; i < t->ncaps; i++)
        if (!has((char(*)[64])a->caps, a->ncaps, t->caps[i])) return 0;
    return 1;
}

static int agent_live(tasks_svc *s, const agent_info *a)
{
    char role[32];
    return now_s(s) - a->last_seen < AGENT_STALE_S &&
           (bl_is_local_node(s->n, a->node) ||
            bl_cluster_peer_role(s->n, a->node, role, sizeof(role)));
}

static int cmp_queued(const void *x, const void *y)
{
    const task *a = *(task *const *)x, *b = *(task *const *)y;
    if (a->prio != b->prio) return a->prio - b->prio;
    if (a->submitted_ms != b->submitted_ms) return a->submitted_ms < b->submitted_ms ? -1 : 1;
    return strcmp(a->id, b->id);
}

static void assign(tasks_svc *s, task *t, agent_info *a)
{
    t->attempt++;
    snprintf(t->agent, sizeof(t->agent), "%s", a->node);
    set_state(t, TS_ASSIGNED);
    t->next_at_ms = 0;
    t->progress = 0;
    t->note[0] = 0;
    a->inflight++;
    a->assigned_total++;
    t->deadline = now_s(s) + t->timeout_ms / 1000.0 + DEADLINE_GRACE_S + REPL_TIMEOUT_MS / 1000.0;
    t->check_after = t->deadline; /* set when the assignment is sent */
    put_ctx *c = ctx_new(s, PUT_ASSIGN, t);
    if (!c || commit(s, t, 1, c) != BL_OK) {
        /* out of memory: back in the queue */
        t->agent[0] = 0;
        t->attempt--;
        set_state(t, TS_QUEUED);
    }
}

static void dispatch(tasks_svc *s)
{
    if (!s->leader || !s->adopted) return;
    agent_info *a, *at;
    HASH_ITER(hh, s->agents, a, at)
        a->inflight = 0;
    unsigned nq = 0;
    task *t;
    open_ent *oe;
    DL_FOREACH(s->open_list, oe) {
        t = oe->t;
        if (t->state == TS_ASSIGNED || t->state == TS_RUNNING) {
            HASH_FIND_STR(s->agents, t->agent, a);
            if (a) a->inflight++;
        } else if (t->state == TS_QUEUED) {
            nq++;
        }
    }
    if (!nq || !s->agents) return;
    task **q = malloc(nq * sizeof(*q));
    if (!q) return;
    unsigned k = 0;
    unsigned long long now = bl_now_ms();
    DL_FOREACH(s->open_list, oe) {
        t = oe->t;
        if (t->state == TS_QUEUED && t->next_at_ms <= now && !t->repl_pending && k < nq) q[k++] = t;
    }
    qsort(q, k, sizeof(*q), cmp_queued);
    for (unsigned i = 0; i < k; i++) {
        t = q[i];
        agent_info *best = NULL;
        double best_score = 0;
        HASH_ITER(hh, s->agents, a, at) {
            if (a->inflight >= a->limit || !agent_fits(a, t) || !agent_live(s, a)) continue;
            /* least loaded: tasks in flight per slot, then the machine's load per CPU */
            double score = (double)a->inflight / (a->limit ? a->limit : 1) + a->load * 0.25 +
                           a->assigned_total * 1e-9;
            if (!best || score < best_score) {
                best = a;
                best_score = score;
            }
        }
        if (best) assign(s, t, best);
    }
    free(q);
}

static void dispatch_cb(bl_node *n, void *ud)
{
    (void)n;
    tasks_svc *s = ud;
    s->dispatch_timer = 0;
    dispatch(s);
}

/* placement runs once per loop turn however many changes asked for it */
static void soon(tasks_svc *s)
{
    if (s->dispatch_timer > 0 || !s->leader) return;
    int id = bl_timer(s->n, 0, 0, dispatch_cb, s);
    s->dispatch_timer = id > 0 ? id : 0;
}

/* An attempt ended without a result from its agent (agent lost, silent past the deadline, or
 * refusing): queued again (not counted against retries when lost), or final. */
static void attempt_lost(tasks_svc *s, task *t, const char *why, int counts)
{
    if (t->agent[0] && strcmp(why, "agent_lost")) send_cancel(s, t->agent, t, t->attempt);
    bl_log(s->n, BL_LOG_INFO, "task %s: attempt %u on %s: %s", t->id, t->attempt,
           t->agent[0] ? t->agent : "-", why);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_atom(&x, why);
    free(t->result);
    t->result = malloc((size_t)x.index);
    if (t->result) memcpy(t->result, x.buff, (size_t)x.index);
    t->result_len = t->result ? x.index : 0;
    ei_x_free(&x);
    int final = -1;
    if (counts) {
        if (t->attempt > t->retries) final = !strcmp(why, "timeout") ? TS_TIMED_OUT : TS_FAILED;
    } else if (++t->lost > MAX_REASSIGN) {
        final = TS_FAILED;
    } else if (t->attempt) {
        t->attempt--; /* the attempt does not count */
    }
    if (final >= 0) {
        set_state(t, final);
        put_ctx *c = ctx_new(s, PUT_FINAL, t);
        commit(s, t, 1, c);
    } else {
        set_state(t, TS_QUEUED);
        t->agent[0] = 0;
        t->next_at_ms = counts ? bl_now_ms() + (100ull << (t->attempt < 8 ? t->attempt : 8)) : 0;
        commit(s, t, 1, NULL);
    }
    soon(s);
}

static void agent_gone(tasks_svc *s, const char *node)
{
    agent_info *a = NULL;
    HASH_FIND_STR(s->agents, node, a);
    if (a) {
        HASH_DEL(s->agents, a);
        free(a);
    }
    if (!s->leader) return;
    open_ent *oe, *ot;
    DL_FOREACH_SAFE(s->open_list, oe, ot) {
        task *t = oe->t;
        if ((t->state == TS_ASSIGNED || t->state == TS_RUNNING) && !strcmp(t->agent, node))
            attempt_lost(s, t, "agent_lost", 0);
    }
}

/* ---- the leader's tick ---- */

static void prune(tasks_svc *s)
{
    unsigned total = HASH_COUNT(s->tasks);
    if (total - s->open <= KEEP_FINAL) return;
    unsigned nf = total - s->open, k = 0;
    task **f = malloc(nf * sizeof(*f)), *t, *tt;
    if (!f) return;
    HASH_ITER(hh, s->tasks, t, tt)
        if (ts_final(t->state) && k < nf) f[k++] = t;
    /* the oldest first */
    for (unsigned i = 0; i + KEEP_FINAL < k; i++) {
        unsigned m = i;
        for (unsigned j = i + 1; j < k; j++)
            if (f[j]->updated_ms < f[m]->updated_ms) m = j;
        task *x = f[i];
        f[i] = f[m];
        f[m] = x;
        if (f[i]->repl_pending) continue;
        bl__repl_local_del(s->repl, &f[i]->link);
        drop(s, f[i]);
    }
    free(f);
}

/* Queued since: the last time it entered the queue, or the end of its retry backoff. */
static unsigned long long queued_since(const task *t)
{
    unsigned long long since = t->submitted_ms;
    if (t->nhist && t->hist[t->nhist - 1].state == TS_QUEUED) since = t->hist[t->nhist - 1].time_ms;
    return t->next_at_ms > since ? t->next_at_ms : since;
}

/* A task that waited in the queue longer than its queue_timeout_ms (no agent with its type,
 * capabilities and a free slot took it): failed with the reason queue_timeout. */
static void queue_timeout_check(tasks_svc *s, task *t)
{
    unsigned long long now = bl_now_ms(), since = queued_since(t);
    if (now < since || now - since < t->queue_timeout_ms) return;
    bl_log(s->n, BL_LOG_INFO, "task %s (%s): queued %llu ms, queue timeout %u ms: failed", t->id,
           t->type, now - since, t->queue_timeout_ms);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_atom(&x, "queue_timeout");
    free(t->result);
    t->result = malloc((size_t)x.index);
    if (t->result) memcpy(t->result, x.buff, (size_t)x.index);
    t->result_len = t->result ? x.index : 0;
    ei_x_free(&x);
    t->agent[0] = 0;
    set_state(t, TS_FAILED);
    s->queue_timeouts++;
    commit(s, t, 1, ctx_new(s, PUT_FINAL, t));
}

static void tick(bl_node *n, void *ud)
{
    (void)n;
    tasks_svc *s = ud;
    if (!s->leader) return;
    double now = now_s(s);
    if (!s->adopted) {
        if (now >= s->takeover_until) adopt(s);
        return;
    }
    open_ent *oe, *ot;
    DL_FOREACH_SAFE(s->open_list, oe, ot) {
        task *t = oe->t;
        if ((t->state == TS_ASSIGNED || t->state == TS_RUNNING) && !t->repl_pending &&
            t->deadline > 0 && now > t->deadline)
            attempt_lost(s, t, "timeout", 1);
        else if (t->state == TS_QUEUED && t->queue_timeout_ms && !t->repl_pending)
            queue_timeout_check(s, t);
    }
    if (++s->ticks % 50 == 0) prune(s); /* every 5 s */
    dispatch(s);
}

/* ---- leadership ---- */

static void send_offer(tasks_svc *s, const char *leader)
{
    /* every record we hold, in chunks, so a leader that missed some gets them */
    task *t, *tt;
    ei_x_buff x;
    int k = 0;
    ei_x_new_with_version(&x);
    HASH_ITER(hh, s->tasks, t, tt) {
        if (k == 0) {
            x.index = 0;
            ei_x_encode_version(&x);
            ei_x_encode_tuple_header(&x, 3);
            ei_x_encode_atom(&x, "bl_tasks_offer");
            ei_x_encode_atom(&x, s->n->name);
        }
        ei_x_encode_list_header(&x, 1);
        bl__task_encode(t, &x, 1);
        if (++k == 200) {
            ei_x_encode_empty_list(&x);
            (void)send_msg(s, leader, &x);
            k = 0;
        }
    }
    if (k) {
        ei_x_encode_empty_list(&x);
        (void)send_msg(s, leader, &x);
    }
    ei_x_free(&x);
}

/* A new leader first gathers: its own copies and the other coordinators' offers are merged by
 * (term, ver) for TAKEOVER_S; only then does it rewrite every record under its term (adopt), so
 * a stale copy never outranks a fresher one because it was rewritten first. */
static void become_leader(tasks_svc *s)
{
    s->leader = 1;
    s->adopted = 0;
    bl__feed_reset(s->feed, s->term, "not_leader");
    s->takeover_until = now_s(s) + TAKEOVER_S;
    bl_log(s->n, BL_LOG_INFO, "tasks: leader (term %llu): gathering the coordinators' copies",
           s->term);
}

static void adopt(tasks_svc *s)
{
    unsigned n = 0;
    task *t, *tt;
    s->adopted = 1;
    HASH_ITER(hh, s->tasks, t, tt) {
        t->orphan = 0;
        if (t->state == TS_ASSIGNED || t->state == TS_RUNNING) {
            t->check_after = now_s(s) + CHECK_GRACE_S;
            t->deadline = now_s(s) + t->timeout_ms / 1000.0 + DEADLINE_GRACE_S;
        }
        commit(s, t, 0, NULL);
        n++;
    }
    bl_log(s->n, BL_LOG_INFO, "tasks: leader (term %llu): took over %u tasks, %u not final",
           s->term, n, s->open);
    soon(s);
}

static void leadership_check(tasks_svc *s)
{
    unsigned long long term = 0;
    const char *l = bl_cluster_leader(s->n, &term);
    int me = s->coordinator && s->loaded && l && bl_is_local_node(s->n, l);
    if (me && (!s->leader || term != s->term)) {
        s->term = term;
        become_leader(s);
    } else if (!me && s->leader) {
        s->leader = 0;
        bl_log(s->n, BL_LOG_INFO, "tasks: no longer the leader");
        waiters_fail_all(s, "not_leader");
        bl__feed_reset(s->feed, 0, "not_leader");
    }
    if (!me) s->term = term;
    if (l && !me && s->coordinator && s->loaded) send_offer(s, l);
    bl__agent_leader_changed(s->agent);
}

static void on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    (void)n;
    tasks_svc *s = ud;
    if (ev->type == BL_EV_LEADER_CHANGED) {
        leadership_check(s);
    } else if ((ev->type == BL_EV_NODE_STATE_CHANGED &&
                (ev->to == BL_MEMBER_FAILED || ev->to == BL_MEMBER_LEFT)) ||
               ev->type == BL_EV_NODE_LEFT) {
        agent_gone(s, ev->node);
    }
}

/* ---- replication ops (followers' copies) ---- */

static int r_encode(void *svc, ei_x_buff *x, const bl__repl_link *e)
{
    (void)svc;
    const task *t = (const task *)((const char *)e - offsetof(task, link));
    return bl__task_encode(t, x, 1);
}

static int r_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *e)
{
    (void)svc;
    const task *t = (const task *)((const char *)e - offsetof(task, link));
    return ei_x_encode_binary(x, t->id, (long)strlen(t->id));
}

static int newer(const task *a, const task *b)
{
    return a->term != b->term ? a->term > b->term : a->ver > b->ver;
}

/* Take in a record (from the leader's replication, or an offer on the leader): 1 when it
 * replaced or added one. */
static task *take(tasks_svc *s, task *in, int *changed)
{
    task *t = find(s, in->id);
    *changed = 0;
    if (t && !newer(in, t)) {
        bl__task_free(in);
        return t;
    }
    *changed = 1;
    if (!t) {
        insert(s, in);
        persist(s, in);
        return in;
    }
    int was_final = ts_final(t->state);
    idem_del(s, t);
    bl__task_assign(t, in);
    bl__task_free(in);
    idem_add(s, t);
    (void)was_final;
    open_sync(s, t);
    persist(s, t);
    return t;
}

static int r_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    tasks_svc *s = svc;
    (void)owner;
    *out = NULL;
    task *in = bl__task_decode(buf, idx);
    if (!in) return -1;
    if (s->leader && in->term <= s->term) { /* a deposed leader's copy: ours is the one */
        bl__task_free(in);
        return 0;
    }
    int changed;
    task *t = take(s, in, &changed);
    if (!changed) return 0;
    t->orphan = 0;
    *out = &t->link;
    return 0;
}

static int r_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    tasks_svc *s = svc;
    (void)owner;
    char id[BL_TASK_ID_LEN];
    if (bl__get_bin(buf, idx, id, sizeof(id)) < 0) return -1;
    task *t = find(s, id);
    *out = t ? &t->link : NULL;
    return 0;
}

static int r_remove(void *svc, bl__repl_link *e, bl__repl_why why)
{
    tasks_svc *s = svc;
    task *t = (task *)((char *)e - offsetof(task, link));
    if (why == BL__REPL_DELETED) {
        drop(s, t);
        return 0;
    }
    t->orphan = 1; /* the owner is gone or forgot it: kept, offered to the next leader */
    return 1;
}

static int r_wants(void *svc, const char *node)
{
    tasks_svc *s = svc;
    char role[32];
    return bl_cluster_peer_role(s->n, node, role, sizeof(role)) && !strcmp(role, "coordinator") &&
           s->coordinator;
}

static const bl__repl_ops tasks_repl = {
    .proc_name = TASKS_PROC,
    .tag_add = "bl_tasks_add",
    .tag_del = "bl_tasks_del",
    .tag_sync = "bl_tasks_sync",
    .tag_want = "bl_tasks_want",
    .tag_digest = "bl_tasks_digest",
    .encode = r_encode,
    .encode_key = r_encode_key,
    .upsert = r_upsert,
    .find = r_find,
    .remove = r_remove,
    .wants = r_wants,
    .tag_ack = "bl_tasks_ack",
};

/* ---- messages from agents and coordinators ---- */

static int get_atom(const char *buf, int *idx, char *a)
{
    return ei_decode_atom(buf, idx, a);
}

static void on_offer(tasks_svc *s, const char *buf, int idx)
{
    if (!s->leader) return;
    bl__list_it it;
    int more;
    unsigned k = 0;
    if (bl__list_begin(&it, buf, &idx) < 0) return;
    while ((more = bl__list_next(&it)) > 0) {
        task *in = bl__task_decode(buf, &idx);
        if (!in) return;
        task *t = find(s, in->id);
        if (t && (t->term > in->term || (t->term == in->term && t->ver >= in->ver))) {
            bl__task_free(in);
            continue;
        }
        if (ts_final(in->state) && !t && in->updated_ms + 3600000ull < bl_now_ms()) {
            bl__task_free(in); /* long finished and pruned here: not brought back */
            continue;
        }
        int changed;
        t = take(s, in, &changed);
        k++;
        if (!s->adopted) continue; /* merged now, rewritten under our term by adopt() */
        if (t->state == TS_ASSIGNED || t->state == TS_RUNNING) {
            t->check_after = now_s(s) + CHECK_GRACE_S;
            t->deadline = now_s(s) + t->timeout_ms / 1000.0 + DEADLINE_GRACE_S;
        }
        commit(s, t, 0, NULL);
    }
    if (k) bl_log(s->n, BL_LOG_INFO, "tasks: %u records taken from an offer", k);
    soon(s);
}

static int list_strs(const char *buf, int *idx, char (*out)[64], unsigned cap, unsigned *n)
{
    bl__list_it it;
    int more;
    *n = 0;
    if (bl__list_begin(&it, buf, idx) < 0) return -1;
    while ((more = bl__list_next(&it)) > 0) {
        char v[64];
        if (bl__get_bin(buf, idx, v, sizeof(v)) < 0) return -1;
        if (*n < cap) memcpy(out[(*n)++], v, sizeof(v));
    }
    return more;
}

/* {bl_tasks_agent, Node, Term, #{types, capabilities, limit, load, running => [{Id, Att}]}} */
static void on_advert(tasks_svc *s, const char *node, const char *buf, int idx)
{
    unsigned long long term;
    int ar;
    if (ei_decode_ulonglong(buf, &idx, &term) < 0 || ei_decode_map_header(buf, &idx, &ar) < 0)
        return;
    agent_info *a = NULL;
    HASH_FIND_STR(s->agents, node, a);
    if (!a) {
        if (!(a = calloc(1, sizeof(*a)))) return;
        snprintf(a->node, sizeof(a->node), "%s", node);
        HASH_ADD_STR(s->agents, node, a);
        bl_log(s->n, BL_LOG_INFO, "tasks: agent %s", node);
        soon(s);
    }
    int running_at = -1;
    for (int k = 0; k < ar; k++) {
        char key[MAXATOMLEN_UTF8];
        if (get_atom(buf, &idx, key) < 0) return;
        if (!strcmp(key, "types")) {
            char tmp[32][64];
            unsigned n = 0;
            if (list_strs(buf, &idx, tmp, 32, &n) < 0) return;
            a->ntypes = n;
            for (unsigned i = 0; i < n; i++)
                snprintf(a->types[i], BL_TASK_TYPE_LEN, "%s", tmp[i]);
        } else if (!strcmp(key, "capabilities")) {
            if (list_strs(buf, &idx, a->caps, 32, &a->ncaps) < 0) return;
        } else if (!strcmp(key, "limit")) {
            unsigned long v;
            if (ei_decode_ulong(buf, &idx, &v) < 0) return;
            a->limit = (unsigned)v;
        } else if (!strcmp(key, "load")) {
            double d;
            if (ei_decode_double(buf, &idx, &d) < 0) return;
            a->load = isfinite(d) && d > 0 ? d : 0;
        } else if (!strcmp(key, "running")) {
            running_at = idx;
            if (bl__skip_term(buf, &idx) < 0) return;
        } else if (bl__skip_term(buf, &idx) < 0) {
            return;
        }
    }
    if (a->last_seen == 0 || now_s(s) - a->last_seen > 1.0) soon(s);
    a->last_seen = now_s(s);
    if (!a->ntypes && running_at >= 0) { /* no handler left: not an agent any more */
        int i = running_at, k;
        if (ei_decode_list_header(buf, &i, &k) == 0 && k == 0) {
            bl_log(s->n, BL_LOG_INFO, "tasks: %s handles no task type now", node);
            HASH_DEL(s->agents, a);
            free(a);
            return;
        }
    }
    if (!s->leader || !s->adopted || running_at < 0 || term < s->term) return;
    /* reconcile: an assignment older than the grace that the agent does not name is lost */
    task *t, *tt;
    HASH_ITER(hh, s->tasks, t, tt) {
        if ((t->state != TS_ASSIGNED && t->state != TS_RUNNING) || strcmp(t->agent, node) ||
            t->repl_pending || now_s(s) < t->check_after)
            continue;
        int i = running_at, found = 0;
        bl__list_it it;
        if (bl__list_begin(&it, buf, &i) < 0) return;
        while (!found && bl__list_next(&it) > 0) {
            int tar;
            char id[BL_TASK_ID_LEN];
            unsigned long att;
            if (ei_decode_tuple_header(buf, &i, &tar) < 0 || tar != 2 ||
                bl__get_bin(buf, &i, id, sizeof(id)) < 0 || ei_decode_ulong(buf, &i, &att) < 0)
                return;
            found = !strcmp(id, t->id) && att == t->attempt;
        }
        if (!found) attempt_lost(s, t, "agent_lost", 0);
    }
}

/* {bl_tasks_started, Node, Id, Attempt} */
static void on_started(tasks_svc *s, const char *node, const char *buf, int idx)
{
    char id[BL_TASK_ID_LEN];
    unsigned long att;
    if (bl__get_bin(buf, &idx, id, sizeof(id)) < 0 || ei_decode_ulong(buf, &idx, &att) < 0) return;
    task *t = find(s, id);
    if (!t || !s->leader || !s->adopted) return;
    if (t->state == TS_ASSIGNED && t->attempt == att && !strcmp(t->agent, node)) {
        set_state(t, TS_RUNNING);
        commit(s, t, 1, NULL);
    }
}

/* {bl_tasks_progress, Node, Id, Attempt, Percent, Note} */
static void on_progress(tasks_svc *s, const char *node, const char *buf, int idx)
{
    char id[BL_TASK_ID_LEN], note[128];
    unsigned long att, pct;
    if (bl__get_bin(buf, &idx, id, sizeof(id)) < 0 || ei_decode_ulong(buf, &idx, &att) < 0 ||
        ei_decode_ulong(buf, &idx, &pct) < 0 || bl__get_bin(buf, &idx, note, sizeof(note)) < 0)
        return;
    task *t = find(s, id);
    if (!t || !s->leader || !s->adopted || ts_final(t->state) || t->attempt != att ||
        strcmp(t->agent, node))
        return;
    if (t->state == TS_ASSIGNED) {
        set_state(t, TS_RUNNING);
        bl__task_hist_add(t, TS_RUNNING, bl_now_ms());
    }
    t->progress = pct > 100 ? 100 : (unsigned)pct;
    snprintf(t->note, sizeof(t->note), "%s", note);
    commit(s, t, 0, NULL);
}

/* {bl_tasks_result, Node, Id, Attempt, Outcome, Term}: Outcome succeeded | failed | timed_out |
 * cancelled | rejected */
static void on_result(tasks_svc *s, const char *node, const char *buf, int idx)
{
    char id[BL_TASK_ID_LEN], oc[MAXATOMLEN_UTF8];
    unsigned long att;
    if (bl__get_bin(buf, &idx, id, sizeof(id)) < 0 || ei_decode_ulong(buf, &idx, &att) < 0 ||
        get_atom(buf, &idx, oc) < 0)
        return;
    if (!s->leader || !s->adopted) return; /* the agent sends it again, to the leader */
    task *t = find(s, id);
    if (!t) {
        send_result_ack(s, node, id, (unsigned)att); /* unknown here: nothing to record */
        return;
    }
    if (ts_final(t->state) || t->attempt != att || strcmp(t->agent, node)) {
        /* recorded already, or an attempt that is no longer the task's: acked, ignored (once
         * the final state is replicated, so an ack never precedes it) */
        if (!t->repl_pending) send_result_ack(s, node, id, (unsigned)att);
        return;
    }
    if (!strcmp(oc, "rejected")) { /* the agent did not take it (busy, no handler, stale) */
        send_result_ack(s, node, id, (unsigned)att);
        agent_info *a = NULL;
        HASH_FIND_STR(s->agents, node, a);
        if (a) a->last_seen = 0; /* until its next advert */
        attempt_lost(s, t, "rejected", 0);
        return;
    }
    if (bl__term_dup(buf, &idx, &t->result, &t->result_len) < 0) {
        t->result_len = 0;
    }
    int st = !strcmp(oc, "succeeded")   ? TS_SUCCEEDED
             : !strcmp(oc, "timed_out") ? TS_TIMED_OUT
             : !strcmp(oc, "cancelled") ? TS_CANCELLED
                                        : TS_FAILED;
    if ((st == TS_FAILED || st == TS_TIMED_OUT) && t->attempt <= t->retries) {
        send_result_ack(s, node, id, (unsigned)att);
        set_state(t, st);
        bl__task_hist_add(t, st, bl_now_ms()); /* the failed attempt, then queued again */
        event(s, t);
        set_state(t, TS_QUEUED);
        t->agent[0] = 0;
        t->next_at_ms = bl_now_ms() + (100ull << (t->attempt < 8 ? t->attempt : 8));
        commit(s, t, 1, NULL);
        return;
    }
    set_state(t, st);
    put_ctx *c = ctx_new(s, PUT_FINAL, t);
    if (c) snprintf(c->agent, sizeof(c->agent), "%s", node);
    commit(s, t, 1, c);
    soon(s);
}

static void on_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    tasks_svc *s = ud;
    if (bl__repl_handle(s->repl, msg)) return;
    const char *buf = msg->buf;
    int idx = msg->index, ar;
    char tag[MAXATOMLEN_UTF8], node[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &ar) < 0 || ar < 2 || get_atom(buf, &idx, tag) < 0)
        return;
    if (bl__agent_msg(s->agent, tag, msg, buf, idx, ar)) return;
    if (bl__agent_cast(s->agent, buf, msg->index)) return;
    if (get_atom(buf, &idx, node) < 0) return;
    if (!msg->has_sender || strcmp(bl_pid_node(&msg->sender), node)) return; /* only from itself */
    if (!strcmp(tag, "bl_tasks_agent") && ar == 4)
        on_advert(s, node, buf, idx);
    else if (!strcmp(tag, "bl_tasks_started") && ar == 4)
        on_started(s, node, buf, idx);
    else if (!strcmp(tag, "bl_tasks_progress") && ar == 6)
        on_progress(s, node, buf, idx);
    else if (!strcmp(tag, "bl_tasks_result") && ar == 6)
        on_result(s, node, buf, idx);
    else if (!strcmp(tag, "bl_tasks_offer") && ar == 3)
        on_offer(s, buf, idx);
}

/* ---- client calls ---- */

static void encode_error_bin(ei_x_buff *r, const char *what, const char *detail)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, what);
    ei_x_encode_binary(r, detail, (long)strlen(detail));
}

static void encode_error(ei_x_buff *r, const char *why)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_atom(r, why);
}

static void new_id(tasks_svc *s, char out[BL_TASK_ID_LEN])
{
    unsigned r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (unsigned)s->id_seq * 2654435761u;
    snprintf(out, BL_TASK_ID_LEN, "t%011llx%08x", bl_now_ms() & 0xfffffffffffull,
             r ^ (unsigned)++s->id_seq);
}

/* {submit, #{type, payload, capabilities, priority, timeout_ms, retries, idempotency_key,
 * trace_id}} */
static int do_submit(tasks_svc *s, const bl_from *from, const char *buf, int idx, ei_x_buff *r)
{
    int ar;
    task *t = calloc(1, sizeof(*t));
    if (!t) {
        encode_error(r, "enomem");
        return 0;
    }
    t->prio = 1;
    t->timeout_ms = 60000;
    t->queue_timeout_ms = s->n->cfg.task_queue_timeout_ms; /* the leader's default */
    const char *bad = NULL;
    if (ei_decode_map_header(buf, &idx, &ar) < 0) bad = "the request is not a map";
    for (int k = 0; !bad && k < ar; k++) {
        char key[MAXATOMLEN_UTF8];
        unsigned long v;
        if (get_atom(buf, &idx, key) < 0) {
            bad = "keys are atoms";
        } else if (!strcmp(key, "type")) {
            if (bl__get_bin(buf, &idx, t->type, sizeof(t->type)) < 0 || !t->type[0])
                bad = "type: a binary of 1..63 bytes";
        } else if (!strcmp(key, "payload")) {
            if (bl__term_dup(buf, &idx, &t->payload, &t->payload_len) < 0)
                bad = "payload: too large (1 MiB at most)";
        } else if (!strcmp(key, "capabilities")) {
            char tmp[TASK_MAX_CAPS][64];
            unsigned n = 0;
            bl__list_it it;
            int more;
            if (bl__list_begin(&it, buf, &idx) < 0) {
                bad = "capabilities: a list of binaries";
                break;
            }
            while ((more = bl__list_next(&it)) > 0) {
                if (n >= TASK_MAX_CAPS || bl__get_bin(buf, &idx, tmp[n], 64) < 0 || !tmp[n][0]) {
                    bad = "capabilities: at most 16 binaries of 1..63 bytes";
                    break;
                }
                n++;
            }
            if (!bad && more < 0) bad = "capabilities: a proper list";
            memcpy(t->caps, tmp, sizeof(tmp));
            t->ncaps = n;
        } else if (!strcmp(key, "priority")) {
            char a[MAXATOMLEN_UTF8];
            if (bl__get_bin(buf, &idx, a, sizeof(a)) < 0 ||
                (strcmp(a, "high") && strcmp(a, "normal") && strcmp(a, "low")))
                bad = "priority: high, normal or low";
            else
                t->prio = !strcmp(a, "high") ? 0 : !strcmp(a, "low") ? 2 : 1;
        } else if (!strcmp(key, "timeout_ms")) {
            if (ei_decode_ulong(buf, &idx, &v) < 0 || v < 1 || v > 86400000ul)
                bad = "timeout_ms: 1..86400000";
            else
                t->timeout_ms = (unsigned)v;
        } else if (!strcmp(key, "queue_timeout_ms")) {
            if (ei_decode_ulong(buf, &idx, &v) < 0 || v > 604800000ul)
                bad = "queue_timeout_ms: 0..604800000 (0: wait in the queue forever)";
            else
                t->queue_timeout_ms = (unsigned)v;
        } else if (!strcmp(key, "retries")) {
            if (ei_decode_ulong(buf, &idx, &v) < 0 || v > 100)
                bad = "retries: 0..100";
            else
                t->retries = (unsigned)v;
        } else if (!strcmp(key, "idempotency_key")) {
            if (bl__get_bin(buf, &idx, t->idem, sizeof(t->idem)) < 0)
                bad = "idempotency_key: a binary of at most 127 bytes";
        } else if (!strcmp(key, "trace_id")) {
            if (bl__get_bin(buf, &idx, t->trace_id, sizeof(t->trace_id)) < 0 ||
                !bl_trace_id_valid(t->trace_id))
                bad = "trace_id: 32 lowercase hex digits, not all zero (W3C trace-context)";
        } else if (bl__skip_term(buf, &idx) < 0) {
            bad = "malformed request";
        }
    }
    if (!bad && !t->type[0]) bad = "type is required";
    if (bad) {
        bl__task_free(t);
        encode_error_bin(r, "bad_request", bad);
        return 0;
    }
    if (t->idem[0]) {
        idem_ent *e = NULL;
        HASH_FIND_STR(s->idem, t->idem, e);
        task *old = e ? find(s, e->id) : NULL;
        if (old) {
            bl__task_free(t);
            if (old->repl_pending && old->state == TS_QUEUED && old->ver == 1) {
                /* the first submit is still being replicated: answered with it */
                put_ctx *c = ctx_new(s, PUT_SUBMIT, old);
                if (!c) {
                    encode_error(r, "enomem");
                    return 0;
                }
                c->has_from = 1;
                c->from = *from;
                c->store_seq = bl__tstore_seq(s->store);
                old->repl_pending++;
                if (bl__repl_local_put_acked(s->repl, &old->link, REPL_TIMEOUT_MS, put_done, c) !=
                    BL_OK) {
                    old->repl_pending--;
                    free(c);
                    encode_error(r, "enomem");
                    return 0;
                }
                return 1;
            }
            ei_x_encode_tuple_header(r, 2);
            ei_x_encode_atom(r, "ok");
            ei_x_encode_binary(r, old->id, (long)strlen(old->id));
            return 0;
        }
    }
    if (s->open >= MAX_OPEN) {
        bl__task_free(t);
        encode_error(r, "queue_full");
        return 0;
    }
    /* the submitter's trace id, else the trace this request runs under (a traced CLI command,
     * REST request or service call), else a new one */
    const bl_trace *cur = bl_trace_current(s->n);
    if (!t->trace_id[0] && cur) bl_trace_id_hex(cur, t->trace_id, sizeof(t->trace_id));
    if (!t->trace_id[0]) bl__trace_id_new(t->trace_id);
    new_id(s, t->id);
    t->submitted_ms = bl_now_ms();
    t->state = TS_QUEUED;
    insert(s, t);
    put_ctx *c = ctx_new(s, PUT_SUBMIT, t);
    if (!c) {
        drop(s, t);
        encode_error(r, "enomem");
        return 0;
    }
    c->has_from = 1;
    c->from = *from;
    if (commit(s, t, 1, c) != BL_OK) {
        drop(s, t);
        encode_error(r, "enomem");
        return 0;
    }
    return 1; /* answered in put_done */
}

static int do_cancel(tasks_svc *s, const char *id, ei_x_buff *r)
{
    task *t = find(s, id);
    if (!t) {
        encode_error(r, "not_found");
        return 0;
    }
    if (ts_final(t->state)) {
        encode_error(r, "already_final");
        return 0;
    }
    if (t->state == TS_ASSIGNED || t->state == TS_RUNNING) send_cancel(s, t->agent, t, t->attempt);
    set_state(t, TS_CANCELLED);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_atom(&x, "cancelled");
    free(t->result);
    t->result = malloc((size_t)x.index);
    if (t->result) memcpy(t->result, x.buff, (size_t)x.index);
    t->result_len = t->result ? x.index : 0;
    ei_x_free(&x);
    commit(s, t, 1, ctx_new(s, PUT_FINAL, t));
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "ok");
    bl__task_encode(t, r, 0);
    return 0;
}

typedef struct {
    int state; /* -1 any */
    char type[BL_TASK_TYPE_LEN];
    unsigned limit;
} list_q;

static int cmp_sub(const void *x, const void *y)
{
    const task *a = *(task *const *)x, *b = *(task *const *)y;
    if (a->submitted_ms != b->submitted_ms) return a->submitted_ms < b->submitted_ms ? 1 : -1;
    return strcmp(b->id, a->id);
}

static void do_list(tasks_svc *s, const char *buf, int idx, ei_x_buff *r)
{
    list_q q = {-1, "", 100};
    int ar;
    if (ei_decode_map_header(buf, &idx, &ar) == 0) {
        for (int k = 0; k < ar; k++) {
            char key[MAXATOMLEN_UTF8], v[64];
            unsigned long n;
            if (get_atom(buf, &idx, key) < 0) break;
            if (!strcmp(key, "state") && bl__get_bin(buf, &idx, v, sizeof(v)) == 0)
                q.state = bl__task_state_parse(v) >= 0 ? bl__task_state_parse(v) : -2;
            else if (!strcmp(key, "type") && bl__get_bin(buf, &idx, v, sizeof(v)) == 0)
                snprintf(q.type, sizeof(q.type), "%s", v);
            else if (!strcmp(key, "limit") && ei_decode_ulong(buf, &idx, &n) == 0)
                q.limit = n > 100000 ? 100000 : (unsigned)n;
            else if (bl__skip_term(buf, &idx) < 0)
                break;
        }
    }
    unsigned total = HASH_COUNT(s->tasks), k = 0;
    task **v = malloc((total ? total : 1) * sizeof(*v)), *t, *tt;
    if (!v) {
        encode_error(r, "enomem");
        return;
    }
    HASH_ITER(hh, s->tasks, t, tt)
        if ((q.state == -1 || t->state == q.state) && (!q.type[0] || !strcmp(q.type, t->type)))
            v[k++] = t;
    qsort(v, k, sizeof(*v), cmp_sub);
    if (k > q.limit) k = q.limit;
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "ok");
    if (k) {
        ei_x_encode_list_header(r, k);
        for (unsigned i = 0; i < k; i++)
            bl__task_encode(v[i], r, 0);
    }
    ei_x_encode_empty_list(r);
    free(v);
}

static void do_agents(tasks_svc *s, ei_x_buff *r)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "ok");
    agent_info *a, *at;
    task *t, *tt;
    HASH_ITER(hh, s->agents, a, at)
        a->inflight = 0;
    HASH_ITER(hh, s->tasks, t, tt)
        if (t->state == TS_ASSIGNED || t->state == TS_RUNNING) {
            HASH_FIND_STR(s->agents, t->agent, a);
            if (a) a->inflight++;
        }
    HASH_ITER(hh, s->agents, a, at) {
        if (!agent_live(s, a)) continue;
        ei_x_encode_list_header(r, 1);
        ei_x_encode_map_header(r, 6);
        ei_x_encode_atom(r, "node");
        ei_x_encode_atom(r, a->node);
        ei_x_encode_atom(r, "types");
        for (unsigned i = 0; i < a->ntypes; i++) {
            ei_x_encode_list_header(r, 1);
            ei_x_encode_binary(r, a->types[i], (long)strlen(a->types[i]));
        }
        ei_x_encode_empty_list(r);
        ei_x_encode_atom(r, "capabilities");
        for (unsigned i = 0; i < a->ncaps; i++) {
            ei_x_encode_list_header(r, 1);
            ei_x_encode_binary(r, a->caps[i], (long)strlen(a->caps[i]));
        }
        ei_x_encode_empty_list(r);
        ei_x_encode_atom(r, "limit");
        ei_x_encode_ulong(r, a->limit);
        ei_x_encode_atom(r, "in_flight");
        ei_x_encode_ulong(r, a->inflight);
        ei_x_encode_atom(r, "load");
        ei_x_encode_double(r, a->load);
    }
    ei_x_encode_empty_list(r);
}

static void proxy_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    proxy *px = ud;
    bl_node *n = bl_proc_node(p);
    DL_DELETE(px->s->proxies, px);
    if (status == BL_OK) {
        int i = index;
        if (bl__skip_term(buf, &i) == 0) bl_reply(n, &px->from, buf + index, i - index);
    } else {
        ei_x_buff x;
        ei_x_new(&x);
        encode_error(&x, status == BL_ETIMEOUT ? "timeout" : "leader_unreachable");
        bl_reply(n, &px->from, x.buff, x.index);
        ei_x_free(&x);
    }
    free(px);
}

/* The request for the leader: forwarded as {fwd, Req}, answered when it answers. */
static int forward(tasks_svc *s, const bl_from *from, const char *buf, int start, int end,
                   unsigned tmo_ms, ei_x_buff *r)
{
    const char *l = bl_cluster_leader(s->n, NULL);
    if (!l || bl_is_local_node(s->n, l)) {
        encode_error(r, l ? "not_ready" : "no_leader");
        return 0;
    }
    proxy *px = calloc(1, sizeof(*px));
    if (!px) {
        encode_error(r, "enomem");
        return 0;
    }
    px->from = *from;
    px->s = s;
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "fwd");
    ei_x_append_buf(&x, buf + start, end - start);
    DL_APPEND(s->proxies, px);
    int rc = bl_call(s->proc, NULL, TASKS_PROC, l, x.buff, x.index, tmo_ms, proxy_done, px);
    ei_x_free(&x);
    if (rc != BL_OK) {
        DL_DELETE(s->proxies, px);
        free(px);
        encode_error(r, "leader_unreachable");
        return 0;
    }
    return 1;
}

static int on_call(bl_proc *self, const bl_from *from, const char *buf, int index, ei_x_buff *r,
                   void *ud)
{
    (void)self;
    tasks_svc *s = ud;
    int idx = index, ar = 0, fwd = 0, start = index;
    char tag[MAXATOMLEN_UTF8] = "";
    int t0 = idx;
    if (ei_decode_tuple_header(buf, &t0, &ar) == 0 && ar == 2 && get_atom(buf, &t0, tag) == 0 &&
        !strcmp(tag, "fwd")) {
        fwd = 1;
        idx = start = t0;
    }
    int end = start;
    if (bl__skip_term(buf, &end) < 0) return -1;
    ar = 0;
    tag[0] = 0;
    int k = idx;
    if (ei_decode_tuple_header(buf, &k, &ar) == 0) {
        if (get_atom(buf, &k, tag) < 0) tag[0] = 0;
    } else {
        k = idx;
        if (get_atom(buf, &k, tag) < 0) tag[0] = 0;
    }
    /* the agent side: handlers of this node, its attempts */
    if (!fwd) {
        int h = bl__agent_call(s->agent, tag, from, buf, k, ar, r);
        if (h) return h > 1 ? 1 : 0;
    }
    static const char *const LEADER_CALLS[] = {"submit", "get",   "list",   "cancel",
                                               "wait",   "watch", "agents", "changes"};
    int known = 0;
    for (size_t i = 0; i < sizeof(LEADER_CALLS) / sizeof(LEADER_CALLS[0]); i++)
        known |= !strcmp(tag, LEADER_CALLS[i]);
    if (!known) {
        encode_error(r, "unknown_request");
        return 0;
    }
    unsigned long wait_ms = 0;
    if (!s->leader) {
        if (fwd) {
            encode_error(r, "not_leader");
            return 0;
        }
        /* {wait, Id, Tmo} and {watch, Id, Ver, Tmo}: the answer may take Tmo */
        unsigned tmo = 15000;
        int j = k;
        char id[BL_TASK_ID_LEN];
        unsigned long long v;
        if ((!strcmp(tag, "wait") || !strcmp(tag, "watch")) &&
            bl__get_bin(buf, &j, id, sizeof(id)) == 0 &&
            (strcmp(tag, "watch") || ei_decode_ulonglong(buf, &j, &v) == 0) &&
            ei_decode_ulong(buf, &j, &wait_ms) == 0)
            tmo = (unsigned)(wait_ms > 600000 ? 600000 : wait_ms) + 15000;
        else if (!strcmp(tag, "changes") && ar == 2)
            tmo = (unsigned)bl__feed_wait_ms(buf, k) + 15000;
        return forward(s, from, buf, start, end, tmo, r);
    }
    char id[BL_TASK_ID_LEN];
    if (!strcmp(tag, "submit") && ar == 2) return do_submit(s, from, buf, k, r);
    if (!strcmp(tag, "list") && ar == 2) {
        do_list(s, buf, k, r);
        return 0;
    }
    if (!strcmp(tag, "agents") && ar == 0) {
        do_agents(s, r);
        return 0;
    }
    if (!strcmp(tag, "changes") && ar == 2) return bl__feed_call(s->feed, from, buf, k, r);
    if (ar < 2 || bl__get_bin(buf, &k, id, sizeof(id)) < 0) {
        encode_error(r, "bad_request");
        return 0;
    }
    task *t = find(s, id);
    if (!strcmp(tag, "cancel") && ar == 2) return do_cancel(s, id, r);
    if (!t) {
        encode_error(r, "not_found");
        return 0;
    }
    if (!strcmp(tag, "get") && ar == 2) {
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "ok");
        bl__task_encode(t, r, 1);
        return 0;
    }
    /* {wait, Id, TimeoutMs}: when final; {watch, Id, Ver, TimeoutMs}: when ver > Ver */
    unsigned long long after = 0;
    if (!strcmp(tag, "watch") && (ar != 4 || ei_decode_ulonglong(buf, &k, &after) < 0)) {
        encode_error(r, "bad_request");
        return 0;
    }
    if ((strcmp(tag, "wait") || ar != 3) && strcmp(tag, "watch")) {
        encode_error(r, "bad_request");
        return 0;
    }
    if (ei_decode_ulong(buf, &k, &wait_ms) < 0) {
        encode_error(r, "bad_request");
        return 0;
    }
    int ready = after ? t->ver > after : ts_final(t->state) && !t->repl_pending;
    if (ready || wait_ms == 0) {
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "ok");
        bl__task_encode(t, r, 1);
        return 0;
    }
    waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        encode_error(r, "enomem");
        return 0;
    }
    w->from = *from;
    w->s = s;
    w->after_ver = after;
    snprintf(w->id, sizeof(w->id), "%s", id);
    int tid = bl_timer(s->n, (unsigned)(wait_ms > 600000 ? 600000 : wait_ms), 0, waiter_timeout, w);
    w->timer = tid > 0 ? tid : 0;
    w->next = s->waiters;
    s->waiters = w;
    return 1;
}

static void on_cast(bl_proc *self, const char *buf, int index, void *ud)
{
    (void)self;
    tasks_svc *s = ud;
    (void)bl__agent_cast(s->agent, buf, index);
}

static void on_exit_sig(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud)
{
    (void)self;
    (void)buf;
    (void)index;
    tasks_svc *s = ud;
    bl__agent_exit(s->agent, from);
}

static void svc_free(tasks_svc *s)
{
    if (s->tick_timer > 0) bl_timer_cancel(s->n, s->tick_timer);
    if (s->dispatch_timer > 0) bl_timer_cancel(s->n, s->dispatch_timer);
    if (s->cluster_sub > 0) bl_cluster_unsubscribe(s->n, s->cluster_sub);
    while (s->waiters)
        waiter_free(s, s->waiters);
    proxy *px, *pt;
    DL_FOREACH_SAFE(s->proxies, px, pt) {
        DL_DELETE(s->proxies, px);
        free(px);
    }
    bl__tasks_builtins_stop(s->builtins);
    bl__feed_free(s->feed);
    bl__agent_free(s->agent);
    bl__repl_free(s->repl);
    bl__tstore_close(s->store);
    task *t, *tt;
    HASH_ITER(hh, s->tasks, t, tt) {
        HASH_DEL(s->tasks, t);
        bl__task_free(t);
    }
    idem_ent *e, *et;
    HASH_ITER(hh, s->idem, e, et) {
        HASH_DEL(s->idem, e);
        free(e);
    }
    agent_info *a, *at;
    HASH_ITER(hh, s->agents, a, at) {
        HASH_DEL(s->agents, a);
        free(a);
    }
    free(s);
}

static void on_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    svc_free(ud);
}

static const bl_proc_ops TASKS_OPS = {
    .on_msg = on_msg,
    .on_call = on_call,
    .on_cast = on_cast,
    .on_exit = on_exit_sig,
    .on_terminate = on_terminate,
};

static void loaded(void *ud, task **v, unsigned nt, const char *error)
{
    tasks_svc *s = ud;
    unsigned k = 0;
    for (unsigned i = 0; i < nt; i++) {
        if (find(s, v[i]->id)) { /* replicated here while loading: that copy is newer */
            bl__task_free(v[i]);
            continue;
        }
        v[i]->orphan = 1;
        insert(s, v[i]);
        k++;
    }
    s->loaded = 1;
    if (error)
        bl_log(s->n, BL_LOG_WARN,
               "tasks: the task store %s is unusable (%s): the queue lives in "
               "memory only",
               bl__tstore_path(s->store), error);
    else
        bl_log(s->n, BL_LOG_INFO, "tasks: %u tasks loaded from %s (%u not final)", k,
               bl__tstore_path(s->store), s->open);
    leadership_check(s);
}

int bl_tasks_start(bl_node *n)
{
    if (bl_is_tool_node(n->name)) return BL_OK;
    tasks_svc *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->n = n;
    s->coordinator = !strcmp(n->cfg.role, "coordinator") && n->cluster;
    int rc = bl_spawn(n, TASKS_PROC, &TASKS_OPS, s, &s->proc);
    if (rc != BL_OK) {
        free(s);
        return rc;
    }
    bl_trap_exit(s->proc, 1);
    s->repl = bl__repl_new(n, s->proc, &tasks_repl, s);
    s->agent = bl__agent_new(s, n);
    s->feed = bl__feed_new(n);
    int tid = bl_timer(n, TICK_MS, TICK_MS, tick, s);
    s->tick_timer = tid > 0 ? tid : 0;
    s->cluster_sub = n->cluster ? bl_cluster_subscribe(n, on_cluster, s) : 0;
    if (!s->repl || !s->agent || !s->feed || tid <= 0) {
        bl_exit(s->proc, "shutdown");
        return BL_ENOMEM;
    }
    if (s->coordinator) {
        s->store = bl__tstore_open(n, loaded, s);
        if (!s->store) {
            bl_log(n, BL_LOG_WARN,
                   "tasks: no task store (out of memory?): the queue lives in "
                   "memory only");
            s->loaded = 1;
        }
    } else {
        s->loaded = 1;
    }
    if (!(s->builtins = bl__tasks_builtins_start(n))) return BL_ENOMEM;
    return BL_OK;
}
