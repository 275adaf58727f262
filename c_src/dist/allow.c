/* allow.c - the node allow-list: parsing and matching (see allow.h). */
#include "allow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ALLOW_NODE, ALLOW_NAME, ALLOW_HOST } allow_kind;

typedef struct {
    allow_kind kind;
    char *text; /* NAME@HOST, NAME or HOST */
} allow_ent;

struct bl_allow {
    size_t n;
    allow_ent *e;
    char *buf; /* owns every entry's text */
};

bl_allow *bl_allow_parse(const char *list)
{
    bl_allow *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',' || *p == ' ';
    a->e = calloc(cap, sizeof(*a->e));
    a->buf = strdup(list);
    if (!a->e || !a->buf) {
        bl_allow_free(a);
        return NULL;
    }
    char *save = NULL;
    for (char *t = strtok_r(a->buf, ", ", &save); t && a->n < cap; t = strtok_r(NULL, ", ", &save)) {
        allow_ent *e = &a->e[a->n++];
        char *at = strchr(t, '@');
        e->text = t;
        if (!at) {
            e->kind = ALLOW_HOST;
        } else if (!at[1]) {
            e->kind = ALLOW_NAME;
            *at = 0;
        } else {
            e->kind = ALLOW_NODE;
        }
    }
    return a;
}

void bl_allow_free(bl_allow *a)
{
    if (!a) return;
    free(a->e);
    free(a->buf);
    free(a);
}

size_t bl_allow_count(const bl_allow *a)
{
    return a ? a->n : 0;
}

int bl_allow_match(const bl_allow *a, const char *node)
{
    if (!a || a->n == 0) return 1;
    const char *at = strchr(node, '@');
    size_t nl = at ? (size_t)(at - node) : strlen(node);
    const char *host = at ? at + 1 : "";
    for (size_t i = 0; i < a->n; i++) {
        const allow_ent *e = &a->e[i];
        switch (e->kind) {
        case ALLOW_NODE:
            if (!strcmp(e->text, node)) return 1;
            break;
        case ALLOW_NAME:
            if (strlen(e->text) == nl && !strncmp(e->text, node, nl)) return 1;
            break;
        case ALLOW_HOST:
            if (at && !strcmp(e->text, host)) return 1;
            break;
        }
    }
    return 0;
}
