/* tasks_feed.c - the leader's feed of task transitions (docs/tasks.md, "Watching every task"):
 * what `beamlet task watch` without an id, GET /api/v1/tasks/changes and the shims read.
 *
 * Every transition the leader records (tasks.c: event()) is pushed here as one encoded change
 * map with a sequence number. The feed keeps the last FEED_CAP changes in a ring (allocated on
 * the first push, so only a leader pays for it) and answers
 *   {changes, #{since => Seq, term => Term, type => Bin, state => Bin, limit => N,
 *               timeout_ms => N}}
 * with {ok, #{term, next, missed, changes => [Change]}}: at once when a change after Seq
 * matches the filter, else when one comes, else empty at the timeout (a long poll: the caller
 * asks again with since => next). A cursor from another leader term starts at the oldest change
 * this leader has; a cursor older than the ring counts the changes skipped in `missed`. Waiting
 * callers are bounded (FEED_MAX_WAITERS: {error, too_many_watchers} beyond). */
#include "tasks_int.h"

#include <stdlib.h>
#include <string.h>

#define FEED_CAP 1024u
#define FEED_MAX_WAITERS 256u
#define FEED_MAX_WAIT_MS 60000ul
#define FEED_LIMIT 1000u

typedef struct feed_ent {
    unsigned long long seq;
    int state;
    char type[BL_TASK_TYPE_LEN];
    char *term; /* the change map, term body */
    int len;
} feed_ent;

typedef struct feed_q {
    unsigned long long since, term;
    int has_since, has_term, state; /* state -1: any */
    char type[BL_TASK_TYPE_LEN];
    unsigned limit;
    unsigned long timeout_ms;
} feed_q;

typedef struct feed_waiter {
    struct feed_waiter *next;
    struct tasks_feed *f;
    bl_from from;
    feed_q q;
    unsigned long long missed;
    int timer;
} feed_waiter;

struct tasks_feed {
    bl_node *n;
    feed_ent *ring;          /* FEED_CAP entries once the first change comes */
    unsigned long long head; /* the seq the next change gets; the ring holds [head-count, head) */
    unsigned count;
    unsigned long long term;
    feed_waiter *waiters;
    unsigned nwaiters;
    int flush_timer;
};

tasks_feed *bl__feed_new(bl_node *n)
{
    tasks_feed *f = calloc(1, sizeof(*f));
    if (f) f->n = n;
    return f;
}

static void clear_ring(tasks_feed *f)
{
    for (unsigned i = 0; f->ring && i < FEED_CAP; i++) {
        free(f->ring[i].term);
        f->ring[i].term = NULL;
    }
    f->count = 0;
}

static void waiter_drop(tasks_feed *f, feed_waiter *w)
{
    feed_waiter **pp;
    for (pp = &f->waiters; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp) *pp = w->next;
    if (w->timer > 0) bl_timer_cancel(f->n, w->timer);
    f->nwaiters--;
    free(w);
}

static void reply_error(tasks_feed *f, const bl_from *from, const char *why)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "error");
    ei_x_encode_atom(&x, why);
    bl_reply(f->n, from, x.buff, x.index);
    ei_x_free(&x);
}

void bl__feed_reset(tasks_feed *f, unsigned long long term, const char *why)
{
    if (!f) return;
    while (f->waiters) {
        if (why) reply_error(f, &f->waiters->from, why);
        waiter_drop(f, f->waiters);
    }
    clear_ring(f);
    f->term = term;
}

void bl__feed_free(tasks_feed *f)
{
    if (!f) return;
    bl__feed_reset(f, 0, NULL);
    if (f->flush_timer > 0) bl_timer_cancel(f->n, f->flush_timer);
    free(f->ring);
    free(f);
}

unsigned bl__feed_waiters(tasks_feed *f)
{
    return f ? f->nwaiters : 0;
}

/* ---- answering ---- */

static int matches(const feed_q *q, const feed_ent *e)
{
    return (q->state < 0 || q->state == e->state) && (!q->type[0] || !strcmp(q->type, e->type));
}

/* Normalise q's cursor against the ring: from another term or too old, it moves to the oldest
 * change held (the skipped ones counted in *missed); past the head, to the head. */
