/* pubsub.c - topic publish/subscribe: the `beamlet_pubsub` process (docs/services.md).
 *
 * A subscription lives on the node it was made on (a C callback, or a BEAM pid linked to this
 * process). Each node replicates its own subscriptions (id + pattern) to every beamlet member
 * through the replicated-table layer (repl.h):
 *   {bl_ps_add, Owner, [{Id, Pattern}]}   new subscriptions
 *   {bl_ps_del, Owner, [Id]}              removed ones
 *   {bl_ps_sync, Owner, [{Id, Pattern}]}  the owner's whole set (replaces the receiver's copy)
 *   {bl_ps_want, Node}, {bl_ps_digest, Owner, Proto, Count, Digest}   repair
 * A publish enqueues on every matching local subscription and sends one
 *   {bl_ps_msg, Origin, Topic, Payload, Id, Prio, TtlMs, PublishedAt}
 * to each other node holding a matching subscription, which enqueues on its local matches.
 * Queues are per subscription, by priority; they drain from a zero-delay timer (so a burst is
 * ordered by priority), skip expired messages (counted), stop while paused or while the
 * subscriber's connection is congested (retried by the 100 ms tick). Delivery is at-most-once.
 *
 * Durable subscriptions (at-least-once, exactly-once; BEAM pids with a name) are replicated as
 * {Id, Pattern, Name} and kept by the other nodes until unsubscribed. A durable publish writes one
 * SQLite outbox row per matching durable subscription before it is acknowledged, sends
 *   {bl_ps_amsg, Origin, Topic, Payload, Id, Prio, TtlMs, PublishedAt, Name}
 * and resends with backoff until {bl_ps_ack, Node, Name, Id} comes back (from the subscriber's
 * {ack, SubId, Id}, or for exactly-once from the subscription's node once it recorded the id in
 * its persisted de-duplication window). Rows are reloaded after a restart.
 *
 * Membership and leader events of this node's cluster view are published locally (each node
 * sees the same events) on `cluster.events`. */
#include "pubsub_int.h"
#include "../runtime/decode.h"
#include "dispatch.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const bl__ps_qos_names[3] = {"at_most_once", "at_least_once", "exactly_once"};
const char *const bl__ps_prio_names[3] = {"high", "normal", "low"};

static ps *ps_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, PS_NAME) : NULL;
    return p && !p->dead ? bl_proc_data(p) : NULL;
}

bl_pubsub_counters *bl__ps_counters(ps *s, const char *topic)
{
    tcount *t = NULL;
    HASH_FIND_STR(s->counts, topic, t);
    if (t) return &t->c;
    if (s->ncounts >= MAX_TOPICS) {
        topic = OVERFLOW_TOPIC;
        HASH_FIND_STR(s->counts, topic, t);
        if (t) return &t->c;
    }
    t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    HASH_ADD_STR(s->counts, topic, t);
    s->ncounts++;
    return &t->c;
}

void bl__ps_msg_unref(psmsg *m)
{
    if (m && --m->refs == 0) free(m);
}

lsub *bl__ps_find_sub(ps *s, int id)
{
    lsub *l;
    DL_FOREACH(s->subs, l)
        if (l->id == id) return l;
    return NULL;
}

void bl__ps_queue_clear(lsub *l)
{
    for (int p = 0; p < 3; p++) {
        qitem *q, *t;
        LL_FOREACH_SAFE(l->qh[p], q, t) {
            bl__ps_msg_unref(q->m);
            free(q);
        }
        l->qh[p] = l->qt[p] = NULL;
    }
    l->qlen = 0;
}

/* ---- replication ---- */

/* Encoders OR every ei_x_* result (0 or -1) into rc and check it once at the end: a failed call
 * leaves the buffer valid, so going on is safe, and nothing half-encoded is sent. */
static int encode_sub(ei_x_buff *x, const lsub *l)
{
    int rc = ei_x_encode_tuple_header(x, l->name[0] ? 3 : 2);
    rc |= ei_x_encode_long(x, l->id);
    rc |= ei_x_encode_binary(x, l->pattern, (long)strlen(l->pattern));
    if (l->name[0]) rc |= ei_x_encode_binary(x, l->name, (long)strlen(l->name));
    return rc;
}

static rsub *find_rsub(ps *s, const char *node, int id)
{
    rsub *r;
    DL_FOREACH(s->remote, r)
        if (r->id == id && !strcmp(r->node, node)) return r;
    return NULL;
}

static rsub *find_rsub_name(ps *s, const char *node, const char *name)
{
    rsub *r;
    DL_FOREACH(s->remote, r)
        if (!strcmp(r->name, name) && !strcmp(r->node, node)) return r;
    return NULL;
}

static void rsub_del(ps *s, rsub *r)
{
    bl__repl_unlink(s->repl, &r->link);
    DL_DELETE(s->remote, r);
    s->nremote--;
    free(r);
}

static int get_atom(const char *buf, int *idx, char *out)
{
    return ei_decode_atom(buf, idx, out) < 0 ? -1 : 0;
}

/* ---- on the replicated-table layer ---- */

#define LSUB(l) ((const lsub *)(const void *)((const char *)(l)-offsetof(lsub, link)))
#define RSUB(l) ((rsub *)(void *)((char *)(l)-offsetof(rsub, link)))

