/* thread.h - the node's helper threads (thread.c): DNS lookups (dist/resolve.c), discovery rounds
 * (cluster/discovery.c), the metrics collector (health/collector.c) and the SQLite store threads
 * (store/store.c). Each gets a bounded stack instead of glibc's 8 MiB of address space: none of
 * them keeps large buffers on its stack. One place for how they are started, so the bound and
 * the attribute handling are not written once per layer. */
#ifndef BL_RUNTIME_THREAD_H
#define BL_RUNTIME_THREAD_H

#include <pthread.h>
#include <stddef.h>

/* The stack the lookup, discovery and collector threads run in. */
#define BL_THREAD_STACK (256 * 1024)

/* Start fn(arg) in a thread with a stack of `stack` bytes; detached (no join) when detached is
 * non-zero. The thread's id goes to *th when th is not NULL. 0, or pthread_create's error. */
int bl__thread_start(pthread_t *th, size_t stack, int detached, void *(*fn)(void *), void *arg);

#endif
