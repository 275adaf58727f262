/* commands.c - the dispatch table of beamlet's subcommands that live outside main.c (version,
 * config, service, node leave, metrics, completion), and `--help` for every command.
 *
 * main.c asks bl__cli_dispatch first: a word path of this table runs its handler; `CMD --help`
 * (or `help CMD`) prints the usage and paragraph of any command, main.c's ones included. New
 * subcommands add a row here and a file of their own. */
#include "admin.h"
#include "cli.h"

#include <stdlib.h>

int bl__cli_config_template(int argc, char **argv);
int bl__cli_config_validate(int argc, char **argv);
int bl__cli_config_show(int argc, char **argv);
int bl__cli_config_keys(int argc, char **argv);
int bl__cli_config_get(int argc, char **argv);
int bl__cli_config_set(int argc, char **argv);
int bl__cli_config_unset(int argc, char **argv);
int bl__cli_config_history(int argc, char **argv);
int bl__cli_config_watch(int argc, char **argv);
int bl__cli_config_status(int argc, char **argv);
int bl__cli_service_list(int argc, char **argv);
int bl__cli_service_restart(int argc, char **argv);
int bl__cli_service_call(int argc, char **argv);
int bl__cli_publish(int argc, char **argv);
int bl__cli_node_leave(int argc, char **argv);
int bl__cli_completion(int argc, char **argv);
int bl__cli_task_submit(int argc, char **argv);
int bl__cli_task_get(int argc, char **argv);
int bl__cli_task_list(int argc, char **argv);
int bl__cli_task_cancel(int argc, char **argv);
int bl__cli_task_watch(int argc, char **argv);
int bl__cli_task_agents(int argc, char **argv);

#define CLIENT_OPTS                                                                                \
    "[--cookie C | --cookie-file F] [--timeout MS] [--proto-dist inet6_tcp] [--tls true "       \
    "--tls-cert F --tls-key F --tls-ca F | --config FILE.json] [--traceparent TP]"

