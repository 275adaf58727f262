#!/usr/bin/env bash
# run.sh [N] - boot N beamlet nodes at once (default 30; BL_SCALE_NODES overrides), one seed and
# every other node `--join` it, as after a power cut; then check from an erl observer that every
# node lists all N as active members and answers ping and gen_server:call. `make test` runs it
# with 30 nodes of the ASan build; `make test-scale` with 100 of the release build. Prints RSS and
# PSS per node (test/scale/memsum.sh) when they converged and after settling; appends "scale P F"
# to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
N=${1:-${BL_SCALE_NODES:-30}}
BIN=${BEAMLET_BIN:-$ROOT/build/asan/beamlet}
LOG=${BL_LOG_DIR:-$ROOT/build/test-logs}/scale
EBIN=$ROOT/build/scale_ebin
COOKIE=${BL_COOKIE:-scale_$$}
HOST=$(hostname -s)
DEADLINE_MS=${BL_SCALE_DEADLINE_MS:-$((60000 + N * 1000))}
mkdir -p "$LOG" "$EBIN"
# ASan nodes keep their memory modest: a small quarantine and short allocation stacks
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8:malloc_context_size=5"
pgrep -x epmd >/dev/null || epmd -daemon
result() { [ -n "${BL_RESULTS:-}" ] && echo "scale $1 $2" >>"$BL_RESULTS"; }
if ! erlc -Wall -o "$EBIN" test/scale/bl_scale.erl; then result 0 1; exit 1; fi
PIDS=()
# SIGTERM, then up to 20 s to exit: an ASan node runs its leak check on the way out, and a kill -9
# in the middle of it (after 1 s, on a loaded machine) left a sanitizer report of its own
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 1 40); do
        local left=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
        [ "$left" -eq 0 ] && return
        sleep 0.5
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT
cl="scale$$"
seed="s1_$$@$HOST"
echo "  booting $N nodes at once ($BIN)"
for i in $(seq 1 "$N"); do
    join=""; [ "$i" -gt 1 ] && join="--join $seed"
    "$BIN" node --sname "s${i}_$$" --cookie "$COOKIE" --cluster "$cl" --listen-address 127.0.0.1 \
        $join >"$LOG/s$i.log" 2>&1 &
    PIDS+=($!)
done
. test/scale/memsum.sh
NODES=$(for i in $(seq 1 "$N"); do printf "'s%s_%s@%s'," "$i" "$$" "$HOST"; done)
erl -sname "scale_obs_$$" -setcookie "$COOKIE" -noshell -pa "$EBIN" \
    -eval "bl_scale:check([${NODES%,}], $N, $DEADLINE_MS)"
rc=$?
# memory once every node answered, and again after a few heartbeats (docs/memory.md: RSS counts
# the shared libraries once per node, PSS splits them between the nodes)
mem() {
    read -r rss pss uss anon live <<<"$(bl_mem_per_node "${PIDS[@]}")"
    echo "  memory per node at $N nodes ($1, $live live): RSS $rss kB, PSS $pss kB (private $uss kB, anonymous $anon kB)"
}
mem "converged"
sleep "${BL_SCALE_SETTLE_S:-12}" # a node hands freed heap back every 10 s (cli/memory.c)
mem "settled ${BL_SCALE_SETTLE_S:-12} s later"
dead=0
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || dead=$((dead + 1)); done
[ "$dead" -gt 0 ] && { echo "  FAILED: $dead node(s) died"; rc=1; }
if [ "$rc" -eq 0 ]; then
    echo "  scale ($N nodes at once): passed"; result 1 0
else
    echo "  scale ($N nodes at once): FAILED (logs in $LOG)"; result 0 1
fi
exit "$rc"
