/* pubsub_node.c - a beamlet node that drives the pub/sub C API for bl_pubsub_tests
 * (test/services/pubsub). Flags: those of `beamlet node`.
 *
 * Its `ps_ctl` process answers gen_server calls:
 *   {c_subscribe, Pattern, ReportPid} -> {ok, SubId} | {error, Reason}  (bl_pubsub_subscribe);
 *        each delivery is sent to ReportPid as {c_msg, SubId, Topic, Payload, Priority, MsgId}
 *   {c_unsubscribe, SubId} | {c_pause, SubId, true | false} -> ok | {error, Reason}
 *   {c_publish, Topic, Payload, 0|1|2, TtlMs} -> {ok, MsgId} | {error, Reason}
 *   {c_counters, Topic} -> {Published, Delivered, Retried, Expired, Dropped}
 *   c_invalid -> ok when every malformed input is refused, else {error, Case} */
#include "../../lib/test_cnode.h"
#include "beamlet/pubsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUBS 64

typedef struct csub {
    int used, id;
    bl_pid report;
    struct ctl *c;
} csub;

typedef struct ctl {
    bl_node *n;
    bl_proc *self;
    csub subs[MAX_SUBS];
} ctl;

static const char *PRIO[] = {"high", "normal", "low"};

static void on_msg(bl_node *n, const char *topic, const char *payload, int len,
                   const bl_pubsub_meta *meta, void *ud)
{
    (void)n;
    csub *s = ud;
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 6);
    ei_x_encode_atom(&x, "c_msg");
    ei_x_encode_long(&x, meta->sub_id);
    ei_x_encode_binary(&x, topic, (long)strlen(topic));
    ei_x_append_buf(&x, payload, len);
    ei_x_encode_atom(&x, PRIO[meta->priority]);
    ei_x_encode_binary(&x, meta->id, (long)strlen(meta->id));
    bl_send(s->c->self, &s->report, x.buff, x.index);
    ei_x_free(&x);
}

static int invalid(ctl *c, ei_x_buff *reply)
{
    bl_node *n = c->n;
    ei_x_buff t;
    ei_x_new(&t);
    ei_x_encode_atom(&t, "x");
    const char *bad = NULL;
    if (bl_pubsub_subscribe(n, "a..b", 0, on_msg, &c->subs[0]) != BL_EINVAL)
        bad = "pattern";
    else if (bl_pubsub_subscribe(n, "a.#.b", 0, on_msg, &c->subs[0]) != BL_EINVAL)
        bad = "hash";
    else if (bl_pubsub_subscribe(n, "a", 0, NULL, NULL) != BL_EINVAL)
        bad = "nocb";
    else if (bl_pubsub_subscribe(n, NULL, 0, on_msg, NULL) != BL_EINVAL)
        bad = "nullpat";
    else if (bl_pubsub_publish(n, "a.*", t.buff, t.index, BL_PRIO_HIGH, 0, NULL, 0) != BL_EINVAL)
        bad = "wildtopic";
    else if (bl_pubsub_publish(n, "a", t.buff, t.index - 1, BL_PRIO_HIGH, 0, NULL, 0) != BL_EINVAL)
        bad = "shortterm";
    else if (bl_pubsub_publish(n, "a", NULL, 0, BL_PRIO_HIGH, 0, NULL, 0) != BL_EINVAL)
        bad = "nullpayload";
    else if (bl_pubsub_publish(n, "a", t.buff, t.index, (bl_pubsub_priority)7, 0, NULL, 0) !=
             BL_EINVAL)
        bad = "prio";
    else if (bl_pubsub_unsubscribe(n, 999999) != BL_ENOPROC)
        bad = "unsub";
    else if (bl_pubsub_pause(n, -1, 1) != BL_ENOPROC)
        bad = "pause";
    else if (bl_pubsub_get_counters(n, NULL, NULL) != BL_EINVAL)
        bad = "counters";
    ei_x_free(&t);
    if (!bad) return ei_x_encode_atom(reply, "ok");
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, bad);
}

