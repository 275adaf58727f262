/* membership.c - who is in the cluster and in what state: the `beamlet_cluster` process.
 *
 * Full mesh over distribution connections, as BEAM clusters are. On every nodeup both sides send
 * {bl_hello, Cluster, Self, Members}: a node of another cluster is rejected (logged on both
 * sides) and disconnected; otherwise each side merges the other's member list and connects to
 * members it did not know, so a new node learns the whole cluster from any one member (the list
 * is left out toward a peer already known as active: see hello_needs_list). A peer
 * that never says hello within a short window is a BEAM node: it is a member with role `beam`
 * while it is connected.
 *
 * Failure detection follows SWIM's suspicion mechanism on direct heartbeats: every node sends
 * {bl_hb, Node, Epoch, Inc} to each member every heartbeat_interval. A member silent for
 * heartbeat_interval x failure_threshold (or whose connection dropped) is suspected; a member
 * still silent one interval after that is failed. Suspicion and failure are broadcast as
 * {bl_update, [Record]}; a node that hears the member itself does not adopt the claim but
 * forwards it to the member, which refutes by bumping its incarnation, so one slow link does not
 * evict a healthy node. Epoch (start time) identifies a run: a restarted node is active again. */
#include "cluster_int.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define HELLO_WAIT 1.0 /* seconds a peer has to say hello before it counts as a BEAM node */
#define RELAY_FANOUT 3 /* members a relayed record goes to (SWIM's k) */
#define CONFIRMS_WANTED 3 /* independent suspicions that bring a suspicion timeout to its minimum */
#define SUSPICION_MAX_MULT 6 /* a suspicion nobody confirms lasts this many times the minimum */
#define SUSPICION_MULT 4 /* heartbeat intervals a suspicion of a connected member lasts at least */

static const char *STATE_NAMES[] = {"joining", "active", "suspected", "failed", "leaving", "left"};
static const char *EVENT_NAMES[] = {"node_joined", "node_state_changed", "node_left",
                                    "leader_changed"};

const char *bl_member_state_name(bl_member_state s)
{
    return (unsigned)s < 6 ? STATE_NAMES[s] : "unknown";
}

static int state_from_name(const char *a)
{
    for (int i = 0; i < 6; i++)
        if (!strcmp(a, STATE_NAMES[i])) return i;
    return -1;
}

bl_cluster *bl_cluster_of(bl_node *n)
{
    return n->cluster;
}

static double silence_limit(const bl_cluster *c)
{
    return c->n->cfg.heartbeat_interval_ms * (double)c->n->cfg.failure_threshold / 1000.0;
}

/* ---- the detector's own health (Lifeguard's local health multiplier) ----
 *
 * A node whose loop runs late (CPU starvation, a long callback) hears everyone late: the silence
 * it measures is partly its own. Two corrections: the time the detector's tick fired late is
 * taken off every member's silence (stall credit), and a local health score, raised by late
 * ticks and by having to refute a suspicion of itself, lowered by each clean heartbeat
 * interval, multiplies the timeouts by (1 + score), so a slow node does not accuse others. */

static double interval_s(const bl_cluster *c)
{
    return c->n->cfg.heartbeat_interval_ms / 1000.0;
}

static void health_up(bl_cluster *c)
{
    if (c->det.health < BL_LOCAL_HEALTH_MAX) c->det.health++;
    if (c->det.health > c->det.health_max) c->det.health_max = c->det.health;
    c->det.clean = 0;
}

/* How long `m` has been silent, less the time this node's loop was stalled meanwhile. */
static double silence_of(const bl_cluster *c, const member *m, ev_tstamp now)
{
    double s = now - m->last_heard - (c->det.stalled - m->stall_mark);
    return s > 0 ? s : 0;
}

static void heard(bl_cluster *c, member *m, ev_tstamp now)
{
    m->last_heard = now;
    m->stall_mark = c->det.stalled;
}

/* Silence after which a connected member is suspected: failure_threshold heartbeats, widened by
 * local health. */
static double suspect_after(const bl_cluster *c)
{
    return silence_limit(c) * (1 + c->det.health);
}

static unsigned known_members(const bl_cluster *c)
{
    unsigned k = 0;
    const member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    if (!m->is_beam && m->state != BL_MEMBER_LEFT) k++;
    return k;
}

/* How long a suspicion lasts before the member is failed (Lifeguard): at the least a heartbeat
 * interval scaled by log10 of the cluster size, SUSPICION_MAX_MULT times that when nobody else
 * suspects the member, shrinking towards the least with each independent confirmation. A
 * member whose connection is up is only silent, weak evidence on a loaded machine: it is
 * waited for SUSPICION_MULT x (1 + local health) times longer (memberlist's suspicion
 * multiplier). A lost connection is the kernel's word, not our slowness: one interval at the
 * least. */
static double suspicion_timeout(const bl_cluster *c, const member *m)
{
    unsigned n = known_members(c);
    double lo = interval_s(c) * (n > 10 ? log10((double)n) : 1.0);
    if (bl_is_connected(c->n, m->node)) lo *= SUSPICION_MULT * (1 + c->det.health);
    double hi = lo * SUSPICION_MAX_MULT;
    unsigned want = n >= 2 + CONFIRMS_WANTED ? CONFIRMS_WANTED : (n > 2 ? n - 2 : 0);
    double t = lo;
    if (want) {
        unsigned got = m->confirms < want ? m->confirms : want;
        t = hi - (hi - lo) * log((double)got + 1) / log((double)want + 1);
    }
    return t;
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h | 1; /* 0 marks a free slot */
}

/* Another node suspects m at the incarnation we suspect: count it once. */
static void confirm(bl_cluster *c, member *m, const char *by)
{
    if (!by[0] || !strcmp(by, m->node) || m->confirms >= CONFIRMS_WANTED) return;
    uint32_t h = name_hash(by);
    for (unsigned i = 0; i < m->confirms; i++)
        if (m->confirmed_by[i] == h) return;
    m->confirmed_by[m->confirms++] = h;
    c->det.confirmations++;
}

/* ---- events ---- */

static void encode_event(ei_x_buff *x, const bl_cluster_event *e)
{
    int leader = e->type == BL_EV_LEADER_CHANGED;
    int changed = e->type == BL_EV_NODE_STATE_CHANGED;
    ei_x_encode_map_header(x, leader ? 5 : 6 + (changed ? 2 : 0));
    ei_x_encode_atom(x, "seq");
    ei_x_encode_ulonglong(x, e->seq);
    ei_x_encode_atom(x, "time_ms");
    ei_x_encode_ulonglong(x, e->time_ms);
    ei_x_encode_atom(x, "event");
    ei_x_encode_atom(x, EVENT_NAMES[e->type]);
    if (leader) {
        ei_x_encode_atom(x, "leader");
        ei_x_encode_atom(x, e->has_leader ? e->node : "undefined");
        ei_x_encode_atom(x, "term");
        ei_x_encode_ulonglong(x, e->term);
    } else {
        ei_x_encode_atom(x, "node");
        ei_x_encode_atom(x, e->node);
        ei_x_encode_atom(x, "role");
        ei_x_encode_atom(x, e->role[0] ? e->role : "unknown");
        ei_x_encode_atom(x, "state");
        ei_x_encode_atom(x, bl_member_state_name(e->to));
    }
    if (changed) {
        ei_x_encode_atom(x, "from");
        ei_x_encode_atom(x, bl_member_state_name(e->from));
        ei_x_encode_atom(x, "to");
        ei_x_encode_atom(x, bl_member_state_name(e->to));
    }
}

