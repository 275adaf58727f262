/* checks.c - service health checks like Consul's (checks.h): HTTP(S) GET (2xx passing, 429
 * warning, anything else critical), TCP connect (connected passing, else critical) and a command
 * (exit 0 passing, 1 warning, anything else critical; argv, not a shell string; killed after its
 * timeout), each on its own interval, none blocking the loop:
 *   HTTP    libcurl's multi interface on the loop (webhook.c)
 *   TCP     a non-blocking connect watched with ev_io, an ev_timer for the timeout; the target is
 *           an IP address and port (no DNS lookup on the loop)
 *   command the runtime's children (runtime/child.c): posix_spawnp with stdin/stdout/stderr
 *           on /dev/null, reaped through a pidfd watched by the loop, its process group killed
 *           at the timeout; a removed check's command is killed and reaped later
 * Flapping is damped: a check changes state after `consecutive` results in a row that agree
 * (check_consecutive, default 2); its first result sets it at once. A change is an event and
 * goes to the watch callbacks. Removing a check whose GET is in flight drops the HTTP client
 * (and its other GETs, which run again at their next interval) so no answer finds it freed.
 * A check with a "service" sets the health of this node's registry entries of that id or name
 * after each result, and at once (on the next loop turn) when such an entry is registered or
 * its health is set to something else. */
#include "checks.h"
#include "webhook.h"
#include "checks_parse.h"
#include "beamlet/registry.h"
#include "../runtime/child.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHECKS 64
#define MAX_ARGS 16 /* as checks_parse.c */

typedef struct bl__check {
    UT_hash_handle hh; /* by id */
    int id;
    struct bl__checks *cs;
    bl_health_check_spec spec;
    char *argv[MAX_ARGS + 1];
    int status, streak_status, streak; /* status -1: no result yet */
    char output[256];
    unsigned long long last_ms, changed_ms, runs;
    int running;
    ev_timer every, tmo;
    /* tcp */
    int fd;
    ev_io io;
    /* command */
    bl__child *child;
} bl__check;

typedef struct cwatch {
    struct cwatch *next;
    int id;
    bl_health_check_cb cb;
    void *ud;
} cwatch;

/* a caller waiting for the next result of one check (bl_health_check_run) */
typedef struct crun {
    struct crun *next;
    int id;
    int check_id;
    bl_health_check_cb cb;
    void *ud;
} crun;

struct bl__checks {
    health *h;
    bl__check *all;
    int next_id, next_watch;
    cwatch *watches;
    crun *runs;
    bl__webhooks *http;
    int reg_watch;   /* registry watch id (entries of checked services) */
    ev_timer resync; /* next loop turn: set the checked entries' health again */
};

static const char *const STATUS[] = {"passing", "warning", "critical"};

const char *bl__check_status_name(int s)
{
    return s >= 0 && s < 3 ? STATUS[s] : "unknown";
}

static void schedule(bl__check *c);

/* ---- the registry entries a check drives ---- */

static int drives(const bl__check *c, const bl_service_entry *e)
{
    return c->spec.service[0] && c->status >= 0 &&
           (!strcmp(c->spec.service, e->id) || !strcmp(c->spec.service, e->name));
}

typedef struct ids {
    const bl__check *c;
    int n;
    char id[64][BL_REG_ID_LEN];
} ids;

static void collect(bl_node *n, const bl_service_entry *e, void *ud)
{
    ids *v = ud;
    if (v->n < 64 && bl_is_local_node(n, e->node) && drives(v->c, e) &&
        (int)e->health != v->c->status)
        snprintf(v->id[v->n++], BL_REG_ID_LEN, "%s", e->id);
}

/* the check's status becomes the health of the entries it drives (ids collected first: setting
 * the health tells the registry's watchers, who may change the table) */
static void apply_service(bl__check *c)
{
    if (!c->spec.service[0] || c->status < 0) return;
    bl_node *n = c->cs->h->n;
    ids *v = calloc(1, sizeof(*v));
    if (!v) return;
    v->c = c;
    bl_registry_find(n, NULL, collect, v);
    for (int i = 0; i < v->n; i++)
        bl_registry_set_health(n, v->id[i], (bl_health)c->status);
    free(v);
}

