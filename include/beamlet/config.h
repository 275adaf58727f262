/* config.h - building a bl_config from a JSON file, the environment and command-line flags.
 *
 * Precedence: defaults < JSON file (--config or BEAMLET_CONFIG) < environment < flags. Every
 * invalid value is rejected with a message that names the key. See docs/configuration.md. */
#ifndef BEAMLET_CONFIG_H
#define BEAMLET_CONFIG_H

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
/* Print the keys, flags and env variables. */
void bl_config_usage(FILE *out);

#endif