static void publish_event(bl_cluster *c, bl_cluster_event *e)
{
    e->seq = ++c->next_seq;
    e->time_ms = bl_now_ms();
    if (c->log_len == c->log_cap && c->log_cap < c->log_max && c->log_head == 0) {
        /* grow toward event_log_size as events come, while the ring has not wrapped: a quiet
         * node does not hold 256 events' worth of zeroes (86 KB) */
        unsigned cap = c->log_cap ? c->log_cap * 2 : 16;
        if (cap > c->log_max) cap = c->log_max;
        bl_cluster_event *nl = realloc(c->log, sizeof(*nl) * cap);
        if (nl) {
            c->log = nl;
            c->log_cap = cap;
        }
    }
    if (c->log_cap) {
        unsigned slot = (c->log_head + c->log_len) % c->log_cap;
        if (c->log_len == c->log_cap)
            c->log_head = (c->log_head + 1) % c->log_cap;
        else
            c->log_len++;
        c->log[slot] = *e;
    }
    if (e->type == BL_EV_LEADER_CHANGED)
        bl_log(c->n, BL_LOG_INFO, "event leader_changed: %s (term %llu)",
               e->has_leader ? e->node : "no leader", e->term);
    else if (e->type == BL_EV_NODE_STATE_CHANGED)
        bl_log(c->n, BL_LOG_INFO, "event node_state_changed: %s %s -> %s", e->node,
               bl_member_state_name(e->from), bl_member_state_name(e->to));
    else
        bl_log(c->n, BL_LOG_INFO, "event %s: %s (%s)", EVENT_NAMES[e->type], e->node, e->role);
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "beamlet_cluster_event");
    encode_event(&x, e);
    csub *s, *t;
    LL_FOREACH_SAFE(c->subs, s, t)
    {
        if (s->is_pid)
            (void)bl_send(c->proc, &s->pid, x.buff, x.index);
        else
            s->cb(c->n, e, s->ud);
    }
    ei_x_free(&x);
}

void cl_emit(bl_cluster *c, bl_cluster_event_type type, const member *m, bl_member_state from,
             bl_member_state to)
{
    bl_cluster_event e = {.type = type, .from = from, .to = to};
    snprintf(e.node, sizeof(e.node), "%s", m->node);
    snprintf(e.role, sizeof(e.role), "%s", m->role);
    publish_event(c, &e);
}

void cl_emit_leader(bl_cluster *c)
{
    bl_cluster_event e = {
        .type = BL_EV_LEADER_CHANGED, .term = c->term, .has_leader = c->leader[0] != 0};
    snprintf(e.node, sizeof(e.node), "%s", c->leader);
    publish_event(c, &e);
}

/* ---- member table ---- */

static member *find(bl_cluster *c, const char *node)
{
    member *m = NULL;
    HASH_FIND_STR(c->members, node, m);
    return m;
}

static void set_state(bl_cluster *c, member *m, bl_member_state s)
{
    if (m->state == s) return;
    bl_member_state old = m->state;
    m->state = s;
    m->state_since = ev_now(c->n->loop);
    if (!m->is_self) {
        if (s == BL_MEMBER_SUSPECTED) {
            c->det.suspicions++;
            m->confirms = 0;
        } else if (s == BL_MEMBER_FAILED) {
            c->det.failures++;
        } else if (s == BL_MEMBER_ACTIVE &&
                   (old == BL_MEMBER_SUSPECTED || old == BL_MEMBER_FAILED)) {
            c->det.cleared++;
        }
    }
    cl_emit(c, BL_EV_NODE_STATE_CHANGED, m, old, s);
}

/* A member's capabilities or metadata: a copy sized to v (the old one stays if out of memory) */
static void set_text(char **dst, const char *v)
{
    if (*dst ? !strcmp(*dst, v) : !*v) return;
    char *d = *v ? strdup(v) : NULL;
    if (*v && !d) return;
    free(*dst);
    *dst = d;
}

static void member_free(member *m)
{
    free(m->capabilities);
    free(m->metadata);
    free(m);
}

/* is_beam is set before the node_joined event, so subscribers see a BEAM member as one. */
/* A zeroed entry holding node (at most BL_NODE_LEN - 1 bytes, as the array of old did). */
static member *member_new(const char *node)
{
    size_t len = strnlen(node, BL_NODE_LEN - 1);
    member *m = calloc(1, sizeof(*m) + len + 1);
    if (m) memcpy(m->node, node, len);
    return m;
}

static member *add_member_as(bl_cluster *c, const char *node, const char *role, bl_member_state s,
                             int is_beam)
{
    member *m = member_new(node);
    if (!m) return NULL;
    m->is_beam = is_beam;
    snprintf(m->role, sizeof(m->role), "%s", role);
    m->state = s;
    m->state_since = ev_now(c->n->loop);
    heard(c, m, m->state_since);
    HASH_ADD_STR(c->members, node, m);
    cl_emit(c, BL_EV_NODE_JOINED, m, s, s);
    return m;
}

static member *add_member(bl_cluster *c, const char *node, const char *role, bl_member_state s)
{
    return add_member_as(c, node, role, s, 0);
}

static void remove_member(bl_cluster *c, member *m, const char *why)
{
    bl_log(c->n, BL_LOG_DEBUG, "forgetting member %s: %s", m->node, why);
    HASH_DEL(c->members, m);
    cl_emit(c, BL_EV_NODE_LEFT, m, m->state, m->state);
    member_free(m);
}

unsigned cl_coordinators(bl_cluster *c, int *self_is)
{
    unsigned k = 0;
    member *m, *t;
    if (self_is) *self_is = !strcmp(c->self->role, "coordinator");
    HASH_ITER(hh, c->members, m, t)
    {
        if (!m->is_beam && !strcmp(m->role, "coordinator") && m->state != BL_MEMBER_LEFT &&
            m->state != BL_MEMBER_LEAVING)
            k++;
    }
    return k;
}

/* ---- wire format ---- */

static void encode_list_str(ei_x_buff *x, const char *csv, int as_map)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", csv);
    int count = 0;
    for (char *p = buf; *p; p++)
        count += *p == ',';
    count += buf[0] ? 1 : 0;
    if (as_map)
        ei_x_encode_map_header(x, count);
    else if (count)
        ei_x_encode_list_header(x, count);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (as_map) {
            char *eq = strchr(t, '=');
            if (!eq) {
                ei_x_encode_binary(x, t, (long)strlen(t));
                ei_x_encode_binary(x, "", 0);
                continue;
            }
            ei_x_encode_binary(x, t, eq - t);
            ei_x_encode_binary(x, eq + 1, (long)strlen(eq + 1));
        } else {
            ei_x_encode_binary(x, t, (long)strlen(t));
        }
    }
    if (!as_map) ei_x_encode_empty_list(x);
}

static void encode_member(bl_cluster *c, ei_x_buff *x, const member *m, int with_age)
{
    ei_x_encode_map_header(x, 9 + (with_age ? 1 : 0));
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, m->node);
    ei_x_encode_atom(x, "role");
    ei_x_encode_atom(x, m->role);
    ei_x_encode_atom(x, "state");
    ei_x_encode_atom(x, bl_member_state_name(m->state));
    ei_x_encode_atom(x, "started_at");
    ei_x_encode_ulonglong(x, m->epoch);
    ei_x_encode_atom(x, "incarnation");
    ei_x_encode_ulonglong(x, m->inc);
    ei_x_encode_atom(x, "version");
    ei_x_encode_binary(x, m->version, (long)strlen(m->version));
    ei_x_encode_atom(x, "capabilities");
    encode_list_str(x, m->capabilities ? m->capabilities : "", 0);
    ei_x_encode_atom(x, "metadata");
    encode_list_str(x, m->metadata ? m->metadata : "", 1);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, m->is_beam ? "beam" : "beamlet");
    if (with_age) {
        ei_x_encode_atom(x, "last_seen_ms");
        ei_x_encode_ulong(
            x, m->is_self ? 0 : (unsigned long)((ev_now(c->n->loop) - m->last_heard) * 1000.0));
    }
}

