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
          t("funs, erlang:apply, rex, spawn of a fun: as a BEAM node lacking the module",
            fun() -> as_beam(Ctx) end),
          t("process_info of C processes: rpc:pinfo/1,2 in BEAM's shapes", fun() -> pinfo(Ctx) end),
          t("rex runs C functions: block_call, call, cast, later, killed, C to C",
            fun() -> rex_c(Ctx) end),
          t("rex drops bad requests with a log line and serves on", fun() -> rex_bad(Ctx) end),
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
    %% an external fun runs the export it names; a local fun is code the C node does not have
    ?assertEqual(W, erpc:call(W, fun erlang:node/0)),
    Local = fun() -> ok end,
    ?assertEqual({error, {exception, undef, [{Local, [], []}, {erlang, apply, 2, []}]}},
                 caught(fun() -> erpc:call(W, Local) end)),
    %% rpc:block_call goes to rex, which the C node serves
    ?assertEqual(x, rpc:block_call(W, tw, echo, [x])).

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

%% A module that exists on this node only (loaded from memory: no peer can load it).
load_only_here() ->
    Src = ["-module(bl_only_here).", "-export([local/0, closure/1, ext/0]).",
           "local() -> fun() -> node() end.", "closure(X) -> fun() -> {X, node()} end.",
           "ext() -> fun bl_only_here:ext/0."],
    Forms = [begin {ok, T, _} = erl_scan:string(S), {ok, F} = erl_parse:parse_form(T), F end
             || S <- Src],
    {ok, M, Bin} = compile:forms(Forms, []),
    {module, M} = code:load_binary(M, "bl_only_here.erl", Bin),
    ok.

%% Node names and pids out of a result, so a BEAM peer's and a C node's answers compare.
norm(N, N) -> 'NODE';
norm(P, _) when is_pid(P) -> 'PID';
norm(T, N) when is_tuple(T) -> list_to_tuple(norm(tuple_to_list(T), N));
norm([H | T], N) -> [norm(H, N) | norm(T, N)];
norm(X, _) -> X.

down_reason(Ref) ->
    receive {'DOWN', Ref, process, _, R} -> R after 10000 -> no_down end.

got(Ms) -> receive M -> M after Ms -> no_message end.

