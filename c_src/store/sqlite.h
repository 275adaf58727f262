/* sqlite.h - SQLite loaded on demand with dlopen (runtime/dlib.c; no link-time dependency: a
 * node that never persists anything never maps the library). One table of the entry points
 * beamlet uses; load it once per store (store.c: the health service and pub/sub's outbox). */
#ifndef BL_STORE_SQLITE_H
#define BL_STORE_SQLITE_H

#include <sqlite3.h>
#include <stddef.h>

typedef struct bl__sqlite {
    void *lib;
    __typeof__(sqlite3_open_v2) *open_v2;
    __typeof__(sqlite3_close) *close;
    __typeof__(sqlite3_exec) *exec;
    __typeof__(sqlite3_prepare_v2) *prepare_v2;
    __typeof__(sqlite3_bind_text) *bind_text;
    __typeof__(sqlite3_bind_blob) *bind_blob;
    __typeof__(sqlite3_bind_int64) *bind_int64;
    __typeof__(sqlite3_bind_double) *bind_double;
    __typeof__(sqlite3_bind_null) *bind_null;
    __typeof__(sqlite3_step) *step;
    __typeof__(sqlite3_reset) *reset;
    __typeof__(sqlite3_clear_bindings) *clear_bindings;
    __typeof__(sqlite3_finalize) *finalize;
    __typeof__(sqlite3_column_text) *column_text;
    __typeof__(sqlite3_column_blob) *column_blob;
    __typeof__(sqlite3_column_bytes) *column_bytes;
    __typeof__(sqlite3_column_int64) *column_int64;
    __typeof__(sqlite3_column_double) *column_double;
    __typeof__(sqlite3_column_type) *column_type;
    __typeof__(sqlite3_errmsg) *errmsg;
    __typeof__(sqlite3_free) *free;
    __typeof__(sqlite3_busy_timeout) *busy_timeout;
} bl__sqlite;

/* 0, or -1 with the reason in err. */
int bl__sqlite_load(bl__sqlite *s, char *err, size_t errlen);
void bl__sqlite_unload(bl__sqlite *s);

#endif
