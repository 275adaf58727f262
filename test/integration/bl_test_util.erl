%% bl_test_util - helpers for the beamlet integration tests (EUnit, see run.sh).
%%
%% Owns every OS process the tests start (a registered gen_server, bl_test_nodes, holds the ports so
%% that a test process crashing cannot orphan a node), starts/stops beamlet binaries and peer `erl`
%% nodes, and runs the suite (run/1), writing "integration Passed Failed" to $BL_RESULTS.
%%
%% Environment: BEAMLET_BIN, TEST_WORKER_BIN, BL_COOKIE, BL_LOG_DIR, BL_RESULTS, BL_PIDFILE.
-module(bl_test_util).
-behaviour(gen_server).

-export([run/1]).
-export([cookie/0, host/0, ticktime/0, unique/1, log_dir/0, ebin_dir/0]).
-export([start_beamlet/2, start_worker/2, start_node/3, wait_up/2, kill/1, term/1, wait_exit/2, status/1,
         os_pid/1, log_file/1, log_contains/3, log_text/1, log_tail/1, stop_all/0, nodes_info/0,
         start_peer/1, start_peer/2, stop_peer/1]).
-export([ctl/2, ctl/3, flush/0, wait_until/2, recv/2, drain/1, node_alias/1, to_str/1,
         admin/2, admin/3, sh/1, peer_send_watch/3]).
