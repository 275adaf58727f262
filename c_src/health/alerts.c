/* alerts.c - cluster alerts (docs/health.md): rules (rules.c) evaluated once a second by one
 * node per cluster, the decider: the leader, or without one the first active member by name.
 * Every condition gives one alert per (rule, node, instance) - a mount for disk rules -, so a
 * member that fails raises exactly one member_failed alert however many nodes see it. The
 * decider replicates its table to every member ({bl_alerts, Decider, NextId, [Alert]}, on each
 * change and every 5 s), so `beamlet alerts` answers on any node and a new decider continues
 * from it. Each change (firing, resolved, acknowledged) is an event in the decider's log, a
 * pub/sub message on `cluster.alerts` and an HTTP POST to every alert_webhooks URL. Nodes in
 * maintenance raise no alerts (theirs resolve). An acknowledgement made on any node goes to the
 * decider ({bl_alert_ack, Id, Who, AtMs}).
 *
 * Ids are the decider's. While leadership moves, two nodes may decide for a moment and number
 * one alert differently; when a node takes a table in which an alert it held (same rule, node
 * and instance) has another id, the alert keeps the ids it had here as aliases, so an ack by
 * the id a page or a script was shown a moment before still finds it (it answered 404 before),
 * and the decider is sent the current id. */
#include "health_int.h"
#include "../runtime/decode.h"
#include "rules.h"
#include "score.h"
#include "webhook.h"
#include "checks.h"
#include "beamlet/pubsub.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ALERTS 512
#define KEEP_RESOLVED_MS (3600ULL * 1000ULL)
#define REPL_EVERY_S 5.0
#define TOPIC "cluster.alerts"

typedef struct bl__alert {
    UT_hash_handle hh;
    char key[512];
    unsigned long long id;
    char rule[48], node[BL_NODE_LEN], instance[128];
    int severity;
    bl__alert_state state;
    double value, threshold;
    unsigned long long since, fired, resolved, acked_ms;
    char acked_by[128], summary[256], labels[256];
    int seen;
    unsigned long long alias[4]; /* ids this node knew it by under an earlier table; 0: none */
} bl__alert;

typedef struct bl__alerts {
    health *h;
    bl__rule *rules; /* nrules, sized to the set (a full bl__ruleset is 43 KB) */
    int nrules;
    bl__alert *all;
    unsigned long long next_id;
    bl__webhooks *wh;
    int decider;
    ev_tstamp repl_at;
    unsigned long long notified;
} bl__alerts;

static const char *sev_name(int s)
{
    return s >= 2 ? "critical" : "warn";
}

/* ---- the decider ---- */

static int is_decider(bl__alerts *al, bl_member_info *mi, int nm)
{
    bl_node *n = al->h->n;
    if (!n->cluster) return 1;
    unsigned long long term;
    const char *leader = bl_cluster_leader(n, &term);
    if (leader) return bl_is_local_node(n, leader);
    const char *first = NULL;
    for (int i = 0; i < nm; i++)
        if (mi[i].state == BL_MEMBER_ACTIVE && (!first || strcmp(mi[i].node, first) < 0))
            first = mi[i].node;
    return !first || bl_is_local_node(n, first);
}

/* ---- notifications ---- */

static json_t *alert_json(bl__alerts *al, const bl__alert *a, const char *event)
{
    json_t *labels = json_loads(a->labels, 0, NULL);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:s, s:I, s:I, s:I, s:s?, "
                     "s:I, s:s, s:s, s:o}",
                     "event", event, "id", (json_int_t)a->id, "rule", a->rule, "node", a->node,
                     "instance", a->instance, "severity", sev_name(a->severity), "state",
                     bl__alert_state_name(a->state), "value", a->value, "threshold", a->threshold,
                     "summary", a->summary, "since_ms", (json_int_t)a->since, "fired_ms",
                     (json_int_t)a->fired, "resolved_ms", (json_int_t)a->resolved, "acked_by",
                     a->acked_by[0] ? a->acked_by : NULL, "acked_ms", (json_int_t)a->acked_ms,
                     "decided_by", al->h->n->name, "cluster", al->h->n->cfg.cluster, "labels",
                     labels ? labels : json_object());
}

