/* internal.h - the node's private structures, shared by the runtime, dist and otp layers.
 *
 * One struct (bl_node) owns all state; it is touched only on the loop thread (host name lookups
 * run on short-lived threads that see only their own job, dist/resolve.c). */
#ifndef BL_RUNTIME_INTERNAL_H
#define BL_RUNTIME_INTERNAL_H

#include "beamlet/beamlet.h"
#include "beamlet/trace.h"
#include "../dist/control.h"
#include "../dist/flags.h"
#include "../dist/sendq.h"
#include "../dist/epmd.h"
#include "../dist/hsm.h"
#include "../dist/term.h"

#include <ev.h>
#include <uthash.h>
#include <utlist.h>
#include <stdarg.h>
#include <string.h>

struct bl_hs;
struct bl_tx;
struct bl_tls;
struct bl_guard;
struct bl_resolver;
struct bl_cluster;
struct bl_dh_conn;
struct bl_dh_scratch;
typedef struct bl__intern bl__intern;

typedef enum {
    CONN_CONNECTING, /* a handshake (either direction) is running; frames queue up */
    CONN_UP,
    CONN_DOWN, /* last attempt failed: remember the backoff */
} bl_conn_state;

typedef struct bl_conn {
    UT_hash_handle hh; /* in node->conns, keyed by node name */
    bl_node *n;
    bl_conn_state state;
    int fd;
    struct bl_tx *tx;       /* the live stream: plain TCP or TLS (dist/transport.h) */
    int read_wants_write;   /* TLS: a read waits for the socket to be writable */
    int write_wants_read;   /* TLS: a write waits for the socket to be readable */
    int outgoing;           /* this side initiated the live fd */
    struct bl_hs *hs;       /* the handshake owning this node's slot (dist/handshake.c) */
    struct bl_hs *hs_alive; /* an incoming handshake answered "alive" while we are up */
    int wanted;             /* someone asked to connect: reconnect if an incoming one fails */
    ev_io rio, wio;
    char *rbuf;
    size_t rlen, rcap;
    bl_sendq q;
    ev_tstamp last_read, last_write, last_progress;
    ev_tstamp retry_at;
    unsigned backoff_ms;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t unknown_ops_logged; /* bit per op code < 64, logged once */
    uint64_t peer_flags;         /* the peer's distribution flags from the handshake (0: unknown) */
    int busy;                    /* reads have filled the buffer: use large reads */
    int streaming;               /* reads are batched on rtimer, rio is stopped (dist/conn.c) */
    uint64_t batched_reads;      /* read turns taken on rtimer */
    ev_timer rtimer;             /* streaming: the read turns */
    int reading;                 /* inside conn_parse: closing is deferred */
    int close_pending;
    char *close_reason;    /* while close_pending (NULL: out of memory) */
    struct bl_dh_conn *dh; /* distribution headers: atom caches, fragments (dist/disthdr.c) */
    char node[];           /* sized to the name: a full mesh holds one per member */
} bl_conn;

/* An OTP seq_trace token while a process handles the message that brought it
 * (runtime/seqtrace.c): Flags and Label as encoded, the holder's current serial. */
#define BL_SEQTOK_MAX 256
typedef struct bl_seqtok {
    int valid;
    int fl_len;
    unsigned long long serial;
    char fl[BL_SEQTOK_MAX];
} bl_seqtok;

/* What is current while one message is handled (runtime/trace.c). */
typedef struct bl_ctx {
    bl_trace trace;
    bl_seqtok tok;
    bl_proc *proc; /* the process handling it */
} bl_ctx;

typedef struct bl__ctx_save {
    int nested;
    bl_ctx saved;
} bl__ctx_save;

/* Records a trace event (the health service's event log). */
typedef void (*bl__trace_hook_fn)(bl_node *n, const bl_trace *t, const char *what,
                                  const char *detail_json, void *ud);

/* A link from a local process to another pid (local or remote). */
typedef struct bl_linkent {
    struct bl_linkent *next;
    bl_pid pid;
} bl_linkent;

