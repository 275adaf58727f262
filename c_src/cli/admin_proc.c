/* admin_proc.c - the `beamlet_admin` process that `beamlet node` adds to its node: the requests
 * behind `beamlet config show`, `service list|restart` and `node leave`. It lives in the CLI
 * layer because it needs what only the CLI has (the configuration chain and its sources) and it
 * may call every layer below (services, cluster); the runtime never calls up into it. Clients
 * reach it through the `beamlet` process ({call, beamlet_admin, Req, Tmo}), so a node embedded in
 * another C program answers {error, noproc} at once. Protocol (docs/deploy.md):
 *   config            -> [#{key, value, source, from}]    (secrets redacted)
 *   services          -> [#{service, name, running, pid, restarts}]
 *   {restart, Name}   -> {ok, #{service, pid, restarts}} | {error, unknown_service | Reason}
 *   leave             -> ok, then the node leaves the cluster and stops (exit status 0) */
#include "node_ctx.h"
#include "render.h"

#include "beamlet/pg.h"

#include <stdlib.h>

/* the services' start functions (declared by services.c the same way) */
int bl_registry_start(bl_node *n);
int bl_global_start(bl_node *n);
int bl_pubsub_start(bl_node *n);

static int pg_default_start(bl_node *n)
{
    return bl_pg_start_scope(n, BL_PG_DEFAULT_SCOPE);
}

/* The C service processes an operator may restart: one row each. */
typedef struct {
    const char *service; /* as `service list` shows it */
    const char *regname; /* its registered process */
    int (*start)(bl_node *n);
} svc_ops;

static const svc_ops SERVICES[] = {
    {"pg", BL_PG_DEFAULT_SCOPE, pg_default_start},
    {"registry", "beamlet_registry", bl_registry_start},
    {"global", "beamlet_global", bl_global_start},
    {"pubsub", "beamlet_pubsub", bl_pubsub_start},
};
#define NSERVICES (sizeof(SERVICES) / sizeof(SERVICES[0]))

typedef struct {
    bl__node_ctx *ctx;
    unsigned restarts[NSERVICES];
} admin_state;

static void enc_pid_text(ei_x_buff *r, bl_proc *p)
{
    char s[64];
    const bl_pid *pid = bl_self(p);
    snprintf(s, sizeof(s), "<%u.%u>", pid->num, pid->serial);
    ei_x_encode_binary(r, s, (long)strlen(s));
}

static void enc_services(admin_state *st, ei_x_buff *r)
{
    bl_node *n = st->ctx->n;
    ei_x_encode_list_header(r, NSERVICES);
    for (size_t i = 0; i < NSERVICES; i++) {
        bl_proc *p = bl_whereis(n, SERVICES[i].regname);
        ei_x_encode_map_header(r, 5);
        ei_x_encode_atom(r, "service");
        ei_x_encode_binary(r, SERVICES[i].service, (long)strlen(SERVICES[i].service));
        ei_x_encode_atom(r, "name");
        ei_x_encode_atom(r, SERVICES[i].regname);
        ei_x_encode_atom(r, "running");
        ei_x_encode_atom(r, p ? "true" : "false");
        ei_x_encode_atom(r, "pid");
        if (p)
            enc_pid_text(r, p);
        else
            ei_x_encode_atom(r, "undefined");
        ei_x_encode_atom(r, "restarts");
        ei_x_encode_ulong(r, st->restarts[i]);
    }
    ei_x_encode_empty_list(r);
}

static void enc_error(ei_x_buff *r, const char *why)
{
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "error");
    ei_x_encode_atom(r, why);
}

static void restart(admin_state *st, const char *name, ei_x_buff *r)
{
    bl_node *n = st->ctx->n;
    size_t i;
    for (i = 0; i < NSERVICES; i++)
        if (!strcmp(name, SERVICES[i].service) || !strcmp(name, SERVICES[i].regname)) break;
    if (i == NSERVICES) return enc_error(r, "unknown_service");
    bl_proc *old = bl_whereis(n, SERVICES[i].regname);
    bl_log(n, BL_LOG_WARN, "admin: restarting service %s (%s)", SERVICES[i].service,
           old ? "running" : "not running");
    if (old) bl_exit(old, "restart"); /* its on_terminate frees its state; the name is free now */
    int rc = SERVICES[i].start(n);
    bl_proc *p = rc == BL_OK ? bl_whereis(n, SERVICES[i].regname) : NULL;
    if (!p) {
        bl_log(n, BL_LOG_ERROR, "admin: service %s did not start again: %s", SERVICES[i].service,
               bl_strerror(rc));
        return enc_error(r, "start_failed");
    }
    st->restarts[i]++;
    bl_log(n, BL_LOG_INFO, "admin: service %s restarted (restart %u)", SERVICES[i].service,
           st->restarts[i]);
    ei_x_encode_tuple_header(r, 2);
    ei_x_encode_atom(r, "ok");
    ei_x_encode_map_header(r, 3);
    ei_x_encode_atom(r, "service");
    ei_x_encode_binary(r, SERVICES[i].service, (long)strlen(SERVICES[i].service));
    ei_x_encode_atom(r, "pid");
    enc_pid_text(r, p);
    ei_x_encode_atom(r, "restarts");
    ei_x_encode_ulong(r, st->restarts[i]);
}

