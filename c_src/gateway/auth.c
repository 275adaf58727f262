/* auth.c - who may do what on the gateway: API keys, roles, rate limits and the audit trail.
 *
 * A key is "blk_<id>_<secret>" (64 bits of id, 192 bits of secret from OpenSSL's RAND_bytes).
 * Only the SHA-256 of the whole key is kept (the secret has full entropy, so a slow password
 * hash buys nothing), and the comparison is CRYPTO_memcmp: constant time. Keys are replicated to
 * every beamlet member through the `beamlet_gateway` processes ({bl_gw_keys, [Key]}, a full table
 * to each member that joins), so a key made on one node works on every node that serves HTTP;
 * a revocation is a tombstone that wins every merge. The table is also kept on disk, so that a
 * gateway restarted alone (no member to resync from) still knows its keys: DATA_DIR/gateway-
 * apikeys.json with data_dir set, else gateway-apikeys.json next to the node's health database
 * (its state directory: docs/health.md); written on change, renamed into place, no fsync.
 *
 * Roles: viewer reads, operator also writes services, publishes, acks and sets maintenance,
 * admin also manages keys and asks nodes to leave. Without a key, reads are allowed when the
 * gateway listens on loopback (or http_public_read is set); writes always need one.
 * Rate limits: a token bucket per key and per client address (http_rate_limit/s, burst
 * http_rate_burst), 429 with Retry-After when empty.
 * Audit: every write and every refusal, in a bounded ring here (1024 entries, /api/v1/audit), in
 * the node's log, and in the health store's event log (type audit), which survives restarts. */
#include "gw_int.h"
#include "../health/hstore.h"
#include "../runtime/crypto.h"
#include "../store/store.h"
#include "beamlet/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUDIT_CAP 1024
#define MAX_BUCKETS 10000
#define MAX_KEYS 4096

static void hexs(const unsigned char *b, size_t n, char *out)
{
    static const char *H = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = H[b[i] >> 4];
        out[2 * i + 1] = H[b[i] & 15];
    }
    out[2 * n] = 0;
}

static int sha256(const char *s, size_t len, unsigned char out[32])
{
    const bl_crypto *c = bl_crypto_get();
    unsigned int olen = 0;
    if (!c || !c->Digest(s, len, out, &olen, c->sha256(), NULL) || olen != 32) return -1;
    return 0;
}

/* ---- persistence ---- */

/* DATA_DIR/gateway-apikeys.json, or the file of that name in the node's state directory */
static void keys_path(bl__gw *g, char *out, size_t cap)
{
    if (g->n->cfg.data_dir[0]) {
        snprintf(out, cap, "%s/gateway-apikeys.json", g->n->cfg.data_dir);
        return;
    }
    char db[600];
    bl__hstore_path(&g->n->cfg, bl_node_name(g->n), db, sizeof(db));
    char *slash = strrchr(db, '/');
    if (slash) *slash = 0;
    snprintf(out, cap, "%s/gateway-apikeys.json", slash ? db : ".");
}

