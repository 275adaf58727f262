/* term.c - bounds-checked walk over Erlang external term format (see term.h).
 *
 * Iterative, with an explicit stack of "children left" per open container, so hostile input can
 * neither overflow the C stack here nor pass terms that would overflow it later: ei's own
 * decoders (ei_skip_term, ei_print_term, ...) recurse once per nesting level, list tails
 * included, so terms nested deeper than BL_TERM_MAX_DEPTH are refused. The total of children
 * still expected can never exceed the bytes left (every term needs at least one byte), which
 * bounds absurd counts. Only the node atom of pids/refs/ports and the parts of funs recurse, and
 * funs only to a small depth. */
#include "term.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

#define NEED(n)                                                                                    \
    do {                                                                                           \
        if ((size_t)(n) > len - i) return -1;                                                      \
    } while (0)

#define MAX_FUN_DEPTH 8

/* One atom at *index, bounded. With hooks, an atom cache ref (82) is accepted when h->ref says
 * so, and every other atom is reported to h->atom. */
static int skip_atom(const unsigned char *buf, size_t len, size_t *index, const bl_term_hooks *h)
{
    size_t i = *index;
    NEED(1);
    unsigned char tag = buf[i++];
    size_t n;
    if (tag == 82) { /* ATOM_CACHE_REF: index of a distribution header entry */
        if (!h || !h->ref) return -1;
        NEED(1);
        if (h->ref(h->ud, i - 1, buf[i]) != 0) return -1;
        *index = i + 1;
        return 0;
    }
    if (tag == 100 || tag == 118) {
        NEED(2);
        n = get16(buf + i);
        i += 2;
        if (n > (tag == 100 ? 255u : 255u * 4)) return -1; /* 255 characters */
    } else if (tag == 115 || tag == 119) {
        NEED(1);
        n = buf[i++];
    } else {
        return -1;
    }
    NEED(n);
    if (h && h->atom && h->atom(h->ud, *index, i, n) != 0) return -1;
    *index = i + n;
    return 0;
}

