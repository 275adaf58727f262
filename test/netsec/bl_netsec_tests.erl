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

%%% ------------------------------------------------------------------ allow-list

refused(Node) -> maps:get(refused, stats(Node)).

%% Lines of Node's log that contain Sub.
log_lines(Node, Sub) ->
    Lines = binary:split(bl_test_util:log_text(Node), <<"\n">>, [global]),
    [L || L <- Lines, binary:match(L, list_to_binary(Sub)) =/= nomatch].

%% --allow: an allowed peer works both ways (the node's --join connects to it; it pings and
%% calls); one not on the list is refused when it connects (status not_allowed) and when the node
%% connects to it (--join), and the connections of the others stay up.
allow_list_test_() -> {timeout, 120, fun allow_list/0}.

allow_list() ->
    {PA, A} = bl_test_util:start_peer("alwa"),
    {PX, X} = bl_test_util:start_peer("alwx"),
    %% the runner by its name, A by NAME@ (any host): X matches neither
    [AName, _] = string:split(atom_to_list(A), "@"),
    Allow = atom_to_list(node()) ++ "," ++ AName ++ "@",
    B = bl_test_util:start_beamlet("alw", ["--allow", Allow,
                                           "--join", atom_to_list(X) ++ "," ++ atom_to_list(A)]),
    try
        %% outgoing to an allowed node: the --join to A connects
        ?assert(wait_until(fun() -> lists:member(B, peer:call(PA, erlang, nodes, [connected]))
                           end, 10000)),
        %% outgoing: the --join to X was refused before dialling
        ?assert(bl_test_util:log_contains(B, "connect to " ++ atom_to_list(X) ++
                                             " refused: not on the allow-list", 10000)),
        ?assertNot(lists:member(B, peer:call(PX, erlang, nodes, [connected]))),
        %% incoming: X is answered not_allowed
        ?assertEqual(pang, peer:call(PX, net_adm, ping, [B], 20000)),
        ?assert(bl_test_util:log_contains(B, "node " ++ atom_to_list(X) ++
                                             " is not on the allow-list (answered not_allowed)",
                                          5000)),
        ?assert(maps:get(not_allowed, refused(B)) >= 2),
        %% A is allowed: ping and gen_server:call from A, and B's own connection
        ?assertEqual(pong, peer:call(PA, net_adm, ping, [B], 20000)),
        ?assertEqual(pong, peer:call(PA, gen_server, call, [{beamlet, B}, ping, 5000])),
        %% X again, while A and the runner are connected: they stay up
        ?assertEqual(pang, peer:call(PX, net_adm, ping, [B], 20000)),
        ?assertMatch([_], conns_to(B, A)),
        ?assertMatch([_], conns_to(B, node())),
        ?assertEqual(pong, peer:call(PA, gen_server, call, [{beamlet, B}, ping, 5000])),
        ?assertEqual([], conns_to(B, X)),
        %% the admin CLI's node (beamlet_cli_PID@host) is not on the list either
        ?assertNot(cli_ping(B))
    after
        bl_test_util:stop_peer(PA),
        bl_test_util:stop_peer(PX),
        bl_test_util:term(B)
    end.

%% HOST entries: every node on that host; the CLI then works too.
allow_host_test_() -> {timeout, 60, fun allow_host/0}.

allow_host() ->
    B = bl_test_util:start_beamlet("alwh", ["--allow", "elsewhere.example," ++ bl_test_util:host()]),
    try
        ?assert(cli_ping(B)),
        ?assertEqual(0, maps:get(not_allowed, refused(B)))
    after
        bl_test_util:term(B)
    end.

%% SIGHUP re-reads the allow-list from the config file: a node added is let in at once, the
%% live connections stay.
allow_reload_test_() -> {timeout, 90, fun allow_reload/0}.

