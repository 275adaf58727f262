/* health.c - the `beamlet_health` process: samples node metrics on a timer through the collector
 * thread, keeps the latest sample, answers the gen_server protocol of docs/health.md and hands
 * every sample to C subscribers (include/beamlet/health.h). */
#include "health_int.h"
#include "../runtime/decode.h"
#include "collector.h"
#include "hstore.h"
#include "checks.h"
#include "../services/registry_hooks.h"
#include "beamlet/cluster.h"

#include <jansson.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static health *health_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, BL_HEALTH_NAME) : NULL;
    return p && !p->dead ? bl_proc_data(p) : NULL;
}

static void own_connections(bl_node *n, bl_health_metrics *m)
{
    bl_conn *c, *t;
    m->connections = 0;
    m->queue_bytes = 0;
    HASH_ITER(hh, n->conns, c, t)
    {
        if (c->state != CONN_UP) continue;
        m->connections++;
        m->queue_bytes += bl_sendq_bytes(&c->q);
    }
}

static void reply_metrics(health *h, const bl_from *from)
{
    ei_x_buff x;
    ei_x_new(&x);
    bl__health_encode_metrics(&x, h->n->name, &h->cur, h->interval_ms);
    bl_reply(h->n, from, x.buff, x.index);
    ei_x_free(&x);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    health *h = w->data;
    bl_health_metrics *m = bl__collector_take(h->col);
    if (!m) return;
    own_connections(h->n, m);
    h->cur = *m;
    free(m);
    h->have = 1;
    h->samples++;
    bl__hstore_sample(h->hs, &h->cur);
    bl__view_sampled(h);
    for (int i = 0; i < h->nwaiting; i++)
        reply_metrics(h, &h->waiting[i]);
    h->nwaiting = 0;
    free(h->waiting);
    h->waiting = NULL;
    for (hsub *s = h->subs, *next; s; s = next) {
        next = s->next; /* a callback may unsubscribe itself */
        s->cb(h->n, &h->cur, s->ud);
    }
}

static void on_tick(bl_node *n, void *ud)
{
    (void)n;
    health *h = ud;
    bl__collector_request(h->col);
}

static void trends_done(const bl__trend *t, int n, void *ud)
{
    health *h = ud;
    h->ntrends = 0;
    for (int i = 0; i < n && h->ntrends < 16; i++) {
        snprintf(h->trends[h->ntrends].mount, sizeof(h->trends[0].mount), "%s", t[i].mount);
        h->trends[h->ntrends++].per_day = t[i].per_day;
    }
}

/* once a second: write the store's batch, evaluate the alert rules; every 30 s (from the
 * fifth second) refresh the filesystem growth trends */
static void on_second(bl_node *n, void *ud)
{
    (void)n;
    health *h = ud;
    bl__hstore_tick(h->hs);
    bl__alerts_tick(h->al);
    if (++h->trend_ticks % 30 == 5) bl__hstore_trends(h->hs, trends_done, h);
}

/* the event log: JSON body built with jansson */
void bl__health_record(health *h, const char *node, const char *type, const char *sev,
                       const char *who, json_t *body)
{
    char *txt = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char tid[BL_TRACE_ID_LEN]; /* an event caused by a traced request belongs to its trace */
    const bl_trace *t = bl_trace_current(h->n);
    if (!t || bl_trace_id_hex(t, tid, sizeof(tid)) != BL_OK) tid[0] = 0;
    bl__hstore_event(h->hs, bl_now_ms(), node, type, sev, who, tid[0] ? tid : NULL,
                     txt ? txt : "{}");
    free(txt);
    if (who) bl__hstore_flush(h->hs); /* an admin action: on disk before the reply */
    json_decref(body);
}

/* bl_trace_event: what a sampled trace touched on this node, type "trace" (docs/tracing.md) */
static void trace_event(bl_node *n, const bl_trace *t, const char *what, const char *detail_json,
                        void *ud)
{
    health *h = ud;
    json_t *body = detail_json ? json_loads(detail_json, 0, NULL) : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        body = json_object();
    }
    char span[17];
    for (int i = 0; i < 8; i++)
        snprintf(span + 2 * i, 3, "%02x", t->span_id[i]);
    json_object_set_new(body, "what", json_string(what));
    json_object_set_new(body, "span_id", json_string(span));
    struct timeval tv; /* finer than the event's time_ms: steps of one request in one ms */
    gettimeofday(&tv, NULL);
    json_object_set_new(body, "time_us",
                        json_integer((json_int_t)tv.tv_sec * 1000000 + (json_int_t)tv.tv_usec));
    bl__health_record(h, n->name, "trace", "info", NULL, body);
}

