/* config.c - configuration from JSON file, environment and flags (see beamlet/config.h).
 *
 * KEYS below is the one table of configuration keys: each row names a key once with its type,
 * default, accepted values (range, choices or a check function), environment variable, flag,
 * whether it changes at run time (BL_CFG_LIVE) and may be set cluster-wide (BL_CFG_CLUSTER).
 * The file, the environment, the flags, `beamlet config validate|show`, the SIGHUP reload and
 * the cluster configuration service (services/cconf.c) all go through bl_config_set and
 * bl_config_get, so a key's rules live in its row and nowhere else.
 *
 * Adding a key: one row (the R_* macros keep it to one or two lines), in the group it belongs
 * to; a type the macros do not cover gets a check function next to the others. A test in
 * test/unit/test_config.c checks every row's default against bl_config_init. */
#include "beamlet/config.h"
#include "../runtime/internal.h"
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

typedef bl_config_keydef keydef;

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

static int valid_ipv4(const char *v)
{
    unsigned a, b, c, d;
    char extra;
    return sscanf(v, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 && a <= 255 && b <= 255 &&
           c <= 255 && d <= 255;
}

/* ---- check functions: (cfg, row, value) -> BL_OK, or BL_ECONFIG with err naming the key.
 * For BL_CFG_CUSTOM rows the check also stores the value; for the other types it only adds a
 * rule and the generic code stores. ---- */

/* The items of a list value (split at any of seps, blanks before an item skipped), each given
 * to ok(item, ud) in order: 0 when it takes them all, else -1 with the first item it refused
 * (or "out of memory") in bad. */
typedef int (*item_fn)(const char *item, void *ud);
static int each_item(const char *v, const char *seps, item_fn ok, void *ud, char *bad, size_t cap)
{
    char *buf = strdup(v);
    if (!buf) return snprintf(bad, cap, "out of memory"), -1;
    int rc = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, seps, &save); t && !rc; t = strtok_r(NULL, seps, &save)) {
        while (*t == ' ')
            t++;
        if (!ok(t, ud)) rc = -1, snprintf(bad, cap, "%s", t);
    }
    free(buf);
    return rc;
}

/* a list key's check: each item must pass ok, else "'ITEM' " + what */
static int check_items(const keydef *k, const char *v, const char *seps, item_fn ok,
                       const char *what, char *err, size_t errlen)
{
    char bad[BL_NODE_LEN + 1024], msg[sizeof(bad) + 64];
    if (each_item(v, seps, ok, NULL, bad, sizeof(bad)) == 0) return BL_OK;
    snprintf(msg, sizeof(msg), "'%s' %s", bad, what);
    return fail(err, errlen, k->key, "%s", msg);
}

static int set_name(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    const char *key = k->key;
    int longnames = !strcmp(key, "sname") ? 0 : !strcmp(key, "name") ? 1 : -1;
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

static int show_name(const bl_config *cfg, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", cfg->name), 1;
}

typedef struct seeds_acc {
    char seeds[BL_MAX_SEEDS][BL_NODE_LEN];
    int n, over;
} seeds_acc;

static int take_seed(const char *t, void *ud)
{
    seeds_acc *a = ud;
    if (!valid_node(t)) return 0;
    if (a->n >= BL_MAX_SEEDS) return a->over = 1, 0;
    snprintf(a->seeds[a->n++], BL_NODE_LEN, "%s", t);
    return 1;
}

static int set_join(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)k;
    seeds_acc a = {.n = 0};
    char bad[BL_NODE_LEN + 1024];
    if (each_item(v, ", ", take_seed, &a, bad, sizeof(bad)) < 0)
        return a.over ? fail(err, errlen, "join", "more than %s seeds", "32")
                      : fail(err, errlen, "join", "'%s' is not a node name NAME@HOST", bad);
    memcpy(cfg->join, a.seeds, sizeof(a.seeds[0]) * (size_t)a.n);
    cfg->njoin = a.n;
    return BL_OK;
}

static int show_join(const bl_config *cfg, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = 0;
    for (int j = 0; j < cfg->njoin && off < len; j++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", j ? "," : "", cfg->join[j]);
    return 1;
}

static const char *const LEVELS[] = {"error", "warn", "info", "debug"};

static int set_log_level(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, LEVELS[i])) {
            cfg->log_level = (bl_log_level)i;
            return BL_OK;
        }
    return fail(err, errlen, k->key, "'%s' is not one of error, warn, info, debug", v);
}

static int show_log_level(const bl_config *cfg, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", LEVELS[cfg->log_level <= BL_LOG_DEBUG ? cfg->log_level : 0]), 1;
}

static int set_log_format(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    if (!strcmp(v, "text"))
        cfg->log_format = BL_LOG_TEXT;
    else if (!strcmp(v, "json"))
        cfg->log_format = BL_LOG_JSON;
    else
        return fail(err, errlen, k->key, "'%s' is not text or json", v);
    return BL_OK;
}

static int show_log_format(const bl_config *cfg, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", cfg->log_format == BL_LOG_JSON ? "json" : "text"), 1;
}

static int check_nonempty(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return v[0] ? BL_OK : fail(err, errlen, k->key, "'%s' is empty or too long", v);
}

static int is_abs_path(const char *t, void *ud)
{
    (void)ud;
    return t[0] == '/';
}

/* task_exec_allow: absolute paths, comma separated */
static int check_abs_paths(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return check_items(k, v, ",", is_abs_path, "is not an absolute path", err, errlen);
}

