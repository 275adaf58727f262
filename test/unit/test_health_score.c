/* test_health_score.c - the cluster health score and status (c_src/health/score.c): the
 * documented formula on healthy, degraded, maintenance and offline clusters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "health/score.h"
#include "health/trend.h"

#define A BL_MEMBER_ACTIVE
#define S BL_MEMBER_SUSPECTED
#define F BL_MEMBER_FAILED
#define J BL_MEMBER_JOINING
#define L BL_MEMBER_LEFT
#define OK BL__NODE_HEALTHY
#define WARN BL__NODE_WARNING
#define CRIT BL__NODE_CRITICAL
#define UNK BL__NODE_UNKNOWN

static bl__score_out run(const bl__score_member *m, int n, int leader, unsigned pass, unsigned warn,
                         unsigned crit)
{
    bl__score_in in = {.nmembers = n,
                       .members = m,
                       .has_leader = leader,
                       .checks_passing = pass,
                       .checks_warning = warn,
                       .checks_critical = crit};
    bl__score_out o;
    bl__cluster_score(&in, &o);
    return o;
}

#define NEAR(x, y) assert_true((x) > (y)-1e-9 && (x) < (y) + 1e-9)

static void test_all_healthy(void **state)
{
    (void)state;
    bl__score_member m[] = {{A, 1, OK, 0}, {A, 1, OK, 0}, {A, 1, OK, 0}, {A, 0, OK, 0}};
    bl__score_out o = run(m, 4, 1, 3, 0, 0);
    NEAR(o.score, 1.0);
    assert_string_equal(o.status, "active");
    assert_true(o.quorum && o.leader_ok && o.leader_needed);
    o = run(m, 4, 1, 0, 0, 0); /* no checks: services count as 1 */
    NEAR(o.services, 1.0);
    NEAR(o.score, 1.0);
}

static void test_one_failed_of_three(void **state)
{
    (void)state;
    bl__score_member m[] = {{A, 0, OK, 0}, {A, 0, OK, 0}, {F, 0, UNK, 0}};
    bl__score_out o = run(m, 3, 0, 0, 0, 0);
    NEAR(o.availability, 2.0 / 3);
    NEAR(o.node_health, 2.0 / 3);
    NEAR(o.score, 0.4 * 2 / 3 + 0.3 * 2 / 3 + 0.3); /* 0.7667 */
    assert_string_equal(o.status, "degraded");
    assert_true(o.quorum);         /* 2 of 3 members */
    assert_false(o.leader_needed); /* no coordinators */
}

static void test_warnings_lower_the_score(void **state)
{
    (void)state;
    bl__score_member m[] = {{A, 0, OK, 0}, {A, 0, WARN, 0}};
    bl__score_out o = run(m, 2, 0, 1, 1, 0);
    NEAR(o.node_health, 0.8);
    NEAR(o.services, 0.75);
    NEAR(o.score, 0.4 + 0.24 + 0.225);
    assert_string_equal(o.status, "active"); /* 0.865, nothing critical */
    bl__score_member c[] = {{A, 0, OK, 0}, {A, 0, CRIT, 0}};
    o = run(c, 2, 0, 0, 0, 0);
    NEAR(o.node_health, 0.6);
    assert_string_equal(o.status, "degraded"); /* a critical node degrades the cluster */
    o = run(m, 2, 0, 1, 0, 1);                 /* a critical check does too */
    assert_string_equal(o.status, "degraded");
    NEAR(o.services, 0.5);
}

static void test_no_leader(void **state)
{
    (void)state;
    bl__score_member m[] = {{A, 1, OK, 0}, {A, 1, OK, 0}, {A, 1, OK, 0}};
    bl__score_out o = run(m, 3, 0, 0, 0, 0);
    NEAR(o.score, 0.5);
    assert_false(o.leader_ok);
    assert_string_equal(o.status, "degraded");
}

static void test_coordinator_quorum_lost(void **state)
{
    (void)state;
    /* two of three coordinators failed: agents alone do not make a quorum */
    bl__score_member m[] = {{A, 1, OK, 0}, {F, 1, UNK, 0}, {F, 1, UNK, 0},
                            {A, 0, OK, 0}, {A, 0, OK, 0},  {A, 0, OK, 0}};
    bl__score_out o = run(m, 6, 0, 0, 0, 0);
    assert_false(o.quorum);
    assert_true(o.score <= 0.25);
    assert_string_equal(o.status, "offline");
    /* without coordinators the members' majority counts */
    bl__score_member m2[] = {{A, 0, OK, 0}, {F, 0, UNK, 0}, {F, 0, UNK, 0}};
    o = run(m2, 3, 0, 0, 0, 0);
    assert_false(o.quorum);
    assert_string_equal(o.status, "offline");
}

