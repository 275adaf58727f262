/* api.c - the gateway's routes: a table of method + path pattern -> handler and least role, the
 * dispatcher (404/405, auth, audit), the REST API under /api/v1 (JSON, RFC 9457 problems) and
 * the dashboard's embedded files. Reads come from the node's own tables (registry, membership)
 * or from a call to the local service process, whose documented gen_server protocol already has
 * the listing; per-node detail of another node comes from that node's `beamlet_gateway`.
 * docs/gateway.md and the OpenAPI document (assets/openapi.json) describe every route here; a
 * unit test checks the two agree. */
#include "gw_int.h"
#include "beamlet/health.h"
#include "beamlet/pg.h"
#include "beamlet/pubsub.h"
#include "beamlet/registry.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static json_t *parse_body(gw_req *r, int required)
{
    if (!r->blen) {
        if (required) bl__gw_problem(r, 400, "Bad Request", "a JSON object body is required");
        return NULL;
    }
    const char *ct = bl__gw_header(r, "Content-Type");
    if (ct && strncmp(ct, "application/json", 16)) {
        bl__gw_problem(r, 415, "Unsupported Media Type", "send Content-Type: application/json");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body, r->blen, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        char d[300];
        snprintf(d, sizeof(d), "invalid JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
        bl__gw_problem(r, 400, "Bad Request", d);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        bl__gw_problem(r, 400, "Bad Request", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* A string member of a body object: NULL when absent; sets *bad when present but not a string
 * (or too long). */
static const char *body_str(json_t *o, const char *k, size_t max, int *bad)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v) || json_string_length(v) >= max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

static int valid_utf8_arg(gw_req *r, const char *name, const char *v)
{
    json_t *s = v ? json_string(v) : NULL;
    if (v && !s) {
        char d[128];
        snprintf(d, sizeof(d), "query parameter '%s' is not valid UTF-8", name);
        bl__gw_problem(r, 400, "Bad Request", d);
        return 0;
    }
    json_decref(s);
    return 1;
}

static void call_failed(gw_req *r, int status, const char *what)
{
    char d[300];
    snprintf(d, sizeof(d), "%s: %s", what, bl_strerror(status));
    if (status == BL_ETIMEOUT)
        bl__gw_problem(r, 504, "Gateway Timeout", d);
    else if (status == BL_ENODEDOWN || status == BL_ENOPROC)
        bl__gw_problem(r, 502, "Bad Gateway", d);
    else
        bl__gw_problem(r, 500, "Internal Server Error", d);
}

static int local_call_tmo(gw_req *r, const char *proc, const char *node, const char *atom_or_null,
                          ei_x_buff *req, unsigned tmo_ms, gw_call_cb cb)
{
    char small[256];
    int i = 0;
    const char *b = small;
    int len;
    if (atom_or_null) {
        ei_encode_atom(small, &i, atom_or_null);
        len = i;
    } else {
        b = req->buff;
        len = req->index;
    }
    int rc = bl__gw_call_tmo(r, proc, node ? node : bl_node_name(r->g->n), b, len, tmo_ms, cb);
    if (rc != BL_OK) call_failed(r, rc, proc);
    return rc;
}

static int local_call(gw_req *r, const char *proc, const char *node, const char *atom_or_null,
                      ei_x_buff *req, gw_call_cb cb)
{
    return local_call_tmo(r, proc, node, atom_or_null, req, GW_CALL_TIMEOUT_MS, cb);
}

/* ---- health and readiness ---- */

static void h_healthz(gw_req *r)
{
    bl__gw_reply_json(r, 200,
                      json_pack("{s:s, s:s}", "status", "ok", "node", bl_node_name(r->g->n)));
}

static void h_readyz(gw_req *r)
{
    bl_node *n = r->g->n;
    unsigned long long term = 0;
    const char *leader = bl_cluster_leader(n, &term);
    int ok = bl_cluster_healthy(n);
    json_t *j = json_pack("{s:b, s:s, s:o}", "ready", ok, "node", bl_node_name(n), "leader",
                          leader ? json_string(leader) : json_null());
    if (!ok)
        json_object_set_new(j, "reason",
                            json_string("no majority of members reachable, or coordinators "
                                        "without a leader"));
    bl__gw_reply_json(r, ok ? 200 : 503, j);
}

/* ---- cluster and nodes ---- */

static void cluster_health_cb(gw_req *r, int status, const char *buf, int index)
{
    json_t *h = status == BL_OK ? bl_term_to_json(buf, &index) : NULL;
    json_t *dst = json_object_get(r->acc, "health");
    if (json_is_object(h)) {
        json_object_set(dst, "score", json_object_get(h, "score"));
        json_object_set(dst, "status", json_object_get(h, "status"));
        json_t *al = json_object_get(h, "alerts");
        json_object_set_new(dst, "alerts", json_integer((json_int_t)json_array_size(al)));
    }
    json_decref(h);
    bl__gw_reply_json(r, 200, json_incref(r->acc));
}

static void cluster_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_cluster");
    json_t *s = bl_term_to_json(buf, &index);
    if (!json_is_object(s)) {
        json_decref(s);
        return bl__gw_problem(r, 500, "Internal Server Error", "unexpected cluster status");
    }
    const char *health = json_string_value(json_object_get(s, "health"));
    int healthy = health && !strcmp(health, "healthy");
    json_t *j = json_object();
    json_object_set(j, "name", json_object_get(s, "cluster"));
    json_object_set(j, "node", json_object_get(s, "node"));
    json_object_set(j, "size", json_object_get(s, "size"));
    json_object_set(j, "states", json_object_get(s, "states"));
    json_object_set(j, "leader", json_object_get(s, "leader"));
    json_object_set(j, "term", json_object_get(s, "term"));
    json_object_set_new(
        j, "health",
        json_pack("{s:s, s:b}", "status", healthy ? "active" : "degraded", "quorum", healthy));
    json_decref(s);
    if (!bl_whereis(r->g->n, "beamlet_health")) return bl__gw_reply_json(r, 200, j);
    r->acc = j; /* the score and status from the health service */
    local_call(r, "beamlet_health", NULL, "health", NULL, cluster_health_cb);
}

static void h_cluster(gw_req *r)
{
    local_call(r, "beamlet_cluster", NULL, "status", NULL, cluster_cb);
}

static void mark_leader(bl__gw *g, json_t *m)
{
    const char *leader = bl_cluster_leader(g->n, NULL);
    const char *node = json_string_value(json_object_get(m, "node"));
    json_object_set_new(m, "leader", json_boolean(leader && node && !strcmp(leader, node)));
}

static void nodes_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_cluster");
    json_t *a = bl_term_to_json(buf, &index);
    size_t i;
    json_t *m;
    json_array_foreach(a, i, m) mark_leader(r->g, m);
    bl__gw_reply_json(r, 200, a);
}

static void h_nodes(gw_req *r)
{
    local_call(r, "beamlet_cluster", NULL, "members", NULL, nodes_cb);
}

/* ---- topology: the links each beamlet member has, from its own connection table ----
 * GET /api/v1/topology asks every live beamlet member for its `info` (the `beamlet` process) and
 * answers {nodes, links, unreachable}: a link joins two members and names who reported it (both
 * ends for two beamlet nodes; the beamlet end for a BEAM peer). Links between two BEAM nodes are
 * not known here; members that did not answer are listed in unreachable. */

static int topo_live(json_t *m)
{
    const char *st = json_string_value(json_object_get(m, "state"));
    return st && (!strcmp(st, "active") || !strcmp(st, "joining") || !strcmp(st, "suspected"));
}

static void topo_finish(gw_req *r)
{
    json_t *acc = r->acc, *nodes = json_object_get(acc, "nodes"),
           *seen = json_object_get(acc, "seen"), *asked = json_object_get(acc, "asked");
    json_t *links = json_array(), *unreachable = json_array();
    const char *key;
    json_t *by;
    json_object_foreach(seen, key, by)
    {
        const char *bar = strchr(key, '|');
        json_array_append_new(links, json_pack("{s:s%, s:s, s:O}", "source", key,
                                               (size_t)(bar - key), "target", bar + 1,
                                               "seen_by", by));
    }
    size_t i;
    json_t *a;
    json_array_foreach(asked, i, a)
    {
        if (!json_object_get(json_object_get(acc, "answered"), json_string_value(a)))
            json_array_append(unreachable, a);
    }
    bl__gw_reply_json(r, 200,
                      json_pack("{s:O, s:o, s:o}", "nodes", nodes, "links", links, "unreachable",
                                unreachable));
}

static void topo_info_cb(gw_req *r, int status, const char *buf, int index)
{
    json_t *acc = r->acc;
    if (status == BL_OK) {
        json_t *info = bl_term_to_json(buf, &index);
        const char *self = json_string_value(json_object_get(info, "node"));
        json_t *conns = json_object_get(info, "connections"),
               *members = json_object_get(acc, "members"), *seen = json_object_get(acc, "seen");
        size_t i;
        json_t *c;
        if (self && json_object_get(members, self)) {
            json_object_set_new(json_object_get(acc, "answered"), self, json_true());
            json_array_foreach(conns, i, c)
            {
                const char *peer = json_string_value(c);
                if (!peer || !json_object_get(members, peer) || !strcmp(peer, self))
                    continue; /* the admin CLI and other hidden nodes are not members */
                char k[2 * BL_NODE_LEN + 2];
                int lt = strcmp(self, peer) < 0;
                snprintf(k, sizeof(k), "%s|%s", lt ? self : peer, lt ? peer : self);
                json_t *by = json_object_get(seen, k);
                if (!by) json_object_set_new(seen, k, by = json_array());
                json_array_append_new(by, json_string(self));
            }
        }
        json_decref(info);
    }
    if (r->outstanding == 0) topo_finish(r);
}

static void topology_members_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_cluster");
    json_t *nodes = bl_term_to_json(buf, &index), *members = json_object(), *asked = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(nodes, i, m)
    {
        mark_leader(r->g, m);
        const char *node = json_string_value(json_object_get(m, "node"));
        const char *kind = json_string_value(json_object_get(m, "kind"));
        if (!node) continue;
        json_object_set_new(members, node, json_true());
        if (topo_live(m) && !(kind && !strcmp(kind, "beam"))) json_array_append_new(asked, json_string(node));
    }
    r->acc = json_pack("{s:o, s:o, s:o, s:o, s:o}", "nodes", nodes, "members", members, "asked",
                       asked, "seen", json_object(), "answered", json_object());
    int started = 0;
    json_t *a;
    json_array_foreach(asked, i, a)
    {
        char req[64];
        int k = 0;
        ei_encode_atom(req, &k, "info");
        /* a member that cannot be called is listed as unreachable, not a failed request */
        if (bl__gw_call(r, "beamlet", json_string_value(a), req, k, topo_info_cb) == BL_OK)
            started++;
    }
    if (!started) topo_finish(r);
}

