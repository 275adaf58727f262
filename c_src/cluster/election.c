/* election.c - leader election among `coordinator` members.
 *
 * Raft's election without the log: terms, randomized election timeouts in [T, 2T), one vote per
 * term, a majority of the *known* coordinator set (failed and suspected ones count, so the
 * minority side of a partition can never elect). The leader sends {bl_leader, Term, Leader} every
 * T/3 to all members; coordinators answer {bl_leader_ack, Term, Node}. The leader holds a lease:
 * without acks from a majority within T it steps down, so a leader cut off from the majority stops
 * claiming leadership; a leader whose lease ran out while its loop was frozen (SIGSTOP, a paused
 * VM) drops the claim before it answers anyone. A node that heard from a live leader within T
 * refuses votes (leader stickiness).
 *
 * Pre-vote (Raft thesis, section 9.6): a coordinator whose leader went silent first asks
 * {bl_prevote_req, Term + 1, Node} without raising its own term; the others answer
 * {bl_prevote, Term, Node, true|false} and change nothing. Only with a majority of pre-votes does
 * it start a real election. So a node that was frozen or cut off, whose election timer fired
 * while the rest of the cluster still follows a live leader, never raises the cluster's term and
 * cannot depose that leader (a higher term in an ack would make the leader step down); it learns
 * the leader from the next heartbeat. Nodes that are not coordinators only follow: they learn the
 * leader from its heartbeats and forget it after 2T of silence. At most one leader per term holds
 * because each node votes once per term. */
#include "cluster_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* xorshift, seeded per node: spreads election timeouts and picks the members a relay goes to */
double cl_rnd01(bl_cluster *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (double)(c->rng % 1000000ull) / 1000000.0;
}

static double base_t(const bl_cluster *c)
{
    return c->n->cfg.election_timeout_ms / 1000.0;
}

static unsigned majority(bl_cluster *c)
{
    return cl_coordinators(c, NULL) / 2 + 1;
}

static int self_coordinator(bl_cluster *c)
{
    int is;
    cl_coordinators(c, &is);
    return is;
}

static void schedule_election(bl_cluster *c)
{
    ev_timer_stop(c->n->loop, &c->election_timer);
    double t = base_t(c) * (1.0 + cl_rnd01(c));
    ev_timer_set(&c->election_timer, t, 0);
    ev_timer_start(c->n->loop, &c->election_timer);
}

static void set_leader(bl_cluster *c, const char *leader)
{
    if (!strcmp(c->leader, leader)) return;
    snprintf(c->leader, sizeof(c->leader), "%s", leader);
    cl_emit_leader(c);
}

static void send_all(bl_cluster *c, const ei_x_buff *x, int coordinators_only)
{
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (m->is_self || m->is_beam) continue;
        if (coordinators_only && strcmp(m->role, "coordinator")) continue;
        if (m->state == BL_MEMBER_LEFT) continue;
        if (!bl_is_connected(c->n, m->node)) {
            if (coordinators_only && m->state != BL_MEMBER_LEAVING) bl_connect(c->n, m->node);
            continue;
        }
        (void)cl_send(c, m->node, x);
    }
}

static void send_simple(bl_cluster *c, const char *to, const char *tag, unsigned long long term,
                        const char *extra_bool)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, extra_bool ? 4 : 3);
    ei_x_encode_atom(&x, tag);
    ei_x_encode_ulonglong(&x, term);
    ei_x_encode_atom(&x, c->n->name);
    if (extra_bool) ei_x_encode_atom(&x, extra_bool);
    if (to)
        (void)cl_send(c, to, &x);
    else
        send_all(c, &x, !strcmp(tag, "bl_vote_req"));
    ei_x_free(&x);
}

static void step_down(bl_cluster *c, unsigned long long term)
{
    if (term > c->term) c->term = term;
    if (c->el == EL_LEADER) ev_timer_stop(c->n->loop, &c->leader_timer);
    c->el = EL_FOLLOWER;
}

static void become_leader(bl_cluster *c)
{
    c->el = EL_LEADER;
    c->leader_contact = ev_now(c->n->loop);
    c->self->last_ack = c->leader_contact;
    set_leader(c, c->n->name);
    bl_log(c->n, BL_LOG_INFO, "elected leader for term %llu with %u of %u coordinator votes",
           c->term, c->votes, cl_coordinators(c, NULL));
    send_simple(c, NULL, "bl_leader", c->term, NULL);
    ev_timer_stop(c->n->loop, &c->election_timer);
    double iv = base_t(c) / 3.0;
    ev_timer_set(&c->leader_timer, iv, iv);
    ev_timer_start(c->n->loop, &c->leader_timer);
}

