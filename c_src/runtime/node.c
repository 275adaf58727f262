/* node.c - the node: configuration defaults, start-up (listen, EPMD registration, seeds), the
 * event loop and its housekeeping watchers, pids and refs, timers, node monitors, shutdown.
 *
 * Start-up registers with EPMD through the loop's own EPMD client (dist/epmd.c), running the loop
 * until EPMD answers, so bl_node_start can still report a taken name; everything after
 * bl_node_start is non-blocking. */
#include "internal.h"
#include "child.h"
#include "../dist/guard.h"
#include "../dist/handshake.h"
#include "../dist/resolve.h"
#include "../dist/disthdr.h"
#include "../dist/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *bl_strerror(int err)
{
    switch (err) {
    case BL_OK:
        return "ok";
    case BL_EINVAL:
        return "invalid argument or malformed term";
    case BL_ENOMEM:
        return "out of memory";
    case BL_ENOPROC:
        return "no such process";
    case BL_ENODEDOWN:
        return "node down";
    case BL_ETIMEOUT:
        return "timeout";
    case BL_EBUSY:
        return "send queue above high-water mark";
    case BL_EEXIST:
        return "name already registered";
    case BL_ETOOBIG:
        return "message larger than max_message_size";
    case BL_ESYS:
        return "system call failed";
    case BL_EEPMD:
        return "EPMD unreachable or registration refused";
    case BL_ECONFIG:
        return "invalid configuration";
    case BL_EBADRPC:
        return "badrpc";
    case BL_EEXCEPTION:
        return "exception";
    default:
        return "unknown error";
    }
}

void bl_config_init(bl_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->role, sizeof(cfg->role), "agent");
    snprintf(cfg->cluster, sizeof(cfg->cluster), "default");
    snprintf(cfg->listen_address, sizeof(cfg->listen_address), "0.0.0.0");
    cfg->log_level = BL_LOG_INFO;
    cfg->log_format = BL_LOG_TEXT;
    cfg->net_ticktime_s = 60;
    cfg->max_message_size = 64u * 1024 * 1024;
    cfg->send_queue_high_water = 8u * 1024 * 1024;
    cfg->connect_timeout_ms = 5000;
    cfg->handshake_timeout_ms = 5000;
    cfg->reconnect_backoff_max_ms = 10000;
    cfg->max_handshakes_per_address = 256;
    cfg->max_connections = 1024;
    cfg->max_handshake_rate_per_address = 200;
    cfg->publish = 1;
    cfg->tls_verify = 1;
    snprintf(cfg->tls_versions, sizeof(cfg->tls_versions), "1.2,1.3");
    cfg->cluster_member = 1;
    snprintf(cfg->global_resolve, sizeof(cfg->global_resolve), "random_exit_name");
    snprintf(cfg->global_mode, sizeof(cfg->global_mode), "auto");
    snprintf(cfg->registry_policy, sizeof(cfg->registry_policy), "round_robin");
    cfg->registry_max_entries = 1024;
    cfg->task_concurrency = 4;
    cfg->task_exec_output_max = 65536;
    cfg->health_interval_ms = 5000;
    cfg->health_store = 1;
    cfg->history_raw_s = 21600;
    cfg->history_1m_s = 172800;
    cfg->history_1h_s = 5184000;
    cfg->events_retention_s = 2592000;
    cfg->events_max = 100000;
    cfg->store_max_mb = 64;
    cfg->disk_warn_percent = 90;
    cfg->disk_crit_percent = 95;
    cfg->mem_warn_percent = 10;
    cfg->mem_crit_percent = 5;
    cfg->load_warn_per_cpu = 2;
    cfg->load_crit_per_cpu = 4;
    cfg->check_consecutive = 2;
    cfg->heartbeat_interval_ms = 1000;
    cfg->failure_threshold = 3;
    cfg->election_timeout_ms = 1500;
    cfg->remove_after_ms = 300000;
    cfg->event_log_size = 256;
    cfg->epmd_local = 0;
    snprintf(cfg->epmd_pattern, sizeof(cfg->epmd_pattern), "*");
    snprintf(cfg->dns_basename, sizeof(cfg->dns_basename), "beamlet");
    cfg->discovery_interval_ms = 5000;
    snprintf(cfg->gossip_address, sizeof(cfg->gossip_address), "233.252.1.32");
    cfg->gossip_port = 45892;
    snprintf(cfg->gossip_if, sizeof(cfg->gossip_if), "0.0.0.0");
    cfg->gossip_interval_ms = 5000;
    cfg->http_port = -1;
    snprintf(cfg->http_address, sizeof(cfg->http_address), "127.0.0.1");
    cfg->dashboard = -1;
    cfg->http_max_connections = 1024;
    cfg->http_max_body_bytes = 1024 * 1024;
    cfg->http_max_header_bytes = 32 * 1024;
    cfg->http_timeout_s = 10;
    cfg->http_request_timeout_s = 30;
    cfg->http_rate_limit = 50;
    cfg->http_rate_burst = 100;
}

