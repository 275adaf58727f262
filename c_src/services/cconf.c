/* cconf.c - cluster configuration (docs/configuration.md, "Cluster configuration"): a versioned
 * key/value document of cluster settings, changed through the leader, held by every member.
 *
 * The document: (term, version, {key: value text}, recent history). Every node owns one entry
 * on the replicated-table layer (repl.h): its own copy of the document. So the copies travel,
 * are repaired by digest and are dropped with a failed member by the shared layer, and every
 * node sees which version every other member holds. A node adopts a copy newer than its own
 * (higher term, then higher version): it applies the keys that changed - live keys at once
 * through bl_config_apply, the others recorded as needing a restart -, records the history,
 * tells its watchers, persists the document in its store and announces its new copy.
 *
 * Writes ({set, Key, Value, Who}, {unset, Key, Who}) go to the leader among the coordinators
 * (a node that is not the leader forwards them). The leader checks the key is a cluster key
 * and the value passes the same rules as the configuration file (bl_config_check, then the
 * rules between keys), raises the version and answers {ok, Map} (state committed) once a
 * majority of the coordinators hold the new version. If no majority holds it WRITE_TIMEOUT_MS
 * after the write reached the leader, the answer is {pending, Map} (state pending): the leader
 * holds it and goes on offering it, but a new leader may roll it back; {status, Version, Term}
 * tells later which it became. With no leader - the minority side of a partition - writes are
 * refused.
 *
 * A new leader first catches up: it waits until it holds the copies of a majority of the
 * coordinators (one of them has every acknowledged version), adopts the newest, and re-stamps it
 * with a document term above every copy it saw (writes that arrive meanwhile wait). That also
 * rolls back a write an old leader could not get acknowledged: the new stamp wins over it
 * everywhere. The document's term is its own epoch, persisted with it, not the election's term
 * (which starts at 1 again when the whole cluster restarts).
 *
 * Protocol of the registered process `beamlet_config` (gen_server:call):
 *   get | {get, Key}             -> #{term, version, leader, settings => [#{key, value, live,
 *                                    applied}]} | {error, Message}
 *   {set, Key, Value, Who}       -> {ok, #{version, key, value, live}} | {error, Message}
 *   {unset, Key, Who}            -> {ok, #{version, key, value => undefined, live}} | {error,
 * Message} history | {history, Key}     -> [#{version, term, key, old, new, who, at}] newest first
 *   {watch, Pid} | {unwatch, Pid} -> ok; Pid then gets {beamlet_config, Change} per change;
 *                                    at most WATCHERS_MAX per node ({error, Message} beyond);
 *                                    a remote watcher is monitored: one that ends, or whose
 *                                    node goes down, is dropped (its slot free at once)
 *   {status, Version} | {status, Version, Term}
 *                                -> #{version, term, state => committed | pending | lost |
 *                                    unknown, holders, needed, current_version, key}
 * Keys and values: binaries (or atoms/strings); Message: a binary naming the key. Map of a
 * write: #{version, term, key, value, live, changed, state, holders, needed}. */
#include "../runtime/internal.h"
#include "../runtime/jsonterm.h"
#include "../runtime/decode.h"
#include "../store/store.h"
#include "beamlet/cluster.h"
#include "beamlet/config.h"
#include "cconf.h"
#include "repl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CNAME "beamlet_config"
#define TICK_MS 200u
#define WRITE_TIMEOUT_MS 5000u
#define HIST_WIRE 32  /* history records carried in each copy */
#define HIST_KEEP 256 /* kept per node (memory and store) */
#define MAX_VALUE 8192
#define WATCHERS_MAX 256 /* {watch, Pid} per node */

typedef struct peer {
    UT_hash_handle hh;
    bl__repl_link link;
    char owner[BL_NODE_LEN];
    unsigned long long term, version;
    json_t *kv, *hist;
} peer;

typedef struct pending { /* a write waiting for a majority */
    struct pending *next;
    bl_from from;
    unsigned long long term, version;
    unsigned long long deadline_ms;
    json_t *answer; /* the {ok, Map} body, as JSON */
} pending;

typedef struct fwd { /* a write forwarded to the leader */
    struct fwd *next;
    bl_from from;
} fwd;

typedef struct held { /* a write that came while the new leader was catching up */
    struct held *next;
    bl_from from;
    char key[128], who[256];
    char *value; /* NULL: unset */
    unsigned long long deadline_ms;
} held;

typedef struct watcher {
    struct watcher *next;
    bl_pid pid;
} watcher;

typedef struct cstate {
    bl_node *n;
    bl_proc *proc;
    bl__repl *repl;
    bl__repl_link link; /* our copy */
    unsigned long long term, version;
    json_t *kv;      /* key -> value text */
    json_t *hist;    /* [{version, term, key, old, new, who, at}] oldest first */
    json_t *restart; /* key -> value set cluster-wide, not running here until a restart */
    bl_config *base; /* the node's own configuration before any cluster setting */
    peer *peers;
    pending *pend;
    fwd *fwds;
    held *held;
    watcher *watchers;
    unsigned nwatchers;
    unsigned long long watch_refused;     /* {watch, Pid} refused: WATCHERS_MAX reached */
    unsigned long long committed, pended; /* writes answered committed / pending */
    int nodemon_id;
    unsigned long long ready_term; /* the leader caught up for this term */
    int timer_id;
    bl__store *store;
    int loaded;   /* the persisted copy came back from the store */
    int announce; /* our copy changed while the layer was handling a message */
    int closing;
} cstate;

/* ---- small helpers ---- */

