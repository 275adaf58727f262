/* pg.c - OTP pg scopes on a beamlet node (docs/services.md, "pg groups"; include/beamlet/pg.h).
 *
 * A scope is a registered process named like the scope atom. It keeps one table of memberships
 * (group, pid, count) and reaches two kinds of peers:
 *  - beamlet members of our cluster (live, per the membership layer): through the shared
 *    replication layer (repl.c, tags bl_pg_*): each local (group, pid) is one entry with its
 *    join count, replicated per owner; buckets, owner checks, repair by digest and the
 *    full-sync-after-a-failed-send rule are the layer's;
 *  - every other node (BEAM, or a beamlet node outside our cluster): kernel/src/pg.erl's protocol
 *    exactly, so BEAM's pg treats us as one more pg peer:
 *      out: {discover, Self} to {Scope, Node} at start and on every nodeup (BEAM never discovers
 *           a hidden node itself); {'$gen_cast', {sync, Self, [{Group, [Pid]}]}} in answer to a
 *           discover (and to a peer first seen through its sync); {join, Self, Group, Pid} and
 *           {leave, Self, Pid, [Group]} to every such peer.
 *      in:  discover, sync, join, leave; nothing else is ever sent to such a peer.
 *    A wrong message (or a leave for a group BEAM never saw us join) crashes BEAM's scope, hence
 *    a peer only gets join/leave after it got our full sync, and after a failed send only a full
 *    sync (retried on a timer): sync replaces everything a pg peer knows of us. Its members are
 *    kept per peer scope pid, dropped on nodedown or when another scope process of its node
 *    appears. A node that becomes a live member is dropped from these peers (the layer takes
 *    over), and pg messages from a member are ignored.
 * Local members are linked to the scope (which traps exits): a member that ends leaves its groups
 * at once. */
#include "../runtime/internal.h"
#include "../dist/term.h"
#include "beamlet/cluster.h"
#include "beamlet/pg.h"
#include "dispatch.h"
#include "repl.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RESYNC_MS 200u
#define MAX_COUNT 1000000 /* joins of one pid to one group a replica accepts */

typedef struct pidvec {
    bl_pid *v;
    int n, cap;
} pidvec;

/* Members of one group at one pg peer: keyed by the group's encoded bytes. */
typedef struct pg_group {
    UT_hash_handle hh;
    char *key;
    int klen;
    pidvec pids;
} pg_group;

/* A node reached through pg's own protocol (BEAM, or not a member of our cluster). */
typedef struct pg_peer {
    struct pg_peer *next;
    bl_pid scope;     /* the peer's scope process */
    pg_group *groups; /* its members */
    int need_sync;    /* a send failed: only a full sync may go next */
} pg_peer;

struct pg_tgroup;

/* One membership of the table: pid joined group count times; local, or replicated from the
 * pid's node through repl.c. */
typedef struct pg_ent {
    UT_hash_handle hh; /* in scope->ents, keyed by group bytes + pid encoding */
    bl__repl_link link;
    struct pg_ent *prev, *next; /* in its group */
    struct pg_tgroup *grp;
    char *key;
    int klen;
    bl_pid pid;
    int count;
    int local;
} pg_ent;

#define PG_ENT(l) ((pg_ent *)((char *)(l)-offsetof(pg_ent, link)))

