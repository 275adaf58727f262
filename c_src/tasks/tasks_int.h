/* tasks_int.h - what the files of the task dispatcher share (docs/tasks.md):
 *   tasks.c        the `beamlet_tasks` process: protocol, the queue on the leader, placement,
 *                  timeouts, retries, takeover by a new leader, followers' replicas
 *   tasks_rec.c    the task record: one map encoding for the wire, the disk and replies
 *   tasks_agent.c  the agent side: handlers (C and BEAM), attempts, results until acked
 *   tasks_builtin.c echo, sleep, health.check, exec
 *   tasks_store.c  the coordinators' SQLite copy of the queue
 *   tasks_feed.c   the leader's feed of transitions (watch every task, /api/v1/tasks/changes)
 * The dispatcher sits above services/ (its replication layer, repl.c), store/ and health/
 * (events, load). */
#ifndef BL_TASKS_INT_H
#define BL_TASKS_INT_H

#include "../runtime/internal.h"
#include "../services/repl.h"
#include "beamlet/tasks.h"

#include <ei.h>
#include <stdint.h>

#define TASKS_PROC "beamlet_tasks"
#define TASK_HIST_MAX 48        /* transitions kept per task */
#define TASK_MAX_CAPS 16        /* required capabilities per task */
#define TASK_MAX_TERM (1 << 20) /* payload / result bytes */

typedef enum {
    TS_QUEUED = 0,
    TS_ASSIGNED,
    TS_RUNNING,
    TS_SUCCEEDED,
    TS_FAILED,
    TS_CANCELLED,
    TS_TIMED_OUT,
    TS__COUNT
} task_state;

static inline int ts_final(int s)
{
    return s >= TS_SUCCEEDED;
}

typedef struct task_hist {
    unsigned char state;
    unsigned attempt;
    unsigned long long time_ms;
    char agent[BL_NODE_LEN];
} task_hist;

struct task;
/* an entry of the leader's list of tasks not final */
typedef struct open_ent {
    struct open_ent *prev, *next;
    struct task *t; /* NULL: not on the list */
} open_ent;

typedef struct task {
    UT_hash_handle hh; /* by id */
    open_ent open;
    bl__repl_link link;
    char id[BL_TASK_ID_LEN];
    char type[BL_TASK_TYPE_LEN];
    char trace_id[BL_TRACE_ID_LEN];
    char idem[128]; /* idempotency key, "" if none */
    char caps[TASK_MAX_CAPS][64];
    unsigned ncaps;
    int prio; /* 0 high, 1 normal, 2 low */
    unsigned timeout_ms, retries;
    unsigned queue_timeout_ms; /* queued longer than this: failed with queue_timeout; 0: never */
    char *payload; /* term body */
    int payload_len;
    /* state */
    int state;
    unsigned attempt, lost; /* attempts started; reassignments after an agent was lost */
    char agent[BL_NODE_LEN];
    unsigned long long submitted_ms, updated_ms, next_at_ms; /* next_at: retry backoff */
    char *result; /* succeeded: the result; else the last error reason (term body) */
    int result_len;
    unsigned progress;
    char note[128];
    task_hist *hist; /* grown as transitions come (TASK_HIST_MAX at most) */
    unsigned nhist, caphist;
    unsigned long long ver, term; /* ordering of copies: (term, ver) */
    /* leader only, not replicated */
    double check_after; /* monotonic s: an agent's advert not naming it means lost */
    double deadline;    /* monotonic s: assigned/running past this: lost */
    int repl_pending;   /* acked puts in flight */
    int dirty;          /* to be written to the store */
    int orphan;         /* loaded from disk or offered: in no owner's bucket yet */
} task;

/* ---- tasks_rec.c ---- */
const char *bl__task_state_name(int s);
int bl__task_state_parse(const char *s); /* -1 if unknown */
const char *bl__task_prio_name(int p);
/* The record as a map (term body). full 0: without payload and result (lists). */
int bl__task_encode(const task *t, ei_x_buff *x, int full);
/* Decode a record map at *idx into a fresh task (calloc'd; free with bl__task_free). NULL if
 * malformed (*idx undefined then). */
task *bl__task_decode(const char *buf, int *idx);
void bl__task_free(task *t);
/* Copy src's replicated fields over dst (dst keeps its link and leader-only fields). */
void bl__task_assign(task *dst, task *src);
void bl__task_hist_add(task *t, int state, unsigned long long now_ms);
/* A copy of the term at buf[*idx] (moves *idx past it). -1 malformed or too large. */
int bl__term_dup(const char *buf, int *idx, char **out, int *len);
int bl__get_bin(const char *buf, int *idx, char *out, size_t cap);
/* 32 random lowercase hex digits, not all zero */
void bl__trace_id_new(char out[BL_TRACE_ID_LEN]);