static int check_cluster_name(bl_config *cfg, const keydef *k, const char *v, char *err,
                              size_t errlen)
{
    (void)cfg;
    if (!v[0]) return fail(err, errlen, k->key, "'%s' must be 1..63 characters", v);
    for (const char *p = v; *p; p++)
        if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return fail(err, errlen, k->key, "'%s' may hold only letters, digits, _ - .", v);
    return BL_OK;
}

static int check_ip(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, v, &a4) != 1 && inet_pton(AF_INET6, v, &a6) != 1)
        return fail(err, errlen, k->key, "'%s' is not an IPv4 or IPv6 address", v);
    return BL_OK;
}

static int check_ipv4(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return valid_ipv4(v) ? BL_OK : fail(err, errlen, k->key, "'%s' is not an IPv4 address", v);
}

static int is_key_value(const char *t, void *ud)
{
    (void)ud;
    return strchr(t, '=') && t[0] != '=';
}

static int check_metadata(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return check_items(k, v, ",", is_key_value, "is not key=value", err, errlen);
}

static int check_alive(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return valid_alive(v) ? BL_OK
                          : fail(err, errlen, k->key,
                                 "'%s' is not a node name part (letters, digits, _ -)", v);
}

static int check_alert_rules(bl_config *cfg, const keydef *k, const char *v, char *err,
                             size_t errlen)
{
    (void)cfg;
    char why[200];
    if (bl__rules_check(v, why, sizeof(why)) < 0) return fail(err, errlen, k->key, "%s", why);
    return BL_OK;
}

static int check_health_checks(bl_config *cfg, const keydef *k, const char *v, char *err,
                               size_t errlen)
{
    (void)cfg;
    char why[200];
    bl_health_check_spec *specs = calloc(64, sizeof(*specs));
    if (!specs) snprintf(why, sizeof(why), "out of memory");
    int n = specs ? bl__checks_parse(v, specs, 64, why, sizeof(why)) : -1;
    free(specs);
    return n < 0 ? fail(err, errlen, k->key, "%s", why) : BL_OK;
}

static int is_http_url(const char *t, void *ud)
{
    (void)ud;
    return !strncmp(t, "http://", 7) || !strncmp(t, "https://", 8);
}

static int check_urls(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return check_items(k, v, ",", is_http_url, "is not an http:// or https:// URL", err, errlen);
}

/* NAME@HOST, NAME@ (that name on any host) or HOST (any node on that host) */
static int is_allow_entry(const char *t, void *ud)
{
    (void)ud;
    const char *at = strchr(t, '@');
    char probe[BL_NODE_LEN + 8];
    snprintf(probe, sizeof(probe), "%s%s", at ? "" : "n@", t);
    if (at && !at[1]) snprintf(probe, sizeof(probe), "%sh", t);
    return strlen(t) < BL_NODE_LEN && valid_node(probe);
}

/* The allow-list: entries as net_kernel:allow/1 and dist_util:is_allowed take them. */
static int check_allow(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    (void)cfg;
    return check_items(k, v, ", ", is_allow_entry, "is not NAME@HOST, NAME@ or HOST", err, errlen);
}

static int check_tls_versions(bl_config *cfg, const keydef *k, const char *v, char *err,
                              size_t errlen)
{
    (void)cfg;
    int lo, hi;
    if (bl__tls_versions(v, &lo, &hi))
        return fail(err, errlen, k->key, "'%s' is not a list of 1.2 and 1.3 (1.2,1.3)", v);
    return BL_OK;
}

static int set_tls_verify(bl_config *cfg, const keydef *k, const char *v, char *err,
                          size_t errlen)
{
    if (strcmp(v, "peer") && strcmp(v, "none"))
        return fail(err, errlen, k->key, "'%s' is not peer or none", v);
    cfg->tls_verify = v[0] == 'p';
    return BL_OK;
}

static int show_tls_verify(const bl_config *cfg, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", cfg->tls_verify ? "peer" : "none"), 1;
}

/* ---- the table ---- */

#define F(field) offsetof(bl_config, field), sizeof(((bl_config *)0)->field)
#define LIVE BL_CFG_LIVE
#define CL BL_CFG_CLUSTER
#define LC (BL_CFG_LIVE | BL_CFG_CLUSTER)
#define SECRET BL_CFG_SECRET

/* string (check: NULL or an extra rule) */
#define R_STR(key, flag, env, field, flags, def, check, help)                                      \
    {                                                                                              \
        key, flag, env, BL_CFG_STR, flags, def, help, F(field), 0, 0, NULL, check, NULL            \
    }
/* one of the |-separated choices, kept as a string */
#define R_ENUM(key, flag, env, field, flags, def, choices, help)                                   \
    {                                                                                              \
        key, flag, env, BL_CFG_ENUM, flags, def, help, F(field), 0, 0, choices, NULL, NULL         \
    }
/* unsigned / int / size_t / double in [lo, hi]; unit: text after the range in errors */
#define R_UINT(key, flag, env, field, flags, def, lo, hi, unit, help)                              \
    {                                                                                              \
        key, flag, env, BL_CFG_UINT, flags, def, help, F(field), lo, hi, unit, NULL, NULL          \
    }
#define R_INT(key, flag, env, field, flags, def, lo, hi, unit, help)                               \
    {                                                                                              \
        key, flag, env, BL_CFG_INT, flags, def, help, F(field), lo, hi, unit, NULL, NULL           \
    }
