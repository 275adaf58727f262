%% bl_dist_tests - the native distribution layer against real peers: peers that stall in every
%% handshake step (one at a time and 50 at once, incoming and outgoing) while the node keeps
%% accepting new handshakes, the bound on handshakes per address, simultaneous connects between
%% two C nodes and between BEAM and C (BEAM's ok_simultaneous / nok rule: one socket survives,
%% seen the same way on both sides), and IPv6 with `erl -proto_dist inet6_tcp` both ways.
-module(bl_dist_tests).
-include_lib("eunit/include/eunit.hrl").

-define(HS_TMO, 1000). % --handshake-timeout-ms of the nodes under test
%% what OTP 25.2.3 advertises (recorded): the mandatory set, SPAWN, ALIAS, ...
-define(OTP_FLAGS, 16#0000000D07DF7FBD).

%%% ------------------------------------------------------------------ helpers

bin() -> os:getenv("BEAMLET_BIN").

%% The runner's net_ticktime, for nodes started without bl_test_util:start_beamlet.
tick() -> ["--net-ticktime", integer_to_list(bl_test_util:ticktime())].

start(Tag, Extra) ->
    bl_test_util:start_beamlet(Tag, ["--handshake-timeout-ms", integer_to_list(?HS_TMO),
                                     "--connect-timeout-ms", "1000" | Extra]).

port_of(Node) -> maps:get(port, gen_server:call({beamlet, Node}, info, 5000)).

%% A fresh node (the admin CLI) completes a whole handshake with Node: it keeps accepting.
cli_ping(Node) ->
    Out = os:cmd(bin() ++ " ping '" ++ atom_to_list(Node) ++ "' --cookie " ++
                 bl_test_util:cookie() ++ " --timeout 8000; echo rc=$?"),
    string:find(Out, "pong") =/= nomatch andalso string:find(Out, "rc=0") =/= nomatch.

name_pkt(Name) ->
    N = list_to_binary(Name),
    Body = <<$N, ?OTP_FLAGS:64, 1234:32, (byte_size(N)):16, N/binary>>,
    <<(byte_size(Body)):16, Body/binary>>.

challenge_pkt(Name) ->
    N = list_to_binary(Name),
    Body = <<$N, ?OTP_FLAGS:64, 16#01020304:32, 99:32, (byte_size(N)):16, N/binary>>,
    <<(byte_size(Body)):16, Body/binary>>.

status_pkt(S) -> <<(length(S) + 1):16, $s, (list_to_binary(S))/binary>>.

raw_connect(Port) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, raw}]),
    S.

%% Read one 2-byte-length handshake packet.
recv_pkt(S, Tmo) ->
    case gen_tcp:recv(S, 2, Tmo) of
        {ok, <<Len:16>>} -> {ok, Body} = gen_tcp:recv(S, Len, Tmo), Body;
        Err -> Err
    end.

%% Milliseconds until the peer closes S (reading and dropping whatever it sends).
ms_until_closed(S, Max) ->
    T0 = erlang:monotonic_time(millisecond),
    closed_loop(S, T0, T0 + Max).

closed_loop(S, T0, Deadline) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    case Left =< 0 of
        true -> never;
        false ->
            case gen_tcp:recv(S, 0, Left) of
                {ok, _} -> closed_loop(S, T0, Deadline);
                {error, closed} -> erlang:monotonic_time(millisecond) - T0;
                {error, econnreset} -> erlang:monotonic_time(millisecond) - T0;
                {error, timeout} -> never
            end
    end.

%% The node closed S after about the handshake timeout: it waited, then gave up.
%% S, opened at T0 (monotonic ms), is closed by the node, and not before most of the handshake
%% timeout has passed since T0 (measured from the open: a slow ping in between on a loaded machine
%% must not eat the margin).
assert_timed_out(S, T0) ->
    Ms = ms_until_closed(S, 15000),
    ?assert(is_integer(Ms)),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= ?HS_TMO * 7 div 10),
    gen_tcp:close(S),
    Ms.

%% Open a stalled incoming handshake at Step.
stall_in(Port, Step, I) ->
    S = raw_connect(Port),
    Name = "stall" ++ integer_to_list(I) ++ "@" ++ bl_test_util:host(),
    Pkt = name_pkt(Name),
    case Step of
        connect -> ok;
        half_name -> ok = gen_tcp:send(S, binary:part(Pkt, 0, byte_size(Pkt) div 2));
        name ->
            ok = gen_tcp:send(S, Pkt),
            <<"sok">> = recv_pkt(S, 5000),
            <<$N, _/binary>> = recv_pkt(S, 5000);
        half_reply ->
            ok = gen_tcp:send(S, Pkt),
            <<"sok">> = recv_pkt(S, 5000),
            <<$N, _/binary>> = recv_pkt(S, 5000),
            ok = gen_tcp:send(S, <<0, 21, $r, 1, 2, 3>>)
    end,
    S.

