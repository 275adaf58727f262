%% bl_tls_tests - TLS distribution (beamlet --tls) against real erl nodes running
%% -proto_dist inet_tls -ssl_dist_optfile, and among C nodes. The runner itself runs inet_tls
%% (test/tls/run.sh writes its optfile); certificates come from test/tls/mkcerts.sh in
%% $BL_TLS_DIR: ca, node, node2 (valid), stranger (another CA), expired, wronghost (SAN
%% DNS:wrong.example).
-module(bl_tls_tests).
-include_lib("eunit/include/eunit.hrl").

-export([member/1]).

-define(HS_TMO, 1500). % --handshake-timeout-ms of the nodes under test

%%% ------------------------------------------------------------------ helpers

dir() -> os:getenv("BL_TLS_DIR").
f(Name) -> filename:join(dir(), Name).
bin() -> os:getenv("BEAMLET_BIN").

tls(Cert) ->
    ["--tls", "true", "--tls-cert", f(Cert ++ ".pem"), "--tls-key", f(Cert ++ ".key"),
     "--tls-ca", f("ca.pem")].
tls() -> tls("node").
tls_flags(Cert) -> string:join(tls(Cert), " ").

timeouts() -> ["--handshake-timeout-ms", integer_to_list(?HS_TMO), "--connect-timeout-ms", "2000"].

start(Tag, Extra) -> bl_test_util:start_beamlet(Tag, timeouts() ++ Extra).

%% A node of Bin the runner may not be able to reach: started, then waited for in its log.
start_quiet(Tag, Bin, Extra) ->
    Alias = bl_test_util:unique(Tag),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    bl_test_util:spawn_raw(Node, Bin, ["node", "--sname", Alias, "--cookie", bl_test_util:cookie(),
                                       "--net-ticktime", integer_to_list(bl_test_util:ticktime())
                                       | timeouts() ++ Extra]),
    ?assert(bl_test_util:log_contains(Node, "ready:", 20000)),
    Node.

%% A worker binary (test_worker, pg_worker) with TLS, waited for by ping.
start_bin(Tag, EnvBin, Extra) ->
    Alias = bl_test_util:unique(Tag),
    Node = list_to_atom(Alias ++ "@" ++ bl_test_util:host()),
    bl_test_util:spawn_raw(Node, os:getenv(EnvBin),
                           ["--sname", Alias, "--cookie", bl_test_util:cookie(),
                            "--net-ticktime", integer_to_list(bl_test_util:ticktime()) | Extra]),
    ?assertEqual(ok, bl_test_util:wait_up(Node, 20000)),
    Node.

log_has(Node, Sub) -> bl_test_util:log_contains(Node, Sub, 10000).

until(F) -> ?assert(bl_test_util:wait_until(F, 20000)).

port_of(Node) -> maps:get(port, gen_server:call({beamlet, Node}, info, 5000)).

%% Run a shell command; {ExitCode, Output}.
sh(Cmd) ->
    Out = os:cmd(Cmd ++ " 2>&1; echo \"rc=$?\""),
    [Rc | _] = lists:reverse(string:split(string:trim(Out), "rc=", all)),
    {list_to_integer(string:trim(Rc)), Out}.

cli(Args) -> sh(bin() ++ " " ++ Args ++ " --cookie " ++ bl_test_util:cookie() ++ " --timeout 8000").

cli_ping(Node, Tls) -> cli("ping " ++ atom_to_list(Node) ++ " " ++ Tls).

ok_ping(Node) ->
    {Rc, Out} = cli_ping(Node, tls_flags("node")),
    Rc =:= 0 andalso string:find(Out, "pong") =/= nomatch.

%% An ssl_dist_optfile for a peer; Client/Server are the option lists.
optfile(Tag, Server, Client) ->
    F = f(Tag ++ ".conf"),
    ok = file:write_file(F, io_lib:format("~p.~n", [[{server, Server}, {client, Client}]])),
    F.

