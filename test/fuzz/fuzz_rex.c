/* fuzz_rex.c - libFuzzer target for what the rex server and spawn_request read from the wire:
 * the rex request decoder (c_src/otp/rex.c) in its three forms (a gen_server call's body, a
 * cast's, a plain message) and the resolution of apply(M, F, A) through erlang:apply/2,3 and
 * funs (c_src/otp/apply.c), with the error terms it encodes. Any term bl_term_check accepts
 * (version byte first, as the runtime delivers it); a tuple of 3 or more elements is also
 * resolved as apply(E1, E2, E3). Checks: every offset stays inside the term, a resolved call's
 * arity is its argument list's length, and every reason and stack encoded is a term
 * bl_term_check accepts, the stack a proper list. The node's built-in exports (otp/bif.c,
 * otp/pinfo.c: process_info/1,2, error/1,2, whereis/1, ...) run on the term as their argument
 * list, and process_info on a live process with the term as its item (list): every answer of any
 * class is a term bl_term_check accepts. */
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
            ei_x_new(&s);
            bl__apply_bif_stack(&ap, b, trimmed, &s);
            check_term(&s, 1);
            ei_x_free(&s);
        }
    }
}

/* erlang:error/throw's stack reads the request's M, F, A from the start of its buffer, as
 * spawn.c holds them: resolve a copy that starts there. */
static void raise_stacks(const char *b, int m, int a)
{
    int e = bl__term_end(b, a);
    if (e <= m) return;
    char *c = malloc((size_t)(e - m)); /* guard_copy's one region holds b */
    if (!c) return;
    memcpy(c, b + m, (size_t)(e - m));
    int f = bl__term_end(c, 0), ar = bl__term_end(c, f);
    bl_apply ap;
    if (bl__apply_resolve(c, 0, f, ar, &ap) == BL_AP_CALL) {
        for (int trimmed = 0; trimmed < 2; trimmed++) {
            ei_x_buff s;
            ei_x_new(&s);
            bl__apply_raise_stack(&ap, c, trimmed, &s);
            check_term(&s, 1);
            ei_x_free(&s);
        }
    }
    free(c);
}

static void invoke(bl_proc *self, const char *mod, const char *fun, const char *args, int at)
{
    int i = at, n, type, size;
    if (ei_get_type(args, &i, &type, &size) < 0 || (type != ERL_LIST_EXT && type != ERL_NIL_EXT) ||
        ei_decode_list_header(args, &i, &n) < 0)
        return;
    const bl_export_ent *e = bl_export_find(bl_proc_node(self), mod, fun, n);
    if (!e) return;
    ei_x_buff r;
    ei_x_new(&r);
    int kind = bl_export_invoke(e, self, args, at, &r);
    if (kind < BL_FN_RETURN || kind > BL_FN_ERROR) abort();
    check_term(&r, 0);
    ei_x_free(&r);
}

static void builtins(const char *b, int at)
{
    static bl_proc *self;
    bl_node *n = fuzz_node();
    if (!self && (bl_bifs_start(n) != BL_OK || bl_spawn(n, "fuzz_self", NULL, NULL, &self) != BL_OK))
        abort();
    static const char *const FNS[][2] = {
        {"erlang", "process_info"}, {"erlang", "error"},  {"erlang", "exit"},
        {"erlang", "throw"},        {"erlang", "whereis"}, {"erlang", "system_info"},
        {"erlang", "memory"},       {"erlang", "nodes"}};
    for (size_t k = 0; k < sizeof(FNS) / sizeof(FNS[0]); k++)
        invoke(self, FNS[k][0], FNS[k][1], b, at);
    /* process_info(Self, Term): the item parser on a live, registered process */
    int e = bl__term_end(b, at);
    if (e <= at) return;
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_list_header(&a, 2);
    bl_x_encode_pid(&a, bl_self(self));
    ei_x_append_buf(&a, b + at, e - at);
    ei_x_encode_empty_list(&a);
    invoke(self, "erlang", "process_info", a.buff, 0);
    ei_x_free(&a);
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
        raise_stacks(buf, i, a);
    }
    builtins(buf, 1);
    return 0;
}
