/* config.c - configuration from JSON file, environment and flags (see beamlet/config.h).
 *
 * One table names every key once with its flag and environment variable; the file, the
 * environment and the flags all go through bl_config_set, so validation lives in one place. */
#include "beamlet/config.h"
#include "../health/rules.h"
#include "../health/checks_parse.h"
#include "../dist/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key, *flag, *env, *help;
} opt;

static const opt OPTS[] = {
    {"sname", "--sname", NULL, "short node name: NAME or NAME@HOST"},
    {"name", "--name", NULL, "long node name: NAME@HOST.DOMAIN or NAME@IP"},
    /* aliases come before their variable: when both are set, the canonical one wins */
    {"node_name", NULL, "NODE_ID", "alias of NODE_NAME"},
    {"node_name", NULL, "NODE_NAME", "node name (short names unless the host has a dot)"},
    {"cookie", "--cookie", "COOKIE",
     "distribution cookie (default: ~/.erlang.cookie); on a command line it shows in ps: "
     "prefer --cookie-file"},
    {"cookie_file", "--cookie-file", "COOKIE_FILE",
     "file holding the cookie (mode 0400/0600: a warning when group or others can read it)"},
    {"role", "--role", "ROLE", "coordinator/agent/gateway/monitor (default agent)"},
    {"cluster", "--cluster", "CLUSTER_NAME", "cluster name (default \"default\")"},
    {"join", "--join", "CLUSTER_SEEDS", "nodes to connect to at start, comma separated"},
    {"log_level", "--log-level", "BEAMLET_LOG_LEVEL", "error/warn/info/debug"},
    {"log_format", "--log-format", "BEAMLET_LOG_FORMAT", "text/json"},
    {"net_ticktime", "--net-ticktime", "BEAMLET_NET_TICKTIME",
     "seconds, like kernel net_ticktime (60)"},
    {"max_message_size", "--max-message-size", "BEAMLET_MAX_MESSAGE_SIZE",
     "bytes per frame (64 MiB)"},
    {"send_queue_high_water", "--send-queue-high-water", "BEAMLET_SEND_QUEUE_HIGH_WATER",
     "bytes queued per connection before sends are refused (8 MiB)"},
    {"connect_timeout_ms", "--connect-timeout-ms", "BEAMLET_CONNECT_TIMEOUT_MS",
     "per step of an outgoing connect: host lookup, EPMD, TCP (5000)"},
    {"handshake_timeout_ms", "--handshake-timeout-ms", "BEAMLET_HANDSHAKE_TIMEOUT_MS",
     "per handshake packet, both directions (5000)"},
    {"reconnect_backoff_max_ms", "--reconnect-backoff-max-ms", "BEAMLET_RECONNECT_BACKOFF_MAX_MS",
     "cap of the reconnect backoff (10000)"},
    {"max_handshakes_per_address", "--max-handshakes-per-address",
     "BEAMLET_MAX_HANDSHAKES_PER_ADDRESS", "incoming handshakes at once from one address (256)"},
    {"allow", "--allow", "BEAMLET_ALLOW",
     "only these nodes connect, both ways, like net_kernel:allow/1: NAME@HOST, NAME@ or HOST, "
     "comma separated (empty: any)"},
    {"max_connections", "--max-connections", "BEAMLET_MAX_CONNECTIONS",
     "distribution connections up plus handshakes running (1024)"},
    {"max_handshake_rate_per_address", "--max-handshake-rate-per-address",
     "BEAMLET_MAX_HANDSHAKE_RATE_PER_ADDRESS",
     "incoming handshakes started per second from one address (200; 0: no bound)"},
    {"proto_dist", "--proto-dist", "BEAMLET_PROTO_DIST",
     "inet_tcp or inet6_tcp, like erl -proto_dist (from the addresses)"},
    {"listen_address", "--listen-address", "BEAMLET_LISTEN_ADDRESS",
     "IPv4 or IPv6 address to listen on (0.0.0.0; :: with inet6_tcp)"},
    {"listen_port", NULL, "CLUSTER_PORT", "alias of BEAMLET_PORT"},
    {"listen_port", "--port", "BEAMLET_PORT", "TCP port (0: any)"},
    {"publish", "--publish", "BEAMLET_PUBLISH", "register in EPMD: true/false (true)"},
    {"tls", "--tls", "BEAMLET_TLS",
     "TLS distribution (like erl -proto_dist inet_tls): true/false (false)"},
    {"tls_cert", "--tls-cert", "BEAMLET_TLS_CERT", "PEM certificate presented to peers"},
    {"tls_key", "--tls-key", "BEAMLET_TLS_KEY", "PEM private key of tls_cert"},
    {"tls_ca", "--tls-ca", "BEAMLET_TLS_CA", "PEM CA certificates that peers' certificates chain to"},
    {"tls_verify", "--tls-verify", "BEAMLET_TLS_VERIFY",
     "peer: a verified peer certificate required both ways; none: no check (peer)"},
    {"tls_versions", "--tls-versions", "BEAMLET_TLS_VERSIONS", "TLS versions: 1.2,1.3 (1.2,1.3)"},
    {"tls_ciphers", "--tls-ciphers", "BEAMLET_TLS_CIPHERS",
     "TLS 1.3 suites and TLS 1.2 ciphers, ':' separated (OpenSSL's defaults)"},
    {"exit_on_stdin_eof", "--exit-on-stdin-eof", "BEAMLET_EXIT_ON_STDIN_EOF",
     "stop when stdin closes (for nodes run as a port): true/false (false)"},
    {"global_resolve", "--global-resolve", "BEAMLET_GLOBAL_RESOLVE",
     "name clash method: random_exit_name/random_notify_name/notify_all_name"},
    {"global_mode", "--global-mode", "BEAMLET_GLOBAL_MODE",
     "global names through OTP global (beam), among C nodes (beamlet), or auto"},
    {"data_dir", "--data-dir", "BEAMLET_DATA_DIR",
     "directory for durable state: the pub/sub outbox and dedup window"},
    {"registry_policy", "--registry-policy", "BEAMLET_REGISTRY_POLICY",
     "service call balancing: round_robin/least_outstanding (round_robin)"},
    {"registry_max_entries", "--registry-max-entries", "BEAMLET_REGISTRY_MAX_ENTRIES",
     "service entries registered per node (1024)"},
    {"task_concurrency", "--task-concurrency", "BEAMLET_TASK_CONCURRENCY",
     "tasks this node runs at once as an agent (4)"},
    {"task_exec_allow", "--task-exec-allow", "BEAMLET_TASK_EXEC_ALLOW",
     "absolute paths the exec task type may run, comma separated (empty: exec off)"},
    {"task_exec_output_max", "--task-exec-output-max", "BEAMLET_TASK_EXEC_OUTPUT_MAX",
     "bytes of an exec task's stdout/stderr kept (65536)"},
    {"health_interval_ms", "--health-interval-ms", "BEAMLET_HEALTH_INTERVAL_MS",
     "node metrics sample interval (5000)"},
    {"health_store", "--health-store", "BEAMLET_HEALTH_STORE",
     "keep events and metrics history on disk: true/false (true)"},
    {"history_raw_s", "--history-raw-s", "BEAMLET_HISTORY_RAW_S", "raw metric samples kept (21600)"},
    {"history_1m_s", "--history-1m-s", "BEAMLET_HISTORY_1M_S", "1 min rollups kept (172800)"},
    {"history_1h_s", "--history-1h-s", "BEAMLET_HISTORY_1H_S", "1 h rollups kept (5184000)"},
    {"events_retention_s", "--events-retention-s", "BEAMLET_EVENTS_RETENTION_S",
     "events and audit trail kept (2592000)"},
    {"events_max", "--events-max", "BEAMLET_EVENTS_MAX", "events kept at most (100000)"},
    {"alert_rules", "--alert-rules", "BEAMLET_ALERT_RULES",
     "JSON array of alert rules on top of the built-in ones (docs/health.md)"},
    {"alert_webhooks", "--alert-webhooks", "BEAMLET_ALERT_WEBHOOKS",
     "http(s) URLs POSTed each alert change as JSON, comma separated"},
    {"health_checks", "--health-checks", "BEAMLET_HEALTH_CHECKS",
     "JSON array of health checks (http, tcp, command) this node runs (docs/health.md)"},
    {"check_consecutive", "--check-consecutive", "BEAMLET_CHECK_CONSECUTIVE",
     "results in a row before a check changes state (2)"},
    {"disk_warn_percent", "--disk-warn-percent", "BEAMLET_DISK_WARN_PERCENT",
     "a filesystem used above this is a warning (90)"},
    {"disk_crit_percent", "--disk-crit-percent", "BEAMLET_DISK_CRIT_PERCENT",
     "a filesystem used above this is critical (95)"},
    {"mem_warn_percent", "--mem-warn-percent", "BEAMLET_MEM_WARN_PERCENT",
     "memory available below this percent is a warning (10)"},
    {"mem_crit_percent", "--mem-crit-percent", "BEAMLET_MEM_CRIT_PERCENT",
     "memory available below this percent is critical (5)"},
    {"load_warn_per_cpu", "--load-warn-per-cpu", "BEAMLET_LOAD_WARN_PER_CPU",
     "5 min load per CPU above this is a warning (2)"},
    {"load_crit_per_cpu", "--load-crit-per-cpu", "BEAMLET_LOAD_CRIT_PER_CPU",
     "5 min load per CPU above this is critical (4)"},
    {"store_max_mb", "--store-max-mb", "BEAMLET_STORE_MAX_MB",
     "size bound of the health database in MiB (64)"},
    {"capabilities", "--capabilities", "BEAMLET_CAPABILITIES",
     "what this node offers, comma separated"},
    {"metadata", "--metadata", "BEAMLET_METADATA", "key=value pairs, comma separated"},
    {"heartbeat_interval_ms", "--heartbeat-interval-ms", "BEAMLET_HEARTBEAT_INTERVAL_MS",
     "membership heartbeat (1000)"},
    {"failure_threshold", "--failure-threshold", "BEAMLET_FAILURE_THRESHOLD",
     "missed heartbeats before suspected (3)"},
    {"election_timeout_ms", "--election-timeout-ms", "BEAMLET_ELECTION_TIMEOUT_MS",
     "leader election timeout base (1500)"},
    {"remove_after_ms", "--remove-after-ms", "BEAMLET_REMOVE_AFTER_MS",
     "forget failed/left members after (300000)"},
    {"event_log_size", "--event-log-size", "BEAMLET_EVENT_LOG_SIZE", "cluster events kept (256)"},
    {"epmd_local", "--epmd-local", "BEAMLET_EPMD_LOCAL",
     "discover nodes in the local EPMD: true/false (false)"},
    {"epmd_pattern", "--epmd-pattern", "BEAMLET_EPMD_PATTERN",
     "glob on node names found in EPMD (*)"},
    {"epmd_hosts", "--epmd-hosts", "BEAMLET_EPMD_HOSTS",
     "hosts whose EPMD is polled, comma separated"},
    {"hosts_file", "--hosts-file", "BEAMLET_HOSTS_FILE",
     ".hosts.erlang-style file of hosts to poll"},
    {"dns_name", "--dns-name", "BEAMLET_DNS_NAME", "DNS name polled for A records"},
    {"dns_basename", "--dns-basename", "BEAMLET_DNS_BASENAME",
     "node name part for DNS hosts: basename@ip (beamlet)"},
    {"discovery_interval_ms", "--discovery-interval-ms", "BEAMLET_DISCOVERY_INTERVAL_MS",
     "EPMD/hosts/DNS poll interval (5000)"},
    {"gossip", "--gossip", "BEAMLET_GOSSIP",
     "libcluster-compatible UDP gossip: true/false (false)"},
    {"gossip_address", "--gossip-address", "BEAMLET_GOSSIP_ADDRESS",
     "multicast group (233.252.1.32)"},
    {"gossip_port", "--gossip-port", "BEAMLET_GOSSIP_PORT", "UDP port (45892)"},
    {"gossip_if", "--gossip-if", "BEAMLET_GOSSIP_IF", "interface address for gossip (0.0.0.0)"},
    {"gossip_secret", "--gossip-secret", "BEAMLET_GOSSIP_SECRET",
     "shared secret (libcluster's :secret)"},
    {"gossip_interval_ms", "--gossip-interval-ms", "BEAMLET_GOSSIP_INTERVAL_MS",
     "gossip heartbeat interval (5000)"},
    {"http_port", "--http-port", "BEAMLET_HTTP_PORT",
     "HTTP gateway port, 0: off (8080 for role gateway, else off)"},
    {"http_address", "--http-address", "BEAMLET_HTTP_ADDRESS",
     "IPv4 address the gateway listens on (127.0.0.1)"},
    {"dashboard", "--dashboard", "BEAMLET_DASHBOARD", "serve the dashboard at /: true/false (true)"},
    {"http_tls_cert", "--http-tls-cert", "BEAMLET_HTTP_TLS_CERT", "PEM certificate: HTTPS"},
    {"http_tls_key", "--http-tls-key", "BEAMLET_HTTP_TLS_KEY", "PEM private key for HTTPS"},
    {"http_public_read", "--http-public-read", "BEAMLET_HTTP_PUBLIC_READ",
     "reads need no key off loopback too: true/false (false)"},
    {"http_max_connections", "--http-max-connections", "BEAMLET_HTTP_MAX_CONNECTIONS",
     "concurrent HTTP connections (1024)"},
    {"http_max_body_bytes", "--http-max-body-bytes", "BEAMLET_HTTP_MAX_BODY_BYTES",
     "request body limit (1048576)"},
    {"http_max_header_bytes", "--http-max-header-bytes", "BEAMLET_HTTP_MAX_HEADER_BYTES",
     "request line + headers limit (32768)"},
    {"http_timeout_s", "--http-timeout-s", "BEAMLET_HTTP_TIMEOUT_S",
     "idle HTTP connection closed after (10)"},
    {"http_request_timeout_s", "--http-request-timeout-s", "BEAMLET_HTTP_REQUEST_TIMEOUT_S",
     "a request must arrive and its answer be read within (30)"},
    {"http_rate_limit", "--http-rate-limit", "BEAMLET_HTTP_RATE_LIMIT",
     "requests/s per key and per address (50)"},
    {"http_rate_burst", "--http-rate-burst", "BEAMLET_HTTP_RATE_BURST",
     "burst above the rate (100)"},
};
#define NOPTS (sizeof(OPTS) / sizeof(OPTS[0]))

