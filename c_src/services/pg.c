/* pg.c - OTP pg scopes on a beamlet node (docs/services.md, "pg groups"; include/beamlet/pg.h).
 *
 * A scope is a registered process named like the scope atom that speaks kernel/src/pg.erl's
 * protocol exactly, so BEAM's pg and other beamlet nodes treat it as one more pg peer:
 *   out: {discover, Self} to {Scope, Node} at start and on every nodeup (BEAM never discovers a
 *        hidden node itself); {'$gen_cast', {sync, Self, [{Group, [Pid]}]}} in answer to a
 *        discover (and to a peer first seen through its sync); {join, Self, Group, Pid} and
 *        {leave, Self, Pid, [Group]} to every known peer.
 *   in:  discover, sync, join, leave from peers; nothing else is ever sent to a peer.
 * A wrong message (or a leave for a group BEAM never saw us join) crashes BEAM's scope, hence:
 * a peer only gets join/leave after it got our full sync; if a send to a peer fails (send queue
 * over its high-water mark) the peer gets no more join/leave until a full sync went through
 * (retried on a timer), because sync replaces everything a peer knows of us.
 * Remote members are kept per peer scope pid and dropped on nodedown, or when another scope
 * process of the same node appears (the old one is gone). Local members are linked to the scope
 * (which traps exits): a member that ends leaves its groups at once. */
#include "../runtime/internal.h"
#include "../dist/term.h"
#include "beamlet/pg.h"
#include "repl.h"

#include <stdlib.h>
#include <string.h>

#define RESYNC_MS 200u

typedef struct pidvec {
    bl_pid *v;
    int n, cap;
} pidvec;

/* Members of one group: keyed by the group's encoded bytes. */
typedef struct pg_group {
    UT_hash_handle hh;
    char *key;
    int klen;
    pidvec pids;
} pg_group;

typedef struct pg_peer {
    struct pg_peer *next;
    bl_pid scope;     /* the peer's scope process */
    pg_group *groups; /* its members */
    int need_sync;    /* a send failed: only a full sync may go next */
} pg_peer;

typedef struct pg_mon {
    struct pg_mon *next;
    int id;
    bl_pg_cb cb; /* NULL: removed while events were firing */
    void *ud;
} pg_mon;

typedef struct pg_ev {
    struct pg_ev *next;
    bl_pg_event ev;
    char *group;
    int glen;
    pidvec pids;
} pg_ev;

typedef struct pg_scope {
    bl_node *n;
    bl_proc *proc;
    char name[BL_NAME_LEN];
    pg_group *local;
    pg_peer *peers;
    pg_mon *mons;
    int next_mon;
    pg_ev *evq_head, *evq_tail;
    int firing;
    int nodemon_id;
    int resync_timer;
    ei_x_buff gkey; /* scratch: a group's canonical encoding */
} pg_scope;

static void scope_msg(bl_proc *self, const bl_msg *msg, void *ud);

/* ---- small containers ---- */

static int pv_push(pidvec *pv, const bl_pid *pid)
{
    if (pv->n == pv->cap) {
        int cap = pv->cap ? pv->cap * 2 : 4;
        bl_pid *v = realloc(pv->v, sizeof(*v) * (size_t)cap);
        if (!v) return BL_ENOMEM;
        pv->v = v;
        pv->cap = cap;
    }
    pv->v[pv->n++] = *pid;
    return BL_OK;
}

static int pv_remove_one(pidvec *pv, const bl_pid *pid)
{
    for (int i = 0; i < pv->n; i++) {
        if (bl_pid_eq(&pv->v[i], pid)) {
            memmove(&pv->v[i], &pv->v[i + 1], sizeof(*pv->v) * (size_t)(pv->n - i - 1));
            pv->n--;
            return 1;
        }
    }
    return 0;
}

static int pv_count(const pidvec *pv, const bl_pid *pid)
{
    int k = 0;
    for (int i = 0; i < pv->n; i++)
        if (bl_pid_eq(&pv->v[i], pid)) k++;
    return k;
}

static pg_group *grp_find(pg_group *h, const char *key, int klen)
{
    pg_group *g = NULL;
    HASH_FIND(hh, h, key, (unsigned)klen, g);
    return g;
}

static pg_group *grp_get(pg_group **h, const char *key, int klen)
{
    pg_group *g = grp_find(*h, key, klen);
    if (g) return g;
    g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    g->key = malloc((size_t)klen);
    if (!g->key) {
        free(g);
        return NULL;
    }
    memcpy(g->key, key, (size_t)klen);
    g->klen = klen;
    HASH_ADD_KEYPTR(hh, *h, g->key, (unsigned)klen, g);
    return g;
}

static void grp_del(pg_group **h, pg_group *g)
{
    HASH_DEL(*h, g);
    free(g->key);
    free(g->pids.v);
    free(g);
}

static void grp_free_all(pg_group **h)
{
    pg_group *g, *t;
    HASH_ITER(hh, *h, g, t)
        grp_del(h, g);
}

