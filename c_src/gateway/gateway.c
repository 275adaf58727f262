/* gateway.c - the `beamlet_gateway` process every cluster member runs, and the gateway's start.
 *
 * The process owns the gateway state (bl__gw): the HTTP server when http_port is set (or the
 * role is gateway), the event ring, API keys and the audit trail. Nodes without HTTP run it too:
 * they hold the replicated keys (so turning HTTP on anywhere needs no new key) and answer their
 * HTTP-serving peers. Its gen_server protocol (docs/gateway.md):
 *   bl_gw_node                       -> JSON text (binary) of what the node says about itself
 *   bl_gw_metrics                    -> {Node, Text}: its Prometheus exposition
 *   bl_gw_leave                      -> ok, then the node leaves the cluster and stops
 *   {apikey_create, Role, Name}      -> {ok, #{key, id, name, role, ...}} (the key, once)
 *   apikey_list                      -> [#{id, name, role, created_ms, revoked, ...}]
 *   {apikey_revoke, Id}              -> ok | {error, not_found}
 * and the message {bl_gw_keys, [Key]} between members (auth.c). */
#include "gw_int.h"
#include "../runtime/decode.h"
#include "../health/health_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bl_gateway_start(bl_node *n);

typedef struct gw_pending {
    struct gw_pending *next;
    bl__gw *g;
    bl_from from;
} gw_pending;

/* replies waiting on the local pub/sub counters (bl_gw_metrics) */
static gw_pending **pending_of(bl__gw *g)
{
    return (gw_pending **)&g->pending;
}

bl__gw *bl__gw_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, GW_PROC) : NULL;
    return p ? bl_proc_data(p) : NULL;
}

json_t *bl__gw_node_self(bl__gw *g)
{
    bl_node *n = g->n;
    bl_stats st;
    bl_node_stats(n, &st);
    /* the machine: the health service's latest sample, as `beamlet metrics --format json` */
    json_t *metrics = NULL;
    bl_health_metrics *hm = malloc(sizeof(*hm));
    if (hm && bl_health_metrics_get(n, hm) == BL_OK) {
        ei_x_buff x;
        ei_x_new(&x);
        bl__health_encode_metrics(&x, n->name, hm, n->cfg.health_interval_ms);
        int i = 0;
        metrics = bl_term_to_json(x.buff, &i);
        ei_x_free(&x);
    }
    free(hm);
    json_t *http = g->d ? json_pack("{s:i, s:b, s:b}", "port", g->port, "tls", g->tls, "dashboard",
                                    g->dashboard)
                        : json_null();
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:f, s:o, s:{s:I, s:I, s:I, s:I, s:i, s:i, s:I, s:I, "
        "s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:I}}",
        "node", bl_node_name(n), "role", n->cfg.role, "cluster", n->cfg.cluster, "version",
        BL_VERSION, "uptime_s", ev_time() - n->started_at, "http", http, "stats", "messages_in",
        (json_int_t)st.msgs_in, "messages_out", (json_int_t)st.msgs_out, "bytes_in",
        (json_int_t)st.bytes_in, "bytes_out", (json_int_t)st.bytes_out, "connections",
        (int)st.connections, "processes", (int)st.processes, "connections_accepted",
        (json_int_t)st.conns_accepted, "connections_established", (json_int_t)st.conns_connected,
        "connections_dropped", (json_int_t)st.conns_dropped, "handshakes_failed",
        (json_int_t)st.handshakes_failed, "refused", "not_allowed",
        (json_int_t)st.refused_not_allowed, "max_connections",
        (json_int_t)st.refused_max_connections, "max_handshakes_per_address",
        (json_int_t)st.refused_per_address, "max_handshake_rate_per_address",
        (json_int_t)st.refused_rate, "handshakes_running", (json_int_t)st.refused_busy,
        "refusal_logs_suppressed", (json_int_t)st.refusal_logs_suppressed);
    json_object_set_new(j, "metrics", metrics ? metrics : json_null());
    return j;
}

static void stop_cb(bl_node *n, void *ud)
{
    (void)ud;
    bl_log(n, BL_LOG_INFO, "gateway: leaving the cluster as asked");
    bl_node_stop(n);
}

void bl__gw_leave_soon(bl__gw *g)
{
    bl_timer(g->n, 200, 0, stop_cb, NULL);
}

static void encode_json(ei_x_buff *x, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    ei_x_encode_binary(x, s ? s : "null", s ? (long)strlen(s) : 4);
    free(s);
}

/* a JSON object as an Erlang map with atom keys (strings as binaries) */
static void encode_map(ei_x_buff *x, json_t *o)
{
    ei_x_encode_map_header(x, (long)json_object_size(o));
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        ei_x_encode_atom(x, k);
        if (json_is_string(v))
            ei_x_encode_binary(x, json_string_value(v), (long)json_string_length(v));
        else if (json_is_integer(v))
            ei_x_encode_longlong(x, json_integer_value(v));
        else if (json_is_boolean(v))
            ei_x_encode_atom(x, json_is_true(v) ? "true" : "false");
        else
            encode_json(x, v);
    }
}

static void error_reply(ei_x_buff *r, const char *why)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_atom(r, why);
}

static void metrics_reply_cb(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    gw_pending *w = ud;
    bl__gw *g = w->g;
    LL_DELETE(*pending_of(g), w);
    size_t len = 0;
    char *text = bl__gw_metrics_text(g, status == BL_OK ? buf : NULL, index, &len);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, bl_node_name(g->n));
    ei_x_encode_binary(&x, text ? text : "", text ? (long)len : 0);
    bl_reply(bl_proc_node(p), &w->from, x.buff, x.index);
    ei_x_free(&x);
    free(text);
    free(w);
}