/* Someone (remote) monitoring a local process (MONITOR_P). */
typedef struct bl_pmon {
    struct bl_pmon *next;
    bl_pid watcher;
    bl__ref ref;
    int by_name; /* MONITOR_P named the process: the exit names it too */
} bl_pmon;

/* A process of ours monitoring a remote one (bl__monitor_pid): cb when it ends. */
typedef void (*bl__down_cb)(bl_proc *p, const bl_pid *pid, const char *reason, int index,
                            void *ud);
typedef struct bl_pmon_out {
    struct bl_pmon_out *next;
    bl_pid pid;
    bl__ref ref;
    bl__down_cb cb;
    void *ud;
} bl_pmon_out;

/* How a call's answer is shaped. */
typedef enum {
    PCALL_GEN = 0, /* gen_server: {Ref, Reply} or {[alias|Ref], Reply} */
    PCALL_REX,     /* rex: {Ref, {badrpc, R}} -> BL_EBADRPC */
    PCALL_ERPC,    /* spawn_request of erpc:execute_call: SPAWN_REPLY, then the monitor exit */
    PCALL_ERPC_REX /* bl_erpc_call to a peer without SPAWN: a rex call, results mapped */
} bl_pcall_kind;

/* An outgoing gen_server call (or erpc request) awaiting its reply. */
typedef struct bl_pcall {
    UT_hash_handle hh; /* in proc->calls, keyed by ref.n[0..2] */
    UT_hash_handle ah; /* in node->aliases when aliased */
    unsigned key[3];
    int aliased; /* the tag is [alias|ref]: replies come by ALIAS_SEND to ref */
    bl_pcall_kind kind;
    bl__ref res;    /* PCALL_ERPC: the Res reference erpc:execute_call tags the result with */
    bl_pid spawned; /* PCALL_ERPC: the process the peer spawned (after SPAWN_REPLY) */
    int spawn_replied;
    int pending; /* bl_erpc_call waiting for the connection to learn the peer's flags */
    int is_cast; /* pending bl_erpc_cast: sent on nodeup, completes without a result */
    char *pend;  /* pending: the encoded {M, F, Args} body (owned) */
    int pend_len;
    bl_proc *p;
    bl__ref ref;
    char node[BL_NODE_LEN]; /* target node: nodedown fails the call */
    int monitored;          /* we sent MONITOR_P with ref */
    bl_pid target;
    int target_is_pid;
    char target_name[BL_NAME_LEN];
    ev_timer timer;
    bl_call_cb cb;
    void *ud;
    bl_trace trace; /* current when the call was made: current again for cb */
} bl_pcall;

struct bl_proc {
    UT_hash_handle hh; /* in node->procs, keyed by pid.num */
    bl_node *n;
    bl_pid pid;
    struct bl_regname *reg; /* its registered name (freed with the process), or NULL */
    bl_proc_ops ops;
    void *ud;
    int trap_exit;
    int dead;
    bl_linkent *links;
    bl_pmon *monitors;
    bl_pmon_out *monitoring; /* remote processes it monitors (bl__monitor_pid) */
    bl_pcall *calls;
    unsigned long long st_clock; /* seq_trace serial clock (runtime/seqtrace.c) */
    const char *why; /* during on_terminate: the exit reason term (why_len bytes, no version) */
    int why_len;
    struct bl_proc *zombie_next;
};

typedef struct bl_regname {
    UT_hash_handle hh;
    char name[BL_NAME_LEN];
    bl_proc *p;
} bl_regname;

/* A message between two local processes, delivered from the loop (never re-entrantly). */
enum { LOCAL_MSG = 0, LOCAL_EXIT = 1 };
typedef struct bl_localmsg {
    struct bl_localmsg *next;
    bl_pid to;
    char toname[BL_NAME_LEN];
    int has_sender;
    bl_pid sender;
    int kind; /* LOCAL_MSG or LOCAL_EXIT */
    bl_trace trace; /* current when it was sent */
    int tok_fl_len; /* > 0: a seq_trace token, its Flags and Label after the data */
    unsigned long long tok_serial;
    int len;
    char data[];
} bl_localmsg;

