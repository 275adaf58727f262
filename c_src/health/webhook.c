/* webhook.c - HTTP for the health service (webhook.h): alert notifications as POSTs of JSON and
 * the GETs of HTTP health checks, with libcurl's multi
 * interface driven by the node's libev loop: curl tells which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> ev_io) and when to wake (CURLMOPT_TIMERFUNCTION -> ev_timer); no
 * call here waits (curl's resolver runs on its own thread). libcurl is loaded with dlopen the
 * first time a webhook is sent, so a node without webhooks never maps it.
 *
 * A delivery that fails (no answer, a connection error, a status other than 2xx) is retried
 * after 1, 2, 4, 8 and 16 s, then dropped with a log line. At most 4 requests are in flight and
 * 256 deliveries queued; a full queue drops the oldest. */
#include "webhook.h"
#include "../runtime/dlib.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT 4
#define MAX_QUEUED 256
#define MAX_ATTEMPTS 6
#define TIMEOUT_MS 5000

typedef struct curl_api {
    void *lib;
    __typeof__(curl_multi_init) *multi_init;
    __typeof__(curl_multi_setopt) *multi_setopt;
    __typeof__(curl_multi_socket_action) *multi_socket_action;
    __typeof__(curl_multi_add_handle) *multi_add_handle;
    __typeof__(curl_multi_remove_handle) *multi_remove_handle;
    __typeof__(curl_multi_info_read) *multi_info_read;
    __typeof__(curl_multi_cleanup) *multi_cleanup;
    __typeof__(curl_multi_assign) *multi_assign;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
} curl_api;

typedef struct delivery {
    struct delivery *next;
    char *url, *body; /* body NULL: a GET */
    bl__http_cb cb;   /* a GET: its answer, no retries */
    void *ud;
    unsigned timeout_ms;
    unsigned attempts;
    ev_tstamp not_before;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
} delivery;

typedef struct sockw {
    ev_io io;
    bl__webhooks *w;
    curl_socket_t fd;
} sockw;

struct bl__webhooks {
    bl_node *n;
    struct ev_loop *loop;
    curl_api c;
    int loaded, load_failed;
    CURLM *multi;
    ev_timer curl_timer, retry_timer;
    delivery *queue; /* waiting (FIFO) */
    unsigned nqueued, ninflight;
    delivery *inflight;
    bl__webhook_stats st;
    unsigned long long gets;
};

static int load(bl__webhooks *w)
{
    if (w->loaded) return 0;
    if (w->load_failed) return -1;
    curl_api *c = &w->c;
    /* libcurl-gnutls has the same API (Debian's libcurl3-gnutls) */
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
#define SYM(f)                                                                                     \
    {                                                                                              \
        "curl_" #f, (void **)&c->f                                                                 \
    }
    const bl__dsym syms[] = {
        SYM(multi_init),       SYM(multi_setopt),        SYM(multi_socket_action),
        SYM(multi_add_handle), SYM(multi_remove_handle), SYM(multi_info_read),
        SYM(multi_cleanup),    SYM(multi_assign),        SYM(easy_init),
        SYM(easy_setopt),      SYM(easy_getinfo),        SYM(easy_cleanup),
        SYM(slist_append),     SYM(slist_free_all),
    };
#undef SYM
    char err[256];
    if (!(c->lib = bl__dlib_open(names, syms, sizeof(syms) / sizeof(syms[0]), err, sizeof(err)))) {
        bl_log(w->n, BL_LOG_ERROR, "alerts: webhooks need libcurl.so.4: %s", err);
        w->load_failed = 1;
        return -1;
    }
    if (!(w->multi = c->multi_init())) {
        bl_log(w->n, BL_LOG_ERROR, "alerts: libcurl.so.4 unusable (curl_multi_init failed)");
        bl__dlib_close(c->lib);
        c->lib = NULL;
        w->load_failed = 1;
        return -1;
    }
    w->loaded = 1;
    return 0;
}

static void check_done(bl__webhooks *w);
static void pump(bl__webhooks *w);

static void on_sock_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    sockw *s = (sockw *)io;
    bl__webhooks *w = s->w;
    int running = 0;
    int action =
        (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    w->c.multi_socket_action(w->multi, s->fd, action, &running);
    check_done(w);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    (void)e;
    bl__webhooks *w = userp;
    sockw *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(w->loop, &s->io);
            free(s);
            w->c.multi_assign(w->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) return -1;
        s->w = w;
        s->fd = fd;
        w->c.multi_assign(w->multi, fd, s);
    } else {
        ev_io_stop(w->loop, &s->io);
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_init(&s->io, on_sock_io, fd, ev);
    ev_io_start(w->loop, &s->io);
    return 0;
}

