/* signal.c - hooks on process signals, run on the loop thread (libev signal watchers, through
 * signalfd), and the settings a running node can change without a restart: the log level and
 * format, and any key the key table marks live (bl_config_apply in config.c checks the value,
 * then bl__node_config_replace here swaps the configuration and tells the modules that keep
 * something derived from it - timers, rule sets - through their config hooks). The CLI uses them
 * for SIGHUP reloads, the cluster configuration service for cluster-wide changes; the runtime
 * itself only handles SIGTERM/SIGINT. */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct bl_cfghook {
    struct bl_cfghook *next;
    bl__cfg_hook_fn fn;
    void *ud;
} bl_cfghook;

int bl__node_on_config(bl_node *n, bl__cfg_hook_fn fn, void *ud)
{
    bl_cfghook *h = calloc(1, sizeof(*h));
    if (!h) return BL_ENOMEM;
    h->fn = fn;
    h->ud = ud;
    h->next = n->cfghooks;
    n->cfghooks = h;
    return BL_OK;
}

void bl__node_off_config(bl_node *n, bl__cfg_hook_fn fn, void *ud)
{
    for (bl_cfghook **p = &n->cfghooks; *p; p = &(*p)->next)
        if ((*p)->fn == fn && (*p)->ud == ud) {
            bl_cfghook *h = *p;
            *p = h->next;
            free(h);
            return;
        }
}

void bl__node_config_replace(bl_node *n, const bl_config *fresh, const char *key)
{
    memcpy(&n->cfg, fresh, sizeof(n->cfg));
    for (bl_cfghook *h = n->cfghooks, *next; h; h = next) {
        next = h->next; /* a hook may remove itself */
        h->fn(n, key, h->ud);
    }
}

void bl_cfghooks_free(bl_node *n)
{
    while (n->cfghooks) {
        bl_cfghook *h = n->cfghooks;
        n->cfghooks = h->next;
        free(h);
    }
}

void bl_node_set_log(bl_node *n, bl_log_level level, bl_log_format format)
{
    if (!n || level > BL_LOG_DEBUG || format > BL_LOG_JSON) return;
    n->cfg.log_level = level;
    n->cfg.log_format = format;
}
