/* memory.c - the node command's malloc policy (docs/memory.md).
 *
 * The process belongs to `beamlet node`, so the command (not the library, which may live in a
 * user's program) tunes glibc's allocator for a node's shape: one loop thread that allocates in
 * bursts (a new member's table syncs, send queues while a peer catches up) and a few quiet
 * threads. Without this, the bursts' freed memory stays in the heap between long-lived blocks:
 * at 100 members half of a node's heap was free chunks that glibc never gave back.
 *   - one malloc arena for every thread (the store, metrics and lookup threads do little);
 *   - blocks of 64 KiB and more (busy send-queue chunks, large encodes) are mapped on their own
 *     and go back to the kernel when freed, instead of fragmenting the heap;
 *   - every 10 s the loop hands free pages inside the heap back (malloc_trim) when more than
 *     256 KiB of it is free: a 100-node node's heap is about 2 MB, and what a burst (a tick's
 *     heartbeats to every member, a table sync) left free between live blocks was 15-20% of
 *     it; one trim of a 2 MB heap takes about 0.3 ms here. */
#include "node_ctx.h"

#include <malloc.h>

#define MMAP_THRESHOLD (64 * 1024)
#define TRIM_EVERY_MS 10000
#define TRIM_ABOVE (256 * 1024)

void bl__memory_policy(void)
{
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
}

static void trim(bl_node *n, void *ud)
{
    (void)n;
    (void)ud;
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks > TRIM_ABOVE) malloc_trim(0);
}

int bl__memory_start(bl_node *n)
{
    return bl_timer(n, TRIM_EVERY_MS, TRIM_EVERY_MS, trim, NULL) < 0 ? BL_ENOMEM : BL_OK;
}