static void h_topology(gw_req *r)
{
    local_call(r, "beamlet_cluster", NULL, "members", NULL, topology_members_cb);
}

/* one node: its membership record, then what it says about itself */
static void node_detail_cb(gw_req *r, int status, const char *buf, int index)
{
    json_t *detail = NULL;
    if (status == BL_OK) {
        char *s = NULL;
        int type, size;
        if (ei_get_type(buf, &index, &type, &size) == 0 && type == ERL_BINARY_EXT &&
            (s = malloc((size_t)size + 1))) {
            long len;
            if (ei_decode_binary(buf, &index, s, &len) == 0)
                detail = json_loadb(s, (size_t)len, 0, NULL);
            free(s);
        }
    }
    json_object_set_new(r->acc, "detail", detail ? detail : json_null());
    if (!detail)
        json_object_set_new(r->acc, "detail_error",
                            json_string(status ? bl_strerror(status) : "unexpected answer"));
    bl__gw_reply_json(r, 200, json_incref(r->acc));
}

static void node_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_cluster");
    json_t *a = bl_term_to_json(buf, &index), *m, *found = NULL;
    size_t i;
    json_array_foreach(a, i, m)
    {
        const char *node = json_string_value(json_object_get(m, "node"));
        if (node && !strcmp(node, r->params[0])) found = m;
    }
    if (!found) {
        json_decref(a);
        return bl__gw_problem(r, 404, "Not Found", "no such member");
    }
    mark_leader(r->g, found);
    r->acc = json_incref(found);
    json_decref(a);
    const char *kind = json_string_value(json_object_get(r->acc, "kind"));
    const char *state = json_string_value(json_object_get(r->acc, "state"));
    if (!strcmp(r->params[0], bl_node_name(r->g->n))) {
        json_object_set_new(r->acc, "detail", bl__gw_node_self(r->g));
        return bl__gw_reply_json(r, 200, json_incref(r->acc));
    }
    if ((kind && !strcmp(kind, "beam")) ||
        (state && strcmp(state, "active") && strcmp(state, "joining") &&
         strcmp(state, "suspected"))) {
        json_object_set_new(r->acc, "detail", json_null());
        return bl__gw_reply_json(r, 200, json_incref(r->acc));
    }
    char req[64];
    int k = 0;
    ei_encode_atom(req, &k, "bl_gw_node");
    if (bl__gw_call(r, GW_PROC, r->params[0], req, k, node_detail_cb) != BL_OK) {
        json_object_set_new(r->acc, "detail", json_null());
        bl__gw_reply_json(r, 200, json_incref(r->acc));
    }
}

static void h_node(gw_req *r)
{
    local_call(r, "beamlet_cluster", NULL, "members", NULL, node_cb);
}

static void leave_cb(gw_req *r, int status, const char *buf, int index)
{
    (void)buf;
    (void)index;
    if (status) return call_failed(r, status, "beamlet_gateway on the node");
    bl__gw_reply_json(r, 202, json_pack("{s:s, s:s}", "node", r->params[0], "status", "leaving"));
}

static void h_node_leave(gw_req *r)
{
    if (!strcmp(r->params[0], bl_node_name(r->g->n))) {
        bl__gw_leave_soon(r->g);
        return bl__gw_reply_json(
            r, 202, json_pack("{s:s, s:s}", "node", r->params[0], "status", "leaving"));
    }
    if (!bl_cluster_is_peer(r->g->n, r->params[0]))
        return bl__gw_problem(r, 404, "Not Found", "no such live beamlet member");
    char req[64];
    int k = 0;
    ei_encode_atom(req, &k, "bl_gw_leave");
    int rc = bl__gw_call(r, GW_PROC, r->params[0], req, k, leave_cb);
    if (rc) call_failed(r, rc, "beamlet_gateway on the node");
}

/* ---- services ---- */

static json_t *entry_json(const bl_service_entry *e)
{
    json_t *tags = json_array(), *meta = json_object();
    for (int i = 0; i < e->ntags; i++)
        json_array_append_new(tags, json_string(e->tags[i]));
    for (int i = 0; i < e->nmeta; i++)
        json_object_set_new(meta, e->meta_keys[i], json_string(e->meta_values[i]));
    return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:i, s:s?, s:I, s:s, s:b, s:o, s:o}", "id",
                     e->id, "name", e->name, "version", e->version, "node", e->node, "address",
                     e->address, "port", e->port, "health_endpoint", e->health_endpoint, "ttl_ms",
                     (json_int_t)e->ttl_ms, "health", bl_health_name(e->health), "maintenance",
                     e->maintenance, "tags", tags, "metadata", meta);
}

static void collect_entry(bl_node *n, const bl_service_entry *e, void *ud)
{
    (void)n;
    json_array_append_new(ud, entry_json(e));
}

