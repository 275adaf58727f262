/* repl.c - the replicated-table layer under the cluster services (repl.h; docs/services.md,
 * "Replication"): per-owner buckets, the add/del/sync/want/digest messages, the owner check,
 * membership changes, digest repair and the full-sync-after-a-failed-send rule. The services keep
 * only their domain logic behind a static const bl__repl_ops. */
#include "repl.h"
#include "beamlet/cluster.h"

#include <stdlib.h>
#include <string.h>

#define REPAIR_MS 5000u /* one member in turn gets our digest */
#define RETRY_MS 200u   /* full syncs to members a send failed to */

/* ---- wire lists ---- */

int bl__list_begin(bl__list_it *it, const char *buf, int *idx)
{
    int k;
    it->buf = buf;
    it->idx = idx;
    it->left = 0;
    it->state = -1;
    if (ei_decode_list_header(buf, idx, &k) < 0 || k < 0) return -1;
    it->left = k;
    it->state = k == 0 ? 1 : 0;
    return 0;
}

int bl__list_next(bl__list_it *it)
{
    if (it->state) return it->state > 0 ? 0 : -1;
    if (it->left > 0) {
        it->left--;
        return 1;
    }
    /* past the elements of one header: the tail is [] or (chained cells) another list */
    int k;
    if (ei_decode_list_header(it->buf, it->idx, &k) < 0 || k < 0) {
        it->state = -1;
        return -1;
    }
    if (k == 0) {
        it->state = 1;
        return 0;
    }
    it->left = k - 1;
    return 1;
}

uint64_t bl__repl_hash(const char *p, int len)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- buckets ---- */

typedef struct bl__repl_node {
    UT_hash_handle hh;
    bl__repl_link *head;
    unsigned count;
    uint64_t digest; /* sum of the entries' hashes */
    int need_sync;   /* a send failed: only a full sync may go next */
    long proto;      /* the layer version its digests announce (0: none seen) */
    char node[];     /* sized to the name: one per member and table */
} bl__repl_node;

/* A node whose connection came up before it was a member here (its hello is on the way): when
 * it becomes one, its own sync follows on that connection, so ours goes without a want. */
typedef struct repl_fresh {
    UT_hash_handle hh;
    char node[BL_NODE_LEN];
} repl_fresh;

struct bl__repl {
    bl_node *n;
    char name[BL_NAME_LEN]; /* the service's process on every node */
    bl_proc *proc;
    const bl__repl_ops *ops;
    void *svc;
    bl__repl_node *nodes;
    bl__repl_node *self;
    unsigned gen;
    unsigned long turn;
    int nodemon_id, cluster_sub, repair_timer, retry_timer;
    bl__repl_stats st;
    bl__repl_send_fn send;
    void *send_ud;
    struct repl_wait *waits; /* acked adds in flight */
    repl_fresh *fresh;       /* connected, not a member yet */
    unsigned long long next_seq;
};

/* An add that asked for acks: the peers it went to, which answered. */
typedef struct repl_wait {
    struct repl_wait *next;
    bl__repl *r;
    unsigned long long seq;
    int timer;
    unsigned asked, acked, open;
    char (*nodes)[BL_NODE_LEN];
    unsigned char *state; /* per node: 0 waiting, 1 acked, 2 gone */
    bl__repl_acked_fn done;
    void *ud;
} repl_wait;

static bl__repl_node *node_find(const bl__repl *r, const char *node)
{
    bl__repl_node *rn = NULL;
    HASH_FIND_STR(r->nodes, node, rn);
    return rn;
}

static bl__repl_node *node_get(bl__repl *r, const char *node)
{
    bl__repl_node *rn = node_find(r, node);
    if (rn) return rn;
    size_t len = strlen(node);
    if (len >= BL_NODE_LEN || !(rn = calloc(1, sizeof(*rn) + len + 1))) return NULL;
    memcpy(rn->node, node, len + 1);
    HASH_ADD_STR(r->nodes, node, rn);
    return rn;
}

