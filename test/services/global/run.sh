#!/bin/sh
# run.sh - the global names suite (EUnit): global_node beamlet nodes against this erl runner and a
# `peer` BEAM node, plus C-only clusters of 3 nodes (clash after a partition: one node suspended
# with SIGSTOP until failed, then resumed). Reuses test/integration's node registry (bl_test_util).
# Appends "global P F" to $BL_RESULTS; exits non-zero on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${GLOBAL_NODE_BIN:=$ROOT/build/asan/global_node}"
: "${BL_COOKIE:=blg_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/global_ebin"
# bl_test_util:start_worker/2 starts TEST_WORKER_BIN: here that is global_node
TEST_WORKER_BIN=$GLOBAL_NODE_BIN
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/global-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if [ ! -x "$GLOBAL_NODE_BIN" ] || ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl \
        test/integration/bl_eunit_counter.erl test/services/global/bl_global_tests.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "global 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_grun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_global_tests])'
rc=$?
line=$(sed 's/^integration /global /' "$RES")
[ -z "$line" ] && line="global 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
[ "$rc" -eq 0 ]
