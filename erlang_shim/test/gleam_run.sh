#!/bin/sh
# gleam_run.sh - the Gleam package tested in the module layout of a Gleam build (no Gleam compiler
# needed): test/gleam_layout.erl lays out build/gleam_layout/ebin with the package's Erlang modules
# and a stand-in module for each .gleam file (the module `beamlet' is beamlet.gleam's, the shim's
# beamlet.erl is absent); a VM with only that directory (and the test modules) on its path runs
# beamlet_gleam_layout_tests (xref, @external targets) and beamlet_gleam_ffi_tests (every
# @external against real beamlet nodes). Appends "gleam PASSED FAILED" to $BL_RESULTS.
# Env as for run.sh (BEAMLET_BIN, BL_COOKIE, BL_LOG_DIR, BL_RESULTS).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2

: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${BL_COOKIE:=blgleam_$$_$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0:halt_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
BL_SHIM_PREFIX="blgleam$$_"
LAYOUT="$ROOT/build/gleam_layout"
TESTS="$LAYOUT/test_ebin"
export BEAMLET_BIN BL_COOKIE BL_LOG_DIR BL_SHIM_PREFIX ASAN_OPTIONS UBSAN_OPTIONS
export BL_ROOT="$ROOT" BL_GLEAM_LAYOUT="$LAYOUT"

record() { # passed failed
    if [ -n "${BL_RESULTS:-}" ]; then echo "gleam $1 $2" >>"$BL_RESULTS"; fi
}

if [ ! -x "$BEAMLET_BIN" ]; then
    echo "gleam_run.sh: $BEAMLET_BIN is missing (build it first)" >&2
    record 0 1
    exit 1
fi

rm -rf "$LAYOUT"
mkdir -p "$TESTS" "$BL_LOG_DIR" || exit 2
# Only test modules go to test_ebin: shim_test_util, the test modules and the layout builder.
if ! erlc -Wall +debug_info -o "$TESTS" erlang_shim/test/gleam_layout.erl \
        erlang_shim/test/shim_test_util.erl erlang_shim/test/shim_test_log_handler.erl \
        erlang_shim/test/beamlet_gleam_layout_tests.erl erlang_shim/test/beamlet_gleam_ffi_tests.erl \
        erlang_shim/test/gleam_test_sup.erl \
        test/integration/bl_eunit_counter.erl; then
    echo "gleam_run.sh: erlc failed" >&2
    record 0 1
    exit 1
fi
if ! erl -noshell -pa "$TESTS" -eval \
        "case gleam_layout:build(\"erlang_shim/gleam\", \"$LAYOUT\") of ok -> halt(0); E -> io:format(\"~p~n\", [E]), halt(1) end."; then
    echo "gleam_run.sh: building the layout failed" >&2
    record 0 1
    exit 1
fi

epmd -daemon 2>/dev/null || true

cleanup() {
    for d in /proc/[0-9]*; do
        cmd=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$cmd" in
        *"$BEAMLET_BIN"*"$BL_SHIM_PREFIX"*) kill -9 "${d#/proc/}" 2>/dev/null && echo "gleam_run.sh: killed leftover ${d#/proc/}: $cmd" ;;
        esac
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RES_TMP="$BL_LOG_DIR/gleam-results.$$"
LOG="$BL_LOG_DIR/gleam.log"
rm -f "$RES_TMP"
# -pa: the layout (the package as a Gleam build holds it) and the test modules; nothing else of
# beamlet is on the path.
BL_RESULTS="$RES_TMP" BL_SUITE=gleam timeout -k 10 300 erl -sname "bl_gleam_$$" -setcookie "$BL_COOKIE" \
    -noshell -pa "$LAYOUT/ebin" -pa "$TESTS" -kernel logger_level notice \
    -eval "shim_test_util:run([beamlet_gleam_layout_tests, beamlet_gleam_ffi_tests])" 2>&1 | tee "$LOG"
if [ -s "$RES_TMP" ]; then
    set -- $(tail -n 1 "$RES_TMP")
    rm -f "$RES_TMP"
    record "$2" "$3"
    if [ "$3" -ne 0 ]; then rc=1; else rc=0; fi
else
    echo "gleam_run.sh: the runner died before reporting" >&2
    record 0 1
    rc=1
fi
echo "gleam_run.sh: log in $LOG"
exit "$rc"
