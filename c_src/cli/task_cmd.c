/* task_cmd.c - `beamlet task submit|get|list|cancel|watch|agents --node N` (docs/tasks.md):
 * calls to the `beamlet_tasks` process of the node asked (which hands them to the leader among
 * the coordinators). submit sends an idempotency key (given, or made here) and tries again on
 * a leader change, so one command submits one task; --wait and watch follow it to its end.
 * watch without an id follows every task's transitions ({changes, ...}: the leader's feed,
 * long polls with a cursor), filtered by --type and --state. */
#include "cli.h"
#include "render.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS 500u
#define WAIT_SLICE_MS 20000u

typedef struct tcmd {
    bl__cli_opts o;
    const char *op;
    /* submit */
    const char *type, *payload, *priority, *idem, *trace;
    const char *caps[16];
    int ncaps;
    long timeout_ms, retries, queue_timeout_ms;
    int wait;
    char idem_buf[64];
    /* list */
    const char *state, *ltype;
    long limit;
    /* state of the session */
    char id[64];
    unsigned long long ver;
    unsigned shown; /* history entries printed (watch) */
    /* watch without an id: the feed's cursor; changes left to print (<0: until interrupted) */
    int all, cursor_set;
    unsigned long long since, term;
    long left;
    unsigned tries;
    unsigned long long deadline_ms; /* submit retries stop here */
    bl_proc *p;
    ei_x_buff req;
} tcmd;

static unsigned long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

static int json_out(tcmd *c)
{
    return c->o.format && !strcmp(c->o.format, "json");
}

static void done(tcmd *c, int code)
{
    c->o.exit_code = code;
    bl_node_stop(bl_proc_node(c->p));
}

/* {error, Why} -> Why as text (NULL when the reply is not an error) */
static const char *error_of(json_t *j)
{
    if (!json_is_array(j) || json_array_size(j) != 2) return NULL;
    const char *tag = json_string_value(json_array_get(j, 0));
    if (!tag || strcmp(tag, "error")) return NULL;
    json_t *w = json_array_get(j, 1);
    if (json_is_string(w)) return json_string_value(w);
    if (json_is_array(w) && json_is_string(json_array_get(w, 0))) {
        json_t *d = json_array_get(w, 1);
        static char buf[512];
        snprintf(buf, sizeof(buf), "%s%s%s", json_string_value(json_array_get(w, 0)),
                 json_is_string(d) ? ": " : "", json_is_string(d) ? json_string_value(d) : "");
        return buf;
    }
    return "error";
}

/* errors that a leader change explains: worth another try */
static int transient(const char *why)
{
    static const char *const T[] = {"no_leader", "not_leader", "leader_unreachable",
                                    "timeout",   "not_ready",  "not_replicated"};
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++)
        if (!strncmp(why, T[i], strlen(T[i]))) return 1;
    return 0;
}

static void fmt_time(unsigned long long ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    size_t k = strftime(out, cap, "%H:%M:%S", &tm);
    snprintf(out + k, cap - k, ".%03u", (unsigned)(ms % 1000));
}

