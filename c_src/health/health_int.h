/* health_int.h - shared by the files of the health service (c_src/health/). */
#ifndef BL_HEALTH_INT_H
#define BL_HEALTH_INT_H

#include "../runtime/internal.h"
#include "beamlet/health.h"

#define BL_HEALTH_NAME "beamlet_health"

#include "nodestat.h"

struct bl__collector;
struct bl__hstore;

#define MAX_WAITING 64 /* calls parked until the first sample */

typedef struct hsub {
    struct hsub *next;
    int id;
    bl_health_sample_cb cb;
    void *ud;
} hsub;

/* what a peer's beamlet_health last said about its node (view.c). Kept for every member, so it is
 * packed: the strings live in one block (text) sized to what the peer sent, not in worst-case
 * arrays (that was 3.8 KB per peer). */
typedef struct bl__peer {
    UT_hash_handle hh;
    bl__node_status status;
    int maintenance;
    double cpu, mem_avail, disk_max, load1, load5;
    unsigned ncpu;
    int nreasons, nmounts, nchecks;
    const char *reasons[BL__MAX_REASONS]; /* into text */
    const char *maint_who;                /* into text; "" when none */
    const char *mounts[8];                /* into text */
    double used[8];
    double per_day[8];            /* growth of used, percent per day (0: none known) */
    const char *check_names[16];  /* into text */
    signed char check_status[16]; /* -1 none yet, 0 passing, 1 warning, 2 critical */
    ev_tstamp at;
    char *text;
    char node[]; /* the hash key */
} bl__peer;

/* the state of the beamlet_health process */
typedef struct health {
    bl_node *n;
    bl_proc *proc;
    struct bl__collector *col;
    ev_async wake;
    int timer_id;
    unsigned interval_ms;
    int have;
    bl_health_metrics cur;
    unsigned long long samples;
    hsub *subs;
    int next_sub;
    bl_from *waiting; /* MAX_WAITING entries, allocated while calls wait (36 KB) */
    int nwaiting;
    struct bl__hstore *hs; /* NULL: history off */
    int store_timer, cluster_sub;
    /* this node's status and maintenance mode; the peers' (view.c) */
    bl__node_eval_out eval;
    int maintenance;
    char maint_who[128];
    unsigned long long maint_since;
    bl__peer *peers;
    struct bl__alerts *al;
    struct bl__checks *checks;
    /* filesystem growth from this node's history (hstore trends), refreshed every minute */
    int ntrends;
    struct {
        char mount[128];
        double per_day;
    } trends[16];
    unsigned trend_ticks;
} health;

/* encode.c: map entries with an atom key */
void bl__kv_u64(ei_x_buff *x, const char *k, unsigned long long v);
void bl__kv_dbl(ei_x_buff *x, const char *k, double v); /* rounded to 3 decimals */
void bl__kv_str(ei_x_buff *x, const char *k, const char *v);
void bl__health_encode_metrics(ei_x_buff *x, const char *node, const bl_health_metrics *m,
                               unsigned interval_ms);

/* health.c: an event in the log (body: a jansson object, stolen; NULL: {}) */
#include <jansson.h>
void bl__health_record(health *h, const char *node, const char *type, const char *sev,
                       const char *who, json_t *body);

/* view.c: the node's status and the cluster as every node computes it */
void bl__view_sampled(health *h);                /* after a sample: evaluate, tell the peers */
void bl__view_broadcast(health *h);              /* tell the peers now (maintenance changed) */
int bl__view_on_msg(health *h, const bl_msg *m); /* 1 when it was a peer summary */
void bl__view_encode_health(health *h, ei_x_buff *x);
void bl__view_free(health *h);
int bl__view_node_maintenance(health *h, const char *node);

/* view.c: a fresh peer summary, or NULL (unknown, stale) */
bl__peer *bl__view_peer(health *h, const char *node);

/* alerts.c: rules evaluated once per cluster by the decider (the leader, or the first active
 * member by name without one), replicated to every member, notified on pub/sub and webhooks */
struct bl__alerts *bl__alerts_new(health *h, char *err, size_t errlen);
void bl__alerts_free(struct bl__alerts *al);
void bl__alerts_tick(struct bl__alerts *al);
int bl__alerts_on_msg(struct bl__alerts *al, const bl_msg *m); /* 1: it was an alerts message */
void bl__alerts_encode(struct bl__alerts *al, ei_x_buff *x, int all); /* a list of maps */
int bl__alerts_ack(struct bl__alerts *al, unsigned long long id, const char *who);
void bl__alerts_encode_info(struct bl__alerts *al, ei_x_buff *x);
unsigned bl__alerts_firing(struct bl__alerts *al);
/* for recommendations: firing alerts older than age_ms and not acknowledged */
int bl__alerts_stale(struct bl__alerts *al, unsigned long long age_ms, char *out, size_t cap);

/* recs.c: recommendations, each {severity, node, condition, action} */
void bl__recs_encode(health *h, ei_x_buff *x);
/* view.c: the members (at most 512), or this node alone when it has no membership, in an array
 * sized to them (free it); NULL and *count 0 when out of memory. Asked twice per health request
 * (the gateway's GET /api/v1/cluster and /api/v1/health): a fixed 512-entry array was 160 KiB
 * each time, a fresh mapping under ASan and with the node's 64 KiB mmap threshold (memory.c). */
bl_member_info *bl__health_members(bl_node *n, int *count);
/* growth per day of node's mount (0 unknown) */
double bl__view_growth(health *h, const char *node, const char *mount);

#endif
