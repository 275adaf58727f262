/* pubsub_subs.c - local subscriptions of pub/sub: adding and removing them (replicated through
 * repl.h), their per-priority bounded queues, TTL expiry, and delivery to a C callback or a BEAM
 * pid from a zero-delay flush timer (pubsub_int.h). */
#include "pubsub_int.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queues and delivery ---- */

void bl__ps_enqueue(ps *s, lsub *l, psmsg *m)
{
    qitem *q = malloc(sizeof(*q));
    if (!q) {
        COUNT(s, m->topic, dropped);
        return;
    }
    if (l->qlen >= l->max_queue) { /* drop the oldest of the lowest non-empty priority */
        for (int p = 2; p >= 0; p--) {
            if (!l->qh[p]) continue;
            if (p < m->prio) break; /* everything queued outranks the new one: drop it */
            qitem *o = l->qh[p];
            l->qh[p] = o->next;
            if (!l->qh[p]) l->qt[p] = NULL;
            l->qlen--;
            COUNT(s, o->m->topic, dropped);
            bl__ps_msg_unref(o->m);
            free(o);
            break;
        }
        if (l->qlen >= l->max_queue) {
            free(q);
            COUNT(s, m->topic, dropped);
            return;
        }
    }
    q->next = NULL;
    q->m = m;
    m->refs++;
    if (l->qt[m->prio])
        l->qt[m->prio]->next = q;
    else
        l->qh[m->prio] = q;
    l->qt[m->prio] = q;
    l->qlen++;
    bl__ps_schedule_flush(s);
}

static int encode_meta(bl_node *n, ei_x_buff *x, const psmsg *m, const lsub *l)
{
    char tp[BL_TRACEPARENT_LEN], tid[BL_TRACE_ID_LEN];
    /* the subscriber's hop of the publisher's trace (current while delivering) */
    const bl_trace *t = m->trace.valid ? bl_trace_current(n) : NULL;
    int traced = t && bl_trace_format(t, tp, sizeof(tp)) == BL_OK &&
                 bl_trace_id_hex(t, tid, sizeof(tid)) == BL_OK;
    int rc = ei_x_encode_map_header(x, traced ? 9 : 7);
    if (traced) {
        rc |= ei_x_encode_atom(x, "trace_id");
        rc |= ei_x_encode_binary(x, tid, 32);
        rc |= ei_x_encode_atom(x, "traceparent");
        rc |= ei_x_encode_binary(x, tp, (long)strlen(tp));
    }
    rc |= ei_x_encode_atom(x, "id");
    rc |= ei_x_encode_binary(x, m->id, (long)strlen(m->id));
    rc |= ei_x_encode_atom(x, "priority");
    rc |= ei_x_encode_atom(x, bl__ps_prio_names[m->prio]);
    rc |= ei_x_encode_atom(x, "qos");
    rc |= ei_x_encode_atom(x, bl__ps_qos_names[m->qos == QOS_ALO && l->name[0] ? l->qos : QOS_AMO]);
    rc |= ei_x_encode_atom(x, "published_at");
    rc |= ei_x_encode_ulonglong(x, m->published_at);
    rc |= ei_x_encode_atom(x, "ttl_ms");
    rc |= ei_x_encode_ulong(x, m->ttl_ms);
    rc |= ei_x_encode_atom(x, "publisher");
    rc |= ei_x_encode_atom(x, m->publisher);
    rc |= ei_x_encode_atom(x, "sub");
    return rc | ei_x_encode_long(x, l->id);
}

/* {beamlet_msg, Topic, Payload, Meta} to a pid subscriber: bl_send's result, or BL_ENOMEM when
 * it could not be encoded (every ei_x_* result ORed into rc, checked once). */
static int send_msg(ps *s, const lsub *l, const psmsg *m)
{
    ei_x_buff x;
    int rc = ei_x_new_with_version(&x);
    rc |= ei_x_encode_tuple_header(&x, 4);
    rc |= ei_x_encode_atom(&x, "beamlet_msg");
    rc |= ei_x_encode_binary(&x, m->topic, (long)strlen(m->topic));
    rc |= ei_x_append_buf(&x, m->payload, m->len);
    rc |= encode_meta(s->n, &x, m, l);
    rc = rc ? BL_ENOMEM : bl_send(s->proc, &l->pid, x.buff, x.index);
    ei_x_free(&x);
    return rc;
}

/* Deliver one message to l. Returns 0 delivered/dropped, -1 congested (keep it queued). */
/* Run a C subscription's callback (l may be gone afterwards; the caller holds a ref on m). */
static void call_cb(ps *s, lsub *l, psmsg *m)
{
    char tid[BL_TRACE_ID_LEN] = "";
    const bl_trace *t = m->trace.valid ? bl_trace_current(s->n) : NULL;
    if (t) bl_trace_id_hex(t, tid, sizeof(tid));
    bl_pubsub_meta meta = {.id = m->id,
                           .publisher = m->publisher,
                           .priority = (bl_pubsub_priority)m->prio,
                           .ttl_ms = m->ttl_ms,
                           .published_at = m->published_at,
                           .sub_id = l->id,
                           .trace_id = tid[0] ? tid : NULL};
    COUNT(s, m->topic, delivered);
    s->delivering++;
    l->cb(s->n, m->topic, m->payload, m->len, &meta, l->ud);
    s->delivering--;
}

