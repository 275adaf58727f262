/* hs_bench.c - handshakes per second one node accepts (make bench, test/bench/hs_bench.sh).
 *
 *   hs_bench NODE@HOST COOKIE SECONDS CLIENTS
 *
 * Looks NODE's port up in the local EPMD once, then CLIENTS forked processes each run full
 * distribution handshakes back to back for SECONDS (connect, send_name with a fresh node name,
 * status, challenge, reply, verified ack, close), driven by beamlet's own handshake state machine
 * (dist/hsm.c) over blocking sockets. Prints the number of completed handshakes per second. The
 * same client measures a beamlet node and a BEAM node, so the two figures compare like for like. */
#include "dist/flags.h"
#include "dist/hsm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int epmd_port(const char *alive)
{
    int fd = tcp_connect(4369);
    if (fd < 0) return -1;
    unsigned char req[260];
    size_t nl = strlen(alive);
    req[0] = (unsigned char)((nl + 1) >> 8);
    req[1] = (unsigned char)(nl + 1);
    req[2] = 122;
    memcpy(req + 3, alive, nl);
    unsigned char resp[64];
    ssize_t k = 0;
    if (write(fd, req, 3 + nl) == (ssize_t)(3 + nl)) k = read(fd, resp, sizeof(resp));
    close(fd);
    if (k < 4 || resp[0] != 119 || resp[1] != 0) return -1;
    return (resp[2] << 8) | resp[3];
}

/* One full handshake; 1 when the ack verified. */
static int one_handshake(int port, const char *me, const char *cookie, const char *peer)
{
    int fd = tcp_connect(port);
    if (fd < 0) return 0;
    bl_hsm m;
    bl_hsm_init_out(&m, me, cookie, BL_DFLAGS_ADVERTISED, 1, peer, (uint32_t)random());
    int rc = BL_HSM_MORE, ok = 0;
    for (;;) {
        if (m.outlen && write(fd, m.out, m.outlen) != (ssize_t)m.outlen) break;
        m.outlen = 0;
        if (rc == BL_HSM_DONE) {
            ok = 1;
            break;
        }
        if (rc != BL_HSM_MORE) break;
        char buf[1100];
        size_t want = bl_hsm_want(&m);
        ssize_t k = read(fd, buf, want < sizeof(buf) ? want : sizeof(buf));
        if (k <= 0) break;
        size_t used;
        rc = bl_hsm_feed(&m, buf, (size_t)k, &used);
        if (rc == BL_HSM_PENDING) rc = bl_hsm_still_pending(&m, 1);
    }
    close(fd);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: hs_bench NODE@HOST COOKIE SECONDS CLIENTS\n");
        return 2;
    }
    const char *node = argv[1], *cookie = argv[2];
    double secs = atof(argv[3]);
    int clients = atoi(argv[4]);
    char alive[256];
    snprintf(alive, sizeof(alive), "%.*s", (int)strcspn(node, "@"), node);
    const char *host = strchr(node, '@') ? strchr(node, '@') + 1 : "localhost";
    int port = epmd_port(alive);
    if (port < 0) {
        fprintf(stderr, "hs_bench: %s is not registered in EPMD\n", alive);
        return 1;
    }
    int fds[64][2];
    if (clients < 1 || clients > 64) clients = 4;
    for (int c = 0; c < clients; c++) {
        if (pipe(fds[c]) < 0) return 1;
        if (fork() == 0) {
            srandom((unsigned)getpid());
            double end = now_s() + secs;
            long n = 0, i = 0;
            while (now_s() < end) {
                char me[256];
                snprintf(me, sizeof(me), "hsb_%d_%ld@%s", (int)getpid(), i++, host);
                n += one_handshake(port, me, cookie, node);
            }
            if (write(fds[c][1], &n, sizeof(n)) != sizeof(n)) _exit(1);
            _exit(0);
        }
    }
    long total = 0;
    for (int c = 0; c < clients; c++) {
        long n = 0;
        if (read(fds[c][0], &n, sizeof(n)) == sizeof(n)) total += n;
    }
    while (wait(NULL) > 0)
        ;
    printf("%.0f\n", total / secs);
    return 0;
}
