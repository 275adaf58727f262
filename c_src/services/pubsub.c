/* pubsub.c - topic publish/subscribe: the `beamlet_pubsub` process (docs/services.md).
 *
 * A subscription lives on the node it was made on (a C callback, or a BEAM pid linked to this
 * process). Each node replicates its own subscriptions (id + pattern) to every beamlet member,
 * full mesh like the registry:
 *   {bl_ps_add, Owner, [{Id, Pattern}]}   new subscriptions
 *   {bl_ps_del, Owner, [Id]}              removed ones
 *   {bl_ps_sync, Owner, [{Id, Pattern}]}  the owner's whole set (replaces the receiver's copy)
 *   {bl_ps_want, Node}                    asks for the receiver's sync
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
#include "../runtime/internal.h"
#include "beamlet/cluster.h"
#include "beamlet/pubsub.h"
#include "repl.h"

#include <dlfcn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define PS_NAME "beamlet_pubsub"
#define TICK_MS 100
#define SYNC_EVERY 10
#define DEFAULT_MAX_QUEUE 10000
#define MAX_QUEUE_LIMIT 1000000
#define MAX_LOCAL_SUBS 4096
#define MAX_REMOTE_SUBS 65536
#define MAX_TOPICS 4096
#define OVERFLOW_TOPIC "_other"
#define EVENTS_TOPIC "cluster.events"
#define NAME_LEN 128       /* durable subscription name, NUL included */
#define MAX_PENDING 100000 /* at-least-once deliveries awaiting an ack, per publisher node */
#define ACK_WAIT 0.5       /* s before the first retry */
#define MAX_BACKOFF 5.0    /* s between retries at most */
#define MAX_SEEN 100000    /* exactly-once de-duplication window: ids kept per node */
#define SEEN_MAX_AGE_MS (24ull * 3600 * 1000)
enum { QOS_AMO = 0, QOS_ALO = 1, QOS_EO = 2 };
static const char *QOS_NAMES[] = {"at_most_once", "at_least_once", "exactly_once"};

static const char *PRIO_NAMES[] = {"high", "normal", "low"};

/* ---- topics ---- */

static int check(const char *s, int pattern)
{
    if (!s) return 0;
    size_t len = strnlen(s, BL_PUBSUB_TOPIC_LEN);
    if (len == 0 || len >= BL_PUBSUB_TOPIC_LEN) return 0;
    const char *lv = s;
    for (;;) {
        const char *dot = strchr(lv, '.');
        size_t l = dot ? (size_t)(dot - lv) : strlen(lv);
        if (l == 0) return 0;
        for (size_t i = 0; i < l; i++) {
            if (lv[i] != '*' && lv[i] != '#') continue;
            if (!pattern || l != 1) return 0;
            if (lv[i] == '#' && dot) return 0; /* '#' only as the last level */
        }
        if (!dot) return 1;
        lv = dot + 1;
    }
}

int bl_pubsub_topic_valid(const char *topic)
{
    return check(topic, 0);
}

int bl_pubsub_pattern_valid(const char *pattern)
{
    return check(pattern, 1);
}

static int match_levels(const char *p, const char *t)
{
    for (;;) {
        if (p[0] == '#' && p[1] == '\0') return 1;
        const char *pd = strchr(p, '.'), *td = t ? strchr(t, '.') : NULL;
        size_t pl = pd ? (size_t)(pd - p) : strlen(p);
        if (!t) return 0; /* pattern levels left, topic exhausted */
        size_t tl = td ? (size_t)(td - t) : strlen(t);
        if (!(pl == 1 && p[0] == '*') && (pl != tl || memcmp(p, t, pl))) return 0;
        if (!pd) return td == NULL;
        p = pd + 1;
        t = td ? td + 1 : NULL;
        if (!t && !(p[0] == '#' && p[1] == '\0')) return 0;
    }
}

int bl_pubsub_match(const char *pattern, const char *topic)
{
    if (!bl_pubsub_pattern_valid(pattern) || !bl_pubsub_topic_valid(topic)) return 0;
    return match_levels(pattern, topic);
}

/* ---- state ---- */

typedef struct psmsg {
    int refs;
    char topic[BL_PUBSUB_TOPIC_LEN];
    char id[BL_PUBSUB_ID_LEN];
    char publisher[BL_NODE_LEN];
    int prio, qos;
    unsigned ttl_ms;
    unsigned long long published_at;
    ev_tstamp expires_at; /* local clock; 0: none */
    int len;
    char payload[];
} psmsg;

typedef struct qitem {
    struct qitem *next;
    psmsg *m;
} qitem;

typedef struct lsub {
    struct lsub *prev, *next;
    int id;
    char pattern[BL_PUBSUB_TOPIC_LEN];
    int is_pid;
    bl_pid pid;
    bl_pubsub_cb cb;
    void *ud;
    int paused;
    char name[NAME_LEN]; /* durable (at-least-once, exactly-once) subscriptions: non-empty */
    int qos;
    unsigned max_queue, qlen;
    qitem *qh[3], *qt[3];
} lsub;

typedef struct rsub {
    struct rsub *prev, *next;
    char node[BL_NODE_LEN];
    int id;
    char pattern[BL_PUBSUB_TOPIC_LEN];
    char name[NAME_LEN]; /* durable: kept while its node is down, keyed by (node, name) */
    unsigned gen;
} rsub;

/* An at-least-once delivery awaiting its ack: one per (message, target node, durable name). */
typedef struct pend {
    struct pend *prev, *next;
    char node[BL_NODE_LEN], name[NAME_LEN];
    psmsg *m;
    unsigned attempts;
    ev_tstamp next_at;
} pend;

/* SQLite, loaded with dlopen so that linking needs no extra library (-ldl is there already). */
typedef struct store {
    void *lib;
    sqlite3 *db;
    __typeof__(sqlite3_open_v2) *open_v2;
    __typeof__(sqlite3_close) *close;
    __typeof__(sqlite3_exec) *exec;
    __typeof__(sqlite3_prepare_v2) *prepare_v2;
    __typeof__(sqlite3_bind_text) *bind_text;
    __typeof__(sqlite3_bind_blob) *bind_blob;
    __typeof__(sqlite3_bind_int64) *bind_int64;
    __typeof__(sqlite3_step) *step;
    __typeof__(sqlite3_finalize) *finalize;
    __typeof__(sqlite3_column_text) *column_text;
    __typeof__(sqlite3_column_blob) *column_blob;
    __typeof__(sqlite3_column_bytes) *column_bytes;
    __typeof__(sqlite3_column_int64) *column_int64;
    __typeof__(sqlite3_errmsg) *errmsg;
    __typeof__(sqlite3_free) *free;
} store;

/* A message id delivered to an exactly-once subscription (the de-duplication window). */
typedef struct seen {
    UT_hash_handle hh;
    struct seen *prev, *next; /* oldest first */
    unsigned long long at;
    char key[NAME_LEN + BL_PUBSUB_ID_LEN]; /* name, '\n', id */
} seen;

typedef struct tcount {
    UT_hash_handle hh;
    char topic[BL_PUBSUB_TOPIC_LEN];
    bl_pubsub_counters c;
} tcount;

typedef struct ps {
    bl_node *n;
    bl_proc *proc;
    lsub *subs;
    unsigned nsubs;
    rsub *remote;
    unsigned nremote;
    tcount *counts;
    unsigned ncounts;
    int next_sub_id;
    int timer_id, nodemon_id, cluster_sub, flush_timer;
    unsigned long ticks;
    unsigned long long epoch_ms, next_msg;
    unsigned gen;
    int delivering; /* inside a C callback */
    pend *pends;
    unsigned npend;
    seen *seen_h, *seen_l;
    unsigned nseen;
    store st;
} ps;

static ps *ps_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, PS_NAME) : NULL;
    return p && !p->dead ? bl_proc_data(p) : NULL;
}

static bl_pubsub_counters *counters(ps *s, const char *topic)
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

#define COUNT(s, topic, field)                                                                     \
    do {                                                                                           \
        bl_pubsub_counters *c_ = counters((s), (topic));                                           \
        if (c_) c_->field++;                                                                       \
    } while (0)