opts(Cert) ->
    [{certfile, f(Cert ++ ".pem")}, {keyfile, f(Cert ++ ".key")}, {cacertfile, f("ca.pem")},
     {verify, verify_peer}].

%% A peer erl node on TLS distribution with optfile F (or plain TCP with F = plain).
peer_node(Tag, F) ->
    Alias = bl_test_util:unique(Tag),
    Dist = case F of
               plain -> [];
               _ -> ["-proto_dist", "inet_tls", "-ssl_dist_optfile", F]
           end,
    {ok, Peer, Node} =
        peer:start(#{name => Alias, connection => standard_io, wait_boot => 30000,
                     args => ["-setcookie", bl_test_util:cookie(), "-kernel", "net_ticktime",
                              integer_to_list(bl_test_util:ticktime()),
                              "-pa", bl_test_util:ebin_dir() | Dist]}),
    ok = gen_server:call(bl_test_nodes, {peer, Peer}),
    {Peer, Node}.

%% Runs on a BEAM node: a process that joins Group in scope pg and waits for stop.
member(Group) ->
    Parent = self(),
    Pid = spawn(fun() -> ok = pg:join(Group, self()), Parent ! joined,
                         receive stop -> ok end end),
    receive joined -> Pid after 5000 -> error(join_timeout) end.

ctl(W, Req) -> gen_server:call({ctl, W}, Req, 10000).

%% The serial number of the certificate a TLS listener presents to a fresh client.
served_serial(Port) ->
    {ok, S} = ssl:connect({127, 0, 0, 1}, Port,
                          [{verify, verify_none}, {active, false}, {versions, ['tlsv1.2']},
                           {certfile, f("node.pem")}, {keyfile, f("node.key")}], 5000),
    {ok, Der} = ssl:peercert(S),
    ssl:close(S),
    serial_of_der(Der).

serial_of_der(Der) ->
    Otp = public_key:pkix_decode_cert(Der, otp),
    element(3, element(2, Otp)). % #'OTPCertificate'.tbsCertificate.serialNumber

serial_of_file(F) ->
    {ok, Pem} = file:read_file(F),
    [{'Certificate', Der, _} | _] = public_key:pem_decode(Pem),
    serial_of_der(Der).

%% Nothing arrived on a node monitor: the connection stayed up the whole time.
still_up(Node) ->
    receive {nodedown, Node} -> false after 0 -> lists:member(Node, nodes(connected)) end.

%%% ------------------------------------------------------------------ BEAM <-> C

beam_test_() -> {timeout, 180, fun beam/0}.

beam() ->
    A = start("tA", tls()),
    %% BEAM -> C: ping (done by start), gen_server:call, TLS on the wire
    ?assertEqual(pong, gen_server:call({beamlet, A}, ping, 5000)),
    ?assert(log_has(A, "connected to " ++ atom_to_list(node()) ++ " (incoming, TLSv1.")),
    %% rpc:call to exported C functions, through a TLS test_worker
    W = start_bin("tW", "TEST_WORKER_BIN", tls()),
    ?assertEqual(hello, rpc:call(W, tw, echo, [hello])),
    ?assertEqual(5, rpc:call(W, tw, add, [2, 3])),
    %% large messages both ways (many TLS records, partial writes, fragments) and many small ones
    Big = crypto:strong_rand_bytes(3000000),
    ?assertEqual(Big, rpc:call(W, tw, echo, [Big])),
    Many = [rpc:async_call(W, tw, echo, [I]) || I <- lists:seq(1, 2000)],
    ?assertEqual(lists:seq(1, 2000), [rpc:yield(K) || K <- Many]),
    %% C -> BEAM: the worker dials a TLS peer of its own (C initiates), and calls its rex
    {_Peer, PN} = peer_node("tpe", optfile("tpe", opts("node"), opts("node"))),
    ?assertEqual({ok, PN}, ctl(W, {rpc, PN, erlang, node, []})),
    ?assert(log_has(W, "connected to " ++ atom_to_list(PN) ++ " (outgoing, TLSv1.")),
    ?assertEqual({ok, [3, 2, 1]}, ctl(W, {rpc, PN, lists, reverse, [[1, 2, 3]]})).

