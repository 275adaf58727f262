/* registry.c - service discovery and load-balanced service calls: the `beamlet_registry` process.
 *
 * Each node owns the entries registered on it (authoritative: TTL expiry, health, removal happen
 * there) and replicates them to every beamlet member through the replicated-table layer (repl.h):
 *   {bl_reg_add, Owner, [Entry]}     new or changed entries (health changes included)
 *   {bl_reg_remove, Owner, [Id]}     removed entries
 *   {bl_reg_sync, Owner, [Entry]}    the owner's whole set: replaces what the receiver holds
 *   {bl_reg_want, Node}, {bl_reg_digest, Owner, Proto, Count, Digest}   repair
 * The layer checks owners, exchanges sets on membership changes and drops a failed, leaving or
 * left member's entries (watchers are told). Entries per owner node are bounded (max_entries).
 *
 * Service calls: pick an instance of the name (passing first, warning if none passes; critical
 * never), round robin or least outstanding calls, gen_server:call its process (metadata
 * "process", default the service name) on its node; on timeout, nodedown or noproc try another
 * instance not yet tried, within the retry budget. The calls are made by this process; a C
 * caller's callback runs only if the caller is still alive. See docs/services.md. */
#include "../runtime/internal.h"
#include "../runtime/decode.h"
#include "beamlet/cluster.h"
#include "beamlet/registry.h"
#include "dispatch.h"
#include "registry_hooks.h"
#include "repl.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define REG_NAME "beamlet_registry"
#define TAG_LEN 64
#define META_KEY_LEN 64
#define VERSION_LEN 64
#define TICK_MS 100
#define MAX_WATCHERS 256
#define MAX_RR 4096
#define MAX_RETRIES 7
#define DEFAULT_RETRIES 2
#define DEFAULT_MAX_ENTRIES 1024
#define KEY_LEN (BL_NODE_LEN + BL_REG_ID_LEN)

static const char *HEALTH_NAMES[] = {"passing", "warning", "critical"};
static const char *EVENT_NAMES[] = {"added", "removed", "health_changed"};

const char *bl_health_name(bl_health h)
{
    return (unsigned)h < 3 ? HEALTH_NAMES[h] : "unknown";
}

static int health_from_name(const char *a)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(a, HEALTH_NAMES[i])) return i;
    return -1;
}

typedef struct rentry {
    bl__repl_link link; /* in its owner's bucket */
    UT_hash_handle hh;
    union { /* the hash key is the node then the id, each zero padded: stored once */
        char key[KEY_LEN];
        struct {
            char node[BL_NODE_LEN];
            char id[BL_REG_ID_LEN];
        };
    };
    char name[BL_REG_ID_LEN], version[VERSION_LEN];
    char address[BL_REG_STR_LEN], health_ep[BL_REG_STR_LEN];
    int port;
    unsigned ttl_ms;
    bl_health health;
    int ntags, nmeta;
    char **tags, **mkeys, **mvals;
    ev_tstamp expires_at; /* local entries with a TTL */
    unsigned outstanding; /* calls in flight from this node */
    int local;
    struct rentry *lprev, *lnext; /* local entries: r->local */
    char *check;                  /* local entries: the registration's check (JSON), or NULL */
} rentry;
_Static_assert(offsetof(rentry, id) == offsetof(rentry, key) + BL_NODE_LEN, "key = node, id");

typedef struct ocount {
    UT_hash_handle hh;
    char node[BL_NODE_LEN];
    unsigned count;
} ocount;

typedef struct rrent {
    UT_hash_handle hh;
    char name[BL_REG_ID_LEN];
    unsigned long long next;
} rrent;

typedef struct rwatch {
    struct rwatch *next;
    int id;
    int is_pid, dead;
    bl_pid pid;
    bl_registry_watch_cb cb;
    void *ud;
} rwatch;

struct reg;

typedef struct rcall {
    struct rcall *prev, *next;
    struct reg *r;
    int beam; /* answer from with bl_reply; else cb on caller */
    bl_from from;
    bl_pid caller;
    bl_call_cb cb;
    void *ud;
    char name[BL_REG_ID_LEN];
    char *req;
    int reqlen;
    unsigned tmo;
    int policy, left, ntried, last;
    char tried[MAX_RETRIES + 1][KEY_LEN];
    char cur[KEY_LEN];
} rcall;

typedef struct reg {
    bl_node *n;
    bl_proc *proc;
    rentry *entries;
    rentry *local; /* this node's entries, also in entries */
    ocount *counts;
    rrent *rr;
    unsigned nrr;
    rwatch *watchers;
    unsigned nwatchers;
    int next_watch_id, emitting;
    rcall *calls;
    int timer_id, nodemon_id;
    bl_lb_policy policy;
    unsigned max_entries;
    unsigned long long next_id, epoch_ms;
    bl__repl *repl;
    bl__reg_exclude_fn excluded; /* nodes whose entries are not chosen (maintenance), or NULL */
    void *excluded_ud;
    bl__reg_check_fn check_hook; /* runs the checks registrations carry, or NULL */
    void *check_ud;
} reg;

static reg *reg_of(bl_node *n)
{
    bl_proc *p = n ? bl_whereis(n, REG_NAME) : NULL;
    return p && !p->dead ? bl_proc_data(p) : NULL;
}

/* ---- entries ---- */

/* the entry's node is in maintenance (the hook health installs) */
static int in_maintenance(const reg *r, const rentry *e)
{
    return r->excluded && r->excluded(r->n, e->node, r->excluded_ud);
}

/* what a service call may choose: not critical, not on a node in maintenance */
static int usable(const reg *r, const rentry *e)
{
    return e->health != BL_HEALTH_CRITICAL && !in_maintenance(r, e);
}

static void make_key(char key[KEY_LEN], const char *node, const char *id)
{
    memset(key, 0, KEY_LEN);
    snprintf(key, BL_NODE_LEN, "%s", node);
    snprintf(key + BL_NODE_LEN, BL_REG_ID_LEN, "%s", id);
}

static rentry *find_entry(reg *r, const char *node, const char *id)
{
    char key[KEY_LEN];
    rentry *e = NULL;
    make_key(key, node, id);
    HASH_FIND(hh, r->entries, key, KEY_LEN, e);
    return e;
}

static void free_strs(char **v, int k)
{
    if (!v) return;
    for (int i = 0; i < k; i++)
        free(v[i]);
    free(v);
}

static void entry_free(rentry *e)
{
    if (!e) return;
    free_strs(e->tags, e->ntags);
    free_strs(e->mkeys, e->nmeta);
    free_strs(e->mvals, e->nmeta);
    free(e->check);
    free(e);
}

static ocount *oc_find(reg *r, const char *node)
{
    ocount *o = NULL;
    HASH_FIND_STR(r->counts, node, o);
    return o;
}

static unsigned oc_get(reg *r, const char *node)
{
    ocount *o = oc_find(r, node);
    return o ? o->count : 0;
}

static void oc_add(reg *r, const char *node, int d)
{
    ocount *o = oc_find(r, node);
    if (!o) {
        if (d <= 0 || !(o = calloc(1, sizeof(*o)))) return;
        snprintf(o->node, sizeof(o->node), "%s", node);
        HASH_ADD_STR(r->counts, node, o);
    }
    if (d < 0 && o->count < (unsigned)-d)
        o->count = 0;
    else
        o->count += (unsigned)d;
    if (!o->count) {
        HASH_DEL(r->counts, o);
        free(o);
    }
}