static void on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    (void)n;
    health *h = ud;
    switch (ev->type) {
    case BL_EV_NODE_JOINED:
        bl__health_record(
            h, ev->node, "member", "info", NULL,
            json_pack("{s:s, s:s, s:s}", "event", "joined", "node", ev->node, "role", ev->role));
        break;
    case BL_EV_NODE_STATE_CHANGED: {
        const char *sev = ev->to == BL_MEMBER_FAILED      ? "critical"
                          : ev->to == BL_MEMBER_SUSPECTED ? "warn"
                                                          : "info";
        bl__health_record(h, ev->node, "member", sev, NULL,
                          json_pack("{s:s, s:s, s:s, s:s}", "event", "state_changed", "node",
                                    ev->node, "from", bl_member_state_name(ev->from), "to",
                                    bl_member_state_name(ev->to)));
        break;
    }
    case BL_EV_NODE_LEFT:
        bl__health_record(h, ev->node, "member", "info", NULL,
                          json_pack("{s:s, s:s}", "event", "left", "node", ev->node));
        break;
    case BL_EV_LEADER_CHANGED:
        bl__health_record(h, ev->has_leader ? ev->node : h->n->name, "leader",
                          ev->has_leader ? "info" : "critical", NULL,
                          ev->has_leader
                              ? json_pack("{s:s, s:s, s:I}", "event", "leader_changed", "leader",
                                          ev->node, "term", (json_int_t)ev->term)
                              : json_pack("{s:s, s:n, s:I}", "event", "leader_lost", "leader",
                                          "term", (json_int_t)ev->term));
        break;
    }
}

static int get_u64(const char *buf, int *idx, unsigned long long *out)
{
    return ei_decode_ulonglong(buf, idx, out);
}

/* {events, #{since_ms, until_ms, type, node, severity, limit, trace_id}} */
static int events_call(health *h, const bl_from *from, const char *buf, int idx, ei_x_buff *reply)
{
    bl__event_query q;
    memset(&q, 0, sizeof(q));
    int ar;
    if (ei_decode_map_header(buf, &idx, &ar) < 0) goto bad;
    for (int i = 0; i < ar; i++) {
        char k[MAXATOMLEN_UTF8], sev[16];
        if (ei_decode_atom(buf, &idx, k) < 0) goto bad;
        if (!strcmp(k, "since_ms")) {
            if (get_u64(buf, &idx, &q.since_ms)) goto bad;
        } else if (!strcmp(k, "until_ms")) {
            if (get_u64(buf, &idx, &q.until_ms)) goto bad;
        } else if (!strcmp(k, "limit")) {
            unsigned long long l;
            if (get_u64(buf, &idx, &l) || l > 100000) goto bad;
            q.limit = (unsigned)l;
        } else if (!strcmp(k, "type")) {
            if (bl__term_text(buf, &idx, q.type, sizeof(q.type))) goto bad;
        } else if (!strcmp(k, "node")) {
            if (bl__term_text(buf, &idx, q.node, sizeof(q.node))) goto bad;
        } else if (!strcmp(k, "trace_id")) {
            if (bl__term_text(buf, &idx, q.trace_id, sizeof(q.trace_id)) ||
                !bl_trace_id_valid(q.trace_id))
                goto bad;
        } else if (!strcmp(k, "severity")) {
            if (bl__term_text(buf, &idx, sev, sizeof(sev)) ||
                (q.min_severity = bl__severity_level(sev)) < 0)
                goto bad;
        } else if (bl__skip_term(buf, &idx) < 0) {
            goto bad;
        }
    }
    return bl__hstore_events(h->hs, from, &q, reply);
bad:
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "badarg");
}

/* {history, Metric, SinceMs} | {history, Metric, SinceMs, UntilMs}; Metric <<>>: the names */
static int history_call(health *h, const bl_from *from, const char *buf, int idx, int arity,
                        ei_x_buff *reply)
{
    char metric[96];
    unsigned long long since = 0, until = 0;
    if (bl__term_text(buf, &idx, metric, sizeof(metric)) || get_u64(buf, &idx, &since) ||
        (arity == 4 && get_u64(buf, &idx, &until))) {
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "error");
        return ei_x_encode_atom(reply, "badarg");
    }
    return bl__hstore_history(h->hs, from, metric, since, until, reply);
}

