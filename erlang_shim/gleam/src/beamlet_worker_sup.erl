%% @doc Supervisor of beamlet worker nodes (`simple_one_for_one' of {@link beamlet_worker}).
%%
%% Children are `transient' (see {@link beamlet_worker} for what restarts), with a 10 s shutdown
%% so that a worker's `terminate/2' can SIGTERM its OS process and wait for it. Intensity: 10
%% restarts in 60 s; beyond that this supervisor gives up and `beamlet_sup' restarts it empty.
-module(beamlet_worker_sup).
-behaviour(supervisor).

-export([start_link/0, start_worker/1, stop_worker/1, which_workers/0, os_pid/1, find/1]).
-export([init/1]).

-define(AWAIT_MARGIN, 2000).

%% @doc Start the supervisor, registered as `beamlet_worker_sup'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Start a worker and wait until its node answers (see {@link beamlet_worker}).
%% `{error, {already_started, Node}}' if this supervisor already runs a worker with that name.
-spec start_worker(beamlet_worker:opts()) -> {ok, node()} | {error, term()}.
start_worker(Opts) when is_map(Opts) ->
    case maps:is_key(name, Opts) of
        false -> {error, {missing_option, name}};
        true -> start_checked(Opts)
    end.

start_checked(Opts) ->
    {Node, _, _} = beamlet_worker:args(Opts),
    case find(Node) of
        {ok, _} -> {error, {already_started, Node}};
        error ->
            Tab = beamlet_worker:await_table(),
            Token = make_ref(),
            true = ets:insert(Tab, {Token, self()}),
            Res = case supervisor:start_child(?MODULE, [Opts#{'$await' => Token}]) of
                      {ok, Pid} when is_pid(Pid) ->
                          Timeout = maps:get(start_timeout, Opts, 5000) + ?AWAIT_MARGIN,
                          receive
                              {Token, ok} -> {ok, Node};
                              {Token, {error, Reason}} -> {error, Reason}
                          after Timeout ->
                                  _ = supervisor:terminate_child(?MODULE, Pid),
                                  {error, start_timeout}
                          end;
                      {ok, _} -> {error, ignored};
                      {ok, _, _} -> {error, ignored};
                      {error, {shutdown, Reason}} -> {error, Reason};
                      {error, Reason} -> {error, Reason}
                  end,
            ets:delete(Tab, Token),
            receive {Token, _} -> ok after 0 -> ok end,
            Res
    end.

%% @doc Stop the worker running `Node': SIGTERM, wait for the OS process to exit.
-spec stop_worker(node()) -> ok | {error, not_found}.
stop_worker(Node) when is_atom(Node) ->
    case find(Node) of
        {ok, Pid} ->
            _ = supervisor:terminate_child(?MODULE, Pid),
            ok;
        error -> {error, not_found}
    end.

%% @doc `[{Node, OsPid, Status}]' of every worker, sorted by node.
-spec which_workers() -> [{node(), integer() | undefined, starting | up}].
which_workers() ->
    lists:sort([S || Pid <- children(), {ok, S} <- [safe_status(Pid)]]).

%% @doc The OS pid of the worker running `Node'.
-spec os_pid(node()) -> {ok, integer()} | {error, not_found}.
os_pid(Node) ->
    case [P || {N, P, _} <- which_workers(), N =:= Node, is_integer(P)] of
        [P | _] -> {ok, P};
        [] -> {error, not_found}
    end.

%% @doc The worker process running `Node'.
-spec find(node()) -> {ok, pid()} | error.
find(Node) ->
    case [Pid || Pid <- children(), {ok, {N, _, _}} <- [safe_status(Pid)], N =:= Node] of
        [Pid | _] -> {ok, Pid};
        [] -> error
    end.

children() ->
    case whereis(?MODULE) of
        undefined -> [];
        _ -> [Pid || {_, Pid, _, _} <- supervisor:which_children(?MODULE), is_pid(Pid)]
    end.

safe_status(Pid) ->
    try {ok, beamlet_worker:status(Pid)}
    catch exit:_ -> error
    end.

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    %% Start waiters (see beamlet_worker:start_link/1); owned by this supervisor process.
    _ = ets:new(beamlet_worker:await_table(), [named_table, public, set]),
    Flags = #{strategy => simple_one_for_one, intensity => 10, period => 60},
    Child = #{id => beamlet_worker,
              start => {beamlet_worker, start_link, []},
              restart => transient,
              shutdown => 10000,
              type => worker,
              modules => [beamlet_worker]},
    {ok, {Flags, [Child]}}.
