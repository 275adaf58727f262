/* resolve.h - host names to addresses without blocking the loop.
 *
 * An IP literal (127.0.0.1, ::1) is answered at once. Any other name is looked up with
 * getaddrinfo on a short-lived detached thread (one per name in flight, however many connects
 * wait for it), and the answer comes back to the loop through an ev_async. Answers are cached
 * for a few seconds so a burst of connects to one host costs one lookup. The thread only touches
 * a reference-counted box, so the resolver can be freed while a lookup still runs. */
#ifndef BL_DIST_RESOLVE_H
#define BL_DIST_RESOLVE_H

#include <ev.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define BL_RESOLVE_MAX_ADDRS 4

typedef struct bl_resolver bl_resolver;

typedef struct bl_addrs {
    int n;
    struct sockaddr_storage a[BL_RESOLVE_MAX_ADDRS];
    socklen_t len[BL_RESOLVE_MAX_ADDRS];
} bl_addrs;

/* addrs is NULL on failure, with why. Runs from the loop. */
typedef void (*bl_resolve_cb)(void *ud, const bl_addrs *addrs, const char *why);

typedef struct bl_resolve_wait bl_resolve_wait;

bl_resolver *bl_resolver_new(struct ev_loop *loop);
void bl_resolver_free(bl_resolver *r);
/* Parse an IP literal (IPv6 with or without [brackets]); 0 on success. */
int bl_resolve_literal(const char *host, struct sockaddr_storage *ss, socklen_t *len);
/* Look up host for family (AF_INET or AF_INET6). A literal or a cached answer calls cb before
 * returning and returns NULL; otherwise returns a handle for bl_resolve_cancel (NULL with cb
 * called with an error when out of memory). */
bl_resolve_wait *bl_resolve(bl_resolver *r, const char *host, int family, bl_resolve_cb cb,
                            void *ud);
void bl_resolve_cancel(bl_resolver *r, bl_resolve_wait *w);

#endif
