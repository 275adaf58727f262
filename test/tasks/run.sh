#!/bin/sh
# run.sh - the task dispatcher suite (EUnit, real beamlet nodes + this erl runner on loopback).
# Reuses test/integration's node registry (bl_test_util). Appends "tasks P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init tasks blt
: "${XDG_STATE_HOME:=$ROOT/build/state}"
export XDG_STATE_HOME
suite_erlc test/tasks/*.erl
suite_erl bl_tasks_tests -kernel net_ticktime 20
suite_end $?
