/* hstore.c - events, audit trail and metrics history of the health service (hstore.h).
 *
 * The loop only appends rows to in-memory batches (bounded: beyond HSTORE_MAX_PENDING rows they
 * are dropped and counted). Once a second the batch becomes one store job: one transaction that
 * inserts the events and raw samples and folds each sample into its 1 min and 1 h rollup rows
 * (min, max, sum, count: an upsert per row). Every minute a maintenance job deletes what is older
 * than each retention, keeps at most events_max events, and while the file is larger than
 * store_max_mb deletes the oldest raw samples, then 1 min rollups, then events, and gives pages
 * back (incremental vacuum). Queries are store jobs too; their reply term is built on the store
 * thread and sent from the loop. */
#include "hstore.h"
#include "../store/store.h"
#include "trend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HSTORE_MAX_PENDING 20000 /* buffered rows before new ones are dropped */
#define MAINT_EVERY_TICKS 60
#define MAX_POINTS 4000 /* history points per reply */

typedef struct ev_row {
    unsigned long long t;
    char node[BL_NODE_LEN], type[32], sev[16], who[128];
    char trace_id[BL_TRACE_ID_LEN]; /* "" none */
    char *body;
} ev_row;

typedef struct sample_row {
    unsigned long long t;
    char metric[96];
    double v;
} sample_row;

typedef struct retention {
    unsigned long long raw_ms, m1_ms, h1_ms, events_ms, events_max, max_bytes;
} retention;

struct bl__hstore {
    bl_node *n;
    bl__store *st;
    char path[1024];
    ev_row *evs;
    unsigned nev, capev;
    sample_row *smp;
    unsigned nsmp, capsmp;
    unsigned long long written, dropped;
    unsigned ticks;
    retention ret;
    int logged_error;
};

/* A database of an older version: events gain their trace_id column (the error of a second
 * ALTER, duplicate column, is the normal case and ignored). */
static void migrate_run(bl__store_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    (void)j;
    if (!db) return;
    sq->exec(db, "ALTER TABLE events ADD COLUMN trace_id TEXT", NULL, NULL, NULL);
    bl__store_exec(sq, db,
                   "CREATE INDEX IF NOT EXISTS events_trace ON events(trace_id)"
                   " WHERE trace_id IS NOT NULL");
}

static void migrate_done(bl__store_job *j)
{
    free(j);
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time_ms INTEGER NOT NULL, node TEXT NOT NULL, type TEXT NOT NULL,"
    " severity INTEGER NOT NULL, who TEXT, body TEXT NOT NULL, trace_id TEXT);"
    "CREATE INDEX IF NOT EXISTS events_time ON events(time_ms);"
    "CREATE TABLE IF NOT EXISTS samples(metric TEXT NOT NULL, time_ms INTEGER NOT NULL,"
    " value REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS samples_mt ON samples(metric, time_ms);"
    "CREATE INDEX IF NOT EXISTS samples_t ON samples(time_ms);"
    "CREATE TABLE IF NOT EXISTS rollup_1m(metric TEXT NOT NULL, bucket_ms INTEGER NOT NULL,"
    " min REAL, max REAL, sum REAL, count INTEGER, PRIMARY KEY(metric, bucket_ms))"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rollup_1h(metric TEXT NOT NULL, bucket_ms INTEGER NOT NULL,"
    " min REAL, max REAL, sum REAL, count INTEGER, PRIMARY KEY(metric, bucket_ms))"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL);";

static const char *const SEV[] = {"info", "warn", "critical"};

int bl__severity_level(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, SEV[i])) return i;
    if (!strcmp(name, "warning")) return 1;
    return -1;
}

void bl__hstore_path(const bl_config *cfg, const char *node, char *out, size_t cap)
{
    bl__store_path(cfg, node, "health", out, cap);
}

