/* intern.c - node names interned per node, and the one place where pids cross the ei boundary.
 *
 * A bl_pid is {interned node name, generation, num, serial, creation}: a few words instead of
 * ei's erlang_pid with its 1 KB inline node name, so every link, monitor, pg member, global name
 * and subscription holds 24 bytes for its pid. Every pid this node makes or decodes points at an
 * entry of the node's own table (n->intern); two pids of one node compare by pointer.
 *
 * Bounded: at most `cap` names (4096, or 4 x max_connections when that is larger). A churny
 * cluster (CLI tool nodes, pods with fresh names) reaches the cap over time: then every entry
 * whose node is neither this node nor has a connection (up or being set up) is forgotten at once,
 * with one log line. A forgotten entry is recycled with a new generation, so a pid that still
 * names it is detectably stale, never silently another node's: bl_pid_node() answers "" for it,
 * sends to it fail with BL_ENODEDOWN, and it encodes as an error. Every table that keeps pids of
 * remote nodes (links, monitors, pg, global, registry watchers, subscriptions) drops them when
 * the node goes down, so what can go stale is a pid an application kept itself for a node that
 * is down. When even a sweep frees nothing (more live connections than the cap), decoding a pid
 * of a new node fails (the message is dropped as malformed) with a log line.
 *
 * A forgotten name's text stays allocated until the sweep after its entry is reused, so a
 * bl_pid_node() answer taken just before stays readable meanwhile. Entries are freed with the node
 * (bl__intern_free from bl_node_free).
 *
 * The ei boundary: bl_decode_pid (ei_decode_pid, then intern), bl_encode_pid/bl_x_encode_pid
 * (ei_encode_pid from the interned name), and the two conversions for the control codec of
 * dist/control.c, which keeps ei's erlang_pid for the one frame it decodes or encodes. */
#include "internal.h"

#include <stdlib.h>

#define INTERN_MIN_CAP 4096u

struct bl_nodename {
    UT_hash_handle hh;       /* in tab->live, keyed by name */
    struct bl__intern *tab;  /* the table (the node) it belongs to */
    char *name;              /* kept on the free list; buried when the entry is reused */
    unsigned gen;            /* bumped each time the entry is forgotten */
    int pinned;              /* this node's own name: never forgotten */
    struct bl_nodename *all; /* every entry ever made, for bl__intern_free */
    struct bl_nodename *free_next;
};

struct bl__intern {
    bl_nodename *live; /* hash by name */
    bl_nodename *all;  /* every entry (live and free) */
    bl_nodename *free; /* recycled entries */
    unsigned nlive, cap;
    unsigned long long forgotten, refused, sweeps;
    char **grave; /* names of reused entries: freed at the next sweep, not at once */
    unsigned ngrave, grave_cap;
};

static const char EMPTY[] = "";

static unsigned cap_for(const bl_node *n)
{
    unsigned c = n->cfg.max_connections > INTERN_MIN_CAP / 4 ? n->cfg.max_connections * 4u : 0u;
    return c > INTERN_MIN_CAP ? c : INTERN_MIN_CAP;
}

int bl__intern_init(bl_node *n)
{
    n->intern = calloc(1, sizeof(*n->intern));
    if (!n->intern) return BL_ENOMEM;
    n->intern->cap = cap_for(n);
    bl_pid self;
    if (bl__pid_make(n, n->name, 0, 0, 0, &self) != BL_OK) return BL_ENOMEM;
    ((bl_nodename *)self.node)->pinned = 1;
    n->self_name = self.node;
    return BL_OK;
}

void bl__intern_free(bl_node *n)
{
    bl__intern *t = n->intern;
    if (!t) return;
    HASH_CLEAR(hh, t->live);
    bl_nodename *e = t->all;
    while (e) {
        bl_nodename *next = e->all;
        free(e->name);
        free(e);
        e = next;
    }
    for (unsigned i = 0; i < t->ngrave; i++)
        free(t->grave[i]);
    free(t->grave);
    free(t);
    n->intern = NULL;
    n->self_name = NULL;
}

