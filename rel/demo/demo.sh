#!/usr/bin/env bash
# demo.sh [--fast] - `make demo`: what beamlet does, in about two minutes, on this machine.
# Three coordinators, four agents with different capabilities, a gateway, and an erl node running
# the Erlang shim; services registered and discovered, service calls, pub/sub messages received;
# then, narrated and timed: kill -9 of an agent (detected, its services removed, calls fail over),
# kill -9 of the leader (a new leader, a new term), a partition of one coordinator (SIGSTOP: the
# majority suspects it and keeps its leader), each healed until the cluster is healthy again. It
# ends with a table of every step, what happened and how long it took. Ctrl-C stops everything.
# --fast skips the pauses meant for reading (the test runs it so, unattended, and checks the table).
# Everything binds to 127.0.0.1. Logs: build/demo-tour/.
set -u
FAST=0
[ "${1:-}" = --fast ] && FAST=1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=${DEMO_BIN:-$ROOT/priv/beamlet}
H=$(hostname -s)
LOGS=$ROOT/build/demo-tour
EBIN=$LOGS/ebin
CLUSTER=tour
mkdir -p "$LOGS" "$EBIN"
rm -f "$LOGS"/*.log
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
COOKIE_FILE=${HOME:-/root}/.erlang.cookie
[ -f "$COOKIE_FILE" ] || { tr -dc A-Z </dev/urandom | head -c 20 >"$COOKIE_FILE"; chmod 400 "$COOKIE_FILE"; }
COOKIE=${DEMO_COOKIE:-$(cat "$COOKIE_FILE")}
# quick timings so failures show in seconds (the dev template's values)
TIMING=(--heartbeat-interval-ms 500 --failure-threshold 3 --election-timeout-ms 1000)

COORDS=(coord1 coord2 coord3)
AGENTS=(cam1 cam2 sensor1 store1)
declare -A CAPS=([cam1]=gpu,camera [cam2]=camera [sensor1]=sensors,temperature [store1]=storage,ssd)
declare -A PID
ALL=("${COORDS[@]}" "${AGENTS[@]}" gw1)
STEPS=()   # "name|what happened|seconds|ok or FAILED"
FAILED=0

pgrep -x epmd >/dev/null || { echo "demo: starting epmd"; epmd -daemon; sleep 0.3; }
for n in "${ALL[@]}" tourshim; do
    if epmd -names 2>/dev/null | grep -q "^name $n at"; then
        echo "demo: a node named $n is already running on this host (epmd -names); stop it first"
        exit 1
    fi
done

stop_all() {
    for n in "${!PID[@]}"; do kill -CONT "${PID[$n]}" 2>/dev/null; kill -TERM "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null; done
}
on_int() {
    echo
    echo "demo: Ctrl-C: stopping every node (SIGTERM: they leave the cluster cleanly)"
    stop_all
    echo "demo: stopped; logs in $LOGS"
    exit 130
}
trap on_int INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
pause() { [ "$FAST" -eq 1 ] || sleep "${1:-2}"; }
say() { printf '%s\n' "$*"; }
step() { # name | what | seconds | result
    STEPS+=("$1|$2|$3|$4")
    [ "$4" = ok ] || FAILED=$((FAILED + 1))
}
# wait_until TIMEOUT_S command...: poll every 0.1 s; returns 0 when it held
wait_until() {
    local t=$1; shift
    local end; end=$(awk -v a="$(now)" -v t="$t" 'BEGIN { printf "%.3f", a + t }')
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        awk -v e="$end" -v n="$(now)" 'BEGIN { exit !(n > e) }' && return 1
        sleep 0.1
    done
}
cli() { "$BIN" "$@" --cookie "$COOKIE" --timeout 3000 2>/dev/null; }
status() { cli cluster status --node "$1@$H" --format json; }
js() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
leader() { status "$1" | js 'd.get("leader") or ""'; }
term() { status "$1" | js 'd.get("term", 0)'; }
health() { status "$1" | js 'd.get("health", "")'; }
active() { status "$1" | js 'd["states"]["active"]'; }
state_of() { # seen_from node
    cli nodes list --node "$1@$H" --format json | js "[m['state'] for m in d if m['node'] == '$2@$H'][0]"
}
is_state() { [ "$(state_of "$1" "$2")" = "$3" ]; }
is_active_count() { [ "$(active "$1")" = "$2" ]; }
# a demo_ctl function on the erl node (rel/demo/demo_ctl.erl, the coprocess SHIM), its answer
ectl() {
    local line
    echo "demo_ctl:$*." >&"${SHIM[1]}"
    IFS= read -r -t 30 line <&"${SHIM[0]}" && echo "$line"
}
providers_are() { [ "$(ectl "find('$1@$H', <<\"$2\">>)")" = "$3" ]; } # seen_from service "a b"
# (no pipeline after ectl: bash closes a coprocess's descriptors in pipeline subshells)
received_count() { local r; r=$(ectl "received()"); [ "$(grep -o "$1" <<<"$r" | wc -l)" -ge "$2" ]; }
one_leader() { # every coordinator names the same live leader
    local ls; ls=$(for c in "${COORDS[@]}"; do leader "$c"; done | sort -u)
    [ -n "$ls" ] && [ "$(wc -l <<<"$ls")" -eq 1 ]
}
leader_is() { [ "$(leader "$1")" = "$2" ]; }
has_leader_not() { l=$(leader "$1"); [ -n "$l" ] && [ "$l" != "$2@$H" ]; }

start_node() { # name role
    local n=$1 role=$2 extra=()
    [ "$role" = agent ] && extra=(--capabilities "${CAPS[$n]}")
    [ "$role" = coordinator ] && extra=(--capabilities scheduling)
    if [ "$n" = gw1 ] && "$BIN" help 2>/dev/null | grep -q -- "--http-port"; then
        extra=(--http-port "${DEMO_HTTP_PORT:-8080}" --http-address 127.0.0.1)
    fi
    "$BIN" node --sname "$n" --cookie "$COOKIE" --role "$role" --cluster "$CLUSTER" \
        --join "coord1@$H,coord2@$H,coord3@$H" "${TIMING[@]}" "${extra[@]}" >>"$LOGS/$n.log" 2>&1 &
    PID[$n]=$!
}

say "beamlet demo: 3 coordinators, 4 agents, a gateway and an erl node with the shim, on $H"
say "(logs in $LOGS; Ctrl-C stops everything)"
say ""

# ---- 1. form the cluster ----
t0=$(now)
for c in "${COORDS[@]}"; do start_node "$c" coordinator; done
for a in "${AGENTS[@]}"; do start_node "$a" agent; done
start_node gw1 gateway
erlc -Wall -o "$EBIN" rel/demo/demo_ctl.erl
coproc SHIM { exec erl -sname tourshim -setcookie "$COOKIE" -noshell -pa "$ROOT/erlang_shim/ebin" \
    -pa "$EBIN" -eval 'demo_ctl:serve()' 2>>"$LOGS/tourshim.log"; }
PID[tourshim]=$SHIM_PID
MEMBERS=$((${#ALL[@]} + 1)) # the erl node is a member too, once the shim connects
wait_until 60 is_active_count coord1 $((MEMBERS - 1))
wait_until 20 ectl "connect(['coord1@$H','coord2@$H','coord3@$H','cam1@$H','cam2@$H','sensor1@$H','store1@$H','gw1@$H'])" >/dev/null
if wait_until 30 is_active_count coord1 "$MEMBERS" && wait_until 30 has_leader_not coord1 none; then
    L=$(leader coord1)
    t=$(since "$t0")
    say "[1/8] cluster formed: $MEMBERS members active (the C nodes and the erl node), leader ${L%@*} (term $(term coord1))  ${t} s"
    step "form the cluster" "$MEMBERS members active, leader ${L%@*}" "$t" ok
else
    t=$(since "$t0")
    say "[1/8] the cluster did not form: $(status coord1)"
    step "form the cluster" "only $(active coord1) of $MEMBERS active" "$t" FAILED
fi
cli nodes list --node "coord1@$H" | sed 's/^/      /'
if "$BIN" help 2>/dev/null | grep -q -- "--http-port"; then
    say "      dashboard: http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/ (served by gw1)"
else
    say "      gw1 is a gateway node; the HTTP API and dashboard are not in this build"
fi
pause 3

# ---- 2. services registered and discovered ----
t0=$(now)
for s in "cam1 camera" "cam2 camera" "sensor1 temperature" "store1 storage"; do
    set -- $s
    ectl "reg('$1@$H', <<\"$2\">>)" >/dev/null
done
found=""
if wait_until 20 providers_are coord2 camera "cam1 cam2"; then
    found=$(ectl "find('coord2@$H', <<\"camera\">>)")
    t=$(since "$t0")
    say "[2/8] services registered from the erl node: camera on cam1 and cam2, temperature on sensor1, storage on store1"
    say "      discovered from coord2's registry: camera -> $found  ${t} s"
    step "register + discover" "camera on cam1+cam2 seen from coord2" "$t" ok
else
    t=$(since "$t0")
    say "[2/8] discovery failed: $(ectl "find('coord2@$H', <<\"camera\">>)")"
    step "register + discover" "camera not replicated to coord2" "$t" FAILED
fi
pause 3

# ---- 3. service calls ----
t0=$(now)
answers=()
for _ in 1 2 3 4; do answers+=("$(ectl "call('coord1@$H', <<\"camera\">>, 2)")"); done
t=$(since "$t0")
say "[3/8] 4 calls to service camera through coord1's registry (round robin): ${answers[*]}  ${t} s"
if [[ " ${answers[*]} " == *" cam1 "* && " ${answers[*]} " == *" cam2 "* ]]; then
    step "service calls" "answered by ${answers[*]}" "$t" ok
else
    step "service calls" "answered by ${answers[*]}" "$t" FAILED
fi
pause 3

# ---- 4. pub/sub ----
t0=$(now)
ectl "subscribe('coord1@$H', <<\"sensors.*\">>)" >/dev/null
sleep 0.5 # the subscription is replicated to the publishers' nodes
for v in 21.5 21.7 22.0; do ectl "publish('sensor1@$H', <<\"sensors.temperature\">>, $v)" >/dev/null; done
ectl "publish('store1@$H', <<\"storage.usage\">>, 73)" >/dev/null
wait_until 10 received_count sensors.temperature 3
got=$(ectl "received()")
n=$(grep -o 'sensors.temperature' <<<"$got" | wc -l)
t=$(since "$t0")
say "[4/8] the erl node subscribed to sensors.* (on coord1); sensor1 published 3 readings, store1 one storage.usage"
say "      received by the erl node: $(tr -d '\n' <<<"$got" | sed 's/  */ /g')  ${t} s"
if [ "$n" -eq 3 ] && ! grep -q storage <<<"$got"; then
    step "pub/sub" "3 of 3 sensors.* messages received, storage.* not" "$t" ok
