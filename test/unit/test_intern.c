/* test_intern.c - the node-name table behind bl_pid (runtime/intern.c): pids are a few words,
 * one entry per name (pointer equality), the ei codec round-trips, the table is bounded (names of
 * unconnected nodes are forgotten at the cap and their pids are stale, never another node's), and
 * everything is freed with the node (the ASan leak check of make test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/internal.h"

static bl_node *mknode(const char *name)
{
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    snprintf(cfg.cookie, sizeof(cfg.cookie), "c");
    cfg.log_level = BL_LOG_ERROR;
    bl_node *n = NULL;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    return n;
}

static void test_small_and_shared(void **state)
{
    (void)state;
    assert_true(sizeof(bl_pid) <= 32);
    bl_node *n = mknode("me@h");
    bl_pid a, b, c, z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(bl_pid_make(n, "x@h", 1, 2, 3, &a), BL_OK);
    assert_int_equal(bl_pid_make(n, "x@h", 1, 2, 3, &b), BL_OK);
    assert_int_equal(bl_pid_make(n, "y@h", 1, 2, 3, &c), BL_OK);
    assert_ptr_equal(a.node, b.node); /* one entry per name */
    assert_true(bl_pid_equal(&a, &b));
    assert_false(bl_pid_equal(&a, &c));
    assert_string_equal(bl_pid_node(&a), "x@h");
    assert_true(bl_pid_is_on(&a, "x@h"));
    assert_string_equal(bl_pid_node(&z), ""); /* a zeroed pid is "no pid" */
    assert_int_equal(bl_pid_make(n, "nohost", 1, 0, 0, &c), BL_EINVAL);
    char s[64];
    bl_pid_format(&a, s, sizeof(s));
    assert_string_equal(s, "<x@h.1.2>");
    /* our own pids point at the pinned entry */
    bl_pid me;
    assert_int_equal(bl_pid_make(n, "me@h", 5, 0, 0, &me), BL_OK);
    assert_true(bl__pid_is_local(n, &me));
    assert_false(bl__pid_is_local(n, &a));
    bl_node_free(n);
}

static void test_codec_roundtrip(void **state)
{
    (void)state;
    bl_node *n = mknode("me@h"), *m = mknode("other@h");
    bl_pid a, d, e;
    assert_int_equal(bl_pid_make(n, "beam@host.example", 77, 3, 0x12345678u, &a), BL_OK);
    ei_x_buff x;
    ei_x_new(&x);
    assert_int_equal(bl_x_encode_pid(&x, &a), 0);
    /* the bytes are ei's own */
    erlang_pid ep;
    int i = 0;
    assert_int_equal(ei_decode_pid(x.buff, &i, &ep), 0);
    assert_string_equal(ep.node, "beam@host.example");
    assert_int_equal(ep.num, 77);
    assert_int_equal(ep.creation, 0x12345678u);
    i = 0;
    assert_int_equal(bl_decode_pid(n, x.buff, &i, &d), 0);
    assert_int_equal(i, x.index);
    assert_true(bl_pid_equal(&a, &d));
    assert_ptr_equal(a.node, d.node);
    /* decoded by another node: another table, still the same process */
    i = 0;
    assert_int_equal(bl_decode_pid(m, x.buff, &i, &e), 0);
    assert_true(a.node != e.node);
    assert_true(bl_pid_equal(&a, &e));
    /* bl_encode_pid sizes like ei (buf NULL) and writes the same bytes */
    int len = 0;
    assert_int_equal(bl_encode_pid(NULL, &len, &a), 0);
    assert_int_equal(len, x.index);
    char *buf = malloc((size_t)len);
    len = 0;
    assert_int_equal(bl_encode_pid(buf, &len, &a), 0);
    assert_memory_equal(buf, x.buff, (size_t)len);
    free(buf);
    /* not a pid */
    x.index = 0;
    ei_x_encode_atom(&x, "nope");
    i = 0;
    assert_int_equal(bl_decode_pid(n, x.buff, &i, &d), -1);
    assert_int_equal(i, 0);
    ei_x_free(&x);
    bl_node_free(m);
    bl_node_free(n);
}

/* At the cap every name without a connection is forgotten: pids of those names turn stale (""),
 * encode as an error and never alias the new names that reuse the entries; ours stays. */
