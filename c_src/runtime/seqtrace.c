/* seqtrace.c - OTP's seq_trace tokens through a C process.
 *
 * A token arrives in the control tuple of the _TT messages (SEND_TT, REG_SEND_TT, ALIAS_SEND_TT,
 * ...) as {Flags, Label, Serial, From, LastCnt}. While the receiving process handles that message
 * the token is current (n->ctx.tok); whatever the process sends meanwhile (a reply, a forward, a
 * call, a local message) goes out with the token, as the _TT variant. The serials follow the
 * rules of erts: on receipt the process's clock becomes max(clock, Serial) and the token's serial
 * is Serial; each send sets LastCnt to the token's serial, then Serial to ++clock, From to the
 * sender. Unlike a BEAM process a C process does not keep the token after that handler returns
 * (its next message starts without one), and it reports no trace events itself: the tracer of
 * the BEAM nodes sees the messages the C node sends and receives (docs/tracing.md). */
#include "internal.h"
#include "../dist/term.h"

#include <string.h>

int bl__seqtok_decode(const char *buf, size_t off, size_t len, bl_seqtok *out)
{
    out->valid = 0;
    int i = (int)off, ar, type, size;
    if (ei_decode_tuple_header(buf, &i, &ar) < 0 || ar != 5) return -1;
    int fl = i;
    long flags;
    if (ei_decode_long(buf, &i, &flags) < 0 || flags < 0) return -1;
    size_t j = (size_t)i; /* the label: any term, already checked by bl_term_check */
    if (bl_term_check(buf, off + len, &j) != 0) return -1;
    i = (int)j;
    if ((size_t)(i - fl) > sizeof(out->fl)) return -1; /* a huge label: not carried */
    int fl_end = i;
    unsigned long long serial, lastcnt;
    erlang_pid from;
    if (ei_get_type(buf, &i, &type, &size) < 0 || ei_decode_ulonglong(buf, &i, &serial) < 0 ||
        ei_decode_pid(buf, &i, &from) < 0 || ei_decode_ulonglong(buf, &i, &lastcnt) < 0 ||
        (size_t)i != off + len)
        return -1;
    memcpy(out->fl, buf + fl, (size_t)(fl_end - fl));
    out->fl_len = fl_end - fl;
    out->serial = serial;
    out->valid = 1;
    return 0;
}

void bl__seqtok_received(bl_node *n, bl_proc *p, const bl_seqtok *t)
{
    if (!t || !t->valid) return;
    n->ctx.tok = *t;
    unsigned long long *clock = p ? &p->st_clock : &n->st_clock;
    if (*clock < t->serial) *clock = t->serial;
}

/* The send rule: the serials of the token for one send from the current context. */
static void next_serials(bl_node *n, unsigned long long *serial, unsigned long long *lastcnt)
{
    bl_proc *p = n->ctx.proc && !n->ctx.proc->dead ? n->ctx.proc : NULL;
    unsigned long long *clock = p ? &p->st_clock : &n->st_clock;
    *lastcnt = n->ctx.tok.serial;
    *serial = ++*clock;
    n->ctx.tok.serial = *serial;
}

int bl__seqtok_encode_send(bl_node *n, const bl_pid *sender, ei_x_buff *x)
{
    if (!n->ctx.tok.valid) return 0;
    unsigned long long serial, lastcnt;
    next_serials(n, &serial, &lastcnt);
    if (!sender) sender = n->ctx.proc ? &n->ctx.proc->pid : NULL;
    if (!sender) return 0;
    if (ei_x_encode_tuple_header(x, 5) < 0 ||
        ei_x_append_buf(x, n->ctx.tok.fl, n->ctx.tok.fl_len) < 0 ||
        ei_x_encode_ulonglong(x, serial) < 0 || bl_x_encode_pid(x, sender) < 0 ||
        ei_x_encode_ulonglong(x, lastcnt) < 0)
        return -1;
    return 1;
}

int bl__seqtok_for_local(bl_node *n, bl_seqtok *out)
{
    if (!n->ctx.tok.valid) return 0;
    unsigned long long serial, lastcnt;
    next_serials(n, &serial, &lastcnt);
    *out = n->ctx.tok;
    out->serial = serial;
    return 1;
}
