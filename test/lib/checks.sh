# checks.sh - what the shell suites that count their own checks share (sourced by bash after
# setting SUITE): ROOT, the defaults a run outside test/run_all.sh needs (BEAMLET_BIN, BL_LOG_DIR,
# HOST), and the counting: ok and bad count a passed and a failed check, check runs a command as
# one check (its output appended to $CHECK_LOG when that is set), record prints
# "SUITE: P passed, F failed" and appends "SUITE P F" to $BL_RESULTS (test/run_all.sh adds the
# lines up; nothing is appended when the suite runs alone), suite_done records and returns 1 when
# a check failed.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
mkdir -p "$BL_LOG_DIR"
HOST=$(hostname -s)
P=0
F=0
ok() { P=$((P + 1)); echo "  ok: $1"; }
bad() { F=$((F + 1)); echo "  FAILED: $1"; }
check() { # description, command...
    local d=$1
    shift
    if [ -n "${CHECK_LOG:-}" ]; then
        if "$@" >>"$CHECK_LOG" 2>&1; then ok "$d"; else bad "$d"; fi
    elif "$@"; then ok "$d"; else bad "$d"; fi
}
record() {
    echo "$SUITE: $P passed, $F failed"
    if [ -n "${BL_RESULTS:-}" ]; then echo "$SUITE $P $F" >>"$BL_RESULTS"; fi
}
suite_done() {
    record
    [ "$F" -eq 0 ]
}
