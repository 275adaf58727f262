/* test_decode.c - text out of incoming terms (c_src/runtime/decode.c), what the registry, pub/sub,
 * health, alerts, cluster configuration and gateway services read names, ids and topics with:
 * binaries, atoms (Latin-1 and UTF-8), strings and [] taken; too long, a NUL inside and other
 * types refused with the index left where it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/decode.h"

typedef int (*dec_fn)(const char *buf, int *idx, char *out, size_t cap);

/* decode the term x holds with fn into a cap-byte buffer; the index must end past the term on
 * success and stay at 0 on failure */
static int run(dec_fn fn, const ei_x_buff *x, char *out, size_t cap)
{
    int i = 0;
    int rc = fn(x->buff, &i, out, cap);
    assert_int_equal(i, rc == 0 ? x->index : 0);
    return rc;
}

static void test_bin(void **state)
{
    (void)state;
    char out[8];
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_binary(&x, "abc", 3);
    assert_int_equal(run(bl__term_bin, &x, out, sizeof(out)), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(run(bl__term_bin, &x, out, 3), -1); /* no room for the NUL */
    assert_int_equal(run(bl__term_bin, &x, out, 4), 0);
    x.index = 0;
    ei_x_encode_binary(&x, "a\0b", 3);
    assert_int_equal(run(bl__term_bin, &x, out, sizeof(out)), -1);
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), -1);
    x.index = 0;
    ei_x_encode_atom(&x, "abc"); /* an atom is not a binary */
    assert_int_equal(run(bl__term_bin, &x, out, sizeof(out)), -1);
    ei_x_free(&x);
}

static void test_text(void **state)
{
    (void)state;
    char out[16];
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_atom(&x, "web");
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), 0);
    assert_string_equal(out, "web");
    x.index = 0;
    ei_x_encode_atom_len_as(&x, "caf\xc3\xa9", 5, ERLANG_UTF8, ERLANG_UTF8);
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), 0);
    assert_int_equal(strlen(out) > 3, 1);
    x.index = 0;
    ei_x_encode_atom(&x, "a_long_atom_name");
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), -1); /* 16 chars, 16 bytes */
    x.index = 0;
    ei_x_encode_string(&x, "topic.a");
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), 0);
    assert_string_equal(out, "topic.a");
    x.index = 0;
    ei_x_encode_string(&x, "");
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), 0); /* [] */
    assert_string_equal(out, "");
    x.index = 0;
    ei_x_encode_binary(&x, "bin", 3);
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), 0);
    assert_string_equal(out, "bin");
    x.index = 0;
    ei_x_encode_long(&x, 7);
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), -1);
    x.index = 0;
    ei_x_encode_list_header(&x, 1); /* a list that is not a string */
    ei_x_encode_atom(&x, "x");
    ei_x_encode_empty_list(&x);
    assert_int_equal(run(bl__term_text, &x, out, sizeof(out)), -1);
    assert_int_equal(run(bl__term_text, &x, out, 0), -1);
    ei_x_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bin),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
