/* child.h - child processes run from the loop (child.c), for every layer that runs a command:
 * the `exec` task type (tasks/tasks_exec.c) and command health checks (health/checks.c).
 *
 * A child is spawned with posix_spawn (argv, no shell; stdin /dev/null; SIGPIPE and the signal
 * mask back to their defaults; its own process group), its stdout and stderr either to
 * /dev/null or to one pipe read on the loop with a bound on what is kept, an optional timeout
 * that kills its process group, and it is reaped through a pidfd watched by the loop (a 100 ms
 * waitpid(WNOHANG) poll where pidfd_open is missing: libev's ev_child works only on the default
 * loop, and every node has a loop of its own). Nothing here waits for a child on the loop.
 * Loop thread only. */
#ifndef BL_RUNTIME_CHILD_H
#define BL_RUNTIME_CHILD_H

#include "internal.h"

#include <stddef.h>

typedef struct bl__child bl__child;

typedef struct bl__child_spec {
    char *const *argv;   /* argv[0] is the program; NULL-terminated */
    int search_path;     /* 1: argv[0] looked up in PATH (posix_spawnp); 0: used as given */
    size_t output_max;   /* 0: stdout and stderr to /dev/null; else both to one pipe, at most
                          * this many bytes kept (the rest read and dropped, `truncated`) */
    unsigned timeout_ms; /* 0: none; else its process group is killed after this long */
} bl__child_spec;

typedef struct bl__child_result {
    int wstatus;        /* as waitpid gives it; 0xff00 (exit 255) when someone else reaped it */
    int timed_out;      /* killed at its timeout */
    int killed;         /* killed by bl__child_kill */
    const char *output; /* what it wrote (output_len bytes, not NUL-terminated); valid only
                         * during the callback */
    size_t output_len;
    int truncated; /* it wrote more than output_max */
} bl__child_result;

/* Called once, on the loop, when the child has exited (its output read to the end of what it
 * wrote); the handle is freed after it returns. */
typedef void (*bl__child_done_fn)(bl_node *n, const bl__child_result *r, void *ud);

/* BL_OK with *out set (may be NULL: no handle kept), BL_EINVAL (no argv), BL_ENOMEM, or BL_ESYS
 * with the posix_spawn (or pipe) error in *spawn_err (a missing program, ...): done is called
 * only after BL_OK. */
int bl__child_spawn(bl_node *n, const bl__child_spec *spec, bl__child_done_fn done, void *ud,
                    bl__child **out, int *spawn_err);
/* Kill its process group now (SIGKILL); done is still called, with `killed`. */
void bl__child_kill(bl__child *c);
/* The owner no longer wants the result (a cancel, its owner stopping): done is never called,
 * the process group is killed, and the child is reaped on the loop later (or at bl_node_free). */
void bl__child_abandon(bl__child *c);
/* bl_node_free: the children still running are killed and reaped (the loop has stopped; a
 * short bounded wait for each killed child), none is told. */
void bl__children_free(bl_node *n);

#endif