static int r_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return encode_sub(x, LSUB(l));
}

static int r_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return ei_x_encode_long(x, LSUB(l)->id);
}

static int r_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    ps *s = svc;
    int ar;
    long id;
    char pat[BL_PUBSUB_TOPIC_LEN], name[NAME_LEN] = "";
    *out = NULL;
    if (ei_decode_tuple_header(buf, idx, &ar) < 0 || (ar != 2 && ar != 3) ||
        ei_decode_long(buf, idx, &id) < 0 || id <= 0 || id > 0x7fffffff ||
        bl__term_text(buf, idx, pat, sizeof(pat)) < 0 || !bl_pubsub_pattern_valid(pat) ||
        (ar == 3 && (bl__term_text(buf, idx, name, sizeof(name)) < 0 || !name[0])))
        return -1;
    rsub *r = name[0] ? find_rsub_name(s, owner, name) : find_rsub(s, owner, (int)id);
    if (!r) {
        if (s->nremote >= MAX_REMOTE_SUBS) {
            bl_log(s->n, BL_LOG_WARN, "pubsub: too many remote subscriptions; %s dropped", pat);
            return 0;
        }
        if (!(r = calloc(1, sizeof(*r)))) return 0;
        snprintf(r->node, sizeof(r->node), "%s", owner);
        DL_APPEND(s->remote, r);
        s->nremote++;
    }
    snprintf(r->pattern, sizeof(r->pattern), "%s", pat);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->id = (int)id;
    *out = &r->link;
    return 0;
}

static int r_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    long id;
    if (ei_decode_long(buf, idx, &id) < 0) return -1;
    rsub *r = id > 0 && id <= 0x7fffffff ? find_rsub(svc, owner, (int)id) : NULL;
    *out = r ? &r->link : NULL;
    return 0;
}

/* A durable subscription stays known while its node is away or its subscriber is gone (its
 * messages are kept for it); only its owner's del (unsubscribed for good) removes it. */
static int r_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    ps *s = svc;
    rsub *r = RSUB(l);
    if (r->name[0] && why != BL__REPL_DELETED) return 1;
    if (r->name[0]) bl__ps_drop_pends(s, r->node, r->name);
    rsub_del(s, r);
    return 0;
}

static void r_owner_gone(void *svc, const char *owner, unsigned n, const char *why)
{
    ps *s = svc;
    if (n) bl_log(s->n, BL_LOG_INFO, "pubsub: %u subscriptions of %s removed (%s)", n, owner, why);
}

static const bl__repl_ops pubsub_repl = {
    .proc_name = PS_NAME,
    .tag_add = "bl_ps_add",
    .tag_del = "bl_ps_del",
    .tag_sync = "bl_ps_sync",
    .tag_want = "bl_ps_want",
    .tag_digest = "bl_ps_digest",
    .encode = r_encode,
    .encode_key = r_encode_key,
    .upsert = r_upsert,
    .find = r_find,
    .remove = r_remove,
    .owner_gone = r_owner_gone,
};

/* ---- traces (docs/tracing.md) ---- */

/* Node-to-node messages carry the publisher's trace as one more element, a traceparent binary,
 * only when there is one: a message without a trace keeps the older shape. */
int bl__ps_get_trace(const char *buf, int *idx, bl_trace *out)
{
    char tp[BL_TRACEPARENT_LEN + 8];
    long len;
    int type, size;
    out->valid = 0;
    if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_BINARY_EXT ||
        (size_t)size >= sizeof(tp) || ei_decode_binary(buf, idx, tp, &len) < 0)
        return -1;
    bl_trace_parse(tp, (size_t)len, out); /* a bad one: delivered without a trace */
    return 0;
}

int bl__ps_put_trace(ei_x_buff *x, const bl_trace *t)
{
    char tp[BL_TRACEPARENT_LEN];
    if (bl_trace_format(t, tp, sizeof(tp)) != BL_OK) return -1;
    return ei_x_encode_binary(x, tp, (long)strlen(tp));
}

/* ---- publishing ---- */

/* Send m to every other node with a matching subscription (durable ones too when !skip_durable),
 * once per node. */
