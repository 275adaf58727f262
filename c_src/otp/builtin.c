/* builtin.c - the processes every beamlet node runs.
 *
 *  net_kernel: answers {is_auth, Node} with yes, so net_adm:ping(ThisNode) is pong. Other requests
 *              get {error, unsupported} instead of silence (a silent node hangs callers forever).
 *  beamlet:    ping -> pong; info -> node facts; stats -> traffic counters and per-connection
 *              queues; {whereis, Name}; registered; {call, Name, Req, TimeoutMs} -> a call to a
 *              local process made on the caller's behalf ({ok, Reply} | {error, noproc} ...).
 *              It predates name monitors (which now make a plain gen_server:call to a missing
 *              name exit noproc at once) and is kept only for callers built on it (the admin
 *              CLI's client). Documented in docs/protocol.md.
 * Also starts the built-in exports (bif.c), the erpc client's node monitor (erpc.c) and the rex
 * server (rex.c). */
#include "../runtime/internal.h"
#include "../dist/disthdr.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int atom_eq(const char *buf, int idx, const char *want)
{
    char a[MAXATOMLEN_UTF8];
    return ei_decode_atom(buf, &idx, a) == 0 && strcmp(a, want) == 0;
}

static int net_kernel_call(bl_proc *self, const bl_from *from, const char *buf, int idx,
                           ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    (void)ud;
    int j = idx, ar;
    if (ei_decode_tuple_header(buf, &j, &ar) == 0 && ar == 2 && atom_eq(buf, j, "is_auth"))
        return ei_x_encode_atom(reply, "yes");
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "unsupported");
}

static void encode_connections(bl_node *n, ei_x_buff *r, int detailed)
{
    bl_conn *c, *t;
    HASH_ITER(hh, n->conns, c, t)
    {
        if (c->state != CONN_UP) continue;
        ei_x_encode_list_header(r, 1);
        if (!detailed) {
            ei_x_encode_atom(r, c->node);
            continue;
        }
        bl_dh_stats dh;
        bl_dh_conn_stats(c->dh, &dh);
        ei_x_encode_map_header(r, 15);
        ei_x_encode_atom(r, "node");
        ei_x_encode_atom(r, c->node);
        ei_x_encode_atom(r, "direction");
        ei_x_encode_atom(r, c->outgoing ? "outgoing" : "incoming");
        ei_x_encode_atom(r, "queue_bytes");
        ei_x_encode_ulong(r, (unsigned long)bl_sendq_bytes(&c->q));
        ei_x_encode_atom(r, "msgs_in");
        ei_x_encode_ulonglong(r, c->msgs_in);
        ei_x_encode_atom(r, "msgs_out");
        ei_x_encode_ulonglong(r, c->msgs_out);
        ei_x_encode_atom(r, "bytes_in");
        ei_x_encode_ulonglong(r, c->bytes_in);
        ei_x_encode_atom(r, "bytes_out");
        ei_x_encode_ulonglong(r, c->bytes_out);
        /* a streaming peer's socket is read in batches on a short timer (dist/conn.c) */
        ei_x_encode_atom(r, "streaming");
        ei_x_encode_atom(r, c->streaming ? "true" : "false");
        ei_x_encode_atom(r, "batched_reads");
        ei_x_encode_ulonglong(r, c->batched_reads);
        /* distribution headers: atom cache slots in use, atoms sent/received as cache refs,
         * fragment frames and messages sent/received in fragments */
        ei_x_encode_atom(r, "atom_cache");
        ei_x_encode_map_header(r, 4);
        ei_x_encode_atom(r, "in");
        ei_x_encode_ulong(r, dh.cache_in);
        ei_x_encode_atom(r, "out");
        ei_x_encode_ulong(r, dh.cache_out);
        ei_x_encode_atom(r, "refs_in");
        ei_x_encode_ulonglong(r, dh.refs_in);
        ei_x_encode_atom(r, "refs_out");
        ei_x_encode_ulonglong(r, dh.refs_out);
        ei_x_encode_atom(r, "fragments_in");
        ei_x_encode_ulonglong(r, dh.frags_in);
        ei_x_encode_atom(r, "fragments_out");
        ei_x_encode_ulonglong(r, dh.frags_out);
        ei_x_encode_atom(r, "reassembled");
        ei_x_encode_ulonglong(r, dh.reassembled);
        ei_x_encode_atom(r, "fragmented");
        ei_x_encode_ulonglong(r, dh.fragmented);
        ei_x_encode_atom(r, "header_bytes");
        ei_x_encode_ulong(r, (unsigned long)dh.bytes);
    }
    ei_x_encode_empty_list(r);
}