static int newer(unsigned long long t1, unsigned long long v1, unsigned long long t2,
                 unsigned long long v2)
{
    return t1 > t2 || (t1 == t2 && v1 > v2);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void enc_error(ei_x_buff *x, const char *msg)
{
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_binary(x, msg, (long)strlen(msg));
}

/* The coordinators of the cluster (failed and suspected ones count, as for the election, so a
 * minority never makes a majority): *out malloc'd names, the count returned (0 on ENOMEM). */
typedef char nodename[BL_NODE_LEN];
static unsigned coordinators(bl_node *n, nodename **out)
{
    *out = NULL;
    int total = bl_cluster_members(n, NULL, 0);
    if (total <= 0) return 0;
    bl_member_info *m = malloc(sizeof(*m) * (size_t)total);
    nodename *names = malloc(sizeof(*names) * (size_t)total);
    if (!m || !names) {
        free(m);
        free(names);
        return 0;
    }
    int k = bl_cluster_members(n, m, total);
    unsigned c = 0;
    for (int i = 0; i < k && i < total; i++)
        if (!strcmp(m[i].role, "coordinator") && m[i].state != BL_MEMBER_LEFT)
            snprintf(names[c++], BL_NODE_LEN, "%s", m[i].node);
    free(m);
    *out = names;
    return c;
}

static int in_list(nodename *l, unsigned n, const char *node)
{
    for (unsigned i = 0; i < n; i++)
        if (!strcmp(l[i], node)) return 1;
    return 0;
}

static int is_leader(cstate *s)
{
    const char *l = bl_cluster_leader(s->n, NULL);
    return l && !strcmp(l, s->n->name);
}

/* ---- the store: the document and its history survive a restart ---- */

#define SCHEMA                                                                                     \
    "CREATE TABLE IF NOT EXISTS cconf_doc (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER, "  \
    "version INTEGER, body TEXT);"

typedef struct save_job {
    bl__store_job j;
    char *body;
    unsigned long long term, version;
} save_job;

static void save_run(bl__store_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    save_job *sj = (save_job *)j;
    if (!db) return;
    sqlite3_stmt *st = NULL;
    if (sq->prepare_v2(db,
                       "INSERT OR REPLACE INTO cconf_doc (id, term, version, body) VALUES "
                       "(1, ?, ?, ?)",
                       -1, &st, NULL) != SQLITE_OK)
        return;
    sq->bind_int64(st, 1, (sqlite3_int64)sj->term);
    sq->bind_int64(st, 2, (sqlite3_int64)sj->version);
    sq->bind_text(st, 3, sj->body, -1, SQLITE_TRANSIENT);
    (void)sq->step(st);
    sq->finalize(st);
}

static void save_done(bl__store_job *j)
{
    save_job *sj = (save_job *)j;
    free(sj->body);
    free(sj);
}

static json_t *doc_json(cstate *s, int hist_max)
{
    json_t *h = json_array();
    size_t n = json_array_size(s->hist);
    for (size_t i = n > (size_t)hist_max ? n - (size_t)hist_max : 0; i < n; i++)
        json_array_append(h, json_array_get(s->hist, i));
    return json_pack("{s:O, s:o}", "kv", s->kv, "history", h);
}

static void persist(cstate *s)
{
    if (!s->store) return;
    save_job *j = calloc(1, sizeof(*j));
    json_t *d = doc_json(s, HIST_KEEP);
    if (j) j->body = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    if (!j || !j->body) {
        if (j) free(j);
        return;
    }
    j->term = s->term;
    j->version = s->version;
    j->j.run = save_run;
    j->j.done = save_done;
    if (bl__store_submit(s->store, &j->j) != BL_OK) {
        bl_log(s->n, BL_LOG_WARN, "cluster config: store busy, version %llu not persisted yet",
               s->version);
        save_done(&j->j);
    }
}

/* ---- applying a document on this node ---- */

/* Take *w out of the list: its slot is free, its monitor (if any) gone. */
static void unlink_watcher(cstate *s, watcher **w)
{
    watcher *dead = *w;
    *w = dead->next;
    bl__demonitor_pid(s->proc, &dead->pid);
    free(dead);
    s->nwatchers--;
}

/* A remote watcher ended (or its node went down): its monitor fired. */
static void watcher_down(bl_proc *p, const bl_pid *pid, const char *reason, int index, void *ud)
{
    (void)p, (void)reason, (void)index;
    cstate *s = ud;
    for (watcher **w = &s->watchers; *w; w = &(*w)->next)
        if (bl_pid_equal(&(*w)->pid, pid)) {
            unlink_watcher(s, w);
            return;
        }
}

static void notify(cstate *s, json_t *change)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "beamlet_config");
    if (bl__json_to_term(change, &x, BL__JT_ATOM_KEYS) < 0) { /* out of memory: none told */
        ei_x_free(&x);
        return;
    }
    for (watcher **w = &s->watchers; *w;) {
        if (bl_send(s->proc, &(*w)->pid, x.buff, x.index) != BL_OK) {
            unlink_watcher(s, w);
        } else {
            w = &(*w)->next;
        }
    }
    ei_x_free(&x);
}

/* Run value (NULL: back to this node's own value) for key; records what needs a restart. */
static void apply_key(cstate *s, const char *key, const char *value)
{
    char own[MAX_VALUE], err[300];
    const bl_config_keydef *k = bl_config_key_find(key);
    if (!k) return; /* a key of a newer build: kept in the document, not run here */
    if (!value) {
        if (!bl_config_get(s->base, key, own, sizeof(own))) return;
        value = own;
    }
    char cur[MAX_VALUE];
    if (bl_config_get(&s->n->cfg, key, cur, sizeof(cur)) && !strcmp(cur, value)) {
        json_object_del(s->restart, key);
        return;
    }
    if (k->flags & BL_CFG_LIVE) {
        if (bl_config_apply(s->n, key, value, err, sizeof(err)) == BL_OK)
            bl_log(s->n, BL_LOG_INFO, "cluster config: %s = %s (applied)", key,
                   k->flags & BL_CFG_SECRET ? "(redacted)" : value);
        else
            bl_log(s->n, BL_LOG_WARN, "cluster config: %s not applied: %s", key, err);
        json_object_del(s->restart, key);
    } else {
        bl_log(s->n, BL_LOG_WARN, "cluster config: %s = %s needs a restart (running with %s)", key,
               value, cur);
        json_object_set_new(s->restart, key, json_string(value));
    }
}

