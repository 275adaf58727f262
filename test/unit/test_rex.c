/* test_rex.c - unit tests for the rex request decoder (c_src/otp/rex.c) and the resolution of
 * apply(M, F, A) through erlang:apply/2,3 and funs with BEAM's error terms (c_src/otp/apply.c).
 * The expected terms are the ones OTP 25 gives (rpc.erl/erpc.erl, measured against a BEAM node
 * that lacks the fun's module; the integration suite compares the two side by side). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ei.h>

#include "dist/term.h"
#include "runtime/internal.h"

static erlang_pid g_pid;

static void setup_pid(void)
{
    memset(&g_pid, 0, sizeof(g_pid));
    strcpy(g_pid.node, "n@h");
    g_pid.num = 7;
    g_pid.creation = 1;
}

/* a local fun of module m, arity ar, no free variables */
static void enc_local_fun(ei_x_buff *x, int ar)
{
    erlang_fun f;
    memset(&f, 0, sizeof(f));
    f.type = EI_FUN_CLOSURE;
    f.arity = ar;
    strcpy(f.module, "m");
    f.u.closure.index = 0;
    f.u.closure.uniq = 1;
    f.u.closure.old_index = 0;
    f.u.closure.pid = g_pid;
    ei_x_encode_fun(x, &f);
}

static void enc_ext_fun(ei_x_buff *x, const char *m, const char *fn, int ar)
{
    erlang_fun f;
    memset(&f, 0, sizeof(f));
    f.type = EI_FUN_EXPORT;
    f.arity = ar;
    strcpy(f.module, m);
    f.u.exprt.func = (char *)fn;
    ei_x_encode_fun(x, &f);
}

static void frame4(ei_x_buff *x, const char *m, const char *f, long ar)
{
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, m);
    ei_x_encode_atom(x, f);
    ei_x_encode_long(x, ar);
    ei_x_encode_empty_list(x);
}

static void error_info(ei_x_buff *x)
{
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error_info");
    ei_x_encode_map_header(x, 1);
    ei_x_encode_atom(x, "module");
    ei_x_encode_atom(x, "erl_erts_errors");
    ei_x_encode_empty_list(x);
}

static void assert_same(const ei_x_buff *got, const ei_x_buff *want)
{
    assert_int_equal(got->index, want->index);
    assert_memory_equal(got->buff, want->buff, (size_t)want->index);
}

/* Resolve M, F, A at the start of x (three terms back to back) and check the kind. */
static void resolve(const ei_x_buff *x, bl_apply *a, int kind)
{
    size_t end = 0;
    for (int k = 0; k < 3; k++)
        assert_int_equal(bl_term_check(x->buff, (size_t)x->index, &end), 0);
    assert_int_equal(end, (size_t)x->index);
    int f = bl__term_end(x->buff, 0), ar = bl__term_end(x->buff, f);
    assert_int_equal(bl__apply_resolve(x->buff, 0, f, ar, a), kind);
}

static void error_of(const ei_x_buff *x, const bl_apply *a, int trimmed, ei_x_buff *r, ei_x_buff *s)
{
    ei_x_new(r);
    ei_x_new(s);
    bl__apply_error(a, x->buff, trimmed, r, s);
}

static void test_decode_forms(void **st)
{
    (void)st;
    ei_x_buff x;
    bl_rex_req r;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, "block_call");
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "node");
    ei_x_encode_empty_list(&x);
    ei_x_encode_atom(&x, "user");
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_CALL, &r), BL_REX_BLOCK_CALL);
    assert_int_equal(r.mfa_at, bl__term_end(x.buff, 2)); /* after the tuple header and the tag */
    assert_int_equal(bl__term_end(x.buff, bl__term_end(x.buff, bl__term_end(x.buff, r.mfa_at))),
                     r.mfa_end);
    /* the right shape in the wrong form */
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_CAST, &r), BL_REX_BAD);
    assert_non_null(r.why);
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_MSG, &r), BL_REX_BAD);

    x.index = 0;
    ei_x_encode_atom(&x, "stop");
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_CALL, &r), BL_REX_STOP);
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_CAST, &r), BL_REX_BAD);

    /* {call, M, F, A} (4 elements) is not a rex request */
    x.index = 0;
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "call");
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "node");
    ei_x_encode_empty_list(&x);
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_CALL, &r), BL_REX_BAD);

    /* messages */
    x.index = 0;
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_pid(&x, &g_pid);
    ei_x_encode_atom(&x, "features_request");
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_MSG, &r), BL_REX_FEATURES);
    x.index = 0;
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_pid(&x, &g_pid);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "sbcast");
    ei_x_encode_atom(&x, "name");
    ei_x_encode_string(&x, "msg");
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_MSG, &r), BL_REX_SBCAST);
    int i = r.name_at;
    char name[MAXATOMLEN_UTF8];
    assert_int_equal(ei_decode_atom(x.buff, &i, name), 0);
    assert_string_equal(name, "name");
    assert_int_equal(r.msg_at, i);
    assert_int_equal(r.msg_end, x.index);
    x.index = 0;
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "not_a_pid");
    ei_x_encode_atom(&x, "features_request");
    assert_int_equal(bl__rex_decode(x.buff, 0, BL_REX_FORM_MSG, &r), BL_REX_BAD);
    ei_x_free(&x);
}

