/* test_gossip.c - unit tests for the libcluster-compatible gossip codec and socket
 * (c_src/cluster/gossip.c).
 *
 * The compatibility proof is the pair of packets made by a real BEAM: a plaintext heartbeat from
 * term_to_binary (OTP 25, ATOM_EXT atoms; and OTP 26-style SMALL_ATOM_UTF8_EXT atoms) and
 * encrypted heartbeats built exactly as libcluster's gossip.ex does (IV ++ AES-256-CBC with key
 * sha256(secret), PKCS#7 padding, crypto:crypto_one_time). Everything else must be rejected
 * without reading out of bounds. The last tests run a gossip instance on a real loop and socket
 * (unicast to 127.0.0.1, no multicast needed) and check delivery and the log rate limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/gossip.h"

#define BUF 2048

/* erl -noshell -eval 'io:format("~w", [binary_to_list(<<"heartbeat::",
 *     (term_to_binary(#{node => a@b}))/binary>>)]), halt().'   (OTP 25) */
static const unsigned char BEAM_PLAIN[] = {104, 101, 97,  114, 116, 98, 101, 97,  116, 58,
                                           58,  131, 116, 0,   0,   0,  1,   100, 0,   4,
                                           110, 111, 100, 101, 100, 0,  3,   97,  64,  98};

/* "heartbeat::" ++ term_to_binary(#{node => 'x@y'}, [{minor_version, 2}]): UTF-8 atoms, as
 * OTP 26+ encodes by default. */
static const unsigned char BEAM_PLAIN_UTF8[] = {104, 101, 97,  114, 116, 98,  101, 97,  116, 58,
                                                58,  131, 116, 0,   0,   0,   1,   119, 4,   110,
                                                111, 100, 101, 119, 3,   120, 64,  121};

/* libcluster's encrypt/3 in Erlang (OTP 25):
 *   Msg = <<"heartbeat::", (term_to_binary(#{node => Node}))/binary>>,
 *   P = 16 - byte_size(Msg) rem 16, Padded = <<Msg/binary, (binary:copy(<<P>>, P))/binary>>,
 *   IV = crypto:strong_rand_bytes(16), Key = crypto:hash(sha256, Secret),
 *   <<IV/binary, (crypto:crypto_one_time(aes_256_cbc, Key, IV, Padded, true))/binary>> */
static const char *ENC1_SECRET = "beamlet-secret"; /* node a@b */
static const unsigned char ENC1[] = {36,  186, 209, 116, 14,  147, 171, 55,  77,  139, 108, 115,
                                     50,  64,  247, 139, 238, 13,  108, 199, 246, 27,  196, 162,
                                     235, 146, 232, 220, 211, 101, 37,  50,  10,  57,  74,  83,
                                     101, 213, 215, 77,  9,   198, 147, 130, 16,  190, 182, 6};
static const char *ENC2_SECRET = "s3cr3t"; /* node libcluster_node@somehost */
static const unsigned char ENC2[] = {
    245, 167, 216, 193, 6,   141, 113, 2,   130, 198, 77,  49,  133, 51,  133, 13,
    159, 38,  242, 100, 71,  132, 219, 57,  85,  39,  187, 13,  166, 65,  60,  147,
    141, 234, 253, 156, 252, 101, 205, 236, 235, 42,  91,  110, 34,  249, 185, 55,
    193, 173, 225, 186, 128, 12,  69,  31,  61,  230, 111, 142, 225, 194, 76,  187,
    184, 246, 102, 21,  65,  254, 182, 164, 209, 8,   154, 136, 213, 120, 210, 112};

