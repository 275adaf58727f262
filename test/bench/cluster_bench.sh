#!/usr/bin/env bash
# cluster_bench.sh - cluster figures for `make bench` (figures and ratios, never pass/fail):
#  1. failure detection: kill -9 -> `failed` on a survivor, vs heartbeat_interval x failure_threshold
#  2. a 50-node C-only cluster: time from the first exec until every node lists all 50 as active,
#     and RSS per node once it has converged
#  3. leader failover: kill -9 of the leader -> a new leader, vs the election timeout
# Times come from the nodes' own event logs (ms timestamps), not from polling.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BEAMLET_BIN:-$ROOT/priv/beamlet}
OUT=${BL_BENCH_DIR:-$ROOT/build/bench}
mkdir -p "$OUT"
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
COOKIE=cb_$$
HOST=$(hostname -s)
pgrep -x epmd >/dev/null || epmd -daemon
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
now_ms() { date +%s%3N; }
start() { # name role cluster join extra...
    local name=$1 role=$2 cluster=$3 join=$4; shift 4
    "$BIN" node --sname "$name" --cookie "$COOKIE" --role "$role" --cluster "$cluster" \
        ${join:+--join "$join"} "$@" >>"$OUT/$name.log" 2>&1 &
    PIDS+=($!)
    LASTPID=$!
    disown $!
}
events() { "$BIN" cluster events --node "$1@$HOST" --cookie "$COOKIE" --timeout 3000 2>/dev/null; }
# time_ms of the first event matching: awk over the JSON event objects
first_event_ms() { # node after_ms event-field-regex...
    events "$1" | awk -v after="$2" -v want="$3" '
        /^  {/{obj=""} {obj=obj $0} /"time_ms":/{t=$2}
        /^  }/{ gsub(/,/, "", t); if (t + 0 >= after + 0 && obj ~ want) { print t; exit } }'
}
median() { sort -n | awk '{a[NR]=$1} END{ if (NR) print a[int((NR+1)/2)]; else print "nan" }'; }

echo "== failure detection (heartbeat 300 ms x threshold 3 = 900 ms)"
HB=300 TH=3
T=$((HB * TH))
: >"$OUT/detect.txt"
for r in 1 2 3 4 5; do
    start "fa$r" agent "d$r$$" "" --heartbeat-interval-ms $HB --failure-threshold $TH
    start "fb$r" agent "d$r$$" "fa$r@$HOST" --heartbeat-interval-ms $HB --failure-threshold $TH
    victim=$LASTPID
    sleep 2
    k=$(now_ms); kill -9 "$victim"
    sleep 2.5
    t=$(first_event_ms "fa$r" "$k" "\"node\": \"fb$r@.*\"to\": \"failed\"")
    [ -n "$t" ] && echo $((t - k)) >>"$OUT/detect.txt"
done
DET=$(median <"$OUT/detect.txt")
echo "   kill -9 -> failed: $(tr '\n' ' ' <"$OUT/detect.txt")ms; median $DET ms"

echo "== leader failover (election timeout 1500 ms)"
: >"$OUT/failover.txt"
for r in 1 2 3; do
    cl="f$r$$"
    for i in 1 2 3; do start "lc$r$i" coordinator "$cl" "lc${r}1@$HOST"; eval "LP$i=$LASTPID"; done
    leader=""
    for _ in $(seq 1 40); do
        leader=$("$BIN" cluster status --node "lc${r}1@$HOST" --cookie "$COOKIE" --format json 2>/dev/null |
                 grep -o '"leader": "[^"]*"' | cut -d'"' -f4)
        [ -n "$leader" ] && break; sleep 0.25
    done
    [ -z "$leader" ] && continue
    li=${leader#lc$r}; li=${li%%@*}
    eval "lp=\$LP$li"
    survivor=lc${r}1; [ "$li" = 1 ] && survivor=lc${r}2
    sleep 0.5
    k=$(now_ms); kill -9 "$lp"
    sleep 5
    t=$(first_event_ms "$survivor" "$k" '"event": "leader_changed".*"leader": "lc')
    [ -n "$t" ] && echo $((t - k)) >>"$OUT/failover.txt"
done
FO=$(median <"$OUT/failover.txt")
echo "   kill -9 of leader -> new leader: $(tr '\n' ' ' <"$OUT/failover.txt")ms; median $FO ms"

echo "== 50-node C-only cluster"
N=50
cl="big$$"
t0=$(now_ms)
start "n1_$$" agent "$cl" ""
for i in $(seq 2 $N); do start "n${i}_$$" agent "$cl" "n1_$$@$HOST"; done
NODES=$(for i in $(seq 1 $N); do printf "'n%s_%s@%s' " "$i" "$$" "$HOST"; done)
CONV=$(erl -sname "bench_obs_$$" -setcookie "$COOKIE" -noshell -eval "
    Nodes = [$(echo $NODES | sed 's/ /,/g')],
    T0 = $t0,
    Ok = fun(N) -> case catch gen_server:call({beamlet_cluster, N}, members, 2000) of
                       L when is_list(L) ->
                           length([x || #{kind := beamlet, state := active} <- L]) =:= $N;
                       _ -> false end end,
    Loop = fun Loop(Pending) ->
        case [N || N <- Pending, not Ok(N)] of
            [] -> io:format(\"~b\", [os:system_time(millisecond) - T0]);
            Left -> case os:system_time(millisecond) - T0 > 60000 of
                        true -> io:format(\"timeout(~b left)\", [length(Left)]);
                        false -> timer:sleep(20), Loop(Left) end end end,
    Loop(Nodes), halt().")
RSS=0
for p in "${PIDS[@]}"; do
    v=$(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null); RSS=$((RSS + ${v:-0}))
done
ALIVE=$(for p in "${PIDS[@]}"; do [ -d /proc/$p ] && echo; done | wc -l)
PER=$((RSS / (ALIVE > 0 ? ALIVE : 1)))
echo "   $N nodes agree on membership after $CONV ms (from the first exec); RSS per node $PER kB over $ALIVE live nodes"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0 && a ~ /^[0-9.]+$/) printf "%.2f", a / b; else print "n/a" }'; }
{
    printf "%-44s %12s %12s %8s  %s\n" "cluster figure" "measured" "reference" "ratio" "target"
    printf "%-44s %9s ms %9s ms %8s  %s\n" "failure detection (kill -9 -> failed)" "$DET" "$T" "$(ratio "$DET" "$T")" "<= 1.20 (hb x threshold +20%)"
    printf "%-44s %9s ms %9s ms %8s  %s\n" "leader failover (kill -9 -> new leader)" "$FO" 1500 "$(ratio "$FO" 1500)" "<= 2.00 election timeouts"
    printf "%-44s %9s ms %9s ms %8s  %s\n" "50-node cluster agrees on membership" "$CONV" 3000 "$(ratio "$CONV" 3000)" "<= 1.00 (3 s)"
    printf "%-44s %9s kB %9s kB %8s  %s\n" "RSS per node at 50 nodes" "$PER" 3072 "$(ratio "$PER" 3072)" "<= 1.00 (3 MB)"
} | tee "$OUT/cluster-table.txt"