void bl_builtin_encode_info(bl_node *n, ei_x_buff *r)
{
    ei_x_encode_map_header(r, 10);
    ei_x_encode_atom(r, "node");
    ei_x_encode_atom(r, n->name);
    ei_x_encode_atom(r, "role");
    ei_x_encode_atom(r, n->cfg.role);
    ei_x_encode_atom(r, "cluster");
    ei_x_encode_binary(r, n->cfg.cluster, (long)strlen(n->cfg.cluster));
    ei_x_encode_atom(r, "version");
    ei_x_encode_binary(r, BL_VERSION, (long)strlen(BL_VERSION));
    ei_x_encode_atom(r, "uptime_ms");
    ei_x_encode_ulonglong(r, (unsigned long long)((ev_time() - n->started_at) * 1000.0));
    ei_x_encode_atom(r, "connections");
    encode_connections(n, r, 0);
    ei_x_encode_atom(r, "processes");
    ei_x_encode_ulong(r, HASH_COUNT(n->procs));
    ei_x_encode_atom(r, "creation");
    ei_x_encode_ulong(r, n->creation);
    ei_x_encode_atom(r, "os_pid");
    ei_x_encode_long(r, (long)getpid());
    ei_x_encode_atom(r, "port");
    ei_x_encode_long(r, n->listen_port);
}

void bl_builtin_encode_stats(bl_node *n, ei_x_buff *r)
{
    const bl_stats *s = &n->stats;
    ei_x_encode_map_header(r, 11);
    ei_x_encode_atom(r, "msgs_in");
    ei_x_encode_ulonglong(r, s->msgs_in);
    ei_x_encode_atom(r, "msgs_out");
    ei_x_encode_ulonglong(r, s->msgs_out);
    ei_x_encode_atom(r, "bytes_in");
    ei_x_encode_ulonglong(r, s->bytes_in);
    ei_x_encode_atom(r, "bytes_out");
    ei_x_encode_ulonglong(r, s->bytes_out);
    ei_x_encode_atom(r, "conns_accepted");
    ei_x_encode_ulonglong(r, s->conns_accepted);
    ei_x_encode_atom(r, "conns_connected");
    ei_x_encode_ulonglong(r, s->conns_connected);
    ei_x_encode_atom(r, "conns_dropped");
    ei_x_encode_ulonglong(r, s->conns_dropped);
    ei_x_encode_atom(r, "handshakes_failed");
    ei_x_encode_ulonglong(r, s->handshakes_failed);
    /* what admission control refused, by the limit that refused it (docs/security.md) */
    static const struct {
        const char *name;
        size_t off;
    } REFUSED[] = {
        {"not_allowed", offsetof(bl_stats, refused_not_allowed)},
        {"max_connections", offsetof(bl_stats, refused_max_connections)},
        {"max_handshakes_per_address", offsetof(bl_stats, refused_per_address)},
        {"max_handshake_rate_per_address", offsetof(bl_stats, refused_rate)},
        {"handshakes_running", offsetof(bl_stats, refused_busy)},
    };
    ei_x_encode_atom(r, "refused");
    ei_x_encode_map_header(r, sizeof(REFUSED) / sizeof(REFUSED[0]));
    for (size_t i = 0; i < sizeof(REFUSED) / sizeof(REFUSED[0]); i++) {
        ei_x_encode_atom(r, REFUSED[i].name);
        ei_x_encode_ulonglong(r,
                              *(const uint64_t *)(const void *)((const char *)s + REFUSED[i].off));
    }
    ei_x_encode_atom(r, "refusal_logs_suppressed");
    ei_x_encode_ulonglong(r, s->refusal_logs_suppressed);
    ei_x_encode_atom(r, "connections");
    encode_connections(n, r, 1);
}

/* A proxied call in flight: the BEAM caller to answer when the local process replies. */
typedef struct {
    bl_from from;
} proxy;