bl__hstore *bl__hstore_open(bl_node *n)
{
    if (!n->cfg.health_store) return NULL;
    bl__hstore *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->n = n;
    bl__hstore_path(&n->cfg, n->name, s->path, sizeof(s->path));
    const bl_config *c = &n->cfg;
    s->ret.raw_ms = (unsigned long long)c->history_raw_s * 1000ULL;
    s->ret.m1_ms = (unsigned long long)c->history_1m_s * 1000ULL;
    s->ret.h1_ms = (unsigned long long)c->history_1h_s * 1000ULL;
    s->ret.events_ms = (unsigned long long)c->events_retention_s * 1000ULL;
    s->ret.events_max = c->events_max;
    s->ret.max_bytes = (unsigned long long)c->store_max_mb * 1024ULL * 1024ULL;
    s->st = bl__store_open(n->loop, s->path, SCHEMA, 256);
    if (!s->st) {
        free(s);
        return NULL;
    }
    bl__store_job *mj = calloc(1, sizeof(*mj));
    if (mj) {
        mj->run = migrate_run;
        mj->done = migrate_done;
        if (bl__store_submit(s->st, mj) != BL_OK) free(mj);
    }
    bl_log(n, BL_LOG_INFO, "health: events and history in %s", s->path);
    return s;
}

/* ---- the write job ---- */

typedef struct write_job {
    bl__store_job j;
    bl__hstore *s;
    ev_row *evs;
    unsigned nev;
    sample_row *smp;
    unsigned nsmp;
    int ok;
} write_job;

static void rollup(const bl__sqlite *sq, sqlite3_stmt *q, const sample_row *r, unsigned long long w)
{
    sq->bind_text(q, 1, r->metric, -1, SQLITE_STATIC);
    sq->bind_int64(q, 2, (sqlite3_int64)(r->t - r->t % w));
    sq->bind_double(q, 3, r->v);
    sq->step(q);
    sq->reset(q);
}

static void write_run(bl__store_job *jj, const bl__sqlite *sq, sqlite3 *db)
{
    write_job *j = (write_job *)jj;
    if (!db) return;
    static const char UPSERT[] =
        " (metric, bucket_ms, min, max, sum, count) VALUES(?1, ?2, ?3, ?3, ?3, 1)"
        " ON CONFLICT(metric, bucket_ms) DO UPDATE SET min = min(min, excluded.min),"
        " max = max(max, excluded.max), sum = sum + excluded.sum, count = count + 1";
    char sql1[512], sql2[512];
    snprintf(sql1, sizeof(sql1), "INSERT INTO rollup_1m%s", UPSERT);
    snprintf(sql2, sizeof(sql2), "INSERT INTO rollup_1h%s", UPSERT);
    sqlite3_stmt *qe = NULL, *qs = NULL, *q1 = NULL, *q2 = NULL;
    if (bl__store_exec(sq, db, "BEGIN") < 0) return;
    int rc = sq->prepare_v2(db,
                            "INSERT INTO events(time_ms, node, type, severity, who, body,"
                            " trace_id) VALUES(?, ?, ?, ?, ?, ?, ?)",
                            -1, &qe, NULL) |
             sq->prepare_v2(db, "INSERT INTO samples(metric, time_ms, value) VALUES(?, ?, ?)", -1,
                            &qs, NULL) |
             sq->prepare_v2(db, sql1, -1, &q1, NULL) | sq->prepare_v2(db, sql2, -1, &q2, NULL);
    if (rc == SQLITE_OK) {
        for (unsigned i = 0; i < j->nev; i++) {
            const ev_row *e = &j->evs[i];
            sq->bind_int64(qe, 1, (sqlite3_int64)e->t);
            sq->bind_text(qe, 2, e->node, -1, SQLITE_STATIC);
            sq->bind_text(qe, 3, e->type, -1, SQLITE_STATIC);
            sq->bind_int64(qe, 4, bl__severity_level(e->sev) < 0 ? 0 : bl__severity_level(e->sev));
            if (e->who[0])
                sq->bind_text(qe, 5, e->who, -1, SQLITE_STATIC);
            else
                sq->bind_null(qe, 5);
            sq->bind_text(qe, 6, e->body ? e->body : "{}", -1, SQLITE_STATIC);
            if (e->trace_id[0])
                sq->bind_text(qe, 7, e->trace_id, -1, SQLITE_STATIC);
            else
                sq->bind_null(qe, 7);
            sq->step(qe);
            sq->reset(qe);
        }
        for (unsigned i = 0; i < j->nsmp; i++) {
            const sample_row *r = &j->smp[i];
            sq->bind_text(qs, 1, r->metric, -1, SQLITE_STATIC);
            sq->bind_int64(qs, 2, (sqlite3_int64)r->t);
            sq->bind_double(qs, 3, r->v);
            sq->step(qs);
            sq->reset(qs);
            rollup(sq, q1, r, 60000ULL);
            rollup(sq, q2, r, 3600000ULL);
        }
    }
    sq->finalize(qe);
    sq->finalize(qs);
    sq->finalize(q1);
    sq->finalize(q2);
    j->ok = rc == SQLITE_OK && bl__store_exec(sq, db, "COMMIT") == 0;
    if (!j->ok) bl__store_exec(sq, db, "ROLLBACK");
}

