%% bl_eunit_counter - an EUnit listener that sends the final pass/fail/skip/cancel counts to a
%% process ({bl_eunit_counts, Data}); used by bl_test_util:run/1.
-module(bl_eunit_counter).
-behaviour(eunit_listener).

-export([start/1]).
-export([init/1, handle_begin/3, handle_end/3, handle_cancel/3, terminate/2]).

start(Options) -> eunit_listener:start(?MODULE, Options).

init(Options) -> proplists:get_value(parent, Options).

handle_begin(_Kind, _Data, Parent) -> Parent.
handle_end(_Kind, _Data, Parent) -> Parent.
handle_cancel(_Kind, _Data, Parent) -> Parent.

terminate({ok, Data}, Parent) ->
    Parent ! {bl_eunit_counts, Data},
    ok;
terminate({error, Reason}, Parent) ->
    Parent ! {bl_eunit_counts, [{fail, 1}, {error, Reason}]},
    ok.
