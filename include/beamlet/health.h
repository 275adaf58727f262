/* health.h - node metrics (CPU, load, memory, pressure, filesystems, disk I/O, network, uptime
 * and the node's own process) seen from C: the `beamlet_health` process.
 *
 * Every beamlet node samples its machine on a timer (health_interval_ms, default 5000) from
 * /proc and statfs, the files node_exporter reads. The reading happens on a worker thread (a
 * statfs on a hung NFS mount blocks that thread, never the event loop); the loop receives each
 * finished sample through an ev_async. The gen_server protocol of `beamlet_health` is in
 * docs/health.md. Everything here is called on the loop thread. */
#ifndef BEAMLET_HEALTH_H
#define BEAMLET_HEALTH_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include "beamlet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_HEALTH_MAX_FS 32     /* filesystems reported */
#define BL_HEALTH_MAX_DISKS 32  /* block devices reported */
#define BL_HEALTH_MAX_IFACES 32 /* network interfaces reported */
#define BL_HEALTH_MAX_CPUS 256  /* CPUs reported one by one (the all-CPU sum covers every CPU) */

/* CPU time in USER_HZ ticks since boot, summed over all CPUs (/proc/stat "cpu" line). Kernels
 * before 2.6.24 have no guest column, before 2.6.33 no guest_nice: those read as 0. */
typedef struct bl_cpu_times {
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
} bl_cpu_times;

/* One CPU's times (/proc/stat "cpuN" line): id is N, so offline CPUs leave gaps. */
typedef struct bl_cpu_core {
    unsigned id;
    bl_cpu_times t;
} bl_cpu_core;

/* Share of CPU time per mode between two samples, percent of all CPUs (0..100). */
typedef struct bl_cpu_percent {
    double user, nice, system, idle, iowait, irq, softirq, steal;
    double busy; /* 100 - idle - iowait */
} bl_cpu_percent;

/* One /proc/pressure file: "some" and (kernel 5.13+ for cpu) "full" averages, percent. */
typedef struct bl_psi {
    int present, has_full;
    double some10, some60, some300, full10, full60, full300;
    unsigned long long some_total_us, full_total_us;
} bl_psi;

typedef struct bl_fs_info {
    char mount[256], device[128], fstype[32];
    unsigned long long size_bytes, free_bytes, avail_bytes; /* avail: for unprivileged users */
    unsigned long long inodes_total, inodes_free;
    double used_percent; /* as df: used / (used + avail) */
} bl_fs_info;

typedef struct bl_disk_io {
    char device[64];
    unsigned long long reads, writes, read_bytes, written_bytes, io_time_ms;
    double read_bytes_per_s, write_bytes_per_s; /* since the previous sample */
} bl_disk_io;

typedef struct bl_net_io {
    char iface[64];
    unsigned long long rx_bytes, rx_packets, rx_errors, rx_dropped;
    unsigned long long tx_bytes, tx_packets, tx_errors, tx_dropped;
    double rx_bytes_per_s, tx_bytes_per_s; /* since the previous sample */
} bl_net_io;

typedef struct bl_health_metrics {
    unsigned long long time_ms; /* wall clock of the sample, ms since the epoch */
    unsigned ncpu;
    bl_cpu_times cpu;
    int ncores; /* per-CPU lines stored in cores (at most BL_HEALTH_MAX_CPUS) */
    bl_cpu_core cores[BL_HEALTH_MAX_CPUS];
    bl_cpu_percent cpu_pct; /* since the previous sample (the first: since boot) */
    double load1, load5, load15;
    unsigned procs_running, procs_total;
    /* memory: used = total - available, as free(1) of procps 4 shows it */
    unsigned long long mem_total, mem_free, mem_available, mem_used, mem_buffers, mem_cached;
    unsigned long long swap_total, swap_free, swap_used;
    int mem_available_estimated; /* kernel before 3.14: free + buffers + cached */
    bl_psi psi_cpu, psi_memory, psi_io;
    double uptime_s;
    int nfs, ndisks, nifaces;
    bl_fs_info fs[BL_HEALTH_MAX_FS];
    bl_disk_io disks[BL_HEALTH_MAX_DISKS];
    bl_net_io ifaces[BL_HEALTH_MAX_IFACES];
    /* the node's own OS process */
    unsigned long long rss_bytes;
    unsigned fds, threads;
    unsigned connections;           /* distribution connections up */
    unsigned long long queue_bytes; /* bytes waiting in their send queues */
    double collect_ms;              /* time the worker spent reading this sample */
} bl_health_metrics;

