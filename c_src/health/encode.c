/* encode.c - a metrics sample as an Erlang map (the `metrics` reply of beamlet_health, whose
 * JSON form is what `beamlet metrics --format json` prints; keys in docs/health.md). */
#include "health_int.h"

#include <string.h>

void bl__kv_u64(ei_x_buff *x, const char *k, unsigned long long v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_ulonglong(x, v);
}

void bl__kv_dbl(ei_x_buff *x, const char *k, double v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_double(x, (double)((long long)(v * 1000.0 + (v < 0 ? -0.5 : 0.5))) / 1000.0);
}

void bl__kv_str(ei_x_buff *x, const char *k, const char *v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_binary(x, v, (long)strlen(v));
}

static void psi(ei_x_buff *x, const char *k, const bl_psi *p)
{
    ei_x_encode_atom(x, k);
    if (!p->present) {
        ei_x_encode_atom(x, "undefined");
        return;
    }
    ei_x_encode_map_header(x, p->has_full ? 6 : 3);
    bl__kv_dbl(x, "some_avg10", p->some10);
    bl__kv_dbl(x, "some_avg60", p->some60);
    bl__kv_dbl(x, "some_avg300", p->some300);
    if (p->has_full) {
        bl__kv_dbl(x, "full_avg10", p->full10);
        bl__kv_dbl(x, "full_avg60", p->full60);
        bl__kv_dbl(x, "full_avg300", p->full300);
    }
}

