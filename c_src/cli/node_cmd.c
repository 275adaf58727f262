/* node_cmd.c - what `beamlet node` keeps while it runs: the configuration chain it was started
 * with (flags, file, environment) and where each key's value came from, so `beamlet config show`
 * can tell default/file/env/flag apart, and SIGHUP can re-read the chain and apply what can
 * change live (the keys marked BL_CFG_LIVE in config.c's table, through bl_config_apply: log
 * level and format, the allow-list and connection limits, TLS files, heartbeat, ...), logging
 * each change and each key that needs a restart. */
#include "node_ctx.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

/* Keys that a running node applies on reload: BL_CFG_LIVE in the key table (config.c); the rest
 * need a restart. */
static int is_live(const char *key)
{
    const bl_config_keydef *k = bl_config_key_find(key);
    return k && (k->flags & BL_CFG_LIVE);
}

/* the JSON key shown for a table key: the three ways to name the node are one value */
const char *bl__display_key(const char *key)
{
    return !strcmp(key, "sname") || !strcmp(key, "node_name") ? "name" : key;
}

static void set_source(json_t *sources, const char *key, const char *source, const char *from,
                       const char *given)
{
    json_t *o = json_pack("{s:s, s:s}", "source", source, "from", from ? from : "");
    if (o && given) json_object_set_new(o, "given", json_string(given));
    json_object_set_new(sources, bl__display_key(key), o);
}

/* Where each key came from, following bl_config_from_args's order: file, environment, flags. */
static json_t *compute_sources(int argc, char **argv, bl_getenv_fn env, char *file, size_t flen)
{
    json_t *src = json_object();
    const char *key, *flag, *var;
    const char *path = env ? env("BEAMLET_CONFIG") : NULL;
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config")) path = argv[i + 1];
    snprintf(file, flen, "%s", path ? path : "");
    if (path) {
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v)
        {
            char buf[BL_MAX_SEEDS * BL_NODE_LEN], err[256];
            if (k[0] == '_') continue;
            if (bl_config_json_value(k, v, buf, sizeof(buf), err, sizeof(err)) == BL_OK)
                set_source(src, k, "file", path, buf);
        }
        json_decref(root);
    }
    for (size_t i = 0; env && bl_config_key_at(i, &key, &flag, &var); i++) {
        const char *v = var ? env(var) : NULL;
        if (v && *v) set_source(src, key, "env", var, v);
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (!strcmp(argv[i], "--no-publish")) {
            set_source(src, "publish", "flag", "--no-publish", "false");
            continue;
        }
        for (size_t k = 0; bl_config_key_at(k, &key, &flag, &var); k++)
            if (flag && !strcmp(argv[i], flag) && i + 1 < argc) {
                set_source(src, key, "flag", flag, argv[i + 1]);
                i++;
                break;
            }
    }
    return src;
}

json_t *bl__node_config_json(bl__node_ctx *ctx)
{
    json_t *out = json_array();
    json_t *seen = json_object();
    const bl_config *cfg = bl_node_config(ctx->n);
    const char *key, *flag, *var;
    for (size_t i = 0; bl_config_key_at(i, &key, &flag, &var); i++) {
        const char *dk = bl__display_key(key);
        if (json_object_get(seen, dk)) continue;
        json_object_set_new(seen, dk, json_true());
        char val[BL_MAX_SEEDS * BL_NODE_LEN];
        json_t *s = json_object_get(ctx->sources, dk);
        if (!bl__cfg_value(cfg, dk, val, sizeof(val))) {
            const char *given = s ? json_string_value(json_object_get(s, "given")) : NULL;
            snprintf(val, sizeof(val), "%s", given ? given : "");
        }
        int secret = bl__cfg_is_secret(dk);
        /* set cluster-wide and running here: that is where the value comes from */
        char cv[BL_MAX_SEEDS * BL_NODE_LEN];
        int cluster = bl_config_cluster_get(ctx->n, dk, cv, sizeof(cv)) && !strcmp(cv, val);
        json_t *row = json_pack("{s:s, s:s, s:s, s:s}", "key", dk, "value",
                                secret && val[0] ? "(redacted)" : val, "source",
                                cluster ? "cluster"
                                : s     ? json_string_value(json_object_get(s, "source"))
                                        : "default",
                                "from",
                                cluster ? "beamlet config set"
                                : s     ? json_string_value(json_object_get(s, "from"))
                                        : "");
        if (row) json_array_append_new(out, row);
    }
    json_decref(seen);
    return out;
}

static const char *env_lookup(const char *k)
{
    return getenv(k);
}

