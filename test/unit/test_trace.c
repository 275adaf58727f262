/* test_trace.c - unit tests for the trace context (c_src/runtime/trace.c, seqtrace.c, the call
 * tag of otp/gen.c): the W3C traceparent rules, new ids, the current trace, and the wire forms
 * that carry a trace (docs/tracing.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/internal.h"

static const char TP[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static int parse(const char *s)
{
    bl_trace t;
    return bl_trace_parse(s, strlen(s), &t);
}

static void test_parse(void **state)
{
    (void)state;
    bl_trace t;
    assert_int_equal(bl_trace_parse(TP, strlen(TP), &t), BL_OK);
    assert_true(t.valid);
    assert_int_equal(t.trace_id[0], 0x4b);
    assert_int_equal(t.trace_id[15], 0x36);
    assert_int_equal(t.span_id[0], 0x00);
    assert_int_equal(t.span_id[7], 0xb7);
    assert_int_equal(t.flags, 1);
    char out[BL_TRACEPARENT_LEN], id[BL_TRACE_ID_LEN];
    assert_int_equal(bl_trace_format(&t, out, sizeof(out)), BL_OK);
    assert_string_equal(out, TP);
    assert_int_equal(bl_trace_id_hex(&t, id, sizeof(id)), BL_OK);
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(bl_trace_format(&t, out, 10), BL_EINVAL);
    /* refused: the W3C rules */
    assert_int_equal(parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), BL_EINVAL);
    assert_int_equal(parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), BL_EINVAL);
    assert_int_equal(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), BL_EINVAL);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), BL_EINVAL);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"), BL_EINVAL);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"), BL_EINVAL);
    assert_int_equal(parse("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), BL_EINVAL);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"), BL_EINVAL);
    assert_int_equal(parse(""), BL_EINVAL);
    assert_int_equal(bl_trace_parse(NULL, 0, &t), BL_EINVAL);
    assert_false(t.valid);
    /* a later version: longer is fine after a '-', unknown flags dropped */
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"),
                     BL_OK);
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01xx"), BL_EINVAL);
    assert_int_equal(
        bl_trace_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 55, &t), BL_OK);
    assert_int_equal(t.flags, BL_TRACE_SAMPLED);
    assert_true(bl_trace_id_valid("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_false(bl_trace_id_valid("4bf92f3577b34da6a3ce929d0e0e473"));
    assert_false(bl_trace_id_valid("00000000000000000000000000000000"));
    assert_false(bl_trace_id_valid("4BF92F3577B34DA6A3CE929D0E0E4736"));
}

static void test_new_child(void **state)
{
    (void)state;
    bl_trace a, b, c;
    assert_int_equal(bl_trace_new(&a, BL_TRACE_SAMPLED), BL_OK);
    assert_int_equal(bl_trace_new(&b, 0), BL_OK);
    assert_true(a.valid && b.valid);
    assert_memory_not_equal(a.trace_id, b.trace_id, 16);
    assert_int_equal(b.flags, 0);
    assert_int_equal(bl_trace_child(&a, &c), BL_OK);
    assert_memory_equal(a.trace_id, c.trace_id, 16);
    assert_memory_not_equal(a.span_id, c.span_id, 8);
    assert_int_equal(c.flags, BL_TRACE_SAMPLED);
    char s[BL_TRACEPARENT_LEN];
    assert_int_equal(bl_trace_format(&a, s, sizeof(s)), BL_OK);
    bl_trace back;
    assert_int_equal(bl_trace_parse(s, strlen(s), &back), BL_OK);
    assert_memory_equal(back.trace_id, a.trace_id, 16);
    bl_trace none = {0};
    assert_int_equal(bl_trace_child(&none, &c), BL_EINVAL);
}

/* a stored trace id back to a trace: same id, a fresh non-zero span, the flags given */
static void test_from_id(void **state)
{
    (void)state;
    bl_trace a, b, c;
    char id[BL_TRACE_ID_LEN], back[BL_TRACE_ID_LEN];
    assert_int_equal(bl_trace_new(&a, BL_TRACE_SAMPLED), BL_OK);
    assert_int_equal(bl_trace_id_hex(&a, id, sizeof(id)), BL_OK);
    assert_int_equal(bl_trace_from_id(id, 0, &b), BL_OK);
    assert_true(b.valid);
    assert_memory_equal(a.trace_id, b.trace_id, 16);
    assert_int_equal(b.flags, 0);
    static const uint8_t zero[8];
    assert_memory_not_equal(b.span_id, zero, 8);
    assert_int_equal(bl_trace_id_hex(&b, back, sizeof(back)), BL_OK);
    assert_string_equal(back, id);
    assert_int_equal(bl_trace_from_id(id, BL_TRACE_SAMPLED, &c), BL_OK);
    assert_int_equal(c.flags, BL_TRACE_SAMPLED);
    assert_memory_not_equal(b.span_id, c.span_id, 8);
    /* what bl_trace_id_valid refuses, refused and cleared */
    const char *bad[] = {"00000000000000000000000000000000",
                         "4BF92F3577B34DA6A3CE929D0E0E4736",
                         "4bf92f3577b34da6a3ce929d0e0e473",
                         "4bf92f3577b34da6a3ce929d0e0e47361",
                         "4bf92f3577b34da6a3ce929d0e0e473g",
                         "",
                         NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bl_trace_from_id(bad[i], 0, &c), BL_EINVAL);
        assert_false(c.valid);
    }
    assert_int_equal(bl_trace_from_id(id, 0, NULL), BL_EINVAL);
}