/* ---- tasks.c: the service ---- */
typedef struct tasks_svc tasks_svc;
tasks_svc *bl__tasks_of(bl_node *n);
bl_proc *bl__tasks_proc(tasks_svc *s);
struct tasks_agent *bl__tasks_agent_of(tasks_svc *s);
/* The leader's name, or NULL. */
const char *bl__tasks_leader(tasks_svc *s, unsigned long long *term);

/* ---- tasks_agent.c ---- */
typedef struct tasks_agent tasks_agent;
tasks_agent *bl__agent_new(tasks_svc *s, bl_node *n);
void bl__agent_free(tasks_agent *a);
/* messages for the agent side: 1 when handled */
int bl__agent_msg(tasks_agent *a, const char *tag, const bl_msg *msg, const char *buf, int idx,
                  int arity);
/* gen_server calls for the agent side ({register_handler, ...}, runs): 1 when handled (reply
 * encoded, or deferred) */
int bl__agent_call(tasks_agent *a, const char *tag, const bl_from *from, const char *buf, int idx,
                   int arity, ei_x_buff *reply);
void bl__agent_leader_changed(tasks_agent *a);
void bl__agent_exit(tasks_agent *a, const bl_pid *pid);
/* a cast or plain message from a BEAM handler ({task_done, ...}, {task_progress, ...}): 1 if so */
int bl__agent_cast(tasks_agent *a, const char *buf, int idx);
/* the advert now (types, capabilities, limit, in flight, load, what it runs) */
void bl__agent_advertise(tasks_agent *a);

/* ---- tasks_builtin.c ---- */
typedef struct builtins bl__builtins;
bl__builtins *bl__tasks_builtins_start(bl_node *n);
void bl__tasks_builtins_stop(bl__builtins *b);
/* ---- tasks_exec.c: exec (task_exec_allow) and health.check; NULL when off ---- */
void *bl__tasks_exec_start(bl_node *n);
void bl__tasks_exec_stop(void *x);

/* ---- tasks_store.c ---- */
typedef struct tasks_store tasks_store;
typedef void (*tasks_loaded_fn)(void *ud, task **tasks, unsigned n, const char *error);
/* Opens the coordinator's database; loaded runs once (on the loop) with what it held. */
tasks_store *bl__tstore_open(bl_node *n, tasks_loaded_fn loaded, void *ud);
/* Queue t's current record (or its deletion) for the next batch. */
void bl__tstore_put(tasks_store *st, const task *t);
void bl__tstore_del(tasks_store *st, const char *id);
void bl__tstore_close(tasks_store *st);
/* The sequence number of the last put or delete queued. */
unsigned long long bl__tstore_seq(tasks_store *st);
/* fn(ud, 1) once everything queued up to seq is committed to the store (flushed at the next
 * loop turn): returns 1. Returns 0 (fn not called) when it is written already, or with no
 * store. fn(ud, 0) at close: the service is going, fn only frees ud. */
typedef void (*tasks_written_fn)(void *ud, int ok);
int bl__tstore_when_written(tasks_store *st, unsigned long long seq, tasks_written_fn fn, void *ud);
const char *bl__tstore_path(tasks_store *st);

/* ---- tasks_feed.c ---- */
typedef struct tasks_feed tasks_feed;
tasks_feed *bl__feed_new(bl_node *n);
void bl__feed_free(tasks_feed *f);
/* A new leader term (the ring starts empty); waiting callers are answered {error, why} (none
 * when why is NULL). */
void bl__feed_reset(tasks_feed *f, unsigned long long term, const char *why);
/* A transition of t (error: the failure's reason atom, or NULL). */
void bl__feed_push(tasks_feed *f, const task *t, const char *error);
/* {changes, Map}: Map at buf[idx]. 1: answered later (deferred reply), 0: reply in r. */
int bl__feed_call(tasks_feed *f, const bl_from *from, const char *buf, int idx, ei_x_buff *r);
/* the timeout_ms of a {changes, Map} request's Map (0 when malformed) */
unsigned long bl__feed_wait_ms(const char *buf, int idx);
unsigned bl__feed_waiters(tasks_feed *f);

#endif
