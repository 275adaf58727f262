/* test_config.c - unit tests for configuration (c_src/cli/config.c, bl_config_init in node.c).
 *
 * Configuration arrives from a JSON file, the environment and flags, in that order of precedence,
 * and all of it goes through bl_config_set. Operators only see the error text, so every rejected
 * value must name its key; every accepted value must land in the right field. The environment is a
 * fake table here, so the tests never depend on the real one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "beamlet/beamlet.h"
#include "beamlet/config.h"

/* ---- helpers ---- */

/* Write text to a fresh temp file; returns its malloc'd path. */
static char *write_tmp(const char *text)
{
    char tmpl[] = "/tmp/bl_test_config_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return strdup(tmpl);
}

static void rm_tmp(char *path)
{
    unlink(path);
    free(path);
}

/* The fake environment: a NULL-terminated list of name, value pairs. */
static const char **fake_env;
static const char *env_lookup(const char *name)
{
    for (const char **e = fake_env; e && e[0]; e += 2)
        if (!strcmp(e[0], name)) return e[1];
    return NULL;
}

static int from_args(bl_config *cfg, const char **env, int argc, const char **argv, char *err,
                     size_t errlen)
{
    fake_env = env;
    bl_config_init(cfg);
    return bl_config_from_args(cfg, argc, (char **)argv, env_lookup, err, errlen);
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle))) fail_msg("'%s' does not contain '%s'", (hay), (needle));     \
    } while (0)

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    bl_config c;
    memset(&c, 0x5a, sizeof(c));
    bl_config_init(&c);
    assert_string_equal(c.name, "");
    assert_int_equal(c.longnames, 0);
    assert_string_equal(c.cookie, "");
    assert_string_equal(c.cookie_file, "");
    assert_string_equal(c.role, "agent");
    assert_string_equal(c.cluster, "default");
    assert_int_equal(c.njoin, 0);
    assert_int_equal(c.log_level, BL_LOG_INFO);
    assert_int_equal(c.log_format, BL_LOG_TEXT);
    assert_int_equal(c.net_ticktime_s, 60);
    assert_int_equal(c.max_message_size, 64u * 1024 * 1024);
    assert_int_equal(c.send_queue_high_water, 8u * 1024 * 1024);
    assert_int_equal(c.connect_timeout_ms, 5000);
    assert_int_equal(c.handshake_timeout_ms, 5000);
    assert_int_equal(c.reconnect_backoff_max_ms, 10000);
    assert_int_equal(c.max_handshakes_per_address, 256);
    assert_string_equal(c.allow, "");
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.max_handshake_rate_per_address, 200);
    assert_string_equal(c.proto_dist, "");
    assert_string_equal(c.listen_address, "0.0.0.0");
    assert_int_equal(c.listen_port, 0);
    assert_int_equal(c.publish, 1);
}

/* ---- bl_config_set, key by key ---- */

typedef enum { K_STR, K_UINT, K_INT, K_SIZE, K_ENUM } kind;
typedef struct {
    const char *key;
    const char *good; /* accepted */
    kind k;
    size_t off;           /* field */
    const char *want_str; /* K_STR: expected field value (NULL: good) */
    unsigned long long want_num;
    const char *bad[4]; /* rejected, NULL-terminated */
} keycase;