static void fan_out_remote(ps *s, psmsg *m, const char *payload, int len, int skip_durable)
{
    bl_node *n = s->n;
    ei_x_buff x;
    int built = 0, enc = 0;
    rsub *r;
    const char **sent = NULL; /* nodes sent to already: once per node */
    size_t nsent = 0, capsent = 0;
    DL_FOREACH(s->remote, r) {
        if ((skip_durable && r->name[0]) || !bl__ps_match_levels(r->pattern, m->topic)) continue;
        size_t i = 0;
        while (i < nsent && strcmp(sent[i], r->node))
            i++;
        if (i < nsent) continue;
        if (nsent == capsent) {
            size_t cap = capsent ? capsent * 2 : 16;
            const char **v = realloc(sent, cap * sizeof(*v));
            if (!v) break;
            sent = v;
            capsent = cap;
        }
        sent[nsent++] = r->node;
        if (!bl_is_connected(n, r->node)) { /* a durable subscription's node that is down */
            COUNT(s, m->topic, dropped);
            continue;
        }
        if (!built) {
            enc = ei_x_new_with_version(&x);
            enc |= ei_x_encode_tuple_header(&x, m->trace.valid ? 9 : 8);
            enc |= ei_x_encode_atom(&x, skip_durable ? "bl_ps_msgn" : "bl_ps_msg");
            enc |= ei_x_encode_atom(&x, n->name);
            enc |= ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
            enc |= ei_x_append_buf(&x, payload, len);
            enc |= ei_x_encode_binary(&x, m->id, (long)strlen(m->id));
            enc |= ei_x_encode_long(&x, m->prio);
            enc |= ei_x_encode_ulong(&x, m->ttl_ms);
            enc |= ei_x_encode_ulonglong(&x, m->published_at);
            if (m->trace.valid) enc |= bl__ps_put_trace(&x, &m->trace);
            built = 1;
        }
        int rc = enc ? BL_ENOMEM : bl_send_name(s->proc, PS_NAME, r->node, x.buff, x.index);
        if (rc != BL_OK) {
            COUNT(s, m->topic, dropped);
            bl_log(n, BL_LOG_DEBUG, "pubsub: %s to %s dropped: %s", m->id, r->node,
                   bl_strerror(rc));
        }
    }
    if (built) ei_x_free(&x);
    free(sent);
}

static int publish(ps *s, const char *topic, const char *payload, int len, int prio,
                   unsigned ttl_ms, int qos, char *id_out, size_t id_len)
{
    bl_node *n = s->n;
    if (!bl_pubsub_topic_valid(topic) || !payload || len <= 0 || prio < 0 || prio > 2 ||
        qos < QOS_AMO || qos > QOS_EO)
        return BL_EINVAL;
    int idx = 0;
    if (bl__skip_term(payload, &idx) < 0 || idx != len) return BL_EINVAL;
    if ((size_t)len > n->cfg.max_message_size / 2) return BL_ETOOBIG;
    if (qos == QOS_EO) qos = QOS_ALO; /* the same outbox; de-duplication is the subscription's */
    if (qos == QOS_ALO && !s->st.db) return BL_ECONFIG;
    psmsg *m = bl__ps_msg_new(topic, payload, len);
    if (!m) return BL_ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s-%llx-%llu", n->name, s->epoch_ms, ++s->next_msg);
    snprintf(m->publisher, sizeof(m->publisher), "%s", n->name);
    m->prio = prio;
    m->qos = qos;
    m->ttl_ms = ttl_ms;
    m->published_at = bl_now_ms();
    m->expires_at = ttl_ms ? ev_now(n->loop) + ttl_ms / 1000.0 : 0;
    const bl_trace *tr = bl_trace_current(n);
    if (tr) m->trace = *tr;
    if (qos == QOS_ALO) { /* durable subscriptions: an outbox row each, before replying */
        unsigned targets = 0;
        lsub *l;
        rsub *r;
        DL_FOREACH(s->subs, l)
            targets += l->name[0] && bl__ps_match_levels(l->pattern, topic);
        DL_FOREACH(s->remote, r)
            targets += r->name[0] && bl__ps_match_levels(r->pattern, topic);
        if (s->npend + targets > MAX_PENDING) {
            bl__ps_msg_unref(m);
            return BL_ENOMEM;
        }
        pend *first = NULL;
        int failed = bl__ps_store_begin(s) < 0; /* the publish's rows in one transaction */
        DL_FOREACH(s->subs, l) {
            if (!l->name[0] || !bl__ps_match_levels(l->pattern, topic)) continue;
            pend *p = bl__ps_pend_new(s, m, n->name, l->name);
            if (!p || failed || bl__ps_store_put(s, p) < 0) failed = 1;
            if (p && !first) first = p;
        }
        DL_FOREACH(s->remote, r) {
            if (!r->name[0] || !bl__ps_match_levels(r->pattern, topic)) continue;
            pend *p = bl__ps_pend_new(s, m, r->node, r->name);
            if (!p || failed || bl__ps_store_put(s, p) < 0) failed = 1;
            if (p && !first) first = p;
        }
        if (bl__ps_store_end(s, !failed) < 0) failed = 1; /* committed before the reply */
        if (failed) { /* not durable (rolled back): undo, the caller gets an error */
            pend *p, *t;
            int on = 0;
            DL_FOREACH_SAFE(s->pends, p, t) {
                on |= p == first;
                if (!on) continue;
                bl__ps_pend_free(s, p);
            }
            bl__ps_msg_unref(m);
            return BL_ESYS;
        }
        pend *p;
        for (p = first; p; p = p->next)
            bl__ps_pend_send(s, p);
    }
    COUNT(s, topic, published);
    if (id_out && id_len) snprintf(id_out, id_len, "%s", m->id);
    if (tr) {
        bl_log(n, BL_LOG_DEBUG, "pubsub: %s published on %s", m->id, topic);
    }
    if (bl_trace_sampled(n)) {
        json_t *d =
            json_pack("{s:s, s:s, s:s}", "topic", topic, "id", m->id, "qos", bl__ps_qos_names[qos]);
        char *txt = d ? json_dumps(d, JSON_COMPACT) : NULL;
        bl_trace_event(n, "pubsub.publish", txt);
        free(txt);
        json_decref(d);
    }
    bl__ps_fan_out_local(s, m, qos == QOS_ALO);
    fan_out_remote(s, m, payload, len, qos == QOS_ALO);
    bl__ps_msg_unref(m);
    return BL_OK;
}

