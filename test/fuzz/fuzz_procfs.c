/* fuzz_procfs.c - libFuzzer target for the /proc parsers of the health service
 * (c_src/health/procfs.c). The first byte picks the parser, the rest is the file's text (a
 * NUL-terminated copy, as bl__read_file gives them). Every parser must return without reading
 * out of bounds, whatever a broken or hostile procfs (a container's, a FUSE mount) holds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health/procfs.h"

static int count_mount(const char *dev, const char *mnt, const char *type, void *ud)
{
    (void)dev;
    (void)mnt;
    (void)type;
    (*(int *)ud)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256 * 1024) return 0;
    char *t = malloc(size);
    if (!t) return 0;
    memcpy(t, data + 1, size - 1);
    t[size - 1] = 0;
    static bl_health_metrics m;
    static bl_disk_io d[BL_HEALTH_MAX_DISKS];
    static bl_net_io ni[BL_HEALTH_MAX_IFACES];
    bl_cpu_times c;
    bl_psi p;
    unsigned u1, u2;
    unsigned long long ull;
    double x, y, z;
    int k = 0;
    switch (data[0] % 10) {
    case 0:
        bl__parse_stat(t, &c, &u1);
        bl__parse_stat_cores(t, m.cores, BL_HEALTH_MAX_CPUS);
        break;
    case 1:
        bl__parse_loadavg(t, &x, &y, &z, &u1, &u2);
        break;
    case 2:
        bl__parse_meminfo(t, &m);
        break;
    case 3:
        bl__parse_pressure(t, &p);
        break;
    case 4:
        bl__parse_uptime(t, &x);
        break;
    case 5:
        bl__parse_diskstats(t, d, BL_HEALTH_MAX_DISKS);
        break;
    case 6:
        bl__parse_netdev(t, ni, BL_HEALTH_MAX_IFACES);
        break;
    case 7:
        bl__parse_self_status(t, &ull, &u1);
        break;
    case 8:
        bl__parse_mounts(t, count_mount, &k);
        break;
    default:
        bl__unescape_octal(t);
        break;
    }
    free(t);
    return 0;
}
