#!/bin/sh
# run.sh - the TLS distribution suite (EUnit, test/tls/bl_tls_tests.erl): beamlet nodes with
# --tls against an erl runner and erl peers started with -proto_dist inet_tls -ssl_dist_optfile,
# C-only TLS clusters, refusals (plain and TLS peers crossed, wrong CA, expired, missing client
# certificate, SAN mismatch), stalled and half-open TLS handshakes, SIGHUP reloads, garbage on
# the TLS listener, the admin CLI. Certificates are made here with the openssl CLI
# (test/tls/mkcerts.sh). Appends "tls P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init tls bltls
: "${PG_WORKER_BIN:=$ROOT/build/asan/pg_worker}"
BL_TLS_DIR="$ROOT/build/tls-certs.$$"
export PG_WORKER_BIN BL_TLS_DIR
SUITE_AT_EXIT='rm -rf "$BL_TLS_DIR"'
rm -rf "$BL_TLS_DIR"
test/tls/mkcerts.sh "$BL_TLS_DIR" "$(hostname -s)" || suite_fail
suite_erlc test/tls/bl_tls_tests.erl erlang_shim/src/*.erl
# the runner's own TLS distribution: the CA's node certificate, verify_peer both ways, 1.2 and 1.3
OPT="$BL_TLS_DIR/runner.conf"
cat >"$OPT" <<EOF
[{server, [{certfile, "$BL_TLS_DIR/node.pem"}, {keyfile, "$BL_TLS_DIR/node.key"},
           {cacertfile, "$BL_TLS_DIR/ca.pem"}, {verify, verify_peer},
           {fail_if_no_peer_cert, true}, {versions, ['tlsv1.2', 'tlsv1.3']}]},
 {client, [{certfile, "$BL_TLS_DIR/node.pem"}, {keyfile, "$BL_TLS_DIR/node.key"},
           {cacertfile, "$BL_TLS_DIR/ca.pem"}, {verify, verify_peer},
           {versions, ['tlsv1.2', 'tlsv1.3']}]}].
EOF
suite_erl bl_tls_tests -proto_dist inet_tls -ssl_dist_optfile "$OPT" -kernel net_ticktime 4 \
    -kernel start_pg true
suite_end $?
