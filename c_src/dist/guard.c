/* guard.c - admission control for distribution connections (see guard.h): the allow-list, the
 * connection and per-address bounds, and refusal logs on a budget.
 *
 * One table, keyed by remote address (or, for outgoing refusals, by node name), holds what is
 * counted per key: handshakes running, the rate bucket, and the log budget of the current window.
 * It is bounded (GUARD_MAX_KEYS); keys beyond share one entry, so a flood from very many
 * addresses is still bounded together. A 1 s timer, running only while the table is not empty,
 * writes the summary lines of ended windows and frees idle keys. */
#include "guard.h"
#include "allow.h"
#include "../runtime/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_LOG_WINDOW 10.0     /* seconds: the window of the refusal-log budget */
#define GUARD_LOG_PER_KEY 20      /* lines per remote address per window */
#define GUARD_LOG_PER_NODE 3      /* lines per node (outgoing refusals, retried often) */
#define GUARD_LOG_TOTAL 100       /* lines per window, all keys together */
#define GUARD_MAX_KEYS 16384      /* keys tracked one by one */
#define GUARD_MAX_HANDSHAKES 1024 /* handshakes running at once, all addresses together */
#define GUARD_KEY_LEN 72

typedef struct bl_guard_key {
    UT_hash_handle hh;
    char key[GUARD_KEY_LEN];
    unsigned running;              /* incoming handshakes running from this address */
    double tokens;                 /* handshake-rate bucket */
    ev_tstamp refilled;            /* when tokens were last topped up */
    ev_tstamp window;              /* start of the current log window */
    unsigned logged;               /* lines written in this window */
    unsigned long long suppressed; /* lines not written in this window */
    ev_tstamp last_seen;
} gkey;

struct bl_guard {
    bl_allow *allow; /* NULL: every node */
    gkey *keys;
    unsigned nkeys;
    gkey other; /* every key past GUARD_MAX_KEYS */
    ev_timer sweep;
    ev_tstamp window; /* the all-keys budget */
    unsigned logged;
    unsigned long long suppressed;
    bl_peer_check_fn check;
    void *check_ud;
};

static const char *const REASONS[] = {
    [BL_REFUSE_NONE] = "none",
    [BL_REFUSE_NOT_ALLOWED] = "allow",
    [BL_REFUSE_MAX_CONNECTIONS] = "max_connections",
    [BL_REFUSE_PER_ADDRESS] = "max_handshakes_per_address",
    [BL_REFUSE_RATE] = "max_handshake_rate_per_address",
    [BL_REFUSE_BUSY] = "handshakes running on this node (1024)",
};

const char *bl_guard_reason(bl_refusal why)
{
    return (unsigned)why < sizeof(REASONS) / sizeof(REASONS[0]) ? REASONS[why] : "?";
}

void bl_guard_describe(const bl_node *n, bl_refusal why, char *out, size_t outlen)
{
    unsigned v = why == BL_REFUSE_MAX_CONNECTIONS ? n->cfg.max_connections
                 : why == BL_REFUSE_PER_ADDRESS   ? n->cfg.max_handshakes_per_address
                 : why == BL_REFUSE_RATE          ? n->cfg.max_handshake_rate_per_address
                                                  : 0;
    if (v)
        snprintf(out, outlen, "%s (%u%s) reached", bl_guard_reason(why), v,
                 why == BL_REFUSE_RATE ? "/s" : "");
    else
        snprintf(out, outlen, "%s reached", bl_guard_reason(why));
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents);

int bl_guard_new(bl_node *n)
{
    bl_guard *g = calloc(1, sizeof(*g));
    if (!g) return BL_ENOMEM;
    if (n->cfg.allow[0] && !(g->allow = bl_allow_parse(n->cfg.allow))) {
        free(g);
        return BL_ENOMEM;
    }
    snprintf(g->other.key, sizeof(g->other.key), "other addresses");
    g->other.tokens = n->cfg.max_handshake_rate_per_address;
    ev_timer_init(&g->sweep, sweep_cb, 1.0, 1.0);
    g->sweep.data = n;
    n->guard = g;
    return BL_OK;
}

void bl_guard_free(bl_node *n)
{
    bl_guard *g = n->guard;
    if (!g) return;
    ev_timer_stop(n->loop, &g->sweep);
    gkey *k, *t;
    HASH_ITER(hh, g->keys, k, t)
    {
        HASH_DEL(g->keys, k);
        free(k);
    }
    bl_allow_free(g->allow);
    free(g);
    n->guard = NULL;
}