typedef struct bl_nodemon {
    struct bl_nodemon *next;
    int id;
    bl_node_cb cb;
    void *ud;
} bl_nodemon;

typedef struct bl_utimer {
    UT_hash_handle hh;
    int id;
    bl_node *n;
    ev_timer w;
    bl_timer_cb cb;
    void *ud;
} bl_utimer;

#define BL__RSCRATCH (64 * 1024)

struct bl_node {
    bl_config cfg;
    struct ev_loop *loop;
    char name[BL_NODE_LEN];
    char alive[BL_NODE_LEN];
    char host[BL_NODE_LEN];
    unsigned creation;
    char cookie[256];

    int listen_fd, listen_port;
    struct bl_tls *tls; /* TLS distribution's current context; NULL: plain TCP (dist/tls.c) */
    int inet6; /* inet6_tcp: IPv6 addresses for node hosts, EPMD on ::1 */
    ev_io listen_io;
    bl_epmd_reg epmd;
    ev_signal sig_term, sig_int;
    ev_io stdin_io;
    ev_timer tick_timer;
    ev_idle idle;
    ev_check check;
    struct bl_cluster *cluster;

    bl_conn *conns;
    struct bl_hs *handshakes; /* every running handshake (dist/handshake.c) */
    unsigned nhandshakes;
    struct bl_guard *guard; /* allow-list, limits, refusal-log budget (dist/guard.c) */
    struct bl_resolver *resolver;
    bl_proc *procs;
    bl_regname *names;
    bl_proc *zombies;
    bl_localmsg *localq_head, *localq_tail;
    bl_nodemon *nodemons;
    int next_nodemon_id;
    bl_utimer *timers;
    int next_timer_id;
    struct bl_export *exports; /* functions served to spawn_request (otp/export.c) */
    bl_pcall *aliases;         /* calls whose replies come to an alias (otp/gen.c) */

    unsigned next_pid_num, next_pid_serial;
    struct bl__intern *intern;    /* node names of every pid held here (runtime/intern.c) */
    const bl_nodename *self_name; /* our own, pinned */
    unsigned ref_ids[3];
    unsigned long long unlink_seq;

    char *rscratch; /* BL__RSCRATCH bytes: reads land here first (dist/conn.c); allocated at the
                     * first read, so a node without connections does not hold it */
    ei_x_buff scratch;        /* control-tuple encoding */
    ei_x_buff scratch2;       /* message-body encoding for runtime-built messages */
    struct bl_dh_scratch *dh; /* rewrite buffer and encoder plan of dist/disthdr.c */
    struct bl_apool *apool;   /* atom texts of every connection's atom caches (dist/atomcache.c) */
    bl_stats stats;
    ev_tstamp started_at;
    int epmd_state; /* start-up registration: 0 waiting, 1 registered, -1 failed */
    int running, stopping, started;
    struct bl_sighook *sighooks; /* runtime/signal.c */
    struct bl_cfghook *cfghooks; /* runtime/signal.c: who keeps state derived from cfg */
    struct bl__child *children;  /* child processes not reaped yet (runtime/child.c) */
    bl_config *cfg_base; /* cfg as given, before the persisted cluster configuration (cconf.c) */
    bl_ctx ctx;                  /* current trace and seq_trace token (runtime/trace.c) */
    unsigned long long st_clock; /* seq_trace clock of sends made outside any process */
    bl__trace_hook_fn trace_hook;
    void *trace_hook_ud;
};

/* runtime/signal.c */
void bl_sighooks_free(bl_node *n);
/* Configuration hooks: fn(n, key) after key changed in n->cfg at run time (loop thread). A
 * module that copied a value out of n->cfg at start (a timer's interval, a rule set) re-reads. */
