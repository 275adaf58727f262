#!/bin/sh
# run.sh - the service registry suite (EUnit, real beamlet nodes + this erl runner on loopback).
# Reuses test/integration's node registry (bl_test_util). Appends "registry P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${REGISTRY_NODE_BIN:=$ROOT/build/asan/registry_node}"
: "${BL_COOKIE:=blr_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/registry_ebin"
export BEAMLET_BIN TEST_WORKER_BIN REGISTRY_NODE_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/registry-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
        test/services/registry/*.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "registry 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_rrun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_registry_tests])'
rc=$?
line=$(sed 's/^integration /registry /' "$RES")
[ -z "$line" ] && line="registry 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
[ "$rc" -eq 0 ]
