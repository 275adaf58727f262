/* config_cmd.c - `beamlet config template|validate|show`.
 *
 * template: a configuration for dev (3 nodes on one machine), staging (5) or prod (20), built
 *   with jansson from the table below. JSON has no comments, so every note is a key starting
 *   with "_" ("_comment", "_heartbeat_interval_ms", ...): bl_config_load_file and validate skip
 *   such keys. A key this build does not know yet (TLS, HTTP: other parts of beamlet) is written
 *   with a leading "_" too, so the template always validates and says what to turn on later.
 * validate: every problem of a file, each with its key, through the same bl_config_set a node
 *   uses, plus the checks between keys; exit 0 or 2.
 * show: the effective configuration of a running node with each value's source, from its
 *   beamlet_admin process (admin_proc.c). */
#include "cli.h"
#include "../health/rules.h"

#include <stdlib.h>

enum { DEV, STAGING, PROD, NENV };
static const char *ENVS[NENV] = {"dev", "staging", "prod"};

/* values are JSON texts; NULL: not in that environment's file */
typedef struct {
    const char *key;
    const char *v[NENV];
    const char *note;
} trow;

static const trow TEMPLATE[] = {
    {"cluster",
     {"\"dev\"", "\"staging\"", "\"prod\""},
     "cluster name: nodes of other clusters are ignored"},
    {"role",
     {"\"agent\"", "\"agent\"", "\"agent\""},
     "coordinator/agent/gateway/monitor; make 3 nodes coordinators (ROLE=coordinator in "
     "/etc/beamlet/NODE.env, or --role) so a majority elects a leader"},
    {"cookie_file",
     {NULL, "\"/etc/beamlet/cookie\"", "\"/etc/beamlet/cookie\""},
     "the same cookie on every node; the Debian package makes one (mode 0400). dev uses "
     "~/.erlang.cookie like erl"},
    {"listen_address",
     {"\"127.0.0.1\"", "\"0.0.0.0\"", "\"0.0.0.0\""},
     "dev stays on loopback; open the port range below in the firewall for staging/prod"},
    {"listen_port",
     {"0", "4370", "4370"},
     "a fixed distribution port is easy to firewall (0: any)"},
    {"epmd_local", {"true", NULL, NULL}, "dev: find the other nodes in this machine's EPMD"},
    {"epmd_hosts",
     {NULL, "[\"stage-1\", \"stage-2\", \"stage-3\", \"stage-4\", \"stage-5\"]", NULL},
     "staging: the 5 hosts whose EPMD is polled for nodes (replace with yours)"},
    {"hosts_file",
     {NULL, NULL, "\"/etc/beamlet/hosts\""},
     "prod: the 20 hosts whose EPMD is polled, one 'host'. per line as in .hosts.erlang; "
     "re-read at every discovery poll, so adding a machine is one line"},
    {"join",
     {NULL, "[\"coord1@stage-1\"]", "[\"coord1@coord1\", \"coord2@coord2\", \"coord3@coord3\"]"},
     "seeds to connect to at start (the coordinators); readiness waits for one of them (up to "
     "30 s). Short names, as the systemd unit's NODE_NAME=%i gives: NAME@HOST"},
    {"log_level",
     {"\"debug\"", "\"info\"", "\"info\""},
     "error/warn/info/debug; SIGHUP re-reads it"},
    {"log_format", {"\"text\"", "\"json\"", "\"json\""}, "json for journald/log shippers"},
    {"net_ticktime",
     {"10", "30", "60"},
     "seconds before a silent connection is dropped, as in erl"},
    {"heartbeat_interval_ms", {"500", "1000", "1000"}, "membership heartbeat"},
    {"failure_threshold",
     {"3", "3", "5"},
     "missed heartbeats before a member is suspected; higher in prod: fewer false alarms"},
    {"election_timeout_ms", {"1000", "1500", "3000"}, "leader election timeout base"},
    {"remove_after_ms",
     {"60000", "600000", "3600000"},
     "retention: failed or departed members are forgotten after this"},
    {"event_log_size", {"256", "1024", "4096"}, "retention: cluster events kept in memory"},
    {"max_message_size",
     {"67108864", "16777216", "16777216"},
     "largest frame accepted; a larger one drops its connection"},
    {"send_queue_high_water",
     {"8388608", "8388608", "16777216"},
     "bytes queued per peer before sends are refused"},
    {"registry_policy",
     {"\"round_robin\"", "\"least_outstanding\"", "\"least_outstanding\""},
     "how service calls pick an instance"},
    {"data_dir",
     {NULL, "\"/var/lib/beamlet\"", "\"/var/lib/beamlet\""},
     "durable state (pub/sub outbox); the systemd unit sets /var/lib/beamlet/NODE per instance"},
    /* keys of other parts of beamlet: written with "_" until this build knows them */
    {"tls", {NULL, "false", "true"}, "TLS distribution (docs/security.md): required in prod"},
    {"tls_cert", {NULL, NULL, "\"/etc/beamlet/tls/node.pem\""}, "this node's certificate"},
    {"tls_key",
     {NULL, NULL, "\"/etc/beamlet/tls/node.key\""},
     "its private key (mode 0400, owner beamlet)"},
    {"tls_ca", {NULL, NULL, "\"/etc/beamlet/tls/ca.pem\""}, "the CA that signs every node"},
    {"allow",
     {NULL, NULL, "[\"coord1@coord1\", \"coord2@coord2\", \"REPLACE-with-every-node@host\"]"},
     "allow-list: only these nodes may connect (placeholder: list all 20)"},
    {"http_port", {"8080", "8080", "8443"}, "the gateway's HTTP API and dashboard (gateway role)"},
    {"http_address",
     {"\"127.0.0.1\"", "\"127.0.0.1\"", "\"0.0.0.0\""},
     "bind address of the HTTP API; off loopback every request needs an API key"},
    {"http_tls_cert", {NULL, NULL, "\"/etc/beamlet/tls/http.pem\""}, "HTTPS certificate in prod"},
    {"http_tls_key", {NULL, NULL, "\"/etc/beamlet/tls/http.key\""}, "HTTPS private key"},
};

