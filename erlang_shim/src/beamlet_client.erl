%% @doc Talking to beamlet nodes: connect, call, cast, info, stats.
%%
%% This is the implementation behind the {@link beamlet} facade. It lives in its own module because
%% the Gleam package (also an OTP application named `beamlet') compiles its own `beamlet' module
%% from `beamlet.gleam'; the Gleam FFI calls this module directly.
%%
%% Node facts go through the `beamlet' process every beamlet node runs (see docs/protocol.md).
%% {@link call/4} is a plain `gen_server:call({Service, Node}, Req)': beamlet nodes support
%% monitors by name (DIST_MONITOR_NAME) and aliases, so a missing C service exits `noproc' at once
%% and a reply after the timeout is dropped, exactly as with a BEAM node.
-module(beamlet_client).

-export([connect/1, is_beamlet/1, call/3, call/4, cast/3, info/1, info/2, stats/1, stats/2,
         registered/1, whereis/2]).
-export([members/1, cluster_status/1, leader/1, subscribe_cluster/1, unsubscribe_cluster/1]).
-export([register_service/2, deregister_service/2, find_services/2, watch_services/1,
         unwatch_services/1, service_call/4, whereis_name/2]).
-export([any_node/1, find_services/1, service_call/3, whereis_name/1]).
-export([subscribe/3, unsubscribe/2, publish/4, ack/3]).
-export([metrics/1, health_config/1]).
-export([health/1, alerts/1, ack_alert/3, set_maintenance/3, maintenance/1, events/2,
         history/3, history/4, checks/1, subscribe_alerts/1, cluster_events/2,
         cluster_history/3]).
-export([config/1, config/2, set_config/4, unset_config/3, config_history/1, config_history/2,
         config_status/3, watch_config/1, unwatch_config/1]).
-export([call_timeout_ms/1, map_exit/1]).

-export_type([call_error/0, timeout_ms/0]).
-export_type([alert/0, event/0, event_filter/0, history/0, check/0, cluster_health/0]).
-export_type([config_doc/0, config_setting/0, config_write/0, config_change/0,
              config_status/0]).

-type call_error() :: nodedown | timeout | noproc.
-type timeout_ms() :: non_neg_integer() | infinity.

%% The shapes of docs/health.md ("The beamlet_health protocol").
-type severity() :: info | warn | critical.
-type alert() :: #{id := pos_integer(), rule := binary(), node := node(), instance := binary(),
                   severity := warn | critical, state := pending | firing | resolved,
                   value := number(), threshold := number(), summary := binary(),
                   since_ms := non_neg_integer(), fired_ms := non_neg_integer(),
                   resolved_ms := non_neg_integer(), acked_by := binary() | undefined,
                   acked_ms := non_neg_integer(), labels := binary()}.
-type event() :: #{id := pos_integer(), time_ms := non_neg_integer(), node := binary(),
                   type := binary(), severity := severity(), who := binary() | undefined,
                   body := binary(), logged_by => node()}.
-type event_filter() :: #{since_ms => non_neg_integer(), until_ms => non_neg_integer(),
                          type => binary(), node => binary(), severity => severity(),
                          limit => pos_integer()}.
-type history() :: #{metric := binary(), resolution_ms := non_neg_integer(),
                     since_ms := non_neg_integer(), until_ms := non_neg_integer(),
                     points := [[number()]]}.
-type check() :: #{name := binary(), kind := http | tcp | command, target := binary(),
                   service := binary(), status := passing | warning | critical | unknown,
                   output := binary(), last_ms := non_neg_integer(),
                   changed_ms := non_neg_integer(), runs := non_neg_integer(),
                   interval_ms := non_neg_integer(), consecutive := non_neg_integer()}.
-type cluster_health() :: #{node := node() | binary(), score := float(),
                            status := active | degraded | maintenance | offline,
                            nodes := [map()], alerts := [alert()],
                            recommendations := [map()], _ => _}.

