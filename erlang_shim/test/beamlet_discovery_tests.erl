%% beamlet_discovery_tests - EPMD polling finds beamlet nodes, notices losses, ignores BEAM nodes
%% and names that do not match, and never blocks on an unreachable host.
-module(beamlet_discovery_tests).
-include_lib("eunit/include/eunit.hrl").

discovery_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_all_raw(), shim_test_util:stop_app() end,
     [{timeout, 30, {"finds and loses nodes matching the pattern", fun find_lose/0}},
      {timeout, 30, {"BEAM nodes are probed, not listed, and left disconnected", fun beam_node/0}},
      {timeout, 30, {"an unreachable host does not block", fun unreachable/0}},
      {"started by the application from its env", fun app_env/0},
      {"a bad pattern is refused", fun() ->
           ?assertMatch({error, {bad_pattern, _}},
                        beamlet_discovery:start(#{name => none, pattern => "("}))
       end}]}.

%% A group tag: nodes named shim_test_util:name(Group ++ "x") match "^" ++ prefix() ++ Group.
group(Tag) -> Tag ++ integer_to_list(erlang:unique_integer([positive])).
pattern(Group) -> "^" ++ shim_test_util:prefix() ++ Group.

find_lose() ->
    G = group("disc"),
    {N1, _} = R1 = shim_test_util:start_raw(G ++ "a"),
    {N2, _} = shim_test_util:start_raw(G ++ "b"),
    {Other, _} = shim_test_util:start_raw(group("other")),
    {ok, D} = beamlet_discovery:start(#{name => none, pattern => pattern(G), interval => 60000,
                                        notify => self()}),
    try
        ?assertEqual(lists:sort([N1, N2]), beamlet_discovery:refresh(D)),
        ?assertEqual(lists:sort([N1, N2]), beamlet_discovery:found(D)),
        ?assertNot(lists:member(Other, beamlet_discovery:found(D))),
        ?assertEqual(ok, receive {beamlet_discovery, found, N1} -> ok after 1000 -> timeout end),
        ?assertEqual(ok, receive {beamlet_discovery, found, N2} -> ok after 1000 -> timeout end),
        %% found nodes are connected and known to beamlet_nodes
        ?assert(lists:member(N1, erlang:nodes(hidden))),
        ?assert(lists:member(N1, [maps:get(node, M) || M <- beamlet:nodes()])),
        ok = shim_test_util:kill_raw(R1),
        ?assert(shim_test_util:wait_until(fun() -> beamlet_discovery:refresh(D) =:= [N2] end,
                                          5000)),
        ?assertEqual(ok, receive {beamlet_discovery, lost, N1} -> ok after 1000 -> timeout end)
    after
        beamlet_discovery:stop(D)
    end.

beam_node() ->
    G = group("peer"),
    {ok, Peer, PNode} = peer:start(#{name => shim_test_util:name(G),
                                      args => ["-setcookie", shim_test_util:cookie()],
                                      connection => standard_io, wait_boot => 20000}),
    {ok, D} = beamlet_discovery:start(#{name => none, pattern => pattern(G), interval => 60000}),
    try
        ?assertNot(lists:member(PNode, erlang:nodes(connected))),
        ?assertEqual([], beamlet_discovery:refresh(D)),
        %% the probe connected (hidden) and disconnected again
        ?assert(shim_test_util:wait_until(
                  fun() -> not lists:member(PNode, erlang:nodes(connected)) end, 3000)),
        ?assertEqual([], beamlet_discovery:refresh(D))
    after
        beamlet_discovery:stop(D),
        peer:stop(Peer)
    end.

unreachable() ->
    G = group("unr"),
    {N, _} = shim_test_util:start_raw(G),
    %% 192.0.2.1 (TEST-NET-1) does not answer: erl_epmd:names/1 hangs until the poll deadline.
    {ok, D} = beamlet_discovery:start(#{name => none, pattern => pattern(G), interval => 60000,
                                        hosts => ["192.0.2.1"], query_timeout => 1500}),
    try
        timer:sleep(100), % the first poll is in flight now
        T0 = erlang:monotonic_time(millisecond),
        _ = beamlet_discovery:found(D),
        ?assert(erlang:monotonic_time(millisecond) - T0 < 200),
        ?assertEqual([N], beamlet_discovery:refresh(D, 10000)),
        T1 = erlang:monotonic_time(millisecond),
        ?assertEqual([N], beamlet_discovery:refresh(D, 10000)),
        %% one full poll: bounded by the deadline of the EPMD queries and of the probes
        ?assert(erlang:monotonic_time(millisecond) - T1 < 4000)
    after
        beamlet_discovery:stop(D)
    end.

app_env() ->
    G = group("env"),
    {N, _} = shim_test_util:start_raw(G),
    ok = shim_test_util:stop_app(),
    ok = application:set_env(beamlet, discovery, #{pattern => pattern(G), interval => 200}),
    try
        ok = shim_test_util:start_app(),
        ?assert(shim_test_util:wait_until(fun() -> beamlet_discovery:found() =:= [N] end, 5000))
    after
        ok = shim_test_util:stop_app(),
        ok = application:set_env(beamlet, discovery, false),
        ok = shim_test_util:start_app()
    end.
