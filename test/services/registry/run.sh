#!/bin/sh
# run.sh - the service registry suite (EUnit, real beamlet nodes + this erl runner on loopback).
# Reuses test/integration's node registry (bl_test_util). Appends "registry P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init registry blr
: "${REGISTRY_NODE_BIN:=$ROOT/build/asan/registry_node}"
export REGISTRY_NODE_BIN
suite_erlc test/services/registry/*.erl
suite_erl bl_registry_tests -kernel net_ticktime 4
suite_end $?
