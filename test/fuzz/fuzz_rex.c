/* fuzz_rex.c - libFuzzer target for what the rex server and spawn_request read from the wire:
 * the rex request decoder (c_src/otp/rex.c) in its three forms (a gen_server call's body, a
 * cast's, a plain message) and the resolution of apply(M, F, A) through erlang:apply/2,3 and
 * funs (c_src/otp/apply.c), with the error terms it encodes. Any term bl_term_check accepts
 * (version byte first, as the runtime delivers it); a tuple of 3 or more elements is also
 * resolved as apply(E1, E2, E3). Checks: every offset stays inside the term, a resolved call's
 * arity is its argument list's length, and every reason and stack encoded is a term
 * bl_term_check accepts, the stack a proper list. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "dist/term.h"
#include "runtime/internal.h"

static void check_term(const ei_x_buff *x, int want_list)
{
    size_t end = 0;
    if (x->index <= 0 || bl_term_check(x->buff, (size_t)x->index, &end) != 0 ||
        end != (size_t)x->index)
        abort();
    if (want_list && bl__list_len(x->buff, 0) < 0) abort();
}

static void resolve(const char *b, size_t size, int m, int f, int a)
{
    bl_apply ap;
    int kind = bl__apply_resolve(b, m, f, a, &ap);
    if (kind < BL_AP_CALL || kind > BL_AP_LIMIT || kind != ap.kind) abort();
    if (ap.args_at < 0 || (size_t)ap.args_at >= size) abort();
    if (kind == BL_AP_CALL && ap.arity != bl__list_len(b, ap.args_at)) abort();
    if (ap.depth > 0 && (ap.via != 2 && ap.via != 3)) abort();
    for (int trimmed = 0; trimmed < 2; trimmed++) {
        ei_x_buff r, s;
        ei_x_new(&r);
        ei_x_new(&s);
        bl__apply_error(&ap, b, trimmed, &r, &s);
        check_term(&r, 0);
        check_term(&s, 1);
        ei_x_free(&r);
        ei_x_free(&s);
        if (kind == BL_AP_CALL) {
            ei_x_new(&s);
            bl__apply_fn_stack(&ap, trimmed, &s);
            check_term(&s, 1);
            ei_x_free(&s);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = guard_copy(data, size);
    size_t end = 1; /* after the version byte */
    if (!buf || size < 2 || (unsigned char)buf[0] != 131 || bl_term_check(buf, size, &end) != 0 ||
        end != size)
        return 0;
    for (int form = BL_REX_FORM_CALL; form <= BL_REX_FORM_MSG; form++) {
        bl_rex_req r;
        int kind = bl__rex_decode(buf, 1, form, &r);
        if (kind != r.kind || (kind == BL_REX_BAD && !r.why)) abort();
        if (kind == BL_REX_CALL || kind == BL_REX_BLOCK_CALL || kind == BL_REX_CAST ||
            kind == BL_REX_PLAIN_CALL) {
            if (r.mfa_at <= 1 || r.mfa_end <= r.mfa_at || (size_t)r.mfa_end > size) abort();
            int f = bl__term_end(buf, r.mfa_at), a = bl__term_end(buf, f);
            if (bl__term_end(buf, a) != r.mfa_end) abort();
            resolve(buf, size, r.mfa_at, f, a);
        }
        if ((kind == BL_REX_SBCAST || kind == BL_REX_SEND) &&
            !(r.from_at > 1 && r.name_at > r.from_at && r.msg_at > r.name_at &&
              r.msg_end > r.msg_at && (size_t)r.msg_end <= size))
            abort();
    }
    int i = 1, ar;
    if (ei_decode_tuple_header(buf, &i, &ar) == 0 && ar >= 3) {
        int f = bl__term_end(buf, i), a = bl__term_end(buf, f);
        resolve(buf, size, i, f, a);
    }
    return 0;
}
