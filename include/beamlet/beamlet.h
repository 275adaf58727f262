/* beamlet.h - the public C API of beamlet.
 *
 * A beamlet node is a C program that is a member of an Erlang distribution cluster. It runs one
 * event loop (libev) that owns every piece of node state; everything below is called from that loop
 * thread only (handlers run on it; never block in them).
 *
 * Terms are ei's external term format. Conventions:
 *  - A *message* you send (bl_send, bl_send_name) is a buffer that starts with the version byte
 *    (build it with ei_x_new_with_version + ei_x_encode_*).
 *  - A *term body* (a call request, a reply you fill in) has no version byte (ei_x_new).
 *  - Incoming terms are handed to you as (buf, index): decode them with ei_decode_* starting at
 * index. They have been bounds-checked before you see them, so ei_decode_* cannot read past the
 * end.
 *  - Buffers passed to a callback are only valid during that callback; copy what you keep.
 *
 * Errors are returned as negative BL_E* codes; bl_strerror() names them. Library code never prints:
 * it logs through the node's logger.
 */
#ifndef BEAMLET_H
#define BEAMLET_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include <stddef.h>
#include <stdint.h>
#include <ei.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BL_VERSION "0.1.0"

#define BL_NODE_LEN 256 /* max length of "alive@host" including NUL */
#define BL_NAME_LEN 256 /* max registered-name length including NUL */
#define BL_MAX_SEEDS 32 /* max --join entries */
#define BL_TAG_MAX 512  /* max encoded size of a gen_server call tag */

enum {
    BL_OK = 0,
    BL_EINVAL = -1,      /* bad argument or malformed term */
    BL_ENOMEM = -2,      /* out of memory */
    BL_ENOPROC = -3,     /* no such local process or registered name */
    BL_ENODEDOWN = -4,   /* the node is not (or no longer) connected */
    BL_ETIMEOUT = -5,    /* no answer in time */
    BL_EBUSY = -6,       /* the connection's send queue is above its high-water mark */
    BL_EEXIST = -7,      /* name already registered */
    BL_ETOOBIG = -8,     /* message larger than max_message_size */
    BL_ESYS = -9,        /* a system call failed (see errno) */
    BL_EEPMD = -10,      /* EPMD unreachable or refused registration */
    BL_ECONFIG = -11,    /* invalid configuration */
    BL_EBADRPC = -12,    /* rex answered {badrpc, Reason}; or the peer refused a spawn_request */
    BL_EEXCEPTION = -13, /* the remote function raised: (buf, index) at {Class, Reason, Stack} */
};

const char *bl_strerror(int err);

typedef enum { BL_LOG_ERROR = 0, BL_LOG_WARN, BL_LOG_INFO, BL_LOG_DEBUG } bl_log_level;
typedef enum { BL_LOG_TEXT = 0, BL_LOG_JSON } bl_log_format;

/* Node configuration. bl_config_init() fills defaults; the CLI layers a JSON file, the environment
 * and flags on top (see docs/configuration.md). All strings are owned by the struct. */