static void msg_unref(psmsg *m)
{
    if (m && --m->refs == 0) free(m);
}

static lsub *find_sub(ps *s, int id)
{
    lsub *l;
    DL_FOREACH(s->subs, l)
    if (l->id == id) return l;
    return NULL;
}

static void queue_clear(lsub *l)
{
    for (int p = 0; p < 3; p++) {
        qitem *q, *t;
        LL_FOREACH_SAFE(l->qh[p], q, t)
        {
            msg_unref(q->m);
            free(q);
        }
        l->qh[p] = l->qt[p] = NULL;
    }
    l->qlen = 0;
}

/* ---- replication ---- */

static int is_peer(ps *s, const char *node)
{
    return bl_cluster_is_peer(s->n, node);
}

static void send_to(ps *s, const char *node, const ei_x_buff *x)
{
    (void)bl_cluster_send(s->proc, PS_NAME, node, x);
}

/* To every connected beamlet member (turn < 0), or to the turn-th of them (mod their count). */
static void to_members(ps *s, const ei_x_buff *x, long turn)
{
    bl_cluster_send_peers(s->proc, PS_NAME, x, turn);
}

static void encode_sub(ei_x_buff *x, const lsub *l)
{
    ei_x_encode_tuple_header(x, l->name[0] ? 3 : 2);
    ei_x_encode_long(x, l->id);
    ei_x_encode_binary(x, l->pattern, (long)strlen(l->pattern));
    if (l->name[0]) ei_x_encode_binary(x, l->name, (long)strlen(l->name));
}

static void replicate(ps *s, const lsub *l, int removed)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, removed ? "bl_ps_del" : "bl_ps_add");
    ei_x_encode_atom(&x, s->n->name);
    ei_x_encode_list_header(&x, 1);
    if (removed)
        ei_x_encode_long(&x, l->id);
    else
        encode_sub(&x, l);
    ei_x_encode_empty_list(&x);
    to_members(s, &x, -1);
    ei_x_free(&x);
}

static void send_sync_turn(ps *s, const char *node, long turn)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "bl_ps_sync");
    ei_x_encode_atom(&x, s->n->name);
    lsub *l;
    long count = 0;
    DL_COUNT(s->subs, l, count);
    if (count) ei_x_encode_list_header(&x, count);
    DL_FOREACH(s->subs, l)
    encode_sub(&x, l);
    ei_x_encode_empty_list(&x);
    if (node)
        send_to(s, node, &x);
    else
        to_members(s, &x, turn);
    ei_x_free(&x);
}

static void send_want(ps *s, const char *node)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "bl_ps_want");
    ei_x_encode_atom(&x, s->n->name);
    send_to(s, node, &x);
    ei_x_free(&x);
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
    DL_DELETE(s->remote, r);
    s->nremote--;
    free(r);
}

static void drop_remote(ps *s, const char *node, const char *why)
{
    unsigned k = 0;
    rsub *r, *t;
    DL_FOREACH_SAFE(s->remote, r, t)
    {
        if (strcmp(r->node, node) || r->name[0]) continue; /* durable ones are kept */
        rsub_del(s, r);
        k++;
    }
    if (k) bl_log(s->n, BL_LOG_INFO, "pubsub: %u subscriptions of %s removed (%s)", k, node, why);
}

static int get_atom(const char *buf, int *idx, char *out)
{
    return ei_decode_atom(buf, idx, out) < 0 ? -1 : 0;
}

/* A binary (or atom) string into out; -1 if not one or too long. */
static int get_str(const char *buf, int *idx, char *out, size_t cap)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
    if (type == ERL_BINARY_EXT) {
        long l;
        if (size < 0 || (size_t)size >= cap) return -1;
        if (ei_decode_binary(buf, idx, out, &l) < 0) return -1;
        out[l] = '\0';
        return memchr(out, '\0', (size_t)l) ? -1 : 0;
    }
    if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
        type == ERL_SMALL_ATOM_UTF8_EXT) {
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, idx, a) < 0 || strlen(a) >= cap) return -1;
        memcpy(out, a, strlen(a) + 1);
        return 0;
    }
    return -1;
}

static void drop_pends(ps *s, const char *node, const char *name);

static void handle_repl(ps *s, const bl_msg *msg, const char *tag, const char *buf, int idx)
{
    char owner[MAXATOMLEN_UTF8];
    bl__list_it it;
    int more;
    if (get_atom(buf, &idx, owner) < 0) return;
    if (!msg->has_sender || strcmp(msg->sender.node, owner) || !is_peer(s, owner)) {
        bl_log(s->n, BL_LOG_DEBUG, "pubsub: %s from %s ignored (not a member)", tag, owner);
        return;
    }
    if (bl__list_begin(&it, buf, &idx) < 0) return;
    if (!strcmp(tag, "bl_ps_del")) {
        while ((more = bl__list_next(&it)) > 0) {
            long id;
            if (ei_decode_long(buf, &idx, &id) < 0) return;
            rsub *r = find_rsub(s, owner, (int)id);
            if (r && r->name[0]) drop_pends(s, owner, r->name); /* unsubscribed for good */
            if (r) rsub_del(s, r);
        }
        return;
    }
    int sync = !strcmp(tag, "bl_ps_sync");
    unsigned gen = ++s->gen;
    while ((more = bl__list_next(&it)) > 0) {
        int ar;
        long id;
        char pat[BL_PUBSUB_TOPIC_LEN], name[NAME_LEN] = "";
        if (ei_decode_tuple_header(buf, &idx, &ar) < 0 || (ar != 2 && ar != 3) ||
            ei_decode_long(buf, &idx, &id) < 0 || id <= 0 || id > 0x7fffffff ||
            get_str(buf, &idx, pat, sizeof(pat)) < 0 || !bl_pubsub_pattern_valid(pat) ||
            (ar == 3 && (get_str(buf, &idx, name, sizeof(name)) < 0 || !name[0]))) {
            bl_log(s->n, BL_LOG_WARN, "pubsub: malformed %s from %s ignored", tag, owner);
            return;
        }
        rsub *r = name[0] ? find_rsub_name(s, owner, name) : find_rsub(s, owner, (int)id);
        if (!r) {
            if (s->nremote >= MAX_REMOTE_SUBS) {
                bl_log(s->n, BL_LOG_WARN, "pubsub: too many remote subscriptions; %s dropped", pat);
                continue;
            }
            r = calloc(1, sizeof(*r));
            if (!r) return;
            snprintf(r->node, sizeof(r->node), "%s", owner);
            r->id = (int)id;
            DL_APPEND(s->remote, r);
            s->nremote++;
        }
        snprintf(r->pattern, sizeof(r->pattern), "%s", pat);
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->id = (int)id;
        r->gen = gen;
    }
    if (more < 0) {
        bl_log(s->n, BL_LOG_WARN, "pubsub: malformed %s from %s ignored", tag, owner);
        return; /* a sync is applied whole or the stale part is kept */
    }
    if (!sync) return;
    rsub *r, *t;
    DL_FOREACH_SAFE(s->remote, r, t)
    if (!strcmp(r->node, owner) && r->gen != gen && !r->name[0]) rsub_del(s, r);
}

/* ---- queues and delivery ---- */

static void schedule_flush(ps *s);

static void enqueue(ps *s, lsub *l, psmsg *m)
{
    qitem *q = malloc(sizeof(*q));
    if (!q) {
        COUNT(s, m->topic, dropped);
        return;
    }
    if (l->qlen >= l->max_queue) { /* drop the oldest of the lowest non-empty priority */
        for (int p = 2; p >= 0; p--) {
            if (!l->qh[p]) continue;
            if (p < m->prio) break; /* everything queued outranks the new one: drop it */
            qitem *o = l->qh[p];
            l->qh[p] = o->next;
            if (!l->qh[p]) l->qt[p] = NULL;
            l->qlen--;
            COUNT(s, o->m->topic, dropped);
            msg_unref(o->m);
            free(o);
            break;
        }
        if (l->qlen >= l->max_queue) {
            free(q);
            COUNT(s, m->topic, dropped);
            return;
        }
    }
    q->next = NULL;
    q->m = m;
    m->refs++;
    if (l->qt[m->prio])
        l->qt[m->prio]->next = q;
    else
        l->qh[m->prio] = q;
    l->qt[m->prio] = q;
    l->qlen++;
    schedule_flush(s);
}