static void node_free_if_empty(bl__repl *r, bl__repl_node *rn)
{
    if (rn == r->self || rn->head || rn->need_sync) return;
    HASH_DEL(r->nodes, rn);
    free(rn);
}

static void link_in(bl__repl_node *rn, bl__repl_link *e, uint64_t hash)
{
    e->owner = rn;
    e->hash = hash;
    DL_APPEND(rn->head, e);
    rn->count += hash != 0; /* hash 0: kept by the service, no longer the owner's */
    rn->digest += hash;
}

static void link_out(bl__repl_link *e)
{
    bl__repl_node *rn = e->owner;
    if (!rn) return;
    DL_DELETE(rn->head, e);
    rn->count -= e->hash != 0;
    rn->digest -= e->hash;
    e->owner = NULL;
    e->prev = e->next = NULL;
}

/* e leaves its bucket for a domain reason; ops->remove may keep it (put back, outside the
 * digest: the owner no longer counts it). Returns 1 when it was removed. */
static int remove_entry(bl__repl *r, bl__repl_node *rn, bl__repl_link *e, bl__repl_why why)
{
    link_out(e);
    if (!r->ops->remove(r->svc, e, why)) return 1;
    link_in(rn, e, 0); /* kept, outside the owner's count and digest */
    return 0;
}

/* ---- sending ---- */

static void retry_cb(bl_node *n, void *ud);

/* Whom this table talks to: nobody from a tool node (the CLI's client node: the cluster's nodes
 * never take it for a peer, and with no membership layer every node it reaches, a plain BEAM
 * node too, would look like one), else whom the service wants. */
static int wanted(const bl__repl *r, const char *node)
{
    if (bl_is_tool_node(r->n->name)) return 0;
    return !r->ops->wants || r->ops->wants(r->svc, node);
}

static int send_one(bl__repl *r, const char *node, const ei_x_buff *x)
{
    if (!wanted(r, node)) return BL_ENODEDOWN;
    int rc = r->send ? r->send(r->send_ud, node, x) : bl_cluster_send(r->proc, r->name, node, x);
    if (rc == BL_OK) {
        r->st.msgs_out++;
        r->st.bytes_out += (uint64_t)x->index;
        return rc;
    }
    if (rc == BL_ENODEDOWN || rc == BL_ETOOBIG) return rc; /* nodeup resyncs; too big: logged */
    r->st.send_failures++;
    bl__repl_node *rn = node_get(r, node);
    if (rn && !rn->need_sync) {
        rn->need_sync = 1;
        bl_log(r->n, BL_LOG_WARN, "%s: send to %s failed (%s): a full sync follows", r->name, node,
               bl_strerror(rc));
    }
    if (r->retry_timer <= 0) {
        int id = bl_timer(r->n, RETRY_MS, 0, retry_cb, r);
        r->retry_timer = id > 0 ? id : 0;
    }
    return rc;
}

typedef struct {
    bl__repl *r;
    const ei_x_buff *x;
} bcast;

static void bcast_one(bl_node *n, const char *node, void *ud)
{
    (void)n;
    bcast *b = ud;
    bl__repl_node *rn = node_find(b->r, node);
    if (rn && rn->need_sync) return;
    (void)send_one(b->r, node, b->x);
}

static void broadcast(bl__repl *r, const ei_x_buff *x)
{
    bcast b = {r, x};
    bl_cluster_each_peer(r->n, -1, bcast_one, &b);
}

static int msg_head(bl__repl *r, ei_x_buff *x, int arity, const char *tag)
{
    if (ei_x_new_with_version(x) < 0) return -1;
    if (ei_x_encode_tuple_header(x, arity) < 0 || ei_x_encode_atom(x, tag) < 0 ||
        ei_x_encode_atom(x, r->n->name) < 0) {
        ei_x_free(x);
        return -1;
    }
    return 0;
}

