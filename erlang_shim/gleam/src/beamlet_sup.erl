%% @doc Top supervisor of the `beamlet' application (`one_for_one'):
%% <ul>
%% <li>`beamlet_nodes': the connected beamlet nodes and node monitors;</li>
%% <li>`beamlet_worker_sup': the C worker nodes started by `beamlet:start_worker/1';</li>
%% <li>`beamlet_discovery', only when the application env `discovery' is a map of options
%%     (see {@link beamlet_discovery:start_link/1}).</li>
%% </ul>
%% Workers are stopped first on shutdown (children stop in reverse start order).
-module(beamlet_sup).
-behaviour(supervisor).

-export([start_link/0]).
-export([init/1]).

%% @doc Start the supervisor, registered as `beamlet_sup'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => one_for_one, intensity => 5, period => 30},
    Nodes = #{id => beamlet_nodes,
              start => {beamlet_nodes, start_link, []},
              restart => permanent, shutdown => 5000, type => worker,
              modules => [beamlet_nodes]},
    Workers = #{id => beamlet_worker_sup,
                start => {beamlet_worker_sup, start_link, []},
                restart => permanent, shutdown => infinity, type => supervisor,
                modules => [beamlet_worker_sup]},
    Discovery = case application:get_env(beamlet, discovery, false) of
                    Opts when is_map(Opts) ->
                        [#{id => beamlet_discovery,
                           start => {beamlet_discovery, start_link, [Opts]},
                           restart => permanent, shutdown => 5000, type => worker,
                           modules => [beamlet_discovery]}];
                    _ -> []
                end,
    {ok, {Flags, [Nodes, Workers | Discovery]}}.