/* bl_ps_msg / bl_ps_msgn (durable subscriptions skipped) / bl_ps_amsg (one durable one);
 * traced: one more element at the end, the traceparent. */
static void handle_remote_msg(ps *s, const bl_msg *msg, const char *buf, int idx, int kind,
                              int traced)
{
    char origin[MAXATOMLEN_UTF8], topic[BL_PUBSUB_TOPIC_LEN], id[BL_PUBSUB_ID_LEN];
    char name[NAME_LEN] = "";
    long prio;
    unsigned long ttl;
    unsigned long long at;
    if (get_atom(buf, &idx, origin) < 0 || !msg->has_sender ||
        strcmp(bl_pid_node(&msg->sender), origin) ||
        bl__term_text(buf, &idx, topic, sizeof(topic)) < 0 || !bl_pubsub_topic_valid(topic))
        return;
    int p0 = idx;
    if (bl__skip_term(buf, &idx) < 0) return;
    int p1 = idx;
    if (bl__term_text(buf, &idx, id, sizeof(id)) < 0 || ei_decode_long(buf, &idx, &prio) < 0 ||
        prio < 0 || prio > 2 || ei_decode_ulong(buf, &idx, &ttl) < 0 || ttl > 0xffffffffUL ||
        ei_decode_ulonglong(buf, &idx, &at) < 0 ||
        (kind == 2 && (bl__term_text(buf, &idx, name, sizeof(name)) < 0 || !name[0]))) {
        bl_log(s->n, BL_LOG_WARN, "pubsub: malformed message from %s ignored", origin);
        return;
    }
    bl_trace tr = {0};
    if (traced && bl__ps_get_trace(buf, &idx, &tr) < 0) {
        bl_log(s->n, BL_LOG_WARN, "pubsub: malformed message from %s ignored", origin);
        return;
    }
    psmsg *m = bl__ps_msg_new(topic, buf + p0, p1 - p0);
    if (!m) return;
    m->trace = tr;
    if (tr.valid) bl_trace_child(&tr, &s->n->ctx.trace); /* this node's hop, for its log lines */
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->publisher, sizeof(m->publisher), "%s", origin);
    m->prio = (int)prio;
    m->qos = kind == 2 ? QOS_ALO : QOS_AMO;
    m->ttl_ms = (unsigned)ttl;
    m->published_at = at;
    /* TTL runs from receipt: clocks of two nodes are not compared */
    m->expires_at = ttl ? ev_now(s->n->loop) + (double)ttl / 1000.0 : 0;
    if (kind == 2 && bl__ps_seen_has(s, name, id))
        bl__ps_ack_to(s, name, id); /* an exactly-once subscription has it already */
    else if (kind == 2)
        bl__ps_local_durable(s, m, name);
    else
        bl__ps_fan_out_local(s, m, kind == 1);
    bl__ps_msg_unref(m);
}

/* ---- the tick ---- */

static void on_tick(bl_node *n, void *ud)
{
    ps *s = ud;
    ev_tstamp now = ev_now(n->loop);
    bl__ps_expire_queued(s, now);
    bl__ps_retry_pends(s, now);
    bl__ps_seen_age(s);
    bl__ps_flush_all(s);
    bl__ps_store_flush(s); /* the tick's outbox deletes, one transaction */
}

/* ---- the process protocol ---- */

static int reply_err(ei_x_buff *reply, const char *why)
{
    reply->index = 0;
    int rc = ei_x_encode_tuple_header(reply, 2);
    rc |= ei_x_encode_atom(reply, "error");
    return rc | ei_x_encode_atom(reply, why);
}

static int reply_rc(ei_x_buff *reply, int rc)
{
    if (rc == BL_OK) return ei_x_encode_atom(reply, "ok");
    return reply_err(reply, rc == BL_ENOPROC   ? "not_found"
                            : rc == BL_ENOMEM  ? "full"
                            : rc == BL_ETOOBIG ? "too_big"
                            : rc == BL_ECONFIG ? "no_store"
                            : rc == BL_ESYS    ? "store_failed"
                                               : "badarg");
}

static int encode_counters(ei_x_buff *x, const bl_pubsub_counters *c)
{
    static const bl_pubsub_counters zero;
    if (!c) c = &zero;
    int rc = ei_x_encode_map_header(x, 5);
    rc |= ei_x_encode_atom(x, "published");
    rc |= ei_x_encode_ulonglong(x, c->published);
    rc |= ei_x_encode_atom(x, "delivered");
    rc |= ei_x_encode_ulonglong(x, c->delivered);
    rc |= ei_x_encode_atom(x, "retried");
    rc |= ei_x_encode_ulonglong(x, c->retried);
    rc |= ei_x_encode_atom(x, "expired");
    rc |= ei_x_encode_ulonglong(x, c->expired);
    rc |= ei_x_encode_atom(x, "dropped");
    return rc | ei_x_encode_ulonglong(x, c->dropped);
}