typedef struct bl_config {
    char name[BL_NODE_LEN]; /* "alive" or "alive@host" */
    int longnames;          /* 1: --name (FQDN/IP host), 0: --sname (short host) */
    char cookie[256];       /* empty: read cookie_file, then ~/.erlang.cookie */
    char cookie_file[1024];
    char role[32]; /* coordinator | agent | gateway | monitor | worker */
    char cluster[64];
    char join[BL_MAX_SEEDS][BL_NODE_LEN];
    int njoin;
    bl_log_level log_level;
    bl_log_format log_format;
    unsigned net_ticktime_s;       /* like kernel's net_ticktime (default 60) */
    size_t max_message_size;       /* bytes; a larger incoming frame drops its connection */
    size_t send_queue_high_water;  /* bytes queued per connection before sends get BL_EBUSY */
    unsigned connect_timeout_ms;   /* per step of an outgoing connect: lookup, EPMD, TCP */
    unsigned handshake_timeout_ms; /* per handshake packet, both directions */
    unsigned reconnect_backoff_max_ms;
    unsigned max_handshakes_per_address; /* incoming handshakes at once per address (256) */
    /* network security (docs/security.md) */
    char allow[4096];                        /* allow-list, comma separated (empty: any node) */
    unsigned max_connections;                /* connections up + handshakes running (1024) */
    unsigned max_handshake_rate_per_address; /* incoming handshakes started /s (200; 0: off) */
    char proto_dist[16];                 /* inet_tcp | inet6_tcp (default: from the addresses) */
    char listen_address[64];             /* IPv4 or IPv6 address to listen on (default 0.0.0.0) */
    int listen_port;                     /* 0: any */
    int publish;                         /* register with EPMD (default 1) */
    int exit_on_stdin_eof;               /* stop when stdin closes: a supervising port went away */

    /* TLS distribution, like erl -proto_dist inet_tls (docs/security.md) */
    int tls;               /* 1: every distribution connection runs over TLS (default 0) */
    char tls_cert[512];    /* PEM certificate (chain) presented both ways */
    char tls_key[512];     /* PEM private key of tls_cert */
    char tls_ca[512];      /* PEM CA certificates peers' certificates must chain to */
    int tls_verify;        /* 1 (peer, default): a verified peer certificate required both ways */
    char tls_versions[32]; /* "1.2,1.3" (default) */
    char tls_ciphers[512]; /* TLS 1.3 suites and TLS 1.2 ciphers, ':' separated (OpenSSL's) */

    /* cluster membership, failure detection, election (docs/cluster.md) */
    int cluster_member;             /* run beamlet_cluster and discovery (default 1; 0 for tools) */
    char capabilities[512];         /* comma-separated list */
    char metadata[1024];            /* comma-separated key=value pairs */
    unsigned heartbeat_interval_ms; /* default 1000 */
    unsigned failure_threshold;     /* missed heartbeats before suspected (default 3) */
    unsigned election_timeout_ms;   /* base election timeout (default 1500) */
    unsigned remove_after_ms;       /* failed/left members forgotten after (default 300000) */
    unsigned event_log_size;        /* events kept (default 256) */

    /* services (docs/services.md) */
    char data_dir[512];            /* durable state (pub/sub outbox, dedup); empty: none */
    char global_resolve[32];       /* random_exit_name | random_notify_name | notify_all_name */
    char global_mode[16];          /* auto | beam | beamlet */
    char registry_policy[24];      /* round_robin | least_outstanding */
    unsigned registry_max_entries; /* local service entries per node (default 1024) */

    /* task dispatcher (docs/tasks.md) */
    unsigned task_concurrency;      /* tasks this node runs at once as an agent (default 4) */
    char task_exec_allow[2048];     /* absolute paths the `exec` task type may run; empty: off */
    unsigned task_exec_output_max;  /* bytes of an exec task's output kept (default 65536) */

    /* health and metrics (docs/health.md) */
    unsigned health_interval_ms; /* metrics sample interval (default 5000) */
    int health_store;            /* keep events and metrics history on disk (default 1) */
    unsigned history_raw_s;      /* raw samples kept (default 21600: 6 h) */
    unsigned history_1m_s;       /* 1 min rollups kept (default 172800: 2 days) */
    unsigned history_1h_s;       /* 1 h rollups kept (default 5184000: 60 days) */
    unsigned events_retention_s; /* events kept (default 2592000: 30 days) */
    unsigned events_max;         /* at most this many events kept (default 100000) */
    unsigned store_max_mb;       /* the health database's size bound (default 64) */
    /* node status thresholds (also the built-in alert rules' thresholds) */
    double disk_warn_percent, disk_crit_percent; /* a filesystem used above (90, 95) */
    double mem_warn_percent, mem_crit_percent;   /* memory available below (10, 5) */
    double load_warn_per_cpu, load_crit_per_cpu; /* load5 per CPU above (2, 4) */
    char alert_rules[8192];    /* JSON array of alert rules on top of the built-in ones */
    char alert_webhooks[2048]; /* URLs POSTed every alert change, comma separated */
    char health_checks[8192];  /* JSON array of this node's health checks */
    unsigned check_consecutive; /* results in a row before a check changes state (default 2) */

    /* discovery (docs/cluster.md) */
    int epmd_local;                 /* poll the local EPMD (default 1) */
    char epmd_pattern[128];         /* fnmatch pattern on alive names (default "*") */
    char epmd_hosts[1024];          /* comma-separated hosts whose EPMD is polled */
    char hosts_file[1024];          /* .hosts.erlang-style file */
    char dns_name[256];             /* DNS name polled for A records */
    char dns_basename[128];         /* alive name for DNS-found hosts: basename@ip */
    unsigned discovery_interval_ms; /* poll interval for EPMD/hosts/DNS (default 5000) */
    int gossip;                     /* libcluster-compatible UDP multicast gossip (default 0) */
    char gossip_address[64];        /* multicast group (default 233.252.1.32) */
    int gossip_port;                /* default 45892 */
    char gossip_if[64];             /* interface address to send/join on (default 0.0.0.0) */
    char gossip_secret[256];        /* optional shared secret (AES-256-CBC as libcluster) */
    unsigned gossip_interval_ms;    /* default 5000 */

    /* HTTP gateway: REST API, /metrics, dashboard (docs/gateway.md) */
    int http_port;                   /* -1: 8080 for role gateway, off otherwise; 0: off */
    char http_address[64];           /* IPv4 address (default 127.0.0.1) */
    int dashboard;                   /* -1: on when HTTP is on */
    char http_tls_cert[512];         /* PEM files: HTTPS when both are set */
    char http_tls_key[512];
    int http_public_read;            /* reads need no key on a non-loopback address */
    unsigned http_max_connections;   /* default 1024 */
    unsigned http_max_body_bytes;    /* default 1 MiB */
    unsigned http_max_header_bytes;  /* per-connection memory for request line + headers (32 KiB) */
    unsigned http_timeout_s;         /* idle connection timeout (10) */
    unsigned http_request_timeout_s; /* whole request, arriving and answered (30) */
    unsigned http_rate_limit;        /* requests per second per key and per address (50) */
    unsigned http_rate_burst;        /* bucket size (100) */
} bl_config;

