%% @doc The Erlang side of the Gleam `beamlet' package: adapts the shim's Erlang shapes to the
%% shapes Gleam compiles its types to.
%%
%% Gleam data on the BEAM: `String' = UTF-8 binary, `Nil' = `nil', `Result' = `{ok, V}' |
%% `{error, E}', `Option' = `{some, V}' | `none', a record `Name(a, b)' = `{name, A, B}', a
%% field-less variant = a bare atom (`NodeDown' -> `node_down'), `List' = list, `Dict' = map,
%% `Int' = integer. Node and service names cross as strings (binaries) and are turned into atoms
%% here. Every function below is called by an `@external(erlang, "beamlet_gleam_ffi", ...)' in
%% `src/beamlet.gleam' or `src/beamlet/*.gleam'; keep the two in step (test/beamlet_gleam_ffi_tests.erl
%% checks the shapes).
-module(beamlet_gleam_ffi).

-export([start/0, start_distribution/2, call/4, cast/3,
         connect/1, nodes/0, info/1, stats/1, monitor/2, demonitor/1,
         start_worker/1, stop_worker/1, which_workers/0,
         discovery_start/1, discovery_found/1, discovery_refresh/1, discovery_stop/1,
         cluster_members/1, cluster_status/1, cluster_subscribe/2,
         registry_register/4, registry_deregister/2, registry_find/1, registry_call/3,
         global_whereis/1, pubsub_subscribe/4, pubsub_publish/4]).

-type gleam_result(T, E) :: {ok, T} | {error, E}.
%% Gleam: pub type CallError { NodeDown Timeout NoProc CallFailed(reason: String) }
-type call_error() :: node_down | timeout | no_proc | {call_failed, binary()}.
%% Gleam: pub type ConnectError { NotAlive NotBeamlet Unreachable NoAnswer }
-type connect_error() :: not_alive | not_beamlet | unreachable | no_answer.
%% Gleam: pub type StartError { AlreadyStarted BinaryNotFound(path: String) StartTimeout
%%                              StartFailed(reason: String) }
-type start_error() :: already_started | {binary_not_found, binary()} | start_timeout
                     | {start_failed, binary()}.
%% Gleam: Options(name, cookie, role, cluster, join, extra_args, binary, start_timeout)
-type gleam_option(T) :: {some, T} | none.
-type worker_options() :: {options, binary(), gleam_option(binary()), gleam_option(binary()),
                           gleam_option(binary()), [binary()], [binary()],
                           gleam_option(binary()), integer()}.
%% Gleam: NodeInfo(node: String, role: String, cluster: String, version: String)
-type node_info() :: {node_info, binary(), binary(), binary(), binary()}.
%% Gleam: Info(node, role, cluster, version, uptime_ms, processes, os_pid, port, connections)
-type info() :: {info, binary(), binary(), binary(), binary(), integer(), integer(), integer(),
                 integer(), [binary()]}.
%% Gleam: MemberState { Joining Active Suspected Failed Leaving Left }
-type member_state() :: joining | active | suspected | failed | leaving | left.
%% Gleam: Member(node: String, role: String, state: MemberState, kind: String)
-type member() :: {member, binary(), binary(), member_state(), binary()}.
%% Gleam: Status(cluster, size, leader: Option(String), term, healthy: Bool)
-type status() :: {status, binary(), integer(), gleam_option(binary()), integer(), boolean()}.
%% Gleam: Event { NodeJoined(node, role) NodeStateChanged(node, from, to) NodeLeft(node)
%%                LeaderChanged(leader: Option(String), term: Int) }
-type event() :: {node_joined, binary(), binary()}
               | {node_state_changed, binary(), member_state(), member_state()}
               | {node_left, binary()}
               | {leader_changed, gleam_option(binary()), integer()}.
%% Gleam: Health { Passing Warning Critical } (the registry's atoms, unchanged)
%% Gleam: Service(id, name, node, version, address, port, tags, metadata, health)
-type service() :: {service, binary(), binary(), binary(), binary(), binary(), integer(),
                    [binary()], #{binary() => binary()}, passing | warning | critical}.
%% gleam_erlang 1.x Subject(message)
-type subject() :: {subject, pid(), reference()} | {named_subject, atom()}.
-type qos() :: at_most_once | {at_least_once, binary()} | {exactly_once, binary()}.
%% Gleam: DiscoveryOptions(hosts: List(String), pattern: Option(String), interval: Int)
-type discovery_options() :: {discovery_options, [binary()], gleam_option(binary()), integer()}.

%%% ------------------------------------------------------------------ application

%% @doc Start the `beamlet' application (and what it needs).
-spec start() -> gleam_result(nil, binary()).
start() ->
    case application:ensure_all_started(beamlet) of
        {ok, _} -> {ok, nil};
        {error, R} -> {error, text(R)}
    end.

%% @doc Make this VM a distributed node with a short name (when `gleam run' started it without
%% one) and set its cookie. EPMD must be running (`epmd -daemon').
-spec start_distribution(binary(), binary()) -> gleam_result(nil, binary()).
start_distribution(Name, Cookie) ->
    Res = case node() of
              nonode@nohost -> net_kernel:start([binary_to_atom(Name, utf8), shortnames]);
              _ -> {ok, already}
          end,
    case Res of
        {ok, _} ->
            true = erlang:set_cookie(node(), binary_to_atom(Cookie, utf8)),
            {ok, nil};
        {error, R} -> {error, text(R)}
    end.

%%% ------------------------------------------------------------------ cluster

%% @doc `cluster.members(node)'.
-spec cluster_members(binary()) -> gleam_result([member()], call_error()).
cluster_members(Node) ->
    case beamlet_client:members(atom(Node)) of
        {ok, Ms} ->
            {ok, [{member, bin(N), bin(R), S, bin(maps:get(kind, M, beamlet))}
                  || M = #{node := N, role := R, state := S} <- Ms]};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `cluster.status(node)'.
-spec cluster_status(binary()) -> gleam_result(status(), call_error()).
cluster_status(Node) ->
    case beamlet_client:cluster_status(atom(Node)) of
        {ok, #{cluster := C, size := Size, leader := L, term := T, health := H}} ->
            {ok, {status, bin(C), Size, option(L), T, H =:= healthy}};
        {ok, Other} -> {error, {call_failed, text(Other)}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `cluster.subscribe(node, subject)': a relay process subscribes to the C node and sends
%% each event, as a Gleam `Event', to the subject; it ends with the subject's owner.
-spec cluster_subscribe(binary(), subject()) -> gleam_result(nil, call_error()).
cluster_subscribe(Node, Subject) ->
    case subject_owner(Subject) of
        {ok, Owner} -> cluster_subscribe(Node, Subject, Owner);
        {error, nil} -> {error, {call_failed, <<"unregistered subject">>}}
    end.

cluster_subscribe(Node, Subject, Owner) ->
    Parent = self(),
    Relay = spawn(fun() -> relay_start(atom(Node), Subject, Owner, Parent) end),
    receive
        {Relay, subscribed} -> {ok, nil};
        {Relay, {error, R}} -> {error, call_error(R)}
    after 10000 ->
        exit(Relay, kill),
        {error, timeout}
    end.

relay_start(Node, Subject, Owner, Parent) ->
    erlang:monitor(process, Owner),
    erlang:monitor_node(Node, true),
    case beamlet_client:subscribe_cluster(Node) of
        ok ->
            Parent ! {self(), subscribed},
            relay_loop(Node, Subject);
        {error, R} ->
            Parent ! {self(), {error, R}}
    end.

relay_loop(Node, Subject) ->
    receive
        {beamlet_cluster_event, E} ->
            _ = case event(E) of
                    skip -> ok;
                    Ev -> send_subject(Subject, Ev)
                end,
            relay_loop(Node, Subject);
        {'DOWN', _, process, _, _} ->
            _ = beamlet_client:unsubscribe_cluster(Node),
            ok;
        {nodedown, Node} ->
            ok
    end.

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

-spec event(map()) -> event() | skip.
event(#{event := node_joined, node := N, role := R}) -> {node_joined, bin(N), bin(R)};
event(#{event := node_state_changed, node := N, from := F, to := T}) ->
    {node_state_changed, bin(N), F, T};
event(#{event := node_left, node := N}) -> {node_left, bin(N)};
event(#{event := leader_changed, leader := L, term := T}) -> {leader_changed, option(L), T};
event(_) -> skip.

option(undefined) -> none;
option(A) -> {some, bin(A)}.

%%% ------------------------------------------------------------------ registry and global names

%% @doc `registry.register(node, name, tags, metadata)'.
-spec registry_register(binary(), binary(), [binary()], #{binary() => binary()}) ->
          gleam_result(binary(), call_error()).
registry_register(Node, Name, Tags, Meta) ->
    case beamlet_client:register_service(atom(Node), #{name => Name, tags => Tags,
                                                         metadata => Meta}) of
        {ok, Id} -> {ok, bin(Id)};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `registry.deregister(node, id)'.
-spec registry_deregister(binary(), binary()) -> gleam_result(nil, call_error()).
registry_deregister(Node, Id) ->
    case beamlet_client:deregister_service(atom(Node), Id) of
        ok -> {ok, nil};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `registry.find(name)': asked of any connected beamlet node.
-spec registry_find(binary()) -> gleam_result([service()], call_error()).
registry_find(Name) ->
    case beamlet_client:find_services(#{name => Name}) of
        {ok, L} -> {ok, [service(E) || E <- L]};
        {error, R} -> {error, call_error(R)}
    end.

service(E) ->
    {service, bin(maps:get(id, E, <<>>)), bin(maps:get(name, E, <<>>)),
     bin(maps:get(node, E, <<>>)), bin(maps:get(version, E, <<>>)),
     bin(maps:get(address, E, <<>>)), maps:get(port, E, 0), maps:get(tags, E, []),
     maps:get(metadata, E, #{}), maps:get(health, E, passing)}.

%% @doc `registry.call(service, request, timeout)'.
-spec registry_call(binary(), term(), integer()) -> gleam_result(term(), call_error()).
registry_call(Service, Request, Timeout) ->
    case beamlet_client:service_call(Service, Request, Timeout) of
        {ok, R} -> {ok, R};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `global.whereis(name)': Option(Pid).
-spec global_whereis(binary()) -> gleam_option(pid()).
global_whereis(Name) ->
    case beamlet_client:whereis_name(atom(Name)) of
        {ok, Pid} when is_pid(Pid) -> {some, Pid};
        _ -> none
    end.

%%% ------------------------------------------------------------------ pub/sub

%% Gleam: Qos { AtMostOnce AtLeastOnce(name: String) ExactlyOnce(name: String) } -> the node's
%% subscribe options (a durable subscription needs its name: it is kept under it while the
%% subscriber is away). Priority { High Normal Low } are the node's atoms.
sub_opts(at_most_once) -> #{qos => at_most_once};
sub_opts({at_least_once, Name}) -> #{qos => at_least_once, name => Name};
sub_opts({exactly_once, Name}) -> #{qos => exactly_once, name => Name}.

%% @doc `pubsub.subscribe(node, pattern, qos, subject)': a relay process is the subscriber; it
%% sends `Message(topic, payload, id, priority)' to the subject, acknowledges durable deliveries
%% once forwarded, and unsubscribes when the subject's owner exits.
-spec pubsub_subscribe(binary(), binary(), qos(), subject()) -> gleam_result(integer(), call_error()).
pubsub_subscribe(Node, Pattern, Qos, Subject) ->
    case subject_owner(Subject) of
        {ok, Owner} -> pubsub_subscribe(Node, Pattern, Qos, Subject, Owner);
        {error, nil} -> {error, {call_failed, <<"unregistered subject">>}}
    end.

pubsub_subscribe(Node, Pattern, Qos, Subject, Owner) ->
    Parent = self(),
    Relay = spawn(fun() -> ps_relay_start(atom(Node), Pattern, Qos, Subject, Owner, Parent) end),
    receive
        {Relay, {ok, SubId}} -> {ok, SubId};
        {Relay, {error, R}} -> {error, call_error(R)}
    after 10000 ->
        exit(Relay, kill),
        {error, timeout}
    end.

ps_relay_start(Node, Pattern, Qos0, Subject, Owner, Parent) ->
    erlang:monitor(process, Owner),
    process_flag(trap_exit, true), % the subscription links us to the node's pub/sub process
    Opts = sub_opts(Qos0),
    Qos = maps:get(qos, Opts),
    case beamlet_client:subscribe(Node, Pattern, Opts) of
        {ok, SubId} ->
            Parent ! {self(), {ok, SubId}},
            ps_relay_loop(Node, SubId, Qos, Subject);
        {error, R} ->
            Parent ! {self(), {error, R}}
    end.

ps_relay_loop(Node, SubId, Qos, Subject) ->
    receive
        {beamlet_msg, Topic, Payload, Meta} ->
            Id = maps:get(id, Meta, <<>>),
            _ = send_subject(Subject, {message, bin(Topic), Payload, Id,
                                       maps:get(priority, Meta, normal)}),
            _ = case Qos of
                    at_least_once -> beamlet_client:ack(Node, SubId, Id);
                    _ -> ok
                end,
            ps_relay_loop(Node, SubId, Qos, Subject);
        {'DOWN', _, process, _, _} ->
            _ = beamlet_client:unsubscribe(Node, SubId),
            ok;
        {'EXIT', _, _} ->
            ok
    end.

%% @doc `pubsub.publish(node, topic, payload, priority)'.
-spec pubsub_publish(binary(), binary(), term(), high | normal | low) ->
          gleam_result(binary(), call_error()).
pubsub_publish(Node, Topic, Payload, Priority) ->
    case beamlet_client:publish(atom(Node), Topic, Payload, #{priority => Priority}) of
        {ok, Id} -> {ok, Id};
        {error, R} -> {error, call_error(R)}
    end.

%%% ------------------------------------------------------------------ calls

%% @doc `beamlet.call(node, service, request, timeout)'.
-spec call(binary(), binary(), term(), integer()) -> gleam_result(term(), call_error()).
call(Node, Service, Request, Timeout) ->
    case beamlet_client:call(atom(Node), atom(Service), Request, max(0, Timeout)) of
        {ok, Reply} -> {ok, Reply};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc Erlang call error -> Gleam `CallError'.
-spec call_error(term()) -> call_error().
call_error(nodedown) -> node_down;
call_error(timeout) -> timeout;
call_error(noproc) -> no_proc;
call_error(Other) -> {call_failed, text(Other)}.

%% @doc `beamlet.cast(node, service, message)'.
-spec cast(binary(), binary(), term()) -> nil.
cast(Node, Service, Msg) ->
    ok = beamlet_client:cast(atom(Node), atom(Service), Msg),
    nil.

%%% ------------------------------------------------------------------ nodes

%% @doc `node.connect(node)'.
-spec connect(binary()) -> gleam_result(nil, connect_error()).
connect(Node) ->
    case beamlet_client:connect(atom(Node)) of
        ok -> {ok, nil};
        {error, not_alive} -> {error, not_alive};
        {error, not_beamlet} -> {error, not_beamlet};
        {error, nodedown} -> {error, unreachable};
        {error, _} -> {error, no_answer}
    end.

%% @doc `node.list()'.
-spec nodes() -> [node_info()].
nodes() ->
    [{node_info, bin(N), bin(R), bin(C), bin(V)}
     || #{node := N, role := R, cluster := C, version := V} <- beamlet_nodes:list()].

%% @doc `node.info(node)'.
-spec info(binary()) -> gleam_result(info(), call_error()).
info(Node) ->
    case beamlet_client:info(atom(Node)) of
        {ok, I} ->
            {ok, {info, bin(maps:get(node, I, '')), bin(maps:get(role, I, '')),
                  bin(maps:get(cluster, I, <<>>)), bin(maps:get(version, I, <<>>)),
                  maps:get(uptime_ms, I, 0), maps:get(processes, I, 0),
                  maps:get(os_pid, I, 0), maps:get(port, I, 0),
                  [bin(C) || C <- maps:get(connections, I, [])]}};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `node.stats(node)': a `Dict(String, Dynamic)'.
-spec stats(binary()) -> gleam_result(#{binary() => term()}, call_error()).
stats(Node) ->
    case beamlet_client:stats(atom(Node)) of
        {ok, M} -> {ok, maps:fold(fun(K, V, Acc) -> Acc#{bin(K) => V} end, #{}, M)};
        {error, R} -> {error, call_error(R)}
    end.

%% @doc `node.monitor(node, subject)': the subject gets the node name (a String) once, when the
%% connection goes down. Returns the monitor (a reference).
%% `Error(Nil)' for a named subject whose name nobody holds.
-spec monitor(binary(), subject()) -> gleam_result(reference(), nil).
monitor(Node, Subject) ->
    case subject_owner(Subject) of
        {ok, Pid} ->
            Ref = make_ref(),
            Msg = case Subject of
                      {subject, _, Tag} -> {Tag, Node};
                      {named_subject, Name} -> {Name, Node}
                  end,
            ok = beamlet_nodes:monitor(atom(Node), Ref, Pid, Msg),
            {ok, Ref};
        {error, nil} -> {error, nil}
    end.

%% @doc `node.demonitor(monitor)'.
-spec demonitor(reference()) -> nil.
demonitor(Ref) ->
    ok = beamlet_nodes:demonitor(Ref),
    nil.

%%% ------------------------------------------------------------------ workers

%% @doc `worker.start(options)': the node name on success.
-spec start_worker(worker_options()) -> gleam_result(binary(), start_error()).
start_worker({options, Name, Cookie, Role, Cluster, Join, Extra, Binary, StartTimeout}) ->
    Opts0 = #{name => Name, join => Join, extra_args => Extra, start_timeout => StartTimeout},
    Opts = lists:foldl(fun({_, none}, M) -> M;
                          ({K, {some, V}}, M) -> M#{K => V}
                       end, Opts0, [{cookie, Cookie}, {role, Role}, {cluster, Cluster},
                                    {binary, Binary}]),
    case beamlet_worker_sup:start_worker(Opts) of
        {ok, Node} -> {ok, bin(Node)};
        {error, {already_started, _}} -> {error, already_started};
        {error, {already_running, _}} -> {error, already_started};
        {error, {no_binary, Path}} -> {error, {binary_not_found, bin(Path)}};
        {error, start_timeout} -> {error, start_timeout};
        {error, R} -> {error, {start_failed, text(R)}}
    end.

%% @doc `worker.stop(node)'.
-spec stop_worker(binary()) -> gleam_result(nil, nil).
stop_worker(Node) ->
    case beamlet_worker_sup:stop_worker(atom(Node)) of
        ok -> {ok, nil};
        {error, not_found} -> {error, nil}
    end.

%% @doc `worker.running()': the node names of the running workers.
-spec which_workers() -> [binary()].
which_workers() ->
    [bin(N) || {N, _, _} <- beamlet_worker_sup:which_workers()].

%%% ------------------------------------------------------------------ discovery

%% @doc `discovery.start(options)': an unregistered discovery server linked to the caller.
-spec discovery_start(discovery_options()) -> gleam_result(pid(), binary()).
discovery_start({discovery_options, Hosts, Pattern, Interval}) ->
    Opts0 = #{name => none, hosts => [binary_to_list(H) || H <- Hosts], interval => Interval},
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
-spec discovery_found(pid()) -> [binary()].
discovery_found(Pid) ->
    [bin(N) || N <- beamlet_discovery:found(Pid)].

%% @doc `discovery.refresh(discovery)': poll now, then the nodes found.
-spec discovery_refresh(pid()) -> [binary()].
discovery_refresh(Pid) ->
    [bin(N) || N <- beamlet_discovery:refresh(Pid)].

%% @doc `discovery.stop(discovery)'.
-spec discovery_stop(pid()) -> nil.
discovery_stop(Pid) ->
    unlink(Pid),
    ok = beamlet_discovery:stop(Pid),
    nil.

%%% ------------------------------------------------------------------ helpers

atom(B) when is_binary(B) -> binary_to_atom(B, utf8);
atom(A) when is_atom(A) -> A.

bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(B) when is_binary(B) -> B;
bin(L) when is_list(L) -> unicode:characters_to_binary(L).

text(T) -> unicode:characters_to_binary(io_lib:format("~0tp", [T])).
