%% bl_cconf_tests - the cluster configuration (docs/configuration.md, "Cluster configuration")
%% as an operator and a BEAM program use it: `beamlet config set|get|unset|history|watch` and
%% gen_server:call to beamlet_config, against real beamlet nodes (3 coordinators, 2 agents) on
%% loopback. Every wait is a bounded poll; how fast a change spreads is measured in make bench.
-module(bl_cconf_tests).
-include_lib("eunit/include/eunit.hrl").

fast() -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
           "--election-timeout-ms", "1500"].

start(Tag, Role, Cluster, Join) ->
    JoinArgs = case Join of [] -> []; _ -> ["--join", string:join([atom_to_list(J) || J <- Join], ",")] end,
    bl_test_util:start_beamlet(Tag, ["--role", Role, "--cluster", Cluster | JoinArgs ++ fast()]).

cfg(N) -> gen_server:call({beamlet_config, N}, get, 5000).
setting(N, Key) ->
    #{settings := S} = cfg(N),
    case [R || #{key := K} = R <- S, K =:= Key] of [R] -> R; [] -> none end.
version(N) -> maps:get(version, cfg(N)).
wait(F) -> bl_test_util:wait_until(F, 30000).

cli(Args, Node) -> bl_test_util:admin("config " ++ Args ++ " --node", Node).

%% the value `config show` gives for Key on Node (what the node runs)
running(Node, Key) ->
    {0, Out} = bl_test_util:admin("config show --node", Node),
    hd([V || Line <- string:split(Out, "\n", all),
             [K, V | _] <- [string:lexemes(Line, " ")], K =:= Key] ++ [none]).

leader(N) -> maps:get(leader, gen_server:call({beamlet_cluster, N}, status, 5000)).

cconf_test_() ->
    {timeout, 240, fun cluster_config/0}.

cluster_config() ->
    C = "cc" ++ bl_test_util:unique(""),
    K1 = start("q1", "coordinator", C, []),
    K2 = start("q2", "coordinator", C, [K1]),
    K3 = start("q3", "coordinator", C, [K1]),
    A1 = start("qa", "agent", C, [K2]),
    A2 = start("qb", "agent", C, [K3]),
    All = [K1, K2, K3, A1, A2],
    ?assert(wait(fun() -> Ls = lists:usort([leader(N) || N <- All]),
                          length(Ls) =:= 1 andalso hd(Ls) =/= undefined end)),
    %% a BEAM watcher on one agent, the CLI watching another
    ok = gen_server:call({beamlet_config, A2}, {watch, self()}),
    WatchOut = filename:join(bl_test_util:log_dir(), "cconf-watch-" ++ bl_test_util:unique("") ++ ".out"),
    Watch = spawn_watch(A1, WatchOut),

    %% a live key set through an agent: on every member, in the document and running
    {0, SetOut} = cli("set failure_threshold 4", A1),
    ?assertNotEqual(nomatch, string:find(SetOut, "applied live")),
    ?assert(wait(fun() -> lists:all(fun(N) -> case setting(N, <<"failure_threshold">>) of
                                                  #{value := <<"4">>, applied := <<"running">>} -> true;
                                                  _ -> false end end, All) end)),
    ?assert(wait(fun() -> lists:all(fun(N) -> running(N, "failure_threshold") =:= "4" end, All) end)),
    V1 = version(K1),
    %% SIGHUP re-reads the node's own chain (its flag says 3): the cluster setting is kept
    [] = os:cmd("kill -HUP " ++ integer_to_list(bl_test_util:os_pid(A1))),
    ?assert(wait(fun() -> bl_cluster_util:log_contains(A1, "the cluster configuration sets 4 (kept)") end)),
    ?assertEqual("4", running(A1, "failure_threshold")),

    %% a bad value: refused naming the key, nothing applied anywhere
    {1, Bad} = cli("set heartbeat_interval_ms abc", K2),
    ?assertNotEqual(nomatch, string:find(Bad, "heartbeat_interval_ms")),
    {1, Bad2} = cli("set election_timeout_ms 100", A2), % below the heartbeat: a rule between keys
    ?assertNotEqual(nomatch, string:find(Bad2, "election_timeout_ms")),
    {1, Bad3} = cli("set role agent", A2), % a per-node key
    ?assertNotEqual(nomatch, string:find(Bad3, "role")),
    {error, <<"invalid heartbeat_interval_ms", _/binary>>} =
        gen_server:call({beamlet_config, A1}, {set, <<"heartbeat_interval_ms">>, <<"-3">>, <<"eunit">>}, 15000),
    timer:sleep(500),
    [?assertEqual(V1, version(N)) || N <- All],
    [?assertEqual("300", running(N, "heartbeat_interval_ms")) || N <- All],

    %% a restart-only key: accepted, reported as needing a restart on every node
    {0, RsOut} = cli("set event_log_size 512", K3),
    ?assertNotEqual(nomatch, string:find(RsOut, "needs a restart")),
    ?assert(wait(fun() -> lists:all(fun(N) -> case setting(N, <<"event_log_size">>) of
                                                  #{applied := <<"restart_needed">>, live := false} -> true;
                                                  _ -> false end end, All) end)),
    ?assertEqual("256", running(A1, "event_log_size")),

    %% from BEAM: a live key through gen_server:call, then unset: back to each node's own value
    {ok, #{version := _, live := true}} =
        gen_server:call({beamlet_config, K2}, {set, <<"registry_policy">>, <<"least_outstanding">>, <<"eunit">>}, 15000),
    ?assert(wait(fun() -> lists:all(fun(N) -> running(N, "registry_policy") =:= "least_outstanding" end, All) end)),
    {0, _} = cli("unset failure_threshold", K1),
    ?assert(wait(fun() -> lists:all(fun(N) -> setting(N, <<"failure_threshold">>) =:= none andalso
                                               running(N, "failure_threshold") =:= "3" end, All) end)),

    %% history: who, when, old and new, newest first, the same on every member
    Hist = gen_server:call({beamlet_config, A2}, history, 5000),
    [#{key := <<"failure_threshold">>, old := <<"4">>, new := undefined},
     #{key := <<"registry_policy">>, new := <<"least_outstanding">>, who := <<"eunit">>},
     #{key := <<"event_log_size">>, old := undefined, new := <<"512">>},
     #{key := <<"failure_threshold">>, old := undefined, new := <<"4">>, who := Who, at := At} | _] = Hist,
    ?assertNotEqual(nomatch, string:find(binary_to_list(Who), "beamlet cli")),
    ?assert(At > 0),
    ?assert(wait(fun() -> gen_server:call({beamlet_config, K1}, history, 5000) =:= Hist end)),
    {0, HOut} = cli("history", A1),
    ?assertNotEqual(nomatch, string:find(HOut, "least_outstanding")),

    %% watchers saw each change: the BEAM process and the CLI (`config watch --count 4`)
    Seen = [K || {beamlet_config, #{key := K}} <- drain(4)],
    ?assertEqual([<<"failure_threshold">>, <<"event_log_size">>, <<"registry_policy">>,
                  <<"failure_threshold">>], Seen),
    ?assert(wait(fun() -> not is_process_alive(Watch) end)),
    {ok, WBin} = file:read_file(WatchOut),
    [?assertNotEqual(nomatch, binary:match(WBin, W)) || W <- [<<"event_log_size">>, <<"least_outstanding">>, <<"rc=0">>]],

    %% persisted: every node stopped and started again keeps the document and its history
    V = version(K1),
    [{exited, 0} = bl_test_util:term(N) || N <- All],
    [restart(N, R, C, J) || {N, R, J} <- [{K1, "coordinator", []}, {K2, "coordinator", [K1]},
                                          {K3, "coordinator", [K1]}, {A1, "agent", [K2]},
                                          {A2, "agent", [K3]}]],
    ?assert(wait(fun() -> lists:all(fun(N) -> version(N) =:= V end, All) end)),
    %% the restart-only key runs now that the node started again with the document
    ?assertMatch(#{value := <<"512">>, applied := <<"running">>}, setting(A1, <<"event_log_size">>)),
    ?assertEqual("512", running(A1, "event_log_size")),
    ?assertEqual(Hist, gen_server:call({beamlet_config, A1}, history, 5000)),
    ok.

restart(Node, Role, Cluster, Join) ->
    [Alias, _] = string:split(atom_to_list(Node), "@"),
    JoinArgs = case Join of [] -> []; _ -> ["--join", string:join([atom_to_list(J) || J <- Join], ",")] end,
    Args = ["node", "--sname", Alias, "--cookie", bl_test_util:cookie(),
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
            "--role", Role, "--cluster", Cluster | JoinArgs ++ fast()],
    bl_cluster_util:restart_node(Node, Args).

spawn_watch(Node, Out) ->
    Bin = os:getenv("BEAMLET_BIN"),
    Cmd = io_lib:format("timeout 120 '~s' config watch --node '~s' --cookie '~s' --count 4 >'~s' 2>&1; "
                        "echo \"rc=$?\" >>'~s'", [Bin, Node, bl_test_util:cookie(), Out, Out]),
    Self = self(),
    P = spawn(fun() -> os:cmd(lists:flatten(Cmd)), Self ! watch_done end),
    %% the CLI says so once it is subscribed
    true = bl_test_util:wait_until(fun() -> {ok, B} = file:read_file(Out),
                                            binary:match(B, <<"watching">>) =/= nomatch end, 20000),
    P.

drain(N) -> drain(N, []).
drain(0, Acc) -> lists:reverse(Acc);
drain(N, Acc) ->
    receive {beamlet_config, _} = M -> drain(N - 1, [M | Acc])
    after 20000 -> lists:reverse(Acc)
    end.
