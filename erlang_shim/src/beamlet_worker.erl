%% @doc One supervised beamlet worker node: the `beamlet node ...' OS process run as a port.
%%
%% Options (a map; only `name' is required):
%% <ul>
%% <li>`name' (string): the node's short name (`--sname'), or `"name@host"'. Without a host part
%%     the host of this node is used. When this node runs with long names, `--name' is used.</li>
%% <li>`cookie' (string or atom, default: `erlang:get_cookie()'): passed in the environment
%%     (`COOKIE'), not on the command line.</li>
%% <li>`role' (`coordinator | agent | gateway | monitor', default agent), `cluster' (string).</li>
%% <li>`join' (list of node names): seeds the node connects to at start.</li>
%% <li>`extra_args' (list of strings): more `beamlet node' flags, e.g. `["--log-level", "debug"]'.</li>
%% <li>`binary' (path): the beamlet executable. Default: the `BEAMLET_BIN' environment variable,
%%     then the application env `beamlet_bin', then `priv/beamlet' of the application.</li>
%% <li>`start_timeout' (ms, default 5000): how long to wait for the node to answer.</li>
%% <li>`env' (list of `{Name, Value}' strings): extra environment for the OS process.</li>
%% <li>`tls' (`auto | false', default `auto'): when this VM runs TLS distribution
%%     (`-proto_dist inet_tls'), the worker is started with the same certificates: the `server'
%%     options of `-ssl_dist_optfile' (or of `-ssl_dist_opt server_*') become `--tls true
%%     --tls-cert --tls-key --tls-ca --tls-verify --tls-versions'. `false' leaves TLS to
%%     `extra_args'.</li>
%% </ul>
%%
%% The OS process is started as `/bin/sh -c "exec BIN ARGS 2>&1"', so its stdout and stderr
%% (beamlet logs on stderr, one line per event) reach this process line by line and are forwarded
%% to `logger' at the level the line carries. The worker counts as started once
%% `net_adm:ping/1' answers `pong' and its `beamlet' process answers `info'.
%%
%% Restarts (the child is `transient' under `beamlet_worker_sup'):
%% <ul>
%% <li>the OS process exits with a non-zero status or is killed by a signal after it was up: this
%%     server stops with `{exit_status, N}' and the supervisor starts a fresh OS process;</li>
%% <li>it exits with status 0 (it was asked to stop, e.g. SIGTERM from outside): stop `normal', not
%%     restarted;</li>
%% <li>it never comes up (exits during start, or `start_timeout'): stop `{shutdown, Reason}', not
%%     restarted (`start_worker/1' returns `{error, Reason}'; a restart that fails this way is
%%     logged and given up).</li>
%% </ul>
%% `terminate/2' (supervisor shutdown, `stop_worker/1', application stop) sends SIGTERM to the OS
%% process and waits up to 5 s for it to exit, then SIGKILL.
-module(beamlet_worker).
-behaviour(gen_server).

-export([start_link/1, start_link_up/1, node_of/1, status/1, args/1, resolve_binary/1,
         await_table/0, tls_args/0]).
-export([notify/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([opts/0]).

-type opts() :: #{name := string() | binary() | atom(),
                  cookie => string() | binary() | atom(),
                  role => string() | binary() | atom(),
                  cluster => string() | binary() | atom(),
                  join => [string() | binary() | atom()],
                  extra_args => [string() | binary()],
                  binary => string() | binary(),
                  start_timeout => non_neg_integer(),
                  env => [{string(), string()}],
                  tls => auto | false,
                  '$await' => reference() | {pid(), reference()}}.

-define(POLL_MS, 100).
-define(DEFAULT_START_TIMEOUT, 5000).
-define(TERM_WAIT_MS, 5000).
-define(KILL_WAIT_MS, 2000).
-define(KEEP_LINES, 20).

-record(st, {node :: node(),
             port :: port() | undefined,
             os_pid :: integer() | undefined,
             status = starting :: starting | up,
             token :: reference() | {pid(), reference()} | undefined,
             deadline :: integer(),
             lines = [] :: [binary()],
             partial = <<>> :: binary()}).

%% @doc Start the worker (used by `beamlet_worker_sup'). Returns once the OS process is spawned.
%% When `Opts' holds `{'$await', Token}' and the table {@link await_table/0} maps Token to a pid,
%% that pid gets `{Token, ok | {error, Reason}}' once the node answers or fails to start. The
%% entry is taken on first use, so a restarted worker (same `Opts') does not send it again.
-spec start_link(opts()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

%% @doc Start a worker linked to the caller (not under `beamlet_worker_sup') and wait until its
%% node answers: `{ok, Pid}', or `{error, Reason}' (the reasons of `beamlet_worker_sup:start_worker/1',
%% wrapped in `{shutdown, _}' when init/1 refused). For supervisors other than the application's
%% (the Gleam package's child specs): the caller is the worker's parent, its restart policy is the
%% caller's. A worker that fails to start unlinks from the caller before it stops, so a caller
%% that does not trap exits gets the error, not an exit signal (an init/1 refusal still exits).
-spec start_link_up(opts()) -> {ok, pid()} | {error, term()}.
start_link_up(Opts) ->
    Token = make_ref(),
    case gen_server:start_link(?MODULE, Opts#{'$await' => {self(), Token}}, []) of
        {ok, Pid} ->
            Timeout = maps:get(start_timeout, Opts, ?DEFAULT_START_TIMEOUT) + 2000,
            receive
                {Token, ok} -> {ok, Pid};
                {Token, {error, Reason}} -> {error, Reason}
            after Timeout ->
                    unlink(Pid),
                    exit(Pid, shutdown),
                    receive {Token, _} -> ok after 0 -> ok end,
                    {error, start_timeout}
            end;
        {error, Reason} -> {error, Reason};
        ignore -> {error, ignored}
    end.

%% @doc The ETS table of start waiters (created by `beamlet_worker_sup').
-spec await_table() -> atom().
await_table() -> beamlet_worker_await.

%% @doc Tell the waiter registered under Token (if any) how the start went.
-spec notify(reference() | {pid(), reference()} | undefined, ok | {error, term()}) -> ok.
notify(undefined, _) -> ok;
notify({Pid, Token}, Result) when is_pid(Pid) ->
    Pid ! {Token, Result},
    ok;
notify(Token, Result) ->
    case catch ets:take(await_table(), Token) of
        [{Token, Pid}] -> Pid ! {Token, Result}, ok;
        _ -> ok
    end.

%% @doc The node name of a worker.
-spec node_of(pid()) -> node().
node_of(Pid) ->
    gen_server:call(Pid, node_of).

%% @doc `{Node, OsPid, Status}' of a worker.
-spec status(pid()) -> {node(), integer() | undefined, starting | up}.
status(Pid) ->
    gen_server:call(Pid, status).

%% @doc The node name, executable and arguments a worker with `Opts' runs (no side effects).
-spec args(opts()) -> {node(), string(), [string()]}.
args(Opts = #{name := Name0}) ->
    Name = str(Name0),
    Long = net_kernel:longnames() =:= true,
    {Alias, Host} = case string:split(Name, "@") of
                        [A, H] -> {A, H};
                        [A] -> {A, this_host()}
                    end,
    Node = list_to_atom(Alias ++ "@" ++ Host),
    NameArgs = case Long of
                   true -> ["--name", Alias ++ "@" ++ Host];
                   false -> ["--sname", Alias ++ "@" ++ Host]
               end,
    Tick = case net_kernel:get_net_ticktime() of
               T when is_integer(T) -> ["--net-ticktime", integer_to_list(T)];
               {ongoing_change_to, T} -> ["--net-ticktime", integer_to_list(T)];
               _ -> []
           end,
    Opt = fun(Key, Flag) ->
                  case maps:find(Key, Opts) of
                      {ok, V} -> [Flag, str(V)];
                      error -> []
                  end
          end,
    Join = case maps:get(join, Opts, []) of
               [] -> [];
               Seeds -> ["--join", lists:join(",", [str(J) || J <- Seeds])]
           end,
    Extra = [str(E) || E <- maps:get(extra_args, Opts, [])],
    %% the port is the worker's stdin: when this VM dies, however abruptly, the worker stops too
    Tls = case maps:get(tls, Opts, auto) of
              auto -> tls_args();
              false -> []
          end,
    Args = ["node" | NameArgs] ++ Tick ++ Opt(role, "--role") ++ Opt(cluster, "--cluster")
        ++ [lists:flatten(J) || J <- Join] ++ ["--exit-on-stdin-eof", "true"] ++ Tls ++ Extra,
    {Node, resolve_binary(Opts), Args}.

%% @doc The `--tls*' flags that give a worker this VM's TLS distribution settings: `[]' unless
%% the VM runs `-proto_dist inet_tls' (or `inet6_tls'). Read from `-ssl_dist_optfile' (its
%% `server' list: the worker accepts and dials with one certificate, as beamlet does) or from
%% `-ssl_dist_opt server_certfile F ...'.
-spec tls_args() -> [string()].
tls_args() ->
    case init:get_argument(proto_dist) of
        {ok, Protos} ->
            case lists:any(fun(P) -> lists:suffix("_tls", P) end, lists:append(Protos)) of
                true -> tls_flags(tls_server_opts());
                false -> []
            end;
        error -> []
    end.

tls_server_opts() ->
    FromFile = case init:get_argument(ssl_dist_optfile) of
                   {ok, [[File | _] | _]} ->
                       case file:consult(File) of
                           {ok, [Terms]} when is_list(Terms) -> proplists:get_value(server, Terms, []);
                           {ok, Terms} -> proplists:get_value(server, Terms, []);
                           {error, Reason} ->
                               logger:warning("beamlet worker: cannot read ssl_dist_optfile ~s: ~p",
                                              [File, Reason]),
                               []
                       end;
                   _ -> []
               end,
    FromArgs = case init:get_argument(ssl_dist_opt) of
                   {ok, Lists} -> pairs(lists:append(Lists));
                   error -> []
               end,
    FromFile ++ FromArgs.

pairs(["server_" ++ K, V | T]) -> [{list_to_atom(K), V} | pairs(T)];
pairs([_, _ | T]) -> pairs(T);
pairs(_) -> [].

tls_flags(Server) ->
    Flag = fun(Key, F) ->
                   case proplists:get_value(Key, Server) of
                       undefined -> [];
                       V -> [F, str(V)]
                   end
           end,
    Verify = case proplists:get_value(verify, Server) of
                 verify_none -> ["--tls-verify", "none"];
                 "verify_none" -> ["--tls-verify", "none"];
                 _ -> []
             end,
    Versions = case proplists:get_value(versions, Server) of
                   Vs when is_list(Vs), Vs =/= [] ->
                       ["--tls-versions",
                        lists:join(",", [lists:flatten(string:replace(str(V), "tlsv", ""))
                                         || V <- Vs])];
                   _ -> []
               end,
    ["--tls", "true"] ++ Flag(certfile, "--tls-cert") ++ Flag(keyfile, "--tls-key")
        ++ Flag(cacertfile, "--tls-ca") ++ Verify ++ [lists:flatten(V) || V <- Versions].

%% @doc The beamlet executable for `Opts': option `binary', env BEAMLET_BIN, app env
%% `beamlet_bin', `priv/beamlet'.
-spec resolve_binary(map()) -> string().
resolve_binary(Opts) ->
    case maps:find(binary, Opts) of
        {ok, B} -> str(B);
        error ->
            case os:getenv("BEAMLET_BIN") of
                V when is_list(V), V =/= "" -> V;
                _ ->
                    case application:get_env(beamlet, beamlet_bin) of
                        {ok, B} -> str(B);
                        undefined -> priv_binary()
                    end
            end
    end.

%% code:priv_dir/1 only works when the application directory is named beamlet[-Vsn]; otherwise
%% (e.g. erlang_shim/ebin on the code path) use the priv/ next to this module's ebin/.
priv_binary() ->
    case code:priv_dir(beamlet) of
        Dir when is_list(Dir) -> filename:join(Dir, "beamlet");
        {error, bad_name} ->
            case code:which(?MODULE) of
                Beam when is_list(Beam) ->
                    filename:join([filename:dirname(filename:dirname(Beam)), "priv", "beamlet"]);
                _ -> "beamlet"
            end
    end.

%%% ------------------------------------------------------------------ gen_server

%% @private
-spec init(opts()) -> {ok, #st{}} | {stop, term()}.
init(Opts) ->
    process_flag(trap_exit, true),
    case node() of
        nonode@nohost -> {stop, {shutdown, not_alive}};
        _ -> init_alive(Opts)
    end.

init_alive(Opts) ->
    {Node, Bin, Args} = args(Opts),
    case filelib:is_regular(Bin) of
        false -> {stop, {shutdown, {no_binary, Bin}}};
        true ->
            case net_adm:ping(Node) of
                pong -> {stop, {shutdown, {already_running, Node}}};
                pang -> {ok, open(Node, Bin, Args, Opts)}
            end
    end.

open(Node, Bin, Args, Opts) ->
    Cookie = str(maps:get(cookie, Opts, erlang:get_cookie())),
    Env = [{"COOKIE", Cookie} | [{str(K), str(V)} || {K, V} <- maps:get(env, Opts, [])]],
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", "exec \"$0\" \"$@\" 2>&1", Bin | Args]},
                      {env, Env}, {line, 4096}, binary, exit_status, use_stdio, hide]),
    OsPid = case erlang:port_info(Port, os_pid) of
                {os_pid, P} -> P;
                undefined -> undefined
            end,
    logger:info("beamlet worker ~s: started ~s (os pid ~p)", [Node, Bin, OsPid]),
    Timeout = maps:get(start_timeout, Opts, ?DEFAULT_START_TIMEOUT),
    erlang:send_after(?POLL_MS, self(), poll),
    #st{node = Node, port = Port, os_pid = OsPid, token = maps:get('$await', Opts, undefined),
        deadline = erlang:monotonic_time(millisecond) + Timeout}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(node_of, _From, S = #st{node = N}) ->
    {reply, N, S};
handle_call(status, _From, S = #st{node = N, os_pid = P, status = St}) ->
    {reply, {N, P, St}, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_request}, S}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}} | {stop, term(), #st{}}.
handle_info(poll, S = #st{status = starting, node = Node}) ->
    case is_up(Node) of
        {true, Info} ->
            logger:info("beamlet worker ~s: up", [Node]),
            notify(S#st.token, ok),
            OsPid = case Info of
                        #{os_pid := P} when is_integer(P) -> P;
                        _ -> S#st.os_pid
                    end,
            {noreply, S#st{status = up, token = undefined, os_pid = OsPid}};
        false ->
            case erlang:monotonic_time(millisecond) > S#st.deadline of
                true -> start_failed(start_timeout, S);
                false ->
                    erlang:send_after(?POLL_MS, self(), poll),
                    {noreply, S}
            end
    end;
handle_info(poll, S) ->
    {noreply, S};
handle_info({Port, {data, {Flag, Bytes}}}, S = #st{port = Port, partial = Part}) ->
    case Flag of
        noeol -> {noreply, S#st{partial = <<Part/binary, Bytes/binary>>}};
        eol ->
            Line = <<Part/binary, Bytes/binary>>,
            log_line(S#st.node, Line),
            Keep = lists:sublist([Line | S#st.lines], ?KEEP_LINES),
            {noreply, S#st{partial = <<>>, lines = Keep}}
    end;
handle_info({Port, {exit_status, Code}}, S = #st{port = Port, status = starting}) ->
    start_failed({exit_status, Code, lists:reverse(S#st.lines)}, S#st{port = undefined});
handle_info({Port, {exit_status, 0}}, S = #st{port = Port, node = Node}) ->
    logger:notice("beamlet worker ~s: exited with status 0", [Node]),
    {stop, normal, S#st{port = undefined}};
handle_info({Port, {exit_status, Code}}, S = #st{port = Port, node = Node}) ->
    logger:error("beamlet worker ~s: exited with status ~b~s; last output:~n~s",
                 [Node, Code, signal_text(Code), lists:join("\n", lists:reverse(S#st.lines))]),
    {stop, {exit_status, Code}, S#st{port = undefined}};
handle_info({'EXIT', Port, Reason}, S = #st{port = Port}) ->
    {stop, {port_exit, Reason}, S#st{port = undefined}};
handle_info({'EXIT', _Pid, Reason}, S) ->
    %% Our parent (the supervisor) is going away: terminate/2 stops the OS process.
    {stop, Reason, S};
handle_info(_Msg, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, #st{port = undefined}) ->
    ok;
terminate(_Reason, #st{port = Port, os_pid = OsPid, node = Node}) ->
    case OsPid of
        undefined -> catch port_close(Port);
        _ ->
            signal(OsPid, "TERM"),
            case wait_exit(Port, ?TERM_WAIT_MS) of
                {ok, Code} ->
                    logger:info("beamlet worker ~s: stopped (status ~b)", [Node, Code]);
                timeout ->
                    logger:warning("beamlet worker ~s: no exit ~b ms after SIGTERM, SIGKILL",
                                   [Node, ?TERM_WAIT_MS]),
                    signal(OsPid, "KILL"),
                    _ = wait_exit(Port, ?KILL_WAIT_MS)
            end
    end,
    ok.

%%% ------------------------------------------------------------------ internals

start_failed(Reason, S = #st{node = Node, token = Token}) ->
    logger:error("beamlet worker ~s: failed to start: ~p", [Node, Reason]),
    _ = case Token of
            {Waiter, _} when is_pid(Waiter) -> unlink(Waiter); % see start_link_up/1
            _ -> true
        end,
    notify(Token, {error, Reason}),
    {stop, {shutdown, Reason}, S#st{token = undefined}}.

is_up(Node) ->
    case net_adm:ping(Node) of
        pong ->
            case beamlet_client:info(Node, 2000) of
                {ok, Info} -> {true, Info};
                _ -> false
            end;
        pang -> false
    end.

wait_exit(Port, Timeout) ->
    receive
        {Port, {exit_status, Code}} -> {ok, Code}
    after Timeout -> timeout
    end.

signal(OsPid, Sig) ->
    _ = os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok.

signal_text(Code) when Code > 128 -> io_lib:format(" (signal ~b)", [Code - 128]);
signal_text(_) -> "".

%% beamlet text log lines: "2024-01-01T00:00:00.000Z info  node@host: message".
log_line(Node, Line) ->
    Level = case binary:split(Line, <<" ">>, [global, trim_all]) of
                [_Ts, <<"error">> | _] -> error;
                [_Ts, <<"warn">> | _] -> warning;
                [_Ts, <<"debug">> | _] -> debug;
                [_Ts, <<"info">> | _] -> info;
                _ -> case binary:match(Line, <<"\"level\":\"error\"">>) of
                         nomatch -> notice; %% JSON logs, sanitizer reports, anything else
                         _ -> error
                     end
            end,
    logger:log(Level, "beamlet worker ~s: ~ts", [Node, Line], #{beamlet_node => Node}).

this_host() ->
    case string:split(atom_to_list(node()), "@") of
        [_, H] -> H;
        _ -> net_adm:localhost()
    end.

str(A) when is_atom(A) -> atom_to_list(A);
str(B) when is_binary(B) -> unicode:characters_to_list(B);
str(L) when is_list(L) -> L;
str(I) when is_integer(I) -> integer_to_list(I).
