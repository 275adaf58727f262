/* recs.c - recommendations listed with the health summary: rules on the member table, each
 * member's status and figures, filesystem growth (a linear fit over the node's history, see
 * hstore trends) and the alerts. Each has the condition that triggered it and a concrete
 * action:
 *   one or two coordinators          -> start more so the cluster survives losing one
 *   members but no coordinator        -> run three coordinators for leader election
 *   a member failed                   -> restart it or make it leave
 *   a filesystem at the warning level -> free space; with growth, "about N days left"
 *   a filesystem filling within 7 days at its current rate, even below the warning level
 *   memory available low, load high   -> move work or add capacity
 *   in maintenance for over a day     -> take it out
 *   firing alerts unacknowledged for over an hour */
#include "health_int.h"
#include "trend.h"

#include <stdio.h>
#include <string.h>

#define MAX_RECS 32

typedef struct rec {
    const char *sev;
    char node[BL_NODE_LEN], cond[256], action[256];
} rec;

typedef struct recs {
    rec r[MAX_RECS];
    int n;
} recs;

static rec *add(recs *rs, const char *sev, const char *node)
{
    if (rs->n >= MAX_RECS) return NULL;
    rec *r = &rs->r[rs->n++];
    r->sev = sev;
    snprintf(r->node, sizeof(r->node), "%s", node ? node : "");
    r->cond[0] = r->action[0] = 0;
    return r;
}

static void human_days(double d, char *out, size_t cap)
{
    if (d < 1.0 / 24)
        snprintf(out, cap, "about %.0f minutes", d * 1440 < 1 ? 1 : d * 1440);
    else if (d < 2)
        snprintf(out, cap, "about %.0f hours", d * 24);
    else
        snprintf(out, cap, "about %.0f days", d);
}

static void disk_recs(health *h, recs *rs, const char *node, const char *mount, double used)
{
    const bl_config *c = &h->n->cfg;
    double per_day = bl__view_growth(h, node, mount);
    double left = bl__days_left(used, per_day);
    char when[64] = "";
    if (left >= 0) human_days(left, when, sizeof(when));
    rec *r;
    if (used >= c->disk_warn_percent) {
        if (!(r = add(rs, used >= c->disk_crit_percent ? "critical" : "warn", node))) return;
        if (left >= 0)
            snprintf(r->cond, sizeof(r->cond),
                     "%s on %s is %.0f%% full and grew %.1f%%/day: %s left", mount, node, used,
                     per_day, when);
        else
            snprintf(r->cond, sizeof(r->cond), "%s on %s is %.0f%% full", mount, node, used);
        snprintf(r->action, sizeof(r->action),
                 "free space on %s (old logs, caches, images) or grow the filesystem", mount);
    } else if (left >= 0 && left < 7) {
        if (!(r = add(rs, "warn", node))) return;
        snprintf(r->cond, sizeof(r->cond), "%s on %s is %.0f%% full and grows %.1f%%/day: %s left",
                 mount, node, used, per_day, when);
        snprintf(r->action, sizeof(r->action),
                 "find what writes to %s and stop it, or add space before it fills", mount);
    }
}