/* A group of the table: keyed by its canonical encoding. */
typedef struct pg_tgroup {
    UT_hash_handle hh;
    char *key;
    int klen;
    pg_ent *ents;
    int nlocal; /* local memberships (sum of their counts) */
} pg_tgroup;

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
    pg_tgroup *groups; /* the table: local and replicated memberships */
    pg_ent *ents;
    bl__repl *repl; /* NULL on a node without a cluster layer */
    pg_peer *peers; /* pg-protocol peers */
    pg_mon *mons;
    int next_mon;
    pg_ev *evq_head, *evq_tail;
    int firing;
    int nodemon_id, cluster_sub;
    int resync_timer;
    ei_x_buff gkey; /* scratch: a group's canonical encoding */
    ei_x_buff ekey; /* scratch: an entry's key */
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
        if (bl_pid_equal(&pv->v[i], pid)) {
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
        if (bl_pid_equal(&pv->v[i], pid)) k++;
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
    if (bl__skip_term(buf, &j) < 0 || ei_x_append_buf(x, buf + *idx, j - *idx) < 0) return -1;
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

/* ---- the membership table ---- */

static void ev_push_n(pg_scope *s, bl_pg_event ev, const char *group, int glen, const bl_pid *pid,
                      int k)
{
    if (!s->mons || k <= 0) return;
    bl_pid one[4], *v = k <= 4 ? one : malloc(sizeof(bl_pid) * (size_t)k);
    if (!v) {
        bl_log(s->n, BL_LOG_WARN, "pg %s: out of memory, a monitor event was lost", s->name);
        return;
    }
    for (int i = 0; i < k; i++)
        v[i] = *pid;
    ev_push(s, ev, group, glen, v, k);
    if (v != one) free(v);
}

static pg_tgroup *tg_find(pg_scope *s, const char *key, int klen)
{
    pg_tgroup *g = NULL;
    HASH_FIND(hh, s->groups, key, (unsigned)klen, g);
    return g;
}

/* The key of (group, pid) into s->ekey. */
static int ent_key(pg_scope *s, const char *g, int glen, const bl_pid *pid)
{
    s->ekey.index = 0;
    return ei_x_append_buf(&s->ekey, g, glen) < 0 || bl_x_encode_pid(&s->ekey, pid) < 0 ? -1 : 0;
}

static pg_ent *ent_find(pg_scope *s, const char *g, int glen, const bl_pid *pid)
{
    pg_ent *e = NULL;
    if (ent_key(s, g, glen, pid) < 0) return NULL;
    HASH_FIND(hh, s->ents, s->ekey.buff, (unsigned)s->ekey.index, e);
    return e;
}

/* A new membership with count 0 (the caller sets it). NULL on ENOMEM. */
static pg_ent *ent_new(pg_scope *s, const char *g, int glen, const bl_pid *pid, int local)
{
    if (ent_key(s, g, glen, pid) < 0) return NULL;
    pg_ent *e = calloc(1, sizeof(*e));
    if (!e || !(e->key = malloc((size_t)s->ekey.index))) {
        free(e);
        return NULL;
    }
    pg_tgroup *tg = tg_find(s, g, glen);
    if (!tg) {
        if (!(tg = calloc(1, sizeof(*tg))) || !(tg->key = malloc((size_t)glen))) {
            free(tg);
            free(e->key);
            free(e);
            return NULL;
        }
        memcpy(tg->key, g, (size_t)glen);
        tg->klen = glen;
        HASH_ADD_KEYPTR(hh, s->groups, tg->key, (unsigned)glen, tg);
    }
    memcpy(e->key, s->ekey.buff, (size_t)s->ekey.index);
    e->klen = s->ekey.index;
    e->pid = *pid;
    e->local = local;
    e->grp = tg;
    HASH_ADD_KEYPTR(hh, s->ents, e->key, (unsigned)e->klen, e);
    DL_APPEND(tg->ents, e);
    return e;
}

/* Out of the table (the caller took it out of its replication bucket). */
static void ent_free(pg_scope *s, pg_ent *e)
{
    pg_tgroup *tg = e->grp;
    HASH_DEL(s->ents, e);
    DL_DELETE(tg->ents, e);
    if (e->local) tg->nlocal -= e->count;
    free(e->key);
    free(e);
    if (!tg->ents) {
        HASH_DEL(s->groups, tg);
        free(tg->key);
        free(tg);
    }
}

static int c_peer(const pg_scope *s, const char *node)
{
    return bl__repl_is_peer(s->repl, node);
}

/* ---- beamlet members: through the replication layer ----
 * Entry {Group, Pid, Count} (Pid a process of the owner node), key {Group, Pid}. */

static int term_span(pg_scope *s, const char *buf, int *idx, const char **start, int *len);

static int p_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    const pg_ent *e = PG_ENT(l);
    return ei_x_encode_tuple_header(x, 3) < 0 ||
                   ei_x_append_buf(x, e->grp->key, e->grp->klen) < 0 ||
                   bl_x_encode_pid(x, &e->pid) < 0 || ei_x_encode_long(x, e->count) < 0
               ? -1
               : 0;
}

static int p_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    const pg_ent *e = PG_ENT(l);
    return ei_x_encode_tuple_header(x, 2) < 0 ||
                   ei_x_append_buf(x, e->grp->key, e->grp->klen) < 0 ||
                   bl_x_encode_pid(x, &e->pid) < 0
               ? -1
               : 0;
}