static int health_parse(const char *s)
{
    if (!strcmp(s, "passing")) return BL_HEALTH_PASSING;
    if (!strcmp(s, "warning")) return BL_HEALTH_WARNING;
    if (!strcmp(s, "critical")) return BL_HEALTH_CRITICAL;
    return -1;
}

static void h_services(gw_req *r)
{
    const char *name = bl__gw_arg(r, "name"), *tag = bl__gw_arg(r, "tag"),
               *health = bl__gw_arg(r, "health"), *usable = bl__gw_arg(r, "usable");
    if (!valid_utf8_arg(r, "name", name) || !valid_utf8_arg(r, "tag", tag)) return;
    bl_service_query q = {.health = -1};
    if (name && *name) q.name = name;
    if (tag && *tag) {
        q.ntags_all = 1;
        q.tags_all = &tag;
    }
    if (health && *health && (q.health = health_parse(health)) < 0)
        return bl__gw_problem(r, 400, "Bad Request", "health is passing, warning or critical");
    if (usable && *usable && strcmp(usable, "true") && strcmp(usable, "false"))
        return bl__gw_problem(r, 400, "Bad Request", "usable is true or false");
    q.usable = usable && !strcmp(usable, "true"); /* what a service call would choose */
    json_t *a = json_array();
    bl_registry_find(r->g->n, &q, collect_entry, a);
    bl__gw_reply_json(r, 200, a);
}

static json_t *find_service(bl__gw *g, const char *id)
{
    json_t *a = json_array(), *e, *found = NULL;
    bl_registry_find(g->n, NULL, collect_entry, a);
    size_t i;
    json_array_foreach(a, i, e)
    {
        const char *eid = json_string_value(json_object_get(e, "id"));
        if (eid && !strcmp(eid, id)) found = json_incref(e);
    }
    json_decref(a);
    return found;
}

static void h_service(gw_req *r)
{
    json_t *e = find_service(r->g, r->params[0]);
    if (!e) return bl__gw_problem(r, 404, "Not Found", "no service instance with that id");
    bl__gw_reply_json(r, 200, e);
}

static void h_service_register(gw_req *r)
{
    json_t *b = parse_body(r, 1);
    if (!b) return;
    int bad = 0;
    bl_service_entry e = {0};
    e.name = body_str(b, "name", BL_REG_ID_LEN, &bad);
    e.id = body_str(b, "id", BL_REG_ID_LEN, &bad);
    e.version = body_str(b, "version", BL_REG_STR_LEN, &bad);
    e.address = body_str(b, "address", BL_REG_STR_LEN, &bad);
    e.health_endpoint = body_str(b, "health_endpoint", BL_REG_STR_LEN, &bad);
    json_t *port = json_object_get(b, "port"), *ttl = json_object_get(b, "ttl_ms"),
           *health = json_object_get(b, "health"), *tags = json_object_get(b, "tags"),
           *meta = json_object_get(b, "metadata"), *check = json_object_get(b, "check");
    if (check && !json_is_object(check)) bad = 1;
    if (port && (!json_is_integer(port) || json_integer_value(port) < 0 ||
                 json_integer_value(port) > 65535))
        bad = 1;
    if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
                json_integer_value(ttl) > 86400000))
        bad = 1;
    if (health && (!json_is_string(health) || health_parse(json_string_value(health)) < 0)) bad = 1;
    if (tags && (!json_is_array(tags) || json_array_size(tags) > BL_REG_MAX_TAGS)) bad = 1;
    if (meta && (!json_is_object(meta) || json_object_size(meta) > BL_REG_MAX_META)) bad = 1;
    const char *tagv[BL_REG_MAX_TAGS], *mk[BL_REG_MAX_META], *mv[BL_REG_MAX_META];
    size_t i;
    json_t *v;
    if (!bad && tags) json_array_foreach(tags, i, v)
        {
            if (!json_is_string(v) || json_string_length(v) >= BL_REG_STR_LEN)
                bad = 1;
            else
                tagv[e.ntags++] = json_string_value(v);
        }
    const char *k;
    if (!bad && meta) json_object_foreach(meta, k, v)
        {
            if (!json_is_string(v) || json_string_length(v) >= BL_REG_STR_LEN ||
                strlen(k) >= BL_REG_STR_LEN)
                bad = 1;
            else {
                mk[e.nmeta] = k;
                mv[e.nmeta++] = json_string_value(v);
            }
        }
    if (bad || !e.name || !*e.name) {
        json_decref(b);
        return bl__gw_problem(r, 422, "Unprocessable Content",
                              "name (string) is required; id, version, address, health_endpoint "
                              "strings; port 0..65535; ttl_ms 0..86400000; health passing, warning "
                              "or critical; tags an array of strings; metadata an object of "
                              "strings; check an object (docs/health.md)");
    }
    e.port = port ? (int)json_integer_value(port) : 0;
    e.ttl_ms = ttl ? (unsigned)json_integer_value(ttl) : 0;
    e.health = health ? (bl_health)health_parse(json_string_value(health)) : BL_HEALTH_PASSING;
    e.tags = tagv;
    e.meta_keys = mk;
    e.meta_values = mv;
    char *check_txt = check ? json_dumps(check, JSON_COMPACT) : NULL;
    e.check_json = check_txt;
    char id[BL_REG_ID_LEN];
    int rc = bl_registry_register(r->g->n, &e, id, sizeof(id));
    free(check_txt);
    json_decref(b);
    if (rc == BL_ENOMEM)
        return bl__gw_problem(r, 409, "Conflict",
                              "registry_max_entries entries exist on this node");
    if (rc == BL_EINVAL && check)
        return bl__gw_problem(r, 422, "Unprocessable Content",
                              "check: one of http (URL), tcp (IP:PORT), command (argv array), "
                              "with interval_s, timeout_s, consecutive (docs/health.md)");
    if (rc) return bl__gw_problem(r, 422, "Unprocessable Content", bl_strerror(rc));
    json_t *j = find_service(r->g, id);
    bl__gw_reply_json(r, 201, j ? j : json_pack("{s:s}", "id", id));
}

static void dereg_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_registry on the owner");
    char a[MAXATOMLEN_UTF8];
    int j = index;
    if (ei_decode_atom(buf, &j, a) == 0 && !strcmp(a, "ok"))
        return bl__gw_reply(r, 204, NULL, "", 0);
    bl__gw_problem(r, 404, "Not Found", "the owner has no entry with that id");
}

static void h_service_deregister(gw_req *r)
{
    json_t *e = find_service(r->g, r->params[0]);
    if (!e) return bl__gw_problem(r, 404, "Not Found", "no service instance with that id");
    const char *owner = json_string_value(json_object_get(e, "node"));
    if (owner && !strcmp(owner, bl_node_name(r->g->n))) {
        int rc = bl_registry_deregister(r->g->n, r->params[0]);
        json_decref(e);
        if (rc) return bl__gw_problem(r, 404, "Not Found", "no service instance with that id");
        return bl__gw_reply(r, 204, NULL, "", 0);
    }
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "deregister");
    ei_x_encode_binary(&x, r->params[0], (long)strlen(r->params[0]));
    local_call(r, "beamlet_registry", owner, NULL, &x, dereg_cb);
    ei_x_free(&x);
    json_decref(e);
}

/* ---- pg, global names, pub/sub ---- */

static const char *pg_scope(gw_req *r)
{
    const char *s = bl__gw_arg(r, "scope");
    return s && *s ? s : BL_PG_DEFAULT_SCOPE;
}

