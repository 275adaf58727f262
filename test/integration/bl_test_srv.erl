%% bl_test_srv - a tiny gen_server the integration tests start on BEAM nodes so that C processes
%% (test_worker's ctl) can call and cast to it.
-module(bl_test_srv).
-behaviour(gen_server).

-export([start/1, stop/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

start(Name) -> gen_server:start({local, Name}, ?MODULE, [], []).
stop(Name) -> gen_server:stop(Name).

init([]) -> {ok, #{}}.

handle_call({add, A, B}, _From, S) -> {reply, A + B, S};
handle_call(whoami, {Pid, _Tag}, S) -> {reply, {you_are, node(Pid)}, S};
handle_call({sleep, Ms}, _From, S) -> timer:sleep(Ms), {reply, slept, S};
handle_call({echo, X}, _From, S) -> {reply, X, S};
handle_call(_Other, _From, S) -> {reply, {error, unknown_call}, S}.

handle_cast({notify, Pid, Msg}, S) -> Pid ! Msg, {noreply, S};
handle_cast(_, S) -> {noreply, S}.

handle_info(_, S) -> {noreply, S}.