#define R_SIZE(key, flag, env, field, flags, def, lo, hi, unit, help)                              \
    {                                                                                              \
        key, flag, env, BL_CFG_SIZE, flags, def, help, F(field), lo, hi, unit, NULL, NULL          \
    }
#define R_DBL(key, flag, env, field, flags, def, lo, hi, help)                                     \
    {                                                                                              \
        key, flag, env, BL_CFG_DOUBLE, flags, def, help, F(field), lo, hi, NULL, NULL, NULL        \
    }
/* true/false (also 1/0) in an int */
#define R_BOOL(key, flag, env, field, flags, def, help)                                            \
    {                                                                                              \
        key, flag, env, BL_CFG_BOOL, flags, def, help, F(field), 0, 0, NULL, NULL, NULL            \
    }
/* anything else: the check stores, show reads back */
#define R_CUSTOM(key, flag, env, flags, def, set, show, help)                                      \
    {                                                                                              \
        key, flag, env, BL_CFG_CUSTOM, flags, def, help, 0, 0, 0, 0, NULL, set, show               \
    }
/* another environment name for the row after it (that one wins when both are set) */
#define R_ALIAS(key, env, help)                                                                    \
    {                                                                                              \
        key, NULL, env, BL_CFG_CUSTOM, BL_CFG_ALIAS, "", help, 0, 0, 0, 0, NULL, NULL, NULL        \
    }