static void encode_meta(ei_x_buff *x, const psmsg *m, const lsub *l)
{
    ei_x_encode_map_header(x, 7);
    ei_x_encode_atom(x, "id");
    ei_x_encode_binary(x, m->id, (long)strlen(m->id));
    ei_x_encode_atom(x, "priority");
    ei_x_encode_atom(x, PRIO_NAMES[m->prio]);
    ei_x_encode_atom(x, "qos");
    ei_x_encode_atom(x, QOS_NAMES[m->qos == QOS_ALO && l->name[0] ? l->qos : QOS_AMO]);
    ei_x_encode_atom(x, "published_at");
    ei_x_encode_ulonglong(x, m->published_at);
    ei_x_encode_atom(x, "ttl_ms");
    ei_x_encode_ulong(x, m->ttl_ms);
    ei_x_encode_atom(x, "publisher");
    ei_x_encode_atom(x, m->publisher);
    ei_x_encode_atom(x, "sub");
    ei_x_encode_long(x, l->id);
}

static int seen_has(ps *s, const char *name, const char *id);
static void seen_add(ps *s, const char *name, const char *id);
static seen *seen_mem(ps *s, const char *key, unsigned long long at);
static void ack_to(ps *s, const char *name, const char *id);

/* Deliver one message to l. Returns 0 delivered/dropped, -1 congested (keep it queued). */
/* Run a C subscription's callback (l may be gone afterwards; the caller holds a ref on m). */
static void call_cb(ps *s, lsub *l, psmsg *m)
{
    bl_pubsub_meta meta = {.id = m->id,
                           .publisher = m->publisher,
                           .priority = (bl_pubsub_priority)m->prio,
                           .ttl_ms = m->ttl_ms,
                           .published_at = m->published_at,
                           .sub_id = l->id};
    COUNT(s, m->topic, delivered);
    s->delivering++;
    l->cb(s->n, m->topic, m->payload, m->len, &meta, l->ud);
    s->delivering--;
}

static int deliver(ps *s, lsub *l, psmsg *m)
{
    if (l->qos == QOS_EO && m->qos == QOS_ALO) {
        /* recorded (persisted) as it is queued for sending (the bytes leave the process later in
         * this loop iteration), acknowledged to the publisher: a retry is not delivered again */
        if (seen_has(s, l->name, m->id)) {
            ack_to(s, l->name, m->id);
            return 0;
        }
        if (l->is_pid) {
            ei_x_buff x;
            ei_x_new_with_version(&x);
            ei_x_encode_tuple_header(&x, 4);
            ei_x_encode_atom(&x, "beamlet_msg");
            ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
            ei_x_append_buf(&x, m->payload, m->len);
            encode_meta(&x, m, l);
            int rc = bl_send(s->proc, &l->pid, x.buff, x.index);
            ei_x_free(&x);
            if (rc == BL_EBUSY) return -1;
            if (rc != BL_OK) { /* not recorded: the publisher's retry brings it again */
                COUNT(s, m->topic, dropped);
                return 0;
            }
            COUNT(s, m->topic, delivered);
        } else {
            /* a C subscriber: recorded once its callback returned (a crash inside the callback
             * brings the message again after the restart) */
            char name[NAME_LEN];
            snprintf(name, sizeof(name), "%s", l->name);
            m->refs++;
            call_cb(s, l, m);
            seen_add(s, name, m->id);
            ack_to(s, name, m->id);
            msg_unref(m);
            return 0;
        }
        seen_add(s, l->name, m->id);
        ack_to(s, l->name, m->id);
        return 0;
    }
    if (!l->is_pid) {
        /* a durable C subscription acknowledges when its callback returns */
        int ack = l->name[0] && l->qos == QOS_ALO && m->qos == QOS_ALO;
        char name[NAME_LEN];
        snprintf(name, sizeof(name), "%s", l->name);
        m->refs++; /* the callback may unsubscribe l, freeing its queue */
        call_cb(s, l, m);
        if (ack) ack_to(s, name, m->id);
        msg_unref(m);
        return 0;
    }
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "beamlet_msg");
    ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
    ei_x_append_buf(&x, m->payload, m->len);
    encode_meta(&x, m, l);
    int rc = bl_send(s->proc, &l->pid, x.buff, x.index);
    ei_x_free(&x);
    if (rc == BL_EBUSY) return -1;
    if (rc == BL_OK)
        COUNT(s, m->topic, delivered);
    else
        COUNT(s, m->topic, dropped);
    return 0;
}

static void flush_sub(ps *s, lsub *l, ev_tstamp now)
{
    int id = l->id;
    while (!l->paused && l->qlen) {
        int p = l->qh[0] ? 0 : l->qh[1] ? 1 : 2;
        qitem *q = l->qh[p];
        psmsg *m = q->m;
        if (m->expires_at > 0 && now >= m->expires_at) {
            COUNT(s, m->topic, expired);
        } else {
            if (deliver(s, l, m) < 0) return;
            if (find_sub(s, id) != l) return; /* a callback unsubscribed (l was freed) */
        }
        if (l->qh[p] != q) continue; /* a callback changed the queue */
        l->qh[p] = q->next;
        if (!l->qh[p]) l->qt[p] = NULL;
        l->qlen--;
        msg_unref(m);
        free(q);
    }
}

static void flush_all(ps *s)
{
    ev_tstamp now = ev_now(s->n->loop);
    lsub *l = s->subs;
    while (l) {
        /* a C callback may unsubscribe l or its successor: find the successor again by id (if it
         * went away, the rest waits for the next tick) */
        int next = l->next ? l->next->id : 0;
        if (l->qlen && !l->paused) flush_sub(s, l, now);
        l = next ? find_sub(s, next) : NULL;
    }
}

static void on_flush(bl_node *n, void *ud)
{
    (void)n;
    ps *s = ud;
    s->flush_timer = 0;
    flush_all(s);
}

static void schedule_flush(ps *s)
{
    if (s->flush_timer > 0) return;
    int id = bl_timer(s->n, 0, 0, on_flush, s);
    s->flush_timer = id > 0 ? id : 0;
}

/* Expire queued messages of paused / congested subscriptions. */
static void expire_queued(ps *s, ev_tstamp now)
{
    lsub *l;
    DL_FOREACH(s->subs, l)
    {
        for (int p = 0; p < 3; p++) {
            qitem **pp = &l->qh[p], *last = NULL;
            while (*pp) {
                qitem *q = *pp;
                if (q->m->expires_at > 0 && now >= q->m->expires_at) {
                    COUNT(s, q->m->topic, expired);
                    *pp = q->next;
                    l->qlen--;
                    msg_unref(q->m);
                    free(q);
                } else {
                    last = q;
                    pp = &q->next;
                }
            }
            l->qt[p] = last;
        }
    }
}

static psmsg *msg_new(const char *topic, const char *payload, int len)
{
    psmsg *m = calloc(1, sizeof(*m) + (size_t)len);
    if (!m) return NULL;
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    memcpy(m->payload, payload, (size_t)len);
    m->len = len;
    m->refs = 1;
    return m;
}

/* Enqueue m on every matching local subscription. */
static void fan_out_local(ps *s, psmsg *m, int skip_durable)
{
    lsub *l;
    DL_FOREACH(s->subs, l)
    if (!(skip_durable && l->name[0]) && match_levels(l->pattern, m->topic)) enqueue(s, l, m);
}

/* ---- the durable outbox (at-least-once) ---- */