/* ---- names, cookie ---- */

static int split_name(bl_node *n)
{
    const char *at = strchr(n->cfg.name, '@');
    if (!n->cfg.name[0]) return BL_ECONFIG;
    if (at) {
        snprintf(n->alive, sizeof(n->alive), "%.*s", (int)(at - n->cfg.name), n->cfg.name);
        snprintf(n->host, sizeof(n->host), "%s", at + 1);
    } else {
        snprintf(n->alive, sizeof(n->alive), "%s", n->cfg.name);
        char h[256];
        if (gethostname(h, sizeof(h)) < 0) return BL_ESYS;
        h[sizeof(h) - 1] = 0;
        if (!n->cfg.longnames) {
            char *dot = strchr(h, '.');
            if (dot) *dot = 0;
        }
        snprintf(n->host, sizeof(n->host), "%s", h);
    }
    if (!n->alive[0] || !n->host[0]) return BL_ECONFIG;
    for (const char *p = n->alive; *p; p++)
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return BL_ECONFIG;
    if (strlen(n->alive) + strlen(n->host) + 2 > BL_NODE_LEN) return BL_ECONFIG;
    snprintf(n->name, sizeof(n->name), "%s@%s", n->alive, n->host);
    return BL_OK;
}

/* Like erl's auth.erl, which refuses a cookie file that group or others may access (mode & 077):
 * the cookie is the cluster's only password. beamlet warns and goes on (docs/security.md). */
static void check_cookie_mode(bl_node *n, FILE *f, const char *path)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0) return;
    if (!S_ISREG(st.st_mode))
        bl_log(n, BL_LOG_WARN, "cookie file %s is not a regular file", path);
    else if (st.st_mode & 077)
        bl_log(n, BL_LOG_WARN,
               "cookie file %s can be read by group or others (mode %04o): anyone who reads it can "
               "connect to the cluster; run chmod 400 %s (erl refuses such a file)",
               path, (unsigned)(st.st_mode & 07777), path);
}

static int read_cookie_file(bl_node *n, const char *path, char *out, size_t outsz)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    check_cookie_mode(n, f, path);
    size_t k = fread(out, 1, outsz - 1, f);
    fclose(f);
    out[k] = 0;
    while (k > 0 && (out[k - 1] == '\n' || out[k - 1] == '\r' || out[k - 1] == ' '))
        out[--k] = 0;
    return k > 0 ? 0 : -1;
}

/* Like erl: cookie, else cookie_file, else ~/.erlang.cookie (created when missing). */
static int resolve_cookie(bl_node *n)
{
    if (n->cfg.cookie[0]) {
        snprintf(n->cookie, sizeof(n->cookie), "%s", n->cfg.cookie);
        return BL_OK;
    }
    if (n->cfg.cookie_file[0]) {
        if (read_cookie_file(n, n->cfg.cookie_file, n->cookie, sizeof(n->cookie)) == 0)
            return BL_OK;
        bl_log(n, BL_LOG_ERROR, "cannot read cookie_file %s", n->cfg.cookie_file);
        return BL_ECONFIG;
    }
    const char *home = getenv("HOME");
    char path[1024];
    snprintf(path, sizeof(path), "%s/.erlang.cookie", home ? home : ".");
    if (read_cookie_file(n, path, n->cookie, sizeof(n->cookie)) == 0) return BL_OK;
    /* erl creates a random cookie file when there is none; do the same. */
    char c[21];
    FILE *ur = fopen("/dev/urandom", "r");
    unsigned char rnd[20];
    if (!ur || fread(rnd, 1, sizeof(rnd), ur) != sizeof(rnd)) {
        if (ur) fclose(ur);
        return BL_ESYS;
    }
    fclose(ur);
    for (int i = 0; i < 20; i++)
        c[i] = (char)('A' + rnd[i] % 26);
    c[20] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
    if (fd < 0 || write(fd, c, 20) != 20) {
        if (fd >= 0) close(fd);
        bl_log(n, BL_LOG_ERROR, "no cookie given and cannot create %s", path);
        return BL_ECONFIG;
    }
    close(fd);
    bl_log(n, BL_LOG_INFO, "created %s with a random cookie", path);
    snprintf(n->cookie, sizeof(n->cookie), "%s", c);
    return BL_OK;
}

