/* thread.c - starting the node's helper threads with a bounded stack (thread.h). */
#include "thread.h"

int bl__thread_start(pthread_t *th, size_t stack, int detached, void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t at;
    int rc = pthread_attr_init(&at);
    if (rc != 0) return rc;
    if (detached) pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, stack);
    rc = pthread_create(&t, &at, fn, arg);
    pthread_attr_destroy(&at);
    if (rc == 0 && th) *th = t;
    return rc;
}
