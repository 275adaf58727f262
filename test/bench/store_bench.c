/* store_bench.c - write throughput of the health store (c_src/health/hstore.c over
 * c_src/store/): rows of metrics history per second through the batched writer (one transaction
 * per tick, as a node does), in a temporary directory. Prints one line: rows, seconds, rows/s,
 * file size. Usage: store_bench [ROWS] */
#include "health/hstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 1000000;
    char dir[] = "/tmp/bl_store_bench.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "bench@localhost");
    snprintf(cfg.cookie, sizeof(cfg.cookie), "c");
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.log_level = BL_LOG_ERROR;
    cfg.store_max_mb = 1024;
    bl_node *n;
    if (bl_node_new(&cfg, &n) != BL_OK) return 1;
    bl__hstore *s = bl__hstore_open(n);
    if (!s) return 1;
    bl_health_metrics *m = calloc(1, sizeof(*m));
    m->mem_total = 1000;
    m->nfs = 2;
    snprintf(m->fs[0].mount, sizeof(m->fs[0].mount), "/");
    snprintf(m->fs[1].mount, sizeof(m->fs[1].mount), "/var");
    m->nifaces = 1;
    snprintf(m->ifaces[0].iface, sizeof(m->ifaces[0].iface), "eth0");
    /* one sample = 18 series rows (what a node with 2 filesystems and 1 interface writes) */
    const int per_sample = 18;
    unsigned long long t0 = bl_now_ms() - (unsigned long long)(rows / per_sample) * 1000ULL;
    long written = 0;
    double start = now_s();
    for (long i = 0; written < rows; i++) {
        m->time_ms = t0 + (unsigned long long)i * 1000ULL;
        m->cpu_pct.busy = (double)(i % 100);
        m->load1 = (double)(i % 7);
        bl__hstore_sample(s, m);
        written += per_sample;
        if (i % 500 == 499) { /* a tick: one batch of 9000 rows */
            bl__hstore_flush(s);
            while (bl__hstore_pending(s) > 4)
                usleep(1000);
            ev_run(n->loop, EVRUN_NOWAIT);
        }
    }
    bl__hstore_flush(s);
    while (bl__hstore_pending(s))
        usleep(1000);
    ev_run(n->loop, EVRUN_NOWAIT);
    double secs = now_s() - start;
    char path[512];
    snprintf(path, sizeof(path), "%s/health-bench@localhost.db", dir);
    struct stat st;
    long size = stat(path, &st) == 0 ? (long)st.st_size : 0;
    printf("store write: %ld rows (raw + 1 min + 1 h rollup upserts each) in %.2f s = %.0f rows/s, "
           "file %.1f MiB\n",
           written, secs, written / secs, size / 1048576.0);
    bl__hstore_close(s);
    bl_node_free(n);
    free(m);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