static int p_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    pg_scope *s = svc;
    const char *g;
    int ta, glen;
    bl_pid pid;
    long count;
    *out = NULL;
    if (ei_decode_tuple_header(buf, idx, &ta) < 0 || ta != 3 ||
        term_span(s, buf, idx, &g, &glen) < 0 || bl_decode_pid(s->n, buf, idx, &pid) < 0 ||
        ei_decode_long(buf, idx, &count) < 0 || count < 1 || count > MAX_COUNT ||
        strcmp(bl_pid_node(&pid), owner) != 0)
        return -1; /* a member's entries are its own processes */
    pg_ent *e = ent_find(s, g, glen, &pid);
    if (e && e->local) return -1;
    int old = e ? e->count : 0;
    if (!e && !(e = ent_new(s, g, glen, &pid, 0))) return 0;
    e->count = (int)count;
    if (count > old)
        ev_push_n(s, BL_PG_JOIN, e->grp->key, e->grp->klen, &pid, (int)count - old);
    else
        ev_push_n(s, BL_PG_LEAVE, e->grp->key, e->grp->klen, &pid, old - (int)count);
    *out = &e->link;
    return 0;
}

static int p_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    pg_scope *s = svc;
    const char *g;
    int ta, glen;
    bl_pid pid;
    *out = NULL;
    if (ei_decode_tuple_header(buf, idx, &ta) < 0 || ta != 2 ||
        term_span(s, buf, idx, &g, &glen) < 0 || bl_decode_pid(s->n, buf, idx, &pid) < 0)
        return -1;
    pg_ent *e = strcmp(bl_pid_node(&pid), owner) ? NULL : ent_find(s, g, glen, &pid);
    if (e && !e->local) *out = &e->link;
    return 0;
}

static int p_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    (void)why;
    pg_scope *s = svc;
    pg_ent *e = PG_ENT(l);
    ev_push_n(s, BL_PG_LEAVE, e->grp->key, e->grp->klen, &e->pid, e->count);
    ent_free(s, e);
    return 0;
}

static void ev_fire(pg_scope *s);

static void p_owner_gone(void *svc, const char *owner, unsigned n, const char *why)
{
    pg_scope *s = svc;
    if (n)
        bl_log(s->n, BL_LOG_DEBUG, "pg %s: %u members of %s dropped (%s)", s->name, n, owner, why);
    ev_fire(s);
}

static const bl__repl_ops pg_repl = {
    .proc_name = BL_PG_DEFAULT_SCOPE, /* each scope replicates to its own name */
    .tag_add = "bl_pg_add",
    .tag_del = "bl_pg_del",
    .tag_sync = "bl_pg_sync",
    .tag_want = "bl_pg_want",
    .tag_digest = "bl_pg_digest",
    .encode = p_encode,
    .encode_key = p_encode_key,
    .upsert = p_upsert,
    .find = p_find,
    .remove = p_remove,
    .owner_gone = p_owner_gone,
    .drop_on_nodedown = 1,
};

/* ---- pg peers: kernel/src/pg.erl's protocol ---- */

static pg_peer *peer_find(pg_scope *s, const bl_pid *pid)
{
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if (bl_pid_equal(&p->scope, pid)) return p;
    }
    return NULL;
}

static void peer_drop(pg_scope *s, pg_peer *p, const char *why)
{
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: dropping peer on %s (%s)", s->name, bl_pid_node(&p->scope),
           why);
    pg_group *g, *t;
    HASH_ITER(hh, p->groups, g, t) {
        ev_push(s, BL_PG_LEAVE, g->key, g->klen, g->pids.v, g->pids.n);
        grp_del(&p->groups, g);
    }
    LL_DELETE(s->peers, p);
    free(p);
}

/* Drop the pg peers of node (nodedown, or it is a member now: the layer has its members). */
static void peers_drop_node(pg_scope *s, const char *node, const char *why)
{
    pg_peer *p, *t;
    LL_FOREACH_SAFE(s->peers, p, t) {
        if (strcmp(bl_pid_node(&p->scope), node) == 0) peer_drop(s, p, why);
    }
}

static pg_peer *peer_add(pg_scope *s, const bl_pid *pid)
{
    /* one scope per name and node: an older process of that node has ended */
    peers_drop_node(s, bl_pid_node(pid), "replaced");
    pg_peer *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->scope = *pid;
    LL_APPEND(s->peers, p);
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: new peer on %s", s->name, bl_pid_node(pid));
    return p;
}

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
           bl_pid_node(&p->scope), bl_strerror(rc));
    p->need_sync = 1;
    arm_resync(s);
}