static void to_public(const reg *r, const rentry *e, bl_service_entry *p)
{
    memset(p, 0, sizeof(*p));
    p->id = e->id;
    p->name = e->name;
    p->version = e->version;
    p->node = e->node;
    p->address = e->address;
    p->health_endpoint = e->health_ep;
    p->port = e->port;
    p->ttl_ms = e->ttl_ms;
    p->health = e->health;
    p->ntags = e->ntags;
    p->tags = (const char *const *)e->tags;
    p->nmeta = e->nmeta;
    p->meta_keys = (const char *const *)e->mkeys;
    p->meta_values = (const char *const *)e->mvals;
    p->maintenance = in_maintenance(r, e);
}

static const char *meta_get(const rentry *e, const char *k)
{
    for (int i = 0; i < e->nmeta; i++)
        if (!strcmp(e->mkeys[i], k)) return e->mvals[i];
    return NULL;
}

static int has_tag(const rentry *e, const char *t)
{
    for (int i = 0; i < e->ntags; i++)
        if (!strcmp(e->tags[i], t)) return 1;
    return 0;
}

static int matches(const reg *r, const rentry *e, const bl_service_query *q)
{
    if (!q) return 1;
    if (q->usable && !usable(r, e)) return 0;
    if (q->name && q->name[0] && strcmp(q->name, e->name)) return 0;
    if (q->health >= 0 && (int)e->health != q->health) return 0;
    for (int i = 0; i < q->ntags_all; i++)
        if (!has_tag(e, q->tags_all[i])) return 0;
    if (q->ntags_any > 0) {
        int any = 0;
        for (int i = 0; i < q->ntags_any && !any; i++)
            any = has_tag(e, q->tags_any[i]);
        if (!any) return 0;
    }
    for (int i = 0; i < q->nmeta; i++) {
        const char *v = meta_get(e, q->meta_keys[i]);
        if (!v || strcmp(v, q->meta_values[i])) return 0;
    }
    return 1;
}

/* fn for every entry matching q (NULL: all). A usable query gives the passing ones first, then
 * the warning ones (as a service call prefers them). Returns the count. */
static int each_match(const reg *r, const bl_service_query *q,
                      void (*fn)(const reg *r, rentry *e, void *ud), void *ud)
{
    int k = 0;
    rentry *e, *t;
    for (int pass = 0; pass < (q && q->usable ? 2 : 1); pass++)
        HASH_ITER(hh, r->entries, e, t) {
            if (!matches(r, e, q) || (q && q->usable && (int)e->health != pass)) continue;
            k++;
            fn(r, e, ud);
        }
    return k;
}

/* ---- wire format ---- */

/* Encoders return 0 or -1: every ei_x_* result is ORed into rc (each returns 0 or -1) and
 * checked once at the end; a failed call leaves the buffer valid, so going on is safe. */
static int encode_str(ei_x_buff *x, const char *s)
{
    return ei_x_encode_binary(x, s, (long)strlen(s));
}

/* An entry map. r non-NULL (answers and watch events, never replicas: a replica's keys are fixed)
 * adds `maintenance`, whether the entry's node is in maintenance as this node knows it. */
static int encode_entry(ei_x_buff *x, const rentry *e, const reg *r)
{
    int rc = 0;
    rc |= ei_x_encode_map_header(x, r ? 12 : 11);
    if (r) {
        rc |= ei_x_encode_atom(x, "maintenance");
        rc |= ei_x_encode_boolean(x, in_maintenance(r, e));
    }
    rc |= ei_x_encode_atom(x, "id");
    rc |= encode_str(x, e->id);
    rc |= ei_x_encode_atom(x, "name");
    rc |= encode_str(x, e->name);
    rc |= ei_x_encode_atom(x, "version");
    rc |= encode_str(x, e->version);
    rc |= ei_x_encode_atom(x, "node");
    rc |= ei_x_encode_atom(x, e->node);
    rc |= ei_x_encode_atom(x, "address");
    rc |= encode_str(x, e->address);
    rc |= ei_x_encode_atom(x, "port");
    rc |= ei_x_encode_long(x, e->port);
    rc |= ei_x_encode_atom(x, "health_endpoint");
    rc |= encode_str(x, e->health_ep);
    rc |= ei_x_encode_atom(x, "tags");
    if (e->ntags) rc |= ei_x_encode_list_header(x, e->ntags);
    for (int i = 0; i < e->ntags; i++)
        rc |= encode_str(x, e->tags[i]);
    rc |= ei_x_encode_empty_list(x);
    rc |= ei_x_encode_atom(x, "metadata");
    rc |= ei_x_encode_map_header(x, e->nmeta);
    for (int i = 0; i < e->nmeta; i++) {
        rc |= encode_str(x, e->mkeys[i]);
        rc |= encode_str(x, e->mvals[i]);
    }
    rc |= ei_x_encode_atom(x, "ttl_ms");
    rc |= ei_x_encode_ulong(x, e->ttl_ms);
    rc |= ei_x_encode_atom(x, "health");
    rc |= ei_x_encode_atom(x, bl_health_name(e->health));
    return rc;
}

static int get_atom(const char *buf, int *idx, char *out)
{
    return ei_decode_atom(buf, idx, out);
}

/* After the last element of a list header: the tail. A proper list may come as one header (BEAM)
 * or one cell at a time (ei_x_encode_list_header(x, 1) per element): *k gets the next cell's
 * count, 0 at the end. -1 for an improper list. */
static int list_tail(const char *buf, int *idx, int *k)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
    if (type == ERL_NIL_EXT) {
        *k = 0;
        return bl__skip_term(buf, idx);
    }
    if (type != ERL_LIST_EXT || ei_decode_list_header(buf, idx, k) < 0 || *k <= 0) return -1;
    return 0;
}

/* [binary]: into a malloc'd array of at most max strings of < len bytes. */
static int get_str_list(const char *buf, int *idx, char ***out, int *count, int max, size_t len)
{
    int k, n = 0;
    *out = NULL;
    *count = 0;
    if (ei_decode_list_header(buf, idx, &k) < 0) return -1;
    char **v = calloc((size_t)max + 1, sizeof(char *));
    if (!v) return -1;
    char tmp[BL_REG_STR_LEN];
    while (k > 0) {
        if (n >= max || bl__term_bin(buf, idx, tmp, len) < 0 || !(v[n] = strdup(tmp))) break;
        n++;
        if (--k == 0 && list_tail(buf, idx, &k) < 0) {
            k = -1;
            break;
        }
    }
    if (k != 0) {
        free_strs(v, max + 1);
        return -1;
    }
    *out = v;
    *count = n;
    return 0;
}

/* #{binary => binary} */
static int get_str_map(const char *buf, int *idx, char ***keys, char ***vals, int *count)
{
    int k;
    *keys = *vals = NULL;
    *count = 0;
    if (ei_decode_map_header(buf, idx, &k) < 0 || k > BL_REG_MAX_META) return -1;
    char **ks = calloc((size_t)k + 1, sizeof(char *)), **vs = calloc((size_t)k + 1, sizeof(char *));
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return -1;
    }
    char tk[META_KEY_LEN], tv[BL_REG_STR_LEN];
    for (int i = 0; i < k; i++) {
        if (bl__term_bin(buf, idx, tk, sizeof(tk)) < 0 ||
            bl__term_bin(buf, idx, tv, sizeof(tv)) < 0 || !(ks[i] = strdup(tk)) ||
            !(vs[i] = strdup(tv))) {
            free_strs(ks, i + 1);
            free_strs(vs, i + 1);
            return -1;
        }
    }
    *keys = ks;
    *vals = vs;
    *count = k;
    return 0;
}