/* {add, Self, [E]} or {del, Self, [K]} for one local entry, to every member. */
static void announce(bl__repl *r, const bl__repl_link *e, int del)
{
    ei_x_buff x;
    if (msg_head(r, &x, 3, del ? r->ops->tag_del : r->ops->tag_add) < 0) return;
    if (ei_x_encode_list_header(&x, 1) == 0 &&
        (del ? r->ops->encode_key(r->svc, &x, e) : r->ops->encode(r->svc, &x, e)) == 0 &&
        ei_x_encode_empty_list(&x) == 0)
        broadcast(r, &x);
    ei_x_free(&x);
}

void bl__repl_sync_to(bl__repl *r, const char *node)
{
    ei_x_buff x;
    if (msg_head(r, &x, 3, r->ops->tag_sync) < 0) return;
    bl__repl_link *e;
    int ok = r->self->count == 0 || ei_x_encode_list_header(&x, r->self->count) == 0;
    DL_FOREACH(r->self->head, e) {
        if (!ok) break;
        ok = r->ops->encode(r->svc, &x, e) == 0;
    }
    if (ok && ei_x_encode_empty_list(&x) == 0) {
        r->st.syncs_out++;
        if (send_one(r, node, &x) == BL_OK) {
            bl__repl_node *rn = node_find(r, node);
            if (rn) rn->need_sync = 0;
        }
    }
    ei_x_free(&x);
}

static void want_from(bl__repl *r, const char *node)
{
    ei_x_buff x;
    if (msg_head(r, &x, 2, r->ops->tag_want) < 0) return;
    r->st.wants_out++;
    (void)send_one(r, node, &x);
    ei_x_free(&x);
}

static void digest_to(bl__repl *r, const char *node)
{
    ei_x_buff x;
    if (msg_head(r, &x, 5, r->ops->tag_digest) < 0) return;
    if (ei_x_encode_long(&x, BL__REPL_PROTO) == 0 && ei_x_encode_ulong(&x, r->self->count) == 0 &&
        ei_x_encode_ulonglong(&x, r->self->digest) == 0) {
        r->st.digests_out++;
        (void)send_one(r, node, &x);
    }
    ei_x_free(&x);
}

/* ---- local entries ---- */

int bl__repl_local_put(bl__repl *r, bl__repl_link *e)
{
    ei_x_buff x;
    if (!r) return BL_ENOPROC;
    if (ei_x_new(&x) < 0) return BL_ENOMEM;
    int rc = r->ops->encode(r->svc, &x, e);
    uint64_t h = bl__repl_hash(x.buff, x.index);
    ei_x_free(&x);
    if (rc < 0) return BL_ENOMEM;
    if (e->owner) link_out(e);
    link_in(r->self, e, h);
    announce(r, e, 0);
    return BL_OK;
}

static void wait_finish(repl_wait *w)
{
    bl__repl *r = w->r;
    repl_wait **pp;
    for (pp = &r->waits; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp) *pp = w->next;
    if (w->timer > 0) bl_timer_cancel(r->n, w->timer);
    bl__repl_acked_fn done = w->done;
    void *ud = w->ud;
    unsigned acked = w->acked, asked = w->asked;
    free(w->nodes);
    free(w->state);
    free(w);
    done(ud, acked, asked);
}

static void wait_timeout(bl_node *n, void *ud)
{
    (void)n;
    repl_wait *w = ud;
    w->timer = 0;
    wait_finish(w);
}

/* node answered (acked 1) or went away (0) for every wait that asked it */
static void waits_mark(bl__repl *r, const char *node, unsigned long long seq, int acked)
{
    repl_wait *w = r->waits, *next;
    for (; w; w = next) {
        next = w->next;
        if (acked && w->seq != seq) continue;
        for (unsigned i = 0; i < w->asked; i++) {
            if (w->state[i] || strcmp(w->nodes[i], node)) continue;
            w->state[i] = acked ? 1 : 2;
            w->acked += acked != 0;
            if (--w->open == 0) {
                wait_finish(w);
                break;
            }
        }
        if (acked) return;
    }
}

