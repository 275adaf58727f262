#!/bin/sh
# run.sh - the task dispatcher suite (EUnit, real beamlet nodes + this erl runner on loopback).
# Reuses test/integration's node registry (bl_test_util). Appends "tasks P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${BL_COOKIE:=blt_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
: "${XDG_STATE_HOME:=$ROOT/build/state}"
EBIN="$ROOT/build/tasks_ebin"
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR XDG_STATE_HOME BL_PIDFILE="$BL_LOG_DIR/tasks-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
        test/tasks/*.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "tasks 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_trun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 20 -eval 'bl_test_util:run([bl_tasks_tests])'
rc=$?
line=$(sed 's/^integration /tasks /' "$RES")
[ -z "$line" ] && line="tasks 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
[ "$rc" -eq 0 ]
