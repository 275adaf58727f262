/* tls.h - the TLS transport (OpenSSL, non-blocking) and the node's TLS context.
 *
 * Interoperable with OTP's -proto_dist inet_tls: mutual certificates (verify peer, a peer
 * certificate required both ways), TLS 1.2 and 1.3, SNI set to the host part of the node dialled
 * and the server's certificate checked against that host (SAN DNS or IP, as OTP's ssl client
 * does). A context is built once from the configuration (every file checked, with a clear error)
 * and rebuilt on reload; each connection holds a reference to the context it was made with, so a
 * reload changes new connections only. */
#ifndef BL_DIST_TLS_H
#define BL_DIST_TLS_H

#include "beamlet/beamlet.h"
#include "transport.h"

typedef struct bl_tls bl_tls;

/* A context from cfg's tls_* keys; NULL with err[] saying which file is wrong and how. */
bl_tls *bl__tls_new(const bl_config *cfg, char *err, size_t errlen);
void bl__tls_free(bl_tls *t);
/* "1.2,1.3" (also "tlsv1.2"): the lowest and highest version asked for, as OpenSSL's
 * TLS1_x_VERSION. 0, or -1 when a token is not 1.2 or 1.3. */
int bl__tls_versions(const char *s, int *min, int *max);
/* Wrap a connected non-blocking socket (takes fd in every case; NULL when out of memory).
 * server: we accepted it; otherwise host is the peer's host (SNI and the certificate check). */
bl_tx *bl__tls_tx_new(bl_tls *t, int fd, int server, const char *host);
/* Does the peer's verified certificate match host (SAN DNS or IP; the subject CN when the
 * certificate has no DNS SAN)? 1 yes, 0 no, -1 not a TLS transport or no peer certificate.
 * For the node allow-list (like OTP's pkix_verify_hostname when net_kernel:allow/1 is set). */
int bl__tls_peer_matches_host(const bl_tx *tx, const char *host);
/* The allow-list's peer-name hook (guard.h) for TLS: an incoming peer's verified certificate must
 * name the host part of the node name it announced. Outgoing: the TLS client has matched the
 * server's certificate to the dialled host already. Installed only with tls_verify peer. */
struct bl_peer_id;
int bl__tls_peer_check(bl_node *n, const struct bl_peer_id *peer, void *ud, char *why,
                       size_t whylen);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for a TLS transport, "" otherwise. */
const char *bl__tls_describe(const bl_tx *tx, char *buf, size_t len);

#endif
