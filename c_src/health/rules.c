/* rules.c - alert rules and the alert state machine (rules.h).
 *
 * Built-in rules (thresholds from the node status keys):
 *   disk_warning     disk.used_percent >= disk_warn_percent          warn      clear 1
 *   disk_critical    disk.used_percent >= disk_crit_percent          critical  clear 1
 *   memory_low       memory.available_percent <= mem_warn_percent    warn      for 60 s, clear 1
 *   memory_critical  memory.available_percent <= mem_crit_percent    critical  for 30 s, clear 1
 *   load_high        load.load1_per_cpu >= load_warn_per_cpu         warn      for 300 s, clear 0.2
 *   member_failed    a member failed                                 critical
 *   no_leader        coordinators but no leader                      critical  for 10 s
 *   quorum_lost      a majority of coordinators (members) unreachable critical
 *   service_critical a health check critical (one alert per node and check) critical
 * A config rule: {"name", "metric" | "condition", "op" (> >= < <=), "threshold", "for_s",
 * "severity" (warn | critical), "clear", "mount", "labels" (object), "summary"}. */
#include "rules.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const METRICS[] = {"disk.used_percent", "memory.available_percent",
                                      "load.load1_per_cpu", "load.load5_per_cpu", "cpu.percent"};
static const char *const CONDITIONS[] = {"member_failed", "no_leader", "quorum_lost",
                                         "node_critical", "service_critical"};

static void add(bl__ruleset *s, const char *name, bl__rule_kind kind, const char *what,
                bl__rule_op op, double thr, double clear, unsigned for_s, int sev)
{
    if (s->n >= BL__MAX_RULES) return;
    bl__rule *r = &s->r[s->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->kind = kind;
    snprintf(r->what, sizeof(r->what), "%s", what);
    r->op = op;
    r->threshold = thr;
    r->clear = clear;
    r->for_ms = for_s * 1000;
    r->severity = sev;
    snprintf(r->labels, sizeof(r->labels), "{}");
}

static int one_of(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i])) return 1;
    return 0;
}

/* parse one config rule into r; 0 or -1 with err */
static int parse_rule(json_t *o, bl__rule *r, int *disabled, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    *disabled = 0;
    if (!json_is_object(o)) return snprintf(err, errlen, "a rule is not a JSON object"), -1;
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !*name || strlen(name) >= sizeof(r->name))
        return snprintf(err, errlen, "a rule needs a \"name\" (1..47 characters)"), -1;
    snprintf(r->name, sizeof(r->name), "%s", name);
    if (json_is_true(json_object_get(o, "disabled"))) {
        *disabled = 1;
        return 0;
    }
    const char *metric = json_string_value(json_object_get(o, "metric"));
    const char *cond = json_string_value(json_object_get(o, "condition"));
    if (!!metric == !!cond)
        return snprintf(err, errlen, "rule %s: give \"metric\" or \"condition\"", name), -1;
    if (metric && !one_of(metric, METRICS, sizeof(METRICS) / sizeof(METRICS[0])))
        return snprintf(err, errlen,
                        "rule %s: unknown metric '%s' (disk.used_percent, "
                        "memory.available_percent, load.load1_per_cpu, load.load5_per_cpu, "
                        "cpu.percent)",
                        name, metric),
               -1;
    if (cond && !one_of(cond, CONDITIONS, sizeof(CONDITIONS) / sizeof(CONDITIONS[0])))
        return snprintf(err, errlen,
                        "rule %s: unknown condition '%s' (member_failed, no_leader, "
                        "quorum_lost, node_critical, service_critical)",
                        name, cond),
               -1;
    r->kind = metric ? BL__RULE_METRIC : BL__RULE_CONDITION;
    snprintf(r->what, sizeof(r->what), "%s", metric ? metric : cond);
    if (metric) {
        const char *op = json_string_value(json_object_get(o, "op"));
        static const char *const OPS[] = {">", ">=", "<", "<="};
        int k = -1;
        for (int i = 0; op && i < 4; i++)
            if (!strcmp(op, OPS[i])) k = i;
        if (k < 0) return snprintf(err, errlen, "rule %s: \"op\" is one of > >= < <=", name), -1;
        r->op = (bl__rule_op)k;
        json_t *t = json_object_get(o, "threshold");
        if (!json_is_number(t))
            return snprintf(err, errlen, "rule %s: \"threshold\" is a number", name), -1;
        r->threshold = json_number_value(t);
    }
    json_t *c = json_object_get(o, "clear");
    if (c && (!json_is_number(c) || json_number_value(c) < 0))
        return snprintf(err, errlen, "rule %s: \"clear\" is a number >= 0", name), -1;
    r->clear = c ? json_number_value(c) : 0;
    json_t *f = json_object_get(o, "for_s");
    if (f && (!json_is_number(f) || json_number_value(f) < 0 || json_number_value(f) > 86400))
        return snprintf(err, errlen, "rule %s: \"for_s\" is 0..86400", name), -1;
    r->for_ms = f ? (unsigned)(json_number_value(f) * 1000.0) : 0;
    const char *sev = json_string_value(json_object_get(o, "severity"));
    if (!sev || (strcmp(sev, "warn") && strcmp(sev, "warning") && strcmp(sev, "critical")))
        return snprintf(err, errlen, "rule %s: \"severity\" is warn or critical", name), -1;
    r->severity = !strcmp(sev, "critical") ? 2 : 1;
    const char *mount = json_string_value(json_object_get(o, "mount"));
    if (mount && strlen(mount) >= sizeof(r->mount))
        return snprintf(err, errlen, "rule %s: \"mount\" too long", name), -1;
    snprintf(r->mount, sizeof(r->mount), "%s", mount ? mount : "");
    json_t *l = json_object_get(o, "labels");
    if (l && !json_is_object(l))
        return snprintf(err, errlen, "rule %s: \"labels\" is an object", name), -1;
    char *lt = l ? json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (lt && strlen(lt) >= sizeof(r->labels)) {
        free(lt);
        return snprintf(err, errlen, "rule %s: \"labels\" too long", name), -1;
    }
    snprintf(r->labels, sizeof(r->labels), "%s", lt ? lt : "{}");
    free(lt);
    const char *sum = json_string_value(json_object_get(o, "summary"));
    snprintf(r->summary, sizeof(r->summary), "%s", sum ? sum : "");
    return 0;
}