static void keys_save(bl__gw *g)
{
    char path[600], tmp[620];
    keys_path(g, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    bl__store_mkdirs(path);
    json_t *a = json_array();
    gw_apikey *k, *t;
    HASH_ITER(hh, g->keys, k, t) {
        char h[65];
        hexs(k->hash, 32, h);
        json_t *o = bl__gw_key_json(k);
        json_object_set_new(o, "sha256", json_string(h));
        json_array_append_new(a, o);
    }
    if (json_dump_file(a, tmp, JSON_INDENT(1)) == 0 && rename(tmp, path) == 0) {
        /* saved */
    } else {
        bl_log(g->n, BL_LOG_WARN, "gateway: cannot save %s: %s", path, strerror(errno));
    }
    json_decref(a);
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (!s || strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

static gw_apikey *key_add(bl__gw *g, const gw_apikey *in)
{
    gw_apikey *k = NULL;
    HASH_FIND_STR(g->keys, in->id, k);
    if (k) {
        if (in->revoked && !k->revoked) {
            k->revoked = 1;
            k->revoked_ms = in->revoked_ms;
            return k;
        }
        return NULL; /* nothing new */
    }
    if (HASH_COUNT(g->keys) >= MAX_KEYS) return NULL;
    k = malloc(sizeof(*k));
    if (!k) return NULL;
    *k = *in;
    HASH_ADD_STR(g->keys, id, k);
    return k;
}

static void keys_load(bl__gw *g)
{
    char path[600];
    keys_path(g, path, sizeof(path));
    if (access(path, F_OK) != 0) return;
    json_error_t je;
    json_t *a = json_load_file(path, 0, &je), *o;
    if (!json_is_array(a)) {
        bl_log(g->n, BL_LOG_WARN, "gateway: ignoring %s: %s", path, je.text);
        json_decref(a);
        return;
    }
    size_t i;
    json_array_foreach(a, i, o)
    {
        gw_apikey k = {0};
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *on = json_string_value(json_object_get(o, "created_on"));
        k.role = bl__gw_role_parse(json_string_value(json_object_get(o, "role")));
        if (!id || strlen(id) >= sizeof(k.id) || k.role < 0 ||
            unhex(json_string_value(json_object_get(o, "sha256")), k.hash, 32))
            continue;
        snprintf(k.id, sizeof(k.id), "%s", id);
        snprintf(k.name, sizeof(k.name), "%s", name ? name : "");
        snprintf(k.created_on, sizeof(k.created_on), "%s", on ? on : "");
        k.created_ms = (unsigned long long)json_integer_value(json_object_get(o, "created_ms"));
        k.revoked = json_is_true(json_object_get(o, "revoked"));
        k.revoked_ms = (unsigned long long)json_integer_value(json_object_get(o, "revoked_ms"));
        key_add(g, &k);
    }
    json_decref(a);
}

/* ---- keys ---- */

json_t *bl__gw_key_json(const gw_apikey *k)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:I}", "id", k->id, "name", k->name, "role",
                     bl__gw_role_name(k->role), "created_ms", (json_int_t)k->created_ms,
                     "created_on", k->created_on, "revoked", k->revoked, "revoked_ms",
                     (json_int_t)k->revoked_ms);
}

char *bl__gw_key_create(bl__gw *g, int role, const char *name, json_t **info)
{
    const bl_crypto *c = bl_crypto_get();
    unsigned char idb[8], sec[24];
    if (!c || c->RAND_bytes(idb, 8) != 1 || c->RAND_bytes(sec, 24) != 1) return NULL;
    gw_apikey k = {0};
    hexs(idb, 8, k.id);
    char sh[49];
    hexs(sec, 24, sh);
    char *key = malloc(96);
    if (!key) return NULL;
    snprintf(key, 96, "blk_%s_%s", k.id, sh);
    if (sha256(key, strlen(key), k.hash)) {
        free(key);
        return NULL;
    }
    snprintf(k.name, sizeof(k.name), "%s", name && *name ? name : k.id);
    k.role = role;
    k.created_ms = bl_now_ms();
    snprintf(k.created_on, sizeof(k.created_on), "%s", bl_node_name(g->n));
    gw_apikey *added = key_add(g, &k);
    if (!added) {
        free(key);
        return NULL;
    }
    keys_save(g);
    bl__gw_keys_send(g, NULL, added);
    if (info) *info = bl__gw_key_json(added);
    return key;
}

json_t *bl__gw_key_list(bl__gw *g)
{
    json_t *a = json_array();
    gw_apikey *k, *t;
    HASH_ITER(hh, g->keys, k, t)
        json_array_append_new(a, bl__gw_key_json(k));
    return a;
}

int bl__gw_key_revoke(bl__gw *g, const char *id)
{
    gw_apikey *k = NULL;
    HASH_FIND_STR(g->keys, id, k);
    if (!k || k->revoked) return BL_ENOPROC;
    k->revoked = 1;
    k->revoked_ms = bl_now_ms();
    keys_save(g);
    bl__gw_keys_send(g, NULL, k);
    return BL_OK;
}

void bl__gw_keys_encode(bl__gw *g, ei_x_buff *x, const gw_apikey *only)
{
    ei_x_encode_version(x);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "bl_gw_keys");
    if (only) {
        ei_x_encode_list_header(x, 1);
        bl__gw_key_encode(x, only);
    } else {
        gw_apikey *k, *t;
        HASH_ITER(hh, g->keys, k, t) {
            ei_x_encode_list_header(x, 1);
            bl__gw_key_encode(x, k);
        }
    }
    ei_x_encode_empty_list(x);
}

void bl__gw_keys_send(bl__gw *g, const char *node, const gw_apikey *only)
{
    ei_x_buff x;
    ei_x_new(&x);
    bl__gw_keys_encode(g, &x, only);
    if (node)
        bl_cluster_send(g->proc, GW_PROC, node, &x);
    else
        bl_cluster_send_peers(g->proc, GW_PROC, &x, -1);
    ei_x_free(&x);
}

