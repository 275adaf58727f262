/* store.c - the store thread and its job queues (store.h). */
#include "../runtime/thread.h"
#include "store.h"
#include "beamlet/beamlet.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_STACK (1024 * 1024)

struct bl__store {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv, idle;
    bl__store_job *q_head, *q_tail; /* to run */
    bl__store_job *d_head, *d_tail; /* ran, done not called yet */
    unsigned queued, max_jobs;
    int stop, orphan, exited, running;
    struct ev_loop *loop;
    ev_async wake;
    bl__sqlite sq;
    sqlite3 *db;
    char path[1024];
    char *schema;
    char error[256];
};

void bl__store_path(const bl_config *cfg, const char *node, const char *base, char *out, size_t cap)
{
    const char *v;
    if (cfg->data_dir[0]) {
        snprintf(out, cap, "%s/%s-%s.db", cfg->data_dir, base, node);
    } else if ((v = getenv("XDG_STATE_HOME")) && v[0] == '/') {
        snprintf(out, cap, "%s/beamlet/%s/%s.db", v, node, base);
    } else if (getuid() == 0 && (getenv("INVOCATION_ID") || !getenv("HOME"))) {
        snprintf(out, cap, "/var/lib/beamlet/%s/%s.db", node, base); /* a system service */
    } else if ((v = getenv("HOME")) && v[0]) {
        snprintf(out, cap, "%s/.local/state/beamlet/%s/%s.db", v, node, base);
    } else {
        snprintf(out, cap, "/var/lib/beamlet/%s/%s.db", node, base);
    }
}

int bl__store_exec(const bl__sqlite *sq, sqlite3 *db, const char *sql)
{
    char *e = NULL;
    if (sq->exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
        if (e) sq->free(e);
        return -1;
    }
    return 0;
}

void bl__store_mkdirs(const char *path)
{
    char d[1024];
    snprintf(d, sizeof(d), "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash) return;
    *slash = 0;
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(d, 0700);
        *p = '/';
    }
    mkdir(d, 0700);
}

static void open_db(bl__store *s)
{
    char err[256];
    if (bl__sqlite_load(&s->sq, err, sizeof(err)) < 0) {
        snprintf(s->error, sizeof(s->error), "%s", err);
        return;
    }
    bl__store_mkdirs(s->path);
    if (s->sq.open_v2(s->path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
        snprintf(s->error, sizeof(s->error), "cannot open %s: %s", s->path,
                 s->db ? s->sq.errmsg(s->db) : strerror(errno));
        if (s->db) s->sq.close(s->db);
        s->db = NULL;
        return;
    }
    s->sq.busy_timeout(s->db, 2000);
    /* auto_vacuum only takes on a new file (before the first table). The page cache is bounded
     * at 512 KiB: SQLite's default lets it grow to 2 MB per connection as the history is written
     * and read, as much again as a quiet node's own memory; the kernel caches the file anyway. */
    if (bl__store_exec(&s->sq, s->db,
                       "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
                       "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-512;") < 0 ||
        (s->schema && bl__store_exec(&s->sq, s->db, s->schema) < 0)) {
        snprintf(s->error, sizeof(s->error), "cannot initialise %s: %s", s->path,
                 s->sq.errmsg(s->db));
        s->sq.close(s->db);
        s->db = NULL;
    }
}

static void store_free(bl__store *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle);
    free(s->schema);
    free(s);
}

static void *run(void *arg)
{
    bl__store *s = arg;
    open_db(s);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->q_head && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->q_head) break; /* stop with an empty queue */
        bl__store_job *j = s->q_head;
        s->q_head = j->next;
        if (!s->q_head) s->q_tail = NULL;
        s->running = 1;
        pthread_mutex_unlock(&s->mu);
        j->next = NULL;
        j->run(j, &s->sq, s->db);
        pthread_mutex_lock(&s->mu);
        s->running = 0;
        s->queued--;
        if (s->orphan) {
            /* nobody will call done: the loop is gone */
            continue;
        }
        if (s->d_tail)
            s->d_tail->next = j;
        else
            s->d_head = j;
        s->d_tail = j;
        if (!s->stop) ev_async_send(s->loop, &s->wake);
        pthread_cond_signal(&s->idle);
    }
    if (s->db) s->sq.close(s->db);
    s->db = NULL;
    bl__sqlite_unload(&s->sq);
    s->exited = 1;
    pthread_cond_signal(&s->idle);
    int orphan = s->orphan;
    pthread_mutex_unlock(&s->mu);
    if (orphan) store_free(s);
    return NULL;
}

static void run_done(bl__store *s)
{
    pthread_mutex_lock(&s->mu);
    bl__store_job *j = s->d_head;
    s->d_head = s->d_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (j) {
        bl__store_job *next = j->next;
        j->done(j);
        j = next;
    }
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    run_done(w->data);
}

bl__store *bl__store_open(struct ev_loop *loop, const char *path, const char *schema,
                          unsigned max_jobs)
{
    bl__store *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->loop = loop;
    s->max_jobs = max_jobs ? max_jobs : 64;
    snprintf(s->path, sizeof(s->path), "%s", path);
    s->schema = schema ? strdup(schema) : NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle, NULL);
    ev_async_init(&s->wake, on_wake);
    s->wake.data = s;
    ev_async_start(loop, &s->wake);
    /* a bounded stack (the default is 8 MiB of address space per thread): SQLite keeps its
     * large buffers on the heap and runs in 128 KiB thread stacks elsewhere (musl); the jobs
     * keep theirs small too */
    int rc = bl__thread_start(&s->th, STORE_STACK, 0, run, s);
    if (rc != 0) {
        ev_async_stop(loop, &s->wake);
        store_free(s);
        return NULL;
    }
    return s;
}

int bl__store_submit(bl__store *s, bl__store_job *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->queued >= s->max_jobs || s->stop) {
        pthread_mutex_unlock(&s->mu);
        return BL_EBUSY;
    }
    j->next = NULL;
    if (s->q_tail)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return BL_OK;
}

const char *bl__store_error(bl__store *s)
{
    /* written once by the thread before its first job; a torn read shows a prefix at worst */
    pthread_mutex_lock(&s->mu);
    const char *e = s->error;
    pthread_mutex_unlock(&s->mu);
    return e;
}

unsigned bl__store_pending(bl__store *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->queued;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void bl__store_close(bl__store *s, unsigned timeout_ms)
{
    if (!s) return;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&s->mu);
    s->stop = 1; /* the thread still runs what is queued, then exits */
    pthread_cond_signal(&s->cv);
    int rc = 0;
    while (!s->exited && rc == 0)
        rc = pthread_cond_timedwait(&s->idle, &s->mu, &dl);
    int exited = s->exited;
    if (!exited) s->orphan = 1;
    pthread_mutex_unlock(&s->mu);
    ev_async_stop(s->loop, &s->wake);
    run_done(s); /* what finished; a stuck thread's remaining jobs are its own */
    if (exited) {
        pthread_join(s->th, NULL);
        store_free(s);
    } else {
        pthread_detach(s->th);
    }
}