static int store_exec(ps *s, const char *sql)
{
    char *err = NULL;
    if (s->st.exec(s->st.db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    bl_log(s->n, BL_LOG_ERROR, "pubsub: sqlite: %s", err ? err : "?");
    if (err) s->st.free(err);
    return -1;
}

static void store_close(ps *s)
{
    if (s->st.db) s->st.close(s->st.db);
    if (s->st.lib) dlclose(s->st.lib);
    memset(&s->st, 0, sizeof(s->st));
}

static int store_put(ps *s, const pend *p)
{
    sqlite3_stmt *q = NULL;
    const psmsg *m = p->m;
    unsigned long long exp = m->ttl_ms ? m->published_at + m->ttl_ms : 0;
    int rc = s->st.prepare_v2(s->st.db,
                              "INSERT OR REPLACE INTO outbox(id, node, name, topic, payload, "
                              "prio, ttl, published_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
                              -1, &q, NULL);
    if (rc == SQLITE_OK) {
        s->st.bind_text(q, 1, m->id, -1, SQLITE_TRANSIENT);
        s->st.bind_text(q, 2, p->node, -1, SQLITE_TRANSIENT);
        s->st.bind_text(q, 3, p->name, -1, SQLITE_TRANSIENT);
        s->st.bind_text(q, 4, m->topic, -1, SQLITE_TRANSIENT);
        s->st.bind_blob(q, 5, m->payload, m->len, SQLITE_TRANSIENT);
        s->st.bind_int64(q, 6, m->prio);
        s->st.bind_int64(q, 7, m->ttl_ms);
        s->st.bind_int64(q, 8, (sqlite3_int64)m->published_at);
        s->st.bind_int64(q, 9, (sqlite3_int64)exp);
        rc = s->st.step(q);
    }
    if (q) s->st.finalize(q);
    if (rc == SQLITE_DONE) return 0;
    bl_log(s->n, BL_LOG_ERROR, "pubsub: outbox insert: %s", s->st.errmsg(s->st.db));
    return -1;
}

static void store_del(ps *s, const pend *p)
{
    sqlite3_stmt *q = NULL;
    int rc = s->st.prepare_v2(s->st.db, "DELETE FROM outbox WHERE id=? AND node=? AND name=?", -1,
                              &q, NULL);
    if (rc == SQLITE_OK) {
        s->st.bind_text(q, 1, p->m->id, -1, SQLITE_TRANSIENT);
        s->st.bind_text(q, 2, p->node, -1, SQLITE_TRANSIENT);
        s->st.bind_text(q, 3, p->name, -1, SQLITE_TRANSIENT);
        rc = s->st.step(q);
    }
    if (q) s->st.finalize(q);
    if (rc != SQLITE_DONE)
        bl_log(s->n, BL_LOG_ERROR, "pubsub: outbox delete: %s", s->st.errmsg(s->st.db));
}

static void pend_free(ps *s, pend *p)
{
    DL_DELETE(s->pends, p);
    s->npend--;
    msg_unref(p->m);
    free(p);
}

static pend *pend_new(ps *s, psmsg *m, const char *node, const char *name)
{
    pend *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    snprintf(p->node, sizeof(p->node), "%s", node);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->m = m;
    m->refs++;
    p->next_at = ev_now(s->n->loop) + ACK_WAIT;
    DL_APPEND(s->pends, p);
    s->npend++;
    return p;
}

/* Rows left by an earlier run of this node: retried from now on. */
static void store_load(ps *s)
{
    sqlite3_stmt *q = NULL;
    if (s->st.prepare_v2(s->st.db,
                         "SELECT id, node, name, topic, payload, prio, ttl, published_at, "
                         "expires_at FROM outbox ORDER BY rowid",
                         -1, &q, NULL) != SQLITE_OK)
        return;
    unsigned long long wall = bl_now_ms();
    unsigned k = 0;
    while (s->st.step(q) == SQLITE_ROW) {
        const char *id = (const char *)s->st.column_text(q, 0);
        const char *node = (const char *)s->st.column_text(q, 1);
        const char *name = (const char *)s->st.column_text(q, 2);
        const char *topic = (const char *)s->st.column_text(q, 3);
        const void *pl = s->st.column_blob(q, 4);
        int len = s->st.column_bytes(q, 4);
        long long prio = s->st.column_int64(q, 5);
        int idx = 0;
        if (!id || !node || !name || !topic || !pl || len <= 0 || prio < 0 || prio > 2 ||
            !bl_pubsub_topic_valid(topic) || ei_skip_term(pl, &idx) < 0 || idx != len)
            continue;
        psmsg *m = msg_new(topic, pl, len);
        if (!m) break;
        snprintf(m->id, sizeof(m->id), "%s", id);
        snprintf(m->publisher, sizeof(m->publisher), "%s", s->n->name);
        m->prio = (int)prio;
        m->qos = QOS_ALO;
        m->ttl_ms = (unsigned)s->st.column_int64(q, 6);
        m->published_at = (unsigned long long)s->st.column_int64(q, 7);
        unsigned long long exp = (unsigned long long)s->st.column_int64(q, 8);
        if (exp)
            m->expires_at = ev_now(s->n->loop) + (exp > wall ? (double)(exp - wall) / 1000 : 0);
        if (pend_new(s, m, node, name)) k++;
        msg_unref(m);
    }
    s->st.finalize(q);
    if (k) bl_log(s->n, BL_LOG_INFO, "pubsub: %u unacknowledged deliveries reloaded", k);
}

static void store_open(ps *s)
{
    const char *dir = s->n->cfg.data_dir[0] ? s->n->cfg.data_dir : NULL;
    if (!dir || !*dir) return; /* no outbox: at-least-once publishes are refused */
    store *st = &s->st;
    st->lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!st->lib) {
        bl_log(s->n, BL_LOG_ERROR, "pubsub: cannot load libsqlite3.so.0: %s", dlerror());
        return;
    }
#define SYM(f, name)                                                                               \
    if (!(st->f = (__typeof__(st->f))dlsym(st->lib, name))) goto fail
    SYM(open_v2, "sqlite3_open_v2");
    SYM(close, "sqlite3_close");
    SYM(exec, "sqlite3_exec");
    SYM(prepare_v2, "sqlite3_prepare_v2");
    SYM(bind_text, "sqlite3_bind_text");
    SYM(bind_blob, "sqlite3_bind_blob");
    SYM(bind_int64, "sqlite3_bind_int64");
    SYM(step, "sqlite3_step");
    SYM(finalize, "sqlite3_finalize");
    SYM(column_text, "sqlite3_column_text");
    SYM(column_blob, "sqlite3_column_blob");
    SYM(column_bytes, "sqlite3_column_bytes");
    SYM(column_int64, "sqlite3_column_int64");
    SYM(errmsg, "sqlite3_errmsg");
    SYM(free, "sqlite3_free");
#undef SYM
    char path[2048];
    snprintf(path, sizeof(path), "%s/pubsub-%s.db", dir, s->n->name);
    if (st->open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                    NULL) != SQLITE_OK) {
        bl_log(s->n, BL_LOG_ERROR, "pubsub: cannot open %s", path);
        goto fail;
    }
    /* WAL + synchronous=NORMAL: a commit is a write(2), no fsync on the loop; it survives the
     * process being killed (not a power loss) */
    if (store_exec(
            s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE IF NOT EXISTS outbox(id TEXT NOT NULL, node TEXT NOT NULL,"
               " name TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,"
               " prio INTEGER NOT NULL, ttl INTEGER NOT NULL, published_at INTEGER NOT NULL,"
               " expires_at INTEGER NOT NULL, PRIMARY KEY(id, node, name));"
               "CREATE TABLE IF NOT EXISTS seen(key TEXT PRIMARY KEY, at INTEGER NOT NULL);") < 0)
        goto fail;
    sqlite3_stmt *q = NULL;
    if (st->prepare_v2(st->db, "SELECT key, at FROM seen ORDER BY at", -1, &q, NULL) == SQLITE_OK) {
        while (st->step(q) == SQLITE_ROW) {
            const char *key = (const char *)st->column_text(q, 0);
            if (key && strlen(key) < NAME_LEN + BL_PUBSUB_ID_LEN)
                seen_mem(s, key, (unsigned long long)st->column_int64(q, 1));
        }
        st->finalize(q);
    }
    bl_log(s->n, BL_LOG_INFO, "pubsub: outbox %s", path);
    store_load(s);
    return;
fail:
    bl_log(s->n, BL_LOG_ERROR, "pubsub: no durable outbox: at-least-once publishes refused");
    store_close(s);
}

/* Enqueue m for the local durable subscription `name` (once: a retry of a message still queued
 * is not queued twice). */
static void local_durable(ps *s, psmsg *m, const char *name)
{
    lsub *l;
    DL_FOREACH(s->subs, l)
    {
        if (strcmp(l->name, name)) continue;
        for (int p = 0; p < 3; p++) {
            qitem *q;
            LL_FOREACH(l->qh[p], q)
            if (!strcmp(q->m->id, m->id)) return;
        }
        enqueue(s, l, m);
        return;
    }
}

static void pend_send(ps *s, pend *p)
{
    bl_node *n = s->n;
    psmsg *m = p->m;
    if (bl_is_local_node(n, p->node)) {
        if (seen_has(s, p->name, m->id))
            ack_to(s, p->name, m->id);
        else
            local_durable(s, m, p->name);
        return;
    }
    if (!bl_is_connected(n, p->node)) { /* connect for the next retry; nothing to send now */
        bl_connect(n, p->node);
        return;
    }
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 9);
    ei_x_encode_atom(&x, "bl_ps_amsg");
    ei_x_encode_atom(&x, n->name);
    ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
    ei_x_append_buf(&x, m->payload, m->len);
    ei_x_encode_binary(&x, m->id, (long)strlen(m->id));
    ei_x_encode_long(&x, m->prio);
    ei_x_encode_ulong(&x, m->ttl_ms);
    ei_x_encode_ulonglong(&x, m->published_at);
    ei_x_encode_binary(&x, p->name, (long)strlen(p->name));
    bl_send_name(s->proc, PS_NAME, p->node, x.buff, x.index);
    ei_x_free(&x);
}

