%% bl_spawn_tests - spawn_request, erpc, aliases and process monitors between real BEAM (the runner
%% erl node, and an Elixir node) and real C nodes (test_worker, which exports tw:* functions, and
%% the beamlet binary), with OTP's own functions: rpc, erpc, spawn/4, erlang:monitor/2,
%% gen_server:call. And C calling BEAM through erpc, each outcome. Run by run.sh.
-module(bl_spawn_tests).
-include_lib("eunit/include/eunit.hrl").

-import(bl_test_util, [ctl/2, ctl/3, flush/0]).

all_test_() ->
    {setup,
     fun setup/0,
     fun cleanup/1,
     fun(Ctx) ->
         [t("rpc:call to C: value, undef, error, throw, timeout", fun() -> rpc_call(Ctx) end),
          t("erpc:call to C: value, undef, error, exit, throw, timeout", fun() -> erpc_call(Ctx) end),
          t("a late erpc result after a timeout leaves no message", fun() -> erpc_late(Ctx) end),
          t("erpc:multicall and rpc:multicall over C and BEAM nodes", fun() -> multicall(Ctx) end),
          t("erpc:cast and rpc:cast run on the C node", fun() -> casts(Ctx) end),
          t("spawn/4, spawn_link/4, spawn_monitor/4 on a C node", fun() -> spawns(Ctx) end),
          t("built-in exports answer as BEAM's", fun() -> builtins(Ctx) end),
          t("monitor by name: missing name is noproc at once", fun() -> monitor_missing(Ctx) end),
          t("gen_server:call to a missing C name exits noproc at once", fun() -> call_missing(Ctx) end),
          t("monitor by pid and by name fire with the real reason", fun() -> monitor_reason(Ctx) end),
          t("C calls BEAM through erpc: value, exception, timeout, nodedown", fun() -> c_erpc(Ctx) end),
          t("C calls C through erpc and gen calls with aliases", fun() -> c_to_c(Ctx) end),
          t("beamlet rpc (CLI) into C and BEAM nodes", fun() -> cli_rpc(Ctx) end),
          t("Elixir :rpc / :erpc / GenServer against a C node", fun() -> elixir(Ctx) end),
          t("nodes stop cleanly; no sanitizer reports", fun() -> sanity(Ctx) end)]
     end}.

t(Name, Fun) -> {Name, {timeout, 120, Fun}}.

setup() ->
    W = bl_test_util:start_worker("sw", []),
    W2 = bl_test_util:start_worker("sw2", []),
    B = bl_test_util:start_beamlet("sb", ["--role", "agent", "--cluster", "sp_" ++ os:getpid()]),
    {ok, Srv} = bl_test_srv:start(bl_test_srv),
    #{w => W, w2 => W2, b => B, srv => Srv}.

cleanup(_Ctx) ->
    catch bl_test_srv:stop(bl_test_srv),
    ok.

%% Fail (with the mailbox) if a message arrives within Ms.
no_message(Ms) ->
    receive M -> ?assertEqual(no_message, M) after Ms -> ok end.

