%% bl_pg_tests - beamlet's pg scopes against OTP's pg, observed on the BEAM side only through
%% OTP's own functions (pg:get_members/1,2, pg:join/2, pg:leave/2) and on the C side through
%% pg_worker's ctl process (test/services/pg_worker.c) and the scope's inspection calls.
%% The runner (started with kernel start_pg) and a `peer` node are the BEAM members; their pg
%% scope processes must never restart during the suite.
-module(bl_pg_tests).
-include_lib("eunit/include/eunit.hrl").

-export([member/1, member_loop/0]).

-define(WAIT, 10000).

ctl(W, Req) -> gen_server:call({ctl, W}, Req, 10000).

until(F) -> ?assert(bl_test_util:wait_until(F, ?WAIT)).

sorted(L) -> lists:sort(L).

%% Runs on a BEAM node: a process that joins Group in scope pg and waits for stop.
member(Group) ->
    Parent = self(),
    Pid = spawn(fun() -> ok = pg:join(Group, self()), Parent ! joined, member_loop() end),
    receive joined -> Pid after 5000 -> error(join_timeout) end.

member_loop() ->
    receive
        {leave, G, From} -> From ! {left, pg:leave(G, self())}, member_loop();
        stop -> ok
    end.

%% The C side's view of a group through the scope's gen_server calls, sorted.
c_view(W, G) -> sorted(gen_server:call({pg, W}, {get_members, G}, 5000)).

peer_members(Peer, G) -> sorted(peer:call(Peer, pg, get_members, [G])).

beam_interop_test_() ->
    {timeout, 120, fun beam_interop/0}.

beam_interop() ->
    PgRunner = whereis(pg),
    ?assert(is_pid(PgRunner)),
    {Peer, PeerNode} = bl_test_util:start_peer("pgpeer"),
    {ok, PgPeer} = peer:call(Peer, pg, start, [pg]),
    W = bl_test_util:start_worker("pgw", []),
    pong = peer:call(Peer, net_adm, ping, [W]),
    ok = ctl(W, {monitor, pg}),

    %% a C member is seen by both BEAM nodes
    G = {grp, bl_test_util:unique("a")},
    {ok, C1} = ctl(W, {spawn_join, pg, G}),
    until(fun() -> pg:get_members(G) =:= [C1] end),
    until(fun() -> peer_members(Peer, G) =:= [C1] end),
    ?assertEqual([C1], ctl(W, {local_members, pg, G})),
    ?assert(lists:member(G, gen_server:call({pg, W}, which_local_groups))),

    %% BEAM members (runner and peer) are seen on the C side
    GB = <<"beam_group">>,
    B1 = member(GB),
    B2 = peer:call(Peer, ?MODULE, member, [GB]),
    until(fun() -> c_view(W, GB) =:= sorted([B1, B2]) end),
    until(fun() -> sorted(ctl(W, {members, pg, GB})) =:= sorted([B1, B2]) end),
    until(fun() -> lists:member({join, pg, GB, [B1]}, events_seen(W)) end),
    ?assert(lists:member(GB, gen_server:call({pg, W}, which_groups))),
    %% a BEAM leave and a BEAM exit reach the C side
    B1 ! {leave, GB, self()},
    receive {left, ok} -> ok after 5000 -> error(no_leave) end,
    until(fun() -> c_view(W, GB) =:= [B2] end),
    B2 ! stop,
    until(fun() -> c_view(W, GB) =:= [] end),
    until(fun() -> lists:member({leave, pg, GB, [B2]}, events_seen(W)) end),
    B1 ! stop,

    %% C leaves: once ok, then not_joined (nothing sent); double join counts twice
    ok = ctl(W, {leave, C1, pg, G}),
    not_joined = ctl(W, {leave, C1, pg, G}),
    not_joined = ctl(W, {leave, C1, pg, other_group}),
    until(fun() -> pg:get_members(G) =:= [] end),
    ok = ctl(W, {join, C1, pg, G}),
    ok = ctl(W, {join, C1, pg, G}),
    until(fun() -> pg:get_members(G) =:= [C1, C1] end),
    ok = ctl(W, {leave, C1, pg, G}),
    until(fun() -> pg:get_members(G) =:= [C1] andalso peer_members(Peer, G) =:= [C1] end),

    %% a C process that ends leaves all its groups at once (the connection stays up)
    GX = [x, 1, "str"],
    {ok, C2} = ctl(W, {spawn_join, pg, GX}),
    ok = ctl(W, {join, C2, pg, G}),
    ok = ctl(W, {join, C2, pg, G}),
    until(fun() -> sorted(pg:get_members(G)) =:= sorted([C1, C2, C2]) end),
    until(fun() -> peer_members(Peer, GX) =:= [C2] end),
    T0 = erlang:monotonic_time(millisecond),
    ok = ctl(W, {exit, C2}),
    until(fun() -> pg:get_members(GX) =:= [] andalso pg:get_members(G) =:= [C1] end),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    until(fun() -> peer_members(Peer, GX) =:= [] andalso peer_members(Peer, G) =:= [C1] end),

    %% a group encoded by ei in other forms than BEAM's is the same group on both sides
    GE = {ei_group, "abc", 300000000, [1, 2]},
    {ok, CE} = ctl(W, spawn_join_ei_req()),
    until(fun() -> pg:get_members(GE) =:= [CE] end),
    ?assertEqual([CE], ctl(W, {members, pg, GE})),
    ok = ctl(W, {leave, CE, pg, GE}),
    until(fun() -> pg:get_members(GE) =:= [] end),

    %% reconnect: the runner drops the connection; both sides forget, then rediscover
    B3 = member(GB),
    until(fun() -> c_view(W, GB) =:= [B3] end),
    true = erlang:disconnect_node(W),
    until(fun() -> pg:get_members(G) =:= [] end),
    until(fun() -> lists:member({leave, pg, GB, [B3]}, events_seen(W)) end),
    pong = net_adm:ping(W),
    until(fun() -> pg:get_members(G) =:= [C1] end),
    until(fun() -> c_view(W, GB) =:= [B3] end),
    ?assertEqual([C1], peer_members(Peer, G)),

    %% another scope, started on C after the connection is up, discovers BEAM's at once
    {ok, _} = pg:start(bl_s2),
    ok = ctl(W, {start_scope, bl_s2}),
    {ok, C3} = ctl(W, {spawn_join, bl_s2, G}),
    until(fun() -> pg:get_members(bl_s2, G) =:= [C3] end),
    ?assertEqual([C1], pg:get_members(G)),
    ok = pg:join(bl_s2, G, self()),
    until(fun() -> sorted(ctl(W, {members, bl_s2, G})) =:= sorted([C3, self()]) end),
    ok = pg:leave(bl_s2, G, self()),
    until(fun() -> ctl(W, {members, bl_s2, G}) =:= [C3] end),

    %% kill -9 of the C node: its members vanish on both BEAM nodes
    bl_test_util:kill(W),
    until(fun() -> pg:get_members(G) =:= [] end),
    until(fun() -> peer_members(Peer, G) =:= [] end),
    until(fun() -> pg:get_members(bl_s2, G) =:= [] end),
    B3 ! stop,

    %% BEAM's scopes were never restarted
    ?assertEqual(PgRunner, whereis(pg)),
    ?assertEqual(PgPeer, peer:call(Peer, erlang, whereis, [pg])),
    ?assertEqual(PeerNode, node(PgPeer)),
    bl_test_util:stop_peer(Peer),
    ok.