static void on_curl_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bl__webhooks *w = t->data;
    int running = 0;
    w->c.multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    bl__webhooks *w = userp;
    ev_timer_stop(w->loop, &w->curl_timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&w->curl_timer, timeout_ms / 1000.0, 0.);
        ev_timer_start(w->loop, &w->curl_timer);
    }
    return 0;
}

static size_t discard(char *p, size_t sz, size_t nm, void *ud)
{
    (void)p;
    (void)ud;
    return sz * nm;
}

static void delivery_free(bl__webhooks *w, delivery *d)
{
    if (d->easy) {
        w->c.multi_remove_handle(w->multi, d->easy);
        w->c.easy_cleanup(d->easy);
    }
    if (d->hdrs) w->c.slist_free_all(d->hdrs);
    free(d->url);
    free(d->body);
    free(d);
}

static void enqueue(bl__webhooks *w, delivery *d)
{
    d->next = NULL;
    delivery **pp = &w->queue;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
    w->nqueued++;
}

static int start(bl__webhooks *w, delivery *d)
{
    curl_api *c = &w->c;
    d->easy = c->easy_init();
    if (!d->easy) return -1;
    c->easy_setopt(d->easy, CURLOPT_URL, d->url);
    if (d->body) {
        d->hdrs = c->slist_append(NULL, "Content-Type: application/json");
        c->easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->hdrs);
        c->easy_setopt(d->easy, CURLOPT_POSTFIELDS, d->body);
        c->easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(d->body));
    } else {
        c->easy_setopt(d->easy, CURLOPT_HTTPGET, 1L);
    }
    long tmo = d->timeout_ms ? (long)d->timeout_ms : (long)TIMEOUT_MS;
    c->easy_setopt(d->easy, CURLOPT_TIMEOUT_MS, tmo);
    c->easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS, tmo);
    c->easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L);
    c->easy_setopt(d->easy, CURLOPT_USERAGENT, "beamlet/" BL_VERSION);
    c->easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, discard);
    c->easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->errbuf);
    c->easy_setopt(d->easy, CURLOPT_PRIVATE, d);
    c->easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    d->errbuf[0] = 0;
    if (c->multi_add_handle(w->multi, d->easy) != CURLM_OK) return -1;
    d->next = w->inflight;
    w->inflight = d;
    w->ninflight++;
    return 0;
}

static void retry_or_drop(bl__webhooks *w, delivery *d, const char *why)
{
    if (d->easy) {
        w->c.multi_remove_handle(w->multi, d->easy);
        w->c.easy_cleanup(d->easy);
        d->easy = NULL;
    }
    if (d->hdrs) w->c.slist_free_all(d->hdrs);
    d->hdrs = NULL;
    if (d->attempts >= MAX_ATTEMPTS) {
        bl_log(w->n, BL_LOG_WARN, "alerts: webhook %s dropped after %u attempts: %s", d->url,
               d->attempts, why);
        w->st.dropped++;
        delivery_free(w, d);
        return;
    }
    w->st.retried++;
    d->not_before = ev_now(w->loop) + (double)(1u << (d->attempts - 1));
    bl_log(w->n, BL_LOG_INFO, "alerts: webhook %s failed (%s), retry %u in %.0f s", d->url, why,
           d->attempts, (double)(1u << (d->attempts - 1)));
    if (w->nqueued >= MAX_QUEUED) {
        w->st.dropped++;
        delivery_free(w, d);
        return;
    }
    enqueue(w, d);
}

