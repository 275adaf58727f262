/* trace_opt.c - the CLI as the edge of a trace (docs/tracing.md): every admin command runs under
 * a trace, taken from --traceparent or the TRACEPARENT environment variable, else new. Its id
 * goes with the call to the target node (in the gen_server call's tag) and from there to
 * everything the command causes; --show-trace prints it on stderr ("trace_id ID"). Commands that
 * change something are sampled (their trace records events, `beamlet events --trace ID`); reads
 * are not, unless a given traceparent says so. */
#include "cli.h"
#include "beamlet/trace.h"

#include <stdlib.h>

/* the commands whose traces are sampled: they change state, and are rare */
static const char *const WRITES[] = {
    "service call",     "service restart", "publish",       "node leave",
    "node maintenance", "alerts ack",      "apikey create", "apikey revoke",
};

static int sampled(const char *cmd)
{
    for (size_t i = 0; i < sizeof(WRITES) / sizeof(WRITES[0]); i++)
        if (cmd && !strcmp(cmd, WRITES[i])) return 1;
    return 0;
}

int bl__cli_trace_opt(bl__cli_trace *t, int argc, char **argv, int i, char *err, size_t errlen)
{
    if (!strcmp(argv[i], "--show-trace")) {
        t->show = 1;
        return 1;
    }
    if (strcmp(argv[i], "--traceparent") || i + 1 >= argc) return 0;
    bl_trace x;
    if (bl_trace_parse(argv[i + 1], strlen(argv[i + 1]), &x) != BL_OK) {
        snprintf(err, errlen,
                 "--traceparent '%s': not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
                 argv[i + 1]);
        return -1;
    }
    t->traceparent = argv[i + 1];
    return 2;
}

void bl__cli_trace_begin(bl_node *n, const bl__cli_trace *t, const char *cmd)
{
    const char *tp = t && t->traceparent ? t->traceparent : getenv("TRACEPARENT");
    bl_trace cur;
    bl_trace_begin(n, tp, sampled(cmd) ? BL_TRACE_SAMPLED : 0, &cur);
    char id[BL_TRACE_ID_LEN];
    if (t && t->show && bl_trace_id_hex(&cur, id, sizeof(id)) == BL_OK)
        fprintf(stderr, "trace_id %s\n", id);
}
