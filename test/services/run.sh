#!/bin/sh
# run.sh - the pg suite (EUnit): pg_worker beamlet nodes against this erl runner (kernel start_pg)
# and a `peer` BEAM node, plus a C-only cluster. Reuses test/integration's node registry
# (bl_test_util). Appends "pg P F" to $BL_RESULTS; exits non-zero on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init pg blpg
: "${PG_WORKER_BIN:=$ROOT/build/asan/pg_worker}"
# bl_test_util:start_worker/2 starts TEST_WORKER_BIN: here that is pg_worker
TEST_WORKER_BIN=$PG_WORKER_BIN
[ -x "$PG_WORKER_BIN" ] || suite_fail "pg: $PG_WORKER_BIN missing (make build/asan/pg_worker)"
suite_erlc test/services/bl_pg_tests.erl
suite_erl bl_pg_tests -kernel net_ticktime 4 -kernel start_pg true
suite_end $?
