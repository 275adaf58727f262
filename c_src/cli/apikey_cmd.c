/* apikey_cmd.c - `beamlet apikey create|list|revoke --node N`: API keys of the HTTP gateway
 * (docs/gateway.md). The command joins the node's cluster as a short-lived hidden node (the
 * cookie is the authority, as for every admin command) and calls its `beamlet_gateway`, which
 * makes the key, keeps only its SHA-256 and replicates it to every member. The key is printed
 * once, here; it cannot be shown again. */
#include "cli.h"
#include "render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *what; /* create | list | revoke */
    const char *node, *role, *name, *id;
    int json;
    unsigned timeout_ms;
    int exit_code;
} keycmd;

static void print_key(json_t *k)
{
    printf("%-18s %-20s %-9s %-8s %s\n", json_string_value(json_object_get(k, "id")),
           json_string_value(json_object_get(k, "name")),
           json_string_value(json_object_get(k, "role")),
           json_is_true(json_object_get(k, "revoked")) ? "revoked" : "active",
           json_string_value(json_object_get(k, "created_on")));
}

static void done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    keycmd *c = ud;
    c->exit_code = 1;
    if (status != BL_OK) {
        fprintf(stderr, "beamlet apikey %s: %s: %s\n", c->what, c->node,
                status == BL_ENODEDOWN  ? "node not reachable (not running, wrong cookie or host?)"
                : status == BL_ENOPROC  ? "the node runs no gateway process (too old?)"
                : status == BL_ETIMEOUT ? "no answer in time"
                                        : bl_strerror(status));
        bl_node_stop(bl_proc_node(p));
        return;
    }
    int idx = index;
    json_t *j = bl_term_to_json(buf, &idx);
    if (json_is_array(j) && json_array_size(j) == 2 && json_is_string(json_array_get(j, 0)) &&
        !strcmp(json_string_value(json_array_get(j, 0)), "error")) {
        fprintf(stderr, "beamlet apikey %s: %s\n", c->what,
                json_string_value(json_array_get(j, 1)));
    } else if (c->json) {
        json_t *out = json_is_array(j) && !strcmp(c->what, "create") ? json_array_get(j, 1) : j;
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        printf("%s\n", s ? s : "null");
        free(s);
        c->exit_code = 0;
    } else if (!strcmp(c->what, "create")) {
        json_t *k = json_array_get(j, 1);
        printf("%s\n", json_string_value(json_object_get(k, "key")));
        fprintf(stderr,
                "created key %s (%s, role %s): shown once; send it as 'Authorization: Bearer "
                "KEY'\n",
                json_string_value(json_object_get(k, "id")),
                json_string_value(json_object_get(k, "name")),
                json_string_value(json_object_get(k, "role")));
        c->exit_code = 0;
    } else if (!strcmp(c->what, "list")) {
        printf("%-18s %-20s %-9s %-8s %s\n", "ID", "NAME", "ROLE", "STATE", "CREATED ON");
        size_t i;
        json_t *k;
        json_array_foreach(j, i, k) print_key(k);
        c->exit_code = 0;
    } else {
        printf("revoked %s\n", c->id);
        c->exit_code = 0;
    }
    json_decref(j);
    bl_node_stop(bl_proc_node(p));
}

