/* gw_int.h - the gateway's private state, shared by its files: the HTTP server (http.c), the
 * routes (api.c), Prometheus exposition (prom.c), the event stream (stream.c), API keys, roles,
 * rate limits and the audit trail (auth.c), and the `beamlet_gateway` process (gateway.c).
 *
 * One struct per node, owned by the `beamlet_gateway` process (its ud); touched only on the loop
 * thread, like the rest of the node. */
#ifndef BL_GATEWAY_INT_H
#define BL_GATEWAY_INT_H

#include "../runtime/internal.h"
#include "../runtime/jsonterm.h"
#include "beamlet/trace.h"
#include "beamlet/cluster.h"
#include "mhd.h"

#include <jansson.h>

#define GW_PROC "beamlet_gateway"
#define GW_MAX_PARAMS 4
#define GW_CALL_TIMEOUT_MS 3000

typedef struct bl__gw bl__gw;
typedef struct gw_req gw_req;

/* Roles, in order: each one may do what the ones before it may. */
typedef enum { GW_ROLE_NONE = -1, GW_ROLE_VIEWER = 0, GW_ROLE_OPERATOR, GW_ROLE_ADMIN } gw_role;
const char *bl__gw_role_name(int role);
int bl__gw_role_parse(const char *s); /* -1 if unknown */

typedef void (*gw_handler)(gw_req *r);

typedef struct gw_route {
    const char *method;  /* GET, POST, PUT, DELETE */
    const char *pattern; /* "/api/v1/nodes/{node}": {x} matches one segment */
    gw_handler fn;
    int role;  /* least role needed: GW_ROLE_VIEWER for reads */
    int write; /* audited, never anonymous */
} gw_route;

/* The route table (api.c) and its size: the OpenAPI test walks it. */
extern const gw_route bl__gw_routes[];
extern const unsigned bl__gw_nroutes;

/* One request. Handlers answer with gw_reply_* now, or start calls (gw_call) and answer when the
 * last one finishes; the connection is suspended meanwhile. */
struct gw_req {
    bl__gw *g;
    struct MHD_Connection *c;
    const gw_route *route;
    char method[16];
    char path[1024];
    char addr[64]; /* client address */
    char who[64];  /* key name, or "anonymous" */
    char key_id[24];
    int role;
    char *body;
    size_t blen;
    int too_big;
    int nparams;
    char params[GW_MAX_PARAMS][256];
    /* the answer */
    int status;
    char *resp;
    size_t resp_len;
    const char *ctype;
    char retry_after[16];
    char allow[64];
    int answered; /* a response is queued or stored */
    int audited;
    int queued;
    int suspended;
    int outstanding; /* calls in flight */
    int closed;      /* the connection ended while calls were in flight */
    json_t *acc;     /* handlers' accumulator for fan-outs */
    char *text;      /* a text accumulator (Prometheus merge) */
    size_t text_len, text_cap;
    struct gw_stream *stream;
    int started_stream;
    bl_trace trace; /* from the traceparent header, or new (docs/tracing.md) */
    struct gw_req *prev, *next;   /* bl__gw.reqs (a DL list: a request leaves it in O(1)) */
    struct gw_req *rprev, *rnext; /* bl__gw.ready while resume_queued (http.c) */
    int resume_queued;
};

/* An SSE client. */
typedef struct gw_stream {
    struct gw_stream *next;
    bl__gw *g;
    gw_req *r;
    unsigned long long last_id; /* last event id sent */
    char *buf;                  /* bytes waiting to go out */
    size_t len, off, cap;
    int suspended;
    int dead;
} gw_stream;

/* An event of the stream and of /api/v1/events (until the health store keeps them). */
typedef struct gw_event {
    unsigned long long id, time_ms;
    char type[32];
    char node[BL_NODE_LEN];
    char severity[8]; /* info | warn | error */
    char *json;       /* the whole event object, serialized */
} gw_event;

typedef struct gw_apikey {
    UT_hash_handle hh;
    char id[24];
    char name[64];
    int role;
    unsigned char hash[32]; /* SHA-256 of the whole key */
    unsigned long long created_ms, revoked_ms;
    char created_on[BL_NODE_LEN];
    int revoked;
} gw_apikey;

typedef struct gw_bucket {
    UT_hash_handle hh;
    char who[80];
    double tokens;
    ev_tstamp at;
} gw_bucket;

typedef struct gw_audit {
    unsigned long long seq, time_ms;
    char who[64], addr[64], method[16], path[256], outcome[32];
    int status;
} gw_audit;

struct bl__gw {
    bl_node *n;
    bl_proc *proc;
    /* HTTP */
    const bl__mhd *mhd;
    struct MHD_Daemon *d;
    ev_io io;
    ev_timer tm;
    ev_timer hb; /* stream keep-alives, rate-bucket pruning */
    int port, tls, dashboard, loopback;
    char *tls_cert, *tls_key;
    gw_req *reqs; /* every live request */
    gw_req *ready; /* answered while suspended: resumed a share per loop turn (http.c) */
    void *calls;  /* calls in flight (http.c) */
    unsigned nconns;
    void *conns;    /* every open connection, with its request's start (http.c) */
    ev_timer sweep; /* once a second: requests over http_request_timeout_s */
    unsigned long long request_timeouts; /* connections closed for that */
    unsigned long long http_requests[6]; /* by status class 1xx..5xx; [0]: refused by limits */
    /* stream and events */
    gw_stream *streams;
    gw_event *ring;
    unsigned ring_cap, ring_len, ring_head;
    unsigned long long next_event_id;
    int cluster_sub, reg_watch, alert_sub;
    /* auth */
    gw_apikey *keys;
    gw_bucket *buckets;
    unsigned nbuckets;
    gw_audit *audit;
    unsigned audit_cap, audit_len, audit_head;
    unsigned long long next_audit;
    void *pending;  /* bl_gw_metrics replies waiting (gateway.c) */
    int member_sub; /* key sync to joining members */
    int stopping;
};

