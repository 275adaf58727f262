/* procfs.c - the /proc parsers and the sample collector of the health service (procfs.h).
 *
 * Which files and which filesystems count follows node_exporter's collectors (stat, loadavg,
 * meminfo, pressure, filesystem, diskstats, netdev): the same pseudo filesystem types and mount
 * points are left out, partitions and loop/ram devices are not disks. Values are what free(1),
 * df(1) and /proc/loadavg show: used memory = MemTotal - MemAvailable; a filesystem's size is
 * f_blocks * f_frsize, available f_bavail * f_frsize, used% = used / (used + avail). */
#include "procfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

long bl__read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off + 1 < cap) {
        ssize_t r = read(fd, buf + off, cap - 1 - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        off += (size_t)r;
    }
    close(fd);
    buf[off] = 0;
    return (long)off;
}

/* the next line of text: *line points at it, returns the text after it (NULL at the end) */
static const char *next_line(const char *p, char *line, size_t cap)
{
    if (!p || !*p) return NULL;
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(line, p, n);
    line[n] = 0;
    return e ? e + 1 : p + len;
}

int bl__parse_stat(const char *text, bl_cpu_times *cpu, unsigned *ncpu)
{
    char line[512];
    int seen = 0;
    unsigned cpus = 0;
    memset(cpu, 0, sizeof(*cpu));
    for (const char *p = text; (p = next_line(p, line, sizeof(line)));) {
        if (strncmp(line, "cpu", 3)) continue;
        if (line[3] == ' ') {
            bl_cpu_times c = {0};
            int k = sscanf(line + 3, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &c.user,
                           &c.nice, &c.system, &c.idle, &c.iowait, &c.irq, &c.softirq, &c.steal,
                           &c.guest, &c.guest_nice);
            if (k < 4) return -1; /* 2.4 kernels had 4 columns, 2.6 at least 7 */
            *cpu = c;
            seen = 1;
        } else if (isdigit((unsigned char)line[3])) {
            cpus++;
        }
    }
    if (!seen) return -1;
    *ncpu = cpus ? cpus : 1;
    return 0;
}

int bl__parse_stat_cores(const char *text, bl_cpu_core *out, int max)
{
    char line[512];
    int n = 0;
    for (const char *p = text; n < max && (p = next_line(p, line, sizeof(line)));) {
        if (strncmp(line, "cpu", 3) || !isdigit((unsigned char)line[3])) continue;
        bl_cpu_core c = {0};
        int k = sscanf(line + 3, "%u %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &c.id,
                       &c.t.user, &c.t.nice, &c.t.system, &c.t.idle, &c.t.iowait, &c.t.irq,
                       &c.t.softirq, &c.t.steal, &c.t.guest, &c.t.guest_nice);
        if (k < 5) return -1;
        out[n++] = c;
    }
    return n;
}

int bl__parse_loadavg(const char *text, double *l1, double *l5, double *l15, unsigned *running,
                      unsigned *total)
{
    unsigned r = 0, t = 0;
    int k = sscanf(text, "%lf %lf %lf %u/%u", l1, l5, l15, &r, &t);
    if (k < 3) return -1;
    *running = r;
    *total = t;
    return 0;
}

