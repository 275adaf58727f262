/* tls.c - the TLS transport on OpenSSL (see tls.h and transport.h).
 *
 * Non-blocking throughout: SSL_do_handshake, SSL_read and SSL_write report WANT_READ /
 * WANT_WRITE, which become the libev interest the caller waits for. SSL_write runs with
 * partial writes and a moving buffer, so the send queue's head is handed over again unchanged
 * after a WANT_WRITE (OpenSSL requires the retry to present the same bytes); small queued
 * frames are coalesced into one record. An accepted socket whose first byte is not a TLS
 * handshake record (0x16) is refused before OpenSSL sees it, with a reason that names it. */
#include "tls.h"
#include "guard.h"
#include "../runtime/dlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* OpenSSL is loaded with dlopen when a node first builds a TLS context, like the project's other
 * optional libraries: linking libssl would add ~1.7 MB to the resident memory of every node,
 * TLS or not (measured: 4.9 MB for a plain node, 1.7 MB of it libssl/libcrypto pages). The
 * headers give the types; the table below gives the functions (libcrypto's through libssl's
 * handle, its dependency), loaded by runtime/dlib.c. Written once under pthread_once, read-only
 * afterwards. */
#define BL_OSSL_FUNCS(X)                                                                           \
    X(ASN1_TIME_print)                                                                             \
    X(BIO_free)                                                                                    \
    X(BIO_new)                                                                                     \
    X(BIO_number_read)                                                                             \
    X(BIO_read)                                                                                    \
    X(BIO_s_mem)                                                                                   \
    X(ERR_clear_error)                                                                             \
    X(ERR_peek_last_error)                                                                         \
    X(ERR_reason_error_string)                                                                     \
    X(SSL_CTX_check_private_key)                                                                   \
    X(SSL_CTX_free)                                                                                \
    X(SSL_CTX_get0_certificate)                                                                    \
    X(SSL_CTX_load_verify_locations)                                                               \
    X(SSL_CTX_new)                                                                                 \
    X(SSL_CTX_set_cipher_list)                                                                     \
    X(SSL_CTX_set_ciphersuites)                                                                    \
    X(SSL_CTX_set_client_CA_list)                                                                  \
    X(SSL_CTX_set_num_tickets)                                                                     \
    X(SSL_CTX_set_options)                                                                         \
    X(SSL_CTX_set_verify)                                                                          \
    X(SSL_CTX_use_PrivateKey_file)                                                                 \
    X(SSL_CTX_use_certificate_chain_file)                                                          \
    X(SSL_do_handshake)                                                                            \
    X(SSL_free)                                                                                    \
    X(SSL_get0_peer_certificate)                                                                   \
    X(SSL_get_error)                                                                               \
    X(SSL_get_rbio)                                                                                \
    X(SSL_get_verify_result)                                                                       \
    X(SSL_get_version)                                                                             \
    X(SSL_has_pending)                                                                             \
    X(SSL_is_init_finished)                                                                        \
    X(SSL_load_client_CA_file)                                                                     \
    X(SSL_new)                                                                                     \
    X(SSL_read)                                                                                    \
    X(SSL_set_accept_state)                                                                        \
    X(SSL_set_connect_state)                                                                       \
    X(SSL_set_fd)                                                                                  \
    X(SSL_shutdown)                                                                                \
    X(SSL_write)                                                                                   \
    X(TLS_method)                                                                                  \
    X(X509_check_host)                                                                             \
    X(X509_check_ip_asc)                                                                           \
    X(X509_cmp_current_time)                                                                       \
    X(X509_get0_notAfter)                                                                          \
    X(X509_get0_notBefore)                                                                         \
    X(X509_verify_cert_error_string)                                                               \
    X(SSL_CTX_ctrl)                                                                                \
    X(SSL_ctrl)                                                                                    \
    X(SSL_CIPHER_get_name)                                                                         \
    X(SSL_get_current_cipher)

typedef struct {
#define BL_OSSL_MEMBER(f) __typeof__(&f) f;
    BL_OSSL_FUNCS(BL_OSSL_MEMBER)
#undef BL_OSSL_MEMBER
} bl_ossl;

