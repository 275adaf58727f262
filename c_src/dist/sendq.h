/* sendq.h - a connection's outgoing byte queue: a list of chunks flushed with writev.
 *
 * Frames are encoded straight into the tail chunk (reserve, fill, commit), so a burst of small
 * messages becomes one writev of a few large buffers. The queue owns every chunk; the connection
 * decides the high-water policy by reading bl_sendq_bytes(). Chunks are sized by what is queued:
 * the first one fits its frame (BL_SENDQ_MIN at least), so a heartbeat to each of 99 members holds
 * 99 small buffers until the writes (was 4 KiB each); the second is BL_SENDQ_SMALL, and a queue
 * that needs more is busy and gets BL_SENDQ_CHUNK ones, so a stream goes out in few large writes. A
 * drained queue frees its chunks, so the quiet connections of a full mesh (100 nodes: 99 each) hold
 * no send buffers. */
#ifndef BL_DIST_SENDQ_H
#define BL_DIST_SENDQ_H

#include <stddef.h>
#include <sys/uio.h>

#define BL_SENDQ_CHUNK (64 * 1024) /* chunks after the first (a larger frame gets its size) */
#define BL_SENDQ_SMALL (4 * 1024)  /* the second chunk */
#define BL_SENDQ_MIN 512           /* the smallest first chunk */

typedef struct bl_chunk {
    struct bl_chunk *next;
    size_t start, end, cap;
    char data[];
} bl_chunk;

typedef struct bl_sendq {
    bl_chunk *head, *tail, *spare;
    size_t bytes;
} bl_sendq;

void bl_sendq_init(bl_sendq *q);
void bl_sendq_free(bl_sendq *q);
/* n contiguous writable bytes at the tail, or NULL when out of memory. */
char *bl_sendq_reserve(bl_sendq *q, size_t n);
/* Make n bytes of the last reservation part of the queue (n <= reserved). */
void bl_sendq_commit(bl_sendq *q, size_t n);
/* Fill up to max iovecs with queued bytes, oldest first; returns how many. */
int bl_sendq_iov(const bl_sendq *q, struct iovec *iov, int max);
/* Drop n bytes from the front (after a write). */
void bl_sendq_consume(bl_sendq *q, size_t n);
static inline size_t bl_sendq_bytes(const bl_sendq *q)
{
    return q->bytes;
}

#endif
