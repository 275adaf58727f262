/* checks.h - the health check engine of a node (checks.c). */
#ifndef BL_HEALTH_CHECKS_H
#define BL_HEALTH_CHECKS_H

#include "health_int.h"

typedef struct bl__checks bl__checks;

bl__checks *bl__checks_new(health *h);
void bl__checks_free(bl__checks *cs);
/* id > 0, BL_EINVAL, BL_EEXIST (name taken), BL_ENOMEM (64 checks at most) */
int bl__checks_add(bl__checks *cs, const bl_health_check_spec *spec);
int bl__checks_remove(bl__checks *cs, const char *name);
void bl__checks_counts(bl__checks *cs, unsigned *pass, unsigned *warn, unsigned *crit);
/* status -1 (no result yet), 0 passing, 1 warning, 2 critical */
int bl__checks_each(bl__checks *cs, void (*fn)(const char *name, int status, void *ud), void *ud);
void bl__checks_encode(bl__checks *cs, ei_x_buff *x); /* a list of maps */
int bl__checks_watch(bl__checks *cs, bl_health_check_cb cb, void *ud);
void bl__checks_unwatch(bl__checks *cs, int id);
const char *bl__check_status_name(int s);
/* Run the check named now (or join the run in flight); cb gets that run's result, once.
 * id > 0 for bl__checks_run_cancel, BL_ENOPROC (no such check), BL_ENOMEM. */
int bl__checks_run_now(bl__checks *cs, const char *name, bl_health_check_cb cb, void *ud);
void bl__checks_run_cancel(bl__checks *cs, int id);
/* The check a registry entry's registration carries (json: an element of health_checks
 * without "name"; NULL: none any more): run as "svc:ID", driving that entry. 0 or -1. */
int bl__checks_entry(bl__checks *cs, const char *id, const char *json);
#include "checks_parse.h" /* bl__checks_parse */

#endif
