/* fuzz_disthdr.c - libFuzzer target for distribution headers, the atom cache and fragment
 * reassembly (c_src/dist/disthdr.c, c_src/dist/atomcache.c).
 *
 * The input is a byte stream of frames as read from a distribution socket (4-byte length, then
 * the payload; at most 1 MiB each), fed in order to one connection's header state, so cache
 * entries and fragment sequences carry over between frames, as on a real connection. Each frame
 * is passed in a buffer of exactly its size (ASan flags any over-read). Every message that comes
 * out must be a pass-through frame whose terms bl_term_check accepts end to end and that
 * bl_ctl_decode can take, and bl_ctl_decode_valid (which skips the walk) must decode it exactly as
 * bl_ctl_decode does. And our own encoder must carry it unchanged: it is re-encoded with
 * bl_dh_send (atom cache and fragments on), the frames pumped out and decoded by a second
 * receiver, which must deliver exactly the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/control.h"
#include "dist/disthdr.h"
#include "dist/frame.h"
#include "dist/term.h"
#include "fuzz_common.h"

#define MAX_FRAME (1u << 20)
#define MAX_MSG (1u << 20)

static void die(const char *what, size_t a, size_t b)
{
    fprintf(stderr, "fuzz_disthdr: %s (%zu, %zu)\n", what, a, b);
    abort();
}

static bl_dh_conn *tx, *rx2;
static bl_dh_scratch *txs, *rx2s;

/* Send ctl+msg (version bytes included) through tx and receive it on rx2: the same bytes. */
static void roundtrip(const char *out, size_t olen, size_t ctl_end)
{
    /* out: 'p', 131 ctl, [131 msg]; rebuild exact-size copies of both terms */
    size_t cl = ctl_end - 1, ml = olen - ctl_end;
    char *ctl = malloc(cl), *msg = ml ? malloc(ml) : NULL;
    if (!ctl || (ml && !msg)) die("oom", 0, 0);
    memcpy(ctl, out + 1, cl);
    if (ml) memcpy(msg, out + ctl_end, ml);
    bl_sendq q;
    bl_sendq_init(&q);
    if (bl_dh_send(tx, txs, &q, ctl, cl, msg, ml, SIZE_MAX, 1) != 0) die("send failed", cl, ml);
    int delivered = 0;
    for (int guard = 0; guard < 100000; guard++) {
        if (bl_dh_pump(tx, txs, &q, 1) < 0) die("pump failed", 0, 0);
        if (bl_sendq_bytes(&q) == 0) break;
        struct iovec iov[1];
        /* frames never span chunks: take them chunk by chunk */
        while (bl_sendq_bytes(&q) > 0 && bl_sendq_iov(&q, iov, 1) == 1) {
            const char *b = iov[0].iov_base;
            size_t n = iov[0].iov_len, i = 0;
            while (i < n) {
                size_t pl;
                if (bl_frame_next(b + i, n - i, 2 * MAX_MSG, &pl) != BL_FRAME_DATA)
                    die("encoder frame", i, n);
                char *f = malloc(pl);
                if (!f) die("oom", 0, 0);
                memcpy(f, b + i + 4, pl);
                const char *o, *why;
                size_t ol;
                int rc = bl_dh_recv(rx2, rx2s, f, pl, 2 * MAX_MSG, &o, &ol, &why);
                if (rc < 0) die(why, pl, (size_t)-rc);
                if (rc == BL_DH_MSG) {
                    if (delivered++ || ol != olen || memcmp(o, out, olen) != 0)
                        die("roundtrip differs", ol, olen);
                }
                free(f);
                i += 4 + pl;
            }
            bl_sendq_consume(&q, n);
        }
    }
    if (delivered != 1 || bl_dh_pending(tx)) die("roundtrip lost the message", delivered, 0);
    bl_sendq_free(&q);
    free(ctl);
    free(msg);
}