static void broadcast(pg_scope *s, const ei_x_buff *x)
{
    pg_peer *p, *t;
    LL_FOREACH_SAFE(s->peers, p, t) {
        if (c_peer(s, bl_pid_node(&p->scope)))
            peer_drop(s, p, "member");
        else if (!p->need_sync)
            send_peer(s, p, x);
    }
}

/* [{Group, [Pid]}] of the local members, one proper list each. */
static int encode_local_groups(pg_scope *s, ei_x_buff *x)
{
    pg_tgroup *g, *t;
    long count = 0;
    HASH_ITER(hh, s->groups, g, t)
        count += g->nlocal > 0;
    if (count && ei_x_encode_list_header(x, count) < 0) return -1;
    HASH_ITER(hh, s->groups, g, t) {
        if (g->nlocal <= 0) continue;
        if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_append_buf(x, g->key, g->klen) < 0 ||
            ei_x_encode_list_header(x, g->nlocal) < 0)
            return -1;
        pg_ent *e;
        DL_FOREACH(g->ents, e) {
            for (int i = 0; e->local && i < e->count; i++)
                if (bl_x_encode_pid(x, &e->pid) < 0) return -1;
        }
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
        bl_x_encode_pid(&x, bl_self(s->proc)) == 0 && encode_local_groups(s, &x) == 0) {
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
        bl_x_encode_pid(x, bl_self(s->proc)) < 0) {
        ei_x_free(x);
        return -1;
    }
    return 0;
}

static void discover_node(pg_scope *s, const char *node)
{
    if (bl_is_local_node(s->n, node) || bl_is_tool_node(node) || c_peer(s, node) ||
        bl_is_plain_peer(s->n, node)) /* an ei program runs no pg */
        return;
    ei_x_buff x;
    if (encode_discover(s, &x) < 0) return;
    int rc = bl_send_name(s->proc, s->name, node, x.buff, x.index);
    if (rc != BL_OK)
        bl_log(s->n, BL_LOG_WARN, "pg %s: discover to %s failed: %s", s->name, node,
               bl_strerror(rc));
    ei_x_free(&x);
}

/* {join, Self, Group, Pid} */
static void broadcast_join(pg_scope *s, const char *group, int glen, const bl_pid *pid)
{
    if (!s->peers) return;
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    if (ei_x_encode_tuple_header(&x, 4) == 0 && ei_x_encode_atom(&x, "join") == 0 &&
        bl_x_encode_pid(&x, bl_self(s->proc)) == 0 && ei_x_append_buf(&x, group, glen) == 0 &&
        bl_x_encode_pid(&x, pid) == 0)
        broadcast(s, &x);
    ei_x_free(&x);
}

/* {leave, Self, Pid, [Group...]} (groups_list: an encoded proper list) */
static void broadcast_leave(pg_scope *s, const bl_pid *pid, const ei_x_buff *groups_list)
{
    if (!s->peers) return;
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0) return;
    if (ei_x_encode_tuple_header(&x, 4) == 0 && ei_x_encode_atom(&x, "leave") == 0 &&
        bl_x_encode_pid(&x, bl_self(s->proc)) == 0 && bl_x_encode_pid(&x, pid) == 0 &&
        ei_x_append_buf(&x, groups_list->buff, groups_list->index) == 0)
        broadcast(s, &x);
    ei_x_free(&x);
}

/* ---- decoding ---- */

/* A pid or a proper list of pids. */
static int decode_pids(bl_node *n, const char *buf, int *idx, pidvec *out)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
    if (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT) {
        bl_pid pid;
        if (bl_decode_pid(n, buf, idx, &pid) < 0) return -1;
        return pv_push(out, &pid) == BL_OK ? 0 : -1;
    }
    bl__list_it it;
    int more;
    if (bl__list_begin(&it, buf, idx) < 0) return -1;
    while ((more = bl__list_next(&it)) > 0) {
        bl_pid pid;
        if (bl_decode_pid(n, buf, idx, &pid) < 0 || pv_push(out, &pid) != BL_OK) return -1;
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

/* ---- pg protocol handlers ---- */

static void on_discover(pg_scope *s, const bl_pid *peer)
{
    if (bl__pid_is_local(s->n, peer) || c_peer(s, bl_pid_node(peer))) return;
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
        bl_decode_pid(s->n, buf, &idx, &peer) < 0 || bl__pid_is_local(s->n, &peer)) {
        bl_log(s->n, BL_LOG_DEBUG, "pg %s: unexpected cast dropped", s->name);
        return;
    }
    if (c_peer(s, bl_pid_node(&peer))) return; /* a member: its members come through the layer */
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
        if (!grp || decode_pids(s->n, buf, &idx, &grp->pids) < 0) goto bad;
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
    bl_log(s->n, BL_LOG_WARN, "pg %s: malformed sync from %s dropped", s->name, bl_pid_node(&peer));
}

