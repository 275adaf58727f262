/* test_disthdr.c - unit tests for distribution headers, the atom cache and fragments
 * (c_src/dist/disthdr.c, c_src/dist/atomcache.c).
 *
 * Three kinds: frames recorded from real BEAM (OTP 25, two erl nodes on loopback, see
 * test/unit/data/README.md) decoded in order and compared with what the sending node said it sent;
 * hand-made headers (new and reused refs, every slot, long atoms, and every kind of bad header or
 * fragment); and our own encoder's frames decoded again (atoms through the cache, 2048 slots
 * and more, fragments of several messages interleaved with small ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ei.h>

#include "dist/atomcache.h"
#include "dist/control.h"
#include "dist/disthdr.h"
#include "dist/term.h"
#include "test_node.h"

#define MAX (64u * 1024 * 1024)
#define HDRS (BL_DH_DFLAG_DIST_HDR_ATOM_CACHE | BL_DH_DFLAG_FRAGMENTS)

/* ---- helpers ---- */

typedef struct {
    bl_dh_conn *dc;
    bl_dh_scratch *s;
} side;

static side side_new(uint64_t flags)
{
    side x = {bl_dh_conn_new(flags, NULL), bl_dh_scratch_new()};
    assert_non_null(x.dc);
    assert_non_null(x.s);
    return x;
}

static void side_free(side *x)
{
    bl_dh_conn_free(x->dc);
    bl_dh_scratch_free(x->s);
}

/* Feed p[0..len) (a header frame payload) to the receiver, from an exact-size heap copy. */
static int recv_copy(side *r, const void *p, size_t len, size_t max, const char **out,
                     size_t *outlen)
{
    char *c = malloc(len ? len : 1);
    assert_non_null(c);
    memcpy(c, p, len);
    const char *why = NULL;
    int rc = bl_dh_recv(r->dc, r->s, c, len, max, out, outlen, &why);
    if (rc < 0) assert_non_null(why);
    free(c);
    return rc;
}

/* The pass-through payload for ctl and msg as ei encodes them: 'p' then both (with 131 each). */
static char *passthrough(const ei_x_buff *ctl, const ei_x_buff *msg, size_t *len)
{
    *len = 1 + (size_t)ctl->index + (msg ? (size_t)msg->index : 0);
    char *p = malloc(*len);
    assert_non_null(p);
    p[0] = 'p';
    memcpy(p + 1, ctl->buff, (size_t)ctl->index);
    if (msg) memcpy(p + 1 + ctl->index, msg->buff, (size_t)msg->index);
    return p;
}

/* Take every frame out of q and feed it to r; each delivered message must equal the next of
 * want[] (pass-through payloads). Returns how many were delivered. */
typedef struct {
    char *p;
    size_t len;
} blob;

static int drain_into(bl_sendq *q, side *r, const blob *want, int nwant, int *frames)
{
    int got = 0;
    struct iovec iov[1];
    /* flatten the queue */
    size_t total = bl_sendq_bytes(q), off = 0;
    char *all = malloc(total ? total : 1);
    assert_non_null(all);
    while (bl_sendq_bytes(q) > 0) {
        int k = bl_sendq_iov(q, iov, 1);
        if (k == 0) break;
        assert_int_equal(k, 1);
        memcpy(all + off, iov[0].iov_base, iov[0].iov_len);
        off += iov[0].iov_len;
        bl_sendq_consume(q, iov[0].iov_len);
    }
    for (size_t i = 0; i < total;) {
        assert_true(i + 4 <= total);
        const unsigned char *u = (const unsigned char *)all + i;
        size_t len = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
        assert_true(i + 4 + len <= total);
        if (frames) (*frames)++;
        const char *out;
        size_t olen;
        int rc = recv_copy(r, all + i + 4, len, MAX, &out, &olen);
        assert_true(rc >= 0);
        if (rc == BL_DH_MSG) {
            assert_true(got < nwant);
            assert_int_equal(olen, want[got].len);
            assert_memory_equal(out, want[got].p, olen);
            got++;
        }
        i += 4 + len;
    }
    free(all);
    return got;
}

static void send_ok(side *x, bl_sendq *q, const ei_x_buff *ctl, const ei_x_buff *msg)
{
    assert_int_equal(bl_dh_send(x->dc, x->s, q, ctl->buff, (size_t)ctl->index,
                                msg ? msg->buff : NULL, msg ? (size_t)msg->index : 0, SIZE_MAX, 1),
                     0);
}

/* {22, FromPid, ToPid} (SEND_SENDER) to pid number to */
static void ctl_send_to(ei_x_buff *x, unsigned to)
{
    erlang_pid a = {.num = 1, .serial = 0, .creation = 7}, b = {.num = to, .creation = 9};
    strcpy(a.node, "sender@host");
    strcpy(b.node, "beamlet@host");
    ei_x_new_with_version(x);
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_long(x, 22);
    ei_x_encode_pid(x, &a);
    ei_x_encode_pid(x, &b);
}

static void ctl_send(ei_x_buff *x)
{
    ctl_send_to(x, 2);
}

/* ---- the atom cache table ---- */

static void test_acache_slots(void **state)
{
    (void)state;
    bl_acache a = {0};
    char t[32];
    assert_null(bl_acache_get(&a, 5));
    for (unsigned s = 0; s < BL_ACACHE_SLOTS; s++) {
        int n = snprintf(t, sizeof(t), "atom_%u", s);
        assert_int_equal(bl_acache_set(&a, s, t, (size_t)n), 0);
    }
    assert_int_equal(a.count, BL_ACACHE_SLOTS);
    for (unsigned s = 0; s < BL_ACACHE_SLOTS; s++) {
        int n = snprintf(t, sizeof(t), "atom_%u", s);
        const bl_acache_ent *e = bl_acache_get(&a, s);
        assert_non_null(e);
        assert_int_equal(e->len, n);
        assert_memory_equal(e->text, t, (size_t)n);
    }
    /* replace shorter and longer */
    assert_int_equal(bl_acache_set(&a, 7, "x", 1), 0);
    assert_int_equal(bl_acache_get(&a, 7)->len, 1);
    char big[BL_ACACHE_MAX_TEXT];
    memset(big, 'z', sizeof(big));
    assert_int_equal(bl_acache_set(&a, 7, big, sizeof(big)), 0);
    assert_int_equal(bl_acache_get(&a, 7)->len, BL_ACACHE_MAX_TEXT);
    assert_int_equal(a.count, BL_ACACHE_SLOTS);
    assert_int_equal(bl_acache_set(&a, BL_ACACHE_SLOTS, "x", 1), -1);
    assert_int_equal(bl_acache_set(&a, 1, big, sizeof(big) + 1), -1);
    assert_true(bl_acache_slot_of("hello", 5) < BL_ACACHE_SLOTS);
    bl_acache_free(&a);
}

/* The caches of one node share their texts: one entry per distinct text, counted by the slots
 * that hold it, given back with the last one; an entry outlives the cache that stored it while
 * another slot holds it. */
static void test_acache_pool_shared(void **state)
{
    (void)state;
    bl_apool *pool = bl_apool_new();
    assert_non_null(pool);
    bl_acache a, b;
    bl_acache_init(&a, pool);
    bl_acache_init(&b, pool);
    char t[32];
    for (unsigned s = 0; s < 100; s++) {
        int n = snprintf(t, sizeof(t), "node_%u@host", s);
        assert_int_equal(bl_acache_set(&a, s, t, (size_t)n), 0);
        assert_int_equal(bl_acache_set(&b, 2047 - s, t, (size_t)n), 0);
    }
    assert_int_equal(bl_apool_count(pool), 100);
    /* the same text in two slots of one side: still one entry */
    assert_int_equal(bl_acache_set(&a, 500, "node_7@host", 11), 0);
    assert_int_equal(bl_apool_count(pool), 100);
    assert_ptr_equal(bl_acache_get(&a, 7), bl_acache_get(&b, 2040));
    assert_ptr_equal(bl_acache_get(&a, 7), bl_acache_get(&a, 500));
    /* replacing: a new text is added, the old one stays while b holds it */
    assert_int_equal(bl_acache_set(&a, 3, "other", 5), 0);
    assert_int_equal(bl_apool_count(pool), 101);
    assert_memory_equal(bl_acache_get(&b, 2044)->text, "node_3@host", 11);
    assert_int_equal(bl_acache_set(&b, 2044, "other", 5), 0);
    assert_int_equal(bl_apool_count(pool), 100); /* node_3@host had no slot left */
    size_t full = bl_apool_bytes(pool);
    const bl_acache_ent *kept = bl_acache_get(&b, 2000);
    bl_acache_free(&a);
    assert_int_equal(bl_apool_count(pool), 100); /* b holds every text a held */
    assert_memory_equal(kept->text, "node_47@host", 12);
    bl_acache_free(&b);
    assert_int_equal(bl_apool_count(pool), 0);
    assert_true(bl_apool_bytes(pool) < full);
    /* a freed entry's index is reused */
    bl_acache_init(&a, pool);
    assert_int_equal(bl_acache_set(&a, 1, "again", 5), 0);
    assert_int_equal(bl_apool_count(pool), 1);
    bl_apool_unref(pool); /* the cache keeps the pool alive */
    assert_memory_equal(bl_acache_get(&a, 1)->text, "again", 5);
    bl_acache_free(&a);
}