static void encode_alert_map(ei_x_buff *x, const bl__alert *a)
{
    ei_x_encode_map_header(x, 15);
    bl__kv_u64(x, "id", a->id);
    bl__kv_str(x, "rule", a->rule);
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, a->node[0] ? a->node : "undefined");
    bl__kv_str(x, "instance", a->instance);
    ei_x_encode_atom(x, "severity");
    ei_x_encode_atom(x, sev_name(a->severity));
    ei_x_encode_atom(x, "state");
    ei_x_encode_atom(x, bl__alert_state_name(a->state));
    bl__kv_dbl(x, "value", a->value);
    bl__kv_dbl(x, "threshold", a->threshold);
    bl__kv_str(x, "summary", a->summary);
    bl__kv_u64(x, "since_ms", a->since);
    bl__kv_u64(x, "fired_ms", a->fired);
    bl__kv_u64(x, "resolved_ms", a->resolved);
    ei_x_encode_atom(x, "acked_by");
    if (a->acked_by[0])
        ei_x_encode_binary(x, a->acked_by, (long)strlen(a->acked_by));
    else
        ei_x_encode_atom(x, "undefined");
    bl__kv_u64(x, "acked_ms", a->acked_ms);
    bl__kv_str(x, "labels", a->labels);
}

static void notify(bl__alerts *al, bl__alert *a, const char *event)
{
    health *h = al->h;
    al->notified++;
    json_t *j = alert_json(al, a, event);
    bl__health_record(h, a->node[0] ? a->node : h->n->name, "alert",
                      !strcmp(event, "firing") ? sev_name(a->severity) : "info",
                      !strcmp(event, "acked") ? a->acked_by : NULL, json_incref(j));
    /* pub/sub: the alert map as the payload */
    ei_x_buff x;
    ei_x_new(&x);
    encode_alert_map(&x, a);
    int rc = bl_pubsub_publish(h->n, TOPIC, x.buff, x.index, BL_PRIO_HIGH, 0, NULL, 0);
    if (rc != BL_OK && rc != BL_ENOPROC)
        bl_log(h->n, BL_LOG_WARN, "alerts: publish on %s: %s", TOPIC, bl_strerror(rc));
    ei_x_free(&x);
    /* webhooks */
    const char *urls = h->n->cfg.alert_webhooks;
    if (urls[0]) {
        char *body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        char buf[sizeof(h->n->cfg.alert_webhooks)];
        snprintf(buf, sizeof(buf), "%s", urls);
        char *save = NULL;
        for (char *u = strtok_r(buf, ",", &save); u && body; u = strtok_r(NULL, ",", &save)) {
            while (*u == ' ')
                u++;
            if (!*u) continue;
            if (!al->wh) al->wh = bl__webhooks_new(h->n, h->n->loop);
            if (al->wh) bl__webhooks_post(al->wh, u, body);
        }
        free(body);
    }
    json_decref(j);
    bl_log(h->n, a->severity >= 2 && !strcmp(event, "firing") ? BL_LOG_WARN : BL_LOG_INFO,
           "alert %llu %s: %s", a->id, event, a->summary);
}

/* ---- replication ---- */

static void kv_bin(ei_x_buff *x, const char *s)
{
    ei_x_encode_binary(x, s, (long)strlen(s));
}