static void check_done(bl__webhooks *w)
{
    CURLMsg *m;
    int left;
    while ((m = w->c.multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        delivery *d = NULL;
        w->c.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        if (!d) continue;
        delivery **pp = &w->inflight;
        while (*pp && *pp != d)
            pp = &(*pp)->next;
        if (*pp) *pp = d->next;
        w->ninflight--;
        long code = 0;
        w->c.easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &code);
        if (d->cb) { /* a GET: the caller judges the answer */
            int ok = m->data.result == CURLE_OK;
            d->cb(ok ? code : 0, ok ? "" : (d->errbuf[0] ? d->errbuf : "transfer failed"), d->ud);
            delivery_free(w, d);
            continue;
        }
        if (m->data.result == CURLE_OK && code >= 200 && code < 300) {
            w->st.delivered++;
            delivery_free(w, d);
        } else {
            char why[CURL_ERROR_SIZE + 32];
            if (m->data.result != CURLE_OK)
                snprintf(why, sizeof(why), "%s", d->errbuf[0] ? d->errbuf : "transfer failed");
            else
                snprintf(why, sizeof(why), "HTTP %ld", code);
            retry_or_drop(w, d, why);
        }
    }
    pump(w);
}

/* start what is due; wake again for the next retry */
static void pump(bl__webhooks *w)
{
    ev_tstamp now = ev_now(w->loop), next = 0;
    delivery **pp = &w->queue;
    while (*pp && w->ninflight < MAX_INFLIGHT) {
        delivery *d = *pp;
        if (d->not_before > now) {
            if (!next || d->not_before < next) next = d->not_before;
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        w->nqueued--;
        d->attempts++;
        if (start(w, d) < 0) retry_or_drop(w, d, "cannot start a request");
    }
    for (delivery *d = *pp; d; d = d->next)
        if (d->not_before > now && (!next || d->not_before < next)) next = d->not_before;
    ev_timer_stop(w->loop, &w->retry_timer);
    if (next) {
        ev_timer_set(&w->retry_timer, next - now + 0.01, 0.);
        ev_timer_start(w->loop, &w->retry_timer);
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    pump(t->data);
}

bl__webhooks *bl__webhooks_new(bl_node *n, struct ev_loop *loop)
{
    bl__webhooks *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->n = n;
    w->loop = loop;
    ev_timer_init(&w->curl_timer, on_curl_timer, 0., 0.);
    w->curl_timer.data = w;
    ev_timer_init(&w->retry_timer, on_retry, 0., 0.);
    w->retry_timer.data = w;
    return w;
}

int bl__webhooks_post(bl__webhooks *w, const char *url, const char *json)
{
    if (load(w) < 0) return BL_ESYS;
    if (!w->st.posted && !w->gets) {
        w->c.multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        w->c.multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
        w->c.multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        w->c.multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    }
    delivery *d = calloc(1, sizeof(*d));
    if (!d || !(d->url = strdup(url)) || !(d->body = strdup(json))) {
        if (d) free(d->url);
        free(d);
        return BL_ENOMEM;
    }
    if (w->nqueued >= MAX_QUEUED) { /* drop the oldest */
        delivery *old = w->queue;
        w->queue = old->next;
        w->nqueued--;
        w->st.dropped++;
        delivery_free(w, old);
    }
    w->st.posted++;
    enqueue(w, d);
    pump(w);
    return BL_OK;
}

int bl__http_get(bl__webhooks *w, const char *url, unsigned timeout_ms, bl__http_cb cb, void *ud)
{
    if (load(w) < 0) return BL_ESYS;
    if (!w->st.posted && !w->gets) {
        w->c.multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        w->c.multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
        w->c.multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        w->c.multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    }
    w->gets++;
    delivery *d = calloc(1, sizeof(*d));
    if (!d || !(d->url = strdup(url))) {
        free(d);
        return BL_ENOMEM;
    }
    d->cb = cb;
    d->ud = ud;
    d->timeout_ms = timeout_ms;
    d->attempts = 1;
    if (start(w, d) < 0) {
        delivery_free(w, d);
        return BL_ENOMEM;
    }
    return BL_OK;
}

void bl__webhooks_stats(bl__webhooks *w, bl__webhook_stats *out)
{
    *out = w->st;
    out->queued = w->nqueued;
    out->inflight = w->ninflight;
}

void bl__webhooks_free(bl__webhooks *w)
{
    if (!w) return;
    ev_timer_stop(w->loop, &w->curl_timer);
    ev_timer_stop(w->loop, &w->retry_timer);
    while (w->inflight) {
        delivery *d = w->inflight;
        w->inflight = d->next;
        delivery_free(w, d);
    }
    while (w->queue) {
        delivery *d = w->queue;
        w->queue = d->next;
        delivery_free(w, d);
    }
    if (w->multi) w->c.multi_cleanup(w->multi); /* removes the sockets through sock_cb */
    bl__dlib_close(w->c.lib);
    free(w);
}