typedef struct {
    bl__gw *g;
    int changed;
} merge_ctx;

static void merge_one(const gw_apikey *k, void *ud)
{
    merge_ctx *m = ud;
    if (key_add(m->g, k)) m->changed = 1;
}

/* {bl_gw_keys, [Key]} from a peer: buf/idx at the list. The keys before a malformed one are
 * kept; the rest of that message is dropped with a log line. */
void bl__gw_keys_merge(bl__gw *g, const char *buf, int *idx)
{
    merge_ctx m = {g, 0};
    if (bl__gw_keys_decode(buf, idx, merge_one, &m) < 0)
        bl_log(g->n, BL_LOG_WARN, "gateway: a malformed API key sync message was dropped");
    if (m.changed) keys_save(g);
}

/* The key named by an Authorization header value, or NULL. */
static gw_apikey *key_check(bl__gw *g, const char *key)
{
    char id[24];
    if (strncmp(key, "blk_", 4) || strlen(key) != 4 + 16 + 1 + 48 || key[20] != '_') return NULL;
    memcpy(id, key + 4, 16);
    id[16] = 0;
    gw_apikey *k = NULL;
    HASH_FIND_STR(g->keys, id, k);
    unsigned char h[32];
    const bl_crypto *c = bl_crypto_get();
    if (sha256(key, strlen(key), h) || !c) return NULL;
    if (!k) return NULL;
    /* constant time over the hash: the id is public, the secret is not */
    if (c->memcmp_ct(h, k->hash, 32) != 0 || k->revoked) return NULL;
    return k;
}

/* ---- rate limits ---- */

static int rate_take(bl__gw *g, const char *who)
{
    const bl_config *cfg = &g->n->cfg;
    ev_tstamp now = ev_now(g->n->loop);
    gw_bucket *b = NULL;
    HASH_FIND_STR(g->buckets, who, b);
    if (!b) {
        if (g->nbuckets >= MAX_BUCKETS) bl__gw_rate_prune(g);
        if (g->nbuckets >= MAX_BUCKETS) return 0;
        b = calloc(1, sizeof(*b));
        if (!b) return 0;
        snprintf(b->who, sizeof(b->who), "%s", who);
        b->tokens = cfg->http_rate_burst;
        b->at = now;
        HASH_ADD_STR(g->buckets, who, b);
        g->nbuckets++;
    }
    b->tokens += (now - b->at) * cfg->http_rate_limit;
    if (b->tokens > cfg->http_rate_burst) b->tokens = cfg->http_rate_burst;
    b->at = now;
    if (b->tokens < 1.0) return 0;
    b->tokens -= 1.0;
    return 1;
}

void bl__gw_rate_prune(bl__gw *g)
{
    ev_tstamp now = ev_now(g->n->loop);
    const bl_config *cfg = &g->n->cfg;
    gw_bucket *b, *t;
    HASH_ITER(hh, g->buckets, b, t) {
        /* full again: forgetting it changes nothing */
        if (b->tokens + (now - b->at) * cfg->http_rate_limit >= cfg->http_rate_burst) {
            HASH_DEL(g->buckets, b);
            free(b);
            g->nbuckets--;
        }
    }
}

/* ---- audit ---- */

void bl__gw_audit(bl__gw *g, gw_req *r, int status, const char *outcome)
{
    if (r->audited) return;
    r->audited = 1;
    if (!g->audit) return;
    gw_audit *a;
    if (g->audit_len < g->audit_cap) {
        a = &g->audit[(g->audit_head + g->audit_len++) % g->audit_cap];
    } else {
        a = &g->audit[g->audit_head];
        g->audit_head = (g->audit_head + 1) % g->audit_cap;
    }
    memset(a, 0, sizeof(*a));
    a->seq = ++g->next_audit;
    a->time_ms = bl_now_ms();
    a->status = status;
    snprintf(a->who, sizeof(a->who), "%s", r->who);
    snprintf(a->addr, sizeof(a->addr), "%s", r->addr);
    snprintf(a->method, sizeof(a->method), "%s", r->method);
    snprintf(a->path, sizeof(a->path), "%s", r->path);
    snprintf(a->outcome, sizeof(a->outcome), "%s", outcome);
    bl_log(g->n, BL_LOG_INFO, "audit: %s from %s %s %.200s -> %d %s", a->who, a->addr, a->method,
           a->path, status, outcome);
    /* and into the node's event log and audit trail on disk (the health store) */
    json_t *b = json_pack("{s:s, s:s, s:i, s:s, s:s}", "address", a->addr, "method", a->method,
                          "status", status, "outcome", outcome, "source", "http");
    json_t *p = json_string(a->path);
    json_object_set_new(b, "path", p ? p : json_string("(not UTF-8)"));
    char *text = json_dumps(b, JSON_COMPACT);
    bl_health_event(g->n, "audit", status >= 400 ? "warn" : "info", a->who, text);
    free(text);
    json_decref(b);
}

