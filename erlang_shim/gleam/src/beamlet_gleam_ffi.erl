%% @doc The Erlang side of the Gleam `beamlet' package: adapts the shim's Erlang shapes to the
%% shapes Gleam compiles its types to.
%%
%% Gleam data on the BEAM: `String' = UTF-8 binary, `Nil' = `nil', `Result' = `{ok, V}' |
%% `{error, E}', `Option' = `{some, V}' | `none', a record `Name(a, b)' = `{name, A, B}', a
%% field-less variant = a bare atom (`NodeDown' -> `node_down'), `List' = list, `Dict' = map,
%% `Int' = integer, a tuple `#(a, b)' = `{A, B}'. gleam_erlang's `Node' and `Atom' are atoms, `Pid'
%% a pid, `Subject' `{subject, Pid, Tag}' | `{named_subject, Name}'. Every exported function is
%% called by an `@external(erlang, "beamlet_gleam_ffi", ...)' in `src/beamlet.gleam' or
%% `src/beamlet/*.gleam'; this module calls only the Erlang modules of the package (never the
%% shim's `beamlet.erl', whose module name `beamlet.gleam' takes in a Gleam build) and OTP.
%% erlang_shim/test/gleam_run.sh checks both in the module layout of a Gleam build.
-module(beamlet_gleam_ffi).

-export([start/0, start_distribution/2, call/4, cast/3, unsubscribe/1, subscription_pid/1,
         node_from_dynamic/1,
         connect/1, nodes/0, info/1, stats/1, registered/1, whereis/2, monitor/2, demonitor/1,
         start_worker/1, start_link_worker/1, worker_node/1, stop_worker/1, which_workers/0, worker_os_pid/1,
         discovery_start/1, discovery_found/1, discovery_refresh/1, discovery_stop/1,
         cluster_members/1, cluster_status/1, cluster_leader/1, cluster_subscribe/2,
         registry_register/2, registry_deregister/2, registry_find/1, registry_find_on/2,
         registry_call/3, registry_watch/2, registry_search/1, registry_search_on/2,
         global_whereis/1, global_whereis_on/2,
         pubsub_subscribe/4, pubsub_publish/4,
         health_metrics/1, health_raw_metrics/1, health_interval/1,
         health_cluster/1, health_set_maintenance/3, health_maintenance/1, health_checks/1,
         health_history/3, health_metric_names/2, health_cluster_history/3,
         alerts_list/1, alerts_acknowledge/3, alerts_subscribe/2,
         events_list/2, events_list_cluster/2,
         identity/1, task_submit/2, task_get/2, task_wait/3, task_cancel/2, task_handle/3,
         task_changes/6, task_watch/4,
         config_document/1, config_get/2, config_set/4, config_unset/3, config_history/2,
         config_status/3, config_watch/2]).

-type gleam_result(T, E) :: {ok, T} | {error, E}.
-type gleam_option(T) :: {some, T} | none.
%% Gleam: beamlet.CallError
-type call_error() :: node_down | timeout | no_proc | badarg | not_found | no_instances
                    | no_beamlet_node | unregistered_subject | {failed, binary()}.
%% Gleam: beamlet.Role { Coordinator Agent Gateway Monitor OtherRole(name: String) }
-type role() :: coordinator | agent | gateway | monitor | {other_role, binary()}.
%% Gleam: node.ConnectError { NotAlive NotBeamlet Unreachable NoAnswer }
-type connect_error() :: not_alive | not_beamlet | unreachable | no_answer.
%% Gleam: worker.StartError { AlreadyStarted BinaryNotFound(path) StartTimeout StartFailed(reason) }
-type start_error() :: already_started | {binary_not_found, binary()} | start_timeout
                     | {start_failed, binary()}.
%% Gleam: worker.Options(name, cookie, role, cluster, join, extra_args, binary, start_timeout)
-type worker_options() :: {options, binary(), gleam_option(binary()), gleam_option(role()),
                           gleam_option(binary()), [node()], [binary()],
                           gleam_option(binary()), integer()}.
%% Gleam: node.NodeInfo(node, role, cluster, version)
-type node_info() :: {node_info, node(), role(), binary(), binary()}.
%% Gleam: node.Info(node, role, cluster, version, uptime_ms, processes, os_pid, port, connections)
-type info() :: {info, node(), role(), binary(), binary(), integer(), integer(), integer(),
                 integer(), [node()]}.
%% Gleam: cluster.MemberState { Joining Active Suspected Failed Leaving Left }
-type member_state() :: joining | active | suspected | failed | leaving | left.
%% Gleam: cluster.Member(node, role, state, kind: Kind { BeamletNode BeamNode })
-type member() :: {member, node(), role(), member_state(), beamlet_node | beam_node}.
%% Gleam: cluster.Status(cluster, size, leader: Option(Node), term, healthy: Bool)
-type status() :: {status, binary(), integer(), gleam_option(node()), integer(), boolean()}.
%% Gleam: cluster.Event
-type event() :: {node_joined, node(), role()}
               | {node_state_changed, node(), member_state(), member_state()}
               | {node_left, node()}
               | {leader_changed, gleam_option(node()), integer()}.
