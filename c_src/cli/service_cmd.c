/* service_cmd.c - `beamlet service list|restart NAME --node N` and `beamlet node leave --node N`:
 * requests to the target's beamlet_admin process (admin_proc.c), through its beamlet process. */
#include "cli.h"
#include "render.h"

#include <stdlib.h>

static int need_no_args(bl__cli_opts *o, int want)
{
    if (o->npos == want) return 0;
    fprintf(stderr, "beamlet %s: %s (see beamlet %s --help)\n", o->cmd,
            o->npos < want ? "a service name is needed" : "too many arguments", o->cmd);
    return -1;
}

static int list_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    int i = index;
    json_t *j = bl_term_to_json(buf, &i);
    if (!json_is_array(j)) {
        fprintf(stderr, "beamlet %s: %s: unexpected reply\n", o->cmd, o->target);
        json_decref(j);
        return 1;
    }
    if (o->format && !strcmp(o->format, "json")) {
        bl__cli_print_json(j);
    } else {
        printf("%-10s %-18s %-8s %-12s %s\n", "SERVICE", "PROCESS", "STATE", "PID", "RESTARTS");
        size_t k;
        json_t *s;
        json_array_foreach(j, k, s)
        {
            const char *pid = json_string_value(json_object_get(s, "pid"));
            printf("%-10s %-18s %-8s %-12s %lld\n",
                   json_string_value(json_object_get(s, "service")),
                   json_string_value(json_object_get(s, "name")),
                   json_is_true(json_object_get(s, "running")) ? "running" : "stopped",
                   pid ? pid : "-", (long long)json_integer_value(json_object_get(s, "restarts")));
        }
    }
    json_decref(j);
    return 0;
}

int bl__cli_service_list(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "service list", argc, argv) < 0 || need_no_args(&o, 0)) return 1;
    char req[32];
    int i = 0;
    ei_encode_atom(req, &i, "services");
    return bl__cli_call_via_beamlet(&o, "beamlet_admin", req, i, list_reply, NULL);
}

static int restart_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    int i = index;
    json_t *j = bl_term_to_json(buf, &i);
    int ok = json_is_array(j) && !strcmp(json_string_value(json_array_get(j, 0)) ?: "", "ok");
    if (o->format && !strcmp(o->format, "json")) {
        bl__cli_print_json(j);
    } else if (ok) {
        json_t *r = json_array_get(j, 1);
        printf("%s restarted on %s: pid %s (restart %lld)\n",
               json_string_value(json_object_get(r, "service")), o->target,
               json_string_value(json_object_get(r, "pid")),
               (long long)json_integer_value(json_object_get(r, "restarts")));
    } else {
        const char *why = json_is_array(j) ? json_string_value(json_array_get(j, 1)) : NULL;
        fprintf(stderr, "beamlet service restart: %s: %s\n", o->target,
                why && !strcmp(why, "unknown_service")
                    ? "no such service (see beamlet service list)"
                    : (why ? why : "unexpected reply"));
    }
    json_decref(j);
    return ok ? 0 : 1;
}

int bl__cli_service_restart(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "service restart", argc, argv) < 0 || need_no_args(&o, 1)) return 1;
    ei_x_buff b;
    ei_x_new(&b);
    ei_x_encode_tuple_header(&b, 2);
    ei_x_encode_atom(&b, "restart");
    ei_x_encode_binary(&b, o.pos[0], (int)strlen(o.pos[0]));
    int rc = bl__cli_call_via_beamlet(&o, "beamlet_admin", b.buff, b.index, restart_reply, NULL);
    ei_x_free(&b);
    return rc;
}

static int leave_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    char a[MAXATOMLEN_UTF8];
    int i = index;
    if (ei_decode_atom(buf, &i, a) == 0 && !strcmp(a, "ok")) {
        printf("%s is leaving the cluster and will stop\n", o->target);
        return 0;
    }
    fprintf(stderr, "beamlet node leave: %s: unexpected reply\n", o->target);
    return 1;
}

int bl__cli_node_leave(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "node leave", argc, argv) < 0 || need_no_args(&o, 0)) return 1;
    char req[32];
    int i = 0;
    ei_encode_atom(req, &i, "leave");
    return bl__cli_call_via_beamlet(&o, "beamlet_admin", req, i, leave_reply, NULL);
}