else
    step "pub/sub" "$n sensors.* messages received" "$t" FAILED
fi
pause 3

# ---- 5. kill -9 of an agent ----
say "[5/8] kill -9 cam1 (an agent offering camera) ..."
t0=$(now)
kill -9 "${PID[cam1]}"
wait "${PID[cam1]}" 2>/dev/null
ok5=1
wait_until 30 is_state coord1 cam1 suspected || wait_until 1 is_state coord1 cam1 failed || ok5=0
ts=$(since "$t0")
wait_until 30 is_state coord1 cam1 failed || ok5=0
tf=$(since "$t0")
ans=$(ectl "call('coord1@$H', <<\"camera\">>, 2)")
ta=$(since "$t0")
wait_until 30 providers_are coord1 camera cam2 || ok5=0
tr_=$(since "$t0")
[ "$ans" = cam2 ] || ok5=0
say "      coord1 saw cam1 suspected after ${ts} s, failed after ${tf} s; a camera call at ${ta} s was answered by ${ans} (failover);"
say "      the registry dropped cam1's camera after ${tr_} s"
step "kill -9 agent cam1" "suspected ${ts}s, failed ${tf}s, call -> ${ans%@*}, entry gone ${tr_}s" "$tr_" "$([ $ok5 -eq 1 ] && echo ok || echo FAILED)"
t0=$(now)
start_node cam1 agent
okh=1
wait_until 30 is_state coord1 cam1 active || okh=0
ectl "connect(['cam1@$H'])" >/dev/null
ectl "reg('cam1@$H', <<\"camera\">>)" >/dev/null
wait_until 20 providers_are coord1 camera "cam1 cam2" || okh=0
t=$(since "$t0")
say "      healed: cam1 restarted, active again and its camera re-registered  ${t} s"
step "heal cam1" "restarted, active, camera x2 again" "$t" "$([ $okh -eq 1 ] && echo ok || echo FAILED)"
pause 3

