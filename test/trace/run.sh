#!/bin/sh
# run.sh - the trace suite (EUnit, real beamlet nodes + trace_node (C API) + this erl runner on
# loopback): correlation ids through CLI, REST, registry calls and pub/sub, `events --trace`,
# seq_trace through C nodes (docs/tracing.md). Appends "trace P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init trace bltr
: "${TRACE_NODE_BIN:=$ROOT/build/asan/trace_node}"
export TRACE_NODE_BIN
if [ ! -x "$TRACE_NODE_BIN" ] || [ "$ROOT/build/asan/libbeamlet.a" -nt "$TRACE_NODE_BIN" ]; then
    make --no-print-directory build/asan/trace_node >/dev/null 2>&1
fi
[ -x "$TRACE_NODE_BIN" ] || suite_fail "trace: $TRACE_NODE_BIN missing (make build/asan/trace_node)"
suite_erlc erlang_shim/src/beamlet_trace.erl erlang_shim/src/beamlet_client.erl test/trace/*.erl
suite_erl bl_trace_tests -kernel net_ticktime 4
suite_end $?