/* {join, Peer, Group, PidOrPids} */
static void on_join(pg_scope *s, const char *buf, int idx)
{
    bl_pid peer;
    const char *g;
    int glen;
    pidvec pids = {0};
    if (bl_decode_pid(s->n, buf, &idx, &peer) < 0 || term_span(s, buf, &idx, &g, &glen) < 0 ||
        decode_pids(s->n, buf, &idx, &pids) < 0)
        goto done;
    pg_peer *p = peer_find(s, &peer);
    if (!p || c_peer(s, bl_pid_node(&peer)))
        goto done; /* not (or no longer) in our overlay, as pg does */
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
    if (bl_decode_pid(s->n, buf, &idx, &peer) < 0 || decode_pids(s->n, buf, &idx, &pids) < 0)
        goto done;
    pg_peer *p = peer_find(s, &peer);
    if (!p || c_peer(s, bl_pid_node(&peer)) || bl__list_begin(&it, buf, &idx) < 0) goto done;
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
    if (s->repl && bl__repl_handle(s->repl, msg)) {
        ev_fire(s);
        return;
    }
    const char *buf = msg->buf;
    int idx = msg->index, arity;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) == 0 && ei_decode_atom(buf, &idx, a) == 0) {
        if (arity == 2 && !strcmp(a, "discover")) {
            bl_pid peer;
            if (bl_decode_pid(s->n, buf, &idx, &peer) == 0) on_discover(s, &peer);
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
    pg_ent *e, *t;
    HASH_ITER(hh, s->ents, e, t) {
        if (e->local && bl_pid_equal(&e->pid, pid)) k += e->count;
    }
    return k;
}

/* A local membership leaves the table: replicated as a del, out of the bucket. */
static void local_drop(pg_scope *s, pg_ent *e)
{
    bl__repl_local_del(s->repl, &e->link);
    bl__repl_unlink(s->repl, &e->link);
    ent_free(s, e);
}

/* A member ended: leave exactly its groups (one entry per join, as pg's own 'DOWN' does). */
static void member_gone(pg_scope *s, const bl_pid *pid)
{
    int joined = local_memberships(s, pid);
    if (!joined) return;
    ei_x_buff groups;
    int ok = ei_x_new(&groups) == 0;
    ok = ok && ei_x_encode_list_header(&groups, joined) == 0;
    pg_ent *e, *t;
    HASH_ITER(hh, s->ents, e, t) {
        if (!e->local || !bl_pid_equal(&e->pid, pid)) continue;
        for (int i = 0; ok && i < e->count; i++)
            ok = ei_x_append_buf(&groups, e->grp->key, e->grp->klen) == 0;
        ev_push_n(s, BL_PG_LEAVE, e->grp->key, e->grp->klen, pid, e->count);
        local_drop(s, e);
    }
    if (ok && ei_x_encode_empty_list(&groups) == 0)
        broadcast_leave(s, pid, &groups);
    else
        bl_log(s->n, BL_LOG_WARN, "pg %s: out of memory: a leave was not sent", s->name);
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

/* ---- reading the table ---- */

/* Members of group: the table's (local first), then the pg peers'. */
static int collect_members(pg_scope *s, const char *g, int glen, int local_only, pidvec *out)
{
    pg_tgroup *tg = tg_find(s, g, glen);
    pg_ent *e;
    if (tg)
        for (int pass = 0; pass < 2; pass++)
            DL_FOREACH(tg->ents, e) {
                if (e->local != !pass || (local_only && !e->local)) continue;
                for (int i = 0; i < e->count; i++)
                    if (pv_push(out, &e->pid) != BL_OK) return BL_ENOMEM;
            }
    if (local_only) return BL_OK;
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        pg_group *grp = grp_find(p->groups, g, glen);
        if (!grp || c_peer(s, bl_pid_node(&p->scope))) continue;
        for (int i = 0; i < grp->pids.n; i++)
            if (pv_push(out, &grp->pids.v[i]) != BL_OK) return BL_ENOMEM;
    }
    return BL_OK;
}

static int encode_pidvec(ei_x_buff *r, const pidvec *pv)
{
    if (pv->n && ei_x_encode_list_header(r, pv->n) < 0) return -1;
    for (int i = 0; i < pv->n; i++)
        if (bl_x_encode_pid(r, &pv->v[i]) < 0) return -1;
    return ei_x_encode_empty_list(r);
}

static int encode_members(pg_scope *s, ei_x_buff *r, const char *g, int glen, int local_only)
{
    pidvec pv = {0};
    int rc = collect_members(s, g, glen, local_only, &pv) == BL_OK ? encode_pidvec(r, &pv) : -1;
    free(pv.v);
    return rc;
}

/* [Group]: each group with members once. */
static int encode_groups(pg_scope *s, ei_x_buff *r, int local_only)
{
    pg_group *seen = NULL, *sg;
    pg_tgroup *g, *t;
    int rc = -1;
    HASH_ITER(hh, s->groups, g, t) {
        if ((local_only ? g->nlocal > 0 : g->ents != NULL) && !grp_get(&seen, g->key, g->klen))
            goto out;
    }
    pg_peer *p;
    LL_FOREACH(s->peers, p) {
        if (local_only || c_peer(s, bl_pid_node(&p->scope))) continue;
        pg_group *pgp, *pt;
        HASH_ITER(hh, p->groups, pgp, pt) {
            if (pgp->pids.n && !grp_get(&seen, pgp->key, pgp->klen)) goto out;
        }
    }
    unsigned count = HASH_COUNT(seen);
    if (count && ei_x_encode_list_header(r, (long)count) < 0) goto out;
    for (sg = seen; sg; sg = sg->hh.next)
        if (ei_x_append_buf(r, sg->key, sg->klen) < 0) goto out;
    rc = ei_x_encode_empty_list(r);
out:
    grp_free_all(&seen);
    return rc;
}

static int encode_peers(pg_scope *s, ei_x_buff *r)
{
    pidvec pv = {0};
    pg_peer *p;
    int rc = 0;
    LL_FOREACH(s->peers, p) {
        if (!c_peer(s, bl_pid_node(&p->scope)) && pv_push(&pv, &p->scope) != BL_OK) rc = -1;
    }
    if (rc == 0) rc = encode_pidvec(r, &pv);
    free(pv.v);
    return rc;
}

/* ---- requests: gen_server calls to the scope ---- */

static int encode_error(ei_x_buff *r, const char *why)
{
    return ei_x_encode_tuple_header(r, 2) < 0 || ei_x_encode_atom(r, "error") < 0 ||
                   ei_x_encode_atom(r, why) < 0
               ? -1
               : 0;
}

static int req_which_groups(void *svc, const bl_from *from, const char *buf, int j, int arity,
                            ei_x_buff *r)
{
    (void)from, (void)buf, (void)j, (void)arity;
    return encode_groups(svc, r, 0);
}

static int req_which_local_groups(void *svc, const bl_from *from, const char *buf, int j, int arity,
                                  ei_x_buff *r)
{
    (void)from, (void)buf, (void)j, (void)arity;
    return encode_groups(svc, r, 1);
}

static int req_peers(void *svc, const bl_from *from, const char *buf, int j, int arity,
                     ei_x_buff *r)
{
    (void)from, (void)buf, (void)j, (void)arity;
    return encode_peers(svc, r);
}

static int get_members_req(pg_scope *s, const char *buf, int j, ei_x_buff *r, int local_only)
{
    const char *g;
    int glen;
    if (term_span(s, buf, &j, &g, &glen) < 0) return encode_error(r, "badarg");
    return encode_members(s, r, g, glen, local_only);
}

static int req_get_members(void *svc, const bl_from *from, const char *buf, int j, int arity,
                           ei_x_buff *r)
{
    (void)from, (void)arity;
    return get_members_req(svc, buf, j, r, 0);
}

static int req_get_local_members(void *svc, const bl_from *from, const char *buf, int j, int arity,
                                 ei_x_buff *r)
{
    (void)from, (void)arity;
    return get_members_req(svc, buf, j, r, 1);
}

/* {join_local, Group, PidOrPids} / {leave_local, ...}, as OTP's pg:join/3 and pg:leave/3 call
 * their own node's scope: the pids must be live processes of this node. */
static int local_req(pg_scope *s, const char *buf, int j, ei_x_buff *r, int join)
{
    int g0 = j, changed = 0;
    pidvec pv = {0};
    if (bl__skip_term(buf, &j) < 0) return encode_error(r, "badarg");
    int glen = j - g0, rc = decode_pids(s->n, buf, &j, &pv);
    for (int i = 0; rc == 0 && i < pv.n; i++) {
        bl_proc *p = bl_proc_by_pid(s->n, &pv.v[i]);
        if (!p || p->dead) rc = -1;
    }
    for (int i = 0; rc == 0 && i < pv.n; i++) {
        bl_proc *p = bl_proc_by_pid(s->n, &pv.v[i]);
        int k =
            join ? bl_pg_join(p, s->name, buf + g0, glen) : bl_pg_leave(p, s->name, buf + g0, glen);
        if (k == BL_OK)
            changed++;
        else if (k != BL_PG_NOT_JOINED)
            rc = -1;
    }
    free(pv.v);
    if (rc < 0) return encode_error(r, "badarg");
    return ei_x_encode_atom(r, join || changed ? "ok" : "not_joined") < 0 ? -1 : 0;
}

static int req_join_local(void *svc, const bl_from *from, const char *buf, int j, int arity,
                          ei_x_buff *r)
{
    (void)from, (void)arity;
    return local_req(svc, buf, j, r, 1);
}

static int req_leave_local(void *svc, const bl_from *from, const char *buf, int j, int arity,
                           ei_x_buff *r)
{
    (void)from, (void)arity;
    return local_req(svc, buf, j, r, 0);
}

static const bl__req REQUESTS[] = {
    {"which_groups", 0, 0, req_which_groups},
    {"which_local_groups", 0, 0, req_which_local_groups},
    {"get_members", 2, 2, req_get_members},
    {"get_local_members", 2, 2, req_get_local_members},
    {"join_local", 3, 3, req_join_local},
    {"leave_local", 3, 3, req_leave_local},
    {"peers", 0, 0, req_peers},
};

static int scope_call(bl_proc *self, const bl_from *from, const char *buf, int idx,
                      ei_x_buff *reply, void *ud)
{
    (void)self;
    int rc = bl__req_dispatch(REQUESTS, sizeof(REQUESTS) / sizeof(REQUESTS[0]), ud, from, buf, idx,
                              reply);
    return rc == BL__REQ_NONE ? encode_error(reply, "unknown_request") : rc;
}

/* ---- node events and lifecycle ---- */

static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    pg_scope *s = ud;
    if (ev == BL_NODEUP) {
        discover_node(s, node); /* a member gets the layer's exchange instead */
        return;
    }
    peers_drop_node(s, node, "nodedown");
    ev_fire(s);
}