static void print_task(json_t *t)
{
    json_t *res = json_object_get(t, "result"), *err = json_object_get(t, "error");
    printf("id:        %s\n", json_string_value(json_object_get(t, "id")));
    printf("type:      %s\n", json_string_value(json_object_get(t, "type")));
    printf("state:     %s\n", json_string_value(json_object_get(t, "state")));
    printf("attempt:   %lld (retries %lld)\n",
           (long long)json_integer_value(json_object_get(t, "attempt")),
           (long long)json_integer_value(json_object_get(t, "retries")));
    const char *agent = json_string_value(json_object_get(t, "agent"));
    printf("agent:     %s\n", agent ? agent : "-");
    printf("priority:  %s\n", json_string_value(json_object_get(t, "priority")));
    printf("trace_id:  %s\n", json_string_value(json_object_get(t, "trace_id")));
    char *r = res && !json_is_null(res) ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *e = err && !json_is_null(err) ? json_dumps(err, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (r) printf("result:    %s\n", r);
    if (e) printf("error:     %s\n", e);
    free(r);
    free(e);
    json_t *h = json_object_get(t, "history"), *x;
    size_t i;
    printf("history:\n");
    json_array_foreach(h, i, x)
    {
        char tm[32];
        fmt_time((unsigned long long)json_integer_value(json_object_get(x, "time_ms")), tm,
                 sizeof(tm));
        const char *a = json_string_value(json_object_get(x, "agent"));
        printf("  %s  %-10s attempt %lld  %s\n", tm, json_string_value(json_object_get(x, "state")),
               (long long)json_integer_value(json_object_get(x, "attempt")), a ? a : "");
    }
}

static int is_final(json_t *t)
{
    const char *s = json_string_value(json_object_get(t, "state"));
    return s && (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
                 !strcmp(s, "timed_out"));
}

static int call(tcmd *c, const ei_x_buff *req, unsigned tmo, bl_call_cb cb);
static void again(tcmd *c, bl_timer_cb cb);

/* The head every reply of a follow-up call (submit, --wait, watch) shares: a call that failed
 * (no answer, node down) and an error a leader change explains are tried again until deadline
 * (ms, mono_ms()); any other error, or a reply that is not a term, is printed as
 * "beamlet CMD: WHAT: why" and ends the command. Returns the decoded reply (the caller's to
 * free), or NULL when it has handled the reply itself. */
static json_t *reply_of(tcmd *c, int status, const char *buf, int index,
                        unsigned long long deadline, const char *cmd, const char *what)
{
    json_t *j = NULL;
    const char *why = status == BL_ETIMEOUT ? "timeout"
                      : status != BL_OK     ? "leader_unreachable"
                                            : NULL;
    if (status == BL_OK) {
        int i = index;
        j = bl_term_to_json(buf, &i);
        why = j ? error_of(j) : "unreadable reply";
    }
    if (!why) return j;
    if (transient(why) && mono_ms() < deadline) {
        again(c, NULL);
    } else {
        fprintf(stderr, "beamlet %s: %s: %s\n", cmd, what, why);
        done(c, 1);
    }
    json_decref(j);
    return NULL;
}

/* ---- submit ---- */

static int encode_submit(tcmd *c, ei_x_buff *x)
{
    int n = 1 + (c->payload != NULL) + (c->ncaps > 0) + (c->priority != NULL) +
            (c->timeout_ms >= 0) + (c->retries >= 0) + 1 + (c->trace != NULL) +
            (c->queue_timeout_ms >= 0);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "submit");
    ei_x_encode_map_header(x, n);
    ei_x_encode_atom(x, "type");
    ei_x_encode_binary(x, c->type, (long)strlen(c->type));
    if (c->payload) {
        json_error_t je;
        json_t *j = json_loads(c->payload, JSON_DECODE_ANY, &je);
        if (!j) {
            fprintf(stderr, "beamlet task submit: --payload is not JSON: %s\n", je.text);
            return -1;
        }
        ei_x_encode_atom(x, "payload");
        int rc = bl__json_to_term(j, x, 0);
        json_decref(j);
        if (rc < 0) {
            fprintf(stderr, "beamlet task submit: --payload: nested too deep\n");
            return -1;
        }
    }
    if (c->ncaps) {
        ei_x_encode_atom(x, "capabilities");
        ei_x_encode_list_header(x, c->ncaps);
        for (int i = 0; i < c->ncaps; i++)
            ei_x_encode_binary(x, c->caps[i], (long)strlen(c->caps[i]));
        ei_x_encode_empty_list(x);
    }
    if (c->priority) {
        ei_x_encode_atom(x, "priority");
        ei_x_encode_atom(x, c->priority);
    }
    if (c->timeout_ms >= 0) {
        ei_x_encode_atom(x, "timeout_ms");
        ei_x_encode_long(x, c->timeout_ms);
    }
    if (c->retries >= 0) {
        ei_x_encode_atom(x, "retries");
        ei_x_encode_long(x, c->retries);
    }
    if (c->queue_timeout_ms >= 0) {
        ei_x_encode_atom(x, "queue_timeout_ms");
        ei_x_encode_long(x, c->queue_timeout_ms);
    }
    ei_x_encode_atom(x, "idempotency_key");
    ei_x_encode_binary(x, c->idem, (long)strlen(c->idem));
    if (c->trace) {
        ei_x_encode_atom(x, "trace_id");
        ei_x_encode_binary(x, c->trace, (long)strlen(c->trace));
    }
    return 0;
}

