#!/bin/sh
# run.sh - the pg suite (EUnit): pg_worker beamlet nodes against this erl runner (kernel start_pg)
# and a `peer` BEAM node, plus a C-only cluster. Reuses test/integration's node registry
# (bl_test_util). Appends "pg P F" to $BL_RESULTS; exits non-zero on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${PG_WORKER_BIN:=$ROOT/build/asan/pg_worker}"
: "${BL_COOKIE:=blpg_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/pg_ebin"
# bl_test_util:start_worker/2 starts TEST_WORKER_BIN: here that is pg_worker
TEST_WORKER_BIN=$PG_WORKER_BIN
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/pg-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if [ ! -x "$PG_WORKER_BIN" ] || ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl \
        test/integration/bl_eunit_counter.erl test/services/bl_pg_tests.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "pg 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_pgrun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -kernel start_pg true -eval 'bl_test_util:run([bl_pg_tests])'
rc=$?
line=$(sed 's/^integration /pg /' "$RES")
[ -z "$line" ] && line="pg 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
[ "$rc" -eq 0 ]
