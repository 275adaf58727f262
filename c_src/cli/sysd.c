/* sysd.c - systemd's notify protocol for `beamlet node` under Type=notify: READY=1 once the node
 * is published in EPMD and joined (connected to one of its seeds; at once without seeds; after a
 * 30 s grace with a STATUS saying no seed answered, so a cluster cold start cannot deadlock),
 * WATCHDOG=1 from a loop timer every WatchdogSec/2 (a stuck loop stops feeding it), RELOADING=1
 * and STOPPING=1.
 *
 * Why the datagram protocol and not libsystemd's sd_notify: sd_notify(3) documents the protocol
 * as stable (one AF_UNIX datagram of KEY=VALUE lines to $NOTIFY_SOCKET, '@' for the abstract
 * namespace); sending it is a socket and a sendto, which needs no library, no dlopen and no
 * package dependency, and can be tested against a plain socket. Outside systemd NOTIFY_SOCKET is
 * unset and nothing here runs: no socket, no timer. Sends are MSG_DONTWAIT: never a blocked loop.
 */
#include "node_ctx.h"

#include "beamlet/cluster.h"

#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define JOIN_GRACE_S 30.0
#define POLL_MS 100

void bl__sysd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0] || (path[0] != '/' && path[0] != '@')) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path)) return;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') sa.sun_path[0] = 0; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void watchdog_cb(bl_node *n, void *ud)
{
    (void)n;
    (void)ud;
    bl__sysd_notify("WATCHDOG=1");
}

static int joined(bl_node *n, const bl_config *cfg)
{
    if (cfg->njoin == 0) return 1;
    for (int i = 0; i < cfg->njoin; i++)
        if (bl_is_connected(n, cfg->join[i])) return 1;
    return 0;
}

static void ready(bl__node_ctx *ctx, const char *status)
{
    char msg[512];
    const bl_config *cfg = bl_node_config(ctx->n);
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s: %s, role %s, cluster %s\nMAINPID=%d",
             bl_node_name(ctx->n), status, cfg->role, cfg->cluster, (int)getpid());
    bl__sysd_notify(msg);
    ctx->sysd.ready = 1;
    bl_log(ctx->n, BL_LOG_INFO, "systemd: ready (%s)", status);
}

static void poll_cb(bl_node *n, void *ud)
{
    bl__node_ctx *ctx = ud;
    if (ctx->sysd.ready) return;
    if (joined(n, bl_node_config(n))) {
        ready(ctx, "published and joined");
    } else if (now_s() - ctx->sysd.since > JOIN_GRACE_S) {
        ready(ctx, "published; no seed answered in 30 s, running alone until one does");
    } else {
        return;
    }
    bl_timer_cancel(n, ctx->sysd.timer);
    ctx->sysd.timer = 0;
}

int bl__sysd_start(bl__node_ctx *ctx)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !sock[0]) return BL_OK;
    bl_node *n = ctx->n;
    const char *usec = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
    if (usec && (!wpid || atol(wpid) == (long)getpid())) {
        unsigned long long us = strtoull(usec, NULL, 10);
        if (us >= 2000) {
            ctx->sysd.watchdog_ms = (unsigned)(us / 2000); /* half the interval, in ms */
            int id = bl_timer(n, ctx->sysd.watchdog_ms, ctx->sysd.watchdog_ms, watchdog_cb, ctx);
            if (id < 0) return id;
            bl_log(n, BL_LOG_INFO, "systemd: feeding the watchdog every %u ms",
                   ctx->sysd.watchdog_ms);
        }
    }
    ctx->sysd.since = now_s();
    bl__sysd_notify("STATUS=published; joining");
    if (joined(n, bl_node_config(n))) {
        ready(ctx, "published, no seeds to join");
        return BL_OK;
    }
    int id = bl_timer(n, POLL_MS, POLL_MS, poll_cb, ctx);
    if (id < 0) return id;
    ctx->sysd.timer = id;
    return BL_OK;
}