/* A registration's check: #{http => Bin} | #{tcp => Bin} | #{command => [Bin]} with
 * interval_s, timeout_s, consecutive numbers, as a JSON object text (malloc'd) for the health
 * service, which validates it. */
static int get_check(const char *buf, int *idx, char **out)
{
    int k, type, size;
    if (ei_decode_map_header(buf, idx, &k) < 0 || k > 8) return -1;
    json_t *o = json_object();
    char tmp[BL_REG_STR_LEN * 4];
    for (int i = 0; i < k; i++) {
        char key[MAXATOMLEN_UTF8];
        json_t *v = NULL;
        if (get_atom(buf, idx, key) < 0 || ei_get_type(buf, idx, &type, &size) < 0) goto bad;
        if (type == ERL_BINARY_EXT) {
            if (bl__term_bin(buf, idx, tmp, sizeof(tmp)) < 0) goto bad;
            v = json_string(tmp);
        } else if (type == ERL_SMALL_INTEGER_EXT || type == ERL_INTEGER_EXT) {
            long l;
            if (ei_decode_long(buf, idx, &l) < 0) goto bad;
            v = json_integer(l);
        } else if (type == ERL_FLOAT_EXT || type == NEW_FLOAT_EXT) {
            double d;
            if (ei_decode_double(buf, idx, &d) < 0) goto bad;
            v = json_real(d);
        } else if (type == ERL_LIST_EXT || type == ERL_NIL_EXT) {
            char **args = NULL;
            int n = 0;
            if (get_str_list(buf, idx, &args, &n, 16, BL_REG_STR_LEN) < 0) goto bad;
            v = json_array();
            for (int a = 0; a < n; a++)
                json_array_append_new(v, json_string(args[a]));
            free_strs(args, n);
        } else {
            goto bad;
        }
        if (!v || json_object_set_new(o, key, v) < 0) goto bad;
    }
    *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return *out ? 0 : -1;
bad:
    json_decref(o);
    return -1;
}

/* An entry map. peer: from a replica message (id and node required). Unknown keys are refused. */
static rentry *decode_entry(const char *buf, int *idx, int peer)
{
    int k;
    if (ei_decode_map_header(buf, idx, &k) < 0 || k > 16) return NULL;
    rentry *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    for (int i = 0; i < k; i++) {
        char key[MAXATOMLEN_UTF8], a[MAXATOMLEN_UTF8];
        long v = 0;
        int ok = -1;
        if (get_atom(buf, idx, key) < 0) goto bad;
        if (!strcmp(key, "id"))
            ok = bl__term_bin(buf, idx, e->id, sizeof(e->id));
        else if (!strcmp(key, "name"))
            ok = bl__term_bin(buf, idx, e->name, sizeof(e->name));
        else if (!strcmp(key, "version"))
            ok = bl__term_bin(buf, idx, e->version, sizeof(e->version));
        else if (!strcmp(key, "address"))
            ok = bl__term_bin(buf, idx, e->address, sizeof(e->address));
        else if (!strcmp(key, "health_endpoint"))
            ok = bl__term_bin(buf, idx, e->health_ep, sizeof(e->health_ep));
        else if (!strcmp(key, "node")) {
            ok = get_atom(buf, idx, a);
            if (ok == 0 && (strlen(a) >= BL_NODE_LEN || !strchr(a, '@'))) ok = -1;
            if (ok == 0) snprintf(e->node, sizeof(e->node), "%s", a);
        } else if (!strcmp(key, "port")) {
            ok = ei_decode_long(buf, idx, &v);
            if (ok == 0 && (v < 0 || v > 65535)) ok = -1;
            e->port = (int)v;
        } else if (!strcmp(key, "ttl_ms")) {
            ok = ei_decode_long(buf, idx, &v);
            if (ok == 0 && (v < 0 || v > 0x7fffffffL)) ok = -1;
            e->ttl_ms = (unsigned)v;
        } else if (!strcmp(key, "health")) {
            ok = get_atom(buf, idx, a);
            int h = ok == 0 ? health_from_name(a) : -1;
            if (h < 0) ok = -1;
            e->health = (bl_health)(h < 0 ? 0 : h);
        } else if (!strcmp(key, "tags")) {
            free_strs(e->tags, e->ntags);
            ok = get_str_list(buf, idx, &e->tags, &e->ntags, BL_REG_MAX_TAGS, TAG_LEN);
        } else if (!strcmp(key, "metadata")) {
            free_strs(e->mkeys, e->nmeta);
            free_strs(e->mvals, e->nmeta);
            ok = get_str_map(buf, idx, &e->mkeys, &e->mvals, &e->nmeta);
        } else if (!strcmp(key, "check") && !peer && !e->check) {
            ok = get_check(buf, idx, &e->check);
        }
        if (ok < 0) goto bad;
    }
    if (!e->name[0]) goto bad;
    if (peer && (!e->id[0] || !e->node[0])) goto bad;
    return e;
bad:
    entry_free(e);
    return NULL;
}

/* ---- events ---- */

static void sweep_watchers(reg *r)
{
    rwatch *w, *t;
    LL_FOREACH_SAFE(r->watchers, w, t) {
        if (!w->dead) continue;
        LL_DELETE(r->watchers, w);
        r->nwatchers--;
        free(w);
    }
}

static void emit(reg *r, bl_registry_event ev, const rentry *e)
{
    if (!r->watchers) return;
    bl_log(r->n, BL_LOG_DEBUG, "registry %s: %s %s on %s", EVENT_NAMES[ev], e->name, e->id,
           e->node);
    ei_x_buff x;
    int rc = ei_x_new_with_version(&x);
    rc |= ei_x_encode_tuple_header(&x, 2);
    rc |= ei_x_encode_atom(&x, "beamlet_registry_event");
    rc |= ei_x_encode_map_header(&x, 2);
    rc |= ei_x_encode_atom(&x, "event");
    rc |= ei_x_encode_atom(&x, EVENT_NAMES[ev]);
    rc |= ei_x_encode_atom(&x, "entry");
    rc |= encode_entry(&x, e, r);
    if (rc) bl_log(r->n, BL_LOG_WARN, "registry: event for %s not encoded (out of memory)", e->id);
    bl_service_entry pe;
    to_public(r, e, &pe);
    r->emitting++;
    rwatch *w;
    LL_FOREACH(r->watchers, w) {
        if (w->dead) continue;
        if (w->is_pid && !rc)
            (void)bl_send(r->proc, &w->pid, x.buff, x.index);
        else if (!w->is_pid)
            w->cb(r->n, ev, &pe, w->ud);
    }
    r->emitting--;
    if (!r->emitting) sweep_watchers(r);
    ei_x_free(&x);
}

static int add_watch(reg *r, const bl_pid *pid, bl_registry_watch_cb cb, void *ud)
{
    rwatch *w;
    if (pid)
        LL_FOREACH(r->watchers, w)
            if (!w->dead && w->is_pid && bl_pid_equal(&w->pid, pid)) return w->id;
    if (r->nwatchers >= MAX_WATCHERS) return BL_ENOMEM;
    w = calloc(1, sizeof(*w));
    if (!w) return BL_ENOMEM;
    w->id = ++r->next_watch_id;
    if (pid) {
        w->is_pid = 1;
        w->pid = *pid;
    }
    w->cb = cb;
    w->ud = ud;
    LL_APPEND(r->watchers, w);
    r->nwatchers++;
    return w->id;
}

