#!/usr/bin/env bash
# hs_bench.sh - `make bench`: handshakes per second accepted by one beamlet node next to one BEAM
# node, the same client (build/release/bench_hs: full handshakes back to back from 4 processes,
# a fresh node name each time) against each in turn, 3 rounds of 3 s, medians; and the beamlet
# node's RSS after the rounds (every one of those connections came up and was closed again).
# The beamlet node runs without its per-address handshake-rate bound (default 200/s,
# docs/security.md): the client is one address on purpose, and BEAM has no such bound.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BEAMLET_BIN:-$ROOT/priv/beamlet}
HSB=${HS_BENCH_BIN:-$ROOT/build/release/bench_hs}
OUT=${BL_BENCH_DIR:-$ROOT/build/bench}
mkdir -p "$OUT"
COOKIE=hb_$$
HOST=$(hostname -s)
pgrep -x epmd >/dev/null || epmd -daemon
"$BIN" node --sname "hbc_$$" --cookie "$COOKIE" --listen-address 127.0.0.1 --log-level warn \
    --max-handshake-rate-per-address 0 >"$OUT/hbc.log" 2>&1 &
CP=$!
erl -sname "hbe_$$" -setcookie "$COOKIE" -noshell -kernel inet_dist_use_interface '{127,0,0,1}' \
    -eval 'receive after infinity -> ok end' >"$OUT/hbe.log" 2>&1 &
EP=$!
trap 'kill $CP $EP 2>/dev/null' EXIT
for _ in $(seq 1 50); do epmd -names 2>/dev/null | grep -q "hbe_$$" && epmd -names | grep -q "hbc_$$" && break; sleep 0.2; done
median() { sort -n | awk '{a[NR]=$1} END{ if (NR) print a[int((NR+1)/2)]; else print "nan" }'; }
: >"$OUT/hs_c.txt"; : >"$OUT/hs_beam.txt"
for _ in 1 2 3; do
    "$HSB" "hbc_$$@$HOST" "$COOKIE" 3 4 >>"$OUT/hs_c.txt"
    "$HSB" "hbe_$$@$HOST" "$COOKIE" 3 4 >>"$OUT/hs_beam.txt"
done
C=$(median <"$OUT/hs_c.txt")
B=$(median <"$OUT/hs_beam.txt")
RSS=$(awk '/VmRSS/{print $2}' /proc/$CP/status 2>/dev/null)
echo "== handshakes accepted per second (4 clients, 3 x 3 s)"
echo "   beamlet: $(tr '\n' ' ' <"$OUT/hs_c.txt")/s; BEAM: $(tr '\n' ' ' <"$OUT/hs_beam.txt")/s; beamlet RSS afterwards ${RSS} kB"
awk -v c="$C" -v b="$B" 'BEGIN{ printf "%-44s %9s /s %9s /s %8s  %s\n", "handshakes accepted (beamlet vs BEAM)", c, b,
    (b > 0 ? sprintf("%.2f", c / b) : "n/a"), ">= 1.00" }' | tee "$OUT/hs-table.txt"
