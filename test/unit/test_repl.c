/* test_repl.c - the replicated-table layer (c_src/services/repl.c): the wire list codec (flat
 * and chained cells, improper tails) and add/del/sync/digest handling on a test table with 0, 1,
 * 2 and 1,000 entries, duplicates and forged owners, on a node that is never started (no peers:
 * nothing is sent); adds that ask for an ack (answered once applied, through a send hook). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "services/repl.h"

#define PEER "peer@host"

/* ---- a test service: {Key, Val} entries, keyed per owner ---- */

typedef struct tent {
    bl__repl_link link; /* first: a link is its entry */
    struct tent *next;
    char owner[BL_NODE_LEN];
    long key;
    char val[32];
} tent;

typedef struct tsvc {
    tent *all;
    unsigned removed, gone_calls, gone_n;
    int keep_on_gone;
} tsvc;

static tent *tfind(tsvc *s, const char *owner, long key)
{
    for (tent *e = s->all; e; e = e->next)
        if (e->key == key && !strcmp(e->owner, owner)) return e;
    return NULL;
}

static int t_encode(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    const tent *e = (const tent *)l;
    if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_encode_long(x, e->key) < 0) return -1;
    return ei_x_encode_binary(x, e->val, (long)strlen(e->val));
}

static int t_encode_key(void *svc, ei_x_buff *x, const bl__repl_link *l)
{
    (void)svc;
    return ei_x_encode_long(x, ((const tent *)l)->key);
}

static int t_upsert(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    tsvc *s = svc;
    int ar, type, size;
    long key, len;
    char val[32];
    *out = NULL;
    if (ei_decode_tuple_header(buf, idx, &ar) < 0 || ar != 2 ||
        ei_decode_long(buf, idx, &key) < 0 || ei_get_type(buf, idx, &type, &size) < 0 ||
        type != ERL_BINARY_EXT || size >= 32 || ei_decode_binary(buf, idx, val, &len) < 0)
        return -1;
    val[len] = '\0';
    if (key < 0) return 0; /* a domain rule refuses it */
    tent *e = tfind(s, owner, key);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e) return -1;
        snprintf(e->owner, sizeof(e->owner), "%s", owner);
        e->key = key;
        e->next = s->all;
        s->all = e;
    }
    memcpy(e->val, val, (size_t)len + 1);
    *out = &e->link;
    return 0;
}

static int t_find(void *svc, const char *owner, const char *buf, int *idx, bl__repl_link **out)
{
    long key;
    if (ei_decode_long(buf, idx, &key) < 0) return -1;
    tent *e = tfind(svc, owner, key);
    *out = e ? &e->link : NULL;
    return 0;
}

static int t_remove(void *svc, bl__repl_link *l, bl__repl_why why)
{
    tsvc *s = svc;
    tent *e = (tent *)l;
    if (why == BL__REPL_GONE && s->keep_on_gone) return 1;
    for (tent **p = &s->all; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    free(e);
    s->removed++;
    return 0;
}

static void t_gone(void *svc, const char *owner, unsigned n, const char *why)
{
    (void)owner;
    (void)why;
    tsvc *s = svc;
    s->gone_calls++;
    s->gone_n += n;
}

static const bl__repl_ops t_ops = {
    .proc_name = "t_svc",
    .tag_add = "t_add",
    .tag_del = "t_del",
    .tag_sync = "t_sync",
    .tag_want = "t_want",
    .tag_digest = "t_digest",
    .encode = t_encode,
    .encode_key = t_encode_key,
    .upsert = t_upsert,
    .find = t_find,
    .remove = t_remove,
    .owner_gone = t_gone,
    .tag_ack = "t_ack",
};

typedef struct fx {
    bl_node *n;
    bl_proc *p;
    bl__repl *r;
    tsvc s;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof cfg.name, "%s", "self@host");
    snprintf(cfg.cookie, sizeof cfg.cookie, "%s", "c");
    cfg.cluster_member = 0;
    static const bl_proc_ops none = {0};
    if (!f || bl_node_new(&cfg, &f->n) != BL_OK ||
        bl_spawn(f->n, "t_svc", &none, f, &f->p) != BL_OK)
        return -1;
    f->r = bl__repl_new(f->n, f->p, &t_ops, &f->s);
    *state = f;
    return f->r ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    bl__repl_free(f->r);
    while (f->s.all) {
        tent *e = f->s.all;
        f->s.all = e->next;
        free(e);
    }
    bl_node_free(f->n);
    free(f);
    return 0;
}