/* A node that is a live member now: what we held of it as a pg peer goes (the layer's exchange
 * brings its members). A beamlet node that stopped being one (failed, left, forgotten) while
 * still connected is a pg peer like any other node: discovered again. */
static void on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    pg_scope *s = ud;
    if (c_peer(s, ev->node)) {
        if (!s->peers) return;
        peers_drop_node(s, ev->node, "member");
        ev_fire(s);
        return;
    }
    int gone =
        ev->type == BL_EV_NODE_LEFT || (ev->type == BL_EV_NODE_STATE_CHANGED &&
                                        (ev->to == BL_MEMBER_FAILED || ev->to == BL_MEMBER_LEFT));
    if (gone && strcmp(ev->role, "beam") && bl_is_connected(n, ev->node))
        discover_node(s, ev->node);
}

static void scope_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    pg_scope *s = ud;
    bl_log(s->n, BL_LOG_DEBUG, "pg %s: scope ends (%s)", s->name, reason);
    bl_demonitor_nodes(s->n, s->nodemon_id);
    if (s->cluster_sub > 0) bl_cluster_unsubscribe(s->n, s->cluster_sub);
    if (s->resync_timer > 0) bl_timer_cancel(s->n, s->resync_timer);
    bl__repl_free(s->repl); /* buckets only: the entries are freed below */
    pg_ent *e, *t;
    HASH_ITER(hh, s->ents, e, t)
        ent_free(s, e);
    while (s->peers) {
        pg_peer *p = s->peers;
        s->peers = p->next;
        grp_free_all(&p->groups);
        free(p);
    }
    while (s->evq_head) {
        pg_ev *q = s->evq_head;
        s->evq_head = q->next;
        free(q->group);
        free(q->pids.v);
        free(q);
    }
    while (s->mons) {
        pg_mon *m = s->mons;
        s->mons = m->next;
        free(m);
    }
    ei_x_free(&s->gkey);
    ei_x_free(&s->ekey);
    free(s);
}

