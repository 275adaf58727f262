%% @doc Tracks the beamlet nodes this node is connected to, and node monitors.
%%
%% Subscribes to `net_kernel:monitor_nodes(true, [{node_type, all}, nodedown_reason])' (beamlet
%% nodes are hidden: a plain `monitor_nodes(true)' never reports them). Every node that comes up is
%% probed in a separate process with `gen_server:call({beamlet, Node}, info)'; nodes that answer
%% are listed by {@link list/0} with their cached info. BEAM nodes (no `beamlet' process) and
%% silent ei nodes are ignored.
%%
%% Monitors ({@link monitor/4}) send a caller-chosen message when the connection to a node goes
%% down, or at once when it is not connected. This server is the place later cluster features
%% (membership, registry, pub/sub) hang their per-node state on.
-module(beamlet_nodes).
-behaviour(gen_server).

-export([start_link/0, list/0, learn/2, monitor/4, demonitor/1, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(PROBE_TIMEOUT, 3000).
-define(RETRY_MS, 1000).

-record(mon, {node :: node(), pid :: pid(), msg :: term(), pmon :: reference()}).
-record(st, {nodes = #{} :: #{node() => map()},
             mons = #{} :: #{reference() => #mon{}},
             subscribed = false :: boolean()}).

%% @doc Start the server, registered as `beamlet_nodes'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The beamlet nodes currently connected, sorted by name.
-spec list() -> [beamlet:node_info()].
list() ->
    gen_server:call(?MODULE, list).

%% @doc The cached `info' map of a connected beamlet node.
-spec info(node()) -> {ok, map()} | {error, not_found}.
info(Node) ->
    gen_server:call(?MODULE, {info, Node}).

%% @doc Record `Node' as a beamlet node with its `info' map (used by `beamlet_client:connect/1'
%% so the node is listed without waiting for the probe).
-spec learn(node(), map()) -> ok.
learn(Node, Info) when is_atom(Node), is_map(Info) ->
    gen_server:call(?MODULE, {learn, Node, Info}).

%% @doc Send `Msg' to `Pid' once, when the connection to `Node' goes down (at once if `Node' is not
%% connected). `Ref' identifies the monitor for {@link demonitor/1}. The monitor goes away when
%% `Pid' exits.
-spec monitor(node(), reference(), pid(), term()) -> ok.
monitor(Node, Ref, Pid, Msg) when is_atom(Node), is_reference(Ref), is_pid(Pid) ->
    gen_server:call(?MODULE, {monitor, Node, Ref, Pid, Msg}).

%% @doc Remove a monitor (no-op when it already fired or never existed).
-spec demonitor(reference()) -> ok.
demonitor(Ref) ->
    gen_server:call(?MODULE, {demonitor, Ref}).

%%% ------------------------------------------------------------------ gen_server

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    S = subscribe(#st{}),
    lists:foreach(fun probe/1, erlang:nodes(connected)),
    {ok, S}.

subscribe(S) ->
    case catch net_kernel:monitor_nodes(true, [{node_type, all}, nodedown_reason]) of
        ok -> S#st{subscribed = true};
        _ ->
            %% Not distributed (yet): try again later (net_kernel may be started at run time).
            erlang:send_after(?RETRY_MS, self(), subscribe),
            S
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(list, _From, S = #st{nodes = Ns}) ->
    L = [#{node => N,
           role => maps:get(role, I, undefined),
           cluster => maps:get(cluster, I, <<>>),
           version => maps:get(version, I, <<>>),
           state => up} || {N, I} <- lists:sort(maps:to_list(Ns))],
    {reply, L, S};
handle_call({info, Node}, _From, S = #st{nodes = Ns}) ->
    case maps:find(Node, Ns) of
        {ok, I} -> {reply, {ok, I}, S};
        error -> {reply, {error, not_found}, S}
    end;
handle_call({learn, Node, Info}, _From, S) ->
    {reply, ok, add(Node, Info, S)};
handle_call({monitor, Node, Ref, Pid, Msg}, _From, S = #st{mons = Ms}) ->
    case lists:member(Node, erlang:nodes(connected)) of
        false ->
            Pid ! Msg,
            {reply, ok, S};
        true ->
            PMon = erlang:monitor(process, Pid),
            M = #mon{node = Node, pid = Pid, msg = Msg, pmon = PMon},
            {reply, ok, S#st{mons = Ms#{Ref => M}}}
    end;
handle_call({demonitor, Ref}, _From, S = #st{mons = Ms}) ->
    case maps:take(Ref, Ms) of
        {#mon{pmon = PMon}, Ms2} ->
            erlang:demonitor(PMon, [flush]),
            {reply, ok, S#st{mons = Ms2}};
        error -> {reply, ok, S}
    end;
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_request}, S}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({nodeup, Node, _Info}, S) ->
    probe(Node),
    {noreply, S};
handle_info({nodedown, Node, Info}, S = #st{nodes = Ns, mons = Ms}) ->
    case maps:is_key(Node, Ns) of
        true ->
            logger:info("beamlet: node ~s down (~p)",
                        [Node, proplists:get_value(nodedown_reason, Info, unknown)]);
        false -> ok
    end,
    {Fire, Keep} = maps:fold(fun(Ref, M = #mon{node = N}, {F, K}) when N =:= Node ->
                                     {[M | F], maps:remove(Ref, K)};
                                (_, _, Acc) -> Acc
                             end, {[], Ms}, Ms),
    _ = [begin erlang:demonitor(PMon, [flush]), Pid ! Msg end
     || #mon{pid = Pid, msg = Msg, pmon = PMon} <- Fire],
    {noreply, S#st{nodes = maps:remove(Node, Ns), mons = Keep}};
handle_info({probe_result, Node, {ok, Info}}, S) when is_map(Info) ->
    %% Only if still connected: the node may have gone down while we asked.
    case lists:member(Node, erlang:nodes(connected)) of
        true -> {noreply, add(Node, Info, S)};
        false -> {noreply, S}
    end;
handle_info({probe_result, _Node, _NotBeamlet}, S) ->
    {noreply, S};
handle_info({'DOWN', PMon, process, _Pid, _}, S = #st{mons = Ms}) ->
    {noreply, S#st{mons = maps:filter(fun(_, #mon{pmon = P}) -> P =/= PMon end, Ms)}};
handle_info(subscribe, S = #st{subscribed = false}) ->
    S2 = subscribe(S),
    case S2#st.subscribed of
        true -> lists:foreach(fun probe/1, erlang:nodes(connected));
        false -> ok
    end,
    {noreply, S2};
handle_info(_Msg, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, _S) ->
    ok.

%%% ------------------------------------------------------------------ internals

add(Node, Info, S = #st{nodes = Ns}) ->
    case maps:is_key(Node, Ns) of
        false ->
            logger:info("beamlet: node ~s up (role ~p, cluster ~s)",
                        [Node, maps:get(role, Info, undefined), maps:get(cluster, Info, <<>>)]);
        true -> ok
    end,
    S#st{nodes = Ns#{Node => Info}}.

%% Ask Node for its info in a separate process: a silent ei node must not block this server.
probe(Node) ->
    Self = self(),
    _ = spawn(fun() ->
                      Res = beamlet_client:info(Node, ?PROBE_TIMEOUT),
                      Self ! {probe_result, Node, Res}
              end),
    ok.