typedef struct {
    char node[BL_NODE_LEN], role[32], version[32], caps[512], meta[1024];
    int state, is_beam;
    unsigned long long epoch, inc;
} rec;

static int decode_csv(const char *buf, int *idx, char *out, size_t outsz, int as_map)
{
    int n, type, size;
    size_t off = 0;
    out[0] = 0;
    if (as_map) {
        if (ei_decode_map_header(buf, idx, &n) < 0) return -1;
    } else {
        if (ei_get_type(buf, idx, &type, &size) < 0) return -1;
        if (type == ERL_NIL_EXT) return bl__skip_term(buf, idx);
        if (ei_decode_list_header(buf, idx, &n) < 0) return -1;
    }
    for (int i = 0; i < n * (as_map ? 2 : 1); i++) {
        char tmp[512];
        long len;
        if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_BINARY_EXT ||
            size >= (int)sizeof(tmp) || ei_decode_binary(buf, idx, tmp, &len) < 0)
            return -1;
        tmp[len] = 0;
        const char *sep = !as_map ? (i ? "," : "") : (i % 2 ? "=" : (i ? "," : ""));
        off += (size_t)snprintf(out + off, off < outsz ? outsz - off : 0, "%s%s", sep, tmp);
    }
    if (!as_map) {
        if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_NIL_EXT) return -1;
        bl__skip_term(buf, idx);
    }
    return off < outsz ? 0 : -1;
}

static int decode_member(const char *buf, int *idx, rec *r)
{
    int n;
    memset(r, 0, sizeof(*r));
    r->state = -1;
    if (ei_decode_map_header(buf, idx, &n) < 0) return -1;
    for (int i = 0; i < n; i++) {
        char key[MAXATOMLEN_UTF8], a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, idx, key) < 0) return -1;
        int type, size;
        long len;
        if (!strcmp(key, "node")) {
            if (ei_decode_atom(buf, idx, a) < 0 || strlen(a) >= BL_NODE_LEN) return -1;
            snprintf(r->node, sizeof(r->node), "%s", a);
        } else if (!strcmp(key, "role")) {
            if (ei_decode_atom(buf, idx, a) < 0 || strlen(a) >= sizeof(r->role)) return -1;
            snprintf(r->role, sizeof(r->role), "%s", a);
        } else if (!strcmp(key, "state")) {
            if (ei_decode_atom(buf, idx, a) < 0 || (r->state = state_from_name(a)) < 0) return -1;
        } else if (!strcmp(key, "kind")) {
            if (ei_decode_atom(buf, idx, a) < 0) return -1;
            r->is_beam = !strcmp(a, "beam");
        } else if (!strcmp(key, "started_at")) {
            if (ei_decode_ulonglong(buf, idx, &r->epoch) < 0) return -1;
        } else if (!strcmp(key, "incarnation")) {
            if (ei_decode_ulonglong(buf, idx, &r->inc) < 0) return -1;
        } else if (!strcmp(key, "version")) {
            if (ei_get_type(buf, idx, &type, &size) < 0 || type != ERL_BINARY_EXT ||
                size >= (int)sizeof(r->version) || ei_decode_binary(buf, idx, r->version, &len) < 0)
                return -1;
            r->version[len] = 0;
        } else if (!strcmp(key, "capabilities")) {
            if (decode_csv(buf, idx, r->caps, sizeof(r->caps), 0) < 0) return -1;
        } else if (!strcmp(key, "metadata")) {
            if (decode_csv(buf, idx, r->meta, sizeof(r->meta), 1) < 0) return -1;
        } else if (bl__skip_term(buf, idx) < 0) {
            return -1;
        }
    }
    return r->node[0] && r->state >= 0 && strchr(r->node, '@') ? 0 : -1;
}

int cl_send(bl_cluster *c, const char *node, const ei_x_buff *x)
{
    return bl_send_name(c->proc, "beamlet_cluster", node, x->buff, x->index);
}

static void broadcast(bl_cluster *c, const ei_x_buff *x, const char *except)
{
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_self || m->is_beam || (except && !strcmp(m->node, except))) continue;
        if (!bl_is_connected(c->n, m->node)) continue;
        (void)cl_send(c, m->node, x);
    }
}

/* The beamlet members (self included when with_self) as one proper list of records. */
static void encode_member_list(bl_cluster *c, ei_x_buff *x, int with_self)
{
    member *m, *t;
    int k = 0;
    HASH_ITER(hh, c->members, m, t)
    if (!m->is_beam && (with_self || !m->is_self)) k++;
    if (k) ei_x_encode_list_header(x, k);
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_beam || (!with_self && m->is_self)) continue;
        encode_member(c, x, m, 0);
    }
    ei_x_encode_empty_list(x);
}

static void merge(bl_cluster *c, const rec *r, const char *via);

/* Merge every record of a list at buf/idx. Lists built cell by cell ([A | [B | []]]) are
 * accepted too: the tail is followed while it is a list. */
static void merge_list(bl_cluster *c, const char *buf, int idx, const char *via)
{
    int k, type, size;
    while (ei_get_type(buf, &idx, &type, &size) == 0 && type == ERL_LIST_EXT) {
        if (ei_decode_list_header(buf, &idx, &k) < 0) return;
        for (int i = 0; i < k; i++) {
            rec r;
            if (decode_member(buf, &idx, &r) < 0) return;
            merge(c, &r, via);
        }
    }
}

/* {bl_hello, Cluster, Self, Members}. Members is our whole list only when the peer may not have
 * it (see hello_needs_list); otherwise [], so the N^2 connections of a cluster booting at once do
 * not carry N records each (N^3 records encoded, sent and merged: most of its CPU at 100 nodes). */
static void send_hello(bl_cluster *c, const char *node, int with_list)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "bl_hello");
    ei_x_encode_binary(&x, c->n->cfg.cluster, (long)strlen(c->n->cfg.cluster));
    encode_member(c, &x, c->self, 0);
    if (with_list)
        encode_member_list(c, &x, 0);
    else
        ei_x_encode_empty_list(&x);
    (void)cl_send(c, node, &x);
    ei_x_free(&x);
}

/* Whether a new connection to `m` (NULL: a node we have not heard of) needs our member list in
 * the hello. Not when we know it as an active beamlet member and are past joining ourselves: it
 * was announced to the cluster, so it learnt the members as we did (from its join target's list,
 * the updates of those who joined after it, and anti-entropy). A node unknown to us, joining, or
 * that we held suspected, failed or gone (a partition healing, a restart) gets the list; and a
 * peer whose own hello says it is still joining is sent the list then (handle_hello). */
static int hello_needs_list(const bl_cluster *c, const member *m)
{
    return !m || m->is_beam || m->state != BL_MEMBER_ACTIVE || c->self->state == BL_MEMBER_JOINING;
}