static void del_watch_if(reg *r, const bl_pid *pid, int id, const char *node)
{
    rwatch *w;
    LL_FOREACH(r->watchers, w) {
        if (w->dead) continue;
        if ((pid && w->is_pid && bl_pid_equal(&w->pid, pid)) || (id && w->id == id) ||
            (node && w->is_pid && !strcmp(bl_pid_node(&w->pid), node)))
            w->dead = 1;
    }
    if (!r->emitting) sweep_watchers(r);
}

/* ---- replication ---- */

/* ---- changing the table ---- */

static void entry_remove(reg *r, rentry *e)
{
    if (e->local && e->check && r->check_hook) r->check_hook(r->n, e->id, NULL, r->check_ud);
    emit(r, BL_REG_REMOVED, e);
    bl__repl_unlink(r->repl, &e->link);
    HASH_DEL(r->entries, e);
    if (e->local) DL_DELETE2(r->local, e, lprev, lnext);
    oc_add(r, e->node, -1);
    entry_free(e);
}

/* Insert e (owned) or replace the entry with the same key. Returns the entry in the table, or NULL
 * (e freed) when the owner is at max_entries. */
static rentry *upsert(reg *r, rentry *e)
{
    /* e->key is e->node and e->id: clear what follows each string (as make_key does) */
    size_t nl = strnlen(e->node, BL_NODE_LEN - 1), il = strnlen(e->id, BL_REG_ID_LEN - 1);
    memset(e->node + nl, 0, BL_NODE_LEN - nl);
    memset(e->id + il, 0, BL_REG_ID_LEN - il);
    rentry *old = NULL;
    HASH_FIND(hh, r->entries, e->key, KEY_LEN, old);
    if (!old) {
        if (oc_get(r, e->node) >= r->max_entries) {
            bl_log(r->n, BL_LOG_WARN, "registry: %s has %u entries (max_entries): %s dropped",
                   e->node, r->max_entries, e->id);
            entry_free(e);
            return NULL;
        }
        HASH_ADD(hh, r->entries, key, KEY_LEN, e);
        e->local = bl_is_local_node(r->n, e->node);
        if (e->local) DL_APPEND2(r->local, e, lprev, lnext);
        oc_add(r, e->node, 1);
        emit(r, BL_REG_ADDED, e);
        return e;
    }
    bl_health was = old->health;
    /* keep the table's node (hash handle, outstanding count); take everything else */
    memcpy(old->name, e->name, sizeof(old->name));
    memcpy(old->version, e->version, sizeof(old->version));
    memcpy(old->address, e->address, sizeof(old->address));
    memcpy(old->health_ep, e->health_ep, sizeof(old->health_ep));
    old->port = e->port;
    old->ttl_ms = e->ttl_ms;
    old->health = e->health;
    free_strs(old->tags, old->ntags);
    free_strs(old->mkeys, old->nmeta);
    free_strs(old->mvals, old->nmeta);
    old->tags = e->tags;
    old->ntags = e->ntags;
    old->mkeys = e->mkeys;
    old->mvals = e->mvals;
    old->nmeta = e->nmeta;
    free(old->check);
    old->check = e->check;
    e->check = NULL;
    e->tags = e->mkeys = e->mvals = NULL;
    e->ntags = e->nmeta = 0;
    entry_free(e);
    if (was != old->health) emit(r, BL_REG_HEALTH_CHANGED, old);
    return old;
}

static int local_register(reg *r, rentry *e, char *id_out, size_t id_len)
{
    bl_node *n = r->n;
    snprintf(e->node, sizeof(e->node), "%s", n->name);
    if (!e->id[0]) snprintf(e->id, sizeof(e->id), "%llx-%llu", r->epoch_ms, ++r->next_id);
    if (!find_entry(r, e->node, e->id) && oc_get(r, e->node) >= r->max_entries) {
        entry_free(e);
        return BL_ENOMEM;
    }
    char id[BL_REG_ID_LEN];
    snprintf(id, sizeof(id), "%s", e->id);
    /* its check first: a malformed one refuses the registration; none ends an earlier one */
    rentry *was = find_entry(r, e->node, e->id);
    if (r->check_hook && (e->check || (was && was->check)) &&
        r->check_hook(n, id, e->check, r->check_ud) < 0) {
        entry_free(e);
        return BL_EINVAL;
    }
    if (e->check && !r->check_hook) { /* no health service here to run it */
        entry_free(e);
        return BL_EINVAL;
    }
    rentry *in = upsert(r, e);
    if (!in) return BL_ENOMEM;
    in->expires_at = ev_now(n->loop) + in->ttl_ms / 1000.0;
    (void)bl__repl_local_put(r->repl, &in->link);
    if (id_out && id_len) snprintf(id_out, id_len, "%s", id);
    return BL_OK;
}

static int local_deregister(reg *r, const char *id)
{
    rentry *e = find_entry(r, r->n->name, id);
    if (!e) return BL_ENOPROC;
    bl__repl_local_del(r->repl, &e->link);
    entry_remove(r, e);
    return BL_OK;
}

static int local_renew(reg *r, const char *id)
{
    rentry *e = find_entry(r, r->n->name, id);
    if (!e) return BL_ENOPROC;
    e->expires_at = ev_now(r->n->loop) + e->ttl_ms / 1000.0;
    return BL_OK;
}

static int local_set_health(reg *r, const char *id, bl_health h)
{
    if ((unsigned)h > BL_HEALTH_CRITICAL) return BL_EINVAL;
    rentry *e = find_entry(r, r->n->name, id);
    if (!e) return BL_ENOPROC;
    if (e->health == h) return BL_OK;
    e->health = h;
    emit(r, BL_REG_HEALTH_CHANGED, e);
    return bl__repl_local_put(r->repl, &e->link);
}

/* ---- on the replicated-table layer ---- */

#define RENTRY(l) ((rentry *)(void *)((char *)(l)-offsetof(rentry, link)))

static int r_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return encode_entry(x, RENTRY(l), NULL);
}

static int r_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return encode_str(x, RENTRY(l)->id);
}

static int r_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    reg *r = svc;
    rentry *e = decode_entry(buf, idx, 1);
    if (!e || strcmp(e->node, owner)) {
        entry_free(e);
        return -1;
    }
    rentry *in = upsert(r, e); /* NULL: owner at max_entries */
    *out = in ? &in->link : NULL;
    return 0;
}

static int r_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    char id[BL_REG_ID_LEN];
    if (bl__term_bin(buf, idx, id, sizeof(id)) < 0) return -1;
    rentry *e = find_entry(svc, owner, id);
    *out = e ? &e->link : NULL;
    return 0;
}

static int r_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    (void)why;
    entry_remove(svc, RENTRY(l));
    return 0;
}

static void r_owner_gone(void *svc, const char *owner, unsigned n, const char *why)
{
    reg *r = svc;
    if (n) bl_log(r->n, BL_LOG_INFO, "registry: %u entries of %s removed (%s)", n, owner, why);
}

static const bl__repl_ops registry_repl = {
    .proc_name = REG_NAME,
    .tag_add = "bl_reg_add",
    .tag_del = "bl_reg_remove",
    .tag_sync = "bl_reg_sync",
    .tag_want = "bl_reg_want",
    .tag_digest = "bl_reg_digest",
    .encode = r_encode,
    .encode_key = r_encode_key,
    .upsert = r_upsert,
    .find = r_find,
    .remove = r_remove,
    .owner_gone = r_owner_gone,
};

