/* atomcache.h - one side of a connection's distribution atom cache (2048 slots).
 *
 * The distribution header's atom cache has 8 segments of 256 slots; a slot holds an atom's UTF-8
 * text. A connection keeps two: what the peer stored in our cache (incoming headers) and what we
 * stored in the peer's (outgoing headers). In a full mesh every connection caches much the same
 * atoms (the members' node names, the services' tags), so the texts live once in a pool shared
 * by the node's connections (bl_apool, counted references) and a side holds only a table of
 * 4-byte slot -> pool index words that starts empty and grows: a quiet connection costs nothing,
 * one of a 100-node mesh about 1 KiB per side, and a full one 8 KiB per side plus its texts. */
#ifndef BL_DIST_ATOMCACHE_H
#define BL_DIST_ATOMCACHE_H

#include <stddef.h>
#include <stdint.h>

#define BL_ACACHE_SLOTS 2048
#define BL_ACACHE_MAX_TEXT 1020 /* 255 characters of up to 4 UTF-8 bytes */

/* One atom text in a pool; valid while a cache slot refers to it. */
typedef struct bl_acache_ent {
    struct bl_acache_ent *next; /* the pool's hash chain */
    uint64_t hash;
    uint32_t refs, idx;
    uint16_t len;
    char text[];
} bl_acache_ent;

/* The atom texts of a node's caches (one per node; a cache made without one makes its own). */
typedef struct bl_apool bl_apool;
bl_apool *bl_apool_new(void);
bl_apool *bl_apool_ref(bl_apool *p);
void bl_apool_unref(bl_apool *p); /* frees the pool with its last reference */
/* Distinct texts held and the memory they take (entries and the pool's tables). */
size_t bl_apool_count(const bl_apool *p);
size_t bl_apool_bytes(const bl_apool *p);

typedef struct bl_acache {
    bl_apool *pool; /* NULL until the first store, then a private pool (or bl_acache_init's) */
    uint32_t *tab;  /* cap words: (pool index << 11) | slot, or free; never shrinks */
    uint32_t cap, count;
    size_t bytes; /* memory of the table (the texts are the pool's) */
} bl_acache;

/* Use pool's texts (takes a reference); a zeroed bl_acache works too, with a pool of its own. */
void bl_acache_init(bl_acache *a, bl_apool *pool);
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
