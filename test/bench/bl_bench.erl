%% bl_bench.erl - the driver of `make bench` (started by test/bench/run.sh as node A).
%%
%% Prints figures measured side by side in one run (never pass/fail): message throughput
%% BEAM->beamlet, beamlet->BEAM and beamlet->beamlet next to BEAM->BEAM, one 20 MiB message
%% BEAM->beamlet next to BEAM->BEAM, gen_server:call latency to
%% a C process next to a BEAM gen_server, and idle RSS / exec-to-EPMD time next to an idle `erl`.
%% Nodes: this node (A), a BEAM peer (B, OTP `peer`), two bench_node C nodes (X, Y). Every
%% throughput case runs BL_BENCH_REPS times, interleaved (odd reps in order, even reps in reverse),
%% and the table shows medians; each ratio is the median of the per-rep ratios of a beamlet run
%% to the BEAM run beside it, so machine load hits both sides of a ratio alike.
%% Environment (set by run.sh): BENCH_NODE_BIN, BEAMLET_BIN, EPMD_WAIT_BIN, BL_BENCH_EBIN,
%% BL_BENCH_LOG_DIR, BL_BENCH_PIDFILE; optional BL_BENCH_MSGS (1000000), BL_BENCH_CALLS (20000),
%% BL_BENCH_REPS (7), BL_BENCH_STARTS (5), BL_BENCH_ONLY (comma-separated case names to run, for
%% profiling: startup, calls, big, beam_to_beamlet, beamlet_to_beam, ...; the table then shows only
%% the figures that were measured).
%% With BL_BENCH_TLS=1 (run.sh's second pass) every node runs TLS distribution: this driver and
%% the BEAM peer with -proto_dist inet_tls -ssl_dist_optfile $BL_BENCH_TLS_OPTFILE, the C nodes
%% with --tls and the certificates in $BL_BENCH_TLS_DIR; start-up figures are not repeated. Each
%% pass appends "mode figure beamlet BEAM" lines to $BL_BENCH_SUMMARY for run.sh's side-by-side table.
-module(bl_bench).
-behaviour(gen_server).

-export([main/0, counter/2, blaster/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(CASE_TIMEOUT, 120000).

main() ->
    Code =
        try run() of
            ok -> 0
        catch
            C:R:St ->
                io:format("~nbench: FAILED ~p:~p~n~p~n", [C, R, St]),
                1
        end,
    cleanup(),
    halt(Code).

%%% ------------------------------------------------------------------ configuration

env(K) ->
    case os:getenv(K) of
        false -> error({missing_env, K});
        V -> V
    end.

env_int(K, Default) ->
    case os:getenv(K) of
        false -> Default;
        "" -> Default;
        V -> list_to_integer(V)
    end.

uniq() -> os:getpid().

tls() -> os:getenv("BL_BENCH_TLS") =:= "1".

mode() -> case tls() of true -> "tls"; false -> "tcp" end.

%% The dist arguments of a BEAM peer, and the flags of a C node, for this pass.
peer_dist_args() ->
    case tls() of
        true -> ["-proto_dist", "inet_tls", "-ssl_dist_optfile", env("BL_BENCH_TLS_OPTFILE")];
        false -> []
    end.

cnode_tls_args() ->
    case tls() of
        true ->
            D = env("BL_BENCH_TLS_DIR"),
            ["--tls", "true", "--tls-cert", filename:join(D, "node.pem"),
             "--tls-key", filename:join(D, "node.key"), "--tls-ca", filename:join(D, "ca.pem")];
        false -> []
    end.

want(Case) ->
    case os:getenv("BL_BENCH_ONLY") of
        V when V =:= false; V =:= "" -> true;
        V -> lists:member(atom_to_list(Case), string:lexemes(V, ", "))
    end.

host() ->
    [_, H] = string:split(atom_to_list(node()), "@"),
    H.

cookie() -> atom_to_list(erlang:get_cookie()).

%%% ------------------------------------------------------------------ the run

run() ->
    N = env_int("BL_BENCH_MSGS", 1000000),
    Calls = env_int("BL_BENCH_CALLS", 20000),
    Reps = env_int("BL_BENCH_REPS", 7),
    Starts = env_int("BL_BENCH_STARTS", 5),
    Cores = erlang:system_info(logical_processors_available),
    io:format("beamlet bench (~s distribution): ~p msgs per throughput case, ~p calls, ~p reps, "
              "~p start-ups; OTP ~s, ~p logical CPUs~n",
              [case tls() of true -> "TLS (inet_tls)"; false -> "plain TCP" end, N, Calls, Reps,
               Starts, erlang:system_info(otp_release), Cores]),

    %% Start-up first, while nothing else runs.
    io:format("~n== idle node: exec -> published in EPMD, VmRSS at exec + 1 s~n"),
    StartRes = [{K, startup(K, I)} || not tls(), want(startup), I <- lists:seq(1, Starts),
                                      K <- [beamlet, erl]],
    Bl = [{I, R} || {I, {beamlet, R}} <- lists:enumerate(1, [KR || {beamlet, _} = KR <- StartRes])],
    Er = [{I, R} || {I, {erl, R}} <- lists:enumerate(1, [KR || {erl, _} = KR <- StartRes])],

    {Tput, Lat} =
        case lists:any(fun want/1, [calls, big | case_names()]) of
            true -> node_cases(N, Calls, Reps);
            false -> {[], []}
        end,
    table(N, Calls, Tput, Lat, Bl, Er),
    ok.

case_names() ->
    [beam_to_beam_send, beam_to_beamlet, beam_to_beam_blast, beamlet_to_beam, beamlet_to_beamlet].

%% Throughput and call latency: needs nodes B, X and Y.
node_cases(N, Calls, Reps) ->
    io:format("~n== starting nodes~n"),
    B = start_peer("bl_bench_b_" ++ uniq()),
    X = start_cnode("bl_bench_x_" ++ uniq()),
    Y = start_cnode("bl_bench_y_" ++ uniq()),
    [XPid, YPid] = lists:reverse(get(cnodes)),
    OsPids = [{"A", list_to_integer(os:getpid())},
              {"B", list_to_integer(rpc:call(B, os, getpid, []))}, {"X", XPid}, {"Y", YPid}],
    io:format("A ~p, B ~p (BEAM), X ~p, Y ~p (bench_node)~nOS pids:~s~n",
              [node(), B, X, Y, [io_lib:format(" ~s=~w", [Nd, P]) || {Nd, P} <- OsPids]]),

    Cases =
        [{beam_to_beam_send, fun(M) -> case_send(beam, B, M) end},
         {beam_to_beamlet, fun(M) -> case_send(c, X, M) end},
         {beam_to_beam_blast, fun(M) -> case_blast({beam, B}, {beam, node()}, M) end},
         {beamlet_to_beam, fun(M) -> case_blast({c, X}, {beam, node()}, M) end},
         {beamlet_to_beamlet, fun(M) -> case_blast({c, X}, {c, Y}, M) end}],
    io:format("~n== warm-up (connections, code loading)~n"),
    [F(20000) || {Name, F} <- Cases, want(Name)],
    io:format("~n== throughput, ~p messages {Pid, {seq, I, <<\"payload\">>}} per case; odd reps run "
              "the cases in this order, even reps in reverse (A B .. B A), so each beamlet case "
              "and its BEAM baseline run next to each other under the same machine load~n", [N]),
    Tput = lists:append([[{Name, {R, run_case(Name, F, N, R, OsPids)}}
                          || {Name, F} <- rep_order(R, Cases), want(Name)]
                         || R <- lists:seq(1, Reps)]),

    io:format("~n== one 20 MiB binary from A in one message {Pid, {seq, 1, Bin}} (fragmented on the "
              "wire), until the receiver has it~n"),
    Big = lists:append([rep_order(R, [{beamlet_big, {R, run_big(beamlet_big, c, X, R)}},
                                      {beam_big, {R, run_big(beam_big, beam, B, R)}}])
                        || want(big), R <- lists:seq(1, Reps)]),

    io:format("~n== gen_server:call round trip from A, ~p sequential calls~n", [Calls]),
    {ok, _} = rpc:call(B, gen_server, start, [{local, bl_bench_echo}, ?MODULE, [], []]),
    Lat = lists:append([rep_order(R, [{beamlet_call, {R, run_lat(beamlet_call, {echo, X}, Calls, R)}},
                                      {beam_call, {R, run_lat(beam_call, {bl_bench_echo, B}, Calls, R)}}])
                        || want(calls), R <- lists:seq(1, Reps)]),
    {Tput, Lat ++ Big}.

%% Odd reps run the cases in order, even reps in reverse: a case and its baseline are neighbours
%% in every rep, and neither always goes first.
rep_order(R, Cases) when R rem 2 =:= 1 -> Cases;
rep_order(_, Cases) -> lists:reverse(Cases).

%%% ------------------------------------------------------------------ throughput cases

now_ns() -> erlang:monotonic_time(nanosecond).

%% Run Fun in a fresh process (clean mailbox); its crash becomes ours.
isolated(Fun) ->
    Parent = self(),
    Ref = make_ref(),
    {Pid, MRef} = spawn_monitor(fun() -> Parent ! {Ref, Fun()} end),
    receive
        {Ref, R} ->
            erlang:demonitor(MRef, [flush]),
            R;
        {'DOWN', MRef, process, Pid, Why} ->
            error({case_crashed, Why})
    end.

run_case(Name, F, N, Rep, OsPids) ->
    Cpu0 = [cpu_ticks(P) || {_, P} <- OsPids],
    {Ns, EBusy} = F(N),
    Cpu1 = [cpu_ticks(P) || {_, P} <- OsPids],
    Rate = N * 1.0e9 / Ns,
    Hz = clk_tck(),
    %% CPU time each node used during the run, in microseconds per message
    Cpu = [{Node, (T1 - T0) * 1.0e6 / Hz / N}
           || {{Node, _}, T0, T1} <- lists:zip3(OsPids, Cpu0, Cpu1)],
    io:format("  rep ~p  ~-20s ~10w msgs/s  ~8.1f ms  CPU us/msg:~s~s~n",
              [Rep, Name, round(Rate), Ns / 1.0e6,
               [io_lib:format(" ~s ~.2f", [Nd, C]) || {Nd, C} <- Cpu],
               case EBusy of
                   none -> "";
                   E -> io_lib:format("  (C sender hit BL_EBUSY ~p times)", [E])
               end]),
    {Rate, EBusy, Cpu}.

%% utime + stime of an OS process, in clock ticks.
cpu_ticks(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, After] = binary:split(B, <<") ">>),
    F = binary:split(After, <<" ">>, [global]),
    binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F)).

clk_tck() ->
    case persistent_term:get({?MODULE, clk_tck}, undefined) of
        undefined ->
            T = list_to_integer(string:trim(os:cmd("getconf CLK_TCK"))),
            persistent_term:put({?MODULE, clk_tck}, T),
            T;
        T -> T
    end.

%% A process here (A) sends N messages as fast as it can to a receiver on Node: a BEAM process
%% (beam) or a bench_node sink (c). Wall time on the sender from the first send to {done, N}, which
%% the receiver sends after it has taken the N-th message off its connection (the C sink) or out of
%% its mailbox (the BEAM counter). Timed the same way for both: the receiver exists before the
%% clock starts (remote spawn/4 and the sink call both wait for the receiver's pid), and the clock
%% stops only when every message has been received and handled, not when the sender is done.
case_send(Kind, Node, N) ->
    isolated(
      fun() ->
              Me = self(),
              Recv = case Kind of
                         beam -> spawn(Node, ?MODULE, counter, [N, Me]);
                         c -> {ok, P} = gen_server:call({bench, Node}, {sink, N, Me}), P
                     end,
              T0 = now_ns(),
              send_loop(Recv, Me, 1, N),
              wait_done(N),
              {now_ns() - T0, none}
      end).

send_loop(_, _, I, N) when I > N -> ok;
send_loop(To, Me, I, N) ->
    To ! {Me, {seq, I, <<"payload">>}},
    send_loop(To, Me, I + 1, N).

%% A sender on Src ({beam, Node}: a BEAM process, {c, Node}: a bench_node blaster) sends N messages
%% to a receiver on Dst ({beam, Node}: a counting BEAM process, {c, Node}: a bench_node sink), which
%% tells this process when the last arrives. Wall time here from the command to {done, N}.
case_blast({SrcKind, SrcNode}, {DstKind, DstNode}, N) ->
    isolated(
      fun() ->
              Me = self(),
              Recv = case DstKind of
                         beam -> spawn_link(DstNode, ?MODULE, counter, [N, Me]);
                         c -> {ok, P} = gen_server:call({bench, DstNode}, {sink, N, Me}), P
                     end,
              T0 = now_ns(),
              case SrcKind of
                  beam -> spawn_link(SrcNode, ?MODULE, blaster, [Recv, N, Me]);
                  c -> {ok, _} = gen_server:call({bench, SrcNode}, {blast, Recv, N, Me})
              end,
              wait_done(N),
              T1 = now_ns(),
              EBusy = receive
                          {blast_sent, N, E} -> E;
                          {blast_failed, Sent, Rc} -> error({blast_failed, Sent, Rc})
                      after 10000 -> error(no_blast_sent)
                      end,
              {T1 - T0, case SrcKind of beam -> none; c -> EBusy end}
      end).

wait_done(N) ->
    receive
        {done, N} -> ok;
        {blast_failed, Sent, Rc} -> error({blast_failed, Sent, Rc})
    after ?CASE_TIMEOUT -> error({timeout_waiting_for_done, N})
    end.

counter(N, Notify) -> count(N, N, Notify).

count(0, N, Notify) -> Notify ! {done, N};
count(K, N, Notify) ->
    receive
        {_, {seq, _, _}} -> count(K - 1, N, Notify)
    end.

blaster(To, N, Notify) ->
    send_loop(To, self(), 1, N),
    Notify ! {blast_sent, N, 0}.

%% A large message next to the small-message cases: it shows that nothing tuned for streams of
%% small messages (the C receiver's batched reads, dist/conn.c) slows a large one down.
run_big(Name, Kind, Node, Rep) ->
    Ms = isolated(
           fun() ->
                   Me = self(),
                   Bin = binary:copy(<<"0123456789abcdef">>, 20 * 1024 * 1024 div 16),
                   Recv = case Kind of
                              beam -> spawn(Node, ?MODULE, counter, [1, Me]);
                              c -> {ok, P} = gen_server:call({bench, Node}, {sink, 1, Me}), P
                          end,
                   T0 = now_ns(),
                   Recv ! {Me, {seq, 1, Bin}},
                   wait_done(1),
                   (now_ns() - T0) / 1.0e6
           end),
    io:format("  rep ~p  ~-20s ~8.1f ms~n", [Rep, Name, Ms]),
    {Ms}.

%%% ------------------------------------------------------------------ call latency

run_lat(Name, Dest, K, Rep) ->
    {P50, P99, Mean} =
        isolated(
          fun() ->
                  [I = gen_server:call(Dest, I) || I <- lists:seq(1, 1000)],
                  Ts = lists:sort(lat_loop(Dest, 1, K, [])),
                  Us = fun(T) -> erlang:convert_time_unit(T, native, nanosecond) / 1000 end,
                  {Us(pct(Ts, 50)), Us(pct(Ts, 99)), Us(lists:sum(Ts) div K)}
          end),
    io:format("  rep ~p  ~-20s p50 ~7.1f us  p99 ~7.1f us  mean ~7.1f us~n",
              [Rep, Name, P50, P99, Mean]),
    {P50, P99}.

lat_loop(_, I, K, Acc) when I > K -> Acc;
lat_loop(Dest, I, K, Acc) ->
    T0 = erlang:monotonic_time(),
    {req, I} = gen_server:call(Dest, {req, I}),
    T1 = erlang:monotonic_time(),
    lat_loop(Dest, I + 1, K, [T1 - T0 | Acc]).

pct(Sorted, P) -> lists:nth(max(1, (length(Sorted) * P + 99) div 100), Sorted).

%% The BEAM echo gen_server on B.
init([]) -> {ok, nostate}.
handle_call(Req, _From, S) -> {reply, Req, S}.
handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

%%% ------------------------------------------------------------------ start-up and RSS

startup(Kind, I) ->
    Alias = lists:flatten(io_lib:format("bl_bench_s~s_~s_~p", [Kind, uniq(), I])),
    {Prog, Args, Env} =
        case Kind of
            beamlet ->
                {env("BEAMLET_BIN"),
                 ["node", "--sname", Alias, "--cookie", cookie(), "--log-level", "warn"],
                 [{"BEAMLET_LISTEN_ADDRESS", "127.0.0.1"}]};
            erl ->
                {os:find_executable("erl"),
                 ["-sname", Alias, "-setcookie", cookie(), "-noshell",
                  "-kernel", "inet_dist_use_interface", "{127,0,0,1}"], []}
        end,
    Port = open_port({spawn_executable, env("EPMD_WAIT_BIN")},
                     [{args, [Alias, "1000", "--", Prog | Args]}, {env, Env}, exit_status,
                      {line, 1024}, stderr_to_stdout, binary]),
    Lines = collect_port(Port, []),
    Line = case [L || L <- Lines, binary:match(L, <<"publish_us=">>) =/= nomatch] of
               [L1 | _] -> L1;
               [] -> error({epmd_wait_failed, Kind, Lines})
           end,
    KV = maps:from_list([list_to_tuple(string:split(F, "="))
                         || F <- string:lexemes(binary_to_list(Line), " ")]),
    Pub = list_to_integer(maps:get("publish_us", KV)),
    Rss = list_to_integer(maps:get("rss_kb", KV)),
    CRss = list_to_integer(maps:get("children_rss_kb", KV)),
    Anon = list_to_integer(maps:get("rss_anon_kb", KV)),
    Pss = list_to_integer(maps:get("pss_kb", KV)),
    Threads = maps:get("threads", KV, "?"),
    Pub >= 0 orelse error({never_published, Kind, Line}),
    io:format("  ~-8s #~p  published after ~7.1f ms  VmRSS ~6w kB (RssAnon ~w, Pss ~w; "
              "children's VmRSS ~w kB; ~s threads)  [~s]~n",
              [Kind, I, Pub / 1000, Rss, Anon, Pss, CRss, Threads, maps:get("comm", KV, "?")]),
    {Pub / 1000, Rss, Anon, Pss}.

collect_port(Port, Acc) ->
    receive
        {Port, {data, {_, L}}} -> collect_port(Port, [L | Acc]);
        {Port, {exit_status, _}} -> lists:reverse(Acc)
    after 60000 -> error(epmd_wait_timeout)
    end.

%%% ------------------------------------------------------------------ nodes

start_peer(Name) ->
    {ok, Peer, Node} =
        peer:start_link(#{name => Name, wait_boot => 30000,
                          args => ["-setcookie", cookie(), "-pa", env("BL_BENCH_EBIN"),
                                   "-kernel", "inet_dist_use_interface", "{127,0,0,1}"
                                   | peer_dist_args()]}),
    unlink(Peer),
    remember(peers, Peer),
    Node.

%% A bench_node C node; a process owns its port and copies its output to a log file.
start_cnode(Alias) ->
    Node = list_to_atom(Alias ++ "@" ++ host()),
    Log = filename:join(env("BL_BENCH_LOG_DIR"), Alias ++ ".log"),
    Parent = self(),
    Owner = spawn(fun() -> cnode_owner(Parent, Alias, Log) end),
    OsPid = receive
                {Owner, os_pid, P} -> P
            after 10000 -> error({cnode_not_started, Alias})
            end,
    remember(cnodes, OsPid),
    ok = file:write_file(env("BL_BENCH_PIDFILE"), [integer_to_list(OsPid), "\n"], [append]),
    wait_pong(Node, 100),
    Node.

cnode_owner(Parent, Alias, Log) ->
    Port = open_port({spawn_executable, env("BENCH_NODE_BIN")},
                     [{args, ["--sname", Alias, "--cookie", cookie(), "--log-level", "warn"
                              | cnode_tls_args()]},
                      {env, [{"BEAMLET_LISTEN_ADDRESS", "127.0.0.1"}]},
                      exit_status, stderr_to_stdout, {line, 4096}, binary]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    Parent ! {self(), os_pid, OsPid},
    {ok, F} = file:open(Log, [write, raw]),
    cnode_log(Port, F, Alias).

cnode_log(Port, F, Alias) ->
    receive
        {Port, {data, {_, L}}} ->
            file:write(F, [L, "\n"]),
            cnode_log(Port, F, Alias);
        {Port, {exit_status, S}} ->
            file:write(F, io_lib:format("exit status ~p~n", [S])),
            file:close(F)
    end.

wait_pong(Node, 0) -> error({no_pong, Node});
wait_pong(Node, K) ->
    case net_adm:ping(Node) of
        pong -> ok;
        pang -> timer:sleep(50), wait_pong(Node, K - 1)
    end.

remember(K, V) -> put(K, [V | case get(K) of undefined -> []; L -> L end]).

cleanup() ->
    [catch peer:stop(P) || P <- case get(peers) of undefined -> []; L -> L end],
    [os:cmd("kill " ++ integer_to_list(P)) || P <- case get(cnodes) of undefined -> []; L -> L end],
    ok.

%%% ------------------------------------------------------------------ the table

%% Every figure is a list of {Rep, Value}; a ratio is the median of the per-rep ratios (a beamlet
%% run over the BEAM run next to it in the same rep), so load that comes and goes hits both sides of
%% each ratio alike. The value columns are plain medians.
table(N, Calls, Tput, Lat, Bl, Er) ->
    R = fun(Name) -> [{Rep, Rate} || {K, {Rep, {Rate, _, _}}} <- Tput, K =:= Name] end,
    EB = fun(Name) -> [E || {K, {_, {_, E, _}}} <- Tput, K =:= Name] end,
    ACpu = fun(Name) -> [{Rep, C} || {K, {Rep, {_, _, Cs}}} <- Tput, K =:= Name, {"A", C} <- Cs] end,
    P = fun(Name, I) -> [{Rep, element(I, V)} || {K, {Rep, V}} <- Lat, K =:= Name] end,
    Nth = fun(Starts, I) -> [{Rep, element(I, V)} || {Rep, V} <- Starts] end, %% start-up figures
    Send = R(beam_to_beam_send), Blast = R(beam_to_beam_blast),
    Rows =
        [{"BEAM->beamlet (msgs/s)", R(beam_to_beamlet), Send, "BEAM->BEAM", ">= 1.0"},
         {"  sender A's CPU (us/msg)", ACpu(beam_to_beamlet), ACpu(beam_to_beam_send),
          "BEAM->BEAM", "-"},
         {"beamlet->BEAM (msgs/s)", R(beamlet_to_beam), Blast, "BEAM->BEAM", ">= 1.0"},
         {"beamlet->beamlet (msgs/s)", R(beamlet_to_beamlet), Blast, "BEAM->BEAM", ">= 3.0"},
         {"20 MiB message (ms)", P(beamlet_big, 1), P(beam_big, 1), "BEAM->BEAM", "-"},
         {"call p50 (us)", P(beamlet_call, 1), P(beam_call, 1), "BEAM gen_server", "<= 1.0"},
         {"call p99 (us)", P(beamlet_call, 2), P(beam_call, 2), "BEAM gen_server", "-"},
         {"idle VmRSS (kB)", Nth(Bl, 2), Nth(Er, 2), "idle erl", "<= 2048 kB"},
         {"  of which RssAnon (kB)", Nth(Bl, 3), Nth(Er, 3), "idle erl", "-"},
         {"idle Pss (kB)", Nth(Bl, 4), Nth(Er, 4), "idle erl", "-"},
         {"exec->EPMD (ms)", Nth(Bl, 1), Nth(Er, 1), "idle erl", "<= 50 ms"}],
    Shown = [{Name, V, Base, BN, T, pair_ratios(V, Base)}
             || {Name, V, Base, BN, T} <- Rows, V =/= [], Base =/= []],
    io:format("~n== results (~p msgs per throughput run, ~p calls; values: medians; ratio: median "
              "of the per-rep ratios)~n", [N, Calls]),
    io:format("~-27s ~12s ~12s  ~-16s ~7s  ~s~n",
              ["figure", "beamlet", "BEAM", "baseline", "ratio", "target"]),
    io:format("~s~n", [lists:duplicate(90, $-)]),
    [io:format("~-27s ~12s ~12s  ~-16s ~7s  ~s~n",
               [Name, fmt(median(vals(V))), fmt(median(vals(Base))), BaseName, fmt_ratio(Rs),
                Target])
     || {Name, V, Base, BaseName, Target, Rs} <- Shown],
    io:format("~s~n", [lists:duplicate(90, $-)]),
    case os:getenv("BL_BENCH_SUMMARY") of
        F when is_list(F), F =/= "" ->
            ok = file:write_file(F, [io_lib:format("~s\t~s\t~s\t~s\t~s\t~s~n",
                                                   [mode(), Name, fmt(median(vals(V))),
                                                    fmt(median(vals(Base))), fmt_ratio(Rs), Target])
                                     || {Name, V, Base, _, Target, Rs} <- Shown], [append]);
        _ -> ok
    end,
    io:format("ratio = beamlet / BEAM, per rep. Spread over reps (min..max), and each rep's ratio:~n"),
    [io:format("  ~-27s beamlet ~s..~s   BEAM ~s..~s   ratios ~s~n",
               [Name, fmt(lists:min(vals(V))), fmt(lists:max(vals(V))), fmt(lists:min(vals(Base))),
                fmt(lists:max(vals(Base))), lists:join(" ", [io_lib:format("~.2f", [X]) || X <- Rs])])
     || {Name, V, Base, _, _, Rs} <- Shown],
    io:format("C sender hit BL_EBUSY (per run): beamlet->BEAM ~w, beamlet->beamlet ~w~n",
              [EB(beamlet_to_beam), EB(beamlet_to_beamlet)]),
    Names = lists:usort([K || {K, _} <- Tput]),
    Names =/= [] andalso
        begin
            io:format("~nCPU time per message during the throughput runs (us, median; A = driver "
                      "BEAM, B = BEAM peer, X/Y = bench_node):~n"),
            [io:format("  ~-20s~s~n",
                       [K, [io_lib:format("  ~s ~5.2f", [Nd, median([C || {K2, {_, {_, _, Cs}}} <- Tput,
                                                                        K2 =:= K,
                                                                        {Nd2, C} <- Cs,
                                                                        Nd2 =:= Nd])])
                            || Nd <- ["A", "B", "X", "Y"]]])
             || K <- Names]
        end,
    ok.

vals(L) -> [V || {_, V} <- L].

%% V / Base for each rep that has both (and a non-zero baseline), in rep order.
pair_ratios(V, Base) ->
    [X / B || {I, X} <- V, {J, B} <- Base, I =:= J, B > 0].

fmt_ratio([]) -> "-";
fmt_ratio(Rs) -> float_to_list(median(Rs), [{decimals, 3}]).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

fmt(V) when is_integer(V) -> integer_to_list(V);
fmt(V) when V >= 1000 -> float_to_list(float(V), [{decimals, 0}]);
fmt(V) when V < 10 -> float_to_list(float(V), [{decimals, 2}]);
fmt(V) -> float_to_list(float(V), [{decimals, 1}]).