/* ---- canonical group encoding ----
 * Groups are compared by their encoded bytes, so every group (from C or from a peer) is first
 * re-encoded one way: atoms as UTF-8 atoms, integers in their smallest form, lists of small
 * integers as strings, floats as NEW_FLOAT, map pairs sorted by key. Two encodings of one term
 * must never become two groups: a peer's sync listing the same group twice would make BEAM lose
 * track of members and later crash on a leave. Input has been bounds-checked. */

static int canon(const char *buf, int *idx, ei_x_buff *x, int depth);

static int copy_raw(const char *buf, int *idx, ei_x_buff *x)
{
    int j = *idx;
    if (ei_skip_term(buf, &j) < 0 || ei_x_append_buf(x, buf + *idx, j - *idx) < 0) return -1;
    *idx = j;
    return 0;
}

typedef struct kv {
    ei_x_buff b;
    int klen;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    const kv *p = a, *q = b;
    int n = p->klen < q->klen ? p->klen : q->klen;
    int c = memcmp(p->b.buff, q->b.buff, (size_t)n);
    return c ? c : (p->klen > q->klen) - (p->klen < q->klen);
}

static int canon_map(const char *buf, int *idx, ei_x_buff *x, int depth)
{
    int arity, rc = -1, made = 0;
    if (ei_decode_map_header(buf, idx, &arity) < 0 || arity < 0) return -1;
    kv *pairs = arity ? calloc((size_t)arity, sizeof(*pairs)) : NULL;
    if (arity && !pairs) return -1;
    for (; made < arity; made++) {
        if (ei_x_new(&pairs[made].b) < 0) goto out;
        if (canon(buf, idx, &pairs[made].b, depth + 1) < 0) {
            made++;
            goto out;
        }
        pairs[made].klen = pairs[made].b.index;
        if (canon(buf, idx, &pairs[made].b, depth + 1) < 0) {
            made++;
            goto out;
        }
    }
    if (arity) qsort(pairs, (size_t)arity, sizeof(*pairs), kv_cmp);
    if (ei_x_encode_map_header(x, arity) < 0) goto out;
    for (int i = 0; i < arity; i++)
        if (ei_x_append_buf(x, pairs[i].b.buff, pairs[i].b.index) < 0) goto out;
    rc = 0;
out:
    for (int i = 0; i < made; i++)
        ei_x_free(&pairs[i].b);
    free(pairs);
    return rc;
}

static int canon_list(const char *buf, int *idx, ei_x_buff *x, int depth)
{
    int arity, j = *idx, stringish = 1;
    if (ei_decode_list_header(buf, &j, &arity) < 0) return -1;
    if (arity == 0) { /* [] */
        *idx = j;
        return ei_x_encode_empty_list(x) < 0 ? -1 : 0;
    }
    /* a proper list of integers 0..255 shorter than 65536 is a string, as BEAM sends it */
    int k = j;
    if (arity > 65535) stringish = 0;
    for (int i = 0; stringish && i < arity; i++) {
        long v;
        int t = k;
        if (ei_decode_long(buf, &t, &v) < 0 || v < 0 || v > 255)
            stringish = 0;
        else
            k = t;
    }
    int type, size;
    if (stringish && (ei_get_type(buf, &k, &type, &size) < 0 || type != ERL_NIL_EXT)) stringish = 0;
    if (stringish) {
        char *str = malloc((size_t)arity + 1);
        if (!str) return -1;
        for (int i = 0; i < arity; i++) {
            long v;
            (void)ei_decode_long(buf, &j, &v);
            str[i] = (char)v;
        }
        (void)ei_decode_list_header(buf, &j, &size); /* the nil tail */
        int rc = ei_x_encode_string_len(x, str, arity);
        free(str);
        *idx = j;
        return rc < 0 ? -1 : 0;
    }
    if (ei_x_encode_list_header(x, arity) < 0) return -1;
    for (int i = 0; i < arity; i++)
        if (canon(buf, &j, x, depth + 1) < 0) return -1;
    if (canon(buf, &j, x, depth + 1) < 0) return -1; /* the tail */
    *idx = j;
    return 0;
}