static void wait_next(tcmd *c);

static void wait_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    tcmd *c = ud;
    json_t *j = reply_of(c, status, buf, index, ULLONG_MAX, "task", c->id);
    if (!j) return;
    json_t *t = json_array_get(j, 1);
    if (!strcmp(c->op, "watch")) {
        json_t *h = json_object_get(t, "history");
        for (size_t k = c->shown; k < json_array_size(h); k++) {
            json_t *x = json_array_get(h, k);
            if (json_out(c)) {
                char *s = json_dumps(x, JSON_COMPACT);
                printf("%s\n", s ? s : "{}");
                free(s);
            } else {
                char tm[32];
                fmt_time((unsigned long long)json_integer_value(json_object_get(x, "time_ms")), tm,
                         sizeof(tm));
                const char *a = json_string_value(json_object_get(x, "agent"));
                printf("%s  %-10s attempt %lld  %s\n", tm,
                       json_string_value(json_object_get(x, "state")),
                       (long long)json_integer_value(json_object_get(x, "attempt")), a ? a : "");
            }
        }
        fflush(stdout);
        c->shown = (unsigned)json_array_size(h);
        c->ver = (unsigned long long)json_integer_value(json_object_get(t, "ver"));
    }
    if (!is_final(t)) {
        json_decref(j);
        wait_next(c);
        return;
    }
    const char *st = json_string_value(json_object_get(t, "state"));
    int ok = !strcmp(st, "succeeded");
    if (!strcmp(c->op, "submit")) {
        json_t *r = json_object_get(t, ok ? "result" : "error");
        if (json_out(c)) {
            bl__cli_print_json(t);
        } else {
            char *s = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
            if (ok)
                printf("%s\n", s ? s : "null");
            else
                fprintf(stderr, "beamlet task: %s %s: %s\n", c->id, st, s ? s : "");
            free(s);
        }
    } else if (!ok) {
        fprintf(stderr, "beamlet task: %s ended %s\n", c->id, st);
    }
    json_decref(j);
    done(c, ok ? 0 : 1);
}

static void wait_next(tcmd *c)
{
    ei_x_buff x;
    ei_x_new(&x);
    int watch = !strcmp(c->op, "watch");
    ei_x_encode_tuple_header(&x, watch ? 4 : 3);
    ei_x_encode_atom(&x, watch ? "watch" : "wait");
    ei_x_encode_binary(&x, c->id, (long)strlen(c->id));
    if (watch) ei_x_encode_ulonglong(&x, c->ver);
    ei_x_encode_ulong(&x, WAIT_SLICE_MS);
    int rc = call(c, &x, WAIT_SLICE_MS + 20000, wait_done);
    ei_x_free(&x);
    if (rc != BL_OK) again(c, NULL);
}

/* ---- watch without an id: every task's transitions ---- */

static void feed_next(tcmd *c);

static void print_change(tcmd *c, json_t *x)
{
    if (json_out(c)) {
        char *s = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "{}");
        free(s);
        return;
    }
    char tm[32];
    fmt_time((unsigned long long)json_integer_value(json_object_get(x, "time_ms")), tm, sizeof(tm));
    const char *a = json_string_value(json_object_get(x, "agent"));
    const char *e = json_string_value(json_object_get(x, "error"));
    printf("%s  %-22s %-14s %-10s %-7lld %s%s%s\n", tm, json_string_value(json_object_get(x, "id")),
           json_string_value(json_object_get(x, "type")),
           json_string_value(json_object_get(x, "state")),
           (long long)json_integer_value(json_object_get(x, "attempt")),
           a && strcmp(a, "undefined") ? a : "-", e && strcmp(e, "undefined") ? "  " : "",
           e && strcmp(e, "undefined") ? e : "");
}

