/* pubsub_window.c - the exactly-once de-duplication window of pub/sub: ids delivered to each
 * exactly-once subscription, bounded (MAX_SEEN) and aged (SEEN_MAX_AGE_MS), persisted in the
 * outbox database. */
#include "pubsub_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the exactly-once window ---- */

static void seen_key(char *key, const char *name, const char *id)
{
    snprintf(key, NAME_LEN + BL_PUBSUB_ID_LEN, "%s\n%s", name, id);
}

int bl__ps_seen_has(ps *s, const char *name, const char *id)
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
    int rc = s->st.sq.prepare_v2(s->st.db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        s->st.sq.bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
        if (at) s->st.sq.bind_int64(q, 2, (sqlite3_int64)at);
        rc = s->st.sq.step(q);
    }
    if (q) s->st.sq.finalize(q);
    if (rc != SQLITE_DONE)
        bl_log(s->n, BL_LOG_ERROR, "pubsub: window: %s", s->st.sq.errmsg(s->st.db));
}

static void seen_evict(ps *s, seen *e, int persist)
{
    if (persist) seen_sql(s, "DELETE FROM seen WHERE key=?", e->key, 0);
    HASH_DEL(s->seen_h, e);
    DL_DELETE(s->seen_l, e);
    s->nseen--;
    free(e);
}

seen *bl__ps_seen_mem(ps *s, const char *key, unsigned long long at)
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

void bl__ps_seen_add(ps *s, const char *name, const char *id)
{
    char key[NAME_LEN + BL_PUBSUB_ID_LEN];
    seen_key(key, name, id);
    unsigned long long at = bl_now_ms();
    if (!bl__ps_seen_mem(s, key, at)) return;
    seen_sql(s, "INSERT OR REPLACE INTO seen(key, at) VALUES (?, ?)", key, at);
    while (s->nseen > MAX_SEEN)
        seen_evict(s, s->seen_l, 1);
}

/* Ids older than SEEN_MAX_AGE_MS leave the window (checked every tick, oldest first). */
void bl__ps_seen_age(ps *s)
{
    unsigned long long now = bl_now_ms();
    while (s->seen_l && s->seen_l->at + SEEN_MAX_AGE_MS < now)
        seen_evict(s, s->seen_l, 1);
}
