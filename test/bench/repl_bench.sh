#!/usr/bin/env bash
# repl_bench.sh - replication figures for `make bench` (figures, never pass/fail): an idle
# 50-node C-only cluster with 20 entries per node per service (registry entries, pub/sub
# subscriptions, global names in beamlet mode, pg memberships in the default scope): bytes sent per node per second once converged,
# for this tree and for the tree before the replicated-table layer (issue 9, commit dc01249,
# built once into build/bench-old/), next to the same cluster with no entries (the membership
# floor). Then the time until one new entry of each service is visible on all 50 nodes.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BIN=${BEAMLET_BIN:-$ROOT/priv/beamlet}
OUT=${BL_BENCH_DIR:-$ROOT/build/bench}
N=${REPL_BENCH_NODES:-50}
E=${REPL_BENCH_ENTRIES:-20}
OLD_REV=dc01249
OLD=$ROOT/build/bench-old
mkdir -p "$OUT"
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
COOKIE=rb_$$
pgrep -x epmd >/dev/null || epmd -daemon
if [ ! -x "$OLD/priv/beamlet" ] && git -C "$ROOT" cat-file -e "$OLD_REV" 2>/dev/null; then
    echo "== building the tree before the replicated-table layer ($OLD_REV) into build/bench-old"
    rm -rf "$OLD" && mkdir -p "$OLD" &&
        git -C "$ROOT" archive "$OLD_REV" | tar -x -C "$OLD" &&
        make --no-print-directory -C "$OLD" -j2 priv/beamlet >"$OUT/bench-old-build.log" 2>&1 ||
        echo "   build failed (see $OUT/bench-old-build.log)"
fi
erlc -o "$OUT" test/bench/bl_repl_bench.erl || exit 1
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; PIDS=(); }
trap cleanup EXIT
run() { # label binary entries
    local label=$1 bin=$2 entries=$3 pre="rb$$_${1}_" cl="rb$$$1"
    for i in $(seq 1 "$N"); do
        local join=""; [ "$i" -gt 1 ] && join="--join ${pre}1@$(hostname -s)"
        "$bin" node --sname "$pre$i" --cookie "$COOKIE" --role agent --cluster "$cl" \
            --global-mode beamlet $join >>"$OUT/$pre$i.log" 2>&1 &
        PIDS+=($!)
    done
    erl -sname "rbobs_$$_$label" -setcookie "$COOKIE" -noshell -pa "$OUT" \
        -eval "bl_repl_bench:main([\"$label\", \"$N\", \"$entries\", \"$pre\"])" 2>&1 | tail -1
    cleanup
    sleep 1
}
echo "== replication: $N nodes, $E entries per node per service, idle (20 s window)"
RUNS=${REPL_BENCH_RUNS:-new floor old} # a subset reruns part of it
NEW="new n/a n/a n/a n/a n/a n/a" FLOOR="floor n/a n/a n/a n/a n/a n/a" OLDL="old n/a n/a n/a n/a n/a n/a"
case " $RUNS " in *" new "*) NEW=$(run new "$BIN" "$E") ;; esac
case " $RUNS " in *" floor "*) FLOOR=$(run floor "$BIN" 0) ;; esac
case " $RUNS " in *" old "*) [ -x "$OLD/priv/beamlet" ] && OLDL=$(run old "$OLD/priv/beamlet" "$E") ;; esac
echo "$OLDL" >"$OUT/repl-raw.txt"; echo "$NEW" >>"$OUT/repl-raw.txt"; echo "$FLOOR" >>"$OUT/repl-raw.txt"
f() { echo "$1" | awk -v k="$2" '{print $k}'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.1f", a - b; else print "n/a" }'; }
{
    printf "%-52s %14s %14s  %s\n" "replication figure ($N nodes, $E/node/service)" "before (dc01249)" "now" "target"
    printf "%-52s %14s %14s  %s\n" "bytes/s sent per node, idle, all traffic" "$(f "$OLDL" 2)" "$(f "$NEW" 2)" ""
    printf "%-52s %14s %14s  %s\n" "  of which replication (minus the no-entry floor $(f "$FLOOR" 2))" \
        "$(sub "$(f "$OLDL" 2)" "$(f "$FLOOR" 2)")" "$(sub "$(f "$NEW" 2)" "$(f "$FLOOR" 2)")" "near 0"
    printf "%-52s %11s ms %11s ms\n" "new registry entry visible on all $N nodes" "$(f "$OLDL" 3)" "$(f "$NEW" 3)"
    printf "%-52s %11s ms %11s ms\n" "new subscription visible on all $N nodes" "$(f "$OLDL" 4)" "$(f "$NEW" 4)"
    printf "%-52s %11s ms %11s ms\n" "new global name visible on all $N nodes" "$(f "$OLDL" 5)" "$(f "$NEW" 5)"
    printf "%-52s %11s ms %11s ms\n" "new pg member visible on all $N nodes" "$(f "$OLDL" 7)" "$(f "$NEW" 7)"
    printf "%-52s %14s %14s  %s\n" "every entry on every node before measuring" "$(f "$OLDL" 6)" "$(f "$NEW" 6)" "(-1 ms: not seen everywhere in 30 s; pg -2: no join_local in that tree)"
} | tee "$OUT/repl-table.txt"