static const keydef KEYS[] = {
    /* identity and connections */
    R_CUSTOM("sname", "--sname", NULL, 0, "", set_name, show_name,
             "short node name: NAME or NAME@HOST"),
    R_CUSTOM("name", "--name", NULL, 0, "", set_name, show_name,
             "long node name: NAME@HOST.DOMAIN or NAME@IP"),
    R_ALIAS("node_name", "NODE_ID", "alias of NODE_NAME"),
    R_CUSTOM("node_name", NULL, "NODE_NAME", 0, "", set_name, show_name,
             "node name (short names unless the host has a dot)"),
    R_STR("cookie", "--cookie", "COOKIE", cookie, SECRET, "", check_nonempty,
          "distribution cookie (default: ~/.erlang.cookie); on a command line it shows in ps: "
          "prefer --cookie-file"),
    R_STR("cookie_file", "--cookie-file", "COOKIE_FILE", cookie_file, 0, "", check_nonempty,
          "file holding the cookie (mode 0400/0600: a warning when group or others can read it)"),
    R_ENUM("role", "--role", "ROLE", role, 0, "agent", "coordinator|agent|gateway|monitor",
           "coordinator/agent/gateway/monitor (default agent)"),
    R_STR("cluster", "--cluster", "CLUSTER_NAME", cluster, 0, "default", check_cluster_name,
          "cluster name (default \"default\")"),
    R_CUSTOM("join", "--join", "CLUSTER_SEEDS", 0, "", set_join, show_join,
             "nodes to connect to at start, comma separated"),
    R_CUSTOM("log_level", "--log-level", "BEAMLET_LOG_LEVEL", LC, "info", set_log_level,
             show_log_level, "error/warn/info/debug"),
    R_CUSTOM("log_format", "--log-format", "BEAMLET_LOG_FORMAT", LC, "text", set_log_format,
             show_log_format, "text/json"),
    R_UINT("net_ticktime", "--net-ticktime", "BEAMLET_NET_TICKTIME", net_ticktime_s, CL, "60", 1,
           3600, " seconds", "seconds, like kernel net_ticktime (60)"),
    R_SIZE("max_message_size", "--max-message-size", "BEAMLET_MAX_MESSAGE_SIZE", max_message_size,
           LC, "67108864", 1024, 2147483648.0, " bytes", "bytes per frame (64 MiB)"),
    R_SIZE("send_queue_high_water", "--send-queue-high-water", "BEAMLET_SEND_QUEUE_HIGH_WATER",
           send_queue_high_water, LC, "8388608", 65536, 4294967296.0, " bytes",
           "bytes queued per connection before sends are refused (8 MiB)"),
    R_UINT("connect_timeout_ms", "--connect-timeout-ms", "BEAMLET_CONNECT_TIMEOUT_MS",
           connect_timeout_ms, LC, "5000", 100, 600000, " ms",
           "per step of an outgoing connect: host lookup, EPMD, TCP (5000)"),
    R_UINT("handshake_timeout_ms", "--handshake-timeout-ms", "BEAMLET_HANDSHAKE_TIMEOUT_MS",
           handshake_timeout_ms, CL, "5000", 100, 600000, " ms",
           "per handshake packet, both directions (5000)"),
    R_UINT("reconnect_backoff_max_ms", "--reconnect-backoff-max-ms",
           "BEAMLET_RECONNECT_BACKOFF_MAX_MS", reconnect_backoff_max_ms, CL, "10000", 100, 600000,
           " ms", "cap of the reconnect backoff (10000)"),
    R_UINT("max_handshakes_per_address", "--max-handshakes-per-address",
           "BEAMLET_MAX_HANDSHAKES_PER_ADDRESS", max_handshakes_per_address, LC, "256", 1, 65536,
           "", "incoming handshakes at once from one address (256)"),
    R_STR("allow", "--allow", "BEAMLET_ALLOW", allow, LIVE, "", check_allow,
          "only these nodes connect, both ways, like net_kernel:allow/1: NAME@HOST, NAME@ or HOST, "
          "comma separated (empty: any)"),
    R_UINT("max_connections", "--max-connections", "BEAMLET_MAX_CONNECTIONS", max_connections, LIVE,
           "1024", 1, 1000000, "", "distribution connections up plus handshakes running (1024)"),
    R_UINT("max_handshake_rate_per_address", "--max-handshake-rate-per-address",
           "BEAMLET_MAX_HANDSHAKE_RATE_PER_ADDRESS", max_handshake_rate_per_address, LIVE, "200", 0,
           1000000, "", "incoming handshakes started per second from one address (200; 0: no bound)"),
    R_ENUM("proto_dist", "--proto-dist", "BEAMLET_PROTO_DIST", proto_dist, 0, "",
           "inet_tcp|inet6_tcp",
           "inet_tcp or inet6_tcp, like erl -proto_dist (from the addresses)"),
    R_STR("listen_address", "--listen-address", "BEAMLET_LISTEN_ADDRESS", listen_address, 0,
          "0.0.0.0", check_ip, "IPv4 or IPv6 address to listen on (0.0.0.0; :: with inet6_tcp)"),
    R_ALIAS("listen_port", "CLUSTER_PORT", "alias of BEAMLET_PORT"),
    R_INT("listen_port", "--port", "BEAMLET_PORT", listen_port, 0, "0", 0, 65535, "",
          "TCP port (0: any)"),
    R_BOOL("publish", "--publish", "BEAMLET_PUBLISH", publish, 0, "true",
           "register in EPMD: true/false (true)"),
    R_BOOL("tls", "--tls", "BEAMLET_TLS", tls, 0, "false",
           "TLS distribution (like erl -proto_dist inet_tls): true/false (false)"),
    R_STR("tls_cert", "--tls-cert", "BEAMLET_TLS_CERT", tls_cert, LIVE, "", NULL,
          "PEM certificate presented to peers"),
    R_STR("tls_key", "--tls-key", "BEAMLET_TLS_KEY", tls_key, LIVE, "", NULL,
          "PEM private key of tls_cert"),
    R_STR("tls_ca", "--tls-ca", "BEAMLET_TLS_CA", tls_ca, LIVE, "", NULL,
          "PEM CA certificates that peers' certificates chain to"),
    R_CUSTOM("tls_verify", "--tls-verify", "BEAMLET_TLS_VERIFY", 0, "peer", set_tls_verify,
             show_tls_verify,
             "peer: a verified peer certificate required both ways; none: no check (peer)"),
    R_STR("tls_versions", "--tls-versions", "BEAMLET_TLS_VERSIONS", tls_versions, 0, "1.2,1.3",
          check_tls_versions, "TLS versions: 1.2,1.3 (1.2,1.3)"),
    R_STR("tls_ciphers", "--tls-ciphers", "BEAMLET_TLS_CIPHERS", tls_ciphers, 0, "", NULL,
          "TLS 1.3 suites and TLS 1.2 ciphers, ':' separated (OpenSSL's defaults)"),
    R_BOOL("exit_on_stdin_eof", "--exit-on-stdin-eof", "BEAMLET_EXIT_ON_STDIN_EOF",
           exit_on_stdin_eof, 0, "false",
           "stop when stdin closes (for nodes run as a port): true/false (false)"),
    /* services */
    R_ENUM("global_resolve", "--global-resolve", "BEAMLET_GLOBAL_RESOLVE", global_resolve, CL,
           "random_exit_name", "random_exit_name|random_notify_name|notify_all_name",
           "name clash method: random_exit_name/random_notify_name/notify_all_name"),
    R_ENUM("global_mode", "--global-mode", "BEAMLET_GLOBAL_MODE", global_mode, 0, "auto",
           "auto|beam|beamlet",
           "global names through OTP global (beam), among C nodes (beamlet), or auto"),
    R_STR("data_dir", "--data-dir", "BEAMLET_DATA_DIR", data_dir, 0, "", NULL,
          "directory for durable state: the pub/sub outbox and dedup window"),
    R_ENUM("registry_policy", "--registry-policy", "BEAMLET_REGISTRY_POLICY", registry_policy, LC,
           "round_robin", "round_robin|least_outstanding",
           "service call balancing: round_robin/least_outstanding (round_robin)"),
    R_UINT("registry_max_entries", "--registry-max-entries", "BEAMLET_REGISTRY_MAX_ENTRIES",
           registry_max_entries, CL, "1024", 1, 1000000, "",
           "service entries registered per node (1024)"),
    /* health */
    R_UINT("health_interval_ms", "--health-interval-ms", "BEAMLET_HEALTH_INTERVAL_MS",
           health_interval_ms, CL, "5000", 100, 3600000, "", "node metrics sample interval (5000)"),
    R_BOOL("health_store", "--health-store", "BEAMLET_HEALTH_STORE", health_store, 0, "true",
           "keep events and metrics history on disk: true/false (true)"),
    R_UINT("history_raw_s", "--history-raw-s", "BEAMLET_HISTORY_RAW_S", history_raw_s, CL, "21600",
           60, 31536000, "", "raw metric samples kept (21600)"),
    R_UINT("history_1m_s", "--history-1m-s", "BEAMLET_HISTORY_1M_S", history_1m_s, CL, "172800",
           600, 31536000, "", "1 min rollups kept (172800)"),
    R_UINT("history_1h_s", "--history-1h-s", "BEAMLET_HISTORY_1H_S", history_1h_s, CL, "5184000",
           3600, 315360000, "", "1 h rollups kept (5184000)"),
    R_UINT("events_retention_s", "--events-retention-s", "BEAMLET_EVENTS_RETENTION_S",
           events_retention_s, CL, "2592000", 60, 315360000, "",
           "events and audit trail kept (2592000)"),
    R_UINT("events_max", "--events-max", "BEAMLET_EVENTS_MAX", events_max, CL, "100000", 10,
           100000000, "", "events kept at most (100000)"),
    R_STR("alert_rules", "--alert-rules", "BEAMLET_ALERT_RULES", alert_rules, LC, "",
          check_alert_rules,
          "JSON array of alert rules on top of the built-in ones (docs/health.md)"),
    R_STR("alert_webhooks", "--alert-webhooks", "BEAMLET_ALERT_WEBHOOKS", alert_webhooks, LC, "",
          check_urls, "http(s) URLs POSTed each alert change as JSON, comma separated"),
    R_STR("health_checks", "--health-checks", "BEAMLET_HEALTH_CHECKS", health_checks, 0, "",
          check_health_checks,
          "JSON array of health checks (http, tcp, command) this node runs (docs/health.md)"),
    R_UINT("check_consecutive", "--check-consecutive", "BEAMLET_CHECK_CONSECUTIVE",
           check_consecutive, CL, "2", 1, 100, "",
           "results in a row before a check changes state (2)"),
    R_DBL("disk_warn_percent", "--disk-warn-percent", "BEAMLET_DISK_WARN_PERCENT",
          disk_warn_percent, LC, "90", 1, 100, "a filesystem used above this is a warning (90)"),
    R_DBL("disk_crit_percent", "--disk-crit-percent", "BEAMLET_DISK_CRIT_PERCENT",
          disk_crit_percent, LC, "95", 1, 100, "a filesystem used above this is critical (95)"),
    R_DBL("mem_warn_percent", "--mem-warn-percent", "BEAMLET_MEM_WARN_PERCENT", mem_warn_percent,
          LC, "10", 0, 99, "memory available below this percent is a warning (10)"),
    R_DBL("mem_crit_percent", "--mem-crit-percent", "BEAMLET_MEM_CRIT_PERCENT", mem_crit_percent,
          LC, "5", 0, 99, "memory available below this percent is critical (5)"),
    R_DBL("load_warn_per_cpu", "--load-warn-per-cpu", "BEAMLET_LOAD_WARN_PER_CPU",
          load_warn_per_cpu, LC, "2", 0.01, 1000, "5 min load per CPU above this is a warning (2)"),
    R_DBL("load_crit_per_cpu", "--load-crit-per-cpu", "BEAMLET_LOAD_CRIT_PER_CPU",
          load_crit_per_cpu, LC, "4", 0.01, 1000, "5 min load per CPU above this is critical (4)"),
    R_UINT("store_max_mb", "--store-max-mb", "BEAMLET_STORE_MAX_MB", store_max_mb, CL, "64", 1,
           1048576, "", "size bound of the health database in MiB (64)"),
    /* membership, failure detection, election */
    R_STR("capabilities", "--capabilities", "BEAMLET_CAPABILITIES", capabilities, 0, "", NULL,
          "what this node offers, comma separated"),
    R_STR("metadata", "--metadata", "BEAMLET_METADATA", metadata, 0, "", check_metadata,
          "key=value pairs, comma separated"),
    R_UINT("heartbeat_interval_ms", "--heartbeat-interval-ms", "BEAMLET_HEARTBEAT_INTERVAL_MS",
           heartbeat_interval_ms, LC, "1000", 10, 600000, "", "membership heartbeat (1000)"),
    R_UINT("failure_threshold", "--failure-threshold", "BEAMLET_FAILURE_THRESHOLD",
           failure_threshold, LC, "3", 1, 100, "", "missed heartbeats before suspected (3)"),
    R_UINT("election_timeout_ms", "--election-timeout-ms", "BEAMLET_ELECTION_TIMEOUT_MS",
           election_timeout_ms, LC, "1500", 50, 600000, "", "leader election timeout base (1500)"),
    R_UINT("remove_after_ms", "--remove-after-ms", "BEAMLET_REMOVE_AFTER_MS", remove_after_ms, LC,
           "300000", 100, 86400000, "", "forget failed/left members after (300000)"),
    R_UINT("event_log_size", "--event-log-size", "BEAMLET_EVENT_LOG_SIZE", event_log_size, CL,
           "256", 1, 100000, "", "cluster events kept (256)"),
    /* tasks (docs/tasks.md) */
    R_UINT("task_concurrency", "--task-concurrency", "BEAMLET_TASK_CONCURRENCY", task_concurrency,
           0, "4", 1, 10000, "", "tasks this node runs at once as an agent (4)"),
    R_STR("task_exec_allow", "--task-exec-allow", "BEAMLET_TASK_EXEC_ALLOW", task_exec_allow, 0,
          "", check_abs_paths,
          "absolute paths the exec task type may run, comma separated (empty: exec off)"),
    R_UINT("task_exec_output_max", "--task-exec-output-max", "BEAMLET_TASK_EXEC_OUTPUT_MAX",
           task_exec_output_max, 0, "65536", 256, 16u << 20, "",
           "bytes of an exec task's stdout/stderr kept (65536)"),
    /* discovery */
    R_BOOL("epmd_local", "--epmd-local", "BEAMLET_EPMD_LOCAL", epmd_local, LC, "false",
           "discover nodes in the local EPMD: true/false (false)"),
    R_STR("epmd_pattern", "--epmd-pattern", "BEAMLET_EPMD_PATTERN", epmd_pattern, LC, "*", NULL,
          "glob on node names found in EPMD (*)"),
    R_STR("epmd_hosts", "--epmd-hosts", "BEAMLET_EPMD_HOSTS", epmd_hosts, LC, "", NULL,
          "hosts whose EPMD is polled, comma separated"),
    R_STR("hosts_file", "--hosts-file", "BEAMLET_HOSTS_FILE", hosts_file, LC, "", NULL,
          ".hosts.erlang-style file of hosts to poll"),
    R_STR("dns_name", "--dns-name", "BEAMLET_DNS_NAME", dns_name, LC, "", NULL,
          "DNS name polled for A records"),
    R_STR("dns_basename", "--dns-basename", "BEAMLET_DNS_BASENAME", dns_basename, LC, "beamlet",
          check_alive, "node name part for DNS hosts: basename@ip (beamlet)"),
    R_UINT("discovery_interval_ms", "--discovery-interval-ms", "BEAMLET_DISCOVERY_INTERVAL_MS",
           discovery_interval_ms, LC, "5000", 100, 3600000, "",
           "EPMD/hosts/DNS poll interval (5000)"),
    R_BOOL("gossip", "--gossip", "BEAMLET_GOSSIP", gossip, 0, "false",
           "libcluster-compatible UDP gossip: true/false (false)"),
    R_STR("gossip_address", "--gossip-address", "BEAMLET_GOSSIP_ADDRESS", gossip_address, 0,
          "233.252.1.32", check_ipv4, "multicast group (233.252.1.32)"),
    R_INT("gossip_port", "--gossip-port", "BEAMLET_GOSSIP_PORT", gossip_port, 0, "45892", 1, 65535,
          "", "UDP port (45892)"),
    R_STR("gossip_if", "--gossip-if", "BEAMLET_GOSSIP_IF", gossip_if, 0, "0.0.0.0", check_ipv4,
          "interface address for gossip (0.0.0.0)"),
    R_STR("gossip_secret", "--gossip-secret", "BEAMLET_GOSSIP_SECRET", gossip_secret, SECRET, "",
          NULL, "shared secret (libcluster's :secret)"),
    R_UINT("gossip_interval_ms", "--gossip-interval-ms", "BEAMLET_GOSSIP_INTERVAL_MS",
           gossip_interval_ms, CL, "5000", 100, 3600000, "", "gossip heartbeat interval (5000)"),
    /* HTTP gateway */
    R_INT("http_port", "--http-port", "BEAMLET_HTTP_PORT", http_port, 0, "-1", 0, 65535,
          " (0: off)", "HTTP gateway port, 0: off (8080 for role gateway, else off)"),
    R_STR("http_address", "--http-address", "BEAMLET_HTTP_ADDRESS", http_address, 0, "127.0.0.1",
          check_ipv4, "IPv4 address the gateway listens on (127.0.0.1)"),
    R_BOOL("dashboard", "--dashboard", "BEAMLET_DASHBOARD", dashboard, 0, "-1",
           "serve the dashboard at /: true/false (true)"),
    R_STR("http_tls_cert", "--http-tls-cert", "BEAMLET_HTTP_TLS_CERT", http_tls_cert, 0, "", NULL,
          "PEM certificate: HTTPS"),
    R_STR("http_tls_key", "--http-tls-key", "BEAMLET_HTTP_TLS_KEY", http_tls_key, 0, "", NULL,
          "PEM private key for HTTPS"),
    R_BOOL("http_public_read", "--http-public-read", "BEAMLET_HTTP_PUBLIC_READ", http_public_read,
           0, "false", "reads need no key off loopback too: true/false (false)"),
    R_UINT("http_max_connections", "--http-max-connections", "BEAMLET_HTTP_MAX_CONNECTIONS",
           http_max_connections, CL, "1024", 1, 65536, "", "concurrent HTTP connections (1024)"),
    R_UINT("http_max_body_bytes", "--http-max-body-bytes", "BEAMLET_HTTP_MAX_BODY_BYTES",
           http_max_body_bytes, CL, "1048576", 0, 1073741824.0, "", "request body limit (1048576)"),
    R_UINT("http_max_header_bytes", "--http-max-header-bytes", "BEAMLET_HTTP_MAX_HEADER_BYTES",
           http_max_header_bytes, CL, "32768", 4096, 16777216.0, "",
           "request line + headers limit (32768)"),
    R_UINT("http_timeout_s", "--http-timeout-s", "BEAMLET_HTTP_TIMEOUT_S", http_timeout_s, CL, "10",
           1, 3600, "", "idle HTTP connection closed after (10)"),
    R_UINT("http_request_timeout_s", "--http-request-timeout-s", "BEAMLET_HTTP_REQUEST_TIMEOUT_S",
           http_request_timeout_s, CL, "30", 1, 86400, "",
           "a request must arrive and its answer be read within (30)"),
    R_UINT("http_rate_limit", "--http-rate-limit", "BEAMLET_HTTP_RATE_LIMIT", http_rate_limit, CL,
           "50", 1, 1000000, "", "requests/s per key and per address (50)"),
    R_UINT("http_rate_burst", "--http-rate-burst", "BEAMLET_HTTP_RATE_BURST", http_rate_burst, CL,
           "100", 1, 1000000, "", "burst above the rate (100)"),
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

const bl_config_keydef *bl_config_key_info(size_t i)
{
    return i < NKEYS ? &KEYS[i] : NULL;
}

const bl_config_keydef *bl_config_key_find(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!(KEYS[i].flags & BL_CFG_ALIAS) && !strcmp(KEYS[i].key, key)) return &KEYS[i];
    return NULL;
}