/* ---- hand-made headers ---- */

/* A 'D' frame: 131 68 N flags refs, then body. refs: {slot, text or NULL for a cached one}. */
typedef struct {
    unsigned slot;
    const char *text;
    size_t len;
} href;

static size_t make_hdr(unsigned char *d, int kind, uint64_t seq, uint64_t frag, const href *r,
                       unsigned n, int long_atoms)
{
    size_t i = 0;
    d[i++] = 131;
    d[i++] = (unsigned char)kind;
    if (kind != 68) {
        for (int k = 7; k >= 0; k--)
            d[i++] = (unsigned char)(seq >> (8 * k));
        for (int k = 7; k >= 0; k--)
            d[i++] = (unsigned char)(frag >> (8 * k));
    }
    if (kind == 70) return i;
    d[i++] = (unsigned char)n;
    if (!n) return i;
    unsigned char *fl = d + i;
    memset(fl, 0, n / 2 + 1);
    i += n / 2 + 1;
    for (unsigned k = 0; k < n; k++) {
        unsigned nib = (r[k].text ? 8u : 0u) | (r[k].slot >> 8);
        fl[k / 2] |= (unsigned char)(nib << (4 * (k % 2)));
        d[i++] = (unsigned char)(r[k].slot & 0xFF);
        if (r[k].text) {
            if (long_atoms) d[i++] = (unsigned char)(r[k].len >> 8);
            d[i++] = (unsigned char)r[k].len;
            memcpy(d + i, r[k].text, r[k].len);
            i += r[k].len;
        }
    }
    if (long_atoms) fl[n / 2] |= (unsigned char)(1u << (4 * (n % 2)));
    return i;
}

/* {hello, world} as refs 0 and 1 */
static const unsigned char BODY_REFS01[] = {104, 1, 97, 6, 104, 2, 82, 0, 82, 1};
/* ctl {6} is not a real op; use {2, '', Pid}? keep it a plain small tuple for the rewrite tests:
 * control {1} ... the rewrite only needs two terms. Control: SMALL_TUPLE{SMALL_INT 6},
 * message {82 0, 82 1}. */

static void test_d_new_then_cached(void **state)
{
    (void)state;
    side r = side_new(0);
    unsigned char f[512];
    href refs[2] = {{0x305, "hello", 5}, {0x012, "world", 5}};
    size_t h = make_hdr(f, 68, 0, 0, refs, 2, 0);
    memcpy(f + h, BODY_REFS01, sizeof(BODY_REFS01));
    const char *out;
    size_t olen;
    assert_int_equal(recv_copy(&r, f, h + sizeof(BODY_REFS01), MAX, &out, &olen), BL_DH_MSG);
    static const unsigned char want[] = {'p', 131, 104, 1,   97,  6, 131, 104, 2,   119, 5,  'h',
                                         'e', 'l', 'l', 'o', 119, 5, 'w', 'o', 'r', 'l', 'd'};
    assert_int_equal(olen, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    /* the same atoms again, cached, in the other order */
    href again[2] = {{0x012, NULL, 0}, {0x305, NULL, 0}};
    h = make_hdr(f, 68, 0, 0, again, 2, 0);
    memcpy(f + h, BODY_REFS01, sizeof(BODY_REFS01));
    assert_int_equal(recv_copy(&r, f, h + sizeof(BODY_REFS01), MAX, &out, &olen), BL_DH_MSG);
    static const unsigned char want2[] = {'p', 131, 104, 1,   97,  6, 131, 104, 2,   119, 5,  'w',
                                          'o', 'r', 'l', 'd', 119, 5, 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(olen, sizeof(want2));
    assert_memory_equal(out, want2, sizeof(want2));
    /* a slot replaced by a new atom */
    href repl[2] = {{0x305, "bye", 3}, {0x012, NULL, 0}};
    h = make_hdr(f, 68, 0, 0, repl, 2, 0);
    memcpy(f + h, BODY_REFS01, sizeof(BODY_REFS01));
    assert_int_equal(recv_copy(&r, f, h + sizeof(BODY_REFS01), MAX, &out, &olen), BL_DH_MSG);
    assert_memory_equal(out + 9,
                        "\x77\x03"
                        "bye",
                        5);
    /* no refs at all: a header of three bytes, a control message alone */
    static const unsigned char plain[] = {131, 68, 0, 104, 1, 97, 5};
    assert_int_equal(recv_copy(&r, plain, sizeof(plain), MAX, &out, &olen), BL_DH_MSG);
    static const unsigned char wantp[] = {'p', 131, 104, 1, 97, 5};
    assert_int_equal(olen, sizeof(wantp));
    assert_memory_equal(out, wantp, sizeof(wantp));
    bl_dh_stats st;
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.cache_in, 2);
    assert_int_equal(st.refs_in, 6);
    side_free(&r);
}

/* Every one of the 2048 slots (8 segments x 256), 255 refs per header at most, then all reused. */
static void test_d_all_slots(void **state)
{
    (void)state;
    side r = side_new(0);
    static unsigned char f[64 * 1024];
    char names[BL_ACACHE_SLOTS][16];
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned base = 0; base < BL_ACACHE_SLOTS; base += 255) {
            unsigned n = BL_ACACHE_SLOTS - base < 255 ? BL_ACACHE_SLOTS - base : 255;
            href refs[255];
            for (unsigned k = 0; k < n; k++) {
                unsigned slot = base + k;
                int l = snprintf(names[slot], sizeof(names[slot]), "a%u", slot);
                refs[k].slot = slot;
                refs[k].text = pass == 0 ? names[slot] : NULL;
                refs[k].len = (size_t)l;
            }
            size_t i = make_hdr(f, 68, 0, 0, refs, n, 0);
            /* control {6}, message: a list of every ref */
            f[i++] = 104, f[i++] = 1, f[i++] = 97, f[i++] = 6;
            f[i++] = 108, f[i++] = 0, f[i++] = 0, f[i++] = 0, f[i++] = (unsigned char)n;
            for (unsigned k = 0; k < n; k++)
                f[i++] = 82, f[i++] = (unsigned char)k;
            f[i++] = 106;
            const char *out;
            size_t olen;
            assert_int_equal(recv_copy(&r, f, i, MAX, &out, &olen), BL_DH_MSG);
            /* decode the list with ei: every atom in place */
            int idx = 7, arity;
            assert_int_equal(ei_decode_list_header(out, &idx, &arity), 0);
            assert_int_equal(arity, (int)n);
            for (unsigned k = 0; k < n; k++) {
                char a[MAXATOMLEN_UTF8];
                assert_int_equal(ei_decode_atom(out, &idx, a), 0);
                assert_string_equal(a, names[base + k]);
            }
            assert_int_equal(ei_decode_list_header(out, &idx, &arity), 0);
            assert_int_equal(arity, 0);
            assert_int_equal((size_t)idx, olen);
        }
    }
    bl_dh_stats st;
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.cache_in, BL_ACACHE_SLOTS);
    side_free(&r);
}