/* run NULL: handled by main.c, listed here for --help and completion */
static const bl__cli_cmd CMDS[] = {
    {"node", NULL, "beamlet node --sname NAME | --name NAME@HOST [options]",
     "Run a node in the foreground. Configuration: defaults < JSON file (--config FILE or "
     "BEAMLET_CONFIG) < environment < flags; `beamlet help` lists every key. SIGTERM/SIGINT: "
     "leave the cluster and stop. SIGHUP: re-read the configuration (the live keys of `beamlet "
     "config keys` apply at once: log level and format, allow and the connection limits, TLS "
     "files, ...; other changes are logged as needing a restart). Under systemd "
     "(NOTIFY_SOCKET set) readiness and watchdog are reported. Security (docs/security.md): "
     "--allow NODE,... lets only those nodes connect, --max-connections and the per-address "
     "handshake bounds refuse floods with bounded logs; give the cookie as --cookie-file F "
     "(mode 0400): --cookie C shows in ps."},
    {"ping", NULL, "beamlet ping NODE " CLIENT_OPTS,
     "net_adm:ping the node: prints pong and exits 0, or says why not and exits 1."},
    {"info", NULL, "beamlet info NODE [--format json] " CLIENT_OPTS,
     "The node's facts: name, role, cluster, version, uptime, connections, os pid, port."},
    {"stats", NULL, "beamlet stats NODE [--format json] " CLIENT_OPTS,
     "Traffic counters (with connections refused, by reason) and per-connection queues of the "
     "node."},
    {"cluster status", NULL, "beamlet cluster status --node NODE [--format json] " CLIENT_OPTS,
     "Cluster as the node sees it: members per state, leader and term, health."},
    {"cluster events", NULL, "beamlet cluster events --node NODE " CLIENT_OPTS,
     "Recent membership and leader events (JSON)."},
    {"nodes list", NULL, "beamlet nodes list --node NODE [--format table|json] " CLIENT_OPTS,
     "Members with role, state, capabilities and last contact."},
    {"apikey create", bl__cli_apikey_create,
     "beamlet apikey create --node NODE --role viewer|operator|admin [--name NAME] " CLIENT_OPTS,
     "Make an API key for the HTTP gateway (docs/gateway.md) and print it once. viewer reads; "
     "operator also registers services, publishes, acks alerts, sets maintenance; admin also "
     "manages keys and asks nodes to leave. The key works on every node of the cluster."},
    {"apikey list", bl__cli_apikey_list,
     "beamlet apikey list --node NODE [--format table|json] " CLIENT_OPTS,
     "The cluster's API keys: id, name, role, active or revoked (never the key itself)."},
    {"apikey revoke", bl__cli_apikey_revoke, "beamlet apikey revoke --node NODE ID " CLIENT_OPTS,
     "Revoke a key on every node of the cluster."},
    {"rpc", bl__cli_rpc, "beamlet rpc NODE MODULE FUNCTION [ARGS] [--format json] " CLIENT_OPTS,
     "erpc:call(NODE, MODULE, FUNCTION, ARGS) on a BEAM or beamlet node (rex for peers without "
     "spawn_request). ARGS is an Erlang list in text, e.g. '[1, foo, \"text\"]' (default []). "
     "Prints the value and exits 0; an exception prints {Class, Reason, Stack} and exits 1."},
    {"metrics", bl__cli_metrics, "beamlet metrics --node NODE [--format table|json] " CLIENT_OPTS,
     "The node's machine as its health service last sampled it: CPU per mode, load, memory and "
     "swap, pressure stall, real filesystems (size, used, available, inodes), disk I/O, network "
     "per interface, uptime, and the node's own RSS, fds, threads, connections and queued bytes "
     "(docs/health.md)."},
    {"health", bl__cli_health, "beamlet health --node NODE [--format table|json] " CLIENT_OPTS,
     "The cluster's health as the node computes it: a score from 0.0 to 1.0 and a status "
     "(active, degraded, maintenance, offline), its parts (availability, node health, "
     "services, quorum, leader), and every member's role, state, status (healthy, warning, "
     "critical, unknown), maintenance flag, CPU, memory, disk and load with the reasons for a "
     "warning (docs/health.md has the formula)."},
    {"node maintenance", bl__cli_maintenance,
     "beamlet node maintenance on|off --node NODE [--who NAME] " CLIENT_OPTS,
     "Put a node in maintenance (or take it out): it raises no alerts and counts as down on "
     "purpose in the cluster score; kept across restarts; recorded in the audit trail with who "
     "did it (default USER@HOST)."},
    {"alerts", bl__cli_alerts,
     "beamlet alerts --node NODE [--all] [--format json] | alerts ack ID --node NODE "
     "[--who NAME] " CLIENT_OPTS,
     "The cluster's alerts (decided once per cluster, by the leader): pending and firing ones, "
     "--all adds those resolved in the last hour. `ack ID` acknowledges one, recorded with who "
     "(default USER@HOST) and when, on any node."},
    {"task submit", bl__cli_task_submit,
     "beamlet task submit --node NODE --type T [--payload JSON] [--capability C]... "
     "[--priority high|normal|low] [--timeout-ms MS] [--retries K] [--queue-timeout-ms MS] "
     "[--idempotency-key K] "
     "[--trace-id ID] [--wait] [--format json] " CLIENT_OPTS,
     "Submit a task to the cluster's dispatcher (docs/tasks.md): the leader among the "
     "coordinators queues it, replicated to the other coordinators, and runs it on an agent that "
     "handles type T and has every capability C, the least loaded first. Prints the task id; "
     "--wait waits for the end and prints the result (exit 0) or the error (exit 1). A task still "
     "queued after --queue-timeout-ms (default: the leader's task_queue_timeout_ms; 0: never) "
     "fails with queue_timeout. Tried again "
     "across a leader change with the same idempotency key, so one command is one task."},
    {"task get", bl__cli_task_get, "beamlet task get ID --node NODE [--format json] " CLIENT_OPTS,
     "A task: state, attempt, agent, result or error, trace id, and every transition with its "
     "time and agent."},
    {"task list", bl__cli_task_list,
     "beamlet task list --node NODE [--state S] [--type T] [--limit N] [--format json] "
     CLIENT_OPTS,
     "Tasks, newest first (100 by default). S: queued, assigned, running, succeeded, failed, "
     "cancelled, timed_out."},
    {"task cancel", bl__cli_task_cancel, "beamlet task cancel ID --node NODE " CLIENT_OPTS,
     "Cancel a task that has not ended: it becomes cancelled at once; a running attempt is told "
     "to stop and its result, if any, is not recorded."},
    {"task watch", bl__cli_task_watch,
     "beamlet task watch [ID] --node NODE [--type T] [--state S] [--count N] [--format json] "
     CLIENT_OPTS,
     "With ID: print each transition of that task as it happens until it ends; exit 0 when it "
     "succeeded. Without ID: print every task's transitions as the leader records them (time, "
     "id, type, state, attempt, agent, reason), only type T and state S if given, until "
     "interrupted or N were printed; it follows the leader across a leader change."},
    {"task agents", bl__cli_task_agents,
     "beamlet task agents --node NODE [--format json] " CLIENT_OPTS,
     "The agents the leader places tasks on: their task types, capabilities, concurrency limit, "
     "tasks in flight and load."},
    {"checks", bl__cli_checks, "beamlet checks --node NODE [--format json] " CLIENT_OPTS,
     "The node's health checks (health_checks: HTTP GET, TCP connect, a command) with their "
     "status (passing, warning, critical), since when, and what the last run said."},
    {"events", bl__cli_events,
     "beamlet events --node NODE [--since 1h] [--until 10m] [--severity info|warn|critical] "
     "[--type T] [--from NODE] [--trace TRACE_ID] [--limit N] [--cluster] [--format "
     "json] " CLIENT_OPTS,
     "The node's event log and audit trail, kept on disk across restarts: membership, leader, "
     "service, check, alert, admin and trace events with time, node, type, severity, who did it, "
     "a JSON body and the trace id. --severity warn shows warn and critical; --since defaults "
     "to 24h (with --trace: everything kept); --cluster asks every active member and merges "
     "their logs; the table lists oldest first. --trace ID: only what that trace touched "
     "(docs/tracing.md), oldest first in JSON too."},
    {"history", bl__cli_history,
     "beamlet history --node NODE [--metric M] [--since 24h] [--until 1h] [--cluster] "
     "[--format json] " CLIENT_OPTS,
     "A metric's history as a sparkline with min/avg/max (raw samples for short ranges, 1 min "
     "then 1 h rollups for longer ones); without --metric, the metrics recorded. --cluster asks "
     "every active member and merges the points by time (a sparkline per member)."},
    {"version", bl__cli_version, "beamlet version [--short]",
     "The release, the git revision and the build date (--short: the release only)."},
    {"config template", bl__cli_config_template, "beamlet config template dev|staging|prod",
     "Print a configuration file for that environment. JSON has no comments: the notes are "
     "keys that start with an underscore (\"_comment\"), which the node and `config validate` "
     "skip. Save it, set node_name/cookie_file, check it with `beamlet config validate`."},
    {"config validate", bl__cli_config_validate, "beamlet config validate FILE",
     "Check a configuration file without starting a node. Exit 0 when it is valid; exit 2 "
     "with one line per problem, each naming its key (syntax, unknown keys, wrong types, "
     "out-of-range or unknown values, keys that contradict each other)."},
    {"config show", bl__cli_config_show,
     "beamlet config show --node NODE [--format table|json] " CLIENT_OPTS,
     "The effective configuration of a running node, each value with its source (default, "
     "file, env, flag) and where it came from; secrets (cookie, gossip_secret, ...) are shown "
     "as \"(redacted)\"."},
    {"config keys", bl__cli_config_keys, "beamlet config keys [--format table|json]",
     "Every configuration key: type, default, whether a running node applies a change at once "
     "(live) or needs a restart, and whether it can be set cluster-wide."},
    {"config get", bl__cli_config_get,
     "beamlet config get [KEY] --node NODE [--format table|json] " CLIENT_OPTS,
     "The cluster configuration as that node holds it: version, term, leader and each key set "
     "cluster-wide with its value, whether it is live and whether the node runs it or needs a "
     "restart. With KEY: its value only (exit 1 when it is not set)."},
    {"config set", bl__cli_config_set,
     "beamlet config set KEY VALUE --node NODE [--format table|json] " CLIENT_OPTS,
     "Set a key cluster-wide, through the leader (any member forwards). The value is checked "
     "with the configuration file's rules first; a bad one is refused naming the key and "
     "nothing changes. Acknowledged once a majority of the coordinators hold it; live keys are "
     "applied by every member at once, the others are reported as needing a restart. Refused "
     "without a leader (a partitioned minority). If a majority does not hold it within 5 s "
     "the command says it is pending (exit 3): the leader holds it, a new leader may roll it "
     "back; `config status VERSION --term T` tells which."},
    {"config unset", bl__cli_config_unset, "beamlet config unset KEY --node NODE " CLIENT_OPTS,
     "Remove a cluster-wide setting: every member goes back to its own value for KEY."},
    {"config history", bl__cli_config_history,
     "beamlet config history [KEY] --node NODE [--format table|json] " CLIENT_OPTS,
     "The changes of the cluster configuration, newest first: version, time, key, old and new "
     "value, who."},
    {"config status", bl__cli_config_status,
     "beamlet config status VERSION [--term T] --node NODE [--format table|json] " CLIENT_OPTS,
     "What became of the write of VERSION (of term T, as `config set` printed): committed (a "
     "majority of the coordinators hold it; exit 0), pending (exit 3), lost (rolled back by a "
     "new leader; exit 1) or unknown (exit 1)."},
    {"config watch", bl__cli_config_watch,
     "beamlet config watch --node NODE [--count N] [--format table|json] " CLIENT_OPTS,
     "Print every change of the cluster configuration as that node applies it, until "
     "interrupted (or N changes). --format json: one JSON object per line. A lost connection "
     "is retried; the watch resumes after the last version it printed."},
    {"service list", bl__cli_service_list,
     "beamlet service list --node NODE [--format table|json] " CLIENT_OPTS,
     "The node's C service processes (pg, registry, global, pubsub): registered name, pid, "
     "running or not, restarts so far."},
    {"service find", bl__cli_service_find,
     "beamlet service find --node NODE [--name SERVICE] [--usable] [--format table|json] " CLIENT_OPTS,
     "The service registry's entries (every member's, as the node holds them) with address, "
     "health (set by the entry's health check: health_checks with \"service\") and whether "
     "the entry's node is in maintenance. --usable lists only what a service call would "
     "choose: not critical, not in maintenance, passing ones first."},
    {"service restart", bl__cli_service_restart,
     "beamlet service restart NAME --node NODE " CLIENT_OPTS,
     "Stop one C service process of the node and start it again (its state is rebuilt from "
     "its peers and its durable store). NAME as `service list` shows it."},
    {"service call", bl__cli_service_call,
     "beamlet service call --node NODE NAME REQUEST_JSON [--show-trace] [--traceparent "
     "TP] " CLIENT_OPTS,
     "gen_server:call to one healthy instance of service NAME through the node's registry "
     "(load-balanced, failing over); prints the reply as JSON. REQUEST_JSON becomes a term: "
     "objects are maps with atom keys, strings binaries. Runs under a sampled trace: "
     "--show-trace prints its id for `beamlet events --trace` (docs/tracing.md)."},
    {"publish", bl__cli_publish,
     "beamlet publish --node NODE TOPIC PAYLOAD_JSON [--show-trace] [--traceparent "
     "TP] " CLIENT_OPTS,
     "Publish one pub/sub message from the node (at most once); prints its id. Runs under a "
     "sampled trace that its subscribers on every node see in the message metadata."},
    {"node leave", bl__cli_node_leave, "beamlet node leave --node NODE " CLIENT_OPTS,
     "Ask the node to leave the cluster gracefully (members see leaving, then left) and stop. "
     "It exits 0, so systemd's Restart=on-failure does not start it again."},
    {"completion", bl__cli_completion, "beamlet completion bash|zsh",
     "Print a shell completion script: `source <(beamlet completion bash)`, or install it as "
     "the packages do."},
};
#define NCMDS (sizeof(CMDS) / sizeof(CMDS[0]))