static void retry_pends(ps *s, ev_tstamp now)
{
    pend *p, *t;
    DL_FOREACH_SAFE(s->pends, p, t)
    {
        if (p->m->expires_at > 0 && now >= p->m->expires_at) {
            COUNT(s, p->m->topic, expired);
            store_del(s, p);
            pend_free(s, p);
            continue;
        }
        if (now < p->next_at) continue;
        double wait = ACK_WAIT * (double)(1u << (p->attempts < 4 ? p->attempts : 4));
        p->attempts++;
        p->next_at = now + (wait < MAX_BACKOFF ? wait : MAX_BACKOFF);
        COUNT(s, p->m->topic, retried);
        pend_send(s, p);
    }
}

/* A durable subscription was removed for good: its pending deliveries go. */
static void drop_pends(ps *s, const char *node, const char *name)
{
    pend *p, *t;
    DL_FOREACH_SAFE(s->pends, p, t)
    {
        if (strcmp(p->node, node) || strcmp(p->name, name)) continue;
        if (s->st.db) store_del(s, p);
        pend_free(s, p);
    }
}

/* The subscriber of the durable subscription `name` on `node` acknowledged message `id`. */
static void handle_ack(ps *s, const char *node, const char *name, const char *id)
{
    pend *p, *t;
    DL_FOREACH_SAFE(s->pends, p, t)
    {
        if (strcmp(p->m->id, id) || strcmp(p->node, node) || strcmp(p->name, name)) continue;
        store_del(s, p);
        pend_free(s, p);
        return;
    }
}

/* An ack for durable subscription `name` to the publisher, named by the id ("node-epoch-seq"). */
static void ack_to(ps *s, const char *name, const char *id)
{
    const char *d2 = strrchr(id, '-');
    if (!d2 || d2 == id) return;
    const char *d1 = d2 - 1;
    while (d1 > id && *d1 != '-')
        d1--;
    if (d1 == id || (size_t)(d1 - id) >= BL_NODE_LEN) return;
    char node[BL_NODE_LEN];
    memcpy(node, id, (size_t)(d1 - id));
    node[d1 - id] = '\0';
    if (bl_is_local_node(s->n, node)) {
        handle_ack(s, node, name, id);
        return;
    }
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "bl_ps_ack");
    ei_x_encode_atom(&x, s->n->name);
    ei_x_encode_binary(&x, name, (long)strlen(name));
    ei_x_encode_binary(&x, id, (long)strlen(id));
    bl_send_name(s->proc, PS_NAME, node, x.buff, x.index);
    ei_x_free(&x);
}

/* An ack from a local subscriber (exactly-once subscriptions were acknowledged already). */
static void do_ack(ps *s, const lsub *l, const char *id)
{
    if (l->name[0] && l->qos == QOS_ALO) ack_to(s, l->name, id);
}

/* ---- the exactly-once window ---- */

static void seen_key(char *key, const char *name, const char *id)
{
    snprintf(key, NAME_LEN + BL_PUBSUB_ID_LEN, "%s\n%s", name, id);
}

static int seen_has(ps *s, const char *name, const char *id)
{
    char key[NAME_LEN + BL_PUBSUB_ID_LEN];
    seen *e = NULL;
    seen_key(key, name, id);
    HASH_FIND_STR(s->seen_h, key, e);
    return e != NULL;
}

static void seen_sql(ps *s, const char *sql, const char *key, unsigned long long at)
{
    sqlite3_stmt *q = NULL;
    if (!s->st.db) return;
    int rc = s->st.prepare_v2(s->st.db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        s->st.bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
        if (at) s->st.bind_int64(q, 2, (sqlite3_int64)at);
        rc = s->st.step(q);
    }
    if (q) s->st.finalize(q);
    if (rc != SQLITE_DONE) bl_log(s->n, BL_LOG_ERROR, "pubsub: window: %s", s->st.errmsg(s->st.db));
}

static void seen_evict(ps *s, seen *e, int persist)
{
    if (persist) seen_sql(s, "DELETE FROM seen WHERE key=?", e->key, 0);
    HASH_DEL(s->seen_h, e);
    DL_DELETE(s->seen_l, e);
    s->nseen--;
    free(e);
}

static seen *seen_mem(ps *s, const char *key, unsigned long long at)
{
    seen *e = NULL;
    HASH_FIND_STR(s->seen_h, key, e);
    if (e) return e;
    e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->at = at;
    HASH_ADD_STR(s->seen_h, key, e);
    DL_APPEND(s->seen_l, e);
    s->nseen++;
    return e;
}

static void seen_add(ps *s, const char *name, const char *id)
{
    char key[NAME_LEN + BL_PUBSUB_ID_LEN];
    seen_key(key, name, id);
    unsigned long long at = bl_now_ms();
    if (!seen_mem(s, key, at)) return;
    seen_sql(s, "INSERT OR REPLACE INTO seen(key, at) VALUES (?, ?)", key, at);
    while (s->nseen > MAX_SEEN)
        seen_evict(s, s->seen_l, 1);
}

/* Ids older than SEEN_MAX_AGE_MS leave the window (checked every tick, oldest first). */
static void seen_age(ps *s)
{
    unsigned long long now = bl_now_ms();
    while (s->seen_l && s->seen_l->at + SEEN_MAX_AGE_MS < now)
        seen_evict(s, s->seen_l, 1);
}

/* ---- publishing ---- */

/* Send m to every other node with a matching subscription (durable ones too when !skip_durable),
 * once per node. */