/* ---- load-balanced calls ---- */

static rrent *rr_for(reg *r, const char *name)
{
    rrent *x = NULL;
    HASH_FIND_STR(r->rr, name, x);
    if (x || r->nrr >= MAX_RR) return x;
    if (!(x = calloc(1, sizeof(*x)))) return NULL;
    snprintf(x->name, sizeof(x->name), "%s", name);
    HASH_ADD_STR(r->rr, name, x);
    r->nrr++;
    return x;
}

static int cmp_key(const void *a, const void *b)
{
    return memcmp((*(rentry *const *)a)->key, (*(rentry *const *)b)->key, KEY_LEN);
}

static int tried(const rcall *c, const rentry *e)
{
    for (int i = 0; i < c->ntried; i++)
        if (!memcmp(c->tried[i], e->key, KEY_LEN)) return 1;
    return 0;
}

static int eligible(const rcall *c, const rentry *e, int health)
{
    return (int)e->health == health && !strcmp(e->name, c->name) && !tried(c, e) &&
           !in_maintenance(c->r, e);
}

/* Passing instances first, warning ones when none passes; critical never, nor those of a node in
 * maintenance. Ordered by key so that the round-robin turn is stable. */
static rentry *pick(reg *r, rcall *c)
{
    unsigned k = 0, m = 0;
    int want;
    rentry *e, *t;
    for (want = BL_HEALTH_PASSING; want <= BL_HEALTH_WARNING; want++) {
        HASH_ITER(hh, r->entries, e, t) {
            if (eligible(c, e, want)) k++;
        }
        if (k) break;
    }
    if (!k) return NULL;
    rentry **v = malloc(k * sizeof(*v));
    if (!v) return NULL;
    HASH_ITER(hh, r->entries, e, t) {
        if (m < k && eligible(c, e, want)) v[m++] = e;
    }
    qsort(v, m, sizeof(*v), cmp_key);
    rrent *rr = rr_for(r, c->name);
    unsigned long long turn = rr ? rr->next++ : 0;
    if (c->policy == BL_LB_LEAST_OUTSTANDING) {
        unsigned least = (unsigned)-1, ties = 0;
        for (unsigned i = 0; i < m; i++)
            if (v[i]->outstanding < least) least = v[i]->outstanding;
        for (unsigned i = 0; i < m; i++)
            if (v[i]->outstanding == least) v[ties++] = v[i];
        m = ties;
    }
    e = v[turn % m];
    free(v);
    return e;
}

static void call_free(rcall *c)
{
    DL_DELETE(c->r->calls, c);
    free(c->req);
    free(c);
}

static int encode_call_error(ei_x_buff *x, const rcall *c, int status)
{
    int rc = ei_x_encode_tuple_header(x, 2);
    rc |= ei_x_encode_atom(x, "error");
    return rc | ei_x_encode_atom(x, !c->ntried               ? "no_instances"
                                    : status == BL_ETIMEOUT  ? "timeout"
                                    : status == BL_ENODEDOWN ? "nodedown"
                                    : status == BL_ENOPROC   ? "noproc"
                                    : status == BL_EBUSY     ? "busy"
                                                             : "failed");
}

/* The outcome, from call_done (never from inside the caller's own request). */
static void call_finish(rcall *c, int status, const char *buf, int index)
{
    reg *r = c->r;
    if (c->beam) {
        ei_x_buff x;
        int rc = ei_x_new(&x);
        if (status == BL_OK) {
            int end = index;
            rc |= bl__skip_term(buf, &end);
            rc |= ei_x_encode_tuple_header(&x, 2);
            rc |= ei_x_encode_atom(&x, "ok");
            rc |= ei_x_append_buf(&x, buf + index, end - index);
        } else {
            rc |= encode_call_error(&x, c, status);
        }
        if (!rc)
            bl_reply(r->n, &c->from, x.buff, x.index);
        else
            bl_log(r->n, BL_LOG_WARN,
                   "registry: a call's reply was not encoded: the caller times out");
        ei_x_free(&x);
    } else {
        bl_proc *p = bl_proc_by_pid(r->n, &c->caller);
        if (p && !p->dead) c->cb(p, status, buf, index, c->ud);
    }
    call_free(c);
}

static void call_done(bl_proc *p, int status, const char *buf, int index, void *ud);

/* Try instances until one call is under way (BL_OK) or the budget is spent (the last error;
 * BL_ENOPROC when there was no instance to try). Never finishes c itself. */
static int call_attempt(rcall *c)
{
    reg *r = c->r;
    for (;;) {
        rentry *e = pick(r, c);
        if (!e) return c->ntried ? c->last : BL_ENOPROC;
        memcpy(c->tried[c->ntried++], e->key, KEY_LEN);
        memcpy(c->cur, e->key, KEY_LEN);
        const char *proc = meta_get(e, "process");
        if (!proc || !proc[0] || strlen(proc) >= BL_NAME_LEN) proc = e->name;
        e->outstanding++;
        if (bl_trace_current(r->n)) { /* before the call: its events come after this one */
            bl_log(r->n, BL_LOG_DEBUG, "registry: call to %s: %s on %s", c->name, proc, e->node);
        }
        if (bl_trace_sampled(r->n)) {
            json_t *d = json_pack("{s:s, s:s, s:s}", "service", c->name, "process", proc,
                                  "instance_node", e->node);
            char *txt = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            bl_trace_event(r->n, "registry.call", txt);
            free(txt);
            json_decref(d);
        }
        int rc = bl_call(r->proc, NULL, proc, e->node, c->req, c->reqlen, c->tmo, call_done, c);
        if (rc == BL_OK) return BL_OK;
        e->outstanding--;
        c->last = rc;
        bl_log(r->n, BL_LOG_DEBUG, "registry: call to %s on %s failed (%s)%s", c->name, e->node,
               bl_strerror(rc), c->left > 0 ? ", failing over" : "");
        if (c->left-- <= 0) return rc;
    }
}

static void call_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    (void)p;
    rcall *c = ud;
    rentry *e = NULL;
    HASH_FIND(hh, c->r->entries, c->cur, KEY_LEN, e);
    if (e && e->outstanding) e->outstanding--;
    if (status == BL_OK) {
        call_finish(c, BL_OK, buf, index);
        return;
    }
    c->last = status;
    int retry = status == BL_ETIMEOUT || status == BL_ENODEDOWN || status == BL_ENOPROC;
    bl_log(c->r->n, BL_LOG_DEBUG, "registry: call to %s on %s failed (%s)%s", c->name, c->cur,
           bl_strerror(status), retry && c->left > 0 ? ", failing over" : "");
    if (!retry || c->left-- <= 0) {
        call_finish(c, status, NULL, 0);
        return;
    }
    int rc = call_attempt(c);
    if (rc != BL_OK) call_finish(c, rc, NULL, 0);
}

static rcall *call_new(reg *r, const char *name, const char *req, int reqlen, unsigned tmo,
                       int policy, int retries)
{
    if (!name || !name[0] || strlen(name) >= BL_REG_ID_LEN || !req || reqlen <= 0) return NULL;
    rcall *c = calloc(1, sizeof(*c));
    if (!c || !(c->req = malloc((size_t)reqlen))) {
        free(c);
        return NULL;
    }
    memcpy(c->req, req, (size_t)reqlen);
    c->reqlen = reqlen;
    c->r = r;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->tmo = tmo;
    c->policy = policy < 0 ? (int)r->policy : policy;
    c->left = retries < 0 ? DEFAULT_RETRIES : retries > MAX_RETRIES ? MAX_RETRIES : retries;
    c->last = BL_ENOPROC;
    DL_APPEND(r->calls, c);
    return c;
}

