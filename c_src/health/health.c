/* health.c - the `beamlet_health` process: samples node metrics on a timer through the collector
 * thread, keeps the latest sample, answers the gen_server protocol of docs/health.md and hands
 * every sample to C subscribers (include/beamlet/health.h). */
#include "health_int.h"
#include "collector.h"

#include <stdlib.h>
#include <string.h>

#define MAX_WAITING 64 /* calls parked until the first sample */

typedef struct hsub {
    struct hsub *next;
    int id;
    bl_health_sample_cb cb;
    void *ud;
} hsub;

typedef struct health {
    bl_node *n;
    bl_proc *proc;
    bl__collector *col;
    ev_async wake;
    int timer_id;
    unsigned interval_ms;
    int have;
    bl_health_metrics cur;
    unsigned long long samples;
    hsub *subs;
    int next_sub;
    bl_from waiting[MAX_WAITING];
    int nwaiting;
} health;

static health *health_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, BL_HEALTH_NAME) : NULL;
    return p && !p->dead ? bl_proc_data(p) : NULL;
}

static void own_connections(bl_node *n, bl_health_metrics *m)
{
    bl_conn *c, *t;
    m->connections = 0;
    m->queue_bytes = 0;
    HASH_ITER(hh, n->conns, c, t)
    {
        if (c->state != CONN_UP) continue;
        m->connections++;
        m->queue_bytes += bl_sendq_bytes(&c->q);
    }
}

static void reply_metrics(health *h, const bl_from *from)
{
    ei_x_buff x;
    ei_x_new(&x);
    bl__health_encode_metrics(&x, h->n->name, &h->cur, h->interval_ms);
    bl_reply(h->n, from, x.buff, x.index);
    ei_x_free(&x);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    health *h = w->data;
    bl_health_metrics *m = bl__collector_take(h->col);
    if (!m) return;
    own_connections(h->n, m);
    h->cur = *m;
    free(m);
    h->have = 1;
    h->samples++;
    for (int i = 0; i < h->nwaiting; i++)
        reply_metrics(h, &h->waiting[i]);
    h->nwaiting = 0;
    for (hsub *s = h->subs, *next; s; s = next) {
        next = s->next; /* a callback may unsubscribe itself */
        s->cb(h->n, &h->cur, s->ud);
    }
}

static void on_tick(bl_node *n, void *ud)
{
    (void)n;
    health *h = ud;
    bl__collector_request(h->col);
}

static int atom_is(const char *buf, int idx, const char *want)
{
    char a[MAXATOMLEN_UTF8];
    return ei_decode_atom(buf, &idx, a) == 0 && !strcmp(a, want);
}

static int h_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                  void *ud)
{
    (void)self;
    health *h = ud;
    if (atom_is(buf, idx, "metrics")) {
        if (h->have) {
            bl__health_encode_metrics(reply, h->n->name, &h->cur, h->interval_ms);
            return 0;
        }
        if (h->nwaiting >= MAX_WAITING) {
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, "error");
            return ei_x_encode_atom(reply, "no_sample_yet");
        }
        h->waiting[h->nwaiting++] = *from;
        return 1;
    }
    if (atom_is(buf, idx, "ping")) return ei_x_encode_atom(reply, "pong");
    if (atom_is(buf, idx, "config")) {
        ei_x_encode_map_header(reply, 2);
        bl__kv_u64(reply, "interval_ms", h->interval_ms);
        bl__kv_u64(reply, "samples", h->samples);
        return 0;
    }
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "unknown_request");
}

static void h_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    health *h = ud;
    if (h->timer_id > 0) bl_timer_cancel(h->n, h->timer_id);
    bl__collector_free(h->col);
    ev_async_stop(h->n->loop, &h->wake);
    for (hsub *s = h->subs, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    free(h);
}

int bl_health_start(bl_node *n);

int bl_health_start(bl_node *n)
{
    health *h = calloc(1, sizeof(*h));
    if (!h) return BL_ENOMEM;
    h->n = n;
    h->interval_ms = n->cfg.health_interval_ms ? n->cfg.health_interval_ms : 5000;
    ev_async_init(&h->wake, on_wake);
    h->wake.data = h;
    ev_async_start(n->loop, &h->wake);
    const char *root = getenv("BEAMLET_PROC_ROOT"); /* tests: a fixture tree instead of /proc */
    h->col = bl__collector_new(n->loop, &h->wake, root);
    if (!h->col) {
        ev_async_stop(n->loop, &h->wake);
        free(h);
        return BL_ENOMEM;
    }
    static const bl_proc_ops ops = {.on_call = h_call, .on_terminate = h_terminate};
    int rc = bl_spawn(n, BL_HEALTH_NAME, &ops, h, &h->proc);
    if (rc != BL_OK) {
        bl__collector_free(h->col);
        ev_async_stop(n->loop, &h->wake);
        free(h);
        return rc;
    }
    bl__collector_request(h->col); /* the first sample right away */
    h->timer_id = bl_timer(n, h->interval_ms, h->interval_ms, on_tick, h);
    return h->timer_id > 0 ? BL_OK : BL_ENOMEM;
}

/* ---- public C API ---- */

int bl_health_metrics_get(bl_node *n, bl_health_metrics *out)
{
    health *h = health_of(n);
    if (!h) return BL_ENOPROC;
    if (!h->have) return BL_EBUSY;
    *out = h->cur;
    return BL_OK;
}

int bl_health_subscribe(bl_node *n, bl_health_sample_cb cb, void *ud)
{
    health *h = health_of(n);
    if (!h) return BL_ENOPROC;
    if (!cb) return BL_EINVAL;
    hsub *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->id = ++h->next_sub;
    s->cb = cb;
    s->ud = ud;
    LL_APPEND(h->subs, s);
    return s->id;
}

void bl_health_unsubscribe(bl_node *n, int id)
{
    health *h = health_of(n);
    if (!h) return;
    hsub *s, *t;
    LL_FOREACH_SAFE(h->subs, s, t)
    if (s->id == id) {
        LL_DELETE(h->subs, s);
        free(s);
    }
}