static int canon(const char *buf, int *idx, ei_x_buff *x, int depth)
{
    int type, size;
    if (depth > BL_TERM_MAX_DEPTH || ei_get_type(buf, idx, &type, &size) < 0) return -1;
    switch (type) {
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char a[MAXATOMLEN_UTF8];
        erlang_char_encoding was, res;
        if (ei_decode_atom_as(buf, idx, a, sizeof a, ERLANG_UTF8, &was, &res) < 0) return -1;
        return ei_x_encode_atom_len_as(x, a, (int)strlen(a), ERLANG_UTF8, ERLANG_UTF8) < 0 ? -1 : 0;
    }
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT:
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        EI_LONGLONG v;
        int j = *idx;
        if (ei_decode_longlong(buf, &j, &v) < 0) return copy_raw(buf, idx, x);
        *idx = j;
        return ei_x_encode_longlong(x, v) < 0 ? -1 : 0;
    }
    case ERL_FLOAT_EXT:
    case NEW_FLOAT_EXT: {
        double d;
        if (ei_decode_double(buf, idx, &d) < 0) return -1;
        return ei_x_encode_double(x, d) < 0 ? -1 : 0;
    }
    case ERL_STRING_EXT: {
        char *str = malloc((size_t)size + 1);
        if (!str) return -1;
        int rc = ei_decode_string(buf, idx, str) < 0 ? -1 : ei_x_encode_string_len(x, str, size);
        free(str);
        return rc < 0 ? -1 : 0;
    }
    case ERL_NIL_EXT:
    case ERL_LIST_EXT:
        return canon_list(buf, idx, x, depth);
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT: {
        int arity;
        if (ei_decode_tuple_header(buf, idx, &arity) < 0 || ei_x_encode_tuple_header(x, arity) < 0)
            return -1;
        for (int i = 0; i < arity; i++)
            if (canon(buf, idx, x, depth + 1) < 0) return -1;
        return 0;
    }
    case ERL_MAP_EXT:
        return canon_map(buf, idx, x, depth);
    case ERL_PID_EXT:
    case ERL_NEW_PID_EXT: {
        erlang_pid pid;
        if (ei_decode_pid(buf, idx, &pid) < 0) return -1;
        return ei_x_encode_pid(x, &pid) < 0 ? -1 : 0;
    }
    default: /* binaries, references, ports, funs: one encoding each from BEAM and ei */
        return copy_raw(buf, idx, x);
    }
}

/* The canonical bytes of the term at *idx, into x (reset first). */
static int canon_term(const char *buf, int *idx, ei_x_buff *x)
{
    x->index = 0;
    return canon(buf, idx, x, 0);
}

/* ---- events to C monitors ---- */

static void ev_push(pg_scope *s, bl_pg_event ev, const char *group, int glen, const bl_pid *pids,
                    int npids)
{
    if (!s->mons || npids <= 0) return;
    pg_ev *e = calloc(1, sizeof(*e));
    if (!e) return;
    e->ev = ev;
    e->group = malloc((size_t)glen);
    e->pids.v = malloc(sizeof(bl_pid) * (size_t)npids);
    if (!e->group || !e->pids.v) {
        free(e->group);
        free(e->pids.v);
        free(e);
        bl_log(s->n, BL_LOG_WARN, "pg %s: out of memory, a monitor event was lost", s->name);
        return;
    }
    memcpy(e->group, group, (size_t)glen);
    e->glen = glen;
    memcpy(e->pids.v, pids, sizeof(bl_pid) * (size_t)npids);
    e->pids.n = e->pids.cap = npids;
    if (s->evq_tail)
        s->evq_tail->next = e;
    else
        s->evq_head = e;
    s->evq_tail = e;
}

static void ev_fire(pg_scope *s)
{
    if (s->firing) return; /* the outer loop picks up what a callback caused */
    s->firing = 1;
    while (s->evq_head) {
        pg_ev *e = s->evq_head;
        s->evq_head = e->next;
        if (!s->evq_head) s->evq_tail = NULL;
        pg_mon *m;
        LL_FOREACH(s->mons, m) {
            if (m->cb) m->cb(s->n, s->name, e->ev, e->group, e->glen, e->pids.v, e->pids.n, m->ud);
        }
        free(e->group);
        free(e->pids.v);
        free(e);
    }
    s->firing = 0;
    pg_mon *m, *t;
    LL_FOREACH_SAFE(s->mons, m, t) {
        if (!m->cb) {
            LL_DELETE(s->mons, m);
            free(m);
        }
    }
}

/* ---- sending to peers ---- */

static void resync_cb(bl_node *n, void *ud);

static void arm_resync(pg_scope *s)
{
    if (s->resync_timer > 0) return;
    int id = bl_timer(s->n, RESYNC_MS, 0, resync_cb, s);
    s->resync_timer = id > 0 ? id : 0;
}

static void send_peer(pg_scope *s, pg_peer *p, const ei_x_buff *x)
{
    int rc = bl_send(s->proc, &p->scope, x->buff, x->index);
    if (rc == BL_OK || rc == BL_ENODEDOWN) return; /* nodedown drops the peer */
    bl_log(s->n, BL_LOG_WARN, "pg %s: send to peer on %s failed (%s): full sync follows", s->name,
           p->scope.node, bl_strerror(rc));
    p->need_sync = 1;
    arm_resync(s);
}

static void broadcast(pg_scope *s, const ei_x_buff *x)
{
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if (!p->need_sync) send_peer(s, p, x);
    }
}

static int encode_local_groups(pg_scope *s, ei_x_buff *x)
{
    pg_group *g, *t;
    long count = 0;
    HASH_ITER(hh, s->local, g, t)
        count += g->pids.n > 0;
    if (count && ei_x_encode_list_header(x, count) < 0) return -1;
    HASH_ITER(hh, s->local, g, t) {
        if (g->pids.n == 0) continue;
        if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_append_buf(x, g->key, g->klen) < 0 ||
            ei_x_encode_list_header(x, g->pids.n) < 0)
            return -1;
        for (int i = 0; i < g->pids.n; i++)
            if (ei_x_encode_pid(x, &g->pids.v[i]) < 0) return -1;
        if (ei_x_encode_empty_list(x) < 0) return -1;
    }
    return ei_x_encode_empty_list(x);
}