%% The shapes of docs/configuration.md ("Cluster configuration": the beamlet_config protocol).
-type config_setting() :: #{key := binary(), value := binary(), live := boolean(),
                            applied := binary()}.
-type config_doc() :: #{term := non_neg_integer(), version := non_neg_integer(),
                        leader := binary() | undefined, settings := [config_setting()]}.
-type config_write() :: #{version := non_neg_integer(), term := non_neg_integer(),
                          key := binary(), value := binary() | undefined, live := boolean(),
                          changed := boolean(), state := binary(),
                          holders => non_neg_integer(), needed => non_neg_integer()}.
-type config_change() :: #{version := non_neg_integer(), term := non_neg_integer(),
                           key := binary(), old := binary() | undefined,
                           new := binary() | undefined, who := binary(), at := non_neg_integer(),
                           _ => _}.
-type config_status() :: #{version := non_neg_integer(), state := binary(),
                           holders := non_neg_integer(), needed := non_neg_integer(),
                           current_version := non_neg_integer(),
                           term := non_neg_integer() | undefined, key := binary() | undefined}.

%% Largest timeout the C side takes (an unsigned 32-bit count of milliseconds; kept below 2^31).
-define(MAX_C_TIMEOUT_MS, 16#7FFFFFFF).
-define(DEFAULT_TIMEOUT, 5000).
-define(VERIFY_TIMEOUT, 5000).

%% @doc Connect to `Node' and check that it is a beamlet node (its `beamlet' process answers
%% `ping'). On success the node's `info' is cached by `beamlet_nodes' (when the application runs),
%% so it is listed by `beamlet:nodes()' straight away.
%%
%% Errors: `not_alive' (this node is not distributed), `nodedown' (cannot connect), `not_beamlet'
%% (connected, but no `beamlet' process: a BEAM node), `timeout' (connected, no answer: an ei node
%% that is not a beamlet node, or an overloaded one).
-spec connect(node()) -> ok | {error, not_alive | nodedown | not_beamlet | timeout}.
connect(Node) when is_atom(Node) ->
    case node() of
        nonode@nohost -> {error, not_alive};
        Node -> {error, not_beamlet};
        _ ->
            case net_kernel:connect_node(Node) of
                true -> verify(Node);
                false -> {error, nodedown};
                ignored -> {error, not_alive}
            end
    end.

%% @doc Is `Node' (already connected or not) a beamlet node? Connects if needed.
-spec is_beamlet(node()) -> boolean().
is_beamlet(Node) ->
    connect(Node) =:= ok.

verify(Node) ->
    try gen_server:call({beamlet, Node}, ping, ?VERIFY_TIMEOUT) of
        pong ->
            _ = learn(Node),
            ok;
        _ -> {error, not_beamlet}
    catch
        exit:{Reason, _} -> {error, verify_error(map_exit(Reason))}
    end.

verify_error(noproc) -> not_beamlet;
verify_error(Other) -> Other.

%% Cache the node's info in beamlet_nodes if it runs.
learn(Node) ->
    case whereis(beamlet_nodes) of
        undefined -> ok;
        _ ->
            case info(Node) of
                {ok, Info} -> beamlet_nodes:learn(Node, Info);
                _ -> ok
            end
    end.

%% @equiv call(Node, Service, Request, 5000)
-spec call(node(), atom(), term()) -> {ok, term()} | {error, call_error() | term()}.
call(Node, Service, Request) ->
    call(Node, Service, Request, ?DEFAULT_TIMEOUT).

%% @doc `gen_server:call' to the process registered as `Service' on the beamlet node `Node'.
%%
%% Returns `{ok, Reply}', or `{error, Reason}' with Reason:
%% <ul>
%% <li>`noproc': no process is registered as `Service' on `Node' (the node's monitor answers
%%     at once);</li>
%% <li>`timeout': no reply within `Timeout' milliseconds (a later reply is dropped: the call's
%%     alias is gone);</li>
%% <li>`nodedown': `Node' cannot be reached, or the connection dropped during the call.</li>
%% </ul>
-spec call(node(), atom(), term(), timeout_ms()) -> {ok, term()} | {error, call_error() | term()}.
call(Node, Service, Request, Timeout) when is_atom(Node), is_atom(Service) ->
    try gen_server:call({Service, Node}, Request, Timeout) of
        Reply -> {ok, Reply}
    catch
        exit:{Reason, _} -> {error, map_exit(Reason)}
    end.