void bl__recs_encode(health *h, ei_x_buff *x)
{
    bl_node *n = h->n;
    const bl_config *c = &n->cfg;
    recs rs;
    rs.n = 0;
    int nm = 0;
    bl_member_info *mi = bl__health_members(n, &nm);
    int coords = 0, counted = 0;
    for (int i = 0; i < nm; i++) {
        if (mi[i].state == BL_MEMBER_LEFT || mi[i].state == BL_MEMBER_LEAVING) continue;
        counted++;
        coords += !strcmp(mi[i].role, "coordinator");
    }
    rec *r;
    if ((coords == 1 || coords == 2) && (r = add(&rs, "warn", NULL))) {
        snprintf(r->cond, sizeof(r->cond), "only %s coordinator%s", coords == 1 ? "one" : "two",
                 coords == 1 ? "" : "s");
        snprintf(r->action, sizeof(r->action),
                 coords == 1 ? "start two more so the cluster survives losing one"
                             : "start a third so the cluster keeps a majority when one is lost");
    } else if (coords == 0 && counted >= 3 && (r = add(&rs, "info", NULL))) {
        snprintf(r->cond, sizeof(r->cond), "%d members and no coordinator: no leader is elected",
                 counted);
        snprintf(r->action, sizeof(r->action),
                 "run three nodes with --role coordinator so a leader decides alerts and tasks");
    }
    for (int i = 0; i < nm; i++) {
        const char *node = mi[i].node;
        int self = bl_is_local_node(n, node);
        if (mi[i].state == BL_MEMBER_FAILED && !bl__view_node_maintenance(h, node) &&
            (r = add(&rs, "critical", node))) {
            snprintf(r->cond, sizeof(r->cond), "member %s (%s) failed", node, mi[i].role);
            snprintf(r->action, sizeof(r->action),
                     "restart it, or put it in maintenance while you work on it (beamlet node "
                     "maintenance on --node %s)",
                     node);
        }
        if (mi[i].state != BL_MEMBER_ACTIVE) continue;
        bl__peer *p = self ? NULL : bl__view_peer(h, node);
        if (!self && !p) continue;
        int maint = self ? h->maintenance : p->maintenance;
        unsigned long long since = self ? h->maint_since : 0;
        if (maint && self && since && bl_now_ms() - since > 86400000ULL &&
            (r = add(&rs, "info", node))) {
            snprintf(r->cond, sizeof(r->cond),
                     "%s has been in maintenance for %.0f days (set by %s)", node,
                     (double)(bl_now_ms() - since) / 86400000.0, h->maint_who);
            snprintf(r->action, sizeof(r->action),
                     "take it out when done: beamlet node maintenance off --node %s", node);
        }
        if (maint) continue;
        if (self) {
            for (int k = 0; k < h->cur.nfs; k++)
                disk_recs(h, &rs, node, h->cur.fs[k].mount, h->cur.fs[k].used_percent);
        } else {
            for (int k = 0; k < p->nmounts; k++)
                disk_recs(h, &rs, node, p->mounts[k], p->used[k]);
        }
        double mem = self ? h->eval.mem_available_percent : p->mem_avail;
        double cpus = self ? (h->cur.ncpu ? h->cur.ncpu : 1) : (p->ncpu ? p->ncpu : 1);
        double load5 = self ? h->cur.load5 : p->load5;
        if ((self ? h->cur.mem_total > 0 : 1) && mem <= c->mem_warn_percent &&
            (r = add(&rs, mem <= c->mem_crit_percent ? "critical" : "warn", node))) {
            snprintf(r->cond, sizeof(r->cond), "memory available on %s is %.1f%%", node, mem);
            snprintf(
                r->action, sizeof(r->action),
                "move services off %s or add memory before the kernel starts killing processes",
                node);
        }
        if (load5 / cpus >= c->load_warn_per_cpu && (r = add(&rs, "warn", node))) {
            snprintf(r->cond, sizeof(r->cond), "5 min load on %s is %.1f per CPU (%.0f CPUs)", node,
                     load5 / cpus, cpus);
            snprintf(r->action, sizeof(r->action),
                     "move work to less loaded members or add CPUs to %s", node);
        }
    }
    char ids[256];
    int stale = bl__alerts_stale(h->al, 3600000ULL, ids, sizeof(ids));
    if (stale && (r = add(&rs, "warn", NULL))) {
        snprintf(r->cond, sizeof(r->cond), "%d alert%s firing for over an hour unacknowledged (%s)",
                 stale, stale > 1 ? "s" : "", ids);
        snprintf(r->action, sizeof(r->action),
                 "look at them and acknowledge: beamlet alerts ack ID --node %s", n->name);
    }
    free(mi);
    for (int i = 0; i < rs.n; i++) {
        ei_x_encode_list_header(x, 1);
        ei_x_encode_map_header(x, 4);
        ei_x_encode_atom(x, "severity");
        ei_x_encode_atom(x, rs.r[i].sev);
        ei_x_encode_atom(x, "node");
        if (rs.r[i].node[0])
            ei_x_encode_atom(x, rs.r[i].node);
        else
            ei_x_encode_atom(x, "undefined");
        bl__kv_str(x, "condition", rs.r[i].cond);
        bl__kv_str(x, "action", rs.r[i].action);
    }
    ei_x_encode_empty_list(x);
}