static void pg_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "pg scope");
    const char *scope = pg_scope(r);
    json_t *out = json_array();
    int type, size, arity;
    /* the reply is a list of group terms: each one's encoding asks the scope for its members */
    while (ei_get_type(buf, &index, &type, &size) == 0 && type == ERL_LIST_EXT) {
        if (ei_decode_list_header(buf, &index, &arity) < 0) break;
        for (int i = 0; i < arity; i++) {
            int start = index, t = index;
            json_t *name = bl_term_to_json(buf, &t);
            if (bl__skip_term(buf, &index) < 0) {
                json_decref(name);
                goto done;
            }
            bl_pid pids[256];
            int k = bl_pg_get_members(r->g->n, scope, buf + start, index - start, pids, 256);
            json_t *members = json_array();
            for (int p = 0; p < k && p < 256; p++) {
                char s[MAXATOMLEN_UTF8 + 48];
                snprintf(s, sizeof(s), "<%s.%u.%u>", bl_pid_node(&pids[p]), pids[p].num,
                         pids[p].serial);
                json_array_append_new(members, json_string(s));
            }
            char *gname = json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT);
            json_t *g = json_pack(
                "{s:s, s:o, s:s, s:i, s:o}", "scope", scope, "group", name ? name : json_null(),
                "key", json_is_string(name) ? json_string_value(name) : (gname ? gname : "?"),
                "size", k < 0 ? 0 : k, "members", members);
            free(gname);
            if (r->params[0][0] == 0 ||
                !strcmp(json_string_value(json_object_get(g, "key")), r->params[0]))
                json_array_append_new(out, g);
            else
                json_decref(g);
        }
    }
done:
    if (r->nparams) {
        json_t *g = json_incref(json_array_get(out, 0));
        json_decref(out);
        if (!g) return bl__gw_problem(r, 404, "Not Found", "no such group in the scope");
        return bl__gw_reply_json(r, 200, g);
    }
    bl__gw_reply_json(r, 200, out);
}

static void h_pg(gw_req *r)
{
    const char *scope = pg_scope(r);
    if (!valid_utf8_arg(r, "scope", scope)) return;
    if (strlen(scope) >= BL_NAME_LEN || !bl_whereis(r->g->n, scope))
        return bl__gw_problem(r, 404, "Not Found", "no such pg scope on this node");
    local_call(r, scope, NULL, "which_groups", NULL, pg_cb);
}

static void global_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_global");
    json_t *t = bl_term_to_json(buf, &index), *e;
    json_t *out = json_array();
    size_t i;
    json_array_foreach(t, i, e)
    {
        json_array_append_new(out,
                              json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_array_get(e, 0),
                                        "pid", json_array_get(e, 1), "node", json_array_get(e, 2),
                                        "kind", json_array_get(e, 3)));
    }
    json_decref(t);
    bl__gw_reply_json(r, 200, out);
}

static void h_global(gw_req *r)
{
    local_call(r, "beamlet_global", NULL, "table", NULL, global_cb);
}

static void topics_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_pubsub");
    json_t *t = bl_term_to_json(buf, &index), *v;
    json_t *out = json_array();
    const char *k;
    json_object_foreach(t, k, v)
    {
        json_t *o = json_deep_copy(v);
        json_object_set_new(o, "topic", json_string(k));
        json_array_append_new(out, o);
    }
    json_decref(t);
    bl__gw_reply_json(r, 200, out);
}

static void h_topics(gw_req *r)
{
    local_call(r, "beamlet_pubsub", NULL, "counters", NULL, topics_cb);
}

static void h_publish(gw_req *r)
{
    json_t *b = parse_body(r, 1);
    if (!b) return;
    int bad = 0;
    const char *topic = body_str(b, "topic", BL_PUBSUB_TOPIC_LEN, &bad);
    const char *prio = body_str(b, "priority", 16, &bad);
    json_t *ttl = json_object_get(b, "ttl_ms"), *payload = json_object_get(b, "payload");
    int p = BL_PRIO_NORMAL;
    if (prio)
        p = !strcmp(prio, "high")     ? BL_PRIO_HIGH
            : !strcmp(prio, "low")    ? BL_PRIO_LOW
            : !strcmp(prio, "normal") ? BL_PRIO_NORMAL
                                      : -1;
    if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
                json_integer_value(ttl) > 86400000))
        bad = 1;
    if (bad || p < 0 || !topic || !bl_pubsub_topic_valid(topic) || !payload) {
        json_decref(b);
        return bl__gw_problem(r, 422, "Unprocessable Content",
                              "topic (a valid topic: dot-separated levels, no wildcards) and "
                              "payload (any JSON) are required; priority high, normal or low; "
                              "ttl_ms 0..86400000");
    }
    /* the payload travels as a binary holding its JSON text */
    char *text = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_binary(&x, text, (long)strlen(text));
    char id[BL_PUBSUB_ID_LEN];
    int rc = bl_pubsub_publish(r->g->n, topic, x.buff, x.index, (bl_pubsub_priority)p,
                               ttl ? (unsigned)json_integer_value(ttl) : 0, id, sizeof(id));
    ei_x_free(&x);
    free(text);
    if (rc == BL_OK)
        bl__gw_reply_json(r, 202, json_pack("{s:s, s:s}", "id", id, "topic", topic));
    else if (rc == BL_ETOOBIG)
        bl__gw_problem(r, 413, "Content Too Large", "the payload is over max_message_size");
    else
        bl__gw_problem(r, 422, "Unprocessable Content", bl_strerror(rc));
    json_decref(b);
}

static int all_digits(const char *s);

/* ---- tasks (the beamlet_tasks process of this node, which hands them to the leader) ---- */

/* {ok, X} | {error, Why}: X as JSON with status ok_status, or a problem named after Why */
static void task_reply(gw_req *r, int status, const char *buf, int index, int ok_status)
{
    if (status) return call_failed(r, status, "beamlet_tasks");
    json_t *j = bl_term_to_json(buf, &index);
    const char *tag = json_is_array(j) ? json_string_value(json_array_get(j, 0)) : NULL;
    json_t *v = json_is_array(j) ? json_array_get(j, 1) : NULL;
    if (tag && !strcmp(tag, "ok")) {
        bl__gw_reply_json(r, ok_status,
                          json_is_string(v) ? json_pack("{s:O}", "id", v) : json_incref(v));
    } else {
        const char *why = json_is_string(v) ? json_string_value(v)
                          : json_is_array(v) ? json_string_value(json_array_get(v, 0))
                                             : NULL;
        const char *detail = json_is_array(v) && json_is_string(json_array_get(v, 1))
                                 ? json_string_value(json_array_get(v, 1))
                                 : why ? why : "unexpected answer";
        if (!why)
            bl__gw_problem(r, 502, "Bad Gateway", detail);
        else if (!strcmp(why, "not_found"))
            bl__gw_problem(r, 404, "Not Found", "no such task");
        else if (!strcmp(why, "already_final"))
            bl__gw_problem(r, 409, "Conflict", "the task has ended already");
        else if (!strcmp(why, "bad_request"))
            bl__gw_problem(r, 422, "Unprocessable Content", detail);
        else if (!strcmp(why, "queue_full"))
            bl__gw_problem(r, 429, "Too Many Requests", "100000 tasks are not final");
        else
            bl__gw_problem(r, 503, "Service Unavailable", why); /* no_leader, not_replicated, ... */
    }
    json_decref(j);
}

static void task_ok_cb(gw_req *r, int status, const char *buf, int index)
{
    task_reply(r, status, buf, index, 200);
}

static void task_submit_cb(gw_req *r, int status, const char *buf, int index)
{
    task_reply(r, status, buf, index, 202);
}

static int valid_task_id(const char *id)
{
    size_t n = strlen(id);
    if (!n || n >= 40) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_') return 0;
    return 1;
}