static int set_number(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    char *base = (char *)cfg + k->off;
    if (k->type == BL_CFG_DOUBLE) {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (!*v || *end || errno || !(d >= k->lo && d <= k->hi)) {
            char range[96];
            snprintf(range, sizeof(range), "'%%s' is not a number in %g..%g", k->lo, k->hi);
            return fail(err, errlen, k->key, range, v);
        }
        *(double *)(void *)base = d;
        return BL_OK;
    }
    unsigned long long u;
    if (parse_u64(v, (unsigned long long)k->lo, (unsigned long long)k->hi, &u)) {
        char range[96];
        snprintf(range, sizeof(range), "'%%s' is not %.0f..%.0f%s", k->lo, k->hi,
                 k->choices ? k->choices : "");
        return fail(err, errlen, k->key, range, v);
    }
    if (k->type == BL_CFG_UINT)
        *(unsigned *)(void *)base = (unsigned)u;
    else if (k->type == BL_CFG_INT)
        *(int *)(void *)base = (int)u;
    else
        *(size_t *)(void *)base = (size_t)u;
    return BL_OK;
}

static int set_enum(bl_config *cfg, const keydef *k, const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    for (const char *c = k->choices; n && c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncmp(c, v, n)) {
            snprintf((char *)cfg + k->off, k->size, "%s", v);
            return BL_OK;
        }
        c = bar ? bar + 1 : c + len;
    }
    char list[256], fmt[300];
    snprintf(list, sizeof(list), "%s", k->choices);
    for (char *p = list; *p; p++)
        if (*p == '|') *p = '/';
    snprintf(fmt, sizeof(fmt), "'%%s' is not one of %s", list);
    return fail(err, errlen, k->key, fmt, v);
}

