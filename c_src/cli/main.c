/* main.c - the beamlet command: `node` runs a node; `ping` and `info` are admin commands that
 * join the target's cluster as a short-lived hidden node, ask, print and exit 0 (1 on failure). */
#include "beamlet/beamlet.h"
#include "beamlet/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env_lookup(const char *k) { return getenv(k); }

static void usage(FILE *out)
{
    fprintf(out,
            "beamlet %s - a C node for Erlang/Gleam clusters\n\n"
            "usage:\n"
            "  beamlet node --sname NAME | --name NAME@HOST [options]   run a node\n"
            "  beamlet ping NODE [--cookie C | --cookie-file F] [--timeout MS]\n"
            "  beamlet info NODE [--cookie C | --cookie-file F] [--timeout MS]\n"
            "  beamlet version | help\n\n"
            "node options (precedence: JSON file < environment < flags):\n",
            BL_VERSION);
    bl_config_usage(out);
}

static int run_node(int argc, char **argv)
{
    bl_config cfg;
    bl_config_init(&cfg);
    char err[512];
    if (bl_config_from_args(&cfg, argc, argv, env_lookup, err, sizeof(err)) != BL_OK) {
        fprintf(stderr, "beamlet: %s\n", err);
        return 2;
    }
    bl_node *n;
    int rc = bl_node_new(&cfg, &n);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet: cannot create node: %s\n", bl_strerror(rc));
        return 1;
    }
    rc = bl_node_start(n);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet: cannot start node %s: %s\n", bl_node_name(n), bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_log(n, BL_LOG_INFO, "stopped");
    bl_node_free(n);
    return 0;
}

/* ---- admin commands ---- */

typedef struct {
    const char *cmd;
    const char *target;
    unsigned timeout_ms;
    int exit_code;
} admin;

static void print_info(const char *buf, int index)
{
    int idx = index, arity;
    if (ei_decode_map_header(buf, &idx, &arity) < 0) {
        char *s = NULL;
        idx = index;
        ei_s_print_term(&s, buf, &idx);
        printf("%s\n", s ? s : "?");
        free(s);
        return;
    }
    for (int i = 0; i < arity; i++) {
        char *k = NULL, *v = NULL;
        ei_s_print_term(&k, buf, &idx);
        int type, size;
        ei_get_type(buf, &idx, &type, &size);
        if (type == ERL_BINARY_EXT) { /* print binaries as text */
            char *b = calloc(1, (size_t)size + 1);
            long bl;
            ei_decode_binary(buf, &idx, b, &bl);
            printf("%-12s %s\n", k, b);
            free(b);
        } else {
            ei_s_print_term(&v, buf, &idx);
            printf("%-12s %s\n", k, v ? v : "?");
        }
        free(k);
        free(v);
    }
}

static void admin_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    admin *a = ud;
    if (status == BL_OK) {
        if (!strcmp(a->cmd, "ping"))
            printf("pong\n");
        else
            print_info(buf, index);
        a->exit_code = 0;
    } else {
        fprintf(stderr, "beamlet %s: %s: %s\n", a->cmd, a->target,
                status == BL_ENODEDOWN ? "node not reachable (not running, wrong cookie or host?)"
                                       : bl_strerror(status));
        a->exit_code = 1;
    }
    bl_node_stop(bl_proc_node(p));
}

static int run_admin(const char *cmd, int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "beamlet %s: which node? usage: beamlet %s NODE@HOST\n", cmd, cmd);
        return 1;
    }
    admin a = {.cmd = cmd, .target = argv[0], .timeout_ms = 5000, .exit_code = 1};
    bl_config cfg;
    bl_config_init(&cfg);
    cfg.publish = 0;
    cfg.cluster_member = 0;
    cfg.log_level = BL_LOG_ERROR;
    char err[512];
    const char *at = strchr(a.target, '@');
    if (!at) {
        fprintf(stderr, "beamlet %s: '%s' is not a node name NAME@HOST\n", cmd, a.target);
        return 1;
    }
    char name[BL_NODE_LEN];
    snprintf(name, sizeof(name), "beamlet_cli_%d%s", (int)getpid(), at);
    bl_config_set(&cfg, strchr(at, '.') ? "name" : "sname", name, err, sizeof(err));
    const char *v;
    if ((v = getenv("COOKIE")) && *v) bl_config_set(&cfg, "cookie", v, err, sizeof(err));
    if ((v = getenv("BEAMLET_LOG_LEVEL")) && *v) bl_config_set(&cfg, "log_level", v, err, sizeof(err));
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--cookie")) {
            if (bl_config_set(&cfg, "cookie", argv[++i], err, sizeof(err))) goto bad;
        } else if (i + 1 < argc && !strcmp(argv[i], "--cookie-file")) {
            if (bl_config_set(&cfg, "cookie_file", argv[++i], err, sizeof(err))) goto bad;
        } else if (i + 1 < argc && !strcmp(argv[i], "--timeout")) {
            a.timeout_ms = (unsigned)atoi(argv[++i]);
        } else {
            snprintf(err, sizeof(err), "unknown option '%s'", argv[i]);
            goto bad;
        }
    }
    bl_node *n;
    int rc = bl_node_new(&cfg, &n);
    if (rc == BL_OK && (rc = bl_node_start(n)) != BL_OK) bl_node_free(n);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: cannot start a client node: %s\n", cmd, bl_strerror(rc));
        return 1;
    }
    bl_proc *p;
    bl_spawn(n, NULL, NULL, NULL, &p);
    if (!strcmp(cmd, "ping")) {
        rc = bl_ping(p, a.target, a.timeout_ms, admin_done, &a);
    } else {
        char req[16];
        int i = 0;
        ei_encode_atom(req, &i, "info");
        rc = bl_call(p, NULL, "beamlet", a.target, req, i, a.timeout_ms, admin_done, &a);
    }
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: %s: %s\n", cmd, a.target, bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_node_free(n);
    return a.exit_code;
bad:
    fprintf(stderr, "beamlet %s: %s\n", cmd, err);
    return 1;
}

int main(int argc, char **argv)
{
    ei_init();
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("beamlet %s\n", BL_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "node")) return run_node(argc - 2, argv + 2);
    if (!strcmp(argv[1], "ping") || !strcmp(argv[1], "info"))
        return run_admin(argv[1], argc - 2, argv + 2);
    fprintf(stderr, "beamlet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