/* Atoms of 255 characters: 255 bytes (short lengths) and 510 bytes (LongAtoms, 2-byte lengths,
 * rewritten as ATOM_UTF8_EXT), also with an odd number of refs (the flag in the high half). */
static void test_d_long_atoms(void **state)
{
    (void)state;
    side r = side_new(0);
    char a255[255], u510[510];
    memset(a255, 'q', sizeof(a255));
    for (int k = 0; k < 255; k++)
        u510[2 * k] = (char)0xC3, u510[2 * k + 1] = (char)0xA4; /* U+00E4 */
    for (unsigned n = 1; n <= 2; n++) {
        href refs[2] = {{0x700 + n, u510, sizeof(u510)}, {0x001, a255, sizeof(a255)}};
        static unsigned char f[4096];
        size_t i = make_hdr(f, 68, 0, 0, refs, n, 1);
        f[i++] = 104, f[i++] = 1, f[i++] = 97, f[i++] = 6;
        f[i++] = 104, f[i++] = (unsigned char)n;
        for (unsigned k = 0; k < n; k++)
            f[i++] = 82, f[i++] = (unsigned char)k;
        const char *out;
        size_t olen;
        assert_int_equal(recv_copy(&r, f, i, MAX, &out, &olen), BL_DH_MSG);
        assert_int_equal((unsigned char)out[9], 118);
        assert_int_equal(((unsigned char)out[10] << 8) | (unsigned char)out[11], 510);
        assert_memory_equal(out + 12, u510, 510);
        if (n == 2) {
            assert_int_equal((unsigned char)out[12 + 510], 119);
            assert_int_equal((unsigned char)out[13 + 510], 255);
            assert_memory_equal(out + 14 + 510, a255, 255);
        }
        int idx = 7;
        assert_int_equal(ei_skip_term(out, &idx), 0);
        assert_int_equal((size_t)idx, olen);
    }
    side_free(&r);
}

static void expect_err(side *r, const void *f, size_t len, int want)
{
    const char *out;
    size_t olen;
    assert_int_equal(recv_copy(r, f, len, MAX, &out, &olen), want);
}

static void test_d_malformed(void **state)
{
    (void)state;
    unsigned char f[512];
    href refs[2] = {{0x305, "hello", 5}, {0x012, "world", 5}};
    size_t h = make_hdr(f, 68, 0, 0, refs, 2, 0);
    memcpy(f + h, BODY_REFS01, sizeof(BODY_REFS01));
    size_t len = h + sizeof(BODY_REFS01);
    /* every truncation is refused, except the one that ends with the control message */
    for (size_t k = 0; k < len; k++) {
        if (k == h + 4) continue;
        side r = side_new(0);
        expect_err(&r, f, k, BL_DH_EMALFORMED);
        side_free(&r);
    }
    side r = side_new(0);
    /* a ref to a slot never set */
    href cached[1] = {{0x100, NULL, 0}};
    h = make_hdr(f, 68, 0, 0, cached, 1, 0);
    f[h] = 104, f[h + 1] = 1, f[h + 2] = 82, f[h + 3] = 0;
    expect_err(&r, f, h + 4, BL_DH_EMALFORMED);
    /* a ref index past the header's refs */
    h = make_hdr(f, 68, 0, 0, refs, 1, 0);
    f[h] = 104, f[h + 1] = 1, f[h + 2] = 82, f[h + 3] = 1;
    expect_err(&r, f, h + 4, BL_DH_EMALFORMED);
    /* one slot twice in a header */
    href twice[2] = {{0x305, "hello", 5}, {0x305, NULL, 0}};
    h = make_hdr(f, 68, 0, 0, twice, 2, 0);
    f[h] = 104, f[h + 1] = 1, f[h + 2] = 97, f[h + 3] = 1;
    expect_err(&r, f, h + 4, BL_DH_EMALFORMED);
    /* an atom over 255 characters' worth of bytes */
    static char big[1021];
    memset(big, 'b', sizeof(big));
    href huge[1] = {{0x001, big, sizeof(big)}};
    static unsigned char g[2048];
    h = make_hdr(g, 68, 0, 0, huge, 1, 1);
    g[h] = 104, g[h + 1] = 1, g[h + 2] = 97, g[h + 3] = 1;
    expect_err(&r, g, h + 4, BL_DH_EMALFORMED);
    /* unknown header kind, and no version byte */
    static const unsigned char unk[] = {131, 71, 0, 104, 0};
    expect_err(&r, unk, sizeof(unk), BL_DH_EMALFORMED);
    static const unsigned char nov[] = {130, 68, 0, 104, 0};
    expect_err(&r, nov, sizeof(nov), BL_DH_EMALFORMED);
    /* trailing garbage after the message */
    static const unsigned char trail[] = {131, 68, 0, 104, 0, 104, 0, 1};
    expect_err(&r, trail, sizeof(trail), BL_DH_EMALFORMED);
    /* a cache ref in a pid's node is resolved; one in a binary is just bytes */
    h = make_hdr(f, 68, 0, 0, refs, 1, 0);
    size_t i = h;
    f[i++] = 104, f[i++] = 1, f[i++] = 97, f[i++] = 1;
    f[i++] = 88, f[i++] = 82, f[i++] = 0;
    memset(f + i, 0, 12), i += 12;
    const char *out;
    size_t olen;
    assert_int_equal(recv_copy(&r, f, i, MAX, &out, &olen), BL_DH_MSG);
    int idx = 7;
    erlang_pid pid;
    assert_int_equal(ei_decode_pid(out, &idx, &pid), 0);
    assert_string_equal(pid.node, "hello");
    /* the expansion is bounded: 200 refs to a 1020-byte atom in a 450-byte frame, max 64 KiB */
    static unsigned char e[4096];
    memset(big, 'c', BL_ACACHE_MAX_TEXT);
    href one[1] = {{0x002, big, BL_ACACHE_MAX_TEXT}};
    i = make_hdr(e, 68, 0, 0, one, 1, 1);
    e[i++] = 104, e[i++] = 1, e[i++] = 97, e[i++] = 1;
    e[i++] = 108, e[i++] = 0, e[i++] = 0, e[i++] = 0, e[i++] = 200;
    for (int k = 0; k < 200; k++)
        e[i++] = 82, e[i++] = 0;
    e[i++] = 106;
    assert_int_equal(recv_copy(&r, e, i, 64 * 1024, &out, &olen), BL_DH_ETOOBIG);
    assert_int_equal(recv_copy(&r, e, i, MAX, &out, &olen), BL_DH_MSG);
    side_free(&r);
}

/* ---- fragments, hand-made ---- */

static size_t frag_first(unsigned char *f, uint64_t seq, uint64_t nfrag, const unsigned char *part,
                         size_t plen)
{
    href refs[1] = {{0x010, "big", 3}};
    size_t h = make_hdr(f, 69, seq, nfrag, refs, 1, 0);
    memcpy(f + h, part, plen);
    return h + plen;
}

static size_t frag_cont(unsigned char *f, uint64_t seq, uint64_t frag, const unsigned char *part,
                        size_t plen)
{
    size_t h = make_hdr(f, 70, seq, frag, NULL, 0, 0);
    memcpy(f + h, part, plen);
    return h + plen;
}

/* message {big, <<N bytes of k>>} split into 3 parts after a control {6} */
static void big_msg(unsigned char *m, size_t *mlen, size_t n, unsigned char k)
{
    size_t i = 0;
    m[i++] = 104, m[i++] = 1, m[i++] = 97, m[i++] = 6; /* control */
    m[i++] = 104, m[i++] = 2, m[i++] = 82, m[i++] = 0;
    m[i++] = 109, m[i++] = (unsigned char)(n >> 24), m[i++] = (unsigned char)(n >> 16);
    m[i++] = (unsigned char)(n >> 8), m[i++] = (unsigned char)n;
    memset(m + i, k, n);
    *mlen = i + n;
}

static void check_big(const char *out, size_t olen, size_t n, unsigned char k)
{
    assert_int_equal(olen, 2 + 4 + 1 + 2 + 5 + 5 + n);
    assert_memory_equal(out + 7,
                        "\x68\x02\x77\x03"
                        "big",
                        7);
    assert_int_equal((unsigned char)out[14], 109);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[19 + i] != k) fail_msg("byte %zu", i);
}