static bl_ossl L;
static int ossl_loaded;
static char ossl_error[160];
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;

static void ossl_load(void)
{
    static const char *const names[] = {"libssl.so.3", NULL};
#define BL_OSSL_SYM(f) {#f, (void **)&L.f},
    static const bl__dsym syms[] = {BL_OSSL_FUNCS(BL_OSSL_SYM)};
#undef BL_OSSL_SYM
    char why[128];
    /* the handle stays open for the process's life; a failed load is never retried */
    if (bl__dlib_open(names, syms, sizeof(syms) / sizeof(syms[0]), why, sizeof(why))) {
        ossl_loaded = 1;
        return;
    }
    snprintf(ossl_error, sizeof(ossl_error), "cannot load OpenSSL (Debian: libssl3): %s", why);
}

static int ossl_ready(char *err, size_t errlen)
{
    pthread_once(&ossl_once, ossl_load);
    if (!ossl_loaded) snprintf(err, errlen, "%s", ossl_error);
    return ossl_loaded;
}

#define WBUF_SIZE 16384 /* one TLS record: small frames are coalesced up to this */

struct bl_tls {
    SSL_CTX *ctx;
    int verify;
};

typedef struct {
    bl_tx base;
    SSL *ssl;
    int server;
    int peeked;          /* server: the first byte was looked at */
    int verify;          /* the peer's certificate was required and verified */
    char host[256];      /* client: the host dialled */
    unsigned char *wbuf; /* coalescing buffer, allocated on first use */
} tls_tx;

/* ---- the context ---- */

static int ferr(char *err, size_t errlen, const char *key, const char *path, const char *what)
{
    snprintf(err, errlen, "%s %s: %s", key, path, what);
    return -1;
}

static const char *ossl_reason(void)
{
    unsigned long e = L.ERR_peek_last_error();
    const char *r = e ? L.ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

/* Readable regular file? */
static int check_file(const char *key, const char *path, char *err, size_t errlen)
{
    if (!path[0]) return ferr(err, errlen, key, "(unset)", "required when tls is true");
    FILE *f = fopen(path, "r");
    if (!f) return ferr(err, errlen, key, path, strerror(errno));
    fclose(f);
    return 0;
}

static int time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
    BIO *b = L.BIO_new(L.BIO_s_mem());
    out[0] = 0;
    if (!b) return -1;
    L.ASN1_TIME_print(b, t);
    int k = L.BIO_read(b, out, (int)outlen - 1);
    out[k > 0 ? k : 0] = 0;
    L.BIO_free(b);
    return 0;
}

int bl__tls_versions(const char *s, int *min, int *max)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s);
    *min = *max = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (!strncmp(tok, "tlsv", 4)) tok += 4;
        int v;
        if (!strcmp(tok, "1.2"))
            v = TLS1_2_VERSION;
        else if (!strcmp(tok, "1.3"))
            v = TLS1_3_VERSION;
        else
            return -1;
        if (!*min || v < *min) *min = v;
        if (v > *max) *max = v;
    }
    return *min ? 0 : -1;
}

/* tls_ciphers: TLS 1.3 suites (TLS_*) and TLS 1.2 cipher names, ':' or ',' separated. */
static int set_ciphers(SSL_CTX *ctx, const char *s, char *err, size_t errlen)
{
    char buf[512], v13[512] = "", v12[512] = "";
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ":, ", &save); tok; tok = strtok_r(NULL, ":, ", &save)) {
        char *dst = !strncmp(tok, "TLS_", 4) ? v13 : v12;
        size_t k = strlen(dst);
        snprintf(dst + k, sizeof(v13) - k, "%s%s", k ? ":" : "", tok);
    }
    if (v13[0] && L.SSL_CTX_set_ciphersuites(ctx, v13) != 1) {
        snprintf(err, errlen, "tls_ciphers: no usable TLS 1.3 suite in '%s'", v13);
        return -1;
    }
    if (v12[0] && L.SSL_CTX_set_cipher_list(ctx, v12) != 1) {
        snprintf(err, errlen, "tls_ciphers: no usable TLS 1.2 cipher in '%s'", v12);
        return -1;
    }
    return 0;
}

