%% beamlet_tests - calls, casts, error reasons, info/stats, nodes(), monitors, connect, against
%% real beamlet nodes.
-module(beamlet_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

%% One supervised worker shared by the tests that do not kill it.
api_test_() ->
    {setup,
     fun() ->
             ok = shim_test_util:start_app(),
             shim_test_util:worker("api", #{role => gateway, cluster => "shimc"})
     end,
     fun(_) -> shim_test_util:stop_app() end,
     fun(W) ->
             [{"call ping", fun() -> ?assertEqual({ok, pong}, beamlet:call(W, beamlet, ping)) end},
              {"call net_kernel", fun() ->
                   ?assertEqual({ok, yes}, beamlet:call(W, net_kernel, {is_auth, node()}, 2000))
               end},
              {"call a missing service: noproc at once", fun() ->
                   T0 = erlang:monotonic_time(millisecond),
                   ?assertEqual({error, noproc}, beamlet:call(W, no_such_service, hello, 10000)),
                   ?assert(erlang:monotonic_time(millisecond) - T0 < 2000)
               end},
              {"call with timeout 0: the C node's own timer answers timeout", fun() ->
                   ?assertEqual({error, timeout}, beamlet:call(W, beamlet, ping, 0))
               end},
              {"call a stopped node: the caller's timeout", fun() -> stopped_timeout(W) end},
              {"cast reaches the node", fun() -> cast(W) end},
              {"info and stats", fun() -> info_stats(W) end},
              {"registered", fun() ->
                   {ok, Names} = beamlet:registered(W),
                   ?assert(lists:member(beamlet, Names)),
                   ?assert(lists:member(net_kernel, Names))
               end},
              {"nodes() lists the worker", fun() -> nodes_lists(W) end},
              {"connect to a beamlet node", fun() -> ?assertEqual(ok, beamlet:connect(W)) end}]
     end}.

stopped_timeout(W) ->
    {ok, OsPid} = beamlet:worker_os_pid(W),
    shim_test_util:kill_os(OsPid, "STOP"),
    try
        T0 = erlang:monotonic_time(millisecond),
        ?assertEqual({error, timeout}, beamlet:call(W, beamlet, ping, 200)),
        Took = erlang:monotonic_time(millisecond) - T0,
        %% the caller's own 200 ms timeout
        ?assert(Took >= 190 andalso Took < 2000)
    after
        shim_test_util:kill_os(OsPid, "CONT")
    end,
    ?assertEqual({ok, pong}, beamlet:call(W, beamlet, ping)),
    %% The late reply went to the call's alias, which is gone: it never reaches the mailbox.
    receive {[alias | _], pong} = Late -> ?assertEqual(no_late_reply, Late) after 1000 -> ok end.

cast(W) ->
    %% The stock node has no service that acts on casts; the node's message counter shows it
    %% arrived: between two stats calls the casts add exactly one message each to what a call
    %% costs (a call is the request plus its monitor and demonitor signals).
    Count = fun() -> {ok, #{msgs_in := N}} = beamlet:stats(W), N end,
    A = Count(),
    B = Count(),
    ?assertEqual(ok, beamlet:cast(W, beamlet, hello)),
    ?assertEqual(ok, beamlet:cast(W, no_such_service, hello)),
    C = Count(),
    PerCall = B - A,
    ?assert(PerCall >= 1),
    ?assertEqual(PerCall + 2, C - B).

info_stats(W) ->
    {ok, I} = beamlet:info(W),
    ?assertMatch(#{node := W, role := gateway, cluster := <<"shimc">>, version := <<_/binary>>,
                   os_pid := P, port := Port} when is_integer(P) andalso is_integer(Port), I),
    ?assert(lists:member(node(), maps:get(connections, I))),
    ?assertEqual({ok, maps:get(os_pid, I)}, beamlet:worker_os_pid(W)),
    {ok, S} = beamlet:stats(W),
    ?assertMatch(#{msgs_in := _, msgs_out := _, bytes_in := _, connections := [_ | _]}, S).

nodes_lists(W) ->
    ?assert(wait_until(fun() -> lists:keymember(W, 2, [{x, maps:get(node, M)} || M <- beamlet:nodes()]) end, 5000)),
    [Entry] = [M || M = #{node := N} <- beamlet:nodes(), N =:= W],
    %% state is the cluster's view of the member (active once its cluster runs)
    ?assertEqual(#{node => W, role => gateway, cluster => <<"shimc">>,
                   version => maps:get(version, Entry), state => active}, Entry).

%% Tests that kill nodes: raw (unsupervised) beamlet nodes, so nothing restarts them.
down_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_all_raw(), shim_test_util:stop_app() end,
     [{"call a node that does not exist: nodedown", fun() ->
           N = shim_test_util:node_name(shim_test_util:name("ghost")),
           ?assertEqual({error, nodedown}, beamlet:call(N, beamlet, ping, 1000)),
           ?assertEqual({error, nodedown}, beamlet:connect(N)),
           ?assertEqual({error, nodedown}, beamlet:info(N))
       end},
      {"call a node killed with kill -9: nodedown", fun() ->
           R = {N, _} = shim_test_util:start_raw("dead"),
           ?assertEqual({ok, pong}, beamlet:call(N, beamlet, ping)),
           ok = shim_test_util:kill_raw(R),
           ?assert(wait_until(fun() -> not lists:member(N, erlang:nodes(hidden)) end, 5000)),
           ?assertEqual({error, nodedown}, beamlet:call(N, beamlet, ping, 1000))
       end},
      {"connection lost during a call: nodedown", fun() ->
           R = {N, OsPid} = shim_test_util:start_raw("mid"),
           ?assertEqual({ok, pong}, beamlet:call(N, beamlet, ping)),
           shim_test_util:kill_os(OsPid, "STOP"),
           Self = self(),
           spawn(fun() -> Self ! {mid, beamlet:call(N, beamlet, ping, 10000)} end),
           timer:sleep(300),
           ok = shim_test_util:kill_raw(R),
           ?assertEqual({mid, {error, nodedown}}, receive {mid, _} = M -> M after 5000 -> none end)
       end},
      {"monitor fires on kill -9, once", fun() ->
           R = {N, _} = shim_test_util:start_raw("mon"),
           Ref = beamlet:monitor(N),
           Ref2 = beamlet:monitor(N),
           ok = beamlet:demonitor(Ref2),
           ok = shim_test_util:kill_raw(R),
           ?assertEqual(ok, receive {beamlet_nodedown, Ref, N} -> ok after 5000 -> timeout end),
           ?assertEqual(none, receive {beamlet_nodedown, _, N} = M -> M after 300 -> none end)
       end},
      {"monitor of a node that is not connected fires at once", fun() ->
           N = shim_test_util:node_name(shim_test_util:name("nobody")),
           Ref = beamlet:monitor(N),
           ?assertEqual(ok, receive {beamlet_nodedown, Ref, N} -> ok after 1000 -> timeout end)
       end},
      {"nodes() drops a node that went down", fun() ->
           R = {N, _} = shim_test_util:start_raw("gone"),
           ?assertEqual(ok, beamlet:connect(N)),
           ?assert(lists:member(N, [maps:get(node, M) || M <- beamlet:nodes()])),
           ok = shim_test_util:kill_raw(R),
           ?assert(wait_until(fun() ->
                                      not lists:member(N, [maps:get(node, M) || M <- beamlet:nodes()])
                              end, 5000))
       end},
      {timeout, 30, {"a BEAM node: not_beamlet, noproc, not listed", fun beam_peer/0}}]}.

beam_peer() ->
    {ok, Peer, PNode} = peer:start(#{name => shim_test_util:name("peer"),
                                      args => ["-setcookie", shim_test_util:cookie()],
                                      wait_boot => 20000}),
    try
        ?assertEqual({error, not_beamlet}, beamlet:connect(PNode)),
        ?assertEqual({error, noproc}, beamlet:call(PNode, beamlet, ping, 1000)),
        timer:sleep(300),
        ?assertNot(lists:member(PNode, [maps:get(node, M) || M <- beamlet:nodes()]))
    after
        peer:stop(Peer)
    end.
