%% bl_cluster_tests - cluster membership, failure detection and leader election against real
%% beamlet nodes on loopback, observed only through OTP calls (gen_server:call to
%% beamlet_cluster) and the admin CLI. The runner (this erl node) is the BEAM member.
-module(bl_cluster_tests).
-include_lib("eunit/include/eunit.hrl").

-define(HB, "300").
-define(THRESH, "3").
-define(ELECT, "600").
-define(T, 900).          % heartbeat x threshold, ms

fast() -> ["--heartbeat-interval-ms", ?HB, "--failure-threshold", ?THRESH,
           "--election-timeout-ms", ?ELECT].

start(Tag, Role, Cluster, Join) ->
    JoinArgs = case Join of [] -> []; _ -> ["--join", string:join([atom_to_list(J) || J <- Join], ",")] end,
    bl_test_util:start_beamlet(Tag, ["--role", Role, "--cluster", Cluster | JoinArgs ++ fast()]).

members(N) -> gen_server:call({beamlet_cluster, N}, members, 5000).
status(N) -> gen_server:call({beamlet_cluster, N}, status, 5000).

%% [{Node, State}] of beamlet members, sorted.
view(N) -> lists:sort([{maps:get(node, M), maps:get(state, M)} || M <- members(N),
                                                                   maps:get(kind, M) =:= beamlet]).

state_of(N, Of) -> proplists:get_value(Of, view(N)).

until(F) -> ?assert(bl_test_util:wait_until(F, 15000)).

agree(Nodes, Expected) ->
    case bl_test_util:wait_until(fun() -> lists:all(fun(N) -> view(N) =:= Expected end, Nodes) end,
                                 15000) of
        true -> true;
        false ->
            [io:format(user, "~p sees ~p~n", [N, catch view(N)]) || N <- Nodes],
            io:format(user, "expected ~p~n", [Expected]),
            false
    end.

cluster_test_() ->
    {timeout, 240, fun membership/0}.

