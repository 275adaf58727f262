/* cli.h - what the files of the beamlet command share: the subcommand dispatch table, the admin
 * client (a short-lived hidden node that calls a process on the target and exits), and the
 * pieces `beamlet node` adds to a running node (admin process, systemd integration). */
#ifndef BL_CLI_H
#define BL_CLI_H

#include "beamlet/beamlet.h"
#include "beamlet/config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define BL__CLI_MAX_POS 8

/* ---- subcommands (commands.c) ---- */
/* A word path ("config show"), its handler (argv: the words after the path), a usage line and
 * a paragraph for --help. */
typedef struct bl__cli_cmd {
    const char *path;
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *help;
} bl__cli_cmd;
/* Handles argv when it names a command of the table or asks for --help of any command: returns 1
 * and sets *rc; 0 leaves argv to main.c. */
int bl__cli_dispatch(int argc, char **argv, int *rc);
/* Usage lines of the table's commands, for `beamlet help`. */
void bl__cli_usage(FILE *out);

/* ---- version.c ---- */
int bl__cli_version(int argc, char **argv);
const char *bl__cli_git_rev(void);
const char *bl__cli_build_date(void);

/* ---- apikey_cmd.c: the gateway's API keys ---- */
int bl__cli_apikey_create(int argc, char **argv);
int bl__cli_apikey_list(int argc, char **argv);
int bl__cli_apikey_revoke(int argc, char **argv);

/* ---- the CLI as the edge of a trace (trace_opt.c) ---- */
typedef struct bl__cli_trace {
    const char *traceparent; /* --traceparent (checked), else TRACEPARENT from the environment */
    int show;                /* --show-trace: print the trace id on stderr */
} bl__cli_trace;
/* --traceparent TP / --show-trace at argv[i]: words taken (0: not one of them), -1 and err on a
 * bad traceparent. */
int bl__cli_trace_opt(bl__cli_trace *t, int argc, char **argv, int i, char *err, size_t errlen);
/* Make the command's trace current on the client node n (before its call). */
void bl__cli_trace_begin(bl_node *n, const bl__cli_trace *t, const char *cmd);

/* ---- admin client (client.c) ---- */
typedef struct bl__cli_opts {
    const char *cmd;    /* for messages: "service restart" */
    const char *target; /* --node NODE (or the first positional word, if the caller says so) */
    const char *format; /* --format VALUE, NULL if not given */
    unsigned timeout_ms;
    const char *pos[BL__CLI_MAX_POS]; /* positional words in order */
    int npos;
    bl_config cfg; /* the client node's config: cookie */
    bl__cli_trace trace;
    int exit_code;
} bl__cli_opts;

/* Parse --node, --cookie, --cookie-file, --timeout, --format, --traceparent, --show-trace and
 * positional words. Prints the
 * problem and returns -1 on a bad option. */
int bl__cli_parse(bl__cli_opts *o, const char *cmd, int argc, char **argv);
/* Why a call to a node failed, in words for the user (tls: the client ran TLS distribution). */
const char *bl__cli_failure(int status, int tls);
/* TLS distribution for the admin client, as `beamlet node` takes it: the tls* keys of the
 * config file (--config or BEAMLET_CONFIG) and BEAMLET_TLS_* into cfg. -1 with err on a bad value.
 */
int bl__cli_tls_defaults(bl_config *cfg, int argc, char **argv, char *err, size_t errlen);
/* argv[i] a --tls* flag (or --config) with its value: applied, returns 2; 0 not one; -1 bad. */
int bl__cli_tls_flag(bl_config *cfg, int argc, char **argv, int i, char *err, size_t errlen);
/* The reply of a call: print it and return the exit code. */
typedef int (*bl__cli_reply_fn)(bl__cli_opts *o, const char *buf, int index, void *ud);
/* Start a hidden client node, call proc on o->target with req (a term body; proc NULL = ping),
 * hand the reply to fn, stop. Returns the exit code: fn's, or 1 when the node is unreachable. */
int bl__cli_call(bl__cli_opts *o, const char *proc, const char *req, int reqlen,
                 bl__cli_reply_fn fn, void *ud);
/* Call a process of the target's CLI layer through its `beamlet` process ({call, Name, Req,
 * Tmo}), so a node without it answers noproc at once; fn gets the inner reply. */
int bl__cli_call_via_beamlet(bl__cli_opts *o, const char *proc, const char *req, int reqlen,
                             bl__cli_reply_fn fn, void *ud);
/* A message to a watching client: print it; return 1 to stop (exit 0), 0 to go on. */
typedef int (*bl__cli_msg_fn)(bl__cli_opts *o, const char *buf, int index, void *ud);
/* After each subscription (again: 1 after the connection was lost and the watch subscribed
 * anew): the command may call the node from p to catch up on what it missed. */
typedef void (*bl__cli_subscribed_fn)(bl__cli_opts *o, bl_proc *p, int again, void *ud);
/* Start a hidden client node, call proc on o->target with {tag, OurPid}, then hand every message
 * sent to us to on_msg until it says stop or SIGINT. A first subscription that fails exits 1; once
 * subscribed, a lost connection (the node killed, restarted, or unreachable for a while) makes the
 * watch subscribe again, retrying every 0.25-2 s until the node answers, then on_subscribed runs
 * again. */
int bl__cli_watch(bl__cli_opts *o, const char *proc, const char *tag, bl__cli_msg_fn on_msg,
                  bl__cli_subscribed_fn on_subscribed, void *ud);
/* End a watch from a callback of its own (p: the process on_subscribed got), exit code code. */
void bl__cli_watch_end(bl_proc *p, int code);
/* A client node for commands that make several calls: start runs once the node is up, with
 * a process to call from; the callbacks it sets off end with bl_node_stop(). Returns
 * o->exit_code (1 when the client node cannot start or start returns non-zero). */
typedef int (*bl__cli_start_fn)(bl__cli_opts *o, bl_proc *p, void *ud);
int bl__cli_session(bl__cli_opts *o, bl__cli_start_fn start, void *ud);
/* One change of the cluster configuration (a history record or a watched change), as a line of
 * `config history` and `config watch` (config_cmd.c). */
void bl__cc_print_change(json_t *h);
/* Print a JSON value indented (for --format json). */
void bl__cli_print_json(json_t *j);

/* ---- configuration (config_values.c) ---- */
/* The current value of a JSON key as text; 0 when the key has no row (then show what was given). */
int bl__cfg_value(const bl_config *cfg, const char *key, char *buf, size_t len);
/* Keys whose values are never printed: cookie, *secret*, *password*, *token*, *api_key*. */
int bl__cfg_is_secret(const char *key);

/* ---- on a running `beamlet node` (node_cmd.c, admin_proc.c, sysd.c) ---- */
/* The node's configuration chain as given: argv of `beamlet node`, file, environment; each key's
 * source; re-read on SIGHUP. */
typedef struct bl__node_ctx bl__node_ctx;
/* admin_proc.c: the `beamlet_admin` process: config (values and sources), services, restart, leave,
 * reload. ctx outlives the node. */
int bl__admin_start(bl_node *n, bl__node_ctx *ctx);
/* sysd.c: tell the service manager (no-op outside systemd): "RELOADING=1", "STOPPING=1", ... */
void bl__sysd_notify(const char *state);

#endif
