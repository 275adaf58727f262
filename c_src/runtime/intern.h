/* intern.h - compact references for the runtime's tables (runtime/intern.c): like bl_pid, a
 * reference's node name is interned in the node that made or decoded it, so a monitor or a call
 * in flight holds 40 bytes for its reference instead of ei's erlang_ref with a 1 KB name. */
#ifndef BL_RUNTIME_INTERN_H
#define BL_RUNTIME_INTERN_H

#include "beamlet/beamlet.h"

typedef struct bl__ref {
    const bl_nodename *node; /* NULL: no reference */
    unsigned gen;
    unsigned creation;
    int len; /* 1..5 words in n */
    unsigned n[5];
} bl__ref;

/* ei's reference format both ways (0 or -1, as ei); decoding interns the node name in n. */
int bl__decode_ref(bl_node *n, const char *buf, int *index, bl__ref *out);
int bl__x_encode_ref(ei_x_buff *x, const bl__ref *r);
/* Same reference: node, creation and every word. */
int bl__ref_equal(const bl__ref *a, const bl__ref *b);
/* A new reference of node n (its own name, creation and a fresh counter). */
void bl__ref_make(bl_node *n, bl__ref *out);

#endif