static int key_known(const char *key)
{
    const char *k, *f, *e;
    for (size_t i = 0; bl_config_key_at(i, &k, &f, &e); i++)
        if (!strcmp(k, key)) return 1;
    return 0;
}

int bl__cli_config_template(int argc, char **argv)
{
    int env = -1;
    for (int i = 0; argc == 1 && i < NENV; i++)
        if (!strcmp(argv[0], ENVS[i])) env = i;
    if (env < 0) {
        fprintf(stderr, "usage: beamlet config template dev|staging|prod\n");
        return 2;
    }
    static const char *SIZE[NENV] = {"3 nodes on one machine", "5 nodes", "20 nodes"};
    json_t *o = json_object();
    char intro[512];
    snprintf(intro, sizeof(intro),
             "beamlet configuration, %s template (%s). Keys starting with _ are notes (JSON has "
             "no comments); the node and `beamlet config validate` skip them. Precedence: this "
             "file < environment < flags. Check with: beamlet config validate FILE",
             ENVS[env], SIZE[env]);
    json_object_set_new(o, "_comment", json_string(intro));
    for (size_t i = 0; i < sizeof(TEMPLATE) / sizeof(TEMPLATE[0]); i++) {
        const trow *r = &TEMPLATE[i];
        if (!r->v[env]) continue;
        json_t *v = json_loads(r->v[env], JSON_DECODE_ANY, NULL);
        if (!v) continue;
        char note[64 + 512], key[96];
        int known = key_known(r->key);
        snprintf(key, sizeof(key), "%s%s", known ? "" : "_", r->key);
        snprintf(note, sizeof(note), "_%s%s", known ? "" : "_", r->key);
        char text[640];
        snprintf(text, sizeof(text), "%s%s", r->note,
                 known ? "" : " (not in this build: drop the leading _ once it is)");
        json_object_set_new(o, note, json_string(text));
        json_object_set_new(o, key, v);
    }
    char *s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
    return 0;
}