static void fan_out_remote(ps *s, psmsg *m, const char *payload, int len, int skip_durable)
{
    bl_node *n = s->n;
    ei_x_buff x;
    int built = 0;
    rsub *r;
    const char **sent = NULL; /* nodes sent to already: once per node */
    size_t nsent = 0, capsent = 0;
    DL_FOREACH(s->remote, r)
    {
        if ((skip_durable && r->name[0]) || !match_levels(r->pattern, m->topic)) continue;
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
            ei_x_new_with_version(&x);
            ei_x_encode_tuple_header(&x, 8);
            ei_x_encode_atom(&x, skip_durable ? "bl_ps_msgn" : "bl_ps_msg");
            ei_x_encode_atom(&x, n->name);
            ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
            ei_x_append_buf(&x, payload, len);
            ei_x_encode_binary(&x, m->id, (long)strlen(m->id));
            ei_x_encode_long(&x, m->prio);
            ei_x_encode_ulong(&x, m->ttl_ms);
            ei_x_encode_ulonglong(&x, m->published_at);
            built = 1;
        }
        int rc = bl_send_name(s->proc, PS_NAME, r->node, x.buff, x.index);
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
    if (ei_skip_term(payload, &idx) < 0 || idx != len) return BL_EINVAL;
    if ((size_t)len > n->cfg.max_message_size / 2) return BL_ETOOBIG;
    if (qos == QOS_EO) qos = QOS_ALO; /* the same outbox; de-duplication is the subscription's */
    if (qos == QOS_ALO && !s->st.db) return BL_ECONFIG;
    psmsg *m = msg_new(topic, payload, len);
    if (!m) return BL_ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s-%llx-%llu", n->name, s->epoch_ms, ++s->next_msg);
    snprintf(m->publisher, sizeof(m->publisher), "%s", n->name);
    m->prio = prio;
    m->qos = qos;
    m->ttl_ms = ttl_ms;
    m->published_at = bl_now_ms();
    m->expires_at = ttl_ms ? ev_now(n->loop) + ttl_ms / 1000.0 : 0;
    if (qos == QOS_ALO) { /* durable subscriptions: an outbox row each, before replying */
        unsigned targets = 0;
        lsub *l;
        rsub *r;
        DL_FOREACH(s->subs, l)
        targets += l->name[0] && match_levels(l->pattern, topic);
        DL_FOREACH(s->remote, r)
        targets += r->name[0] && match_levels(r->pattern, topic);
        if (s->npend + targets > MAX_PENDING) {
            msg_unref(m);
            return BL_ENOMEM;
        }
        pend *first = NULL;
        int failed = 0;
        DL_FOREACH(s->subs, l)
        {
            if (!l->name[0] || !match_levels(l->pattern, topic)) continue;
            pend *p = pend_new(s, m, n->name, l->name);
            if (!p || store_put(s, p) < 0) failed = 1;
            if (p && !first) first = p;
        }
        DL_FOREACH(s->remote, r)
        {
            if (!r->name[0] || !match_levels(r->pattern, topic)) continue;
            pend *p = pend_new(s, m, r->node, r->name);
            if (!p || store_put(s, p) < 0) failed = 1;
            if (p && !first) first = p;
        }
        if (failed) { /* not durable: undo, the caller gets an error */
            pend *p, *t;
            int on = 0;
            DL_FOREACH_SAFE(s->pends, p, t)
            {
                on |= p == first;
                if (!on) continue;
                store_del(s, p);
                pend_free(s, p);
            }
            msg_unref(m);
            return BL_ESYS;
        }
        pend *p;
        for (p = first; p; p = p->next)
            pend_send(s, p);
    }
    COUNT(s, topic, published);
    if (id_out && id_len) snprintf(id_out, id_len, "%s", m->id);
    fan_out_local(s, m, qos == QOS_ALO);
    fan_out_remote(s, m, payload, len, qos == QOS_ALO);
    msg_unref(m);
    return BL_OK;
}

/* bl_ps_msg / bl_ps_msgn (durable subscriptions skipped) / bl_ps_amsg (one durable one). */
static void handle_remote_msg(ps *s, const bl_msg *msg, const char *buf, int idx, int kind)
{
    char origin[MAXATOMLEN_UTF8], topic[BL_PUBSUB_TOPIC_LEN], id[BL_PUBSUB_ID_LEN];
    char name[NAME_LEN] = "";
    long prio;
    unsigned long ttl;
    unsigned long long at;
    if (get_atom(buf, &idx, origin) < 0 || !msg->has_sender || strcmp(msg->sender.node, origin) ||
        get_str(buf, &idx, topic, sizeof(topic)) < 0 || !bl_pubsub_topic_valid(topic))
        return;
    int p0 = idx;
    if (ei_skip_term(buf, &idx) < 0) return;
    int p1 = idx;
    if (get_str(buf, &idx, id, sizeof(id)) < 0 || ei_decode_long(buf, &idx, &prio) < 0 ||
        prio < 0 || prio > 2 || ei_decode_ulong(buf, &idx, &ttl) < 0 || ttl > 0xffffffffUL ||
        ei_decode_ulonglong(buf, &idx, &at) < 0 ||
        (kind == 2 && (get_str(buf, &idx, name, sizeof(name)) < 0 || !name[0]))) {
        bl_log(s->n, BL_LOG_WARN, "pubsub: malformed message from %s ignored", origin);
        return;
    }
    psmsg *m = msg_new(topic, buf + p0, p1 - p0);
    if (!m) return;
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->publisher, sizeof(m->publisher), "%s", origin);
    m->prio = (int)prio;
    m->qos = kind == 2 ? QOS_ALO : QOS_AMO;
    m->ttl_ms = (unsigned)ttl;
    m->published_at = at;
    /* TTL runs from receipt: clocks of two nodes are not compared */
    m->expires_at = ttl ? ev_now(s->n->loop) + (double)ttl / 1000.0 : 0;
    if (kind == 2 && seen_has(s, name, id))
        ack_to(s, name, id); /* an exactly-once subscription has it already */
    else if (kind == 2)
        local_durable(s, m, name);
    else
        fan_out_local(s, m, kind == 1);
    msg_unref(m);
}

/* ---- subscriptions ---- */

typedef struct subopts {
    unsigned max_queue;
    int paused, nolink, qos;
    char name[NAME_LEN]; /* non-empty: durable, at-least-once or exactly-once */
} subopts;

static void del_sub(ps *s, lsub *l, int repl);

static int add_sub(ps *s, const char *pattern, const bl_pid *pid, bl_pubsub_cb cb, void *ud,
                   const subopts *o)
{
    if (!bl_pubsub_pattern_valid(pattern) || (!pid && !cb) || o->max_queue > MAX_QUEUE_LIMIT)
        return BL_EINVAL;
    if (o->name[0]) { /* the same durable name again (say after a restart): it replaces the old */
        lsub *old;
        DL_FOREACH(s->subs, old)
        if (!strcmp(old->name, o->name)) break;
        if (old) del_sub(s, old, 0);
    }
    if (s->nsubs >= MAX_LOCAL_SUBS) return BL_ENOMEM;
    lsub *l = calloc(1, sizeof(*l));
    if (!l) return BL_ENOMEM;
    if (++s->next_sub_id <= 0) s->next_sub_id = 1;
    l->id = s->next_sub_id;
    snprintf(l->pattern, sizeof(l->pattern), "%s", pattern);
    if (pid) {
        l->is_pid = 1;
        l->pid = *pid;
        if (!o->nolink) bl_link(s->proc, pid); /* its exit removes the subscription */
    }
    l->cb = cb;
    l->ud = ud;
    l->paused = o->paused;
    snprintf(l->name, sizeof(l->name), "%s", o->name);
    l->qos = o->qos;
    l->max_queue = o->max_queue ? o->max_queue : DEFAULT_MAX_QUEUE;
    DL_APPEND(s->subs, l);
    s->nsubs++;
    replicate(s, l, 0);
    return l->id;
}

/* repl 0: a durable subscription whose subscriber went away stays known to the publishers
 * (they keep its messages until it is made again with the same name). */
static void del_sub(ps *s, lsub *l, int repl)
{
    if (repl || !l->name[0]) replicate(s, l, 1);
    if (repl && l->name[0]) drop_pends(s, s->n->name, l->name);
    DL_DELETE(s->subs, l);
    s->nsubs--;
    if (l->is_pid) {
        lsub *o;
        int more = 0;
        DL_FOREACH(s->subs, o)
        more |= o->is_pid && bl_pid_eq(&o->pid, &l->pid);
        if (!more) bl_unlink(s->proc, &l->pid);
    }
    queue_clear(l);
    free(l);
}

