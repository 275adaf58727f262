/* fuzz_common.h - shared by the fuzz targets (included once per target).
 *
 * guard_copy: ASan only sees reads made by instrumented code; ei calls into libc (sscanf, ...)
 * which is not instrumented. A copy that ends exactly at an inaccessible page turns any over-read,
 * from anywhere, into a SIGSEGV the fuzzer reports.
 *
 * Known libei (OTP 25) defects the targets work around, so that they report beamlet bugs only:
 *  - ei_print_term/ei_s_print_term never free what ei_decode_fun allocates (closure free
 *    variables, long export function names). Terms holding a fun are therefore not printed
 *    (has_fun); a leak report would also make libFuzzer run a slow leak check on every such
 *    input. The suppression below covers what slips through (ei_decode_fun also leaks when an
 *    export's function is not an atom). beamlet's own parsers do not allocate, so no beamlet
 *    leak can hide behind this.
 *  - ei_s_print_term formats each piece with vsprintf into a 2000-byte stack buffer: a bignum of
 *    more than ~995 digit bytes, or an export fun with very long names, overflows it. So
 *    ei_s_print_term is only run on terms shorter than S_PRINT_MAX; ei_print_term (to a FILE)
 *    has no such buffer and runs on everything. */
#ifndef BL_FUZZ_COMMON_H
#define BL_FUZZ_COMMON_H

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ei.h>
#include <stdio.h>
#include <stdlib.h>

#include "beamlet/beamlet.h"

#define GUARD_MAX (2u << 20) /* largest copy */
#define S_PRINT_MAX 900      /* no single printed piece of a shorter term reaches 2000 chars */

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:ei_decode_fun\n";
}

/* A node to intern decoded pids in (runtime/intern.c): made once, kept for the whole run (its
 * bounded name table is what random pids fill). */
static inline bl_node *fuzz_node(void)
{
    static bl_node *n;
    if (!n) {
        bl_config cfg;
        bl_config_init(&cfg);
        snprintf(cfg.name, sizeof(cfg.name), "fuzz@localhost");
        snprintf(cfg.cookie, sizeof(cfg.cookie), "fuzz");
        cfg.log_level = BL_LOG_ERROR;
        if (bl_node_new(&cfg, &n) != BL_OK) abort();
    }
    return n;
}

/* Whether the term at buf[*idx] (already accepted by bl_term_check) holds a fun, or cannot be
 * walked. Advances *idx past the term when it returns 0. */
static inline int has_fun(const char *buf, int *idx, int depth)
{
    int type, n;
    if (depth > 2000 || ei_get_type(buf, idx, &type, &n) < 0) return 1;
    unsigned char tag = (unsigned char)buf[*idx];
    if (tag == 112 || tag == 113 || tag == 117) return 1;
    if (tag == 104 || tag == 105) {
        if (ei_decode_tuple_header(buf, idx, &n) < 0) return 1;
    } else if (tag == 116) {
        if (ei_decode_map_header(buf, idx, &n) < 0) return 1;
        n *= 2;
    } else if (tag == 108) {
        if (ei_decode_list_header(buf, idx, &n) < 0) return 1;
        n += 1; /* the tail */
    } else {
        return ei_skip_term(buf, idx) < 0;
    }
    for (int i = 0; i < n; i++)
        if (has_fun(buf, idx, depth + 1)) return 1;
    return 0;
}

/* Returns a pointer to a copy of src[0..n) whose last byte precedes a guard page, or NULL. */
static inline char *guard_copy(const void *src, size_t n)
{
    static char *base;
    static size_t room;
    if (!base) {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        room = (GUARD_MAX + pg - 1) / pg * pg;
        char *m = mmap(NULL, room + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        if (mprotect(m + room, pg, PROT_NONE) != 0) return NULL;
        base = m;
    }
    if (n > room) return NULL;
    char *dst = base + room - n;
    if (n) memcpy(dst, src, n);
    return dst;
}

#endif
