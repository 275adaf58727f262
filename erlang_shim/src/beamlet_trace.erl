%% @doc Correlation ids for BEAM callers (W3C trace context, docs/tracing.md).
%%
%% A trace is a `traceparent' binary, `<<"00-TraceId-SpanId-Flags">>'. The calling process's
%% current trace lives in its process dictionary; {@link beamlet_client:service_call/4} and
%% {@link beamlet_client:publish/4} send it with the request (the optional `trace' field of the
%% registry's and pub/sub's protocols), so the C nodes log it, store it with their events and
%% pass it on (`beamlet events --trace Id'). With no current trace those calls start a new one
%% for the request (this shim is the edge), not sampled: it is logged, but records no events.
%%
%% ```
%% beamlet_trace:with(beamlet_trace:new(sampled), fun() ->
%%     {ok, _} = beamlet:service_call(<<"resize">>, Img),
%%     {ok, _} = beamlet:publish(Node, <<"images.done">>, Id)
%% end).
%% '''
-module(beamlet_trace).

-export([new/0, new/1, child/1, current/0, set/1, clear/0, with/2, trace_id/1, parse/1,
         for_request/0]).

-export_type([traceparent/0]).

-type traceparent() :: binary().

-define(KEY, '$beamlet_traceparent').

%% @doc A new trace, not sampled.
-spec new() -> traceparent().
new() -> new(not_sampled).

%% @doc A new trace: random trace and span ids (crypto:strong_rand_bytes/1); `sampled' ones
%% record events on every node they touch.
-spec new(sampled | not_sampled) -> traceparent().
new(Sampled) ->
    Flags = case Sampled of sampled -> <<"01">>; not_sampled -> <<"00">> end,
    <<"00-", (hex(nonzero(16)))/binary, "-", (hex(nonzero(8)))/binary, "-", Flags/binary>>.

%% @doc The next hop of a trace: the same trace id and flags, a new span id.
-spec child(traceparent()) -> traceparent().
child(TP) ->
    {ok, {Id, _, Flags}} = parse(TP),
    <<"00-", Id/binary, "-", (hex(nonzero(8)))/binary, "-", Flags/binary>>.

%% @doc The calling process's current trace.
-spec current() -> traceparent() | undefined.
current() -> get(?KEY).

%% @doc Make `TP' the calling process's current trace (it must parse).
-spec set(traceparent()) -> ok.
set(TP) ->
    {ok, _} = parse(TP),
    put(?KEY, TP),
    ok.

-spec clear() -> ok.
clear() ->
    erase(?KEY),
    ok.

%% @doc Run `Fun' with `TP' as the current trace; the previous one comes back afterwards.
-spec with(traceparent(), fun(() -> R)) -> R.
with(TP, Fun) ->
    {ok, _} = parse(TP),
    Prev = put(?KEY, TP),
    try Fun()
    after
        case Prev of
            undefined -> erase(?KEY);
            _ -> put(?KEY, Prev)
        end
    end.

%% @doc The 32 hex digits of the trace id (what `beamlet events --trace' takes).
-spec trace_id(traceparent()) -> binary().
trace_id(TP) ->
    {ok, {Id, _, _}} = parse(TP),
    Id.

%% @doc A version-00 traceparent: `{ok, {TraceId, SpanId, Flags}}' (lowercase hex binaries).
-spec parse(term()) -> {ok, {binary(), binary(), binary()}} | {error, badarg}.
parse(<<"00-", Id:32/binary, "-", Span:16/binary, "-", Flags:2/binary>>) ->
    case is_hex(Id) andalso is_hex(Span) andalso is_hex(Flags) andalso
        Id =/= binary:copy(<<"0">>, 32) andalso Span =/= binary:copy(<<"0">>, 16) of
        true -> {ok, {Id, Span, Flags}};
        false -> {error, badarg}
    end;
parse(_) ->
    {error, badarg}.

%% @doc The trace a request from this process carries: a child of the current one, or a new
%% (not sampled) trace. The second element says whether it was the caller's.
-spec for_request() -> {traceparent(), given | new}.
for_request() ->
    case current() of
        undefined -> {new(), new};
        TP -> {child(TP), given}
    end.

nonzero(N) ->
    B = crypto:strong_rand_bytes(N),
    case B =:= <<0:(N * 8)>> of
        true -> nonzero(N);
        false -> B
    end.

hex(B) -> << <<(hexdig(X bsr 4)), (hexdig(X band 15))>> || <<X>> <= B >>.

hexdig(X) when X < 10 -> $0 + X;
hexdig(X) -> $a + X - 10.

is_hex(B) -> lists:all(fun(C) -> (C >= $0 andalso C =< $9) orelse (C >= $a andalso C =< $f) end,
                       binary_to_list(B)).