typedef void (*bl__cfg_hook_fn)(bl_node *n, const char *key, void *ud);
int bl__node_on_config(bl_node *n, bl__cfg_hook_fn fn, void *ud);
void bl__node_off_config(bl_node *n, bl__cfg_hook_fn fn, void *ud);
/* n->cfg = *fresh (where key changed), then every hook. */
void bl__node_config_replace(bl_node *n, const bl_config *fresh, const char *key);
void bl_cfghooks_free(bl_node *n);

/* runtime/log.c */
void bl_logv(bl_node *n, bl_log_level lvl, const char *fmt, va_list ap);

/* runtime/trace.c: a delivery's context. enter saves what is current (a nested delivery) and
 * starts empty with p as the handling process; leave restores. */
void bl__ctx_enter(bl_node *n, bl_proc *p, bl__ctx_save *s);
void bl__ctx_leave(bl_node *n, bl__ctx_save *s);
void bl__trace_set_hook(bl_node *n, bl__trace_hook_fn fn, void *ud);
/* The trace of a gen_server call tag, [Ref | <<Traceparent>>] or [[alias|Ref] | <<...>>]
 * (otp/gen.c): 1 and *out set when it has one. */
int bl__tag_trace(const char *tag, int len, bl_trace *out);

/* runtime/seqtrace.c */
/* The token term at buf[off, off+len) (a _TT control field); -1 when malformed or too big. */
int bl__seqtok_decode(const char *buf, size_t off, size_t len, bl_seqtok *out);
/* p (NULL: none) received a message with token t: t becomes current, p's clock advances. */
void bl__seqtok_received(bl_node *n, bl_proc *p, const bl_seqtok *t);
/* A send now: encode the token to send (serials advanced) into x; 0 when none is current. */
int bl__seqtok_encode_send(bl_node *n, const bl_pid *sender, ei_x_buff *x);
/* The same for a local message: *out is what its receiver will hold. */
int bl__seqtok_for_local(bl_node *n, bl_seqtok *out);

/* runtime/util.c */
unsigned long long bl_now_ms(void);    /* wall clock, ms since the epoch */
int bl_is_tool_node(const char *node); /* the admin CLI's short-lived nodes: never members */
/* A connected peer without spawn_request: an ei program (erl_call, ...), never a beamlet or a
 * supported BEAM node. The services tell it nothing on nodeup: ei_rpc takes the first message
 * that arrives as rex's answer. */
int bl_is_plain_peer(bl_node *n, const char *node);

/* runtime/node.c */
int bl_is_local_node(const bl_node *n, const char *node);
/* p is a pid of this node. */
static inline int bl__pid_is_local(const bl_node *n, const bl_pid *p)
{
    return p->node == n->self_name || bl_is_local_node(n, bl_pid_node(p));
}

/* runtime/intern.c: the node-name table behind every bl_pid (bounded; see its top comment) */
int bl__intern_init(bl_node *n); /* in bl_node_new, after the name is known */
void bl__intern_free(bl_node *n);
void bl__intern_stats(const bl_node *n, unsigned *live, unsigned *cap,
                      unsigned long long *forgotten);
int bl__pid_make(bl_node *n, const char *node, unsigned num, unsigned serial, unsigned creation,
                 bl_pid *out);
int bl__pid_stale(const bl_pid *p);
/* The control codec (dist/control.c) keeps ei's erlang_pid for the frame at hand: */
int bl__pid_from_ei(bl_node *n, const erlang_pid *e, bl_pid *out);
int bl__pid_to_ei(const bl_pid *p, erlang_pid *out); /* -1: stale */

/* dist/conn.c */
bl_conn *bl_conn_find(bl_node *n, const char *node);
/* The flags of node's live connection (both sides', BL_DFLAG_* of dist/flags.h); 0 when not
 * connected. */
uint64_t bl_conn_peer_flags(bl_node *n, const char *node);
/* Queue a frame (control tuple already in n->scratch with version byte) plus optional message
 * (with version byte), connecting on demand. flags: BL_SEND_CHECK when the message comes from
 * the API unvalidated (BL_EINVAL if it is not one well-formed term; nothing is queued). Returns
 * BL_OK, BL_EBUSY, BL_ENODEDOWN, BL_ETOOBIG, BL_EINVAL. */