static int get_bool(const char *buf, int *j, int *out)
{
    char a[MAXATOMLEN_UTF8];
    if (get_atom(buf, j, a) < 0) return -1;
    if (!strcmp(a, "true"))
        *out = 1;
    else if (!strcmp(a, "false"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int qos_from(const char *buf, int *j)
{
    char a[MAXATOMLEN_UTF8];
    if (get_atom(buf, j, a) < 0) return -1;
    for (int q = 0; q < 3; q++)
        if (!strcmp(a, bl__ps_qos_names[q])) return q;
    return -1;
}

/* Subscribe options: #{qos => at_most_once | at_least_once, name => binary() (required for
 * at_least_once), max_queue => N, paused => bool, link => bool}. */
static int decode_sub_opts(const char *buf, int *j, subopts *o)
{
    int k, qos = QOS_AMO, link = 1;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_map_header(buf, j, &k) < 0) return -1;
    for (int i = 0; i < k; i++) {
        if (get_atom(buf, j, a) < 0) return -1;
        if (!strcmp(a, "qos")) {
            if ((qos = qos_from(buf, j)) < 0) return -1;
        } else if (!strcmp(a, "name")) {
            int type, size;
            if (ei_get_type(buf, j, &type, &size) < 0 || type != ERL_BINARY_EXT ||
                bl__term_text(buf, j, o->name, sizeof(o->name)) < 0 || !o->name[0])
                return -1;
        } else if (!strcmp(a, "max_queue")) {
            long v;
            if (ei_decode_long(buf, j, &v) < 0 || v < 1 || v > MAX_QUEUE_LIMIT) return -1;
            o->max_queue = (unsigned)v;
        } else if (!strcmp(a, "paused")) {
            if (get_bool(buf, j, &o->paused) < 0) return -1;
        } else if (!strcmp(a, "link")) {
            if (get_bool(buf, j, &link) < 0) return -1;
        } else {
            return -1;
        }
    }
    o->nolink = !link;
    o->qos = qos;
    if ((qos != QOS_AMO) != (o->name[0] != '\0')) return -1; /* a name exactly when durable */
    return 0;
}

/* Publish options: #{priority => high | normal | low, ttl_ms => N, qos => at_most_once,
 * trace => <<Traceparent>>}. */
static int decode_pub_opts(const char *buf, int *j, int *prio, unsigned *ttl, int *qos,
                           bl_trace *trace)
{
    int k;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_map_header(buf, j, &k) < 0) return -1;
    for (int i = 0; i < k; i++) {
        if (get_atom(buf, j, a) < 0) return -1;
        if (!strcmp(a, "priority")) {
            if (get_atom(buf, j, a) < 0) return -1;
            *prio = -1;
            for (int p = 0; p < 3; p++)
                if (!strcmp(a, bl__ps_prio_names[p])) *prio = p;
            if (*prio < 0) return -1;
        } else if (!strcmp(a, "ttl_ms")) {
            long v;
            if (ei_decode_long(buf, j, &v) < 0 || v < 0 || v > 86400000L * 7) return -1;
            *ttl = (unsigned)v;
        } else if (!strcmp(a, "qos")) {
            if ((*qos = qos_from(buf, j)) < 0) return -1;
        } else if (!strcmp(a, "trace")) { /* the caller's traceparent: continued here */
            bl_trace t;
            if (bl__ps_get_trace(buf, j, &t) < 0) return -1;
            if (t.valid) bl_trace_child(&t, trace);
        } else {
            return -1;
        }
    }
    return 0;
}

/* {publish, Topic, Payload, Opts}: BL_OK and the id, or an error. */
static int beam_publish(ps *s, const char *buf, int j, char *id, size_t idlen)
{
    char topic[BL_PUBSUB_TOPIC_LEN];
    int prio = BL_PRIO_NORMAL, qos = QOS_AMO;
    unsigned ttl = 0;
    if (bl__term_text(buf, &j, topic, sizeof(topic)) < 0) return BL_EINVAL;
    int p0 = j;
    if (bl__skip_term(buf, &j) < 0) return BL_EINVAL;
    int p1 = j;
    bl_trace tr = {0};
    if (decode_pub_opts(buf, &j, &prio, &ttl, &qos, &tr) < 0) return BL_EINVAL;
    if (tr.valid) bl_trace_set(s->n, &tr); /* the handler's context: cleared when it returns */
    return publish(s, topic, buf + p0, p1 - p0, prio, ttl, qos, id, idlen);
}

/* ---- requests: gen_server calls to beamlet_pubsub ---- */

static int rq_counters_all(void *ud, const bl_from *from, const char *buf, int j, int arity,
                           ei_x_buff *reply)
{
    (void)from, (void)buf, (void)j, (void)arity;
    ps *s = ud;
    int rc = ei_x_encode_map_header(reply, (long)HASH_COUNT(s->counts));
    tcount *t, *tt;
    HASH_ITER(hh, s->counts, t, tt) {
        rc |= ei_x_encode_binary(reply, t->topic, (long)strlen(t->topic));
        rc |= encode_counters(reply, &t->c);
    }
    return rc;
}

static int rq_pending(void *ud, const bl_from *from, const char *buf, int j, int arity,
                      ei_x_buff *reply)
{
    (void)from, (void)buf, (void)j, (void)arity;
    return ei_x_encode_ulong(reply, ((ps *)ud)->npend);
}

static int rq_subscriptions(void *ud, const bl_from *from, const char *buf, int j, int arity,
                            ei_x_buff *reply)
{
    (void)from, (void)buf, (void)j, (void)arity;
    ps *s = ud;
    lsub *l;
    rsub *r;
    long k = 0;
    int rc = 0;
    DL_COUNT(s->subs, l, k);
    DL_FOREACH(s->remote, r)
        k++;
    if (k) rc |= ei_x_encode_list_header(reply, k);
    DL_FOREACH(s->subs, l) {
        rc |= ei_x_encode_map_header(reply, 4);
        rc |= ei_x_encode_atom(reply, "id");
        rc |= ei_x_encode_long(reply, l->id);
        rc |= ei_x_encode_atom(reply, "pattern");
        rc |= ei_x_encode_binary(reply, l->pattern, (long)strlen(l->pattern));
        rc |= ei_x_encode_atom(reply, "node");
        rc |= ei_x_encode_atom(reply, s->n->name);
        rc |= ei_x_encode_atom(reply, "queued");
        rc |= ei_x_encode_ulong(reply, l->qlen);
    }
    DL_FOREACH(s->remote, r) {
        rc |= ei_x_encode_map_header(reply, 3);
        rc |= ei_x_encode_atom(reply, "id");
        rc |= ei_x_encode_long(reply, r->id);
        rc |= ei_x_encode_atom(reply, "pattern");
        rc |= ei_x_encode_binary(reply, r->pattern, (long)strlen(r->pattern));
        rc |= ei_x_encode_atom(reply, "node");
        rc |= ei_x_encode_atom(reply, r->node);
    }
    return rc | ei_x_encode_empty_list(reply);
}

static int rq_subscribe(void *ud, const bl_from *from, const char *buf, int j, int arity,
                        ei_x_buff *reply)
{
    (void)from;
    ps *s = ud;
    char pat[BL_PUBSUB_TOPIC_LEN];
    bl_pid pid;
    subopts o;
    memset(&o, 0, sizeof(o));
    if (bl__term_text(buf, &j, pat, sizeof(pat)) < 0 || bl_decode_pid(s->n, buf, &j, &pid) < 0 ||
        (arity == 4 && decode_sub_opts(buf, &j, &o) < 0))
        return reply_rc(reply, BL_EINVAL);
    if (bl__pid_is_local(s->n, &pid) && !bl_proc_by_pid(s->n, &pid))
        return reply_rc(reply, BL_EINVAL);
    if (o.qos != QOS_AMO && !s->st.db) return reply_rc(reply, BL_ECONFIG);
    int id = bl__ps_add_sub(s, pat, &pid, NULL, NULL, &o);
    if (id < 0) return reply_rc(reply, id);
    int rc = ei_x_encode_tuple_header(reply, 2);
    rc |= ei_x_encode_atom(reply, "ok");
    return rc | ei_x_encode_long(reply, id);
}

/* The local subscription named by the id at buf[*j], or NULL. */
static lsub *sub_arg(ps *s, const char *buf, int *j, int *bad)
{
    long id;
    *bad = ei_decode_long(buf, j, &id) < 0;
    return !*bad && id > 0 && id <= 0x7fffffff ? bl__ps_find_sub(s, (int)id) : NULL;
}

static int rq_unsubscribe(void *ud, const bl_from *from, const char *buf, int j, int arity,
                          ei_x_buff *reply)
{
    (void)from, (void)arity;
    int bad;
    lsub *l = sub_arg(ud, buf, &j, &bad);
    if (bad || !l) return reply_rc(reply, bad ? BL_EINVAL : BL_ENOPROC);
    bl__ps_del_sub(ud, l, 1);
    return reply_rc(reply, BL_OK);
}

static int pause_resume(ps *s, const char *buf, int j, ei_x_buff *reply, int paused)
{
    int bad;
    lsub *l = sub_arg(s, buf, &j, &bad);
    if (bad || !l) return reply_rc(reply, bad ? BL_EINVAL : BL_ENOPROC);
    l->paused = paused;
    if (!paused) bl__ps_schedule_flush(s);
    return reply_rc(reply, BL_OK);
}

static int rq_pause(void *ud, const bl_from *from, const char *buf, int j, int arity,
                    ei_x_buff *reply)
{
    (void)from, (void)arity;
    return pause_resume(ud, buf, j, reply, 1);
}

static int rq_resume(void *ud, const bl_from *from, const char *buf, int j, int arity,
                     ei_x_buff *reply)
{
    (void)from, (void)arity;
    return pause_resume(ud, buf, j, reply, 0);
}

static int rq_publish(void *ud, const bl_from *from, const char *buf, int j, int arity,
                      ei_x_buff *reply)
{
    (void)from, (void)arity;
    char id[BL_PUBSUB_ID_LEN];
    int rc = beam_publish(ud, buf, j, id, sizeof(id));
    if (rc != BL_OK) return reply_rc(reply, rc);
    rc = ei_x_encode_tuple_header(reply, 2);
    rc |= ei_x_encode_atom(reply, "ok");
    return rc | ei_x_encode_binary(reply, id, (long)strlen(id));
}

static int rq_ack(void *ud, const bl_from *from, const char *buf, int j, int arity,
                  ei_x_buff *reply)
{
    (void)from, (void)arity;
    char id[BL_PUBSUB_ID_LEN];
    int bad;
    lsub *l = sub_arg(ud, buf, &j, &bad);
    if (bad || bl__term_text(buf, &j, id, sizeof(id)) < 0) return reply_rc(reply, BL_EINVAL);
    if (!l) return reply_rc(reply, BL_ENOPROC);
    bl__ps_do_ack(ud, l, id);
    return reply_rc(reply, BL_OK);
}

static int rq_counters(void *ud, const bl_from *from, const char *buf, int j, int arity,
                       ei_x_buff *reply)
{
    (void)from, (void)arity;
    ps *s = ud;
    char topic[BL_PUBSUB_TOPIC_LEN];
    if (bl__term_text(buf, &j, topic, sizeof(topic)) < 0) return reply_rc(reply, BL_EINVAL);
    tcount *t = NULL;
    HASH_FIND_STR(s->counts, topic, t);
    return encode_counters(reply, t ? &t->c : NULL);
}

static const bl__req REQUESTS[] = {
    {"counters", 0, 0, rq_counters_all},
    {"pending", 0, 0, rq_pending},
    {"subscriptions", 0, 0, rq_subscriptions},
    {"subscribe", 3, 4, rq_subscribe},
    {"unsubscribe", 2, 2, rq_unsubscribe},
    {"pause", 2, 2, rq_pause},
    {"resume", 2, 2, rq_resume},
    {"publish", 4, 4, rq_publish},
    {"ack", 3, 3, rq_ack},
    {"counters", 2, 2, rq_counters},
};

static int ps_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                   void *ud)
{
    (void)self;
    int rc = bl__req_dispatch(REQUESTS, sizeof(REQUESTS) / sizeof(REQUESTS[0]), ud, from, buf, idx,
                              reply);
    return rc == BL__REQ_NONE ? reply_rc(reply, BL_EINVAL) : rc;
}