static void feed_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    tcmd *c = ud;
    json_t *j = reply_of(c, status, buf, index, ULLONG_MAX, "task watch", c->o.target);
    if (!j) return;
    json_t *m = json_array_get(j, 1);
    unsigned long long term = (unsigned long long)json_integer_value(json_object_get(m, "term"));
    if (!c->cursor_set && !json_out(c)) {
        printf("%-12s  %-22s %-14s %-10s %-7s %s\n", "TIME", "ID", "TYPE", "STATE", "ATTEMPT",
               "AGENT");
    } else if (c->cursor_set && term != c->term) {
        fprintf(stderr,
                "beamlet task watch: the leader changed (term %llu): changes its "
                "predecessor made after the last ones shown may be missing\n",
                term);
    }
    long long missed = (long long)json_integer_value(json_object_get(m, "missed"));
    if (missed > 0)
        fprintf(stderr, "beamlet task watch: %lld changes went by too fast to be shown\n", missed);
    c->cursor_set = 1;
    c->term = term;
    c->since = (unsigned long long)json_integer_value(json_object_get(m, "next"));
    size_t k;
    json_t *x;
    json_array_foreach(json_object_get(m, "changes"), k, x)
    {
        if (c->left == 0) break;
        print_change(c, x);
        if (c->left > 0) c->left--;
    }
    fflush(stdout);
    json_decref(j);
    if (c->left == 0) {
        done(c, 0);
        return;
    }
    feed_next(c);
}

static void feed_next(tcmd *c)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "changes");
    ei_x_encode_map_header(&x, 1 + 2 * c->cursor_set + (c->ltype != NULL) + (c->state != NULL));
    ei_x_encode_atom(&x, "timeout_ms");
    ei_x_encode_ulong(&x, c->cursor_set ? WAIT_SLICE_MS : 0); /* the first answer: the cursor */
    if (c->cursor_set) {
        ei_x_encode_atom(&x, "since");
        ei_x_encode_ulonglong(&x, c->since);
        ei_x_encode_atom(&x, "term");
        ei_x_encode_ulonglong(&x, c->term);
    }
    if (c->ltype) {
        ei_x_encode_atom(&x, "type");
        ei_x_encode_binary(&x, c->ltype, (long)strlen(c->ltype));
    }
    if (c->state) {
        ei_x_encode_atom(&x, "state");
        ei_x_encode_binary(&x, c->state, (long)strlen(c->state));
    }
    int rc = call(c, &x, WAIT_SLICE_MS + 20000, feed_done);
    ei_x_free(&x);
    if (rc != BL_OK) again(c, NULL);
}

static void submit_send(tcmd *c);

static void submit_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    tcmd *c = ud;
    json_t *j = reply_of(c, status, buf, index, c->deadline_ms, "task submit", c->o.target);
    if (!j) return;
    const char *id = json_string_value(json_array_get(j, 1));
    snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
    json_decref(j);
    if (!c->wait) {
        printf("%s\n", c->id);
        done(c, 0);
        return;
    }
    if (!json_out(c)) fprintf(stderr, "%s\n", c->id);
    wait_next(c);
}

static void submit_send(tcmd *c)
{
    if (call(c, &c->req, c->o.timeout_ms, submit_done) != BL_OK) again(c, NULL);
}

/* ---- get, list, cancel, agents ---- */

