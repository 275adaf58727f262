#!/usr/bin/env bash
# demo.sh - `make run`: a local beamlet cluster a newcomer understands in a minute.
# EPMD, one coordinator and two agent C nodes, one erl node running the Erlang shim application,
# a status table refreshed until Ctrl-C, and the next commands to try. Everything on 127.0.0.1.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$ROOT/priv/beamlet
HOST=$(hostname -s)
LOGS=$ROOT/build/demo
COOKIE_FILE=${HOME:-/root}/.erlang.cookie
CLUSTER=demo
mkdir -p "$LOGS"
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
pgrep -x epmd >/dev/null || { echo "demo: starting epmd"; epmd -daemon; }
[ -f "$COOKIE_FILE" ] || { tr -dc A-Z </dev/urandom | head -c 20 >"$COOKIE_FILE"; chmod 400 "$COOKIE_FILE"; }
COOKIE=$(cat "$COOKIE_FILE")

for n in coord1 agent1 agent2 shim; do
    if epmd -names 2>/dev/null | grep -q "^name $n at"; then
        echo "demo: a node named $n is already running on this host (epmd -names); stop it first"
        exit 1
    fi
done

PIDS=()
stop() {
    echo
    echo "demo: stopping (SIGTERM: nodes announce leaving, then left)"
    [ -n "${NAP:-}" ] && kill "$NAP" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait "${PIDS[@]}" 2>/dev/null
    echo "demo: stopped; logs in $LOGS"
    exit 0
}
trap stop INT TERM

start() { # name role [join]
    "$BIN" node --sname "$1" --cookie "$COOKIE" --role "$2" --cluster "$CLUSTER" \
        ${3:+--join "$3"} --capabilities "$4" >"$LOGS/$1.log" 2>&1 &
    PIDS+=($!)
}
start coord1 coordinator "" scheduling
start agent1 agent "coord1@$HOST" gpu,camera
start agent2 agent "coord1@$HOST" sensors

# the BEAM side: the shim application, connected to the three C nodes
erl -sname shim -setcookie "$COOKIE" -noshell -pa "$ROOT/erlang_shim/ebin" -eval "
    {ok, _} = application:ensure_all_started(beamlet),
    [ok = beamlet:connect(N) || N <- ['coord1@$HOST', 'agent1@$HOST', 'agent2@$HOST']],
    receive stop -> ok end." >"$LOGS/shim.log" 2>&1 &
PIDS+=($!)

echo "demo: starting coord1, agent1, agent2 and an erl node with the shim; waiting for a leader"
for _ in $(seq 1 60); do
    st=$("$BIN" cluster status --node "coord1@$HOST" --cookie "$COOKIE" --format json 2>/dev/null)
    n=$(grep -o '"active": [0-9]*' <<<"$st" | grep -o '[0-9]*$')
    [ "${n:-0}" -ge 4 ] && grep -q '"leader": "' <<<"$st" && break
    sleep 0.25
done

next_steps() {
    cat <<EON

Try (the cookie is in $COOKIE_FILE, so these need no --cookie):
  priv/beamlet nodes list --node coord1@$HOST            members, roles, states
  priv/beamlet cluster status --node coord1@$HOST        leader, health
  priv/beamlet info agent1@$HOST                         one node's facts
  erl -sname me -eval 'io:format("~p~n", [gen_server:call({beamlet_cluster, coord1@$HOST}, members)]).'
  erl -sname me -pa erlang_shim/ebin -eval 'application:ensure_all_started(beamlet), io:format("~p~n", [beamlet:call(agent1@$HOST, beamlet, info)]).'
  kill -9 \$(pgrep -f 'sname agent2 ')                    watch agent2 go suspected, then failed
Logs: $LOGS/*.log      Ctrl-C stops everything.
EON
}

while true; do
    if [ -t 1 ]; then printf '\033[H\033[2J'; fi
    echo "beamlet demo cluster '$CLUSTER' on $HOST  ($(date +%T))"
    echo
    "$BIN" nodes list --node "coord1@$HOST" --cookie "$COOKIE" 2>&1
    echo
    "$BIN" cluster status --node "coord1@$HOST" --cookie "$COOKIE" 2>&1 | grep -E "leader|health"
    next_steps
    if [ -t 1 ]; then sleep 2 & else sleep 3600 & fi
    NAP=$!
    wait "$NAP"
done
