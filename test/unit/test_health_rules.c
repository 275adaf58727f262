/* test_health_rules.c - alert rules (c_src/health/rules.c): the built-in rules from the
 * thresholds, config rules replacing, adding and disabling, validation messages, the clear margin
 * (hysteresis) and the pending -> firing -> resolved state machine with its for-duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "health/rules.h"

static const bl__rule *find(const bl__ruleset *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->r[i].name, name)) return &s->r[i];
    return NULL;
}

static void test_builtin(void **state)
{
    (void)state;
    bl_config c;
    bl_config_init(&c);
    bl__ruleset s;
    char err[256];
    assert_int_equal(bl__rules_build(&c, &s, err, sizeof(err)), 0);
    const bl__rule *d = find(&s, "disk_warning");
    assert_non_null(d);
    assert_true(d->threshold == 90 && d->op == BL__OP_GE && d->severity == 1);
    assert_true(find(&s, "disk_critical")->threshold == 95);
    assert_true(find(&s, "memory_low")->threshold == 10 && find(&s, "memory_low")->op == BL__OP_LE);
    assert_int_equal(find(&s, "load_high")->for_ms, 300000); /* 2x cores for 5 min */
    assert_true(find(&s, "load_high")->threshold == 2);
    assert_non_null(find(&s, "member_failed"));
    assert_non_null(find(&s, "no_leader"));
    assert_non_null(find(&s, "quorum_lost"));
    c.disk_warn_percent = 80; /* thresholds follow the config */
    assert_int_equal(bl__rules_build(&c, &s, err, sizeof(err)), 0);
    assert_true(find(&s, "disk_warning")->threshold == 80);
}

static void test_config_rules(void **state)
{
    (void)state;
    bl_config c;
    bl_config_init(&c);
    snprintf(c.alert_rules, sizeof(c.alert_rules),
             "[{\"name\":\"disk_warning\",\"metric\":\"disk.used_percent\",\"op\":\">\","
             "\"threshold\":70,\"severity\":\"warn\",\"for_s\":30,\"clear\":3},"
             "{\"name\":\"load_high\",\"disabled\":true},"
             "{\"name\":\"hot\",\"metric\":\"cpu.percent\",\"op\":\">=\",\"threshold\":95,"
             "\"severity\":\"critical\",\"labels\":{\"team\":\"ops\"},\"summary\":\"CPU hot\"}]");
    bl__ruleset s;
    char err[256];
    int before;
    {
        bl_config d;
        bl_config_init(&d);
        bl__rules_build(&d, &s, err, sizeof(err));
        before = s.n;
    }
    assert_int_equal(bl__rules_build(&c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, before); /* one replaced, one removed, one added */
    const bl__rule *d = find(&s, "disk_warning");
    assert_true(d->threshold == 70 && d->op == BL__OP_GT && d->for_ms == 30000 && d->clear == 3);
    assert_null(find(&s, "load_high"));
    const bl__rule *h = find(&s, "hot");
    assert_non_null(h);
    assert_string_equal(h->labels, "{\"team\":\"ops\"}");
    assert_string_equal(h->summary, "CPU hot");
    assert_int_equal(h->severity, 2);
}

static void test_validation(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        const char *json, *says;
    } BAD[] = {
        {"{}", "not a JSON array"},
        {"[1]", "not a JSON object"},
        {"[{\"metric\":\"cpu.percent\"}]", "needs a \"name\""},
        {"[{\"name\":\"x\",\"metric\":\"nope\",\"op\":\">\",\"threshold\":1,\"severity\":\"warn\"}"
         "]",
         "unknown metric 'nope'"},
        {"[{\"name\":\"x\",\"condition\":\"nope\",\"severity\":\"warn\"}]", "unknown condition"},
        {"[{\"name\":\"x\",\"metric\":\"cpu.percent\",\"op\":\"=\",\"threshold\":1,"
         "\"severity\":\"warn\"}]",
         "\"op\""},
        {"[{\"name\":\"x\",\"metric\":\"cpu.percent\",\"op\":\">\",\"severity\":\"warn\"}]",
         "\"threshold\""},
        {"[{\"name\":\"x\",\"metric\":\"cpu.percent\",\"op\":\">\",\"threshold\":1,"
         "\"severity\":\"loud\"}]",
         "\"severity\""},
        {"[{\"name\":\"x\",\"condition\":\"no_leader\",\"severity\":\"warn\",\"for_s\":-1}]",
         "\"for_s\""},
        {"[{\"name\":\"x\",\"metric\":\"cpu.percent\",\"condition\":\"no_leader\"}]",
         "\"metric\" or \"condition\""},
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        err[0] = 0;
        assert_int_equal(bl__rules_check(BAD[i].json, err, sizeof(err)), -1);
        if (!strstr(err, BAD[i].says))
            fail_msg("%s: '%s' lacks '%s'", BAD[i].json, err, BAD[i].says);
    }
    assert_int_equal(bl__rules_check("[]", err, sizeof(err)), 0);
    assert_int_equal(bl__rules_check("", err, sizeof(err)), 0);
}

