#!/usr/bin/env bash
# run.sh [N] - boot N beamlet nodes at once (default 30; BL_SCALE_NODES overrides), one seed and
# every other node `--join` it, as after a power cut; then check from an erl observer that every
# node lists all N as active members and answers ping and gen_server:call; then, for
# BL_SCALE_SETTLE_MS (10 s) more, that no node suspects or fails anyone (the failure detectors'
# counters stay still) and all still list N active. BL_SCALE_HOGS=K runs K CPU busy loops from
# before the boot to the end, so the nodes boot and converge on a starved machine. `make test`
# runs it with 30 nodes of the ASan build, quiet and with 4 hogs (suite scale_load); `make
# test-scale` with 100 (BL_SCALE_HOGS there too). Appends "SUITE P F" to $BL_RESULTS, SUITE being
# $BL_SCALE_SUITE (scale). Prints the time to converge (from the first exec), the CPU seconds
# all the nodes spent until then (user + system, /proc/PID/stat: under CPU contention the time
# to converge is about that CPU over the nodes' share of the cores, docs/cluster.md "Under
# load") and their traffic, and RSS and PSS per node (test/scale/memsum.sh) when they converged
# and after settling.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
N=${1:-${BL_SCALE_NODES:-30}}
BIN=${BEAMLET_BIN:-$ROOT/build/asan/beamlet}
SUITE=${BL_SCALE_SUITE:-scale}
LOG=${BL_LOG_DIR:-$ROOT/build/test-logs}/$SUITE
EBIN=$ROOT/build/scale_ebin
COOKIE=${BL_COOKIE:-scale_$$}
HOST=$(hostname -s)
DEADLINE_MS=${BL_SCALE_DEADLINE_MS:-$((60000 + N * 1000))}
mkdir -p "$LOG" "$EBIN"
# ASan nodes keep their memory modest: a small quarantine and short allocation stacks
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8:malloc_context_size=5"
pgrep -x epmd >/dev/null || epmd -daemon
result() { [ -n "${BL_RESULTS:-}" ] && echo "$SUITE $1 $2" >>"$BL_RESULTS"; }
if ! erlc -Wall -o "$EBIN" test/scale/bl_scale.erl; then result 0 1; exit 1; fi
PIDS=()
HOGS=()
HOG_N=${BL_SCALE_HOGS:-0}
# with hogs the nodes run at a lower priority than the hogs (nice 10 against 0: about a tenth of
# their CPU weight), as beside a busy backup or build job; BL_SCALE_NICE overrides
NODE_NICE=${BL_SCALE_NICE:-$([ "$HOG_N" -gt 0 ] && echo 10 || echo 0)}
running() { local st; st=$(awk '{print $3}' /proc/"$1"/stat 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
cleanup() {
    [ -n "${OBS:-}" ] && kill "$OBS" 2>/dev/null
    for p in "${HOGS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    # an ASan node checks for leaks as it exits: a kill -9 in the middle of that check leaves a
    # sanitizer report ("Unable to get registers from thread"), so wait for them (30 s at most)
    for _ in $(seq 1 60); do
        live=0
        for p in "${PIDS[@]}"; do running "$p" && live=1 && break; done
        [ "$live" = 0 ] && break
        sleep 0.5
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT
cl="scale$$"
seed="s1_$$@$HOST"
# CPU hogs (BL_SCALE_HOGS=K): K busy loops started before the nodes and killed at the end, so
# the nodes boot and converge on a starved machine, as after a power cut of a busy box
for _ in $(seq 1 "$HOG_N"); do
    ( while :; do :; done ) &
    HOGS+=($!)
done
[ "$HOG_N" -gt 0 ] && echo "  $HOG_N CPU hogs running (load $(cut -d' ' -f1 /proc/loadavg))"
. test/scale/memsum.sh
NODES=$(for i in $(seq 1 "$N"); do printf "'s%s_%s@%s'," "$i" "$$" "$HOST"; done)
# the observer starts first (an erl start takes seconds on a loaded machine) and says when it is
# up; the time to converge and the CPU spent are then counted from the first exec
STARTED=$LOG/started.$$
rm -f "$STARTED" "$STARTED.ready"
erl -sname "scale_obs_$$" -setcookie "$COOKIE" -noshell -pa "$EBIN" \
    -eval "bl_scale:check([${NODES%,}], $N, $DEADLINE_MS, ${BL_SCALE_SETTLE_MS:-10000}, {file, \"$STARTED\"})" &
OBS=$!
for _ in $(seq 1 600); do [ -f "$STARTED.ready" ] && break; sleep 0.1; done
echo "  booting $N nodes at once ($BIN)"
T0=$(date +%s%3N)
for i in $(seq 1 "$N"); do
    join=""; [ "$i" -gt 1 ] && join="--join $seed"
    nice -n "$NODE_NICE" "$BIN" node --sname "s${i}_$$" --cookie "$COOKIE" --cluster "$cl" --listen-address 127.0.0.1 \
        $join >"$LOG/s$i.log" 2>&1 &
    PIDS+=($!)
done
echo "$T0 $(IFS=,; echo "${PIDS[*]}")" >"$STARTED.tmp" && mv "$STARTED.tmp" "$STARTED"
wait "$OBS"
rc=$?
rm -f "$STARTED" "$STARTED.ready"
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
what="$N nodes at once"
[ "$HOG_N" -gt 0 ] && what="$what, $HOG_N CPU hogs"
if [ "$rc" -eq 0 ]; then
    echo "  $SUITE ($what): passed"; result 1 0
else
    echo "  $SUITE ($what): FAILED (logs in $LOG)"; result 0 1
fi
exit "$rc"