static void test_external_fun(void **st)
{
    (void)st;
    ei_x_buff x;
    bl_apply a;
    ei_x_new(&x);
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_list_header(&x, 2);
    enc_ext_fun(&x, "tw", "add", 2);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_CALL);
    assert_string_equal(a.mod, "tw");
    assert_string_equal(a.fun, "add");
    assert_int_equal(a.arity, 2);
    assert_int_equal(a.via, 2);
    assert_int_equal(a.depth, 1);
    assert_int_equal(bl__list_len(x.buff, a.args_at), 2);
    /* tw:add/2 raising: its frame, then apply/2's */
    ei_x_buff s, w;
    ei_x_new(&s);
    ei_x_new(&w);
    bl__apply_fn_stack(&a, 1, &s);
    ei_x_encode_list_header(&w, 2);
    frame4(&w, "tw", "add", 2);
    frame4(&w, "erlang", "apply", 2);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&s);
    ei_x_free(&w);
    ei_x_free(&x);
}

static void test_local_fun(void **st)
{
    (void)st;
    ei_x_buff x, fun, r, s, w;
    bl_apply a;
    ei_x_new(&x);
    ei_x_new(&fun);
    enc_local_fun(&fun, 0);
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_list_header(&x, 2);
    ei_x_append_buf(&x, fun.buff, fun.index);
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_UNDEF_FUN);
    assert_string_equal(a.mod, "m");
    /* erpc / rpc: undef, [{Fun, [], []}, {erlang, apply, 2, []}] */
    error_of(&x, &a, 1, &r, &s);
    ei_x_new(&w);
    ei_x_encode_atom(&w, "undef");
    assert_same(&r, &w);
    w.index = 0;
    ei_x_encode_list_header(&w, 2);
    ei_x_encode_tuple_header(&w, 3);
    ei_x_append_buf(&w, fun.buff, fun.index);
    ei_x_encode_empty_list(&w);
    ei_x_encode_empty_list(&w);
    frame4(&w, "erlang", "apply", 2);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&r);
    ei_x_free(&s);
    /* a spawned process: {undef, [{Fun, [], []}]} */
    error_of(&x, &a, 0, &r, &s);
    w.index = 0;
    ei_x_encode_list_header(&w, 1);
    ei_x_encode_tuple_header(&w, 3);
    ei_x_append_buf(&w, fun.buff, fun.index);
    ei_x_encode_empty_list(&w);
    ei_x_encode_empty_list(&w);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&r);
    ei_x_free(&s);

    /* the wrong arity first: {badarity, {Fun, [1]}}, [{erlang, apply, 2, []}] */
    x.index = 0;
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_list_header(&x, 2);
    ei_x_append_buf(&x, fun.buff, fun.index);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 1);
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_BADARITY);
    error_of(&x, &a, 1, &r, &s);
    w.index = 0;
    ei_x_encode_tuple_header(&w, 2);
    ei_x_encode_atom(&w, "badarity");
    ei_x_encode_tuple_header(&w, 2);
    ei_x_append_buf(&w, fun.buff, fun.index);
    ei_x_encode_list_header(&w, 1);
    ei_x_encode_long(&w, 1);
    ei_x_encode_empty_list(&w);
    assert_same(&r, &w);
    w.index = 0;
    ei_x_encode_list_header(&w, 1);
    frame4(&w, "erlang", "apply", 2);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&r);
    ei_x_free(&s);
    ei_x_free(&w);
    ei_x_free(&fun);
    ei_x_free(&x);
}

static void test_badfun_and_apply3(void **st)
{
    (void)st;
    ei_x_buff x, r, s, w;
    bl_apply a;
    ei_x_new(&x);
    ei_x_new(&w);
    /* apply({erlang, node}, []): tuple funs are gone, badfun */
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "node");
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_BADFUN);
    error_of(&x, &a, 1, &r, &s);
    ei_x_encode_tuple_header(&w, 2);
    ei_x_encode_atom(&w, "badfun");
    ei_x_encode_tuple_header(&w, 2);
    ei_x_encode_atom(&w, "erlang");
    ei_x_encode_atom(&w, "node");
    assert_same(&r, &w);
    ei_x_free(&r);
    ei_x_free(&s);

    /* apply(erlang, apply, [nomod, f, [1]]): undef [{nomod, f, [1], []}, {erlang, apply, 3, []}] */
    x.index = 0;
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_list_header(&x, 3);
    ei_x_encode_atom(&x, "nomod");
    ei_x_encode_atom(&x, "f");
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 1);
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_CALL);
    assert_string_equal(a.mod, "nomod");
    assert_int_equal(a.arity, 1);
    error_of(&x, &a, 1, &r, &s);
    w.index = 0;
    ei_x_encode_list_header(&w, 2);
    ei_x_encode_tuple_header(&w, 4);
    ei_x_encode_atom(&w, "nomod");
    ei_x_encode_atom(&w, "f");
    ei_x_encode_list_header(&w, 1);
    ei_x_encode_long(&w, 1);
    ei_x_encode_empty_list(&w);
    ei_x_encode_empty_list(&w);
    frame4(&w, "erlang", "apply", 3);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&r);
    ei_x_free(&s);
    ei_x_free(&w);
    ei_x_free(&x);
}