/* Our whole member list (self included) to one node, as an update. */
static void send_member_list(bl_cluster *c, const char *node)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "bl_update");
    encode_member_list(c, &x, 1);
    (void)cl_send(c, node, &x);
    ei_x_free(&x);
}

/* {bl_update, [Record]} about one member: to everyone (but `except`), or to one node. */
static void send_update(bl_cluster *c, const member *m, const char *to, const char *except)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "bl_update");
    ei_x_encode_list_header(&x, 1);
    encode_member(c, &x, m, 0);
    ei_x_encode_empty_list(&x);
    if (to)
        (void)cl_send(c, to, &x);
    else
        broadcast(c, &x, except);
    ei_x_free(&x);
}

static void broadcast_update(bl_cluster *c, const member *m, const char *except)
{
    send_update(c, m, NULL, except);
}

static void send_update_to(bl_cluster *c, const char *node, const member *m)
{
    send_update(c, m, node, NULL);
}

static int relay_target(bl_cluster *c, const member *t, const member *m, const char *except)
{
    return !t->is_self && !t->is_beam && t != m && (!except || strcmp(t->node, except)) &&
           bl_is_connected(c->n, t->node);
}

/* Pass on a record we learnt from someone else to RELAY_FANOUT connected members picked at
 * random (not to all of them): in a full mesh the origin has told everyone it reaches already,
 * and a relay to all by each of N receivers is N^2 messages per change, a storm that starves
 * the loops it is meant to inform. Hellos on each new connection and anti-entropy cover the
 * rest. */
static void relay_update(bl_cluster *c, const member *m, const char *except)
{
    member *t, *tt;
    unsigned k = 0, want = RELAY_FANOUT;
    HASH_ITER(hh, c->members, t, tt)
    k += relay_target(c, t, m, except);
    HASH_ITER(hh, c->members, t, tt)
    {
        if (!want || !k) break;
        if (!relay_target(c, t, m, except)) continue;
        if (cl_rnd01(c) * k < want) { /* selection sampling: exactly min(want, k) picks */
            send_update_to(c, t->node, m);
            want--;
        }
        k--;
    }
}

/* ---- merging what others say ---- */

static int newer(const rec *r, const member *m)
{
    if (r->epoch != m->epoch) return r->epoch > m->epoch;
    return r->inc > m->inc;
}

static void refute(bl_cluster *c)
{
    c->self->inc++;
    c->det.refuted++;
    health_up(c); /* someone missed us: probably our own loop was late (Lifeguard) */
    bl_log(c->n, BL_LOG_INFO, "refuting suspicion: incarnation now %llu", c->self->inc);
    broadcast_update(c, c->self, NULL);
}

/* Apply one record heard from `via`. */
static void merge(bl_cluster *c, const rec *r, const char *via)
{
    bl_node *n = c->n;
    if (r->is_beam) return; /* BEAM members are local knowledge: present while connected */
    if (bl_is_tool_node(r->node)) return;
    member *m = find(c, r->node);
    if (m && m->is_self) {
        if ((r->state == BL_MEMBER_SUSPECTED || r->state == BL_MEMBER_FAILED) &&
            r->epoch == m->epoch && r->inc >= m->inc && !c->stopping)
            refute(c);
        return;
    }
    ev_tstamp now = ev_now(n->loop);
    if (!m) {
        if (r->state == BL_MEMBER_LEFT || r->state == BL_MEMBER_FAILED) return;
        m = add_member(c, r->node, r->role,
                       r->state == BL_MEMBER_SUSPECTED ? BL_MEMBER_ACTIVE : r->state);
        if (!m) return;
        m->epoch = r->epoch;
        m->inc = r->inc;
        heard(c, m, now); /* give it a full silence window to show up */
        snprintf(m->version, sizeof(m->version), "%s", r->version);
        set_text(&m->capabilities, r->caps);
        set_text(&m->metadata, r->meta);
        if (!bl_is_connected(n, m->node)) bl_connect(n, m->node);
        relay_update(c, m, via); /* new to us: relay once */
        return;
    }
    if (m->is_beam) return;
    int is_newer = newer(r, m);
    int same = r->epoch == m->epoch && r->inc == m->inc;
    if (!is_newer && !same) return; /* stale */
    if (r->epoch > m->epoch) {      /* a new run of that node */
        m->epoch = r->epoch;
        m->inc = r->inc;
        snprintf(m->role, sizeof(m->role), "%s", r->role);
        snprintf(m->version, sizeof(m->version), "%s", r->version);
        set_text(&m->capabilities, r->caps);
        set_text(&m->metadata, r->meta);
    }
    int heard_recently = silence_of(c, m, now) < silence_limit(c) && bl_is_connected(n, m->node);
    switch (r->state) {
    case BL_MEMBER_SUSPECTED:
    case BL_MEMBER_FAILED:
        if (heard_recently) {
            /* we hear it fine: do not adopt the claim. The accuser told the member itself if
             * it could; a few of the listeners (RELAY_FANOUT of them on average, like SWIM's
             * indirect probes) pass it on too, in case it could not, and the member refutes. */
            unsigned k = known_members(c);
            if (strcmp(via, m->node) && cl_rnd01(c) * (k > 2 ? k - 2 : 1) < RELAY_FANOUT)
                send_update_to(c, m->node, m);
            return;
        }
        if (r->state == BL_MEMBER_FAILED && m->state != BL_MEMBER_SUSPECTED &&
            m->state != BL_MEMBER_FAILED)
            set_state(c, m, BL_MEMBER_SUSPECTED); /* our own detector decides failure */
        else if (r->state == BL_MEMBER_SUSPECTED && m->state == BL_MEMBER_ACTIVE)
            set_state(c, m, BL_MEMBER_SUSPECTED);
        if (same && (m->state == BL_MEMBER_SUSPECTED || m->state == BL_MEMBER_FAILED))
            confirm(c, m, via); /* an independent suspicion: the timeout shrinks */
        m->inc = r->inc;
        return;
    case BL_MEMBER_ACTIVE:
    case BL_MEMBER_JOINING:
        m->inc = r->inc;
        if (is_newer && m->state != BL_MEMBER_LEAVING && m->state != BL_MEMBER_LEFT) {
            heard(c, m, now); /* a refutation, from the member or relayed by one who hears it */
            set_state(c, m, (bl_member_state)r->state);
            if (strcmp(via, m->node)) relay_update(c, m, via); /* the member told the rest */
        }
        return;
    case BL_MEMBER_LEAVING:
    case BL_MEMBER_LEFT:
        m->inc = r->inc;
        if (m->state != BL_MEMBER_LEFT) set_state(c, m, (bl_member_state)r->state);
        return;
    }
}

/* ---- messages ---- */

