/* pubsub_events.c - cluster events of pub/sub: membership and leader events of this node's view
 * published to local subscribers on `cluster.events`; node events (a nodedown drops that node's
 * non-durable subscriptions and its subscribers' local ones). */
#include "pubsub_int.h"

#include <string.h>

/* ---- cluster events on cluster.events ---- */

static void publish_event(ps *s, const bl_cluster_event *ev)
{
    static const char *TYPES[] = {"node_joined", "node_state_changed", "node_left",
                                  "leader_changed"};
    ei_x_buff x;
    int rc = ei_x_new(&x);
    int extra = ev->type == BL_EV_NODE_STATE_CHANGED ? 2 : ev->type == BL_EV_LEADER_CHANGED ? 2 : 0;
    rc |= ei_x_encode_map_header(&x, 5 + extra);
    rc |= ei_x_encode_atom(&x, "event");
    rc |= ei_x_encode_atom(&x, (unsigned)ev->type < 4 ? TYPES[ev->type] : "unknown");
    rc |= ei_x_encode_atom(&x, "node");
    if (ev->type == BL_EV_LEADER_CHANGED && !ev->has_leader)
        rc |= ei_x_encode_atom(&x, "none");
    else
        rc |= ei_x_encode_atom(&x, ev->node);
    rc |= ei_x_encode_atom(&x, "role");
    rc |= ei_x_encode_binary(&x, ev->role, (long)strlen(ev->role));
    rc |= ei_x_encode_atom(&x, "seq");
    rc |= ei_x_encode_ulonglong(&x, ev->seq);
    rc |= ei_x_encode_atom(&x, "time_ms");
    rc |= ei_x_encode_ulonglong(&x, ev->time_ms);
    if (ev->type == BL_EV_NODE_STATE_CHANGED) {
        rc |= ei_x_encode_atom(&x, "from");
        rc |= ei_x_encode_atom(&x, bl_member_state_name(ev->from));
        rc |= ei_x_encode_atom(&x, "to");
        rc |= ei_x_encode_atom(&x, bl_member_state_name(ev->to));
    } else if (ev->type == BL_EV_LEADER_CHANGED) {
        rc |= ei_x_encode_atom(&x, "term");
        rc |= ei_x_encode_ulonglong(&x, ev->term);
        rc |= ei_x_encode_atom(&x, "has_leader");
        rc |= ei_x_encode_atom(&x, ev->has_leader ? "true" : "false");
    }
    if (rc) {
        ei_x_free(&x);
        bl_log(s->n, BL_LOG_WARN, "pubsub: a cluster event was not encoded (out of memory)");
        return;
    }
    psmsg *m = bl__ps_msg_new(EVENTS_TOPIC, x.buff, x.index);
    ei_x_free(&x);
    if (!m) return;
    snprintf(m->id, sizeof(m->id), "%s-%llx-%llu", s->n->name, s->epoch_ms, ++s->next_msg);
    snprintf(m->publisher, sizeof(m->publisher), "%s", s->n->name);
    m->prio = BL_PRIO_HIGH;
    m->published_at = bl_now_ms();
    COUNT(s, EVENTS_TOPIC, published);
    bl__ps_fan_out_local(s, m, 0);
    bl__ps_msg_unref(m);
}

void bl__ps_on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    ps *s = ud;
    (void)n;
    publish_event(s, ev);
}

void bl__ps_on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    ps *s = ud;
    if (bl_is_tool_node(node) || ev == BL_NODEUP) return; /* the layer syncs */
    bl__repl_drop_owner(s->repl, node, "nodedown");       /* durable ones are kept */
    bl__ps_del_subs_of(s, NULL, node, "subscriber node down");
}
