%% bl_repl_bench - replication figures for `make bench` (test/bench/repl_bench.sh starts the
%% nodes): in an idle N-node C-only cluster with E entries per node per service (registry
%% entries, pub/sub subscriptions, global names, pg memberships of the node's `beamlet` process
%% in E groups of the default scope), the bytes each node sends per second once the tables have
%% converged; then the time for one new entry of each service, made on the first node, to be
%% visible on all N nodes. Prints one line: Label BytesPerSecPerNode RegMs PsMs GlMs Converged
%% PgMs (-1 ms: not visible everywhere within 30 s; -2: the tree has no pg join_local request).
-module(bl_repl_bench).
-export([main/1]).

main([Label, NS, ES, Prefix]) ->
    N = list_to_integer(NS), E = list_to_integer(ES),
    [_, Host] = string:split(atom_to_list(node()), "@"),
    Nodes = [list_to_atom(lists:flatten(io_lib:format("~s~b@~s", [Prefix, I, Host])))
             || I <- lists:seq(1, N)],
    ok = wait(fun() -> lists:all(fun(Nd) -> active(Nd) =:= N end, Nodes) end, 120000),
    [populate(Nd, I, E) || {I, Nd} <- lists:zip(lists:seq(1, N), Nodes)],
    %% the tree before issue 9 never converges (its syncs keep one entry per owner): measure anyway
    Conv = case wait(fun() -> lists:all(fun(Nd) -> converged(Nd, N * E) end, Nodes) end, 90000) of
               ok -> converged;
               timeout -> not_converged
           end,
    timer:sleep(12000), % the membership-triggered exchanges and a few repair rounds are over
    B1 = [bytes_out(Nd) || Nd <- Nodes],
    W = 20,
    timer:sleep(W * 1000),
    B2 = [bytes_out(Nd) || Nd <- Nodes],
    Rate = lists:sum([X2 - X1 || {X1, X2} <- lists:zip(B1, B2)]) / (N * W),
    [First | _] = Nodes,
    Reg = propagate(Nodes, fun() -> {ok, _} = reg(First, {register, #{name => <<"bench_new">>}}) end,
                    fun(Nd) -> reg(Nd, {find, #{name => <<"bench_new">>}}) =/= [] end),
    Ps = propagate(Nodes, fun() -> {ok, _} = ps(First, {subscribe, <<"bench.new">>, local_pid(First), #{}}) end,
                   fun(Nd) -> lists:any(fun(#{pattern := P}) -> P =:= <<"bench.new">> end,
                                        ps(Nd, subscriptions)) end),
    Gl = propagate(Nodes, fun() -> yes = glob(First, {register, bench_new, local_pid(First)}) end,
                   fun(Nd) -> is_pid(glob(Nd, {whereis, bench_new})) end),
    Pg = case has_pg_join(First) of
             false -> -2;
             true -> propagate(Nodes, fun() -> ok = pg(First, {join_local, bench_new, local_pid(First)}) end,
                               fun(Nd) -> pg(Nd, {get_members, bench_new}) =/= [] end)
         end,
    io:format("~s ~.1f ~b ~b ~b ~s ~b~n", [Label, Rate, Reg, Ps, Gl, Conv, Pg]),
    halt(0).

call(Nd, Name, Req) -> gen_server:call({Name, Nd}, Req, 20000).
reg(Nd, Req) -> call(Nd, beamlet_registry, Req).
ps(Nd, Req) -> call(Nd, beamlet_pubsub, Req).
glob(Nd, Req) -> call(Nd, beamlet_global, Req).
pg(Nd, Req) -> call(Nd, pg, Req).
%% the tree before issue 9 answers join_local with {error, unknown_request}
has_pg_join(Nd) -> pg(Nd, {leave_local, bench_probe, local_pid(Nd)}) =:= not_joined.
local_pid(Nd) -> call(Nd, beamlet, {whereis, beamlet}).

active(Nd) ->
    case catch gen_server:call({beamlet_cluster, Nd}, members, 5000) of
        L when is_list(L) -> length([x || #{kind := beamlet, state := active} <- L]);
        _ -> 0
    end.

populate(_, _, 0) -> ok;
populate(Nd, I, E) ->
    Pid = local_pid(Nd),
    [begin
         {ok, _} = reg(Nd, {register, #{name => iolist_to_binary(io_lib:format("svc~b", [K])),
                                        tags => [<<"bench">>]}}),
         {ok, _} = ps(Nd, {subscribe, iolist_to_binary(io_lib:format("b.~b.~b", [I, K])), Pid, #{}}),
         yes = glob(Nd, {register, list_to_atom(lists:flatten(io_lib:format("b_~b_~b", [I, K]))), Pid})
     end || K <- lists:seq(1, E)],
    HasPg = has_pg_join(Nd),
    [ok = pg(Nd, {join_local, {bench, I, K}, Pid}) || HasPg, K <- lists:seq(1, E)],
    ok.

converged(Nd, Total) ->
    length(reg(Nd, {find, #{}})) >= Total andalso length(ps(Nd, subscriptions)) >= Total
        andalso length(glob(Nd, registered)) >= Total
        andalso (not has_pg_join(Nd) orelse length(pg(Nd, which_groups)) >= Total).

bytes_out(Nd) -> maps:get(bytes_out, call(Nd, beamlet, stats)).

%% ms from Make() until Seen(Node) holds on every node (each polled by its own process)
propagate(Nodes, Make, Seen) ->
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    Make(),
    [spawn_link(fun() -> poll(Nd, Seen), Self ! {seen, Nd, erlang:monotonic_time(millisecond)} end)
     || Nd <- Nodes],
    Ts = [receive {seen, Nd, T} -> T after 30000 -> T0 - 1 end || Nd <- Nodes],
    case lists:member(T0 - 1, Ts) of
        true -> -1; % not seen everywhere within 30 s
        false -> lists:max(Ts) - T0
    end.

poll(Nd, Seen) ->
    case catch Seen(Nd) of
        true -> ok;
        _ -> timer:sleep(5), poll(Nd, Seen)
    end.

wait(F, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    wait_loop(F, Deadline).
wait_loop(F, Deadline) ->
    case catch F() of
        true -> ok;
        _ -> case erlang:monotonic_time(millisecond) > Deadline of
                 true -> timeout;
                 false -> timer:sleep(200), wait_loop(F, Deadline)
             end
    end.
