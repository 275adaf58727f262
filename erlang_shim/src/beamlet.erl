%% @doc Use beamlet C nodes from Erlang as if they were BEAM nodes, and run C workers.
%%
%% Start the application first (`application:ensure_all_started(beamlet)'); {@link call/4},
%% {@link cast/3}, {@link connect/1}, {@link info/1} and {@link stats/1} also work without it.
%%
%% ```
%% {ok, _} = application:ensure_all_started(beamlet),
%% {ok, W} = beamlet:start_worker(#{name => "w1"}),
%% {ok, pong} = beamlet:call(W, beamlet, ping),
%% {error, noproc} = beamlet:call(W, no_such_service, hello),
%% [#{node := W, role := agent}] = beamlet:nodes(),
%% ok = beamlet:stop_worker(W).
%% '''
%%
%% Call errors are `nodedown', `timeout' and `noproc' (see {@link beamlet_client:call/4}).
%% Node monitoring: {@link monitor/1} returns a reference; `{beamlet_nodedown, Ref, Node}' is sent
%% to the caller when the connection to `Node' goes down (at once if it is not connected). It is a
%% one-shot monitor, like `erlang:monitor/2'; {@link demonitor/1} removes it.
-module(beamlet).
-compile({no_auto_import, [nodes/0, demonitor/1]}).

-export([members/1, cluster_status/1, leader/1, subscribe_cluster/1, unsubscribe_cluster/1]).
-export([register_service/1, register_service/2, deregister_service/2, find_services/1,
         find_services/2, watch_services/1, unwatch_services/1, service_call/2, service_call/3, whereis/1,
         whereis/2]).
-export([subscribe/2, subscribe/3, unsubscribe/2, publish/3, publish/4, ack/3]).
-export([metrics/1, health_config/1]).
-export([connect/1, nodes/0, monitor/1, demonitor/1, info/1, stats/1, registered/1,
         call/3, call/4, cast/3,
         start_worker/1, stop_worker/1, which_workers/0, worker_os_pid/1]).

-export([health/1, alerts/1, ack_alert/3, set_maintenance/3, maintenance/1, events/2,
         cluster_events/2, history/3, cluster_history/3, checks/1, subscribe_alerts/1]).
-export([config/1, config/2, set_config/4, unset_config/3, config_history/1, config_history/2,
         config_status/3, watch_config/1, unwatch_config/1]).
-export_type([node_info/0, worker_opts/0, call_error/0]).

-type call_error() :: beamlet_client:call_error().
-type node_info() :: #{node := node(), role := atom(), cluster := binary(), version := binary(),
                       state := up | joining | active | suspected | failed | leaving | left}.
-type worker_opts() :: beamlet_worker:opts().

%% @doc Connect to a beamlet node and check that it is one. See {@link beamlet_client:connect/1}.
-spec connect(node()) -> ok | {error, not_alive | nodedown | not_beamlet | timeout}.
connect(Node) -> beamlet_client:connect(Node).

%% @doc The beamlet nodes known here, sorted by name: the connected (hidden or visible) nodes
%% that answer as beamlet nodes (from `net_kernel:monitor_nodes/2', kept by `beamlet_nodes'),
%% merged with the member list of their clusters, so members that are not connected (failed,
%% left) are listed too and `state' is the cluster's view (joining, active, suspected, failed,
%% leaving, left); a connected node whose cluster could not be asked has state `up'.
%% Needs the application.
-spec nodes() -> [node_info()].
nodes() ->
    Connected = beamlet_nodes:list(),
    Clusters = lists:usort([{maps:get(cluster, I), maps:get(node, I)} || I <- Connected]),
    %% one connected node per cluster is asked for that cluster's members
    Asked = lists:ukeysort(1, Clusters),
    FromClusters =
        lists:append([[#{node => maps:get(node, M), role => maps:get(role, M),
                         cluster => Cl, version => maps:get(version, M, <<>>),
                         state => maps:get(state, M)}
                       || M <- Ms, maps:get(kind, M, beamlet) =:= beamlet]
                      || {Cl, N} <- Asked, {ok, Ms} <- [beamlet_client:members(N)]]),
    Known = maps:from_list([{maps:get(node, I), I} || I <- Connected]),
    Merged = maps:merge(Known, maps:from_list([{maps:get(node, I), I} || I <- FromClusters])),
    [I || {_, I} <- lists:sort(maps:to_list(Merged))].

%% @doc Register a service entry on any connected beamlet node (it owns the entry: TTL,
%% health, removal when it fails). See {@link beamlet_client:register_service/2}.
-spec register_service(map()) -> {ok, binary()} | {error, term()}.
register_service(Entry) -> beamlet_client:any_node(fun(N) -> register_service(N, Entry) end).

-spec register_service(node(), map()) -> {ok, binary()} | {error, term()}.
register_service(Node, Entry) -> beamlet_client:register_service(Node, Entry).

-spec deregister_service(node(), binary()) -> ok | {error, term()}.
deregister_service(Node, Id) -> beamlet_client:deregister_service(Node, Id).

%% @doc Services matching a query (name, tags_all, tags_any, health, metadata), cluster-wide.
-spec find_services(map()) -> {ok, [map()]} | {error, term()}.
find_services(Query) -> beamlet_client:find_services(Query).

-spec find_services(node(), map()) -> {ok, [map()]} | {error, term()}.
find_services(Node, Query) -> beamlet_client:find_services(Node, Query).

%% @doc Subscribe the caller to `{beamlet_registry_event, Event}' messages from `Node'.
-spec watch_services(node()) -> ok | {error, term()}.
watch_services(Node) -> beamlet_client:watch_services(Node).

%% @doc Stop the caller's `beamlet_registry_event' messages from `Node'.
-spec unwatch_services(node()) -> ok | {error, term()}.
unwatch_services(Node) -> beamlet_client:unwatch_services(Node).

%% @doc A load-balanced call to a healthy instance of `Service', failing over to another one on
%% timeout or nodedown.
-spec service_call(binary() | atom(), term()) -> {ok, term()} | {error, term()}.
service_call(Service, Request) -> service_call(Service, Request, 5000).

-spec service_call(binary() | atom(), term(), beamlet_client:timeout_ms()) ->
          {ok, term()} | {error, term()}.
service_call(Service, Request, Timeout) ->
    beamlet_client:service_call(Service, Request, Timeout).

%% @doc The pid of a cluster-wide (global) name, resolved by any connected beamlet node.
-spec whereis(atom()) -> pid() | undefined.
whereis(Name) ->
    case beamlet_client:whereis_name(Name) of
        {ok, Pid} -> Pid;
        {error, _} -> undefined
    end.

-spec whereis(node(), atom()) -> pid() | undefined.
whereis(Node, Name) ->
    case beamlet_client:whereis_name(Node, Name) of
        {ok, Pid} -> Pid;
        {error, _} -> undefined
    end.

%% @doc Subscribe the calling process to `Pattern' on `Node': it receives
%% `{beamlet_msg, Topic, Payload, Meta}' (see {@link beamlet_client:subscribe/3}).
-spec subscribe(node(), binary()) -> {ok, integer()} | {error, term()}.
subscribe(Node, Pattern) -> beamlet_client:subscribe(Node, Pattern, #{}).

-spec subscribe(node(), binary(), map()) -> {ok, integer()} | {error, term()}.
subscribe(Node, Pattern, Opts) -> beamlet_client:subscribe(Node, Pattern, Opts).

-spec unsubscribe(node(), integer()) -> ok | {error, term()}.
unsubscribe(Node, SubId) -> beamlet_client:unsubscribe(Node, SubId).

%% @doc Publish `Payload' on `Topic' through `Node' (at most once, normal priority).
-spec publish(node(), binary(), term()) -> {ok, binary()} | {error, term()}.
publish(Node, Topic, Payload) -> beamlet_client:publish(Node, Topic, Payload, #{}).

-spec publish(node(), binary(), term(), map()) -> {ok, binary()} | {error, term()}.
publish(Node, Topic, Payload, Opts) -> beamlet_client:publish(Node, Topic, Payload, Opts).

%% @doc Acknowledge an at-least-once delivery `{beamlet_msg, _, _, #{id := MsgId, sub := SubId}}'.
-spec ack(node(), integer(), binary()) -> ok.
ack(Node, SubId, MsgId) -> beamlet_client:ack(Node, SubId, MsgId).

%% @doc The node's latest health sample (cpu, load, memory, pressure, disks, disk_io, network,
%% uptime_s, process). See {@link beamlet_client:metrics/1} and docs/health.md.
-spec metrics(node()) -> {ok, map()} | {error, term()}.
metrics(Node) -> beamlet_client:metrics(Node).

%% @doc `#{interval_ms, samples}' of the node's health sampler.
-spec health_config(node()) -> {ok, map()} | {error, term()}.
health_config(Node) -> beamlet_client:health_config(Node).

%% @doc See {@link beamlet_client:members/1}.
-spec members(node()) -> {ok, [map()]} | {error, term()}.
members(Node) -> beamlet_client:members(Node).

%% @doc See {@link beamlet_client:cluster_status/1}.
-spec cluster_status(node()) -> {ok, map()} | {error, term()}.
cluster_status(Node) -> beamlet_client:cluster_status(Node).

%% @doc See {@link beamlet_client:leader/1}.
-spec leader(node()) -> {ok, {node() | undefined, non_neg_integer()}} | {error, term()}.
leader(Node) -> beamlet_client:leader(Node).

%% @doc Subscribe the caller to `{beamlet_cluster_event, Event}' messages from `Node'.
-spec subscribe_cluster(node()) -> ok | {error, term()}.
subscribe_cluster(Node) -> beamlet_client:subscribe_cluster(Node).

-spec unsubscribe_cluster(node()) -> ok | {error, term()}.
unsubscribe_cluster(Node) -> beamlet_client:unsubscribe_cluster(Node).

%% @doc Monitor the connection to `Node'. The caller gets `{beamlet_nodedown, Ref, Node}' once,
%% when the connection goes down, or at once if `Node' is not connected now. Needs the application.
-spec monitor(node()) -> reference().
monitor(Node) when is_atom(Node) ->
    Ref = make_ref(),
    ok = beamlet_nodes:monitor(Node, Ref, self(), {beamlet_nodedown, Ref, Node}),
    Ref.

%% @doc Remove a monitor made by {@link monitor/1}; a `beamlet_nodedown' message already sent is
%% flushed from the caller's mailbox.
-spec demonitor(reference()) -> ok.
demonitor(Ref) when is_reference(Ref) ->
    ok = beamlet_nodes:demonitor(Ref),
    receive {beamlet_nodedown, Ref, _} -> ok after 0 -> ok end.

%% @doc The node's `info' map (node, role, cluster, version, uptime_ms, connections, processes,
%% creation, os_pid, port).
-spec info(node()) -> {ok, map()} | {error, term()}.
info(Node) -> beamlet_client:info(Node).

%% @doc The node's traffic counters and per-connection send queues.
-spec stats(node()) -> {ok, map()} | {error, term()}.
stats(Node) -> beamlet_client:stats(Node).

%% @doc The names registered on the node.
-spec registered(node()) -> {ok, [atom()]} | {error, term()}.
registered(Node) -> beamlet_client:registered(Node).

%% @equiv call(Node, Service, Request, 5000)
-spec call(node(), atom(), term()) -> {ok, term()} | {error, call_error() | term()}.
call(Node, Service, Request) -> beamlet_client:call(Node, Service, Request).

%% @doc `gen_server:call' to `Service' on `Node', through the node's `beamlet' process.
%% See {@link beamlet_client:call/4} for the error reasons.
-spec call(node(), atom(), term(), beamlet_client:timeout_ms()) ->
          {ok, term()} | {error, call_error() | term()}.
call(Node, Service, Request, Timeout) -> beamlet_client:call(Node, Service, Request, Timeout).

%% @doc `gen_server:cast({Service, Node}, Request)'.
-spec cast(node(), atom(), term()) -> ok.
cast(Node, Service, Request) -> beamlet_client:cast(Node, Service, Request).

%% @doc Start a supervised beamlet worker node (`beamlet node ...' run as a port) and wait until it
%% answers. See {@link beamlet_worker} for the options and the restart rules.
-spec start_worker(worker_opts()) -> {ok, node()} | {error, term()}.
start_worker(Opts) -> beamlet_worker_sup:start_worker(Opts).

%% @doc Stop a worker started by {@link start_worker/1}: SIGTERM, wait for it to exit.
-spec stop_worker(node()) -> ok | {error, not_found}.
stop_worker(Node) -> beamlet_worker_sup:stop_worker(Node).

%% @doc The workers this node runs: `[{Node, OsPid, Status}]', Status `starting' or `up'.
-spec which_workers() -> [{node(), integer() | undefined, starting | up}].
which_workers() -> beamlet_worker_sup:which_workers().

%% @doc The OS pid of a worker's beamlet process.
-spec worker_os_pid(node()) -> {ok, integer()} | {error, not_found}.
worker_os_pid(Node) -> beamlet_worker_sup:os_pid(Node).

%% ---- health, metrics, alerts (the beamlet_health process, docs/health.md) ----
%% Implemented in beamlet_client (shared with the Gleam package); see it for the map shapes.

%% @doc The cluster's health as `Node' computes it: `#{score, status, nodes, alerts,
%% recommendations, ...}'.
-spec health(node()) -> {ok, beamlet_client:cluster_health()} | {error, term()}.
health(Node) -> beamlet_client:health(Node).

%% @doc Every alert (pending, firing, resolved in the last hour), on any member.
-spec alerts(node()) -> {ok, [beamlet_client:alert()]} | {error, term()}.
alerts(Node) -> beamlet_client:alerts(Node).

%% @doc Acknowledge alert `Id' as `Who'.
-spec ack_alert(node(), pos_integer(), binary()) -> ok | {error, term()}.
ack_alert(Node, Id, Who) -> beamlet_client:ack_alert(Node, Id, Who).

%% @doc Maintenance on or off for `Node', as `Who' (audited).
-spec set_maintenance(node(), boolean(), binary()) -> ok | {error, term()}.
set_maintenance(Node, On, Who) -> beamlet_client:set_maintenance(Node, On, Who).

%% @doc `#{on, who, since_ms}' of `Node''s maintenance mode.
-spec maintenance(node()) -> {ok, map()} | {error, term()}.
maintenance(Node) -> beamlet_client:maintenance(Node).

%% ---- cluster configuration (docs/configuration.md; beamlet_client has the details) ----

%% @doc The cluster configuration as `Node' holds it.
-spec config(node()) -> {ok, beamlet_client:config_doc()} | {error, term()}.
config(Node) -> beamlet_client:config(Node).

%% @doc The cluster-wide value of `Key' (`{error, not_set}' when it is not set).
-spec config(node(), binary()) -> {ok, binary()} | {error, term()}.
config(Node, Key) -> beamlet_client:config(Node, Key).

%% @doc Set `Key' cluster-wide as `Who': `{ok, Write}' committed, `{pending, Write}' held by the
%% leader only so far (see {@link config_status/3}), `{error, Message}' refused.
-spec set_config(node(), binary(), binary() | integer() | boolean(), binary()) ->
          {ok, beamlet_client:config_write()} | {pending, beamlet_client:config_write()} |
          {error, term()}.
set_config(Node, Key, Value, Who) -> beamlet_client:set_config(Node, Key, Value, Who).

%% @doc Remove `Key' from the cluster configuration, as `Who'.
-spec unset_config(node(), binary(), binary()) ->
          {ok, beamlet_client:config_write()} | {pending, beamlet_client:config_write()} |
          {error, term()}.
unset_config(Node, Key, Who) -> beamlet_client:unset_config(Node, Key, Who).

%% @doc The changes of the cluster configuration, newest first.
-spec config_history(node()) -> {ok, [beamlet_client:config_change()]} | {error, term()}.
config_history(Node) -> beamlet_client:config_history(Node).

%% @doc The changes of `Key', newest first.
-spec config_history(node(), binary()) -> {ok, [beamlet_client:config_change()]} | {error, term()}.
config_history(Node, Key) -> beamlet_client:config_history(Node, Key).

%% @doc What became of a write: committed, pending, lost or unknown.
-spec config_status(node(), non_neg_integer(), non_neg_integer()) ->
          {ok, beamlet_client:config_status()} | {error, term()}.
config_status(Node, Version, Term) -> beamlet_client:config_status(Node, Version, Term).

%% @doc The caller receives `{beamlet_config, Change}' for each change `Node' applies.
-spec watch_config(node()) -> ok | {error, term()}.
watch_config(Node) -> beamlet_client:watch_config(Node).

%% @doc Stop watching `Node''s configuration.
-spec unwatch_config(node()) -> ok | {error, term()}.
unwatch_config(Node) -> beamlet_client:unwatch_config(Node).

%% @doc `Node''s events, newest first; Filter: since_ms, until_ms, type, node, severity, limit.
-spec events(node(), beamlet_client:event_filter()) -> {ok, [beamlet_client:event()]} | {error, term()}.
events(Node, Filter) -> beamlet_client:events(Node, Filter).

%% @doc Every active member's events merged newest first (each with `logged_by').
-spec cluster_events(node(), beamlet_client:event_filter()) ->
          {ok, [beamlet_client:event()]} | {error, term()}.
cluster_events(Node, Filter) -> beamlet_client:cluster_events(Node, Filter).

%% @doc A metric's history (`Metric' `<<>>': the metric names).
-spec history(node(), binary(), non_neg_integer()) -> {ok, map() | [binary()]} | {error, term()}.
history(Node, Metric, SinceMs) -> beamlet_client:history(Node, Metric, SinceMs).

%% @doc A metric on every active member, points merged by time.
-spec cluster_history(node(), binary(), non_neg_integer()) -> {ok, map()} | {error, term()}.
cluster_history(Node, Metric, SinceMs) -> beamlet_client:cluster_history(Node, Metric, SinceMs).

%% @doc The node's health checks with their status.
-spec checks(node()) -> {ok, [beamlet_client:check()]} | {error, term()}.
checks(Node) -> beamlet_client:checks(Node).

%% @doc The caller gets `{beamlet_msg, <<"cluster.alerts">>, Alert, Meta}' on every alert change.
-spec subscribe_alerts(node()) -> {ok, integer()} | {error, term()}.
subscribe_alerts(Node) -> beamlet_client:subscribe_alerts(Node).