%% @doc The timeout sent to the C node for a call with `Timeout'.
-spec call_timeout_ms(timeout_ms()) -> non_neg_integer().
call_timeout_ms(infinity) -> ?MAX_C_TIMEOUT_MS;
call_timeout_ms(T) when is_integer(T), T >= 0 -> min(T, ?MAX_C_TIMEOUT_MS).

%% @doc Map the exit reason of a `gen_server:call' to a call error.
-spec map_exit(term()) -> call_error() | term().
map_exit({nodedown, _}) -> nodedown;
map_exit(nodedown) -> nodedown;
map_exit(noconnection) -> nodedown;
map_exit(timeout) -> timeout;
map_exit(noproc) -> noproc;
map_exit({noproc, _}) -> noproc;
map_exit(Other) -> Other.

%% @doc `gen_server:cast' to `{Service, Node}'. Always `ok' (like gen_server:cast).
-spec cast(node(), atom(), term()) -> ok.
cast(Node, Service, Request) when is_atom(Node), is_atom(Service) ->
    gen_server:cast({Service, Node}, Request).

%% @equiv info(Node, 5000)
-spec info(node()) -> {ok, map()} | {error, call_error() | term()}.
info(Node) -> info(Node, ?DEFAULT_TIMEOUT).

%% @doc The node's `info' map: node, role, cluster, version, uptime_ms, connections, processes,
%% creation, os_pid, port.
-spec info(node(), timeout_ms()) -> {ok, map()} | {error, call_error() | term()}.
info(Node, Timeout) -> builtin(Node, info, Timeout).

%% @equiv stats(Node, 5000)
-spec stats(node()) -> {ok, map()} | {error, call_error() | term()}.
stats(Node) -> stats(Node, ?DEFAULT_TIMEOUT).

%% @doc The node's traffic counters and per-connection queues.
-spec stats(node(), timeout_ms()) -> {ok, map()} | {error, call_error() | term()}.
stats(Node, Timeout) -> builtin(Node, stats, Timeout).

%% @doc Names registered on the beamlet node.
-spec registered(node()) -> {ok, [atom()]} | {error, call_error() | term()}.
registered(Node) -> builtin(Node, registered, ?DEFAULT_TIMEOUT).

%% @doc The pid registered as `Name' on the beamlet node, or `undefined'.
-spec whereis(node(), atom()) -> {ok, pid() | undefined} | {error, call_error() | term()}.
whereis(Node, Name) when is_atom(Name) -> builtin(Node, {whereis, Name}, ?DEFAULT_TIMEOUT).

%% @doc The cluster's members as `Node' sees them: maps with node, role, state (joining, active,
%% suspected, failed, leaving, left), kind (beamlet or beam), capabilities, metadata, ...
-spec members(node()) -> {ok, [map()]} | {error, call_error() | term()}.
members(Node) -> cluster(Node, members).

%% @doc Cluster name, size, state counts, leader, term and health as `Node' sees them.
-spec cluster_status(node()) -> {ok, map()} | {error, call_error() | term()}.
cluster_status(Node) -> cluster(Node, status).

%% @doc The leader (or `undefined') and its term as `Node' sees them.
-spec leader(node()) -> {ok, {node() | undefined, non_neg_integer()}} | {error, term()}.
leader(Node) -> cluster(Node, leader).

%% @doc The calling process receives `{beamlet_cluster_event, Event}' maps from `Node' until it
%% unsubscribes or the connection drops.
-spec subscribe_cluster(node()) -> ok | {error, call_error() | term()}.
subscribe_cluster(Node) ->
    case cluster(Node, {subscribe, self()}) of {ok, ok} -> ok; Err -> Err end.