/* how many leading words of argv make up path; 0 if they do not */
static int match(const char *path, int argc, char **argv)
{
    int words = 0;
    const char *p = path;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        if (words >= argc || strlen(argv[words]) != len || strncmp(argv[words], p, len)) return 0;
        words++;
        p += len + (sp ? 1 : 0);
    }
    return words;
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static void print_row(FILE *out, const bl__cli_cmd *c)
{
    fprintf(out, "usage: %s\n\n", c->usage);
    /* the paragraph wrapped at 78 columns */
    const char *h = c->help;
    while (*h) {
        size_t len = strlen(h);
        if (len > 76) {
            len = 76;
            while (len > 0 && h[len] != ' ')
                len--;
            if (len == 0) len = 76;
        }
        fprintf(out, "  %.*s\n", (int)len, h);
        h += len;
        while (*h == ' ')
            h++;
    }
}

static int path_words(const char *path)
{
    int w = 1;
    for (const char *p = path; *p; p++)
        w += *p == ' ';
    return w;
}

/* the commands argv names exactly (the longest path); else, for one word, every command under
 * it ("beamlet help config") */
static void print_help(FILE *out, const char *prefix, int argc, char **argv)
{
    int best = 0, shown = 0;
    for (size_t i = 0; i < NCMDS; i++) {
        int w = match(CMDS[i].path, argc, argv);
        if (w == path_words(CMDS[i].path) && w > best) best = w;
    }
    for (size_t i = 0; i < NCMDS; i++) {
        int w = match(CMDS[i].path, argc, argv);
        int hit = best ? w == best && w == path_words(CMDS[i].path)
                       : argc == 1 && !strncmp(CMDS[i].path, argv[0], strlen(argv[0])) &&
                             CMDS[i].path[strlen(argv[0])] == ' ';
        if (!hit) continue;
        if (shown++) fprintf(out, "\n");
        print_row(out, &CMDS[i]);
    }
    if (!shown) fprintf(out, "%sno such command; see beamlet help\n", prefix);
}

