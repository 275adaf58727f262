%% bl_disthdr_tests - EUnit integration tests of distribution headers against real erl: the atom
%% cache both ways and fragmented messages both ways, between the runner (BEAM) and test_worker
%% nodes, and between two C nodes. Run by run.sh (BL_TEST_MODULES).
%%
%% What each test checks besides the data arriving intact: the C node's own per-connection
%% counters (`stats` of its `beamlet` process) show that the path under test was taken, so a
%% regression to pass-through frames fails here.
-module(bl_disthdr_tests).
-include_lib("eunit/include/eunit.hrl").

-import(bl_test_util, [ctl/2, ctl/3, recv/2]).

all_test_() ->
    {setup,
     fun setup/0,
     fun cleanup/1,
     fun(Ctx) ->
         [t("20 MiB each way, interleaved with small messages, order kept per process",
            fun() -> big_both_ways(Ctx) end),
          t("more than 2048 distinct atoms and 255-character atoms on one connection",
            fun() -> many_atoms(Ctx) end),
          t("C to C: atom cache and fragments", fun() -> c_to_c(Ctx) end),
          t("SEND_SENDER: a message to a C pid carries its sender, from BEAM and from C",
            fun() -> send_sender(Ctx) end),
          t("messages queued before the handshake reach BEAM with headers", fun queued_before_up/0)]
     end}.

t(Name, Fun) -> {Name, {timeout, 120, Fun}}.

setup() ->
    W = bl_test_util:start_worker("dh_w", []),
    W2 = bl_test_util:start_worker("dh_w2", []),
    #{w => W, w2 => W2}.

