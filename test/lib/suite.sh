# suite.sh - what every EUnit suite's run.sh shares (sourced by sh, not run): the paths and the
# defaults of the environment bl_test_util reads, the compile of the suite's modules with the node
# registry (test/integration/bl_test_util.erl), the erl runner, its "SUITE PASSED FAILED" line
# appended to $BL_RESULTS (test/run_all.sh adds the lines up) and the nodes it left behind.
#
#   ROOT=$(cd "$(dirname "$0")/../.." && pwd)
#   . "$ROOT/test/lib/suite.sh"
#   suite_init tasks blt                  # SUITE, cd ROOT, BEAMLET_BIN ... BL_PIDFILE, EBIN
#   suite_erlc test/tasks/*.erl           # on failure: "tasks 0 1" and exit 1
#   suite_erl bl_tasks_tests -kernel net_ticktime 20   # returns the runner's exit code
#
# SUITE_TIMEOUT=S bounds the runner (timeout -k 10 S); SUITE_AT_EXIT is eval'ed by suite_fail
# and suite_end (the suite's own clean-up: certificates, data directories).

# suite_init NAME COOKIE_PREFIX: the defaults a run outside test/run_all.sh needs
suite_init() {
    SUITE=$1
    cd "$ROOT" || exit 2
    : "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
    : "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
    : "${BL_COOKIE:=${2}_$$}"
    : "${BL_LOG_DIR:=$ROOT/build/test-logs}"
    EBIN="$ROOT/build/${SUITE}_ebin"
    BL_PIDFILE="$BL_LOG_DIR/$SUITE-pids.$$"
    export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE
    mkdir -p "$EBIN" "$BL_LOG_DIR"
}

# suite_record LINE: one "SUITE PASSED FAILED" line for run_all.sh (nothing when run alone)
suite_record() {
    if [ -n "${BL_RESULTS:-}" ]; then echo "$1" >>"$BL_RESULTS"; fi
}

# suite_fail [MESSAGE]: the suite could not run: one failure recorded, exit 1
suite_fail() {
    if [ $# -gt 0 ]; then echo "$*" >&2; fi
    suite_record "$SUITE 0 1"
    if [ -n "${SUITE_AT_EXIT:-}" ]; then eval "$SUITE_AT_EXIT"; fi
    exit 1
}

# suite_erlc FILE...: the suite's modules and the runner's into EBIN
suite_erlc() {
    erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
        "$@" || suite_fail "$SUITE: erlc failed"
}

# suite_erl MODULES [ERL_FLAG...]: bl_test_util:run([MODULES]) in an erl runner node; its result
# line, renamed to the suite, is recorded ("SUITE 0 1" when it wrote none), the nodes the runner
# left behind are killed; returns the runner's exit code
suite_erl() {
    _mods=$1
    shift
    _res=$(mktemp)
    epmd -daemon 2>/dev/null || true
    # shellcheck disable=SC2086 # SUITE_TIMEOUT's words are the timeout command
    BL_RESULTS=$_res ${SUITE_TIMEOUT:+timeout -k 10 $SUITE_TIMEOUT} erl -sname "bl_${SUITE}run_$$" \
        -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" "$@" -eval "bl_test_util:run([$_mods])"
    _rc=$?
    _line=$(sed "s/^integration /$SUITE /" "$_res")
    [ -z "$_line" ] && _line="$SUITE 0 1"
    suite_record "$_line"
    rm -f "$_res"
    if [ -f "$BL_PIDFILE" ]; then
        while read -r _pid; do kill -9 "$_pid" 2>/dev/null; done <"$BL_PIDFILE"
        rm -f "$BL_PIDFILE"
    fi
    return $_rc
}

# suite_end RC: the suite's own clean-up, then exit 0 when RC is 0, else 1
suite_end() {
    if [ -n "${SUITE_AT_EXIT:-}" ]; then eval "$SUITE_AT_EXIT"; fi
    [ "$1" -eq 0 ] && exit 0
    exit 1
}
