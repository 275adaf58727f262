#!/bin/sh
# run.sh - run the beamlet integration tests (EUnit, real erl + beamlet nodes on loopback).
#
# Env (defaults in brackets): BEAMLET_BIN [build/asan/beamlet], TEST_WORKER_BIN
# [build/asan/test_worker], BL_COOKIE [random], BL_LOG_DIR [build/test-logs], BL_RESULTS (a file
# that gets the line "integration PASSED FAILED" appended), BL_TICKTIME [4], BL_TEST_MODULES
# [bl_disthdr_tests bl_interop_tests bl_spawn_tests]. Exits non-zero if any test failed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2

: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${BL_COOKIE:=blcookie_$$_$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
: "${BL_TICKTIME:=4}"
: "${BL_TEST_MODULES:=bl_disthdr_tests bl_interop_tests bl_spawn_tests}"
EBIN="$ROOT/build/test_ebin"
BL_PIDFILE="$BL_LOG_DIR/pids.$$"
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE
# ASan/LSan findings must show up in the node logs; make them fail the process too.
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0:halt_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

record() { # passed failed
    if [ -n "${BL_RESULTS:-}" ]; then echo "integration $1 $2" >>"$BL_RESULTS"; fi
}

for b in "$BEAMLET_BIN" "$TEST_WORKER_BIN"; do
    if [ ! -x "$b" ]; then
        echo "run.sh: $b is missing (build it first)" >&2
        record 0 1
        exit 1
    fi
done

mkdir -p "$EBIN" "$BL_LOG_DIR" || exit 2
if ! erlc -Wall -o "$EBIN" test/integration/*.erl; then
    echo "run.sh: erlc failed" >&2
    record 0 1
    exit 1
fi

epmd -daemon || true

# Kill whatever the runner started and did not stop (it normally stops everything itself).
cleanup() {
    if [ -f "$BL_PIDFILE" ]; then
        while read -r pid; do
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
                *"$BEAMLET_BIN"* | *"$TEST_WORKER_BIN"*) kill -9 "$pid" 2>/dev/null ;;
                esac
            fi
        done <"$BL_PIDFILE"
        rm -f "$BL_PIDFILE"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MODS=$(echo "$BL_TEST_MODULES" | sed 's/[ ,][ ,]*/,/g')
RES_TMP="$BL_LOG_DIR/results.$$"
rm -f "$RES_TMP"
# A hard bound on the whole run so a hung test cannot hang `make test`.
BL_RESULTS="$RES_TMP" timeout -k 10 600 erl -sname "bl_runner_$$" -setcookie "$BL_COOKIE" -noshell \
    -kernel net_ticktime "$BL_TICKTIME" -pa "$EBIN" \
    -eval "bl_test_util:run([$MODS])"
rc=$?
if [ -s "$RES_TMP" ]; then
    line=$(tail -n 1 "$RES_TMP")
    rm -f "$RES_TMP"
    set -- $line
    record "$2" "$3"
    if [ "$rc" -eq 0 ] && [ "$3" -ne 0 ]; then rc=1; fi
else
    echo "run.sh: the runner died before reporting (exit $rc)" >&2
    record 0 1
    [ "$rc" -eq 0 ] && rc=1
fi
echo "run.sh: logs in $BL_LOG_DIR"
exit "$rc"