static void on_resync(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl__checks *cs = w->data;
    bl__check *c, *t;
    HASH_ITER(hh, cs->all, c, t)
    apply_service(c);
}

/* an entry of this node was registered or its health set: one a check drives gets the check's
 * status back on the next loop turn (not from inside the registry's callback) */
static void on_registry(bl_node *n, bl_registry_event ev, const bl_service_entry *e, void *ud)
{
    bl__checks *cs = ud;
    if (ev == BL_REG_REMOVED || !bl_is_local_node(n, e->node) || ev_is_active(&cs->resync)) return;
    bl__check *c, *t;
    HASH_ITER(hh, cs->all, c, t)
    if (drives(c, e) && (int)e->health != c->status) {
        ev_timer_set(&cs->resync, 0., 0.);
        ev_timer_start(n->loop, &cs->resync);
        return;
    }
}

static void result(bl__check *c, int status, const char *output)
{
    bl__checks *cs = c->cs;
    c->running = 0;
    c->runs++;
    c->last_ms = bl_now_ms();
    snprintf(c->output, sizeof(c->output), "%s", output);
    /* callers of bl_health_check_run get this result (not damped: what the run said) */
    for (crun **pp = &cs->runs; *pp;) {
        crun *r = *pp;
        if (r->check_id != c->id) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->cb(cs->h->n, c->spec.name, bl__check_status_name(status), c->output, r->ud);
        free(r);
    }
    int change = 0;
    if (c->status < 0) {
        change = 1;
    } else if (status == c->status) {
        c->streak = 0;
    } else {
        if (status == c->streak_status)
            c->streak++;
        else
            c->streak_status = status, c->streak = 1;
        change = c->streak >= (int)(c->spec.consecutive ? c->spec.consecutive : 1);
    }
    if (change) {
        int was = c->status;
        c->status = status;
        c->streak = 0;
        c->changed_ms = c->last_ms;
        bl__health_record(cs->h, cs->h->n->name, "check",
                          status == 2   ? "critical"
                          : status == 1 ? "warn"
                                        : "info",
                          NULL,
                          json_pack("{s:s, s:s, s:s, s:s, s:s}", "check", c->spec.name, "from",
                                    bl__check_status_name(was), "to", bl__check_status_name(status),
                                    "output", c->output, "target", c->spec.target));
        for (cwatch *w = cs->watches, *next; w; w = next) {
            next = w->next;
            w->cb(cs->h->n, c->spec.name, bl__check_status_name(status), c->output, w->ud);
        }
    }
    apply_service(c);
    schedule(c);
}

/* ---- HTTP ---- */

static void http_done(long code, const char *error, void *ud)
{
    bl__check *c = ud; /* the client is freed before any check: c is alive */
    char out[256];
    if (!code) {
        snprintf(out, sizeof(out), "GET %s: %s", c->spec.target, error);
        result(c, 2, out);
        return;
    }
    snprintf(out, sizeof(out), "GET %s: HTTP %ld", c->spec.target, code);
    result(c, code >= 200 && code < 300 ? 0 : code == 429 ? 1 : 2, out);
}

/* ---- TCP ---- */

static void tcp_end(bl__check *c, int status, const char *out)
{
    bl_node *n = c->cs->h->n;
    ev_io_stop(n->loop, &c->io);
    ev_timer_stop(n->loop, &c->tmo);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    result(c, status, out);
}

static void tcp_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bl__check *c = w->data;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    char out[256];
    if (err)
        snprintf(out, sizeof(out), "TCP %s: %s", c->spec.target, strerror(err));
    else
        snprintf(out, sizeof(out), "TCP %s: connected", c->spec.target);
    tcp_end(c, err ? 2 : 0, out);
}

