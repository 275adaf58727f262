%% beamlet_task_tests - the shim's task API (beamlet_task) against real workers: a coordinator
%% and an agent started by the shim's supervisor; submit, wait, get, list, cancel, agents, and a
%% handler written in Erlang (beamlet_task:handle/3), including a failing and a cancelled one.
-module(beamlet_task_tests).
-include_lib("eunit/include/eunit.hrl").

-import(shim_test_util, [wait_until/2]).

tasks_test_() ->
    {setup,
     fun() -> ok = shim_test_util:start_app() end,
     fun(_) -> shim_test_util:stop_app() end,
     {timeout, 120, fun tasks/0}}.

fast() -> ["--heartbeat-interval-ms", "300", "--election-timeout-ms", "600"].

tasks() ->
    C = "shimtk" ++ integer_to_list(erlang:unique_integer([positive])),
    Co = shim_test_util:worker("tkc", #{cluster => C, role => coordinator, extra_args => fast()}),
    Ag = shim_test_util:worker("tka", #{cluster => C, join => [Co], extra_args => fast()}),
    ?assert(wait_until(fun() ->
        case beamlet_task:agents(Co) of
            {ok, [#{node := Ag}]} -> true;
            _ -> false
        end end, 20000)),
    %% a built-in type
    {ok, Id} = beamlet_task:submit(Ag, <<"echo">>, #{payload => {hello, [1, 2]}}),
    {ok, #{state := succeeded, result := {hello, [1, 2]}, agent := Ag}} = beamlet_task:wait(Co, Id, 10000),
    {ok, #{id := Id}} = beamlet_task:get(Ag, Id),
    {ok, L} = beamlet_task:list(Co, #{state => <<"succeeded">>}),
    ?assert(lists:member(Id, [I || #{id := I} <- L])),
    %% an Erlang handler: results, errors, exceptions, cancellation
    {ok, H} = beamlet_task:handle(Ag, <<"shim.double">>,
                                  fun(#{payload := N}) when is_integer(N) -> {ok, 2 * N};
                                     (#{payload := forever}) -> timer:sleep(infinity);
                                     (#{payload := crash}) -> error(boom);
                                     (_) -> {error, not_a_number}
                                  end),
    ?assert(wait_until(fun() ->
        {ok, [#{types := Ts}]} = beamlet_task:agents(Co), lists:member(<<"shim.double">>, Ts) end, 10000)),
    {ok, D} = beamlet_task:submit(Co, <<"shim.double">>, #{payload => 21}),
    {ok, #{state := succeeded, result := 42}} = beamlet_task:wait(Co, D, 10000),
    {ok, E} = beamlet_task:submit(Co, <<"shim.double">>, #{payload => x}),
    {ok, #{state := failed, error := not_a_number}} = beamlet_task:wait(Co, E, 10000),
    {ok, X} = beamlet_task:submit(Co, <<"shim.double">>, #{payload => crash, retries => 1}),
    {ok, #{state := failed, attempt := 2, error := {error, boom}}} = beamlet_task:wait(Co, X, 10000),
    {ok, F} = beamlet_task:submit(Co, <<"shim.double">>, #{payload => forever}),
    ?assert(wait_until(fun() -> {ok, #{state := S}} = beamlet_task:get(Co, F), S =:= running end, 10000)),
    {ok, #{state := cancelled}} = beamlet_task:cancel(Co, F),
    {error, already_final} = beamlet_task:cancel(Co, F),
    {ok, T} = beamlet_task:submit(Co, <<"shim.double">>, #{payload => forever, timeout_ms => 300}),
    {ok, #{state := timed_out}} = beamlet_task:wait(Co, T, 10000),
    %% idempotency: one task per key
    {ok, K1} = beamlet_task:submit(Co, <<"echo">>, #{idempotency_key => <<"shim-k">>}),
    {ok, K1} = beamlet_task:submit(Ag, <<"echo">>, #{idempotency_key => <<"shim-k">>}),
    {error, {bad_request, _}} = beamlet_task:submit(Co, <<"echo">>, #{priority => soon}),
    {error, not_found} = beamlet_task:get(Co, <<"nope">>),
    ok = beamlet_task:stop_handler(H),
    ?assert(wait_until(fun() ->
        {ok, [#{types := Ts}]} = beamlet_task:agents(Co), not lists:member(<<"shim.double">>, Ts) end, 10000)),
    %% a queue timeout, seen in the leader's feed of transitions (asked through the agent)
    {ok, #{term := Tm, next := N0, changes := []}} = beamlet_task:changes(Co, #{}),
    {ok, Q} = beamlet_task:submit(Co, <<"echo">>, #{capabilities => [<<"nobody-has-it">>],
                                                    queue_timeout_ms => 300}),
    {ok, #{state := failed, error := queue_timeout, queue_timeout_ms := 300}} =
        beamlet_task:wait(Co, Q, 10000),
    {ok, #{changes := Ch, next := N1}} =
        beamlet_task:changes(Ag, #{since => N0, term => Tm, state => <<"failed">>}),
    ?assertMatch([#{id := Q, state := failed, error := queue_timeout, attempt := 0}],
                 [X || X = #{id := I} <- Ch, I =:= Q]),
    %% a long poll with nothing new answers empty at its timeout
    {ok, #{changes := [], next := N1}} =
        beamlet_task:changes(Ag, #{since => N1, term => Tm, type => <<"none">>, timeout_ms => 200}),
    ok.
