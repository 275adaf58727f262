/* score.c - the cluster health score (score.h).
 *
 * Members counted: joining, active, suspected, failed (leaving and left are gone on purpose).
 * Members in maintenance are left out of the first two parts (they are down on purpose too).
 *   availability A = sum(active 1, joining 0.5, suspected 0.5, failed 0) / counted
 *   node health  H = mean(healthy 1, warning 0.6, critical 0.2, unknown 0.5; failed 0)
 *   services     S = (passing + 0.5 x warning) / checks, 1 without checks
 *   score = 0.4 A + 0.3 H + 0.3 S, then capped at 0.25 without quorum and at 0.5 when a leader
 *   is needed (the cluster has coordinators) and there is none.
 * Quorum: more than half of the coordinators reachable (joining, active, suspected); without
 * coordinators, more than half of the counted members.
 * Status: offline without quorum; degraded when a member (not in maintenance) is suspected or
 * failed, a needed leader is missing, a node or a check is critical, or the score is below 0.8;
 * maintenance when, short of that, a member is in maintenance; else active. */
#include "score.h"

const char *bl__node_status_name(bl__node_status s)
{
    static const char *const N[] = {"healthy", "warning", "critical", "unknown"};
    return (unsigned)s < 4 ? N[s] : "unknown";
}

static int counted(bl_member_state s)
{
    return s == BL_MEMBER_JOINING || s == BL_MEMBER_ACTIVE || s == BL_MEMBER_SUSPECTED ||
           s == BL_MEMBER_FAILED;
}

static int reachable(bl_member_state s)
{
    return s == BL_MEMBER_JOINING || s == BL_MEMBER_ACTIVE || s == BL_MEMBER_SUSPECTED;
}

void bl__cluster_score(const bl__score_in *in, bl__score_out *out)
{
    static const double STATUS_VALUE[] = {1.0, 0.6, 0.2, 0.5};
    double a = 0, h = 0;
    int n = 0, maint = 0, coords = 0, coords_up = 0, up = 0, total = 0, trouble = 0;
    for (int i = 0; i < in->nmembers; i++) {
        const bl__score_member *m = &in->members[i];
        if (!counted(m->state)) continue;
        total++;
        if (reachable(m->state)) up++;
        if (m->coordinator) {
            coords++;
            if (reachable(m->state)) coords_up++;
        }
        if (m->maintenance) {
            maint++;
            continue;
        }
        n++;
        a += m->state == BL_MEMBER_ACTIVE ? 1.0 : m->state == BL_MEMBER_FAILED ? 0.0 : 0.5;
        h += m->state == BL_MEMBER_FAILED ? 0.0
                                          : STATUS_VALUE[(unsigned)m->status < 4 ? m->status : 3];
        if (m->state == BL_MEMBER_SUSPECTED || m->state == BL_MEMBER_FAILED ||
            (m->status == BL__NODE_CRITICAL && reachable(m->state)))
            trouble = 1;
    }
    out->availability = n ? a / n : (maint ? 1.0 : 0.0);
    out->node_health = n ? h / n : (maint ? 1.0 : 0.0);
    unsigned checks = in->checks_passing + in->checks_warning + in->checks_critical;
    out->services = checks ? (in->checks_passing + 0.5 * in->checks_warning) / checks : 1.0;
    out->quorum = coords ? coords_up * 2 > coords : (total > 0 && up * 2 > total);
    out->leader_needed = coords > 0;
    out->leader_ok = !out->leader_needed || in->has_leader;
    double s = 0.4 * out->availability + 0.3 * out->node_health + 0.3 * out->services;
    if (!out->quorum && s > 0.25) s = 0.25;
    if (!out->leader_ok && s > 0.5) s = 0.5;
    if (s < 0) s = 0;
    if (s > 1) s = 1;
    out->score = s;
    if (!out->quorum)
        out->status = "offline";
    else if (trouble || !out->leader_ok || in->checks_critical > 0 || s < 0.8)
        out->status = "degraded";
    else if (maint)
        out->status = "maintenance";
    else
        out->status = "active";
}