allow_reload() ->
    {PX, X} = bl_test_util:start_peer("alwr"),
    File = filename:absname(filename:join(bl_test_util:log_dir(),
                                          bl_test_util:unique("allow") ++ ".json")),
    Write = fun(Nodes) ->
                    ok = file:write_file(File, ["{\"allow\": [",
                                                lists:join(",", ["\"" ++ atom_to_list(N) ++ "\""
                                                                 || N <- Nodes]),
                                                "]}"])
            end,
    Write([node()]),
    B = bl_test_util:start_beamlet("alwr", ["--config", File]),
    try
        ?assertEqual(pang, peer:call(PX, net_adm, ping, [B], 20000)),
        Write([node(), X]),
        "" = os:cmd("kill -HUP " ++ integer_to_list(bl_test_util:os_pid(B))),
        ?assert(bl_test_util:log_contains(B, "reload: allow ", 10000)),
        ?assert(bl_test_util:log_contains(B, "(applied)", 5000)),
        ?assertEqual(pong, peer:call(PX, net_adm, ping, [B], 20000)),
        ?assertMatch([_], conns_to(B, node())),
        %% and out again: X's live connection stays, a new one is refused
        Write([node()]),
        "" = os:cmd("kill -HUP " ++ integer_to_list(bl_test_util:os_pid(B))),
        ?assert(wait_until(fun() -> length(log_lines(B, "(applied)")) >= 2 end, 10000)),
        ?assertMatch([_], conns_to(B, X)),
        true = peer:call(PX, erlang, disconnect_node, [B]),
        ?assert(wait_until(fun() -> conns_to(B, X) =:= [] end, 5000)),
        ?assertEqual(pang, peer:call(PX, net_adm, ping, [B], 20000))
    after
        bl_test_util:stop_peer(PX),
        bl_test_util:term(B)
    end.

%%% ------------------------------------------------------------------ limits

%% --max-connections 2: the runner and one peer; a second peer is refused with a log line and
%% gets in once the first has gone.
max_connections_test_() -> {timeout, 120, fun max_connections/0}.

max_connections() ->
    B = bl_test_util:start_beamlet("mxc", ["--max-connections", "2"]),
    {P1, _N1} = bl_test_util:start_peer("mxc1"),
    {P2, _N2} = bl_test_util:start_peer("mxc2"),
    try
        ?assertEqual(pong, peer:call(P1, net_adm, ping, [B], 20000)),
        ?assertEqual(pang, peer:call(P2, net_adm, ping, [B], 20000)),
        ?assert(bl_test_util:log_contains(B, "refused: max_connections (2) reached", 5000)),
        ?assert(maps:get(max_connections, refused(B)) >= 1),
        ?assertEqual(2, length(connections(B))),
        ?assertEqual(pong, peer:call(P1, gen_server, call, [{beamlet, B}, ping, 5000])),
        true = peer:call(P1, erlang, disconnect_node, [B]),
        ?assert(wait_until(fun() -> length(connections(B)) =:= 1 end, 5000)),
        ?assertEqual(pong, peer:call(P2, net_adm, ping, [B], 20000))
    after
        bl_test_util:stop_peer(P1),
        bl_test_util:stop_peer(P2),
        bl_test_util:term(B)
    end.

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(L),
    gen_tcp:close(L),
    P.

metric(HttpPort, Series) ->
    {ok, {{_, 200, _}, _, Body}} =
        httpc:request(get, {"http://127.0.0.1:" ++ integer_to_list(HttpPort) ++ "/metrics", []},
                      [{timeout, 5000}], []),
    Pat = Series ++ " ",
    [V] = [list_to_integer(string:trim(lists:nthtail(length(Pat), L)))
           || L <- string:split(Body, "\n", all), lists:prefix(Pat, L)],
    V.

%% Poll until at most N of Socks are still open (the node closes the refused ones as it accepts
%% them, which takes a while on a loaded machine).
wait_open_at_most(Socks, N, Timeout) ->
    wait_until(fun() -> length([S || S <- Socks, not closed_within(S, 1)]) =< N end, Timeout).

closed_within(S, Ms) ->
    case gen_tcp:recv(S, 0, Ms) of
        {error, closed} -> true;
        {error, econnreset} -> true;
        _ -> false
    end.

%% A flood from 127.0.0.2 (held open: the per-address bound) and from 127.0.0.3 (connect and
%% close in a tight loop: the per-second bound) while a peer from 127.0.0.1 still connects and
%% calls; the refusals are counted (stats and /metrics) and their log lines stay bounded.
flood_test_() -> {timeout, 150, fun flood/0}.