static void start_election(bl_cluster *c)
{
    c->term++;
    c->el = EL_CANDIDATE;
    c->votes = 1;
    snprintf(c->voted_for, sizeof(c->voted_for), "%s", c->n->name);
    c->voted_term = c->term;
    memset(c->voters, 0, sizeof(c->voters));
    set_leader(c, "");
    bl_log(c->n, BL_LOG_DEBUG, "starting election for term %llu (need %u votes)", c->term,
           majority(c));
    if (c->votes >= majority(c)) {
        become_leader(c);
        return;
    }
    send_simple(c, NULL, "bl_vote_req", c->term, NULL);
    schedule_election(c);
}

/* Ask the coordinators whether they would vote in term + 1, without raising our term. */
static void start_prevote(bl_cluster *c)
{
    if (majority(c) <= 1) { /* alone: nobody to disturb */
        start_election(c);
        return;
    }
    c->el = EL_PRECANDIDATE;
    c->votes = 1;
    memset(c->voters, 0, sizeof(c->voters));
    set_leader(c, ""); /* silent for T: we follow nobody (degraded) until a leader speaks */
    bl_log(c->n, BL_LOG_DEBUG, "pre-vote for term %llu (need %u)", c->term + 1, majority(c));
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "bl_prevote_req");
    ei_x_encode_ulonglong(&x, c->term + 1);
    ei_x_encode_atom(&x, c->n->name);
    send_all(c, &x, 1);
    ei_x_free(&x);
    schedule_election(c);
}

/* A vote (pre or real) from node: counted once. Returns 1 when it is new. */
static int count_voter(bl_cluster *c, const char *node)
{
    for (int i = 0; i < MAX_VOTERS; i++) {
        if (!strcmp(c->voters[i], node)) return 0;
        if (!c->voters[i][0]) {
            snprintf(c->voters[i], BL_NODE_LEN, "%s", node);
            c->votes++;
            return 1;
        }
    }
    return 0;
}

static void election_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_cluster *c = w->data;
    if (c->stopping) return;
    ev_tstamp now = ev_now(c->n->loop);
    if (c->leader[0] && now - c->leader_contact < base_t(c)) { /* leader alive: keep waiting */
        schedule_election(c);
        return;
    }
    if (self_coordinator(c) && c->self->state != BL_MEMBER_LEAVING) {
        start_prevote(c);
    } else {
        set_leader(c, ""); /* followers forget a silent leader */
        schedule_election(c);
    }
}

/* The lease: acks from a majority within T, else step down. Returns 1 while still leader. */
static int lease_holds(bl_cluster *c)
{
    ev_tstamp now = ev_now(c->n->loop);
    c->self->last_ack = now;
    unsigned fresh = 0;
    member *m, *t;
    HASH_ITER(hh, c->members, m, t)
    {
        if (!m->is_beam && !strcmp(m->role, "coordinator") && now - m->last_ack < base_t(c))
            fresh++;
    }
    if (fresh < majority(c)) {
        bl_log(c->n, BL_LOG_WARN,
               "stepping down as leader of term %llu: only %u of %u coordinators reachable",
               c->term, fresh, cl_coordinators(c, NULL));
        step_down(c, c->term);
        set_leader(c, "");
        schedule_election(c);
        return 0;
    }
    return 1;
}

static void leader_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_cluster *c = w->data;
    if (c->el != EL_LEADER || c->stopping) return;
    if (!lease_holds(c)) return;
    c->leader_contact = ev_now(c->n->loop);
    send_simple(c, NULL, "bl_leader", c->term, NULL);
}

void el_check_lease(bl_cluster *c)
{
    /* between two leader_cb runs the lease is as fresh as the last one; a loop that was frozen
     * finds its claim older than T/3 x 2 and re-checks before answering */
    if (c->el == EL_LEADER && ev_now(c->n->loop) - c->leader_contact > base_t(c) * 2.0 / 3.0)
        (void)lease_holds(c);
}