-spec unsubscribe_cluster(node()) -> ok | {error, call_error() | term()}.
unsubscribe_cluster(Node) ->
    case cluster(Node, {unsubscribe, self()}) of {ok, ok} -> ok; Err -> Err end.

%% @doc Register a service entry (a map; `name' required) on `Node''s registry: `{ok, Id}'.
%% See docs/services.md for the fields.
-spec register_service(node(), map()) -> {ok, binary()} | {error, term()}.
register_service(Node, Entry) when is_map(Entry) ->
    unwrap(registry(Node, {register, Entry})).

-spec deregister_service(node(), binary()) -> ok | {error, term()}.
deregister_service(Node, Id) -> unwrap(registry(Node, {deregister, Id})).

%% @doc Entries matching a query map (name, tags_all, tags_any, health, metadata) as `Node' sees
%% them (every node holds the whole set).
-spec find_services(node(), map()) -> {ok, [map()]} | {error, term()}.
find_services(Node, Query) when is_map(Query) -> registry(Node, {find, Query}).

%% @doc The caller receives `{beamlet_registry_event, #{event, entry}}' for every change.
-spec watch_services(node()) -> ok | {error, term()}.
watch_services(Node) -> unwrap(registry(Node, {watch, self()})).

%% @doc Stop the caller's registry events from `Node'.
-spec unwatch_services(node()) -> ok | {error, term()}.
unwatch_services(Node) -> unwrap(registry(Node, {unwatch, self()})).

%% @doc Run `Fun(Node)' on the connected beamlet nodes (as `beamlet_nodes' lists them, so the
%% application must run) until one answers something else than `{error, nodedown | noproc}';
%% `{error, no_beamlet_node}' when none is connected. The cluster-wide calls below use it.
-spec any_node(fun((node()) -> Result)) -> Result | {error, no_beamlet_node | nodedown | noproc}.
any_node(Fun) ->
    Nodes = case whereis(beamlet_nodes) of
                undefined -> [];
                _ -> [maps:get(node, I) || I <- beamlet_nodes:list()]
            end,
    any_node(Fun, Nodes, {error, no_beamlet_node}).

any_node(_Fun, [], Last) -> Last;
any_node(Fun, [N | Rest], _Last) ->
    case Fun(N) of
        {error, nodedown} = E -> any_node(Fun, Rest, E);
        {error, noproc} = E -> any_node(Fun, Rest, E);
        Result -> Result
    end.

%% @doc Services matching a query, asked of any connected beamlet node (see {@link any_node/1}).
-spec find_services(map()) -> {ok, [map()]} | {error, term()}.
find_services(Query) -> any_node(fun(N) -> find_services(N, Query) end).