flood() ->
    Http = free_port(),
    B = bl_test_util:start_beamlet("fld", ["--max-handshakes-per-address", "5",
                                           "--max-handshake-rate-per-address", "50",
                                           "--handshake-timeout-ms", "4000",
                                           "--http-port", integer_to_list(Http)]),
    {ok, _} = application:ensure_all_started(inets),
    Port = port_of(B),
    {P, PN} = bl_test_util:start_peer("fldpeer"),
    try
        %% 300 held open from 127.0.0.2: 5 are let in, the others closed at once
        Held = [raw_connect({127, 0, 0, 2}, Port) || _ <- lists:seq(1, 300)],
        ?assert(wait_open_at_most(Held, 5, 20000)),
        %% meanwhile a peer from 127.0.0.1 connects, pings and calls
        ?assertEqual(pong, peer:call(P, net_adm, ping, [B], 20000)),
        ?assertEqual(pong, peer:call(P, gen_server, call, [{beamlet, B}, ping, 5000])),
        ?assert(cli_ping(B)),
        %% 1000 connect-and-close from 127.0.0.3: more than 50 in a second hits the rate
        [gen_tcp:close(raw_connect({127, 0, 0, 3}, Port)) || _ <- lists:seq(1, 1000)],
        ?assert(wait_until(fun() -> maps:get(max_handshake_rate_per_address, refused(B)) > 0 end,
                           5000)),
        ?assert(maps:get(max_handshakes_per_address, refused(B)) >= 290),
        ?assertEqual(pong, peer:call(P, gen_server, call, [{beamlet, B}, ping, 5000])),
        ?assertMatch([_], conns_to(B, PN)),
        %% the same figures on /metrics
        ?assert(metric(Http, "beamlet_dist_refused_total{reason=\"max_handshakes_per_address\"}")
                >= 290),
        ?assert(metric(Http, "beamlet_dist_refused_total{reason=\"max_handshake_rate_per_address\"}")
                > 0),
        ?assert(metric(Http, "beamlet_dist_refusal_logs_suppressed_total") > 0),
        %% bounded logs: at most 20 lines per address in a 10 s window (the flood took less),
        %% then one summary line per address with the count of what was not written
        ?assert(length(log_lines(B, "127.0.0.2")) =< 21),
        ?assert(length(log_lines(B, "127.0.0.3")) =< 21),
        ?assert(bl_test_util:log_contains(B, "more refusal log lines for 127.0.0.2 not written",
                                          15000)),
        ?assert(bl_test_util:log_contains(B, "more refusal log lines for 127.0.0.3 not written",
                                          5000)),
        ?assert(length(log_lines(B, "127.0.0.2")) =< 22),
        [gen_tcp:close(S) || S <- Held],
        ?assertEqual(running, bl_test_util:status(B))
    after
        bl_test_util:stop_peer(P),
        bl_test_util:term(B)
    end.

%%% ------------------------------------------------------------------ cookies

%% A cookie file that group or others can read is warned about (erl refuses it), given as
%% --cookie-file or found as ~/.erlang.cookie; a private one is not.
cookie_mode_test_() -> {timeout, 60, fun cookie_mode/0}.

cookie_mode() ->
    Dir = filename:absname(filename:join(bl_test_util:log_dir(), "netsec_cookies")),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Open = filename:join(Dir, "open.cookie"),
    Private = filename:join(Dir, "private.cookie"),
    [begin
         _ = file:delete(F),
         ok = file:write_file(F, bl_test_util:cookie() ++ "\n"),
         ok = file:change_mode(F, Mode)
     end || {F, Mode} <- [{Open, 8#644}, {Private, 8#600}]],
    Start = fun(Tag, File) ->
                    Alias = bl_test_util:unique(Tag),
                    bl_test_util:start_node(Alias, bin(),
                                            ["node", "--sname", Alias, "--cookie-file", File,
                                             "--net-ticktime",
                                             integer_to_list(bl_test_util:ticktime())])
            end,
    BO = Start("ckopen", Open),
    BP = Start("ckpriv", Private),
    %% no cookie given: ~/.erlang.cookie, here in a HOME of the test's own
    Home = filename:join(Dir, "home"),
    HomeCookie = filename:join(Home, ".erlang.cookie"),
    ok = filelib:ensure_dir(HomeCookie),
    _ = file:delete(HomeCookie),
    ok = file:write_file(HomeCookie, bl_test_util:cookie()),
    ok = file:change_mode(HomeCookie, 8#640),
    HAlias = bl_test_util:unique("ckhome"),
    BH = bl_test_util:start_node(HAlias, "/usr/bin/env",
                                 ["HOME=" ++ Home, bin(), "node", "--sname", HAlias,
                                  "--net-ticktime", integer_to_list(bl_test_util:ticktime())]),
    try
        ?assert(bl_test_util:log_contains(BO, "can be read by group or others (mode 0644)", 5000)),
        ?assert(bl_test_util:log_contains(BH, "cookie file " ++ HomeCookie ++
                                              " can be read by group or others (mode 0640)", 5000)),
        ?assertEqual(pong, net_adm:ping(BP)),
        ?assertEqual([], log_lines(BP, "can be read by group or others"))
    after
        bl_test_util:term(BO),
        bl_test_util:term(BP),
        bl_test_util:term(BH)
    end.
