/* discovery.c - finding nodes to connect to; membership (hello) does the rest.
 *
 * Strategies, combinable (docs/cluster.md):
 *  - seeds (--join, CLUSTER_SEEDS): retried every heartbeat until connected;
 *  - local EPMD: every name registered in the EPMD on this host that matches epmd_pattern;
 *  - EPMD hosts (epmd_hosts list and/or a .hosts.erlang-style hosts_file): the same on each host;
 *  - DNS poll: A records of dns_name become dns_basename@IP (as libcluster's DNSPoll);
 *  - gossip: libcluster-compatible UDP multicast (gossip.c).
 * File reads and DNS polls block, so that part of each polling round runs in a short-lived
 * worker thread that hands node names (DNS) and EPMD hosts (hosts file, epmd_hosts, the local
 * EPMD) back through an ev_async. A box shared by reference count lets the node stop while a round
 * is still running: the worker then finds the box closed and frees it. Each EPMD host is then
 * asked for its NAMES on the loop, with the distribution layer's own EPMD client (dist/epmd.c)
 * after a lookup of the host through its resolver (dist/resolve.c, off the loop for names). */
#include "../runtime/thread.h"
#include "cluster_int.h"
#include "gossip.h"
#include "../dist/epmd.h"
#include "../dist/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EPMD_TMO_MS 1000
#define MAX_FOUND 1024
#define MAX_HOSTS 256

typedef struct epmd_host {
    char host[256];      /* whose EPMD to ask */
    char name_host[256]; /* the host part of the node names found there */
} epmd_host;

typedef struct round_box {
    pthread_mutex_t mu;
    int refs;
    int open; /* the node still listens */
    int done;
    struct ev_loop *loop;
    ev_async *async;
    /* inputs (copied config) */
    bl_config cfg;
    char self_host[BL_NODE_LEN];
    /* outputs */
    char (*found)[BL_NODE_LEN];
    int nfound;
    epmd_host *hosts;
    int nhosts;
    char error[256];
} round_box;

/* One EPMD host being asked for its names, on the loop. */
typedef struct names_q {
    struct names_q *next;
    struct discovery *d;
    epmd_host h;
    int stage; /* 0 resolving, 1 asking EPMD, 2 done */
    bl_resolve_wait *rw;
    bl_epmd_req *er;
} names_q;

struct discovery {
    bl_cluster *c;
    ev_timer timer;
    ev_async async;
    round_box *box; /* the round in flight, if any */
    ev_tstamp last_round;
    bl_gossip *gossip;
    names_q *queries; /* EPMD NAMES in flight */
};

static void box_unref(round_box *b)
{
    pthread_mutex_lock(&b->mu);
    int last = --b->refs == 0;
    pthread_mutex_unlock(&b->mu);
    if (last) {
        pthread_mutex_destroy(&b->mu);
        free(b->found);
        free(b->hosts);
        free(b);
    }
}

static void add_found(round_box *b, const char *alive, const char *host)
{
    if (b->nfound >= MAX_FOUND) return;
    if (fnmatch(b->cfg.epmd_pattern, alive, 0) != 0) return;
    if (!strncmp(alive, "beamlet_cli_", 12)) return;
    snprintf(b->found[b->nfound++], BL_NODE_LEN, "%s@%s", alive, host);
}

/* An EPMD host to ask on the loop (worker thread: only records it). */
static void epmd_names(round_box *b, const char *host, const char *name_host)
{
    if (b->nhosts >= MAX_HOSTS) return;
    snprintf(b->hosts[b->nhosts].host, sizeof(b->hosts[0].host), "%s", host);
    snprintf(b->hosts[b->nhosts].name_host, sizeof(b->hosts[0].name_host), "%s", name_host);
    b->nhosts++;
}

static void for_each_csv(const char *csv, void (*fn)(round_box *, const char *), round_box *b)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", csv);
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        fn(b, t);
}

static void poll_host(round_box *b, const char *host)
{
    epmd_names(b, host, host);
}