int bl__parse_meminfo(const char *text, bl_health_metrics *m)
{
    static const struct {
        const char *key;
        size_t off;
    } KEYS[] = {
        {"MemTotal", offsetof(bl_health_metrics, mem_total)},
        {"MemFree", offsetof(bl_health_metrics, mem_free)},
        {"MemAvailable", offsetof(bl_health_metrics, mem_available)},
        {"Buffers", offsetof(bl_health_metrics, mem_buffers)},
        {"Cached", offsetof(bl_health_metrics, mem_cached)},
        {"SwapTotal", offsetof(bl_health_metrics, swap_total)},
        {"SwapFree", offsetof(bl_health_metrics, swap_free)},
    };
    char line[256];
    int have_total = 0, have_avail = 0;
    unsigned long long sreclaimable = 0;
    m->mem_total = m->mem_free = m->mem_available = m->mem_buffers = m->mem_cached = 0;
    m->swap_total = m->swap_free = 0;
    for (const char *p = text; (p = next_line(p, line, sizeof(line)));) {
        char key[64];
        unsigned long long v;
        char unit[8] = "";
        if (sscanf(line, "%63[^:]: %llu %7s", key, &v, unit) < 2) continue;
        if (!strcmp(unit, "kB")) v *= 1024;
        if (!strcmp(key, "SReclaimable")) sreclaimable = v;
        for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++) {
            if (strcmp(key, KEYS[i].key)) continue;
            *(unsigned long long *)((char *)m + KEYS[i].off) = v;
            if (i == 0) have_total = 1;
            if (i == 2) have_avail = 1;
        }
    }
    if (!have_total) return -1;
    m->mem_cached += sreclaimable; /* free(1)'s buff/cache counts reclaimable slab as cache */
    m->mem_available_estimated = !have_avail;
    if (!have_avail) m->mem_available = m->mem_free + m->mem_buffers + m->mem_cached;
    if (m->mem_available > m->mem_total) m->mem_available = m->mem_total;
    m->mem_used = m->mem_total - m->mem_available;
    m->swap_used = m->swap_total > m->swap_free ? m->swap_total - m->swap_free : 0;
    return 0;
}

int bl__parse_pressure(const char *text, bl_psi *out)
{
    char line[256];
    memset(out, 0, sizeof(*out));
    for (const char *p = text; (p = next_line(p, line, sizeof(line)));) {
        char kind[8];
        double a10, a60, a300;
        unsigned long long tot;
        if (sscanf(line, "%7s avg10=%lf avg60=%lf avg300=%lf total=%llu", kind, &a10, &a60, &a300,
                   &tot) != 5)
            continue;
        if (!strcmp(kind, "some")) {
            out->present = 1;
            out->some10 = a10, out->some60 = a60, out->some300 = a300, out->some_total_us = tot;
        } else if (!strcmp(kind, "full")) {
            out->has_full = 1;
            out->full10 = a10, out->full60 = a60, out->full300 = a300, out->full_total_us = tot;
        }
    }
    return out->present ? 0 : -1;
}

int bl__parse_uptime(const char *text, double *uptime_s)
{
    return sscanf(text, "%lf", uptime_s) == 1 ? 0 : -1;
}

/* node_exporter's default: ^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$ */
static int disk_ignored(const char *d)
{
    const char *p = NULL;
    if (!strncmp(d, "ram", 3))
        p = d + 3;
    else if (!strncmp(d, "zram", 4))
        p = d + 4;
    else if (!strncmp(d, "loop", 4))
        p = d + 4;
    else if (!strncmp(d, "fd", 2))
        p = d + 2;
    else if ((d[0] == 'h' || d[0] == 's' || d[0] == 'v') && d[1] == 'd' &&
             islower((unsigned char)d[2]))
        p = d + 3;
    else if (!strncmp(d, "xvd", 3) && islower((unsigned char)d[3]))
        p = d + 4;
    else if (!strncmp(d, "nvme", 4)) {
        const char *q = d + 4;
        if (!isdigit((unsigned char)*q)) return 0;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q++ != 'n' || !isdigit((unsigned char)*q)) return 0;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q++ != 'p') return 0;
        p = q;
    }
    if (!p || !*p) return 0;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    return 1;
}

int bl__parse_diskstats(const char *text, bl_disk_io *out, int max)
{
    char line[512];
    int n = 0, any = 0;
    for (const char *p = text; (p = next_line(p, line, sizeof(line)));) {
        unsigned maj, min;
        char dev[64];
        unsigned long long rd, rd_merged, rd_sec, rd_ms, wr, wr_merged, wr_sec, wr_ms, inflight,
            io_ms;
        /* 14 fields (2.6.x), 18 (4.18: discards), 20 (5.5: flushes): the first 13 are the same */
        int k = sscanf(line, "%u %u %63s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &maj,
                       &min, dev, &rd, &rd_merged, &rd_sec, &rd_ms, &wr, &wr_merged, &wr_sec,
                       &wr_ms, &inflight, &io_ms);
        if (k != 13) continue;
        any = 1;
        if (disk_ignored(dev) || n >= max) continue;
        bl_disk_io *d = &out[n++];
        memset(d, 0, sizeof(*d));
        snprintf(d->device, sizeof(d->device), "%s", dev);
        d->reads = rd;
        d->writes = wr;
        d->read_bytes = rd_sec * 512ULL; /* diskstats sectors are always 512 bytes */
        d->written_bytes = wr_sec * 512ULL;
        d->io_time_ms = io_ms;
    }
    return any || !*text ? n : -1;
}