int el_handle(bl_cluster *c, const char *tag, const char *buf, int idx, int arity)
{
    unsigned long long term;
    char node[MAXATOMLEN_UTF8];
    if (arity < 3 || ei_decode_ulonglong(buf, &idx, &term) < 0 ||
        ei_decode_atom(buf, &idx, node) < 0)
        return 0;
    ev_tstamp now = ev_now(c->n->loop);
    if (!strcmp(tag, "bl_prevote_req") && arity == 3) {
        /* would we vote for node in term? Nothing here changes our own state. */
        el_check_lease(c);
        int sticky = c->leader[0] && strcmp(c->leader, node) && now - c->leader_contact < base_t(c);
        int grant = !sticky && term > c->term;
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 4);
        ei_x_encode_atom(&x, "bl_prevote");
        ei_x_encode_ulonglong(&x, grant ? term : c->term);
        ei_x_encode_atom(&x, c->n->name);
        ei_x_encode_atom(&x, grant ? "true" : "false");
        (void)cl_send(c, node, &x);
        ei_x_free(&x);
        return 1;
    }
    if (!strcmp(tag, "bl_prevote") && arity == 4) {
        char granted[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, granted) < 0) return 0;
        /* a refusal changes nothing: a node behind in term learns the term from the leader's
         * heartbeat or from the next real election, never from a refusal */
        if (strcmp(granted, "true") || c->el != EL_PRECANDIDATE || term != c->term + 1) return 1;
        if (count_voter(c, node) && c->votes >= majority(c)) start_election(c);
        return 1;
    }
    if (!strcmp(tag, "bl_vote_req") && arity == 3) {
        el_check_lease(c);
        int sticky = c->leader[0] && strcmp(c->leader, node) && now - c->leader_contact < base_t(c);
        if (sticky) {
            send_simple(c, node, "bl_vote", c->term, "false");
            return 1;
        }
        if (term > c->term) {
            step_down(c, term);
            set_leader(c, "");
        }
        int grant = term == c->term && (c->voted_term != term || !strcmp(c->voted_for, node));
        if (grant) {
            c->voted_term = term;
            snprintf(c->voted_for, sizeof(c->voted_for), "%s", node);
            schedule_election(c);
        }
        send_simple(c, node, "bl_vote", c->term, grant ? "true" : "false");
        return 1;
    }
    if (!strcmp(tag, "bl_vote") && arity == 4) {
        char granted[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, &idx, granted) < 0) return 0;
        if (term > c->term) {
            step_down(c, term);
            set_leader(c, "");
            schedule_election(c);
            return 1;
        }
        if (c->el != EL_CANDIDATE || term != c->term || strcmp(granted, "true")) return 1;
        if (count_voter(c, node) && c->votes >= majority(c)) become_leader(c);
        return 1;
    }
    if (!strcmp(tag, "bl_leader") && arity == 3) {
        if (term < c->term) { /* a stale leader: tell it our term */
            send_simple(c, node, "bl_leader_ack", c->term, NULL);
            return 1;
        }
        if (term > c->term || c->el != EL_FOLLOWER) step_down(c, term);
        c->leader_contact = now;
        set_leader(c, node);
        schedule_election(c);
        if (self_coordinator(c)) send_simple(c, node, "bl_leader_ack", term, NULL);
        return 1;
    }
    if (!strcmp(tag, "bl_leader_ack") && arity == 3) {
        if (term > c->term) {
            bl_log(c->n, BL_LOG_INFO, "term %llu seen from %s: stepping down", term, node);
            step_down(c, term);
            set_leader(c, "");
            schedule_election(c);
            return 1;
        }
        if (c->el == EL_LEADER && term == c->term) {
            member *m = NULL;
            HASH_FIND_STR(c->members, node, m);
            if (m) m->last_ack = now;
        }
        return 1;
    }
    return 0;
}

void el_init(bl_cluster *c)
{
    c->rng = (unsigned long long)time(NULL) ^ ((unsigned long long)c->self->epoch << 7) ^
             (unsigned long long)(uintptr_t)c ^ (unsigned long long)getpid();
    if (!c->rng) c->rng = 88172645463325252ull;
    ev_timer_init(&c->election_timer, election_cb, 0, 0);
    ev_timer_init(&c->leader_timer, leader_cb, 0, 0);
    c->election_timer.data = c->leader_timer.data = c;
}

void el_config_changed(bl_cluster *c)
{
    if (c->el == EL_LEADER) {
        c->leader_timer.repeat = base_t(c) / 3.0;
        ev_timer_again(c->n->loop, &c->leader_timer);
    } else {
        schedule_election(c);
    }
}

void el_start(bl_cluster *c)
{
    schedule_election(c);
}

void el_stop(bl_cluster *c)
{
    ev_timer_stop(c->n->loop, &c->election_timer);
    ev_timer_stop(c->n->loop, &c->leader_timer);
}