static int load_files(SSL_CTX *ctx, const bl_config *cfg, char *err, size_t errlen)
{
    char msg[200];
    if (check_file("tls_cert", cfg->tls_cert, err, errlen) ||
        check_file("tls_key", cfg->tls_key, err, errlen))
        return -1;
    if (L.SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(msg, sizeof(msg), "not a PEM certificate (%s)", ossl_reason());
        return ferr(err, errlen, "tls_cert", cfg->tls_cert, msg);
    }
    X509 *cert = L.SSL_CTX_get0_certificate(ctx);
    char when[64];
    if (cert && L.X509_cmp_current_time(L.X509_get0_notAfter(cert)) <= 0) {
        time_text(L.X509_get0_notAfter(cert), when, sizeof(when));
        snprintf(msg, sizeof(msg), "the certificate expired (not after %s)", when);
        return ferr(err, errlen, "tls_cert", cfg->tls_cert, msg);
    }
    if (cert && L.X509_cmp_current_time(L.X509_get0_notBefore(cert)) > 0) {
        time_text(L.X509_get0_notBefore(cert), when, sizeof(when));
        snprintf(msg, sizeof(msg), "the certificate is not valid yet (not before %s)", when);
        return ferr(err, errlen, "tls_cert", cfg->tls_cert, msg);
    }
    if (L.SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(L.ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(msg, sizeof(msg), "does not match the certificate in tls_cert %s",
                     cfg->tls_cert);
        else
            snprintf(msg, sizeof(msg), "not a PEM private key (%s)", ossl_reason());
        return ferr(err, errlen, "tls_key", cfg->tls_key, msg);
    }
    if (L.SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(msg, sizeof(msg), "does not match the certificate in tls_cert %s", cfg->tls_cert);
        return ferr(err, errlen, "tls_key", cfg->tls_key, msg);
    }
    if (cfg->tls_ca[0] || cfg->tls_verify) {
        if (check_file("tls_ca", cfg->tls_ca, err, errlen)) return -1;
        if (L.SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
            snprintf(msg, sizeof(msg), "no PEM CA certificate (%s)", ossl_reason());
            return ferr(err, errlen, "tls_ca", cfg->tls_ca, msg);
        }
        STACK_OF(X509_NAME) *names = L.SSL_load_client_CA_file(cfg->tls_ca);
        if (names) L.SSL_CTX_set_client_CA_list(ctx, names);
    }
    return 0;
}

bl_tls *bl__tls_new(const bl_config *cfg, char *err, size_t errlen)
{
    int vmin, vmax;
    if (!ossl_ready(err, errlen)) return NULL;
    if (bl__tls_versions(cfg->tls_versions[0] ? cfg->tls_versions : "1.2,1.3", &vmin, &vmax)) {
        snprintf(err, errlen, "tls_versions: '%s' is not a list of 1.2 and 1.3", cfg->tls_versions);
        return NULL;
    }
    L.ERR_clear_error();
    SSL_CTX *ctx = L.SSL_CTX_new(L.TLS_method());
    bl_tls *t = calloc(1, sizeof(*t));
    if (!ctx || !t) {
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 ctx ? "out of memory" : ossl_reason());
        L.SSL_CTX_free(ctx);
        free(t);
        return NULL;
    }
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, vmin, NULL);
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, vmax, NULL);
    L.SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                   SSL_OP_NO_COMPRESSION);
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE,
                   SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                       SSL_MODE_RELEASE_BUFFERS,
                   NULL);
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, NULL);
    L.SSL_CTX_set_num_tickets(ctx, 0);
    L.SSL_CTX_set_verify(
        ctx, cfg->tls_verify ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
        NULL);
    if ((cfg->tls_ciphers[0] && set_ciphers(ctx, cfg->tls_ciphers, err, errlen)) ||
        load_files(ctx, cfg, err, errlen)) {
        L.SSL_CTX_free(ctx);
        free(t);
        L.ERR_clear_error();
        return NULL;
    }
    t->ctx = ctx;
    t->verify = cfg->tls_verify;
    return t;
}