static void replicate(bl__alerts *al)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "bl_alerts");
    ei_x_encode_atom(&x, al->h->n->name);
    ei_x_encode_ulonglong(&x, al->next_id);
    bl__alert *a, *t;
    HASH_ITER(hh, al->all, a, t)
    {
        ei_x_encode_list_header(&x, 1);
        ei_x_encode_tuple_header(&x, 15);
        ei_x_encode_ulonglong(&x, a->id);
        kv_bin(&x, a->rule);
        kv_bin(&x, a->node);
        kv_bin(&x, a->instance);
        ei_x_encode_long(&x, a->severity);
        ei_x_encode_long(&x, a->state);
        ei_x_encode_double(&x, a->value);
        ei_x_encode_double(&x, a->threshold);
        ei_x_encode_ulonglong(&x, a->since);
        ei_x_encode_ulonglong(&x, a->fired);
        ei_x_encode_ulonglong(&x, a->resolved);
        kv_bin(&x, a->acked_by);
        ei_x_encode_ulonglong(&x, a->acked_ms);
        kv_bin(&x, a->summary);
        kv_bin(&x, a->labels);
    }
    ei_x_encode_empty_list(&x);
    bl_cluster_send_peers(al->h->proc, BL_HEALTH_NAME, &x, -1);
    ei_x_free(&x);
    al->repl_at = ev_now(al->h->n->loop);
}

static void key_of(char *key, size_t cap, const char *rule, const char *node, const char *inst)
{
    snprintf(key, cap, "%s|%s|%s", rule, node, inst);
}

static void clear_all(bl__alerts *al)
{
    bl__alert *a, *t;
    HASH_ITER(hh, al->all, a, t)
    {
        HASH_DEL(al->all, a);
        free(a);
    }
}

static void on_table(bl__alerts *al, const bl_msg *m, const char *buf, int idx)
{
    char from[MAXATOMLEN_UTF8];
    unsigned long long next_id;
    if (ei_decode_atom(buf, &idx, from) < 0 || ei_decode_ulonglong(buf, &idx, &next_id) < 0) return;
    if (!m->has_sender || strcmp(bl_pid_node(&m->sender), from) ||
        !bl_cluster_is_peer(al->h->n, from))
        return;
    /* ids go on from the highest any decider gave, so the ones given during an overlap are
     * not given again to other alerts */
    if (next_id > al->next_id) al->next_id = next_id;
    if (al->decider) return; /* ours is the table (a short overlap while leadership moves) */
    bl__alert *fresh = NULL;
    int type, size, count = 0;
    while (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        int n;
        if (ei_decode_list_header(buf, &idx, &n) < 0) goto bad;
        for (int i = 0; i < n; i++) {
            int ar;
            long sev, st;
            bl__alert *a = calloc(1, sizeof(*a));
            if (!a) goto bad;
            if (ei_decode_tuple_header(buf, &idx, &ar) < 0 || ar != 15 ||
                ei_decode_ulonglong(buf, &idx, &a->id) < 0 ||
                bl__term_bin(buf, &idx, a->rule, sizeof(a->rule)) ||
                bl__term_bin(buf, &idx, a->node, sizeof(a->node)) ||
                bl__term_bin(buf, &idx, a->instance, sizeof(a->instance)) ||
                ei_decode_long(buf, &idx, &sev) < 0 || ei_decode_long(buf, &idx, &st) < 0 ||
                st < 0 || st > 2 || ei_decode_double(buf, &idx, &a->value) < 0 ||
                ei_decode_double(buf, &idx, &a->threshold) < 0 ||
                ei_decode_ulonglong(buf, &idx, &a->since) < 0 ||
                ei_decode_ulonglong(buf, &idx, &a->fired) < 0 ||
                ei_decode_ulonglong(buf, &idx, &a->resolved) < 0 ||
                bl__term_bin(buf, &idx, a->acked_by, sizeof(a->acked_by)) ||
                ei_decode_ulonglong(buf, &idx, &a->acked_ms) < 0 ||
                bl__term_bin(buf, &idx, a->summary, sizeof(a->summary)) ||
                bl__term_bin(buf, &idx, a->labels, sizeof(a->labels)) || ++count > MAX_ALERTS) {
                free(a);
                goto bad;
            }
            a->severity = (int)sev;
            a->state = (bl__alert_state)st;
            key_of(a->key, sizeof(a->key), a->rule, a->node, a->instance);
            bl__alert *dup = NULL;
            HASH_FIND_STR(fresh, a->key, dup);
            if (dup) {
                free(a);
                continue;
            }
            /* known here by another id: keep that one (and its own aliases) as aliases */
            bl__alert *old = NULL;
            HASH_FIND_STR(al->all, a->key, old);
            if (old && old->id != a->id) {
                a->alias[0] = old->id;
                for (int k = 0; k < 3; k++)
                    a->alias[k + 1] = old->alias[k] != a->id ? old->alias[k] : 0;
            } else if (old) {
                memcpy(a->alias, old->alias, sizeof(a->alias));
            }
            HASH_ADD_STR(fresh, key, a);
        }
    }
    clear_all(al);
    al->all = fresh;
    if (next_id > al->next_id) al->next_id = next_id;
    return;
bad:
    bl_log(al->h->n, BL_LOG_WARN, "alerts: malformed alert table from %s dropped", from);
    bl__alert *a, *t;
    HASH_ITER(hh, fresh, a, t)
    {
        HASH_DEL(fresh, a);
        free(a);
    }
}

