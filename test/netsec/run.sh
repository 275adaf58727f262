#!/bin/sh
# run.sh - the network-security suite (EUnit, test/netsec/bl_netsec_tests.erl): the node
# allow-list both ways, connection limits (max_connections, handshakes per address at once and
# per second) with a flood from one loopback address while peers on another still connect,
# rate-limited refusal logs, the cookie-file permission warning, and a reconnect that races the
# close of the old connection. Real erl nodes and real binaries; reuses test/integration's node
# registry (bl_test_util). Appends "netsec P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${BL_COOKIE:=blns_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0:halt_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
EBIN="$ROOT/build/netsec_ebin"
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/netsec-pids.$$"
export ASAN_OPTIONS UBSAN_OPTIONS
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
        test/netsec/*.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "netsec 0 1" >>"$BL_RESULTS"
    exit 1
fi
pgrep -x epmd >/dev/null || epmd -daemon
BL_RESULTS=$RES timeout -k 10 400 erl -sname "bl_nsrun_$$" -setcookie "$BL_COOKIE" -noshell \
    -pa "$EBIN" -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_netsec_tests])'
rc=$?
line=$(sed 's/^integration /netsec /' "$RES")
[ -z "$line" ] && line="netsec 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
exit "$rc"
