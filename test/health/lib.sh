# lib.sh - shared by the test/health suites (sourced by bash after setting SUITE):
# test/lib/checks.sh's counting and result line, the nodes' environment, PIDS (every process the
# suite starts; killed at exit, then the suite's own at_exit runs), EPMD, cli (the CLI with the
# suite's cookie) and wait_ping NODE (up to 10 s for it to answer).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
cd "$ROOT" || exit 2
: "${BL_COOKIE:=bl${SUITE}_$$}"
: "${XDG_STATE_HOME:=$ROOT/build/state}"
export XDG_STATE_HOME BEAMLET_LISTEN_ADDRESS=127.0.0.1
PIDS=()
at_exit() { :; }
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    at_exit
}
trap cleanup EXIT
epmd -daemon 2>/dev/null || true
cli() { "$BEAMLET_BIN" "$@" --cookie "$BL_COOKIE" --timeout 10000; }
wait_ping() {
    for _ in $(seq 1 100); do
        "$BEAMLET_BIN" ping "$1" --cookie "$BL_COOKIE" --timeout 1000 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