/* Make (term, version, kv, hist) our copy: apply what changed, keep the history, tell watchers,
 * persist, announce. kv and hist are borrowed. */
static void adopt(cstate *s, unsigned long long term, unsigned long long version, json_t *kv,
                  json_t *hist, int announce)
{
    /* what changed, both ways */
    const char *k;
    json_t *v;
    json_t *old = s->kv;
    s->kv = json_deep_copy(kv);
    json_object_foreach(s->kv, k, v)
    {
        const char *was = jstr(old, k);
        if (!was || strcmp(was, json_string_value(v))) apply_key(s, k, json_string_value(v));
    }
    json_object_foreach(old, k, v) if (!json_object_get(s->kv, k)) apply_key(s, k, NULL);
    json_decref(old);
    /* history: the adopted copy's records win (a rolled-back write of ours goes); ours only
     * before the oldest record it carries (it carries the last HIST_WIRE) */
    json_t *merged = json_array(), *fresh = json_array();
    size_t i;
    json_t *h;
    unsigned long long first = version + 1, known = 0;
    json_array_foreach(hist, i, h)
    {
        unsigned long long hv =
            (unsigned long long)json_integer_value(json_object_get(h, "version"));
        if (hv < first) first = hv;
    }
    json_array_foreach(s->hist, i, h)
    {
        unsigned long long hv =
            (unsigned long long)json_integer_value(json_object_get(h, "version"));
        if (hv > version) continue;
        if (hv < first) {
            json_array_append(merged, h);
            if (hv > known) known = hv;
            continue;
        }
        /* a record the adopted copy has too, the same: watchers here have seen it */
        size_t j;
        json_t *t;
        json_array_foreach(hist, j, t) if (json_equal(t, h) && hv > known) known = hv;
    }
    json_array_foreach(hist, i, h)
    {
        unsigned long long hv =
            (unsigned long long)json_integer_value(json_object_get(h, "version"));
        if (hv > version) continue;
        json_array_append(merged, h);
        if (hv > known) json_array_append(fresh, h);
    }
    json_decref(s->hist);
    s->hist = merged;
    while (json_array_size(s->hist) > HIST_KEEP)
        json_array_remove(s->hist, 0);
    s->term = term;
    s->version = version;
    json_array_foreach(fresh, i, h)
    {
        json_t *c = json_deep_copy(h);
        json_t *key = json_object_get(h, "key");
        const bl_config_keydef *kd =
            json_is_string(key) ? bl_config_key_find(json_string_value(key)) : NULL;
        json_object_set_new(c, "live", json_boolean(kd && (kd->flags & BL_CFG_LIVE)));
        notify(s, c);
        json_decref(c);
    }
    json_decref(fresh);
    persist(s);
    if (announce) (void)bl__repl_local_put(s->repl, &s->link);
}

/* ---- replicated-table layer: one entry per owner, its copy of the document ---- */

#define PEER(l) ((peer *)(void *)((char *)(l)-offsetof(peer, link)))

static int encode_copy(ei_x_buff *x, unsigned long long term, unsigned long long version,
                       json_t *body)
{
    char *txt = json_dumps(body, JSON_COMPACT);
    if (!txt) return -1;
    int rc = ei_x_encode_tuple_header(x, 3) < 0 || ei_x_encode_ulonglong(x, term) < 0 ||
                     ei_x_encode_ulonglong(x, version) < 0 ||
                     ei_x_encode_binary(x, txt, (long)strlen(txt)) < 0
                 ? -1
                 : 0;
    free(txt);
    return rc;
}

static int r_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    cstate *s = svc;
    (void)l; /* our only local entry is s->link */
    json_t *d = doc_json(s, HIST_WIRE);
    int rc = encode_copy(x, s->term, s->version, d);
    json_decref(d);
    return rc;
}

static int r_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    (void)l;
    return ei_x_encode_atom(x, "doc");
}

static void leader_check_acks(cstate *s);

static int r_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    cstate *s = svc;
    unsigned long long term, version;
    json_t *d = NULL;
    *out = NULL;
    int rc = bl__cconf_decode_copy(buf, idx, &term, &version, &d);
    if (rc < 0) return -1;
    if (!d) {
        bl_log(s->n, BL_LOG_WARN, "cluster config: a malformed copy from %s ignored", owner);
        return 0;
    }
    peer *p = NULL;
    HASH_FIND_STR(s->peers, owner, p);
    if (!p) {
        if (!(p = calloc(1, sizeof(*p)))) {
            json_decref(d);
            return 0;
        }
        snprintf(p->owner, sizeof(p->owner), "%s", owner);
        HASH_ADD_STR(s->peers, owner, p);
    }
    json_decref(p->kv);
    json_decref(p->hist);
    p->kv = json_incref(json_object_get(d, "kv"));
    p->hist = json_incref(json_object_get(d, "history"));
    p->term = term;
    p->version = version;
    json_decref(d);
    *out = &p->link;
    if (newer(term, version, s->term, s->version)) {
        bl_log(s->n, BL_LOG_INFO, "cluster config: version %llu (term %llu) from %s", version, term,
               owner);
        adopt(s, term, version, p->kv, p->hist, 0);
        s->announce = 1; /* after the layer is done with this message */
    }
    leader_check_acks(s);
    return 0;
}