static int deliver_one(ps *s, lsub *l, psmsg *m)
{
    if (l->qos == QOS_EO && m->qos == QOS_ALO) {
        /* recorded (persisted) as it is queued for sending (the bytes leave the process later in
         * this loop iteration), acknowledged to the publisher: a retry is not delivered again */
        if (bl__ps_seen_has(s, l->name, m->id)) {
            bl__ps_ack_to(s, l->name, m->id);
            return 0;
        }
        if (l->is_pid) {
            int rc = send_msg(s, l, m);
            if (rc == BL_EBUSY) return -1;
            if (rc != BL_OK) { /* not recorded: the publisher's retry brings it again */
                COUNT(s, m->topic, dropped);
                return 0;
            }
            COUNT(s, m->topic, delivered);
        } else {
            /* a C subscriber: recorded once its callback returned (a crash inside the callback
             * brings the message again after the restart) */
            char name[NAME_LEN];
            snprintf(name, sizeof(name), "%s", l->name);
            m->refs++;
            call_cb(s, l, m);
            bl__ps_seen_add(s, name, m->id);
            bl__ps_ack_to(s, name, m->id);
            bl__ps_msg_unref(m);
            return 0;
        }
        bl__ps_seen_add(s, l->name, m->id);
        bl__ps_ack_to(s, l->name, m->id);
        return 0;
    }
    if (!l->is_pid) {
        /* a durable C subscription acknowledges when its callback returns */
        int ack = l->name[0] && l->qos == QOS_ALO && m->qos == QOS_ALO;
        char name[NAME_LEN];
        snprintf(name, sizeof(name), "%s", l->name);
        m->refs++; /* the callback may unsubscribe l, freeing its queue */
        call_cb(s, l, m);
        if (ack) bl__ps_ack_to(s, name, m->id);
        bl__ps_msg_unref(m);
        return 0;
    }
    int rc = send_msg(s, l, m);
    if (rc == BL_EBUSY) return -1;
    if (rc == BL_OK)
        COUNT(s, m->topic, delivered);
    else
        COUNT(s, m->topic, dropped);
    return 0;
}

/* deliver_one under the message's trace: a child span is current while it is handed over (log
 * lines, the meta map's trace_id, what a C callback causes), and a sampled trace records it. */
static int deliver(ps *s, lsub *l, psmsg *m)
{
    if (!m->trace.valid) return deliver_one(s, l, m);
    bl_node *n = s->n;
    bl_trace saved = n->ctx.trace, hop;
    bl_trace_child(&m->trace, &hop);
    bl_trace_set(n, &hop);
    int sub = l->id, is_pid = l->is_pid;
    int rc = deliver_one(s, l, m); /* l may be gone now */
    if (rc == 0)
        bl_log(n, BL_LOG_DEBUG, "pubsub: %s on %s delivered to subscription %d", m->id, m->topic,
               sub);
    if (rc == 0 && bl_trace_sampled(n)) {
        json_t *d = json_pack("{s:s, s:s, s:i, s:s}", "topic", m->topic, "id", m->id, "sub", sub,
                              "subscriber", is_pid ? "pid" : "c");
        char *txt = d ? json_dumps(d, JSON_COMPACT) : NULL;
        bl_trace_event(n, "pubsub.deliver", txt);
        free(txt);
        json_decref(d);
    }
    n->ctx.trace = saved;
    return rc;
}

static void flush_sub(ps *s, lsub *l, ev_tstamp now)
{
    int id = l->id;
    while (!l->paused && l->qlen) {
        int p = l->qh[0] ? 0 : l->qh[1] ? 1 : 2;
        qitem *q = l->qh[p];
        psmsg *m = q->m;
        if (m->expires_at > 0 && now >= m->expires_at) {
            COUNT(s, m->topic, expired);
        } else {
            if (deliver(s, l, m) < 0) return;
            if (bl__ps_find_sub(s, id) != l) return; /* a callback unsubscribed (l was freed) */
        }
        if (l->qh[p] != q) continue; /* a callback changed the queue */
        l->qh[p] = q->next;
        if (!l->qh[p]) l->qt[p] = NULL;
        l->qlen--;
        bl__ps_msg_unref(m);
        free(q);
    }
}

void bl__ps_flush_all(ps *s)
{
    ev_tstamp now = ev_now(s->n->loop);
    lsub *l = s->subs;
    while (l) {
        /* a C callback may unsubscribe l or its successor: find the successor again by id (if it
         * went away, the rest waits for the next tick) */
        int next = l->next ? l->next->id : 0;
        if (l->qlen && !l->paused) flush_sub(s, l, now);
        l = next ? bl__ps_find_sub(s, next) : NULL;
    }
}

