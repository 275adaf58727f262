/* gossip.c - libcluster-compatible UDP multicast heartbeats (Cluster.Strategy.Gossip).
 *
 * Verified against bitwalker/libcluster lib/strategy/gossip.ex (read at HEAD 6d8c11f "release
 * 3.5.0"; the file last changed in 7527784, 2023-01-25), and against OTP 25 by running erl:
 *  - defaults: port 45892, multicast_addr 233.252.1.32 (230.1.1.251 before 449a65e, 2021-05),
 *    if_addr 0.0.0.0, multicast_ttl 1. No secret by default.
 *  - socket: gen_udp bound to if_addr:port with reuseaddr, broadcast (SO_BROADCAST), multicast_ttl,
 *    multicast_loop true, add_membership {group, multicast_if or 0.0.0.0}; IP_MULTICAST_IF only
 *    when multicast_if is configured. broadcast_only: true skips all multicast options and sends
 *    to multicast_addr used as a broadcast address. The "reuseport" raw option uses the BSD
 *    numbers (0xFFFF, 0x0200) even on Linux, where OTP silently ignores it: checked with OTP 25,
 *    SO_REUSEPORT stays 0. So on Linux a BEAM socket has SO_REUSEADDR only; ours has
 *    SO_REUSEADDR + SO_REUSEPORT, and Linux lets both bind the port because both set
 *    SO_REUSEADDR. Multicast datagrams are delivered to every such socket.
 *  - sending: first heartbeat at once (handle_continue), then after :rand.uniform(5000) ms, i.e.
 *    a random 1..5000 ms (we use a fixed gossip_interval_ms). Sent to {multicast_addr, port}
 *    (never to a broadcast address unless multicast_addr is one); send errors are ignored.
 *  - plaintext packet: "heartbeat::" ++ term_to_binary(#{node => node()}). OTP 25 encodes the
 *    atoms as ATOM_EXT (100), OTP 26+ as SMALL_ATOM_UTF8_EXT (119); we accept 100/115/118/119
 *    and send what ei produces.
 *  - with secret: packet = IV (16 bytes, crypto:strong_rand_bytes) ++ AES-256-CBC(key =
 *    sha256(secret), PKCS#7-padded("heartbeat::" ++ term)). The prefix is inside the encryption.
 *    Padding always adds 1..16 bytes (a full block when aligned) = OpenSSL's EVP padding.
 *    libcluster's unpad also accepts a pad byte of 0 (never produced by a sender); we don't.
 *  - receiving: without a secret only packets starting with "heartbeat::" are looked at; with a
 *    secret, anything of 16+ bytes is split IV/ciphertext and decrypted, failures are dropped.
 *    binary_to_term (not :safe, trailing bytes ignored) must give a map matching %{node: n} with
 *    is_atom(n); %{node: node()} (its own packet, looped back) is ignored; anything else ignored
 *    silently (a non-term crashes its GenServer). It then connects to n.
 * Differences, on purpose: we decode by hand with every length bounded, accept only the exact
 * shape libcluster sends (map of arity 1, atom key node, atom value, no trailing bytes), require
 * a printable ASCII name with exactly one '@', and log why a packet was dropped (rate-limited). */
#include "gossip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/crypto.h"

#define PREFIX "heartbeat::"
#define PREFIX_LEN 11
#define IV_LEN 16
#define KEY_LEN 32
#define MAX_PKT 1024       /* bigger packets are not heartbeats (ours are < 320 bytes) */
#define RECV_BUDGET 64     /* datagrams per read callback */
#define WARN_SLOTS 32      /* senders remembered for log rate limiting */
#define WARN_PERIOD 60.0   /* seconds between warnings about one sender */
#define WARN_GLOBAL_MAX 20 /* warnings per period over all senders */

typedef struct {
    struct in_addr addr;
    ev_tstamp last;
    int used;
} warn_slot;

struct bl_gossip {
    bl_node *n;
    bl_gossip_found_cb found;
    void *ud;
    int fd;
    struct sockaddr_in dest;
    int has_key;
    unsigned char key[KEY_LEN];
    ev_io rio;
    ev_timer timer;
    warn_slot warned[WARN_SLOTS];
    ev_tstamp global_since;
    unsigned global_count;
    unsigned long long suppressed; /* warnings not logged since the last one logged */
    ev_tstamp send_err_at;
    unsigned long long send_errs;
};

/* ---- codec ------------------------------------------------------------------------------- */

