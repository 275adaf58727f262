%% beamlet_gleam_ffi_tests - the Gleam FFI module called with the argument shapes Gleam compiles
%% to (String = binary, records = tagged tuples, Option = {some, V} | none, Subject =
%% {subject, Pid, Ref}) and returning the shapes the Gleam types expect; plus consistency checks
%% between the .gleam files, the FFI exports and the copied Erlang modules.
-module(beamlet_gleam_ffi_tests).
-include_lib("eunit/include/eunit.hrl").

-define(FFI, beamlet_gleam_ffi).

ffi_test_() ->
    {setup,
     fun() ->
             %% every FFI function called by the tests is counted (see all_externals_called/0)
             _ = erlang:trace_pattern({?FFI, '_', '_'}, true, [call_count]),
             ?assertEqual({ok, nil}, ?FFI:start()),
             Data = filename:join(os:getenv("BL_GLEAM_LAYOUT"), "data_" ++ shim_test_util:name("gl")),
             ok = filelib:ensure_dir(filename:join(Data, "x")),
             Opts = options(shim_test_util:name("gl"), #{role => {some, <<"monitor">>},
                                                           cluster => {some, <<"gleamc">>},
                                                           extra => [<<"--data-dir">>,
                                                                     list_to_binary(Data)]}),
             {ok, NodeBin} = ?FFI:start_worker(Opts),
             NodeBin
     end,
     fun(_) -> shim_test_util:stop_all_raw(), shim_test_util:stop_app() end,
     fun(W) ->
             [{"start_distribution on a distributed node", fun() ->
                   ?assertEqual({ok, nil}, ?FFI:start_distribution(<<"ignored">>,
                                                                    list_to_binary(shim_test_util:cookie())))
               end},
              {"call: Ok(Dynamic)", fun() ->
                   ?assertEqual({ok, pong}, ?FFI:call(W, <<"beamlet">>, ping, 1000)),
                   ?assertEqual({ok, yes}, ?FFI:call(W, <<"net_kernel">>, {is_auth, node()}, 1000))
               end},
              {"call errors: NoProc, Timeout, NodeDown, CallFailed", fun() ->
                   ?assertEqual({error, no_proc}, ?FFI:call(W, <<"nobody">>, <<"hi">>, 1000)),
                   ?assertEqual({error, timeout}, ?FFI:call(W, <<"beamlet">>, ping, 0)),
                   Ghost = atom_to_binary(shim_test_util:node_name(shim_test_util:name("ghost"))),
                   ?assertEqual({error, node_down}, ?FFI:call(Ghost, <<"beamlet">>, ping, 1000))
               end},
              {"cast: Nil", fun() -> ?assertEqual(nil, ?FFI:cast(W, <<"beamlet">>, <<"hi">>)) end},
              {"cluster: members, status, subscribe into a Subject", fun() -> cluster(W) end},
              {"registry and global: Service records, Health atoms, Option(Pid)", fun() -> registry(W) end},
              {"pubsub: subscribe into a Subject, publish with a Priority", fun() -> pubsub(W) end},
              {"connect: Ok(Nil) | Error(Unreachable)", fun() ->
                   ?assertEqual({ok, nil}, ?FFI:connect(W)),
                   Ghost = atom_to_binary(shim_test_util:node_name(shim_test_util:name("ghost"))),
                   ?assertEqual({error, unreachable}, ?FFI:connect(Ghost))
               end},
              {"nodes: List(NodeInfo)", fun() ->
                   ?assert(lists:member({node_info, W, <<"monitor">>, <<"gleamc">>, <<"0.1.0">>},
                                        ?FFI:nodes())),
                   [?assertMatch({node_info, <<_/binary>>, <<_/binary>>, <<_/binary>>, <<_/binary>>}, I)
                    || I <- ?FFI:nodes()]
               end},
              {"info: Ok(Info)", fun() ->
                   {ok, I} = ?FFI:info(W),
                   ?assertMatch({info, W, <<"monitor">>, <<"gleamc">>, <<_/binary>>, Up, Procs,
                                 OsPid, Port, [_ | _]}
                                  when is_integer(Up) andalso is_integer(Procs) andalso
                                       is_integer(OsPid) andalso is_integer(Port), I),
                   ?assert(lists:member(atom_to_binary(node()), element(10, I)))
               end},
              {"stats: Ok(Dict(String, Dynamic))", fun() ->
                   {ok, S} = ?FFI:stats(W),
                   ?assert(is_integer(maps:get(<<"msgs_in">>, S))),
                   ?assert(lists:all(fun is_binary/1, maps:keys(S)))
               end},
              {"monitor/demonitor with a Subject", fun monitor/0},
              {"workers: running, stop, errors", fun() -> workers(W) end},
              {"discovery", fun discovery/0},
              {"every @external was called by this suite", fun all_externals_called/0}]
     end}.

