/* promtext.h - Prometheus text exposition helpers (promtext.c): a growing text buffer, family
 * headers, label escaping, and the merge of members' texts under a `node` label. */
#ifndef BL_GATEWAY_PROMTEXT_H
#define BL_GATEWAY_PROMTEXT_H

#include <stddef.h>

typedef struct {
    char *s;
    size_t len, cap;
    int oom; /* a realloc failed: the text is incomplete */
} sbuf;

void bl__sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "# HELP name help" and "# TYPE name type" */
void bl__prom_family(sbuf *b, const char *name, const char *type, const char *help);
/* a label value with \\, " and newline escaped, cut to fit outsz */
void bl__prom_esc(char *out, size_t outsz, const char *v);
/* n members' texts (not NUL-terminated: lens) -> one text, each family's HELP/TYPE once, every
 * sample with node="NODE" first among its labels. malloc'd; NULL when out of memory. */
char *bl__prom_merge(const char *const *nodes, const char *const *texts, const size_t *lens, int n,
                     size_t *outlen);

#endif
