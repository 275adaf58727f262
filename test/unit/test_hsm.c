/* test_hsm.c - the handshake state machine (dist/hsm.c) against handshakes recorded between two
 * real OTP 25.2.3 nodes on loopback (test/unit/record_otp_handshake.sh: tshark inside
 * isolate.sh, `erl -sname ra` pinging `erl -sname rb`, cookie reccookie; then `erl -sname rc`
 * with cookie wrongcookie), and hand-made OTP 26/27-style ones: every message split at every
 * byte, wrong digests, wrong cookies, each status, bad packets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dist/flags.h"
#include "dist/hsm.h"

/* ---- recorded: ra@vm -> rb@vm, OTP 25.2.3, cookie "reccookie" (tcp payloads, with lengths) ----
 */
static const char *REC_NAME = "00144e0000000d07df7fbd6b0e8f290005726140766d"; /* ra -> rb */
static const char *REC_STATUS = "0003736f6b";                                 /* rb -> ra */
static const char *REC_CHALLENGE = "00184e0000000d07df7fbd530edff56b0e8f260005726240766d"; /* rb */
static const char *REC_REPLY = "0015729514aad164b7dc4ec22de825d9cbd596a527918a";           /* ra */
static const char *REC_ACK = "00116194d50b69ca50501a67c99845b7ffa5c4";                     /* rb */
#define REC_CH_RB 0x530edff5u /* rb's challenge (in REC_CHALLENGE) */
#define REC_CH_RA 0x9514aad1u /* ra's challenge (in REC_REPLY) */
/* recorded: rc@vm (cookie "wrongcookie") -> rb@vm; rb refused the reply and closed */
static const char *REC_BAD_NAME = "00144e0000000d07df7fbd6b0e8f2a0005726340766d";
static const char *REC_BAD_CHALLENGE = "00184e0000000d07df7fbd891164806b0e8f260005726240766d";
static const char *REC_BAD_REPLY = "001572d91314131599e9168c94ad1ed6910dfdcbf33ef3";
#define REC_BAD_CH_RB 0x89116480u

static const char *COOKIE = "reccookie";
#define OUR_FLAGS BL_DFLAGS_ADVERTISED

static size_t unhex(const char *hex, unsigned char *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    return n;
}

/* Feed msg in pieces: the first piece is `split` bytes (0: all at once), then the rest. */
static int feed_split(bl_hsm *m, const unsigned char *msg, size_t len, size_t split)
{
    size_t off = 0;
    int rc = BL_HSM_MORE;
    while (off < len) {
        size_t k = split && off == 0 ? split : len - off;
        size_t used = 0;
        rc = bl_hsm_feed(m, (const char *)msg + off, k, &used);
        assert_true(used <= k);
        off += used;
        if (rc != BL_HSM_MORE) break;
        assert_int_equal(used, k); /* MORE consumes everything it was given */
    }
    assert_int_equal(off, len); /* each test message is exactly one or two whole packets */
    return rc;
}

/* Feed msg one byte at a time. */
static int feed_bytes(bl_hsm *m, const unsigned char *msg, size_t len)
{
    int rc = BL_HSM_MORE;
    for (size_t i = 0; i < len; i++) {
        size_t used = 0;
        rc = bl_hsm_feed(m, (const char *)msg + i, 1, &used);
        assert_int_equal(used, 1);
        if (rc != BL_HSM_MORE) assert_int_equal(i, len - 1);
    }
    return rc;
}

static void take_out(bl_hsm *m, unsigned char *dst, size_t *len)
{
    memcpy(dst, m->out, m->outlen);
    *len = m->outlen;
    m->outlen = 0;
}