typedef struct {
    bl__repl *r;
    const ei_x_buff *x;
    repl_wait *w;
    unsigned cap;
} acast;

static void acast_one(bl_node *n, const char *node, void *ud)
{
    (void)n;
    acast *a = ud;
    bl__repl_node *rn = node_find(a->r, node);
    if ((rn && rn->need_sync) || !wanted(a->r, node)) return;
    if (send_one(a->r, node, a->x) != BL_OK) return;
    repl_wait *w = a->w;
    if (w->asked == a->cap) {
        unsigned cap = a->cap ? a->cap * 2 : 8;
        void *nn = realloc(w->nodes, cap * sizeof(*w->nodes));
        if (!nn) return;
        w->nodes = nn;
        void *ns = realloc(w->state, cap);
        if (!ns) return;
        w->state = ns;
        a->cap = cap;
    }
    snprintf(w->nodes[w->asked], BL_NODE_LEN, "%s", node);
    w->state[w->asked++] = 0;
}

int bl__repl_local_put_acked(bl__repl *r, bl__repl_link *e, unsigned timeout_ms,
                             bl__repl_acked_fn done, void *ud)
{
    if (!r) return BL_ENOPROC;
    if (!r->ops->tag_ack) return BL_EINVAL;
    ei_x_buff x;
    if (ei_x_new(&x) < 0) return BL_ENOMEM;
    int rc = r->ops->encode(r->svc, &x, e);
    uint64_t h = bl__repl_hash(x.buff, x.index);
    ei_x_free(&x);
    if (rc < 0) return BL_ENOMEM;
    repl_wait *w = calloc(1, sizeof(*w));
    if (!w) return BL_ENOMEM;
    if (e->owner) link_out(e);
    link_in(r->self, e, h);
    w->r = r;
    w->seq = ++r->next_seq;
    w->done = done;
    w->ud = ud;
    if (msg_head(r, &x, 4, r->ops->tag_add) == 0) {
        if (ei_x_encode_list_header(&x, 1) == 0 && r->ops->encode(r->svc, &x, e) == 0 &&
            ei_x_encode_empty_list(&x) == 0 && ei_x_encode_ulonglong(&x, w->seq) == 0) {
            acast a = {r, &x, w, 0};
            bl_cluster_each_peer(r->n, -1, acast_one, &a);
        }
        ei_x_free(&x);
    }
    w->open = w->asked;
    if (!w->asked) {
        free(w->nodes);
        free(w->state);
        free(w);
        done(ud, 0, 0);
        return BL_OK;
    }
    w->next = r->waits;
    r->waits = w;
    int id = bl_timer(r->n, timeout_ms ? timeout_ms : 5000, 0, wait_timeout, w);
    w->timer = id > 0 ? id : 0;
    return BL_OK;
}

static void send_ack(bl__repl *r, const char *node, unsigned long long seq)
{
    ei_x_buff x;
    if (msg_head(r, &x, 3, r->ops->tag_ack) < 0) return;
    if (ei_x_encode_ulonglong(&x, seq) == 0) (void)send_one(r, node, &x);
    ei_x_free(&x);
}

void bl__repl_remote_put(bl__repl *r, const char *owner, bl__repl_link *e)
{
    bl__repl_node *rn = node_get(r, owner);
    ei_x_buff x;
    if (!rn || rn == r->self || ei_x_new(&x) < 0) return;
    if (r->ops->encode(r->svc, &x, e) == 0) {
        if (e->owner) link_out(e);
        link_in(rn, e, bl__repl_hash(x.buff, x.index));
    }
    ei_x_free(&x);
}