static int derive_key(const char *secret, unsigned char key[KEY_LEN])
{
    unsigned int mdlen = 0;
    const bl_crypto *cr = bl_crypto_get();
    if (!cr || cr->Digest(secret, strlen(secret), key, &mdlen, cr->sha256(), NULL) != 1) return -1;
    return mdlen == KEY_LEN ? 0 : -1;
}

/* A node name we are willing to send or connect to: printable ASCII, exactly one '@' with
 * something on both sides, shorter than BL_NODE_LEN. */
static int valid_node(const char *s, size_t len)
{
    if (len < 3 || len >= BL_NODE_LEN) return 0;
    int at = -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f) return 0;
        if (ch == '@') {
            if (at >= 0) return 0;
            at = (int)i;
        }
    }
    return at > 0 && (size_t)at < len - 1;
}

/* Plaintext heartbeat ("heartbeat::" ++ term) into out; returns its length or -1. */
static int encode_plain(const char *node, unsigned char *out, size_t outsz)
{
    if (!node || !valid_node(node, strlen(node))) return -1;
    int idx = 0;
    /* first pass computes the size (ei accepts a NULL buffer) */
    if (ei_encode_version(NULL, &idx) || ei_encode_map_header(NULL, &idx, 1) ||
        ei_encode_atom(NULL, &idx, "node") || ei_encode_atom(NULL, &idx, node))
        return -1;
    if ((size_t)idx + PREFIX_LEN > outsz) return -1;
    memcpy(out, PREFIX, PREFIX_LEN);
    char *t = (char *)out + PREFIX_LEN;
    idx = 0;
    if (ei_encode_version(t, &idx) || ei_encode_map_header(t, &idx, 1) ||
        ei_encode_atom(t, &idx, "node") || ei_encode_atom(t, &idx, node))
        return -1;
    return PREFIX_LEN + idx;
}

static int encode_with_key(const char *node, const unsigned char *key, unsigned char *out,
                           size_t outsz)
{
    if (!key) return encode_plain(node, out, outsz);
    unsigned char plain[MAX_PKT];
    int plen = encode_plain(node, plain, sizeof(plain));
    if (plen < 0) return -1;
    size_t need = IV_LEN + ((size_t)plen / 16 + 1) * 16; /* PKCS#7 always adds 1..16 bytes */
    if (need > outsz) return -1;
    const bl_crypto *cr = bl_crypto_get();
    if (!cr || cr->RAND_bytes(out, IV_LEN) != 1) return -1;
    EVP_CIPHER_CTX *ctx = cr->CTX_new();
    if (!ctx) return -1;
    int l1 = 0, l2 = 0,
        ok = cr->EncryptInit_ex(ctx, cr->aes_256_cbc(), NULL, key, out) == 1 &&
             cr->EncryptUpdate(ctx, out + IV_LEN, &l1, plain, plen) == 1 &&
             cr->EncryptFinal_ex(ctx, out + IV_LEN + l1, &l2) == 1;
    cr->CTX_free(ctx);
    if (!ok || (size_t)(IV_LEN + l1 + l2) != need) return -1;
    return (int)need;
}

int bl_gossip_encode(const char *node, const char *secret, unsigned char *out, size_t outsz)
{
    if (!out) return -1;
    unsigned char key[KEY_LEN];
    int keyed = secret && secret[0];
    if (keyed && derive_key(secret, key)) return -1;
    int r = encode_with_key(node, keyed ? key : NULL, out, outsz);
    explicit_bzero(key, sizeof(key));
    return r;
}

/* One atom at p[*i] (any of the four atom encodings); sets *s and *len. 0 or -1. */
static int parse_atom(const unsigned char *p, size_t end, size_t *i, const unsigned char **s,
                      size_t *len)
{
    if (*i >= end) return -1;
    unsigned char tag = p[(*i)++];
    size_t n;
    if (tag == 100 || tag == 118) { /* ATOM_EXT, ATOM_UTF8_EXT: 2-byte length */
        if (end - *i < 2) return -1;
        n = (size_t)p[*i] << 8 | p[*i + 1];
        *i += 2;
    } else if (tag == 115 || tag == 119) { /* SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT */
        if (end - *i < 1) return -1;
        n = p[(*i)++];
    } else {
        return -1;
    }
    if (n > 255 * 4 || end - *i < n) return -1;
    *s = p + *i;
    *len = n;
    *i += n;
    return 0;
}