static void set_maintenance(health *h, int on, const char *who)
{
    if (h->maintenance == on && !strcmp(h->maint_who, who)) return;
    h->maintenance = on;
    snprintf(h->maint_who, sizeof(h->maint_who), "%s", on ? who : "");
    h->maint_since = bl_now_ms();
    bl__health_record(h, h->n->name, "admin", on ? "warn" : "info", who,
                      json_pack("{s:s, s:b}", "action", "maintenance", "on", on));
    char v[256];
    snprintf(v, sizeof(v), "%d %llu %s", on, h->maint_since, h->maint_who);
    bl__hstore_kv_set(h->hs, "maintenance", v);
    bl__view_broadcast(h);
    bl_log(h->n, BL_LOG_INFO, "health: maintenance %s (by %s)", on ? "on" : "off", who);
}

/* the maintenance mode kept from the previous run */
static void maintenance_loaded(const char *v, void *ud)
{
    health *h = ud;
    int on = 0, off = 0;
    unsigned long long since = 0;
    if (!v || sscanf(v, "%d %llu %n", &on, &since, &off) < 2 || !on) return;
    h->maintenance = 1;
    h->maint_since = since;
    snprintf(h->maint_who, sizeof(h->maint_who), "%s", v + off);
    bl_log(h->n, BL_LOG_INFO, "health: still in maintenance (set by %s)", h->maint_who);
    bl__view_broadcast(h); /* the members leave this node's services out from now on */
}

/* {maintenance, true | false, Who} */
static int maintenance_call(health *h, const char *buf, int idx, ei_x_buff *reply)
{
    int on;
    char who[128];
    if (ei_decode_boolean(buf, &idx, &on) < 0 || bl__term_text(buf, &idx, who, sizeof(who)) ||
        !who[0]) {
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "error");
        return ei_x_encode_atom(reply, "badarg");
    }
    set_maintenance(h, on, who);
    return ei_x_encode_atom(reply, "ok");
}

static void h_msg(bl_proc *self, const bl_msg *m, void *ud)
{
    (void)self;
    health *h = ud;
    if (!bl__view_on_msg(h, m)) bl__alerts_on_msg(h->al, m);
}

/* {ack, Id, Who} */
static int ack_call(health *h, const char *buf, int idx, ei_x_buff *reply)
{
    unsigned long long id;
    char who[128];
    int rc = ei_decode_ulonglong(buf, &idx, &id) < 0 ||
                     bl__term_text(buf, &idx, who, sizeof(who)) || !who[0]
                 ? BL_EINVAL
                 : bl__alerts_ack(h->al, id, who);
    if (rc == BL_OK) return ei_x_encode_atom(reply, "ok");
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, rc == BL_EINVAL ? "badarg" : "not_found");
}

static int atom_is(const char *buf, int idx, const char *want)
{
    char a[MAXATOMLEN_UTF8];
    return ei_decode_atom(buf, &idx, a) == 0 && !strcmp(a, want);
}

static int h_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                  void *ud)
{
    (void)self;
    health *h = ud;
    if (atom_is(buf, idx, "metrics")) {
        if (h->have) {
            bl__health_encode_metrics(reply, h->n->name, &h->cur, h->interval_ms);
            return 0;
        }
        if (!h->waiting) h->waiting = malloc(sizeof(*h->waiting) * MAX_WAITING);
        if (!h->waiting || h->nwaiting >= MAX_WAITING) {
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, "error");
            return ei_x_encode_atom(reply, "no_sample_yet");
        }
        h->waiting[h->nwaiting++] = *from;
        return 1;
    }
    if (atom_is(buf, idx, "ping")) return ei_x_encode_atom(reply, "pong");
    if (atom_is(buf, idx, "alerts")) {
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        bl__alerts_encode(h->al, reply, 1);
        return 0;
    }
    if (atom_is(buf, idx, "checks")) {
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        bl__checks_encode(h->checks, reply);
        return 0;
    }
    if (atom_is(buf, idx, "alerting")) {
        bl__alerts_encode_info(h->al, reply);
        return 0;
    }
    if (atom_is(buf, idx, "health")) {
        bl__view_encode_health(h, reply);
        return 0;
    }
    if (atom_is(buf, idx, "maintenance")) {
        ei_x_encode_map_header(reply, 3);
        ei_x_encode_atom(reply, "on");
        ei_x_encode_boolean(reply, h->maintenance);
        bl__kv_str(reply, "who", h->maint_who);
        bl__kv_u64(reply, "since_ms", h->maint_since);
        return 0;
    }
    if (atom_is(buf, idx, "store")) {
        bl__hstore_encode_info(h->hs, reply);
        return 0;
    }
    int j = idx, arity;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &j, &arity) == 0 && arity >= 2 &&
        ei_decode_atom(buf, &j, tag) == 0) {
        if (!strcmp(tag, "events") && arity == 2) return events_call(h, from, buf, j, reply);
        if (!strcmp(tag, "maintenance") && arity == 3) return maintenance_call(h, buf, j, reply);
        if (!strcmp(tag, "ack") && arity == 3) return ack_call(h, buf, j, reply);
        if (!strcmp(tag, "history") && (arity == 3 || arity == 4))
            return history_call(h, from, buf, j, arity, reply);
    }
    if (atom_is(buf, idx, "config")) {
        ei_x_encode_map_header(reply, 2);
        bl__kv_u64(reply, "interval_ms", h->interval_ms);
        bl__kv_u64(reply, "samples", h->samples);
        return 0;
    }
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "unknown_request");
}

