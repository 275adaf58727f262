/* cconf.h - the wire form of a node's copy of the cluster configuration (cconf_codec.c), shared
 * by the service (cconf.c) and its fuzzer (test/fuzz/fuzz_cconf.c), and the service's counters
 * for the gateway's /metrics. Private to libbeamlet.
 *
 * A copy is {Term, Version, Body}: Body a binary holding JSON {"kv": {key: value text},
 * "history": [{"version": N, "key": K, ...}]}. */
#ifndef BL_SERVICES_CCONF_H
#define BL_SERVICES_CCONF_H

#include <ei.h>
#include <jansson.h>
#include <stddef.h>

#define BL__CCONF_MAX_BODY (4 * 1024 * 1024)

/* The body's JSON if it has that shape, else NULL. */
json_t *bl__cconf_body(const char *txt, size_t len);
/* Decode a copy at *idx. -1: not a copy term (malformed message); 0 with *body NULL: a copy
 * whose body is not valid (ignored); 0 with *body (the caller's reference). */
int bl__cconf_decode_copy(const char *buf, int *idx, unsigned long long *term,
                          unsigned long long *version, json_t **body);

/* What /metrics shows of a node's beamlet_config process (-1: it does not run). */
typedef struct bl__cconf_counters {
    unsigned watchers, watchers_max;
    unsigned long long watch_refused;      /* {watch, Pid} refused at the cap */
    unsigned long long committed, pending; /* writes answered committed / pending */
    unsigned long long version;
} bl__cconf_counters;
struct bl_node;
int bl__cconf_stats(struct bl_node *n, bl__cconf_counters *out);

#endif
