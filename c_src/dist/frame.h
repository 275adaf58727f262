/* frame.h - splitting the post-handshake distribution byte stream into frames.
 *
 * Each frame is a 4-byte big-endian length followed by that many bytes; length 0 is a tick. */
#ifndef BL_DIST_FRAME_H
#define BL_DIST_FRAME_H

#include <stddef.h>

enum {
    BL_FRAME_MORE = 0,    /* not enough bytes yet */
    BL_FRAME_TICK = 1,    /* a keep-alive tick; consume 4 bytes */
    BL_FRAME_DATA = 2,    /* a frame whose payload is buf[4 .. 4+*payload_len) */
    BL_FRAME_TOOBIG = -1, /* the announced length exceeds max */
};

/* Look at the next frame in buf[0..avail). On BL_FRAME_DATA, *payload_len is set and a complete
 * frame of 4 + *payload_len bytes is present. On BL_FRAME_TOOBIG, *payload_len is the announced
 * length. */
int bl_frame_next(const char *buf, size_t avail, size_t max, size_t *payload_len);

/* Write a 4-byte big-endian frame header. */
void bl_frame_put_len(char *dst, size_t len);

#endif