static int r_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    cstate *s = svc;
    char a[MAXATOMLEN_UTF8];
    if (ei_decode_atom(buf, idx, a) < 0) return -1;
    peer *p = NULL;
    HASH_FIND_STR(s->peers, owner, p);
    *out = p ? &p->link : NULL;
    return 0;
}

static void peer_free(cstate *s, peer *p)
{
    HASH_DEL(s->peers, p);
    json_decref(p->kv);
    json_decref(p->hist);
    free(p);
}

static int r_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    (void)why;
    peer_free(svc, PEER(l));
    return 0;
}

static const bl__repl_ops cconf_repl = {
    .proc_name = CNAME,
    .tag_add = "bl_cconf_add",
    .tag_del = "bl_cconf_del",
    .tag_sync = "bl_cconf_sync",
    .tag_want = "bl_cconf_want",
    .tag_digest = "bl_cconf_digest",
    .encode = r_encode,
    .encode_key = r_encode_key,
    .upsert = r_upsert,
    .find = r_find,
    .remove = r_remove,
};

/* ---- the leader ---- */

/* Coordinators holding (term, version) or newer, this node included; *need: a majority. */
static unsigned holders(cstate *s, unsigned long long term, unsigned long long version,
                        unsigned *need)
{
    nodename *co;
    unsigned nc = coordinators(s->n, &co);
    *need = nc / 2 + 1;
    unsigned k = in_list(co, nc, s->n->name) && !newer(term, version, s->term, s->version);
    peer *p, *t;
    HASH_ITER(hh, s->peers, p, t) {
        if (in_list(co, nc, p->owner) && p->term == term && p->version >= version) k++;
    }
    free(co);
    return k;
}

static void reply_json(cstate *s, const bl_from *from, const char *tag, json_t *body)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, tag);
    if (bl__json_to_term(body, &x, BL__JT_ATOM_KEYS) == 0) bl_reply(s->n, from, x.buff, x.index);
    ei_x_free(&x);
}

static void reply_error(cstate *s, const bl_from *from, const char *msg)
{
    ei_x_buff x;
    ei_x_new(&x);
    enc_error(&x, msg);
    bl_reply(s->n, from, x.buff, x.index);
    ei_x_free(&x);
}

