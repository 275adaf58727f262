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

/* Past the term at buf[*index] in a buffer that passed bl_term_check as a whole (every message
 * delivered to a process does) or that ei encoded: the same walk as the check, so the two agree
 * on where each term ends. Use it instead of ei_skip_term, which passes over a list or tuple
 * element it cannot decode as if it were not there: whatever is read after that is read from the
 * wrong place and can run past the buffer (fuzz_pg found it in pg's walk). 0, or -1 with *index
 * unchanged. */
int bl__skip_term(const char *buf, int *index);
/* The same as an offset: the end of the term at b[i], or -1. */
int bl__term_end(const char *b, int i);

/* Callbacks for bl_term_walk, called in buffer order (funs' parts included). Either may be NULL. */
typedef struct bl_term_hooks {
    /* An ATOM_CACHE_REF (tag 82) at buf[pos] with index idx, wherever an atom may stand (a term,
     * the node of a pid/port/ref, an export's module or function). Return 0 to accept it as an
     * atom, -1 to reject the term. Without this hook cache refs are rejected. */
    int (*ref)(void *ud, size_t pos, unsigned idx);
    /* Any other atom: its tag at buf[pos], its text at buf[text .. text+len). Return 0 or -1. */
    int (*atom)(void *ud, size_t pos, size_t text, size_t len);
    /* A NEW_FUN (tag 112) whose Size field is at buf[pos]: called with begin = 1 before its parts
     * are walked and with begin = 0 and pos = its end after them. A fun's Size counts its bytes,
     * so whoever changes the length of an atom inside it must rewrite that field. */
    int (*fun)(void *ud, size_t pos, int begin);
    void *ud;
} bl_term_hooks;

/* bl_term_check with hooks (dist/disthdr.c resolves atom cache refs and finds atoms to cache). */
int bl_term_walk(const char *buf, size_t len, size_t *index, const bl_term_hooks *h);

#endif