spawn_join_ei_req() -> {spawn_join_ei, pg}.

events_seen(W) ->
    E = ctl(W, events),
    Old = case get(pg_events) of undefined -> []; L -> L end,
    put(pg_events, Old ++ E),
    Old ++ E.

c_only_test_() ->
    {timeout, 120, fun c_only/0}.

c_only() ->
    PgRunner = whereis(pg),
    [W1, W2, W3] = Ws = [bl_test_util:start_worker(T, []) || T <- ["pgc1", "pgc2", "pgc3"]],
    ok = ctl(W1, {connect, W2}),
    ok = ctl(W1, {connect, W3}),
    ok = ctl(W2, {connect, W3}),
    [ok = ctl(W, {start_scope, blscope}) || W <- Ws],
    {error, _} = ctl(W1, {start_scope, blscope}),
    G = {cgroup, 42},
    {ok, P1} = ctl(W1, {spawn_join, pg, G}),
    {ok, P2} = ctl(W2, {spawn_join, pg, G}),
    {ok, Q3} = ctl(W3, {spawn_join, blscope, G}),
    All = sorted([P1, P2]),
    [until(fun() -> sorted(ctl(W, {members, pg, G})) =:= All end) || W <- Ws],
    [until(fun() -> ctl(W, {members, blscope, G}) =:= [Q3] end) || W <- Ws],
    %% the runner's BEAM pg sees the default scope's members too (not blscope's)
    until(fun() -> sorted(pg:get_members(G)) =:= All end),
    %% beamlet members replicate through the shared layer (repl.c): their scopes are not pg-protocol
    %% peers of each other, only of the runner
    ?assertEqual([], [{W, P} || W <- Ws, P <- gen_server:call({pg, W}, peers), lists:member(node(P), Ws)]),
    ?assert(lists:all(fun(W) -> [node(P) || P <- gen_server:call({pg, W}, peers)] =:= [node()] end, Ws)),
    %% join_local / leave_local (what OTP's pg:join/3 and pg:leave/3 call on their own node) for a
    %% C process: two joins are two memberships, everywhere
    {ok, P4} = ctl(W1, {spawn_join, pg, {other, 1}}),
    ok = gen_server:call({pg, W1}, {join_local, G, P4}),
    ok = gen_server:call({pg, W1}, {join_local, G, [P4]}),
    With4 = sorted([P1, P2, P4, P4]),
    [until(fun() -> sorted(ctl(W, {members, pg, G})) =:= With4 end) || W <- Ws],
    until(fun() -> sorted(pg:get_members(G)) =:= With4 end),
    ok = gen_server:call({pg, W1}, {leave_local, G, P4}),
    ok = gen_server:call({pg, W1}, {leave_local, G, [P4]}),
    not_joined = gen_server:call({pg, W1}, {leave_local, G, P4}),
    {error, badarg} = gen_server:call({pg, W1}, {join_local, G, P2}), % not a process of W1
    {error, badarg} = gen_server:call({pg, W1}, {join_local, G, not_a_pid}),
    [until(fun() -> sorted(ctl(W, {members, pg, G})) =:= All end) || W <- Ws],
    until(fun() -> sorted(pg:get_members(G)) =:= All end),
    %% leave and process exit propagate between beamlet nodes
    ok = ctl(W3, {leave, Q3, blscope, G}),
    [until(fun() -> ctl(W, {members, blscope, G}) =:= [] end) || W <- Ws],
    ok = ctl(W1, {exit, P1}),
    [until(fun() -> ctl(W, {members, pg, G}) =:= [P2] end) || W <- Ws],
    %% kill -9: the other beamlet nodes drop its members
    {ok, P1b} = ctl(W1, {spawn_join, pg, G}),
    [until(fun() -> sorted(ctl(W, {members, pg, G})) =:= sorted([P1b, P2]) end) || W <- Ws],
    bl_test_util:kill(W2),
    [until(fun() -> ctl(W, {members, pg, G}) =:= [P1b] end) || W <- [W1, W3]],
    until(fun() -> pg:get_members(G) =:= [P1b] end),
    ?assertEqual(PgRunner, whereis(pg)),
    ok.

%% ---- several groups per owner, on every node (issue 9: a C-to-C sync with two or more groups
%% was dropped as malformed) ----

multi_test_() ->
    {timeout, 120, fun multi/0}.

%% Members of every group in Gs on every worker in Ws equal Want(G).
members_everywhere(Ws, Scope, Gs, Want) ->
    [{W, G} || W <- Ws, G <- Gs, sorted(ctl(W, {members, Scope, G})) =/= sorted(Want(G))].

multi() ->
    PgRunner = whereis(pg),
    Ws = [bl_test_util:start_worker(T, []) || T <- ["pgm1", "pgm2", "pgm3"]],
    [ok = ctl(W, {start_scope, blmulti}) || W <- Ws],
    %% C-only scope: before the workers meet, each has four groups (one with two members, one pid
    %% in two groups), so the first sync each sends carries all of them
    Gs = [{mg, K} || K <- lists:seq(1, 4)],
    Joined = lists:append(
               [begin
                    Own = [{G, P} || G <- Gs, {ok, P} <- [ctl(W, {spawn_join, blmulti, G})]],
                    {ok, Extra} = ctl(W, {spawn_join, blmulti, {mg, 1}}),
                    ok = ctl(W, {join, Extra, blmulti, {mg, 2}}),
                    [{{mg, 1}, Extra}, {{mg, 2}, Extra} | Own]
                end || W <- Ws]),
    ?assertEqual(length(Ws) * 6, length(Joined)),
    Want = fun(G) -> [P || {G1, P} <- Joined, G1 =:= G] end,
    [W1, W2, W3] = Ws,
    ok = ctl(W1, {connect, W2}),
    ok = ctl(W1, {connect, W3}),
    ok = ctl(W2, {connect, W3}),
    until(fun() -> members_everywhere(Ws, blmulti, Gs, Want) =:= [] end),
    timer:sleep(1000),
    ?assertEqual([], members_everywhere(Ws, blmulti, Gs, Want)),
    %% mixed (scope pg): the runner and every worker hold several groups; a fourth worker that
    %% joins later learns all of them, from BEAM's sync and from the other workers' syncs
    Hs = [{mh, K} || K <- lists:seq(1, 3)],
    Beam = [{H, member(H)} || H <- Hs],
    CJoined = [{H, P} || W <- Ws, H <- Hs, {ok, P} <- [ctl(W, {spawn_join, pg, H})]],
    WantH = fun(H) -> [P || {H1, P} <- Beam ++ CJoined, H1 =:= H] end,
    until(fun() -> members_everywhere(Ws, pg, Hs, WantH) =:= [] end),
    until(fun() -> [H || H <- Hs, sorted(pg:get_members(H)) =/= sorted(WantH(H))] =:= [] end),
    W4 = bl_test_util:start_worker("pgm4", []),
    [ok = ctl(W4, {connect, W}) || W <- Ws],
    until(fun() -> members_everywhere([W4], pg, Hs, WantH) =:= [] end),
    ok = ctl(W4, {start_scope, blmulti}),
    until(fun() -> members_everywhere([W4], blmulti, Gs, Want) =:= [] end),
    [P ! stop || {_, P} <- Beam],
    until(fun() -> members_everywhere(Ws ++ [W4], pg, Hs, fun(H) -> [P || {H1, P} <- CJoined, H1 =:= H] end) =:= [] end),
    ?assertEqual(PgRunner, whereis(pg)),
    ok.
