#!/usr/bin/env bash
# run.sh - the convergence-under-churn checker (bl_churn.erl): 5 C-only beamlet nodes, each in
# its own network namespace on one bridge, and the checker (an erl node) in the bridge's
# namespace. CHURN_SECONDS (default 60) of random registry/pub-sub/global operations from every
# node while nodes are kill -9'ed and restarted, SIGSTOPped and resumed, or cut off and
# reconnected; then quiet, and the tables are checked. CHURN_SEED replays a run.
# Needs root (CI runs as root); otherwise skipped. Appends "churn P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BIN=${BEAMLET_BIN:-$ROOT/build/asan/beamlet}
LOGS=${BL_LOG_DIR:-$ROOT/build/test-logs}
SECS=${CHURN_SECONDS:-60}
SEED=${CHURN_SEED:-$(( $(date +%s%N) % 1000000007 ))}
record() { [ -n "${BL_RESULTS:-}" ] && echo "churn $1 $2" >>"$BL_RESULTS"; }
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    echo "churn: skipped: needs root and iproute2"; record 0 0; exit 0
fi
NS=blc$$
HUB=${NS}h
SUB=10.214.$(($$ % 200 + 20))
COOKIE=churn_$$
WORK=$LOGS/churn.$$
EBIN=$ROOT/build/churn_ebin
mkdir -p "$WORK" "$EBIN"
NAMES=(a b c d e)
cleanup() {
    for x in "${NAMES[@]}"; do
        for p in $(ip netns pids "$NS$x" 2>/dev/null); do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    done
    sleep 1
    for x in "${NAMES[@]}"; do
        for p in $(ip netns pids "$NS$x" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$NS$x" 2>/dev/null
    done
    for p in $(ip netns pids "$HUB" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$HUB" 2>/dev/null
}
trap cleanup EXIT
erlc -o "$EBIN" test/churn/bl_churn.erl || { record 0 1; exit 1; }
ip netns add "$HUB" && ip -n "$HUB" link add br0 type bridge && ip -n "$HUB" link set br0 up &&
    ip -n "$HUB" link set lo up && ip -n "$HUB" addr add "$SUB.100/24" dev br0 ||
    { echo "churn: cannot create namespaces"; record 0 1; exit 1; }
ip netns exec "$HUB" epmd -daemon
SEEDS=""
i=1
for x in "${NAMES[@]}"; do
    ip netns add "$NS$x"
    ip -n "$HUB" link add "v${x}h" type veth peer name "v$x" netns "$NS$x"
    ip -n "$HUB" link set "v${x}h" master br0 up
    ip -n "$NS$x" addr add "$SUB.$i/24" dev "v$x"
    ip -n "$NS$x" link set "v$x" up
    ip -n "$NS$x" link set lo up
    ip netns exec "$NS$x" epmd -daemon
    SEEDS="$SEEDS${SEEDS:+,}c$x@$SUB.$i"
    i=$((i + 1))
done
sleep 0.5
CFG=$WORK/churn.cfg
{
    echo "{seed, $SEED}."
    echo "{seconds, $SECS}."
    echo "{result, \"$WORK/result\"}."
    echo "{nodes, ["
    i=1
    for x in "${NAMES[@]}"; do
        mkdir -p "$WORK/data-$x"
        cmd="ip netns exec $NS$x env BEAMLET_LISTEN_ADDRESS=0.0.0.0 $BIN node --name c$x@$SUB.$i --cookie $COOKIE --role agent --cluster churn --join $SEEDS --global-mode beamlet --data-dir $WORK/data-$x --heartbeat-interval-ms 300 --failure-threshold 3 --net-ticktime 3 --reconnect-backoff-max-ms 500 >>$LOGS/churn-$x.log 2>&1 & echo \$!"
        sep=","; [ "$x" = e ] && sep=""
        echo "  {$x, 'c$x@$SUB.$i', \"$cmd\", \"ip -n $HUB link set v${x}h down\", \"ip -n $HUB link set v${x}h up\"}$sep"
        i=$((i + 1))
    done
    echo "]}."
} >"$CFG"
ip netns exec "$HUB" erl -name "churn@$SUB.100" -setcookie "$COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval "bl_churn:main([\"$CFG\"])" 2>&1 | tee "$LOGS/churn.log"
if [ -s "$WORK/result" ]; then
    read -r _ p f <"$WORK/result"; record "$p" "$f"
else
    echo "churn: the checker ended without a result (seed $SEED)"; record 0 1; f=1
fi
[ "${f:-1}" -eq 0 ]
