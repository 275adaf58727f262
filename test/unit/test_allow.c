/* test_allow.c - the node allow-list (c_src/dist/allow.c) against the entries OTP's
 * dist_util:is_allowed/2 takes: NAME@HOST, NAME@, HOST; an empty list allows every node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dist/allow.h"

static int match(const char *list, const char *node)
{
    bl_allow *a = bl_allow_parse(list);
    assert_non_null(a);
    int m = bl_allow_match(a, node);
    bl_allow_free(a);
    return m;
}

static void test_entries(void **state)
{
    (void)state;
    const char *l = "web1@hosta, db@,hostc";
    assert_int_equal(match(l, "web1@hosta"), 1); /* NAME@HOST: exactly that node */
    assert_int_equal(match(l, "web1@hostb"), 0);
    assert_int_equal(match(l, "web2@hosta"), 0);
    assert_int_equal(match(l, "web1@hosta.example"), 0);
    assert_int_equal(match(l, "db@hosta"), 1); /* NAME@: that name on any host */
    assert_int_equal(match(l, "db@x.example"), 1);
    assert_int_equal(match(l, "db2@hosta"), 0);
    assert_int_equal(match(l, "d@hosta"), 0);
    assert_int_equal(match(l, "anyone@hostc"), 1); /* HOST: every node on that host */
    assert_int_equal(match(l, "anyone@hostc2"), 0);
    assert_int_equal(match(l, "hostc@elsewhere"), 0);
    assert_int_equal(match(l, "hostc"), 0); /* not a node name */
}

static void test_empty(void **state)
{
    (void)state;
    assert_int_equal(match("", "anyone@anywhere"), 1);
    assert_int_equal(match(" , ", "anyone@anywhere"), 1);
    bl_allow *a = bl_allow_parse("a@b,c@,d");
    assert_int_equal(bl_allow_count(a), 3);
    bl_allow_free(a);
    assert_int_equal(bl_allow_match(NULL, "x@y"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_entries), cmocka_unit_test(test_empty)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