/* The latest sample. BL_OK, BL_ENOPROC (health not running) or BL_EBUSY (no sample yet). */
int bl_health_metrics_get(bl_node *n, bl_health_metrics *out);

/* Called on the loop thread after each new sample. Returns an id > 0 or a BL_E* code. */
typedef void (*bl_health_sample_cb)(bl_node *n, const bl_health_metrics *m, void *ud);
int bl_health_subscribe(bl_node *n, bl_health_sample_cb cb, void *ud);
void bl_health_unsubscribe(bl_node *n, int id);

/* Record an event in this node's event log (persisted with the metrics history, queried with
 * `beamlet events`). type: "admin", "service", ... (< 32 bytes); severity: "info", "warn" or
 * "critical"; who: the person or tool behind an admin action, or NULL; body_json: a JSON object
 * text or NULL. BL_OK, BL_EINVAL, BL_ENOPROC. */
int bl_health_event(bl_node *n, const char *type, const char *severity, const char *who,
                    const char *body_json);

/* Maintenance mode of this node (kept across restarts): a node in maintenance raises no alerts
 * and counts as down on purpose in the cluster score. who: the person or tool (audit trail). */
int bl_health_set_maintenance(bl_node *n, int on, const char *who);
/* 1 when node (this one or a member, as its last summary said) is in maintenance. */
int bl_health_in_maintenance(bl_node *n, const char *node);

/* ---- health checks (like Consul's; docs/health.md) ---- */
typedef enum { BL_CHECK_HTTP = 0, BL_CHECK_TCP = 1, BL_CHECK_COMMAND = 2 } bl_check_kind;

typedef struct bl_health_check_spec {
    char name[64];
    bl_check_kind kind;
    /* HTTP: the URL (2xx passing, 429 warning, else critical); TCP: IP:PORT or localhost:PORT;
     * command: argv, each argument NUL-terminated, an empty one ends it ("/bin/check\0-q\0\0";
     * exit 0 passing, 1 warning, else critical) */
    char target[1024];
    unsigned interval_ms;  /* 0: 10000 */
    unsigned timeout_ms;   /* 0: 5000; a command is killed after it */
    unsigned consecutive;  /* results in a row to change state; 0: check_consecutive */
    /* the registry entries whose health follows this check: an entry id, or a service name (all
     * of this node's entries of that name, those registered later too); "": none. passing,
     * warning and critical become the entries' health (bl_registry_set_health): service calls
     * and lookups prefer passing instances and never choose critical ones */
    char service[128];
} bl_health_check_spec;

/* status: "passing", "warning" or "critical"; output: what the last run said */
typedef void (*bl_health_check_cb)(bl_node *n, const char *name, const char *status,
                                   const char *output, void *ud);

/* Run a check on this node. Returns an id > 0, BL_EINVAL, BL_EEXIST, BL_ENOMEM, BL_ENOPROC. */
int bl_health_check_add(bl_node *n, const bl_health_check_spec *spec);
int bl_health_check_remove(bl_node *n, const char *name);
/* Run the check named now (or join its run in flight): cb gets that run's status and output
 * once (not damped by `consecutive`). Returns an id > 0 for bl_health_check_run_cancel (which
 * drops cb), BL_ENOPROC (no such check, or health not running), BL_EINVAL, BL_ENOMEM. cb may run
 * before this returns (a command that cannot be started). */
int bl_health_check_run(bl_node *n, const char *name, bl_health_check_cb cb, void *ud);
void bl_health_check_run_cancel(bl_node *n, int id);
/* cb runs on every change of state of any check of this node. Returns an id > 0. */
int bl_health_check_watch(bl_node *n, bl_health_check_cb cb, void *ud);
void bl_health_check_unwatch(bl_node *n, int id);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
