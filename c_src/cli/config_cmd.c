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
 *   beamlet_admin process (admin_proc.c).
 * keys: the key table (type, default, live or restart, cluster-wide or per node).
 * get|set|unset|history|status: the cluster configuration, from the node's beamlet_config
 *   process (services/cconf.c; writes go through the leader; watch is config_watch.c). A write a majority of the
 *   coordinators did not hold in time is reported pending (exit 3); `config status VERSION`
 *   tells later whether it was committed or lost. */
#include "cli.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

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

typedef struct {
    int *n;
    const char *file;
} between_ctx;

static void between_problem(const char *key, const char *msg, void *ud)
{
    between_ctx *bc = ud;
    problem(bc->n, bc->file, key, "%s", msg);
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
    if (names > 1) problem(&n, file, "name", "%s", "give only one of sname, name and node_name");
    /* between keys: the rules a cluster-wide change is checked with too (config.c) */
    between_ctx bc = {&n, file};
    bl_config_check_between(&cfg, NULL, NULL, 0, between_problem, &bc);
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

/* ---- cluster configuration: get|set|unset|history|watch (services/cconf.c), keys ---- */

#define CCONF "beamlet_config"

/* who made a change, as history shows it: $USER@host (the CLI's node says the rest) */
static void whoami(char *out, size_t cap)
{
    const char *u = getenv("USER");
    char host[256] = "";
    if (gethostname(host, sizeof(host)) < 0) host[0] = 0;
    host[sizeof(host) - 1] = 0;
    snprintf(out, cap, "%s@%s (beamlet cli)", u && *u ? u : "unknown", host[0] ? host : "?");
}

static int cc_error(bl__cli_opts *o, json_t *j)
{
    /* {error, Message} comes as ["error", "..."] */
    if (json_is_array(j) && json_array_size(j) == 2 &&
        !strcmp(json_string_value(json_array_get(j, 0)) ?: "", "error")) {
        fprintf(stderr, "beamlet %s: %s\n", o->cmd, json_string_value(json_array_get(j, 1)) ?: "?");
        return 1;
    }
    return 0;
}

/* The head of every beamlet_config reply: the reply decoded, {error, Message} and a reply that
 * is not of the JSON type expected printed. Returns the reply (the caller's to free), or NULL
 * after printing: the command exits 1. */
static json_t *cc_reply(bl__cli_opts *o, const char *buf, int index, json_type type)
{
    int i = index;
    json_t *j = bl_term_to_json(buf, &i);
    if (cc_error(o, j)) {
        json_decref(j);
        return NULL;
    }
    if (!j || json_typeof(j) != type) {
        fprintf(stderr, "beamlet %s: %s: unexpected reply\n", o->cmd, o->target);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int get_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    json_t *j = cc_reply(o, buf, index, JSON_OBJECT);
    if (!j) return 1;
    int rc = 0;
    if (o->format && !strcmp(o->format, "json")) {
        bl__cli_print_json(j);
    } else {
        json_t *rows = json_object_get(j, "settings");
        const char *only = ud;
        if (only && !json_array_size(rows)) {
            fprintf(stderr, "beamlet %s: %s is not set cluster-wide (version %lld)\n", o->cmd, only,
                    (long long)json_integer_value(json_object_get(j, "version")));
            rc = 1;
        } else if (only) {
            json_t *r = json_array_get(rows, 0);
            printf("%s\n", json_string_value(json_object_get(r, "value")));
        } else {
            const char *l = json_string_value(json_object_get(j, "leader"));
            printf("version %lld, term %lld, leader %s\n",
                   (long long)json_integer_value(json_object_get(j, "version")),
                   (long long)json_integer_value(json_object_get(j, "term")), l ? l : "(none)");
            printf("%-26s %-34s %-6s %s\n", "KEY", "VALUE", "LIVE", "ON THIS NODE");
            size_t k;
            json_t *r;
            json_array_foreach(rows, k, r)
            {
                printf("%-26s %-34s %-6s %s\n", json_string_value(json_object_get(r, "key")),
                       json_string_value(json_object_get(r, "value")),
                       json_is_true(json_object_get(r, "live")) ? "yes" : "no",
                       json_string_value(json_object_get(r, "applied")));
            }
        }
    }
    json_decref(j);
    return rc;
}

static int write_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    json_t *j = cc_reply(o, buf, index, JSON_ARRAY); /* {ok | pending, Map} */
    if (!j) return 1;
    int rc = 0;
    json_t *m = json_array_get(j, 1);
    const char *tag = json_string_value(json_array_get(j, 0));
    if (json_is_object(m) && tag && !strcmp(tag, "pending")) {
        /* held by the leader, not by a majority in time: it may still be, or be rolled back */
        rc = 3;
        if (o->format && !strcmp(o->format, "json"))
            bl__cli_print_json(m);
        else
            fprintf(stderr,
                    "beamlet %s: version %lld (term %lld) of %s is held by the leader but by "
                    "only %lld of the %lld coordinators needed so far: it is pending, not "
                    "committed; check with `beamlet config status %lld --term %lld`\n",
                    o->cmd, (long long)json_integer_value(json_object_get(m, "version")),
                    (long long)json_integer_value(json_object_get(m, "term")),
                    json_string_value(json_object_get(m, "key")) ?: "?",
                    (long long)json_integer_value(json_object_get(m, "holders")),
                    (long long)json_integer_value(json_object_get(m, "needed")),
                    (long long)json_integer_value(json_object_get(m, "version")),
                    (long long)json_integer_value(json_object_get(m, "term")));
    } else if (!json_is_object(m)) {
        fprintf(stderr, "beamlet %s: %s: unexpected reply\n", o->cmd, o->target);
        rc = 1;
    } else if (o->format && !strcmp(o->format, "json")) {
        bl__cli_print_json(m);
    } else {
        const char *key = json_string_value(json_object_get(m, "key"));
        const char *v = json_string_value(json_object_get(m, "value"));
        long long ver = (long long)json_integer_value(json_object_get(m, "version"));
        if (!json_is_true(json_object_get(m, "changed")))
            printf("%s is %s already (version %lld): nothing changed\n", key, v ? v : "unset", ver);
        else if (json_is_true(json_object_get(m, "live")))
            printf("version %lld: %s %s%s; held by a majority of the coordinators, applied live "
                   "by each member as it gets it\n",
                   ver, key, v ? "= " : "unset", v ? v : "");
        else
            printf("version %lld: %s %s%s cluster-wide; needs a restart: each node keeps its "
                   "running value until it restarts\n",
                   ver, key, v ? "= " : "unset", v ? v : "");
    }
    json_decref(j);
    return rc;
}

void bl__cc_print_change(json_t *h)
{
    char when[32] = "?";
    long long at = (long long)json_integer_value(json_object_get(h, "at"));
    time_t t = (time_t)(at / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *old = json_string_value(json_object_get(h, "old"));
    const char *nw = json_string_value(json_object_get(h, "new"));
    printf("%-7lld %-20s %-26s %-20s -> %-20s %s\n",
           (long long)json_integer_value(json_object_get(h, "version")), when,
           json_string_value(json_object_get(h, "key")), old ? old : "(unset)", nw ? nw : "(unset)",
           json_string_value(json_object_get(h, "who")) ?: "");
}

static int history_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    json_t *j = cc_reply(o, buf, index, JSON_ARRAY);
    if (!j) return 1;
    if (o->format && !strcmp(o->format, "json")) {
        bl__cli_print_json(j);
    } else {
        printf("%-7s %-20s %-26s %-20s    %-20s %s\n", "VERSION", "WHEN (UTC)", "KEY", "OLD", "NEW",
               "WHO");
        size_t k;
        json_t *h;
        json_array_foreach(j, k, h) bl__cc_print_change(h);
    }
    json_decref(j);
    return 0;
}

/* request: an atom, or {Tag, Arg...} of text */
static int cc_request(bl__cli_opts *o, const char *tag, const char *const *args, int nargs,
                      bl__cli_reply_fn fn, void *ud)
{
    ei_x_buff b;
    ei_x_new(&b);
    if (nargs == 0) {
        ei_x_encode_atom(&b, tag);
    } else {
        ei_x_encode_tuple_header(&b, nargs + 1);
        ei_x_encode_atom(&b, tag);
        for (int k = 0; k < nargs; k++)
            ei_x_encode_binary(&b, args[k], (long)strlen(args[k]));
    }
    /* a write may wait for the leader and a majority: give it the service's own timeout */
    if (!strcmp(tag, "set") || !strcmp(tag, "unset"))
        if (o->timeout_ms < 10000) o->timeout_ms = 10000;
    int rc = bl__cli_call(o, CCONF, b.buff, b.index, fn, ud);
    ei_x_free(&b);
    return rc;
}

int bl__cli_config_get(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config get", argc, argv) < 0) return 2;
    if (o.npos > 1) {
        fprintf(stderr, "usage: beamlet config get [KEY] --node NODE\n");
        return 2;
    }
    const char *args[1] = {o.npos ? o.pos[0] : NULL};
    return cc_request(&o, "get", args, o.npos, get_reply, (void *)args[0]);
}

int bl__cli_config_set(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config set", argc, argv) < 0) return 2;
    if (o.npos != 2) {
        fprintf(stderr, "usage: beamlet config set KEY VALUE --node NODE\n");
        return 2;
    }
    char who[400];
    whoami(who, sizeof(who));
    const char *args[3] = {o.pos[0], o.pos[1], who};
    return cc_request(&o, "set", args, 3, write_reply, NULL);
}

int bl__cli_config_unset(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config unset", argc, argv) < 0) return 2;
    if (o.npos != 1) {
        fprintf(stderr, "usage: beamlet config unset KEY --node NODE\n");
        return 2;
    }
    char who[400];
    whoami(who, sizeof(who));
    const char *args[2] = {o.pos[0], who};
    return cc_request(&o, "unset", args, 2, write_reply, NULL);
}

static int status_reply(bl__cli_opts *o, const char *buf, int index, void *ud)
{
    (void)ud;
    json_t *j = cc_reply(o, buf, index, JSON_OBJECT);
    if (!j) return 1;
    const char *st = json_string_value(json_object_get(j, "state")) ?: "?";
    if (o->format && !strcmp(o->format, "json"))
        bl__cli_print_json(j);
    else
        printf("version %lld: %s (held by %lld of the %lld coordinators needed; current "
               "version %lld)\n",
               (long long)json_integer_value(json_object_get(j, "version")), st,
               (long long)json_integer_value(json_object_get(j, "holders")),
               (long long)json_integer_value(json_object_get(j, "needed")),
               (long long)json_integer_value(json_object_get(j, "current_version")));
    int rc = !strcmp(st, "committed") ? 0 : !strcmp(st, "pending") ? 3 : 1;
    json_decref(j);
    return rc;
}

int bl__cli_config_status(int argc, char **argv)
{
    const char *term = NULL;
    char *rest[64];
    int nrest = 0;
    for (int k = 0; k < argc && nrest < 64; k++) {
        if (!strcmp(argv[k], "--term") && k + 1 < argc) {
            term = argv[++k];
            continue;
        }
        rest[nrest++] = argv[k];
    }
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config status", nrest, rest) < 0) return 2;
    if (o.npos != 1) {
        fprintf(stderr, "usage: beamlet config status VERSION [--term T] --node NODE\n");
        return 2;
    }
    const char *args[2] = {o.pos[0], term};
    return cc_request(&o, "status", args, term ? 2 : 1, status_reply, NULL);
}

int bl__cli_config_history(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config history", argc, argv) < 0) return 2;
    if (o.npos > 1) {
        fprintf(stderr, "usage: beamlet config history [KEY] --node NODE\n");
        return 2;
    }
    const char *args[1] = {o.npos ? o.pos[0] : NULL};
    return cc_request(&o, "history", args, o.npos, history_reply, NULL);
}

int bl__cli_config_keys(int argc, char **argv)
{
    bl__cli_opts o;
    if (bl__cli_parse(&o, "config keys", argc, argv) < 0) return 2;
    const bl_config_keydef *k;
    static const char *TYPES[] = {"string", "enum",   "uint", "int",
                                  "size",   "number", "bool", "special"};
    json_t *all = json_array();
    for (size_t i = 0; (k = bl_config_key_info(i)); i++) {
        if (k->flags & BL_CFG_ALIAS) continue;
        json_t *r = json_pack(
            "{s:s, s:s, s:s, s:b, s:b, s:b}", "key", k->key, "type", TYPES[k->type], "default",
            k->def ? k->def : "", "live", (k->flags & BL_CFG_LIVE) != 0, "cluster",
            (k->flags & BL_CFG_CLUSTER) != 0, "secret", (k->flags & BL_CFG_SECRET) != 0);
        json_object_set_new(r, "flag", k->flag ? json_string(k->flag) : json_null());
        json_object_set_new(r, "env", k->env ? json_string(k->env) : json_null());
        json_object_set_new(r, "help", json_string(k->help));
        json_array_append_new(all, r);
    }
    if (o.format && !strcmp(o.format, "json")) {
        bl__cli_print_json(all);
    } else {
        printf("%-28s %-8s %-18s %-8s %s\n", "KEY", "TYPE", "DEFAULT", "CHANGE", "CLUSTER-WIDE");
        size_t i;
        json_t *r;
        json_array_foreach(all, i, r)
        {
            const char *d = json_string_value(json_object_get(r, "default"));
            printf("%-28s %-8s %-18.18s %-8s %s\n", json_string_value(json_object_get(r, "key")),
                   json_string_value(json_object_get(r, "type")), d && *d ? d : "-",
                   json_is_true(json_object_get(r, "live")) ? "live" : "restart",
                   json_is_true(json_object_get(r, "cluster")) ? "yes" : "no");
        }
    }
    json_decref(all);
    return 0;
}
