/* client.c - the admin client every `beamlet CMD --node N` uses: a short-lived hidden node
 * (not published, not a cluster member) that calls one process on the target, hands the reply to
 * the command and exits. Options: --node, --cookie, --cookie-file, --timeout, --format, and the
 * node's TLS distribution settings (--tls, --tls-cert, ...: the tls* keys of the config file given
 * by --config or BEAMLET_CONFIG, then BEAMLET_TLS_*, then the flags), so it reaches TLS nodes;
 * --traceparent, --show-trace (trace_opt.c). */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static int is_tls_key(const char *k)
{
    return !strncmp(k, "tls", 3) && (k[3] == 0 || k[3] == '_');
}

/* The tls* keys of a config file (the rest is the node's business, not the client's). */
static int tls_from_file(bl_config *cfg, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "--config %s: %s", path, root ? "not a JSON object" : je.text);
        json_decref(root);
        return -1;
    }
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, k, v)
    {
        char buf[1024];
        if (!is_tls_key(k)) continue;
        if (bl_config_json_value(k, v, buf, sizeof(buf), err, errlen) != BL_OK ||
            bl_config_set(cfg, k, buf, err, errlen) != BL_OK) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

const char *bl__cli_failure(int status, int tls)
{
    if (status == BL_ENODEDOWN)
        return tls ? "node not reachable (not running, wrong cookie, host or TLS certificates?)"
                   : "node not reachable (not running, wrong cookie or host? a TLS node needs "
                     "--tls true and certificates)";
    if (status == BL_ETIMEOUT) return "no answer in time (is it a beamlet node?)";
    return bl_strerror(status);
}

int bl__cli_tls_defaults(bl_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    const char *file = getenv("BEAMLET_CONFIG"), *v;
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config")) file = argv[i + 1];
    if (file && *file && tls_from_file(cfg, file, err, errlen)) return -1;
    const char *key, *flag, *var;
    for (size_t k = 0; bl_config_key_at(k, &key, &flag, &var); k++)
        if (var && is_tls_key(key) && (v = getenv(var)) && *v &&
            bl_config_set(cfg, key, v, err, errlen))
            return -1;
    return 0;
}

int bl__cli_tls_flag(bl_config *cfg, int argc, char **argv, int i, char *err, size_t errlen)
{
    if (i + 1 >= argc) return 0;
    if (!strcmp(argv[i], "--config")) return 2; /* read by bl__cli_tls_defaults */
    const char *key, *flag, *var;
    for (size_t k = 0; bl_config_key_at(k, &key, &flag, &var); k++)
        if (flag && is_tls_key(key) && !strcmp(argv[i], flag))
            return bl_config_set(cfg, key, argv[i + 1], err, errlen) ? -1 : 2;
    return 0;
}

int bl__cli_parse(bl__cli_opts *o, const char *cmd, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
    o->timeout_ms = 5000;
    bl_config_init(&o->cfg);
    o->cfg.publish = 0;
    o->cfg.cluster_member = 0;
    o->cfg.log_level = BL_LOG_ERROR;
    char err[512] = "";
    const char *v;
    if ((v = getenv("COOKIE")) && *v) bl_config_set(&o->cfg, "cookie", v, err, sizeof(err));
    if ((v = getenv("BEAMLET_LOG_LEVEL")) && *v)
        bl_config_set(&o->cfg, "log_level", v, err, sizeof(err));
    if (bl__cli_tls_defaults(&o->cfg, argc, argv, err, sizeof(err))) goto bad;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int took = bl__cli_tls_flag(&o->cfg, argc, argv, i, err, sizeof(err));
        if (took < 0) goto bad;
        if (took > 0) {
            i += took - 1;
        } else if (arg[0] != '-') {
            if (o->npos >= BL__CLI_MAX_POS) {
                snprintf(err, sizeof(err), "too many arguments ('%s')", arg);
                goto bad;
            }
            o->pos[o->npos++] = arg;
        } else if (!strcmp(arg, "--node") && val) {
            o->target = argv[++i];
        } else if (!strcmp(arg, "--cookie") && val) {
            if (bl_config_set(&o->cfg, "cookie", argv[++i], err, sizeof(err))) goto bad;
        } else if (!strcmp(arg, "--cookie-file") && val) {
            if (bl_config_set(&o->cfg, "cookie_file", argv[++i], err, sizeof(err))) goto bad;
        } else if (!strcmp(arg, "--timeout") && val) {
            char *end;
            unsigned long t = strtoul(argv[++i], &end, 10);
            if (*end || t == 0 || t > 600000) {
                snprintf(err, sizeof(err), "--timeout: '%s' is not 1..600000 ms", argv[i]);
                goto bad;
            }
            o->timeout_ms = (unsigned)t;
        } else if ((took = bl__cli_trace_opt(&o->trace, argc, argv, i, err, sizeof(err))) != 0) {
            if (took < 0) goto bad;
            i += took - 1;
        } else if (!strncmp(arg, "--format=", 9)) {
            o->format = arg + 9;
        } else if (!strcmp(arg, "--format") && val) {
            o->format = argv[++i];
        } else {
            snprintf(err, sizeof(err), "unknown or incomplete option '%s' (see %s --help)", arg,
                     cmd);
            goto bad;
        }
    }
    if (o->format && strcmp(o->format, "json") && strcmp(o->format, "table")) {
        snprintf(err, sizeof(err), "--format: '%s' is not json or table", o->format);
        goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "beamlet %s: %s\n", cmd, err);
    return -1;
}

