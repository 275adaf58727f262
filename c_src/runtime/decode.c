/* decode.c - text out of incoming terms (decode.h). The services each had a copy of these
 * (get_bin, get_str, get_text, get_name), differing in whether a NUL inside a binary or an
 * atom or a string was taken; a NUL inside is refused here everywhere, since the text is used
 * as a C string. */
#include "decode.h"
#include "../dist/term.h"

#include <string.h>

int bl__term_bin(const char *buf, int *idx, char *out, size_t cap)
{
    int type, size, i = *idx;
    long len;
    if (!cap || ei_get_type(buf, &i, &type, &size) < 0 || type != ERL_BINARY_EXT || size < 0 ||
        (size_t)size >= cap || ei_decode_binary(buf, &i, out, &len) < 0)
        return -1;
    out[len] = 0;
    if (memchr(out, 0, (size_t)len)) return -1;
    *idx = i;
    return 0;
}

int bl__term_text(const char *buf, int *idx, char *out, size_t cap)
{
    int type, size, i = *idx;
    if (!cap || ei_get_type(buf, &i, &type, &size) < 0) return -1;
    switch (type) {
    case ERL_BINARY_EXT:
        return bl__term_bin(buf, idx, out, cap);
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &i, a) < 0 || strlen(a) >= cap) return -1;
        memcpy(out, a, strlen(a) + 1);
        break;
    }
    case ERL_STRING_EXT: /* a list of bytes, each 1..255: no NUL but a 0 byte */
        if (size < 0 || (size_t)size >= cap || ei_decode_string(buf, &i, out) < 0 ||
            strlen(out) != (size_t)size)
            return -1;
        break;
    case ERL_NIL_EXT:
        if (bl__skip_term(buf, &i) < 0) return -1;
        out[0] = 0;
        break;
    default:
        return -1;
    }
    *idx = i;
    return 0;
}
