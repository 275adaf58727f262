%% bl_global_tests - global names (`beamlet_global`, include/beamlet/global.h) against real
%% beamlet nodes (global_node, ASan build) on loopback.
%% Mixed: a C name seen by the runner and a `peer` BEAM node through global:whereis_name/send,
%% removed when the C process ends and when the C node is killed; BEAM names looked up and sent to
%% from C. C-only (mode beamlet): unique names across 3 nodes, a failed node's names disappear, and
%% a clash after a partition heals, resolved by each method. The partition is simulated on
%% loopback by suspending one node (SIGSTOP) until the others mark it failed, registering the same
%% name on the majority side, then resuming it (SIGCONT).
-module(bl_global_tests).
-include_lib("eunit/include/eunit.hrl").

-define(WAIT, 15000).

ctl(W, Req) -> gen_server:call({ctl, W}, Req, 10000).
glob(W, Req) -> gen_server:call({beamlet_global, W}, Req, 10000).

until(F) -> ?assert(bl_test_util:wait_until(F, ?WAIT)).

fast() -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
           "--election-timeout-ms", "600"].

start(Tag, Cluster, Join, Extra) ->
    JoinArgs = case Join of [] -> []; _ -> ["--join", atom_to_list(Join)] end,
    bl_test_util:start_worker(Tag, ["--cluster", Cluster, "--epmd-local", "false"
                                    | JoinArgs ++ fast() ++ Extra]).

members(N) -> gen_server:call({beamlet_cluster, N}, members, 5000).

agree(Nodes) -> ?assert(bl_test_util:agree(Nodes, ?WAIT)).

state_of(N, Of) ->
    case [maps:get(state, M) || M <- members(N), maps:get(node, M) =:= Of] of
        [S] -> S;
        [] -> none
    end.

sees_beam(W) ->
    lists:any(fun(M) -> maps:get(kind, M) =:= beam andalso maps:get(state, M) =:= active end,
              members(W)).

name(Tag) -> list_to_atom(bl_test_util:unique(Tag)).

os_signal(Node, Sig) ->
    os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(bl_test_util:os_pid(Node))).

%% ---- mixed cluster: runner + peer (BEAM) and one C node ----

mixed_test_() ->
    {timeout, 120, fun mixed/0}.