-export([spawn_raw/3, expect_exit/1, counter_start/0, counter_get/0]).
-export([start_registry/0]).
-export([member_args/3, join_args/1, view/1, agree/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(REG, bl_test_nodes).
-define(LOG_MARK, "#bl-test# ").

%%% ------------------------------------------------------------------ environment

env(Name) ->
    case os:getenv(Name) of
        false -> error({missing_env, Name});
        "" -> error({missing_env, Name});
        V -> V
    end.

cookie() -> env("BL_COOKIE").

log_dir() ->
    case os:getenv("BL_LOG_DIR") of
        false -> "build/test-logs";
        "" -> "build/test-logs";
        D -> D
    end.

host() ->
    [_, H] = string:split(atom_to_list(node()), "@"),
    H.

ticktime() ->
    case net_kernel:get_net_ticktime() of
        T when is_integer(T) -> T;
        {_, T} -> T
    end.

ebin_dir() -> filename:dirname(code:which(?MODULE)).

unique(Tag) ->
    lists:flatten(io_lib:format("bl_~s_~s_~b",
                                [Tag, os:getpid(), erlang:unique_integer([positive])])).

node_alias(Node) ->
    [A, _] = string:split(atom_to_list(Node), "@"),
    A.

to_str(A) when is_atom(A) -> atom_to_list(A);
to_str(B) when is_binary(B) -> unicode:characters_to_list(B);
to_str(L) when is_list(L) -> L;
to_str(X) -> lists:flatten(io_lib:format("~p", [X])).

%%% ------------------------------------------------------------------ running the suite

%% Called by run.sh: erl ... -eval 'bl_test_util:run([mod1, mod2])'.
run(Mods) ->
    {ok, _} = start_registry(),
    Self = self(),
    Res = (catch eunit:test(Mods, [verbose, {report, {bl_eunit_counter, [{parent, Self}]}}])),
    {Pass, Fail} =
        receive
            {bl_eunit_counts, Data} ->
                {proplists:get_value(pass, Data, 0),
                 proplists:get_value(fail, Data, 0) + proplists:get_value(cancel, Data, 0)}
        after 10000 ->
            {0, 1}
        end,
    Left = stop_all(),
    [io:format("~p: ~p~n", [N, S]) || {N, S} <- Left],
    Failed = case Res of ok -> Fail; _ when Fail =:= 0 -> 1; _ -> Fail end,
    io:format("integration: ~b passed, ~b failed (eunit returned ~p)~n", [Pass, Failed, Res]),
    case os:getenv("BL_RESULTS") of
        false -> ok;
        "" -> ok;
        File -> ok = file:write_file(File, io_lib:format("integration ~b ~b~n", [Pass, Failed]),
                                     [append])
    end,
    halt(case Failed of 0 -> 0; _ -> 1 end).

%%% ------------------------------------------------------------------ node registry API

start_registry() ->
    case whereis(?REG) of
        undefined -> gen_server:start({local, ?REG}, ?MODULE, [], []);
        Pid -> {ok, Pid}
    end.

%% A beamlet node (BEAMLET_BIN node ...). Returns the node name once it answers net_adm:ping.
start_beamlet(Tag, Extra) ->
    Alias = unique(Tag),
    Args = ["node", "--sname", Alias, "--cookie", cookie(),
            "--net-ticktime", integer_to_list(ticktime()) | Extra],
    start_node(Alias, env("BEAMLET_BIN"), Args).

%% A test_worker node (TEST_WORKER_BIN ...).
start_worker(Tag, Extra) ->
    Alias = unique(Tag),
    Args = ["--sname", Alias, "--cookie", cookie(),
            "--net-ticktime", integer_to_list(ticktime()) | Extra],
    start_node(Alias, env("TEST_WORKER_BIN"), Args).

%% Start an OS process registered under Key (an atom) without waiting for anything.
spawn_raw(Key, Bin, Args) ->
    {ok, _} = start_registry(),
    Log = filename:absname(filename:join(log_dir(), atom_to_list(Key) ++ ".log")),
    ok = filelib:ensure_dir(Log),
    ok = gen_server:call(?REG, {open, Key, Bin, Args, Log}),
    Key.

%% Mark a process as expected to exit on its own (the final sanity check skips it).
expect_exit(Key) ->
    gen_server:call(?REG, {expect_exit, Key}).

start_node(Alias, Bin, Args) ->
    {ok, _} = start_registry(),
    Node = list_to_atom(Alias ++ "@" ++ host()),
    Log = filename:absname(filename:join(log_dir(), Alias ++ ".log")),
    ok = filelib:ensure_dir(Log),
    ok = gen_server:call(?REG, {open, Node, Bin, Args, Log}),
    case wait_up(Node, 15000) of
        ok -> Node;
        Err -> error({node_not_up, Node, Err, log_tail(Node)})
    end.

%% Poll net_adm:ping until pong (bounded); stop early if the OS process exited.
wait_up(Node, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_up_loop(Node, Deadline).

wait_up_loop(Node, Deadline) ->
    case net_adm:ping(Node) of
        pong -> ok;
        pang ->
            case status(Node) of
                {exited, _} = E -> {error, E};
                _ ->
                    case erlang:monotonic_time(millisecond) > Deadline of
                        true -> {error, timeout};
                        false -> timer:sleep(100), wait_up_loop(Node, Deadline)
                    end
            end
    end.

os_pid(Node) -> maps:get(ospid, info(Node)).
log_file(Node) -> maps:get(log, info(Node)).
status(Node) -> maps:get(status, info(Node), unknown).
info(Node) -> gen_server:call(?REG, {info, Node}).
nodes_info() -> gen_server:call(?REG, nodes).

%% kill -9; returns the exit status.
kill(Node) ->
    ok = gen_server:call(?REG, {signal, Node, kill}),
    wait_exit(Node, 5000).

%% SIGTERM; returns {exited, Code} or timeout.
term(Node) ->
    ok = gen_server:call(?REG, {signal, Node, term}),
    wait_exit(Node, 10000).

wait_exit(Node, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_exit_loop(Node, Deadline).

wait_exit_loop(Node, Deadline) ->
    case status(Node) of
        {exited, _} = E -> E;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> timeout;
                false -> timer:sleep(50), wait_exit_loop(Node, Deadline)
            end
    end.

%% SIGTERM every running node (kill -9 after 30 s: LeakSanitizer's exit scan of an ASan node can take
%% over 10 s on a loaded machine, and a kill during it leaves a report), stop every peer. Returns [{Node, Status}].
stop_all() ->
    case whereis(?REG) of
        undefined -> [];
        _ ->
            Running = [N || {N, #{status := running}} <- nodes_info()],
            [gen_server:call(?REG, {signal, N, term}) || N <- Running],
            Res = [{N, case wait_exit(N, 30000) of
                           timeout -> kill(N), timeout_after_sigterm;
                           S -> S
                       end} || N <- Running],
            gen_server:call(?REG, stop_peers, 30000),
            Res
    end.

%%% ------------------------------------------------------------------ logs

log_text(Node) ->
    case file:read_file(log_file(Node)) of
        {ok, B} -> B;
        _ -> <<>>
    end.

log_tail(Node) ->
    B = log_text(Node),
    S = byte_size(B),
    binary:part(B, max(0, S - 3000), min(S, 3000)).

log_contains(Node, Sub, Timeout) ->
    wait_until(fun() -> binary:match(log_text(Node), list_to_binary(Sub)) =/= nomatch end,
               Timeout).

%%% ------------------------------------------------------------------ peers

start_peer(Tag) -> start_peer(Tag, cookie()).

%% A peer erl node controlled over stdio (so the runner has no distribution connection to it).
start_peer(Tag, Cookie) ->
    Alias = unique(Tag),
    {ok, Peer, Node} =
        peer:start(#{name => Alias, connection => standard_io, wait_boot => 30000,
                     args => ["-setcookie", Cookie,
                              "-kernel", "net_ticktime", integer_to_list(ticktime()),
                              "-pa", ebin_dir()]}),
    ok = gen_server:call(?REG, {peer, Peer}),
    {Peer, Node}.

stop_peer(Peer) ->
    catch peer:stop(Peer),
    ok.

%% Runs on a peer node: send a message of Size bytes to Dest on Node and report whether the
%% connection to Node goes down.
peer_send_watch(Node, Dest, Size) ->
    true = erlang:monitor_node(Node, true),
    Dest ! {self(), binary:copy(<<"x">>, Size)},
    receive
        {nodedown, Node} -> nodedown;
        {echo, _} -> got_echo
    after 10000 -> no_nodedown
    end.

%% Run on a peer node: a registered process counting every message it gets.
counter_start() ->
    Pid = spawn(fun() -> counter_loop(0) end),
    true = register(bl_counter, Pid),
    Pid.

counter_loop(N) ->
    receive
        {bl_counter_get, From} -> From ! {bl_count, N}, counter_loop(N);
        _ -> counter_loop(N + 1)
    end.

counter_get() ->
    bl_counter ! {bl_counter_get, self()},
    receive {bl_count, N} -> N after 5000 -> timeout end.

%%% ------------------------------------------------------------------ small helpers

ctl(Node, Req) -> ctl(Node, Req, 15000).
ctl(Node, Req, Timeout) -> gen_server:call({ctl, Node}, Req, Timeout).

flush() ->
    receive _ -> flush() after 0 -> ok end.

%% Poll Fun until it returns true; true | false.
wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_until_loop(Fun, Deadline).

wait_until_loop(Fun, Deadline) ->
    case (catch Fun()) of
        true -> true;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> timer:sleep(50), wait_until_loop(Fun, Deadline)
            end
    end.

%%% ------------------------------------------------------------------ clusters

%% The flags of a member with Role in Cluster that joins the seeds Join ([] for the first one).
member_args(Role, Cluster, Join) ->
    ["--role", Role, "--cluster", Cluster | join_args(Join)].

join_args([]) -> [];
join_args(Join) -> ["--join", string:join([atom_to_list(J) || J <- Join], ",")].

%% [{Node, State}] of the beamlet members N lists, sorted.
view(N) ->
    lists:sort([{maps:get(node, M), maps:get(state, M)}
                || M <- gen_server:call({beamlet_cluster, N}, members, 5000),
                   maps:get(kind, M) =:= beamlet]).

%% Every node of Nodes lists exactly Nodes, all active, within Timeout ms; true | false.
agree(Nodes, Timeout) ->
    Expected = lists:sort([{N, active} || N <- Nodes]),
    wait_until(fun() -> lists:all(fun(N) -> view(N) =:= Expected end, Nodes) end, Timeout).

%% Receive a message matching Pred (fun returning boolean) within Timeout; {ok, Msg} | timeout.
recv(Pred, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    recv_loop(Pred, Deadline, []).

recv_loop(Pred, Deadline, Skipped) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        Msg ->
            case Pred(Msg) of
                true -> [self() ! S || S <- lists:reverse(Skipped)], {ok, Msg};
                false -> recv_loop(Pred, Deadline, [Msg | Skipped])
            end
    after Left ->
        [self() ! S || S <- lists:reverse(Skipped)],
        timeout
    end.

%% All messages currently in the mailbox matching Pred (removed), others kept.
drain(Pred) ->
    drain(Pred, [], []).
drain(Pred, Hit, Kept) ->
    receive
        M ->
            case Pred(M) of
                true -> drain(Pred, [M | Hit], Kept);
                false -> drain(Pred, Hit, [M | Kept])
            end
    after 0 ->
        [self() ! K || K <- lists:reverse(Kept)],
        lists:reverse(Hit)
    end.

%% Run the admin CLI: {ExitCode, Output}.
admin(Cmd, Node) -> admin(Cmd, Node, cookie()).
admin(Cmd, Node, Cookie) ->
    sh(io_lib:format("timeout 20 '~s' ~s '~s' --cookie '~s'",
                     [env("BEAMLET_BIN"), Cmd, to_str(Node), Cookie])).

%% Run a shell command line: {ExitCode, Output (stdout and stderr)}.
sh(Cmd) ->
    Out = os:cmd(lists:flatten([Cmd, " 2>&1; echo \"rc=$?\""])),
    case string:find(Out, "rc=", trailing) of
        nomatch -> {undefined, Out};
        RcPart ->
            Code = list_to_integer(string:trim(string:slice(RcPart, 3))),
            {Code, string:slice(Out, 0, length(Out) - length(RcPart))}
    end.

%%% ------------------------------------------------------------------ registry gen_server

init([]) ->
    process_flag(trap_exit, true),
    {ok, #{nodes => #{}, ports => #{}, peers => []}}.

handle_call({open, Node, Bin, Args, Log}, _From, S = #{nodes := Ns, ports := Ps}) ->
    Header = io_lib:format(?LOG_MARK "~s start: ~s~n",
                           [calendar:system_time_to_rfc3339(erlang:system_time(second)),
                            lists:join(" ", [Bin | Args])]),
    ok = file:write_file(Log, Header, [append]),
    Script = "log=\"$1\"; shift; exec \"$@\" >>\"$log\" 2>&1",
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", Script, "sh", Log, Bin | Args]}, exit_status, binary]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    record_pid(OsPid),
    Info = #{port => Port, ospid => OsPid, log => Log, status => running, signal => none,
             bin => Bin},
    {reply, ok, S#{nodes := Ns#{Node => Info}, ports := Ps#{Port => Node}}};
handle_call({info, Node}, _From, S = #{nodes := Ns}) ->
    {reply, maps:get(Node, Ns, #{}), S};
handle_call(nodes, _From, S = #{nodes := Ns}) ->
    {reply, maps:to_list(Ns), S};
handle_call({signal, Node, Sig}, _From, S = #{nodes := Ns}) ->
    case maps:find(Node, Ns) of
        {ok, I = #{status := running, ospid := OsPid}} ->
            Flag = case Sig of kill -> "-KILL"; term -> "-TERM" end,
            _ = os:cmd("kill " ++ Flag ++ " " ++ integer_to_list(OsPid)),
            Prev = maps:get(signal, I),
            NewSig = case Prev of kill -> kill; _ -> Sig end,
            {reply, ok, S#{nodes := Ns#{Node := I#{signal := NewSig}}}};
        {ok, _} -> {reply, ok, S};
        error -> {reply, {error, unknown_node}, S}
    end;
handle_call({expect_exit, Node}, _From, S = #{nodes := Ns}) ->
    I = maps:get(Node, Ns),
    {reply, ok, S#{nodes := Ns#{Node := I#{signal := expected}}}};
handle_call({peer, Peer}, _From, S = #{peers := Peers}) ->
    link(Peer),
    {reply, ok, S#{peers := [Peer | Peers]}};
handle_call(stop_peers, _From, S = #{peers := Peers}) ->
    [catch peer:stop(P) || P <- Peers, is_process_alive(P)],
    {reply, ok, S#{peers := []}}.

handle_cast(_, S) -> {noreply, S}.

handle_info({Port, {exit_status, Code}}, S = #{nodes := Ns, ports := Ps}) ->
    case maps:find(Port, Ps) of
        {ok, Node} ->
            I = maps:get(Node, Ns),
            Log = maps:get(log, I),
            _ = file:write_file(Log, io_lib:format(?LOG_MARK "exit status ~b (signal sent: ~p)~n",
                                                   [Code, maps:get(signal, I)]), [append]),
            {noreply, S#{nodes := Ns#{Node := I#{status := {exited, Code}}}}};
        error -> {noreply, S}
    end;
handle_info({Port, {data, _}}, S) when is_port(Port) ->
    {noreply, S};
handle_info({'EXIT', _, _}, S) ->
    {noreply, S};
handle_info(_, S) ->
    {noreply, S}.

terminate(_, #{nodes := Ns}) ->
    [os:cmd("kill -KILL " ++ integer_to_list(P)) || {_, #{status := running, ospid := P}} <- maps:to_list(Ns)],
    ok.

record_pid(OsPid) ->
    case os:getenv("BL_PIDFILE") of
        false -> ok;
        "" -> ok;
        F -> file:write_file(F, [integer_to_list(OsPid), $\n], [append])
    end.
