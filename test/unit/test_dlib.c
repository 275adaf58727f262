/* test_dlib.c - unit tests for the on-demand library loader (c_src/runtime/dlib.c): the first
 * candidate soname that loads and has every symbol wins; a missing library or symbol gives NULL,
 * a reason, and every slot NULL. Uses libc and libm, present on every Debian machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/dlib.h"

typedef size_t (*strlen_fn)(const char *);
typedef double (*sqrt_fn)(double);

static void loads_first_that_opens(void **state)
{
    (void)state;
    strlen_fn my_strlen = NULL;
    static const char *const names[] = {"libbeamlet-no-such.so.9", "libc.so.6", NULL};
    const bl__dsym syms[] = {{"strlen", (void **)&my_strlen}};
    char err[256] = "x";
    void *h = bl__dlib_open(names, syms, 1, err, sizeof(err));
    assert_non_null(h);
    assert_string_equal(err, "");
    assert_non_null(my_strlen);
    assert_int_equal(my_strlen("beamlet"), 7);
    bl__dlib_close(h);
}

static void skips_library_missing_a_symbol(void **state)
{
    (void)state;
    sqrt_fn my_sqrt = NULL;
    /* libc has no sqrt (libm has): the second candidate wins */
    static const char *const names[] = {"libc.so.6", "libm.so.6", NULL};
    const bl__dsym syms[] = {{"sqrt", (void **)&my_sqrt}};
    void *h = bl__dlib_open(names, syms, 1, NULL, 0);
    assert_non_null(h);
    assert_true(my_sqrt(16.0) == 4.0);
    bl__dlib_close(h);
}

static void missing_symbol_clears_every_slot(void **state)
{
    (void)state;
    strlen_fn my_strlen = (strlen_fn)1;
    void *other = (void *)1;
    static const char *const names[] = {"libc.so.6", NULL};
    const bl__dsym syms[] = {{"strlen", (void **)&my_strlen},
                             {"bl_no_such_symbol_anywhere", &other}};
    char err[256];
    assert_null(bl__dlib_open(names, syms, 2, err, sizeof(err)));
    assert_null(my_strlen);
    assert_null(other);
    assert_non_null(strstr(err, "libc.so.6 has no bl_no_such_symbol_anywhere"));
}

static void missing_library_says_which(void **state)
{
    (void)state;
    void *slot = (void *)1;
    static const char *const names[] = {"libbeamlet-no-such.so.9", NULL};
    const bl__dsym syms[] = {{"x", &slot}};
    char err[256];
    assert_null(bl__dlib_open(names, syms, 1, err, sizeof(err)));
    assert_null(slot);
    assert_non_null(strstr(err, "cannot load libbeamlet-no-such.so.9"));
    static const char *const none[] = {NULL};
    assert_null(bl__dlib_open(none, syms, 1, err, sizeof(err)));
    assert_true(err[0] != '\0');
    bl__dlib_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_first_that_opens),
        cmocka_unit_test(skips_library_missing_a_symbol),
        cmocka_unit_test(missing_symbol_clears_every_slot),
        cmocka_unit_test(missing_library_says_which),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
