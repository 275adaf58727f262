/* fuzz_handshake.c - libFuzzer target for the handshake state machine (dist/hsm.c).
 *
 * Input: byte 0 picks the direction (bit 0), the acceptor's status (bits 1-3) and the
 * initiator's answer to "alive" (bit 4), 4-byte packet lengths as under TLS distribution
 * (bit 5); byte 1 seeds the chunk sizes; the rest is what the peer
 * sends, fed in chunks of varying size. Whatever arrives, the machine must stay inside its
 * buffers, consume only what it was given, never go on after an error, and only report a
 * connection with a well-formed peer name and the mandatory flags. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/flags.h"
#include "dist/hsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int outgoing = data[0] & 1;
    bl_hs_status st = (bl_hs_status)((data[0] >> 1) % 6);
    int yes = (data[0] >> 4) & 1;
    unsigned seed = data[1];
    const uint8_t *p = data + 2;
    size_t left = size - 2;
    bl_hsm m;
    if (outgoing)
        bl_hsm_init_out(&m, "fuzz@h", "cookie", BL_DFLAGS_ADVERTISED, 1, "peer@h", 0x12345678);
    else
        bl_hsm_init_in(&m, "fuzz@h", "cookie", BL_DFLAGS_ADVERTISED, 1, 0x12345678);
    if ((data[0] >> 5) & 1) bl_hsm_set_len4(&m);
    int rc = BL_HSM_MORE;
    while (left > 0) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 40;
        if (chunk > left) chunk = left;
        size_t used = 0;
        rc = bl_hsm_feed(&m, (const char *)p, chunk, &used);
        if (used > chunk || m.outlen > sizeof(m.out)) abort();
        p += used;
        left -= used;
        m.outlen = 0; /* "sent" */
        if (rc == BL_HSM_DECIDE) {
            if (outgoing) abort();
            rc = bl_hsm_decide(&m, st);
        } else if (rc == BL_HSM_PENDING) {
            if (!outgoing) abort();
            rc = bl_hsm_still_pending(&m, yes);
        }
        if (m.outlen > sizeof(m.out)) abort();
        m.outlen = 0;
        if (rc == BL_HSM_ERROR || rc == BL_HSM_NOK || rc == BL_HSM_DONE) break;
        if (used == 0 && rc == BL_HSM_MORE) abort(); /* no progress */
    }
    if (rc == BL_HSM_DONE) {
        if (!memchr(m.peer, 0, sizeof(m.peer)) || !strchr(m.peer, '@')) abort();
        if ((m.peer_flags & BL_DFLAGS_REQUIRED) != BL_DFLAGS_REQUIRED) abort();
        if (m.state != BL_HSM_S_DONE) abort();
    }
    if (rc == BL_HSM_ERROR) {
        size_t used;
        if (bl_hsm_feed(&m, "xx", 2, &used) != BL_HSM_ERROR) abort(); /* stays failed */
    }
    return 0;
}
