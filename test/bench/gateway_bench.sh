#!/usr/bin/env bash
# gateway_bench.sh - the HTTP gateway under load (make bench): requests/s and p99 with wrk for
# /metrics and /api/v1/nodes on a beamlet gateway (release build, 3-node cluster on loopback),
# next to node_exporter's /metrics on the same machine in the same run (as a ratio); a BEAM
# node's gen_server:call round trip to the gateway while wrk loads its HTTP side, next to the same
# without the load; and the same call (200 calls, 10 ms apart) while rounds of 1000 connections
# are opened at once (test/gateway/storm.py, one request each, Connection: close), next to the
# same without the storm, with the node's loop lag (its detector's tick) and CPU per connection.
# Everything binds to 127.0.0.1.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BIN=${BEAMLET_BIN:-$ROOT/build/release/beamlet}
COOKIE=gwbench_$$
HOST=$(hostname -s)
P=${GW_BENCH_PORT:-18300}
NEP=${GW_BENCH_NE_PORT:-19300}
DUR=${GW_BENCH_SECONDS:-8}
CONNS=${GW_BENCH_CONNS:-32}
LOG=$ROOT/build/bench-logs
mkdir -p "$LOG"
pgrep -x epmd >/dev/null || epmd -daemon
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

for t in wrk prometheus-node-exporter erl; do
    command -v $t >/dev/null || { echo "gateway bench: $t missing (rel/tools/deps.sh installs it)"; exit 1; }
done
"$BIN" node --sname gwb_g1 --cookie $COOKIE --role gateway --http-port $P --listen-address 127.0.0.1 \
    --http-rate-limit 1000000 --http-rate-burst 1000000 --http-max-connections 4096 >"$LOG/gwb_g1.log" 2>&1 &
pids+=($!)
for a in gwb_a1 gwb_a2; do
    "$BIN" node --sname $a --cookie $COOKIE --join gwb_g1@$HOST --listen-address 127.0.0.1 >"$LOG/$a.log" 2>&1 &
    pids+=($!)
done
prometheus-node-exporter --web.listen-address=127.0.0.1:$NEP >"$LOG/node_exporter.log" 2>&1 &
pids+=($!)
for i in $(seq 100); do
    [ "$(curl -s http://127.0.0.1:$P/api/v1/cluster | grep -o '"active":3')" = '"active":3' ] &&
        curl -sf http://127.0.0.1:$NEP/metrics >/dev/null && break
    sleep 0.1
done

