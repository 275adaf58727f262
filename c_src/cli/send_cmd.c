/* send_cmd.c - `beamlet service call` and `beamlet publish`: put one piece of work into the
 * cluster from the command line, through the target's service processes (docs/services.md):
 *   service call NAME REQUEST   {call, Name, Req, TimeoutMs} to beamlet_registry: one healthy
 *                               instance of service NAME answers (load-balanced, failing over)
 *   publish TOPIC PAYLOAD       {publish, Topic, Payload, #{}} to beamlet_pubsub
 * REQUEST and PAYLOAD are JSON (objects become maps with atom keys, strings binaries). Both run
 * under a sampled trace (trace_opt.c): `--show-trace` prints its id for `beamlet events --trace`.
 */
#include "cli.h"
#include "render.h"

#include <stdlib.h>

static int encode_json_arg(const char *cmd, const char *what, const char *text, ei_x_buff *b)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) {
        fprintf(stderr, "beamlet %s: %s is not JSON: %s\n", cmd, what, je.text);
        return -1;
    }
    int rc = bl__json_to_term(j, b, BL__JT_ATOM_KEYS);
    json_decref(j);
    if (rc < 0)
        fprintf(stderr,
                "beamlet %s: %s: nested deeper than 64 levels, or a key of more than 255 "
                "characters\n",
                cmd, what);
    return rc;
}

/* {ok, X}: print X (JSON); {error, Why}: the reason on stderr, exit 1 */
static int ok_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    int i = index;
    json_t *j = bl_term_to_json(buf, &i);
    const char *tag = json_is_array(j) && json_array_size(j) == 2
                          ? json_string_value(json_array_get(j, 0))
                          : NULL;
    int ok = tag && !strcmp(tag, "ok");
    if (ok) {
        json_t *v = json_array_get(j, 1);
        if (json_is_string(v) && !(o->format && !strcmp(o->format, "json")))
            printf("%s\n", json_string_value(v));
        else
            bl__cli_print_json(v);
    } else {
        char *why = json_dumps(tag ? json_array_get(j, 1) : j, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(stderr, "beamlet %s: %s: %s\n", o->cmd, o->target, why ? why : "unexpected reply");
        free(why);
    }
    json_decref(j);
    return ok ? 0 : 1;
}

int bl__cli_service_call(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "service call", argc, argv) < 0) return 1;
    if (o.npos != 2) {
        fprintf(stderr, "beamlet service call: give the service name and the request (JSON)\n");
        return 2;
    }
    ei_x_buff b;
    ei_x_new(&b);
    ei_x_encode_tuple_header(&b, 4);
    ei_x_encode_atom(&b, "call");
    ei_x_encode_binary(&b, o.pos[0], (long)strlen(o.pos[0]));
    if (encode_json_arg(o.cmd, "the request", o.pos[1], &b) < 0) {
        ei_x_free(&b);
        return 2;
    }
    /* each instance gets the time left after the registry's own hop */
    ei_x_encode_long(&b, (long)(o.timeout_ms > 500 ? o.timeout_ms - 250 : o.timeout_ms));
    int rc = bl__cli_call(&o, "beamlet_registry", b.buff, b.index, ok_reply, NULL);
    ei_x_free(&b);
    return rc;
}

int bl__cli_publish(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "publish", argc, argv) < 0) return 1;
    if (o.npos != 2) {
        fprintf(stderr, "beamlet publish: give the topic and the payload (JSON)\n");
        return 2;
    }
    ei_x_buff b;
    ei_x_new(&b);
    ei_x_encode_tuple_header(&b, 4);
    ei_x_encode_atom(&b, "publish");
    ei_x_encode_binary(&b, o.pos[0], (long)strlen(o.pos[0]));
    if (encode_json_arg(o.cmd, "the payload", o.pos[1], &b) < 0) {
        ei_x_free(&b);
        return 2;
    }
    ei_x_encode_map_header(&b, 0);
    int rc = bl__cli_call(&o, "beamlet_pubsub", b.buff, b.index, ok_reply, NULL);
    ei_x_free(&b);
    return rc;
}
