/* decode.h - text out of incoming terms (decode.c), the one way every service reads a name, an
 * id or a topic from a request or a peer's message. */
#ifndef BL_RUNTIME_DECODE_H
#define BL_RUNTIME_DECODE_H

#include <ei.h>
#include <stddef.h>

/* A binary holding no NUL byte that fits in out with its NUL (cap bytes). 0, or -1 (another
 * type, too long, a NUL inside: *idx is then left where it was). */
int bl__term_bin(const char *buf, int *idx, char *out, size_t cap);
/* Text given as a binary (as bl__term_bin), an atom, a string (a list of bytes) or [] (""),
 * NUL-terminated in out. 0 or -1, as bl__term_bin. */
int bl__term_text(const char *buf, int *idx, char *out, size_t cap);

#endif
