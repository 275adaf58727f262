%% bl_netsec_tests - network security of a node against real peers: the node allow-list
%% (--allow) both ways, connection limits (--max-connections, --max-handshakes-per-address,
%% --max-handshake-rate-per-address) under a flood from one loopback address while a peer on
%% another address still connects, refusal logs that stay bounded under a flood, the warning for
%% a cookie file others can read, and a reconnect that races the close of the old connection
%% (the handshake answered "alive" must survive the old connection's close).
-module(bl_netsec_tests).
-include_lib("eunit/include/eunit.hrl").

-import(bl_test_util, [wait_until/2]).

%% what OTP 25.2.3 advertises (recorded): the mandatory set, SPAWN, ALIAS, ...
-define(OTP_FLAGS, 16#0000000D07DF7FBD).

%%% ------------------------------------------------------------------ helpers

bin() -> os:getenv("BEAMLET_BIN").

port_of(Node) -> maps:get(port, gen_server:call({beamlet, Node}, info, 5000)).

stats(Node) -> gen_server:call({beamlet, Node}, stats, 5000).

connections(Node) -> maps:get(connections, stats(Node)).

conns_to(Node, Peer) -> [C || #{node := P} = C <- connections(Node), P =:= Peer].

name_pkt(Name) ->
    N = list_to_binary(Name),
    Body = <<$N, ?OTP_FLAGS:64, 1234:32, (byte_size(N)):16, N/binary>>,
    <<(byte_size(Body)):16, Body/binary>>.

status_pkt(S) -> <<(length(S) + 1):16, $s, (list_to_binary(S))/binary>>.

digest(Challenge) -> erlang:md5([bl_test_util:cookie(), integer_to_list(Challenge)]).

raw_connect(Port) -> raw_connect({127, 0, 0, 1}, Port).
raw_connect(From, Port) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port,
                              [binary, {active, false}, {packet, raw}, {ip, From}]),
    S.

%% Read one 2-byte-length handshake packet.
recv_pkt(S, Tmo) ->
    case gen_tcp:recv(S, 2, Tmo) of
        {ok, <<Len:16>>} -> {ok, Body} = gen_tcp:recv(S, Len, Tmo), Body;
        Err -> Err
    end.

%% The admin CLI (a fresh hidden node) pings Node: true when it got pong.
cli_ping(Node) ->
    Out = os:cmd(bin() ++ " ping '" ++ atom_to_list(Node) ++ "' --cookie " ++
                 bl_test_util:cookie() ++ " --timeout 8000; echo rc=$?"),
    string:find(Out, "pong") =/= nomatch andalso string:find(Out, "rc=0") =/= nomatch.

%%% ------------------------------------------------------------------ reconnect races close

%% A node we are connected to reconnects and its old connection closes only after the node has
%% answered the new handshake "alive" (the peer dropped the old socket and dialled again at once,
%% and this node read the new send_name before the old socket's close: seen under load as
%% bl_interop_tests:garbage_tcp's pang). BEAM's net_kernel turns the up_pending connection
%% into the pending one when the old one goes down; the node must too, or the new handshake
%% completes and is closed right away.
alive_then_close_test_() -> {timeout, 60, fun alive_then_close/0}.

alive_then_close() ->
    B = bl_test_util:start_beamlet("atc", []),
    {Peer, P} = bl_test_util:start_peer("atcpeer"),
    try
        pong = peer:call(Peer, net_adm, ping, [B], 10000),
        ?assert(wait_until(fun() -> conns_to(B, P) =/= [] end, 5000)),
        %% a second handshake in P's name: answered "alive" while the first connection is up
        S = raw_connect(port_of(B)),
        ok = gen_tcp:send(S, name_pkt(atom_to_list(P))),
        ?assertEqual(<<"salive">>, recv_pkt(S, 5000)),
        %% now the old connection goes away
        true = peer:call(Peer, erlang, disconnect_node, [B]),
        ?assert(wait_until(fun() -> conns_to(B, P) =:= [] end, 5000)),
        %% the answered handshake goes on and becomes the connection
        ok = gen_tcp:send(S, status_pkt("true")),
        <<$N, _:64, Ch:32, _:32, _/binary>> = recv_pkt(S, 5000),
        Mine = 16#5eed,
        ok = gen_tcp:send(S, <<0, 21, $r, Mine:32, (digest(Ch))/binary>>),
        Ack = digest(Mine),
        ?assertEqual(<<$a, Ack/binary>>, recv_pkt(S, 5000)),
        timer:sleep(500),
        ?assertMatch([_], conns_to(B, P)),
        %% still open: ticks arrive, no close
        ?assertMatch({ok, _}, gen_tcp:recv(S, 0, 10000)),
        gen_tcp:close(S),
        ?assert(wait_until(fun() -> conns_to(B, P) =:= [] end, 5000)),
        %% and the real peer connects again
        ?assertEqual(pong, peer:call(Peer, net_adm, ping, [B], 10000))
    after
        bl_test_util:stop_peer(Peer),
        bl_test_util:term(B)
    end.