int bl__node_reload(bl__node_ctx *ctx, const char *why, json_t **changes_out)
{
    bl_node *n = ctx->n;
    bl__sysd_notify("RELOADING=1");
    bl_log(n, BL_LOG_INFO, "reload (%s): re-reading %s", why,
           ctx->file[0] ? ctx->file : "the environment and flags (no config file)");
    /* on the heap: 43 KB of the loop's stack would stay touched after the first reload */
    bl_config *fresh = malloc(sizeof(*fresh));
    if (!fresh) {
        bl_log(n, BL_LOG_WARN, "reload: out of memory; nothing changed");
        bl__sysd_notify("READY=1\nSTATUS=reload refused: out of memory");
        return BL_ENOMEM;
    }
    bl_config_init(fresh);
    char err[512];
    if (bl_config_from_args(fresh, ctx->argc, ctx->argv, env_lookup, err, sizeof(err)) != BL_OK) {
        free(fresh);
        bl_log(n, BL_LOG_WARN, "reload: %s; nothing changed", err);
        bl__sysd_notify("READY=1\nSTATUS=reload refused: configuration invalid");
        return BL_ECONFIG;
    }
    char file[1024];
    json_t *src = compute_sources(ctx->argc, ctx->argv, env_lookup, file, sizeof(file));
    json_t *changes = json_array();
    const bl_config *cur = bl_node_config(n);
    const char *key, *flag, *var;
    json_t *seen = json_object();
    for (size_t i = 0; bl_config_key_at(i, &key, &flag, &var); i++) {
        const char *dk = bl__display_key(key);
        char a[BL_MAX_SEEDS * BL_NODE_LEN], b[BL_MAX_SEEDS * BL_NODE_LEN];
        if (json_object_get(seen, dk) || !bl__cfg_value(cur, dk, a, sizeof(a)) ||
            !bl__cfg_value(fresh, dk, b, sizeof(b)) || !strcmp(a, b))
            continue;
        json_object_set_new(seen, dk, json_true());
        int secret = bl__cfg_is_secret(dk);
        char cv[BL_MAX_SEEDS * BL_NODE_LEN];
        if (bl_config_cluster_get(n, dk, cv, sizeof(cv))) {
            /* set cluster-wide: that wins; the node's own value is what an unset goes back to */
            if (strcmp(b, cv))
                bl_log(n, BL_LOG_INFO,
                       "reload: %s %s in the node's configuration; the cluster configuration "
                       "sets %s (kept)",
                       dk, secret ? "(redacted)" : b, secret ? "(redacted)" : cv);
            continue;
        }
        int live = is_live(dk);
        bl_log(n, live ? BL_LOG_INFO : BL_LOG_WARN, "reload: %s %s -> %s %s", dk,
               secret ? "(redacted)" : a, secret ? "(redacted)" : b,
               live ? "(applied)" : "(needs a restart; not applied)");
        json_array_append_new(changes, json_pack("{s:s, s:b}", "key", dk, "applied", live));
        if (live) {
            json_t *s = json_object_get(src, dk);
            if (s)
                json_object_set(ctx->sources, dk, s);
            else
                json_object_del(ctx->sources, dk);
            char msg[256];
            if (bl_config_apply(n, dk, b, msg, sizeof(msg)) != BL_OK)
                bl_log(n, BL_LOG_WARN, "reload: %s not applied: %s", dk, msg);
        }
    }
    json_decref(seen);
    json_decref(src);
    /* TLS: the files are read again even when their paths are the same (renewed certificates) */
    if (bl_node_config(n)->tls) bl_node_reload_tls(n, fresh);
    bl_config_cluster_set_base(n, fresh);
    free(fresh);
    if (!json_array_size(changes)) bl_log(n, BL_LOG_INFO, "reload: nothing changed");
    bl__sysd_notify("READY=1\nSTATUS=running (reloaded)");
    if (changes_out)
        *changes_out = changes;
    else
        json_decref(changes);
    return BL_OK;
}

void bl__node_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void on_sighup(bl_node *n, int signum, void *ud)
{
    (void)n;
    (void)signum;
    bl__node_reload(ud, "SIGHUP", NULL);
}

int bl__node_run(bl_node *n, int argc, char **argv)
{
    bl__node_ctx ctx = {.n = n, .argc = argc, .argv = argv};
    ctx.sources = compute_sources(argc, argv, env_lookup, ctx.file, sizeof(ctx.file));
    int rc = bl__admin_start(n, &ctx);
    if (rc == BL_OK) rc = bl_node_on_signal(n, SIGHUP, on_sighup, &ctx);
    if (rc == BL_OK) rc = bl__sysd_start(&ctx);
    if (rc == BL_OK) rc = bl__memory_start(n);
    if (rc != BL_OK) {
        bl_log(n, BL_LOG_ERROR, "cannot start the node's admin side: %s", bl_strerror(rc));
        json_decref(ctx.sources);
        return rc;
    }
    bl_node_run(n);
    bl__sysd_notify("STOPPING=1");
    json_decref(ctx.sources);
    return BL_OK;
}