%% @doc A load-balanced call to a healthy instance of `Service' through any connected beamlet node.
-spec service_call(binary() | atom(), term(), timeout_ms()) -> {ok, term()} | {error, term()}.
service_call(Service, Request, Timeout) ->
    any_node(fun(N) -> service_call(N, Service, Request, Timeout) end).

%% @doc The pid of a cluster-wide (global) name, resolved by any connected beamlet node.
-spec whereis_name(atom()) -> {ok, pid() | undefined} | {error, term()}.
whereis_name(Name) -> any_node(fun(N) -> whereis_name(N, Name) end).

%% @doc A load-balanced call to one healthy instance of `Service', with failover. It carries the
%% caller's current trace ({@link beamlet_trace}), or a new one.
-spec service_call(node(), binary() | atom(), term(), timeout_ms()) -> {ok, term()} | {error, term()}.
service_call(Node, Service, Request, Timeout) ->
    T = call_timeout_ms(Timeout),
    {TP, Whose} = beamlet_trace:for_request(),
    Call = fun(Req) ->
                   try gen_server:call({beamlet_registry, Node}, Req, 3 * T + 1000) of
                       {ok, _} = Ok -> Ok;
                       {error, _} = E -> E
                   catch
                       exit:{Reason, _} -> {error, map_exit(Reason)}
                   end
           end,
    case Call({call, Service, Request, T, #{trace => TP}}) of
        %% a node older than the trace option refuses it before calling anything: again without
        {error, badarg} when Whose =:= new -> Call({call, Service, Request, T});
        Res -> Res
    end.

%% @doc A cluster-wide (global) name as `Node' resolves it: C names, and BEAM names through OTP
%% global in mixed clusters.
-spec whereis_name(node(), atom()) -> {ok, pid() | undefined} | {error, term()}.
whereis_name(Node, Name) when is_atom(Name) ->
    case call_service(Node, beamlet_global, {whereis, Name}, 15000) of
        {ok, undefined} -> {ok, undefined};
        {ok, Pid} when is_pid(Pid) -> {ok, Pid};
        Other -> Other
    end.

%% @doc Subscribe the caller to topics matching `Pattern' (`*' one level, `#' the rest) on
%% `Node''s pub/sub: it receives `{beamlet_msg, Topic, Payload, Meta}'. Opts: qos, queue limit,
%% link (see docs/services.md).
-spec subscribe(node(), binary(), map()) -> {ok, integer()} | {error, term()}.
subscribe(Node, Pattern, Opts) when is_map(Opts) ->
    unwrap(call_service(Node, beamlet_pubsub, {subscribe, Pattern, self(), Opts}, ?DEFAULT_TIMEOUT)).

-spec unsubscribe(node(), integer()) -> ok | {error, term()}.
unsubscribe(Node, SubId) ->
    unwrap(call_service(Node, beamlet_pubsub, {unsubscribe, SubId}, ?DEFAULT_TIMEOUT)).

%% @doc Publish on `Node'. Opts: priority, ttl_ms, qos, trace (default: the caller's current
%% trace, see {@link beamlet_trace}, else a new one). Returns the message id.
-spec publish(node(), binary(), term(), map()) -> {ok, binary()} | {error, term()}.
publish(Node, Topic, Payload, Opts) when is_map(Opts) ->
    Pub = fun(O) ->
                  unwrap(call_service(Node, beamlet_pubsub, {publish, Topic, Payload, O},
                                      ?DEFAULT_TIMEOUT))
          end,
    case maps:is_key(trace, Opts) of
        true -> Pub(Opts);
        false ->
            {TP, Whose} = beamlet_trace:for_request(),
            case Pub(Opts#{trace => TP}) of
                %% a node older than the trace option refuses it (nothing published): again
                {error, badarg} when Whose =:= new -> Pub(Opts);
                Res -> Res
            end
    end.

%% @doc Acknowledge an at-least-once delivery (to the node the subscription was made on).
-spec ack(node(), integer(), binary()) -> ok.
ack(Node, SubId, MsgId) ->
    gen_server:cast({beamlet_pubsub, Node}, {ack, SubId, MsgId}).

%% @doc The node's latest health sample from its `beamlet_health' process: cpu, load, memory,
%% pressure, disks, disk_io, network, uptime_s, process (see docs/health.md). The first call after
%% a node starts waits for its first sample.
-spec metrics(node()) -> {ok, map()} | {error, term()}.
metrics(Node) -> call_service(Node, beamlet_health, metrics, 2 * ?DEFAULT_TIMEOUT).

%% @doc The health sampler's settings: `#{interval_ms, samples}'.
-spec health_config(node()) -> {ok, map()} | {error, term()}.
health_config(Node) -> call_service(Node, beamlet_health, config, ?DEFAULT_TIMEOUT).

%% ---- health, alerts, events (the beamlet_health process, docs/health.md) ----

%% @doc The cluster's health as `Node' computes it: score 0.0..1.0, status, every member's
%% status and reasons, pending and firing alerts, recommendations.
-spec health(node()) -> {ok, cluster_health()} | {error, term()}.
health(Node) -> health_call(Node, health).

%% @doc Every alert of the cluster (pending, firing, resolved in the last hour), from any member:
%% alerts are decided once per cluster and replicated.
-spec alerts(node()) -> {ok, [alert()]} | {error, term()}.
alerts(Node) -> health_call(Node, alerts).

%% @doc Acknowledge alert `Id' as `Who' (recorded with the time; the first one counts).
-spec ack_alert(node(), pos_integer(), binary()) -> ok | {error, not_found | term()}.
ack_alert(Node, Id, Who) when is_integer(Id), is_binary(Who) ->
    health_call(Node, {ack, Id, Who}).

%% @doc Put `Node' in maintenance (`true') or take it out, as `Who' (audited): no alerts from
%% it, its registry entries not chosen by service calls and lookups.
-spec set_maintenance(node(), boolean(), binary()) -> ok | {error, term()}.
set_maintenance(Node, On, Who) when is_boolean(On), is_binary(Who) ->
    health_call(Node, {maintenance, On, Who}).

%% @doc `Node''s maintenance mode: `#{on, who, since_ms}'.
-spec maintenance(node()) -> {ok, #{on := boolean(), who := binary(),
                                    since_ms := non_neg_integer()}} | {error, term()}.
maintenance(Node) -> health_call(Node, maintenance).

%% @doc `Node''s event log and audit trail, newest first (every filter key optional).
-spec events(node(), event_filter()) -> {ok, [event()]} | {error, term()}.
events(Node, Filter) when is_map(Filter) -> health_call(Node, {events, Filter}).

%% @doc A metric's history since `SinceMs' (raw, 1 min or 1 h points `[TimeMs, Min, Avg, Max]');
%% `Metric' `<<>>': the names of the metrics recorded.
-spec history(node(), binary(), non_neg_integer()) -> {ok, history() | [binary()]} | {error, term()}.
history(Node, Metric, SinceMs) when is_binary(Metric), is_integer(SinceMs) ->
    health_call(Node, {history, Metric, SinceMs}).