static void test_frag_interleaved(void **state)
{
    (void)state;
    side r = side_new(0);
    static unsigned char m1[3000], m2[3000], f[4096];
    size_t l1, l2;
    big_msg(m1, &l1, 2900, 0x11);
    big_msg(m2, &l2, 2900, 0x22);
    const char *out;
    size_t olen, n;
    /* seq 7 in 3 fragments, seq 9 in 2, a plain message in between, interleaved */
    n = frag_first(f, 7, 3, m1, 1000);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    n = frag_first(f, 9, 2, m2, 1500);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    static const unsigned char plain[] = {131, 68, 0, 104, 1, 97, 5};
    assert_int_equal(recv_copy(&r, plain, sizeof(plain), MAX, &out, &olen), BL_DH_MSG);
    n = frag_cont(f, 7, 2, m1 + 1000, 1000);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    bl_dh_stats st;
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.seqs_in, 2);
    n = frag_cont(f, 9, 1, m2 + 1500, l2 - 1500);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_MSG);
    check_big(out, olen, 2900, 0x22);
    n = frag_cont(f, 7, 1, m1 + 2000, l1 - 2000);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_MSG);
    check_big(out, olen, 2900, 0x11);
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.seqs_in, 0);
    assert_int_equal(st.reassembled, 2);
    /* a sequence of one fragment ('E' with id 1) is a whole message */
    n = frag_first(f, 11, 1, m1, l1);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_MSG);
    check_big(out, olen, 2900, 0x11);
    /* an empty continuation fragment is fine */
    n = frag_first(f, 12, 3, m1, 500);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    n = frag_cont(f, 12, 2, m1, 0);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    n = frag_cont(f, 12, 1, m1 + 500, l1 - 500);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_MSG);
    check_big(out, olen, 2900, 0x11);
    side_free(&r);
}

/* Reassembled messages whose last 256 KB or more hold no atom cache ref are rewritten in place
 * (disthdr.c, SEQ_TAIL_IN_PLACE): two interleaved 300 KB ones in 64 KB fragments, each handed on
 * intact; then one whose resolved atoms outgrow the room in front of its tail (20 atoms of 255
 * characters before the binary), which is copied whole instead; then small messages again. */
static void feed_frags(side *r, uint64_t seq, const unsigned char *m, size_t l, size_t part,
                       const href *refs, unsigned nrefs, int long_atoms, const char **out,
                       size_t *olen, int *rc)
{
    static unsigned char f[80000]; /* a header of 20 long atoms, then a 64 KB part */
    size_t nfrag = (l + part - 1) / part, off = 0;
    for (size_t k = 0; k < nfrag; k++) {
        size_t plen = l - off < part ? l - off : part;
        size_t h = k == 0 ? make_hdr(f, 69, seq, nfrag, refs, nrefs, long_atoms)
                          : make_hdr(f, 70, seq, nfrag - k, NULL, 0, 0);
        memcpy(f + h, m + off, plen);
        off += plen;
        *rc = recv_copy(r, f, h + plen, MAX, out, olen);
        if (k + 1 < nfrag) assert_int_equal(*rc, BL_DH_NONE);
    }
}

static void test_frag_in_place(void **state)
{
    (void)state;
    side r = side_new(0);
    const size_t n = 300000;
    unsigned char *m1 = malloc(n + 64), *m2 = malloc(n + 64);
    assert_non_null(m1);
    assert_non_null(m2);
    size_t l1, l2;
    big_msg(m1, &l1, n, 0x33);
    big_msg(m2, &l2, n, 0x44);
    href refs[1] = {{0x010, "big", 3}};
    static unsigned char f[70000];
    const char *out;
    size_t olen;
    int rc;
    /* seq 21's first fragment, then all of seq 22, then the rest of seq 21 */
    size_t h = make_hdr(f, 69, 21, 5, refs, 1, 0);
    memcpy(f + h, m1, 65536);
    assert_int_equal(recv_copy(&r, f, h + 65536, MAX, &out, &olen), BL_DH_NONE);
    feed_frags(&r, 22, m2, l2, 65536, refs, 1, 0, &out, &olen, &rc);
    assert_int_equal(rc, BL_DH_MSG);
    check_big(out, olen, n, 0x44);
    assert_int_equal(bl_dh_ctl_end(r.s), 2 + 4);
    for (uint64_t k = 1; k < 5; k++) {
        size_t off = 65536 * k, plen = l1 - off < 65536 ? l1 - off : 65536;
        h = make_hdr(f, 70, 21, 5 - k, NULL, 0, 0);
        memcpy(f + h, m1 + off, plen);
        rc = recv_copy(&r, f, h + plen, MAX, &out, &olen);
        assert_int_equal(rc, k == 4 ? BL_DH_MSG : BL_DH_NONE);
    }
    check_big(out, olen, n, 0x33);
    bl_dh_stats st;
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.seqs_in, 0);
    assert_int_equal(st.reassembled, 2);

    /* {a0, ..., a19, <<n bytes>>} with 20 new 255-character atoms (slots 0x100..0x113) */
    static char texts[20][255];
    href big_refs[20];
    unsigned char *m3 = malloc(n + 256);
    assert_non_null(m3);
    size_t i = 0;
    m3[i++] = 104, m3[i++] = 1, m3[i++] = 97, m3[i++] = 6; /* control {6} */
    m3[i++] = 104, m3[i++] = 21;
    for (unsigned k = 0; k < 20; k++) {
        memset(texts[k], 'a' + (int)k, sizeof(texts[k]));
        big_refs[k] = (href){0x100 + k, texts[k], sizeof(texts[k])};
        m3[i++] = 82, m3[i++] = (unsigned char)k;
    }
    m3[i++] = 109, m3[i++] = (unsigned char)(n >> 24), m3[i++] = (unsigned char)(n >> 16);
    m3[i++] = (unsigned char)(n >> 8), m3[i++] = (unsigned char)n;
    memset(m3 + i, 0x55, n);
    feed_frags(&r, 23, m3, i + n, 65536, big_refs, 20, 0, &out, &olen, &rc);
    assert_int_equal(rc, BL_DH_MSG);
    assert_int_equal(olen, 2 + 4 + 1 + 2 + 20 * (2 + 255) + 5 + n);
    int idx = 1, ver, arity;
    assert_int_equal(ei_decode_version(out, &idx, &ver), 0);
    assert_int_equal(ei_skip_term(out, &idx), 0);
    assert_int_equal(ei_decode_version(out, &idx, &ver), 0);
    assert_int_equal(ei_decode_tuple_header(out, &idx, &arity), 0);
    assert_int_equal(arity, 21);
    for (unsigned k = 0; k < 20; k++) {
        char a[MAXATOMLEN_UTF8];
        assert_int_equal(ei_decode_atom(out, &idx, a), 0);
        assert_int_equal(strlen(a), 255);
        assert_int_equal(a[0], 'a' + (int)k);
    }
    assert_int_equal((unsigned char)out[idx], 109);
    for (size_t b = 0; b < n; b++)
        if ((unsigned char)out[idx + 5 + b] != 0x55) fail_msg("byte %zu", b);
    /* and a small message after them all */
    static const unsigned char plain[] = {131, 68, 0, 104, 1, 97, 5};
    assert_int_equal(recv_copy(&r, plain, sizeof(plain), MAX, &out, &olen), BL_DH_MSG);
    assert_int_equal(olen, 6);
    free(m1);
    free(m2);
    free(m3);
    side_free(&r);
}

/* A first fragment reserves room for the whole message (fragment count x its length), counted as
 * held; a count that cannot be true reserves at most max_message_size, and without room left
 * under 2 x max_message_size only what came is held. */
