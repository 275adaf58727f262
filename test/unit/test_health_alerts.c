/* test_health_alerts.c - the alert table a non-deciding node holds (c_src/health/alerts.c): it
 * takes the decider's tables ({bl_alerts, Decider, NextId, [Alert]}); when leadership moves and
 * the new decider numbers an alert differently, an ack by the id shown a moment before still
 * finds the alert (it answered 404: the dashboard's "alert ack 404 with a coordinator"), and the
 * ack is recorded under the current id. An id no alert ever had is still refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "health/health_int.h"

json_t *bl_term_to_json(const char *buf, int *idx); /* gateway/termjson.c */

static bl_node *N;

static void enc_alert(ei_x_buff *x, unsigned long long id, const char *rule, const char *node)
{
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 15);
    ei_x_encode_ulonglong(x, id);
    ei_x_encode_binary(x, rule, (long)strlen(rule));
    ei_x_encode_binary(x, node, (long)strlen(node));
    ei_x_encode_binary(x, "", 0);
    ei_x_encode_long(x, 2);
    ei_x_encode_long(x, 1); /* firing */
    ei_x_encode_double(x, 1.0);
    ei_x_encode_double(x, 0.0);
    ei_x_encode_ulonglong(x, 1000);
    ei_x_encode_ulonglong(x, 2000);
    ei_x_encode_ulonglong(x, 0);
    ei_x_encode_binary(x, "", 0);
    ei_x_encode_ulonglong(x, 0);
    ei_x_encode_binary(x, "member failed", 13);
    ei_x_encode_binary(x, "{}", 2);
}

/* the decider's table: alerts (id, rule, node), sent by a process of the decider */
static int table(struct bl__alerts *al, const char *decider, unsigned long long next_id, int n,
                 const unsigned long long *ids, const char *const *rules)
{
    ei_x_buff x, p;
    bl_pid pid;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "bl_alerts");
    ei_x_encode_atom(&x, decider);
    ei_x_encode_ulonglong(&x, next_id);
    for (int i = 0; i < n; i++)
        enc_alert(&x, ids[i], rules[i], "victim@h");
    ei_x_encode_empty_list(&x);
    /* a pid of the decider as the sender */
    ei_x_new(&p);
    assert_int_equal(bl_pid_make(N, decider, 1, 0, 1, &pid), BL_OK);
    assert_int_equal(bl_x_encode_pid(&p, &pid), 0);
    bl_msg m;
    memset(&m, 0, sizeof(m));
    m.buf = x.buff;
    m.index = 1;
    m.len = x.index;
    m.has_sender = 1;
    int i = 0;
    assert_int_equal(bl_decode_pid(N, p.buff, &i, &m.sender), 0);
    int rc = bl__alerts_on_msg(al, &m);
    ei_x_free(&x);
    ei_x_free(&p);
    return rc;
}

/* the table as `beamlet alerts` and the REST API see it: [[id, rule, acked_by]] */
static json_t *shown(struct bl__alerts *al)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    bl__alerts_encode(al, &x, 1);
    int i = 1;
    json_t *j = bl_term_to_json(x.buff, &i), *out = json_array(), *a;
    size_t k;
    json_array_foreach(j, k, a) json_array_append_new(
        out, json_pack("[O, O, O]", json_object_get(a, "id"), json_object_get(a, "rule"),
                       json_object_get(a, "acked_by")));
    json_decref(j);
    ei_x_free(&x);
    return out;
}

static void assert_shown(struct bl__alerts *al, const char *want)
{
    json_t *s = shown(al);
    char *txt = json_dumps(s, JSON_COMPACT);
    assert_string_equal(txt, want);
    free(txt);
    json_decref(s);
}

static void test_ack_by_an_earlier_id(void **state)
{
    (void)state;
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "gw@h");
    bl_node *n;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    N = n;
    health h;
    memset(&h, 0, sizeof(h));
    h.n = n;
    static const bl_proc_ops ops = {0};
    assert_int_equal(bl_spawn(n, NULL, &ops, &h, &h.proc), BL_OK);
    char err[256];
    struct bl__alerts *al = bl__alerts_new(&h, err, sizeof(err));
    assert_non_null(al);
    /* the first decider numbered them 4 and 5 */
    const char *rules[] = {"no_leader", "member_failed"};
    assert_int_equal(table(al, "d1@h", 6, 2, (unsigned long long[]){4, 5}, rules), 1);
    assert_shown(al, "[[4,\"no_leader\",null],[5,\"member_failed\",null]]");
    /* the new decider has member_failed as 4; no_leader is gone */
    assert_int_equal(table(al, "d2@h", 5, 1, (unsigned long long[]){4}, rules + 1), 1);
    assert_shown(al, "[[4,\"member_failed\",null]]");
    /* the page still shows member_failed as 5: the ack finds it, recorded under 4 */
    assert_int_equal(bl__alerts_ack(al, 5, "dash"), BL_OK);
    assert_shown(al, "[[4,\"member_failed\",\"dash\"]]");
    /* an id nothing had is refused; so is one whose alert is gone and was never renumbered */
    assert_int_equal(bl__alerts_ack(al, 77, "dash"), BL_ENOPROC);
    /* the alias survives a further table with the same numbering, and follows a third one */
    assert_int_equal(table(al, "d2@h", 5, 1, (unsigned long long[]){4}, rules + 1), 1);
    assert_int_equal(table(al, "d3@h", 9, 1, (unsigned long long[]){8}, rules + 1), 1);
    assert_shown(al, "[[8,\"member_failed\",null]]");
    assert_int_equal(bl__alerts_ack(al, 5, "ops"), BL_OK);
    assert_shown(al, "[[8,\"member_failed\",\"ops\"]]");
    /* a table without it: gone, and so are its earlier ids */
    assert_int_equal(table(al, "d3@h", 3, 0, NULL, NULL), 1);
    assert_shown(al, "[]");
    assert_int_equal(bl__alerts_ack(al, 8, "ops"), BL_ENOPROC);
    bl__alerts_free(al);
    bl_exit(h.proc, "normal");
    bl_node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_by_an_earlier_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
