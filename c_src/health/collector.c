/* collector.c - the worker thread that reads metrics samples off the loop (collector.h).
 *
 * The loop asks for a sample (a flag and a condition variable: asking again while one is being
 * read just asks once more); the thread reads /proc and statfs (bl__collect), parks the finished
 * sample and wakes the loop with ev_async. A statfs stuck on a dead NFS server holds up only this
 * thread; when the node stops and the thread does not come back within two seconds it is
 * detached and frees its own state when (if ever) it returns. */
#include "../runtime/thread.h"
#include "collector.h"
#include "procfs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bl__collector {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int want, stop, orphan, exited;
    bl_health_metrics *ready; /* finished sample not yet taken by the loop */
    struct ev_loop *loop;
    ev_async *wake;
    char root[256];
    bl__collect_prev prev; /* worker thread only */
};

static void collector_free(bl__collector *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->ready);
    free(c);
}

static void *run(void *arg)
{
    bl__collector *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->want && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop) break;
        c->want = 0;
        pthread_mutex_unlock(&c->mu);
        bl_health_metrics *m = malloc(sizeof(*m));
        int rc = m ? bl__collect(c->root, &c->prev, m) : -1;
        pthread_mutex_lock(&c->mu);
        if (c->stop) {
            free(m);
            break;
        }
        if (rc == 0) {
            free(c->ready);
            c->ready = m;
            ev_async_send(c->loop, c->wake);
        } else {
            free(m);
        }
    }
    c->exited = 1;
    int orphan = c->orphan;
    pthread_mutex_unlock(&c->mu);
    if (orphan) collector_free(c);
    return NULL;
}

bl__collector *bl__collector_new(struct ev_loop *loop, ev_async *wake, const char *root)
{
    bl__collector *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->loop = loop;
    c->wake = wake;
    snprintf(c->root, sizeof(c->root), "%s", root && *root ? root : "/proc");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    /* a bounded stack: the samples and the parse buffers are on the heap */
    int rc = bl__thread_start(&c->th, BL_THREAD_STACK, 0, run, c);
    if (rc != 0) {
        collector_free(c);
        return NULL;
    }
    return c;
}

void bl__collector_request(bl__collector *c)
{
    pthread_mutex_lock(&c->mu);
    c->want = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

bl_health_metrics *bl__collector_take(bl__collector *c)
{
    pthread_mutex_lock(&c->mu);
    bl_health_metrics *m = c->ready;
    c->ready = NULL;
    pthread_mutex_unlock(&c->mu);
    return m;
}

void bl__collector_free(bl__collector *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    if (pthread_timedjoin_np(c->th, NULL, &dl) == 0) {
        collector_free(c);
        return;
    }
    /* stuck in a system call (a hung network filesystem): let it go */
    pthread_mutex_lock(&c->mu);
    int exited = c->exited;
    c->orphan = !exited;
    pthread_mutex_unlock(&c->mu);
    if (exited) {
        pthread_join(c->th, NULL);
        collector_free(c);
    } else {
        pthread_detach(c->th);
    }
}