static void simple_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    tcmd *c = ud;
    if (status != BL_OK) {
        fprintf(stderr, "beamlet task %s: %s: %s\n", c->op, c->o.target,
                status == BL_ENODEDOWN  ? "node not reachable (not running, wrong cookie or host?)"
                : status == BL_ETIMEOUT ? "no answer in time"
                                        : bl_strerror(status));
        done(c, 1);
        return;
    }
    int i = index;
    json_t *j = bl_term_to_json(buf, &i);
    const char *why = error_of(j);
    if (why) {
        fprintf(stderr, "beamlet task %s: %s\n", c->op,
                !strcmp(why, "not_found") ? "no such task" : why);
        json_decref(j);
        done(c, 1);
        return;
    }
    json_t *v = json_array_get(j, 1);
    if (json_out(c)) {
        bl__cli_print_json(v);
    } else if (!strcmp(c->op, "get") || !strcmp(c->op, "cancel")) {
        if (!strcmp(c->op, "cancel"))
            printf("%s cancelled\n", json_string_value(json_object_get(v, "id")));
        else
            print_task(v);
    } else if (!strcmp(c->op, "list")) {
        printf("%-22s %-14s %-10s %-7s %-24s %s\n", "ID", "TYPE", "STATE", "ATTEMPT", "AGENT",
               "SUBMITTED");
        size_t k;
        json_t *t;
        json_array_foreach(v, k, t)
        {
            char tm[32];
            fmt_time((unsigned long long)json_integer_value(json_object_get(t, "submitted_ms")), tm,
                     sizeof(tm));
            const char *a = json_string_value(json_object_get(t, "agent"));
            printf("%-22s %-14s %-10s %-7lld %-24s %s\n",
                   json_string_value(json_object_get(t, "id")),
                   json_string_value(json_object_get(t, "type")),
                   json_string_value(json_object_get(t, "state")),
                   (long long)json_integer_value(json_object_get(t, "attempt")), a ? a : "-", tm);
        }
    } else { /* agents */
        printf("%-28s %-9s %-6s %-6s %-24s %s\n", "AGENT", "IN_FLIGHT", "LIMIT", "LOAD", "TYPES",
               "CAPABILITIES");
        size_t k;
        json_t *a;
        json_array_foreach(v, k, a)
        {
            char types[256] = "", caps[256] = "";
            size_t q;
            json_t *e;
            json_array_foreach(json_object_get(a, "types"), q, e)
            {
                size_t l = strlen(types);
                snprintf(types + l, sizeof(types) - l, "%s%s", q ? "," : "", json_string_value(e));
            }
            json_array_foreach(json_object_get(a, "capabilities"), q, e)
            {
                size_t l = strlen(caps);
                snprintf(caps + l, sizeof(caps) - l, "%s%s", q ? "," : "", json_string_value(e));
            }
            printf("%-28s %-9lld %-6lld %-6.2f %-24s %s\n",
                   json_string_value(json_object_get(a, "node")),
                   (long long)json_integer_value(json_object_get(a, "in_flight")),
                   (long long)json_integer_value(json_object_get(a, "limit")),
                   json_number_value(json_object_get(a, "load")), types, caps[0] ? caps : "-");
        }
    }
    json_decref(j);
    done(c, 0);
}

/* ---- plumbing ---- */

static int call(tcmd *c, const ei_x_buff *req, unsigned tmo, bl_call_cb cb)
{
    return bl_call(c->p, NULL, "beamlet_tasks", c->o.target, req->buff, req->index, tmo, cb, c);
}

static void retry_cb(bl_node *n, void *ud)
{
    (void)n;
    tcmd *c = ud;
    if (!strcmp(c->op, "submit") && !c->id[0])
        submit_send(c);
    else if (c->all)
        feed_next(c);
    else
        wait_next(c);
}

static void again(tcmd *c, bl_timer_cb cb)
{
    (void)cb;
    c->tries++;
    bl_timer(bl_proc_node(c->p), RETRY_MS, 0, retry_cb, c);
}