typedef struct {
    bl__cli_opts *o;
    bl__cli_reply_fn fn;
    void *ud;
    int via; /* the reply is {ok, R} | {error, E} from the beamlet process's proxy */
} call_ctx;

static void call_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    call_ctx *c = ud;
    bl__cli_opts *o = c->o;
    if (status == BL_OK && c->via) {
        int i = index, ar;
        char tag[MAXATOMLEN_UTF8], why[MAXATOMLEN_UTF8] = "?";
        if (ei_decode_tuple_header(buf, &i, &ar) == 0 && ar == 2 &&
            ei_decode_atom(buf, &i, tag) == 0) {
            if (!strcmp(tag, "ok")) {
                o->exit_code = c->fn(o, buf, i, c->ud);
            } else {
                ei_decode_atom(buf, &i, why);
                fprintf(stderr, "beamlet %s: %s: %s\n", o->cmd, o->target,
                        !strcmp(why, "noproc")
                            ? "the node does not run beamlet's admin process (not started "
                              "with `beamlet node`?)"
                            : why);
                o->exit_code = 1;
            }
        } else {
            fprintf(stderr, "beamlet %s: %s: unexpected reply\n", o->cmd, o->target);
            o->exit_code = 1;
        }
    } else if (status == BL_OK) {
        o->exit_code = c->fn(o, buf, index, c->ud);
    } else {
        fprintf(stderr, "beamlet %s: %s: %s\n", o->cmd, o->target,
                bl__cli_failure(status, o->cfg.tls));
        o->exit_code = 1;
    }
    bl_node_stop(bl_proc_node(p));
}

/* A hidden client node named after o->target's host, started; NULL (with a message) if not. */
static bl_node *client_node(bl__cli_opts *o)
{
    if (!o->target || !strchr(o->target, '@')) {
        fprintf(stderr, "beamlet %s: which node? give --node NAME@HOST\n", o->cmd);
        return NULL;
    }
    char name[BL_NODE_LEN], err[256];
    const char *at = strchr(o->target, '@');
    snprintf(name, sizeof(name), "beamlet_cli_%d%s", (int)getpid(), at);
    if (bl_config_set(&o->cfg, strchr(at, '.') ? "name" : "sname", name, err, sizeof(err))) {
        fprintf(stderr, "beamlet %s: %s\n", o->cmd, err);
        return NULL;
    }
    bl_node *n;
    int rc = bl_node_new(&o->cfg, &n);
    if (rc == BL_OK && (rc = bl_node_start(n)) != BL_OK) bl_node_free(n);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: cannot start a client node: %s\n", o->cmd, bl_strerror(rc));
        return NULL;
    }
    bl__cli_trace_begin(n, &o->trace, o->cmd); /* the command's trace (trace_opt.c) */
    return n;
}

