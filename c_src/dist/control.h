/* control.h - distribution control messages: decoding incoming frames, encoding outgoing ones.
 *
 * A data frame (after its 4-byte length) is 'p' (pass-through), then the control tuple and, for
 * the send operations, the message, each prefixed with version byte 131. Decoding validates both
 * terms with bl_term_check before ei_decode_* touches them. */
#ifndef BL_DIST_CONTROL_H
#define BL_DIST_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <ei.h>

#include "beamlet/beamlet.h"   /* bl_pid, bl_node */
#include "../runtime/intern.h" /* bl__ref */

enum {
    BL_CTL_LINK = 1,
    BL_CTL_SEND = 2,
    BL_CTL_EXIT = 3,
    BL_CTL_UNLINK = 4,
    BL_CTL_NODE_LINK = 5,
    BL_CTL_REG_SEND = 6,
    BL_CTL_GROUP_LEADER = 7,
    BL_CTL_EXIT2 = 8,
    BL_CTL_SEND_TT = 12,
    BL_CTL_EXIT_TT = 13,
    BL_CTL_REG_SEND_TT = 16,
    BL_CTL_EXIT2_TT = 18,
    BL_CTL_MONITOR_P = 19,
    BL_CTL_DEMONITOR_P = 20,
    BL_CTL_MONITOR_P_EXIT = 21,
    BL_CTL_SEND_SENDER = 22,
    BL_CTL_SEND_SENDER_TT = 23,
    /* EXIT_PAYLOAD: the reason follows the control tuple like a message */
    BL_CTL_PAYLOAD_EXIT = 24,
    BL_CTL_PAYLOAD_EXIT_TT = 25,
    BL_CTL_PAYLOAD_EXIT2 = 26,
    BL_CTL_PAYLOAD_EXIT2_TT = 27,
    BL_CTL_PAYLOAD_MONITOR_P_EXIT = 28,
    /* SPAWN: {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts} + ArgList */
    BL_CTL_SPAWN_REQUEST = 29,
    BL_CTL_SPAWN_REQUEST_TT = 30,
    BL_CTL_SPAWN_REPLY = 31, /* {31, ReqId, To, Flags, Pid | ErrorAtom} */
    BL_CTL_SPAWN_REPLY_TT = 32,
    /* ALIAS: {33, From, Alias} + Message */
    BL_CTL_ALIAS_SEND = 33,
    BL_CTL_ALIAS_SEND_TT = 34,
    BL_CTL_UNLINK_ID = 35,
    BL_CTL_UNLINK_ID_ACK = 36,
};

/* SPAWN_REPLY flags: what the spawning node set up for the parent */
enum { BL_SPAWN_FLAG_LINK = 1, BL_SPAWN_FLAG_MONITOR = 2 };

/* Small fields first: decoding clears only those (the ref and name fields are over 4 KB
 * together and are valid only when their has_* flag says so). */
typedef struct bl_ctl {
    long op;
    int has_from, has_to, has_toname, has_ref, has_reason, has_msg, has_mfa;
    unsigned long long unlink_id;
    /* offsets into the frame payload: the reason term (no version byte) and the message term
     * (index just after its version byte; the term ends at msg_end). For the PAYLOAD_* exits the
     * reason is the message: both are set. SPAWN_REQUEST: the message is the argument list. */
    size_t reason_off, reason_len;
    size_t msg_off, msg_end;
    size_t opts_off, opts_len; /* SPAWN_REQUEST option list (decode) */
    const char *opts;          /* SPAWN_REQUEST option list body to send (encode; NULL: []) */
    int opts_len_enc;
    /* the _TT variants: the seq_trace token term (decode: offset and length in the payload;
     * encode: token_enc/token_enc_len, an encoded term body, or NULL for the atom []) */
    int has_token;
    size_t token_off, token_len;
    const char *token_enc;
    int token_enc_len;
    long arity;       /* SPAWN_REQUEST {M, F, Arity} */
    long spawn_flags; /* SPAWN_REPLY: BL_SPAWN_FLAG_* */
    /* pids: LINK/EXIT/... From and To; SPAWN_REQUEST From (the parent); SPAWN_REPLY To (the
     * parent) and, on success, From = the new process (else toname = the error atom) */
    bl_pid from; /* interned in the decoding node */
    bl_pid to;
    char toname[MAXATOMLEN_UTF8]; /* REG_SEND target, MONITOR_P by name, SPAWN_REPLY error */
    bl__ref ref;                  /* monitor ref, SPAWN ReqId, ALIAS_SEND alias */
    char mod[MAXATOMLEN_UTF8];    /* SPAWN_REQUEST module and function */
    char fun[MAXATOMLEN_UTF8];
} bl_ctl;

enum {
    BL_CTL_OK = 0,
    BL_CTL_EMALFORMED = -1, /* not a well-formed frame: drop the connection */
    BL_CTL_EUNKNOWN = -2,   /* well-formed but an operation we do not handle: skip it */
};

/* Decode one data frame payload (without its 4-byte length); pids are interned in n
 * (runtime/intern.c). */
int bl_ctl_decode(bl_node *n, const char *payload, size_t len, bl_ctl *out);
/* The same for a payload whose terms were already walked (dist/disthdr.c's rewrite validates
 * the control term and the message as it resolves cache refs): the control term ends at
 * ctl_end, the message (if any) there + 1 up to len. Same results as bl_ctl_decode on such a
 * payload (fuzz_disthdr checks it), without walking the terms again. */
int bl_ctl_decode_valid(bl_node *n, const char *payload, size_t len, size_t ctl_end, bl_ctl *out);

/* Encode the control tuple for c->op (with version byte) into x (index reset first).
 * reason: an encoded term body (no version byte) for EXIT/EXIT2/MONITOR_P_EXIT, else NULL. */
int bl_ctl_encode(ei_x_buff *x, const bl_ctl *c, const char *reason, int reason_len);

const char *bl_ctl_name(long op);

#endif