enum { BL_SEND_CHECK = 1 };
int bl_conn_send_frame(bl_node *n, const char *node, const char *msg, int msglen, int flags);
/* Handshake events (dist/handshake.c). A handshake from node has announced its name: which status
 * to answer (BEAM's mark_pending; it may take node's slot). */
bl_hs_status bl_conn_hs_named(bl_node *n, struct bl_hs *h, const char *node);
/* Told "alive": is this outgoing handshake still the one we want? */
int bl_conn_hs_still_pending(bl_node *n, struct bl_hs *h, const char *node);
/* A handshake ends: forget it, and say what it held (BL_HS_ROLE_* bits). */
enum { BL_HS_ROLE_PENDING = 1, BL_HS_ROLE_ALIVE = 2 };
int bl_conn_hs_release(bl_node *n, struct bl_hs *h, const char *node);
/* ... then hand over its socket, or say why it failed. */
void bl_conn_hs_up(bl_node *n, const char *node, struct bl_tx *tx, int outgoing, int role,
                   uint64_t flags);
void bl_conn_hs_failed(bl_node *n, const char *node, int outgoing, int role, const char *why);
void bl_conn_connect_failed(bl_node *n, const char *node, const char *why);
void bl_conn_close(bl_conn *c, const char *reason);
void bl_conn_tick_all(bl_node *n);
void bl_conn_close_all(bl_node *n);
void bl_conn_listen_cb(struct ev_loop *loop, ev_io *w, int revents);

/* runtime/proc.c */
bl_proc *bl_proc_by_pid(bl_node *n, const bl_pid *pid);
/* Dispatch a decoded control message that arrived from node `from_node`. */
void bl_route_incoming(bl_node *n, const char *from_node, const bl_ctl *ctl, const char *payload);
void bl_proc_deliver(bl_proc *p, const bl_msg *m);
/* ... with a trace and a seq_trace token (either may be NULL) current while p handles it. */
void bl_proc_deliver_ctx(bl_proc *p, const bl_msg *m, const bl_trace *trace, const bl_seqtok *tok);
/* ALIAS_SEND (ALIAS_SEND_TT when a seq_trace token is current) of msg (with version byte). */
int bl__send_alias(bl_node *n, const bl_pid *from, const bl__ref *alias, const char *node,
                   const char *msg, int len);
void bl_procs_node_down(bl_node *n, const char *node);
void bl_localq_drain(bl_node *n);
/* One loop turn's share (node.c, check_cb): the queued messages in order, BL_LOCALQ_TURN_MIN at
 * least and then for BL_LOCALQ_TURN_S at most; the rest waits for the next turn, after the loop
 * has polled its sockets and timers. A burst of local messages (an HTTP storm queues four per request, hundreds of
 * requests per MHD_run) then delays a BEAM call or a detector tick by a turn, not by the whole
 * burst (docs/architecture.md). */
#define BL_LOCALQ_TURN_S 0.002
#define BL_LOCALQ_TURN_MIN 64
void bl_localq_drain_turn(bl_node *n);
void bl_zombies_free(bl_node *n);
void bl_procs_shutdown(bl_node *n);
/* Deliver an exit signal with an encoded reason body to a local process. */
/* Send a term body (no version byte) to a pid on behalf of the runtime (copied into
 * n->scratch2 first). */
int bl_send_body(bl_node *n, const bl_pid *to, const char *body, int len);
/* The same for a whole message (with version byte) the runtime built, in n->scratch2 or
 * elsewhere: sent as it is, without a check or a copy. */
int bl_send_msg(bl_node *n, const bl_pid *to, const char *msg, int len);
void bl_proc_signal_exit(bl_proc *p, const bl_pid *from, const char *reason, int rlen,
                         int is_exit2);