-spec history(node(), binary(), non_neg_integer(), non_neg_integer()) ->
          {ok, history() | [binary()]} | {error, term()}.
history(Node, Metric, SinceMs, UntilMs) when is_binary(Metric), is_integer(SinceMs),
                                            is_integer(UntilMs) ->
    health_call(Node, {history, Metric, SinceMs, UntilMs}).

%% @doc `Node''s health checks with their status and the service each one drives.
-spec checks(node()) -> {ok, [check()]} | {error, term()}.
checks(Node) -> health_call(Node, checks).

%% @doc Subscribe the caller to the cluster's alerts (pub/sub topic `cluster.alerts' on `Node'):
%% it receives `{beamlet_msg, <<"cluster.alerts">>, Alert, Meta}' on every change (firing,
%% acknowledged, resolved). Stop with `unsubscribe(Node, SubId)'.
-spec subscribe_alerts(node()) -> {ok, integer()} | {error, term()}.
subscribe_alerts(Node) -> subscribe(Node, <<"cluster.alerts">>, #{}).

%% @doc The event logs of every active member (asked through `Node''s member list), merged newest
%% first, each event with `logged_by'; `limit' (default 100) applies to the merged list. Members
%% that do not answer are left out.
-spec cluster_events(node(), event_filter()) -> {ok, [event()]} | {error, term()}.
cluster_events(Node, Filter) when is_map(Filter) ->
    case fan_out(Node, fun(N) -> events(N, Filter) end) of
        {ok, Per} ->
            All = [E#{logged_by => N} || {N, Es} <- Per, E <- Es, is_map(E)],
            Sorted = lists:sort(fun(#{time_ms := A}, #{time_ms := B}) -> A >= B end, All),
            {ok, lists:sublist(Sorted, maps:get(limit, Filter, 100))};
        Err -> Err
    end.

%% @doc A metric on every active member, merged by time: `#{metric, nodes => #{Node => History},
%% points => [[TimeMs, Min, Avg, Max, Node]]}' oldest first.
-spec cluster_history(node(), binary(), non_neg_integer()) ->
          {ok, #{metric := binary(), nodes := #{node() => history()},
                 points := [[number() | node()]]}} | {error, term()}.
cluster_history(Node, Metric, SinceMs) when is_binary(Metric), Metric =/= <<>> ->
    case fan_out(Node, fun(N) -> history(N, Metric, SinceMs) end) of
        {ok, Per} ->
            Hs = maps:from_list([{N, H} || {N, H} <- Per, is_map(H)]),
            Pts = lists:sort([P ++ [N] || {N, #{points := Ps}} <- maps:to_list(Hs), P <- Ps]),
            {ok, #{metric => Metric, nodes => Hs, points => Pts}};
        Err -> Err
    end.

%% ---- cluster configuration (the beamlet_config process, docs/configuration.md) ----

%% @doc The cluster configuration as `Node' holds it: version, term, leader and every key set
%% cluster-wide with its value, whether it is live and whether `Node' runs it
%% (`applied' `<<"running">>' or `<<"restart_needed">>').
-spec config(node()) -> {ok, config_doc()} | {error, call_error() | binary()}.
config(Node) -> config_call(Node, get, ?DEFAULT_TIMEOUT).

%% @doc The cluster-wide value of `Key' as `Node' holds it; `{error, not_set}' when the key is
%% not set cluster-wide (each node runs its own value).
-spec config(node(), binary()) -> {ok, binary()} | {error, not_set | call_error() | binary()}.
config(Node, Key) when is_binary(Key) ->
    case config_call(Node, {get, Key}, ?DEFAULT_TIMEOUT) of
        {ok, #{settings := [#{value := V}]}} -> {ok, V};
        {ok, #{settings := []}} -> {error, not_set};
        {error, _} = E -> E
    end.

%% @doc Set `Key' to `Value' cluster-wide as `Who' (recorded in the history), through the leader
%% (`Node' forwards). `Value' is checked with the configuration file's rules: `{error, Message}'
%% names the key and nothing changes. `{ok, Write}' once a majority of the coordinators hold it
%% (`state' `<<"committed">>', or `<<"unchanged">>'); `{pending, Write}' when the leader holds it
%% but a majority did not within 5 s: {@link config_status/3} tells later whether it was
%% committed or rolled back.
-spec set_config(node(), binary(), binary() | integer() | boolean(), binary()) ->
          {ok, config_write()} | {pending, config_write()} |
          {error, call_error() | binary() | {unexpected, term()}}.
set_config(Node, Key, Value, Who) when is_binary(Key), is_binary(Who) ->
    config_write(Node, {set, Key, value_text(Value), Who}).

%% @doc Remove `Key' from the cluster configuration: every member goes back to its own value.
-spec unset_config(node(), binary(), binary()) ->
          {ok, config_write()} | {pending, config_write()} |
          {error, call_error() | binary() | {unexpected, term()}}.
unset_config(Node, Key, Who) when is_binary(Key), is_binary(Who) ->
    config_write(Node, {unset, Key, Who}).

%% @doc The changes of the cluster configuration, newest first.
-spec config_history(node()) -> {ok, [config_change()]} | {error, call_error() | binary()}.
config_history(Node) -> config_call(Node, history, ?DEFAULT_TIMEOUT).

%% @doc The changes of one key, newest first.
-spec config_history(node(), binary()) -> {ok, [config_change()]} | {error, call_error() | binary()}.
config_history(Node, Key) when is_binary(Key) -> config_call(Node, {history, Key}, ?DEFAULT_TIMEOUT).

%% @doc What became of the write of `Version' made in `Term' (the `version' and `term' of a
%% {@link set_config/4} answer), as `Node' sees it: `state' `<<"committed">>', `<<"pending">>',
%% `<<"lost">>' (a new leader rolled it back) or `<<"unknown">>'.
-spec config_status(node(), non_neg_integer(), non_neg_integer()) ->
          {ok, config_status()} | {error, call_error() | binary()}.
config_status(Node, Version, Term) when is_integer(Version), Version >= 0, is_integer(Term),
                                        Term >= 0 ->
    config_call(Node, {status, Version, Term}, ?DEFAULT_TIMEOUT).

%% @doc Subscribe the caller to the changes `Node' applies: it receives
%% `{beamlet_config, config_change()}' for each. A node takes 256 watchers at most
%% (`{error, Message}' beyond); a watcher is dropped when its node disconnects.
-spec watch_config(node()) -> ok | {error, call_error() | binary()}.
watch_config(Node) ->
    case config_call(Node, {watch, self()}, ?DEFAULT_TIMEOUT) of
        {ok, ok} -> ok;
        {error, _} = E -> E
    end.

%% @doc Stop the caller's subscription on `Node'.
-spec unwatch_config(node()) -> ok | {error, call_error() | binary()}.
unwatch_config(Node) ->
    case config_call(Node, {unwatch, self()}, ?DEFAULT_TIMEOUT) of
        {ok, ok} -> ok;
        {error, _} = E -> E
    end.

%% a write waits up to 5 s for a majority on the leader, 2 s more when forwarded
config_write(Node, Req) ->
    case config_call(Node, Req, 3 * ?DEFAULT_TIMEOUT) of
        {ok, {ok, W}} -> {ok, W};
        {ok, {pending, W}} -> {pending, W};
        {ok, Other} -> {error, {unexpected, Other}};
        {error, _} = E -> E
    end.

config_call(Node, Req, Timeout) -> call_service(Node, beamlet_config, Req, Timeout).

value_text(V) when is_binary(V) -> V;
value_text(V) when is_integer(V) -> integer_to_binary(V);
value_text(true) -> <<"true">>;
value_text(false) -> <<"false">>.

%% Ask every active beamlet member (as Node's health reply lists them; BEAM members, role
%% `beam', have no beamlet_health): [{Member, Value}] of those that answered {ok, Value}.
fan_out(Node, Ask) ->
    case health(Node) of
        {ok, #{nodes := Nodes}} ->
            Members = [member_node(N) || #{node := N, state := active} = M <- Nodes,
                                         maps:get(role, M, <<>>) =/= <<"beam">>],
            {ok, [{M, V} || M <- Members, {ok, V} <- [Ask(M)]]};
        Err -> Err
    end.

member_node(N) when is_atom(N) -> N;
member_node(N) when is_binary(N) -> binary_to_atom(N, utf8).

health_call(Node, Request) ->
    case call_service(Node, beamlet_health, Request, 2 * ?DEFAULT_TIMEOUT) of
        {ok, ok} -> ok;
        {ok, {ok, Value}} -> {ok, Value};
        {ok, {error, Reason}} -> {error, Reason};
        {ok, Value} -> {ok, Value};
        {error, _} = E -> E
    end.

registry(Node, Req) -> call_service(Node, beamlet_registry, Req, ?DEFAULT_TIMEOUT).

unwrap({ok, ok}) -> ok;
unwrap({ok, {ok, V}}) -> {ok, V};
unwrap({ok, {error, R}}) -> {error, R};
unwrap({ok, Other}) -> {ok, Other};
unwrap(Err) -> Err.

call_service(Node, Proc, Req, Timeout) when is_atom(Node) ->
    try gen_server:call({Proc, Node}, Req, Timeout) of
        {error, Reason} -> {error, Reason};
        Reply -> {ok, Reply}
    catch
        exit:{Reason, _} -> {error, map_exit(Reason)}
    end.

cluster(Node, Req) when is_atom(Node) ->
    try gen_server:call({beamlet_cluster, Node}, Req, ?DEFAULT_TIMEOUT) of
        {error, Reason} -> {error, Reason};
        Reply -> {ok, Reply}
    catch
        exit:{Reason, _} -> {error, map_exit(Reason)}
    end.

builtin(Node, Req, Timeout) when is_atom(Node) ->
    try gen_server:call({beamlet, Node}, Req, Timeout) of
        {error, Reason} -> {error, Reason};
        Reply -> {ok, Reply}
    catch
        exit:{Reason, _} -> {error, map_exit(Reason)}
    end.
