/* tasks.h - task handlers in C: a node that registers a handler for a task type advertises it
 * to the leader among the coordinators, which assigns it tasks of that type (docs/tasks.md).
 *
 * A handler starts one attempt of a task and finishes it -- at once or later, from a timer, an
 * I/O watcher or a reply -- with bl_task_done(); it may report progress meanwhile. The loop is
 * never blocked: a long task returns from run() and finishes later. An attempt that is cancelled
 * or passes its timeout gets the cancel callback (when given); after that its ref is dead and
 * bl_task_done()/bl_task_progress() on it return BL_ENOPROC. Everything runs on the loop thread.
 *
 * Built in on every node that is not a coordinator or gateway: `echo` (the payload back),
 * `sleep` (payload #{ms => N}), `health.check` (payload #{name => Check}: runs that health check
 * now) and `exec` (only with task_exec_allow). */
#ifndef BEAMLET_TASKS_H
#define BEAMLET_TASKS_H

#pragma GCC visibility push(default)

#include "beamlet.h"
#include "trace.h" /* BL_TRACE_ID_LEN */

#ifdef __cplusplus
extern "C" {
#endif

#define BL_TASK_ID_LEN 40
#define BL_TASK_TYPE_LEN 64

/* One attempt of a task, as its handler sees it (valid during run() only; copy what you keep). */
typedef struct bl_task_info {
    uint64_t ref; /* this attempt on this node: what bl_task_done() takes */
    const char *id, *type, *trace_id;
    unsigned attempt;    /* 1 for the first run, 2 for the first retry, ... */
    unsigned timeout_ms; /* the attempt is cancelled after this */
    const char *payload; /* a term body at payload[payload_index] (ei_decode_*) */
    int payload_index;
} bl_task_info;

/* run: start the attempt. BL_OK: it finishes now or later with bl_task_done(); a BL_E* code:
 * the attempt failed at once (reason: the code's name). */
typedef int (*bl_task_run_fn)(bl_node *n, const bl_task_info *t, void *ud);
/* cancel: the attempt was cancelled or timed out; stop its work (ref is dead after this). */
typedef void (*bl_task_cancel_fn)(bl_node *n, uint64_t ref, void *ud);

/* Register (or replace) the handler of a task type on this node. cancel may be NULL.
 * BL_OK, BL_EINVAL (empty or too long a type), BL_ENOMEM, BL_ENOPROC (no task service). */
int bl_task_handler(bl_node *n, const char *type, bl_task_run_fn run, bl_task_cancel_fn cancel,
                    void *ud);
int bl_task_handler_remove(bl_node *n, const char *type);

/* Finish an attempt. ok 1: term is the result; ok 0: term is the error reason (the task is
 * retried while it has retries left). term: a term body, or NULL for the atom ok / error.
 * BL_OK, BL_ENOPROC (ref dead: cancelled, timed out or finished already). */
int bl_task_done(bl_node *n, uint64_t ref, int ok, const char *term, int len);
/* Progress of an attempt: percent 0..100 and a short note (may be NULL). */
int bl_task_progress(bl_node *n, uint64_t ref, unsigned percent, const char *note);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
