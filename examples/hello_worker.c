/* hello_worker.c - the smallest useful beamlet worker: a registered service `hello` that BEAM
 * calls with gen_server:call({hello, 'hello@HOST'}, {greet, <<"Ada">>}) -> {hello, <<"Ada">>}.
 * Run: build/release/examples/hello_worker hello   (uses ~/.erlang.cookie, like erl) */
#include <beamlet/beamlet.h>
#include <string.h>

static int on_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                   void *ud)
{
    int arity, type, size;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) == 0 && arity == 2 &&
        ei_decode_atom(buf, &idx, tag) == 0 && strcmp(tag, "greet") == 0 &&
        ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_BINARY_EXT) {
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "hello");
        return ei_x_append_buf(reply, buf + idx, 5 + size); /* copy the binary term as is */
    }
    (void)self, (void)from, (void)ud;
    return ei_x_encode_atom(reply, "badarg");
}

int main(int argc, char **argv)
{
    bl_config cfg;
    bl_config_init(&cfg);
    strcpy(cfg.name, argc > 1 ? argv[1] : "hello");
    bl_node *node;
    if (ei_init() || bl_node_new(&cfg, &node) || bl_node_start(node)) return 1;
    bl_spawn(node, "hello", &(bl_proc_ops){.on_call = on_call}, NULL, NULL);
    int rc = bl_node_run(node); /* until SIGTERM / SIGINT */
    bl_node_free(node);
    return rc;
}