static void test_badarg(void **st)
{
    (void)st;
    ei_x_buff x, r, s, w;
    bl_apply a;
    ei_x_new(&x);
    ei_x_new(&w);
    /* the request's own M is not an atom (rex {call, "m", node, [], GL}):
     * [{erlang, apply, ["m", node, []], ErrorInfo}, {"m", node, 0, []}] */
    ei_x_encode_string(&x, "m");
    ei_x_encode_atom(&x, "node");
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_BADARG);
    assert_int_equal(a.depth, 0);
    error_of(&x, &a, 1, &r, &s);
    ei_x_encode_list_header(&w, 2);
    ei_x_encode_tuple_header(&w, 4);
    ei_x_encode_atom(&w, "erlang");
    ei_x_encode_atom(&w, "apply");
    ei_x_encode_list_header(&w, 3);
    ei_x_encode_string(&w, "m");
    ei_x_encode_atom(&w, "node");
    ei_x_encode_empty_list(&w);
    ei_x_encode_empty_list(&w);
    error_info(&w);
    ei_x_encode_tuple_header(&w, 4);
    ei_x_encode_string(&w, "m");
    ei_x_encode_atom(&w, "node");
    ei_x_encode_long(&w, 0);
    ei_x_encode_empty_list(&w);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&r);
    ei_x_free(&s);

    /* A not a list: only apply's frame */
    x.index = 0;
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "node");
    ei_x_encode_atom(&x, "notlist");
    resolve(&x, &a, BL_AP_BADARG);
    error_of(&x, &a, 1, &r, &s);
    assert_int_equal(bl__list_len(s.buff, 0), 1);
    ei_x_free(&r);
    ei_x_free(&s);

    /* apply(erlang, apply, [erlang, apply, "ab"]): apply/2 of a string's integers, badarg with
     * apply/2's frame and then the request's apply/3 */
    x.index = 0;
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_list_header(&x, 3);
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "apply");
    ei_x_encode_string(&x, "ab");
    ei_x_encode_empty_list(&x);
    resolve(&x, &a, BL_AP_BADARG);
    assert_int_equal(a.depth, 2);
    error_of(&x, &a, 1, &r, &s);
    w.index = 0;
    ei_x_encode_list_header(&w, 3);
    ei_x_encode_tuple_header(&w, 4);
    ei_x_encode_atom(&w, "erlang");
    ei_x_encode_atom(&w, "apply");
    ei_x_encode_string(&w, "ab");
    error_info(&w);
    frame4(&w, "erlang", "apply", 2);
    frame4(&w, "erlang", "apply", 3);
    ei_x_encode_empty_list(&w);
    assert_same(&s, &w);
    ei_x_free(&r);
    ei_x_free(&s);
    ei_x_free(&w);
    ei_x_free(&x);
}

static void test_nesting_bound(void **st)
{
    (void)st;
    ei_x_buff x;
    bl_apply a;
    static const int DEPTHS[] = {1, 7, 8, 40}; /* inner applies: 7 + the request's = 8 */
    for (size_t d = 0; d < sizeof(DEPTHS) / sizeof(DEPTHS[0]); d++) {
        int depth = DEPTHS[d];
        ei_x_new(&x);
        ei_x_encode_atom(&x, "erlang");
        ei_x_encode_atom(&x, "apply");
        for (int k = 0; k < depth; k++) {
            ei_x_encode_list_header(&x, 3);
            ei_x_encode_atom(&x, "erlang");
            ei_x_encode_atom(&x, "apply");
        }
        ei_x_encode_list_header(&x, 3);
        ei_x_encode_atom(&x, "erlang");
        ei_x_encode_atom(&x, "node");
        ei_x_encode_empty_list(&x);
        ei_x_encode_empty_list(&x);
        for (int k = 0; k < depth; k++)
            ei_x_encode_empty_list(&x);
        resolve(&x, &a, depth < 8 ? BL_AP_CALL : BL_AP_LIMIT);
        if (depth < 8) {
            assert_string_equal(a.fun, "node");
            assert_int_equal(a.depth, depth + 1);
        }
        ei_x_free(&x);
    }
}

int main(void)
{
    setup_pid();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_forms), cmocka_unit_test(test_external_fun),
        cmocka_unit_test(test_local_fun),    cmocka_unit_test(test_badfun_and_apply3),
        cmocka_unit_test(test_badarg),       cmocka_unit_test(test_nesting_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
