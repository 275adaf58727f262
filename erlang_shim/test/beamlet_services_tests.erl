%% beamlet_services_tests - the shim's wrappers over the C cluster services against real workers:
%% service registry (register, find, watch, load-balanced call, deregister), global names, pub/sub
%% and health metrics.
-module(beamlet_services_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

services_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     {timeout, 90, fun services/0}}.

services() ->
    C = "shimsv" ++ integer_to_list(erlang:unique_integer([positive])),
    W1 = shim_test_util:worker("sv1", #{cluster => C}),
    W2 = shim_test_util:worker("sv2", #{cluster => C, join => [W1]}),
    ?assert(wait_until(fun() ->
        {ok, Ms} = beamlet:members(W2),
        length([x || #{kind := beamlet, state := active} <- Ms]) =:= 2 end, 15000)),
    ok = beamlet:watch_services(W2),
    %% an instance on each node: the service is the node's `beamlet' process
    {ok, Id1} = beamlet:register_service(W1, #{name => <<"svc">>, tags => [<<"a">>],
                                                metadata => #{<<"process">> => <<"beamlet">>}}),
    {ok, _Id2} = beamlet:register_service(W2, #{name => <<"svc">>, tags => [<<"b">>],
                                                 metadata => #{<<"process">> => <<"beamlet">>}}),
    ?assertMatch({ok, _}, shim_test_util_recv_added(Id1)),
    ?assert(wait_until(fun() ->
        {ok, L} = beamlet:find_services(#{name => <<"svc">>}), length(L) =:= 2 end, 10000)),
    {ok, [#{node := W1}]} = beamlet:find_services(W2, #{name => <<"svc">>, tags_any => [<<"a">>]}),
    %% load-balanced call: both instances answer `info' with their own node
    Nodes = lists:usort([begin {ok, #{node := N}} = beamlet:service_call(<<"svc">>, info), N end
                         || _ <- lists:seq(1, 4)]),
    ?assertEqual(lists:sort([W1, W2]), Nodes),
    ?assertEqual({error, no_instances}, beamlet:service_call(<<"nosuch">>, info)),
    ok = beamlet:deregister_service(W1, Id1),
    ?assert(wait_until(fun() ->
        {ok, L} = beamlet:find_services(W2, #{name => <<"svc">>}), length(L) =:= 1 end, 10000)),
    %% global names: a C process's name, resolved through any node and through OTP global
    {ok, Pid} = beamlet_client:whereis(W1, beamlet),
    yes = gen_server:call({beamlet_global, W1}, {register, shim_global_name, Pid}, 15000),
    ?assert(wait_until(fun() -> beamlet:whereis(shim_global_name) =:= Pid end, 10000)),
    %% "any node" may be W1: W2 learns the name by replication, so wait for it there too
    ?assert(wait_until(fun() -> beamlet:whereis(W2, shim_global_name) =:= Pid end, 10000)),
    ?assertEqual(undefined, beamlet:whereis(no_such_global_name)),
    %% pub/sub: the caller subscribes on one node and gets what is published on the other
    {ok, Sub} = beamlet:subscribe(W2, <<"shim.#">>),
    ?assert(is_integer(Sub)),
    timer:sleep(300), % the subscription replicates to W1
    {ok, MsgId} = beamlet:publish(W1, <<"shim.a.b">>, {hello, 1}),
    ?assertMatch({ok, _}, receive {beamlet_msg, <<"shim.a.b">>, {hello, 1}, #{id := MsgId}} = M -> {ok, M}
                          after 10000 -> timeout end),
    {ok, _} = beamlet:publish(W1, <<"other.topic">>, nope),
    ok = beamlet:unsubscribe(W2, Sub),
    ?assertEqual({error, not_found}, beamlet:unsubscribe(W2, Sub)),
    ?assertEqual(ok, beamlet:ack(W2, Sub, MsgId)),
    receive {beamlet_msg, <<"other.topic">>, _, _} -> ?assert(false) after 300 -> ok end,
    %% health: the node's metrics sample and its sampler settings
    {ok, #{node := W1, memory := #{total_bytes := Total}, load := #{load1 := L1},
           cpu := #{count := Cpus}, disks := Disks}} = beamlet:metrics(W1),
    ?assert(is_integer(Total) andalso Total > 0),
    ?assert(is_float(L1)),
    ?assert(is_integer(Cpus) andalso Cpus >= 1),
    ?assert(is_list(Disks)),
    ?assertMatch({ok, #{interval_ms := I}} when is_integer(I), beamlet:health_config(W1)),
    ?assertEqual({error, nodedown},
                 beamlet:metrics(shim_test_util:node_name(shim_test_util:name("ghost")))),
    ok.

shim_test_util_recv_added(Id) ->
    receive
        {beamlet_registry_event, #{event := added, entry := #{id := Id}}} -> {ok, Id}
    after 10000 -> timeout
    end.
