/* view.c - node status and the cluster's health as every node sees it.
 *
 * After each sample a node evaluates its own status (nodestat.c) and sends a summary to the
 * beamlet_health of every peer: {bl_health_sum, Node, Status, Maintenance, CpuPercent,
 * MemAvailablePercent, DiskMaxUsedPercent, Load1, Cpus, [Reason], MaintenanceWho}. Each node
 * keeps the latest summary per peer (older than three intervals plus two seconds reads as
 * unknown) and computes the cluster score (score.c) from its member table, the leader and those
 * statuses, so every node answers `health` from the same inputs. */
#include "health_int.h"
#include "score.h"
#include "checks.h"

#include <stdlib.h>
#include <string.h>

#define MAX_MEMBERS 512

bl_member_info *bl__health_members(bl_node *n, int *count)
{
    int k = n->cluster ? bl_cluster_members(n, NULL, 0) : 0;
    if (k > MAX_MEMBERS) k = MAX_MEMBERS;
    *count = 0;
    bl_member_info *mi = calloc(k > 0 ? (size_t)k : 1, sizeof(*mi));
    if (!mi) return NULL;
    int got = k > 0 ? bl_cluster_members(n, mi, k) : 0;
    if (got > k) got = k;
    if (got <= 0) { /* no membership: this node alone */
        snprintf(mi[0].node, sizeof(mi[0].node), "%s", n->name);
        snprintf(mi[0].role, sizeof(mi[0].role), "%s", n->cfg.role);
        mi[0].state = BL_MEMBER_ACTIVE;
        got = 1;
    }
    *count = got;
    return mi;
}

static ev_tstamp stale_after(health *h)
{
    return 3.0 * h->interval_ms / 1000.0 + 2.0;
}

static void enc_check(const char *name, int status, void *ud)
{
    ei_x_buff *x = ud;
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_binary(x, name, (long)strlen(name));
    ei_x_encode_long(x, status);
}

static void encode_summary(health *h, ei_x_buff *x)
{
    const bl__node_eval_out *e = &h->eval;
    ei_x_new_with_version(x);
    ei_x_encode_tuple_header(x, 15);
    ei_x_encode_atom(x, "bl_health_sum");
    ei_x_encode_atom(x, h->n->name);
    ei_x_encode_atom(x, bl__node_status_name(h->have ? e->status : BL__NODE_UNKNOWN));
    ei_x_encode_boolean(x, h->maintenance);
    ei_x_encode_double(x, h->cur.cpu_pct.busy);
    ei_x_encode_double(x, e->mem_available_percent);
    ei_x_encode_double(x, e->disk_max_percent);
    ei_x_encode_double(x, h->cur.load1);
    ei_x_encode_ulong(x, h->cur.ncpu);
    for (int i = 0; i < e->nreasons; i++) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_binary(x, e->reasons[i], (long)strlen(e->reasons[i]));
    }
    ei_x_encode_empty_list(x);
    ei_x_encode_binary(x, h->maint_who, (long)strlen(h->maint_who));
    ei_x_encode_double(x, h->cur.load5);
    for (int i = 0; i < h->cur.nfs && i < 8; i++) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_binary(x, h->cur.fs[i].mount, (long)strlen(h->cur.fs[i].mount));
        ei_x_encode_double(x, h->cur.fs[i].used_percent);
    }
    ei_x_encode_empty_list(x);
    for (int i = 0; i < h->ntrends; i++) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_binary(x, h->trends[i].mount, (long)strlen(h->trends[i].mount));
        ei_x_encode_double(x, h->trends[i].per_day);
    }
    ei_x_encode_empty_list(x);
    bl__checks_each(h->checks, enc_check, x);
    ei_x_encode_empty_list(x);
}

double bl__view_growth(health *h, const char *node, const char *mount)
{
    if (bl_is_local_node(h->n, node)) {
        for (int i = 0; i < h->ntrends; i++)
            if (!strcmp(h->trends[i].mount, mount)) return h->trends[i].per_day;
        return 0;
    }
    bl__peer *p = bl__view_peer(h, node);
    for (int i = 0; p && i < p->nmounts; i++)
        if (!strcmp(p->mounts[i], mount)) return p->per_day[i];
    return 0;
}