static void free_rows(ev_row *evs, unsigned nev, sample_row *smp)
{
    for (unsigned i = 0; i < nev; i++)
        free(evs[i].body);
    free(evs);
    free(smp);
}

static void write_done(bl__store_job *jj)
{
    write_job *j = (write_job *)jj;
    bl__hstore *s = j->s;
    if (j->ok) {
        s->written += j->nev + j->nsmp;
    } else {
        s->dropped += j->nev + j->nsmp;
        if (!s->logged_error) {
            const char *e = bl__store_error(s->st);
            bl_log(s->n, BL_LOG_ERROR, "health: cannot write %s: %s", s->path,
                   e[0] ? e : "write failed");
            s->logged_error = 1;
        }
    }
    free_rows(j->evs, j->nev, j->smp);
    free(j);
}

static void flush(bl__hstore *s)
{
    if (!s->nev && !s->nsmp) return;
    write_job *j = calloc(1, sizeof(*j));
    if (!j) return;
    j->j.run = write_run;
    j->j.done = write_done;
    j->s = s;
    j->evs = s->evs, j->nev = s->nev;
    j->smp = s->smp, j->nsmp = s->nsmp;
    s->evs = NULL, s->nev = s->capev = 0;
    s->smp = NULL, s->nsmp = s->capsmp = 0;
    if (bl__store_submit(s->st, &j->j) != BL_OK) {
        s->dropped += j->nev + j->nsmp;
        free_rows(j->evs, j->nev, j->smp);
        free(j);
    }
}

/* ---- maintenance ---- */

typedef struct maint_job {
    bl__store_job j;
    retention ret;
    unsigned long long now;
} maint_job;

static long long pragma_int(const bl__sqlite *sq, sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    long long v = 0;
    if (sq->prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sq->step(q) == SQLITE_ROW)
        v = sq->column_int64(q, 0);
    sq->finalize(q);
    return v;
}

static void exec_i64(const bl__sqlite *sq, sqlite3 *db, const char *sql, long long a)
{
    sqlite3_stmt *q = NULL;
    if (sq->prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        sq->bind_int64(q, 1, a);
        sq->step(q);
    }
    sq->finalize(q);
}

static long long db_bytes(const bl__sqlite *sq, sqlite3 *db)
{
    return (pragma_int(sq, db, "PRAGMA page_count") - pragma_int(sq, db, "PRAGMA freelist_count")) *
           pragma_int(sq, db, "PRAGMA page_size");
}

static void maint_run(bl__store_job *jj, const bl__sqlite *sq, sqlite3 *db)
{
    maint_job *j = (maint_job *)jj;
    if (!db) return;
    long long now = (long long)j->now;
    exec_i64(sq, db, "DELETE FROM samples WHERE time_ms < ?", now - (long long)j->ret.raw_ms);
    exec_i64(sq, db, "DELETE FROM rollup_1m WHERE bucket_ms < ?", now - (long long)j->ret.m1_ms);
    exec_i64(sq, db, "DELETE FROM rollup_1h WHERE bucket_ms < ?", now - (long long)j->ret.h1_ms);
    exec_i64(sq, db, "DELETE FROM events WHERE time_ms < ?", now - (long long)j->ret.events_ms);
    exec_i64(sq, db, "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?",
             (long long)j->ret.events_max);
    /* the size bound: the oldest rows go, raw samples first, then 1 min rollups, events and
     * 1 h rollups; each round deletes the share that should bring the file under 80% of it */
    static const struct {
        const char *table, *count, *del;
    } TRIM[] = {
        {"samples", "SELECT count(*) FROM samples",
         "DELETE FROM samples WHERE time_ms <= (SELECT time_ms FROM samples ORDER BY time_ms"
         " LIMIT 1 OFFSET ?)"},
        {"rollup_1m", "SELECT count(*) FROM rollup_1m",
         "DELETE FROM rollup_1m WHERE bucket_ms <= (SELECT bucket_ms FROM rollup_1m ORDER BY"
         " bucket_ms LIMIT 1 OFFSET ?)"},
        {"events", "SELECT count(*) FROM events",
         "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ?)"},
        {"rollup_1h", "SELECT count(*) FROM rollup_1h",
         "DELETE FROM rollup_1h WHERE bucket_ms <= (SELECT bucket_ms FROM rollup_1h ORDER BY"
         " bucket_ms LIMIT 1 OFFSET ?)"},
    };
    int t = 0;
    for (int round = 0; round < 32 && t < 4; round++) {
        long long bytes = db_bytes(sq, db);
        if (bytes <= (long long)j->ret.max_bytes) break;
        long long rows = pragma_int(sq, db, TRIM[t].count);
        if (rows <= 16) {
            t++;
            continue;
        }
        double drop = 1.0 - 0.8 * (double)j->ret.max_bytes / (double)bytes;
        long long k = (long long)((double)rows * drop);
        if (k < 1) k = 1;
        exec_i64(sq, db, TRIM[t].del, k - 1);
    }
    bl__store_exec(sq, db, "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);");
}