static void test_frag_reserve(void **state)
{
    (void)state;
    side r = side_new(0);
    static unsigned char m[3000], f[4096];
    size_t l, n;
    big_msg(m, &l, 2900, 0x66);
    const char *out;
    size_t olen;
    bl_dh_stats st;
    n = frag_first(f, 31, 3, m, 1000);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    bl_dh_conn_stats(r.dc, &st);
    size_t base = st.bytes;
    n = frag_cont(f, 31, 2, m + 1000, 1000);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.bytes, base); /* within what was reserved */
    n = frag_cont(f, 31, 1, m + 2000, l - 2000);
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_MSG);
    check_big(out, olen, 2900, 0x66);
    /* three sequences claiming 2^40 fragments: the first reserves MAX, then there is no room for
     * another MAX under 2 x MAX, and the others hold what came */
    for (uint64_t id = 40; id < 43; id++) {
        n = frag_first(f, id, 1ull << 40, m, 1000);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    }
    bl_dh_conn_stats(r.dc, &st);
    assert_int_equal(st.seqs_in, 3);
    assert_true(st.bytes >= (size_t)MAX && st.bytes < (size_t)MAX + 64 * 1024);
    n = frag_cont(f, 40, (1ull << 40) - 1, m + 1000, 1000); /* within its reservation */
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    n = frag_cont(f, 42, (1ull << 40) - 1, m + 1000, 1000); /* holds 1000 more */
    assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
    bl_dh_stats st2;
    bl_dh_conn_stats(r.dc, &st2);
    assert_int_equal(st2.bytes, st.bytes + 1000);
    side_free(&r);
}

static void test_frag_errors(void **state)
{
    (void)state;
    static unsigned char m[3000], f[4096];
    size_t l, n;
    big_msg(m, &l, 2900, 0x33);
    const char *out;
    size_t olen;
    { /* a continuation of a sequence never started */
        side r = side_new(0);
        n = frag_cont(f, 5, 1, m, 10);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_EMALFORMED);
        side_free(&r);
    }
    { /* out of order: 3, then 1 */
        side r = side_new(0);
        n = frag_first(f, 5, 3, m, 1000);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
        n = frag_cont(f, 5, 1, m + 1000, l - 1000);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_EMALFORMED);
        side_free(&r); /* frees the sequence left behind (ASan checks) */
    }
    { /* the same sequence id started twice, and fragment id 0 */
        side r = side_new(0);
        n = frag_first(f, 5, 3, m, 1000);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_EMALFORMED);
        n = frag_first(f, 5, 1, m, l);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_EMALFORMED);
        n = frag_first(f, 6, 0, m, l);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_EMALFORMED);
        side_free(&r);
    }
    { /* one sequence over max_message_size (max 2000 bytes here) */
        side r = side_new(0);
        n = frag_first(f, 5, 3, m, 1000);
        assert_int_equal(recv_copy(&r, f, n, 2000, &out, &olen), BL_DH_NONE);
        n = frag_cont(f, 5, 2, m + 1000, 999);
        assert_int_equal(recv_copy(&r, f, n, 2000, &out, &olen), BL_DH_NONE);
        n = frag_cont(f, 5, 1, m + 1999, 2);
        assert_int_equal(recv_copy(&r, f, n, 2000, &out, &olen), BL_DH_ETOOBIG);
        side_free(&r);
    }
    { /* many sequences: together over 2 x max_message_size */
        side r = side_new(0);
        int rc = BL_DH_NONE, k;
        for (k = 0; k < 10 && rc == BL_DH_NONE; k++) {
            n = frag_first(f, (uint64_t)100 + k, 5, m, 1500);
            rc = recv_copy(&r, f, n, 4000, &out, &olen);
        }
        assert_int_equal(rc, BL_DH_ETOOBIG);
        assert_true(k > 2 && k < 10);
        side_free(&r);
    }
    { /* a truncated fragment header, at every length */
        n = frag_first(f, 5, 3, m, 100);
        for (size_t k = 0; k < 21; k++) {
            side r = side_new(0);
            assert_int_equal(recv_copy(&r, f, k, MAX, &out, &olen), BL_DH_EMALFORMED);
            side_free(&r);
        }
        n = frag_cont(f, 5, 2, m, 100);
        for (size_t k = 0; k < 18; k++) {
            side r = side_new(0);
            assert_int_equal(recv_copy(&r, f, k, MAX, &out, &olen), BL_DH_EMALFORMED);
            side_free(&r);
        }
    }
    { /* the reassembled message is a truncated term */
        side r = side_new(0);
        n = frag_first(f, 5, 2, m, 1000);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_NONE);
        n = frag_cont(f, 5, 1, m + 1000, l - 1001);
        assert_int_equal(recv_copy(&r, f, n, MAX, &out, &olen), BL_DH_EMALFORMED);
        side_free(&r);
    }
}

/* ---- our encoder, decoded again ---- */

static void encode_msg_atoms(ei_x_buff *m, unsigned from, unsigned n, const char *prefix)
{
    ei_x_new_with_version(m);
    ei_x_encode_tuple_header(m, 2);
    ei_x_encode_atom(m, "batch");
    ei_x_encode_list_header(m, n);
    char a[64];
    for (unsigned k = 0; k < n; k++) {
        snprintf(a, sizeof(a), "%s%u", prefix, from + k);
        ei_x_encode_atom(m, a);
    }
    ei_x_encode_empty_list(m);
}

/* The cache makes repeated atoms small; more than 2048 distinct atoms on one connection (slots
 * replaced) still decode exactly. */
static void test_roundtrip_cache(void **state)
{
    (void)state;
    side tx = side_new(HDRS), rx = side_new(0);
    ei_x_buff ctl;
    ctl_send(&ctl);
    bl_sendq q;
    bl_sendq_init(&q);
    /* the same small message twice: the second frame is much smaller */
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 3);
    ei_x_encode_atom(&m, "seq");
    ei_x_encode_long(&m, 42);
    ei_x_encode_binary(&m, "payload", 7);
    blob want[1];
    want[0].p = passthrough(&ctl, &m, &want[0].len);
    send_ok(&tx, &q, &ctl, &m);
    size_t first = bl_sendq_bytes(&q);
    assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
    send_ok(&tx, &q, &ctl, &m);
    size_t second = bl_sendq_bytes(&q);
    assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
    assert_true(second + 20 < first);
    assert_true(second < want[0].len); /* smaller than pass-through */
    free(want[0].p);
    ei_x_free(&m);
    /* 6000 distinct atoms, 200 per message, and the first ones again at the end */
    for (unsigned base = 0; base <= 6000; base += 200) {
        encode_msg_atoms(&m, base % 6000, 200, "atom_number_");
        want[0].p = passthrough(&ctl, &m, &want[0].len);
        send_ok(&tx, &q, &ctl, &m);
        assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
        free(want[0].p);
        ei_x_free(&m);
    }
    bl_dh_stats st;
    bl_dh_conn_stats(rx.dc, &st);
    assert_true(st.cache_in > 1500 && st.cache_in <= BL_ACACHE_SLOTS);
    bl_dh_conn_stats(tx.dc, &st);
    assert_true(st.cache_out > 1500 && st.cache_out <= BL_ACACHE_SLOTS);
    assert_true(st.refs_out > 6000);
    /* more than 255 distinct atoms in one message: the rest go in full */
    encode_msg_atoms(&m, 10000, 600, "many_");
    want[0].p = passthrough(&ctl, &m, &want[0].len);
    send_ok(&tx, &q, &ctl, &m);
    assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
    free(want[0].p);
    ei_x_free(&m);
    /* long UTF-8 atoms (255 characters, 510 bytes) and a Latin-1 atom that is not ASCII */
    char u[511];
    for (int k = 0; k < 255; k++)
        u[2 * k] = (char)0xC3, u[2 * k + 1] = (char)0xB6;
    u[510] = 0;
    for (int rep = 0; rep < 2; rep++) {
        ei_x_new_with_version(&m);
        ei_x_encode_tuple_header(&m, 3);
        ei_x_encode_atom_len_as(&m, u, 510, ERLANG_UTF8, ERLANG_UTF8);
        ei_x_encode_atom_len_as(&m, "\xe9t\xe9", 3, ERLANG_LATIN1, ERLANG_LATIN1);
        ei_x_encode_atom(&m, "short");
        want[0].p = passthrough(&ctl, &m, &want[0].len);
        send_ok(&tx, &q, &ctl, &m);
        assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
        free(want[0].p);
        ei_x_free(&m);
    }
    /* a control message alone */
    ei_x_buff link;
    ei_x_new_with_version(&link);
    ei_x_encode_tuple_header(&link, 1);
    ei_x_encode_long(&link, 5);
    want[0].p = passthrough(&link, NULL, &want[0].len);
    send_ok(&tx, &q, &link, NULL);
    assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
    free(want[0].p);
    ei_x_free(&link);
    ei_x_free(&ctl);
    bl_sendq_free(&q);
    side_free(&tx);
    side_free(&rx);
}

