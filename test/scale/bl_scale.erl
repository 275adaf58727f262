%% bl_scale - the checks of the scale suite (test/scale/run.sh), run from an observer erl node:
%% every node lists every other as an active beamlet member, and every node answers a ping and
%% a gen_server call, within a generous deadline (timing figures belong to `make bench`); then,
%% for SettleMs more (the CPU hogs of the runner still running), no node suspects or fails anyone:
%% the failure detectors' counters (status -> detector) do not move and every node still lists
%% every member as active.
-module(bl_scale).
-export([check/3, check/4]).

-spec check([node()], pos_integer(), pos_integer()) -> no_return().
check(Nodes, Expected, DeadlineMs) -> check(Nodes, Expected, DeadlineMs, 0).

-spec check([node()], pos_integer(), pos_integer(), non_neg_integer()) -> no_return().
check(Nodes, Expected, DeadlineMs, SettleMs) ->
    T0 = erlang:monotonic_time(millisecond),
    Deadline = T0 + DeadlineMs,
    Converged = wait(Nodes, Expected, Deadline),
    Tc = erlang:monotonic_time(millisecond) - T0,
    io:format("  converged: ~b of ~b nodes list ~b active members (the observer waited ~b ms)~n",
              [length(Nodes) - length(Converged), length(Nodes), Expected, Tc]),
    Pang = [N || N <- Nodes, net_adm:ping(N) =/= pong],
    io:format("  ping: ~b of ~b nodes answer pong~n", [length(Nodes) - length(Pang), length(Nodes)]),
    NoInfo = [N || N <- Nodes, not is_map(catch gen_server:call({beamlet, N}, info, 5000))],
    io:format("  gen_server:call info: ~b of ~b nodes answer~n",
              [length(Nodes) - length(NoInfo), length(Nodes)]),
    D0 = detectors(Nodes),
    NoDetector = [N || N <- Nodes, not lists:keymember(N, 1, D0)],
    report("during convergence", D0),
    Flapped = settle(Nodes, Expected, SettleMs, Converged, D0),
    Failed = [{not_converged, Converged} || Converged =/= []] ++
        [{pang, Pang} || Pang =/= []] ++ [{no_info, NoInfo} || NoInfo =/= []] ++
        [{no_detector, NoDetector} || NoDetector =/= []] ++ Flapped,
    case Failed of
        [] -> halt(0);
        _ -> io:format("  FAILED: ~p~n", [Failed]), halt(1)
    end.

%% The nodes that have not converged by the deadline ([] when all have).
wait(Pending, Expected, Deadline) ->
    case [N || N <- Pending, not converged(N, Expected)] of
        [] -> [];
        Left ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> Left;
                false -> timer:sleep(200), wait(Left, Expected, Deadline)
            end
    end.

%% After convergence: SettleMs of watching. Any suspicion or failure raised meanwhile, or a node
%% that no longer lists every member as active, is a flap.
settle(_Nodes, _Expected, 0, _, _) -> [];
settle(_Nodes, _Expected, _SettleMs, [_ | _], _) -> [];
settle(Nodes, Expected, SettleMs, [], D0) ->
    timer:sleep(SettleMs),
    D1 = detectors(Nodes),
    Deltas = [{N, delta(A, B)} || {N, B} <- D0, {N1, A} <- D1, N =:= N1],
    Moved = [{N, maps:get(suspicions, D), maps:get(failures, D)}
             || {N, D} <- Deltas, maps:get(suspicions, D) + maps:get(failures, D) > 0],
    NotActive = [N || N <- Nodes, not converged(N, Expected)],
    report(io_lib:format("in the ~b ms after", [SettleMs]), Deltas),
    io:format("  after convergence: ~b of ~b nodes raised a suspicion or failure, "
              "~b no longer list ~b active~n",
              [length(Moved), length(Nodes), length(NotActive), Expected]),
    [{flapped, Moved} || Moved =/= []] ++
        [{not_active_after_settle, NotActive} || NotActive =/= []].

%% The counters' increase from B to A; gauges as A has them.
delta(A, B) -> maps:map(fun(K, V) when K =:= local_health; K =:= local_health_max;
                                       K =:= loop_lag_ms; K =:= loop_lag_max_ms -> V;
                           (K, V) -> V - maps:get(K, B, 0) end, A).

%% [{Node, DetectorMap}] of the nodes that answer.
detectors(Nodes) ->
    [{N, D} || N <- Nodes,
               #{detector := D} <- [catch gen_server:call({beamlet_cluster, N}, status, 5000)]].

report(When, Ds) ->
    Sum = fun(K) -> lists:sum([maps:get(K, D, 0) || {_, D} <- Ds]) end,
    Max = fun(K) -> lists:max([0 | [maps:get(K, D, 0) || {_, D} <- Ds]]) end,
    io:format("  detectors ~s: ~b suspicions, ~b failures, ~b cleared, ~b refuted, ~b late ticks; "
              "largest loop lag ~b ms, local health up to ~b~n",
              [When, Sum(suspicions), Sum(failures), Sum(cleared), Sum(refuted), Sum(late_ticks),
               Max(loop_lag_max_ms), Max(local_health_max)]).

converged(Node, Expected) ->
    case catch gen_server:call({beamlet_cluster, Node}, members, 3000) of
        L when is_list(L) -> length([x || #{kind := beamlet, state := active} <- L]) =:= Expected;
        _ -> false
    end.