void bl__cli_usage(FILE *out)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (CMDS[i].run) fprintf(out, "  %s\n", CMDS[i].usage + strlen("beamlet "));
}

int bl__cli_dispatch(int argc, char **argv, int *rc)
{
    if (argc < 2) return 0;
    int ac = argc - 1;
    char **av = argv + 1;
    /* beamlet help --all: every command explained (the man page's COMMANDS section) */
    if (!strcmp(av[0], "help") && ac == 2 && !strcmp(av[1], "--all")) {
        for (size_t i = 0; i < NCMDS; i++) {
            if (i) printf("\n");
            print_row(stdout, &CMDS[i]);
        }
        *rc = 0;
        return 1;
    }
    /* beamlet help CMD..., beamlet CMD... --help */
    if (!strcmp(av[0], "help") && ac > 1) {
        print_help(stdout, "beamlet help: ", ac - 1, av + 1);
        *rc = 0;
        return 1;
    }
    for (int i = 1; i < ac; i++)
        if (is_help(av[i])) {
            print_help(stdout, "beamlet: ", i, av);
            *rc = 0;
            return 1;
        }
    /* the longest path first ("node leave" before "node") */
    const bl__cli_cmd *best = NULL;
    int best_words = 0;
    for (size_t i = 0; i < NCMDS; i++) {
        int w = match(CMDS[i].path, ac, av);
        if (w > best_words) {
            best = &CMDS[i];
            best_words = w;
        }
    }
    if (!best || !best->run) return 0;
    *rc = best->run(ac - best_words, av + best_words);
    return 1;
}

/* the table for completion.c: path i, NULL past the end */
const char *bl__cli_cmd_path(size_t i)
{
    return i < NCMDS ? CMDS[i].path : NULL;
}