static void h_tasks(gw_req *r)
{
    const char *state = bl__gw_arg(r, "state"), *type = bl__gw_arg(r, "type"),
               *limit = bl__gw_arg(r, "limit");
    if (!valid_utf8_arg(r, "type", type)) return;
    if (limit && (!all_digits(limit) || !*limit || strlen(limit) > 6))
        return bl__gw_problem(r, 400, "Bad Request", "limit is 1..100000");
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "list");
    ei_x_encode_map_header(&x, (state && *state) + (type && *type) + (limit != NULL));
    if (state && *state) {
        ei_x_encode_atom(&x, "state");
        ei_x_encode_binary(&x, state, (long)strlen(state));
    }
    if (type && *type) {
        ei_x_encode_atom(&x, "type");
        ei_x_encode_binary(&x, type, (long)strlen(type));
    }
    if (limit) {
        ei_x_encode_atom(&x, "limit");
        ei_x_encode_ulong(&x, strtoul(limit, NULL, 10));
    }
    local_call(r, "beamlet_tasks", NULL, NULL, &x, task_ok_cb);
    ei_x_free(&x);
}

static void h_task(gw_req *r)
{
    if (!valid_task_id(r->params[0])) return bl__gw_problem(r, 404, "Not Found", "no such task");
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, !strcmp(r->method, "POST") ? "cancel" : "get");
    ei_x_encode_binary(&x, r->params[0], (long)strlen(r->params[0]));
    local_call(r, "beamlet_tasks", NULL, NULL, &x, task_ok_cb);
    ei_x_free(&x);
}

/* GET /api/v1/tasks/changes?since=N&term=T&type=T&state=S&limit=N&wait_ms=N: the leader's
 * feed of transitions (tasks_feed.c), a long poll of up to 25 s (below the request cap) */
static void h_task_changes(gw_req *r)
{
    static const char *const NUM[] = {"since", "term", "limit", "wait_ms"};
    const char *v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = bl__gw_arg(r, NUM[k]);
        if (v[k] && (!*v[k] || !all_digits(v[k]) || strlen(v[k]) > 19)) {
            char d[96];
            snprintf(d, sizeof(d), "%s is a non-negative integer", NUM[k]);
            return bl__gw_problem(r, 400, "Bad Request", d);
        }
    }
    const char *type = bl__gw_arg(r, "type"), *state = bl__gw_arg(r, "state");
    if (!valid_utf8_arg(r, "type", type) || !valid_utf8_arg(r, "state", state)) return;
    unsigned long long wait = v[3] ? strtoull(v[3], NULL, 10) : 0;
    if (wait > 25000) wait = 25000;
    unsigned long long limit = v[2] ? strtoull(v[2], NULL, 10) : 1000;
    if (v[2] && (limit < 1 || limit > 1000))
        return bl__gw_problem(r, 400, "Bad Request", "limit is 1..1000");
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "changes");
    ei_x_encode_map_header(&x, 2 + !!v[0] + !!v[1] + (type && *type) + (state && *state));
    ei_x_encode_atom(&x, "timeout_ms");
    ei_x_encode_ulonglong(&x, wait);
    ei_x_encode_atom(&x, "limit");
    ei_x_encode_ulonglong(&x, limit);
    for (int k = 0; k < 2; k++)
        if (v[k]) {
            ei_x_encode_atom(&x, NUM[k]);
            ei_x_encode_ulonglong(&x, strtoull(v[k], NULL, 10));
        }
    if (type && *type) {
        ei_x_encode_atom(&x, "type");
        ei_x_encode_binary(&x, type, (long)strlen(type));
    }
    if (state && *state) {
        ei_x_encode_atom(&x, "state");
        ei_x_encode_binary(&x, state, (long)strlen(state));
    }
    local_call_tmo(r, "beamlet_tasks", NULL, NULL, &x, (unsigned)wait + GW_CALL_TIMEOUT_MS + 2000,
                   task_ok_cb);
    ei_x_free(&x);
}

static void h_task_agents(gw_req *r)
{
    local_call(r, "beamlet_tasks", NULL, "agents", NULL, task_ok_cb);
}

/* POST /api/v1/tasks {type, payload, capabilities, priority, timeout_ms, retries,
 * queue_timeout_ms, idempotency_key, trace_id}; a W3C traceparent header gives the trace id
 * when the body has none */
static void h_task_submit(gw_req *r)
{
    json_t *b = parse_body(r, 1);
    if (!b) return;
    int bad = 0;
    const char *type = body_str(b, "type", 64, &bad), *prio = body_str(b, "priority", 16, &bad),
               *key = body_str(b, "idempotency_key", 128, &bad),
               *trace = body_str(b, "trace_id", 33, &bad);
    json_t *caps = json_object_get(b, "capabilities"), *payload = json_object_get(b, "payload"),
           *tmo = json_object_get(b, "timeout_ms"), *ret = json_object_get(b, "retries"),
           *qtmo = json_object_get(b, "queue_timeout_ms");
    char tp[33] = "";
    const char *hdr = bl__gw_header(r, "traceparent");
    if (!trace && hdr && strlen(hdr) >= 55 && hdr[2] == '-' && hdr[35] == '-') {
        memcpy(tp, hdr + 3, 32);
        trace = tp;
    }
    if (caps && (!json_is_array(caps) || json_array_size(caps) > 16)) bad = 1;
    size_t i;
    json_t *c;
    if (caps) json_array_foreach(caps, i, c) if (!json_is_string(c) || !json_string_length(c) ||
                                                   json_string_length(c) >= 64) bad = 1;
    if (tmo && !json_is_integer(tmo)) bad = 1;
    if (ret && !json_is_integer(ret)) bad = 1;
    if (qtmo && !json_is_integer(qtmo)) bad = 1;
    if (bad || !type) {
        json_decref(b);
        return bl__gw_problem(r, 422, "Unprocessable Content",
                              "type (1..63 bytes) is required; capabilities: up to 16 strings; "
                              "priority high, normal or low; timeout_ms, retries and "
                              "queue_timeout_ms integers");
    }
    ei_x_buff pl; /* the payload first: one too deep is refused before anything is sent */
    ei_x_new(&pl);
    if (payload && bl__json_to_term(payload, &pl, 0) < 0) {
        ei_x_free(&pl);
        json_decref(b);
        return bl__gw_problem(r, 422, "Unprocessable Content",
                              "payload: nested deeper than 64 levels");
    }
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "submit");
    ei_x_encode_map_header(&x, 1 + !!payload + !!caps + !!prio + !!tmo + !!ret + !!key + !!trace +
                                   !!qtmo);
    ei_x_encode_atom(&x, "type");
    ei_x_encode_binary(&x, type, (long)strlen(type));
    if (payload) {
        ei_x_encode_atom(&x, "payload");
        ei_x_append_buf(&x, pl.buff, pl.index);
    }
    ei_x_free(&pl);
    if (caps) {
        ei_x_encode_atom(&x, "capabilities");
        if (json_array_size(caps)) ei_x_encode_list_header(&x, (long)json_array_size(caps));
        json_array_foreach(caps, i, c) ei_x_encode_binary(&x, json_string_value(c), (long)json_string_length(c));
        ei_x_encode_empty_list(&x);
    }
    if (prio) {
        ei_x_encode_atom(&x, "priority");
        ei_x_encode_binary(&x, prio, (long)strlen(prio));
    }
    if (tmo) {
        ei_x_encode_atom(&x, "timeout_ms");
        ei_x_encode_longlong(&x, json_integer_value(tmo));
    }
    if (ret) {
        ei_x_encode_atom(&x, "retries");
        ei_x_encode_longlong(&x, json_integer_value(ret));
    }
    if (qtmo) {
        ei_x_encode_atom(&x, "queue_timeout_ms");
        ei_x_encode_longlong(&x, json_integer_value(qtmo));
    }
    if (key) {
        ei_x_encode_atom(&x, "idempotency_key");
        ei_x_encode_binary(&x, key, (long)strlen(key));
    }
    if (trace) {
        ei_x_encode_atom(&x, "trace_id");
        ei_x_encode_binary(&x, trace, (long)strlen(trace));
    }
    json_decref(b);
    local_call(r, "beamlet_tasks", NULL, NULL, &x, task_submit_cb);
    ei_x_free(&x);
}

