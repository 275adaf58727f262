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
/* Print the keys, flags and env variables. */
void bl_config_usage(FILE *out);

#pragma GCC visibility pop

#endif
