/* atomcache.c - one side of a connection's distribution atom cache, and the pool of atom texts
 * that a node's caches share (see atomcache.h). */
#include "atomcache.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_BITS 11
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define EMPTY UINT32_MAX                             /* a free word of a side's table */
#define IDX_INVALID ((UINT32_MAX >> SLOT_BITS) - 1u) /* a slot whose content is unknown */
#define IDX_LIMIT IDX_INVALID                        /* pool indices are below this */

struct bl_apool {
    unsigned refs;
    bl_acache_ent **bucket; /* hash chains by text */
    uint32_t nbucket;       /* a power of two */
    bl_acache_ent **ents;   /* index -> entry, NULL when free */
    uint32_t *freeidx;      /* indices given back, reused first */
    uint32_t ncap, top, nfree;
    size_t count, bytes;
};

/* A word at a time (atoms are hashed once per occurrence in every message sent), then murmur3's
 * finalizer so that names differing in one character land far apart. */
static uint64_t text_hash(const char *text, size_t len)
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
    return h;
}

unsigned bl_acache_slot_of(const char *text, size_t len)
{
    return (unsigned)text_hash(text, len) & (BL_ACACHE_SLOTS - 1);
}

/* ---- the pool ---- */

bl_apool *bl_apool_new(void)
{
    bl_apool *p = calloc(1, sizeof(*p));
    if (p) {
        p->refs = 1;
        p->bytes = sizeof(*p);
    }
    return p;
}

bl_apool *bl_apool_ref(bl_apool *p)
{
    if (p) p->refs++;
    return p;
}

void bl_apool_unref(bl_apool *p)
{
    if (!p || --p->refs > 0) return;
    for (uint32_t i = 0; i < p->top; i++)
        free(p->ents[i]);
    free(p->ents);
    free(p->freeidx);
    free(p->bucket);
    free(p);
}

size_t bl_apool_count(const bl_apool *p)
{
    return p ? p->count : 0;
}

size_t bl_apool_bytes(const bl_apool *p)
{
    return p ? p->bytes : 0;
}

