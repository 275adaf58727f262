#!/bin/sh
# run.sh - the distribution-layer suite (EUnit, test/dist/bl_dist_tests.erl): stalled peers in
# every handshake step, the per-address bound, simultaneous connects C<->C and BEAM<->C, IPv6
# with erl -proto_dist inet6_tcp. Reuses test/integration's node registry (bl_test_util).
# Appends "dist P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
# As root, run in private network and mount namespaces (own loopback and EPMD) where lo also
# has fd42:b1::1 and /etc/hosts maps v6only.bl.test to it: a host name that resolves to IPv6
# only, for the IPv6 test. Nothing outside sees either change.
if [ -z "${BL_DIST_V6HOST:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    H=$(mktemp)
    cp /etc/hosts "$H" && echo "fd42:b1::1 v6only.bl.test" >>"$H"
    BL_DIST_V6HOST=v6only.bl.test BL_DIST_HOSTS=$H unshare -m -n sh -c '
        ip link set lo up && ip -6 addr add fd42:b1::1/128 dev lo &&
        mount --bind "$BL_DIST_HOSTS" /etc/hosts && epmd -daemon && sleep 0.2 || exit 1
        "$0"; rc=$?; epmd -kill >/dev/null 2>&1; exit $rc' "$0"
    rc=$?
    rm -f "$H"
    [ "$rc" -ne 0 ] && [ -n "${BL_RESULTS:-}" ] && ! grep -q "^dist " "$BL_RESULTS" && echo "dist 0 1" >>"$BL_RESULTS"
    exit "$rc"
fi
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${BL_COOKIE:=bld_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/dist_ebin"
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/dist-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
        test/dist/*.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "dist 0 1" >>"$BL_RESULTS"
    exit 1
fi
pgrep -x epmd >/dev/null || epmd -daemon
BL_RESULTS=$RES erl -sname "bl_drun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_dist_tests])'
rc=$?
line=$(sed 's/^integration /dist /' "$RES")
[ -z "$line" ] && line="dist 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
exit "$rc"