static void on_flush(bl_node *n, void *ud)
{
    (void)n;
    ps *s = ud;
    s->flush_timer = 0;
    bl__ps_flush_all(s);
}

void bl__ps_schedule_flush(ps *s)
{
    if (s->flush_timer > 0) return;
    int id = bl_timer(s->n, 0, 0, on_flush, s);
    s->flush_timer = id > 0 ? id : 0;
}

/* Expire queued messages of paused / congested subscriptions. */
void bl__ps_expire_queued(ps *s, ev_tstamp now)
{
    lsub *l;
    DL_FOREACH(s->subs, l) {
        for (int p = 0; p < 3; p++) {
            qitem **pp = &l->qh[p], *last = NULL;
            while (*pp) {
                qitem *q = *pp;
                if (q->m->expires_at > 0 && now >= q->m->expires_at) {
                    COUNT(s, q->m->topic, expired);
                    *pp = q->next;
                    l->qlen--;
                    bl__ps_msg_unref(q->m);
                    free(q);
                } else {
                    last = q;
                    pp = &q->next;
                }
            }
            l->qt[p] = last;
        }
    }
}

psmsg *bl__ps_msg_new(const char *topic, const char *payload, int len)
{
    psmsg *m = calloc(1, sizeof(*m) + (size_t)len);
    if (!m) return NULL;
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    memcpy(m->payload, payload, (size_t)len);
    m->len = len;
    m->refs = 1;
    return m;
}

/* Enqueue m on every matching local subscription. */
void bl__ps_fan_out_local(ps *s, psmsg *m, int skip_durable)
{
    lsub *l;
    DL_FOREACH(s->subs, l)
        if (!(skip_durable && l->name[0]) && bl__ps_match_levels(l->pattern, m->topic))
            bl__ps_enqueue(s, l, m);
}

/* ---- subscriptions ---- */

int bl__ps_add_sub(ps *s, const char *pattern, const bl_pid *pid, bl_pubsub_cb cb, void *ud,
                   const subopts *o)
{
    if (!bl_pubsub_pattern_valid(pattern) || (!pid && !cb) || o->max_queue > MAX_QUEUE_LIMIT)
        return BL_EINVAL;
    if (o->name[0]) { /* the same durable name again (say after a restart): it replaces the old */
        lsub *old;
        DL_FOREACH(s->subs, old)
            if (!strcmp(old->name, o->name)) break;
        if (old) bl__ps_del_sub(s, old, 0);
    }
    if (s->nsubs >= MAX_LOCAL_SUBS) return BL_ENOMEM;
    lsub *l = calloc(1, sizeof(*l));
    if (!l) return BL_ENOMEM;
    if (++s->next_sub_id <= 0) s->next_sub_id = 1;
    l->id = s->next_sub_id;
    snprintf(l->pattern, sizeof(l->pattern), "%s", pattern);
    if (pid) {
        l->is_pid = 1;
        l->pid = *pid;
        if (!o->nolink) bl_link(s->proc, pid); /* its exit removes the subscription */
    }
    l->cb = cb;
    l->ud = ud;
    l->paused = o->paused;
    snprintf(l->name, sizeof(l->name), "%s", o->name);
    l->qos = o->qos;
    l->max_queue = o->max_queue ? o->max_queue : DEFAULT_MAX_QUEUE;
    DL_APPEND(s->subs, l);
    s->nsubs++;
    (void)bl__repl_local_put(s->repl, &l->link);
    return l->id;
}

/* repl 0: a durable subscription whose subscriber went away stays known to the publishers
 * (they keep its messages until it is made again with the same name). */
void bl__ps_del_sub(ps *s, lsub *l, int repl)
{
    if (repl || !l->name[0])
        bl__repl_local_del(s->repl, &l->link);
    else
        bl__repl_unlink(s->repl, &l->link); /* the others keep it */
    if (repl && l->name[0]) bl__ps_drop_pends(s, s->n->name, l->name);
    DL_DELETE(s->subs, l);
    s->nsubs--;
    if (l->is_pid) {
        lsub *o;
        int more = 0;
        DL_FOREACH(s->subs, o)
            more |= o->is_pid && bl_pid_equal(&o->pid, &l->pid);
        if (!more) bl_unlink(s->proc, &l->pid);
    }
    bl__ps_queue_clear(l);
    free(l);
}

void bl__ps_del_subs_of(ps *s, const bl_pid *pid, const char *node, const char *why)
{
    unsigned k = 0;
    lsub *l, *t;
    DL_FOREACH_SAFE(s->subs, l, t) {
        if (!l->is_pid) continue;
        if (pid ? !bl_pid_equal(&l->pid, pid) : strcmp(bl_pid_node(&l->pid), node)) continue;
        bl__ps_del_sub(s, l, 0);
        k++;
    }
    if (k) bl_log(s->n, BL_LOG_DEBUG, "pubsub: %u subscriptions removed (%s)", k, why);
}