#define F(field) offsetof(bl_config, field)
static const keycase KEYS[] = {
    {"cookie", "s3cr3t", K_STR, F(cookie), NULL, 0, {"", NULL}},
    {"cookie_file", "/tmp/c", K_STR, F(cookie_file), NULL, 0, {"", NULL}},
    {"role", "coordinator", K_STR, F(role), NULL, 0, {"boss", "", "Agent", NULL}},
    {"cluster", "prod-eu.1", K_STR, F(cluster), NULL, 0, {"", "has space", "a/b", NULL}},
    {"log_level", "debug", K_ENUM, F(log_level), NULL, BL_LOG_DEBUG, {"trace", "", "DEBUG", NULL}},
    {"log_format", "json", K_ENUM, F(log_format), NULL, BL_LOG_JSON, {"xml", "", NULL}},
    {"net_ticktime", "30", K_UINT, F(net_ticktime_s), NULL, 30, {"0", "3601", "-5", "abc"}},
    {"max_message_size",
     "1024",
     K_SIZE,
     F(max_message_size),
     NULL,
     1024,
     {"1023", "2147483649", "1k", ""}},
    {"send_queue_high_water",
     "4294967296",
     K_SIZE,
     F(send_queue_high_water),
     NULL,
     4294967296ull,
     {"65535", "4294967297", "-1", NULL}},
    {"connect_timeout_ms",
     "100",
     K_UINT,
     F(connect_timeout_ms),
     NULL,
     100,
     {"99", "600001", "1.5", NULL}},
    {"handshake_timeout_ms",
     "600000",
     K_UINT,
     F(handshake_timeout_ms),
     NULL,
     600000,
     {"99", "x", NULL}},
    {"reconnect_backoff_max_ms",
     "2500",
     K_UINT,
     F(reconnect_backoff_max_ms),
     NULL,
     2500,
     {"600001", "", NULL}},
    {"max_handshakes_per_address",
     "65536",
     K_UINT,
     F(max_handshakes_per_address),
     NULL,
     65536,
     {"0", "65537", NULL}},
    {"allow",
     "a@h1, b@,h2.example",
     K_STR,
     F(allow),
     NULL,
     0,
     {"a@b@c", "@h", "b%d@h", NULL}},
    {"max_connections", "7", K_UINT, F(max_connections), NULL, 7, {"0", "1000001", "x", NULL}},
    {"max_handshake_rate_per_address",
     "0",
     K_UINT,
     F(max_handshake_rate_per_address),
     NULL,
     0,
     {"-1", "1000001", "", NULL}},
    {"proto_dist", "inet6_tcp", K_STR, F(proto_dist), NULL, 0, {"inet", "tcp", "", NULL}},
    {"listen_address",
     "127.0.0.1",
     K_STR,
     F(listen_address),
     NULL,
     0,
     {"256.0.0.1", "1.2.3", "1.2.3.4x", "localhost"}},
    {"listen_address", "::1", K_STR, F(listen_address), NULL, 0, {":::1", "::g", NULL}},
    {"listen_port", "65535", K_INT, F(listen_port), NULL, 65535, {"65536", "-1", "port", NULL}},
    {"publish", "false", K_INT, F(publish), NULL, 0, {"no", "", "2", NULL}},
};

/* Cluster, discovery and gossip keys (docs/cluster.md). */
static const keycase CLUSTER_KEYS[] = {
    {"capabilities", "db,cache", K_STR, F(capabilities), NULL, 0, {NULL}},
    {"metadata", "zone=a,rack=3", K_STR, F(metadata), NULL, 0, {"novalue", "=x", NULL}},
    {"heartbeat_interval_ms",
     "250",
     K_UINT,
     F(heartbeat_interval_ms),
     NULL,
     250,
     {"9", "600001", "x", NULL}},
    {"failure_threshold", "5", K_UINT, F(failure_threshold), NULL, 5, {"0", "101", NULL}},
    {"election_timeout_ms", "50", K_UINT, F(election_timeout_ms), NULL, 50, {"49", "", NULL}},
    {"remove_after_ms",
     "86400000",
     K_UINT,
     F(remove_after_ms),
     NULL,
     86400000,
     {"99", "86400001", NULL}},
    {"event_log_size", "100000", K_UINT, F(event_log_size), NULL, 100000, {"0", "100001", NULL}},
    {"epmd_local", "false", K_INT, F(epmd_local), NULL, 0, {"maybe", NULL}},
    {"epmd_pattern", "web*", K_STR, F(epmd_pattern), NULL, 0, {NULL}},
    {"epmd_hosts", "h1,h2", K_STR, F(epmd_hosts), NULL, 0, {NULL}},
    {"hosts_file", "/etc/hosts.erlang", K_STR, F(hosts_file), NULL, 0, {NULL}},
    {"dns_name", "nodes.example.com", K_STR, F(dns_name), NULL, 0, {NULL}},
    {"dns_basename", "app_1", K_STR, F(dns_basename), NULL, 0, {"a.b", "", "a@b", NULL}},
    {"discovery_interval_ms", "100", K_UINT, F(discovery_interval_ms), NULL, 100, {"99", NULL}},
    {"gossip", "true", K_INT, F(gossip), NULL, 1, {"yes", NULL}},
    {"gossip_address", "239.1.2.3", K_STR, F(gossip_address), NULL, 0, {"239.1.2", "x", NULL}},
    {"gossip_port", "1", K_INT, F(gossip_port), NULL, 1, {"0", "65536", NULL}},
    {"gossip_if", "192.168.1.1", K_STR, F(gossip_if), NULL, 0, {"1.2.3.256", NULL}},
    {"gossip_secret", "s3cret", K_STR, F(gossip_secret), NULL, 0, {NULL}},
    {"gossip_interval_ms",
     "3600000",
     K_UINT,
     F(gossip_interval_ms),
     NULL,
     3600000,
     {"3600001", NULL}},
};

static unsigned long long field_num(const bl_config *c, const keycase *kc)
{
    const char *p = (const char *)c + kc->off;
    switch (kc->k) {
    case K_UINT:
        return *(const unsigned *)p;
    case K_INT:
        return (unsigned long long)*(const int *)p;
    case K_SIZE:
        return *(const size_t *)p;
    case K_ENUM:
        return (unsigned long long)*(const int *)p;
    default:
        return 0;
    }
}

