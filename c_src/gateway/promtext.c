/* promtext.c - building and merging Prometheus text exposition (0.0.4): a growing buffer,
 * HELP/TYPE headers, label-value escaping, and the merge of several members' texts into one, family
 * by family, with a `node` label added to every sample (/metrics?scope=cluster). The merge parses
 * what members send, so it is fuzzed (test/fuzz/fuzz_promtext.c). */
#include "promtext.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

void bl__sb_add(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && (size_t)k < room) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)k + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
}

void bl__prom_family(sbuf *b, const char *name, const char *type, const char *help)
{
    bl__sb_add(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* a label value with \, " and newline escaped */
void bl__prom_esc(char *out, size_t outsz, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < outsz; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = 0;
}

typedef struct fam {
    UT_hash_handle hh;
    char *name;
    char *head; /* HELP and TYPE lines */
    sbuf samples;
    int order;
} fam;

static void merge_text(fam **fams, int *order, const char *node, const char *text, size_t len)
{
    char enode[512 * 2];
    bl__prom_esc(enode, sizeof(enode), node);
    fam *cur = NULL;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (memchr(p, 0, l)) { /* not text: the line is skipped */
            p += l + 1;
            continue;
        }
        if (l > 7 && (!strncmp(p, "# HELP ", 7) || !strncmp(p, "# TYPE ", 7))) {
            const char *nm = p + 7, *sp = memchr(nm, ' ', l - 7);
            size_t nl2 = sp ? (size_t)(sp - nm) : l - 7;
            fam *f = NULL;
            HASH_FIND(hh, *fams, nm, nl2, f);
            if (!f && (f = calloc(1, sizeof(*f)))) {
                f->name = strndup(nm, nl2);
                f->head = calloc(1, 1);
                f->order = (*order)++;
                HASH_ADD_KEYPTR(hh, *fams, f->name, nl2, f);
            }
            if (f && !f->samples.len) { /* first member's HELP/TYPE lines */
                size_t hl = strlen(f->head);
                if (!strstr(f->head, p[2] == 'H' ? "# HELP " : "# TYPE ")) {
                    char *nh = realloc(f->head, hl + l + 2);
                    if (nh) {
                        memcpy(nh + hl, p, l);
                        nh[hl + l] = '\n';
                        nh[hl + l + 1] = 0;
                        f->head = nh;
                    }
                }
            }
            cur = f;
        } else if (l && p[0] != '#' && cur) {
            const char *brace = memchr(p, '{', l), *sp = memchr(p, ' ', l);
            if (brace && (!sp || brace < sp))
                bl__sb_add(&cur->samples, "%.*snode=\"%s\",%.*s\n", (int)(brace + 1 - p), p, enode,
                           (int)(l - (size_t)(brace + 1 - p)), brace + 1);
            else if (sp)
                bl__sb_add(&cur->samples, "%.*s{node=\"%s\"}%.*s\n", (int)(sp - p), p, enode,
                           (int)(l - (size_t)(sp - p)), sp);
        }
        p += l + 1;
    }
}

static int by_order(fam *a, fam *b)
{
    return a->order - b->order;
}

char *bl__prom_merge(const char *const *nodes, const char *const *texts, const size_t *lens, int n,
                     size_t *outlen)
{
    fam *fams = NULL, *f, *t;
    int order = 0;
    for (int i = 0; i < n; i++)
        merge_text(&fams, &order, nodes[i], texts[i], lens[i]);
    HASH_SORT(fams, by_order);
    sbuf out = {0};
    HASH_ITER(hh, fams, f, t) {
        if (f->samples.len) bl__sb_add(&out, "%s%.*s", f->head, (int)f->samples.len, f->samples.s);
        HASH_DEL(fams, f);
        free(f->name);
        free(f->head);
        free(f->samples.s);
        free(f);
    }
    if (out.oom) {
        free(out.s);
        return NULL;
    }
    if (!out.s && !(out.s = calloc(1, 1))) return NULL;
    *outlen = out.len;
    return out.s;
}
