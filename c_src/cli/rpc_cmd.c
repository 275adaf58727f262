/* rpc_cmd.c - `beamlet rpc NODE MODULE FUNCTION [ARGS]`: erpc:call from the command line, to a
 * BEAM node or a beamlet node (the functions it exports, docs/protocol.md). ARGS is an Erlang
 * list in text ('[1, foo, "text"]', parsed by ei_x_format); the value is printed in Erlang syntax
 * (JSON with --format json). An exception prints {Class, Reason, Stack} and exits 1; timeouts and
 * unreachable nodes are reported like every admin command. */
#include "admin.h"
#include "render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *mod, *fun, *args;
} rpc_args;

/* MODULE, FUNCTION and ARGS: the positional words after NODE */
static int rpc_opt(admin *a, int argc, char **argv, int i)
{
    rpc_args *r = a->ud;
    (void)argc;
    if (argv[i][0] == '-') return 0;
    const char **slot = !r->mod ? &r->mod : !r->fun ? &r->fun : !r->args ? &r->args : NULL;
    if (!slot) {
        snprintf(a->err, sizeof(a->err), "one ARGS list only; quote it: '[1, foo]'");
        return 0;
    }
    *slot = argv[i];
    return 1;
}

static int rpc_start(admin *a, bl_proc *p, bl_call_cb done)
{
    rpc_args *r = a->ud;
    if (!r->mod || !r->fun) {
        snprintf(a->err, sizeof(a->err), "usage: beamlet rpc NODE MODULE FUNCTION [ARGS]");
        return BL_EINVAL;
    }
    ei_x_buff args;
    ei_x_new(&args);
    if (ei_x_format_wo_ver(&args, r->args ? r->args : "[]") < 0 || args.index == 0 ||
        (args.buff[0] != ERL_LIST_EXT && args.buff[0] != ERL_NIL_EXT &&
         args.buff[0] != ERL_STRING_EXT)) {
        ei_x_free(&args);
        snprintf(a->err, sizeof(a->err), "ARGS must be an Erlang list, e.g. '[1, foo, \"text\"]'");
        return BL_EINVAL;
    }
    int rc =
        bl_erpc_call(p, a->target, r->mod, r->fun, args.buff, args.index, a->timeout_ms, done, a);
    ei_x_free(&args);
    return rc;
}

static void rpc_answer(admin *a, int status, const char *buf, int index)
{
    if (status != BL_OK)
        fprintf(stderr, "beamlet rpc: %s\n",
                status == BL_EEXCEPTION ? "the call raised {Class, Reason, Stack}:"
                                        : "the node refused the request:");
    int idx = index;
    if (a->json) {
        json_t *j = bl_term_to_json(buf, &idx);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
        printf("%s\n", s ? s : "?");
        free(s);
        json_decref(j);
    } else {
        char *s = NULL;
        if (ei_s_print_term(&s, buf, &idx) >= 0) printf("%s\n", s);
        free(s);
    }
    a->exit_code = status == BL_OK ? 0 : 1;
}

int bl__cli_rpc(int argc, char **argv)
{
    rpc_args r = {0};
    admin a = {.cmd = "rpc",
               .proc = "erpc",
               .opt = rpc_opt,
               .start = rpc_start,
               .answer = rpc_answer,
               .ud = &r};
    return bl__cli_admin(&a, argc, argv);
}