static void del_subs_of(ps *s, const bl_pid *pid, const char *node, const char *why)
{
    unsigned k = 0;
    lsub *l, *t;
    DL_FOREACH_SAFE(s->subs, l, t)
    {
        if (!l->is_pid) continue;
        if (pid ? !bl_pid_eq(&l->pid, pid) : strcmp(l->pid.node, node)) continue;
        del_sub(s, l, 0);
        k++;
    }
    if (k) bl_log(s->n, BL_LOG_DEBUG, "pubsub: %u subscriptions removed (%s)", k, why);
}

/* ---- cluster events on cluster.events ---- */

static void publish_event(ps *s, const bl_cluster_event *ev)
{
    static const char *TYPES[] = {"node_joined", "node_state_changed", "node_left",
                                  "leader_changed"};
    ei_x_buff x;
    ei_x_new(&x);
    int extra = ev->type == BL_EV_NODE_STATE_CHANGED ? 2 : ev->type == BL_EV_LEADER_CHANGED ? 2 : 0;
    ei_x_encode_map_header(&x, 5 + extra);
    ei_x_encode_atom(&x, "event");
    ei_x_encode_atom(&x, (unsigned)ev->type < 4 ? TYPES[ev->type] : "unknown");
    ei_x_encode_atom(&x, "node");
    if (ev->type == BL_EV_LEADER_CHANGED && !ev->has_leader)
        ei_x_encode_atom(&x, "none");
    else
        ei_x_encode_atom(&x, ev->node);
    ei_x_encode_atom(&x, "role");
    ei_x_encode_binary(&x, ev->role, (long)strlen(ev->role));
    ei_x_encode_atom(&x, "seq");
    ei_x_encode_ulonglong(&x, ev->seq);
    ei_x_encode_atom(&x, "time_ms");
    ei_x_encode_ulonglong(&x, ev->time_ms);
    if (ev->type == BL_EV_NODE_STATE_CHANGED) {
        ei_x_encode_atom(&x, "from");
        ei_x_encode_atom(&x, bl_member_state_name(ev->from));
        ei_x_encode_atom(&x, "to");
        ei_x_encode_atom(&x, bl_member_state_name(ev->to));
    } else if (ev->type == BL_EV_LEADER_CHANGED) {
        ei_x_encode_atom(&x, "term");
        ei_x_encode_ulonglong(&x, ev->term);
        ei_x_encode_atom(&x, "has_leader");
        ei_x_encode_atom(&x, ev->has_leader ? "true" : "false");
    }
    psmsg *m = msg_new(EVENTS_TOPIC, x.buff, x.index);
    ei_x_free(&x);
    if (!m) return;
    snprintf(m->id, sizeof(m->id), "%s-%llx-%llu", s->n->name, s->epoch_ms, ++s->next_msg);
    snprintf(m->publisher, sizeof(m->publisher), "%s", s->n->name);
    m->prio = BL_PRIO_HIGH;
    m->published_at = bl_now_ms();
    COUNT(s, EVENTS_TOPIC, published);
    fan_out_local(s, m, 0);
    msg_unref(m);
}

static void on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    ps *s = ud;
    publish_event(s, ev);
    if (bl_is_local_node(n, ev->node)) return;
    if (ev->type == BL_EV_NODE_LEFT) {
        drop_remote(s, ev->node, "member forgotten");
    } else if (ev->type == BL_EV_NODE_STATE_CHANGED) {
        if (ev->to == BL_MEMBER_FAILED || ev->to == BL_MEMBER_LEFT || ev->to == BL_MEMBER_LEAVING)
            drop_remote(s, ev->node, bl_member_state_name(ev->to));
        else if (ev->to == BL_MEMBER_ACTIVE && bl_is_connected(n, ev->node)) {
            send_sync_turn(s, ev->node, 0);
            send_want(s, ev->node);
        }
    } else if (ev->type == BL_EV_NODE_JOINED && strcmp(ev->role, "beam") &&
               bl_is_connected(n, ev->node)) {
        send_sync_turn(s, ev->node, 0);
        send_want(s, ev->node);
    }
}

static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    ps *s = ud;
    if (bl_is_tool_node(node)) return;
    if (ev == BL_NODEUP) {
        send_sync_turn(s, node, 0);
        send_want(s, node);
    } else {
        drop_remote(s, node, "nodedown");
        del_subs_of(s, NULL, node, "subscriber node down");
    }
}

static void on_tick(bl_node *n, void *ud)
{
    ps *s = ud;
    ev_tstamp now = ev_now(n->loop);
    expire_queued(s, now);
    retry_pends(s, now);
    seen_age(s);
    flush_all(s);
    if (++s->ticks % SYNC_EVERY == 0) send_sync_turn(s, NULL, (long)(s->ticks / SYNC_EVERY));
}

/* ---- the process protocol ---- */

static int reply_err(ei_x_buff *reply, const char *why)
{
    reply->index = 0;
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, why);
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

static void encode_counters(ei_x_buff *x, const bl_pubsub_counters *c)
{
    static const bl_pubsub_counters zero;
    if (!c) c = &zero;
    ei_x_encode_map_header(x, 5);
    ei_x_encode_atom(x, "published");
    ei_x_encode_ulonglong(x, c->published);
    ei_x_encode_atom(x, "delivered");
    ei_x_encode_ulonglong(x, c->delivered);
    ei_x_encode_atom(x, "retried");
    ei_x_encode_ulonglong(x, c->retried);
    ei_x_encode_atom(x, "expired");
    ei_x_encode_ulonglong(x, c->expired);
    ei_x_encode_atom(x, "dropped");
    ei_x_encode_ulonglong(x, c->dropped);
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
        if (!strcmp(a, QOS_NAMES[q])) return q;
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
                get_str(buf, j, o->name, sizeof(o->name)) < 0 || !o->name[0])
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

/* Publish options: #{priority => high | normal | low, ttl_ms => N, qos => at_most_once}. */
static int decode_pub_opts(const char *buf, int *j, int *prio, unsigned *ttl, int *qos)
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
                if (!strcmp(a, PRIO_NAMES[p])) *prio = p;
            if (*prio < 0) return -1;
        } else if (!strcmp(a, "ttl_ms")) {
            long v;
            if (ei_decode_long(buf, j, &v) < 0 || v < 0 || v > 86400000L * 7) return -1;
            *ttl = (unsigned)v;
        } else if (!strcmp(a, "qos")) {
            if ((*qos = qos_from(buf, j)) < 0) return -1;
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
    if (get_str(buf, &j, topic, sizeof(topic)) < 0) return BL_EINVAL;
    int p0 = j;
    if (ei_skip_term(buf, &j) < 0) return BL_EINVAL;
    int p1 = j;
    if (decode_pub_opts(buf, &j, &prio, &ttl, &qos) < 0) return BL_EINVAL;
    return publish(s, topic, buf + p0, p1 - p0, prio, ttl, qos, id, idlen);
}