# ---- 6. kill -9 of the leader ----
L=$(leader coord1)
LN=${L%@*}
T1=$(term coord1)
OBS=coord1
[ "$LN" = coord1 ] && OBS=coord2
say "[6/8] kill -9 the leader $LN (term $T1) ..."
t0=$(now)
kill -9 "${PID[$LN]}"
wait "${PID[$LN]}" 2>/dev/null
if wait_until 30 has_leader_not "$OBS" "$LN"; then
    t=$(since "$t0")
    L2=$(leader "$OBS")
    T2=$(term "$OBS")
    say "      $OBS sees a new leader ${L2%@*}, term $T1 -> $T2, after ${t} s"
    [ "$T2" -gt "$T1" ] && r=ok || r=FAILED
    step "kill -9 leader $LN" "new leader ${L2%@*}, term $T1 -> $T2" "$t" "$r"
else
    t=$(since "$t0")
    say "      no new leader after ${t} s: $(status "$OBS")"
    step "kill -9 leader $LN" "no new leader" "$t" FAILED
fi
t0=$(now)
start_node "$LN" coordinator
okh=1
wait_until 30 is_state "$OBS" "$LN" active || okh=0
ectl "connect(['$LN@$H'])" >/dev/null # the erl node reconnects to the new run, as a client would
L3=$(leader "$OBS")
t=$(since "$t0")
say "      healed: $LN restarted and active again; the leader stays ${L3%@*} (a rejoining node does not depose it)  ${t} s"
[ "$L3" = "$L2" ] || okh=0
step "heal $LN" "restarted, active, leader still ${L3%@*}" "$t" "$([ $okh -eq 1 ] && echo ok || echo FAILED)"
pause 3