void bl_config_init(bl_config *cfg);

typedef struct bl_node bl_node;
typedef struct bl_proc bl_proc;

/* ---- pids ----
 * A pid is a few words: {node, gen, num, serial, creation}, where node is the pid's node name
 * interned in the bl_node that made or decoded it (its table is freed with that node; see
 * docs/c-api.md, "Pids"). Copy pids by assignment; compare them with bl_pid_equal(); read the node
 * name with bl_pid_node(). A zeroed bl_pid is "no pid". Pids cross the wire only through
 * bl_decode_pid() and bl_encode_pid()/bl_x_encode_pid() (never ei_decode_pid on a bl_pid).
 *
 * The table is bounded (4096 names, or 4 x max_connections): at the bound, names of nodes that
 * have no connection are forgotten (one log line). A pid you kept of such a node is then stale:
 * bl_pid_node() answers "", sends to it fail with BL_ENODEDOWN, encoding it fails. */
typedef struct bl_nodename bl_nodename; /* an interned node name (opaque) */
typedef struct bl_pid {
    const bl_nodename *node; /* NULL: no pid */
    unsigned gen;            /* the name's generation when interned (staleness check) */
    unsigned num, serial, creation;
} bl_pid;

/* The pid's node name ("" for no pid or a stale one). Valid while the node that made it lives. */
const char *bl_pid_node(const bl_pid *p);
/* 1 when a and b are the same process (pointer comparison of the node for pids of one node). */
int bl_pid_equal(const bl_pid *a, const bl_pid *b);
/* 1 when p lives on node (a name). */
int bl_pid_is_on(const bl_pid *p, const char *node);
/* "<node.num.serial>" into buf as snprintf (returns what snprintf returns). */
int bl_pid_format(const bl_pid *p, char *buf, size_t len);
/* A pid of node made from its parts (node interned in n). BL_EINVAL for a bad name. */
int bl_pid_make(bl_node *n, const char *node, unsigned num, unsigned serial, unsigned creation,
                bl_pid *out);