static void leader_check_acks(cstate *s)
{
    unsigned long long now = bl_now_ms();
    for (pending **pp = &s->pend; *pp;) {
        pending *p = *pp;
        int done = 0;
        unsigned need;
        unsigned h = holders(s, p->term, p->version, &need);
        json_object_set_new(p->answer, "holders", json_integer(h));
        json_object_set_new(p->answer, "needed", json_integer(need));
        if (h >= need) {
            json_object_set_new(p->answer, "state", json_string("committed"));
            reply_json(s, &p->from, "ok", p->answer);
            s->committed++;
            done = 1;
        } else if (now >= p->deadline_ms || newer(s->term, 0, p->term, ~0ull)) {
            /* held here, not (yet) by a majority: it may still get there, or a new leader may
             * roll it back; {status, Version, Term} says which later */
            json_object_set_new(p->answer, "state", json_string("pending"));
            reply_json(s, &p->from, "pending", p->answer);
            s->pended++;
            done = 1;
        }
        if (done) {
            *pp = p->next;
            json_decref(p->answer);
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

/* A new leader holds the copies of a majority of coordinators before it takes writes; then it
 * re-stamps the newest copy with its term. */
static void leader_catch_up(cstate *s)
{
    unsigned long long term;
    const char *l = bl_cluster_leader(s->n, &term);
    if (!l || strcmp(l, s->n->name) || s->ready_term == term) return;
    nodename *co;
    unsigned nc = coordinators(s->n, &co), have = 1, need = nc / 2 + 1;
    peer *p, *t;
    HASH_ITER(hh, s->peers, p, t)
        if (in_list(co, nc, p->owner)) have++;
    free(co);
    if (have < need) return;
    /* a stamp newer than any copy: the terms of the document are an epoch of their own (they
     * survive restarts of the whole cluster, the election's terms start again at 1) */
    unsigned long long stamp = s->term + 1 > term ? s->term + 1 : term;
    json_t *kv = json_incref(s->kv), *h = json_incref(s->hist);
    adopt(s, stamp, s->version, kv, h, 1);
    json_decref(kv);
    json_decref(h);
    s->ready_term = term;
    bl_log(s->n, BL_LOG_INFO, "cluster config: leader for term %llu at version %llu", term,
           s->version);
}

/* Rules between keys, on the configuration the change would give (as `config validate`). */
static int check_between(cstate *s, const char *key, const char *value, char *err, size_t errlen)
{
    bl_config *c = malloc(sizeof(*c));
    if (!c) return snprintf(err, errlen, "out of memory"), -1;
    memcpy(c, &s->n->cfg, sizeof(*c));
    int rc = bl_config_set(c, key, value, err, errlen) == BL_OK &&
                     bl_config_check_between(c, key, err, errlen, NULL, NULL) == BL_OK
                 ? 0
                 : -1;
    free(c);
    return rc;
}

/* {set, ...} or {unset, ...} on the leader. value NULL: unset. */
static void leader_write(cstate *s, const bl_from *from, const char *key, const char *value,
                         const char *who, unsigned long long deadline_ms)
{
    char err[400];
    const bl_config_keydef *k = bl_config_key_find(key);
    if (!k) {
        snprintf(err, sizeof(err), "unknown configuration key '%s'", key);
        return reply_error(s, from, err);
    }
    if (!(k->flags & BL_CFG_CLUSTER)) {
        snprintf(err, sizeof(err),
                 "%s is a per-node key: set it in that node's configuration, not cluster-wide",
                 key);
        return reply_error(s, from, err);
    }
    if (value && check_between(s, key, value, err, sizeof(err)) < 0)
        return reply_error(s, from, err);
    if (!value && !json_object_get(s->kv, key)) {
        snprintf(err, sizeof(err), "%s is not set cluster-wide", key);
        return reply_error(s, from, err);
    }
    const char *was = jstr(s->kv, key);
    if (value && was && !strcmp(was, value)) { /* nothing to change */
        json_t *a =
            json_pack("{s:I, s:I, s:s, s:s, s:b, s:b, s:s}", "version", (json_int_t)s->version,
                      "term", (json_int_t)s->term, "key", key, "value", value, "live",
                      (k->flags & BL_CFG_LIVE) != 0, "changed", 0, "state", "unchanged");
        reply_json(s, from, "ok", a);
        json_decref(a);
        return;
    }
    json_t *kv = json_deep_copy(s->kv), *h = json_deep_copy(s->hist);
    if (value)
        json_object_set_new(kv, key, json_string(value));
    else
        json_object_del(kv, key);
    int secret = (k->flags & BL_CFG_SECRET) != 0;
    json_t *rec =
        json_pack("{s:I, s:I, s:s, s:s, s:I}", "version", (json_int_t)(s->version + 1), "term",
                  (json_int_t)s->term, "key", key, "who", who, "at", (json_int_t)bl_now_ms());
    json_object_set_new(rec, "old", was ? json_string(secret ? "(redacted)" : was) : json_null());
    json_object_set_new(rec, "new",
                        value ? json_string(secret ? "(redacted)" : value) : json_null());
    json_array_append_new(h, rec);
    adopt(s, s->term, s->version + 1, kv, h, 1);
    json_decref(kv);
    json_decref(h);
    bl_log(s->n, BL_LOG_INFO, "cluster config: version %llu: %s %s by %s", s->version, key,
           value ? "set" : "unset", who);
    pending *p = calloc(1, sizeof(*p));
    if (!p) return reply_error(s, from, "out of memory");
    p->from = *from;
    p->term = s->term;
    p->version = s->version;
    p->deadline_ms = deadline_ms;
    p->answer = json_pack("{s:I, s:I, s:s, s:b, s:b}", "version", (json_int_t)s->version, "term",
                          (json_int_t)s->term, "key", key, "live", (k->flags & BL_CFG_LIVE) != 0,
                          "changed", 1);
    json_object_set_new(p->answer, "value", value ? json_string(value) : json_null());
    p->next = s->pend;
    s->pend = p;
    leader_check_acks(s);
}

/* ---- requests ---- */

static void fwd_done(bl_proc *self, int status, const char *buf, int index, void *ud)
{
    cstate *s = bl_proc_data(self);
    fwd *f = ud;
    for (fwd **pp = &s->fwds; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    if (status == BL_OK) {
        int end = index;
        if (bl__skip_term(buf, &end) == 0) bl_reply(s->n, &f->from, buf + index, end - index);
    } else {
        reply_error(s, &f->from,
                    status == BL_ETIMEOUT ? "the leader did not answer in time"
                                          : "the leader is not reachable from this node");
    }
    free(f);
}

/* Not the leader: pass the request on, answer when it does. 1: answered later. */
static int forward(cstate *s, const bl_from *from, const char *buf, int index, ei_x_buff *r)
{
    const char *l = bl_cluster_leader(s->n, NULL);
    if (!l) {
        enc_error(r, "no leader: cluster configuration changes need a majority of the "
                     "coordinators (a partitioned minority refuses writes)");
        return 0;
    }
    int end = index;
    if (bl__skip_term(buf, &end) < 0) return -1;
    fwd *f = calloc(1, sizeof(*f));
    if (!f) return enc_error(r, "out of memory"), 0;
    f->from = *from;
    ei_x_buff x; /* {fwd, Req}: the leader never passes it on again */
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "fwd");
    ei_x_append_buf(&x, buf + index, end - index);
    int rc =
        bl_call(s->proc, NULL, CNAME, l, x.buff, x.index, WRITE_TIMEOUT_MS + 2000, fwd_done, f);
    ei_x_free(&x);
    if (rc != BL_OK) {
        free(f);
        enc_error(r, "the leader is not reachable from this node");
        return 0;
    }
    f->next = s->fwds;
    s->fwds = f;
    return 1;
}

static json_t *setting_row(cstate *s, const char *key, const char *value)
{
    const bl_config_keydef *k = bl_config_key_find(key);
    int secret = k && (k->flags & BL_CFG_SECRET);
    json_t *row = json_pack("{s:s, s:s, s:b}", "key", key, "value", secret ? "(redacted)" : value,
                            "live", k && (k->flags & BL_CFG_LIVE));
    const char *pend = jstr(s->restart, key);
    json_object_set_new(row, "applied", json_string(pend ? "restart_needed" : "running"));
    return row;
}

static void reply_get(cstate *s, const char *only, ei_x_buff *r)
{
    unsigned long long term;
    const char *l = bl_cluster_leader(s->n, &term);
    json_t *rows = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(s->kv, k, v) if (!only || !strcmp(only, k))
        json_array_append_new(rows, setting_row(s, k, json_string_value(v)));
    json_t *o = json_pack("{s:I, s:I, s:o}", "term", (json_int_t)s->term, "version",
                          (json_int_t)s->version, "settings", rows);
    json_object_set_new(o, "leader", l ? json_string(l) : json_null());
    (void)bl__json_to_term(o, r, BL__JT_ATOM_KEYS); /* fails only out of memory */
    json_decref(o);
}

static void reply_history(cstate *s, const char *only, ei_x_buff *r)
{
    json_t *out = json_array();
    for (size_t i = json_array_size(s->hist); i-- > 0;) {
        json_t *h = json_array_get(s->hist, i);
        if (!only || !strcmp(only, jstr(h, "key"))) json_array_append(out, h);
    }
    (void)bl__json_to_term(out, r, BL__JT_ATOM_KEYS); /* fails only out of memory */
    json_decref(out);
}

/* an integer, or its decimal text (the CLI and the gateway send text) */
static int get_number(const char *buf, int *idx, unsigned long long *v)
{
    if (ei_decode_ulonglong(buf, idx, v) == 0) return 0;
    char t[32], *end;
    if (bl__term_text(buf, idx, t, sizeof(t)) < 0 || !t[0]) return -1;
    *v = strtoull(t, &end, 10);
    return *end || t[0] == '-' ? -1 : 0;
}

/* What became of the write of version v (of term t when has_t) as this node sees it:
 * committed (a majority of the coordinators hold a copy with it), pending (held here, not by a
 * majority yet), lost (a new leader rolled it back: this version is another write now, or none),
 * unknown (not here yet, or older than the history kept). */
static void reply_status(cstate *s, unsigned long long v, int has_t, unsigned long long t,
                         ei_x_buff *r)
{
    json_t *rec = NULL, *oldest = json_array_get(s->hist, 0);
    for (size_t i = json_array_size(s->hist); i-- > 0;) {
        json_t *h = json_array_get(s->hist, i);
        if ((unsigned long long)json_integer_value(json_object_get(h, "version")) == v) {
            rec = h;
            break;
        }
    }
    const char *state;
    unsigned need = 0, h = 0;
    if (rec && has_t && (unsigned long long)json_integer_value(json_object_get(rec, "term")) != t) {
        state = "lost";
    } else if (rec) {
        h = holders(s, s->term, v, &need);
        state = h >= need ? "committed" : "pending";
    } else if (v <= s->version && oldest &&
               (unsigned long long)json_integer_value(json_object_get(oldest, "version")) < v) {
        state = "lost"; /* within the history kept, and not in it */
    } else {
        state = "unknown";
    }
    json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:I}", "version", (json_int_t)v, "state", state,
                          "holders", (json_int_t)h, "needed", (json_int_t)need, "current_version",
                          (json_int_t)s->version);
    json_object_set_new(o, "term",
                        has_t ? json_integer((json_int_t)t)
                        : rec ? json_incref(json_object_get(rec, "term"))
                              : json_null());
    json_object_set_new(o, "key", rec ? json_incref(json_object_get(rec, "key")) : json_null());
    (void)bl__json_to_term(o, r, BL__JT_ATOM_KEYS); /* fails only out of memory */
    json_decref(o);
}

static int proc_call(bl_proc *self, const bl_from *from, const char *buf, int index, ei_x_buff *r,
                     void *ud)
{
    (void)self;
    cstate *s = ud;
    int i = index, ar = 0, type, size;
    char tag[MAXATOMLEN_UTF8];
    if (ei_get_type(buf, &i, &type, &size) == 0 &&
        (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_UTF8_EXT || type == ERL_ATOM_UTF8_EXT ||
         type == ERL_SMALL_ATOM_EXT)) {
        ei_decode_atom(buf, &i, tag);
    } else if (ei_decode_tuple_header(buf, &i, &ar) < 0 || ar < 2 ||
               ei_decode_atom(buf, &i, tag) < 0) {
        enc_error(r, "bad request");
        return 0;
    }
    int nofwd = 0;
    if (ar == 2 && !strcmp(tag, "fwd")) { /* a member passed it on: answer, never pass it again */
        nofwd = 1;
        index = i;
        if (ei_decode_tuple_header(buf, &i, &ar) < 0 || ar < 2 ||
            ei_decode_atom(buf, &i, tag) < 0) {
            enc_error(r, "bad request");
            return 0;
        }
    }
    char key[128], who[256];
    if (!strcmp(tag, "get") || !strcmp(tag, "history")) {
        if (ar == 2 && bl__term_text(buf, &i, key, sizeof(key)) < 0) {
            enc_error(r, "bad request: the key is not text");
            return 0;
        }
        if (tag[0] == 'g')
            reply_get(s, ar == 2 ? key : NULL, r);
        else
            reply_history(s, ar == 2 ? key : NULL, r);
        return 0;
    }
    if ((!strcmp(tag, "watch") || !strcmp(tag, "unwatch")) && ar == 2) {
        bl_pid pid;
        if (bl_decode_pid(s->n, buf, &i, &pid) < 0) {
            enc_error(r, "bad request: not a pid");
            return 0;
        }
        watcher **w = &s->watchers;
        while (*w && !bl_pid_equal(&(*w)->pid, &pid))
            w = &(*w)->next;
        if (tag[0] == 'w' && !*w && s->nwatchers >= WATCHERS_MAX) {
            s->watch_refused++;
            char err[200];
            snprintf(err, sizeof(err),
                     "too many configuration watchers on this node (%u): unwatch one or watch "
                     "from another node",
                     WATCHERS_MAX);
            bl_log(s->n, BL_LOG_WARN, "cluster config: watch refused: %u watchers already",
                   s->nwatchers);
            enc_error(r, err);
            return 0;
        }
        if (tag[0] == 'w' && !*w) {
            if (!(*w = calloc(1, sizeof(**w)))) return enc_error(r, "out of memory"), 0;
            (*w)->pid = pid;
            s->nwatchers++;
            /* a watcher that ends frees its slot at once (a local one: at the next change,
             * whose send to it fails) */
            if (!bl_pid_is_on(&pid, s->n->name))
                (void)bl__monitor_pid(s->proc, &pid, watcher_down, s);
        }
        if (tag[0] == 'u' && *w) unlink_watcher(s, w);
        return ei_x_encode_atom(r, "ok");
    }
    if (!strcmp(tag, "status") && (ar == 2 || ar == 3)) {
        unsigned long long v, t = 0;
        if (get_number(buf, &i, &v) < 0 || (ar == 3 && get_number(buf, &i, &t) < 0)) {
            enc_error(r, "bad request: {status, Version} or {status, Version, Term} (integers)");
            return 0;
        }
        reply_status(s, v, ar == 3, t, r);
        return 0;
    }
    int set = !strcmp(tag, "set") && ar == 4, unset = !strcmp(tag, "unset") && ar == 3;
    if (!set && !unset) {
        enc_error(r, "bad request");
        return 0;
    }
    char *value = set ? malloc(MAX_VALUE) : NULL;
    if ((set && !value) || bl__term_text(buf, &i, key, sizeof(key)) < 0 ||
        (set && bl__term_text(buf, &i, value, MAX_VALUE) < 0) ||
        bl__term_text(buf, &i, who, sizeof(who)) < 0) {
        free(value);
        enc_error(r, "bad request: key, value and who must be text (value up to 8 KiB)");
        return 0;
    }
    int rc = 1;
    if (!is_leader(s) && nofwd) {
        enc_error(r, "the leader changed while the request was on its way: try again");
        rc = 0;
    } else if (!is_leader(s)) {
        rc = forward(s, from, buf, index, r);
    } else {
        unsigned long long term;
        bl_cluster_leader(s->n, &term);
        leader_catch_up(s);
        held *h = s->ready_term != term ? calloc(1, sizeof(*h)) : NULL;
        if (h) { /* answered once caught up (on_tick), or with an error at the deadline */
            h->from = *from;
            snprintf(h->key, sizeof(h->key), "%s", key);
            snprintf(h->who, sizeof(h->who), "%s", who[0] ? who : "unknown");
            h->value = value;
            value = NULL;
            h->deadline_ms = bl_now_ms() + WRITE_TIMEOUT_MS;
            h->next = s->held;
            s->held = h;
        } else if (s->ready_term != term) {
            enc_error(r, "out of memory");
            rc = 0;
        } else {
            leader_write(s, from, key, value, who[0] ? who : "unknown",
                         bl_now_ms() + WRITE_TIMEOUT_MS);
        }
    }
    free(value);
    return rc;
}

static void proc_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    cstate *s = ud;
    (void)bl__repl_handle(s->repl, msg);
    if (s->announce) {
        s->announce = 0;
        (void)bl__repl_local_put(s->repl, &s->link);
    }
}