static void send_sync(pg_scope *s, pg_peer *p)
{
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    if (ei_x_encode_tuple_header(&x, 2) == 0 && ei_x_encode_atom(&x, "$gen_cast") == 0 &&
        ei_x_encode_tuple_header(&x, 3) == 0 && ei_x_encode_atom(&x, "sync") == 0 &&
        ei_x_encode_pid(&x, bl_self(s->proc)) == 0 && encode_local_groups(s, &x) == 0) {
        p->need_sync = 0;
        send_peer(s, p, &x);
    } else {
        p->need_sync = 1;
        arm_resync(s);
    }
    ei_x_free(&x);
}

static void resync_cb(bl_node *n, void *ud)
{
    (void)n;
    pg_scope *s = ud;
    s->resync_timer = 0;
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if (p->need_sync) send_sync(s, p);
    }
}

static int encode_discover(pg_scope *s, ei_x_buff *x)
{
    if (ei_x_new_with_version(x) < 0) return -1;
    if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_encode_atom(x, "discover") < 0 ||
        ei_x_encode_pid(x, bl_self(s->proc)) < 0) {
        ei_x_free(x);
        return -1;
    }
    return 0;
}

static void discover_node(pg_scope *s, const char *node)
{
    if (bl_is_local_node(s->n, node)) return;
    ei_x_buff x;
    if (encode_discover(s, &x) < 0) return;
    int rc = bl_send_name(s->proc, s->name, node, x.buff, x.index);
    if (rc != BL_OK)
        bl_log(s->n, BL_LOG_WARN, "pg %s: discover to %s failed: %s", s->name, node,
               bl_strerror(rc));
    ei_x_free(&x);
}

/* {join, Self, Group, Pid} or {leave, Self, Pid, [Group...]} */
static void broadcast_join(pg_scope *s, const char *group, int glen, const bl_pid *pid)
{
    if (!s->peers) return;
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    if (ei_x_encode_tuple_header(&x, 4) == 0 && ei_x_encode_atom(&x, "join") == 0 &&
        ei_x_encode_pid(&x, bl_self(s->proc)) == 0 && ei_x_append_buf(&x, group, glen) == 0 &&
        ei_x_encode_pid(&x, pid) == 0)
        broadcast(s, &x);
    ei_x_free(&x);
}

static void broadcast_leave(pg_scope *s, const bl_pid *pid, const ei_x_buff *groups_list)
{
    if (!s->peers) return;
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    if (ei_x_encode_tuple_header(&x, 4) == 0 && ei_x_encode_atom(&x, "leave") == 0 &&
        ei_x_encode_pid(&x, bl_self(s->proc)) == 0 && ei_x_encode_pid(&x, pid) == 0 &&
        ei_x_append_buf(&x, groups_list->buff, groups_list->index) == 0)
        broadcast(s, &x);
    ei_x_free(&x);
}

/* ---- peers ---- */

static pg_peer *peer_find(pg_scope *s, const bl_pid *pid)
{
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if (bl_pid_eq(&p->scope, pid)) return p;
    }
    return NULL;
}

static void peer_drop(pg_scope *s, pg_peer *p, const char *why)
{
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: dropping peer on %s (%s)", s->name, p->scope.node, why);
    pg_group *g, *t;
    HASH_ITER(hh, p->groups, g, t) {
        ev_push(s, BL_PG_LEAVE, g->key, g->klen, g->pids.v, g->pids.n);
        grp_del(&p->groups, g);
    }
    LL_DELETE(s->peers, p);
    free(p);
}

static pg_peer *peer_add(pg_scope *s, const bl_pid *pid)
{
    pg_peer *p, *t;
    LL_FOREACH_SAFE(s->peers, p,
                    t) { /* one scope per name and node: an older process of that node has ended */
        if (strcmp(p->scope.node, pid->node) == 0) peer_drop(s, p, "replaced");
    }
    p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->scope = *pid;
    LL_APPEND(s->peers, p);
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: new peer on %s", s->name, pid->node);
    return p;
}

/* ---- decoding ---- */

/* A pid or a proper list of pids. */
static int decode_pids(const char *buf, int *idx, pidvec *out)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
    if (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT) {
        bl_pid pid;
        if (ei_decode_pid(buf, idx, &pid) < 0) return -1;
        return pv_push(out, &pid) == BL_OK ? 0 : -1;
    }
    bl__list_it it;
    int more;
    if (bl__list_begin(&it, buf, idx) < 0) return -1;
    while ((more = bl__list_next(&it)) > 0) {
        bl_pid pid;
        if (ei_decode_pid(buf, idx, &pid) < 0 || pv_push(out, &pid) != BL_OK) return -1;
    }
    return more;
}

