/* apikey_cmd.c - `beamlet apikey create|list|revoke --node N`: API keys of the HTTP gateway
 * (docs/gateway.md), through main.c's admin runner (admin.h): the command joins the node's
 * cluster as a short-lived hidden node (the cookie is the authority, as for every admin command)
 * and calls its `beamlet_gateway`, which makes the key, keeps only its SHA-256 and replicates it
 * to every member. The key is printed once, here; it cannot be shown again. */
#include "admin.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *what; /* create | list | revoke */
    const char *role, *name, *id;
} keycmd;

static int opt(admin *a, int argc, char **argv, int i)
{
    keycmd *c = a->ud;
    const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(arg, "--role") && val) {
        c->role = val;
        return 2;
    }
    if (!strcmp(arg, "--name") && val) {
        c->name = val;
        return 2;
    }
    if (!strcmp(arg, "--id") && val) {
        c->id = val;
        return 2;
    }
    if (arg[0] != '-' && !strcmp(c->what, "revoke") && !c->id) { /* revoke --node N ID */
        c->id = arg;
        return 1;
    }
    return 0;
}

static int encode(admin *a, ei_x_buff *req)
{
    keycmd *c = a->ud;
    if (!strcmp(c->what, "create")) {
        ei_x_encode_tuple_header(req, 3);
        ei_x_encode_atom(req, "apikey_create");
        ei_x_encode_binary(req, c->role, (long)strlen(c->role));
        return ei_x_encode_binary(req, c->name ? c->name : "", c->name ? (long)strlen(c->name) : 0);
    }
    if (!strcmp(c->what, "list")) return ei_x_encode_atom(req, "apikey_list");
    if (!c->id) {
        snprintf(a->err, sizeof(a->err), "which key? give its ID (beamlet apikey list)");
        return -1;
    }
    ei_x_encode_tuple_header(req, 2);
    ei_x_encode_atom(req, "apikey_revoke");
    return ei_x_encode_binary(req, c->id, (long)strlen(c->id));
}

static void show(admin *a, json_t *j)
{
    keycmd *c = a->ud;
    if (json_is_array(j) && json_array_size(j) == 2 && json_is_string(json_array_get(j, 0)) &&
        !strcmp(json_string_value(json_array_get(j, 0)), "error")) {
        fprintf(stderr, "beamlet apikey %s: %s\n", c->what,
                json_string_value(json_array_get(j, 1)));
        a->exit_code = 1;
        return;
    }
    if (a->json) { /* runners that leave --format json to the command */
        bl__cli_print_json(!strcmp(c->what, "create") ? json_array_get(j, 1) : j);
        return;
    }
    if (!strcmp(c->what, "create")) {
        json_t *k = json_array_get(j, 1);
        printf("%s\n", json_string_value(json_object_get(k, "key")));
        fprintf(stderr,
                "created key %s (%s, role %s): shown once; send it as 'Authorization: Bearer "
                "KEY'\n",
                json_string_value(json_object_get(k, "id")),
                json_string_value(json_object_get(k, "name")),
                json_string_value(json_object_get(k, "role")));
    } else if (!strcmp(c->what, "list")) {
        printf("%-18s %-20s %-9s %-8s %s\n", "ID", "NAME", "ROLE", "STATE", "CREATED ON");
        size_t i;
        json_t *k;
        json_array_foreach(j, i, k)
            printf("%-18s %-20s %-9s %-8s %s\n", json_string_value(json_object_get(k, "id")),
                   json_string_value(json_object_get(k, "name")),
                   json_string_value(json_object_get(k, "role")),
                   json_is_true(json_object_get(k, "revoked")) ? "revoked" : "active",
                   json_string_value(json_object_get(k, "created_on")));
    } else {
        printf("revoked %s\n", c->id);
    }
}

static int usage(void)
{
    fprintf(stderr,
            "usage: beamlet apikey create --node NODE --role viewer|operator|admin [--name NAME]\n"
            "       beamlet apikey list --node NODE [--format table|json]\n"
            "       beamlet apikey revoke --node NODE ID\n");
    return 2;
}

static int run(const char *what, int argc, char **argv)
{
    keycmd c = {.what = what};
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "apikey %s", what);
    admin a = {.cmd = cmd,
               .proc = "beamlet_gateway",
               .opt = opt,
               .encode = encode,
               .show = show,
               .ud = &c};
    /* the options this command needs, checked before anything connects (bad usage: exit 2) */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--role") && i + 1 < argc) c.role = argv[i + 1];
        if (!strcmp(argv[i], "--name") && i + 1 < argc && strlen(argv[i + 1]) >= 64) return usage();
    }
    if (!strcmp(what, "create") &&
        (!c.role ||
         (strcmp(c.role, "viewer") && strcmp(c.role, "operator") && strcmp(c.role, "admin"))))
        return usage();
    c.role = NULL;
    return bl__cli_admin(&a, argc, argv);
}

int bl__cli_apikey_create(int argc, char **argv)
{
    return run("create", argc, argv);
}

int bl__cli_apikey_list(int argc, char **argv)
{
    return run("list", argc, argv);
}

int bl__cli_apikey_revoke(int argc, char **argv)
{
    return run("revoke", argc, argv);
}