/* bl_ctl_decode_valid on a rewritten payload must say exactly what bl_ctl_decode says. */
static void same_decode(const char *out, size_t olen, size_t ctl_end, int rc, const bl_ctl *c)
{
    bl_ctl v;
    int rv = bl_ctl_decode_valid(fuzz_node(), out, olen, ctl_end, &v);
    if (rv != rc) die("bl_ctl_decode_valid differs (rc)", (size_t)-rv, (size_t)-rc);
    if (rc != BL_CTL_OK) return;
    if (memcmp(&v, c, offsetof(bl_ctl, from)) != 0 || strcmp(v.toname, c->toname) != 0 ||
        (c->has_from && !bl_pid_equal(&v.from, &c->from)) ||
        (c->has_to && !bl_pid_equal(&v.to, &c->to)))
        die("bl_ctl_decode_valid differs (fields)", (size_t)c->op, 0);
}

static void check_out(const bl_dh_scratch *s, const char *out, size_t olen)
{
    if (olen < 3 || out[0] != 'p' || (unsigned char)out[1] != 131) die("not pass-through", olen, 0);
    size_t i = 2;
    if (bl_term_check(out, olen, &i) != 0) die("control not valid", i, olen);
    size_t ctl_end = i;
    if (bl_dh_ctl_end(s) != ctl_end) die("bl_dh_ctl_end is wrong", bl_dh_ctl_end(s), ctl_end);
    if (i < olen) {
        if ((unsigned char)out[i] != 131) die("no version before message", i, olen);
        i++;
        if (bl_term_check(out, olen, &i) != 0 || i != olen) die("message not valid", i, olen);
    }
    bl_ctl c;
    int rc = bl_ctl_decode(fuzz_node(), out, olen, &c);
    if (rc != BL_CTL_OK && rc != BL_CTL_EUNKNOWN && rc != BL_CTL_EMALFORMED)
        die("bad ctl rc", (size_t)-rc, 0);
    same_decode(out, olen, ctl_end, rc, &c);
    roundtrip(out, olen, ctl_end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bl_dh_conn *dc = bl_dh_conn_new(0, NULL);
    bl_dh_scratch *s = bl_dh_scratch_new();
    tx = bl_dh_conn_new(BL_DH_DFLAG_DIST_HDR_ATOM_CACHE | BL_DH_DFLAG_FRAGMENTS, NULL);
    rx2 = bl_dh_conn_new(0, NULL);
    txs = bl_dh_scratch_new();
    rx2s = bl_dh_scratch_new();
    if (!dc || !s || !tx || !rx2 || !txs || !rx2s) die("oom", 0, 0);
    const char *buf = (const char *)data;
    size_t pos = 0;
    while (pos < size) {
        size_t pl = 0;
        int r = bl_frame_next(buf + pos, size - pos, MAX_FRAME, &pl);
        if (r == BL_FRAME_MORE || r == BL_FRAME_TOOBIG) break;
        if (r == BL_FRAME_TICK) {
            pos += 4;
            continue;
        }
        char *p = malloc(pl);
        if (!p) die("oom", 0, 0);
        memcpy(p, buf + pos + 4, pl);
        pos += 4 + pl;
        const char *out = NULL, *why = NULL;
        size_t olen = 0;
        int rc = bl_dh_recv(dc, s, p, pl, MAX_MSG, &out, &olen, &why);
        free(p);
        if (rc == BL_DH_MSG) {
            check_out(s, out, olen);
        } else if (rc < 0) {
            if (!why) die("error without a reason", (size_t)-rc, 0);
            break; /* the connection would be dropped here */
        } else if (rc != BL_DH_NONE) {
            die("bad rc", (size_t)rc, 0);
        }
    }
    bl_dh_conn_free(dc);
    bl_dh_scratch_free(s);
    bl_dh_conn_free(tx);
    bl_dh_conn_free(rx2);
    bl_dh_scratch_free(txs);
    bl_dh_scratch_free(rx2s);
    return 0;
}