static void test_maintenance(void **state)
{
    (void)state;
    /* a node in maintenance and failed (rebooting) does not degrade the cluster */
    bl__score_member m[] = {{A, 0, OK, 0}, {A, 0, OK, 0}, {F, 0, UNK, 1}};
    bl__score_out o = run(m, 3, 0, 0, 0, 0);
    NEAR(o.score, 1.0);
    assert_true(o.quorum); /* 2 of 3 still up */
    assert_string_equal(o.status, "maintenance");
    /* every node in maintenance */
    bl__score_member all[] = {{A, 0, OK, 1}, {A, 0, WARN, 1}};
    o = run(all, 2, 0, 0, 0, 0);
    NEAR(o.score, 1.0);
    assert_string_equal(o.status, "maintenance");
    /* maintenance and a real failure elsewhere: degraded wins */
    bl__score_member mix[] = {{A, 0, OK, 1}, {A, 0, OK, 0}, {S, 0, OK, 0}};
    o = run(mix, 3, 0, 0, 0, 0);
    assert_string_equal(o.status, "degraded");
}

static void test_left_members_ignored_and_empty(void **state)
{
    (void)state;
    bl__score_member m[] = {{A, 0, OK, 0}, {L, 0, UNK, 0}, {L, 0, UNK, 0}};
    bl__score_out o = run(m, 3, 0, 0, 0, 0);
    NEAR(o.score, 1.0);
    assert_string_equal(o.status, "active");
    o = run(NULL, 0, 0, 0, 0, 0);
    assert_string_equal(o.status, "offline");
    assert_true(o.score <= 0.25);
    bl__score_member j[] = {{J, 0, UNK, 0}, {A, 0, OK, 0}};
    o = run(j, 2, 0, 0, 0, 0);
    NEAR(o.availability, 0.75);
    NEAR(o.node_health, 0.75);
}

static void test_bounds(void **state)
{
    (void)state;
    bl__score_member m[] = {{A, 0, 99, 0}}; /* an out-of-range status reads as unknown */
    bl__score_out o = run(m, 1, 0, 0, 0, 0);
    NEAR(o.node_health, 0.5);
    assert_true(o.score >= 0.0 && o.score <= 1.0);
    assert_string_equal(bl__node_status_name(BL__NODE_CRITICAL), "critical");
    assert_string_equal(bl__node_status_name(42), "unknown");
}

static void test_trend(void **state)
{
    (void)state;
    /* 2 points per day on a disk at 90%: 5 days left */
    double t[10], v[10], slope, icpt;
    for (int i = 0; i < 10; i++) {
        t[i] = 1.7e12 + i * 3600000.0; /* epoch ms, hourly */
        v[i] = 88.0 + 2.0 * i / 24.0;
    }
    assert_int_equal(bl__linfit(t, v, 10, &slope, &icpt), 0);
    NEAR(slope * 86400000.0, 2.0);
    double used = v[9];
    NEAR(bl__days_left(used, slope * 86400000.0), (100.0 - used) / 2.0);
    /* noise around a trend still gives the trend */
    double w[6] = {10, 12, 11, 13, 12, 14}, u[6] = {0, 1, 2, 3, 4, 5};
    assert_int_equal(bl__linfit(u, w, 6, &slope, &icpt), 0);
    assert_true(slope > 0.6 && slope < 0.7); /* least squares: 0.657 */
    assert_true(bl__days_left(50, 0) < 0);   /* not growing: no days-left */
    assert_true(bl__days_left(50, -1) < 0);
    assert_true(bl__days_left(120, 1) == 0);
    assert_int_equal(bl__linfit(u, w, 1, &slope, &icpt), -1);
    double same[3] = {5, 5, 5};
    assert_int_equal(bl__linfit(same, w, 3, &slope, &icpt), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_healthy),
        cmocka_unit_test(test_one_failed_of_three),
        cmocka_unit_test(test_warnings_lower_the_score),
        cmocka_unit_test(test_no_leader),
        cmocka_unit_test(test_coordinator_quorum_lost),
        cmocka_unit_test(test_maintenance),
        cmocka_unit_test(test_left_members_ignored_and_empty),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_trend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