static int check(const char *cbuf, size_t len, size_t *index, int fun_depth, const bl_term_hooks *h)
{
    const unsigned char *buf = (const unsigned char *)cbuf;
    size_t i = *index;
    uint32_t left[BL_TERM_MAX_DEPTH + 1]; /* children still to read, per open container */
    int sp = 0;
    uint64_t pending = 1; /* all children still to read, over all levels */

    if (i > len || fun_depth > MAX_FUN_DEPTH) return -1;
    left[0] = 1;
    while (sp >= 0) {
        if (left[sp] == 0) {
            sp--;
            continue;
        }
        left[sp]--;
        pending--;
        NEED(1);
        unsigned char tag = buf[i++];
        uint64_t kids = 0;
        switch (tag) {
        case 97: /* SMALL_INTEGER */
            NEED(1);
            i += 1;
            break;
        case 98: /* INTEGER */
            NEED(4);
            i += 4;
            break;
        case 99: /* FLOAT (string form): ei reads it as a C string, so it must hold a NUL */
            NEED(31);
            if (!memchr(buf + i, 0, 31)) return -1;
            i += 31;
            break;
        case 70: /* NEW_FLOAT */
            NEED(8);
            i += 8;
            break;
        case 100: /* ATOM_EXT (latin1) */
        case 118: /* ATOM_UTF8 */
        case 115: /* SMALL_ATOM */
        case 119: /* SMALL_ATOM_UTF8 */
        case 82:  /* ATOM_CACHE_REF: only with a hook that resolves it */
            i--;
            if (skip_atom(buf, len, &i, h) != 0) return -1;
            break;
        case 103: /* PID: node, id(4), serial(4), creation(1) */
        case 88:  /* NEW_PID: node, id(4), serial(4), creation(4) */
        case 102: /* PORT: node, id(4), creation(1) */
        case 89:  /* NEW_PORT: node, id(4), creation(4) */
        case 120: /* V4_PORT: node, id(8), creation(4) */
        case 101: /* REFERENCE (old): node, id(4), creation(1) */ {
            if (skip_atom(buf, len, &i, h) != 0) return -1;
            size_t tail = tag == 103   ? 9
                          : tag == 88  ? 12
                          : tag == 102 ? 5
                          : tag == 89  ? 8
                          : tag == 120 ? 12
                                       : 5;
            NEED(tail);
            i += tail;
            break;
        }
        case 114: /* NEW_REFERENCE: len(2), node, creation(1), ids(4*len) */
        case 90: /* NEWER_REFERENCE: len(2), node, creation(4), ids(4*len) */ {
            NEED(2);
            uint16_t n = get16(buf + i);
            i += 2;
            if (n > 5) return -1;
            if (skip_atom(buf, len, &i, h) != 0) return -1;
            size_t tail = (tag == 90 ? 4 : 1) + 4 * (size_t)n;
            NEED(tail);
            i += tail;
            break;
        }
        case 104: /* SMALL_TUPLE */
            NEED(1);
            kids = buf[i++];
            break;
        case 105: /* LARGE_TUPLE */
            NEED(4);
            kids = get32(buf + i);
            i += 4;
            break;
        case 106: /* NIL */
            break;
        case 107: /* STRING_EXT: len(2) bytes */ {
            NEED(2);
            uint16_t n = get16(buf + i);
            i += 2;
            NEED(n);
            i += n;
            break;
        }
        case 108: /* LIST: n(4), elements, tail */
            NEED(4);
            kids = (uint64_t)get32(buf + i) + 1;
            i += 4;
            break;
        case 109: /* BINARY: len(4) bytes */ {
            NEED(4);
            uint32_t n = get32(buf + i);
            i += 4;
            NEED(n);
            i += n;
            break;
        }
        case 77: /* BIT_BINARY: len(4), bits(1), bytes */ {
            NEED(5);
            uint32_t n = get32(buf + i);
            uint8_t bits = buf[i + 4];
            i += 5;
            if (bits < 1 || bits > 8 || n == 0) return -1;
            NEED(n);
            i += n;
            break;
        }
        case 110: /* SMALL_BIG: n(1), sign(1), digits(n) */ {
            NEED(2);
            uint8_t n = buf[i];
            i += 2;
            NEED(n);
            i += n;
            break;
        }
        case 111: /* LARGE_BIG: n(4), sign(1), digits(n) */ {
            NEED(5);
            uint32_t n = get32(buf + i);
            i += 5;
            NEED(n);
            i += n;
            break;
        }
        case 116: /* MAP: arity(4), then 2*arity terms */
            NEED(4);
            kids = 2 * (uint64_t)get32(buf + i);
            i += 4;
            break;
        case 113: /* EXPORT: module atom, function atom, arity small integer */
            if (skip_atom(buf, len, &i, h) != 0 || skip_atom(buf, len, &i, h) != 0) return -1;
            NEED(2);
            if (buf[i] != 97) return -1;
            i += 2;
            break;
        case 112: /* NEW_FUN: size(4) covers the whole fun including the size field */ {
            NEED(4);
            uint32_t n = get32(buf + i);
            if (n < 4 + 1 + 16 + 4 + 4) return -1;
            /* the parts (module, old_index, old_uniq, pid, free vars) must end exactly at size */
            NEED(n);
            size_t start = i;
            size_t j = i + 4 + 1 + 16 + 4;
            uint32_t nfree = get32(buf + j);
            j += 4;
            if ((uint64_t)nfree + 4 > n) return -1;
            if (h && h->fun && h->fun(h->ud, start, 1) != 0) return -1;
            for (uint64_t k = 0; k < 4 + (uint64_t)nfree; k++)
                if (check(cbuf, start + n, &j, fun_depth + 1, h) != 0) return -1;
            if (j != start + n) return -1;
            if (h && h->fun && h->fun(h->ud, start + n, 0) != 0) return -1;
            i = start + n;
            break;
        }
        default: /* LOCAL_EXT (121), FUN (117, pre-R16), unknown */
            return -1;
        }
        if (kids > 0) {
            if (sp + 1 > BL_TERM_MAX_DEPTH) return -1;
            if (kids > len - i || pending + kids > len - i) return -1;
            left[++sp] = (uint32_t)kids;
            pending += kids;
        }
    }
    *index = i;
    return 0;
}

int bl_term_check(const char *buf, size_t len, size_t *index)
{
    return check(buf, len, index, 0, NULL);
}

int bl__skip_term(const char *buf, int *index)
{
    size_t i = (size_t)*index;
    if (*index < 0 || check(buf, SIZE_MAX, &i, 0, NULL) != 0 || i > INT_MAX) return -1;
    *index = (int)i;
    return 0;
}

int bl__term_end(const char *b, int i)
{
    return bl__skip_term(b, &i) < 0 ? -1 : i;
}

int bl_term_walk(const char *buf, size_t len, size_t *index, const bl_term_hooks *h)
{
    return check(buf, len, index, 0, h);
}