static int ps_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                   void *ud)
{
    (void)self;
    (void)from;
    ps *s = ud;
    char tag[MAXATOMLEN_UTF8];
    int j = idx, arity, type, size;
    if (ei_get_type(buf, &j, &type, &size) < 0) return reply_rc(reply, BL_EINVAL);
    if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
        type == ERL_SMALL_ATOM_UTF8_EXT) {
        if (get_atom(buf, &j, tag) < 0) return reply_rc(reply, BL_EINVAL);
        if (!strcmp(tag, "counters")) {
            ei_x_encode_map_header(reply, (long)HASH_COUNT(s->counts));
            tcount *t, *tt;
            HASH_ITER(hh, s->counts, t, tt)
            {
                ei_x_encode_binary(reply, t->topic, (long)strlen(t->topic));
                encode_counters(reply, &t->c);
            }
            return 0;
        }
        if (!strcmp(tag, "pending")) return ei_x_encode_ulong(reply, s->npend);
        if (!strcmp(tag, "subscriptions")) {
            lsub *l;
            rsub *r;
            DL_FOREACH(s->subs, l)
            {
                ei_x_encode_list_header(reply, 1);
                ei_x_encode_map_header(reply, 4);
                ei_x_encode_atom(reply, "id");
                ei_x_encode_long(reply, l->id);
                ei_x_encode_atom(reply, "pattern");
                ei_x_encode_binary(reply, l->pattern, (long)strlen(l->pattern));
                ei_x_encode_atom(reply, "node");
                ei_x_encode_atom(reply, s->n->name);
                ei_x_encode_atom(reply, "queued");
                ei_x_encode_ulong(reply, l->qlen);
            }
            DL_FOREACH(s->remote, r)
            {
                ei_x_encode_list_header(reply, 1);
                ei_x_encode_map_header(reply, 3);
                ei_x_encode_atom(reply, "id");
                ei_x_encode_long(reply, r->id);
                ei_x_encode_atom(reply, "pattern");
                ei_x_encode_binary(reply, r->pattern, (long)strlen(r->pattern));
                ei_x_encode_atom(reply, "node");
                ei_x_encode_atom(reply, r->node);
            }
            return ei_x_encode_empty_list(reply);
        }
        return reply_rc(reply, BL_EINVAL);
    }
    if (ei_decode_tuple_header(buf, &j, &arity) < 0 || arity < 2 || get_atom(buf, &j, tag) < 0)
        return reply_rc(reply, BL_EINVAL);
    if (!strcmp(tag, "subscribe") && (arity == 3 || arity == 4)) {
        char pat[BL_PUBSUB_TOPIC_LEN];
        bl_pid pid;
        subopts o;
        memset(&o, 0, sizeof(o));
        if (get_str(buf, &j, pat, sizeof(pat)) < 0 || ei_decode_pid(buf, &j, &pid) < 0 ||
            (arity == 4 && decode_sub_opts(buf, &j, &o) < 0))
            return reply_rc(reply, BL_EINVAL);
        if (bl_is_local_node(s->n, pid.node) && !bl_proc_by_pid(s->n, &pid))
            return reply_rc(reply, BL_EINVAL);
        if (o.qos != QOS_AMO && !s->st.db) return reply_rc(reply, BL_ECONFIG);
        int id = add_sub(s, pat, &pid, NULL, NULL, &o);
        if (id < 0) return reply_rc(reply, id);
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_long(reply, id);
    }
    if ((!strcmp(tag, "unsubscribe") || !strcmp(tag, "pause") || !strcmp(tag, "resume")) &&
        arity == 2) {
        long id;
        if (ei_decode_long(buf, &j, &id) < 0) return reply_rc(reply, BL_EINVAL);
        lsub *l = id > 0 && id <= 0x7fffffff ? find_sub(s, (int)id) : NULL;
        if (!l) return reply_rc(reply, BL_ENOPROC);
        if (tag[0] == 'u') {
            del_sub(s, l, 1);
        } else {
            l->paused = tag[0] == 'p';
            if (!l->paused) schedule_flush(s);
        }
        return reply_rc(reply, BL_OK);
    }
    if (!strcmp(tag, "publish") && arity == 4) {
        char id[BL_PUBSUB_ID_LEN];
        int rc = beam_publish(s, buf, j, id, sizeof(id));
        if (rc != BL_OK) return reply_rc(reply, rc);
        ei_x_encode_tuple_header(reply, 2);
        ei_x_encode_atom(reply, "ok");
        return ei_x_encode_binary(reply, id, (long)strlen(id));
    }
    if (!strcmp(tag, "ack") && arity == 3) {
        long sid;
        char id[BL_PUBSUB_ID_LEN];
        if (ei_decode_long(buf, &j, &sid) < 0 || get_str(buf, &j, id, sizeof(id)) < 0)
            return reply_rc(reply, BL_EINVAL);
        lsub *l = sid > 0 && sid <= 0x7fffffff ? find_sub(s, (int)sid) : NULL;
        if (!l) return reply_rc(reply, BL_ENOPROC);
        do_ack(s, l, id);
        return reply_rc(reply, BL_OK);
    }
    if (!strcmp(tag, "counters") && arity == 2) {
        char topic[BL_PUBSUB_TOPIC_LEN];
        if (get_str(buf, &j, topic, sizeof(topic)) < 0) return reply_rc(reply, BL_EINVAL);
        tcount *t = NULL;
        HASH_FIND_STR(s->counts, topic, t);
        encode_counters(reply, t ? &t->c : NULL);
        return 0;
    }
    return reply_rc(reply, BL_EINVAL);
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
        if (ei_decode_long(buf, &j, &sid) == 0 && get_str(buf, &j, id, sizeof(id)) == 0 &&
            sid > 0 && sid <= 0x7fffffff && (l = find_sub(s, (int)sid)))
            do_ack(s, l, id);
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
    const char *buf = msg->buf;
    int idx = msg->index, arity;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity < 2 || get_atom(buf, &idx, tag) < 0)
        return;
    if (arity == 8 && !strcmp(tag, "bl_ps_msg")) {
        handle_remote_msg(s, msg, buf, idx, 0);
    } else if (arity == 8 && !strcmp(tag, "bl_ps_msgn")) {
        handle_remote_msg(s, msg, buf, idx, 1);
    } else if (arity == 9 && !strcmp(tag, "bl_ps_amsg")) {
        handle_remote_msg(s, msg, buf, idx, 2);
    } else if (arity == 4 && !strcmp(tag, "bl_ps_ack")) {
        char node[MAXATOMLEN_UTF8], name[NAME_LEN], id[BL_PUBSUB_ID_LEN];
        if (get_atom(buf, &idx, node) == 0 && msg->has_sender && !strcmp(msg->sender.node, node) &&
            get_str(buf, &idx, name, sizeof(name)) == 0 && get_str(buf, &idx, id, sizeof(id)) == 0)
            handle_ack(s, node, name, id);
    } else if (arity == 2 && !strcmp(tag, "bl_ps_want")) {
        char node[MAXATOMLEN_UTF8];
        if (get_atom(buf, &idx, node) == 0 && msg->has_sender && !strcmp(msg->sender.node, node) &&
            is_peer(s, node))
            send_sync_turn(s, node, 0);
    } else if (arity == 3 && (!strcmp(tag, "bl_ps_add") || !strcmp(tag, "bl_ps_del") ||
                              !strcmp(tag, "bl_ps_sync"))) {
        handle_repl(s, msg, tag, buf, idx);
    }
}

static void ps_exit(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud)
{
    (void)self;
    (void)buf;
    (void)index;
    del_subs_of(ud, from, NULL, "subscriber exited");
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
    DL_FOREACH_SAFE(s->subs, l, lt)
    {
        queue_clear(l);
        free(l);
    }
    pend *p, *pt;
    DL_FOREACH_SAFE(s->pends, p, pt)
    {
        msg_unref(p->m);
        free(p);
    }
    seen *e, *et;
    HASH_ITER(hh, s->seen_h, e, et)
    {
        HASH_DEL(s->seen_h, e);
        free(e);
    }
    store_close(s);
    rsub *r, *rt;
    DL_FOREACH_SAFE(s->remote, r, rt) free(r);
    tcount *t, *tt;
    HASH_ITER(hh, s->counts, t, tt)
    {
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
    store_open(s);
    s->nodemon_id = bl_monitor_nodes(n, on_node, s);
    s->cluster_sub = n->cluster ? bl_cluster_subscribe(n, on_cluster, s) : 0;
    s->timer_id = bl_timer(n, TICK_MS, TICK_MS, on_tick, s);
    if (s->nodemon_id < 0 || s->cluster_sub < 0 || s->timer_id < 0) return BL_ENOMEM;
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
    return add_sub(s, pattern, NULL, cb, ud, &o);
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
    return add_sub(s, pattern, NULL, cb, ud, &o);
}

int bl_pubsub_unsubscribe(bl_node *n, int sub_id)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    lsub *l = find_sub(s, sub_id);
    if (!l) return BL_ENOPROC;
    del_sub(s, l, 1);
    return BL_OK;
}

int bl_pubsub_pause(bl_node *n, int sub_id, int paused)
{
    ps *s = ps_of(n);
    if (!s) return BL_ENOPROC;
    lsub *l = find_sub(s, sub_id);
    if (!l) return BL_ENOPROC;
    l->paused = paused != 0;
    if (!l->paused) schedule_flush(s);
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