static json_t *audit_json(const gw_audit *a)
{
    json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:s}", "seq", (json_int_t)a->seq,
                          "time_ms", (json_int_t)a->time_ms, "who", a->who, "address", a->addr,
                          "method", a->method, "status", a->status, "outcome", a->outcome);
    json_t *p = json_string(a->path);
    json_object_set_new(o, "path", p ? p : json_string("(not UTF-8)"));
    return o;
}

void bl__gw_audit_query(gw_req *r)
{
    bl__gw *g = r->g;
    const char *l = bl__gw_arg(r, "limit");
    long limit = l ? strtol(l, NULL, 10) : 100;
    if (limit <= 0 || limit > AUDIT_CAP) limit = AUDIT_CAP;
    json_t *a = json_array();
    for (unsigned i = g->audit_len; i-- > 0 && (long)json_array_size(a) < limit;)
        json_array_append_new(a, audit_json(&g->audit[(g->audit_head + i) % g->audit_cap]));
    bl__gw_reply_json(r, 200, a);
}

/* ---- the decision ---- */

static int refuse(gw_req *r, int status, const char *title, const char *detail, const char *outcome)
{
    bl__gw_problem(r, status, title, detail);
    bl__gw_audit(r->g, r, status, outcome);
    return 1;
}

int bl__gw_authorize(gw_req *r)
{
    bl__gw *g = r->g;
    const gw_route *rt = r->route;
    const char *auth = bl__gw_header(r, "Authorization");
    gw_apikey *k = NULL;
    if (auth) {
        if (strncasecmp(auth, "Bearer ", 7) || !(k = key_check(g, auth + 7)))
            return refuse(r, 401, "Unauthorized", "the API key is unknown, revoked or malformed",
                          "bad_key");
        snprintf(r->who, sizeof(r->who), "%s", k->name);
        snprintf(r->key_id, sizeof(r->key_id), "%s", k->id);
        r->role = k->role;
    }
    char who[80];
    snprintf(who, sizeof(who), "%s%s", k ? "key:" : "ip:", k ? k->id : r->addr);
    int ok = rate_take(g, who);
    if (ok && k) { /* a key also counts against its address */
        snprintf(who, sizeof(who), "ip:%s", r->addr);
        ok = rate_take(g, who);
    }
    if (!ok) {
        snprintf(r->retry_after, sizeof(r->retry_after), "1");
        return refuse(r, 429, "Too Many Requests", "over http_rate_limit; retry after a second",
                      "rate_limited");
    }
    if (rt->role < 0) return 0; /* health checks and the API description */
    if (!k) {
        if (rt->write)
            return refuse(r, 401, "Unauthorized", "writes need an API key (Authorization: Bearer)",
                          "no_key");
        if (!g->loopback && !g->n->cfg.http_public_read)
            return refuse(r, 401, "Unauthorized",
                          "this gateway is not on loopback: reads need an API key too", "no_key");
        r->role = GW_ROLE_VIEWER;
        return 0;
    }
    if (r->role < rt->role) {
        char d[128];
        snprintf(d, sizeof(d), "this needs the %s role; the key has %s", bl__gw_role_name(rt->role),
                 bl__gw_role_name(r->role));
        return refuse(r, 403, "Forbidden", d, "forbidden");
    }
    return 0;
}

int bl__gw_auth_init(bl__gw *g)
{
    g->audit_cap = AUDIT_CAP;
    g->audit = calloc(AUDIT_CAP, sizeof(*g->audit));
    if (!g->audit) return BL_ENOMEM;
    keys_load(g);
    return BL_OK;
}

void bl__gw_auth_free(bl__gw *g)
{
    gw_apikey *k, *kt;
    HASH_ITER(hh, g->keys, k, kt) {
        HASH_DEL(g->keys, k);
        free(k);
    }
    gw_bucket *b, *bt;
    HASH_ITER(hh, g->buckets, b, bt) {
        HASH_DEL(g->buckets, b);
        free(b);
    }
    free(g->audit);
    g->audit = NULL;
}
