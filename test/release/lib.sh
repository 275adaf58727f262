# lib.sh - shared by the test/release suites: test/lib/checks.sh's counting and result line, each
# check's output kept in $LOGS/SUITE.log, waiting for a condition. Source it after setting SUITE.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
LOGS=$BL_LOG_DIR
CHECK_LOG=$LOGS/$SUITE.log
wait_for() { # tries(0.25 s each) command...
    local n=$1; shift
    for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    return 1
}