/* At the cap: forget every entry no connection and not this node uses. */
static unsigned sweep(bl_node *n)
{
    bl__intern *t = n->intern;
    bl_nodename *e, *tmp;
    unsigned freed = 0;
    t->sweeps++;
    for (unsigned i = 0; i < t->ngrave; i++)
        free(t->grave[i]);
    t->ngrave = 0;
    HASH_ITER(hh, t->live, e, tmp)
    {
        bl_conn *c = e->pinned ? NULL : bl_conn_find(n, e->name);
        if (e->pinned || (c && c->state != CONN_DOWN)) continue;
        HASH_DEL(t->live, e);
        e->gen++; /* its text stays until the entry is reused, then until the next sweep */
        e->free_next = t->free;
        t->free = e;
        t->nlive--;
        freed++;
    }
    t->forgotten += freed;
    bl_log(n, freed ? BL_LOG_INFO : BL_LOG_WARN,
           "intern: node-name table at its cap (%u names): forgot %u names of nodes without a "
           "connection (pids of those nodes kept elsewhere are stale now; %llu forgotten so far)",
           t->cap, freed, t->forgotten);
    return freed;
}

/* A reused entry's old name: a caller may still hold bl_pid_node()'s answer of a moment ago
 * (the forgotten node's), so it lives until the next sweep. */
static void bury(bl__intern *t, char *name)
{
    if (t->ngrave == t->grave_cap) {
        unsigned c = t->grave_cap ? t->grave_cap * 2 : 64;
        char **g = realloc(t->grave, sizeof(*g) * c);
        if (!g) {
            free(name);
            return;
        }
        t->grave = g;
        t->grave_cap = c;
    }
    t->grave[t->ngrave++] = name;
}

/* The entry for name (interned now if new); NULL when the table is full or out of memory. */
static const bl_nodename *intern(bl_node *n, const char *name, unsigned *gen)
{
    bl__intern *t = n->intern;
    bl_nodename *e = NULL;
    size_t len = strlen(name);
    HASH_FIND(hh, t->live, name, (unsigned)len, e);
    if (e) {
        *gen = e->gen;
        return e;
    }
    if (t->nlive >= t->cap && !sweep(n)) {
        t->refused++;
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, name, len + 1);
    if ((e = t->free)) {
        t->free = e->free_next;
        bury(t, e->name);
    } else {
        if (!(e = calloc(1, sizeof(*e)))) {
            free(copy);
            return NULL;
        }
        e->tab = t;
        e->all = t->all;
        t->all = e;
    }
    e->name = copy;
    e->free_next = NULL;
    HASH_ADD_KEYPTR(hh, t->live, e->name, (unsigned)len, e);
    t->nlive++;
    *gen = e->gen;
    return e;
}

void bl__intern_stats(const bl_node *n, unsigned *live, unsigned *cap,
                      unsigned long long *forgotten)
{
    const bl__intern *t = n->intern;
    *live = t ? t->nlive : 0;
    *cap = t ? t->cap : 0;
    *forgotten = t ? t->forgotten : 0;
}

/* ---- pids ---- */

int bl__pid_stale(const bl_pid *p)
{
    return !p->node || p->node->gen != p->gen || !p->node->name;
}

const char *bl_pid_node(const bl_pid *p)
{
    if (!p || bl__pid_stale(p)) return EMPTY;
    return p->node->name;
}

int bl_pid_equal(const bl_pid *a, const bl_pid *b)
{
    if (a->num != b->num || a->serial != b->serial || a->creation != b->creation) return 0;
    if (a->node == b->node) return a->gen == b->gen;
    /* pids interned by two different nodes of one process: compare the names */
    if (!a->node || !b->node || a->node->tab == b->node->tab) return 0;
    if (bl__pid_stale(a) || bl__pid_stale(b)) return 0;
    return strcmp(a->node->name, b->node->name) == 0;
}

int bl_pid_is_on(const bl_pid *p, const char *node)
{
    return node && strcmp(bl_pid_node(p), node) == 0;
}

int bl_pid_format(const bl_pid *p, char *buf, size_t len)
{
    return snprintf(buf, len, "<%s.%u.%u>", bl_pid_node(p), p->num, p->serial);
}

int bl__pid_make(bl_node *n, const char *node, unsigned num, unsigned serial, unsigned creation,
                 bl_pid *out)
{
    unsigned gen = 0;
    const bl_nodename *e = node && *node ? intern(n, node, &gen) : NULL;
    if (!e) return node && *node ? BL_ENOMEM : BL_EINVAL;
    out->node = e;
    out->gen = gen;
    out->num = num;
    out->serial = serial;
    out->creation = creation;
    return BL_OK;
}