static void maint_done(bl__store_job *jj)
{
    free(jj);
}

void bl__hstore_maintain(bl__hstore *s)
{
    maint_job *j = calloc(1, sizeof(*j));
    if (!j) return;
    j->j.run = maint_run;
    j->j.done = maint_done;
    j->ret = s->ret;
    j->now = bl_now_ms();
    if (bl__store_submit(s->st, &j->j) != BL_OK) free(j);
}

void bl__hstore_flush(bl__hstore *s)
{
    if (s) flush(s);
}

void bl__hstore_tick(bl__hstore *s)
{
    if (!s) return;
    flush(s);
    if (++s->ticks % MAINT_EVERY_TICKS == 1) bl__hstore_maintain(s);
}

/* ---- buffering ---- */

void bl__hstore_event(bl__hstore *s, unsigned long long t, const char *node, const char *type,
                      const char *severity, const char *who, const char *trace_id, const char *body)
{
    if (!s) return;
    if (s->nev + s->nsmp >= HSTORE_MAX_PENDING) {
        s->dropped++;
        return;
    }
    if (s->nev == s->capev) {
        unsigned cap = s->capev ? s->capev * 2 : 16;
        ev_row *e = realloc(s->evs, cap * sizeof(*e));
        if (!e) {
            s->dropped++;
            return;
        }
        s->evs = e, s->capev = cap;
    }
    ev_row *e = &s->evs[s->nev];
    memset(e, 0, sizeof(*e));
    e->t = t;
    snprintf(e->node, sizeof(e->node), "%s", node);
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->sev, sizeof(e->sev), "%s", severity);
    snprintf(e->who, sizeof(e->who), "%s", who ? who : "");
    snprintf(e->trace_id, sizeof(e->trace_id), "%s", trace_id ? trace_id : "");
    e->body = strdup(body && *body ? body : "{}");
    if (!e->body) {
        s->dropped++;
        return;
    }
    s->nev++;
}

static void series(bl__hstore *s, unsigned long long t, const char *metric, double v)
{
    if (s->nev + s->nsmp >= HSTORE_MAX_PENDING) {
        s->dropped++;
        return;
    }
    if (s->nsmp == s->capsmp) {
        unsigned cap = s->capsmp ? s->capsmp * 2 : 64;
        sample_row *r = realloc(s->smp, cap * sizeof(*r));
        if (!r) {
            s->dropped++;
            return;
        }
        s->smp = r, s->capsmp = cap;
    }
    sample_row *r = &s->smp[s->nsmp++];
    r->t = t;
    snprintf(r->metric, sizeof(r->metric), "%s", metric);
    r->v = v;
}

