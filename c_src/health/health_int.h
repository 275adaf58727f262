/* health_int.h - shared by the files of the health service (c_src/health/). */
#ifndef BL_HEALTH_INT_H
#define BL_HEALTH_INT_H

#include "../runtime/internal.h"
#include "beamlet/health.h"

#define BL_HEALTH_NAME "beamlet_health"

/* encode.c: map entries with an atom key */
void bl__kv_u64(ei_x_buff *x, const char *k, unsigned long long v);
void bl__kv_dbl(ei_x_buff *x, const char *k, double v); /* rounded to 3 decimals */
void bl__kv_str(ei_x_buff *x, const char *k, const char *v);
void bl__health_encode_metrics(ei_x_buff *x, const char *node, const bl_health_metrics *m,
                               unsigned interval_ms);

#endif
