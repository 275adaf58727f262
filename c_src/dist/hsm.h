/* hsm.h - the distribution handshake as a state machine, without I/O.
 *
 * The OTP 23+ handshake exactly as kernel's dist_util.erl runs it (erl_dist_protocol.md): every
 * packet has a 2-byte length; the initiator sends its name ('N', 64-bit flags, 32-bit creation),
 * the acceptor answers a status ("ok", "ok_simultaneous", "nok", "not_allowed", "alive"), then its
 * challenge ('N' with flags, challenge, creation, name), the initiator a challenge reply ('r', its
 * own challenge, MD5(cookie ++ decimal challenge)), the acceptor the ack ('a', digest).
 *
 * The caller feeds received bytes and sends whatever the machine queues in out[]. Two steps need
 * the node's connection table and stop the machine until the caller answers: an acceptor that has
 * read the peer's name asks which status to send (bl_hsm_decide: BEAM's mark_pending), and an
 * initiator told "alive" asks whether its attempt is still wanted (bl_hsm_still_pending: BEAM's
 * is_pending). Challenges are given by the caller so recorded handshakes replay exactly. */
#ifndef BL_DIST_HSM_H
#define BL_DIST_HSM_H

#include <stddef.h>
#include <stdint.h>

#define BL_HSM_NAME_MAX 256    /* node names, NUL included */
#define BL_HSM_PACKET_MAX 1024 /* a longer handshake packet is bad data */

enum {
    BL_HSM_MORE = 0,    /* feed more bytes (and send out[] first) */
    BL_HSM_DECIDE = 1,  /* acceptor: peer name known; call bl_hsm_decide */
    BL_HSM_PENDING = 2, /* initiator: status "alive"; call bl_hsm_still_pending */
    BL_HSM_DONE = 3,    /* connected: peer, peer_flags, flags (the common set), peer_creation */
    BL_HSM_NOK = 4,     /* initiator: status "nok": the peer's own connection to us wins */
    BL_HSM_ERROR = -1,  /* error[] says why; send out[] (a status) before closing, if any */
};

/* The acceptor's answer to a send_name (BEAM's accept_pending results). */
typedef enum {
    BL_HS_STATUS_OK,
    BL_HS_STATUS_OK_SIMULTANEOUS, /* we had a pending attempt of our own and dropped it */
    BL_HS_STATUS_NOK,             /* our own pending attempt wins (our name sorts after theirs) */
    BL_HS_STATUS_ALIVE,           /* a connection is up: ask the peer whether it restarted */
    BL_HS_STATUS_NOT_ALLOWED,
    BL_HS_STATUS_CLOSE, /* close without a status (BEAM's already_pending) */
} bl_hs_status;

typedef enum {
    BL_HSM_S_IN_NAME,        /* acceptor: waiting for 'N' */
    BL_HSM_S_IN_DECIDE,      /* acceptor: waiting for bl_hsm_decide */
    BL_HSM_S_IN_ALIVE_REPLY, /* acceptor: sent "alive", waiting for "strue"/"sfalse" */
    BL_HSM_S_IN_REPLY,       /* acceptor: challenge sent, waiting for 'r' */
    BL_HSM_S_OUT_STATUS,     /* initiator: name sent, waiting for 's' */
    BL_HSM_S_OUT_PENDING,    /* initiator: waiting for bl_hsm_still_pending */
    BL_HSM_S_OUT_CHALLENGE,  /* initiator: waiting for 'N' challenge */
    BL_HSM_S_OUT_ACK,        /* initiator: reply sent, waiting for 'a' */
    BL_HSM_S_DONE,
    BL_HSM_S_FAILED,
} bl_hsm_state;

typedef struct bl_hsm {
    bl_hsm_state state;
    int outgoing;
    /* this node (the strings are borrowed and must outlive the machine) */
    const char *me;
    const char *cookie;
    uint64_t my_flags;
    uint32_t my_creation;
    uint32_t my_challenge;
    /* the peer */
    char peer[BL_HSM_NAME_MAX]; /* initiator: the node dialled; acceptor: as announced */
    uint64_t peer_flags;        /* as received, MANDATORY_25_DIGEST expanded */
    uint32_t peer_creation;
    uint32_t peer_challenge;
    uint64_t flags; /* my_flags & peer_flags once known */
    int alive;      /* acceptor: status "alive" was sent and the peer said "true" */
    /* the packet being received */
    size_t hdr; /* length header: 2 bytes, 4 inside TLS (inet_tls_dist's {packet, 4}) */
    unsigned char in[4 + BL_HSM_PACKET_MAX];
    size_t inlen;
    /* bytes to send */
    unsigned char out[512]; /* a status and a challenge at most */
    size_t outlen;
    char error[160];
} bl_hsm;

void bl_hsm_init_out(bl_hsm *m, const char *me, const char *cookie, uint64_t flags,
                     uint32_t creation, const char *peer, uint32_t challenge);
void bl_hsm_init_in(bl_hsm *m, const char *me, const char *cookie, uint64_t flags,
                    uint32_t creation, uint32_t challenge);
/* Under TLS distribution every handshake packet has a 4-byte length (OTP's inet_tls_dist runs
 * dist_util over {packet, 4}). Call right after init, before any byte is fed. */
void bl_hsm_set_len4(bl_hsm *m);
/* Consume bytes of buf[0..len) (*used says how many; it stops after a completed packet that
 * needs a decision, and after the last packet); returns a BL_HSM_* code. */
int bl_hsm_feed(bl_hsm *m, const char *buf, size_t len, size_t *used);
/* Bytes still missing for the current packet (read no more than this: what follows the
 * handshake belongs to the connection). */
size_t bl_hsm_want(const bl_hsm *m);
/* Acceptor after BL_HSM_DECIDE: queue the status (and the challenge when it goes on). Returns
 * BL_HSM_MORE, or BL_HSM_ERROR for nok / not_allowed (send out[], then close). */
int bl_hsm_decide(bl_hsm *m, bl_hs_status st);
/* Initiator after BL_HSM_PENDING: answer "true" (goes on) or "false" (BL_HSM_ERROR). */
int bl_hsm_still_pending(bl_hsm *m, int yes);
/* The digest of erl_dist_protocol: MD5(cookie ++ integer_to_list(challenge)). Returns 0. */
int bl_hsm_digest(const char *cookie, uint32_t challenge, unsigned char out[16]);

#endif