void bl__hstore_sample(bl__hstore *s, const bl_health_metrics *m)
{
    if (!s) return;
    unsigned long long t = m->time_ms;
    char name[96];
    series(s, t, "cpu.percent", m->cpu_pct.busy);
    series(s, t, "cpu.iowait", m->cpu_pct.iowait);
    series(s, t, "load.load1", m->load1);
    series(s, t, "load.load5", m->load5);
    series(s, t, "load.load15", m->load15);
    series(s, t, "memory.available_bytes", (double)m->mem_available);
    series(s, t, "memory.used_percent",
           m->mem_total ? 100.0 * (double)m->mem_used / (double)m->mem_total : 0);
    series(s, t, "memory.swap_used_bytes", (double)m->swap_used);
    if (m->psi_cpu.present) series(s, t, "pressure.cpu.some_avg10", m->psi_cpu.some10);
    if (m->psi_memory.present) series(s, t, "pressure.memory.some_avg10", m->psi_memory.some10);
    if (m->psi_io.present) series(s, t, "pressure.io.some_avg10", m->psi_io.some10);
    for (int i = 0; i < m->nfs; i++) {
        snprintf(name, sizeof(name), "disk.%.80s.used_percent", m->fs[i].mount);
        series(s, t, name, m->fs[i].used_percent);
        snprintf(name, sizeof(name), "disk.%.80s.avail_bytes", m->fs[i].mount);
        series(s, t, name, (double)m->fs[i].avail_bytes);
    }
    for (int i = 0; i < m->nifaces; i++) {
        snprintf(name, sizeof(name), "net.%.60s.rx_bytes_per_s", m->ifaces[i].iface);
        series(s, t, name, m->ifaces[i].rx_bytes_per_s);
        snprintf(name, sizeof(name), "net.%.60s.tx_bytes_per_s", m->ifaces[i].iface);
        series(s, t, name, m->ifaces[i].tx_bytes_per_s);
    }
    series(s, t, "process.rss_bytes", (double)m->rss_bytes);
    series(s, t, "process.fds", m->fds);
    series(s, t, "process.queue_bytes", (double)m->queue_bytes);
}

/* ---- queries ---- */

typedef struct query_job {
    bl__store_job j;
    bl__hstore *s;
    bl_from from;
    int kind; /* 0 events, 1 history, 2 metric names */
    bl__event_query eq;
    char metric[96];
    unsigned long long since, until;
    retention ret;
    ei_x_buff out;
} query_job;

static void err_reply(ei_x_buff *x, const char *why)
{
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_binary(x, why, (long)strlen(why));
}

static void q_events(query_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT id, time_ms, node, type, severity, who, body, trace_id FROM events"
                      " WHERE time_ms >= ?1 AND time_ms <= ?2 AND (?3 = '' OR type = ?3)"
                      " AND (?4 = '' OR node = ?4) AND severity >= ?5"
                      " AND (?7 = '' OR trace_id = ?7)"
                      " ORDER BY time_ms DESC, id DESC LIMIT ?6";
    if (sq->prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        err_reply(&j->out, sq->errmsg(db));
        return;
    }
    sq->bind_int64(q, 1, (sqlite3_int64)j->eq.since_ms);
    sq->bind_int64(q, 2, (sqlite3_int64)j->eq.until_ms);
    sq->bind_text(q, 3, j->eq.type, -1, SQLITE_STATIC);
    sq->bind_text(q, 4, j->eq.node, -1, SQLITE_STATIC);
    sq->bind_int64(q, 5, j->eq.min_severity);
    sq->bind_int64(q, 6, j->eq.limit ? j->eq.limit : 100);
    sq->bind_text(q, 7, j->eq.trace_id, -1, SQLITE_STATIC);
    /* newest first from SQL; the reply lists oldest first, so collect then emit reversed */
    ei_x_buff *x = &j->out;
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "ok");
    while (sq->step(q) == SQLITE_ROW) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_map_header(x, 8);
        bl__kv_u64(x, "id", (unsigned long long)sq->column_int64(q, 0));
        bl__kv_u64(x, "time_ms", (unsigned long long)sq->column_int64(q, 1));
        const char *node = (const char *)sq->column_text(q, 2);
        bl__kv_str(x, "node", node ? node : "");
        const char *type = (const char *)sq->column_text(q, 3);
        bl__kv_str(x, "type", type ? type : "");
        long long sev = sq->column_int64(q, 4);
        ei_x_encode_atom(x, "severity");
        ei_x_encode_atom(x, SEV[sev >= 0 && sev < 3 ? sev : 0]);
        const char *who = (const char *)sq->column_text(q, 5);
        ei_x_encode_atom(x, "who");
        if (who)
            ei_x_encode_binary(x, who, (long)strlen(who));
        else
            ei_x_encode_atom(x, "undefined");
        const char *body = (const char *)sq->column_text(q, 6);
        bl__kv_str(x, "body", body ? body : "{}");
        const char *tid = (const char *)sq->column_text(q, 7);
        ei_x_encode_atom(x, "trace_id");
        if (tid)
            ei_x_encode_binary(x, tid, (long)strlen(tid));
        else
            ei_x_encode_atom(x, "undefined");
    }
    ei_x_encode_empty_list(x);
    sq->finalize(q);
}