/* The canonical bytes of the group term at *idx, in s->gkey (valid until the next use). */
static int term_span(pg_scope *s, const char *buf, int *idx, const char **start, int *len)
{
    if (canon_term(buf, idx, &s->gkey) < 0) return -1;
    *start = s->gkey.buff;
    *len = s->gkey.index;
    return 0;
}

static int pv_same(const pidvec *a, const pidvec *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (pv_count(a, &a->v[i]) != pv_count(b, &a->v[i])) return 0;
    return 1;
}

/* ---- protocol handlers ---- */

static void on_discover(pg_scope *s, const bl_pid *peer)
{
    if (bl_is_local_node(s->n, peer->node)) return;
    pg_peer *p = peer_find(s, peer);
    int fresh = p == NULL;
    if (fresh && !(p = peer_add(s, peer))) return;
    send_sync(s, p);
    if (fresh) {
        ei_x_buff x;
        if (encode_discover(s, &x) == 0) {
            send_peer(s, p, &x);
            ei_x_free(&x);
        }
    }
    ev_fire(s);
}

/* {sync, Peer, [{Group, [Pid]}]} */
static void on_sync(pg_scope *s, const char *buf, int idx)
{
    int arity;
    char a[MAXATOMLEN_UTF8];
    bl_pid peer;
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 3 ||
        ei_decode_atom(buf, &idx, a) < 0 || strcmp(a, "sync") != 0 ||
        ei_decode_pid(buf, &idx, &peer) < 0 || bl_is_local_node(s->n, peer.node)) {
        bl_log(s->n, BL_LOG_DEBUG, "pg %s: unexpected cast dropped", s->name);
        return;
    }
    pg_group *fresh_groups = NULL;
    bl__list_it it;
    int more;
    if (bl__list_begin(&it, buf, &idx) < 0) goto bad;
    while ((more = bl__list_next(&it)) > 0) {
        const char *g;
        int glen, ta;
        if (ei_decode_tuple_header(buf, &idx, &ta) < 0 || ta != 2 ||
            term_span(s, buf, &idx, &g, &glen) < 0)
            goto bad;
        pg_group *grp = grp_get(&fresh_groups, g, glen);
        if (!grp || decode_pids(buf, &idx, &grp->pids) < 0) goto bad;
    }
    if (more < 0) goto bad;

    pg_peer *p = peer_find(s, &peer);
    int fresh = p == NULL;
    if (fresh && !(p = peer_add(s, &peer))) goto bad;
    /* events: groups whose members changed */
    pg_group *g, *t;
    HASH_ITER(hh, p->groups, g, t) {
        pg_group *ng = grp_find(fresh_groups, g->key, g->klen);
        if (!ng || !pv_same(&g->pids, &ng->pids))
            ev_push(s, BL_PG_LEAVE, g->key, g->klen, g->pids.v, g->pids.n);
    }
    HASH_ITER(hh, fresh_groups, g, t) {
        pg_group *og = grp_find(p->groups, g->key, g->klen);
        if (g->pids.n == 0) {
            grp_del(&fresh_groups, g);
            continue;
        }
        if (!og || !pv_same(&g->pids, &og->pids))
            ev_push(s, BL_PG_JOIN, g->key, g->klen, g->pids.v, g->pids.n);
    }
    grp_free_all(&p->groups);
    p->groups = fresh_groups;
    /* first heard of through its sync: it has us with no groups until it gets ours */
    if (fresh) send_sync(s, p);
    ev_fire(s);
    return;
bad:
    grp_free_all(&fresh_groups);
    bl_log(s->n, BL_LOG_WARN, "pg %s: malformed sync from %s dropped", s->name, peer.node);
}

/* {join, Peer, Group, PidOrPids} */
static void on_join(pg_scope *s, const char *buf, int idx)
{
    bl_pid peer;
    const char *g;
    int glen;
    pidvec pids = {0};
    if (ei_decode_pid(buf, &idx, &peer) < 0 || term_span(s, buf, &idx, &g, &glen) < 0 ||
        decode_pids(buf, &idx, &pids) < 0)
        goto done;
    pg_peer *p = peer_find(s, &peer);
    if (!p) goto done; /* not (or no longer) in our overlay, as pg does */
    pg_group *grp = grp_get(&p->groups, g, glen);
    if (!grp) goto done;
    for (int i = 0; i < pids.n; i++)
        if (pv_push(&grp->pids, &pids.v[i]) != BL_OK) break;
    if (grp->pids.n == 0)
        grp_del(&p->groups, grp);
    else
        ev_push(s, BL_PG_JOIN, g, glen, pids.v, pids.n);
    ev_fire(s);
done:
    free(pids.v);
}