%% worker.Options(name, cookie, role, cluster, join, extra_args, binary, start_timeout)
options(Name, Over) ->
    M = maps:merge(#{cookie => none, role => none, cluster => none, join => [], extra => [],
                     binary => none, timeout => 15000}, Over),
    {options, list_to_binary(Name), maps:get(cookie, M), maps:get(role, M), maps:get(cluster, M),
     maps:get(join, M), maps:get(extra, M), maps:get(binary, M), maps:get(timeout, M)}.

monitor() ->
    {N, _} = R = shim_test_util:start_raw("glmon"),
    NB = atom_to_binary(N),
    {ok, nil} = ?FFI:connect(NB),
    Tag = make_ref(),
    Subject = {subject, self(), Tag},
    {ok, Mon} = ?FFI:monitor(NB, Subject),
    ?assert(is_reference(Mon)),
    Tag2 = make_ref(),
    {ok, Mon2} = ?FFI:monitor(NB, {subject, self(), Tag2}),
    %% a named subject whose name nobody holds: Error(Nil), the caller keeps running
    ?assertEqual({error, nil}, ?FFI:monitor(NB, {named_subject, gleam_nobody_has_this_name})),
    ?assertEqual(nil, ?FFI:demonitor(Mon2)),
    ok = shim_test_util:kill_raw(R),
    ?assertEqual(NB, receive {Tag, Msg} -> Msg after 5000 -> timeout end),
    ?assertEqual(none, receive {Tag2, _} -> got after 300 -> none end),
    %% a named subject ({named_subject, Name}) gets {Name, NodeBin}
    Name = list_to_atom(shim_test_util:name("subj")),
    true = register(Name, self()),
    try
        {ok, _} = ?FFI:monitor(NB, {named_subject, Name}),
        ?assertEqual(NB, receive {Name, M2} -> M2 after 1000 -> timeout end)
    after
        unregister(Name)
    end.

