%% @doc Finds beamlet nodes through EPMD and connects to them.
%%
%% Every `interval' ms it lists the names registered in the local EPMD (`erl_epmd:names()') and in
%% the EPMD of every host in `hosts' (`erl_epmd:names(Host)'), keeps those whose name part matches
%% `pattern', connects to each one it does not know yet (a hidden connection) and asks its
%% `beamlet' process for `info'. Nodes that answer are "found"; joins and losses are logged.
%% BEAM nodes that turn out not to be beamlet nodes are remembered (not probed again while they
%% stay registered) and disconnected again if this server made the connection.
%%
%% All EPMD queries and probes run in a separate process with a deadline (`query_timeout'):
%% `erl_epmd:names/1' and connection set-up can hang for seconds on an unreachable host, and
%% neither this server nor its callers ever wait for them.
%%
%% Options (map, all optional):
%% <ul>
%% <li>`name' (atom, default `beamlet_discovery'): registered name; `none' for no name.</li>
%% <li>`hosts' (list of host names, default []): remote hosts whose EPMD is polled. Node names
%%     found there are `Name@Host' with `Host' exactly as given here.</li>
%% <li>`local' (boolean, default true): poll the local EPMD too.</li>
%% <li>`pattern' (regular expression string, default: any): matched against the name part.</li>
%% <li>`interval' (ms, default 5000), `query_timeout' (ms, default `min(interval, 3000)').</li>
%% <li>`notify' (pid): gets `{beamlet_discovery, found | lost, Node}'.</li>
%% </ul>
-module(beamlet_discovery).
-behaviour(gen_server).

