%% beamlet_gleam_ffi_tests - the Gleam FFI module run in the module layout of a Gleam build (see
%% gleam_run.sh) against real beamlet nodes: called with the argument shapes Gleam compiles to
%% (String = binary, Node/Atom = atom, records = tagged tuples, Option = {some, V} | none,
%% Subject = {subject, Pid, Ref} | {named_subject, Name}) and returning the shapes the Gleam types
%% declare. The last test checks that every function an @external names was called here.
-module(beamlet_gleam_ffi_tests).
-include_lib("eunit/include/eunit.hrl").

-export([start_child/2]).

-define(FFI, beamlet_gleam_ffi).
-define(NOBODY, {named_subject, gleam_nobody_has_this_name}).

ffi_test_() ->
    {setup,
     fun() ->
             %% every FFI function called by the tests is counted (see all_externals_called/0)
             _ = erlang:trace_pattern({?FFI, '_', '_'}, true, [call_count]),
             ?assertEqual({ok, nil}, ?FFI:start()),
             {ok, W} = ?FFI:start_worker(options(shim_test_util:name("gl"),
                                                 #{role => {some, monitor},
                                                   cluster => {some, <<"gleamc">>},
                                                   extra => data_dir_args()})),
             ?assert(is_atom(W)),
             W
     end,
     fun(_) -> shim_test_util:stop_all_raw(), shim_test_util:stop_app() end,
     fun(W) ->
             %% generous bounds: the machine may be loaded, several tests wait for the cluster
             [{Desc, {timeout, 120, Fun}} || {Desc, Fun} <- tests(W)]
     end}.

tests(W) ->
             [{"start_distribution: Ok(Node)", fun() ->
                   ?assertEqual({ok, node()},
                                ?FFI:start_distribution(<<"ignored">>,
                                                        list_to_binary(shim_test_util:cookie())))
               end},
              {"call: Ok(Dynamic) for the decoder", fun() ->
                   ?assertEqual({ok, pong}, ?FFI:call(W, beamlet, ping, 1000)),
                   ?assertEqual({ok, yes}, ?FFI:call(W, net_kernel, {is_auth, node()}, 1000))
               end},
              {"call errors: NoProc, Timeout, NodeDown", fun() ->
                   ?assertEqual({error, no_proc}, ?FFI:call(W, nobody, <<"hi">>, 1000)),
                   ?assertEqual({error, timeout}, ?FFI:call(W, beamlet, ping, 0)),
                   ?assertEqual({error, node_down}, ?FFI:call(ghost(), beamlet, ping, 1000))
               end},
              {"cast: Nil", fun() -> ?assertEqual(nil, ?FFI:cast(W, beamlet, <<"hi">>)) end},
              {"cluster: members, status, leader, subscribe/unsubscribe", fun() -> cluster(W) end},
              {"registry: register, watch, find, call, deregister", fun() -> registry(W) end},
              {"global: whereis, whereis_on", fun() -> global(W) end},
              {"pubsub: subscribe (every Qos), publish_with, unsubscribe", fun() -> pubsub(W) end},
              {"connect: Ok(Node) | Error(Unreachable)", fun() ->
                   ?assertEqual({ok, W}, ?FFI:connect(atom_to_binary(W))),
                   ?assertEqual({error, unreachable}, ?FFI:connect(atom_to_binary(ghost())))
               end},
              {"nodes: List(NodeInfo)", fun() ->
                   ?assert(lists:member({node_info, W, monitor, <<"gleamc">>, <<"0.1.0">>},
                                        ?FFI:nodes())),
                   [?assertMatch({node_info, N, _, <<_/binary>>, <<_/binary>>} when is_atom(N), I)
                    || I <- ?FFI:nodes()]
               end},
              {"info: Ok(Info)", fun() ->
                   {ok, I} = ?FFI:info(W),
                   ?assertMatch({info, W, monitor, <<"gleamc">>, <<_/binary>>, Up, Procs,
                                 OsPid, Port, [_ | _]}
                                  when is_integer(Up) andalso is_integer(Procs) andalso
                                       is_integer(OsPid) andalso is_integer(Port), I),
                   ?assert(lists:member(node(), element(10, I))),
                   ?assertEqual({error, node_down}, ?FFI:info(ghost()))
               end},
              {"stats: Ok(Dict(String, Dynamic))", fun() ->
                   {ok, S} = ?FFI:stats(W),
                   ?assert(is_integer(maps:get(<<"msgs_in">>, S))),
                   ?assert(lists:all(fun is_binary/1, maps:keys(S)))
               end},
              {"registered and whereis on a node", fun() ->
                   {ok, Names} = ?FFI:registered(W),
                   ?assert(lists:member(beamlet, Names)),
                   ?assert(lists:all(fun is_atom/1, Names)),
                   ?assertMatch({ok, P} when is_pid(P), ?FFI:whereis(W, beamlet)),
                   ?assertEqual({error, nil}, ?FFI:whereis(W, nobody_here)),
                   ?assertEqual({error, nil}, ?FFI:whereis(ghost(), beamlet))
               end},
              {"health: Metrics, raw metrics, interval", fun() -> health(W) end},
              {"health: cluster, maintenance, checks, history, metric names, cluster history",
               fun() -> health_more(W) end},
              {"alerts: list, acknowledge, subscribe; events: list, list_cluster", fun alerts/0},
              {"monitor/demonitor with a Subject", fun monitor/0},
              {"workers: running, os_pid, stop, errors", fun() -> workers(W) end},
              {"supervised workers under an OTP supervisor, as gleam_otp runs them", fun supervised/0},
              {"discovery, started and supervised", fun discovery/0},
              {"task: submit, wait, get, cancel, handle; changes and watch of every task",
               fun() -> tasks(W) end},
              {"config: document, get, set, unset, history, status, watch", fun() -> config(W) end},
              {"every @external was called by this suite", fun all_externals_called/0}].

