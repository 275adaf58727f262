/* prom.c - /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * The node's own series are beamlet_* (membership by state, leader and term, connections,
 * messages and bytes, send-queue bytes, handshakes, pub/sub counters per topic, registry entries
 * by health, cluster configuration watchers and writes, HTTP requests, build info). Machine series
 * use node_exporter's names and labels and come from the health collector once it runs on the node.
 * With ?scope=cluster every live beamlet member's series are fetched from its `beamlet_gateway` and
 * merged family by family with a `node` label, so one scrape target covers a small cluster. */
#include "gw_int.h"
#include "beamlet/health.h"
#include "beamlet/registry.h"
#include "promtext.h"
#include "../services/cconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void node_series(sbuf *b, const bl_health_metrics *m);

static void count_health(bl_node *n, const bl_service_entry *e, void *ud)
{
    (void)n;
    ((unsigned *)ud)[e->health]++;
}

char *bl__gw_metrics_text(bl__gw *g, const char *pbuf, int pindex, size_t *len)
{
    bl_node *n = g->n;
    sbuf b = {0};
    char e1[512], e2[512];

    bl__prom_family(&b, "beamlet_build_info", "gauge", "Version and role of this beamlet node.");
    bl__prom_esc(e1, sizeof(e1), n->cfg.role);
    bl__prom_esc(e2, sizeof(e2), n->cfg.cluster);
    bl__sb_add(&b, "beamlet_build_info{version=\"%s\",role=\"%s\",cluster=\"%s\"} 1\n", BL_VERSION,
               e1, e2);
    bl__prom_family(&b, "beamlet_start_time_seconds", "gauge",
                    "Start time of the node, seconds since the epoch.");
    bl__sb_add(&b, "beamlet_start_time_seconds %.3f\n", n->started_at);

    /* membership */
    bl_member_info mi[256];
    int k = bl_cluster_members(n, mi, 256);
    unsigned counts[6] = {0};
    for (int i = 0; i < k && i < 256; i++)
        if ((unsigned)mi[i].state < 6) counts[mi[i].state]++;
    bl__prom_family(&b, "beamlet_members", "gauge", "Cluster members this node knows, by state.");
    for (int s = 0; s < 6; s++)
        bl__sb_add(&b, "beamlet_members{state=\"%s\"} %u\n",
                   bl_member_state_name((bl_member_state)s), counts[s]);
    unsigned long long term = 0;
    const char *leader = bl_cluster_leader(n, &term);
    bl__prom_family(&b, "beamlet_cluster_term", "gauge", "Current election term.");
    bl__sb_add(&b, "beamlet_cluster_term %llu\n", term);
    bl__prom_family(&b, "beamlet_cluster_has_leader", "gauge", "1 when the cluster has a leader.");
    bl__sb_add(&b, "beamlet_cluster_has_leader %d\n", leader ? 1 : 0);
    if (leader) {
        bl__prom_family(&b, "beamlet_cluster_leader_info", "gauge",
                        "The current leader (value 1).");
        bl__prom_esc(e1, sizeof(e1), leader);
        bl__sb_add(&b, "beamlet_cluster_leader_info{leader=\"%s\"} 1\n", e1);
    }
    bl__prom_family(&b, "beamlet_is_leader", "gauge", "1 when this node is the leader.");
    bl__sb_add(&b, "beamlet_is_leader %d\n", leader && !strcmp(leader, n->name) ? 1 : 0);
    bl__prom_family(
        &b, "beamlet_cluster_healthy", "gauge",
        "1 when a majority of members is reachable and, with coordinators, a leader exists.");
    bl__sb_add(&b, "beamlet_cluster_healthy %d\n", bl_cluster_healthy(n) ? 1 : 0);
    bl_detector_info det;
    if (bl_cluster_detector(n, &det) == BL_OK) {
        bl__prom_family(&b, "beamlet_cluster_local_health", "gauge",
                        "Failure detector's local health: 0 healthy, up to 8 when this node's own "
                        "loop runs late; timeouts are multiplied by (1 + it).");
        bl__sb_add(&b, "beamlet_cluster_local_health %u\n", det.local_health);
        bl__prom_family(&b, "beamlet_cluster_loop_lag_seconds", "gauge",
                        "How late the failure detector's last tick fired.");
        bl__sb_add(&b, "beamlet_cluster_loop_lag_seconds %.3f\n", det.loop_lag_ms / 1000.0);
        bl__prom_family(&b, "beamlet_cluster_loop_lag_max_seconds", "gauge",
                        "The latest the failure detector's tick ever fired.");
        bl__sb_add(&b, "beamlet_cluster_loop_lag_max_seconds %.3f\n", det.loop_lag_max_ms / 1000.0);
        const struct {
            const char *name, *help;
            unsigned long long v;
        } ctr[] = {
            {"beamlet_cluster_late_ticks_total",
             "Failure detector ticks late enough to lower local health.", det.late_ticks},
            {"beamlet_cluster_suspicions_total", "Members this node moved to suspected.",
             det.suspicions},
            {"beamlet_cluster_suspicions_cleared_total",
             "Suspected or failed members heard again (false alarms).", det.cleared},
            {"beamlet_cluster_failures_total", "Members this node moved to failed.", det.failures},
            {"beamlet_cluster_refutations_total", "Suspicions of this node that it refuted.",
             det.refuted},
            {"beamlet_cluster_confirmations_total",
             "Other nodes' suspicions that shortened a suspicion timeout.", det.confirmations},
        };
        for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++) {
            bl__prom_family(&b, ctr[i].name, "counter", ctr[i].help);
            bl__sb_add(&b, "%s %llu\n", ctr[i].name, ctr[i].v);
        }
    }

    /* distribution */
    bl_stats st;
    bl_node_stats(n, &st);
    size_t qbytes = 0;
    bl_conn *c, *ct;
    HASH_ITER(hh, n->conns, c, ct)
        qbytes += bl_sendq_bytes(&c->q);
    bl__prom_family(&b, "beamlet_connections", "gauge", "Distribution connections up.");
    bl__sb_add(&b, "beamlet_connections %u\n", st.connections);
    bl__prom_family(&b, "beamlet_processes", "gauge", "Processes on this node.");
    bl__sb_add(&b, "beamlet_processes %u\n", st.processes);
    bl__prom_family(&b, "beamlet_send_queue_bytes", "gauge",
                    "Bytes waiting in the connections' send queues.");
    bl__sb_add(&b, "beamlet_send_queue_bytes %zu\n", qbytes);
    static const struct {
        const char *name, *help;
        size_t off;
    } C[] = {
        {"beamlet_messages_received_total", "Distribution messages received.",
         offsetof(bl_stats, msgs_in)},
        {"beamlet_messages_sent_total", "Distribution messages sent.",
         offsetof(bl_stats, msgs_out)},
        {"beamlet_received_bytes_total", "Distribution bytes received.",
         offsetof(bl_stats, bytes_in)},
        {"beamlet_sent_bytes_total", "Distribution bytes sent.", offsetof(bl_stats, bytes_out)},
        {"beamlet_connections_accepted_total", "Incoming connections accepted.",
         offsetof(bl_stats, conns_accepted)},
        {"beamlet_connections_established_total", "Outgoing connections established.",
         offsetof(bl_stats, conns_connected)},
        {"beamlet_connections_dropped_total", "Connections dropped.",
         offsetof(bl_stats, conns_dropped)},
        {"beamlet_handshakes_failed_total", "Distribution handshakes that failed.",
         offsetof(bl_stats, handshakes_failed)},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        bl__prom_family(&b, C[i].name, "counter", C[i].help);
        bl__sb_add(&b, "%s %llu\n", C[i].name,
                   (unsigned long long)*(const uint64_t *)((const char *)&st + C[i].off));
    }
    /* admission control (docs/security.md): one series per limit that refuses */
    static const struct {
        const char *reason;
        size_t off;
    } R[] = {
        {"not_allowed", offsetof(bl_stats, refused_not_allowed)},
        {"max_connections", offsetof(bl_stats, refused_max_connections)},
        {"max_handshakes_per_address", offsetof(bl_stats, refused_per_address)},
        {"max_handshake_rate_per_address", offsetof(bl_stats, refused_rate)},
        {"handshakes_running", offsetof(bl_stats, refused_busy)},
    };
    bl__prom_family(&b, "beamlet_dist_refused_total", "counter",
                    "Distribution connections refused by the allow-list or a limit, by reason.");
    for (size_t i = 0; i < sizeof(R) / sizeof(R[0]); i++)
        bl__sb_add(&b, "beamlet_dist_refused_total{reason=\"%s\"} %llu\n", R[i].reason,
                   (unsigned long long)*(const uint64_t *)((const char *)&st + R[i].off));
    bl__prom_family(&b, "beamlet_dist_refusal_logs_suppressed_total", "counter",
                    "Refusal log lines over the log budget, counted instead of written.");
    bl__sb_add(&b, "beamlet_dist_refusal_logs_suppressed_total %llu\n",
               (unsigned long long)st.refusal_logs_suppressed);

    /* registry */
    unsigned h[3] = {0};
    bl_registry_find(n, NULL, count_health, h);
    bl__prom_family(&b, "beamlet_registry_entries", "gauge",
                    "Service registry entries this node sees, by health.");
    for (int i = 0; i < 3; i++)
        bl__sb_add(&b, "beamlet_registry_entries{health=\"%s\"} %u\n", bl_health_name((bl_health)i),
                   h[i]);

    /* cluster configuration (services/cconf.c) */
    bl__cconf_counters cs;
    if (bl__cconf_stats(n, &cs) == 0) {
        bl__prom_family(&b, "beamlet_config_version", "gauge",
                        "Version of the cluster configuration this node holds.");
        bl__sb_add(&b, "beamlet_config_version %llu\n", cs.version);
        bl__prom_family(&b, "beamlet_config_watchers", "gauge",
                        "Processes watching the cluster configuration on this node.");
        bl__sb_add(&b, "beamlet_config_watchers %u\n", cs.watchers);
        bl__prom_family(&b, "beamlet_config_watchers_max", "gauge",
                        "Watchers one node takes; more are refused.");
        bl__sb_add(&b, "beamlet_config_watchers_max %u\n", cs.watchers_max);
        bl__prom_family(&b, "beamlet_config_watch_refused_total", "counter",
                        "Watch requests refused because the node had its maximum of watchers.");
        bl__sb_add(&b, "beamlet_config_watch_refused_total %llu\n", cs.watch_refused);
        bl__prom_family(&b, "beamlet_config_writes_total", "counter",
                        "Cluster configuration writes this node answered as leader, by outcome.");
        bl__sb_add(&b, "beamlet_config_writes_total{state=\"committed\"} %llu\n", cs.committed);
        bl__sb_add(&b, "beamlet_config_writes_total{state=\"pending\"} %llu\n", cs.pending);
    }

    /* pub/sub: the `counters` reply, #{Topic => #{published, delivered, ...}} */
    if (pbuf) {
        json_t *t = bl_term_to_json(pbuf, &pindex), *v;
        static const char *F[] = {"published", "delivered", "retried", "expired", "dropped"};
        for (size_t f = 0; f < 5 && json_is_object(t) && json_object_size(t); f++) {
            char name[64], help[96];
            snprintf(name, sizeof(name), "beamlet_pubsub_%s_total", F[f]);
            snprintf(help, sizeof(help), "Pub/sub messages %s, per topic, on this node.", F[f]);
            bl__prom_family(&b, name, "counter", help);
            const char *topic;
            json_object_foreach(t, topic, v)
            {
                bl__prom_esc(e1, sizeof(e1), topic);
                bl__sb_add(&b, "%s{topic=\"%s\"} %lld\n", name, e1,
                           (long long)json_integer_value(json_object_get(v, F[f])));
            }
        }
        json_decref(t);
    }

    /* the gateway itself */
    if (g->d) {
        bl__prom_family(&b, "beamlet_http_requests_total", "counter",
                        "HTTP requests answered, by status class.");
        for (int i = 1; i <= 5; i++)
            bl__sb_add(&b, "beamlet_http_requests_total{code=\"%dxx\"} %llu\n", i,
                       g->http_requests[i]);
        bl__prom_family(&b, "beamlet_http_connections", "gauge", "Open HTTP connections.");
        bl__sb_add(&b, "beamlet_http_connections %u\n", g->nconns);
        bl__prom_family(&b, "beamlet_http_request_timeouts_total", "counter",
                        "Connections closed because a request took over http_request_timeout_s.");
        bl__sb_add(&b, "beamlet_http_request_timeouts_total %llu\n", g->request_timeouts);
        unsigned ns = 0;
        for (gw_stream *s = g->streams; s; s = s->next)
            ns++;
        bl__prom_family(&b, "beamlet_http_streams", "gauge", "Open event streams.");
        bl__sb_add(&b, "beamlet_http_streams %u\n", ns);
    }
    bl_health_metrics *hm = malloc(sizeof(*hm));
    if (hm && bl_health_metrics_get(n, hm) == BL_OK) node_series(&b, hm);
    free(hm);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    *len = b.len;
    return b.s;
}