/* .hosts.erlang: Erlang terms 'host'. one per line; also accept bare host names. */
static void read_hosts_file(round_box *b)
{
    FILE *f = fopen(b->cfg.hosts_file, "r");
    if (!f) {
        snprintf(b->error, sizeof(b->error), "cannot read hosts_file %s", b->cfg.hosts_file);
        return;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '%' || *p == '#' || *p == '\n' || !*p) continue;
        char host[256];
        size_t k = 0;
        for (; *p && k < sizeof(host) - 1; p++) {
            if (*p == '\'' || *p == '"') continue;
            if (*p == '.' && (p[1] == '\n' || p[1] == 0 || p[1] == ' ' || p[1] == '\r')) break;
            if (*p == '\n' || *p == '\r' || *p == ' ') break;
            host[k++] = *p;
        }
        host[k] = 0;
        if (k) epmd_names(b, host, host);
    }
    fclose(f);
}

static void dns_poll(round_box *b)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL, *a;
    int rc = getaddrinfo(b->cfg.dns_name, NULL, &hints, &ai);
    if (rc != 0) {
        snprintf(b->error, sizeof(b->error), "DNS lookup of %s failed: %s", b->cfg.dns_name,
                 gai_strerror(rc));
        return;
    }
    for (a = ai; a; a = a->ai_next) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof(ip));
        int dup = 0;
        for (int i = 0; i < b->nfound; i++) {
            const char *at = strchr(b->found[i], '@');
            if (at && !strcmp(at + 1, ip)) dup = 1;
        }
        if (!dup) add_found(b, b->cfg.dns_basename, ip);
    }
    freeaddrinfo(ai);
}

static void *round_main(void *arg)
{
    round_box *b = arg;
    if (b->cfg.epmd_local) epmd_names(b, "127.0.0.1", b->self_host);
    if (b->cfg.epmd_hosts[0]) for_each_csv(b->cfg.epmd_hosts, poll_host, b);
    if (b->cfg.hosts_file[0]) read_hosts_file(b);
    if (b->cfg.dns_name[0]) dns_poll(b);
    pthread_mutex_lock(&b->mu);
    b->done = 1;
    if (b->open) ev_async_send(b->loop, b->async);
    pthread_mutex_unlock(&b->mu);
    box_unref(b);
    return NULL;
}

static int needs_rounds(const bl_config *cfg)
{
    return cfg->epmd_local || cfg->epmd_hosts[0] || cfg->hosts_file[0] || cfg->dns_name[0];
}

static void start_round(struct discovery *d)
{
    bl_node *n = d->c->n;
    round_box *b = calloc(1, sizeof(*b));
    if (!b) return;
    b->found = calloc(MAX_FOUND, BL_NODE_LEN);
    b->hosts = calloc(MAX_HOSTS, sizeof(epmd_host));
    if (!b->found || !b->hosts) {
        free(b->found);
        free(b->hosts);
        free(b);
        return;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->refs = 2;
    b->open = 1;
    b->loop = n->loop;
    b->async = &d->async;
    b->cfg = n->cfg;
    snprintf(b->self_host, sizeof(b->self_host), "%s", n->host);
    if (bl__thread_start(NULL, BL_THREAD_STACK, 1, round_main, b) != 0) {
        pthread_mutex_destroy(&b->mu);
        free(b->found);
        free(b->hosts);
        free(b);
        return;
    }
    d->box = b;
    d->last_round = ev_now(n->loop);
}

static void consider(bl_cluster *c, const char *node)
{
    bl_node *n = c->n;
    if (bl_is_local_node(n, node) || cl_is_rejected(c, node) || bl_is_connected(n, node)) return;
    bl_connect(n, node);
}

/* ---- NAMES on the loop ---- */

static void names_sweep(struct discovery *d)
{
    names_q *q, *t;
    LL_FOREACH_SAFE(d->queries, q, t)
    {
        if (q->stage != 2) continue;
        LL_DELETE(d->queries, q);
        free(q);
    }
}

static void on_names(void *ud, const char *names, const char *why)
{
    names_q *q = ud;
    struct discovery *d = q->d;
    bl_node *n = d->c->n;
    q->er = NULL;
    q->stage = 2;
    if (!names) {
        bl_log(n, BL_LOG_DEBUG, "discovery: EPMD on %s: %s", q->h.host, why);
        return;
    }
    /* lines "name NAME at port N" */
    const char *p = names;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512], alive[256];
        int port;
        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
        if (sscanf(line, "name %255s at port %d", alive, &port) == 2 &&
            fnmatch(n->cfg.epmd_pattern, alive, 0) == 0 && strncmp(alive, "beamlet_cli_", 12)) {
            char node[BL_NODE_LEN];
            snprintf(node, sizeof(node), "%s@%s", alive, q->h.name_host);
            consider(d->c, node);
        }
        p += len;
        if (*p) p++;
    }
}