static void tcp_start(bl__check *c)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char out[256];
    if (bl__parse_hostport(c->spec.target, &ss, &sl) < 0) {
        snprintf(out, sizeof(out), "TCP %s: not IP:PORT", c->spec.target);
        result(c, 2, out);
        return;
    }
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(out, sizeof(out), "TCP %s: socket: %s", c->spec.target, strerror(errno));
        result(c, 2, out);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        snprintf(out, sizeof(out), "TCP %s: %s", c->spec.target, strerror(errno));
        tcp_end(c, 2, out);
        return;
    }
    bl_node *n = c->cs->h->n;
    ev_io_init(&c->io, tcp_io, c->fd, EV_WRITE);
    c->io.data = c;
    ev_io_start(n->loop, &c->io);
    ev_timer_set(&c->tmo, c->spec.timeout_ms / 1000.0, 0.);
    ev_timer_start(n->loop, &c->tmo);
}

/* ---- command ---- */

static void cmd_done(bl_node *n, const bl__child_result *r, void *ud)
{
    (void)n;
    bl__check *c = ud;
    c->child = NULL; /* freed by the runtime after this returns */
    char out[256];
    int st, ws = r->wstatus;
    if (r->timed_out) {
        snprintf(out, sizeof(out), "%s: killed after %u ms", c->argv[0], c->spec.timeout_ms);
        st = 2;
    } else if (WIFEXITED(ws)) {
        int code = WEXITSTATUS(ws);
        snprintf(out, sizeof(out), "%s: exit %d", c->argv[0], code);
        st = code == 0 ? 0 : code == 1 ? 1 : 2;
    } else {
        snprintf(out, sizeof(out), "%s: signal %d", c->argv[0], WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        st = 2;
    }
    result(c, st, out);
}

static void cmd_start(bl__check *c)
{
    bl__child_spec spec = {.argv = c->argv, .search_path = 1, .timeout_ms = c->spec.timeout_ms};
    int e = 0, rc = bl__child_spawn(c->cs->h->n, &spec, cmd_done, c, &c->child, &e);
    if (rc != BL_OK) {
        char out[256];
        snprintf(out, sizeof(out), "%s: %s", c->argv[0],
                 rc == BL_ESYS ? strerror(e) : "out of memory");
        result(c, 2, out);
    }
}

/* ---- scheduling ---- */

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl__check *c = w->data;
    char out[256];
    if (c->spec.kind == BL_CHECK_TCP) {
        snprintf(out, sizeof(out), "TCP %s: no answer in %u ms", c->spec.target,
                 c->spec.timeout_ms);
        tcp_end(c, 2, out);
    }
}

static void run(bl__check *c)
{
    if (c->running) return;
    c->running = 1;
    if (c->spec.kind == BL_CHECK_HTTP) {
        if (!c->cs->http) c->cs->http = bl__webhooks_new(c->cs->h->n, c->cs->h->n->loop);
        if (!c->cs->http ||
            bl__http_get(c->cs->http, c->spec.target, c->spec.timeout_ms, http_done, c) != BL_OK)
            result(c, 2, "HTTP client unavailable (libcurl.so.4)");
    } else if (c->spec.kind == BL_CHECK_TCP) {
        tcp_start(c);
    } else {
        cmd_start(c);
    }
}

static void on_every(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    run(w->data);
}

static void schedule(bl__check *c)
{
    bl_node *n = c->cs->h->n;
    ev_timer_stop(n->loop, &c->every);
    ev_timer_set(&c->every, c->spec.interval_ms / 1000.0, 0.);
    ev_timer_start(n->loop, &c->every);
}

/* ---- API ---- */

bl__checks *bl__checks_new(health *h)
{
    bl__checks *cs = calloc(1, sizeof(*cs));
    if (!cs) return NULL;
    cs->h = h;
    ev_timer_init(&cs->resync, on_resync, 0., 0.);
    cs->resync.data = cs;
    cs->reg_watch = bl_registry_watch(h->n, on_registry, cs); /* < 0: no registry here */
    return cs;
}