static void test_current(void **state)
{
    (void)state;
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "tt@localhost");
    bl_node *n;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    assert_null(bl_trace_current(n));
    bl_trace t;
    assert_int_equal(bl_trace_begin(n, TP, 0, &t), 1); /* taken: same trace, a new span */
    const bl_trace *cur = bl_trace_current(n);
    assert_non_null(cur);
    assert_memory_equal(cur->trace_id, t.trace_id, 16);
    assert_int_equal(t.trace_id[0], 0x4b);
    assert_int_equal(t.span_id[0] == 0x00 && t.span_id[7] == 0xb7, 0);
    assert_int_equal(bl_trace_begin(n, "garbage", BL_TRACE_SAMPLED, &t), 0);
    assert_int_equal(t.flags, BL_TRACE_SAMPLED);
    bl_trace_set(n, NULL);
    assert_null(bl_trace_current(n));
    bl_node_free(n);
}

/* [Ref | <<TP>>] and [[alias|Ref] | <<TP>>]: the trace of a call tag */
static void test_tag(void **state)
{
    (void)state;
    erlang_ref r = {.len = 3, .n = {1, 2, 3}, .creation = 7};
    strcpy(r.node, "a@h");
    ei_x_buff x;
    bl_trace t;
    for (int aliased = 0; aliased < 2; aliased++) {
        ei_x_new(&x);
        ei_x_encode_list_header(&x, 1);
        if (aliased) {
            ei_x_encode_list_header(&x, 1);
            ei_x_encode_atom(&x, "alias");
        }
        ei_x_encode_ref(&x, &r);
        ei_x_encode_binary(&x, TP, (long)strlen(TP));
        assert_int_equal(bl__tag_trace(x.buff, x.index, &t), 1);
        assert_int_equal(t.trace_id[0], 0x4b);
        ei_x_free(&x);
    }
    ei_x_new(&x); /* a plain ref and [alias|Ref]: no trace */
    ei_x_encode_ref(&x, &r);
    assert_int_equal(bl__tag_trace(x.buff, x.index, &t), 0);
    ei_x_free(&x);
    ei_x_new(&x);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_ref(&x, &r);
    ei_x_encode_binary(&x, "00-bad", 6); /* a bad traceparent: no trace */
    assert_int_equal(bl__tag_trace(x.buff, x.index, &t), 0);
    ei_x_free(&x);
}