/* The machine, from the health collector's latest sample, under node_exporter's names and
 * labels: CPU time one series per CPU and mode (/proc/stat's "cpuN" lines), as node_exporter. */
static void node_series(sbuf *b, const bl_health_metrics *m)
{
    char e1[300], e2[300], e3[300];
    const double hz = 100.0; /* USER_HZ: 100 on every Linux ABI */
    bl__prom_family(b, "node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.");
    for (int c = 0; c < m->ncores; c++) {
        const bl_cpu_times *t = &m->cores[c].t;
        const struct {
            const char *mode;
            unsigned long long v;
        } cpu[] = {{"user", t->user},       {"nice", t->nice},     {"system", t->system},
                   {"idle", t->idle},       {"iowait", t->iowait}, {"irq", t->irq},
                   {"softirq", t->softirq}, {"steal", t->steal}};
        for (size_t i = 0; i < sizeof(cpu) / sizeof(cpu[0]); i++)
            bl__sb_add(b, "node_cpu_seconds_total{cpu=\"%u\",mode=\"%s\"} %.2f\n",
                       m->cores[c].id, cpu[i].mode, cpu[i].v / hz);
    }
    bl__prom_family(b, "node_load1", "gauge", "1m load average.");
    bl__sb_add(b, "node_load1 %.2f\n", m->load1);
    bl__prom_family(b, "node_load5", "gauge", "5m load average.");
    bl__sb_add(b, "node_load5 %.2f\n", m->load5);
    bl__prom_family(b, "node_load15", "gauge", "15m load average.");
    bl__sb_add(b, "node_load15 %.2f\n", m->load15);
    bl__prom_family(b, "node_procs_running", "gauge", "Number of processes in runnable state.");
    bl__sb_add(b, "node_procs_running %u\n", m->procs_running);
    static const struct {
        const char *name;
        size_t off;
    } MEM[] = {
        {"node_memory_MemTotal_bytes", offsetof(bl_health_metrics, mem_total)},
        {"node_memory_MemFree_bytes", offsetof(bl_health_metrics, mem_free)},
        {"node_memory_MemAvailable_bytes", offsetof(bl_health_metrics, mem_available)},
        {"node_memory_Buffers_bytes", offsetof(bl_health_metrics, mem_buffers)},
        {"node_memory_Cached_bytes", offsetof(bl_health_metrics, mem_cached)},
        {"node_memory_SwapTotal_bytes", offsetof(bl_health_metrics, swap_total)},
        {"node_memory_SwapFree_bytes", offsetof(bl_health_metrics, swap_free)},
    };
    for (size_t i = 0; i < sizeof(MEM) / sizeof(MEM[0]); i++) {
        bl__prom_family(b, MEM[i].name, "gauge", "Memory information field, from /proc/meminfo.");
        bl__sb_add(b, "%s %llu\n", MEM[i].name,
                   *(const unsigned long long *)((const char *)m + MEM[i].off));
    }
    static const char *FS[] = {"node_filesystem_size_bytes", "node_filesystem_free_bytes",
                               "node_filesystem_avail_bytes", "node_filesystem_files",
                               "node_filesystem_files_free"};
    for (int f = 0; f < 5 && m->nfs > 0; f++) {
        bl__prom_family(b, FS[f], "gauge",
                        "Filesystem space and inodes (statfs), real filesystems only.");
        for (int i = 0; i < m->nfs && i < BL_HEALTH_MAX_FS; i++) {
            const bl_fs_info *fs = &m->fs[i];
            unsigned long long v = f == 0   ? fs->size_bytes
                                   : f == 1 ? fs->free_bytes
                                   : f == 2 ? fs->avail_bytes
                                   : f == 3 ? fs->inodes_total
                                            : fs->inodes_free;
            bl__prom_esc(e1, sizeof(e1), fs->device);
            bl__prom_esc(e2, sizeof(e2), fs->fstype);
            bl__prom_esc(e3, sizeof(e3), fs->mount);
            bl__sb_add(b, "%s{device=\"%s\",fstype=\"%s\",mountpoint=\"%s\"} %llu\n", FS[f], e1, e2,
                       e3, v);
        }
    }
    static const char *DK[] = {"node_disk_reads_completed_total",
                               "node_disk_writes_completed_total", "node_disk_read_bytes_total",
                               "node_disk_written_bytes_total", "node_disk_io_time_seconds_total"};
    for (int f = 0; f < 5 && m->ndisks > 0; f++) {
        bl__prom_family(b, DK[f], "counter", "Disk I/O, from /proc/diskstats.");
        for (int i = 0; i < m->ndisks && i < BL_HEALTH_MAX_DISKS; i++) {
            const bl_disk_io *d = &m->disks[i];
            bl__prom_esc(e1, sizeof(e1), d->device);
            if (f == 4)
                bl__sb_add(b, "%s{device=\"%s\"} %.3f\n", DK[f], e1, d->io_time_ms / 1000.0);
            else
                bl__sb_add(b, "%s{device=\"%s\"} %llu\n", DK[f], e1,
                           f == 0   ? d->reads
                           : f == 1 ? d->writes
                           : f == 2 ? d->read_bytes
                                    : d->written_bytes);
        }
    }
    static const char *NET[] = {
        "node_network_receive_bytes_total",   "node_network_transmit_bytes_total",
        "node_network_receive_packets_total", "node_network_transmit_packets_total",
        "node_network_receive_errs_total",    "node_network_transmit_errs_total",
        "node_network_receive_drop_total",    "node_network_transmit_drop_total"};
    for (int f = 0; f < 8 && m->nifaces > 0; f++) {
        bl__prom_family(b, NET[f], "counter", "Network interface statistics, from /proc/net/dev.");
        for (int i = 0; i < m->nifaces && i < BL_HEALTH_MAX_IFACES; i++) {
            const bl_net_io *d = &m->ifaces[i];
            unsigned long long v[] = {d->rx_bytes,  d->tx_bytes,  d->rx_packets, d->tx_packets,
                                      d->rx_errors, d->tx_errors, d->rx_dropped, d->tx_dropped};
            bl__prom_esc(e1, sizeof(e1), d->iface);
            bl__sb_add(b, "%s{device=\"%s\"} %llu\n", NET[f], e1, v[f]);
        }
    }
    const struct {
        const char *name;
        const bl_psi *p;
        int full;
    } PSI[] = {{"node_pressure_cpu_waiting_seconds_total", &m->psi_cpu, 0},
               {"node_pressure_memory_waiting_seconds_total", &m->psi_memory, 0},
               {"node_pressure_memory_stalled_seconds_total", &m->psi_memory, 1},
               {"node_pressure_io_waiting_seconds_total", &m->psi_io, 0},
               {"node_pressure_io_stalled_seconds_total", &m->psi_io, 1}};
    for (size_t i = 0; i < sizeof(PSI) / sizeof(PSI[0]); i++) {
        if (!PSI[i].p->present || (PSI[i].full && !PSI[i].p->has_full)) continue;
        bl__prom_family(b, PSI[i].name, "counter", "Pressure stall time, from /proc/pressure.");
        bl__sb_add(b, "%s %.6f\n", PSI[i].name,
                   (PSI[i].full ? PSI[i].p->full_total_us : PSI[i].p->some_total_us) / 1e6);
    }
    bl__prom_family(b, "process_resident_memory_bytes", "gauge",
                    "Resident memory of the beamlet process.");
    bl__sb_add(b, "process_resident_memory_bytes %llu\n", m->rss_bytes);
    bl__prom_family(b, "process_open_fds", "gauge",
                    "Open file descriptors of the beamlet process.");
    bl__sb_add(b, "process_open_fds %u\n", m->fds);
    bl__prom_family(b, "beamlet_threads", "gauge", "Threads of the beamlet process.");
    bl__sb_add(b, "beamlet_threads %u\n", m->threads);
    bl__prom_family(b, "beamlet_health_collect_seconds", "gauge",
                    "Time the last metrics sample took to read.");
    bl__sb_add(b, "beamlet_health_collect_seconds %.6f\n", m->collect_ms / 1000.0);
}