static void cursor(tasks_feed *f, feed_q *q, unsigned long long *missed)
{
    unsigned long long tail = f->head - f->count;
    if (!q->has_since || (q->has_term && q->term != f->term)) {
        q->since = q->has_since ? tail : f->head; /* no cursor: from now on */
        q->has_since = 1;
    }
    q->has_term = 1;
    q->term = f->term;
    if (q->since < tail) {
        *missed += tail - q->since;
        q->since = tail;
    }
    if (q->since > f->head) q->since = f->head;
}

/* The changes after q->since that match, at most q->limit: encoded into r as the reply when
 * there is one (or force); returns how many. q->since moves past what was looked at. */
static unsigned collect(tasks_feed *f, feed_q *q, unsigned long long missed, int force,
                        ei_x_buff *r)
{
    unsigned n = 0;
    unsigned long long s, next = f->head;
    for (s = q->since; s < f->head; s++) {
        const feed_ent *e = &f->ring[s % FEED_CAP];
        if (!matches(q, e)) continue;
        if (n == q->limit) {
            next = s;
            break;
        }
        n++;
    }
    if (!n && !force) {
        q->since = f->head; /* nothing for it so far: the next look starts here */
        return 0;
    }
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "ok");
    ei_x_encode_map_header(r, 4);
    ei_x_encode_atom(r, "term");
    ei_x_encode_ulonglong(r, f->term);
    ei_x_encode_atom(r, "next");
    ei_x_encode_ulonglong(r, next);
    ei_x_encode_atom(r, "missed");
    ei_x_encode_ulonglong(r, missed);
    ei_x_encode_atom(r, "changes");
    unsigned k = 0;
    for (s = q->since; s < next && k < n; s++) {
        const feed_ent *e = &f->ring[s % FEED_CAP];
        if (!matches(q, e)) continue;
        ei_x_encode_list_header(r, 1);
        ei_x_append_buf(r, e->term, e->len);
        k++;
    }
    ei_x_encode_empty_list(r);
    q->since = next;
    return n;
}

static void flush_cb(bl_node *n, void *ud)
{
    (void)n;
    tasks_feed *f = ud;
    f->flush_timer = 0;
    for (feed_waiter *w = f->waiters, *next; w; w = next) {
        next = w->next;
        ei_x_buff x;
        ei_x_new(&x);
        if (collect(f, &w->q, w->missed, 0, &x)) {
            bl_reply(f->n, &w->from, x.buff, x.index);
            waiter_drop(f, w);
        }
        ei_x_free(&x);
    }
}

static void waiter_timeout(bl_node *n, void *ud)
{
    (void)n;
    feed_waiter *w = ud;
    tasks_feed *f = w->f;
    w->timer = 0;
    ei_x_buff x;
    ei_x_new(&x);
    collect(f, &w->q, w->missed, 1, &x);
    bl_reply(f->n, &w->from, x.buff, x.index);
    ei_x_free(&x);
    waiter_drop(f, w);
}

/* ---- recording ---- */

void bl__feed_push(tasks_feed *f, const task *t, const char *error)
{
    if (!f) return;
    if (!f->ring && !(f->ring = calloc(FEED_CAP, sizeof(*f->ring)))) return;
    feed_ent *e = &f->ring[f->head % FEED_CAP];
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_map_header(&x, 8);
    ei_x_encode_atom(&x, "seq");
    ei_x_encode_ulonglong(&x, f->head);
    ei_x_encode_atom(&x, "id");
    ei_x_encode_binary(&x, t->id, (long)strlen(t->id));
    ei_x_encode_atom(&x, "type");
    ei_x_encode_binary(&x, t->type, (long)strlen(t->type));
    ei_x_encode_atom(&x, "state");
    ei_x_encode_atom(&x, bl__task_state_name(t->state));
    ei_x_encode_atom(&x, "attempt");
    ei_x_encode_ulong(&x, t->attempt);
    ei_x_encode_atom(&x, "agent");
    ei_x_encode_atom(&x, t->agent[0] ? t->agent : "undefined");
    ei_x_encode_atom(&x, "time_ms");
    ei_x_encode_ulonglong(&x, bl_now_ms());
    ei_x_encode_atom(&x, "error");
    ei_x_encode_atom(&x, error && *error ? error : "undefined");
    char *copy = malloc((size_t)x.index);
    if (copy) memcpy(copy, x.buff, (size_t)x.index);
    int len = x.index;
    ei_x_free(&x);
    if (!copy) return; /* out of memory: this change is not in the feed */
    free(e->term);
    e->term = copy;
    e->len = len;
    e->seq = f->head;
    e->state = t->state;
    snprintf(e->type, sizeof(e->type), "%s", t->type);
    f->head++;
    if (f->count < FEED_CAP) f->count++;
    if (f->waiters && f->flush_timer <= 0) { /* one answer per loop turn however many changes */
        int id = bl_timer(f->n, 0, 0, flush_cb, f);
        f->flush_timer = id > 0 ? id : 0;
    }
}