/* the registry's hook: entries of a node in maintenance are not chosen by calls and lookups */
static int node_excluded(bl_node *n, const char *node, void *ud)
{
    (void)n;
    return bl__view_node_maintenance(ud, node);
}

/* the registry's hook: a registration's check runs here */
static int entry_check(bl_node *n, const char *id, const char *json, void *ud)
{
    (void)n;
    health *h = ud;
    return h->checks ? bl__checks_entry(h->checks, id, json) : -1;
}

static void h_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    health *h = ud;
    bl__registry_set_exclude(h->n, NULL, NULL);
    bl__registry_set_check_hook(h->n, NULL, NULL);
    if (h->timer_id > 0) bl_timer_cancel(h->n, h->timer_id);
    if (h->store_timer > 0) bl_timer_cancel(h->n, h->store_timer);
    if (h->cluster_sub > 0) bl_cluster_unsubscribe(h->n, h->cluster_sub);
    bl__collector_free(h->col);
    if (h->n->trace_hook_ud == h) bl__trace_set_hook(h->n, NULL, NULL);
    if (h->hs) {
        bl__health_record(
            h, h->n->name, "node", "info", NULL,
            json_pack("{s:s, s:s}", "event", "stopped", "reason", reason ? reason : "?"));
        bl__hstore_close(h->hs); /* writes what is buffered */
    }
    bl__checks_free(h->checks);
    bl__view_free(h);
    bl__alerts_free(h->al);
    ev_async_stop(h->n->loop, &h->wake);
    for (hsub *s = h->subs, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    free(h->waiting);
    free(h);
}

int bl_health_start(bl_node *n);

int bl_health_start(bl_node *n)
{
    health *h = calloc(1, sizeof(*h));
    if (!h) return BL_ENOMEM;
    h->n = n;
    h->interval_ms = n->cfg.health_interval_ms ? n->cfg.health_interval_ms : 5000;
    ev_async_init(&h->wake, on_wake);
    h->wake.data = h;
    ev_async_start(n->loop, &h->wake);
    const char *root = getenv("BEAMLET_PROC_ROOT"); /* tests: a fixture tree instead of /proc */
    h->col = bl__collector_new(n->loop, &h->wake, root);
    if (!h->col) {
        ev_async_stop(n->loop, &h->wake);
        free(h);
        return BL_ENOMEM;
    }
    static const bl_proc_ops ops = {
        .on_msg = h_msg, .on_call = h_call, .on_terminate = h_terminate};
    int rc = bl_spawn(n, BL_HEALTH_NAME, &ops, h, &h->proc);
    if (rc != BL_OK) {
        bl__collector_free(h->col);
        ev_async_stop(n->loop, &h->wake);
        free(h);
        return rc;
    }
    bl__collector_request(h->col); /* the first sample right away */
    h->timer_id = bl_timer(n, h->interval_ms, h->interval_ms, on_tick, h);
    char err[256];
    h->al = bl__alerts_new(h, err, sizeof(err));
    if (!h->al) bl_log(n, BL_LOG_ERROR, "alerts: off: %s", err);
    h->store_timer = bl_timer(n, 1000, 1000, on_second, h);
    h->checks = bl__checks_new(h);
    if (h->checks && n->cfg.health_checks[0]) {
        bl_health_check_spec *specs = calloc(64, sizeof(*specs));
        int k = specs ? bl__checks_parse(n->cfg.health_checks, specs, 64, err, sizeof(err)) : -1;
        for (int i = 0; i < k; i++)
            bl__checks_add(h->checks, &specs[i]);
        free(specs);
    }
    h->hs = bl__hstore_open(n);
    if (h->hs) bl__trace_set_hook(n, trace_event, h);
    if (h->hs) {
        bl__hstore_kv_get(h->hs, "maintenance", maintenance_loaded, h);
        bl__health_record(h, n->name, "node", "info", NULL,
                          json_pack("{s:s, s:s, s:s, s:i}", "event", "started", "version",
                                    BL_VERSION, "role", n->cfg.role, "os_pid", (int)getpid()));
    }
    h->cluster_sub = n->cluster ? bl_cluster_subscribe(n, on_cluster, h) : 0;
    bl__registry_set_exclude(n, node_excluded, h); /* BL_ENOPROC without a registry: none */
    bl__registry_set_check_hook(n, entry_check, h);
    return h->timer_id > 0 && h->store_timer >= 0 && h->cluster_sub >= 0 ? BL_OK : BL_ENOMEM;
}

