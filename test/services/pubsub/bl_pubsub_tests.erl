%% bl_pubsub_tests - pub/sub (`beamlet_pubsub`) against real beamlet nodes (ASan builds) on
%% loopback: BEAM subscribers (this runner) and C subscribers (pubsub_node.c, the C API) across
%% three nodes, wildcard routing, priority order, TTL expiry, counters, validation, subscriber
%% exit and node loss, and `cluster.events`.
-module(bl_pubsub_tests).
-include_lib("eunit/include/eunit.hrl").

fast() -> ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
           "--election-timeout-ms", "600"].

start(Tag, Cluster, Join) ->
    bl_test_util:start_beamlet(Tag, bl_test_util:member_args("agent", Cluster, Join) ++ fast()).

start_c_node(Tag, Cluster, Join) ->
    Alias = bl_test_util:unique(Tag),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    Bin = case os:getenv("PUBSUB_NODE_BIN") of
              V when V =:= false; V =:= "" -> error(missing_pubsub_node_bin);
              V -> V
          end,
    %% without BEAMLET_DATA_DIR: no outbox on this node
    Args = ["-u", "BEAMLET_DATA_DIR", Bin, "--sname", Alias, "--cookie", bl_test_util:cookie(),
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
            "--role", "agent", "--cluster", Cluster, "--join", atom_to_list(Join) | fast()],
    Node = bl_test_util:spawn_raw(Node, "/usr/bin/env", Args),
    ok = bl_test_util:wait_up(Node, 15000),
    Node.

ps(N, Req) -> gen_server:call({beamlet_pubsub, N}, Req, 10000).
ctl(N, Req) -> gen_server:call({ps_ctl, N}, Req, 10000).

until(F) -> ?assert(bl_test_util:wait_until(F, 15000)).

agree(Nodes) -> ?assert(bl_test_util:agree(Nodes, 15000)).