connections(Node) ->
    #{connections := Cs} = gen_server:call({beamlet, Node}, stats, 5000),
    Cs.

conns_to(Node, Peer) -> [C || #{node := P} = C <- connections(Node), P =:= Peer].

%%% ------------------------------------------------------------------ incoming stalls

stall_incoming_test_() -> {timeout, 120, fun stall_incoming/0}.

stall_incoming() ->
    C = start("sti", []),
    Port = port_of(C),
    %% one at a time, at every step of the acceptor
    [begin
         T0 = erlang:monotonic_time(millisecond),
         S = stall_in(Port, Step, I),
         ?assert(cli_ping(C)),
         assert_timed_out(S, T0)
     end || {I, Step} <- lists:zip(lists:seq(1, 4), [connect, half_name, name, half_reply])],
    ?assert(bl_test_util:log_contains(C, "timed out (peer stalled mid-handshake)", 5000)),
    %% "alive": a peer claiming the name of a node that is connected (this runner) is asked
    %% whether it restarted; it stalls; the live connection is untouched
    TA = erlang:monotonic_time(millisecond),
    S = raw_connect(Port),
    ok = gen_tcp:send(S, name_pkt(atom_to_list(node()))),
    ?assertEqual(<<"salive">>, recv_pkt(S, 5000)),
    ?assert(cli_ping(C)),
    assert_timed_out(S, TA),
    ?assertEqual(pong, net_adm:ping(C)),
    ?assertMatch([_], conns_to(C, node())),
    %% 50 at once, spread over the steps, while new handshakes still complete
    Steps = [connect, half_name, name, half_reply],
    Many = [stall_in(Port, lists:nth(1 + I rem 4, Steps), 100 + I) || I <- lists:seq(1, 50)],
    ?assert(cli_ping(C)),
    ?assert(cli_ping(C)),
    Times = [ms_until_closed(S1, 20000) || S1 <- Many],
    ?assert(lists:all(fun is_integer/1, Times)),
    ?assertEqual(pong, net_adm:ping(C)),
    ?assert(cli_ping(C)).

%% At most max_handshakes_per_address from one address; the rest are refused at once, logged.
per_address_bound_test_() -> {timeout, 60, fun per_address_bound/0}.

per_address_bound() ->
    C = start("pab", ["--max-handshakes-per-address", "5"]),
    Port = port_of(C),
    T0 = erlang:monotonic_time(millisecond),
    Held = [raw_connect(Port) || _ <- lists:seq(1, 5)],
    timer:sleep(200),
    Extra = [raw_connect(Port) || _ <- lists:seq(1, 3)],
    [?assert(is_integer(ms_until_closed(S, 500))) || S <- Extra], % refused at once
    ?assert(bl_test_util:log_contains(C, "max_handshakes_per_address", 5000)),
    [?assert(is_integer(ms_until_closed(S, 15000))) || S <- Held],
    ?assert(erlang:monotonic_time(millisecond) - T0 >= ?HS_TMO * 7 div 10), % they were held
    ?assert(cli_ping(C)). % slots free again

%%% ------------------------------------------------------------------ outgoing stalls

%% Register Alive in the local EPMD for Port; the socket holds the registration.
epmd_register(Alive, Port) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, 4369, [binary, {active, false}]),
    N = list_to_binary(Alive),
    Body = <<120, Port:16, 77, 0, 6:16, 5:16, (byte_size(N)):16, N/binary, 0:16>>,
    ok = gen_tcp:send(S, <<(byte_size(Body)):16, Body/binary>>),
    {ok, <<118, 0, _:32>>} = gen_tcp:recv(S, 6, 5000),
    S.