int bl__parse_netdev(const char *text, bl_net_io *out, int max)
{
    char line[512];
    int n = 0, header = 0;
    for (const char *p = text; (p = next_line(p, line, sizeof(line)));) {
        char *colon = strchr(line, ':');
        if (strchr(line, '|')) {
            header++;
            continue;
        }
        if (!colon) continue;
        *colon = 0;
        char *name = line;
        while (*name == ' ')
            name++;
        unsigned long long v[16];
        int k = sscanf(colon + 1,
                       "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                       "%llu",
                       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                       &v[11], &v[12], &v[13], &v[14], &v[15]);
        if (k != 16 || !*name || n >= max) continue;
        bl_net_io *d = &out[n++];
        memset(d, 0, sizeof(*d));
        snprintf(d->iface, sizeof(d->iface), "%s", name);
        d->rx_bytes = v[0], d->rx_packets = v[1], d->rx_errors = v[2], d->rx_dropped = v[3];
        d->tx_bytes = v[8], d->tx_packets = v[9], d->tx_errors = v[10], d->tx_dropped = v[11];
    }
    return header >= 2 || n ? n : -1;
}

int bl__parse_self_status(const char *text, unsigned long long *rss_bytes, unsigned *threads)
{
    char line[256];
    int got = 0;
    for (const char *p = text; (p = next_line(p, line, sizeof(line)));) {
        unsigned long long v;
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
            *rss_bytes = v * 1024;
            got |= 1;
        } else if (sscanf(line, "Threads: %llu", &v) == 1) {
            *threads = (unsigned)v;
            got |= 2;
        }
    }
    return got == 3 ? 0 : -1;
}

int bl__fs_is_real(const char *fstype, const char *mount)
{
    static const char *const TYPES[] = {
        "autofs",     "binfmt_misc", "bpf",       "cgroup",     "cgroup2",         "configfs",
        "debugfs",    "devpts",      "devtmpfs",  "fusectl",    "hugetlbfs",       "iso9660",
        "mqueue",     "nsfs",        "overlay",   "proc",       "procfs",          "pstore",
        "rpc_pipefs", "securityfs",  "selinuxfs", "squashfs",   "erofs",           "sysfs",
        "tracefs",    "ramfs",       "efivarfs",  "fuse.lxcfs", "fuse.gvfsd-fuse", "none"};
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
        if (!strcmp(fstype, TYPES[i])) return 0;
    /* node_exporter: ^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|
     *                 var/lib/containers/storage/.+)($|/) */
    static const char *const WHOLE[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < sizeof(WHOLE) / sizeof(WHOLE[0]); i++) {
        size_t l = strlen(WHOLE[i]);
        if (!strncmp(mount, WHOLE[i], l) && (mount[l] == 0 || mount[l] == '/')) return 0;
    }
    static const char *const BELOW[] = {"/run/credentials/", "/var/lib/docker/",
                                        "/var/lib/containers/storage/"};
    for (size_t i = 0; i < sizeof(BELOW) / sizeof(BELOW[0]); i++) {
        size_t l = strlen(BELOW[i]);
        if (!strncmp(mount, BELOW[i], l) && mount[l]) return 0;
    }
    return 1;
}

