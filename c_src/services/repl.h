/* repl.h - the replicated-table layer under the cluster services (docs/services.md,
 * "Replication"). Private to libbeamlet: services/ only.
 *
 * Wire lists: one canonical encoding, a proper list with its length in one header ([A, B, C]).
 * The decoder also walks chained cells ([A | [B | [C | []]]], what older nodes sent) and rejects
 * an improper tail. */
#ifndef BL_SERVICES_REPL_H
#define BL_SERVICES_REPL_H

#include <ei.h>

/* Iterates the elements of an encoded list, across chained cells. */
typedef struct bl__list_it {
    const char *buf;
    int *idx;
    int left; /* elements left in the current cell run */
    int state; /* 0 walking, 1 ended at [], -1 not a list or improper tail */
} bl__list_it;

/* Start on the list at *idx. Returns 0, or -1 when the term is not a list. */
int bl__list_begin(bl__list_it *it, const char *buf, int *idx);
/* 1: the next element starts at *idx (the caller decodes it, moving *idx past it);
 * 0: the list ended with [] (*idx is past it); -1: an improper tail or a malformed list. */
int bl__list_next(bl__list_it *it);

#endif
