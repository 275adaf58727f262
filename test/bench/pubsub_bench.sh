#!/usr/bin/env bash
# pubsub_bench.sh - pub/sub figures for `make bench`, each next to its reference measured in the
# same run (figures and ratios, never pass/fail); the driver is test/bench/bl_pubsub_bench.erl:
#  1. fan-out: one publish reaching 1,000 subscribers on 5 beamlet nodes (200 C subscribers per
#     node, test/bench/pubsub_bench_node.c), in deliveries/s (= publishes/s x 1000), vs the same
#     fan-out by OTP `pg` on 5 BEAM nodes (200 member processes per node).
#     Why C subscribers: "fan-out done by beamlet" is the beamlet nodes routing and delivering;
#     BEAM subscriber processes attached to the C nodes would add a distribution hop per
#     subscriber per message and measure the BEAM node receiving them. The C callback only bumps
#     a per-node counter; the pg member only bumps a per-node atomics counter: both are the
#     cheapest subscriber their side has. Both publishers run on the first of their 5 nodes.
#  2. at-least-once (durable outbox, SQLite in a fresh BEAMLET_DATA_DIR per node) vs at-most-once:
#     the same BEAM subscriber, the same message count, node A -> node B, msgs/s.
# Env: BL_PSB_PUBS [1000] publishes per fan-out round, BL_PSB_MSGS [20000] per durable round,
# BL_PSB_REPS [5] rounds (median), BL_PSB_WINDOW [1000] durable publishes in flight (0: one burst),
# BL_PSB_BEAM_SCHEDULERS [1] per BEAM node (2 measured slower for pg here: 10 VMs on 2 cores),
# BL_BENCH_DIR [build/bench]. Each column is the median of its own rounds. Also printed: RSS per
# fan-out node with its 200 subscribers, and the deliveries counted (the last fan-out round must
# show 1000 x publishes on both sides; durable: delivered vs published, and resends).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BIN=${BEAMLET_BIN:-$ROOT/build/release/beamlet}
NODE_BIN=${PSB_NODE_BIN:-$ROOT/build/release/pubsub_bench_node}
OUT=${BL_BENCH_DIR:-$ROOT/build/bench}
EBIN=$ROOT/build/pubsub_bench_ebin
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
COOKIE=psb_$$
HOST=$(hostname -s)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/psb.XXXXXX")
mkdir -p "$OUT" "$EBIN"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the C helper: the Makefile's rule when it has one, else the same command by hand
if [ ! -x "$NODE_BIN" ] || [ "$ROOT/build/release/libbeamlet.a" -nt "$NODE_BIN" ] ||
        [ test/bench/pubsub_bench_node.c -nt "$NODE_BIN" ]; then
    if ! make --no-print-directory "${NODE_BIN#$ROOT/}" >/dev/null 2>&1; then
        EI=$(erl -noshell -eval 'io:format("~s",[code:lib_dir(erl_interface)]),halt().')
        ${CC:-cc} -std=c11 -D_GNU_SOURCE -D_REENTRANT -pthread -Wall -Wextra -Werror -Iinclude \
            -I"$EI/include" -Wno-format-truncation -O2 -g test/bench/pubsub_bench_node.c \
            build/release/libbeamlet.a -L"$EI/lib" -lei -lev -ljansson -lpthread -lm -ldl \
            -o "$NODE_BIN" || exit 1
    fi
fi
for b in "$BIN" "$NODE_BIN"; do
    [ -x "$b" ] || { echo "pubsub_bench.sh: $b missing (make all)" >&2; exit 1; }
done
erlc -Wall -o "$EBIN" test/bench/bl_pubsub_bench.erl || exit 1
epmd -names >/dev/null 2>&1 || epmd -daemon -address 127.0.0.1 || exit 1

