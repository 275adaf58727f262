%% bl_pubsub_bench - the driver of test/bench/pubsub_bench.sh (figures, never pass/fail).
%%
%% 1. Fan-out: P publishes, each reaching 1,000 subscribers spread over 5 nodes (200 per node).
%%    beamlet: 5 pubsub_bench_node C nodes, 200 C subscriptions each (a callback that bumps one
%%    counter per node), published from C on the first node (bl_pubsub_publish): that node
%%    delivers its 200 and sends one message per publish to each other node, which delivers its
%%    200. Reference: 5 BEAM nodes, 200 processes each in an OTP `pg` group (each bumps one
%%    atomics counter per node), and a publisher on the first node sending to every member of
%%    pg:get_members/1 per publish. Either side: the clock runs from the first publish until
%%    every node has counted its P x 200 deliveries (each node reports once, at the total).
%% 2. At-least-once vs at-most-once: N publishes (gen_server:cast to beamlet_pubsub on node A)
%%    to one BEAM subscriber process (here) subscribed on node B twice: `bench.amo` (at-most-once)
%%    and `bench.alo` (at_least_once, durable, acked per message with a cast to B). The clock runs
%%    until the subscriber has N distinct ids (and for at-least-once, A's outbox is empty: every
%%    ack has come back).
%%    The publisher keeps at most PSB_WINDOW messages ahead of what the subscriber has received
%%    (0: no bound, one burst), the same for both QoS: a burst of 20,000 at-least-once messages
%%    keeps acks behind the 0.5 s resend timer, and the resends then dominate what is measured.
%% Env: PSB_FAN, PSB_PG (5 node names each, space separated), PSB_A, PSB_B, PSB_PUBS, PSB_MSGS,
%% PSB_REPS, PSB_WINDOW. Prints "RESULT Key Value" lines for the script's table.
-module(bl_pubsub_bench).
-export([main/0, pg_setup/2, pg_member/1, pg_arm/2, pg_publish/2]).

-define(TOPIC, <<"bench.fan">>).
-define(PAYLOAD, <<"0123456789abcdef">>).

env(K) -> os:getenv(K).
nodes_env(K) -> [list_to_atom(S) || S <- string:lexemes(env(K), " ")].
int_env(K) -> list_to_integer(env(K)).

main() ->
    try run() of
        _ -> halt(0)
    catch C:E:St ->
        io:format("bl_pubsub_bench: ~p:~p~n~p~n", [C, E, St]),
        halt(1)
    end.

run() ->
    Fan = nodes_env("PSB_FAN"), Pg = nodes_env("PSB_PG"),
    A = list_to_atom(env("PSB_A")), B = list_to_atom(env("PSB_B")),
    Pubs = int_env("PSB_PUBS"), Msgs = int_env("PSB_MSGS"), Reps = int_env("PSB_REPS"),
    [wait_up(N) || N <- Fan ++ Pg ++ [A, B]],
    fanout(Fan, Pg, Pubs, Reps),
    Window = case int_env("PSB_WINDOW") of 0 -> Msgs; W -> W end,
    durable(A, B, Msgs, Reps, Window).

wait_up(N) -> wait_up(N, 200).
wait_up(N, 0) -> error({node_down, N});
wait_up(N, K) ->
    case net_adm:ping(N) of pong -> ok; pang -> timer:sleep(100), wait_up(N, K - 1) end.

until(F, What) -> until(F, What, 600).
until(_, What, 0) -> error({timeout, What});
until(F, What, K) ->
    case catch F() of true -> ok; _ -> timer:sleep(50), until(F, What, K - 1) end.

now_us() -> erlang:monotonic_time(microsecond).
median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
result(K, V) -> io:format("RESULT ~s ~p~n", [K, V]).

%% ---- 1. fan-out ----

