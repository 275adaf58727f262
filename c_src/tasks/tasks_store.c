/* tasks_store.c - a coordinator's SQLite copy of the task queue (tasks_int.h), on the store
 * thread of store/store.h: every record a coordinator holds (its own as leader and the leader's
 * replicated ones) is written in batches, one transaction per 50 ms tick, never from the loop;
 * at start the whole table is read back (a load job) so a restart of every coordinator keeps
 * the queue. Rows: id, the record's map encoding, whether it is final, when it changed.
 *
 * Written, not just queued: every put and delete gets a sequence number; bl__tstore_when_written
 * runs a callback once the batch holding a number is committed to SQLite (WAL; the OS has it, so
 * a kill -9 of the process does not lose it). Asking for it flushes at the next loop turn
 * instead of after the 50 ms tick, so batches still group what one loop turn changed. */
#include "tasks_int.h"
#include "../store/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLUSH_MS 50u

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS tasks(id TEXT PRIMARY KEY, rec BLOB NOT "
                            "NULL, final INTEGER NOT NULL, updated_ms INTEGER NOT NULL);";

typedef struct row {
    UT_hash_handle hh;
    char id[BL_TASK_ID_LEN];
    char *rec; /* NULL: delete */
    int len, final;
    unsigned long long updated_ms;
} row;

typedef struct wwait { /* a callback for when seq is written */
    struct wwait *next;
    unsigned long long seq;
    tasks_written_fn fn;
    void *ud;
} wwait;

struct tasks_store {
    bl_node *n;
    bl__store *st;
    row *pending;
    int timer, kick;
    unsigned long long seq;       /* of the last put or delete */
    unsigned long long submitted; /* every seq up to this is in a flush job */
    unsigned long long written;   /* every seq up to this is committed */
    wwait *waits;
    char path[1024];
    tasks_loaded_fn loaded;
    void *ud;
};

typedef struct {
    bl__store_job j;
    tasks_store *ts;
    row *rows;
    unsigned long long upto;
} flush_job;

typedef struct {
    bl__store_job j;
    tasks_store *ts;
    char **recs;
    int *lens;
    unsigned n, cap;
    char error[256];
} load_job;

static void flush_run(bl__store_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    flush_job *f = (flush_job *)j;
    if (!db) return;
    sqlite3_stmt *ins = NULL, *del = NULL;
    bl__store_exec(sq, db, "BEGIN");
    if (sq->prepare_v2(db,
                       "INSERT OR REPLACE INTO tasks(id, rec, final, updated_ms) VALUES(?,?,?,?)",
                       -1, &ins, NULL) == SQLITE_OK &&
        sq->prepare_v2(db, "DELETE FROM tasks WHERE id = ?", -1, &del, NULL) == SQLITE_OK) {
        row *r, *t;
        HASH_ITER(hh, f->rows, r, t) {
            sqlite3_stmt *q = r->rec ? ins : del;
            sq->bind_text(q, 1, r->id, -1, SQLITE_STATIC);
            if (r->rec) {
                sq->bind_blob(q, 2, r->rec, r->len, SQLITE_STATIC);
                sq->bind_int64(q, 3, r->final);
                sq->bind_int64(q, 4, (sqlite3_int64)r->updated_ms);
            }
            sq->step(q);
            sq->reset(q);
            sq->clear_bindings(q);
        }
    }
    if (ins) sq->finalize(ins);
    if (del) sq->finalize(del);
    bl__store_exec(sq, db, "COMMIT");
}

static void rows_free(row *rows)
{
    row *r, *t;
    HASH_ITER(hh, rows, r, t) {
        HASH_DEL(rows, r);
        free(r->rec);
        free(r);
    }
}

static void waits_run(tasks_store *ts, int ok)
{
    for (wwait **pp = &ts->waits; *pp;) {
        wwait *w = *pp;
        if (ok && w->seq > ts->written) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->fn(w->ud, ok);
        free(w);
    }
}

static void flush_done(bl__store_job *j)
{
    flush_job *f = (flush_job *)j;
    tasks_store *ts = f->ts;
    if (f->upto > ts->written) ts->written = f->upto;
    rows_free(f->rows);
    free(f);
    waits_run(ts, 1);
}

static void flush_cb(bl_node *n, void *ud)
{
    (void)n;
    tasks_store *ts = ud;
    ts->timer = 0;
    if (!ts->pending) return;
    flush_job *f = calloc(1, sizeof(*f));
    if (!f) return;
    f->j.run = flush_run;
    f->j.done = flush_done;
    f->ts = ts;
    f->rows = ts->pending;
    f->upto = ts->seq;
    ts->pending = NULL;
    if (bl__store_submit(ts->st, &f->j) != BL_OK) { /* the store is behind: try again soon */
        ts->pending = f->rows;
        free(f);
        int id = bl_timer(ts->n, FLUSH_MS * 4, 0, flush_cb, ts);
        ts->timer = id > 0 ? id : 0;
        return;
    }
    ts->submitted = f->upto;
}

static void kick_cb(bl_node *n, void *ud)
{
    tasks_store *ts = ud;
    ts->kick = 0;
    if (ts->timer > 0) bl_timer_cancel(n, ts->timer);
    ts->timer = 0;
    flush_cb(n, ts);
}

unsigned long long bl__tstore_seq(tasks_store *ts)
{
    return ts ? ts->seq : 0;
}

int bl__tstore_when_written(tasks_store *ts, unsigned long long seq, tasks_written_fn fn, void *ud)
{
    if (!ts || seq <= ts->written) return 0;
    wwait *w = calloc(1, sizeof(*w));
    if (!w) return 0; /* out of memory: not waited for */
    w->seq = seq;
    w->fn = fn;
    w->ud = ud;
    w->next = ts->waits;
    ts->waits = w;
    if (seq > ts->submitted && !ts->kick) { /* written at the next loop turn, not the tick */
        int id = bl_timer(ts->n, 0, 0, kick_cb, ts);
        ts->kick = id > 0 ? id : 0;
    }
    return 1;
}

static row *row_get(tasks_store *ts, const char *id)
{
    row *r = NULL;
    HASH_FIND_STR(ts->pending, id, r);
    if (r) return r;
    if (!(r = calloc(1, sizeof(*r)))) return NULL;
    snprintf(r->id, sizeof(r->id), "%s", id);
    HASH_ADD_STR(ts->pending, id, r);
    return r;
}

static void arm(tasks_store *ts)
{
    if (ts->timer > 0) return;
    int id = bl_timer(ts->n, FLUSH_MS, 0, flush_cb, ts);
    ts->timer = id > 0 ? id : 0;
}

void bl__tstore_put(tasks_store *ts, const task *t)
{
    if (!ts) return;
    ei_x_buff x;
    if (ei_x_new(&x) < 0) return;
    bl__task_encode(t, &x, 1);
    row *r = row_get(ts, t->id);
    if (!r) {
        ei_x_free(&x);
        return;
    }
    free(r->rec);
    r->rec = malloc((size_t)x.index);
    if (r->rec) memcpy(r->rec, x.buff, (size_t)x.index);
    r->len = x.index;
    r->final = ts_final(t->state);
    r->updated_ms = t->updated_ms;
    ts->seq++;
    ei_x_free(&x);
    if (!r->rec) { /* out of memory: the row is dropped from this batch */
        HASH_DEL(ts->pending, r);
        free(r);
        return;
    }
    arm(ts);
}

void bl__tstore_del(tasks_store *ts, const char *id)
{
    if (!ts) return;
    row *r = row_get(ts, id);
    if (!r) return;
    free(r->rec);
    r->rec = NULL;
    ts->seq++;
    arm(ts);
}

static void load_run(bl__store_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    load_job *l = (load_job *)j;
    sqlite3_stmt *q = NULL;
    if (!db) {
        snprintf(l->error, sizeof(l->error), "database not open");
        return;
    }
    if (sq->prepare_v2(db, "SELECT rec FROM tasks ORDER BY updated_ms", -1, &q, NULL) !=
        SQLITE_OK) {
        snprintf(l->error, sizeof(l->error), "%s", sq->errmsg(db));
        return;
    }
    while (sq->step(q) == SQLITE_ROW) {
        int len = sq->column_bytes(q, 0);
        const void *b = sq->column_blob(q, 0);
        if (len <= 0 || !b) continue;
        if (l->n == l->cap) {
            unsigned cap = l->cap ? l->cap * 2 : 256;
            char **nr = realloc(l->recs, cap * sizeof(*nr));
            if (!nr) break;
            l->recs = nr;
            int *nl = realloc(l->lens, cap * sizeof(*nl));
            if (!nl) break;
            l->lens = nl;
            l->cap = cap;
        }
        char *c = malloc((size_t)len);
        if (!c) break;
        memcpy(c, b, (size_t)len);
        l->recs[l->n] = c;
        l->lens[l->n++] = len;
    }
    sq->finalize(q);
}

static void load_done(bl__store_job *j)
{
    load_job *l = (load_job *)j;
    task **ts = calloc(l->n ? l->n : 1, sizeof(*ts));
    unsigned k = 0;
    for (unsigned i = 0; i < l->n; i++) {
        int idx = 0;
        task *t = ts ? bl__task_decode(l->recs[i], &idx) : NULL;
        if (t && idx == l->lens[i])
            ts[k++] = t;
        else
            bl__task_free(t);
        free(l->recs[i]);
    }
    free(l->recs);
    free(l->lens);
    tasks_store *st = l->ts;
    if (st->loaded)
        st->loaded(st->ud, ts, k, l->error[0] ? l->error : NULL);
    else {
        for (unsigned i = 0; i < k; i++)
            bl__task_free(ts[i]);
    }
    free(ts);
    free(l);
}

static void path_of(const bl_config *cfg, const char *node, char *out, size_t cap)
{
    const char *v;
    if (cfg->data_dir[0])
        snprintf(out, cap, "%s/tasks-%s.db", cfg->data_dir, node);
    else if ((v = getenv("XDG_STATE_HOME")) && v[0] == '/')
        snprintf(out, cap, "%s/beamlet/%s/tasks.db", v, node);
    else if (getuid() == 0 && (getenv("INVOCATION_ID") || !getenv("HOME")))
        snprintf(out, cap, "/var/lib/beamlet/%s/tasks.db", node);
    else if ((v = getenv("HOME")) && v[0])
        snprintf(out, cap, "%s/.local/state/beamlet/%s/tasks.db", v, node);
    else
        snprintf(out, cap, "/var/lib/beamlet/%s/tasks.db", node);
}

tasks_store *bl__tstore_open(bl_node *n, tasks_loaded_fn loaded, void *ud)
{
    tasks_store *ts = calloc(1, sizeof(*ts));
    if (!ts) return NULL;
    ts->n = n;
    ts->loaded = loaded;
    ts->ud = ud;
    path_of(&n->cfg, n->name, ts->path, sizeof(ts->path));
    ts->st = bl__store_open(n->loop, ts->path, SCHEMA, 1024);
    load_job *l = calloc(1, sizeof(*l));
    if (!ts->st || !l) {
        free(l);
        if (ts->st) bl__store_close(ts->st, 1000);
        free(ts);
        return NULL;
    }
    l->j.run = load_run;
    l->j.done = load_done;
    l->ts = ts;
    if (bl__store_submit(ts->st, &l->j) != BL_OK) {
        free(l);
        bl__store_close(ts->st, 1000);
        free(ts);
        return NULL;
    }
    return ts;
}

const char *bl__tstore_path(tasks_store *ts)
{
    return ts ? ts->path : "";
}

void bl__tstore_close(tasks_store *ts)
{
    if (!ts) return;
    if (ts->timer > 0) bl_timer_cancel(ts->n, ts->timer);
    if (ts->kick > 0) bl_timer_cancel(ts->n, ts->kick);
    ts->timer = ts->kick = 0;
    ts->loaded = NULL;   /* a load still queued frees what it read */
    flush_cb(ts->n, ts); /* the last batch, run by the close below */
    bl__store_close(ts->st, 5000);
    waits_run(ts, 0); /* the service is going: its callbacks only let go of their state */
    rows_free(ts->pending);
    free(ts);
}