/* ---- evaluation ---- */

typedef struct eval_ctx {
    bl__alerts *al;
    unsigned long long now;
    int changed;
} eval_ctx;

static void observe(eval_ctx *c, const bl__rule *r, const char *node, const char *inst,
                    double value, int holds_now_new, const char *summary)
{
    bl__alerts *al = c->al;
    char key[512];
    key_of(key, sizeof(key), r->name, node, inst);
    bl__alert *a = NULL;
    HASH_FIND_STR(al->all, key, a);
    if (a && a->state == BL__ALERT_RESOLVED) {
        if (!holds_now_new) {
            a->seen = 1;
            return;
        }
        HASH_DEL(al->all, a); /* it is back: a new alert */
        free(a);
        a = NULL;
    }
    if (!a) {
        if (!holds_now_new || HASH_COUNT(al->all) >= MAX_ALERTS) return;
        a = calloc(1, sizeof(*a));
        if (!a) return;
        snprintf(a->key, sizeof(a->key), "%s", key);
        a->id = ++al->next_id;
        snprintf(a->rule, sizeof(a->rule), "%s", r->name);
        snprintf(a->node, sizeof(a->node), "%s", node);
        snprintf(a->instance, sizeof(a->instance), "%s", inst);
        a->severity = r->severity;
        a->threshold = r->threshold;
        snprintf(a->labels, sizeof(a->labels), "%s", r->labels);
        a->value = value;
        snprintf(a->summary, sizeof(a->summary), "%s", r->summary[0] ? r->summary : summary);
        bl__alert_begin(r, c->now, &a->state, &a->since, &a->fired);
        HASH_ADD_STR(al->all, key, a);
        a->seen = 1;
        c->changed = 1;
        if (a->state == BL__ALERT_FIRING) notify(al, a, "firing");
        return;
    }
    a->seen = 1;
    /* a firing alert holds while the value stays within the clear margin */
    int holds = r->kind == BL__RULE_METRIC ? bl__rule_holds(r, value, a->state == BL__ALERT_FIRING)
                                           : holds_now_new;
    if (holds) {
        a->value = value;
        snprintf(a->summary, sizeof(a->summary), "%s", r->summary[0] ? r->summary : summary);
    }
    int ch = bl__alert_step(r, holds, c->now, &a->state, a->since, &a->fired, &a->resolved);
    if (ch < 0) {
        HASH_DEL(al->all, a);
        free(a);
        c->changed = 1;
    } else if (ch > 0) {
        c->changed = 1;
        notify(al, a, a->state == BL__ALERT_FIRING ? "firing" : "resolved");
    }
}