int bl_config_set(bl_config *cfg, const char *key, const char *v, char *err, size_t errlen)
{
    if (!v) return fail(err, errlen, key, "%s", "missing value");
    const keydef *k = bl_config_key_find(key);
    if (!k) {
        snprintf(err, errlen, "unknown configuration key '%s'", key);
        return BL_ECONFIG;
    }
    switch (k->type) {
    case BL_CFG_CUSTOM:
        return k->check(cfg, k, v, err, errlen);
    case BL_CFG_UINT:
    case BL_CFG_INT:
    case BL_CFG_SIZE:
    case BL_CFG_DOUBLE:
        return set_number(cfg, k, v, err, errlen);
    case BL_CFG_ENUM:
        return set_enum(cfg, k, v, err, errlen);
    case BL_CFG_BOOL: {
        int *dst = (int *)(void *)((char *)cfg + k->off);
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            *dst = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0"))
            *dst = 0;
        else
            return fail(err, errlen, key, "'%s' is not true or false", v);
        return BL_OK;
    }
    case BL_CFG_STR:
        if (strlen(v) >= k->size) return fail(err, errlen, key, "'%.40s...' is too long", v);
        if (k->check && k->check(cfg, k, v, err, errlen) != BL_OK) return BL_ECONFIG;
        snprintf((char *)cfg + k->off, k->size, "%s", v);
        return BL_OK;
    }
    snprintf(err, errlen, "unknown configuration key '%s'", key);
    return BL_ECONFIG;
}