workers(W) ->
    ?assert(lists:member(W, ?FFI:which_workers())),
    ?assertEqual({error, already_started},
                 ?FFI:start_worker(options(binary_to_list(hd(string:split(W, "@"))), #{}))),
    ?assertEqual({error, {binary_not_found, <<"/nonexistent/beamlet">>}},
                 ?FFI:start_worker(options(shim_test_util:name("glnobin"),
                                           #{binary => {some, <<"/nonexistent/beamlet">>}}))),
    ?assertMatch({error, {start_failed, <<_/binary>>}},
                 ?FFI:start_worker(options(shim_test_util:name("glbad"),
                                           #{extra => [<<"--role">>, <<"bogus">>]}))),
    {ok, W2} = ?FFI:start_worker(options(shim_test_util:name("gl2"),
                                         #{cookie => {some, list_to_binary(shim_test_util:cookie())},
                                           join => [atom_to_binary(node())]})),
    ?assertEqual({ok, pong}, ?FFI:call(W2, <<"beamlet">>, ping, 1000)),
    ?assertEqual({ok, nil}, ?FFI:stop_worker(W2)),
    ?assertEqual({error, nil}, ?FFI:stop_worker(W2)),
    ?assertNot(lists:member(W2, ?FFI:which_workers())).

discovery() ->
    G = "gldisc" ++ integer_to_list(erlang:unique_integer([positive])),
    {N, _} = shim_test_util:start_raw(G),
    Pattern = list_to_binary("^" ++ shim_test_util:prefix() ++ G),
    {ok, D} = ?FFI:discovery_start({discovery_options, [], {some, Pattern}, 60000}),
    try
        ?assertEqual([atom_to_binary(N)], ?FFI:discovery_refresh(D)),
        ?assertEqual([atom_to_binary(N)], ?FFI:discovery_found(D))
    after
        ?assertEqual(nil, ?FFI:discovery_stop(D))
    end,
    ?assertMatch({error, <<_/binary>>},
                 ?FFI:discovery_start({discovery_options, [], {some, <<"(">>}, 1000})).

%% cluster.members / cluster.status / cluster.subscribe with Gleam's shapes: Member and Status
%% records, MemberState atoms, Option(String) leader, events as Event variants sent as {Tag, Event}.
cluster(W) ->
    {ok, Members} = ?FFI:cluster_members(W),
    ?assert(lists:member({member, W, <<"monitor">>, active, <<"beamlet">>}, Members)),
    [?assertMatch({member, <<_/binary>>, <<_/binary>>, _, <<_/binary>>}, M) || M <- Members],
    [?assert(lists:member(S, [joining, active, suspected, failed, leaving, left]))
     || {member, _, _, S, _} <- Members],
    ?assertMatch({ok, {status, <<"gleamc">>, _, none, 0, true}}, ?FFI:cluster_status(W)),
    ?assertMatch({error, node_down},
                 ?FFI:cluster_members(atom_to_binary(shim_test_util:node_name(shim_test_util:name("ghost"))))),
    Tag = make_ref(),
    ?assertEqual({ok, nil}, ?FFI:cluster_subscribe(W, {subject, self(), Tag})),
    ?assertMatch({error, {call_failed, _}},
                 ?FFI:cluster_subscribe(W, {named_subject, gleam_nobody_has_this_name})),
    %% a second node joins the cluster: the subscriber sees NodeJoined(node, role) for it
    Opts = options(shim_test_util:name("gl2"), #{role => {some, <<"agent">>},
                                                 cluster => {some, <<"gleamc">>},
                                                 join => [W]}),
    {ok, W2} = ?FFI:start_worker(Opts),
    ?assertEqual({ok, {Tag, {node_joined, W2, <<"agent">>}}},
                 receive {Tag, {node_joined, W2, _}} = M -> {ok, M} after 10000 -> timeout end),
    ?assertEqual({ok, nil}, ?FFI:stop_worker(W2)),
    ?assertMatch({ok, {Tag, {node_state_changed, W2, _, _}}},
                 receive {Tag, {node_state_changed, W2, _, _}} = M2 -> {ok, M2} after 10000 -> timeout end).

%% registry.register/find/call/deregister and global.whereis with Gleam's shapes.
registry(W) ->
    Meta = #{<<"process">> => <<"beamlet">>},
    {ok, Id} = ?FFI:registry_register(W, <<"gsvc">>, [<<"t">>], Meta),
    ?assert(is_binary(Id)),
    ?assert(shim_test_util:wait_until(fun() ->
        case ?FFI:registry_find(<<"gsvc">>) of
            {ok, [{service, Id, <<"gsvc">>, W, <<_/binary>>, <<_/binary>>, 0, [<<"t">>], Meta,
                   passing}]} -> true;
            _ -> false
        end end, 10000)),
    ?assertEqual({ok, pong}, ?FFI:registry_call(<<"gsvc">>, ping, 2000)),
    ?assertEqual({error, {call_failed, <<"no_instances">>}}, ?FFI:registry_call(<<"nosuch">>, ping, 1000)),
    ?assertEqual({ok, nil}, ?FFI:registry_deregister(W, Id)),
    ?assert(shim_test_util:wait_until(fun() -> ?FFI:registry_find(<<"gsvc">>) =:= {ok, []} end, 10000)),
    ?assertEqual(none, ?FFI:global_whereis(<<"no_such_global_name">>)),
    {ok, Pid} = beamlet_client:whereis(binary_to_atom(W), beamlet),
    yes = gen_server:call({beamlet_global, binary_to_atom(W)}, {register, gleam_global_name, Pid}, 15000),
    ?assert(shim_test_util:wait_until(fun() -> ?FFI:global_whereis(<<"gleam_global_name">>) =:= {some, Pid} end, 10000)).

%% pubsub.subscribe/publish with Gleam's shapes: Qos and Priority atoms, Message records sent as
%% {Tag, Message} to the subject's owner.
pubsub(W) ->
    Tag = make_ref(),
    {ok, SubId} = ?FFI:pubsub_subscribe(W, <<"gl.*">>, at_most_once, {subject, self(), Tag}),
    ?assert(is_integer(SubId)),
    {ok, Id} = ?FFI:pubsub_publish(W, <<"gl.x">>, {payload, 1}, high),
    ?assert(is_binary(Id)),
    ?assertEqual({ok, {message, <<"gl.x">>, {payload, 1}, Id, high}},
                 receive {Tag, M} -> {ok, M} after 10000 -> timeout end),
    ?assertMatch({error, _}, ?FFI:pubsub_publish(W, <<"bad..topic">>, x, normal)),
    ?assertMatch({error, {call_failed, _}},
                 ?FFI:pubsub_subscribe(W, <<"gl.*">>, at_most_once,
                                       {named_subject, gleam_nobody_has_this_name})),
    %% durable subscriptions carry their name (AtLeastOnce(name:), ExactlyOnce(name:))
    [begin
         T = make_ref(),
         {ok, _} = ?FFI:pubsub_subscribe(W, <<"gld.", Q/binary>>, {Qos, <<"gl_", Q/binary>>},
                                         {subject, self(), T}),
         {ok, MId} = ?FFI:pubsub_publish(W, <<"gld.", Q/binary>>, Q, low),
         ?assertEqual({ok, {message, <<"gld.", Q/binary>>, Q, MId, low}},
                      receive {T, M2} -> {ok, M2} after 10000 -> timeout end)
     end || {Qos, Q} <- [{at_least_once, <<"alo">>}, {exactly_once, <<"eo">>}]],
    %% a named subject: messages go to whoever holds the name
    Name = list_to_atom(shim_test_util:name("psname")),
    true = register(Name, self()),
    try
        {ok, _} = ?FFI:pubsub_subscribe(W, <<"gln.x">>, at_most_once, {named_subject, Name}),
        {ok, NId} = ?FFI:pubsub_publish(W, <<"gln.x">>, named, normal),
        ?assertEqual({ok, {message, <<"gln.x">>, named, NId, normal}},
                     receive {Name, M3} -> {ok, M3} after 10000 -> timeout end)
    after
        unregister(Name)
    end.

%% Every function an @external of the .gleam sources names in the FFI module was called above.
all_externals_called() ->
    Ext = lists:usort([{EF, A} || {_, _, A, ?FFI, EF} <- beamlet_gleam_layout_tests:externals()]),
    ?assert(length(Ext) >= 20),
    Count = fun(F, A) ->
                    case erlang:trace_info({?FFI, F, A}, call_count) of
                        {call_count, C} when is_integer(C) -> C;
                        _ -> 0
                    end
            end,
    Uncalled = [FA || {F, A} = FA <- Ext, Count(F, A) =:= 0],
    ?assertEqual([], Uncalled).