%% Node At holds a replica of a subscription of Owner with Pattern.
has_sub(At, Owner, Pattern) ->
    lists:any(fun(#{node := O, pattern := P}) -> O =:= Owner andalso P =:= Pattern end,
              ps(At, subscriptions)).

msg(Topic) ->
    bl_test_util:recv(fun({beamlet_msg, T, _, _}) -> T =:= Topic; (_) -> false end, 5000).

cmsg(Topic) ->
    bl_test_util:recv(fun({c_msg, _, T, _, _, _}) -> T =:= Topic; (_) -> false end, 5000).

none(Pred, Ms) ->
    ?assertEqual(timeout, bl_test_util:recv(Pred, Ms)).

counters(N, T) -> ps(N, {counters, T}).

%% ---- routing across three nodes, C and BEAM ----

routing_test_() ->
    {timeout, 120, fun routing/0}.

routing() ->
    C = "p" ++ bl_test_util:unique(""),
    A = start("psa", C, []),
    B = start("psb", C, [A]),
    Cn = start_c_node("psc", C, A),
    agree([A, B, Cn]),
    Me = self(),
    %% BEAM subscriber on A (single-level wildcard), C subscriber on Cn (multi-level)
    {ok, S1} = ps(A, {subscribe, <<"metrics.*.cpu">>, Me, #{}}),
    ?assert(is_integer(S1)),
    {ok, S2} = ctl(Cn, {c_subscribe, <<"metrics.#">>, Me}),
    {ok, _S3} = ps(B, {subscribe, <<"orders.eu">>, Me, #{qos => at_most_once}}),
    until(fun() -> has_sub(B, A, <<"metrics.*.cpu">>) andalso has_sub(B, Cn, <<"metrics.#">>)
                       andalso has_sub(A, Cn, <<"metrics.#">>) andalso has_sub(Cn, A, <<"metrics.*.cpu">>)
                       andalso has_sub(A, B, <<"orders.eu">>) andalso has_sub(Cn, B, <<"orders.eu">>) end),
    %% a BEAM publish on B reaches the BEAM subscriber on A and the C one on Cn
    {ok, Id1} = ps(B, {publish, <<"metrics.web1.cpu">>, #{v => 42}, #{}}),
    ?assert(is_binary(Id1)),
    {ok, {beamlet_msg, <<"metrics.web1.cpu">>, #{v := 42}, M1}} = msg(<<"metrics.web1.cpu">>),
    ?assertMatch(#{id := Id1, priority := normal, qos := at_most_once, publisher := B,
                   sub := S1, ttl_ms := 0}, M1),
    ?assert(is_integer(maps:get(published_at, M1))),
    {ok, {c_msg, S2, _, #{v := 42}, normal, Id1}} = cmsg(<<"metrics.web1.cpu">>),
    %% only the C subscriber's pattern matches metrics.web1.mem and metrics
    {ok, _} = ps(A, {publish, <<"metrics.web1.mem">>, <<"m">>, #{priority => high}}),
    {ok, {c_msg, S2, _, <<"m">>, high, _}} = cmsg(<<"metrics.web1.mem">>),
    none(fun({beamlet_msg, <<"metrics.web1.mem">>, _, _}) -> true; (_) -> false end, 300),
    %% a C publish on Cn reaches the BEAM subscriber on A and the local C subscriber; exact topic
    {ok, _} = ctl(Cn, {c_publish, <<"metrics.db.cpu">>, {load, 7}, 0, 0}),
    {ok, {beamlet_msg, _, {load, 7}, #{priority := high, publisher := Cn}}} = msg(<<"metrics.db.cpu">>),
    {ok, {c_msg, S2, _, {load, 7}, high, _}} = cmsg(<<"metrics.db.cpu">>),
    {ok, _} = ctl(Cn, {c_publish, <<"orders.eu">>, 1, 2, 0}),
    {ok, {beamlet_msg, _, 1, #{priority := low}}} = msg(<<"orders.eu">>),
    {ok, _} = ps(A, {publish, <<"orders.us">>, 1, #{}}),
    none(fun({beamlet_msg, <<"orders.us">>, _, _}) -> true; (_) -> false end, 300),
    %% each delivered exactly once (at most once: no duplicates across nodes)
    none(fun({beamlet_msg, <<"metrics.web1.cpu">>, _, _}) -> true;
            ({c_msg, _, <<"metrics.web1.cpu">>, _, _, _}) -> true; (_) -> false end, 300),
    %% counters: published where published, delivered where delivered
    ?assertMatch(#{published := 1, delivered := 0}, counters(B, <<"metrics.web1.cpu">>)),
    ?assertMatch(#{published := 0, delivered := 1}, counters(A, <<"metrics.web1.cpu">>)),
    ?assertEqual({0, 1, 0, 0, 0}, ctl(Cn, {c_counters, <<"metrics.web1.cpu">>})),
    ?assertEqual({1, 1, 0, 0, 0}, ctl(Cn, {c_counters, <<"metrics.db.cpu">>})),
    ?assertMatch(#{published := 0, delivered := 1}, counters(A, <<"metrics.db.cpu">>)),
    ?assertMatch(#{<<"metrics.web1.cpu">> := #{published := 1}}, ps(B, counters)),
    %% validation: never a crash
    [?assertEqual({error, badarg}, ps(A, R)) || R <- [
        {subscribe, <<"a..b">>, Me, #{}}, {subscribe, <<"a.#.b">>, Me, #{}},
        {subscribe, <<"a">>, not_a_pid, #{}}, {subscribe, <<"a">>, Me, #{bogus => 1}},
        {subscribe, <<"a">>, Me, #{qos => sometimes}}, {subscribe, <<"a">>, Me, #{max_queue => 0}},
        {subscribe, 42, Me, #{}}, {subscribe, <<"a">>, Me, []},
        {publish, <<"a.*">>, 1, #{}}, {publish, <<"a.#">>, 1, #{}}, {publish, <<>>, 1, #{}},
        {publish, <<"a">>, 1, #{priority => urgent}}, {publish, <<"a">>, 1, #{ttl_ms => -1}},
        {publish, <<"a">>, 1, #{bogus => 1}}, {publish, <<"a">>, 1, not_a_map},
        {publish, binary:copy(<<"x">>, 300), 1, #{}},
        {unsubscribe, not_an_int}, {counters, 1}, {nonsense}, nonsense, "str"]],
    ?assertEqual({error, not_found}, ps(A, {unsubscribe, 987654})),
    ?assertEqual({error, not_found}, ps(A, {pause, 987654})),
    ?assertEqual(ok, ctl(Cn, c_invalid)),
    %% durable QoS on a node without a data directory
    ?assertEqual({error, no_store}, ps(Cn, {subscribe, <<"a">>, Me, #{qos => at_least_once, name => <<"n">>}})),
    ?assertEqual({error, no_store}, ps(Cn, {publish, <<"a">>, 1, #{qos => exactly_once}})),
    %% a cast publish works too
    gen_server:cast({beamlet_pubsub, B}, {publish, <<"metrics.cast.cpu">>, c, #{}}),
    {ok, {beamlet_msg, _, c, _}} = msg(<<"metrics.cast.cpu">>),
    %% unsubscribe: removed everywhere
    ok = ps(A, {unsubscribe, S1}),
    until(fun() -> not has_sub(B, A, <<"metrics.*.cpu">>) end),
    {ok, _} = ps(B, {publish, <<"metrics.web2.cpu">>, x, #{}}),
    {ok, {c_msg, S2, _, x, _, _}} = cmsg(<<"metrics.web2.cpu">>),
    none(fun({beamlet_msg, <<"metrics.web2.cpu">>, _, _}) -> true; (_) -> false end, 300),
    ok = ctl(Cn, {c_unsubscribe, S2}),
    until(fun() -> not has_sub(A, Cn, <<"metrics.#">>) end),
    %% a subscriber process that exits loses its subscriptions
    P = spawn(fun() -> receive stop -> ok end end),
    {ok, _} = ps(A, {subscribe, <<"tmp.*">>, P, #{}}),
    until(fun() -> has_sub(B, A, <<"tmp.*">>) end),
    P ! stop,
    until(fun() -> not has_sub(B, A, <<"tmp.*">>) andalso not has_sub(A, A, <<"tmp.*">>) end),
    %% kill -9 of a subscriber node: its subscriptions disappear from the others
    {ok, _} = ctl(Cn, {c_subscribe, <<"gone.#">>, Me}),
    until(fun() -> has_sub(A, Cn, <<"gone.#">>) end),
    bl_test_util:kill(Cn),
    until(fun() -> not has_sub(A, Cn, <<"gone.#">>) andalso not has_sub(B, Cn, <<"gone.#">>) end),
    {ok, _} = ps(A, {publish, <<"gone.x">>, 1, #{}}),
    ?assertMatch(#{dropped := 0}, counters(A, <<"gone.x">>)),
    ok.

%% ---- priorities, TTL, queue bound, cluster.events (two nodes) ----

queue_test_() ->
    {timeout, 120, fun queue/0}.

queue() ->
    C = "q" ++ bl_test_util:unique(""),
    A = start("pqa", C, []),
    B = start("pqb", C, [A]),
    agree([A, B]),
    Me = self(),
    %% priorities: a paused subscriber's queue drains high, normal, low (FIFO within one)
    {ok, S} = ps(A, {subscribe, <<"prio.*">>, Me, #{paused => true}}),
    until(fun() -> has_sub(B, A, <<"prio.*">>) end),
    Pubs = [{low, 1}, {normal, 2}, {high, 3}, {low, 4}, {high, 5}, {normal, 6}],
    [{ok, _} = ps(B, {publish, <<"prio.x">>, V, #{priority => Pr}}) || {Pr, V} <- Pubs],
    timer:sleep(300),
    none(fun({beamlet_msg, <<"prio.x">>, _, _}) -> true; (_) -> false end, 100),
    ok = ps(A, {resume, S}),
    Got = [begin {ok, {beamlet_msg, _, V, #{priority := Pr}}} = msg(<<"prio.x">>), {Pr, V} end
           || _ <- Pubs],
    ?assertEqual([{high, 3}, {high, 5}, {normal, 2}, {normal, 6}, {low, 1}, {low, 4}], Got),
    %% TTL: messages that expire while queued are dropped and counted as expired
    ok = ps(A, {pause, S}),
    [{ok, _} = ps(B, {publish, <<"prio.ttl">>, V, #{ttl_ms => 150}}) || V <- [1, 2, 3]],
    {ok, _} = ps(B, {publish, <<"prio.ttl">>, keep, #{ttl_ms => 60000}}),
    {ok, _} = ps(A, {publish, <<"prio.ttl">>, keep2, #{}}),
    timer:sleep(500),
    ok = ps(A, {resume, S}),
    %% (keep came through B, keep2 straight to A: their arrival order is not defined)
    Kept = lists:sort([begin {ok, {beamlet_msg, _, V, _}} = msg(<<"prio.ttl">>), V end
                       || _ <- [1, 2]]),
    ?assertEqual([keep, keep2], Kept),
    none(fun({beamlet_msg, <<"prio.ttl">>, _, _}) -> true; (_) -> false end, 300),
    ?assertMatch(#{expired := 3, delivered := 2, published := 1}, counters(A, <<"prio.ttl">>)),
    ?assertMatch(#{published := 4}, counters(B, <<"prio.ttl">>)),
    %% a TTL that has not run out is delivered at once when not paused
    {ok, _} = ps(B, {publish, <<"prio.ttl">>, quick, #{ttl_ms => 2000}}),
    {ok, {beamlet_msg, _, quick, _}} = msg(<<"prio.ttl">>),
    %% queue bound: the oldest lowest-priority message is dropped and counted
    {ok, Sq} = ps(A, {subscribe, <<"bound">>, Me, #{paused => true, max_queue => 2}}),
    {ok, _} = ps(A, {publish, <<"bound">>, 1, #{priority => low}}),
    {ok, _} = ps(A, {publish, <<"bound">>, 2, #{priority => high}}),
    {ok, _} = ps(A, {publish, <<"bound">>, 3, #{priority => normal}}),
    ok = ps(A, {resume, Sq}),
    {ok, {beamlet_msg, _, 2, _}} = msg(<<"bound">>),
    {ok, {beamlet_msg, _, 3, _}} = msg(<<"bound">>),
    none(fun({beamlet_msg, <<"bound">>, _, _}) -> true; (_) -> false end, 300),
    ?assertMatch(#{dropped := 1, delivered := 2}, counters(A, <<"bound">>)),
    %% cluster.events: membership events published on each node
    {ok, _} = ps(A, {subscribe, <<"cluster.#">>, Me, #{}}),
    D = start("pqd", C, [A]),
    {ok, {beamlet_msg, <<"cluster.events">>, #{event := node_joined, node := D}, _}} =
        bl_test_util:recv(fun({beamlet_msg, <<"cluster.events">>, #{event := node_joined, node := N}, _}) ->
                                  N =:= D;
                             (_) -> false end, 10000),
    bl_test_util:kill(D),
    {ok, _} = bl_test_util:recv(fun({beamlet_msg, <<"cluster.events">>,
                                     #{event := node_state_changed, node := N, to := failed}, _}) ->
                                        N =:= D;
                                   (_) -> false end, 15000),
    ok.

%% ---- at-least-once: durable subscriptions, acks, retries, the SQLite outbox ----

%% Restart a killed beamlet node under the same name (its outbox file is found again).
restart(Node, Cluster, Join) ->
    [Alias, _] = string:split(atom_to_list(Node), "@"),
    Args = ["node", "--sname", Alias, "--cookie", bl_test_util:cookie(),
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
            "--role", "agent", "--cluster", Cluster,
            "--join", string:join([atom_to_list(J) || J <- Join], ",") | fast()],
    Node = bl_test_util:spawn_raw(Node, os:getenv("BEAMLET_BIN"), Args),
    ok = bl_test_util:wait_up(Node, 15000),
    Node.

%% A subscriber that acks (when Ack) every at-least-once message to the node it subscribed on and
%% counts what it got: {got, From} -> {got, Distinct, Total}.
collector(Ack) ->
    spawn(fun() -> process_flag(trap_exit, true), collect(Ack, #{}, 0) end).

collect(Ack, Seen, Total) ->
    receive
        {node, N} -> put(node, N), collect(Ack, Seen, Total);
        {beamlet_msg, _, V, #{id := Id, sub := Sub, qos := Q}} when Q =/= at_most_once ->
            Ack andalso gen_server:cast({beamlet_pubsub, get(node)}, {ack, Sub, Id}),
            collect(Ack, Seen#{V => true}, Total + 1);
        {got, From} -> From ! {got, lists:sort(maps:keys(Seen)), Total}, collect(Ack, Seen, Total);
        _ -> collect(Ack, Seen, Total)
    end.

got(Coll) ->
    Coll ! {got, self()},
    receive {got, L, T} -> {L, T} after 5000 -> error(collector_silent) end.

alo_test_() ->
    {timeout, 180, fun alo/0}.

alo() ->
    C = "a" ++ bl_test_util:unique(""),
    P = start("pap", C, []),
    S = start("pas", C, [P]),
    agree([P, S]),
    Coll = collector(true),
    Coll ! {node, S},
    Opts = #{qos => at_least_once, name => <<"d1">>},
    ?assertEqual({error, badarg}, ps(S, {subscribe, <<"jobs.#">>, Coll, #{qos => at_least_once}})),
    ?assertEqual({error, badarg}, ps(S, {subscribe, <<"jobs.#">>, Coll, #{name => <<"x">>}})),
    ?assertEqual({error, badarg}, ps(S, {subscribe, <<"jobs.#">>, Coll, #{qos => at_least_once, name => <<>>}})),
    {ok, _} = ps(S, {subscribe, <<"jobs.#">>, Coll, Opts}),
    until(fun() -> has_sub(P, S, <<"jobs.#">>) end),
    %% kill -9 the subscriber node mid-stream, restart it, subscribe again under the same name
    N = 300,
    Pub = fun(I) -> {ok, _} = ps(P, {publish, <<"jobs.x">>, I, #{qos => at_least_once}}),
                    timer:sleep(3) end,
    [Pub(I) || I <- lists:seq(1, 100)],
    bl_test_util:kill(S),
    [Pub(I) || I <- lists:seq(101, 150)],
    S = restart(S, C, [P]),
    [Pub(I) || I <- lists:seq(151, 200)],
    {ok, _} = ps(S, {subscribe, <<"jobs.#">>, Coll, Opts}),
    [Pub(I) || I <- lists:seq(201, N)],
    All = lists:seq(1, N),
    ?assert(bl_test_util:wait_until(fun() -> element(1, got(Coll)) =:= All end, 60000)),
    until(fun() -> ps(P, pending) =:= 0 end),
    ?assertMatch(#{published := N}, counters(P, <<"jobs.x">>)),
    #{retried := Retried} = counters(P, <<"jobs.x">>),
    ?assert(Retried > 0),
    %% kill -9 the publisher with unacknowledged messages in its outbox: after its restart they
    %% are delivered (the subscription is paused so nothing is acked before the kill)
    Coll2 = collector(true),
    Coll2 ! {node, S},
    {ok, Sub2} = ps(S, {subscribe, <<"jobs2.*">>, Coll2, #{qos => at_least_once, name => <<"d2">>, paused => true}}),
    until(fun() -> has_sub(P, S, <<"jobs2.*">>) end),
    [{ok, _} = ps(P, {publish, <<"jobs2.y">>, I, #{qos => at_least_once, priority => low}}) || I <- lists:seq(1, 20)],
    ?assertEqual(20, ps(P, pending)),
    bl_test_util:kill(P),
    P = restart(P, C, [S]),
    ok = ps(S, {resume, Sub2}),
    ?assert(bl_test_util:wait_until(fun() -> element(1, got(Coll2)) =:= lists:seq(1, 20) end, 30000)),
    until(fun() -> ps(P, pending) =:= 0 end),
    %% an at-least-once publish with no durable subscriber anywhere: nothing pending
    {ok, _} = ps(P, {publish, <<"nobody.here">>, 1, #{qos => at_least_once}}),
    ?assertEqual(0, ps(P, pending)),
    %% unsubscribing a durable subscription drops what the publishers still hold for it
    {ok, Sub9} = ps(S, {subscribe, <<"later">>, Coll2, #{qos => at_least_once, name => <<"d9">>, paused => true}}),
    until(fun() -> has_sub(P, S, <<"later">>) end),
    [{ok, _} = ps(P, {publish, <<"later">>, I, #{qos => at_least_once}}) || I <- [1, 2, 3]],
    ?assertEqual(3, ps(P, pending)),
    ok = ps(S, {unsubscribe, Sub9}),
    until(fun() -> ps(P, pending) =:= 0 end),
    ok.

%% ---- exactly-once: at-least-once plus a persisted de-duplication window ----

eo_test_() ->
    {timeout, 180, fun eo/0}.

sig(Node, Sig) -> os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(bl_test_util:os_pid(Node))).

eo() ->
    C = "e" ++ bl_test_util:unique(""),
    P = start("pep", C, []),
    S = start("pes", C, [P]),
    agree([P, S]),
    Coll = collector(true),
    Coll ! {node, S},
    Opts = #{qos => exactly_once, name => <<"d3">>},
    ?assertEqual({error, badarg}, ps(S, {subscribe, <<"eo.#">>, Coll, #{qos => exactly_once}})),
    {ok, _} = ps(S, {subscribe, <<"eo.#">>, Coll, Opts}),
    until(fun() -> has_sub(P, S, <<"eo.#">>) end),
    %% kill -9 of the subscriber node mid-stream: each message exactly once
    Pub = fun(I) -> {ok, _} = ps(P, {publish, <<"eo.x">>, I, #{qos => exactly_once}}),
                    timer:sleep(3) end,
    [Pub(I) || I <- lists:seq(1, 60)],
    bl_test_util:kill(S),
    [Pub(I) || I <- lists:seq(61, 90)],
    S = restart(S, C, [P]),
    {ok, _} = ps(S, {subscribe, <<"eo.#">>, Coll, Opts}),
    [Pub(I) || I <- lists:seq(91, 150)],
    Ok = bl_test_util:wait_until(fun() -> element(1, got(Coll)) =:= lists:seq(1, 150) end, 20000),
    Ok orelse io:format(user, "DEBUG missing ~p pending ~p subs P ~p subs S ~p~n",
                        [lists:seq(1, 150) -- element(1, got(Coll)), ps(P, pending), ps(P, subscriptions), ps(S, subscriptions)]),
    ?assert(Ok),
    until(fun() -> ps(P, pending) =:= 0 end),
    timer:sleep(1500),
    ?assertEqual({lists:seq(1, 150), 150}, got(Coll)),
    %% retries while the subscription is paused are not queued twice
    Coll2 = collector(false),
    {ok, Sub4} = ps(S, {subscribe, <<"eo2">>, Coll2, #{qos => exactly_once, name => <<"d4">>, paused => true}}),
    until(fun() -> has_sub(P, S, <<"eo2">>) end),
    [{ok, _} = ps(P, {publish, <<"eo2">>, I, #{qos => exactly_once}}) || I <- lists:seq(1, 5)],
    timer:sleep(1800),
    #{retried := R} = counters(P, <<"eo2">>),
    ?assert(R >= 5),
    ok = ps(S, {resume, Sub4}),
    until(fun() -> ps(P, pending) =:= 0 end),
    timer:sleep(1000),
    ?assertEqual({lists:seq(1, 5), 5}, got(Coll2)),
    %% the window survives kill -9: a delivery whose ack the publisher never processed is retried
    %% by the restarted publisher and suppressed by the restarted subscriber node
    Coll3 = collector(false),
    {ok, Sub5} = ps(S, {subscribe, <<"eo3">>, Coll3, #{qos => exactly_once, name => <<"d5">>, paused => true}}),
    until(fun() -> has_sub(P, S, <<"eo3">>) end),
    {ok, _} = ps(P, {publish, <<"eo3">>, once, #{qos => exactly_once}}),
    ?assertEqual(1, ps(P, pending)),
    sig(P, "STOP"),
    ok = ps(S, {resume, Sub5}),
    ?assert(bl_test_util:wait_until(fun() -> got(Coll3) =:= {[once], 1} end, 10000)),
    bl_test_util:kill(S),
    S = restart(S, C, [P]),
    {ok, _} = ps(S, {subscribe, <<"eo3">>, Coll3, #{qos => exactly_once, name => <<"d5">>}}),
    bl_test_util:kill(P),
    P = restart(P, C, [S]),
    ?assert(bl_test_util:wait_until(fun() -> ps(P, pending) =:= 0 end, 20000)),
    #{retried := R3} = counters(P, <<"eo3">>),
    ?assert(R3 >= 1),
    timer:sleep(1000),
    ?assertEqual({[once], 1}, got(Coll3)),
    ok.

%% C publishers and C durable subscribers (the C API): at-least-once through kill -9 and restart
%% of the subscriber node; exactly-once while retries pile up for a frozen subscriber node.
c_durable_test_() ->
    {timeout, 180, fun c_durable/0}.

%% A pubsub_node with the outbox (BEAMLET_DATA_DIR from run.sh); restartable under its name.
c_durable_node(Node, Cluster, Join) ->
    [Alias, _] = string:split(atom_to_list(Node), "@"),
    Args = ["--sname", Alias, "--cookie", bl_test_util:cookie(),
            "--net-ticktime", integer_to_list(bl_test_util:ticktime()),
            "--role", "agent", "--cluster", Cluster | case Join of
                                                          [] -> [];
                                                          _ -> ["--join", atom_to_list(Join)]
                                                      end ++ fast()],
    Node = bl_test_util:spawn_raw(Node, os:getenv("PUBSUB_NODE_BIN"), Args),
    ok = bl_test_util:wait_up(Node, 15000),
    Node.

%% Payloads of C deliveries on Topic (other tests' C subscribers may report here too).
c_got(Topic, Acc) ->
    receive {c_msg, _, Topic, V, _, _} -> c_got(Topic, [V | Acc]) after 200 -> Acc end.

c_durable() ->
    C = "cd" ++ bl_test_util:unique(""),
    Host = bl_test_util:host(),
    P = c_durable_node(list_to_atom(bl_test_util:unique("cdp") ++ "@" ++ Host), C, []),
    S = c_durable_node(list_to_atom(bl_test_util:unique("cds") ++ "@" ++ Host), C, P),
    agree([P, S]),
    Sub = fun() -> {ok, _} = ctl(S, {c_subscribe_durable, <<"cjobs.#">>, <<"cd1">>,
                                    at_least_once, self()}) end,
    Sub(),
    until(fun() -> has_sub(P, S, <<"cjobs.#">>) end),
    Pub = fun(I) -> {ok, _} = ctl(P, {c_publish_qos, <<"cjobs.x">>, I, at_least_once}),
                    timer:sleep(3) end,
    [Pub(I) || I <- lists:seq(1, 60)],
    bl_test_util:kill(S),
    [Pub(I) || I <- lists:seq(61, 90)],
    S = c_durable_node(S, C, P),
    Sub(),
    [Pub(I) || I <- lists:seq(91, 120)],
    Ok = bl_test_util:wait_until(fun() ->
        self() ! {c_acc, lists:usort(c_got(<<"cjobs.x">>, get_acc()))}, receive {c_acc, A} -> put(acc, A) end,
        get(acc) =:= lists:seq(1, 120) end, 60000),
    ?assert(Ok),
    until(fun() -> ps(P, pending) =:= 0 end),
    %% exactly-once: the subscriber node frozen while the publisher retries, then thawed
    erase(acc),
    {ok, _} = ctl(S, {c_subscribe_durable, <<"ceo.#">>, <<"ce1">>, exactly_once, self()}),
    until(fun() -> has_sub(P, S, <<"ceo.#">>) end),
    OsPid = bl_test_util:os_pid(S),
    os:cmd("kill -STOP " ++ integer_to_list(OsPid)),
    [{ok, _} = ctl(P, {c_publish_qos, <<"ceo.y">>, I, exactly_once}) || I <- lists:seq(1, 40)],
    timer:sleep(2500), % several retry rounds while frozen
    os:cmd("kill -CONT " ++ integer_to_list(OsPid)),
    until(fun() -> ps(P, pending) =:= 0 end),
    Got = lists:sort(c_got(<<"ceo.y">>, [])),
    ?assertEqual(lists:seq(1, 40), Got), % each exactly once
    ?assertMatch({error, _}, ctl(S, {c_subscribe_durable, <<"x">>, <<>>, at_least_once, self()})), % no name
    ok.

get_acc() -> case get(acc) of undefined -> []; A -> A end.

%% ---- several subscriptions per owner, on every node (issue 9: a sync kept only the first) ----

multi_test_() ->
    {timeout, 180, fun multi/0}.

topic(Node, K) -> iolist_to_binary([bl_test_util:to_str(bl_test_util:node_alias(Node)), ".t", integer_to_list(K)]).

all_subs_everywhere(Nodes, Topics) ->
    lists:all(fun(At) -> lists:all(fun({Owner, T}) -> has_sub(At, Owner, T) end, Topics) end, Nodes).

multi() ->
    C = "pm" ++ bl_test_util:unique(""),
    A = start("pma", C, []),
    B = start("pmb", C, [A]),
    D = start("pmd", C, [A, B]),
    Nodes = [A, B, D],
    agree(Nodes),
    Me = self(),
    %% the subscriber: a relay to this process (it is linked to the nodes, one is killed below)
    Sub = spawn(fun() -> process_flag(trap_exit, true), relay(Me) end),
    %% five subscriptions made through each node, one BEAM subscriber
    Topics = [{N, topic(N, K)} || N <- Nodes, K <- lists:seq(1, 5)],
    [{ok, _} = ps(N, {subscribe, T, Sub, #{}}) || {N, T} <- Topics],
    until(fun() -> all_subs_everywhere(Nodes, Topics) end),
    %% they stay through several resync rounds (each node syncs one member a second)
    timer:sleep(3500),
    Missing = [{At, O, T} || At <- Nodes, {O, T} <- Topics, not has_sub(At, O, T)],
    ?assertEqual([], Missing),
    %% each topic published once through each of the two other nodes: every message arrives
    [{ok, _} = ps(P, {publish, T, {from, P}, #{}}) || {O, T} <- Topics, P <- Nodes, P =/= O],
    Got = [bl_test_util:recv(fun({beamlet_msg, T1, {from, P1}, _}) -> T1 =:= T andalso P1 =:= P;
                                (_) -> false end, 5000)
           || {O, T} <- Topics, P <- Nodes, P =/= O],
    ?assertEqual([], [G || G <- Got, element(1, G) =/= ok]),
    ?assertEqual(30, length(Got)),
    %% a node restarted after kill -9 gets every owner's whole set through the sync alone
    bl_test_util:kill(D),
    until(fun() -> not has_sub(A, D, topic(D, 1)) end),
    D = restart(D, C, [A, B]),
    agree(Nodes),
    Others = [{O, T} || {O, T} <- Topics, O =/= D],
    until(fun() -> all_subs_everywhere([D], Others) end),
    timer:sleep(2500),
    ?assertEqual([], [{O, T} || {O, T} <- Others, not has_sub(D, O, T)]),
    [{ok, _} = ps(D, {publish, T, again, #{}}) || {_, T} <- Others],
    ?assertEqual([], [T || {_, T} <- Others,
                           timeout =:= bl_test_util:recv(fun({beamlet_msg, T1, again, _}) -> T1 =:= T;
                                                            (_) -> false end, 5000)]),
    Sub ! stop,
    ok.

relay(To) ->
    receive
        stop -> ok;
        {'EXIT', _, _} -> relay(To);
        M -> To ! M, relay(To)
    end.