static void test_seqtok(void **state)
{
    (void)state;
    erlang_pid p = {.num = 5, .serial = 1, .creation = 3};
    strcpy(p.node, "a@h");
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_long(&x, 15);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "order");
    ei_x_encode_binary(&x, "o-1", 3);
    ei_x_encode_long(&x, 7);
    ei_x_encode_pid(&x, &p);
    ei_x_encode_long(&x, 6);
    bl_seqtok tok;
    assert_int_equal(bl__seqtok_decode(x.buff, 0, (size_t)x.index, &tok), 0);
    assert_true(tok.valid);
    assert_int_equal(tok.serial, 7);
    ei_x_free(&x);
    /* the send rule: LastCnt = current serial, Serial = ++clock (clock >= received serial) */
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "tt@localhost");
    bl_node *n;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    bl_pid bp;
    assert_int_equal(bl_pid_make(n, p.node, p.num, p.serial, p.creation, &bp), BL_OK);
    bl__seqtok_received(n, NULL, &tok);
    ei_x_new(&x);
    assert_int_equal(bl__seqtok_encode_send(n, &bp, &x), 1);
    int i = 0, ar;
    long flags, serial, last;
    assert_int_equal(ei_decode_tuple_header(x.buff, &i, &ar), 0);
    assert_int_equal(ar, 5);
    assert_int_equal(ei_decode_long(x.buff, &i, &flags), 0);
    assert_int_equal(flags, 15);
    assert_int_equal(ei_skip_term(x.buff, &i), 0);
    assert_int_equal(ei_decode_long(x.buff, &i, &serial), 0);
    assert_int_equal(ei_skip_term(x.buff, &i), 0);
    assert_int_equal(ei_decode_long(x.buff, &i, &last), 0);
    assert_int_equal(serial, 8);
    assert_int_equal(last, 7);
    ei_x_free(&x);
    ei_x_new(&x); /* a second send in the same handler: 9 after 8 */
    assert_int_equal(bl__seqtok_encode_send(n, &bp, &x), 1);
    i = 0;
    ei_decode_tuple_header(x.buff, &i, &ar);
    ei_skip_term(x.buff, &i);
    ei_skip_term(x.buff, &i);
    ei_decode_long(x.buff, &i, &serial);
    ei_skip_term(x.buff, &i);
    ei_decode_long(x.buff, &i, &last);
    assert_int_equal(serial, 9);
    assert_int_equal(last, 8);
    ei_x_free(&x);
    /* malformed: not a 5-tuple */
    ei_x_new(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_long(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_long(&x, 3);
    assert_int_equal(bl__seqtok_decode(x.buff, 0, (size_t)x.index, &tok), -1);
    ei_x_free(&x);
    bl_node_free(n);
}

/* a line logged under a trace: " trace=ID" at the end (text), "trace_id" (JSON); none without */
static void test_log_lines(void **state)
{
    (void)state;
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "tt@localhost");
    cfg.log_level = BL_LOG_INFO;
    bl_node *n;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    char path[] = "/tmp/bl_test_trace_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    bl_trace t;
    bl_trace_parse(TP, strlen(TP), &t);
    bl_log(n, BL_LOG_INFO, "plain one");
    bl_trace_set(n, &t);
    bl_log(n, BL_LOG_INFO, "traced one");
    bl_node_set_log(n, BL_LOG_INFO, BL_LOG_JSON);
    bl_log(n, BL_LOG_INFO, "traced two");
    bl_trace_set(n, NULL);
    bl_log(n, BL_LOG_INFO, "plain two");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096] = "";
    lseek(fd, 0, SEEK_SET);
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    unlink(path);
    assert_true(k > 0);
    buf[k] = 0;
    char *l1 = strtok(buf, "\n"), *l2 = strtok(NULL, "\n"), *l3 = strtok(NULL, "\n"),
         *l4 = strtok(NULL, "\n");
    assert_non_null(l4);
    assert_null(strstr(l1, "trace"));
    assert_non_null(strstr(l2, "traced one trace=4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_non_null(strstr(l3, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""));
    assert_null(strstr(l4, "trace_id"));
    bl_node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),     cmocka_unit_test(test_new_child),
        cmocka_unit_test(test_from_id),   cmocka_unit_test(test_current),
        cmocka_unit_test(test_tag),       cmocka_unit_test(test_seqtok),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