static int start(bl__cli_opts *o, bl_proc *p, void *ud)
{
    (void)o;
    tcmd *c = ud;
    c->p = p;
    if (!strcmp(c->op, "submit")) {
        c->deadline_ms = mono_ms() + 30000;
        submit_send(c);
        return 0;
    }
    if (!strcmp(c->op, "watch")) {
        if (c->all)
            feed_next(c);
        else
            wait_next(c);
        return 0;
    }
    return call(c, &c->req, c->o.timeout_ms, simple_done) == BL_OK ? 0 : -1;
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "beamlet task: %s: '%s' is not %ld..%ld\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* the task options out of argv; the rest goes to bl__cli_parse */
static int parse(tcmd *c, const char *op, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->timeout_ms = c->retries = c->limit = c->queue_timeout_ms = c->left = -1;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int nr = 0;
    if (!rest) return -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int sub = !strcmp(op, "submit"), lst = !strcmp(op, "list") || !strcmp(op, "watch");
#define TAKE(flag, dst)                                                                            \
    if (!strcmp(a, flag) && v) {                                                                   \
        dst = v;                                                                                   \
        i++;                                                                                       \
        continue;                                                                                  \
    }
        if (sub) {
            TAKE("--type", c->type);
            TAKE("--payload", c->payload);
            TAKE("--priority", c->priority);
            TAKE("--idempotency-key", c->idem);
            TAKE("--trace-id", c->trace);
            if (!strcmp(a, "--capability") && v) {
                if (c->ncaps == 16) {
                    fprintf(stderr, "beamlet task submit: at most 16 --capability\n");
                    free(rest);
                    return -1;
                }
                c->caps[c->ncaps++] = argv[++i];
                continue;
            }
            if (!strcmp(a, "--timeout-ms") && v) {
                if (parse_long(a, argv[++i], 1, 86400000, &c->timeout_ms)) goto bad;
                continue;
            }
            if (!strcmp(a, "--retries") && v) {
                if (parse_long(a, argv[++i], 0, 100, &c->retries)) goto bad;
                continue;
            }
            if (!strcmp(a, "--queue-timeout-ms") && v) {
                if (parse_long(a, argv[++i], 0, 604800000, &c->queue_timeout_ms)) goto bad;
                continue;
            }
            if (!strcmp(a, "--wait")) {
                c->wait = 1;
                continue;
            }
        }
        if (lst) {
            TAKE("--state", c->state);
            TAKE("--type", c->ltype);
            if (!strcmp(a, "--limit") && v && strcmp(op, "watch")) {
                if (parse_long(a, argv[++i], 1, 100000, &c->limit)) goto bad;
                continue;
            }
            if (!strcmp(a, "--count") && v && !strcmp(op, "watch")) {
                if (parse_long(a, argv[++i], 1, 100000000, &c->left)) goto bad;
                continue;
            }
        }
#undef TAKE
        rest[nr++] = argv[i];
    }
    static const char *const NAMES[][2] = {{"submit", "task submit"}, {"get", "task get"},
                                           {"list", "task list"},     {"cancel", "task cancel"},
                                           {"watch", "task watch"},   {"agents", "task agents"}};
    const char *name = "task";
    for (size_t k = 0; k < sizeof(NAMES) / sizeof(NAMES[0]); k++)
        if (!strcmp(NAMES[k][0], op)) name = NAMES[k][1];
    if (bl__cli_parse(&c->o, name, nr, rest) < 0) goto bad;
    free(rest);
    return 0;
bad:
    free(rest);
    return -1;
}

static int need_id(tcmd *c)
{
    if (c->o.npos != 1) {
        fprintf(stderr, "beamlet task %s: give one task id (see beamlet task %s --help)\n", c->op,
                c->op);
        return -1;
    }
    snprintf(c->id, sizeof(c->id), "%s", c->o.pos[0]);
    return 0;
}

static int run(tcmd *c)
{
    int rc = bl__cli_session(&c->o, start, c);
    ei_x_free(&c->req);
    return rc;
}

