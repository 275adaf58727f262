/* mhd.c - loading libmicrohttpd on first use (see mhd.h). */
#include "mhd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

/* Written once under pthread_once, read-only afterwards: a cache of library symbols. */
static bl__mhd table;
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    struct {
        void **slot;
        const char *name;
    } syms[] = {
        {(void **)&table.start_daemon, "MHD_start_daemon"},
        {(void **)&table.stop_daemon, "MHD_stop_daemon"},
        {(void **)&table.run, "MHD_run"},
        {(void **)&table.get_timeout, "MHD_get_timeout"},
        {(void **)&table.get_daemon_info, "MHD_get_daemon_info"},
        {(void **)&table.get_connection_info, "MHD_get_connection_info"},
        {(void **)&table.lookup_connection_value, "MHD_lookup_connection_value"},
        {(void **)&table.get_connection_values, "MHD_get_connection_values"},
        {(void **)&table.create_response_from_buffer, "MHD_create_response_from_buffer"},
        {(void **)&table.create_response_from_callback, "MHD_create_response_from_callback"},
        {(void **)&table.add_response_header, "MHD_add_response_header"},
        {(void **)&table.queue_response, "MHD_queue_response"},
        {(void **)&table.destroy_response, "MHD_destroy_response"},
        {(void **)&table.suspend_connection, "MHD_suspend_connection"},
        {(void **)&table.resume_connection, "MHD_resume_connection"},
        {(void **)&table.http_unescape, "MHD_http_unescape"},
    };
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) return; /* the handle stays open: harmless, and never retried */
    }
    loaded = 1;
}

const bl__mhd *bl__mhd_get(void)
{
    pthread_once(&once, load);
    return loaded ? &table : NULL;
}