/* ei-style codec (0, or -1 for a malformed term / a stale pid / a full name table): decoding
 * interns the node name in n; encoding writes ei's PID/NEW_PID external format (buf NULL: only
 * advance *index, as ei does). */
int bl_decode_pid(bl_node *n, const char *buf, int *index, bl_pid *out);
int bl_encode_pid(char *buf, int *index, const bl_pid *p);
int bl_x_encode_pid(ei_x_buff *x, const bl_pid *p);

/* A gen_server caller: who to reply to and the tag to copy back byte for byte. server: the
 * process that got the call (an [alias|Ref] reply is sent from it to the alias). */
typedef struct bl_from {
    bl_pid pid;
    bl_pid server;
    int tag_len;
    char tag[BL_TAG_MAX];
} bl_from;

/* An incoming message. buf/index: the message term. */
typedef struct bl_msg {
    const char *buf;
    int index;
    int len;        /* bytes of buf */
    int has_sender; /* sender is known (REG_SEND and SEND_SENDER carry it; bl_send sets it) */
    bl_pid sender;
} bl_msg;

/* Process callbacks. Only on_msg or on_call/on_cast are needed; all are optional.
 * on_call: '$gen_call' requests. Encode the reply body into *reply and return 0 to reply now, or
 *          return 1 and keep a copy of *from to answer later with bl_reply(). A negative return
 *          sends no reply (the caller times out).
 * on_cast: '$gen_cast' messages.  on_msg: everything else.
 * on_exit: an exit signal from a linked process while trapping exits (reason term at buf/index).
 * on_terminate: the process is ending (reason: "normal", "killed", ...); release ud here. */
typedef struct bl_proc_ops {
    void (*on_msg)(bl_proc *self, const bl_msg *msg, void *ud);
    int (*on_call)(bl_proc *self, const bl_from *from, const char *buf, int index, ei_x_buff *reply,
                   void *ud);
    void (*on_cast)(bl_proc *self, const char *buf, int index, void *ud);
    void (*on_exit)(bl_proc *self, const bl_pid *from, const char *buf, int index, void *ud);
    void (*on_terminate)(bl_proc *self, const char *reason, void *ud);
} bl_proc_ops;

