%% beamlet_cluster_tests - the shim's cluster wrappers against real beamlet workers: members,
%% cluster_status, leader, subscribe_cluster, and nodes() merging the cluster's member list.
-module(beamlet_cluster_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

cluster_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     {timeout, 90, fun cluster/0}}.

cluster() ->
    C = "shimcl" ++ integer_to_list(erlang:unique_integer([positive])),
    Fast = ["--heartbeat-interval-ms", "300", "--election-timeout-ms", "600"],
    Coord = shim_test_util:worker("clc", #{role => coordinator, cluster => C, extra_args => Fast}),
    A1 = shim_test_util:worker("cla1", #{role => agent, cluster => C, join => [Coord],
                                         extra_args => Fast}),
    A2 = shim_test_util:worker("cla2", #{role => agent, cluster => C, join => [Coord],
                                         extra_args => Fast}),
    Three = lists:sort([Coord, A1, A2]),
    %% members: the C cluster's view, with states
    ?assert(wait_until(fun() ->
        {ok, Ms} = beamlet:members(A1),
        lists:sort([N || #{node := N, kind := beamlet, state := active} <- Ms]) =:= Three
    end, 15000)),
    %% leader and status: the single coordinator leads, the cluster is healthy
    ?assert(wait_until(fun() -> beamlet:leader(A2) =:= {ok, {Coord, 1}} end, 15000)),
    {ok, St} = beamlet:cluster_status(Coord),
    ?assertMatch(#{leader := Coord, health := healthy, size := _}, St),
    ?assertEqual(list_to_binary(C), maps:get(cluster, St)),
    %% nodes(): all three with role and the cluster's state
    ?assert(wait_until(fun() ->
        Mine = [{N, R, S} || #{node := N, role := R, state := S} <- beamlet:nodes(),
                             lists:member(N, Three)],
        lists:sort(Mine) =:= lists:sort([{Coord, coordinator, active}, {A1, agent, active},
                                         {A2, agent, active}])
    end, 15000)),
    %% events: a subscriber sees A2 suspected when it is killed (its connection drops; the
    %% supervisor restarts it before it could be declared failed)
    ok = beamlet:subscribe_cluster(Coord),
    {ok, OsPid} = beamlet:worker_os_pid(A2),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ?assert(wait_until(fun() ->
        receive
            {beamlet_cluster_event, #{event := node_state_changed, node := A2, to := suspected}} -> true
        after 100 -> false
        end
    end, 15000)),
    ok = beamlet:unsubscribe_cluster(Coord),
    %% the supervisor restarts the worker: active again in the cluster's view
    ?assert(wait_until(fun() ->
        lists:member({A2, active}, [{N, S} || #{node := N, state := S} <- beamlet:nodes()])
    end, 20000)),
    %% errors keep their shape
    ?assertEqual({error, nodedown}, beamlet:members('nobody@nohost')),
    ok.
