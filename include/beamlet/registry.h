/* registry.h - service discovery and load-balanced service calls, seen from C.
 *
 * Every beamlet node runs the `beamlet_registry` process (docs/services.md, "Service registry";
 * usable from BEAM with gen_server:call). A node owns the entries registered on it and replicates
 * them to every beamlet member of its cluster; these functions read and change the same state.
 * Loop thread only, like the rest of the API. */
#ifndef BEAMLET_REGISTRY_H
#define BEAMLET_REGISTRY_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include "beamlet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_REG_ID_LEN 128  /* max id / name length including NUL */
#define BL_REG_STR_LEN 256 /* max address / health endpoint / metadata value including NUL */
#define BL_REG_MAX_TAGS 32 /* per entry */
#define BL_REG_MAX_META 32 /* metadata pairs per entry */

typedef enum { BL_HEALTH_PASSING = 0, BL_HEALTH_WARNING, BL_HEALTH_CRITICAL } bl_health;
typedef enum { BL_LB_ROUND_ROBIN = 0, BL_LB_LEAST_OUTSTANDING } bl_lb_policy;
typedef enum { BL_REG_ADDED = 0, BL_REG_REMOVED, BL_REG_HEALTH_CHANGED } bl_registry_event;

/* One service instance. On input (bl_registry_register) id may be NULL or "" (one is generated),
 * version/address/health_endpoint may be NULL; node is ignored (always this node). On output
 * every string is set and valid only during the callback. */
typedef struct bl_service_entry {
    const char *id, *name, *version, *node, *address, *health_endpoint;
    int port;        /* 0..65535 */
    unsigned ttl_ms; /* 0: no expiry; else removed unless renewed within ttl_ms */
    bl_health health;
    int ntags;
    const char *const *tags;
    int nmeta;
    const char *const *meta_keys, *const *meta_values;
    /* output only: 1 when the entry's node is in maintenance (beamlet node maintenance): service
     * calls and usable lookups leave it out until maintenance ends */
    int maintenance;
    /* input only (bl_registry_register), may be NULL: a health check for this entry, a JSON
     * object as an element of health_checks without "name" ({"http": URL} | {"tcp": "IP:PORT"}
     * | {"command": [argv]}, interval_s, timeout_s, consecutive); this node runs it as check
     * "svc:ID" and the entry's health follows it; it ends with the entry */
    const char *check_json;
} bl_service_entry;

/* A query: every set field must match. NULL / 0 / -1 means "any". */
typedef struct bl_service_query {
    const char *name;
    int ntags_all;
    const char *const *tags_all; /* the entry has every one of these tags */
    int ntags_any;
    const char *const *tags_any; /* the entry has at least one of these tags */
    int health;                  /* -1: any, else a bl_health */
    int nmeta;
    const char *const *meta_keys, *const *meta_values; /* exact matches */
    /* 1: only the instances a service call may choose (not critical, not on a node in
     * maintenance), passing ones before warning ones; 0: every entry, whatever its health */
    int usable;
} bl_service_query;

typedef void (*bl_registry_entry_cb)(bl_node *n, const bl_service_entry *e, void *ud);
typedef void (*bl_registry_watch_cb)(bl_node *n, bl_registry_event ev, const bl_service_entry *e,
                                     void *ud);

/* Register (or replace, same id) a local entry. id_out (may be NULL) receives the id.
 * BL_EINVAL for a malformed entry, BL_ENOMEM when max_entries local entries exist. */
int bl_registry_register(bl_node *n, const bl_service_entry *e, char *id_out, size_t id_len);
/* BL_ENOPROC when this node has no entry with that id. */
int bl_registry_deregister(bl_node *n, const char *id);
int bl_registry_renew(bl_node *n, const char *id);
int bl_registry_set_health(bl_node *n, const char *id, bl_health h);
/* Calls cb for every matching entry (local and replicated); q NULL matches all. Returns the count.
 * An entry's health follows the health check configured for it (health_checks, "service"). */
int bl_registry_find(bl_node *n, const bl_service_query *q, bl_registry_entry_cb cb, void *ud);
/* Watch additions, removals and health changes. Returns an id > 0 or a BL_E* code. */
int bl_registry_watch(bl_node *n, bl_registry_watch_cb cb, void *ud);
void bl_registry_unwatch(bl_node *n, int id);
/* Default policy for service calls and the bound on entries per owner node (0: keep). */
int bl_registry_configure(bl_node *n, bl_lb_policy policy, unsigned max_entries);

/* Per-call options (NULL: the registry's policy, 2 retries). */
typedef struct bl_service_call_opts {
    int policy;  /* -1: default, else a bl_lb_policy */
    int retries; /* further instances tried after a timeout, nodedown or noproc (0..7) */
} bl_service_call_opts;

/* gen_server:call to one healthy instance of service `name`: the registered process named by the
 * entry's metadata "process" (default: the service name) on the entry's node. req is a term body;
 * timeout_ms applies to each attempt. Never blocks. As with bl_call: on an error return (BL_ENOPROC
 * when there is no instance, or every instance failed at once) cb never runs; on BL_OK cb runs
 * once, later, on p with the reply (status 0) or the last error (BL_ETIMEOUT, BL_ENODEDOWN,
 * BL_ENOPROC) after failing over within the retry budget -- unless p ends first: then it is
 * dropped without running cb. */
int bl_service_call(bl_proc *p, const char *name, const char *req, int reqlen, unsigned timeout_ms,
                    const bl_service_call_opts *opts, bl_call_cb cb, void *ud);

const char *bl_health_name(bl_health h);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop

#endif