static void q_history(query_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    unsigned long long span = j->until - j->since;
    unsigned long long res;
    const char *sql;
    if (span <= j->ret.raw_ms && span <= 6ULL * 3600 * 1000) {
        res = 0;
        sql = "SELECT time_ms, value, value, value FROM samples WHERE metric = ?1 AND"
              " time_ms >= ?2 AND time_ms <= ?3 ORDER BY time_ms LIMIT ?4";
    } else if (span <= j->ret.m1_ms && span <= 3ULL * 86400 * 1000) {
        res = 60000;
        sql = "SELECT bucket_ms, min, sum / count, max FROM rollup_1m WHERE metric = ?1 AND"
              " bucket_ms >= ?2 - 59999 AND bucket_ms <= ?3 ORDER BY bucket_ms LIMIT ?4";
    } else {
        res = 3600000;
        sql = "SELECT bucket_ms, min, sum / count, max FROM rollup_1h WHERE metric = ?1 AND"
              " bucket_ms >= ?2 - 3599999 AND bucket_ms <= ?3 ORDER BY bucket_ms LIMIT ?4";
    }
    sqlite3_stmt *q = NULL;
    if (sq->prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        err_reply(&j->out, sq->errmsg(db));
        return;
    }
    sq->bind_text(q, 1, j->metric, -1, SQLITE_STATIC);
    sq->bind_int64(q, 2, (sqlite3_int64)j->since);
    sq->bind_int64(q, 3, (sqlite3_int64)j->until);
    sq->bind_int64(q, 4, MAX_POINTS);
    ei_x_buff *x = &j->out;
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "ok");
    ei_x_encode_map_header(x, 5);
    bl__kv_str(x, "metric", j->metric);
    bl__kv_u64(x, "resolution_ms", res);
    bl__kv_u64(x, "since_ms", j->since);
    bl__kv_u64(x, "until_ms", j->until);
    ei_x_encode_atom(x, "points"); /* [[time_ms, min, avg, max], ...] */
    while (sq->step(q) == SQLITE_ROW) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_list_header(x, 4);
        ei_x_encode_ulonglong(x, (unsigned long long)sq->column_int64(q, 0));
        ei_x_encode_double(x, sq->column_double(q, 1));
        ei_x_encode_double(x, sq->column_double(q, 2));
        ei_x_encode_double(x, sq->column_double(q, 3));
        ei_x_encode_empty_list(x);
    }
    ei_x_encode_empty_list(x);
    sq->finalize(q);
}

static void q_names(query_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    if (sq->prepare_v2(db,
                       "SELECT DISTINCT metric FROM rollup_1h WHERE bucket_ms >= ? ORDER BY metric",
                       -1, &q, NULL) != SQLITE_OK) {
        err_reply(&j->out, sq->errmsg(db));
        return;
    }
    sq->bind_int64(q, 1, (sqlite3_int64)(j->until - 86400000ULL));
    ei_x_encode_tuple_header(&j->out, 2);
    ei_x_encode_atom(&j->out, "ok");
    while (sq->step(q) == SQLITE_ROW) {
        const char *m = (const char *)sq->column_text(q, 0);
        ei_x_encode_list_header(&j->out, 1);
        ei_x_encode_binary(&j->out, m ? m : "", m ? (long)strlen(m) : 0);
    }
    ei_x_encode_empty_list(&j->out);
    sq->finalize(q);
}

static void query_run(bl__store_job *jj, const bl__sqlite *sq, sqlite3 *db)
{
    query_job *j = (query_job *)jj;
    ei_x_new(&j->out);
    if (!db) {
        err_reply(&j->out, "store unavailable");
        return;
    }
    if (j->kind == 0)
        q_events(j, sq, db);
    else if (j->kind == 1)
        q_history(j, sq, db);
    else
        q_names(j, sq, db);
}

static void query_done(bl__store_job *jj)
{
    query_job *j = (query_job *)jj;
    bl_reply(j->s->n, &j->from, j->out.buff, j->out.index);
    ei_x_free(&j->out);
    free(j);
}

static int submit_query(bl__hstore *s, query_job *j, ei_x_buff *reply)
{
    j->j.run = query_run;
    j->j.done = query_done;
    j->s = s;
    j->ret = s->ret;
    flush(s); /* a query sees everything recorded before it */
    if (bl__store_submit(s->st, &j->j) != BL_OK) {
        free(j);
        err_reply(reply, "store busy");
        return 0;
    }
    return 1;
}

