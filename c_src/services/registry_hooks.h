/* registry_hooks.h - what the registry (registry.c) lets a higher layer plug in, so it never
 * calls upward: the health service tells it which nodes are in maintenance, whose entries service
 * calls and lookups then leave out (docs/health.md, "Maintenance mode"), and runs the health
 * checks that registrations carry. */
#ifndef BL_SERVICES_REGISTRY_HOOKS_H
#define BL_SERVICES_REGISTRY_HOOKS_H

#include "beamlet/beamlet.h"

/* 1: node's entries are not chosen now. Called on the loop thread, for each entry considered. */
typedef int (*bl__reg_exclude_fn)(bl_node *n, const char *node, void *ud);

/* Install (fn NULL: remove) the hook. BL_OK or BL_ENOPROC (no registry on this node). */
int bl__registry_set_exclude(bl_node *n, bl__reg_exclude_fn fn, void *ud);

/* A local entry registered with a health check ("check" of the registration, a JSON object as
 * in health_checks without "name"), re-registered (check_json NULL: it has none now), or gone
 * (deregistered, expired: check_json NULL). The health service runs the check for the entry.
 * Returns 0, or -1 when the check is malformed (the registration is then refused). */
typedef int (*bl__reg_check_fn)(bl_node *n, const char *id, const char *check_json, void *ud);
int bl__registry_set_check_hook(bl_node *n, bl__reg_check_fn fn, void *ud);

#endif
