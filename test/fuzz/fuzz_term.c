/* fuzz_term.c - libFuzzer target for the bounds-checked term walker (c_src/dist/term.c).
 *
 * The promise of bl_term_check is that a term it accepts can be handed to ei_decode_* (which never
 * checks buffer ends). So whenever it accepts, the term is copied so that it ends exactly at the
 * end of a heap block (ASan) and, separately, at a PROT_NONE page (catches over-reads inside
 * uninstrumented libc, e.g. ei's sscanf), and ei_skip_term, ei_print_term and ei_s_print_term are
 * run on it. When they succeed they must stop where bl_term_check stopped, otherwise abort
 * (ei_skip_term: not past it; it can stop early, see run_ei).
 *
 * ei may still *reject* an accepted term: bl_term_check checks structure and bounds, not meaning
 * (a FLOAT_EXT that is not a number, a NEW_FUN whose module is not an atom, an atom that
 * ei_print_term cannot convert to Latin-1). That is safe and tolerated; set BL_FUZZ_STRICT=1 to
 * abort on it too and list those disagreements. See fuzz_common.h for libei defects worked
 * around. The input may start with the 131 version byte, which is skipped. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ei.h>

#include "dist/term.h"
#include "fuzz_common.h"

static int strict = -1;
static FILE *devnull;

static void die(const char *what, size_t want, int got)
{
    fprintf(stderr, "fuzz_term: %s (bl_term_check end %zu, ei %d)\n", what, want, got);
    abort();
}

static void run_ei(const char *t, size_t n)
{
    int idx = 0;
    if (ei_skip_term(t, &idx) == 0) {
        /* ei_skip_term ignores errors inside lists/tuples/maps and then "succeeds" short of the
         * end (libei defect); only going past the end would be a bounds problem */
        if ((size_t)idx > n || (strict && (size_t)idx != n))
            die("ei_skip_term length differs", n, idx);
    } else if (strict) {
        die("ei_skip_term rejected an accepted term", n, idx);
    }

    idx = 0;
    if (has_fun(t, &idx, 0)) return; /* see fuzz_common.h */
    idx = 0;
    if (ei_print_term(devnull, t, &idx) >= 0) {
        if ((size_t)idx != n) die("ei_print_term length differs", n, idx);
    } else if (strict) {
        die("ei_print_term rejected an accepted term", n, idx);
    }

    if (n >= S_PRINT_MAX) return;
    char *s = NULL;
    idx = 0;
    int r = ei_s_print_term(&s, t, &idx);
    free(s);
    if (r >= 0) {
        if ((size_t)idx != n) die("ei_s_print_term length differs", n, idx);
    } else if (strict) {
        die("ei_s_print_term rejected an accepted term", n, idx);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (strict < 0) strict = getenv("BL_FUZZ_STRICT") && atoi(getenv("BL_FUZZ_STRICT"));
    if (!devnull) devnull = fopen("/dev/null", "w");
    size_t start = size > 0 && data[0] == 131 ? 1 : 0;
    size_t end = start;
    if (bl_term_check((const char *)data, size, &end) != 0) return 0;
    if (end <= start || end > size) die("accepted with a bad end", end, -1);
    size_t n = end - start;

    char *t = malloc(n);
    if (!t) return 0;
    memcpy(t, data + start, n);
    run_ei(t, n);
    free(t);

    const char *g = guard_copy(data + start, n);
    if (g) run_ei(g, n);
    return 0;
}