void bl__repl_local_del(bl__repl *r, bl__repl_link *e)
{
    if (!r || e->owner != r->self) return;
    announce(r, e, 1);
    link_out(e);
}

void bl__repl_unlink(bl__repl *r, bl__repl_link *e)
{
    bl__repl_node *rn = e->owner;
    link_out(e);
    if (rn && r) node_free_if_empty(r, rn);
}

void bl__repl_drop_owner(bl__repl *r, const char *owner, const char *why)
{
    bl__repl_node *rn = node_find(r, owner);
    if (!rn || rn == r->self) return;
    rn->need_sync = 0;
    bl__repl_link *list = rn->head, *e, *t;
    rn->head = NULL;
    rn->count = 0;
    rn->digest = 0;
    unsigned k = 0;
    DL_FOREACH_SAFE(list, e, t) {
        e->owner = NULL;
        e->prev = e->next = NULL;
        if (r->ops->remove(r->svc, e, BL__REPL_GONE))
            link_in(rn, e, 0);
        else
            k++;
    }
    if (r->ops->owner_gone) r->ops->owner_gone(r->svc, owner, k, why);
    node_free_if_empty(r, rn);
}

unsigned bl__repl_count(const bl__repl *r, const char *owner)
{
    const bl__repl_node *rn = node_find(r, owner);
    return rn ? rn->count : 0;
}

const bl__repl_stats *bl__repl_get_stats(const bl__repl *r)
{
    return &r->st;
}

void bl__repl_set_send(bl__repl *r, bl__repl_send_fn fn, void *ud)
{
    r->send = fn;
    r->send_ud = ud;
}

/* ---- incoming ---- */

static int get_atom(const char *buf, int *idx, char *out)
{
    erlang_char_encoding was, res;
    return ei_decode_atom_as(buf, idx, out, MAXATOMLEN_UTF8, ERLANG_UTF8, &was, &res);
}

/* The list at idx is a proper list of complete terms (walked, not applied). */
static int list_ok(const char *buf, int idx)
{
    bl__list_it it;
    int more;
    if (bl__list_begin(&it, buf, &idx) < 0) return 0;
    while ((more = bl__list_next(&it)) > 0)
        if (bl__skip_term(buf, &idx) < 0) return 0;
    return more == 0;
}

/* add (sync = 0) or sync (1): every element through ops->upsert; a sync that decoded whole
 * removes the owner's entries it did not name. A list with an improper tail is not applied. */
static int on_entries(bl__repl *r, bl__repl_node *rn, const char *buf, int idx, int sync)
{
    bl__list_it it;
    int more = -1;
    unsigned gen = ++r->gen, applied = 0, stale = 0;
    if (list_ok(buf, idx) && bl__list_begin(&it, buf, &idx) == 0) {
        while ((more = bl__list_next(&it)) > 0) {
            int start = idx;
            bl__repl_link *e = NULL;
            if (r->ops->upsert(r->svc, rn->node, buf, &idx, &e) < 0) {
                more = -1;
                break;
            }
            if (!e) continue;
            if (e->owner) link_out(e);
            link_in(rn, e, bl__repl_hash(buf + start, idx - start));
            e->gen = gen;
            applied++;
        }
    }
    if (more < 0) {
        bl_log(r->n, BL_LOG_WARN, "%s: malformed %s from %s ignored (%u entries applied)", r->name,
               sync ? r->ops->tag_sync : r->ops->tag_add, rn->node, applied);
        return -1; /* a sync is applied whole or the stale part is kept */
    }
    if (!sync) return 0;
    bl__repl_link *e, *t;
    DL_FOREACH_SAFE(rn->head, e, t) {
        if (e->gen == gen || !e->hash) continue; /* named, or kept outside the digest */
        e->gen = gen;
        stale += remove_entry(r, rn, e, BL__REPL_STALE);
    }
    bl_log(r->n, BL_LOG_DEBUG, "%s: sync from %s: %u entries, %u stale removed", r->name, rn->node,
           applied, stale);
    return 0;
}

