/* stream.c - the gateway's events: membership, leader, service and alert changes as they happen,
 * kept in a bounded ring (1024) that /api/v1/events queries and /api/v1/stream sends as Server-Sent
 * Events. Each event has an id that grows by one; a client that reconnects with Last-Event-ID
 * gets what it missed that is still in the ring. A stream whose client does not read (more than
 * 256 KiB waiting) is closed; every stream gets a comment every 5 s so a vanished client is
 * noticed. Until the health store keeps events on disk, the ring is what there is. */
#include "gw_int.h"
#include "beamlet/pubsub.h"
#include "beamlet/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_CAP 1024
#define STREAM_MAX_BUF (256 * 1024)
#define HEARTBEAT_S 5.0

static void stream_push(bl__gw *g, gw_stream *s, const char *data, size_t len)
{
    if (s->dead) return;
    if (s->len - s->off + len > STREAM_MAX_BUF) {
        s->dead = 1; /* a client that does not read: let it go */
    } else {
        if (s->off && s->off == s->len) s->off = s->len = 0;
        if (s->len + len > s->cap) {
            if (s->off) {
                memmove(s->buf, s->buf + s->off, s->len - s->off);
                s->len -= s->off;
                s->off = 0;
            }
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + len)
                cap *= 2;
            char *nb = realloc(s->buf, cap);
            if (!nb) {
                s->dead = 1;
                goto wake;
            }
            s->buf = nb;
            s->cap = cap;
        }
        memcpy(s->buf + s->len, data, len);
        s->len += len;
    }
wake:
    if (s->suspended && s->r && s->r->c) {
        s->suspended = 0;
        g->mhd->resume_connection(s->r->c);
        bl__gw_http_kick(g);
    }
}

static void push_event(bl__gw *g, gw_stream *s, const gw_event *e)
{
    size_t l = strlen(e->json) + strlen(e->type) + 64;
    char *f = malloc(l);
    if (!f) return;
    int k = snprintf(f, l, "id: %llu\nevent: %s\ndata: %s\n\n", e->id, e->type, e->json);
    stream_push(g, s, f, (size_t)k);
    s->last_id = e->id;
    free(f);
}

void bl__gw_event(bl__gw *g, const char *type, const char *node, const char *severity, json_t *body)
{
    if (!g->ring) {
        json_decref(body);
        return;
    }
    gw_event *e;
    if (g->ring_len < g->ring_cap) {
        e = &g->ring[(g->ring_head + g->ring_len++) % g->ring_cap];
    } else {
        e = &g->ring[g->ring_head];
        free(e->json);
        g->ring_head = (g->ring_head + 1) % g->ring_cap;
    }
    memset(e, 0, sizeof(*e));
    e->id = ++g->next_event_id;
    e->time_ms = bl_now_ms();
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->node, sizeof(e->node), "%s", node ? node : "");
    snprintf(e->severity, sizeof(e->severity), "%s", severity);
    json_object_set_new(body, "id", json_integer((json_int_t)e->id));
    json_object_set_new(body, "time_ms", json_integer((json_int_t)e->time_ms));
    json_object_set_new(body, "type", json_string(type));
    json_object_set_new(body, "severity", json_string(severity));
    json_object_set_new(body, "source", json_string(bl_node_name(g->n)));
    if (node) json_object_set_new(body, "node", json_string(node));
    e->json = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!e->json) e->json = strdup("{}");
    for (gw_stream *s = g->streams; s; s = s->next)
        push_event(g, s, e);
}

