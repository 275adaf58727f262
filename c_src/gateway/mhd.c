/* mhd.c - loading libmicrohttpd on first use (see mhd.h). */
#include "mhd.h"
#include "../runtime/dlib.h"

#include <pthread.h>
#include <stddef.h>

/* Written once under pthread_once, read-only afterwards: a cache of library symbols. */
static bl__mhd table;
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libmicrohttpd.so.12", NULL};
    const bl__dsym syms[] = {
        {"MHD_start_daemon", (void **)&table.start_daemon},
        {"MHD_stop_daemon", (void **)&table.stop_daemon},
        {"MHD_run", (void **)&table.run},
        {"MHD_get_timeout", (void **)&table.get_timeout},
        {"MHD_get_daemon_info", (void **)&table.get_daemon_info},
        {"MHD_get_connection_info", (void **)&table.get_connection_info},
        {"MHD_lookup_connection_value", (void **)&table.lookup_connection_value},
        {"MHD_get_connection_values", (void **)&table.get_connection_values},
        {"MHD_create_response_from_buffer", (void **)&table.create_response_from_buffer},
        {"MHD_create_response_from_callback", (void **)&table.create_response_from_callback},
        {"MHD_add_response_header", (void **)&table.add_response_header},
        {"MHD_queue_response", (void **)&table.queue_response},
        {"MHD_destroy_response", (void **)&table.destroy_response},
        {"MHD_suspend_connection", (void **)&table.suspend_connection},
        {"MHD_resume_connection", (void **)&table.resume_connection},
        {"MHD_http_unescape", (void **)&table.http_unescape},
    };
    /* the handle stays open for the process's life; a failed load is never retried */
    loaded = bl__dlib_open(names, syms, sizeof(syms) / sizeof(syms[0]), NULL, 0) != NULL;
}

const bl__mhd *bl__mhd_get(void)
{
    pthread_once(&once, load);
    return loaded ? &table : NULL;
}