/* ---- watchers ---- */

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_conn_tick_all(w->data);
}

/* A node run as a port by BEAM: the port closes our stdin when its owner dies. */
static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    bl_node *n = w->data;
    char buf[512];
    ssize_t r = read(w->fd, buf, sizeof(buf));
    if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR))) return; /* input is ignored */
    ev_io_stop(loop, w);
    bl_log(n, BL_LOG_INFO, "stdin closed: stopping");
    bl_node_stop(n);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_node *n = w->data;
    bl_log(n, BL_LOG_INFO, "signal %d: stopping", w->signum);
    bl_node_stop(n);
}

/* Local deliveries (a turn's share: proc.c, bl_localq_drain_turn) and freeing ended processes
 * happen between loop iterations; while messages wait, the idle watcher keeps the next poll from
 * blocking. */
static void check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)revents;
    bl_node *n = w->data;
    bl_localq_drain_turn(n);
    bl_zombies_free(n);
    if (!n->localq_head) ev_idle_stop(loop, &n->idle);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* only keeps the loop from blocking while local messages wait */
}

/* ---- lifecycle ---- */

int bl_node_new(const bl_config *cfg, bl_node **out)
{
    bl_node *n = calloc(1, sizeof(*n));
    if (!n) return BL_ENOMEM;
    n->cfg = *cfg;
    n->listen_fd = -1;
    n->next_pid_num = 1;
    int rc = split_name(n);
    if (rc != BL_OK) {
        bl_log(n, BL_LOG_ERROR, "invalid node name '%s'", cfg->name);
        free(n);
        return rc;
    }
    if ((rc = resolve_cookie(n)) != BL_OK || (rc = bl__intern_init(n)) != BL_OK) {
        bl__intern_free(n);
        free(n);
        return rc;
    }
    n->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_SIGNALFD);
    if (!n->loop) {
        bl__intern_free(n);
        free(n);
        return BL_ESYS;
    }
    n->resolver = bl_resolver_new(n->loop);
    if (!n->resolver || bl_guard_new(n) != BL_OK) {
        bl_resolver_free(n->resolver);
        ev_loop_destroy(n->loop);
        bl__intern_free(n);
        free(n);
        return BL_ENOMEM;
    }
    FILE *ur = fopen("/dev/urandom", "r");
    if (!ur || fread(n->ref_ids, sizeof(n->ref_ids), 1, ur) != 1)
        n->ref_ids[1] = (unsigned)getpid();
    if (ur) fclose(ur);
    n->ref_ids[0] &= 0x3ffff;
    ei_x_new(&n->scratch);
    ei_x_new(&n->scratch2);
    ev_set_userdata(n->loop, n);
    ev_timer_init(&n->tick_timer, tick_cb, 0, 0);
    n->tick_timer.data = n;
    ev_signal_init(&n->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&n->sig_int, signal_cb, SIGINT);
    n->sig_term.data = n->sig_int.data = n;
    ev_check_init(&n->check, check_cb);
    n->check.data = n;
    ev_idle_init(&n->idle, idle_cb);
    *out = n;
    return BL_OK;
}

/* inet_tcp or inet6_tcp, like erl's -proto_dist: given, or IPv6 when the listen address or the
 * node's host is an IPv6 literal. */