static void handle_hello(bl_cluster *c, const char *buf, int idx)
{
    bl_node *n = c->n;
    char cluster[128];
    long len;
    int type, size;
    if (ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT ||
        size >= (int)sizeof(cluster) || ei_decode_binary(buf, &idx, cluster, &len) < 0)
        return;
    cluster[len] = 0;
    rec peer;
    if (decode_member(buf, &idx, &peer) < 0) {
        bl_log(n, BL_LOG_WARN, "malformed bl_hello ignored");
        return;
    }
    if (strcmp(cluster, n->cfg.cluster) != 0) {
        bl_log(n, BL_LOG_ERROR,
               "refusing %s: it belongs to cluster '%s', this node to cluster '%s'", peer.node,
               cluster, n->cfg.cluster);
        rejected *rj = NULL;
        HASH_FIND_STR(c->rejected, peer.node, rj);
        if (!rj && (rj = calloc(1, sizeof(*rj)))) {
            snprintf(rj->node, sizeof(rj->node), "%s", peer.node);
            HASH_ADD_STR(c->rejected, node, rj);
        }
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 3);
        ei_x_encode_atom(&x, "bl_reject");
        ei_x_encode_binary(&x, n->cfg.cluster, (long)strlen(n->cfg.cluster));
        ei_x_encode_atom(&x, n->name);
        (void)cl_send(c, peer.node, &x);
        ei_x_free(&x);
        member *m = find(c, peer.node);
        if (m) remove_member(c, m, "other cluster");
        bl_disconnect(n, peer.node);
        return;
    }
    rejected *rj = NULL;
    HASH_FIND_STR(c->rejected, peer.node, rj);
    if (rj) {
        HASH_DEL(c->rejected, rj);
        free(rj);
    }
    member *m = find(c, peer.node);
    if (m && m->is_beam < 0) { /* the placeholder of a fresh connection: now we know */
        HASH_DEL(c->members, m);
        member_free(m);
        m = NULL;
    } else if (m && m->is_beam) {
        /* listed as BEAM before its hello arrived: it leaves as one and joins as the beamlet
         * node it is, so the services (repl.c) take it for a peer and sync with it */
        remove_member(c, m, "its hello came after the wait: a beamlet node");
        m = NULL;
    }
    int is_new = !m;
    /* what our hello to it held: no list if we knew it active then (hello_needs_list) */
    int sent_list = hello_needs_list(c, m);
    if (!m) {
        m = add_member(c, peer.node, peer.role, BL_MEMBER_ACTIVE);
        if (!m) return;
    }
    m->hello_seen = 1;
    heard(c, m, ev_now(n->loop));
    if (peer.epoch != m->epoch || peer.inc > m->inc) {
        m->epoch = peer.epoch;
        m->inc = peer.inc;
    }
    snprintf(m->role, sizeof(m->role), "%s", peer.role);
    snprintf(m->version, sizeof(m->version), "%s", peer.version);
    set_text(&m->capabilities, peer.caps);
    set_text(&m->metadata, peer.meta);
    if (peer.state == BL_MEMBER_ACTIVE || peer.state == BL_MEMBER_JOINING)
        set_state(c, m, BL_MEMBER_ACTIVE);
    if (c->self->state == BL_MEMBER_JOINING) set_state(c, c->self, BL_MEMBER_ACTIVE);
    if (is_new) {
        m->epoch = peer.epoch;
        m->inc = peer.inc;
        /* it joins through us (it has heard no hello yet): the others learn of it from us. A new
         * node that is past joining was announced by the member it joined through, so a
         * broadcast here would only repeat that one to everyone, once per node that hears of
         * it late (hundreds of them in a cluster booting at once) */
        if (peer.state == BL_MEMBER_JOINING) broadcast_update(c, m, peer.node);
    }
    merge_list(c, buf, idx, peer.node); /* their members */
    /* it is still joining and our hello (sent when we knew it active) had no list */
    if (peer.state == BL_MEMBER_JOINING && !sent_list) send_member_list(c, peer.node);
}

static void handle_hb(bl_cluster *c, const char *buf, int idx)
{
    char node[MAXATOMLEN_UTF8];
    unsigned long long epoch, inc;
    if (ei_decode_atom(buf, &idx, node) < 0 || ei_decode_ulonglong(buf, &idx, &epoch) < 0 ||
        ei_decode_ulonglong(buf, &idx, &inc) < 0)
        return;
    member *m = find(c, node);
    if (!m || m->is_self) return; /* unknown: its hello will introduce it */
    ev_tstamp now = ev_now(c->n->loop);
    heard(c, m, now);
    if (epoch > m->epoch) {
        m->epoch = epoch;
        m->inc = inc;
    } else if (epoch == m->epoch && inc > m->inc) {
        m->inc = inc;
    }
    if (m->state == BL_MEMBER_SUSPECTED || m->state == BL_MEMBER_FAILED ||
        m->state == BL_MEMBER_JOINING) {
        set_state(c, m, BL_MEMBER_ACTIVE);
        relay_update(c, m, node); /* those we told of a suspicion hear it themselves, or refute */
    }
}

static void add_pid_sub(bl_cluster *c, const bl_pid *pid)
{
    csub *s;
    LL_FOREACH(c->subs, s) if (s->is_pid && bl_pid_equal(&s->pid, pid)) return;
    s = calloc(1, sizeof(*s));
    if (!s) return;
    s->id = ++c->next_sub_id;
    s->is_pid = 1;
    s->pid = *pid;
    LL_APPEND(c->subs, s);
}

static void del_pid_sub(bl_cluster *c, const bl_pid *pid)
{
    csub *s, *t;
    LL_FOREACH_SAFE(c->subs, s, t)
    {
        if (s->is_pid && bl_pid_equal(&s->pid, pid)) {
            LL_DELETE(c->subs, s);
            free(s);
        }
    }
}

static void cluster_msg(bl_proc *self, const bl_msg *msg, void *ud)
{
    (void)self;
    bl_cluster *c = ud;
    const char *buf = msg->buf;
    int idx = msg->index, arity;
    char tag[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity < 2 ||
        ei_decode_atom(buf, &idx, tag) < 0)
        return;
    if (!strcmp(tag, "bl_hb") && arity == 4) {
        handle_hb(c, buf, idx);
    } else if (!strcmp(tag, "bl_hello") && arity == 4) {
        handle_hello(c, buf, idx);
    } else if (!strcmp(tag, "bl_update") && arity == 2) {
        merge_list(c, buf, idx, msg->has_sender ? bl_pid_node(&msg->sender) : "");
    } else if (!strcmp(tag, "bl_reject") && arity == 3) {
        char cluster[128], node[MAXATOMLEN_UTF8];
        long len;
        int type, size;
        if (ei_get_type(buf, &idx, &type, &size) < 0 || type != ERL_BINARY_EXT ||
            size >= (int)sizeof(cluster) || ei_decode_binary(buf, &idx, cluster, &len) < 0 ||
            ei_decode_atom(buf, &idx, node) < 0)
            return;
        cluster[len] = 0;
        bl_log(c->n, BL_LOG_ERROR, "rejected by %s: it belongs to cluster '%s', we to '%s'", node,
               cluster, c->n->cfg.cluster);
        rejected *rj = NULL;
        HASH_FIND_STR(c->rejected, node, rj);
        if (!rj && (rj = calloc(1, sizeof(*rj)))) {
            snprintf(rj->node, sizeof(rj->node), "%s", node);
            HASH_ADD_STR(c->rejected, node, rj);
        }
        member *m = find(c, node);
        if (m && !m->is_self) remove_member(c, m, "other cluster");
    } else if ((!strcmp(tag, "subscribe") || !strcmp(tag, "unsubscribe")) && arity == 2) {
        bl_pid pid;
        if (bl_decode_pid(c->n, buf, &idx, &pid) < 0) return;
        if (tag[0] == 's')
            add_pid_sub(c, &pid);
        else
            del_pid_sub(c, &pid);
    } else {
        el_handle(c, tag, buf, idx, arity);
    }
}

/* ---- gen_server API ---- */

