%% shim_test_util - helpers for the erlang_shim EUnit tests (see run.sh).
%%
%% run/1 runs the suite verbosely and appends "shim Passed Failed" to $BL_RESULTS. Raw beamlet nodes
%% (not supervised by the shim, for nodedown/monitor/discovery tests) are owned by a registered
%% process so a failing test cannot orphan them; every node name starts with $BL_SHIM_PREFIX so
%% run.sh can find leftovers by pid.
-module(shim_test_util).

-export([run/1, name/1, prefix/0, node_name/1, host/0, beamlet_bin/0, cookie/0,
         start_raw/1, start_raw/2, kill_raw/1, stop_all_raw/0,
         os_alive/1, wait_until/2, kill_os/2, start_app/0, stop_app/0, worker/1, worker/2,
         flush/0, with_logger_capture/1, captured/0]).

-define(REG, shim_test_raw).

%%% ------------------------------------------------------------------ running

run(Mods) ->
    Self = self(),
    Res = (catch eunit:test(Mods, [verbose, {report, {bl_eunit_counter, [{parent, Self}]}}])),
    {Pass, Fail} =
        receive
            {bl_eunit_counts, Data} ->
                {proplists:get_value(pass, Data, 0),
                 proplists:get_value(fail, Data, 0) + proplists:get_value(cancel, Data, 0)}
        after 10000 -> {0, 1}
        end,
    stop_all_raw(),
    catch stop_app(),
    Failed = case Res of ok -> Fail; _ when Fail =:= 0 -> 1; _ -> Fail end,
    Suite = os:getenv("BL_SUITE", "shim"),
    io:format("~s: ~b passed, ~b failed (eunit returned ~p)~n", [Suite, Pass, Failed, Res]),
    case os:getenv("BL_RESULTS") of
        F when is_list(F), F =/= "" ->
            ok = file:write_file(F, io_lib:format("~s ~b ~b~n", [Suite, Pass, Failed]), [append]);
        _ -> ok
    end,
    halt(case Failed of 0 -> 0; _ -> 1 end).

%%% ------------------------------------------------------------------ names and env

prefix() ->
    case os:getenv("BL_SHIM_PREFIX") of
        P when is_list(P), P =/= "" -> P;
        _ -> "blshim" ++ os:getpid() ++ "_"
    end.

%% A unique short node name (alias only).
name(Tag) ->
    prefix() ++ Tag ++ "_" ++ integer_to_list(erlang:unique_integer([positive])).

host() ->
    [_, H] = string:split(atom_to_list(node()), "@"),
    H.

node_name(Alias) -> list_to_atom(Alias ++ "@" ++ host()).

beamlet_bin() ->
    case os:getenv("BEAMLET_BIN") of
        B when is_list(B), B =/= "" -> B;
        _ -> error(no_beamlet_bin)
    end.

cookie() -> atom_to_list(erlang:get_cookie()).

%%% ------------------------------------------------------------------ the app and workers

start_app() ->
    {ok, _} = application:ensure_all_started(beamlet),
    ok.

stop_app() ->
    _ = application:stop(beamlet),
    ok.

worker(Tag) -> worker(Tag, #{}).

%% Start a supervised worker; returns its node.
worker(Tag, Extra) ->
    Opts = maps:merge(#{name => name(Tag), start_timeout => 15000}, Extra),
    case beamlet:start_worker(Opts) of
        {ok, Node} -> Node;
        Err -> error({worker_start_failed, Tag, Err})
    end.

%%% ------------------------------------------------------------------ raw nodes

%% A beamlet node run as a port owned by the ?REG process (not supervised by the shim).
start_raw(Tag) -> start_raw(Tag, []).

start_raw(Tag, Extra) ->
    ensure_reg(),
    Alias = name(Tag),
    Node = node_name(Alias),
    {ok, OsPid} = call_reg({open, Alias, Extra}),
    true = wait_until(fun() -> net_adm:ping(Node) =:= pong end, 15000),
    {Node, OsPid}.

kill_raw({_Node, OsPid}) ->
    kill_os(OsPid, "KILL"),
    true = wait_until(fun() -> not os_alive(OsPid) end, 5000),
    ok.

stop_all_raw() ->
    case whereis(?REG) of
        undefined -> ok;
        _ -> call_reg(stop_all)
    end.

ensure_reg() ->
    case whereis(?REG) of
        undefined ->
            Parent = self(),
            Pid = spawn(fun() -> register(?REG, self()), Parent ! {self(), ready}, reg_loop([]) end),
            receive {Pid, ready} -> ok after 5000 -> error(reg_start) end;
        _ -> ok
    end.

call_reg(Req) ->
    Ref = make_ref(),
    ?REG ! {Req, self(), Ref},
    receive {Ref, R} -> R after 30000 -> error({reg_timeout, Req}) end.

reg_loop(Pids) ->
    receive
        {{open, Alias, Extra}, From, Ref} ->
            Args = ["node", "--sname", Alias | Extra],
            try open_port({spawn_executable, beamlet_bin()},
                          [{args, Args}, {env, [{"COOKIE", cookie()}]}, exit_status, binary,
                           stderr_to_stdout]) of
                Port ->
                    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
                    From ! {Ref, {ok, OsPid}},
                    reg_loop([OsPid | Pids])
            catch error:E ->
                    From ! {Ref, {error, E}},
                    reg_loop(Pids)
            end;
        {stop_all, From, Ref} ->
            [kill_os(P, "KILL") || P <- Pids, os_alive(P)],
            From ! {Ref, ok},
            reg_loop([]);
        _ -> reg_loop(Pids)
    end.

%%% ------------------------------------------------------------------ OS processes

kill_os(OsPid, Sig) ->
    _ = os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok.

%% Alive and not a zombie.
os_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, After] = binary:split(Stat, <<") ">>),
            binary:first(After) =/= $Z;
        {error, _} -> false
    end.

%%% ------------------------------------------------------------------ misc

wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_loop(Fun, Deadline).

wait_loop(Fun, Deadline) ->
    case (catch Fun()) of
        true -> true;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> timer:sleep(50), wait_loop(Fun, Deadline)
            end
    end.

flush() ->
    receive _ -> flush() after 0 -> ok end.

%% Capture logger events that carry beamlet_node metadata into an ETS table while Fun runs.
with_logger_capture(Fun) ->
    Tab = ets:new(shim_log_capture, [public, named_table, bag]),
    #{level := Primary} = logger:get_primary_config(),
    ok = logger:set_handler_config(default, level, Primary),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(shim_capture, shim_test_log_handler, #{level => all}),
    try Fun()
    after
        _ = logger:remove_handler(shim_capture),
        ok = logger:set_primary_config(level, Primary),
        ets:delete(Tab)
    end.

captured() ->
    ets:tab2list(shim_log_capture).