static void ps_cast(bl_proc *self, const char *buf, int idx, void *ud)
{
    (void)self;
    ps *s = ud;
    char tag[MAXATOMLEN_UTF8], id[BL_PUBSUB_ID_LEN];
    int j = idx, arity;
    if (ei_decode_tuple_header(buf, &j, &arity) < 0 || get_atom(buf, &j, tag) < 0) return;
    if (arity == 3 && !strcmp(tag, "ack")) {
        long sid;
        lsub *l;
        if (ei_decode_long(buf, &j, &sid) == 0 && bl__term_text(buf, &j, id, sizeof(id)) == 0 &&
            sid > 0 && sid <= 0x7fffffff && (l = bl__ps_find_sub(s, (int)sid)))
            bl__ps_do_ack(s, l, id);
        return;
    }
    if (arity != 4 || strcmp(tag, "publish")) return;
    int rc = beam_publish(s, buf, j, id, sizeof(id));
    if (rc != BL_OK) bl_log(s->n, BL_LOG_DEBUG, "pubsub: cast publish: %s", bl_strerror(rc));
}

static void ps_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    ps *s = ud;
    if (bl__repl_handle(s->repl, msg)) return;
    const char *buf = msg->buf;
    int idx = msg->index, arity;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity < 2 || get_atom(buf, &idx, tag) < 0)
        return;
    if ((arity == 8 || arity == 9) && !strcmp(tag, "bl_ps_msg")) {
        handle_remote_msg(s, msg, buf, idx, 0, arity == 9);
    } else if ((arity == 8 || arity == 9) && !strcmp(tag, "bl_ps_msgn")) {
        handle_remote_msg(s, msg, buf, idx, 1, arity == 9);
    } else if ((arity == 9 || arity == 10) && !strcmp(tag, "bl_ps_amsg")) {
        handle_remote_msg(s, msg, buf, idx, 2, arity == 10);
    } else if (arity == 4 && !strcmp(tag, "bl_ps_ack")) {
        char node[MAXATOMLEN_UTF8], name[NAME_LEN], id[BL_PUBSUB_ID_LEN];
        if (get_atom(buf, &idx, node) == 0 && msg->has_sender &&
            !strcmp(bl_pid_node(&msg->sender), node) &&
            bl__term_text(buf, &idx, name, sizeof(name)) == 0 &&
            bl__term_text(buf, &idx, id, sizeof(id)) == 0)
            bl__ps_handle_ack(s, node, name, id);
    }
}