/* one node's metrics against every metric rule */
static void eval_node(eval_ctx *c, const char *node, const char *const *mounts, const double *used,
                      int nmounts, double mem_avail, double load1pc, double load5pc, double cpu,
                      int have_mem)
{
    char sum[256];
    for (int i = 0; i < c->al->nrules; i++) {
        const bl__rule *r = &c->al->rules[i];
        if (r->kind != BL__RULE_METRIC) continue;
        if (!strcmp(r->what, "disk.used_percent")) {
            for (int k = 0; k < nmounts; k++) {
                if (r->mount[0] && strcmp(r->mount, mounts[k])) continue;
                snprintf(sum, sizeof(sum), "%s on %s is %.0f%% full (threshold %g%%)", mounts[k],
                         node, used[k], r->threshold);
                observe(c, r, node, mounts[k], used[k], bl__rule_holds(r, used[k], 0), sum);
            }
            continue;
        }
        double v;
        const char *what;
        if (!strcmp(r->what, "memory.available_percent")) {
            if (!have_mem) continue;
            v = mem_avail, what = "memory available";
        } else if (!strcmp(r->what, "load.load1_per_cpu")) {
            v = load1pc, what = "1 min load per CPU";
        } else if (!strcmp(r->what, "load.load5_per_cpu")) {
            v = load5pc, what = "5 min load per CPU";
        } else {
            v = cpu, what = "CPU busy %";
        }
        snprintf(sum, sizeof(sum), "%s on %s is %.2f (threshold %g)", what, node, v, r->threshold);
        observe(c, r, node, "", v, bl__rule_holds(r, v, 0), sum);
    }
}

struct chk_ctx {
    eval_ctx *c;
    const bl__rule *r;
    const char *node;
};

static void chk_observe(const char *name, int status, void *ud)
{
    struct chk_ctx *cc = ud;
    char sum[256];
    snprintf(sum, sizeof(sum), "check %s on %s is critical", name, cc->node);
    observe(cc->c, cc->r, cc->node, name, status == 2, status == 2, sum);
}