/* "heartbeat::" ++ <<131, MAP_EXT arity 1, atom node, atom Name>>, nothing after. */
static int decode_plain(const unsigned char *p, size_t len, char *node, size_t nodesz,
                        const char **why)
{
    if (len < PREFIX_LEN || memcmp(p, PREFIX, PREFIX_LEN) != 0) {
        *why = "not a heartbeat (no \"heartbeat::\" prefix)";
        return -1;
    }
    size_t i = PREFIX_LEN;
    *why = "heartbeat term is not #{node => Atom}";
    if (len - i < 6 || p[i] != 131 || p[i + 1] != 116) return -1;
    i += 2;
    unsigned long arity = (unsigned long)p[i] << 24 | (unsigned long)p[i + 1] << 16 |
                          (unsigned long)p[i + 2] << 8 | p[i + 3];
    i += 4;
    if (arity != 1) return -1;
    const unsigned char *k, *v;
    size_t klen, vlen;
    if (parse_atom(p, len, &i, &k, &klen) || klen != 4 || memcmp(k, "node", 4) != 0) return -1;
    if (parse_atom(p, len, &i, &v, &vlen)) return -1;
    if (i != len) {
        *why = "trailing bytes after the heartbeat term";
        return -1;
    }
    if (!valid_node((const char *)v, vlen)) {
        *why = "node name is not name@host";
        return -1;
    }
    if (vlen >= nodesz) {
        *why = "node name too long";
        return -1;
    }
    memcpy(node, v, vlen);
    node[vlen] = '\0';
    *why = NULL;
    return 0;
}

static int decode_with_key(const unsigned char *pkt, size_t len, const unsigned char *key,
                           char *node, size_t nodesz, const char **why)
{
    if (!pkt || !node || nodesz == 0) {
        *why = "bad arguments";
        return -1;
    }
    node[0] = '\0';
    if (len > MAX_PKT) {
        *why = "oversized packet";
        return -1;
    }
    if (!key) return decode_plain(pkt, len, node, nodesz, why);
    if (len < IV_LEN + 16 || (len - IV_LEN) % 16 != 0) {
        *why = len >= PREFIX_LEN && memcmp(pkt, PREFIX, PREFIX_LEN) == 0
                   ? "plaintext heartbeat but a gossip secret is set"
                   : "not an encrypted heartbeat (bad length)";
        return -1;
    }
    unsigned char plain[MAX_PKT + 16];
    const bl_crypto *cr = bl_crypto_get();
    if (!cr) {
        *why = "libcrypto.so.3 not available";
        return -1;
    }
    EVP_CIPHER_CTX *ctx = cr->CTX_new();
    if (!ctx) {
        *why = "out of memory";
        return -1;
    }
    int l1 = 0, l2 = 0;
    int ok = cr->DecryptInit_ex(ctx, cr->aes_256_cbc(), NULL, key, pkt) == 1 &&
             cr->DecryptUpdate(ctx, plain, &l1, pkt + IV_LEN, (int)(len - IV_LEN)) == 1 &&
             cr->DecryptFinal_ex(ctx, plain + l1, &l2) == 1;
    cr->CTX_free(ctx);
    if (!ok) {
        *why = len >= PREFIX_LEN && memcmp(pkt, PREFIX, PREFIX_LEN) == 0
                   ? "plaintext heartbeat but a gossip secret is set"
                   : "decryption failed: bad padding (wrong secret?)";
        return -1;
    }
    int r = decode_plain(plain, (size_t)(l1 + l2), node, nodesz, why);
    if (r && len >= PREFIX_LEN && memcmp(pkt, PREFIX, PREFIX_LEN) == 0)
        *why = "plaintext heartbeat but a gossip secret is set";
    else if (r && (size_t)(l1 + l2) >= PREFIX_LEN && memcmp(plain, PREFIX, PREFIX_LEN) != 0)
        *why = "decrypted to garbage (wrong secret?)";
    explicit_bzero(plain, sizeof(plain));
    return r;
}

int bl_gossip_decode(const unsigned char *pkt, size_t len, const char *secret, char *node,
                     size_t nodesz)
{
    const char *why = NULL;
    unsigned char key[KEY_LEN];
    int keyed = secret && secret[0];
    if (keyed && derive_key(secret, key)) return -1;
    int r = decode_with_key(pkt, len, keyed ? key : NULL, node, nodesz, &why);
    explicit_bzero(key, sizeof(key));
    return r;
}