static int fail(char *err, size_t errlen, const char *key, const char *fmt, const char *value)
{
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, value);
    snprintf(err, errlen, "invalid %s: %s", key, msg);
    return BL_ECONFIG;
}

static int parse_u64(const char *s, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out)
{
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int valid_alive(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

static int valid_node(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) >= BL_NODE_LEN) return 0;
    for (const char *p = s; p < at; p++)
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

static int set_name(bl_config *cfg, const char *key, const char *v, int longnames, char *err,
                    size_t errlen)
{
    if (!v[0] || strlen(v) >= sizeof(cfg->name))
        return fail(err, errlen, key, "'%s' is empty or too long", v);
    char tmp[BL_NODE_LEN + 8];
    snprintf(tmp, sizeof(tmp), "%s%s", v, strchr(v, '@') ? "" : "@h");
    if (!valid_node(tmp))
        return fail(err, errlen, key, "'%s' is not NAME or NAME@HOST (NAME: letters, digits, _ -)",
                    v);
    const char *at = strchr(v, '@');
    if (longnames < 0) longnames = at && strchr(at, '.') ? 1 : 0;
    snprintf(cfg->name, sizeof(cfg->name), "%s", v);
    cfg->longnames = longnames;
    return BL_OK;
}

/* The allow-list: entries as net_kernel:allow/1 and dist_util:is_allowed take them. */
static int set_allow(bl_config *cfg, const char *v, char *err, size_t errlen)
{
    if (strlen(v) >= sizeof(cfg->allow)) return fail(err, errlen, "allow", "%s", "too long");
    char buf[sizeof(cfg->allow)];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        const char *at = strchr(tok, '@');
        char probe[BL_NODE_LEN + 8];
        /* NAME@HOST, NAME@ (that name on any host) or HOST (any node on that host) */
        snprintf(probe, sizeof(probe), "%s%s", at ? "" : "n@", tok);
        if (at && !at[1]) snprintf(probe, sizeof(probe), "%sh", tok);
        if (strlen(tok) >= BL_NODE_LEN || !valid_node(probe))
            return fail(err, errlen, "allow", "'%s' is not NAME@HOST, NAME@ or HOST", tok);
    }
    snprintf(cfg->allow, sizeof(cfg->allow), "%s", v);
    return BL_OK;
}

