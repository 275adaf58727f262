/* fuzz_keysync.c - the API key sync decoder of the gateway (c_src/gateway/keycodec.c), which
 * reads what other gateways send ({bl_gw_keys, [Key]}): any term that bl_term_check accepts
 * (what the runtime hands a process) must decode without a crash, an over-read or a write past a
 * field, and every key it accepts must survive a re-encode and decode unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/term.h"
#include "gateway/gw_int.h"

typedef struct {
    int n;
    int bad;
} ctx;

static void same(const gw_apikey *a, void *ud)
{
    gw_apikey *b = ud;
    if (strcmp(a->id, b->id) || strcmp(a->name, b->name) || a->role != b->role ||
        memcmp(a->hash, b->hash, 32) || a->created_ms != b->created_ms ||
        strcmp(a->created_on, b->created_on) || a->revoked != b->revoked ||
        a->revoked_ms != b->revoked_ms)
        abort();
}

static void check(const gw_apikey *k, void *ud)
{
    ctx *c = ud;
    c->n++;
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_list_header(&x, 1);
    bl__gw_key_encode(&x, k);
    ei_x_encode_empty_list(&x);
    int i = 0;
    gw_apikey copy = *k;
    if (bl__gw_keys_decode(x.buff, &i, same, &copy) != 1) c->bad = 1;
    ei_x_free(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *b = malloc(size ? size : 1); /* exact size: ASan sees any read past the end */
    if (!b) return 0;
    memcpy(b, data, size);
    size_t end = 0;
    if (bl_term_check(b, size, &end) != 0 || end != size) {
        free(b);
        return 0;
    }
    int idx = 0;
    ctx c = {0, 0};
    int n = bl__gw_keys_decode(b, &idx, check, &c);
    if (c.bad || (n >= 0 && n != c.n) || idx < 0) abort();
    free(b);
    return 0;
}
