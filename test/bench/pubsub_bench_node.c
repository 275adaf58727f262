/* pubsub_bench_node.c - a beamlet node holding cheap C pub/sub subscribers for
 * test/bench/pubsub_bench.sh (the fan-out figure). Flags: those of `beamlet node`.
 *
 * A C subscriber here is one bl_pubsub_subscribe() whose callback only increments a counter
 * shared by the node's subscriptions: the cheapest subscriber beamlet has, like the BEAM
 * reference's pg member (a process that only counts its messages).
 *
 * Its `psb_ctl` process answers gen_server calls:
 *   {subscribe, Pattern, Count} -> ok | {error, Reason}   Count subscriptions (max_queue 1000000)
 *   {arm, Target, Pid} -> ok     zero the counter; at Target deliveries send Pid {psb_done, Node}
 *   {publish, Topic, Count} -> ok | {error, Reason}       Count at-most-once publishes from C
 *   count -> Deliveries                                   since the last arm */
#include "../lib/test_cnode.h"
#include "beamlet/pubsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctl {
    bl_node *n;
    bl_proc *self;
    unsigned long long count, target;
    int armed;
    bl_pid report;
    char node[MAXATOMLEN_UTF8];
} ctl;

static void on_msg(bl_node *n, const char *topic, const char *payload, int len,
                   const bl_pubsub_meta *meta, void *ud)
{
    (void)n, (void)topic, (void)payload, (void)len, (void)meta;
    ctl *c = ud;
    if (++c->count == c->target && c->armed) {
        c->armed = 0;
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 2);
        ei_x_encode_atom(&x, "psb_done");
        ei_x_encode_atom(&x, c->node);
        bl_send(c->self, &c->report, x.buff, x.index);
        ei_x_free(&x);
    }
}

static int ctl_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                    void *ud)
{
    (void)self, (void)from;
    ctl *c = ud;
    char tag[MAXATOMLEN_UTF8], s[BL_PUBSUB_TOPIC_LEN];
    int j = idx, ar;
    long k;
    if (ei_decode_atom(buf, &j, tag) == 0 && !strcmp(tag, "count"))
        return ei_x_encode_ulonglong(reply, c->count);
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &ar) < 0 || ar != 3 || ei_decode_atom(buf, &j, tag) < 0)
        return test_cnode_reply_rc(reply, BL_EINVAL);
    if (!strcmp(tag, "arm")) {
        if (ei_decode_long(buf, &j, &k) < 0 ||
            bl_decode_pid(bl_proc_node(self), buf, &j, &c->report) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        c->count = 0;
        c->target = (unsigned long long)k;
        c->armed = 1;
        return test_cnode_reply_rc(reply, BL_OK);
    }
    if (test_cnode_get_bin(buf, &j, s, sizeof(s)) < 0 || ei_decode_long(buf, &j, &k) < 0)
        return test_cnode_reply_rc(reply, BL_EINVAL);
    if (!strcmp(tag, "subscribe")) {
        for (long i = 0; i < k; i++) {
            int id = bl_pubsub_subscribe(c->n, s, 1000000, on_msg, c);
            if (id < 0) return test_cnode_reply_rc(reply, id);
        }
        return test_cnode_reply_rc(reply, BL_OK);
    }
    if (!strcmp(tag, "publish")) {
        ei_x_buff p; /* the payload: a small binary, as in the BEAM reference */
        ei_x_new(&p);
        ei_x_encode_binary(&p, "0123456789abcdef", 16);
        int rc = BL_OK;
        for (long i = 0; i < k && rc == BL_OK; i++)
            rc = bl_pubsub_publish(c->n, s, p.buff, p.index, BL_PRIO_NORMAL, 0, NULL, 0);
        ei_x_free(&p);
        return test_cnode_reply_rc(reply, rc);
    }
    return test_cnode_reply_rc(reply, BL_EINVAL);
}

int main(int argc, char **argv)
{
    ctl *c = calloc(1, sizeof(*c));
    if (!c) return 1;
    static const bl_proc_ops ops = {.on_call = ctl_call};
    int code = test_cnode_start("pubsub_bench_node", argc - 1, argv + 1, &c->n);
    if (!code) {
        snprintf(c->node, sizeof(c->node), "%s", bl_node_name(c->n));
        code = test_cnode_serve("pubsub_bench_node", c->n, "psb_ctl", &ops, c, &c->self);
    }
    free(c);
    return code;
}
