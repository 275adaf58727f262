/* atomcache.h - one side of a connection's distribution atom cache (2048 slots).
 *
 * The distribution header's atom cache has 8 segments of 256 slots; a slot holds an atom's UTF-8
 * text. A connection keeps two: what the peer stored in our cache (incoming headers) and what we
 * stored in the peer's (outgoing headers). Only the slots in use take memory: an open-addressing
 * table of entry pointers that starts empty and grows, so a quiet connection costs nothing and a
 * full one at most 2048 entries of at most 1020 bytes of text each. */
#ifndef BL_DIST_ATOMCACHE_H
#define BL_DIST_ATOMCACHE_H

#include <stddef.h>
#include <stdint.h>

#define BL_ACACHE_SLOTS 2048
#define BL_ACACHE_MAX_TEXT 1020 /* 255 characters of up to 4 UTF-8 bytes */

typedef struct bl_acache_ent {
    uint16_t slot;
    uint16_t len;   /* BL_ACACHE_INVALID: the slot's content is unknown (never matches) */
    uint16_t alloc; /* text bytes allocated */
    char text[];
} bl_acache_ent;

#define BL_ACACHE_INVALID 0xFFFF

typedef struct bl_acache {
    bl_acache_ent **tab; /* cap entries, NULL = free; never shrinks, entries never removed */
    uint32_t cap, count;
    size_t bytes; /* memory held (table + entries) */
} bl_acache;

void bl_acache_free(bl_acache *a);
/* The entry of slot (< BL_ACACHE_SLOTS), or NULL when the slot was never set or is invalid. */
const bl_acache_ent *bl_acache_get(const bl_acache *a, unsigned slot);
/* Store text (len <= BL_ACACHE_MAX_TEXT) in slot, replacing what was there. Returns 0, or -1
 * when out of memory: the slot is then invalid (bl_acache_get returns NULL for it). An entry
 * returned by bl_acache_get for another slot stays valid. */
int bl_acache_set(bl_acache *a, unsigned slot, const char *text, size_t len);
/* The slot an atom is sent through (a hash of its text). */
unsigned bl_acache_slot_of(const char *text, size_t len);

#endif
