%% bl_scale - the checks of the scale suite (test/scale/run.sh), run from an observer erl node:
%% every node lists every other as an active beamlet member, and every node answers a ping and
%% a gen_server call, within a generous deadline (timing figures belong to `make bench`); then,
%% for SettleMs more (the CPU hogs of the runner still running), no node suspects or fails anyone:
%% the failure detectors' counters (status -> detector) do not move and every node still lists
%% every member as active. With the nodes' OS pids it also prints the CPU seconds they spent from
%% exec until they agreed, and what they sent meanwhile (their own counters): figures, not
%% checks (docs/cluster.md, "Under load").
-module(bl_scale).
-export([check/3, check/4, check/5, converge/4, cpu_seconds/1]).

-spec check([node()], pos_integer(), pos_integer()) -> no_return().
check(Nodes, Expected, DeadlineMs) -> check(Nodes, Expected, DeadlineMs, 0).

-spec check([node()], pos_integer(), pos_integer(), non_neg_integer()) -> no_return().
check(Nodes, Expected, DeadlineMs, SettleMs) -> check(Nodes, Expected, DeadlineMs, SettleMs, []).

%% OsPids: the nodes' OS pids, or {file, F}: the observer was started before the nodes, says so
%% by creating F.ready, and the runner writes "T0Ms Pid,Pid,..." to F once it has exec'd them
%% all (T0Ms: ms since the epoch just before the first exec). With pids, the CPU time (user +
%% system) the nodes have spent until every node agrees is printed beside the time to converge
%% (docs/cluster.md, "Under load"); with T0Ms that time is counted from the first exec.
-spec check([node()], pos_integer(), pos_integer(), non_neg_integer(),
            [pos_integer()] | {file, string()}) -> no_return().
check(Nodes, Expected, DeadlineMs, SettleMs, PidsOrFile) ->
    {T0, OsPids} = started(PidsOrFile),
    Deadline = T0 + DeadlineMs,
    Converged = wait(Nodes, Expected, Deadline),
    Tc = os:system_time(millisecond) - T0,
    Cpu = cpu_seconds(OsPids),
    From = case PidsOrFile of {file, _} -> "from the first exec"; _ -> "the observer waited" end,
    io:format("  converged: ~b of ~b nodes list ~b active members (~s: ~b ms)~n",
              [length(Nodes) - length(Converged), length(Nodes), Expected, From, Tc]),
    OsPids =/= [] andalso
        io:format("  CPU to converge: ~.2f s user+system over all ~b nodes (~.1f ms per node)~n",
                  [Cpu, length(OsPids), 1000 * Cpu / length(OsPids)]),
    traffic(Nodes),
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

%% {T0Ms, OsPids}: now and the pids given, or what the runner writes to File once it has started
%% the nodes (File.ready tells it this observer is up and watching).
started({file, File}) ->
    ok = file:write_file(File ++ ".ready", <<>>),
    Read = fun Read() ->
               case file:read_file(File) of
                   {ok, B} ->
                       [T0, Pids] = string:lexemes(string:trim(B), " "),
                       {binary_to_integer(T0),
                        [binary_to_integer(P) || P <- string:lexemes(Pids, ",")]};
                   _ -> timer:sleep(20), Read()
               end
           end,
    Read();
started(OsPids) -> {os:system_time(millisecond), OsPids}.

%% For make bench (test/bench/cluster_bench.sh): started as check/5 with {file, F}, prints
%% "Ms Cpu" when all Expected nodes list Expected active beamlet members (polled every 20 ms), or
%% "timeout(K left) Cpu" after TimeoutMs; Ms from the first exec, Cpu in seconds for all nodes.
-spec converge([node()], pos_integer(), string(), pos_integer()) -> no_return().
converge(Nodes, Expected, File, TimeoutMs) ->
    {T0, OsPids} = started({file, File}),
    Loop = fun Loop(Pending) ->
               case [N || N <- Pending, not converged(N, Expected)] of
                   [] ->
                       io:format("~b ~.2f", [os:system_time(millisecond) - T0,
                                             cpu_seconds(OsPids)]);
                   Left ->
                       case os:system_time(millisecond) - T0 > TimeoutMs of
                           true -> io:format("timeout(~b left) ~.2f",
                                             [length(Left), cpu_seconds(OsPids)]);
                           false -> timer:sleep(20), Loop(Left)
                       end
               end
           end,
    Loop(Nodes),
    halt(0).

%% The nodes that have not converged by the deadline ([] when all have).
wait(Pending, Expected, Deadline) ->
    case [N || N <- Pending, not converged(N, Expected)] of
        [] -> [];
        Left ->
            case os:system_time(millisecond) > Deadline of
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

%% What the nodes sent to converge, from their own counters (beamlet stats): messages, bytes,
%% connections made (accepted + connected: two per node pair when each side's handshake ends up
%% with one socket) and failed handshakes (lost simultaneous connects among them).
traffic(Nodes) ->
    S = [M || N <- Nodes, M <- [catch gen_server:call({beamlet, N}, stats, 5000)], is_map(M)],
    Sum = fun(K) -> lists:sum([maps:get(K, M, 0) || M <- S]) end,
    io:format("  traffic to converge (~b nodes' counters): ~b messages, ~.1f MB sent; ~b connections "
              "accepted, ~b made, ~b handshakes failed~n",
              [length(S), Sum(msgs_out), Sum(bytes_out) / 1.0e6, Sum(conns_accepted),
               Sum(conns_connected), Sum(handshakes_failed)]).

%% User + system CPU seconds of the given OS processes, all threads (/proc/PID/stat fields 14
%% and 15, in clock ticks of 1/100 s on Linux); a process that is gone counts 0.
-spec cpu_seconds([pos_integer()]) -> float().
cpu_seconds(OsPids) ->
    Ticks = fun(P) ->
                case file:read_file("/proc/" ++ integer_to_list(P) ++ "/stat") of
                    {ok, Bin} ->
                        %% the command name (field 2) is in parentheses and may hold spaces
                        [_, Rest] = string:split(Bin, ")", trailing),
                        F = string:lexemes(Rest, " "),
                        %% Rest starts at field 3 (state): utime is field 14, stime 15
                        binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F));
                    _ -> 0
                end
            end,
    lists:sum([Ticks(P) || P <- OsPids]) / 100.
