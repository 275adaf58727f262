/* allow.h - the node allow-list as net_kernel:allow/1 takes it, parsed and matched without the
 * node (so that the fuzzer and the unit tests drive it directly; dist/guard.c applies it).
 *
 * Entries, comma or space separated, matched as OTP's dist_util:is_allowed/2 does: NAME@HOST
 * (that node), NAME@ (that name on any host), HOST (every node on that host). */
#ifndef BL_DIST_ALLOW_H
#define BL_DIST_ALLOW_H

#include <stddef.h>

typedef struct bl_allow bl_allow;

/* Parse list (the text of the `allow` key; config.c has validated it). NULL when out of memory;
 * an empty list gives a list with no entries. */
bl_allow *bl_allow_parse(const char *list);
void bl_allow_free(bl_allow *a);
size_t bl_allow_count(const bl_allow *a);
/* 1 when node ("name@host") matches an entry, or when the list has no entries. */
int bl_allow_match(const bl_allow *a, const char *node);

#endif
