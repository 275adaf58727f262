/* sendq.c - chunked outgoing byte queue (see sendq.h). */
#include "sendq.h"

#include <stdlib.h>

void bl_sendq_init(bl_sendq *q)
{
    q->head = q->tail = q->spare = NULL;
    q->bytes = 0;
}

void bl_sendq_free(bl_sendq *q)
{
    bl_chunk *c = q->head;
    while (c) {
        bl_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(q->spare);
    bl_sendq_init(q);
}

static bl_chunk *chunk_new(bl_sendq *q, size_t n)
{
    bl_chunk *c;
    if (n <= BL_SENDQ_CHUNK && q->spare) {
        c = q->spare;
        q->spare = NULL;
    } else {
        /* the first chunk of a queue fits its frame (a heartbeat to each member then holds a
         * small buffer each until the writes, not 4 KiB); the second is 4 KiB (a few calls in
         * one loop turn); a queue that needs a third is busy and gets full-size ones, which are
         * mapped on their own (cli/memory.c) and given back whole when freed, so a burst leaves
         * no holes in the heap */
        size_t unit = !q->tail             ? BL_SENDQ_MIN
                      : q->head == q->tail ? BL_SENDQ_SMALL
                                           : BL_SENDQ_CHUNK;
        size_t cap = n > unit ? n : unit;
        /* a chunk is small (in the heap) or full-size (mapped on its own): a frame between the
         * two, like a table sync to a new member, would leave its hole in the heap when freed */
        if (cap > BL_SENDQ_SMALL && cap < BL_SENDQ_CHUNK) cap = BL_SENDQ_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (!c) return NULL;
        c->cap = cap;
    }
    c->next = NULL;
    c->start = c->end = 0;
    return c;
}

char *bl_sendq_reserve(bl_sendq *q, size_t n)
{
    if (q->tail && q->tail->cap - q->tail->end >= n) return q->tail->data + q->tail->end;
    bl_chunk *c = chunk_new(q, n);
    if (!c) return NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    return c->data;
}

void bl_sendq_commit(bl_sendq *q, size_t n)
{
    q->tail->end += n;
    q->bytes += n;
}

int bl_sendq_iov(const bl_sendq *q, struct iovec *iov, int max)
{
    int k = 0;
    for (bl_chunk *c = q->head; c && k < max; c = c->next) {
        if (c->end == c->start) continue;
        iov[k].iov_base = c->data + c->start;
        iov[k].iov_len = c->end - c->start;
        k++;
    }
    return k;
}

void bl_sendq_consume(bl_sendq *q, size_t n)
{
    q->bytes -= n;
    while (n > 0 || (q->head && q->head->start == q->head->end && q->head != q->tail)) {
        bl_chunk *c = q->head;
        size_t avail = c->end - c->start;
        if (n < avail) {
            c->start += n;
            return;
        }
        n -= avail;
        c->start = c->end;
        if (c == q->tail) { /* drained: a queue with nothing to send holds no memory */
            free(q->spare);
            q->spare = NULL;
            free(c);
            q->head = q->tail = NULL;
            return;
        }
        q->head = c->next;
        if (!q->spare && c->cap == BL_SENDQ_CHUNK)
            q->spare = c;
        else
            free(c);
    }
}