static void evaluate(bl__alerts *al, bl_member_info *mi, int nm)
{
    health *h = al->h;
    bl_node *n = h->n;
    eval_ctx c = {.al = al, .now = bl_now_ms()};
    bl__alert *a, *t;
    HASH_ITER(hh, al->all, a, t) a->seen = 0;
    /* metrics of every member not in maintenance */
    for (int i = 0; i < nm; i++) {
        const char *node = mi[i].node;
        if (bl_is_local_node(n, node)) {
            if (h->maintenance || !h->have) continue;
            const char *mounts[BL_HEALTH_MAX_FS];
            double used[BL_HEALTH_MAX_FS];
            int k = 0;
            for (; k < h->cur.nfs; k++) {
                mounts[k] = h->cur.fs[k].mount;
                used[k] = h->cur.fs[k].used_percent;
            }
            double cpus = h->cur.ncpu ? h->cur.ncpu : 1;
            eval_node(&c, node, mounts, used, k, h->eval.mem_available_percent,
                      h->cur.load1 / cpus, h->cur.load5 / cpus, h->cur.cpu_pct.busy,
                      h->cur.mem_total > 0);
        } else if (mi[i].state == BL_MEMBER_ACTIVE) {
            bl__peer *p = bl__view_peer(h, node);
            if (!p || p->maintenance) continue;
            double cpus = p->ncpu ? p->ncpu : 1;
            eval_node(&c, node, p->mounts, p->used, p->nmounts, p->mem_avail,
                      p->load1 / cpus, p->load5 / cpus, p->cpu, 1);
        }
    }
    /* conditions */
    bl__score_member *sm = calloc((size_t)(nm > 0 ? nm : 1), sizeof(*sm));
    int coords = 0;
    for (int i = 0; sm && i < nm; i++) {
        sm[i].state = mi[i].state;
        sm[i].coordinator = !strcmp(mi[i].role, "coordinator");
        coords += sm[i].coordinator;
        sm[i].status = BL__NODE_HEALTHY;
        sm[i].maintenance = bl__view_node_maintenance(h, mi[i].node);
    }
    unsigned long long term;
    const char *leader = n->cluster ? bl_cluster_leader(n, &term) : NULL;
    bl__score_in in = {.nmembers = nm, .members = sm, .has_leader = leader != NULL};
    bl__score_out so;
    bl__cluster_score(&in, &so);
    char sum[256];
    for (int i = 0; i < al->nrules; i++) {
        const bl__rule *r = &al->rules[i];
        if (r->kind != BL__RULE_CONDITION) continue;
        if (!strcmp(r->what, "member_failed")) {
            for (int k = 0; k < nm; k++) {
                int failed = mi[k].state == BL_MEMBER_FAILED && !(sm && sm[k].maintenance);
                snprintf(sum, sizeof(sum), "member %s (%s) failed", mi[k].node, mi[k].role);
                observe(&c, r, mi[k].node, "", failed, failed, sum);
            }
        } else if (!strcmp(r->what, "no_leader")) {
            int bad = so.leader_needed && !leader;
            snprintf(sum, sizeof(sum), "no leader among %d coordinators", coords);
            observe(&c, r, "", "", bad, bad, sum);
        } else if (!strcmp(r->what, "quorum_lost")) {
            snprintf(sum, sizeof(sum), "quorum lost: a majority of the %s is unreachable",
                     coords ? "coordinators" : "members");
            observe(&c, r, "", "", !so.quorum, !so.quorum, sum);
        } else if (!strcmp(r->what, "service_critical")) {
            for (int k = 0; k < nm; k++) {
                if (sm && sm[k].maintenance) continue;
                if (bl_is_local_node(n, mi[k].node)) {
                    struct chk_ctx cc = {&c, r, mi[k].node};
                    bl__checks_each(h->checks, chk_observe, &cc);
                    continue;
                }
                bl__peer *p = mi[k].state == BL_MEMBER_ACTIVE ? bl__view_peer(h, mi[k].node) : NULL;
                for (int q = 0; p && q < p->nchecks; q++) {
                    int crit = p->check_status[q] == 2;
                    snprintf(sum, sizeof(sum), "check %s on %s is critical", p->check_names[q],
                             mi[k].node);
                    observe(&c, r, mi[k].node, p->check_names[q], crit, crit, sum);
                }
            }
        } else if (!strcmp(r->what, "node_critical")) {
            for (int k = 0; k < nm; k++) {
                bl__peer *p = bl_is_local_node(n, mi[k].node) ? NULL : bl__view_peer(h, mi[k].node);
                int crit = bl_is_local_node(n, mi[k].node)
                               ? !h->maintenance && h->eval.status == BL__NODE_CRITICAL
                               : p && !p->maintenance && p->status == BL__NODE_CRITICAL;
                snprintf(sum, sizeof(sum), "node %s is critical", mi[k].node);
                observe(&c, r, mi[k].node, "", crit, crit, sum);
            }
        }
    }
    free(sm);
    /* alerts nobody observed (a node gone, in maintenance, a rule removed): resolve or drop */
    HASH_ITER(hh, al->all, a, t)
    {
        if (a->seen) {
            if (a->state == BL__ALERT_RESOLVED && c.now - a->resolved > KEEP_RESOLVED_MS) {
                HASH_DEL(al->all, a);
                free(a);
                c.changed = 1;
            }
            continue;
        }
        if (a->state == BL__ALERT_PENDING) {
            HASH_DEL(al->all, a);
            free(a);
            c.changed = 1;
        } else if (a->state == BL__ALERT_FIRING) {
            a->state = BL__ALERT_RESOLVED;
            a->resolved = c.now;
            c.changed = 1;
            notify(al, a, "resolved");
        } else if (c.now - a->resolved > KEEP_RESOLVED_MS) {
            HASH_DEL(al->all, a);
            free(a);
            c.changed = 1;
        }
    }
    if (c.changed) replicate(al);
}

