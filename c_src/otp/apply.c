/* apply.c - what a request names, resolved as BEAM's erlang:apply/2,3 would run it here.
 *
 * Every way BEAM runs a function on a C node (SPAWN_REQUEST, the erpc:execute_call/cast it wraps,
 * rex's {call | block_call | cast, M, F, A, GL}) ends in apply(M, F, A). spawn.c runs the result
 * and rex.c feeds it; this file only decides what is called: erlang:apply/2 with an external fun
 * (`fun M:F/A`, EXPORT_EXT) or erlang:apply/3 go on to the function they name (nested applies
 * too), so `erpc:call(CNode, fun erlang:node/0)` runs erlang:node/0 from the export table. A local
 * fun (NEW_FUN_EXT) is code of a module this node does not have: undef, as on a BEAM node where
 * the fun's module is not loaded. Wrong arguments fail as BEAM's apply fails (badarg, badfun,
 * badarity), and bl__apply_error() encodes the reason and stack BEAM gives for each (measured
 * against OTP 25, see docs/protocol.md). Pure functions over a term that bl_term_check accepted
 * (test/fuzz/fuzz_rex.c). */
#include "../runtime/internal.h"
#include "../dist/term.h"

#include <limits.h>
#include <string.h>

/* nested erlang:apply calls followed (each walks its arguments again); deeper is system_limit */
#define APPLY_MAX_DEPTH 8

static int atom_at(const char *b, int i)
{
    int type, size;
    return ei_get_type(b, &i, &type, &size) == 0 &&
           (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
            type == ERL_SMALL_ATOM_UTF8_EXT);
}

static int skip(const char *b, int *i)
{
    int e = bl__term_end(b, *i);
    if (e < 0) return -1;
    *i = e;
    return 0;
}

int bl__list_len(const char *b, int i)
{
    int type, size, n;
    if (ei_get_type(b, &i, &type, &size) < 0) return -1;
    if (type == ERL_NIL_EXT) return 0;
    if (type == ERL_STRING_EXT) return size;
    if (type != ERL_LIST_EXT || ei_decode_list_header(b, &i, &n) < 0) return -1;
    for (int k = 0; k < n; k++)
        if (skip(b, &i) < 0) return -1;
    return ei_get_type(b, &i, &type, &size) == 0 && type == ERL_NIL_EXT ? n : -1;
}

/* The elements of the list at b[i] when it is a LIST_EXT of exactly n (the tail checked). */
static int elems(const char *b, int i, int n, int *at)
{
    int type, size, k;
    if (ei_get_type(b, &i, &type, &size) < 0 || type != ERL_LIST_EXT ||
        ei_decode_list_header(b, &i, &k) < 0 || k != n)
        return -1;
    int j = i;
    for (int q = 0; q < n; q++) {
        at[q] = j;
        if (skip(b, &j) < 0) return -1;
    }
    return ei_get_type(b, &j, &type, &size) == 0 && type == ERL_NIL_EXT ? 0 : -1;
}

/* Atoms as UTF-8 both ways (ei's plain atom calls are Latin-1 only). */
static int decode_name(const char *b, int *i, char *out)
{
    return ei_decode_atom_as(b, i, out, MAXATOMLEN_UTF8, ERLANG_UTF8, NULL, NULL);
}

static int get_name(const char *b, int i, char *out)
{
    return atom_at(b, i) && decode_name(b, &i, out) == 0 ? 0 : -1;
}

static void encode_name(ei_x_buff *x, const char *s)
{
    ei_x_encode_atom_len_as(x, s, (int)strlen(s), ERLANG_UTF8, ERLANG_UTF8);
}

/* apply(F, A) at depth d (the element offsets of its [F, A] list at e, the list at list). */
static int apply2(const char *b, int list, const int *e, bl_apply *a)
{
    a->list_at = list;
    a->fun_at = e[0];
    a->args_at = e[1];
    int len = bl__list_len(b, e[1]);
    if (len < 0) return a->kind = BL_AP_BADARG;
    unsigned char tag = (unsigned char)b[e[0]];
    if (tag == ERL_NEW_FUN_EXT) { /* size(4), arity(1), ... module at +30 */
        a->fun_arity = (unsigned char)b[e[0] + 5];
        int mi = e[0] + 30;
        if (get_name(b, mi, a->mod) < 0) a->mod[0] = 0;
        return a->kind = a->fun_arity != len ? BL_AP_BADARITY : BL_AP_UNDEF_FUN;
    }
    if (tag != ERL_EXPORT_EXT) return a->kind = BL_AP_BADFUN;
    int i = e[0] + 1;
    long ar;
    if (decode_name(b, &i, a->mod) < 0 || decode_name(b, &i, a->fun) < 0 ||
        ei_decode_long(b, &i, &ar) < 0)
        return a->kind = BL_AP_BADFUN;
    a->fun_arity = (int)ar;
    if (ar != len) return a->kind = BL_AP_BADARITY;
    a->arity = len;
    return -1; /* go on: call M:F/len */
}