fanout(Fan, Pg, Pubs, Reps) ->
    [ok = gen_server:call({psb_ctl, N}, {subscribe, ?TOPIC, 200}, 30000) || N <- Fan],
    [ok = erpc:call(N, ?MODULE, pg_setup, [200, self()]) || N <- Pg],
    [Pub | _] = Fan, [PgPub | _] = Pg,
    until(fun() -> length(gen_server:call({beamlet_pubsub, Pub}, subscriptions, 10000)) =:= 1000 end,
          beamlet_subscriptions),
    until(fun() -> length(erpc:call(PgPub, pg, get_members, [psb])) =:= 1000 end, pg_members),
    io:format("fan-out: ~b publishes x 1000 subscribers (5 nodes x 200), ~b rounds~n", [Pubs, Reps]),
    Rounds = [begin
                  Bl = fan_beamlet(Fan, Pub, Pubs),
                  Ref = fan_pg(Pg, PgPub, Pubs),
                  io:format("  round ~b: beamlet ~b deliveries/s, pg ~b deliveries/s~n", [R, Bl, Ref]),
                  {Bl, Ref}
              end || R <- lists:seq(1, Reps)],
    Counted = lists:sum([gen_server:call({psb_ctl, N}, count, 10000) || N <- Fan]),
    PgCounted = lists:sum([erpc:call(N, atomics, get, [persistent_term_ctr(N), 1]) || N <- Pg]),
    result("fan_beamlet", median([B || {B, _} <- Rounds])),
    result("fan_pg", median([P || {_, P} <- Rounds])),
    result("fan_counted_beamlet", Counted),
    result("fan_counted_pg", PgCounted),
    result("fan_expected", Pubs * 1000).

persistent_term_ctr(N) -> element(1, erpc:call(N, persistent_term, get, [psb])).

fan_beamlet(Fan, Pub, Pubs) ->
    [ok = gen_server:call({psb_ctl, N}, {arm, Pubs * 200, self()}, 10000) || N <- Fan],
    T0 = now_us(),
    ok = gen_server:call({psb_ctl, Pub}, {publish, ?TOPIC, Pubs}, 120000),
    [receive {psb_done, N} -> ok after 60000 -> error({fan_timeout, N}) end || N <- Fan],
    rate(Pubs * 1000, now_us() - T0).

fan_pg(Pg, PgPub, Pubs) ->
    [ok = erpc:call(N, ?MODULE, pg_arm, [Pubs * 200, self()]) || N <- Pg],
    T0 = now_us(),
    ok = erpc:call(PgPub, ?MODULE, pg_publish, [psb, Pubs], 120000),
    [receive {psb_done, N} -> ok after 60000 -> error({fan_timeout, N}) end || N <- Pg],
    rate(Pubs * 1000, now_us() - T0).

rate(Count, Us) -> round(Count * 1000000 / max(Us, 1)).

%% On a pg node: Count members of group psb, kept alive by a holder process.
pg_setup(Count, _Driver) ->
    Parent = self(),
    spawn(fun() ->
                  pg_arm(0, self()),
                  Ms = [spawn_link(?MODULE, pg_member, [0]) || _ <- lists:seq(1, Count)],
                  ok = pg:join(psb, Ms),
                  Parent ! joined,
                  receive stop -> ok end
          end),
    receive joined -> ok after 10000 -> error(pg_setup) end.

