/* frame.c - splitting the distribution byte stream into frames (see frame.h). */
#include "frame.h"

#include <stdint.h>

int bl_frame_next(const char *buf, size_t avail, size_t max, size_t *payload_len)
{
    if (avail < 4) return BL_FRAME_MORE;
    const unsigned char *p = (const unsigned char *)buf;
    size_t len = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    *payload_len = len;
    if (len == 0) return BL_FRAME_TICK;
    if (len > max) return BL_FRAME_TOOBIG;
    if (avail - 4 < len) return BL_FRAME_MORE;
    return BL_FRAME_DATA;
}

void bl_frame_put_len(char *dst, size_t len)
{
    unsigned char *p = (unsigned char *)dst;
    p[0] = (unsigned char)(len >> 24);
    p[1] = (unsigned char)(len >> 16);
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
}
