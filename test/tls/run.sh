#!/bin/sh
# run.sh - the TLS distribution suite (EUnit, test/tls/bl_tls_tests.erl): beamlet nodes with
# --tls against an erl runner and erl peers started with -proto_dist inet_tls -ssl_dist_optfile,
# C-only TLS clusters, refusals (plain and TLS peers crossed, wrong CA, expired, missing client
# certificate, SAN mismatch), stalled and half-open TLS handshakes, SIGHUP reloads, garbage on
# the TLS listener, the admin CLI. Certificates are made here with the openssl CLI
# (test/tls/mkcerts.sh). Appends "tls P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${PG_WORKER_BIN:=$ROOT/build/asan/pg_worker}"
: "${BL_COOKIE:=bltls_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/tls_ebin"
BL_TLS_DIR="$ROOT/build/tls-certs.$$"
export BEAMLET_BIN TEST_WORKER_BIN PG_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_TLS_DIR \
    BL_PIDFILE="$BL_LOG_DIR/tls-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
fail() { [ -n "${BL_RESULTS:-}" ] && echo "tls 0 1" >>"$BL_RESULTS"; rm -rf "$BL_TLS_DIR"; exit 1; }
rm -rf "$BL_TLS_DIR"
test/tls/mkcerts.sh "$BL_TLS_DIR" "$(hostname -s)" || fail
erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
    test/tls/bl_tls_tests.erl erlang_shim/src/*.erl || fail
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
pgrep -x epmd >/dev/null || epmd -daemon
RES=$(mktemp)
BL_RESULTS=$RES erl -sname "bl_tlsrun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -proto_dist inet_tls -ssl_dist_optfile "$OPT" -kernel net_ticktime 4 -kernel start_pg true \
    -eval 'bl_test_util:run([bl_tls_tests])'
rc=$?
line=$(sed 's/^integration /tls /' "$RES")
[ -z "$line" ] && line="tls 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
rm -rf "$BL_TLS_DIR"
[ "$rc" -eq 0 ]
