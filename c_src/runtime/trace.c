/* trace.c - correlation ids (include/beamlet/trace.h): the W3C traceparent codec, new ids from
 * the kernel's CSPRNG, and the node's current context (trace and seq_trace token) that is set
 * while a process handles one message and cleared when its handler returns.
 *
 * Where the context comes from and goes to: runtime/proc.c (deliveries, local messages, the
 * _TT sends), otp/gen.c (the trace in a gen_server call's tag, the reply of a call made under a
 * trace), runtime/seqtrace.c (OTP's token rules), runtime/log.c (trace_id in every line). */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

static const char HEX[] = "0123456789abcdef";

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

/* n bytes from 2n lowercase hex digits */
static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void tohex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
}

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

int bl_trace_parse(const char *s, size_t len, bl_trace *out)
{
    if (!out) return BL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!s || len < 55) return BL_EINVAL;
    uint8_t ver;
    if (unhex(s, &ver, 1) < 0 || ver == 0xff || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return BL_EINVAL;
    if (ver == 0 && len != 55) return BL_EINVAL;
    if (ver > 0 && len > 55 && s[55] != '-') return BL_EINVAL;
    bl_trace t = {0};
    if (unhex(s + 3, t.trace_id, 16) < 0 || unhex(s + 36, t.span_id, 8) < 0 ||
        unhex(s + 53, &t.flags, 1) < 0)
        return BL_EINVAL;
    if (all_zero(t.trace_id, 16) || all_zero(t.span_id, 8)) return BL_EINVAL;
    if (ver > 0) t.flags &= BL_TRACE_SAMPLED; /* unknown flags of a later version: not ours */
    t.valid = 1;
    *out = t;
    return BL_OK;
}

int bl_trace_format(const bl_trace *t, char *out, size_t cap)
{
    if (!t || !t->valid || !out || cap < BL_TRACEPARENT_LEN) return BL_EINVAL;
    memcpy(out, "00-", 3);
    tohex(t->trace_id, 16, out + 3);
    out[35] = '-';
    tohex(t->span_id, 8, out + 36);
    out[52] = '-';
    tohex(&t->flags, 1, out + 53);
    out[55] = 0;
    return BL_OK;
}

int bl_trace_id_hex(const bl_trace *t, char *out, size_t cap)
{
    if (!t || !t->valid || !out || cap < BL_TRACE_ID_LEN) return BL_EINVAL;
    tohex(t->trace_id, 16, out);
    out[32] = 0;
    return BL_OK;
}

int bl_trace_id_valid(const char *s)
{
    uint8_t id[16];
    return s && strlen(s) == 32 && unhex(s, id, 16) == 0 && !all_zero(id, 16);
}

/* The kernel's CSPRNG; should it not be ready (early boot: getrandom would block), a mix of
 * the clock, the pid and the address of a local, so an id is still very likely unique. */
static void random_bytes(uint8_t *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, GRND_NONBLOCK);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        break;
    }
    if (got == n) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long x = ((unsigned long long)tv.tv_sec << 20) ^ (unsigned long long)tv.tv_usec ^
                           ((unsigned long long)getpid() << 40) ^
                           (unsigned long long)(uintptr_t)&tv;
    for (size_t i = got; i < n; i++) {
        x += 0x9e3779b97f4a7c15ull;
        unsigned long long z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        out[i] = (uint8_t)(z ^ (z >> 31));
    }
}

static void new_span(uint8_t span[8])
{
    do
        random_bytes(span, 8);
    while (all_zero(span, 8));
}

int bl_trace_new(bl_trace *out, uint8_t flags)
{
    if (!out) return BL_EINVAL;
    memset(out, 0, sizeof(*out));
    do
        random_bytes(out->trace_id, 16);
    while (all_zero(out->trace_id, 16));
    new_span(out->span_id);
    out->flags = flags;
    out->valid = 1;
    return BL_OK;
}

int bl_trace_from_id(const char *id, uint8_t flags, bl_trace *out)
{
    if (!out) return BL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!bl_trace_id_valid(id)) return BL_EINVAL;
    unhex(id, out->trace_id, 16);
    new_span(out->span_id);
    out->flags = flags;
    out->valid = 1;
    return BL_OK;
}

int bl_trace_child(const bl_trace *parent, bl_trace *out)
{
    if (!parent || !parent->valid || !out) return BL_EINVAL;
    bl_trace t = *parent;
    new_span(t.span_id);
    *out = t;
    return BL_OK;
}

const bl_trace *bl_trace_current(const bl_node *n)
{
    return n && n->ctx.trace.valid ? &n->ctx.trace : NULL;
}

void bl_trace_set(bl_node *n, const bl_trace *t)
{
    if (!n) return;
    if (t && t->valid)
        n->ctx.trace = *t;
    else
        memset(&n->ctx.trace, 0, sizeof(n->ctx.trace));
}

int bl_trace_begin(bl_node *n, const char *traceparent, uint8_t new_flags, bl_trace *out)
{
    bl_trace parent, t;
    int taken = traceparent && bl_trace_parse(traceparent, strlen(traceparent), &parent) == BL_OK;
    if (taken)
        bl_trace_child(&parent, &t);
    else
        bl_trace_new(&t, new_flags);
    bl_trace_set(n, &t);
    if (out) *out = t;
    return taken;
}

int bl_trace_sampled(const bl_node *n)
{
    return n && n->ctx.trace.valid && (n->ctx.trace.flags & BL_TRACE_SAMPLED) && n->trace_hook;
}

void bl_trace_event(bl_node *n, const char *what, const char *detail_json)
{
    if (!n || !what || !n->ctx.trace.valid || !(n->ctx.trace.flags & BL_TRACE_SAMPLED) ||
        !n->trace_hook)
        return;
    n->trace_hook(n, &n->ctx.trace, what, detail_json, n->trace_hook_ud);
}

void bl__trace_set_hook(bl_node *n, bl__trace_hook_fn fn, void *ud)
{
    n->trace_hook = fn;
    n->trace_hook_ud = ud;
}

/* ---- the context of one delivery ---- */

void bl__ctx_enter(bl_node *n, bl_proc *p, bl__ctx_save *s)
{
    s->nested = n->ctx.proc != NULL || n->ctx.trace.valid || n->ctx.tok.valid;
    if (s->nested) s->saved = n->ctx;
    n->ctx.trace.valid = 0;
    n->ctx.tok.valid = 0;
    n->ctx.proc = p;
}

void bl__ctx_leave(bl_node *n, bl__ctx_save *s)
{
    if (s->nested) {
        n->ctx = s->saved;
        return;
    }
    n->ctx.trace.valid = 0;
    n->ctx.tok.valid = 0;
    n->ctx.proc = NULL;
}