/* With check (a message from bl_send, validated only by the plan's walk), a malformed message is
 * refused with -3 and nothing is queued or cached, also while it would wait behind a large
 * message; the next good message goes through as if nothing happened. */
static void test_send_checked(void **state)
{
    (void)state;
    side tx = side_new(HDRS), rx = side_new(0);
    ei_x_buff ctl, m;
    ctl_send(&ctl);
    bl_sendq q;
    bl_sendq_init(&q);
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "fresh_atom");
    ei_x_encode_long(&m, 1);
    /* truncated, a trailing byte after the term, no version byte */
    char bad[64], nover[64];
    memcpy(bad, m.buff, (size_t)m.index);
    bad[m.index] = 'x';
    memcpy(nover, m.buff, (size_t)m.index);
    nover[0] = 0;
    const char *cases[3] = {bad, bad, nover};
    size_t lens[3] = {(size_t)m.index - 1, (size_t)m.index + 1, (size_t)m.index};
    for (int k = 0; k < 3; k++)
        assert_int_equal(bl_dh_send(tx.dc, tx.s, &q, ctl.buff, (size_t)ctl.index, cases[k], lens[k],
                                    SIZE_MAX, 1),
                         -3);
    assert_int_equal(bl_sendq_bytes(&q), 0);
    bl_dh_stats st;
    bl_dh_conn_stats(tx.dc, &st);
    assert_int_equal(st.cache_out, 0);
    /* without check (the runtime's own messages) a term it cannot walk still goes as it is */
    assert_int_equal(bl_dh_send(tx.dc, tx.s, &q, ctl.buff, (size_t)ctl.index, bad,
                                (size_t)m.index - 1, SIZE_MAX, 0),
                     0);
    bl_sendq_free(&q);
    bl_sendq_init(&q);
    /* behind a large message to the same pid: refused too, the good one waits and follows */
    ei_x_buff big;
    ei_x_new_with_version(&big);
    char *blob_ = calloc(1, 3 * BL_DH_FRAG_SIZE);
    assert_non_null(blob_);
    ei_x_encode_binary(&big, blob_, 3 * BL_DH_FRAG_SIZE);
    free(blob_);
    blob want[2];
    want[0].p = passthrough(&ctl, &big, &want[0].len);
    want[1].p = passthrough(&ctl, &m, &want[1].len);
    send_ok(&tx, &q, &ctl, &big);
    assert_int_equal(bl_dh_send(tx.dc, tx.s, &q, ctl.buff, (size_t)ctl.index, bad,
                                (size_t)m.index + 1, SIZE_MAX, 1),
                     -3);
    send_ok(&tx, &q, &ctl, &m);
    int got = 0;
    for (int guard = 0; guard < 100 && got < 2; guard++) {
        assert_true(bl_dh_pump(tx.dc, tx.s, &q, 1) >= 0);
        got += drain_into(&q, &rx, want + got, 2 - got, NULL);
    }
    assert_int_equal(got, 2);
    free(want[0].p);
    free(want[1].p);
    ei_x_free(&big);
    ei_x_free(&m);
    ei_x_free(&ctl);
    bl_sendq_free(&q);
    side_free(&tx);
    side_free(&rx);
}

/* Two large messages and small ones: the large ones go out in fragments, interleaved with each
 * other and with the small ones, and all arrive whole and in their order. */
static void test_roundtrip_fragments(void **state)
{
    (void)state;
    side tx = side_new(HDRS), rx = side_new(0);
    ei_x_buff ctl, ctl2, ctl3, big1, big2, small;
    ctl_send(&ctl);        /* big1 to pid 2 */
    ctl_send_to(&ctl2, 3); /* big2 to pid 3 */
    ctl_send_to(&ctl3, 4); /* small ones to pid 4 */
    size_t n1 = 5 * BL_DH_FRAG_SIZE + 123, n2 = 3 * BL_DH_FRAG_SIZE;
    char *b1 = malloc(n1), *b2 = malloc(n2);
    assert_non_null(b1);
    assert_non_null(b2);
    for (size_t i = 0; i < n1; i++)
        b1[i] = (char)(i * 7);
    memset(b2, 0x5A, n2);
    ei_x_new_with_version(&big1);
    ei_x_encode_tuple_header(&big1, 2);
    ei_x_encode_atom(&big1, "big");
    ei_x_encode_binary(&big1, b1, (long)n1);
    ei_x_new_with_version(&big2);
    ei_x_encode_tuple_header(&big2, 2);
    ei_x_encode_atom(&big2, "big");
    ei_x_encode_binary(&big2, b2, (long)n2);
    ei_x_new_with_version(&small);
    ei_x_encode_atom(&small, "tick_like");
    blob w1, w2, ws;
    w1.p = passthrough(&ctl, &big1, &w1.len);
    w2.p = passthrough(&ctl2, &big2, &w2.len);
    ws.p = passthrough(&ctl3, &small, &ws.len);
    bl_sendq q;
    bl_sendq_init(&q);
    send_ok(&tx, &q, &ctl, &big1);
    send_ok(&tx, &q, &ctl2, &big2);
    assert_true(bl_dh_pending(tx.dc) > 0);
    /* the queue holds just the two first fragments, not 8 x 64 KiB */
    assert_true(bl_sendq_bytes(&q) < 3 * BL_DH_FRAG_SIZE);
    /* first fragments complete no message */
    assert_int_equal(drain_into(&q, &rx, NULL, 0, NULL), 0);
    /* as a connection does: small messages keep going into the queue, and one fragment at a
     * time joins them (round robin between the two sequences). Expected order of delivery: big2
     * (3 fragments) completes on the 4th pump (fragments 1,2,1,2,1: 2 done), big1 last. */
    int rounds = 0, seen_small_before_big1 = 0;
    while (bl_dh_pending(tx.dc) > 0) {
        assert_true(rounds < 20);
        send_ok(&tx, &q, &ctl3, &small);
        assert_int_equal(drain_into(&q, &rx, &ws, 1, NULL), 1);
        seen_small_before_big1++;
        bl_dh_stats st0, st1;
        bl_dh_conn_stats(tx.dc, &st0);
        assert_int_equal(bl_dh_pump(tx.dc, tx.s, &q, 1), 1);
        bl_dh_conn_stats(tx.dc, &st1);
        blob *w = NULL; /* a sequence ended: big2 (4 fragments) ends before big1 (6) */
        if (st1.seqs_out < st0.seqs_out) w = st1.seqs_out == 1 ? &w2 : &w1;
        if (w == &w2) assert_int_equal(rounds, 5);
        assert_int_equal(drain_into(&q, &rx, w, w ? 1 : 0, NULL), w ? 1 : 0);
        rounds++;
    }
    assert_int_equal(rounds, 8); /* 5 + 3 continuation fragments */
    assert_true(seen_small_before_big1 >= 5);
    bl_dh_stats st;
    bl_dh_conn_stats(rx.dc, &st);
    assert_int_equal(st.reassembled, 2);
    assert_int_equal(st.seqs_in, 0);
    assert_true(st.frags_in >= 8);
    bl_dh_conn_stats(tx.dc, &st);
    assert_int_equal(st.fragmented, 2);
    assert_int_equal(st.seqs_out, 0);
    assert_int_equal(bl_dh_pending(tx.dc), 0);
    /* without FRAGMENTS the same message is one frame */
    side one = side_new(BL_DH_DFLAG_DIST_HDR_ATOM_CACHE), rx2 = side_new(0);
    send_ok(&one, &q, &ctl, &big1);
    assert_int_equal(bl_dh_pending(one.dc), 0);
    int frames = 0;
    assert_int_equal(drain_into(&q, &rx2, &w1, 1, &frames), 1);
    assert_int_equal(frames, 1);
    side_free(&one);
    side_free(&rx2);
    /* a small message to the destination of a large one still going out waits behind it (Erlang
     * keeps one process's signals to another in order); one to elsewhere does not */
    blob wsame, order[3];
    wsame.p = passthrough(&ctl, &small, &wsame.len);
    send_ok(&tx, &q, &ctl, &big1);
    send_ok(&tx, &q, &ctl, &small);  /* to pid 2: held */
    send_ok(&tx, &q, &ctl3, &small); /* to pid 4: goes */
    assert_int_equal(drain_into(&q, &rx, &ws, 1, NULL), 1);
    order[0] = w1;
    order[1] = wsame;
    while (bl_dh_pending(tx.dc) > 0)
        assert_true(bl_dh_pump(tx.dc, tx.s, &q, 1 << 30) >= 1);
    assert_int_equal(drain_into(&q, &rx, order, 2, NULL), 2);
    /* the wait is bounded: with more than limit bytes waiting, a further one is refused */
    send_ok(&tx, &q, &ctl, &big1);
    for (int k = 0; k < 100; k++) /* 100 x 69 bytes wait behind big1 */
        send_ok(&tx, &q, &ctl, &small);
    assert_int_equal(bl_dh_send(tx.dc, tx.s, &q, ctl.buff, (size_t)ctl.index, small.buff,
                                (size_t)small.index, 1000, 1),
                     -2);
    assert_int_equal(bl_dh_send(tx.dc, tx.s, &q, ctl2.buff, (size_t)ctl2.index, big2.buff,
                                (size_t)big2.index, 1000, 1),
                     -2);
    assert_int_equal(bl_dh_send(tx.dc, tx.s, &q, ctl3.buff, (size_t)ctl3.index, small.buff,
                                (size_t)small.index, 1000, 1),
                     0);
    free(wsame.p);
    /* a sequence still going when the connection ends is freed with it (ASan checks) */
    send_ok(&tx, &q, &ctl, &small);
    bl_sendq_free(&q);
    free(w1.p);
    free(w2.p);
    free(ws.p);
    free(b1);
    free(b2);
    ei_x_free(&ctl);
    ei_x_free(&ctl2);
    ei_x_free(&ctl3);
    ei_x_free(&big1);
    ei_x_free(&big2);
    ei_x_free(&small);
    side_free(&tx);
    side_free(&rx);
}

