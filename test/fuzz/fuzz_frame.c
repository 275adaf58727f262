/* fuzz_frame.c - libFuzzer target for the receive path: frame splitting (c_src/dist/frame.c) and
 * control message decoding (c_src/dist/control.c).
 *
 * The input is a byte stream as read from a distribution socket. Each data frame (max 1 MiB) is
 * copied into a buffer of exactly its size, so ASan flags any read past the frame, and decoded
 * with bl_ctl_decode, then again from a copy that ends at a PROT_NONE page (over-reads inside
 * uninstrumented libc). When decoding succeeds, the offsets it returns must lie inside the frame,
 * and the message and reason terms - which later code hands to ei_decode_* - are decoded with
 * ei_print_term / ei_s_print_term, which must end exactly where bl_ctl_decode said when they
 * succeed. (They may reject a term bl_term_check accepted, e.g. a UTF-8 atom ei_print_term cannot
 * show in Latin-1; BL_FUZZ_STRICT=1 aborts on that too. See fuzz_term.c, and fuzz_common.h for
 * libei defects worked around.) */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ei.h>

#include "dist/control.h"
#include "dist/frame.h"
#include "fuzz_common.h"

#define MAX_FRAME (1u << 20)

static FILE *devnull;
static int strict = -1;

static void die(const char *what, size_t a, size_t b)
{
    fprintf(stderr, "fuzz_frame: %s (%zu, %zu)\n", what, a, b);
    abort();
}

/* Print the term at [off, end) of p both ways; both must stop at end. */
static void print_term_at(const char *p, size_t off, size_t end, const char *what)
{
    int idx = (int)off;
    if (has_fun(p, &idx, 0)) return; /* see fuzz_common.h */
    idx = (int)off;
    if (ei_print_term(devnull, p, &idx) >= 0) {
        if ((size_t)idx != end) die(what, (size_t)idx, end);
    } else if (strict) {
        die(what, off, end);
    }
    if (end - off >= S_PRINT_MAX) return; /* see fuzz_common.h */
    char *s = NULL;
    idx = (int)off;
    int r = ei_s_print_term(&s, p, &idx);
    free(s);
    if (r >= 0) {
        if ((size_t)idx != end) die(what, (size_t)idx, end);
    } else if (strict) {
        die(what, off, end);
    }
}

static void check_pid(const bl_pid *pid)
{
    if (!bl_pid_node(pid)[0] || strlen(bl_pid_node(pid)) >= MAXATOMLEN_UTF8)
        die("pid node empty or too long", 0, 0);
}

static void decode_one(char *p, size_t len)
{
    bl_ctl c;
    int rc = bl_ctl_decode(fuzz_node(), p, len, &c);
    if (rc != BL_CTL_OK && rc != BL_CTL_EMALFORMED && rc != BL_CTL_EUNKNOWN)
        die("bad return code", (size_t)-rc, 0);
    if (rc == BL_CTL_OK) {
        if (!bl_ctl_name(c.op) || !strcmp(bl_ctl_name(c.op), "UNKNOWN"))
            die("OK for unknown op", 0, 0);
        if (c.has_from) check_pid(&c.from);
        if (c.has_to) check_pid(&c.to);
        if (!memchr(c.toname, 0, sizeof(c.toname))) die("toname not terminated", 0, 0);
        if (c.has_ref && (c.ref.len < 0 || c.ref.len > 5)) die("ref len", (size_t)c.ref.len, 0);
        if (c.has_mfa) { /* SPAWN_REQUEST: names terminated, options inside the control term */
            if (!memchr(c.mod, 0, sizeof(c.mod)) || !memchr(c.fun, 0, sizeof(c.fun)))
                die("mfa not terminated", 0, 0);
            if (c.arity < 0 || c.arity > 255) die("arity", (size_t)c.arity, 0);
            if (c.opts_len == 0 || c.opts_off + c.opts_len > len || !c.has_msg)
                die("spawn options out of the frame", c.opts_off, c.opts_len);
            print_term_at(p, c.opts_off, c.opts_off + c.opts_len, "spawn options");
        }
        if (c.has_reason) {
            if (c.reason_off < 3 || c.reason_len == 0 || c.reason_off + c.reason_len > len)
                die("reason out of the frame", c.reason_off, c.reason_len);
            print_term_at(p, c.reason_off, c.reason_off + c.reason_len, "reason");
        }
        if (c.has_msg) {
            if (c.msg_off < 4 || c.msg_off >= c.msg_end || c.msg_end != len)
                die("message out of the frame", c.msg_off, c.msg_end);
            if ((unsigned char)p[c.msg_off - 1] != 131)
                die("no version before message", c.msg_off, 0);
            print_term_at(p, c.msg_off, c.msg_end, "message");
            /* also as a user would: in a buffer that ends with the message */
            int idx = 0;
            size_t n = c.msg_end - c.msg_off;
            char *m = malloc(n);
            if (m) {
                memcpy(m, p + c.msg_off, n);
                if (ei_skip_term(m, &idx) == 0) {
                    /* ei_skip_term may stop early on a bad inner term (see fuzz_term.c) */
                    if ((size_t)idx > n || (strict && (size_t)idx != n))
                        die("message skip", (size_t)idx, n);
                } else if (strict) {
                    die("message skip", (size_t)idx, n);
                }
                free(m);
            }
        }
    }
}

static void one_frame(const char *payload, size_t len)
{
    char *p = malloc(len);
    if (!p) return;
    memcpy(p, payload, len);
    decode_one(p, len);
    free(p);
    char *g = guard_copy(payload, len);
    if (g) decode_one(g, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull) devnull = fopen("/dev/null", "w");
    if (strict < 0) strict = getenv("BL_FUZZ_STRICT") && atoi(getenv("BL_FUZZ_STRICT"));
    const char *buf = (const char *)data;
    size_t pos = 0;
    while (pos < size) {
        size_t pl = 0;
        int r = bl_frame_next(buf + pos, size - pos, MAX_FRAME, &pl);
        if (r == BL_FRAME_MORE) {
            if (size - pos >= 4 && size - pos - 4 >= pl)
                die("MORE with a whole frame", pl, size - pos);
            break;
        }
        if (r == BL_FRAME_TOOBIG) {
            if (pl <= MAX_FRAME) die("TOOBIG under max", pl, MAX_FRAME);
            break;
        }
        if (r == BL_FRAME_TICK) {
            if (pl != 0) die("tick with length", pl, 0);
            pos += 4;
            continue;
        }
        if (r != BL_FRAME_DATA || pl == 0 || pl > MAX_FRAME || pl > size - pos - 4)
            die("bad DATA", pl, size - pos);
        one_frame(buf + pos + 4, pl);
        pos += 4 + pl;
    }
    return 0;
}
