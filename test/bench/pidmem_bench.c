/* pidmem_bench.c - memory per pid-holding entry (make bench, test/bench/pidmem_bench.sh): what a
 * bl_pid, a process, a pg membership and a service-registry entry cost on one node.
 *
 *   pidmem_bench [N]      (default 10000)
 *
 * Starts one node that does not publish (no EPMD needed) and runs its loop, then adds N of each
 * kind and prints, per entry, the heap bytes in use (mallinfo2) and the RSS (/proc/self/statm)
 * it added: N local processes; each joined to one pg group (the membership, the scope's link and
 * the process's link); N registry entries. Also sizeof(bl_pid). Never pass/fail. */
#include <beamlet/beamlet.h>
#include <beamlet/pg.h>
#include <beamlet/registry.h>

#include <ev.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct sample {
    size_t heap, rss;
} sample;

static sample take(void)
{
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    sample s = {mi.uordblks + mi.hblkhd, 0};
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    s.rss = res * (size_t)sysconf(_SC_PAGESIZE);
    return s;
}

static void report(const char *what, sample a, sample b, long n)
{
    printf("pidmem: %-34s %8.0f heap bytes, %8.0f RSS bytes each (%ld)\n", what,
           (double)(b.heap - a.heap) / (double)n, ((double)b.rss - (double)a.rss) / (double)n, n);
}

static void on_msg(bl_proc *self, const bl_msg *m, void *ud)
{
    (void)self, (void)m, (void)ud;
}

static void stop_cb(bl_node *n, void *ud)
{
    long N = *(long *)ud;
    static const bl_proc_ops ops = {.on_msg = on_msg};
    bl_proc **procs = calloc((size_t)N, sizeof(*procs));
    sample s0 = take();
    for (long i = 0; i < N; i++)
        if (bl_spawn(n, NULL, &ops, NULL, &procs[i]) != BL_OK) {
            printf("pidmem: spawn %ld failed\n", i);
            N = i;
            break;
        }
    sample s1 = take();
    ei_x_buff g;
    ei_x_new(&g);
    ei_x_encode_atom(&g, "bench_group");
    for (long i = 0; i < N; i++) {
        int rc = bl_pg_join(procs[i], NULL, g.buff, g.index);
        if (rc != BL_OK) {
            printf("pidmem: pg join %ld failed: %s\n", i, bl_strerror(rc));
            break;
        }
    }
    sample s2 = take();
    long nreg = 0;
    for (long i = 0; i < N; i++) {
        char id[32], addr[32];
        snprintf(id, sizeof(id), "svc-%ld", i);
        snprintf(addr, sizeof(addr), "10.0.%ld.%ld", (i / 250) % 250, i % 250);
        bl_service_entry e = {.id = id, .name = "web", .address = addr, .port = 8080};
        if (bl_registry_register(n, &e, NULL, 0) != BL_OK) break;
        nreg++;
    }
    sample s3 = take();
    printf("pidmem: sizeof(bl_pid) %zu bytes\n", sizeof(bl_pid));
    report("process (bl_spawn)", s0, s1, N);
    report("pg member (join: entry + 2 links)", s1, s2, N);
    if (nreg) report("registry entry (local)", s2, s3, nreg);
    ei_x_free(&g);
    free(procs);
    bl_node_stop(n);
}

int main(int argc, char **argv)
{
    static long N;
    N = argc > 1 ? atol(argv[1]) : 10000;
    if (N <= 0) return 2;
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "pidmem_%d@localhost", (int)getpid());
    snprintf(cfg.cookie, sizeof(cfg.cookie), "pidmem");
    snprintf(cfg.listen_address, sizeof(cfg.listen_address), "127.0.0.1");
    cfg.publish = 0;
    cfg.epmd_local = 0;
    cfg.health_store = 0;
    cfg.log_level = BL_LOG_ERROR;
    cfg.registry_max_entries = (unsigned)N + 16;
    bl_node *n;
    if (bl_node_new(&cfg, &n) != BL_OK || bl_node_start(n) != BL_OK) {
        fprintf(stderr, "pidmem: node did not start\n");
        return 1;
    }
    bl_timer(n, 200, 0, stop_cb, &N);
    int rc = bl_node_run(n);
    bl_node_free(n);
    return rc == 0 ? 0 : 1;
}
