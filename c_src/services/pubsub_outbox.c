/* pubsub_outbox.c - the durable outbox of pub/sub (at-least-once): one SQLite row per (message,
 * target node, durable subscription) written before a publish is acknowledged, resent with
 * backoff until acked, reloaded after a restart. SQLite comes from the store layer's loader
 * (store/sqlite.c, dlopen on demand). The rows are written on the loop, because the publish's
 * acknowledgement (bl_pubsub_publish_qos returns it) means "durable": in WAL mode with
 * synchronous=NORMAL a commit is a write(2), never an fsync. */
#include "pubsub_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the durable outbox (at-least-once) ---- */

static int store_exec(ps *s, const char *sql)
{
    char *err = NULL;
    if (s->st.sq.exec(s->st.db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    bl_log(s->n, BL_LOG_ERROR, "pubsub: sqlite: %s", err ? err : "?");
    if (err) s->st.sq.free(err);
    return -1;
}

void bl__ps_store_close(ps *s)
{
    bl__ps_store_flush(s);
    free(s->st.dels);
    s->st.dels = NULL;
    s->st.ndels = 0;
    if (s->st.db) s->st.sq.close(s->st.db);
    bl__sqlite_unload(&s->st.sq);
    s->st.db = NULL;
}

int bl__ps_store_put(ps *s, const pend *p)
{
    sqlite3_stmt *q = NULL;
    const psmsg *m = p->m;
    unsigned long long exp = m->ttl_ms ? m->published_at + m->ttl_ms : 0;
    int rc = s->st.sq.prepare_v2(s->st.db,
                                 "INSERT OR REPLACE INTO outbox(id, node, name, topic, payload, "
                                 "prio, ttl, published_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
                                 -1, &q, NULL);
    if (rc == SQLITE_OK) {
        s->st.sq.bind_text(q, 1, m->id, -1, SQLITE_TRANSIENT);
        s->st.sq.bind_text(q, 2, p->node, -1, SQLITE_TRANSIENT);
        s->st.sq.bind_text(q, 3, p->name, -1, SQLITE_TRANSIENT);
        s->st.sq.bind_text(q, 4, m->topic, -1, SQLITE_TRANSIENT);
        s->st.sq.bind_blob(q, 5, m->payload, m->len, SQLITE_TRANSIENT);
        s->st.sq.bind_int64(q, 6, m->prio);
        s->st.sq.bind_int64(q, 7, m->ttl_ms);
        s->st.sq.bind_int64(q, 8, (sqlite3_int64)m->published_at);
        s->st.sq.bind_int64(q, 9, (sqlite3_int64)exp);
        rc = s->st.sq.step(q);
    }
    if (q) s->st.sq.finalize(q);
    if (rc == SQLITE_DONE) return 0;
    bl_log(s->n, BL_LOG_ERROR, "pubsub: outbox insert: %s", s->st.sq.errmsg(s->st.db));
    return -1;
}

int bl__ps_store_begin(ps *s)
{
    bl__ps_store_flush(s); /* earlier deletes first: the file keeps the order of events */
    return s->st.db ? store_exec(s, "BEGIN") : 0;
}

int bl__ps_store_end(ps *s, int ok)
{
    if (!s->st.db) return ok ? 0 : -1;
    if (ok && store_exec(s, "COMMIT") == 0) return 0;
    (void)store_exec(s, "ROLLBACK");
    return -1;
}

void bl__ps_store_del(ps *s, const pend *p)
{
    store *st = &s->st;
    if (!st->db) return;
    if (!st->dels && !(st->dels = malloc(MAX_DELS * sizeof(*st->dels)))) {
        bl_log(s->n, BL_LOG_ERROR, "pubsub: outbox delete of %s lost (out of memory)", p->m->id);
        return; /* the row stays: resent after a restart (at-least-once allows it) */
    }
    outbox_key *k = &st->dels[st->ndels++];
    snprintf(k->id, sizeof(k->id), "%s", p->m->id);
    snprintf(k->node, sizeof(k->node), "%s", p->node);
    snprintf(k->name, sizeof(k->name), "%s", p->name);
    if (st->ndels == MAX_DELS) bl__ps_store_flush(s);
}

void bl__ps_store_flush(ps *s)
{
    store *st = &s->st;
    if (!st->ndels || !st->db) return;
    sqlite3_stmt *q = NULL;
    int rc = store_exec(s, "BEGIN") == 0
                 ? st->sq.prepare_v2(st->db, "DELETE FROM outbox WHERE id=? AND node=? AND name=?",
                                     -1, &q, NULL)
                 : SQLITE_ERROR;
    for (unsigned i = 0; rc == SQLITE_OK && i < st->ndels; i++) {
        st->sq.bind_text(q, 1, st->dels[i].id, -1, SQLITE_STATIC);
        st->sq.bind_text(q, 2, st->dels[i].node, -1, SQLITE_STATIC);
        st->sq.bind_text(q, 3, st->dels[i].name, -1, SQLITE_STATIC);
        rc = st->sq.step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        st->sq.reset(q);
        st->sq.clear_bindings(q);
    }
    if (q) st->sq.finalize(q);
    if (rc != SQLITE_OK || store_exec(s, "COMMIT") < 0) {
        bl_log(s->n, BL_LOG_ERROR, "pubsub: outbox delete of %u rows: %s", st->ndels,
               st->sq.errmsg(st->db));
        (void)store_exec(s, "ROLLBACK"); /* the rows stay: resent after a restart */
    }
    st->ndels = 0;
}

void bl__ps_pend_free(ps *s, pend *p)
{
    DL_DELETE(s->pends, p);
    s->npend--;
    bl__ps_msg_unref(p->m);
    free(p);
}

pend *bl__ps_pend_new(ps *s, psmsg *m, const char *node, const char *name)
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
    if (s->st.sq.prepare_v2(s->st.db,
                            "SELECT id, node, name, topic, payload, prio, ttl, published_at, "
                            "expires_at FROM outbox ORDER BY rowid",
                            -1, &q, NULL) != SQLITE_OK)
        return;
    unsigned long long wall = bl_now_ms();
    unsigned k = 0;
    while (s->st.sq.step(q) == SQLITE_ROW) {
        const char *id = (const char *)s->st.sq.column_text(q, 0);
        const char *node = (const char *)s->st.sq.column_text(q, 1);
        const char *name = (const char *)s->st.sq.column_text(q, 2);
        const char *topic = (const char *)s->st.sq.column_text(q, 3);
        const void *pl = s->st.sq.column_blob(q, 4);
        int len = s->st.sq.column_bytes(q, 4);
        long long prio = s->st.sq.column_int64(q, 5);
        int idx = 0;
        if (!id || !node || !name || !topic || !pl || len <= 0 || prio < 0 || prio > 2 ||
            !bl_pubsub_topic_valid(topic) || bl__skip_term(pl, &idx) < 0 || idx != len)
            continue;
        psmsg *m = bl__ps_msg_new(topic, pl, len);
        if (!m) break;
        snprintf(m->id, sizeof(m->id), "%s", id);
        snprintf(m->publisher, sizeof(m->publisher), "%s", s->n->name);
        m->prio = (int)prio;
        m->qos = QOS_ALO;
        m->ttl_ms = (unsigned)s->st.sq.column_int64(q, 6);
        m->published_at = (unsigned long long)s->st.sq.column_int64(q, 7);
        unsigned long long exp = (unsigned long long)s->st.sq.column_int64(q, 8);
        if (exp)
            m->expires_at = ev_now(s->n->loop) + (exp > wall ? (double)(exp - wall) / 1000 : 0);
        if (bl__ps_pend_new(s, m, node, name)) k++;
        bl__ps_msg_unref(m);
    }
    s->st.sq.finalize(q);
    if (k) bl_log(s->n, BL_LOG_INFO, "pubsub: %u unacknowledged deliveries reloaded", k);
}

void bl__ps_store_open(ps *s)
{
    const char *dir = s->n->cfg.data_dir[0] ? s->n->cfg.data_dir : NULL;
    if (!dir || !*dir) return; /* no outbox: at-least-once publishes are refused */
    store *st = &s->st;
    char err[256];
    if (bl__sqlite_load(&st->sq, err, sizeof(err)) < 0) {
        bl_log(s->n, BL_LOG_ERROR, "pubsub: %s", err);
        goto fail;
    }
    char path[2048];
    snprintf(path, sizeof(path), "%s/pubsub-%s.db", dir, s->n->name);
    if (st->sq.open_v2(path, &st->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
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
    if (st->sq.prepare_v2(st->db, "SELECT key, at FROM seen ORDER BY at", -1, &q, NULL) ==
        SQLITE_OK) {
        while (st->sq.step(q) == SQLITE_ROW) {
            const char *key = (const char *)st->sq.column_text(q, 0);
            if (key && strlen(key) < NAME_LEN + BL_PUBSUB_ID_LEN)
                bl__ps_seen_mem(s, key, (unsigned long long)st->sq.column_int64(q, 1));
        }
        st->sq.finalize(q);
    }
    bl_log(s->n, BL_LOG_INFO, "pubsub: outbox %s", path);
    store_load(s);
    return;
fail:
    bl_log(s->n, BL_LOG_ERROR, "pubsub: no durable outbox: at-least-once publishes refused");
    bl__ps_store_close(s);
}

/* Enqueue m for the local durable subscription `name` (once: a retry of a message still queued
 * is not queued twice). */
void bl__ps_local_durable(ps *s, psmsg *m, const char *name)
{
    lsub *l;
    DL_FOREACH(s->subs, l) {
        if (strcmp(l->name, name)) continue;
        for (int p = 0; p < 3; p++) {
            qitem *q;
            LL_FOREACH(l->qh[p], q)
                if (!strcmp(q->m->id, m->id)) return;
        }
        bl__ps_enqueue(s, l, m);
        return;
    }
}

void bl__ps_pend_send(ps *s, pend *p)
{
    bl_node *n = s->n;
    psmsg *m = p->m;
    if (bl_is_local_node(n, p->node)) {
        if (bl__ps_seen_has(s, p->name, m->id))
            bl__ps_ack_to(s, p->name, m->id);
        else
            bl__ps_local_durable(s, m, p->name);
        return;
    }
    if (!bl_is_connected(n, p->node)) { /* connect for the next retry; nothing to send now */
        bl_connect(n, p->node);
        return;
    }
    ei_x_buff x;
    int rc = ei_x_new_with_version(&x);
    rc |= ei_x_encode_tuple_header(&x, m->trace.valid ? 10 : 9);
    rc |= ei_x_encode_atom(&x, "bl_ps_amsg");
    rc |= ei_x_encode_atom(&x, n->name);
    rc |= ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
    rc |= ei_x_append_buf(&x, m->payload, m->len);
    rc |= ei_x_encode_binary(&x, m->id, (long)strlen(m->id));
    rc |= ei_x_encode_long(&x, m->prio);
    rc |= ei_x_encode_ulong(&x, m->ttl_ms);
    rc |= ei_x_encode_ulonglong(&x, m->published_at);
    rc |= ei_x_encode_binary(&x, p->name, (long)strlen(p->name));
    if (m->trace.valid) rc |= bl__ps_put_trace(&x, &m->trace);
    if (!rc)
        (void)bl_send_name(s->proc, PS_NAME, p->node, x.buff, x.index); /* retried until acked */
    else
        bl_log(n, BL_LOG_WARN, "pubsub: %s not encoded (out of memory): retried", m->id);
    ei_x_free(&x);
}

void bl__ps_retry_pends(ps *s, ev_tstamp now)
{
    pend *p, *t;
    DL_FOREACH_SAFE(s->pends, p, t) {
        if (p->m->expires_at > 0 && now >= p->m->expires_at) {
            COUNT(s, p->m->topic, expired);
            bl__ps_store_del(s, p);
            bl__ps_pend_free(s, p);
            continue;
        }
        if (now < p->next_at) continue;
        double wait = ACK_WAIT * (double)(1u << (p->attempts < 4 ? p->attempts : 4));
        p->attempts++;
        p->next_at = now + (wait < MAX_BACKOFF ? wait : MAX_BACKOFF);
        COUNT(s, p->m->topic, retried);
        bl__ps_pend_send(s, p);
    }
}

/* A durable subscription was removed for good: its pending deliveries go. */
void bl__ps_drop_pends(ps *s, const char *node, const char *name)
{
    pend *p, *t;
    DL_FOREACH_SAFE(s->pends, p, t) {
        if (strcmp(p->node, node) || strcmp(p->name, name)) continue;
        if (s->st.db) bl__ps_store_del(s, p);
        bl__ps_pend_free(s, p);
    }
}

/* The subscriber of the durable subscription `name` on `node` acknowledged message `id`. */
void bl__ps_handle_ack(ps *s, const char *node, const char *name, const char *id)
{
    pend *p, *t;
    DL_FOREACH_SAFE(s->pends, p, t) {
        if (strcmp(p->m->id, id) || strcmp(p->node, node) || strcmp(p->name, name)) continue;
        bl__ps_store_del(s, p);
        bl__ps_pend_free(s, p);
        return;
    }
}

/* An ack for durable subscription `name` to the publisher, named by the id ("node-epoch-seq"). */
void bl__ps_ack_to(ps *s, const char *name, const char *id)
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
        bl__ps_handle_ack(s, node, name, id);
        return;
    }
    ei_x_buff x;
    int rc = ei_x_new_with_version(&x);
    rc |= ei_x_encode_tuple_header(&x, 4);
    rc |= ei_x_encode_atom(&x, "bl_ps_ack");
    rc |= ei_x_encode_atom(&x, s->n->name);
    rc |= ei_x_encode_binary(&x, name, (long)strlen(name));
    rc |= ei_x_encode_binary(&x, id, (long)strlen(id));
    if (!rc)
        (void)bl_send_name(s->proc, PS_NAME, node, x.buff, x.index);
    else
        bl_log(s->n, BL_LOG_WARN, "pubsub: ack of %s not encoded (out of memory)", id);
    ei_x_free(&x);
}

/* An ack from a local subscriber (exactly-once subscriptions were acknowledged already). */
void bl__ps_do_ack(ps *s, const lsub *l, const char *id)
{
    if (l->name[0] && l->qos == QOS_ALO) bl__ps_ack_to(s, l->name, id);
}
