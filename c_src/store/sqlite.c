/* sqlite.c - SQLite's entry points, loaded on demand through runtime/dlib.c (sqlite.h). */
#include "sqlite.h"
#include "../runtime/dlib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

/* Before the first connection of each time the library is mapped (a dlclose of its last user
 * unmaps it, and a new dlopen starts with SQLite's defaults): no page-cache bulk. SQLite otherwise
 * preallocates 20 pages per connection (87 KB, every page written as it links the free list)
 * before the database has a page to cache; pages are then allocated one by one as they are
 * used, still bounded by PRAGMA cache_size (store.c). Under a lock, because sqlite3_config may
 * not run while another thread initialises SQLite; every initialisation happens here. Once
 * SQLite is initialised (by us, or by the program that links the library), sqlite3_config
 * answers SQLITE_MISUSE and changes nothing. */
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static void configure(void *lib)
{
    int (*config)(int, ...) = (int (*)(int, ...))dlsym(lib, "sqlite3_config");
    int (*initialize)(void) = (int (*)(void))dlsym(lib, "sqlite3_initialize");
    if (config) (void)config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
    if (initialize) (void)initialize();
}

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
    pthread_mutex_lock(&init_mu);
    s->lib = bl__dlib_open(names, syms, sizeof(syms) / sizeof(syms[0]), err, errlen);
    if (s->lib) configure(s->lib);
    pthread_mutex_unlock(&init_mu);
    return s->lib ? 0 : -1;
}

void bl__sqlite_unload(bl__sqlite *s)
{
    bl__dlib_close(s->lib);
    memset(s, 0, sizeof(*s));
}
