/* test_jsonterm.c - the one JSON-to-term encoder (c_src/runtime/jsonterm.c) that the
 * configuration service, the CLI and the gateway share: every JSON type, both key styles, the
 * depth bound, keys too long or not UTF-8 for an atom, and a round trip through ei's decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/jsonterm.h"

/* the term for text, printed by ei (its version byte added) */
static int enc(const char *text, unsigned flags, char *out, size_t cap)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    ei_x_buff x;
    ei_x_new_with_version(&x);
    int rc = bl__json_to_term(j, &x, flags);
    json_decref(j);
    if (rc == 0) {
        int i = 0;
        char *s = NULL;
        int ver;
        assert_int_equal(ei_decode_version(x.buff, &i, &ver), 0);
        assert_true(ei_s_print_term(&s, x.buff, &i) >= 0);
        assert_int_equal(i, x.index); /* exactly one whole term */
        snprintf(out, cap, "%s", s);
        free(s);
    }
    ei_x_free(&x);
    return rc;
}

static void test_types(void **state)
{
    (void)state;
    char s[512];
    assert_int_equal(enc("{\"a\": [1, -2, 2.5, \"x\", true, false, null, []], \"b\": {}}",
                         BL__JT_ATOM_KEYS, s, sizeof(s)),
                     0);
    /* as ei prints terms */
    assert_string_equal(s, "#{a => [1, -2, 2.500000, #Bin<120>, true, false, undefined, []], "
                           "b => #{}}");
    /* binary keys: a user's payload */
    assert_int_equal(enc("{\"a\": {\"b\": 1}}", 0, s, sizeof(s)), 0);
    assert_string_equal(s, "#{#Bin<97> => #{#Bin<98> => 1}}");
    assert_int_equal(enc("9007199254740993", 0, s, sizeof(s)), 0);
    assert_string_equal(s, "9007199254740993");
    assert_int_equal(enc("\"\"", 0, s, sizeof(s)), 0);
    assert_string_equal(s, "#Bin<>");
}

static void test_bounds(void **state)
{
    (void)state;
    char s[64 * 8 + 64], text[2 * 100 + 8];
    /* 64 levels below the top are fine, 65 are not */
    for (int depth = 64; depth <= 65; depth++) {
        int k = 0;
        for (int i = 0; i <= depth; i++)
            text[k++] = '[';
        for (int i = 0; i <= depth; i++)
            text[k++] = ']';
        text[k] = 0;
        assert_int_equal(enc(text, 0, s, sizeof(s)), depth == 64 ? 0 : -1);
    }
    /* an atom key: at most 255 characters (UTF-8: "é" is 2 bytes, 1 character) */
    char key[2 * 256 + 32];
    memset(key, 0, sizeof(key));
    for (int i = 0; i < 255; i++)
        strcat(key, "\xc3\xa9");
    char obj[sizeof(key) + 16];
    snprintf(obj, sizeof(obj), "{\"%s\": 1}", key);
    char big[2048];
    assert_int_equal(enc(obj, BL__JT_ATOM_KEYS, big, sizeof(big)), 0);
    strcat(key, "e");
    snprintf(obj, sizeof(obj), "{\"%s\": 1}", key);
    assert_int_equal(enc(obj, BL__JT_ATOM_KEYS, big, sizeof(big)), -1);
    assert_int_equal(enc(obj, 0, big, sizeof(big)), 0); /* a binary key has no such bound */
    ei_x_buff x;
    ei_x_new(&x);
    assert_int_equal(bl__json_to_term(NULL, &x, 0), -1);
    ei_x_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
