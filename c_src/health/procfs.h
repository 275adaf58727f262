/* procfs.h - parsers for the /proc files the metrics collector reads, and the collector that
 * reads them (plus statfs) under a procfs root. Pure functions on text so that unit tests run
 * them on fixtures of several kernels (test/unit/fixtures/proc/). Nothing here touches the loop:
 * bl__collect runs on the health worker thread. */
#ifndef BL_HEALTH_PROCFS_H
#define BL_HEALTH_PROCFS_H

#include "beamlet/health.h"

/* Each returns 0 on success, -1 when the text is not in the expected format. */
int bl__parse_stat(const char *text, bl_cpu_times *cpu, unsigned *ncpu);
/* The per-CPU lines ("cpu0 ..."), up to max, in file order. Returns how many or -1. */
int bl__parse_stat_cores(const char *text, bl_cpu_core *out, int max);
int bl__parse_loadavg(const char *text, double *l1, double *l5, double *l15, unsigned *running,
                      unsigned *total);
int bl__parse_meminfo(const char *text, bl_health_metrics *m);
int bl__parse_pressure(const char *text, bl_psi *out);
int bl__parse_uptime(const char *text, double *uptime_s);
/* Fills up to max devices, skipping partitions, loop and ram devices (node_exporter's default
 * device exclusion); returns how many were stored or -1. */
int bl__parse_diskstats(const char *text, bl_disk_io *out, int max);
/* Returns how many interfaces were stored or -1. */
int bl__parse_netdev(const char *text, bl_net_io *out, int max);
/* VmRSS and Threads of /proc/self/status. */
int bl__parse_self_status(const char *text, unsigned long long *rss_bytes, unsigned *threads);

/* 1 when a mount is a real filesystem: not one of node_exporter's excluded pseudo filesystem
 * types and not under /dev, /proc, /sys, /run/credentials, /var/lib/docker, ... */
int bl__fs_is_real(const char *fstype, const char *mount);
/* The /proc/mounts text: calls fn for each real filesystem, deduplicated by mount point and by
 * block device (the shortest mount point of a device wins, as df). Returns mounts or -1. */
typedef int (*bl__mount_fn)(const char *device, const char *mount, const char *fstype, void *ud);
int bl__parse_mounts(const char *text, bl__mount_fn fn, void *ud);
/* "\040" and friends in /proc/mounts fields, in place. */
void bl__unescape_octal(char *s);

/* Percent per mode between two cumulative readings. */
void bl__cpu_percent(const bl_cpu_times *prev, const bl_cpu_times *cur, bl_cpu_percent *out);

/* State the collector keeps between samples (worker thread only). */
typedef struct bl__collect_prev {
    int have;
    double mono_s;
    bl_cpu_times cpu;
    int ndisks, nifaces;
    bl_disk_io disks[BL_HEALTH_MAX_DISKS];
    bl_net_io ifaces[BL_HEALTH_MAX_IFACES];
} bl__collect_prev;

/* Read one sample from procfs under root ("/proc") and statfs of every real mount. self_dir is
 * root/self unless given. Returns 0, or -1 when /proc/stat or /proc/meminfo is unreadable. */
int bl__collect(const char *root, bl__collect_prev *prev, bl_health_metrics *out);

/* Read a whole small file into buf (NUL-terminated). Returns bytes or -1. */
long bl__read_file(const char *path, char *buf, size_t cap);

#endif