/* {leave, Peer, PidOrPids, [Group]} */
static void on_leave(pg_scope *s, const char *buf, int idx)
{
    bl_pid peer;
    pidvec pids = {0}, gone = {0};
    bl__list_it it;
    if (ei_decode_pid(buf, &idx, &peer) < 0 || decode_pids(buf, &idx, &pids) < 0) goto done;
    pg_peer *p = peer_find(s, &peer);
    if (!p || bl__list_begin(&it, buf, &idx) < 0) goto done;
    while (bl__list_next(&it) > 0) {
        const char *g;
        int glen;
        if (term_span(s, buf, &idx, &g, &glen) < 0) break;
        pg_group *grp = grp_find(p->groups, g, glen);
        if (!grp) continue;
        gone.n = 0;
        for (int k = 0; k < pids.n; k++)
            if (pv_remove_one(&grp->pids, &pids.v[k])) (void)pv_push(&gone, &pids.v[k]);
        ev_push(s, BL_PG_LEAVE, g, glen, gone.v, gone.n);
        if (grp->pids.n == 0) grp_del(&p->groups, grp);
    }
    ev_fire(s);
done:
    free(pids.v);
    free(gone.v);
}

static void scope_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    pg_scope *s = ud;
    const char *buf = msg->buf;
    int idx = msg->index, arity;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) == 0 && ei_decode_atom(buf, &idx, a) == 0) {
        if (arity == 2 && !strcmp(a, "discover")) {
            bl_pid peer;
            if (ei_decode_pid(buf, &idx, &peer) == 0) on_discover(s, &peer);
            return;
        }
        if (arity == 4 && !strcmp(a, "join")) {
            on_join(s, buf, idx);
            return;
        }
        if (arity == 4 && !strcmp(a, "leave")) {
            on_leave(s, buf, idx);
            return;
        }
    }
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: unexpected message dropped", s->name);
}

static void scope_cast(bl_proc *self, const char *buf, int index, void *ud)
{
    (void)self;
    on_sync(ud, buf, index);
}

/* ---- local members ---- */

static int local_memberships(pg_scope *s, const bl_pid *pid)
{
    int k = 0;
    pg_group *g, *t;
    HASH_ITER(hh, s->local, g, t)
        k += pv_count(&g->pids, pid);
    return k;
}

/* A member ended: leave exactly its groups (one entry per join, as pg's own 'DOWN' does). */
static void member_gone(pg_scope *s, const bl_pid *pid)
{
    ei_x_buff groups;
    if (ei_x_new(&groups) < 0) return;
    int joined = 0;
    pg_group *g, *t;
    HASH_ITER(hh, s->local, g, t) {
        int k = pv_count(&g->pids, pid);
        for (int i = 0; i < k; i++) {
            pv_remove_one(&g->pids, pid);
            ei_x_encode_list_header(&groups, 1);
            ei_x_append_buf(&groups, g->key, g->klen);
            ev_push(s, BL_PG_LEAVE, g->key, g->klen, pid, 1);
            joined++;
        }
        if (k && g->pids.n == 0) grp_del(&s->local, g);
    }
    if (joined) {
        ei_x_encode_empty_list(&groups);
        broadcast_leave(s, pid, &groups);
    }
    ei_x_free(&groups);
    ev_fire(s);
}

static void scope_exit(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud)
{
    (void)self;
    (void)buf;
    (void)index;
    member_gone(ud, from);
}

/* ---- inspection calls ---- */

static void encode_members(pg_scope *s, ei_x_buff *r, const char *g, int glen, int local_only)
{
    pg_group *grp = grp_find(s->local, g, glen);
    if (grp)
        for (int i = 0; i < grp->pids.n; i++) {
            ei_x_encode_list_header(r, 1);
            ei_x_encode_pid(r, &grp->pids.v[i]);
        }
    if (!local_only) {
        pg_peer *p;
        LL_FOREACH(s->peers, p) {
            if (!(grp = grp_find(p->groups, g, glen))) continue;
            for (int i = 0; i < grp->pids.n; i++) {
                ei_x_encode_list_header(r, 1);
                ei_x_encode_pid(r, &grp->pids.v[i]);
            }
        }
    }
    ei_x_encode_empty_list(r);
}

static int listed(ei_x_buff *seen, const char *key, int klen)
{
    /* seen: concatenated [len][bytes] records; linear, inspection only */
    int off = 0;
    while (off < seen->index) {
        int l;
        memcpy(&l, seen->buff + off, sizeof l);
        if (l == klen && memcmp(seen->buff + off + (int)sizeof l, key, (size_t)klen) == 0) return 1;
        off += (int)sizeof l + l;
    }
    ei_x_append_buf(seen, (const char *)&klen, (int)sizeof klen);
    ei_x_append_buf(seen, key, klen);
    return 0;
}

static void encode_groups(pg_scope *s, ei_x_buff *r, int local_only)
{
    ei_x_buff seen;
    ei_x_new(&seen);
    pg_group *g, *t;
    HASH_ITER(hh, s->local, g, t) {
        if (g->pids.n && !listed(&seen, g->key, g->klen)) {
            ei_x_encode_list_header(r, 1);
            ei_x_append_buf(r, g->key, g->klen);
        }
    }
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if (local_only) break;
        HASH_ITER(hh, p->groups, g, t) {
            if (g->pids.n && !listed(&seen, g->key, g->klen)) {
                ei_x_encode_list_header(r, 1);
                ei_x_append_buf(r, g->key, g->klen);
            }
        }
    }
    ei_x_free(&seen);
    ei_x_encode_empty_list(r);
}