static void test_beam_plain(void **state)
{
    (void)state;
    char node[BL_NODE_LEN];
    assert_int_equal(bl_gossip_decode(BEAM_PLAIN, sizeof(BEAM_PLAIN), NULL, node, sizeof(node)), 0);
    assert_string_equal(node, "a@b");
    assert_int_equal(bl_gossip_decode(BEAM_PLAIN, sizeof(BEAM_PLAIN), "", node, sizeof(node)), 0);
    assert_string_equal(node, "a@b");
    assert_int_equal(
        bl_gossip_decode(BEAM_PLAIN_UTF8, sizeof(BEAM_PLAIN_UTF8), NULL, node, sizeof(node)), 0);
    assert_string_equal(node, "x@y");
    /* a secret is set: libcluster would try to decrypt it and fail; so do we */
    assert_int_equal(bl_gossip_decode(BEAM_PLAIN, sizeof(BEAM_PLAIN), "s", node, sizeof(node)), -1);
}

static void test_beam_encrypted(void **state)
{
    (void)state;
    char node[BL_NODE_LEN];
    assert_int_equal(bl_gossip_decode(ENC1, sizeof(ENC1), ENC1_SECRET, node, sizeof(node)), 0);
    assert_string_equal(node, "a@b");
    assert_int_equal(bl_gossip_decode(ENC2, sizeof(ENC2), ENC2_SECRET, node, sizeof(node)), 0);
    assert_string_equal(node, "libcluster_node@somehost");
    /* wrong secret, no secret, swapped secrets */
    assert_int_equal(bl_gossip_decode(ENC1, sizeof(ENC1), ENC2_SECRET, node, sizeof(node)), -1);
    assert_int_equal(bl_gossip_decode(ENC2, sizeof(ENC2), ENC1_SECRET, node, sizeof(node)), -1);
    assert_int_equal(bl_gossip_decode(ENC1, sizeof(ENC1), NULL, node, sizeof(node)), -1);
    assert_int_equal(bl_gossip_decode(ENC1, sizeof(ENC1), "beamlet-secreT", node, sizeof(node)),
                     -1);
    /* any flipped bit in the last block breaks the padding or the term */
    unsigned char m[sizeof(ENC1)];
    for (size_t i = sizeof(ENC1) - 16; i < sizeof(ENC1); i++) {
        memcpy(m, ENC1, sizeof(m));
        m[i] ^= 0x01;
        assert_int_equal(bl_gossip_decode(m, sizeof(m), ENC1_SECRET, node, sizeof(node)), -1);
    }
}

static void test_roundtrip_plain(void **state)
{
    (void)state;
    unsigned char pkt[BUF];
    char node[BL_NODE_LEN];
    int len = bl_gossip_encode("a@b", NULL, pkt, sizeof(pkt));
    assert_true(len > 11);
    assert_memory_equal(pkt, "heartbeat::\x83t\0\0\0\1", 17);
    assert_int_equal(bl_gossip_decode(pkt, (size_t)len, NULL, node, sizeof(node)), 0);
    assert_string_equal(node, "a@b");
    assert_int_equal(bl_gossip_encode("gA@myhost", "", pkt, sizeof(pkt)) > 0, 1);

    char longname[BL_NODE_LEN];
    memset(longname, 'n', sizeof(longname));
    longname[100] = '@';
    longname[BL_NODE_LEN - 1] = '\0'; /* 255 chars: the longest atom */
    len = bl_gossip_encode(longname, NULL, pkt, sizeof(pkt));
    assert_true(len > 255);
    assert_int_equal(bl_gossip_decode(pkt, (size_t)len, NULL, node, sizeof(node)), 0);
    assert_string_equal(node, longname);
    /* the caller's buffer too small for the name */
    assert_int_equal(bl_gossip_decode(pkt, (size_t)len, NULL, node, 200), -1);
    /* exactly big enough */
    assert_int_equal(bl_gossip_decode(pkt, (size_t)len, NULL, node, 256), 0);
}

