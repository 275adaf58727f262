/* main.c - the beamlet command: `node` runs a node; `ping` and `info` are admin commands that
 * join the target's cluster as a short-lived hidden node, ask, print and exit 0 (1 on failure). */
#include "beamlet/beamlet.h"
#include "beamlet/config.h"
#include "admin.h"
#include "cli.h"
#include "node_ctx.h"
#include "render.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env_lookup(const char *k)
{
    return getenv(k);
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "beamlet %s - a C node for Erlang/Gleam clusters\n\n"
        "usage:\n"
        "  beamlet node --sname NAME | --name NAME@HOST [options]   run a node\n"
        "  beamlet ping NODE [--cookie C | --cookie-file F] [--timeout MS] [--proto-dist P]\n"
        "  beamlet info NODE | stats NODE [--format json] [--cookie C] [--timeout MS]\n"
        "  beamlet cluster status --node NODE [--format json] [--cookie C]\n"
        "  beamlet cluster events --node NODE [--cookie C]    (JSON)\n"
        "  beamlet nodes list --node NODE [--format table|json] [--cookie C]\n"
        "  beamlet version | help [COMMAND] | COMMAND --help\n"
        "  (admin commands reach TLS nodes with --tls true --tls-cert F --tls-key F --tls-ca F,\n"
        "   BEAMLET_TLS_* or the tls keys of --config FILE.json / BEAMLET_CONFIG)\n"
        "  (--cookie C shows in ps to every user: prefer --cookie-file F, mode 0400)\n",
        BL_VERSION);
    bl__cli_usage(out);
    fprintf(out, "\nnode options (precedence: JSON file < environment < flags):\n");
    bl_config_usage(out);
}

static int run_node(int argc, char **argv)
{
    /* on the heap, not the stack: the node keeps its own copy, and 43 KB of stack pages touched
     * once would stay in the process for good */
    bl_config *cfg = malloc(sizeof(*cfg));
    if (!cfg) {
        fprintf(stderr, "beamlet: out of memory\n");
        return 1;
    }
    bl_config_init(cfg);
    char err[512];
    if (bl_config_from_args(cfg, argc, argv, env_lookup, err, sizeof(err)) != BL_OK) {
        fprintf(stderr, "beamlet: %s\n", err);
        free(cfg);
        return 2;
    }
    bl_node *n;
    int rc = bl_node_new(cfg, &n);
    free(cfg);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet: cannot create node: %s\n", bl_strerror(rc));
        return 1;
    }
    bl__node_block_signals(); /* node_cmd.c: before the node starts its threads */
    rc = bl_node_start(n);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet: cannot start node %s: %s\n", bl_node_name(n), bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    rc = bl__node_run(n, argc, argv); /* node_cmd.c: admin process, SIGHUP reload, systemd */
    bl_log(n, BL_LOG_INFO, "stopped");
    bl_node_free(n);
    return rc == BL_OK ? 0 : 1;
}

/* ---- admin commands ---- */

static void render(admin *a, const char *buf, int index)
{
    int idx = index;
    json_t *j = bl_term_to_json(buf, &idx);
    int tty = isatty(STDOUT_FILENO);
    if (j && a->show) {
        a->show(a, j);
    } else if (!j) {
        printf("?\n");
    } else if (a->json) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(12));
        printf("%s\n", s ? s : "null");
        free(s);
    } else if (!strcmp(a->request, "members") && json_is_array(j)) {
        bl_print_members_table(stdout, j, tty);
    } else if (!strcmp(a->request, "status") && json_is_object(j)) {
        bl_print_status(stdout, j, tty);
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%-12s %s\n", k, s ? s : json_string_value(v));
            free(s);
        }
    } else {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%s\n", s ? s : "?");
        free(s);
    }
    json_decref(j);
}