static int pick_inet6(bl_node *n)
{
    if (!strcmp(n->cfg.proto_dist, "inet6_tcp")) return 1;
    if (!strcmp(n->cfg.proto_dist, "inet_tcp")) return 0;
    struct sockaddr_storage ss;
    socklen_t len;
    if (bl_resolve_literal(n->cfg.listen_address, &ss, &len) == 0 && ss.ss_family == AF_INET6)
        return 1;
    return bl_resolve_literal(n->host, &ss, &len) == 0 && ss.ss_family == AF_INET6;
}

static int open_listener(bl_node *n)
{
    const char *addr = n->cfg.listen_address;
    /* the default any-address follows the family: 0.0.0.0, or :: (dual-stack) for inet6_tcp */
    if (n->inet6 && !strcmp(addr, "0.0.0.0")) addr = "::";
    struct sockaddr_storage ss;
    socklen_t len;
    if (bl_resolve_literal(addr, &ss, &len) != 0) {
        bl_log(n, BL_LOG_ERROR, "invalid listen_address '%s' (an IPv4 or IPv6 address)", addr);
        return BL_ECONFIG;
    }
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((in_port_t)n->cfg.listen_port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((in_port_t)n->cfg.listen_port);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return BL_ESYS;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) /* "::" takes IPv4 peers too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        bl_log(n, BL_LOG_ERROR, "cannot listen on %s:%d: %s", addr, n->cfg.listen_port,
               strerror(errno));
        close(fd);
        return BL_ESYS;
    }
    len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    n->listen_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
    n->listen_fd = fd;
    if (n->inet6 && ss.ss_family == AF_INET)
        bl_log(n, BL_LOG_WARN,
               "inet6_tcp with the IPv4 listen address %s: IPv6 peers cannot "
               "connect (listen on :: or an IPv6 address)",
               addr);
    return BL_OK;
}

/* EPMD registration events: the first one ends the wait in bl_node_start. */
static void epmd_cb(void *ud, bl_epmd_event ev, unsigned creation, const char *why)
{
    bl_node *n = ud;
    switch (ev) {
    case BL_EPMD_REGISTERED:
        n->creation = creation;
        n->epmd_state = 1;
        break;
    case BL_EPMD_FAILED:
        bl_log(n, BL_LOG_ERROR, "cannot register %s with EPMD: %s (is epmd running?)", n->name,
               why);
        n->epmd_state = -1;
        break;
    case BL_EPMD_LOST:
        bl_log(n, BL_LOG_WARN, "EPMD registration lost (%s): registering again", why);
        break;
    case BL_EPMD_REREGISTERED:
        bl_log(n, BL_LOG_INFO, "registered with EPMD again (keeping creation %u)", creation);
        break;
    }
}

int bl_node_start(bl_node *n)
{
    signal(SIGPIPE, SIG_IGN);
    /* the cluster configuration this node persisted, before anything reads n->cfg: restart-only
     * keys set cluster-wide take effect at this start */
    bl__cconf_preload(n);
    n->started_at = ev_time();
    n->inet6 = pick_inet6(n);
    if (n->cfg.tls) {
        char err[400];
        if (!(n->tls = bl__tls_new(&n->cfg, err, sizeof(err)))) {
            bl_log(n, BL_LOG_ERROR, "TLS distribution: %s", err);
            return BL_ECONFIG;
        }
        if (n->cfg.tls_verify) /* with an allow-list: the certificate must name the host */
            bl_guard_set_peer_check(n, bl__tls_peer_check, NULL);
    }
    int rc = open_listener(n);
    if (rc != BL_OK) return rc;
    int port = n->listen_port;

    if (n->cfg.publish) {
        n->epmd_state = 0;
        if (bl_epmd_register(&n->epmd, n->loop, n->alive, port, n->inet6, 3000, epmd_cb, n) < 0)
            return BL_ECONFIG;
        while (n->epmd_state == 0) /* only EPMD's watchers are active yet */
            ev_run(n->loop, EVRUN_ONCE);
        if (n->epmd_state < 0) return BL_EEPMD;
    } else {
        /* nodes that do not publish pick a random creation */
        n->creation = 0x10000 + (n->ref_ids[1] & 0x7fffffff) % 0x7fff0000;
    }

    ev_io_init(&n->listen_io, bl_conn_listen_cb, n->listen_fd, EV_READ);
    n->listen_io.data = n;
    ev_io_start(n->loop, &n->listen_io);
    double tick = n->cfg.net_ticktime_s / 4.0;
    ev_timer_set(&n->tick_timer, tick, tick);
    ev_timer_start(n->loop, &n->tick_timer);
    ev_check_start(n->loop, &n->check);
    ev_signal_start(n->loop, &n->sig_term);
    ev_signal_start(n->loop, &n->sig_int);
    if (n->cfg.exit_on_stdin_eof) {
        ev_io_init(&n->stdin_io, stdin_cb, STDIN_FILENO, EV_READ);
        n->stdin_io.data = n;
        ev_io_start(n->loop, &n->stdin_io);
    }

    rc = bl_builtin_start(n);
    if (rc == BL_OK) rc = bl_cluster_start(n);
    if (rc == BL_OK) rc = bl_services_start(n);
    if (rc == BL_OK) rc = bl_tasks_start(n);
    if (rc == BL_OK) rc = bl_gateway_start(n);
    if (rc != BL_OK) return rc;
    n->started = 1;
    for (int i = 0; i < n->cfg.njoin; i++)
        bl_connect(n, n->cfg.join[i]);
    bl_log(n, BL_LOG_INFO,
           "ready: %s listening on %s:%d (%s), %s (creation %u), role %s, cluster %s", n->name,
           n->inet6 && !strcmp(n->cfg.listen_address, "0.0.0.0") ? "::" : n->cfg.listen_address,
           port,
           n->tls     ? (n->inet6 ? "inet6_tls" : "inet_tls")
           : n->inet6 ? "inet6_tcp"
                      : "inet_tcp",
           n->cfg.publish ? "published in EPMD" : "not published", n->creation, n->cfg.role,
           n->cfg.cluster);
    return BL_OK;
}

int bl_node_run(bl_node *n)
{
    n->running = 1;
    ev_run(n->loop, 0);
    n->running = 0;
    return 0;
}

void bl_node_stop(bl_node *n)
{
    if (n->stopping) return;
    bl_cluster_stop(n); /* announce leaving, then left, before anything closes */
    n->stopping = 1;
    bl_procs_shutdown(n); /* exit signals to linked processes go out first */
    bl_localq_drain(n);
    bl_conn_close_all(n);
    ev_break(n->loop, EVBREAK_ALL);
}

void bl_node_free(bl_node *n)
{
    if (!n) return;
    if (!n->stopping) {
        n->stopping = 1;
        bl_procs_shutdown(n);
        bl_conn_close_all(n);
    }
    bl_epmd_unregister(&n->epmd);
    bl_cluster_free(n);
    bl_localq_drain(n);
    bl_zombies_free(n);
    bl__children_free(n); /* after the services, which abandon theirs when they stop */
    while (n->localq_head) {
        bl_localmsg *m = n->localq_head;
        n->localq_head = m->next;
        free(m);
    }
    bl_utimer *t, *tt;
    HASH_ITER(hh, n->timers, t, tt)
    {
        ev_timer_stop(n->loop, &t->w);
        HASH_DEL(n->timers, t);
        free(t);
    }
    bl_nodemon *m, *mt;
    LL_FOREACH_SAFE(n->nodemons, m, mt) free(m);
    bl_exports_free(n);
    if (n->listen_fd >= 0) close(n->listen_fd);
    bl_resolver_free(n->resolver);
    bl_guard_free(n); /* after the handshakes, which hold its per-address slots */
    ei_x_free(&n->scratch);
    ei_x_free(&n->scratch2);
    free(n->rscratch);
    n->rscratch = NULL;
    bl_sighooks_free(n);
    bl_cfghooks_free(n);
    free(n->cfg_base);
    n->cfg_base = NULL;
    bl_dh_scratch_free(n->dh);
    bl_apool_unref(n->apool); /* a connection still holding texts keeps the pool to its end */
    bl__intern_free(n); /* last: every pid above pointed into it */
    bl__tls_free(n->tls);
    /* libev keeps a signal's loop until the watcher stops: a later node in this process (the
     * CLI asks several members in turn) could not take SIGTERM/SIGINT otherwise */
    ev_signal_stop(n->loop, &n->sig_term);
    ev_signal_stop(n->loop, &n->sig_int);
    ev_loop_destroy(n->loop);
    free(n);
}

int bl_node_reload_tls(bl_node *n, const bl_config *cfg)
{
    if (!n || !n->tls) return BL_EINVAL;
    bl_config c = n->cfg;
    if (cfg) {
        snprintf(c.tls_cert, sizeof(c.tls_cert), "%s", cfg->tls_cert);
        snprintf(c.tls_key, sizeof(c.tls_key), "%s", cfg->tls_key);
        snprintf(c.tls_ca, sizeof(c.tls_ca), "%s", cfg->tls_ca);
    }
    char err[400];
    bl_tls *t = bl__tls_new(&c, err, sizeof(err));
    if (!t) {
        bl_log(n, BL_LOG_ERROR, "TLS reload refused, the current certificates stay: %s", err);
        return BL_ECONFIG;
    }
    bl__tls_free(n->tls); /* live connections hold their own reference to the old context */
    n->tls = t;
    memcpy(n->cfg.tls_cert, c.tls_cert, sizeof(c.tls_cert));
    memcpy(n->cfg.tls_key, c.tls_key, sizeof(c.tls_key));
    memcpy(n->cfg.tls_ca, c.tls_ca, sizeof(c.tls_ca));
    bl_log(n, BL_LOG_INFO, "TLS: certificates reloaded from %s; new connections use them",
           n->cfg.tls_cert);
    return BL_OK;
}

const char *bl_node_name(const bl_node *n)
{
    return n->name;
}
const bl_config *bl_node_config(const bl_node *n)
{
    return &n->cfg;
}

void bl_node_stats(const bl_node *n, bl_stats *out)
{
    *out = n->stats;
    out->processes = HASH_COUNT(n->procs);
}

int bl_is_local_node(const bl_node *n, const char *node)
{
    return strcmp(n->name, node) == 0;
}

/* ---- node monitors ---- */

int bl_monitor_nodes(bl_node *n, bl_node_cb cb, void *ud)
{
    bl_nodemon *m = calloc(1, sizeof(*m));
    if (!m) return BL_ENOMEM;
    m->id = ++n->next_nodemon_id;
    m->cb = cb;
    m->ud = ud;
    LL_APPEND(n->nodemons, m);
    return m->id;
}

void bl_demonitor_nodes(bl_node *n, int id)
{
    bl_nodemon *m, *t;
    LL_FOREACH_SAFE(n->nodemons, m, t)
    {
        if (m->id == id) {
            LL_DELETE(n->nodemons, m);
            free(m);
        }
    }
}

/* ---- timers ---- */

static void utimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_utimer *t = w->data;
    bl_node *n = t->n;
    int id = t->id;
    int repeating = w->repeat > 0;
    t->cb(n, t->ud);
    if (!repeating) { /* the callback may have cancelled it already */
        bl_utimer *still = NULL;
        HASH_FIND_INT(n->timers, &id, still);
        if (still) {
            HASH_DEL(n->timers, still);
            free(still);
        }
    }
}

int bl_timer(bl_node *n, unsigned after_ms, unsigned repeat_ms, bl_timer_cb cb, void *ud)
{
    bl_utimer *t = calloc(1, sizeof(*t));
    if (!t) return BL_ENOMEM;
    t->id = ++n->next_timer_id;
    if (t->id <= 0) t->id = n->next_timer_id = 1;
    t->n = n;
    t->cb = cb;
    t->ud = ud;
    ev_timer_init(&t->w, utimer_cb, after_ms / 1000.0, repeat_ms / 1000.0);
    t->w.data = t;
    ev_timer_start(n->loop, &t->w);
    HASH_ADD_INT(n->timers, id, t);
    return t->id;
}

void bl_timer_cancel(bl_node *n, int id)
{
    bl_utimer *t = NULL;
    HASH_FIND_INT(n->timers, &id, t);
    if (!t) return;
    ev_timer_stop(n->loop, &t->w);
    HASH_DEL(n->timers, t);
    free(t);
}