/* ---- socket and loop --------------------------------------------------------------------- */

/* Log a dropped packet: at most one line per sender address per WARN_PERIOD, and at most
 * WARN_GLOBAL_MAX lines per period over all senders. */
static void warn_packet(bl_gossip *g, const struct sockaddr_in *from, size_t len, const char *why)
{
    ev_tstamp now = ev_now(g->n->loop);
    warn_slot *slot = NULL, *oldest = &g->warned[0];
    for (int i = 0; i < WARN_SLOTS; i++) {
        warn_slot *s = &g->warned[i];
        if (s->used && s->addr.s_addr == from->sin_addr.s_addr) {
            slot = s;
            break;
        }
        if (!s->used || (oldest->used && s->last < oldest->last)) oldest = s;
    }
    if (slot && now - slot->last < WARN_PERIOD) {
        g->suppressed++;
        return;
    }
    if (now - g->global_since >= WARN_PERIOD) {
        g->global_since = now;
        g->global_count = 0;
    }
    if (g->global_count >= WARN_GLOBAL_MAX) {
        g->suppressed++;
        return;
    }
    g->global_count++;
    if (!slot) {
        slot = oldest;
        slot->used = 1;
        slot->addr = from->sin_addr;
    }
    slot->last = now;
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &from->sin_addr, a, sizeof(a));
    char more[64] = "";
    if (g->suppressed)
        snprintf(more, sizeof(more), "; %llu similar warnings suppressed", g->suppressed);
    bl_log(g->n, BL_LOG_WARN,
           "gossip: ignoring %zu-byte packet from %s:%u: %s (next warning for this sender in "
           "%.0f s%s)",
           len, a, (unsigned)ntohs(from->sin_port), why, WARN_PERIOD, more);
    g->suppressed = 0;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_gossip *g = w->data;
    unsigned char buf[MAX_PKT + 1];
    for (int k = 0; k < RECV_BUDGET; k++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        memset(&from, 0, sizeof(from));
        ssize_t r = recvfrom(g->fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &fl);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                bl_log(g->n, BL_LOG_DEBUG, "gossip: recvfrom: %s", strerror(errno));
            return;
        }
        if (from.sin_family != AF_INET) continue;
        char node[BL_NODE_LEN];
        const char *why = NULL;
        if (decode_with_key(buf, (size_t)r, g->has_key ? g->key : NULL, node, sizeof(node), &why)) {
            warn_packet(g, &from, (size_t)r, why);
            continue;
        }
        if (strcmp(node, g->n->name) == 0) continue;    /* our own heartbeat, looped back */
        if (strncmp(node, "nonode@", 7) == 0) continue; /* a BEAM that is not distributed */
        bl_log(g->n, BL_LOG_DEBUG, "gossip: heartbeat from %s", node);
        if (g->found) g->found(g->n, node, g->ud);
    }
}

static void send_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl_gossip *g = w->data;
    unsigned char pkt[MAX_PKT];
    int len = encode_with_key(g->n->name, g->has_key ? g->key : NULL, pkt, sizeof(pkt));
    const char *why = NULL;
    if (len < 0) {
        why = "cannot encode our heartbeat";
    } else if (sendto(g->fd, pkt, (size_t)len, 0, (struct sockaddr *)&g->dest, sizeof(g->dest)) <
               0) {
        why = strerror(errno);
    }
    if (!why) return;
    ev_tstamp now = ev_now(g->n->loop);
    g->send_errs++;
    if (g->send_err_at == 0 || now - g->send_err_at >= WARN_PERIOD) {
        g->send_err_at = now;
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &g->dest.sin_addr, a, sizeof(a));
        bl_log(g->n, BL_LOG_WARN,
               "gossip: heartbeat to %s:%u not sent: %s (%llu failures; next "
               "report in %.0f s)",
               a, (unsigned)ntohs(g->dest.sin_port), why, g->send_errs, WARN_PERIOD);
    }
}

static bl_gossip *fail(bl_gossip *g, char *err, size_t errlen, const char *what)
{
    if (err && errlen) snprintf(err, errlen, "gossip: %s: %s", what, strerror(errno));
    if (g->fd >= 0) close(g->fd);
    explicit_bzero(g->key, sizeof(g->key));
    free(g);
    return NULL;
}