bl__peer *bl__view_peer(health *h, const char *node)
{
    bl__peer *p = NULL;
    HASH_FIND_STR(h->peers, node, p);
    return p && ev_now(h->n->loop) - p->at <= stale_after(h) ? p : NULL;
}

void bl__view_broadcast(health *h)
{
    ei_x_buff x;
    encode_summary(h, &x);
    bl_cluster_send_peers(h->proc, BL_HEALTH_NAME, &x, -1);
    ei_x_free(&x);
}

void bl__view_sampled(health *h)
{
    bl__node_status was = h->eval.status;
    int had = h->samples > 1;
    bl__node_eval(&h->n->cfg, &h->cur, &h->eval);
    if (had && was != h->eval.status) {
        json_t *r = json_array();
        for (int i = 0; i < h->eval.nreasons; i++)
            json_array_append_new(r, json_string(h->eval.reasons[i]));
        bl__health_record(h, h->n->name, "node",
                          h->eval.status == BL__NODE_CRITICAL  ? "critical"
                          : h->eval.status == BL__NODE_WARNING ? "warn"
                                                               : "info",
                          NULL,
                          json_pack("{s:s, s:s, s:s, s:o}", "event", "status_changed", "from",
                                    bl__node_status_name(was), "to",
                                    bl__node_status_name(h->eval.status), "reasons", r));
    }
    bl__view_broadcast(h);
}

/* a summary as decoded, in bounded arrays on the stack; pack() keeps only what was sent */
typedef struct peer_in {
    double cpu, mem_avail, disk_max, load1, load5;
    int nreasons, nmounts, nchecks;
    char reasons[BL__MAX_REASONS][128];
    char maint_who[128];
    char mounts[8][128];
    double used[8], per_day[8];
    char check_names[16][64];
    int check_status[16];
} peer_in;

static size_t strs_len(int n, const char *s, size_t stride)
{
    size_t t = 0;
    for (int i = 0; i < n; i++)
        t += strlen(s + (size_t)i * stride) + 1;
    return t;
}

static const char *put(char **w, const char *s)
{
    size_t l = strlen(s) + 1;
    memcpy(*w, s, l);
    const char *r = *w;
    *w += l;
    return r;
}

/* Replaces p's strings and figures with in's; p keeps its old ones when out of memory. */
static int pack(bl__peer *p, const peer_in *in)
{
    size_t need = strs_len(in->nreasons, in->reasons[0], sizeof(in->reasons[0])) +
                  strlen(in->maint_who) + 1 +
                  strs_len(in->nmounts, in->mounts[0], sizeof(in->mounts[0])) +
                  strs_len(in->nchecks, in->check_names[0], sizeof(in->check_names[0]));
    char *text = malloc(need), *w = text;
    if (!text) return -1;
    free(p->text);
    p->text = text;
    p->cpu = in->cpu, p->mem_avail = in->mem_avail, p->disk_max = in->disk_max;
    p->load1 = in->load1, p->load5 = in->load5;
    p->nreasons = in->nreasons, p->nmounts = in->nmounts, p->nchecks = in->nchecks;
    for (int i = 0; i < in->nreasons; i++)
        p->reasons[i] = put(&w, in->reasons[i]);
    p->maint_who = put(&w, in->maint_who);
    for (int i = 0; i < in->nmounts; i++) {
        p->mounts[i] = put(&w, in->mounts[i]);
        p->used[i] = in->used[i];
        p->per_day[i] = in->per_day[i];
    }
    for (int i = 0; i < in->nchecks; i++) {
        p->check_names[i] = put(&w, in->check_names[i]);
        p->check_status[i] = (signed char)in->check_status[i];
    }
    return 0;
}

static int status_of(const char *a)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(a, bl__node_status_name((bl__node_status)i))) return i;
    return BL__NODE_UNKNOWN;
}