static void encode_status(bl_cluster *c, ei_x_buff *r)
{
    unsigned counts[6] = {0}, size = 0;
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_beam < 0) continue;
        counts[m->state]++;
        if (m->state != BL_MEMBER_LEFT) size++;
    }
    el_check_lease(c);
    ei_x_encode_map_header(r, 9);
    ei_x_encode_atom(r, "cluster");
    ei_x_encode_binary(r, c->n->cfg.cluster, (long)strlen(c->n->cfg.cluster));
    ei_x_encode_atom(r, "node");
    ei_x_encode_atom(r, c->n->name);
    ei_x_encode_atom(r, "size");
    ei_x_encode_ulong(r, size);
    ei_x_encode_atom(r, "states");
    ei_x_encode_map_header(r, 6);
    for (int i = 0; i < 6; i++) {
        ei_x_encode_atom(r, STATE_NAMES[i]);
        ei_x_encode_ulong(r, counts[i]);
    }
    ei_x_encode_atom(r, "leader");
    ei_x_encode_atom(r, c->leader[0] ? c->leader : "undefined");
    ei_x_encode_atom(r, "term");
    ei_x_encode_ulonglong(r, c->term);
    ei_x_encode_atom(r, "health");
    ei_x_encode_atom(r, bl_cluster_healthy(c->n) ? "healthy" : "degraded");
    ei_x_encode_atom(r, "self");
    encode_member(c, r, c->self, 0);
    bl_detector_info d;
    (void)bl_cluster_detector(c->n, &d);
    ei_x_encode_atom(r, "detector");
    ei_x_encode_map_header(r, 10);
    ei_x_encode_atom(r, "local_health");
    ei_x_encode_ulong(r, d.local_health);
    ei_x_encode_atom(r, "local_health_max");
    ei_x_encode_ulong(r, d.local_health_max);
    ei_x_encode_atom(r, "loop_lag_ms");
    ei_x_encode_ulong(r, (unsigned long)d.loop_lag_ms);
    ei_x_encode_atom(r, "loop_lag_max_ms");
    ei_x_encode_ulong(r, (unsigned long)d.loop_lag_max_ms);
    const struct {
        const char *k;
        unsigned long long v;
    } ctr[] = {{"late_ticks", d.late_ticks}, {"suspicions", d.suspicions},
               {"cleared", d.cleared},       {"failures", d.failures},
               {"refuted", d.refuted},       {"confirmations", d.confirmations}};
    for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++) {
        ei_x_encode_atom(r, ctr[i].k);
        ei_x_encode_ulonglong(r, ctr[i].v);
    }
}

static int cluster_call(bl_proc *self, const bl_from *from, const char *buf, int idx,
                        ei_x_buff *reply, void *ud)
{
    (void)self;
    (void)from;
    bl_cluster *c = ud;
    char a[MAXATOMLEN_UTF8];
    int j = idx, arity;
    if (ei_decode_atom(buf, &j, a) == 0) {
        if (!strcmp(a, "members")) {
            member *m, *t;
            HASH_ITER(hh, c->members, m, t)
            {
                if (m->is_beam < 0) continue; /* not classified yet */
                ei_x_encode_list_header(reply, 1);
                encode_member(c, reply, m, 1);
            }
            return ei_x_encode_empty_list(reply);
        }
        if (!strcmp(a, "status")) {
            encode_status(c, reply);
            return 0;
        }
        if (!strcmp(a, "leader")) {
            el_check_lease(c);
            ei_x_encode_tuple_header(reply, 2);
            ei_x_encode_atom(reply, c->leader[0] ? c->leader : "undefined");
            return ei_x_encode_ulonglong(reply, c->term);
        }
        if (!strcmp(a, "events")) {
            for (unsigned i = 0; i < c->log_len; i++) {
                ei_x_encode_list_header(reply, 1);
                encode_event(reply, &c->log[(c->log_head + i) % c->log_cap]);
            }
            return ei_x_encode_empty_list(reply);
        }
    }
    j = idx;
    if (ei_decode_tuple_header(buf, &j, &arity) == 0 && arity == 2 &&
        ei_decode_atom(buf, &j, a) == 0 && (!strcmp(a, "subscribe") || !strcmp(a, "unsubscribe"))) {
        bl_pid pid;
        if (bl_decode_pid(c->n, buf, &j, &pid) == 0) {
            if (a[0] == 's')
                add_pid_sub(c, &pid);
            else
                del_pid_sub(c, &pid);
            return ei_x_encode_atom(reply, "ok");
        }
    }
    ei_x_encode_tuple_header(reply, 2);
    ei_x_encode_atom(reply, "error");
    return ei_x_encode_atom(reply, "unknown_request");
}

/* ---- connections and the periodic tick ---- */

static void on_node_event(bl_node *n, bl_node_event ev, const char *node, const char *reason,
                          void *ud)
{
    (void)reason;
    bl_cluster *c = ud;
    if (bl_is_tool_node(node) || c->stopping) return;
    if (ev == BL_NODEUP && bl_is_plain_peer(n, node)) return; /* an ei program: no member */
    member *m = find(c, node);
    if (ev == BL_NODEUP) {
        if (m) m->connected_at = ev_now(n->loop);
        send_hello(c, node, hello_needs_list(c, m));
        if (!m) { /* not known yet: hello decides whether it is a beamlet or BEAM node */
            member *pm = member_new(node);
            if (!pm) return;
            pm->state = BL_MEMBER_JOINING;
            pm->connected_at = ev_now(n->loop);
            heard(c, pm, pm->connected_at); /* the hello wait starts (tick_cb) */
            pm->is_beam = -1; /* pending: not listed until classified */
            HASH_ADD_STR(c->members, node, pm);
        }
        return;
    }
    /* nodedown: subscribers there are gone */
    csub *s, *t;
    LL_FOREACH_SAFE(c->subs, s, t)
    {
        if (s->is_pid && !strcmp(bl_pid_node(&s->pid), node)) {
            LL_DELETE(c->subs, s);
            free(s);
        }
    }
    if (!m) return;
    if (m->is_beam) {
        if (m->is_beam < 0) {
            HASH_DEL(c->members, m);
            member_free(m);
        } else {
            remove_member(c, m, "BEAM node disconnected");
        }
        return;
    }
    if (m->state == BL_MEMBER_ACTIVE || m->state == BL_MEMBER_JOINING) {
        set_state(c, m, BL_MEMBER_SUSPECTED); /* connection lost: suspect at once */
        broadcast_update(c, m, NULL);
    } else if (m->state == BL_MEMBER_LEAVING) {
        set_state(c, m, BL_MEMBER_LEFT);
    }
}

static void send_heartbeats(bl_cluster *c)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "bl_hb");
    ei_x_encode_atom(&x, c->n->name);
    ei_x_encode_ulonglong(&x, c->self->epoch);
    ei_x_encode_ulonglong(&x, c->self->inc);
    broadcast(c, &x, NULL);
    ei_x_free(&x);
}

/* Every 8 heartbeats, the whole member list to one connected member in rotation: whatever a
 * lost or raced update left out converges anyway. */
static void anti_entropy(bl_cluster *c)
{
    member *m, *t, *pick = NULL;
    unsigned k = 0, want;
    HASH_ITER(hh, c->members, m, t)
    if (!m->is_self && !m->is_beam && bl_is_connected(c->n, m->node)) k++;
    if (!k) return;
    want = (unsigned)(c->ticks / 32) % k;
    k = 0;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_self || m->is_beam || !bl_is_connected(c->n, m->node)) continue;
        if (k++ == want) {
            pick = m;
            break;
        }
    }
    if (pick) send_member_list(c, pick->node);
}

/* The detector ticks four times per heartbeat interval, so detection is not late by a tick. */
static double tick_period(const bl_cluster *c)
{
    return interval_s(c) / 4;
}

