%% bl_registry_tests - the service registry (`beamlet_registry`) against real beamlet nodes (ASan
%% builds) on loopback, driven only through gen_server:call: replication, queries, TTL, watches,
%% removal of a killed node's entries, the full set for a joining node, load-balanced calls with
%% failover. The target service of the calls is each node's `beamlet` process (`info` answers with
%% the node's name), named by the entry's metadata `process`.
-module(bl_registry_tests).
-include_lib("eunit/include/eunit.hrl").

fast() -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
           "--election-timeout-ms", "600"].

start(Tag, Cluster, Join) ->
    bl_test_util:start_beamlet(Tag, bl_test_util:member_args("agent", Cluster, Join) ++ fast()).

reg(N, Req) -> gen_server:call({beamlet_registry, N}, Req, 10000).
find(N, Q) -> reg(N, {find, Q}).
ids(N, Q) -> lists:sort([maps:get(id, E) || E <- find(N, Q)]).

until(F) -> ?assert(bl_test_util:wait_until(F, 15000)).

agree(Nodes) -> ?assert(bl_test_util:agree(Nodes, 15000)).

event(Ev, Pred) ->
    bl_test_util:recv(fun({beamlet_registry_event, #{event := E, entry := En}}) when E =:= Ev ->
                              Pred(En);
                         (_) -> false end, 8000).

%% ---- queries, validation, watches, TTL (two nodes) ----

registry_test_() ->
    {timeout, 120, fun basics/0}.

basics() ->
    C = "g" ++ bl_test_util:unique(""),
    A = start("ra", C, []),
    B = bl_test_util:start_beamlet("rb", ["--role", "agent", "--cluster", C, "--join", atom_to_list(A), "--log-level", "debug" | fast()]),
    agree([A, B]),
    {ok, IdA} = reg(A, {register, #{name => <<"web">>, version => <<"1.0">>,
                                    address => <<"10.0.0.1">>, port => 80,
                                    health_endpoint => <<"/health">>,
                                    tags => [<<"http">>, <<"prod">>],
                                    metadata => #{<<"zone">> => <<"a">>}}}),
    ?assert(is_binary(IdA)),
    %% replicated to B with every field
    until(fun() -> ids(B, #{name => <<"web">>}) =:= [IdA] end),
    [EA] = find(B, #{name => <<"web">>}),
    ?assertMatch(#{id := IdA, name := <<"web">>, version := <<"1.0">>, node := A,
                   address := <<"10.0.0.1">>, port := 80, health_endpoint := <<"/health">>,
                   tags := [<<"http">>, <<"prod">>], metadata := #{<<"zone">> := <<"a">>},
                   ttl_ms := 0, health := passing, maintenance := false}, EA),
    {ok, IdB} = reg(B, {register, #{name => <<"web">>, id => <<"web-b">>,
                                    tags => [<<"http">>, <<"canary">>],
                                    metadata => #{<<"zone">> => <<"b">>}}}),
    ?assertEqual(<<"web-b">>, IdB),
    until(fun() -> length(find(A, #{name => <<"web">>})) =:= 2 end),
    %% tags all / any, metadata
    ?assertEqual([IdA], ids(A, #{tags_all => [<<"http">>, <<"prod">>]})),
    ?assertEqual(lists:sort([IdA, IdB]), ids(A, #{tags_all => [<<"http">>]})),
    ?assertEqual(lists:sort([IdA, IdB]), ids(B, #{tags_any => [<<"prod">>, <<"canary">>]})),
    ?assertEqual([], ids(B, #{tags_any => [<<"nope">>]})),
    ?assertEqual([IdB], ids(A, #{metadata => #{<<"zone">> => <<"b">>}})),
    ?assertEqual([], ids(A, #{name => <<"other">>})),
    %% watch on B; health change on A is seen there
    ok = reg(B, {watch, self()}),
    ok = reg(A, {set_health, IdA, critical}),
    ?assertMatch({ok, _}, event(health_changed, fun(#{id := I, health := H}) ->
                                                        I =:= IdA andalso H =:= critical end)),
    ?assertEqual([IdA], ids(B, #{health => critical})),
    ?assertEqual([IdB], ids(B, #{health => passing, name => <<"web">>})),
    %% add and remove events
    {ok, IdDb} = reg(A, {register, #{name => <<"db">>}}),
    ?assertMatch({ok, _}, event(added, fun(#{id := I, node := N}) -> I =:= IdDb andalso N =:= A end)),
    ok = reg(A, {deregister, IdDb}),
    ?assertMatch({ok, _}, event(removed, fun(#{id := I}) -> I =:= IdDb end)),
    ?assertEqual([], ids(B, #{name => <<"db">>})),
    %% bad requests: {error, badarg} / not_found, never a crash
    Bad = [{register, #{}}, {register, #{name => 1}}, {register, not_a_map},
           {register, #{name => <<"x">>, port => 70000}}, {register, #{name => <<"x">>, bogus => 1}},
           {register, #{name => <<"x">>, tags => [a]}}, {register, #{name => <<"x">>, health => sick}},
           {register, #{name => <<"x">>, tags => lists:duplicate(100, <<"t">>)}},
           {register, #{name => binary:copy(<<"n">>, 500)}},
           {find, #{bogus => 1}}, {find, nope}, {set_health, IdA, sick}, {watch, notapid},
           {call, 42, info, 100}, {call, <<"web">>, info, -1}, {call, <<"web">>, info, 100, #{policy => x}},
           hello, {}, {register}],
    [?assertEqual({error, badarg}, reg(A, R)) || R <- Bad],
    %% replica messages from a node that is not the owner member are ignored
    {beamlet_registry, A} ! {bl_reg_sync, B, [#{bad => 1}]},
    {beamlet_registry, A} ! {bl_reg_remove, B, [IdB]},
    {beamlet_registry, A} ! {bl_reg_add, node(), [EA#{node := node(), id := <<"forged">>}]},
    {beamlet_registry, A} ! {bl_reg_add, B, garbage},
    {beamlet_registry, A} ! {what, ever, 1},
    timer:sleep(200),
    ?assertEqual(lists:sort([IdA, IdB]), ids(A, #{name => <<"web">>, health => any})),
    %% a lookup without health answers what a call could choose: IdA is critical
    ?assertEqual([IdB], ids(A, #{name => <<"web">>})),
    %% max_entries bounds the local entries
    ok = reg(B, {configure, #{max_entries => 2}}),
    {ok, _} = reg(B, {register, #{name => <<"fill">>}}),
    ?assertEqual({error, full}, reg(B, {register, #{name => <<"fill">>}})),
    {ok, IdB} = reg(B, {register, #{name => <<"web">>, id => <<"web-b">>,
                                    tags => [<<"http">>, <<"canary">>],
                                    metadata => #{<<"zone">> => <<"b">>}}}), % replacing is fine
    ok = reg(B, {configure, #{max_entries => 1000}}),
    ?assertEqual({error, badarg}, reg(B, {configure, #{max_entries => 0}})),
    ?assertEqual({error, not_found}, reg(A, {deregister, <<"nope">>})),
    ?assertEqual({error, not_found}, reg(A, {renew, <<"nope">>})),
    ?assertEqual(ok, reg(A, {configure, #{policy => least_outstanding}})),
    ?assertEqual(ok, reg(A, {configure, #{policy => round_robin}})),
    %% TTL: kept while renewed, removed (everywhere, watchers told) once not
    {ok, IdT} = reg(A, {register, #{name => <<"ttl">>, ttl_ms => 600}}),
    until(fun() -> ids(B, #{name => <<"ttl">>}) =:= [IdT] end),
    [begin ok = reg(A, {renew, IdT}), timer:sleep(200) end || _ <- lists:seq(1, 8)],
    ?assertEqual([IdT], ids(A, #{name => <<"ttl">>})),
    ?assertEqual([IdT], ids(B, #{name => <<"ttl">>})),
    ?assertMatch({ok, _}, event(removed, fun(#{id := I}) -> I =:= IdT end)),
    ?assertEqual([], ids(A, #{name => <<"ttl">>})),
    ?assertEqual([], ids(B, #{name => <<"ttl">>})),
    ok = reg(B, {unwatch, self()}),
    ?assertEqual(pong, gen_server:call({beamlet, A}, ping)),
    ok.

%% ---- load balancing, failover, kill -9, joining node (three, then four nodes) ----

failover_test_() ->
    {timeout, 120, fun failover/0}.

node_of({ok, #{node := N}}) -> N;
node_of(Other) -> Other.

failover() ->
    C = "f" ++ bl_test_util:unique(""),
    A = bl_test_util:start_beamlet("fa", ["--role", "agent", "--cluster", C,
                                          "--log-level", "debug" | fast()]),
    B = start("fb", C, [A]),
    D = start("fc", C, [A]),
    agree([A, B, D]),
    Svc = #{name => <<"svc">>, metadata => #{<<"process">> => <<"beamlet">>}},
    {ok, _} = reg(B, {register, Svc}),
    {ok, IdD} = reg(D, {register, Svc#{tags => [<<"d">>]}}),
    {ok, IdLocal} = reg(A, {register, #{name => <<"local_only">>}}),
    {ok, _} = reg(A, {register, #{name => <<"local_two">>, tags => [<<"a">>, <<"b">>, <<"c">>]}}),
    until(fun() -> length(find(A, #{name => <<"svc">>})) =:= 2 end),
    ?assertEqual({error, no_instances}, reg(A, {call, <<"nothing">>, info, 500})),
    %% round robin: alternates between the two instances
    Seq = [node_of(reg(A, {call, <<"svc">>, info, 2000})) || _ <- lists:seq(1, 6)],
    ?assertEqual([B, D], lists:usort(Seq)),
    [?assertNotEqual(X, Y) || {X, Y} <- lists:zip(lists:droplast(Seq), tl(Seq))],
    %% least outstanding, per call
    LO = [node_of(reg(A, {call, svc, info, 2000, #{policy => least_outstanding, retries => 1}}))
          || _ <- lists:seq(1, 4)],
    ?assertEqual([], LO -- [B, D, B, D, B, D]),
    %% a critical instance is not picked
    ok = reg(D, {set_health, IdD, critical}),
    until(fun() -> ids(A, #{health => critical}) =:= [IdD] end),
    ?assertEqual([B, B, B], [node_of(reg(A, {call, <<"svc">>, info, 2000})) || _ <- lists:seq(1, 3)]),
    ok = reg(D, {set_health, IdD, passing}),
    until(fun() -> ids(A, #{health => passing, name => <<"svc">>}) =:= ids(A, #{name => <<"svc">>}) end),
    ok = reg(A, {watch, self()}),
    %% kill -9 of one instance's node: calls fail over to the other at once
    bl_test_util:kill(D),
    After = [node_of(reg(A, {call, <<"svc">>, info, 1000})) || _ <- lists:seq(1, 4)],
    ?assertEqual([B, B, B, B], After),
    ?assert(bl_test_util:log_contains(A, "failing over", 2000)),
    %% its entries disappear on the others and watchers are told
    ?assertMatch({ok, _}, event(removed, fun(#{id := I, node := N}) -> I =:= IdD andalso N =:= D end)),
    until(fun() -> [maps:get(node, E) || E <- find(B, #{name => <<"svc">>})] =:= [B] end),
    ?assertEqual([B], [maps:get(node, E) || E <- find(A, #{name => <<"svc">>})]),
    %% a joining node receives the full set
    E = start("fd", C, [B]),
    until(fun() -> lists:sort([{maps:get(node, X), maps:get(name, X)} || X <- find(E, #{})]) =:=
                       lists:sort([{B, <<"svc">>}, {A, <<"local_only">>},
                                   {A, <<"local_two">>}]) end),
    %% and keeps it across the periodic resyncs (several entries per sync)
    timer:sleep(2500),
    ?assertEqual(lists:sort(find(A, #{})), lists:sort(find(E, #{}))),
    ?assertEqual([IdLocal], ids(E, #{name => <<"local_only">>})),
    ?assertEqual({ok, B}, {ok, node_of(reg(E, {call, <<"svc">>, info, 2000}))}),
    %% a node wrongly taken for failed (suspended 2 s): its entries are dropped, then come back
    %% as soon as it is active again (exchanged on the state change, not the 5 s resync)
    Pid = integer_to_list(bl_test_util:os_pid(B)),
    os:cmd("kill -STOP " ++ Pid),
    until(fun() -> ids(A, #{name => <<"svc">>}) =:= [] end),
    os:cmd("kill -CONT " ++ Pid),
    ?assert(bl_test_util:wait_until(fun() -> length(find(A, #{name => <<"svc">>})) =:= 1 andalso
                                             length(find(E, #{name => <<"svc">>})) =:= 1 end, 3000)),
    until(fun() -> length(find(B, #{name => <<"local_only">>})) =:= 1 end),
    ok.

%% ---- the C API (registry_node.c: bl_registry_* and bl_service_call) against a beamlet node ----

c_api_test_() ->
    {timeout, 120, fun c_api/0}.

start_c_node(Tag, Cluster, Join) ->
    Alias = bl_test_util:unique(Tag),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    Bin = case os:getenv("REGISTRY_NODE_BIN") of
              V when V =:= false; V =:= "" -> error(missing_registry_node_bin);
              V -> V
          end,
    Args = ["--sname", Alias, "--cookie", bl_test_util:cookie(),
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
            "--role", "agent", "--cluster", Cluster, "--join", atom_to_list(Join) | fast()],
    Node = bl_test_util:spawn_raw(Node, Bin, Args),
    ok = bl_test_util:wait_up(Node, 15000),
    Node.

ctl(N, Req) -> gen_server:call({reg_ctl, N}, Req, 10000).

c_api() ->
    C = "c" ++ bl_test_util:unique(""),
    A = start("ca", C, []),
    N = start_c_node("cn", C, A),
    agree([A, N]),
    ?assertEqual(ok, ctl(N, c_invalid)),
    %% registered from C, seen from BEAM on the other node with its fields
    {ok, IdC} = ctl(N, {c_register, <<"csvc">>, 0, [<<"x">>, <<"y">>], <<"beamlet">>}),
    until(fun() -> ids(A, #{name => <<"csvc">>}) =:= [IdC] end),
    [EC] = find(A, #{name => <<"csvc">>}),
    ?assertMatch(#{node := N, version := <<"2.0">>, port := 4000, tags := [<<"x">>, <<"y">>],
                   metadata := #{<<"process">> := <<"beamlet">>}}, EC),
    %% registered from BEAM on A: the C watcher and bl_registry_find see it
    {ok, IdA} = reg(A, {register, #{name => <<"csvc">>, tags => [<<"y">>],
                                    metadata => #{<<"process">> => <<"beamlet">>}}}),
    until(fun() -> ctl(N, {c_find, <<"csvc">>, <<"y">>}) =:= 2 end),
    ?assertEqual(1, ctl(N, {c_find, <<"csvc">>, <<"x">>})),
    until(fun() -> lists:member({added, IdA, A}, ctl(N, c_events)) end),
    ok = reg(A, {set_health, IdA, warning}),
    until(fun() -> lists:member({health_changed, IdA, A}, ctl(N, c_events)) end),
    ok = reg(A, {set_health, IdA, passing}),
    until(fun() -> ids(N, #{health => passing, name => <<"csvc">>}) =:= lists:sort([IdA, IdC]) end),
    %% bl_service_call round-robins over the local and the remote instance
    Seq = [node_of(ctl(N, {c_call, <<"csvc">>, info, 2000})) || _ <- lists:seq(1, 4)],
    ?assertEqual([A, N], lists:usort(Seq)),
    [?assertNotEqual(X, Y) || {X, Y} <- lists:zip(lists:droplast(Seq), tl(Seq))],
    ?assertMatch({error, _}, ctl(N, {c_call, <<"nothing">>, info, 500})),
    %% health and deregistration from C reach A
    ok = ctl(N, {c_set_health, IdC, 2}),
    until(fun() -> ids(A, #{health => critical}) =:= [IdC] end),
    ?assertEqual([A, A], [node_of(ctl(N, {c_call, <<"csvc">>, info, 2000})) || _ <- [1, 2]]),
    ok = ctl(N, {c_deregister, IdC}),
    until(fun() -> ids(A, #{name => <<"csvc">>}) =:= [IdA] end),
    ?assertMatch({error, _}, ctl(N, {c_deregister, IdC})),
    %% TTL from C: renewed it stays, then it expires everywhere
    {ok, IdT} = ctl(N, {c_register, <<"cttl">>, 500, [], <<"beamlet">>}),
    until(fun() -> ids(A, #{name => <<"cttl">>}) =:= [IdT] end),
    [begin ok = ctl(N, {c_renew, IdT}), timer:sleep(150) end || _ <- lists:seq(1, 6)],
    ?assertEqual([IdT], ids(A, #{name => <<"cttl">>})),
    until(fun() -> ids(A, #{name => <<"cttl">>}) =:= [] end),
    until(fun() -> lists:member({removed, IdT, N}, ctl(N, c_events)) end),
    %% a clean stop: no leaks reported by ASan at exit
    ?assertEqual({exited, 0}, bl_test_util:term(N)),
    ok.

%% ---- random requests: every answer is a reply (never a crash), the node stays up ----

random_test_() ->
    {timeout, 60, fun random_requests/0}.

rnd_value(0) -> lists:nth(rand:uniform(6), [1, -1, 70000, a, <<"b">>, 1.5]);
rnd_value(D) ->
    case rand:uniform(9) of
        1 -> rand:uniform(1 bsl 40) - (1 bsl 39);
        2 -> list_to_binary(lists:duplicate(rand:uniform(300), $x));
        3 -> [rnd_value(D - 1) || _ <- lists:seq(1, rand:uniform(40))];
        4 -> maps:from_list([{rnd_value(0), rnd_value(D - 1)} || _ <- lists:seq(1, rand:uniform(4))]);
        5 -> rnd_map(D - 1);
        6 -> lists:nth(rand:uniform(5), [passing, warning, critical, round_robin, least_outstanding]);
        7 -> <<"svc">>;
        8 -> [<<"t">>, <<"u">>];
        9 -> self()
    end.

rnd_map(D) ->
    Keys = [id, name, version, node, address, port, health_endpoint, tags, metadata, ttl_ms, health,
            tags_all, tags_any, policy, retries, max_entries],
    maps:from_list([{lists:nth(rand:uniform(length(Keys)), Keys), rnd_value(D)}
                    || _ <- lists:seq(1, rand:uniform(6))]).

rnd_request() ->
    Tags = [register, deregister, renew, set_health, find, watch, unwatch, call, configure],
    T = lists:nth(rand:uniform(length(Tags)), Tags),
    list_to_tuple([T | [case rand:uniform(2) of 1 -> rnd_map(2); 2 -> rnd_value(2) end
                        || _ <- lists:seq(1, rand:uniform(4))]]).

random_requests() ->
    C = "z" ++ bl_test_util:unique(""),
    A = start("za", C, []),
    B = start("zb", C, [A]),
    agree([A, B]),
    rand:seed(exsss, {1, 2, 3}),
    [begin
         R = rnd_request(),
         Reply = (catch reg(A, R)),
         Ok = case Reply of
                  ok -> true;
                  {ok, _} -> true;
                  {error, _} -> true;
                  L when is_list(L) -> true;
                  _ -> false
              end,
         ?assert(Ok orelse {R, Reply} =:= ok)
     end || _ <- lists:seq(1, 400)],
    [{beamlet_registry, A} ! rnd_request() || _ <- lists:seq(1, 200)],
    ?assertEqual(pong, gen_server:call({beamlet, A}, ping)),
    %% whatever got registered is replicated consistently
    until(fun() -> lists:sort(find(A, #{})) =:= lists:sort(find(B, #{})) end),
    ok.

%% The node's configuration sets the balancing policy and the entry limit.
config_test_() ->
    {timeout, 30, fun() ->
        N = bl_test_util:start_beamlet("rcfg", ["--registry-policy", "least_outstanding",
                                                "--registry-max-entries", "7"]),
        ?assertEqual(#{policy => least_outstanding, max_entries => 7},
                     gen_server:call({beamlet_registry, N}, config, 5000)),
        D = bl_test_util:start_beamlet("rdef", []),
        ?assertEqual(#{policy => round_robin, max_entries => 1024},
                     gen_server:call({beamlet_registry, D}, config, 5000))
    end}.

%% ---- several entries per owner, on every node, seen and used from every other node ----

multi_test_() ->
    {timeout, 120, fun multi/0}.

multi() ->
    C = "rm" ++ bl_test_util:unique(""),
    A = start("rma", C, []),
    B = start("rmb", C, [A]),
    D = start("rmd", C, [A, B]),
    Nodes = [A, B, D],
    agree(Nodes),
    Svc = fun(N) -> iolist_to_binary(["svc_", bl_test_util:node_alias(N)]) end,
    Ids = [{N, Id} || N <- Nodes, K <- lists:seq(1, 4),
                      {ok, Id} <- [reg(N, {register, #{name => Svc(N), tags => [integer_to_binary(K)],
                                                       metadata => #{<<"process">> => <<"beamlet">>}}})]],
    ?assertEqual(12, length(Ids)),
    Want = lists:sort([Id || {_, Id} <- Ids]),
    Everywhere = fun() -> [At || At <- Nodes,
                                 lists:sort([Id || N <- Nodes, Id <- ids(At, #{name => Svc(N)})]) =/= Want] end,
    until(fun() -> Everywhere() =:= [] end),
    timer:sleep(3500),
    ?assertEqual([], Everywhere()),
    %% used from every other node: a call by name lands on the owner
    [?assertEqual(O, node_of(reg(At, {call, Svc(O), info, 2000}))) || O <- Nodes, At <- Nodes, At =/= O],
    %% a node killed and started again gets every other owner's whole set from the syncs
    bl_test_util:kill(D),
    until(fun() -> ids(A, #{name => Svc(D)}) =:= [] end),
    [Alias, _] = string:split(atom_to_list(D), "@"),
    D = bl_test_util:spawn_raw(D, os:getenv("BEAMLET_BIN"),
                               ["node", "--sname", Alias, "--cookie", bl_test_util:cookie(),
                                "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
                                "--role", "agent", "--cluster", C, "--join",
                                atom_to_list(A) ++ "," ++ atom_to_list(B) | fast()]),
    ok = bl_test_util:wait_up(D, 15000),
    WantAB = lists:sort([Id || {N, Id} <- Ids, N =/= D]),
    until(fun() -> lists:sort([Id || N <- [A, B], Id <- ids(D, #{name => Svc(N)})]) =:= WantAB end),
    ok.
