/* rules.h - alert rules (rules.c): the built-in defaults, rules from config (`alert_rules`, a
 * JSON array), and the pure state machine of one alert (pending -> firing -> resolved, with a
 * for-duration and a clear margin for hysteresis). */
#ifndef BL_HEALTH_RULES_H
#define BL_HEALTH_RULES_H

#include "beamlet/beamlet.h"

#include <stddef.h>

#define BL__MAX_RULES 64

typedef enum { BL__RULE_METRIC = 0, BL__RULE_CONDITION = 1 } bl__rule_kind;
typedef enum { BL__OP_GT = 0, BL__OP_GE, BL__OP_LT, BL__OP_LE } bl__rule_op;
typedef enum { BL__ALERT_PENDING = 0, BL__ALERT_FIRING, BL__ALERT_RESOLVED } bl__alert_state;

/* metrics: disk.used_percent (one alert per mount), memory.available_percent,
 * load.load1_per_cpu, load.load5_per_cpu, cpu.percent.
 * conditions: member_failed (one per failed member), no_leader, quorum_lost, node_critical,
 * service_critical (one per critical check). */
typedef struct bl__rule {
    char name[48];
    bl__rule_kind kind;
    char what[48];   /* the metric or the condition */
    char mount[128]; /* disk.used_percent: only this mount ("" any) */
    bl__rule_op op;
    double threshold, clear; /* clear: how far back past the threshold before it resolves */
    unsigned for_ms;
    int severity;      /* 1 warn, 2 critical */
    char labels[256];  /* a JSON object text */
    char summary[160]; /* optional text; "" for the built-in wording */
} bl__rule;

typedef struct bl__ruleset {
    int n;
    bl__rule r[BL__MAX_RULES];
} bl__ruleset;

/* The built-in rules from the thresholds of cfg, then cfg->alert_rules on top (a rule with the
 * name of a built-in one replaces it; {"name": N, "disabled": true} removes it). 0, or -1 with
 * the reason in err. */
int bl__rules_build(const bl_config *cfg, bl__ruleset *out, char *err, size_t errlen);
/* Validate an alert_rules JSON text (config.c). */
int bl__rules_check(const char *json, char *err, size_t errlen);
/* The warning thresholds of cfg against their critical ones, once every key is read (at start,
 * on a reload, by `config validate`): disk_warn_percent below disk_crit_percent,
 * mem_warn_percent above mem_crit_percent (memory available), load_warn_per_cpu below
 * load_crit_per_cpu, and among the rules (built-in and alert_rules) every warn rule on a metric
 * before a critical one on the same metric, mount and direction. 0, or -1 with *key the config
 * key to blame and err "invalid KEY: ..." naming the rules. */
int bl__rules_cross_check(const bl_config *cfg, const char **key, char *err, size_t errlen);

/* Does the rule hold for value? When the alert is firing, the clear margin applies. */
int bl__rule_holds(const bl__rule *r, double value, int firing);

/* One alert's state machine. *state and the times are the alert's; holds: the condition now.
 * Returns 1 when the alert changed state (pending->firing, ->resolved), 0 when not, -1 when a
 * pending alert stopped holding before its for-duration (forget it). A new alert starts with
 * bl__alert_begin. */
void bl__alert_begin(const bl__rule *r, unsigned long long now, bl__alert_state *state,
                     unsigned long long *since, unsigned long long *fired);
int bl__alert_step(const bl__rule *r, int holds, unsigned long long now, bl__alert_state *state,
                   unsigned long long since, unsigned long long *fired,
                   unsigned long long *resolved);

const char *bl__alert_state_name(bl__alert_state s);

#endif