/* Arm the tick for the next point of a grid of wall-clock time that every node shares
 * (multiples of the tick period since the epoch) and return that point; heartbeats go out on
 * every fourth (tick_cb). So every node of a cluster sends its heartbeats at the same moments,
 * and a node reads those of all its peers in a few wake-ups per interval, not in one wake-up
 * per peer spread over the interval: at 100 nodes those wake-ups were most of the CPU of an
 * idle cluster, and half of what a boot spends before it agrees (docs/cluster.md, "Under
 * load"). The silence limits and the timeouts are the same as with ticks at random phases. */
static ev_tstamp tick_schedule(bl_cluster *c, ev_tstamp now)
{
    double q = tick_period(c);
    ev_tstamp due = (floor(now / q) + 1) * q;
    if (due - now < q / 4) due += q; /* just short of a grid point (clocks): the next one */
    ev_timer_stop(c->n->loop, &c->tick);
    ev_timer_set(&c->tick, due - now, 0);
    ev_timer_start(c->n->loop, &c->tick);
    return due;
}

/* How late this tick fired against when it was due: a stall of the loop is credited to every
 * member's silence, and a late tick (later than a tick period and a quarter of the silence
 * limit) lowers local health; a heartbeat interval of on-time ticks raises it back a step. */
static void detector_tick(bl_cluster *c, ev_tstamp now)
{
    cl_detector *d = &c->det;
    double period = tick_period(c);
    double lag = d->tick_due > 0 && now > d->tick_due ? now - d->tick_due : 0;
    d->lag = lag;
    if (lag > d->lag_max) d->lag_max = lag;
    d->stalled += lag;
    double late = silence_limit(c) / 4;
    if (lag > (late > period ? late : period)) {
        d->late_ticks++;
        if (d->health < BL_LOCAL_HEALTH_MAX)
            bl_log(c->n, BL_LOG_INFO, "detector tick %.0f ms late: local health %u -> %u",
                   lag * 1000.0, d->health, d->health + 1);
        health_up(c);
    } else if (++d->clean >= 4) {
        d->clean = 0;
        if (d->health) d->health--;
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_cluster *c = w->data;
    bl_node *n = c->n;
    ev_tstamp now = ev_now(n->loop);
    double limit = silence_limit(c);
    double q = tick_period(c);
    /* heartbeats on the grid points that are multiples of the interval, or at once when a
     * stalled loop ticks past one */
    int hb_due = llround(c->det.tick_due / q) % 4 == 0 || now - c->hb_sent >= 4 * q;
    detector_tick(c, now);
    c->det.tick_due = tick_schedule(c, now);
    double suspect_limit = suspect_after(c);
    ++c->ticks;
    if (hb_due) {
        c->hb_sent = now;
        send_heartbeats(c);
    }
    if (c->ticks % 32 == 0) anti_entropy(c);
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_self) continue;
        if (m->is_beam < 0) { /* pending classification */
            /* a stalled loop has not read the hello yet: the wait, like the detector's limits,
             * leaves out this node's stalls and widens with its local health (a beamlet node
             * taken for a BEAM node until its hello is read is one more join to undo) */
            if (silence_of(c, m, now) >= HELLO_WAIT * (1 + c->det.health)) {
                if (!bl_is_connected(n, m->node)) {
                    HASH_DEL(c->members, m);
                    member_free(m);
                    continue;
                }
                HASH_DEL(c->members, m);
                char node[BL_NODE_LEN];
                snprintf(node, sizeof(node), "%s", m->node);
                member_free(m);
                (void)add_member_as(c, node, "beam", BL_MEMBER_ACTIVE, 1);
            }
            continue;
        }
        if (m->is_beam) continue;
        double silent = silence_of(c, m, now);
        switch (m->state) {
        case BL_MEMBER_ACTIVE:
        case BL_MEMBER_JOINING:
            if (silent > suspect_limit) {
                bl_log(n, BL_LOG_INFO,
                       "suspecting %s: silent for %.2f s (limit %.2f s, local health %u, loop lag "
                       "%.0f ms)",
                       m->node, silent, suspect_limit, c->det.health, c->det.lag * 1000.0);
                set_state(c, m, BL_MEMBER_SUSPECTED);
                broadcast_update(c, m, NULL);
            }
            break;
        case BL_MEMBER_SUSPECTED:
            if (silent > limit && now - m->state_since >= suspicion_timeout(c, m)) {
                set_state(c, m, BL_MEMBER_FAILED);
                broadcast_update(c, m, NULL);
            }
            if (!bl_is_connected(n, m->node)) bl_connect(n, m->node);
            break;
        case BL_MEMBER_FAILED:
            if (now - m->state_since > n->cfg.remove_after_ms / 1000.0) {
                remove_member(c, m, "failed for remove_after_ms");
                continue;
            }
            if (!bl_is_connected(n, m->node)) bl_connect(n, m->node); /* self-healing */
            break;
        case BL_MEMBER_LEAVING:
            if (now - m->state_since > limit) set_state(c, m, BL_MEMBER_LEFT);
            break;
        case BL_MEMBER_LEFT:
            if (now - m->state_since > n->cfg.remove_after_ms / 1000.0)
                remove_member(c, m, "left for remove_after_ms");
            break;
        }
    }
}

/* ---- peers of the replicated services ---- */

static int live_beamlet(const member *m)
{
    return !m->is_self && !m->is_beam && !bl_is_tool_node(m->node) &&
           (m->state == BL_MEMBER_JOINING || m->state == BL_MEMBER_ACTIVE ||
            m->state == BL_MEMBER_SUSPECTED);
}

int bl_cluster_is_peer(bl_node *n, const char *node)
{
    if (bl_is_local_node(n, node) || bl_is_tool_node(node)) return 0;
    bl_cluster *c = n->cluster;
    if (!c) return 1; /* no membership on this node: any other node */
    member *m = find(c, node);
    return m && live_beamlet(m);
}

int bl_cluster_peer_role(bl_node *n, const char *node, char *role, size_t len)
{
    bl_cluster *c = n->cluster;
    member *m = c ? find(c, node) : NULL;
    if (!m || !live_beamlet(m) || m->is_self) return 0;
    snprintf(role, len, "%s", m->role);
    return 1;
}

unsigned bl_cluster_coordinator_count(bl_node *n)
{
    return n->cluster ? cl_coordinators(n->cluster, NULL) : 0;
}

static int is_peer(bl_node *n, const member *m)
{
    return live_beamlet(m) && bl_is_connected(n, m->node);
}

void bl_cluster_each_peer(bl_node *n, long turn, bl_peer_fn fn, void *ud)
{
    bl_cluster *c = n->cluster;
    if (!c) {
        bl_conn *k, *t;
        HASH_ITER(hh, n->conns, k, t)
        if (k->state == CONN_UP && !bl_is_tool_node(k->node)) fn(n, k->node, ud);
        return;
    }
    member *m, *t;
    long count = 0, j = 0;
    HASH_ITER(hh, c->members, m, t)
    count += is_peer(n, m);
    if (!count) return;
    HASH_ITER(hh, c->members, m, t)
    {
        if (!is_peer(n, m)) continue;
        if (turn < 0 || j == turn % count) fn(n, m->node, ud);
        j++;
    }
}

int bl_cluster_send(bl_proc *from, const char *name, const char *node, const ei_x_buff *x)
{
    int rc = bl_send_name(from, name, node, x->buff, x->index);
    if (rc == BL_ETOOBIG)
        bl_log(bl_proc_node(from), BL_LOG_WARN,
               "%s: %d-byte message for %s is over max_message_size", name, x->index, node);
    return rc; /* BL_EBUSY: a congested peer; the services' periodic syncs repair what it missed */
}