cleanup(#{w := W, w2 := W2}) ->
    bl_test_util:term(W),
    bl_test_util:term(W2).

%% The stats map of Node's connection to Peer.
conn_stats(Node, Peer) ->
    St = gen_server:call({beamlet, Node}, stats, 10000),
    [C] = [C || C <- maps:get(connections, St), maps:get(node, C) =:= Peer],
    C.

big_both_ways(#{w := W}) ->
    Big = binary:copy(<<"0123456789abcdef">>, 20 * 1024 * 1024 div 16),
    Before = conn_stats(W, node()),
    Me = self(),
    %% a second process does small round trips to the same C process meanwhile
    Small = spawn_link(fun() ->
                               receive go -> ok end,
                               Times = [small_round_trip(W, I) || I <- lists:seq(1, 20)],
                               Me ! {small_done, Times}
                       end),
    {echo, W} ! {Me, {big, Big}},
    Small ! go,
    %% sent after the big one, to the same process: must come back after it
    {echo, W} ! {Me, after_big},
    First = receive {echo, _} = M1 -> M1 after 60000 -> error(no_echo) end,
    TBig = erlang:monotonic_time(millisecond),
    ?assertMatch({echo, {big, _}}, First),
    {echo, {big, Back}} = First,
    ?assert(Back =:= Big),
    Second = receive {echo, _} = M2 -> M2 after 10000 -> error(no_after_big) end,
    ?assertEqual({echo, after_big}, Second),
    Times = receive {small_done, Ts} -> Ts after 60000 -> error(small_not_done) end,
    %% small messages were not held back behind 40 MiB: some finished before the big echo
    ?assert(lists:min(Times) < TBig),
    After = conn_stats(W, node()),
    Diff = fun(K) -> maps:get(K, After) - maps:get(K, Before) end,
    %% 20 MiB each way is more than 300 fragments of 64 KiB
    ?assert(Diff(fragments_in) >= 300),
    ?assert(Diff(fragments_out) >= 300),
    ?assert(Diff(reassembled) >= 1),
    ?assert(Diff(fragmented) >= 1),
    %% nothing left in flight
    ?assertEqual(0, maps:get(queue_bytes, After)).

small_round_trip(W, I) ->
    {echo, W} ! {self(), {small, I}},
    receive {echo, {small, I}} -> erlang:monotonic_time(millisecond)
    after 30000 -> error({small_lost, I})
    end.

atoms(Prefix, From, N) ->
    [list_to_atom(Prefix ++ integer_to_list(I)) || I <- lists:seq(From, From + N - 1)].

echo_ok(W, Msg) ->
    {echo, W} ! {self(), Msg},
    ?assertEqual({ok, {echo, Msg}}, recv(fun(M) -> M =:= {echo, Msg} end, 10000)).

many_atoms(#{w := W}) ->
    Before = conn_stats(W, node()),
    %% 3000 distinct atoms, 100 per message, then the first ones again (their slots were reused)
    [echo_ok(W, {batch, atoms("bl_dh_atom_", I, 100)}) || I <- lists:seq(1, 3000, 100)],
    [echo_ok(W, {batch, atoms("bl_dh_atom_", I, 100)}) || I <- lists:seq(1, 300, 100)],
    %% more than the 255 refs one header holds
    echo_ok(W, {many, atoms("bl_dh_many_", 1, 400)}),
    %% 255 characters: ASCII (255 bytes) and 2-byte UTF-8 (510 bytes: 2-byte lengths)
    Long = list_to_atom(lists:duplicate(255, $l)),
    LongUtf8 = list_to_atom(lists:duplicate(255, 16#E4)),
    echo_ok(W, {long, Long, LongUtf8}),
    echo_ok(W, {long, LongUtf8, Long, LongUtf8}),
    After = conn_stats(W, node()),
    #{atom_cache := CA} = After,
    #{atom_cache := CB} = Before,
    %% BEAM filled our cache and we filled BEAM's: with 3000 atoms most of the 2048 slots
    ?assert(maps:get(in, CA) > 1500),
    ?assert(maps:get(out, CA) > 1500),
    ?assert(maps:get(in, CA) =< 2048),
    ?assert(maps:get(out, CA) =< 2048),
    ?assert(maps:get(refs_in, CA) - maps:get(refs_in, CB) > 3000),
    ?assert(maps:get(refs_out, CA) - maps:get(refs_out, CB) > 3000).

c_to_c(#{w := A, w2 := B}) ->
    Msg = {hello, from_c, [alpha, beta, gamma]},
    %% A sends to B's echo, which answers us
    [begin
         ?assertEqual(ok, ctl(A, {send, echo, B, {self(), {I, Msg}}})),
         ?assertEqual({ok, {echo, {I, Msg}}},
                      recv(fun(M) -> M =:= {echo, {I, Msg}} end, 10000))
     end || I <- lists:seq(1, 5)],
    Big = binary:copy(<<"C2C!">>, 1024 * 1024), %% 4 MiB: over the wire A -> B in fragments
    ?assertEqual(ok, ctl(A, {send, echo, B, {self(), {big, Big}}}, 60000)),
    ?assertMatch({ok, _}, recv(fun(M) -> M =:= {echo, {big, Big}} end, 60000)),
    SA = conn_stats(A, B),
    SB = conn_stats(B, A),
    ?assert(maps:get(refs_out, maps:get(atom_cache, SA)) > 0),
    ?assert(maps:get(in, maps:get(atom_cache, SB)) > 0),
    ?assert(maps:get(fragmented, SA) >= 1),
    ?assert(maps:get(reassembled, SB) >= 1).

%% Both sides advertise SEND_SENDER, so a message to a pid goes as {22, From, To}: the C handler
%% sees the sender, whether BEAM or a C process sent it (before, a send by pid carried none).
send_sender(#{w := A, w2 := B}) ->
    Echo = erpc:call(B, erlang, whereis, [echo], 10000),
    ?assert(is_pid(Echo)),
    Self = self(),
    Echo ! {who_sent, Self},
    ?assertEqual({ok, {sent_by, Self}}, recv(fun(M) -> element(1, M) =:= sent_by end, 10000)),
    ACtl = erpc:call(A, erlang, whereis, [ctl], 10000),
    ?assertEqual(ok, ctl(A, {send_pid, Echo, {who_sent, Self}})),
    ?assertEqual({ok, {sent_by, ACtl}}, recv(fun(M) -> element(1, M) =:= sent_by end, 10000)),
    %% and a C process's message to a BEAM pid (also SEND_SENDER now) arrives
    ?assertEqual(ok, ctl(A, {send_pid, Self, {c_by_pid, 1}})),
    ?assertEqual({ok, {c_by_pid, 1}}, recv(fun(M) -> M =:= {c_by_pid, 1} end, 10000)).

%% A C node sends to a BEAM node it has no connection to yet: the messages queue (as pass-through
%% frames) while the handshake runs and must be re-encoded with headers once it says so, or BEAM
%% would drop the connection as corrupt and the messages would be lost.
queued_before_up() ->
    W = bl_test_util:start_worker("dh_q", []),
    {Peer, PN} = bl_test_util:start_peer("dh_qpeer"),
    try
        Counter = peer:call(Peer, bl_test_util, counter_start, []),
        N = 2000,
        ?assertEqual(false, ctl(W, {is_connected, PN})),
        ?assertEqual(ok, ctl(W, {blast, Counter, N})),
        ?assert(bl_test_util:wait_until(
                  fun() -> peer:call(Peer, bl_test_util, counter_get, []) =:= N end, 30000)),
        ?assertEqual(true, ctl(W, {is_connected, PN})),
        S = conn_stats(W, PN),
        ?assert(maps:get(refs_out, maps:get(atom_cache, S)) > 0)
    after
        bl_test_util:stop_peer(Peer),
        bl_test_util:term(W)
    end.
