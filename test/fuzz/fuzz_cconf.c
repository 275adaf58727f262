/* fuzz_cconf.c - libFuzzer target for what the cluster configuration takes from the network:
 * a peer's copy of the document (c_src/services/cconf_codec.c, any term bl_term_check accepts)
 * when the first byte is odd; otherwise a key and a value as `beamlet config set` or
 * {set, Key, Value, Who} from any member bring them (the key table's rules, c_src/cli/config.c:
 * bl_config_check and the rules between keys). Every input gives a result or an error that
 * names the key, never a crash, a leak or a change to the configuration checked against. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beamlet/config.h"
#include "dist/term.h"
#include "services/cconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 256 * 1024) return 0;
    if (data[0] & 1) {
        /* a private copy: reads past the input are caught */
        char *buf = malloc(size - 1);
        if (!buf) return 0;
        memcpy(buf, data + 1, size - 1);
        size_t end = 1;
        int idx = 1;
        if ((unsigned char)buf[0] != 131 || bl_term_check(buf, size - 1, &end) != 0) {
            free(buf);
            return 0;
        }
        unsigned long long term, version;
        json_t *body = NULL;
        int rc = bl__cconf_decode_copy(buf, &idx, &term, &version, &body);
        if (rc < 0 && body) abort();
        json_decref(body);
        free(buf);
        return 0;
    }
    /* key: the table row data[1] picks (or the text up to the first NUL); value: the rest */
    static bl_config base;
    static int init;
    if (!init) bl_config_init(&base), init = 1;
    const bl_config_keydef *k = NULL;
    size_t n = 0;
    while (bl_config_key_info(n))
        n++;
    k = bl_config_key_info(data[1] % n);
    char *v = malloc(size);
    if (!v) return 0;
    memcpy(v, data + 2, size - 2);
    v[size - 2] = 0;
    char err[600] = "";
    bl_config before = base;
    int rc = bl_config_check(&base, k->key, v, err, sizeof(err));
    if (memcmp(&before, &base, sizeof(base))) abort(); /* a check never changes anything */
    if (rc != BL_OK && (!err[0] || !strstr(err, k->key))) abort(); /* a refusal names the key */
    if (rc == BL_OK) {
        bl_config *c = malloc(sizeof(*c));
        if (c) {
            *c = base;
            if (bl_config_set(c, k->key, v, err, sizeof(err)) != BL_OK) abort();
            (void)bl_config_check_between(c, k->key, err, sizeof(err), NULL, NULL);
            char back[9000];
            (void)bl_config_get(c, k->key, back, sizeof(back));
            free(c);
        }
    }
    free(v);
    return 0;
}