static void ps_exit(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud)
{
    (void)self;
    (void)buf;
    (void)index;
    bl__ps_del_subs_of(ud, from, NULL, "subscriber exited");
}

static void ps_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    ps *s = ud;
    bl_node *n = s->n;
    if (s->timer_id > 0) bl_timer_cancel(n, s->timer_id);
    if (s->flush_timer > 0) bl_timer_cancel(n, s->flush_timer);
    if (s->nodemon_id > 0) bl_demonitor_nodes(n, s->nodemon_id);
    if (s->cluster_sub > 0) bl_cluster_unsubscribe(n, s->cluster_sub);
    lsub *l, *lt;
    DL_FOREACH_SAFE(s->subs, l, lt) {
        bl__ps_queue_clear(l);
        free(l);
    }
    pend *p, *pt;
    DL_FOREACH_SAFE(s->pends, p, pt) {
        bl__ps_msg_unref(p->m);
        free(p);
    }
    seen *e, *et;
    HASH_ITER(hh, s->seen_h, e, et) {
        HASH_DEL(s->seen_h, e);
        free(e);
    }
    bl__ps_store_close(s);
    bl__repl_free(s->repl);
    s->repl = NULL;
    rsub *r, *rt;
    DL_FOREACH_SAFE(s->remote, r, rt)
        free(r);
    tcount *t, *tt;
    HASH_ITER(hh, s->counts, t, tt) {
        HASH_DEL(s->counts, t);
        free(t);
    }
    free(s);
}

