/* fuzz_pg.c - libFuzzer target for pg's OTP-protocol decoders (c_src/services/pg.c): what a BEAM
 * node's pg scope (or anything holding the cookie) sends to ours - {discover, Peer},
 * {'$gen_cast', {sync, Peer, [{Group, [Pid]}]}}, {join, Peer, Group, PidOrPids},
 * {leave, Peer, PidOrPids, [Group]} - and the calls a scope answers. An input is one term that
 * bl_term_check accepts (version byte first, as the runtime delivers): a list is delivered as
 * that many messages in order (so a discover can come before the sync, join and leave that need
 * its peer), anything else as one message; the last message is delivered twice (a repeated
 * join or leave). Each input gets a fresh scope, ended afterwards: every peer, group and event
 * it built is freed (LeakSanitizer checks). The node is not started and refuses every outgoing
 * connection (an allow-list no node is on), so the syncs and discovers it answers with are
 * dropped without dialing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "dist/term.h"
#include "runtime/internal.h"
#include "beamlet/config.h"
#include "beamlet/pg.h"

#define SCOPE "fz_scope"

static bl_node *N;

static void deliver(bl_proc *p, const char *term, size_t len)
{
    char *m = malloc(len + 1);
    if (!m) return;
    m[0] = (char)131;
    memcpy(m + 1, term, len);
    bl_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.buf = m;
    msg.index = 1;
    msg.len = (int)len + 1;
    bl_proc_deliver(p, &msg);
    bl_localq_drain(N); /* what the scope sent to local processes */
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!N) {
        bl_config cfg;
        bl_config_init(&cfg);
        snprintf(cfg.name, sizeof(cfg.name), "fz@localhost");
        cfg.log_level = BL_LOG_ERROR;
        char err[256];
        if (bl_config_set(&cfg, "allow", "nobody@nowhere", err, sizeof(err)) != BL_OK ||
            bl_node_new(&cfg, &N) != BL_OK)
            abort();
    }
    if (size < 2 || size > 256 * 1024 || data[0] != 131) return 0;
    char *buf = guard_copy(data, size);
    size_t end = 1;
    if (!buf || bl_term_check(buf, size, &end) != 0 || end != size) return 0;
    if (bl_pg_start_scope(N, SCOPE) != BL_OK) abort();
    bl_proc *p = bl_whereis(N, SCOPE);
    if (!p) abort();
    int idx = 1, type, n;
    const char *last = NULL;
    size_t last_len = 0;
    if (ei_get_type(buf, &idx, &type, &n) == 0 && type == ERL_LIST_EXT &&
        ei_decode_list_header(buf, &idx, &n) == 0) {
        for (int i = 0; i < n && i < 64; i++) {
            /* each element by the runtime's walk, as the input was checked: ei_skip_term
             * can end an element early, which would deliver a cut-off term */
            size_t start = (size_t)idx, stop = start;
            if (bl_term_check(buf, size, &stop) != 0) break;
            idx = (int)stop;
            last = buf + start;
            last_len = stop - start;
            deliver(p, last, last_len);
        }
    } else {
        last = buf + 1;
        last_len = size - 1;
        deliver(p, last, last_len);
    }
    if (last) deliver(p, last, last_len);
    /* what the scope holds must be readable through the API */
    bl_pid out[16];
    (void)bl_pg_get_members(N, SCOPE, "g", 1, out, 16);
    bl_exit(p, "shutdown");
    bl_zombies_free(N);
    bl_localq_drain(N);
    return 0;
}