int bl__view_on_msg(health *h, const bl_msg *m)
{
    const char *buf = m->buf;
    int idx = m->index, ar, type, size;
    char tag[MAXATOMLEN_UTF8], node[MAXATOMLEN_UTF8], st[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &ar) < 0 || ar != 15 ||
        ei_decode_atom(buf, &idx, tag) < 0 || strcmp(tag, "bl_health_sum"))
        return 0;
    peer_in tmp;
    memset(&tmp, 0, sizeof(tmp));
    int maint;
    unsigned long ncpu;
    if (ei_decode_atom(buf, &idx, node) < 0 || ei_decode_atom(buf, &idx, st) < 0 ||
        ei_decode_boolean(buf, &idx, &maint) < 0 || ei_decode_double(buf, &idx, &tmp.cpu) < 0 ||
        ei_decode_double(buf, &idx, &tmp.mem_avail) < 0 ||
        ei_decode_double(buf, &idx, &tmp.disk_max) < 0 ||
        ei_decode_double(buf, &idx, &tmp.load1) < 0 || ei_decode_ulong(buf, &idx, &ncpu) < 0)
        return 1;
    /* reasons: a list of binaries, cell by cell */
    while (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        int n;
        if (ei_decode_list_header(buf, &idx, &n) < 0) return 1;
        for (int i = 0; i < n; i++) {
            if (ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT) return 1;
            if (tmp.nreasons < BL__MAX_REASONS && size < (int)sizeof(tmp.reasons[0])) {
                long len;
                if (ei_decode_binary(buf, &idx, tmp.reasons[tmp.nreasons], &len) < 0) return 1;
                tmp.reasons[tmp.nreasons++][len] = 0;
            } else if (bl__skip_term(buf, &idx) < 0) {
                return 1;
            }
        }
    }
    if (bl__skip_term(buf, &idx) < 0) return 1; /* [] */
    if (ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT ||
        size >= (int)sizeof(tmp.maint_who))
        return 1;
    long wl;
    if (ei_decode_binary(buf, &idx, tmp.maint_who, &wl) < 0) return 1;
    tmp.maint_who[wl] = 0;
    if (ei_decode_double(buf, &idx, &tmp.load5) < 0) return 1;
    while (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        int n;
        if (ei_decode_list_header(buf, &idx, &n) < 0) return 1;
        for (int i = 0; i < n; i++) {
            int tar;
            if (ei_decode_tuple_header(buf, &idx, &tar) < 0 || tar != 2 ||
                ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT)
                return 1;
            if (tmp.nmounts < 8 && size < (int)sizeof(tmp.mounts[0])) {
                long len;
                if (ei_decode_binary(buf, &idx, tmp.mounts[tmp.nmounts], &len) < 0 ||
                    ei_decode_double(buf, &idx, &tmp.used[tmp.nmounts]) < 0)
                    return 1;
                tmp.mounts[tmp.nmounts++][len] = 0;
            } else if (bl__skip_term(buf, &idx) < 0 || bl__skip_term(buf, &idx) < 0) {
                return 1;
            }
        }
    }
    if (bl__skip_term(buf, &idx) < 0) return 1; /* [] */
    /* trends: [{Mount, PerDay}] matched to the mounts above */
    while (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        int n;
        if (ei_decode_list_header(buf, &idx, &n) < 0) return 1;
        for (int i = 0; i < n; i++) {
            int tar;
            char mnt[128];
            double pd;
            if (ei_decode_tuple_header(buf, &idx, &tar) < 0 || tar != 2 ||
                ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT)
                return 1;
            if (size < (int)sizeof(mnt)) {
                long len;
                if (ei_decode_binary(buf, &idx, mnt, &len) < 0 ||
                    ei_decode_double(buf, &idx, &pd) < 0)
                    return 1;
                mnt[len] = 0;
                for (int k = 0; k < tmp.nmounts; k++)
                    if (!strcmp(tmp.mounts[k], mnt)) tmp.per_day[k] = pd;
            } else if (bl__skip_term(buf, &idx) < 0 || bl__skip_term(buf, &idx) < 0) {
                return 1;
            }
        }
    }
    if (bl__skip_term(buf, &idx) < 0) return 1; /* [] */
    /* checks: [{Name, Status}] */
    while (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        int n;
        if (ei_decode_list_header(buf, &idx, &n) < 0) return 1;
        for (int i = 0; i < n; i++) {
            int tar;
            long st2;
            if (ei_decode_tuple_header(buf, &idx, &tar) < 0 || tar != 2 ||
                ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT)
                return 1;
            if (tmp.nchecks < 16 && size < (int)sizeof(tmp.check_names[0])) {
                long len;
                if (ei_decode_binary(buf, &idx, tmp.check_names[tmp.nchecks], &len) < 0 ||
                    ei_decode_long(buf, &idx, &st2) < 0)
                    return 1;
                tmp.check_names[tmp.nchecks][len] = 0;
                tmp.check_status[tmp.nchecks++] = (int)st2;
            } else if (bl__skip_term(buf, &idx) < 0 || bl__skip_term(buf, &idx) < 0) {
                return 1;
            }
        }
    }
    /* only members (and the sender itself) may say how a node is */
    if (!m->has_sender || strcmp(bl_pid_node(&m->sender), node) || !bl_cluster_is_peer(h->n, node))
        return 1;
    bl__peer *p = NULL;
    HASH_FIND_STR(h->peers, node, p);
    if (!p) {
        if (HASH_COUNT(h->peers) >= MAX_MEMBERS) return 1;
        size_t nl = strlen(node) + 1;
        p = calloc(1, sizeof(*p) + nl);
        if (!p) return 1;
        memcpy(p->node, node, nl);
        if (pack(p, &tmp) < 0) {
            free(p);
            return 1;
        }
        HASH_ADD_STR(h->peers, node, p);
    } else if (pack(p, &tmp) < 0) {
        return 1; /* out of memory: the last summary stays */
    }
    p->status = (bl__node_status)status_of(st);
    p->maintenance = maint;
    p->ncpu = (unsigned)ncpu;
    p->at = ev_now(h->n->loop);
    return 1;
}