%% One counter per node (like the C side's per-node counter); a fresh one per round.
pg_arm(Target, Report) ->
    persistent_term:put(psb, {atomics:new(1, []), Target, Report}),
    ok.

%% The cheapest member: count; the one that reaches the node's target reports.
pg_member(_) ->
    receive
        {psb_msg, _Topic, _Payload} ->
            {Ctr, Target, Report} = persistent_term:get(psb),
            case atomics:add_get(Ctr, 1, 1) of
                Target -> Report ! {psb_done, node()};
                _ -> ok
            end,
            pg_member(0)
    end.

pg_publish(Group, Pubs) ->
    lists:foreach(fun(_) ->
                          Msg = {psb_msg, ?TOPIC, ?PAYLOAD},
                          lists:foreach(fun(M) -> M ! Msg end, pg:get_members(Group))
                  end, lists:seq(1, Pubs)).

%% ---- 2. at-least-once vs at-most-once ----

ps(N, Req) -> gen_server:call({beamlet_pubsub, N}, Req, 30000).

durable(A, B, Msgs, Reps, Window) ->
    Driver = self(),
    Sub = spawn_link(fun() -> sub_loop(B, Driver, #{}, 0) end),
    {ok, _} = ps(B, {subscribe, <<"bench.amo.*">>, Sub, #{max_queue => 1000000}}),
    {ok, _} = ps(B, {subscribe, <<"bench.alo.*">>, Sub,
                     #{qos => at_least_once, name => <<"psb">>, max_queue => 1000000}}),
    until(fun() ->
                  Ps = [P || #{node := O, pattern := P} <- ps(A, subscriptions), O =:= B],
                  lists:sort(Ps) =:= [<<"bench.alo.*">>, <<"bench.amo.*">>]
          end, durable_replicas),
    io:format("durable: ~b messages A -> B, one BEAM subscriber, at most ~b unreceived, ~b rounds~n",
              [Msgs, Window, Reps]),
    Rounds = [begin
                  Rb = integer_to_binary(R),
                  Amo = durable_round(A, Sub, <<"bench.amo.r", Rb/binary>>, at_most_once, Msgs, Window),
                  Alo = durable_round(A, Sub, <<"bench.alo.r", Rb/binary>>, at_least_once, Msgs, Window),
                  io:format("  round ~b: at-most-once ~b msgs/s, at-least-once ~b msgs/s~n",
                            [R, Amo, Alo]),
                  {Alo, Amo}
              end || R <- lists:seq(1, Reps)],
    Sum = fun(N, Pre, K) -> lists:sum([maps:get(K, ps(N, {counters, <<Pre/binary, (integer_to_binary(R))/binary>>}))
                                       || R <- lists:seq(1, Reps)]) end,
    Retried = Sum(A, <<"bench.alo.r">>, retried),
    DelAlo = Sum(B, <<"bench.alo.r">>, delivered),
    DelAmo = Sum(B, <<"bench.amo.r">>, delivered),
    result("alo", median([X || {X, _} <- Rounds])),
    result("amo", median([Y || {_, Y} <- Rounds])),
    result("alo_retried", Retried),
    result("alo_delivered", DelAlo),
    result("amo_delivered", DelAmo),
    result("durable_expected", Msgs * Reps),
    result("window", Window).

durable_round(A, Sub, Topic, Qos, Msgs, Window) ->
    flush(),
    Sub ! {arm, Topic, Msgs},
    receive armed -> ok end,
    T0 = now_us(),
    publish_window(A, Topic, #{qos => Qos}, Msgs, Window, 0, 0),
    receive sub_done -> ok after 120000 -> error({durable_timeout, Qos}) end,
    case Qos of
        at_least_once -> wait_acked(A);
        _ -> ok
    end,
    rate(Msgs, now_us() - T0).

%% Casts, at most Window ahead of what the subscriber has received (it reports every 100).
publish_window(_, _, _, Msgs, _, Msgs, _) -> ok;
publish_window(A, Topic, Opts, Msgs, Window, Sent, Seen) when Sent - Seen >= Window ->
    receive {seen, N} -> publish_window(A, Topic, Opts, Msgs, Window, Sent, N)
    after 120000 -> error(window_stalled)
    end;
publish_window(A, Topic, Opts, Msgs, Window, Sent, Seen) ->
    gen_server:cast({beamlet_pubsub, A}, {publish, Topic, ?PAYLOAD, Opts}),
    publish_window(A, Topic, Opts, Msgs, Window, Sent + 1, Seen).

flush() -> receive {seen, _} -> flush() after 0 -> ok end.

wait_acked(A) ->
    case ps(A, pending) of
        0 -> ok;
        _ -> timer:sleep(5), wait_acked(A)
    end.

%% The subscriber: counts distinct ids (a retry is not counted twice), acks durable ones.
sub_loop(B, Driver, Seen, Target) ->
    receive
        {arm, Topic, T} ->
            flush_seen(Driver), Driver ! armed, sub_loop(B, Driver, #{}, {Topic, T});
        {beamlet_msg, Topic, _Payload, #{id := Id, sub := S, qos := Q}} ->
            Q =:= at_most_once orelse gen_server:cast({beamlet_pubsub, B}, {ack, S, Id}),
            case Target of
                {Topic, T} when not is_map_key(Id, Seen) ->
                    Seen1 = Seen#{Id => true},
                    K = map_size(Seen1),
                    K rem 100 =:= 0 andalso (Driver ! {seen, K}),
                    K =:= T andalso (Driver ! sub_done),
                    sub_loop(B, Driver, Seen1, Target);
                _ -> sub_loop(B, Driver, Seen, Target) % an earlier round's retry
            end
    end.

flush_seen(_) -> ok.
