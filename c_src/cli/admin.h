/* admin.h - main.c's admin-command runner, for commands kept in their own files:
 * join the target's cluster as a short-lived hidden node, make one gen_server call, print the
 * reply. A command fills in an `admin` and may add options, its own request term and its own
 * rendering through the hooks. */
#ifndef BL_CLI_ADMIN_H
#define BL_CLI_ADMIN_H

#include "beamlet/beamlet.h"

#include <jansson.h>

typedef struct admin admin;
struct admin {
    const char *cmd;     /* for messages: "ping", "cluster status", ... */
    const char *target;  /* node asked */
    const char *proc;    /* registered process called; NULL for ping */
    const char *request; /* atom sent (when encode is NULL) */
    int json;            /* --format json */
    int tls;             /* the client runs TLS distribution */
    /* with_who: the command takes --who NAME (1..127 characters), the person or tool behind an
     * admin action for the audit trail; who defaults to USER@HOST (cli) */
    int with_who;
    char who[128];
    unsigned timeout_ms;
    int exit_code;
    /* hooks (all optional) */
    /* an option main.c does not know, at argv[i]: return how many words it took (0: unknown) */
    int (*opt)(admin *a, int argc, char **argv, int i);
    /* the request term body (no version byte); non-zero: refuse with a message in a->err */
    int (*encode)(admin *a, ei_x_buff *req);
    /* print the reply (already JSON); set a->exit_code for a reply that reports a failure */
    void (*show)(admin *a, json_t *reply);
    /* instead of the gen_server call: start another request from p that ends in done (an erpc) */
    int (*start)(admin *a, bl_proc *p, bl_call_cb done);
    /* every answer that carries a term (status 0, BL_EEXCEPTION, ...) instead of the rendering:
     * print it and set a->exit_code */
    void (*answer)(admin *a, int status, const char *buf, int index);
    void *ud;
    char err[256];
};

/* Run it: argv holds the words after the command. Returns the process exit code. */
int bl__cli_admin(admin *a, int argc, char **argv);

/* rpc_cmd.c: beamlet rpc NODE M F [ARGS] (erpc:call) */
int bl__cli_rpc(int argc, char **argv);

/* health_cmd.c: the commands of the health service (rows of commands.c's table) */
int bl__cli_metrics(int argc, char **argv);
int bl__cli_events(int argc, char **argv);
int bl__cli_history(int argc, char **argv);
int bl__cli_health(int argc, char **argv);
int bl__cli_maintenance(int argc, char **argv);
int bl__cli_alerts(int argc, char **argv);
int bl__cli_checks(int argc, char **argv);

/* registry_cmd.c: beamlet service find (the registry's entries) */
int bl__cli_service_find(int argc, char **argv);

#endif
