%% bl_tasks_bench - task dispatcher figures for `make bench` (test/bench/tasks_bench.sh; figures,
%% never pass/fail): tasks dispatched and completed per second through one leader (3
%% coordinators: each submit is replicated before it is acknowledged) to 10 `echo` agents, with
%% the submit-to-result latency p50/p99, next to a plain gen_server:call round trip to the same
%% leader (its `beamlet` process: ping) measured in the same run; then the leader's kill -9 and
%% the time until the first task completes under the new leader (default election settings).
-module(bl_tasks_bench).
-export([main/1]).

main([Pre, NStr, ConcStr]) ->
    N = list_to_integer(NStr),
    Conc = list_to_integer(ConcStr),
    Host = lists:last(string:split(atom_to_list(node()), "@")),
    Node = fun(S) -> list_to_atom(Pre ++ S ++ "@" ++ Host) end,
    Cos = [Node("c" ++ integer_to_list(I)) || I <- [1, 2, 3]],
    Agents = [Node("a" ++ integer_to_list(I)) || I <- lists:seq(1, 10)],
    ok = wait(fun() -> lists:all(fun(X) -> net_adm:ping(X) =:= pong end, Cos ++ Agents) end, 60000),
    ok = wait(fun() ->
                      L = leader(hd(Cos)),
                      lists:member(L, Cos) andalso
                          length(element(2, gen_server:call({beamlet_tasks, L}, agents))) =:= 10
              end, 60000),
    L = leader(hd(Cos)),
    %% warm up
    _ = run(L, 200, 20),
    %% the floor: gen_server:call to the leader's beamlet process
    Floor = [timed(fun() -> pong = gen_server:call({beamlet, L}, ping) end) || _ <- lists:seq(1, 5000)],
    {T, Lat} = run(L, N, Conc),
    Rate = N / (T / 1000000),
    {P50, P99} = pcts(Lat),
    {F50, F99} = pcts(Floor),
    io:format("tasks: ~b echo tasks, ~b submitters, 3 coordinators, 10 agents: ~.1f tasks/s; "
              "submit-to-result p50 ~.2f ms p99 ~.2f ms; gen_server:call round trip to the leader "
              "p50 ~.3f ms p99 ~.3f ms (ratio p50 ~.1fx)~n",
              [N, Conc, Rate, P50 / 1000, P99 / 1000, F50 / 1000, F99 / 1000, P50 / max(1, F50)]),
    %% failover: kill -9 the leader, time to the first task completed under the new one
    [Other | _] = Cos -- [L],
    OsPid = os_pid(L),
    T0 = erlang:monotonic_time(microsecond),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    First = first_done(Cos -- [L], Agents, T0),
    NewL = leader(Other),
    io:format("tasks failover: leader ~p killed (-9); first task completed under ~p after "
              "~.1f ms (election with election_timeout_ms 1500 and failure detection, then 2500 ms "
              "of gathering the coordinators' copies)~n", [L, NewL, First / 1000]),
    halt(0).

leader(N) ->
    case catch gen_server:call({beamlet_cluster, N}, status, 5000) of
        #{leader := L} -> L;
        _ -> undefined
    end.

os_pid(N) ->
    {ok, #{os_pid := P}} = {ok, gen_server:call({beamlet, N}, info)},
    P.

timed(F) ->
    T0 = erlang:monotonic_time(microsecond),
    F(),
    erlang:monotonic_time(microsecond) - T0.

pcts(L) ->
    S = list_to_tuple(lists:sort(L)),
    K = tuple_size(S),
    {element(max(1, round(K * 0.5)), S), element(max(1, round(K * 0.99)), S)}.

%% N echo tasks from Conc processes, each submit then wait: total time and the latencies
run(L, N, Conc) ->
    Self = self(),
    Per = N div Conc,
    T0 = erlang:monotonic_time(microsecond),
    Ps = [spawn_link(fun() ->
                             Lat = [timed(fun() ->
                                                  {ok, Id} = gen_server:call({beamlet_tasks, L},
                                                                             {submit, #{type => <<"echo">>, payload => I}}, 30000),
                                                  {ok, #{state := succeeded}} =
                                                      gen_server:call({beamlet_tasks, L}, {wait, Id, 30000}, 40000)
                                          end) || I <- lists:seq(1, Per)],
                             Self ! {lat, self(), Lat}
                     end) || _ <- lists:seq(1, Conc)],
    Lat = lists:append([receive {lat, P, X} -> X end || P <- Ps]),
    {erlang:monotonic_time(microsecond) - T0, Lat}.

first_done(Cos, Agents, T0) ->
    Nodes = Cos ++ Agents,
    N = lists:nth(rand:uniform(length(Nodes)), Nodes),
    Key = integer_to_binary(erlang:unique_integer([positive])),
    case catch gen_server:call({beamlet_tasks, N}, {submit, #{type => <<"echo">>, idempotency_key => Key}}, 2000) of
        {ok, Id} -> wait_done(N, Id, T0, Cos, Agents);
        _ -> timer:sleep(20), first_done(Cos, Agents, T0)
    end.

wait_done(N, Id, T0, Cos, Agents) ->
    case catch gen_server:call({beamlet_tasks, N}, {wait, Id, 2000}, 5000) of
        {ok, #{state := succeeded}} -> erlang:monotonic_time(microsecond) - T0;
        _ -> timer:sleep(20), wait_done(N, Id, T0, Cos, Agents)
    end.

wait(F, T) ->
    Deadline = erlang:monotonic_time(millisecond) + T,
    wait_loop(F, Deadline).
wait_loop(F, Deadline) ->
    case catch F() of
        true -> ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> timeout;
                false -> timer:sleep(200), wait_loop(F, Deadline)
            end
    end.