/* End p with an encoded reason body (no version byte). */
void bl_proc_exit_term(bl_proc *p, const char *reason, int rlen);
/* A link from p to pid (local table only: the peer set up its side). <0 on ENOMEM. */
int bl_proc_add_link(bl_proc *p, const bl_pid *pid);
/* A remote watcher monitors p under ref. */
int bl_proc_add_monitor(bl_proc *p, const bl_pid *watcher, const bl__ref *ref, int by_name);
/* p monitors the remote process pid (MONITOR_P): cb(p, pid, reason buf, index, ud) once when it
 * ends (noproc at once if it is gone, noconnection when its node goes down), unless
 * bl__demonitor_pid first. One monitor per pid: a second call replaces cb. BL_EINVAL for a local
 * pid (use a link), BL_ENODEDOWN when its node is not connected. */
int bl__monitor_pid(bl_proc *p, const bl_pid *pid, bl__down_cb cb, void *ud);
void bl__demonitor_pid(bl_proc *p, const bl_pid *pid);
/* Queue a control frame for node: c encoded with an optional reason body. */
int bl_send_ctl(bl_node *n, const char *node, const bl_ctl *c, const char *reason, int rlen);

/* otp/gen.c */
int bl_gen_try_dispatch(bl_proc *p, const bl_msg *m);
void bl_calls_node_down(bl_node *n, const char *node);
void bl_calls_monitor_exit(bl_node *n, const bl_ctl *ctl, const char *payload);
void bl_calls_free(bl_proc *p);
/* Calls in flight (otp/gen.c), shared with otp/erpc.c: new allocates (ref made, not yet in any
 * table); arm adds it to p's calls and starts its timer; complete removes it everywhere, sends a
 * DEMONITOR when one is due, runs cb once and frees it. */
bl_pcall *bl_pcall_new(bl_proc *p, const char *node, bl_pcall_kind kind, bl_call_cb cb, void *ud);
void bl_pcall_arm(bl_pcall *c, unsigned timeout_ms);
void bl_pcall_complete(bl_pcall *c, int status, const char *buf, int index);
void bl_pcall_free(bl_pcall *c);
/* Monitor the target of c and send it '$gen_call' (c not armed yet). */
int bl_pcall_send_gen(bl_pcall *c, const bl_pid *to_pid, const char *name, const char *req,
                      int reqlen);
/* otp/erpc.c */
int bl_erpc_send(bl_pcall *c);
void bl_erpc_down(bl_pcall *c, const char *buf, int index);
void bl_erpc_rex_reply(bl_pcall *c, const char *buf, int index);
int bl_erpc_start(bl_node *n);
/* ALIAS_SEND: the message for an active alias reaches its process; others are dropped. */
void bl_alias_deliver(bl_node *n, const char *from_node, const bl_ctl *ctl, const char *payload);
/* SPAWN_REPLY to one of our erpc requests. */
void bl_calls_spawn_reply(bl_node *n, const bl_ctl *ctl);

/* otp/export.c: the export table */
typedef struct bl_export bl_export_ent;
const bl_export_ent *bl_export_find(bl_node *n, const char *mod, const char *fun, int arity);
int bl_export_invoke(const bl_export_ent *e, bl_proc *self, const char *args, int index,
                     ei_x_buff *result);
void bl_exports_free(bl_node *n);
/* How an export's errors read: a C function's frame is {M, F, Arity, []}; a built-in's (BIF)
 * {M, F, Args, [{error_info, ...}]} as BEAM's BIFs; a raise (erlang:error/exit/throw) has the
 * frame of the call that raised, as BEAM's. */
enum { BL__EXPORT_C = 0, BL__EXPORT_BIF, BL__EXPORT_RAISE };
int bl__export_builtin(bl_node *n, const char *mod, const char *fun, int arity, bl_export_fn fn,
                       int builtin);
