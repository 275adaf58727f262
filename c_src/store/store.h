/* store.h - an embedded SQLite database owned by one thread (store.c).
 *
 * The loop never touches the database file: it submits jobs, a thread runs them (writes in one
 * transaction per job, so callers batch their rows per tick), and each finished job comes back
 * to the loop through an ev_async, where its `done` runs. The database is in WAL mode with
 * synchronous=NORMAL: a commit survives kill -9 of the process; fsyncs happen at checkpoints, on
 * the store thread. The job queue is bounded: a store that cannot keep up refuses jobs
 * (BL_EBUSY) instead of growing. Used by the health service (events, audit trail, metrics
 * history); pub/sub's outbox can move onto it. */
#ifndef BL_STORE_STORE_H
#define BL_STORE_STORE_H

#include "sqlite.h"

#include <ev.h>

typedef struct bl__store bl__store;
typedef struct bl__store_job bl__store_job;

struct bl__store_job {
    bl__store_job *next;
    /* store thread. db is NULL when the database could not be opened. */
    void (*run)(bl__store_job *j, const bl__sqlite *sq, sqlite3 *db);
    /* loop thread, after run (also for jobs finished while the store closes); frees j */
    void (*done)(bl__store_job *j);
};

/* path: the database file (its directory is created, mode 0700). schema: SQL run once after
 * opening (CREATE TABLE IF NOT EXISTS ...). max_jobs: queued jobs before submit refuses.
 * NULL only when out of memory or the thread cannot start; a file that cannot be opened is
 * reported by bl__store_error() and jobs then run with db == NULL. */
bl__store *bl__store_open(struct ev_loop *loop, const char *path, const char *schema,
                          unsigned max_jobs);
/* BL_OK, or BL_EBUSY when the queue is full (j is not taken: free it). */
int bl__store_submit(bl__store *s, bl__store_job *j);
/* "" while fine or not opened yet, else why the database is unusable. */
const char *bl__store_error(bl__store *s);
/* Jobs queued and not yet finished. */
unsigned bl__store_pending(bl__store *s);
/* Run what is queued (up to timeout_ms), run every done, stop the thread, close the database. */
void bl__store_close(bl__store *s, unsigned timeout_ms);

/* Helpers for jobs (store thread): exec SQL, 0 or -1. */
/* The directories above a file's path (mode 0700), as needed; errors show when the file is opened. */
void bl__store_mkdirs(const char *path);
int bl__store_exec(const bl__sqlite *sq, sqlite3 *db, const char *sql);

#endif
