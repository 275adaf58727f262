%% bl_election_tests - leader election when a coordinator is frozen (SIGSTOP) long enough to be
%% declared failed and then resumed (SIGCONT): the case docs/cluster.md promises ("a node
%% rejoining ... does not depose a healthy leader"; "after a heal exactly one leader remains").
%% Real beamlet nodes on loopback, observed through gen_server:call to beamlet_cluster.
-module(bl_election_tests).
-include_lib("eunit/include/eunit.hrl").

%% a generous election timeout: on a loaded machine a short lease can lapse by itself, and this
%% test must only fail when the resumed node is the cause
fast() -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
           "--election-timeout-ms", "2000"].

start(Tag, Cluster, Join) ->
    bl_test_util:start_beamlet(Tag, bl_test_util:member_args("coordinator", Cluster, Join) ++ fast()).

status(N) -> gen_server:call({beamlet_cluster, N}, status, 3000).
leader(N) -> maps:get(leader, status(N)).
term(N) -> maps:get(term, status(N)).
members(N) -> gen_server:call({beamlet_cluster, N}, members, 3000).
state_of(N, Of) -> hd([maps:get(state, M) || M <- members(N), maps:get(node, M) =:= Of] ++ [none]).
events(N) -> gen_server:call({beamlet_cluster, N}, events, 5000).

wait(F, Ms) -> bl_test_util:wait_until(F, Ms).

signal(Node, Sig) ->
    Pid = bl_test_util:os_pid(Node),
    [] = os:cmd(io_lib:format("kill -~s ~b", [Sig, Pid])).

%% the nodes agree on one leader (not undefined); returns it
agreed(Nodes) ->
    Ls = [catch leader(N) || N <- Nodes],
    case lists:usort(Ls) of
        [L] when is_atom(L), L =/= undefined -> {ok, L};
        _ -> false
    end.

three(C) ->
    A = start("ea", C, []),
    B = start("eb", C, [A]),
    D = start("ec", C, [A]),
    All = [A, B, D],
    ?assert(wait(fun() -> agreed(All) =/= false end, 30000)),
    {ok, L} = agreed(All),
    All1 = All,
    {All1, L}.

%% {Term, Leader} claims in the event logs of Nodes: at most one leader per term
one_leader_per_term(Nodes) ->
    Claims = lists:usort([{T, L} || N <- Nodes,
                                    #{event := leader_changed, leader := L, term := T} <- events(N),
                                    L =/= undefined]),
    Terms = [T || {T, _} <- Claims],
    ?assertEqual(lists:usort(Terms), Terms).

%% A follower frozen past failure detection, then resumed, rejoins as a follower: the leader and
%% its term are unchanged on every node.
resumed_follower_test_() ->
    {timeout, 120, fun resumed_follower/0}.

resumed_follower() ->
    C = "sf" ++ bl_test_util:unique(""),
    {All, L} = three(C),
    %% a stable leader first: the term no longer moves
    T0 = term(L),
    [F | _] = All -- [L],
    Other = hd(All -- [L, F]),
    signal(F, "STOP"),
    %% declared failed by both others
    ?assert(wait(fun() -> state_of(L, F) =:= failed andalso state_of(Other, F) =:= failed end,
                 30000)),
    %% and frozen past net_ticktime, so its connections are dropped (as after a long pause)
    frozen_past_ticktime(F),
    %% the leader kept its term meanwhile (else the test measures load, not the bug)
    ?assertEqual({L, T0}, {leader(L), term(L)}),
    signal(F, "CONT"),
    %% F is active again everywhere and names the same leader, in the same term
    ?assert(wait(fun() -> state_of(L, F) =:= active andalso state_of(Other, F) =:= active
                          andalso leader(F) =:= L end, 30000)),
    %% give the resumed node several election timeouts to do harm
    timer:sleep(5000),
    [?assertEqual({N, L, T0}, {N, leader(N), term(N)}) || N <- All],
    one_leader_per_term(All),
    ok.

%% The leader frozen: the others elect a new leader; the old one, resumed, steps down and
%% follows the new one. Never two nodes claiming leadership at the same sample.
resumed_leader_test_() ->
    {timeout, 120, fun resumed_leader/0}.

resumed_leader() ->
    C = "sl" ++ bl_test_util:unique(""),
    {All, L} = three(C),
    Rest = All -- [L],
    signal(L, "STOP"),
    ?assert(wait(fun() -> case agreed(Rest) of {ok, L2} -> L2 =/= L; _ -> false end end, 30000)),
    frozen_past_ticktime(L),
    {ok, L2} = agreed(Rest),
    T2 = term(L2),
    signal(L, "CONT"),
    %% sample every node's own claim right after the resume: never two self-declared leaders
    Claims = sample_claims(All, 40, []),
    [?assert(length(S) =< 1) || S <- Claims],
    ?assert(wait(fun() -> agreed(All) =:= {ok, L2} end, 30000)),
    ?assert(term(L) >= T2),
    ?assertNotEqual(L, leader(L)),
    one_leader_per_term(All),
    ok.

%% The runner (same net_ticktime as the nodes) lost its connection to the frozen node; then one
%% more second, so the nodes' own tick timers have fired too.
frozen_past_ticktime(N) ->
    ?assert(wait(fun() -> not lists:member(N, nodes(connected)) end, 30000)),
    timer:sleep(1000).

%% Nodes that name themselves leader, sampled Count times 50 ms apart (a frozen-then-resumed
%% node answers late or not at all at first: it counts only when it answers).
sample_claims(_All, 0, Acc) -> Acc;
sample_claims(All, Count, Acc) ->
    S = [N || N <- All, (catch leader(N)) =:= N],
    timer:sleep(50),
    sample_claims(All, Count - 1, [S | Acc]).