/* Frames queued as pass-through before the handshake become header frames. */
static void test_requeue(void **state)
{
    (void)state;
    side tx = side_new(HDRS), rx = side_new(0);
    ei_x_buff ctl, m;
    ctl_send(&ctl);
    ei_x_new_with_version(&m);
    ei_x_encode_atom(&m, "hello");
    blob w[3];
    bl_sendq q;
    bl_sendq_init(&q);
    for (int k = 0; k < 3; k++) {
        w[k].p = passthrough(&ctl, &m, &w[k].len);
        char *d = bl_sendq_reserve(&q, 4 + w[k].len);
        assert_non_null(d);
        d[0] = d[1] = 0;
        d[2] = (char)(w[k].len >> 8);
        d[3] = (char)w[k].len;
        memcpy(d + 4, w[k].p, w[k].len);
        bl_sendq_commit(&q, 4 + w[k].len);
    }
    assert_int_equal(bl_dh_requeue(tx.dc, tx.s, &q), 0);
    int frames = 0;
    assert_int_equal(drain_into(&q, &rx, w, 3, &frames), 3);
    assert_int_equal(frames, 3);
    /* a queue with a broken frame is refused and emptied */
    char *d = bl_sendq_reserve(&q, 8);
    memcpy(d, "\0\0\0\4p\x83\x68\x05", 8);
    bl_sendq_commit(&q, 8);
    assert_int_equal(bl_dh_requeue(tx.dc, tx.s, &q), -1);
    assert_int_equal(bl_sendq_bytes(&q), 0);
    for (int k = 0; k < 3; k++)
        free(w[k].p);
    ei_x_free(&ctl);
    ei_x_free(&m);
    bl_sendq_free(&q);
    side_free(&tx);
    side_free(&rx);
}

/* A fun (NEW_FUN_EXT, from term_to_binary of a module's fun in OTP 25) whose module atom and
 * pid node arrive as cache refs: its size field covers them, so it must be rewritten when they
 * are resolved (erpc:call(Node, Fun) sends one). And our encoder leaves atoms inside funs whole. */
static const unsigned char FUN[] = {
    112, 0,   0,   0,   67,  0,   79, 242, 53, 173, 95,  136, 154, 162, 148, 22,  104,
    70,  84,  86,  156, 116, 0,   0,  0,   0,  0,   0,   0,   0,   119, 1,   109, 97,
    0,   98,  2,   127, 145, 173, 88, 119, 13, 110, 111, 110, 111, 100, 101, 64,  110,
    111, 104, 111, 115, 116, 0,   0,  0,   9,  0,   0,   0,   0,   0,   0,   0,   0};

static void test_fun_size(void **state)
{
    (void)state;
    side r = side_new(0);
    static unsigned char f[256];
    href refs[2] = {{0x101, "m", 1}, {0x202, "nonode@nohost", 13}};
    size_t i = make_hdr(f, 68, 0, 0, refs, 2, 0);
    f[i++] = 104, f[i++] = 1, f[i++] = 97, f[i++] = 6; /* control {6} */
    size_t fun_at = i;
    memcpy(f + i, FUN, 30); /* up to the module atom */
    i += 30;
    f[i++] = 82, f[i++] = 0;    /* module: ref 0 */
    memcpy(f + i, FUN + 33, 7); /* old index, old uniq */
    i += 7;
    f[i++] = 88, f[i++] = 82, f[i++] = 1; /* pid, node: ref 1 */
    memcpy(f + i, FUN + 56, sizeof(FUN) - 56);
    i += sizeof(FUN) - 56;
    size_t sz = i - fun_at - 1; /* the size field covers the fun from itself on */
    f[fun_at + 1] = 0, f[fun_at + 2] = 0, f[fun_at + 3] = (unsigned char)(sz >> 8),
               f[fun_at + 4] = (unsigned char)sz;
    const char *out;
    size_t olen;
    assert_int_equal(recv_copy(&r, f, i, MAX, &out, &olen), BL_DH_MSG);
    assert_int_equal(olen, 7 + sizeof(FUN));
    assert_memory_equal(out + 7, FUN, sizeof(FUN));
    int idx = 7;
    assert_int_equal(ei_skip_term(out, &idx), 0);
    assert_int_equal((size_t)idx, olen);
    /* our encoder: the fun goes out unchanged (its atoms are not replaced by refs) */
    side tx = side_new(HDRS), rx = side_new(0);
    ei_x_buff ctl, m;
    ctl_send(&ctl);
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "m");
    ei_x_append_buf(&m, (const char *)FUN, sizeof(FUN));
    blob w;
    w.p = passthrough(&ctl, &m, &w.len);
    bl_sendq q;
    bl_sendq_init(&q);
    send_ok(&tx, &q, &ctl, &m);
    assert_int_equal(drain_into(&q, &rx, &w, 1, NULL), 1);
    free(w.p);
    ei_x_free(&ctl);
    ei_x_free(&m);
    bl_sendq_free(&q);
    side_free(&tx);
    side_free(&rx);
    side_free(&r);
}

/* ---- frames recorded from real BEAM ---- */

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    const char *dir = getenv("BL_TEST_DATA");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "test/unit/data", name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

/* OTP 25 node A's frames to node B (record_dist.sh): normal headers with new, cached and
 * replaced refs (3000 distinct atoms, 255 refs in one header, 255-character atoms in Latin-1 and
 * in 2-byte UTF-8), and two 72 KB messages in fragments. Every message A sent to B's `sink` must
 * come out byte for byte as term_to_binary(Msg, [{minor_version, 2}]), in order. */