typedef struct {
    bl_proc *from;
    const char *name;
    const ei_x_buff *x;
} peer_msg;

static void send_peer(bl_node *n, const char *node, void *ud)
{
    (void)n;
    peer_msg *pm = ud;
    (void)bl_cluster_send(pm->from, pm->name, node, pm->x);
}

void bl_cluster_send_peers(bl_proc *from, const char *name, const ei_x_buff *x, long turn)
{
    peer_msg pm = {from, name, x};
    bl_cluster_each_peer(bl_proc_node(from), turn, send_peer, &pm);
}

/* ---- public C API ---- */

int bl_cluster_members(bl_node *n, bl_member_info *out, int max)
{
    bl_cluster *c = n->cluster;
    if (!c) return 0;
    int k = 0;
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_beam < 0) continue;
        if (k < max) {
            bl_member_info *i = &out[k];
            snprintf(i->node, sizeof(i->node), "%s", m->node);
            snprintf(i->role, sizeof(i->role), "%s", m->role);
            i->state = m->state;
            i->started_at_ms = m->epoch;
            i->incarnation = m->inc;
            i->last_seen_ms_ago = m->is_self ? 0 : (ev_now(n->loop) - m->last_heard) * 1000.0;
        }
        k++;
    }
    return k;
}

const char *bl_cluster_leader(bl_node *n, unsigned long long *term)
{
    bl_cluster *c = n->cluster;
    if (!c) return NULL;
    el_check_lease(c);
    if (term) *term = c->term;
    return c->leader[0] ? c->leader : NULL;
}

int bl_cluster_healthy(bl_node *n)
{
    bl_cluster *c = n->cluster;
    if (!c) return 0;
    unsigned known = 0, reachable = 0;
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_beam || m->state == BL_MEMBER_LEFT || m->state == BL_MEMBER_LEAVING) continue;
        known++;
        if (m->state == BL_MEMBER_ACTIVE || m->state == BL_MEMBER_JOINING) reachable++;
    }
    if (reachable * 2 <= known) return 0;
    if (cl_coordinators(c, NULL) > 0 && !c->leader[0]) return 0;
    return 1;
}

int bl_cluster_detector(bl_node *n, bl_detector_info *out)
{
    bl_cluster *c = n->cluster;
    if (!c) return BL_ENOPROC;
    const cl_detector *d = &c->det;
    *out = (bl_detector_info){.local_health = d->health,
                              .local_health_max = d->health_max,
                              .loop_lag_ms = d->lag * 1000.0,
                              .loop_lag_max_ms = d->lag_max * 1000.0,
                              .late_ticks = d->late_ticks,
                              .suspicions = d->suspicions,
                              .cleared = d->cleared,
                              .failures = d->failures,
                              .refuted = d->refuted,
                              .confirmations = d->confirmations};
    return BL_OK;
}

int bl_cluster_subscribe(bl_node *n, bl_cluster_cb cb, void *ud)
{
    bl_cluster *c = n->cluster;
    if (!c || !cb) return BL_EINVAL;
    csub *s = calloc(1, sizeof(*s));
    if (!s) return BL_ENOMEM;
    s->id = ++c->next_sub_id;
    s->cb = cb;
    s->ud = ud;
    LL_APPEND(c->subs, s);
    return s->id;
}

void bl_cluster_unsubscribe(bl_node *n, int id)
{
    bl_cluster *c = n->cluster;
    if (!c) return;
    csub *s, *t;
    LL_FOREACH_SAFE(c->subs, s, t)
    {
        if (s->id == id) {
            LL_DELETE(c->subs, s);
            free(s);
        }
    }
}

/* ---- lifecycle ---- */

/* heartbeat_interval_ms and election_timeout_ms are live: timers started with the old value
 * take the new one (cluster configuration, SIGHUP) */
static void cl_cfg_hook(bl_node *n, const char *key, void *ud)
{
    bl_cluster *c = ud;
    if (c->stopping) return;
    if (!strcmp(key, "heartbeat_interval_ms")) c->det.tick_due = tick_schedule(c, ev_now(n->loop));
    if (!strcmp(key, "election_timeout_ms")) el_config_changed(c);
}

int bl_cluster_start(bl_node *n)
{
    if (!n->cfg.cluster_member) return BL_OK;
    bl_cluster *c = calloc(1, sizeof(*c));
    if (!c) return BL_ENOMEM;
    c->n = n;
    c->log_max = n->cfg.event_log_size; /* the ring grows to it (publish_event) */
    n->cluster = c;
    static const bl_proc_ops ops = {.on_msg = cluster_msg, .on_call = cluster_call};
    int rc = bl_spawn(n, "beamlet_cluster", &ops, c, &c->proc);
    if (rc != BL_OK) return rc;
    c->self = member_new(n->name);
    if (!c->self) return BL_ENOMEM;
    member *s = c->self;
    snprintf(s->role, sizeof(s->role), "%s", n->cfg.role);
    snprintf(s->version, sizeof(s->version), "%s", BL_VERSION);
    set_text(&s->capabilities, n->cfg.capabilities);
    set_text(&s->metadata, n->cfg.metadata);
    s->is_self = 1;
    s->epoch = bl_now_ms();
    s->state = n->cfg.njoin > 0 ? BL_MEMBER_JOINING : BL_MEMBER_ACTIVE;
    s->state_since = s->last_heard = ev_now(n->loop);
    HASH_ADD_STR(c->members, node, s);
    cl_emit(c, BL_EV_NODE_JOINED, s, s->state, s->state);
    bl_monitor_nodes(n, on_node_event, c);
    ev_init(&c->tick, tick_cb);
    c->tick.data = c;
    c->det.tick_due = tick_schedule(c, ev_now(n->loop));
    el_init(c);
    el_start(c);
    if ((rc = bl__node_on_config(n, cl_cfg_hook, c)) != BL_OK) return rc;
    return disc_start(c);
}

void bl_cluster_stop(bl_node *n)
{
    bl_cluster *c = n->cluster;
    if (!c || c->stopping) return;
    c->stopping = 1;
    /* announce leaving, then left: peers record a graceful exit, not a failure */
    set_state(c, c->self, BL_MEMBER_LEAVING);
    broadcast_update(c, c->self, NULL);
    set_state(c, c->self, BL_MEMBER_LEFT);
    broadcast_update(c, c->self, NULL);
    el_stop(c);
    disc_stop(c);
    ev_timer_stop(n->loop, &c->tick);
}

void bl_cluster_free(bl_node *n)
{
    bl_cluster *c = n->cluster;
    if (!c) return;
    bl__node_off_config(n, cl_cfg_hook, c);
    if (!c->stopping) {
        c->stopping = 1;
        el_stop(c);
        disc_stop(c);
        ev_timer_stop(n->loop, &c->tick);
    }
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        HASH_DEL(c->members, m);
        member_free(m);
    }
    rejected *r, *rt;
    HASH_ITER(hh, c->rejected, r, rt)
    {
        HASH_DEL(c->rejected, r);
        free(r);
    }
    csub *s, *st;
    LL_FOREACH_SAFE(c->subs, s, st) free(s);
    free(c->log);
    free(c);
    n->cluster = NULL;
}

int cl_is_rejected(bl_cluster *c, const char *node)
{
    rejected *r = NULL;
    HASH_FIND_STR(c->rejected, node, r);
    return r != NULL;
}