static int run(keycmd *c, int argc, char **argv)
{
    bl_config cfg;
    bl_config_init(&cfg);
    cfg.publish = 0;
    cfg.cluster_member = 0;
    cfg.log_level = BL_LOG_ERROR;
    c->timeout_ms = 5000;
    char err[512];
    const char *v;
    if ((v = getenv("COOKIE")) && *v) bl_config_set(&cfg, "cookie", v, err, sizeof(err));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val && strcmp(a, "--json")) goto usage;
        if (!strcmp(a, "--node"))
            c->node = argv[++i];
        else if (!strcmp(a, "--role"))
            c->role = argv[++i];
        else if (!strcmp(a, "--name"))
            c->name = argv[++i];
        else if (!strcmp(a, "--id"))
            c->id = argv[++i];
        else if (!strcmp(a, "--format") && (!strcmp(val, "json") || !strcmp(val, "table")))
            c->json = !strcmp(argv[++i], "json");
        else if (!strcmp(a, "--timeout"))
            c->timeout_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--cookie") || !strcmp(a, "--cookie-file")) {
            if (bl_config_set(&cfg, a[8] ? "cookie_file" : "cookie", argv[++i], err, sizeof(err)))
                goto bad;
        } else if (a[0] != '-' && !strcmp(c->what, "revoke") && !c->id)
            c->id = a;
        else
            goto usage;
    }
    if (!c->node || !strchr(c->node, '@')) goto usage;
    int role = !c->role                       ? -1
               : !strcmp(c->role, "viewer")   ? 0
               : !strcmp(c->role, "operator") ? 1
               : !strcmp(c->role, "admin")    ? 2
                                              : -2;
    if (!strcmp(c->what, "create") && role < 0) goto usage;
    if (!strcmp(c->what, "revoke") && !c->id) goto usage;
    if (c->name && strlen(c->name) >= 64) {
        snprintf(err, sizeof(err), "--name is at most 63 bytes");
        goto bad;
    }
    ei_x_buff req;
    ei_x_new(&req);
    if (!strcmp(c->what, "create")) {
        ei_x_encode_tuple_header(&req, 3);
        ei_x_encode_atom(&req, "apikey_create");
        ei_x_encode_binary(&req, c->role, (long)strlen(c->role));
        ei_x_encode_binary(&req, c->name ? c->name : "", c->name ? (long)strlen(c->name) : 0);
    } else if (!strcmp(c->what, "list")) {
        ei_x_encode_atom(&req, "apikey_list");
    } else {
        ei_x_encode_tuple_header(&req, 2);
        ei_x_encode_atom(&req, "apikey_revoke");
        ei_x_encode_binary(&req, c->id, (long)strlen(c->id));
    }
    char name[BL_NODE_LEN];
    const char *at = strchr(c->node, '@');
    snprintf(name, sizeof(name), "beamlet_cli_%d%s", (int)getpid(), at);
    bl_config_set(&cfg, strchr(at, '.') ? "name" : "sname", name, err, sizeof(err));
    bl_node *n;
    int rc = bl_node_new(&cfg, &n);
    if (rc == BL_OK && (rc = bl_node_start(n)) != BL_OK) bl_node_free(n);
    if (rc != BL_OK) {
        ei_x_free(&req);
        fprintf(stderr, "beamlet apikey: cannot start a client node: %s\n", bl_strerror(rc));
        return 1;
    }
    bl_proc *p;
    bl_spawn(n, NULL, NULL, NULL, &p);
    rc = bl_call(p, NULL, "beamlet_gateway", c->node, req.buff, req.index, c->timeout_ms, done, c);
    ei_x_free(&req);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet apikey %s: %s: %s\n", c->what, c->node, bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_node_free(n);
    return c->exit_code;
usage:
    fprintf(stderr,
            "usage: beamlet apikey create --node NODE --role viewer|operator|admin [--name NAME]\n"
            "       beamlet apikey list --node NODE [--format table|json]\n"
            "       beamlet apikey revoke --node NODE ID\n");
    return 2;
bad:
    fprintf(stderr, "beamlet apikey %s: %s\n", c->what, err);
    return 1;
}

int bl__cli_apikey_create(int argc, char **argv)
{
    keycmd c = {.what = "create"};
    return run(&c, argc, argv);
}

int bl__cli_apikey_list(int argc, char **argv)
{
    keycmd c = {.what = "list"};
    return run(&c, argc, argv);
}

int bl__cli_apikey_revoke(int argc, char **argv)
{
    keycmd c = {.what = "revoke"};
    return run(&c, argc, argv);
}