int bl_service_call(bl_proc *p, const char *name, const char *req, int reqlen, unsigned timeout_ms,
                    const bl_service_call_opts *opts, bl_call_cb cb, void *ud)
{
    if (!p || !cb) return BL_EINVAL;
    reg *r = reg_of(bl_proc_node(p));
    if (!r) return BL_ENOPROC;
    if (opts && (opts->policy > BL_LB_LEAST_OUTSTANDING || opts->retries > MAX_RETRIES))
        return BL_EINVAL;
    rcall *c = call_new(r, name, req, reqlen, timeout_ms, opts ? opts->policy : -1,
                        opts ? opts->retries : -1);
    if (!c) return BL_EINVAL;
    c->caller = *bl_self(p);
    c->cb = cb;
    c->ud = ud;
    int rc = call_attempt(c);
    if (rc != BL_OK) call_free(c); /* as bl_call: on an error return cb never runs */
    return rc;
}

/* ---- the gen_server API ---- */

static int policy_from_name(const char *a)
{
    if (!strcmp(a, "round_robin")) return BL_LB_ROUND_ROBIN;
    if (!strcmp(a, "least_outstanding")) return BL_LB_LEAST_OUTSTANDING;
    return -1;
}

/* {call, Name, Req, TimeoutMs[, #{policy => P, retries => N, trace => <<Traceparent>>}]} */
static int beam_call(reg *r, const bl_from *from, const char *buf, int j, int arity,
                     ei_x_buff *reply)
{
    char name[BL_REG_ID_LEN];
    long tmo;
    if (bl__term_text(buf, &j, name, sizeof(name)) < 0 || !name[0]) return -1;
    int req = j;
    if (bl__skip_term(buf, &j) < 0) return -1;
    int reqlen = j - req;
    if (ei_decode_long(buf, &j, &tmo) < 0 || tmo < 0 || tmo > 0x7fffffffL) return -1;
    int policy = -1, retries = -1, k;
    if (arity == 5) {
        if (ei_decode_map_header(buf, &j, &k) < 0) return -1;
        for (int i = 0; i < k; i++) {
            char key[MAXATOMLEN_UTF8], a[MAXATOMLEN_UTF8];
            long v;
            if (get_atom(buf, &j, key) < 0) return -1;
            if (!strcmp(key, "policy")) {
                if (get_atom(buf, &j, a) < 0 || (policy = policy_from_name(a)) < 0) return -1;
            } else if (!strcmp(key, "retries")) {
                if (ei_decode_long(buf, &j, &v) < 0 || v < 0 || v > MAX_RETRIES) return -1;
                retries = (int)v;
            } else if (!strcmp(key, "trace")) { /* the caller's traceparent (docs/tracing.md) */
                char tp[BL_TRACEPARENT_LEN + 8];
                long len;
                int type, size;
                bl_trace t;
                if (ei_get_type(buf, &j, &type, &size) < 0 || type != ERL_BINARY_EXT ||
                    (size_t)size >= sizeof(tp) || ei_decode_binary(buf, &j, tp, &len) < 0)
                    return -1;
                if (bl_trace_parse(tp, (size_t)len, &t) == BL_OK) {
                    bl_trace hop;
                    bl_trace_child(&t, &hop);
                    bl_trace_set(r->n, &hop); /* this request's context, cleared after it */
                }
            } else {
                return -1;
            }
        }
    }
    rcall *c = call_new(r, name, buf + req, reqlen, (unsigned)tmo, policy, retries);
    if (!c) return -1;
    c->beam = 1;
    c->from = *from;
    int rc = call_attempt(c);
    if (rc == BL_OK) return 1; /* answered from call_done */
    rc = encode_call_error(reply, c, rc);
    call_free(c);
    return rc;
}

typedef struct {
    bl_service_query q;
    char name[BL_REG_ID_LEN];
    char **all, **any, **mk, **mv;
} bquery;

static void bquery_free(bquery *b)
{
    free_strs(b->all, b->q.ntags_all);
    free_strs(b->any, b->q.ntags_any);
    free_strs(b->mk, b->q.nmeta);
    free_strs(b->mv, b->q.nmeta);
}

static int decode_query(const char *buf, int *j, bquery *b)
{
    int k;
    memset(b, 0, sizeof(*b));
    b->q.health = -1;
    b->q.usable = 1; /* without `health`: what a call would choose, passing first */
    int any = 0;
    if (ei_decode_map_header(buf, j, &k) < 0) return -1;
    for (int i = 0; i < k; i++) {
        char key[MAXATOMLEN_UTF8], a[MAXATOMLEN_UTF8];
        int ok = -1;
        if (get_atom(buf, j, key) < 0) return -1;
        if (!strcmp(key, "name") && !b->q.name) {
            ok = bl__term_text(buf, j, b->name, sizeof(b->name));
            b->q.name = b->name;
        } else if (!strcmp(key, "tags_all") && !b->all) {
            ok = get_str_list(buf, j, &b->all, &b->q.ntags_all, BL_REG_MAX_TAGS, TAG_LEN);
        } else if (!strcmp(key, "tags_any") && !b->any) {
            ok = get_str_list(buf, j, &b->any, &b->q.ntags_any, BL_REG_MAX_TAGS, TAG_LEN);
        } else if (!strcmp(key, "health") && b->q.health < 0 && !any) {
            ok = get_atom(buf, j, a);
            if (ok == 0 && !strcmp(a, "any"))
                any = 1;
            else if (ok == 0 && (b->q.health = health_from_name(a)) < 0)
                ok = -1;
            b->q.usable = 0;
        } else if (!strcmp(key, "metadata") && !b->mk) {
            ok = get_str_map(buf, j, &b->mk, &b->mv, &b->q.nmeta);
        }
        if (ok < 0) return -1;
    }
    b->q.tags_all = (const char *const *)b->all;
    b->q.tags_any = (const char *const *)b->any;
    b->q.meta_keys = (const char *const *)b->mk;
    b->q.meta_values = (const char *const *)b->mv;
    return 0;
}

static int reply_rc(ei_x_buff *reply, int rc)
{
    if (rc == BL_OK) return ei_x_encode_atom(reply, "ok");
    int e = ei_x_encode_tuple_header(reply, 2);
    e |= ei_x_encode_atom(reply, "error");
    return e | ei_x_encode_atom(reply, rc == BL_ENOPROC  ? "not_found"
                                       : rc == BL_ENOMEM ? "full"
                                                         : "badarg");
}

/* ---- requests: gen_server calls to beamlet_registry ---- */

static int rq_config(void *ud, const bl_from *from, const char *buf, int j, int arity,
                     ei_x_buff *reply)
{ /* the settings in force */
    (void)from, (void)buf, (void)j, (void)arity;
    reg *r = ud;
    int rc = ei_x_encode_map_header(reply, 2);
    rc |= ei_x_encode_atom(reply, "policy");
    rc |= ei_x_encode_atom(reply, r->policy == BL_LB_LEAST_OUTSTANDING ? "least_outstanding"
                                                                       : "round_robin");
    rc |= ei_x_encode_atom(reply, "max_entries");
    return rc | ei_x_encode_ulong(reply, r->max_entries);
}