static void check_keys(const keycase *keys, size_t n)
{
    /* a value longer than any field, for the string keys */
    static char huge[5000];
    memset(huge, 'h', sizeof(huge) - 1);
    for (size_t i = 0; i < n; i++) {
        const keycase *kc = &keys[i];
        bl_config c;
        char err[512] = "";
        bl_config_init(&c);
        if (bl_config_set(&c, kc->key, kc->good, err, sizeof(err)) != BL_OK)
            fail_msg("%s=%s rejected: %s", kc->key, kc->good, err);
        if (kc->k == K_STR)
            assert_string_equal((const char *)&c + kc->off, kc->want_str ? kc->want_str : kc->good);
        else if (field_num(&c, kc) != kc->want_num)
            fail_msg("%s=%s gave %llu", kc->key, kc->good, field_num(&c, kc));
        for (int b = 0; b < 4 && kc->bad[b]; b++) {
            bl_config before = c;
            err[0] = 0;
            int rc = bl_config_set(&c, kc->key, kc->bad[b], err, sizeof(err));
            if (rc != BL_ECONFIG) fail_msg("%s='%s' accepted", kc->key, kc->bad[b]);
            assert_contains(err, kc->key);
            /* a rejected value leaves the field alone */
            assert_memory_equal((const char *)&before + kc->off, (const char *)&c + kc->off,
                                kc->k == K_STR ? 1 : sizeof(int));
        }
        /* NULL value; too long a value */
        err[0] = 0;
        assert_int_equal(bl_config_set(&c, kc->key, NULL, err, sizeof(err)), BL_ECONFIG);
        assert_contains(err, kc->key);
        if (kc->k == K_STR) {
            err[0] = 0;
            if (bl_config_set(&c, kc->key, huge, err, sizeof(err)) != BL_ECONFIG)
                fail_msg("%s accepted a %zu-byte value", kc->key, strlen(huge));
            assert_contains(err, kc->key);
        }
    }
}

static void test_set_each_key(void **state)
{
    (void)state;
    check_keys(KEYS, sizeof(KEYS) / sizeof(KEYS[0]));
}

