# lib.sh - shared by the test/release suites: pass/fail counters, the result line for
# run_all.sh, waiting for a condition. Source it after setting SUITE.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOGS=${BL_LOG_DIR:-$ROOT/build/test-logs}
mkdir -p "$LOGS"
HOST=$(hostname -s)
P=0 F=0
ok() { P=$((P + 1)); echo "  ok: $1"; }
bad() { F=$((F + 1)); echo "  FAILED: $1"; }
check() { # description, command...
    local d=$1; shift
    if "$@" >>"$LOGS/$SUITE.log" 2>&1; then ok "$d"; else bad "$d"; fi
}
record() { [ -n "${BL_RESULTS:-}" ] && echo "$SUITE $P $F" >>"$BL_RESULTS"; echo "$SUITE: $P passed, $F failed"; }
wait_for() { # tries(0.25 s each) command...
    local n=$1; shift
    for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    return 1
}