%% Each case once against a BEAM node that lacks bl_only_here and once against the C node: the
%% same answers (rpc.erl and erpc.erl of OTP 25 read for the rex requests).
as_beam(#{w := W}) ->
    ok = load_only_here(),
    {Peer, PN} = bl_test_util:start_peer("lacks"),
    try
        ?assertEqual({error, nofile}, erpc:call(PN, code, ensure_loaded, [bl_only_here])),
        L = bl_only_here:local(),
        Cl = bl_only_here:closure(42),
        Cases =
            [{fun_ext, fun(N) -> caught(fun() -> erpc:call(N, fun erlang:node/0) end) end},
             {fun_local, fun(N) -> caught(fun() -> erpc:call(N, L) end) end},
             {fun_closure, fun(N) -> caught(fun() -> erpc:call(N, Cl) end) end},
             {fun_ext_missing, fun(N) -> caught(fun() -> erpc:call(N, fun bl_only_here:ext/0) end) end},
             {fun_send_request, fun(N) -> erpc:receive_response(erpc:send_request(N, fun erlang:node/0), 5000) end},
             {fun_multicall, fun(N) -> erpc:multicall([N], fun erlang:node/0) end},
             {apply2_badarity, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [L, [1]]) end) end},
             {apply2_ext_badarity, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [fun erlang:node/0, [1]]) end) end},
             {apply2_badfun, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [notfun, []]) end) end},
             {apply2_tuple_fun, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [{erlang, node}, []]) end) end},
             {apply2_notlist, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [fun erlang:node/0, notlist]) end) end},
             {apply3, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, node, []]) end) end},
             {apply3_undef, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [nomod, f, [1]]) end) end},
             {apply3_nested, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, apply, [fun erlang:node/0, []]]) end) end},
             {apply3_nested_undef, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, apply, [nomod, f, []]]) end) end},
             {apply3_badmod, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, ["m", f, []]) end) end},
             {apply3_notlist, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, node, notlist]) end) end},
             {apply1_undef, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [fun erlang:node/0]) end) end},
             {rpc_fun_local, fun(N) -> rpc:call(N, erlang, apply, [L, []]) end},
             {rpc_fun_ext, fun(N) -> rpc:call(N, erlang, apply, [fun erlang:node/0, []]) end},
             {rpc_multicall_fun, fun(N) -> rpc:multicall([N], erlang, apply, [L, []]) end},
             {block_node, fun(N) -> rpc:block_call(N, erlang, node, []) end},
             {block_node_tmo, fun(N) -> rpc:block_call(N, erlang, node, [], 5000) end},
             {block_undef, fun(N) -> rpc:block_call(N, nomod, f, [1]) end},
             {block_fun_local, fun(N) -> rpc:block_call(N, erlang, apply, [L, []]) end},
             {block_fun_ext, fun(N) -> rpc:block_call(N, erlang, apply, [fun erlang:node/0, []]) end},
             {block_badfun, fun(N) -> rpc:block_call(N, erlang, apply, [notfun, []]) end},
             {block_apply3_undef, fun(N) -> rpc:block_call(N, erlang, apply, [nomod, f, [1]]) end},
             {block_badarity, fun(N) -> rpc:block_call(N, erlang, apply, [fun erlang:node/0, [x]]) end},
             {rex_call, fun(N) -> gen_server:call({rex, N}, {call, erlang, node, [], user}) end},
             {rex_call_undef, fun(N) -> gen_server:call({rex, N}, {call, nomod, f, [], user}) end},
             {rex_call_badmod, fun(N) -> gen_server:call({rex, N}, {call, "m", node, [], user}) end},
             {rex_call_badfn, fun(N) -> gen_server:call({rex, N}, {call, erlang, "f", [], user}) end},
             {rex_call_notlist, fun(N) -> gen_server:call({rex, N}, {call, erlang, node, notlist, user}) end},
             {rex_call_improper, fun(N) -> gen_server:call({rex, N}, {block_call, erlang, node, [a | b], user}) end},
             {rex_call_unknown, fun(N) -> caught(fun() -> gen_server:call({rex, N}, what, 300) end) end},
             {rex_plain_call, fun(N) -> {rex, N} ! {self(), {call, erlang, node, [], user}}, got(5000) end},
             {rex_plain_undef, fun(N) -> {rex, N} ! {self(), {call, nomod, f, [], user}}, got(5000) end},
             {rex_plain_fun, fun(N) -> {rex, N} ! {self(), {call, erlang, apply, [L, []], user}}, got(5000) end},
             {rex_features, fun(N) -> {rex, N} ! {self(), features_request}, got(5000) end},
             {rex_send_missing, fun(N) -> {rex, N} ! {self(), {send, no_such_name, hi}}, got(5000) end},
             {sbcast, fun(N) -> rpc:sbcast([N], rex, hello) end},
             {sbcast_missing, fun(N) -> rpc:sbcast([N], no_such_name, hello) end},
             {abcast, fun(N) -> rpc:abcast([N], no_such_name, hello) end},
             {eval_everywhere, fun(N) -> rpc:eval_everywhere([N], erlang, apply, [L, []]) end},
             {server_call_missing, fun(N) -> rpc:server_call(N, no_such_name, w, hi) end},
             {multi_server_call_missing, fun(N) -> rpc:multi_server_call([N], no_such_name, hi) end},
             {erpc_cast_fun, fun(N) -> erpc:cast(N, L) end},
             {rpc_cast_fun, fun(N) -> rpc:cast(N, erlang, apply, [L, []]) end},
             {spawn_fun_local, fun(N) -> {_, R} = spawn_monitor(N, L), down_reason(R) end},
             {spawn_fun_closure, fun(N) -> {_, R} = spawn_monitor(N, Cl), down_reason(R) end},
             {spawn_fun_ext_missing, fun(N) -> {_, R} = spawn_monitor(N, fun bl_only_here:ext/0), down_reason(R) end},
             {spawn_fun_ext, fun(N) -> {_, R} = spawn_monitor(N, fun erlang:node/0), down_reason(R) end},
             {spawn_mfa_missing, fun(N) -> {_, R} = spawn_monitor(N, bl_only_here, ext, []), down_reason(R) end},
             {spawn_badfun, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [notfun, []]), down_reason(R) end},
             {spawn_badarity, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [L, [1]]), down_reason(R) end},
             {spawn_notlist, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [fun erlang:node/0, notlist]), down_reason(R) end},
             {spawn_apply3_undef, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [nomod, f, [1]]), down_reason(R) end},
             {spawn_nested_fun, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [erlang, apply, [L, []]]), down_reason(R) end},
             {spawn_plain, fun(N) -> P = spawn(N, L), {is_pid(P), node(P) =:= N} end},
             %% erlang:error/1,2, exit/1, throw/1 and the built-ins' own badarg, each way in
             {error1, fun(N) -> caught(fun() -> erpc:call(N, erlang, error, [x]) end) end},
             {error2, fun(N) -> caught(fun() -> erpc:call(N, erlang, error, [x, [a]]) end) end},
             {error2_notlist, fun(N) -> caught(fun() -> erpc:call(N, erlang, error, [x, notlist]) end) end},
             {exit1, fun(N) -> caught(fun() -> erpc:call(N, erlang, exit, [x]) end) end},
             {throw1, fun(N) -> caught(fun() -> erpc:call(N, erlang, throw, [x]) end) end},
             {apply3_error, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, error, [x]]) end) end},
             {apply2_error, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [fun erlang:error/1, [x]]) end) end},
             {apply3_throw, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, throw, [x]]) end) end},
             {rpc_error, fun(N) -> rpc:call(N, erlang, error, [x]) end},
             {rpc_error2, fun(N) -> rpc:call(N, erlang, error, [x, [a]]) end},
             {rpc_exit, fun(N) -> rpc:call(N, erlang, exit, [x]) end},
             {rpc_throw, fun(N) -> rpc:call(N, erlang, throw, [x]) end},
             {rpc_apply2_error, fun(N) -> rpc:call(N, erlang, apply, [fun erlang:error/1, [x]]) end},
             {block_error, fun(N) -> rpc:block_call(N, erlang, error, [x]) end},
             {block_exit, fun(N) -> rpc:block_call(N, erlang, exit, [x]) end},
             {block_throw, fun(N) -> rpc:block_call(N, erlang, throw, [x]) end},
             {spawn_error, fun(N) -> {_, R} = spawn_monitor(N, erlang, error, [x]), down_reason(R) end},
             {spawn_throw, fun(N) -> {_, R} = spawn_monitor(N, erlang, throw, [x]), down_reason(R) end},
             {spawn_exit, fun(N) -> {_, R} = spawn_monitor(N, erlang, exit, [x]), down_reason(R) end},
             {spawn_apply3_error, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [erlang, error, [x]]), down_reason(R) end},
             {spawn_apply2_error, fun(N) -> {_, R} = spawn_monitor(N, erlang, apply, [fun erlang:error/1, [x]]), down_reason(R) end},
             {pinfo_notpid, fun(N) -> caught(fun() -> erpc:call(N, erlang, process_info, [x]) end) end},
             {pinfo_apply3_notpid, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [erlang, process_info, [x]]) end) end},
             {pinfo_apply2_notpid, fun(N) -> caught(fun() -> erpc:call(N, erlang, apply, [fun erlang:process_info/1, [x]]) end) end},
             {pinfo_remote_pid, fun(N) -> rpc:call(N, erlang, process_info, [self()]) end},
             {pinfo_remote_pid2, fun(N) -> rpc:call(N, erlang, process_info, [self(), status]) end},
             {pinfo_badkey, fun(N) -> rpc:pinfo(erpc:call(N, erlang, whereis, [rex]), no_such_key) end},
             {pinfo_badkeys, fun(N) -> rpc:pinfo(erpc:call(N, erlang, whereis, [rex]), [status, no_such_key]) end},
             {pinfo_improper, fun(N) -> rpc:pinfo(erpc:call(N, erlang, whereis, [rex]), [status | links]) end},
             {pinfo_empty, fun(N) -> rpc:pinfo(erpc:call(N, erlang, whereis, [rex]), []) end},
             {spawn_pinfo_notpid, fun(N) -> {_, R} = spawn_monitor(N, erlang, process_info, [x]), down_reason(R) end},
             {sysinfo_badarg, fun(N) -> caught(fun() -> erpc:call(N, erlang, system_info, [no_such_key]) end) end},
             {whereis_badarg, fun(N) -> caught(fun() -> erpc:call(N, erlang, whereis, ["x"]) end) end},
             {memory_badarg, fun(N) -> caught(fun() -> erpc:call(N, erlang, memory, [no_such_key]) end) end},
             {nodes_badarg, fun(N) -> caught(fun() -> erpc:call(N, erlang, nodes, [no_such_key]) end) end}],
        Run = fun(N) -> flush(), [{Name, norm(F(N), N)} || {Name, F} <- Cases] end,
        Beam = Run(PN),
        C = Run(W),
        ?assertEqual(Beam, C),
        %% and the answers are the ones meant (not, say, both timeouts)
        ?assertEqual({error, {exception, undef, [{L, [], []}, {erlang, apply, 2, []}]}},
                     proplists:get_value(fun_local, C)),
        ?assertEqual({value, 'NODE'}, proplists:get_value(fun_ext, C)),
        ?assertEqual('NODE', proplists:get_value(block_node, C)),
        ?assertEqual({badrpc, {'EXIT', {undef, [{nomod, f, [1], []}]}}},
                     proplists:get_value(block_undef, C)),
        ?assertEqual({undef, [{L, [], []}]}, proplists:get_value(spawn_fun_local, C)),
        ?assertEqual({features_reply, 'NODE', [erpc]}, proplists:get_value(rex_features, C)),
        ?assertEqual({['NODE'], []}, proplists:get_value(sbcast, C)),
        ?assertEqual({[], ['NODE']}, proplists:get_value(sbcast_missing, C)),
        ?assertMatch({exit, {timeout, _}}, proplists:get_value(rex_call_unknown, C)),
        ?assertEqual({error, {exception, x, [{erlang, error, [x], []}]}},
                     proplists:get_value(error1, C)),
        ?assertEqual({throw, x}, proplists:get_value(throw1, C)),
        ?assertEqual({exit, {exception, x}}, proplists:get_value(exit1, C)),
        ?assertEqual({{nocatch, x}, [{erts_internal, dist_spawn_init, 1, []}]},
                     proplists:get_value(spawn_throw, C)),
        ?assertMatch({error, {exception, badarg, [{erlang, process_info, [x], [{error_info, _}]}]}},
                     proplists:get_value(pinfo_notpid, C))
    after
        bl_test_util:stop_peer(Peer)
    end,
    ?assert(lists:member(W, nodes(hidden))).