/* ---- building messages ---- */

enum { FLAT, CHAINED };

/* {Tag, Owner, [{K, "vK"} for K in keys]} (or bare keys when keys_only) */
static void build(ei_x_buff *x, const char *tag, const char *owner, const long *keys, int k,
                  int shape, int keys_only, const char *tail_atom)
{
    ei_x_new_with_version(x);
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, tag);
    ei_x_encode_atom(x, owner);
    if (shape == FLAT && k) ei_x_encode_list_header(x, k);
    for (int i = 0; i < k; i++) {
        if (shape == CHAINED) ei_x_encode_list_header(x, 1);
        if (keys_only) {
            ei_x_encode_long(x, keys[i]);
        } else {
            char v[32];
            snprintf(v, sizeof v, "v%ld", keys[i]);
            ei_x_encode_tuple_header(x, 2);
            ei_x_encode_long(x, keys[i]);
            ei_x_encode_binary(x, v, (long)strlen(v));
        }
    }
    if (tail_atom)
        ei_x_encode_atom(x, tail_atom);
    else
        ei_x_encode_empty_list(x);
}

static int deliver(fx *f, const ei_x_buff *x, const char *sender)
{
    bl_msg m = {.buf = x->buff, .index = 1, .len = x->index, .has_sender = sender != NULL};
    if (sender) assert_int_equal(bl_pid_make(f->n, sender, 1, 0, 0, &m.sender), BL_OK);
    return bl__repl_handle(f->r, &m);
}

static void send_entries(fx *f, const char *tag, const long *keys, int k, int shape)
{
    ei_x_buff x;
    build(&x, tag, PEER, keys, k, shape, 0, NULL);
    assert_int_equal(deliver(f, &x, PEER), 1);
    ei_x_free(&x);
}

static long *seq(int k, long from)
{
    long *v = calloc((size_t)k + 1, sizeof(long));
    for (int i = 0; i < k; i++)
        v[i] = from + i;
    return v;
}

/* ---- the list codec ---- */

static int count_list(const ei_x_buff *x, int start)
{
    int idx = start, n = 0, more;
    bl__list_it it;
    if (bl__list_begin(&it, x->buff, &idx) < 0) return -2;
    while ((more = bl__list_next(&it)) > 0) {
        long v;
        if (ei_decode_long(x->buff, &idx, &v) < 0) return -3;
        n++;
    }
    if (more < 0) return -1;
    return idx == x->index ? n : -4;
}

static void lst(ei_x_buff *x, int k, int shape, const char *tail)
{
    ei_x_new(x);
    if (shape == FLAT && k) ei_x_encode_list_header(x, k);
    for (int i = 0; i < k; i++) {
        if (shape == CHAINED) ei_x_encode_list_header(x, 1);
        ei_x_encode_long(x, i);
    }
    if (tail)
        ei_x_encode_atom(x, tail);
    else
        ei_x_encode_empty_list(x);
}

static void test_list_codec(void **state)
{
    (void)state;
    int sizes[] = {0, 1, 2, 1000};
    for (unsigned s = 0; s < 4; s++)
        for (int shape = FLAT; shape <= CHAINED; shape++) {
            ei_x_buff x;
            lst(&x, sizes[s], shape, NULL);
            assert_int_equal(count_list(&x, 0), sizes[s]);
            ei_x_free(&x);
            if (sizes[s] == 0) continue;
            lst(&x, sizes[s], shape, "tail"); /* improper */
            assert_int_equal(count_list(&x, 0), -1);
            ei_x_free(&x);
        }
    /* mixed: [0, 1 | [2 | [3, 4]]] */
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 0);
    ei_x_encode_long(&x, 1);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 3);
    ei_x_encode_long(&x, 4);
    ei_x_encode_empty_list(&x);
    assert_int_equal(count_list(&x, 0), 5);
    ei_x_free(&x);
    /* not a list */
    ei_x_new(&x);
    ei_x_encode_atom(&x, "nope");
    assert_int_equal(count_list(&x, 0), -2);
    ei_x_free(&x);
}