/* http.c */
int bl__gw_http_start(bl__gw *g);
void bl__gw_http_stop(bl__gw *g);
void bl__gw_http_kick(bl__gw *g); /* run MHD soon (after a resume) */
const char *bl__gw_arg(gw_req *r, const char *name);
const char *bl__gw_header(gw_req *r, const char *name);
/* Answers: body is copied. */
void bl__gw_reply(gw_req *r, int status, const char *ctype, const char *body, size_t len);
/* Takes ownership of j. */
void bl__gw_reply_json(gw_req *r, int status, json_t *j);
/* RFC 9457 problem details. */
void bl__gw_problem(gw_req *r, int status, const char *title, const char *detail);
/* A call on behalf of r; cb runs on the loop with r still valid (unless the connection ended:
 * then r->closed is set and the gateway frees r after the last call). */
typedef void (*gw_call_cb)(gw_req *r, int status, const char *buf, int index);
int bl__gw_call(gw_req *r, const char *proc, const char *node, const char *req, int reqlen,
                gw_call_cb cb);
/* the same with a timeout of its own (calls that wait longer on purpose: long polls, writes
 * that wait for a majority) */
int bl__gw_call_tmo(gw_req *r, const char *proc, const char *node, const char *req, int reqlen,
                    unsigned tmo_ms, gw_call_cb cb);
/* After a call completes: when nothing is outstanding and an answer is stored, send it. */
void bl__gw_call_done(gw_req *r);

/* api.c: the routes and the dashboard's assets */
void bl__gw_dispatch(gw_req *r);
/* term -> JSON as the CLI renders it (maps -> objects, atoms -> strings, ...). */
json_t *bl_term_to_json(const char *buf, int *index);
/* and the other way: bl__json_to_term (runtime/jsonterm.h) */
/* assets.c: embedded files; NULL when unknown */
const unsigned char *bl__gw_asset(const char *name, size_t *len, const char **ctype);

/* prom.c */
void bl__gw_metrics(gw_req *r);
/* The local node's exposition text (malloc'd) with pub/sub counters from pubsub (a decoded
 * `counters` reply at buf/index, or NULL). */
char *bl__gw_metrics_text(bl__gw *g, const char *pbuf, int pindex, size_t *len);

/* stream.c */
int bl__gw_events_start(bl__gw *g);
void bl__gw_events_stop(bl__gw *g);
/* Add an event (takes ownership of body, an object; id, time, type, node, severity are set). */
void bl__gw_event(bl__gw *g, const char *type, const char *node, const char *severity,
                  json_t *body);
void bl__gw_stream_open(gw_req *r);
ssize_t bl__gw_stream_read(gw_stream *s, char *buf, size_t max);
void bl__gw_stream_free(gw_stream *s);
void bl__gw_stream_heartbeat(bl__gw *g);
void bl__gw_events_query(gw_req *r);
/* ms since the epoch, or a duration back from now: 90s, 15m, 2h, 7d. 0 or -1. */
int bl__gw_parse_time(const char *s, unsigned long long *out);

/* auth.c */
int bl__gw_auth_init(bl__gw *g);
void bl__gw_auth_free(bl__gw *g);
/* Decide who r is and whether it may run r->route. 0: go on; else an answer has been queued. */
int bl__gw_authorize(gw_req *r);
/* Audit a write or a refusal. */
void bl__gw_audit(bl__gw *g, gw_req *r, int status, const char *outcome);
void bl__gw_audit_query(gw_req *r);
/* Keys: create (returns the key once, malloc'd), list, revoke; replication. */
char *bl__gw_key_create(bl__gw *g, int role, const char *name, json_t **info);
json_t *bl__gw_key_list(bl__gw *g);
int bl__gw_key_revoke(bl__gw *g, const char *id);
void bl__gw_keys_encode(bl__gw *g, ei_x_buff *x, const gw_apikey *only);
void bl__gw_keys_merge(bl__gw *g, const char *buf, int *idx);
/* keycodec.c: one key's wire form, and a decoder calling fn per key of a [Key] list; returns
 * how many, or -1 at the first malformed one (those before it were given to fn). */
void bl__gw_key_encode(ei_x_buff *x, const gw_apikey *k);
typedef void (*bl__gw_key_fn)(const gw_apikey *k, void *ud);
int bl__gw_keys_decode(const char *buf, int *idx, bl__gw_key_fn fn, void *ud);
void bl__gw_keys_send(bl__gw *g, const char *node, const gw_apikey *only);
json_t *bl__gw_key_json(const gw_apikey *k);
void bl__gw_rate_prune(bl__gw *g);

/* gateway.c */
bl__gw *bl__gw_of(bl_node *n);
/* What this node says about itself on /api/v1/nodes/{node} (stats, configuration). */
json_t *bl__gw_node_self(bl__gw *g);
/* Leave the cluster and stop, after the current answer has gone out. */
void bl__gw_leave_soon(bl__gw *g);

#endif
