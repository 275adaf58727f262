/* render.c - JSON and tables for the admin commands (see render.h). */
#include "render.h"

#include <ei.h>
#include <stdlib.h>
#include <string.h>

/* bl_term_to_json lives in the library (c_src/gateway/termjson.c): the gateway renders the same
 * replies for HTTP. */

static const char *colour(const char *state)
{
    if (!strcmp(state, "active")) return "\033[32m";
    if (!strcmp(state, "suspected")) return "\033[33m";
    if (!strcmp(state, "failed")) return "\033[31m";
    if (!strcmp(state, "joining")) return "\033[36m";
    return "\033[90m";
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void join_list(json_t *a, char *out, size_t outsz)
{
    size_t off = 0, i;
    json_t *v;
    out[0] = 0;
    json_array_foreach(a, i, v) off +=
        (size_t)snprintf(out + off, off < outsz ? outsz - off : 0, "%s%s", i ? "," : "",
                         json_string_value(v) ? json_string_value(v) : "?");
    if (!out[0]) snprintf(out, outsz, "-");
}

void bl_print_members_table(FILE *out, json_t *members, int tty)
{
    fprintf(out, "%-32s %-12s %-10s %-8s %-10s %-8s %s\n", "NODE", "ROLE", "STATE", "KIND",
            "LAST_SEEN", "VERSION", "CAPABILITIES");
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *state = str(m, "state");
        char caps[256], seen[32];
        join_list(json_object_get(m, "capabilities"), caps, sizeof(caps));
        json_t *ls = json_object_get(m, "last_seen_ms");
        snprintf(seen, sizeof(seen), "%lld ms", ls ? (long long)json_integer_value(ls) : 0LL);
        fprintf(out, "%-32s %-12s %s%-10s%s %-8s %-10s %-8s %s\n", str(m, "node"), str(m, "role"),
                tty ? colour(state) : "", state, tty ? "\033[0m" : "", str(m, "kind"), seen,
                str(m, "version"), caps);
    }
}

void bl_print_status(FILE *out, json_t *s, int tty)
{
    const char *health = str(s, "health");
    json_t *leader = json_object_get(s, "leader");
    fprintf(out, "cluster   %s\n", str(s, "cluster"));
    fprintf(out, "node      %s\n", str(s, "node"));
    fprintf(out, "size      %lld\n", (long long)json_integer_value(json_object_get(s, "size")));
    fprintf(out, "leader    %s (term %lld)\n",
            json_is_string(leader) ? json_string_value(leader) : "none",
            (long long)json_integer_value(json_object_get(s, "term")));
    fprintf(out, "health    %s%s%s\n",
            tty ? (strcmp(health, "healthy") ? "\033[31m" : "\033[32m") : "", health,
            tty ? "\033[0m" : "");
    fprintf(out, "states   ");
    const char *order[] = {"joining", "active", "suspected", "failed", "leaving", "left"};
    json_t *st = json_object_get(s, "states");
    for (int i = 0; i < 6; i++)
        fprintf(out, " %s=%lld", order[i],
                (long long)json_integer_value(json_object_get(st, order[i])));
    fprintf(out, "\n");
}
