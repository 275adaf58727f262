/* hsm.c - the distribution handshake state machine (see hsm.h). No I/O, no allocation: the
 * driver (handshake.c) owns sockets and timers, unit tests and the fuzzer drive it directly.
 *
 * The challenge digest is ei's own MD5 (erl_interface's src/misc/eimd5.c, what ei's handshake
 * uses): it is exported by libei.a, which every beamlet binary links for the term codec, so a node
 * pays nothing extra for it. OpenSSL's MD5 would do as well, but loading libcrypto adds ~1.5 MB
 * of resident memory to every node that connects. ei installs the prototypes only with its
 * sources (erlang-src), so they are declared here, with ei's context layout. */
#include "hsm.h"
#include "flags.h"

#include <stdio.h>
#include <string.h>

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}
static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}
static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static uint64_t get64(const unsigned char *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

typedef struct {
    unsigned state[4];
    unsigned count[2];
    unsigned char buffer[64];
} bl_ei_md5_ctx; /* ei's MD5_CTX */
void ei_MD5Init(bl_ei_md5_ctx *ctx);
void ei_MD5Update(bl_ei_md5_ctx *ctx, unsigned char *in, unsigned int len);
void ei_MD5Final(unsigned char digest[16], bl_ei_md5_ctx *ctx);

int bl_hsm_digest(const char *cookie, uint32_t challenge, unsigned char out[16])
{
    char buf[BL_HSM_NAME_MAX + 16];
    int k = snprintf(buf, sizeof(buf), "%.255s%u", cookie, (unsigned)challenge);
    bl_ei_md5_ctx ctx;
    ei_MD5Init(&ctx);
    ei_MD5Update(&ctx, (unsigned char *)buf, (unsigned)k);
    ei_MD5Final(out, &ctx);
    return 0;
}

static int fail(bl_hsm *m, const char *fmt, const char *arg)
{
    snprintf(m->error, sizeof(m->error), fmt, arg);
    m->state = BL_HSM_S_FAILED;
    return BL_HSM_ERROR;
}

/* Queue one packet: the length (2 bytes, 4 under TLS), then body. */
static unsigned char *packet(bl_hsm *m, size_t body)
{
    size_t h = m->hdr;
    if (m->outlen + h + body > sizeof(m->out)) return NULL; /* cannot happen: sizes are fixed */
    unsigned char *p = m->out + m->outlen;
    if (h == 4)
        put32(p, (uint32_t)body);
    else
        put16(p, (unsigned)body);
    m->outlen += h + body;
    return p + h;
}

/* The length of the packet being received, once its header is in. */
static size_t in_plen(const bl_hsm *m)
{
    return m->hdr == 4 ? get32(m->in) : ((size_t)m->in[0] << 8) | m->in[1];
}

void bl_hsm_set_len4(bl_hsm *m)
{
    if (m->hdr == 4 || m->inlen) return;
    unsigned char old[sizeof(m->out)];
    size_t n = m->outlen, off = 0;
    memcpy(old, m->out, n);
    m->hdr = 4;
    m->outlen = 0;
    while (off + 2 <= n) { /* re-frame what init queued (the initiator's send_name) */
        size_t body = ((size_t)old[off] << 8) | old[off + 1];
        unsigned char *p = packet(m, body);
        if (!p) break;
        memcpy(p, old + off + 2, body);
        off += 2 + body;
    }
}

static void queue_status(bl_hsm *m, const char *st)
{
    size_t k = strlen(st);
    unsigned char *p = packet(m, 1 + k);
    if (!p) return;
    p[0] = 's';
    memcpy(p + 1, st, k);
}

static void common_init(bl_hsm *m, const char *me, const char *cookie, uint64_t flags,
                        uint32_t creation, uint32_t challenge)
{
    memset(m, 0, sizeof(*m));
    m->hdr = 2;
    m->me = me;
    m->cookie = cookie;
    m->my_flags = flags;
    m->my_creation = creation;
    m->my_challenge = challenge;
}

void bl_hsm_init_out(bl_hsm *m, const char *me, const char *cookie, uint64_t flags,
                     uint32_t creation, const char *peer, uint32_t challenge)
{
    common_init(m, me, cookie, flags, creation, challenge);
    m->outgoing = 1;
    snprintf(m->peer, sizeof(m->peer), "%s", peer);
    size_t nl = strlen(me);
    if (nl > BL_HSM_NAME_MAX - 1) nl = BL_HSM_NAME_MAX - 1;
    unsigned char *p = packet(m, 1 + 8 + 4 + 2 + nl);
    p[0] = 'N';
    put32(p + 1, (uint32_t)(flags >> 32));
    put32(p + 5, (uint32_t)flags);
    put32(p + 9, creation);
    put16(p + 13, (unsigned)nl);
    memcpy(p + 15, me, nl);
    m->state = BL_HSM_S_OUT_STATUS;
}

void bl_hsm_init_in(bl_hsm *m, const char *me, const char *cookie, uint64_t flags,
                    uint32_t creation, uint32_t challenge)
{
    common_init(m, me, cookie, flags, creation, challenge);
    m->state = BL_HSM_S_IN_NAME;
}

static void queue_challenge(bl_hsm *m)
{
    size_t nl = strlen(m->me);
    if (nl > BL_HSM_NAME_MAX - 1) nl = BL_HSM_NAME_MAX - 1;
    unsigned char *p = packet(m, 1 + 8 + 4 + 4 + 2 + nl);
    if (!p) return;
    p[0] = 'N';
    put32(p + 1, (uint32_t)(m->my_flags >> 32));
    put32(p + 5, (uint32_t)m->my_flags);
    put32(p + 9, m->my_challenge);
    put32(p + 13, m->my_creation);
    put16(p + 17, (unsigned)nl);
    memcpy(p + 19, m->me, nl);
}

/* The names of the required flags the peer lacks, for the error line. */
static int check_flags(bl_hsm *m, uint64_t raw)
{
    m->peer_flags = bl_dflags_expand(raw);
    uint64_t missing = BL_DFLAGS_REQUIRED & ~m->peer_flags;
    if (missing) {
        char hex[32];
        snprintf(hex, sizeof(hex), "0x%llx", (unsigned long long)missing);
        fail(m, "peer lacks mandatory distribution flags %s (OTP 24 or older?)", hex);
        return -1;
    }
    if (m->peer_flags & BL_DFLAG_NAME_ME) {
        fail(m, "%s", "peer asks for a dynamic node name, which this node does not hand out");
        return -1;
    }
    m->flags = m->my_flags & m->peer_flags;
    return 0;
}

/* A static node name: exactly one '@' with something on both sides (dist_util:is_name_ok). */
static int name_ok(const unsigned char *s, size_t len)
{
    const unsigned char *at = memchr(s, '@', len);
    if (!at || at == s || at == s + len - 1) return 0;
    if (memchr(at + 1, '@', len - (size_t)(at + 1 - s))) return 0;
    return memchr(s, 0, len) == NULL;
}

static int on_packet(bl_hsm *m, const unsigned char *p, size_t len)
{
    unsigned char dig[16];
    switch (m->state) {
    case BL_HSM_S_IN_NAME: {
        if (p[0] == 'n') return fail(m, "%s", "peer uses the pre-OTP 23 handshake ('n')");
        if (p[0] != 'N' || len < 15) return fail(m, "%s", "bad send_name packet");
        size_t nl = ((size_t)p[13] << 8) | p[14];
        if (nl == 0 || nl >= BL_HSM_NAME_MAX || 15 + nl > len)
            return fail(m, "%s", "bad node name length in send_name");
        if (!name_ok(p + 15, nl)) return fail(m, "%s", "bad node name in send_name");
        memcpy(m->peer, p + 15, nl);
        m->peer[nl] = 0;
        m->peer_creation = get32(p + 9);
        if (check_flags(m, get64(p + 1)) < 0) {
            queue_status(m, "not_allowed");
            return BL_HSM_ERROR;
        }
        m->state = BL_HSM_S_IN_DECIDE;
        return BL_HSM_DECIDE;
    }
    case BL_HSM_S_IN_ALIVE_REPLY:
        if (len == 5 && !memcmp(p, "strue", 5)) {
            m->alive = 1;
            queue_challenge(m);
            m->state = BL_HSM_S_IN_REPLY;
            return BL_HSM_MORE;
        }
        if (len == 6 && !memcmp(p, "sfalse", 6))
            return fail(m, "%s", "peer says its existing connection to us is still current");
        return fail(m, "%s", "bad status reply to 'alive'");
    case BL_HSM_S_IN_REPLY:
        if (p[0] != 'r' || len != 21) return fail(m, "%s", "bad challenge reply packet");
        if (bl_hsm_digest(m->cookie, m->my_challenge, dig) < 0)
            return fail(m, "%s", "cannot load libcrypto for the MD5 digest");
        if (memcmp(dig, p + 5, 16) != 0)
            return fail(m, "%s", "invalid challenge reply (wrong cookie?)");
        m->peer_challenge = get32(p + 1);
        if (bl_hsm_digest(m->cookie, m->peer_challenge, dig) < 0)
            return fail(m, "%s", "cannot load libcrypto for the MD5 digest");
        {
            unsigned char *q = packet(m, 17);
            q[0] = 'a';
            memcpy(q + 1, dig, 16);
        }
        m->state = BL_HSM_S_DONE;
        return BL_HSM_DONE;
    case BL_HSM_S_OUT_STATUS:
        if (p[0] != 's') return fail(m, "%s", "bad status packet");
        if ((len == 3 && !memcmp(p + 1, "ok", 2)) ||
            (len == 16 && !memcmp(p + 1, "ok_simultaneous", 15))) {
            m->state = BL_HSM_S_OUT_CHALLENGE;
            return BL_HSM_MORE;
        }
        if (len == 4 && !memcmp(p + 1, "nok", 3)) {
            m->state = BL_HSM_S_FAILED;
            snprintf(m->error, sizeof(m->error), "simultaneous connect: the peer's own wins");
            return BL_HSM_NOK;
        }
        if (len == 6 && !memcmp(p + 1, "alive", 5)) {
            m->state = BL_HSM_S_OUT_PENDING;
            return BL_HSM_PENDING;
        }
        if (len == 12 && !memcmp(p + 1, "not_allowed", 11))
            return fail(m, "%s", "peer refused us (status not_allowed)");
        {
            char st[40];
            size_t k = len - 1 < sizeof(st) - 1 ? len - 1 : sizeof(st) - 1;
            for (size_t i = 0; i < k; i++)
                st[i] = p[1 + i] >= 32 && p[1 + i] < 127 ? (char)p[1 + i] : '?';
            st[k] = 0;
            return fail(m, "unknown handshake status '%s'", st);
        }
    case BL_HSM_S_OUT_CHALLENGE: {
        if (p[0] != 'N' || len < 19) return fail(m, "%s", "bad challenge packet");
        size_t nl = ((size_t)p[17] << 8) | p[18];
        if (19 + nl > len) return fail(m, "%s", "bad node name length in challenge");
        if (nl != strlen(m->peer) || memcmp(p + 19, m->peer, nl) != 0)
            return fail(m, "%s", "challenge from a node with another name");
        m->peer_challenge = get32(p + 9);
        m->peer_creation = get32(p + 13);
        if (check_flags(m, get64(p + 1)) < 0) return BL_HSM_ERROR;
        if (bl_hsm_digest(m->cookie, m->peer_challenge, dig) < 0)
            return fail(m, "%s", "cannot load libcrypto for the MD5 digest");
        unsigned char *q = packet(m, 21);
        q[0] = 'r';
        put32(q + 1, m->my_challenge);
        memcpy(q + 5, dig, 16);
        m->state = BL_HSM_S_OUT_ACK;
        return BL_HSM_MORE;
    }
    case BL_HSM_S_OUT_ACK:
        if (p[0] != 'a' || len != 17) return fail(m, "%s", "bad challenge ack packet");
        if (bl_hsm_digest(m->cookie, m->my_challenge, dig) < 0)
            return fail(m, "%s", "cannot load libcrypto for the MD5 digest");
        if (memcmp(dig, p + 1, 16) != 0)
            return fail(m, "%s", "invalid challenge ack (wrong cookie?)");
        m->state = BL_HSM_S_DONE;
        return BL_HSM_DONE;
    default:
        return fail(m, "%s", "unexpected data");
    }
}

size_t bl_hsm_want(const bl_hsm *m)
{
    if (m->inlen < m->hdr) return m->hdr - m->inlen;
    size_t plen = in_plen(m);
    if (plen > BL_HSM_PACKET_MAX) return 1; /* bl_hsm_feed refuses it */
    return m->hdr + plen - m->inlen;
}

int bl_hsm_feed(bl_hsm *m, const char *buf, size_t len, size_t *used)
{
    size_t off = 0;
    int rc = BL_HSM_MORE;
    *used = 0;
    if (m->state == BL_HSM_S_FAILED) return BL_HSM_ERROR;
    if (m->state == BL_HSM_S_DONE) return BL_HSM_DONE;
    if (m->state == BL_HSM_S_IN_DECIDE) return BL_HSM_DECIDE;
    if (m->state == BL_HSM_S_OUT_PENDING) return BL_HSM_PENDING;
    while (off < len) {
        size_t want = bl_hsm_want(m);
        size_t k = len - off < want ? len - off : want;
        memcpy(m->in + m->inlen, buf + off, k);
        m->inlen += k;
        off += k;
        if (m->inlen < m->hdr) break;
        size_t plen = in_plen(m);
        if (plen == 0 || plen > BL_HSM_PACKET_MAX) {
            char s[16];
            snprintf(s, sizeof(s), "%zu", plen);
            *used = off;
            return fail(m, "handshake packet of %s bytes", s);
        }
        if (m->inlen < m->hdr + plen) continue;
        m->inlen = 0;
        rc = on_packet(m, m->in + m->hdr, plen);
        if (rc != BL_HSM_MORE) break;
    }
    *used = off;
    return rc;
}

int bl_hsm_decide(bl_hsm *m, bl_hs_status st)
{
    if (m->state != BL_HSM_S_IN_DECIDE) return fail(m, "%s", "decision out of turn");
    switch (st) {
    case BL_HS_STATUS_OK:
    case BL_HS_STATUS_OK_SIMULTANEOUS:
        queue_status(m, st == BL_HS_STATUS_OK ? "ok" : "ok_simultaneous");
        queue_challenge(m);
        m->state = BL_HSM_S_IN_REPLY;
        return BL_HSM_MORE;
    case BL_HS_STATUS_ALIVE:
        queue_status(m, "alive");
        m->state = BL_HSM_S_IN_ALIVE_REPLY;
        return BL_HSM_MORE;
    case BL_HS_STATUS_NOK:
        queue_status(m, "nok");
        return fail(m, "%s", "simultaneous connect: our own connection attempt wins");
    case BL_HS_STATUS_CLOSE:
        return fail(m, "%s", "a replacement for the live connection is already being set up");
    case BL_HS_STATUS_NOT_ALLOWED:
    default:
        queue_status(m, "not_allowed");
        return fail(m, "%s", "not allowed");
    }
}

int bl_hsm_still_pending(bl_hsm *m, int yes)
{
    if (m->state != BL_HSM_S_OUT_PENDING) return fail(m, "%s", "answer out of turn");
    queue_status(m, yes ? "true" : "false");
    if (!yes) return fail(m, "%s", "peer has a connection to us and ours is no longer wanted");
    m->state = BL_HSM_S_OUT_CHALLENGE;
    return BL_HSM_MORE;
}