void bl__unescape_octal(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

#define MAX_MOUNTS 256
typedef struct {
    char dev[128], mnt[256], type[32];
    int keep;
} mount_row;

int bl__parse_mounts(const char *text, bl__mount_fn fn, void *ud)
{
    mount_row *rows = calloc(MAX_MOUNTS, sizeof(*rows));
    if (!rows) return -1;
    char line[1024];
    int n = 0, any = 0;
    for (const char *p = text; (p = next_line(p, line, sizeof(line))) && n < MAX_MOUNTS;) {
        mount_row r = {0};
        if (sscanf(line, "%127s %255s %31s", r.dev, r.mnt, r.type) != 3) continue;
        any = 1;
        bl__unescape_octal(r.dev);
        bl__unescape_octal(r.mnt);
        if (!bl__fs_is_real(r.type, r.mnt)) continue;
        r.keep = 1;
        /* a later mount on the same point hides the earlier one */
        for (int i = 0; i < n; i++)
            if (rows[i].keep && !strcmp(rows[i].mnt, r.mnt)) rows[i].keep = 0;
        rows[n++] = r;
    }
    /* one row per block device: the shortest mount point (bind mounts are not new space) */
    for (int i = 0; i < n; i++) {
        if (!rows[i].keep || rows[i].dev[0] != '/') continue;
        for (int j = 0; j < n; j++) {
            if (j == i || !rows[j].keep || strcmp(rows[i].dev, rows[j].dev)) continue;
            size_t li = strlen(rows[i].mnt), lj = strlen(rows[j].mnt);
            if (lj < li || (lj == li && j < i)) {
                rows[i].keep = 0;
                break;
            }
        }
    }
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].keep) continue;
        kept++;
        if (fn && fn(rows[i].dev, rows[i].mnt, rows[i].type, ud)) break;
    }
    free(rows);
    return any || !*text ? kept : -1;
}

void bl__cpu_percent(const bl_cpu_times *a, const bl_cpu_times *b, bl_cpu_percent *out)
{
    /* guest time is already counted in user (and guest_nice in nice) */
#define D(f) (b->f >= a->f ? (double)(b->f - a->f) : 0.0)
    double user = D(user), nice = D(nice), sys = D(system), idle = D(idle), iow = D(iowait),
           irq = D(irq), sirq = D(softirq), steal = D(steal);
#undef D
    double total = user + nice + sys + idle + iow + irq + sirq + steal;
    memset(out, 0, sizeof(*out));
    if (total <= 0) {
        out->idle = 100.0;
        return;
    }
    out->user = 100.0 * user / total;
    out->nice = 100.0 * nice / total;
    out->system = 100.0 * sys / total;
    out->idle = 100.0 * idle / total;
    out->iowait = 100.0 * iow / total;
    out->irq = 100.0 * irq / total;
    out->softirq = 100.0 * sirq / total;
    out->steal = 100.0 * steal / total;
    out->busy = 100.0 * (total - idle - iow) / total;
}

/* ---- the collector ---- */

typedef struct {
    bl_health_metrics *m;
} fs_ctx;

static int add_fs(const char *dev, const char *mnt, const char *type, void *ud)
{
    fs_ctx *c = ud;
    bl_health_metrics *m = c->m;
    if (m->nfs >= BL_HEALTH_MAX_FS) return 1;
    struct statvfs sv;
    if (statvfs(mnt, &sv) != 0 || sv.f_blocks == 0) return 0; /* gone, or no space (like df) */
    bl_fs_info *f = &m->fs[m->nfs++];
    memset(f, 0, sizeof(*f));
    snprintf(f->mount, sizeof(f->mount), "%s", mnt);
    snprintf(f->device, sizeof(f->device), "%s", dev);
    snprintf(f->fstype, sizeof(f->fstype), "%s", type);
    unsigned long long bs = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
    f->size_bytes = (unsigned long long)sv.f_blocks * bs;
    f->free_bytes = (unsigned long long)sv.f_bfree * bs;
    f->avail_bytes = (unsigned long long)sv.f_bavail * bs;
    f->inodes_total = sv.f_files;
    f->inodes_free = sv.f_ffree;
    unsigned long long used = f->size_bytes - f->free_bytes;
    f->used_percent =
        used + f->avail_bytes ? 100.0 * (double)used / (double)(used + f->avail_bytes) : 0.0;
    return 0;
}

