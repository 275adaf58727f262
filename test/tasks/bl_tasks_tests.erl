%% bl_tasks_tests - the task dispatcher (`beamlet_tasks`, docs/tasks.md) against real beamlet
%% nodes (ASan builds) on loopback: placement by capability and load across 4 agents,
%% concurrency limits, retries, timeouts, cancellation, the leader killed with 500 tasks in
%% flight while more are submitted, an agent killed mid-task, every coordinator stopped and
%% started again, Erlang handlers, the CLI, and exec confined to its allow-list.
-module(bl_tasks_tests).
-include_lib("eunit/include/eunit.hrl").

fast() ->
    case get(slow) of
        %% under the load of 500 tasks an ASan build on a busy machine needs the default election
        true -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "5",
                 "--election-timeout-ms", "1500", "--health-interval-ms", "1000"];
        _ -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
              "--election-timeout-ms", "600", "--health-interval-ms", "1000"]
    end.

host() -> bl_test_util:host().

node_name(Alias) -> list_to_atom(Alias ++ "@" ++ host()).

%% a beamlet node under a fixed alias (so it can be started again under the same name)
start_named(Alias, Args) ->
    Node = node_name(Alias),
    bl_test_util:spawn_raw(Node, os:getenv("BEAMLET_BIN"),
                           ["node", "--sname", Alias, "--cookie", bl_test_util:cookie(),
                            "--net-ticktime", integer_to_list(bl_test_util:ticktime()) | Args ++ fast()]),
    ok = bl_test_util:wait_up(Node, 20000),
    Node.

coordinator(Alias, C, Join) ->
    start_named(Alias, ["--role", "coordinator", "--cluster", C | join(Join)]).

agent(Alias, C, Join, Caps, Limit) ->
    start_named(Alias, ["--role", "agent", "--cluster", C, "--task-concurrency", integer_to_list(Limit)
                        | caps(Caps) ++ join(Join)]).

caps([]) -> [];
caps(Cs) -> ["--capabilities", string:join(Cs, ",")].

join([]) -> [];
join(J) -> ["--join", string:join([atom_to_list(N) || N <- J], ",")].

until(F) -> until(F, 30000).
until(F, T) -> ?assert(bl_test_util:wait_until(F, T)).

call(N, Req) -> gen_server:call({beamlet_tasks, N}, Req, 30000).

leader(N) ->
    case gen_server:call({beamlet_cluster, N}, status, 5000) of
        #{leader := L} -> L;
        _ -> undefined
    end.

%% every node names the same leader and it knows every agent
settled(Nodes, Agents) ->
    until(fun() ->
                  Ls = lists:usort([leader(N) || N <- Nodes]),
                  case Ls of
                      [L] when L =/= undefined, L =/= none ->
                          {ok, As} = call(L, agents),
                          lists:sort([maps:get(node, A) || A <- As]) =:= lists:sort(Agents);
                      _ -> false
                  end
          end, 40000).

submit(N, Spec) ->
    {ok, Id} = call(N, {submit, Spec}),
    Id.

