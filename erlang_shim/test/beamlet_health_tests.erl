%% beamlet_health_tests - the shim's health wrappers against real beamlet workers: metrics,
%% health, maintenance (audited, and its mode), events, history, checks, alerts and ack errors;
%% an alert that fires from a config rule, reaches a subscriber of cluster.alerts and is
%% acknowledged; cluster-wide events and history over two members.
-module(beamlet_health_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

health_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     [{timeout, 60, fun health/0}, {timeout, 90, fun alerts_and_cluster/0}]}.

health() ->
    W = shim_test_util:worker("hlth", #{extra_args => ["--health-interval-ms", "300",
                                                      "--load-warn-per-cpu", "900",
                                                      "--load-crit-per-cpu", "1000"]}),
    {ok, M} = beamlet:metrics(W),
    ?assertMatch(#{memory := #{total_bytes := T}, load := #{load1 := _}, disks := [_ | _]}
                     when T > 0, M),
    {ok, H} = beamlet:health(W),
    ?assertMatch(#{score := S, status := _, nodes := [_ | _], alerts := _, recommendations := _}
                     when S >= 0.0 andalso S =< 1.0, H),
    ?assertMatch({ok, #{on := false}}, beamlet:maintenance(W)),
    ok = beamlet:set_maintenance(W, true, <<"eunit">>),
    ?assertMatch({ok, #{on := true, who := <<"eunit">>, since_ms := S0}} when S0 > 0,
                 beamlet:maintenance(W)),
    ?assert(wait_until(fun() ->
        {ok, #{status := St}} = beamlet:health(W), St =:= maintenance end, 5000)),
    ok = beamlet:set_maintenance(W, false, <<"eunit">>),
    ?assert(wait_until(fun() ->
        {ok, Es} = beamlet:events(W, #{type => <<"admin">>}),
        length([E || #{who := <<"eunit">>} = E <- Es]) =:= 2 end, 5000)),
    Since = erlang:system_time(millisecond) - 3600000,
    ?assert(wait_until(fun() ->
        {ok, #{points := Ps}} = beamlet:history(W, <<"cpu.percent">>, Since), length(Ps) >= 2
    end, 10000)),
    {ok, Names} = beamlet:history(W, <<>>, Since),
    ?assert(lists:member(<<"load.load1">>, Names)),
    ?assertEqual({ok, []}, beamlet:checks(W)),
    {ok, As} = beamlet:alerts(W),
    ?assert(is_list(As)),
    ?assertEqual({error, not_found}, beamlet:ack_alert(W, 424242, <<"eunit">>)),
    ?assertEqual({error, nodedown}, beamlet:metrics('nobody@nohost')),
    ok.

%% A rule that holds at once (cpu.percent >= 0) fires an alert on a cluster of two workers: a
%% subscriber of cluster.alerts gets it, an acknowledgement from the shim is seen there and in
%% alerts/1; events and history of both members come back merged.
alerts_and_cluster() ->
    Rule = <<"[{\"name\":\"always\",\"metric\":\"cpu.percent\",\"op\":\">=\",\"threshold\":0,"
             "\"severity\":\"warn\",\"summary\":\"eunit rule\"}]">>,
    Extra = ["--health-interval-ms", "300", "--load-warn-per-cpu", "900",
             "--load-crit-per-cpu", "1000", "--alert-rules", binary_to_list(Rule)],
    A = shim_test_util:worker("hal", #{extra_args => Extra}),
    B = shim_test_util:worker("hbl", #{extra_args => Extra, join => [A]}),
    ?assert(wait_until(fun() ->
        {ok, #{nodes := Ns}} = beamlet:health(A),
        length([N || #{state := active, node := N} <- Ns, N =:= A orelse N =:= B]) =:= 2
    end, 20000)),
    {ok, SubId} = beamlet:subscribe_alerts(B),
    ?assert(is_integer(SubId)),
    %% one alert per (rule, node): `always' on A and on B, decided once for the cluster
    ?assert(wait_until(fun() ->
        {ok, As} = beamlet:alerts(B),
        length([X || #{rule := <<"always">>, state := firing} = X <- As]) =:= 2 end, 20000)),
    {ok, As} = beamlet:alerts(A),
    [#{id := Id, node := ANode, severity := warn, summary := <<"eunit rule">>} | _] =
        [X || #{rule := <<"always">>, state := firing} = X <- As],
    ?assert(lists:member(ANode, [A, B])),
    ok = beamlet:ack_alert(A, Id, <<"eunit-ack">>),
    ?assertEqual({ok, acked}, recv_alert(Id, fun(#{acked_by := By}) -> By =:= <<"eunit-ack">> end)),
    ?assert(wait_until(fun() ->
        {ok, L} = beamlet:alerts(B),
        [ok || #{id := I, acked_by := <<"eunit-ack">>} <- L, I =:= Id] =:= [ok] end, 10000)),
    ok = beamlet_client:unsubscribe(B, SubId),
    %% events of both members, merged newest first, each saying whose log it came from
    {ok, Evs} = beamlet:cluster_events(A, #{type => <<"node">>, limit => 50}),
    Logged = lists:usort([L || #{logged_by := L} <- Evs]),
    ?assertEqual(lists:sort([A, B]), Logged),
    Times = [T || #{time_ms := T} <- Evs],
    ?assertEqual(Times, lists:reverse(lists:sort(Times))),
    Since = erlang:system_time(millisecond) - 600000,
    ?assert(wait_until(fun() ->
        {ok, #{nodes := Hs, points := Ps}} = beamlet:cluster_history(B, <<"load.load1">>, Since),
        lists:sort(maps:keys(Hs)) =:= lists:sort([A, B]) andalso
            lists:usort([N || [_, _, _, _, N] <- Ps]) =:= lists:sort([A, B]) andalso
            [T || [T | _] <- Ps] =:= lists:sort([T || [T | _] <- Ps])
    end, 10000)),
    ok.

recv_alert(Id, Pred) ->
    receive
        {beamlet_msg, <<"cluster.alerts">>, #{id := Id} = A, _} ->
            case Pred(A) of
                true -> {ok, acked};
                false -> recv_alert(Id, Pred)
            end;
        {beamlet_msg, <<"cluster.alerts">>, _, _} -> recv_alert(Id, Pred)
    after 10000 -> timeout
    end.
