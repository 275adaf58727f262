%% @doc Tasks on a beamlet cluster (docs/tasks.md): submit work to the dispatcher the leader among
%% the coordinators runs, follow it, cancel it, and handle task types in Erlang.
%%
%% Every call goes to the `beamlet_tasks' process of the node given (any member: it hands the
%% request to the leader). A submit is answered once a majority of the coordinators hold the
%% task; execution is at least once, the result of a task id is recorded once.
%%
%% ```
%% {ok, Id} = beamlet_task:submit(Node, <<"echo">>, #{payload => #{a => 1}}),
%% {ok, #{state := succeeded, result := #{a := 1}}} = beamlet_task:wait(Node, Id, 5000).
%% '''
%%
%% A handler: {@link handle/3} starts a linked process (a gen_server) that registers itself on
%% `Node' for a type and runs `Fun(Task)' in a fresh process per attempt, so long tasks do not
%% hold it up; `Fun' returns `{ok, Result}' or `{error, Reason}' (an exception fails the attempt
%% with `{Class, Reason}'). A cancel or a timeout kills that attempt's process.
-module(beamlet_task).
-behaviour(gen_server).

-export([submit/3, get/2, list/2, cancel/2, wait/3, agents/1, runs/1, changes/2]).
-export([handle/3, handle/4, stop_handler/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([task/0, task_id/0, submit_opts/0, error_reason/0, handler_fun/0, change/0,
              changes_query/0, changes/0]).

-type task_id() :: binary().
-type task() :: #{id := task_id(), type := binary(), state := atom(), attempt := non_neg_integer(),
                  agent := node() | undefined, trace_id := binary(), atom() => term()}.
-type submit_opts() :: #{payload => term(), capabilities => [binary()],
                         priority => high | normal | low, timeout_ms => pos_integer(),
                         retries => non_neg_integer(), queue_timeout_ms => non_neg_integer(),
                         idempotency_key => binary(), trace_id => binary()}.
%% One transition from the leader's feed (docs/tasks.md, "Watching every task"); `error': the
%% reason of a failure when it is an atom (queue_timeout, timeout, agent_lost, ...).
-type change() :: #{seq := non_neg_integer(), id := task_id(), type := binary(), state := atom(),
                    attempt := non_neg_integer(), agent := node() | undefined,
                    time_ms := non_neg_integer(), error := atom()}.
-type changes_query() :: #{since => non_neg_integer(), term => non_neg_integer(),
                           type => binary(), state => binary(), limit => 1..1000,
                           timeout_ms => 0..60000}.
-type changes() :: #{term := non_neg_integer(), next := non_neg_integer(),
                     missed := non_neg_integer(), changes := [change()]}.
-type error_reason() :: beamlet_client:call_error() | not_found | already_final | no_leader
                      | not_leader | leader_unreachable | queue_full | {bad_request, binary()}
                      | {not_replicated, task_id()} | term().
%% A handler returns {ok, Result} or {error, Reason}; anything else fails the attempt with
%% {bad_return, Value}, an exception with {Class, Reason}.
-type handler_fun() :: fun((task()) -> term()).

-define(CALL_TIMEOUT, 15000).
-define(RETRY_MS, 300).

%% @doc Submit a task of `Type'. Tried again (with an idempotency key, the caller's or one made
%% here) while the leadership moves, for up to 30 s.
-spec submit(node(), binary(), submit_opts()) -> {ok, task_id()} | {error, error_reason()}.
submit(Node, Type, Opts) when is_atom(Node), is_binary(Type), is_map(Opts) ->
    Key = maps:get(idempotency_key, Opts, make_key()),
    Req = {submit, Opts#{type => Type, idempotency_key => Key}},
    Deadline = erlang:monotonic_time(millisecond) + 30000,
    submit_loop(Node, Req, Deadline).

submit_loop(Node, Req, Deadline) ->
    case call(Node, Req, ?CALL_TIMEOUT) of
        {ok, Id} -> {ok, Id};
        {error, Why} = E ->
            case transient(Why) andalso erlang:monotonic_time(millisecond) < Deadline of
                true -> timer:sleep(?RETRY_MS), submit_loop(Node, Req, Deadline);
                false -> E
            end
    end.

%% @doc The task as the leader holds it: state, attempt, agent, result or error, history.
-spec get(node(), task_id()) -> {ok, task()} | {error, error_reason()}.
get(Node, Id) when is_binary(Id) -> call(Node, {get, Id}, ?CALL_TIMEOUT).

%% @doc Tasks, newest first, without payload and result. Query: `state' and `type' (binaries),
%% `limit' (default 100).
-spec list(node(), #{state => binary(), type => binary(), limit => pos_integer()}) ->
          {ok, [task()]} | {error, error_reason()}.
list(Node, Query) when is_map(Query) -> call(Node, {list, Query}, ?CALL_TIMEOUT).

%% @doc Cancel a task that has not ended.
-spec cancel(node(), task_id()) -> {ok, task()} | {error, error_reason()}.
cancel(Node, Id) when is_binary(Id) -> call(Node, {cancel, Id}, ?CALL_TIMEOUT).

%% @doc Wait up to `Timeout' ms for the task's end: `{ok, Task}' with a final state, or
%% `{error, timeout}'. Waits across a leader change.
-spec wait(node(), task_id(), non_neg_integer()) -> {ok, task()} | {error, error_reason()}.
wait(Node, Id, Timeout) when is_binary(Id), is_integer(Timeout), Timeout >= 0 ->
    wait_until(Node, Id, erlang:monotonic_time(millisecond) + Timeout).

wait_until(Node, Id, Deadline) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    case call(Node, {wait, Id, max(0, min(Left, 20000))}, 40000) of
        {ok, #{state := S} = T} ->
            case is_final(S) of
                true -> {ok, T};
                false when Left =< 0 -> {error, timeout};
                false -> wait_until(Node, Id, Deadline)
            end;
        {error, Why} = E ->
            case transient(Why) andalso Left > 0 of
                true -> timer:sleep(?RETRY_MS), wait_until(Node, Id, Deadline);
                false -> E
            end
    end.

%% @doc Every task's transitions from the leader's feed, a long poll: the changes after `since'
%% that match `type' and `state', as soon as there is one, else `changes => []' after
%% `timeout_ms' (default 0: at once). Ask again with `since => Next, term => Term' from the answer;
%% `missed' counts changes the feed no longer held. Without `since': from now on.
-spec changes(node(), changes_query()) -> {ok, changes()} | {error, error_reason()}.
changes(Node, Query) when is_map(Query) ->
    Wait = maps:get(timeout_ms, Query, 0),
    call(Node, {changes, Query#{timeout_ms => Wait}}, Wait + ?CALL_TIMEOUT).

%% @doc The agents the leader places tasks on.
-spec agents(node()) -> {ok, [map()]} | {error, error_reason()}.
agents(Node) -> call(Node, agents, ?CALL_TIMEOUT).

%% @doc The last attempts run on `Node' (diagnostics).
-spec runs(node()) -> {ok, [map()]} | {error, error_reason()}.
runs(Node) ->
    case call(Node, runs, ?CALL_TIMEOUT) of
        L when is_list(L) -> {ok, L};
        {error, _} = E -> E
    end.

%% @doc Handle tasks of `Type' on `Node' with `Fun' (see the module doc). Linked to the caller.
-spec handle(node(), binary(), handler_fun()) -> {ok, pid()} | {error, term()}.
handle(Node, Type, Fun) -> handle(Node, Type, Fun, #{}).

%% @doc As {@link handle/3}; `Opts': `name' registers the handler process locally.
-spec handle(node(), binary(), handler_fun(), #{name => atom()}) -> {ok, pid()} | {error, term()}.
handle(Node, Type, Fun, Opts) when is_atom(Node), is_binary(Type), is_function(Fun, 1) ->
    case maps:find(name, Opts) of
        {ok, Name} -> gen_server:start_link({local, Name}, ?MODULE, {Node, Type, Fun}, []);
        error -> gen_server:start_link(?MODULE, {Node, Type, Fun}, [])
    end.

%% @doc Stop a handler started by {@link handle/3}: its type is no longer advertised.
-spec stop_handler(pid()) -> ok.
stop_handler(Pid) -> gen_server:stop(Pid).

%%% ------------------------------------------------------------------ the handler process

-record(st, {node :: node(), type :: binary(), fun_ :: handler_fun(),
             running = #{} :: #{reference() => {non_neg_integer(), pid()}}}).

-spec init({node(), binary(), handler_fun()}) -> {ok, #st{}} | {stop, term()}.
init({Node, Type, Fun}) ->
    process_flag(trap_exit, true),
    case call(Node, {register_handler, Type, self()}, ?CALL_TIMEOUT) of
        ok ->
            true = erlang:monitor_node(Node, true),
            {ok, #st{node = Node, type = Type, fun_ = Fun}};
        {error, Why} -> {stop, Why};
        Other -> {stop, Other}
    end.

-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, {error, unknown_call}, #st{}}.
handle_call(_Req, _From, S) -> {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, S) -> {noreply, S}.

-spec handle_info(term(), #st{}) -> {noreply, #st{}} | {stop, term(), #st{}}.
handle_info({beamlet_task, Ref, Task}, S = #st{fun_ = Fun, running = R}) ->
    Me = self(),
    {Pid, Mon} = spawn_monitor(fun() -> Me ! {done, Ref, self(), run(Fun, Task)} end),
    {noreply, S#st{running = R#{Mon => {Ref, Pid}}}};
handle_info({done, Ref, _Pid, Result}, S = #st{node = Node}) ->
    gen_server:cast({beamlet_tasks, Node}, {task_done, Ref, Result}),
    {noreply, S};
handle_info({beamlet_task_cancel, Ref}, S = #st{running = R}) ->
    _ = [exit(Pid, kill) || {_, {Ref2, Pid}} <- maps:to_list(R), Ref2 =:= Ref],
    {noreply, S};
handle_info({'DOWN', Mon, process, _, _}, S = #st{running = R}) ->
    {noreply, S#st{running = maps:remove(Mon, R)}};
handle_info({nodedown, Node}, S = #st{node = Node}) ->
    {stop, {shutdown, nodedown}, S};
handle_info({'EXIT', _, Reason}, S) ->
    {stop, Reason, S};
handle_info(_Other, S) ->
    {noreply, S}.

-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, #st{node = Node, type = Type, running = R}) ->
    _ = [exit(Pid, kill) || {_, Pid} <- maps:values(R)],
    _ = (catch gen_server:call({beamlet_tasks, Node}, {unregister_handler, Type}, 2000)),
    ok.

run(Fun, Task) ->
    try Fun(Task) of
        R -> outcome(R)
    catch
        Class:Reason -> {error, {Class, Reason}}
    end.

%% what a handler returned (a handler that breaks its contract fails the attempt)
-spec outcome(term()) -> {ok, term()} | {error, term()}.
outcome({ok, _} = Ok) -> Ok;
outcome({error, _} = E) -> E;
outcome(Other) -> {error, {bad_return, Other}}.

%%% ------------------------------------------------------------------ helpers

call(Node, Req, Timeout) ->
    case beamlet_client:call(Node, beamlet_tasks, Req, Timeout) of
        {ok, Reply} -> Reply;
        {error, _} = E -> E
    end.

transient(W) when W =:= no_leader; W =:= not_leader; W =:= leader_unreachable; W =:= timeout;
                  W =:= not_ready; W =:= nodedown -> true;
transient({not_replicated, _}) -> true;
transient(_) -> false.

is_final(S) -> lists:member(S, [succeeded, failed, cancelled, timed_out]).

make_key() ->
    <<"erl-", (binary:encode_hex(random_bytes()))/binary>>.

random_bytes() ->
    <<(erlang:unique_integer([positive])):64, (rand:uniform(1 bsl 62)):64>>.
