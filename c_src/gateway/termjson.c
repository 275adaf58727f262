/* termjson.c - Erlang terms as JSON, the one rendering the admin CLI and the HTTP gateway share
 * (declared in c_src/cli/render.h and gw_int.h): maps -> objects (keys as strings), lists and
 * tuples -> arrays, atoms -> strings (true/false -> booleans, undefined -> null), binaries ->
 * strings, numbers -> numbers, pids -> "<node.num.serial>". */
#include "../dist/term.h"

#include <ei.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *bl_term_to_json(const char *buf, int *idx);

json_t *bl_term_to_json(const char *buf, int *idx)
{
    int type, size, arity;
    if (ei_get_type(buf, idx, &type, &size) < 0) return NULL;
    switch (type) {
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT:
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        long long v;
        if (ei_decode_longlong(buf, idx, &v) == 0) return json_integer(v);
        unsigned long long u;
        if (ei_decode_ulonglong(buf, idx, &u) == 0) return json_real((double)u);
        bl__skip_term(buf, idx);
        return json_null();
    }
    case ERL_FLOAT_EXT:
    case NEW_FLOAT_EXT: {
        double d;
        ei_decode_double(buf, idx, &d);
        return json_real(d);
    }
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char a[MAXATOMLEN_UTF8];
        ei_decode_atom(buf, idx, a);
        if (!strcmp(a, "true")) return json_true();
        if (!strcmp(a, "false")) return json_false();
        if (!strcmp(a, "undefined")) return json_null();
        return json_string(a);
    }
    case ERL_BINARY_EXT: {
        char *b = malloc((size_t)size + 1);
        long len;
        if (!b) return NULL;
        ei_decode_binary(buf, idx, b, &len);
        json_t *s = json_stringn(b, (size_t)len);
        free(b);
        return s ? s : json_string("<binary>");
    }
    case ERL_MAP_EXT: {
        json_t *o = json_object();
        ei_decode_map_header(buf, idx, &arity);
        for (int i = 0; i < arity; i++) {
            json_t *k = bl_term_to_json(buf, idx);
            json_t *v = bl_term_to_json(buf, idx);
            if (k && json_is_string(k))
                json_object_set_new(o, json_string_value(k), v ? v : json_null());
            else
                json_decref(v);
            json_decref(k);
        }
        return o;
    }
    case ERL_NIL_EXT:
        bl__skip_term(buf, idx);
        return json_array();
    case ERL_STRING_EXT: {
        char *s = malloc((size_t)size + 1);
        if (!s) return NULL;
        ei_decode_string(buf, idx, s);
        json_t *j = json_string(s);
        free(s);
        return j;
    }
    case ERL_LIST_EXT:
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT: {
        json_t *a = json_array();
        if (type != ERL_LIST_EXT) {
            ei_decode_tuple_header(buf, idx, &arity);
            for (int i = 0; i < arity; i++) {
                json_t *v = bl_term_to_json(buf, idx);
                json_array_append_new(a, v ? v : json_null());
            }
            return a;
        }
        /* a list may be built cell by cell: [A | [B | []]]; follow list tails */
        while (ei_get_type(buf, idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
            ei_decode_list_header(buf, idx, &arity);
            for (int i = 0; i < arity; i++) {
                json_t *v = bl_term_to_json(buf, idx);
                json_array_append_new(a, v ? v : json_null());
            }
        }
        bl__skip_term(buf, idx); /* [] or an improper tail */
        return a;
    }
    case ERL_PID_EXT:
    case ERL_NEW_PID_EXT: {
        erlang_pid p;
        char s[MAXATOMLEN_UTF8 + 64];
        if (ei_decode_pid(buf, idx, &p) < 0) return NULL;
        snprintf(s, sizeof(s), "<%s.%u.%u>", p.node, p.num, p.serial);
        return json_string(s);
    }
    case ERL_NEW_REFERENCE_EXT:
    case ERL_NEWER_REFERENCE_EXT: {
        erlang_ref r;
        char s[MAXATOMLEN_UTF8 + 64];
        if (ei_decode_ref(buf, idx, &r) < 0) return NULL;
        snprintf(s, sizeof(s), "#Ref<%s.%u.%u.%u>", r.node, r.n[0], r.len > 1 ? r.n[1] : 0,
                 r.len > 2 ? r.n[2] : 0);
        return json_string(s);
    }
    default: /* funs, ports, bit strings: not rendered (ei_s_print_term has a fixed 2000-byte
              * buffer, so remote terms never go through it) */
        if (bl__skip_term(buf, idx) < 0) return NULL;
        return json_string("<term>");
    }
}