int bl__hstore_events(bl__hstore *s, const bl_from *from, const bl__event_query *q,
                      ei_x_buff *reply)
{
    if (!s) {
        err_reply(reply, "history is off (health_store false)");
        return 0;
    }
    query_job *j = calloc(1, sizeof(*j));
    if (!j) {
        err_reply(reply, "out of memory");
        return 0;
    }
    j->from = *from;
    j->kind = 0;
    j->eq = *q;
    if (!j->eq.until_ms) j->eq.until_ms = bl_now_ms() + 1000;
    return submit_query(s, j, reply);
}

int bl__hstore_history(bl__hstore *s, const bl_from *from, const char *metric,
                       unsigned long long since_ms, unsigned long long until_ms, ei_x_buff *reply)
{
    if (!s) {
        err_reply(reply, "history is off (health_store false)");
        return 0;
    }
    query_job *j = calloc(1, sizeof(*j));
    if (!j) {
        err_reply(reply, "out of memory");
        return 0;
    }
    j->from = *from;
    j->kind = metric[0] ? 1 : 2;
    snprintf(j->metric, sizeof(j->metric), "%s", metric);
    j->until = until_ms ? until_ms : bl_now_ms();
    j->since = since_ms < j->until ? since_ms : j->until;
    return submit_query(s, j, reply);
}

/* ---- small persistent state (maintenance mode) ---- */

typedef struct kv_job {
    bl__store_job j;
    int set;
    char key[64], value[512];
    int found;
    bl__hstore_kv_cb cb;
    void *ud;
} kv_job;

static void kv_run(bl__store_job *jj, const bl__sqlite *sq, sqlite3 *db)
{
    kv_job *j = (kv_job *)jj;
    if (!db) return;
    sqlite3_stmt *q = NULL;
    if (j->set) {
        if (sq->prepare_v2(db, "INSERT OR REPLACE INTO kv(key, value) VALUES(?, ?)", -1, &q,
                           NULL) == SQLITE_OK) {
            sq->bind_text(q, 1, j->key, -1, SQLITE_STATIC);
            sq->bind_text(q, 2, j->value, -1, SQLITE_STATIC);
            sq->step(q);
        }
    } else if (sq->prepare_v2(db, "SELECT value FROM kv WHERE key = ?", -1, &q, NULL) ==
               SQLITE_OK) {
        sq->bind_text(q, 1, j->key, -1, SQLITE_STATIC);
        if (sq->step(q) == SQLITE_ROW) {
            const char *v = (const char *)sq->column_text(q, 0);
            snprintf(j->value, sizeof(j->value), "%s", v ? v : "");
            j->found = 1;
        }
    }
    sq->finalize(q);
}

static void kv_done(bl__store_job *jj)
{
    kv_job *j = (kv_job *)jj;
    if (j->cb) j->cb(j->found ? j->value : NULL, j->ud);
    free(j);
}

static void kv_submit(bl__hstore *s, int set, const char *key, const char *value,
                      bl__hstore_kv_cb cb, void *ud)
{
    kv_job *j = calloc(1, sizeof(*j));
    if (!j) return;
    j->j.run = kv_run;
    j->j.done = kv_done;
    j->set = set;
    snprintf(j->key, sizeof(j->key), "%s", key);
    snprintf(j->value, sizeof(j->value), "%s", value ? value : "");
    j->cb = cb;
    j->ud = ud;
    if (bl__store_submit(s->st, &j->j) != BL_OK) free(j);
}

void bl__hstore_kv_set(bl__hstore *s, const char *key, const char *value)
{
    if (s) kv_submit(s, 1, key, value, NULL, NULL);
}

void bl__hstore_kv_get(bl__hstore *s, const char *key, bl__hstore_kv_cb cb, void *ud)
{
    if (s) kv_submit(s, 0, key, NULL, cb, ud);
}

/* ---- trends ---- */

#define MAX_TRENDS 16
#define MAX_TREND_POINTS 2000

typedef struct trend_job {
    bl__store_job j;
    unsigned long long now;
    bl__trend out[MAX_TRENDS];
    int n;
    bl__hstore_trends_cb cb;
    void *ud;
} trend_job;

