/* resolve.c - host name lookups off the loop thread (see resolve.h). */
#include "../runtime/thread.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#define CACHE_S 5.0
#define MAX_CACHED 256

struct bl_resolve_wait {
    struct bl_resolve_wait *next;
    bl_resolve_cb cb;
    void *ud;
};

/* One name: in flight (waiters) or answered (cached until expires). */
typedef struct entry {
    struct entry *next;
    char host[256];
    int family;
    int inflight;
    ev_tstamp expires;
    bl_addrs addrs;
    char why[128];
    struct bl_resolve_wait *waiters;
} entry;

/* Shared with the lookup threads. */
typedef struct box {
    pthread_mutex_t mu;
    int refs;
    int open;
    struct ev_loop *loop;
    ev_async *async;
    struct job *done;
} box;

typedef struct job {
    struct job *next;
    box *b;
    char host[256];
    int family;
    bl_addrs addrs;
    char why[128];
} job;

struct bl_resolver {
    struct ev_loop *loop;
    ev_async async;
    box *b;
    entry *entries;
};

static void box_unref(box *b)
{
    pthread_mutex_lock(&b->mu);
    int last = --b->refs == 0;
    pthread_mutex_unlock(&b->mu);
    if (!last) return;
    while (b->done) {
        job *j = b->done;
        b->done = j->next;
        free(j);
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int bl_resolve_literal(const char *host, struct sockaddr_storage *ss, socklen_t *len)
{
    char h[128];
    size_t k = strlen(host);
    if (k >= sizeof(h)) return -1;
    if (host[0] == '[' && k > 2 && host[k - 1] == ']') {
        memcpy(h, host + 1, k - 2);
        h[k - 2] = 0;
    } else {
        memcpy(h, host, k + 1);
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        *len = sizeof(*a6);
        return 0;
    }
    return -1;
}

static void *lookup_main(void *arg)
{
    job *j = arg;
    struct addrinfo hints = {.ai_family = j->family, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(j->host, NULL, &hints, &ai);
    if (rc != 0) {
        snprintf(j->why, sizeof(j->why), "cannot resolve %.80s: %s", j->host, gai_strerror(rc));
    } else {
        for (struct addrinfo *a = ai; a && j->addrs.n < BL_RESOLVE_MAX_ADDRS; a = a->ai_next) {
            if (a->ai_addrlen > sizeof(struct sockaddr_storage)) continue;
            memcpy(&j->addrs.a[j->addrs.n], a->ai_addr, a->ai_addrlen);
            j->addrs.len[j->addrs.n++] = a->ai_addrlen;
        }
        freeaddrinfo(ai);
        if (j->addrs.n == 0) snprintf(j->why, sizeof(j->why), "no address for %.80s", j->host);
    }
    box *b = j->b;
    pthread_mutex_lock(&b->mu);
    if (b->open) {
        j->next = b->done;
        b->done = j;
        ev_async_send(b->loop, b->async);
        j = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    free(j);
    box_unref(b);
    return NULL;
}

/* One waiter at a time off the list, so a callback may cancel the others (its node stopping)
 * or start a new lookup of the same name (which then answers the rest). */
static void answer(entry *e)
{
    while (e->waiters && !e->inflight) {
        struct bl_resolve_wait *w = e->waiters;
        e->waiters = w->next;
        w->cb(w->ud, e->addrs.n ? &e->addrs : NULL, e->addrs.n ? NULL : e->why);
        free(w);
    }
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)revents;
    bl_resolver *r = a->data;
    pthread_mutex_lock(&r->b->mu);
    job *done = r->b->done;
    r->b->done = NULL;
    pthread_mutex_unlock(&r->b->mu);
    while (done) {
        job *j = done;
        done = j->next;
        entry *e;
        LL_FOREACH(r->entries, e)
        {
            if (e->inflight && e->family == j->family && !strcmp(e->host, j->host)) break;
        }
        if (e) {
            e->inflight = 0;
            e->addrs = j->addrs;
            snprintf(e->why, sizeof(e->why), "%s", j->why);
            /* failures are not cached: the next connect asks again */
            e->expires = ev_now(loop) + (e->addrs.n ? CACHE_S : 0);
            answer(e);
        }
        free(j);
    }
}

bl_resolver *bl_resolver_new(struct ev_loop *loop)
{
    bl_resolver *r = calloc(1, sizeof(*r));
    box *b = calloc(1, sizeof(*b));
    if (!r || !b) {
        free(r);
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->refs = 1;
    b->open = 1;
    b->loop = loop;
    b->async = &r->async;
    r->b = b;
    r->loop = loop;
    ev_async_init(&r->async, async_cb);
    r->async.data = r;
    ev_async_start(loop, &r->async);
    return r;
}

void bl_resolver_free(bl_resolver *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->b->mu);
    r->b->open = 0;
    pthread_mutex_unlock(&r->b->mu);
    ev_async_stop(r->loop, &r->async);
    box_unref(r->b);
    entry *e, *t;
    LL_FOREACH_SAFE(r->entries, e, t)
    {
        while (e->waiters) {
            struct bl_resolve_wait *w = e->waiters;
            e->waiters = w->next;
            free(w);
        }
        free(e);
    }
    free(r);
}

static void reply_now(bl_resolve_cb cb, void *ud, const struct sockaddr_storage *ss, socklen_t len)
{
    bl_addrs a = {.n = 1};
    a.a[0] = *ss;
    a.len[0] = len;
    cb(ud, &a, NULL);
}

bl_resolve_wait *bl_resolve(bl_resolver *r, const char *host, int family, bl_resolve_cb cb,
                            void *ud)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (bl_resolve_literal(host, &ss, &len) == 0) {
        reply_now(cb, ud, &ss, len);
        return NULL;
    }
    if (strlen(host) >= 256) {
        cb(ud, NULL, "host name too long");
        return NULL;
    }
    ev_tstamp now = ev_now(r->loop);
    entry *e, *t;
    int count = 0;
    LL_FOREACH_SAFE(r->entries, e, t)
    {
        if (!e->inflight && e->expires <= now && !e->waiters) {
            LL_DELETE(r->entries, e);
            free(e);
            continue;
        }
        count++;
    }
    LL_FOREACH(r->entries, e)
    {
        if (e->family == family && !strcmp(e->host, host)) break;
    }
    if (e && !e->inflight && e->expires > now) {
        cb(ud, &e->addrs, NULL);
        return NULL;
    }
    struct bl_resolve_wait *w = calloc(1, sizeof(*w));
    if (!w || (!e && count >= MAX_CACHED)) {
        free(w);
        cb(ud, NULL, w ? "too many host lookups in flight" : "out of memory");
        return NULL;
    }
    w->cb = cb;
    w->ud = ud;
    if (e && e->inflight) {
        LL_APPEND(e->waiters, w);
        return w;
    }
    job *j = calloc(1, sizeof(*j));
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (e) {
            snprintf(e->host, sizeof(e->host), "%s", host);
            e->family = family;
            LL_PREPEND(r->entries, e);
        }
    }
    if (!j || !e) {
        free(j);
        free(w);
        cb(ud, NULL, "out of memory");
        return NULL;
    }
    e->inflight = 1;
    LL_APPEND(e->waiters, w);
    snprintf(j->host, sizeof(j->host), "%s", host);
    j->family = family;
    j->b = r->b;
    pthread_mutex_lock(&r->b->mu);
    r->b->refs++;
    pthread_mutex_unlock(&r->b->mu);
    int rc = bl__thread_start(NULL, BL_THREAD_STACK, 1, lookup_main, j);
    if (rc != 0) {
        box_unref(r->b);
        free(j);
        e->inflight = 0;
        e->expires = 0;
        snprintf(e->why, sizeof(e->why), "cannot start a lookup thread");
        e->addrs.n = 0;
        answer(e);
        return NULL;
    }
    return w;
}

void bl_resolve_cancel(bl_resolver *r, bl_resolve_wait *w)
{
    if (!w) return;
    entry *e;
    LL_FOREACH(r->entries, e)
    {
        struct bl_resolve_wait *x;
        LL_FOREACH(e->waiters, x)
        {
            if (x == w) {
                LL_DELETE(e->waiters, w);
                free(w);
                return;
            }
        }
    }
}