/* which_groups | which_local_groups | {get_members, G} | {get_local_members, G} | peers */
static int scope_call(bl_proc *self, const bl_from *from, const char *buf, int idx,
                      ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    pg_scope *s = ud;
    char a[MAXATOMLEN_UTF8];
    int j = idx, arity;
    if (ei_decode_atom(buf, &j, a) == 0) {
        if (!strcmp(a, "which_groups") || !strcmp(a, "which_local_groups")) {
            encode_groups(s, reply, a[6] == 'l');
            return 0;
        }
        if (!strcmp(a, "peers")) {
            pg_peer *p;
            LL_FOREACH(s->peers, p) {
                ei_x_encode_list_header(reply, 1);
                ei_x_encode_pid(reply, &p->scope);
            }
            return ei_x_encode_empty_list(reply);
        }
    }
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &arity) == 0 && arity == 2 &&
        ei_decode_atom(buf, &j, a) == 0 &&
        (!strcmp(a, "get_members") || !strcmp(a, "get_local_members"))) {
        const char *g;
        int glen;
        if (term_span(s, buf, &j, &g, &glen) == 0) {
            encode_members(s, reply, g, glen, a[4] == 'l');
            return 0;
        }
    }
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "unknown_request");
}

/* ---- node events and lifecycle ---- */

static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    pg_scope *s = ud;
    if (ev == BL_NODEUP) {
        discover_node(s, node);
        return;
    }
    pg_peer *p, *t;
    LL_FOREACH_SAFE(s->peers, p, t) {
        if (strcmp(p->scope.node, node) == 0) peer_drop(s, p, "nodedown");
    }
    ev_fire(s);
}

static void scope_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    pg_scope *s = ud;
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: scope ends (%s)", s->name, reason);
    bl_demonitor_nodes(s->n, s->nodemon_id);
    if (s->resync_timer > 0) bl_timer_cancel(s->n, s->resync_timer);
    grp_free_all(&s->local);
    while (s->peers) {
        pg_peer *p = s->peers;
        s->peers = p->next;
        grp_free_all(&p->groups);
        free(p);
    }
    while (s->evq_head) {
        pg_ev *e = s->evq_head;
        s->evq_head = e->next;
        free(e->group);
        free(e->pids.v);
        free(e);
    }
    while (s->mons) {
        pg_mon *m = s->mons;
        s->mons = m->next;
        free(m);
    }
    ei_x_free(&s->gkey);
    free(s);
}

static const bl_proc_ops scope_ops = {.on_msg = scope_msg,
                                      .on_call = scope_call,
                                      .on_cast = scope_cast,
                                      .on_exit = scope_exit,
                                      .on_terminate = scope_terminate};

int bl_pg_start_scope(bl_node *n, const char *scope)
{
    if (!n || !scope || !scope[0] || strlen(scope) >= BL_NAME_LEN) return BL_EINVAL;
    if (bl_whereis(n, scope)) return BL_EEXIST;
    pg_scope *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->n = n;
    snprintf(s->name, sizeof(s->name), "%s", scope);
    if (ei_x_new(&s->gkey) < 0) {
        free(s);
        return BL_ENOMEM;
    }
    int rc = bl_spawn(n, scope, &scope_ops, s, &s->proc);
    if (rc != BL_OK) {
        ei_x_free(&s->gkey);
        free(s);
        return rc;
    }
    bl_trap_exit(s->proc, 1);
    int id = bl_monitor_nodes(n, on_node, s);
    if (id < 0) {
        bl_exit(s->proc, "shutdown"); /* frees s */
        return id;
    }
    s->nodemon_id = id;
    /* nodes already connected (a scope started after the node); names first: a failed send
     * may close a connection while we walk the table */
    unsigned k = 0, max = HASH_COUNT(n->conns);
    char(*names)[BL_NODE_LEN] = max ? calloc(max, BL_NODE_LEN) : NULL;
    bl_conn *c, *t;
    HASH_ITER(hh, n->conns, c, t) {
        if (names && c->state == CONN_UP && k < max)
            snprintf(names[k++], BL_NODE_LEN, "%s", c->node);
    }
    for (unsigned i = 0; i < k; i++)
        if (bl_is_connected(n, names[i])) discover_node(s, names[i]);
    free(names);
    return BL_OK;
}

/* services.c: the default scope, on nodes that are cluster members (not on CLI tool nodes) */
int bl_pg_start(bl_node *n)
{
    if (!n->cfg.cluster_member) return BL_OK;
    return bl_pg_start_scope(n, BL_PG_DEFAULT_SCOPE);
}

/* ---- public API ---- */