/* ---- the request ---- */

static int parse(const char *buf, int *idx, feed_q *q)
{
    int ar;
    memset(q, 0, sizeof(*q));
    q->state = -1;
    q->limit = FEED_LIMIT;
    if (ei_decode_map_header(buf, idx, &ar) < 0) return -1;
    for (int k = 0; k < ar; k++) {
        char key[MAXATOMLEN_UTF8], v[BL_TASK_TYPE_LEN];
        unsigned long u;
        if (ei_decode_atom(buf, idx, key) < 0) return -1;
        if (!strcmp(key, "since")) {
            if (ei_decode_ulonglong(buf, idx, &q->since) < 0) return -1;
            q->has_since = 1;
        } else if (!strcmp(key, "term")) {
            if (ei_decode_ulonglong(buf, idx, &q->term) < 0) return -1;
            q->has_term = 1;
        } else if (!strcmp(key, "type")) {
            if (bl__get_bin(buf, idx, q->type, sizeof(q->type)) < 0) return -1;
        } else if (!strcmp(key, "state")) {
            if (bl__get_bin(buf, idx, v, sizeof(v)) < 0 || (q->state = bl__task_state_parse(v)) < 0)
                return -1;
        } else if (!strcmp(key, "limit")) {
            if (ei_decode_ulong(buf, idx, &u) < 0 || u < 1) return -1;
            q->limit = u > FEED_LIMIT ? FEED_LIMIT : (unsigned)u;
        } else if (!strcmp(key, "timeout_ms")) {
            if (ei_decode_ulong(buf, idx, &u) < 0) return -1;
            q->timeout_ms = u > FEED_MAX_WAIT_MS ? FEED_MAX_WAIT_MS : u;
        } else if (bl__skip_term(buf, idx) < 0) {
            return -1;
        }
    }
    return 0;
}

unsigned long bl__feed_wait_ms(const char *buf, int idx)
{
    feed_q q;
    return parse(buf, &idx, &q) == 0 ? q.timeout_ms : 0;
}

static void encode_bad(ei_x_buff *r)
{
    const char *why = "changes: #{since => Seq, term => Term, type => Bin, state => Bin, limit "
                      "=> 1..1000, timeout_ms => 0..60000}";
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "bad_request");
    ei_x_encode_binary(r, why, (long)strlen(why));
}

int bl__feed_call(tasks_feed *f, const bl_from *from, const char *buf, int idx, ei_x_buff *r)
{
    feed_q q;
    if (parse(buf, &idx, &q) < 0) {
        encode_bad(r);
        return 0;
    }
    unsigned long long missed = 0;
    cursor(f, &q, &missed);
    ei_x_buff x;
    ei_x_new(&x);
    int now = collect(f, &q, missed, q.timeout_ms == 0, &x) > 0 || q.timeout_ms == 0;
    if (now) ei_x_append_buf(r, x.buff, x.index);
    ei_x_free(&x);
    if (now) return 0;
    if (f->nwaiters >= FEED_MAX_WAITERS) {
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "error");
        ei_x_encode_atom(r, "too_many_watchers");
        return 0;
    }
    feed_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        ei_x_encode_tuple_header(r, 2);
        ei_x_encode_atom(r, "error");
        ei_x_encode_atom(r, "enomem");
        return 0;
    }
    w->f = f;
    w->from = *from;
    w->q = q;
    w->missed = missed;
    int tid = bl_timer(f->n, (unsigned)q.timeout_ms, 0, waiter_timeout, w);
    if (tid <= 0) { /* no timer: answered now, empty */
        free(w);
        collect(f, &q, missed, 1, r);
        return 0;
    }
    w->timer = tid;
    w->next = f->waiters;
    f->waiters = w;
    f->nwaiters++;
    return 1;
}