static void admin_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    admin *a = ud;
    if (a->answer && buf) {
        a->answer(a, status, buf, index);
    } else if (status == BL_OK) {
        a->exit_code = 0; /* a show hook may report a refusal in the reply */
        if (!a->proc)
            printf("pong\n");
        else
            render(a, buf, index);
    } else {
        fprintf(stderr, "beamlet %s: %s: %s\n", a->cmd, a->target, bl__cli_failure(status, a->tls));
        a->exit_code = 1;
    }
    bl_node_stop(bl_proc_node(p));
}

/* argv: everything after the command words. Positional NODE or --node NODE. */
static int run_admin(admin *a, int argc, char **argv)
{
    bl_config cfg;
    bl_config_init(&cfg);
    cfg.publish = 0;
    cfg.cluster_member = 0;
    cfg.log_level = BL_LOG_ERROR;
    a->timeout_ms = 5000;
    char err[512];
    const char *v;
    int took;
    if ((v = getenv("COOKIE")) && *v) bl_config_set(&cfg, "cookie", v, err, sizeof(err));
    if ((v = getenv("BEAMLET_LOG_LEVEL")) && *v)
        bl_config_set(&cfg, "log_level", v, err, sizeof(err));
    if ((v = getenv("BEAMLET_PROTO_DIST")) && *v &&
        bl_config_set(&cfg, "proto_dist", v, err, sizeof(err)))
        goto bad;
    if (bl__cli_tls_defaults(&cfg, argc, argv, err, sizeof(err))) goto bad;
    if (a->with_who && !a->who[0]) {
        const char *u = getenv("USER");
        char host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(a->who, sizeof(a->who), "%s@%s (cli)", u && *u ? u : "someone", host);
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int tls_took = bl__cli_tls_flag(&cfg, argc, argv, i, err, sizeof(err));
        if (tls_took < 0) goto bad;
        if (tls_took > 0) {
            i += tls_took - 1;
        } else if (arg[0] != '-' && !a->target) {
            a->target = arg;
        } else if (a->with_who && !strcmp(arg, "--who")) {
            if (!val || !val[0] || strlen(val) >= sizeof(a->who)) {
                snprintf(err, sizeof(err), "--who: give a name of 1..%zu characters",
                         sizeof(a->who) - 1);
                goto bad;
            }
            snprintf(a->who, sizeof(a->who), "%s", argv[++i]);
        } else if (!strcmp(arg, "--node") && val) {
            a->target = argv[++i];
        } else if (!strcmp(arg, "--cookie") && val) {
            if (bl_config_set(&cfg, "cookie", argv[++i], err, sizeof(err))) goto bad;
        } else if (!strcmp(arg, "--cookie-file") && val) {
            if (bl_config_set(&cfg, "cookie_file", argv[++i], err, sizeof(err))) goto bad;
        } else if (!strcmp(arg, "--timeout") && val) {
            a->timeout_ms = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(arg, "--proto-dist") && val) { /* inet6_tcp for IPv6-only hosts */
            if (bl_config_set(&cfg, "proto_dist", argv[++i], err, sizeof(err))) goto bad;
        } else if (!strcmp(arg, "--format") && val &&
                   (!strcmp(val, "json") || !strcmp(val, "table"))) {
            a->json = !strcmp(argv[++i], "json");
        } else if (!strcmp(arg, "--format=json") || !strcmp(arg, "--format=table")) {
            a->json = !strcmp(arg, "--format=json"); /* as the seeds write it */
        } else if ((took = bl__cli_trace_opt(&a->trace, argc, argv, i, err, sizeof(err))) != 0) {
            if (took < 0) goto bad;
            i += took - 1;
        } else if (a->opt && (took = a->opt(a, argc, argv, i)) > 0) {
            i += took - 1;
        } else {
            if (a->err[0]) {
                snprintf(err, sizeof(err), "%s", a->err);
                goto bad;
            }
            snprintf(err, sizeof(err), "unknown or incomplete option '%s'", arg);
            goto bad;
        }
    }
    if (!a->target || !strchr(a->target, '@')) {
        snprintf(err, sizeof(err), "which node? give NAME@HOST (with --node for cluster/nodes)");
        goto bad;
    }
    a->tls = cfg.tls;
    char name[BL_NODE_LEN];
    const char *at = strchr(a->target, '@');
    snprintf(name, sizeof(name), "beamlet_cli_%d%s", (int)getpid(), at);
    bl_config_set(&cfg, strchr(at, '.') ? "name" : "sname", name, err, sizeof(err));
    bl_node *n;
    int rc = bl_node_new(&cfg, &n);
    if (rc == BL_OK && (rc = bl_node_start(n)) != BL_OK) bl_node_free(n);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: cannot start a client node: %s\n", a->cmd, bl_strerror(rc));
        return 1;
    }
    bl_proc *p;
    bl_spawn(n, NULL, NULL, NULL, &p);
    bl__cli_trace_begin(n, &a->trace, a->cmd);
    if (a->start) {
        rc = a->start(a, p, admin_done);
        if (rc == BL_EINVAL && a->err[0]) {
            bl_node_free(n);
            snprintf(err, sizeof(err), "%s", a->err);
            goto bad;
        }
    } else if (!a->proc) {
        rc = bl_ping(p, a->target, a->timeout_ms, admin_done, a);
    } else {
        ei_x_buff req;
        ei_x_new(&req);
        if (a->encode ? a->encode(a, &req) : ei_x_encode_atom(&req, a->request)) {
            ei_x_free(&req);
            bl_node_free(n);
            snprintf(err, sizeof(err), "%s", a->err);
            goto bad;
        }
        rc =
            bl_call(p, NULL, a->proc, a->target, req.buff, req.index, a->timeout_ms, admin_done, a);
        ei_x_free(&req);
    }
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: %s: %s\n", a->cmd, a->target, bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_node_free(n);
    return a->exit_code;
