/* repl.c - the replicated-table layer under the cluster services (repl.h, docs/services.md,
 * "Replication"): the wire list codec the services share. */
#include "repl.h"

int bl__list_begin(bl__list_it *it, const char *buf, int *idx)
{
    int k;
    it->buf = buf;
    it->idx = idx;
    it->left = 0;
    it->state = -1;
    if (ei_decode_list_header(buf, idx, &k) < 0 || k < 0) return -1;
    it->left = k;
    it->state = k == 0 ? 1 : 0;
    return 0;
}

int bl__list_next(bl__list_it *it)
{
    if (it->state) return it->state > 0 ? 0 : -1;
    if (it->left > 0) {
        it->left--;
        return 1;
    }
    /* past the elements of one header: the tail is [] or (chained cells) another list */
    int k;
    if (ei_decode_list_header(it->buf, it->idx, &k) < 0 || k < 0) {
        it->state = -1;
        return -1;
    }
    if (k == 0) {
        it->state = 1;
        return 0;
    }
    it->left = k - 1;
    return 1;
}