void bl__alerts_tick(bl__alerts *al)
{
    if (!al) return;
    bl_node *n = al->h->n;
    int nm = 0;
    bl_member_info *mi = bl__health_members(n, &nm);
    if (!mi) return;
    int was = al->decider;
    al->decider = is_decider(al, mi, nm);
    if (al->decider && !was)
        bl_log(n, BL_LOG_INFO, "alerts: this node decides the cluster's alerts now");
    if (al->decider) {
        evaluate(al, mi, nm);
        if (ev_now(n->loop) - al->repl_at >= REPL_EVERY_S) replicate(al);
    }
    free(mi);
}

/* ---- acknowledgements ---- */

/* by its id, else by an id it had here before (an alias; see the top) */
static bl__alert *by_id(bl__alerts *al, unsigned long long id)
{
    bl__alert *a, *t;
    HASH_ITER(hh, al->all, a, t)
    if (a->id == id) return a;
    if (id) HASH_ITER(hh, al->all, a, t)
        {
            for (int k = 0; k < 4; k++)
                if (a->alias[k] == id) return a;
        }
    return NULL;
}

static int apply_ack(bl__alerts *al, unsigned long long id, const char *who, unsigned long long at)
{
    bl__alert *a = by_id(al, id);
    if (!a) return BL_ENOPROC;
    if (a->acked_by[0]) return BL_OK; /* the first acknowledgement counts */
    snprintf(a->acked_by, sizeof(a->acked_by), "%s", who);
    a->acked_ms = at;
    if (al->decider) {
        notify(al, a, "acked");
        replicate(al);
    }
    return BL_OK;
}

int bl__alerts_ack(bl__alerts *al, unsigned long long id, const char *who)
{
    if (!al) return BL_ENOPROC;
    unsigned long long at = bl_now_ms();
    bl__alert *a = by_id(al, id);
    if (!a) return BL_ENOPROC;
    id = a->id; /* the current id, which the decider knows */
    if (!al->decider) { /* the decider records it and tells everyone */
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 4);
        ei_x_encode_atom(&x, "bl_alert_ack");
        ei_x_encode_ulonglong(&x, id);
        ei_x_encode_binary(&x, who, (long)strlen(who));
        ei_x_encode_ulonglong(&x, at);
        bl_cluster_send_peers(al->h->proc, BL_HEALTH_NAME, &x, -1);
        ei_x_free(&x);
    }
    return apply_ack(al, id, who, at);
}

int bl__alerts_on_msg(bl__alerts *al, const bl_msg *m)
{
    if (!al) return 0;
    const char *buf = m->buf;
    int idx = m->index, ar;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &ar) < 0 || ei_decode_atom(buf, &idx, tag) < 0) return 0;
    if (!strcmp(tag, "bl_alerts") && ar == 4) {
        on_table(al, m, buf, idx);
        return 1;
    }
    if (!strcmp(tag, "bl_alert_ack") && ar == 4) {
        unsigned long long id, at;
        char who[128];
        if (ei_decode_ulonglong(buf, &idx, &id) == 0 &&
            bl__term_bin(buf, &idx, who, sizeof(who)) == 0 &&
            ei_decode_ulonglong(buf, &idx, &at) == 0 && m->has_sender &&
            bl_cluster_is_peer(al->h->n, bl_pid_node(&m->sender)) && al->decider)
            apply_ack(al, id, who, at);
        return 1;
    }
    return 0;
}

/* ---- queries ---- */

static int by_id_cmp(bl__alert *a, bl__alert *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}

void bl__alerts_encode(bl__alerts *al, ei_x_buff *x, int all)
{
    if (al) {
        HASH_SORT(al->all, by_id_cmp);
        bl__alert *a, *t;
        HASH_ITER(hh, al->all, a, t)
        {
            if (!all && a->state == BL__ALERT_RESOLVED) continue;
            ei_x_encode_list_header(x, 1);
            encode_alert_map(x, a);
        }
    }
    ei_x_encode_empty_list(x);
}

