/* atomcache.c - one side of a connection's distribution atom cache (see atomcache.h). */
#include "atomcache.h"

#include <stdlib.h>
#include <string.h>

void bl_acache_free(bl_acache *a)
{
    for (uint32_t i = 0; i < a->cap; i++)
        free(a->tab[i]);
    free(a->tab);
    memset(a, 0, sizeof(*a));
}

/* Linear probing; slots are already spread by the sender's hash, so the slot is the hash. The
 * table is kept at most three quarters full: a connection's few dozen atoms fit 128 pointers
 * (1 KiB per side) where half full took 2 KiB, and a full cache still fits 4096. */
static int full(const bl_acache *a, uint32_t count)
{
    return (uint64_t)count * 4 > (uint64_t)a->cap * 3;
}

static uint32_t find(const bl_acache *a, unsigned slot)
{
    uint32_t mask = a->cap - 1, i = slot & mask;
    while (a->tab[i] && a->tab[i]->slot != slot)
        i = (i + 1) & mask;
    return i;
}

const bl_acache_ent *bl_acache_get(const bl_acache *a, unsigned slot)
{
    if (!a->cap) return NULL;
    const bl_acache_ent *e = a->tab[find(a, slot)];
    return e && e->len != BL_ACACHE_INVALID ? e : NULL;
}

static int grow(bl_acache *a)
{
    uint32_t ncap = a->cap ? a->cap * 2 : 16;
    bl_acache_ent **nt = calloc(ncap, sizeof(*nt));
    if (!nt) return -1;
    bl_acache old = *a;
    a->tab = nt;
    a->cap = ncap;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.tab[i]) a->tab[find(a, old.tab[i]->slot)] = old.tab[i];
    free(old.tab);
    a->bytes += (size_t)(ncap - old.cap) * sizeof(*nt);
    return 0;
}

int bl_acache_set(bl_acache *a, unsigned slot, const char *text, size_t len)
{
    if (slot >= BL_ACACHE_SLOTS || len > BL_ACACHE_MAX_TEXT) return -1;
    if (full(a, a->count + 1)) {
        (void)grow(a); /* on failure, an existing slot can still be replaced below */
        if (!a->cap) return -1;
    }
    uint32_t i = find(a, slot);
    bl_acache_ent *e = a->tab[i];
    if (!e && full(a, a->count + 1)) return -1; /* could not grow for a new slot */
    if (e && e->alloc >= len) {                 /* fits: no allocation */
        e->len = (uint16_t)len;
        memcpy(e->text, text, len);
        return 0;
    }
    size_t old = e ? sizeof(*e) + e->alloc : 0;
    bl_acache_ent *ne = realloc(e, sizeof(*ne) + len);
    if (!ne) {
        if (e) e->len = BL_ACACHE_INVALID;
        return -1;
    }
    if (!e) a->count++;
    ne->slot = (uint16_t)slot;
    ne->len = ne->alloc = (uint16_t)len;
    memcpy(ne->text, text, len);
    a->tab[i] = ne;
    a->bytes += sizeof(*ne) + len - old;
    return 0;
}

/* A word at a time (atoms are hashed once per occurrence in every message sent), then murmur3's
 * finalizer so that names differing in one character land far apart. */
unsigned bl_acache_slot_of(const char *text, size_t len)
{
    uint64_t h = len, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, text + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h = (h << 31) | (h >> 33);
    }
    w = 0;
    if (i < len) memcpy(&w, text + i, len - i);
    h ^= w;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return (unsigned)h & (BL_ACACHE_SLOTS - 1);
}
