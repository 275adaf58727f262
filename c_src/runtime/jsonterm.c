/* jsonterm.c - JSON to an Erlang term (jsonterm.h): one encoder, bounded in depth, for the
 * configuration service, the CLI and the gateway (there were three copies, which differed in
 * key type, reals and the depth bound). */
#include "jsonterm.h"

#include <string.h>

static int enc(const json_t *j, ei_x_buff *x, unsigned flags, int depth)
{
    if (depth > BL__JT_MAX_DEPTH) return -1;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        if (ei_x_encode_map_header(x, (long)json_object_size(j)) < 0) return -1;
        json_object_foreach((json_t *)j, k, v)
        {
            size_t kl = strlen(k);
            /* a UTF-8 atom: at most 255 characters (ei refuses more, and invalid UTF-8) */
            int rc = !(flags & BL__JT_ATOM_KEYS) ? ei_x_encode_binary(x, k, (long)kl)
                     : kl > 4 * 255
                         ? -1
                         : ei_x_encode_atom_len_as(x, k, (int)kl, ERLANG_UTF8, ERLANG_UTF8);
            if (rc < 0 || enc(v, x, flags, depth + 1) < 0) return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        if (json_array_size(j) && ei_x_encode_list_header(x, (long)json_array_size(j)) < 0)
            return -1;
        json_array_foreach(j, i, v)
        {
            if (enc(v, x, flags, depth + 1) < 0) return -1;
        }
        return ei_x_encode_empty_list(x);
    }
    case JSON_STRING:
        return ei_x_encode_binary(x, json_string_value(j), (long)json_string_length(j));
    case JSON_INTEGER:
        return ei_x_encode_longlong(x, json_integer_value(j));
    case JSON_REAL:
        return ei_x_encode_double(x, json_real_value(j));
    case JSON_TRUE:
        return ei_x_encode_atom(x, "true");
    case JSON_FALSE:
        return ei_x_encode_atom(x, "false");
    default:
        return ei_x_encode_atom(x, "undefined");
    }
}

int bl__json_to_term(const json_t *j, ei_x_buff *x, unsigned flags)
{
    return j && x ? enc(j, x, flags, 0) : -1;
}
