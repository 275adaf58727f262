/* handshake.c - ei handshakes on an elastic worker pool (see handshake.h).
 *
 * The socket callbacks are ei's "user supplied socket implementation" (ussi) interface: plain TCP
 * with poll()-based timeouts, except that accept() does not call accept(2) but returns the fd the
 * loop already accepted for the job this thread is running (a thread-local set per job). */
#include "handshake.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef struct hs_job {
    struct hs_job *next;
    int outgoing;
    int fd, lfd;
    char node[BL_NODE_LEN];
} hs_job;

struct bl_hs_pool {
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;
    hs_job *jobs_head, *jobs_tail;
    bl_hs_result *done;
    unsigned running, max;
    unsigned accept_tmo, connect_tmo;
    int shutting_down;
    ei_cnode *ec;
    void (*notify)(void *);
    void *arg;
};

/* The fd accepted by the loop for the accept job this worker thread is running. */
static _Thread_local int tl_accepted_fd = -1;

/* ---- socket callbacks ---- */

#define CTX_FD(ctx) ((int)(intptr_t)(ctx))
#define FD_CTX(fd) ((void *)(intptr_t)(fd))

static int wait_fd(int fd, short events, unsigned tmo)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int ms = tmo == EI_SCLBK_INF_TMO ? -1 : (int)tmo;
    for (;;) {
        int r = poll(&pfd, 1, ms);
        if (r > 0) return 0;
        if (r == 0) return ETIMEDOUT;
        if (errno != EINTR) return errno;
    }
}

static int cb_socket(void **ctx, void *setup)
{
    (void)setup;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    *ctx = FD_CTX(fd);
    return 0;
}

static int cb_close(void *ctx)
{
    return close(CTX_FD(ctx)) < 0 ? errno : 0;
}

static int cb_listen(void *ctx, void *addr, int *len, int backlog)
{
    int fd = CTX_FD(ctx), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, addr, (socklen_t)*len) < 0) return errno;
    if (listen(fd, backlog) < 0) return errno;
    socklen_t sl = (socklen_t)*len;
    if (getsockname(fd, addr, &sl) < 0) return errno;
    *len = (int)sl;
    return 0;
}

static int cb_accept(void **ctx, void *addr, int *len, unsigned tmo)
{
    (void)tmo;
    int fd = tl_accepted_fd;
    if (fd < 0) return EAGAIN;
    tl_accepted_fd = -1;
    socklen_t sl = (socklen_t)*len;
    if (getpeername(fd, addr, &sl) < 0) {
        int e = errno;
        close(fd);
        return e;
    }
    *len = (int)sl;
    *ctx = FD_CTX(fd);
    return 0;
}

static int cb_connect(void *ctx, void *addr, int len, unsigned tmo)
{
    int fd = CTX_FD(ctx);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = connect(fd, addr, (socklen_t)len);
    if (r < 0 && errno != EINPROGRESS) return errno;
    if (r < 0) {
        int e = wait_fd(fd, POLLOUT, tmo);
        if (e) return e;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) return soerr;
    }
    fcntl(fd, F_SETFL, fl);
    return 0;
}

static int cb_write(void *ctx, const char *buf, ssize_t *len, unsigned tmo)
{
    int fd = CTX_FD(ctx);
    int e = wait_fd(fd, POLLOUT, tmo);
    if (e) return e;
    ssize_t w;
    do
        w = send(fd, buf, (size_t)*len, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) return errno;
    *len = w;
    return 0;
}

static int cb_writev(void *ctx, const void *iov, int iovcnt, ssize_t *len, unsigned tmo)
{
    int fd = CTX_FD(ctx);
    int e = wait_fd(fd, POLLOUT, tmo);
    if (e) return e;
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t w;
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) return errno;
    *len = w;
    return 0;
}

static int cb_read(void *ctx, char *buf, ssize_t *len, unsigned tmo)
{
    int fd = CTX_FD(ctx);
    int e = wait_fd(fd, POLLIN, tmo);
    if (e) return e;
    ssize_t r;
    do
        r = recv(fd, buf, (size_t)*len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) return errno;
    *len = r;
    return 0;
}

static int cb_hdr_size(void *ctx, int *sz)
{
    (void)ctx;
    *sz = 2;
    return 0;
}

static int cb_done(void *ctx)
{
    (void)ctx;
    return 0;
}

static int cb_get_fd(void *ctx, int *fd)
{
    *fd = CTX_FD(ctx);
    return 0;
}

ei_socket_callbacks bl_hs_callbacks = {
    .flags = EI_SCLBK_FLG_FULL_IMPL,
    .socket = cb_socket,
    .close = cb_close,
    .listen = cb_listen,
    .EI_ACCEPT_NAME = cb_accept,
    .connect = cb_connect,
    .writev = cb_writev,
    .write = cb_write,
    .read = cb_read,
    .handshake_packet_header_size = cb_hdr_size,
    .connect_handshake_complete = cb_done,
    .accept_handshake_complete = cb_done,
    .get_fd = cb_get_fd,
};

/* ---- the pool ---- */

