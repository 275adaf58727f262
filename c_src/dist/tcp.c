/* tcp.c - the plain TCP transport (see transport.h): recv/writev on the socket, nothing else. */
#include "transport.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int tcp_handshake(bl_tx *t)
{
    (void)t;
    return 1;
}

static ssize_t tcp_recv(bl_tx *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t r = recv(t->fd, buf, len, 0);
        if (r > 0) t->got = 1;
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        t->want = errno == EAGAIN || errno == EWOULDBLOCK ? EV_READ : 0;
        if (!t->want) snprintf(t->err, sizeof(t->err), "read failed: %s", strerror(errno));
        return -1;
    }
}

static ssize_t tcp_writev(bl_tx *t, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t w = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
        if (w >= 0) return w;
        if (errno == EINTR) continue;
        t->want = errno == EAGAIN || errno == EWOULDBLOCK ? EV_WRITE : 0;
        if (!t->want) snprintf(t->err, sizeof(t->err), "write failed: %s", strerror(errno));
        return -1;
    }
}

static int tcp_pending(const bl_tx *t)
{
    (void)t;
    return 0;
}

static void tcp_close(bl_tx *t)
{
    if (t->fd >= 0) close(t->fd);
    free(t);
}

static const bl_tx_ops TCP_OPS = {
    .name = "tcp",
    .read_until_block = 0,
    .batch_reads = 1,
    .handshake = tcp_handshake,
    .recv = tcp_recv,
    .writev = tcp_writev,
    .pending = tcp_pending,
    .close = tcp_close,
};

bl_tx *bl_tx_tcp_new(int fd)
{
    bl_tx *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->ops = &TCP_OPS;
    t->fd = fd;
    return t;
}