static const bl_proc_ops scope_ops = {.on_msg = scope_msg,
                                      .on_call = scope_call,
                                      .on_cast = scope_cast,
                                      .on_exit = scope_exit,
                                      .on_terminate = scope_terminate};

static void discover_one(bl_node *n, const char *node, void *ud)
{
    (void)n;
    discover_node(ud, node);
}

int bl_pg_start_scope(bl_node *n, const char *scope)
{
    if (!n || !scope || !scope[0] || strlen(scope) >= BL_NAME_LEN) return BL_EINVAL;
    if (bl_whereis(n, scope)) return BL_EEXIST;
    pg_scope *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->n = n;
    snprintf(s->name, sizeof(s->name), "%s", scope);
    if (ei_x_new(&s->gkey) < 0 || ei_x_new(&s->ekey) < 0) {
        ei_x_free(&s->gkey);
        free(s);
        return BL_ENOMEM;
    }
    int rc = bl_spawn(n, scope, &scope_ops, s, &s->proc);
    if (rc != BL_OK) {
        ei_x_free(&s->gkey);
        ei_x_free(&s->ekey);
        free(s);
        return rc;
    }
    bl_trap_exit(s->proc, 1);
    s->nodemon_id = bl_monitor_nodes(n, on_node, s);
    if (n->cluster) {
        s->cluster_sub = bl_cluster_subscribe(n, on_cluster, s);
        s->repl = bl__repl_new_named(n, s->proc, &pg_repl, s, scope);
    }
    if (s->nodemon_id < 0 || s->cluster_sub < 0 || (n->cluster && !s->repl)) {
        bl_exit(s->proc, "shutdown"); /* frees s */
        return BL_ENOMEM;
    }
    /* nodes already connected (a scope started after the node): members get our sync and a
     * want, the others a discover */
    bl__repl_exchange_all(s->repl);
    bl__each_connected(n, discover_one, s);
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
    int first = !local_memberships(s, &p->pid);
    if (first && (rc = bl_link(s->proc, &p->pid)) != BL_OK) return rc;
    pg_ent *e = ent_find(s, group, glen, &p->pid);
    if (!e && !(e = ent_new(s, group, glen, &p->pid, 1))) {
        if (first) bl_unlink(s->proc, &p->pid);
        return BL_ENOMEM;
    }
    e->count++;
    e->grp->nlocal++;
    if (s->repl && bl__repl_local_put(s->repl, &e->link) != BL_OK)
        bl_log(s->n, BL_LOG_WARN, "pg %s: a join was not replicated (out of memory)", s->name);
    broadcast_join(s, e->grp->key, e->grp->klen, &p->pid);
    ev_push(s, BL_PG_JOIN, e->grp->key, e->grp->klen, &p->pid, 1);
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
    pg_ent *e = ent_find(s, group, glen, &p->pid);
    if (!e || !e->local) return BL_PG_NOT_JOINED;
    ev_push(s, BL_PG_LEAVE, e->grp->key, e->grp->klen, &p->pid, 1);
    ei_x_buff groups;
    int ok = ei_x_new(&groups) == 0;
    ok = ok && ei_x_encode_list_header(&groups, 1) == 0 &&
         ei_x_append_buf(&groups, e->grp->key, e->grp->klen) == 0 &&
         ei_x_encode_empty_list(&groups) == 0;
    e->count--;
    e->grp->nlocal--;
    if (e->count == 0)
        local_drop(s, e);
    else if (s->repl && bl__repl_local_put(s->repl, &e->link) != BL_OK)
        bl_log(s->n, BL_LOG_WARN, "pg %s: a leave was not replicated (out of memory)", s->name);
    if (!local_memberships(s, &p->pid)) bl_unlink(s->proc, &p->pid);
    if (ok)
        broadcast_leave(s, &p->pid, &groups);
    else
        bl_log(s->n, BL_LOG_WARN, "pg %s: out of memory: a leave was not sent", s->name);
    ei_x_free(&groups);
    ev_fire(s);
    return BL_OK;
}

static int members(bl_node *n, const char *scope, const char *group, int glen, bl_pid *out, int max,
                   int local_only)
{
    pg_scope *s = scope_of(n, scope);
    if (!s) return BL_ENOPROC;
    int rc = check_group(s, &group, &glen);
    if (rc != BL_OK) return rc;
    pidvec pv = {0};
    rc = collect_members(s, group, glen, local_only, &pv);
    if (rc == BL_OK) {
        for (int i = 0; out && i < pv.n && i < max; i++)
            out[i] = pv.v[i];
        rc = pv.n;
    }
    free(pv.v);
    return rc;
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