%% A fake node that answers the first connection up to Mode's step, then stalls; reports
%% {fake, Alive, Event} to Parent.
fake_node(Parent, Alive, Mode) ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    E = epmd_register(Alive, Port),
    Parent ! {fake_ready, Alive},
    {ok, S} = gen_tcp:accept(L, 30000),
    <<$N, _:64, _:32, _:16, _/binary>> = recv_pkt(S, 5000),
    Name = Alive ++ "@" ++ bl_test_util:host(),
    Got = case Mode of
              status -> none;
              challenge -> ok = gen_tcp:send(S, status_pkt("ok")), none;
              ack ->
                  ok = gen_tcp:send(S, [status_pkt("ok"), challenge_pkt(Name)]),
                  <<$r, _:32, _:16/binary>> = recv_pkt(S, 5000),
                  reply;
              alive ->
                  ok = gen_tcp:send(S, status_pkt("alive")),
                  <<"strue">> = recv_pkt(S, 5000),
                  true
          end,
    Parent ! {fake, Alive, {got, Got}},
    Parent ! {fake, Alive, {closed, ms_until_closed(S, 15000)}},
    gen_tcp:close(E),
    gen_tcp:close(L).

stall_outgoing_test_() -> {timeout, 120, fun stall_outgoing/0}.

stall_outgoing() ->
    Self = self(),
    Modes = [status, challenge, ack, alive],
    Fakes = [{"bl_fake_" ++ atom_to_list(M) ++ "_" ++ os:getpid(), M} || M <- Modes],
    [spawn_link(fun() -> fake_node(Self, A, M) end) || {A, M} <- Fakes],
    [receive {fake_ready, A} -> ok after 10000 -> error({fake_not_ready, A}) end
     || {A, _} <- Fakes],
    Seeds = string:join([A ++ "@" ++ bl_test_util:host() || {A, _} <- Fakes], ","),
    C = start("sto", ["--join", Seeds]),
    ?assert(cli_ping(C)), % serving while its own connects stall
    [begin
         Want = case M of ack -> reply; alive -> true; _ -> none end,
         receive {fake, A, {got, G}} -> ?assertEqual(Want, G) after 15000 -> error({no_connect, A}) end,
         receive
             {fake, A, {closed, Ms}} ->
                 ?assert(is_integer(Ms)),
                 ?assert(Ms >= ?HS_TMO * 7 div 10)
         after 20000 -> error({not_closed, A})
         end
     end || {A, M} <- Fakes],
    ?assert(bl_test_util:log_contains(C, "timed out (peer stalled mid-handshake)", 5000)),
    ?assert(cli_ping(C)),
    ?assertEqual(pong, net_adm:ping(C)).

%%% ------------------------------------------------------------------ simultaneous connects

%% Two C nodes started together, each with the other as its seed: one connection, one
%% direction each way, on both sides.
simultaneous_c_c_test_() -> {timeout, 120, fun simultaneous_c_c/0}.

simultaneous_c_c() ->
    H = bl_test_util:host(),
    Pairs = [begin
                 A = bl_test_util:unique("sa"), B = bl_test_util:unique("sb"),
                 NA = list_to_atom(A ++ "@" ++ H), NB = list_to_atom(B ++ "@" ++ H),
                 Args = fun(Me, Other) ->
                                ["node", "--sname", Me, "--cookie", bl_test_util:cookie(),
                                 "--log-level", "debug", "--join", atom_to_list(Other) | tick()]
                        end,
                 bl_test_util:spawn_raw(NA, bin(), Args(A, NB)),
                 bl_test_util:spawn_raw(NB, bin(), Args(B, NA)),
                 {NA, NB}
             end || _ <- lists:seq(1, 6)],
    [begin
         ok = bl_test_util:wait_up(NA, 15000),
         ok = bl_test_util:wait_up(NB, 15000),
         ?assert(bl_test_util:wait_until(fun() -> one_link(NA, NB) end, 10000))
     end || {NA, NB} <- Pairs],
    timer:sleep(1000), % and it stays that way
    [?assert(one_link(NA, NB)) || {NA, NB} <- Pairs],
    Raced = length([N || {NA, NB} <- Pairs, N <- [NA, NB],
                         bl_cluster_log(N, "simultaneous connect")]),
    io:format(user, "~n    simultaneous connects seen in ~b of ~b node logs~n",
              [Raced, 2 * length(Pairs)]).

bl_cluster_log(N, Sub) ->
    binary:match(bl_test_util:log_text(N), list_to_binary(Sub)) =/= nomatch.

