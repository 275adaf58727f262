/* config.h - building a bl_config from a JSON file, the environment and command-line flags.
 *
 * Precedence: defaults < JSON file (--config or BEAMLET_CONFIG) < environment < flags. Every
 * invalid value is rejected with a message that names the key. See docs/configuration.md. */
#ifndef BEAMLET_CONFIG_H
#define BEAMLET_CONFIG_H

/* the public API: visible although the library builds with -fvisibility=hidden */
#pragma GCC visibility push(default)

#include <stdio.h>
#include "beamlet.h"

/* Look up an environment variable (getenv, or a table in tests). */
typedef const char *(*bl_getenv_fn)(const char *name);

/* Set one key from its string form ("net_ticktime", "30"). */
int bl_config_set(bl_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Apply a JSON object file. */
int bl_config_load_file(bl_config *cfg, const char *path, char *err, size_t errlen);
/* The whole chain for `beamlet node ARGS`: argv holds only the flags. */
int bl_config_from_args(bl_config *cfg, int argc, char **argv, bl_getenv_fn env, char *err,
                        size_t errlen);
/* One JSON value of a config file as the string bl_config_set takes (arrays joined by commas,
 * the metadata object as k=v pairs). */
typedef struct json_t json_t;
int bl_config_json_value(const char *key, json_t *val, char *buf, size_t buflen, char *err,
                         size_t errlen);
/* The i-th row of the key table (i from 0): its JSON key, flag (or NULL) and environment variable
 * (or NULL); a key may have several rows (environment aliases). Returns 0 past the end. */
int bl_config_key_at(size_t i, const char **key, const char **flag, const char **env);
/* The key table (c_src/cli/config.c): one row per key, its rules in one place. */
typedef enum {
    BL_CFG_STR,    /* text in a char array, with an optional check */
    BL_CFG_ENUM,   /* one of |-separated choices, kept as text */
    BL_CFG_UINT,   /* unsigned in [lo, hi] */
    BL_CFG_INT,    /* int in [lo, hi] */
    BL_CFG_SIZE,   /* size_t in [lo, hi] */
    BL_CFG_DOUBLE, /* double in [lo, hi] */
    BL_CFG_BOOL,   /* true/false (1/0) in an int */
    BL_CFG_CUSTOM, /* the check stores the value, show reads it back */
} bl_config_type;

#define BL_CFG_LIVE 0x1u /* a running node applies a new value at once (SIGHUP, cluster config) */
#define BL_CFG_CLUSTER 0x2u /* may be set cluster-wide (`beamlet config set`); others: per node */
#define BL_CFG_SECRET 0x4u  /* never printed */
#define BL_CFG_ALIAS 0x8u   /* another environment name of the next row with the same key */

typedef struct bl_config_keydef bl_config_keydef;
struct bl_config_keydef {
    const char *key, *flag, *env; /* JSON key; flag and environment variable, or NULL */
    bl_config_type type;
    unsigned flags;   /* BL_CFG_* */
    const char *def;  /* the default as bl_config_get shows it */
    const char *help; /* one line for `beamlet help` and docs/configuration.md */
    /* how the value is kept and checked (config.c's business) */
    size_t off, size;
    double lo, hi;
    const char *choices; /* BL_CFG_ENUM: "a|b"; numbers: the unit in errors (" ms") */
    int (*check)(bl_config *cfg, const bl_config_keydef *k, const char *v, char *err,
                 size_t errlen);
    int (*show)(const bl_config *cfg, char *buf, size_t len);
};

/* The i-th row (from 0), or NULL past the end. */
const bl_config_keydef *bl_config_key_info(size_t i);
/* The row of a JSON key (not an alias row), or NULL. */
const bl_config_keydef *bl_config_key_find(const char *key);
/* A key's current value as text (the form bl_config_set takes). 0 for an unknown key. */
int bl_config_get(const bl_config *cfg, const char *key, char *buf, size_t len);
/* Would bl_config_set accept value on a copy of cfg? Nothing in cfg changes. */
int bl_config_check(const bl_config *cfg, const char *key, const char *value, char *err,
                    size_t errlen);
/* The rules between keys (election_timeout_ms > heartbeat_interval_ms, ...): BL_OK, or
 * BL_ECONFIG with the first problem in err ("invalid KEY: why") and each problem passed to
 * each (may be NULL). involving: only the rules that read this key (NULL: all). */
int bl_config_check_between(const bl_config *cfg, const char *involving, char *err, size_t errlen,
                            void (*each)(const char *key, const char *msg, void *ud), void *ud);
/* Change a live key (BL_CFG_LIVE) of a running node, on its loop thread: checked as
 * bl_config_set does, then applied and every module told. BL_EINVAL (err: "KEY needs a
 * restart") for a key that is not live; BL_ECONFIG for a bad value (nothing changes). */
int bl_config_apply(bl_node *n, const char *key, const char *value, char *err, size_t errlen);
/* The cluster configuration (docs/configuration.md): 1 and the value when key is set
 * cluster-wide in the document this node holds, else 0. */
int bl_config_cluster_get(bl_node *n, const char *key, char *buf, size_t len);
/* The node's own configuration changed (SIGHUP): what an unset goes back to from now on. */
void bl_config_cluster_set_base(bl_node *n, const bl_config *own);
/* Print the keys, flags and env variables. */
void bl_config_usage(FILE *out);

#pragma GCC visibility pop

#endif