static void on_del(bl__repl *r, bl__repl_node *rn, const char *buf, int idx)
{
    bl__list_it it;
    int more = -1;
    if (list_ok(buf, idx) && bl__list_begin(&it, buf, &idx) == 0) {
        while ((more = bl__list_next(&it)) > 0) {
            bl__repl_link *e = NULL;
            if (r->ops->find(r->svc, rn->node, buf, &idx, &e) < 0) {
                more = -1;
                break;
            }
            if (e && e->owner == rn) (void)remove_entry(r, rn, e, BL__REPL_DELETED);
        }
    }
    if (more < 0)
        bl_log(r->n, BL_LOG_WARN, "%s: malformed %s from %s ignored", r->name, r->ops->tag_del,
               rn->node);
}

/* The sender is owner itself and a live member. */
static int from_owner(bl__repl *r, const bl_msg *msg, const char *owner)
{
    return msg->has_sender && !strcmp(bl_pid_node(&msg->sender), owner) &&
           bl_cluster_is_peer(r->n, owner);
}

int bl__repl_handle(bl__repl *r, const bl_msg *msg)
{
    const bl__repl_ops *o = r->ops;
    const char *buf = msg->buf;
    int idx = msg->index, arity;
    char tag[MAXATOMLEN_UTF8], owner[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity < 2 || arity > 5 ||
        get_atom(buf, &idx, tag) < 0)
        return 0;
    if (o->tag_ack && !strcmp(tag, o->tag_ack)) {
        unsigned long long seq;
        if (arity == 3 && get_atom(buf, &idx, owner) == 0 &&
            ei_decode_ulonglong(buf, &idx, &seq) == 0 && msg->has_sender &&
            !strcmp(bl_pid_node(&msg->sender), owner))
            waits_mark(r, owner, seq, 1);
        return 1;
    }
    int kind = !strcmp(tag, o->tag_add)      ? 1
               : !strcmp(tag, o->tag_del)    ? 2
               : !strcmp(tag, o->tag_sync)   ? 3
               : !strcmp(tag, o->tag_want)   ? 4
               : !strcmp(tag, o->tag_digest) ? 5
                                             : 0;
    if (!kind) return 0;
    int want_ack = kind == 1 && arity == 4 && o->tag_ack;
    if ((kind <= 3 && arity != 3 && !want_ack) || (kind == 4 && arity != 2) ||
        (kind == 5 && arity != 5) || get_atom(buf, &idx, owner) < 0)
        return 1;
    if (!from_owner(r, msg, owner)) {
        bl_log(r->n, BL_LOG_DEBUG, "%s: %s from %s ignored (not a member)", r->name, tag, owner);
        return 1;
    }
    if (kind == 4) {
        bl__repl_sync_to(r, owner);
        return 1;
    }
    bl__repl_node *rn = node_get(r, owner);
    if (!rn) return 1;
    if (kind == 5) {
        long proto;
        unsigned long count;
        unsigned long long digest;
        if (ei_decode_long(buf, &idx, &proto) < 0 || proto < 1 ||
            ei_decode_ulong(buf, &idx, &count) < 0 || ei_decode_ulonglong(buf, &idx, &digest) < 0)
            return 1;
        rn->proto = proto;
        if (digest != rn->digest) {
            bl_log(r->n, BL_LOG_DEBUG, "%s: copy of %s differs (%u/%lu entries): want", r->name,
                   owner, rn->count, count);
            want_from(r, owner);
        }
    } else if (kind == 2) {
        on_del(r, rn, buf, idx);
    } else if (want_ack) {
        /* the list, then the sequence number to answer with once it is applied */
        int end = idx;
        unsigned long long seq;
        if (bl__skip_term(buf, &end) == 0 && ei_decode_ulonglong(buf, &end, &seq) == 0 &&
            on_entries(r, rn, buf, idx, 0) == 0)
            send_ack(r, owner, seq);
    } else {
        (void)on_entries(r, rn, buf, idx, kind == 3);
    }
    node_free_if_empty(r, rn);
    return 1;
}

