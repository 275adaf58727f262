%% bl_trace_tests - correlation ids and seq_trace through real beamlet nodes (ASan builds) on
%% loopback (docs/tracing.md). Three nodes: A (`beamlet node`, gateway), B and C (trace_node.c:
%% the C service tr_echo, which publishes on trace.demo, and a C subscriber on trace.#), plus
%% this runner (a BEAM subscriber through A). JSON logs at debug level, so every line a trace
%% touches can be checked.
-module(bl_trace_tests).
-include_lib("eunit/include/eunit.hrl").

fast() -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
           "--election-timeout-ms", "600"].

log_env() -> ["BEAMLET_LOG_FORMAT=json", "BEAMLET_LOG_LEVEL=debug"].

start_a(Cluster, Port) ->
    Alias = bl_test_util:unique("tra"),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    Args = log_env() ++ [os:getenv("BEAMLET_BIN"), "node", "--sname", Alias,
                         "--cookie", bl_test_util:cookie(),
                         "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
                         "--role", "gateway", "--cluster", Cluster,
                         "--http-port", integer_to_list(Port) | fast()],
    Node = bl_test_util:spawn_raw(Node, "/usr/bin/env", Args),
    ok = bl_test_util:wait_up(Node, 20000),
    Node.

start_c(Tag, Cluster, Join) ->
    Alias = bl_test_util:unique(Tag),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    Bin = case os:getenv("TRACE_NODE_BIN") of
              V when V =:= false; V =:= "" -> error(missing_trace_node_bin);
              V -> V
          end,
    Args = log_env() ++ [Bin, "--sname", Alias, "--cookie", bl_test_util:cookie(),
                         "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
                         "--role", "agent", "--cluster", Cluster,
                         "--join", atom_to_list(Join) | fast()],
    Node = bl_test_util:spawn_raw(Node, "/usr/bin/env", Args),
    ok = bl_test_util:wait_up(Node, 20000),
    Node.

until(F) -> ?assert(bl_test_util:wait_until(F, 20000)).

ps(N, Req) -> gen_server:call({beamlet_pubsub, N}, Req, 10000).