static void on_tick(bl_node *n, void *ud)
{
    (void)n;
    cstate *s = ud;
    leader_catch_up(s);
    unsigned long long term, now = bl_now_ms();
    int ready = is_leader(s) && (bl_cluster_leader(s->n, &term), s->ready_term == term);
    while (s->held && (ready || now >= s->held->deadline_ms || !is_leader(s))) {
        held *h = s->held;
        s->held = h->next;
        if (ready) /* the bound counts from its arrival: the forwarder's call outlasts it */
            leader_write(s, &h->from, h->key, h->value, h->who, h->deadline_ms);
        else
            reply_error(s, &h->from,
                        "the leader did not catch up with a majority of the coordinators in "
                        "time: try again");
        free(h->value);
        free(h);
    }
    leader_check_acks(s);
}

/* a watcher on a node that went down is gone with it */
static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    cstate *s = ud;
    if (ev != BL_NODEDOWN) return;
    for (watcher **w = &s->watchers; *w;) {
        if (!strcmp(bl_pid_node(&(*w)->pid), node)) {
            unlink_watcher(s, w);
        } else {
            w = &(*w)->next;
        }
    }
}

int bl__cconf_stats(bl_node *n, bl__cconf_counters *out)
{
    memset(out, 0, sizeof(*out));
    bl_proc *p = bl_whereis(n, CNAME);
    cstate *s = p ? bl_proc_data(p) : NULL;
    if (!s) return -1;
    out->watchers = s->nwatchers;
    out->watchers_max = WATCHERS_MAX;
    out->watch_refused = s->watch_refused;
    out->committed = s->committed;
    out->pending = s->pended;
    out->version = s->version;
    return 0;
}

