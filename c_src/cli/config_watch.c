/* config_watch.c - `beamlet config watch`: every change of the cluster configuration as the node
 * applies it, one line each (or one JSON object per line), across lost connections.
 *
 * The node sends each change to the watching process ({watch, Pid}, services/cconf.c). When the
 * connection drops (the node killed or restarted, a tick timeout under load), the client
 * subscribes again (client.c) and catches up from the node's history (its last 256 changes):
 * each (re)subscription asks `history`, prints the records not printed yet, oldest first, then the
 * changes that arrived meanwhile, so a change is printed once and none between is skipped. What
 * was printed is remembered as (version, term) pairs: a write a new leader rolled back and
 * replaced has the same version and another term, and is printed. The first subscription prints
 * nothing old: every record of the history is marked seen, but for the changes that arrived
 * after the subscription. A gap the history no longer covers is said on stderr. */
#include "cli.h"
#include "render.h"

#include <stdlib.h>

#define CCONF "beamlet_config"
#define SEEN_MAX 1024 /* printed (version, term) pairs remembered: 4 x the node's history */

typedef struct {
    unsigned long long version, term;
} seen_t;

typedef struct {
    bl__cli_opts *o;
    long left;       /* changes to print before stopping; <0: until interrupted */
    int catching_up; /* a history call is out: live changes wait in queue */
    int first;       /* the first catch-up: mark the history seen, print nothing old */
    json_t *queue;   /* live changes that arrived during a catch-up */
    seen_t seen[SEEN_MAX];
    unsigned nseen, seen_at;
    unsigned long long last;  /* the highest version printed (or marked seen) */
    unsigned long long start; /* the last version before the watch began: never printed */
    int json;
} cw_state;

static unsigned long long num(json_t *c, const char *k)
{
    return (unsigned long long)json_integer_value(json_object_get(c, k));
}

static int was_seen(const cw_state *w, json_t *c)
{
    unsigned long long v = num(c, "version"), t = num(c, "term");
    for (unsigned k = 0; k < w->nseen; k++)
        if (w->seen[k].version == v && w->seen[k].term == t) return 1;
    return 0;
}

static void mark_seen(cw_state *w, json_t *c)
{
    seen_t e = {num(c, "version"), num(c, "term")};
    w->seen[w->seen_at] = e;
    w->seen_at = (w->seen_at + 1) % SEEN_MAX;
    if (w->nseen < SEEN_MAX) w->nseen++;
    if (e.version > w->last) w->last = e.version;
}

/* Print c unless printed already; 1 when --count is reached. */
static int print_once(cw_state *w, json_t *c)
{
    if (w->left == 0) return 1;
    if (was_seen(w, c)) return 0;
    mark_seen(w, c);
    if (w->json) {
        char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        bl__cc_print_change(c);
    }
    fflush(stdout);
    if (w->left > 0) w->left--;
    return w->left == 0;
}

static int on_change(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)o;
    cw_state *w = ud;
    int i = index, stop = 0;
    json_t *j = bl_term_to_json(buf, &i);
    json_t *c = json_is_array(j) && json_array_size(j) == 2 &&
                        !strcmp(json_string_value(json_array_get(j, 0)) ?: "", "beamlet_config")
                    ? json_array_get(j, 1)
                    : NULL;
    if (json_is_object(c)) {
        if (w->catching_up)
            json_array_append(w->queue, c);
        else
            stop = print_once(w, c);
    }
    json_decref(j);
    return stop;
}

/* c is one of the changes that came live during this catch-up */
static int queued(const cw_state *w, json_t *c)
{
    size_t q;
    json_t *x;
    json_array_foreach(w->queue, q, x)
    {
        if (num(x, "version") == num(c, "version") && num(x, "term") == num(c, "term")) return 1;
    }
    return 0;
}

