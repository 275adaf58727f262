/* fuzz_allow.c - libFuzzer target for the node allow-list (c_src/dist/allow.c): the list text
 * (from a config file, the environment or a flag) and a node name as a peer announces it in
 * send_name, separated by the first newline. Every input must parse and match without a crash,
 * a leak or a read out of bounds, and a node named exactly by one of the entries always
 * matches. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/allow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024) return 0;
    char *t = malloc(size + 1);
    if (!t) return 0;
    memcpy(t, data, size);
    t[size] = 0;
    char *node = strchr(t, '\n');
    if (node) *node++ = 0;
    else node = t + size;
    bl_allow *a = bl_allow_parse(t);
    if (!a) abort();
    int m = bl_allow_match(a, node);
    if (m != 0 && m != 1) abort();
    if (m != bl_allow_match(a, node)) abort();
    if (bl_allow_count(a) == 0 && !m) abort(); /* no entries: every node */
    /* a NAME@HOST entry equal to the node always matches */
    const char *at = strchr(node, '@');
    if (at && at != node && at[1] && !strchr(at + 1, '@') && !strpbrk(node, ", ")) {
        size_t nl = strlen(node);
        for (const char *p = strstr(t, node); p; p = strstr(p + 1, node)) {
            int starts = p == t || p[-1] == ',' || p[-1] == ' ';
            int ends = p[nl] == 0 || p[nl] == ',' || p[nl] == ' ';
            if (starts && ends && !m) abort();
        }
    }
    bl_allow_free(a);
    free(t);
    return 0;
}