int bl__checks_add(bl__checks *cs, const bl_health_check_spec *spec)
{
    if (!spec->name[0] || !spec->target[0] || (unsigned)spec->kind > BL_CHECK_COMMAND)
        return BL_EINVAL;
    if (HASH_COUNT(cs->all) >= MAX_CHECKS) return BL_ENOMEM;
    bl__check *c, *t;
    HASH_ITER(hh, cs->all, c, t)
    if (!strcmp(c->spec.name, spec->name)) return BL_EEXIST;
    c = calloc(1, sizeof(*c));
    if (!c) return BL_ENOMEM;
    c->spec = *spec;
    if (!c->spec.interval_ms) c->spec.interval_ms = 10000;
    if (!c->spec.timeout_ms) c->spec.timeout_ms = 5000;
    if (!c->spec.consecutive) c->spec.consecutive = cs->h->n->cfg.check_consecutive;
    c->status = -1;
    c->fd = -1;
    c->cs = cs;
    if (spec->kind == BL_CHECK_COMMAND) {
        /* target: the argv, NUL-separated (see bl_health_check_spec) */
        int k = 0;
        for (char *p = c->spec.target; *p && k < MAX_ARGS; p += strlen(p) + 1)
            c->argv[k++] = p;
        c->argv[k] = NULL;
        if (!k) {
            free(c);
            return BL_EINVAL;
        }
    }
    c->id = ++cs->next_id;
    ev_timer_init(&c->every, on_every, 0., 0.);
    c->every.data = c;
    ev_timer_init(&c->tmo, on_timeout, 0., 0.);
    c->tmo.data = c;
    HASH_ADD_INT(cs->all, id, c);
    /* the first run soon, spread a little so checks do not all start together */
    ev_timer_set(&c->every, 0.05 * (c->id % 20), 0.);
    ev_timer_start(cs->h->n->loop, &c->every);
    return c->id;
}

static void check_free(bl__checks *cs, bl__check *c)
{
    bl_node *n = cs->h->n;
    ev_timer_stop(n->loop, &c->every);
    ev_timer_stop(n->loop, &c->tmo);
    ev_io_stop(n->loop, &c->io);
    if (c->fd >= 0) close(c->fd);
    bl__child_abandon(c->child); /* killed now, reaped on the loop later: never waited for */
    free(c);
}

int bl__checks_remove(bl__checks *cs, const char *name)
{
    bl__check *c, *t;
    HASH_ITER(hh, cs->all, c, t)
    {
        if (strcmp(c->spec.name, name)) continue;
        if (c->running && c->spec.kind == BL_CHECK_HTTP) {
            /* its GET still points at it: let the HTTP client go first */
            bl__webhooks_free(cs->http);
            cs->http = NULL;
            bl__check *o, *ot;
            HASH_ITER(hh, cs->all, o, ot)
            if (o != c && o->running && o->spec.kind == BL_CHECK_HTTP) {
                o->running = 0;
                schedule(o);
            }
        }
        HASH_DEL(cs->all, c);
        check_free(cs, c);
        return BL_OK;
    }
    return BL_ENOPROC;
}

int bl__checks_run_now(bl__checks *cs, const char *name, bl_health_check_cb cb, void *ud)
{
    bl__check *c, *t;
    HASH_ITER(hh, cs->all, c, t)
    {
        if (strcmp(c->spec.name, name)) continue;
        crun *r = calloc(1, sizeof(*r));
        if (!r) return BL_ENOMEM;
        r->id = ++cs->next_watch;
        r->check_id = c->id;
        r->cb = cb;
        r->ud = ud;
        r->next = cs->runs;
        cs->runs = r;
        int id = r->id;
        if (!c->running) {
            ev_timer_stop(cs->h->n->loop, &c->every);
            run(c); /* may finish at once (a failed spawn): r is gone then */
        }
        return id;
    }
    return BL_ENOPROC;
}

void bl__checks_run_cancel(bl__checks *cs, int id)
{
    for (crun **pp = &cs->runs; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            crun *r = *pp;
            *pp = r->next;
            free(r);
            return;
        }
}

void bl__checks_free(bl__checks *cs)
{
    if (!cs) return;
    for (crun *r = cs->runs, *nx; r; r = nx) {
        nx = r->next;
        free(r);
    }
    if (cs->reg_watch > 0) bl_registry_unwatch(cs->h->n, cs->reg_watch);
    ev_timer_stop(cs->h->n->loop, &cs->resync);
    bl__webhooks_free(cs->http); /* drops GETs in flight without calling back */
    bl__check *c, *t;
    HASH_ITER(hh, cs->all, c, t)
    {
        HASH_DEL(cs->all, c);
        check_free(cs, c);
    }
    cwatch *w, *wt;
    LL_FOREACH_SAFE(cs->watches, w, wt) free(w);
    free(cs);
}