static int ctl_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                    void *ud)
{
    (void)self;
    (void)from;
    ctl *c = ud;
    bl_node *n = c->n;
    char tag[MAXATOMLEN_UTF8], s[BL_PUBSUB_TOPIC_LEN];
    int j = idx, ar;
    if (ei_decode_atom(buf, &j, tag) == 0 && !strcmp(tag, "c_invalid")) return invalid(c, reply);
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &ar) < 0 || ar < 2 || ei_decode_atom(buf, &j, tag) < 0)
        return test_cnode_reply_rc(reply, BL_EINVAL);
    if (!strcmp(tag, "c_subscribe") && ar == 3) {
        csub *cs = NULL;
        for (int i = 0; i < MAX_SUBS && !cs; i++)
            if (!c->subs[i].used) cs = &c->subs[i];
        if (!cs || test_cnode_get_bin(buf, &j, s, sizeof(s)) < 0 ||
            bl_decode_pid(bl_proc_node(self), buf, &j, &cs->report) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        cs->c = c;
        int id = bl_pubsub_subscribe(n, s, 0, on_msg, cs);
        if (id < 0) return test_cnode_reply_rc(reply, id);
        cs->used = 1;
        cs->id = id;
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_long(reply, id);
    }
    if (!strcmp(tag, "c_subscribe_durable") && ar == 5) { /* {_, Pattern, Name, Qos, Report} */
        csub *cs = NULL;
        char name[128], qa[MAXATOMLEN_UTF8];
        for (int i = 0; i < MAX_SUBS && !cs; i++)
            if (!c->subs[i].used) cs = &c->subs[i];
        if (!cs || test_cnode_get_bin(buf, &j, s, sizeof(s)) < 0 ||
            test_cnode_get_bin(buf, &j, name, sizeof(name)) < 0 ||
            ei_decode_atom(buf, &j, qa) < 0 ||
            bl_decode_pid(bl_proc_node(self), buf, &j, &cs->report) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        bl_pubsub_qos q = !strcmp(qa, "exactly_once") ? BL_QOS_EXACTLY_ONCE : BL_QOS_AT_LEAST_ONCE;
        cs->c = c;
        int id = bl_pubsub_subscribe_durable(n, s, name, q, 0, on_msg, cs);
        if (id < 0) return test_cnode_reply_rc(reply, id);
        cs->used = 1;
        cs->id = id;
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_long(reply, id);
    }
    if (!strcmp(tag, "c_publish_qos") && ar == 4) { /* {_, Topic, Payload, Qos} */
        char qa[MAXATOMLEN_UTF8];
        if (test_cnode_get_bin(buf, &j, s, sizeof(s)) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        int p0 = j;
        if (ei_skip_term(buf, &j) < 0) return test_cnode_reply_rc(reply, BL_EINVAL);
        int p1 = j;
        if (ei_decode_atom(buf, &j, qa) < 0) return test_cnode_reply_rc(reply, BL_EINVAL);
        bl_pubsub_qos q = !strcmp(qa, "exactly_once")    ? BL_QOS_EXACTLY_ONCE
                          : !strcmp(qa, "at_least_once") ? BL_QOS_AT_LEAST_ONCE
                                                         : BL_QOS_AT_MOST_ONCE;
        char id[BL_PUBSUB_ID_LEN];
        int rc =
            bl_pubsub_publish_qos(n, s, buf + p0, p1 - p0, BL_PRIO_NORMAL, 0, q, id, sizeof(id));
        if (rc != BL_OK) return test_cnode_reply_rc(reply, rc);
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_binary(reply, id, (long)strlen(id));
    }
    if ((!strcmp(tag, "c_unsubscribe") && ar == 2) || (!strcmp(tag, "c_pause") && ar == 3)) {
        long id;
        char a[MAXATOMLEN_UTF8] = "";
        if (ei_decode_long(buf, &j, &id) < 0 || (ar == 3 && ei_decode_atom(buf, &j, a) < 0))
            return test_cnode_reply_rc(reply, BL_EINVAL);
        if (ar == 3)
            return test_cnode_reply_rc(reply, bl_pubsub_pause(n, (int)id, !strcmp(a, "true")));
        int rc = bl_pubsub_unsubscribe(n, (int)id);
        for (int i = 0; i < MAX_SUBS && rc == BL_OK; i++)
            if (c->subs[i].used && c->subs[i].id == id) c->subs[i].used = 0;
        return test_cnode_reply_rc(reply, rc);
    }
    if (!strcmp(tag, "c_publish") && ar == 5) {
        long prio, ttl;
        if (test_cnode_get_bin(buf, &j, s, sizeof(s)) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        int p0 = j;
        if (ei_skip_term(buf, &j) < 0) return test_cnode_reply_rc(reply, BL_EINVAL);
        int p1 = j;
        if (ei_decode_long(buf, &j, &prio) < 0 || ei_decode_long(buf, &j, &ttl) < 0)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        char id[BL_PUBSUB_ID_LEN];
        int rc = bl_pubsub_publish(n, s, buf + p0, p1 - p0, (bl_pubsub_priority)prio, (unsigned)ttl,
                                   id, sizeof(id));
        if (rc != BL_OK) return test_cnode_reply_rc(reply, rc);
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_binary(reply, id, (long)strlen(id));
    }
    if (!strcmp(tag, "c_counters") && ar == 2) {
        bl_pubsub_counters k;
        if (test_cnode_get_bin(buf, &j, s, sizeof(s)) < 0 ||
            bl_pubsub_get_counters(n, s, &k) != BL_OK)
            return test_cnode_reply_rc(reply, BL_EINVAL);
        ei_x_encode_tuple_header(reply, 5);
        ei_x_encode_ulonglong(reply, k.published);
        ei_x_encode_ulonglong(reply, k.delivered);
        ei_x_encode_ulonglong(reply, k.retried);
        ei_x_encode_ulonglong(reply, k.expired);
        return ei_x_encode_ulonglong(reply, k.dropped);
    }
    return test_cnode_reply_rc(reply, BL_EINVAL);
}

int main(int argc, char **argv)
{
    ctl *c = calloc(1, sizeof(*c));
    if (!c) return 1;
    static const bl_proc_ops ops = {.on_call = ctl_call};
    int code = test_cnode_start("pubsub_node", argc - 1, argv + 1, &c->n);
    if (!code) code = test_cnode_serve("pubsub_node", c->n, "ps_ctl", &ops, c, &c->self);
    free(c);
    return code;
}