static pg_scope *scope_of(bl_node *n, const char *scope)
{
    bl_proc *p = bl_whereis(n, scope ? scope : BL_PG_DEFAULT_SCOPE);
    if (!p || p->dead || p->ops.on_msg != scope_msg) return NULL;
    return p->ud;
}

/* Validate a caller's group (one whole term) and canonicalize it into s->gkey. */
static int check_group(pg_scope *s, const char **group, int *glen)
{
    size_t i = 0;
    int idx = 0;
    if (!*group || *glen <= 0) return BL_EINVAL;
    if (bl_term_check(*group, (size_t)*glen, &i) != 0 || i != (size_t)*glen) return BL_EINVAL;
    if (term_span(s, *group, &idx, group, glen) < 0) return BL_EINVAL;
    return BL_OK;
}

int bl_pg_join(bl_proc *p, const char *scope, const char *group, int glen)
{
    if (!p) return BL_EINVAL;
    pg_scope *s = scope_of(p->n, scope);
    if (!s || p->dead) return BL_ENOPROC;
    int rc = check_group(s, &group, &glen);
    if (rc != BL_OK) return rc;
    if (!local_memberships(s, &p->pid)) {
        rc = bl_link(s->proc, &p->pid);
        if (rc != BL_OK) return rc;
    }
    pg_group *g = grp_get(&s->local, group, glen);
    if (!g || pv_push(&g->pids, &p->pid) != BL_OK) {
        if (g && g->pids.n == 0) grp_del(&s->local, g);
        if (!local_memberships(s, &p->pid)) bl_unlink(s->proc, &p->pid);
        return BL_ENOMEM;
    }
    broadcast_join(s, group, glen, &p->pid);
    ev_push(s, BL_PG_JOIN, group, glen, &p->pid, 1);
    ev_fire(s);
    return BL_OK;
}

int bl_pg_leave(bl_proc *p, const char *scope, const char *group, int glen)
{
    if (!p) return BL_EINVAL;
    pg_scope *s = scope_of(p->n, scope);
    if (!s) return BL_ENOPROC;
    int rc = check_group(s, &group, &glen);
    if (rc != BL_OK) return rc;
    pg_group *g = grp_find(s->local, group, glen);
    if (!g || !pv_remove_one(&g->pids, &p->pid)) return BL_PG_NOT_JOINED;
    if (g->pids.n == 0) grp_del(&s->local, g);
    if (!local_memberships(s, &p->pid)) bl_unlink(s->proc, &p->pid);
    ei_x_buff groups;
    if (ei_x_new(&groups) == 0) {
        if (ei_x_encode_list_header(&groups, 1) == 0 &&
            ei_x_append_buf(&groups, group, glen) == 0 && ei_x_encode_empty_list(&groups) == 0)
            broadcast_leave(s, &p->pid, &groups);
        ei_x_free(&groups);
    }
    ev_push(s, BL_PG_LEAVE, group, glen, &p->pid, 1);
    ev_fire(s);
    return BL_OK;
}

static int fill(const pidvec *pv, bl_pid *out, int max, int k)
{
    for (int i = 0; i < pv->n; i++, k++)
        if (out && k < max) out[k] = pv->v[i];
    return k;
}

static int members(bl_node *n, const char *scope, const char *group, int glen, bl_pid *out, int max,
                   int local_only)
{
    pg_scope *s = scope_of(n, scope);
    if (!s) return BL_ENOPROC;
    int rc = check_group(s, &group, &glen);
    if (rc != BL_OK) return rc;
    int k = 0;
    pg_group *g = grp_find(s->local, group, glen);
    if (g) k = fill(&g->pids, out, max, k);
    if (local_only) return k;
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if ((g = grp_find(p->groups, group, glen))) k = fill(&g->pids, out, max, k);
    }
    return k;
}

int bl_pg_get_members(bl_node *n, const char *scope, const char *group, int glen, bl_pid *out,
                      int max)
{
    return members(n, scope, group, glen, out, max, 0);
}

int bl_pg_get_local_members(bl_node *n, const char *scope, const char *group, int glen, bl_pid *out,
                            int max)
{
    return members(n, scope, group, glen, out, max, 1);
}

int bl_pg_monitor(bl_node *n, const char *scope, bl_pg_cb cb, void *ud)
{
    if (!cb) return BL_EINVAL;
    pg_scope *s = scope_of(n, scope);
    if (!s) return BL_ENOPROC;
    pg_mon *m = calloc(1, sizeof(*m));
    if (!m) return BL_ENOMEM;
    m->id = ++s->next_mon;
    m->cb = cb;
    m->ud = ud;
    LL_APPEND(s->mons, m);
    return m->id;
}

void bl_pg_demonitor(bl_node *n, const char *scope, int id)
{
    pg_scope *s = scope_of(n, scope);
    if (!s) return;
    pg_mon *m, *t;
    LL_FOREACH_SAFE(s->mons, m, t) {
        if (m->id != id) continue;
        if (s->firing) {
            m->cb = NULL;
        } else {
            LL_DELETE(s->mons, m);
            free(m);
        }
    }
}
