/* signal.c - hooks on process signals, run on the loop thread (libev signal watchers, through
 * signalfd), and the settings a running node can change without a restart (log level, format).
 * The CLI uses them for SIGHUP reloads; the runtime itself only handles SIGTERM/SIGINT. */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>

typedef struct bl_sighook {
    struct bl_sighook *next;
    ev_signal w;
    bl_node *n;
    bl_signal_cb cb;
    void *ud;
} bl_sighook;

static void sighook_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_sighook *h = w->data;
    h->cb(h->n, w->signum, h->ud);
}

int bl_node_on_signal(bl_node *n, int signum, bl_signal_cb cb, void *ud)
{
    if (!n || !cb || signum <= 0 || signum >= NSIG) return BL_EINVAL;
    bl_sighook *h = calloc(1, sizeof(*h));
    if (!h) return BL_ENOMEM;
    h->n = n;
    h->cb = cb;
    h->ud = ud;
    ev_signal_init(&h->w, sighook_cb, signum);
    h->w.data = h;
    ev_signal_start(n->loop, &h->w);
    h->next = n->sighooks;
    n->sighooks = h;
    return BL_OK;
}

void bl_sighooks_free(bl_node *n)
{
    while (n->sighooks) {
        bl_sighook *h = n->sighooks;
        n->sighooks = h->next;
        ev_signal_stop(n->loop, &h->w);
        free(h);
    }
}

void bl_node_set_log(bl_node *n, bl_log_level level, bl_log_format format)
{
    if (!n || level > BL_LOG_DEBUG || format > BL_LOG_JSON) return;
    n->cfg.log_level = level;
    n->cfg.log_format = format;
}
