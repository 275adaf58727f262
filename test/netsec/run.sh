#!/bin/sh
# run.sh - the network-security suite (EUnit, test/netsec/bl_netsec_tests.erl): the node
# allow-list both ways, connection limits (max_connections, handshakes per address at once and
# per second) with a flood from one loopback address while peers on another still connect,
# rate-limited refusal logs, the cookie-file permission warning, and a reconnect that races the
# close of the old connection. Real erl nodes and real binaries; reuses test/integration's node
# registry (bl_test_util). Appends "netsec P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init netsec blns
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0:halt_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS
suite_erlc test/netsec/*.erl
SUITE_TIMEOUT=400
suite_erl bl_netsec_tests -kernel net_ticktime 4