/* The acceptor side, playing rb against ra's recorded messages. */
static void accept_recorded(size_t split, int bytewise)
{
    unsigned char msg[512], out[512];
    size_t len, olen;
    bl_hsm m;
    bl_hsm_init_in(&m, "rb@vm", COOKIE, OUR_FLAGS, 0x6b0e8f26, REC_CH_RB);
    len = unhex(REC_NAME, msg);
    int rc = bytewise ? feed_bytes(&m, msg, len) : feed_split(&m, msg, len, split % len);
    assert_int_equal(rc, BL_HSM_DECIDE);
    assert_string_equal(m.peer, "ra@vm");
    assert_int_equal(m.peer_creation, 0x6b0e8f29);
    assert_true(m.peer_flags & BL_DFLAG_SPAWN); /* OTP 25 offers it, and so do we */
    assert_true(m.flags & BL_DFLAG_SPAWN);
    assert_true(m.flags == (OUR_FLAGS & m.peer_flags)); /* ... and only the common set is used */
    assert_true((m.flags & BL_DFLAGS_MANDATORY_25) == BL_DFLAGS_MANDATORY_25);
    assert_int_equal(bl_hsm_decide(&m, BL_HS_STATUS_OK), BL_HSM_MORE);
    take_out(&m, out, &olen);
    len = unhex(REC_STATUS, msg);
    assert_memory_equal(out, msg, len); /* "sok", then our challenge */
    assert_int_equal(out[len + 2], 'N');
    assert_int_equal(olen, len + 2 + 19 + strlen("rb@vm"));
    len = unhex(REC_REPLY, msg);
    rc = bytewise ? feed_bytes(&m, msg, len) : feed_split(&m, msg, len, split % len);
    assert_int_equal(rc, BL_HSM_DONE);
    take_out(&m, out, &olen);
    len = unhex(REC_ACK, msg);
    assert_int_equal(olen, len);
    assert_memory_equal(out, msg, len); /* byte for byte what rb answered */
}

/* The initiator side, playing ra against rb's recorded messages. */
static void connect_recorded(size_t split, int bytewise)
{
    unsigned char msg[512], out[512];
    size_t len, olen;
    bl_hsm m;
    bl_hsm_init_out(&m, "ra@vm", COOKIE, OUR_FLAGS, 0x6b0e8f29, "rb@vm", REC_CH_RA);
    take_out(&m, out, &olen);
    assert_int_equal(out[2], 'N');
    assert_int_equal(olen, 2 + 15 + 5);
    /* status and challenge arrive in one segment: feed both together */
    len = unhex(REC_STATUS, msg);
    len += unhex(REC_CHALLENGE, msg + len);
    int rc = bytewise ? feed_bytes(&m, msg, len) : feed_split(&m, msg, len, split % len);
    assert_int_equal(rc, BL_HSM_MORE);
    assert_int_equal(m.peer_challenge, REC_CH_RB);
    take_out(&m, out, &olen);
    len = unhex(REC_REPLY, msg);
    assert_int_equal(olen, len);
    assert_memory_equal(out, msg, len); /* byte for byte what ra sent */
    len = unhex(REC_ACK, msg);
    rc = bytewise ? feed_bytes(&m, msg, len) : feed_split(&m, msg, len, split % len);
    assert_int_equal(rc, BL_HSM_DONE);
    assert_int_equal(m.peer_creation, 0x6b0e8f26);
}

static void test_accept_recorded_every_split(void **state)
{
    (void)state;
    for (size_t s = 0; s < 64; s++)
        accept_recorded(s, 0);
    accept_recorded(0, 1);
}

static void test_connect_recorded_every_split(void **state)
{
    (void)state;
    for (size_t s = 0; s < 64; s++)
        connect_recorded(s, 0);
    connect_recorded(0, 1);
}

static void test_digest_matches_otp(void **state)
{
    (void)state;
    unsigned char d[16], msg[64];
    assert_int_equal(bl_hsm_digest(COOKIE, REC_CH_RB, d), 0);
    unhex(REC_REPLY, msg);
    assert_memory_equal(d, msg + 2 + 5, 16);
    assert_int_equal(bl_hsm_digest(COOKIE, REC_CH_RA, d), 0);
    unhex(REC_ACK, msg);
    assert_memory_equal(d, msg + 3, 16);
}

static void test_wrong_cookie_recorded(void **state)
{
    (void)state;
    unsigned char msg[512];
    size_t len, used;
    bl_hsm m;
    /* rb's side: rc's reply carries a digest made with another cookie */
    len = unhex(REC_BAD_CHALLENGE, msg); /* rb's challenge then was REC_BAD_CH_RB */
    assert_int_equal(((uint32_t)msg[11] << 24) | ((uint32_t)msg[12] << 16) |
                         ((uint32_t)msg[13] << 8) | msg[14],
                     REC_BAD_CH_RB);
    bl_hsm_init_in(&m, "rb@vm", COOKIE, OUR_FLAGS, 1, REC_BAD_CH_RB);
    len = unhex(REC_BAD_NAME, msg);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DECIDE);
    assert_string_equal(m.peer, "rc@vm");
    assert_int_equal(bl_hsm_decide(&m, BL_HS_STATUS_OK), BL_HSM_MORE);
    m.outlen = 0;
    len = unhex(REC_BAD_REPLY, msg);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    assert_non_null(strstr(m.error, "wrong cookie"));
    assert_int_equal(m.outlen, 0); /* no ack for a wrong cookie */
    /* once failed, it stays failed */
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);

    /* rc's side with our own wrong cookie: rb's real ack cannot match */
    bl_hsm_init_out(&m, "ra@vm", "wrongcookie", OUR_FLAGS, 1, "rb@vm", REC_CH_RA);
    len = unhex(REC_STATUS, msg);
    len += unhex(REC_CHALLENGE, msg + len);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_MORE);
    len = unhex(REC_ACK, msg);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    assert_non_null(strstr(m.error, "challenge ack"));
}

