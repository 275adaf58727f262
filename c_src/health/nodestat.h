/* nodestat.h - a node's status from its metrics and thresholds (nodestat.c). */
#ifndef BL_HEALTH_NODESTAT_H
#define BL_HEALTH_NODESTAT_H

#include "beamlet/health.h"
#include "score.h"

#define BL__MAX_REASONS 8

typedef struct bl__node_eval_out {
    bl__node_status status;
    int nreasons;
    char reasons[BL__MAX_REASONS][128];
    double disk_max_percent, mem_available_percent, load_per_cpu;
    char disk_max_mount[256];
} bl__node_eval_out;

void bl__node_eval(const bl_config *c, const bl_health_metrics *m, bl__node_eval_out *o);

#endif