static void proxy_done(bl_proc *p, int status, const char *buf, int index, void *ud)
{
    proxy *px = ud;
    ei_x_buff r;
    ei_x_new(&r);
    ei_x_encode_tuple_header(&r, 2);
    if (status == BL_OK) {
        int end = index;
        bl__skip_term(buf, &end);
        ei_x_encode_atom(&r, "ok");
        ei_x_append_buf(&r, buf + index, end - index);
    } else {
        ei_x_encode_atom(&r, "error");
        ei_x_encode_atom(&r, status == BL_ETIMEOUT    ? "timeout"
                             : status == BL_ENODEDOWN ? "nodedown"
                             : status == BL_ENOPROC   ? "noproc"
                                                      : "failed");
    }
    bl_reply(bl_proc_node(p), &px->from, r.buff, r.index);
    ei_x_free(&r);
    free(px);
}

static int proxy_call(bl_proc *self, const bl_from *from, const char *buf, int j, ei_x_buff *reply)
{
    char name[MAXATOMLEN_UTF8];
    long tmo;
    if (ei_decode_atom(buf, &j, name) < 0) return -1;
    int req = j;
    if (bl__skip_term(buf, &j) < 0) return -1;
    int req_len = j - req;
    /* a timeout beyond 2^31-1 ms (24 days) is refused rather than wrapped */
    if (ei_decode_long(buf, &j, &tmo) < 0 || tmo < 0 || tmo > 0x7fffffffL) return -1;
    proxy *px = malloc(sizeof(*px));
    if (!px) return -1;
    px->from = *from;
    int rc = bl_call(self, NULL, name, NULL, buf + req, req_len, (unsigned)tmo, proxy_done, px);
    if (rc == BL_OK) return 1; /* answered from proxy_done */
    free(px);
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    ei_x_encode_atom(reply, rc == BL_ENOPROC  ? "noproc"
                            : rc == BL_EBUSY  ? "busy"
                            : rc == BL_ENOMEM ? "enomem"
                                              : "badarg");
    return 0;
}

static int beamlet_call(bl_proc *self, const bl_from *from, const char *buf, int idx,
                        ei_x_buff *reply, void *ud)
{
    (void)from;
    (void)ud;
    bl_node *n = bl_proc_node(self);
    if (atom_eq(buf, idx, "ping")) return ei_x_encode_atom(reply, "pong");
    if (atom_eq(buf, idx, "info")) {
        bl_builtin_encode_info(n, reply);
        return 0;
    }
    if (atom_eq(buf, idx, "stats")) {
        bl_builtin_encode_stats(n, reply);
        return 0;
    }
    if (atom_eq(buf, idx, "registered")) {
        bl_regname *r, *t;
        HASH_ITER(hh, n->names, r, t)
        {
            ei_x_encode_list_header(reply, 1);
            ei_x_encode_atom(reply, r->name);
        }
        return ei_x_encode_empty_list(reply);
    }
    int j = idx, ar;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &j, &ar) == 0 && ei_decode_atom(buf, &j, tag) == 0) {
        if (ar == 2 && !strcmp(tag, "whereis")) {
            char name[MAXATOMLEN_UTF8];
            bl_proc *p = ei_decode_atom(buf, &j, name) == 0 ? bl_whereis(n, name) : NULL;
            return p ? bl_x_encode_pid(reply, bl_self(p)) : ei_x_encode_atom(reply, "undefined");
        }
        if (ar == 4 && !strcmp(tag, "call")) {
            int rc = proxy_call(self, from, buf, j, reply);
            if (rc >= 0) return rc;
            reply->index = 0;
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, "error");
            return ei_x_encode_atom(reply, "badarg");
        }
    }
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "unknown_request");
}

int bl_builtin_start(bl_node *n)
{
    static const bl_proc_ops nk = {.on_call = net_kernel_call};
    static const bl_proc_ops bl = {.on_call = beamlet_call};
    int rc = bl_spawn(n, "net_kernel", &nk, NULL, NULL);
    if (rc == BL_OK) rc = bl_spawn(n, "beamlet", &bl, NULL, NULL);
    if (rc == BL_OK) rc = bl_bifs_start(n);
    if (rc == BL_OK) rc = bl_erpc_start(n);
    if (rc == BL_OK) rc = bl_rex_start(n);
    return rc;
}