static void run_job(bl_hs_pool *p, hs_job *j, bl_hs_result *r)
{
    r->outgoing = j->outgoing;
    r->fd = -1;
    if (j->outgoing) {
        snprintf(r->node, sizeof(r->node), "%s", j->node);
        int fd = ei_connect_tmo(p->ec, j->node, p->connect_tmo);
        if (fd < 0) {
            int e = erl_errno;
            snprintf(r->error, sizeof(r->error), "%s",
                     e == ETIMEDOUT ? "timed out"
                     : e == EHOSTUNREACH || e == ECONNREFUSED
                         ? "node not reachable (not registered in EPMD, or refused)"
                     : e == EIO ? "failed (not registered in EPMD yet, wrong cookie, or name clash)"
                                : strerror(e));
            return;
        }
        r->fd = fd;
    } else {
        ErlConnect conn;
        char peer[64] = "?";
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        if (getpeername(j->fd, (struct sockaddr *)&sa, &sl) == 0 && sa.sin_family == AF_INET) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
            snprintf(peer, sizeof(peer), "%s:%u", ip, (unsigned)ntohs(sa.sin_port));
        }
        tl_accepted_fd = j->fd;
        int fd = ei_accept_tmo(p->ec, j->lfd, &conn, p->accept_tmo);
        if (tl_accepted_fd >= 0) { /* ei failed before taking the fd */
            close(tl_accepted_fd);
            tl_accepted_fd = -1;
        }
        if (fd < 0) {
            int e = erl_errno;
            snprintf(r->node, sizeof(r->node), "%s", "?");
            snprintf(r->error, sizeof(r->error), "from %s: %s", peer,
                     e == ETIMEDOUT ? "timed out (peer stalled mid-handshake)"
                     : e == EIO     ? "bad data or bad challenge reply (wrong cookie?)"
                                    : strerror(e));
            return;
        }
        snprintf(r->node, sizeof(r->node), "%.255s", conn.nodename);
        r->fd = fd;
    }
}

static void *worker(void *arg)
{
    bl_hs_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        hs_job *j = p->jobs_head;
        if (!j) break;
        p->jobs_head = j->next;
        if (!p->jobs_head) p->jobs_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        bl_hs_result *r = calloc(1, sizeof(*r));
        if (r) {
            run_job(p, j, r);
        } else if (!j->outgoing) {
            close(j->fd);
        }
        free(j);

        pthread_mutex_lock(&p->mu);
        if (r) {
            r->next = p->done;
            p->done = r;
        }
        pthread_mutex_unlock(&p->mu);
        if (r) p->notify(p->arg);
        pthread_mutex_lock(&p->mu);
    }
    p->running--;
    pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

bl_hs_pool *bl_hs_pool_new(ei_cnode *ec, unsigned max_threads, unsigned accept_tmo_ms,
                           unsigned connect_tmo_ms, void (*notify)(void *), void *arg)
{
    bl_hs_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->idle_cv, NULL);
    p->max = max_threads ? max_threads : 1;
    p->accept_tmo = accept_tmo_ms;
    p->connect_tmo = connect_tmo_ms;
    p->ec = ec;
    p->notify = notify;
    p->arg = arg;
    return p;
}

static int submit(bl_hs_pool *p, hs_job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->shutting_down) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return BL_EINVAL;
    }
    if (p->jobs_tail)
        p->jobs_tail->next = j;
    else
        p->jobs_head = j;
    p->jobs_tail = j;
    int rc = BL_OK;
    if (p->running < p->max) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        if (pthread_create(&t, &at, worker, p) == 0)
            p->running++;
        else if (p->running == 0)
            rc = BL_ESYS; /* the job stays queued; the next submit retries */
        pthread_attr_destroy(&at);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int bl_hs_accept(bl_hs_pool *p, int fd, int lfd)
{
    hs_job *j = calloc(1, sizeof(*j));
    if (!j) return BL_ENOMEM;
    j->fd = fd;
    j->lfd = lfd;
    return submit(p, j);
}

int bl_hs_connect(bl_hs_pool *p, const char *node)
{
    hs_job *j = calloc(1, sizeof(*j));
    if (!j) return BL_ENOMEM;
    j->outgoing = 1;
    j->fd = -1;
    snprintf(j->node, sizeof(j->node), "%s", node);
    return submit(p, j);
}

bl_hs_result *bl_hs_take(bl_hs_pool *p)
{
    pthread_mutex_lock(&p->mu);
    bl_hs_result *r = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    /* reverse to completion order */
    bl_hs_result *out = NULL;
    while (r) {
        bl_hs_result *next = r->next;
        r->next = out;
        out = r;
        r = next;
    }
    return out;
}

void bl_hs_pool_free(bl_hs_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->shutting_down = 1;
    for (hs_job *j = p->jobs_head; j;) { /* never started: close accepted fds */
        hs_job *next = j->next;
        if (!j->outgoing) close(j->fd);
        free(j);
        j = next;
    }
    p->jobs_head = p->jobs_tail = NULL;
    while (p->running > 0)
        pthread_cond_wait(&p->idle_cv, &p->mu);
    bl_hs_result *r = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    while (r) {
        bl_hs_result *next = r->next;
        if (r->fd >= 0) close(r->fd);
        free(r);
        r = next;
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->idle_cv);
    free(p);
}