static void test_roundtrip_secret(void **state)
{
    (void)state;
    unsigned char a[BUF], b[BUF];
    char node[BL_NODE_LEN];
    int la = bl_gossip_encode("gS@host", "S", a, sizeof(a));
    int lb = bl_gossip_encode("gS@host", "S", b, sizeof(b));
    int lp = bl_gossip_encode("gS@host", NULL, b + 1024, 512);
    assert_true(la > 0 && lb == la && lp > 0);
    assert_int_equal((la - 16) % 16, 0);
    assert_int_equal(la, 16 + (lp / 16 + 1) * 16); /* PKCS#7: 1..16 pad bytes */
    assert_memory_not_equal(a, b, 16);             /* a fresh IV each time */
    assert_int_equal(bl_gossip_decode(a, (size_t)la, "S", node, sizeof(node)), 0);
    assert_string_equal(node, "gS@host");
    assert_int_equal(bl_gossip_decode(b, (size_t)lb, "S", node, sizeof(node)), 0);
    assert_int_equal(bl_gossip_decode(a, (size_t)la, NULL, node, sizeof(node)), -1);
    /* many encryptions decoded with a wrong key: some have valid padding by chance (~1/256);
     * none may be accepted */
    for (int i = 0; i < 2000; i++) {
        int l = bl_gossip_encode("gS@host", "S", a, sizeof(a));
        assert_true(l > 0);
        assert_int_equal(bl_gossip_decode(a, (size_t)l, "T", node, sizeof(node)), -1);
        assert_int_equal(bl_gossip_decode(a, (size_t)l, "S", node, sizeof(node)), 0);
    }
    /* a block-aligned plaintext gets a whole block of padding */
    for (int k = 3; k < 60; k++) {
        char name[80];
        memset(name, 'x', sizeof(name));
        name[1] = '@';
        name[k] = '\0';
        int l = bl_gossip_encode(name, "secret", a, sizeof(a));
        int p = bl_gossip_encode(name, NULL, b, sizeof(b));
        assert_int_equal(l, 16 + (p / 16 + 1) * 16);
        assert_int_equal(bl_gossip_decode(a, (size_t)l, "secret", node, sizeof(node)), 0);
        assert_string_equal(node, name);
    }
}

static void test_truncated(void **state)
{
    (void)state;
    char node[BL_NODE_LEN];
    unsigned char pkt[BUF], *copy;
    for (int keyed = 0; keyed < 2; keyed++) {
        const char *sec = keyed ? "k" : NULL;
        int len = bl_gossip_encode("trunc@host", sec, pkt, sizeof(pkt));
        assert_true(len > 0);
        for (int cut = 0; cut < len; cut++) {
            copy = malloc(cut ? (size_t)cut : 1); /* exact size: ASan sees any over-read */
            memcpy(copy, pkt, (size_t)cut);
            assert_int_equal(bl_gossip_decode(copy, (size_t)cut, sec, node, sizeof(node)), -1);
            free(copy);
        }
    }
    /* truncating the BEAM packets, too */
    for (size_t cut = 0; cut < sizeof(BEAM_PLAIN); cut++) {
        copy = malloc(cut ? cut : 1);
        memcpy(copy, BEAM_PLAIN, cut);
        assert_int_equal(bl_gossip_decode(copy, cut, NULL, node, sizeof(node)), -1);
        free(copy);
    }
}