%% beamlet/config with Gleam's shapes, on W (the cluster has the coordinator tasks/1 started, or
%% one started here)
config(W) ->
    Leads = fun() -> case ?FFI:config_document(W) of
                         {ok, {document, _, _, {some, L}, _}} when is_atom(L) -> true;
                         _ -> false
                     end end,
    _ = case shim_test_util:wait_until(Leads, 5000) of
            true -> ok;
            false -> {ok, _} = ?FFI:start_worker(options(shim_test_util:name("glcf"),
                                                         #{role => {some, coordinator},
                                                           cluster => {some, <<"gleamc">>},
                                                           join => [W]}))
        end,
    ?assert(shim_test_util:wait_until(Leads, 30000)),
    ?assertEqual({ok, none}, ?FFI:config_get(W, <<"log_level">>)),
    Tag = make_ref(),
    ?assertEqual({error, unregistered_subject}, ?FFI:config_watch(W, ?NOBODY)),
    {ok, Sub} = ?FFI:config_watch(W, {subject, self(), Tag}),
    {ok, {write, V, T, <<"log_level">>, {some, <<"debug">>}, true, committed, H, N}} =
        ?FFI:config_set(W, <<"log_level">>, <<"debug">>, <<"gleam">>),
    ?assert(H >= N andalso N >= 1),
    receive {Tag, {change, V, _, <<"log_level">>, none, {some, <<"debug">>}, <<"gleam">>, At}} ->
            ?assert(At > 0)
    after 10000 -> error(no_config_change)
    end,
    ?assertEqual({ok, {some, <<"debug">>}}, ?FFI:config_get(W, <<"log_level">>)),
    {ok, {document, _, V, _, Settings}} = ?FFI:config_document(W),
    ?assert(lists:member({setting, <<"log_level">>, <<"debug">>, true, running}, Settings)),
    {ok, [{change, V, _, <<"log_level">>, none, {some, <<"debug">>}, <<"gleam">>, _} | _]} =
        ?FFI:config_history(W, {some, <<"log_level">>}),
    {ok, [_ | _]} = ?FFI:config_history(W, none),
    ?assertMatch({ok, {status, V, committed, _, _, _}}, ?FFI:config_status(W, V, T)),
    ?assertMatch({ok, {status, _, unknown, _, _, _}}, ?FFI:config_status(W, V + 100000, T)),
    {error, {failed, <<"invalid heartbeat_interval_ms", _/binary>>}} =
        ?FFI:config_set(W, <<"heartbeat_interval_ms">>, <<"abc">>, <<"gleam">>),
    {ok, {write, _, _, <<"log_level">>, none, true, committed, _, _}} =
        ?FFI:config_unset(W, <<"log_level">>, <<"gleam">>),
    receive {Tag, {change, _, _, <<"log_level">>, {some, <<"debug">>}, none, _, _}} -> ok
    after 10000 -> error(no_unset_change)
    end,
    ?assertEqual(nil, ?FFI:unsubscribe(Sub)),
    ?assertEqual({error, node_down}, ?FFI:config_document(ghost())).

