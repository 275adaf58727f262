%% bl_scale - the checks of the scale suite (test/scale/run.sh), run from an observer erl node:
%% every node lists every other as an active beamlet member, and every node answers a ping and
%% a gen_server call, within a generous deadline (timing figures belong to `make bench`).
-module(bl_scale).
-export([check/3]).

-spec check([node()], pos_integer(), pos_integer()) -> no_return().
check(Nodes, Expected, DeadlineMs) ->
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
    Failed = [{not_converged, Converged} || Converged =/= []] ++
        [{pang, Pang} || Pang =/= []] ++ [{no_info, NoInfo} || NoInfo =/= []],
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

converged(Node, Expected) ->
    case catch gen_server:call({beamlet_cluster, Node}, members, 3000) of
        L when is_list(L) -> length([x || #{kind := beamlet, state := active} <- L]) =:= Expected;
        _ -> false
    end.