-export([start_link/1, start/1, stop/1, found/0, found/1, refresh/1, refresh/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([opts/0]).

-type opts() :: #{name => atom(),
                  hosts => [string() | atom()],
                  local => boolean(),
                  pattern => string() | binary(),
                  interval => pos_integer(),
                  query_timeout => pos_integer(),
                  notify => pid()}.

-record(st, {hosts :: [string()],
             local :: boolean(),
             pattern :: undefined | term(),
             interval :: pos_integer(),
             timeout :: pos_integer(),
             notify :: pid() | undefined,
             found = #{} :: #{node() => map()},
             rejected = [] :: [node()],
             poll :: undefined | {pid(), reference()},
             waiters = [] :: [gen_server:from()],
             timer :: reference() | undefined}).

%% @doc Start a discovery server linked to the caller (see the module doc for `Opts').
-spec start_link(opts()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Opts) ->
    case check_pattern(Opts) of
        ok ->
            case maps:get(name, Opts, ?MODULE) of
                none -> gen_server:start_link(?MODULE, Opts, []);
                Name -> gen_server:start_link({local, Name}, ?MODULE, Opts, [])
            end;
        Error -> Error
    end.

%% @doc Like {@link start_link/1}, not linked.
-spec start(opts()) -> {ok, pid()} | ignore | {error, term()}.
start(Opts) ->
    case check_pattern(Opts) of
        ok ->
            case maps:get(name, Opts, ?MODULE) of
                none -> gen_server:start(?MODULE, Opts, []);
                Name -> gen_server:start({local, Name}, ?MODULE, Opts, [])
            end;
        Error -> Error
    end.

%% A bad pattern is reported to the caller without starting (and, for start_link, without an
%% exit signal to the caller).
check_pattern(#{pattern := P}) ->
    case re:compile(P) of
        {ok, _} -> ok;
        {error, E} -> {error, {bad_pattern, E}}
    end;
check_pattern(_) ->
    ok.

%% @doc Stop a discovery server.
-spec stop(pid() | atom()) -> ok.
stop(Server) ->
    gen_server:stop(Server).

%% @doc The beamlet nodes found by the server registered as `beamlet_discovery'.
-spec found() -> [node()].
found() -> found(?MODULE).

%% @doc The beamlet nodes found so far, sorted.
-spec found(pid() | atom()) -> [node()].
found(Server) ->
    gen_server:call(Server, found).

%% @equiv refresh(Server, 10000)
-spec refresh(pid() | atom()) -> [node()].
refresh(Server) -> refresh(Server, 10000).

%% @doc Poll now (or wait for the poll in flight) and return the nodes found afterwards.
-spec refresh(pid() | atom(), timeout()) -> [node()].
refresh(Server, Timeout) ->
    gen_server:call(Server, refresh, Timeout).

%%% ------------------------------------------------------------------ gen_server

%% @private
-spec init(opts()) -> {ok, #st{}} | {stop, term()}.
init(Opts) ->
    Interval = maps:get(interval, Opts, 5000),
    Pattern = case maps:get(pattern, Opts, undefined) of
                  undefined -> {ok, undefined};
                  P -> re:compile(P)
              end,
    case Pattern of
        {ok, MP} ->
            S = #st{hosts = [to_list(H) || H <- maps:get(hosts, Opts, [])],
                    local = maps:get(local, Opts, true),
                    pattern = MP,
                    interval = Interval,
                    timeout = maps:get(query_timeout, Opts, min(Interval, 3000)),
                    notify = maps:get(notify, Opts, undefined)},
            self() ! tick,
            {ok, S};
        {error, E} -> {stop, {bad_pattern, E}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) ->
          {reply, term(), #st{}} | {noreply, #st{}}.
handle_call(found, _From, S) ->
    {reply, lists:sort(maps:keys(S#st.found)), S};
handle_call(refresh, From, S = #st{waiters = W}) ->
    {noreply, start_poll(S#st{waiters = [From | W]})};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_request}, S}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info(tick, S) ->
    S2 = start_poll(S),
    {noreply, S2#st{timer = erlang:send_after(S#st.interval, self(), tick)}};
handle_info({poll_done, Pid, Found, Rejected}, S = #st{poll = {Pid, Mon}}) ->
    erlang:demonitor(Mon, [flush]),
    S2 = update(Found, S),
    [gen_server:reply(W, lists:sort(maps:keys(S2#st.found))) || W <- S2#st.waiters],
    {noreply, S2#st{poll = undefined, rejected = Rejected, waiters = []}};
handle_info({'DOWN', Mon, process, Pid, Reason}, S = #st{poll = {Pid, Mon}}) ->
    logger:warning("beamlet_discovery: poll crashed: ~p", [Reason]),
    [gen_server:reply(W, lists:sort(maps:keys(S#st.found))) || W <- S#st.waiters],
    {noreply, S#st{poll = undefined, waiters = []}};
handle_info(_Msg, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, #st{poll = Poll}) ->
    case Poll of
        {Pid, _} -> exit(Pid, kill);
        undefined -> ok
    end,
    ok.

%%% ------------------------------------------------------------------ internals

start_poll(S = #st{poll = {_, _}}) ->
    S;
start_poll(S) ->
    Self = self(),
    Known = maps:keys(S#st.found),
    Args = {S#st.local, S#st.hosts, S#st.pattern, Known, S#st.rejected, S#st.timeout},
    {Pid, Mon} = spawn_monitor(fun() -> poll(Self, Args) end),
    S#st{poll = {Pid, Mon}}.

update(Found, S = #st{found = Old, notify = Notify}) ->
    %% Nodes kept from the last poll come back without info: keep what we had.
    New = maps:from_list([{N, case map_size(I) of 0 -> maps:get(N, Old, I); _ -> I end}
                          || {N, I} <- Found]),
    _ = [begin
         logger:info("beamlet_discovery: found ~s", [N]),
         notify(Notify, found, N)
     end || N <- maps:keys(New), not maps:is_key(N, Old)],
    _ = [begin
         logger:info("beamlet_discovery: lost ~s", [N]),
         notify(Notify, lost, N)
     end || N <- maps:keys(Old), not maps:is_key(N, New)],
    S#st{found = New}.

notify(undefined, _, _) -> ok;
notify(Pid, What, Node) -> Pid ! {beamlet_discovery, What, Node}.

%% Runs in its own process. Reports {poll_done, self(), [{Node, Info}], Rejected}.
poll(Parent, {Local, Hosts, Pattern, Known, Rejected, Timeout}) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    Queries = [{this_host(), fun() -> erl_epmd:names() end} || Local]
        ++ [{H, fun() -> erl_epmd:names(H) end} || H <- Hosts],
    Listed = parallel([fun() -> {Host, Q()} end || {Host, Q} <- Queries], Deadline),
    Me = node(),
    Candidates = lists:usort(
                   [list_to_atom(Name ++ "@" ++ Host)
                    || {ok, {Host, {ok, Names}}} <- Listed,
                       {Name, _Port} <- Names,
                       matches(Pattern, Name)]) -- [Me],
    Connected = erlang:nodes(connected),
    Keep = [N || N <- Candidates, lists:member(N, Known), lists:member(N, Connected)],
    ToProbe = [N || N <- Candidates, not lists:member(N, Keep), not lists:member(N, Rejected)],
    ProbeDeadline = erlang:monotonic_time(millisecond) + Timeout,
    Probed = parallel([fun() -> {N, probe(N, Connected, Timeout)} end || N <- ToProbe],
                      ProbeDeadline),
    Found = [{N, #{}} || N <- Keep]
        ++ [{N, Info} || {ok, {N, {beamlet, Info}}} <- Probed],
    NewRejected = [N || N <- Rejected, lists:member(N, Candidates)]
        ++ [N || {ok, {N, not_beamlet}} <- Probed],
    Parent ! {poll_done, self(), Found, NewRejected}.

probe(Node, Connected, Timeout) ->
    case net_kernel:hidden_connect_node(Node) of
        true ->
            case beamlet_client:info(Node, Timeout) of
                {ok, Info} when is_map(Info) ->
                    case whereis(beamlet_nodes) of
                        undefined -> ok;
                        _ -> catch beamlet_nodes:learn(Node, Info)
                    end,
                    {beamlet, Info};
                {error, noproc} ->
                    %% A BEAM node: drop the connection unless someone else made it.
                    case lists:member(Node, Connected) of
                        false -> erlang:disconnect_node(Node);
                        true -> ok
                    end,
                    not_beamlet;
                Other -> {error, Other}
            end;
        _ -> {error, nodedown}
    end.

%% Run each fun in its own process; results not in by Deadline are dropped (and their processes
%% killed). Returns [{ok, Result}] for those that finished.
parallel(Funs, Deadline) ->
    Self = self(),
    Pids = [spawn(fun() -> Self ! {self(), {ok, catch F()}} end) || F <- Funs],
    Res = [receive {P, R} -> R
           after max(0, Deadline - erlang:monotonic_time(millisecond)) -> timeout
           end || P <- Pids],
    [exit(P, kill) || P <- Pids],
    [R || R = {ok, _} <- Res].

matches(undefined, _) -> true;
matches(MP, Name) -> re:run(Name, MP, [{capture, none}]) =:= match.

this_host() ->
    case string:split(atom_to_list(node()), "@") of
        [_, H] -> H;
        _ -> net_adm:localhost()
    end.

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) when is_list(L) -> L.
