/* registry_cmd.c - `beamlet service find --node N [--name S] [--usable] [--format json]`: the
 * service registry's entries as the node holds them (every member's), each with its health (set
 * by its health check, docs/health.md) and whether its node is in maintenance. --usable asks for
 * what a service call would choose: not critical, not in maintenance, passing ones first. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct find_opts {
    char name[128];
    int usable;
} find_opts;

static int find_opt(admin *a, int argc, char **argv, int i)
{
    find_opts *o = a->ud;
    if (!strcmp(argv[i], "--usable")) {
        o->usable = 1;
        return 1;
    }
    if (!strcmp(argv[i], "--name") && i + 1 < argc) {
        if (!argv[i + 1][0] || strlen(argv[i + 1]) >= sizeof(o->name)) {
            snprintf(a->err, sizeof(a->err), "--name: 1..%zu characters", sizeof(o->name) - 1);
            return 0;
        }
        snprintf(o->name, sizeof(o->name), "%s", argv[i + 1]);
        return 2;
    }
    return 0;
}

/* {find, #{name => Bin, health => any}}: without health the registry answers the usable ones */
static int find_encode(admin *a, ei_x_buff *x)
{
    find_opts *o = a->ud;
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "find");
    ei_x_encode_map_header(x, (o->name[0] != 0) + !o->usable);
    if (o->name[0]) {
        ei_x_encode_atom(x, "name");
        ei_x_encode_binary(x, o->name, (long)strlen(o->name));
    }
    if (!o->usable) {
        ei_x_encode_atom(x, "health");
        ei_x_encode_atom(x, "any");
    }
    return 0;
}

static const char *s_of(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v && *v ? v : "-";
}

static void find_show(admin *a, json_t *j)
{
    if (!json_is_array(j)) {
        fprintf(stderr, "beamlet service find: %s: unexpected reply\n", a->target);
        a->exit_code = 1;
        return;
    }
    if (a->json) {
        bl__cli_print_json(j);
        return;
    }
    printf("%-24s %-16s %-24s %-21s %-9s %s\n", "ID", "SERVICE", "NODE", "ADDRESS", "HEALTH",
           "MAINTENANCE");
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        char addr[64];
        snprintf(addr, sizeof(addr), "%s:%lld", s_of(e, "address"),
                 (long long)json_integer_value(json_object_get(e, "port")));
        printf("%-24s %-16s %-24s %-21s %-9s %s\n", s_of(e, "id"), s_of(e, "name"), s_of(e, "node"),
               addr, s_of(e, "health"),
               json_is_true(json_object_get(e, "maintenance")) ? "yes" : "no");
    }
    if (!json_array_size(j)) printf("(no entries)\n");
}

int bl__cli_service_find(int argc, char **argv)
{
    find_opts o = {0};
    admin a = {.cmd = "service find",
               .proc = "beamlet_registry",
               .opt = find_opt,
               .encode = find_encode,
               .show = find_show,
               .ud = &o};
    return bl__cli_admin(&a, argc, argv);
}