rpc_call(#{w := W}) ->
    ?assertEqual(hello, rpc:call(W, tw, echo, [hello])),
    ?assertEqual(5, rpc:call(W, tw, add, [2, 3])),
    ?assertEqual(W, rpc:call(W, erlang, node, [])),
    ?assertEqual({badrpc, {'EXIT', {undef, [{tw, nope, [1], []}]}}}, rpc:call(W, tw, nope, [1])),
    ?assertMatch({badrpc, {'EXIT', {boom, [{tw, fail, 1, _} | _]}}}, rpc:call(W, tw, fail, [boom])),
    ?assertEqual(ball, rpc:call(W, tw, throw, [ball])), % rpc returns a thrown value
    ?assertEqual({badrpc, {'EXIT', bye}}, rpc:call(W, tw, exit, [bye])),
    ?assertEqual({badrpc, timeout}, rpc:call(W, tw, later, [3000, x], 200)),
    ?assertEqual(later, rpc:call(W, tw, later, [50, later])),
    Big = lists:seq(1, 100000),
    ?assertEqual(Big, rpc:call(W, tw, echo, [Big])),
    %% the connection is the one we started with: no reconnects on the way
    ?assert(lists:member(W, nodes(hidden))).

erpc_call(#{w := W}) ->
    ?assertEqual([a, b], erpc:call(W, tw, echo, [[a, b]])),
    ?assertEqual({error, {exception, undef, [{tw, nope, [], []}]}},
                 caught(fun() -> erpc:call(W, tw, nope, []) end)),
    ?assertMatch({error, {exception, boom, [{tw, fail, 1, _} | _]}},
                 caught(fun() -> erpc:call(W, tw, fail, [boom]) end)),
    ?assertEqual({exit, {exception, bye}}, caught(fun() -> erpc:call(W, tw, exit, [bye]) end)),
    ?assertEqual({throw, ball}, caught(fun() -> erpc:call(W, tw, throw, [ball]) end)),
    {T, R} = timer:tc(fun() -> caught(fun() -> erpc:call(W, tw, later, [5000, x], 300) end) end),
    ?assertEqual({error, {erpc, timeout}}, R),
    ?assert(T < 3000000),
    ?assertEqual(late_ok, erpc:call(W, tw, later, [100, late_ok], 5000)),
    %% the asynchronous form
    ReqId = erpc:send_request(W, tw, add, [20, 22]),
    ?assertEqual(42, erpc:receive_response(ReqId, 5000)),
    %% a fun cannot run on a C node: erlang:apply/2 is not exported there
    ?assertMatch({error, {exception, undef, [{erlang, apply, [_, []], []}]}},
                 caught(fun() -> erpc:call(W, fun() -> ok end) end)),
    %% rpc:block_call goes to rex, which a C node does not run: noproc at once, not a hang
    {T2, BR} = timer:tc(fun() -> rpc:block_call(W, tw, echo, [x]) end),
    ?assertMatch({badrpc, {'EXIT', {noproc, _}}}, BR),
    ?assert(T2 < 1000000).

erpc_late(#{w := W}) ->
    flush(),
    ?assertEqual({error, {erpc, timeout}},
                 caught(fun() -> erpc:call(W, tw, later, [400, too_late], 100) end)),
    no_message(1000),
    %% and the C node still serves
    ?assertEqual(ok, erpc:call(W, tw, echo, [ok])).

multicall(#{w := W, w2 := W2}) ->
    Me = node(),
    ?assertEqual([{ok, W}, {ok, W2}, {ok, Me}], erpc:multicall([W, W2, Me], erlang, node, [])),
    ?assertMatch([{ok, 3}, {error, {exception, undef, _}}],
                 [hd(erpc:multicall([W], tw, add, [1, 2])), hd(erpc:multicall([W2], tw, nope, []))]),
    ?assertEqual({[y, y], []}, rpc:multicall([W, W2], tw, echo, [y])),
    Nobody = list_to_atom("nobody_" ++ os:getpid() ++ "@" ++ bl_test_util:host()),
    ?assertEqual({[y], [Nobody]}, rpc:multicall([W, Nobody], tw, echo, [y], 5000)),
    ?assertEqual([{ok, x}, {ok, x}], erpc:multicall([W, W2], tw, later, [0, x], 5000)),
    ?assertEqual([{error, {erpc, timeout}}, {error, {erpc, timeout}}],
                 erpc:multicall([W, W2], tw, later, [3000, x], 300)).

casts(#{w := W, w2 := W2}) ->
    flush(),
    ok = erpc:cast(W, tw, notify, [self(), {cast, 1}]),
    ?assertEqual({cast, 1}, receive {cast, _} = M -> M after 5000 -> timeout end),
    true = rpc:cast(W2, tw, notify, [self(), {cast, 2}]),
    ?assertEqual({cast, 2}, receive {cast, _} = M2 -> M2 after 5000 -> timeout end),
    ok = erpc:multicast([W, W2], tw, notify, [self(), mc]),
    ?assertEqual([mc, mc], [receive mc -> mc after 5000 -> timeout end || _ <- [1, 2]]),
    %% a cast of a missing function is silent, and the node keeps serving
    ok = erpc:cast(W, tw, nope, []),
    ?assertEqual(ok, erpc:call(W, tw, echo, [ok])).

spawns(#{w := W}) ->
    flush(),
    P = spawn(W, tw, notify, [self(), spawned]),
    ?assert(is_pid(P)),
    ?assertEqual(W, node(P)),
    ?assertEqual(spawned, receive spawned -> spawned after 5000 -> timeout end),
    %% spawn_link: the C process's error reaches the trapping parent as its exit reason
    Parent = self(),
    Child = spawn(fun() ->
                          process_flag(trap_exit, true),
                          L = spawn_link(W, tw, fail, [linked_boom]),
                          Parent ! {exit_seen, receive {'EXIT', L, R} -> R after 5000 -> timeout end}
                  end),
    ?assertMatch({exit_seen, {linked_boom, [{tw, fail, 1, _} | _]}},
                 receive {exit_seen, _} = E -> E after 8000 -> {timeout, Child} end),
    %% spawn_monitor: DOWN with the real reason
    {M1, R1} = spawn_monitor(W, tw, exit, [bye]),
    ?assertEqual(bye, receive {'DOWN', R1, process, M1, Why} -> Why after 5000 -> timeout end),
    {M2, R2} = spawn_monitor(W, tw, later, [50, x]),
    ?assertEqual(normal, receive {'DOWN', R2, process, M2, Why2} -> Why2 after 5000 -> timeout end),
    {M3, R3} = spawn_monitor(W, nope, nope, [1]),
    ?assertEqual({undef, [{nope, nope, [1], []}]},
                 receive {'DOWN', R3, process, M3, Why3} -> Why3 after 5000 -> timeout end),
    ?assert(lists:member(W, nodes(hidden))).

builtins(#{w := W, b := B}) ->
    ?assertEqual(B, rpc:call(B, erlang, node, [])),
    ?assertEqual([], erpc:call(B, erlang, nodes, [])),
    ?assert(lists:member(node(), erpc:call(B, erlang, nodes, [hidden]))),
    ?assert(lists:member(B, erpc:call(B, erlang, nodes, [[this, connected]]))),
    Reg = erpc:call(B, erlang, registered, []),
    ?assert(lists:member(beamlet, Reg) andalso lists:member(net_kernel, Reg)),
    ?assert(is_pid(erpc:call(B, erlang, whereis, [beamlet]))),
    ?assertEqual(undefined, erpc:call(B, erlang, whereis, [no_such_name])),
    Mem = erpc:call(B, erlang, memory, []),
    ?assertEqual(lists:sort([K || {K, _} <- erlang:memory()]), lists:sort([K || {K, _} <- Mem])),
    ?assert(proplists:get_value(total, Mem) > 1000000),
    ?assert(is_integer(erpc:call(B, erlang, memory, [total]))),
    ?assertMatch([{processes, _}, {binary, 0}], erpc:call(B, erlang, memory, [[processes, binary]])),
    N = erpc:call(B, erlang, system_info, [process_count]),
    ?assert(is_integer(N) andalso N >= 2),
    ?assertEqual(8, erpc:call(B, erlang, system_info, [wordsize])),
    ?assertMatch({error, {exception, badarg, _}},
                 caught(fun() -> erpc:call(B, erlang, system_info, [no_such_key]) end)),
    ?assertMatch({badrpc, {'EXIT', {badarg, _}}}, rpc:call(W, erlang, whereis, ["notatom"])),
    Info = erpc:call(B, beamlet, info, []),
    ?assertEqual(lists:sort(maps:keys(gen_server:call({beamlet, B}, info))),
                 lists:sort(maps:keys(Info))),
    ?assertEqual(atom_to_list(B), bl_test_util:to_str(maps:get(node, Info))),
    ?assert(is_map(erpc:call(B, beamlet, stats, []))).

monitor_missing(#{w := W}) ->
    {T, Down} = timer:tc(fun() ->
                                 Ref = erlang:monitor(process, {no_such_name, W}),
                                 receive {'DOWN', Ref, process, Obj, Why} -> {Obj, Why}
                                 after 5000 -> timeout end
                         end),
    ?assertEqual({{no_such_name, W}, noproc}, Down),
    ?assert(T < 1000000).

call_missing(#{w := W, b := B}) ->
    [begin
         {T, R} = timer:tc(fun() -> caught(fun() -> gen_server:call({no_such_srv, N}, hi, 10000) end) end),
         ?assertMatch({exit, {noproc, {gen_server, call, _}}}, R),
         ?assert(T < 1000000)
     end || N <- [W, B]],
    %% a present one still answers
    ?assertEqual({echo, hi}, gen_server:call({echo, W}, hi, 5000)).

monitor_reason(#{w := W}) ->
    {ok, P1} = ctl(W, {spawn_named, mon_by_name}),
    {ok, P2} = ctl(W, {spawn_named, mon_by_pid}),
    R1 = erlang:monitor(process, {mon_by_name, W}),
    R2 = erlang:monitor(process, P2),
    ok = ctl(W, {exit, P1, custom_reason}),
    ok = ctl(W, {exit, P2, other_reason}),
    ?assertEqual({{mon_by_name, W}, custom_reason},
                 receive {'DOWN', R1, process, O1, Y1} -> {O1, Y1} after 5000 -> timeout end),
    ?assertEqual({P2, other_reason},
                 receive {'DOWN', R2, process, O2, Y2} -> {O2, Y2} after 5000 -> timeout end),
    %% a process an exit signal from BEAM ends
    P3 = spawn(W, tw, wait, []),
    R3 = erlang:monitor(process, P3),
    exit(P3, shot),
    ?assertEqual(shot, receive {'DOWN', R3, process, P3, Y3} -> Y3 after 5000 -> timeout end),
    %% demonitor: no DOWN after it
    {ok, P4} = ctl(W, {spawn_named, mon_demon}),
    R4 = erlang:monitor(process, P4),
    true = erlang:demonitor(R4),
    ok = ctl(W, {exit, P4, quiet}),
    receive {'DOWN', R4, _, _, _} = D -> ?assertEqual(no_down, D) after 300 -> ok end,
    %% the connection stayed up the whole time
    ?assert(lists:member(W, nodes(hidden))),
    ?assertEqual({echo, x}, gen_server:call({echo, W}, x)).

c_erpc(#{w := W}) ->
    Me = node(),
    ?assertEqual({ok, [1, 2, 3]}, ctl(W, {erpc, Me, lists, seq, [1, 3], 5000})),
    ?assertEqual({ok, Me}, ctl(W, {erpc, Me, erlang, node, [], 5000})),
    ?assertMatch({exception, {error, badarith, [_ | _]}},
                 ctl(W, {erpc, Me, erlang, '+', [1, a], 5000})),
    ?assertMatch({exception, {error, undef, [{no_mod, f, [], _} | _]}},
                 ctl(W, {erpc, Me, no_mod, f, [], 5000})),
    ?assertEqual({exception, {throw, ball, []}}, ctl(W, {erpc, Me, erlang, throw, [ball], 5000})),
    ?assertEqual({exception, {exit, bye, []}}, ctl(W, {erpc, Me, erlang, exit, [bye], 5000})),
    {T, R} = timer:tc(fun() -> ctl(W, {erpc, Me, timer, sleep, [3000], 300}) end),
    ?assertEqual({error, timeout}, R),
    ?assert(T < 2500000),
    Nobody = list_to_atom("nobody_" ++ os:getpid() ++ "@" ++ bl_test_util:host()),
    ?assertEqual({error, nodedown}, ctl(W, {erpc, Nobody, erlang, node, [], 5000})),
    %% a peer that goes away during the call is nodedown, not a timeout
    {Peer, PN} = bl_test_util:start_peer("erpcpeer"),
    try
        ?assertEqual({ok, PN}, ctl(W, {erpc, PN, erlang, node, [], 5000})),
        Self = self(),
        spawn(fun() -> Self ! {res, ctl(W, {erpc, PN, timer, sleep, [20000], 30000}, 40000)} end),
        timer:sleep(500),
        bl_test_util:stop_peer(Peer),
        ?assertEqual({error, nodedown}, receive {res, X} -> X after 20000 -> timeout end)
    after
        catch bl_test_util:stop_peer(Peer)
    end,
    %% erpc cast into BEAM
    flush(),
    ok = ctl(W, {erpc_cast, Me, erlang, send, [self(), from_c_cast]}),
    ?assertEqual(from_c_cast, receive from_c_cast -> from_c_cast after 5000 -> timeout end).

c_to_c(#{w := W, w2 := W2}) ->
    ?assertEqual({ok, 7}, ctl(W, {erpc, W2, tw, add, [3, 4], 5000})),
    ?assertEqual({exception, {error, undef, [{tw, nope, [], []}]}},
                 ctl(W, {erpc, W2, tw, nope, [], 5000})),
    ?assertEqual({error, timeout}, ctl(W, {erpc, W2, tw, later, [2000, x], 200})),
    ?assertEqual({ok, {echo, hi}}, ctl(W, {call, echo, W2, hi, 5000})),
    ?assertEqual({error, noproc}, ctl(W, {call, no_such, W2, hi, 5000})),
    %% gen calls from C use [alias|Ref]: BEAM's gen_server replies through the alias
    ?assertEqual({ok, 5}, ctl(W, {call, bl_test_srv, node(), {add, 2, 3}, 5000})),
    ?assertEqual({error, timeout}, ctl(W, {call, bl_test_srv, node(), {sleep, 600}, 100})),
    timer:sleep(800), % the late reply arrived at the deactivated alias and was dropped
    ?assertEqual({ok, 2}, ctl(W, {call, bl_test_srv, node(), {add, 1, 1}, 5000})).

cli_rpc(#{w := W}) ->
    Rpc = fun(Node, Rest) ->
                  bl_test_util:sh(io_lib:format("timeout 20 '~s' rpc ~s ~s --cookie '~s'",
                                                [os:getenv("BEAMLET_BIN"), Node, Rest,
                                                 os:getenv("BL_COOKIE")]))
          end,
    ?assertEqual({0, "42\n"}, Rpc(W, "tw add '[2, 40]'")),
    ?assertEqual({0, "[c, b, a]\n"}, Rpc(node(), "lists reverse '[[a, b, c]]'")),
    {1, Undef} = Rpc(W, "tw nope"),
    NoSp = fun(S) -> [Ch || Ch <- S, Ch =/= $\s] end,
    ?assertNotEqual(nomatch, string:find(NoSp(Undef), "{error,undef,[{tw,nope,[],[]}]}")),
    {1, Exc} = Rpc(node(), "erlang error '[boom]'"),
    ?assertNotEqual(nomatch, string:find(NoSp(Exc), "{error,boom,")),
    {1, Bad} = Rpc(W, "tw add notalist"),
    ?assertNotEqual(nomatch, string:find(Bad, "ARGS must be an Erlang list")),
    {0, Json} = Rpc(W, "erlang node --format json"),
    ?assertEqual("\"" ++ atom_to_list(W) ++ "\"", string:trim(Json)).

elixir(#{w := W, b := B}) ->
    case os:find_executable("elixir") of
        false -> ?assert(false);
        Ex ->
            Script = filename:absname("test/integration/bl_spawn_elixir.exs"),
            Name = "ex_" ++ os:getpid(),
            Cmd = io_lib:format("timeout 90 ~s --sname ~s --cookie ~s ~s ~s ~s 2>&1",
                                [Ex, Name, os:getenv("BL_COOKIE"), Script, W, B]),
            Out = os:cmd(lists:flatten(Cmd)),
            io:format(user, "~s", [Out]),
            ?assertNotEqual(nomatch, string:find(Out, "ELIXIR ALL OK"))
    end.

sanity(_Ctx) ->
    Stopped = bl_test_util:stop_all(),
    ?assertEqual([], [{N, S} || {N, S} <- Stopped, S =/= {exited, 0}]),
    All = bl_test_util:nodes_info(),
    Reports = [{N, Pat} || {N, _} <- All,
                           Pat <- [<<"AddressSanitizer">>, <<"LeakSanitizer">>,
                                   <<"runtime error:">>, <<"never got on_terminate">>],
                           binary:match(bl_test_util:log_text(N), Pat) =/= nomatch],
    ?assertEqual([], Reports).

caught(F) ->
    try F() of V -> {value, V} catch C:R -> {C, R} end.