bad:
    fprintf(stderr, "beamlet %s: %s\n", a->cmd, err);
    return 1;
}

int bl__cli_admin(admin *a, int argc, char **argv)
{
    return run_admin(a, argc, argv);
}

int main(int argc, char **argv)
{
    bl__memory_policy(); /* memory.c: one malloc arena; large blocks mapped on their own */
    ei_init();
    int rc;
    if (bl__cli_dispatch(argc, argv, &rc)) return rc;
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("beamlet %s\n", BL_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "node")) return run_node(argc - 2, argv + 2);
    admin a = {.cmd = argv[1]};
    if (!strcmp(argv[1], "ping")) return run_admin(&a, argc - 2, argv + 2);
    if (!strcmp(argv[1], "info")) {
        a.proc = "beamlet";
        a.request = "info";
        return run_admin(&a, argc - 2, argv + 2);
    }
    if (!strcmp(argv[1], "stats")) {
        a.proc = "beamlet";
        a.request = "stats";
        return run_admin(&a, argc - 2, argv + 2);
    }
    if (argc >= 3 && !strcmp(argv[1], "cluster") && !strcmp(argv[2], "status")) {
        a = (admin){.cmd = "cluster status", .proc = "beamlet_cluster", .request = "status"};
        return run_admin(&a, argc - 3, argv + 3);
    }
    if (argc >= 3 && !strcmp(argv[1], "cluster") && !strcmp(argv[2], "events")) {
        a = (admin){
            .cmd = "cluster events", .proc = "beamlet_cluster", .request = "events", .json = 1};
        return run_admin(&a, argc - 3, argv + 3);
    }
    if (argc >= 3 && !strcmp(argv[1], "nodes") && !strcmp(argv[2], "list")) {
        a = (admin){.cmd = "nodes list", .proc = "beamlet_cluster", .request = "members"};
        return run_admin(&a, argc - 3, argv + 3);
    }
    fprintf(stderr, "beamlet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
