%% beamlet_worker_tests - start_worker/stop_worker/which_workers, restarts after a crash, no
%% restart after a clean exit, application stop, start errors, output forwarded to logger.
-module(beamlet_worker_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2, os_alive/1]).

worker_test_() ->
    {foreach,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     [{"start, list, stop", fun start_stop/0},
      {"kill -9: the supervisor restarts it", fun crash_restart/0},
      {"exit status 0 (SIGTERM from outside): not restarted", fun clean_exit/0},
      {"application stop stops every worker", fun app_stop/0},
      {"start errors", fun start_errors/0},
      {"output lines reach logger", fun logging/0}]}.

start_start_opts(Tag) ->
    #{name => shim_test_util:name(Tag), start_timeout => 15000}.

start_stop() ->
    Opts = start_start_opts("ss"),
    {ok, W} = beamlet:start_worker(Opts),
    ?assertEqual(shim_test_util:node_name(maps:get(name, Opts)), W),
    [{W, OsPid, up}] = beamlet:which_workers(),
    ?assert(os_alive(OsPid)),
    ?assertEqual({ok, pong}, beamlet:call(W, beamlet, ping)),
    ?assertEqual({error, {already_started, W}}, beamlet:start_worker(Opts)),
    ?assertEqual(ok, beamlet:stop_worker(W)),
    ?assertNot(os_alive(OsPid)),
    ?assertEqual([], beamlet:which_workers()),
    ?assertEqual({error, not_found}, beamlet:stop_worker(W)).

crash_restart() ->
    W = shim_test_util:worker("crash"),
    {ok, P1} = beamlet:worker_os_pid(W),
    shim_test_util:kill_os(P1, "KILL"),
    ?assert(wait_until(fun() ->
                               case beamlet:which_workers() of
                                   [{W, P2, up}] -> P2 =/= P1;
                                   _ -> false
                               end
                       end, 20000)),
    ?assertNot(os_alive(P1)),
    ?assert(wait_until(fun() -> beamlet:call(W, beamlet, ping, 1000) =:= {ok, pong} end, 5000)),
    {ok, P2} = beamlet:worker_os_pid(W),
    ?assertEqual({ok, P2}, maps:find(os_pid, element(2, beamlet:info(W)))).

clean_exit() ->
    W = shim_test_util:worker("clean"),
    {ok, P} = beamlet:worker_os_pid(W),
    shim_test_util:kill_os(P, "TERM"),
    ?assert(wait_until(fun() -> beamlet:which_workers() =:= [] end, 10000)),
    timer:sleep(500),
    ?assertEqual([], beamlet:which_workers()),
    ?assertNot(os_alive(P)).

app_stop() ->
    W1 = shim_test_util:worker("app1"),
    W2 = shim_test_util:worker("app2"),
    {ok, P1} = beamlet:worker_os_pid(W1),
    {ok, P2} = beamlet:worker_os_pid(W2),
    ?assertEqual(ok, application:stop(beamlet)),
    ?assertNot(os_alive(P1)),
    ?assertNot(os_alive(P2)).

start_errors() ->
    ?assertEqual({error, {missing_option, name}}, beamlet:start_worker(#{})),
    ?assertMatch({error, {no_binary, "/nonexistent/beamlet"}},
                 beamlet:start_worker((start_start_opts("nobin"))#{binary => "/nonexistent/beamlet"})),
    %% The node refuses its configuration and exits 2: the error carries its output.
    {error, {exit_status, 2, Lines}} =
        beamlet:start_worker((start_start_opts("badrole"))#{role => bogus}),
    ?assert(lists:any(fun(L) -> binary:match(L, <<"invalid role">>) =/= nomatch end, Lines)),
    ?assertEqual([], beamlet:which_workers()),
    %% A name that a running node already has.
    {Raw, _} = shim_test_util:start_raw("taken"),
    [Alias, _] = string:split(atom_to_list(Raw), "@"),
    ?assertEqual({error, {already_running, Raw}},
                 beamlet:start_worker(#{name => Alias})),
    shim_test_util:stop_all_raw().

logging() ->
    shim_test_util:with_logger_capture(
      fun() ->
              W = shim_test_util:worker("log"),
              ?assert(wait_until(fun() ->
                                         lists:any(fun({N, info, T}) ->
                                                           N =:= W andalso
                                                               binary:match(T, <<"ready">>) =/= nomatch;
                                                      (_) -> false
                                                   end, shim_test_util:captured())
                                 end, 5000))
      end).
