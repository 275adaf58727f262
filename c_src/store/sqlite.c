/* sqlite.c - the dlopen loader of SQLite (sqlite.h). */
#include "sqlite.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int bl__sqlite_load(bl__sqlite *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!s->lib) {
        snprintf(err, errlen, "cannot load libsqlite3.so.0: %s", dlerror());
        return -1;
    }
    const char *missing = NULL;
#define SYM(f, name)                                                                               \
    if (!missing && !(s->f = (__typeof__(s->f))dlsym(s->lib, name))) missing = name
    SYM(open_v2, "sqlite3_open_v2");
    SYM(close, "sqlite3_close");
    SYM(exec, "sqlite3_exec");
    SYM(prepare_v2, "sqlite3_prepare_v2");
    SYM(bind_text, "sqlite3_bind_text");
    SYM(bind_blob, "sqlite3_bind_blob");
    SYM(bind_int64, "sqlite3_bind_int64");
    SYM(bind_double, "sqlite3_bind_double");
    SYM(bind_null, "sqlite3_bind_null");
    SYM(step, "sqlite3_step");
    SYM(reset, "sqlite3_reset");
    SYM(clear_bindings, "sqlite3_clear_bindings");
    SYM(finalize, "sqlite3_finalize");
    SYM(column_text, "sqlite3_column_text");
    SYM(column_blob, "sqlite3_column_blob");
    SYM(column_bytes, "sqlite3_column_bytes");
    SYM(column_int64, "sqlite3_column_int64");
    SYM(column_double, "sqlite3_column_double");
    SYM(column_type, "sqlite3_column_type");
    SYM(errmsg, "sqlite3_errmsg");
    SYM(free, "sqlite3_free");
    SYM(busy_timeout, "sqlite3_busy_timeout");
#undef SYM
    if (missing) {
        snprintf(err, errlen, "libsqlite3.so.0 has no %s", missing);
        dlclose(s->lib);
        s->lib = NULL;
        return -1;
    }
    return 0;
}

void bl__sqlite_unload(bl__sqlite *s)
{
    if (s->lib) dlclose(s->lib);
    memset(s, 0, sizeof(*s));
}