int bl__apply_resolve(const char *b, int m_at, int f_at, int a_at, bl_apply *a)
{
    memset(a, 0, sizeof(*a));
    a->m_at = m_at;
    a->f_at = f_at;
    a->args_at = a_at;
    a->list_at = -1;
    a->fun_at = -1;
    int len = bl__list_len(b, a_at);
    if (get_name(b, m_at, a->mod) < 0 || get_name(b, f_at, a->fun) < 0 || len < 0)
        return a->kind = BL_AP_BADARG; /* apply(M, F, A) of the request itself (depth 0) */
    a->arity = len;
    for (;;) {
        if (strcmp(a->mod, "erlang") != 0 || strcmp(a->fun, "apply") != 0 ||
            (a->arity != 2 && a->arity != 3))
            return a->kind = BL_AP_CALL;
        if (a->depth == APPLY_MAX_DEPTH) return a->kind = BL_AP_LIMIT;
        int list = a->args_at, e[3];
        a->depth++;
        a->hop = a->arity;
        if (!a->via) a->via = a->arity;
        if (elems(b, list, a->arity, e) < 0) { /* a STRING_EXT: small integers, never a list */
            a->list_at = list;
            return a->kind = BL_AP_BADARG;
        }
        if (a->arity == 2) {
            int k = apply2(b, list, e, a);
            if (k >= 0) return k;
            continue;
        }
        a->list_at = list;
        len = bl__list_len(b, e[2]);
        if (get_name(b, e[0], a->mod) < 0 || get_name(b, e[1], a->fun) < 0 || len < 0)
            return a->kind = BL_AP_BADARG;
        a->m_at = e[0];
        a->f_at = e[1];
        a->args_at = e[2];
        a->arity = len;
    }
}

static void append_term(ei_x_buff *x, const char *b, int at)
{
    int end = bl__term_end(b, at);
    if (end > at) ei_x_append_buf(x, b + at, end - at);
}

static void frame_apply(ei_x_buff *x, int arity)
{
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, "erlang");
    ei_x_encode_atom(x, "apply");
    ei_x_encode_long(x, arity);
    ei_x_encode_empty_list(x);
}

/* {erlang, apply, Args, [{error_info, #{module => erl_erts_errors}}]}: apply's own badarg */
static void frame_badarg(ei_x_buff *x, const bl_apply *a, const char *b)
{
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, "erlang");
    ei_x_encode_atom(x, "apply");
    if (a->list_at >= 0) {
        append_term(x, b, a->list_at);
    } else { /* depth 0: the request's M, F, A */
        ei_x_encode_list_header(x, 3);
        append_term(x, b, a->m_at);
        append_term(x, b, a->f_at);
        append_term(x, b, a->args_at);
        ei_x_encode_empty_list(x);
    }
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error_info");
    ei_x_encode_map_header(x, 1);
    ei_x_encode_atom(x, "module");
    ei_x_encode_atom(x, "erl_erts_errors");
    ei_x_encode_empty_list(x);
}

/* The frames erpc's trim_stack leaves below the failing one (trimmed: erpc and rex), or BEAM's
 * raw stack has there (a plain spawn): apply/2's own frame when the last step was an apply/2, and
 * when trimmed the request's {erlang, apply, Arity, []} unless that is the same frame. */
static int suffix_len(const bl_apply *a, int trimmed)
{
    if (a->hop == 2) return 1 + (trimmed && a->depth > 1);
    return trimmed && a->via ? 1 : 0;
}

static void suffix(ei_x_buff *x, const bl_apply *a, int trimmed)
{
    if (a->hop == 2) {
        frame_apply(x, 2);
        if (trimmed && a->depth > 1) frame_apply(x, a->via);
    } else if (trimmed && a->via) {
        frame_apply(x, a->via);
    }
}