# wrk URL -> "rps p99_ms"
bench() {
    wrk -t2 -c$CONNS -d${DUR}s --latency "$1" 2>&1 | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; p99 = v }
        /Non-2xx/ { bad = $4 }
        END { printf "%s %s %s\n", rps, p99, bad + 0 }'
}
rtt() { # -> "p50_us p99_us"
    erl -sname gwb_erl_$$_$1 -setcookie $COOKIE -noshell -eval "
        N = 'gwb_g1@$HOST', pong = net_adm:ping(N),
        L = [begin T = erlang:monotonic_time(microsecond), pong = gen_server:call({beamlet, N}, ping, 10000),
                   erlang:monotonic_time(microsecond) - T end || _ <- lists:seq(1, 2000)],
        S = lists:sort(L), io:format(\"~p ~p~n\", [lists:nth(1000, S), lists:nth(1980, S)]), halt()."
}

rtt_paced() { # -> "p50_us p99_us": 200 calls 10 ms apart (a storm makes back-to-back calls slow)
    erl -sname gwb_erl_$$_$1 -setcookie $COOKIE -noshell -eval "
        N = 'gwb_g1@$HOST', pong = net_adm:ping(N),
        L = [begin timer:sleep(10), T = erlang:monotonic_time(microsecond),
                   pong = gen_server:call({beamlet, N}, ping, 10000),
                   erlang:monotonic_time(microsecond) - T end || _ <- lists:seq(1, 200)],
        S = lists:sort(L), io:format(\"~p ~p~n\", [lists:nth(100, S), lists:nth(198, S)]), halt()."
}
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime in clock ticks
lag_max() { curl -s http://127.0.0.1:$P/metrics | awk '/^beamlet_cluster_loop_lag_max_seconds / { print $2 * 1000 }'; }

read -r m_rps m_p99 m_bad <<<"$(bench http://127.0.0.1:$P/metrics)"
read -r n_rps n_p99 n_bad <<<"$(bench http://127.0.0.1:$P/api/v1/nodes)"
read -r e_rps e_p99 e_bad <<<"$(bench http://127.0.0.1:$NEP/metrics)"
read -r r0_50 r0_99 <<<"$(rtt idle)"
wrk -t2 -c$CONNS -d$((DUR + 20))s http://127.0.0.1:$P/api/v1/nodes >/dev/null 2>&1 &
wp=$!
sleep 1
read -r r1_50 r1_99 <<<"$(rtt load)"
kill $wp 2>/dev/null; wait $wp 2>/dev/null

# the connection storm: idle figure first, then the storm running through the whole measurement
gp=${pids[0]}
read -r s0_50 s0_99 <<<"$(rtt_paced sidle)"
lag0=$(lag_max)
c0=$(cpu_of "$gp")
python3 test/gateway/storm.py $P $((DUR + 40)) >"$LOG/gw_storm.out" 2>&1 &
sp=$!
sleep 1
read -r s1_50 s1_99 <<<"$(rtt_paced storm)"
c1=$(cpu_of "$gp")
lag1=$(lag_max)
kill $sp 2>/dev/null; wait $sp 2>/dev/null
read -r st_r st_ok st_drop st_cpu <"$LOG/gw_storm.out"

echo "== gateway (wrk -t2 -c$CONNS -d${DUR}s, 3-node cluster, release build)"
printf "  %-34s %10s req/s   p99 %7s ms   non-2xx %s\n" "beamlet /metrics" "$m_rps" "$m_p99" "$m_bad"
printf "  %-34s %10s req/s   p99 %7s ms   non-2xx %s\n" "beamlet /api/v1/nodes" "$n_rps" "$n_p99" "$n_bad"
printf "  %-34s %10s req/s   p99 %7s ms   non-2xx %s\n" "node_exporter /metrics" "$e_rps" "$e_p99" "$e_bad"
awk -v a="$m_rps" -v b="$e_rps" 'BEGIN { printf "  ratio beamlet/node_exporter /metrics req/s: %.2f\n", a / b }'
echo "  bytes per scrape: beamlet $(curl -s http://127.0.0.1:$P/metrics | wc -c), node_exporter $(curl -s http://127.0.0.1:$NEP/metrics | wc -c)"
printf "  BEAM gen_server:call to the gateway, idle HTTP:       p50 %6s us  p99 %6s us\n" "$r0_50" "$r0_99"
printf "  BEAM gen_server:call to the gateway, HTTP under wrk:  p50 %6s us  p99 %6s us\n" "$r1_50" "$r1_99"
awk -v a="$r1_50" -v b="$r0_50" -v c="$r1_99" -v d="$r0_99" 'BEGIN { printf "  ratio loaded/idle: p50 %.2f, p99 %.2f\n", a / b, c / d }'
printf "  BEAM gen_server:call, 10 ms apart, no storm:           p50 %6s us  p99 %6s us\n" "$s0_50" "$s0_99"
printf "  BEAM gen_server:call, 10 ms apart, 1000-conn storm:    p50 %6s us  p99 %6s us\n" "$s1_50" "$s1_99"
awk -v a="$s1_50" -v b="$s0_50" -v c="$s1_99" -v d="$s0_99" 'BEGIN { printf "  ratio storm/no storm: p50 %.2f, p99 %.2f\n", a / b, c / d }'
awk -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" -v ok="$st_ok" -v dr="$st_drop" -v r="$st_r" -v cc="$st_cpu" -v l0="$lag0" -v l1="$lag1" 'BEGIN {
    printf "  storm: %d rounds, %d answered 200, %d dropped; gateway CPU %.2f ms per answer (client %s s CPU); loop lag max %s ms before, %s ms after\n", r, ok, dr, (ok > 0 ? 1000 * (c1 - c0) / hz / ok : 0), cc, l0, l1 }'
