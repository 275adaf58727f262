%% bl_trace_beam_srv - a stock gen_server for the trace suite, registered as beamlet_registry on
%% the test runner: a C caller under a trace (the admin CLI) calls it with the trace in the call
%% tag ([Ref | <<Traceparent>>] or [[alias|Ref] | <<Traceparent>>]); plain gen_server:reply
%% must answer it, and the server can read the trace from From.
-module(bl_trace_beam_srv).
-behaviour(gen_server).
-export([start/0, tag_trace/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

start() -> gen_server:start({local, beamlet_registry}, ?MODULE, [], []).

%% The traceparent a caller put in its tag, or none.
-spec tag_trace(term()) -> binary() | none.
tag_trace([_Ref | TP]) when is_binary(TP) -> TP;
tag_trace(_) -> none.

init([]) -> {ok, nostate}.

handle_call({call, _Name, Req, _Tmo}, {_Pid, Tag}, S) ->
    {reply, {ok, #{request => Req, tag_trace => tag_trace(Tag)}}, S}.

handle_cast(_, S) -> {noreply, S}.

%% the C client's registry replication messages (it takes every node for a peer): ignored
handle_info(_, S) -> {noreply, S}.