static void test_garbage_and_shape(void **state)
{
    (void)state;
    char node[BL_NODE_LEN];
    unsigned char pkt[BUF];
    srand(42);
    for (int i = 0; i < 5000; i++) {
        size_t len = (size_t)(rand() % 200);
        for (size_t j = 0; j < len; j++)
            pkt[j] = (unsigned char)rand();
        if (i % 2) memcpy(pkt, "heartbeat::", len < 11 ? len : 11);
        assert_int_equal(bl_gossip_decode(pkt, len, NULL, node, sizeof(node)), -1);
        assert_int_equal(bl_gossip_decode(pkt, len, "x", node, sizeof(node)), -1);
    }
    /* oversized: a valid heartbeat followed by a lot of padding */
    memset(pkt, 0, sizeof(pkt));
    memcpy(pkt, BEAM_PLAIN, sizeof(BEAM_PLAIN));
    assert_int_equal(bl_gossip_decode(pkt, sizeof(pkt), NULL, node, sizeof(node)), -1);
    assert_int_equal(bl_gossip_decode(pkt, sizeof(pkt), "x", node, sizeof(node)), -1);
    /* trailing byte (binary_to_term would ignore it; we are strict) */
    assert_int_equal(bl_gossip_decode(pkt, sizeof(BEAM_PLAIN) + 1, NULL, node, sizeof(node)), -1);

#define HB "heartbeat::\x83"
#define B(s, w)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, w                                                                        \
    }
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        B(HB "t\0\0\0\2d\0\4noded\0\3a@bd\0\1xd\0\1y", "map of arity 2"),
        B(HB "t\0\0\0\1d\0\4nodem\0\0\0\3a@b", "binary value"),
        B(HB "t\0\0\0\1d\0\4named\0\3a@b", "key is not node"),
        B(HB "t\0\0\0\1m\0\0\0\4noded\0\3a@b", "binary key"),
        B(HB "t\0\0\0\1d\0\4noded\0\3ab_", "no @"),
        B(HB "t\0\0\0\1d\0\4noded\0\4a@@b", "two @"),
        B(HB "t\0\0\0\1d\0\4noded\0\2@b", "empty alive"),
        B(HB "t\0\0\0\1d\0\4noded\0\3a@ ", "space"),
        B(HB "t\0\0\0\1d\0\4noded\0\3a@\xe9", "latin-1 char"),
        B(HB "t\0\0\0\1d\0\4noded\0\xff"
             "a@b",
          "atom length beyond the end"),
        B(HB "h\2d\0\4noded\0\3a@b", "tuple"),
        B(HB "t\0\0\0\0", "empty map"),
        B(HB "t\xff\xff\xff\xff", "huge arity"),
        B("heartbeat:\x83t\0\0\0\1d\0\4noded\0\3a@b", "short prefix"),
        B("heartbeat::\x82t\0\0\0\1d\0\4noded\0\3a@b", "bad version"),
        B("heartbeat::", "prefix only"),
        B("", "empty"),
    };
#undef HB
#undef B
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *c = malloc(bad[i].len ? bad[i].len : 1);
        memcpy(c, bad[i].bytes, bad[i].len);
        if (bl_gossip_decode(c, bad[i].len, NULL, node, sizeof(node)) != -1)
            fail_msg("accepted: %s", bad[i].what);
        free(c);
    }
    /* the same shape checks with the good bytes, to be sure the table is not wrong by length */
    static const char good[] = "heartbeat::\x83t\0\0\0\1s\4nodew\3a@b";
    assert_int_equal(
        bl_gossip_decode((const unsigned char *)good, sizeof(good) - 1, NULL, node, sizeof(node)),
        0);
    assert_string_equal(node, "a@b");
}

static void test_encode_rejects(void **state)
{
    (void)state;
    unsigned char pkt[BUF];
    assert_int_equal(bl_gossip_encode(NULL, NULL, pkt, sizeof(pkt)), -1);
    assert_int_equal(bl_gossip_encode("", NULL, pkt, sizeof(pkt)), -1);
    assert_int_equal(bl_gossip_encode("noat", NULL, pkt, sizeof(pkt)), -1);
    assert_int_equal(bl_gossip_encode("a@b@c", NULL, pkt, sizeof(pkt)), -1);
    assert_int_equal(bl_gossip_encode("a@b", NULL, NULL, 0), -1);
    assert_int_equal(bl_gossip_encode("a@b", NULL, pkt, 20), -1);
    assert_int_equal(bl_gossip_encode("a@b", "s", pkt, 40), -1);
    char big[BL_NODE_LEN + 10];
    memset(big, 'b', sizeof(big));
    big[5] = '@';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(bl_gossip_encode(big, NULL, pkt, sizeof(pkt)), -1);
    /* exact sizes are enough */
    int l = bl_gossip_encode("a@b", NULL, pkt, sizeof(pkt));
    assert_int_equal(bl_gossip_encode("a@b", NULL, pkt, (size_t)l), l);
    l = bl_gossip_encode("a@b", "s", pkt, sizeof(pkt));
    assert_int_equal(bl_gossip_encode("a@b", "s", pkt, (size_t)l), l);
    assert_int_equal(bl_gossip_encode("a@b", "s", pkt, (size_t)l - 1), -1);
}

/* ---- on a loop --------------------------------------------------------------------------- */

