#!/usr/bin/env bash
# run.sh - the release node under valgrind memcheck through a real exchange with erl: ping,
# gen_server calls (beamlet and beamlet_cluster), rex and funs (rpc:block_call, erpc:call of an
# external fun, a local fun's undef), a second beamlet node joining and leaving,
# garbage on the listen port, SIGTERM. Passes when valgrind reports no errors and no definite or
# indirect leaks, and the node exits 0. Appends "valgrind P F" to $BL_RESULTS.
set -u
SUITE=valgrind
. "$(dirname "$0")/../lib/checks.sh"
BIN=$ROOT/build/release/beamlet
LOGS=$BL_LOG_DIR
COOKIE=vg_$$
if ! command -v valgrind >/dev/null; then echo "valgrind: skipped: not installed"; record; exit 0; fi
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
VG="$LOGS/valgrind.$$.txt"
valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$VG" \
    "$BIN" node --sname "vg$$" --cookie "$COOKIE" --cluster vg --net-ticktime 4 \
    >"$LOGS/valgrind-node.$$.log" 2>&1 &
VPID=$!
"$BIN" node --sname "vgpeer$$" --cookie "$COOKIE" --cluster vg --join "vg$$@$HOST" \
    >"$LOGS/valgrind-peer.$$.log" 2>&1 &
PEER=$!
out=$(timeout -k 5 120 erl -sname "vgrun$$" -setcookie "$COOKIE" -noshell -eval "
    N = 'vg$$@$HOST',
    Wait = fun W(0) -> pang; W(K) -> case net_adm:ping(N) of pong -> pong; pang -> timer:sleep(500), W(K - 1) end end,
    pong = Wait(60),
    pong = gen_server:call({beamlet, N}, ping, 20000),
    #{node := N} = gen_server:call({beamlet, N}, info, 20000),
    #{connections := _} = gen_server:call({beamlet, N}, stats, 20000),
    {error, noproc} = gen_server:call({beamlet, N}, {call, nosuch, x, 1000}, 20000),
    {ok, pong} = gen_server:call({beamlet, N}, {call, beamlet, ping, 5000}, 20000),
    N = rpc:block_call(N, erlang, node, [], 20000),
    N = erpc:call(N, fun erlang:node/0, 20000),
    {badrpc, {'EXIT', {undef, _}}} = rpc:block_call(N, erlang, apply, [fun() -> ok end, []], 20000),
    Deadline = erlang:monotonic_time(millisecond) + 30000,
    Two = fun T() -> Ms = gen_server:call({beamlet_cluster, N}, members, 20000),
                     case length([x || #{kind := beamlet, state := active} <- Ms]) of
                         2 -> ok;
                         _ -> case erlang:monotonic_time(millisecond) > Deadline of
                                  true -> timeout; false -> timer:sleep(300), T() end end end,
    ok = Two(),
    {port, Port, _} = erl_epmd:port_please(\"vg$$\", \"127.0.0.1\"),
    {ok, S} = gen_tcp:connect(\"127.0.0.1\", Port, [binary]),
    ok = gen_tcp:send(S, crypto:strong_rand_bytes(2000)), gen_tcp:close(S),
    pong = gen_server:call({beamlet, N}, ping, 20000),
    io:format(\"exchange ok~n\"), halt()." 2>&1)
if grep -q "exchange ok" <<<"$out"; then ok "exchange with erl under valgrind"; else bad "exchange with erl under valgrind: $out"; fi
kill -TERM "$PEER" 2>/dev/null; wait "$PEER" 2>/dev/null
sleep 2
kill -TERM "$VPID" 2>/dev/null
wait "$VPID"; rc=$?
if [ "$rc" -eq 0 ]; then ok "node exits 0 on SIGTERM under valgrind"; else bad "node exit status $rc under valgrind (99: valgrind found errors)"; fi
errs=$(grep -o "ERROR SUMMARY: [0-9]*" "$VG" | tail -1 | grep -o "[0-9]*$")
if [ "${errs:-1}" -eq 0 ]; then ok "valgrind: 0 errors"; else bad "valgrind: ${errs:-?} errors (see $VG)"; grep -A20 "Invalid\|uninitialised\|definitely lost" "$VG" | head -40; fi
if grep -qE "(definitely|indirectly) lost: [1-9]" "$VG"; then bad "valgrind: leaks"; grep -E "lost:" "$VG"; else ok "valgrind: no definite or indirect leaks"; fi
suite_done
