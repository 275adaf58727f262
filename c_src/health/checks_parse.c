/* checks_parse.c - the health_checks config text and check targets (checks.h): the JSON array
 * of checks and "IP:PORT" addresses, in a file of their own (jansson and libc only) so the fuzz
 * target needs nothing else. */
#include "checks_parse.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 16

int bl__parse_hostport(const char *t, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[128];
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || strlen(t) >= sizeof(host)) return -1;
    size_t hl = (size_t)(colon - t);
    memcpy(host, t, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) return -1;
    memset(ss, 0, sizeof(*ss));
    if (!strcmp(host, "localhost")) snprintf(host, sizeof(host), "127.0.0.1");
    if (host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = 0;
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*a);
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *sl = sizeof(*a);
    return 0;
}

/* the health_checks config key: [{"name", "http" | "tcp" | "command": [argv], "interval_s",
 * "timeout_s", "consecutive", "service"}] */
int bl__checks_parse(const char *json, bl_health_check_spec *out, int max, char *err, size_t errlen)
{
    if (!json || !*json) return 0;
    json_error_t je;
    json_t *a = json_loads(json, 0, &je);
    int n = 0;
    if (!json_is_array(a)) {
        snprintf(err, errlen, "not a JSON array of checks (%s)", a ? "not an array" : je.text);
        json_decref(a);
        return -1;
    }
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o)
    {
        if (n >= max) {
            snprintf(err, errlen, "more than %d checks", max);
            goto bad;
        }
        bl_health_check_spec *s = &out[n];
        memset(s, 0, sizeof(*s));
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!json_is_object(o) || !name || !*name || strlen(name) >= sizeof(s->name)) {
            snprintf(err, errlen, "a check needs a \"name\" (1..63 characters)");
            goto bad;
        }
        snprintf(s->name, sizeof(s->name), "%s", name);
        for (int k = 0; k < n; k++)
            if (!strcmp(out[k].name, name)) {
                snprintf(err, errlen, "two checks named %s", name);
                goto bad;
            }
        json_t *svc = json_object_get(o, "service");
        if (svc && (!json_is_string(svc) || !json_string_length(svc) ||
                    json_string_length(svc) >= sizeof(s->service))) {
            snprintf(err, errlen,
                     "check %s: \"service\" is a service name or entry id (1..%zu "
                     "characters)",
                     name, sizeof(s->service) - 1);
            goto bad;
        }
        if (svc) snprintf(s->service, sizeof(s->service), "%s", json_string_value(svc));
        const char *http = json_string_value(json_object_get(o, "http"));
        const char *tcp = json_string_value(json_object_get(o, "tcp"));
        json_t *cmd = json_object_get(o, "command");
        if ((http != NULL) + (tcp != NULL) + (cmd != NULL) != 1) {
            snprintf(err, errlen, "check %s: give one of \"http\", \"tcp\", \"command\"", name);
            goto bad;
        }
        if (http) {
            if ((strncmp(http, "http://", 7) && strncmp(http, "https://", 8)) ||
                strlen(http) >= sizeof(s->target)) {
                snprintf(err, errlen, "check %s: \"http\" is an http:// or https:// URL", name);
                goto bad;
            }
            s->kind = BL_CHECK_HTTP;
            snprintf(s->target, sizeof(s->target), "%s", http);
        } else if (tcp) {
            struct sockaddr_storage ss;
            socklen_t sl;
            if (strlen(tcp) >= sizeof(s->target) || bl__parse_hostport(tcp, &ss, &sl) < 0) {
                snprintf(err, errlen, "check %s: \"tcp\" is IP:PORT (or localhost:PORT)", name);
                goto bad;
            }
            s->kind = BL_CHECK_TCP;
            snprintf(s->target, sizeof(s->target), "%s", tcp);
        } else {
            size_t k, off = 0;
            json_t *arg;
            if (!json_is_array(cmd) || !json_array_size(cmd) || json_array_size(cmd) > MAX_ARGS) {
                snprintf(err, errlen, "check %s: \"command\" is an argv array of 1..%d strings",
                         name, MAX_ARGS);
                goto bad;
            }
            s->kind = BL_CHECK_COMMAND;
            json_array_foreach(cmd, k, arg)
            {
                const char *v = json_string_value(arg);
                if (!v || !*v || off + strlen(v) + 2 > sizeof(s->target)) {
                    snprintf(err, errlen, "check %s: \"command\" holds non-empty strings only",
                             name);
                    goto bad;
                }
                memcpy(s->target + off, v, strlen(v) + 1);
                off += strlen(v) + 1;
            }
            s->target[off] = 0;
        }
        static const struct {
            const char *key;
            double lo, hi, mul;
            size_t off;
        } NUMS[] = {
            {"interval_s", 0.1, 86400, 1000, offsetof(bl_health_check_spec, interval_ms)},
            {"timeout_s", 0.1, 3600, 1000, offsetof(bl_health_check_spec, timeout_ms)},
            {"consecutive", 1, 100, 1, offsetof(bl_health_check_spec, consecutive)},
        };
        for (size_t k = 0; k < sizeof(NUMS) / sizeof(NUMS[0]); k++) {
            json_t *v = json_object_get(o, NUMS[k].key);
            if (!v) continue;
            if (!json_is_number(v) || json_number_value(v) < NUMS[k].lo ||
                json_number_value(v) > NUMS[k].hi) {
                snprintf(err, errlen, "check %s: \"%s\" is %g..%g", name, NUMS[k].key, NUMS[k].lo,
                         NUMS[k].hi);
                goto bad;
            }
            *(unsigned *)((char *)s + NUMS[k].off) = (unsigned)(json_number_value(v) * NUMS[k].mul);
        }
        n++;
    }
    json_decref(a);
    return n;
bad:
    json_decref(a);
    return -1;
}