/* ---- membership ---- */

/* Our set to node and, with `want`, a request for its set. The want is needed only when this
 * node dropped the member's entries (it was failed, leaving or left) while the connection stayed
 * up: the member has no reason to resend them. On a new connection, or when a member first joins,
 * each side sends its own sync anyway (after its hello on the same connection, so the receiver
 * takes it for a member's), and a want there would only double the syncs of a cluster booting
 * at once (two per service per node pair). */
static void exchange(bl__repl *r, const char *node, int want)
{
    if (!wanted(r, node)) return;
    bl__repl_sync_to(r, node);
    if (want) want_from(r, node);
}

/* States in which a member's bucket was dropped here (on_cluster). */
static int dropped_in(bl_member_state s)
{
    return s == BL_MEMBER_FAILED || s == BL_MEMBER_LEFT || s == BL_MEMBER_LEAVING;
}

static void fresh_add(bl__repl *r, const char *node)
{
    repl_fresh *f = NULL;
    HASH_FIND_STR(r->fresh, node, f);
    if (f || strlen(node) >= sizeof(f->node) || !(f = calloc(1, sizeof(*f)))) return;
    snprintf(f->node, sizeof(f->node), "%s", node);
    HASH_ADD_STR(r->fresh, node, f);
}

/* 1 (and forgotten) when node was fresh: connected before it was a member. */
static int fresh_take(bl__repl *r, const char *node)
{
    repl_fresh *f = NULL;
    HASH_FIND_STR(r->fresh, node, f);
    if (!f) return 0;
    HASH_DEL(r->fresh, f);
    free(f);
    return 1;
}

/* A member to exchange with as it joins or comes back: a want unless its connection is new. */
static void exchange_member(bl__repl *r, const char *node)
{
    exchange(r, node, !fresh_take(r, node));
}

static void on_node(bl_node *n, bl_node_event ev, const char *node, const char *reason, void *ud)
{
    (void)reason;
    bl__repl *r = ud;
    if (bl_is_tool_node(node)) return;
    if (ev == BL_NODEUP) {
        if (bl_cluster_is_peer(n, node))
            exchange(r, node, 0);
        else if (n->cluster)
            fresh_add(r, node);
        return;
    }
    (void)fresh_take(r, node);
    waits_mark(r, node, 0, 0);
    bl__repl_node *rn = node_find(r, node);
    if (rn) rn->need_sync = 0; /* the next nodeup syncs */
    if (!n->cluster || r->ops->drop_on_nodedown)
        bl__repl_drop_owner(r, node, "nodedown");
    else if (rn)
        node_free_if_empty(r, rn);
}

static void on_cluster(bl_node *n, const bl_cluster_event *ev, void *ud)
{
    bl__repl *r = ud;
    if (bl_is_local_node(n, ev->node)) return;
    if (ev->type == BL_EV_NODE_LEFT) {
        waits_mark(r, ev->node, 0, 0);
        bl__repl_drop_owner(r, ev->node, "member forgotten");
    } else if (ev->type == BL_EV_NODE_STATE_CHANGED) {
        if (dropped_in(ev->to)) {
            waits_mark(r, ev->node, 0, 0);
            bl__repl_drop_owner(r, ev->node, bl_member_state_name(ev->to));
        }
        /* active again after we dropped its bucket: both sets again. A cleared suspicion (or
         * the end of joining) dropped nothing on either side: no exchange, which in a boot
         * under load saves one per service for each of hundreds of suspicions */
        else if (ev->to == BL_MEMBER_ACTIVE && dropped_in(ev->from) && bl_is_connected(n, ev->node))
            exchange_member(r, ev->node);
    } else if (ev->type == BL_EV_NODE_JOINED && strcmp(ev->role, "beam") &&
               bl_is_connected(n, ev->node)) {
        exchange_member(r, ev->node);
    }
}

