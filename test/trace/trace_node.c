/* trace_node.c - a beamlet node for the trace suite (test/trace): a C service and a C subscriber
 * written the way a user writes them, so the suite can follow one trace id through them.
 * Flags: those of `beamlet node`.
 *
 *   tr_echo  registered in the service registry as service "tr_echo" (process tr_echo); a call
 *            logs "tr_echo: handling a call", publishes the request on "trace.demo" and answers
 *            {echo, Request}. It reads the current trace the way a task handler would
 *            (bl_trace_current) and puts its id in the reply: {echo, Request, TraceId | none}.
 *   a C subscription on "trace.#" that logs "tr_sub: got <id> on <topic> trace=<meta trace_id>".
 */
#include "../lib/test_cnode.h"
#include "beamlet/pubsub.h"
#include "beamlet/registry.h"
#include "beamlet/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int echo_call(bl_proc *self, const bl_from *from, const char *buf, int index,
                     ei_x_buff *reply, void *ud)
{
    (void)from, (void)ud;
    bl_node *n = bl_proc_node(self);
    bl_log(n, BL_LOG_INFO, "tr_echo: handling a call");
    int end = index;
    if (ei_skip_term(buf, &end) < 0) return -1;
    char id[BL_PUBSUB_ID_LEN] = "";
    int rc = bl_pubsub_publish(n, "trace.demo", buf + index, end - index, BL_PRIO_NORMAL, 0, id,
                               sizeof(id));
    bl_log(n, BL_LOG_INFO, "tr_echo: published %s (%s)", id, bl_strerror(rc));
    char tid[BL_TRACE_ID_LEN];
    const bl_trace *t = bl_trace_current(n);
    ei_x_encode_tuple_header(reply, 3);
    ei_x_encode_atom(reply, "echo");
    ei_x_append_buf(reply, buf + index, end - index);
    if (t && bl_trace_id_hex(t, tid, sizeof(tid)) == BL_OK)
        ei_x_encode_binary(reply, tid, 32);
    else
        ei_x_encode_atom(reply, "none");
    return 0;
}

static void on_msg(bl_node *n, const char *topic, const char *payload, int len,
                   const bl_pubsub_meta *meta, void *ud)
{
    (void)payload, (void)len, (void)ud;
    bl_log(n, BL_LOG_INFO, "tr_sub: got %s on %s meta_trace=%s", meta->id, topic,
           meta->trace_id ? meta->trace_id : "none");
}

int main(int argc, char **argv)
{
    bl_node *n;
    int code = test_cnode_start("trace_node", argc - 1, argv + 1, &n);
    if (code) return code;
    static const bl_proc_ops ops = {.on_call = echo_call};
    int rc = bl_spawn(n, "tr_echo", &ops, NULL, NULL);
    if (rc == BL_OK) {
        const char *mk[] = {"process"}, *mv[] = {"tr_echo"};
        bl_service_entry e = {.name = "tr_echo", .nmeta = 1, .meta_keys = mk, .meta_values = mv};
        rc = bl_registry_register(n, &e, NULL, 0);
    }
    if (rc == BL_OK) {
        int sid = bl_pubsub_subscribe(n, "trace.#", 0, on_msg, NULL);
        rc = sid > 0 ? BL_OK : sid;
    }
    if (rc != BL_OK) return test_cnode_fail("trace_node", n, rc);
    return test_cnode_run(n);
}
