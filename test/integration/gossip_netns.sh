#!/usr/bin/env bash
# gossip_netns.sh - libcluster-compatible gossip discovery, end to end, in a private network
# namespace (multicast on its loopback, its own EPMD), so nothing leaks onto the host network.
#
# Checks: two plain nodes find each other; two nodes with a secret find each other, and find a
# real BEAM node that runs libcluster's Gossip socket setup and packet code (lcgossip.erl below,
# written after bitwalker/libcluster lib/strategy/gossip.ex) and decodes our heartbeats; a node
# with another secret stays alone and the receivers log a warning; garbage sent to the group is
# logged once per sender (rate limit) and breaks nothing. Needs root (ip netns); otherwise skipped.
# Env: BEAMLET_BIN, BL_COOKIE, BL_LOG_DIR, BL_RESULTS. Appends "gossip_netns PASSED FAILED".
set -u
cd "$(dirname "$0")/../.."
RESULTS=${BL_RESULTS:-/dev/null}
if [ "$(id -u)" != 0 ]; then
    echo "gossip_netns: skipped: needs root"
    echo "gossip_netns 0 0" >>"$RESULTS"
    exit 0
fi
for tool in ip python3 epmd erl erlc; do
    if ! command -v "$tool" >/dev/null; then
        echo "gossip_netns: skipped: $tool not found"
        echo "gossip_netns 0 0" >>"$RESULTS"
        exit 0
    fi