# ---- 7. partition one coordinator ----
# the coordinator restarted in step 6 may not know the leader yet: wait until all three name it
wait_until 30 one_leader || true
L=$(leader coord1)
P=""
for c in "${COORDS[@]}"; do [ "$c@$H" != "$L" ] && P=$c && break; done
OBS=${L%@*}
T1=$(term "$OBS")
say "[7/8] partition: SIGSTOP $P (a coordinator that is not the leader: frozen, it answers nobody) ..."
t0=$(now)
kill -STOP "${PID[$P]}"
okp=1
wait_until 30 is_state "$OBS" "$P" suspected || wait_until 1 is_state "$OBS" "$P" failed || okp=0
t=$(since "$t0")
L2=$(leader "$OBS")
HL=$(health "$OBS")
[ "$L2" = "$L" ] && [ "$(term "$OBS")" = "$T1" ] && [ "$HL" = healthy ] || okp=0
say "      the majority suspects $P after ${t} s and keeps its leader ${L2%@*} (term $T1); health: $HL"
step "partition $P (SIGSTOP)" "suspected ${t}s, leader ${L2%@*} kept, $HL" "$t" "$([ $okp -eq 1 ] && echo ok || echo FAILED)"
pause 2
t0=$(now)
kill -CONT "${PID[$P]}"
okh=1
wait_until 30 is_state "$OBS" "$P" active || okh=0
wait_until 30 one_leader || okh=0
t=$(since "$t0")
L4=$(leader coord1)
T4=$(term coord1)
if [ "$L4" = "$L" ]; then
    say "      healed: SIGCONT $P: active again, every coordinator follows ${L%@*} (term $T4)  ${t} s"
    step "heal $P (SIGCONT)" "active, one leader ${L%@*} (term $T4)" "$t" "$([ $okh -eq 1 ] && echo ok || echo FAILED)"
else
    say "      healed: SIGCONT $P: active again, one leader again: ${L4%@*} (term $T4; the resumed node's"
    say "      election replaced ${L%@*}: it had missed every heartbeat while frozen)  ${t} s"
    step "heal $P (SIGCONT)" "active, one leader ${L4%@*} (term $T4, re-elected)" "$t" "$([ $okh -eq 1 ] && echo ok || echo FAILED)"
fi
pause 2

# ---- 8. final check ----
t0=$(now)
okf=1
wait_until 30 is_active_count coord1 "$MEMBERS" || okf=0
one_leader || okf=0
leaders=$(leader coord1)
HL=$(health coord1)
[ "$HL" = healthy ] || okf=0
cams=$(ectl "find('coord3@$H', <<\"camera\">>)")
[ "$cams" = "cam1 cam2" ] || okf=0
t=$(since "$t0")
say "[8/8] final: $(active coord1)/$MEMBERS active, one leader (${leaders%@*}) seen by all 3 coordinators, health $HL, camera on $cams"
step "final check" "$(active coord1)/$MEMBERS active, leader ${leaders%@*}, $HL" "$t" "$([ $okf -eq 1 ] && echo ok || echo FAILED)"

say ""
printf '%-28s %-58s %7s  %s\n' STEP "WHAT HAPPENED" TOOK RESULT
for s in "${STEPS[@]}"; do
    IFS='|' read -r a b c d <<<"$s"
    printf '%-28s %-58s %6ss  %s\n' "$a" "$b" "$c" "$d"
done
say ""
if [ "$FAILED" -eq 0 ]; then
    say "cluster healthy: yes (every step ok)"
else
    say "cluster healthy: NO ($FAILED step(s) failed; logs in $LOGS)"
fi
if [ "$FAST" -eq 0 ]; then
    say ""
    say "The cluster keeps running; try:  $BIN nodes list --node coord1@$H"
    say "                                 $BIN config show --node cam1@$H"
    say "Ctrl-C stops everything."
    while :; do sleep 3600 & wait $!; done
fi
stop_all
[ "$FAILED" -eq 0 ]
