/* flags.h - the distribution capability flags (dist.h / kernel's dist.hrl), and the set this node
 * advertises in its handshake. One place: a feature adds its bit to BL_DFLAGS_ADVERTISED in the
 * same commit that makes it really work, never before.
 *
 * DIST_HDR_ATOM_CACHE and FRAGMENTS: dist/disthdr.c (atom cache both ways, fragments both ways).
 * SPAWN, ALIAS, DIST_MONITOR_NAME and EXIT_PAYLOAD: otp/spawn.c, otp/gen.c, otp/erpc.c and
 * runtime/proc.c serve SPAWN_REQUEST, ALIAS_SEND, name monitors and the PAYLOAD_* exits
 * (docs/protocol.md; test/integration/bl_spawn_tests.erl against erl and Elixir).
 * SEND_SENDER: runtime/proc.c sends {22, From, To} from a process to a peer that takes it (as
 * BEAM does) and hands the sender of {22, ...} received to the handler (bl_msg.sender).
 * Not advertised: PUBLISHED (the node stays hidden, like an ei node). */
#ifndef BL_DIST_FLAGS_H
#define BL_DIST_FLAGS_H

#include <stdint.h>

#define BL_DFLAG_PUBLISHED 0x01ull
#define BL_DFLAG_ATOM_CACHE 0x02ull
#define BL_DFLAG_EXTENDED_REFERENCES 0x04ull
#define BL_DFLAG_DIST_MONITOR 0x08ull
#define BL_DFLAG_FUN_TAGS 0x10ull
#define BL_DFLAG_DIST_MONITOR_NAME 0x20ull
#define BL_DFLAG_HIDDEN_ATOM_CACHE 0x40ull
#define BL_DFLAG_NEW_FUN_TAGS 0x80ull
#define BL_DFLAG_EXTENDED_PIDS_PORTS 0x100ull
#define BL_DFLAG_EXPORT_PTR_TAG 0x200ull
#define BL_DFLAG_BIT_BINARIES 0x400ull
#define BL_DFLAG_NEW_FLOATS 0x800ull
#define BL_DFLAG_UNICODE_IO 0x1000ull
#define BL_DFLAG_DIST_HDR_ATOM_CACHE 0x2000ull
#define BL_DFLAG_SMALL_ATOM_TAGS 0x4000ull
#define BL_DFLAG_UTF8_ATOMS 0x10000ull
#define BL_DFLAG_MAP_TAG 0x20000ull
#define BL_DFLAG_BIG_CREATION 0x40000ull
#define BL_DFLAG_SEND_SENDER 0x80000ull
#define BL_DFLAG_BIG_SEQTRACE_LABELS 0x100000ull
#define BL_DFLAG_EXIT_PAYLOAD 0x400000ull
#define BL_DFLAG_FRAGMENTS 0x800000ull
#define BL_DFLAG_HANDSHAKE_23 0x1000000ull
#define BL_DFLAG_UNLINK_ID 0x2000000ull
/* 0x4000000 in dist.h, ei and jinterface; the protocol guide's "1 bsl 36" is wrong */
#define BL_DFLAG_MANDATORY_25_DIGEST 0x4000000ull
#define BL_DFLAG_SPAWN (0x01ull << 32)
#define BL_DFLAG_NAME_ME (0x02ull << 32)
#define BL_DFLAG_V4_NC (0x04ull << 32)
#define BL_DFLAG_ALIAS (0x08ull << 32)

/* What OTP 25 refuses to connect without; MANDATORY_25_DIGEST stands for all of them. */
#define BL_DFLAGS_MANDATORY_25                                                                     \
    (BL_DFLAG_EXTENDED_REFERENCES | BL_DFLAG_FUN_TAGS | BL_DFLAG_EXTENDED_PIDS_PORTS |             \
     BL_DFLAG_NEW_FUN_TAGS | BL_DFLAG_EXPORT_PTR_TAG | BL_DFLAG_BIT_BINARIES |                     \
     BL_DFLAG_NEW_FLOATS | BL_DFLAG_UTF8_ATOMS | BL_DFLAG_MAP_TAG | BL_DFLAG_BIG_CREATION |        \
     BL_DFLAG_HANDSHAKE_23)

/* OTP 26 makes these mandatory too (a peer must have them to talk to OTP 26+). */
#define BL_DFLAGS_MANDATORY_26 (BL_DFLAG_UNLINK_ID | BL_DFLAG_V4_NC)

/* What this node advertises: the mandatory sets plus what works today. */
#define BL_DFLAGS_ADVERTISED                                                                       \
    (BL_DFLAGS_MANDATORY_25 | BL_DFLAG_MANDATORY_25_DIGEST | BL_DFLAGS_MANDATORY_26 |              \
     BL_DFLAG_DIST_MONITOR | BL_DFLAG_SMALL_ATOM_TAGS | BL_DFLAG_DIST_HDR_ATOM_CACHE |             \
     BL_DFLAG_FRAGMENTS | BL_DFLAG_DIST_MONITOR_NAME | BL_DFLAG_SPAWN | BL_DFLAG_ALIAS |           \
     BL_DFLAG_EXIT_PAYLOAD | BL_DFLAG_SEND_SENDER)

/* What a peer must offer (after expanding MANDATORY_25_DIGEST) for this node to talk to it. */
#define BL_DFLAGS_REQUIRED BL_DFLAGS_MANDATORY_25

/* A peer setting MANDATORY_25_DIGEST has every flag of the mandatory 25 set. */
static inline uint64_t bl_dflags_expand(uint64_t f)
{
    return (f & BL_DFLAG_MANDATORY_25_DIGEST) ? (f | BL_DFLAGS_MANDATORY_25) : f;
}

#endif