%% beamlet/task with Gleam's shapes: a coordinator joins W (an agent for the built-in types)
tasks(W) ->
    {ok, Co} = ?FFI:start_worker(options(shim_test_util:name("glco"),
                                         #{role => {some, coordinator}, cluster => {some, <<"gleamc">>},
                                           join => [W]})),
    Sub = fun(Kind, Payload, Caps) ->
                  {submission, Kind, {some, ?FFI:identity(Payload)}, Caps, normal, none, 0, none, none, none}
          end,
    ?assert(shim_test_util:wait_until(fun() ->
        case beamlet_task:agents(Co) of {ok, [_ | _]} -> true; _ -> false end end, 30000)),
    {ok, Id} = ?FFI:task_submit(Co, Sub(<<"echo">>, {<<"hi">>, 1}, [])),
    ?assertMatch({ok, {task, Id, <<"echo">>, succeeded, 1, {some, W}, <<_:32/binary>>,
                       {some, {<<"hi">>, 1}}, none, _, _}}, ?FFI:task_wait(Co, Id, 20000)),
    ?assertMatch({ok, {task, Id, _, succeeded, _, _, _, _, _, _, _}}, ?FFI:task_get(W, Id)),
    ?assertEqual({error, not_found}, ?FFI:task_get(Co, <<"nope">>)),
    {ok, Q} = ?FFI:task_submit(Co, Sub(<<"echo">>, 1, [<<"nobody-has-it">>])),
    ?assertMatch({ok, {task, Q, _, cancelled, _, _, _, _, _, _, _}}, ?FFI:task_cancel(Co, Q)),
    ?assertEqual({error, {failed, <<"already_final">>}}, ?FFI:task_cancel(Co, Q)),
    %% task.queue_timeout: a task no agent can take fails with queue_timeout
    {ok, QT} = ?FFI:task_submit(Co, {submission, <<"echo">>, none, [<<"nobody-has-it">>], normal,
                                     none, 0, none, none, {some, 300}}),
    ?assertMatch({ok, {task, QT, _, failed, 0, none, _, none, {some, queue_timeout}, _, _}},
                 ?FFI:task_wait(Co, QT, 10000)),
    {ok, H} = ?FFI:task_handle(W, <<"gleam.double">>,
                               fun({job, _, _, N, _}) when is_integer(N) -> {ok, 2 * N};
                                  ({job, _, _, _, _}) -> {error, <<"not a number">>} end),
    ?assert(is_pid(H)),
    ?assert(shim_test_util:wait_until(fun() ->
        {ok, As} = beamlet_task:agents(Co),
        lists:any(fun(#{types := Ts}) -> lists:member(<<"gleam.double">>, Ts) end, As) end, 15000)),
    {ok, D} = ?FFI:task_submit(Co, Sub(<<"gleam.double">>, 21, [])),
    ?assertMatch({ok, {task, D, _, succeeded, _, _, _, {some, 42}, none, _, _}}, ?FFI:task_wait(Co, D, 20000)),
    {ok, E} = ?FFI:task_submit(Co, Sub(<<"gleam.double">>, x, [])),
    ?assertMatch({ok, {task, E, _, failed, _, _, _, none, {some, <<"not a number">>}, _, _}},
                 ?FFI:task_wait(Co, E, 20000)),
    task_feed(Co, W, Sub),
    unlink(H),
    exit(H, shutdown).

%% task.changes and task.watch (the feed of every task) with Gleam's shapes
task_feed(Co, W, Sub) ->
    {ok, {page, [], 0, {'after', T0, _} = C0}} =
        ?FFI:task_changes(Co, from_now, none, none, 100, 0),
    Tag = make_ref(),
    ?assertEqual({error, unregistered_subject}, ?FFI:task_watch(Co, none, none, ?NOBODY)),
    {ok, Watch} = ?FFI:task_watch(W, {some, <<"echo">>}, none, {subject, self(), Tag}),
    {ok, Failing} = ?FFI:task_watch(Co, none, {some, failed}, {subject, self(), Tag}),
    {ok, Id} = ?FFI:task_submit(Co, Sub(<<"echo">>, feed, [])),
    {ok, F} = ?FFI:task_submit(Co, Sub(<<"gleam.double">>, x, [])),
    {ok, _} = ?FFI:task_wait(Co, Id, 20000),
    {ok, _} = ?FFI:task_wait(Co, F, 20000),
    %% the watch of echo tasks: Id's transitions in order up to succeeded, each once
    Seen = watched(Tag, Id, []),
    States = [S || {change, _, _, _, S, _, _, _, _} <- Seen],
    ?assertEqual(succeeded, lists:last(States)),
    ?assertEqual(lists:usort([Q || {change, Q, _, _, _, _, _, _, _} <- Seen]),
                 [Q || {change, Q, _, _, _, _, _, _, _} <- Seen]),
    [?assertMatch({change, _, Id, <<"echo">>, _, _, _, _, none}, Ch) || Ch <- Seen],
    ?assertMatch({change, _, Id, _, succeeded, 1, {some, W}, At, none} when At > 0, lists:last(Seen)),
    %% the watch of failures: F, nothing of Id
    receive {Tag, {change, _, F, <<"gleam.double">>, failed, _, _, _, _}} -> ok
    after 20000 -> error(no_failed_change)
    end,
    %% the same changes by page from the first cursor; a state filter keeps only that state
    {ok, {page, Cs, 0, {'after', T0, Next}}} =
        ?FFI:task_changes(Co, C0, {some, <<"echo">>}, none, 100, 5000),
    ?assert(Next > 0),
    ?assertEqual(Seen, [Ch || {change, _, I, _, _, _, _, _, _} = Ch <- Cs, I =:= Id]),
    {ok, {page, Done, 0, _}} = ?FFI:task_changes(Co, C0, none, {some, succeeded}, 100, 5000),
    ?assert(lists:keymember(Id, 3, Done)),
    [?assertMatch({change, _, _, _, succeeded, _, _, _, _}, Ch) || Ch <- Done],
    {ok, {page, [One], 0, {'after', T0, N1}}} = ?FFI:task_changes(Co, C0, none, none, 1, 5000),
    ?assertEqual(element(2, One) + 1, N1),
    ?assertEqual({ok, {page, [], 0, {'after', T0, Next}}},
                 ?FFI:task_changes(Co, {'after', T0, Next}, {some, <<"echo">>}, none, 100, 0)),
    ?assertEqual({error, node_down},
                 ?FFI:task_changes(ghost(), from_now, none, none, 100, 0)),
    %% unsubscribe ends the relay and its poller; nothing more arrives
    Relay = ?FFI:subscription_pid(Watch),
    {links, [Poller]} = process_info(Relay, links),
    ?assertEqual(nil, ?FFI:unsubscribe(Watch)),
    ?assertEqual(nil, ?FFI:unsubscribe(Failing)),
    ?assertNot(is_process_alive(Relay)),
    ?assert(shim_test_util:wait_until(fun() -> not is_process_alive(Poller) end, 5000)),
    Flush = fun Fl() -> receive {Tag, _} -> Fl() after 0 -> ok end end,
    Flush(),
    {ok, Id2} = ?FFI:task_submit(Co, Sub(<<"echo">>, again, [])),
    {ok, _} = ?FFI:task_wait(Co, Id2, 20000),
    receive {Tag, Late} -> ?assertEqual(nothing_after_unsubscribe, Late) after 1000 -> ok end.

%% The watched changes of task Id until it succeeded (other echo tasks' are skipped).
watched(Tag, Id, Acc) ->
    receive
        {Tag, {change, _, Id, _, succeeded, _, _, _, _} = C} -> lists:reverse([C | Acc]);
        {Tag, {change, _, Id, _, _, _, _, _, _} = C} -> watched(Tag, Id, [C | Acc]);
        {Tag, {change, _, _, <<"echo">>, _, _, _, _, _}} -> watched(Tag, Id, Acc)
    after 20000 -> error({no_succeeded_change, lists:reverse(Acc)})
    end.

ghost() -> shim_test_util:node_name(shim_test_util:name("ghost")).

data_dir_args() ->
    Data = filename:join(os:getenv("BL_GLEAM_LAYOUT"), "data_" ++ shim_test_util:name("gl")),
    ok = filelib:ensure_dir(filename:join(Data, "x")),
    [<<"--data-dir">>, list_to_binary(Data)].

%% worker.Options(name, cookie, role, cluster, join, extra_args, binary, start_timeout)
options(Name, Over) ->
    M = maps:merge(#{cookie => none, role => none, cluster => none, join => [], extra => [],
                     binary => none, timeout => 60000}, Over),
    {options, list_to_binary(Name), maps:get(cookie, M), maps:get(role, M), maps:get(cluster, M),
     maps:get(join, M), maps:get(extra, M), maps:get(binary, M), maps:get(timeout, M)}.

recv(Tag, Timeout) ->
    receive {Tag, M} -> {ok, M} after Timeout -> timeout end.

%% cluster.members / status / leader / subscribe with Gleam's shapes.
cluster(W) ->
    {ok, Members} = ?FFI:cluster_members(W),
    ?assert(lists:member({member, W, monitor, active, beamlet_node}, Members)),
    [?assertMatch({member, N, _, S, K} when is_atom(N) andalso is_atom(S) andalso
                                           (K =:= beamlet_node orelse K =:= beam_node), M)
     || M <- Members],
    %% this (BEAM) node is a member too, once the node has seen it stay silent (docs/gleam.md)
    Me = node(),
    ?assert(shim_test_util:wait_until(
              fun() -> {ok, Ms} = ?FFI:cluster_members(W),
                       lists:member({member, Me, {other_role, <<"beam">>}, active, beam_node}, Ms)
              end, 10000)),
    ?assertMatch({ok, {status, <<"gleamc">>, _, none, 0, true}}, ?FFI:cluster_status(W)),
    ?assertEqual({ok, {leader, none, 0}}, ?FFI:cluster_leader(W)),
    ?assertEqual({error, node_down}, ?FFI:cluster_members(ghost())),
    ?assertEqual({error, unregistered_subject}, ?FFI:cluster_subscribe(W, ?NOBODY)),
    Tag = make_ref(),
    {ok, Sub} = ?FFI:cluster_subscribe(W, {subject, self(), Tag}),
    ?assert(is_pid(Sub)),
    %% the same events on the pub/sub topic cluster.events, in the shape cluster.event_decoder()
    %% reads (atom keys; event, node, from, to atoms; role a binary; has_leader, term)
    PTag = make_ref(),
    {ok, PSub} = ?FFI:pubsub_subscribe(W, <<"cluster.events">>, at_most_once, {subject, self(), PTag}),
    %% a second node joins the cluster: the subscriber sees NodeJoined(node, role) for it
    {ok, W2} = ?FFI:start_worker(options(shim_test_util:name("gl2"),
                                         #{role => {some, agent}, cluster => {some, <<"gleamc">>},
                                           join => [W]})),
    ?assertEqual({ok, {node_joined, W2, agent}},
                 receive {Tag, {node_joined, W2, _} = E} -> {ok, E} after 10000 -> timeout end),
    ?assertMatch({ok, {message, <<"cluster.events">>, #{event := node_joined, node := W2,
                                                         role := <<"agent">>}, _, _}},
                 receive {PTag, {message, _, #{event := node_joined, node := W2}, _, _} = PM} -> {ok, PM}
                 after 10000 -> timeout end),
    ?assertEqual({ok, W2}, ?FFI:node_from_dynamic(W2)),
    ?assertEqual({error, nil}, ?FFI:node_from_dynamic(<<"not a node">>)),
    %% after unsubscribe, the node's leaving produces no event here, and the relay is gone
    ?assertEqual(nil, ?FFI:unsubscribe(Sub)),
    ?assertNot(is_process_alive(Sub)),
    ?assertEqual({ok, nil}, ?FFI:stop_worker(W2)),
    ?assertMatch({ok, {message, _, #{event := node_state_changed, node := W2, from := F, to := T}, _, _}}
                   when is_atom(F) andalso is_atom(T),
                 receive {PTag, {message, _, #{event := node_state_changed, node := W2}, _, _} = PM2} -> {ok, PM2}
                 after 10000 -> timeout end),
    ?assertEqual(nil, ?FFI:unsubscribe(PSub)),
    ?assertEqual(timeout, recv(Tag, 3000)),
    ?assertEqual(nil, ?FFI:unsubscribe(Sub)), % a second time: nothing happens
    %% a subscription ends by itself when the connection drops (kill -9 of the node)
    {N3, _} = R3 = shim_test_util:start_raw("glsubkill"),
    {ok, N3} = ?FFI:connect(atom_to_binary(N3)),
    {ok, Sub3} = ?FFI:cluster_subscribe(N3, {subject, self(), make_ref()}),
    Relay = ?FFI:subscription_pid(Sub3),
    ?assert(is_process_alive(Relay)),
    Mon = erlang:monitor(process, Relay),
    ok = shim_test_util:kill_raw(R3),
    ?assertEqual(down, receive {'DOWN', Mon, process, Relay, _} -> down after 15000 -> timeout end).

%% registry.register/watch/find/find_on/call/deregister with Gleam's shapes.
registry(W) ->
    Meta = #{<<"process">> => <<"beamlet">>},
    WTag = make_ref(),
    {ok, Watch} = ?FFI:registry_watch(W, {subject, self(), WTag}),
    ?assertEqual({error, unregistered_subject}, ?FFI:registry_watch(W, ?NOBODY)),
    {ok, Id} = ?FFI:registry_register(W, {registration, <<"gsvc">>, <<"1.2">>, <<"10.0.0.7">>,
                                          8080, [<<"t">>], Meta, none}),
    ?assert(is_binary(Id)),
    Inst = {instance, Id, <<"gsvc">>, W, <<"1.2">>, <<"10.0.0.7">>, 8080, [<<"t">>], Meta, passing},
    ?assertEqual({ok, {added, Inst}}, recv(WTag, 10000)),
    ?assert(shim_test_util:wait_until(fun() -> ?FFI:registry_find(<<"gsvc">>) =:= {ok, [Inst]} end,
                                      10000)),
    ?assertEqual({ok, [Inst]}, ?FFI:registry_find_on(W, <<"gsvc">>)),
    %% registry.Query(name, tags_all, tags_any, health, metadata)
    Q = fun(Name, All, Any, Health, M) -> {query, Name, All, Any, Health, M} end,
    ?assertEqual({ok, [Inst]}, ?FFI:registry_search(Q({some, <<"gsvc">>}, [<<"t">>], [], {some, passing}, Meta))),
    ?assertEqual({ok, [Inst]}, ?FFI:registry_search_on(W, Q(none, [], [<<"x">>, <<"t">>], none, #{}))),
    ?assertEqual({ok, []}, ?FFI:registry_search_on(W, Q({some, <<"gsvc">>}, [<<"t">>, <<"x">>], [], none, #{}))),
    ?assertEqual({ok, []}, ?FFI:registry_search_on(W, Q({some, <<"gsvc">>}, [], [], {some, critical}, #{}))),
    ?assertEqual({ok, []}, ?FFI:registry_search_on(W, Q(none, [], [], none, #{<<"process">> => <<"other">>}))),
    ?assertEqual({ok, pong}, ?FFI:registry_call(<<"gsvc">>, ping, 2000)),
    ?assertEqual({error, no_instances}, ?FFI:registry_call(<<"nosuch">>, ping, 1000)),
    {ok, Id2} = ?FFI:registry_register(W, {registration, <<"gttl">>, <<>>, <<>>, 0, [], #{},
                                           {some, 60000}}),
    ?assertMatch({ok, {added, {instance, Id2, <<"gttl">>, W, _, _, 0, [], _, passing}}},
                 recv(WTag, 10000)),
    %% after unsubscribe the removal is not delivered
    ?assertEqual(nil, ?FFI:unsubscribe(Watch)),
    ?assertEqual({ok, nil}, ?FFI:registry_deregister(W, Id)),
    ?assertEqual({ok, nil}, ?FFI:registry_deregister(W, Id2)),
    ?assertEqual({error, not_found}, ?FFI:registry_deregister(W, Id)),
    ?assertEqual(timeout, recv(WTag, 1000)),
    ?assert(shim_test_util:wait_until(fun() -> ?FFI:registry_find(<<"gsvc">>) =:= {ok, []} end,
                                      10000)).

global(W) ->
    ?assertEqual({error, nil}, ?FFI:global_whereis(no_such_global_name)),
    {ok, Pid} = beamlet_client:whereis(W, beamlet),
    yes = gen_server:call({beamlet_global, W}, {register, gleam_global_name, Pid}, 15000),
    ?assert(shim_test_util:wait_until(fun() -> ?FFI:global_whereis(gleam_global_name) =:= {ok, Pid} end,
                                      10000)),
    ?assertEqual({ok, Pid}, ?FFI:global_whereis_on(W, gleam_global_name)),
    ?assertEqual({error, nil}, ?FFI:global_whereis_on(ghost(), gleam_global_name)).

%% pubsub.subscribe/publish_with with Gleam's shapes: Qos and Publish records, Message records
%% sent as {Tag, Message} to the subject's owner.
pubsub(W) ->
    Tag = make_ref(),
    {ok, Sub} = ?FFI:pubsub_subscribe(W, <<"gl.*">>, at_most_once, {subject, self(), Tag}),
    ?assert(is_pid(Sub)),
    {ok, Id} = ?FFI:pubsub_publish(W, <<"gl.x">>, {payload, 1}, {publish, high, none, false}),
    ?assert(is_binary(Id)),
    ?assertEqual({ok, {message, <<"gl.x">>, {payload, 1}, Id, high}}, recv(Tag, 10000)),
    {ok, Id1} = ?FFI:pubsub_publish(W, <<"gl.y">>, 1.5, {publish, normal, {some, 60000}, false}),
    ?assertEqual({ok, {message, <<"gl.y">>, 1.5, Id1, normal}}, recv(Tag, 10000)),
    ?assertEqual({error, badarg},
                 ?FFI:pubsub_publish(W, <<"bad..topic">>, x, {publish, normal, none, false})),
    ?assertEqual({error, unregistered_subject},
                 ?FFI:pubsub_subscribe(W, <<"gl.*">>, at_most_once, ?NOBODY)),
    %% unsubscribe: the node drops the subscription, later publishes are not delivered
    ?assertEqual(nil, ?FFI:unsubscribe(Sub)),
    ?assertNot(lists:member(<<"gl.*">>, local_patterns(W))),
    {ok, _} = ?FFI:pubsub_publish(W, <<"gl.z">>, late, {publish, normal, none, false}),
    ?assertEqual(timeout, recv(Tag, 1000)),
    %% durable subscriptions carry their name (AtLeastOnce(name:), ExactlyOnce(name:)), durable
    %% publishes go through the outbox
    [begin
         T = make_ref(),
         {ok, DSub} = ?FFI:pubsub_subscribe(W, <<"gld.", Q/binary>>, {Qos, <<"gl_", Q/binary>>},
                                            {subject, self(), T}),
         {ok, MId} = ?FFI:pubsub_publish(W, <<"gld.", Q/binary>>, Q, {publish, low, none, true}),
         ?assertEqual({ok, {message, <<"gld.", Q/binary>>, Q, MId, low}}, recv(T, 10000)),
         ?assertEqual(nil, ?FFI:unsubscribe(DSub))
     end || {Qos, Q} <- [{at_least_once, <<"alo">>}, {exactly_once, <<"eo">>}]],
    %% a named subject: messages go to whoever holds the name
    Name = list_to_atom(shim_test_util:name("psname")),
    true = register(Name, self()),
    try
        {ok, NSub} = ?FFI:pubsub_subscribe(W, <<"gln.x">>, at_most_once, {named_subject, Name}),
        {ok, NId} = ?FFI:pubsub_publish(W, <<"gln.x">>, named, {publish, normal, none, false}),
        ?assertEqual({ok, {message, <<"gln.x">>, named, NId, normal}}, recv(Name, 10000)),
        ?assertEqual(nil, ?FFI:unsubscribe(NSub))
    after
        unregister(Name)
    end.

local_patterns(W) ->
    Subs = gen_server:call({beamlet_pubsub, W}, subscriptions, 5000),
    [P || #{pattern := P, node := N} <- Subs, N =:= W].

%% health.metrics: every Int field an integer, every Float field a float, as Gleam declares.
health(W) ->
    {ok, M} = ?FFI:health_metrics(W),
    {metrics, W, TimeMs, IntervalMs, CpuPct, Cpus, Load, Mem, Disks, Net, Uptime, Own} = M,
    ?assert(lists:all(fun is_integer/1, [TimeMs, IntervalMs, Cpus])),
    ?assert(is_float(CpuPct) andalso is_float(Uptime)),
    ?assertMatch({load, L1, L5, L15, R, T} when is_float(L1) andalso is_float(L5) andalso
                                                 is_float(L15) andalso is_integer(R) andalso
                                                 is_integer(T), Load),
    {memory, Total, Avail, Used, Free, AvailPct, SwapT, SwapU} = Mem,
    ?assert(lists:all(fun is_integer/1, [Total, Avail, Used, Free, SwapT, SwapU])),
    ?assert(Total > 0 andalso is_float(AvailPct)),
    ?assert(length(Disks) >= 1),
    [?assertMatch({disk, <<_/binary>>, <<_/binary>>, <<_/binary>>, S, A, P}
                    when is_integer(S) andalso is_integer(A) andalso is_float(P), D) || D <- Disks],
    [?assertMatch({interface, <<_/binary>>, Rx, Tx, RxS, TxS}
                    when is_integer(Rx) andalso is_integer(Tx) andalso is_float(RxS) andalso
                         is_float(TxS), I) || I <- Net],
    ?assertMatch({own_process, Rss, Fds, Th, C, Q}
                   when Rss > 0 andalso is_integer(Fds) andalso is_integer(Th) andalso
                        is_integer(C) andalso is_integer(Q), Own),
    ?assertMatch({ok, #{memory := #{total_bytes := Total}}}, ?FFI:health_raw_metrics(W)),
    ?assertEqual({ok, IntervalMs}, ?FFI:health_interval(W)),
    ?assertEqual({error, node_down}, ?FFI:health_metrics(ghost())).

%% health.cluster / set_maintenance / maintenance / checks / history / metric_names /
%% cluster_history with the shapes of the Gleam types (health.gleam).
health_more(W) ->
    {ok, C} = ?FFI:health_cluster(W),
    {cluster_health, Score, Status, Leader, Term, Nodes, Recs} = C,
    ?assert(is_float(Score) andalso Score >= 0.0 andalso Score =< 1.0),
    ?assert(lists:member(Status, [active, degraded, maintenance, offline])),
    ?assert(Leader =:= none orelse element(1, Leader) =:= some),
    ?assert(is_integer(Term)),
    ?assertMatch([_ | _], [N || {node_health, N, <<_/binary>>, <<"active">>, St, false, Rs}
                                    <- Nodes, N =:= W,
                                is_atom(St), is_list(Rs)]),
    [?assertMatch({recommendation, <<_/binary>>, B, <<_/binary>>, <<_/binary>>} when is_binary(B), R)
     || R <- Recs],
    ?assertMatch({ok, {maintenance_mode, false, none, S0}} when is_integer(S0),
                 ?FFI:health_maintenance(W)),
    ?assertEqual({ok, nil}, ?FFI:health_set_maintenance(W, true, <<"gleam">>)),
    ?assertMatch({ok, {maintenance_mode, true, {some, <<"gleam">>}, Since}} when Since > 0,
                 ?FFI:health_maintenance(W)),
    ?assert(shim_test_util:wait_until(fun() ->
        {ok, {cluster_health, _, S, _, _, Ns, _}} = ?FFI:health_cluster(W),
        S =:= maintenance andalso
            [true] =:= [M || {node_health, N, _, _, _, M, _} <- Ns, N =:= W] end, 10000)),
    ?assertEqual({ok, nil}, ?FFI:health_set_maintenance(W, false, <<"gleam">>)),
    ?assertMatch({ok, {maintenance_mode, false, none, _}}, ?FFI:health_maintenance(W)),
    ?assertEqual({ok, []}, ?FFI:health_checks(W)),
    Since0 = erlang:system_time(millisecond) - 3600000,
    ?assert(shim_test_util:wait_until(fun() ->
        case ?FFI:health_history(W, <<"load.load1">>, Since0) of
            {ok, {history, <<"load.load1">>, 0, [_ | _] = Ps}} ->
                lists:all(fun({point, T, Mn, Av, Mx}) ->
                                  is_integer(T) andalso is_float(Mn) andalso is_float(Av)
                                      andalso is_float(Mx) end, Ps);
            _ -> false
        end end, 15000)),
    {ok, Names} = ?FFI:health_metric_names(W, Since0),
    ?assert(lists:member(<<"load.load1">>, Names)),
    {ok, CH} = ?FFI:health_cluster_history(W, <<"load.load1">>, Since0),
    ?assertMatch([_ | _], CH),
    ?assert(lists:all(fun({N, {point, T, _, _, _}}) -> is_atom(N) andalso is_integer(T) end, CH)),
    ?assert(lists:member(W, [N || {N, _} <- CH])),
    Ts = [T || {_, {point, T, _, _, _}} <- CH],
    ?assertEqual(lists:sort(Ts), Ts),
    ?assertEqual({error, node_down}, ?FFI:health_cluster(ghost())),
    ?assertEqual({error, node_down}, ?FFI:health_checks(ghost())).

%% alerts.list / acknowledge / subscribe and events.list / list_cluster on a worker with a rule
%% that holds at once, so an alert really fires.
alerts() ->
    Rule = <<"[{\"name\":\"gleam_always\",\"metric\":\"cpu.percent\",\"op\":\">=\","
             "\"threshold\":0,\"severity\":\"critical\"}]">>,
    {ok, A} = ?FFI:start_worker(options(shim_test_util:name("glal"),
                                        #{extra => [<<"--health-interval-ms">>, <<"300">>,
                                                    <<"--load-warn-per-cpu">>, <<"900">>,
                                                    <<"--load-crit-per-cpu">>, <<"1000">>,
                                                    <<"--alert-rules">>, Rule | data_dir_args()]})),
    ?assertEqual({error, unregistered_subject}, ?FFI:alerts_subscribe(A, ?NOBODY)),
    Tag = make_ref(),
    {ok, Sub} = ?FFI:alerts_subscribe(A, {subject, self(), Tag}),
    ?assert(is_pid(Sub)),
    Firing = fun() ->
                     {ok, As} = ?FFI:alerts_list(A),
                     [X || X = {alert, _, <<"gleam_always">>, _, _, critical, firing, _, _, _,
                                _, _, _, none} <- As]
             end,
    ?assert(shim_test_util:wait_until(fun() -> Firing() =/= [] end, 20000)),
    [{alert, Id, _, NodeBin, _, critical, firing, V, Thr, Summary, Since, Fired, 0, none} | _] =
        Firing(),
    ?assertEqual(atom_to_binary(A), NodeBin),
    ?assert(is_integer(Id) andalso is_float(V) andalso Thr =:= 0.0 andalso is_binary(Summary)),
    ?assert(Since > 0 andalso Fired >= Since),
    %% the subscriber got it as an Alert
    ?assertMatch({ok, {alert, Id, <<"gleam_always">>, _, _, critical, firing, _, _, _, _, _, _, _}},
                 recv_alert(Tag, Id, firing)),
    ?assertEqual({ok, nil}, ?FFI:alerts_acknowledge(A, Id, <<"gleam-ack">>)),
    ?assertEqual({error, not_found}, ?FFI:alerts_acknowledge(A, 99999999, <<"gleam-ack">>)),
    {ok, Acked} = ?FFI:alerts_list(A),
    ?assertMatch([{alert, Id, _, _, _, _, _, _, _, _, _, _, _, {some, {ack, <<"gleam-ack">>, At}}}]
                     when At > 0, [X || X <- Acked, element(2, X) =:= Id]),
    ?assertEqual(nil, ?FFI:unsubscribe(Sub)),
    %% events.Query(since_ms, until_ms, kind, node, severity, limit)
    Q = {query, {some, erlang:system_time(millisecond) - 600000}, none, {some, <<"alert">>},
         none, {some, critical}, {some, 10}},
    ?assert(shim_test_util:wait_until(fun() ->
        {ok, Es} = ?FFI:events_list(A, Q),
        Es =/= [] andalso
            lists:all(fun({event, EId, T, <<_/binary>>, <<"alert">>, critical, none,
                           <<"{", _/binary>>, L}) ->
                              is_integer(EId) andalso is_integer(T) andalso L =:= A;
                         (_) -> false
                      end, Es) end, 10000)),
    {ok, All} = ?FFI:events_list_cluster(A, {query, none, none, none, none, none, {some, 20}}),
    ?assert(length(All) =< 20 andalso length(All) >= 1),
    ?assertEqual([A], lists:usort([L || {event, _, _, _, _, _, _, _, L} <- All])),
    ?assertEqual({error, node_down}, ?FFI:events_list(ghost(), Q)),
    ?assertEqual({ok, nil}, ?FFI:stop_worker(A)).

recv_alert(Tag, Id, State) ->
    receive
        {Tag, {alert, Id, _, _, _, _, State, _, _, _, _, _, _, _} = A} -> {ok, A};
        {Tag, _} -> recv_alert(Tag, Id, State)
    after 15000 -> timeout
    end.

monitor() ->
    {N, _} = R = shim_test_util:start_raw("glmon"),
    {ok, N} = ?FFI:connect(atom_to_binary(N)),
    Tag = make_ref(),
    {ok, Mon} = ?FFI:monitor(N, {subject, self(), Tag}),
    ?assert(is_reference(Mon)),
    Tag2 = make_ref(),
    {ok, Mon2} = ?FFI:monitor(N, {subject, self(), Tag2}),
    ?assertEqual(nil, ?FFI:demonitor(Mon2)),
    %% a named subject whose name nobody holds: Error(Nil), the caller keeps running
    ?assertEqual({error, nil}, ?FFI:monitor(N, ?NOBODY)),
    ok = shim_test_util:kill_raw(R),
    ?assertEqual({ok, N}, recv(Tag, 5000)),
    ?assertEqual(timeout, recv(Tag2, 300)),
    %% a named subject ({named_subject, Name}) gets {Name, Node}
    Name = list_to_atom(shim_test_util:name("subj")),
    true = register(Name, self()),
    try
        {ok, _} = ?FFI:monitor(N, {named_subject, Name}),
        ?assertEqual({ok, N}, recv(Name, 1000))
    after
        unregister(Name)
    end.

workers(W) ->
    ?assert(lists:member(W, ?FFI:which_workers())),
    {ok, OsPid} = ?FFI:worker_os_pid(W),
    ?assert(is_integer(OsPid) andalso shim_test_util:os_alive(OsPid)),
    ?assertEqual({error, nil}, ?FFI:worker_os_pid(ghost())),
    ?assertEqual({error, already_started},
                 ?FFI:start_worker(options(hd(string:split(atom_to_list(W), "@")), #{}))),
    ?assertEqual({error, {binary_not_found, <<"/nonexistent/beamlet">>}},
                 ?FFI:start_worker(options(shim_test_util:name("glnobin"),
                                           #{binary => {some, <<"/nonexistent/beamlet">>}}))),
    ?assertMatch({error, {start_failed, <<_/binary>>}},
                 ?FFI:start_worker(options(shim_test_util:name("glbad"),
                                           #{role => {some, {other_role, <<"bogus">>}}}))),
    {ok, W2} = ?FFI:start_worker(options(shim_test_util:name("gl2"),
                                         #{cookie => {some, list_to_binary(shim_test_util:cookie())},
                                           role => {some, gateway}, join => [node()]})),
    ?assertMatch({ok, {info, W2, gateway, _, _, _, _, _, _, _}}, ?FFI:info(W2)),
    ?assertEqual({ok, nil}, ?FFI:stop_worker(W2)),
    ?assertEqual({error, nil}, ?FFI:stop_worker(W2)),
    ?assertNot(lists:member(W2, ?FFI:which_workers())).

%% What gleam_otp's static_supervisor does with a child spec: its start callback runs the
%% child's start function (here the FFI call worker.supervised makes) in the supervisor process
%% and hands the pid to the supervisor.
start_child(Fun, Arg) ->
    case ?FFI:Fun(Arg) of
        {ok, {Pid, _Node}} when is_pid(Pid) -> {ok, Pid};
        {ok, Pid} when is_pid(Pid) -> {ok, Pid};
        {error, E} -> {error, {init_failed, E}}
    end.

supervised() ->
    Name = shim_test_util:name("glsup"),
    Node = shim_test_util:node_name(Name),
    ?assertEqual(Node, ?FFI:worker_node(options(Name, #{}))),
    Child = #{id => 0, start => {?MODULE, start_child, [start_link_worker, options(Name, #{})]},
              restart => permanent, shutdown => 10000, type => worker},
    {ok, Sup} = supervisor:start_link(gleam_test_sup, {#{strategy => one_for_one, intensity => 5,
                                                   period => 30}, [Child]}),
    unlink(Sup),
    try
        %% started, and its node answers by the time the supervisor is up
        ?assertEqual({ok, pong}, ?FFI:call(Node, beamlet, ping, 2000)),
        {ok, {info, Node, agent, _, _, _, _, OsPid, _, _}} = ?FFI:info(Node),
        %% not under the application's supervisor
        ?assertNot(lists:member(Node, ?FFI:which_workers())),
        %% kill -9: the supervisor starts a fresh OS process
        shim_test_util:kill_os(OsPid, "KILL"),
        ?assert(shim_test_util:wait_until(
                  fun() ->
                          case ?FFI:info(Node) of
                              {ok, {info, Node, _, _, _, _, _, P, _, _}} -> P =/= OsPid;
                              _ -> false
                          end
                  end, 20000)),
        {ok, {info, _, _, _, _, _, _, OsPid2, _, _}} = ?FFI:info(Node),
        %% stopped with the supervisor
        ok = proc_lib:stop(Sup, shutdown, 20000),
        ?assert(shim_test_util:wait_until(fun() -> not shim_test_util:os_alive(OsPid2) end, 10000))
    after
        exit(Sup, kill)
    end,
    %% a start that fails returns the error to a caller that does not trap exits (no exit signal)
    Self = self(),
    P = spawn(fun() ->
                      R = ?FFI:start_link_worker(options(shim_test_util:name("glsupbad"),
                                                         #{role => {some, {other_role, <<"bogus">>}}})),
                      Self ! {self(), R, process_info(self(), links)}
              end),
    ?assertMatch({P, {error, {start_failed, <<_/binary>>}}, {links, []}},
                 receive {P, _, _} = M -> M after 20000 -> timeout end).

discovery() ->
    G = "gldisc" ++ integer_to_list(erlang:unique_integer([positive])),
    {N, _} = shim_test_util:start_raw(G),
    Pattern = list_to_binary("^" ++ shim_test_util:prefix() ++ G),
    Opts = {options, [], true, {some, Pattern}, 60000},
    {ok, D} = ?FFI:discovery_start(Opts),
    try
        ?assertEqual([N], ?FFI:discovery_refresh(D)),
        ?assertEqual([N], ?FFI:discovery_found(D))
    after
        ?assertEqual(nil, ?FFI:discovery_stop(D))
    end,
    ?assertNot(is_process_alive(D)),
    ?assertMatch({error, <<_/binary>>}, ?FFI:discovery_start({options, [], true, {some, <<"(">>}, 1000})),
    %% supervised (discovery.supervised): restarted when it dies
    Child = #{id => 0, start => {?MODULE, start_child, [discovery_start, Opts]},
              restart => permanent, shutdown => 5000, type => worker},
    {ok, Sup} = supervisor:start_link(gleam_test_sup, {#{strategy => one_for_one, intensity => 5,
                                                   period => 30}, [Child]}),
    unlink(Sup),
    try
        [{0, D1, worker, _}] = supervisor:which_children(Sup),
        ?assertEqual([N], ?FFI:discovery_refresh(D1)),
        exit(D1, kill),
        ?assert(shim_test_util:wait_until(
                  fun() -> [{0, D2, _, _}] = supervisor:which_children(Sup),
                           is_pid(D2) andalso D2 =/= D1 end, 5000)),
        [{0, D3, _, _}] = supervisor:which_children(Sup),
        ?assertEqual([N], ?FFI:discovery_refresh(D3))
    after
        exit(Sup, kill)
    end.

%% Every function an @external of the .gleam sources names in the FFI module was called above.
all_externals_called() ->
    Ext = lists:usort([{EF, A} || {_, _, A, ?FFI, EF} <- beamlet_gleam_layout_tests:externals()]),
    ?assert(length(Ext) >= 30),
    Count = fun(F, A) ->
                    case erlang:trace_info({?FFI, F, A}, call_count) of
                        {call_count, C} when is_integer(C) -> C;
                        _ -> 0
                    end
            end,
    ?assertEqual([], [FA || {F, A} = FA <- Ext, Count(F, A) =:= 0]).
