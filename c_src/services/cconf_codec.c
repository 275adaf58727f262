/* cconf_codec.c - decoding a copy of the cluster configuration from a peer (cconf.h). Everything
 * in it comes from the network: sizes are bounded before anything is allocated, the body must
 * be JSON of the documented shape, and a bad copy is refused whole. */
#include "cconf.h"

#include <stdlib.h>

/* a copy's body: {"kv": {string: string}, "history": [objects]} */
json_t *bl__cconf_body(const char *txt, size_t len)
{
    json_t *d = json_loadb(txt, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *kv = json_object_get(d, "kv"), *h = json_object_get(d, "history");
    const char *k;
    json_t *v;
    size_t i;
    if (!json_is_object(kv) || !json_is_array(h)) goto bad;
    json_object_foreach(kv, k, v) if (!json_is_string(v)) goto bad;
    json_array_foreach(h, i, v) if (!json_is_object(v) ||
                                    !json_is_integer(json_object_get(v, "version")) ||
                                    !json_is_string(json_object_get(v, "key"))) goto bad;
    return d;
bad:
    json_decref(d);
    return NULL;
}

int bl__cconf_decode_copy(const char *buf, int *idx, unsigned long long *term,
                          unsigned long long *version, json_t **body)
{
    int ar, type, size;
    *body = NULL;
    if (ei_decode_tuple_header(buf, idx, &ar) < 0 || ar != 3 ||
        ei_decode_ulonglong(buf, idx, term) < 0 || ei_decode_ulonglong(buf, idx, version) < 0 ||
        ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_BINARY_EXT || size < 0 ||
        size > BL__CCONF_MAX_BODY)
        return -1;
    char *txt = malloc((size_t)size + 1);
    long len;
    if (!txt || ei_decode_binary(buf, idx, txt, &len) < 0) {
        free(txt);
        return -1;
    }
    *body = bl__cconf_body(txt, (size_t)len);
    free(txt);
    return 0;
}