static int apply_config(const char *json, bl__ruleset *s, char *err, size_t errlen)
{
    if (!json || !*json) return 0;
    json_error_t je;
    json_t *a = json_loads(json, 0, &je);
    if (!json_is_array(a)) {
        json_decref(a);
        snprintf(err, errlen, "not a JSON array of rules (%s)", a ? "not an array" : je.text);
        return -1;
    }
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach(a, i, o)
    {
        bl__rule r;
        int disabled;
        if ((rc = parse_rule(o, &r, &disabled, err, errlen)) < 0) break;
        int k;
        for (k = 0; k < s->n; k++)
            if (!strcmp(s->r[k].name, r.name)) break;
        if (disabled) {
            if (k < s->n)
                memmove(&s->r[k], &s->r[k + 1], sizeof(s->r[0]) * (size_t)(s->n - k - 1)), s->n--;
        } else if (k < s->n) {
            s->r[k] = r;
        } else if (s->n < BL__MAX_RULES) {
            s->r[s->n++] = r;
        } else {
            snprintf(err, errlen, "more than %d rules", BL__MAX_RULES);
            rc = -1;
            break;
        }
    }
    json_decref(a);
    return rc;
}

int bl__rules_build(const bl_config *c, bl__ruleset *s, char *err, size_t errlen)
{
    s->n = 0;
    add(s, "disk_warning", BL__RULE_METRIC, "disk.used_percent", BL__OP_GE, c->disk_warn_percent, 1,
        0, 1);
    add(s, "disk_critical", BL__RULE_METRIC, "disk.used_percent", BL__OP_GE, c->disk_crit_percent,
        1, 0, 2);
    add(s, "memory_low", BL__RULE_METRIC, "memory.available_percent", BL__OP_LE,
        c->mem_warn_percent, 1, 60, 1);
    add(s, "memory_critical", BL__RULE_METRIC, "memory.available_percent", BL__OP_LE,
        c->mem_crit_percent, 1, 30, 2);
    add(s, "load_high", BL__RULE_METRIC, "load.load1_per_cpu", BL__OP_GE, c->load_warn_per_cpu, 0.2,
        300, 1);
    add(s, "member_failed", BL__RULE_CONDITION, "member_failed", BL__OP_GT, 0, 0, 0, 2);
    add(s, "no_leader", BL__RULE_CONDITION, "no_leader", BL__OP_GT, 0, 0, 10, 2);
    add(s, "quorum_lost", BL__RULE_CONDITION, "quorum_lost", BL__OP_GT, 0, 0, 0, 2);
    add(s, "service_critical", BL__RULE_CONDITION, "service_critical", BL__OP_GT, 0, 0, 0, 2);
    return apply_config(c->alert_rules, s, err, errlen);
}

int bl__rules_check(const char *json, char *err, size_t errlen)
{
    bl__ruleset *s = calloc(1, sizeof(*s));
    if (!s) return snprintf(err, errlen, "out of memory"), -1;
    int rc = apply_config(json, s, err, errlen);
    free(s);
    return rc;
}

static const char *const OPS[] = {">", ">=", "<", "<="};

