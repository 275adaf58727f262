%% @doc The `beamlet' application: starts {@link beamlet_sup}.
-module(beamlet_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case beamlet_sup:start_link() of
        {ok, Pid} -> {ok, Pid};
        ignore -> {error, ignore};
        {error, _} = E -> E
    end.

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