static void test_set_cluster_keys(void **state)
{
    (void)state;
    check_keys(CLUSTER_KEYS, sizeof(CLUSTER_KEYS) / sizeof(CLUSTER_KEYS[0]));
    /* metadata and capabilities as JSON object / array */
    char *path = write_tmp("{\"metadata\": {\"zone\": \"a\", \"rack\": \"3\"},"
                           " \"capabilities\": [\"db\", \"cache\"],"
                           " \"epmd_hosts\": [\"h1\", \"h2\"]}");
    bl_config c;
    char err[512] = "";
    bl_config_init(&c);
    if (bl_config_load_file(&c, path, err, sizeof(err)) != BL_OK) fail_msg("%s", err);
    assert_contains(c.metadata, "zone=a");
    assert_contains(c.metadata, "rack=3");
    assert_string_equal(c.capabilities, "db,cache");
    assert_string_equal(c.epmd_hosts, "h1,h2");
    rm_tmp(path);
    path = write_tmp("{\"metadata\": {\"zone\": 1}}");
    err[0] = 0;
    assert_int_equal(bl_config_load_file(&c, path, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "metadata");
    rm_tmp(path);
}

/* The TLS distribution keys: defaults, values, rejections naming the key, the JSON bool. */
static void test_tls_keys(void **state)
{
    (void)state;
    bl_config c;
    char err[512] = "";
    bl_config_init(&c);
    assert_int_equal(c.tls, 0);
    assert_int_equal(c.tls_verify, 1);
    assert_string_equal(c.tls_versions, "1.2,1.3");
    assert_int_equal(bl_config_set(&c, "tls", "true", err, sizeof(err)), BL_OK);
    assert_int_equal(c.tls, 1);
    assert_int_equal(bl_config_set(&c, "tls_verify", "none", err, sizeof(err)), BL_OK);
    assert_int_equal(c.tls_verify, 0);
    assert_int_equal(bl_config_set(&c, "tls_versions", "1.3", err, sizeof(err)), BL_OK);
    assert_string_equal(c.tls_versions, "1.3");
    assert_int_equal(bl_config_set(&c, "tls_versions", "tlsv1.2,tlsv1.3", err, sizeof(err)), BL_OK);
    assert_int_equal(bl_config_set(&c, "tls_cert", "/etc/b/n.pem", err, sizeof(err)), BL_OK);
    assert_string_equal(c.tls_cert, "/etc/b/n.pem");
    static const char *const bad[][2] = {{"tls", "yes"},
                                         {"tls_verify", "peers"},
                                         {"tls_versions", "1.1"},
                                         {"tls_versions", ""},
                                         {"tls_versions", "1.2,ssl3"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        if (bl_config_set(&c, bad[i][0], bad[i][1], err, sizeof(err)) != BL_ECONFIG)
            fail_msg("%s accepted '%s'", bad[i][0], bad[i][1]);
        assert_contains(err, bad[i][0]);
    }
    char *path = write_tmp("{\"tls\": true, \"tls_ca\": \"/etc/b/ca.pem\"}");
    bl_config_init(&c);
    if (bl_config_load_file(&c, path, err, sizeof(err)) != BL_OK) fail_msg("%s", err);
    assert_int_equal(c.tls, 1);
    assert_string_equal(c.tls_ca, "/etc/b/ca.pem");
    rm_tmp(path);
}

static void test_set_enum_values(void **state)
{
    (void)state;
    bl_config c;
    char err[256];
    bl_config_init(&c);
    const char *lv[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bl_config_set(&c, "log_level", lv[i], err, sizeof(err)), BL_OK);
        assert_int_equal(c.log_level, i);
    }
    const char *roles[] = {"coordinator", "agent", "gateway", "monitor"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bl_config_set(&c, "role", roles[i], err, sizeof(err)), BL_OK);
        assert_string_equal(c.role, roles[i]);
    }
    assert_int_equal(bl_config_set(&c, "log_format", "text", err, sizeof(err)), BL_OK);
    assert_int_equal(c.log_format, BL_LOG_TEXT);
    assert_int_equal(bl_config_set(&c, "publish", "1", err, sizeof(err)), BL_OK);
    assert_int_equal(c.publish, 1);
    assert_int_equal(bl_config_set(&c, "publish", "0", err, sizeof(err)), BL_OK);
    assert_int_equal(c.publish, 0);
    assert_int_equal(bl_config_set(&c, "publish", "true", err, sizeof(err)), BL_OK);
    assert_int_equal(c.publish, 1);
    assert_int_equal(bl_config_set(&c, "listen_port", "0", err, sizeof(err)), BL_OK);
    assert_int_equal(c.listen_port, 0);
    /* a 255-character cookie fits, 256 does not */
    char cookie[300];
    memset(cookie, 'k', 256);
    cookie[256] = 0;
    assert_int_equal(bl_config_set(&c, "cookie", cookie, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "cookie");
    cookie[255] = 0;
    assert_int_equal(bl_config_set(&c, "cookie", cookie, err, sizeof(err)), BL_OK);
    assert_int_equal(strlen(c.cookie), 255);
    /* a 64-character cluster name does not fit */
    char cl[70];
    memset(cl, 'c', 64);
    cl[64] = 0;
    assert_int_equal(bl_config_set(&c, "cluster", cl, err, sizeof(err)), BL_ECONFIG);
    cl[63] = 0;
    assert_int_equal(bl_config_set(&c, "cluster", cl, err, sizeof(err)), BL_OK);
}

static void test_set_names(void **state)
{
    (void)state;
    bl_config c;
    char err[512];
    bl_config_init(&c);
    assert_int_equal(bl_config_set(&c, "sname", "alpha", err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "alpha");
    assert_int_equal(c.longnames, 0);
    assert_int_equal(bl_config_set(&c, "sname", "alpha@host", err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "alpha@host");
    assert_int_equal(c.longnames, 0);
    assert_int_equal(bl_config_set(&c, "name", "beta@host.example.com", err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "beta@host.example.com");
    assert_int_equal(c.longnames, 1);
    /* node_name picks long names when the host has a dot */
    assert_int_equal(bl_config_set(&c, "node_name", "g@10.0.0.1", err, sizeof(err)), BL_OK);
    assert_int_equal(c.longnames, 1);
    assert_int_equal(bl_config_set(&c, "node_name", "g@box", err, sizeof(err)), BL_OK);
    assert_int_equal(c.longnames, 0);
    assert_int_equal(bl_config_set(&c, "node_name", "g", err, sizeof(err)), BL_OK);
    assert_int_equal(c.longnames, 0);
    assert_string_equal(c.name, "g");

    const char *keys[] = {"sname", "name", "node_name"};
    const char *bad[] = {"", "@host", "a@", "a@b@c", "sp ace", "dot.ted@h", "x/y"};
    for (size_t k = 0; k < 3; k++) {
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            err[0] = 0;
            if (bl_config_set(&c, keys[k], bad[b], err, sizeof(err)) != BL_ECONFIG)
                fail_msg("%s='%s' accepted", keys[k], bad[b]);
            assert_contains(err, keys[k]);
            assert_string_equal(c.name, "g"); /* unchanged */
        }
    }
    char longname[BL_NODE_LEN + 10];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(bl_config_set(&c, "sname", longname, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "sname");
}

static void test_set_join(void **state)
{
    (void)state;
    bl_config c;
    char err[512];
    bl_config_init(&c);
    assert_int_equal(bl_config_set(&c, "join", "a@h1, b@h2,c@h3", err, sizeof(err)), BL_OK);
    assert_int_equal(c.njoin, 3);
    assert_string_equal(c.join[0], "a@h1");
    assert_string_equal(c.join[1], "b@h2");
    assert_string_equal(c.join[2], "c@h3");
    assert_int_equal(bl_config_set(&c, "join", "", err, sizeof(err)), BL_OK);
    assert_int_equal(c.njoin, 0);
    err[0] = 0;
    assert_int_equal(bl_config_set(&c, "join", "a@h1,nohost", err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "join");
    assert_contains(err, "nohost");
    /* 32 seeds fit, 33 do not */
    char list[33 * 16] = "";
    for (int i = 0; i < 33; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%sn%d@h", i ? "," : "", i);
        strcat(list, one);
        if (i == 31) {
            assert_int_equal(bl_config_set(&c, "join", list, err, sizeof(err)), BL_OK);
            assert_int_equal(c.njoin, 32);
            assert_string_equal(c.join[31], "n31@h");
        }
    }
    err[0] = 0;
    assert_int_equal(bl_config_set(&c, "join", list, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "join");
}

/* the list keys share one item walk: each refusal names the first bad item and says why;
 * blanks before an item are skipped */
static void test_list_keys(void **state)
{
    (void)state;
    static const struct {
        const char *key, *good, *bad, *why;
    } C[] = {
        {"task_exec_allow", "/bin/true, /usr/bin/env", "/bin/true,bin/x,/y",
         "invalid task_exec_allow: 'bin/x' is not an absolute path"},
        {"metadata", "zone=a, rack=3", "zone=a,=x,novalue",
         "invalid metadata: '=x' is not key=value"},
        {"alert_webhooks", "http://a/x, https://b/y", "http://a, ftp://b,x",
         "invalid alert_webhooks: 'ftp://b' is not an http:// or https:// URL"},
        {"allow", "a@h1, b@,h2", "a@h1 a@b@c,h",
         "invalid allow: 'a@b@c' is not NAME@HOST, NAME@ or HOST"},
        {"join", "a@h1, b@h2", "a@h1,,nohost",
         "invalid join: 'nohost' is not a node name NAME@HOST"},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        bl_config c;
        char err[512] = "";
        bl_config_init(&c);
        assert_int_equal(bl_config_set(&c, C[i].key, C[i].good, err, sizeof(err)), BL_OK);
        assert_int_equal(bl_config_set(&c, C[i].key, C[i].bad, err, sizeof(err)), BL_ECONFIG);
        assert_string_equal(err, C[i].why);
    }
    bl_config c;
    char err[512] = "";
    bl_config_init(&c);
    char list[34 * 16] = "";
    for (int i = 0; i < 33; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%sn%d@h", i ? "," : "", i);
        strcat(list, one);
    }
    assert_int_equal(bl_config_set(&c, "join", list, err, sizeof(err)), BL_ECONFIG);
    assert_string_equal(err, "invalid join: more than 32 seeds");
    assert_int_equal(c.njoin, 0); /* nothing taken from a refused value */
}

static void test_set_unknown_key(void **state)
{
    (void)state;
    bl_config c;
    char err[256] = "";
    bl_config_init(&c);
    assert_int_equal(bl_config_set(&c, "no_such_key", "1", err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "no_such_key");
    /* a tiny error buffer is truncated, never overrun */
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(bl_config_set(&c, "net_ticktime", "0", tiny, 5), BL_ECONFIG);
    assert_int_equal(tiny[4], 0);
    assert_int_equal(tiny[5], 'x');
}

/* ---- JSON files ---- */

static void test_file_all_types(void **state)
{
    (void)state;
    char *path = write_tmp("{\n"
                           "  \"sname\": \"filenode\",\n"
                           "  \"cookie\": \"fromfile\",\n"
                           "  \"role\": \"gateway\",\n"
                           "  \"net_ticktime\": 15,\n"
                           "  \"max_message_size\": 1048576,\n"
                           "  \"publish\": false,\n"
                           "  \"listen_port\": 4370,\n"
                           "  \"join\": [\"a@h1\", \"b@h2\"]\n"
                           "}\n");
    bl_config c;
    char err[512] = "";
    bl_config_init(&c);
    if (bl_config_load_file(&c, path, err, sizeof(err)) != BL_OK) fail_msg("load: %s", err);
    assert_string_equal(c.name, "filenode");
    assert_string_equal(c.cookie, "fromfile");
    assert_string_equal(c.role, "gateway");
    assert_int_equal(c.net_ticktime_s, 15);
    assert_int_equal(c.max_message_size, 1048576);
    assert_int_equal(c.publish, 0);
    assert_int_equal(c.listen_port, 4370);
    assert_int_equal(c.njoin, 2);
    assert_string_equal(c.join[1], "b@h2");
    /* untouched keys keep their defaults */
    assert_int_equal(c.max_handshakes_per_address, 256);
    rm_tmp(path);

    /* join as a comma-separated string; publish true */
    path = write_tmp("{\"join\": \"x@h, y@h\", \"publish\": true}");
    bl_config_init(&c);
    assert_int_equal(bl_config_load_file(&c, path, err, sizeof(err)), BL_OK);
    assert_int_equal(c.njoin, 2);
    assert_string_equal(c.join[0], "x@h");
    assert_string_equal(c.join[1], "y@h");
    assert_int_equal(c.publish, 1);
    rm_tmp(path);

    /* an empty object changes nothing */
    path = write_tmp("{}");
    bl_config_init(&c);
    assert_int_equal(bl_config_load_file(&c, path, err, sizeof(err)), BL_OK);
    assert_string_equal(c.role, "agent");
    rm_tmp(path);
}

static void test_file_errors(void **state)
{
    (void)state;
    struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"net_ticktime\": \"soon\"}", "net_ticktime"}, /* bad value */
        {"{\"net_ticktime\": 1.5}", "net_ticktime"},      /* wrong JSON type: real */
        {"{\"role\": [\"agent\"]}", "role"},              /* wrong JSON type: array */
        {"{\"cookie\": null}", "cookie"},                 /* wrong JSON type: null */
        {"{\"cluster\": {\"a\": 1}}", "cluster"},         /* wrong JSON type: object */
        {"{\"join\": [\"a@h\", 5]}", "join"},             /* non-string join element */
        {"{\"join\": [\"nohost\"]}", "join"},             /* bad join element */
        {"{\"net_ticktime\": -5}", "net_ticktime"},       /* negative integer */
        {"{\"bogus\": 1}", "bogus"},                      /* unknown key */
        {"[1, 2]", "object"},                             /* not an object */
        {"{\"sname\": \"a\", \"sname\": \"b\"}", "line"}, /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = write_tmp(cases[i].json);
        bl_config c;
        char err[512] = "";
        bl_config_init(&c);
        if (bl_config_load_file(&c, path, err, sizeof(err)) != BL_ECONFIG)
            fail_msg("accepted: %s", cases[i].json);
        assert_contains(err, cases[i].needle);
        rm_tmp(path);
    }
    /* invalid JSON: the message names the file and the line */
    char *path = write_tmp("{\n  \"sname\": \"a\",\n  \"cookie\": oops\n}\n");
    bl_config c;
    char err[512] = "";
    bl_config_init(&c);
    assert_int_equal(bl_config_load_file(&c, path, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, path);
    assert_contains(err, "line 3");
    rm_tmp(path);
    /* a missing file */
    err[0] = 0;
    assert_int_equal(bl_config_load_file(&c, "/nonexistent/beamlet.json", err, sizeof(err)),
                     BL_ECONFIG);
    assert_contains(err, "/nonexistent/beamlet.json");
}

/* ---- the whole chain ---- */

static void test_precedence(void **state)
{
    (void)state;
    char *path = write_tmp(
        "{\"sname\": \"fromfile\", \"cookie\": \"filecookie\", "
        "\"role\": \"monitor\", \"net_ticktime\": 11, \"max_handshakes_per_address\": 3}");
    bl_config c;
    char err[512] = "";

    /* file only (through --config) */
    const char *argv1[] = {"--config", path};
    assert_int_equal(from_args(&c, NULL, 2, argv1, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "fromfile");
    assert_string_equal(c.cookie, "filecookie");
    assert_int_equal(c.net_ticktime_s, 11);

    /* file through BEAMLET_CONFIG, environment over file */
    const char *env2[] = {
        "BEAMLET_CONFIG", path, "COOKIE", "envcookie", "BEAMLET_NET_TICKTIME", "22",
        "ROLE",           "",   NULL};
    assert_int_equal(from_args(&c, env2, 0, NULL, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "fromfile");
    assert_string_equal(c.cookie, "envcookie");
    assert_int_equal(c.net_ticktime_s, 22);
    assert_string_equal(c.role, "monitor"); /* an empty variable counts as unset */
    assert_int_equal(c.max_handshakes_per_address, 3);

    /* flags over environment over file */
    const char *argv3[] = {"--sname", "fromflag", "--net-ticktime", "33", "--no-publish"};
    assert_int_equal(from_args(&c, env2, 5, argv3, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "fromflag");
    assert_string_equal(c.cookie, "envcookie");
    assert_int_equal(c.net_ticktime_s, 33);
    assert_int_equal(c.publish, 0);
    assert_int_equal(c.max_handshakes_per_address, 3);

    /* --config on the command line beats BEAMLET_CONFIG */
    char *other = write_tmp("{\"sname\": \"otherfile\"}");
    const char *argv4[] = {"--config", other};
    assert_int_equal(from_args(&c, env2, 2, argv4, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "otherfile");
    assert_int_equal(c.max_handshakes_per_address, 256);
    rm_tmp(other);

    /* NODE_NAME from the environment; every other flag form */
    const char *env5[] = {"NODE_NAME", "envnode@host.domain", "CLUSTER_SEEDS", "s1@h,s2@h", NULL};
    const char *argv5[] = {"--cookie",
                           "c",
                           "--role",
                           "coordinator",
                           "--cluster",
                           "k",
                           "--log-level",
                           "warn",
                           "--log-format",
                           "json",
                           "--max-message-size",
                           "2048",
                           "--send-queue-high-water",
                           "65536",
                           "--connect-timeout-ms",
                           "101",
                           "--handshake-timeout-ms",
                           "102",
                           "--reconnect-backoff-max-ms",
                           "103",
                           "--max-handshakes-per-address",
                           "4",
                           "--listen-address",
                           "10.1.2.3",
                           "--port",
                           "4000",
                           "--publish",
                           "true",
                           "--cookie-file",
                           "/tmp/cf"};
    int argc5 = (int)(sizeof(argv5) / sizeof(argv5[0]));
    if (from_args(&c, env5, argc5, argv5, err, sizeof(err)) != BL_OK) fail_msg("%s", err);
    assert_string_equal(c.name, "envnode@host.domain");
    assert_int_equal(c.longnames, 1);
    assert_int_equal(c.njoin, 2);
    assert_string_equal(c.join[1], "s2@h");
    assert_string_equal(c.role, "coordinator");
    assert_string_equal(c.cluster, "k");
    assert_int_equal(c.log_level, BL_LOG_WARN);
    assert_int_equal(c.log_format, BL_LOG_JSON);
    assert_int_equal(c.max_message_size, 2048);
    assert_int_equal(c.send_queue_high_water, 65536);
    assert_int_equal(c.connect_timeout_ms, 101);
    assert_int_equal(c.handshake_timeout_ms, 102);
    assert_int_equal(c.reconnect_backoff_max_ms, 103);
    assert_int_equal(c.max_handshakes_per_address, 4);
    assert_string_equal(c.listen_address, "10.1.2.3");
    assert_int_equal(c.listen_port, 4000);
    assert_int_equal(c.publish, 1);
    assert_string_equal(c.cookie_file, "/tmp/cf");
    rm_tmp(path);
}

static void test_args_errors(void **state)
{
    (void)state;
    bl_config c;
    char err[512];

    const char *a1[] = {"--sname", "x", "--bogus", "1"};
    err[0] = 0;
    assert_int_equal(from_args(&c, NULL, 4, a1, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "--bogus");

    const char *a2[] = {"--sname", "x", "--net-ticktime"};
    err[0] = 0;
    assert_int_equal(from_args(&c, NULL, 3, a2, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "--net-ticktime");

    const char *a3[] = {"--config"};
    err[0] = 0;
    assert_int_equal(from_args(&c, NULL, 1, a3, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "--config");

    /* no node name from anywhere */
    const char *a4[] = {"--cookie", "c"};
    err[0] = 0;
    assert_int_equal(from_args(&c, NULL, 2, a4, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "node name");
    err[0] = 0;
    assert_int_equal(from_args(&c, NULL, 0, NULL, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "node name");

    /* a bad flag value names the key */
    const char *a5[] = {"--sname", "x", "--port", "99999"};
    err[0] = 0;
    assert_int_equal(from_args(&c, NULL, 4, a5, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "listen_port");

    /* a bad environment value names the key and the variable */
    const char *env[] = {"BEAMLET_MAX_HANDSHAKES_PER_ADDRESS", "0", NULL};
    const char *a6[] = {"--sname", "x"};
    err[0] = 0;
    assert_int_equal(from_args(&c, env, 2, a6, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "max_handshakes_per_address");
    assert_contains(err, "BEAMLET_MAX_HANDSHAKES_PER_ADDRESS");

    /* a broken file through BEAMLET_CONFIG */
    char *path = write_tmp("{ broken");
    const char *env7[] = {"BEAMLET_CONFIG", path, NULL};
    err[0] = 0;
    assert_int_equal(from_args(&c, env7, 2, a6, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, path);
    rm_tmp(path);

    /* usage mentions every flag form tested above */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    bl_config_usage(f);
    fclose(f);
    assert_contains(buf, "--sname");
    assert_contains(buf, "--max-message-size");
    assert_contains(buf, "BEAMLET_CONFIG");
    assert_contains(buf, "--no-publish");
    free(buf);
}

/* ---- the seeds' environment names and notes in files (docs/configuration.md, deploy.md) ---- */
static void test_env_aliases(void **state)
{
    (void)state;
    bl_config c;
    char err[512] = "";
    const char *env1[] = {"NODE_ID", "edge7@pi", "CLUSTER_PORT", "4370", NULL};
    assert_int_equal(from_args(&c, env1, 0, NULL, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "edge7@pi");
    assert_int_equal(c.listen_port, 4370);
    /* the canonical names win over the aliases */
    const char *env2[] = {"NODE_ID", "alias@pi",     "NODE_NAME", "canon@pi", "CLUSTER_PORT",
                          "4370",    "BEAMLET_PORT", "4371",      NULL};
    assert_int_equal(from_args(&c, env2, 0, NULL, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "canon@pi");
    assert_int_equal(c.listen_port, 4371);
    /* a bad alias value names the key and the variable */
    const char *env3[] = {"NODE_ID", "a@pi", "CLUSTER_PORT", "99999", NULL};
    assert_int_equal(from_args(&c, env3, 0, NULL, err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "listen_port");
    assert_contains(err, "CLUSTER_PORT");
}

static void test_file_notes_skipped(void **state)
{
    (void)state;
    char *path = write_tmp("{\"_comment\": \"notes for people\", \"_net_ticktime\": [1, 2], "
                           "\"sname\": \"noted\", \"net_ticktime\": 9}");
    bl_config c;
    char err[512] = "";
    const char *argv[] = {"--config", path};
    assert_int_equal(from_args(&c, NULL, 2, argv, err, sizeof(err)), BL_OK);
    assert_string_equal(c.name, "noted");
    assert_int_equal(c.net_ticktime_s, 9);
    rm_tmp(path);
}

/* The key table: each row's default is what bl_config_init gives (bl_config_get reads it back),
 * every flag and every environment variable names one key, every cluster-settable key reads
 * back what it was given, and bl_config_check never changes its configuration. */
static void test_key_table(void **state)
{
    (void)state;
    bl_config c, before;
    bl_config_init(&c);
    const bl_config_keydef *k, *k2;
    size_t live = 0, cluster = 0;
    for (size_t i = 0; (k = bl_config_key_info(i)); i++) {
        if (k->flags & BL_CFG_ALIAS) {
            k2 = bl_config_key_info(i + 1);
            assert_non_null(k2);
            assert_string_equal(k2->key, k->key); /* the row it stands for comes next */
            continue;
        }
        assert_ptr_equal(bl_config_key_find(k->key), k);
        char v[8192];
        if (bl_config_get(&c, k->key, v, sizeof(v)) && k->def)
            if (strcmp(v, k->def))
                fail_msg("%s: default '%s' in the table, '%s' from init", k->key, k->def, v);
        for (size_t j = i + 1; (k2 = bl_config_key_info(j)); j++) {
            if (k->flag && k2->flag && !strcmp(k->flag, k2->flag))
                fail_msg("flag %s twice", k->flag);
            if (k->env && k2->env && !strcmp(k->env, k2->env)) fail_msg("env %s twice", k->env);
        }
        if (k->flags & BL_CFG_LIVE) live++;
        if (k->flags & BL_CFG_CLUSTER) {
            cluster++;
            assert_true(bl_config_get(&c, k->key, v, sizeof(v)));
            char err[512];
            before = c;
            assert_int_equal(bl_config_check(&c, k->key, v, err, sizeof(err)), BL_OK);
            assert_memory_equal(&before, &c, sizeof(c));
            bl_config d = c;
            assert_int_equal(bl_config_set(&d, k->key, v, err, sizeof(err)), BL_OK);
            char back[8192];
            assert_true(bl_config_get(&d, k->key, back, sizeof(back)));
            assert_string_equal(back, v);
        }
    }
    assert_true(live >= 10);
    assert_true(cluster >= live);
    char err[256];
    /* a bad value: refused with the key named, the configuration untouched */
    before = c;
    assert_int_equal(bl_config_check(&c, "heartbeat_interval_ms", "5", err, sizeof(err)),
                     BL_ECONFIG);
    assert_contains(err, "heartbeat_interval_ms");
    assert_memory_equal(&before, &c, sizeof(c));
    assert_int_equal(bl_config_check(&c, "no_such_key", "1", err, sizeof(err)), BL_ECONFIG);
    assert_contains(err, "no_such_key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),         cmocka_unit_test(test_set_each_key),
        cmocka_unit_test(test_set_cluster_keys), cmocka_unit_test(test_set_enum_values),
        cmocka_unit_test(test_set_names),        cmocka_unit_test(test_set_join),
        cmocka_unit_test(test_list_keys),        cmocka_unit_test(test_set_unknown_key),
        cmocka_unit_test(test_file_all_types),   cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_precedence),       cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_env_aliases),      cmocka_unit_test(test_file_notes_skipped),
        cmocka_unit_test(test_tls_keys),         cmocka_unit_test(test_key_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
