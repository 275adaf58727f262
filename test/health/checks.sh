#!/usr/bin/env bash
# checks.sh - health checks against real things: a real HTTP server (python3 http.server)
# answering 200, 429 and 503, its TCP port and a closed one, commands exiting 0, 1 and 3, one
# that never ends (killed after its timeout), one whose result flips on every run (damped: it
# never changes state) and one that changes for real (after `consecutive` results). Checks feed
# the cluster score and raise service_critical alerts. Checks drive registry entries: two nodes,
# two entries of one service on each, a check per node with "service"; a failing check makes its
# node's entries critical (seen on the other node, left out of lookups and service calls), a
# re-registration gets the check's status back at once, and a node in maintenance has its
# entries left out until maintenance ends. Appends "checks P F" to $BL_RESULTS.
set -u
SUITE=checks
. "$(dirname "$0")/lib.sh"
W=$BL_LOG_DIR/checks.$$
rm -rf "$W"
mkdir -p "$W"
python3 test/health/webhook_listener.py "$W/posts" "$W/port" 0 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$W/port" ] && break; sleep 0.1; done
PORT=$(cat "$W/port")
U=http://127.0.0.1:$PORT/status
echo 0 >"$W/count"
touch "$W/up"
# a closed port: bind one, close it
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
CHECKS='[
 {"name":"http_ok","http":"'$U'/200","interval_s":0.3},
 {"name":"http_busy","http":"'$U'/429","interval_s":0.3},
 {"name":"http_down","http":"'$U'/503","interval_s":0.3},
 {"name":"tcp_ok","tcp":"127.0.0.1:'$PORT'","interval_s":0.3},
 {"name":"tcp_closed","tcp":"127.0.0.1:'$CLOSED'","interval_s":0.3},
 {"name":"cmd_ok","command":["true"],"interval_s":0.3},
 {"name":"cmd_warn","command":["sh","-c","exit 1"],"interval_s":0.3},
 {"name":"cmd_crit","command":["sh","-c","exit 3"],"interval_s":0.3},
 {"name":"cmd_hangs","command":["sleep","30"],"interval_s":0.3,"timeout_s":0.5},
 {"name":"cmd_flaps","command":["sh","-c","n=$(cat '$W'/count); echo $((n+1)) > '$W'/count; exit $((n % 2))"],"interval_s":0.2,"consecutive":2},
 {"name":"cmd_file","command":["test","-f","'$W'/up"],"interval_s":0.3,"consecutive":3}
]'
N=hck1@$HOST
"$BEAMLET_BIN" node --sname hck1 --cookie "$BL_COOKIE" --health-interval-ms 300 \
    --load-warn-per-cpu 900 --load-crit-per-cpu 1000 --mem-warn-percent 0 --mem-crit-percent 0 \
    --health-checks "$CHECKS" >"$BL_LOG_DIR/checks-hck1.log" 2>&1 &