int bl__rules_cross_check(const bl_config *c, const char **key, char *err, size_t errlen)
{
    /* the node status thresholds: warning first; equal thresholds are allowed (no warning step) */
    static const struct {
        const char *warn, *crit, *rules;
        size_t w, k;
        int down; /* 1: memory available, the lower the worse */
    } PAIRS[] = {
        {"disk_warn_percent", "disk_crit_percent", "rules disk_warning and disk_critical",
         offsetof(bl_config, disk_warn_percent), offsetof(bl_config, disk_crit_percent), 0},
        {"mem_warn_percent", "mem_crit_percent", "rules memory_low and memory_critical",
         offsetof(bl_config, mem_warn_percent), offsetof(bl_config, mem_crit_percent), 1},
        {"load_warn_per_cpu", "load_crit_per_cpu", "the node status and rule load_high",
         offsetof(bl_config, load_warn_per_cpu), offsetof(bl_config, load_crit_per_cpu), 0},
    };
    for (size_t i = 0; i < sizeof(PAIRS) / sizeof(PAIRS[0]); i++) {
        double w = *(const double *)((const char *)c + PAIRS[i].w),
               k = *(const double *)((const char *)c + PAIRS[i].k);
        if (PAIRS[i].down ? w >= k : w <= k) continue;
        *key = PAIRS[i].warn;
        snprintf(err, errlen,
                 "invalid %s: %g is %s %s (%g): a warning must come before the "
                 "critical level (%s)",
                 PAIRS[i].warn, w, PAIRS[i].down ? "below" : "above", PAIRS[i].crit, k,
                 PAIRS[i].rules);
        return -1;
    }
    /* the rules: a warn rule and a critical rule on the same metric, mount and direction */
    bl__ruleset *s = calloc(1, sizeof(*s));
    char why[200];
    if (!s) return *key = "alert_rules", snprintf(err, errlen, "out of memory"), -1;
    if (bl__rules_build(c, s, why, sizeof(why)) < 0) {
        free(s);
        *key = "alert_rules";
        snprintf(err, errlen, "invalid alert_rules: %s", why);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < s->n && !rc; i++)
        for (int j = 0; j < s->n && !rc; j++) {
            const bl__rule *w = &s->r[i], *k = &s->r[j];
            if (w->kind != BL__RULE_METRIC || k->kind != BL__RULE_METRIC || w->severity != 1 ||
                k->severity != 2 || strcmp(w->what, k->what) || strcmp(w->mount, k->mount))
                continue;
            int up = w->op <= BL__OP_GE;
            if (up != (k->op <= BL__OP_GE)) continue;
            if (up ? w->threshold <= k->threshold : w->threshold >= k->threshold) continue;
            *key = "alert_rules";
            snprintf(err, errlen,
                     "invalid alert_rules: rule %s (warn at %s %s %g%s%s) would fire only after "
                     "rule %s (critical at %s %g): a warning threshold must come before its "
                     "critical one",
                     w->name, w->what, OPS[w->op], w->threshold, w->mount[0] ? " on " : "",
                     w->mount, k->name, OPS[k->op], k->threshold);
            rc = -1;
        }
    free(s);
    return rc;
}

int bl__rule_holds(const bl__rule *r, double v, int firing)
{
    double m = firing ? r->clear : 0;
    switch (r->op) {
    case BL__OP_GT:
        return v > r->threshold - m;
    case BL__OP_GE:
        return v >= r->threshold - m;
    case BL__OP_LT:
        return v < r->threshold + m;
    case BL__OP_LE:
        return v <= r->threshold + m;
    }
    return 0;
}

void bl__alert_begin(const bl__rule *r, unsigned long long now, bl__alert_state *state,
                     unsigned long long *since, unsigned long long *fired)
{
    *since = now;
    *fired = 0;
    *state = BL__ALERT_PENDING;
    if (r->for_ms == 0) {
        *state = BL__ALERT_FIRING;
        *fired = now;
    }
}

int bl__alert_step(const bl__rule *r, int holds, unsigned long long now, bl__alert_state *state,
                   unsigned long long since, unsigned long long *fired,
                   unsigned long long *resolved)
{
    switch (*state) {
    case BL__ALERT_PENDING:
        if (!holds) return -1;
        if (now - since >= r->for_ms) {
            *state = BL__ALERT_FIRING;
            *fired = now;
            return 1;
        }
        return 0;
    case BL__ALERT_FIRING:
        if (holds) return 0;
        *state = BL__ALERT_RESOLVED;
        *resolved = now;
        return 1;
    case BL__ALERT_RESOLVED:
        return 0;
    }
    return 0;
}

const char *bl__alert_state_name(bl__alert_state s)
{
    static const char *const N[] = {"pending", "firing", "resolved"};
    return (unsigned)s < 3 ? N[s] : "?";
}