int bl_pid_make(bl_node *n, const char *node, unsigned num, unsigned serial, unsigned creation,
                bl_pid *out)
{
    if (!n || !node || !out || strlen(node) >= BL_NODE_LEN || !strchr(node, '@')) return BL_EINVAL;
    return bl__pid_make(n, node, num, serial, creation, out);
}

int bl__pid_from_ei(bl_node *n, const erlang_pid *e, bl_pid *out)
{
    int rc = bl__pid_make(n, e->node, e->num, e->serial, e->creation, out);
    if (rc == BL_ENOMEM && n->intern && n->intern->refused)
        bl_log(n, BL_LOG_WARN, "intern: a pid of %s dropped: the node-name table is full", e->node);
    return rc;
}

int bl__pid_to_ei(const bl_pid *p, erlang_pid *out)
{
    if (bl__pid_stale(p)) return -1;
    size_t l = strlen(p->node->name);
    if (l >= sizeof(out->node)) return -1;
    memcpy(out->node, p->node->name, l + 1);
    out->num = p->num;
    out->serial = p->serial;
    out->creation = p->creation;
    return 0;
}

int bl_decode_pid(bl_node *n, const char *buf, int *index, bl_pid *out)
{
    erlang_pid e;
    int i = *index;
    if (!n || ei_decode_pid(buf, &i, &e) < 0) return -1;
    if (bl__pid_from_ei(n, &e, out) != BL_OK) return -1;
    *index = i;
    return 0;
}

int bl_encode_pid(char *buf, int *index, const bl_pid *p)
{
    erlang_pid e;
    if (bl__pid_to_ei(p, &e) < 0) return -1;
    return ei_encode_pid(buf, index, &e);
}

int bl_x_encode_pid(ei_x_buff *x, const bl_pid *p)
{
    erlang_pid e;
    if (bl__pid_to_ei(p, &e) < 0) return -1;
    return ei_x_encode_pid(x, &e);
}

/* ---- references ---- */

int bl__decode_ref(bl_node *n, const char *buf, int *index, bl__ref *out)
{
    erlang_ref e;
    int i = *index;
    if (!n || ei_decode_ref(buf, &i, &e) < 0 || e.len < 1 || e.len > 5) return -1;
    unsigned gen = 0;
    const bl_nodename *nn = intern(n, e.node, &gen);
    if (!nn) return -1;
    out->node = nn;
    out->gen = gen;
    out->creation = e.creation;
    out->len = e.len;
    memset(out->n, 0, sizeof(out->n));
    memcpy(out->n, e.n, sizeof(unsigned) * (size_t)e.len);
    *index = i;
    return 0;
}

int bl__x_encode_ref(ei_x_buff *x, const bl__ref *r)
{
    if (!r->node || r->node->gen != r->gen || !r->node->name || r->len < 1 || r->len > 5) return -1;
    erlang_ref e;
    size_t l = strlen(r->node->name);
    if (l >= sizeof(e.node)) return -1;
    memset(e.n, 0, sizeof(e.n));
    memcpy(e.node, r->node->name, l + 1);
    e.len = r->len;
    e.creation = r->creation;
    memcpy(e.n, r->n, sizeof(unsigned) * (size_t)r->len);
    return ei_x_encode_ref(x, &e);
}

int bl__ref_equal(const bl__ref *a, const bl__ref *b)
{
    if (a->len != b->len || a->creation != b->creation ||
        memcmp(a->n, b->n, sizeof(unsigned) * (size_t)a->len) != 0)
        return 0;
    if (a->node == b->node) return a->gen == b->gen;
    if (!a->node || !b->node || a->node->tab == b->node->tab) return 0;
    return a->node->gen == a->gen && b->node->gen == b->gen && a->node->name && b->node->name &&
           strcmp(a->node->name, b->node->name) == 0;
}

void bl__ref_make(bl_node *n, bl__ref *ref)
{
    memset(ref, 0, sizeof(*ref));
    ref->node = n->self_name;
    ref->gen = 0;
    ref->len = 3;
    ref->creation = n->creation;
    if (++n->ref_ids[0] > 0x3ffff) {
        n->ref_ids[0] = 0;
        if (++n->ref_ids[1] == 0) n->ref_ids[2]++;
    }
    ref->n[0] = n->ref_ids[0];
    ref->n[1] = n->ref_ids[1];
    ref->n[2] = n->ref_ids[2];
}
