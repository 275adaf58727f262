/* pubsub_topic.c - topics and patterns of pub/sub (docs/services.md, "Pub/sub"): a topic is
 * dot-separated non-empty levels; a pattern may use `*` (one level) and `#` (the rest, last level
 * only). Validation and matching. */
#include "pubsub_int.h"

#include <string.h>

/* ---- topics ---- */

static int check(const char *s, int pattern)
{
    if (!s) return 0;
    size_t len = strnlen(s, BL_PUBSUB_TOPIC_LEN);
    if (len == 0 || len >= BL_PUBSUB_TOPIC_LEN) return 0;
    const char *lv = s;
    for (;;) {
        const char *dot = strchr(lv, '.');
        size_t l = dot ? (size_t)(dot - lv) : strlen(lv);
        if (l == 0) return 0;
        for (size_t i = 0; i < l; i++) {
            if (lv[i] != '*' && lv[i] != '#') continue;
            if (!pattern || l != 1) return 0;
            if (lv[i] == '#' && dot) return 0; /* '#' only as the last level */
        }
        if (!dot) return 1;
        lv = dot + 1;
    }
}

int bl_pubsub_topic_valid(const char *topic)
{
    return check(topic, 0);
}

int bl_pubsub_pattern_valid(const char *pattern)
{
    return check(pattern, 1);
}

int bl__ps_match_levels(const char *p, const char *t)
{
    for (;;) {
        if (p[0] == '#' && p[1] == '\0') return 1;
        const char *pd = strchr(p, '.'), *td = t ? strchr(t, '.') : NULL;
        size_t pl = pd ? (size_t)(pd - p) : strlen(p);
        if (!t) return 0; /* pattern levels left, topic exhausted */
        size_t tl = td ? (size_t)(td - t) : strlen(t);
        if (!(pl == 1 && p[0] == '*') && (pl != tl || memcmp(p, t, pl))) return 0;
        if (!pd) return td == NULL;
        p = pd + 1;
        t = td ? td + 1 : NULL;
        if (!t && !(p[0] == '#' && p[1] == '\0')) return 0;
    }
}

int bl_pubsub_match(const char *pattern, const char *topic)
{
    if (!bl_pubsub_pattern_valid(pattern) || !bl_pubsub_topic_valid(topic)) return 0;
    return bl__ps_match_levels(pattern, topic);
}