PN=$!
PIDS+=($PN)
cj() { "$BEAMLET_BIN" checks --node "$N" --format json --cookie "$BL_COOKIE" 2>/dev/null; }
cget() { cj | python3 -c "import json,sys; c={x['name']: x for x in json.load(sys.stdin)}; print($1)" 2>/dev/null; }
wait_c() { for _ in $(seq 1 $(($2 * 4))); do [ "$(cget "bool($1)")" = True ] && return 0; sleep 0.25; done; return 1; }
status_is() { wait_c "c['$1']['status'] == '$2'" "${3:-20}"; }
for _ in $(seq 1 100); do "$BEAMLET_BIN" ping "$N" --cookie "$BL_COOKIE" >/dev/null 2>&1 && break; sleep 0.1; done
echo "--- each kind of check"
check "HTTP 200 is passing" status_is http_ok passing
check "HTTP 429 is warning" status_is http_busy warning
check "HTTP 503 is critical" status_is http_down critical
check "TCP to a listening port is passing" status_is tcp_ok passing
check "TCP to a closed port is critical" status_is tcp_closed critical
check "a command exiting 0 is passing" status_is cmd_ok passing
check "exit 1 is warning" status_is cmd_warn warning
check "exit 3 is critical" status_is cmd_crit critical
check "a command that hangs is killed after its timeout: critical" status_is cmd_hangs critical
check "its output says it was killed" wait_c "'killed after 500 ms' in c['cmd_hangs']['output']" 10
check "every hung command is killed at its timeout (no sleep older than 6 s, of 30)" bash -c "for i in \$(seq 1 16); do for p in \$(pgrep -x sleep -P $PN); do e=\$(ps -o etimes= -p \$p | tr -d ' '); [ -z \"\$e\" ] || [ \"\$e\" -le 6 ] || { ps -o pid,etimes,stat,cmd -p \$p; exit 1; }; done; sleep 0.5; done"
echo "--- flapping is damped"
check "the flapping command ran at least 8 times" wait_c "c['cmd_flaps']['runs'] >= 8" 20
check "and never left its first state (passing)" wait_c "c['cmd_flaps']['status'] == 'passing'" 1
FIRST=$(cget "c['cmd_flaps']['changed_ms']")
sleep 2
check "its state never changed ($FIRST)" test "$(cget "c['cmd_flaps']['changed_ms']")" = "$FIRST"
echo "--- a real change needs 'consecutive' results"
check "cmd_file passing" status_is cmd_file passing
RUNS=$(cget "c['cmd_file']['runs']")
rm -f "$W/up"
check "after the file goes: warning" status_is cmd_file warning 20
AFTER=$(cget "c['cmd_file']['runs']")
check "it took at least 3 more runs ($RUNS -> $AFTER)" test "$AFTER" -ge $((RUNS + 3))
echo "--- checks feed health and alerts"
H=$("$BEAMLET_BIN" health --node "$N" --format json --cookie "$BL_COOKIE")
check "the score's services part counts the checks" python3 -c '
import json, sys; h = json.loads(sys.argv[1]); s = h["components"]["services"]
sys.exit(0 if 0 < s < 1 and h["status"] == "degraded" and len(h["checks"]) == 11 else 1)' "$H"
check "a service_critical alert per critical check" bash -c "for i in \$(seq 1 40); do n=\$('$BEAMLET_BIN' alerts --node '$N' --format json --cookie '$BL_COOKIE' | python3 -c 'import json,sys; print(len([a for a in json.load(sys.stdin) if a[\"rule\"]==\"service_critical\" and a[\"state\"]==\"firing\"]))'); [ \"\$n\" = 4 ] && exit 0; sleep 0.25; done; exit 1"
check "check changes are events" bash -c "'$BEAMLET_BIN' events --node '$N' --type check --format json --cookie '$BL_COOKIE' | grep -q 'cmd_file'"
check "beamlet checks prints a table" bash -c "'$BEAMLET_BIN' checks --node '$N' --cookie '$BL_COOKIE' | grep -q '^tcp_closed .*critical'"
echo "--- bad checks are refused naming the key"
for bad_check in '[{"name":"x","tcp":"example.com:80"}]' '[{"name":"x","command":"sh -c true"}]' \
    '[{"name":"x","http":"ftp://x"}]' '[{"name":"x","tcp":"127.0.0.1:1","interval_s":0}]' \
    '[{"name":"x","tcp":"127.0.0.1:1"},{"name":"x","tcp":"127.0.0.1:2"}]'; do
    ERR=$("$BEAMLET_BIN" node --sname hck_bad --health-checks "$bad_check" 2>&1)
    check "health_checks $bad_check refused" grep -q "invalid health_checks" <<<"$ERR"
done
echo "--- checks drive registry entries; maintenance leaves a node's entries out"
touch "$W/web1" "$W/web2"
for i in 1 2; do
    SVC_CHECKS='[{"name":"web","command":["sh","-c","test -f '$W'/web'$i' || exit 2"],"interval_s":0.3,"consecutive":1,"service":"web"},
      {"name":"db","tcp":"127.0.0.1:'$CLOSED'","interval_s":0.3,"consecutive":1,"service":"db-'$i'"}]'
    JOIN=()
    [ "$i" = 2 ] && JOIN=(--join "hsv1@$HOST")
    "$BEAMLET_BIN" node --sname "hsv$i" "${JOIN[@]}" --cookie "$BL_COOKIE" --health-interval-ms 300 \
        --heartbeat-interval-ms 300 --load-warn-per-cpu 900 --load-crit-per-cpu 1000 \
        --mem-warn-percent 0 --mem-crit-percent 0 --health-checks "$SVC_CHECKS" \
        >"$BL_LOG_DIR/checks-hsv$i.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do "$BEAMLET_BIN" ping "hsv$i@$HOST" --cookie "$BL_COOKIE" >/dev/null 2>&1 && break; sleep 0.1; done
