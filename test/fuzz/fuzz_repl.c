/* fuzz_repl.c - libFuzzer target for the replicated-table layer's decoder (c_src/services/
 * repl.c): any term that bl_term_check accepts (version byte first, as corpus/repl/ holds;
 * the runtime delivers nothing else) as a message to a table of
 * {Key, Binary} entries, from the owner, from another node and with no sender. Between inputs the
 * owner's bucket is dropped, so every input starts from the same table. Sends are counted, never
 * made (the node is not started). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "dist/term.h"
#include "services/repl.h"

#define PEER "peer@host"

typedef struct fent {
    bl__repl_link link;
    UT_hash_handle hh;
    struct {
        char owner[BL_NODE_LEN];
        long key;
    } k; /* zero padded */
} fent;

static fent *all;
static unsigned nall;

static int f_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_encode_long(x, ((const fent *)l)->k.key) < 0)
        return -1;
    return ei_x_encode_binary(x, "v", 1);
}

static int f_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return ei_x_encode_long(x, ((const fent *)l)->k.key);
}

static fent *ffind(const char *owner, long key)
{
    fent probe, *e = NULL;
    memset(&probe.k, 0, sizeof(probe.k));
    snprintf(probe.k.owner, sizeof(probe.k.owner), "%s", owner);
    probe.k.key = key;
    HASH_FIND(hh, all, &probe.k, sizeof(probe.k), e);
    return e;
}

static int f_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    (void)svc;
    int ar, type, size;
    long key;
    *out = NULL;
    if (ei_decode_tuple_header(buf, idx, &ar) < 0 || ar != 2 ||
        ei_decode_long(buf, idx, &key) < 0 || ei_get_type(buf, idx, &type, &size) < 0 ||
        type != ERL_BINARY_EXT || size > 64 || ei_skip_term(buf, idx) < 0)
        return -1;
    fent *e = ffind(owner, key);
    if (!e) {
        if (nall >= 5000 || !(e = calloc(1, sizeof(*e)))) return 0;
        snprintf(e->k.owner, sizeof(e->k.owner), "%s", owner);
        e->k.key = key;
        HASH_ADD(hh, all, k, sizeof(e->k), e);
        nall++;
    }
    *out = &e->link;
    return 0;
}

static int f_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    (void)svc;
    long key;
    if (ei_decode_long(buf, idx, &key) < 0) return -1;
    fent *e = ffind(owner, key);
    *out = e ? &e->link : NULL;
    return 0;
}

static int f_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    (void)svc;
    (void)why;
    fent *e = (fent *)l;
    if (ffind(e->k.owner, e->k.key) != e) abort(); /* an entry the table does not hold */
    HASH_DEL(all, e);
    free(e);
    nall--;
    return 0;
}

static const bl__repl_ops f_ops = {
    .proc_name = "f_svc",
    .tag_add = "f_add",
    .tag_del = "f_del",
    .tag_sync = "f_sync",
    .tag_want = "f_want",
    .tag_digest = "f_digest",
    .encode = f_encode,
    .encode_key = f_encode_key,
    .upsert = f_upsert,
    .find = f_find,
    .remove = f_remove,
    .tag_ack = "f_ack", /* adds asking for an ack ({f_add, Owner, [E], Seq}) and acks */
};

static bl_node *node;
static bl__repl *repl;
static unsigned long sent;

static int count_send(void *ud, const char *to, const ei_x_buff *x)
{
    (void)ud;
    (void)to;
    sent += x->index > 0;
    return BL_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof cfg.name, "%s", "self@host");
    snprintf(cfg.cookie, sizeof cfg.cookie, "%s", "c");
    cfg.cluster_member = 0;
    cfg.log_level = BL_LOG_ERROR;
    static const bl_proc_ops none = {0};
    bl_proc *p;
    if (bl_node_new(&cfg, &node) != BL_OK || bl_spawn(node, "f_svc", &none, NULL, &p) != BL_OK ||
        !(repl = bl__repl_new(node, p, &f_ops, NULL)))
        abort();
    bl__repl_set_send(repl, count_send, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = guard_copy(data, size);
    size_t end = 1;
    /* what the runtime hands a process: one term that bl_term_check accepted */
    if (!buf || size < 2 || (unsigned char)buf[0] != 131 || bl_term_check(buf, size, &end) != 0)
        return 0;
    static const char *senders[] = {PEER, "other@host", NULL};
    for (int s = 0; s < 3; s++) {
        bl_msg m = {.buf = buf, .index = 1, .len = (int)size, .has_sender = senders[s] != NULL};
        if (senders[s]) (void)bl_pid_make(node, senders[s], 1, 0, 0, &m.sender);
        (void)bl__repl_handle(repl, &m);
        if (bl__repl_count(repl, PEER) + bl__repl_count(repl, "other@host") > nall)
            abort(); /* the buckets count what the table has */
    }
    bl__repl_drop_owner(repl, PEER, "next input");
    bl__repl_drop_owner(repl, "other@host", "next input");
    if (all) abort(); /* every entry went through remove */
    return 0;
}