/* ---- health: score, alerts, maintenance, history (the beamlet_health process) ---- */

static int health_here(gw_req *r)
{
    if (bl_whereis(r->g->n, "beamlet_health")) return 1;
    bl__gw_problem(r, 503, "Service Unavailable", "this node runs no health service");
    return 0;
}

/* {ok, X} -> X as JSON (labels and bodies that are JSON text parsed); NULL otherwise */
static json_t *ok_json(const char *buf, int index)
{
    json_t *j = bl_term_to_json(buf, &index);
    if (json_is_array(j) && json_array_size(j) == 2 &&
        !strcmp(json_string_value(json_array_get(j, 0)) ? json_string_value(json_array_get(j, 0))
                                                        : "",
                "ok")) {
        json_t *v = json_incref(json_array_get(j, 1));
        json_decref(j);
        return v;
    }
    json_decref(j);
    return NULL;
}

static void unjson(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    if (v) json_object_set_new(o, k, v);
}

static void health_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_health");
    bl__gw_reply_json(r, 200, bl_term_to_json(buf, &index));
}

static void h_health(gw_req *r)
{
    if (health_here(r)) local_call(r, "beamlet_health", NULL, "health", NULL, health_cb);
}

static void alerts_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_health");
    json_t *a = ok_json(buf, index), *e;
    if (!json_is_array(a)) {
        json_decref(a);
        return bl__gw_problem(r, 502, "Bad Gateway", "unexpected alerts answer");
    }
    const char *state = bl__gw_arg(r, "state"), *sev = bl__gw_arg(r, "severity");
    json_t *out = json_array();
    size_t i;
    json_array_foreach(a, i, e)
    {
        unjson(e, "labels");
        const char *st = json_string_value(json_object_get(e, "state"));
        const char *sv = json_string_value(json_object_get(e, "severity"));
        if (state && *state && (!st || strcmp(st, state))) continue;
        if (sev && *sev && (!sv || strcmp(sv, sev))) continue;
        json_array_append(out, e);
    }
    json_decref(a);
    bl__gw_reply_json(r, 200, out);
}

static void h_alerts(gw_req *r)
{
    const char *state = bl__gw_arg(r, "state"), *sev = bl__gw_arg(r, "severity");
    if (state && *state && strcmp(state, "pending") && strcmp(state, "firing") &&
        strcmp(state, "resolved"))
        return bl__gw_problem(r, 400, "Bad Request", "state is pending, firing or resolved");
    if (sev && *sev && strcmp(sev, "warn") && strcmp(sev, "critical"))
        return bl__gw_problem(r, 400, "Bad Request", "severity is warn or critical");
    if (health_here(r)) local_call(r, "beamlet_health", NULL, "alerts", NULL, alerts_cb);
}

static void ack_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_health");
    char a[MAXATOMLEN_UTF8];
    int j = index;
    if (ei_decode_atom(buf, &j, a) == 0 && !strcmp(a, "ok"))
        return bl__gw_reply_json(r, 200,
                                 json_pack("{s:s, s:s}", "id", r->params[0], "acked_by", r->who));
    bl__gw_problem(r, 404, "Not Found", "no such alert");
}

static int all_digits(const char *s)
{
    if (!*s || strlen(s) > 19) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static void h_alert_ack(gw_req *r)
{
    if (!all_digits(r->params[0]))
        return bl__gw_problem(r, 404, "Not Found", "alert ids are integers");
    if (!health_here(r)) return;
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "ack");
    ei_x_encode_ulonglong(&x, strtoull(r->params[0], NULL, 10));
    ei_x_encode_binary(&x, r->who, (long)strlen(r->who));
    local_call(r, "beamlet_health", NULL, NULL, &x, ack_cb);
    ei_x_free(&x);
}

static void maint_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_health on the node");
    char a[MAXATOMLEN_UTF8];
    int j = index;
    if (ei_decode_atom(buf, &j, a) == 0 && !strcmp(a, "ok"))
        return bl__gw_reply_json(r, 200,
                                 json_pack("{s:s, s:b, s:s}", "node", r->params[0], "maintenance",
                                           !strcmp(r->method, "PUT"), "by", r->who));
    bl__gw_problem(r, 502, "Bad Gateway", "the node refused");
}

static void h_maintenance(gw_req *r)
{
    int self = !strcmp(r->params[0], bl_node_name(r->g->n));
    if (!self && !bl_cluster_is_peer(r->g->n, r->params[0]))
        return bl__gw_problem(r, 404, "Not Found", "no such live beamlet member");
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "maintenance");
    ei_x_encode_atom(&x, !strcmp(r->method, "PUT") ? "true" : "false");
    ei_x_encode_binary(&x, r->who, (long)strlen(r->who));
    local_call(r, "beamlet_health", r->params[0], NULL, &x, maint_cb);
    ei_x_free(&x);
}

static void history_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_health on the node");
    json_t *h = ok_json(buf, index);
    if (!h)
        return bl__gw_problem(r, 404, "Not Found",
                              "no such metric (GET without metric lists them)");
    const char *st = bl__gw_arg(r, "step");
    long long step = st ? strtoll(st, NULL, 10) : 0;
    json_t *pts = json_object_get(h, "points");
    if (step > 0 &&
        json_is_array(pts)) { /* coarser buckets: min of mins, avg of avgs, max of maxes */
        json_t *out = json_array(), *p, *cur = NULL;
        long long bucket = -1, n = 0;
        double mn = 0, sum = 0, mx = 0;
        size_t i;
        json_array_foreach(pts, i, p)
        {
            long long t = (long long)json_number_value(json_array_get(p, 0));
            long long b = t / step * step;
            if (b != bucket && n) {
                cur = json_pack("[I, f, f, f]", (json_int_t)bucket, mn, sum / n, mx);
                json_array_append_new(out, cur);
                n = 0;
            }
            double a = json_number_value(json_array_get(p, 1)),
                   v = json_number_value(json_array_get(p, 2)),
                   z = json_number_value(json_array_get(p, 3));
            if (!n || a < mn) mn = a;
            if (!n || z > mx) mx = z;
            sum = n ? sum + v : v;
            n++;
            bucket = b;
        }
        if (n)
            json_array_append_new(out,
                                  json_pack("[I, f, f, f]", (json_int_t)bucket, mn, sum / n, mx));
        json_object_set_new(h, "points", out);
        json_object_set_new(h, "step_ms", json_integer(step));
    }
    json_object_set_new(h, "node",
                        json_string(r->acc ? json_string_value(r->acc) : bl_node_name(r->g->n)));
    bl__gw_reply_json(r, 200, h);
}

static void h_history(gw_req *r)
{
    const char *node = bl__gw_arg(r, "node"), *metric = bl__gw_arg(r, "metric"),
               *from = bl__gw_arg(r, "from"), *to = bl__gw_arg(r, "to"),
               *step = bl__gw_arg(r, "step");
    if (!valid_utf8_arg(r, "node", node) || !valid_utf8_arg(r, "metric", metric)) return;
    unsigned long long t0 = 0, t1 = 0;
    if (!from) from = "1h";
    if (bl__gw_parse_time(from, &t0) || (to && bl__gw_parse_time(to, &t1)))
        return bl__gw_problem(
            r, 400, "Bad Request",
            "from/to are ms since the epoch or a duration back (30s, 15m, 2h, 7d)");
    if (step && (strtoll(step, NULL, 10) <= 0))
        return bl__gw_problem(r, 400, "Bad Request", "step is a positive number of ms");
    if (!node || !*node) node = bl_node_name(r->g->n);
    if (strcmp(node, bl_node_name(r->g->n)) && !bl_cluster_is_peer(r->g->n, node))
        return bl__gw_problem(r, 404, "Not Found", "no such live beamlet member");
    if (!health_here(r)) return;
    r->acc = json_string(node);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, to ? 4 : 3);
    ei_x_encode_atom(&x, "history");
    ei_x_encode_binary(&x, metric ? metric : "", metric ? (long)strlen(metric) : 0);
    ei_x_encode_ulonglong(&x, t0);
    if (to) ei_x_encode_ulonglong(&x, t1);
    local_call(r, "beamlet_health", node, NULL, &x, history_cb);
    ei_x_free(&x);
}