/* ---- messages ---- */

static void test_sync_sizes(void **state)
{
    fx *f = *state;
    int sizes[] = {0, 1, 2, 1000};
    uint64_t flat_digest = 0;
    for (unsigned s = 0; s < 4; s++)
        for (int shape = FLAT; shape <= CHAINED; shape++) {
            long *k = seq(sizes[s], 1);
            send_entries(f, "t_sync", k, sizes[s], shape);
            assert_int_equal(bl__repl_count(f->r, PEER), sizes[s]);
            unsigned held = 0;
            for (tent *e = f->s.all; e; e = e->next)
                held += e->link.owner != NULL;
            assert_int_equal(held, sizes[s]);
            free(k);
            (void)flat_digest;
        }
    /* a smaller sync replaces the bucket: the others are removed */
    long two[] = {5, 7};
    unsigned before = f->s.removed;
    send_entries(f, "t_sync", two, 2, FLAT);
    assert_int_equal(bl__repl_count(f->r, PEER), 2);
    assert_int_equal(f->s.removed - before, 998);
    assert_non_null(tfind(&f->s, PEER, 5));
    assert_null(tfind(&f->s, PEER, 1));
    /* an empty sync empties it */
    send_entries(f, "t_sync", NULL, 0, FLAT);
    assert_int_equal(bl__repl_count(f->r, PEER), 0);
    assert_null(f->s.all);
}

static void test_add_del(void **state)
{
    fx *f = *state;
    int sizes[] = {1, 2, 1000};
    for (unsigned s = 0; s < 3; s++)
        for (int shape = FLAT; shape <= CHAINED; shape++) {
            long *k = seq(sizes[s], 100);
            send_entries(f, "t_add", k, sizes[s], shape);
            assert_int_equal(bl__repl_count(f->r, PEER), sizes[s]);
            ei_x_buff x;
            build(&x, "t_del", PEER, k, sizes[s], shape, 1, NULL);
            assert_int_equal(deliver(f, &x, PEER), 1);
            ei_x_free(&x);
            assert_int_equal(bl__repl_count(f->r, PEER), 0);
            free(k);
        }
    /* adds accumulate, a del of an unknown key changes nothing */
    long a[] = {1}, b[] = {2, 3}, gone[] = {42};
    send_entries(f, "t_add", a, 1, FLAT);
    send_entries(f, "t_add", b, 2, CHAINED);
    ei_x_buff x;
    build(&x, "t_del", PEER, gone, 1, FLAT, 1, NULL);
    deliver(f, &x, PEER);
    ei_x_free(&x);
    assert_int_equal(bl__repl_count(f->r, PEER), 3);
}

static void test_duplicates(void **state)
{
    fx *f = *state;
    long dup[] = {1, 1, 2, 2, 2};
    send_entries(f, "t_sync", dup, 5, FLAT);
    assert_int_equal(bl__repl_count(f->r, PEER), 2);
    send_entries(f, "t_add", dup, 5, CHAINED);
    assert_int_equal(bl__repl_count(f->r, PEER), 2);
    /* a refused entry (negative key) is not held */
    long neg[] = {-1, 3};
    send_entries(f, "t_sync", neg, 2, FLAT);
    assert_int_equal(bl__repl_count(f->r, PEER), 1);
    assert_non_null(tfind(&f->s, PEER, 3));
}