static int set_join(bl_config *cfg, const char *v, char *err, size_t errlen)
{
    cfg->njoin = 0;
    char buf[BL_MAX_SEEDS * BL_NODE_LEN];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (!valid_node(tok))
            return fail(err, errlen, "join", "'%s' is not a node name NAME@HOST", tok);
        if (cfg->njoin >= BL_MAX_SEEDS)
            return fail(err, errlen, "join", "more than %s seeds", "32");
        snprintf(cfg->join[cfg->njoin++], BL_NODE_LEN, "%s", tok);
    }
    return BL_OK;
}

int bl_config_set(bl_config *cfg, const char *key, const char *v, char *err, size_t errlen)
{
    unsigned long long u;
    if (!v) return fail(err, errlen, key, "%s", "missing value");
    if (!strcmp(key, "sname")) return set_name(cfg, key, v, 0, err, errlen);
    if (!strcmp(key, "name")) return set_name(cfg, key, v, 1, err, errlen);
    if (!strcmp(key, "node_name")) return set_name(cfg, key, v, -1, err, errlen);
    if (!strcmp(key, "cookie")) {
        if (!v[0] || strlen(v) >= sizeof(cfg->cookie))
            return fail(err, errlen, key, "%s", "must be 1..255 characters");
        snprintf(cfg->cookie, sizeof(cfg->cookie), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "cookie_file")) {
        if (!v[0] || strlen(v) >= sizeof(cfg->cookie_file))
            return fail(err, errlen, key, "'%s' is empty or too long", v);
        snprintf(cfg->cookie_file, sizeof(cfg->cookie_file), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "role")) {
        static const char *roles[] = {"coordinator", "agent", "gateway", "monitor"};
        for (size_t i = 0; i < 4; i++)
            if (!strcmp(v, roles[i])) {
                snprintf(cfg->role, sizeof(cfg->role), "%s", v);
                return BL_OK;
            }
        return fail(err, errlen, key, "'%s' is not one of coordinator, agent, gateway, monitor", v);
    }
    if (!strcmp(key, "cluster")) {
        size_t n = strlen(v);
        if (n == 0 || n >= sizeof(cfg->cluster))
            return fail(err, errlen, key, "'%s' must be 1..63 characters", v);
        for (const char *p = v; *p; p++)
            if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
                  (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                return fail(err, errlen, key, "'%s' may hold only letters, digits, _ - .", v);
        snprintf(cfg->cluster, sizeof(cfg->cluster), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "join")) return set_join(cfg, v, err, errlen);
    if (!strcmp(key, "allow")) return set_allow(cfg, v, err, errlen);
    if (!strcmp(key, "log_level")) {
        static const char *lv[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, lv[i])) {
                cfg->log_level = (bl_log_level)i;
                return BL_OK;
            }
        return fail(err, errlen, key, "'%s' is not one of error, warn, info, debug", v);
    }
    if (!strcmp(key, "log_format")) {
        if (!strcmp(v, "text"))
            cfg->log_format = BL_LOG_TEXT;
        else if (!strcmp(v, "json"))
            cfg->log_format = BL_LOG_JSON;
        else
            return fail(err, errlen, key, "'%s' is not text or json", v);
        return BL_OK;
    }
    if (!strcmp(key, "net_ticktime")) {
        if (parse_u64(v, 1, 3600, &u))
            return fail(err, errlen, key, "'%s' is not 1..3600 seconds", v);
        cfg->net_ticktime_s = (unsigned)u;
        return BL_OK;
    }
    if (!strcmp(key, "max_message_size")) {
        if (parse_u64(v, 1024, 1ull << 31, &u))
            return fail(err, errlen, key, "'%s' is not 1024..2147483648 bytes", v);
        cfg->max_message_size = (size_t)u;
        return BL_OK;
    }
    if (!strcmp(key, "send_queue_high_water")) {
        if (parse_u64(v, 65536, 1ull << 32, &u))
            return fail(err, errlen, key, "'%s' is not 65536..4294967296 bytes", v);
        cfg->send_queue_high_water = (size_t)u;
        return BL_OK;
    }
    if (!strcmp(key, "connect_timeout_ms") || !strcmp(key, "handshake_timeout_ms") ||
        !strcmp(key, "reconnect_backoff_max_ms")) {
        if (parse_u64(v, 100, 600000, &u))
            return fail(err, errlen, key, "'%s' is not 100..600000 ms", v);
        if (key[0] == 'c')
            cfg->connect_timeout_ms = (unsigned)u;
        else if (key[0] == 'h')
            cfg->handshake_timeout_ms = (unsigned)u;
        else
            cfg->reconnect_backoff_max_ms = (unsigned)u;
        return BL_OK;
    }
    if (!strcmp(key, "max_handshakes_per_address")) {
        if (parse_u64(v, 1, 65536, &u)) return fail(err, errlen, key, "'%s' is not 1..65536", v);
        cfg->max_handshakes_per_address = (unsigned)u;
        return BL_OK;
    }
    if (!strcmp(key, "proto_dist")) {
        if (strcmp(v, "inet_tcp") && strcmp(v, "inet6_tcp"))
            return fail(err, errlen, key, "'%s' is not inet_tcp or inet6_tcp", v);
        snprintf(cfg->proto_dist, sizeof(cfg->proto_dist), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "listen_address")) {
        struct in_addr a4;
        struct in6_addr a6;
        if (strlen(v) >= sizeof(cfg->listen_address) ||
            (inet_pton(AF_INET, v, &a4) != 1 && inet_pton(AF_INET6, v, &a6) != 1))
            return fail(err, errlen, key, "'%s' is not an IPv4 or IPv6 address", v);
        snprintf(cfg->listen_address, sizeof(cfg->listen_address), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "listen_port")) {
        if (parse_u64(v, 0, 65535, &u)) return fail(err, errlen, key, "'%s' is not 0..65535", v);
        cfg->listen_port = (int)u;
        return BL_OK;
    }
    if (!strcmp(key, "publish")) {
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            cfg->publish = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0"))
            cfg->publish = 0;
        else
            return fail(err, errlen, key, "'%s' is not true or false", v);
        return BL_OK;
    }
    static const struct {
        const char *key;
        size_t off, lo, hi;
    } UINTS[] = {
        {"heartbeat_interval_ms", offsetof(bl_config, heartbeat_interval_ms), 10, 600000},
        {"max_connections", offsetof(bl_config, max_connections), 1, 1000000},
        {"max_handshake_rate_per_address", offsetof(bl_config, max_handshake_rate_per_address), 0,
         1000000},
        {"failure_threshold", offsetof(bl_config, failure_threshold), 1, 100},
        {"election_timeout_ms", offsetof(bl_config, election_timeout_ms), 50, 600000},
        {"remove_after_ms", offsetof(bl_config, remove_after_ms), 100, 86400000},
        {"event_log_size", offsetof(bl_config, event_log_size), 1, 100000},
        {"discovery_interval_ms", offsetof(bl_config, discovery_interval_ms), 100, 3600000},
        {"gossip_interval_ms", offsetof(bl_config, gossip_interval_ms), 100, 3600000},
        {"registry_max_entries", offsetof(bl_config, registry_max_entries), 1, 1000000},
        {"http_max_connections", offsetof(bl_config, http_max_connections), 1, 65536},
        {"http_max_body_bytes", offsetof(bl_config, http_max_body_bytes), 0, 1u << 30},
        {"http_max_header_bytes", offsetof(bl_config, http_max_header_bytes), 4096, 1u << 24},
        {"http_timeout_s", offsetof(bl_config, http_timeout_s), 1, 3600},
        {"http_request_timeout_s", offsetof(bl_config, http_request_timeout_s), 1, 86400},
        {"http_rate_limit", offsetof(bl_config, http_rate_limit), 1, 1000000},
        {"http_rate_burst", offsetof(bl_config, http_rate_burst), 1, 1000000},
        {"health_interval_ms", offsetof(bl_config, health_interval_ms), 100, 3600000},
        {"history_raw_s", offsetof(bl_config, history_raw_s), 60, 31536000},
        {"history_1m_s", offsetof(bl_config, history_1m_s), 600, 31536000},
        {"history_1h_s", offsetof(bl_config, history_1h_s), 3600, 315360000},
        {"events_retention_s", offsetof(bl_config, events_retention_s), 60, 315360000},
        {"events_max", offsetof(bl_config, events_max), 10, 100000000},
        {"store_max_mb", offsetof(bl_config, store_max_mb), 1, 1048576},
        {"check_consecutive", offsetof(bl_config, check_consecutive), 1, 100},
        {"task_concurrency", offsetof(bl_config, task_concurrency), 1, 10000},
        {"task_exec_output_max", offsetof(bl_config, task_exec_output_max), 256, 16u << 20},
    };
    for (size_t i = 0; i < sizeof(UINTS) / sizeof(UINTS[0]); i++) {
        if (strcmp(key, UINTS[i].key)) continue;
        if (parse_u64(v, UINTS[i].lo, UINTS[i].hi, &u)) {
            char range[64];
            snprintf(range, sizeof(range), "'%%s' is not %zu..%zu", UINTS[i].lo, UINTS[i].hi);
            return fail(err, errlen, key, range, v);
        }
        *(unsigned *)((char *)cfg + UINTS[i].off) = (unsigned)u;
        return BL_OK;
    }
    static const struct {
        const char *key;
        size_t off, size;
    } STRS[] = {
        {"capabilities", offsetof(bl_config, capabilities), sizeof(cfg->capabilities)},
        {"metadata", offsetof(bl_config, metadata), sizeof(cfg->metadata)},
        {"task_exec_allow", offsetof(bl_config, task_exec_allow), sizeof(cfg->task_exec_allow)},
        {"epmd_pattern", offsetof(bl_config, epmd_pattern), sizeof(cfg->epmd_pattern)},
        {"epmd_hosts", offsetof(bl_config, epmd_hosts), sizeof(cfg->epmd_hosts)},
        {"hosts_file", offsetof(bl_config, hosts_file), sizeof(cfg->hosts_file)},
        {"dns_name", offsetof(bl_config, dns_name), sizeof(cfg->dns_name)},
        {"dns_basename", offsetof(bl_config, dns_basename), sizeof(cfg->dns_basename)},
        {"gossip_secret", offsetof(bl_config, gossip_secret), sizeof(cfg->gossip_secret)},
        {"data_dir", offsetof(bl_config, data_dir), sizeof(cfg->data_dir)},
        {"http_tls_cert", offsetof(bl_config, http_tls_cert), sizeof(cfg->http_tls_cert)},
        {"http_tls_key", offsetof(bl_config, http_tls_key), sizeof(cfg->http_tls_key)},
        {"tls_cert", offsetof(bl_config, tls_cert), sizeof(cfg->tls_cert)},
        {"tls_key", offsetof(bl_config, tls_key), sizeof(cfg->tls_key)},
        {"tls_ca", offsetof(bl_config, tls_ca), sizeof(cfg->tls_ca)},
        {"tls_ciphers", offsetof(bl_config, tls_ciphers), sizeof(cfg->tls_ciphers)},
    };
    for (size_t i = 0; i < sizeof(STRS) / sizeof(STRS[0]); i++) {
        if (strcmp(key, STRS[i].key)) continue;
        if (strlen(v) >= STRS[i].size) return fail(err, errlen, key, "'%.40s...' is too long", v);
        if (!strcmp(key, "metadata") && v[0]) {
            char buf[1024];
            snprintf(buf, sizeof(buf), "%s", v);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (!strchr(t, '=') || t[0] == '=')
                    return fail(err, errlen, key, "'%s' is not key=value", t);
        }
        if (!strcmp(key, "task_exec_allow") && v[0]) {
            char buf[2048];
            snprintf(buf, sizeof(buf), "%s", v);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (t[0] != '/')
                    return fail(err, errlen, key, "'%s' is not an absolute path", t);
        }
        if (!strcmp(key, "dns_basename") && !valid_alive(v))
            return fail(err, errlen, key, "'%s' is not a node name part (letters, digits, _ -)", v);
        snprintf((char *)cfg + STRS[i].off, STRS[i].size, "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "global_resolve")) {
        if (strcmp(v, "random_exit_name") && strcmp(v, "random_notify_name") &&
            strcmp(v, "notify_all_name"))
            return fail(err, errlen, key,
                        "'%s' is not random_exit_name, random_notify_name or notify_all_name", v);
        snprintf(cfg->global_resolve, sizeof(cfg->global_resolve), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "registry_policy")) {
        if (strcmp(v, "round_robin") && strcmp(v, "least_outstanding"))
            return fail(err, errlen, key, "'%s' is not round_robin or least_outstanding", v);
        snprintf(cfg->registry_policy, sizeof(cfg->registry_policy), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "global_mode")) {
        if (strcmp(v, "auto") && strcmp(v, "beam") && strcmp(v, "beamlet"))
            return fail(err, errlen, key, "'%s' is not auto, beam or beamlet", v);
        snprintf(cfg->global_mode, sizeof(cfg->global_mode), "%s", v);
        return BL_OK;
    }
    static const struct {
        const char *key;
        size_t off;
        double lo, hi;
    } DBLS[] = {
        {"disk_warn_percent", offsetof(bl_config, disk_warn_percent), 1, 100},
        {"disk_crit_percent", offsetof(bl_config, disk_crit_percent), 1, 100},
        {"mem_warn_percent", offsetof(bl_config, mem_warn_percent), 0, 99},
        {"mem_crit_percent", offsetof(bl_config, mem_crit_percent), 0, 99},
        {"load_warn_per_cpu", offsetof(bl_config, load_warn_per_cpu), 0.01, 1000},
        {"load_crit_per_cpu", offsetof(bl_config, load_crit_per_cpu), 0.01, 1000},
    };
    for (size_t i = 0; i < sizeof(DBLS) / sizeof(DBLS[0]); i++) {
        if (strcmp(key, DBLS[i].key)) continue;
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (!*v || *end || errno || !(d >= DBLS[i].lo && d <= DBLS[i].hi)) {
            char range[64];
            snprintf(range, sizeof(range), "'%%s' is not a number in %g..%g", DBLS[i].lo,
                     DBLS[i].hi);
            return fail(err, errlen, key, range, v);
        }
        *(double *)((char *)cfg + DBLS[i].off) = d;
        return BL_OK;
    }
    if (!strcmp(key, "alert_rules")) {
        char why[200];
        if (strlen(v) >= sizeof(cfg->alert_rules))
            return fail(err, errlen, key, "'%.40s...' is too long", v);
        if (bl__rules_check(v, why, sizeof(why)) < 0) return fail(err, errlen, key, "%s", why);
        snprintf(cfg->alert_rules, sizeof(cfg->alert_rules), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "health_checks")) {
        char why[200];
        if (strlen(v) >= sizeof(cfg->health_checks))
            return fail(err, errlen, key, "'%.40s...' is too long", v);
        bl_health_check_spec *specs = calloc(64, sizeof(*specs));
        if (!specs) snprintf(why, sizeof(why), "out of memory");
        int k = specs ? bl__checks_parse(v, specs, 64, why, sizeof(why)) : -1;
        free(specs);
        if (k < 0) return fail(err, errlen, key, "%s", why);
        snprintf(cfg->health_checks, sizeof(cfg->health_checks), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "alert_webhooks")) {
        if (strlen(v) >= sizeof(cfg->alert_webhooks))
            return fail(err, errlen, key, "'%.40s...' is too long", v);
        char buf[sizeof(cfg->alert_webhooks)];
        snprintf(buf, sizeof(buf), "%s", v);
        char *save = NULL;
        for (char *url = strtok_r(buf, ",", &save); url; url = strtok_r(NULL, ",", &save)) {
            while (*url == ' ') url++;
            if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
                return fail(err, errlen, key, "'%s' is not an http:// or https:// URL", url);
        }
        snprintf(cfg->alert_webhooks, sizeof(cfg->alert_webhooks), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "health_store")) {
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            cfg->health_store = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0"))
            cfg->health_store = 0;
        else
            return fail(err, errlen, key, "'%s' is not true or false", v);
        return BL_OK;
    }
    if (!strcmp(key, "tls_verify")) {
        if (strcmp(v, "peer") && strcmp(v, "none"))
            return fail(err, errlen, key, "'%s' is not peer or none", v);
        cfg->tls_verify = v[0] == 'p';
        return BL_OK;
    }
    if (!strcmp(key, "tls_versions")) {
        int lo, hi;
        if (strlen(v) >= sizeof(cfg->tls_versions) || bl__tls_versions(v, &lo, &hi))
            return fail(err, errlen, key, "'%s' is not a list of 1.2 and 1.3 (1.2,1.3)", v);
        snprintf(cfg->tls_versions, sizeof(cfg->tls_versions), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "epmd_local") || !strcmp(key, "gossip") || !strcmp(key, "exit_on_stdin_eof") ||
        !strcmp(key, "tls")) {
        int *dst = !strcmp(key, "gossip")       ? &cfg->gossip
                   : !strcmp(key, "epmd_local") ? &cfg->epmd_local
                   : !strcmp(key, "tls")        ? &cfg->tls
                                                : &cfg->exit_on_stdin_eof;
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            *dst = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0"))
            *dst = 0;
        else
            return fail(err, errlen, key, "'%s' is not true or false", v);
        return BL_OK;
    }
    if (!strcmp(key, "gossip_address") || !strcmp(key, "gossip_if")) {
        unsigned a, b, c, d;
        char extra;
        if (sscanf(v, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4 || a > 255 || b > 255 ||
            c > 255 || d > 255)
            return fail(err, errlen, key, "'%s' is not an IPv4 address", v);
        snprintf(key[7] == 'a' ? cfg->gossip_address : cfg->gossip_if, 64, "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "http_port")) {
        if (parse_u64(v, 0, 65535, &u))
            return fail(err, errlen, key, "'%s' is not 0..65535 (0: off)", v);
        cfg->http_port = (int)u;
        return BL_OK;
    }
    if (!strcmp(key, "http_address")) {
        unsigned a, b, c, d;
        char extra;
        if (sscanf(v, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4 || a > 255 || b > 255 ||
            c > 255 || d > 255)
            return fail(err, errlen, key, "'%s' is not an IPv4 address", v);
        snprintf(cfg->http_address, sizeof(cfg->http_address), "%s", v);
        return BL_OK;
    }
    if (!strcmp(key, "dashboard") || !strcmp(key, "http_public_read")) {
        int *dst = key[0] == 'd' ? &cfg->dashboard : &cfg->http_public_read;
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            *dst = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0"))
            *dst = 0;
        else
            return fail(err, errlen, key, "'%s' is not true or false", v);
        return BL_OK;
    }
    if (!strcmp(key, "gossip_port")) {
        if (parse_u64(v, 1, 65535, &u)) return fail(err, errlen, key, "'%s' is not 1..65535", v);
        cfg->gossip_port = (int)u;
        return BL_OK;
    }
    snprintf(err, errlen, "unknown configuration key '%s'", key);
    return BL_ECONFIG;
}

int bl_config_json_value(const char *key, json_t *val, char *buf, size_t buflen, char *err,
                         size_t errlen)
{
    if (json_is_string(val)) {
        snprintf(buf, buflen, "%s", json_string_value(val));
    } else if (json_is_integer(val)) {
        snprintf(buf, buflen, "%lld", (long long)json_integer_value(val));
    } else if (json_is_boolean(val)) {
        snprintf(buf, buflen, "%s", json_is_true(val) ? "true" : "false");
    } else if (json_is_object(val) && !strcmp(key, "metadata")) {
        size_t off = 0;
        const char *mk;
        json_t *mv;
        buf[0] = 0;
        json_object_foreach(val, mk, mv)
        {
            if (!json_is_string(mv)) {
                snprintf(err, errlen, "invalid metadata: value of '%s' is not a string", mk);
                return BL_ECONFIG;
            }
            off += (size_t)snprintf(buf + off, buflen > off ? buflen - off : 0, "%s%s=%s",
                                    off ? "," : "", mk, json_string_value(mv));
            if (off >= buflen) break;
        }
    } else if (json_is_array(val) && (!strcmp(key, "join") || !strcmp(key, "capabilities") ||
                                      !strcmp(key, "epmd_hosts") || !strcmp(key, "allow") ||
                                      !strcmp(key, "task_exec_allow"))) {
        size_t i, off = 0;
        json_t *e;
        buf[0] = 0;
        json_array_foreach(val, i, e)
        {
            if (!json_is_string(e)) {
                snprintf(err, errlen, "invalid %s: element %zu is not a string", key, i);
                return BL_ECONFIG;
            }
            off += (size_t)snprintf(buf + off, buflen > off ? buflen - off : 0, "%s%s",
                                    i ? "," : "", json_string_value(e));
            if (off >= buflen) break;
        }
    } else {
        snprintf(err, errlen, "invalid %s: wrong JSON type", key);
        return BL_ECONFIG;
    }
    return BL_OK;
}

int bl_config_load_file(bl_config *cfg, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "config file %s: %s (line %d)", path, je.text, je.line);
        return BL_ECONFIG;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "config file %s: top level must be a JSON object", path);
        return BL_ECONFIG;
    }
    const char *key;
    json_t *val;
    int rc = BL_OK;
    json_object_foreach(root, key, val)
    {
        char buf[BL_MAX_SEEDS * BL_NODE_LEN];
        if (key[0] == '_') continue; /* "_comment", "_doc": notes for people (docs/deploy.md) */
        if ((rc = bl_config_json_value(key, val, buf, sizeof(buf), err, errlen)) != BL_OK) break;
        if ((rc = bl_config_set(cfg, key, buf, err, errlen)) != BL_OK) break;
    }
    json_decref(root);
    return rc;
}

int bl_config_key_at(size_t i, const char **key, const char **flag, const char **env)
{
    if (i >= NOPTS) return 0;
    *key = OPTS[i].key;
    *flag = OPTS[i].flag;
    *env = OPTS[i].env;
    return 1;
}

int bl_config_from_args(bl_config *cfg, int argc, char **argv, bl_getenv_fn env, char *err,
                        size_t errlen)
{
    const char *file = env ? env("BEAMLET_CONFIG") : NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file name");
                return BL_ECONFIG;
            }
            file = argv[i + 1];
        }
    }
    int rc;
    if (file && (rc = bl_config_load_file(cfg, file, err, errlen)) != BL_OK) return rc;
    for (size_t k = 0; env && k < NOPTS; k++) {
        const char *v = OPTS[k].env ? env(OPTS[k].env) : NULL;
        if (v && *v && (rc = bl_config_set(cfg, OPTS[k].key, v, err, errlen)) != BL_OK) {
            size_t l = strlen(err);
            snprintf(err + l, errlen - l, " (from environment %s)", OPTS[k].env);
            return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (!strcmp(argv[i], "--no-publish")) {
            cfg->publish = 0;
            continue;
        }
        size_t k;
        for (k = 0; k < NOPTS; k++)
            if (OPTS[k].flag && !strcmp(argv[i], OPTS[k].flag)) break;
        if (k == NOPTS) {
            snprintf(err, errlen, "unknown option '%s' (see beamlet help)", argv[i]);
            return BL_ECONFIG;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "%s needs a value", argv[i]);
            return BL_ECONFIG;
        }
        if ((rc = bl_config_set(cfg, OPTS[k].key, argv[++i], err, errlen)) != BL_OK) return rc;
    }
    if (!cfg->name[0]) {
        snprintf(err, errlen, "a node name is needed: --sname NAME, --name NAME@HOST or NODE_NAME");
        return BL_ECONFIG;
    }
    const char *key; /* between keys: warning thresholds before critical ones */
    if (bl__rules_cross_check(cfg, &key, err, errlen) < 0) return BL_ECONFIG;
    return BL_OK;
}

void bl_config_usage(FILE *out)
{
    fprintf(out, "  %-28s %-32s %s\n", "flag", "environment / JSON key", "meaning");
    for (size_t k = 0; k < NOPTS; k++)
        fprintf(out, "  %-28s %-32s %s\n", OPTS[k].flag ? OPTS[k].flag : "-",
                OPTS[k].env ? OPTS[k].env : OPTS[k].key, OPTS[k].help);
    fprintf(out, "  %-28s %-32s %s\n", "--config FILE", "BEAMLET_CONFIG",
            "JSON file with the keys above");
    fprintf(out, "  %-28s %-32s %s\n", "--no-publish", "publish: false", "do not register in EPMD");
}