static void leave_cb(bl_node *n, void *ud)
{
    (void)ud;
    bl_log(n, BL_LOG_INFO, "admin: leaving the cluster and stopping (beamlet node leave)");
    bl_node_stop(n);
}

typedef int (*req_fn)(admin_state *st, const char *buf, int idx, ei_x_buff *r);

static int req_config(admin_state *st, const char *buf, int idx, ei_x_buff *r)
{
    (void)buf;
    (void)idx;
    json_t *j = bl__node_config_json(st->ctx);
    int rc = bl__json_to_term(j, r, BL__JT_ATOM_KEYS); /* our own document: fails only OOM */
    json_decref(j);
    if (rc < 0) return -1;
    return 0;
}

static int req_services(admin_state *st, const char *buf, int idx, ei_x_buff *r)
{
    (void)buf;
    (void)idx;
    enc_services(st, r);
    return 0;
}

static int req_leave(admin_state *st, const char *buf, int idx, ei_x_buff *r)
{
    (void)buf;
    (void)idx;
    /* answer first; stop a moment later so the reply leaves before the connections close */
    if (!st->ctx->leave_timer) st->ctx->leave_timer = bl_timer(st->ctx->n, 200, 0, leave_cb, NULL);
    ei_x_encode_atom(r, "ok");
    return 0;
}

static int req_restart(admin_state *st, const char *buf, int idx, ei_x_buff *r)
{
    char name[MAXATOMLEN_UTF8];
    int type, size;
    /* {restart, Name}: Name an atom or a binary */
    if (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_BINARY_EXT &&
        size < (int)sizeof(name)) {
        long len;
        if (ei_decode_binary(buf, &idx, name, &len) < 0) return -1;
        name[len] = 0;
    } else if (ei_decode_atom(buf, &idx, name) < 0) {
        enc_error(r, "badarg");
        return 0;
    }
    restart(st, name, r);
    return 0;
}

/* {request atom, arity (0: a bare atom), handler} */
static const struct {
    const char *req;
    int arity;
    req_fn fn;
} REQS[] = {
    {"config", 0, req_config},
    {"services", 0, req_services},
    {"leave", 0, req_leave},
    {"restart", 2, req_restart},
};

static int admin_call(bl_proc *self, const bl_from *from, const char *buf, int idx,
                      ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    char tag[MAXATOMLEN_UTF8];
    int j = idx, ar = 0;
    if (ei_decode_atom(buf, &j, tag) < 0) {
        j = idx;
        if (ei_decode_tuple_header(buf, &j, &ar) < 0 || ar < 1 || ei_decode_atom(buf, &j, tag) < 0)
            tag[0] = 0;
    }
    for (size_t i = 0; i < sizeof(REQS) / sizeof(REQS[0]); i++)
        if (REQS[i].arity == ar && !strcmp(REQS[i].req, tag)) {
            int rc = REQS[i].fn(ud, buf, j, reply);
            if (rc < 0) {
                reply->index = 0;
                enc_error(reply, "badarg");
            }
            return 0;
        }
    enc_error(reply, "unknown_request");
    return 0;
}

static void admin_terminate(bl_proc *self, const char *reason, void *ud)
{
    (void)self;
    (void)reason;
    free(ud);
}

int bl__admin_start(bl_node *n, bl__node_ctx *ctx)
{
    static const bl_proc_ops ops = {.on_call = admin_call, .on_terminate = admin_terminate};
    admin_state *st = calloc(1, sizeof(*st));
    if (!st) return BL_ENOMEM;
    st->ctx = ctx;
    int rc = bl_spawn(n, "beamlet_admin", &ops, st, NULL);
    if (rc != BL_OK) free(st);
    return rc;
}