int bl__checks_entry(bl__checks *cs, const char *id, const char *json)
{
    char name[sizeof(((bl_health_check_spec *)0)->name)];
    if (snprintf(name, sizeof(name), "svc:%s", id) >= (int)sizeof(name)) return -1;
    if (!json) {
        bl__checks_remove(cs, name);
        return 0;
    }
    json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o) || json_object_get(o, "name") || json_object_get(o, "service")) {
        json_decref(o);
        return -1;
    }
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "service", json_string(id));
    json_t *a = json_pack("[o]", o);
    char *txt = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    bl_health_check_spec spec;
    char err[200];
    int k = txt ? bl__checks_parse(txt, &spec, 1, err, sizeof(err)) : -1;
    free(txt);
    if (k != 1) {
        bl_log(cs->h->n, BL_LOG_WARN, "registry entry %s: check refused: %s", id,
               k < 0 ? err : "empty");
        return -1;
    }
    bl__checks_remove(cs, name); /* a re-registration replaces it */
    return bl__checks_add(cs, &spec) > 0 ? 0 : -1;
}

void bl__checks_counts(bl__checks *cs, unsigned *pass, unsigned *warn, unsigned *crit)
{
    *pass = *warn = *crit = 0;
    bl__check *c, *t;
    if (cs) HASH_ITER(hh, cs->all, c, t)
        {
            if (c->status == 0)
                ++*pass;
            else if (c->status == 1)
                ++*warn;
            else if (c->status == 2)
                ++*crit;
        }
}

int bl__checks_each(bl__checks *cs, void (*fn)(const char *name, int status, void *ud), void *ud)
{
    int k = 0;
    bl__check *c, *t;
    if (cs) HASH_ITER(hh, cs->all, c, t)
        {
            fn(c->spec.name, c->status, ud);
            k++;
        }
    return k;
}

void bl__checks_encode(bl__checks *cs, ei_x_buff *x)
{
    static const char *const KIND[] = {"http", "tcp", "command"};
    bl__check *c, *t;
    if (cs) HASH_ITER(hh, cs->all, c, t)
        {
            ei_x_encode_list_header(x, 1);
            ei_x_encode_map_header(x, 11);
            bl__kv_str(x, "name", c->spec.name);
            bl__kv_str(x, "service", c->spec.service);
            ei_x_encode_atom(x, "kind");
            ei_x_encode_atom(x, KIND[c->spec.kind]);
            char tgt[sizeof(c->spec.target)];
            memcpy(tgt, c->spec.target, sizeof(tgt));
            if (c->spec.kind == BL_CHECK_COMMAND) /* argv shown space-separated */
                for (int i = 1; c->argv[i]; i++)
                    tgt[c->argv[i] - c->spec.target - 1] = ' ';
            bl__kv_str(x, "target", tgt);
            ei_x_encode_atom(x, "status");
            ei_x_encode_atom(x, bl__check_status_name(c->status));
            bl__kv_str(x, "output", c->output);
            bl__kv_u64(x, "last_ms", c->last_ms);
            bl__kv_u64(x, "changed_ms", c->changed_ms);
            bl__kv_u64(x, "runs", c->runs);
            bl__kv_u64(x, "interval_ms", c->spec.interval_ms);
            bl__kv_u64(x, "consecutive", c->spec.consecutive);
        }
    ei_x_encode_empty_list(x);
}

int bl__checks_watch(bl__checks *cs, bl_health_check_cb cb, void *ud)
{
    cwatch *w = calloc(1, sizeof(*w));
    if (!w) return BL_ENOMEM;
    w->id = ++cs->next_watch;
    w->cb = cb;
    w->ud = ud;
    LL_APPEND(cs->watches, w);
    return w->id;
}

void bl__checks_unwatch(bl__checks *cs, int id)
{
    cwatch *w, *t;
    LL_FOREACH_SAFE(cs->watches, w, t)
    if (w->id == id) {
        LL_DELETE(cs->watches, w);
        free(w);
    }
}