int bl_node_set_admission(bl_node *n, const bl_config *cfg)
{
    bl_guard *g = n->guard;
    bl_allow *a = NULL;
    if (cfg->allow[0] && !(a = bl_allow_parse(cfg->allow))) return BL_ENOMEM;
    bl_allow_free(g->allow);
    g->allow = a;
    snprintf(n->cfg.allow, sizeof(n->cfg.allow), "%s", cfg->allow);
    n->cfg.max_connections = cfg->max_connections;
    n->cfg.max_handshakes_per_address = cfg->max_handshakes_per_address;
    n->cfg.max_handshake_rate_per_address = cfg->max_handshake_rate_per_address;
    bl_log(n, BL_LOG_INFO,
           "admission: allow-list %s; max_connections %u, max_handshakes_per_address %u, "
           "max_handshake_rate_per_address %u",
           bl_allow_count(a) ? n->cfg.allow : "(any node)", n->cfg.max_connections,
           n->cfg.max_handshakes_per_address, n->cfg.max_handshake_rate_per_address);
    return BL_OK;
}

void bl_guard_set_peer_check(bl_node *n, bl_peer_check_fn fn, void *ud)
{
    if (!n->guard) return;
    n->guard->check = fn;
    n->guard->check_ud = ud;
}

/* ---- the allow-list ---- */

int bl_guard_allowed(const bl_node *n, const char *node)
{
    return !n->guard || bl_allow_match(n->guard->allow, node);
}

int bl_guard_check_peer(bl_node *n, const bl_peer_id *peer, char *why, size_t whylen)
{
    if (!bl_guard_allowed(n, peer->node)) {
        snprintf(why, whylen, "node %s is not on the allow-list", peer->node);
        return -1;
    }
    bl_guard *g = n->guard;
    /* the transport's check (TLS: the certificate names the node's host), with an allow-list */
    if (g && bl_allow_count(g->allow) > 0 && g->check &&
        g->check(n, peer, g->check_ud, why, whylen) < 0) {
        if (!why[0]) snprintf(why, whylen, "the transport refused node %s", peer->node);
        return -1;
    }
    return 0;
}

/* ---- per-key state ---- */

static gkey *key_get(bl_node *n, const char *key)
{
    bl_guard *g = n->guard;
    char k[GUARD_KEY_LEN];
    snprintf(k, sizeof(k), "%s", key);
    gkey *e = NULL;
    HASH_FIND_STR(g->keys, k, e);
    if (e) return e;
    ev_tstamp now = ev_now(n->loop);
    if (g->nkeys >= GUARD_MAX_KEYS || !(e = calloc(1, sizeof(*e)))) {
        e = &g->other;
    } else {
        memcpy(e->key, k, sizeof(e->key));
        e->tokens = n->cfg.max_handshake_rate_per_address;
        e->refilled = now;
        e->window = now;
        HASH_ADD_STR(g->keys, key, e);
        g->nkeys++;
    }
    if (!ev_is_active(&g->sweep)) ev_timer_start(n->loop, &g->sweep);
    return e;
}

/* A key's budget per window: node names (outgoing refusals) get less than addresses. */
static unsigned key_budget(const gkey *k)
{
    return strchr(k->key, '@') ? GUARD_LOG_PER_NODE : GUARD_LOG_PER_KEY;
}

/* The summary of key's ended window, within the all-keys budget (else counted there). */
static void key_flush(bl_node *n, gkey *k, ev_tstamp now)
{
    bl_guard *g = n->guard;
    if (k->suppressed) {
        if (g->logged < GUARD_LOG_TOTAL) {
            g->logged++;
            bl_log(n, BL_LOG_WARN,
                   "%llu more refusal log lines for %s not written in the last %.0f s (at most %u "
                   "per %.0f s)",
                   k->suppressed, k->key, now - k->window, key_budget(k), GUARD_LOG_WINDOW);
        } else {
            g->suppressed += k->suppressed;
        }
    }
    k->suppressed = 0;
    k->logged = 0;
    k->window = now;
}