%% Every node knows every subscription (replicated), so a publish reaches them all.
subs_known(Nodes, Owners) ->
    lists:all(fun(At) ->
                      Subs = ps(At, subscriptions),
                      lists:all(fun(O) -> lists:any(fun(#{node := N}) -> N =:= O end, Subs) end,
                                Owners)
              end, Nodes).

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

cli(Args) ->
    bl_test_util:sh(io_lib:format("timeout 30 '~s' ~s --cookie '~s'",
                                  [os:getenv("BEAMLET_BIN"), Args, bl_test_util:cookie()])).

%% "trace_id ID" printed by --show-trace
shown_trace(Out) ->
    {match, [Id]} = re:run(Out, "trace_id ([0-9a-f]{32})", [{capture, all_but_first, binary}]),
    Id.

%% The JSON lines of Node's log from byte Off on (other lines skipped).
log_lines(Node, Off) ->
    Text = bl_test_util:log_text(Node),
    Tail = binary:part(Text, min(Off, byte_size(Text)), byte_size(Text) - min(Off, byte_size(Text))),
    Lines = binary:split(Tail, <<"\n">>, [global]),
    [J || L <- Lines, byte_size(L) > 0, binary:first(L) =:= ${,
          J <- [try json_decode(L) catch _:_ -> skip end], J =/= skip].

%% OTP 25 has no json module: the few fields we need, by regexp on the one-line objects.
json_decode(L) ->
    Get = fun(K) ->
                  case re:run(L, "\"" ++ K ++ "\":\"((?:[^\"\\\\]|\\\\.)*)\"",
                              [{capture, all_but_first, binary}]) of
                      {match, [V]} -> V;
                      nomatch -> undefined
                  end
          end,
    #{msg => Get("msg"), trace_id => Get("trace_id"), level => Get("level")}.

log_size(Node) -> byte_size(bl_test_util:log_text(Node)).

lines_with(Node, Subs) -> lines_with(Node, Subs, 0).
lines_with(Node, Subs, Off) ->
    [L || L = #{msg := M} <- log_lines(Node, Off), M =/= undefined,
          lists:any(fun(S) -> binary:match(M, S) =/= nomatch end, Subs)].

events(A, Id) ->
    {0, Out} = cli(io_lib:format("events --node '~s' --cluster --trace ~s --format json", [A, Id])),
    %% the JSON array follows any stderr lines
    {match, [J]} = re:run(Out, "(?s)(\\[.*\\])", [{capture, all_but_first, binary}]),
    Objs = re:split(J, "\\n  },?\\n", [trim]),
    [ev_fields(O) || O <- Objs, binary:match(O, <<"\"what\"">>) =/= nomatch orelse
                                    binary:match(O, <<"\"type\"">>) =/= nomatch].

ev_fields(O) ->
    Get = fun(K) ->
                  case re:run(O, "\"" ++ K ++ "\": (\"[^\"]*\"|[0-9]+)",
                              [{capture, all_but_first, binary}]) of
                      {match, [<<$", _/binary>> = V]} -> binary:part(V, 1, byte_size(V) - 2);
                      {match, [V]} -> binary_to_integer(V);
                      nomatch -> undefined
                  end
          end,
    #{what => Get("what"), type => Get("type"), node => Get("node"), trace_id => Get("trace_id"),
      time_ms => Get("time_ms"), process => Get("process")}.

has_event(Evs, Node, What) ->
    N = atom_to_binary(Node),
    lists:any(fun(#{node := EN, what := W, type := T}) ->
                      EN =:= N andalso (W =:= What orelse T =:= What)
              end, Evs).

setup() ->
    Cluster = bl_test_util:unique("trc"),
    Port = free_port(),
    A = start_a(Cluster, Port),
    B = start_c("trb", Cluster, A),
    C = start_c("trc", Cluster, A),
    ?assert(bl_test_util:agree([A, B, C], 20000)),
    %% the BEAM subscriber: a relay (linked to A's pubsub, as subscribers are) that passes what it
    %% gets to the test that asked last
    Relay = spawn(fun() -> relay(none) end),
    register(bl_trace_relay, Relay),
    {ok, _} = ps(A, {subscribe, <<"trace.#">>, Relay}),
    until(fun() -> subs_known([A, B, C], [A, B, C]) end),
    %% tr_echo is known on A (from B and C)
    until(fun() -> length(gen_server:call({beamlet_registry, A},
                                          {find, #{name => <<"tr_echo">>}}, 5000)) >= 2 end),
    #{a => A, b => B, c => C, port => Port}.

trace_test_() ->
    {setup, fun setup/0, fun(_) -> bl_test_util:stop_all() end,
     fun(Ctx) ->
             {inorder,
              [{"a CLI service call: its trace id through the registry on A, tr_echo on B or C, "
                "its publish to subscribers on three nodes, in every log line and event",
                {timeout, 120, fun() -> cli_followed(Ctx) end}},
               {"REST: traceparent honoured and echoed; a publish carries it everywhere",
                {timeout, 120, fun() -> rest_followed(Ctx) end}},
               {"an admin action (maintenance) records its event under the trace",
                {timeout, 60, fun() -> admin_event(Ctx) end}},
               {"old-format clients: calls and publishes without a trace work unchanged; "
                "the optional trace fields are honoured",
                {timeout, 60, fun() -> old_clients(Ctx) end}},
               {"the Erlang shim as the edge: beamlet_trace's current trace, or a new one, with "
                "service calls and publishes",
                {timeout, 60, fun() -> shim_edge(Ctx) end}},
               {"a stock gen_server answers a C caller's traced tag and can read the trace",
                {timeout, 60, fun() -> beam_server(Ctx) end}},
               {"seq_trace: a label set in BEAM follows a call through C nodes",
                {timeout, 60, fun() -> seq_trace_through(Ctx) end}}]}
     end}.

relay(To) ->
    receive
        {listen, P} -> relay(P);
        M when is_pid(To) -> To ! M, relay(To);
        _ -> relay(To)
    end.

listen() -> bl_trace_relay ! {listen, self()}.

recv_msg(Topic) ->
    bl_test_util:recv(fun({beamlet_msg, T, _, _}) -> T =:= Topic; (_) -> false end, 10000).

cli_followed(#{a := A, b := B, c := C}) ->
    bl_test_util:flush(),
    listen(),
    Off = maps:from_list([{N, log_size(N)} || N <- [A, B, C]]),
    {0, Out} = cli(io_lib:format("service call --node '~s' tr_echo '{\"n\": 7}' --show-trace "
                                 "--format json", [A])),
    Id = shown_trace(Out),
    %% tr_echo saw the trace as current (bl_trace_current) and answered with its id
    ?assertEqual(match, re:run(Out, Id, [{capture, none}])),
    {ok, {beamlet_msg, <<"trace.demo">>, #{n := 7}, Meta}} = recv_msg(<<"trace.demo">>),
    ?assertEqual(Id, maps:get(trace_id, Meta)),
    ?assertMatch(<<"00-", Id:32/binary, "-", _:16/binary, "-01">>, maps:get(traceparent, Meta)),
    MsgId = maps:get(id, Meta),
    [Served] = [N || N <- [B, C], lines_with(N, [<<"tr_echo: handling a call">>]) =/= []],
    %% every line about this request or its message carries the id, on every node it touched
    until(fun() -> length(lines_with(B, [MsgId])) >= 2 andalso
                       length(lines_with(C, [MsgId])) >= 2 end),
    %% the lines of this request: the calls (registry on A, tr_echo), the service's and the
    %% subscribers' own lines, pub/sub's about the message
    Subs = [<<"call to beamlet_registry">>, <<"registry: call to tr_echo">>,
            <<"call to tr_echo">>, <<"tr_echo: ">>, <<"tr_sub: ">>, MsgId],
    Related = #{A => Subs, B => Subs, C => Subs},
    maps:foreach(
      fun(N, Ss) ->
              Ls = lines_with(N, Ss, maps:get(N, Off)),
              ?assert(Ls =/= []),
              Bad = [L || L = #{trace_id := T} <- Ls, T =/= Id],
              ?assertEqual({N, []}, {N, Bad})
      end, Related),
    %% the C subscribers saw the id in the metadata
    [?assert(lines_with(N, [<<"meta_trace=", Id/binary>>]) =/= []) || N <- [B, C]],
    %% events: what the id touched, cluster-wide, in time order
    until(fun() -> length(events(A, Id)) >= 7 end),
    Evs = events(A, Id),
    [?assertEqual(Id, T) || #{trace_id := T} <- Evs],
    ?assert(has_event(Evs, A, <<"call">>)),            % the CLI's call to beamlet_registry
    ?assert(has_event(Evs, A, <<"registry.call">>)),
    ?assert(has_event(Evs, Served, <<"call">>)),       % tr_echo
    ?assert(has_event(Evs, Served, <<"pubsub.publish">>)),
    [?assert(has_event(Evs, N, <<"pubsub.deliver">>)) || N <- [A, B, C]],
    Times = [T || #{time_ms := T} <- Evs],
    ?assertEqual(lists:sort(Times), Times),
    %% cause before effect, to the millisecond the nodes stamp their events with
    At = fun(W) -> hd([T || #{what := W1, time_ms := T} <- Evs, W1 =:= W]) end,
    ?assert(At(<<"registry.call">>) =< At(<<"pubsub.publish">>)),
    ?assert(At(<<"pubsub.publish">>) =< lists:max([T || #{what := <<"pubsub.deliver">>,
                                                           time_ms := T} <- Evs])).

http(Port, Method, Path, Headers, Body) ->
    _ = application:ensure_all_started(inets),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port) ++ Path,
    Req = case Method of
              get -> {Url, Headers};
              _ -> {Url, Headers, "application/json", Body}
          end,
    {ok, {{_, Status, _}, RH, RB}} = httpc:request(Method, Req, [{timeout, 15000}], []),
    {Status, RH, RB}.

rest_followed(#{a := A, b := B, c := C, port := Port}) ->
    bl_test_util:flush(),
    listen(),
    {0, KeyOut} = cli(io_lib:format("apikey create --node '~s' --role operator", [A])),
    {match, [Key]} = re:run(KeyOut, "(blk_[A-Za-z0-9_-]+)", [{capture, all_but_first, list}]),
    TraceId = <<"4bf92f3577b34da6a3ce929d0e0e4736">>,
    TP = "00-" ++ binary_to_list(TraceId) ++ "-00f067aa0ba902b7-01",
    {Status, RH, _} = http(Port, post, "/api/v1/pubsub/publish",
                           [{"authorization", "Bearer " ++ Key}, {"traceparent", TP}],
                           "{\"topic\": \"trace.rest\", \"payload\": {\"k\": 1}}"),
    ?assert(Status >= 200 andalso Status < 300),
    %% echoed: the same trace id, the gateway's own span, sampled
    Echo = proplists:get_value("traceparent", RH),
    ?assertMatch("00-4bf92f3577b34da6a3ce929d0e0e4736-" ++ _, Echo),
    ?assertNotEqual(TP, Echo),
    ?assertEqual(match, re:run(Echo, "-01$", [{capture, none}])),
    {ok, {beamlet_msg, <<"trace.rest">>, _, Meta}} = recv_msg(<<"trace.rest">>),
    ?assertEqual(TraceId, maps:get(trace_id, Meta)),
    MsgId = maps:get(id, Meta),
    until(fun() -> lines_with(B, [MsgId]) =/= [] andalso lines_with(C, [MsgId]) =/= [] end),
    [?assertEqual({N, []}, {N, [L || L = #{trace_id := T}
                                         <- lines_with(N, [MsgId, <<"POST /api/v1/pubsub/publish">>]),
                                     T =/= TraceId]}) || N <- [A, B, C]],
    ?assert(lines_with(A, [<<"POST /api/v1/pubsub/publish">>]) =/= []),
    until(fun() -> length(events(A, TraceId)) >= 5 end),
    Evs = events(A, TraceId),
    ?assert(has_event(Evs, A, <<"http.request">>)),
    ?assert(has_event(Evs, A, <<"audit">>)),
    ?assert(has_event(Evs, A, <<"pubsub.publish">>)),
    [?assert(has_event(Evs, N, <<"pubsub.deliver">>)) || N <- [A, B, C]],
    Times = [T || #{time_ms := T} <- Evs],
    ?assertEqual(lists:sort(Times), Times),
    %% without the header: a new trace, echoed; a read is not sampled (no events)
    {200, RH2, _} = http(Port, get, "/api/v1/cluster", [], ""),
    Echo2 = proplists:get_value("traceparent", RH2),
    {match, [Id2]} = re:run(Echo2, "^00-([0-9a-f]{32})-[0-9a-f]{16}-00$",
                            [{capture, all_but_first, binary}]),
    ?assertNotEqual(TraceId, Id2),
    ?assertEqual([], events(A, Id2)),
    %% a malformed header: ignored, a new trace
    {200, RH3, _} = http(Port, get, "/api/v1/cluster", [{"traceparent", "00-XYZ"}], ""),
    ?assertEqual(match, re:run(proplists:get_value("traceparent", RH3),
                               "^00-[0-9a-f]{32}-[0-9a-f]{16}-00$", [{capture, none}])).

admin_event(#{a := A}) ->
    {0, Out} = cli(io_lib:format("node maintenance on --node '~s' --who tracer --show-trace", [A])),
    Id = shown_trace(Out),
    {0, _} = cli(io_lib:format("node maintenance off --node '~s' --who tracer", [A])),
    until(fun() -> has_event(events(A, Id), A, <<"admin">>) end),
    Evs = events(A, Id),
    ?assertEqual([], [E || E = #{type := T} <- Evs, T =/= <<"admin">>, T =/= <<"trace">>]),
    %% a given traceparent is continued: --traceparent and TRACEPARENT
    Given = <<"11112222333344445555666677778888">>,
    {0, Out2} = cli(io_lib:format("node maintenance off --node '~s' --show-trace --traceparent "
                                  "00-~s-1122334455667788-01", [A, Given])),
    ?assertEqual(Given, shown_trace(Out2)),
    {0, Out3} = bl_test_util:sh(io_lib:format(
                                  "TRACEPARENT=00-~s-1122334455667788-01 timeout 30 '~s' ping '~s' "
                                  "--show-trace --cookie '~s'",
                                  [Given, os:getenv("BEAMLET_BIN"), A, bl_test_util:cookie()])),
    ?assertEqual(Given, shown_trace(Out3)),
    {Rc, _} = cli(io_lib:format("ping '~s' --traceparent 00-nope", [A])),
    ?assertNotEqual(0, Rc).

old_clients(#{a := A, b := B}) ->
    Reg = {beamlet_registry, A},
    %% the 4-tuple call of older clients: no trace anywhere
    ?assertMatch({ok, {echo, x, none}},
                 gen_server:call(Reg, {call, <<"tr_echo">>, x, 5000}, 10000)),
    ?assertMatch({ok, {echo, y, none}},
                 gen_server:call(Reg, {call, <<"tr_echo">>, y, 5000, #{retries => 1}}, 10000)),
    %% a BEAM caller passing its traceparent (what the shim does)
    TP = <<"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01">>,
    ?assertMatch({ok, {echo, z, <<"0af7651916cd43dd8448eb211c80319c">>}},
                 gen_server:call(Reg, {call, <<"tr_echo">>, z, 5000, #{trace => TP}}, 10000)),
    %% a bad traceparent: refused like any bad option
    ?assertMatch({error, _}, gen_server:call(Reg, {call, <<"tr_echo">>, z, 5000, #{trace => 7}},
                                             10000)),
    %% publish: old options, then with a trace
    bl_test_util:flush(),
    listen(),
    {ok, _} = ps(A, {publish, <<"trace.old">>, old, #{}}),
    {ok, {beamlet_msg, <<"trace.old">>, old, M1}} = recv_msg(<<"trace.old">>),
    ?assertNot(maps:is_key(trace_id, M1)),
    [?assert(maps:is_key(K, M1)) || K <- [id, priority, qos, published_at, ttl_ms, publisher, sub]],
    {ok, _} = ps(A, {publish, <<"trace.old">>, new, #{trace => TP, priority => high}}),
    {ok, {beamlet_msg, <<"trace.old">>, new, M2}} = recv_msg(<<"trace.old">>),
    ?assertEqual(<<"0af7651916cd43dd8448eb211c80319c">>, maps:get(trace_id, M2)),
    %% a plain gen_server:call to a C process (tag [alias|Ref], no trace) still answers
    ?assertMatch({echo, q, none}, gen_server:call({tr_echo, B}, q, 5000)).

shim_edge(#{a := A}) ->
    TP = beamlet_trace:new(sampled),
    Id = beamlet_trace:trace_id(TP),
    ?assertMatch({ok, {Id, _, <<"01">>}}, beamlet_trace:parse(TP)),
    ?assertEqual({error, badarg}, beamlet_trace:parse(<<"00-nope">>)),
    ?assertEqual(Id, beamlet_trace:trace_id(beamlet_trace:child(TP))),
    ?assertNotEqual(TP, beamlet_trace:child(TP)),
    %% the caller's current trace goes with the call; the service sees it as its own current one
    ?assertEqual({ok, {echo, s, Id}},
                 beamlet_trace:with(TP, fun() ->
                                                beamlet_client:service_call(A, <<"tr_echo">>, s, 5000)
                                        end)),
    ?assertEqual(undefined, beamlet_trace:current()),
    %% none current: the shim starts one per request
    {ok, {echo, s, N1}} = beamlet_client:service_call(A, <<"tr_echo">>, s, 5000),
    {ok, {echo, s, N2}} = beamlet_client:service_call(A, <<"tr_echo">>, s, 5000),
    ?assertMatch(<<_:32/binary>>, N1),
    ?assertNotEqual(N1, N2),
    %% a publish carries it to the subscribers' metadata
    bl_test_util:flush(),
    listen(),
    ok = beamlet_trace:set(TP),
    {ok, _} = beamlet_client:publish(A, <<"trace.shim">>, hi, #{}),
    ok = beamlet_trace:clear(),
    {ok, {beamlet_msg, <<"trace.shim">>, hi, Meta}} = recv_msg(<<"trace.shim">>),
    ?assertEqual(Id, maps:get(trace_id, Meta)).

beam_server(_Ctx) ->
    {ok, Srv} = bl_trace_beam_srv:start(),
    try
        %% the CLI (a C node) calls this runner's beamlet_registry under a trace
        {0, Out} = cli(io_lib:format("service call --node '~s' tr_x '\"hello\"' --show-trace "
                                     "--format json", [node()])),
        Id = shown_trace(Out),
        ?assertEqual(match, re:run(Out, "\"tag_trace\": \"00-" ++ binary_to_list(Id),
                                   [{capture, none}])),
        ?assertEqual(match, re:run(Out, "\"request\": \"hello\"", [{capture, none}]))
    after
        gen_server:stop(Srv)
    end.

%% The seq_trace tracer: keeps what it gets, hands it over on {st_get, Pid} (and forgets it).
tracer() ->
    spawn(fun() -> tracer_loop([]) end).

tracer_loop(Acc) ->
    receive
        {st_get, P} -> P ! {st_got, lists:reverse(Acc)}, tracer_loop([]);
        M -> tracer_loop([M | Acc])
    end.

seq_trace_through(Ctx) ->
    %% in a process of its own: the token never reaches eunit's processes
    T = tracer(),
    seq_trace:set_system_tracer(T),
    {P, M} = spawn_monitor(fun() -> seq_trace_run(Ctx, T), exit(done) end),
    receive {'DOWN', M, process, P, R} -> ?assertEqual(done, R) after 60000 -> error(timeout) end,
    seq_trace:set_system_tracer(false),
    exit(T, kill).

seq_trace_run(#{a := A, b := B}, Tracer) ->
    Label = {order, <<"o-42">>},
    %% straight to a C process on B
    seq_trace:set_token(label, Label),
    seq_trace:set_token(send, true),
    seq_trace:set_token('receive', true),
    {echo, ping, none} = gen_server:call({tr_echo, B}, ping, 5000),
    seq_trace:set_token([]),
    E1 = st_events(Tracer),
    true = lists:any(fun({seq_trace, L, {'receive', _, From, _, {_, {echo, ping, none}}}}) ->
                             L =:= Label andalso node(From) =:= B;
                        (_) -> false end, E1),
    %% through A: its registry (a C process) calls tr_echo on B or C, that node answers A, A
    %% answers us: the token goes BEAM -> A -> B -> A -> BEAM, the serial growing at each hop
    seq_trace:set_token(label, 99),
    seq_trace:set_token(send, true),
    seq_trace:set_token('receive', true),
    {ok, {echo, via, none}} = gen_server:call({beamlet_registry, A},
                                              {call, <<"tr_echo">>, via, 5000}, 10000),
    seq_trace:set_token([]),
    E2 = st_events(Tracer),
    [Sent] = [S || {seq_trace, 99, {send, {_, S}, _, {beamlet_registry, _}, _}} <- E2],
    [{Prev, Serial, From}] = [{Pr, S, Fr} || {seq_trace, 99, {'receive', {Pr, S}, Fr, _,
                                                             {_, {ok, {echo, via, none}}}}} <- E2],
    A = node(From),
    %% A received serial Sent, called tr_echo (Sent+1), got its answer (>= Sent+2), answered us
    true = Prev >= Sent + 2,
    true = Serial > Prev,
    ok.

%% The seq_trace messages the tracer got so far.
st_events(Tracer) ->
    timer:sleep(300),
    Tracer ! {st_get, self()},
    receive {st_got, Ms} -> Ms after 5000 -> [] end.
