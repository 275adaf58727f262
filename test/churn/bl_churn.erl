%% bl_churn - the convergence-under-churn checker (test/churn/run.sh starts it in the hub
%% namespace; the nodes run in their own namespaces on one bridge).
%% For CHURN_SECONDS (default 60) random operations on the registry, pub/sub, global names
%% (beamlet mode) and pg (join/leave of two C processes per node in ten groups, through the
%% scope's join_local/leave_local calls, as OTP's pg:join/3 does) go to random nodes, while one fault at a time hits a random node: kill -9 and a
%% restart, SIGSTOP/SIGCONT, or a partition (its link down, then up). Then everything is healed
%% and the cluster left quiet. Checks, within a bound:
%%  1. every node's registry, subscription, global-name and pg tables are equal;
%%  2. they equal what the history implies: for each owner, the entries its current incarnation
%%     made and did not remove (an operation that timed out may have happened or not), and none
%%     of an earlier incarnation (killed);
%%  3. at-least-once: every publish acknowledged by a node that knew the durable subscription is
%%     delivered (lost = 0).
%% Prints the seed (CHURN_SEED replays a run). Writes "churn P F" to $BL_RESULTS via run.sh.
-module(bl_churn).
-export([main/1]).

-define(TMO, 2000).

main([CfgFile]) ->
    {ok, Cfg} = file:consult(CfgFile),
    Seed = proplists:get_value(seed, Cfg),
    Secs = proplists:get_value(seconds, Cfg),
    io:format("churn: seed ~b (CHURN_SEED=~b replays), ~b s of churn~n", [Seed, Seed, Secs]),
    rand:seed(exsss, {Seed, Seed bxor 16#5bd1e995, 7}),
    Nodes = proplists:get_value(nodes, Cfg), % [{Letter, Node, StartCmd, LinkDown, LinkUp}]
    ets:new(st, [named_table, public, set]),
    [begin ets:insert(st, {{inc, L}, 1}), ets:insert(st, {{fault, L}, none}),
           start_node(L, Cmd) end || {L, _, Cmd, _, _} <- Nodes],
    All = [N || {_, N, _, _, _} <- Nodes],
    ok = wait(fun() -> lists:all(fun(N) -> active(N) =:= length(All) end, All) end, 60000),
    io:format("churn: ~b nodes agree~n", [length(All)]),
    ets:insert(st, {hist, []}),
    ets:insert(st, {must, []}),
    [{AL, ANode, _, _, _} | _] = Nodes,
    Sub = spawn(fun() -> process_flag(trap_exit, true), alo_sub(ANode, AL, #{}, false) end),
    Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
    Self = self(),
    Faulter = spawn_link(fun() -> rand:seed(exsss, {Seed, 1, 2}), faults(Nodes, Deadline, 0), Self ! faults_done end),
    Ops = ops(Nodes, Deadline, 0, #{}),
    receive faults_done -> ok end,
    _ = Faulter,
    io:format("churn: ~b operations (~p)~n", [lists:sum(maps:values(Ops)), Ops]),
    %% heal: every node running, resumed and connected
    [heal(L, Cmd, Up) || {L, _, Cmd, _, Up} <- Nodes],
    T0 = erlang:monotonic_time(millisecond),
    Conv = wait(fun() -> lists:all(fun(N) -> active(N) =:= length(All) end, All)
                             andalso equal_views(All) end, 60000),
    Tc = erlang:monotonic_time(millisecond) - T0,
    R1 = case Conv of
             ok -> io:format("  ok: every node's tables are equal ~b ms after the churn ended~n", [Tc]), 1;
             _ -> io:format("  FAILED: tables not equal within 60 s~n", []), [dump(N) || N <- All], 0
         end,
    R2 = check_history(Nodes),
    Must = lists:usort(ets:lookup_element(st, must, 2)),
    _ = wait(fun() -> Must -- got(Sub) =:= [] end, 60000),
    Lost = Must -- got(Sub),
    R3 = case Lost of
             [] -> io:format("  ok: at-least-once: ~b acknowledged publishes, lost 0 (~b deliveries)~n",
                             [length(Must), length(got(Sub))]), 1;
             _ -> io:format("  FAILED: at-least-once lost ~b of ~b: ~w~n", [length(Lost), length(Must), Lost]), 0
         end,
    P = R1 + R2 + R3,
    io:format("churn: ~b passed, ~b failed (seed ~b)~n", [P, 3 - P, Seed]),
    file:write_file(proplists:get_value(result, Cfg), io_lib:format("churn ~b ~b~n", [P, 3 - P])),
    halt(0).

%% ---- nodes and faults ----

start_node(L, Cmd) ->
    Pid = string:trim(os:cmd(Cmd)),
    ets:insert(st, {{ospid, L}, Pid}).

ospid(L) -> ets:lookup_element(st, {ospid, L}, 2).
fault(L) -> ets:lookup_element(st, {fault, L}, 2).
inc(L) -> ets:lookup_element(st, {inc, L}, 2).

faults(Nodes, Deadline, K) ->
    timer:sleep(1000 + rand:uniform(2000)),
    case erlang:monotonic_time(millisecond) + 1000 > Deadline of
        true -> io:format("churn: ~b faults~n", [K]);
        false ->
            {L, Node, Cmd, Down, Up} = lists:nth(rand:uniform(length(Nodes)), Nodes),
            case rand:uniform(3) of
                1 -> ets:insert(st, {{fault, L}, dead}),
                     os:cmd("kill -9 " ++ ospid(L)),
                     ets:update_counter(st, {inc, L}, 1),
                     timer:sleep(1500 + rand:uniform(1500)),
                     start_node(L, Cmd),
                     wait_up(Node, 15000),
                     ets:insert(st, {{fault, L}, none});
                2 -> ets:insert(st, {{fault, L}, stopped}),
                     os:cmd("kill -STOP " ++ ospid(L)),
                     timer:sleep(1500 + rand:uniform(2500)),
                     os:cmd("kill -CONT " ++ ospid(L)),
                     ets:insert(st, {{fault, L}, none});
                3 -> ets:insert(st, {{fault, L}, cut}),
                     os:cmd(Down),
                     timer:sleep(1500 + rand:uniform(2500)),
                     os:cmd(Up),
                     ets:insert(st, {{fault, L}, none})
            end,
            faults(Nodes, Deadline, K + 1)
    end.

heal(L, Cmd, Up) ->
    os:cmd(Up),
    os:cmd("kill -CONT " ++ ospid(L)),
    case os:cmd("kill -0 " ++ ospid(L) ++ " 2>&1") of
        "" -> ok;
        _ -> start_node(L, Cmd), ets:update_counter(st, {inc, L}, 1)
    end.

wait_up(Node, Ms) -> wait(fun() -> net_adm:ping(Node) =:= pong end, Ms).

%% ---- operations ----

call(Node, Name, Req) ->
    try gen_server:call({Name, Node}, Req, ?TMO)
    catch exit:_ -> timeout
    end.

record(E) -> ets:insert(st, {hist, [E | ets:lookup_element(st, hist, 2)]}).

uniq() -> erlang:unique_integer([positive]).

ops(Nodes, Deadline, _, Count) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true -> Count;
        false ->
            timer:sleep(15 + rand:uniform(30)),
            {L, Node, _, _, _} = lists:nth(rand:uniform(length(Nodes)), Nodes),
            Kind = lists:nth(rand:uniform(9), [reg_add, reg_del, ps_add, ps_del, gl_add, gl_del,
                                               publish, pg_join, pg_leave]),
            Healthy = fault(L) =:= none,
            Done = Healthy andalso op(Kind, L, Node),
            ops(Nodes, Deadline, 0, case Done of true -> maps:update_with(Kind, fun(V) -> V + 1 end, 1, Count);
                                                _ -> Count end)
    end.

%% History entries: {Service, Letter, Incarnation, Key, present | absent | maybe}
live(Svc, L) ->
    I = inc(L),
    [K || {S, L1, I1, K, present} <- lists:reverse(ets:lookup_element(st, hist, 2)),
          S =:= Svc, L1 =:= L, I1 =:= I, not removed(Svc, L, I, K)].

removed(Svc, L, I, K) ->
    lists:any(fun({S, L1, I1, K1, St}) -> S =:= Svc andalso L1 =:= L andalso I1 =:= I andalso K1 =:= K
                                              andalso St =/= present end,
              ets:lookup_element(st, hist, 2)).

outcome(Ok, Reply) -> case Reply of Ok -> definite; timeout -> maybe; _ -> failed end.

op(reg_add, L, Node) ->
    I = inc(L),
    case call(Node, beamlet_registry, {register, #{name => <<"churn">>, tags => [integer_to_binary(uniq())]}}) of
        {ok, Id} -> record({reg, L, I, Id, present});
        timeout -> ok;   % an id we never learnt: whether it exists is checked against the owner
        _ -> ok
    end, true;
op(reg_del, L, Node) ->
    case live(reg, L) of
        [] -> false;
        Ids -> Id = lists:nth(rand:uniform(length(Ids)), Ids), I = inc(L),
               R = call(Node, beamlet_registry, {deregister, Id}),
               record({reg, L, I, Id, case outcome(ok, R) of definite -> absent; _ -> maybe end}), true
    end;
op(ps_add, L, Node) ->
    I = inc(L),
    Topic = iolist_to_binary(["ch.", integer_to_list(uniq())]),
    case call(Node, beamlet, {whereis, beamlet}) of
        Pid when is_pid(Pid) ->
            case call(Node, beamlet_pubsub, {subscribe, Topic, Pid, #{}}) of
                {ok, Id} -> record({ps, L, I, {Topic, Id}, present});
                timeout -> record({ps, L, I, {Topic, unknown}, maybe});
                _ -> ok
            end, true;
        _ -> false
    end;
op(ps_del, L, Node) ->
    case live(ps, L) of
        [] -> false;
        Ks -> {_, Id} = K = lists:nth(rand:uniform(length(Ks)), Ks), I = inc(L),
              R = call(Node, beamlet_pubsub, {unsubscribe, Id}),
              record({ps, L, I, K, case outcome(ok, R) of definite -> absent; _ -> maybe end}), true
    end;
op(gl_add, L, Node) ->
    I = inc(L),
    Name = list_to_atom("churn_" ++ integer_to_list(uniq())),
    case call(Node, beamlet, {whereis, beamlet}) of
        Pid when is_pid(Pid) ->
            case call(Node, beamlet_global, {register, Name, Pid}) of
                yes -> record({gl, L, I, Name, present});
                timeout -> record({gl, L, I, Name, maybe});
                _ -> ok
            end, true;
        _ -> false
    end;
op(gl_del, L, Node) ->
    case live(gl, L) of
        [] -> false;
        Ns -> Name = lists:nth(rand:uniform(length(Ns)), Ns), I = inc(L),
              R = call(Node, beamlet_global, {unregister, Name}),
              record({gl, L, I, Name, case outcome(ok, R) of definite -> absent; _ -> maybe end}), true
    end;
op(publish, _L, Node) ->
    %% only through a node that holds the durable subscription: then the publish is durable
    Knows = case call(Node, beamlet_pubsub, subscriptions) of
                Subs when is_list(Subs) -> lists:any(fun(#{pattern := P}) -> P =:= <<"alo.t">> end, Subs);
                _ -> false
            end,
    case Knows of
        false -> false;
        true ->
            K = uniq(),
            case call(Node, beamlet_pubsub, {publish, <<"alo.t">>, {alo, K}, #{qos => at_least_once}}) of
                {ok, _} -> ets:insert(st, {must, [K | ets:lookup_element(st, must, 2)]});
                _ -> ok
            end, true
    end;
op(pg_join, L, Node) -> pg_op(L, Node, join_local);
op(pg_leave, L, Node) -> pg_op(L, Node, leave_local).

%% pg: key {Group, Proc} (Proc one of ?PG_PROCS of the node), joined at most once: a join goes to a
%% key whose last record is none or absent, a leave to one that is present or maybe.
-define(PG_GROUPS, [{churn_g, K} || K <- lists:seq(1, 10)]).
-define(PG_PROCS, [beamlet, beamlet_registry]).

pg_last(L, I, K) ->
    case [St || {pg, L1, I1, K1, St} <- ets:lookup_element(st, hist, 2), L1 =:= L, I1 =:= I, K1 =:= K] of
        [St | _] -> St;
        [] -> none
    end.

pg_op(L, Node, Req) ->
    I = inc(L),
    Want = case Req of join_local -> [none, absent]; leave_local -> [present, maybe] end,
    case [K || G <- ?PG_GROUPS, W <- ?PG_PROCS, K <- [{G, W}], lists:member(pg_last(L, I, K), Want)] of
        [] -> false;
        Ks ->
            {G, W} = K = lists:nth(rand:uniform(length(Ks)), Ks),
            case call(Node, beamlet, {whereis, W}) of
                Pid when is_pid(Pid) ->
                    case {Req, call(Node, pg, {Req, G, Pid})} of
                        {join_local, ok} -> record({pg, L, I, K, present});
                        {leave_local, ok} -> record({pg, L, I, K, absent});
                        {leave_local, not_joined} -> record({pg, L, I, K, absent});
                        {_, timeout} -> record({pg, L, I, K, maybe});
                        _ -> ok
                    end, true;
                _ -> false
            end
    end.

%% The durable subscriber on node a: (re)subscribes whenever its link to a's pub/sub breaks, acks
%% every delivery, remembers what it got.
alo_sub(Node, L, Got, Subscribed) ->
    S2 = case Subscribed of
             true -> true;
             false -> case fault(L) =:= none andalso
                         call(Node, beamlet_pubsub, {subscribe, <<"alo.t">>, self(),
                                                     #{qos => at_least_once, name => <<"churn">>}}) of
                          {ok, _} -> true;
                          _ -> false
                      end
         end,
    receive
        {beamlet_msg, _, {alo, K}, #{id := Id, sub := SubId}} ->
            gen_server:cast({beamlet_pubsub, Node}, {ack, SubId, Id}),
            alo_sub(Node, L, Got#{K => true}, S2);
        {'EXIT', _, _} -> alo_sub(Node, L, Got, false);
        {got, From} -> From ! {got, maps:keys(Got)}, alo_sub(Node, L, Got, S2);
        _ -> alo_sub(Node, L, Got, S2)
    after 300 -> alo_sub(Node, L, Got, S2)
    end.

got(Sub) ->
    Sub ! {got, self()},
    receive {got, Ks} -> Ks after 5000 -> [] end.

%% ---- views and checks ----

active(N) ->
    case catch gen_server:call({beamlet_cluster, N}, members, 3000) of
        L when is_list(L) -> length([x || #{kind := beamlet, state := active} <- L]);
        _ -> 0
    end.

view(N) ->
    Reg = call(N, beamlet_registry, {find, #{}}),
    Ps = call(N, beamlet_pubsub, subscriptions),
    Gl = call(N, beamlet_global, table),
    Pg = [{G, call(N, pg, {get_members, G})} || G <- ?PG_GROUPS],
    case is_list(Reg) andalso is_list(Ps) andalso is_list(Gl) andalso
         lists:all(fun({_, M}) -> is_list(M) end, Pg) of
        false -> error;
        true ->
            {lists:sort([{maps:get(node, E), maps:get(id, E)} || E <- Reg]),
             lists:sort([{O, P} || #{node := O, pattern := P} <- Ps, P =/= <<"alo.t">>]),
             lists:sort([{Name, O} || {Name, _, O, beamlet} <- Gl]),
             lists:sort([{G, P} || {G, M} <- Pg, P <- M])}
    end.

equal_views(All) ->
    Vs = [view(N) || N <- All],
    not lists:member(error, Vs) andalso length(lists:usort(Vs)) =:= 1.

dump(N) -> io:format("    ~p: ~p~n", [N, view(N)]).

%% The tables against the history: per owner, what it holds equals its current incarnation's
%% definite entries plus any subset of its maybe ones, and nothing of earlier incarnations.
check_history(Nodes) ->
    [{_, First, _, _, _} | _] = Nodes,
    case view(First) of
        error -> io:format("  FAILED: no view from ~p~n", [First]), 0;
        {Reg, Ps, Gl, Pg} ->
            H = ets:lookup_element(st, hist, 2),
            Bad = lists:append(
                    [check_owner(L, Node, H, Reg, Ps, Gl) ++ check_pg(L, Node, H, Pg)
                     || {L, Node, _, _, _} <- Nodes]),
            case Bad of
                [] -> io:format("  ok: the tables equal what the history implies (~b history records, "
                                "~b pg members)~n", [length(H), length(Pg)]), 1;
                _ -> io:format("  FAILED: tables differ from the history: ~p~n", [Bad]), 0
            end
    end.

check_owner(L, Node, H, Reg, Ps, Gl) ->
    I = inc(L),
    Last = fun(Svc, K) -> % the last record of key K in incarnation I
                   case [St || {S, L1, I1, K1, St} <- H, S =:= Svc, L1 =:= L, I1 =:= I, K1 =:= K] of
                       [St | _] -> St;
                       [] -> none
                   end end,
    Keys = fun(Svc) -> lists:usort([K || {S, L1, I1, K, _} <- H, S =:= Svc, L1 =:= L, I1 =:= I]) end,
    Old = fun(Svc) -> lists:usort([K || {S, L1, I1, K, _} <- H, S =:= Svc, L1 =:= L, I1 < I]) end,
    RegHeld = [Id || {O, Id} <- Reg, O =:= Node],
    PsHeld = [T || {O, T} <- Ps, O =:= Node],
    GlHeld = [Nm || {Nm, O} <- Gl, O =:= Node],
    Must = fun(Svc, Held, Proj) ->
                   [{missing, Svc, Node, K} || K <- Keys(Svc), Last(Svc, K) =:= present,
                                               not lists:member(Proj(K), Held)] ++
                   [{not_removed, Svc, Node, K} || K <- Keys(Svc), Last(Svc, K) =:= absent,
                                                   lists:member(Proj(K), Held)] end,
    Id = fun(K) -> K end,
    Topic = fun({T, _}) -> T end,
    Known = fun(Svc, Proj) -> [Proj(K) || K <- Keys(Svc)] end,
    %% an entry held that this incarnation never made (a registry id from an operation that timed
    %% out is unknown to us: such entries are allowed only when one of them timed out)
    Stray = [{stray, gl, Node, N} || N <- GlHeld, not lists:member(N, Known(gl, Id))] ++
            [{stray, ps, Node, T} || T <- PsHeld, not lists:member(T, Known(ps, Topic))],
    OldHeld = [{old_incarnation, gl, Node, N} || N <- Old(gl), lists:member(N, GlHeld)] ++
              [{old_incarnation, ps, Node, T} || {T, _} <- Old(ps), lists:member(T, PsHeld)] ++
              [{old_incarnation, reg, Node, R} || R <- Old(reg), lists:member(R, RegHeld)],
    Must(reg, RegHeld, Id) ++ Must(ps, PsHeld, Topic) ++ Must(gl, GlHeld, Id) ++ Stray ++ OldHeld.

%% pg: the members of Node in the view are exactly its current processes' present keys (plus any
%% of its maybe ones), each once; none of an earlier incarnation's processes.
check_pg(L, Node, H, Pg) ->
    I = inc(L),
    Procs = [{W, call(Node, beamlet, {whereis, W})} || W <- ?PG_PROCS],
    Held = [{G, P} || {G, P} <- Pg, node(P) =:= Node],
    HeldKeys = [{G, W} || {G, P} <- Held, {W, P1} <- Procs, P1 =:= P],
    Last = fun(K) -> case [St || {pg, L1, I1, K1, St} <- H, L1 =:= L, I1 =:= I, K1 =:= K] of
                         [St | _] -> St;
                         [] -> none
                     end end,
    Keys = [{G, W} || G <- ?PG_GROUPS, W <- ?PG_PROCS],
    [{missing, pg, Node, K} || K <- Keys, Last(K) =:= present, not lists:member(K, HeldKeys)] ++
    [{not_removed, pg, Node, K} || K <- Keys, lists:member(Last(K), [none, absent]),
                                   lists:member(K, HeldKeys)] ++
    [{duplicate, pg, Node, K} || K <- lists:usort(HeldKeys), length([x || K1 <- HeldKeys, K1 =:= K]) > 1] ++
    [{old_incarnation, pg, Node, GP} || {_, P} = GP <- Held, not lists:keymember(P, 2, Procs)].

wait(F, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    wait_loop(F, Deadline).
wait_loop(F, Deadline) ->
    case catch F() of
        true -> ok;
        _ -> case erlang:monotonic_time(millisecond) > Deadline of
                 true -> timeout;
                 false -> timer:sleep(250), wait_loop(F, Deadline)
             end
    end.