static int rehash(bl_apool *p)
{
    uint32_t nb = p->nbucket ? p->nbucket * 2 : 64;
    bl_acache_ent **b = calloc(nb, sizeof(*b));
    if (!b) return -1;
    for (uint32_t i = 0; i < p->nbucket; i++) {
        bl_acache_ent *e = p->bucket[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(p->bucket);
    p->bytes += (size_t)(nb - p->nbucket) * sizeof(*b);
    p->bucket = b;
    p->nbucket = nb;
    return 0;
}

static int new_index(bl_apool *p, uint32_t *idx)
{
    if (p->nfree) {
        *idx = p->freeidx[--p->nfree];
        return 0;
    }
    if (p->top == p->ncap) {
        if (p->ncap >= IDX_LIMIT) return -1;
        uint32_t nc = p->ncap ? p->ncap * 2 : 64;
        if (nc > IDX_LIMIT) nc = IDX_LIMIT;
        bl_acache_ent **ne = realloc(p->ents, nc * sizeof(*ne));
        if (!ne) return -1;
        p->ents = ne;
        uint32_t *nf = realloc(p->freeidx, nc * sizeof(*nf));
        if (!nf) return -1; /* the larger ents stays; the next try grows freeidx again */
        p->freeidx = nf;
        p->bytes += (size_t)(nc - p->ncap) * (sizeof(*ne) + sizeof(*nf));
        p->ncap = nc;
    }
    *idx = p->top++;
    return 0;
}

/* The pool's entry for text with one more reference, or NULL when out of memory. */
static bl_acache_ent *intern(bl_apool *p, const char *text, size_t len)
{
    uint64_t h = text_hash(text, len);
    if (p->nbucket) {
        for (bl_acache_ent *e = p->bucket[h & (p->nbucket - 1)]; e; e = e->next)
            if (e->hash == h && e->len == len && memcmp(e->text, text, len) == 0) {
                e->refs++;
                return e;
            }
    }
    if (p->count >= p->nbucket && rehash(p) != 0 && !p->nbucket) return NULL;
    uint32_t idx;
    if (new_index(p, &idx) != 0) return NULL;
    bl_acache_ent *e = malloc(sizeof(*e) + len);
    if (!e) {
        p->freeidx[p->nfree++] = idx;
        return NULL;
    }
    e->hash = h;
    e->refs = 1;
    e->idx = idx;
    e->len = (uint16_t)len;
    memcpy(e->text, text, len);
    e->next = p->bucket[h & (p->nbucket - 1)];
    p->bucket[h & (p->nbucket - 1)] = e;
    p->ents[idx] = e;
    p->count++;
    p->bytes += sizeof(*e) + len;
    return e;
}

static void release(bl_apool *p, bl_acache_ent *e)
{
    if (--e->refs > 0) return;
    bl_acache_ent **pp = &p->bucket[e->hash & (p->nbucket - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    p->ents[e->idx] = NULL;
    p->freeidx[p->nfree++] = e->idx;
    p->count--;
    p->bytes -= sizeof(*e) + e->len;
    free(e);
}

/* ---- one side's table ---- */

void bl_acache_init(bl_acache *a, bl_apool *pool)
{
    memset(a, 0, sizeof(*a));
    a->pool = bl_apool_ref(pool);
}

static bl_acache_ent *word_ent(const bl_acache *a, uint32_t w)
{
    if (w == EMPTY || (w >> SLOT_BITS) == IDX_INVALID) return NULL;
    return a->pool->ents[w >> SLOT_BITS];
}

void bl_acache_free(bl_acache *a)
{
    for (uint32_t i = 0; i < a->cap; i++) {
        bl_acache_ent *e = word_ent(a, a->tab[i]);
        if (e) release(a->pool, e);
    }
    free(a->tab);
    bl_apool_unref(a->pool);
    memset(a, 0, sizeof(*a));
}

/* Linear probing; slots are already spread by the sender's hash, so the slot is the hash. The
 * table is kept at most three quarters full: a connection's few dozen atoms fit 128 words
 * (512 bytes per side), and a full cache 4096 (16 KiB). */
static int full(const bl_acache *a, uint32_t count)
{
    return (uint64_t)count * 4 > (uint64_t)a->cap * 3;
}

static uint32_t find(const bl_acache *a, unsigned slot)
{
    uint32_t mask = a->cap - 1, i = slot & mask;
    while (a->tab[i] != EMPTY && (a->tab[i] & SLOT_MASK) != slot)
        i = (i + 1) & mask;
    return i;
}

const bl_acache_ent *bl_acache_get(const bl_acache *a, unsigned slot)
{
    if (!a->cap) return NULL;
    return word_ent(a, a->tab[find(a, slot)]);
}

static int grow(bl_acache *a)
{
    uint32_t ncap = a->cap ? a->cap * 2 : 16;
    uint32_t *nt = malloc(ncap * sizeof(*nt));
    if (!nt) return -1;
    memset(nt, 0xFF, ncap * sizeof(*nt));
    bl_acache old = *a;
    a->tab = nt;
    a->cap = ncap;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.tab[i] != EMPTY) a->tab[find(a, old.tab[i] & SLOT_MASK)] = old.tab[i];
    free(old.tab);
    a->bytes += (size_t)(ncap - old.cap) * sizeof(*nt);
    return 0;
}

int bl_acache_set(bl_acache *a, unsigned slot, const char *text, size_t len)
{
    if (slot >= BL_ACACHE_SLOTS || len > BL_ACACHE_MAX_TEXT) return -1;
    if (!a->pool && !(a->pool = bl_apool_new())) return -1;
    if (full(a, a->count + 1)) {
        (void)grow(a); /* on failure, an existing slot can still be replaced below */
        if (!a->cap) return -1;
    }
    uint32_t i = find(a, slot);
    uint32_t w = a->tab[i];
    if (w == EMPTY && full(a, a->count + 1)) return -1; /* could not grow for a new slot */
    bl_acache_ent *old = word_ent(a, w);
    if (old && old->len == len && memcmp(old->text, text, len) == 0) return 0;
    bl_acache_ent *e = intern(a->pool, text, len);
    if (old) release(a->pool, old);
    if (w == EMPTY) a->count++;
    a->tab[i] = ((e ? e->idx : IDX_INVALID) << SLOT_BITS) | slot;
    return e ? 0 : -1;
}
