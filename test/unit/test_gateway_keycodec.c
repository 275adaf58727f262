/* test_gateway_keycodec.c - the wire form of API key replication (c_src/gateway/keycodec.c):
 * a key with any hash bytes (NULs included) round-trips, a table of several keys decodes to all
 * of them, and what must be refused is: an id that is not 16 hex digits, a NUL inside a name, an
 * unknown role, a created_on atom longer than a node name, an improper tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/gw_int.h"

typedef struct {
    gw_apikey got[4];
    int n;
} sink;

static void collect(const gw_apikey *k, void *ud)
{
    sink *s = ud;
    if (s->n < 4) s->got[s->n] = *k;
    s->n++;
}

static gw_apikey key(const char *id, const char *name, int role)
{
    gw_apikey k;
    memset(&k, 0, sizeof(k));
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.name, sizeof(k.name), "%s", name);
    k.role = role;
    for (int i = 0; i < 32; i++)
        k.hash[i] = (unsigned char)(i % 3 ? 0 : 0xa0 + i); /* NULs in the hash */
    k.created_ms = 1700000000123ULL;
    snprintf(k.created_on, sizeof(k.created_on), "g1@host");
    return k;
}

static int decode(ei_x_buff *x, sink *s)
{
    int i = 0;
    memset(s, 0, sizeof(*s));
    return bl__gw_keys_decode(x->buff, &i, collect, s);
}

static void round_trip(void **state)
{
    (void)state;
    gw_apikey a = key("0123456789abcdef", "ops", 1), b = key("fedcba9876543210", "ro", 0);
    b.revoked = 1;
    b.revoked_ms = 1700000000999ULL;
    b.created_on[0] = 0; /* unknown maker: "undefined" on the wire */
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_list_header(&x, 1);
    bl__gw_key_encode(&x, &a);
    ei_x_encode_list_header(&x, 1);
    bl__gw_key_encode(&x, &b);
    ei_x_encode_empty_list(&x);
    sink s;
    assert_int_equal(decode(&x, &s), 2);
    assert_string_equal(s.got[0].id, a.id);
    assert_string_equal(s.got[0].name, "ops");
    assert_int_equal(s.got[0].role, 1);
    assert_memory_equal(s.got[0].hash, a.hash, 32);
    assert_string_equal(s.got[0].created_on, "g1@host");
    assert_int_equal(s.got[0].revoked, 0);
    assert_int_equal(s.got[1].revoked, 1);
    assert_int_equal(s.got[1].revoked_ms, b.revoked_ms);
    assert_string_equal(s.got[1].created_on, "");
    ei_x_free(&x);
}

static void one_bad(gw_apikey k, const char *created_on_atom, int expect_keys)
{
    ei_x_buff x;
    ei_x_new(&x);
    gw_apikey good = key("00000000000000aa", "first", 2);
    ei_x_encode_list_header(&x, 2);
    bl__gw_key_encode(&x, &good);
    if (created_on_atom) { /* hand-made: the encoder would not write it */
        ei_x_encode_tuple_header(&x, 8);
        ei_x_encode_binary(&x, k.id, (long)strlen(k.id));
        ei_x_encode_binary(&x, k.name, (long)strlen(k.name));
        ei_x_encode_atom(&x, "viewer");
        ei_x_encode_binary(&x, k.hash, 32);
        ei_x_encode_ulonglong(&x, 1);
        ei_x_encode_atom(&x, created_on_atom);
        ei_x_encode_atom(&x, "false");
        ei_x_encode_ulonglong(&x, 0);
    } else {
        bl__gw_key_encode(&x, &k);
    }
    ei_x_encode_empty_list(&x);
    sink s;
    assert_int_equal(decode(&x, &s), expect_keys);
    assert_true(s.n >= 1);
    assert_string_equal(s.got[0].name, "first"); /* those before the bad one are kept */
    ei_x_free(&x);
}

static void refusals(void **state)
{
    (void)state;
    one_bad(key("0123", "short-id", 0), NULL, -1);
    one_bad(key("0123456789ABCDEF", "upper-hex", 0), NULL, -1);
    gw_apikey nul = key("0123456789abcdef", "a", 0);
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_tuple_header(&x, 8);
    ei_x_encode_binary(&x, nul.id, 16);
    ei_x_encode_binary(&x, "a\0b", 3); /* a NUL inside the name */
    ei_x_encode_atom(&x, "viewer");
    ei_x_encode_binary(&x, nul.hash, 32);
    ei_x_encode_ulonglong(&x, 1);
    ei_x_encode_atom(&x, "g1@host");
    ei_x_encode_atom(&x, "false");
    ei_x_encode_ulonglong(&x, 0);
    ei_x_encode_empty_list(&x);
    sink s;
    assert_int_equal(decode(&x, &s), -1);
    assert_int_equal(s.n, 0);
    ei_x_free(&x);
    one_bad(key("0123456789abcdef", "bad-role", 7), NULL, -1);
    /* an atom of 255 characters of 4 UTF-8 bytes each: far over a node name's 256 bytes */
    char big[4 * 255 + 1];
    for (int i = 0; i < 255; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
    big[4 * 255] = 0;
    one_bad(key("0123456789abcdef", "long", 0), big, -1);
    one_bad(key("0123456789abcdef", "fine", 0), "n2@host", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