mixed() ->
    {Peer, PeerNode} = bl_test_util:start_peer("gpeer"),
    pong = peer:call(Peer, net_adm, ping, [node()]),
    ok = global:sync(),
    C = bl_test_util:unique("gm"),
    %% no discovery: the runner connects (ctl calls); the peer only through global's connect step
    W = start("gw", C, [], ["--global-mode", "beam"]),
    until(fun() -> sees_beam(W) end),
    ?assertNot(lists:member(W, peer:call(Peer, erlang, nodes, [hidden]))),
    N1 = name("cname"),
    {ok, C1} = ctl(W, {spawn, N1}),
    ?assertEqual(W, node(C1)),
    %% the C node connected to the peer itself; both BEAM nodes resolve and send to the name
    ?assert(lists:member(W, peer:call(Peer, erlang, nodes, [hidden]))),
    until(fun() -> global:whereis_name(N1) =:= C1 end),
    until(fun() -> peer:call(Peer, global, whereis_name, [N1]) =:= C1 end),
    C1 = global:send(N1, {hello, runner}),
    C1 = peer:call(Peer, global, send, [N1, {hello, peer}]),
    until(fun() -> length(get_msgs(W, C1)) >= 2 end),
    ?assertEqual([{hello, peer}, {hello, runner}], lists:sort(erase({msgs, C1}))),
    ?assert(lists:member(N1, peer:call(Peer, global, registered_names, []))),
    %% beamlet_global from BEAM
    ?assertEqual(C1, glob(W, {whereis, N1})),
    ?assert(lists:member(N1, glob(W, registered))),
    ?assertMatch([{N1, C1, W, beam}], [T || T = {X, _, _, _} <- glob(W, table), X =:= N1]),
    %% registered and table list the same names (one encoder)
    ?assertEqual(lists:sort(glob(W, registered)), lists:sort([X || {X, _, _, _} <- glob(W, table)])),
    %% a name taken in BEAM global: no
    N2 = name("beamname"),
    yes = global:register_name(N2, self()),
    ?assertEqual(no, ctl(W, {spawn, N2})),
    %% C looks up and sends to a BEAM global name
    Me = self(),
    ?assertEqual(Me, ctl(W, {whereis, N2})),
    ?assertEqual({ok, Me}, ctl(W, {send, N2, {from_c, 1}})),
    ?assertMatch({ok, _}, bl_test_util:recv(fun(M) -> M =:= {from_c, 1} end, 5000)),
    ?assertEqual(undefined, ctl(W, {whereis, name("nobody")})),
    ?assertMatch({error, _}, ctl(W, {send, name("nobody"), x})),
    ?assertEqual(Me, glob(W, {send, N2, {from_glob, 2}})),
    ?assertMatch({ok, _}, bl_test_util:recv(fun(M) -> M =:= {from_glob, 2} end, 5000)),
    Nobody = name("nobody"),
    ?assertEqual({badarg, {Nobody, x}}, glob(W, {send, Nobody, x})),
    ?assertEqual(undefined, glob(W, {whereis, Nobody})),
    global:unregister_name(N2),
    %% bad requests
    ?assertEqual({error, badarg}, glob(W, {register, "x", self()})),
    ?assertEqual({error, badarg}, glob(W, {register, N2, self()})), % not a local C pid
    ?assertEqual({error, badarg}, glob(W, {whereis, 1})),
    ?assertEqual({error, badarg}, glob(W, nonsense)),
    ?assertEqual({error, badarg}, glob(W, {set_resolve, bogus})),
    ?assertEqual({error, badarg}, glob(W, {set_mode, bogus})),
    ?assertEqual({error, badarg}, glob(W, {set_mode, 1})),
    %% both settings change through the one handler, each its own field; then back
    {Mode0, Resolve0} = glob(W, config),
    ok = glob(W, {set_resolve, notify_all_name}),
    ?assertEqual({Mode0, notify_all_name}, glob(W, config)),
    ok = glob(W, {set_mode, beamlet}),
    ?assertEqual({beamlet, notify_all_name}, glob(W, config)),
    ?assertEqual({error, badarg}, glob(W, {set_mode, random_exit_name})),
    ?assertEqual({beamlet, notify_all_name}, glob(W, config)),
    ok = glob(W, {set_mode, Mode0}),
    ok = glob(W, {set_resolve, Resolve0}),
    ?assertEqual({Mode0, Resolve0}, glob(W, config)),
    %% the C process ends: the name goes at once, on both BEAM nodes
    ok = ctl(W, {exit, C1}),
    until(fun() -> global:whereis_name(N1) =:= undefined end),
    until(fun() -> peer:call(Peer, global, whereis_name, [N1]) =:= undefined end),
    %% unregister from C
    N3 = name("cname3"),
    {ok, C3} = ctl(W, {spawn, N3}),
    until(fun() -> peer:call(Peer, global, whereis_name, [N3]) =:= C3 end),
    ok = ctl(W, {unregister, C3, N3}),
    until(fun() -> global:whereis_name(N3) =:= undefined end),
    %% a name registered through gen_server from BEAM (a C pid of that node)
    N4 = name("cname4"),
    {ok, C4} = ctl(W, {spawn, N4}),
    ok = glob(W, {unregister, N4}),
    until(fun() -> global:whereis_name(N4) =:= undefined end),
    ?assertEqual(yes, glob(W, {register, N4, C4})),
    until(fun() -> peer:call(Peer, global, whereis_name, [N4]) =:= C4 end),
    %% an exit signal from BEAM (what global's random_exit_name does to a loser) kills the C
    %% process: the name goes
    N6 = name("cname6"),
    {ok, C6} = ctl(W, {spawn, N6}),
    until(fun() -> peer:call(Peer, global, whereis_name, [N6]) =:= C6 end),
    exit(C6, kill),
    until(fun() -> ctl(W, {alive, C6}) =:= false end),
    until(fun() -> global:whereis_name(N6) =:= undefined end),
    until(fun() -> peer:call(Peer, global, whereis_name, [N6]) =:= undefined end),
    %% a BEAM node whose connection to the C node dropped forgets the name (its monitor fires);
    %% the C node reconnects and registers the name again there
    N7 = name("cname7"),
    {ok, C7} = ctl(W, {spawn, N7}),
    until(fun() -> peer:call(Peer, global, whereis_name, [N7]) =:= C7 end),
    true = peer:call(Peer, erlang, disconnect_node, [W]),
    until(fun() -> peer:call(Peer, global, whereis_name, [N7]) =:= undefined end),
    ?assertEqual(C7, global:whereis_name(N7)),
    until(fun() -> peer:call(Peer, global, whereis_name, [N7]) =:= C7 end),
    ?assertEqual(C7, global:whereis_name(N7)),
    %% mode auto picks OTP global while a BEAM member is connected
    ok = glob(W, {set_mode, auto}),
    ?assertEqual({auto, random_exit_name}, glob(W, config)),
    N8 = name("cname8"),
    {ok, C8} = ctl(W, {spawn, N8}),
    ?assertMatch([{N8, C8, W, beam}], [T || T = {X, _, _, _} <- glob(W, table), X =:= N8]),
    until(fun() -> peer:call(Peer, global, whereis_name, [N8]) =:= C8 end),
    %% the C API refuses invalid input
    ?assertEqual([], ctl(W, api_checks)),
    %% the C node is killed: its names disappear everywhere
    N5 = name("cname5"),
    {ok, C5} = ctl(W, {spawn, N5}),
    until(fun() -> peer:call(Peer, global, whereis_name, [N5]) =:= C5 end),
    bl_test_util:kill(W),
    until(fun() -> global:whereis_name(N5) =:= undefined end),
    until(fun() -> peer:call(Peer, global, whereis_name, [N5]) =:= undefined end),
    until(fun() -> global:whereis_name(N4) =:= undefined end),
    ?assertEqual(PeerNode, node(peer:call(Peer, erlang, whereis, [global_name_server]))),
    bl_test_util:stop_peer(Peer).

get_msgs(W, Pid) ->
    Old = case get({msgs, Pid}) of undefined -> []; L -> L end,
    All = Old ++ ctl(W, {msgs, Pid}),
    put({msgs, Pid}, All),
    All.

%% ---- C-only: unique names, failed node ----

beamlet_names_test_() ->
    {timeout, 120, fun beamlet_names/0}.

beamlet_names() ->
    C = bl_test_util:unique("gc"),
    Opt = ["--global-mode", "beamlet"],
    A = start("ga", C, [], Opt),
    B = start("gb", C, A, Opt),
    D = start("gd", C, A, Opt),
    All = [A, B, D],
    agree(All),
    NA = name("na"), NB = name("nb"), ND = name("nd"),
    {ok, PA} = ctl(A, {spawn, NA}),
    {ok, PB} = ctl(B, {spawn, NB}),
    {ok, PD} = ctl(D, {spawn, ND}),
    Expected = [{NA, PA}, {NB, PB}, {ND, PD}],
    until(fun() -> lists:all(fun(N) -> [glob(N, {whereis, X}) || {X, _} <- Expected]
                                           =:= [P || {_, P} <- Expected] end, All) end),
    %% unique: taken names are refused everywhere
    ?assertEqual(no, ctl(B, {spawn, NA})),
    ?assertEqual(no, ctl(D, {spawn, NA})),
    ?assertEqual(no, ctl(A, {spawn, NB})),
    {ok, Q} = ctl(A, {spawn, name("other")}),
    ?assertEqual(no, glob(A, {register, NB, Q})),
    ?assertEqual(yes, glob(A, {register, NA, PA})), % the same pid again
    %% lookups and sends from C and from BEAM
    ?assertEqual(PB, ctl(A, {whereis, NB})),
    ?assertEqual({ok, PB}, ctl(A, {send, NB, {via_c, 1}})),
    ?assertEqual(PB, glob(D, {send, NB, {via_glob, 2}})),
    until(fun() -> length(get_msgs(B, PB)) >= 2 end),
    ?assertEqual([{via_c, 1}, {via_glob, 2}], lists:sort(erase({msgs, PB}))),
    ?assertEqual(undefined, ctl(A, {whereis, name("none")})),
    Reg = lists:sort(glob(D, registered)),
    ?assert(lists:all(fun(X) -> lists:member(X, Reg) end, [NA, NB, ND])),
    %% a process that ends loses its name everywhere; the name is free again
    ok = ctl(B, {exit, PB}),
    until(fun() -> lists:all(fun(N) -> glob(N, {whereis, NB}) =:= undefined end, All) end),
    {ok, PB2} = ctl(D, {spawn, NB}),
    until(fun() -> lists:all(fun(N) -> glob(N, {whereis, NB}) =:= PB2 end, All) end),
    %% unregister
    ok = ctl(D, {unregister, PB2, NB}),
    until(fun() -> lists:all(fun(N) -> glob(N, {whereis, NB}) =:= undefined end, All) end),
    ?assertEqual({error, badarg}, glob(A, {register, NA, list_to_pid("<0.1.0>")})),
    %% kill -9 of D: its names disappear on A and B
    bl_test_util:kill(D),
    until(fun() -> glob(A, {whereis, ND}) =:= undefined andalso
                       glob(B, {whereis, ND}) =:= undefined end),
    ?assertEqual(PA, glob(B, {whereis, NA})),
    ok.

%% ---- C-only: clash after a partition heals, each method ----

clash_exit_test_() -> {timeout, 120, fun() -> clash("random_exit_name") end}.
clash_notify_test_() -> {timeout, 120, fun() -> clash("random_notify_name") end}.
clash_notify_all_test_() -> {timeout, 120, fun() -> clash("notify_all_name") end}.

clash(Method) ->
    C = bl_test_util:unique("gx"),
    Opt = ["--global-mode", "beamlet", "--global-resolve", Method],
    A = start("xa", C, [], Opt),
    B = start("xb", C, A, Opt),
    D = start("xd", C, A, Opt),
    All = [A, B, D],
    agree(All),
    ?assertEqual({beamlet, list_to_atom(Method)}, glob(A, config)),
    X = name("x"),
    {ok, PB} = ctl(B, {spawn, X}), % the older registration
    until(fun() -> lists:all(fun(N) -> glob(N, {whereis, X}) =:= PB end, All) end),
    %% partition: B suspended until A and D mark it failed (and drop its names)
    os_signal(B, "STOP"),
    until(fun() -> state_of(A, B) =:= failed andalso state_of(D, B) =:= failed end),
    until(fun() -> glob(A, {whereis, X}) =:= undefined andalso
                       glob(D, {whereis, X}) =:= undefined end),
    {ok, PA} = ctl(A, {spawn, X}),
    until(fun() -> glob(D, {whereis, X}) =:= PA end),
    %% heal
    os_signal(B, "CONT"),
    agree(All),
    case Method of
        "random_exit_name" ->
            until(fun() -> lists:all(fun(N) -> glob(N, {whereis, X}) =:= PB end, All) end),
            until(fun() -> ctl(A, {alive, PA}) =:= false end),
            ?assertEqual(true, ctl(B, {alive, PB}));
        "random_notify_name" ->
            until(fun() -> lists:all(fun(N) -> glob(N, {whereis, X}) =:= PB end, All) end),
            until(fun() -> lists:member({global_name_conflict, X}, get_msgs(A, PA)) end),
            ?assertEqual(true, ctl(A, {alive, PA})),
            ?assertEqual([], ctl(B, {msgs, PB}));
        "notify_all_name" ->
            until(fun() -> lists:member({global_name_conflict, X, PB}, get_msgs(A, PA)) end),
            until(fun() -> lists:member({global_name_conflict, X, PA}, get_msgs(B, PB)) end),
            until(fun() -> lists:all(fun(N) -> glob(N, {whereis, X}) =:= undefined end, All) end)
    end,
    %% stable: no flapping after a few sync rounds
    timer:sleep(2500),
    Final = [glob(N, {whereis, X}) || N <- All],
    ?assertEqual(1, length(lists:usort(Final))),
    [bl_test_util:term(N) || N <- All],
    ok.

%% The node's configuration (flags, env, JSON) sets the clash method and the mode.
config_test_() ->
    {timeout, 30, fun() ->
        N = bl_test_util:start_beamlet("gcfg", ["--global-resolve", "notify_all_name",
                                                "--global-mode", "beamlet"]),
        ?assertEqual({beamlet, notify_all_name}, gen_server:call({beamlet_global, N}, config, 5000)),
        D = bl_test_util:start_beamlet("gdef", []),
        ?assertEqual({auto, random_exit_name}, gen_server:call({beamlet_global, D}, config, 5000))
    end}.

%% ---- C-only: several names per owner, on every node (issue 9: a sync kept only the first) ----

multi_test_() ->
    {timeout, 120, fun multi/0}.

multi() ->
    C = bl_test_util:unique("gmm"),
    Opt = ["--global-mode", "beamlet"],
    A = start("gma", C, [], Opt),
    B = start("gmb", C, A, Opt),
    D = start("gmd", C, A, Opt),
    All = [A, B, D],
    agree(All),
    %% three names for three processes on each node, all answered yes
    Named = [{N, X, P} || N <- All, K <- lists:seq(1, 3),
                          X <- [name("m" ++ integer_to_list(K))],
                          {ok, P} <- [ctl(N, {spawn, X})]],
    ?assertEqual(9, length(Named)),
    Seen = fun() -> [{At, X} || At <- All, {_, X, P} <- Named, glob(At, {whereis, X}) =/= P] end,
    until(fun() -> Seen() =:= [] end),
    %% still there after several full-table syncs
    timer:sleep(3500),
    ?assertEqual([], Seen()),
    ?assertEqual([], [{At, X} || At <- All, {_, X, P} <- Named, ctl(At, {whereis, X}) =/= P]),
    %% used from every other node: a send through each name from each other node arrives
    [{ok, P} = ctl(At, {send, X, {multi, At}}) || {O, X, P} <- Named, At <- All, At =/= O],
    [until(fun() -> length(get_msgs(O, P)) >= 2 end) || {O, _, P} <- Named],
    [?assertEqual(lists:sort([{multi, At} || At <- All, At =/= O]), lists:sort(erase({msgs, P})))
     || {O, _, P} <- Named],
    ok.

%% ---- mixed (mode beam), several names per owner on every node (issue 9) ----
%% Two C nodes (one --join'ing the other) with the runner and a `peer` BEAM node: each C node owns
%% three names, two registered from C (bl_global_register) and one from BEAM (global:register_name/2
%% on the runner, or beamlet_global's register); each BEAM node owns three names.
%% Every name resolves to its pid from every node (global:whereis_name on both BEAM nodes, the C
%% API and beamlet_global on both C nodes) and a send from C reaches it; kill -9 of one C node
%% removes exactly its names everywhere.

mixed_multi_test_() ->
    {timeout, 120, fun mixed_multi/0}.

mixed_multi() ->
    {Peer, _} = bl_test_util:start_peer("gxpeer"),
    pong = peer:call(Peer, net_adm, ping, [node()]),
    ok = global:sync(),
    C = bl_test_util:unique("gx"),
    Opt = ["--global-mode", "beam"],
    W1 = start("gx1", C, [], Opt),
    W2 = start("gx2", C, W1, Opt),
    Ws = [W1, W2],
    until(fun() -> lists:all(fun sees_beam/1, Ws) end),
    %% C owners: three processes each; two named from C, the third's name moved to one registered
    %% from BEAM (global:register_name/2 on the runner for W1, beamlet_global's register for W2)
    CNamed = lists:append(
               [begin
                    Own = [{W, X, P} || K <- lists:seq(1, 3), X <- [name("xc" ++ integer_to_list(K))],
                                        {ok, P} <- [ctl(W, {spawn, X})]],
                    [{_, X1, P1}, {_, X2, P2}, {_, X3, P3}] = Own,
                    ok = ctl(W, {unregister, P3, X3}),
                    until(fun() -> global:whereis_name(X3) =:= undefined end),
                    X3b = name("xcb"),
                    yes = case W of
                              W1 -> global:register_name(X3b, P3);
                              W2 -> glob(W2, {register, X3b, P3})
                          end,
                    [{W, X1, P1}, {W, X2, P2}, {W, X3b, P3}]
                end || W <- Ws]),
    ?assertEqual(6, length(CNamed)),
    %% BEAM owners: three names on the runner, three on the peer
    Me = node(),
    RNamed = [{Me, X, spawn(fun() -> receive stop -> ok end end)}
              || K <- lists:seq(1, 3), X <- [name("xr" ++ integer_to_list(K))]],
    [yes = global:register_name(X, P) || {_, X, P} <- RNamed],
    PeerNode = peer:call(Peer, erlang, node, []),
    PNamed = [{PeerNode, X, peer:call(Peer, erlang, spawn, [timer, sleep, [infinity]])}
              || K <- lists:seq(1, 3), X <- [name("xp" ++ integer_to_list(K))]],
    [yes = peer:call(Peer, global, register_name, [X, P]) || {_, X, P} <- PNamed],
    All = CNamed ++ RNamed ++ PNamed,
    Wrong = fun(Named) ->
                    [{beam, X} || {_, X, P} <- Named, global:whereis_name(X) =/= P] ++
                    [{peer, X} || {_, X, P} <- Named, peer:call(Peer, global, whereis_name, [X]) =/= P] ++
                    [{capi, W, X} || W <- Ws, {_, X, P} <- Named, ctl(W, {whereis, X}) =/= P] ++
                    [{glob, W, X} || W <- Ws, {_, X, P} <- Named, glob(W, {whereis, X}) =/= P]
            end,
    until(fun() -> Wrong(All) =:= [] end),
    %% used from C: a send through every name from every C node arrives at the C owners
    [{ok, P} = ctl(W, {send, X, {xm, W}}) || {_, X, P} <- CNamed, W <- Ws],
    [until(fun() -> length(get_msgs(O, P)) >= 2 end) || {O, _, P} <- CNamed],
    [?assertEqual(lists:sort([{xm, W} || W <- Ws]), lists:sort(erase({msgs, P}))) || {_, _, P} <- CNamed],
    %% kill -9 of W2: exactly its names go, on every remaining node
    bl_test_util:kill(W2),
    Gone = [X || {O, X, _} <- All, O =:= W2],
    Kept = [T || T = {O, _, _} <- All, O =/= W2],
    ?assertEqual(3, length(Gone)),
    until(fun() -> [X || X <- Gone, global:whereis_name(X) =/= undefined] =:= [] end),
    until(fun() -> [X || X <- Gone, peer:call(Peer, global, whereis_name, [X]) =/= undefined] =:= [] end),
    until(fun() -> [X || X <- Gone, ctl(W1, {whereis, X}) =/= undefined] =:= [] end),
    ?assertEqual([], [X || X <- Gone, glob(W1, {whereis, X}) =/= undefined]),
    KeptWrong = fun() ->
                        [{beam, X} || {_, X, P} <- Kept, global:whereis_name(X) =/= P] ++
                        [{peer, X} || {_, X, P} <- Kept, peer:call(Peer, global, whereis_name, [X]) =/= P] ++
                        [{capi, X} || {_, X, P} <- Kept, ctl(W1, {whereis, X}) =/= P]
                end,
    ?assertEqual([], KeptWrong()),
    timer:sleep(1500),
    ?assertEqual([], KeptWrong()),
    [P ! stop || {_, _, P} <- RNamed],
    bl_test_util:stop_peer(Peer).