void bl__health_encode_metrics(ei_x_buff *x, const char *node, const bl_health_metrics *m,
                               unsigned interval_ms)
{
    ei_x_encode_map_header(x, 12);
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, node);
    bl__kv_u64(x, "time_ms", m->time_ms);
    bl__kv_u64(x, "interval_ms", interval_ms);

    ei_x_encode_atom(x, "cpu");
    ei_x_encode_map_header(x, 3);
    bl__kv_dbl(x, "percent", m->cpu_pct.busy);
    bl__kv_u64(x, "count", m->ncpu);
    ei_x_encode_atom(x, "modes");
    ei_x_encode_map_header(x, 8);
    bl__kv_dbl(x, "user", m->cpu_pct.user);
    bl__kv_dbl(x, "nice", m->cpu_pct.nice);
    bl__kv_dbl(x, "system", m->cpu_pct.system);
    bl__kv_dbl(x, "idle", m->cpu_pct.idle);
    bl__kv_dbl(x, "iowait", m->cpu_pct.iowait);
    bl__kv_dbl(x, "irq", m->cpu_pct.irq);
    bl__kv_dbl(x, "softirq", m->cpu_pct.softirq);
    bl__kv_dbl(x, "steal", m->cpu_pct.steal);

    ei_x_encode_atom(x, "load");
    ei_x_encode_map_header(x, 5);
    bl__kv_dbl(x, "load1", m->load1);
    bl__kv_dbl(x, "load5", m->load5);
    bl__kv_dbl(x, "load15", m->load15);
    bl__kv_u64(x, "running", m->procs_running);
    bl__kv_u64(x, "tasks", m->procs_total);

    ei_x_encode_atom(x, "memory");
    ei_x_encode_map_header(x, 11);
    bl__kv_u64(x, "total_bytes", m->mem_total);
    bl__kv_u64(x, "available_bytes", m->mem_available);
    bl__kv_u64(x, "used_bytes", m->mem_used);
    bl__kv_u64(x, "free_bytes", m->mem_free);
    bl__kv_u64(x, "buffers_bytes", m->mem_buffers);
    bl__kv_u64(x, "cached_bytes", m->mem_cached);
    bl__kv_dbl(x, "available_percent",
               m->mem_total ? 100.0 * (double)m->mem_available / (double)m->mem_total : 0);
    bl__kv_u64(x, "swap_total_bytes", m->swap_total);
    bl__kv_u64(x, "swap_free_bytes", m->swap_free);
    bl__kv_u64(x, "swap_used_bytes", m->swap_used);
    ei_x_encode_atom(x, "available_estimated");
    ei_x_encode_boolean(x, m->mem_available_estimated);

    ei_x_encode_atom(x, "pressure");
    ei_x_encode_map_header(x, 3);
    psi(x, "cpu", &m->psi_cpu);
    psi(x, "memory", &m->psi_memory);
    psi(x, "io", &m->psi_io);

    ei_x_encode_atom(x, "disks");
    for (int i = 0; i < m->nfs; i++) {
        const bl_fs_info *f = &m->fs[i];
        ei_x_encode_list_header(x, 1);
        ei_x_encode_map_header(x, 9);
        bl__kv_str(x, "mount", f->mount);
        bl__kv_str(x, "device", f->device);
        bl__kv_str(x, "fstype", f->fstype);
        bl__kv_u64(x, "size_bytes", f->size_bytes);
        bl__kv_u64(x, "avail_bytes", f->avail_bytes);
        bl__kv_u64(x, "free_bytes", f->free_bytes);
        bl__kv_dbl(x, "used_percent", f->used_percent);
        bl__kv_u64(x, "inodes_total", f->inodes_total);
        bl__kv_u64(x, "inodes_free", f->inodes_free);
    }
    ei_x_encode_empty_list(x);

    ei_x_encode_atom(x, "disk_io");
    for (int i = 0; i < m->ndisks; i++) {
        const bl_disk_io *d = &m->disks[i];
        ei_x_encode_list_header(x, 1);
        ei_x_encode_map_header(x, 8);
        bl__kv_str(x, "device", d->device);
        bl__kv_u64(x, "reads", d->reads);
        bl__kv_u64(x, "writes", d->writes);
        bl__kv_u64(x, "read_bytes", d->read_bytes);
        bl__kv_u64(x, "written_bytes", d->written_bytes);
        bl__kv_u64(x, "io_time_ms", d->io_time_ms);
        bl__kv_dbl(x, "read_bytes_per_s", d->read_bytes_per_s);
        bl__kv_dbl(x, "write_bytes_per_s", d->write_bytes_per_s);
    }
    ei_x_encode_empty_list(x);

    ei_x_encode_atom(x, "network");
    for (int i = 0; i < m->nifaces; i++) {
        const bl_net_io *d = &m->ifaces[i];
        ei_x_encode_list_header(x, 1);
        ei_x_encode_map_header(x, 11);
        bl__kv_str(x, "interface", d->iface);
        bl__kv_u64(x, "rx_bytes", d->rx_bytes);
        bl__kv_u64(x, "rx_packets", d->rx_packets);
        bl__kv_u64(x, "rx_errors", d->rx_errors);
        bl__kv_u64(x, "rx_dropped", d->rx_dropped);
        bl__kv_u64(x, "tx_bytes", d->tx_bytes);
        bl__kv_u64(x, "tx_packets", d->tx_packets);
        bl__kv_u64(x, "tx_errors", d->tx_errors);
        bl__kv_u64(x, "tx_dropped", d->tx_dropped);
        bl__kv_dbl(x, "rx_bytes_per_s", d->rx_bytes_per_s);
        bl__kv_dbl(x, "tx_bytes_per_s", d->tx_bytes_per_s);
    }
    ei_x_encode_empty_list(x);

    bl__kv_dbl(x, "uptime_s", m->uptime_s);

    ei_x_encode_atom(x, "process");
    ei_x_encode_map_header(x, 6);
    bl__kv_u64(x, "rss_bytes", m->rss_bytes);
    bl__kv_u64(x, "fds", m->fds);
    bl__kv_u64(x, "threads", m->threads);
    bl__kv_u64(x, "connections", m->connections);
    bl__kv_u64(x, "queue_bytes", m->queue_bytes);
    bl__kv_dbl(x, "collect_ms", m->collect_ms);
}