int bl_pubsub_start(bl_node *n);

int bl_pubsub_start(bl_node *n)
{
    ps *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->n = n;
    s->epoch_ms = bl_now_ms();
    static const bl_proc_ops ops = {.on_msg = ps_msg,
                                    .on_call = ps_call,
                                    .on_cast = ps_cast,
                                    .on_exit = ps_exit,
                                    .on_terminate = ps_terminate};
    int rc = bl_spawn(n, PS_NAME, &ops, s, &s->proc);
    if (rc != BL_OK) {
        free(s);
        return rc;
    }
    bl_trap_exit(s->proc, 1);
    bl__ps_store_open(s);
    s->repl = bl__repl_new(n, s->proc, &pubsub_repl, s);
    s->nodemon_id = bl_monitor_nodes(n, bl__ps_on_node, s);
    s->cluster_sub = n->cluster ? bl_cluster_subscribe(n, bl__ps_on_cluster, s) : 0;
    s->timer_id = bl_timer(n, TICK_MS, TICK_MS, on_tick, s);
    if (!s->repl || s->nodemon_id < 0 || s->cluster_sub < 0 || s->timer_id < 0) return BL_ENOMEM;
    return BL_OK;
}

/* ---- public C API ---- */

int bl_pubsub_subscribe(bl_node *n, const char *pattern, unsigned max_queue, bl_pubsub_cb cb,
                        void *ud)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    if (!cb) return BL_EINVAL;
    subopts o;
    memset(&o, 0, sizeof(o));
    o.max_queue = max_queue;
    return bl__ps_add_sub(s, pattern, NULL, cb, ud, &o);
}

int bl_pubsub_subscribe_durable(bl_node *n, const char *pattern, const char *name,
                                bl_pubsub_qos qos, unsigned max_queue, bl_pubsub_cb cb, void *ud)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    if (!cb || !name || !name[0] || strlen(name) >= NAME_LEN ||
        (qos != BL_QOS_AT_LEAST_ONCE && qos != BL_QOS_EXACTLY_ONCE))
        return BL_EINVAL;
    if (!s->st.db) return BL_ECONFIG; /* durable subscriptions need data_dir */
    subopts o;
    memset(&o, 0, sizeof(o));
    o.max_queue = max_queue;
    o.qos = qos == BL_QOS_EXACTLY_ONCE ? QOS_EO : QOS_ALO;
    snprintf(o.name, sizeof(o.name), "%s", name);
    return bl__ps_add_sub(s, pattern, NULL, cb, ud, &o);
}

int bl_pubsub_unsubscribe(bl_node *n, int sub_id)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    lsub *l = bl__ps_find_sub(s, sub_id);
    if (!l) return BL_ENOPROC;
    bl__ps_del_sub(s, l, 1);
    return BL_OK;
}

int bl_pubsub_pause(bl_node *n, int sub_id, int paused)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    lsub *l = bl__ps_find_sub(s, sub_id);
    if (!l) return BL_ENOPROC;
    l->paused = paused != 0;
    if (!l->paused) bl__ps_schedule_flush(s);
    return BL_OK;
}

int bl_pubsub_publish(bl_node *n, const char *topic, const char *payload, int len,
                      bl_pubsub_priority prio, unsigned ttl_ms, char *id_out, size_t id_len)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    return publish(s, topic, payload, len, (int)prio, ttl_ms, QOS_AMO, id_out, id_len);
}

int bl_pubsub_publish_qos(bl_node *n, const char *topic, const char *payload, int len,
                          bl_pubsub_priority prio, unsigned ttl_ms, bl_pubsub_qos qos, char *id_out,
                          size_t id_len)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    if ((unsigned)qos > BL_QOS_EXACTLY_ONCE) return BL_EINVAL;
    return publish(s, topic, payload, len, (int)prio, ttl_ms, (int)qos, id_out, id_len);
}

int bl_pubsub_get_counters(bl_node *n, const char *topic, bl_pubsub_counters *out)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    if (!topic || !out) return BL_EINVAL;
    tcount *t = NULL;
    HASH_FIND_STR(s->counts, topic, t);
    if (t)
        *out = t->c;
    else
        memset(out, 0, sizeof(*out));
    return BL_OK;
}
