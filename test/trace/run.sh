#!/bin/sh
# run.sh - the trace suite (EUnit, real beamlet nodes + trace_node (C API) + this erl runner on
# loopback): correlation ids through CLI, REST, registry calls and pub/sub, `events --trace`,
# seq_trace through C nodes (docs/tracing.md). Appends "trace P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${TRACE_NODE_BIN:=$ROOT/build/asan/trace_node}"
: "${BL_COOKIE:=bltr_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/trace_ebin"
export BEAMLET_BIN TEST_WORKER_BIN TRACE_NODE_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/trace-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
if [ ! -x "$TRACE_NODE_BIN" ] || [ "$ROOT/build/asan/libbeamlet.a" -nt "$TRACE_NODE_BIN" ]; then
    make --no-print-directory build/asan/trace_node >/dev/null 2>&1
fi
RES=$(mktemp)
if [ ! -x "$TRACE_NODE_BIN" ] || ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl \
        test/integration/bl_eunit_counter.erl erlang_shim/src/beamlet_trace.erl \
        erlang_shim/src/beamlet_client.erl test/trace/*.erl; then
    echo "trace: $TRACE_NODE_BIN missing (make build/asan/trace_node) or erlc failed" >&2
    [ -n "${BL_RESULTS:-}" ] && echo "trace 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_trrun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_trace_tests])'
rc=$?
line=$(sed 's/^integration /trace /' "$RES")
[ -z "$line" ] && line="trace 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
[ "$rc" -eq 0 ]