void bl__tls_free(bl_tls *t)
{
    if (!t) return;
    L.SSL_CTX_free(t->ctx); /* connections made with it keep their own reference */
    free(t);
}

/* ---- the transport ---- */

static int is_ip(const char *host)
{
    struct in6_addr a;
    return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

/* After a failed call: why, in words (the certificate check's verdict first). */
static void set_error(tls_tx *t, const char *what, int e)
{
    bl_tx *b = &t->base;
    long vr = L.SSL_get_verify_result(t->ssl);
    unsigned long oe = L.ERR_peek_last_error();
    b->want = 0;
    if (vr != X509_V_OK)
        snprintf(b->err, sizeof(b->err), "%s: peer certificate refused: %s", what,
                 L.X509_verify_cert_error_string(vr));
    else if (e == SSL_ERROR_SSL && oe)
        snprintf(b->err, sizeof(b->err), "%s: %s", what, ossl_reason());
    else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        snprintf(b->err, sizeof(b->err), "%s: the peer closed the connection", what);
    else if (e == SSL_ERROR_SYSCALL)
        snprintf(b->err, sizeof(b->err), "%s: %s", what, strerror(errno));
    else
        snprintf(b->err, sizeof(b->err), "%s: OpenSSL error %d", what, e);
    L.ERR_clear_error();
}

/* -1 failed, 0 would block (want set) after SSL returned r <= 0 */
static int would_block(tls_tx *t, int r, const char *what)
{
    int e = L.SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->base.want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        return 0;
    }
    set_error(t, what, e);
    return -1;
}

static int tls_handshake(bl_tx *b)
{
    tls_tx *t = (tls_tx *)b;
    if (t->server && !t->peeked) { /* a plain distribution peer sends a 2-byte length first */
        unsigned char first;
        ssize_t r = recv(b->fd, &first, 1, MSG_PEEK);
        if (r == 0) {
            snprintf(b->err, sizeof(b->err), "closed before the TLS handshake");
            b->want = 0;
            return -1;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                b->want = EV_READ;
                return 0;
            }
            snprintf(b->err, sizeof(b->err), "read failed: %s", strerror(errno));
            b->want = 0;
            return -1;
        }
        t->peeked = 1;
        b->got = 1;
        if (first != 0x16) {
            snprintf(b->err, sizeof(b->err),
                     "not a TLS handshake (first byte 0x%02x): a plain TCP distribution peer? "
                     "this node runs TLS distribution",
                     first);
            b->want = 0;
            return -1;
        }
    }
    L.ERR_clear_error();
    errno = 0;
    int r = L.SSL_do_handshake(t->ssl);
    if (L.BIO_number_read(L.SSL_get_rbio(t->ssl)) > 0) b->got = 1;
    if (r != 1) return would_block(t, r, "TLS handshake failed") == 0 ? 0 : -1;
    if (!t->server && t->verify && t->host[0] && bl__tls_peer_matches_host(b, t->host) != 1) {
        snprintf(b->err, sizeof(b->err),
                 "TLS handshake failed: the peer's certificate does not name host %s "
                 "(subjectAltName DNS/IP)",
                 t->host);
        b->want = 0;
        return -1;
    }
    return 1;
}

static ssize_t tls_recv(bl_tx *b, void *buf, size_t len)
{
    tls_tx *t = (tls_tx *)b;
    L.ERR_clear_error();
    errno = 0;
    int r = L.SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0) return r;
    int e = L.SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0; /* close_notify, or EOF (IGNORE_UNEXPECTED_EOF) */
    if (e == SSL_ERROR_SYSCALL && errno == 0) return 0;
    (void)would_block(t, r, "TLS read failed");
    return -1;
}