static void test_wrong_digest(void **state)
{
    (void)state;
    unsigned char msg[512];
    size_t len, used;
    for (int byte = 0; byte < 16; byte++) {
        bl_hsm m;
        bl_hsm_init_out(&m, "ra@vm", COOKIE, OUR_FLAGS, 1, "rb@vm", REC_CH_RA);
        len = unhex(REC_STATUS, msg);
        len += unhex(REC_CHALLENGE, msg + len);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_MORE);
        len = unhex(REC_ACK, msg);
        msg[3 + byte] ^= 0x01;
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);

        bl_hsm_init_in(&m, "rb@vm", COOKIE, OUR_FLAGS, 1, REC_CH_RB);
        len = unhex(REC_NAME, msg);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DECIDE);
        bl_hsm_decide(&m, BL_HS_STATUS_OK);
        len = unhex(REC_REPLY, msg);
        msg[7 + byte] ^= 0x80;
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    }
}

/* ---- statuses ---- */

static size_t status_pkt(unsigned char *p, const char *st)
{
    size_t k = strlen(st);
    p[0] = (unsigned char)((k + 1) >> 8);
    p[1] = (unsigned char)(k + 1);
    p[2] = 's';
    memcpy(p + 3, st, k);
    return k + 3;
}

static void test_initiator_statuses(void **state)
{
    (void)state;
    unsigned char msg[512];
    size_t len, used;
    bl_hsm m;
    struct {
        const char *st;
        int rc;
    } cases[] = {
        {"ok", BL_HSM_MORE},           {"ok_simultaneous", BL_HSM_MORE},
        {"nok", BL_HSM_NOK},           {"alive", BL_HSM_PENDING},
        {"not_allowed", BL_HSM_ERROR}, {"named:", BL_HSM_ERROR},
        {"bogus", BL_HSM_ERROR},       {"o", BL_HSM_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bl_hsm_init_out(&m, "ra@vm", COOKIE, OUR_FLAGS, 1, "rb@vm", REC_CH_RA);
        m.outlen = 0;
        len = status_pkt(msg, cases[i].st);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), cases[i].rc);
        if (cases[i].rc == BL_HSM_MORE) { /* goes on to the recorded challenge */
            len = unhex(REC_CHALLENGE, msg);
            assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_MORE);
            assert_int_equal(m.out[2], 'r');
        }
    }
    /* alive: "true" goes on, "false" gives up */
    for (int yes = 0; yes <= 1; yes++) {
        bl_hsm_init_out(&m, "ra@vm", COOKIE, OUR_FLAGS, 1, "rb@vm", REC_CH_RA);
        m.outlen = 0;
        len = status_pkt(msg, "alive");
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_PENDING);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_PENDING); /* waits */
        assert_int_equal(bl_hsm_still_pending(&m, yes), yes ? BL_HSM_MORE : BL_HSM_ERROR);
        len = status_pkt(msg, yes ? "true" : "false");
        assert_int_equal(m.outlen, len);
        assert_memory_equal(m.out, msg, len);
        if (yes) {
            m.outlen = 0;
            len = unhex(REC_CHALLENGE, msg);
            assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_MORE);
            len = unhex(REC_ACK, msg);
            assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DONE);
        }
    }
}

