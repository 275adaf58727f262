/* config_values.c - a configuration key's current value as text and whether it is secret, for
 * `beamlet config show` and the SIGHUP reload's "what changed". Both come from the one key table
 * in config.c (bl_config_get, BL_CFG_SECRET); a key outside the table is secret when its name
 * says so (secret, password, token, api_key), so nothing prints such a key by accident. */
#include "cli.h"

int bl__cfg_value(const bl_config *cfg, const char *key, char *buf, size_t len)
{
    return bl_config_get(cfg, key, buf, len);
}

int bl__cfg_is_secret(const char *key)
{
    const bl_config_keydef *k = bl_config_key_find(key);
    if (k && (k->flags & BL_CFG_SECRET)) return 1;
    return !strcmp(key, "cookie") || strstr(key, "secret") || strstr(key, "password") ||
           strstr(key, "token") || strstr(key, "api_key");
}