static void on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    (void)n;
    bl__gw *g = ud;
    json_t *b = json_object();
    const char *sev = "info", *type = "node_joined";
    switch (ev->type) {
    case BL_EV_NODE_JOINED:
        json_object_set_new(b, "role", json_string(ev->role));
        break;
    case BL_EV_NODE_STATE_CHANGED:
        type = "node_state_changed";
        json_object_set_new(b, "role", json_string(ev->role));
        json_object_set_new(b, "from", json_string(bl_member_state_name(ev->from)));
        json_object_set_new(b, "to", json_string(bl_member_state_name(ev->to)));
        if (ev->to == BL_MEMBER_FAILED) sev = "error";
        if (ev->to == BL_MEMBER_SUSPECTED) sev = "warn";
        break;
    case BL_EV_NODE_LEFT:
        type = "node_left";
        json_object_set_new(b, "role", json_string(ev->role));
        break;
    case BL_EV_LEADER_CHANGED:
        type = "leader_changed";
        json_object_set_new(b, "term", json_integer((json_int_t)ev->term));
        json_object_set_new(b, "leader", ev->has_leader ? json_string(ev->node) : json_null());
        if (!ev->has_leader) sev = "warn";
        break;
    }
    bl__gw_event(g, type, ev->type == BL_EV_LEADER_CHANGED && !ev->has_leader ? NULL : ev->node,
                 sev, b);
}

static void on_registry(bl_node *n, bl_registry_event ev, const bl_service_entry *e, void *ud)
{
    (void)n;
    bl__gw *g = ud;
    static const char *T[] = {"service_added", "service_removed", "service_health_changed"};
    json_t *b = json_pack("{s:s?, s:s?, s:s}", "id", e->id, "name", e->name, "health",
                          bl_health_name(e->health));
    const char *sev = ev == BL_REG_HEALTH_CHANGED && e->health == BL_HEALTH_CRITICAL  ? "error"
                      : ev == BL_REG_HEALTH_CHANGED && e->health == BL_HEALTH_WARNING ? "warn"
                                                                                      : "info";
    bl__gw_event(g, T[ev], e->node, sev, b);
}

/* the health service publishes every alert change on cluster.alerts: alert_pending,
 * alert_firing, alert_resolved (and acknowledgements) on the stream */
static void on_alert(bl_node *n, const char *topic, const char *payload, int len,
                     const bl_pubsub_meta *meta, void *ud)
{
    (void)n;
    (void)topic;
    (void)len;
    (void)meta;
    bl__gw *g = ud;
    int i = 0;
    json_t *a = bl_term_to_json(payload, &i);
    if (!json_is_object(a)) {
        json_decref(a);
        return;
    }
    const char *st = json_string_value(json_object_get(a, "state"));
    const char *sv = json_string_value(json_object_get(a, "severity"));
    const char *node = json_string_value(json_object_get(a, "node"));
    char type[32];
    snprintf(type, sizeof(type), "alert_%s", st ? st : "changed");
    json_t *b = json_object();
    json_object_set(b, "alert", a);
    char nodebuf[BL_NODE_LEN];
    snprintf(nodebuf, sizeof(nodebuf), "%s", node ? node : "");
    json_decref(a);
    bl__gw_event(g, type, nodebuf[0] ? nodebuf : NULL,
                 sv && !strcmp(sv, "critical") ? "error"
                 : sv && !strcmp(sv, "warn")   ? "warn"
                                               : "info",
                 b);
}

static void hb_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl__gw *g = w->data;
    static const char ping[] = ": ping\n\n";
    for (gw_stream *s = g->streams; s; s = s->next)
        stream_push(g, s, ping, sizeof(ping) - 1);
    bl__gw_rate_prune(g);
}

int bl__gw_events_start(bl__gw *g)
{
    g->ring_cap = RING_CAP;
    g->ring = calloc(RING_CAP, sizeof(*g->ring));
    if (!g->ring) return BL_ENOMEM;
    int id = bl_cluster_subscribe(g->n, on_cluster, g);
    g->cluster_sub = id > 0 ? id : 0;
    id = bl_registry_watch(g->n, on_registry, g);
    g->reg_watch = id > 0 ? id : 0;
    /* only where HTTP is served: a subscription is replicated to every member */
    id = g->d ? bl_pubsub_subscribe(g->n, "cluster.alerts", 256, on_alert, g) : 0;
    g->alert_sub = id > 0 ? id : 0;
    ev_timer_init(&g->hb, hb_cb, HEARTBEAT_S, HEARTBEAT_S);
    g->hb.data = g;
    if (g->d) ev_timer_start(g->n->loop, &g->hb);
    return BL_OK;
}

