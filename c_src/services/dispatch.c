/* dispatch.c - request dispatch tables for the service processes (dispatch.h). */
#include "dispatch.h"

#include <string.h>

int bl__req_dispatch(const bl__req *table, size_t n, void *svc, const bl_from *from,
                     const char *buf, int idx, ei_x_buff *reply)
{
    char atom[MAXATOMLEN_UTF8];
    int j = idx, arity = 0, type, size;
    if (ei_get_type(buf, &j, &type, &size) < 0) return BL__REQ_NONE;
    if (type == ERL_SMALL_TUPLE_EXT || type == ERL_LARGE_TUPLE_EXT) {
        if (ei_decode_tuple_header(buf, &j, &arity) < 0 || arity < 1) return BL__REQ_NONE;
    }
    if (ei_decode_atom(buf, &j, atom) < 0) return BL__REQ_NONE;
    for (size_t i = 0; i < n; i++)
        if (arity >= table[i].min_arity && arity <= table[i].max_arity &&
            !strcmp(atom, table[i].atom))
            return table[i].fn(svc, from, buf, j, arity, reply);
    return BL__REQ_NONE;
}