static void global_flush(bl_node *n, ev_tstamp now)
{
    bl_guard *g = n->guard;
    if (g->suppressed)
        bl_log(n, BL_LOG_WARN,
               "%llu more refusal log lines not written in the last %.0f s (at most %d per %.0f s "
               "for all addresses together)",
               g->suppressed, now - g->window, GUARD_LOG_TOTAL, GUARD_LOG_WINDOW);
    g->suppressed = 0;
    g->logged = 0;
    g->window = now;
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_node *n = w->data;
    bl_guard *g = n->guard;
    ev_tstamp now = ev_now(n->loop);
    if (now - g->window >= GUARD_LOG_WINDOW) global_flush(n, now);
    gkey *k, *t;
    HASH_ITER(hh, g->keys, k, t)
    {
        if (now - k->window >= GUARD_LOG_WINDOW) key_flush(n, k, now);
        /* idle: nothing running, nothing to report, the bucket full again */
        if (!k->running && !k->suppressed && now - k->last_seen >= GUARD_LOG_WINDOW) {
            HASH_DEL(g->keys, k);
            g->nkeys--;
            free(k);
        }
    }
    if (now - g->other.window >= GUARD_LOG_WINDOW) key_flush(n, &g->other, now);
    if (!g->keys && !g->other.running && !g->other.suppressed && !g->suppressed)
        ev_timer_stop(n->loop, &g->sweep);
}

/* ---- logs on a budget ---- */

static void guard_logv(bl_node *n, const char *key, bl_log_level lvl, const char *fmt, va_list ap)
{
    bl_guard *g = n->guard;
    if (lvl > n->cfg.log_level) return; /* not written anyway: no budget spent */
    if (!g) {
        bl_logv(n, lvl, fmt, ap);
        return;
    }
    ev_tstamp now = ev_now(n->loop);
    gkey *k = key_get(n, key);
    k->last_seen = now;
    if (now - g->window >= GUARD_LOG_WINDOW) global_flush(n, now);
    if (now - k->window >= GUARD_LOG_WINDOW) key_flush(n, k, now);
    if (k->logged >= key_budget(k) || g->logged >= GUARD_LOG_TOTAL) {
        k->suppressed++;
        n->stats.refusal_logs_suppressed++;
        return;
    }
    k->logged++;
    g->logged++;
    bl_logv(n, lvl, fmt, ap);
}

void bl_guard_log(bl_node *n, const char *key, bl_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    guard_logv(n, key, lvl, fmt, ap);
    va_end(ap);
}

void bl_guard_refused(bl_node *n, bl_refusal why, const char *key, const char *fmt, ...)
{
    switch (why) {
    case BL_REFUSE_NOT_ALLOWED:
        n->stats.refused_not_allowed++;
        break;
    case BL_REFUSE_MAX_CONNECTIONS:
        n->stats.refused_max_connections++;
        break;
    case BL_REFUSE_PER_ADDRESS:
        n->stats.refused_per_address++;
        break;
    case BL_REFUSE_RATE:
        n->stats.refused_rate++;
        break;
    case BL_REFUSE_BUSY:
        n->stats.refused_busy++;
        break;
    case BL_REFUSE_NONE:
        break;
    }
    va_list ap;
    va_start(ap, fmt);
    guard_logv(n, key, BL_LOG_WARN, fmt, ap);
    va_end(ap);
}

/* ---- limits ---- */

int bl_guard_room(const bl_node *n, int with_handshakes)
{
    unsigned used = n->stats.connections + (with_handshakes ? n->nhandshakes : 0);
    return used < n->cfg.max_connections;
}

bl_refusal bl_guard_accept(bl_node *n, const char *addr, bl_guard_key **slot)
{
    *slot = NULL;
    if (n->nhandshakes >= GUARD_MAX_HANDSHAKES) return BL_REFUSE_BUSY;
    if (!bl_guard_room(n, 1)) return BL_REFUSE_MAX_CONNECTIONS;
    if (!n->guard) return BL_REFUSE_NONE;
    gkey *k = key_get(n, addr);
    ev_tstamp now = ev_now(n->loop);
    k->last_seen = now;
    if (k->running >= n->cfg.max_handshakes_per_address) return BL_REFUSE_PER_ADDRESS;
    double rate = n->cfg.max_handshake_rate_per_address;
    if (rate > 0) {
        k->tokens += (now - k->refilled) * rate;
        if (k->tokens > rate) k->tokens = rate;
        k->refilled = now;
        if (k->tokens < 1.0) return BL_REFUSE_RATE;
        k->tokens -= 1.0;
    }
    k->running++;
    *slot = k;
    return BL_REFUSE_NONE;
}

void bl_guard_hs_done(bl_node *n, bl_guard_key *slot)
{
    if (!slot || !slot->running) return;
    slot->running--;
    slot->last_seen = ev_now(n->loop);
}