pg_test_() -> {timeout, 120, fun pg/0}.

pg() ->
    W = start_bin("tpg", "PG_WORKER_BIN", tls()),
    ok = ctl(W, {monitor, pg}),
    %% a C member is seen by the BEAM scope, a BEAM member by the C scope
    G = {grp, bl_test_util:unique("tls")},
    {ok, C1} = ctl(W, {spawn_join, pg, G}),
    until(fun() -> pg:get_members(G) =:= [C1] end),
    GB = {beam_grp, bl_test_util:unique("tls")},
    B1 = member(GB),
    until(fun() -> gen_server:call({pg, W}, {get_members, GB}, 5000) =:= [B1] end),
    B1 ! stop,
    until(fun() -> gen_server:call({pg, W}, {get_members, GB}, 5000) =:= [] end),
    ok = ctl(W, {leave, C1, pg, G}),
    until(fun() -> pg:get_members(G) =:= [] end).

%%% ------------------------------------------------------------------ C only

c_cluster_test_() -> {timeout, 180, fun c_cluster/0}.

c_cluster() ->
    Cl = "tls" ++ bl_test_util:unique(""),
    Fast = ["--heartbeat-interval-ms", "300", "--failure-threshold", "3",
            "--election-timeout-ms", "600", "--role", "coordinator", "--cluster", Cl],
    K1 = start("tk1", tls() ++ Fast),
    K2 = start("tk2", tls() ++ Fast ++ ["--join", atom_to_list(K1)]),
    K3 = start("tk3", tls() ++ Fast ++ ["--join", atom_to_list(K1)]),
    All = [K1, K2, K3],
    View = fun(N) -> lists:sort([{maps:get(node, M), maps:get(state, M)}
                                 || M <- gen_server:call({beamlet_cluster, N}, members, 5000),
                                    maps:get(kind, M) =:= beamlet]) end,
    Want = lists:sort([{N, active} || N <- All]),
    until(fun() -> lists:all(fun(N) -> View(N) =:= Want end, All) end),
    Status = fun(N) -> gen_server:call({beamlet_cluster, N}, status, 5000) end,
    until(fun() -> length(lists:usort([maps:get(leader, Status(N)) || N <- All])) =:= 1
                   andalso maps:get(leader, Status(K1)) =/= undefined end),
    Leader = maps:get(leader, Status(K1)),
    ?assert(lists:member(Leader, All)),
    %% the C<->C connections are TLS too
    ?assert(log_has(K2, "connected to " ++ atom_to_list(K1) ++ " (outgoing, TLSv1.3")),
    %% the admin CLI against a TLS node: flags, BEAMLET_TLS_* and a config file
    {0, Out} = cli("cluster status --node " ++ atom_to_list(K1) ++ " --format json " ++
                   tls_flags("node")),
    ?assertNotEqual(nomatch, string:find(Out, atom_to_list(Leader))),
    Env = "BEAMLET_TLS=true BEAMLET_TLS_CERT=" ++ f("node.pem") ++ " BEAMLET_TLS_KEY=" ++
          f("node.key") ++ " BEAMLET_TLS_CA=" ++ f("ca.pem") ++ " ",
    ?assertMatch({0, _}, sh(Env ++ bin() ++ " info " ++ atom_to_list(K2) ++ " --cookie " ++
                            bl_test_util:cookie())),
    Cfg = f("cli.json"),
    ok = file:write_file(Cfg, io_lib:format("{\"tls\": true, \"tls_cert\": \"~s\", \"tls_key\": "
                                            "\"~s\", \"tls_ca\": \"~s\"}",
                                            [f("node.pem"), f("node.key"), f("ca.pem")])),
    ?assertMatch({0, _}, cli("stats " ++ atom_to_list(K3) ++ " --config " ++ Cfg)),
    %% without TLS the CLI is refused, with a hint
    {1, Plain} = cli_ping(K1, ""),
    ?assertNotEqual(nomatch, string:find(Plain, "--tls")).

