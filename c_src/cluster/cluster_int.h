/* cluster_int.h - state shared by the cluster files (membership, election, discovery). */
#ifndef BL_CLUSTER_INT_H
#define BL_CLUSTER_INT_H

#include "../runtime/internal.h"
#include "beamlet/cluster.h"

typedef struct member {
    UT_hash_handle hh;
    char role[32];
    char version[32];
    char *capabilities; /* on the heap, sized to the value (NULL: none); was 1.5 KB of arrays */
    char *metadata;     /* per member, most of them empty (membership.c set_text) */
    int is_beam;        /* a BEAM node: present while connected */
    int is_self;
    bl_member_state state;
    unsigned long long epoch, inc; /* started_at_ms, incarnation */
    ev_tstamp last_heard, state_since, connected_at;
    int hello_seen;
    ev_tstamp last_ack; /* election: last leader ack from this coordinator */
    /* failure detector (membership.c) */
    ev_tstamp stall_mark;   /* the detector's stall total when last_heard was set */
    unsigned confirms;      /* other nodes that suspect it too, this suspicion */
    uint32_t confirmed_by[3]; /* hashes of their names, to count each once */
    char node[];              /* sized to the name (was 256 bytes inline) */
} member;

/* The failure detector's view of its own node (Lifeguard's local health) and its counters. */
typedef struct cl_detector {
    unsigned health;     /* local health multiplier, 0 (healthy) .. BL_LOCAL_HEALTH_MAX */
    unsigned health_max; /* the highest it has been */
    unsigned clean;      /* on-time ticks since the score last moved */
    ev_tstamp tick_due;  /* when the running tick was due */
    ev_tstamp stalled;   /* seconds the loop was late for its ticks, in total */
    double lag, lag_max; /* seconds, last and largest */
    unsigned long long late_ticks, suspicions, cleared, failures, refuted, confirmations;
} cl_detector;

typedef struct csub {
    struct csub *next;
    int id;
    int is_pid;
    bl_pid pid;
    bl_cluster_cb cb;
    void *ud;
} csub;

typedef struct rejected {
    UT_hash_handle hh;
    char node[BL_NODE_LEN];
} rejected;

#define MAX_VOTERS 64

typedef enum { EL_FOLLOWER, EL_PRECANDIDATE, EL_CANDIDATE, EL_LEADER } el_role;

typedef struct bl_cluster {
    bl_node *n;
    bl_proc *proc;
    member *members;
    member *self;
    rejected *rejected;
    csub *subs;
    int next_sub_id;
    bl_cluster_event *log;
    unsigned log_cap, log_len, log_head, log_max; /* log: log_cap allocated, up to log_max */
    unsigned long long next_seq;
    ev_timer tick; /* on a wall-clock grid shared by the nodes (tick_schedule) */
    unsigned long ticks;
    ev_tstamp hb_sent; /* when this node last sent its heartbeats */
    int stopping;
    /* election */
    el_role el;
    unsigned long long term;
    char voted_for[BL_NODE_LEN];
    unsigned long long voted_term;
    char leader[BL_NODE_LEN];
    unsigned votes;
    ev_tstamp leader_contact; /* last time a leader (or we as leader) was confirmed */
    ev_timer election_timer, leader_timer;
    unsigned long long rng;
    char voters[MAX_VOTERS][BL_NODE_LEN];
    struct discovery *disc;
    cl_detector det;
} bl_cluster;

bl_cluster *bl_cluster_of(bl_node *n);
void cl_emit(bl_cluster *c, bl_cluster_event_type type, const member *m, bl_member_state from,
             bl_member_state to);
void cl_emit_leader(bl_cluster *c);
/* Send a message term (with version byte) to {beamlet_cluster, node}. */
int cl_send(bl_cluster *c, const char *node, const ei_x_buff *x);
unsigned cl_coordinators(bl_cluster *c, int *self_is);
int cl_is_rejected(bl_cluster *c, const char *node);

/* election.c */
double cl_rnd01(bl_cluster *c); /* uniform in [0, 1) */
void el_init(bl_cluster *c);
void el_start(bl_cluster *c);
void el_stop(bl_cluster *c);
int el_handle(bl_cluster *c, const char *tag, const char *buf, int idx, int arity);
/* A leader whose lease ran out unnoticed (its loop was frozen) steps down now; call before
 * reporting who leads. */
void el_check_lease(bl_cluster *c);
/* election_timeout_ms changed at run time: the timers take the new value. */
void el_config_changed(bl_cluster *c);

/* discovery.c */
int disc_start(bl_cluster *c);
void disc_stop(bl_cluster *c);

#endif
