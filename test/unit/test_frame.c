/* test_frame.c - unit tests for the distribution frame splitter (c_src/dist/frame.c).
 *
 * bl_frame_next decides how many bytes of the socket buffer belong to the next frame and whether a
 * peer announced something larger than max_message_size; an off-by-one here either stalls a
 * connection or lets a peer force a huge allocation, so every boundary is pinned down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dist/frame.h"

#define SENTINEL ((size_t)0xdeadbeef)

static void test_short_header(void **state)
{
    (void)state;
    const char buf[4] = {0, 0, 0, 5};
    for (size_t n = 0; n < 4; n++) {
        size_t pl = SENTINEL;
        assert_int_equal(bl_frame_next(buf, n, 1024, &pl), BL_FRAME_MORE);
        assert_true(pl == SENTINEL); /* not touched: the length is not known yet */
    }
}

static void test_tick(void **state)
{
    (void)state;
    const char buf[4] = {0, 0, 0, 0};
    size_t pl = SENTINEL;
    assert_int_equal(bl_frame_next(buf, 4, 1024, &pl), BL_FRAME_TICK);
    assert_int_equal(pl, 0);
    /* a tick followed by more bytes is still a tick */
    const char buf2[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(bl_frame_next(buf2, 8, 1024, &pl), BL_FRAME_TICK);
    assert_int_equal(pl, 0);
}

static void test_complete(void **state)
{
    (void)state;
    const char buf[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    size_t pl = 0;
    assert_int_equal(bl_frame_next(buf, sizeof(buf), 1024, &pl), BL_FRAME_DATA);
    assert_int_equal(pl, 3);
    /* extra bytes after the frame do not change the answer */
    const char buf2[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0};
    assert_int_equal(bl_frame_next(buf2, sizeof(buf2), 1024, &pl), BL_FRAME_DATA);
    assert_int_equal(pl, 3);
}

static void test_partial(void **state)
{
    (void)state;
    char buf[4 + 300];
    memset(buf, 'x', sizeof(buf));
    bl_frame_put_len(buf, 300);
    for (size_t n = 4; n < sizeof(buf); n++) {
        size_t pl = 0;
        assert_int_equal(bl_frame_next(buf, n, 1024, &pl), BL_FRAME_MORE);
    }
    size_t pl = 0;
    assert_int_equal(bl_frame_next(buf, sizeof(buf), 1024, &pl), BL_FRAME_DATA);
    assert_int_equal(pl, 300);
}

static void test_multiple(void **state)
{
    (void)state;
    /* frames of sizes 1, tick, 5, 256, tick, 2 back to back */
    const size_t sizes[] = {1, 0, 5, 256, 0, 2};
    const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
    char buf[1024];
    size_t off = 0;
    for (size_t k = 0; k < nsizes; k++) {
        bl_frame_put_len(buf + off, sizes[k]);
        memset(buf + off + 4, (int)('A' + k), sizes[k]);
        off += 4 + sizes[k];
    }
    size_t total = off, pos = 0, k = 0;
    while (pos < total) {
        size_t pl = SENTINEL;
        int r = bl_frame_next(buf + pos, total - pos, 1024, &pl);
        assert_true(k < nsizes);
        if (sizes[k] == 0) {
            assert_int_equal(r, BL_FRAME_TICK);
        } else {
            assert_int_equal(r, BL_FRAME_DATA);
            assert_int_equal(pl, sizes[k]);
            for (size_t j = 0; j < pl; j++)
                assert_int_equal(buf[pos + 4 + j], 'A' + (int)k);
        }
        pos += 4 + pl;
        k++;
    }
    assert_int_equal(k, nsizes);
    assert_int_equal(pos, total);
    size_t pl = 0;
    assert_int_equal(bl_frame_next(buf + pos, 0, 1024, &pl), BL_FRAME_MORE);
}

static void test_max_exact(void **state)
{
    (void)state;
    const size_t max = 1000;
    char buf[4 + 1000] = {0};
    bl_frame_put_len(buf, max);
    size_t pl = 0;
    assert_int_equal(bl_frame_next(buf, sizeof(buf), max, &pl), BL_FRAME_DATA);
    assert_int_equal(pl, max);
    /* exactly max but incomplete is MORE, not TOOBIG */
    assert_int_equal(bl_frame_next(buf, sizeof(buf) - 1, max, &pl), BL_FRAME_MORE);
}

static void test_max_plus_one(void **state)
{
    (void)state;
    const size_t max = 1000;
    char buf[4];
    bl_frame_put_len(buf, max + 1);
    size_t pl = 0;
    /* TOOBIG is reported from the header alone: no need to buffer the payload */
    assert_int_equal(bl_frame_next(buf, 4, max, &pl), BL_FRAME_TOOBIG);
    assert_int_equal(pl, max + 1);
    /* the largest possible announced length */
    const char huge[4] = {(char)0xff, (char)0xff, (char)0xff, (char)0xff};
    assert_int_equal(bl_frame_next(huge, 4, 64u << 20, &pl), BL_FRAME_TOOBIG);
    assert_true(pl == 0xffffffffu);
}

static void test_put_len_roundtrip(void **state)
{
    (void)state;
    const size_t vals[] = {0,           1,           0xff,       0x100,      0x1234,
                           0xffff,      0x10000,     0x123456,   0x01020304, 0x7fffffff,
                           0x80000000u, 0xfffffffeu, 0xffffffffu};
    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
        char hdr[6] = {0x55, 0x55, 0x55, 0x55, 0x55, 0x55};
        bl_frame_put_len(hdr + 1, vals[k]);
        assert_int_equal((unsigned char)hdr[0], 0x55); /* no write outside the 4 bytes */
        assert_int_equal((unsigned char)hdr[5], 0x55);
        assert_int_equal((unsigned char)hdr[1], (vals[k] >> 24) & 0xff); /* big-endian */
        assert_int_equal((unsigned char)hdr[4], vals[k] & 0xff);
        size_t pl = SENTINEL;
        int r = bl_frame_next(hdr + 1, 4, SIZE_MAX, &pl);
        assert_true(pl == vals[k]);
        assert_int_equal(r, vals[k] == 0 ? BL_FRAME_TICK : BL_FRAME_MORE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_header), cmocka_unit_test(test_tick),
        cmocka_unit_test(test_complete),     cmocka_unit_test(test_partial),
        cmocka_unit_test(test_multiple),     cmocka_unit_test(test_max_exact),
        cmocka_unit_test(test_max_plus_one), cmocka_unit_test(test_put_len_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