static void proc_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    cstate *s = ud;
    s->closing = 1;
    if (s->nodemon_id > 0) bl_demonitor_nodes(s->n, s->nodemon_id);
    if (s->store) bl__store_close(s->store, 2000); /* runs what is queued, then the dones */
    s->store = NULL;
    if (s->timer_id > 0) bl_timer_cancel(s->n, s->timer_id);
    bl__repl_free(s->repl);
    peer *p, *t;
    HASH_ITER(hh, s->peers, p, t)
        peer_free(s, p);
    while (s->pend) {
        pending *q = s->pend;
        s->pend = q->next;
        json_decref(q->answer);
        free(q);
    }
    while (s->fwds) { /* their calls were dropped with this process */
        fwd *f = s->fwds;
        s->fwds = f->next;
        free(f);
    }
    while (s->held) {
        held *h = s->held;
        s->held = h->next;
        free(h->value);
        free(h);
    }
    while (s->watchers) {
        watcher *w = s->watchers;
        s->watchers = w->next;
        free(w);
    }
    json_decref(s->kv);
    json_decref(s->hist);
    json_decref(s->restart);
    free(s->base);
    free(s);
}

/* ---- start: the persisted copy comes back from the store first ---- */

typedef struct load_job {
    bl__store_job j;
    cstate *s;
    unsigned long long term, version;
    char *body;
} load_job;

static void load_run(bl__store_job *j, const bl__sqlite *sq, sqlite3 *db)
{
    load_job *lj = (load_job *)j;
    sqlite3_stmt *st = NULL;
    if (!db || sq->prepare_v2(db, "SELECT term, version, body FROM cconf_doc WHERE id = 1", -1, &st,
                              NULL) != SQLITE_OK)
        return;
    if (sq->step(st) == SQLITE_ROW) {
        lj->term = (unsigned long long)sq->column_int64(st, 0);
        lj->version = (unsigned long long)sq->column_int64(st, 1);
        const unsigned char *b = sq->column_text(st, 2);
        if (b) lj->body = strdup((const char *)b);
    }
    sq->finalize(st);
}