static void test_improper_and_malformed(void **state)
{
    fx *f = *state;
    long keep[] = {9};
    send_entries(f, "t_sync", keep, 1, FLAT);
    for (int shape = FLAT; shape <= CHAINED; shape++) {
        long k[] = {1, 2};
        ei_x_buff x;
        build(&x, "t_sync", PEER, k, 2, shape, 0, "tail");
        assert_int_equal(deliver(f, &x, PEER), 1);
        ei_x_free(&x);
        /* not applied whole: what was held stays */
        assert_non_null(tfind(&f->s, PEER, 9));
    }
    /* an element that is not an entry */
    long k[] = {4};
    ei_x_buff x;
    build(&x, "t_sync", PEER, k, 1, FLAT, 1, NULL);
    deliver(f, &x, PEER);
    ei_x_free(&x);
    assert_non_null(tfind(&f->s, PEER, 9));
    /* wrong arity, not a tuple, another tag: not the layer's or dropped */
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "t_sync");
    ei_x_encode_atom(&x, PEER);
    assert_int_equal(deliver(f, &x, PEER), 1);
    ei_x_free(&x);
    ei_x_new_with_version(&x);
    ei_x_encode_atom(&x, "t_sync");
    assert_int_equal(deliver(f, &x, PEER), 0);
    ei_x_free(&x);
    build(&x, "other_sync", PEER, k, 1, FLAT, 0, NULL);
    assert_int_equal(deliver(f, &x, PEER), 0);
    ei_x_free(&x);
    assert_int_equal(bl__repl_count(f->r, PEER), 1);
}

static void test_forged_owner(void **state)
{
    fx *f = *state;
    long k[] = {1, 2, 3};
    ei_x_buff x;
    build(&x, "t_sync", PEER, k, 3, FLAT, 0, NULL);
    deliver(f, &x, "other@host"); /* sent by another node in PEER's name */
    deliver(f, &x, NULL);         /* no sender */
    assert_int_equal(bl__repl_count(f->r, PEER), 0);
    assert_null(f->s.all);
    ei_x_free(&x);
    /* in our own name */
    build(&x, "t_add", "self@host", k, 3, FLAT, 0, NULL);
    deliver(f, &x, "self@host");
    ei_x_free(&x);
    assert_null(f->s.all);
    /* a del from another node for PEER's entries */
    send_entries(f, "t_sync", k, 3, FLAT);
    build(&x, "t_del", PEER, k, 3, FLAT, 1, NULL);
    deliver(f, &x, "other@host");
    ei_x_free(&x);
    assert_int_equal(bl__repl_count(f->r, PEER), 3);
}

static void test_owner_gone_and_local(void **state)
{
    fx *f = *state;
    long k[] = {1, 2, 3};
    send_entries(f, "t_sync", k, 3, FLAT);
    bl__repl_drop_owner(f->r, PEER, "test");
    assert_int_equal(f->s.gone_calls, 1);
    assert_int_equal(f->s.gone_n, 3);
    assert_null(f->s.all);
    /* a service that keeps its entries when the owner goes: they stay, outside the count */
    f->s.keep_on_gone = 1;
    send_entries(f, "t_sync", k, 3, CHAINED);
    bl__repl_drop_owner(f->r, PEER, "test");
    assert_int_equal(bl__repl_count(f->r, PEER), 0);
    assert_non_null(tfind(&f->s, PEER, 2));
    send_entries(f, "t_sync", k, 2, FLAT); /* the owner again: two of them */
    assert_int_equal(bl__repl_count(f->r, PEER), 2);
    /* local entries: counted in this node's bucket, out of it when deleted */
    tent *mine = calloc(1, sizeof(*mine));
    snprintf(mine->owner, sizeof mine->owner, "self@host");
    mine->key = 77;
    snprintf(mine->val, sizeof mine->val, "mine");
    mine->next = f->s.all;
    f->s.all = mine;
    assert_int_equal(bl__repl_local_put(f->r, &mine->link), BL_OK);
    assert_int_equal(bl__repl_local_put(f->r, &mine->link), BL_OK); /* changed: still one */
    assert_int_equal(bl__repl_count(f->r, "self@host"), 1);
    bl__repl_local_del(f->r, &mine->link);
    assert_int_equal(bl__repl_count(f->r, "self@host"), 0);
    assert_null(mine->link.owner);
}

/* ---- acked adds (what the task queue waits for before it answers a submit) ---- */

typedef struct sent_log {
    int n;
    char node[BL_NODE_LEN];
    ei_x_buff last;
} sent_log;

static int cap_send(void *ud, const char *node, const ei_x_buff *x)
{
    sent_log *l = ud;
    l->n++;
    snprintf(l->node, sizeof l->node, "%s", node);
    ei_x_free(&l->last);
    ei_x_new(&l->last);
    ei_x_append_buf(&l->last, x->buff, x->index);
    return BL_OK;
}