%% rpc:pinfo/1,2 (erlang:process_info/1,2 run on the pid's node) of C processes against the same
%% of BEAM processes in the same states: the same keys in the same order, values of the same
%% types, and equal where the state is the same (links, monitors, names, status, dead pids).
pinfo(#{w := W}) ->
    {Peer, PN} = bl_test_util:start_peer("pinfo"),
    Self = self(),
    Items = [registered_name, current_function, initial_call, status, message_queue_len, messages,
             links, monitors, monitored_by, dictionary, trap_exit, error_handler, priority,
             group_leader, total_heap_size, heap_size, stack_size, reductions, garbage_collection,
             suspending, memory, backtrace, binary, catchlevel, current_location,
             current_stacktrace, fullsweep_after, garbage_collection_info, last_calls,
             message_queue_data, min_heap_size, min_bin_vheap_size, parent,
             sequential_trace_token],
    try
        %% a registered process each side, linked to and monitored by this process
        BP = erpc:call(PN, erlang, spawn, [timer, sleep, [infinity]]),
        true = erpc:call(PN, erlang, register, [pinfo_reg, BP]),
        {ok, CP} = ctl(W, {spawn_named, pinfo_reg}),
        Mons = [begin link(P), erlang:monitor(process, P) end || P <- [BP, CP]],
        %% an unregistered one, running a function (C: an export answering later)
        BU = spawn(PN, timer, sleep, [infinity]),
        CU = spawn(W, tw, later, [60000, x]),
        %% dead ones
        BD = spawn(PN, erlang, node, []),
        CD = spawn(W, erlang, node, []),
        timer:sleep(300),
        Of = fun(P) ->
                     All = rpc:pinfo(P),
                     One = [{I, rpc:pinfo(P, I)} || I <- Items],
                     {All, One, rpc:pinfo(P, Items)}
             end,
        {BAll, BOne0, BList0} = Of(BP),
        {CAll, COne0, CList0} = Of(CP),
        %% parent: BP was spawned by an erpc process; CP by the C node itself, which has no
        %% parent process to name (undefined, as BEAM's for init). Spawned ones compare below.
        NoParent = fun(L) -> [E || E <- L, element(1, E) =/= parent] end,
        {BOne, COne, BList, CList} = {NoParent(BOne0), NoParent(COne0), NoParent(BList0), NoParent(CList0)},
        ?assertEqual({parent, undefined}, rpc:pinfo(CP, parent)),
        ?assertEqual(keys(BAll), keys(CAll)),
        ?assertEqual([], differ(shape(BAll), shape(CAll))),
        ?assertEqual([], differ(shape(BOne), shape(COne))),
        ?assertEqual([], differ(shape(BList), shape(CList))),
        Same = [registered_name, status, message_queue_len, messages, links, monitors,
                monitored_by, dictionary, trap_exit, error_handler, priority, suspending,
                binary, catchlevel, last_calls, sequential_trace_token],
        Pick = fun(L) -> [{K, norm(V, node(BP))} || {K, V} <- L, lists:member(K, Same)] end,
        ?assertEqual(Pick(BList), Pick(CList)),
        ?assertEqual({links, [Self]}, rpc:pinfo(CP, links)),
        ?assertEqual({monitored_by, [Self]}, rpc:pinfo(CP, monitored_by)),
        ?assertEqual({registered_name, pinfo_reg}, rpc:pinfo(CP, registered_name)),
        ?assertEqual(keys(garbage_collection(BAll)), keys(garbage_collection(CAll))),
        %% not registered: no registered_name in the list; [] asked alone; {registered_name, []}
        {BUAll, _, BUList} = Of(BU),
        {CUAll, _, CUList} = Of(CU),
        ?assertEqual(keys(BUAll), keys(CUAll)),
        ?assertNot(lists:keymember(registered_name, 1, CUAll)),
        ?assertEqual([], differ(shape(BUList), shape(CUList))),
        ?assertEqual({[], []}, {rpc:pinfo(BU, registered_name), rpc:pinfo(CU, registered_name)}),
        ?assertEqual({current_function, {tw, later, 2}}, rpc:pinfo(CU, current_function)),
        ?assertEqual({initial_call, {tw, later, 2}}, rpc:pinfo(CU, initial_call)),
        ?assertEqual({{parent, Self}, {parent, Self}}, {rpc:pinfo(BU, parent), rpc:pinfo(CU, parent)}),
        ?assertEqual({current_function, {beamlet, c_process, 0}}, rpc:pinfo(CP, current_function)),
        %% dead: undefined, every form
        Dead = fun(P) -> [rpc:pinfo(P), rpc:pinfo(P, status), rpc:pinfo(P, [status, links])] end,
        ?assertEqual([undefined, undefined, undefined], Dead(BD)),
        ?assertEqual(Dead(BD), Dead(CD)),
        %% trap_exit follows the process's flag; unlink and demonitor leave nothing behind
        ?assertEqual({trap_exit, false}, rpc:pinfo(CP, trap_exit)),
        [unlink(P) || P <- [BP, CP]],
        [erlang:demonitor(R, [flush]) || R <- Mons],
        timer:sleep(200),
        ?assertEqual({{links, []}, {monitored_by, []}},
                     {rpc:pinfo(CP, links), rpc:pinfo(CP, monitored_by)}),
        exit(CU, kill)
    after
        %% a failed assertion must not turn into this process's noconnection exit
        {links, Ls} = process_info(self(), links),
        [unlink(P) || P <- Ls, is_pid(P), node(P) =/= node()],
        bl_test_util:stop_peer(Peer)
    end.

keys(L) -> [K || {K, _} <- L].

%% The elements where two lists of one length differ (all of both when the lengths do not match).
differ(A, B) when length(A) =:= length(B) -> [{X, Y} || {X, Y} <- lists:zip(A, B), X =/= Y];
differ(A, B) -> [{A, B}].

garbage_collection(L) -> proplists:get_value(garbage_collection, L).

%% A term's shape: its types, with lists of any length alike (a link list, a message queue).
shape(L) when is_list(L) -> [shape_el(E) || E <- L];
shape(X) -> shape_el(X).

shape_el({K, V}) when is_atom(K) -> {K, type(V)};
shape_el(X) -> type(X).

type(X) when is_atom(X) -> atom;
type(X) when is_integer(X) -> integer;
type(X) when is_pid(X) -> pid;
type(X) when is_binary(X) -> binary;
type(X) when is_list(X) -> list;
type(X) when is_map(X) -> map;
type(X) when is_tuple(X) -> list_to_tuple([type(E) || E <- tuple_to_list(X)]);
type(_) -> other.

rex_c(#{w := W, w2 := W2}) ->
    flush(),
    ?assertEqual(5, rpc:block_call(W, tw, add, [2, 3])),
    ?assertEqual({badrpc, {'EXIT', {boom, [{tw, fail, 1, []}]}}}, rpc:block_call(W, tw, fail, [boom])),
    ?assertEqual(ball, rpc:block_call(W, tw, throw, [ball])),
    ?assertEqual({badrpc, {'EXIT', bye}}, rpc:block_call(W, tw, exit, [bye])),
    ?assertEqual(v, rpc:block_call(W, tw, later, [100, v])),
    ?assertEqual({badrpc, timeout}, rpc:block_call(W, tw, later, [3000, v], 200)),
    %% through erlang:apply with an external fun
    ?assertEqual(7, rpc:block_call(W, erlang, apply, [fun tw:add/2, [3, 4]])),
    ?assertEqual({badrpc, {'EXIT', {boom, [{tw, fail, 1, []}, {erlang, apply, 2, []}]}}},
                 rpc:block_call(W, erlang, apply, [fun tw:fail/1, [boom]])),
    ?assertEqual(7, erpc:call(W, erlang, apply, [fun tw:add/2, [3, 4]])),
    ?assertEqual({error, {exception, boom, [{tw, fail, 1, []}, {erlang, apply, 3, []}]}},
                 caught(fun() -> erpc:call(W, erlang, apply, [tw, fail, [boom]]) end)),
    %% the other forms
    ?assertEqual(3, gen_server:call({rex, W}, {call, tw, add, [1, 2], user})),
    {rex, W} ! {self(), {call, tw, add, [1, 2], self()}},
    ?assertEqual({rex, 3}, got(5000)),
    ok = gen_server:cast({rex, W}, {cast, tw, notify, [self(), rex_cast], user}),
    ?assertEqual(rex_cast, got(5000)),
    %% a block_call that does not answer holds up nobody else (no rex pool waiting on itself)
    Self = self(),
    Parked = spawn(fun() -> Self ! {parked_result, rpc:block_call(W, tw, park, [Self])} end),
    P = receive {parked, Pid} -> Pid after 5000 -> error(not_parked) end,
    ?assertEqual(W, rpc:block_call(W, erlang, node, [])),
    %% ended before it answered: rex's {badrpc, {'EXIT', Reason}}, the real reason
    exit(P, {custom, 1}),
    ?assertEqual({parked_result, {badrpc, {'EXIT', {custom, 1}}}},
                 receive {parked_result, _} = PR -> PR after 5000 -> {timeout, Parked} end),
    %% C to C: bl_rpc is a rex client, and the C node's rex answers it
    ?assertEqual({ok, 3}, ctl(W, {rpc, W2, tw, add, [1, 2]})),
    ?assertEqual({badrpc, {'EXIT', {undef, [{tw, nope, [], []}]}}}, ctl(W, {rpc, W2, tw, nope, []})),
    ?assertEqual({ok, W2}, ctl(W, {rpc, W2, erlang, apply, [fun erlang:node/0, []]})),
    ?assertEqual({ok, W2}, ctl(W, {erpc, W2, erlang, apply, [fun erlang:node/0, []], 5000})),
    %% an ei program: OTP's erl_call (ei_rpc, the {From, {call, ...}} form) answered by rex; the
    %% node's services tell it nothing first (ei_rpc takes the first message as the answer)
    EC = filename:join(code:lib_dir(erl_interface), "bin/erl_call"),
    [Alias, _] = string:split(atom_to_list(W), "@"),
    Call = fun(Apply) ->
                   os:cmd(lists:flatten(io_lib:format("timeout 20 ~s -sname ~s -c '~s' -a '~s'",
                                                      [EC, Alias, os:getenv("BL_COOKIE"), Apply])))
           end,
    ?assertEqual("3", Call("tw add [1, 2]")),
    ?assertEqual(atom_to_list(W), Call("erlang node")),
    ?assertEqual("{badrpc, {'EXIT', {undef, [{tw, nope, [], []}]}}}", Call("tw nope")).

rex_bad(#{w := W}) ->
    flush(),
    ?assertMatch({exit, {timeout, _}}, caught(fun() -> gen_server:call({rex, W}, garbage, 300) end)),
    ok = gen_server:cast({rex, W}, garbage),
    {rex, W} ! garbage,
    {rex, W} ! {not_a_pid, {call, erlang, node, [], user}},
    {rex, W} ! {self(), {sbcast, "not a name", x}},
    ?assertEqual({rex, W, {nonexisting_name, "not a name"}}, got(5000)),
    %% apply nested deeper than the node follows: system_limit, not a crash
    Deep = lists:foldl(fun(_, A) -> [erlang, apply, A] end, [erlang, node, []], lists:seq(1, 40)),
    ?assertMatch({error, {exception, system_limit, _}},
                 caught(fun() -> erpc:call(W, erlang, apply, Deep) end)),
    ?assertEqual(W, rpc:block_call(W, erlang, node, [])),
    ?assert(bl_test_util:log_contains(W, "rex: dropped a gen_server call", 5000)),
    ?assert(bl_test_util:log_contains(W, "rex: dropped a message", 5000)),
    ?assert(lists:member(W, nodes(hidden))).

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
    %% the built-in erlang:error/1 and throw/1 of a C node, as BEAM's print
    {1, CExc} = Rpc(W, "erlang error '[boom]'"),
    ?assertNotEqual(nomatch, string:find(NoSp(CExc), "{error,boom,[{erlang,error,[boom],[]}]}")),
    {1, CThrow} = Rpc(W, "erlang throw '[ball]'"),
    ?assertNotEqual(nomatch, string:find(NoSp(CThrow), "{throw,ball,")),
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
