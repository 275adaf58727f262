#!/bin/sh
# run.sh - run the beamlet integration tests (EUnit, real erl + beamlet nodes on loopback).
#
# Env (defaults in brackets): BEAMLET_BIN [build/asan/beamlet], TEST_WORKER_BIN
# [build/asan/test_worker], BL_COOKIE [random], BL_LOG_DIR [build/test-logs], BL_RESULTS (a file
# that gets the line "integration PASSED FAILED" appended), BL_TICKTIME [4], BL_TEST_MODULES
# [bl_disthdr_tests bl_interop_tests bl_spawn_tests]. Exits non-zero if any test failed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/suite.sh"
: "${BL_COOKIE:=blcookie_$$_$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
suite_init integration blcookie
: "${BL_TICKTIME:=4}"
: "${BL_TEST_MODULES:=bl_disthdr_tests bl_interop_tests bl_spawn_tests}"
# ASan/LSan findings must show up in the node logs; make them fail the process too.
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0:halt_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS
for b in "$BEAMLET_BIN" "$TEST_WORKER_BIN"; do
    [ -x "$b" ] || suite_fail "run.sh: $b is missing (build it first)"
done
suite_erlc test/integration/*.erl
# a hard bound on the whole run so a hung test cannot hang `make test`
SUITE_TIMEOUT=600
suite_erl "$(echo "$BL_TEST_MODULES" | sed 's/[ ,][ ,]*/,/g')" -kernel net_ticktime "$BL_TICKTIME"
rc=$?
echo "run.sh: logs in $BL_LOG_DIR"
exit "$rc"