static void test_bounded(void **state)
{
    (void)state;
    bl_node *n = mknode("me@h");
    unsigned live, cap;
    unsigned long long forgotten;
    bl__intern_stats(n, &live, &cap, &forgotten);
    assert_int_equal(live, 1);
    assert_true(cap >= 4096);
    bl_pid first, peer;
    assert_int_equal(bl_pid_make(n, "churn0@h", 1, 0, 0, &first), BL_OK);
    assert_int_equal(bl_pid_make(n, "peer@h", 9, 0, 0, &peer), BL_OK);
    /* a node with a connection is never forgotten: stand in a connection entry for peer@h */
    bl_conn *c = calloc(1, sizeof(*c) + sizeof("peer@h"));
    assert_non_null(c);
    memcpy(c->node, "peer@h", sizeof("peer@h"));
    c->state = CONN_UP;
    HASH_ADD_STR(n->conns, node, c);
    char name[64];
    for (unsigned k = 1; k < cap * 3; k++) {
        bl_pid p;
        snprintf(name, sizeof(name), "churn%u@h", k);
        assert_int_equal(bl_pid_make(n, name, 1, 0, 0, &p), BL_OK);
        bl__intern_stats(n, &live, &cap, &forgotten);
        assert_true(live <= cap);
    }
    assert_true(forgotten >= cap); /* two sweeps or more */
    assert_string_equal(bl_pid_node(&first), "");
    assert_string_equal(bl_pid_node(&peer), "peer@h"); /* connected: kept through every sweep */
    bl_pid peer2;
    assert_int_equal(bl_pid_make(n, "peer@h", 9, 0, 0, &peer2), BL_OK);
    assert_true(bl_pid_equal(&peer, &peer2));
    HASH_DEL(n->conns, c);
    free(c);
    ei_x_buff x;
    ei_x_new(&x);
    assert_int_equal(bl_x_encode_pid(&x, &first), -1);
    ei_x_free(&x);
    /* the entry was reused for another name: the stale pid is not that node's pid */
    bl_pid again;
    assert_int_equal(bl_pid_make(n, "churn0@h", 1, 0, 0, &again), BL_OK);
    assert_false(bl_pid_equal(&first, &again));
    assert_string_equal(bl_pid_node(&again), "churn0@h");
    /* a send to a stale pid: nodedown, nothing queued */
    bl_proc *p;
    static const bl_proc_ops ops = {0};
    assert_int_equal(bl_spawn(n, NULL, &ops, NULL, &p), BL_OK);
    ei_x_new_with_version(&x);
    ei_x_encode_atom(&x, "hi");
    assert_int_equal(bl_send(p, &first, x.buff, x.index), BL_ENODEDOWN);
    ei_x_free(&x);
    /* our own name is pinned */
    assert_string_equal(bl_pid_node(bl_self(p)), "me@h");
    bl_node_free(n); /* every entry freed: the leak check */
}

/* A node name read just before a sweep stays readable while its entry is reused (until the
 * following sweep): ASan would report the read otherwise. */
static void test_name_outlives_reuse(void **state)
{
    (void)state;
    bl_node *n = mknode("me@h");
    unsigned live, cap;
    unsigned long long forgotten;
    bl_pid held, p;
    assert_int_equal(bl_pid_make(n, "held@h", 1, 0, 0, &held), BL_OK);
    const char *name = bl_pid_node(&held);
    char buf[64];
    bl__intern_stats(n, &live, &cap, &forgotten);
    for (unsigned k = 0; k < cap - live; k++) { /* up to the cap */
        snprintf(buf, sizeof(buf), "fill%u@h", k);
        assert_int_equal(bl_pid_make(n, buf, 1, 0, 0, &p), BL_OK);
    }
    for (unsigned k = 0; k < cap - 1; k++) { /* one sweep, then every free entry reused */
        snprintf(buf, sizeof(buf), "next%u@h", k);
        assert_int_equal(bl_pid_make(n, buf, 1, 0, 0, &p), BL_OK);
    }
    bl__intern_stats(n, &live, &cap, &forgotten);
    assert_int_equal(forgotten, cap - 1);
    assert_string_equal(bl_pid_node(&held), "");
    assert_string_equal(name, "held@h");
    bl_node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_and_shared),
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_name_outlives_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