void bl__gw_events_stop(bl__gw *g)
{
    ev_timer_stop(g->n->loop, &g->hb);
    if (g->cluster_sub) bl_cluster_unsubscribe(g->n, g->cluster_sub);
    if (g->reg_watch) bl_registry_unwatch(g->n, g->reg_watch);
    if (g->alert_sub) bl_pubsub_unsubscribe(g->n, g->alert_sub);
    g->cluster_sub = g->reg_watch = g->alert_sub = 0;
    for (unsigned i = 0; g->ring && i < g->ring_len; i++)
        free(g->ring[(g->ring_head + i) % g->ring_cap].json);
    free(g->ring);
    g->ring = NULL;
    g->ring_len = 0;
}

/* ---- SSE ---- */

void bl__gw_stream_open(gw_req *r)
{
    bl__gw *g = r->g;
    gw_stream *s = calloc(1, sizeof(*s));
    if (!s) return bl__gw_problem(r, 503, "Service Unavailable", "out of memory");
    s->r = r;
    s->g = g;
    r->stream = s;
    LL_PREPEND(g->streams, s);
    static const char hello[] = "retry: 1000\n: beamlet event stream\n\n";
    stream_push(g, s, hello, sizeof(hello) - 1);
    const char *last = bl__gw_header(r, "Last-Event-ID");
    if (!last) last = bl__gw_arg(r, "last_event_id");
    if (last && *last) {
        unsigned long long from = strtoull(last, NULL, 10);
        if (from > g->next_event_id) from = 0; /* ids from before a restart: send what there is */
        for (unsigned i = 0; i < g->ring_len; i++) {
            const gw_event *e = &g->ring[(g->ring_head + i) % g->ring_cap];
            if (e->id > from) push_event(g, s, e);
        }
    }
}

ssize_t bl__gw_stream_read(gw_stream *s, char *buf, size_t max)
{
    size_t k = s->len - s->off;
    if (k > max) k = max;
    memcpy(buf, s->buf + s->off, k);
    s->off += k;
    if (s->off == s->len) s->off = s->len = 0;
    return (ssize_t)k;
}

void bl__gw_stream_free(gw_stream *s)
{
    LL_DELETE(s->g->streams, s);
    free(s->buf);
    free(s);
}

/* ---- /api/v1/events ---- */

static int sev_rank(const char *s)
{
    return !strcmp(s, "error") ? 2 : !strcmp(s, "warn") ? 1 : 0;
}

/* ms since the epoch, or a duration back from now: 90s, 15m, 2h, 7d */
int bl__gw_parse_time(const char *s, unsigned long long *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return -1;
    unsigned long long mul = 0;
    if (!*end)
        mul = 0;
    else if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (!strcmp(end, "d"))
        mul = 86400000;
    else
        return -1;
    unsigned long long now = bl_now_ms();
    *out = mul ? (v * mul > now ? 0 : now - v * mul) : v;
    return 0;
}

/* ?source=store: the node's persisted event log (the health store, what `beamlet events` reads),
 * beyond the ring and across restarts: [#{id, time_ms, node, type, severity, who, body}] */
static void store_events_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status)
        return bl__gw_problem(r, status == BL_ETIMEOUT ? 504 : 503, "Service Unavailable",
                              "the node's event store did not answer (health off?)");
    json_t *t = bl_term_to_json(buf, &index);
    json_t *tag = json_array_get(t, 0), *list = json_array_get(t, 1);
    if (!json_is_string(tag) || strcmp(json_string_value(tag), "ok") || !json_is_array(list)) {
        const char *why = json_string_value(list);
        char d[300];
        snprintf(d, sizeof(d), "the event store refused the query: %s", why ? why : "?");
        int bad = why && !strcmp(why, "badarg");
        json_decref(t);
        return bad ? bl__gw_problem(r, 400, "Bad Request", "a filter value is too long")
                   : bl__gw_problem(r, 503, "Service Unavailable", d);
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *body = json_string_value(json_object_get(e, "body"));
        json_t *o = body ? json_loads(body, 0, NULL) : NULL;
        json_object_set_new(e, "body", o ? o : json_object());
        if (json_is_string(json_object_get(e, "who")) &&
            !strcmp(json_string_value(json_object_get(e, "who")), "undefined"))
            json_object_set_new(e, "who", json_null());
    }
    /* the store answers newest first; the API lists oldest first, as the ring does */
    json_t *out = json_array();
    for (size_t k = json_array_size(list); k-- > 0;)
        json_array_append(out, json_array_get(list, k));
    json_decref(t);
    bl__gw_reply_json(r, 200, out);
}