/* The node's history (newest first) after a (re)subscription. */
static void history_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    cw_state *w = ud;
    if (status == BL_ENODEDOWN)
        return; /* lost again: the next subscription catches up; the queue waits */
    json_t *h = NULL;
    if (status == BL_OK) {
        int i = index;
        h = bl_term_to_json(buf, &i);
    }
    if (!json_is_array(h) || (json_array_size(h) && !json_is_object(json_array_get(h, 0)))) {
        fprintf(stderr,
                "beamlet %s: %s: no history from the node (%s): changes made while the "
                "connection was lost may be missing\n",
                w->o->cmd, w->o->target,
                status == BL_OK ? "unexpected reply" : bl_strerror(status));
        json_decref(h);
        h = json_array();
    }
    size_t n = json_array_size(h), k;
    json_t *c;
    int stop = 0;
    if (w->first) { /* from now on: the history is old, but for what came after subscribing */
        json_array_foreach(h, k, c) if (json_is_object(c) && !queued(w, c)) mark_seen(w, c);
        w->start = w->last;
        w->first = 0;
    } else {
        unsigned long long oldest = n ? num(json_array_get(h, n - 1), "version") : 0;
        if (n && oldest > w->last + 1)
            fprintf(stderr,
                    "beamlet %s: %s: versions %llu to %llu are no longer in the node's history "
                    "(it keeps the last %zu changes): not shown\n",
                    w->o->cmd, w->o->target, w->last + 1, oldest - 1, n);
        for (size_t r = n; r-- > 0 && !stop;) { /* oldest first */
            c = json_array_get(h, r);
            if (!json_is_object(c) || num(c, "version") <= w->start) continue;
            /* a watched change says whether its key is live; a history record does not */
            json_t *key = json_object_get(c, "key");
            const bl_config_keydef *kd =
                json_is_string(key) ? bl_config_key_find(json_string_value(key)) : NULL;
            json_object_set_new(c, "live", json_boolean(kd && (kd->flags & BL_CFG_LIVE)));
            stop = print_once(w, c);
        }
    }
    json_decref(h);
    w->catching_up = 0;
    json_array_foreach(w->queue, k, c) if (!stop) stop = print_once(w, c);
    json_array_clear(w->queue);
    if (stop) bl__cli_watch_end(p, 0);
}

static void on_subscribed(bl__cli_opts *o, bl_proc *p, int again, void *ud)
{
    cw_state *w = ud;
    if (again)
        fprintf(stderr, "beamlet %s: %s: resuming after version %llu\n", o->cmd, o->target,
                w->last);
    char req[16];
    int i = 0;
    ei_encode_atom(req, &i, "history");
    w->catching_up = 1;
    int rc = bl_call(p, NULL, CCONF, o->target, req, i, o->timeout_ms, history_done, w);
    if (rc != BL_OK) history_done(p, rc, NULL, 0, w);
}

int bl__cli_config_watch(int argc, char **argv)
{
    /* --count N: stop after N changes (scripts, tests); the rest as every admin command */
    cw_state *w = calloc(1, sizeof(*w));
    if (!w) return 1;
    w->left = -1;
    w->first = 1;
    w->queue = json_array();
    char *rest[64];
    int nrest = 0, rc = 2;
    for (int k = 0; k < argc && nrest < 64; k++) {
        if (!strcmp(argv[k], "--count") && k + 1 < argc) {
            char *end;
            w->left = strtol(argv[++k], &end, 10);
            if (*end || w->left <= 0) {
                fprintf(stderr, "beamlet config watch: --count: '%s' is not a positive number\n",
                        argv[k]);
                goto out;
            }
            continue;
        }
        rest[nrest++] = argv[k];
    }
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config watch", nrest, rest) < 0) goto out;
    if (o.npos) {
        fprintf(stderr, "usage: beamlet config watch --node NODE [--count N]\n");
        goto out;
    }
    w->o = &o;
    w->json = o.format && !strcmp(o.format, "json");
    if (!w->json) {
        printf("%-7s %-20s %-26s %-20s    %-20s %s\n", "VERSION", "WHEN (UTC)", "KEY", "OLD", "NEW",
               "WHO");
        fflush(stdout);
    }
    rc = bl__cli_watch(&o, CCONF, "watch", on_change, on_subscribed, w);
out:
    json_decref(w->queue);
    free(w);
    return rc;
}