void bl__apply_error(const bl_apply *a, const char *b, int trimmed, ei_x_buff *reason,
                     ei_x_buff *stack)
{
    int n;
    switch (a->kind) {
    case BL_AP_UNDEF_FUN:
    case BL_AP_CALL: /* undef: [{M, F, Args, []} | ...] or [{Fun, Args, []} | ...] */
        ei_x_encode_atom(reason, "undef");
        n = trimmed ? suffix_len(a, 1) : 0;
        ei_x_encode_list_header(stack, 1 + n);
        if (a->kind == BL_AP_UNDEF_FUN) {
            ei_x_encode_tuple_header(stack, 3);
            append_term(stack, b, a->fun_at);
        } else {
            ei_x_encode_tuple_header(stack, 4);
            encode_name(stack, a->mod);
            encode_name(stack, a->fun);
        }
        append_term(stack, b, a->args_at);
        ei_x_encode_empty_list(stack);
        if (n) suffix(stack, a, 1);
        ei_x_encode_empty_list(stack);
        return;
    case BL_AP_BADARG: {
        /* apply/2's badarg keeps the frames below it; apply/3's is the request itself at depth 1
         * (nothing below), and at depth 0 (the request's own M, F or A) erpc adds the
         * request's {M, F, Arity, []} when A is a list */
        ei_x_encode_atom(reason, "badarg");
        int len = a->depth == 0 ? bl__list_len(b, a->args_at) : -1;
        n = a->hop == 2     ? suffix_len(a, trimmed)
            : a->depth == 0 ? trimmed && len >= 0
            : a->depth > 1  ? trimmed
                            : 0;
        ei_x_encode_list_header(stack, 1 + n);
        frame_badarg(stack, a, b);
        if (a->hop == 2) {
            suffix(stack, a, trimmed);
        } else if (n && a->depth == 0) {
            ei_x_encode_tuple_header(stack, 4);
            append_term(stack, b, a->m_at);
            append_term(stack, b, a->f_at);
            ei_x_encode_long(stack, len);
            ei_x_encode_empty_list(stack);
        } else if (n) {
            frame_apply(stack, a->via);
        }
        ei_x_encode_empty_list(stack);
        return;
    }
    case BL_AP_BADFUN:
        ei_x_encode_tuple_header(reason, 2);
        ei_x_encode_atom(reason, "badfun");
        append_term(reason, b, a->fun_at);
        break;
    case BL_AP_BADARITY:
        ei_x_encode_tuple_header(reason, 2);
        ei_x_encode_atom(reason, "badarity");
        ei_x_encode_tuple_header(reason, 2);
        append_term(reason, b, a->fun_at);
        append_term(reason, b, a->args_at);
        break;
    default: /* BL_AP_LIMIT */
        ei_x_encode_atom(reason, "system_limit");
        break;
    }
    /* badfun, badarity, system_limit: raised by apply itself */
    n = suffix_len(a, trimmed);
    ei_x_encode_list_header(stack, n ? n : 1);
    if (n)
        suffix(stack, a, trimmed);
    else
        frame_apply(stack, a->via);
    ei_x_encode_empty_list(stack);
}

void bl__apply_fn_stack(const bl_apply *a, int trimmed, ei_x_buff *stack)
{
    int n = suffix_len(a, trimmed);
    ei_x_encode_list_header(stack, 1 + n);
    ei_x_encode_tuple_header(stack, 4);
    encode_name(stack, a->mod);
    encode_name(stack, a->fun);
    ei_x_encode_long(stack, a->arity);
    ei_x_encode_empty_list(stack);
    if (n) suffix(stack, a, trimmed);
    ei_x_encode_empty_list(stack);
}

void bl__apply_bif_stack(const bl_apply *a, const char *b, int trimmed, ei_x_buff *stack)
{
    int n = suffix_len(a, trimmed);
    ei_x_encode_list_header(stack, 1 + n);
    ei_x_encode_tuple_header(stack, 4);
    encode_name(stack, a->mod);
    encode_name(stack, a->fun);
    append_term(stack, b, a->args_at);
    ei_x_encode_list_header(stack, 1); /* [{error_info, #{module => erl_erts_errors}}] */
    ei_x_encode_tuple_header(stack, 2);
    ei_x_encode_atom(stack, "error_info");
    ei_x_encode_map_header(stack, 1);
    ei_x_encode_atom(stack, "module");
    ei_x_encode_atom(stack, "erl_erts_errors");
    ei_x_encode_empty_list(stack);
    if (n) suffix(stack, a, trimmed);
    ei_x_encode_empty_list(stack);
}

/* erlang:error/1,2 and throw/1 are tail calls of whatever applied them: BEAM's stack shows the
 * request's own call with its arguments ({erlang, apply, [erlang, error, [x]], []} through
 * apply/3), or, in a spawned process, the frame the spawn started from. */
void bl__apply_raise_stack(const bl_apply *a, const char *b, int trimmed, ei_x_buff *stack)
{
    ei_x_encode_list_header(stack, 1);
    ei_x_encode_tuple_header(stack, 4);
    if (trimmed) {
        int f = bl__term_end(b, 0), e = f < 0 ? -1 : bl__term_end(b, f);
        append_term(stack, b, 0);
        append_term(stack, b, f);
        append_term(stack, b, e);
    } else if (a->hop == 2) {
        ei_x_encode_atom(stack, "erlang");
        ei_x_encode_atom(stack, "apply");
        ei_x_encode_long(stack, 2);
    } else {
        ei_x_encode_atom(stack, "erts_internal");
        ei_x_encode_atom(stack, "dist_spawn_init");
        ei_x_encode_long(stack, 1);
    }
    ei_x_encode_empty_list(stack);
    ei_x_encode_empty_list(stack);
}