membership() ->
    C = "c" ++ bl_test_util:unique(""),
    B1 = start("k1", "coordinator", C, []),
    B2 = start("k2", "coordinator", C, [B1]),
    B3 = start("k3", "coordinator", C, [B1]),
    B4 = start("a1", "agent", C, [B2]),
    B5 = start("a2", "agent", C, [B3]),
    All = [B1, B2, B3, B4, B5],
    Active = lists:sort([{N, active} || N <- All]),
    %% join via seeds: every node agrees on the same five active members
    ?assert(agree(All, Active)),
    %% the runner (a BEAM node connected to all) is a member with role beam
    %% (classified once it has not said hello for a second)
    [until(fun() -> lists:any(fun(M) -> maps:get(node, M) =:= node() andalso
                                        maps:get(role, M) =:= beam end, members(N)) end)
     || N <- All],
    %% exactly one leader, agreed by all, a coordinator
    until(fun() -> length(lists:usort([maps:get(leader, status(N)) || N <- All])) =:= 1
                   andalso maps:get(leader, status(B1)) =/= undefined end),
    Leader = maps:get(leader, status(B1)),
    ?assert(lists:member(Leader, [B1, B2, B3])),
    [?assertEqual(healthy, maps:get(health, status(N))) || N <- All],

    %% a BEAM subscriber gets events
    ok = gen_server:call({beamlet_cluster, B1}, {subscribe, self()}),

    %% kill -9 of an agent: failed everywhere
    bl_test_util:kill(B5),
    Rest = All -- [B5],
    ?assert(agree(Rest, lists:sort([{B5, failed} | [{N, active} || N <- Rest]]))),
    ?assertMatch({ok, _}, bl_test_util:recv(
        fun({beamlet_cluster_event, #{event := node_state_changed, node := N, to := failed}}) -> N =:= B5;
           (_) -> false end, 5000)),

    %% restart it: active again everywhere (a new run of the same name)
    B5 = restart(B5, "agent", C, [B1]),
    ?assert(agree(All, Active)),

    %% SIGTERM: left everywhere (a graceful leave, not a failure)
    {exited, 0} = bl_test_util:term(B4),
    Rest4 = All -- [B4],
    ?assert(agree(Rest4, lists:sort([{B4, left} | [{N, active} || N <- Rest4]]))),

    %% kill -9 of the leader: a new leader among the remaining coordinators, agreed by all
    bl_test_util:kill(Leader),
    Alive = Rest4 -- [Leader],
    until(fun() -> Ls = lists:usort([maps:get(leader, status(N)) || N <- Alive]),
                   length(Ls) =:= 1 andalso hd(Ls) =/= undefined andalso hd(Ls) =/= Leader end),
    NewLeader = maps:get(leader, status(hd(Alive))),
    ?assert(lists:member(NewLeader, [B1, B2, B3] -- [Leader])),

    %% no two nodes ever claimed leadership for the same term (from every event log)
    Claims = lists:usort([{T, L} || N <- Alive,
                                    #{event := leader_changed, leader := L, term := T}
                                        <- gen_server:call({beamlet_cluster, N}, events),
                                    L =/= undefined]),
    Terms = [T || {T, _} <- Claims],
    ?assertEqual(lists:usort(Terms), Terms),

    %% the CLI shows the same
    {0, Table} = bl_test_util:admin("nodes list --node", hd(Alive)),
    ?assertNotEqual(nomatch, string:find(Table, atom_to_list(NewLeader))),
    {0, St} = bl_test_util:admin("cluster status --node", hd(Alive)),
    ?assertNotEqual(nomatch, string:find(St, "leader    " ++ atom_to_list(NewLeader))),
    ok.

restart(Node, Role, Cluster, Join) ->
    [Alias, _] = string:split(atom_to_list(Node), "@"),
    Args = ["node", "--sname", Alias, "--cookie", bl_test_util:cookie(),
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
            "--role", Role, "--cluster", Cluster,
            "--join", string:join([atom_to_list(J) || J <- Join], ",") | fast()],
    bl_cluster_util:restart_node(Node, Args).

%% A node of another cluster, and one with another cookie, are refused; the cluster is undisturbed.
refusal_test_() ->
    {timeout, 120, fun refusal/0}.

refusal() ->
    C = "r" ++ bl_test_util:unique(""),
    A = start("ra", "coordinator", C, []),
    B = start("rb", "agent", C, [A]),
    Two = lists:sort([{A, active}, {B, active}]),
    ?assert(agree([A, B], Two)),
    X = start("rx", "agent", C ++ "other", [A]),
    timer:sleep(3 * ?T),
    ?assertEqual(Two, view(A)),
    ?assertEqual(Two, view(B)),
    ?assertEqual([{X, joining}], view(X)), % its only seed refused it
    until(fun() -> bl_cluster_util:log_contains(A, "refusing " ++ atom_to_list(X)) end),
    until(fun() -> bl_cluster_util:log_contains(X, "refusing " ++ atom_to_list(A)) end),
    %% another cookie: the handshake is refused on both sides
    Y = bl_cluster_util:start_beamlet_cookie("ry", "not_the_cookie",
                                          ["--cluster", C, "--join", atom_to_list(A) | fast()]),
    timer:sleep(3 * ?T),
    ?assertEqual(Two, view(A)),
    until(fun() -> bl_cluster_util:log_contains(A, "handshake refused") end),
    until(fun() -> bl_cluster_util:log_contains(Y, "connect to " ++ atom_to_list(A) ++ " failed") end),
    ok.

%% Discovery through the local EPMD: a node with no seeds finds the others by name pattern.
epmd_discovery_test_() ->
    {timeout, 60, fun epmd_discovery/0}.

epmd_discovery() ->
    C = "e" ++ bl_test_util:unique(""),
    A = start("ea", "coordinator", C, []),
    [Alias, _] = string:split(atom_to_list(A), "@"),
    Pattern = "bl_ea_*",
    D = bl_test_util:start_beamlet("eb", ["--cluster", C, "--epmd-local", "true",
                                          "--epmd-pattern", Pattern,
                                          "--discovery-interval-ms", "500" | fast()]),
    ?assert(agree([A, D], lists:sort([{A, active}, {D, active}]))),
    ok.