done
S1=hsv1@$HOST S2=hsv2@$HOST
# an erl node: register entries, look them up, make service calls (answered by the chosen
# node's beamlet_health: its `metrics` reply names the node)
erl_do() {
    erl -sname "bls_$$_$RANDOM" -setcookie "$BL_COOKIE" -noshell -eval "
        Reg = fun(N, Id, Name) -> {ok, _} = gen_server:call({beamlet_registry, N}, {register,
            #{id => Id, name => Name, metadata => #{<<\"process\">> => <<\"beamlet_health\">>}}}) end,
        Calls = fun(N, K) -> Ns = [begin {ok, #{node := Nd}} = gen_server:call({beamlet_registry, N},
            {call, <<\"web\">>, metrics, 5000}, 20000), Nd end || _ <- lists:seq(1, K)],
            io:format(\"nodes ~s~n\", [lists:join(\" \", [io_lib:format(\"~s\", [Nd]) || Nd <- lists:usort(Ns)])]) end,
        _ = {Reg, Calls}, $1, halt()." 2>&1
}
OUT=$(erl_do "[Reg('$S1', I, <<\"web\">>) || I <- [<<\"web-a1\">>, <<\"web-a2\">>]],
    [Reg('$S2', I, <<\"web\">>) || I <- [<<\"web-b1\">>, <<\"web-b2\">>]],
    Reg('$S1', <<\"db-1\">>, <<\"db\">>), Reg('$S2', <<\"db-2\">>, <<\"db\">>), io:format(\"registered~n\")")
check "four web entries on two nodes and a db entry on each registered from erl" grep -q registered <<<"$OUT"
sj() { "$BEAMLET_BIN" service find --node "$1" --format json --cookie "$BL_COOKIE" "${@:2}" 2>/dev/null; }
sget() { sj "$1" "${@:3}" | python3 -c "import json,sys; e={x['id']: x for x in json.load(sys.stdin)}; print($2)" 2>/dev/null; }
wait_s() { for _ in $(seq 1 80); do [ "$(sget "$1" "bool($2)" "${@:3}")" = True ] && return 0; sleep 0.25; done; return 1; }
check "every web entry passing (its check passes), seen on the other node" wait_s "$S2" "all(e[i]['health'] == 'passing' for i in ['web-a1','web-a2','web-b1','web-b2'])"
check "the db entries follow their check by id: critical" wait_s "$S1" "e['db-1']['health'] == 'critical' and e['db-2']['health'] == 'critical'"
check "beamlet checks shows the service a check drives" bash -c "'$BEAMLET_BIN' checks --node '$S1' --cookie '$BL_COOKIE' | grep -q '^web .*passing  *web '"
check "a usable lookup leaves the critical db entries out" wait_s "$S1" "'db-1' not in e and 'db-2' not in e and len(e) == 4" --usable
OUT=$(erl_do "Calls('$S1', 12)")
check "service calls reach both nodes' instances" grep -qx "nodes $S1 $S2" <<<"$OUT"
rm -f "$W/web1"
check "hsv1's check fails: both its web entries critical, seen on hsv2" wait_s "$S2" "e['web-a1']['health'] == 'critical' and e['web-a2']['health'] == 'critical' and e['web-b1']['health'] == 'passing'"
check "a usable lookup on hsv2 has only hsv2's web entries" wait_s "$S2" "sorted(e) == ['web-b1','web-b2']" --usable
OUT=$(erl_do "Calls('$S1', 12)")
check "12 service calls made on hsv1 all go to hsv2" grep -qx "nodes $S2" <<<"$OUT"
OUT=$(erl_do "L = gen_server:call({beamlet_registry, '$S2'}, {find, #{name => <<\"web\">>}}),
    io:format(\"~p~n\", [[maps:get(id, E) || E <- L]])")
check "a BEAM lookup (find without health) leaves them out too" grep -q '\[<<"web-b[12]">>,<<"web-b[12]">>\]' <<<"$OUT"
erl_do "Reg('$S1', <<\"web-a1\">>, <<\"web\">>)" >/dev/null
check "re-registered (as passing), web-a1 gets its check's status back at once" wait_s "$S2" "e['web-a1']['health'] == 'critical'"
touch "$W/web1"
check "the check passes again: hsv1's entries passing" wait_s "$S2" "e['web-a1']['health'] == 'passing' and e['web-a2']['health'] == 'passing'"
"$BEAMLET_BIN" node maintenance on --node "$S2" --who checks-test --cookie "$BL_COOKIE" >/dev/null
check "hsv2 in maintenance: its entries say so on hsv1" wait_s "$S1" "e['web-b1']['maintenance'] and e['web-b2']['maintenance'] and not e['web-a1']['maintenance']"
check "a usable lookup on hsv1 leaves hsv2's out" wait_s "$S1" "sorted(e) == ['web-a1','web-a2']" --usable
check "beamlet service find prints them with MAINTENANCE yes" bash -c "'$BEAMLET_BIN' service find --node '$S1' --name web --cookie '$BL_COOKIE' | grep -q '^web-b1 .*passing  *yes'"
OUT=$(erl_do "Calls('$S2', 12)")
check "12 service calls made on hsv2 (in maintenance) all go to hsv1" grep -qx "nodes $S1" <<<"$OUT"
"$BEAMLET_BIN" node maintenance off --node "$S2" --who checks-test --cookie "$BL_COOKIE" >/dev/null
check "maintenance off: hsv2's entries usable again" wait_s "$S1" "sorted(e) == ['web-a1','web-a2','web-b1','web-b2']" --usable
OUT=$(erl_do "Calls('$S1', 12)")
check "and service calls reach both nodes again" grep -qx "nodes $S1 $S2" <<<"$OUT"
echo "--- a registration that carries its own check"
OUT=$(erl_do "R = fun(Id, C) -> gen_server:call({beamlet_registry, '$S1'}, {register, #{id => Id, name => <<\"own\">>, check => C}}) end,
    io:format(\"~p ~p ~p~n\", [R(<<\"own-1\">>, #{tcp => <<\"127.0.0.1:$CLOSED\">>, interval_s => 0.3, consecutive => 1}),
        R(<<\"own-1\">>, #{tcp => <<\"nohost:1\">>}), R(<<\"own-2\">>, #{command => [<<\"true\">>], interval_s => 0.3})])")
check "registered with a check; a malformed check refuses the registration ($OUT)" grep -q '{ok,<<"own-1">>} {error,badarg} {ok,<<"own-2">>}' <<<"$OUT"
check "the entry follows its check (TCP to a closed port: critical), seen on hsv2" wait_s "$S2" "e['own-1']['health'] == 'critical' and e['own-2']['health'] == 'passing'"
check "beamlet checks lists it as svc:own-1, driving own-1" bash -c "'$BEAMLET_BIN' checks --node '$S1' --cookie '$BL_COOKIE' | grep -q '^svc:own-1 .*critical  *own-1 '"
erl_do "gen_server:call({beamlet_registry, '$S1'}, {register, #{id => <<\"own-1\">>, name => <<\"own\">>, check => #{command => [<<\"true\">>], interval_s => 0.3, consecutive => 1}}})" >/dev/null
check "re-registered with another check: it replaces the first (passing)" wait_s "$S2" "e['own-1']['health'] == 'passing'"
erl_do "gen_server:call({beamlet_registry, '$S1'}, {register, #{id => <<\"own-1\">>, name => <<\"own\">>}}), ok = gen_server:call({beamlet_registry, '$S1'}, {deregister, <<\"own-2\">>})" >/dev/null
check "re-registered without a check, and own-2 deregistered: both checks end" bash -c "for i in \$(seq 1 20); do '$BEAMLET_BIN' checks --node '$S1' --format json --cookie '$BL_COOKIE' | python3 -c 'import json,sys; n=[c[\"name\"] for c in json.load(sys.stdin)]; sys.exit(0 if \"web\" in n and not [x for x in n if x.startswith(\"svc:\")] else 1)' && exit 0; sleep 0.25; done; exit 1"
kill "$PN"
wait "$PN" 2>/dev/null
check "the node stops cleanly with commands running" grep -q "stopped" "$BL_LOG_DIR/checks-hck1.log"
suite_done
