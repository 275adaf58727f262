#!/usr/bin/env bash
# partition_netns.sh - leader election across a real network partition.
#
# Three coordinators, each in its own network namespace, joined by a bridge in a fourth. The
# current leader's link is taken down (a 2|1 split): the majority side must elect a leader, the
# isolated node must have none and report `degraded`. After healing exactly one leader remains,
# and no two nodes ever claimed leadership for the same term (checked from all event logs).
# The cluster configuration across the same split: the isolated minority refuses writes (no
# leader), the majority accepts them, and after the heal the minority holds the majority's
# version (nothing of the refused write anywhere). Then a follower is cut off and healed: the
# leader and its term stay.
# Needs root (CI runs as root); otherwise skipped. Appends "partition P F" to $BL_RESULTS.
set -u
SUITE=partition
. "$(dirname "$0")/../lib/checks.sh"
BIN=$BEAMLET_BIN
LOGS=$BL_LOG_DIR
COOKIE=part_$$
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    echo "partition: skipped: needs root and iproute2"; record; exit 0
fi
NS=blp$$
HUB=${NS}h
SUB=10.213.$(($$ % 200 + 20))
NAMES=(a b c)
declare -A IP NODE PID
cleanup() {
    for x in "${NAMES[@]}"; do [ -n "${PID[$x]:-}" ] && kill -TERM "${PID[$x]}" 2>/dev/null; done
    for _ in $(seq 1 40); do
        alive=0
        for x in "${NAMES[@]}"; do [ -n "${PID[$x]:-}" ] && kill -0 "${PID[$x]}" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.25
    done
    for x in "${NAMES[@]}"; do
        [ -n "${PID[$x]:-}" ] && kill -9 "${PID[$x]}" 2>/dev/null
        for p in $(ip netns pids "$NS$x" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$NS$x" 2>/dev/null
    done
    ip netns del "$HUB" 2>/dev/null
}
trap cleanup EXIT

ip netns add "$HUB" && ip -n "$HUB" link add br0 type bridge && ip -n "$HUB" link set br0 up &&
    ip -n "$HUB" link set lo up || { bad "cannot create namespaces"; record; exit 1; }
i=1
for x in "${NAMES[@]}"; do
    IP[$x]=$SUB.$i
    NODE[$x]=c$x@${IP[$x]}
    ip netns add "$NS$x"
    ip -n "$HUB" link add "v${x}h" type veth peer name "v$x" netns "$NS$x"
    ip -n "$HUB" link set "v${x}h" master br0 up
    ip -n "$NS$x" addr add "${IP[$x]}/24" dev "v$x"
    ip -n "$NS$x" link set "v$x" up
    ip -n "$NS$x" link set lo up
    ip netns exec "$NS$x" epmd -daemon
    i=$((i + 1))
done
sleep 0.5
SEEDS="${NODE[a]},${NODE[b]},${NODE[c]}"
for x in "${NAMES[@]}"; do
    ip netns exec "$NS$x" env BEAMLET_LISTEN_ADDRESS=0.0.0.0 "$BIN" node --name "${NODE[$x]}" \
        --cookie "$COOKIE" --role coordinator --cluster part --join "$SEEDS" \
        --heartbeat-interval-ms 300 --election-timeout-ms 800 --net-ticktime 3 \
        --reconnect-backoff-max-ms 500 --log-level debug >"$LOGS/partition-$x.log" 2>&1 &
    PID[$x]=$!
    disown "${PID[$x]}"
done

status() { # ns-letter -> "leader health term"
    local x=$1 out
    out=$(ip netns exec "$NS$x" env BEAMLET_LOG_LEVEL=error "$BIN" cluster status --node "${NODE[$x]}" \
        --cookie "$COOKIE" --format json --timeout 2000 2>/dev/null) || { echo "down - -"; return; }
    local leader health term
    leader=$(grep -o '"leader": [^,]*' <<<"$out" | sed 's/"leader": //; s/"//g')
    health=$(grep -o '"health": "[a-z]*"' <<<"$out" | sed 's/.*: "//; s/"//')
    term=$(grep -o '"term": [0-9]*' <<<"$out" | sed 's/.*: //')
    echo "$leader $health $term"
}
wait_for() { # seconds, description, command
    local t=$1 what=$2; shift 2
    for _ in $(seq 1 $((t * 4))); do "$@" && { ok "$what"; return 0; }; sleep 0.25; done
    bad "$what"; for x in "${NAMES[@]}"; do echo "    $x: $(status "$x")"; done; return 1
}
same_leader() { # letters...: all report the same non-null leader
    local first="" s
    for x in "$@"; do
        s=$(status "$x"); s=${s%% *}
        [ "$s" = "null" ] || [ "$s" = "down" ] || [ -z "$s" ] && return 1
        [ -z "$first" ] && first=$s
        [ "$s" = "$first" ] || return 1
    done
    LEADER=$first
}

cc() { # ns-letter, config args...: the cluster configuration CLI run inside that namespace
    local x=$1; shift
    ip netns exec "$NS$x" env BEAMLET_LOG_LEVEL=error "$BIN" config "$@" --node "${NODE[$x]}" \
        --cookie "$COOKIE" --timeout 10000 2>&1
}
cc_value() { # ns-letter, key, expected value
    [ "$(cc "$1" get "$2")" = "$3" ]
}

echo "partition: 3 coordinators in namespaces $NS{a,b,c}"
wait_for 30 "all three agree on one leader" same_leader a b c || { record; exit 1; }
out=$(cc a set failure_threshold 4) && wait_for 20 "config set before the split reaches all three" \
    eval 'cc_value a failure_threshold 4 && cc_value b failure_threshold 4 && cc_value c failure_threshold 4' ||
    bad "config set before the split: $out"
L=$LEADER
for x in "${NAMES[@]}"; do [ "${NODE[$x]}" = "$L" ] && ISO=$x; done
REST=(); for x in "${NAMES[@]}"; do [ "$x" != "$ISO" ] && REST+=("$x"); done
echo "  leader is $L: isolating it (2|1 split)"
ip -n "$HUB" link set "v${ISO}h" down

majority_ok() { same_leader "${REST[@]}" && [ "$LEADER" != "$L" ]; }
wait_for 20 "majority side elects a new leader" majority_ok
minority_ok() { local s; s=$(status "$ISO"); [ "${s%% *}" = "null" ] && [[ "$s" == *" degraded "* ]]; }
wait_for 20 "isolated node has no leader and reports degraded" minority_ok
healthy_ok() { local s; s=$(status "${REST[0]}"); [[ "$s" == *" healthy "* ]]; }
sleep 2
# the isolated node must still have no leader after a while (no minority election)
minority_ok && ok "isolated node stays leaderless" || bad "isolated node stays leaderless"
out=$(cc "$ISO" set failure_threshold 5); rc=$?
[ $rc -eq 1 ] && grep -q "no leader" <<<"$out" && cc_value "$ISO" failure_threshold 4 &&
    ok "the isolated minority refuses a config write ($out)" ||
    bad "minority config write: rc $rc: $out"
out=$(cc "${REST[0]}" set failure_threshold 6) && grep -q "version" <<<"$out" &&
    ok "the majority side accepts a config write ($out)" || bad "majority config write: $out"

echo "  healing"
ip -n "$HUB" link set "v${ISO}h" up
wait_for 40 "after heal all three agree on exactly one leader" same_leader a b c
wait_for 30 "after heal the minority holds the majority's config version" \
    eval 'cc_value "$ISO" failure_threshold 6'
hist=$(cc "$ISO" history failure_threshold)
! grep -q " 5 " <<<"$hist" && grep -q -- "-> 6" <<<"$hist" &&
    ok "history on the former minority: the majority's change, not the refused one" ||
    bad "history after heal: $hist"

# a follower cut off and healed (the network's SIGSTOP): it has no leader while alone, and after the
# heal the leader and its term are the ones the majority kept (pre-vote: it cannot depose it)
same_leader a b c
L2=$LEADER
for x in "${NAMES[@]}"; do [ "${NODE[$x]}" != "$L2" ] && FOL=$x; done
for x in "${NAMES[@]}"; do [ "${NODE[$x]}" = "$L2" ] && LX=$x; done
T2=$(status "$LX"); T2=${T2##* }
echo "  isolating follower ${NODE[$FOL]} (leader $L2, term $T2)"
ip -n "$HUB" link set "v${FOL}h" down
fol_alone() { local s; s=$(status "$FOL"); [ "${s%% *}" = "null" ] && [[ "$s" == *" degraded "* ]]; }
wait_for 20 "the isolated follower has no leader and reports degraded" fol_alone
sleep 3 # several election timeouts alone
ip -n "$HUB" link set "v${FOL}h" up
same_l2() { same_leader a b c && [ "$LEADER" = "$L2" ]; }
wait_for 40 "after the heal all three follow the same leader as before" same_l2
T3=$(status "$LX"); T3=${T3##* }
[ "$T3" = "$T2" ] && ok "the leader's term did not move (term $T2)" || bad "term moved: $T2 -> $T3"

# no two nodes ever claimed leadership for the same term
claims=$(for x in "${NAMES[@]}"; do
    ip netns exec "$NS$x" env BEAMLET_LOG_LEVEL=error "$BIN" cluster events --node "${NODE[$x]}" \
        --cookie "$COOKIE" --timeout 2000 2>/dev/null |
        awk '/"event": "leader_changed"/{lc=1} /"leader":/{l=$2} /"term":/{t=$2}
             /^  }/{ if (lc && l != "null,") print t, l; lc=0; l=""; t="" }'
done | tr -d ',"' | sort -u)
dups=$(awk '{print $1}' <<<"$claims" | sort | uniq -d)
if [ -n "$claims" ] && [ -z "$dups" ]; then
    ok "one leader per term in every event log ($(wc -l <<<"$claims") claims)"
else
    bad "one leader per term (claims: $(tr '\n' ';' <<<"$claims"))"
fi
suite_done
