/* dispatch.h - request dispatch tables for the service processes: {request atom, arity range,
 * handler} instead of strcmp chains. A request is a bare atom (arity 0) or a tuple whose first
 * element is the atom (arity = the tuple's size). Private to libbeamlet (services/ only). */
#ifndef BL_SERVICES_DISPATCH_H
#define BL_SERVICES_DISPATCH_H

#include "../runtime/internal.h"

/* buf/j: the request, j past its atom; arity as above. The return value is the process's on_call
 * result (0: reply now from *reply, 1: answered later, < 0: no reply). */
typedef int (*bl__req_fn)(void *svc, const bl_from *from, const char *buf, int j, int arity,
                          ei_x_buff *reply);

typedef struct bl__req {
    const char *atom;
    int min_arity, max_arity;
    bl__req_fn fn;
} bl__req;

/* Runs the table's handler for the request at buf[idx]; BL__REQ_NONE when no row matches. */
#define BL__REQ_NONE (-1000)
int bl__req_dispatch(const bl__req *table, size_t n, void *svc, const bl_from *from,
                     const char *buf, int idx, ei_x_buff *reply);

#endif