static void store_events_query(gw_req *r, unsigned long long t0, unsigned long long t1,
                               const char *node, const char *type, const char *sev, long limit)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "events");
    ei_x_encode_map_header(&x, 6);
    ei_x_encode_atom(&x, "since_ms");
    ei_x_encode_ulonglong(&x, t0);
    ei_x_encode_atom(&x, "until_ms");
    ei_x_encode_ulonglong(&x, t1 == ~0ull ? 0 : t1);
    ei_x_encode_atom(&x, "limit");
    ei_x_encode_ulonglong(&x, (unsigned long long)limit);
    ei_x_encode_atom(&x, "type");
    ei_x_encode_binary(&x, type ? type : "", type ? (long)strlen(type) : 0);
    ei_x_encode_atom(&x, "node");
    ei_x_encode_binary(&x, node ? node : "", node ? (long)strlen(node) : 0);
    ei_x_encode_atom(&x, "severity"); /* the stream's "error" is the store's "critical" */
    const char *s = !sev ? "info" : !strcmp(sev, "error") ? "critical" : sev;
    ei_x_encode_binary(&x, s, (long)strlen(s));
    int rc = x.buffsz < 0 ? BL_ENOMEM
                          : bl__gw_call(r, "beamlet_health", bl_node_name(r->g->n), x.buff, x.index,
                                        store_events_cb);
    ei_x_free(&x);
    if (rc != BL_OK)
        bl__gw_problem(r, 503, "Service Unavailable", "this node runs no health service");
}

void bl__gw_events_query(gw_req *r)
{
    bl__gw *g = r->g;
    const char *since = bl__gw_arg(r, "since"), *until = bl__gw_arg(r, "until"),
               *node = bl__gw_arg(r, "node"), *type = bl__gw_arg(r, "type"),
               *sev = bl__gw_arg(r, "severity"), *lim = bl__gw_arg(r, "limit"),
               *source = bl__gw_arg(r, "source");
    unsigned long long t0 = 0, t1 = ~0ull;
    long limit = 100;
    int store = source && !strcmp(source, "store");
    if (source && !store && strcmp(source, "stream"))
        return bl__gw_problem(r, 400, "Bad Request", "source is stream (the default) or store");
    if ((since && bl__gw_parse_time(since, &t0)) || (until && bl__gw_parse_time(until, &t1)))
        return bl__gw_problem(
            r, 400, "Bad Request",
            "since/until are ms since the epoch or a duration back (30s, 15m, 2h, 7d)");
    if (sev && strcmp(sev, "info") && strcmp(sev, "warn") && strcmp(sev, "error"))
        return bl__gw_problem(r, 400, "Bad Request", "severity is info, warn or error (at least)");
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || limit < 1 || limit > (store ? 10000 : RING_CAP))
            return bl__gw_problem(r, 400, "Bad Request",
                                  store ? "limit is 1..10000" : "limit is 1..1024");
    }
    if (store) return store_events_query(r, t0, t1, node, type, sev, limit);
    json_t *a = json_array();
    for (unsigned i = g->ring_len; i-- > 0 && (long)json_array_size(a) < limit;) {
        const gw_event *e = &g->ring[(g->ring_head + i) % g->ring_cap];
        if (e->time_ms < t0 || e->time_ms > t1) continue;
        if (node && *node && strcmp(node, e->node)) continue;
        if (type && *type && strcmp(type, e->type)) continue;
        if (sev && sev_rank(e->severity) < sev_rank(sev)) continue;
        json_t *o = json_loads(e->json, 0, NULL);
        if (o) json_array_insert_new(a, 0, o);
    }
    bl__gw_reply_json(r, 200, a);
}