/* ---- public C API ---- */

int bl_health_metrics_get(bl_node *n, bl_health_metrics *out)
{
    health *h = health_of(n);
    if (!h) return BL_ENOPROC;
    if (!h->have) return BL_EBUSY;
    *out = h->cur;
    return BL_OK;
}

int bl_health_subscribe(bl_node *n, bl_health_sample_cb cb, void *ud)
{
    health *h = health_of(n);
    if (!h) return BL_ENOPROC;
    if (!cb) return BL_EINVAL;
    hsub *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->id = ++h->next_sub;
    s->cb = cb;
    s->ud = ud;
    LL_APPEND(h->subs, s);
    return s->id;
}

void bl_health_unsubscribe(bl_node *n, int id)
{
    health *h = health_of(n);
    if (!h) return;
    hsub *s, *t;
    LL_FOREACH_SAFE(h->subs, s, t)
    if (s->id == id) {
        LL_DELETE(h->subs, s);
        free(s);
    }
}

int bl_health_event(bl_node *n, const char *type, const char *severity, const char *who,
                    const char *body_json)
{
    health *h = health_of(n);
    if (!h) return BL_ENOPROC;
    if (!type || !*type || strlen(type) >= 32 || !severity || bl__severity_level(severity) < 0)
        return BL_EINVAL;
    json_t *body = NULL;
    if (body_json && *body_json) {
        body = json_loads(body_json, 0, NULL);
        if (!json_is_object(body)) {
            json_decref(body);
            return BL_EINVAL;
        }
    }
    bl__health_record(h, n->name, type, severity, who, body);
    return BL_OK;
}

int bl_health_set_maintenance(bl_node *n, int on, const char *who)
{
    health *h = health_of(n);
    if (!h) return BL_ENOPROC;
    if (!who || !*who || strlen(who) >= sizeof(h->maint_who)) return BL_EINVAL;
    set_maintenance(h, on != 0, who);
    return BL_OK;
}

int bl_health_in_maintenance(bl_node *n, const char *node)
{
    health *h = health_of(n);
    return h && node ? bl__view_node_maintenance(h, node) : 0;
}

int bl_health_check_add(bl_node *n, const bl_health_check_spec *spec)
{
    health *h = health_of(n);
    if (!h || !h->checks) return BL_ENOPROC;
    if (!spec) return BL_EINVAL;
    return bl__checks_add(h->checks, spec);
}

int bl_health_check_remove(bl_node *n, const char *name)
{
    health *h = health_of(n);
    if (!h || !h->checks) return BL_ENOPROC;
    return name ? bl__checks_remove(h->checks, name) : BL_EINVAL;
}

int bl_health_check_run(bl_node *n, const char *name, bl_health_check_cb cb, void *ud)
{
    health *h = health_of(n);
    if (!h || !h->checks) return BL_ENOPROC;
    if (!name || !cb) return BL_EINVAL;
    return bl__checks_run_now(h->checks, name, cb, ud);
}

void bl_health_check_run_cancel(bl_node *n, int id)
{
    health *h = health_of(n);
    if (h && h->checks) bl__checks_run_cancel(h->checks, id);
}

int bl_health_check_watch(bl_node *n, bl_health_check_cb cb, void *ud)
{
    health *h = health_of(n);
    if (!h || !h->checks) return BL_ENOPROC;
    return cb ? bl__checks_watch(h->checks, cb, ud) : BL_EINVAL;
}

void bl_health_check_unwatch(bl_node *n, int id)
{
    health *h = health_of(n);
    if (h && h->checks) bl__checks_unwatch(h->checks, id);
}