%% Gleam: registry.Instance(id, name, node, version, address, port, tags, metadata, health)
-type instance() :: {instance, binary(), binary(), node(), binary(), binary(), integer(),
                     [binary()], #{binary() => binary()}, passing | warning | critical}.
%% Gleam: registry.Registration(name, version, address, port, tags, metadata, ttl_ms: Option(Int))
-type registration() :: {registration, binary(), binary(), binary(), integer(), [binary()],
                         #{binary() => binary()}, gleam_option(integer())}.
%% gleam_erlang 1.x Subject(message)
-type subject() :: {subject, pid(), term()} | {named_subject, atom()}.
%% Gleam: pubsub.Qos { AtMostOnce AtLeastOnce(name: String) ExactlyOnce(name: String) }
-type qos() :: at_most_once | {at_least_once, binary()} | {exactly_once, binary()}.
%% Gleam: pubsub.Publish(priority: Priority, ttl_ms: Option(Int), durable: Bool)
-type publish() :: {publish, high | normal | low, gleam_option(integer()), boolean()}.
%% Gleam: discovery.Options(hosts: List(String), local: Bool, pattern: Option(String), interval: Int)
-type discovery_options() :: {options, [binary()], boolean(), gleam_option(binary()), integer()}.

%%% ------------------------------------------------------------------ application

%% @doc `beamlet.start()': start the `beamlet' application (and what it needs).
-spec start() -> gleam_result(nil, binary()).
start() ->
    case application:ensure_all_started(beamlet) of
        {ok, _} -> {ok, nil};
        {error, R} -> {error, text(R)}
    end.

%% @doc `beamlet.start_distribution(named:, cookie:)': make this VM a distributed node with a
%% short name (when `gleam run' started it without one) and set its cookie; returns this node.
-spec start_distribution(binary(), binary()) -> gleam_result(node(), binary()).
start_distribution(Name, Cookie) ->
    Res = case node() of
              nonode@nohost -> net_kernel:start([binary_to_atom(Name, utf8), shortnames]);
              _ -> {ok, already}
          end,
    case Res of
        {ok, _} ->
            true = erlang:set_cookie(node(), binary_to_atom(Cookie, utf8)),
            {ok, node()};
        {error, R} -> {error, text(R)}
    end.

%%% ------------------------------------------------------------------ calls

%% @doc `beamlet.call': the reply undecoded (the Gleam side runs the caller's decoder).
-spec call(node(), atom(), term(), integer()) -> gleam_result(term(), call_error()).
call(Node, Service, Request, Timeout) ->
    result(beamlet_client:call(Node, Service, Request, max(0, Timeout))).

%% @doc `beamlet.cast'.
-spec cast(node(), atom(), term()) -> nil.
cast(Node, Service, Msg) ->
    ok = beamlet_client:cast(Node, Service, Msg),
    nil.

%% Erlang call error -> Gleam `CallError'.
-spec call_error(term()) -> call_error().
call_error(nodedown) -> node_down;
call_error(timeout) -> timeout;
call_error(noproc) -> no_proc;
call_error(badarg) -> badarg;
call_error(not_found) -> not_found;
call_error(no_instances) -> no_instances;
call_error(no_beamlet_node) -> no_beamlet_node;
call_error(unregistered_subject) -> unregistered_subject;
call_error(Other) -> {failed, text(Other)}.

result({ok, V}) -> {ok, V};
result({error, R}) -> {error, call_error(R)}.

%%% ------------------------------------------------------------------ subscriptions

%% A subscription is a relay process: it subscribes to the C node (as itself), turns what the
%% node sends into the Gleam message type and sends it into the Subject the way process.send
%% does; it ends (unsubscribing) on `beamlet.unsubscribe', when the subject's owner exits, or
%% when the connection to the node drops. Subscribe(): {ok, Value} | {error, R};
%% Unsub(Value): anything; Handle(Msg, Value): {deliver, GleamMsg} | ignore.
relay(Node, Subject, Subscribe, Unsub, Handle) ->
    case subject_owner(Subject) of
        {error, nil} -> {error, unregistered_subject};
        {ok, Owner} ->
            Parent = self(),
            Ref = make_ref(),
            {Relay, Mon} =
                spawn_monitor(fun() ->
                                      _ = erlang:monitor(process, Owner),
                                      true = erlang:monitor_node(Node, true),
                                      process_flag(trap_exit, true),
                                      case Subscribe() of
                                          {ok, V} ->
                                              Parent ! {Ref, ok},
                                              relay_loop(Node, Subject, V, Unsub, Handle);
                                          {error, R} ->
                                              Parent ! {Ref, {error, R}}
                                      end
                              end),
            receive
                {Ref, ok} -> erlang:demonitor(Mon, [flush]), {ok, Relay};
                {Ref, {error, R}} -> erlang:demonitor(Mon, [flush]), {error, call_error(R)};
                {'DOWN', Mon, process, Relay, R} -> {error, {failed, text(R)}}
            after 15000 ->
                    exit(Relay, kill),
                    erlang:demonitor(Mon, [flush]),
                    {error, timeout}
            end
    end.

relay_loop(Node, Subject, V, Unsub, Handle) ->
    receive
        {'$beamlet_unsubscribe', From, Tag} ->
            _ = Unsub(V),
            From ! {Tag, ok};
        {'DOWN', _, process, _, _} ->
            _ = Unsub(V),
            ok;
        {nodedown, Node} ->
            ok;
        {'EXIT', _, _} -> % the node's process we are linked to went away (connection dropped)
            ok;
        Msg ->
            _ = case Handle(Msg, V) of
                    {deliver, G} -> send_subject(Subject, G);
                    ignore -> ok
                end,
            relay_loop(Node, Subject, V, Unsub, Handle)
    end.

%% @doc `beamlet.unsubscribe(subscription)': stop the relay (it unsubscribes on the node first).
%% Messages already in the subject's mailbox stay there.
-spec unsubscribe(pid()) -> nil.
unsubscribe(Relay) when is_pid(Relay) ->
    Mon = erlang:monitor(process, Relay),
    Relay ! {'$beamlet_unsubscribe', self(), Mon},
    receive
        {Mon, ok} -> erlang:demonitor(Mon, [flush]), nil;
        {'DOWN', Mon, process, Relay, _} -> nil
    after 10000 ->
            exit(Relay, kill),
            erlang:demonitor(Mon, [flush]),
            nil
    end.

%% @doc `beamlet.subscription_pid(subscription)': the relay process (to monitor it: it ends when
%% the subscription does, for example when the connection to the node drops).
-spec subscription_pid(pid()) -> pid().
subscription_pid(Relay) when is_pid(Relay) -> Relay.

%% @doc `beamlet.node_decoder()': an atom is a Node.
-spec node_from_dynamic(term()) -> gleam_result(node(), nil).
node_from_dynamic(A) when is_atom(A) -> {ok, A};
node_from_dynamic(_) -> {error, nil}.

%% A Subject as gleam_erlang's process.send delivers to it: `{Tag, Msg}' to the owner, or
%% `{Name, Msg}' to the process registered as Name (a name nobody holds any more: dropped).
send_subject({subject, Owner, Tag}, Msg) -> Owner ! {Tag, Msg};
send_subject({named_subject, Name}, Msg) ->
    case whereis(Name) of
        undefined -> ok;
        Pid -> Pid ! {Name, Msg}
    end.

%% The process behind a Subject now: its owner, or the process registered under its name.
-spec subject_owner(subject()) -> {ok, pid()} | {error, nil}.
subject_owner({subject, Owner, _}) -> {ok, Owner};
subject_owner({named_subject, Name}) ->
    case whereis(Name) of
        undefined -> {error, nil};
        Pid -> {ok, Pid}
    end.

%%% ------------------------------------------------------------------ cluster

%% @doc `cluster.members(of:)'.
-spec cluster_members(node()) -> gleam_result([member()], call_error()).
cluster_members(Node) ->
    case beamlet_client:members(Node) of
        {ok, Ms} -> {ok, [member(M) || M = #{node := _, state := _} <- Ms]};
        {error, R} -> {error, call_error(R)}
    end.

member(M = #{node := N, state := S}) ->
    Kind = case maps:get(kind, M, beamlet) of
               beam -> beam_node;
               _ -> beamlet_node
           end,
    {member, N, role(maps:get(role, M, unknown)), S, Kind}.

%% @doc `cluster.status(of:)'.
-spec cluster_status(node()) -> gleam_result(status(), call_error()).
cluster_status(Node) ->
    case beamlet_client:cluster_status(Node) of
        {ok, #{cluster := C, size := Size, leader := L, term := T, health := H}} ->
            {ok, {status, bin(C), Size, option(L), T, H =:= healthy}};
        {ok, Other} -> {error, {failed, text(Other)}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `cluster.leader(of:)': `Leader(node: Option(Node), term: Int)'.
-spec cluster_leader(node()) -> gleam_result({leader, gleam_option(node()), integer()}, call_error()).
cluster_leader(Node) ->
    case beamlet_client:leader(Node) of
        {ok, {L, T}} -> {ok, {leader, option(L), T}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `cluster.subscribe(to:, into:)': a relay delivering `Event's.
-spec cluster_subscribe(node(), subject()) -> gleam_result(pid(), call_error()).
cluster_subscribe(Node, Subject) ->
    relay(Node, Subject,
          fun() -> case beamlet_client:subscribe_cluster(Node) of
                       ok -> {ok, nil};
                       E -> E
                   end
          end,
          fun(_) -> beamlet_client:unsubscribe_cluster(Node) end,
          fun({beamlet_cluster_event, E}, _) when is_map(E) -> event(E);
             (_, _) -> ignore
          end).

-spec event(map()) -> {deliver, event()} | ignore.
event(#{event := node_joined, node := N, role := R}) -> {deliver, {node_joined, N, role(R)}};
event(#{event := node_state_changed, node := N, from := F, to := T}) ->
    {deliver, {node_state_changed, N, F, T}};
event(#{event := node_left, node := N}) -> {deliver, {node_left, N}};
event(#{event := leader_changed, leader := L, term := T}) -> {deliver, {leader_changed, option(L), T}};
event(_) -> ignore.

option(undefined) -> none;
option(A) -> {some, A}.

-spec role(atom() | binary()) -> role().
role(coordinator) -> coordinator;
role(agent) -> agent;
role(gateway) -> gateway;
role(monitor) -> monitor;
role(Other) -> {other_role, bin(Other)}.

role_arg({other_role, R}) -> R;
role_arg(R) when is_atom(R) -> R.

%%% ------------------------------------------------------------------ registry and global names

%% @doc `registry.register(on:, instance:)'.
-spec registry_register(node(), registration()) -> gleam_result(binary(), call_error()).
registry_register(Node, {registration, Name, Version, Address, Port, Tags, Meta, Ttl}) ->
    E0 = #{name => Name, version => Version, address => Address, port => Port, tags => Tags,
           metadata => Meta},
    Entry = case Ttl of
                {some, T} -> E0#{ttl_ms => T};
                none -> E0
            end,
    case beamlet_client:register_service(Node, Entry) of
        {ok, Id} -> {ok, bin(Id)};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `registry.deregister(on:, id:)'.
-spec registry_deregister(node(), binary()) -> gleam_result(nil, call_error()).
registry_deregister(Node, Id) ->
    case beamlet_client:deregister_service(Node, Id) of
        ok -> {ok, nil};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `registry.find(named:)': asked of any connected beamlet node.
-spec registry_find(binary()) -> gleam_result([instance()], call_error()).
registry_find(Name) ->
    instances(beamlet_client:find_services(#{name => Name})).

%% @doc `registry.find_on(node:, named:)'.
-spec registry_find_on(node(), binary()) -> gleam_result([instance()], call_error()).
registry_find_on(Node, Name) ->
    instances(beamlet_client:find_services(Node, #{name => Name})).

%% Gleam: registry.Query(name: Option(String), tags_all, tags_any, health: Option(Health), metadata)
-type query() :: {query, gleam_option(binary()), [binary()], [binary()],
                  gleam_option(passing | warning | critical), #{binary() => binary()}}.

%% @doc `registry.search(matching:)': asked of any connected beamlet node.
-spec registry_search(query()) -> gleam_result([instance()], call_error()).
registry_search(Query) ->
    instances(beamlet_client:find_services(query_map(Query))).

%% @doc `registry.search_on(node:, matching:)'.
-spec registry_search_on(node(), query()) -> gleam_result([instance()], call_error()).
registry_search_on(Node, Query) ->
    instances(beamlet_client:find_services(Node, query_map(Query))).

%% The node's query map: only the conditions that are set.
query_map({query, Name, All, Any, Health, Meta}) ->
    maps:from_list([{name, N} || {some, N} <- [Name]] ++
                   [{tags_all, All} || All =/= []] ++
                   [{tags_any, Any} || Any =/= []] ++
                   [{health, H} || {some, H} <- [Health]] ++
                   [{metadata, Meta} || map_size(Meta) > 0]).

instances({ok, L}) -> {ok, [instance(E) || E <- L, is_map(E)]};
instances({error, R}) -> {error, call_error(R)}.

instance(E) ->
    {instance, bin(maps:get(id, E, <<>>)), bin(maps:get(name, E, <<>>)),
     maps:get(node, E, undefined), bin(maps:get(version, E, <<>>)),
     bin(maps:get(address, E, <<>>)), maps:get(port, E, 0), maps:get(tags, E, []),
     maps:get(metadata, E, #{}), maps:get(health, E, passing)}.

%% @doc `registry.call(service:, ...)': the reply undecoded.
-spec registry_call(binary(), term(), integer()) -> gleam_result(term(), call_error()).
registry_call(Service, Request, Timeout) ->
    result(beamlet_client:service_call(Service, Request, max(0, Timeout))).

%% @doc `registry.watch(on:, into:)': a relay delivering `Added | Removed | HealthChanged'.
-spec registry_watch(node(), subject()) -> gleam_result(pid(), call_error()).
registry_watch(Node, Subject) ->
    relay(Node, Subject,
          fun() -> case beamlet_client:watch_services(Node) of
                       ok -> {ok, nil};
                       E -> E
                   end
          end,
          fun(_) -> beamlet_client:unwatch_services(Node) end,
          fun({beamlet_registry_event, #{event := Ev, entry := E}}, _) when is_map(E) ->
                  case Ev of
                      added -> {deliver, {added, instance(E)}};
                      removed -> {deliver, {removed, instance(E)}};
                      health_changed -> {deliver, {health_changed, instance(E)}};
                      _ -> ignore
                  end;
             (_, _) -> ignore
          end).

%% @doc `global.whereis(named:)': `Result(Pid, Nil)', resolved by any connected beamlet node.
-spec global_whereis(atom()) -> gleam_result(pid(), nil).
global_whereis(Name) ->
    pid_result(beamlet_client:whereis_name(Name)).

%% @doc `global.whereis_on(node:, named:)'.
-spec global_whereis_on(node(), atom()) -> gleam_result(pid(), nil).
global_whereis_on(Node, Name) ->
    pid_result(beamlet_client:whereis_name(Node, Name)).

pid_result({ok, Pid}) when is_pid(Pid) -> {ok, Pid};
pid_result(_) -> {error, nil}.

%%% ------------------------------------------------------------------ pub/sub

%% Subscribe options of the node for a Gleam Qos (a durable subscription needs its name: the
%% publishers keep its messages under it while the subscriber is away).
sub_opts(at_most_once) -> #{qos => at_most_once};
sub_opts({at_least_once, Name}) -> #{qos => at_least_once, name => Name};
sub_opts({exactly_once, Name}) -> #{qos => exactly_once, name => Name}.

%% @doc `pubsub.subscribe(on:, to:, qos:, into:)': a relay is the subscriber; it sends
%% `Message(topic, payload, id, priority)' into the subject and acknowledges at-least-once
%% deliveries once they are in the subject owner's mailbox.
-spec pubsub_subscribe(node(), binary(), qos(), subject()) -> gleam_result(pid(), call_error()).
pubsub_subscribe(Node, Pattern, Qos, Subject) ->
    Opts = sub_opts(Qos),
    Ack = maps:get(qos, Opts) =:= at_least_once,
    relay(Node, Subject,
          fun() -> beamlet_client:subscribe(Node, Pattern, Opts) end,
          fun(SubId) -> beamlet_client:unsubscribe(Node, SubId) end,
          fun({beamlet_msg, Topic, Payload, Meta}, SubId) when is_map(Meta) ->
                  Id = maps:get(id, Meta, <<>>),
                  Msg = {message, bin(Topic), Payload, Id, maps:get(priority, Meta, normal)},
                  _ = case Ack of
                          true -> beamlet_client:ack(Node, SubId, Id);
                          false -> ok
                      end,
                  {deliver, Msg};
             (_, _) -> ignore
          end).

%% @doc `pubsub.publish(on:, topic:, payload:, options:)': the message id.
-spec pubsub_publish(node(), binary(), term(), publish()) -> gleam_result(binary(), call_error()).
pubsub_publish(Node, Topic, Payload, {publish, Priority, Ttl, Durable}) ->
    O0 = #{priority => Priority},
    O1 = case Ttl of
             {some, T} -> O0#{ttl_ms => T};
             none -> O0
         end,
    Opts = case Durable of
               true -> O1#{qos => at_least_once};
               false -> O1
           end,
    result(beamlet_client:publish(Node, Topic, Payload, Opts)).

%%% ------------------------------------------------------------------ health

%% Gleam: health.Metrics(node, time_ms, interval_ms, cpu_percent, cpus, load, memory, disks,
%% network, uptime_s, process); numbers are made the Int or Float the Gleam field declares.
-type metrics() :: {metrics, node(), integer(), integer(), float(), integer(),
                    {load, float(), float(), float(), integer(), integer()},
                    {memory, integer(), integer(), integer(), integer(), float(), integer(),
                     integer()},
                    [{disk, binary(), binary(), binary(), integer(), integer(), float()}],
                    [{interface, binary(), integer(), integer(), float(), float()}],
                    float(),
                    {own_process, integer(), integer(), integer(), integer(), integer()}}.

%% @doc `health.metrics(of:)'.
-spec health_metrics(node()) -> gleam_result(metrics(), call_error()).
health_metrics(Node) ->
    case beamlet_client:metrics(Node) of
        {ok, M} ->
            try {ok, metrics(Node, M)}
            catch error:_ -> {error, {failed, text({unexpected_metrics, M})}}
            end;
        {error, R} -> {error, call_error(R)}
    end.

metrics(Node, M) ->
    Cpu = maps:get(cpu, M, #{}),
    L = maps:get(load, M, #{}),
    Mem = maps:get(memory, M, #{}),
    P = maps:get(process, M, #{}),
    {metrics, maps:get(node, M, Node), int(maps:get(time_ms, M, 0)), int(maps:get(interval_ms, M, 0)),
     flt(maps:get(percent, Cpu, 0)), int(maps:get(count, Cpu, 0)),
     {load, flt(maps:get(load1, L, 0)), flt(maps:get(load5, L, 0)), flt(maps:get(load15, L, 0)),
      int(maps:get(running, L, 0)), int(maps:get(tasks, L, 0))},
     {memory, int(maps:get(total_bytes, Mem, 0)), int(maps:get(available_bytes, Mem, 0)),
      int(maps:get(used_bytes, Mem, 0)), int(maps:get(free_bytes, Mem, 0)),
      flt(maps:get(available_percent, Mem, 0)), int(maps:get(swap_total_bytes, Mem, 0)),
      int(maps:get(swap_used_bytes, Mem, 0))},
     [{disk, bin(maps:get(mount, D, <<>>)), bin(maps:get(device, D, <<>>)),
       bin(maps:get(fstype, D, <<>>)), int(maps:get(size_bytes, D, 0)),
       int(maps:get(avail_bytes, D, 0)), flt(maps:get(used_percent, D, 0))}
      || D <- maps:get(disks, M, []), is_map(D)],
     [{interface, bin(maps:get(interface, I, <<>>)), int(maps:get(rx_bytes, I, 0)),
       int(maps:get(tx_bytes, I, 0)), flt(maps:get(rx_bytes_per_s, I, 0)),
       flt(maps:get(tx_bytes_per_s, I, 0))}
      || I <- maps:get(network, M, []), is_map(I)],
     flt(maps:get(uptime_s, M, 0)),
     {own_process, int(maps:get(rss_bytes, P, 0)), int(maps:get(fds, P, 0)),
      int(maps:get(threads, P, 0)), int(maps:get(connections, P, 0)),
      int(maps:get(queue_bytes, P, 0))}}.

int(I) when is_integer(I) -> I;
int(F) when is_float(F) -> round(F).

flt(F) when is_float(F) -> F;
flt(I) when is_integer(I) -> float(I).

%% @doc `health.raw_metrics(of:)': the whole sample, for the caller's decoders.
-spec health_raw_metrics(node()) -> gleam_result(term(), call_error()).
health_raw_metrics(Node) -> result(beamlet_client:metrics(Node)).

%% @doc `health.interval(of:)': the sampling interval in milliseconds.
-spec health_interval(node()) -> gleam_result(integer(), call_error()).
health_interval(Node) ->
    case beamlet_client:health_config(Node) of
        {ok, #{interval_ms := I}} when is_integer(I) -> {ok, I};
        {ok, Other} -> {error, {failed, text(Other)}};
        {error, R} -> {error, call_error(R)}
    end.

%% Gleam: health.ClusterHealth(score, status, leader, term, nodes, recommendations)
-type cluster_health() :: {cluster_health, float(), active | degraded | maintenance | offline,
                           gleam_option(node()), integer(), [node_health()], [recommendation()]}.
%% Gleam: health.NodeHealth(node, role, state, status, in_maintenance, reasons)
-type node_health() :: {node_health, node(), binary(), binary(),
                        healthy | warning | critical | unknown, boolean(), [binary()]}.
%% Gleam: health.Recommendation(severity, node, condition, action)
-type recommendation() :: {recommendation, binary(), binary(), binary(), binary()}.
%% Gleam: health.Check(name, kind, target, service, status, output, last_ms, changed_ms, runs)
-type check() :: {check, binary(), http | tcp | command, binary(), gleam_option(binary()),
                  gleam_option(passing | warning | critical), binary(), integer(), integer(),
                  integer()}.
%% Gleam: health.Point(time_ms, min, avg, max) and health.History(metric, resolution_ms, points)
-type point() :: {point, integer(), float(), float(), float()}.
-type history() :: {history, binary(), integer(), [point()]}.
%% Gleam: alerts.Alert(id, rule, node, instance, severity, state, value, threshold, summary,
%% since_ms, fired_ms, resolved_ms, acked: Option(Ack(by, at_ms)))
-type alert() :: {alert, integer(), binary(), binary(), binary(), warning | critical,
                  pending | firing | resolved, float(), float(), binary(), integer(), integer(),
                  integer(), gleam_option({ack, binary(), integer()})}.
%% Gleam: events.Query(since_ms, until_ms, kind, node, severity, limit) (opaque)
-type event_query() :: {query, gleam_option(integer()), gleam_option(integer()),
                        gleam_option(binary()), gleam_option(binary()),
                        gleam_option(info | warn | critical), gleam_option(integer())}.
%% Gleam: events.Event(id, time_ms, node, kind, severity, who, body, logged_by)
-type event_record() :: {event, integer(), integer(), binary(), binary(), info | warn | critical,
                         gleam_option(binary()), binary(), node()}.

%% @doc `health.cluster(of:)'.
-spec health_cluster(node()) -> gleam_result(cluster_health(), call_error()).
health_cluster(Node) ->
    case beamlet_client:health(Node) of
        {ok, H = #{score := Score, status := Status}} ->
            {ok, {cluster_health, flt(Score), Status, option_atom(maps:get(leader, H, undefined)),
                  int(maps:get(term, H, 0)),
                  [node_health(N) || N <- maps:get(nodes, H, []), is_map(N)],
                  [{recommendation, bin(maps:get(severity, R, <<>>)), opt_bin(maps:get(node, R, undefined)),
                    bin(maps:get(condition, R, <<>>)), bin(maps:get(action, R, <<>>))}
                   || R <- maps:get(recommendations, H, []), is_map(R)]}};
        {error, R} -> {error, call_error(R)}
    end.

node_health(N) ->
    {node_health, node_atom(maps:get(node, N)), bin(maps:get(role, N, <<>>)),
     bin(maps:get(state, N, <<>>)), maps:get(status, N, unknown),
     maps:get(maintenance, N, false) =:= true,
     [bin(R) || R <- maps:get(reasons, N, [])]}.

%% @doc `health.set_maintenance(of:, on:, by:)'.
-spec health_set_maintenance(node(), boolean(), binary()) -> gleam_result(nil, call_error()).
health_set_maintenance(Node, On, Who) ->
    nil_result(beamlet_client:set_maintenance(Node, On, Who)).

%% @doc `health.maintenance(of:)'.
-spec health_maintenance(node()) ->
          gleam_result({maintenance_mode, boolean(), gleam_option(binary()), integer()},
                       call_error()).
health_maintenance(Node) ->
    case beamlet_client:maintenance(Node) of
        {ok, #{on := On} = M} ->
            Who = case {On, maps:get(who, M, <<>>)} of
                      {true, W} when is_binary(W), W =/= <<>> -> {some, W};
                      _ -> none
                  end,
            {ok, {maintenance_mode, On, Who, int(maps:get(since_ms, M, 0))}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `health.checks(of:)'.
-spec health_checks(node()) -> gleam_result([check()], call_error()).
health_checks(Node) ->
    case beamlet_client:checks(Node) of
        {ok, Cs} when is_list(Cs) ->
            {ok, [{check, bin(maps:get(name, C)), maps:get(kind, C), bin(maps:get(target, C, <<>>)),
                   case maps:get(service, C, <<>>) of <<>> -> none; Svc -> {some, bin(Svc)} end,
                   case maps:get(status, C, unknown) of unknown -> none; St -> {some, St} end,
                   bin(maps:get(output, C, <<>>)), int(maps:get(last_ms, C, 0)),
                   int(maps:get(changed_ms, C, 0)), int(maps:get(runs, C, 0))}
                  || C <- Cs, is_map(C)]};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `health.history(of:, metric:, since_ms:)'.
-spec health_history(node(), binary(), integer()) -> gleam_result(history(), call_error()).
health_history(Node, Metric, Since) when Metric =/= <<>> ->
    case beamlet_client:history(Node, Metric, max(0, Since)) of
        {ok, #{points := Ps} = H} ->
            {ok, {history, bin(maps:get(metric, H, Metric)), int(maps:get(resolution_ms, H, 0)),
                  [point(P) || P <- Ps]}};
        {ok, Other} -> {error, {failed, text(Other)}};
        {error, R} -> {error, call_error(R)}
    end.

point([T, Min, Avg, Max | _]) -> {point, int(T), flt(Min), flt(Avg), flt(Max)}.

%% @doc `health.metric_names(of:, since_ms:)'.
-spec health_metric_names(node(), integer()) -> gleam_result([binary()], call_error()).
health_metric_names(Node, Since) ->
    case beamlet_client:history(Node, <<>>, max(0, Since)) of
        {ok, Names} when is_list(Names) -> {ok, [bin(N) || N <- Names]};
        {ok, Other} -> {error, {failed, text(Other)}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `health.cluster_history(via:, metric:, since_ms:)': `List(#(Node, Point))' by time.
-spec health_cluster_history(node(), binary(), integer()) ->
          gleam_result([{node(), point()}], call_error()).
health_cluster_history(Node, Metric, Since) ->
    case beamlet_client:cluster_history(Node, Metric, max(0, Since)) of
        {ok, #{points := Ps}} -> {ok, [{N, point([T, Mn, Av, Mx])} || [T, Mn, Av, Mx, N] <- Ps]};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `alerts.list(on:)'.
-spec alerts_list(node()) -> gleam_result([alert()], call_error()).
alerts_list(Node) ->
    case beamlet_client:alerts(Node) of
        {ok, As} when is_list(As) -> {ok, [alert(A) || A <- As, is_map(A)]};
        {error, R} -> {error, call_error(R)}
    end.

alert(A) ->
    Acked = case maps:get(acked_by, A, undefined) of
                By when is_binary(By) -> {some, {ack, By, int(maps:get(acked_ms, A, 0))}};
                _ -> none
            end,
    {alert, int(maps:get(id, A)), bin(maps:get(rule, A, <<>>)), bin(maps:get(node, A, <<>>)),
     bin(maps:get(instance, A, <<>>)),
     case maps:get(severity, A, critical) of warn -> warning; _ -> critical end,
     maps:get(state, A, firing), flt(maps:get(value, A, 0)), flt(maps:get(threshold, A, 0)),
     bin(maps:get(summary, A, <<>>)), int(maps:get(since_ms, A, 0)),
     int(maps:get(fired_ms, A, 0)), int(maps:get(resolved_ms, A, 0)), Acked}.

%% @doc `alerts.acknowledge(on:, id:, by:)'.
-spec alerts_acknowledge(node(), integer(), binary()) -> gleam_result(nil, call_error()).
alerts_acknowledge(Node, Id, Who) ->
    nil_result(beamlet_client:ack_alert(Node, Id, Who)).

%% @doc `alerts.subscribe(on:, into:)': a relay subscribed to `cluster.alerts' sends each
%% alert map it gets as an `Alert' into the subject.
-spec alerts_subscribe(node(), subject()) -> gleam_result(pid(), call_error()).
alerts_subscribe(Node, Subject) ->
    relay(Node, Subject,
          fun() -> beamlet_client:subscribe_alerts(Node) end,
          fun(SubId) -> beamlet_client:unsubscribe(Node, SubId) end,
          fun({beamlet_msg, _, A = #{id := _}, _}, _) -> {deliver, alert(A)};
             (_, _) -> ignore
          end).

%% @doc `events.list(on:, matching:)'.
-spec events_list(node(), event_query()) -> gleam_result([event_record()], call_error()).
events_list(Node, Query) ->
    event_records(beamlet_client:events(Node, event_filter(Query)), Node).

%% @doc `events.list_cluster(via:, matching:)'.
-spec events_list_cluster(node(), event_query()) -> gleam_result([event_record()], call_error()).
events_list_cluster(Node, Query) ->
    event_records(beamlet_client:cluster_events(Node, event_filter(Query)), Node).

event_filter({query, Since, Until, Kind, About, Sev, Limit}) ->
    maps:from_list([{K, V} || {K, {some, V}} <- [{since_ms, Since}, {until_ms, Until},
                                                 {type, Kind}, {node, About},
                                                 {severity, Sev}, {limit, Limit}]]).

event_records({ok, Es}, Node) when is_list(Es) ->
    {ok, [{event, int(maps:get(id, E, 0)), int(maps:get(time_ms, E, 0)), bin(maps:get(node, E, <<>>)),
           bin(maps:get(type, E, <<>>)), maps:get(severity, E, info),
           case maps:get(who, E, undefined) of W when is_binary(W) -> {some, W}; _ -> none end,
           bin(maps:get(body, E, <<"{}">>)), node_atom(maps:get(logged_by, E, Node))}
          || E <- Es, is_map(E)]};
event_records({error, R}, _) -> {error, call_error(R)}.

%%% ------------------------------------------------------------------ cluster configuration

%% Gleam: config.Applied { Running RestartNeeded }, config.Setting(key, value, live, applied),
%% config.Document(term, version, leader: Option(Node), settings)
-type config_document() :: {document, integer(), integer(), gleam_option(node()),
                            [{setting, binary(), binary(), boolean(), running | restart_needed}]}.
%% Gleam: config.State { Committed Pending Unchanged Lost Unknown }
-type config_state() :: committed | pending | unchanged | lost | unknown.
%% Gleam: config.Write(version, term, key, value: Option(String), live, state, holders, needed)
-type config_write() :: {write, integer(), integer(), binary(), gleam_option(binary()),
                         boolean(), config_state(), integer(), integer()}.
%% Gleam: config.Change(version, term, key, old, new, who, at_ms)
-type config_change() :: {change, integer(), integer(), binary(), gleam_option(binary()),
                          gleam_option(binary()), binary(), integer()}.
%% Gleam: config.Status(version, state, holders, needed, current_version)
-type config_status() :: {status, integer(), config_state(), integer(), integer(), integer()}.

%% @doc `config.document(of:)'.
-spec config_document(node()) -> gleam_result(config_document(), call_error()).
config_document(Node) ->
    case beamlet_client:config(Node) of
        {ok, D} ->
            {ok, {document, int(maps:get(term, D, 0)), int(maps:get(version, D, 0)),
                  case maps:get(leader, D, undefined) of
                      L when is_binary(L) -> {some, binary_to_atom(L, utf8)};
                      _ -> none
                  end,
                  [{setting, bin(maps:get(key, S)), bin(maps:get(value, S, <<>>)),
                    maps:get(live, S, false) =:= true,
                    case maps:get(applied, S, <<"running">>) of
                        <<"restart_needed">> -> restart_needed;
                        _ -> running
                    end} || S <- maps:get(settings, D, []), is_map(S)]}};
        {error, R} -> {error, cfg_error(R)}
    end.

%% @doc `config.get(of:, key:)': `Ok(None)' when the key is not set cluster-wide.
-spec config_get(node(), binary()) -> gleam_result(gleam_option(binary()), call_error()).
config_get(Node, Key) ->
    case beamlet_client:config(Node, Key) of
        {ok, V} -> {ok, {some, V}};
        {error, not_set} -> {ok, none};
        {error, R} -> {error, cfg_error(R)}
    end.

%% @doc `config.set(on:, key:, value:, by:)'.
-spec config_set(node(), binary(), binary(), binary()) -> gleam_result(config_write(), call_error()).
config_set(Node, Key, Value, Who) -> config_write(beamlet_client:set_config(Node, Key, Value, Who)).

%% @doc `config.unset(on:, key:, by:)'.
-spec config_unset(node(), binary(), binary()) -> gleam_result(config_write(), call_error()).
config_unset(Node, Key, Who) -> config_write(beamlet_client:unset_config(Node, Key, Who)).

config_write({Tag, W}) when Tag =:= ok; Tag =:= pending ->
    {ok, {write, int(maps:get(version, W, 0)), int(maps:get(term, W, 0)), bin(maps:get(key, W, <<>>)),
          opt_text(maps:get(value, W, undefined)), maps:get(live, W, false) =:= true,
          config_state(maps:get(state, W, <<"committed">>)), int(maps:get(holders, W, 0)),
          int(maps:get(needed, W, 0))}};
config_write({error, R}) -> {error, cfg_error(R)}.

config_state(<<"committed">>) -> committed;
config_state(<<"pending">>) -> pending;
config_state(<<"unchanged">>) -> unchanged;
config_state(<<"lost">>) -> lost;
config_state(_) -> unknown.

%% @doc `config.history(of:, key:)'.
-spec config_history(node(), gleam_option(binary())) -> gleam_result([config_change()], call_error()).
config_history(Node, Key) ->
    R = case Key of
            {some, K} -> beamlet_client:config_history(Node, K);
            none -> beamlet_client:config_history(Node)
        end,
    case R of
        {ok, Hs} -> {ok, [config_change(H) || H <- Hs, is_map(H)]};
        {error, E} -> {error, cfg_error(E)}
    end.

config_change(H) ->
    {change, int(maps:get(version, H, 0)), int(maps:get(term, H, 0)), bin(maps:get(key, H, <<>>)),
     opt_text(maps:get(old, H, undefined)), opt_text(maps:get(new, H, undefined)),
     bin(maps:get(who, H, <<>>)), int(maps:get(at, H, 0))}.

%% the node's refusals are messages naming the key: Failed(message) as it is
cfg_error(R) when is_binary(R) -> {failed, R};
cfg_error(R) -> call_error(R).

opt_text(V) when is_binary(V) -> {some, V};
opt_text(_) -> none.

%% @doc `config.status(of:, version:, term:)'.
-spec config_status(node(), integer(), integer()) -> gleam_result(config_status(), call_error()).
config_status(Node, Version, Term) ->
    case beamlet_client:config_status(Node, max(0, Version), max(0, Term)) of
        {ok, S} ->
            {ok, {status, int(maps:get(version, S, Version)), config_state(maps:get(state, S, <<>>)),
                  int(maps:get(holders, S, 0)), int(maps:get(needed, S, 0)),
                  int(maps:get(current_version, S, 0))}};
        {error, R} -> {error, cfg_error(R)}
    end.

%% @doc `config.watch(on:, into:)': a relay watching `Node''s configuration sends each change
%% into the subject as a `Change'.
-spec config_watch(node(), subject()) -> gleam_result(pid(), call_error()).
config_watch(Node, Subject) ->
    relay(Node, Subject,
          fun() ->
                  case beamlet_client:watch_config(Node) of
                      ok -> {ok, nil};
                      {error, _} = E -> E
                  end
          end,
          fun(_) -> beamlet_client:unwatch_config(Node) end,
          fun({beamlet_config, C}, _) when is_map(C) -> {deliver, config_change(C)};
             (_, _) -> ignore
          end).

nil_result(ok) -> {ok, nil};
nil_result({error, R}) -> {error, call_error(R)}.

option_atom(undefined) -> none;
option_atom(A) when is_atom(A) -> {some, A};
option_atom(B) when is_binary(B) -> {some, binary_to_atom(B, utf8)}.

opt_bin(undefined) -> <<>>;
opt_bin(V) -> bin(V).

node_atom(A) when is_atom(A) -> A;
node_atom(B) when is_binary(B) -> binary_to_atom(B, utf8).

%%% ------------------------------------------------------------------ nodes

%% @doc `node.connect(to:)': the node name becomes an atom here, once.
-spec connect(binary()) -> gleam_result(node(), connect_error()).
connect(Name) ->
    Node = binary_to_atom(Name, utf8),
    case beamlet_client:connect(Node) of
        ok -> {ok, Node};
        {error, not_alive} -> {error, not_alive};
        {error, not_beamlet} -> {error, not_beamlet};
        {error, nodedown} -> {error, unreachable};
        {error, _} -> {error, no_answer}
    end.

%% @doc `node.list()'.
-spec nodes() -> [node_info()].
nodes() ->
    [{node_info, N, role(R), bin(C), bin(V)}
     || #{node := N, role := R, cluster := C, version := V} <- beamlet_nodes:list()].

%% @doc `node.info(of:)'.
-spec info(node()) -> gleam_result(info(), call_error()).
info(Node) ->
    case beamlet_client:info(Node) of
        {ok, I} ->
            {ok, {info, maps:get(node, I, Node), role(maps:get(role, I, unknown)),
                  bin(maps:get(cluster, I, <<>>)), bin(maps:get(version, I, <<>>)),
                  maps:get(uptime_ms, I, 0), maps:get(processes, I, 0),
                  maps:get(os_pid, I, 0), maps:get(port, I, 0),
                  [C || C <- maps:get(connections, I, []), is_atom(C)]}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `node.stats(of:)': a `Dict(String, Dynamic)'.
-spec stats(node()) -> gleam_result(#{binary() => term()}, call_error()).
stats(Node) ->
    case beamlet_client:stats(Node) of
        {ok, M} -> {ok, maps:fold(fun(K, V, Acc) -> Acc#{bin(K) => V} end, #{}, M)};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `node.registered(on:)': the names registered on the node.
-spec registered(node()) -> gleam_result([atom()], call_error()).
registered(Node) ->
    result(beamlet_client:registered(Node)).

%% @doc `node.whereis(on:, named:)'.
-spec whereis(node(), atom()) -> gleam_result(pid(), nil).
whereis(Node, Name) ->
    pid_result(beamlet_client:whereis(Node, Name)).

%% @doc `node.monitor(node, notify:)': the subject gets the Node once, when the connection goes
%% down. `Error(Nil)' for a named subject whose name nobody holds.
-spec monitor(node(), subject()) -> gleam_result(reference(), nil).
monitor(Node, Subject) ->
    case subject_owner(Subject) of
        {ok, Pid} ->
            Ref = make_ref(),
            Msg = case Subject of
                      {subject, _, Tag} -> {Tag, Node};
                      {named_subject, Name} -> {Name, Node}
                  end,
            ok = beamlet_nodes:monitor(Node, Ref, Pid, Msg),
            {ok, Ref};
        {error, nil} -> {error, nil}
    end.

%% @doc `node.demonitor(monitor)'.
-spec demonitor(reference()) -> nil.
demonitor(Ref) ->
    ok = beamlet_nodes:demonitor(Ref),
    nil.

%%% ------------------------------------------------------------------ workers

worker_opts({options, Name, Cookie, Role, Cluster, Join, Extra, Binary, StartTimeout}) ->
    Opts0 = #{name => Name, join => Join, extra_args => Extra, start_timeout => StartTimeout},
    lists:foldl(fun({_, none}, M) -> M;
                   ({role, {some, R}}, M) -> M#{role => role_arg(R)};
                   ({K, {some, V}}, M) -> M#{K => V}
                end, Opts0, [{cookie, Cookie}, {role, Role}, {cluster, Cluster},
                             {binary, Binary}]).

start_error({already_started, _}) -> already_started;
start_error({already_running, _}) -> already_started;
start_error({no_binary, Path}) -> {binary_not_found, bin(Path)};
start_error(start_timeout) -> start_timeout;
start_error(R) -> {start_failed, text(R)}.

%% @doc `worker.start(options)': under the application's worker supervisor; the node on success.
-spec start_worker(worker_options()) -> gleam_result(node(), start_error()).
start_worker(Options) ->
    case beamlet_worker_sup:start_worker(worker_opts(Options)) of
        {ok, Node} -> {ok, Node};
        {error, R} -> {error, start_error(R)}
    end.

%% @doc The start function of `worker.supervised(options)': a worker linked to the caller (the
%% gleam_otp supervisor), once its node answers: `#(Pid, Node)'.
-spec start_link_worker(worker_options()) -> gleam_result({pid(), node()}, start_error()).
start_link_worker(Options) ->
    Opts = worker_opts(Options),
    {Node, _, _} = beamlet_worker:args(Opts),
    case beamlet_worker:start_link_up(Opts) of
        {ok, Pid} -> {ok, {Pid, Node}};
        {error, {shutdown, R}} -> {error, start_error(R)};
        {error, R} -> {error, start_error(R)}
    end.

%% @doc `worker.node(options)': the node a worker with these options runs as.
-spec worker_node(worker_options()) -> node().
worker_node(Options) ->
    {Node, _, _} = beamlet_worker:args(worker_opts(Options)),
    Node.

%% @doc `worker.stop(node)'.
-spec stop_worker(node()) -> gleam_result(nil, nil).
stop_worker(Node) ->
    case beamlet_worker_sup:stop_worker(Node) of
        ok -> {ok, nil};
        {error, not_found} -> {error, nil}
    end.

%% @doc `worker.running()'.
-spec which_workers() -> [node()].
which_workers() ->
    [N || {N, _, _} <- beamlet_worker_sup:which_workers()].

%% @doc `worker.os_pid(of:)'.
-spec worker_os_pid(node()) -> gleam_result(integer(), nil).
worker_os_pid(Node) ->
    case beamlet_worker_sup:os_pid(Node) of
        {ok, P} -> {ok, P};
        {error, not_found} -> {error, nil}
    end.

%%% ------------------------------------------------------------------ discovery

%% @doc `discovery.start(options)' (and the start function of `discovery.supervised'): an
%% unregistered discovery server linked to the caller.
-spec discovery_start(discovery_options()) -> gleam_result(pid(), binary()).
discovery_start({options, Hosts, Local, Pattern, Interval}) ->
    Opts0 = #{name => none, hosts => [binary_to_list(H) || H <- Hosts], local => Local,
              interval => Interval},
    Opts = case Pattern of
               {some, P} -> Opts0#{pattern => P};
               none -> Opts0
           end,
    case beamlet_discovery:start_link(Opts) of
        {ok, Pid} -> {ok, Pid};
        {error, R} -> {error, text(R)};
        ignore -> {error, <<"ignore">>}
    end.

%% @doc `discovery.found(discovery)'.
-spec discovery_found(pid()) -> [node()].
discovery_found(Pid) -> beamlet_discovery:found(Pid).

%% @doc `discovery.refresh(discovery)': poll now, then the nodes found.
-spec discovery_refresh(pid()) -> [node()].
discovery_refresh(Pid) -> beamlet_discovery:refresh(Pid).

%% @doc `discovery.stop(discovery)'.
-spec discovery_stop(pid()) -> nil.
discovery_stop(Pid) ->
    unlink(Pid),
    ok = beamlet_discovery:stop(Pid),
    nil.

%%% ------------------------------------------------------------------ helpers

bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(B) when is_binary(B) -> B;
bin(L) when is_list(L) -> unicode:characters_to_binary(L).

text(T) -> unicode:characters_to_binary(io_lib:format("~0tp", [T])).

%%% ------------------------------------------------------------------ tasks (beamlet/task)

%% Gleam: task.Submission(kind, payload: Option(Dynamic), capabilities, priority, timeout_ms:
%% Option(Int), retries, idempotency_key: Option(String), trace_id: Option(String))
-type submission() :: {submission, binary(), gleam_option(term()), [binary()], high | normal | low,
                       gleam_option(integer()), integer(), gleam_option(binary()),
                       gleam_option(binary()), gleam_option(integer())}.
%% Gleam: task.Task(id, kind, state, attempt, agent, trace_id, result, error, submitted_ms,
%% updated_ms); state: Queued | Assigned | Running | Succeeded | Failed | Cancelled | TimedOut
-type task() :: {task, binary(), binary(), atom(), integer(), gleam_option(node()), binary(),
                 gleam_option(term()), gleam_option(term()), integer(), integer()}.
%% Gleam: task.Change(seq, id, kind, state, attempt, agent, time_ms, error: Option(String)),
%% task.Cursor { FromNow After(term, seq) }, task.Page(changes, missed, next)
-type task_change() :: {change, integer(), binary(), binary(), atom(), integer(), gleam_option(node()),
                   integer(), gleam_option(binary())}.
-type cursor() :: from_now | {'after', integer(), integer()}.
-type page() :: {page, [task_change()], integer(), cursor()}.

%% @doc Any value as a Gleam `Dynamic' (the same term).
-spec identity(T) -> T.
identity(X) -> X.

%% @doc `task.submit(on:, task:)'.
-spec task_submit(node(), submission()) -> gleam_result(binary(), call_error()).
task_submit(Node, {submission, Kind, Payload, Caps, Prio, Tmo, Retries, Key, Trace, QTmo}) ->
    Opts = maps:from_list([{payload, P} || {some, P} <- [Payload]] ++
                          [{capabilities, lists:reverse(Caps)} || Caps =/= []] ++
                          [{priority, Prio}, {retries, Retries}] ++
                          [{timeout_ms, T} || {some, T} <- [Tmo]] ++
                          [{idempotency_key, K} || {some, K} <- [Key]] ++
                          [{trace_id, I} || {some, I} <- [Trace]] ++
                          [{queue_timeout_ms, max(0, Q)} || {some, Q} <- [QTmo]]),
    task_result(beamlet_task:submit(Node, Kind, Opts), fun(Id) -> Id end).

%% @doc `task.get(on:, id:)'.
-spec task_get(node(), binary()) -> gleam_result(task(), call_error()).
task_get(Node, Id) -> task_result(beamlet_task:get(Node, Id), fun task/1).

%% @doc `task.wait(on:, id:, within:)'.
-spec task_wait(node(), binary(), integer()) -> gleam_result(task(), call_error()).
task_wait(Node, Id, Ms) -> task_result(beamlet_task:wait(Node, Id, max(0, Ms)), fun task/1).

%% @doc `task.cancel(on:, id:)'.
-spec task_cancel(node(), binary()) -> gleam_result(task(), call_error()).
task_cancel(Node, Id) -> task_result(beamlet_task:cancel(Node, Id), fun task/1).

%% @doc `task.handle(on:, kind:, with:)': the handler gets a task.Job(id, attempt, payload,
%% trace_id) and returns a Gleam Result ({ok, V} | {error, E}).
-spec task_handle(node(), binary(), fun(({job, binary(), integer(), term(), binary()}) ->
                                          {ok, term()} | {error, term()})) ->
          gleam_result(pid(), call_error()).
task_handle(Node, Kind, Fun) ->
    Job = fun(#{id := Id, attempt := A, payload := P, trace_id := Tr}) -> Fun({job, Id, A, P, Tr}) end,
    case beamlet_task:handle(Node, Kind, Job) of
        {ok, Pid} -> {ok, Pid};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `task.changes(on:, after:, kind:, state:, limit:, within:)': one long poll of the feed.
-spec task_changes(node(), cursor(), gleam_option(binary()), gleam_option(atom()), integer(),
                   integer()) -> gleam_result(page(), call_error()).
task_changes(Node, Cursor, Kind, State, Limit, Ms) ->
    Q = (changes_query(Kind, State))#{limit => min(1000, max(1, Limit)),
                                      timeout_ms => min(60000, max(0, Ms))},
    task_result(beamlet_task:changes(Node, maps:merge(Q, cursor_query(Cursor))), fun page/1).

%% @doc `task.watch(on:, kind:, state:, into:)': a relay (beamlet.Subscription) fed by a poller
%% process linked to it, which long-polls the feed from where the last answer ended (20 s each,
%% again after 300 ms on a transient error) and ends on nodedown, ending the relay.
-spec task_watch(node(), gleam_option(binary()), gleam_option(atom()), subject()) ->
          gleam_result(pid(), call_error()).
task_watch(Node, Kind, State, Subject) ->
    Q = (changes_query(Kind, State))#{limit => 1000},
    relay(Node, Subject,
          fun() ->
                  case beamlet_task:changes(Node, Q#{timeout_ms => 0}) of
                      {ok, #{term := T, next := N}} ->
                          Relay = self(),
                          {ok, spawn_link(fun() -> task_poll(Node, Q, T, N, Relay) end)};
                      {error, _} = E -> E
                  end
          end,
          fun(Poller) -> unlink(Poller), exit(Poller, kill) end,
          fun({'$beamlet_task_change', C}, _) -> {deliver, task_change(C)};
             (_, _) -> ignore
          end).

task_poll(Node, Q, Term, Next, Relay) ->
    case beamlet_task:changes(Node, Q#{since => Next, term => Term, timeout_ms => 20000}) of
        {ok, #{term := T, next := N, changes := Cs}} ->
            _ = [Relay ! {'$beamlet_task_change', C} || C <- Cs],
            task_poll(Node, Q, T, N, Relay);
        {error, nodedown} ->
            exit(nodedown);
        {error, _} ->
            timer:sleep(300),
            task_poll(Node, Q, Term, Next, Relay)
    end.

changes_query(Kind, State) ->
    maps:from_list([{type, K} || {some, K} <- [Kind]] ++
                   [{state, atom_to_binary(S, utf8)} || {some, S} <- [State]]).

cursor_query(from_now) -> #{};
cursor_query({'after', Term, Seq}) -> #{since => Seq, term => Term}.

page(#{term := T, next := N, missed := M, changes := Cs}) ->
    {page, [task_change(C) || C <- Cs], M, {'after', T, N}}.

task_change(#{seq := Seq, id := Id, type := Kind, state := State, attempt := A, agent := Agent,
         time_ms := At} = C) ->
    Err = case maps:get(error, C, undefined) of
              undefined -> none;
              E -> {some, bin(E)}
          end,
    {change, Seq, Id, Kind, State, A, option_atom(Agent), At, Err}.

task_result({ok, V}, F) -> {ok, F(V)};
task_result({error, {bad_request, Why}}, _) -> {error, {failed, <<"bad_request: ", Why/binary>>}};
task_result({error, {not_replicated, _}}, _) -> {error, {failed, <<"not_replicated">>}};
task_result({error, R}, _) -> {error, call_error(R)}.

task(#{id := Id, type := Kind, state := State, attempt := A, agent := Agent, trace_id := Tr,
       submitted_ms := Sub, updated_ms := Upd} = T) ->
    Opt = fun(undefined) -> none; (V) -> {some, V} end,
    {task, Id, Kind, State, A, Opt(Agent), Tr, Opt(maps:get(result, T, undefined)),
     Opt(maps:get(error, T, undefined)), Sub, Upd}.
