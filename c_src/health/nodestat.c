/* nodestat.c - a node's own status (healthy / warning / critical) from its latest metrics and
 * the thresholds of its configuration: the fullest real filesystem (disk_warn/crit_percent),
 * available memory (mem_warn/crit_percent), the 5 min load per CPU (load_warn/crit_per_cpu).
 * Each threshold crossed adds a reason a person can act on. */
#include "nodestat.h"

#include <stdio.h>

static void add(bl__node_eval_out *o, bl__node_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static void add(bl__node_eval_out *o, bl__node_status s, const char *fmt, ...)
{
    if (s > o->status) o->status = s;
    if (o->nreasons >= BL__MAX_REASONS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->reasons[o->nreasons++], sizeof(o->reasons[0]), fmt, ap);
    va_end(ap);
}

void bl__node_eval(const bl_config *c, const bl_health_metrics *m, bl__node_eval_out *o)
{
    o->status = BL__NODE_HEALTHY;
    o->nreasons = 0;
    o->disk_max_percent = 0;
    o->disk_max_mount[0] = 0;
    for (int i = 0; i < m->nfs; i++) {
        const bl_fs_info *f = &m->fs[i];
        if (f->used_percent > o->disk_max_percent) {
            o->disk_max_percent = f->used_percent;
            snprintf(o->disk_max_mount, sizeof(o->disk_max_mount), "%s", f->mount);
        }
        if (f->used_percent >= c->disk_crit_percent)
            add(o, BL__NODE_CRITICAL, "%s is %.0f%% full (critical at %g%%)", f->mount,
                f->used_percent, c->disk_crit_percent);
        else if (f->used_percent >= c->disk_warn_percent)
            add(o, BL__NODE_WARNING, "%s is %.0f%% full (warning at %g%%)", f->mount,
                f->used_percent, c->disk_warn_percent);
    }
    o->mem_available_percent =
        m->mem_total ? 100.0 * (double)m->mem_available / (double)m->mem_total : 100.0;
    if (m->mem_total && o->mem_available_percent <= c->mem_crit_percent)
        add(o, BL__NODE_CRITICAL, "memory available %.1f%% (critical below %g%%)",
            o->mem_available_percent, c->mem_crit_percent);
    else if (m->mem_total && o->mem_available_percent <= c->mem_warn_percent)
        add(o, BL__NODE_WARNING, "memory available %.1f%% (warning below %g%%)",
            o->mem_available_percent, c->mem_warn_percent);
    double per = m->ncpu ? m->load5 / m->ncpu : m->load5;
    o->load_per_cpu = per;
    if (per >= c->load_crit_per_cpu)
        add(o, BL__NODE_CRITICAL, "load5 %.2f is %.1f per CPU (critical at %g)", m->load5, per,
            c->load_crit_per_cpu);
    else if (per >= c->load_warn_per_cpu)
        add(o, BL__NODE_WARNING, "load5 %.2f is %.1f per CPU (warning at %g)", m->load5, per,
            c->load_warn_per_cpu);
}