/* ---- rules between keys: `config validate` and cluster-wide changes check the same ---- */

typedef struct {
    const char *key;     /* the key named in the message */
    const char *involve; /* ",key,key," that the rule reads */
    int (*broken)(const bl_config *c);
    const char *msg;
} between;

static int b_election(const bl_config *c)
{
    return c->election_timeout_ms <= c->heartbeat_interval_ms;
}
static int b_remove(const bl_config *c)
{
    return (unsigned long long)c->remove_after_ms <=
           (unsigned long long)c->heartbeat_interval_ms * c->failure_threshold;
}
static int b_gossip(const bl_config *c)
{
    return c->gossip_secret[0] && !c->gossip;
}
static int b_data_dir(const bl_config *c)
{
    return c->data_dir[0] && c->data_dir[0] != '/';
}
static int b_cookie_file(const bl_config *c)
{
    return c->cookie_file[0] && c->cookie_file[0] != '/';
}

static const between BETWEEN[] = {
    {"election_timeout_ms", ",election_timeout_ms,heartbeat_interval_ms,", b_election,
     "must be larger than heartbeat_interval_ms, or every heartbeat gap starts an election"},
    {"remove_after_ms", ",remove_after_ms,heartbeat_interval_ms,failure_threshold,", b_remove,
     "must be longer than heartbeat_interval_ms x failure_threshold (members would be forgotten "
     "before they are suspected)"},
    {"gossip_secret", ",gossip_secret,gossip,", b_gossip, "is set but gossip is false"},
    {"data_dir", ",data_dir,", b_data_dir, "'%s' must be an absolute path"},
    {"cookie_file", ",cookie_file,", b_cookie_file, "'%s' must be an absolute path"},
};