static ssize_t tls_writev(bl_tx *b, const struct iovec *iov, int iovcnt)
{
    tls_tx *t = (tls_tx *)b;
    const void *src;
    size_t len;
    if (iovcnt == 1 || iov[0].iov_len >= WBUF_SIZE) {
        src = iov[0].iov_base; /* nothing to coalesce: the queue's own bytes */
        len = iov[0].iov_len;
    } else {
        if (!t->wbuf && !(t->wbuf = malloc(WBUF_SIZE))) {
            snprintf(b->err, sizeof(b->err), "out of memory for the TLS write buffer");
            b->want = 0;
            return -1;
        }
        len = 0;
        for (int i = 0; i < iovcnt && len < WBUF_SIZE; i++) {
            size_t k = iov[i].iov_len < WBUF_SIZE - len ? iov[i].iov_len : WBUF_SIZE - len;
            memcpy(t->wbuf + len, iov[i].iov_base, k);
            len += k;
        }
        src = t->wbuf;
    }
    if (len == 0) return 0;
    L.ERR_clear_error();
    errno = 0;
    int r = L.SSL_write(t->ssl, src, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0) return r;
    (void)would_block(t, r, "TLS write failed");
    return -1;
}

static int tls_pending(const bl_tx *b)
{
    return L.SSL_has_pending(((const tls_tx *)b)->ssl);
}

static void tls_close(bl_tx *b)
{
    tls_tx *t = (tls_tx *)b;
    if (t->ssl) {
        if (L.SSL_is_init_finished(t->ssl)) {
            L.ERR_clear_error();
            (void)L.SSL_shutdown(t->ssl); /* close_notify if the socket takes it; never waits */
        }
        L.SSL_free(t->ssl);
    }
    L.ERR_clear_error();
    if (b->fd >= 0) close(b->fd);
    free(t->wbuf);
    free(t);
}

static const bl_tx_ops TLS_OPS = {
    .name = "tls",
    .read_until_block = 1,
    .batch_reads = 0, /* BEAM's TLS sender writes large batches already (docs/testing.md) */
    .handshake = tls_handshake,
    .recv = tls_recv,
    .writev = tls_writev,
    .pending = tls_pending,
    .close = tls_close,
};

bl_tx *bl__tls_tx_new(bl_tls *tls, int fd, int server, const char *host)
{
    tls_tx *t = calloc(1, sizeof(*t));
    SSL *ssl = t ? L.SSL_new(tls->ctx) : NULL;
    if (!ssl || L.SSL_set_fd(ssl, fd) != 1) {
        L.SSL_free(ssl);
        free(t);
        close(fd);
        L.ERR_clear_error();
        return NULL;
    }
    t->base.ops = &TLS_OPS;
    t->base.fd = fd;
    t->ssl = ssl;
    t->server = server;
    t->verify = tls->verify;
    if (server) {
        L.SSL_set_accept_state(ssl);
    } else {
        L.SSL_set_connect_state(ssl);
        snprintf(t->host, sizeof(t->host), "%s", host ? host : "");
        if (t->host[0] && !is_ip(t->host))
            L.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, t->host);
    }
    return &t->base;
}

int bl__tls_peer_matches_host(const bl_tx *b, const char *host)
{
    if (!b || b->ops != &TLS_OPS || !host || !host[0]) return -1;
    const tls_tx *t = (const tls_tx *)b;
    X509 *peer = L.SSL_get0_peer_certificate(t->ssl);
    if (!peer) return -1;
    int ok = is_ip(host) ? L.X509_check_ip_asc(peer, host, 0)
                         : L.X509_check_host(peer, host, 0, 0, NULL);
    L.ERR_clear_error();
    return ok == 1 ? 1 : 0;
}

int bl__tls_peer_check(bl_node *n, const bl_peer_id *peer, void *ud, char *why, size_t whylen)
{
    (void)n;
    (void)ud;
    if (peer->outgoing) return 0;
    const char *at = strchr(peer->node, '@');
    const char *host = at ? at + 1 : "";
    if (bl__tls_peer_matches_host(peer->transport, host) == 1) return 0;
    snprintf(why, whylen, "the TLS certificate of %s does not name its host %s", peer->node,
             host[0] ? host : "(none)");
    return -1;
}

const char *bl__tls_describe(const bl_tx *b, char *buf, size_t len)
{
    buf[0] = 0;
    if (!b || b->ops != &TLS_OPS) return buf;
    const tls_tx *t = (const tls_tx *)b;
    snprintf(buf, len, "%s %s", L.SSL_get_version(t->ssl),
             L.SSL_CIPHER_get_name(L.SSL_get_current_cipher(t->ssl)));
    return buf;
}