static void test_acceptor_statuses(void **state)
{
    (void)state;
    unsigned char msg[512], want[64];
    size_t len, used;
    bl_hsm m;
    struct {
        bl_hs_status st;
        const char *text;
        int rc;
    } cases[] = {
        {BL_HS_STATUS_OK, "ok", BL_HSM_MORE},
        {BL_HS_STATUS_OK_SIMULTANEOUS, "ok_simultaneous", BL_HSM_MORE},
        {BL_HS_STATUS_NOK, "nok", BL_HSM_ERROR},
        {BL_HS_STATUS_ALIVE, "alive", BL_HSM_MORE},
        {BL_HS_STATUS_NOT_ALLOWED, "not_allowed", BL_HSM_ERROR},
        {BL_HS_STATUS_CLOSE, NULL, BL_HSM_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bl_hsm_init_in(&m, "rb@vm", COOKIE, OUR_FLAGS, 1, REC_CH_RB);
        len = unhex(REC_NAME, msg);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DECIDE);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DECIDE); /* waits */
        assert_int_equal(bl_hsm_decide(&m, cases[i].st), cases[i].rc);
        if (!cases[i].text) {
            assert_int_equal(m.outlen, 0);
            continue;
        }
        size_t wl = status_pkt(want, cases[i].text);
        assert_true(m.outlen >= wl);
        assert_memory_equal(m.out, want, wl);
    }
    /* alive, then the peer's "true" (challenge follows) or "false" (refused) */
    for (int yes = 0; yes <= 1; yes++) {
        bl_hsm_init_in(&m, "rb@vm", COOKIE, OUR_FLAGS, 1, REC_CH_RB);
        len = unhex(REC_NAME, msg);
        bl_hsm_feed(&m, (char *)msg, len, &used);
        bl_hsm_decide(&m, BL_HS_STATUS_ALIVE);
        m.outlen = 0;
        len = status_pkt(msg, yes ? "true" : "false");
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used),
                         yes ? BL_HSM_MORE : BL_HSM_ERROR);
        if (!yes) continue;
        assert_int_equal(m.alive, 1);
        assert_int_equal(m.out[2], 'N');
        len = unhex(REC_REPLY, msg);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DONE);
    }
}

/* ---- hand-made OTP 26 / 27 peers ---- */

static size_t name_pkt(unsigned char *p, uint64_t flags, uint32_t creation, const char *name)
{
    size_t nl = strlen(name);
    size_t body = 15 + nl;
    p[0] = (unsigned char)(body >> 8);
    p[1] = (unsigned char)body;
    p[2] = 'N';
    for (int i = 0; i < 8; i++)
        p[3 + i] = (unsigned char)(flags >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        p[11 + i] = (unsigned char)(creation >> (24 - 8 * i));
    p[15] = (unsigned char)(nl >> 8);
    p[16] = (unsigned char)nl;
    memcpy(p + 17, name, nl);
    return 2 + body;
}

/* A whole handshake against a made-up acceptor answering with flags, computing its digests. */
static void run_made_up_acceptor(uint64_t peer_flags, int expect_ok)
{
    unsigned char msg[512];
    size_t len, used;
    bl_hsm m;
    bl_hsm_init_out(&m, "c@h", "k", OUR_FLAGS, 7, "e27@h", 0x01020304);
    m.outlen = 0;
    len = status_pkt(msg, "ok");
    /* challenge: 'N' flags challenge creation name */
    const char *name = "e27@h";
    size_t nl = strlen(name), body = 19 + nl;
    msg[len] = 0;
    msg[len + 1] = (unsigned char)body;
    unsigned char *p = msg + len + 2;
    p[0] = 'N';
    for (int i = 0; i < 8; i++)
        p[1 + i] = (unsigned char)(peer_flags >> (56 - 8 * i));
    p[9] = 0xde, p[10] = 0xad, p[11] = 0xbe, p[12] = 0xef;
    p[13] = 0, p[14] = 0, p[15] = 0, p[16] = 9;
    p[17] = 0, p[18] = (unsigned char)nl;
    memcpy(p + 19, name, nl);
    len += 2 + body;
    int rc = bl_hsm_feed(&m, (char *)msg, len, &used);
    if (!expect_ok) {
        assert_int_equal(rc, BL_HSM_ERROR);
        assert_non_null(strstr(m.error, "mandatory"));
        return;
    }
    assert_int_equal(rc, BL_HSM_MORE);
    unsigned char d[16];
    bl_hsm_digest("k", 0xdeadbeef, d);
    assert_memory_equal(m.out + 2 + 5, d, 16);
    bl_hsm_digest("k", 0x01020304, d);
    msg[0] = 0, msg[1] = 17, msg[2] = 'a';
    memcpy(msg + 3, d, 16);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, 19, &used), BL_HSM_DONE);
    assert_int_equal(m.peer_creation, 9);
    assert_true((m.flags & BL_DFLAGS_MANDATORY_25) == BL_DFLAGS_MANDATORY_25);
}