/* ---- API keys (admin) ---- */

static void h_keys(gw_req *r)
{
    bl__gw_reply_json(r, 200, bl__gw_key_list(r->g));
}

static void h_key_create(gw_req *r)
{
    json_t *b = parse_body(r, 1);
    if (!b) return;
    int bad = 0;
    const char *role = body_str(b, "role", 16, &bad), *name = body_str(b, "name", 64, &bad);
    int ro = role ? bl__gw_role_parse(role) : -1;
    if (bad || ro < 0) {
        json_decref(b);
        return bl__gw_problem(r, 422, "Unprocessable Content",
                              "role is viewer, operator or admin; name a string under 64 bytes");
    }
    json_t *info = NULL;
    char *key = bl__gw_key_create(r->g, ro, name, &info);
    json_decref(b);
    if (!key)
        return bl__gw_problem(r, 500, "Internal Server Error", "cannot make a key (libcrypto)");
    json_object_set_new(info, "key", json_string(key));
    free(key);
    bl__gw_reply_json(r, 201, info);
}

static void h_key_revoke(gw_req *r)
{
    if (bl__gw_key_revoke(r->g, r->params[0]) != BL_OK)
        return bl__gw_problem(r, 404, "Not Found", "no live key with that id");
    bl__gw_reply(r, 204, NULL, "", 0);
}

/* ---- files ---- */

static void h_openapi(gw_req *r)
{
    size_t len;
    const char *ct;
    const unsigned char *d = bl__gw_asset("openapi.json", &len, &ct);
    bl__gw_reply(r, 200, "application/json", (const char *)d, len);
}

static void h_asset(gw_req *r)
{
    if (!r->g->dashboard) return bl__gw_problem(r, 404, "Not Found", "the dashboard is off");
    const char *name = !strcmp(r->path, "/") ? "index.html" : r->params[0];
    size_t len;
    const char *ct;
    const unsigned char *d = bl__gw_asset(name, &len, &ct);
    if (!d || !strcmp(name, "openapi.json"))
        return bl__gw_problem(r, 404, "Not Found", "no such file");
    bl__gw_reply(r, 200, ct, (const char *)d, len);
}

static void h_index(gw_req *r)
{
    if (!r->g->dashboard)
        return bl__gw_reply_json(r, 200,
                                 json_pack("{s:s, s:s, s:s}", "api", "/api/v1", "openapi",
                                           "/api/v1/openapi.json", "metrics", "/metrics"));
    h_asset(r);
}

/* ---- the table ---- */

/* ---- cluster configuration (services/cconf.c; docs/configuration.md) ---- */

#define CCONF_WRITE_WAIT_MS 9000u

static void cconf_get_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_config");
    json_t *j = bl_term_to_json(buf, &index);
    if (!json_is_object(j)) {
        json_decref(j);
        return bl__gw_problem(r, 502, "Bad Gateway", "beamlet_config: unexpected reply");
    }
    if (r->nparams && !json_array_size(json_object_get(j, "settings"))) {
        json_decref(j);
        return bl__gw_problem(r, 404, "Not Found", "the key is not set cluster-wide");
    }
    bl__gw_reply_json(r, 200, j);
}

static void cconf_list_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_config");
    bl__gw_reply_json(r, 200, bl_term_to_json(buf, &index));
}

/* {ok, Map} -> 200 (state committed, or unchanged); {pending, Map} -> 202 (held by the
 * leader, not yet by a majority of the coordinators: status_url tells what it becomes);
 * {error, Message} -> a problem whose status says what kind */
static void cconf_write_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status == BL_ETIMEOUT)
        return bl__gw_problem(r, 504, "Gateway Timeout",
                              "beamlet_config did not answer in time: the outcome is unknown; "
                              "see GET /api/v1/config/history");
    if (status) return call_failed(r, status, "beamlet_config");
    json_t *ok = ok_json(buf, index);
    if (ok) return bl__gw_reply_json(r, 200, ok);
    json_t *j = bl_term_to_json(buf, &index);
    json_t *pm = json_is_array(j) ? json_array_get(j, 1) : NULL;
    if (json_is_object(pm) && !strcmp(json_string_value(json_array_get(j, 0)) ?: "", "pending")) {
        char url[128];
        snprintf(url, sizeof(url), "/api/v1/config/versions/%lld?term=%lld",
                 (long long)json_integer_value(json_object_get(pm, "version")),
                 (long long)json_integer_value(json_object_get(pm, "term")));
        json_object_set_new(pm, "status_url", json_string(url));
        bl__gw_reply_json(r, 202, json_incref(pm));
        json_decref(j);
        return;
    }
    const char *msg = json_is_array(j) ? json_string_value(json_array_get(j, 1)) : NULL;
    char d[600];
    snprintf(d, sizeof(d), "%s", msg ? msg : "beamlet_config: unexpected reply");
    json_decref(j);
    if (strstr(d, "no leader")) return bl__gw_problem(r, 503, "Service Unavailable", d);
    if (strstr(d, "in time")) return bl__gw_problem(r, 504, "Gateway Timeout", d);
    if (strstr(d, "not set cluster-wide")) return bl__gw_problem(r, 404, "Not Found", d);
    if (strstr(d, "invalid") || strstr(d, "unknown") || strstr(d, "per-node"))
        return bl__gw_problem(r, 400, "Bad Request", d);
    bl__gw_problem(r, 502, "Bad Gateway", d);
}

static void cconf_request(gw_req *r, const char *tag, int nargs, const char *a1, const char *a2,
                          gw_call_cb cb)
{
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, nargs + 1);
    ei_x_encode_atom(&x, tag);
    const char *args[3] = {a1, a2, r->who};
    for (int k = 0; k < nargs; k++) {
        const char *v =
            k == nargs - 1 && (!strcmp(tag, "set") || !strcmp(tag, "unset")) ? r->who : args[k];
        ei_x_encode_binary(&x, v, (long)strlen(v));
    }
    /* a write waits for a majority up to 5 s on the leader, +2 s when forwarded: the
     * gateway waits longer, so it hears committed or pending, never its own timeout */
    int write = !strcmp(tag, "set") || !strcmp(tag, "unset");
    local_call_tmo(r, "beamlet_config", NULL, NULL, &x,
                   write ? CCONF_WRITE_WAIT_MS : GW_CALL_TIMEOUT_MS, cb);
    ei_x_free(&x);
}

/* GET /api/v1/config/versions/{version}?term=T: what became of a write (committed, pending,
 * lost, unknown) */
static void cconf_status_cb(gw_req *r, int status, const char *buf, int index)
{
    if (status) return call_failed(r, status, "beamlet_config");
    json_t *j = bl_term_to_json(buf, &index);
    if (!json_is_object(j)) {
        json_decref(j);
        return bl__gw_problem(r, 502, "Bad Gateway", "beamlet_config: unexpected reply");
    }
    bl__gw_reply_json(r, 200, j);
}

static void h_config_version(gw_req *r)
{
    const char *term = bl__gw_arg(r, "term");
    if (!*r->params[0] || !all_digits(r->params[0]) || strlen(r->params[0]) > 19)
        return bl__gw_problem(r, 400, "Bad Request", "the version is a non-negative integer");
    if (term && (!*term || !all_digits(term) || strlen(term) > 19))
        return bl__gw_problem(r, 400, "Bad Request", "term is a non-negative integer");
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, term ? 3 : 2);
    ei_x_encode_atom(&x, "status");
    ei_x_encode_ulonglong(&x, strtoull(r->params[0], NULL, 10));
    if (term) ei_x_encode_ulonglong(&x, strtoull(term, NULL, 10));
    local_call(r, "beamlet_config", NULL, NULL, &x, cconf_status_cb);
    ei_x_free(&x);
}