static void load_done(bl__store_job *j)
{
    load_job *lj = (load_job *)j;
    cstate *s = lj->s->closing ? NULL : lj->s; /* the store closes before the state goes */
    json_t *d = lj->body ? bl__cconf_body(lj->body, strlen(lj->body)) : NULL;
    if (s && d && newer(lj->term, lj->version, s->term, s->version)) {
        bl_log(s->n, BL_LOG_INFO, "cluster config: version %llu (term %llu) from the store",
               lj->version, lj->term);
        adopt(s, lj->term, lj->version, json_object_get(d, "kv"), json_object_get(d, "history"), 1);
    }
    if (s) s->loaded = 1;
    json_decref(d);
    free(lj->body);
    free(lj);
}

static cstate *state_of(bl_node *n)
{
    bl_proc *p = bl_whereis(n, CNAME);
    return p ? bl_proc_data(p) : NULL;
}

int bl_config_cluster_get(bl_node *n, const char *key, char *buf, size_t len)
{
    cstate *s = n ? state_of(n) : NULL;
    const char *v = s ? jstr(s->kv, key) : NULL;
    if (!v) return 0;
    if (buf && len) snprintf(buf, len, "%s", v);
    return 1;
}

void bl_config_cluster_set_base(bl_node *n, const bl_config *own)
{
    cstate *s = n ? state_of(n) : NULL;
    if (s) memcpy(s->base, own, sizeof(*s->base));
}

void bl__cconf_preload(bl_node *n)
{
    if (!n->cfg.cluster_member || bl_is_tool_node(n->name) || !n->cfg.health_store) return;
    if (!(n->cfg_base = malloc(sizeof(*n->cfg_base)))) return;
    memcpy(n->cfg_base, &n->cfg, sizeof(*n->cfg_base));
    char path[1100], err[300];
    bl__store_path(&n->cfg, n->name, "cconf", path, sizeof(path));
    if (access(path, R_OK) != 0) return; /* never persisted anything */
    bl__sqlite sq;
    if (bl__sqlite_load(&sq, err, sizeof(err)) < 0) return;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *body = NULL;
    unsigned long long version = 0;
    if (sq.open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sq.prepare_v2(db, "SELECT version, body FROM cconf_doc WHERE id = 1", -1, &st, NULL) ==
            SQLITE_OK &&
        sq.step(st) == SQLITE_ROW) {
        version = (unsigned long long)sq.column_int64(st, 0);
        const unsigned char *b = sq.column_text(st, 1);
        if (b) body = strdup((const char *)b);
    }
    if (st) sq.finalize(st);
    if (db) sq.close(db);
    bl__sqlite_unload(&sq);
    json_t *d = body ? bl__cconf_body(body, strlen(body)) : NULL;
    free(body);
    const char *k;
    json_t *v;
    int applied = 0;
    json_object_foreach(json_object_get(d, "kv"), k, v)
    {
        const bl_config_keydef *kd = bl_config_key_find(k);
        if (!kd || !(kd->flags & BL_CFG_CLUSTER)) continue;
        if (bl_config_set(&n->cfg, k, json_string_value(v), err, sizeof(err)) == BL_OK)
            applied++;
        else
            bl_log(n, BL_LOG_WARN, "cluster config: persisted %s", err);
    }
    if (d)
        bl_log(n, BL_LOG_INFO, "cluster config: %d setting%s of version %llu from %s", applied,
               applied == 1 ? "" : "s", version, path);
    json_decref(d);
}

int bl_cconf_start(bl_node *n);

int bl_cconf_start(bl_node *n)
{
    if (!n->cfg.cluster_member || bl_is_tool_node(n->name)) return BL_OK;
    cstate *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    /* the node's own values: what unset goes back to. The copy the preload kept is taken over
     * (nothing else reads it), so a node holds two configurations, not three (43 KB each). */
    if (n->cfg_base) {
        s->base = n->cfg_base;
        n->cfg_base = NULL;
    } else if ((s->base = malloc(sizeof(*s->base)))) {
        memcpy(s->base, &n->cfg, sizeof(*s->base));
    } else {
        free(s);
        return BL_ENOMEM;
    }
    s->n = n;
    s->kv = json_object();
    s->hist = json_array();
    s->restart = json_object();
    static const bl_proc_ops ops = {
        .on_msg = proc_msg, .on_call = proc_call, .on_terminate = proc_terminate};
    int rc = bl_spawn(n, CNAME, &ops, s, &s->proc);
    if (rc != BL_OK) {
        json_decref(s->kv);
        json_decref(s->hist);
        json_decref(s->restart);
        free(s->base);
        free(s);
        return rc;
    }
    s->repl = bl__repl_new(n, s->proc, &cconf_repl, s);
    s->timer_id = bl_timer(n, TICK_MS, TICK_MS, on_tick, s);
    int mid = bl_monitor_nodes(n, on_node, s);
    s->nodemon_id = mid > 0 ? mid : 0;
    if (!s->repl || s->timer_id < 0) return BL_ENOMEM;
    (void)bl__repl_local_put(s->repl, &s->link);
    if (n->cfg.health_store) {
        char path[1100];
        bl__store_path(&n->cfg, n->name, "cconf", path, sizeof(path));
        s->store = bl__store_open(n->loop, path, SCHEMA, 64);
        load_job *j = s->store ? calloc(1, sizeof(*j)) : NULL;
        if (j) {
            j->s = s;
            j->j.run = load_run;
            j->j.done = load_done;
            if (bl__store_submit(s->store, &j->j) != BL_OK) free(j);
        }
    }
    return BL_OK;
}
