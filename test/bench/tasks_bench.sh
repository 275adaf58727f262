#!/usr/bin/env bash
# tasks_bench.sh - task dispatcher figures for `make bench` (figures, never pass/fail; the driver
# is test/bench/bl_tasks_bench.erl): 3 coordinators and 10 agents of the release build on
# loopback; echo tasks per second through the leader with p50/p99 submit-to-result next to a
# gen_server:call round trip to the same node, then the leader's kill -9 and the time to the
# first task completed under the new leader.
# Env: TASKS_BENCH_N [4000] tasks, TASKS_BENCH_CONC [40] submitters.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BIN=${BEAMLET_BIN:-$ROOT/priv/beamlet}
OUT=${BL_BENCH_DIR:-$ROOT/build/bench}
N=${TASKS_BENCH_N:-4000}
CONC=${TASKS_BENCH_CONC:-40}
mkdir -p "$OUT"
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
export XDG_STATE_HOME=$OUT/tasks-state
rm -rf "$XDG_STATE_HOME"
COOKIE=tb_$$
PRE=tb$$_
H=$(hostname -s)
pgrep -x epmd >/dev/null || epmd -daemon
erlc -o "$OUT" test/bench/bl_tasks_bench.erl || exit 1
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
for i in 1 2 3; do
    "$BIN" node --sname "${PRE}c$i" --cookie "$COOKIE" --role coordinator --cluster "$PRE" \
        --join "${PRE}c1@$H,${PRE}c2@$H,${PRE}c3@$H" >"$OUT/${PRE}c$i.log" 2>&1 &
    PIDS+=($!)
    disown $! # the driver kills one with -9: no job report for it
done
for i in $(seq 1 10); do
    "$BIN" node --sname "${PRE}a$i" --cookie "$COOKIE" --role agent --cluster "$PRE" \
        --task-concurrency 32 --join "${PRE}c1@$H" >"$OUT/${PRE}a$i.log" 2>&1 &
    PIDS+=($!)
    disown $!
done
echo "== tasks: $N echo tasks through the leader (3 coordinators, 10 agents)"
timeout -k 5 300 erl -sname "tbd_$$" -setcookie "$COOKIE" -noshell -pa "$OUT" \
    -eval "bl_tasks_bench:main([\"$PRE\", \"$N\", \"$CONC\"])" 2>&1 | grep -v "^$" | tail -3
