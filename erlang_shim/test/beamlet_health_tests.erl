%% beamlet_health_tests - the shim's health wrappers against a real beamlet worker: metrics,
%% health, maintenance (audited), events, history, checks, alerts and ack errors.
-module(beamlet_health_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

health_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     {timeout, 60, fun health/0}}.

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
    ok = beamlet:set_maintenance(W, true, <<"eunit">>),
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
