/* config_values.c - a configuration key's current value as text, read back from a bl_config,
 * for `beamlet config show` and the SIGHUP reload's "what changed". One row per JSON key of
 * config.c's table; a key without a row here is shown with the text it was given. The secret
 * keys are named here too, so nothing prints them. */
#include "cli.h"

#include <stddef.h>

enum { K_STR, K_UINT, K_INT, K_BOOL, K_SIZE, K_LEVEL, K_FORMAT, K_JOIN };

typedef struct {
    const char *key;
    int kind;
    size_t off;
} kv;

#define S(k, f)                                                                                    \
    {                                                                                              \
        k, K_STR, offsetof(bl_config, f)                                                           \
    }
#define U(k, f)                                                                                    \
    {                                                                                              \
        k, K_UINT, offsetof(bl_config, f)                                                          \
    }
#define I(k, f)                                                                                    \
    {                                                                                              \
        k, K_INT, offsetof(bl_config, f)                                                           \
    }
#define B(k, f)                                                                                    \
    {                                                                                              \
        k, K_BOOL, offsetof(bl_config, f)                                                          \
    }
#define Z(k, f)                                                                                    \
    {                                                                                              \
        k, K_SIZE, offsetof(bl_config, f)                                                          \
    }

static const kv KV[] = {
    S("name", name),
    S("sname", name),
    S("node_name", name),
    S("cookie", cookie),
    S("cookie_file", cookie_file),
    S("role", role),
    S("cluster", cluster),
    {"join", K_JOIN, 0},
    {"log_level", K_LEVEL, 0},
    {"log_format", K_FORMAT, 0},
    U("net_ticktime", net_ticktime_s),
    Z("max_message_size", max_message_size),
    Z("send_queue_high_water", send_queue_high_water),
    U("connect_timeout_ms", connect_timeout_ms),
    U("handshake_timeout_ms", handshake_timeout_ms),
    U("reconnect_backoff_max_ms", reconnect_backoff_max_ms),
    U("max_handshakes_per_address", max_handshakes_per_address),
    S("allow", allow),
    U("max_connections", max_connections),
    U("max_handshake_rate_per_address", max_handshake_rate_per_address),
    S("proto_dist", proto_dist),
    S("listen_address", listen_address),
    I("listen_port", listen_port),
    B("publish", publish),
    B("exit_on_stdin_eof", exit_on_stdin_eof),
    B("tls", tls),
    S("tls_cert", tls_cert),
    S("tls_key", tls_key),
    S("tls_ca", tls_ca),
    S("tls_versions", tls_versions),
    S("tls_ciphers", tls_ciphers),
    S("global_resolve", global_resolve),
    S("global_mode", global_mode),
    S("data_dir", data_dir),
    S("registry_policy", registry_policy),
    U("registry_max_entries", registry_max_entries),
    S("capabilities", capabilities),
    U("task_concurrency", task_concurrency),
    S("task_exec_allow", task_exec_allow),
    U("task_exec_output_max", task_exec_output_max),
    S("metadata", metadata),
    U("heartbeat_interval_ms", heartbeat_interval_ms),
    U("failure_threshold", failure_threshold),
    U("election_timeout_ms", election_timeout_ms),
    U("remove_after_ms", remove_after_ms),
    U("event_log_size", event_log_size),
    B("epmd_local", epmd_local),
    S("epmd_pattern", epmd_pattern),
    S("epmd_hosts", epmd_hosts),
    S("hosts_file", hosts_file),
    S("dns_name", dns_name),
    S("dns_basename", dns_basename),
    U("discovery_interval_ms", discovery_interval_ms),
    B("gossip", gossip),
    S("gossip_address", gossip_address),
    I("gossip_port", gossip_port),
    S("gossip_if", gossip_if),
    S("gossip_secret", gossip_secret),
    U("gossip_interval_ms", gossip_interval_ms),
    U("health_interval_ms", health_interval_ms),
};

int bl__cfg_value(const bl_config *cfg, const char *key, char *buf, size_t len)
{
    static const char *LEVELS[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < sizeof(KV) / sizeof(KV[0]); i++) {
        if (strcmp(KV[i].key, key)) continue;
        const char *base = (const char *)cfg + KV[i].off;
        switch (KV[i].kind) {
        case K_STR:
            snprintf(buf, len, "%s", base);
            break;
        case K_UINT:
            snprintf(buf, len, "%u", *(const unsigned *)(const void *)base);
            break;
        case K_INT:
            snprintf(buf, len, "%d", *(const int *)(const void *)base);
            break;
        case K_BOOL:
            snprintf(buf, len, "%s", *(const int *)(const void *)base ? "true" : "false");
            break;
        case K_SIZE:
            snprintf(buf, len, "%zu", *(const size_t *)(const void *)base);
            break;
        case K_LEVEL:
            snprintf(buf, len, "%s", LEVELS[cfg->log_level <= BL_LOG_DEBUG ? cfg->log_level : 0]);
            break;
        case K_FORMAT:
            snprintf(buf, len, "%s", cfg->log_format == BL_LOG_JSON ? "json" : "text");
            break;
        case K_JOIN: {
            size_t off = 0;
            buf[0] = 0;
            for (int j = 0; j < cfg->njoin && off < len; j++)
                off += (size_t)snprintf(buf + off, len - off, "%s%s", j ? "," : "", cfg->join[j]);
            break;
        }
        }
        return 1;
    }
    return 0;
}

int bl__cfg_is_secret(const char *key)
{
    return !strcmp(key, "cookie") || strstr(key, "secret") || strstr(key, "password") ||
           strstr(key, "token") || strstr(key, "api_key");
}
