/* test_health_procfs.c - the /proc parsers and the collector of the health service
 * (c_src/health/procfs.c) on fixtures of three kernels' formats (test/unit/fixtures/proc/):
 * 2.6.32 (no MemAvailable, 14-field diskstats, no PSI, 9 cpu columns), 4.19 (18-field
 * diskstats, PSI without cpu "full") and 6.1 (20-field diskstats, full PSI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "health/procfs.h"

#define FIX "test/unit/fixtures/proc/"
#define KB 1024ULL

static char buf[256 * 1024];

static const char *fixture(const char *kernel, const char *file)
{
    char path[512];
    snprintf(path, sizeof(path), FIX "%s/%s", kernel, file);
    long r = bl__read_file(path, buf, sizeof(buf));
    if (r < 0) fail_msg("fixture %s missing (run from the repository root)", path);
    return buf;
}

static void test_stat(void **state)
{
    (void)state;
    bl_cpu_times c;
    unsigned n;
    assert_int_equal(bl__parse_stat(fixture("linux-2.6.32", "stat"), &c, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(c.user, 2255);
    assert_int_equal(c.idle, 22625563);
    assert_int_equal(c.guest, 0);
    assert_int_equal(c.guest_nice, 0); /* 9 columns: none */
    assert_int_equal(bl__parse_stat(fixture("linux-4.19", "stat"), &c, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(c.guest, 175628);
    assert_int_equal(c.softirq, 25195);
    assert_int_equal(bl__parse_stat(fixture("linux-6.1", "stat"), &c, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(c.steal, 13);
    assert_int_equal(c.guest_nice, 2);
    assert_int_equal(bl__parse_stat("intr 1 2 3\nctxt 4\n", &c, &n), -1);
    assert_int_equal(bl__parse_stat("", &c, &n), -1);
    assert_int_equal(bl__parse_stat("cpu  1 2\n", &c, &n), -1);
}

static void test_stat_cores(void **state)
{
    (void)state;
    bl_cpu_core cores[4];
    assert_int_equal(bl__parse_stat_cores(fixture("linux-6.1", "stat"), cores, 4), 2);
    assert_int_equal(cores[0].id, 0);
    assert_int_equal(cores[0].t.user, 2503);
    assert_int_equal(cores[1].id, 1);
    assert_int_equal(cores[1].t.iowait, 739);
    assert_int_equal(cores[1].t.guest_nice, 1);
    assert_int_equal(bl__parse_stat_cores(fixture("linux-4.19", "stat"), cores, 4), 4);
    assert_int_equal(bl__parse_stat_cores(fixture("linux-4.19", "stat"), cores, 3), 3);
    /* an offline CPU leaves a gap in the ids */
    assert_int_equal(bl__parse_stat_cores("cpu  2 0 2 8\ncpu0 1 0 1 4\ncpu3 1 0 1 4\n", cores, 4), 2);
    assert_int_equal(cores[1].id, 3);
    assert_int_equal(bl__parse_stat_cores("cpu  1 2 3 4\n", cores, 4), 0);
    assert_int_equal(bl__parse_stat_cores("cpu0 1 2\n", cores, 4), -1);
}

static void test_cpu_percent(void **state)
{
    (void)state;
    bl_cpu_times a = {.user = 100, .system = 50, .idle = 800, .iowait = 50};
    bl_cpu_times b = {.user = 200, .system = 100, .idle = 1500, .iowait = 100, .steal = 100};
    bl_cpu_percent p;
    bl__cpu_percent(&a, &b, &p);
    /* deltas: user 100, system 50, idle 700, iowait 50, steal 100 = 1000 */
    assert_true(p.user > 9.99 && p.user < 10.01);
    assert_true(p.idle > 69.99 && p.idle < 70.01);
    assert_true(p.steal > 9.99 && p.steal < 10.01);
    assert_true(p.busy > 24.99 && p.busy < 25.01); /* 100 - idle - iowait */
    bl__cpu_percent(&a, &a, &p);                   /* no time passed */
    assert_true(p.busy == 0.0 && p.idle == 100.0);
    bl__cpu_percent(&b, &a, &p); /* counters went backwards (a restart of the counters) */
    assert_true(p.busy == 0.0);
}

static void test_loadavg(void **state)
{
    (void)state;
    double l1, l5, l15;
    unsigned r, t;
    assert_int_equal(bl__parse_loadavg(fixture("linux-4.19", "loadavg"), &l1, &l5, &l15, &r, &t),
                     0);
    assert_true(l1 == 1.25 && l5 == 0.97 && l15 == 0.85);
    assert_int_equal(r, 3);
    assert_int_equal(t, 412);
    assert_int_equal(bl__parse_loadavg("garbage", &l1, &l5, &l15, &r, &t), -1);
}

static void test_meminfo(void **state)
{
    (void)state;
    bl_health_metrics m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(bl__parse_meminfo(fixture("linux-2.6.32", "meminfo"), &m), 0);
    assert_int_equal(m.mem_total, 1016656 * KB);
    assert_int_equal(m.mem_available_estimated, 1); /* before 3.14: no MemAvailable */
    assert_int_equal(m.mem_available, (104244 + 98248 + 593696) * KB);
    assert_int_equal(m.mem_used, m.mem_total - m.mem_available);
    assert_int_equal(m.swap_used, (2064376 - 2064120) * KB);
    assert_int_equal(bl__parse_meminfo(fixture("linux-6.1", "meminfo"), &m), 0);
    assert_int_equal(m.mem_available_estimated, 0);
    assert_int_equal(m.mem_available, 24172936 * KB);
    assert_int_equal(m.mem_used, (24683652 - 24172936) * KB); /* free(1): total - available */
    assert_int_equal(m.mem_cached, (388128 + 145392) * KB);   /* + SReclaimable, as free(1) */
    assert_int_equal(m.swap_total, 0);
    assert_int_equal(bl__parse_meminfo("MemFree: 12 kB\n", &m), -1);
}

static void test_pressure(void **state)
{
    (void)state;
    bl_psi p;
    assert_int_equal(bl__parse_pressure(fixture("linux-4.19", "pressure/cpu"), &p), 0);
    assert_int_equal(p.present, 1);
    assert_int_equal(p.has_full, 0); /* cpu "full" arrived in 5.13 */
    assert_true(p.some10 == 1.53 && p.some300 == 0.72);
    assert_int_equal(bl__parse_pressure(fixture("linux-6.1", "pressure/io"), &p), 0);
    assert_int_equal(p.has_full, 1);
    assert_true(p.full10 == 0.17 && p.full60 == 2.05);
    assert_int_equal(p.full_total_us, 6753235);
    assert_int_equal(bl__parse_pressure("", &p), -1);
}

static void test_uptime(void **state)
{
    (void)state;
    double u;
    assert_int_equal(bl__parse_uptime(fixture("linux-2.6.32", "uptime"), &u), 0);
    assert_true(u == 350735.47);
    assert_int_equal(bl__parse_uptime("x", &u), -1);
}

static void test_diskstats(void **state)
{
    (void)state;
    bl_disk_io d[BL_HEALTH_MAX_DISKS];
    int n = bl__parse_diskstats(fixture("linux-2.6.32", "diskstats"), d, BL_HEALTH_MAX_DISKS);
    assert_int_equal(n, 2); /* sda, dm-0: not ram0, loop0, partitions */
    assert_string_equal(d[0].device, "sda");
    assert_int_equal(d[0].reads, 21435);
    assert_int_equal(d[0].read_bytes, 1185466ULL * 512);
    assert_int_equal(d[0].written_bytes, 267218ULL * 512);
    assert_int_equal(d[0].io_time_ms, 84421);
    assert_string_equal(d[1].device, "dm-0");
    n = bl__parse_diskstats(fixture("linux-4.19", "diskstats"), d, BL_HEALTH_MAX_DISKS);
    assert_int_equal(n, 4); /* nvme0n1, sdb, sdc, dm-0 */
    assert_string_equal(d[0].device, "nvme0n1");
    assert_int_equal(d[0].writes, 428157);
    n = bl__parse_diskstats(fixture("linux-6.1", "diskstats"), d, BL_HEALTH_MAX_DISKS);
    assert_int_equal(n, 1); /* vda: not vda1, zram0, loop0 */
    assert_string_equal(d[0].device, "vda");
    assert_int_equal(d[0].io_time_ms, 13204);
    n = bl__parse_diskstats(fixture("linux-4.19", "diskstats"), d, 2); /* bounded */
    assert_int_equal(n, 2);
    assert_int_equal(bl__parse_diskstats("what\never\n", d, 4), -1);
}

static void test_netdev(void **state)
{
    (void)state;
    bl_net_io d[BL_HEALTH_MAX_IFACES];
    int n = bl__parse_netdev(fixture("linux-2.6.32", "net/dev"), d, BL_HEALTH_MAX_IFACES);
    assert_int_equal(n, 2);
    assert_string_equal(d[1].iface, "eth0");
    assert_int_equal(d[1].rx_bytes, 4233871913ULL); /* no space after the colon */
    assert_int_equal(d[1].rx_errors, 12);
    assert_int_equal(d[1].rx_dropped, 3);
    assert_int_equal(d[1].tx_bytes, 298765432ULL);
    assert_int_equal(d[1].tx_errors, 1);
    n = bl__parse_netdev(fixture("linux-4.19", "net/dev"), d, BL_HEALTH_MAX_IFACES);
    assert_int_equal(n, 3);
    assert_string_equal(d[1].iface, "enp3s0");
    assert_int_equal(d[1].rx_bytes, 9876543210ULL);
    n = bl__parse_netdev(fixture("linux-6.1", "net/dev"), d, BL_HEALTH_MAX_IFACES);
    assert_int_equal(n, 3);
    assert_int_equal(d[2].tx_dropped, 4);
    assert_int_equal(bl__parse_netdev("nothing here", d, 4), -1);
}

typedef struct {
    int n;
    char mounts[16][256];
} mounts_seen;

static int collect_mount(const char *dev, const char *mnt, const char *type, void *ud)
{
    (void)dev;
    (void)type;
    mounts_seen *s = ud;
    if (s->n < 16) snprintf(s->mounts[s->n++], 256, "%s", mnt);
    return 0;
}

static void test_mounts(void **state)
{
    (void)state;
    mounts_seen s = {0};
    assert_int_equal(bl__parse_mounts(fixture("linux-2.6.32", "mounts"), collect_mount, &s), 3);
    assert_string_equal(s.mounts[0], "/"); /* the ext4 root, not rootfs under it */
    assert_string_equal(s.mounts[1], "/boot");
    assert_string_equal(s.mounts[2], "/home"); /* NFS counts: it is real space */
    memset(&s, 0, sizeof(s));
    assert_int_equal(bl__parse_mounts(fixture("linux-4.19", "mounts"), collect_mount, &s), 5);
    assert_string_equal(s.mounts[0], "/run");
    assert_string_equal(s.mounts[1], "/");
    assert_string_equal(s.mounts[2], "/boot/efi");
    assert_string_equal(s.mounts[3], "/home"); /* its bind mount "/srv/home bind" is not new */
    assert_string_equal(s.mounts[4], "/run/user/1000");
    memset(&s, 0, sizeof(s));
    assert_int_equal(bl__parse_mounts(fixture("linux-6.1", "mounts"), collect_mount, &s), 2);
    assert_string_equal(s.mounts[0], "/");
    assert_string_equal(s.mounts[1], "/var/lib/beamlet"); /* mounted twice, listed once */
    assert_int_equal(bl__parse_mounts("", collect_mount, &s), 0);
    assert_int_equal(bl__parse_mounts("\n\n", collect_mount, &s), -1);
}

static void test_fs_is_real(void **state)
{
    (void)state;
    assert_true(bl__fs_is_real("ext4", "/"));
    assert_true(bl__fs_is_real("xfs", "/srv"));
    assert_true(bl__fs_is_real("tmpfs", "/tmp"));
    assert_true(bl__fs_is_real("nfs4", "/mnt/nas"));
    assert_false(bl__fs_is_real("proc", "/proc"));
    assert_false(bl__fs_is_real("cgroup2", "/sys/fs/cgroup"));
    assert_false(bl__fs_is_real("tmpfs", "/dev/shm"));
    assert_false(bl__fs_is_real("tmpfs", "/sys/fs/cgroup"));
    assert_false(bl__fs_is_real("overlay", "/"));
    assert_false(bl__fs_is_real("squashfs", "/snap/core/1"));
    assert_false(bl__fs_is_real("ext4", "/var/lib/docker/volumes/x"));
    assert_true(bl__fs_is_real("ext4", "/var/lib/docker")); /* the directory itself counts */
    assert_true(bl__fs_is_real("ext4", "/devices"));        /* not /dev */
}

static void test_unescape(void **state)
{
    (void)state;
    char s[64] = "/srv/home\\040bind\\011x\\";
    bl__unescape_octal(s);
    assert_string_equal(s, "/srv/home bind\tx\\");
}

static void test_self_status(void **state)
{
    (void)state;
    unsigned long long rss = 0;
    unsigned th = 0;
    assert_int_equal(bl__parse_self_status(fixture("linux-4.19", "self/status"), &rss, &th), 0);
    assert_int_equal(rss, 5432 * KB);
    assert_int_equal(th, 4);
    assert_int_equal(bl__parse_self_status("Name: x\n", &rss, &th), -1);
}

static void test_collect(void **state)
{
    (void)state;
    bl__collect_prev prev;
    memset(&prev, 0, sizeof(prev));
    bl_health_metrics *m = malloc(sizeof(*m));
    assert_non_null(m);
    assert_int_equal(bl__collect(FIX "linux-6.1", &prev, m), 0);
    assert_int_equal(m->ncpu, 2);
    assert_int_equal(m->mem_total, 24683652 * KB);
    assert_true(m->load15 == 0.12);
    assert_int_equal(m->psi_cpu.has_full, 1);
    assert_int_equal(m->ndisks, 1);
    assert_int_equal(m->nifaces, 3);
    assert_int_equal(m->threads, 1);
    assert_true(m->uptime_s == 378.13);
    /* "/" is statfs'ed for real; /var/lib/beamlet does not exist here and is left out */
    assert_true(m->nfs >= 1);
    assert_string_equal(m->fs[0].mount, "/");
    assert_true(m->fs[0].size_bytes > 0 && m->fs[0].avail_bytes <= m->fs[0].size_bytes);
    assert_true(m->cpu_pct.busy > 0.0); /* first sample: since boot */
    assert_int_equal(prev.have, 1);
    /* a second sample of unchanged counters: no busy time, zero rates */
    assert_int_equal(bl__collect(FIX "linux-6.1", &prev, m), 0);
    assert_true(m->cpu_pct.busy == 0.0);
    assert_true(m->disks[0].read_bytes_per_s == 0.0);
    /* the oldest kernel: no PSI files, estimated available memory */
    memset(&prev, 0, sizeof(prev));
    assert_int_equal(bl__collect(FIX "linux-2.6.32", &prev, m), 0);
    assert_int_equal(m->psi_cpu.present, 0);
    assert_int_equal(m->mem_available_estimated, 1);
    /* no procfs at all */
    memset(&prev, 0, sizeof(prev));
    assert_int_equal(bl__collect(FIX "no-such-kernel", &prev, m), -1);
    assert_int_equal(prev.have, 0);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat),      cmocka_unit_test(test_stat_cores),
        cmocka_unit_test(test_cpu_percent),
        cmocka_unit_test(test_loadavg),   cmocka_unit_test(test_meminfo),
        cmocka_unit_test(test_pressure),  cmocka_unit_test(test_uptime),
        cmocka_unit_test(test_diskstats), cmocka_unit_test(test_netdev),
        cmocka_unit_test(test_mounts),    cmocka_unit_test(test_fs_is_real),
        cmocka_unit_test(test_unescape),  cmocka_unit_test(test_self_status),
        cmocka_unit_test(test_collect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
