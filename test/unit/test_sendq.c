/* test_sendq.c - unit tests for the chunked outgoing byte queue (c_src/dist/sendq.c).
 *
 * Every byte beamlet sends goes reserve -> commit -> iov -> writev -> consume. A mistake here
 * reorders, duplicates or drops bytes on the wire (a corrupted distribution stream) or leaks
 * chunks, so the tests model the queue as a flat byte string and compare after every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dist/sendq.h"

/* A model of what the queue must hold: the bytes committed and not yet consumed. */
typedef struct {
    unsigned char *data;
    size_t start, end, cap;
    unsigned seq; /* next byte value to write */
} model;

static void model_init(model *m, size_t cap)
{
    m->data = malloc(cap);
    assert_non_null(m->data);
    m->start = m->end = 0;
    m->cap = cap;
    m->seq = 1;
}

/* Reserve n (n >= want), write want pattern bytes, commit them; mirror in the model. */
static void push(bl_sendq *q, model *m, size_t reserve, size_t want)
{
    assert_true(want <= reserve);
    size_t before = bl_sendq_bytes(q);
    char *p = bl_sendq_reserve(q, reserve);
    assert_non_null(p);
    for (size_t i = 0; i < want; i++) {
        unsigned char b = (unsigned char)(m->seq * 2654435761u >> 24);
        m->seq++;
        p[i] = (char)b;
        assert_true(m->end < m->cap);
        m->data[m->end++] = b;
    }
    /* write the unused part of the reservation too: it must never show up */
    for (size_t i = want; i < reserve; i++)
        p[i] = (char)0xEE;
    bl_sendq_commit(q, want);
    assert_int_equal(bl_sendq_bytes(q), before + want);
}

/* The queue's iovecs, concatenated, equal the model; returns the number of iovecs. */
static int check(const bl_sendq *q, const model *m)
{
    struct iovec iov[256];
    int n = bl_sendq_iov(q, iov, 256);
    assert_true(n >= 0 && n < 256);
    size_t off = m->start, total = 0;
    for (int i = 0; i < n; i++) {
        assert_true(iov[i].iov_len > 0); /* empty chunks are not handed to writev */
        assert_true(off + iov[i].iov_len <= m->end);
        assert_memory_equal(iov[i].iov_base, m->data + off, iov[i].iov_len);
        off += iov[i].iov_len;
        total += iov[i].iov_len;
    }
    assert_int_equal(off, m->end);
    assert_int_equal(total, bl_sendq_bytes(q));
    assert_int_equal(bl_sendq_bytes(q), m->end - m->start);
    return n;
}

static void pop(bl_sendq *q, model *m, size_t n)
{
    assert_true(n <= m->end - m->start);
    bl_sendq_consume(q, n);
    m->start += n;
    check(q, m);
}

static void test_empty(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    struct iovec iov[4];
    assert_int_equal(bl_sendq_iov(&q, iov, 4), 0);
    assert_int_equal(bl_sendq_bytes(&q), 0);
    bl_sendq_consume(&q, 0);
    assert_int_equal(bl_sendq_bytes(&q), 0);
    bl_sendq_free(&q);
    bl_sendq_free(&q); /* idempotent: free re-initialises */
}

static void test_small_frames_few_chunks(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    model m;
    model_init(&m, 1 << 20);
    /* the first frame of an empty queue takes a small chunk, not a large one */
    push(&q, &m, 64, 64);
    assert_int_equal(check(&q, &m), 1);
    assert_int_equal(q.head->cap, BL_SENDQ_MIN);
    /* 5000 frames of 4 + 60 bytes = 320000 bytes: the small first chunk, a 4 KiB one, then
     * 64 KiB ones: at most 2 + ceil(320000 / 64 KiB) */
    for (int i = 1; i < 5000; i++)
        push(&q, &m, 64, 64);
    int n = check(&q, &m);
    assert_true(n >= 5);
    assert_true(n <= 7);
    /* a max of 2 iovecs gives the two oldest chunks only */
    struct iovec iov[2];
    assert_int_equal(bl_sendq_iov(&q, iov, 2), 2);
    assert_ptr_equal(iov[0].iov_base, q.head->data + q.head->start);
    assert_memory_equal(iov[0].iov_base, m.data, iov[0].iov_len);
    assert_memory_equal(iov[1].iov_base, m.data + iov[0].iov_len, iov[1].iov_len);
    assert_int_equal(bl_sendq_iov(&q, iov, 0), 0);
    bl_sendq_free(&q);
    free(m.data);
}

static void test_reserve_more_commit_less(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    model m;
    model_init(&m, 1 << 20);
    /* the typical encode pattern: reserve a worst case, commit what was written */
    for (int i = 0; i < 3000; i++)
        push(&q, &m, 200, (size_t)(i % 150));
    check(&q, &m);
    /* a zero commit changes nothing */
    push(&q, &m, 10, 0);
    check(&q, &m);
    bl_sendq_free(&q);
    free(m.data);
}