static int call(bl__cli_opts *o, const char *proc, const char *req, int reqlen, bl__cli_reply_fn fn,
                void *ud, int via)
{
    bl_node *n = client_node(o);
    if (!n) return 1;
    int rc;
    bl_proc *p;
    bl_spawn(n, NULL, NULL, NULL, &p);
    call_ctx c = {.o = o, .fn = fn, .ud = ud, .via = via};
    o->exit_code = 1;
    if (!proc) {
        rc = bl_ping(p, o->target, o->timeout_ms, call_done, &c);
    } else if (via) {
        /* {call, Proc, Req, Tmo} to the beamlet process */
        ei_x_buff b;
        ei_x_new(&b);
        ei_x_encode_tuple_header(&b, 4);
        ei_x_encode_atom(&b, "call");
        ei_x_encode_atom(&b, proc);
        ei_x_append_buf(&b, req, reqlen);
        ei_x_encode_long(&b, (long)o->timeout_ms);
        rc = bl_call(p, NULL, "beamlet", o->target, b.buff, b.index, o->timeout_ms + 1000,
                     call_done, &c);
        ei_x_free(&b);
    } else {
        rc = bl_call(p, NULL, proc, o->target, req, reqlen, o->timeout_ms, call_done, &c);
    }
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: %s: %s\n", o->cmd, o->target, bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_node_free(n);
    return o->exit_code;
}

int bl__cli_call(bl__cli_opts *o, const char *proc, const char *req, int reqlen,
                 bl__cli_reply_fn fn, void *ud)
{
    return call(o, proc, req, reqlen, fn, ud, 0);
}

int bl__cli_call_via_beamlet(bl__cli_opts *o, const char *proc, const char *req, int reqlen,
                             bl__cli_reply_fn fn, void *ud)
{
    return call(o, proc, req, reqlen, fn, ud, 1);
}

/* ---- watching: a call {Tag, OurPid}, then every message to us until on_msg says stop. A lost
 * connection is not the end: the watch subscribes again (after 250 ms, doubling up to 2 s, until
 * the node answers) and on_subscribed lets the command catch up on what it missed. ---- */

#define WATCH_RETRY_MIN_MS 250
#define WATCH_RETRY_MAX_MS 2000

typedef struct {
    bl__cli_opts *o;
    const char *proc, *tag;
    bl__cli_msg_fn on_msg;
    bl__cli_subscribed_fn on_subscribed;
    void *ud;
    bl_proc *p;
    int subscribed; /* the node holds our subscription (as far as we know) */
    int ever;       /* it did once: a failure from now on is retried */
    int inflight;   /* a {Tag, Pid} call waits for its reply */
    int done, timer;
    unsigned backoff_ms;
} watch_ctx;

static int watch_subscribe(watch_ctx *w);

static void watch_retry(bl_node *n, void *ud)
{
    (void)n;
    watch_ctx *w = ud;
    w->timer = 0;
    if (!w->done) (void)watch_subscribe(w);
}

static void watch_schedule(watch_ctx *w)
{
    if (w->done || w->timer || w->inflight) return;
    w->timer = bl_timer(bl_proc_node(w->p), w->backoff_ms, 0, watch_retry, w);
    w->backoff_ms = w->backoff_ms * 2 > WATCH_RETRY_MAX_MS ? WATCH_RETRY_MAX_MS : w->backoff_ms * 2;
}

static void watch_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    watch_ctx *w = ud;
    if (!w->done && w->on_msg(w->o, msg->buf, msg->index, w->ud)) {
        w->done = 1;
        w->o->exit_code = 0;
        bl_node_stop(bl_proc_node(self));
    }
}