static void reply_text(gw_req *r, const char *s, size_t len)
{
    bl__gw_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
}

static void cluster_done(gw_req *r)
{
    size_t n = json_object_size(r->acc), k = 0, len = 0;
    const char **nodes = calloc(n + 1, sizeof(*nodes)), **texts = calloc(n + 1, sizeof(*texts));
    size_t *lens = calloc(n + 1, sizeof(*lens));
    const char *node;
    json_t *v;
    char *out = NULL;
    if (nodes && texts && lens) {
        json_object_foreach(r->acc, node, v) if (json_is_string(v))
        {
            nodes[k] = node;
            texts[k] = json_string_value(v);
            lens[k++] = json_string_length(v);
        }
        out = bl__prom_merge(nodes, texts, lens, (int)k, &len);
    }
    if (out)
        reply_text(r, out, len);
    else
        bl__gw_problem(r, 500, "Internal Server Error", "out of memory");
    free(out);
    free(nodes);
    free(texts);
    free(lens);
}

/* a member's answer: {Node, Text} */
static void member_cb(gw_req *r, int status, const char *buf, int index)
{
    int type, size, arity;
    char node[MAXATOMLEN_UTF8];
    if (status == BL_OK && ei_decode_tuple_header(buf, &index, &arity) == 0 && arity == 2 &&
        ei_decode_atom(buf, &index, node) == 0 && ei_get_type(buf, &index, &type, &size) == 0 &&
        type == ERL_BINARY_EXT) {
        char *s = malloc((size_t)size + 1);
        long l;
        if (s && ei_decode_binary(buf, &index, s, &l) == 0) {
            json_t *str = json_stringn(s, (size_t)l);
            if (str) json_object_set_new(r->acc, node, str);
        }
        free(s);
    }
    if (r->outstanding == 0 && json_object_get(r->acc, bl_node_name(r->g->n))) cluster_done(r);
}