%% submit until acknowledged (a leader change answers with an error: tried again, same key)
submit_acked(Nodes, Spec, Key, Deadline) ->
    N = lists:nth(rand:uniform(length(Nodes)), Nodes),
    R = (catch gen_server:call({beamlet_tasks, N}, {submit, Spec#{idempotency_key => Key}}, 10000)),
    case R of
        {ok, Id} -> {ok, Id};
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {gave_up, R};
                false -> timer:sleep(100), submit_acked(Nodes, Spec, Key, Deadline)
            end
    end.

wait_final(N, Id) ->
    case catch call(N, {wait, Id, 25000}) of
        {ok, T = #{state := S}} ->
            case lists:member(S, final_states()) of
                true -> T;
                false -> wait_final(N, Id)
            end;
        _ -> timer:sleep(200), wait_final(N, Id)
    end.

%% a task as the leader has it (asked through N; tried again during an election)
get(N, Id) -> get(N, Id, 100).
get(N, Id, Tries) ->
    case catch call(N, {get, Id}) of
        {ok, T} -> T;
        {error, not_found} = E -> E;
        E when Tries =< 0 -> E;
        _ -> timer:sleep(100), get(N, Id, Tries - 1)
    end.

runs(Agents) ->
    lists:append([[R#{agent => A} || R <- safe_runs(A)] || A <- Agents]).

safe_runs(A) ->
    case catch gen_server:call({beamlet_tasks, A}, runs, 10000) of
        L when is_list(L) -> L;
        _ -> []
    end.

final_states() -> [succeeded, failed, cancelled, timed_out].

finals(#{history := H}) -> [S || #{state := S} <- H, lists:member(S, final_states())].

%% no two runs of one task overlap in time (on one agent or two); unfinished runs end now
no_overlap(Runs) ->
    Now = erlang:system_time(millisecond),
    ByTask = lists:foldl(fun(R = #{id := Id}, M) -> maps:update_with(Id, fun(L) -> [R | L] end, [R], M) end,
                         #{}, Runs),
    Bad = [{Id, Rs} || {Id, Rs} <- maps:to_list(ByTask), overlaps(Rs, Now)],
    ?assertEqual([], Bad).

overlaps(Rs, Now) ->
    Iv = lists:sort([{S, case E of 0 -> Now; _ -> E end} || #{start_ms := S, end_ms := E} <- Rs]),
    overl(Iv).
overl([{_, E1}, {S2, _} = B | T]) -> S2 < E1 orelse overl([B | T]);
overl(_) -> false.

%% ---- placement by capability and load, concurrency limits, retries, timeouts, cancel ----

placement_test_() -> {timeout, 240, fun placement/0}.

placement() ->
    C = "tp" ++ bl_test_util:unique(""),
    Co = coordinator("tpc" ++ bl_test_util:unique(""), C, []),
    A1 = agent("tpa1" ++ bl_test_util:unique(""), C, [Co], ["gpu"], 2),
    A2 = agent("tpa2" ++ bl_test_util:unique(""), C, [Co], ["gpu", "ssd"], 2),
    A3 = agent("tpa3" ++ bl_test_util:unique(""), C, [Co], ["ssd"], 2),
    A4 = agent("tpa4" ++ bl_test_util:unique(""), C, [Co], [], 2),
    Agents = [A1, A2, A3, A4],
    settled([Co | Agents], Agents),
    %% capabilities: gpu+ssd only on A2, gpu on A1/A2, ssd on A2/A3
    Both = [submit(Co, #{type => <<"echo">>, payload => I, capabilities => [<<"gpu">>, <<"ssd">>]})
            || I <- lists:seq(1, 4)],
    Gpu = [submit(A4, #{type => <<"echo">>, payload => I, capabilities => [<<"gpu">>]})
           || I <- lists:seq(1, 6)],
    Ssd = [submit(A1, #{type => <<"echo">>, payload => I, capabilities => [<<"ssd">>]})
           || I <- lists:seq(1, 6)],
    [?assertMatch(#{state := succeeded, agent := A2}, wait_final(Co, Id)) || Id <- Both],
    [?assert(lists:member(maps:get(agent, wait_final(Co, Id)), [A1, A2])) || Id <- Gpu],
    [?assert(lists:member(maps:get(agent, wait_final(Co, Id)), [A2, A3])) || Id <- Ssd],
    %% the payload and the result are any term
    #{result := #{<<"k">> := [1, 2.5, <<"x">>]}} =
        wait_final(Co, submit(Co, #{type => <<"echo">>, payload => #{<<"k">> => [1, 2.5, <<"x">>]}})),
    %% load: 8 sleeps on 4 agents with 2 slots each: two on every agent, all at once
    Sl = [submit(Co, #{type => <<"sleep">>, payload => #{ms => 2500}}) || _ <- lists:seq(1, 8)],
    until(fun() -> length([1 || Id <- Sl, maps:get(state, get(Co, Id)) =:= running]) =:= 8 end, 15000),
    Per = lists:sort([maps:get(agent, get(Co, Id)) || Id <- Sl]),
    ?assertEqual(lists:sort(Agents ++ Agents), Per),
    %% concurrency: 4 more wait for a free slot
    More = [submit(Co, #{type => <<"sleep">>, payload => #{ms => 300}}) || _ <- lists:seq(1, 4)],
    timer:sleep(500),
    ?assert(lists:all(fun(Id) -> maps:get(state, get(Co, Id)) =:= queued end, More)),
    [?assertMatch(#{state := succeeded}, wait_final(Co, Id)) || Id <- Sl ++ More],
    %% at no moment more than 2 attempts at once on one agent
    lists:foreach(fun(A) ->
                          Iv = [{S, E} || #{start_ms := S, end_ms := E} <- safe_runs(A)],
                          ?assert(max_concurrent(Iv) =< 2)
                  end, Agents),
    %% retries with backoff: 2 failures then success; and out of retries
    R3 = wait_final(Co, submit(Co, #{type => <<"sleep">>, payload => #{ms => 10, fail_attempts => 2},
                                     retries => 2})),
    ?assertMatch(#{state := succeeded, attempt := 3}, R3),
    ?assertEqual([failed, failed, succeeded], finals(R3)),
    %% every transition is an event on the leader (type task), with the trace id
    #{id := R3Id, trace_id := R3Tr} = R3,
    until(fun() ->
                  {ok, Evs} = gen_server:call({beamlet_health, Co}, {events, #{type => <<"task">>, limit => 1000}}, 10000),
                  Mine = [B || #{body := B} <- Evs, binary:match(B, R3Id) =/= nomatch],
                  States = lists:sort([St || B <- Mine, {match, [St]} <- [re:run(B, "\"state\":\"([a-z_]+)\"", [{capture, all_but_first, binary}])]]),
                  lists:all(fun(B) -> binary:match(B, R3Tr) =/= nomatch end, Mine) andalso
                      States =:= lists:sort([<<"queued">>, <<"assigned">>, <<"running">>, <<"failed">>, <<"queued">>,
                                             <<"assigned">>, <<"running">>, <<"failed">>, <<"queued">>,
                                             <<"assigned">>, <<"running">>, <<"succeeded">>])
          end, 15000),
    R1 = wait_final(Co, submit(Co, #{type => <<"sleep">>, payload => #{ms => 10, fail_attempts => 5},
                                     retries => 1})),
    ?assertMatch(#{state := failed, attempt := 2, error := slept_then_failed}, R1),
    %% timeout: the attempt is stopped on its agent
    T = wait_final(Co, submit(Co, #{type => <<"sleep">>, payload => #{ms => 5000}, timeout_ms => 400})),
    ?assertMatch(#{state := timed_out, error := timeout}, T),
    %% cancel a running task: cancelled at once; its agent stops it
    K = submit(Co, #{type => <<"sleep">>, payload => #{ms => 20000}}),
    until(fun() -> maps:get(state, get(Co, K)) =:= running end),
    {ok, #{state := cancelled}} = call(Co, {cancel, K}),
    {error, already_final} = call(Co, {cancel, K}),
    #{agent := KA} = get(Co, K),
    until(fun() -> [O || #{id := I, outcome := O} <- safe_runs(KA), I =:= K] =:= [cancelled] end, 10000),
    %% bad requests are refused with a reason; the service stays up
    {error, {bad_request, _}} = call(Co, {submit, #{payload => 1}}),
    {error, {bad_request, _}} = call(Co, {submit, #{type => <<"echo">>, priority => urgent}}),
    {error, {bad_request, _}} = call(Co, {submit, #{type => <<"echo">>, trace_id => <<"00">>}}),
    {error, not_found} = call(Co, {get, <<"nope">>}),
    {error, unknown_request} = call(Co, what),
    %% trace ids: taken from the submitter, or made (32 hex digits)
    Tr = <<"4bf92f3577b34da6a3ce929d0e0e4736">>,
    #{trace_id := Tr} = wait_final(Co, submit(Co, #{type => <<"echo">>, trace_id => Tr})),
    #{trace_id := Gen} = wait_final(Co, submit(Co, #{type => <<"echo">>})),
    ?assertMatch({match, _}, re:run(Gen, "^[0-9a-f]{32}$")),
    %% idempotency key: one task per key
    I1 = submit(Co, #{type => <<"echo">>, idempotency_key => <<"k1">>}),
    ?assertEqual(I1, submit(A3, #{type => <<"echo">>, idempotency_key => <<"k1">>})),
    %% priority: with one slot free, high goes before normal and low
    Hold = [submit(Co, #{type => <<"sleep">>, payload => #{ms => 1500}}) || _ <- lists:seq(1, 8)],
    until(fun() -> length([1 || Id <- Hold, maps:get(state, get(Co, Id)) =:= running]) =:= 8 end, 15000),
    Lo = submit(Co, #{type => <<"echo">>, priority => low}),
    No = submit(Co, #{type => <<"echo">>}),
    Hi = submit(Co, #{type => <<"echo">>, priority => high}),
    [wait_final(Co, Id) || Id <- [Lo, No, Hi]],
    Started = fun(Id) -> hd([Tm || #{state := assigned, time_ms := Tm} <- maps:get(history, get(Co, Id))]) end,
    ?assert(Started(Hi) =< Started(No)),
    ?assert(Started(No) =< Started(Lo)),
    %% the CLI: submit --wait prints the result; get; a bad option is a usage error
    Bin = os:getenv("BEAMLET_BIN"),
    Ck = " --cookie " ++ bl_test_util:cookie(),
    {0, Out} = bl_test_util:sh(Bin ++ " task submit --node " ++ atom_to_list(A1) ++ Ck ++
                                   " --type echo --capability gpu --payload '{\"a\":[1,\"b\"]}' --wait"),
    ?assertEqual("{\"a\":[1,\"b\"]}", lists:last(string:lexemes(Out, "\n"))),
    {0, IdOut} = bl_test_util:sh(Bin ++ " task submit --node " ++ atom_to_list(Co) ++ Ck ++
                                     " --type sleep --payload '{\"ms\":100}' --priority high --retries 1"),
    CliId = list_to_binary(string:trim(IdOut)),
    #{state := succeeded, priority := high, retries := 1} = wait_final(Co, CliId),
    {0, GetOut} = bl_test_util:sh(Bin ++ " task get " ++ binary_to_list(CliId) ++ " --node " ++
                                      atom_to_list(A2) ++ Ck),
    ?assertNotEqual(nomatch, string:find(GetOut, "succeeded")),
    {1, _} = bl_test_util:sh(Bin ++ " task submit --node " ++ atom_to_list(Co) ++ Ck ++
                                 " --type sleep --payload '{\"ms\":10,\"fail_attempts\":1}' --wait"),
    {2, _} = bl_test_util:sh(Bin ++ " task submit --node " ++ atom_to_list(Co) ++ Ck ++ " --type echo --priority urgent"),
    {2, _} = bl_test_util:sh(Bin ++ " task submit --node " ++ atom_to_list(Co) ++ Ck ++ " --payload 1"),
    {0, WOut} = bl_test_util:sh(Bin ++ " task watch " ++ binary_to_list(CliId) ++ " --node " ++ atom_to_list(Co) ++ Ck),
    ?assertNotEqual(nomatch, string:find(WOut, "assigned")),
    %% the CLI's trace (--traceparent) becomes the task's trace id, through a non-leader too
    TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    {0, TIdOut} = bl_test_util:sh(Bin ++ " task submit --node " ++ atom_to_list(A2) ++ Ck ++
                                      " --type echo --traceparent " ++ TP),
    #{trace_id := <<"0af7651916cd43dd8448eb211c80319c">>} =
        wait_final(Co, list_to_binary(string:trim(TIdOut))),
    %% and its transitions are found by that trace id in the leader's event log
    until(fun() ->
                  {ok, TEvs} = gen_server:call({beamlet_health, Co},
                                               {events, #{trace_id => <<"0af7651916cd43dd8448eb211c80319c">>,
                                                          limit => 100}}, 10000),
                  lists:member(<<"task">>, [Ty || #{type := Ty} <- TEvs])
          end, 15000),
    ok.

max_concurrent(Iv) ->
    Now = erlang:system_time(millisecond),
    Ev = lists:sort(lists:append([[{S, 1}, {case E of 0 -> Now; _ -> E end, -1}] || {S, E} <- Iv])),
    {_, Max} = lists:foldl(fun({_, D}, {Cur, M}) -> {Cur + D, max(M, Cur + D)} end, {0, 0}, Ev),
    Max.

%% ---- the leader killed with 500 tasks in flight; then an agent; then every coordinator ----

failover_test_() -> {timeout, 400, fun failover/0}.

failover() ->
    C = "tf" ++ bl_test_util:unique(""),
    U = bl_test_util:unique(""),
    put(slow, true),
    Names = ["tfc1" ++ U, "tfc2" ++ U, "tfc3" ++ U],
    Cos = start_coordinators(Names, C),
    Agents = [agent("tfa" ++ integer_to_list(I) ++ U, C, Cos, [], 25) || I <- lists:seq(1, 4)],
    All = Cos ++ Agents,
    settled(All, Agents),
    Cur = fun() -> leader(lists:nth(rand:uniform(3), Cos)) end,
    %% 500 tasks from 5 submitters, each retried until acknowledged
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + 120000,
    Submitters =
        [spawn_link(fun() ->
                            Ids = [begin
                                       Key = list_to_binary(io_lib:format("k~p-~p", [S, I])),
                                       Spec = #{type => <<"sleep">>, payload => #{ms => 300 + rand:uniform(700)},
                                                timeout_ms => 30000},
                                       case submit_acked(Cos ++ Agents, Spec, Key, Deadline) of
                                           {ok, Id} -> Id;
                                           {gave_up, _} -> none
                                       end
                                   end || I <- lists:seq(1, 120)],
                            Self ! {ids, self(), Ids}
                    end) || S <- lists:seq(1, 5)],
    %% kill -9 the leader once 250+ are acknowledged and many are running
    %% kill -9 the leader once 250+ are acknowledged and many are running (asked of the
    %% leader itself, which may change meanwhile on a loaded machine)
    Probe = fun() ->
                    L = Cur(),
                    case lists:member(L, Cos) andalso (catch call(L, {list, #{limit => 100000}})) of
                        {ok, Ts} ->
                            NF = length([1 || #{state := St} <- Ts, not lists:member(St, final_states())]),
                            Run = length([1 || #{state := St} <- Ts, St =:= running orelse St =:= assigned]),
                            case length(Ts) >= 250 andalso Run >= 40 of
                                true -> {L, length(Ts), NF};
                                false -> no
                            end;
                        _ -> no
                    end
            end,
    {Leader, Total, NotFinal} = probe(Probe, erlang:monotonic_time(millisecond) + 90000),
    Others = Cos -- [Leader],
    ?debugFmt("leader ~p killed with ~p tasks, ~p not final", [Leader, Total, NotFinal]),
    ?assert(NotFinal >= 40),
    bl_test_util:kill(Leader),
    Ids = lists:append([receive {ids, P, L} -> L after 200000 -> error(submitter_stuck) end
                        || P <- Submitters]),
    ?assertEqual(600, length(Ids)),
    ?assertEqual([], [none || none <- Ids]),
    ?assertEqual(600, length(lists:usort(Ids))),
    until(fun() -> lists:member(leader(hd(Others)), Others) end),
    NewLeader = leader(hd(Others)),
    check_all_final(NewLeader, Ids, Agents, succeeded),
    %% an agent killed mid-task: its attempts go to the others
    Batch2 = [submit(NewLeader, #{type => <<"sleep">>, payload => #{ms => 1500}}) || _ <- lists:seq(1, 60)],
    [Victim | Rest] = Agents,
    until(fun() ->
                  length([1 || Id <- Batch2, #{state := running, agent := A} <- [get(NewLeader, Id)],
                               A =:= Victim]) >= 5
          end, 20000),
    OnVictim = [Id || Id <- Batch2, #{agent := A, state := running} <- [get(NewLeader, Id)], A =:= Victim],
    bl_test_util:kill(Victim),
    check_all_final(NewLeader, Batch2, Rest, succeeded),
    [?assertMatch(#{lost := 1}, get(NewLeader, Id)) || Id <- OnVictim],
    [?assertNotEqual(Victim, maps:get(agent, get(NewLeader, Id))) || Id <- OnVictim],
    %% every coordinator stopped, then started again: the queue is kept
    Late = [submit(NewLeader, #{type => <<"sleep">>, payload => #{ms => 50}, capabilities => [<<"late">>]})
            || _ <- lists:seq(1, 30)],
    Done = lists:sublist(Ids, 20),
    timer:sleep(500), %% the store's batch (50 ms) is written
    [bl_test_util:term(N) || N <- Others],
    Restarted = start_coordinators([atom_to_list(N) -- ("@" ++ host()) || N <- Cos], C, Rest),
    LateAgent = agent("tflate" ++ U, C, Restarted, ["late"], 10),
    settled(Restarted ++ Rest ++ [LateAgent], Rest ++ [LateAgent]),
    L2 = leader(hd(Restarted)),
    check_all_final(L2, Late, [LateAgent], succeeded),
    [?assertMatch(#{state := succeeded}, get(L2, Id)) || Id <- Done],
    ok.

probe(F, Deadline) ->
    case F() of
        no ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error(no_leader_with_tasks_in_flight);
                false -> timer:sleep(100), probe(F, Deadline)
            end;
        R -> R
    end.

start_coordinators(Names, C) -> start_coordinators(Names, C, []).
start_coordinators(Names, C, Extra) ->
    Nodes = [node_name(A) || A <- Names],
    [begin
         Join = (Nodes -- [node_name(A)]) ++ Extra,
         bl_test_util:spawn_raw(node_name(A), os:getenv("BEAMLET_BIN"),
                                ["node", "--sname", A, "--cookie", bl_test_util:cookie(),
                                 "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
                                 "--role", "coordinator", "--cluster", C | join(Join) ++ fast()])
     end || A <- Names],
    [ok = bl_test_util:wait_up(N, 20000) || N <- Nodes],
    Nodes.

%% every acknowledged task reaches exactly one final state, once; no task ran twice at once
check_all_final(Leader, Ids, Agents, Want) ->
    until(fun() ->
                  lists:all(fun(Id) ->
                                    case get(Leader, Id) of
                                        #{state := S} -> lists:member(S, final_states());
                                        _ -> false
                                    end
                            end, Ids)
          end, 150000),
    Ts = [get(Leader, Id) || Id <- Ids],
    ?assertEqual([], [T || T = #{state := S} <- Ts, S =/= Want]),
    ?assertEqual([], [T || T <- Ts, length(finals(T)) =/= 1]),
    no_overlap([R || R = #{id := Id} <- runs(Agents), lists:member(Id, Ids)]),
    %% the recorded result came from the attempt and agent the record names
    [?assertMatch(#{result := #{node := A}, agent := A}, T) || T <- Ts].

%% ---- Erlang handlers through the protocol ----

erlang_handler_test_() -> {timeout, 120, fun erlang_handler/0}.

erlang_handler() ->
    C = "te" ++ bl_test_util:unique(""),
    Co = coordinator("tec" ++ bl_test_util:unique(""), C, []),
    A = agent("tea" ++ bl_test_util:unique(""), C, [Co], [], 4),
    settled([Co, A], [A]),
    Me = self(),
    H = spawn_link(fun() -> handler_loop(A, Me) end),
    ok = gen_server:call({beamlet_tasks, A}, {register_handler, <<"erl.upper">>, H}),
    until(fun() ->
                  {ok, [#{types := Ts}]} = call(Co, agents),
                  lists:member(<<"erl.upper">>, Ts)
          end),
    Id = submit(Co, #{type => <<"erl.upper">>, payload => <<"hello">>}),
    #{state := succeeded, result := <<"HELLO">>, agent := A} = wait_final(Co, Id),
    receive {handled, Id, TraceId} -> ?assertMatch({match, _}, re:run(TraceId, "^[0-9a-f]{32}$"))
    after 5000 -> error(no_handled) end,
    %% an error from the handler fails the task (with its reason)
    Bad = submit(Co, #{type => <<"erl.upper">>, payload => 42}),
    #{state := failed, error := not_a_binary} = wait_final(Co, Bad),
    %% a handler on the coordinator itself: the leader assigns to its own node
    H2 = spawn_link(fun() -> handler_loop(Co, Me) end),
    ok = gen_server:call({beamlet_tasks, Co}, {register_handler, <<"erl.upper">>, H2}),
    ok = gen_server:call({beamlet_tasks, A}, {unregister_handler, <<"erl.upper">>}),
    until(fun() ->
                  {ok, As} = call(Co, agents),
                  [N || #{node := N, types := Ts} <- As, lists:member(<<"erl.upper">>, Ts)] =:= [Co]
          end),
    OnCo = submit(Co, #{type => <<"erl.upper">>, payload => <<"co">>}),
    #{state := succeeded, result := <<"CO">>, agent := Co} = wait_final(Co, OnCo),
    unlink(H2),
    exit(H2, kill),
    ok = gen_server:call({beamlet_tasks, A}, {register_handler, <<"erl.upper">>, H}),
    %% the handler process exits: its type is no longer advertised
    unlink(H),
    exit(H, kill),
    until(fun() ->
                  {ok, [#{types := Ts}]} = call(Co, agents),
                  not lists:member(<<"erl.upper">>, Ts)
          end),
    ok.

handler_loop(Node, Report) ->
    receive
        {beamlet_task, Ref, #{id := Id, payload := P, trace_id := Tr}} ->
            R = case is_binary(P) of
                    true -> {ok, string:uppercase(P)};
                    false -> {error, not_a_binary}
                end,
            gen_server:cast({beamlet_tasks, Node}, {task_done, Ref, R}),
            Report ! {handled, Id, Tr},
            handler_loop(Node, Report)
    end.

%% ---- exec: refused unless allowed, confined to the allow-list, output bounded; health.check ----

exec_test_() -> {timeout, 120, fun exec/0}.

exec() ->
    C = "tx" ++ bl_test_util:unique(""),
    Co = coordinator("txc" ++ bl_test_util:unique(""), C, []),
    Checks = "[{\"name\":\"ok\",\"command\":[\"/bin/true\"],\"interval_s\":3600},"
             "{\"name\":\"bad\",\"command\":[\"/bin/false\"],\"interval_s\":3600}]",
    Ax = start_named("txa" ++ bl_test_util:unique(""),
                     ["--role", "agent", "--cluster", C, "--join", atom_to_list(Co),
                      "--capabilities", "exec", "--task-exec-allow", "/bin/echo,/usr/bin/seq,/bin/sleep",
                      "--task-exec-output-max", "300", "--health-checks", Checks]),
    An = agent("txn" ++ bl_test_util:unique(""), C, [Co], ["plain"], 4),
    settled([Co, Ax, An], [Ax, An]),
    %% exec is not offered where it is not allowed
    ?assert(lists:member(<<"exec">>, gen_server:call({beamlet_tasks, Ax}, handlers))),
    ?assertNot(lists:member(<<"exec">>, gen_server:call({beamlet_tasks, An}, handlers))),
    {ok, As} = call(Co, agents),
    [#{types := TN}] = [A || A = #{node := N} <- As, N =:= An],
    ?assertNot(lists:member(<<"exec">>, TN)),
    %% a task needing exec and the `plain` capability has nowhere to go: it stays queued
    Nowhere = submit(Co, #{type => <<"exec">>, capabilities => [<<"plain">>],
                           payload => #{<<"argv">> => [<<"/bin/echo">>, <<"x">>]}}),
    %% allowed: argv as given, no shell
    Ok = wait_final(Co, submit(Co, #{type => <<"exec">>,
                                     payload => #{<<"argv">> => [<<"/bin/echo">>, <<"a b">>, <<"$HOME;ls">>]}})),
    ?assertMatch(#{state := succeeded, agent := Ax,
                   result := #{exit_status := 0, output := <<"a b $HOME;ls\n">>, truncated := false}}, Ok),
    %% not on the list (a shell, a relative name, a path that only looks alike): refused
    [?assertMatch(#{state := failed, error := {not_allowed, _}},
                  wait_final(Co, submit(Co, #{type => <<"exec">>, payload => #{<<"argv">> => Argv}})))
     || Argv <- [[<<"/bin/sh">>, <<"-c">>, <<"echo hi">>], [<<"echo">>, <<"hi">>],
                 [<<"/bin/../bin/echo">>, <<"hi">>], [<<"/usr/bin/seq2">>]]],
    #{state := failed, error := {bad_payload, _}} =
        wait_final(Co, submit(Co, #{type => <<"exec">>, payload => <<"/bin/echo hi">>})),
    %% output bounded (task_exec_output_max), the rest dropped
    #{state := succeeded, result := #{output := Out, truncated := true}} =
        wait_final(Co, submit(Co, #{type => <<"exec">>, payload => #{<<"argv">> => [<<"/usr/bin/seq">>, <<"100000">>]}})),
    ?assertEqual(300, byte_size(Out)),
    %% a failing command fails the task with its status
    #{state := failed, error := #{exit_status := 1}} =
        wait_final(Co, submit(Co, #{type => <<"exec">>, payload => #{<<"argv">> => [<<"/usr/bin/seq">>, <<"--bogus">>]}})),
    %% a timeout kills it
    #{state := timed_out} =
        wait_final(Co, submit(Co, #{type => <<"exec">>, timeout_ms => 300,
                                    payload => #{<<"argv">> => [<<"/usr/bin/seq">>, <<"inf">>]}})),
    %% ... and leaves no process behind: the agent has no child left (killed and reaped on
    %% its loop, runtime/child.c)
    #{os_pid := AxPid} = erpc:call(Ax, beamlet, info, [], 10000),
    Kids = fun() -> string:trim(os:cmd("pgrep -P " ++ integer_to_list(AxPid))) end,
    until(fun() -> Kids() =:= "" end),
    %% a cancel kills a running command the same way, and the agent keeps answering meanwhile
    Long = submit(Co, #{type => <<"exec">>, payload => #{<<"argv">> => [<<"/bin/sleep">>, <<"60">>]}}),
    until(fun() -> Kids() =/= "" end),
    ?assertMatch(#{state := running}, get(Co, Long)),
    ?assert(is_list(gen_server:call({beamlet_tasks, Ax}, handlers, 5000))),
    {ok, _} = call(Co, {cancel, Long}),
    until(fun() -> Kids() =:= "" end),
    ?assertMatch(#{state := cancelled}, get(Co, Long)),
    ?assertMatch(#{state := queued}, get(Co, Nowhere)),
    {ok, _} = call(Co, {cancel, Nowhere}),
    %% health.check runs a check of the agent now
    #{state := succeeded, result := #{status := passing}} =
        wait_final(Co, submit(Co, #{type => <<"health.check">>, capabilities => [<<"exec">>],
                                    payload => #{<<"name">> => <<"ok">>}})),
    #{state := failed, error := #{status := warning}} = %% exit 1: warning
        wait_final(Co, submit(Co, #{type => <<"health.check">>, capabilities => [<<"exec">>],
                                    payload => #{<<"name">> => <<"bad">>}})),
    #{state := failed, error := {no_such_check, <<"nope">>}} =
        wait_final(Co, submit(Co, #{type => <<"health.check">>, capabilities => [<<"exec">>],
                                    payload => #{<<"name">> => <<"nope">>}})),
    ok.