/* ---- node lifecycle ---- */
int bl_node_new(const bl_config *cfg, bl_node **out);
/* Listen, register in EPMD, connect to cfg->join seeds. */
int bl_node_start(bl_node *n);
/* Run the event loop until bl_node_stop(). Returns 0 after a clean stop. */
int bl_node_run(bl_node *n);
/* Ask the loop to stop: connections are closed cleanly, processes terminated ("shutdown"). */
void bl_node_stop(bl_node *n);
void bl_node_free(bl_node *n);
const char *bl_node_name(const bl_node *n);
const bl_config *bl_node_config(const bl_node *n);
void bl_log(bl_node *n, bl_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- processes ---- */
/* Spawn a process; name may be NULL. *out may be NULL. */
int bl_spawn(bl_node *n, const char *name, const bl_proc_ops *ops, void *ud, bl_proc **out);
const bl_pid *bl_self(const bl_proc *p);
bl_node *bl_proc_node(const bl_proc *p);
void *bl_proc_data(const bl_proc *p);
int bl_register(bl_proc *p, const char *name);
bl_proc *bl_whereis(bl_node *n, const char *name);
void bl_trap_exit(bl_proc *p, int on);
/* End a process: linked processes get an exit signal with reason (an atom name, e.g. "normal").
 * Safe to call from the process's own handler; p is freed after the handler returns. */
void bl_exit(bl_proc *p, const char *reason);

/* ---- sending ---- */
/* msg/len: a term with version byte. */
int bl_send(bl_proc *from, const bl_pid *to, const char *msg, int len);
/* node == NULL or our own name: local registered process (BL_ENOPROC if none). A remote name
 * that does not exist is dropped by the receiving node, as in BEAM. */
int bl_send_name(bl_proc *from, const char *name, const char *node, const char *msg, int len);

/* ---- links ---- */
int bl_link(bl_proc *p, const bl_pid *to);
int bl_unlink(bl_proc *p, const bl_pid *to);

/* ---- gen_server shapes ---- */
/* reply: a term body (no version byte). */
int bl_reply(bl_node *n, const bl_from *from, const char *reply, int len);

/* Result of an asynchronous call. status: 0 and (buf, index) = the reply term, or a BL_E* code. */
typedef void (*bl_call_cb)(bl_proc *p, int status, const char *buf, int index, void *ud);

/* gen_server:call(Dest, Request) from C, asynchronously. Dest is to_pid if non-NULL, else
 * {name, node}. req: a term body. Never blocks. On BL_OK, cb runs once (reply, BL_ETIMEOUT,
 * BL_ENODEDOWN, or BL_ENOPROC for a missing server on a C node) -- unless p ends first: then the
 * call is dropped without running cb, so free whatever ud holds in p's on_terminate.
 * On an error return cb never runs. */
int bl_call(bl_proc *p, const bl_pid *to_pid, const char *name, const char *node, const char *req,
            int reqlen, unsigned timeout_ms, bl_call_cb cb, void *ud);
/* gen_server:cast. */
int bl_cast(bl_proc *p, const bl_pid *to_pid, const char *name, const char *node, const char *req,
            int reqlen);
/* M:F(Args) on a BEAM node through rex. args: an encoded list body. {badrpc, R} -> status
 * BL_EBADRPC with (buf, index) at R. */
int bl_rpc(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
           int argslen, unsigned timeout_ms, bl_call_cb cb, void *ud);
/* net_adm:ping: status 0 = pong. */
int bl_ping(bl_proc *p, const char *node, unsigned timeout_ms, bl_call_cb cb, void *ud);

/* erpc:call(Node, M, F, Args, Timeout) from C: args is an encoded list body. With a peer that
 * supports spawn_request (OTP 23+ and beamlet nodes) it is a real erpc call; with a peer that does
 * not, the same call through rex. cb runs once with:
 *   0              the function returned: (buf, index) at the value
 *   BL_EEXCEPTION  it raised: (buf, index) at {Class, Reason, Stack}, Class throw | exit | error
 *                  (undef for a function the node does not export: {error, undef, Stack})
 *   BL_ETIMEOUT    no result in time (the remote process is left running, as erpc does)
 *   BL_ENODEDOWN   the node is unreachable or the connection dropped before the result
 *   BL_EBADRPC     the peer refused the request: (buf, index) at the reason (e.g. badopt)
 * A connection that is not up yet is set up first (the peer's flags decide between erpc and rex).
 * As bl_call: if p ends first the call is dropped without running cb. */
int bl_erpc_call(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
                 int argslen, unsigned timeout_ms, bl_call_cb cb, void *ud);
/* erpc:cast: M:F(Args) on node, no answer (a spawn_request with {reply, no}, or a rex cast). */
int bl_erpc_cast(bl_proc *p, const char *node, const char *mod, const char *fun, const char *args,
                 int argslen);

/* ---- exported functions ----
 * What BEAM's spawn/4, spawn_link/4, spawn_monitor/4, rpc:call, rpc:multicall, erpc:call,
 * erpc:multicall and erpc:cast run on this node: each request spawns a process (self) that calls
 * fn. args/index: the argument list (a proper list of arity elements: ei_decode_list_header,
 * then each element). fn encodes a term body (no version byte) into *result and returns:
 *   BL_FN_RETURN  result is the return value
 *   BL_FN_THROW   throw(result)        BL_FN_EXIT  exit(result)
 *   BL_FN_ERROR   error(result): the caller sees {exception, Reason, [{Mod, Fun, Arity, []}]}
 *   BL_FN_LATER   nothing yet: the process stays alive (it may bl_call, bl_send, get messages)
 *                 and bl_fn_return() finishes it later; the loop is never blocked.
 * A function that is not exported fails as in BEAM: undef ({badrpc, {'EXIT', {undef, _}}} from
 * rpc:call, error:{exception, undef, _} from erpc:call, an undef exit of the spawned process).
 * Built in: erlang:node/0, nodes/0,1, registered/0, whereis/1, memory/0,1, system_info/1,
 * is_alive/0; beamlet:info/0, beamlet:stats/0 (docs/c-api.md). BL_EEXIST if already exported. */
enum { BL_FN_RETURN = 0, BL_FN_THROW = 1, BL_FN_EXIT = 2, BL_FN_ERROR = 3, BL_FN_LATER = 4 };
typedef int (*bl_export_fn)(bl_proc *self, const char *args, int index, int arity,
                            ei_x_buff *result, void *ud);
int bl_export(bl_node *n, const char *mod, const char *fun, int arity, bl_export_fn fn, void *ud);
int bl_unexport(bl_node *n, const char *mod, const char *fun, int arity);
/* Finish a function that returned BL_FN_LATER; self: bl_self() of the process it got. kind:
 * BL_FN_RETURN .. BL_FN_ERROR, term: a term body. BL_ENOPROC when that process is gone (killed by
 * an exit signal, or its node shut down): free what you kept for it then. */
int bl_fn_return(bl_node *n, const bl_pid *self, int kind, const char *term, int len);

/* ---- connections and node monitoring ---- */
/* Start connecting (no-op when connected or connecting). */
int bl_connect(bl_node *n, const char *node);
int bl_disconnect(bl_node *n, const char *node);
int bl_is_connected(const bl_node *n, const char *node);

typedef enum { BL_NODEUP = 1, BL_NODEDOWN = 2 } bl_node_event;
typedef void (*bl_node_cb)(bl_node *n, bl_node_event ev, const char *node, const char *reason,
                           void *ud);
/* Returns a subscription id (> 0) or a BL_E* code. */
int bl_monitor_nodes(bl_node *n, bl_node_cb cb, void *ud);
void bl_demonitor_nodes(bl_node *n, int id);

/* ---- timers ---- */
typedef void (*bl_timer_cb)(bl_node *n, void *ud);
/* One-shot (repeat_ms 0) or repeating timer. Returns an id > 0. */
int bl_timer(bl_node *n, unsigned after_ms, unsigned repeat_ms, bl_timer_cb cb, void *ud);
void bl_timer_cancel(bl_node *n, int id);

/* ---- signals and settings that change live (runtime/signal.c) ---- */
typedef void (*bl_signal_cb)(bl_node *n, int signum, void *ud);
/* Run cb on the loop thread each time the process receives signum (SIGHUP for a reload, say);
 * SIGTERM and SIGINT already stop the node. Several hooks may watch one signal. Block signum
 * (pthread_sigmask) before bl_node_start: the node's own threads inherit the mask, and a thread
 * that does not block it would take the signal's default action instead (usually: exit). */
int bl_node_on_signal(bl_node *n, int signum, bl_signal_cb cb, void *ud);
/* TLS distribution: re-read the certificate, key and CA files (the paths in cfg, or the node's
 * own when cfg is NULL) into a new context. New connections use it; live ones keep theirs.
 * BL_ECONFIG (logged, the running context stays) when a file is bad; BL_EINVAL when TLS is off. */
int bl_node_reload_tls(bl_node *n, const bl_config *cfg);
/* Change the log level and format of a running node. */
void bl_node_set_log(bl_node *n, bl_log_level level, bl_log_format format);
/* Apply cfg's allow-list and connection limits (allow, max_connections,
 * max_handshakes_per_address, max_handshake_rate_per_address) to a running node. Like
 * net_kernel:allow/1 they apply to connections set up from now on: live ones stay. BL_OK, or
 * BL_ENOMEM (nothing changed). */
int bl_node_set_admission(bl_node *n, const bl_config *cfg);

/* ---- statistics ---- */
typedef struct bl_stats {
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t conns_accepted, conns_connected, conns_dropped, handshakes_failed;
    unsigned connections, processes;
    /* refused by the node's admission control (docs/security.md), by reason */
    uint64_t refused_not_allowed, refused_max_connections, refused_per_address, refused_rate,
        refused_busy;
    uint64_t refusal_logs_suppressed; /* refusal log lines over the budget, not written */
} bl_stats;
void bl_node_stats(const bl_node *n, bl_stats *out);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