static void test_otp26_27_peers(void **state)
{
    (void)state;
    /* OTP 26: the full old set plus UNLINK_ID and V4_NC, SPAWN, ALIAS */
    uint64_t otp26 = BL_DFLAGS_MANDATORY_25 | BL_DFLAG_MANDATORY_25_DIGEST | BL_DFLAG_UNLINK_ID |
                     BL_DFLAG_V4_NC | BL_DFLAG_SPAWN | BL_DFLAG_ALIAS | BL_DFLAG_DIST_MONITOR |
                     BL_DFLAG_DIST_HDR_ATOM_CACHE | BL_DFLAG_FRAGMENTS;
    run_made_up_acceptor(otp26, 1);
    /* OTP 27 towards OTP 25/26: MANDATORY_25_DIGEST stands for the old bits, which may be
     * absent; ALTACT_SIG (0x20 << 32) is unknown to us and must not hurt */
    uint64_t otp27 = BL_DFLAG_MANDATORY_25_DIGEST | BL_DFLAG_UNLINK_ID | BL_DFLAG_V4_NC |
                     BL_DFLAG_SPAWN | BL_DFLAG_ALIAS | (0x20ull << 32);
    run_made_up_acceptor(otp27, 1);
    /* an OTP 24-or-older peer without the mandatory set */
    run_made_up_acceptor(BL_DFLAG_EXTENDED_REFERENCES | BL_DFLAG_UTF8_ATOMS, 0);

    /* acceptor side: an OTP 27 send_name with only the digest flag is accepted; one without the
     * mandatory flags is answered not_allowed */
    unsigned char msg[512], want[32];
    size_t len, used;
    bl_hsm m;
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    len = name_pkt(msg, otp27, 42, "e27@h");
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_DECIDE);
    assert_int_equal(m.peer_creation, 42);
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    len = name_pkt(msg, BL_DFLAG_UTF8_ATOMS, 42, "old@h");
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    size_t wl = status_pkt(want, "not_allowed");
    assert_int_equal(m.outlen, wl);
    assert_memory_equal(m.out, want, wl);
    /* a dynamic-name request (NAME_ME) is refused: we hand out no names */
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    len = name_pkt(msg, otp27 | BL_DFLAG_NAME_ME, 0, "x@h");
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
}

/* ---- bad packets ---- */

static void test_bad_packets(void **state)
{
    (void)state;
    unsigned char msg[2048];
    size_t len, used;
    bl_hsm m;
    const char *bad_names[] = {"noat", "@h", "a@", "a@b@c", ""};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
        len = name_pkt(msg, BL_DFLAGS_ADVERTISED, 1, bad_names[i]);
        assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    }
    /* the pre-OTP 23 'n' handshake */
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    len = name_pkt(msg, BL_DFLAGS_ADVERTISED, 1, "a@h");
    msg[2] = 'n';
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    assert_non_null(strstr(m.error, "pre-OTP 23"));
    /* a zero-length packet, an oversized one */
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    msg[0] = 0, msg[1] = 0;
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, 2, &used), BL_HSM_ERROR);
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    msg[0] = 0xff, msg[1] = 0xff;
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, 2, &used), BL_HSM_ERROR);
    /* a name length past the packet */
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    len = name_pkt(msg, BL_DFLAGS_ADVERTISED, 1, "a@h");
    msg[16] = 200;
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    /* a challenge from a node with another name than the one dialled */
    bl_hsm_init_out(&m, "ra@vm", COOKIE, OUR_FLAGS, 1, "other@vm", REC_CH_RA);
    len = unhex(REC_STATUS, msg);
    len += unhex(REC_CHALLENGE, msg + len);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    assert_non_null(strstr(m.error, "another name"));
    /* a reply of the wrong size, an ack of the wrong size */
    bl_hsm_init_in(&m, "rb@vm", COOKIE, OUR_FLAGS, 1, REC_CH_RB);
    len = unhex(REC_NAME, msg);
    bl_hsm_feed(&m, (char *)msg, len, &used);
    bl_hsm_decide(&m, BL_HS_STATUS_OK);
    len = unhex("0004720102ff", msg);
    assert_int_equal(bl_hsm_feed(&m, (char *)msg, len, &used), BL_HSM_ERROR);
    /* decisions out of turn */
    bl_hsm_init_in(&m, "c@h", "k", OUR_FLAGS, 1, 5);
    assert_int_equal(bl_hsm_decide(&m, BL_HS_STATUS_OK), BL_HSM_ERROR);
    bl_hsm_init_out(&m, "c@h", "k", OUR_FLAGS, 1, "a@h", 5);
    assert_int_equal(bl_hsm_still_pending(&m, 1), BL_HSM_ERROR);
}