versions_test_() -> {timeout, 120, fun versions/0}.

versions() ->
    V12 = start("tv12", tls() ++ ["--tls-versions", "1.2"]),
    V13 = start("tv13", tls() ++ ["--tls-versions", "1.3"]),
    %% the runner offers 1.2 and 1.3: each node gets its own
    ?assert(log_has(V12, "connected to " ++ atom_to_list(node()) ++ " (incoming, TLSv1.2")),
    ?assert(log_has(V13, "connected to " ++ atom_to_list(node()) ++ " (incoming, TLSv1.3")),
    %% C <-> C: a 1.2-only and a 1.3-only node share no version, a default node talks to both
    {0, _} = cli_ping(V12, tls_flags("node") ++ " --tls-versions 1.2"),
    {1, _} = cli_ping(V13, tls_flags("node") ++ " --tls-versions 1.2"),
    ?assert(ok_ping(V13)),
    %% a BEAM peer that speaks TLS 1.3 only
    {Peer, _} = peer_node("tp13", optfile("tp13", [{versions, ['tlsv1.3']} | opts("node")],
                                          [{versions, ['tlsv1.3']} | opts("node")])),
    ?assertEqual(pong, peer:call(Peer, net_adm, ping, [V13])),
    ?assertEqual(pang, peer:call(Peer, net_adm, ping, [V12])).

%%% ------------------------------------------------------------------ refusals

refusals_test_() -> {timeout, 240, fun refusals/0}.