static void test_beam_recorded(void **state)
{
    (void)state;
    size_t flen, elen;
    char *frames = slurp("beam_frames.bin", &flen);
    char *expected = slurp("beam_expected.bin", &elen);
    side r = side_new(0);
    size_t ei_off = 0;
    int delivered = 0, to_sink = 0, nframes = 0;
    for (size_t i = 0; i + 4 <= flen;) {
        size_t len = be32(frames + i);
        assert_true(i + 4 + len <= flen);
        const char *out;
        size_t olen;
        int rc = recv_copy(&r, frames + i + 4, len, MAX, &out, &olen);
        if (rc < 0) fail_msg("frame %d (%zu bytes) refused", nframes, len);
        nframes++;
        i += 4 + len;
        if (rc != BL_DH_MSG) continue;
        delivered++;
        bl_ctl c, v;
        assert_int_equal(bl_ctl_decode(test_node(), out, olen, &c), BL_CTL_OK);
        /* the receive path's decode (no second walk) agrees on every frame BEAM sent */
        assert_int_equal(bl_ctl_decode_valid(test_node(), out, olen, bl_dh_ctl_end(r.s), &v),
                         BL_CTL_OK);
        assert_memory_equal(&v, &c, offsetof(bl_ctl, from));
        assert_string_equal(v.toname, c.toname);
        if (!c.has_toname || strcmp(c.toname, "sink") != 0 || !c.has_msg) continue;
        if (ei_off == elen) continue; /* {report, Pid}: asks B what it received */
        size_t mlen = be32(expected + ei_off);
        size_t got = c.msg_end - c.msg_off + 1; /* with its version byte */
        if (got != mlen || memcmp(out + c.msg_off - 1, expected + ei_off + 4, mlen) != 0)
            fail_msg("message %d differs from what BEAM sent", to_sink);
        ei_off += 4 + mlen;
        to_sink++;
    }
    assert_int_equal(ei_off, elen);
    assert_int_equal(to_sink, 45);
    assert_true(delivered > to_sink); /* net_kernel and global traffic decoded too */
    bl_dh_stats st;
    bl_dh_conn_stats(r.dc, &st);
    assert_true(st.cache_in > 1500);
    assert_int_equal(st.reassembled, 2);
    assert_int_equal(st.seqs_in, 0);
    side_free(&r);
    /* every frame cut short is refused or, at a term boundary, at most a different message;
     * never a crash or an over-read (ASan) */
    side t = side_new(0);
    for (size_t i = 0; i + 4 <= flen && i < 4000;) {
        size_t len = be32(frames + i);
        for (size_t k = 0; k < len; k++) {
            side x = side_new(0);
            const char *out;
            size_t olen;
            (void)recv_copy(&x, frames + i + 4, k, MAX, &out, &olen);
            side_free(&x);
        }
        i += 4 + len;
    }
    side_free(&t);
    free(frames);
    free(expected);
}

/* ---- funs: a NEW_FUN's Size counts its bytes, so atoms inside it change it ---- */

typedef struct {
    unsigned char b[512];
    size_t n;
} bytes;

static void put(bytes *x, const void *p, size_t len)
{
    memcpy(x->b + x->n, p, len);
    x->n += len;
}

static void put_atom(bytes *x, int ref, unsigned idx, const char *text)
{
    if (ref) {
        unsigned char r[2] = {82, (unsigned char)idx};
        put(x, r, 2);
    } else {
        unsigned char h[2] = {119, (unsigned char)strlen(text)};
        put(x, h, 2);
        put(x, text, strlen(text));
    }
}

/* fun(){ Module = ref 0 "funmod", Pid's node = ref 1 "peer@host" }, with one free variable that is
 * the same kind of fun when nested; atoms in full or as cache refs. */
static void put_fun(bytes *x, int refs, int nested)
{
    size_t at = x->n;
    static const unsigned char head[] = {112, 0,  0,  0,  0,  0, /* arity */
                                         1,   2,  3,  4,  5,  6,  7, 8, 9, 10,
                                         11,  12, 13, 14, 15, 16, 0, 0, 0, 7 /* index */};
    put(x, head, sizeof(head));
    unsigned char nfree[4] = {0, 0, 0, (unsigned char)(nested ? 1 : 0)};
    put(x, nfree, 4);
    put_atom(x, refs, 0, "funmod");
    static const unsigned char old[] = {97, 0, 98, 0, 0, 1, 0}; /* OldIndex 0, OldUniq 256 */
    put(x, old, sizeof(old));
    unsigned char pid = 88;
    put(x, &pid, 1);
    put_atom(x, refs, 1, "peer@host");
    static const unsigned char ids[] = {0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 9};
    put(x, ids, sizeof(ids));
    if (nested) put_fun(x, refs, 0);
    size_t size = x->n - at - 1; /* the Size field counts itself, not the tag */
    x->b[at + 1] = (unsigned char)(size >> 24);
    x->b[at + 2] = (unsigned char)(size >> 16);
    x->b[at + 3] = (unsigned char)(size >> 8);
    x->b[at + 4] = (unsigned char)size;
}

static void test_fun_refs(void **state)
{
    (void)state;
    /* receiving: a fun (with a fun inside) whose atoms are cache refs comes out with its atoms
     * in full and both Size fields rewritten, exactly as the sender's term_to_binary */
    side r = side_new(0);
    unsigned char f[1024];
    href refs[2] = {{0x101, "funmod", 6}, {0x202, "peer@host", 9}};
    size_t h = make_hdr(f, 68, 0, 0, refs, 2, 0);
    static const unsigned char ctl[] = {104, 1, 97, 6};
    memcpy(f + h, ctl, sizeof(ctl));
    bytes in = {.n = 0}, full = {.n = 0};
    put_fun(&in, 1, 1);
    put_fun(&full, 0, 1);
    memcpy(f + h + sizeof(ctl), in.b, in.n);
    for (int round = 0; round < 2; round++) { /* new refs, then cached ones */
        const char *out;
        size_t olen;
        assert_int_equal(recv_copy(&r, f, h + sizeof(ctl) + in.n, MAX, &out, &olen), BL_DH_MSG);
        assert_int_equal(olen, 2 + sizeof(ctl) + 1 + full.n);
        assert_memory_equal(out + 2 + sizeof(ctl) + 1, full.b, full.n);
        size_t i = 0;
        assert_int_equal(bl_term_check(out + 2 + sizeof(ctl) + 1, full.n, &i), 0);
        assert_int_equal(i, full.n);
        href again[2] = {{0x101, NULL, 0}, {0x202, NULL, 0}};
        h = make_hdr(f, 68, 0, 0, again, 2, 0);
        memcpy(f + h, ctl, sizeof(ctl));
        memcpy(f + h + sizeof(ctl), in.b, in.n);
    }
    side_free(&r);
    /* sending: a message holding funs goes through our encoder and decoder unchanged, again and
     * again (the atoms around the funs are cached, the ones inside stay whole) */
    side tx = side_new(HDRS), rx = side_new(0);
    ei_x_buff c, m;
    ctl_send(&c);
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 3);
    ei_x_encode_atom(&m, "funmod");
    ei_x_append_buf(&m, (const char *)full.b, (int)full.n);
    ei_x_encode_atom(&m, "peer@host");
    blob want[1];
    want[0].p = passthrough(&c, &m, &want[0].len);
    bl_sendq q;
    bl_sendq_init(&q);
    for (int k = 0; k < 3; k++) {
        send_ok(&tx, &q, &c, &m);
        assert_int_equal(drain_into(&q, &rx, want, 1, NULL), 1);
    }
    free(want[0].p);
    ei_x_free(&m);
    ei_x_free(&c);
    bl_sendq_free(&q);
    side_free(&tx);
    side_free(&rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acache_slots), cmocka_unit_test(test_acache_pool_shared), cmocka_unit_test(test_d_new_then_cached),
        cmocka_unit_test(test_d_all_slots),  cmocka_unit_test(test_d_long_atoms),
        cmocka_unit_test(test_d_malformed),  cmocka_unit_test(test_frag_interleaved),
        cmocka_unit_test(test_frag_errors),  cmocka_unit_test(test_frag_in_place),
        cmocka_unit_test(test_frag_reserve), cmocka_unit_test(test_roundtrip_cache),
        cmocka_unit_test(test_send_checked), cmocka_unit_test(test_roundtrip_fragments),
        cmocka_unit_test(test_requeue),      cmocka_unit_test(test_beam_recorded),
        cmocka_unit_test(test_fun_size),     cmocka_unit_test(test_fun_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