static int rq_register(void *ud, const bl_from *from, const char *buf, int j, int arity,
                       ei_x_buff *reply)
{
    (void)from, (void)arity;
    char id[BL_REG_ID_LEN];
    rentry *e = decode_entry(buf, &j, 0);
    if (!e) return reply_rc(reply, BL_EINVAL);
    int rc = local_register(ud, e, id, sizeof(id));
    if (rc != BL_OK) return reply_rc(reply, rc);
    rc = ei_x_encode_tuple_header(reply, 2);
    rc |= ei_x_encode_atom(reply, "ok");
    return rc | encode_str(reply, id);
}

static int rq_deregister(void *ud, const bl_from *from, const char *buf, int j, int arity,
                         ei_x_buff *reply)
{
    (void)from, (void)arity;
    char id[BL_REG_ID_LEN];
    if (bl__term_bin(buf, &j, id, sizeof(id)) < 0) return reply_rc(reply, BL_EINVAL);
    return reply_rc(reply, local_deregister(ud, id));
}

static int rq_renew(void *ud, const bl_from *from, const char *buf, int j, int arity,
                    ei_x_buff *reply)
{
    (void)from, (void)arity;
    char id[BL_REG_ID_LEN];
    if (bl__term_bin(buf, &j, id, sizeof(id)) < 0) return reply_rc(reply, BL_EINVAL);
    return reply_rc(reply, local_renew(ud, id));
}

static int rq_set_health(void *ud, const bl_from *from, const char *buf, int j, int arity,
                         ei_x_buff *reply)
{
    (void)from, (void)arity;
    char id[BL_REG_ID_LEN], a[MAXATOMLEN_UTF8];
    int h;
    if (bl__term_bin(buf, &j, id, sizeof(id)) < 0 || get_atom(buf, &j, a) < 0 ||
        (h = health_from_name(a)) < 0)
        return reply_rc(reply, BL_EINVAL);
    return reply_rc(reply, local_set_health(ud, id, (bl_health)h));
}

typedef struct {
    ei_x_buff *x;
    int rc;
} find_ctx;

static void find_encode(const reg *r, rentry *e, void *ud)
{
    find_ctx *c = ud;
    c->rc |= ei_x_encode_list_header(c->x, 1);
    c->rc |= encode_entry(c->x, e, r);
}

static int rq_find(void *ud, const bl_from *from, const char *buf, int j, int arity,
                   ei_x_buff *reply)
{
    (void)from, (void)arity;
    reg *r = ud;
    bquery b;
    if (decode_query(buf, &j, &b) < 0) {
        bquery_free(&b);
        return reply_rc(reply, BL_EINVAL);
    }
    find_ctx fc = {reply, 0};
    each_match(r, &b.q, find_encode, &fc);
    int rc = fc.rc;
    bquery_free(&b);
    return rc | ei_x_encode_empty_list(reply);
}

static int rq_watch(void *ud, const bl_from *from, const char *buf, int j, int arity,
                    ei_x_buff *reply)
{
    (void)from, (void)arity;
    bl_pid pid;
    if (bl_decode_pid(((reg *)ud)->n, buf, &j, &pid) < 0) return reply_rc(reply, BL_EINVAL);
    int rc = add_watch(ud, &pid, NULL, NULL);
    return reply_rc(reply, rc > 0 ? BL_OK : rc);
}

static int rq_unwatch(void *ud, const bl_from *from, const char *buf, int j, int arity,
                      ei_x_buff *reply)
{
    (void)from, (void)arity;
    bl_pid pid;
    if (bl_decode_pid(((reg *)ud)->n, buf, &j, &pid) < 0) return reply_rc(reply, BL_EINVAL);
    del_watch_if(ud, &pid, 0, NULL);
    return reply_rc(reply, BL_OK);
}

static int rq_call(void *ud, const bl_from *from, const char *buf, int j, int arity,
                   ei_x_buff *reply)
{
    int rc = beam_call(ud, from, buf, j, arity, reply);
    if (rc >= 0) return rc;
    reply->index = 0;
    return reply_rc(reply, BL_EINVAL);
}

static int rq_configure(void *ud, const bl_from *from, const char *buf, int j, int arity,
                        ei_x_buff *reply)
{
    (void)from, (void)arity;
    reg *r = ud;
    char a[MAXATOMLEN_UTF8];
    int k, policy = -1;
    long maxe = 0;
    if (ei_decode_map_header(buf, &j, &k) < 0) return reply_rc(reply, BL_EINVAL);
    for (int i = 0; i < k; i++) {
        if (get_atom(buf, &j, a) < 0) return reply_rc(reply, BL_EINVAL);
        if (!strcmp(a, "policy")) {
            if (get_atom(buf, &j, a) < 0 || (policy = policy_from_name(a)) < 0)
                return reply_rc(reply, BL_EINVAL);
        } else if (!strcmp(a, "max_entries")) {
            if (ei_decode_long(buf, &j, &maxe) < 0 || maxe < 1 || maxe > 1000000)
                return reply_rc(reply, BL_EINVAL);
        } else {
            return reply_rc(reply, BL_EINVAL);
        }
    }
    if (policy >= 0) r->policy = (bl_lb_policy)policy;
    if (maxe > 0) r->max_entries = (unsigned)maxe;
    return reply_rc(reply, BL_OK);
}

static const bl__req REQUESTS[] = {
    {"config", 0, 0, rq_config},
    {"register", 2, 2, rq_register},
    {"deregister", 2, 2, rq_deregister},
    {"renew", 2, 2, rq_renew},
    {"set_health", 3, 3, rq_set_health},
    {"find", 2, 2, rq_find},
    {"watch", 2, 2, rq_watch},
    {"unwatch", 2, 2, rq_unwatch},
    {"call", 4, 5, rq_call},
    {"configure", 2, 2, rq_configure},
};

static int reg_call(bl_proc *self, const bl_from *from, const char *buf, int idx, ei_x_buff *reply,
                    void *ud)
{
    (void)self;
    int rc = bl__req_dispatch(REQUESTS, sizeof(REQUESTS) / sizeof(REQUESTS[0]), ud, from, buf, idx,
                              reply);
    return rc == BL__REQ_NONE ? reply_rc(reply, BL_EINVAL) : rc;
}

static void reg_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    reg *r = ud;
    if (!bl__repl_handle(r->repl, msg))
        bl_log(r->n, BL_LOG_DEBUG, "registry: unexpected message dropped");
}

/* ---- node and cluster events, the tick ---- */

static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    reg *r = ud;
    if (!bl_is_tool_node(node) && ev != BL_NODEUP) del_watch_if(r, NULL, 0, node);
}

static void on_tick(bl_node *n, void *ud)
{
    reg *r = ud;
    ev_tstamp now = ev_now(n->loop);
    rentry *e, *t;
    DL_FOREACH_SAFE2(r->local, e, t, lnext) {
        if (!e->ttl_ms || now < e->expires_at) continue;
        bl_log(n, BL_LOG_INFO, "registry: %s (%s) expired: not renewed within %u ms", e->id,
               e->name, e->ttl_ms);
        bl__repl_local_del(r->repl, &e->link);
        entry_remove(r, e);
    }
}

static void reg_cfg_hook(bl_node *n, const char *key, void *ud);