static void test_partial_consume(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    model m;
    model_init(&m, 1 << 21);
    for (int i = 0; i < 4000; i++)
        push(&q, &m, 100, 100); /* 400000 bytes, ~7 chunks */
    check(&q, &m);
    /* byte by byte at first, then steps that straddle chunk boundaries */
    for (int i = 0; i < 10; i++)
        pop(&q, &m, 1);
    pop(&q, &m, BL_SENDQ_CHUNK - 10 - 1); /* stop one byte short of the first boundary */
    pop(&q, &m, 2);                       /* cross it */
    pop(&q, &m, BL_SENDQ_CHUNK);          /* a whole chunk's worth, not aligned */
    pop(&q, &m, 3 * BL_SENDQ_CHUNK + 12345);
    /* interleave pushes and pops */
    for (int i = 0; i < 1000; i++) {
        push(&q, &m, 300, 77);
        pop(&q, &m, (m.end - m.start) / 3);
    }
    /* drain exactly */
    pop(&q, &m, m.end - m.start);
    assert_int_equal(bl_sendq_bytes(&q), 0);
    struct iovec iov[4];
    assert_int_equal(bl_sendq_iov(&q, iov, 4), 0);
    /* reuse after draining */
    push(&q, &m, 50, 50);
    check(&q, &m);
    pop(&q, &m, 50);
    bl_sendq_free(&q);
    free(m.data);
}

static void test_big_reservation(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    model m;
    model_init(&m, 1 << 21);
    push(&q, &m, 10, 10);
    /* bigger than a chunk: one contiguous area */
    size_t big = 3 * BL_SENDQ_CHUNK + 7;
    push(&q, &m, big, big);
    int n = check(&q, &m);
    assert_int_equal(n, 2);
    struct iovec iov[4];
    bl_sendq_iov(&q, iov, 4);
    assert_int_equal(iov[1].iov_len, big);
    push(&q, &m, 10, 10); /* the big chunk is full: a new chunk follows */
    assert_int_equal(check(&q, &m), 3);
    pop(&q, &m, 11);
    pop(&q, &m, big - 2);
    pop(&q, &m, 5);
    pop(&q, &m, m.end - m.start);
    /* a big reservation into an empty queue, then consumed whole: the queue is reusable */
    push(&q, &m, big, big);
    pop(&q, &m, big);
    push(&q, &m, 100, 100);
    check(&q, &m);
    /* exactly one chunk */
    push(&q, &m, BL_SENDQ_CHUNK, BL_SENDQ_CHUNK);
    check(&q, &m);
    pop(&q, &m, m.end - m.start);
    bl_sendq_free(&q);
    free(m.data);
}

static void test_free_with_data(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    model m;
    model_init(&m, 1 << 21);
    for (int i = 0; i < 3000; i++)
        push(&q, &m, 150, 150);
    pop(&q, &m, 2 * BL_SENDQ_CHUNK + 3); /* leaves a spare chunk too */
    push(&q, &m, 2 * BL_SENDQ_CHUNK, 100);
    check(&q, &m);
    /* ASan's leak check at exit fails this test if anything is left allocated */
    bl_sendq_free(&q);
    assert_null(q.head);
    assert_null(q.tail);
    assert_null(q.spare);
    assert_int_equal(bl_sendq_bytes(&q), 0);
    free(m.data);
}

/* A queue drained by writes holds no chunk (quiet connections of a full mesh cost nothing), and
 * takes new frames afterwards as a fresh one. */
static void test_drained_holds_nothing(void **state)
{
    (void)state;
    bl_sendq q;
    bl_sendq_init(&q);
    model m;
    model_init(&m, 1 << 21);
    for (int round = 0; round < 3; round++) {
        push(&q, &m, 40, 40); /* a tick-sized frame in the small chunk */
        check(&q, &m);
        pop(&q, &m, 40);
        assert_null(q.head);
        assert_null(q.tail);
        assert_null(q.spare);
        for (int i = 0; i < 2000; i++) /* a burst over several chunks */
            push(&q, &m, 150, 150);
        check(&q, &m);
        pop(&q, &m, 2000 * 150);
        assert_null(q.head);
        assert_null(q.spare);
        assert_int_equal(bl_sendq_bytes(&q), 0);
    }
    bl_sendq_free(&q);
    free(m.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_small_frames_few_chunks),
        cmocka_unit_test(test_reserve_more_commit_less),
        cmocka_unit_test(test_partial_consume),
        cmocka_unit_test(test_big_reservation),
        cmocka_unit_test(test_free_with_data),
        cmocka_unit_test(test_drained_holds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