typedef struct {
    int found;
    char last[BL_NODE_LEN];
} seen;

static void on_found(bl_node *n, const char *node, void *ud)
{
    (void)n;
    seen *s = ud;
    s->found++;
    snprintf(s->last, sizeof(s->last), "%s", node);
}

static void run_for(struct ev_loop *loop, double secs)
{
    ev_tstamp end = ev_time() + secs;
    while (ev_time() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(5000);
    }
}

static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void send_to(int port, const void *p, size_t len)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(sendto(fd, p, len, 0, (struct sockaddr *)&sa, sizeof(sa)) == (ssize_t)len);
    close(fd);
}

/* Count the lines containing needle in a file. */
static int count_lines(FILE *f, const char *needle)
{
    fflush(stderr);
    rewind(f);
    char line[2048];
    int c = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle)) c++;
    return c;
}

static void test_live(void **state)
{
    (void)state;
    bl_node *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    bl_config_init(&n->cfg);
    n->cfg.log_level = BL_LOG_WARN;
    snprintf(n->name, sizeof(n->name), "me@host");
    n->loop = ev_loop_new(EVFLAG_AUTO);
    int port = free_udp_port();
    /* unicast to ourselves: our own heartbeats come back and must be ignored */
    snprintf(n->cfg.gossip_address, sizeof(n->cfg.gossip_address), "127.0.0.1");
    snprintf(n->cfg.gossip_if, sizeof(n->cfg.gossip_if), "127.0.0.1");
    n->cfg.gossip_port = port;
    n->cfg.gossip_interval_ms = 100;
    snprintf(n->cfg.gossip_secret, sizeof(n->cfg.gossip_secret), "%s", ENC1_SECRET);

    /* capture stderr (the log) in a temporary file */
    FILE *logf = tmpfile();
    assert_non_null(logf);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(logf), 2);

    seen s = {0};
    char err[256] = "";
    bl_gossip *g = bl_gossip_start(n, on_found, &s, err, sizeof(err));
    if (!g) {
        dup2(saved, 2);
        fail_msg("bl_gossip_start: %s", err);
    }
    run_for(n->loop, 0.35); /* ~4 of our own heartbeats */
    assert_int_equal(s.found, 0);

    send_to(port, ENC1, sizeof(ENC1)); /* a libcluster node a@b with our secret */
    run_for(n->loop, 0.1);
    assert_int_equal(s.found, 1);
    assert_string_equal(s.last, "a@b");

    /* 50 bad packets from one address: exactly one warning line */
    for (int i = 0; i < 50; i++)
        send_to(port, i % 2 ? "garbage" : (const char *)ENC2, i % 2 ? 7 : sizeof(ENC2));
    send_to(port, BEAM_PLAIN, sizeof(BEAM_PLAIN));
    run_for(n->loop, 0.2);
    send_to(port, ENC1, sizeof(ENC1)); /* still working */
    run_for(n->loop, 0.1);
    assert_int_equal(s.found, 2);
    int warns = count_lines(logf, "gossip: ignoring");
    int wrong = count_lines(logf, "wrong secret");
    bl_gossip_stop(g);
    bl_gossip_stop(NULL);

    /* a bad configuration fails with a reason */
    snprintf(n->cfg.gossip_address, sizeof(n->cfg.gossip_address), "not-an-ip");
    g = bl_gossip_start(n, on_found, &s, err, sizeof(err));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_null(g);
    assert_non_null(strstr(err, "gossip_address"));
    assert_int_equal(warns, 1);
    assert_int_equal(wrong, 1); /* the first bad packet was ENC2: wrong secret */
    fclose(logf);
    ev_loop_destroy(n->loop);
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beam_plain),      cmocka_unit_test(test_beam_encrypted),
        cmocka_unit_test(test_roundtrip_plain), cmocka_unit_test(test_roundtrip_secret),
        cmocka_unit_test(test_truncated),       cmocka_unit_test(test_garbage_and_shape),
        cmocka_unit_test(test_encode_rejects),  cmocka_unit_test(test_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
