/* fuzz_health_config.c - libFuzzer target for the health service's config parsers: alert rules
 * (c_src/health/rules.c, bl__rules_check) and health checks (c_src/health/checks_parse.c,
 * bl__checks_parse), both JSON texts from a config file, the environment or a flag, and the
 * warning-before-critical cross-check of the rules (bl__rules_cross_check). The first byte picks
 * the parser; the rest is the text. Every input must give a result or an error
 * message, never a crash, a leak or a read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health/checks_parse.h"
#include "health/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024) return 0;
    char *t = malloc(size);
    if (!t) return 0;
    memcpy(t, data + 1, size - 1);
    t[size - 1] = 0;
    char err[256];
    if (data[0] & 1) {
        static bl_health_check_spec specs[64];
        int n = bl__checks_parse(t, specs, 64, err, sizeof(err));
        if (n < -1 || n > 64) abort();
    } else if (data[0] & 2) {
        static bl_config c; /* the thresholds' defaults; the text as alert_rules */
        memset(&c, 0, sizeof(c));
        c.disk_warn_percent = 90, c.disk_crit_percent = 95;
        c.mem_warn_percent = 10, c.mem_crit_percent = 5;
        c.load_warn_per_cpu = 2, c.load_crit_per_cpu = 4;
        if (size - 1 < sizeof(c.alert_rules)) memcpy(c.alert_rules, t, size);
        const char *key = NULL;
        int rc = bl__rules_cross_check(&c, &key, err, sizeof(err));
        if (rc != 0 && (rc != -1 || !key || !err[0])) abort(); /* a refusal names its key */
    } else {
        int rc = bl__rules_check(t, err, sizeof(err));
        if (rc != 0 && rc != -1) abort();
        if (rc == -1 && !err[0]) abort(); /* a refusal always says why */
    }
    free(t);
    return 0;
}