static int gw_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                   void *ud)
{
    bl__gw *g = ud;
    char a[MAXATOMLEN_UTF8];
    int j = idx, arity;
    if (ei_decode_atom(buf, &j, a) == 0) {
        if (!strcmp(a, "bl_gw_node")) {
            json_t *s = bl__gw_node_self(g);
            encode_json(reply, s);
            json_decref(s);
            return 0;
        }
        if (!strcmp(a, "bl_gw_metrics")) {
            gw_pending *w = calloc(1, sizeof(*w));
            char req[32];
            int k = 0;
            ei_encode_atom(req, &k, "counters");
            if (w) {
                w->g = g;
                w->from = *from;
                if (bl_call(self, NULL, "beamlet_pubsub", bl_node_name(g->n), req, k,
                            GW_CALL_TIMEOUT_MS, metrics_reply_cb, w) == BL_OK) {
                    LL_PREPEND(*pending_of(g), w);
                    return 1;
                }
                free(w);
            }
            size_t len = 0;
            char *text = bl__gw_metrics_text(g, NULL, 0, &len);
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, bl_node_name(g->n));
            ei_x_encode_binary(reply, text ? text : "", text ? (long)len : 0);
            free(text);
            return 0;
        }
        if (!strcmp(a, "bl_gw_leave")) {
            bl__gw_leave_soon(g);
            return ei_x_encode_atom(reply, "ok");
        }
        if (!strcmp(a, "apikey_list")) {
            json_t *l = bl__gw_key_list(g), *k;
            size_t i;
            json_array_foreach(l, i, k)
            {
                ei_x_encode_list_header(reply, 1);
                encode_map(reply, k);
            }
            json_decref(l);
            return ei_x_encode_empty_list(reply);
        }
    }
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &arity) == 0 && arity >= 2 &&
        ei_decode_atom(buf, &j, a) == 0) {
        if (!strcmp(a, "apikey_create") && arity == 3) {
            char role[32], name[64];
            if (bl__term_text(buf, &j, role, sizeof(role)) ||
                bl__term_text(buf, &j, name, sizeof(name)))
                return error_reply(reply, "badarg"), 0;
            int ro = bl__gw_role_parse(role);
            if (ro < 0) return error_reply(reply, "bad_role"), 0;
            json_t *info = NULL;
            char *key = bl__gw_key_create(g, ro, name, &info);
            if (!key) return error_reply(reply, "no_crypto"), 0;
            json_object_set_new(info, "key", json_string(key));
            free(key);
            bl_log(g->n, BL_LOG_INFO, "audit: admin CLI via %s created API key %s (%s)",
                   bl_pid_node(&from->pid), json_string_value(json_object_get(info, "id")), role);
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, "ok");
            encode_map(reply, info);
            json_decref(info);
            return 0;
        }
        if (!strcmp(a, "apikey_revoke") && arity == 2) {
            char id[32];
            if (bl__term_text(buf, &j, id, sizeof(id))) return error_reply(reply, "badarg"), 0;
            if (bl__gw_key_revoke(g, id) != BL_OK) return error_reply(reply, "not_found"), 0;
            bl_log(g->n, BL_LOG_INFO, "audit: admin CLI via %s revoked API key %s",
                   bl_pid_node(&from->pid), id);
            return ei_x_encode_atom(reply, "ok");
        }
    }
    error_reply(reply, "unknown_request");
    return 0;
}

static void gw_msg(bl_proc *self, const bl_msg *m, void *ud)
{
    (void)self;
    bl__gw *g = ud;
    int j = m->index, arity;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(m->buf, &j, &arity) == 0 && arity == 2 &&
        ei_decode_atom(m->buf, &j, a) == 0 && !strcmp(a, "bl_gw_keys"))
        bl__gw_keys_merge(g, m->buf, &j);
}

static void on_member(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    bl__gw *g = ud;
    if (!g->keys || !strcmp(ev->node, bl_node_name(n)) || !strcmp(ev->role, "beam")) return;
    if (ev->type == BL_EV_NODE_JOINED ||
        (ev->type == BL_EV_NODE_STATE_CHANGED && ev->to == BL_MEMBER_ACTIVE &&
         ev->from != BL_MEMBER_SUSPECTED))
        bl__gw_keys_send(g, ev->node, NULL);
}

static void gw_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    bl__gw *g = ud;
    g->stopping = 1;
    if (g->member_sub) bl_cluster_unsubscribe(g->n, g->member_sub);
    bl__gw_http_stop(g);
    bl__gw_events_stop(g);
    bl__gw_auth_free(g);
    gw_pending *w, *t;
    LL_FOREACH_SAFE(*pending_of(g), w, t)
        free(w);
    free(g);
}

static const bl_proc_ops GW_OPS = {
    .on_msg = gw_msg,
    .on_call = gw_call,
    .on_terminate = gw_terminate,
};

int bl_gateway_start(bl_node *n)
{
    if (!n->cfg.cluster_member) return BL_OK; /* the admin CLI's nodes */
    bl__gw *g = calloc(1, sizeof(*g));
    if (!g) return BL_ENOMEM;
    g->n = n;
    int rc = bl__gw_auth_init(g);
    if (rc == BL_OK) rc = bl__gw_http_start(g);
    if (rc == BL_OK) rc = bl__gw_events_start(g);
    if (rc == BL_OK) rc = bl_spawn(n, GW_PROC, &GW_OPS, g, &g->proc);
    if (rc != BL_OK) {
        bl__gw_http_stop(g);
        bl__gw_events_stop(g);
        bl__gw_auth_free(g);
        free(g);
        return rc;
    }
    int id = bl_cluster_subscribe(n, on_member, g);
    g->member_sub = id > 0 ? id : 0;
    return BL_OK;
}