/* fit the rows of one query (metric, t, v ordered by metric, t) into j->out */
static void fit_rows(trend_job *j, const bl__sqlite *sq, sqlite3 *db, const char *sql,
                     unsigned long long since, int min_points, int only_missing)
{
    sqlite3_stmt *q = NULL;
    if (sq->prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) return;
    sq->bind_int64(q, 1, (sqlite3_int64)since);
    double *t = malloc(sizeof(double) * MAX_TREND_POINTS),
           *v = malloc(sizeof(double) * MAX_TREND_POINTS);
    char cur[128] = "";
    int k = 0, more;
    do {
        more = t && v && sq->step(q) == SQLITE_ROW;
        const char *m = more ? (const char *)sq->column_text(q, 0) : NULL;
        if ((!more || !m || strcmp(m, cur)) && cur[0]) {
            /* cur is complete: "disk.MOUNT.used_percent" */
            int have = 0;
            for (int i = 0; i < j->n; i++)
                have |= !strcmp(j->out[i].mount, cur);
            double slope, icpt;
            if (k >= min_points && !(only_missing && have) && j->n < MAX_TRENDS &&
                bl__linfit(t, v, k, &slope, &icpt) == 0 && t[k - 1] - t[0] >= 60000) {
                int i;
                for (i = 0; i < j->n && strcmp(j->out[i].mount, cur); i++)
                    ;
                if (i == j->n) j->n++;
                bl__trend *r = &j->out[i];
                snprintf(r->mount, sizeof(r->mount), "%s", cur);
                r->used = v[k - 1];
                r->per_day = slope * 86400000.0;
                r->points = k;
                r->span_s = (t[k - 1] - t[0]) / 1000.0;
            }
            k = 0;
        }
        if (!more || !m) break;
        if (strcmp(m, cur)) snprintf(cur, sizeof(cur), "%s", m);
        if (k < MAX_TREND_POINTS) {
            t[k] = (double)sq->column_int64(q, 1);
            v[k] = sq->column_double(q, 2);
            k++;
        }
    } while (more);
    free(t);
    free(v);
    sq->finalize(q);
}

static void trend_run(bl__store_job *jj, const bl__sqlite *sq, sqlite3 *db)
{
    trend_job *j = (trend_job *)jj;
    if (!db) return;
    fit_rows(j, sq, db,
             "SELECT metric, bucket_ms, sum / count FROM rollup_1m WHERE metric LIKE 'disk.%'"
             " AND metric LIKE '%.used_percent' AND bucket_ms >= ? ORDER BY metric, bucket_ms",
             j->now - 86400000ULL, 30, 0);
    fit_rows(j, sq, db,
             "SELECT metric, time_ms, value FROM samples WHERE metric LIKE 'disk.%'"
             " AND metric LIKE '%.used_percent' AND time_ms >= ? ORDER BY metric, time_ms",
             j->now - 6ULL * 3600000ULL, 10, 1);
    /* "disk./var.used_percent" -> "/var" */
    for (int i = 0; i < j->n; i++) {
        char *m = j->out[i].mount;
        size_t l = strlen(m), pre = strlen("disk."), suf = strlen(".used_percent");
        if (l > pre + suf) {
            memmove(m, m + pre, l - pre - suf);
            m[l - pre - suf] = 0;
        }
    }
}

static void trend_done(bl__store_job *jj)
{
    trend_job *j = (trend_job *)jj;
    if (j->cb) j->cb(j->out, j->n, j->ud);
    free(j);
}

void bl__hstore_trends(bl__hstore *s, bl__hstore_trends_cb cb, void *ud)
{
    if (!s) return;
    trend_job *j = calloc(1, sizeof(*j));
    if (!j) return;
    j->j.run = trend_run;
    j->j.done = trend_done;
    j->now = bl_now_ms();
    j->cb = cb;
    j->ud = ud;
    if (bl__store_submit(s->st, &j->j) != BL_OK) free(j);
}

unsigned bl__hstore_pending(bl__hstore *s)
{
    return s ? bl__store_pending(s->st) : 0;
}

void bl__hstore_encode_info(bl__hstore *s, ei_x_buff *x)
{
    if (!s) {
        ei_x_encode_atom(x, "undefined");
        return;
    }
    ei_x_encode_map_header(x, 5);
    bl__kv_str(x, "path", s->path);
    bl__kv_str(x, "error", bl__store_error(s->st));
    bl__kv_u64(x, "rows_written", s->written);
    bl__kv_u64(x, "rows_dropped", s->dropped);
    bl__kv_u64(x, "pending_jobs", bl__store_pending(s->st));
}

void bl__hstore_close(bl__hstore *s)
{
    if (!s) return;
    flush(s);
    bl__store_close(s->st, 5000);
    free_rows(s->evs, s->nev, s->smp);
    free(s);
}