bg() { # log cmd...
    local log=$1; shift
    "$@" >>"$OUT/$log.log" 2>&1 &
    PIDS+=($!)
    disown $!
}
# each node: one scheduler thread on the BEAM side, as a beamlet node is one event loop
ERL_NODE=(erl -setcookie "$COOKIE" -noshell -noinput +S "${BL_PSB_BEAM_SCHEDULERS:-1}" -kernel inet_dist_use_interface '{127,0,0,1}'
          -kernel start_pg true -pa "$EBIN")
FAN="" PG="" FAN_PIDS="" PG_PIDS=""
for i in 1 2 3 4 5; do
    n=psbf${i}_$$
    join=(); [ "$i" -gt 1 ] && join=(--join "psbf1_$$@$HOST")
    bg "$n" env -u BEAMLET_DATA_DIR "$NODE_BIN" --sname "$n" --cookie "$COOKIE" --role agent \
        --cluster "psbf$$" "${join[@]}"
    FAN+="$n@$HOST "
    FAN_PIDS+="$! "
    n=psbg${i}_$$
    bg "$n" "${ERL_NODE[@]}" -sname "$n"
    PG+="$n@$HOST "
    PG_PIDS+="$! "
done
A=psba_$$ B=psbb_$$
mkdir -p "$TMP/a" "$TMP/b"
BEAMLET_DATA_DIR=$TMP/a bg "$A" "$BIN" node --sname "$A" --cookie "$COOKIE" --role agent --cluster "psbd$$"
BEAMLET_DATA_DIR=$TMP/b bg "$B" "$BIN" node --sname "$B" --cookie "$COOKIE" --role agent --cluster "psbd$$" \
    --join "$A@$HOST"

PSB_FAN=${FAN% } PSB_PG=${PG% } PSB_A=$A@$HOST PSB_B=$B@$HOST PSB_PUBS=${BL_PSB_PUBS:-1000} \
PSB_MSGS=${BL_PSB_MSGS:-20000} PSB_REPS=${BL_PSB_REPS:-5} PSB_WINDOW=${BL_PSB_WINDOW:-1000} \
    timeout -k 5 170 "${ERL_NODE[@]}" -sname "psb_drv_$$" -eval 'bl_pubsub_bench:main()' \
    | tee "$OUT/pubsub-raw.txt"
rc=${PIPESTATUS[0]}
# RSS of the fan-out nodes with their 200 subscribers each (after the rounds; the driver is gone)
rss() { local t=0 v; for p in $1; do v=$(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null); t=$((t + ${v:-0})); done; echo $((t / 5)); }
RSS_FAN=$(rss "$FAN_PIDS") RSS_PG=$(rss "$PG_PIDS")
r() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$OUT/pubsub-raw.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0 && a ~ /^[0-9.]+$/) printf "%.2f", a / b; else print "n/a" }'; }
{
    printf "%-58s %14s %14s %8s  %s\n" "pub/sub figure" "measured" "reference" "ratio" "target"
    printf "%-58s %10s /s %10s /s %8s  %s\n" "fan-out 1->1000 on 5 nodes, deliveries (pg ref)" \
        "$(r fan_beamlet)" "$(r fan_pg)" "$(ratio "$(r fan_beamlet)" "$(r fan_pg)")" ">= 1.00 (OTP pg)"
    printf "%-58s %10s /s %10s /s %8s  %s\n" "at-least-once msgs, $(r window) in flight (at-most-once ref)" \
        "$(r alo)" "$(r amo)" "$(ratio "$(r alo)" "$(r amo)")" "(cost of the durable outbox)"
    printf "%-58s %10s kB %10s kB %8s  %s\n" "RSS per fan-out node, 200 subscribers (BEAM node ref)" \
        "$RSS_FAN" "$RSS_PG" "$(ratio "$RSS_FAN" "$RSS_PG")" "(after the rounds)"
    echo "counted, last fan-out round: beamlet $(r fan_counted_beamlet), pg $(r fan_counted_pg) of $(r fan_expected) deliveries;" \
         "durable: delivered at-least-once $(r alo_delivered), at-most-once $(r amo_delivered) of $(r durable_expected) each, $(r alo_retried) resends"
} | tee "$OUT/pubsub-table.txt"
exit "$rc"
