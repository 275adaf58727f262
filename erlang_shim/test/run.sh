#!/bin/sh
# run.sh - the erlang_shim EUnit suite against real beamlet nodes (no rebar3 needed).
#
# Compiles src/*.erl and test/*.erl into build/shim_ebin (relative to the repository root), starts
# one distributed runner and appends "shim PASSED FAILED" to $BL_RESULTS. (The Gleam FFI is tested
# by gleam_run.sh, in the module layout of a Gleam build.) Env (defaults in brackets): BEAMLET_BIN [build/asan/beamlet], BL_COOKIE [random],
# BL_LOG_DIR [build/test-logs], BL_RESULTS, BEAMLET_LISTEN_ADDRESS (passed on to the nodes),
# BL_SHIM_TESTS [all test modules, comma separated]. Exits non-zero if any test failed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2

: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${BL_COOKIE:=blshim_$$_$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
: "${BL_SHIM_TESTS:=beamlet_tests,beamlet_worker_tests,beamlet_discovery_tests,beamlet_cluster_tests,beamlet_services_tests,beamlet_health_tests,beamlet_task_tests,beamlet_config_tests}"
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0:halt_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
BL_SHIM_PREFIX="blshim$$_"
EBIN="$ROOT/build/shim_ebin"
export BEAMLET_BIN BL_COOKIE BL_LOG_DIR BL_SHIM_PREFIX ASAN_OPTIONS UBSAN_OPTIONS
export BL_ROOT="$ROOT"

record() { # passed failed
    if [ -n "${BL_RESULTS:-}" ]; then echo "shim $1 $2" >>"$BL_RESULTS"; fi
}

if [ ! -x "$BEAMLET_BIN" ]; then
    echo "run.sh: $BEAMLET_BIN is missing (build it first)" >&2
    record 0 1
    exit 1
fi

rm -rf "$EBIN"
mkdir -p "$EBIN" "$BL_LOG_DIR" || exit 2
if ! erlc -Wall -Werror +warn_missing_spec +debug_info -o "$EBIN" erlang_shim/src/*.erl ||
   ! erlc -Wall +debug_info -o "$EBIN" erlang_shim/test/*.erl test/integration/bl_eunit_counter.erl; then
    echo "run.sh: erlc failed" >&2
    record 0 1
    exit 1
fi
mods=$(ls erlang_shim/src/*.erl | sed 's|.*/\(.*\)\.erl|\1|' | paste -sd, -)
sed "s/{modules, \[\]}/{modules, [$mods]}/" erlang_shim/src/beamlet.app.src >"$EBIN/beamlet.app"

epmd -daemon 2>/dev/null || true

# Kill any beamlet process of this run that is still alive (normally the suite stops everything):
# processes whose command line names a node with this run's prefix, killed by pid.
cleanup() {
    for d in /proc/[0-9]*; do
        cmd=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$cmd" in
        *"$BEAMLET_BIN"*"$BL_SHIM_PREFIX"*) kill -9 "${d#/proc/}" 2>/dev/null && echo "run.sh: killed leftover ${d#/proc/}: $cmd" ;;
        esac
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RES_TMP="$BL_LOG_DIR/shim-results.$$"
LOG="$BL_LOG_DIR/shim.log"
rm -f "$RES_TMP"
MODS=$(echo "$BL_SHIM_TESTS" | sed 's/[ ,][ ,]*/,/g')
# A hard bound so a hung test cannot hang `make test`.
BL_RESULTS="$RES_TMP" timeout -k 10 300 erl -sname "bl_shim_$$" -setcookie "$BL_COOKIE" -noshell \
    -pa "$EBIN" -kernel logger_level notice \
    -eval "shim_test_util:run([$MODS])" 2>&1 | tee "$LOG"
rc=$?
if [ -s "$RES_TMP" ]; then
    set -- $(tail -n 1 "$RES_TMP")
    rm -f "$RES_TMP"
    record "$2" "$3"
    if [ "$3" -ne 0 ]; then rc=1; else rc=0; fi
else
    echo "run.sh: the runner died before reporting" >&2
    record 0 1
    rc=1
fi
echo "run.sh: log in $LOG"
exit "$rc"