one_link(NA, NB) ->
    case {conns_to(NA, NB), conns_to(NB, NA)} of
        {[#{direction := D1}], [#{direction := D2}]} -> D1 =/= D2;
        _ -> false
    end.

%% This runner and a C node connect to each other at once, many times: BEAM and C always agree
%% on the one socket that survives.
simultaneous_beam_c_test_() -> {timeout, 180, fun simultaneous_beam_c/0}.

simultaneous_beam_c() ->
    H = bl_test_util:host(),
    [begin
         A = bl_test_util:unique(case I rem 2 of 0 -> "a"; 1 -> "z" end), % sorts both ways
         N = list_to_atom(A ++ "@" ++ H),
         bl_test_util:spawn_raw(N, bin(), ["node", "--sname", A, "--cookie", bl_test_util:cookie(),
                                            "--join", atom_to_list(node()) | tick()]),
         true = race_connect(N, erlang:monotonic_time(millisecond) + 15000),
         ?assert(bl_test_util:wait_until(fun() -> agree(N) end, 10000)),
         timer:sleep(300),
         ?assert(agree(N)),
         ?assertEqual(pong, net_adm:ping(N)),
         bl_test_util:term(N)
     end || I <- lists:seq(1, 6)].

race_connect(N, Deadline) ->
    case net_kernel:connect_node(N) of
        true -> true;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> race_connect(N, Deadline)
            end
    end.

%% One connection on each side, and the direction the same socket has on both.
agree(N) ->
    case {lists:keyfind(N, 1, erlang:system_info(dist_ctrl)), catch conns_to(N, node())} of
        {{N, Port}, [#{direction := CDir}]} when is_port(Port) ->
            {ok, {_, LocalPort}} = inet:sockname(Port),
            BeamIncoming = LocalPort =:= beam_listen_port(),
            CDir =:= case BeamIncoming of true -> outgoing; false -> incoming end;
        _ -> false
    end.

beam_listen_port() ->
    [Alive, Host] = string:split(atom_to_list(node()), "@"),
    {port, P, _} = erl_epmd:port_please(Alive, Host),
    P.

%%% ------------------------------------------------------------------ IPv6

ipv6_test_() -> {timeout, 120, fun ipv6/0}.

ipv6() ->
    Cookie = bl_test_util:cookie(),
    CAlias = bl_test_util:unique("c6"),
    C6 = list_to_atom(CAlias ++ "@::1"),
    bl_test_util:spawn_raw(C6, bin(), ["node", "--name", atom_to_list(C6), "--cookie", Cookie,
                                        "--listen-address", "::1" | tick()]),
    ?assert(bl_test_util:log_contains(C6, "(inet6_tcp)", 15000)),
    EAlias = bl_test_util:unique("e6"),
    {ok, Peer, E6} = peer:start(#{name => EAlias, host => "::1", longnames => true,
                                  connection => standard_io, wait_boot => 30000,
                                  args => ["-proto_dist", "inet6_tcp", "-setcookie", Cookie]}),
    try
        %% BEAM -> C over IPv6: ping, a gen_server call
        ?assertEqual(pong, peer:call(Peer, net_adm, ping, [C6])),
        #{node := C6} = peer:call(Peer, gen_server, call, [{beamlet, C6}, info, 5000]),
        %% C -> BEAM and C -> C over IPv6 (the admin CLI is a C node)
        Cli = fun(Cmd) -> os:cmd(bin() ++ " " ++ Cmd ++ " --cookie " ++ Cookie ++
                                 " --timeout 8000; echo rc=$?") end,
        P = Cli("ping '" ++ atom_to_list(E6) ++ "'"),
        ?assertNotEqual(nomatch, string:find(P, "pong")),
        ?assertNotEqual(nomatch, string:find(P, "rc=0")),
        I = Cli("info '" ++ atom_to_list(C6) ++ "'"),
        ?assertNotEqual(nomatch, string:find(I, atom_to_list(C6))),
        ?assertNotEqual(nomatch, string:find(I, "rc=0")),
        %% the peer's connection is the IPv6 one, listed on the C side
        ?assert(bl_test_util:wait_until(
                  fun() -> conns_via(Peer, C6, E6) end, 5000))
    after
        peer:stop(Peer)
    end.

%% Names that resolve to IPv6 only (run.sh maps BL_DIST_V6HOST to ::1 in a private /etc/hosts):
%% a C node named on that host with proto_dist inet6_tcp, an erl -proto_dist inet6_tcp peer on it,
%% both ways.
ipv6_names_test_() -> {timeout, 120, fun ipv6_names/0}.

ipv6_names() ->
    case os:getenv("BL_DIST_V6HOST") of
        false -> io:format(user, "~n    skipped: needs root (a private /etc/hosts)~n", []);
        Host -> ipv6_names(Host)
    end.

ipv6_names(Host) ->
    {ok, {16#fd42, 16#b1, 0, 0, 0, 0, 0, 1}} = inet:getaddr(Host, inet6),
    {error, _} = inet:getaddr(Host, inet), % IPv6 only
    Cookie = bl_test_util:cookie(),
    C6 = list_to_atom(bl_test_util:unique("cn6") ++ "@" ++ Host),
    bl_test_util:spawn_raw(C6, bin(), ["node", "--name", atom_to_list(C6), "--cookie", Cookie,
                                        "--proto-dist", "inet6_tcp", "--listen-address", "::"
                                        | tick()]),
    ?assert(bl_test_util:log_contains(C6, "(inet6_tcp)", 15000)),
    {ok, Peer, E6} = peer:start(#{name => bl_test_util:unique("en6"), host => Host,
                                  longnames => true, connection => standard_io,
                                  wait_boot => 30000,
                                  args => ["-proto_dist", "inet6_tcp", "-setcookie", Cookie]}),
    try
        ?assertEqual(pong, peer:call(Peer, net_adm, ping, [C6])),
        #{node := C6} = peer:call(Peer, gen_server, call, [{beamlet, C6}, info, 5000]),
        P = os:cmd(bin() ++ " ping " ++ atom_to_list(E6) ++ " --proto-dist inet6_tcp --cookie " ++
                   Cookie ++ " --timeout 8000; echo rc=$?"),
        ?assertNotEqual(nomatch, string:find(P, "rc=0")),
        %% without inet6_tcp the host has no address: refused with a reason, not a hang
        Q = os:cmd(bin() ++ " ping " ++ atom_to_list(E6) ++ " --proto-dist inet_tcp --cookie " ++
                   Cookie ++ " --timeout 8000; echo rc=$?"),
        ?assertNotEqual(nomatch, string:find(Q, "rc=1"))
    after
        peer:stop(Peer)
    end.

%% C6 lists E6 among its connections (asked from the peer, over IPv6).
conns_via(Peer, C6, E6) ->
    #{connections := Cs} = peer:call(Peer, gen_server, call, [{beamlet, C6}, stats, 5000]),
    lists:any(fun(#{node := N}) -> N =:= E6 end, Cs).

%%% ------------------------------------------------------------------ EPMD restarts

%% EPMD goes away and comes back: the node registers again by itself (with its first creation)
%% and new nodes find it by name. A private EPMD on another port (ERL_EPMD_PORT), so nothing else
%% loses its registration.
epmd_restart_test_() -> {timeout, 60, fun epmd_restart/0}.

epmd_restart() ->
    EPort = "4391",
    os:cmd("epmd -port " ++ EPort ++ " -daemon"),
    try epmd_restart(EPort)
    after
        case epmd_pid(EPort) of none -> ok; P -> os:cmd("kill " ++ P) end
    end.

epmd_restart(EPort) ->
    Env = "ERL_EPMD_PORT=" ++ EPort,
    ?assert(bl_test_util:wait_until(fun() -> epmd_pid(EPort) =/= none end, 5000)),
    Alias = bl_test_util:unique("er"),
    N = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    bl_test_util:spawn_raw(N, "/usr/bin/env", [Env, bin(), "node", "--sname", Alias,
                                                "--cookie", bl_test_util:cookie() | tick()]),
    Names = fun() -> os:cmd(Env ++ " epmd -port " ++ EPort ++ " -names") end,
    ?assert(bl_test_util:wait_until(fun() -> string:find(Names(), Alias) =/= nomatch end, 10000)),
    Ping = fun() ->
                   Out = os:cmd(Env ++ " " ++ bin() ++ " ping " ++ atom_to_list(N) ++ " --cookie " ++
                                bl_test_util:cookie() ++ " --timeout 5000; echo rc=$?"),
                   string:find(Out, "rc=0") =/= nomatch
           end,
    ?assert(Ping()),
    os:cmd("kill " ++ epmd_pid(EPort)),
    ?assert(bl_test_util:wait_until(fun() -> epmd_pid(EPort) =:= none end, 5000)),
    ?assert(bl_test_util:log_contains(N, "EPMD registration lost", 5000)),
    os:cmd("epmd -port " ++ EPort ++ " -daemon"),
    ?assert(bl_test_util:wait_until(fun() -> string:find(Names(), Alias) =/= nomatch end, 15000)),
    ?assert(bl_test_util:log_contains(N, "registered with EPMD again", 5000)),
    ?assert(Ping()).

%% The pid of the EPMD listening on Port in this network namespace, or none.
epmd_pid(Port) ->
    Out = os:cmd("ss -Hltnp 'sport = :" ++ Port ++ "'"),
    case re:run(Out, "pid=([0-9]+)", [{capture, all_but_first, list}]) of
        {match, [P]} -> P;
        nomatch -> none
    end.