static void local_cb(gw_req *r, int status, const char *buf, int index)
{
    size_t len = 0;
    char *text = bl__gw_metrics_text(r->g, status == BL_OK ? buf : NULL, index, &len);
    if (!text) {
        if (!r->acc) bl__gw_problem(r, 500, "Internal Server Error", "out of memory");
        return;
    }
    if (!r->acc) { /* one node */
        reply_text(r, text, len);
    } else {
        json_object_set_new(r->acc, bl_node_name(r->g->n), json_stringn(text, len));
        if (r->outstanding == 0) cluster_done(r);
    }
    free(text);
}

static void ask_member(bl_node *n, const char *node, void *ud)
{
    (void)n;
    gw_req *r = ud;
    char req[64];
    int k = 0;
    ei_encode_atom(req, &k, "bl_gw_metrics");
    bl__gw_call(r, GW_PROC, node, req, k, member_cb);
}

void bl__gw_metrics(gw_req *r)
{
    const char *scope = bl__gw_arg(r, "scope");
    if (scope && strcmp(scope, "node") && strcmp(scope, "cluster"))
        return bl__gw_problem(r, 400, "Bad Request", "scope is node or cluster");
    if (scope && !strcmp(scope, "cluster")) {
        r->acc = json_object();
        bl_cluster_each_peer(r->g->n, -1, ask_member, r);
    }
    char req[64];
    int k = 0;
    ei_encode_atom(req, &k, "counters");
    if (bl__gw_call(r, "beamlet_pubsub", bl_node_name(r->g->n), req, k, local_cb) != BL_OK)
        local_cb(r, BL_ENOPROC, NULL, 0);
}