int bl__export_kind(const bl_export_ent *e);
/* otp/apply.c: what apply(M, F, A) calls on this node (erlang:apply/2,3, funs), BEAM's errors */
enum { BL_AP_CALL = 0, BL_AP_UNDEF_FUN, BL_AP_BADFUN, BL_AP_BADARITY, BL_AP_BADARG, BL_AP_LIMIT };
typedef struct bl_apply {
    int kind; /* BL_AP_*; CALL: mod:fun/arity is what to call (undef if it is not exported) */
    char mod[MAXATOMLEN_UTF8]; /* CALL: the module; UNDEF_FUN: the fun's module */
    char fun[MAXATOMLEN_UTF8];
    int arity;
    int m_at, f_at; /* the request's M and F (depth 0), or the last apply/3's */
    int args_at;    /* the argument list of the call (CALL), of the fun (apply/2) */
    int fun_at;     /* apply/2: the fun, or what stood there */
    int fun_arity;
    int list_at; /* BADARG: the failing apply's argument list; -1 at depth 0 */
    int depth;   /* erlang:apply calls followed */
    int via;     /* the arity of the request's erlang:apply, 0 when it named its function */
    int hop;     /* the arity of the last erlang:apply followed */
} bl_apply;
/* Resolve apply(M, F, A), the terms at b[m_at], b[f_at], b[a_at] (accepted by bl_term_check).
 * Returns a->kind. */
int bl__apply_resolve(const char *b, int m_at, int f_at, int a_at, bl_apply *a);
/* The error BEAM raises for a failed resolution (kind != CALL, or CALL not exported: undef):
 * reason and stack terms. trimmed: as erpc and rpc report it; else as a spawned process ends. */
void bl__apply_error(const bl_apply *a, const char *b, int trimmed, ei_x_buff *reason,
                     ei_x_buff *stack);
/* The stack of an error a C function (a->mod:fun/arity) raised. */
void bl__apply_fn_stack(const bl_apply *a, int trimmed, ei_x_buff *stack);
/* The stack of a built-in's own error (BL__EXPORT_BIF): {M, F, Args, [{error_info, ...}]} and
 * the frames below; b: the request M, F, A back to back (a->args_at in it). */
void bl__apply_bif_stack(const bl_apply *a, const char *b, int trimmed, ei_x_buff *stack);
/* The stack of erlang:error/1,2 or throw/1 (BL__EXPORT_RAISE) as BEAM gives it: trimmed, the
 * request's own {M, F, A, []} (b: M, F, A back to back from offset 0); else the spawn's. */
void bl__apply_raise_stack(const bl_apply *a, const char *b, int trimmed, ei_x_buff *stack);
/* The length of the proper list at b[i] (LIST, STRING or NIL), -1 if it is none. A term's end:
 * bl__term_end (dist/term.h). */
int bl__list_len(const char *b, int i);

/* otp/spawn.c: serve SPAWN_REQUEST */
void bl_spawn_serve(bl_node *n, const char *from_node, const bl_ctl *ctl, const char *payload);
/* Run apply(M, F, A) for rex (mfa: the three terms back to back, copied) in a new process. The
 * answer, shaped as rpc's ({badrpc, {'EXIT', ...}} ...), goes to from (a gen_server call), or
 * with from NULL to `to` as {rex, Answer}; with neither (a cast) nowhere, as erpc:execute_cast. */
int bl__spawn_rex(bl_node *n, const char *mfa, int len, const bl_from *from, const bl_pid *to);
/* What a process spawned here to run an export is doing, for process_info: the function it runs
 * (cur), what it was spawned as (init: erpc:execute_call/4, M:F/A of a spawn/4, ...) and the
 * process that asked for it (parent; none for rex). 0, or -1 when p is not such a process. */
