/* score.h - the cluster health score and status (score.c), a pure function of what every node
 * knows alike: the member table, the leader, each member's node status and maintenance flag,
 * and the service checks. The formula is in docs/health.md and test/unit/test_health_score.c. */
#ifndef BL_HEALTH_SCORE_H
#define BL_HEALTH_SCORE_H

#include "beamlet/cluster.h"

typedef enum {
    BL__NODE_HEALTHY = 0,
    BL__NODE_WARNING = 1,
    BL__NODE_CRITICAL = 2,
    BL__NODE_UNKNOWN = 3
} bl__node_status;

const char *bl__node_status_name(bl__node_status s);

typedef struct bl__score_member {
    bl_member_state state;
    int coordinator;
    bl__node_status status;
    int maintenance;
} bl__score_member;

typedef struct bl__score_in {
    int nmembers;
    const bl__score_member *members;
    int has_leader;
    unsigned checks_passing, checks_warning, checks_critical;
} bl__score_in;

typedef struct bl__score_out {
    double score;                               /* 0.0 .. 1.0 */
    double availability, node_health, services; /* the three parts, each 0.0 .. 1.0 */
    int quorum; /* majority of coordinators (or members) reachable */
    int leader_needed, leader_ok;
    const char *status; /* "active", "degraded", "maintenance", "offline" */
} bl__score_out;

void bl__cluster_score(const bl__score_in *in, bl__score_out *out);

#endif
