#!/bin/sh
# run.sh - the global names suite (EUnit): global_node beamlet nodes against this erl runner and a
# `peer` BEAM node, plus C-only clusters of 3 nodes (clash after a partition: one node suspended
# with SIGSTOP until failed, then resumed). Reuses test/integration's node registry (bl_test_util).
# Appends "global P F" to $BL_RESULTS; exits non-zero on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init global blg
: "${GLOBAL_NODE_BIN:=$ROOT/build/asan/global_node}"
# bl_test_util:start_worker/2 starts TEST_WORKER_BIN: here that is global_node
TEST_WORKER_BIN=$GLOBAL_NODE_BIN
[ -x "$GLOBAL_NODE_BIN" ] || suite_fail "global: $GLOBAL_NODE_BIN missing (make build/asan/global_node)"
suite_erlc test/services/global/bl_global_tests.erl
suite_erl bl_global_tests -kernel net_ticktime 4
suite_end $?
