/* health_cmd.c - the CLI commands of the health service (docs/health.md): `beamlet metrics`
 * calls beamlet_health on the target node and prints its sample as a table for people or as
 * JSON (--format json) for scripts. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double num(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = o;
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return v && json_is_number(v) ? json_number_value(v) : 0.0;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* 1536 -> "1.5 KiB" */
static const char *human(double b, char *out, size_t cap)
{
    static const char *const U[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5)
        b /= 1024, u++;
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", b, U[u]);
    return out;
}

static void psi_part(json_t *p, const char *name, char *out, size_t cap)
{
    json_t *o = json_object_get(p, name);
    if (!json_is_object(o)) {
        snprintf(out, cap, "%s n/a", name);
        return;
    }
    if (json_object_get(o, "full_avg10"))
        snprintf(out, cap, "%s some %.2f%% full %.2f%%", name, num(o, "some_avg10"),
                 num(o, "full_avg10"));
    else
        snprintf(out, cap, "%s some %.2f%%", name, num(o, "some_avg10"));
}

static void show_metrics(admin *a, json_t *j)
{
    (void)a;
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    double up = num(j, "uptime_s");
    printf("node       %s   (machine up %dd %dh %dm, sampled every %.0f ms)\n", str(j, "node"),
           (int)(up / 86400), (int)(up / 3600) % 24, (int)(up / 60) % 60, num(j, "interval_ms"));
    printf("cpu        %.1f%% busy of %.0f CPUs (user %.1f, system %.1f, iowait %.1f, steal "
           "%.1f)\n",
           num(j, "cpu.percent"), num(j, "cpu.count"), num(j, "cpu.modes.user"),
           num(j, "cpu.modes.system"), num(j, "cpu.modes.iowait"), num(j, "cpu.modes.steal"));
    printf("load       %.2f %.2f %.2f\n", num(j, "load.load1"), num(j, "load.load5"),
           num(j, "load.load15"));
    printf("memory     used %s of %s, available %s (%.1f%%), swap used %s of %s\n",
           human(num(j, "memory.used_bytes"), b1, sizeof(b1)),
           human(num(j, "memory.total_bytes"), b2, sizeof(b2)),
           human(num(j, "memory.available_bytes"), b3, sizeof(b3)),
           num(j, "memory.available_percent"),
           human(num(j, "memory.swap_used_bytes"), b4, sizeof(b4)),
           human(num(j, "memory.swap_total_bytes"), b5, sizeof(b5)));
    json_t *p = json_object_get(j, "pressure");
    char c[64], m[64], io[64];
    psi_part(p, "cpu", c, sizeof(c));
    psi_part(p, "memory", m, sizeof(m));
    psi_part(p, "io", io, sizeof(io));
    printf("pressure   %s, %s, %s (avg10)\n", c, m, io);
    printf("\n%-28s %-18s %-8s %10s %10s %10s %5s %7s\n", "MOUNT", "DEVICE", "TYPE", "SIZE", "USED",
           "AVAIL", "USE%", "INODES%");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "disks"), i, d)
    {
        double size = num(d, "size_bytes"), fr = num(d, "free_bytes");
        double it = num(d, "inodes_total"), ifr = num(d, "inodes_free");
        printf("%-28s %-18s %-8s %10s %10s %10s %4.0f%% %6.0f%%\n", str(d, "mount"),
               str(d, "device"), str(d, "fstype"), human(size, b1, sizeof(b1)),
               human(size - fr, b2, sizeof(b2)), human(num(d, "avail_bytes"), b3, sizeof(b3)),
               num(d, "used_percent"), it > 0 ? 100.0 * (it - ifr) / it : 0.0);
    }
    printf("\n%-16s %12s %12s %14s\n", "DISK", "READ/s", "WRITE/s", "IO TIME (ms)");
    json_array_foreach(json_object_get(j, "disk_io"), i, d)
    {
        printf("%-16s %12s %12s %14.0f\n", str(d, "device"),
               human(num(d, "read_bytes_per_s"), b1, sizeof(b1)),
               human(num(d, "write_bytes_per_s"), b2, sizeof(b2)), num(d, "io_time_ms"));
    }
    printf("\n%-16s %12s %12s %10s %10s\n", "INTERFACE", "RX/s", "TX/s", "RX ERR", "TX ERR");
    json_array_foreach(json_object_get(j, "network"), i, d)
    {
        printf("%-16s %12s %12s %10.0f %10.0f\n", str(d, "interface"),
               human(num(d, "rx_bytes_per_s"), b1, sizeof(b1)),
               human(num(d, "tx_bytes_per_s"), b2, sizeof(b2)), num(d, "rx_errors"),
               num(d, "tx_errors"));
    }
    printf("\nprocess    rss %s, %.0f fds, %.0f threads, %.0f connections, %s queued\n",
           human(num(j, "process.rss_bytes"), b1, sizeof(b1)), num(j, "process.fds"),
           num(j, "process.threads"), num(j, "process.connections"),
           human(num(j, "process.queue_bytes"), b2, sizeof(b2)));
}

int bl__cli_metrics(int argc, char **argv)
{
    admin a = {
        .cmd = "metrics", .proc = "beamlet_health", .request = "metrics", .show = show_metrics};
    return bl__cli_admin(&a, argc, argv);
}