static void acked_cb(void *ud, unsigned acked, unsigned asked)
{
    unsigned *c = ud;
    c[0]++;
    c[1] = acked;
    c[2] = asked;
}

/* {t_add, PEER, [{K, "vK"}], Seq}; bad: an improper list */
static void build_acked(ei_x_buff *x, long key, unsigned long long sq, int bad)
{
    ei_x_new_with_version(x);
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, "t_add");
    ei_x_encode_atom(x, PEER);
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_long(x, key);
    ei_x_encode_binary(x, "v", 1);
    if (bad)
        ei_x_encode_atom(x, "tail");
    else
        ei_x_encode_empty_list(x);
    ei_x_encode_ulonglong(x, sq);
}

static void test_acked(void **state)
{
    fx *f = *state;
    sent_log log = {0};
    ei_x_new(&log.last);
    bl__repl_set_send(f->r, cap_send, &log);
    /* a local put with no peer to ask: done at once, 0 of 0, the entry in our bucket */
    tent *e = calloc(1, sizeof(*e));
    snprintf(e->owner, sizeof e->owner, "%s", "self@host");
    e->key = 7;
    snprintf(e->val, sizeof e->val, "%s", "v7");
    e->next = f->s.all;
    f->s.all = e;
    unsigned c[3] = {0, 9, 9};
    assert_int_equal(bl__repl_local_put_acked(f->r, &e->link, 1000, acked_cb, c), BL_OK);
    assert_int_equal(c[0], 1);
    assert_int_equal(c[1], 0);
    assert_int_equal(c[2], 0);
    assert_int_equal(bl__repl_count(f->r, "self@host"), 1);
    assert_int_equal(log.n, 0);
    /* an add that asks for an ack: applied, then {t_ack, Self, Seq} to its owner */
    ei_x_buff x;
    build_acked(&x, 5, 42, 0);
    assert_int_equal(deliver(f, &x, PEER), 1);
    ei_x_free(&x);
    assert_int_equal(bl__repl_count(f->r, PEER), 1);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.node, PEER);
    int idx = 0, ver, ar;
    char a[MAXATOMLEN_UTF8];
    unsigned long long got;
    assert_int_equal(ei_decode_version(log.last.buff, &idx, &ver), 0);
    assert_int_equal(ei_decode_tuple_header(log.last.buff, &idx, &ar), 0);
    assert_int_equal(ar, 3);
    assert_int_equal(ei_decode_atom(log.last.buff, &idx, a), 0);
    assert_string_equal(a, "t_ack");
    assert_int_equal(ei_decode_atom(log.last.buff, &idx, a), 0);
    assert_string_equal(a, "self@host");
    assert_int_equal(ei_decode_ulonglong(log.last.buff, &idx, &got), 0);
    assert_true(got == 42);
    /* not applied (an improper list): no ack */
    build_acked(&x, 6, 43, 1);
    assert_int_equal(deliver(f, &x, PEER), 1);
    ei_x_free(&x);
    assert_int_equal(bl__repl_count(f->r, PEER), 1);
    assert_int_equal(log.n, 1);
    /* from another node in PEER's name: ignored, no ack */
    build_acked(&x, 8, 44, 0);
    assert_int_equal(deliver(f, &x, "other@host"), 1);
    ei_x_free(&x);
    assert_int_equal(log.n, 1);
    /* an ack nobody waits for is taken and ignored */
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "t_ack");
    ei_x_encode_atom(&x, PEER);
    ei_x_encode_ulonglong(&x, 99);
    assert_int_equal(deliver(f, &x, PEER), 1);
    ei_x_free(&x);
    assert_int_equal(c[0], 1);
    ei_x_free(&log.last);
}

static void test_hash(void **state)
{
    (void)state;
    assert_int_equal(bl__repl_hash("", 0), 1469598103934665603ull);
    assert_true(bl__repl_hash("a", 1) != bl__repl_hash("b", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_codec),
        cmocka_unit_test(test_hash),
        cmocka_unit_test_setup_teardown(test_sync_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_improper_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_gone_and_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