refusals() ->
    A = start("tr", tls()),
    true = erlang:monitor_node(A, true),
    Plain = start_quiet("trp", bin(), []),
    %% a plain erl peer to a TLS node
    {PP, _} = peer_node("tpp", plain),
    ?assertEqual(pang, peer:call(PP, net_adm, ping, [A])),
    ?assert(log_has(A, "not a TLS handshake (first byte 0x00)")),
    ?assert(log_has(A, "incoming handshake refused: from 127.0.0.1")),
    %% ... which reaches the plain node
    ?assertEqual(pong, peer:call(PP, net_adm, ping, [Plain])),
    %% a TLS peer (the runner, then a C client) to a plain node
    ?assertEqual(pang, net_adm:ping(Plain)),
    ?assert(log_has(Plain, "a TLS ClientHello, but this node runs plain TCP distribution")),
    {1, _} = cli_ping(Plain, tls_flags("node")),
    %% wrong CA: a C client and a BEAM peer with a certificate from another CA
    {1, _} = cli_ping(A, tls_flags("stranger")),
    ?assert(log_has(A, "peer certificate refused")),
    {PS, _} = peer_node("tps", optfile("tps", opts("stranger"), opts("stranger"))),
    ?assertEqual(pang, peer:call(PS, net_adm, ping, [A])),
    %% expired: refused at start (our own), refused at the handshake (a BEAM peer's)
    {Rc, Out} = sh("timeout 20 " ++ bin() ++ " node --sname texp --cookie x --no-publish " ++
                   tls_flags("expired")),
    ?assertNotEqual(0, Rc),
    ?assertNotEqual(nomatch, string:find(Out, "expired")),
    {PE, _} = peer_node("tpx", optfile("tpx", opts("expired"), opts("expired"))),
    ?assertEqual(pang, peer:call(PE, net_adm, ping, [A])),
    ?assert(log_has(A, "certificate has expired")),
    %% no client certificate
    {PN, _} = peer_node("tpn", optfile("tpn", opts("node"),
                                       [{cacertfile, f("ca.pem")}, {verify, verify_peer}])),
    ?assertEqual(pang, peer:call(PN, net_adm, ping, [A])),
    ?assert(log_has(A, "peer did not return a certificate")),
    %% SAN mismatch: a node whose certificate names another host, refused by BEAM and by C
    W = start_quiet("trw", bin(), tls("wronghost")),
    ?assertEqual(pang, net_adm:ping(W)),
    {1, Why} = sh("BEAMLET_LOG_LEVEL=warn " ++ bin() ++ " ping " ++ atom_to_list(W) ++
                  " --cookie " ++ bl_test_util:cookie() ++ " --timeout 5000 " ++ tls_flags("node")),
    ?assertNotEqual(nomatch, string:find(Why, "does not name host " ++ bl_test_util:host())),
    %% the host check itself (bl__tls_peer_matches_host): the node's own name passes
    ?assert(ok_ping(A)),
    %% every refusal left the standing connection alone
    ?assert(still_up(A)),
    ?assertEqual(pong, gen_server:call({beamlet, A}, ping, 5000)),
    ?assertEqual(running, bl_test_util:status(A)),
    erlang:monitor_node(A, false).

startup_checks_test_() -> {timeout, 120, fun startup_checks/0}.

startup_checks() ->
    Node = fun(Args) ->
                   sh("timeout 20 " ++ bin() ++ " node --sname tchk --cookie x --no-publish " ++
                      Args)
           end,
    Expect = fun(Args, Sub) ->
                     {Rc, Out} = Node(Args),
                     ?assertNotEqual(0, Rc),
                     case string:find(Out, Sub) of
                         nomatch -> error({no_message, Sub, Out});
                         _ -> ok
                     end
             end,
    Expect("--tls true --tls-cert /nonexistent.pem --tls-key " ++ f("node.key") ++
           " --tls-ca " ++ f("ca.pem"), "tls_cert /nonexistent.pem: No such file or directory"),
    Expect("--tls true --tls-cert " ++ f("node.pem") ++ " --tls-key " ++ f("node2.key") ++
           " --tls-ca " ++ f("ca.pem"), "does not match the certificate"),
    Expect("--tls true --tls-cert " ++ f("node.ext") ++ " --tls-key " ++ f("node.key") ++
           " --tls-ca " ++ f("ca.pem"), "not a PEM certificate"),
    Expect("--tls true --tls-cert " ++ f("node.pem") ++ " --tls-key " ++ f("node.key"),
           "tls_ca (unset)"),
    Expect(tls_flags("expired"), "the certificate expired"),
    Expect(tls_flags("node") ++ " --tls-versions 1.1", "tls_versions"),
    Expect(tls_flags("node") ++ " --tls-verify maybe", "tls_verify"),
    Expect(tls_flags("node") ++ " --tls-ciphers NOPE", "tls_ciphers").

%%% ------------------------------------------------------------------ hostile peers

stall_flood_test_() -> {timeout, 180, fun stall_flood/0}.

stall_flood() ->
    A = start("tsf", tls()),
    true = erlang:monitor_node(A, true),
    Port = port_of(A),
    %% a peer that connects and says nothing, one that stops inside the TLS record header
    {ok, S1} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    {ok, S2} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S2, <<16#16, 3, 1, 0>>),
    ?assert(ok_ping(A)), % others are served meanwhile
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, closed}, gen_tcp:recv(S1, 0, 4 * ?HS_TMO + 5000)),
    ?assertEqual({error, closed}, gen_tcp:recv(S2, 0, 4 * ?HS_TMO + 5000)),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 4 * ?HS_TMO + 5000),
    ?assert(log_has(A, "TLS handshake timed out")),
    %% 500 half-open TLS connects from another address
    Flood = [case gen_tcp:connect({127, 0, 0, 1}, Port,
                                  [binary, {active, false}, {ip, {127, 0, 0, 2}}], 5000) of
                 {ok, S} -> _ = gen_tcp:send(S, <<16#16, 3, 1>>), S;
                 _ -> none
             end || _ <- lists:seq(1, 500)],
    Open = [S || S <- Flood, S =/= none],
    ?assert(length(Open) >= 250),
    ?assert(ok_ping(A)),
    ?assertEqual(pong, gen_server:call({beamlet, A}, ping, 5000)),
    %% every one of them is closed by the handshake deadline (or refused by the per-address bound)
    [?assertMatch({error, _}, gen_tcp:recv(S, 0, 4 * ?HS_TMO + 10000)) || S <- Open],
    [gen_tcp:close(S) || S <- Open],
    ?assert(ok_ping(A)),
    ?assert(still_up(A)),
    erlang:monitor_node(A, false).

garbage_test_() -> {timeout, 180, fun garbage/0}.

garbage() ->
    {ok, _} = application:ensure_all_started(ssl), % TLS distribution alone does not start it
    A = start("tg", tls()),
    true = erlang:monitor_node(A, true),
    Port = port_of(A),
    rand:seed(exsss, {7, 11, 13}),
    Send = fun(Bytes) ->
                   {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
                   _ = gen_tcp:send(S, Bytes),
                   _ = gen_tcp:recv(S, 0, 50),
                   gen_tcp:close(S)
           end,
    %% random bytes, and random bytes behind a TLS handshake record header
    [Send(rand:bytes(rand:uniform(3000))) || _ <- lists:seq(1, 100)],
    [Send(<<16#16, 3, 1, (rand:bytes(rand:uniform(600)))/binary>>) || _ <- lists:seq(1, 100)],
    %% a real ClientHello (captured from OTP's ssl), cut at every 17th byte, and bit-flipped
    Hello = client_hello(),
    ?assert(byte_size(Hello) > 100),
    [Send(binary:part(Hello, 0, N)) || N <- lists:seq(1, byte_size(Hello) - 1, 17)],
    [Send(flip(Hello, rand:uniform(byte_size(Hello)) - 1)) || _ <- lists:seq(1, 50)],
    ?assert(ok_ping(A)),
    ?assertEqual(running, bl_test_util:status(A)),
    ?assert(still_up(A)),
    erlang:monitor_node(A, false).

flip(Bin, I) ->
    <<Pre:I/binary, B, Post/binary>> = Bin,
    <<Pre/binary, (B bxor 16#ff), Post/binary>>.

%% The first flight of an ssl client, read off a listening socket of ours.
client_hello() ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(L),
    spawn(fun() -> ssl:connect({127, 0, 0, 1}, P, [{verify, verify_none}], 2000) end),
    {ok, S} = gen_tcp:accept(L, 5000),
    {ok, B} = gen_tcp:recv(S, 0, 5000),
    gen_tcp:close(S),
    gen_tcp:close(L),
    B.

%%% ------------------------------------------------------------------ reload

reload_test_() -> {timeout, 120, fun reload/0}.

reload() ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, _} = file:copy(f("node.pem"), f("live.pem")),
    {ok, _} = file:copy(f("node.key"), f("live.key")),
    A = start("trl", ["--tls", "true", "--tls-cert", f("live.pem"), "--tls-key", f("live.key"),
                      "--tls-ca", f("ca.pem")]),
    true = erlang:monitor_node(A, true),
    Port = port_of(A),
    ?assertEqual(serial_of_file(f("node.pem")), served_serial(Port)),
    %% a renewed certificate at the same paths, then SIGHUP
    {ok, _} = file:copy(f("node2.pem"), f("live.pem")),
    {ok, _} = file:copy(f("node2.key"), f("live.key")),
    os:cmd("kill -HUP " ++ integer_to_list(bl_test_util:os_pid(A))),
    ?assert(log_has(A, "TLS: certificates reloaded")),
    ?assertEqual(serial_of_file(f("node2.pem")), served_serial(Port)),
    ?assert(still_up(A)), % the old connection stayed
    ?assertEqual(pong, gen_server:call({beamlet, A}, ping, 5000)),
    ?assert(ok_ping(A)),  % new connections work with the new certificate
    %% a broken file on reload: refused, the running certificate stays
    ok = file:write_file(f("live.pem"), <<"not a certificate">>),
    os:cmd("kill -HUP " ++ integer_to_list(bl_test_util:os_pid(A))),
    ?assert(log_has(A, "TLS reload refused")),
    ?assertEqual(serial_of_file(f("node2.pem")), served_serial(Port)),
    ?assert(ok_ping(A)),
    ?assert(still_up(A)),
    erlang:monitor_node(A, false).

%%% ------------------------------------------------------------------ the Erlang shim

shim_test_() -> {timeout, 120, fun shim/0}.

%% A VM on inet_tls starts its workers with its own TLS settings (from -ssl_dist_optfile).
shim() ->
    Args = beamlet_worker:tls_args(),
    ?assertEqual(["--tls", "true", "--tls-cert", f("node.pem"), "--tls-key", f("node.key"),
                  "--tls-ca", f("ca.pem"), "--tls-versions", "1.2,1.3"], Args),
    process_flag(trap_exit, true),
    {ok, Pid} = beamlet_worker:start_link_up(#{name => bl_test_util:unique("tshim"),
                                               binary => bin(), start_timeout => 20000}),
    Node = beamlet_worker:node_of(Pid),
    ?assertEqual(pong, gen_server:call({beamlet, Node}, ping, 5000)),
    ?assert(ok_ping(Node)),
    ok = gen_server:stop(Pid),
    process_flag(trap_exit, false).

%%% ------------------------------------------------------------------ the client's side

sni_test_() -> {timeout, 60, fun sni/0}.

%% A C node dialling a TLS node sets SNI to the host of the node name and, inside TLS, sends its
%% send_name with a 4-byte length (a fake TLS node registered in EPMD reads both).
sni() ->
    {ok, _} = application:ensure_all_started(ssl),
    Parent = self(),
    {ok, L} = ssl:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {reuseaddr, true},
                             {sni_fun, fun(H) -> Parent ! {sni, H}, [] end}
                             | opts("node") ++ [{fail_if_no_peer_cert, true}]]),
    {ok, {_, Port}} = ssl:sockname(L),
    Alive = bl_test_util:unique("tsni"),
    {ok, E} = gen_tcp:connect({127, 0, 0, 1}, 4369, [binary, {active, false}]),
    N = list_to_binary(Alive),
    Body = <<120, Port:16, 77, 0, 6:16, 5:16, (byte_size(N)):16, N/binary, 0:16>>,
    ok = gen_tcp:send(E, <<(byte_size(Body)):16, Body/binary>>),
    {ok, <<118, 0, _:32>>} = gen_tcp:recv(E, 6, 5000),
    Cli = spawn(fun() -> Parent ! {cli, cli_ping(list_to_atom(Alive ++ "@" ++
                                                             bl_test_util:host()),
                                                tls_flags("node"))} end),
    {ok, T} = ssl:transport_accept(L, 10000),
    {ok, S} = ssl:handshake(T, 10000),
    Host = bl_test_util:host(),
    ?assertEqual({sni, Host}, receive {sni, _} = M -> M after 5000 -> no_sni end),
    {ok, <<Len:32>>} = ssl:recv(S, 4, 5000),
    {ok, <<$N, _Flags:64, _Cr:32, NL:16, Name:NL/binary>>} = ssl:recv(S, Len, 5000),
    ?assertMatch(<<"beamlet_cli_", _/binary>>, Name),
    ssl:close(S),
    ssl:close(L),
    gen_tcp:close(E),
    ?assertMatch({cli, {1, _}}, receive {cli, _} = R -> R after 20000 -> {no_cli, Cli} end).
