/* test_topic.c - unit tests for pub/sub topic validation and wildcard matching
 * (c_src/services/pubsub.c): a table of pattern x topic -> match, plus invalid inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "beamlet/pubsub.h"

typedef struct {
    const char *pattern, *topic;
    int match;
} row;

static const row TABLE[] = {
    /* exact */
    {"a", "a", 1},
    {"a", "b", 0},
    {"a.b.c", "a.b.c", 1},
    {"a.b.c", "a.b", 0},
    {"a.b", "a.b.c", 0},
    {"a.b.c", "a.b.cd", 0},
    {"a.bc", "a.b", 0},
    {"metrics.web1.cpu", "metrics.web1.cpu", 1},
    /* single level */
    {"metrics.*.cpu", "metrics.web1.cpu", 1},
    {"metrics.*.cpu", "metrics.web1.mem", 0},
    {"metrics.*.cpu", "metrics.cpu", 0},
    {"metrics.*.cpu", "metrics.a.b.cpu", 0},
    {"*", "a", 1},
    {"*", "a.b", 0},
    {"*.*", "a.b", 1},
    {"*.*", "a", 0},
    {"a.*", "a", 0},
    {"a.*", "a.b", 1},
    {"a.*", "a.b.c", 0},
    {"*.b", "a.b", 1},
    {"*.b", "b", 0},
    /* multi level */
    {"#", "a", 1},
    {"#", "a.b.c", 1},
    {"cluster.#", "cluster", 1},
    {"cluster.#", "cluster.events", 1},
    {"cluster.#", "cluster.a.b.c", 1},
    {"cluster.#", "clusters.events", 0},
    {"cluster.#", "other.events", 0},
    {"a.*.#", "a", 0},
    {"a.*.#", "a.b", 1},
    {"a.*.#", "a.b.c.d", 1},
    {"*.#", "x", 1},
    {"a.b.#", "a", 0},
    {"a.b.#", "a.b", 1},
    {"a.b.#", "a.c", 0},
    /* invalid pattern or topic never matches */
    {"a.#.b", "a.x.b", 0},
    {"a#", "a#", 0},
    {"a*", "ab", 0},
    {"a..b", "a..b", 0},
    {".a", ".a", 0},
    {"a.", "a.", 0},
    {"", "", 0},
    {"a.*", "a.*", 0},
    {"#", "a.#", 0},
    {"a", "", 0},
};

static void match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(TABLE) / sizeof(TABLE[0]); i++) {
        int got = bl_pubsub_match(TABLE[i].pattern, TABLE[i].topic);
        if (got != TABLE[i].match)
            fail_msg("match(%s, %s) = %d, want %d", TABLE[i].pattern, TABLE[i].topic, got,
                     TABLE[i].match);
    }
}

static void validity(void **state)
{
    (void)state;
    assert_true(bl_pubsub_topic_valid("a.b.c"));
    assert_false(bl_pubsub_topic_valid("a.*.c"));
    assert_false(bl_pubsub_topic_valid("a.#"));
    assert_false(bl_pubsub_topic_valid(""));
    assert_false(bl_pubsub_topic_valid(NULL));
    assert_false(bl_pubsub_topic_valid("a..b"));
    assert_true(bl_pubsub_pattern_valid("a.*.c"));
    assert_true(bl_pubsub_pattern_valid("a.#"));
    assert_true(bl_pubsub_pattern_valid("#"));
    assert_false(bl_pubsub_pattern_valid("#.a"));
    assert_false(bl_pubsub_pattern_valid("a.b*"));
    assert_false(bl_pubsub_pattern_valid("a.##"));
    assert_false(bl_pubsub_pattern_valid(NULL));
    assert_false(bl_pubsub_match(NULL, "a"));
    assert_false(bl_pubsub_match("a", NULL));
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(bl_pubsub_topic_valid(big));
    big[BL_PUBSUB_TOPIC_LEN - 1] = '\0'; /* 255 bytes: the longest valid */
    assert_true(bl_pubsub_topic_valid(big));
    assert_true(bl_pubsub_match(big, big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(match_table),
        cmocka_unit_test(validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
