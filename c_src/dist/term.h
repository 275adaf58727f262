/* term.h - bounds-checked walk over Erlang external term format.
 *
 * ei_decode_* never checks the end of its buffer, so every term that arrives from the network is
 * first walked here with explicit bounds. Only a term that passes may be handed to ei_decode_*. */
#ifndef BL_DIST_TERM_H
#define BL_DIST_TERM_H

#include <stddef.h>

/* Deepest nesting accepted (tuples, lists including list tails, maps). ei's decoders recurse
 * once per level, so deeper terms could overflow the stack of whoever decodes them. */
#define BL_TERM_MAX_DEPTH 2048

/* Walk one term starting at buf[*index] (no version byte), staying inside len bytes.
 * On success advances *index past the term and returns 0; returns -1 on any malformed,
 * truncated, too deeply nested or unsupported input (atom cache refs, LOCAL_EXT, absurd sizes).
 * A term it accepts can be skipped and decoded by ei without reading past len. */
int bl_term_check(const char *buf, size_t len, size_t *index);

#endif