bl_gossip *bl_gossip_start(bl_node *n, bl_gossip_found_cb found, void *ud, char *err, size_t errlen)
{
    const bl_config *cfg = &n->cfg;
    struct in_addr group, ifa;
    if (inet_pton(AF_INET, cfg->gossip_address, &group) != 1) {
        snprintf(err, errlen, "gossip: invalid gossip_address '%s'", cfg->gossip_address);
        return NULL;
    }
    if (inet_pton(AF_INET, cfg->gossip_if[0] ? cfg->gossip_if : "0.0.0.0", &ifa) != 1) {
        snprintf(err, errlen, "gossip: invalid gossip_if '%s'", cfg->gossip_if);
        return NULL;
    }
    if (cfg->gossip_port <= 0 || cfg->gossip_port > 65535) {
        snprintf(err, errlen, "gossip: invalid gossip_port %d", cfg->gossip_port);
        return NULL;
    }
    bl_gossip *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "gossip: out of memory");
        return NULL;
    }
    g->n = n;
    g->found = found;
    g->ud = ud;
    g->fd = -1;
    if (cfg->gossip_secret[0]) {
        if (derive_key(cfg->gossip_secret, g->key)) {
            errno = EINVAL;
            return fail(g, err, errlen, "SHA-256 of the secret");
        }
        g->has_key = 1;
    }
    unsigned char probe[MAX_PKT];
    if (encode_with_key(n->name, g->has_key ? g->key : NULL, probe, sizeof(probe)) < 0) {
        errno = EINVAL;
        return fail(g, err, errlen, "cannot encode a heartbeat for our node name");
    }

    g->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g->fd < 0) return fail(g, err, errlen, "socket");
    int one = 1;
    unsigned char ttl = 1, loop = 1;
    if (setsockopt(g->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
        return fail(g, err, errlen, "SO_REUSEADDR");
    if (setsockopt(g->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
        return fail(g, err, errlen, "SO_REUSEPORT");
    /* as libcluster: lets gossip_address be a broadcast address (its broadcast_only mode) */
    if (setsockopt(g->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)))
        return fail(g, err, errlen, "SO_BROADCAST");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->gossip_port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(g->fd, (struct sockaddr *)&sa, sizeof(sa))) {
        char what[96];
        snprintf(what, sizeof(what), "bind 0.0.0.0:%d", cfg->gossip_port);
        return fail(g, err, errlen, what);
    }
    if (IN_MULTICAST(ntohl(group.s_addr))) {
        struct ip_mreq mr;
        mr.imr_multiaddr = group;
        mr.imr_interface = ifa;
        if (setsockopt(g->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr))) {
            char what[160];
            snprintf(what, sizeof(what), "join %s on %s", cfg->gossip_address,
                     cfg->gossip_if[0] ? cfg->gossip_if : "0.0.0.0");
            return fail(g, err, errlen, what);
        }
        if (ifa.s_addr != htonl(INADDR_ANY) &&
            setsockopt(g->fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa)))
            return fail(g, err, errlen, "IP_MULTICAST_IF");
        if (setsockopt(g->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)))
            return fail(g, err, errlen, "IP_MULTICAST_TTL");
        if (setsockopt(g->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)))
            return fail(g, err, errlen, "IP_MULTICAST_LOOP");
    }
    memset(&g->dest, 0, sizeof(g->dest));
    g->dest.sin_family = AF_INET;
    g->dest.sin_port = htons((uint16_t)cfg->gossip_port);
    g->dest.sin_addr = group;

    ev_io_init(&g->rio, read_cb, g->fd, EV_READ);
    g->rio.data = g;
    ev_io_start(n->loop, &g->rio);
    unsigned ms = cfg->gossip_interval_ms ? cfg->gossip_interval_ms : 5000;
    ev_timer_init(&g->timer, send_cb, 0.0, ms / 1000.0); /* first heartbeat right away */
    g->timer.data = g;
    ev_timer_start(n->loop, &g->timer);
    bl_log(n, BL_LOG_INFO, "gossip: %s:%d on %s, every %u ms%s", cfg->gossip_address,
           cfg->gossip_port, cfg->gossip_if[0] ? cfg->gossip_if : "0.0.0.0", ms,
           g->has_key ? ", encrypted" : "");
    return g;
}

void bl_gossip_stop(bl_gossip *g)
{
    if (!g) return;
    ev_io_stop(g->n->loop, &g->rio);
    ev_timer_stop(g->n->loop, &g->timer);
    close(g->fd);
    explicit_bzero(g->key, sizeof(g->key));
    free(g);
}