static void digest_one(bl_node *n, const char *node, void *ud)
{
    (void)n;
    if (wanted(ud, node)) digest_to(ud, node);
}

static void repair_cb(bl_node *n, void *ud)
{
    bl__repl *r = ud;
    bl_cluster_each_peer(n, (long)(r->turn++ & 0x7fffffff), digest_one, r);
}

static void retry_cb(bl_node *n, void *ud)
{
    bl__repl *r = ud;
    r->retry_timer = 0;
    bl__repl_node *rn, *t;
    HASH_ITER(hh, r->nodes, rn, t) {
        if (!rn->need_sync) continue;
        if (bl_is_connected(n, rn->node) && bl_cluster_is_peer(n, rn->node))
            bl__repl_sync_to(r, rn->node); /* fails again: the timer is armed again */
        else
            rn->need_sync = 0;
    }
}

static void exchange_one(bl_node *n, const char *node, void *ud)
{
    (void)n;
    exchange(ud, node, 1); /* a table started late: the members' sets are not here yet */
}

void bl__repl_exchange_all(bl__repl *r)
{
    if (r) bl_cluster_each_peer(r->n, -1, exchange_one, r);
}

int bl__repl_is_peer(const bl__repl *r, const char *node)
{
    return r && bl_cluster_is_peer(r->n, node);
}

bl__repl *bl__repl_new(bl_node *n, bl_proc *proc, const bl__repl_ops *ops, void *svc)
{
    return bl__repl_new_named(n, proc, ops, svc, ops->proc_name);
}

bl__repl *bl__repl_new_named(bl_node *n, bl_proc *proc, const bl__repl_ops *ops, void *svc,
                             const char *name)
{
    if (!name || strlen(name) >= BL_NAME_LEN) return NULL;
    bl__repl *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    memcpy(r->name, name, strlen(name) + 1);
    r->n = n;
    r->proc = proc;
    r->ops = ops;
    r->svc = svc;
    if (!(r->self = node_get(r, n->name))) {
        free(r);
        return NULL;
    }
    r->nodemon_id = bl_monitor_nodes(n, on_node, r);
    r->cluster_sub = n->cluster ? bl_cluster_subscribe(n, on_cluster, r) : 0;
    r->repair_timer = bl_timer(n, REPAIR_MS, REPAIR_MS, repair_cb, r);
    if (r->nodemon_id < 0 || r->cluster_sub < 0 || r->repair_timer < 0) {
        bl__repl_free(r);
        return NULL;
    }
    return r;
}

void bl__repl_free(bl__repl *r)
{
    if (!r) return;
    if (r->nodemon_id > 0) bl_demonitor_nodes(r->n, r->nodemon_id);
    if (r->cluster_sub > 0) bl_cluster_unsubscribe(r->n, r->cluster_sub);
    if (r->repair_timer > 0) bl_timer_cancel(r->n, r->repair_timer);
    if (r->retry_timer > 0) bl_timer_cancel(r->n, r->retry_timer);
    for (repl_wait *w = r->waits, *next; w; w = next) { /* dropped without calling back */
        next = w->next;
        if (w->timer > 0) bl_timer_cancel(r->n, w->timer);
        free(w->nodes);
        free(w->state);
        free(w);
    }
    bl__repl_node *rn, *t;
    HASH_ITER(hh, r->nodes, rn,
              t) { /* the entries are the service's (maybe freed already): not touched */
        HASH_DEL(r->nodes, rn);
        free(rn);
    }
    repl_fresh *f, *ft;
    HASH_ITER(hh, r->fresh, f, ft) {
        HASH_DEL(r->fresh, f);
        free(f);
    }
    free(r);
}