static void test_hysteresis(void **state)
{
    (void)state;
    bl__rule r = {.op = BL__OP_GE, .threshold = 90, .clear = 2};
    assert_true(bl__rule_holds(&r, 90, 0));
    assert_false(bl__rule_holds(&r, 89, 0)); /* not yet firing: the threshold */
    assert_true(bl__rule_holds(&r, 89, 1));  /* firing: stays until below 88 */
    assert_true(bl__rule_holds(&r, 88, 1));
    assert_false(bl__rule_holds(&r, 87.9, 1));
    bl__rule lo = {.op = BL__OP_LE, .threshold = 10, .clear = 1};
    assert_true(bl__rule_holds(&lo, 10, 0));
    assert_false(bl__rule_holds(&lo, 10.5, 0));
    assert_true(bl__rule_holds(&lo, 10.5, 1));
    assert_false(bl__rule_holds(&lo, 11.5, 1));
    bl__rule gt = {.op = BL__OP_GT, .threshold = 5};
    assert_false(bl__rule_holds(&gt, 5, 0));
    bl__rule lt = {.op = BL__OP_LT, .threshold = 5};
    assert_true(bl__rule_holds(&lt, 4.9, 0));
}

static void test_state_machine(void **state)
{
    (void)state;
    bl__rule r = {.for_ms = 5000};
    bl__alert_state st;
    unsigned long long since, fired, resolved = 0;
    bl__alert_begin(&r, 1000, &st, &since, &fired);
    assert_int_equal(st, BL__ALERT_PENDING);
    assert_int_equal(bl__alert_step(&r, 1, 3000, &st, since, &fired, &resolved), 0);
    assert_int_equal(st, BL__ALERT_PENDING); /* 2 s of 5 */
    assert_int_equal(bl__alert_step(&r, 1, 6000, &st, since, &fired, &resolved), 1);
    assert_int_equal(st, BL__ALERT_FIRING);
    assert_int_equal(fired, 6000);
    assert_int_equal(bl__alert_step(&r, 1, 7000, &st, since, &fired, &resolved), 0);
    assert_int_equal(bl__alert_step(&r, 0, 8000, &st, since, &fired, &resolved), 1);
    assert_int_equal(st, BL__ALERT_RESOLVED);
    assert_int_equal(resolved, 8000);
    assert_int_equal(bl__alert_step(&r, 1, 9000, &st, since, &fired, &resolved), 0); /* stays */
    /* pending that stops holding before its for-duration: forgotten, never fired */
    bl__alert_begin(&r, 1000, &st, &since, &fired);
    assert_int_equal(bl__alert_step(&r, 0, 2000, &st, since, &fired, &resolved), -1);
    /* no for-duration: firing at once */
    bl__rule now = {.for_ms = 0};
    bl__alert_begin(&now, 500, &st, &since, &fired);
    assert_int_equal(st, BL__ALERT_FIRING);
    assert_int_equal(fired, 500);
    assert_string_equal(bl__alert_state_name(BL__ALERT_FIRING), "firing");
}

/* warning thresholds before critical ones: the keys, then the rules, each error naming them */
static void test_cross_check(void **state)
{
    (void)state;
    bl_config c;
    const char *key = NULL;
    char err[512];
    bl_config_init(&c);
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), 0); /* the defaults */
    c.disk_warn_percent = 96;
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "disk_warn_percent");
    assert_non_null(strstr(err, "disk_crit_percent (95)"));
    assert_non_null(strstr(err, "disk_warning and disk_critical"));
    c.disk_warn_percent = 95; /* equal: allowed (no warning step) */
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), 0);
    bl_config_init(&c);
    c.mem_warn_percent = 3; /* available: warning above the critical level */
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "mem_warn_percent");
    c.mem_warn_percent = c.mem_crit_percent = 0; /* both off */
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), 0);
    bl_config_init(&c);
    c.load_warn_per_cpu = 5;
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "load_warn_per_cpu");
    /* a config rule replacing a built-in one past its critical partner */
    bl_config_init(&c);
    snprintf(c.alert_rules, sizeof(c.alert_rules),
             "[{\"name\":\"disk_warning\",\"metric\":\"disk.used_percent\",\"op\":\">=\","
             "\"threshold\":97,\"severity\":\"warn\"}]");
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "alert_rules");
    assert_non_null(strstr(err, "rule disk_warning"));
    assert_non_null(strstr(err, "rule disk_critical"));
    /* a pair of its own on one mount; another mount or direction is not compared */
    snprintf(c.alert_rules, sizeof(c.alert_rules),
             "[{\"name\":\"var_warn\",\"metric\":\"disk.used_percent\",\"mount\":\"/var\","
             "\"op\":\">\",\"threshold\":85,\"severity\":\"warn\"},"
             "{\"name\":\"var_crit\",\"metric\":\"disk.used_percent\",\"mount\":\"/var\","
             "\"op\":\">\",\"threshold\":80,\"severity\":\"critical\"},"
             "{\"name\":\"home_crit\",\"metric\":\"disk.used_percent\",\"mount\":\"/home\","
             "\"op\":\">\",\"threshold\":50,\"severity\":\"critical\"}]");
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "rule var_warn (warn at disk.used_percent > 85 on /var)"));
    assert_non_null(strstr(err, "rule var_crit"));
    snprintf(c.alert_rules, sizeof(c.alert_rules),
             "[{\"name\":\"var_warn\",\"metric\":\"disk.used_percent\",\"mount\":\"/var\","
             "\"op\":\">\",\"threshold\":75,\"severity\":\"warn\"},"
             "{\"name\":\"var_crit\",\"metric\":\"disk.used_percent\",\"mount\":\"/var\","
             "\"op\":\">\",\"threshold\":80,\"severity\":\"critical\"},"
             "{\"name\":\"home_crit\",\"metric\":\"disk.used_percent\",\"mount\":\"/home\","
             "\"op\":\">\",\"threshold\":50,\"severity\":\"critical\"}]");
    assert_int_equal(bl__rules_cross_check(&c, &key, err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin),       cmocka_unit_test(test_config_rules),
        cmocka_unit_test(test_validation),    cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_state_machine), cmocka_unit_test(test_cross_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