unsigned bl__alerts_firing(bl__alerts *al)
{
    unsigned k = 0;
    bl__alert *a, *t;
    if (al) HASH_ITER(hh, al->all, a, t) k += a->state == BL__ALERT_FIRING;
    return k;
}

void bl__alerts_encode_info(bl__alerts *al, ei_x_buff *x)
{
    bl__webhook_stats ws = {0};
    if (al && al->wh) bl__webhooks_stats(al->wh, &ws);
    ei_x_encode_map_header(x, 8);
    ei_x_encode_atom(x, "decider");
    ei_x_encode_boolean(x, al && al->decider);
    bl__kv_u64(x, "rules", al ? (unsigned long long)al->nrules : 0);
    bl__kv_u64(x, "notified", al ? al->notified : 0);
    bl__kv_u64(x, "webhooks_posted", ws.posted);
    bl__kv_u64(x, "webhooks_delivered", ws.delivered);
    bl__kv_u64(x, "webhooks_retried", ws.retried);
    bl__kv_u64(x, "webhooks_dropped", ws.dropped);
    bl__kv_u64(x, "webhooks_queued", ws.queued);
}

/* ---- lifecycle ---- */

/* Build the rule set of cfg (in a full-size set, freed) and keep only its rules. 0, or -1 with
 * the reason in err and the old rules kept. */
static int load_rules(bl__alerts *al, const bl_config *cfg, char *err, size_t errlen)
{
    bl__ruleset *fresh = malloc(sizeof(*fresh));
    if (!fresh) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (bl__rules_build(cfg, fresh, err, errlen) < 0) {
        free(fresh);
        return -1;
    }
    bl__rule *r = malloc(sizeof(*r) * (size_t)(fresh->n ? fresh->n : 1));
    if (!r) {
        free(fresh);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(r, fresh->r, sizeof(*r) * (size_t)fresh->n);
    free(al->rules);
    al->rules = r;
    al->nrules = fresh->n;
    free(fresh);
    return 0;
}

/* thresholds and alert_rules are live (cluster configuration, SIGHUP): rebuild the rule set;
 * a set that does not build (it was checked before it was accepted) leaves the old one */
static void alerts_cfg_hook(bl_node *n, const char *key, void *ud)
{
    bl__alerts *al = ud;
    if (strcmp(key, "alert_rules") && !strstr(key, "_warn_") && !strstr(key, "_crit_")) return;
    char err[256];
    if (load_rules(al, &n->cfg, err, sizeof(err)) == 0)
        bl_log(n, BL_LOG_INFO, "alerts: %d rules after %s changed", al->nrules, key);
    else
        bl_log(n, BL_LOG_WARN, "alerts: rules kept, %s: %s", key, err);
}

bl__alerts *bl__alerts_new(health *h, char *err, size_t errlen)
{
    bl__alerts *al = calloc(1, sizeof(*al));
    if (!al) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    al->h = h;
    if (load_rules(al, &h->n->cfg, err, errlen) < 0 ||
        bl__node_on_config(h->n, alerts_cfg_hook, al) != BL_OK) {
        free(al->rules);
        free(al);
        return NULL;
    }
    return al;
}

void bl__alerts_free(bl__alerts *al)
{
    if (!al) return;
    bl__node_off_config(al->h->n, alerts_cfg_hook, al);
    clear_all(al);
    bl__webhooks_free(al->wh);
    free(al->rules);
    free(al);
}

int bl__alerts_stale(bl__alerts *al, unsigned long long age_ms, char *out, size_t cap)
{
    int k = 0;
    size_t off = 0;
    unsigned long long now = bl_now_ms();
    bl__alert *a, *t;
    out[0] = 0;
    if (!al) return 0;
    HASH_ITER(hh, al->all, a, t)
    {
        if (a->state != BL__ALERT_FIRING || a->acked_by[0] || now - a->fired < age_ms) continue;
        k++;
        if (off < cap)
            off += (size_t)snprintf(out + off, cap - off, "%s%llu", off ? ", " : "", a->id);
    }
    return k;
}
