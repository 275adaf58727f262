/* node_ctx.h - the state `beamlet node` keeps beside its node (node_cmd.c), shared with the
 * admin process (admin_proc.c): the configuration chain as given and each key's source. */
#ifndef BL_CLI_NODE_CTX_H
#define BL_CLI_NODE_CTX_H

#include "cli.h"

struct bl__node_ctx {
    bl_node *n;
    int argc; /* the flags of `beamlet node`, re-read on reload */
    char **argv;
    char file[1024];  /* the config file in use ("" for none) */
    json_t *sources;  /* display key -> {"source": file|env|flag, "from": ..., "given": ...} */
    int leave_timer;  /* node leave: the stop is scheduled */
    struct {          /* sysd.c */
        int ready;    /* READY=1 sent */
        int timer;    /* readiness poll, then the watchdog */
        double since; /* when the readiness poll began (s) */
        unsigned watchdog_ms;
    } sysd;
};

/* sysd.c: sd_notify readiness (published and joined), status, watchdog fed from the loop;
 * nothing at all unless NOTIFY_SOCKET is set. */
int bl__sysd_start(bl__node_ctx *ctx);

/* The effective configuration: [{"key", "value" (secrets redacted), "source", "from"}]. */
json_t *bl__node_config_json(bl__node_ctx *ctx);
/* Re-read the chain, apply the live keys, log every change; *changes: [{"key", "applied"}]. */
int bl__node_reload(bl__node_ctx *ctx, const char *why, json_t **changes);
/* sname/node_name are shown as "name". */
const char *bl__display_key(const char *key);
/* Block SIGHUP in the calling thread before bl_node_start, so every thread the node starts
 * (handshakes, lookups, metrics) inherits the block and the signal reaches the loop's signalfd
 * instead of killing the process. */
void bl__node_block_signals(void);
/* memory.c: the allocator's policy for a node process (before any thread starts), and the
 * loop's periodic return of free heap pages (after bl_node_start). */
void bl__memory_policy(void);
int bl__memory_start(bl_node *n);
/* Run the node's loop with the admin process, SIGHUP reload and systemd notification. */
int bl__node_run(bl_node *n, int argc, char **argv);

#endif