/* ---- validate ---- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t c = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(prev));
    }
    return prev[lb];
}

static void problem(int *n, const char *file, const char *key, const char *fmt, const char *arg)
{
    char msg[600];
    snprintf(msg, sizeof(msg), fmt, arg);
    printf("%s: %s: %s\n", file, key, msg);
    (*n)++;
}

int bl__cli_config_validate(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: beamlet config validate FILE\n");
        return 2;
    }
    const char *file = argv[0];
    json_error_t je;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        printf("%s:%d:%d: (syntax): %s\n1 problem\n", file, je.line, je.column, je.text);
        return 2;
    }
    int n = 0;
    if (!json_is_object(root)) {
        problem(&n, file, "(top level)", "%s", "must be a JSON object of keys");
        json_decref(root);
        printf("%d problem%s\n", n, n == 1 ? "" : "s");
        return 2;
    }
    bl_config cfg;
    bl_config_init(&cfg);
    const char *key;
    json_t *val;
    int names = 0;
    json_object_foreach(root, key, val)
    {
        if (key[0] == '_') continue;
        if (!key_known(key)) {
            const char *k, *f, *e, *best = NULL;
            size_t bd = 4; /* a typo, a missing _ms: up to 3 edits */
            for (size_t i = 0; bl_config_key_at(i, &k, &f, &e); i++) {
                size_t d = edit_distance(key, k);
                if (d < bd) bd = d, best = k;
            }
            char hint[160] = "";
            if (best) snprintf(hint, sizeof(hint), " (did you mean %s?)", best);
            problem(&n, file, key, "unknown key%s", hint);
            continue;
        }
        if (!strcmp(key, "sname") || !strcmp(key, "name") || !strcmp(key, "node_name")) names++;
        char buf[BL_MAX_SEEDS * BL_NODE_LEN], err[512];
        if (bl_config_json_value(key, val, buf, sizeof(buf), err, sizeof(err)) != BL_OK ||
            bl_config_set(&cfg, key, buf, err, sizeof(err)) != BL_OK) {
            /* err reads "invalid KEY: why"; the key is printed already */
            const char *why = strstr(err, ": ");
            problem(&n, file, key, "%s", why ? why + 2 : err);
        }
    }
    /* between keys */
    if (names > 1) problem(&n, file, "name", "%s", "give only one of sname, name and node_name");
    if (cfg.election_timeout_ms <= cfg.heartbeat_interval_ms)
        problem(&n, file, "election_timeout_ms", "%s",
                "must be larger than heartbeat_interval_ms, or every heartbeat gap starts an "
                "election");
    if ((unsigned long long)cfg.remove_after_ms <=
        (unsigned long long)cfg.heartbeat_interval_ms * cfg.failure_threshold)
        problem(&n, file, "remove_after_ms", "%s",
                "must be longer than heartbeat_interval_ms x failure_threshold (members would be "
                "forgotten before they are suspected)");
    const char *tkey;
    char terr[512];
    if (bl__rules_cross_check(&cfg, &tkey, terr, sizeof(terr)) < 0) {
        const char *why = strstr(terr, ": ");
        problem(&n, file, tkey, "%s", why ? why + 2 : terr);
    }
    if (cfg.gossip_secret[0] && !cfg.gossip)
        problem(&n, file, "gossip_secret", "%s", "is set but gossip is false");
    if (cfg.data_dir[0] && cfg.data_dir[0] != '/')
        problem(&n, file, "data_dir", "'%s' must be an absolute path", cfg.data_dir);
    if (cfg.cookie_file[0] && cfg.cookie_file[0] != '/')
        problem(&n, file, "cookie_file", "'%s' must be an absolute path", cfg.cookie_file);
    if (json_object_get(root, "cookie"))
        printf("%s: cookie: warning: a cookie in the file is readable by whoever reads the file; "
               "prefer cookie_file (mode 0400)\n",
               file);
    json_decref(root);
    if (n) {
        printf("%d problem%s\n", n, n == 1 ? "" : "s");
        return 2;
    }
    printf("%s: valid\n", file);
    return 0;
}

/* ---- show ---- */

#include "render.h"

static int show_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    int i = index;
    json_t *j = bl_term_to_json(buf, &i);
    if (!json_is_array(j)) {
        fprintf(stderr, "beamlet config show: %s: unexpected reply\n", o->target);
        json_decref(j);
        return 1;
    }
    if (o->format && !strcmp(o->format, "json")) {
        bl__cli_print_json(j);
    } else {
        printf("%-26s %-34s %-8s %s\n", "KEY", "VALUE", "SOURCE", "FROM");
        size_t k;
        json_t *row;
        json_array_foreach(j, k, row)
        {
            const char *v = json_string_value(json_object_get(row, "value"));
            printf("%-26s %-34s %-8s %s\n", json_string_value(json_object_get(row, "key")),
                   v && v[0] ? v : "-", json_string_value(json_object_get(row, "source")),
                   json_string_value(json_object_get(row, "from")));
        }
    }
    json_decref(j);
    return 0;
}

int bl__cli_config_show(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config show", argc, argv) < 0) return 1;
    if (o.npos) {
        fprintf(stderr, "beamlet config show: unexpected argument '%s'\n", o.pos[0]);
        return 1;
    }
    char req[32];
    int i = 0;
    ei_encode_atom(req, &i, "config");
    return bl__cli_call_via_beamlet(&o, "beamlet_admin", req, i, show_reply, NULL);
}
