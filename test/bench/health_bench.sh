#!/usr/bin/env bash
# health_bench.sh - `make bench` figures of the health service, measured side by side in one run:
#  1. collector CPU per sample and RSS of a beamlet node next to prometheus-node-exporter
#     scraped at the same interval, as ratios. beamlet: CPU of a node sampling every
#     BL_BENCH_HEALTH_MS minus a twin that does not sample (same cluster traffic), per sample;
#     node_exporter: its CPU per scrape (curl scrapes it at the same interval).
#  2. history query latency: 24 h at 1 min resolution (1440 points) from a store holding two days
#     of 1 min rollups of 40 metrics, timed from an erl node (gen_server:call), median and p95.
#  3. store write throughput (build/release/store_bench).
# Env: BL_BENCH_HEALTH_SECONDS [30], BL_BENCH_HEALTH_MS [250].
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/priv/beamlet}"
: "${BL_BENCH_LOG_DIR:=$ROOT/build/bench-logs}"
: "${BL_BENCH_HEALTH_SECONDS:=30}"
: "${BL_BENCH_HEALTH_MS:=250}"
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
mkdir -p "$BL_BENCH_LOG_DIR"
W=$(mktemp -d /tmp/bl_health_bench.XXXXXX)
export XDG_STATE_HOME=$W/state
COOKIE=blhb_$$
HOST=$(hostname -s)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.3; rm -rf "$W"; }
trap cleanup EXIT
pgrep -x epmd >/dev/null || epmd -daemon
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
wait_ping() { for _ in $(seq 1 100); do "$BEAMLET_BIN" ping "$1" --cookie "$COOKIE" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

echo "=== health: collector CPU per sample and RSS vs prometheus-node-exporter (every ${BL_BENCH_HEALTH_MS} ms, ${BL_BENCH_HEALTH_SECONDS} s)"
"$BEAMLET_BIN" node --sname hb_sampling --cookie "$COOKIE" --health-interval-ms "$BL_BENCH_HEALTH_MS" \
    --health-store false >"$BL_BENCH_LOG_DIR/hb_sampling.log" 2>&1 &
PA=$!
PIDS+=($PA)
"$BEAMLET_BIN" node --sname hb_idle --cookie "$COOKIE" --health-interval-ms 3600000 \
    --health-store false >"$BL_BENCH_LOG_DIR/hb_idle.log" 2>&1 &
PB=$!
PIDS+=($PB)
NE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
prometheus-node-exporter --web.listen-address="127.0.0.1:$NE_PORT" >"$BL_BENCH_LOG_DIR/node_exporter.log" 2>&1 &
PN=$!
PIDS+=($PN)
wait_ping "hb_sampling@$HOST" && wait_ping "hb_idle@$HOST"
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$NE_PORT/metrics" && break; sleep 0.1; done
sleep 1
A0=$(ticks "$PA") B0=$(ticks "$PB") N0=$(ticks "$PN")
S0=$("$BEAMLET_BIN" stats hb_sampling@"$HOST" --cookie "$COOKIE" >/dev/null 2>&1; erl -noshell -sname "hbq_$$" -setcookie "$COOKIE" -eval "io:format(\"~p\", [maps:get(samples, gen_server:call({beamlet_health, 'hb_sampling@$HOST'}, config))]), halt().")
SCRAPES=0
END=$(($(date +%s) + BL_BENCH_HEALTH_SECONDS))
SLEEP=$(awk "BEGIN {print $BL_BENCH_HEALTH_MS / 1000}")
while [ "$(date +%s)" -lt "$END" ]; do
    curl -s -o /dev/null "http://127.0.0.1:$NE_PORT/metrics" && SCRAPES=$((SCRAPES + 1))
    sleep "$SLEEP"
done
A1=$(ticks "$PA") B1=$(ticks "$PB") N1=$(ticks "$PN")
S1=$(erl -noshell -sname "hbq2_$$" -setcookie "$COOKIE" -eval "io:format(\"~p\", [maps:get(samples, gen_server:call({beamlet_health, 'hb_sampling@$HOST'}, config))]), halt().")
SAMPLES=$((S1 - S0))
python3 - "$A0" "$A1" "$B0" "$B1" "$N0" "$N1" "$SAMPLES" "$SCRAPES" "$HZ" "$(rss_kb "$PA")" "$(rss_kb "$PN")" <<'PY'
import sys
a0, a1, b0, b1, n0, n1, samples, scrapes, hz, rss_bl, rss_ne = map(float, sys.argv[1:])
bl = max(a1 - a0 - (b1 - b0), 0) / hz * 1000 / max(samples, 1)
ne = (n1 - n0) / hz * 1000 / max(scrapes, 1)
print("  beamlet collector: %.3f ms CPU per sample (%d samples; sampling node %.0f ms CPU, idle twin %.0f ms)" % (bl, samples, (a1 - a0) / hz * 1000, (b1 - b0) / hz * 1000))
print("  node_exporter:     %.3f ms CPU per scrape (%d scrapes)" % (ne, scrapes))
print("  CPU per sample ratio node_exporter / beamlet: %s" % (("%.1fx" % (ne / bl)) if bl > 0 else "beamlet below the clock tick (>%.0fx)" % (ne / (1000.0 / hz / max(samples, 1)))))
print("  RSS: beamlet node (everything) %.0f kB, node_exporter %.0f kB, ratio %.1fx" % (rss_bl, rss_ne, rss_ne / rss_bl))
print("  at 1 s sampling beamlet's collector would use %.3f%% of one core" % (bl / 10.0))
PY
kill "$PA" "$PB" "$PN" 2>/dev/null

echo "=== health: history query latency, 24 h at 1 min resolution"
NODE=hb_hist@$HOST
DB=$XDG_STATE_HOME/beamlet/$NODE/health.db
mkdir -p "$(dirname "$DB")"
python3 - "$DB" <<'PY'
import sqlite3, sys, time, math
db = sqlite3.connect(sys.argv[1])
db.executescript("""
CREATE TABLE IF NOT EXISTS rollup_1m(metric TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
 min REAL, max REAL, sum REAL, count INTEGER, PRIMARY KEY(metric, bucket_ms)) WITHOUT ROWID;
""")
now = int(time.time() * 1000) // 60000 * 60000
rows = []
for m in ["cpu.percent"] + ["bench.metric%02d" % i for i in range(39)]:
    for k in range(2 * 1440):
        v = 50 + 40 * math.sin(k / 100.0)
        rows.append((m, now - k * 60000, v - 1, v + 1, v * 12, 12))
db.executemany("INSERT OR REPLACE INTO rollup_1m VALUES(?,?,?,?,?,?)", rows)
db.commit()
print("  store: %d rows of 1 min rollups (40 metrics x 2 days)" % len(rows))
PY
"$BEAMLET_BIN" node --sname hb_hist --cookie "$COOKIE" >"$BL_BENCH_LOG_DIR/hb_hist.log" 2>&1 &
PH=$!
PIDS+=($PH)
wait_ping "$NODE"
erl -noshell -sname "hbh_$$" -setcookie "$COOKIE" -eval "
    N = '$NODE',
    Since = erlang:system_time(millisecond) - 86400000,
    Q = fun() -> {ok, #{points := P}} = gen_server:call({beamlet_health, N}, {history, <<\"cpu.percent\">>, Since}), length(P) end,
    Q(),
    Ts = lists:sort([begin {T, _} = timer:tc(Q), T end || _ <- lists:seq(1, 50)]),
    Pts = Q(),
    io:format(\"  ~p points per query; median ~.2f ms, p95 ~.2f ms over 50 queries (erl -> node -> store thread -> erl)~n\",
              [Pts, lists:nth(25, Ts) / 1000, lists:nth(48, Ts) / 1000]),
    halt()."
kill "$PH" 2>/dev/null

echo "=== health: store write throughput"
build/release/store_bench 1000000