static void watch_reply(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    watch_ctx *w = ud;
    char a[MAXATOMLEN_UTF8];
    int i = index;
    w->inflight = 0;
    if (w->done) return;
    if (status == BL_OK && ei_decode_atom(buf, &i, a) == 0 && !strcmp(a, "ok")) {
        int again = w->ever;
        w->subscribed = w->ever = 1;
        w->backoff_ms = WATCH_RETRY_MIN_MS;
        fprintf(stderr, "beamlet %s: watching %s%s\n", w->o->cmd, w->o->target,
                again ? " again" : "");
        if (w->on_subscribed) w->on_subscribed(w->o, p, again, w->ud);
        return;
    }
    if (w->ever && (status == BL_ENODEDOWN || status == BL_ETIMEOUT || status == BL_ENOPROC)) {
        watch_schedule(w); /* still away, or restarting (no config service yet) */
        return;
    }
    fprintf(stderr, "beamlet %s: %s: %s\n", w->o->cmd, w->o->target,
            status == BL_ENODEDOWN  ? "node not reachable (not running, wrong cookie or host?)"
            : status == BL_ETIMEOUT ? "no answer in time (is it a beamlet node?)"
            : status == BL_ENOPROC  ? "the node has no cluster configuration service"
                                    : "refused the subscription");
    w->done = 1;
    w->o->exit_code = 1;
    bl_node_stop(bl_proc_node(p));
}

static int watch_subscribe(watch_ctx *w)
{
    ei_x_buff b;
    ei_x_new(&b);
    ei_x_encode_tuple_header(&b, 2);
    ei_x_encode_atom(&b, w->tag);
    bl_x_encode_pid(&b, bl_self(w->p));
    int rc = bl_call(w->p, NULL, w->proc, w->o->target, b.buff, b.index, w->o->timeout_ms,
                     watch_reply, w);
    ei_x_free(&b);
    if (rc == BL_OK)
        w->inflight = 1;
    else if (w->ever)
        watch_schedule(w);
    return rc;
}

static void watch_node_event(bl_node *n, bl_node_event ev, const char *node, const char *reason,
                             void *ud)
{
    watch_ctx *w = ud;
    (void)n, (void)reason;
    if (ev != BL_NODEDOWN || w->done || !w->subscribed || strcmp(node, w->o->target)) return;
    /* the node dropped our subscription with the connection: subscribe again */
    w->subscribed = 0;
    fprintf(stderr, "beamlet %s: %s: connection lost; reconnecting\n", w->o->cmd, node);
    watch_schedule(w);
}

void bl__cli_watch_end(bl_proc *p, int code)
{
    watch_ctx *w = bl_proc_data(p);
    if (!w || w->done) return;
    w->done = 1;
    w->o->exit_code = code;
    bl_node_stop(bl_proc_node(p));
}

int bl__cli_watch(bl__cli_opts *o, const char *proc, const char *tag, bl__cli_msg_fn on_msg,
                  bl__cli_subscribed_fn on_subscribed, void *ud)
{
    bl_node *n = client_node(o);
    if (!n) return 1;
    watch_ctx w = {.o = o,
                   .proc = proc,
                   .tag = tag,
                   .on_msg = on_msg,
                   .on_subscribed = on_subscribed,
                   .ud = ud,
                   .backoff_ms = WATCH_RETRY_MIN_MS};
    static const bl_proc_ops ops = {.on_msg = watch_msg};
    bl_spawn(n, NULL, &ops, &w, &w.p);
    bl_monitor_nodes(n, watch_node_event, &w);
    o->exit_code = 1;
    int rc = watch_subscribe(&w);
    if (rc != BL_OK) {
        fprintf(stderr, "beamlet %s: %s: %s\n", o->cmd, o->target, bl_strerror(rc));
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_node_free(n);
    return o->exit_code;
}

int bl__cli_session(bl__cli_opts *o, bl__cli_start_fn start, void *ud)
{
    bl_node *n = client_node(o);
    if (!n) return 1;
    bl_proc *p;
    bl_spawn(n, NULL, NULL, NULL, &p);
    o->exit_code = 1;
    if (start(o, p, ud) != 0) {
        bl_node_free(n);
        return 1;
    }
    bl_node_run(n);
    bl_node_free(n);
    return o->exit_code;
}

void bl__cli_print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    printf("%s\n", s ? s : "null");
    free(s);
}
