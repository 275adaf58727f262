/* disthdr.h - distribution headers: the atom cache both ways, fragmented messages both ways.
 *
 * When a peer negotiated DIST_HDR_ATOM_CACHE (or FRAGMENTS) every frame starts with a header
 * instead of pass-through 'p': 131 'D' (normal), 131 'E' (first fragment) or 131 'F' (fragment
 * continuation), and the terms after it carry no version byte. Headers set and use the
 * per-connection atom cache; terms refer to its atoms with ATOM_CACHE_REF (82), which ei cannot
 * decode.
 *
 * Receiving: bl_dh_recv applies the header to the connection's incoming cache, reassembles
 * fragments (several sequences interleaved, each bounded by max_message_size) and rewrites the
 * message into the pass-through form ('p', 131, control, 131, message) with every cache ref
 * replaced by the atom itself, validating both terms on the way (dist/term.c). The result goes to
 * bl_ctl_decode like any pass-through frame. A malformed header, an unknown or out-of-order
 * fragment, or a message over the bound is an error: the caller drops that connection.
 *
 * Sending: bl_dh_send encodes a header that puts the message's atoms (up to 255 distinct, one per
 * cache slot, as BEAM does) into the peer's cache, then copies the terms with every cached atom
 * replaced by a 2-byte ref, straight into the send queue. A message larger than one fragment,
 * to a peer with FRAGMENTS, becomes an outgoing sequence: its first fragment is queued at once and
 * the rest is moved into the queue one fragment at a time by bl_dh_pump when the queue runs low, so
 * small messages and ticks queued meanwhile go out between the fragments.
 *
 * Memory: each cache side holds only the slots in use (atomcache.h); reassembly holds at most
 * 2 x max_message_size per connection; the node-wide scratch holds the last rewritten message. */
#ifndef BL_DIST_DISTHDR_H
#define BL_DIST_DISTHDR_H

#include <stddef.h>
#include <stdint.h>

#include "atomcache.h"
#include "sendq.h"

/* The distribution flags this layer implements (dist.h values). */
#define BL_DH_DFLAG_DIST_HDR_ATOM_CACHE 0x2000ull
#define BL_DH_DFLAG_FRAGMENTS 0x800000ull

#define BL_DH_FRAG_SIZE (64 * 1024) /* payload bytes per outgoing fragment, as BEAM */
#define BL_DH_MAX_REFS 255          /* cache refs in one header */

typedef struct bl_dh_conn bl_dh_conn;       /* per connection: both caches, sequences */
typedef struct bl_dh_scratch bl_dh_scratch; /* per node: rewrite buffer, encoder plan */

typedef struct bl_dh_stats {
    uint64_t hdr_in, hdr_out;         /* frames with a header received / sent */
    uint64_t frags_in, frags_out;     /* fragment frames received / sent */
    uint64_t reassembled, fragmented; /* messages reassembled / sent in fragments */
    uint64_t refs_in, refs_out;       /* atoms received / sent as cache refs */
    uint32_t cache_in, cache_out;     /* slots in use in each cache */
    uint32_t seqs_in, seqs_out;       /* sequences in progress */
    size_t bytes;                     /* memory held by this connection's header state (the
                                       * atom texts are the pool's: bl_apool_bytes) */
} bl_dh_stats;

/* A connection's header state for a peer with the given negotiated flags (0 when unknown: then
 * nothing is sent with headers, but headers received are still understood), its atom caches
 * keeping their texts in pool (the node's, shared by its connections; NULL: a pool of their own).
 * NULL: no memory. */
bl_dh_conn *bl_dh_conn_new(uint64_t peer_flags, bl_apool *pool);
void bl_dh_conn_free(bl_dh_conn *dc);
/* Whether frames to this peer must carry a header (the peer negotiated one of the flags). */
int bl_dh_sends_headers(const bl_dh_conn *dc);
void bl_dh_conn_stats(const bl_dh_conn *dc, bl_dh_stats *st);

bl_dh_scratch *bl_dh_scratch_new(void);
void bl_dh_scratch_free(bl_dh_scratch *s);

enum {
    BL_DH_NONE = 0,        /* a fragment was stored; nothing to deliver yet */
    BL_DH_MSG = 1,         /* *out holds a pass-through frame payload to decode */
    BL_DH_EMALFORMED = -1, /* bad header, cache ref, term or fragment order: drop the connection */
    BL_DH_ETOOBIG = -2,    /* over max_message_size (or the reassembly bound): drop it */
    BL_DH_ENOMEM = -3,
};

/* Process one frame payload p[0..len) that starts with 131 (a header frame). On BL_DH_MSG,
 * *out / *outlen is the rewritten payload, valid until the next call with the same scratch.
 * On an error, *why says what was wrong (a static string). */
int bl_dh_recv(bl_dh_conn *dc, bl_dh_scratch *s, const char *p, size_t len, size_t max_msg,
               const char **out, size_t *outlen, const char **why);
/* After BL_DH_MSG: where the control term of *out ends (the message's version byte, or
 * *outlen). Both terms of *out were validated on the way: bl_ctl_decode_valid takes it. */
size_t bl_dh_ctl_end(const bl_dh_scratch *s);

/* Queue one message for a peer that takes headers: ctl and msg as ei encodes them (each starting
 * with version byte 131; msg NULL for a control message alone). A message to the destination of
 * a large message still going out waits behind it (Erlang's order between two processes); others
 * go at once. check: msg comes unvalidated from the API; the walk that plans its atoms checks
 * it (one walk per message). Returns 0; -2 when it would wait while more than limit bytes of
 * frames already wait, or would start a new large message while more than limit bytes of large
 * messages are still to go; -3 (only with check) when msg is not one well-formed term with its
 * version byte; -1 when out of memory. On an error nothing was queued and the caches are
 * unchanged. */
int bl_dh_send(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, const char *ctl, size_t ctllen,
               const char *msg, size_t msglen, size_t limit, int check);
/* Bytes of outgoing sequences (and of frames waiting behind them) not yet in the send queue. */
size_t bl_dh_pending(const bl_dh_conn *dc);
/* Move fragments of the outgoing sequences (round robin) into q while it holds less than
 * low_water bytes; when a sequence ends, the frames that waited behind it follow. Returns how
 * many fragments were moved, or -1 when out of memory. */
int bl_dh_pump(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q, size_t low_water);
/* Re-encode the pass-through frames in q (queued before the handshake said the peer takes
 * headers) as header frames, in order. Returns 0, or -1 when out of memory or a queued frame
 * is not well formed (q is then emptied). */
int bl_dh_requeue(bl_dh_conn *dc, bl_dh_scratch *s, bl_sendq *q);

#endif