int bl__view_node_maintenance(health *h, const char *node)
{
    if (bl_is_local_node(h->n, node)) return h->maintenance;
    bl__peer *p = NULL;
    HASH_FIND_STR(h->peers, node, p);
    return p && ev_now(h->n->loop) - p->at <= stale_after(h) ? p->maintenance : 0;
}

static void encode_reasons(ei_x_buff *x, int n, const char *const *r)
{
    ei_x_encode_atom(x, "reasons");
    for (int i = 0; i < n; i++) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_binary(x, r[i], (long)strlen(r[i]));
    }
    ei_x_encode_empty_list(x);
}

void bl__view_encode_health(health *h, ei_x_buff *x)
{
    bl_node *n = h->n;
    int nm = 0;
    bl_member_info *mi = bl__health_members(n, &nm);
    bl__score_member *sm = nm > 0 ? calloc((size_t)nm, sizeof(*sm)) : NULL;
    if (!sm) nm = 0;
    ev_tstamp now = ev_now(n->loop);
    for (int i = 0; i < nm; i++) {
        sm[i].state = mi[i].state;
        sm[i].coordinator = !strcmp(mi[i].role, "coordinator");
        if (bl_is_local_node(n, mi[i].node)) {
            sm[i].status = h->have ? h->eval.status : BL__NODE_UNKNOWN;
            sm[i].maintenance = h->maintenance;
        } else {
            bl__peer *p = NULL;
            HASH_FIND_STR(h->peers, mi[i].node, p);
            int fresh = p && now - p->at <= stale_after(h);
            sm[i].status = fresh ? p->status : BL__NODE_UNKNOWN;
            sm[i].maintenance = p ? p->maintenance : 0; /* kept while it is down */
        }
    }
    unsigned long long term = 0;
    const char *leader = n->cluster ? bl_cluster_leader(n, &term) : NULL;
    bl__score_in in = {.nmembers = nm, .members = sm, .has_leader = leader != NULL};
    for (int i = 0; i < nm; i++) { /* the checks of members not in maintenance */
        if (sm[i].maintenance || mi[i].state != BL_MEMBER_ACTIVE) continue;
        if (bl_is_local_node(n, mi[i].node)) {
            unsigned p, w, c;
            bl__checks_counts(h->checks, &p, &w, &c);
            in.checks_passing += p, in.checks_warning += w, in.checks_critical += c;
            continue;
        }
        bl__peer *pp = bl__view_peer(h, mi[i].node);
        for (int k = 0; pp && k < pp->nchecks; k++) {
            in.checks_passing += pp->check_status[k] == 0;
            in.checks_warning += pp->check_status[k] == 1;
            in.checks_critical += pp->check_status[k] == 2;
        }
    }
    bl__score_out o;
    bl__cluster_score(&in, &o);

    ei_x_encode_map_header(x, 10);
    ei_x_encode_atom(x, "checks"); /* this node's */
    bl__checks_encode(h->checks, x);
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, n->name);
    ei_x_encode_atom(x, "recommendations");
    bl__recs_encode(h, x);
    ei_x_encode_atom(x, "alerts"); /* pending and firing */
    bl__alerts_encode(h->al, x, 0);
    bl__kv_dbl(x, "score", o.score);
    ei_x_encode_atom(x, "status");
    ei_x_encode_atom(x, o.status);
    ei_x_encode_atom(x, "leader");
    ei_x_encode_atom(x, leader ? leader : "undefined");
    bl__kv_u64(x, "term", term);
    ei_x_encode_atom(x, "components");
    ei_x_encode_map_header(x, 6);
    bl__kv_dbl(x, "availability", o.availability);
    bl__kv_dbl(x, "node_health", o.node_health);
    bl__kv_dbl(x, "services", o.services);
    ei_x_encode_atom(x, "quorum");
    ei_x_encode_boolean(x, o.quorum);
    ei_x_encode_atom(x, "leader_needed");
    ei_x_encode_boolean(x, o.leader_needed);
    ei_x_encode_atom(x, "leader_ok");
    ei_x_encode_boolean(x, o.leader_ok);
    ei_x_encode_atom(x, "nodes");
    for (int i = 0; i < nm; i++) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_map_header(x, 11);
        ei_x_encode_atom(x, "node");
        ei_x_encode_atom(x, mi[i].node);
        bl__kv_str(x, "role", mi[i].role);
        ei_x_encode_atom(x, "state");
        ei_x_encode_atom(x, bl_member_state_name(mi[i].state));
        ei_x_encode_atom(x, "status");
        ei_x_encode_atom(x, bl__node_status_name(sm[i].status));
        ei_x_encode_atom(x, "maintenance");
        ei_x_encode_boolean(x, sm[i].maintenance);
        if (bl_is_local_node(n, mi[i].node)) {
            bl__kv_dbl(x, "cpu_percent", h->cur.cpu_pct.busy);
            bl__kv_dbl(x, "mem_available_percent", h->eval.mem_available_percent);
            bl__kv_dbl(x, "disk_max_used_percent", h->eval.disk_max_percent);
            bl__kv_dbl(x, "load1", h->cur.load1);
            bl__kv_u64(x, "cpus", h->cur.ncpu);
            const char *lr[BL__MAX_REASONS];
            for (int k = 0; k < h->eval.nreasons && k < BL__MAX_REASONS; k++)
                lr[k] = h->eval.reasons[k];
            encode_reasons(x, h->eval.nreasons, lr);
        } else {
            bl__peer *p = NULL, none;
            HASH_FIND_STR(h->peers, mi[i].node, p);
            if (!p) {
                memset(&none, 0, sizeof(none));
                p = &none;
            }
            bl__kv_dbl(x, "cpu_percent", p->cpu);
            bl__kv_dbl(x, "mem_available_percent", p->mem_avail);
            bl__kv_dbl(x, "disk_max_used_percent", p->disk_max);
            bl__kv_dbl(x, "load1", p->load1);
            bl__kv_u64(x, "cpus", p->ncpu);
            encode_reasons(x, p->nreasons, p->reasons);
        }
    }
    ei_x_encode_empty_list(x);
    free(mi);
    free(sm);
}

void bl__view_free(health *h)
{
    bl__peer *p, *t;
    HASH_ITER(hh, h->peers, p, t)
    {
        HASH_DEL(h->peers, p);
        free(p->text);
        free(p);
    }
}