/* A handshake between two machines of ours, both directions at once, every flag agreed. */
static void test_ours_to_ours(void **state)
{
    (void)state;
    bl_hsm a, b;
    size_t used;
    bl_hsm_init_out(&a, "a@h", "sec", OUR_FLAGS, 11, "b@h", 0xaaaa);
    bl_hsm_init_in(&b, "b@h", "sec", OUR_FLAGS, 22, 0xbbbb);
    assert_int_equal(bl_hsm_feed(&b, (char *)a.out, a.outlen, &used), BL_HSM_DECIDE);
    a.outlen = 0;
    bl_hsm_decide(&b, BL_HS_STATUS_OK_SIMULTANEOUS);
    assert_int_equal(bl_hsm_feed(&a, (char *)b.out, b.outlen, &used), BL_HSM_MORE);
    b.outlen = 0;
    assert_int_equal(bl_hsm_feed(&b, (char *)a.out, a.outlen, &used), BL_HSM_DONE);
    assert_int_equal(bl_hsm_feed(&a, (char *)b.out, b.outlen, &used), BL_HSM_DONE);
    assert_int_equal(a.flags, OUR_FLAGS);
    assert_int_equal(b.flags, OUR_FLAGS);
    assert_int_equal(a.peer_creation, 22);
    assert_int_equal(b.peer_creation, 11);
    assert_false(OUR_FLAGS & BL_DFLAG_PUBLISHED); /* hidden, like an ei node */
}

/* Inside TLS (inet_tls_dist's {packet, 4}) every packet has a 4-byte length: the send_name that
 * init queued is re-framed, the statuses and challenges are framed so, fed one byte at a time. */
static void test_len4_framing(void **state)
{
    (void)state;
    bl_hsm a, b;
    size_t used;
    bl_hsm_init_out(&a, "a@h", "sec", OUR_FLAGS, 11, "b@h", 0xaaaa);
    size_t two = a.outlen;
    bl_hsm_set_len4(&a);
    assert_int_equal(a.outlen, two + 2);
    assert_int_equal(a.out[0], 0);
    assert_int_equal(a.out[1], 0);
    assert_int_equal(((size_t)a.out[2] << 8) | a.out[3], two - 2);
    assert_int_equal(a.out[4], 'N');
    bl_hsm_init_in(&b, "b@h", "sec", OUR_FLAGS, 22, 0xbbbb);
    bl_hsm_set_len4(&b);
    int rc = BL_HSM_MORE;
    for (size_t i = 0; i < a.outlen && rc == BL_HSM_MORE; i++)
        rc = bl_hsm_feed(&b, (char *)a.out + i, 1, &used);
    assert_int_equal(rc, BL_HSM_DECIDE);
    a.outlen = 0;
    bl_hsm_decide(&b, BL_HS_STATUS_OK);
    assert_int_equal(b.out[0], 0); /* "sok" with a 4-byte length: 00 00 00 03 's' 'o' 'k' */
    assert_int_equal(b.out[3], 3);
    assert_int_equal(b.out[4], 's');
    assert_int_equal(bl_hsm_feed(&a, (char *)b.out, b.outlen, &used), BL_HSM_MORE);
    b.outlen = 0;
    assert_int_equal(bl_hsm_feed(&b, (char *)a.out, a.outlen, &used), BL_HSM_DONE);
    assert_int_equal(bl_hsm_feed(&a, (char *)b.out, b.outlen, &used), BL_HSM_DONE);
    /* a 2-byte-framed peer (or garbage) against a 4-byte acceptor: a bad packet, not a hang */
    bl_hsm_init_in(&b, "b@h", "sec", OUR_FLAGS, 22, 0xbbbb);
    bl_hsm_set_len4(&b);
    const char plain[] = {0x00, 0x10, 'N', 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(bl_hsm_feed(&b, plain, sizeof(plain), &used), BL_HSM_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_recorded_every_split),
        cmocka_unit_test(test_connect_recorded_every_split),
        cmocka_unit_test(test_digest_matches_otp),
        cmocka_unit_test(test_wrong_cookie_recorded),
        cmocka_unit_test(test_wrong_digest),
        cmocka_unit_test(test_initiator_statuses),
        cmocka_unit_test(test_acceptor_statuses),
        cmocka_unit_test(test_otp26_27_peers),
        cmocka_unit_test(test_bad_packets),
        cmocka_unit_test(test_ours_to_ours),
        cmocka_unit_test(test_len4_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