typedef struct bl__mfa {
    char mod[MAXATOMLEN_UTF8], fun[MAXATOMLEN_UTF8];
    int arity;
} bl__mfa;
int bl__spawn_mfa(const bl_proc *p, bl__mfa *cur, bl__mfa *init, bl_pid *parent);
/* otp/rex.c: the rex server. A request decoded: where its parts are in the buffer. */
enum { BL_REX_FORM_CALL, BL_REX_FORM_CAST, BL_REX_FORM_MSG };
enum {
    BL_REX_BAD = 0,
    BL_REX_CALL,       /* gen_server:call {call, M, F, A, GL} */
    BL_REX_BLOCK_CALL, /* gen_server:call {block_call, M, F, A, GL} */
    BL_REX_STOP,       /* gen_server:call stop */
    BL_REX_CAST,       /* gen_server:cast {cast, M, F, A, GL} */
    BL_REX_PLAIN_CALL, /* {From, {call, M, F, A, GL}} */
    BL_REX_SBCAST,     /* {From, {sbcast, Name, Msg}} */
    BL_REX_SEND,       /* {From, {send, Name, Msg}} */
    BL_REX_FEATURES    /* {From, features_request} */
};
typedef struct bl_rex_req {
    int kind;
    int mfa_at, mfa_end; /* M, F, A back to back */
    int from_at;         /* the From pid of a message */
    int name_at;         /* sbcast, send: Name (then Msg up to msg_end) */
    int msg_at, msg_end;
    const char *why; /* BL_REX_BAD: what is wrong, for the log */
} bl_rex_req;
/* Decode a request of form (a call's or cast's body, or a message) at b[idx], a term that
 * bl_term_check accepted. Returns r->kind. */
int bl__rex_decode(const char *b, int idx, int form, bl_rex_req *r);
int bl_rex_start(bl_node *n);
/* otp/bif.c: the built-in exports (erlang:node/0, ..., beamlet:info/0) */
int bl_bifs_start(bl_node *n);
/* otp/pinfo.c: erlang:process_info/1,2 */
int bl__pinfo_start(bl_node *n);
/* otp/builtin.c: the beamlet process's info and stats maps, shared with beamlet:info/0 */
void bl_builtin_encode_info(bl_node *n, ei_x_buff *r);
void bl_builtin_encode_stats(bl_node *n, ei_x_buff *r);

/* otp/builtin.c */
int bl_builtin_start(bl_node *n);

/* cluster/membership.c: started with the node; stop announces leaving/left first */
int bl_cluster_start(bl_node *n);
void bl_cluster_stop(bl_node *n);
void bl_cluster_free(bl_node *n);

/* The peers a replicated service talks to: beamlet members other than this node that are
 * joining, active or suspected and connected (without membership: every connected node but the
 * admin CLI's). fn runs for each of them (turn < 0) or only for the turn-th (mod their number). */
typedef void (*bl_peer_fn)(bl_node *n, const char *node, void *ud);
void bl_cluster_each_peer(bl_node *n, long turn, bl_peer_fn fn, void *ud);
/* 1 when node is such a peer, connected or not: a member to accept replicated state from. */
int bl_cluster_is_peer(bl_node *n, const char *node);
/* 1 and its role when node is a live beamlet member other than this one; else 0. */
int bl_cluster_peer_role(bl_node *n, const char *node, char *role, size_t len);
/* The coordinators election counts (failed and suspected ones included), this node included. */
unsigned bl_cluster_coordinator_count(bl_node *n);
/* fn for every node connected now (dist/conn.c); the names are copied first, so fn may send
 * (a failed send can close a connection). */
void bl__each_connected(bl_node *n, bl_peer_fn fn, void *ud);
/* Send x to the registered `name` on node, logging a message over max_message_size. */
int bl_cluster_send(bl_proc *from, const char *name, const char *node, const ei_x_buff *x);
/* bl_cluster_send to `name` on every peer (turn < 0) or on the turn-th of them. */
void bl_cluster_send_peers(bl_proc *from, const char *name, const ei_x_buff *x, long turn);

/* services/services.c: the cluster services (pg scopes, registry, ...) */
int bl_services_start(bl_node *n);
/* services/cconf.c: apply the cluster configuration this node persisted (synchronous, before
 * the loop runs and before anything reads n->cfg); keeps the given cfg in n->cfg_base. */
void bl__cconf_preload(bl_node *n);
/* tasks/tasks.c: the `beamlet_tasks` process, the task dispatcher (docs/tasks.md) */
int bl_tasks_start(bl_node *n);
/* gateway/gateway.c: the `beamlet_gateway` process, HTTP when configured (docs/gateway.md) */
int bl_gateway_start(bl_node *n);
/* services/pg.c: the default pg scope */
int bl_pg_start(bl_node *n);

#endif