static void h_config(gw_req *r)
{
    local_call(r, "beamlet_config", NULL, "get", NULL, cconf_get_cb);
}

static void h_config_key(gw_req *r)
{
    if (!valid_utf8_arg(r, "key", r->params[0])) return;
    cconf_request(r, "get", 1, r->params[0], NULL, cconf_get_cb);
}

static void h_config_history(gw_req *r)
{
    const char *key = bl__gw_arg(r, "key");
    if (!valid_utf8_arg(r, "key", key)) return;
    if (key && *key)
        cconf_request(r, "history", 1, key, NULL, cconf_list_cb);
    else
        local_call(r, "beamlet_config", NULL, "history", NULL, cconf_list_cb);
}

static void h_config_set(gw_req *r)
{
    if (!valid_utf8_arg(r, "key", r->params[0])) return;
    json_t *b = parse_body(r, 1);
    if (!b) return;
    json_t *v = json_object_get(b, "value");
    char num[64];
    const char *value = json_string_value(v);
    if (!value && json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        value = num;
    } else if (!value && json_is_real(v)) {
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        value = num;
    } else if (!value && json_is_boolean(v)) {
        value = json_is_true(v) ? "true" : "false";
    }
    if (!value) {
        json_decref(b);
        return bl__gw_problem(r, 400, "Bad Request",
                              "the body is {\"value\": TEXT} (a string, number or boolean)");
    }
    cconf_request(r, "set", 3, r->params[0], value, cconf_write_cb);
    json_decref(b);
}

static void h_config_unset(gw_req *r)
{
    if (!valid_utf8_arg(r, "key", r->params[0])) return;
    cconf_request(r, "unset", 2, r->params[0], NULL, cconf_write_cb);
}

#define V GW_ROLE_VIEWER
#define O GW_ROLE_OPERATOR
#define A GW_ROLE_ADMIN
const gw_route bl__gw_routes[] = {
    {"GET", "/", h_index, V, 0},
    {"GET", "/assets/{file}", h_asset, V, 0},
    {"GET", "/healthz", h_healthz, -1, 0},
    {"GET", "/readyz", h_readyz, -1, 0},
    {"GET", "/metrics", bl__gw_metrics, V, 0},
    {"GET", "/api/v1/openapi.json", h_openapi, -1, 0},
    {"GET", "/api/v1/cluster", h_cluster, V, 0},
    {"GET", "/api/v1/nodes", h_nodes, V, 0},
    {"GET", "/api/v1/nodes/{node}", h_node, V, 0},
    {"GET", "/api/v1/topology", h_topology, V, 0},
    {"POST", "/api/v1/nodes/{node}/leave", h_node_leave, A, 1},
    {"GET", "/api/v1/services", h_services, V, 0},
    {"POST", "/api/v1/services", h_service_register, O, 1},
    {"GET", "/api/v1/services/{id}", h_service, V, 0},
    {"DELETE", "/api/v1/services/{id}", h_service_deregister, O, 1},
    {"GET", "/api/v1/pg", h_pg, V, 0},
    {"GET", "/api/v1/pg/{group}", h_pg, V, 0},
    {"GET", "/api/v1/global", h_global, V, 0},
    {"GET", "/api/v1/pubsub/topics", h_topics, V, 0},
    {"POST", "/api/v1/pubsub/publish", h_publish, O, 1},
    {"GET", "/api/v1/tasks", h_tasks, V, 0},
    {"GET", "/api/v1/tasks/changes", h_task_changes, V, 0},
    {"POST", "/api/v1/tasks", h_task_submit, O, 1},
    {"GET", "/api/v1/tasks/{id}", h_task, V, 0},
    {"POST", "/api/v1/tasks/{id}/cancel", h_task, O, 1},
    {"GET", "/api/v1/agents", h_task_agents, V, 0},
    {"GET", "/api/v1/health", h_health, V, 0},
    {"GET", "/api/v1/alerts", h_alerts, V, 0},
    {"POST", "/api/v1/alerts/{id}/ack", h_alert_ack, O, 1},
    {"PUT", "/api/v1/nodes/{node}/maintenance", h_maintenance, O, 1},
    {"DELETE", "/api/v1/nodes/{node}/maintenance", h_maintenance, O, 1},
    {"GET", "/api/v1/metrics/history", h_history, V, 0},
    {"GET", "/api/v1/config", h_config, V, 0},
    {"GET", "/api/v1/config/history", h_config_history, V, 0},
    {"GET", "/api/v1/config/versions/{version}", h_config_version, V, 0},
    {"GET", "/api/v1/config/{key}", h_config_key, V, 0},
    {"PUT", "/api/v1/config/{key}", h_config_set, A, 1},
    {"DELETE", "/api/v1/config/{key}", h_config_unset, A, 1},
    {"GET", "/api/v1/events", bl__gw_events_query, V, 0},
    {"GET", "/api/v1/stream", bl__gw_stream_open, V, 0},
    {"GET", "/api/v1/audit", bl__gw_audit_query, A, 0},
    {"GET", "/api/v1/apikeys", h_keys, A, 0},
    {"POST", "/api/v1/apikeys", h_key_create, A, 1},
    {"DELETE", "/api/v1/apikeys/{id}", h_key_revoke, A, 1},
};
#undef V
#undef O
#undef A
const unsigned bl__gw_nroutes = sizeof(bl__gw_routes) / sizeof(bl__gw_routes[0]);

/* Match path against pattern, capturing {x} segments into r->params. */
static int match(const char *pattern, const char *path, gw_req *r)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t l = se ? (size_t)(se - s) : strlen(s);
            if (!pe || l == 0 || l >= sizeof(r->params[0]) || np >= GW_MAX_PARAMS) return 0;
            if (r) {
                memcpy(r->params[np], s, l);
                r->params[np][l] = 0;
            }
            np++;
            p = pe + 1;
            s += l;
            continue;
        }
        if (*p != *s) return 0;
        p++;
        s++;
    }
    if (*p || *s) return 0;
    if (r) r->nparams = np;
    return 1;
}

void bl__gw_dispatch(gw_req *r)
{
    const gw_route *hit = NULL;
    size_t allow_len = 0;
    r->allow[0] = 0;
    int is_head = !strcmp(r->method, "HEAD");
    for (unsigned i = 0; i < bl__gw_nroutes; i++) {
        const gw_route *rt = &bl__gw_routes[i];
        if (!match(rt->pattern, r->path, NULL)) continue;
        if (!strcmp(rt->method, r->method) || (is_head && !strcmp(rt->method, "GET"))) {
            hit = rt;
            break;
        }
        if (!strstr(r->allow, rt->method))
            allow_len +=
                (size_t)snprintf(r->allow + allow_len,
                                 allow_len < sizeof(r->allow) ? sizeof(r->allow) - allow_len : 0,
                                 "%s%s", allow_len ? ", " : "", rt->method);
    }
    if (!hit) {
        if (r->allow[0])
            return bl__gw_problem(r, 405, "Method Not Allowed", "see the Allow header");
        r->allow[0] = 0;
        return bl__gw_problem(r, 404, "Not Found", "no such route (see /api/v1/openapi.json)");
    }
    r->allow[0] = 0;
    r->route = hit;
    match(hit->pattern, r->path, r);
    for (int i = 0; i < r->nparams; i++) {
        json_t *s = json_string(r->params[i]);
        if (!s) return bl__gw_problem(r, 400, "Bad Request", "the path is not valid UTF-8");
        json_decref(s);
        if (strstr(r->params[i], "..") && hit->fn == h_asset)
            return bl__gw_problem(r, 404, "Not Found", "no such file");
    }
    if (bl__gw_authorize(r)) return;
    hit->fn(r);
}
