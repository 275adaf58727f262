%% beamlet_config_tests - the shim's cluster configuration wrappers (beamlet_client:config/1,2,
%% set_config/4, unset_config/3, config_history/1,2, config_status/3, watch_config/1,
%% unwatch_config/1, and the beamlet facade) against real workers: a coordinator and an agent
%% started by the shim's supervisor.
-module(beamlet_config_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

config_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     {timeout, 120, fun config/0}}.

fast() -> ["--heartbeat-interval-ms", "300", "--election-timeout-ms", "600"].

config() ->
    C = "shimcf" ++ integer_to_list(erlang:unique_integer([positive])),
    Co = shim_test_util:worker("cfc", #{cluster => C, role => coordinator, extra_args => fast()}),
    Ag = shim_test_util:worker("cfa", #{cluster => C, join => [Co], extra_args => fast()}),
    ?assert(wait_until(fun() ->
        case beamlet_client:config(Ag) of
            {ok, #{leader := L}} -> L =:= atom_to_binary(Co);
            _ -> false
        end end, 20000)),
    {ok, #{version := V0, settings := S0}} = beamlet_client:config(Co),
    ?assertEqual([], [K || #{key := K} <- S0, K =:= <<"log_level">>]),
    ?assertEqual({error, not_set}, beamlet_client:config(Ag, <<"log_level">>)),
    %% a watcher on the agent sees the change the agent applies
    ok = beamlet_client:watch_config(Ag),
    %% set through the agent (forwarded to the leader): committed, with its version and term
    {ok, #{state := <<"committed">>, version := V1, term := T1, key := <<"log_level">>,
           value := <<"debug">>, live := true, changed := true}} =
        beamlet_client:set_config(Ag, <<"log_level">>, <<"debug">>, <<"shim-eunit">>),
    ?assert(V1 > V0),
    receive {beamlet_config, #{key := <<"log_level">>, new := <<"debug">>, who := <<"shim-eunit">>}} -> ok
    after 10000 -> error(no_config_change)
    end,
    ?assert(wait_until(fun() -> beamlet_client:config(Co, <<"log_level">>) =:= {ok, <<"debug">>} end, 10000)),
    {ok, #{settings := [#{key := <<"log_level">>, applied := <<"running">>}]}} =
        beamlet_client:config(Ag) ,
    %% the same value again: nothing changes
    {ok, #{state := <<"unchanged">>, changed := false, version := V1}} =
        beamlet:set_config(Co, <<"log_level">>, <<"debug">>, <<"shim-eunit">>),
    %% an integer value, through the facade; a bad one is refused naming the key
    {ok, #{state := <<"committed">>, value := <<"4">>}} =
        beamlet:set_config(Co, <<"failure_threshold">>, 4, <<"shim-eunit">>),
    {error, <<"invalid heartbeat_interval_ms", _/binary>>} =
        beamlet_client:set_config(Ag, <<"heartbeat_interval_ms">>, <<"abc">>, <<"shim-eunit">>),
    {error, Per} = beamlet_client:set_config(Ag, <<"role">>, <<"agent">>, <<"shim-eunit">>),
    ?assertNotEqual(nomatch, binary:match(Per, <<"per-node">>)),
    %% status: committed as either node sees it; another term's write under that version: lost
    ?assert(wait_until(fun() ->
        {ok, #{state := St}} = beamlet_client:config_status(Ag, V1, T1), St =:= <<"committed">> end, 10000)),
    {ok, #{state := <<"lost">>}} = beamlet:config_status(Co, V1, T1 + 3),
    {ok, #{state := <<"unknown">>}} = beamlet_client:config_status(Co, 987654, T1),
    %% history, newest first, per key
    {ok, [#{key := <<"failure_threshold">>, new := <<"4">>} | _]} = beamlet_client:config_history(Co),
    ?assert(wait_until(fun() ->
        case beamlet:config_history(Ag, <<"log_level">>) of
            {ok, [#{new := <<"debug">>, old := undefined, who := <<"shim-eunit">>}]} -> true;
            _ -> false
        end end, 10000)),
    %% unwatched: the next change is not sent to us; unset goes back to each node's own value
    ok = beamlet:unwatch_config(Ag),
    receive {beamlet_config, #{key := <<"failure_threshold">>}} -> ok after 5000 -> ok end,
    {ok, #{value := undefined, state := <<"committed">>}} =
        beamlet:unset_config(Ag, <<"log_level">>, <<"shim-eunit">>),
    receive {beamlet_config, M} -> error({still_watching, M}) after 1000 -> ok end,
    ?assert(wait_until(fun() -> beamlet:config(Co, <<"log_level">>) =:= {error, not_set} end, 10000)),
    {error, <<_/binary>>} = beamlet_client:unset_config(Co, <<"log_level">>, <<"shim-eunit">>),
    ok = beamlet:watch_config(Co),
    ok = beamlet_client:unwatch_config(Co),
    ?assertEqual({error, nodedown}, beamlet_client:config('nobody@nohost')),
    ?assertEqual({error, nodedown}, beamlet_client:set_config('nobody@nohost', <<"log_level">>,
                                                              <<"info">>, <<"x">>)),
    ok.