int bl__cli_task_submit(int argc, char **argv)
{
    tcmd c;
    if (parse(&c, "submit", argc, argv) < 0) return 2;
    if (!c.type || !c.type[0]) {
        fprintf(stderr, "beamlet task submit: --type T is required\n");
        return 2;
    }
    if (c.priority && strcmp(c.priority, "high") && strcmp(c.priority, "normal") &&
        strcmp(c.priority, "low")) {
        fprintf(stderr, "beamlet task submit: --priority: '%s' is not high, normal or low\n",
                c.priority);
        return 2;
    }
    if (c.o.npos) {
        fprintf(stderr, "beamlet task submit: unexpected argument '%s'\n", c.o.pos[0]);
        return 2;
    }
    if (!c.idem) { /* one command, one task: the key makes retries on a leader change safe */
        unsigned char r[12];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) memset(r, getpid() & 0xff, sizeof(r));
        int k = snprintf(c.idem_buf, sizeof(c.idem_buf), "cli-");
        for (int i = 0; i < 12; i++)
            k += snprintf(c.idem_buf + k, sizeof(c.idem_buf) - k, "%02x", r[i]);
        c.idem = c.idem_buf;
    }
    ei_x_new(&c.req);
    if (encode_submit(&c, &c.req) < 0) {
        ei_x_free(&c.req);
        return 2;
    }
    return run(&c);
}

static int id_cmd(const char *op, int argc, char **argv)
{
    tcmd c;
    if (parse(&c, op, argc, argv) < 0 || need_id(&c) < 0) return 2;
    ei_x_new(&c.req);
    ei_x_encode_tuple_header(&c.req, 2);
    ei_x_encode_atom(&c.req, op);
    ei_x_encode_binary(&c.req, c.id, (long)strlen(c.id));
    return run(&c);
}

int bl__cli_task_get(int argc, char **argv)
{
    return id_cmd("get", argc, argv);
}

int bl__cli_task_cancel(int argc, char **argv)
{
    return id_cmd("cancel", argc, argv);
}

int bl__cli_task_watch(int argc, char **argv)
{
    tcmd c;
    if (parse(&c, "watch", argc, argv) < 0) return 2;
    if (c.o.npos == 0) { /* every task: the leader's feed */
        static const char *const ST[] = {"queued", "assigned",  "running",  "succeeded",
                                         "failed", "cancelled", "timed_out"};
        int ok = !c.state;
        for (size_t k = 0; !ok && k < sizeof(ST) / sizeof(ST[0]); k++)
            ok = !strcmp(c.state, ST[k]);
        if (!ok) {
            fprintf(stderr, "beamlet task watch: --state: '%s' is not a task state\n", c.state);
            return 2;
        }
        c.all = 1;
    } else if (c.state || c.ltype || c.left >= 0) {
        fprintf(stderr, "beamlet task watch: --type, --state and --count go with watching every "
                        "task (no id)\n");
        return 2;
    } else if (need_id(&c) < 0) {
        return 2;
    }
    ei_x_new(&c.req);
    return run(&c);
}

int bl__cli_task_list(int argc, char **argv)
{
    tcmd c;
    if (parse(&c, "list", argc, argv) < 0) return 2;
    ei_x_new(&c.req);
    ei_x_encode_tuple_header(&c.req, 2);
    ei_x_encode_atom(&c.req, "list");
    ei_x_encode_map_header(&c.req, (c.state != NULL) + (c.ltype != NULL) + (c.limit > 0));
    if (c.state) {
        ei_x_encode_atom(&c.req, "state");
        ei_x_encode_binary(&c.req, c.state, (long)strlen(c.state));
    }
    if (c.ltype) {
        ei_x_encode_atom(&c.req, "type");
        ei_x_encode_binary(&c.req, c.ltype, (long)strlen(c.ltype));
    }
    if (c.limit > 0) {
        ei_x_encode_atom(&c.req, "limit");
        ei_x_encode_long(&c.req, c.limit);
    }
    return run(&c);
}

int bl__cli_task_agents(int argc, char **argv)
{
    tcmd c;
    if (parse(&c, "agents", argc, argv) < 0) return 2;
    ei_x_new(&c.req);
    ei_x_encode_atom(&c.req, "agents");
    return run(&c);
}