static void on_host(void *ud, const bl_addrs *addrs, const char *why)
{
    names_q *q = ud;
    bl_node *n = q->d->c->n;
    q->rw = NULL;
    if (!addrs) {
        bl_log(n, BL_LOG_DEBUG, "discovery: cannot resolve EPMD host %s: %s", q->h.host, why);
        q->stage = 2;
        return;
    }
    q->stage = 1;
    q->er = bl_epmd_names(n->loop, (const struct sockaddr *)&addrs->a[0], addrs->len[0],
                          EPMD_TMO_MS, on_names, q);
    if (!q->er) q->stage = 2;
}

static void ask_names(struct discovery *d, const epmd_host *h)
{
    bl_node *n = d->c->n;
    names_q *q = calloc(1, sizeof(*q));
    if (!q) return;
    q->d = d;
    q->h = *h;
    LL_PREPEND(d->queries, q);
    /* the callback may run before bl_resolve returns (an IP literal, a cached answer) */
    bl_resolve_wait *w =
        bl_resolve(n->resolver, h->host, n->inet6 ? AF_INET6 : AF_INET, on_host, q);
    if (q->stage == 0) q->rw = w;
}

static void round_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    struct discovery *d = w->data;
    round_box *b = d->box;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    int done = b->done;
    pthread_mutex_unlock(&b->mu);
    if (!done) return;
    if (b->error[0]) bl_log(d->c->n, BL_LOG_DEBUG, "discovery: %s", b->error);
    for (int i = 0; i < b->nfound; i++)
        consider(d->c, b->found[i]);
    names_sweep(d);
    for (int i = 0; i < b->nhosts; i++)
        ask_names(d, &b->hosts[i]);
    d->box = NULL;
    box_unref(b);
}

static void gossip_found(bl_node *n, const char *node, void *ud)
{
    (void)n;
    consider(ud, node);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct discovery *d = w->data;
    bl_node *n = d->c->n;
    for (int i = 0; i < n->cfg.njoin; i++)
        consider(d->c, n->cfg.join[i]);
    names_sweep(d);
    if (!d->box && needs_rounds(&n->cfg) &&
        ev_now(n->loop) - d->last_round >= n->cfg.discovery_interval_ms / 1000.0)
        start_round(d);
}

int disc_start(bl_cluster *c)
{
    bl_node *n = c->n;
    struct discovery *d = calloc(1, sizeof(*d));
    if (!d) return BL_ENOMEM;
    d->c = c;
    c->disc = d;
    ev_async_init(&d->async, round_done_cb);
    d->async.data = d;
    ev_async_start(n->loop, &d->async);
    double iv = n->cfg.heartbeat_interval_ms / 1000.0;
    ev_timer_init(&d->timer, timer_cb, 0.0, iv);
    d->timer.data = d;
    ev_timer_start(n->loop, &d->timer);
    d->last_round = -1e9;
    if (n->cfg.gossip) {
        char err[256];
        d->gossip = bl_gossip_start(n, gossip_found, c, err, sizeof(err));
        if (!d->gossip) {
            bl_log(n, BL_LOG_ERROR, "gossip discovery not started: %s", err);
            return BL_ECONFIG;
        }
    }
    return BL_OK;
}

void disc_stop(bl_cluster *c)
{
    struct discovery *d = c->disc;
    if (!d) return;
    bl_node *n = c->n;
    ev_timer_stop(n->loop, &d->timer);
    ev_async_stop(n->loop, &d->async);
    if (d->box) {
        pthread_mutex_lock(&d->box->mu);
        d->box->open = 0;
        pthread_mutex_unlock(&d->box->mu);
        box_unref(d->box);
    }
    if (d->gossip) bl_gossip_stop(d->gossip);
    while (d->queries) {
        names_q *q = d->queries;
        d->queries = q->next;
        if (q->rw) bl_resolve_cancel(n->resolver, q->rw);
        if (q->er) bl_epmd_cancel(q->er);
        free(q);
    }
    free(d);
    c->disc = NULL;
}