static unsigned count_fds(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double rate(unsigned long long prev, unsigned long long cur, double dt)
{
    return dt > 0 && cur >= prev ? (double)(cur - prev) / dt : 0.0;
}

int bl__collect(const char *root, bl__collect_prev *prev, bl_health_metrics *m)
{
    enum { CAP = 256 * 1024 };
    char *buf = malloc(CAP);
    char path[512];
    if (!buf) return -1;
    double t0 = mono_now();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    memset(m, 0, sizeof(*m));
    m->time_ms =
        (unsigned long long)wall.tv_sec * 1000ULL + (unsigned long long)wall.tv_nsec / 1000000ULL;
    int rc = 0;
#define READ(name)                                                                                 \
    (snprintf(path, sizeof(path), "%s/%s", root, name), bl__read_file(path, buf, CAP))
    if (READ("stat") < 0 || bl__parse_stat(buf, &m->cpu, &m->ncpu) < 0) {
        rc = -1;
    } else {
        int k = bl__parse_stat_cores(buf, m->cores, BL_HEALTH_MAX_CPUS);
        m->ncores = k > 0 ? k : 0;
    }
    if (READ("meminfo") < 0 || bl__parse_meminfo(buf, m) < 0) rc = -1;
    if (READ("loadavg") >= 0)
        bl__parse_loadavg(buf, &m->load1, &m->load5, &m->load15, &m->procs_running,
                          &m->procs_total);
    if (READ("pressure/cpu") >= 0) bl__parse_pressure(buf, &m->psi_cpu);
    if (READ("pressure/memory") >= 0) bl__parse_pressure(buf, &m->psi_memory);
    if (READ("pressure/io") >= 0) bl__parse_pressure(buf, &m->psi_io);
    if (READ("uptime") >= 0) bl__parse_uptime(buf, &m->uptime_s);
    if (READ("diskstats") >= 0) {
        int k = bl__parse_diskstats(buf, m->disks, BL_HEALTH_MAX_DISKS);
        m->ndisks = k > 0 ? k : 0;
    }
    if (READ("net/dev") >= 0) {
        int k = bl__parse_netdev(buf, m->ifaces, BL_HEALTH_MAX_IFACES);
        m->nifaces = k > 0 ? k : 0;
    }
    if (READ("self/mounts") >= 0 || READ("mounts") >= 0) {
        fs_ctx c = {m};
        bl__parse_mounts(buf, add_fs, &c);
    }
    if (READ("self/status") >= 0) bl__parse_self_status(buf, &m->rss_bytes, &m->threads);
#undef READ
    snprintf(path, sizeof(path), "%s/self/fd", root);
    m->fds = count_fds(path);
    free(buf);

    double now = mono_now();
    static const bl_cpu_times zero;
    bl__cpu_percent(prev->have ? &prev->cpu : &zero, &m->cpu, &m->cpu_pct);
    double dt = prev->have ? now - prev->mono_s : 0;
    for (int i = 0; i < m->ndisks; i++)
        for (int j = 0; j < prev->ndisks; j++)
            if (!strcmp(m->disks[i].device, prev->disks[j].device)) {
                m->disks[i].read_bytes_per_s =
                    rate(prev->disks[j].read_bytes, m->disks[i].read_bytes, dt);
                m->disks[i].write_bytes_per_s =
                    rate(prev->disks[j].written_bytes, m->disks[i].written_bytes, dt);
            }
    for (int i = 0; i < m->nifaces; i++)
        for (int j = 0; j < prev->nifaces; j++)
            if (!strcmp(m->ifaces[i].iface, prev->ifaces[j].iface)) {
                m->ifaces[i].rx_bytes_per_s =
                    rate(prev->ifaces[j].rx_bytes, m->ifaces[i].rx_bytes, dt);
                m->ifaces[i].tx_bytes_per_s =
                    rate(prev->ifaces[j].tx_bytes, m->ifaces[i].tx_bytes, dt);
            }
    if (rc == 0) {
        prev->have = 1;
        prev->mono_s = now;
        prev->cpu = m->cpu;
        prev->ndisks = m->ndisks;
        memcpy(prev->disks, m->disks, sizeof(m->disks[0]) * (size_t)m->ndisks);
        prev->nifaces = m->nifaces;
        memcpy(prev->ifaces, m->ifaces, sizeof(m->ifaces[0]) * (size_t)m->nifaces);
    }
    m->collect_ms = (mono_now() - t0) * 1000.0;
    return rc;
}