int bl_config_check_between(const bl_config *cfg, const char *involving, char *err, size_t errlen,
                            void (*each)(const char *key, const char *msg, void *ud), void *ud)
{
    int n = 0;
    char want[80];
    snprintf(want, sizeof(want), ",%s,", involving ? involving : "");
    for (size_t i = 0; i < sizeof(BETWEEN) / sizeof(BETWEEN[0]); i++) {
        const between *b = &BETWEEN[i];
        if (involving && !strstr(b->involve, want)) continue;
        if (!b->broken(cfg)) continue;
        char msg[1400], val[1024] = "";
        (void)bl_config_get(cfg, b->key, val, sizeof(val));
        snprintf(msg, sizeof(msg), b->msg, val);
        if (!n++ && err) snprintf(err, errlen, "invalid %s: %s", b->key, msg);
        if (each) each(b->key, msg, ud);
    }
    /* warning thresholds before critical ones, built-in and alert_rules (health/rules.c) */
    const char *key = NULL;
    char why[400];
    if ((!involving || strstr(involving, "_warn_") || strstr(involving, "_crit_") ||
         !strcmp(involving, "alert_rules")) &&
        bl__rules_cross_check(cfg, &key, why, sizeof(why)) < 0) {
        if (!n++ && err) snprintf(err, errlen, "%s", why);
        const char *colon = strstr(why, ": ");
        if (each) each(key ? key : "alert_rules", colon ? colon + 2 : why, ud);
    }
    return n ? BL_ECONFIG : BL_OK;
}

int bl_config_check(const bl_config *cfg, const char *key, const char *value, char *err,
                    size_t errlen)
{
    bl_config *tmp = malloc(sizeof(*tmp));
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return BL_ENOMEM;
    }
    memcpy(tmp, cfg, sizeof(*tmp));
    int rc = bl_config_set(tmp, key, value, err, errlen);
    free(tmp);
    return rc;
}

int bl_config_apply(bl_node *n, const char *key, const char *value, char *err, size_t errlen)
{
    const keydef *k = bl_config_key_find(key);
    if (!k) {
        snprintf(err, errlen, "unknown configuration key '%s'", key);
        return BL_ECONFIG;
    }
    if (!(k->flags & BL_CFG_LIVE)) {
        snprintf(err, errlen, "%s needs a restart", key);
        return BL_EINVAL;
    }
    bl_config *tmp = malloc(sizeof(*tmp));
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return BL_ENOMEM;
    }
    memcpy(tmp, &n->cfg, sizeof(*tmp));
    int rc = bl_config_set(tmp, key, value, err, errlen);
    if (rc == BL_OK) {
        bl__node_config_replace(n, tmp, key);
        /* the allow-list and connection limits, the TLS files: the runtime takes them anew */
        if (!strcmp(key, "allow") || !strncmp(key, "max_handshake", 13) ||
            !strcmp(key, "max_connections"))
            rc = bl_node_set_admission(n, &n->cfg);
        else if (!strncmp(key, "tls_", 4) && n->cfg.tls)
            rc = bl_node_reload_tls(n, &n->cfg);
        if (rc != BL_OK) snprintf(err, errlen, "%s: %s", key, bl_strerror(rc));
    }
    free(tmp);
    return rc;
}

int bl_config_get(const bl_config *cfg, const char *key, char *buf, size_t len)
{
    const keydef *k = bl_config_key_find(key);
    if (!k || !len) return 0;
    const char *base = (const char *)cfg + k->off;
    switch (k->type) {
    case BL_CFG_CUSTOM:
        return k->show ? k->show(cfg, buf, len) : 0;
    case BL_CFG_STR:
    case BL_CFG_ENUM:
        snprintf(buf, len, "%s", base);
        return 1;
    case BL_CFG_UINT:
        snprintf(buf, len, "%u", *(const unsigned *)(const void *)base);
        return 1;
    case BL_CFG_INT:
        snprintf(buf, len, "%d", *(const int *)(const void *)base);
        return 1;
    case BL_CFG_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)(const void *)base);
        return 1;
    case BL_CFG_DOUBLE:
        snprintf(buf, len, "%g", *(const double *)(const void *)base);
        return 1;
    case BL_CFG_BOOL: {
        int b = *(const int *)(const void *)base;
        snprintf(buf, len, "%s", b < 0 ? "-1" : b ? "true" : "false");
        return 1;
    }
    }
    return 0;
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
                                      !strcmp(key, "epmd_hosts") || !strcmp(key, "allow"))) {
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
    if (i >= NKEYS) return 0;
    *key = KEYS[i].key;
    *flag = KEYS[i].flag;
    *env = KEYS[i].env;
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
    for (size_t k = 0; env && k < NKEYS; k++) {
        const char *v = KEYS[k].env ? env(KEYS[k].env) : NULL;
        if (v && *v && (rc = bl_config_set(cfg, KEYS[k].key, v, err, errlen)) != BL_OK) {
            size_t l = strlen(err);
            snprintf(err + l, errlen - l, " (from environment %s)", KEYS[k].env);
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
        for (k = 0; k < NKEYS; k++)
            if (KEYS[k].flag && !strcmp(argv[i], KEYS[k].flag)) break;
        if (k == NKEYS) {
            snprintf(err, errlen, "unknown option '%s' (see beamlet help)", argv[i]);
            return BL_ECONFIG;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "%s needs a value", argv[i]);
            return BL_ECONFIG;
        }
        if ((rc = bl_config_set(cfg, KEYS[k].key, argv[++i], err, errlen)) != BL_OK) return rc;
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
    for (size_t k = 0; k < NKEYS; k++)
        fprintf(out, "  %-28s %-32s %s\n", KEYS[k].flag ? KEYS[k].flag : "-",
                KEYS[k].env ? KEYS[k].env : KEYS[k].key, KEYS[k].help);
    fprintf(out, "  %-28s %-32s %s\n", "--config FILE", "BEAMLET_CONFIG",
            "JSON file with the keys above");
    fprintf(out, "  %-28s %-32s %s\n", "--no-publish", "publish: false", "do not register in EPMD");
}
