/* sqlite.c - SQLite's entry points, loaded on demand through runtime/dlib.c (sqlite.h). */
#include "sqlite.h"
#include "../runtime/dlib.h"

#include <string.h>

int bl__sqlite_load(bl__sqlite *s, char *err, size_t errlen)
{
    static const char *const names[] = {"libsqlite3.so.0", NULL};
    memset(s, 0, sizeof(*s));
#define SYM(f)                                                                                     \
    {                                                                                              \
        "sqlite3_" #f, (void **)&s->f                                                              \
    }
    const bl__dsym syms[] = {
        SYM(open_v2),      SYM(close),         SYM(exec),        SYM(prepare_v2),
        SYM(bind_text),    SYM(bind_blob),     SYM(bind_int64),  SYM(bind_double),
        SYM(bind_null),    SYM(step),          SYM(reset),       SYM(clear_bindings),
        SYM(finalize),     SYM(column_text),   SYM(column_blob), SYM(column_bytes),
        SYM(column_int64), SYM(column_double), SYM(column_type), SYM(errmsg),
        SYM(free),         SYM(busy_timeout),
    };
#undef SYM
    s->lib = bl__dlib_open(names, syms, sizeof(syms) / sizeof(syms[0]), err, errlen);
    return s->lib ? 0 : -1;
}

void bl__sqlite_unload(bl__sqlite *s)
{
    bl__dlib_close(s->lib);
    memset(s, 0, sizeof(*s));
}