static void reg_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    reg *r = ud;
    bl_node *n = r->n;
    bl__node_off_config(n, reg_cfg_hook, r);
    if (r->timer_id > 0) bl_timer_cancel(n, r->timer_id);
    if (r->nodemon_id > 0) bl_demonitor_nodes(n, r->nodemon_id);
    bl__repl_free(r->repl);
    r->repl = NULL;
    rentry *e, *t;
    HASH_ITER(hh, r->entries, e, t) {
        HASH_DEL(r->entries, e);
        entry_free(e);
    }
    ocount *o, *ot;
    HASH_ITER(hh, r->counts, o, ot) {
        HASH_DEL(r->counts, o);
        free(o);
    }
    rrent *x, *xt;
    HASH_ITER(hh, r->rr, x, xt) {
        HASH_DEL(r->rr, x);
        free(x);
    }
    rwatch *w, *wt;
    LL_FOREACH_SAFE(r->watchers, w, wt)
        free(w);
    rcall *c, *ct; /* their bl_calls were dropped with this process */
    DL_FOREACH_SAFE(r->calls, c, ct) {
        DL_DELETE(r->calls, c);
        free(c->req);
        free(c);
    }
    free(r);
}

int bl_registry_start(bl_node *n);

/* registry_policy is live (cluster configuration, SIGHUP): the default policy follows it */
static void reg_cfg_hook(bl_node *n, const char *key, void *ud)
{
    reg *r = ud;
    if (strcmp(key, "registry_policy")) return;
    r->policy = strcmp(n->cfg.registry_policy, "least_outstanding") == 0 ? BL_LB_LEAST_OUTSTANDING
                                                                         : BL_LB_ROUND_ROBIN;
}

int bl_registry_start(bl_node *n)
{
    reg *r = calloc(1, sizeof(*r));
    if (!r) return BL_ENOMEM;
    r->n = n;
    r->policy = strcmp(n->cfg.registry_policy, "least_outstanding") == 0 ? BL_LB_LEAST_OUTSTANDING
                                                                         : BL_LB_ROUND_ROBIN;
    r->max_entries =
        n->cfg.registry_max_entries ? n->cfg.registry_max_entries : DEFAULT_MAX_ENTRIES;
    r->epoch_ms = bl_now_ms();
    static const bl_proc_ops ops = {
        .on_msg = reg_msg, .on_call = reg_call, .on_terminate = reg_terminate};
    int rc = bl_spawn(n, REG_NAME, &ops, r, &r->proc);
    if (rc != BL_OK) {
        free(r);
        return rc;
    }
    r->nodemon_id = bl_monitor_nodes(n, on_node, r);
    r->repl = bl__repl_new(n, r->proc, &registry_repl, r);
    r->timer_id = bl_timer(n, TICK_MS, TICK_MS, on_tick, r);
    if (r->nodemon_id < 0 || !r->repl || r->timer_id < 0) return BL_ENOMEM;
    return bl__node_on_config(n, reg_cfg_hook, r);
}

/* ---- public C API ---- */

static int copy_strs(char ***out, const char *const *in, int k, size_t len)
{
    *out = NULL;
    if (k == 0) return 0;
    if (!in) return -1;
    char **v = calloc((size_t)k + 1, sizeof(char *));
    if (!v) return -1;
    for (int i = 0; i < k; i++) {
        if (!in[i] || strlen(in[i]) >= len || !(v[i] = strdup(in[i]))) {
            free_strs(v, i + 1);
            return -1;
        }
    }
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (!src) src = "";
    if (strlen(src) >= cap) return -1;
    snprintf(dst, cap, "%s", src);
    return 0;
}

int bl_registry_register(bl_node *n, const bl_service_entry *in, char *id_out, size_t id_len)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    if (!in || !in->name || !in->name[0] || in->port < 0 || in->port > 65535 ||
        (unsigned)in->health > BL_HEALTH_CRITICAL || in->ttl_ms > 0x7fffffffu || in->ntags < 0 ||
        in->ntags > BL_REG_MAX_TAGS || in->nmeta < 0 || in->nmeta > BL_REG_MAX_META)
        return BL_EINVAL;
    rentry *e = calloc(1, sizeof(*e));
    if (!e) return BL_ENOMEM;
    if (copy_str(e->id, sizeof(e->id), in->id) < 0 ||
        copy_str(e->name, sizeof(e->name), in->name) < 0 ||
        copy_str(e->version, sizeof(e->version), in->version) < 0 ||
        copy_str(e->address, sizeof(e->address), in->address) < 0 ||
        copy_str(e->health_ep, sizeof(e->health_ep), in->health_endpoint) < 0 ||
        copy_strs(&e->tags, in->tags, in->ntags, TAG_LEN) < 0)
        goto bad;
    e->ntags = in->ntags;
    if (copy_strs(&e->mkeys, in->meta_keys, in->nmeta, META_KEY_LEN) < 0) goto bad;
    if (copy_strs(&e->mvals, in->meta_values, in->nmeta, BL_REG_STR_LEN) < 0) {
        free_strs(e->mkeys, in->nmeta);
        e->mkeys = NULL;
        goto bad;
    }
    e->nmeta = in->nmeta;
    e->port = in->port;
    e->ttl_ms = in->ttl_ms;
    e->health = in->health;
    if (in->check_json && !(e->check = strdup(in->check_json))) goto bad;
    return local_register(r, e, id_out, id_len);
bad:
    entry_free(e);
    return BL_EINVAL;
}

int bl_registry_deregister(bl_node *n, const char *id)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    if (!id) return BL_EINVAL;
    return local_deregister(r, id);
}

int bl_registry_renew(bl_node *n, const char *id)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    if (!id) return BL_EINVAL;
    return local_renew(r, id);
}

int bl_registry_set_health(bl_node *n, const char *id, bl_health h)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    if (!id) return BL_EINVAL;
    return local_set_health(r, id, h);
}

typedef struct find_cb {
    bl_registry_entry_cb cb;
    void *ud;
} find_cb;

static void find_public(const reg *r, rentry *e, void *ud)
{
    find_cb *f = ud;
    if (!f->cb) return;
    bl_service_entry pe;
    to_public(r, e, &pe);
    f->cb(r->n, &pe, f->ud);
}

int bl_registry_find(bl_node *n, const bl_service_query *q, bl_registry_entry_cb cb, void *ud)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    find_cb f = {cb, ud};
    return each_match(r, q, find_public, &f);
}

int bl__registry_set_check_hook(bl_node *n, bl__reg_check_fn fn, void *ud)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    r->check_hook = fn;
    r->check_ud = ud;
    return BL_OK;
}

int bl__registry_set_exclude(bl_node *n, bl__reg_exclude_fn fn, void *ud)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    r->excluded = fn;
    r->excluded_ud = ud;
    return BL_OK;
}

int bl_registry_watch(bl_node *n, bl_registry_watch_cb cb, void *ud)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    if (!cb) return BL_EINVAL;
    return add_watch(r, NULL, cb, ud);
}

void bl_registry_unwatch(bl_node *n, int id)
{
    reg *r = reg_of(n);
    if (r && id > 0) del_watch_if(r, NULL, id, NULL);
}

int bl_registry_configure(bl_node *n, bl_lb_policy policy, unsigned max_entries)
{
    reg *r = reg_of(n);
    if (!r) return BL_ENOPROC;
    if ((unsigned)policy > BL_LB_LEAST_OUTSTANDING) return BL_EINVAL;
    r->policy = policy;
    if (max_entries) r->max_entries = max_entries;
    return BL_OK;
}
