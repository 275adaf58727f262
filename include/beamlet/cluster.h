/* cluster.h - cluster membership, failure detection and leader election, seen from C.
 *
 * Every beamlet node runs the `beamlet_cluster` process (see docs/cluster.md for its message
 * protocol, usable from BEAM with gen_server:call). These functions read the same state. */
#ifndef BEAMLET_CLUSTER_H
#define BEAMLET_CLUSTER_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include "beamlet.h"

typedef enum {
    BL_MEMBER_JOINING = 0,
    BL_MEMBER_ACTIVE,
    BL_MEMBER_SUSPECTED,
    BL_MEMBER_FAILED,
    BL_MEMBER_LEAVING,
    BL_MEMBER_LEFT,
} bl_member_state;

const char *bl_member_state_name(bl_member_state s);

typedef struct bl_member_info {
    char node[BL_NODE_LEN];
    char role[32];
    bl_member_state state;
    unsigned long long started_at_ms; /* identifies one run of the node */
    unsigned long long incarnation;   /* bumped to refute suspicion */
    double last_seen_ms_ago;
} bl_member_info;

/* The failure detector of this node (docs/cluster.md, "Failure detection under load"). */
#define BL_LOCAL_HEALTH_MAX 8
typedef struct bl_detector_info {
    unsigned local_health;            /* 0 healthy .. BL_LOCAL_HEALTH_MAX: timeouts x (1 + it) */
    unsigned local_health_max;        /* the highest it has been since the node started */
    double loop_lag_ms, loop_lag_max_ms; /* how late the detector's tick fired: last, largest */
    unsigned long long late_ticks;    /* ticks late enough to lower local health */
    unsigned long long suspicions;    /* members this node moved to suspected */
    unsigned long long cleared;       /* suspected or failed members heard again (false alarms) */
    unsigned long long failures;      /* members this node moved to failed */
    unsigned long long refuted;       /* suspicions of this node it refuted */
    unsigned long long confirmations; /* other nodes' suspicions that shortened a timeout */
} bl_detector_info;

typedef enum {
    BL_EV_NODE_JOINED = 0,
    BL_EV_NODE_STATE_CHANGED,
    BL_EV_NODE_LEFT,
    BL_EV_LEADER_CHANGED,
} bl_cluster_event_type;

typedef struct bl_cluster_event {
    unsigned long long seq, time_ms;
    bl_cluster_event_type type;
    char node[BL_NODE_LEN]; /* the member concerned; the new leader for leader_changed */
    char role[32];
    bl_member_state from, to; /* node_state_changed */
    unsigned long long term;  /* leader_changed */
    int has_leader;           /* leader_changed: 0 = no leader (lost majority) */
} bl_cluster_event;

typedef void (*bl_cluster_cb)(bl_node *n, const bl_cluster_event *ev, void *ud);

/* Fill up to max members (self included); returns how many there are. */
int bl_cluster_members(bl_node *n, bl_member_info *out, int max);
/* Current leader (NULL if none) and term. */
const char *bl_cluster_leader(bl_node *n, unsigned long long *term);
/* 1 when a majority of members is reachable and, if there are coordinators, a leader exists. */
int bl_cluster_healthy(bl_node *n);
/* The failure detector's state; BL_ENOPROC on a node without membership. */
int bl_cluster_detector(bl_node *n, bl_detector_info *out);
int bl_cluster_subscribe(bl_node *n, bl_cluster_cb cb, void *ud);
void bl_cluster_unsubscribe(bl_node *n, int id);

#pragma GCC visibility pop

#endif