done
BIN=$(realpath "${BEAMLET_BIN:-priv/beamlet}")
COOKIE=${BL_COOKIE:-beamlet_test_cookie}
LOGS=${BL_LOG_DIR:-build/test-logs}/gossip_netns
mkdir -p "$LOGS"
rm -f "$LOGS"/*
NS=blg$$
HOST=$(hostname -s)
GROUP=233.252.1.32
P_PLAIN=45892 # libcluster's default port
P_SECRET=45893
SECRET=s3cr3t-gossip
PIDS=()
pass=0
fail=0

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    # anything still in the namespace was started by this script (EPMD, erl)
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null; done
    sleep 0.2
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    [ -n "${TMPD:-}" ] && rm -rf "$TMPD"
}
trap cleanup EXIT INT TERM

ok() { pass=$((pass + 1)); echo "  ok: $*"; }
ko() { fail=$((fail + 1)); echo "  FAILED: $*"; }
nsx() { ip netns exec "$NS" "$@"; }

# Poll cmd (a function name + args) every 0.5 s for up to $1 seconds.
wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    while [ $SECONDS -lt $end ]; do
        "$@" && return 0
        sleep 0.5
    done
    "$@"
}
connections() { nsx "$BIN" info "$1@$HOST" --cookie "$COOKIE" 2>/dev/null | grep '^connections'; }
connected() { connections "$1" | grep -q "\"$2@$HOST\""; }
not_connected() { ! connected "$1" "$2"; }
ready() { grep -qs "ready:" "$LOGS/$1.log"; }
log_has() { grep -qs -- "$2" "$LOGS/$1.log"; }

start_node() { # name port [secret]
    local args=(node --sname "$1" --cookie "$COOKIE" --gossip true --epmd-local false
        --gossip-if 127.0.0.1 --gossip-port "$2" --gossip-interval-ms 500)
    [ -n "${3:-}" ] && args+=(--gossip-secret "$3")
    nsx "$BIN" "${args[@]}" >"$LOGS/$1.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 ready "$1" || ko "$1 did not start (see $LOGS/$1.log)"
}

# Garbage datagrams from one socket to the group (every member receives them).
send_garbage() { # port count
    nsx python3 - "$GROUP" "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
pkts = [b"garbage", b"heartbeat::", b"heartbeat::\x83t\x00\x00\x00\x01d\x00\x04noded\x00\xffa@b",
        bytes(range(256)) * 4, b"\x00" * 48]
for i in range(int(sys.argv[3])):
    s.sendto(pkts[i % len(pkts)], (sys.argv[1], int(sys.argv[2])))
EOF
}

echo "gossip_netns: namespace $NS, host $HOST"
ip netns add "$NS" || { echo "gossip_netns: cannot create a namespace"; echo "gossip_netns 0 1" >>"$RESULTS"; exit 1; }
nsx ip link set lo up
nsx ip link set lo multicast on
nsx ip route add 224.0.0.0/4 dev lo
nsx epmd -daemon
sleep 0.5

# A BEAM node doing exactly what libcluster's Gossip does with multicast_if and a secret.
TMPD=$(mktemp -d)
cat >"$TMPD/lcgossip.erl" <<'EOF'
%% lcgossip.erl - libcluster's Cluster.Strategy.Gossip (lib/strategy/gossip.ex) socket options
%% and packet code redone in Erlang for the test: multicast_if 127.0.0.1, a secret, 500 ms beat.
-module(lcgossip).
-export([start/1]).
start([Port0, Secret0]) ->
    Port = list_to_integer(atom_to_list(Port0)),
    Secret = atom_to_binary(Secret0),
    Group = {233, 252, 1, 32},
    {ok, S} = gen_udp:open(Port, [binary, {active, true}, {ip, {0, 0, 0, 0}}, {reuseaddr, true},
                                  {broadcast, true}, {multicast_if, {127, 0, 0, 1}},
                                  {multicast_ttl, 1}, {multicast_loop, true},
                                  {add_membership, {Group, {127, 0, 0, 1}}},
                                  {raw, 16#FFFF, 16#0200, <<1:32/native>>}]),
    self() ! heartbeat,
    loop(S, Group, Port, Secret).
loop(S, Group, Port, Secret) ->
    receive
        heartbeat ->
            Msg = <<"heartbeat::", (term_to_binary(#{node => node()}))/binary>>,
            IV = crypto:strong_rand_bytes(16),
            Key = crypto:hash(sha256, Secret),
            CT = crypto:crypto_one_time(aes_256_cbc, Key, IV, pad(Msg), true),
            gen_udp:send(S, Group, Port, [IV, CT]),
            erlang:send_after(500, self(), heartbeat);
        {udp, _, _, _, <<IV:16/binary, CT/binary>>} ->
            Key = crypto:hash(sha256, Secret),
            case catch unpad(crypto:crypto_one_time(aes_256_cbc, Key, IV, CT, false)) of
                {ok, <<"heartbeat::", Rest/binary>>} ->
                    Self = node(),
                    case catch binary_to_term(Rest) of
                        #{node := Self} -> ok;
                        #{node := N} when is_atom(N) -> io:format("heartbeat from ~s~n", [N]);
                        _ -> ok
                    end;
                _ -> ok
            end;
        _ -> ok
    end,
    loop(S, Group, Port, Secret).
pad(M) -> P = 16 - byte_size(M) rem 16, <<M/binary, (binary:copy(<<P>>, P))/binary>>.
unpad(<<>>) -> error;
unpad(M) ->
    P = binary:last(M), Sz = byte_size(M),
    case P =< 16 andalso binary_part(M, Sz, -P) =:= binary:copy(<<P>>, P) of
        true -> {ok, binary_part(M, 0, Sz - P)};
        false -> error
    end.
EOF
erlc -o "$TMPD" "$TMPD/lcgossip.erl" || ko "cannot compile lcgossip.erl"

echo "-- plain: gA, gB on port $P_PLAIN"
start_node gA $P_PLAIN
start_node gB $P_PLAIN
if wait_for 15 connected gA gB; then ok "gA sees gB"; else ko "gA does not see gB: $(connections gA)"; fi
if wait_for 5 connected gB gA; then ok "gB sees gA"; else ko "gB does not see gA: $(connections gB)"; fi

echo "-- secret: gS1, gS2 and a libcluster-like BEAM node gE on port $P_SECRET; gX with another secret"
start_node gS1 $P_SECRET "$SECRET"
start_node gS2 $P_SECRET "$SECRET"
start_node gX $P_SECRET "not-$SECRET"
nsx erl -sname gE -setcookie "$COOKIE" -noshell -pa "$TMPD" -s lcgossip start $P_SECRET "$SECRET" \
    >"$LOGS/gE.log" 2>&1 &
PIDS+=($!)
if wait_for 15 connected gS1 gS2; then ok "gS1 sees gS2"; else ko "gS1 does not see gS2: $(connections gS1)"; fi
if wait_for 15 connected gS1 gE; then ok "gS1 found the libcluster-style BEAM node gE"; else ko "gS1 did not find gE: $(connections gS1)"; fi
if wait_for 10 log_has gE "heartbeat from gS1@$HOST"; then ok "gE (libcluster code) decoded gS1's heartbeat"; else ko "gE did not decode gS1's heartbeat (see $LOGS/gE.log)"; fi
sleep 2
if not_connected gX gS1 && not_connected gX gS2 && not_connected gS1 gX; then ok "gX (other secret) stays alone"; else ko "gX connected: $(connections gX) / $(connections gS1)"; fi
if log_has gS1 "gossip: ignoring.*wrong secret"; then ok "gS1 logged a warning about gX's packets"; else ko "no wrong-secret warning in gS1's log"; fi
if log_has gX "gossip: ignoring"; then ok "gX logged a warning about the others' packets"; else ko "no warning in gX's log"; fi
n=$(grep -c "gossip: ignoring" "$LOGS/gS1.log")
if [ "$n" -eq 1 ]; then ok "one warning line per sender (gS1 has $n)"; else ko "gS1 has $n warning lines about one sender address"; fi

echo "-- garbage to both ports"
send_garbage $P_PLAIN 200
send_garbage $P_SECRET 200
sleep 1
if log_has gA "gossip: ignoring"; then ok "gA logged the garbage"; else ko "gA did not log the garbage"; fi
n=$(grep -c "gossip: ignoring" "$LOGS/gA.log")
if [ "$n" -eq 1 ]; then ok "400 bad packets, one warning line in gA's log"; else ko "gA logged $n warning lines"; fi
n=$(grep -c "gossip: ignoring" "$LOGS/gS2.log")
if [ "$n" -le 2 ]; then ok "gS2 logged $n warning lines (gX + garbage, both 127.0.0.1)"; else ko "gS2 logged $n warning lines"; fi
alive=1
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || alive=0; done
if [ $alive = 1 ]; then ok "every node still runs"; else ko "a node died"; fi
if connected gA gB && connected gS1 gS2; then ok "still connected after the garbage"; else ko "connections lost after the garbage"; fi

echo "gossip_netns: $pass passed, $fail failed (logs in $LOGS)"
echo "gossip_netns $pass $fail" >>"$RESULTS"
[ $fail -eq 0 ]
